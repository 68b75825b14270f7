//! The reverse proxy: forwards one exchange from a client connection to the upstream.
//!
//! An exchange runs in four steps on the worker that accepted the client: render the upstream
//! request head (hop-by-hop fields dropped, `Host` and `X-Forwarded-*` set), send it with the
//! body (a `Content-Length` body streams through; a chunked one is buffered in full first, see
//! [`spool`], and sent with a `Content-Length`), read the response head, and relay the
//! response with its body streamed back. Small bodies ride in the same write as their head. A
//! failure before any response byte reaches the client becomes one problem response; a failure
//! after that closes the client connection, so the client sees a short body, never a second
//! status line.

pub mod pool;
pub mod spool;
pub mod stream;
pub mod tls;
pub mod upstream;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use monoio::io::AsyncWriteRentExt;

use crate::http1::chunked::{
    write_chunk_header, write_chunk_trailer, ChunkedDecoder, Decoded, LAST_CHUNK,
};
use crate::http1::{self, BodyFraming, HeadLimits, ResponseFraming, ResponseHead, Target, Version};
use crate::problem::{Problem, ProblemKind};
use crate::server::connection::{
    write_connection_header, write_header, write_status_line, ClientConn,
};
use crate::server::io::{write_all_from, write_all_retaining};
use pool::{UpstreamConn, UpstreamPool};
use spool::SpooledBody;
use upstream::UpstreamTarget;

/// Bodies up to this size that have already arrived are sent in the same write as their head.
pub const MAX_COALESCED_BODY_BYTES: usize = 16 * 1024;

/// How the proxy treats every exchange of a worker.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Longest wait for the response head after the request is sent, and between two reads of
    /// the response body.
    pub upstream_timeout: Duration,
    /// Largest request body accepted; a chunked body gets 413 once it passes it while it is
    /// buffered.
    pub max_body: u64,
    /// The limits of the upstream's response heads.
    pub head_limits: HeadLimits,
    /// Where chunked bodies longer than [`spool::SPOOL_MEMORY_BYTES`] are buffered.
    pub spool_dir: PathBuf,
}

/// How an exchange ended, for the access log and statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardOutcome {
    /// The status the client was sent (0 if nothing could be sent).
    pub status: u16,
    /// Whether the client connection may carry another request.
    pub keep_alive: bool,
    /// The upstream failure, if the exchange failed on the upstream side.
    pub upstream_failure: Option<ProblemKind>,
}

/// The facts about a request that outlive its head in the read buffer.
#[derive(Debug, Clone, Copy)]
struct RequestInfo {
    is_head: bool,
    /// Idempotent and without a body: safe to send again on a new connection.
    retryable: bool,
    framing: BodyFraming,
    client_version: Version,
    expect_continue: bool,
}

/// Why an exchange failed before its response head reached the client.
#[derive(Debug, Clone, Copy)]
enum Failure {
    Upstream {
        kind: ProblemKind,
        /// Nothing came back from the upstream before the failure.
        before_any_byte: bool,
        /// The whole request body had been read from the client.
        body_complete: bool,
    },
    /// The client's chunked body was malformed.
    ClientBody,
    /// The client's chunked body grew past the body limit.
    ClientBodyTooLarge,
    /// The client's chunked body could not be buffered (no temporary file could be written).
    BodyNotBuffered,
    /// The client sent its body slower than the minimum rate.
    ClientTooSlow,
    /// The client went away while sending its body.
    ClientGone,
}

/// The failure a client body read error means: too slow, or gone.
fn client_read_failure(error: std::io::Error) -> Failure {
    match error.kind() {
        std::io::ErrorKind::TimedOut => Failure::ClientTooSlow,
        _ => Failure::ClientGone,
    }
}

