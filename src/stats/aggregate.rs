//! The aggregator: merges every worker's figures on one thread, keeps the series, feeds the
//! Prometheus registry, answers queries, and schedules flushes to the store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

use super::counters::RouteCounters;
use super::render::{self, Point, StatsDocument, StoreHealth, Window};
use super::store::{Figures, FlushBatch, MinuteSummary, Store};
use super::{
    rfc3339, unix_now, Delta, Query, Scope, StatsConfig, MAX_PROXY_ROUTES, METHODS, OTHER_ROUTE,
    PER_SECOND_HISTORY, UPSTREAM_ERROR_KINDS,
};
use crate::serial::SerialQueue;

/// Seconds after which a second is considered complete (every worker has published it).
const SECOND_SETTLE: u64 = 3;
/// Histogram buckets of the Prometheus latency families, in seconds.
const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

pub struct Aggregator {
    config: StatsConfig,
    serial: Arc<SerialQueue>,
    health: Arc<Mutex<StoreHealth>>,
    /// A reading connection for window queries (the serial queue holds the writing one).
    reader: Option<Store>,
    since: u64,
    totals: Figures,
    /// Seconds still receiving figures.
    open_seconds: BTreeMap<u64, Figures>,
    closed_seconds: BTreeMap<u64, MinuteSummary>,
    /// Full figures of minutes not yet written (the current one stays until it is over).
    minutes: BTreeMap<u64, Figures>,
    dirty_minutes: BTreeSet<u64>,
    summaries: BTreeMap<u64, MinuteSummary>,
    last_flush: Instant,
    prometheus: PrometheusRecorder,
}

impl Aggregator {
    /// Opens the store (if configured), loads what it holds, and hands its writing
    /// connection to the serial queue.
    pub fn open(config: StatsConfig, serial: Arc<SerialQueue>) -> Aggregator {
        let now = unix_now();
        let mut aggregator = Aggregator {
            health: Arc::new(Mutex::new(StoreHealth {
                ok: config.state_dir.is_some(),
                error: None,
                last_flush: None,
            })),
            config,
            serial,
            reader: None,
            since: now,
            totals: Figures::default(),
            open_seconds: BTreeMap::new(),
            closed_seconds: BTreeMap::new(),
            minutes: BTreeMap::new(),
            dirty_minutes: BTreeSet::new(),
            summaries: BTreeMap::new(),
            last_flush: Instant::now(),
            prometheus: new_prometheus(),
        };
        if let Err(error) = aggregator.load() {
            tracing::error!(%error, "statistics store unavailable; figures are kept in memory only");
            aggregator.set_health(Err(error.to_string()));
        }
        aggregator
    }

    fn load(&mut self) -> Result<(), super::store::StoreError> {
        let Some(dir) = self.config.state_dir.clone() else {
            return Ok(());
        };
        let writer = Store::open(&dir)?;
        let stored = writer.load(self.retain_from())?;
        let current = minute_of(unix_now());
        let current_figures = writer.minute(current)?;
        if let Some(since) = stored.since {
            self.since = since;
        }
        self.apply_prometheus(&stored.totals);
        self.totals = stored.totals;
        self.summaries = stored.summaries;
        if !current_figures.routes.is_empty() {
            self.minutes.insert(current, current_figures);
        }
        self.reader = Some(Store::open(&dir)?);
        let _ = self
            .serial
            .submit(move |context| context.stats_store = Some(writer));
        tracing::info!(
            since = %rfc3339(self.since),
            minutes = self.summaries.len(),
            "statistics loaded from the store"
        );
        Ok(())
    }

    fn retain_from(&self) -> u64 {
        unix_now().saturating_sub(self.config.retention.as_secs())
    }

    fn set_health(&self, outcome: Result<u64, String>) {
        set_health(&self.health, outcome);
    }

