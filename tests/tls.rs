//! confab in front of an `https://` upstream: requests cross TLS unchanged with SNI and ALPN
//! `http/1.1`, each worker pools its TLS connections and resumes sessions, an untrusted
//! certificate is a 502 before any request byte is sent, an unanswered handshake is a 504
//! within the connect timeout, and an upstream dying mid-exchange is handled as over plain
//! HTTP, except that a close-delimited body cut by a bare TCP close (no close_notify) is a
//! truncation. Every upstream here is a rustls server the test runs, with a CA made in the
//! test; every test runs on both io drivers. The real binary, as a child process, shows which
//! roots it trusts: the system's (here `SSL_CERT_FILE`) and, in addition, `--upstream-ca`.

mod support;

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use confab::config::{Driver, ServeConfig};
use support::process::Served;
use support::stats::wait_for_stats;
use support::tls::{wait_until, SilentServer, TestCa, TlsUpstream};
use support::wire::{self, Framing, Wire};
use support::{
    assert_no_leak, assert_problem, config, drivers, get, request, After, Client, Proxy,
};

/// The names every test leaf certificate is valid for.
const LOCAL_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A test configuration for `upstream_url` on `driver` that trusts the CA at `ca`.
fn tls_config(upstream_url: String, ca: &Path, driver: Driver) -> ServeConfig {
    let mut config = config(Some(upstream_url));
    config.upstream_ca = Some(ca.to_owned());
    config.driver = driver;
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

/// The value of `--driver` that selects `driver`.
fn driver_flag(driver: Driver) -> &'static str {
    match driver {
        Driver::Auto => "auto",
        Driver::IoUring => "io-uring",
        Driver::Epoll => "epoll",
    }
}

/// Starts the real binary on `driver` in front of `upstream_url`, with `system_roots` as the
/// system's root store (`SSL_CERT_FILE`; `SSL_CERT_DIR` unset) and `args` added.
fn serve_binary(
    state: &Path,
    upstream_url: &str,
    system_roots: &Path,
    driver: Driver,
    args: &[&str],
) -> Served {
    let mut all = vec!["--upstream", upstream_url, "--driver", driver_flag(driver)];
    all.extend_from_slice(args);
    let env = [
        ("SSL_CERT_FILE", Some(system_roots.as_os_str())),
        ("SSL_CERT_DIR", None::<&OsStr>),
    ];
    Served::start_with_env(state, &all, &env)
}

#[test]
fn get_and_post_cross_tls_unchanged_with_sni_and_alpn() {
    let trusted = TrustedCa::new();
    for (driver_name, driver) in drivers() {
        let upstream = TlsUpstream::echo(trusted.ca.leaf(&LOCAL_NAMES));
        let url = upstream.url("localhost");
        let proxy = Proxy::start(tls_config(url, &trusted.path, driver));
        let mut client = proxy.client();

        let response = client.exchange(&get("/v1/items?page=2&q=a%20b"));
        assert_eq!(response.status, 200, "{driver_name}: {}", response.text());
        let echo = response.json();
        assert_eq!(echo["method"], "GET", "{driver_name}");
        assert_eq!(echo["target"], "/v1/items?page=2&q=a%20b", "{driver_name}");
        let authority = format!("localhost:{}", upstream.port());
        assert_eq!(
            echoed_header(&echo, "host"),
            Some(authority),
            "{driver_name}"
        );

        let body: Vec<u8> = (0..200_000u32)
            .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[i as usize % 36])
            .collect();
        let response = client.exchange(&request(
            "POST",
            "/v1/upload",
            &[("Content-Type", "application/octet-stream")],
            &body,
        ));
        assert_eq!(response.status, 200, "{driver_name}: {}", response.text());
        let received = upstream.received();
        assert_eq!(received.len(), 2, "{driver_name}: {received:#?}");
        assert_eq!(received[1].method, "POST", "{driver_name}");
        assert_eq!(
            received[1].body, body,
            "{driver_name}: the body arrived byte for byte"
        );
        assert_eq!(response.json()["body_len"], body.len(), "{driver_name}");

        let handshakes = upstream.handshakes();
        assert_eq!(handshakes.len(), 1, "{driver_name}: {handshakes:?}");
        assert_eq!(
            handshakes[0].sni.as_deref(),
            Some("localhost"),
            "{driver_name}"
        );
        assert_eq!(
            handshakes[0].alpn.as_deref(),
            Some(&b"http/1.1"[..]),
            "{driver_name}"
        );
    }
}

