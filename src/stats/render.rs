//! The `/api/stats` document: its types, and how figures become them.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;
use utoipa::ToSchema;

use super::counters::{new_latency_histogram, RouteCounters};
use super::store::{Figures, MinuteSummary};
use super::{is_success, Scope, UPSTREAM_ERROR_KINDS};

/// The whole `/api/stats` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsDocument {
    /// When the document was made.
    #[schema(format = DateTime, example = "2026-12-03T17:05:00Z")]
    pub now: String,
    /// When the stored history began (first start, or the last reset).
    #[schema(format = DateTime, example = "2026-12-03T09:00:00Z")]
    pub since: String,
    pub window: Window,
    pub store: StoreHealth,
    /// Requests forwarded to the upstream.
    pub proxy: ScopeStats,
    /// Requests answered by confab itself.
    pub api: ScopeStats,
    pub series: Series,
}

/// The span the figures cover: the requested one, clamped to the stored history.
#[derive(Debug, Serialize, ToSchema)]
pub struct Window {
    #[schema(format = DateTime, example = "2026-12-03T09:00:00Z")]
    pub from: String,
    #[schema(format = DateTime, example = "2026-12-03T17:05:00Z")]
    pub to: String,
}

/// Whether the store keeps up.
#[derive(Debug, Clone, Serialize, Default, ToSchema)]
pub struct StoreHealth {
    /// False while writes to the statistics store fail.
    pub ok: bool,
    /// The last write error, while writes fail.
    #[schema(required = true)]
    pub error: Option<String>,
    /// When figures were last written to the store.
    #[schema(required = true, format = DateTime, example = "2026-12-03T17:04:58Z")]
    pub last_flush: Option<String>,
}

/// Figures for the proxy or for confab's own endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeStats {
    #[schema(example = 1520)]
    pub requests: u64,
    /// Requests answered with a status of 500 or above.
    #[schema(example = 3)]
    pub failures: u64,
    /// The share of requests that did not fail, from 0 to 1; `null` without requests.
    #[schema(required = true, minimum = 0, maximum = 1, example = 0.998)]
    pub success_rate: Option<f64>,
    pub latency_ms: Latency,
    /// Bytes received from clients.
    pub bytes_in: u64,
    /// Bytes sent to clients.
    pub bytes_out: u64,
    /// Request counts by response status code.
    #[schema(example = json!({"200": 1510, "404": 7, "502": 3}))]
    pub by_status: BTreeMap<String, u64>,
    /// Per route (the first path segment for the proxy, the endpoint for the API), busiest
    /// first.
    pub by_route: Vec<RouteStats>,
    /// Upstream failures by kind; only in `proxy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = json!({
        "refused": 0, "unreachable": 0, "reset": 1,
        "malformed": 0, "connect_timeout": 0, "timeout": 2,
        "certificate_untrusted": 0, "tls_failed": 0
    }))]
    pub upstream_errors: Option<BTreeMap<&'static str, u64>>,
}

/// Figures of one route.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteStats {
    #[schema(example = "/categories")]
    pub route: String,
    #[schema(example = 1200)]
    pub requests: u64,
    /// The share of requests that did not fail, from 0 to 1; `null` without requests.
    #[schema(required = true, minimum = 0, maximum = 1, example = 1.0)]
    pub success_rate: Option<f64>,
    pub latency_ms: Latency,
}

/// Latency percentiles in milliseconds; `null` without requests.
#[derive(Debug, Serialize, Default, Clone, Copy, PartialEq, ToSchema)]
pub struct Latency {
    #[schema(required = true, example = 0.412)]
    pub p50: Option<f64>,
    #[schema(required = true, example = 0.87)]
    pub p90: Option<f64>,
    #[schema(required = true, example = 2.3)]
    pub p99: Option<f64>,
    #[schema(required = true, example = 14.1)]
    pub max: Option<f64>,
}

/// The time series of the window, oldest point first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Series {
    /// One point per recorded second within the window (seconds are kept 15 minutes).
    pub per_second: Vec<Point>,
    /// One point per recorded minute within the window.
    pub per_minute: Vec<Point>,
}

