//! Request and response heads: parsing with `httparse`, then the framing and header rules a
//! proxy must enforce. Parsed heads refer to the read buffer through [`Span`]s and are reused
//! from request to request, so parsing allocates only when a head has more fields than any
//! before it on the same connection.

use std::mem::MaybeUninit;

use super::headers::{
    comma_items, is_hop_by_hop, is_protected_from_connection, is_set_by_proxy, parse_content_length,
};
use super::{HeadLimits, HEADERS_CEILING};

/// A byte range of the buffer a head was parsed from. Heads are at most
/// [`HEAD_BYTES_CEILING`](super::HEAD_BYTES_CEILING) long, so `u32` offsets suffice and keep
/// header tables compact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The span of `part`, which must be a sub-slice of `buf`. One that is not (a bug) is an
    /// assertion failure in debug builds and an empty span otherwise, never a span past `buf`.
    fn within(buf: &[u8], part: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
        let inside = start <= buf.len() && part.len() <= buf.len() - start;
        debug_assert!(inside, "a span outside its buffer");
        match inside {
            true => Span::new(start, start + part.len()),
            false => Span::default(),
        }
    }

    fn new(start: usize, end: usize) -> Span {
        // Heads are bounded by HEAD_BYTES_CEILING, far below u32::MAX.
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// The bytes this span covers in `buf`.
    pub fn of<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }

    /// Whether the span covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// One header field of a parsed head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderSpan {
    pub name: Span,
    pub value: Span,
    /// Whether the proxy passes this field on (false for hop-by-hop fields, fields named by
    /// `Connection`, and fields the proxy sets itself).
    pub forward: bool,
}

/// The HTTP version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    Http10,
    #[default]
    Http11,
}

/// How a request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyFraming {
    /// No body (neither `Content-Length` nor `Transfer-Encoding`).
    #[default]
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// The form of a request target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    /// `/path?query`.
    #[default]
    Origin,
    /// `http://authority/path?query`: `path` spans from the path on.
    Absolute { authority: Span },
    /// `*`, only with `OPTIONS`.
    Asterisk,
}

/// A validated request head. Reuse one per connection: [`parse_request`] overwrites it.
#[derive(Debug, Default)]
pub struct RequestHead {
    pub method: Span,
    /// The whole request target as sent.
    pub target: Span,
    /// The path and query of the target (for absolute-form, what follows the authority).
    pub path_and_query: Span,
    /// The path alone, without the query.
    pub path: Span,
    pub target_form: Target,
    pub version: Version,
    pub headers: Vec<HeaderSpan>,
    /// Length of the head in bytes, including the blank line that ends it.
    pub head_len: usize,
    pub framing: BodyFraming,
    /// Whether the client allows the connection to stay open after this exchange.
    pub keep_alive: bool,
    pub expect_continue: bool,
    /// The `Host` field's value, if any.
    pub host: Option<Span>,
    /// Whether the method is HEAD (whose response never has a body).
    pub is_head: bool,
}

impl RequestHead {
    /// Whether the method is idempotent (RFC 9110 §9.2.2), so a failed attempt may be retried.
    pub fn is_idempotent(&self, buf: &[u8]) -> bool {
        matches!(
            self.method.of(buf),
            b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
        )
    }

    /// Whether the request carries no body at all.
    pub fn has_no_body(&self) -> bool {
        matches!(self.framing, BodyFraming::None | BodyFraming::Length(0))
    }
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseFraming {
    /// No body: a response to HEAD, a 204 or a 304.
    #[default]
    None,
    Length(u64),
    Chunked,
    /// Neither length nor chunked: the body ends when the upstream closes.
    UntilClose,
}

/// A validated response head from the upstream. Reuse one per upstream exchange.
#[derive(Debug, Default)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: Span,
    pub version: Version,
    pub headers: Vec<HeaderSpan>,
    pub head_len: usize,
    pub framing: ResponseFraming,
    /// The upstream's `Content-Length`, kept so that responses without a body (to HEAD, 304)
    /// can still announce it.
    pub content_length: Option<u64>,
    /// Whether the upstream connection may carry another request after this response.
    pub keep_alive: bool,
}

