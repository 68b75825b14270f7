//! A raw HTTP/1.1 test client: sends exact bytes over a real socket and reads responses with
//! `httparse`, following Content-Length, chunked and close-delimited framing and HEAD rules.
//! Every socket has read and write timeouts, so a server bug fails a test instead of hanging it.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::wire::{self, Framing, Headers, Wire};

/// How long any single read or write on a client socket may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The Host header the client sends unless a test says otherwise.
pub const CLIENT_HOST: &str = "client.test:8080";

/// One response as the client received it.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub minor_version: u8,
    pub headers: Headers,
    pub body: Vec<u8>,
    pub framing: Framing,
    pub trailers: Headers,
}

impl Response {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        wire::lossy(&self.body)
    }

    /// The body parsed as JSON; panics with the body if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_slice(&self.body) {
            Ok(value) => value,
            Err(err) => panic!("response body is not JSON ({err}): {:?}", self.text()),
        }
    }

    /// Whether the response says the server closes the connection after it.
    pub fn says_close(&self) -> bool {
        self.headers.has_token("connection", "close")
    }
}

/// A client connection to a server under test.
pub struct Client {
    wire: Wire,
}

impl Client {
    /// Connects to `addr` with connect, read and write timeouts.
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .unwrap_or_else(|err| panic!("connect to {addr}: {err}"));
        Client::from_stream(stream)
    }

    /// A client on an already connected socket, given the client timeouts.
    pub fn from_stream(stream: TcpStream) -> Self {
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("set client read timeout");
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .expect("set client write timeout");
        stream.set_nodelay(true).expect("set client TCP_NODELAY");
        Client {
            wire: Wire::new(stream),
        }
    }

    /// A second handle on the socket, for writing from another thread.
    pub fn writer(&mut self) -> TcpStream {
        self.wire.stream().try_clone().expect("clone client socket")
    }

    /// Sends `bytes` exactly as given.
    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes).expect("client write");
    }

    /// Sends `bytes`, reporting write errors (for servers allowed to close early).
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.wire.stream();
        stream.write_all(bytes)?;
        stream.flush()
    }

    /// Sends a request and reads its response.
    pub fn exchange(&mut self, request: &[u8]) -> Response {
        self.send(request);
        self.response()
    }

    /// Sends a HEAD request (or any request whose response has no body) and reads the response.
    pub fn exchange_head(&mut self, request: &[u8]) -> Response {
        self.send(request);
        self.head_response()
    }

    /// Reads one full response to a request other than HEAD.
    pub fn response(&mut self) -> Response {
        self.try_response(false).expect("read response")
    }

    /// Reads one full response to a HEAD request.
    pub fn head_response(&mut self) -> Response {
        self.try_response(true).expect("read response to HEAD")
    }

    /// Reads one full response, skipping interim (1xx) responses.
    pub fn try_response(&mut self, request_was_head: bool) -> io::Result<Response> {
        loop {
            let mut response = self.try_head()?;
            if (100..200).contains(&response.status) {
                continue;
            }
            response.framing =
                wire::response_framing(&response.headers, response.status, request_was_head)?;
            let (body, trailers) = self.wire.read_body(response.framing)?;
            response.body = body;
            response.trailers = trailers;
            return Ok(response);
        }
    }

    /// Reads a response head only; the body stays unread (see [`Client::read_to_end`]).
    pub fn head_only(&mut self) -> Response {
        let mut response = self.try_head().expect("read response head");
        response.framing = wire::response_framing(&response.headers, response.status, false)
            .expect("response framing");
        response
    }

    fn try_head(&mut self) -> io::Result<Response> {
        let head = self.wire.read_head()?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            )
        })?;
        parse_head(&head)
    }

    /// Reads everything up to the server's close; panics if the server keeps it open.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        self.wire
            .read_to_eof()
            .expect("server should close the connection")
    }

    /// Reads everything up to the server's close (a reset counts as one), reporting an error
    /// (a read timeout: the server kept the connection open) instead of panicking.
    pub fn wire_rest(&mut self) -> io::Result<Vec<u8>> {
        self.wire.read_to_eof()
    }

    /// Asserts the server closes the connection without sending anything more.
    pub fn assert_closed(&mut self) {
        let rest = self.read_to_end();
        assert!(
            rest.is_empty(),
            "expected the connection to close, got more bytes: {:?}",
            wire::lossy(&rest)
        );
    }

    /// Bytes received but not yet consumed by a read.
    pub fn buffered(&self) -> &[u8] {
        self.wire.buffered()
    }
}

fn parse_head(head: &[u8]) -> io::Result<Response> {
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut parsed = httparse::Response::new(&mut fields);
    let status = parsed.parse(head).map_err(|err| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad response head ({err}): {:?}", wire::lossy(head)),
        )
    })?;
    if status.is_partial() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("incomplete response head: {:?}", wire::lossy(head)),
        ));
    }
    Ok(Response {
        status: parsed.code.unwrap_or_default(),
        reason: parsed.reason.unwrap_or_default().to_string(),
        minor_version: parsed.version.unwrap_or_default(),
        headers: Headers::from_parsed(parsed.headers),
        body: Vec::new(),
        framing: Framing::Empty,
        trailers: Headers::default(),
    })
}

/// `GET target` with the default client Host and nothing else.
pub fn get(target: &str) -> Vec<u8> {
    request("GET", target, &[], b"")
}

/// A request with `headers` in the given order. Adds `Host: client.test:8080` unless a Host is
/// given, and `Content-Length` for a non-empty body unless a framing header is given.
pub fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let has = |name: &str| headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(name));
    let mut out = format!("{method} {target} HTTP/1.1\r\n");
    if !has("host") {
        out.push_str(&format!("Host: {CLIENT_HOST}\r\n"));
    }
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() && !has("content-length") && !has("transfer-encoding") {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}
