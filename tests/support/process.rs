//! Helpers for tests that run the real `confab` binary as a child process.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver};
use std::thread;

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