#[test]
fn an_ip_address_upstream_is_verified_without_sni() {
    let trusted = TrustedCa::new();
    for (driver_name, driver) in drivers() {
        let upstream = TlsUpstream::echo(trusted.ca.leaf(&LOCAL_NAMES));
        let url = upstream.url("127.0.0.1");
        let proxy = Proxy::start(tls_config(url, &trusted.path, driver));

        let response = proxy.exchange(&get("/ip"));
        assert_eq!(response.status, 200, "{driver_name}: {}", response.text());
        let authority = format!("127.0.0.1:{}", upstream.port());
        assert_eq!(
            echoed_header(&response.json(), "host"),
            Some(authority),
            "{driver_name}"
        );
        let handshakes = upstream.handshakes();
        assert_eq!(handshakes.len(), 1, "{driver_name}");
        assert_eq!(
            handshakes[0].sni, None,
            "{driver_name}: an IP address is never sent as SNI"
        );
        assert_eq!(
            handshakes[0].alpn.as_deref(),
            Some(&b"http/1.1"[..]),
            "{driver_name}"
        );
    }
}

#[test]
fn one_pooled_tls_connection_serves_many_requests_and_a_new_one_resumes() {
    let trusted = TrustedCa::new();
    for (driver_name, driver) in drivers() {
        let upstream = TlsUpstream::echo(trusted.ca.leaf(&LOCAL_NAMES));
        let url = upstream.url("localhost");
        let proxy = Proxy::start(tls_config(url, &trusted.path, driver));
        let mut client = proxy.client();

        for n in 0..20 {
            let response = client.exchange(&get(&format!("/seq/{n}")));
            assert_eq!(
                response.status,
                200,
                "{driver_name}, request {n}: {}",
                response.text()
            );
        }
        assert_eq!(
            upstream.accepts(),
            1,
            "{driver_name}: one TLS connection for one worker"
        );
        let received = upstream.received();
        assert!(
            received.iter().all(|request| request.connection == 0),
            "{driver_name}"
        );
        assert_eq!(
            received.last().map(|r| r.nth_on_connection),
            Some(19),
            "{driver_name}"
        );

        // The upstream closes after answering /close: the pool is empty again.
        let response = client.exchange(&get("/close"));
        assert_eq!(response.status, 200, "{driver_name}: {}", response.text());
        let response = client.exchange(&get("/after-close"));
        assert_eq!(response.status, 200, "{driver_name}: {}", response.text());

        assert_eq!(
            upstream.accepts(),
            2,
            "{driver_name}: a new connection after the close"
        );
        let handshakes = upstream.handshakes();
        assert_eq!(handshakes.len(), 2, "{driver_name}: {handshakes:?}");
        assert!(
            !handshakes[0].resumed,
            "{driver_name}: the first handshake is a full one"
        );
        assert!(
            handshakes[1].resumed,
            "{driver_name}: the second connection resumes the first session: {handshakes:?}"
        );
    }
}

#[test]
fn untrusted_certificate_is_502_and_nothing_is_forwarded() {
    let trusted = TrustedCa::new();
    let stranger = TestCa::new("some other CA");
    for (driver_name, driver) in drivers() {
        let upstream = TlsUpstream::echo(stranger.leaf(&LOCAL_NAMES));
        let url = upstream.url("localhost");
        let proxy = Proxy::start(tls_config(url, &trusted.path, driver));

        let response = proxy.exchange(&request("POST", "/orders", &[], b"{\"qty\":1}"));
        let problem = assert_problem(&response, 502, "upstream-certificate-untrusted");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("certificate was not trusted"),
            "{driver_name}: detail: {detail:?}"
        );
        assert_no_leak(&response, upstream.port());

        wait_until("the upstream's connection to end", || {
            upstream.accepts() >= 1 && upstream.finished() == upstream.accepts()
        });
        assert_eq!(
            upstream.failed_handshakes(),
            upstream.accepts(),
            "{driver_name}"
        );
        assert!(upstream.handshakes().is_empty(), "{driver_name}");
        assert!(
            upstream.received().is_empty(),
            "{driver_name}: no request reached the upstream: {:#?}",
            upstream.received()
        );

        wait_for_stats(
            proxy.addr(),
            "one certificate_untrusted error",
            |document| document["proxy"]["upstream_errors"]["certificate_untrusted"] == 1,
        );
    }
}

