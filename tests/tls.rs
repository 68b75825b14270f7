//! confab in front of an `https://` upstream: requests cross TLS unchanged with SNI and ALPN
//! `http/1.1`, each worker pools its TLS connections and resumes sessions, an untrusted
//! certificate is a 502 before any request byte is sent, an unanswered handshake is a 504
//! within the connect timeout, and an upstream dying mid-exchange is handled as over plain
//! HTTP. Every upstream here is a rustls server the test runs, with a CA made in the test.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use confab::config::ServeConfig;
use support::stats::wait_for_stats;
use support::tls::{wait_until, SilentServer, TestCa, TlsUpstream};
use support::wire::{self, Framing};
use support::{assert_no_leak, assert_problem, config, get, request, After, Proxy};

/// The names every test leaf certificate is valid for.
const LOCAL_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A test configuration for `upstream_url` that trusts the CA at `ca`.
fn tls_config(upstream_url: String, ca: &Path) -> ServeConfig {
    let mut config = config(Some(upstream_url));
    config.upstream_ca = Some(ca.to_owned());
    config
}

/// A CA, its PEM written to a folder kept as long as the value lives.
struct TrustedCa {
    ca: TestCa,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl TrustedCa {
    fn new() -> TrustedCa {
        let dir = tempfile::tempdir().expect("CA folder");
        let ca = TestCa::new("confab test CA");
        let path = ca.write_pem(dir.path());
        TrustedCa {
            ca,
            path,
            _dir: dir,
        }
    }
}

/// The echo document's value of header `name`, if it was forwarded.
fn echoed_header(echo: &serde_json::Value, name: &str) -> Option<String> {
    echo["headers"]
        .as_array()
        .expect("headers array")
        .iter()
        .find(|pair| {
            pair[0]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .map(|pair| pair[1].as_str().expect("header value").to_owned())
}

#[test]
fn get_and_post_cross_tls_unchanged_with_sni_and_alpn() {
    let trusted = TrustedCa::new();
    let upstream = TlsUpstream::echo(trusted.ca.leaf(&LOCAL_NAMES));
    let proxy = Proxy::start(tls_config(upstream.url("localhost"), &trusted.path));
    let mut client = proxy.client();

    let response = client.exchange(&get("/v1/items?page=2&q=a%20b"));
    assert_eq!(response.status, 200, "{}", response.text());
    let echo = response.json();
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["target"], "/v1/items?page=2&q=a%20b");
    let authority = format!("localhost:{}", upstream.port());
    assert_eq!(echoed_header(&echo, "host"), Some(authority));

    let body: Vec<u8> = (0..200_000u32)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[i as usize % 36])
        .collect();
    let response = client.exchange(&request(
        "POST",
        "/v1/upload",
        &[("Content-Type", "application/octet-stream")],
        &body,
    ));
    assert_eq!(response.status, 200, "{}", response.text());
    let received = upstream.received();
    assert_eq!(received.len(), 2, "{received:#?}");
    assert_eq!(received[1].method, "POST");
    assert_eq!(received[1].body, body, "the body arrived byte for byte");
    assert_eq!(response.json()["body_len"], body.len());

    let handshakes = upstream.handshakes();
    assert_eq!(handshakes.len(), 1, "{handshakes:?}");
    assert_eq!(handshakes[0].sni.as_deref(), Some("localhost"));
    assert_eq!(handshakes[0].alpn.as_deref(), Some(&b"http/1.1"[..]));
}

#[test]
fn an_ip_address_upstream_is_verified_without_sni() {
    let trusted = TrustedCa::new();
    let upstream = TlsUpstream::echo(trusted.ca.leaf(&LOCAL_NAMES));
    let proxy = Proxy::start(tls_config(upstream.url("127.0.0.1"), &trusted.path));

    let response = proxy.exchange(&get("/ip"));
    assert_eq!(response.status, 200, "{}", response.text());
    let authority = format!("127.0.0.1:{}", upstream.port());
    assert_eq!(echoed_header(&response.json(), "host"), Some(authority));
    let handshakes = upstream.handshakes();
    assert_eq!(handshakes.len(), 1);
    assert_eq!(
        handshakes[0].sni, None,
        "an IP address is never sent as SNI"
    );
    assert_eq!(handshakes[0].alpn.as_deref(), Some(&b"http/1.1"[..]));
}

#[test]
fn one_pooled_tls_connection_serves_many_requests_and_a_new_one_resumes() {
    let trusted = TrustedCa::new();
    let upstream = TlsUpstream::echo(trusted.ca.leaf(&LOCAL_NAMES));
    let proxy = Proxy::start(tls_config(upstream.url("localhost"), &trusted.path));
    let mut client = proxy.client();

    for n in 0..20 {
        let response = client.exchange(&get(&format!("/seq/{n}")));
        assert_eq!(response.status, 200, "request {n}: {}", response.text());
    }
    assert_eq!(upstream.accepts(), 1, "one TLS connection for one worker");
    let received = upstream.received();
    assert!(received.iter().all(|request| request.connection == 0));
    assert_eq!(received.last().map(|r| r.nth_on_connection), Some(19));

    // The upstream closes after answering /close: the pool is empty again.
    let response = client.exchange(&get("/close"));
    assert_eq!(response.status, 200, "{}", response.text());
    let response = client.exchange(&get("/after-close"));
    assert_eq!(response.status, 200, "{}", response.text());

    assert_eq!(upstream.accepts(), 2, "a new connection after the close");
    let handshakes = upstream.handshakes();
    assert_eq!(handshakes.len(), 2, "{handshakes:?}");
    assert!(!handshakes[0].resumed, "the first handshake is a full one");
    assert!(
        handshakes[1].resumed,
        "the second connection resumes the first session: {handshakes:?}"
    );
}

#[test]
fn untrusted_certificate_is_502_and_nothing_is_forwarded() {
    let trusted = TrustedCa::new();
    let stranger = TestCa::new("some other CA");
    let upstream = TlsUpstream::echo(stranger.leaf(&LOCAL_NAMES));
    let proxy = Proxy::start(tls_config(upstream.url("localhost"), &trusted.path));

    let response = proxy.exchange(&request("POST", "/orders", &[], b"{\"qty\":1}"));
    let problem = assert_problem(&response, 502, "upstream-certificate-untrusted");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("certificate was not trusted"),
        "detail: {detail:?}"
    );
    assert_no_leak(&response, upstream.port());

