//! One client connection: read a request head, let the site handle the exchange, repeat while
//! keep-alive allows.

use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::io::AsyncWriteRent;
use monoio::net::TcpStream;

use super::io::{write_all_from, ReadBuf};
use super::limits::{
    BodyPace, ConnectionPermit, DRAIN_IDLE_READ, LINGERING_CLOSE_BYTES, LINGERING_CLOSE_TIME,
    OVERLOAD_RETRY_AFTER_SECONDS,
};
use super::shutdown::WorkerState;
use crate::http1::chunked::{ChunkedDecoder, Decoded};
use crate::http1::{self, BodyFraming, HeadError, HeadLimits, RequestHead, Version};
use crate::problem::{Problem, ProblemKind, PROBLEM_CONTENT_TYPE};
use crate::proxy::ForwardedFor;

/// Initial size of each connection's read buffer; while a head is read it grows up to the head
/// size limit when needed, never further.
pub const CLIENT_READ_BUFFER_BYTES: usize = 16 * 1024;
/// Largest request body confab's own endpoints read; a larger one gets its response and the
/// connection is closed instead of being read to the end.
pub const OWN_ENDPOINT_MAX_BODY_BYTES: u64 = 1024 * 1024;

/// What serves the requests of a connection: the proxy site or the mock upstream.
pub trait Site: 'static {
    /// Handles the exchange whose head is in `conn.head`, including its body. Returns whether
    /// the connection may carry another request.
    fn handle(&self, conn: &mut ClientConn) -> impl std::future::Future<Output = bool>;

    /// Records a request the connection refused before handing it to [`Site::handle`] (a bad
    /// or slow head, a body over the limit, an overloaded worker). When `refusal.head_parsed`
    /// is true, `conn.head` describes the request and its head is still in `conn.buf`.
    fn record_refusal(&self, _conn: &ClientConn, _refusal: Refusal) {}

    /// Called about once a second on the worker's thread, and once as the worker stops.
    fn tick(&self) {}
}

/// A request the connection answered itself, for the statistics.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    pub status: u16,
    /// Whether the request head was parsed (so its method and path are known).
    pub head_parsed: bool,
    /// Bytes of the request that were read.
    pub bytes_in: u64,
    /// Bytes of the answer.
    pub bytes_out: u64,
}

/// Per-connection settings shared by all connections of a worker.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub idle_timeout: Duration,
    /// Longest time to receive a whole request head.
    pub header_timeout: Duration,
    /// Largest request body accepted.
    pub max_body: u64,
    /// Slowest request body accepted, in bytes per second of waiting.
    pub min_body_rate: u64,
    /// Span of waiting over which the body rate is measured.
    pub body_rate_window: Duration,
    /// Most requests in flight on the worker.
    pub max_inflight: usize,
    /// The request line, head size and header count limits of request heads.
    pub head_limits: HeadLimits,
}

/// Why a request head was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadRefusal {
    Invalid(HeadError),
    /// Part of a head arrived, but not all of it within the header timeout.
    TooSlow,
}

/// A client connection and its reusable buffers.
pub struct ClientConn {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// The peer's address as the proxy forwards it.
    pub forwarded_for: ForwardedFor,
    pub buf: ReadBuf,
    /// Scratch space for rendering heads and re-framed bodies.
    pub out: Vec<u8>,
    pub head: RequestHead,
    /// When the first byte of the current request arrived.
    pub head_started: Instant,
    /// Bytes read from and written to the client since the connection opened.
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// How fast the current request's body arrives.
    pub pace: BodyPace,
    /// Set when an error answer leaves unread request bytes behind: the connection then closes
    /// with a lingering close (see [`LINGERING_CLOSE_TIME`]).
    pub linger_on_close: bool,
    pub worker: Rc<WorkerState>,
    pub settings: Rc<ConnectionSettings>,
}

