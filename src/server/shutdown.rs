//! Shutdown: one process-wide signal, and per-worker draining state.
//!
//! The process-wide [`ShutdownSignal`] is touched once per worker (not per request). Each
//! worker then drains on its own thread through its [`WorkerState`]: connections that are idle
//! between requests close once a request already on its way has had
//! [`DRAIN_IDLE_READ`](super::limits::DRAIN_IDLE_READ) to arrive, requests in flight finish
//! (their responses carry `Connection: close`), and the worker waits for its last connection
//! within the grace period.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use event_listener::{Event, Listener};

use super::limits::InFlight;

/// The process-wide request to stop.
#[derive(Debug, Default)]
pub struct ShutdownSignal {
    requested: AtomicBool,
    event: Event,
    /// Workers that have closed their listener since the signal.
    stopped_accepting: AtomicUsize,
    stopped_accepting_event: Event,
}

impl ShutdownSignal {
    /// Asks every worker to stop accepting and drain.
    pub fn trigger(&self) {
        self.requested.store(true, Ordering::Release);
        self.event.notify(usize::MAX);
    }

    pub fn is_triggered(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// Resolves once [`trigger`](Self::trigger) has been called.
    pub async fn triggered(&self) {
        loop {
            if self.is_triggered() {
                return;
            }
            let listener = self.event.listen();
            if self.is_triggered() {
                return;
            }
            listener.await;
        }
    }

    /// Records that one more worker has closed its listener.
    pub fn worker_stopped_accepting(&self) {
        self.stopped_accepting.fetch_add(1, Ordering::AcqRel);
        self.stopped_accepting_event.notify(usize::MAX);
    }

    /// Blocks the calling (non-runtime) thread until `workers` workers have closed their
    /// listeners (from then on, connections are refused), or `timeout` passes. Returns whether
    /// they all had.
    pub fn wait_stopped_accepting(&self, workers: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let all_stopped = || self.stopped_accepting.load(Ordering::Acquire) >= workers;
        loop {
            if all_stopped() {
                return true;
            }
            let listener = self.stopped_accepting_event.listen();
            if all_stopped() {
                return true;
            }
            if listener.wait_deadline(deadline).is_none() {
                return all_stopped();
            }
        }
    }

    /// Blocks the calling (non-runtime) thread until triggered.
    pub fn wait_blocking(&self) {
        while !self.is_triggered() {
            let listener = self.event.listen();
            if self.is_triggered() {
                return;
            }
            listener.wait();
        }
    }
}

/// One worker's view of its connections and of shutdown. Lives on the worker's thread only.
#[derive(Debug, Default)]
pub struct WorkerState {
    draining: Cell<bool>,
    drain: Event,
    open_connections: Cell<usize>,
    all_closed: Event,
    /// Requests being handled on this worker (see [`InFlight`]).
    pub in_flight: Rc<InFlight>,
}

impl WorkerState {
    /// Whether the worker is draining: finish what is in flight, take nothing new.
    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    /// Starts draining and wakes the connections waiting for a request.
    pub fn start_draining(&self) {
        self.draining.set(true);
        self.drain.notify(usize::MAX);
    }

    /// A listener that fires when draining starts; a connection takes one for its lifetime.
    pub fn drain_listener(&self) -> event_listener::EventListener {
        self.drain.listen()
    }

    /// Counts a connection as open until the returned guard is dropped.
    pub fn open_connection(self: &Rc<Self>) -> ConnectionGuard {
        self.open_connections.set(self.open_connections.get() + 1);
        ConnectionGuard(Rc::clone(self))
    }

    pub fn open_connections(&self) -> usize {
        self.open_connections.get()
    }

    /// Resolves when no connection is open.
    pub async fn all_closed(&self) {
        while self.open_connections.get() > 0 {
            let listener = self.all_closed.listen();
            if self.open_connections.get() == 0 {
                return;
            }
            listener.await;
        }
    }
}

/// Keeps a connection counted as open (see [`WorkerState::open_connection`]).
#[derive(Debug)]
pub struct ConnectionGuard(Rc<WorkerState>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let open = self.0.open_connections.get() - 1;
        self.0.open_connections.set(open);
        if open == 0 {
            self.0.all_closed.notify(usize::MAX);
        }
    }
}
