//! Upstream faults over real sockets: an upstream that refuses connections (nothing listens),
//! resets, never answers, stalls mid-body, trickles its head or body, truncates a
//! length-delimited or chunked body, sends a malformed status line, both Content-Length and
//! Transfer-Encoding, garbage, or a CR or LF inside a header value. Each gets the status the
//! proxy defines (502, 504) or, once the response head is on its way, a closed client
//! connection; a connection that misbehaved never carries another request (one worker, so that
//! every request goes through the same pool); and after every fault confab serves normally.
//! A refusing upstream is also hit many times in a row through the real binary: every request
//! gets the 502, and no connection, descriptor or in-flight slot is left behind.

mod support;

use std::time::Duration;

use confab::config::Driver;
use support::process::Served;
use support::upstream::{FAULTS, TRICKLED_BODY};
use support::wire::{self, Framing};
use support::{
    assert_no_leak, assert_problem, config, drivers, get, request, Client, Proxy, Upstream,
};

/// The upstream timeout of these tests: short, so that silent faults show quickly.
const UPSTREAM_TIMEOUT: Duration = Duration::from_millis(300);
/// The pause of the trickling faults: a trickled head (about 40 bytes) takes far longer than
/// the upstream timeout, while each pause of a trickled body stays well inside it.
const TRICKLE_PAUSE: Duration = Duration::from_millis(25);

/// The fault of an upstream that nothing listens for: connecting is refused.
const REFUSE: &str = "refuse";

/// What the client must see for one fault.
enum Expect {
    Problem(u16, &'static str),
    /// A 200 head, then the connection closes before the announced body is complete.
    CutBody,
    /// The whole response, delivered slowly.
    Complete(&'static [u8]),
}

fn expected(fault: &str) -> Expect {
    match fault {
        REFUSE => Expect::Problem(502, "upstream-refused"),
        "reset" => Expect::Problem(502, "upstream-reset"),
        "blackhole" | "trickle-head" => Expect::Problem(504, "upstream-timeout"),
        "stall" | "truncate" | "truncate-chunked" => Expect::CutBody,
        "trickle-body" => Expect::Complete(TRICKLED_BODY),
        "status-line" | "cl-te" | "garbage" | "bare-lf-header" | "cr-in-header" => {
            Expect::Problem(502, "upstream-malformed")
        }
        other => panic!("no expectation for fault {other}"),
    }
}

fn check_fault(proxy: &Proxy, upstream: &mut Upstream, fault: &str, context: &str) {
    if fault == REFUSE {
        upstream.stop_listening();
    }
    let mut client = proxy.client();
    client.send(&get(&format!("/fault/{fault}")));
    check_answer(&mut client, upstream, fault, context);
    if fault == REFUSE {
        upstream.listen_again();
    }
}

fn check_answer(client: &mut Client, upstream: &Upstream, fault: &str, context: &str) {
    match expected(fault) {
        Expect::Problem(status, code) => {
            let response = client.response();
            assert_problem(&response, status, code);
            assert_no_leak(&response, upstream.port());
        }
        Expect::Complete(body) => {
            let response = client.response();
            assert_eq!(response.status, 200, "{context}");
            assert_eq!(response.body, body, "{context}");
        }
        Expect::CutBody => {
            let head = client.head_only();
            assert_eq!(
                head.status, 200,
                "{context}: the head was already on its way"
            );
            let rest = client.read_to_end();
            assert!(
                wire::find(&rest, b"HTTP/1.").is_none(),
                "{context}: a second status line followed the cut body: {:?}",
                wire::lossy(&rest)
            );
            match head.framing {
                Framing::Length(announced) => assert!(rest.len() < announced, "{context}"),
                Framing::Chunked => assert!(
                    !rest.ends_with(b"0\r\n\r\n"),
                    "{context}: a cut chunked body was completed: {:?}",
                    wire::lossy(&rest)
                ),
                other => panic!("{context}: unexpected framing {other:?}"),
            }
        }
    }
}

/// Sends ordinary requests on fresh connections (so that they spread over every worker's
/// pool) and expects each to be served.
fn assert_serves_normally(proxy: &Proxy, context: &str) {
    for i in 0..4 {
        let response = proxy.exchange(&get(&format!("/ok/{i}")));
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "fresh"),
            "{context}"
        );
    }
}

