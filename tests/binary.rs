//! Black-box tests of the `confab` binary: `confab serve` with only a listen address serves the
//! built-in mock upstream, logs its bound address (`listen=IP:PORT`) to stderr and exits 0 on
//! SIGTERM; flags fall back to `CONFAB_*` environment variables; durations read like `500ms` or
//! `2s` and bad ones are refused; `--help` documents every flag with its default and variable;
//! `--access-log` logs one line per request.

mod support;

use support::process::{listen_addr, watched_log_lines, PanicWatch};

use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use support::{get, Client};

/// How long the binary may take to start, answer --help, or exit after SIGTERM.
const DEADLINE: Duration = Duration::from_secs(30);

/// Every `serve` flag with its environment variable, and whether it has a default to show.
const FLAGS: [(&str, &str, bool); 17] = [
    ("--listen", "CONFAB_LISTEN", true),
    ("--threads", "CONFAB_THREADS", true),
    ("--upstream", "CONFAB_UPSTREAM", false),
    ("--upstream-ca", "CONFAB_UPSTREAM_CA", false),
    ("--connect-timeout", "CONFAB_CONNECT_TIMEOUT", true),
    ("--upstream-timeout", "CONFAB_UPSTREAM_TIMEOUT", true),
    ("--idle-timeout", "CONFAB_IDLE_TIMEOUT", true),
    ("--state-dir", "CONFAB_STATE_DIR", true),
    ("--data", "CONFAB_DATA", false),
    ("--access-log", "CONFAB_ACCESS_LOG", false),
    ("--shutdown-grace", "CONFAB_SHUTDOWN_GRACE", true),
    ("--max-body", "CONFAB_MAX_BODY", true),
    ("--header-timeout", "CONFAB_HEADER_TIMEOUT", true),
    ("--min-body-rate", "CONFAB_MIN_BODY_RATE", true),
    ("--body-rate-window", "CONFAB_BODY_RATE_WINDOW", true),
    ("--max-connections", "CONFAB_MAX_CONNECTIONS", true),
    (
        "--max-inflight-per-core",
        "CONFAB_MAX_INFLIGHT_PER_CORE",
        true,
    ),
];

/// `confab` with no inherited `CONFAB_*` variables and no colours, run in `dir`.
fn confab(dir: &tempfile::TempDir) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_confab"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CONFAB_") {
            command.env_remove(key);
        }
    }
    command
        .env("NO_COLOR", "1")
        .current_dir(dir.path())
        .stdin(Stdio::null());
    command
}

/// Sends `signal` (e.g. `-TERM`) to process `pid`.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid} failed");
}

/// Waits for `child` on another thread, so the test can give up after a deadline.
fn waiter(mut child: Child) -> Receiver<std::io::Result<ExitStatus>> {
    let (exit_tx, exit_rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = exit_tx.send(child.wait());
    });
    exit_rx
}

/// A running `confab serve` child; killed if the test ends without stopping it. Stopping it
/// fails the test if the process reported a panic on stderr.
struct Served {
    pid: u32,
    addr: SocketAddr,
    exit: Receiver<std::io::Result<ExitStatus>>,
    /// The stderr lines after `listen=`; disconnected once the process closed its stderr.
    log: Receiver<String>,
    panics: PanicWatch,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Starts `confab serve ARGS` and waits for its `listen=` log line.
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("working directory");
        let mut child = confab(&dir)
            .arg("serve")
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn confab serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let pid = child.id();
        let exit = waiter(child);
        let panics = PanicWatch::default();
        let lines = watched_log_lines(stderr, &panics);

