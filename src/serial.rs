//! The serial queue: one dedicated thread that runs, in submission order and one at a time,
//! every task that must not run concurrently with another: dataset ingests and reloads (build
//! a new index, then publish it), statistics flushes to the store, and job journal writes. It
//! is fed by a bounded channel; a full queue refuses new tasks instead of growing.
//!
//! A running task may queue a follow-up (a job's turn to run, queued when the job is admitted)
//! through its [`SerialContext`]: it runs after every task that was waiting at that moment,
//! exactly where a task submitted then would, without a place in the channel.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::jobs::journal::Journal;
use crate::stats::store::Store;

/// Tasks that may wait in the queue; more are refused with [`SubmitError::Full`].
pub const SERIAL_QUEUE_CAPACITY: usize = 256;

/// What serial tasks work on; owned by the queue's thread.
#[derive(Default)]
pub struct SerialContext {
    /// The statistics store's writing connection, once opened.
    pub stats_store: Option<Store>,
    /// Where state files live.
    pub state_dir: Option<PathBuf>,
    /// The job journal's writing connection, once installed.
    pub jobs_journal: Option<Journal>,
    /// Tasks queued by tasks, with the queue they were queued behind (set by the thread).
    follow_ups: Option<FollowUps>,
}

impl SerialContext {
    /// From inside a task: queues `task` behind every task waiting at this moment, as
    /// [`SerialQueue::submit`] would, but without taking a place in the bounded channel (a
    /// task cannot wait for room in its own queue). The caller bounds how many it queues.
    pub fn follow_up(&mut self, task: impl FnOnce(&mut SerialContext) + Send + 'static) {
        let Some(follow_ups) = self.follow_ups.as_mut() else {
            tracing::error!("a follow-up was queued outside the serial queue's thread");
            return;
        };
        let ahead = follow_ups.receiver.len();
        follow_ups.waiting.fetch_add(1, Ordering::Relaxed);
        follow_ups.queued.push_back(FollowUp {
            ahead,
            task: Box::new(task),
        });
    }
}

/// Tasks queued from inside tasks, each run once the channel tasks ahead of it have run.
struct FollowUps {
    receiver: Receiver<Job>,
    queued: VecDeque<FollowUp>,
    /// Follow-ups not yet run (read by [`SerialQueue::waiting`]).
    waiting: Arc<AtomicUsize>,
}

struct FollowUp {
    /// Channel tasks still to run before this one.
    ahead: usize,
    task: Task,
}

/// A unit of serial work.
pub type Task = Box<dyn FnOnce(&mut SerialContext) + Send>;

enum Job {
    Run(Task),
    Stop,
}

/// Why a task was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the serial queue is full")]
    Full,
    #[error("the serial queue has stopped")]
    Stopped,
}

/// The queue and its thread.
pub struct SerialQueue {
    sender: Sender<Job>,
    follow_ups_waiting: Arc<AtomicUsize>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl SerialQueue {
    /// Starts the queue's thread with `context`.
    pub fn start(mut context: SerialContext) -> std::io::Result<SerialQueue> {
        let (sender, receiver) = crossbeam_channel::bounded::<Job>(SERIAL_QUEUE_CAPACITY);
        let follow_ups_waiting = Arc::new(AtomicUsize::new(0));
        context.follow_ups = Some(FollowUps {
            receiver: receiver.clone(),
            queued: VecDeque::new(),
            waiting: Arc::clone(&follow_ups_waiting),
        });
        let thread = std::thread::Builder::new()
            .name("confab-serial".into())
            .spawn(move || run_queue(&receiver, &mut context))?;
        Ok(SerialQueue {
            sender,
            follow_ups_waiting,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues `task` behind every task submitted before it.
    pub fn submit(
        &self,
        task: impl FnOnce(&mut SerialContext) + Send + 'static,
    ) -> Result<(), SubmitError> {
        self.sender
            .try_send(Job::Run(Box::new(task)))
            .map_err(|error| match error {
                TrySendError::Full(_) => SubmitError::Full,
                TrySendError::Disconnected(_) => SubmitError::Stopped,
            })
    }

    /// Queues `task`, waiting for a place in the queue if it is full (for threads that may
    /// block; never a worker's).
    pub fn submit_wait(
        &self,
        task: impl FnOnce(&mut SerialContext) + Send + 'static,
    ) -> Result<(), SubmitError> {
        self.sender
            .send(Job::Run(Box::new(task)))
            .map_err(|_| SubmitError::Stopped)
    }

    /// Queues `task` and waits for it to finish (or for a place in the queue).
    pub fn run_blocking<T: Send + 'static>(
        &self,
        task: impl FnOnce(&mut SerialContext) -> T + Send + 'static,
    ) -> Result<T, SubmitError> {
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        let job = Job::Run(Box::new(move |context| {
            let _ = done_tx.send(task(context));
        }));
        self.sender.send(job).map_err(|_| SubmitError::Stopped)?;
        done_rx.recv().map_err(|_| SubmitError::Stopped)
    }

    /// Tasks waiting to run (not counting the one running): what a task submitted now waits
    /// behind.
    pub fn waiting(&self) -> usize {
        self.sender.len() + self.follow_ups_waiting.load(Ordering::Relaxed)
    }

    /// Runs what is queued, then stops the thread.
    pub fn shutdown(&self) {
        let _ = self.sender.send(Job::Stop);
        let thread = self.thread.lock().ok().and_then(|mut thread| thread.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// The queue's thread: each channel task in turn, each follow-up once the channel tasks that
/// were waiting when it was queued have run. On `Stop`, the follow-ups still queued run too.
fn run_queue(receiver: &Receiver<Job>, context: &mut SerialContext) {
    loop {
        while let Some(task) = next_due_follow_up(context) {
            run_guarded(task, context);
        }
        let Ok(job) = receiver.recv() else {
            return;
        };
        for follow_up in follow_ups(context).queued.iter_mut() {
            follow_up.ahead = follow_up.ahead.saturating_sub(1);
        }
        match job {
            Job::Run(task) => run_guarded(task, context),
            Job::Stop => {
                while let Some(follow_up) = follow_ups(context).queued.pop_front() {
                    follow_ups(context).waiting.fetch_sub(1, Ordering::Relaxed);
                    run_guarded(follow_up.task, context);
                }
                return;
            }
        }
    }
}

fn follow_ups(context: &mut SerialContext) -> &mut FollowUps {
    context
        .follow_ups
        .as_mut()
        .expect("the queue's thread sets the follow-ups up before its first task")
}

fn next_due_follow_up(context: &mut SerialContext) -> Option<Task> {
    let follow_ups = follow_ups(context);
    if follow_ups.queued.front()?.ahead > 0 {
        return None;
    }
    let follow_up = follow_ups.queued.pop_front()?;
    follow_ups.waiting.fetch_sub(1, Ordering::Relaxed);
    Some(follow_up.task)
}

/// Runs one task; a panic ends the task, not the queue (the tasks after it still run).
fn run_guarded(task: Task, context: &mut SerialContext) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task(context)));
    if outcome.is_err() {
        tracing::error!("a serial task panicked; the queue goes on with the next task");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn runs_tasks_in_submission_order() {
        let queue = SerialQueue::start(SerialContext::default()).expect("starts");
        let seen = Arc::new(Mutex::new(Vec::new()));
        for index in 0..50 {
            let seen = Arc::clone(&seen);
            queue
                .submit(move |_| seen.lock().expect("lock").push(index))
                .expect("queued");
        }
        queue.shutdown();
        assert_eq!(*seen.lock().expect("lock"), (0..50).collect::<Vec<_>>());
    }
}
