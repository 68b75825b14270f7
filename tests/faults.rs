//! Upstream faults over real sockets: an upstream that refuses connections (nothing listens),
//! resets, never answers, stalls mid-body, trickles its head or body, truncates a
//! length-delimited or chunked body, sends a malformed status line, both Content-Length and
//! Transfer-Encoding, garbage, or a CR or LF inside a header value. Each gets the status the
//! proxy defines (502, 504) or, once the response head is on its way, a closed client
//! connection; a connection that misbehaved never carries another request (one worker, so that
//! every request goes through the same pool); and after every fault confab serves normally.

mod support;

use std::time::Duration;

use support::upstream::{FAULTS, TRICKLED_BODY};
use support::wire::{self, Framing};
use support::{assert_no_leak, assert_problem, config, drivers, get, Client, Proxy, Upstream};

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
