//! Helpers for tests that run the real `confab` binary as a child process. Every line the
//! process writes to stderr is watched for a panic report: a process whose worker (or any other
//! thread) panicked fails the test when it is stopped, killed or dropped, even if every request
//! the test sent was answered by the cores still alive.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long the binary may take to start or to exit.
pub const PROCESS_DEADLINE: Duration = Duration::from_secs(30);
/// What Rust's panic hook writes to stderr when a thread panics ("thread 'NAME' panicked at").
pub const PANIC_MARK: &str = "panicked";
/// Lines kept from a panic report (the mark's line and the message after it).
const PANIC_REPORT_LINES: usize = 6;

/// A running `confab serve` child process; SIGKILLed if still running when dropped. Stopping,
/// killing or dropping it fails the test if the process reported a panic on stderr.
pub struct Served {
    child: Child,
    pub addr: SocketAddr,
    /// The process's stderr lines after its `listen=` line; disconnected once the process has
    /// closed its stderr (it exited).
    log: Receiver<String>,
    /// The panic report seen on stderr, if any.
    panics: PanicWatch,
}

impl Served {
    /// Starts `confab serve` on an ephemeral port with two threads, its state in `state_dir`
    /// (also its working folder), serving the test binary's shared dataset unless `args` name
    /// another, plus `args`; waits for its `listen=` log line. `CONFAB_*` variables of the
    /// test's environment are not passed on.
    pub fn start(state_dir: &Path, args: &[&str]) -> Served {
        Served::start_with_env(state_dir, args, &[])
    }

    /// [`Served::start`] with changes to the environment: `(NAME, Some(value))` sets a
    /// variable, `(NAME, None)` removes it.
    pub fn start_with_env(
        state_dir: &Path,
        args: &[&str],
        env: &[(&str, Option<&OsStr>)],
    ) -> Served {
        let mut command = Command::new(env!("CARGO_BIN_EXE_confab"));
        for (name, value) in env {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CONFAB_") {
                command.env_remove(key);
            }
        }
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--threads",
                "2",
                "--state-dir",
            ])
            .arg(state_dir)
            .args(args);
        if !args.contains(&"--data") {
            command.arg("--data").arg(super::shared_dataset());
        }
        command
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .current_dir(state_dir);
        Served::spawn(command)
    }

    /// Runs `command` (its stdin and stdout null, its stderr watched) and waits for its
    /// `listen=` log line.
    pub fn spawn(mut command: Command) -> Served {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the server process");
        let panics = PanicWatch::default();
        let lines = watched_log_lines(child.stderr.take().expect("piped stderr"), &panics);
        let deadline = Instant::now() + PROCESS_DEADLINE;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = listen_addr(&line) {
                        return Served {
                            child,
                            addr,
                            log: lines,
                            panics,
                        };
                    }
                    seen.push(line);
                }
                Err(error) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("no listen= line on stderr ({error}); stderr: {seen:#?}");
                }
            }
        }
    }

    /// The process id (to look at `/proc/PID`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails the test if the process has reported a panic on stderr so far.
    pub fn assert_no_panic(&self) {
        if let Some(report) = self.panics.report() {
            panic!("the server process panicked:\n{report}");
        }
    }

    /// Sends SIGKILL (no chance to flush) and waits for the process to end; fails the test if
    /// it had panicked.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL confab");
        let status = self.wait();
        assert!(
            !status.success(),
            "a SIGKILLed process does not exit cleanly"
        );
    }

    /// Sends SIGTERM and waits for a clean exit; fails the test if the process panicked.
    pub fn terminate(mut self) {
        self.signal("-TERM");
        let status = self.wait();
        assert!(status.success(), "confab exits 0 after SIGTERM: {status:?}");
    }

    /// Sends `signal` (like `-TERM`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Waits (within [`PROCESS_DEADLINE`]) for a log line containing `needle`, and returns it.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + PROCESS_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(error) => panic!("no log line with {needle:?} ({error})"),
            }
        }
    }

    /// Waits (within [`PROCESS_DEADLINE`]) for the process to end, and fails the test if it
    /// reported a panic. The end is seen as its stderr closing (which the exit does), so the
    /// whole panic report has been read by then; its log lines are consumed.
    pub fn wait(&mut self) -> ExitStatus {
        let Some(status) = self.wait_for_exit() else {
            let _ = self.child.kill();
            panic!("the server process still runs {PROCESS_DEADLINE:?} after the signal");
        };
        self.assert_no_panic();
        status
    }

    /// The exit status once the process has closed its stderr and been reaped; `None` if it
    /// still runs after [`PROCESS_DEADLINE`].
    fn wait_for_exit(&mut self) -> Option<ExitStatus> {
        let deadline = Instant::now() + PROCESS_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => return None,
            }
        }
        self.child.wait().ok()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let exited = self.wait_for_exit().is_some();
        // A test that already fails keeps its own message.
        if !thread::panicking() {
            assert!(exited, "the server process outlived SIGKILL");
            self.assert_no_panic();
        }
    }
}

/// The panic report a process wrote to stderr: the first line with [`PANIC_MARK`] and the
/// lines after it.
#[derive(Clone, Default)]
pub struct PanicWatch(Arc<Mutex<Vec<String>>>);

impl PanicWatch {
    /// The report so far, if the process panicked.
    pub fn report(&self) -> Option<String> {
        let lines = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (!lines.is_empty()).then(|| lines.join("\n"))
    }

    fn see(&self, line: &str) {
        let mut lines = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let reporting = !lines.is_empty() && lines.len() < PANIC_REPORT_LINES;
        if reporting || (lines.is_empty() && line.contains(PANIC_MARK)) {
            lines.push(line.to_owned());
        }
    }
}

/// Forwards each stderr line, after showing it to `panics`; keeps draining after the receiver
/// is gone so the child never blocks on a full pipe. The receiver disconnects when the stream
/// ends.
pub fn watched_log_lines(
    stderr: impl Read + Send + 'static,
    panics: &PanicWatch,
) -> Receiver<String> {
    let (line_tx, line_rx) = mpsc::channel();
    let panics = panics.clone();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            panics.see(&line);
            let _ = line_tx.send(line);
        }
    });
    line_rx
}

/// `IP:PORT` after `listen=` in a log line, if there is one.
pub fn listen_addr(line: &str) -> Option<SocketAddr> {
    let start = line.find("listen=")? + "listen=".len();
    let value: String = line[start..]
        .trim_start_matches('"')
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    value.parse().ok()
}
