//! Fake upstream servers on plain std threads and `std::net::TcpListener` (port 0): an echo
//! server that dumps what it received, canned responders, one that holds requests until the
//! test opens a [`Gate`], and misbehaving servers (refusing, resetting, never answering,
//! dying mid-body, closing after each response, answering garbage, and [`Upstream::faulty`],
//! which picks a fault by path: stalling, trickling, truncating, a malformed status line, both
//! Content-Length and Transfer-Encoding). Each records every request it read and counts
//! connections and requests; dropping it stops the acceptor, shuts every open connection and
//! joins every thread.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::wire::{self, Framing, Headers, Wire};

/// How long an upstream connection may block on one read or write.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request waits at a [`Gate`], and a test for requests to arrive at one.
pub const GATE_TIMEOUT: Duration = Duration::from_secs(30);

/// A gate the test opens: requests that reach it wait until it is open. It counts the
/// requests that arrived, so that the test can wait for them instead of guessing a delay.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<GateState>, Condvar)>);

#[derive(Default)]
struct GateState {
    arrived: usize,
    open: bool,
}

impl Gate {
    pub fn new() -> Self {
        Gate::default()
    }

    /// Waits until `count` requests in all have arrived at the gate; panics after
    /// [`GATE_TIMEOUT`].
    pub fn wait_arrived(&self, count: usize) {
        let (state, changed) = &*self.0;
        let state = lock_or_recover(state);
        let (state, _) = changed
            .wait_timeout_while(state, GATE_TIMEOUT, |state| state.arrived < count)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        assert!(
            state.arrived >= count,
            "{} of {count} requests arrived at the gate within {GATE_TIMEOUT:?}",
            state.arrived
        );
    }

    /// Opens the gate for every request waiting at it and every later one.
    pub fn open(&self) {
        let (state, changed) = &*self.0;
        lock_or_recover(state).open = true;
        changed.notify_all();
    }

    /// Counts a request's arrival and waits until the gate is open; false if it stayed shut
    /// for [`GATE_TIMEOUT`].
    pub fn pass(&self) -> bool {
        let (state, changed) = &*self.0;
        let mut state = lock_or_recover(state);
        state.arrived += 1;
        changed.notify_all();
        let deadline = Instant::now() + GATE_TIMEOUT;
        while !state.open {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = changed
                .wait_timeout(state, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        true
    }
}

/// One request as the upstream read it off the wire.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    /// The request target exactly as sent.
    pub target: String,
    pub minor_version: u8,
    pub headers: Headers,
    /// The decoded body.
    pub body: Vec<u8>,
    pub framing: Framing,
    /// Which accepted connection (0-based) carried it.
    pub connection: usize,
    /// Its position (0-based) among the requests on that connection.
    pub nth_on_connection: usize,
}

/// What the upstream does with the connection after its handler ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Read the next request on the same connection.
    KeepAlive,
    /// Close the connection (FIN).
    Close,
    /// Close with SO_LINGER 0, so the peer sees a reset.
    Reset,
    /// Keep the connection open without answering until the peer closes or the upstream drops.
    Hold,
    /// Over TLS, close the TCP connection (FIN) without sending close_notify first, as a cut
    /// connection looks; over plain TCP the same as `Close`.
    CloseWithoutNotify,
}

type Handler = dyn Fn(&Received, &mut TcpStream) -> After + Send + Sync;

#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    connections: AtomicUsize,
    requests: AtomicUsize,
    received: Mutex<Vec<Received>>,
    open: Mutex<HashMap<usize, TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// A running fake upstream; stops when dropped.
pub struct Upstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    handler: Arc<Handler>,
    /// The accepting thread; `None` while [`Upstream::stop_listening`] is in force.
    acceptor: Option<JoinHandle<()>>,
}

