//! Helpers for tests that run the real `confab` binary as a child process.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

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

/// How long the binary may take to start, or to exit after a signal.
pub const PROCESS_DEADLINE: Duration = Duration::from_secs(30);

/// A running `confab serve` child process; SIGKILLed if still running when dropped.
pub struct ServedProcess {
    pub child: Child,
    pub addr: SocketAddr,
}

impl ServedProcess {
    /// Starts `confab serve --listen 127.0.0.1:0 ARGS` in `dir` with no inherited `CONFAB_*`
    /// variables, and waits for its `listen=` log line.
    pub fn start(dir: &Path, args: &[&OsStr]) -> ServedProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_confab"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CONFAB_") {
                command.env_remove(key);
            }
        }
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .current_dir(dir)
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
                        return ServedProcess { child, addr };
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

    /// Sends `signal` (like `-TERM`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
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
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServedProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