#[test]
fn certificate_for_another_name_is_not_trusted() {
    let trusted = TrustedCa::new();
    for (driver_name, driver) in drivers() {
        let upstream = TlsUpstream::echo(trusted.ca.leaf(&["api.other.test"]));
        let url = upstream.url("localhost");
        let proxy = Proxy::start(tls_config(url, &trusted.path, driver));

        let response = proxy.exchange(&get("/wrong-name"));
        assert_problem(&response, 502, "upstream-certificate-untrusted");
        assert!(upstream.received().is_empty(), "{driver_name}");
    }
}

#[test]
fn unanswered_client_hello_is_504_within_the_connect_timeout() {
    let trusted = TrustedCa::new();
    for (driver_name, driver) in drivers() {
        let silent = SilentServer::start();
        let mut config = tls_config(silent.url(), &trusted.path, driver);
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
            "{driver_name}: answered after {elapsed:?}, the connect timeout is 300ms"
        );
        wait_until("the silent server to accept", || silent.accepts() >= 1);
        assert_eq!(
            silent.accepts(),
            1,
            "{driver_name}: the TCP connection was made"
        );
        assert!(
            silent.pending_bytes() > 0,
            "{driver_name}: a ClientHello was sent"
        );
    }
}

#[test]
fn upstream_dying_mid_exchange_is_502_or_a_closed_client_as_over_http() {
    let trusted = TrustedCa::new();
    for (driver_name, driver) in drivers() {
        let upstream = TlsUpstream::start(trusted.ca.leaf(&LOCAL_NAMES), |request, stream| {
            if request.target == "/reset" {
                return After::Reset;
            }
            let head =
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n";
            let _ = stream.write_all(head);
            let _ = stream.write_all(&[b'd'; 100]);
            let _ = stream.flush();
            After::Close
        });
        let url = upstream.url("localhost");
        let proxy = Proxy::start(tls_config(url, &trusted.path, driver));

        let response = proxy.exchange(&request("POST", "/reset", &[], b"payload"));
        assert_problem(&response, 502, "upstream-reset");
        assert_no_leak(&response, upstream.port());
        assert_eq!(
            upstream.received().len(),
            1,
            "{driver_name}: the upstream read the request"
        );

        let mut client = proxy.client();
        client.send(&get("/dies"));
        let head = client.head_only();
        assert_eq!(
            head.status, 200,
            "{driver_name}: the head was already on its way"
        );
        let rest = client.read_to_end();
        assert!(
            wire::find(&rest, b"HTTP/1.").is_none(),
            "{driver_name}: a second status line followed the cut body: {:?}",
            wire::lossy(&rest)
        );
        assert_eq!(head.framing, Framing::Length(1000), "{driver_name}");
        assert_eq!(
            rest.len(),
            100,
            "{driver_name}: the client got what the upstream sent, then a close"
        );
    }
}

#[test]
fn a_pooled_tls_connection_the_upstream_closed_is_retried_once() {
    let trusted = TrustedCa::new();
    for (driver_name, driver) in drivers() {
        // Answers the first request on each connection; closes (with close_notify) on the
        // second without answering, as an upstream closing an idle connection just as it is
        // reused.
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
        let url = upstream.url("localhost");
        let proxy = Proxy::start(tls_config(url, &trusted.path, driver));
        let mut client = proxy.client();

        for n in 0..3 {
            let response = client.exchange(&get(&format!("/again/{n}")));
            assert_eq!(
                response.status,
                200,
                "{driver_name}, request {n}: {}",
                response.text()
            );
            assert_eq!(
                response.text(),
                format!("served /again/{n}"),
                "{driver_name}"
            );
        }
        // Requests 1 and 2 each failed once on a reused connection and went out again on a
        // new one, which resumed the session.
        assert_eq!(upstream.accepts(), 3, "{driver_name}");
        assert!(
            upstream.handshakes()[1..].iter().all(|seen| seen.resumed),
            "{driver_name}: {:?}",
            upstream.handshakes()
        );
    }
}

/// A TLS upstream that answers every request with a close-delimited body of `body`, then
/// ends the connection as `after` says.
fn close_delimited_upstream(trusted: &TrustedCa, body: &'static str, after: After) -> TlsUpstream {
    TlsUpstream::start(trusted.ca.leaf(&LOCAL_NAMES), move |_, stream| {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
        let _ = stream.write_all(format!("{head}{body}").as_bytes());
        let _ = stream.flush();
        after
    })
}