impl Upstream {
    /// Starts an upstream that reads requests and lets `handler` answer each one.
    pub fn start<F>(handler: F) -> Self
    where
        F: Fn(&Received, &mut TcpStream) -> After + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake upstream");
        let addr = listener.local_addr().expect("fake upstream address");
        let shared = Arc::new(Shared::default());
        let handler: Arc<Handler> = Arc::new(handler);
        let mut upstream = Upstream {
            addr,
            shared,
            handler,
            acceptor: None,
        };
        upstream.accept_on(listener);
        upstream
    }

    fn accept_on(&mut self, listener: TcpListener) {
        self.shared.stopping.store(false, Ordering::SeqCst);
        let shared = Arc::clone(&self.shared);
        let handler = Arc::clone(&self.handler);
        self.acceptor = Some(thread::spawn(move || {
            accept_loop(listener, shared, handler)
        }));
    }

    /// Stops the acceptor (its listener closes) and joins it.
    fn stop_acceptor(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the acceptor, which checks the flag after every accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        let _ = acceptor.join();
    }

    /// Closes the listener and every open connection: from now until
    /// [`Upstream::listen_again`], connecting to the upstream is refused.
    pub fn stop_listening(&mut self) {
        self.stop_acceptor();
        for stream in lock_or_recover(&self.shared.open).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Listens on the same port again after [`Upstream::stop_listening`].
    pub fn listen_again(&mut self) {
        let listener = TcpListener::bind(self.addr).expect("bind the fake upstream's port again");
        self.accept_on(listener);
    }

    /// Answers every request with 200 and a JSON dump of what it received (see [`echo_json`]).
    pub fn echo() -> Self {
        Upstream::start(|request, stream| {
            let body = echo_json(request).to_string();
            let close = request.headers.has_token("connection", "close");
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
                body.len(),
                if close { "Connection: close\r\n" } else { "" },
            );
            let body_bytes: &[u8] = if request.method == "HEAD" {
                b""
            } else {
                body.as_bytes()
            };
            if write_all(stream, &[head.as_bytes(), body_bytes]).is_err() || close {
                return After::Close;
            }
            After::KeepAlive
        })
    }

    /// Answers every request with the same raw bytes and keeps the connection open.
    pub fn fixed(raw: impl Into<Vec<u8>>) -> Self {
        let raw = raw.into();
        Upstream::start(move |_, stream| match write_all(stream, &[&raw]) {
            Ok(()) => After::KeepAlive,
            Err(_) => After::Close,
        })
    }

    /// Answers every request with the raw bytes `respond` makes for it, keeping the connection.
    pub fn responder<F>(respond: F) -> Self
    where
        F: Fn(&Received) -> Vec<u8> + Send + Sync + 'static,
    {
        Upstream::start(
            move |request, stream| match write_all(stream, &[&respond(request)]) {
                Ok(()) => After::KeepAlive,
                Err(_) => After::Close,
            },
        )
    }

    /// Reads a request, then closes the connection with SO_LINGER 0 (a reset).
    pub fn resetting() -> Self {
        Upstream::start(|_, _| After::Reset)
    }

    /// Reads a request and never answers; holds the connection open.
    pub fn blackhole() -> Self {
        Upstream::start(|_, _| After::Hold)
    }

    /// Answers with bytes that are not an HTTP response, then holds the connection open.
    pub fn malformed() -> Self {
        Upstream::start(|_, stream| {
            let _ = write_all(stream, &[b"THIS IS NOT HTTP AT ALL\r\n\r\n"]);
            After::Hold
        })
    }

    /// Holds every request at `gate` until the test opens it, then answers 200 with the body
    /// `gated` on a keep-alive connection. A request the gate kept shut for [`GATE_TIMEOUT`]
    /// gets no answer (its connection closes).
    pub fn gated(gate: &Gate) -> Self {
        let gate = gate.clone();
        Upstream::start(move |_, stream| {
            if !gate.pass() {
                return After::Close;
            }
            let response =
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\ngated";
            match write_all(stream, &[response]) {
                Ok(()) => After::KeepAlive,
                Err(_) => After::Close,
            }
        })
    }

    /// Announces `Content-Length: 1000`, sends 100 bytes of it, then closes.
    pub fn dying_mid_body() -> Self {
        Upstream::start(|_, stream| {
            let head =
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n";
            let _ = write_all(stream, &[head, &[b'd'; 100]]);
            After::Close
        })
    }

    /// Answers each request with a complete keep-alive-looking response (no `Connection:
    /// close`), then closes the connection anyway.
    pub fn closing_after_each_response() -> Self {
        Upstream::start(|request, stream| {
            let body = format!("served {}", request.target);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = write_all(stream, &[head.as_bytes(), body.as_bytes()]);
            After::Close
        })
    }

    /// Answers the first request on each connection; on a connection's second request, closes
    /// without answering (a pooled connection that turns out dead once reused).
    pub fn dropping_second_request() -> Self {
        Upstream::start(|request, stream| {
            if request.nth_on_connection > 0 {
                return After::Close;
            }
            let body = format!("served {}", request.target);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            match write_all(stream, &[head.as_bytes(), body.as_bytes()]) {
                Ok(()) => After::KeepAlive,
                Err(_) => After::Close,
            }
        })
    }

    /// Answers with a body that has neither Content-Length nor Transfer-Encoding, ended by
    /// closing the connection.
    pub fn close_delimited(body: &'static [u8]) -> Self {
        Upstream::start(move |_, stream| {
            let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
            let _ = write_all(stream, &[head, body]);
            After::Close
        })
    }

    /// Misbehaves as the request path says (see [`FAULTS`]); any other path gets `200 fresh`
    /// on a keep-alive connection. `pause` paces the trickling faults.
    pub fn faulty(pause: Duration) -> Self {
        Upstream::start(move |request, stream| {
            let fault = request.target.strip_prefix("/fault/").unwrap_or("");
            answer_fault(fault, pause, stream)
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:PORT`: what the proxy must send as Host.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`: what to configure as the proxy's upstream.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Requests read so far (the count goes up before the handler answers).
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Every request read so far, in the order they were read.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .expect("received requests lock")
            .clone()
    }

    /// The only request read so far; panics unless exactly one arrived.
    pub fn only_request(&self) -> Received {
        let received = self.received();
        assert_eq!(
            received.len(),
            1,
            "expected the upstream to see exactly one request, saw {received:#?}"
        );
        received.into_iter().next().expect("one request")
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop_acceptor();
        self.shared.stopping.store(true, Ordering::SeqCst);
        for stream in lock_or_recover(&self.shared.open).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let workers = std::mem::take(&mut *lock_or_recover(&self.shared.workers));
        for worker in workers {
            let _ = worker.join();
        }
    }
}

fn lock_or_recover<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, handler: Arc<Handler>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let id = shared.connections.fetch_add(1, Ordering::SeqCst);
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_nodelay(true);
        if let Ok(clone) = stream.try_clone() {
            lock_or_recover(&shared.open).insert(id, clone);
        }
        let worker = {
            let shared = Arc::clone(&shared);
            let handler = Arc::clone(&handler);
            thread::spawn(move || serve_connection(id, stream, &shared, &*handler))
        };
        lock_or_recover(&shared.workers).push(worker);
    }
}

