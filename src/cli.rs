//! The command line: `confab serve` (the default), `confab mock-upstream`, `confab datagen`.
//!
//! Every flag can also be set through an environment variable named `CONFAB_<FLAG>`; `--help`
//! shows each default. Durations are written like `500ms` or `2s`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Driver, ServeConfig, UringTaskWork};
use crate::http1::{self, HeadLimits};

/// A thread-per-core HTTP API proxy that also serves conversation data.
#[derive(Debug, Parser)]
#[command(name = "confab", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `confab` alone serves with these flags.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the proxy and confab's own endpoints (what `confab` alone does).
    Serve(Box<ServeArgs>),
    /// Serve only the built-in mock upstream (for load tests).
    MockUpstream(MockArgs),
    /// Write a synthetic conversations dataset (normalized Parquet layout).
    Datagen(DatagenArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DatagenArgs {
    /// Output folder (must not exist, or be empty).
    #[arg(long, env = "CONFAB_OUT")]
    pub out: PathBuf,
    /// How many conversations to write.
    #[arg(long, env = "CONFAB_CONVERSATIONS", default_value_t = 1_000_000)]
    pub conversations: u64,
    /// Seed of the generator: the same seed writes the same dataset.
    #[arg(long, env = "CONFAB_SEED", default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CONFAB_LISTEN", default_value = config::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Worker threads, each with its own listener and upstream pool [default: the cores available].
    #[arg(long, env = "CONFAB_THREADS", default_value_t = config::default_threads(), hide_default_value = true)]
    pub threads: usize,
    /// Upstream base URL, like http://host:port or https://host[/base]; an https upstream's certificate is always verified, against the system's roots (SSL_CERT_FILE and SSL_CERT_DIR are honoured) and the private CA file, if one is given [default: the built-in mock upstream, started on a free loopback port].
    #[arg(long, env = "CONFAB_UPSTREAM")]
    pub upstream: Option<String>,
    /// PEM file of CA certificates trusted for an https upstream in addition to the system's roots; startup fails if it cannot be read or holds no usable certificate.
    #[arg(long, env = "CONFAB_UPSTREAM_CA", value_name = "FILE")]
    pub upstream_ca: Option<PathBuf>,
    /// Longest wait for a new connection to the upstream, all of it together: the TCP connect to each resolved address tried in turn and the TLS handshake.
    #[arg(long, env = "CONFAB_CONNECT_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Longest wait for the upstream's response headers (and between two reads of its body).
    #[arg(long, env = "CONFAB_UPSTREAM_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub upstream_timeout: Duration,
    /// How long an idle client keep-alive connection stays open.
    #[arg(long, env = "CONFAB_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// How long in-flight requests may take to finish after SIGINT or SIGTERM.
    #[arg(long, env = "CONFAB_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Where confab keeps its state files.
    #[arg(long, env = "CONFAB_STATE_DIR", default_value = config::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Conversation dataset (a Parquet file or folder) [default: a generated dataset].
    #[arg(long, env = "CONFAB_DATA")]
    pub data: Option<PathBuf>,
    /// Folder that `ingest` job paths are relative to; nothing outside it can be ingested [default: the folder holding the served dataset].
    #[arg(long, env = "CONFAB_DATA_ROOT")]
    pub data_root: Option<PathBuf>,
    /// Threads one analysis job (tag-stats, keyword-stats, transcript-summary) is split over [default: the cores available].
    #[arg(long, env = "CONFAB_JOB_THREADS", default_value_t = config::default_threads(), hide_default_value = true)]
    pub job_threads: usize,
    /// Log one line per request (target confab::access, level info).
    #[arg(long, env = "CONFAB_ACCESS_LOG")]
    pub access_log: bool,
    /// IO driver of the worker runtimes.
    #[arg(long, env = "CONFAB_DRIVER", value_enum, default_value_t = Driver::Auto)]
    pub driver: Driver,
    /// How io_uring rings finish completions: cooperative (when the worker next enters the kernel, without interrupting it), deferred (only when the worker waits, in one batch) or interrupt (the kernel's default); cooperative and deferred fall back to interrupt on kernels that lack them.
    #[arg(long, env = "CONFAB_URING_TASK_WORK", value_enum, default_value_t = UringTaskWork::Cooperative)]
    pub uring_task_work: UringTaskWork,
    /// Pin worker thread i to core i (modulo the cores available); off, the kernel's scheduler places them.
    #[arg(long, env = "CONFAB_PIN_WORKERS")]
    pub pin_workers: bool,
    /// Bearer token for admin endpoints (POST /api/stats/reset, POST and DELETE /api/jobs) [default: none, admin endpoints answer 403].
    #[arg(long, env = "CONFAB_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// How often usage statistics are written to the store (at most this much is lost on a crash).
    #[arg(long, env = "CONFAB_STATS_FLUSH_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub stats_flush_interval: Duration,
    /// How long per-minute statistics are kept.
    #[arg(long, env = "CONFAB_STATS_RETENTION", default_value = "7days", value_parser = parse_duration)]
    pub stats_retention: Duration,
    /// Do not record requests in the usage statistics (to measure what recording costs).
    #[arg(long, env = "CONFAB_NO_USAGE_STATS")]
    pub no_usage_stats: bool,
    /// Largest request body (bytes, or with KiB, MiB, GiB); a larger one gets 413 before anything reaches the upstream. A larger Content-Length is refused from the head alone; a chunked body is read in full before the upstream is contacted (past 64 KiB into an unlinked temporary file in the state folder) and refused once it passes the limit, and one within the limit is forwarded with a Content-Length.
    #[arg(long, env = "CONFAB_MAX_BODY", default_value_t = ByteSize(config::DEFAULT_MAX_BODY_BYTES))]
    pub max_body: ByteSize,
    /// Longest time a client may take to send a whole request head (from the connection's opening for its first request, from the first byte for later ones); past it the client gets 408 and is disconnected.
    #[arg(long, env = "CONFAB_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,
    /// Slowest request body accepted, in bytes per second (or with KiB, MiB): in every body-rate window spent waiting for the client, at least rate × window bytes must arrive, else the client gets 408 and is disconnected. 0 only cuts off a window without any byte.
    #[arg(long, env = "CONFAB_MIN_BODY_RATE", default_value_t = ByteSize(config::DEFAULT_MIN_BODY_RATE))]
    pub min_body_rate: ByteSize,
    /// The span of waiting for the client over which the minimum body rate is measured.
    #[arg(long, env = "CONFAB_BODY_RATE_WINDOW", default_value = "10s", value_parser = parse_duration)]
    pub body_rate_window: Duration,
    /// Most client connections open at once in the process (all workers together); further connections are closed as soon as they are accepted, while open ones keep their service.
    #[arg(long, env = "CONFAB_MAX_CONNECTIONS", default_value_t = config::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Most requests one worker handles at once; past it, new requests get 503 with Retry-After at once instead of queueing.
    #[arg(long, env = "CONFAB_MAX_INFLIGHT_PER_CORE", default_value_t = config::DEFAULT_MAX_INFLIGHT_PER_CORE)]
    pub max_inflight_per_core: usize,
    /// Longest request line (method, target and version; bytes, or with KiB, MiB); a longer one gets 414 and the connection is closed.
    #[arg(long, env = "CONFAB_MAX_REQUEST_LINE", default_value_t = ByteSize(http1::MAX_REQUEST_LINE_BYTES as u64))]
    pub max_request_line: ByteSize,
    /// Largest request head (request line and header fields; bytes, or with KiB, MiB; at most 16 MiB); a larger one gets 431 and the connection is closed. The upstream's response heads have the same limit (a larger one is answered 502).
    #[arg(long, env = "CONFAB_MAX_HEAD_SIZE", default_value_t = ByteSize(http1::MAX_HEAD_BYTES as u64))]
    pub max_head_size: ByteSize,
    /// Most header fields in a request head (at most 1000); more get 431 and the connection is closed. The upstream's response heads have the same limit (more are answered 502).
    #[arg(long, env = "CONFAB_MAX_HEADERS", default_value_t = http1::MAX_HEADERS)]
    pub max_headers: usize,
}

impl ServeArgs {
    pub fn into_config(self) -> ServeConfig {
        ServeConfig {
            listen: self.listen,
            threads: self.threads,
            upstream: self.upstream,
            upstream_ca: self.upstream_ca,
            connect_timeout: self.connect_timeout,
            upstream_timeout: self.upstream_timeout,
            idle_timeout: self.idle_timeout,
            shutdown_grace: self.shutdown_grace,
            access_log: self.access_log,
            state_dir: self.state_dir,
            data: self.data,
            data_root: self.data_root,
            job_threads: self.job_threads,
            driver: self.driver,
            uring_task_work: self.uring_task_work,
            pin_workers: self.pin_workers,
            admin_token: self.admin_token.filter(|token| !token.is_empty()),
            stats_flush_interval: self.stats_flush_interval,
            stats_retention: self.stats_retention,
            record_stats: !self.no_usage_stats,
            max_body: self.max_body.0,
            header_timeout: self.header_timeout,
            min_body_rate: self.min_body_rate.0,
            body_rate_window: self.body_rate_window,
            max_connections: self.max_connections,
            max_inflight_per_core: self.max_inflight_per_core,
            head_limits: HeadLimits {
                request_line_bytes: usize::try_from(self.max_request_line.0).unwrap_or(usize::MAX),
                head_bytes: usize::try_from(self.max_head_size.0).unwrap_or(usize::MAX),
                headers: self.max_headers,
            },
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct MockArgs {
    /// Address to listen on.
    #[arg(long, env = "CONFAB_LISTEN", default_value = "127.0.0.1:9090")]
    pub listen: SocketAddr,
    /// Worker threads.
    #[arg(long, env = "CONFAB_THREADS", default_value_t = 1)]
    pub threads: usize,
    /// IO driver of the worker runtimes.
    #[arg(long, env = "CONFAB_DRIVER", value_enum, default_value_t = Driver::Auto)]
    pub driver: Driver,
}

/// A byte count written like `1048576`, `64KiB`, `10MiB` or `1GiB` (binary units; `K`, `M`,
/// `G`, `KB`, `MB`, `GB` mean the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

/// Binary unit suffixes a [`ByteSize`] accepts, largest first, with their multipliers.
const BYTE_UNITS: [(&str, u64); 4] = [("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10), ("", 1)];

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<ByteSize, String> {
        let bad = || format!("{text:?} is not a size (write sizes like 65536, 64KiB or 10MiB)");
        let trimmed = text.trim();
        let digits_end = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(digits_end);
        let number: u64 = digits.parse().map_err(|_| bad())?;
        let unit = unit.trim();
        let unit = unit
            .strip_suffix("iB")
            .or_else(|| unit.strip_suffix('B'))
            .unwrap_or(unit);
        let (_, multiplier) = BYTE_UNITS
            .iter()
            .find(|(suffix, _)| unit.eq_ignore_ascii_case(suffix))
            .ok_or_else(bad)?;
        number
            .checked_mul(*multiplier)
            .map(ByteSize)
            .ok_or_else(bad)
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (suffix, multiplier) in BYTE_UNITS {
            if !suffix.is_empty() && self.0 >= multiplier && self.0.is_multiple_of(multiplier) {
                return write!(f, "{}{suffix}iB", self.0 / multiplier);
            }
        }
        write!(f, "{}", self.0)
    }
}

/// Parses a duration like `500ms`, `2s` or `1m 30s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|error| format!("{error} (write durations like 500ms, 2s or 1m)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("5parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        let size = |text: &str| text.parse::<ByteSize>().map(|size| size.0);
        assert_eq!(size("65536"), Ok(65536));
        assert_eq!(size("64KiB"), Ok(64 * 1024));
        assert_eq!(size("10MiB"), Ok(10 * 1024 * 1024));
        assert_eq!(size("1g"), Ok(1 << 30));
        assert_eq!(size("2 MB"), Ok(2 << 20));
        assert!(size("").is_err());
        assert!(size("-1").is_err());
        assert!(size("10 parsecs").is_err());
        assert!(size("99999999999999999999GiB").is_err());
        assert_eq!(ByteSize(10 << 20).to_string(), "10MiB");
        assert_eq!(ByteSize(1024).to_string(), "1KiB");
        assert_eq!(ByteSize(1000).to_string(), "1000");
    }

    #[test]
    fn flag_defaults_are_the_named_constants() {
        let config = Cli::try_parse_from(["confab"])
            .expect("parses")
            .serve
            .into_config();
        assert_eq!(config.max_body, config::DEFAULT_MAX_BODY_BYTES);
        assert_eq!(config.header_timeout, config::DEFAULT_HEADER_TIMEOUT);
        assert_eq!(config.min_body_rate, config::DEFAULT_MIN_BODY_RATE);
        assert_eq!(config.body_rate_window, config::DEFAULT_BODY_RATE_WINDOW);
        assert_eq!(config.max_connections, config::DEFAULT_MAX_CONNECTIONS);
        assert_eq!(
            config.max_inflight_per_core,
            config::DEFAULT_MAX_INFLIGHT_PER_CORE
        );
        assert_eq!(config.idle_timeout, config::DEFAULT_IDLE_TIMEOUT);
        assert_eq!(config.connect_timeout, config::DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(config.upstream_timeout, config::DEFAULT_UPSTREAM_TIMEOUT);
        assert_eq!(config.shutdown_grace, config::DEFAULT_SHUTDOWN_GRACE);
        assert_eq!(config.head_limits, config::DEFAULT_HEAD_LIMITS);
    }

    #[test]
    fn head_limit_flags_fill_the_head_limits() {
        let config = Cli::try_parse_from([
            "confab",
            "--max-request-line",
            "1KiB",
            "--max-head-size",
            "128KiB",
            "--max-headers",
            "200",
        ])
        .expect("parses")
        .serve
        .into_config();
        let expected = HeadLimits {
            request_line_bytes: 1024,
            head_bytes: 128 * 1024,
            headers: 200,
        };
        assert_eq!(config.head_limits, expected);
        assert_eq!(config.head_limits.validate(), Ok(()));
    }

    #[test]
    fn no_subcommand_means_serve_with_defaults() {
        let cli = Cli::try_parse_from(["confab"]).expect("parses");
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.upstream_timeout, Duration::from_secs(10));
        assert_eq!(cli.serve.listen.port(), 8080);
    }
}
