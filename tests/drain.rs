//! Draining the real binary under load: concurrent keep-alive clients run requests through
//! `confab serve` when it receives SIGTERM. Every request written before the signal is
//! answered in full; every response to a request sent once the server is draining carries
//! `Connection: close`; new connections are refused while a request held at the upstream still
//! finishes; the statistics of every answered request are flushed to the store (a restart on
//! the same state folder counts them all); and the process exits 0. Every step waits for an
//! event (a count of answers, a request at the upstream, a log line, the process's exit), never
//! for a guessed delay.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use support::process::Served;
use support::stats::{proxied, stats};
use support::upstream::{write_all, Gate};
use support::{get, After, Client, Proxy, Upstream};

/// Concurrent keep-alive clients.
const CLIENTS: usize = 8;
/// How long the upstream takes over each ordinary request, so that some are always in flight
/// when the signal comes (the load's pace, not a wait for anything).
const UPSTREAM_DELAY: Duration = Duration::from_millis(15);
/// How soon the held request is answered once the upstream lets it go.
const HELD_ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// Responses the clients collect before the signal.
const BEFORE_SIGNAL: usize = 200;
/// How long the test waits for anything it waits for.
const DEADLINE: Duration = Duration::from_secs(20);

/// One request as a client saw it.
#[derive(Debug)]
struct Outcome {
    /// When the request had been written completely.
    written: Instant,
    /// The response, with whether it said `Connection: close`; or what went wrong.
    result: Result<bool, String>,
}

/// An upstream that holds `/held` at `gate` until the test opens it, and answers everything
/// else after [`UPSTREAM_DELAY`].
fn delaying_upstream(gate: &Gate) -> Upstream {
    let gate = gate.clone();
    Upstream::start(move |request, stream| {
        if request.target == "/held" {
            if !gate.pass() {
                return After::Close;
            }
        } else {
            thread::sleep(UPSTREAM_DELAY);
        }
        let body = format!("served {}", request.target);
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        match write_all(stream, &[head.as_bytes(), body.as_bytes()]) {
            Ok(()) => After::KeepAlive,
            Err(_) => After::Close,
        }
    })
}

/// The log line `confab serve` writes once every worker has closed its listener.
const STOPPED_ACCEPTING: &str = "every worker has stopped accepting connections";

/// A client loop: requests on a keep-alive connection, reconnecting when the server closes,
/// until `stop` or until a reconnect is refused. The client that sees answer number
/// [`BEFORE_SIGNAL`] says so on `load_going`.
fn run_client(
    addr: SocketAddr,
    id: usize,
    stop: &AtomicBool,
    answered: &AtomicUsize,
    load_going: &mpsc::Sender<()>,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut client: Option<Client> = None;
    for n in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let connection = match client.as_mut() {
            Some(connection) => connection,
            None => match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                Ok(stream) => client.insert(Client::from_stream(stream)),
                Err(_) => break,
            },
        };
        if connection
            .try_send(&get(&format!("/load/{id}/{n}")))
            .is_err()
        {
            client = None;
            continue;
        }
        let written = Instant::now();
        let result = match connection.try_response(false) {
            Ok(response) if response.status == 200 => {
                if answered.fetch_add(1, Ordering::SeqCst) + 1 == BEFORE_SIGNAL {
                    let _ = load_going.send(());
                }
                Ok(response.says_close())
            }
            Ok(response) => Err(format!("status {}: {}", response.status, response.text())),
            Err(error) => Err(error.to_string()),
        };
        if !matches!(result, Ok(false)) {
            client = None;
        }
        outcomes.push(Outcome { written, result });
    }
    outcomes
}

#[test]
fn sigterm_under_load_answers_every_started_request_and_flushes_the_statistics() {
    let gate = Gate::new();
    let upstream = delaying_upstream(&gate);
    let state = tempfile::tempdir().expect("state dir");
    let data = support::shared_dataset();
    let upstream_url = upstream.url();
    let data = data.to_str().expect("a UTF-8 dataset path");
    let args = [
        "--upstream",
        &upstream_url,
        "--stats-flush-interval",
        "1h",
        "--shutdown-grace",
        "10s",
        "--data",
        data,
    ];
    let mut served = Served::start(state.path(), &args);
    let addr = served.addr;

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let (load_going_tx, load_going) = mpsc::channel();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (stop, answered) = (Arc::clone(&stop), Arc::clone(&answered));
            let load_going = load_going_tx.clone();
            thread::spawn(move || run_client(addr, id, &stop, &answered, &load_going))
        })
        .collect();
    load_going
        .recv_timeout(DEADLINE)
        .expect("the load did not get going");
    let mut held = Client::connect(addr);
    held.send(&get("/held"));
    gate.wait_arrived(1);

    let signalled = Instant::now();
    served.signal("-TERM");
    // Once every worker has closed its listener (it says so), and while /held is still
    // waiting at the upstream, new connections are refused; every connection is draining
    // from then on.
    served.wait_for_log(STOPPED_ACCEPTING);
    let draining = Instant::now();
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "still accepting after SIGTERM"
    );
    let released = Instant::now();
    gate.open();
    let held_response = held.response();
    assert_eq!(held_response.text(), "served /held");
    assert!(held_response.says_close(), "{:?}", held_response.headers);
    assert!(
        released.elapsed() < HELD_ANSWER_WITHIN,
        "the in-flight request was held up after the upstream answered"
    );
    let status = served.wait();
    stop.store(true, Ordering::SeqCst);
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );

    let outcomes: Vec<Outcome> = clients
        .into_iter()
        .flat_map(|client| client.join().expect("client thread panicked"))
        .collect();
    let started_before: Vec<&Outcome> = outcomes
        .iter()
        .filter(|outcome| outcome.written < signalled)
        .collect();
    let failed: Vec<&&Outcome> = started_before
        .iter()
        .filter(|outcome| outcome.result.is_err())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests written before SIGTERM were not answered: {failed:#?}",
        failed.len(),
        started_before.len()
    );
    // A request written once every worker was draining is answered with Connection: close
    // (or, on a connection idle past the drain's grace for idle connections, not at all).
    let kept_alive_while_draining: Vec<&Outcome> = outcomes
        .iter()
        .filter(|outcome| outcome.written > draining && outcome.result == Ok(false))
        .collect();
    assert!(
        kept_alive_while_draining.is_empty(),
        "responses without Connection: close while draining: {kept_alive_while_draining:#?}"
    );
    let closing = outcomes
        .iter()
        .filter(|outcome| outcome.result == Ok(true))
        .count();
    assert!(
        closing > 0,
        "no response while draining said Connection: close"
    );

    // Every answered request was counted and flushed by the shutdown.
    let answered = outcomes
        .iter()
        .filter(|outcome| outcome.result.is_ok())
        .count()
        + 1;
    let mut restarted = Served::start(state.path(), &args);
    let document = stats(restarted.addr);
    assert_eq!(
        proxied(&document),
        answered as u64,
        "proxied requests counted after the restart"
    );
    restarted.signal("-TERM");
    assert!(restarted.wait().success());
}

#[test]
fn request_arriving_on_an_idle_connection_as_draining_starts_is_answered() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();
    let first = client.exchange(&get("/first"));
    assert!(!first.says_close(), "kept alive before the drain");

    // The connection is idle between requests when the drain starts; a request that arrives
    // once every worker is draining (within the drain's grace for idle connections) is still
    // served, and the connection closes.
    proxy.begin_drain();
    let second = client.exchange(&get("/second"));
    assert_eq!(second.json()["target"], "/second");
    assert!(second.says_close(), "{:?}", second.headers);
    client.assert_closed();
}
