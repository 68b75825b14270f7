//! Black-box tests of confab's reverse proxy over real sockets: what reaches the upstream
//! (method, target, headers, bodies), what comes back to the client, client keep-alive, the
//! upstream connection pool and its retry rule, upstream failures mapped to problem responses,
//! the built-in mock upstream, and graceful shutdown with a request in flight.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use support::upstream::{echo_json, write_all, Gate};
use support::wire::{self, Framing};
use support::{
    assert_no_leak, assert_problem, config, drivers, get, refused_url, request, After, Proxy,
    Received, Upstream, CLIENT_HOST,
};

/// Size of the "large" request bodies.
const LARGE: usize = 5 * 1024 * 1024;

/// A body of printable bytes, so the echo upstream's JSON dump stays exact.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// The one request the upstream saw, with its echo dump checked against what the client got.
fn echoed(upstream: &Upstream, response: &support::Response) -> Received {
    assert_eq!(
        response.status,
        200,
        "echo status; body {:?}",
        response.text()
    );
    let received = upstream.received();
    let last = received.last().expect("the upstream saw a request").clone();
    assert_eq!(
        response.json(),
        echo_json(&last),
        "echo dump of the last request"
    );
    last
}

// === Forwarding requests ===

#[test]
fn get_is_proxied_with_keep_alive_on_both_drivers() {
    for (driver_name, driver) in drivers() {
        let upstream = Upstream::echo();
        let mut config = config(Some(upstream.url()));
        config.driver = driver;
        let proxy = Proxy::start(config);
        let mut client = proxy.client();

        for i in 0..3 {
            let target = format!("/categories/MLA{i}?attributes=id");
            let response = client.exchange(&get(&target));
            let seen = echoed(&upstream, &response);
            assert_eq!(seen.method, "GET", "{driver_name}");
            assert_eq!(seen.target, target, "{driver_name}");
            assert!(seen.body.is_empty(), "{driver_name}: GET body");
        }

        let response = client.exchange(&request("POST", "/things", &[], b"{\"a\":1}"));
        let seen = echoed(&upstream, &response);
        assert_eq!(seen.method, "POST", "{driver_name}");
        assert_eq!(seen.body, b"{\"a\":1}", "{driver_name}");
        drop(client);
        proxy.shutdown().expect("graceful shutdown");
    }
}

#[test]
fn method_and_target_are_forwarded_byte_for_byte() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();
    let targets = [
        "/a%2Fb/c?x=1&y=%20z&&",
        "/categories/MLA97994?attributes=id,name&limit=5",
        "/%7Euser/caf%C3%A9",
        "/a//b",
        "/x?",
        "/search?q=a+b&q=%2B&empty=&",
        "/semi;param=1/x",
        "/",
    ];
    let methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

    for target in targets {
        for method in methods {
            let body: &[u8] = if matches!(method, "POST" | "PUT" | "PATCH") {
                b"x=1"
            } else {
                b""
            };
            let response = client.exchange(&request(method, target, &[], body));
            let seen = echoed(&upstream, &response);
            assert_eq!(seen.method, method, "method for {target}");
            assert_eq!(seen.target, target, "target for {method}");
            assert_eq!(seen.body, body, "body for {method} {target}");
        }
    }
}

#[test]
fn content_length_body_is_forwarded() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let body = b"{\"name\":\"caf\xc3\xa9\",\"n\":1}";
    let response = proxy.exchange(&request(
        "POST",
        "/items",
        &[("Content-Type", "application/json")],
        body,
    ));

    let seen = echoed(&upstream, &response);
    assert_eq!(seen.body, body);
    assert_eq!(seen.framing, Framing::Length(body.len()));
    assert!(
        !seen.headers.contains("transfer-encoding"),
        "a Content-Length body needs no re-framing: {:?}",
        seen.headers
    );
}

#[test]
fn chunked_body_is_forwarded_and_reframed() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let mut body = wire::chunked(&[b"hello", b", ", b"chunked world"]);
    // A chunk extension must not leak into the data.
    body.splice(0..0, b"3;ext=1\r\nabc\r\n".iter().copied());
    let response = proxy.exchange(&request(
        "POST",
        "/upload",
        &[("Transfer-Encoding", "chunked")],
        &body,
    ));

    let seen = echoed(&upstream, &response);
    assert_eq!(wire::lossy(&seen.body), "abchello, chunked world");
    let framed_by_length = seen.headers.contains("content-length");
    let framed_by_chunks = seen.headers.has_token("transfer-encoding", "chunked");
    assert!(
        framed_by_length != framed_by_chunks,
        "exactly one framing header upstream: {:?}",
        seen.headers
    );
}

