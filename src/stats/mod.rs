//! Usage statistics: recorded per worker, merged on one aggregator thread, stored in SQLite,
//! served as Prometheus text and JSON.
//!
//! The request path only touches its own worker's [`WorkerRecorder`] (plain cells, no atomics,
//! no locks). Once a second each worker sends what it recorded to the aggregator thread, which
//! merges every worker's figures, keeps the per-second and per-minute series, feeds the
//! Prometheus registry, answers `/metrics` and `/api/stats` queries, and hands per-minute
//! rollups to the serial queue for the store.

mod aggregate;
mod counters;
mod recorder;
mod render;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};

pub use counters::{method_index, RouteCounters, METHODS};
pub use recorder::{proxy_route_key, RouteKey, Sample, WorkerRecorder};

use crate::serial::SerialQueue;

/// How often each worker sends what it recorded to the aggregator.
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);
/// Default interval between two writes of the rollups to the store.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(2);
/// Default age after which per-minute history is deleted from the store.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How much per-second history `/api/stats` returns.
pub const PER_SECOND_HISTORY: Duration = Duration::from_secs(15 * 60);
/// Most distinct proxied routes tracked per process; later ones are folded into
/// [`OTHER_ROUTE`]. A proxied route is the first segment of the path (`/categories`).
pub const MAX_PROXY_ROUTES: usize = 50;
/// Longest route key kept; longer first segments count as [`OTHER_ROUTE`].
pub const MAX_ROUTE_KEY_BYTES: usize = 64;
/// The route that collects whatever the bounds above leave out.
pub const OTHER_ROUTE: &str = "other";
/// The route names confab's own endpoints are counted under (a fixed, bounded set).
pub const API_ROUTES: [&str; 14] = [
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/dashboard",
    "/api/conversations",
    "/api/conversations/{id}",
    "/api/companies",
    "/api/tags",
    "/api/stats",
    "/api/stats/reset",
    "/api/jobs",
    "/api/jobs/{id}",
    OTHER_ROUTE,
];
/// Messages waiting for the aggregator; a worker whose send finds it full keeps its figures
/// and sends them with the next second's.
pub const AGGREGATOR_QUEUE_CAPACITY: usize = 4096;
/// Longest latency the histograms resolve, in microseconds (larger values are clamped).
pub const MAX_TRACKED_LATENCY_MICROS: u64 = 3_600_000_000;
/// Significant decimal digits of the latency histograms (relative error under 1%).
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 2;

/// Which side of confab a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Forwarded to the upstream.
    Proxy,
    /// Answered by confab itself.
    Api,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Proxy => "proxy",
            Scope::Api => "api",
        }
    }

    pub fn from_name(name: &str) -> Option<Scope> {
        match name {
            "proxy" => Some(Scope::Proxy),
            "api" => Some(Scope::Api),
            _ => None,
        }
    }
}

/// Kinds of upstream failure, in the order of the counters that record them.
pub const UPSTREAM_ERROR_KINDS: [&str; 8] = [
    "refused",
    "unreachable",
    "reset",
    "malformed",
    "connect_timeout",
    "timeout",
    "certificate_untrusted",
    "tls_failed",
];

/// Counts of upstream failures, indexed like [`UPSTREAM_ERROR_KINDS`].
pub type UpstreamErrors = [u64; UPSTREAM_ERROR_KINDS.len()];

/// The index in [`UPSTREAM_ERROR_KINDS`] of a problem kind, if it is an upstream failure.
pub fn upstream_error_index(kind: crate::problem::ProblemKind) -> Option<usize> {
    use crate::problem::ProblemKind;
    match kind {
        ProblemKind::UpstreamRefused => Some(0),
        ProblemKind::UpstreamUnreachable => Some(1),
        ProblemKind::UpstreamReset => Some(2),
        ProblemKind::UpstreamMalformed => Some(3),
        ProblemKind::UpstreamConnectTimeout => Some(4),
        ProblemKind::UpstreamTimeout => Some(5),
        ProblemKind::UpstreamCertificateUntrusted => Some(6),
        ProblemKind::UpstreamTlsFailed => Some(7),
        _ => None,
    }
}

/// Whether a status counts as a success: anything below 500.
pub fn is_success(status: u16) -> bool {
    status < 500
}

