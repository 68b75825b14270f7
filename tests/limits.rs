//! The limits that protect confab from its clients, attacked over real sockets: bodies over
//! `--max-body` get 413 before anything reaches the upstream, in either framing and however
//! long (a chunked body is buffered in full, past its in-memory part in a spool file, and
//! forwarded with a Content-Length); a
//! head that trickles in slower than `--header-timeout` gets 408 (a new connection that sends
//! nothing is closed); a body slower than `--min-body-rate` gets 408; connections past
//! `--max-connections` are closed at once while the open ones keep their service; requests
//! past `--max-inflight-per-core` get 503 with `Retry-After` at once; and every refusal is
//! counted in the statistics.

mod support;

use std::io::Write;
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::stats::{route, wait_for_stats};
use support::upstream::Gate;
use support::wire;
use support::{assert_problem, config, get, request, Client, Proxy, Upstream};

/// The body limit of the body tests.
const MAX_BODY: u64 = 1000;

fn proxy_with(upstream: &Upstream, adjust: impl FnOnce(&mut confab::config::ServeConfig)) -> Proxy {
    let mut config = config(Some(upstream.url()));
    adjust(&mut config);
    Proxy::start(config)
}

fn body_limited(upstream: &Upstream) -> Proxy {
    proxy_with(upstream, |config| config.max_body = MAX_BODY)
}

/// Writes `bytes` from another thread (the server may answer before reading them all), reads
/// the response, then stops the writer.
fn send_in_background(client: &mut Client, bytes: Vec<u8>) -> support::Response {
    let mut writer = client.writer();
    let sender = thread::spawn(move || {
        let _ = writer.write_all(&bytes);
    });
    let response = client.try_response(false);
    let _ = client.writer().shutdown(Shutdown::Write);
    sender.join().expect("sender thread panicked");
    response.expect("a response")
}

// === --max-body ===

#[test]
fn content_length_over_the_limit_is_413_before_the_upstream_is_contacted() {
    let upstream = Upstream::echo();
    let proxy = body_limited(&upstream);
    let body = vec![b'b'; MAX_BODY as usize + 1];

    let mut client = proxy.client();
    let response = send_in_background(&mut client, request("POST", "/items", &[], &body));
    assert_problem(&response, 413, "content-too-large");
    assert!(response.says_close(), "{:?}", response.headers);
    client.assert_closed();
    assert_eq!(upstream.connections(), 0, "nothing may reach the upstream");
}

#[test]
fn content_length_over_the_limit_is_refused_without_100_continue() {
    let upstream = Upstream::echo();
    let proxy = body_limited(&upstream);
    let mut client = proxy.client();
    let length = (MAX_BODY + 1).to_string();
    client.send(&request(
        "POST",
        "/items",
        &[("Content-Length", &length), ("Expect", "100-continue")],
        b"",
    ));
    // The first head that comes back is the refusal, not an invitation to send the body.
    let head = client.head_only();
    assert_eq!(head.status, 413);
    assert_eq!(upstream.connections(), 0, "nothing may reach the upstream");
}

#[test]
fn body_at_the_limit_is_forwarded_in_both_framings() {
    let upstream = Upstream::echo();
    let proxy = body_limited(&upstream);
    let body = vec![b'b'; MAX_BODY as usize];
    let mut client = proxy.client();

    let by_length = client.exchange(&request("POST", "/items", &[], &body));
    assert_eq!(by_length.json()["body_len"], MAX_BODY);
    let chunks: Vec<&[u8]> = body.chunks(300).collect();
    let chunked = client.exchange(&request(
        "POST",
        "/items",
        &[("Transfer-Encoding", "chunked")],
        &wire::chunked(&chunks),
    ));
    assert_eq!(chunked.json()["body_len"], MAX_BODY);
}

