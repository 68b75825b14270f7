//! Jobs: analysis work run in parallel over every core, and dataset changes run one at a
//! time on the serial queue, all journaled so that nothing acknowledged is lost.
//!
//! Every change of a job's status happens on the serial queue's thread, journal first: the
//! new state is written (and synced), and only then does the registry that clients read show
//! it. So whatever a client has seen survives a crash.
//!
//! - A submission is a serial task: it allocates the job's id, journals the job and then
//!   answers; ids therefore follow the order in which jobs run.
//! - Serial kinds (`ingest`, `reload`) get their turn as a follow-up queued by that task, so
//!   they keep submission order with every other serial task; each runs on the serial thread.
//! - Parallel kinds go to one runner thread; it runs one job at a time, each split over
//!   `--job-threads` threads (see [`runner`]). It waits for the serial queue to journal the
//!   job as running before it starts, and hands the final state to the serial queue.
//! - On start, finished jobs are loaded with their results, queued jobs are queued again in
//!   id order, and a job that was running is marked failed as interrupted (not re-run: an
//!   operator decides whether to submit it again).

pub mod catalog;
pub mod journal;
pub mod runner;
pub mod spec;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use futures_channel::oneshot;
use serde_json::{json, Value};

use crate::conversations::{CompanyFilter, KeywordStats, LoadError, TagStats, TranscriptSummary};
use crate::serial::{SerialContext, SerialQueue, SubmitError};
use crate::stats::{rfc3339, unix_now};
use catalog::Catalog;
use journal::{Journal, JournalError, StoredJob};
use runner::{run_analysis, Interrupted};
pub use spec::JobSpec;

/// Parallel jobs that may wait for the runner; more are refused with 503.
pub const MAX_QUEUED_PARALLEL_JOBS: usize = 64;
/// Serial jobs (ingest, reload) that may wait for their turn; more are refused with 503.
pub const MAX_QUEUED_SERIAL_JOBS: usize = 64;
/// Finished jobs kept (in memory and in the journal); the oldest are forgotten beyond it.
pub const MAX_RETAINED_JOBS: usize = 1_000;
/// Bytes of results of finished jobs kept; the oldest jobs are forgotten beyond it.
pub const MAX_RETAINED_RESULT_BYTES: usize = 256 << 20;
/// Largest result one job may produce; a larger one fails the job (narrow it with a filter).
pub const MAX_RESULT_BYTES: usize = 32 << 20;
/// Seconds a client is asked to wait (`Retry-After`) when the queues are full.
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn from_name(name: &str) -> Option<JobStatus> {
        JobStatus::ALL
            .into_iter()
            .find(|status| status.name() == name)
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// One job as clients see it (progress aside).
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub id: u64,
    pub spec: JobSpec,
    pub status: JobStatus,
    /// Unix seconds.
    pub created_at: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    /// The result, as JSON text.
    pub result: Option<Arc<str>>,
    pub error: Option<String>,
}

/// What the thread running a job shares with the rest: cancellation and progress.
#[derive(Debug, Default)]
pub struct JobControl {
    cancel: AtomicBool,
    stopping: Arc<AtomicBool>,
    done: AtomicU64,
    total: AtomicU64,
}

impl JobControl {
    fn new(stopping: &Arc<AtomicBool>) -> JobControl {
        JobControl {
            stopping: Arc::clone(stopping),
            ..JobControl::default()
        }
    }

    /// Whether the job should end now: cancelled, or confab is stopping.
    pub fn should_stop(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.stopping.load(Ordering::Relaxed)
    }

    pub fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }

    /// Work done so far, in the units of [`set_total`](Self::set_total).
    pub fn set_done(&self, done: u64) {
        self.done.store(done, Ordering::Relaxed);
    }

    /// Asks the job to stop at its next checkpoint.
    fn request_cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    fn cancel_requested(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn progress(&self) -> f64 {
        let total = self.total.load(Ordering::Relaxed);
        match total {
            0 => 0.0,
            total => (self.done.load(Ordering::Relaxed) as f64 / total as f64).min(1.0),
        }
    }
}

struct Entry {
    record: JobRecord,
    control: Arc<JobControl>,
}

/// A job with its progress, for rendering.
#[derive(Debug, Clone)]
pub struct JobView {
    pub record: JobRecord,
    pub progress: f64,
    pub cancel_requested: bool,
}

