//! Each worker's own pool of keep-alive connections to the upstream.
//!
//! The pool lives on one thread and is never shared, so checkout and checkin are a `Vec` pop
//! and push. Only connections whose last response was read to its end, with no stray bytes
//! after it, are checked back in. The connect timeout is one budget for opening a connection:
//! the TCP connects to every address tried and, for an `https://` upstream, the TLS handshake.
//! Pooled connections keep their TLS session.

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

    /// Opens a new connection within one connect timeout for the whole attempt: every resolved
    /// address in turn until one connects, TLS handshake included. A TLS failure ends the
    /// search (that upstream was reached and failed); running out of time answers
    /// [`ProblemKind::UpstreamConnectTimeout`], however many addresses were tried.
    pub async fn connect(&self) -> Result<UpstreamConn, ProblemKind> {
        match monoio::time::timeout(self.connect_timeout, self.try_each_address()).await {
            Ok(result) => result.map(fresh),
            Err(_) => Err(ProblemKind::UpstreamConnectTimeout),
        }
    }

    async fn try_each_address(&self) -> Result<UpstreamStream, ProblemKind> {
        let mut failure = ProblemKind::UpstreamUnreachable;
        for &addr in &self.target.addrs {
            match self.open(addr).await {
                Ok(stream) => return Ok(stream),
                Err(kind) if is_tls_failure(kind) => return Err(kind),
                Err(kind) => failure = kind,
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

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use monoio::{LegacyDriver, RuntimeBuilder};
    use rustls_pki_types::ServerName;

    use super::*;
    use crate::proxy::upstream::Scheme;

    /// The connect timeout of these tests.
    const TIMEOUT: Duration = Duration::from_millis(300);

    /// A listener that never accepts: the kernel completes TCP connections to it from its
    /// backlog, and a ClientHello sent there is never answered.
    fn silent_listener() -> TcpListener {
        TcpListener::bind("127.0.0.1:0").expect("bind a silent listener")
    }

    /// Whether a TCP connection to `listener` was made (it waits in the backlog).
    fn was_connected_to(listener: &TcpListener) -> bool {
        listener.set_nonblocking(true).expect("non-blocking");
        listener.accept().is_ok()
    }

    /// A pool for an `https://localhost` upstream resolved to `addrs`, trusting a new CA.
    fn https_pool(addrs: Vec<SocketAddr>) -> UpstreamPool {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params
            .self_signed(&rcgen::KeyPair::generate().expect("key"))
            .expect("self-signed CA");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).expect("the CA as a root");
        let target = UpstreamTarget {
            url: "https://localhost".to_owned(),
            scheme: Scheme::Https,
            authority: "localhost".to_owned(),
            addrs,
            base_path: String::new(),
            server_name: Some(ServerName::try_from("localhost").expect("server name")),
        };
        let config = tls::client_config(roots, None).expect("client config");
        UpstreamPool::new(Rc::new(target), TIMEOUT, Some(config))
    }

    /// Runs `pool.connect()` on a runtime of this thread; returns its outcome and duration.
    fn timed_connect(pool: &UpstreamPool) -> (Result<(), ProblemKind>, Duration) {
        let runtime = RuntimeBuilder::<LegacyDriver>::new().enable_timer().build();
        let started = Instant::now();
        let outcome = runtime
            .expect("runtime")
            .block_on(pool.connect())
            .map(|_| ());
        (outcome, started.elapsed())
    }

    #[test]
    fn one_connect_timeout_covers_every_address_and_the_handshake() {
        let (first, second) = (silent_listener(), silent_listener());
        let addrs = vec![first.local_addr().unwrap(), second.local_addr().unwrap()];
        let (outcome, elapsed) = timed_connect(&https_pool(addrs));

        assert_eq!(outcome, Err(ProblemKind::UpstreamConnectTimeout));
        assert!(
            elapsed >= TIMEOUT && elapsed < 2 * TIMEOUT,
            "answered after {elapsed:?}; the whole attempt may take {TIMEOUT:?}"
        );
        assert!(was_connected_to(&first), "the first address was tried");
        assert!(
            !was_connected_to(&second),
            "the handshake on the first address spent the whole budget: no second attempt"
        );
    }

    #[test]
    fn a_refused_address_leaves_the_rest_of_the_budget_to_the_next() {
        let refusing = silent_listener();
        let refused_addr = refusing.local_addr().unwrap();
        drop(refusing);
        let silent = silent_listener();
        let addrs = vec![refused_addr, silent.local_addr().unwrap()];
        let (outcome, elapsed) = timed_connect(&https_pool(addrs));

        assert_eq!(outcome, Err(ProblemKind::UpstreamConnectTimeout));
        assert!(
            elapsed >= TIMEOUT && elapsed < 2 * TIMEOUT,
            "answered after {elapsed:?}"
        );
        assert!(
            was_connected_to(&silent),
            "after the refusal, the second address was tried"
        );
    }
}
