//! One client connection: read a request head, let the site handle the exchange, repeat while
//! keep-alive allows.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use super::io::{write_all_from, ReadBuf};
use super::shutdown::WorkerState;
use crate::http1::chunked::{ChunkedDecoder, Decoded};
use crate::http1::{self, BodyFraming, HeadError, RequestHead, Version};
use crate::problem::{Problem, ProblemKind, PROBLEM_CONTENT_TYPE};

/// Initial size of each connection's read buffer; it grows up to the head limit when needed.
pub const CLIENT_READ_BUFFER_BYTES: usize = 16 * 1024;
/// Longest time a client may take to send a whole request head once its first byte arrived.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request body confab's own endpoints read; a larger one gets its response and the
/// connection is closed instead of being read to the end.
pub const OWN_ENDPOINT_MAX_BODY_BYTES: u64 = 1024 * 1024;

/// What serves the requests of a connection: the proxy site or the mock upstream.
pub trait Site: 'static {
    /// Handles the exchange whose head is in `conn.head`, including its body. Returns whether
    /// the connection may carry another request.
    fn handle(&self, conn: &mut ClientConn) -> impl std::future::Future<Output = bool>;

    /// Called about once a second on the worker's thread, and once as the worker stops.
    fn tick(&self) {}
}

/// Per-connection settings shared by all connections of a worker.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub idle_timeout: Duration,
}

/// A client connection and its reusable buffers.
pub struct ClientConn {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub buf: ReadBuf,
    /// Scratch space for rendering heads and re-framed bodies.
    pub out: Vec<u8>,
    pub head: RequestHead,
    /// When the first byte of the current request arrived.
    pub head_started: Instant,
    /// Bytes read from and written to the client since the connection opened.
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub worker: Rc<WorkerState>,
    pub settings: Rc<ConnectionSettings>,
}

/// Serves one connection until the client leaves, keep-alive ends, or the worker drains.
pub async fn serve<S: Site>(
    stream: TcpStream,
    peer: SocketAddr,
    site: Rc<S>,
    worker: Rc<WorkerState>,
    settings: Rc<ConnectionSettings>,
) {
    let _open = worker.open_connection();
    let _ = stream.set_nodelay(true);
    let mut conn = ClientConn {
        stream,
        peer,
        buf: ReadBuf::with_capacity(CLIENT_READ_BUFFER_BYTES),
        out: Vec::with_capacity(CLIENT_READ_BUFFER_BYTES),
        head: RequestHead::default(),
        head_started: Instant::now(),
        bytes_read: 0,
        bytes_written: 0,
        worker,
        settings,
    };
    let mut drain = conn.worker.drain_listener();
    loop {
        match conn.read_head(&mut drain).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                conn.refuse_head(error).await;
                return;
            }
        }
        if !site.handle(&mut conn).await || conn.worker.is_draining() {
            return;
        }
    }
}

impl ClientConn {
    /// Reads until `self.head` holds a complete head. Returns `Ok(false)` when the connection
    /// should close quietly: the client left, stayed idle too long, or the worker is draining
    /// while no request is under way.
    async fn read_head(
        &mut self,
        drain: &mut event_listener::EventListener,
    ) -> Result<bool, HeadError> {
        let mut head_deadline = None;
        self.head_started = Instant::now();
        loop {
            if !self.buf.is_empty() && http1::parse_request(self.buf.data(), &mut self.head)? {
                return Ok(true);
            }
            let read = if self.buf.is_empty() {
                let deadline = Instant::now() + self.settings.idle_timeout;
                self.read_idle(deadline, drain).await
            } else {
                let deadline =
                    *head_deadline.get_or_insert_with(|| Instant::now() + HEADER_READ_TIMEOUT);
                self.read_until(deadline).await
            };
            if !matches!(read, Some(Ok(n)) if n > 0) {
                return Ok(false);
            }
            if head_deadline.is_none() {
                self.head_started = Instant::now();
            }
        }
    }

    /// Waits for the first byte of a request, giving up when draining starts.
    async fn read_idle(
        &mut self,
        deadline: Instant,
        drain: &mut event_listener::EventListener,
    ) -> Option<io::Result<usize>> {
        if self.worker.is_draining() {
            return None;
        }
        monoio::select! {
            read = self.read_until(deadline) => read,
            _ = drain => None,
        }
    }

    /// Reads more bytes, or `None` if `deadline` passes first.
    pub async fn read_until(&mut self, deadline: Instant) -> Option<io::Result<usize>> {
        let read = monoio::time::timeout_at(deadline.into(), self.buf.fill(&mut self.stream))
            .await
            .ok();
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

    /// Reads more body bytes, waiting at most the idle timeout. End of stream is an error: the
    /// body was cut short.
    pub async fn read_body_bytes(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + self.settings.idle_timeout;
        match self.read_until(deadline).await {
            Some(Ok(0)) => Err(io::ErrorKind::UnexpectedEof.into()),
            Some(Ok(_)) => Ok(()),
            Some(Err(error)) => Err(error),
            None => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    /// Answers a head that could not be accepted, then the connection closes.
    async fn refuse_head(&mut self, error: HeadError) {
        let kind = match error.status() {
            414 => ProblemKind::UriTooLong,
            431 => ProblemKind::RequestHeadTooLarge,
            _ => ProblemKind::BadRequest,
        };
        self.head.version = Version::Http11;
        self.head.keep_alive = false;
        let problem = Problem::new(kind, error.to_string());
        let _ = self.send_problem(&problem, false).await;
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
            BodyFraming::Length(_) => return OwnBody::TooLarge,
            BodyFraming::Chunked => self.read_chunked_into(&mut body).await,
        };
        match read {
            Ok(()) => OwnBody::Complete(body),
            Err(error) if error.kind() == io::ErrorKind::FileTooLarge => OwnBody::TooLarge,
            Err(_) => OwnBody::Broken,
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
