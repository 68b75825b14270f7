//! TLS for the https-upstream tests: a certificate authority made in the test with rcgen, the
//! leaf certificates it signs, a fake upstream that speaks HTTP/1.1 over rustls on std threads,
//! and a server that accepts TCP connections but never says a word of TLS.
//!
//! The TLS upstream records what each handshake looked like (the SNI and ALPN it saw, whether
//! the session was resumed), how many TCP connections it accepted, how many handshakes failed,
//! and every request it read, so a test can check what crossed the wire.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{HandshakeKind, ServerConfig, ServerConnection, StreamOwned};

use super::upstream::{echo_json, read_request, After, Received};
use super::wire::Wire;

/// How long an upstream connection may block on one read or write.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`wait_until`] waits before failing the test.
pub const WAIT_DEADLINE: Duration = Duration::from_secs(10);

/// Polls `condition` until it holds; panics naming `what` after [`WAIT_DEADLINE`].
pub fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT_DEADLINE;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {WAIT_DEADLINE:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// A certificate authority made for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate (with its chain) and its private key, ready for a TLS server.
pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl TestCa {
    /// A new self-signed CA called `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).expect("self-signed CA"),
        }
    }

    /// The CA certificate in PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes the CA certificate as `ca.pem` in `dir`; returns its path.
    pub fn write_pem(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.pem()).expect("write the CA PEM");
        path
    }

    /// A leaf certificate for `names` (DNS names or IP addresses) signed by this CA.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let params = CertificateParams::new(names).expect("leaf parameters");
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign the leaf");
        Leaf {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }
}

/// What one completed handshake looked like from the upstream's side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// The SNI the client sent (none for an IP address).
    pub sni: Option<String>,
    /// The application protocol agreed through ALPN.
    pub alpn: Option<Vec<u8>>,
    /// Whether the client resumed an earlier session.
    pub resumed: bool,
}

type TlsHandler = dyn Fn(&Received, &mut dyn Write) -> After + Send + Sync;

#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    accepts: AtomicUsize,
    /// Connections whose serving thread has ended.
    finished: AtomicUsize,
    failed_handshakes: AtomicUsize,
    handshakes: Mutex<Vec<Handshake>>,
    received: Mutex<Vec<Received>>,
    open: Mutex<HashMap<usize, TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// A fake upstream serving HTTP/1.1 over TLS; stops when dropped.
pub struct TlsUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl TlsUpstream {
    /// Serves `leaf` (offering ALPN `http/1.1`, with rustls's default session cache, so
    /// clients can resume) and lets `handler` answer each request.
    pub fn start<F>(leaf: Leaf, handler: F) -> TlsUpstream
    where
        F: Fn(&Received, &mut dyn Write) -> After + Send + Sync + 'static,
    {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(leaf.chain, leaf.key)
            .expect("server certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the TLS upstream");
        let addr = listener.local_addr().expect("TLS upstream address");
        let shared = Arc::new(Shared::default());
        let handler: Arc<TlsHandler> = Arc::new(handler);
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || accept_loop(listener, config, shared, handler))
        };
        TlsUpstream {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Answers every request with 200 and the JSON dump of [`echo_json`], keeping the
    /// connection open, except for the path `/close`, which is answered with
    /// `Connection: close` before the upstream closes the connection (with close_notify).
    pub fn echo(leaf: Leaf) -> TlsUpstream {
        TlsUpstream::start(leaf, |request, stream| {
            let body = echo_json(request).to_string();
            let close = request.target == "/close";
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
                body.len(),
                if close { "Connection: close\r\n" } else { "" },
            );
            let written = stream
                .write_all(head.as_bytes())
                .and_then(|()| stream.write_all(body.as_bytes()))
                .and_then(|()| stream.flush());
            match written {
                Ok(()) if !close => After::KeepAlive,
                _ => After::Close,
            }
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `https://HOST:PORT` for this upstream, `host` being `localhost` or `127.0.0.1`.
    pub fn url(&self, host: &str) -> String {
        format!("https://{host}:{}", self.addr.port())
    }

    /// TCP connections accepted so far.
    pub fn accepts(&self) -> usize {
        self.shared.accepts.load(Ordering::SeqCst)
    }

    /// Accepted connections whose serving thread has ended.
    pub fn finished(&self) -> usize {
        self.shared.finished.load(Ordering::SeqCst)
    }

    /// Handshakes that failed (the client refused the certificate, or went away).
    pub fn failed_handshakes(&self) -> usize {
        self.shared.failed_handshakes.load(Ordering::SeqCst)
    }

    /// Every completed handshake, in order.
    pub fn handshakes(&self) -> Vec<Handshake> {
        lock(&self.shared.handshakes).clone()
    }

    /// Every request read so far, in order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.shared.received).clone()
    }
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the acceptor, which checks the flag after every accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for stream in lock(&self.shared.open).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let workers = std::mem::take(&mut *lock(&self.shared.workers));
        for worker in workers {
            let _ = worker.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn accept_loop(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    shared: Arc<Shared>,
    handler: Arc<TlsHandler>,
) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let id = shared.accepts.fetch_add(1, Ordering::SeqCst);
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_nodelay(true);
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.open).insert(id, clone);
        }
        let worker = {
            let (config, shared, handler) = (
                Arc::clone(&config),
                Arc::clone(&shared),
                Arc::clone(&handler),
            );
            thread::spawn(move || {
                serve_connection(id, stream, config, &shared, &*handler);
                lock(&shared.open).remove(&id);
                shared.finished.fetch_add(1, Ordering::SeqCst);
            })
        };
        lock(&shared.workers).push(worker);
    }
}