    /// Adds one worker's delta everywhere it counts.
    pub fn merge(&mut self, delta: Delta) {
        let minute = minute_of(delta.second);
        let mut figures = Figures::default();
        for (scope, route, counters) in &delta.routes {
            // Counted in the totals at once, so the bound holds within this delta too.
            let route = self.bounded_route(*scope, route);
            self.totals.add(*scope, &route, counters);
            figures.add(*scope, &route, counters);
        }
        figures.add_errors(&delta.upstream_errors);
        self.totals.add_errors(&delta.upstream_errors);
        self.apply_prometheus(&figures);
        self.minutes.entry(minute).or_default().merge(&figures);
        self.dirty_minutes.insert(minute);
        match self.closed_seconds.get_mut(&delta.second) {
            Some(late) => add_summary(late, &render::summarize(&figures)),
            None => self
                .open_seconds
                .entry(delta.second)
                .or_default()
                .merge(&figures),
        }
    }

    /// The route a delta's route is counted under, keeping proxied routes bounded.
    fn bounded_route(&self, scope: Scope, route: &str) -> String {
        if scope == Scope::Api || self.totals.routes.contains_key(&(scope, route.to_owned())) {
            return route.to_owned();
        }
        let proxied = self
            .totals
            .routes
            .keys()
            .filter(|(s, _)| *s == Scope::Proxy)
            .count();
        if proxied < MAX_PROXY_ROUTES {
            route.to_owned()
        } else {
            OTHER_ROUTE.to_owned()
        }
    }

    /// Closes settled seconds, forgets old ones, folds the exporter's histogram samples into
    /// its buckets, and flushes when it is time.
    pub fn tick(&mut self) {
        let now = unix_now();
        let settled: Vec<u64> = self
            .open_seconds
            .range(..now.saturating_sub(SECOND_SETTLE))
            .map(|(second, _)| *second)
            .collect();
        for second in settled {
            if let Some(figures) = self.open_seconds.remove(&second) {
                self.closed_seconds
                    .insert(second, render::summarize(&figures));
            }
        }
        let horizon = now.saturating_sub(PER_SECOND_HISTORY.as_secs());
        self.closed_seconds = self.closed_seconds.split_off(&horizon);
        // The exporter keeps every histogram sample until its upkeep folds them into buckets;
        // left to the scrapes alone, a process nobody scrapes would hold one sample per request
        // for ever.
        self.prometheus.handle().run_upkeep();
        if self.last_flush.elapsed() >= self.config.flush_interval {
            self.flush_now(false);
        }
    }

    /// Hands the changed minutes and the totals to the serial queue for the store. With
    /// `wait`, returns only once they are written.
    pub fn flush_now(&mut self, wait: bool) {
        self.last_flush = Instant::now();
        let current = minute_of(unix_now());
        let minutes: Vec<(u64, Figures, MinuteSummary)> = self
            .dirty_minutes
            .iter()
            .filter_map(|minute| {
                let figures = self.minutes.get(minute)?;
                Some((*minute, figures.clone(), render::summarize(figures)))
            })
            .collect();
        for (minute, _, summary) in &minutes {
            self.summaries.insert(*minute, *summary);
        }
        let retain_from = minute_of(self.retain_from());
        self.summaries = self.summaries.split_off(&retain_from);
        // The previous minute stays too: a worker's last delta for it may still be on its way,
        // and its next flush must write the whole minute, not just that delta.
        self.minutes.retain(|minute, _| *minute + 60 >= current);
        if self.config.state_dir.is_none() || (minutes.is_empty() && !wait) {
            self.dirty_minutes.clear();
            return;
        }
        let batch = FlushBatch {
            since: self.since,
            totals: self.totals.clone(),
            minutes,
            retain_from,
        };
        let health = Arc::clone(&self.health);
        let task = move |context: &mut crate::serial::SerialContext| {
            // Without a store, the health keeps the error that kept it from opening.
            let Some(store) = context.stats_store.as_mut() else {
                return;
            };
            let outcome = store
                .write(&batch)
                .map(|()| unix_now())
                .map_err(|error| error.to_string());
            if let Err(error) = &outcome {
                tracing::warn!(%error, "statistics flush failed");
            }
            set_health(&health, outcome);
        };
        let queued = if wait {
            self.serial.run_blocking(task).is_ok()
        } else {
            self.serial.submit(task).is_ok()
        };
        if queued {
            self.dirty_minutes.clear();
        }
    }