/// Settings of the statistics subsystem.
#[derive(Debug, Clone)]
pub struct StatsConfig {
    /// Folder of the store; `None` keeps statistics in memory only.
    pub state_dir: Option<PathBuf>,
    pub flush_interval: Duration,
    pub retention: Duration,
}

/// What one worker recorded during one publish interval.
#[derive(Debug, Default)]
pub struct Delta {
    /// The second (Unix time) the interval ended in.
    pub second: u64,
    pub routes: Vec<(Scope, String, RouteCounters)>,
    pub upstream_errors: UpstreamErrors,
}

/// A question for the aggregator, answered on `reply`.
#[derive(Debug)]
pub enum Query {
    /// The `/api/stats` document for an optional window (Unix seconds, inclusive).
    Json {
        from: Option<u64>,
        to: Option<u64>,
        reply: futures_channel::oneshot::Sender<String>,
    },
    /// The `/metrics` text.
    Prometheus {
        reply: futures_channel::oneshot::Sender<String>,
    },
    /// Clear every figure; answered once the store is cleared too.
    Reset {
        reply: futures_channel::oneshot::Sender<Result<(), String>>,
    },
}

pub(crate) enum Message {
    Delta(Delta),
    Query(Query),
    /// Flush everything to the store, then acknowledge.
    FinalFlush(crossbeam_channel::Sender<()>),
}

/// The statistics subsystem: the aggregator thread and the handle workers record through.
pub struct Stats {
    sender: Sender<Message>,
    thread: Option<JoinHandle<()>>,
}

/// A cheap, cloneable way to reach the aggregator from any thread.
#[derive(Clone)]
pub struct StatsHandle {
    sender: Sender<Message>,
}

impl Stats {
    /// Loads stored figures (if any) and starts the aggregator thread.
    pub fn start(config: StatsConfig, serial: Arc<SerialQueue>) -> std::io::Result<Stats> {
        let (sender, receiver) = crossbeam_channel::bounded(AGGREGATOR_QUEUE_CAPACITY);
        let aggregator = aggregate::Aggregator::open(config, serial);
        let thread = std::thread::Builder::new()
            .name("confab-stats".into())
            .spawn(move || run_aggregator(aggregator, receiver))?;
        Ok(Stats {
            sender,
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> StatsHandle {
        StatsHandle {
            sender: self.sender.clone(),
        }
    }

    /// Writes everything to the store and stops the aggregator. Call after every worker has
    /// published its last figures. Fails if the aggregator thread panicked.
    pub fn shutdown(mut self) -> std::io::Result<()> {
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        if self.sender.send(Message::FinalFlush(done_tx)).is_ok() {
            let _ = done_rx.recv();
        }
        match self.thread.take().map(|thread| thread.join()) {
            Some(Err(_)) => Err(std::io::Error::other("the statistics thread panicked")),
            _ => Ok(()),
        }
    }
}

impl StatsHandle {
    pub(crate) fn try_send(&self, message: Message) -> Result<(), Message> {
        self.sender
            .try_send(message)
            .map_err(|error| error.into_inner())
    }

    /// Asks the aggregator a question without blocking; `false` when it is gone or busy.
    pub fn ask(&self, query: Query) -> bool {
        self.sender.try_send(Message::Query(query)).is_ok()
    }
}

fn run_aggregator(mut aggregator: aggregate::Aggregator, receiver: Receiver<Message>) {
    let ticker = crossbeam_channel::tick(Duration::from_millis(250));
    loop {
        crossbeam_channel::select! {
            recv(receiver) -> message => match message {
                Ok(Message::Delta(delta)) => aggregator.merge(delta),
                Ok(Message::Query(query)) => aggregator.answer(query),
                Ok(Message::FinalFlush(done)) => {
                    aggregator.flush_now(true);
                    let _ = done.send(());
                    return;
                }
                Err(_) => return,
            },
            recv(ticker) -> _ => aggregator.tick(),
        }
    }
}

/// Now, as Unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Formats Unix seconds as RFC 3339 (`2026-12-03T17:50:00Z`).
pub fn rfc3339(unix_seconds: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix_seconds)).to_string()
}

/// Parses an RFC 3339 time (any offset) into Unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let time =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(time.unix_timestamp()).ok()
}

#[cfg(test)]
mod tests;