fn serve_connection(
    id: usize,
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    shared: &Shared,
    handler: &TlsHandler,
) {
    let connection = ServerConnection::new(config).expect("server connection");
    let mut tls = StreamOwned::new(connection, tcp);
    match handshake(&mut tls) {
        Ok(seen) => lock(&shared.handshakes).push(seen),
        Err(_) => {
            shared.failed_handshakes.fetch_add(1, Ordering::SeqCst);
            return;
        }
    }
    let mut wire = Wire::new(tls);
    let mut after = After::Close;
    for nth in 0.. {
        let Ok(Some(request)) = read_request(&mut wire, id, nth) else {
            break;
        };
        lock(&shared.received).push(request.clone());
        after = handler(&request, wire.stream());
        if after != After::KeepAlive {
            break;
        }
    }
    let tls = wire.stream();
    match after {
        After::Reset => {
            let _ = socket2::SockRef::from(&tls.sock).set_linger(Some(Duration::ZERO));
        }
        After::CloseWithoutNotify => {
            let _ = tls.flush();
            let _ = tls.sock.shutdown(Shutdown::Write);
        }
        _ => {
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    }
}

/// Completes the server side of the handshake (sending any session tickets) and reports it.
fn handshake(tls: &mut StreamOwned<ServerConnection, TcpStream>) -> io::Result<Handshake> {
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    while tls.conn.wants_write() {
        tls.conn.write_tls(&mut tls.sock)?;
    }
    Ok(Handshake {
        sni: tls.conn.server_name().map(str::to_owned),
        alpn: tls.conn.alpn_protocol().map(<[u8]>::to_vec),
        resumed: tls.conn.handshake_kind() == Some(HandshakeKind::Resumed),
    })
}

/// A server that accepts TCP connections and never reads or writes a byte: a TLS client's
/// ClientHello goes unanswered. Stops when dropped.
pub struct SilentServer {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    accepted: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl SilentServer {
    pub fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the silent server");
        let addr = listener.local_addr().expect("silent server address");
        let stopping = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let (stopping, accepted) = (Arc::clone(&stopping), Arc::clone(&accepted));
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Ok(stream) = stream {
                        lock(&accepted).push(stream);
                    }
                }
            })
        };
        SilentServer {
            addr,
            stopping,
            accepted,
            acceptor: Some(acceptor),
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepts(&self) -> usize {
        lock(&self.accepted).len()
    }

    /// Bytes waiting unread on the accepted connections (the ClientHellos), without
    /// consuming them.
    pub fn pending_bytes(&self) -> usize {
        let mut peek = [0u8; 4096];
        lock(&self.accepted)
            .iter()
            .map(|stream| {
                let _ = stream.set_nonblocking(true);
                stream.peek(&mut peek).unwrap_or(0)
            })
            .sum()
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for stream in lock(&self.accepted).iter() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}