    /// Answers a query from a worker.
    pub fn answer(&mut self, query: Query) {
        match query {
            Query::Json { from, to, reply } => {
                let _ = reply.send(self.document(from, to));
            }
            Query::Prometheus { reply } => {
                let handle = self.prometheus.handle();
                handle.run_upkeep();
                let _ = reply.send(handle.render());
            }
            Query::Reset { reply } => self.reset(reply),
        }
    }

    fn reset(&mut self, reply: futures_channel::oneshot::Sender<Result<(), String>>) {
        let since = unix_now();
        self.since = since;
        self.totals = Figures::default();
        self.open_seconds.clear();
        self.closed_seconds.clear();
        self.minutes.clear();
        self.dirty_minutes.clear();
        self.summaries.clear();
        self.prometheus = new_prometheus();
        if self.config.state_dir.is_none() {
            let _ = reply.send(Ok(()));
            return;
        }
        let submitted = self.serial.submit(move |context| {
            let outcome = match context.stats_store.as_mut() {
                Some(store) => store.clear(since).map_err(|error| error.to_string()),
                None => Err("the statistics store is not open".to_owned()),
            };
            let _ = reply.send(outcome);
        });
        if let Err(error) = submitted {
            tracing::warn!(%error, "statistics reset could not reach the store");
        }
    }

    fn document(&self, from: Option<u64>, to: Option<u64>) -> String {
        let now = unix_now();
        let from = from.unwrap_or(self.since).max(self.since);
        let to = to.unwrap_or(now);
        let figures = if from > to {
            Figures::default()
        } else if from <= self.since && to >= now {
            self.totals.clone()
        } else {
            self.window_figures(from, to)
        };
        let document = StatsDocument {
            now: rfc3339(now),
            since: rfc3339(self.since),
            window: Window {
                from: rfc3339(from),
                to: rfc3339(to),
            },
            store: self
                .health
                .lock()
                .map(|health| health.clone())
                .unwrap_or_default(),
            proxy: render::scope_stats(&figures, Scope::Proxy),
            api: render::scope_stats(&figures, Scope::Api),
            series: render::Series {
                per_second: self.per_second(from, to),
                per_minute: self.per_minute(from, to),
            },
        };
        serde_json::to_string(&document).unwrap_or_default()
    }

    /// The figures of the minutes overlapping `from..=to`: stored ones, with the minutes still
    /// in memory taken from memory.
    fn window_figures(&self, from: u64, to: u64) -> Figures {
        let (first, last) = (minute_of(from), minute_of(to));
        let in_memory: Vec<u64> = self.minutes.range(first..=last).map(|(m, _)| *m).collect();
        let mut figures = match &self.reader {
            Some(reader) => reader
                .window(first, last, &in_memory)
                .unwrap_or_else(|error| {
                    tracing::warn!(%error, "statistics window query failed");
                    Figures::default()
                }),
            None => Figures::default(),
        };
        for minute in in_memory {
            if let Some(more) = self.minutes.get(&minute) {
                figures.merge(more);
            }
        }
        figures
    }

    fn per_second(&self, from: u64, to: u64) -> Vec<Point> {
        if from > to {
            return Vec::new();
        }
        let closed = self
            .closed_seconds
            .range(from..=to)
            .map(|(second, summary)| Point::new(*second, summary));
        let open = self
            .open_seconds
            .range(from..=to)
            .map(|(second, figures)| Point::new(*second, &render::summarize(figures)));
        closed.chain(open).collect()
    }

