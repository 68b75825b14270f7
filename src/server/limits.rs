//! The limits that keep one client, or many, from taking a worker down: the process-wide
//! connection cap, the per-worker in-flight request cap, the pace a request body must keep,
//! and the bounded "lingering close" after an error answer.
//!
//! Only the connection cap is shared between workers (one atomic, touched when a connection is
//! accepted and when it closes, never per request). Everything per request is a `Cell` on the
//! worker's own thread.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `Retry-After` (seconds) of the 503 a request gets when its worker is overloaded: long enough
/// for a burst to pass, short enough that well-behaved clients come back soon.
pub const OVERLOAD_RETRY_AFTER_SECONDS: u32 = 1;
/// How long a connection closing after an error answer keeps reading (and discarding) what the
/// client still sends, so that the close does not turn into a reset that destroys the answer
/// before the client reads it (nginx's "lingering close").
pub const LINGERING_CLOSE_TIME: Duration = Duration::from_secs(2);
/// Most bytes discarded during a lingering close.
pub const LINGERING_CLOSE_BYTES: u64 = 1024 * 1024;
/// How long a connection that is idle between requests when draining starts still waits for a
/// request already on its way (sent before the signal, not yet read), before it closes.
pub const DRAIN_IDLE_READ: Duration = Duration::from_millis(200);
/// How long, in all, a worker that stops accepting still takes connections that completed
/// their handshake before the signal (they wait in the listener's queue and would be reset).
pub const DRAIN_ACCEPT_WAIT: Duration = Duration::from_millis(20);

/// The process-wide count of open client connections, shared by every worker.
#[derive(Debug)]
pub struct ConnectionLimit {
    open: AtomicUsize,
    max: usize,
}

impl ConnectionLimit {
    pub fn new(max: usize) -> Arc<ConnectionLimit> {
        Arc::new(ConnectionLimit {
            open: AtomicUsize::new(0),
            max,
        })
    }

    /// Counts one more connection, or `None` when the limit is reached.
    pub fn try_acquire(self: &Arc<Self>) -> Option<ConnectionPermit> {
        let previous = self.open.fetch_add(1, Ordering::AcqRel);
        if previous >= self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ConnectionPermit(Arc::clone(self)))
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// One counted connection; the count goes down when it is dropped.
#[derive(Debug)]
pub struct ConnectionPermit(Arc<ConnectionLimit>);

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One worker's count of requests in flight. Lives on the worker's thread.
#[derive(Debug, Default)]
pub struct InFlight {
    count: Cell<usize>,
}

impl InFlight {
    /// Counts a request as in flight until the guard drops, or `None` when `limit` requests
    /// already are.
    pub fn begin(self: &Rc<Self>, limit: usize) -> Option<InFlightGuard> {
        let count = self.count.get();
        if count >= limit {
            return None;
        }
        self.count.set(count + 1);
        Some(InFlightGuard(Rc::clone(self)))
    }

    pub fn count(&self) -> usize {
        self.count.get()
    }
}

/// Keeps a request counted as in flight (see [`InFlight::begin`]).
#[derive(Debug)]
pub struct InFlightGuard(Rc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.count.set(self.0.count.get() - 1);
    }
}

/// How fast a request body must arrive: over every `window` of time spent waiting for the
/// client, at least `min_bytes` must come in. Time the proxy spends elsewhere (writing to a
/// slow upstream) is not counted against the client.
#[derive(Debug, Clone, Copy)]
pub struct BodyPace {
    window: Duration,
    min_bytes: u64,
    waited: Duration,
    received: u64,
}

impl BodyPace {
    /// A pace of `rate` bytes per second over `window` (a rate of 0 still asks for one byte
    /// per window, so that a silent client cannot hold the connection for ever).
    pub fn new(rate: u64, window: Duration) -> BodyPace {
        let per_window = (rate as f64 * window.as_secs_f64()) as u64;
        BodyPace {
            window,
            min_bytes: per_window.max(1),
            waited: Duration::ZERO,
            received: 0,
        }
    }

    /// Starts measuring a new body.
    pub fn restart(&mut self) {
        self.waited = Duration::ZERO;
        self.received = 0;
    }

    /// How long the next read may wait before the current window ends.
    pub fn budget(&self) -> Duration {
        self.window.saturating_sub(self.waited)
    }

    /// Accounts for a read that waited `waited` and brought `received` bytes. Returns false
    /// when a window ended with too few bytes: the client is too slow.
    pub fn record(&mut self, waited: Duration, received: u64) -> bool {
        self.waited += waited;
        self.received += received;
        if self.waited < self.window {
            return true;
        }
        let fast_enough = self.received >= self.min_bytes;
        self.restart();
        fast_enough
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limit_counts_and_releases() {
        let limit = ConnectionLimit::new(2);
        let first = limit.try_acquire().expect("first");
        let _second = limit.try_acquire().expect("second");
        assert!(limit.try_acquire().is_none(), "third is over the limit");
        assert_eq!(limit.open(), 2);
        drop(first);
        assert!(limit.try_acquire().is_some(), "room again after a close");
    }

    #[test]
    fn in_flight_counts_and_releases() {
        let in_flight = Rc::new(InFlight::default());
        let guard = in_flight.begin(1).expect("first");
        assert!(in_flight.begin(1).is_none());
        drop(guard);
        assert_eq!(in_flight.count(), 0);
        assert!(in_flight.begin(1).is_some());
    }

    #[test]
    fn pace_cuts_a_window_with_too_few_bytes() {
        let window = Duration::from_secs(10);
        let mut pace = BodyPace::new(100, window);
        assert!(pace.record(Duration::from_secs(4), 10));
        assert_eq!(pace.budget(), Duration::from_secs(6));
        assert!(pace.record(Duration::from_secs(5), 500));
        // The window ends with 1,010 bytes: more than 100 per second.
        assert!(pace.record(Duration::from_secs(1), 500));
        assert_eq!(pace.budget(), window, "a new window starts");
        assert!(!pace.record(window, 999), "999 bytes in 10 s is too slow");
    }

    #[test]
    fn zero_rate_still_needs_a_byte_per_window() {
        let window = Duration::from_secs(1);
        let mut pace = BodyPace::new(0, window);
        assert!(pace.record(window, 1));
        assert!(!pace.record(window, 0));
    }
}
