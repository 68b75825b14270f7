//! Black-box tests of request framing at confab's client side: requests whose body length is
//! ambiguous (Content-Length with Transfer-Encoding in either order, conflicting, signed, hex
//! or listed Content-Lengths, a transfer coding other than one `chunked`, Transfer-Encoding on
//! HTTP/1.0), obs-fold, bad chunk framing (signs, hex prefixes, 17+ digits, missing CRLFs, long
//! extensions), a missing or repeated Host, CR or LF inside a header value, and CL.TE and TE.CL
//! smuggling payloads get a 400 problem, the connection is closed and nothing reaches the
//! upstream; oversized heads, more than 100 fields and long request lines get 431 and 414 (at
//! the limit they are served) with `Connection: close`, and the socket, read to its end, is
//! closed with nothing after the answer (a request pipelined behind them is never answered nor
//! forwarded); bodies never leak into the next request on a kept-alive connection.

mod support;

use std::io::Write;
use std::net::Shutdown;
use std::thread;

use support::wire;
use support::{assert_problem, get, request, Proxy, Response, Upstream};

/// Sends `raw` on a new connection and expects a 400 `bad-request` followed by a close.
fn assert_rejected(proxy: &Proxy, raw: &str) {
    let mut client = proxy.client();
    client.send(raw.as_bytes());
    let response = client
        .try_response(false)
        .unwrap_or_else(|err| panic!("no response to {raw:?}: {err}"));
    assert_problem(&response, 400, "bad-request");
    // Whatever the server did not read of the request may come back as a reset: both are a
    // close. What must not come is another response.
    let rest = client.read_to_end();
    assert!(
        rest.is_empty(),
        "after rejecting {raw:?} the server sent more: {:?}",
        wire::lossy(&rest)
    );
}

#[test]
fn content_length_with_transfer_encoding_is_rejected_in_either_order() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);

    assert_rejected(
        &proxy,
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n0\r\n\r\n",
    );
    assert_rejected(
        &proxy,
        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n\
         5\r\nhello\r\n0\r\n\r\n",
    );
    assert_rejected(
        &proxy,
        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n\
         0\r\n\r\n",
    );
    assert_eq!(upstream.connections(), 0, "nothing may reach the upstream");
    assert_eq!(upstream.requests(), 0, "nothing may reach the upstream");
    proxy.shutdown().expect("confab shuts down cleanly");
}

#[test]
fn conflicting_content_lengths_are_rejected() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);

    assert_rejected(
        &proxy,
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    );
    assert_rejected(
        &proxy,
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 3\r\n\r\nabcd",
    );
    assert_rejected(
        &proxy,
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabcd",
    );
    assert_eq!(upstream.connections(), 0, "nothing may reach the upstream");
    assert_eq!(upstream.requests(), 0, "nothing may reach the upstream");
    proxy.shutdown().expect("confab shuts down cleanly");
}

#[test]
fn invalid_content_length_is_rejected() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);

    for value in ["abc", "-1", "0x10", "1 2"] {
        assert_rejected(
            &proxy,
            &format!("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: {value}\r\n\r\nabcd"),
        );
    }
    assert_eq!(upstream.connections(), 0, "nothing may reach the upstream");
    proxy.shutdown().expect("confab shuts down cleanly");
}

#[test]
fn final_transfer_coding_other_than_chunked_is_rejected() {
    // RFC 9112 section 6.3: such a request's length cannot be determined; 400 and close.
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);

    assert_rejected(
        &proxy,
        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabcd",
    );
    assert_rejected(
        &proxy,
        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabcd",
    );
    assert_eq!(upstream.connections(), 0, "nothing may reach the upstream");
    proxy.shutdown().expect("confab shuts down cleanly");
}

#[test]
fn garbage_request_is_rejected() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);

    assert_rejected(&proxy, "THIS IS NOT HTTP\r\n\r\n");
    assert_rejected(
        &proxy,
        "GET /x HTTP/1.1\r\nHost: a\r\nbroken header line\r\n\r\n",
    );
    assert_eq!(upstream.connections(), 0, "nothing may reach the upstream");
    proxy.shutdown().expect("confab shuts down cleanly");
}

/// `raw` followed by an ordinary request on the same connection: a server that kept the
/// connection open after refusing `raw` would answer it (and send it upstream).
fn with_pipelined(mut raw: Vec<u8>) -> Vec<u8> {
    raw.extend_from_slice(b"GET /pipelined HTTP/1.1\r\nHost: a\r\n\r\n");
    raw
}