    fn per_minute(&self, from: u64, to: u64) -> Vec<Point> {
        if minute_of(from) > to {
            return Vec::new();
        }
        let mut points: BTreeMap<u64, MinuteSummary> = self
            .summaries
            .range(minute_of(from)..=to)
            .map(|(minute, summary)| (*minute, *summary))
            .collect();
        for (minute, figures) in self.minutes.range(minute_of(from)..=to) {
            points.insert(*minute, render::summarize(figures));
        }
        points
            .iter()
            .map(|(minute, summary)| Point::new(*minute, summary))
            .collect()
    }

    /// Feeds figures to the Prometheus registry (the aggregator is its only writer).
    fn apply_prometheus(&self, figures: &Figures) {
        metrics::with_local_recorder(&self.prometheus, || {
            for ((scope, route), counters) in &figures.routes {
                record_route(*scope, route, counters);
            }
            for (kind, errors) in UPSTREAM_ERROR_KINDS.iter().zip(figures.upstream_errors) {
                if errors > 0 {
                    metrics::counter!("confab_upstream_errors_total", "kind" => *kind)
                        .increment(errors);
                }
            }
        });
    }
}

fn record_route(scope: Scope, route: &str, counters: &RouteCounters) {
    let (requests, duration) = match scope {
        Scope::Proxy => (
            "confab_proxy_requests_total",
            "confab_proxy_request_duration_seconds",
        ),
        Scope::Api => (
            "confab_api_requests_total",
            "confab_api_request_duration_seconds",
        ),
    };
    for &(method, status, count) in &counters.outcomes {
        metrics::counter!(
            requests,
            "route" => route.to_owned(),
            "method" => METHODS[method as usize],
            "status" => status.to_string()
        )
        .increment(count);
    }
    let histogram = metrics::histogram!(duration, "route" => route.to_owned());
    for value in counters.latency.iter_recorded() {
        let seconds = value.value_iterated_to() as f64 / 1_000_000.0;
        histogram.record_many(seconds, value.count_at_value() as usize);
    }
}

fn new_prometheus() -> PrometheusRecorder {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_duration_seconds".to_owned()),
            &LATENCY_BUCKETS_SECONDS,
        )
        .map(PrometheusBuilder::build_recorder)
        .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
    metrics::with_local_recorder(&recorder, describe_families);
    recorder
}

fn describe_families() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(
        "confab_proxy_requests_total",
        "Requests forwarded to the upstream, by route, method and status sent to the client."
    );
    describe_histogram!(
        "confab_proxy_request_duration_seconds",
        Unit::Seconds,
        "Proxied request latency from first byte in to last byte out, by route."
    );
    describe_counter!(
        "confab_api_requests_total",
        "Requests answered by confab itself, by route, method and status."
    );
    describe_histogram!(
        "confab_api_request_duration_seconds",
        Unit::Seconds,
        "Latency of confab's own endpoints, by route."
    );
    describe_counter!(
        "confab_upstream_errors_total",
        "Failed upstream exchanges, by kind of failure."
    );
}

fn set_health(health: &Mutex<StoreHealth>, outcome: Result<u64, String>) {
    if let Ok(mut health) = health.lock() {
        match outcome {
            Ok(flushed_at) => {
                health.ok = true;
                health.error = None;
                health.last_flush = Some(rfc3339(flushed_at));
            }
            Err(error) => {
                health.ok = false;
                health.error = Some(error);
            }
        }
    }
}

fn add_summary(total: &mut MinuteSummary, more: &MinuteSummary) {
    total.proxy_requests += more.proxy_requests;
    total.proxy_failures += more.proxy_failures;
    total.api_requests += more.api_requests;
    for (class, count) in total.status_classes.iter_mut().zip(more.status_classes) {
        *class += count;
    }
}

/// The start of the minute `second` falls in.
fn minute_of(second: u64) -> u64 {
    second - second % 60
}
