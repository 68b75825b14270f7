//! The serial queue: one dedicated thread that runs, in submission order and one at a time,
//! every task that must not run concurrently with another: dataset ingests and reloads (build
//! a new index, then publish it), statistics flushes to the store, and job journal writes. It
//! is fed by a bounded channel; a full queue refuses new tasks instead of growing.

use std::path::PathBuf;
use std::sync::Mutex;
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, TrySendError};

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
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl SerialQueue {
    /// Starts the queue's thread with `context`.
    pub fn start(mut context: SerialContext) -> std::io::Result<SerialQueue> {
        let (sender, receiver) = crossbeam_channel::bounded::<Job>(SERIAL_QUEUE_CAPACITY);
        let thread = std::thread::Builder::new()
            .name("confab-serial".into())
            .spawn(move || {
                for job in receiver {
                    match job {
                        Job::Run(task) => run_guarded(task, &mut context),
                        Job::Stop => return,
                    }
                }
            })?;
        Ok(SerialQueue {
            sender,
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

    /// Runs what is queued, then stops the thread.
    pub fn shutdown(&self) {
        let _ = self.sender.send(Job::Stop);
        let thread = self.thread.lock().ok().and_then(|mut thread| thread.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
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