/// Forwards the exchange whose head is in `conn.head`.
pub async fn forward(
    conn: &mut ClientConn,
    pool: &UpstreamPool,
    settings: &ProxySettings,
) -> ForwardOutcome {
    let buf = conn.buf.data();
    let info = RequestInfo {
        is_head: conn.head.is_head,
        retryable: conn.head.is_idempotent(buf) && conn.head.has_no_body(),
        framing: conn.head.framing,
        client_version: conn.head.version,
        expect_continue: conn.head.expect_continue,
    };
    render_request_fields(
        buf,
        &conn.head,
        &conn.forwarded_for,
        pool.target(),
        &mut conn.out,
    );
    conn.buf.consume(conn.head.head_len);
    let mut spooled = None;
    if info.framing == BodyFraming::Chunked {
        match spool_chunked(conn, info, settings).await {
            Ok(body) => spooled = Some(body),
            Err(failure) => return fail(conn, info, failure).await,
        }
    }
    let sent_framing = spooled
        .as_ref()
        .map_or(info.framing, |body| BodyFraming::Length(body.len()));
    end_request_head(sent_framing, &mut conn.out);
    // A buffered body has been read in full: failures from here on leave the client
    // connection usable.
    let body_complete = spooled.is_some();

    let mut upstream = match pool.checkout().await {
        Ok(upstream) => upstream,
        Err(kind) => return fail(conn, info, upstream_failure(kind, true, body_complete)).await,
    };
    let mut result = exchange(conn, &mut upstream, info, spooled.as_mut(), settings).await;
    if should_retry(&result, &upstream, info) {
        upstream = match pool.connect().await {
            Ok(fresh) => fresh,
            Err(kind) => return fail(conn, info, upstream_failure(kind, true, true)).await,
        };
        result = exchange(conn, &mut upstream, info, spooled.as_mut(), settings).await;
    }
    conn.out.clear();
    match result {
        Ok(()) => relay(conn, upstream, pool, info, settings).await,
        Err(failure) => fail(conn, info, failure).await,
    }
}

fn upstream_failure(kind: ProblemKind, before_any_byte: bool, body_complete: bool) -> Failure {
    Failure::Upstream {
        kind,
        before_any_byte,
        body_complete,
    }
}

/// A reused connection that failed before answering was most likely closed by the upstream
/// while idle; an idempotent request without a body is sent once more on a new connection.
fn should_retry(result: &Result<(), Failure>, upstream: &UpstreamConn, info: RequestInfo) -> bool {
    let failed_silently = matches!(
        result,
        Err(Failure::Upstream {
            kind: ProblemKind::UpstreamReset,
            before_any_byte: true,
            ..
        })
    );
    failed_silently && upstream.reused && info.retryable
}

/// Sends the request (head from `conn.out`, body from the client or from `spooled`) and reads
/// the response head.
async fn exchange(
    conn: &mut ClientConn,
    upstream: &mut UpstreamConn,
    info: RequestInfo,
    spooled: Option<&mut SpooledBody>,
    settings: &ProxySettings,
) -> Result<(), Failure> {
    match spooled {
        Some(body) => send_spooled_request(conn, upstream, body).await?,
        None => send_request(conn, upstream, info).await?,
    }
    read_response_head(
        upstream,
        info.is_head,
        &settings.head_limits,
        settings.upstream_timeout,
    )
    .await
}

/// Longest text of an IP address: an IPv6 address with an embedded IPv4 one
/// (`ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`).
pub const MAX_IP_TEXT_BYTES: usize = 45;

/// The client's address as `X-Forwarded-For` carries it (IPv4-mapped IPv6 addresses as IPv4),
/// rendered once per connection instead of formatted for every request.
#[derive(Debug, Clone, Copy)]
pub struct ForwardedFor {
    bytes: [u8; MAX_IP_TEXT_BYTES],
    len: usize,
}