/// Why a head was refused. Each maps to one status in [`HeadError::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("the request line is longer than the limit")]
    UriTooLong,
    #[error("the head is larger than the limit")]
    HeadTooLarge,
    #[error("the head has more header fields than the limit")]
    TooManyHeaders,
    #[error("{0}")]
    Malformed(&'static str),
}

impl HeadError {
    /// What a problem document says about this error, with the limit that was exceeded.
    pub fn detail(&self, limits: &HeadLimits) -> String {
        match self {
            HeadError::UriTooLong => format!(
                "the request line is longer than {} bytes",
                limits.request_line_bytes
            ),
            HeadError::HeadTooLarge => {
                format!("the head is larger than {} bytes", limits.head_bytes)
            }
            HeadError::TooManyHeaders => {
                format!("the head has more than {} header fields", limits.headers)
            }
            HeadError::Malformed(reason) => (*reason).to_string(),
        }
    }

    /// The status a client receives for this error.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::UriTooLong => 414,
            HeadError::HeadTooLarge | HeadError::TooManyHeaders => 431,
            HeadError::Malformed(_) => 400,
        }
    }
}

/// Field slots for the parser, as many as the highest header count limit. They stay
/// uninitialised until the parser writes them, so only the slots a head uses cost anything.
type HeaderSlots<'a> = [MaybeUninit<httparse::Header<'a>>; HEADERS_CEILING];

fn empty_slots<'a>() -> HeaderSlots<'a> {
    [const { MaybeUninit::uninit() }; HEADERS_CEILING]
}

/// The first `limits.headers` of `slots` (all of them, should the limit exceed the ceiling).
fn limited<'s, 'a>(
    slots: &'s mut HeaderSlots<'a>,
    limits: &HeadLimits,
) -> &'s mut [MaybeUninit<httparse::Header<'a>>] {
    &mut slots[..limits.headers.min(HEADERS_CEILING)]
}

/// Parses a request head from the start of `buf` into `head`, under `limits`.
///
/// Returns `Ok(false)` when `buf` holds only part of a head (read more and call again), and
/// `Ok(true)` when `head` holds a complete, validated head.
pub fn parse_request(
    buf: &[u8],
    limits: &HeadLimits,
    head: &mut RequestHead,
) -> Result<bool, HeadError> {
    let mut slots = empty_slots();
    let mut request = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut request,
        buf,
        limited(&mut slots, limits),
    );
    let head_len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return partial_request_verdict(buf, limits),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(error) => return Err(request_syntax_error(buf, limits, error)),
    };
    if request_line_len(buf) > limits.request_line_bytes {
        return Err(HeadError::UriTooLong);
    }
    if head_len > limits.head_bytes {
        return Err(HeadError::HeadTooLarge);
    }
    refuse_bare_line_feeds(&buf[..head_len])?;
    fill_request(buf, &request, head_len, head)?;
    Ok(true)
}

/// What an incomplete head means: wait for more, unless a limit is already exceeded.
fn partial_request_verdict(buf: &[u8], limits: &HeadLimits) -> Result<bool, HeadError> {
    let line_end = buf.iter().position(|&byte| byte == b'\n');
    match line_end {
        None if buf.len() > limits.request_line_bytes => Err(HeadError::UriTooLong),
        Some(end) if end > limits.request_line_bytes => Err(HeadError::UriTooLong),
        _ if buf.len() >= limits.head_bytes => Err(HeadError::HeadTooLarge),
        _ => Ok(false),
    }
}

/// A syntax error, unless the request line alone is already too long (then 414 wins, as a
/// long line is the likelier cause).
fn request_syntax_error(buf: &[u8], limits: &HeadLimits, error: httparse::Error) -> HeadError {
    if request_line_len(buf) > limits.request_line_bytes {
        return HeadError::UriTooLong;
    }
    HeadError::Malformed(match error {
        httparse::Error::HeaderName => "invalid header field name",
        httparse::Error::HeaderValue => "invalid header field value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Version => "unsupported HTTP version",
        httparse::Error::Token => "invalid method",
        _ => "malformed request line",
    })
}

