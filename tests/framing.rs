//! Black-box tests of request framing at confab's client side: requests whose body length is
//! ambiguous (Content-Length with Transfer-Encoding in either order, conflicting or invalid
//! Content-Lengths, a final transfer coding other than chunked) get a 400 problem, the
//! connection is closed and nothing reaches the upstream; oversized heads and URIs get 431 and
//! 414; bodies never leak into the next request on a kept-alive connection.

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
}

/// Sends `raw` from another thread (the server may answer and close before reading it all)
/// and reads the response.
fn send_oversized(proxy: &Proxy, raw: Vec<u8>) -> Response {
    let mut client = proxy.client();
    let mut writer = client.writer();
    let sender = thread::spawn(move || {
        let _ = writer.write_all(&raw);
    });
    let response = client.try_response(false);
    // Unblocks the sender if the server stopped reading but kept the connection open.
    let _ = client.writer().shutdown(Shutdown::Both);
    sender.join().expect("sender thread panicked");
    response.expect("a response to an oversized request")
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
}

#[test]
fn overlong_uri_is_414() {
    // 32 KiB: past any sensible URI limit, inside any sensible head limit.
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let target = format!("/{}", "u".repeat(32 * 1024));

    let response = send_oversized(&proxy, get(&target));
    assert_problem(&response, 414, "uri-too-long");
    assert_eq!(upstream.connections(), 0, "nothing may reach the upstream");
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
}
