//! Serving configuration: the validated settings a server starts from, and their defaults.
//!
//! The command line (`cli`) fills a [`ServeConfig`]; tests build one directly. Every default is
//! a named constant here, with its unit in its name or doc.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::http1::HeadLimits;

/// Where `confab serve` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Longest wait for a new connection to the upstream, one budget for the whole attempt: the TCP
/// connect to each resolved address tried in turn and, for an `https://` upstream, the TLS
/// handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait from sending a request to receiving the upstream's response head, and between
/// two reads of an upstream response body.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client keep-alive connection may sit idle between requests, and the longest wait
/// between two reads of a request body.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long in-flight requests may take to finish after SIGINT or SIGTERM.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Where confab keeps its state files: the statistics store, the job journal, and the
/// generated default dataset.
pub const DEFAULT_STATE_DIR: &str = "./confab-state";
/// Largest request body accepted (10 MiB); a larger `Content-Length` gets 413 from the head
/// alone, a chunked body gets 413 once it passes the limit while it is buffered, before the
/// upstream is contacted.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
/// Longest time a client may take to send a whole request head: from the connection's opening
/// for its first request, from the first byte for later ones (slowloris).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Slowest request body accepted, in bytes per second, measured over each
/// [`DEFAULT_BODY_RATE_WINDOW`] spent waiting for the client.
pub const DEFAULT_MIN_BODY_RATE: u64 = 1024;
/// The span of client waiting time over which the body rate is measured.
pub const DEFAULT_BODY_RATE_WINDOW: Duration = Duration::from_secs(10);
/// Most client connections open at once in the whole process; further ones are closed as soon
/// as they are accepted.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16 * 1024;
/// Most requests one worker handles at once; further ones get 503 with `Retry-After` at once.
pub const DEFAULT_MAX_INFLIGHT_PER_CORE: usize = 4096;
/// The request line (8 KiB: 414 past it), head size (64 KiB: 431) and header count (100: 431)
/// limits, the constants of the `http1` module.
pub const DEFAULT_HEAD_LIMITS: HeadLimits = HeadLimits::DEFAULT;

/// Which io driver each worker's runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Driver {
    /// io_uring when the kernel offers it, else epoll.
    #[default]
    Auto,
    /// io_uring; startup fails when the kernel does not offer it.
    IoUring,
    /// epoll (monoio's legacy driver).
    Epoll,
}

/// How an io_uring worker's ring runs the kernel's completion work (the part of finishing a
/// socket read or write that runs in the worker's own task context).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum UringTaskWork {
    /// The kernel never interrupts a running worker to finish completions; they are finished the
    /// next time the worker enters the kernel, which it does for every batch of submissions
    /// (`IORING_SETUP_COOP_TASKRUN`, `TASKRUN_FLAG`, `SINGLE_ISSUER`). Falls back to `interrupt`
    /// on kernels older than 6.0.
    #[default]
    Cooperative,
    /// Completions are finished only when the worker waits for them, all in one batch
    /// (`IORING_SETUP_DEFER_TASKRUN`, `SINGLE_ISSUER`; kernel 6.1). Falls back to `interrupt`.
    Deferred,
    /// The kernel's default: a completion that needs the worker's context interrupts it at once.
    Interrupt,
}

/// Everything a server needs to start.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// Worker threads, each with its own runtime and listener.
    pub threads: usize,
    /// The upstream base URL; `None` starts the built-in mock upstream.
    pub upstream: Option<String>,
    /// A PEM file of CA certificates trusted for an `https://` upstream in addition to the
    /// system's roots.
    pub upstream_ca: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub upstream_timeout: Duration,
    pub idle_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Whether to log one line per request (target `confab::access`, level info).
    pub access_log: bool,
    pub state_dir: PathBuf,
    pub data: Option<PathBuf>,
    /// The folder `ingest` job paths are relative to; `None` means the folder holding the
    /// served base dataset.
    pub data_root: Option<PathBuf>,
    /// Threads one analysis job runs on.
    pub job_threads: usize,
    pub driver: Driver,
    /// How io_uring rings run completion work (ignored on epoll).
    pub uring_task_work: UringTaskWork,
    /// Whether worker `i` is pinned to core `i` (modulo the cores available).
    pub pin_workers: bool,
    /// Bearer token of the admin endpoints; `None` disables them.
    pub admin_token: Option<String>,
    /// How often statistics are written to the store.
    pub stats_flush_interval: Duration,
    /// How long per-minute statistics are kept.
    pub stats_retention: Duration,
    /// Whether requests are recorded in the usage statistics (off only to measure its cost).
    pub record_stats: bool,
    /// Largest request body accepted, in bytes.
    pub max_body: u64,
    /// Longest time to receive a whole request head.
    pub header_timeout: Duration,
    /// Slowest request body accepted, in bytes per second of waiting (0: only a window without
    /// any byte cuts the body off).
    pub min_body_rate: u64,
    /// The span of waiting time over which the body rate is measured.
    pub body_rate_window: Duration,
    /// Most client connections open at once in the process.
    pub max_connections: usize,
    /// Most requests in flight on one worker.
    pub max_inflight_per_core: usize,
    /// The request line, head size and header count limits (the last two also bound the
    /// upstream's response heads).
    pub head_limits: HeadLimits,
}

impl ServeConfig {
    /// Settings for tests: an ephemeral loopback port, two workers, the mock upstream, and
    /// timeouts short enough for failures to show quickly.
    pub fn for_tests() -> ServeConfig {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            threads: 2,
            upstream: None,
            upstream_ca: None,
            connect_timeout: Duration::from_secs(1),
            upstream_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
            access_log: false,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            data: None,
            data_root: None,
            job_threads: 2,
            driver: Driver::Auto,
            uring_task_work: UringTaskWork::default(),
            pin_workers: false,
            admin_token: None,
            stats_flush_interval: crate::stats::DEFAULT_FLUSH_INTERVAL,
            stats_retention: crate::stats::DEFAULT_RETENTION,
            record_stats: true,
            max_body: DEFAULT_MAX_BODY_BYTES,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            min_body_rate: DEFAULT_MIN_BODY_RATE,
            body_rate_window: DEFAULT_BODY_RATE_WINDOW,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_inflight_per_core: DEFAULT_MAX_INFLIGHT_PER_CORE,
            head_limits: DEFAULT_HEAD_LIMITS,
        }
    }
}

/// The number of worker threads used when none is configured: one per available core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| cores.get())
}