/// Refuses a head with a line feed that is not part of a CRLF. `httparse` accepts a bare LF as
/// a line end (RFC 9112 §2.2 allows, not requires, that); a proxy that did so would see a field
/// boundary where a stricter server behind it sees a CR-less value, so confab refuses it, as it
/// refuses a bare CR (which `httparse` already does).
fn refuse_bare_line_feeds(head: &[u8]) -> Result<(), HeadError> {
    let bare = memchr::memchr_iter(b'\n', head).any(|at| at == 0 || head[at - 1] != b'\r');
    match bare {
        true => Err(HeadError::Malformed("line feed without a carriage return")),
        false => Ok(()),
    }
}

fn request_line_len(buf: &[u8]) -> usize {
    buf.iter()
        .position(|&byte| byte == b'\n')
        .unwrap_or(buf.len())
}

fn fill_request(
    buf: &[u8],
    request: &httparse::Request<'_, '_>,
    head_len: usize,
    head: &mut RequestHead,
) -> Result<(), HeadError> {
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Err(HeadError::Malformed("incomplete request line"));
    };
    head.method = Span::within(buf, method.as_bytes());
    head.is_head = method == "HEAD";
    head.target = Span::within(buf, target.as_bytes());
    head.version = if version == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    head.head_len = head_len;
    split_target(buf, head)?;
    record_headers(buf, request.headers, &mut head.headers);
    apply_request_fields(buf, head)
}

/// Classifies the target's form and finds its path and query.
fn split_target(buf: &[u8], head: &mut RequestHead) -> Result<(), HeadError> {
    let target = head.target.of(buf);
    let start = head.target.start as usize;
    let (form, path_start) = if target.first() == Some(&b'/') {
        (Target::Origin, start)
    } else if target == b"*" {
        if head.method.of(buf) != b"OPTIONS" {
            return Err(HeadError::Malformed(
                "the asterisk target is only for OPTIONS",
            ));
        }
        (Target::Asterisk, start)
    } else {
        absolute_form(target, start)?
    };
    let end = head.target.end as usize;
    head.target_form = form;
    head.path_and_query = Span::new(path_start, end);
    let query_at = buf[path_start..end].iter().position(|&byte| byte == b'?');
    head.path = Span::new(path_start, query_at.map_or(end, |at| path_start + at));
    Ok(())
}

/// Splits `http://authority/path` into its authority and the offset of its path. An empty path
/// is not allowed: the proxy forwards origin-form and will not invent a `/`.
fn absolute_form(target: &[u8], start: usize) -> Result<(Target, usize), HeadError> {
    let scheme_len = if starts_with_ignore_case(target, b"http://") {
        7
    } else if starts_with_ignore_case(target, b"https://") {
        8
    } else {
        return Err(HeadError::Malformed("unsupported request target"));
    };
    let rest = &target[scheme_len..];
    let Some(path_at) = rest.iter().position(|&byte| byte == b'/') else {
        return Err(HeadError::Malformed("absolute target without a path"));
    };
    if path_at == 0 {
        return Err(HeadError::Malformed("absolute target without an authority"));
    }
    let authority = Span::new(start + scheme_len, start + scheme_len + path_at);
    Ok((Target::Absolute { authority }, start + scheme_len + path_at))
}

