//! The statistics store: SQLite (rusqlite's bundled build) in `--state-dir`.
//!
//! SQLite because the figures are small relational rows (minute × route × method × status)
//! that want atomic multi-row writes, a crash-safe journal, and ad-hoc window queries, from a
//! single library compiled into the binary. Each flush rewrites, in one transaction, the
//! running totals and every minute that changed since the last flush (absolute values, so a
//! repeated or lost flush never double-counts), and deletes minutes past the retention.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use rusqlite::{params, Connection, OptionalExtension};

use super::counters::{new_latency_histogram, RouteCounters};
use super::{Scope, UpstreamErrors, METHODS, UPSTREAM_ERROR_KINDS};

/// The store's file name inside the state folder.
pub const STORE_FILE: &str = "stats.sqlite3";
/// How long a statement waits for a lock held by the other connection.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS totals (
    scope TEXT NOT NULL, route TEXT NOT NULL, method TEXT NOT NULL, status INTEGER NOT NULL,
    requests INTEGER NOT NULL, PRIMARY KEY (scope, route, method, status));
CREATE TABLE IF NOT EXISTS totals_routes (
    scope TEXT NOT NULL, route TEXT NOT NULL, bytes_in INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL, latency BLOB NOT NULL, PRIMARY KEY (scope, route));
CREATE TABLE IF NOT EXISTS totals_upstream (kind TEXT PRIMARY KEY, errors INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS minute_outcomes (
    minute INTEGER NOT NULL, scope TEXT NOT NULL, route TEXT NOT NULL, method TEXT NOT NULL,
    status INTEGER NOT NULL, requests INTEGER NOT NULL,
    PRIMARY KEY (minute, scope, route, method, status));
CREATE TABLE IF NOT EXISTS minute_routes (
    minute INTEGER NOT NULL, scope TEXT NOT NULL, route TEXT NOT NULL,
    bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL, latency BLOB NOT NULL,
    PRIMARY KEY (minute, scope, route));
CREATE TABLE IF NOT EXISTS minute_upstream (
    minute INTEGER NOT NULL, kind TEXT NOT NULL, errors INTEGER NOT NULL,
    PRIMARY KEY (minute, kind));
CREATE TABLE IF NOT EXISTS minute_summary (
    minute INTEGER PRIMARY KEY, proxy_requests INTEGER NOT NULL, proxy_failures INTEGER NOT NULL,
    proxy_p50_ms REAL, proxy_p99_ms REAL, api_requests INTEGER NOT NULL,
    c2xx INTEGER NOT NULL, c3xx INTEGER NOT NULL, c4xx INTEGER NOT NULL, c5xx INTEGER NOT NULL);
";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the state folder {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("statistics store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("statistics store: a stored histogram is unreadable")]
    Histogram,
}

/// Figures for a set of routes plus upstream errors: the totals, or one minute.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub routes: BTreeMap<(Scope, String), RouteCounters>,
    pub upstream_errors: UpstreamErrors,
}

impl Figures {
    /// Adds `counters` to the figures of `route`.
    pub fn add(&mut self, scope: Scope, route: &str, counters: &RouteCounters) {
        match self.routes.get_mut(&(scope, route.to_owned())) {
            Some(existing) => existing.merge(counters),
            None => {
                self.routes
                    .insert((scope, route.to_owned()), counters.clone());
            }
        }
    }

    pub fn add_errors(&mut self, errors: &UpstreamErrors) {
        for (total, more) in self.upstream_errors.iter_mut().zip(errors) {
            *total += more;
        }
    }

    pub fn merge(&mut self, other: &Figures) {
        for ((scope, route), counters) in &other.routes {
            self.add(*scope, route, counters);
        }
        self.add_errors(&other.upstream_errors);
    }
}

/// The headline of one minute, kept for the whole retention.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MinuteSummary {
    pub proxy_requests: u64,
    pub proxy_failures: u64,
    pub proxy_p50_ms: Option<f64>,
    pub proxy_p99_ms: Option<f64>,
    pub api_requests: u64,
    /// Proxied responses by class: 2xx, 3xx, 4xx, 5xx (1xx and others count as 5xx-free 2xx).
    pub status_classes: [u64; 4],
}

/// What a flush writes.
#[derive(Debug, Clone)]
pub struct FlushBatch {
    pub since: u64,
    pub totals: Figures,
    /// Minutes (Unix seconds of their start) that changed, with their full figures.
    pub minutes: Vec<(u64, Figures, MinuteSummary)>,
    /// Minutes before this are deleted.
    pub retain_from: u64,
}

/// What the store held at startup.
#[derive(Debug, Default)]
pub struct Stored {
    pub since: Option<u64>,
    pub totals: Figures,
    pub summaries: BTreeMap<u64, MinuteSummary>,
}