#[test]
fn large_content_length_body_is_streamed_both_ways() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let body = pattern(LARGE);
    let response = proxy.exchange(&request("PUT", "/blob", &[], &body));

    assert_eq!(response.status, 200);
    let seen = upstream.only_request();
    assert_eq!(seen.body.len(), LARGE, "upstream body length");
    assert!(seen.body == body, "upstream body bytes differ");
    // The echo sends the body back inside its JSON: a large response through the proxy too.
    assert_eq!(response.json(), echo_json(&seen), "echo dump");
}

#[test]
fn large_chunked_body_is_streamed() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let body = pattern(LARGE);
    let chunks: Vec<&[u8]> = body.chunks(64 * 1024 + 3).collect();
    let response = proxy.exchange(&request(
        "POST",
        "/blob",
        &[("Transfer-Encoding", "chunked")],
        &wire::chunked(&chunks),
    ));

    assert_eq!(response.status, 200);
    let seen = upstream.only_request();
    assert_eq!(seen.body.len(), LARGE, "upstream body length");
    assert!(seen.body == body, "upstream body bytes differ");
}

#[test]
fn hop_by_hop_request_headers_are_dropped() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let response = proxy.exchange(&request(
        "GET",
        "/hop",
        &[
            ("Connection", "keep-alive, X-Custom-Hop"),
            ("X-Custom-Hop", "drop me"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Trailer", "X-Checksum"),
            ("X-End-To-End", "keep me"),
        ],
        b"",
    ));

    let seen = echoed(&upstream, &response);
    for hop in [
        "x-custom-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
    ] {
        assert!(!seen.headers.contains(hop), "{hop} reached the upstream");
    }
    assert_own_connection_header(&seen);
    assert_eq!(seen.headers.get_all("x-end-to-end"), ["keep me"]);
}

#[test]
fn upgrade_header_is_dropped() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let response = proxy.exchange(&request("GET", "/up", &[("Upgrade", "h2c")], b""));

    let seen = echoed(&upstream, &response);
    assert!(!seen.headers.contains("upgrade"), "{:?}", seen.headers);
    assert_own_connection_header(&seen);
}

/// A Connection header the proxy sends upstream may only carry its own keep-alive or close.
fn assert_own_connection_header(seen: &Received) {
    for value in seen.headers.get_all("connection") {
        for token in value.split(',').map(str::trim) {
            assert!(
                token.eq_ignore_ascii_case("keep-alive") || token.eq_ignore_ascii_case("close"),
                "the client's Connection header reached the upstream: {value:?}"
            );
        }
    }
}

#[test]
fn host_and_forwarded_headers_are_set() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let response = proxy.exchange(&get("/who"));

    let seen = echoed(&upstream, &response);
    assert_eq!(seen.headers.get_all("host"), [upstream.authority()]);
    assert_eq!(seen.headers.get_all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen.headers.get_all("x-forwarded-proto"), ["http"]);
    assert_eq!(seen.headers.get_all("x-forwarded-host"), [CLIENT_HOST]);
}

#[test]
fn client_x_forwarded_for_is_replaced() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let response = proxy.exchange(&request(
        "GET",
        "/who",
        &[
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-For", "198.51.100.1, 192.0.2.9"),
        ],
        b"",
    ));

    let seen = echoed(&upstream, &response);
    assert_eq!(seen.headers.get_all("x-forwarded-for"), ["127.0.0.1"]);
}

#[test]
fn connection_naming_host_or_forwarded_header_is_rejected() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    for named in [
        "Host",
        "host",
        "X-Forwarded-For",
        "x-forwarded-host",
        "keep-alive, X-Forwarded-Proto",
        "X-Forwarded-Port",
    ] {
        let response = proxy.exchange(&request("GET", "/x", &[("Connection", named)], b""));
        assert_problem(&response, 400, "bad-request");
    }
    assert_eq!(upstream.connections(), 0, "nothing may reach the upstream");
    assert_eq!(upstream.requests(), 0, "nothing may reach the upstream");
}