#[test]
fn small_chunked_body_over_the_limit_is_413_before_the_upstream_is_contacted() {
    let upstream = Upstream::echo();
    let proxy = body_limited(&upstream);
    let body = vec![b'c'; MAX_BODY as usize + 1];
    let chunks: Vec<&[u8]> = body.chunks(200).collect();

    let mut client = proxy.client();
    let response = send_in_background(
        &mut client,
        request(
            "POST",
            "/items",
            &[("Transfer-Encoding", "chunked")],
            &wire::chunked(&chunks),
        ),
    );
    assert_problem(&response, 413, "content-too-large");
    client.assert_closed();
    assert_eq!(upstream.connections(), 0, "nothing may reach the upstream");
}

#[test]
fn long_chunked_body_over_the_limit_is_413_before_the_upstream_is_contacted() {
    let upstream = Upstream::echo();
    // Far past the part of a body kept in memory: the body is spooled to a file as it comes.
    let max_body = 4 * confab::proxy::spool::SPOOL_MEMORY_BYTES as u64;
    let proxy = proxy_with(&upstream, |config| config.max_body = max_body);
    let body = vec![b's'; 4 * max_body as usize];
    let chunks: Vec<&[u8]> = body.chunks(16 * 1024).collect();

    let mut client = proxy.client();
    let response = send_in_background(
        &mut client,
        request(
            "POST",
            "/stream",
            &[("Transfer-Encoding", "chunked")],
            &wire::chunked(&chunks),
        ),
    );
    assert_problem(&response, 413, "content-too-large");
    client.assert_closed();
    // Not even a connection: nothing is sent before the whole body has been read.
    proxy.shutdown().expect("graceful shutdown");
    assert_eq!(upstream.connections(), 0, "nothing may reach the upstream");
}

#[test]
fn long_chunked_body_within_the_limit_is_forwarded_whole_with_a_content_length() {
    let upstream = Upstream::echo();
    let state = tempfile::tempdir().expect("a state folder");
    let mut config = config(Some(upstream.url()));
    config.max_body = 1024 * 1024;
    config.state_dir = state.path().to_path_buf();
    let proxy = Proxy::start_keeping_state_dir(config);
    let entries_before = std::fs::read_dir(state.path()).expect("list").count();
    let body: Vec<u8> = (0..1024 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    let chunks: Vec<&[u8]> = body.chunks(10_000).collect();

    let mut client = proxy.client();
    let response = client.exchange(&request(
        "POST",
        "/upload",
        &[("Transfer-Encoding", "chunked")],
        &wire::chunked(&chunks),
    ));
    assert_eq!(response.status, 200, "{:?}", response.text());
    let seen = upstream.only_request();
    assert_eq!(seen.framing, wire::Framing::Length(body.len()));
    assert_eq!(
        seen.headers.get("content-length"),
        Some(body.len().to_string())
    );
    assert!(
        !seen.headers.contains("transfer-encoding"),
        "{:?}",
        seen.headers
    );
    assert!(seen.body == body, "the upstream got a different body");
    // The connection carries on, and the spool file left no name behind.
    assert_eq!(client.exchange(&get("/next")).status, 200);
    let entries_after = std::fs::read_dir(state.path()).expect("list").count();
    assert_eq!(
        entries_after, entries_before,
        "a spool file was left behind"
    );
    proxy.shutdown().expect("graceful shutdown");
}

// === --header-timeout and the body rate ===

const HEADER_TIMEOUT: Duration = Duration::from_millis(300);

fn header_limited(upstream: &Upstream) -> Proxy {
    proxy_with(upstream, |config| config.header_timeout = HEADER_TIMEOUT)
}

/// Writes one more header line every `pause` until `stop` is set or the server closes.
fn trickle_header_lines(mut writer: std::net::TcpStream, stop: Arc<AtomicBool>) {
    for i in 0..200 {
        if stop.load(Ordering::SeqCst)
            || writer
                .write_all(format!("X-{i}: v\r\n").as_bytes())
                .is_err()
        {
            return;
        }
        thread::sleep(Duration::from_millis(40));
    }
}

#[test]
fn slowloris_head_gets_408_and_is_disconnected() {
    let upstream = Upstream::echo();
    let proxy = header_limited(&upstream);
    let mut client = proxy.client();
    let started = Instant::now();
    client.send(b"GET /slow HTTP/1.1\r\nHost: a\r\n");
    let stop = Arc::new(AtomicBool::new(false));
    let trickler = {
        let (writer, stop) = (client.writer(), Arc::clone(&stop));
        thread::spawn(move || trickle_header_lines(writer, stop))
    };

    let response = client.try_response(false).expect("a 408");
    let waited = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    assert_problem(&response, 408, "request-timeout");
    assert!(response.says_close(), "{:?}", response.headers);
    assert!(
        waited >= HEADER_TIMEOUT - Duration::from_millis(50) && waited < Duration::from_secs(3),
        "cut after {waited:?}; the header timeout is {HEADER_TIMEOUT:?}"
    );
    client.assert_closed();
    trickler.join().expect("trickler panicked");
    assert_eq!(upstream.connections(), 0, "nothing may reach the upstream");
}

#[test]
fn new_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let upstream = Upstream::echo();
    let proxy = header_limited(&upstream);
    let mut client = proxy.client();
    let started = Instant::now();
    client.assert_closed();
    let waited = started.elapsed();
    assert!(
        waited >= HEADER_TIMEOUT - Duration::from_millis(50) && waited < Duration::from_secs(3),
        "closed after {waited:?}; the header timeout is {HEADER_TIMEOUT:?}"
    );
}

