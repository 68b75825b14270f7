//! The command line: `confab serve` (the default), `confab mock-upstream`.
//!
//! Every flag can also be set through an environment variable named `CONFAB_<FLAG>`; `--help`
//! shows each default. Durations are written like `500ms` or `2s`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Driver, ServeConfig};

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
    /// Longest wait for a connection to the upstream, TLS handshake included.
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
    /// Log one line per request (target confab::access, level info).
    #[arg(long, env = "CONFAB_ACCESS_LOG")]
    pub access_log: bool,
    /// IO driver of the worker runtimes.
    #[arg(long, env = "CONFAB_DRIVER", value_enum, default_value_t = Driver::Auto)]
    pub driver: Driver,
    /// Bearer token for admin endpoints (POST /api/stats/reset) [default: none, admin endpoints answer 403].
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
            driver: self.driver,
            admin_token: self.admin_token.filter(|token| !token.is_empty()),
            stats_flush_interval: self.stats_flush_interval,
            stats_retention: self.stats_retention,
            record_stats: !self.no_usage_stats,
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
    fn no_subcommand_means_serve_with_defaults() {
        let cli = Cli::try_parse_from(["confab"]).expect("parses");
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.upstream_timeout, Duration::from_secs(10));
        assert_eq!(cli.serve.listen.port(), 8080);
    }
}