    wait_until("the upstream's connection to end", || {
        upstream.accepts() >= 1 && upstream.finished() == upstream.accepts()
    });
    assert_eq!(upstream.failed_handshakes(), upstream.accepts());
    assert!(upstream.handshakes().is_empty());
    assert!(
        upstream.received().is_empty(),
        "no request reached the upstream: {:#?}",
        upstream.received()
    );

    wait_for_stats(
        proxy.addr(),
        "one certificate_untrusted error",
        |document| document["proxy"]["upstream_errors"]["certificate_untrusted"] == 1,
    );
}

#[test]
fn certificate_for_another_name_is_not_trusted() {
    let trusted = TrustedCa::new();
    let upstream = TlsUpstream::echo(trusted.ca.leaf(&["api.other.test"]));
    let proxy = Proxy::start(tls_config(upstream.url("localhost"), &trusted.path));

    let response = proxy.exchange(&get("/wrong-name"));
    assert_problem(&response, 502, "upstream-certificate-untrusted");
    assert!(upstream.received().is_empty());
}

#[test]
fn unanswered_client_hello_is_504_within_the_connect_timeout() {
    let trusted = TrustedCa::new();
    let silent = SilentServer::start();
    let mut config = tls_config(silent.url(), &trusted.path);
    config.connect_timeout = Duration::from_millis(300);
    // Far from the connect timeout, so the 504 can only come from the latter.
    config.upstream_timeout = Duration::from_secs(10);
    let proxy = Proxy::start(config);

    let started = Instant::now();
    let response = proxy.exchange(&get("/hello"));
    let elapsed = started.elapsed();
    assert_problem(&response, 504, "upstream-connect-timeout");
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
        "answered after {elapsed:?}, the connect timeout is 300ms"
    );
    wait_until("the silent server to accept", || silent.accepts() >= 1);
    assert_eq!(silent.accepts(), 1, "the TCP connection was made");
    assert!(silent.pending_bytes() > 0, "a ClientHello was sent");
}