        let deadline = Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    let line = strip_ansi(&line);
                    if let Some(addr) = listen_addr(&line) {
                        return Served {
                            pid,
                            addr,
                            exit,
                            log: lines,
                            panics,
                            _dir: dir,
                        };
                    }
                    seen.push(line);
                }
                Err(err) => {
                    if still_running(&exit) {
                        signal(pid, "-KILL");
                    }
                    panic!("no listen= line on stderr ({err}); stderr so far: {seen:#?}");
                }
            }
        }
    }

    /// Sends SIGTERM and returns the exit status; fails the test if the process panicked.
    fn terminate(self) -> ExitStatus {
        signal(self.pid, "-TERM");
        let status = match self.exit.recv_timeout(DEADLINE) {
            Ok(status) => status.expect("wait for confab"),
            Err(_) => {
                signal(self.pid, "-KILL");
                panic!("confab did not exit within {DEADLINE:?} of SIGTERM");
            }
        };
        // The process has exited: its stderr is closed once every line has been read.
        while self.log.recv_timeout(DEADLINE).is_ok() {}
        if let Some(report) = self.panics.report() {
            panic!("confab panicked:\n{report}");
        }
        status
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if thread::panicking() && still_running(&self.exit) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
    }
}

/// Whether the child behind `exit` has not been reaped yet (so its pid is still its own).
fn still_running(exit: &Receiver<std::io::Result<ExitStatus>>) -> bool {
    matches!(exit.try_recv(), Err(mpsc::TryRecvError::Empty))
}

/// `text` without ANSI escape sequences, in case the log is coloured anyway.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters... final byte in @..~
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Runs `confab ARGS` to completion within the deadline; returns status, stdout and stderr.
fn run(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let dir = tempfile::tempdir().expect("working directory");
    let child = confab(&dir)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn confab");
    let pid = child.id();
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    match done_rx.recv_timeout(DEADLINE) {
        Ok(output) => {
            let output = output.expect("collect confab output");
            (
                output.status,
                strip_ansi(&String::from_utf8_lossy(&output.stdout)),
                strip_ansi(&String::from_utf8_lossy(&output.stderr)),
            )
        }
        Err(_) => {
            signal(pid, "-KILL");
            panic!("confab {args:?} still running after {DEADLINE:?}");
        }
    }
}

fn assert_serves_mock(addr: SocketAddr) {
    let mut client = Client::connect(addr);
    let health = client.exchange(&get("/healthz"));
    assert_eq!(health.status, 200, "{:?}", health.text());
    let category = client.exchange(&get("/categories/MLA97994"));
    assert_eq!(category.status, 200, "{:?}", category.text());
    assert_eq!(category.json()["id"], "MLA97994");
}

#[test]
fn serve_with_only_listen_serves_mock_and_exits_zero_on_sigterm() {
    let served = Served::start(&["--listen", "127.0.0.1:0", "--threads", "2"], &[]);
    assert_eq!(served.addr.ip().to_string(), "127.0.0.1");
    assert_ne!(served.addr.port(), 0, "the log names the bound port");

    assert_serves_mock(served.addr);
    let status = served.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
}

#[test]
fn access_log_has_one_line_per_request_with_its_outcome() {
    let served = Served::start(
        &["--listen", "127.0.0.1:0", "--threads", "1", "--access-log"],
        &[("RUST_LOG", "info")],
    );
    let mut client = Client::connect(served.addr);
    assert_eq!(client.exchange(&get("/categories/MLA97994")).status, 200);
    assert_eq!(client.exchange(&get("/api/nothing")).status, 404);

    let mut access_lines = Vec::new();
    while access_lines.len() < 2 {
        let line = served
            .log
            .recv_timeout(DEADLINE)
            .expect("an access log line for each request");
        if line.contains("confab::access") {
            access_lines.push(strip_ansi(&line));
        }
    }
    for (line, path, status) in [
        (&access_lines[0], "/categories/MLA97994", "200"),
        (&access_lines[1], "/api/nothing", "404"),
    ] {
        for field in [
            "method=GET".to_string(),
            format!("path={path}"),
            format!("status={status}"),
            "peer=127.0.0.1:".to_string(),
            "micros=".to_string(),
        ] {
            assert!(line.contains(&field), "{field:?} missing from {line:?}");
        }
    }
    served.terminate();
}

#[test]
fn listen_address_comes_from_environment() {
    let served = Served::start(&["--threads", "2"], &[("CONFAB_LISTEN", "127.0.0.1:0")]);
    assert_ne!(served.addr.port(), 0, "the log names the bound port");

    assert_serves_mock(served.addr);
    assert_eq!(served.terminate().code(), Some(0));
}

