//! The test harness itself: a server process that reports a panic on stderr fails the test
//! that runs it, whether the test drops it, kills it or stops it with SIGTERM, even though
//! the process goes on serving with its other cores. A stand-in process (a shell writing the
//! lines Rust's panic hook writes) plays the server, since confab has no way to panic on
//! purpose; one without a panic report passes.

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;

use support::process::Served;

/// The line the stand-in writes once it has reported a panic (or not).
const REPORTED: &str = "stand-in reported";

/// A stand-in server: writes a `listen=` line, then (if `panics`) the panic hook's report of a
/// worker thread, then [`REPORTED`], and sleeps until it is killed.
fn stand_in(panics: bool) -> Served {
    let report = if panics {
        "echo \"thread 'confab-0' panicked at src/server/connection.rs:1:1:\" >&2; \
         echo 'a worker died' >&2;"
    } else {
        ""
    };
    let script = format!(
        "echo 'INFO confab: serving listen=127.0.0.1:9' >&2; {report} \
         echo '{REPORTED}' >&2; exec sleep 60"
    );
    let mut command = Command::new("sh");
    command.args(["-c", &script]);
    let served = Served::spawn(command);
    served.wait_for_log(REPORTED);
    served
}

/// Runs `stop` and returns its panic message, if it panicked.
fn panic_message(stop: impl FnOnce()) -> Option<String> {
    let outcome = catch_unwind(AssertUnwindSafe(stop));
    outcome.err().map(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|text| text.to_string()))
            .unwrap_or_default()
    })
}

#[test]
fn a_process_that_panicked_fails_the_test_when_dropped() {
    let served = stand_in(true);
    let message = panic_message(move || drop(served)).expect("dropping it fails the test");
    assert!(
        message.contains("panicked at") && message.contains("a worker died"),
        "{message}"
    );
}

#[test]
fn a_process_that_panicked_fails_the_test_when_killed_or_stopped() {
    let served = stand_in(true);
    let message = panic_message(move || served.kill()).expect("killing it fails the test");
    assert!(message.contains("panicked at"), "{message}");

    let served = stand_in(true);
    let message = panic_message(move || served.terminate()).expect("stopping it fails the test");
    assert!(message.contains("panicked at"), "{message}");
}

#[test]
fn a_process_without_a_panic_passes() {
    let served = stand_in(false);
    served.assert_no_panic();
    assert_eq!(panic_message(move || served.kill()), None);
    let served = stand_in(false);
    assert_eq!(panic_message(move || drop(served)), None);
}