/// Sends `raw` from another thread (the server may answer and close before reading it all),
/// reads the response, which must say `Connection: close`, and reads the socket to its end:
/// the server must close it with no byte after the response.
fn send_oversized(proxy: &Proxy, raw: Vec<u8>) -> Response {
    let mut client = proxy.client();
    let mut writer = client.writer();
    let sender = thread::spawn(move || {
        let _ = writer.write_all(&raw);
    });
    let response = client.try_response(false);
    // The close comes after the answer (a reset counts as one); a connection kept open fails
    // the read with a timeout.
    let rest = response.as_ref().ok().map(|_| client.wire_rest());
    // Unblocks the sender whatever the server did.
    let _ = client.writer().shutdown(Shutdown::Both);
    sender.join().expect("sender thread panicked");
    let response = response.expect("a response to an oversized request");
    let rest = rest.expect("read after the response");
    assert!(
        rest.as_ref().is_ok_and(|rest| rest.is_empty()),
        "after {} the connection must close without more bytes: {:?}",
        response.status,
        rest.map(|rest| wire::lossy(&rest))
    );
    assert!(
        response.says_close(),
        "a {} says it closes the connection: {:?}",
        response.status,
        response.headers
    );
    response
}

#[test]
fn oversized_request_head_is_431() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let big = "b".repeat(1024 * 1024);
    let raw = format!("GET /x HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n");

    let response = send_oversized(&proxy, raw.into_bytes());
    assert_problem(&response, 431, "request-head-too-large");
    assert_eq!(upstream.connections(), 0, "nothing may reach the upstream");
    proxy.shutdown().expect("confab shuts down cleanly");
}

#[test]
fn complete_head_one_byte_over_the_limit_is_431_and_at_the_limit_is_served() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let limit = confab::http1::MAX_HEAD_BYTES;
    // A whole head, its blank line included, of `len` bytes.
    let head_of = |len: usize| {
        let frame = "GET /x HTTP/1.1\r\nHost: a\r\nX-Big: \r\n\r\n".len();
        let big = "b".repeat(len - frame);
        format!("GET /x HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n").into_bytes()
    };
    assert_eq!(head_of(limit + 1).len(), limit + 1);

    let refused = send_oversized(&proxy, with_pipelined(head_of(limit + 1)));
    assert_problem(&refused, 431, "request-head-too-large");
    assert_eq!(upstream.connections(), 0, "nothing may reach the upstream");
    let served = proxy.exchange(&head_of(limit));
    assert_eq!(served.status, 200, "{:?}", served.text());
    assert_eq!(upstream.requests(), 1);
    proxy.shutdown().expect("confab shuts down cleanly");
}

#[test]
fn many_headers_adding_up_to_an_oversized_head_are_431() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let mut raw = String::from("GET /x HTTP/1.1\r\nHost: a\r\n");
    for i in 0..8192 {
        raw.push_str(&format!("X-Field-{i}: {}\r\n", "v".repeat(100)));
    }
    raw.push_str("\r\n");

    let response = send_oversized(&proxy, raw.into_bytes());
    assert_problem(&response, 431, "request-head-too-large");
    assert_eq!(upstream.connections(), 0, "nothing may reach the upstream");
    proxy.shutdown().expect("confab shuts down cleanly");
}

#[test]
fn overlong_uri_is_414() {
    // 32 KiB: past any sensible URI limit, inside any sensible head limit.
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let target = format!("/{}", "u".repeat(32 * 1024));

    let response = send_oversized(&proxy, with_pipelined(get(&target)));
    assert_problem(&response, 414, "uri-too-long");
    assert_eq!(upstream.connections(), 0, "nothing may reach the upstream");
    proxy.shutdown().expect("confab shuts down cleanly");
}

#[test]
fn body_of_a_locally_answered_request_is_not_parsed_as_a_request() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

    let rejected = client.exchange(&request("POST", "/healthz", &[], smuggled.as_bytes()));
    assert_problem(&rejected, 405, "method-not-allowed");
    if rejected.says_close() {
        client.assert_closed();
    } else {
        let next = client.exchange(&get("/healthz"));
        assert_eq!(next.json(), serde_json::json!({"status": "ok"}));
    }
    assert_eq!(upstream.requests(), 0, "the body was taken for a request");
    proxy.shutdown().expect("confab shuts down cleanly");
}