impl ForwardedFor {
    pub fn of(peer: SocketAddr) -> ForwardedFor {
        let mut bytes = [0; MAX_IP_TEXT_BYTES];
        let mut rest = &mut bytes[..];
        // Every address fits (see MAX_IP_TEXT_BYTES), so the write cannot fall short.
        let _ = write!(rest, "{}", peer.ip().to_canonical());
        let len = MAX_IP_TEXT_BYTES - rest.len();
        ForwardedFor { bytes, len }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Renders the start line and fields of the head sent upstream into `out`: the client's
/// request line and end-to-end fields, with `Host` and the `X-Forwarded-*` fields; the framing
/// field and the end of the head follow with [`end_request_head`].
pub fn render_request_fields(
    buf: &[u8],
    head: &http1::RequestHead,
    forwarded_for: &ForwardedFor,
    target: &UpstreamTarget,
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(head.method.of(buf));
    out.push(b' ');
    if head.target_form != Target::Asterisk {
        out.extend_from_slice(target.base_path.as_bytes());
    }
    out.extend_from_slice(head.path_and_query.of(buf));
    out.extend_from_slice(b" HTTP/1.1\r\n");
    write_header("host", target.authority.as_bytes(), out);
    for header in head.headers.iter().filter(|header| header.forward) {
        out.extend_from_slice(header.name.of(buf));
        out.extend_from_slice(b": ");
        out.extend_from_slice(header.value.of(buf));
        out.extend_from_slice(b"\r\n");
    }
    write_header("x-forwarded-for", forwarded_for.as_bytes(), out);
    out.extend_from_slice(b"x-forwarded-proto: http\r\n");
    let client_host = match head.target_form {
        Target::Absolute { authority } => Some(authority),
        _ => head.host,
    };
    if let Some(host) = client_host.filter(|host| !host.is_empty()) {
        write_header("x-forwarded-host", host.of(buf), out);
    }
}

/// Ends the head in `out` with the framing field the body is sent with.
pub fn end_request_head(framing: BodyFraming, out: &mut Vec<u8>) {
    match framing {
        BodyFraming::None => {}
        BodyFraming::Length(length) => write_header(
            "content-length",
            itoa::Buffer::new().format(length).as_bytes(),
            out,
        ),
        BodyFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes the request head and streams the body (unless chunked: see
/// [`send_spooled_request`]) to the upstream.
async fn send_request(
    conn: &mut ClientConn,
    upstream: &mut UpstreamConn,
    info: RequestInfo,
) -> Result<(), Failure> {
    let send_failed = |_| upstream_failure(ProblemKind::UpstreamReset, true, false);
    match info.framing {
        BodyFraming::None | BodyFraming::Length(0) => {
            return write_all_retaining(&mut upstream.stream, &mut conn.out)
                .await
                .map_err(|_| upstream_failure(ProblemKind::UpstreamReset, true, true));
        }
        BodyFraming::Length(length) => {
            let remaining = coalesce_body(conn, length);
            write_all_from(&mut upstream.stream, &mut conn.out)
                .await
                .map_err(send_failed)?;
            continue_if_expected(conn, info, remaining > 0).await?;
            pump_exact_request(conn, upstream, remaining).await
        }
        // Never: `forward` buffers every chunked body and sends it with send_spooled_request.
        BodyFraming::Chunked => Err(Failure::BodyNotBuffered),
    }
}

/// Reads and decodes a chunked body to its end before the upstream is contacted, keeping it
/// in memory or a spool file (see [`spool`]). A body that passes the body limit, is badly
/// framed, arrives too slowly or is cut short is refused here, with nothing sent upstream.
async fn spool_chunked(
    conn: &mut ClientConn,
    info: RequestInfo,
    settings: &ProxySettings,
) -> Result<SpooledBody, Failure> {
    send_continue_if_expected(conn, info).await?;
    let mut decoder = ChunkedDecoder::default();
    let mut body = SpooledBody::default();
    loop {
        let (used, found) = decoder
            .decode(conn.buf.data())
            .map_err(|_| Failure::ClientBody)?;
        if let Decoded::Data(range) = &found {
            if body.len() + range.len() as u64 > settings.max_body {
                return Err(Failure::ClientBodyTooLarge);
            }
            body.push(&conn.buf.data()[range.clone()], &settings.spool_dir)
                .map_err(|_| Failure::BodyNotBuffered)?;
        }
        conn.buf.consume(used);
        match found {
            Decoded::Done => {
                body.finish().map_err(|_| Failure::BodyNotBuffered)?;
                return Ok(body);
            }
            Decoded::Data(_) => {}
            Decoded::NeedMore => conn.read_body_bytes().await.map_err(client_read_failure)?,
        }
    }
}

/// Writes the request head and a buffered body to the upstream: a body kept in memory in the
/// same write as the head, a spooled one piece by piece from its file after it.
async fn send_spooled_request(
    conn: &mut ClientConn,
    upstream: &mut UpstreamConn,
    body: &mut SpooledBody,
) -> Result<(), Failure> {
    // The client's body is read: a failure here leaves the client connection usable.
    let send_failed = |_| upstream_failure(ProblemKind::UpstreamReset, true, true);
    conn.out.extend_from_slice(body.in_memory());
    write_all_from(&mut upstream.stream, &mut conn.out)
        .await
        .map_err(send_failed)?;
    if !body.is_spooled() {
        return Ok(());
    }
    loop {
        body.read_spooled(&mut conn.out)
            .map_err(|_| Failure::BodyNotBuffered)?;
        if conn.out.is_empty() {
            return Ok(());
        }
        write_all_from(&mut upstream.stream, &mut conn.out)
            .await
            .map_err(send_failed)?;
    }
}

/// Moves the body bytes already read (up to [`MAX_COALESCED_BODY_BYTES`]) behind the head in
/// `conn.out`. Returns how many body bytes remain to be streamed.
fn coalesce_body(conn: &mut ClientConn, length: u64) -> u64 {
    let available = (conn.buf.len() as u64).min(length) as usize;
    if available == 0 || available > MAX_COALESCED_BODY_BYTES {
        return length;
    }
    conn.out.extend_from_slice(&conn.buf.data()[..available]);
    conn.buf.consume(available);
    length - available as u64
}

/// Tells a client that waits for `100 Continue` to send its body, before any of it was read
/// (leaves `conn.out`, which holds the upstream head, alone).
async fn send_continue_if_expected(
    conn: &mut ClientConn,
    info: RequestInfo,
) -> Result<(), Failure> {
    if !(info.expect_continue && conn.buf.is_empty()) {
        return Ok(());
    }
    let (written, _) = conn.stream.write_all(CONTINUE).await;
    written.map_err(|_| Failure::ClientGone)?;
    conn.bytes_written += CONTINUE.len() as u64;
    Ok(())
}

/// The interim response that asks a client to send its body.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Tells a client that waits for `100 Continue` to send its body.
async fn continue_if_expected(
    conn: &mut ClientConn,
    info: RequestInfo,
    body_pending: bool,
) -> Result<(), Failure> {
    if !(info.expect_continue && body_pending && conn.buf.is_empty()) {
        return Ok(());
    }
    conn.out.clear();
    conn.out.extend_from_slice(CONTINUE);
    conn.write_out().await.map_err(|_| Failure::ClientGone)
}

async fn pump_exact_request(
    conn: &mut ClientConn,
    upstream: &mut UpstreamConn,
    mut remaining: u64,
) -> Result<(), Failure> {
    while remaining > 0 {
        if conn.buf.is_empty() {
            conn.read_body_bytes().await.map_err(client_read_failure)?;
        }
        let chunk = (conn.buf.len() as u64).min(remaining) as usize;
        conn.buf
            .write_to(chunk, &mut upstream.stream)
            .await
            .map_err(|_| upstream_failure(ProblemKind::UpstreamReset, true, false))?;
        remaining -= chunk as u64;
    }
    Ok(())
}

/// Appends what the decoder found to `out`: data as a chunk of our own framing (or bare when
/// `chunked` is false), the end as the last chunk.
fn reframe(found: &Decoded, input: &[u8], chunked: bool, out: &mut Vec<u8>) {
    match found {
        Decoded::Data(range) if !range.is_empty() => {
            if chunked {
                write_chunk_header(range.len(), out);
            }
            out.extend_from_slice(&input[range.clone()]);
            if chunked {
                write_chunk_trailer(out);
            }
        }
        Decoded::Done if chunked => out.extend_from_slice(LAST_CHUNK),
        _ => {}
    }
}

/// Reads the upstream's response head into `upstream.response`, skipping interim (1xx)
/// responses.
async fn read_response_head(
    upstream: &mut UpstreamConn,
    request_was_head: bool,
    limits: &HeadLimits,
    timeout: Duration,
) -> Result<(), Failure> {
    let deadline = Instant::now() + timeout;
    let mut any_byte = false;
    loop {
        if !upstream.buf.is_empty() {
            any_byte = true;
            if parse_final_head(upstream, request_was_head, limits)? {
                return Ok(());
            }
        }
        let fill = upstream
            .buf
            .fill_within(&mut upstream.stream, limits.head_bytes);
        let read = monoio::time::timeout_at(deadline.into(), fill);
        match read.await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) if any_byte => {
                return Err(upstream_failure(
                    ProblemKind::UpstreamMalformed,
                    false,
                    true,
                ))
            }
            Ok(_) => return Err(upstream_failure(ProblemKind::UpstreamReset, true, true)),
            Err(_) => {
                return Err(upstream_failure(
                    ProblemKind::UpstreamTimeout,
                    !any_byte,
                    true,
                ))
            }
        }
    }
}

/// Parses a head from the upstream buffer; interim responses are consumed and skipped.
fn parse_final_head(
    upstream: &mut UpstreamConn,
    request_was_head: bool,
    limits: &HeadLimits,
) -> Result<bool, Failure> {
    let malformed = upstream_failure(ProblemKind::UpstreamMalformed, false, true);
    loop {
        let head = &mut upstream.response;
        if !http1::parse_response(upstream.buf.data(), request_was_head, limits, head)
            .map_err(|_| malformed)?
        {
            return Ok(false);
        }
        match head.status {
            101 => return Err(malformed),
            100..=199 => upstream.buf.consume(head.head_len),
            _ => return Ok(true),
        }
    }
}

/// Answers a failed exchange with its problem document.
async fn fail(conn: &mut ClientConn, info: RequestInfo, failure: Failure) -> ForwardOutcome {
    let (problem, reusable, upstream_failure) = match failure {
        Failure::Upstream {
            kind,
            body_complete,
            ..
        } => (upstream_problem(kind), body_complete, Some(kind)),
        Failure::ClientBody => {
            conn.linger_on_close = true;
            (
                Problem::new(ProblemKind::BadRequest, "malformed chunked request body"),
                false,
                None,
            )
        }
        Failure::ClientBodyTooLarge => {
            conn.linger_on_close = true;
            let detail = format!(
                "the request body is larger than {} bytes",
                conn.settings.max_body
            );
            (
                Problem::new(ProblemKind::ContentTooLarge, detail),
                false,
                None,
            )
        }
        Failure::BodyNotBuffered => {
            conn.linger_on_close = true;
            (
                Problem::new(
                    ProblemKind::Unavailable,
                    "the request body could not be buffered; retry shortly",
                ),
                false,
                None,
            )
        }
        Failure::ClientTooSlow => (
            Problem::new(
                ProblemKind::RequestTimeout,
                "the request body arrived slower than the minimum rate",
            ),
            false,
            None,
        ),
        Failure::ClientGone => {
            return ForwardOutcome {
                status: 0,
                keep_alive: false,
                upstream_failure: None,
            }
        }
    };
    let keep_alive = reusable || matches!(info.framing, BodyFraming::None | BodyFraming::Length(0));
    let keep_alive = conn.send_problem(&problem, keep_alive).await;
    ForwardOutcome {
        status: problem.status(),
        keep_alive,
        upstream_failure,
    }
}

fn upstream_problem(kind: ProblemKind) -> Problem {
    let detail = match kind {
        ProblemKind::UpstreamRefused => "the upstream refused the connection",
        ProblemKind::UpstreamUnreachable => "the upstream could not be reached",
        ProblemKind::UpstreamReset => "the upstream closed the connection before answering",
        ProblemKind::UpstreamMalformed => "the upstream sent a response that is not valid HTTP/1.1",
        ProblemKind::UpstreamConnectTimeout => {
            "the connection to the upstream (with its TLS handshake, if any) timed out"
        }
        ProblemKind::UpstreamTimeout => "the upstream did not answer in time",
        ProblemKind::UpstreamCertificateUntrusted => {
            "the upstream's certificate was not trusted; the request was not forwarded"
        }
        ProblemKind::UpstreamTlsFailed => "the TLS handshake with the upstream failed",
        _ => "the upstream failed",
    };
    Problem::new(kind, detail)
}

/// Relays the response whose head is in `upstream.response` to the client.
async fn relay(
    conn: &mut ClientConn,
    mut upstream: UpstreamConn,
    pool: &UpstreamPool,
    info: RequestInfo,
    settings: &ProxySettings,
) -> ForwardOutcome {
    let framing = upstream.response.framing;
    let open_ended = matches!(
        framing,
        ResponseFraming::Chunked | ResponseFraming::UntilClose
    );
    let chunked_to_client = open_ended && info.client_version == Version::Http11;
    // A close-delimited body to an HTTP/1.0 client can only end with the connection.
    let delimited_for_client = !open_ended || chunked_to_client;
    let keep_alive = delimited_for_client && conn.may_keep_alive();
    let status = upstream.response.status;
    render_response_head(
        &upstream.response,
        upstream.buf.data(),
        chunked_to_client,
        info.client_version,
        keep_alive,
        &mut conn.out,
    );
    upstream.buf.consume(upstream.response.head_len);
    let relayed = match framing {
        ResponseFraming::None => conn.write_out().await.is_ok(),
        ResponseFraming::Length(length) => relay_exact(conn, &mut upstream, length, settings).await,
        _ => relay_open_ended(conn, &mut upstream, framing, chunked_to_client, settings).await,
    };
    if relayed && upstream.response.keep_alive {
        pool.checkin(upstream);
    }
    ForwardOutcome {
        status,
        keep_alive: relayed && keep_alive,
        upstream_failure: None,
    }
}

/// Renders the response head sent to the client into `out`: the upstream's status and
/// end-to-end fields, with our own body framing and `Connection` field.
pub fn render_response_head(
    head: &ResponseHead,
    buf: &[u8],
    chunked_to_client: bool,
    client_version: Version,
    keep_alive: bool,
    out: &mut Vec<u8>,
) {
    out.clear();
    write_status_line(head.status, head.reason.of(buf), out);
    for header in head.headers.iter().filter(|header| header.forward) {
        out.extend_from_slice(header.name.of(buf));
        out.extend_from_slice(b": ");
        out.extend_from_slice(header.value.of(buf));
        out.extend_from_slice(b"\r\n");
    }
    let length = match head.framing {
        ResponseFraming::Length(length) => Some(length),
        ResponseFraming::None => head.content_length,
        _ => None,
    };
    if let Some(length) = length {
        write_header(
            "content-length",
            itoa::Buffer::new().format(length).as_bytes(),
            out,
        );
    }
    if chunked_to_client {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    write_connection_header(client_version, keep_alive, out);
    out.extend_from_slice(b"\r\n");
}

/// Relays a body of known length: the part already read rides with the head, the rest is
/// written straight from the upstream buffer.
async fn relay_exact(
    conn: &mut ClientConn,
    upstream: &mut UpstreamConn,
    length: u64,
    settings: &ProxySettings,
) -> bool {
    let available = (upstream.buf.len() as u64).min(length) as usize;
    let coalesced = if available <= MAX_COALESCED_BODY_BYTES {
        available
    } else {
        0
    };
    conn.out
        .extend_from_slice(&upstream.buf.data()[..coalesced]);
    upstream.buf.consume(coalesced);
    if conn.write_out().await.is_err() {
        return false;
    }
    let mut remaining = length - coalesced as u64;
    while remaining > 0 {
        if upstream.buf.is_empty() && !read_upstream(upstream, settings).await {
            return false;
        }
        let chunk = (upstream.buf.len() as u64).min(remaining) as usize;
        if upstream
            .buf
            .write_to(chunk, &mut conn.stream)
            .await
            .is_err()
        {
            return false;
        }
        conn.bytes_written += chunk as u64;
        remaining -= chunk as u64;
    }
    true
}

/// Relays a chunked or close-delimited body, re-framed for the client.
async fn relay_open_ended(
    conn: &mut ClientConn,
    upstream: &mut UpstreamConn,
    framing: ResponseFraming,
    chunked_to_client: bool,
    settings: &ProxySettings,
) -> bool {
    let mut decoder = ChunkedDecoder::default();
    loop {
        let (used, found) = match framing {
            ResponseFraming::Chunked => match decoder.decode(upstream.buf.data()) {
                Ok(step) => step,
                Err(_) => return false,
            },
            _ => (upstream.buf.len(), Decoded::Data(0..upstream.buf.len())),
        };
        reframe(
            &found,
            &upstream.buf.data()[..used],
            chunked_to_client,
            &mut conn.out,
        );
        upstream.buf.consume(used);
        if decoder.is_done() {
            return conn.write_out().await.is_ok();
        }
        if !conn.out.is_empty() && conn.write_out().await.is_err() {
            return false;
        }
        if upstream.buf.is_empty() || found == Decoded::NeedMore {
            match fill_upstream(upstream, settings).await {
                Some(true) => {}
                Some(false) if framing == ResponseFraming::UntilClose => {
                    return finish_close_delimited(conn, chunked_to_client).await;
                }
                _ => return false,
            }
        }
    }
}

async fn finish_close_delimited(conn: &mut ClientConn, chunked_to_client: bool) -> bool {
    if chunked_to_client {
        conn.out.extend_from_slice(LAST_CHUNK);
    }
    conn.write_out().await.is_ok()
}

/// Reads more of the response body. `Some(false)` is end of stream, `None` an error or timeout.
async fn fill_upstream(upstream: &mut UpstreamConn, settings: &ProxySettings) -> Option<bool> {
    let read = monoio::time::timeout(
        settings.upstream_timeout,
        upstream.buf.fill(&mut upstream.stream),
    );
    match read.await {
        Ok(Ok(n)) => Some(n > 0),
        _ => None,
    }
}

/// Reads more of a body that must not end yet; false when it did (truncated) or failed.
async fn read_upstream(upstream: &mut UpstreamConn, settings: &ProxySettings) -> bool {
    fill_upstream(upstream, settings).await == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_the_canonical_address_text() {
        let text = |addr: &str| {
            let peer: SocketAddr = addr.parse().expect("address");
            String::from_utf8(ForwardedFor::of(peer).as_bytes().to_vec()).expect("ascii")
        };
        assert_eq!(text("127.0.0.1:5000"), "127.0.0.1");
        assert_eq!(text("[::1]:5000"), "::1");
        assert_eq!(text("[::ffff:10.1.2.3]:5000"), "10.1.2.3");
        let longest = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:1";
        assert_eq!(text(longest), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
        let embedded = "[64:ff9b::255.255.255.255]:1";
        assert_eq!(text(embedded), "64:ff9b::ffff:ffff");
    }
}