fn serve_connection(id: usize, stream: TcpStream, shared: &Shared, handler: &Handler) {
    let mut wire = Wire::new(stream);
    let mut after = After::Close;
    for nth in 0.. {
        let Ok(Some(request)) = read_request(&mut wire, id, nth) else {
            break;
        };
        shared.requests.fetch_add(1, Ordering::SeqCst);
        lock_or_recover(&shared.received).push(request.clone());
        after = handler(&request, wire.stream());
        if after != After::KeepAlive {
            break;
        }
    }
    if after == After::Hold {
        hold(wire.stream(), shared);
    }
    // Drop the registry's handle first so that dropping ours really closes the socket.
    let stream = lock_or_recover(&shared.open).remove(&id);
    drop(stream);
    if after == After::Reset {
        let _ = socket2::SockRef::from(&*wire.stream()).set_linger(Some(Duration::ZERO));
    }
}

/// Discards input until the peer closes or the upstream is dropped.
fn hold(stream: &mut TcpStream, shared: &Shared) {
    let mut sink = [0u8; 4096];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) && !shared.stopping.load(Ordering::SeqCst) => {}
            Err(_) => return,
        }
    }
}

/// Reads the next request off `wire`; `Ok(None)` when the peer closed cleanly between requests.
pub fn read_request<S: Read>(
    wire: &mut Wire<S>,
    connection: usize,
    nth: usize,
) -> io::Result<Option<Received>> {
    let Some(head) = wire.read_head()? else {
        return Ok(None);
    };
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut parsed = httparse::Request::new(&mut fields);
    let status = parsed
        .parse(&head)
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err.to_string()))?;
    if status.is_partial() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "partial head"));
    }
    let headers = Headers::from_parsed(parsed.headers);
    let framing = wire::request_framing(&headers)?;
    let (body, _trailers) = wire.read_body(framing)?;
    Ok(Some(Received {
        method: parsed.method.unwrap_or_default().to_string(),
        target: parsed.path.unwrap_or_default().to_string(),
        minor_version: parsed.version.unwrap_or_default(),
        headers,
        body,
        framing,
        connection,
        nth_on_connection: nth,
    }))
}

