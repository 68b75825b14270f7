//! Each worker's own pool of keep-alive connections to the upstream.
//!
//! The pool lives on one thread and is never shared, so checkout and checkin are a `Vec` pop
//! and push. Only connections whose last response was read to its end, with no stray bytes
//! after it, are checked back in.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use super::upstream::UpstreamTarget;
use crate::http1::ResponseHead;
use crate::problem::ProblemKind;
use crate::server::io::ReadBuf;

/// Most idle upstream connections one worker keeps; more are closed on checkin.
pub const MAX_IDLE_PER_WORKER: usize = 256;
/// How long an idle upstream connection is kept. Upstreams commonly close idle keep-alive
/// connections after 60–75 s; closing ours earlier avoids most races with that close.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Initial size of an upstream connection's read buffer.
pub const UPSTREAM_READ_BUFFER_BYTES: usize = 16 * 1024;

/// A connection to the upstream with its read buffer.
pub struct UpstreamConn {
    pub stream: TcpStream,
    pub buf: ReadBuf,
    /// Whether this connection carried an earlier request (a failure on it may be the
    /// upstream's idle close racing with our reuse, so the request may be retried).
    pub reused: bool,
    /// The head of the response being relayed (reused from exchange to exchange).
    pub response: ResponseHead,
    idle_since: Instant,
}

/// A worker's upstream connections.
pub struct UpstreamPool {
    target: Rc<UpstreamTarget>,
    connect_timeout: Duration,
    idle: RefCell<Vec<UpstreamConn>>,
}

impl UpstreamPool {
    pub fn new(target: Rc<UpstreamTarget>, connect_timeout: Duration) -> UpstreamPool {
        UpstreamPool {
            target,
            connect_timeout,
            idle: RefCell::new(Vec::new()),
        }
    }

    pub fn target(&self) -> &UpstreamTarget {
        &self.target
    }

    /// An idle connection if one is fresh enough, else a new one.
    pub async fn checkout(&self) -> Result<UpstreamConn, ProblemKind> {
        if let Some(conn) = self.take_idle() {
            return Ok(conn);
        }
        self.connect().await
    }

    fn take_idle(&self) -> Option<UpstreamConn> {
        let mut idle = self.idle.borrow_mut();
        while let Some(conn) = idle.pop() {
            if conn.idle_since.elapsed() < POOL_IDLE_TIMEOUT {
                return Some(conn);
            }
        }
        None
    }

    /// Returns a connection whose exchange completed cleanly.
    pub fn checkin(&self, mut conn: UpstreamConn) {
        let mut idle = self.idle.borrow_mut();
        if idle.len() < MAX_IDLE_PER_WORKER && conn.buf.is_empty() {
            conn.reused = true;
            conn.idle_since = Instant::now();
            idle.push(conn);
        }
    }

    /// Opens a new connection, trying each resolved address in turn.
    pub async fn connect(&self) -> Result<UpstreamConn, ProblemKind> {
        let mut failure = ProblemKind::UpstreamUnreachable;
        for &addr in &self.target.addrs {
            let attempt =
                monoio::time::timeout(self.connect_timeout, TcpStream::connect_addr(addr));
            match attempt.await {
                Ok(Ok(stream)) => return Ok(fresh(stream)),
                Ok(Err(error)) => failure = connect_failure(&error),
                Err(_) => failure = ProblemKind::UpstreamConnectTimeout,
            }
        }
        Err(failure)
    }
}

fn fresh(stream: TcpStream) -> UpstreamConn {
    let _ = stream.set_nodelay(true);
    UpstreamConn {
        stream,
        buf: ReadBuf::with_capacity(UPSTREAM_READ_BUFFER_BYTES),
        reused: false,
        response: ResponseHead::default(),
        idle_since: Instant::now(),
    }
}

fn connect_failure(error: &io::Error) -> ProblemKind {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => ProblemKind::UpstreamRefused,
        io::ErrorKind::TimedOut => ProblemKind::UpstreamConnectTimeout,
        _ => ProblemKind::UpstreamUnreachable,
    }
}
