//! Byte-level HTTP/1.1 reading shared by the raw test client and the fake upstreams: a buffered
//! reader over a stream (a `TcpStream`, or a TLS stream over one) that finds message heads, reads Content-Length, chunked and
//! close-delimited bodies, and keeps whatever it over-read for the next message.

use std::io::{self, Read};
use std::net::TcpStream;

/// Largest message head either side accepts before giving up.
pub const MAX_HEAD: usize = 2 * 1024 * 1024;

/// Largest single line (chunk-size line or trailer) accepted inside a chunked body.
const MAX_LINE: usize = 64 * 1024;

/// Header fields in the order they arrived, names as sent, values as raw bytes.
#[derive(Clone, Debug, Default)]
pub struct Headers(pub Vec<(String, Vec<u8>)>);

impl Headers {
    /// Copies the fields out of an `httparse` parse.
    pub fn from_parsed(fields: &[httparse::Header<'_>]) -> Self {
        let fields = fields
            .iter()
            .map(|field| (field.name.to_string(), field.value.to_vec()))
            .collect();
        Headers(fields)
    }

    /// The first value of `name` (case-insensitive), as text.
    pub fn get(&self, name: &str) -> Option<String> {
        self.get_all(name).into_iter().next()
    }

    /// Every value of `name` (case-insensitive), in arrival order, as text.
    pub fn get_all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
            .collect()
    }

    /// Whether any field is called `name` (case-insensitive).
    pub fn contains(&self, name: &str) -> bool {
        self.0
            .iter()
            .any(|(field, _)| field.eq_ignore_ascii_case(name))
    }

    /// Whether a comma-separated field `name` lists `token` (case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .iter()
            .flat_map(|value| value.split(','))
            .any(|item| item.trim().eq_ignore_ascii_case(token))
    }

    /// Every field name, lower-cased, in arrival order.
    pub fn names(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(name, _)| name.to_ascii_lowercase())
            .collect()
    }
}

/// How a message body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body at all (HEAD responses, 1xx, 204, 304, requests without a body).
    Empty,
    /// `Content-Length: n`.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// A response body that ends when the connection closes.
    Close,
}

/// A buffered reader over one connection.
pub struct Wire<S = TcpStream> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: Read> Wire<S> {
    pub fn new(stream: S) -> Self {
        Wire {
            stream,
            buf: Vec::new(),
        }
    }

    /// The underlying stream, for writing.
    pub fn stream(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Bytes received but not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Reads once more from the socket into the buffer; `Ok(0)` is end of stream. An
    /// interrupted read is retried, as `read_exact` would (a socket with a read timeout returns
    /// EINTR rather than restarting).
    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// Reads one message head, up to and including the empty line. `Ok(None)` means the peer
    /// closed the connection cleanly before sending any byte of a new message.
    pub fn read_head(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut searched = 0;
        loop {
            if let Some(end) = find(&self.buf[searched..], b"\r\n\r\n") {
                let head_len = searched + end + 4;
                return Ok(Some(self.buf.drain(..head_len).collect()));
            }
            searched = self.buf.len().saturating_sub(3);
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("message head too large"));
            }
            if self.fill()? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed inside a head: {:?}", lossy(&self.buf)),
                ));
            }
        }
    }

    /// Reads exactly `n` bytes.
    pub fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed after {} of {n} bytes", self.buf.len()),
                ));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads one CRLF-terminated line and returns it without the CRLF.
    fn take_line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let mut line: Vec<u8> = self.buf.drain(..end + 2).collect();
                line.truncate(end);
                return Ok(line);
            }
            if self.buf.len() > MAX_LINE {
                return Err(invalid("line too long in chunked body"));
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a chunked body",
                ));
            }
        }
    }

    /// Reads a chunked body and its trailer section; returns the decoded body and the trailers.
    pub fn read_chunked(&mut self) -> io::Result<(Vec<u8>, Headers)> {
        let mut body = Vec::new();
        loop {
            let line = self.take_line()?;
            let size = parse_chunk_size(&line)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&self.take(size)?);
            if self.take(2)? != b"\r\n" {
                return Err(invalid("chunk data not followed by CRLF"));
            }
        }
        let mut trailers = Vec::new();
        loop {
            let line = self.take_line()?;
            if line.is_empty() {
                return Ok((body, Headers(trailers)));
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            let (name, value) = text
                .split_once(':')
                .ok_or_else(|| invalid("trailer field without a colon"))?;
            trailers.push((name.to_string(), value.trim().as_bytes().to_vec()));
        }
    }

    /// Reads until the peer closes the connection; a reset counts as a close.
    pub fn read_to_eof(&mut self) -> io::Result<Vec<u8>> {
        loop {
            match self.fill() {
                Ok(0) => return Ok(std::mem::take(&mut self.buf)),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::ConnectionReset => {
                    return Ok(std::mem::take(&mut self.buf));
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Reads a body delimited as `framing` says.
    pub fn read_body(&mut self, framing: Framing) -> io::Result<(Vec<u8>, Headers)> {
        match framing {
            Framing::Empty => Ok((Vec::new(), Headers::default())),
            Framing::Length(n) => Ok((self.take(n)?, Headers::default())),
            Framing::Chunked => self.read_chunked(),
            Framing::Close => Ok((self.read_to_eof()?, Headers::default())),
        }
    }
}

/// Works out request body framing from the request's header fields (RFC 9112 section 6.3).
pub fn request_framing(headers: &Headers) -> io::Result<Framing> {
    if headers.contains("transfer-encoding") {
        let codings = headers.get_all("transfer-encoding").join(",");
        let last = codings.rsplit(',').next().unwrap_or_default().trim();
        if !last.eq_ignore_ascii_case("chunked") {
            return Err(invalid("request transfer coding is not chunked"));
        }
        return Ok(Framing::Chunked);
    }
    match headers.get("content-length") {
        Some(value) => Ok(Framing::Length(parse_length(&value)?)),
        None => Ok(Framing::Empty),
    }
}

/// Works out response body framing (RFC 9112 section 6.3).
pub fn response_framing(
    headers: &Headers,
    status: u16,
    request_was_head: bool,
) -> io::Result<Framing> {
    if request_was_head || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    if headers.has_token("transfer-encoding", "chunked") {
        return Ok(Framing::Chunked);
    }
    match headers.get("content-length") {
        Some(value) => Ok(Framing::Length(parse_length(&value)?)),
        None => Ok(Framing::Close),
    }
}

/// Encodes `chunks` as a chunked body, ending with the last chunk and an empty trailer section.
pub fn chunked(chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in chunks.iter().filter(|chunk| !chunk.is_empty()) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Position of the first occurrence of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Text of `bytes` for messages, invalid UTF-8 replaced.
pub fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn parse_length(value: &str) -> io::Result<usize> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid("bad Content-Length"))
}

fn parse_chunk_size(line: &[u8]) -> io::Result<usize> {
    let text = String::from_utf8_lossy(line);
    let digits = text.split(';').next().unwrap_or_default().trim();
    usize::from_str_radix(digits, 16).map_err(|_| invalid("bad chunk size"))
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}