/// The echo upstream's answer: `method`, `target`, `headers` (as `[name, value]` pairs in
/// order), `body` (as text) and `body_len`.
pub fn echo_json(request: &Received) -> serde_json::Value {
    let headers: Vec<serde_json::Value> = request
        .headers
        .0
        .iter()
        .map(|(name, value)| serde_json::json!([name, wire::lossy(value)]))
        .collect();
    serde_json::json!({
        "method": request.method,
        "target": request.target,
        "headers": headers,
        "body": wire::lossy(&request.body),
        "body_len": request.body.len(),
    })
}

/// The faults [`Upstream::faulty`] knows, by the path segment after `/fault/`.
pub const FAULTS: [&str; 12] = [
    "reset",
    "blackhole",
    "stall",
    "trickle-head",
    "trickle-body",
    "truncate",
    "truncate-chunked",
    "status-line",
    "cl-te",
    "garbage",
    "bare-lf-header",
    "cr-in-header",
];

/// The body `trickle-body` sends, one byte per pause.
pub const TRICKLED_BODY: &[u8] = b"trickled";

fn answer_fault(fault: &str, pause: Duration, stream: &mut TcpStream) -> After {
    let written = match fault {
        "reset" => return After::Reset,
        "blackhole" => return After::Hold,
        "stall" => {
            let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
            let _ = write_all(stream, &[head, b"partial"]);
            return After::Hold;
        }
        "trickle-head" => trickle(
            stream,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            pause,
        ),
        "trickle-body" => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                TRICKLED_BODY.len()
            );
            write_all(stream, &[head.as_bytes()])
                .and_then(|()| trickle(stream, TRICKLED_BODY, pause))
        }
        "truncate" => {
            let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
            let _ = write_all(stream, &[head, &[b't'; 100]]);
            return After::Close;
        }
        "truncate-chunked" => {
            let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
            let _ = write_all(stream, &[head]);
            return After::Close;
        }
        "status-line" => write_all(stream, &[b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok"]),
        "cl-te" => write_all(
            stream,
            &[
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
                0\r\n\r\n",
            ],
        ),
        "garbage" => write_all(stream, &[b"THIS IS NOT HTTP AT ALL\r\n\r\n"]),
        "bare-lf-header" => write_all(
            stream,
            &[b"HTTP/1.1 200 OK\r\nX-A: a\nX-Injected: b\r\nContent-Length: 2\r\n\r\nok"],
        ),
        "cr-in-header" => write_all(
            stream,
            &[b"HTTP/1.1 200 OK\r\nX-A: a\rX-Injected: b\r\nContent-Length: 2\r\n\r\nok"],
        ),
        _ => write_all(
            stream,
            &[b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh"],
        ),
    };
    match written {
        Ok(()) => After::KeepAlive,
        Err(_) => After::Close,
    }
}

/// Writes `bytes` one at a time, `pause` apart.
fn trickle(stream: &mut TcpStream, bytes: &[u8], pause: Duration) -> io::Result<()> {
    for byte in bytes {
        write_all(stream, &[std::slice::from_ref(byte)])?;
        thread::sleep(pause);
    }
    Ok(())
}

/// Writes each part in turn.
pub fn write_all(stream: &mut TcpStream, parts: &[&[u8]]) -> io::Result<()> {
    for part in parts {
        stream.write_all(part)?;
    }
    stream.flush()
}

/// An `http://127.0.0.1:PORT` URL nothing listens on: the port was bound, then released.
pub fn refused_url() -> (String, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port to release");
    let port = listener.local_addr().expect("released port").port();
    drop(listener);
    (format!("http://127.0.0.1:{port}"), port)
}