impl JobView {
    /// The JSON clients see, without `result` (as listings show it).
    pub fn to_json(&self) -> Value {
        let record = &self.record;
        let time = |at: Option<u64>| at.map(rfc3339);
        json!({
            "id": record.id,
            "kind": record.spec.kind(),
            "params": record.spec.params(),
            "status": record.status.name(),
            "progress": self.progress,
            "cancel_requested": self.cancel_requested,
            "created_at": rfc3339(record.created_at),
            "started_at": time(record.started_at),
            "finished_at": time(record.finished_at),
            "error": record.error,
        })
    }

    /// The JSON text clients see with `result` last; the stored result text is copied in as
    /// it is, not parsed again (results can be megabytes).
    pub fn render_with_result(&self) -> String {
        let mut text = self.to_json().to_string();
        text.pop(); // The closing brace.
        text.push_str(",\"result\":");
        text.push_str(self.record.result.as_deref().unwrap_or("null"));
        text.push('}');
        text
    }
}

/// Why a submission or cancellation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("the job queues are full; retry shortly")]
    QueueFull,
    #[error("confab is stopping")]
    Stopping,
    #[error("the job could not be journaled: {0}")]
    Journal(String),
    #[error("jobs are unavailable: {0}")]
    Unavailable(String),
    #[error("no job has the id {0}")]
    NotFound(u64),
    #[error("job {id} has already {status}")]
    Finished { id: u64, status: &'static str },
}

/// Why the job service could not start.
#[derive(Debug, thiserror::Error)]
pub enum JobsStartError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("the job runner thread could not start: {0}")]
    Thread(std::io::Error),
    #[error("the serial queue stopped")]
    SerialStopped,
}

/// What a cancellation did.
#[derive(Debug, Clone)]
pub enum Cancelled {
    /// The job had not started; it never will.
    Now(JobView),
    /// The job is running; it stops at its next checkpoint.
    Requested(JobView),
}

/// A page of the job list.
#[derive(Debug, Clone)]
pub struct JobPage {
    pub jobs: Vec<JobView>,
    pub total: usize,
}

/// The job service shared by every worker.
pub struct Jobs {
    registry: Mutex<BTreeMap<u64, Entry>>,
    /// The id of the next admitted job; allocated on the serial queue's thread only.
    next_id: AtomicU64,
    serial: Arc<SerialQueue>,
    catalog: Arc<Catalog>,
    parallel: Sender<u64>,
    /// Serial jobs journaled as queued whose turn has not come yet.
    serial_jobs_waiting: AtomicUsize,
    runner: Mutex<Option<JoinHandle<()>>>,
    stopping: Arc<AtomicBool>,
    threads: usize,
    /// Why jobs cannot be taken (the journal could not be opened), if so.
    unavailable: Option<String>,
}

/// The index an ingest or reload built, the datasets it holds (the base first), and the
/// job's result.
type Built = (
    crate::conversations::ConversationIndex,
    Vec<std::path::PathBuf>,
    Value,
);

/// The message of a job that was running when confab stopped.
const INTERRUPTED: &str = "interrupted: confab stopped while the job ran";
/// The message of a job cancelled while it ran.
const CANCELLED_WHILE_RUNNING: &str = "cancelled while running";

impl Jobs {
    /// Restores the journal's jobs and starts the runner. The journal is then handed to the
    /// serial queue through `install`, which must run before any job task.
    ///
    /// Without a journal (`Err` with the reason it could not be opened), confab serves on but
    /// refuses submissions with that reason: a job it could not journal could be lost.
    pub fn start(
        journal: Result<Journal, String>,
        serial: Arc<SerialQueue>,
        catalog: Arc<Catalog>,
        threads: usize,
    ) -> Result<Arc<Jobs>, JobsStartError> {
        let (parallel, queue) = crossbeam_channel::bounded(MAX_QUEUED_PARALLEL_JOBS);
        let stopping = Arc::new(AtomicBool::new(false));
        let last_id = match &journal {
            Ok(journal) => journal.last_id()?,
            Err(_) => 0,
        };
        let jobs = Arc::new(Jobs {
            registry: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(last_id + 1),
            serial,
            catalog,
            parallel,
            serial_jobs_waiting: AtomicUsize::new(0),
            runner: Mutex::new(None),
            stopping,
            threads: threads.max(1),
            unavailable: journal.as_ref().err().cloned(),
        });
        let requeue = match journal {
            Ok(mut journal) => {
                let requeue = jobs.restore(&mut journal)?;
                jobs.serial
                    .submit_wait(move |context| context.jobs_journal = Some(journal))
                    .map_err(|_| JobsStartError::SerialStopped)?;
                requeue
            }
            Err(_) => Vec::new(),
        };
        let runner = Arc::clone(&jobs);
        let thread = std::thread::Builder::new()
            .name("confab-jobs".into())
            .spawn(move || runner.run_parallel_jobs(queue))
            .map_err(JobsStartError::Thread)?;
        *jobs.lock_runner() = Some(thread);
        jobs.requeue(requeue);
        Ok(jobs)
    }