#[test]
fn end_to_end_headers_pass_through_in_order() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let response = proxy.exchange(&request(
        "GET",
        "/headers",
        &[
            ("X-Multi", "one"),
            ("Accept", "application/json"),
            ("X-Multi", "two"),
            ("Authorization", "Bearer abc.def"),
            ("X-Weird", "a  b,c;d=\"e\"   f"),
            ("Cookie", "a=1"),
            ("Cookie", "b=2"),
            ("X-Multi", "three"),
            ("User-Agent", "confab-tests/1.0"),
        ],
        b"",
    ));

    let seen = echoed(&upstream, &response);
    assert_eq!(seen.headers.get_all("x-multi"), ["one", "two", "three"]);
    assert_eq!(seen.headers.get_all("cookie"), ["a=1", "b=2"]);
    assert_eq!(seen.headers.get_all("x-weird"), ["a  b,c;d=\"e\"   f"]);
    assert_eq!(seen.headers.get_all("authorization"), ["Bearer abc.def"]);
    assert_eq!(seen.headers.get_all("accept"), ["application/json"]);
    assert_eq!(seen.headers.get_all("user-agent"), ["confab-tests/1.0"]);
}

// === Relaying responses ===

/// An upstream answering `/status/N`, `/no-content`, `/chunked` and HEAD in odd ways.
fn odd_upstream() -> Upstream {
    Upstream::responder(|request| {
        if request.method == "HEAD" {
            return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1234\r\nX-Up: head\r\n\r\n".to_vec();
        }
        let with_body = |head: &str, body: &str| {
            format!("{head}Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
        };
        match request.target.as_str() {
            "/status/201" => with_body(
                "HTTP/1.1 201 Created\r\nContent-Type: application/vnd.test+json\r\n\
                 Location: /things/7\r\nX-Up: one\r\nSet-Cookie: a=1; Path=/\r\n\
                 Set-Cookie: b=2; Path=/\r\nConnection: keep-alive, X-Up-Hop\r\n\
                 X-Up-Hop: secret\r\nKeep-Alive: timeout=5\r\n",
                "{\"made\":7}\n",
            ),
            "/status/418" => with_body(
                "HTTP/1.1 418 I'm a teapot\r\nContent-Type: text/plain\r\n",
                "short and stout",
            ),
            "/status/503" => with_body(
                "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n\
                 Content-Type: application/json\r\n",
                "{\"upstream\":\"busy\"}",
            ),
            "/no-content" => b"HTTP/1.1 204 No Content\r\nX-Up: none\r\n\r\n".to_vec(),
            "/chunked" => b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\
                Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"
                .to_vec(),
            _ => with_body("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n", "ok"),
        }
    })
}

#[test]
fn upstream_status_headers_and_body_come_back_unchanged() {
    let upstream = odd_upstream();
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();

    let created = client.exchange(&get("/status/201"));
    assert_eq!(created.status, 201);
    assert_eq!(created.text(), "{\"made\":7}\n");
    assert_eq!(
        created.header("content-type").as_deref(),
        Some("application/vnd.test+json")
    );
    assert_eq!(created.header("location").as_deref(), Some("/things/7"));
    assert_eq!(created.headers.get_all("x-up"), ["one"]);
    assert_eq!(
        created.headers.get_all("set-cookie"),
        ["a=1; Path=/", "b=2; Path=/"]
    );
    assert!(
        !created.headers.contains("x-up-hop"),
        "{:?}",
        created.headers
    );
    assert!(
        !created.headers.contains("keep-alive"),
        "{:?}",
        created.headers
    );
    assert!(
        !created.headers.has_token("connection", "x-up-hop"),
        "{:?}",
        created.headers
    );

    let teapot = client.exchange(&get("/status/418"));
    assert_eq!(teapot.status, 418);
    assert_eq!(teapot.text(), "short and stout");

    let busy = client.exchange(&get("/status/503"));
    assert_eq!(busy.status, 503, "an upstream 503 is relayed, not replaced");
    assert_eq!(busy.header("retry-after").as_deref(), Some("7"));
    assert_eq!(busy.text(), "{\"upstream\":\"busy\"}");
}

#[test]
fn upstream_204_comes_back_without_body() {
    let upstream = odd_upstream();
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();

    let response = client.exchange(&get("/no-content"));
    assert_eq!(response.status, 204);
    assert_eq!(response.header("x-up").as_deref(), Some("none"));
    assert!(response.body.is_empty());
    // Nothing extra was sent after the 204: the connection still frames correctly.
    let next = client.exchange(&get("/plain"));
    assert_eq!((next.status, next.text().as_str()), (200, "ok"));
}

#[test]
fn head_response_keeps_headers_and_sends_no_body() {
    let upstream = odd_upstream();
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();

    let response = client.exchange_head(&request("HEAD", "/thing", &[], b""));
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length").as_deref(), Some("1234"));
    assert_eq!(response.header("x-up").as_deref(), Some("head"));
    assert_eq!(upstream.only_request().method, "HEAD");
    // Had the proxy sent body bytes after the HEAD response, this response would be garbage.
    let next = client.exchange(&get("/plain"));
    assert_eq!((next.status, next.text().as_str()), (200, "ok"));
}

#[test]
fn chunked_upstream_response_comes_back() {
    let upstream = odd_upstream();
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();

    let response = client.exchange(&get("/chunked"));
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "hello world");
    let next = client.exchange(&get("/plain"));
    assert_eq!((next.status, next.text().as_str()), (200, "ok"));
}

