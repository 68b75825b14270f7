//! Helpers for tests that run the real `confab` binary as a child process.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// How long the binary may take to start or to exit.
pub const PROCESS_DEADLINE: Duration = Duration::from_secs(30);
/// Pause between two polls of a child's exit status.
const EXIT_POLL_PAUSE: Duration = Duration::from_millis(10);

/// A running `confab serve` child process; SIGKILLed if still running when dropped.
pub struct Served {
    child: Child,
    pub addr: SocketAddr,
    /// The process's stderr lines after its `listen=` line.
    log: Receiver<String>,
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
        let mut child = command
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .current_dir(state_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn confab serve");
        let lines = log_lines(child.stderr.take().expect("piped stderr"));
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

    /// Sends SIGKILL (no chance to flush) and waits for the process to end.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL confab");
        let status = self.wait();
        assert!(
            !status.success(),
            "a SIGKILLed process does not exit cleanly"
        );
    }

    /// Sends SIGTERM and waits for a clean exit.
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

    /// Waits (within [`PROCESS_DEADLINE`]) for the process to end.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PROCESS_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll confab") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "confab still running {PROCESS_DEADLINE:?} after the signal"
            );
            thread::sleep(EXIT_POLL_PAUSE);
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Forwards each stderr line; keeps draining after the receiver is gone so the child never
/// blocks on a full pipe.
pub fn log_lines(stderr: impl Read + Send + 'static) -> Receiver<String> {
    let (line_tx, line_rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
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