#[test]
fn bodies_never_leak_into_the_next_request() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();

    let chunked = "5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n";
    let first = client.exchange(&request(
        "POST",
        "/one",
        &[("Transfer-Encoding", "chunked")],
        chunked.as_bytes(),
    ));
    assert_eq!(first.json()["body"], "hello");
    let second = client.exchange(&request("POST", "/two", &[], b"world"));
    assert_eq!(second.json()["body"], "world");
    let third = client.exchange(&get("/three"));
    assert_eq!(third.json()["target"], "/three");
    assert_eq!(third.json()["body"], "");

    let targets: Vec<String> = upstream.received().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/one", "/two", "/three"]);
    proxy.shutdown().expect("confab shuts down cleanly");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();

    let mut burst = get("/p/1");
    burst.extend(request("POST", "/p/2", &[], b"two"));
    burst.extend(get("/healthz"));
    burst.extend(get("/p/3"));
    client.send(&burst);

    assert_eq!(client.response().json()["target"], "/p/1");
    assert_eq!(client.response().json()["body"], "two");
    assert_eq!(client.response().json()["status"], "ok");
    assert_eq!(client.response().json()["target"], "/p/3");
    proxy.shutdown().expect("confab shuts down cleanly");
}

/// Sends every request on its own connection, expects each to be refused with 400 and the
/// connection closed, and nothing to reach the upstream.
fn assert_all_rejected(requests: &[String]) {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    for raw in requests {
        assert_rejected(&proxy, raw);
    }
    assert_eq!(upstream.connections(), 0, "nothing may reach the upstream");
    proxy.shutdown().expect("confab shuts down cleanly");
}

#[test]
fn content_length_with_a_sign_or_in_hex_is_rejected() {
    let requests = ["+3", "-1", "0x5", "3, 4", "3 4", ""]
        .map(|value| format!("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: {value}\r\n\r\nabcd"));
    assert_all_rejected(&requests);
}

#[test]
fn transfer_encodings_other_than_one_chunked_are_rejected() {
    let body = "5\r\nhello\r\n0\r\n\r\n";
    let requests = [
        format!("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n{body}"),
        format!(
            "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n{body}"
        ),
        format!("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n{body}"),
        format!(
            "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\
             Transfer-Encoding: chunked\r\n\r\n{body}"
        ),
        format!("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n{body}"),
        format!("POST /x HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{body}"),
        format!("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n{body}"),
    ];
    assert_all_rejected(&requests);
}

#[test]
fn obs_fold_is_rejected() {
    let requests = [
        "GET /x HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n".to_string(),
        "GET /x HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n\ttwo\r\n\r\n".to_string(),
        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"
            .to_string(),
    ];
    assert_all_rejected(&requests);
}