#[test]
fn close_delimited_upstream_response_comes_back() {
    let upstream = Upstream::close_delimited(b"body ended by close");
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();

    let response = client.exchange(&get("/eof"));
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "body ended by close");
    if response.framing == Framing::Close {
        client.assert_closed();
    } else {
        // Re-framed for the client, so the client connection can carry on.
        let again = client.exchange(&get("/eof-again"));
        assert_eq!(again.text(), "body ended by close");
    }
}

// === Keep-alive and the upstream pool ===

#[test]
fn client_keep_alive_serves_many_requests() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();

    for i in 0..10 {
        let target = format!("/ka/{i}");
        let body = format!("body {i}");
        let request = if i % 2 == 0 {
            get(&target)
        } else {
            request("POST", &target, &[], body.as_bytes())
        };
        let response = client.exchange(&request);
        assert!(!response.says_close(), "request {i} closed the connection");
        let seen = echoed(&upstream, &response);
        assert_eq!(seen.target, target);
        if i % 2 == 1 {
            assert_eq!(seen.body, body.as_bytes());
        }
    }
}

#[test]
fn upstream_connections_are_reused() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();
    let requests = 10;

    for i in 0..requests {
        let response = client.exchange(&get(&format!("/pooled/{i}")));
        assert_eq!(response.status, 200);
    }
    assert_eq!(upstream.requests(), requests);
    assert!(
        upstream.connections() < requests,
        "{} upstream connections for {requests} sequential requests",
        upstream.connections()
    );
}

#[test]
fn partly_read_upstream_response_is_not_reused() {
    let big = 16 * 1024 * 1024;
    let (big_done, big_done_rx) = mpsc::channel();
    let upstream = Upstream::start(move |request, stream| {
        if request.target == "/big" {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {big}\r\n\r\n");
            let written = write_all(stream, &[head.as_bytes(), &vec![b'B'; big]]);
            let _ = big_done.send(());
            return if written.is_ok() {
                After::KeepAlive
            } else {
                After::Close
            };
        }
        let body = format!("small:{}", request.target);
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        match write_all(stream, &[head.as_bytes(), body.as_bytes()]) {
            Ok(()) => After::KeepAlive,
            Err(_) => After::Close,
        }
    });
    let proxy = Proxy::to(&upstream);

    let mut greedy = proxy.client();
    greedy.send(&get("/big"));
    let head = greedy.head_only();
    assert_eq!(head.status, 200);
    drop(greedy);
    // The upstream's write ends once the proxy drops or drains the connection. A proxy that
    // pooled it half-read leaves the write blocked; carry on then, the checks below catch it.
    let _ = big_done_rx.recv_timeout(Duration::from_secs(5));

    // Each on its own connection: the kernel spreads them over the workers, each with its own
    // pool, so some land on the worker that served /big.
    for i in 0..10 {
        let target = format!("/small/{i}");
        let response = proxy.exchange(&get(&target));
        assert_eq!(response.status, 200, "body {:?}", response.text());
        assert_eq!(response.text(), format!("small:{target}"));
    }
}

#[test]
fn get_is_retried_when_upstream_closed_pooled_connection() {
    let upstream = Upstream::closing_after_each_response();
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();

    for i in 0..5 {
        let target = format!("/closing/{i}");
        let response = client.exchange(&get(&target));
        assert_eq!(response.status, 200, "request {i}: {:?}", response.text());
        assert_eq!(response.text(), format!("served {target}"));
    }
    assert_eq!(upstream.requests(), 5);
}