/// One second or one minute of the time series.
#[derive(Debug, Serialize, ToSchema)]
pub struct Point {
    /// The start of the second or minute.
    #[schema(format = DateTime, example = "2026-12-03T17:04:00Z")]
    pub t: String,
    #[schema(example = 240)]
    pub proxy_requests: u64,
    #[schema(example = 0)]
    pub proxy_failures: u64,
    #[schema(required = true, example = 0.41)]
    pub proxy_p50_ms: Option<f64>,
    #[schema(required = true, example = 2.2)]
    pub proxy_p99_ms: Option<f64>,
    #[schema(example = 2)]
    pub api_requests: u64,
    /// Proxied requests by status class (`2xx`, `3xx`, `4xx`, `5xx`).
    #[schema(example = json!({"2xx": 238, "3xx": 0, "4xx": 2, "5xx": 0}))]
    pub status_classes: BTreeMap<&'static str, u64>,
}

// The statistics types are private to `stats`; the API description names the document
// through `openapi::StatsBody`, whose schema is this module's `StatsDocument`.
impl utoipa::PartialSchema for crate::openapi::StatsBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        StatsDocument::schema()
    }
}

impl ToSchema for crate::openapi::StatsBody {
    fn name() -> std::borrow::Cow<'static, str> {
        StatsDocument::name()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        StatsDocument::schemas(schemas);
    }
}

impl Point {
    pub fn new(t: u64, summary: &MinuteSummary) -> Point {
        let classes = ["2xx", "3xx", "4xx", "5xx"];
        Point {
            t: super::rfc3339(t),
            proxy_requests: summary.proxy_requests,
            proxy_failures: summary.proxy_failures,
            proxy_p50_ms: summary.proxy_p50_ms,
            proxy_p99_ms: summary.proxy_p99_ms,
            api_requests: summary.api_requests,
            status_classes: classes.into_iter().zip(summary.status_classes).collect(),
        }
    }
}

/// Percentiles of a latency histogram (microseconds) in milliseconds.
pub fn latency(histogram: &Histogram<u64>) -> Latency {
    if histogram.is_empty() {
        return Latency::default();
    }
    let ms = |micros: u64| Some(round3(micros as f64 / 1000.0));
    Latency {
        p50: ms(histogram.value_at_quantile(0.5)),
        p90: ms(histogram.value_at_quantile(0.9)),
        p99: ms(histogram.value_at_quantile(0.99)),
        max: ms(histogram.max()),
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn rate(successes: u64, requests: u64) -> Option<f64> {
    (requests > 0).then(|| round3(successes as f64 / requests as f64 * 1000.0) / 1000.0)
}

/// Summarizes the figures of one scope.
pub fn scope_stats(figures: &Figures, scope: Scope) -> ScopeStats {
    let mut all = RouteCounters::default();
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_route = Vec::new();
    for ((_, route), counters) in figures.routes.iter().filter(|((s, _), _)| *s == scope) {
        all.merge(counters);
        for &(_, status, count) in &counters.outcomes {
            *by_status.entry(status.to_string()).or_default() += count;
        }
        let requests = counters.requests();
        by_route.push(RouteStats {
            route: route.clone(),
            requests,
            success_rate: rate(requests - counters.failures(), requests),
            latency_ms: latency(&counters.latency),
        });
    }
    by_route.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.route.cmp(&b.route)));
    let requests = all.requests();
    let failures = all.failures();
    ScopeStats {
        requests,
        failures,
        success_rate: rate(requests - failures, requests),
        latency_ms: latency(&all.latency),
        bytes_in: all.bytes_in,
        bytes_out: all.bytes_out,
        by_status,
        by_route,
        upstream_errors: (scope == Scope::Proxy).then(|| {
            UPSTREAM_ERROR_KINDS
                .iter()
                .copied()
                .zip(figures.upstream_errors)
                .collect()
        }),
    }
}

/// The headline of a span of figures (a second or a minute).
pub fn summarize(figures: &Figures) -> MinuteSummary {
    let mut summary = MinuteSummary::default();
    let mut proxy_latency = new_latency_histogram();
    for ((scope, _), counters) in &figures.routes {
        match scope {
            Scope::Api => summary.api_requests += counters.requests(),
            Scope::Proxy => {
                add_proxy(&mut summary, counters);
                let _ = proxy_latency.add(&counters.latency);
            }
        }
    }
    let percentiles = latency(&proxy_latency);
    summary.proxy_p50_ms = percentiles.p50;
    summary.proxy_p99_ms = percentiles.p99;
    summary
}

fn add_proxy(summary: &mut MinuteSummary, counters: &RouteCounters) {
    for &(_, status, count) in &counters.outcomes {
        summary.proxy_requests += count;
        if !is_success(status) {
            summary.proxy_failures += count;
        }
        let class = match status {
            300..=399 => 1,
            400..=499 => 2,
            500.. => 3,
            _ => 0,
        };
        summary.status_classes[class] += count;
    }
}
