//! Each worker's own pool of keep-alive connections to the upstream.
//!
//! The pool lives on one thread and is never shared, so checkout and checkin are a `Vec` pop
//! and push. Only connections whose last response was read to its end, with no stray bytes
//! after it, are checked back in. For an `https://` upstream a new connection runs its TLS
//! handshake inside the connect timeout; pooled connections keep their TLS session.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use monoio_rustls::TlsConnector;

use super::stream::UpstreamStream;
use super::tls;
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
    pub stream: UpstreamStream,
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
    /// Set for an `https://` upstream.
    tls: Option<TlsConnector>,
    idle: RefCell<Vec<UpstreamConn>>,
}

impl UpstreamPool {
    /// A pool for `target`; `tls` is the client configuration of an `https://` upstream.
    pub fn new(
        target: Rc<UpstreamTarget>,
        connect_timeout: Duration,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> UpstreamPool {
        UpstreamPool {
            target,
            connect_timeout,
            tls: tls.map(TlsConnector::from),
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

    /// Opens a new connection, trying each resolved address in turn until one connects. A
    /// TLS failure ends the search: that upstream was reached and failed.
    pub async fn connect(&self) -> Result<UpstreamConn, ProblemKind> {
        let mut failure = ProblemKind::UpstreamUnreachable;
        for &addr in &self.target.addrs {
            let attempt = monoio::time::timeout(self.connect_timeout, self.open(addr));
            match attempt.await {
                Ok(Ok(stream)) => return Ok(fresh(stream)),
                Ok(Err(kind)) if is_tls_failure(kind) => return Err(kind),
                Ok(Err(kind)) => failure = kind,
                Err(_) => failure = ProblemKind::UpstreamConnectTimeout,
            }
        }
        Err(failure)
    }

    /// Connects to `addr` and, for an `https://` upstream, runs the TLS handshake.
    async fn open(&self, addr: SocketAddr) -> Result<UpstreamStream, ProblemKind> {
        let tcp = TcpStream::connect_addr(addr)
            .await
            .map_err(|error| connect_failure(&error))?;
        let _ = tcp.set_nodelay(true);
        match (&self.tls, &self.target.server_name) {
            (Some(connector), Some(server_name)) => tls::handshake(connector, server_name, tcp)
                .await
                .map(UpstreamStream::tls),
            _ => Ok(UpstreamStream::Plain(tcp)),
        }
    }
}

fn is_tls_failure(kind: ProblemKind) -> bool {
    matches!(
        kind,
        ProblemKind::UpstreamCertificateUntrusted | ProblemKind::UpstreamTlsFailed
    )
}

fn fresh(stream: UpstreamStream) -> UpstreamConn {
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