/// Serves one connection until the client leaves, keep-alive ends, or the worker drains.
/// `permit` keeps the connection counted against the process-wide limit while it is open.
pub async fn serve<S: Site>(
    stream: TcpStream,
    peer: SocketAddr,
    site: Rc<S>,
    worker: Rc<WorkerState>,
    settings: Rc<ConnectionSettings>,
    permit: Option<ConnectionPermit>,
) {
    let _open = worker.open_connection();
    let _ = stream.set_nodelay(true);
    let mut conn = ClientConn {
        stream,
        peer,
        forwarded_for: ForwardedFor::of(peer),
        buf: ReadBuf::with_capacity(CLIENT_READ_BUFFER_BYTES),
        out: Vec::with_capacity(CLIENT_READ_BUFFER_BYTES),
        head: RequestHead::default(),
        head_started: Instant::now(),
        bytes_read: 0,
        bytes_written: 0,
        pace: BodyPace::new(settings.min_body_rate, settings.body_rate_window),
        linger_on_close: false,
        worker,
        settings,
    };
    conn.serve_requests(&*site).await;
    if conn.linger_on_close {
        conn.linger().await;
    }
    // The connection stops counting against the limit before its socket closes, so that a
    // client that sees the close can connect again at once.
    drop(permit);
    drop(conn);
}