#[test]
fn get_is_retried_once_when_reused_connection_dies_before_answering() {
    let upstream = Upstream::dropping_second_request();
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();

    for i in 0..5 {
        let target = format!("/retry/{i}");
        let response = client.exchange(&get(&target));
        assert_eq!(response.status, 200, "request {i}: {:?}", response.text());
        assert_eq!(response.text(), format!("served {target}"));
    }
    let mut retried = 0;
    for i in 0..5 {
        let target = format!("/retry/{i}");
        let tries = upstream
            .received()
            .iter()
            .filter(|seen| seen.target == target)
            .count();
        assert!(
            (1..=2).contains(&tries),
            "{target} reached the upstream {tries} times"
        );
        retried += usize::from(tries == 2);
    }
    // Each request after the first goes out on the pooled connection, which dies, so the
    // retry path was taken (this also fails if the pool never reuses a connection).
    assert!(retried > 0, "no request went out on a reused connection");
}

#[test]
fn post_is_not_retried_when_reused_connection_dies() {
    let upstream = Upstream::dropping_second_request();
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();

    let first = client.exchange(&request("POST", "/orders/1", &[], b"one"));
    assert_eq!(first.status, 200);
    let second = client.exchange(&request("POST", "/orders/2", &[], b"two"));
    let tries = upstream
        .received()
        .iter()
        .filter(|seen| seen.target == "/orders/2")
        .count();
    assert_eq!(tries, 1, "a POST must reach the upstream exactly once");
    if second.status != 200 {
        assert_eq!(second.status, 502, "body {:?}", second.text());
        let problem = second.json();
        let kind = problem["type"].as_str().unwrap_or_default();
        assert!(
            kind.starts_with("urn:confab:problem:upstream-"),
            "problem type {kind:?}"
        );
    }
}

// === Upstream failures ===

#[test]
fn refused_upstream_is_502_upstream_refused() {
    let (url, port) = refused_url();
    let proxy = Proxy::start(config(Some(url)));

    let response = proxy.exchange(&get("/categories/1"));
    assert_problem(&response, 502, "upstream-refused");
    assert_no_leak(&response, port);
}

#[test]
fn resetting_upstream_is_502_upstream_reset() {
    let upstream = Upstream::resetting();
    let proxy = Proxy::to(&upstream);

    let response = proxy.exchange(&request("POST", "/reset", &[], b"payload"));
    assert_problem(&response, 502, "upstream-reset");
    assert_no_leak(&response, upstream.port());
    assert!(upstream.requests() >= 1, "the upstream read the request");
}

#[test]
fn malformed_upstream_response_is_502_upstream_malformed() {
    let upstream = Upstream::malformed();
    let proxy = Proxy::to(&upstream);

    let response = proxy.exchange(&get("/garbage"));
    assert_problem(&response, 502, "upstream-malformed");
    assert_no_leak(&response, upstream.port());
}

#[test]
fn reason_phrase_that_is_not_utf8_is_passed_on_and_the_workers_serve_on() {
    // Found by the response_head fuzz target: such a reason panicked the worker that parsed it.
    let upstream = Upstream::fixed(&b"HTTP/1.1 200 \xe9t\xe9\r\nContent-Length: 2\r\n\r\nok"[..]);
    let proxy = Proxy::to(&upstream);
    for i in 0..4 {
        let mut client = proxy.client();
        client.send(&request(
            "GET",
            &format!("/obs-text/{i}"),
            &[("Connection", "close")],
            b"",
        ));
        let raw = client.read_to_end();
        assert!(
            raw.starts_with(b"HTTP/1.1 200 \xe9t\xe9\r\n") && raw.ends_with(b"\r\n\r\nok"),
            "{:?}",
            wire::lossy(&raw)
        );
    }
    proxy.shutdown().expect("no worker panicked");
}

#[test]
fn silent_upstream_is_504_upstream_timeout() {
    let upstream = Upstream::blackhole();
    let mut config = config(Some(upstream.url()));
    config.upstream_timeout = Duration::from_millis(300);
    let proxy = Proxy::start(config);

    let started = Instant::now();
    let response = proxy.exchange(&get("/never"));
    let waited = started.elapsed();
    assert_problem(&response, 504, "upstream-timeout");
    assert_no_leak(&response, upstream.port());
    assert!(
        waited >= Duration::from_millis(250),
        "answered after {waited:?}, before the upstream timeout"
    );
    assert!(
        waited < Duration::from_secs(5),
        "answered after {waited:?}, far past the 300ms upstream timeout"
    );
}