/// A connection to the store.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder {
            path: dir.to_path_buf(),
            source,
        })?;
        let conn = Connection::open(dir.join(STORE_FILE))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store { conn })
    }

    /// Reads the totals and the minute summaries newer than `retain_from`.
    pub fn load(&self, retain_from: u64) -> Result<Stored, StoreError> {
        let since = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'since'", [], |row| {
                row.get::<_, i64>(0)
            })
            .optional()?
            .map(|since| since as u64);
        let totals = self.read_figures("totals", "totals_routes", "totals_upstream", None)?;
        let mut statement = self.conn.prepare(
            "SELECT minute, proxy_requests, proxy_failures, proxy_p50_ms, proxy_p99_ms,
                    api_requests, c2xx, c3xx, c4xx, c5xx
             FROM minute_summary WHERE minute >= ?1 ORDER BY minute",
        )?;
        let rows = statement.query_map([retain_from as i64], |row| {
            Ok((
                row.get::<_, i64>(0)? as u64,
                MinuteSummary {
                    proxy_requests: row.get::<_, i64>(1)? as u64,
                    proxy_failures: row.get::<_, i64>(2)? as u64,
                    proxy_p50_ms: row.get(3)?,
                    proxy_p99_ms: row.get(4)?,
                    api_requests: row.get::<_, i64>(5)? as u64,
                    status_classes: [
                        row.get::<_, i64>(6)? as u64,
                        row.get::<_, i64>(7)? as u64,
                        row.get::<_, i64>(8)? as u64,
                        row.get::<_, i64>(9)? as u64,
                    ],
                },
            ))
        })?;
        let summaries = rows.collect::<Result<BTreeMap<_, _>, _>>()?;
        Ok(Stored {
            since,
            totals,
            summaries,
        })
    }

    /// The full figures of one stored minute (empty if none).
    pub fn minute(&self, minute: u64) -> Result<Figures, StoreError> {
        self.read_figures(
            "minute_outcomes",
            "minute_routes",
            "minute_upstream",
            Some((minute, minute)),
        )
    }

    /// The figures of every stored minute from `from` to `to` (inclusive, minute starts)
    /// added up, skipping the minutes in `skip`.
    pub fn window(&self, from: u64, to: u64, skip: &[u64]) -> Result<Figures, StoreError> {
        let mut total = Figures::default();
        let mut statement = self
            .conn
            .prepare("SELECT minute FROM minute_summary WHERE minute BETWEEN ?1 AND ?2")?;
        let minutes = statement
            .query_map([from as i64, to as i64], |row| row.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        for minute in minutes.into_iter().map(|minute| minute as u64) {
            if !skip.contains(&minute) {
                total.merge(&self.minute(minute)?);
            }
        }
        Ok(total)
    }

    fn read_figures(
        &self,
        outcomes: &str,
        routes: &str,
        upstream: &str,
        minutes: Option<(u64, u64)>,
    ) -> Result<Figures, StoreError> {
        let (from, to) = minutes.map_or((i64::MIN, i64::MAX), |(a, b)| (a as i64, b as i64));
        let filter = if minutes.is_some() {
            "WHERE minute BETWEEN ?1 AND ?2"
        } else {
            "WHERE ?1 <= ?2"
        };
        let mut figures = Figures::default();
        let mut statement = self.conn.prepare(&format!(
            "SELECT scope, route, bytes_in, bytes_out, latency FROM {routes} {filter}"
        ))?;
        let mut rows = statement.query(params![from, to])?;
        while let Some(row) = rows.next()? {
            let Some(scope) = Scope::from_name(&row.get::<_, String>(0)?) else {
                continue;
            };
            let mut counters = RouteCounters {
                bytes_in: row.get::<_, i64>(2)? as u64,
                bytes_out: row.get::<_, i64>(3)? as u64,
                latency: decode_histogram(&row.get::<_, Vec<u8>>(4)?)?,
                ..RouteCounters::default()
            };
            counters.outcomes.clear();
            let route: String = row.get(1)?;
            figures.add(scope, &route, &counters);
        }
        let mut statement = self.conn.prepare(&format!(
            "SELECT scope, route, method, status, requests FROM {outcomes} {filter}"
        ))?;
        let mut rows = statement.query(params![from, to])?;
        while let Some(row) = rows.next()? {
            let Some(scope) = Scope::from_name(&row.get::<_, String>(0)?) else {
                continue;
            };
            let route: String = row.get(1)?;
            let method = super::method_index(row.get::<_, String>(2)?.as_bytes());
            let outcome = (
                method,
                row.get::<_, i64>(3)? as u16,
                row.get::<_, i64>(4)? as u64,
            );
            let counters = figures.routes.entry((scope, route)).or_default();
            counters.outcomes.push(outcome);
        }
        let mut statement = self
            .conn
            .prepare(&format!("SELECT kind, errors FROM {upstream} {filter}"))?;
        let mut rows = statement.query(params![from, to])?;
        while let Some(row) = rows.next()? {
            let kind: String = row.get(0)?;
            if let Some(index) = UPSTREAM_ERROR_KINDS.iter().position(|known| *known == kind) {
                figures.upstream_errors[index] += row.get::<_, i64>(1)? as u64;
            }
        }
        Ok(figures)
    }

    /// Writes a flush in one transaction.
    pub fn write(&mut self, batch: &FlushBatch) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('since', ?1)",
            [batch.since as i64],
        )?;
        tx.execute_batch(
            "DELETE FROM totals; DELETE FROM totals_routes; DELETE FROM totals_upstream;",
        )?;
        write_figures(&tx, &batch.totals, None)?;
        for (minute, figures, summary) in &batch.minutes {
            for table in ["minute_outcomes", "minute_routes", "minute_upstream"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE minute = ?1"),
                    [*minute as i64],
                )?;
            }
            write_figures(&tx, figures, Some(*minute))?;
            write_summary(&tx, *minute, summary)?;
        }
        for table in [
            "minute_outcomes",
            "minute_routes",
            "minute_upstream",
            "minute_summary",
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE minute < ?1"),
                [batch.retain_from as i64],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes every figure and starts the history at `since`.
    pub fn clear(&mut self, since: u64) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for table in [
            "totals",
            "totals_routes",
            "totals_upstream",
            "minute_outcomes",
            "minute_routes",
            "minute_upstream",
            "minute_summary",
        ] {
            tx.execute(&format!("DELETE FROM {table}"), [])?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('since', ?1)",
            [since as i64],
        )?;
        tx.commit()?;
        Ok(())
    }
}