#[test]
fn durations_in_ms_and_s_are_accepted() {
    let served = Served::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "2",
            "--connect-timeout",
            "500ms",
            "--upstream-timeout",
            "2s",
            "--idle-timeout",
            "30s",
            "--shutdown-grace",
            "1500ms",
        ],
        &[],
    );

    assert_serves_mock(served.addr);
    assert_eq!(served.terminate().code(), Some(0));
}

#[test]
fn bad_duration_is_refused_with_a_message() {
    let (status, _, stderr) = run(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--upstream-timeout",
            "5parsecs",
        ],
        &[],
    );
    assert!(!status.success(), "accepted 5parsecs: {status}");
    assert!(
        stderr.contains("5parsecs") || stderr.contains("upstream-timeout"),
        "the message names the bad value or flag: {stderr:?}"
    );

    let (status, _, stderr) = run(
        &["serve", "--listen", "127.0.0.1:0"],
        &[("CONFAB_UPSTREAM_TIMEOUT", "5parsecs")],
    );
    assert!(!status.success(), "accepted 5parsecs from the environment");
    assert!(!stderr.trim().is_empty(), "no message on stderr");
}

/// The lines documenting `flag` in clap-style help: its own line up to the next option line.
fn flag_section(help: &str, flag: &str) -> Option<String> {
    let lines: Vec<&str> = help.lines().collect();
    let names_flag = |line: &str| {
        line.match_indices(flag).any(|(at, _)| {
            let next = line[at + flag.len()..].chars().next();
            !next.is_some_and(|c| c == '-' || c.is_ascii_alphanumeric())
        })
    };
    let start = lines.iter().position(|line| names_flag(line))?;
    let end = lines[start + 1..]
        .iter()
        .position(|line| line.trim_start().starts_with('-'))
        .map_or(lines.len(), |offset| start + 1 + offset);
    Some(lines[start..end].join("\n"))
}

fn assert_documents_every_flag(args: &[&str]) {
    let (status, stdout, stderr) = run(args, &[]);
    assert!(status.success(), "confab {args:?} exited with {status}");
    let help = format!("{stdout}\n{stderr}");
    for (flag, variable, has_default) in FLAGS {
        let section = flag_section(&help, flag)
            .unwrap_or_else(|| panic!("confab {args:?} does not mention {flag}:\n{help}"));
        assert!(
            section.contains(variable),
            "{flag} does not name {variable}:\n{section}"
        );
        if has_default {
            assert!(
                section.to_ascii_lowercase().contains("default"),
                "{flag} does not show its default:\n{section}"
            );
        }
    }
}

#[test]
fn serve_help_documents_every_flag() {
    assert_documents_every_flag(&["serve", "--help"]);
}

#[test]
fn top_level_help_documents_every_flag() {
    assert_documents_every_flag(&["--help"]);
}

#[test]
fn bad_upstream_ca_file_fails_startup_naming_the_file() {
    let dir = tempfile::tempdir().expect("CA folder");
    let missing = dir.path().join("missing-ca.pem");
    let empty = dir.path().join("empty-ca.pem");
    std::fs::write(&empty, "").expect("write the empty file");
    let not_pem = dir.path().join("not-a-ca.pem");
    std::fs::write(
        &not_pem,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .expect("write the bad file");
    for (path, says) in [
        (&missing, "cannot read"),
        (&empty, "no certificate"),
        (&not_pem, "cannot be used"),
    ] {
        let path = path.to_str().expect("UTF-8 path");
        let args = [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "https://127.0.0.1:9",
            "--upstream-ca",
            path,
        ];
        let (status, _, stderr) = run(&args, &[]);
        assert!(
            !status.success(),
            "started with --upstream-ca {path}: {status}"
        );
        assert!(
            stderr.contains(path) && stderr.contains(says),
            "the message names {path} and says {says:?}: {stderr:?}"
        );
        assert!(
            !stderr.contains("confab serving"),
            "it never served: {stderr:?}"
        );
    }
}