    fn registry(&self) -> MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_runner(&self) -> MutexGuard<'_, Option<JoinHandle<()>>> {
        self.runner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Tasks waiting on the serial queue: what a submission now waits behind.
    pub fn serial_tasks_waiting(&self) -> usize {
        self.serial.waiting()
    }

    /// Loads every journaled job; marks interrupted ones failed. Returns the queued ones.
    fn restore(&self, journal: &mut Journal) -> Result<Vec<u64>, JournalError> {
        let mut queued = Vec::new();
        let mut registry = self.registry();
        for stored in journal.jobs()? {
            let Some(mut record) = self.record_of(stored) else {
                continue;
            };
            if record.status == JobStatus::Running {
                record.status = JobStatus::Failed;
                record.finished_at = Some(unix_now());
                record.error = Some(INTERRUPTED.into());
                journal.update(&record)?;
            }
            if record.status == JobStatus::Queued {
                queued.push(record.id);
            }
            let control = Arc::new(JobControl::new(&self.stopping));
            if record.status == JobStatus::Succeeded {
                control.set_total(1);
                control.set_done(1);
            }
            registry.insert(record.id, Entry { record, control });
        }
        if !queued.is_empty() {
            tracing::info!(
                jobs = queued.len(),
                "queueing jobs that were waiting when confab stopped"
            );
        }
        Ok(queued)
    }

    /// A journaled job as a record; one whose parameters no longer parse (an ingest whose
    /// folder is gone) is kept, failed, with the reason.
    fn record_of(&self, stored: StoredJob) -> Option<JobRecord> {
        let params: Value = serde_json::from_str(&stored.params).unwrap_or(Value::Null);
        let parsed = JobSpec::parse(&stored.kind, &params, self.catalog.data_root());
        let (spec, status, error) = match parsed {
            Ok(spec) => (spec, stored.status, stored.error),
            Err(_) if stored.status.is_finished() => (
                JobSpec::unparsed(&stored.kind, &params)?,
                stored.status,
                stored.error,
            ),
            Err(reason) => (
                JobSpec::unparsed(&stored.kind, &params)?,
                JobStatus::Failed,
                Some(format!("cannot run after a restart: {reason}")),
            ),
        };
        Some(JobRecord {
            id: stored.id,
            spec,
            status,
            created_at: stored.created_at,
            started_at: stored.started_at,
            finished_at: stored.finished_at.or(status.is_finished().then(unix_now)),
            result: stored.result.map(Arc::from),
            error,
        })
    }

    /// Queues restored jobs again, in id order (blocking until each queue has room).
    fn requeue(self: &Arc<Self>, ids: Vec<u64>) {
        for id in ids {
            let serial = self
                .registry()
                .get(&id)
                .map(|entry| entry.record.spec.is_serial());
            match serial {
                Some(true) => {
                    self.serial_jobs_waiting.fetch_add(1, Ordering::Relaxed);
                    let jobs = Arc::clone(self);
                    let _ = self
                        .serial
                        .submit_wait(move |context| jobs.run_serial(context, id));
                }
                Some(false) => {
                    let _ = self.parallel.send(id);
                }
                None => {}
            }
        }
    }