impl ClientConn {
    /// The request loop: read a head, apply the limits, let the site answer, repeat.
    async fn serve_requests<S: Site>(&mut self, site: &S) {
        let in_flight = Rc::clone(&self.worker.in_flight);
        let mut drain = self.worker.drain_listener();
        let mut first = true;
        loop {
            match self.read_head(&mut drain, first).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(refusal) => return self.refuse_head(site, refusal).await,
            }
            first = false;
            let Some(_in_flight) = in_flight.begin(self.settings.max_inflight) else {
                let detail = "this worker has too many requests in flight; retry shortly";
                match self
                    .refuse_request(site, ProblemKind::Overloaded, detail)
                    .await
                {
                    true => continue,
                    false => return,
                }
            };
            if matches!(self.head.framing, BodyFraming::Length(n) if n > self.settings.max_body) {
                let detail = format!(
                    "the request body is larger than {} bytes",
                    self.settings.max_body
                );
                self.refuse_request(site, ProblemKind::ContentTooLarge, &detail)
                    .await;
                return;
            }
            self.pace.restart();
            // While draining, a response that still said keep-alive (it was sent before the
            // signal) may have a next request on its way: the next read_head gives it a moment.
            if !site.handle(self).await {
                return;
            }
        }
    }

    /// Reads until `self.head` holds a complete head. Returns `Ok(false)` when the connection
    /// should close quietly: the client left, stayed idle too long (or, on a new connection,
    /// sent nothing within the header timeout), or the worker is draining while no request is
    /// under way.
    async fn read_head(
        &mut self,
        drain: &mut event_listener::EventListener,
        first: bool,
    ) -> Result<bool, HeadRefusal> {
        // A new connection must deliver its first head within the header timeout of opening;
        // later requests get the idle timeout until their first byte, then the header timeout.
        let mut head_deadline = first.then(|| Instant::now() + self.settings.header_timeout);
        let mut first_byte_seen = !self.buf.is_empty();
        self.head_started = Instant::now();
        loop {
            if !self.buf.is_empty() {
                let limits = &self.settings.head_limits;
                let parsed = http1::parse_request(self.buf.data(), limits, &mut self.head);
                if parsed.map_err(HeadRefusal::Invalid)? {
                    return Ok(true);
                }
            }
            let read = if self.buf.is_empty() {
                let idle_deadline = Instant::now() + self.settings.idle_timeout;
                self.read_idle(head_deadline.unwrap_or(idle_deadline), drain)
                    .await
            } else {
                let deadline = *head_deadline
                    .get_or_insert_with(|| Instant::now() + self.settings.header_timeout);
                self.read_until(deadline).await
            };
            match read {
                Some(Ok(n)) if n > 0 => {}
                // (A cancelled read may have taken the buffer with it: go by what was seen.)
                None if first_byte_seen => return Err(HeadRefusal::TooSlow),
                _ => return Ok(false),
            }
            if !first_byte_seen {
                first_byte_seen = true;
                self.head_started = Instant::now();
            }
        }
    }

    /// Waits for the first byte of a request. When draining starts (or has started), a
    /// request already on its way still gets [`DRAIN_IDLE_READ`] to arrive; the read is never
    /// cancelled and restarted in between, so no byte it took can be lost.
    async fn read_idle(
        &mut self,
        deadline: Instant,
        drain: &mut event_listener::EventListener,
    ) -> Option<io::Result<usize>> {
        let draining = self.worker.is_draining();
        let limit = self.settings.head_limits.head_bytes;
        let fill = self.buf.fill_within(&mut self.stream, limit);
        let fill = monoio::time::timeout_at(deadline.into(), fill);
        let mut fill = pin!(fill);
        let read = if draining {
            monoio::time::timeout(DRAIN_IDLE_READ, &mut fill).await.ok()
        } else {
            monoio::select! {
                read = &mut fill => Some(read),
                _ = drain => monoio::time::timeout(DRAIN_IDLE_READ, &mut fill).await.ok(),
            }
        };
        let read = read.and_then(Result::ok);
        if let Some(Ok(n)) = read {
            self.bytes_read += n as u64;
        }
        read
    }

    /// Reads more bytes (no more than the head size limit in the buffer), or `None` if
    /// `deadline` passes first.
    pub async fn read_until(&mut self, deadline: Instant) -> Option<io::Result<usize>> {
        let limit = self.settings.head_limits.head_bytes;
        let fill = self.buf.fill_within(&mut self.stream, limit);
        let read = monoio::time::timeout_at(deadline.into(), fill).await.ok();
        if let Some(Ok(n)) = read {
            self.bytes_read += n as u64;
        }
        read
    }

    /// Writes all of `self.out` to the client and clears it.
    pub async fn write_out(&mut self) -> io::Result<()> {
        self.bytes_written += self.out.len() as u64;
        write_all_from(&mut self.stream, &mut self.out).await
    }

    /// Reads more body bytes at the pace the settings ask for (see [`BodyPace`]). End of
    /// stream is `UnexpectedEof` (the body was cut short); a client too slow is `TimedOut`.
    pub async fn read_body_bytes(&mut self) -> io::Result<()> {
        let fill = self.buf.fill(&mut self.stream);
        let mut fill = pin!(fill);
        let mut window_started = Instant::now();
        loop {
            let budget = self.pace.budget();
            match monoio::time::timeout(budget, &mut fill).await {
                Ok(Ok(0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(Ok(n)) => {
                    self.bytes_read += n as u64;
                    return match self.pace.record(window_started.elapsed(), n as u64) {
                        true => Ok(()),
                        false => Err(io::ErrorKind::TimedOut.into()),
                    };
                }
                Ok(Err(error)) => return Err(error),
                // The window ended with the read still pending; it stays pending (cancelling
                // it could lose bytes it took) while the client is fast enough.
                Err(_) if self.pace.record(budget, 0) => window_started = Instant::now(),
                Err(_) => return Err(io::ErrorKind::TimedOut.into()),
            }
        }
    }

    /// Answers a head that could not be accepted, then the connection closes.
    async fn refuse_head<S: Site>(&mut self, site: &S, refusal: HeadRefusal) {
        let problem = match refusal {
            HeadRefusal::Invalid(error) => {
                let kind = match error.status() {
                    414 => ProblemKind::UriTooLong,
                    431 => ProblemKind::RequestHeadTooLarge,
                    _ => ProblemKind::BadRequest,
                };
                Problem::new(kind, error.detail(&self.settings.head_limits))
            }
            HeadRefusal::TooSlow => Problem::new(
                ProblemKind::RequestTimeout,
                "the request head did not arrive within the header timeout",
            ),
        };
        // The head may hold the previous request's figures, or a partial parse of this one.
        self.head.version = Version::Http11;
        self.head.keep_alive = false;
        self.head.is_head = false;
        let bytes_in = self.buf.len() as u64;
        let written_before = self.bytes_written;
        let _ = self.send_problem(&problem, false).await;
        let refusal_figures = Refusal {
            status: problem.status(),
            head_parsed: false,
            bytes_in,
            bytes_out: self.bytes_written - written_before,
        };
        site.record_refusal(self, refusal_figures);
        // A slow client would only make a lingering close last; anything else may still be
        // sending the rest of what was refused.
        self.linger_on_close = refusal != HeadRefusal::TooSlow;
    }

    /// Answers a parsed request with a problem of `kind` without handing it to the site.
    /// Returns whether the connection stays open (only when the request has no body to skip).
    async fn refuse_request<S: Site>(&mut self, site: &S, kind: ProblemKind, detail: &str) -> bool {
        let bodiless = self.head.has_no_body();
        let keep_alive = kind == ProblemKind::Overloaded && bodiless;
        let written_before = self.bytes_written;
        let mut problem = Problem::new(kind, detail);
        if kind == ProblemKind::Overloaded {
            problem = problem.with_retry_after(OVERLOAD_RETRY_AFTER_SECONDS);
        }
        let kept = self.send_problem(&problem, keep_alive).await;
        let refusal = Refusal {
            status: problem.status(),
            head_parsed: true,
            bytes_in: self.head.head_len as u64,
            bytes_out: self.bytes_written - written_before,
        };
        site.record_refusal(self, refusal);
        self.buf.consume(self.head.head_len);
        self.linger_on_close = !kept && !bodiless;
        kept
    }

    /// Closes the sending side, then reads and discards what the client still sends, for at
    /// most [`LINGERING_CLOSE_TIME`] and [`LINGERING_CLOSE_BYTES`], so that the answer already
    /// sent is not destroyed by a reset on close.
    async fn linger(&mut self) {
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let deadline = Instant::now() + LINGERING_CLOSE_TIME;
        let mut discarded = 0;
        while discarded < LINGERING_CLOSE_BYTES {
            self.buf.consume(self.buf.len());
            match self.read_until(deadline).await {
                Some(Ok(n)) if n > 0 => discarded += n as u64,
                _ => return,
            }
        }
    }

    /// Whether the response being written may leave the connection open.
    pub fn may_keep_alive(&self) -> bool {
        self.head.keep_alive && !self.worker.is_draining()
    }

    /// Sends a complete response with a fixed body. Returns whether the connection stays open.
    pub async fn send_response(
        &mut self,
        status: u16,
        content_type: &str,
        extra_headers: &[(&str, &str)],
        body: &[u8],
        keep_alive: bool,
    ) -> bool {
        let keep_alive = keep_alive && self.may_keep_alive();
        let omit_body = self.head.is_head;
        self.out.clear();
        write_status_line(status, reason_phrase(status), &mut self.out);
        write_header("content-type", content_type.as_bytes(), &mut self.out);
        write_header(
            "content-length",
            itoa::Buffer::new().format(body.len()).as_bytes(),
            &mut self.out,
        );
        for (name, value) in extra_headers {
            write_header(name, value.as_bytes(), &mut self.out);
        }
        write_connection_header(self.head.version, keep_alive, &mut self.out);
        self.out.extend_from_slice(b"\r\n");
        if !omit_body {
            self.out.extend_from_slice(body);
        }
        self.write_out().await.is_ok() && keep_alive
    }

    /// Sends a problem document. Returns whether the connection stays open.
    pub async fn send_problem(&mut self, problem: &Problem, keep_alive: bool) -> bool {
        let body = problem.to_json();
        let allow = problem.allow.map(|methods| ("allow", methods));
        let challenge = (problem.kind == ProblemKind::Unauthorized)
            .then_some(("www-authenticate", "Bearer realm=\"confab\""));
        let mut seconds = itoa::Buffer::new();
        let retry_after = problem
            .retry_after
            .map(|after| ("retry-after", seconds.format(after)));
        let extra: Vec<(&str, &str)> = allow
            .into_iter()
            .chain(challenge)
            .chain(retry_after)
            .collect();
        let extra = extra.as_slice();
        self.send_response(
            problem.status(),
            PROBLEM_CONTENT_TYPE,
            extra,
            body.as_bytes(),
            keep_alive,
        )
        .await
    }

    /// Reads the request body of an exchange confab answers itself, up to
    /// [`OWN_ENDPOINT_MAX_BODY_BYTES`]. The head must already be consumed from the buffer.
    /// Unless the body is [`OwnBody::Complete`], the connection must close after the answer.
    pub async fn read_own_body(&mut self) -> OwnBody {
        let mut body = Vec::new();
        let read = match self.head.framing {
            BodyFraming::None => Ok(()),
            BodyFraming::Length(length) if length <= OWN_ENDPOINT_MAX_BODY_BYTES => {
                self.read_exact_into(length, &mut body).await
            }
            BodyFraming::Length(_) => Err(io::ErrorKind::FileTooLarge.into()),
            BodyFraming::Chunked => self.read_chunked_into(&mut body).await,
        };
        match read {
            Ok(()) => OwnBody::Complete(body),
            Err(error) => {
                // The rest of the body may still be on its way: read it off before closing.
                self.linger_on_close = true;
                if error.kind() == io::ErrorKind::FileTooLarge {
                    OwnBody::TooLarge
                } else {
                    OwnBody::Broken
                }
            }
        }
    }

    async fn read_exact_into(&mut self, mut remaining: u64, body: &mut Vec<u8>) -> io::Result<()> {
        loop {
            let available = remaining.min(self.buf.len() as u64) as usize;
            body.extend_from_slice(&self.buf.data()[..available]);
            self.buf.consume(available);
            remaining -= available as u64;
            if remaining == 0 {
                return Ok(());
            }
            self.read_body_bytes().await?;
        }
    }

    async fn read_chunked_into(&mut self, body: &mut Vec<u8>) -> io::Result<()> {
        let mut decoder = ChunkedDecoder::default();
        loop {
            let (used, found) = decoder
                .decode(self.buf.data())
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
            if let Decoded::Data(range) = &found {
                body.extend_from_slice(&self.buf.data()[range.clone()]);
            }
            self.buf.consume(used);
            match found {
                Decoded::Done => return Ok(()),
                Decoded::Data(_) => {}
                Decoded::NeedMore => self.read_body_bytes().await?,
            }
            if body.len() as u64 > OWN_ENDPOINT_MAX_BODY_BYTES {
                return Err(io::ErrorKind::FileTooLarge.into());
            }
        }
    }
}

/// The body of a request to one of confab's own endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnBody {
    /// Read to its end.
    Complete(Vec<u8>),
    /// Longer than [`OWN_ENDPOINT_MAX_BODY_BYTES`]; not read to its end.
    TooLarge,
    /// Cut short or badly framed.
    Broken,
}

/// Appends `HTTP/1.1 <status> <reason>\r\n`.
pub fn write_status_line(status: u16, reason: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
}

/// Appends one header field.
pub fn write_header(name: &str, value: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends the `Connection` field a response needs, if any: `close` when the connection ends
/// after it, `keep-alive` when an HTTP/1.0 client may keep it.
pub fn write_connection_header(client_version: Version, keep_alive: bool, out: &mut Vec<u8>) {
    match (keep_alive, client_version) {
        (false, _) => out.extend_from_slice(b"connection: close\r\n"),
        (true, Version::Http10) => out.extend_from_slice(b"connection: keep-alive\r\n"),
        (true, Version::Http11) => {}
    }
}

/// The reason phrase confab writes for its own responses.
pub fn reason_phrase(status: u16) -> &'static [u8] {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .unwrap_or("")
        .as_bytes()
}