#[test]
fn upstream_dying_mid_exchange_is_502_or_a_closed_client_as_over_http() {
    let trusted = TrustedCa::new();
    let upstream = TlsUpstream::start(trusted.ca.leaf(&LOCAL_NAMES), |request, stream| {
        if request.target == "/reset" {
            return After::Reset;
        }
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n";
        let _ = stream.write_all(head);
        let _ = stream.write_all(&[b'd'; 100]);
        let _ = stream.flush();
        After::Close
    });
    let proxy = Proxy::start(tls_config(upstream.url("localhost"), &trusted.path));

    let response = proxy.exchange(&request("POST", "/reset", &[], b"payload"));
    assert_problem(&response, 502, "upstream-reset");
    assert_no_leak(&response, upstream.port());
    assert_eq!(
        upstream.received().len(),
        1,
        "the upstream read the request"
    );

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
    assert_eq!(head.framing, Framing::Length(1000));
    assert_eq!(
        rest.len(),
        100,
        "the client got what the upstream sent, then a close"
    );
}

#[test]
fn a_pooled_tls_connection_the_upstream_closed_is_retried_once() {
    let trusted = TrustedCa::new();
    // Answers the first request on each connection; closes (with close_notify) on the second
    // without answering, as an upstream closing an idle connection just as it is reused.
    let upstream = TlsUpstream::start(trusted.ca.leaf(&LOCAL_NAMES), |request, stream| {
        if request.nth_on_connection > 0 {
            return After::Close;
        }
        let body = format!("served {}", request.target);
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let written = stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body.as_bytes()))
            .and_then(|()| stream.flush());
        match written {
            Ok(()) => After::KeepAlive,
            Err(_) => After::Close,
        }
    });
    let proxy = Proxy::start(tls_config(upstream.url("localhost"), &trusted.path));
    let mut client = proxy.client();

    for n in 0..3 {
        let response = client.exchange(&get(&format!("/again/{n}")));
        assert_eq!(response.status, 200, "request {n}: {}", response.text());
        assert_eq!(response.text(), format!("served /again/{n}"));
    }
    // Requests 1 and 2 each failed once on a reused connection and went out again on a new
    // one, which resumed the session.
    assert_eq!(upstream.accepts(), 3);
    assert!(upstream.handshakes()[1..].iter().all(|seen| seen.resumed));
}

#[test]
fn a_close_delimited_body_ends_cleanly_at_close_notify() {
    let trusted = TrustedCa::new();
    let upstream = TlsUpstream::start(trusted.ca.leaf(&LOCAL_NAMES), |_, stream| {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close");
        let _ = stream.flush();
        After::Close
    });
    let proxy = Proxy::start(tls_config(upstream.url("localhost"), &trusted.path));
    let mut client = proxy.client();

    let response = client.exchange(&get("/stream"));
    assert_eq!(response.status, 200);
    assert_eq!(
        response.framing,
        Framing::Chunked,
        "re-framed for the client"
    );
    assert_eq!(
        response.text(),
        "until close",
        "the whole body, last chunk included"
    );
    let again = client.exchange(&get("/stream"));
    assert_eq!(
        again.text(),
        "until close",
        "the client connection stays usable"
    );
}
