//! Harness shared by the integration tests: starts confab in-process on port 0 against a fake
//! (or the built-in mock) upstream, and checks RFC 9457 problem responses. The raw client lives
//! in `client`, the fake upstreams in `upstream`, the wire-level reader both use in `wire`, the
//! helpers of the usage-statistics tests in `stats`, the TLS upstream and test CA in `tls`, and
//! the parsed `--help` of the real binary in `cli`.

// Each test binary uses a different part of the harness and of its re-exports.
#![allow(dead_code, unused_imports)]

pub mod cli;
pub mod client;
pub mod process;
pub mod stats;
pub mod tls;
pub mod upstream;
pub mod wire;

use std::io;
use std::net::SocketAddr;

use confab::config::{Driver, ServeConfig};
use confab::server::{self, RunningServer};

pub use client::{get, request, Client, Response, CLIENT_HOST};
pub use upstream::{refused_url, After, Received, Upstream};

/// Both monoio drivers, with a name for assertion messages.
pub fn drivers() -> [(&'static str, Driver); 2] {
    [("io_uring", Driver::IoUring), ("epoll", Driver::Epoll)]
}

/// The test configuration with `upstream` (None: the built-in mock upstream). It serves the
/// default generated dataset, made once per test binary (see [`shared_dataset`]).
pub fn config(upstream: Option<String>) -> ServeConfig {
    let mut config = ServeConfig::for_tests();
    config.upstream = upstream;
    config.data = Some(shared_dataset());
    config
}

/// The default dataset, generated once per test binary into a folder that lives as long as
/// the binary, so that tests do not each spend a second generating it.
pub fn shared_dataset() -> std::path::PathBuf {
    static DATASET: std::sync::OnceLock<(tempfile::TempDir, std::path::PathBuf)> =
        std::sync::OnceLock::new();
    let (_, path) = DATASET.get_or_init(|| {
        let dir = tempfile::tempdir().expect("create a dataset folder");
        let path = confab::conversations::datagen::default_dataset(dir.path())
            .expect("generate the default dataset");
        (dir, path)
    });
    path.clone()
}

/// How long a test waits for the server's workers to close their listeners once it drains.
pub const DRAIN_START_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// A confab server running in this process; shut down gracefully when dropped. A shutdown
/// that reports a failure (a worker, statistics or job runner thread panicked, even one whose
/// core the test never noticed was gone) fails the test, whether it comes from
/// [`Proxy::shutdown`] or from the drop. A server run as a child process is watched the same
/// way, through its stderr ([`process::Served`]).
pub struct Proxy {
    server: Option<RunningServer>,
    addr: SocketAddr,
    upstream_url: String,
    // Keeps the server's temporary state directory (if it made one) alive as long as the server.
    temp_state_dir: Option<tempfile::TempDir>,
}

impl Proxy {
    /// Starts confab with `config`, its state in a fresh temporary directory.
    pub fn start(mut config: ServeConfig) -> Self {
        let state_dir = tempfile::tempdir().expect("create a state directory");
        config.state_dir = state_dir.path().to_path_buf();
        let mut proxy = Proxy::start_keeping_state_dir(config);
        proxy.temp_state_dir = Some(state_dir);
        proxy
    }

    /// Starts confab with `config` exactly as given, state directory included.
    pub fn start_keeping_state_dir(config: ServeConfig) -> Self {
        let server = server::start(config).expect("confab should start");
        Proxy {
            addr: server.local_addr(),
            upstream_url: server.upstream_url().to_string(),
            server: Some(server),
            temp_state_dir: None,
        }
    }

    /// Starts confab with the test configuration, proxying to `upstream`.
    pub fn to(upstream: &Upstream) -> Self {
        Proxy::start(config(Some(upstream.url())))
    }

    /// Starts confab with the test configuration and its built-in mock upstream.
    pub fn with_mock() -> Self {
        Proxy::start(config(None))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A new client connection to the server.
    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Sends `request` on a new connection and reads the response.
    pub fn exchange(&self, request: &[u8]) -> Response {
        self.client().exchange(request)
    }

    /// The server's serial queue (to hold it, or to see what waits on it).
    pub fn serial_queue(&self) -> std::sync::Arc<confab::serial::SerialQueue> {
        std::sync::Arc::clone(
            self.server
                .as_ref()
                .expect("a running server")
                .serial_queue(),
        )
    }

    /// The upstream the server says it uses.
    pub fn upstream_url(&self) -> &str {
        &self.upstream_url
    }

    /// The signal that starts the server's drain (without waiting for it, unlike `shutdown`).
    pub fn shutdown_signal(&self) -> std::sync::Arc<confab::server::shutdown::ShutdownSignal> {
        self.server
            .as_ref()
            .expect("a running server")
            .shutdown_signal()
    }

    /// Starts the server's drain and waits until every worker has closed its listener: from
    /// then on new connections are refused, and every connection is draining.
    pub fn begin_drain(&self) {
        let server = self.server.as_ref().expect("a running server");
        server.shutdown_signal().trigger();
        assert!(
            server.wait_stopped_accepting(DRAIN_START_DEADLINE),
            "the workers did not stop accepting within {DRAIN_START_DEADLINE:?}"
        );
    }

    /// Shuts the server down gracefully and reports how that went.
    pub fn shutdown(mut self) -> io::Result<()> {
        match self.server.take() {
            Some(server) => server.shutdown(),
            None => Ok(()),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let Some(server) = self.server.take() else {
            return;
        };
        let outcome = server.shutdown();
        // A test that already fails keeps its own message.
        if let (Err(error), false) = (outcome, std::thread::panicking()) {
            panic!("confab did not shut down cleanly: {error}");
        }
    }
}

/// Asserts `response` is an RFC 9457 problem with `status` and type `urn:confab:problem:CODE`;
/// returns the problem document.
pub fn assert_problem(response: &Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(
        response.status,
        status,
        "status (expected problem {code}); body: {:?}",
        response.text()
    );
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/problem+json"),
        "problem content type, got {content_type:?}; body: {:?}",
        response.text()
    );
    let problem = response.json();
    assert_eq!(
        problem["type"],
        format!("urn:confab:problem:{code}"),
        "problem type; document: {problem}"
    );
    assert_eq!(
        problem["status"], status,
        "problem status; document: {problem}"
    );
    assert!(
        problem["title"]
            .as_str()
            .is_some_and(|title| !title.is_empty()),
        "problem title; document: {problem}"
    );
    assert!(
        problem["detail"].is_string(),
        "problem detail; document: {problem}"
    );
    problem
}

/// Asserts a response body says nothing about the upstream's address or the OS error behind it.
pub fn assert_no_leak(response: &Response, upstream_port: u16) {
    let body = response.text().to_ascii_lowercase();
    let port = upstream_port.to_string();
    for secret in ["127.0.0.1", "localhost", port.as_str(), "os error", "errno"] {
        assert!(
            !body.contains(secret),
            "response body leaks {secret:?}: {body:?}"
        );
    }
}