#[test]
fn unreachable_upstream_is_504_upstream_connect_timeout() {
    // A listener whose accept queue is full drops further SYNs on Linux, so a connect to it
    // neither succeeds nor fails until the connecting side gives up.
    let Some((listener, _fillers)) = listener_with_full_backlog() else {
        eprintln!("skipped: could not fill a listen backlog on this machine");
        return;
    };
    let addr = listener
        .local_addr()
        .expect("backlog listener address")
        .as_socket()
        .expect("an inet address");
    let mut config = config(Some(format!("http://{addr}")));
    config.connect_timeout = Duration::from_millis(300);
    config.upstream_timeout = Duration::from_secs(5);
    let proxy = Proxy::start(config);

    let started = Instant::now();
    let response = proxy.exchange(&get("/slow-connect"));
    assert_problem(&response, 504, "upstream-connect-timeout");
    assert_no_leak(&response, addr.port());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the connect timeout (300ms) did not apply: {:?}",
        started.elapsed()
    );
}

/// A listener with backlog 0 and its accept queue filled by connections never accepted.
fn listener_with_full_backlog() -> Option<(socket2::Socket, Vec<TcpStream>)> {
    use socket2::{Domain, Socket, Type};

    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("loopback address");
    listener.bind(&addr.into()).expect("bind backlog listener");
    listener.listen(0).expect("listen with backlog 0");
    let addr = listener.local_addr().ok()?.as_socket()?;
    let mut fillers = Vec::new();
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(stream) => fillers.push(stream),
            Err(_) => return Some((listener, fillers)),
        }
    }
    None
}

#[test]
fn upstream_dying_mid_body_closes_client_connection() {
    let upstream = Upstream::dying_mid_body();
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();

    client.send(&get("/dies"));
    let head = client.head_only();
    assert_eq!(head.status, 200, "the head was already on its way");
    let rest = client.read_to_end();
    assert!(
        wire::find(&rest, b"HTTP/1.").is_none(),
        "a second status line followed the cut body: {:?}",
        wire::lossy(&rest)
    );
    if let Framing::Length(announced) = head.framing {
        assert!(
            rest.len() < announced,
            "got {} of {announced} bytes from an upstream that sent 100",
            rest.len()
        );
    }
}

#[test]
fn failed_upstream_connections_are_not_reused() {
    // The upstream keeps every connection open and would happily read and answer another
    // request on it, so only confab's own bookkeeping keeps a failed connection out of use.
    let upstream = Upstream::start(|request, stream| {
        let answer: &[u8] = match request.target.as_str() {
            "/garbage" => b"THIS IS NOT HTTP AT ALL\r\n\r\n",
            "/stall" => b"",
            _ => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh",
        };
        match write_all(stream, &[answer]) {
            Ok(()) => After::KeepAlive,
            Err(_) => After::Close,
        }
    });
    let mut config = config(Some(upstream.url()));
    config.upstream_timeout = Duration::from_millis(300);
    let proxy = Proxy::start(config);
    let mut client = proxy.client();

    let garbage = client.exchange(&get("/garbage"));
    assert_problem(&garbage, 502, "upstream-malformed");
    let stalled = proxy.exchange(&get("/stall"));
    assert_problem(&stalled, 504, "upstream-timeout");
    // Each on its own connection, so that they spread over every worker's pool.
    for i in 0..10 {
        let response = proxy.exchange(&get(&format!("/after/{i}")));
        assert_eq!((response.status, response.text().as_str()), (200, "fresh"));
    }

    let received = upstream.received();
    let failed: Vec<usize> = received
        .iter()
        .filter(|seen| !seen.target.starts_with("/after/"))
        .map(|seen| seen.connection)
        .collect();
    let mut distinct = failed.clone();
    distinct.dedup();
    assert_eq!(
        distinct, failed,
        "a failed connection carried another request: {received:#?}"
    );
    for seen in received
        .iter()
        .filter(|seen| seen.target.starts_with("/after/"))
    {
        assert!(
            !failed.contains(&seen.connection),
            "{} went out on a connection whose response failed: {received:#?}",
            seen.target
        );
    }
}