fn starts_with_ignore_case(haystack: &[u8], prefix: &[u8]) -> bool {
    haystack.len() >= prefix.len() && haystack[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn record_headers(buf: &[u8], parsed: &[httparse::Header<'_>], out: &mut Vec<HeaderSpan>) {
    out.clear();
    out.extend(parsed.iter().map(|header| HeaderSpan {
        name: Span::within(buf, header.name.as_bytes()),
        value: Span::within(buf, header.value),
        forward: true,
    }));
}

/// What the framing and connection fields of a request say, gathered in one pass.
#[derive(Default)]
struct RequestFields {
    content_length: Option<u64>,
    content_length_fields: usize,
    transfer_encoding_fields: usize,
    host_fields: usize,
    host: Option<Span>,
    close: bool,
    keep_alive: bool,
    connection_options: bool,
    expect_continue: bool,
}

fn apply_request_fields(buf: &[u8], head: &mut RequestHead) -> Result<(), HeadError> {
    let fields = gather_request_fields(buf, &mut head.headers)?;
    head.framing = request_framing(head.version, &fields)?;
    if fields.host_fields > 1 {
        return Err(HeadError::Malformed("more than one Host field"));
    }
    if head.version == Version::Http11 && fields.host_fields == 0 {
        return Err(HeadError::Malformed(
            "an HTTP/1.1 request needs a Host field",
        ));
    }
    head.host = fields.host;
    head.expect_continue = fields.expect_continue;
    head.keep_alive = match head.version {
        Version::Http11 => !fields.close,
        Version::Http10 => fields.keep_alive && !fields.close,
    };
    if fields.connection_options {
        drop_connection_options(buf, &mut head.headers)?;
    }
    Ok(())
}

fn gather_request_fields(
    buf: &[u8],
    headers: &mut [HeaderSpan],
) -> Result<RequestFields, HeadError> {
    let mut fields = RequestFields::default();
    for header in headers.iter_mut() {
        let name = header.name.of(buf);
        let value = header.value.of(buf);
        header.forward = !is_hop_by_hop(name) && !is_set_by_proxy(name);
        if name.eq_ignore_ascii_case(b"content-length") {
            let length = parse_content_length(value)
                .ok_or(HeadError::Malformed("invalid Content-Length"))?;
            if fields.content_length.is_some_and(|seen| seen != length) {
                return Err(HeadError::Malformed("conflicting Content-Length fields"));
            }
            fields.content_length = Some(length);
            fields.content_length_fields += 1;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if !value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(HeadError::Malformed("unsupported Transfer-Encoding"));
            }
            fields.transfer_encoding_fields += 1;
        } else if name.eq_ignore_ascii_case(b"host") {
            fields.host_fields += 1;
            fields.host = Some(header.value);
        } else if name.eq_ignore_ascii_case(b"connection") {
            note_connection_options(value, &mut fields);
        } else if name.eq_ignore_ascii_case(b"expect") {
            fields.expect_continue = value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
    }
    Ok(fields)
}

fn note_connection_options(value: &[u8], fields: &mut RequestFields) {
    for option in comma_items(value) {
        if option.eq_ignore_ascii_case(b"close") {
            fields.close = true;
        } else if option.eq_ignore_ascii_case(b"keep-alive") {
            fields.keep_alive = true;
        } else {
            fields.connection_options = true;
        }
    }
}

fn request_framing(version: Version, fields: &RequestFields) -> Result<BodyFraming, HeadError> {
    match (fields.transfer_encoding_fields, fields.content_length) {
        (0, None) => Ok(BodyFraming::None),
        (0, Some(length)) => Ok(BodyFraming::Length(length)),
        (_, _) if version == Version::Http10 => Err(HeadError::Malformed(
            "Transfer-Encoding is not allowed in HTTP/1.0",
        )),
        (1, None) => Ok(BodyFraming::Chunked),
        (1, Some(_)) => Err(HeadError::Malformed(
            "both Content-Length and Transfer-Encoding",
        )),
        _ => Err(HeadError::Malformed(
            "more than one Transfer-Encoding field",
        )),
    }
}

/// Marks the fields named by `Connection` options as not forwarded, refusing options that
/// name fields the proxy must always send.
fn drop_connection_options(buf: &[u8], headers: &mut [HeaderSpan]) -> Result<(), HeadError> {
    let mut named = Vec::new();
    for header in headers.iter() {
        if header.name.of(buf).eq_ignore_ascii_case(b"connection") {
            named.extend(comma_items(header.value.of(buf)));
        }
    }
    if named
        .iter()
        .any(|option| is_protected_from_connection(option))
    {
        return Err(HeadError::Malformed(
            "Connection names Host or an X-Forwarded field",
        ));
    }
    for header in headers.iter_mut() {
        let name = header.name.of(buf);
        if named.iter().any(|option| option.eq_ignore_ascii_case(name)) {
            header.forward = false;
        }
    }
    Ok(())
}

/// Parses an upstream response head from the start of `buf` into `head`, under `limits` (all
/// but the request line limit apply).
///
/// `request_was_head` tells whether the request was HEAD, whose response has no body whatever
/// its fields say. Returns `Ok(false)` when more bytes are needed.
pub fn parse_response(
    buf: &[u8],
    request_was_head: bool,
    limits: &HeadLimits,
    head: &mut ResponseHead,
) -> Result<bool, HeadError> {
    let mut slots = empty_slots();
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        limited(&mut slots, limits),
    );
    let head_len = match parsed {
        Ok(httparse::Status::Complete(len)) if len > limits.head_bytes => {
            return Err(HeadError::HeadTooLarge)
        }
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= limits.head_bytes => {
            return Err(HeadError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(false),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(_) => return Err(HeadError::Malformed("malformed response head")),
    };
    refuse_bare_line_feeds(&buf[..head_len])?;
    let (Some(status), Some(version)) = (response.code, response.version) else {
        return Err(HeadError::Malformed("incomplete status line"));
    };
    head.status = status;
    head.reason = reason_span(buf, head_len);
    head.version = if version == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    head.head_len = head_len;
    record_headers(buf, response.headers, &mut head.headers);
    apply_response_fields(buf, request_was_head, head)
}

/// Where the reason phrase starts in a status line: after `HTTP/1.x NNN ` (the parser takes
/// exactly one space on either side of the code).
const REASON_START: usize = "HTTP/1.1 200 ".len();

/// The reason phrase of the status line that starts `buf` (a complete head of `head_len`
/// bytes), as raw bytes. `httparse` hands the reason over as text, and as a constant empty one
/// when it is not UTF-8 (obs-text, which RFC 9112 allows in a reason), so it is found in the
/// status line itself.
fn reason_span(buf: &[u8], head_len: usize) -> Span {
    let head = &buf[..head_len];
    let line_end = memchr::memchr(b'\n', head).unwrap_or(head_len);
    let line = &head[..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line.get(REASON_START..) {
        Some(reason) => Span::within(buf, reason),
        None => Span::new(line.len(), line.len()),
    }
}

fn apply_response_fields(
    buf: &[u8],
    request_was_head: bool,
    head: &mut ResponseHead,
) -> Result<bool, HeadError> {
    if !(100..=999).contains(&head.status) {
        return Err(HeadError::Malformed("status code out of range"));
    }
    let mut content_length = None;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive = false;
    let mut connection_options = false;
    for header in head.headers.iter_mut() {
        let name = header.name.of(buf);
        let value = header.value.of(buf);
        header.forward = !is_hop_by_hop(name);
        if name.eq_ignore_ascii_case(b"content-length") {
            let length = parse_content_length(value)
                .ok_or(HeadError::Malformed("invalid Content-Length"))?;
            if content_length.is_some_and(|seen| seen != length) {
                return Err(HeadError::Malformed("conflicting Content-Length fields"));
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if chunked || !value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(HeadError::Malformed("unsupported Transfer-Encoding"));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in comma_items(value) {
                if option.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                } else {
                    connection_options = true;
                }
            }
        }
    }
    if chunked && content_length.is_some() {
        return Err(HeadError::Malformed(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    if connection_options {
        drop_response_connection_options(buf, &mut head.headers);
    }
    head.framing = response_framing(head.status, request_was_head, chunked, content_length);
    head.content_length = content_length;
    head.keep_alive = match head.version {
        Version::Http11 => !close,
        Version::Http10 => keep_alive && !close,
    } && head.framing != ResponseFraming::UntilClose;
    Ok(true)
}

fn response_framing(
    status: u16,
    request_was_head: bool,
    chunked: bool,
    content_length: Option<u64>,
) -> ResponseFraming {
    if request_was_head || status == 204 || status == 304 || status < 200 {
        return ResponseFraming::None;
    }
    match (chunked, content_length) {
        (true, _) => ResponseFraming::Chunked,
        (false, Some(length)) => ResponseFraming::Length(length),
        (false, None) => ResponseFraming::UntilClose,
    }
}

fn drop_response_connection_options(buf: &[u8], headers: &mut [HeaderSpan]) {
    let mut named = Vec::new();
    for header in headers.iter() {
        if header.name.of(buf).eq_ignore_ascii_case(b"connection") {
            named.extend(comma_items(header.value.of(buf)));
        }
    }
    for header in headers.iter_mut() {
        let name = header.name.of(buf);
        if named.iter().any(|option| option.eq_ignore_ascii_case(name)) {
            header.forward = false;
        }
    }
}