#[test]
fn every_upstream_fault_is_answered_and_confab_serves_on_on_both_drivers() {
    for (driver_name, driver) in drivers() {
        let mut upstream = Upstream::faulty(TRICKLE_PAUSE);
        let mut config = config(Some(upstream.url()));
        config.driver = driver;
        config.threads = 1;
        config.upstream_timeout = UPSTREAM_TIMEOUT;
        let proxy = Proxy::start(config);
        assert_serves_normally(&proxy, driver_name);

        for fault in FAULTS.into_iter().chain([REFUSE]) {
            let context = format!("{driver_name}, fault {fault}");
            check_fault(&proxy, &mut upstream, fault, &context);
            assert_serves_normally(&proxy, &format!("{context}, afterwards"));
        }

        // A connection whose exchange failed carries nothing after the failed request. (A
        // trickled body is slow, not wrong: its connection may be reused.)
        let received = upstream.received();
        for failed in received.iter().filter(|seen| {
            seen.target.starts_with("/fault/") && seen.target != "/fault/trickle-body"
        }) {
            let reused = received.iter().find(|later| {
                later.connection == failed.connection
                    && later.nth_on_connection > failed.nth_on_connection
            });
            assert!(
                reused.is_none(),
                "{driver_name}: {} went out on the connection that failed {}",
                reused.map(|seen| seen.target.as_str()).unwrap_or_default(),
                failed.target
            );
        }
        proxy
            .shutdown()
            .unwrap_or_else(|error| panic!("{driver_name}: shutdown: {error}"));
    }
}

/// Requests in a row on one kept-alive connection to a refusing upstream.
const REFUSED_ON_ONE_CONNECTION: usize = 200;
/// Requests to a refusing upstream on a fresh connection each.
const REFUSED_ON_FRESH_CONNECTIONS: usize = 100;
/// The connection limit of the refusal loop: a few more than the test holds open at once, so
/// that leaked connections would soon have new ones closed unanswered.
const LOOP_MAX_CONNECTIONS: &str = "4";
/// Descriptors the process may open besides its connections over the loop (the log, a store
/// file); a leak per request or connection would show as hundreds.
const FD_SLACK: usize = 8;

/// The open file descriptors of process `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("list the server's descriptors")
        .count()
}

fn driver_flag(driver: Driver) -> &'static str {
    match driver {
        Driver::Auto => "auto",
        Driver::IoUring => "io-uring",
        Driver::Epoll => "epoll",
    }
}

/// Sends `GET path` with `Connection: close` on a new connection, reads the response and the
/// server's close: the server closes first, so the connection's descriptor and its place under
/// the connection limit are given back once this returns.
fn exchange_closing(addr: std::net::SocketAddr, path: &str) -> support::Response {
    let mut client = Client::connect(addr);
    let response = client.exchange(&request("GET", path, &[("Connection", "close")], b""));
    client.assert_closed();
    response
}

/// One in-flight slot per worker and a low connection limit: a refused exchange that kept its
/// slot would turn the worker's next request into a 503, and one that kept its connection's
/// place would have new connections closed unanswered.
#[test]
fn refused_upstream_many_times_in_a_row_is_502_every_time_and_leaks_nothing() {
    for (driver_name, driver) in drivers() {
        let mut upstream = Upstream::faulty(TRICKLE_PAUSE);
        let state = tempfile::tempdir().expect("state dir");
        let upstream_url = upstream.url();
        let served = Served::start(
            state.path(),
            &[
                "--upstream",
                &upstream_url,
                "--driver",
                driver_flag(driver),
                "--max-inflight-per-core",
                "1",
                "--max-connections",
                LOOP_MAX_CONNECTIONS,
                "--stats-flush-interval",
                "1h",
            ],
        );
        let addr = served.addr;
        let mut kept = Client::connect(addr);
        assert_eq!(kept.exchange(&get("/ok/before")).text(), "fresh");

        upstream.stop_listening();
        let refused = |response: &support::Response, context: &str| {
            assert_eq!(response.status, 502, "{driver_name}, {context}");
            assert_problem(response, 502, "upstream-refused");
            assert_no_leak(response, upstream.port());
        };
        // The first refusal also retires the pooled connection the upstream closed.
        refused(&kept.exchange(&get("/refused/first")), "first");
        let fds_before = open_fds(served.pid());

        for i in 0..REFUSED_ON_ONE_CONNECTION {
            let response = kept.exchange(&get(&format!("/refused/kept/{i}")));
            refused(&response, &format!("request {i} on one connection"));
            assert!(
                !response.says_close(),
                "{driver_name}: a refusal closes the client's connection"
            );
        }
        for i in 0..REFUSED_ON_FRESH_CONNECTIONS {
            let response = exchange_closing(addr, &format!("/refused/fresh/{i}"));
            refused(&response, &format!("fresh connection {i}"));
        }
        let fds_after = open_fds(served.pid());
        assert!(
            fds_after <= fds_before + FD_SLACK,
            "{driver_name}: {fds_before} descriptors before the refusals, {fds_after} after"
        );
        assert_eq!(
            upstream.connections(),
            1,
            "{driver_name}: only the first got through"
        );

        // Once the upstream is back, the same connection and new ones are served.
        upstream.listen_again();
        assert_eq!(
            kept.exchange(&get("/ok/after")).text(),
            "fresh",
            "{driver_name}"
        );
        for i in 0..8 {
            let response = exchange_closing(addr, &format!("/ok/after/{i}"));
            assert_eq!(
                (response.status, response.text().as_str()),
                (200, "fresh"),
                "{driver_name}"
            );
        }
        drop(kept);
        served.terminate();
    }
}