fn write_figures(
    tx: &rusqlite::Transaction<'_>,
    figures: &Figures,
    minute: Option<u64>,
) -> Result<(), StoreError> {
    let (outcomes, routes, upstream) = match minute {
        Some(_) => ("minute_outcomes", "minute_routes", "minute_upstream"),
        None => ("totals", "totals_routes", "totals_upstream"),
    };
    let (columns, marks) = match minute {
        Some(_) => ("minute, ", "?, "),
        None => ("", ""),
    };
    let mut outcome_row = tx.prepare_cached(&format!(
        "INSERT INTO {outcomes} ({columns}scope, route, method, status, requests) VALUES ({marks}?, ?, ?, ?, ?)"
    ))?;
    let mut route_row = tx.prepare_cached(&format!(
        "INSERT INTO {routes} ({columns}scope, route, bytes_in, bytes_out, latency) VALUES ({marks}?, ?, ?, ?, ?)"
    ))?;
    for ((scope, route), counters) in &figures.routes {
        let latency = encode_histogram(counters)?;
        let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(6);
        for &(method, status, requests) in &counters.outcomes {
            values.clear();
            values.extend(minute.map(|m| (m as i64).into()));
            values.push(scope.name().to_owned().into());
            values.push(route.clone().into());
            values.push(METHODS[method as usize].to_owned().into());
            values.push(i64::from(status).into());
            values.push((requests as i64).into());
            outcome_row.execute(rusqlite::params_from_iter(values.iter()))?;
        }
        values.clear();
        values.extend(minute.map(|m| (m as i64).into()));
        values.push(scope.name().to_owned().into());
        values.push(route.clone().into());
        values.push((counters.bytes_in as i64).into());
        values.push((counters.bytes_out as i64).into());
        values.push(latency.into());
        route_row.execute(rusqlite::params_from_iter(values.iter()))?;
    }
    let mut error_row = tx.prepare_cached(&format!(
        "INSERT INTO {upstream} ({columns}kind, errors) VALUES ({marks}?, ?)"
    ))?;
    for (kind, errors) in UPSTREAM_ERROR_KINDS.iter().zip(figures.upstream_errors) {
        if errors > 0 {
            let mut values: Vec<rusqlite::types::Value> =
                minute.map(|m| (m as i64).into()).into_iter().collect();
            values.push((*kind).to_owned().into());
            values.push((errors as i64).into());
            error_row.execute(rusqlite::params_from_iter(values.iter()))?;
        }
    }
    Ok(())
}

fn write_summary(
    tx: &rusqlite::Transaction<'_>,
    minute: u64,
    summary: &MinuteSummary,
) -> Result<(), StoreError> {
    let [c2, c3, c4, c5] = summary.status_classes.map(|count| count as i64);
    tx.execute(
        "INSERT OR REPLACE INTO minute_summary
         (minute, proxy_requests, proxy_failures, proxy_p50_ms, proxy_p99_ms, api_requests,
          c2xx, c3xx, c4xx, c5xx) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            minute as i64,
            summary.proxy_requests as i64,
            summary.proxy_failures as i64,
            summary.proxy_p50_ms,
            summary.proxy_p99_ms,
            summary.api_requests as i64,
            c2,
            c3,
            c4,
            c5
        ],
    )?;
    Ok(())
}

fn encode_histogram(counters: &RouteCounters) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::new();
    V2Serializer::new()
        .serialize(&counters.latency, &mut bytes)
        .map_err(|_| StoreError::Histogram)?;
    Ok(bytes)
}

fn decode_histogram(bytes: &[u8]) -> Result<hdrhistogram::Histogram<u64>, StoreError> {
    let decoded: hdrhistogram::Histogram<u64> = Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|_| StoreError::Histogram)?;
    let mut latency = new_latency_histogram();
    latency.add(&decoded).map_err(|_| StoreError::Histogram)?;
    Ok(latency)
}