#[test]
fn a_close_delimited_body_ends_cleanly_at_close_notify() {
    let trusted = TrustedCa::new();
    for (driver_name, driver) in drivers() {
        let upstream = close_delimited_upstream(&trusted, "until close", After::Close);
        let url = upstream.url("localhost");
        let proxy = Proxy::start(tls_config(url, &trusted.path, driver));
        let mut client = proxy.client();

        let response = client.exchange(&get("/stream"));
        assert_eq!(response.status, 200, "{driver_name}");
        assert_eq!(
            response.framing,
            Framing::Chunked,
            "{driver_name}: re-framed for the client"
        );
        assert_eq!(
            response.text(),
            "until close",
            "{driver_name}: the whole body, last chunk included"
        );
        let again = client.exchange(&get("/stream"));
        assert_eq!(
            again.text(),
            "until close",
            "{driver_name}: the client connection stays usable"
        );
    }
}

#[test]
fn a_bare_tcp_close_cuts_a_close_delimited_body_without_the_last_chunk() {
    let trusted = TrustedCa::new();
    for (driver_name, driver) in drivers() {
        let upstream = close_delimited_upstream(&trusted, "cut short", After::CloseWithoutNotify);
        let url = upstream.url("localhost");
        let proxy = Proxy::start(tls_config(url, &trusted.path, driver));
        let mut client = proxy.client();

        client.send(&get("/cut"));
        let head = client.head_only();
        assert_eq!(head.status, 200, "{driver_name}: the head went out first");
        assert_eq!(head.framing, Framing::Chunked, "{driver_name}");
        // confab closes the client connection: reading to the end returns.
        let rest = client.read_to_end();
        let cut = Wire::new(&rest[..])
            .read_chunked()
            .expect_err("a truncated body must not end with the last chunk");
        assert_eq!(
            cut.kind(),
            std::io::ErrorKind::UnexpectedEof,
            "{driver_name}: {cut}; got {:?}",
            wire::lossy(&rest)
        );
        // Completed by hand, the chunks that did arrive carry the whole of what was sent.
        let mut completed = rest.clone();
        completed.extend_from_slice(b"0\r\n\r\n");
        let (body, _) = Wire::new(&completed[..])
            .read_chunked()
            .expect("whole chunks before the cut");
        assert_eq!(body, b"cut short", "{driver_name}");
    }
}

#[test]
fn the_system_roots_verify_the_upstream_without_upstream_ca() {
    let system = TrustedCa::new();
    let other = TrustedCa::new();
    for (driver_name, driver) in drivers() {
        let upstream = TlsUpstream::echo(system.ca.leaf(&LOCAL_NAMES));
        let url = upstream.url("localhost");
        let state = tempfile::tempdir().expect("state folder");

        let served = serve_binary(state.path(), &url, &system.path, driver, &[]);
        let response = Client::connect(served.addr).exchange(&get("/via/system/roots"));
        assert_eq!(response.status, 200, "{driver_name}: {}", response.text());
        assert_eq!(
            response.json()["target"],
            "/via/system/roots",
            "{driver_name}"
        );
        served.terminate();

        // The same upstream, with a system store that does not hold its CA.
        let served = serve_binary(state.path(), &url, &other.path, driver, &[]);
        let response = Client::connect(served.addr).exchange(&get("/not/trusted"));
        assert_problem(&response, 502, "upstream-certificate-untrusted");
        served.terminate();
        assert_eq!(
            upstream.received().len(),
            1,
            "{driver_name}: only the verified request reached the upstream"
        );
    }
}

#[test]
fn upstream_ca_is_trusted_in_addition_to_the_system_roots() {
    let system = TrustedCa::new();
    let private = TrustedCa::new();
    let stranger = TestCa::new("a CA nobody trusts");
    let private_ca = private.path.to_str().expect("a UTF-8 path");
    for (driver_name, driver) in drivers() {
        // One trust setup (the system's roots plus --upstream-ca), three upstreams.
        for (signer, ca, expected) in [
            ("the system's CA", &system.ca, 200),
            ("the --upstream-ca CA", &private.ca, 200),
            ("an unknown CA", &stranger, 502),
        ] {
            let context = format!("{driver_name}, a certificate signed by {signer}");
            let upstream = TlsUpstream::echo(ca.leaf(&LOCAL_NAMES));
            let url = upstream.url("localhost");
            let state = tempfile::tempdir().expect("state folder");
            let args = ["--upstream-ca", private_ca];
            let served = serve_binary(state.path(), &url, &system.path, driver, &args);

            let response = Client::connect(served.addr).exchange(&get("/trust"));
            assert_eq!(response.status, expected, "{context}: {}", response.text());
            if expected == 502 {
                assert_problem(&response, 502, "upstream-certificate-untrusted");
            }
            let forwarded = usize::from(expected == 200);
            assert_eq!(upstream.received().len(), forwarded, "{context}");
            served.terminate();
        }
    }
}
