//! Helpers for the usage-statistics tests: fetching `/api/stats` and `/metrics`, polling
//! `/api/stats` (within a deadline) until the figures reach a condition, reading counts out of
//! the document, and formatting or parsing the RFC 3339 UTC times it uses, independently of
//! confab's own formatter.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::client::{get, Client, Response};

/// How long a test waits for figures to show in `/api/stats`. Workers publish once a second,
/// so anything beyond a few seconds means the figures never arrive.
pub const STATS_DEADLINE: Duration = Duration::from_secs(20);

/// Pause between two polls of `/api/stats`.
pub const POLL_PAUSE: Duration = Duration::from_millis(100);

/// `GET target` on a new connection to `addr`.
pub fn fetch(addr: SocketAddr, target: &str) -> Response {
    Client::connect(addr).exchange(&get(target))
}

/// The `/api/stats` document (with `query`, if not empty); panics unless it is a 200 JSON one.
pub fn stats_with(addr: SocketAddr, query: &str) -> Value {
    let target = if query.is_empty() {
        "/api/stats".to_owned()
    } else {
        format!("/api/stats?{query}")
    };
    let response = fetch(addr, &target);
    assert_eq!(
        response.status,
        200,
        "GET {target}; body: {:?}",
        response.text()
    );
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "GET {target} content type: {content_type:?}"
    );
    response.json()
}

/// The `/api/stats` document.
pub fn stats(addr: SocketAddr) -> Value {
    stats_with(addr, "")
}

/// Polls `/api/stats` until `done` holds for the document, then returns that document. Panics
/// with the last document after [`STATS_DEADLINE`].
pub fn wait_for_stats(addr: SocketAddr, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + STATS_DEADLINE;
    loop {
        let document = stats(addr);
        if done(&document) {
            return document;
        }
        if Instant::now() >= deadline {
            panic!("/api/stats never showed {what} within {STATS_DEADLINE:?}; last: {document:#}");
        }
        thread::sleep(POLL_PAUSE);
    }
}

/// The `/metrics` text; panics unless it is a 200 in the Prometheus text format.
pub fn metrics(addr: SocketAddr) -> String {
    let response = fetch(addr, "/metrics");
    assert_eq!(response.status, 200, "GET /metrics: {:?}", response.text());
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
        "/metrics content type: {content_type:?}"
    );
    response.text()
}

/// A non-negative integer field; panics with the value otherwise.
pub fn count(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("expected a count, got {value}"))
}

/// The `by_route` entry of `route` in a scope (`document["proxy"]` or `document["api"]`).
pub fn route<'a>(scope: &'a Value, route: &str) -> Option<&'a Value> {
    scope["by_route"]
        .as_array()
        .unwrap_or_else(|| panic!("by_route is not an array: {scope}"))
        .iter()
        .find(|entry| entry["route"] == route)
}

/// Requests counted under `route` in a scope; 0 when the route is not listed.
pub fn route_requests(scope: &Value, name: &str) -> u64 {
    route(scope, name).map_or(0, |entry| count(&entry["requests"]))
}

/// Proxied requests counted.
pub fn proxied(document: &Value) -> u64 {
    count(&document["proxy"]["requests"])
}

/// Requests counted under one of confab's own routes.
pub fn api_requests(document: &Value, name: &str) -> u64 {
    route_requests(&document["api"], name)
}

/// Asserts a `latency_ms` object has non-null, positive, ordered percentiles:
/// p50 ≤ p90 ≤ p99 ≤ max. Returns them.
pub fn assert_latency(latency: &Value, context: &str) -> [f64; 4] {
    let field = |name: &str| {
        latency[name]
            .as_f64()
            .unwrap_or_else(|| panic!("{context}: latency_ms.{name} is not a number: {latency}"))
    };
    let values = [field("p50"), field("p90"), field("p99"), field("max")];
    assert!(
        values[0] > 0.0 && values.windows(2).all(|pair| pair[0] <= pair[1]),
        "{context}: latency percentiles must be positive and p50 <= p90 <= p99 <= max: {latency}"
    );
    values
}

/// Now, as Unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let seconds = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (what confab writes) into Unix seconds; panics on anything
/// else.
pub fn parse_rfc3339(text: &str) -> u64 {
    let fail = || -> ! { panic!("not a YYYY-MM-DDTHH:MM:SSZ time: {text:?}") };
    let bytes = text.as_bytes();
    if bytes.len() != 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[10] != b'T'
        || bytes[13] != b':'
        || bytes[16] != b':'
        || bytes[19] != b'Z'
    {
        fail();
    }
    let number =
        |range: std::ops::Range<usize>| -> i64 { text[range].parse().unwrap_or_else(|_| fail()) };
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let (hour, minute, second) = (number(11..13), number(14..16), number(17..19));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        fail();
    }
    let days = days_from_civil(year, month, day);
    let total = days * 86_400 + hour * 3600 + minute * 60 + second;
    u64::try_from(total).unwrap_or_else(|_| fail())
}

/// A time field of a document (`now`, `since`, `store.last_flush`, a point's `t`) as Unix
/// seconds.
pub fn time(value: &Value) -> u64 {
    parse_rfc3339(
        value
            .as_str()
            .unwrap_or_else(|| panic!("expected an RFC 3339 time, got {value}")),
    )
}

// Days since 1970-01-01 and proleptic Gregorian dates (H. Hinnant's algorithms).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