#[test]
fn bad_chunk_framing_is_rejected_before_the_upstream_is_contacted() {
    let chunked = |body: &str| {
        format!("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{body}")
    };
    let long_extension = format!("5;ext={}\r\nhello\r\n0\r\n\r\n", "e".repeat(17 * 1024));
    let requests = [
        chunked("-5\r\nhello\r\n0\r\n\r\n"),
        chunked("+5\r\nhello\r\n0\r\n\r\n"),
        chunked("0x5\r\nhello\r\n0\r\n\r\n"),
        chunked("00000000000000005\r\nhello\r\n0\r\n\r\n"),
        chunked("fffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        chunked("5\r\nhelloX\r\n0\r\n\r\n"),
        chunked("5\r\nhello0\r\n\r\n"),
        chunked("5\nhello\r\n0\r\n\r\n"),
        chunked("5\rhello\r\n0\r\n\r\n"),
        chunked("\r\nhello\r\n0\r\n\r\n"),
        chunked("g\r\nhello\r\n0\r\n\r\n"),
        chunked(&long_extension),
    ];
    assert_all_rejected(&requests);
}

#[test]
fn missing_or_repeated_host_is_rejected() {
    let requests = [
        "GET /x HTTP/1.1\r\nAccept: */*\r\n\r\n".to_string(),
        "GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_string(),
        "GET /x HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n".to_string(),
    ];
    assert_all_rejected(&requests);
}

#[test]
fn cr_or_lf_inside_a_header_value_is_rejected() {
    let requests = [
        "GET /x HTTP/1.1\r\nHost: a\r\nX-A: one\rX-Injected: two\r\n\r\n".to_string(),
        "GET /x HTTP/1.1\r\nHost: a\r\nX-A: one\nX-Injected: two\r\n\r\n".to_string(),
        "GET /x HTTP/1.1\nHost: a\n\n".to_string(),
        "GET /x HTTP/1.1\r\nHost: a\r\nX-A: one\r\r\n\r\n".to_string(),
    ];
    assert_all_rejected(&requests);
}

/// A smuggling payload pipelined between two ordinary requests: the first is answered, the
/// payload is refused and the connection closed, so the upstream sees exactly one request and
/// never the one hidden in the payload's body.
fn assert_smuggling_refused(payload: &str) {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();
    let mut burst = get("/before");
    burst.extend_from_slice(payload.as_bytes());
    burst.extend(get("/after"));
    client.send(&burst);

    let before = client.response();
    assert_eq!(before.json()["target"], "/before");
    let refused = client.response();
    assert_problem(&refused, 400, "bad-request");
    assert!(refused.says_close(), "{:?}", refused.headers);
    client.assert_closed();
    let targets: Vec<String> = upstream.received().into_iter().map(|r| r.target).collect();
    assert_eq!(
        targets,
        ["/before"],
        "the upstream must see exactly one request"
    );
    proxy.shutdown().expect("confab shuts down cleanly");
}

#[test]
fn cl_te_smuggling_payload_reaches_the_upstream_as_nothing() {
    // A front end that honours Content-Length forwards the whole body; a back end that
    // honours Transfer-Encoding ends the body at `0` and reads `GET /smuggled` as a request.
    assert_smuggling_refused(
        "POST /cl-te HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n\
         0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    );
}

#[test]
fn te_cl_smuggling_payload_reaches_the_upstream_as_nothing() {
    // A front end that honours Transfer-Encoding forwards one chunk; a back end that honours
    // Content-Length stops after `2b\r\n` and reads the chunk data as a request.
    assert_smuggling_refused(
        "POST /te-cl HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
         2b\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n\r\n0\r\n\r\n",
    );
}

/// `GET /x` with `count` header fields in all (Host included).
fn request_with_fields(count: usize) -> Vec<u8> {
    let mut raw = String::from("GET /x HTTP/1.1\r\nHost: a\r\n");
    for i in 1..count {
        raw.push_str(&format!("X-F{i}: v\r\n"));
    }
    raw.push_str("\r\n");
    raw.into_bytes()
}

#[test]
fn more_than_100_header_fields_are_431_and_100_are_served() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);

    let refused = send_oversized(&proxy, with_pipelined(request_with_fields(101)));
    assert_problem(&refused, 431, "request-head-too-large");
    assert_eq!(upstream.connections(), 0, "nothing may reach the upstream");

    let served = proxy.exchange(&request_with_fields(100));
    assert_eq!(served.status, 200, "{:?}", served.text());
    proxy.shutdown().expect("confab shuts down cleanly");
}

#[test]
fn request_line_at_the_limit_is_served_and_one_byte_more_is_414() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    // "GET " + target + " HTTP/1.1" is the request line; the limit counts its CR too.
    let line_overhead = "GET  HTTP/1.1\r".len();
    let limit = confab::http1::MAX_REQUEST_LINE_BYTES;
    let target = |len: usize| format!("/{}", "t".repeat(len - 1));

    let too_long = send_oversized(
        &proxy,
        with_pipelined(get(&target(limit - line_overhead + 1))),
    );
    assert_problem(&too_long, 414, "uri-too-long");
    assert_eq!(upstream.connections(), 0, "nothing may reach the upstream");
    let served = proxy.exchange(&get(&target(limit - line_overhead)));
    assert_eq!(served.status, 200, "{:?}", served.text());
    proxy.shutdown().expect("confab shuts down cleanly");
}

#[test]
fn malformed_head_after_a_served_request_is_refused_and_the_worker_serves_on() {
    // Found by the property tests: recording the refusal read the previous request's path
    // spans against the new, shorter buffer and panicked the worker.
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    for _ in 0..4 {
        let mut client = proxy.client();
        let served = client.exchange(&get("/a/long/path/to/something/else"));
        assert_eq!(served.status, 200);
        client.send(b"BROKEN\r\n\r\n");
        let refused = client.response();
        assert_problem(&refused, 400, "bad-request");
    }
    for _ in 0..4 {
        assert_eq!(proxy.exchange(&get("/healthz")).status, 200);
    }
    proxy.shutdown().expect("confab shuts down cleanly");
}