    /// Queues a new job. The answer arrives once the job is journaled (after whatever serial
    /// task runs before it).
    pub fn submit(
        self: &Arc<Self>,
        spec: JobSpec,
    ) -> Result<oneshot::Receiver<Result<JobView, JobError>>, JobError> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err(JobError::Stopping);
        }
        if let Some(reason) = &self.unavailable {
            return Err(JobError::Unavailable(reason.clone()));
        }
        let (reply, answer) = oneshot::channel();
        let jobs = Arc::clone(self);
        let task = move |context: &mut SerialContext| {
            let _ = reply.send(jobs.admit(context, spec));
        };
        self.serial.submit(task).map_err(refusal)?;
        Ok(answer)
    }

    /// On the serial thread: gives a new job its id, journals it, and only then registers
    /// it and queues it (a serial job as a follow-up, a parallel one on the runner's queue).
    /// A job refused for a full queue is never journaled.
    fn admit(
        self: &Arc<Self>,
        context: &mut SerialContext,
        spec: JobSpec,
    ) -> Result<JobView, JobError> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err(JobError::Stopping);
        }
        let serial = spec.is_serial();
        let room = match serial {
            true => self.serial_jobs_waiting.load(Ordering::Relaxed) < MAX_QUEUED_SERIAL_JOBS,
            // Only this thread queues new parallel jobs, so the room seen here stays.
            false => !self.parallel.is_full(),
        };
        if !room {
            return Err(JobError::QueueFull);
        }
        let id = self.next_id.load(Ordering::Relaxed);
        let record = JobRecord {
            id,
            spec,
            status: JobStatus::Queued,
            created_at: unix_now(),
            started_at: None,
            finished_at: None,
            result: None,
            error: None,
        };
        if let Err(error) = journal(context).insert(&record) {
            tracing::error!(%error, "a job could not be journaled");
            return Err(JobError::Journal(error.to_string()));
        }
        self.next_id.store(id + 1, Ordering::Relaxed);
        let control = Arc::new(JobControl::new(&self.stopping));
        let view = JobView {
            record: record.clone(),
            progress: 0.0,
            cancel_requested: false,
        };
        self.registry().insert(id, Entry { record, control });
        if serial {
            self.serial_jobs_waiting.fetch_add(1, Ordering::Relaxed);
            let jobs = Arc::clone(self);
            context.follow_up(move |context| jobs.run_serial(context, id));
        } else if let Err(error) = self.parallel.try_send(id) {
            // The runner's queue filled after all (a stop wakes the runner through it): undo.
            self.registry().remove(&id);
            if let Err(error) = journal(context).remove(&[id]) {
                tracing::error!(%error, id, "a refused job could not be removed from the journal");
            }
            return Err(match error {
                TrySendError::Full(_) => JobError::QueueFull,
                TrySendError::Disconnected(_) => JobError::Stopping,
            });
        }
        Ok(view)
    }

    /// On the serial thread: runs an ingest or reload job when its turn comes.
    fn run_serial(&self, context: &mut SerialContext, id: u64) {
        self.serial_jobs_waiting.fetch_sub(1, Ordering::Relaxed);
        let Some((spec, control)) = self.begin(context, id) else {
            return;
        };
        let build = || self.change_datasets(&spec, &control);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(build)) {
            Ok(Ok(built)) => self.publish(context, id, &spec, built),
            Ok(Err(error)) => {
                let (status, message) = stopped_status(&control, &error);
                self.finish(context, id, status, None, Some(message));
            }
            Err(_) => {
                let message = "the job failed unexpectedly (see the log)".to_owned();
                self.finish(context, id, JobStatus::Failed, None, Some(message));
            }
        }
        self.prune(context);
    }

    /// On the serial thread: journals and shows that a queued job starts, and returns what
    /// to run. A job cancelled while queued is journaled and shown cancelled instead; while
    /// confab stops, the job stays queued for the next start.
    fn begin(&self, context: &mut SerialContext, id: u64) -> Option<(JobSpec, Arc<JobControl>)> {
        let (mut record, control) = {
            let registry = self.registry();
            let entry = registry.get(&id)?;
            (entry.record.clone(), Arc::clone(&entry.control))
        };
        if record.status != JobStatus::Queued || self.stopping.load(Ordering::Relaxed) {
            return None;
        }
        if control.cancel_requested() {
            record.status = JobStatus::Cancelled;
            record.finished_at = Some(unix_now());
            let _ = self.commit(context, record);
            return None;
        }
        record.status = JobStatus::Running;
        record.started_at = Some(unix_now());
        let spec = record.spec.clone();
        self.commit(context, record).ok()?;
        Some((spec, control))
    }

    /// On the serial thread: journals `record`, then shows it. A record the journal refused
    /// is not shown; the job is shown failed with the journal's error instead (the journal
    /// keeps its previous state, which a restart resumes from).
    fn commit(&self, context: &mut SerialContext, record: JobRecord) -> Result<(), JobError> {
        let written = journal(context).update(&record);
        let mut registry = self.registry();
        let Some(entry) = registry.get_mut(&record.id) else {
            return Ok(());
        };
        match written {
            Ok(()) => {
                if record.status == JobStatus::Succeeded {
                    entry.control.set_total(1);
                    entry.control.set_done(1);
                }
                entry.record = record;
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, id = record.id, "a job's state could not be journaled");
                entry.record.status = JobStatus::Failed;
                entry.record.finished_at = Some(unix_now());
                entry.record.error = Some(format!("the job could not be journaled: {error}"));
                Err(JobError::Journal(error.to_string()))
            }
        }
    }

    /// On the serial thread: journals and shows a job's final state. A result over
    /// [`MAX_RESULT_BYTES`] fails the job instead.
    fn finish(
        &self,
        context: &mut SerialContext,
        id: u64,
        status: JobStatus,
        result: Option<Value>,
        error: Option<String>,
    ) {
        let Some(mut record) = self.view(id).map(|view| view.record) else {
            return;
        };
        let result = result.map(|value| value.to_string());
        let (status, result, error) = match result {
            Some(text) if text.len() > MAX_RESULT_BYTES => (
                JobStatus::Failed,
                None,
                Some(format!(
                    "the result ({} bytes) exceeds the {MAX_RESULT_BYTES}-byte limit; narrow the job with params.company",
                    text.len()
                )),
            ),
            result => (status, result, error),
        };
        record.status = status;
        record.finished_at = Some(unix_now());
        record.result = result.map(Arc::from);
        record.error = error;
        let _ = self.commit(context, record);
    }

    /// On the serial thread: journals a successful ingest or reload (with the new dataset
    /// list, in one transaction), then publishes the new index, then shows the job succeeded:
    /// a client that sees it succeeded queries the new data, and a crash after the journal
    /// write serves it after the restart.
    fn publish(&self, context: &mut SerialContext, id: u64, spec: &JobSpec, built: Built) {
        let (index, datasets, summary) = built;
        let Some(mut record) = self.view(id).map(|view| view.record) else {
            return;
        };
        record.status = JobStatus::Succeeded;
        record.finished_at = Some(unix_now());
        record.result = Some(Arc::from(summary.to_string()));
        let journaled = match (spec, datasets.last()) {
            (JobSpec::Ingest { .. }, Some(added)) => journal(context).add_dataset(&record, added),
            _ => journal(context).update(&record),
        };
        match journaled {
            Ok(()) => {
                self.catalog.publish(index, datasets);
                if let Some(entry) = self.registry().get_mut(&id) {
                    entry.control.set_total(1);
                    entry.control.set_done(1);
                    entry.record = record;
                }
            }
            Err(error) => {
                let message = format!("the new datasets could not be journaled: {error}");
                self.finish(context, id, JobStatus::Failed, None, Some(message));
            }
        }
    }

    /// Builds the index an ingest or reload asks for, with progress and cancellation. An
    /// ingest's path is resolved again first: it may have changed since the submission.
    fn change_datasets(&self, spec: &JobSpec, control: &JobControl) -> Result<Built, LoadError> {
        let extra = match spec {
            JobSpec::Ingest { path, .. } => {
                let resolved = self.resolve_again(path)?;
                if self.catalog.serves(&resolved) {
                    return Err(LoadError::AlreadyServed { path: path.into() });
                }
                Some(resolved)
            }
            _ => None,
        };
        let (index, datasets) = self.catalog.build(extra.as_deref(), control)?;
        let summary = json!({
            "datasets": datasets.iter().map(|path| path.display().to_string()).collect::<Vec<_>>(),
            "conversations": index.len(),
            "companies": index.stats().companies,
            "tags": index.stats().tags,
        });
        Ok((index, datasets, summary))
    }

    /// The canonical path an ingest's `path` names now, which must still lie in the data root.
    fn resolve_again(&self, path: &str) -> Result<std::path::PathBuf, LoadError> {
        let root = self.catalog.data_root();
        let named = root.join(path);
        let resolved = named.canonicalize().map_err(|source| LoadError::Io {
            path: named.clone(),
            source,
        })?;
        match resolved.starts_with(root) {
            true => Ok(resolved),
            false => Err(LoadError::OutsideRoot { path: named }),
        }
    }

    /// Forgets the oldest finished jobs beyond the retention limits.
    fn prune(&self, context: &mut SerialContext) {
        let removed = {
            let mut registry = self.registry();
            let finished: Vec<(u64, usize)> = registry
                .values()
                .filter(|entry| entry.record.status.is_finished())
                .map(|entry| {
                    (
                        entry.record.id,
                        entry.record.result.as_deref().map_or(0, str::len),
                    )
                })
                .collect();
            let mut count = finished.len();
            let mut bytes: usize = finished.iter().map(|(_, bytes)| bytes).sum();
            let mut removed = Vec::new();
            for (id, size) in finished {
                if count <= MAX_RETAINED_JOBS && bytes <= MAX_RETAINED_RESULT_BYTES {
                    break;
                }
                registry.remove(&id);
                removed.push(id);
                count -= 1;
                bytes -= size;
            }
            removed
        };
        if !removed.is_empty() {
            if let Err(error) = journal(context).remove(&removed) {
                tracing::warn!(%error, "old jobs could not be removed from the journal");
            }
        }
    }

    /// The runner thread: one parallel job at a time, in submission order. Each starts once
    /// the serial queue has journaled it as running; its final state goes to the serial queue
    /// to be journaled and shown.
    fn run_parallel_jobs(self: Arc<Self>, queue: Receiver<u64>) {
        for id in queue {
            if self.stopping.load(Ordering::Relaxed) {
                return;
            }
            let jobs = Arc::clone(&self);
            let started = self
                .serial
                .run_blocking(move |context| jobs.begin(context, id));
            let Ok(Some((spec, control))) = started else {
                continue;
            };
            let (status, result, error) = match self.analyse(&spec, &control) {
                Ok(result) => (JobStatus::Succeeded, Some(result), None),
                Err(Interrupted::Stopped) if control.cancel_requested() => (
                    JobStatus::Cancelled,
                    None,
                    Some(CANCELLED_WHILE_RUNNING.to_owned()),
                ),
                Err(Interrupted::Stopped) => {
                    (JobStatus::Failed, None, Some(INTERRUPTED.to_owned()))
                }
                Err(Interrupted::Panicked) => (
                    JobStatus::Failed,
                    None,
                    Some("the analysis failed unexpectedly".to_owned()),
                ),
            };
            let jobs = Arc::clone(&self);
            let queued = self.serial.submit_wait(move |context| {
                jobs.finish(context, id, status, result, error);
                jobs.prune(context);
            });
            if queued.is_err() {
                tracing::warn!(
                    id,
                    "the serial queue stopped before a job's end was journaled"
                );
            }
        }
    }

    /// Runs one analysis over the current snapshot.
    fn analyse(&self, spec: &JobSpec, control: &JobControl) -> Result<Value, Interrupted> {
        let index = self.catalog.current();
        let company = |key: &Option<String>| CompanyFilter::resolve(&index, key.as_deref());
        match spec {
            JobSpec::TagStats { company: key } => {
                let analysis = TagStats {
                    filter: company(key),
                };
                run_analysis(&index, &analysis, self.threads, control)
            }
            JobSpec::KeywordStats {
                words,
                company: key,
            } => {
                let analysis = KeywordStats {
                    words: words.clone(),
                    filter: company(key),
                };
                run_analysis(&index, &analysis, self.threads, control)
            }
            JobSpec::TranscriptSummary { company: key } => {
                let analysis = TranscriptSummary {
                    filter: company(key),
                };
                run_analysis(&index, &analysis, self.threads, control)
            }
            JobSpec::Ingest { .. } | JobSpec::Reload => Err(Interrupted::Panicked),
        }
    }

    /// One job with its progress.
    pub fn view(&self, id: u64) -> Option<JobView> {
        self.registry().get(&id).map(view_of)
    }

    /// A page of jobs, newest first, optionally of one status.
    pub fn list(&self, status: Option<JobStatus>, offset: usize, limit: usize) -> JobPage {
        let registry = self.registry();
        let matching = registry
            .values()
            .rev()
            .filter(|entry| status.is_none_or(|status| entry.record.status == status));
        let total = matching.clone().count();
        let jobs = matching.skip(offset).take(limit).map(view_of).collect();
        JobPage { jobs, total }
    }

    /// Cancels a job. A running one is asked to stop at its next checkpoint, answered at once.
    /// A queued one is cancelled by a serial task that journals it first; the answer arrives
    /// once it is journaled (after whatever serial task runs before it).
    pub fn cancel(
        self: &Arc<Self>,
        id: u64,
    ) -> Result<oneshot::Receiver<Result<Cancelled, JobError>>, JobError> {
        let (reply, answer) = oneshot::channel();
        let control = {
            let registry = self.registry();
            let entry = registry.get(&id).ok_or(JobError::NotFound(id))?;
            if entry.record.status.is_finished() {
                return Err(JobError::Finished {
                    id,
                    status: entry.record.status.name(),
                });
            }
            if entry.record.status == JobStatus::Running {
                entry.control.request_cancel();
                let _ = reply.send(Ok(Cancelled::Requested(view_of(entry))));
                return Ok(answer);
            }
            Arc::clone(&entry.control)
        };
        let jobs = Arc::clone(self);
        let task = move |context: &mut SerialContext| {
            let _ = reply.send(jobs.cancel_queued(context, id));
        };
        self.serial.submit(task).map_err(refusal)?;
        // From here the job is skipped if its turn comes before the task above.
        control.request_cancel();
        Ok(answer)
    }

    /// On the serial thread: journals a queued job as cancelled, then shows it so.
    fn cancel_queued(&self, context: &mut SerialContext, id: u64) -> Result<Cancelled, JobError> {
        let (mut record, control) = {
            let registry = self.registry();
            let entry = registry.get(&id).ok_or(JobError::NotFound(id))?;
            (entry.record.clone(), Arc::clone(&entry.control))
        };
        match record.status {
            JobStatus::Queued => {
                record.status = JobStatus::Cancelled;
                record.finished_at = Some(unix_now());
                self.commit(context, record)?;
            }
            JobStatus::Running => {
                control.request_cancel();
                let view = self.view(id).ok_or(JobError::NotFound(id))?;
                return Ok(Cancelled::Requested(view));
            }
            JobStatus::Cancelled => {}
            status => {
                return Err(JobError::Finished {
                    id,
                    status: status.name(),
                })
            }
        }
        self.view(id)
            .map(Cancelled::Now)
            .ok_or(JobError::NotFound(id))
    }

    /// Stops taking jobs, interrupts running ones at their next checkpoint and joins the
    /// runner. Queued jobs stay queued in the journal and run after the next start. Fails if
    /// the runner thread panicked.
    pub fn shutdown(&self) -> std::io::Result<()> {
        self.stopping.store(true, Ordering::Relaxed);
        // Wakes an idle runner; a full queue wakes it anyway. No job has the id 0.
        let _ = self.parallel.try_send(0);
        let runner = self.lock_runner().take();
        match runner.map(|thread| thread.join()) {
            Some(Err(_)) => Err(std::io::Error::other("the job runner thread panicked")),
            _ => Ok(()),
        }
    }
}

/// The status and message of a serial job whose work ended early.
fn stopped_status(control: &JobControl, error: &LoadError) -> (JobStatus, String) {
    match error {
        LoadError::Stopped if control.cancel_requested() => {
            (JobStatus::Cancelled, CANCELLED_WHILE_RUNNING.into())
        }
        LoadError::Stopped => (JobStatus::Failed, INTERRUPTED.into()),
        error => (JobStatus::Failed, error.to_string()),
    }
}

fn refusal(error: SubmitError) -> JobError {
    match error {
        SubmitError::Full => JobError::QueueFull,
        SubmitError::Stopped => JobError::Stopping,
    }
}

fn view_of(entry: &Entry) -> JobView {
    JobView {
        progress: match entry.record.status {
            JobStatus::Succeeded => 1.0,
            _ => entry.control.progress(),
        },
        cancel_requested: entry.control.cancel_requested(),
        record: entry.record.clone(),
    }
}

fn journal(context: &mut SerialContext) -> &mut Journal {
    context
        .jobs_journal
        .as_mut()
        .expect("the job journal is installed before any job task")
}

#[cfg(test)]
mod tests;