// === The built-in mock upstream ===

#[test]
fn mock_upstream_serves_category_documents() {
    let proxy = Proxy::with_mock();
    assert!(
        proxy.upstream_url().starts_with("http://127.0.0.1:"),
        "mock upstream URL {:?}",
        proxy.upstream_url()
    );

    let response = proxy.exchange(&get("/categories/MLA97994"));
    assert_eq!(response.status, 200, "body {:?}", response.text());
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.contains("json"),
        "content type {content_type:?}"
    );
    let doc = response.json();
    assert_eq!(doc["id"], "MLA97994");
    assert!(doc["name"].as_str().is_some_and(|name| !name.is_empty()));
    assert!(doc["total_items_in_this_category"].is_number(), "{doc}");

    let path = doc["path_from_root"]
        .as_array()
        .expect("path_from_root array");
    let last = path.last().expect("path_from_root is not empty");
    assert_eq!(last["id"], "MLA97994", "path ends at the category: {doc}");
    for step in path {
        assert!(step["id"].is_string() && step["name"].is_string(), "{step}");
    }
    let children = doc["children_categories"]
        .as_array()
        .expect("children_categories array");
    for child in children {
        assert!(
            child["id"].is_string() && child["name"].is_string(),
            "{child}"
        );
        assert!(child["total_items_in_this_category"].is_number(), "{child}");
    }
}

#[test]
fn mock_upstream_is_deterministic_per_id() {
    let proxy = Proxy::with_mock();
    let mut client = proxy.client();

    let first = client.exchange(&get("/categories/MLA97994"));
    let again = client.exchange(&get("/categories/MLA97994"));
    let other = client.exchange(&get("/categories/MLA1055"));
    assert_eq!(first.status, 200);
    assert_eq!(other.status, 200);
    assert_eq!(first.body, again.body, "same id, same bytes");
    assert_ne!(first.body, other.body, "different ids, different documents");
    assert_eq!(other.json()["id"], "MLA1055");
}

#[test]
fn mock_upstream_answers_404_json_elsewhere() {
    let proxy = Proxy::with_mock();
    for target in ["/nothing/here", "/categories", "/"] {
        let response = proxy.exchange(&get(target));
        assert_eq!(response.status, 404, "{target}");
        let _ = response.json();
    }
}

// === Graceful shutdown ===

#[test]
fn shutdown_lets_in_flight_request_finish_on_both_drivers() {
    for (driver_name, driver) in drivers() {
        let gate = Gate::new();
        let upstream = Upstream::gated(&gate);
        let mut config = config(Some(upstream.url()));
        config.driver = driver;
        let proxy = Proxy::start(config);
        let addr = proxy.addr();
        let mut client = proxy.client();

        // The request is held at the upstream until every worker is draining and the shutdown
        // is under way; only then may the upstream answer.
        client.send(&get("/held"));
        gate.wait_arrived(1);
        proxy.begin_drain();
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
            "{driver_name}: still accepting connections while draining"
        );
        let stopper = thread::spawn(move || proxy.shutdown());
        gate.open();

        let response = client.response();
        assert_eq!(response.status, 200, "{driver_name}");
        assert_eq!(response.text(), "gated", "{driver_name}");
        assert!(
            response.says_close(),
            "{driver_name}: a response during shutdown carries Connection: close: {:?}",
            response.headers
        );
        client.assert_closed();
        stopper
            .join()
            .expect("shutdown thread panicked")
            .expect("graceful shutdown");
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
            "{driver_name}: still accepting connections after shutdown"
        );
    }
}

#[test]
fn mock_upstream_faults_reach_the_client_as_upstream_failures() {
    let proxy = Proxy::with_mock();
    assert_problem(
        &proxy.exchange(&get("/faults/close")),
        502,
        "upstream-reset",
    );
    assert_problem(
        &proxy.exchange(&get("/faults/malformed")),
        502,
        "upstream-malformed",
    );
    let mut client = proxy.client();
    client.send(&get("/faults/truncated"));
    let head = client.head_only();
    assert_eq!(head.status, 200);
    let rest = client.read_to_end();
    assert_eq!(rest, b"truncated.", "the cut body, then the close");
    let served = proxy.exchange(&get("/categories/MLA97994"));
    assert_eq!(served.status, 200, "served on after the faults");
}