#[test]
fn idle_keep_alive_connection_is_governed_by_the_idle_timeout_not_the_header_timeout() {
    let upstream = Upstream::echo();
    let proxy = header_limited(&upstream);
    let mut client = proxy.client();
    assert_eq!(client.exchange(&get("/first")).status, 200);
    // Idle between requests for longer than the header timeout (the scenario, not a wait for
    // something to happen).
    thread::sleep(HEADER_TIMEOUT * 2);
    assert_eq!(client.exchange(&get("/second")).status, 200);
}

fn rate_limited(upstream: &Upstream) -> Proxy {
    proxy_with(upstream, |config| {
        config.min_body_rate = 1000;
        config.body_rate_window = Duration::from_millis(200);
    })
}

#[test]
fn body_slower_than_the_minimum_rate_gets_408_and_never_completes_upstream() {
    let upstream = Upstream::echo();
    let proxy = rate_limited(&upstream);
    let mut client = proxy.client();
    client.send(&request(
        "POST",
        "/slow-body",
        &[("Content-Length", "1000")],
        b"",
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let trickler = {
        let (mut writer, stop) = (client.writer(), Arc::clone(&stop));
        thread::spawn(move || {
            // 10 bytes every 50 ms: 40 bytes per 200 ms window, where 200 are needed.
            for _ in 0..100 {
                if stop.load(Ordering::SeqCst) || writer.write_all(&[b'x'; 10]).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let response = client.try_response(false).expect("a 408");
    stop.store(true, Ordering::SeqCst);
    assert_problem(&response, 408, "request-timeout");
    client.assert_closed();
    trickler.join().expect("trickler panicked");
    assert_eq!(
        upstream.requests(),
        0,
        "the upstream saw a complete request"
    );
}

#[test]
fn body_at_a_good_pace_with_pauses_is_forwarded() {
    let upstream = Upstream::echo();
    let proxy = rate_limited(&upstream);
    let mut client = proxy.client();
    client.send(&request(
        "POST",
        "/paced",
        &[("Content-Length", "1000")],
        b"",
    ));
    for _ in 0..4 {
        thread::sleep(Duration::from_millis(100));
        client.send(&[b'p'; 250]);
    }
    let response = client.response();
    assert_eq!(response.status, 200, "{:?}", response.text());
    assert_eq!(response.json()["body_len"], 1000);
}

// === --max-connections ===

/// Sends a request on `client` and expects the connection to be closed without an answer.
fn assert_closed_without_answer(client: &mut Client) {
    let _ = client.try_send(&get("/refused"));
    let rest = client.read_to_end();
    assert!(rest.is_empty(), "got an answer: {:?}", wire::lossy(&rest));
}

#[test]
fn connections_past_the_limit_are_closed_at_once_while_open_ones_keep_their_service() {
    let upstream = Upstream::echo();
    let proxy = proxy_with(&upstream, |config| config.max_connections = 2);
    let mut first = proxy.client();
    let mut second = proxy.client();
    assert_eq!(first.exchange(&get("/one")).status, 200);
    assert_eq!(second.exchange(&get("/two")).status, 200);

    let started = Instant::now();
    assert_closed_without_answer(&mut proxy.client());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "not closed at once"
    );
    assert_eq!(first.exchange(&get("/one/again")).status, 200);
    assert_eq!(second.exchange(&get("/two/again")).status, 200);

    // Once a connection has closed, a new one is served: the server gives the connection's
    // place back before the client sees the close.
    let last = first.exchange(&request(
        "GET",
        "/one/last",
        &[("Connection", "close")],
        b"",
    ));
    assert_eq!(last.status, 200);
    first.assert_closed();
    assert_eq!(proxy.exchange(&get("/three")).status, 200);
}

// === --max-inflight-per-core ===

#[test]
fn requests_past_the_in_flight_limit_get_503_with_retry_after_at_once() {
    // The first request is held at the upstream, its slot taken, until the test opens the gate.
    let gate = Gate::new();
    let upstream = Upstream::gated(&gate);
    let proxy = proxy_with(&upstream, |config| {
        config.threads = 1;
        config.max_inflight_per_core = 1;
    });
    let mut busy = proxy.client();
    busy.send(&get("/held"));
    gate.wait_arrived(1);

    let mut client = proxy.client();
    let started = Instant::now();
    let refused = client.exchange(&get("/more"));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "the refusal waited {:?}",
        started.elapsed()
    );
    assert_problem(&refused, 503, "overloaded");
    assert_eq!(refused.header("retry-after").as_deref(), Some("1"));
    assert!(
        !refused.says_close(),
        "a bodiless refusal keeps the connection"
    );
    // A refused request with a body is not read: the connection closes after the answer.
    let with_body = client.exchange(&request("POST", "/more", &[], b"payload"));
    assert_problem(&with_body, 503, "overloaded");
    assert!(with_body.says_close(), "{:?}", with_body.headers);
    client.assert_closed();

    gate.open();
    let served = busy.response();
    assert_eq!((served.status, served.text().as_str()), (200, "gated"));
    let after = proxy.exchange(&get("/after"));
    assert_eq!(after.status, 200, "served once the load passed");
    assert_eq!(
        upstream.requests(),
        2,
        "refused requests never reach the upstream"
    );
}

// === Statistics ===

fn status_count(scope: &Value, status: &str) -> u64 {
    scope["by_status"][status].as_u64().unwrap_or(0)
}

#[test]
fn refusals_are_counted_in_the_statistics() {
    let upstream = Upstream::echo();
    let proxy = proxy_with(&upstream, |config| config.max_body = 10);
    let addr = proxy.addr();
    let too_large = proxy.exchange(&request("POST", "/items/1", &[], b"eleven byte"));
    assert_problem(&too_large, 413, "content-too-large");
    let malformed = proxy.exchange(b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    assert_problem(&malformed, 400, "bad-request");

    let document = wait_for_stats(addr, "the refusals", |document| {
        status_count(&document["proxy"], "413") >= 1 && status_count(&document["api"], "400") >= 1
    });
    let items = route(&document["proxy"], "/items").expect("the /items route");
    assert_eq!(items["requests"], 1, "{items}");
    assert_eq!(status_count(&document["proxy"], "413"), 1);
    assert_eq!(status_count(&document["api"], "400"), 1);
    assert_eq!(upstream.connections(), 0, "nothing reached the upstream");
}
