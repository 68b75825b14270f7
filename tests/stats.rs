//! Black-box tests of the usage statistics over real sockets: the `/api/stats` figures add up
//! to the traffic sent (totals, failures, statuses, routes, upstream errors, latency, series),
//! proxied routes stay bounded, `/metrics` is valid Prometheus text that agrees with
//! `/api/stats`, the reset endpoint's token rules and effect, time windows, persistence of the
//! store through the real binary (SIGKILL and SIGTERM), serving on when the store fails, and
//! the self-contained dashboard page.
//!
//! Workers publish their figures once a second, so every check first polls `/api/stats`
//! (within a deadline) until the expected traffic shows, then asserts exact figures.

mod support;

use support::process::Served;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::Duration;

use prometheus_parse::{LineInfo, Scrape, Value as Metric};
use serde_json::Value;

use support::client::IO_TIMEOUT;
use support::stats::{
    api_requests, assert_latency, count, fetch, metrics, parse_rfc3339, proxied, rfc3339, route,
    route_requests, stats, stats_with, time, unix_now, wait_for_stats,
};
use support::upstream::write_all;
use support::{assert_problem, config, get, refused_url, request, After, Client, Proxy, Upstream};

/// How long the fake upstream takes to answer `/slow/...`, a floor for that route's latency.
const SLOW_DELAY: Duration = Duration::from_millis(150);

/// The names confab's own endpoints are counted under.
const API_ROUTES: [&str; 14] = [
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/dashboard",
    "/api/conversations",
    "/api/conversations/{id}",
    "/api/companies",
    "/api/tags",
    "/api/stats",
    "/api/stats/reset",
    "/api/jobs",
    "/api/jobs/{id}",
    "other",
];

/// The kinds of upstream failure `/api/stats` and `/metrics` count.
const UPSTREAM_ERROR_KINDS: [&str; 8] = [
    "refused",
    "unreachable",
    "reset",
    "malformed",
    "connect_timeout",
    "timeout",
    "certificate_untrusted",
    "tls_failed",
];

/// The admin token of the servers that have one.
const TOKEN: &str = "s3cret-admin-token";

// === Traffic ===

/// A fake upstream whose answer depends on the first path segment: `/missing` → 404,
/// `/flaky` → 503, `/broken` → connection reset, `/slow` → 200 after [`SLOW_DELAY`], anything
/// else → 200 with a small JSON body.
fn mixed_upstream() -> Upstream {
    Upstream::start(|request, stream| {
        let path = request.target.split('?').next().unwrap_or_default();
        let (status, reason) = match path.split('/').nth(1).unwrap_or_default() {
            "missing" => (404, "Not Found"),
            "flaky" => (503, "Service Unavailable"),
            "broken" => return After::Reset,
            "slow" => {
                thread::sleep(SLOW_DELAY);
                (200, "OK")
            }
            _ => (200, "OK"),
        };
        let body = format!(r#"{{"path":"{path}"}}"#);
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let body: &[u8] = if request.method == "HEAD" {
            b""
        } else {
            body.as_bytes()
        };
        match write_all(stream, &[head.as_bytes(), body]) {
            Ok(()) => After::KeepAlive,
            Err(_) => After::Close,
        }
    })
}

/// The proxied requests of the mixed traffic: method, target, and the status the client gets.
const MIXED: [(&str, &str, u16); 12] = [
    ("GET", "/categories/1", 200),
    ("GET", "/categories/2", 200),
    ("GET", "/categories/3?sort=asc", 200),
    ("GET", "/categories", 200),
    ("POST", "/categories", 200),
    ("GET", "/products/9?x=1", 200),
    ("GET", "/products", 200),
    ("HEAD", "/products/1", 200),
    ("GET", "/slow/1", 200),
    ("GET", "/missing/thing", 404),
    ("GET", "/flaky", 503),
    ("GET", "/broken/1", 502),
];

/// `/healthz` requests sent with the mixed traffic.
const MIXED_HEALTHZ: u64 = 3;

/// Sends [`MIXED`], [`MIXED_HEALTHZ`] health checks and one request for an unknown confab
/// endpoint, each on a new connection (so they spread over the workers), checking each status.
fn send_mixed(proxy: &Proxy) {
    for (method, target, status) in MIXED {
        let response = if method == "HEAD" {
            proxy
                .client()
                .exchange_head(&request(method, target, &[], b""))
        } else if method == "POST" {
            proxy.exchange(&request(method, target, &[], br#"{"name":"new"}"#))
        } else {
            proxy.exchange(&get(target))
        };
        assert_eq!(
            response.status,
            status,
            "{method} {target}: {:?}",
            response.text()
        );
    }
    for _ in 0..MIXED_HEALTHZ {
        assert_eq!(proxy.exchange(&get("/healthz")).status, 200);
    }
    assert_problem(&proxy.exchange(&get("/api/nope")), 404, "not-found");
}

/// Polls until all of [`send_mixed`]'s traffic shows; returns that document.
fn wait_for_mixed(addr: SocketAddr) -> Value {
    wait_for_stats(addr, "the mixed traffic", |document| {
        proxied(document) >= MIXED.len() as u64
            && api_requests(document, "/healthz") >= MIXED_HEALTHZ
            && api_requests(document, "other") >= 1
    })
}

/// Sends `count` proxied `GET /items/N` and `healthz` health checks, checking each answer.
fn send_items(addr: SocketAddr, count: usize, healthz: usize) {
    for index in 0..count {
        let response = Client::connect(addr).exchange(&get(&format!("/items/{index}")));
        assert_eq!(
            response.status,
            200,
            "GET /items/{index}: {:?}",
            response.text()
        );
    }
    for _ in 0..healthz {
        let response = Client::connect(addr).exchange(&get("/healthz"));
        assert_eq!(response.status, 200, "GET /healthz: {:?}", response.text());
    }
}

fn assert_close(actual: &Value, expected: f64, what: &str) {
    let actual = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: expected a number, got {actual}"));
    assert!(
        (actual - expected).abs() < 1e-3,
        "{what}: expected {expected}, got {actual}"
    );
}

fn by_status(scope: &Value) -> BTreeMap<String, u64> {
    scope["by_status"]
        .as_object()
        .unwrap_or_else(|| panic!("by_status is not an object: {scope}"))
        .iter()
        .map(|(status, n)| (status.clone(), count(n)))
        .collect()
}

fn upstream_errors(document: &Value) -> BTreeMap<String, u64> {
    document["proxy"]["upstream_errors"]
        .as_object()
        .unwrap_or_else(|| panic!("proxy.upstream_errors is not an object: {document}"))
        .iter()
        .map(|(kind, n)| (kind.clone(), count(n)))
        .collect()
}

/// The upstream error counts with `kind` at `n` and every other kind at 0.
fn only_errors(kind: &str, n: u64) -> BTreeMap<String, u64> {
    UPSTREAM_ERROR_KINDS
        .iter()
        .map(|known| (known.to_string(), if *known == kind { n } else { 0 }))
        .collect()
}

fn routes(scope: &Value) -> Vec<String> {
    scope["by_route"]
        .as_array()
        .unwrap_or_else(|| panic!("by_route is not an array: {scope}"))
        .iter()
        .map(|entry| {
            entry["route"]
                .as_str()
                .unwrap_or_else(|| panic!("route name: {entry}"))
                .to_owned()
        })
        .collect()
}

/// Sums of a series: proxy requests, proxy failures, API requests, and the status classes.
fn series_sums(points: &Value, what: &str) -> (u64, u64, u64, BTreeMap<String, u64>) {
    let points = points
        .as_array()
        .unwrap_or_else(|| panic!("{what} is not an array: {points}"));
    let mut sums = (0, 0, 0, BTreeMap::new());
    let mut previous = None;
    for point in points {
        let t = time(&point["t"]);
        assert!(
            previous.is_none_or(|previous| previous < t),
            "{what}: times must increase strictly: {points:?}"
        );
        previous = Some(t);
        sums.0 += count(&point["proxy_requests"]);
        sums.1 += count(&point["proxy_failures"]);
        sums.2 += count(&point["api_requests"]);
        let classes = point["status_classes"]
            .as_object()
            .unwrap_or_else(|| panic!("{what}: status_classes: {point}"));
        for (class, n) in classes {
            *sums.3.entry(class.clone()).or_insert(0) += count(n);
        }
    }
    sums
}

// === The figures ===

#[test]
fn figures_add_up_to_the_traffic_sent() {
    let upstream = mixed_upstream();
    let proxy = Proxy::to(&upstream);
    send_mixed(&proxy);
    let document = wait_for_mixed(proxy.addr());
    let proxy_stats = &document["proxy"];

    assert_eq!(proxied(&document), 12, "proxied requests: {document:#}");
    assert_eq!(
        count(&proxy_stats["failures"]),
        2,
        "the 503 and the 502 fail"
    );
    assert_close(
        &proxy_stats["success_rate"],
        10.0 / 12.0,
        "proxy success rate",
    );
    let expected_statuses: BTreeMap<String, u64> = [("200", 9), ("404", 1), ("502", 1), ("503", 1)]
        .into_iter()
        .map(|(status, n)| (status.to_owned(), n))
        .collect();
    assert_eq!(by_status(proxy_stats), expected_statuses, "proxy by_status");
    assert_eq!(upstream_errors(&document), only_errors("reset", 1));
    assert!(count(&proxy_stats["bytes_in"]) > 0 && count(&proxy_stats["bytes_out"]) > 0);

    // Routes: the first path segment, query excluded, with their own success rates.
    let expected_routes = [
        ("/categories", 5, 1.0),
        ("/products", 3, 1.0),
        ("/slow", 1, 1.0),
        ("/missing", 1, 1.0),
        ("/flaky", 1, 0.0),
        ("/broken", 1, 0.0),
    ];
    let listed: BTreeSet<String> = routes(proxy_stats).into_iter().collect();
    let wanted: BTreeSet<String> = expected_routes
        .iter()
        .map(|(name, _, _)| name.to_string())
        .collect();
    assert_eq!(listed, wanted, "proxied routes");
    for (name, requests, success_rate) in expected_routes {
        let entry = route(proxy_stats, name).expect("listed");
        assert_eq!(count(&entry["requests"]), requests, "requests of {name}");
        assert_close(
            &entry["success_rate"],
            success_rate,
            &format!("success rate of {name}"),
        );
        assert_latency(&entry["latency_ms"], name);
    }

    // Latency runs from the first byte in to the last byte out, so /slow takes its delay.
    let floor_ms = SLOW_DELAY.as_secs_f64() * 1000.0;
    let slow = assert_latency(
        &route(proxy_stats, "/slow").expect("listed")["latency_ms"],
        "/slow",
    );
    assert!(
        slow[0] >= floor_ms,
        "/slow p50 {} ms < {floor_ms} ms",
        slow[0]
    );
    let overall = assert_latency(&proxy_stats["latency_ms"], "proxy");
    assert!(
        overall[3] >= floor_ms,
        "proxy max {} ms < {floor_ms} ms",
        overall[3]
    );

    // confab's own endpoints: fixed route names; an unknown one counts as `other` (a 404 is
    // not a failure).
    let api = &document["api"];
    assert_eq!(api_requests(&document, "/healthz"), MIXED_HEALTHZ);
    assert_eq!(api_requests(&document, "other"), 1);
    for name in routes(api) {
        assert!(
            API_ROUTES.contains(&name.as_str()),
            "unexpected API route {name:?}"
        );
    }
    assert_eq!(count(&api["failures"]), 0, "no API request failed: {api}");
    assert_close(&api["success_rate"], 1.0, "API success rate");
    let api_statuses = by_status(api);
    assert_eq!(
        api_statuses.get("404"),
        Some(&1),
        "API by_status: {api_statuses:?}"
    );
    assert!(api_statuses.get("200").is_some_and(|n| *n >= MIXED_HEALTHZ));
    assert_eq!(
        api_statuses.values().sum::<u64>(),
        count(&api["requests"]),
        "API by_status adds up to its requests"
    );
    assert_latency(&api["latency_ms"], "api");
    assert_latency(
        &route(api, "/healthz").expect("listed")["latency_ms"],
        "/healthz",
    );

    // The window defaults to everything since `since`, and the series add up to the totals.
    let (since, now) = (time(&document["since"]), time(&document["now"]));
    assert!(since <= now, "since {since} after now {now}");
    assert_eq!(time(&document["window"]["from"]), since, "window.from");
    assert_eq!(time(&document["window"]["to"]), now, "window.to");
    assert_eq!(
        document["store"]["ok"], true,
        "store: {}",
        document["store"]
    );
    let classes: BTreeMap<String, u64> = [("2xx", 9), ("3xx", 0), ("4xx", 1), ("5xx", 2)]
        .into_iter()
        .map(|(class, n)| (class.to_owned(), n))
        .collect();
    let api_total = count(&api["requests"]);
    for series in ["per_second", "per_minute"] {
        let (requests, failures, api_sum, class_sums) =
            series_sums(&document["series"][series], series);
        assert_eq!((requests, failures), (12, 2), "{series} proxy sums");
        assert_eq!(api_sum, api_total, "{series} API sum");
        assert_eq!(class_sums, classes, "{series} status classes");
        for point in document["series"][series].as_array().expect("array") {
            let t = time(&point["t"]);
            assert!(
                since.saturating_sub(60) <= t && t <= now,
                "{series} point {t} outside {since}..={now}"
            );
        }
    }
}

#[test]
fn refused_upstream_counts_as_failures() {
    let (url, _) = refused_url();
    let proxy = Proxy::start(config(Some(url)));
    for _ in 0..2 {
        assert_problem(
            &proxy.exchange(&get("/categories/1")),
            502,
            "upstream-refused",
        );
    }
    assert_eq!(proxy.exchange(&get("/healthz")).status, 200);
    let document = wait_for_stats(proxy.addr(), "two refused requests", |document| {
        proxied(document) >= 2 && api_requests(document, "/healthz") >= 1
    });
    let proxy_stats = &document["proxy"];
    assert_eq!(proxied(&document), 2);
    assert_eq!(count(&proxy_stats["failures"]), 2);
    assert_close(&proxy_stats["success_rate"], 0.0, "success rate");
    assert_eq!(
        by_status(proxy_stats),
        BTreeMap::from([("502".to_owned(), 2)])
    );
    assert_eq!(upstream_errors(&document), only_errors("refused", 2));
    let categories = route(proxy_stats, "/categories").expect("route /categories");
    assert_eq!(count(&categories["requests"]), 2);
    assert_close(&categories["success_rate"], 0.0, "/categories success rate");
    assert_latency(&proxy_stats["latency_ms"], "refused");
    assert_eq!(api_requests(&document, "/healthz"), 1);
}

/// A body of `len` printable bytes.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Sends `request` on a new raw connection and reads until the server closes it; returns the
/// bytes received. The request must ask for `Connection: close`.
fn exchange_raw(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream
        .write_all(request)
        .expect("send the request in one write");
    let mut received = Vec::new();
    stream.read_to_end(&mut received).expect("read to close");
    received
}

#[test]
fn proxied_bytes_in_count_the_request_body() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let body = pattern(1000);
    let sent = request("POST", "/upload", &[("Connection", "close")], &body);
    let received = exchange_raw(proxy.addr(), &sent);
    assert!(
        received.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
    let document = wait_for_stats(proxy.addr(), "the upload", |document| {
        proxied(document) >= 1
    });
    assert_eq!(
        count(&document["proxy"]["bytes_in"]),
        sent.len() as u64,
        "bytes_in of one {}-byte request (head and a {}-byte body sent in one write)",
        sent.len(),
        body.len()
    );
}

#[test]
fn proxied_bytes_out_count_the_whole_response() {
    const BODY: usize = 1024 * 1024;
    let upstream = Upstream::responder(|_| {
        let mut raw = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {BODY}\r\n\r\n"
        )
        .into_bytes();
        raw.extend(pattern(BODY));
        raw
    });
    let proxy = Proxy::to(&upstream);
    let received = exchange_raw(
        proxy.addr(),
        &request("GET", "/big", &[("Connection", "close")], b""),
    );
    assert!(received.len() > BODY, "the client got the whole response");
    let document = wait_for_stats(proxy.addr(), "the download", |document| {
        proxied(document) >= 1
    });
    assert_eq!(
        count(&document["proxy"]["bytes_out"]),
        received.len() as u64,
        "bytes_out of one response of {} bytes ({BODY}-byte body)",
        received.len()
    );
}

// === Route cardinality ===

#[test]
fn proxied_routes_are_bounded_to_fifty_and_other() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    for index in 0..60 {
        let response = proxy.exchange(&get(&format!("/r{index:02}/x")));
        assert_eq!(response.status, 200);
    }
    let document = wait_for_stats(proxy.addr(), "60 requests", |document| {
        proxied(document) >= 60
    });
    assert_eq!(proxied(&document), 60);
    let listed = routes(&document["proxy"]);
    let distinct: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(
        distinct.len(),
        listed.len(),
        "routes listed once: {listed:?}"
    );
    for name in &listed {
        let known = name == "other"
            || (name.len() == 4 && name.starts_with("/r") && name[2..].parse::<u8>().is_ok());
        assert!(known, "unexpected route {name:?}");
    }
    assert!(
        listed.len() <= 51,
        "at most 50 routes plus `other`, got {}: {listed:?}",
        listed.len()
    );
    let named = listed.iter().filter(|name| *name != "other").count();
    assert_eq!(
        route_requests(&document["proxy"], "other"),
        60 - named as u64,
        "the routes left out are counted under `other`"
    );

    let scrape = scrape(&metrics(proxy.addr()));
    let labelled: BTreeSet<String> = samples(&scrape, "confab_proxy_requests_total")
        .map(|sample| label(sample, "route"))
        .collect();
    assert!(
        labelled.len() <= 51,
        "/metrics: at most 51 route labels, got {}",
        labelled.len()
    );
}

// === /metrics ===

/// Parses Prometheus text, first checking that every line is a sample, a `# HELP` or a
/// `# TYPE` line (the parser itself skips lines it cannot read).
fn scrape(text: &str) -> Scrape {
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        assert!(
            !matches!(LineInfo::parse(line), LineInfo::Ignored),
            "not a Prometheus text line: {line:?}\n{text}"
        );
    }
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("Prometheus text parses")
}

fn samples<'a>(
    scrape: &'a Scrape,
    metric: &'a str,
) -> impl Iterator<Item = &'a prometheus_parse::Sample> + 'a {
    scrape
        .samples
        .iter()
        .filter(move |sample| sample.metric == metric)
}

fn label(sample: &prometheus_parse::Sample, name: &str) -> String {
    sample
        .labels
        .get(name)
        .unwrap_or_else(|| panic!("{} has no label {name}: {:?}", sample.metric, sample.labels))
        .to_owned()
}

fn label_names(sample: &prometheus_parse::Sample) -> BTreeSet<String> {
    sample.labels.keys().cloned().collect()
}

fn counter(sample: &prometheus_parse::Sample) -> u64 {
    match sample.value {
        Metric::Counter(value) if value >= 0.0 && value.fract() == 0.0 => value as u64,
        ref other => panic!("{} is not a whole counter: {other:?}", sample.metric),
    }
}

fn untyped(sample: &prometheus_parse::Sample) -> f64 {
    match sample.value {
        Metric::Untyped(value) | Metric::Counter(value) | Metric::Gauge(value) => value,
        ref other => panic!("{} is not a plain value: {other:?}", sample.metric),
    }
}

fn names(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| name.to_string()).collect()
}

/// Requests of a `*_requests_total` family added up by one label.
fn counters_by(scrape: &Scrape, metric: &str, by: &str) -> BTreeMap<String, u64> {
    let mut sums = BTreeMap::new();
    for sample in samples(scrape, metric) {
        assert_eq!(
            label_names(sample),
            names(&["route", "method", "status"]),
            "{metric} labels"
        );
        *sums.entry(label(sample, by)).or_insert(0) += counter(sample);
    }
    sums
}

/// Checks a latency histogram family: `{route}` labels only, cumulative buckets ending at
/// `+Inf`, and `_count` equal to the `+Inf` bucket. Returns the count of each route.
fn histogram_counts(scrape: &Scrape, metric: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for sample in samples(scrape, metric) {
        assert_eq!(label_names(sample), names(&["route"]), "{metric} labels");
        let Metric::Histogram(buckets) = &sample.value else {
            panic!("{metric} is not a histogram: {sample:?}");
        };
        assert!(
            buckets.windows(2).all(|pair| pair[0].less_than < pair[1].less_than
                && pair[0].count <= pair[1].count),
            "{metric} buckets must be cumulative: {buckets:?}"
        );
        let last = buckets.last().expect("buckets");
        assert!(
            last.less_than.is_infinite(),
            "{metric} ends with +Inf: {buckets:?}"
        );
        counts.insert(label(sample, "route"), last.count as u64);
    }
    for sample in samples(scrape, &format!("{metric}_count")) {
        let route = label(sample, "route");
        assert_eq!(
            Some(untyped(sample) as u64),
            counts.get(&route).copied(),
            "{metric}_count of {route} equals its +Inf bucket"
        );
    }
    for sample in samples(scrape, &format!("{metric}_sum")) {
        assert!(untyped(sample) > 0.0, "{metric}_sum positive: {sample:?}");
    }
    counts
}

#[test]
fn metrics_parse_and_agree_with_the_stats() {
    let upstream = mixed_upstream();
    let proxy = Proxy::to(&upstream);
    send_mixed(&proxy);
    let document = wait_for_mixed(proxy.addr());
    let text = metrics(proxy.addr());
    for (family, kind) in [
        ("confab_proxy_requests_total", "counter"),
        ("confab_proxy_request_duration_seconds", "histogram"),
        ("confab_api_requests_total", "counter"),
        ("confab_api_request_duration_seconds", "histogram"),
        ("confab_upstream_errors_total", "counter"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "/metrics declares {family} as a {kind}:\n{text}"
        );
    }
    let scrape = scrape(&text);

    // Proxied requests: by route, by status and in all, as /api/stats counts them.
    let proxy_stats = &document["proxy"];
    let by_route = counters_by(&scrape, "confab_proxy_requests_total", "route");
    let stats_routes: BTreeMap<String, u64> = routes(proxy_stats)
        .into_iter()
        .map(|name| {
            let requests = route_requests(proxy_stats, &name);
            (name, requests)
        })
        .collect();
    assert_eq!(by_route, stats_routes, "proxied requests by route");
    assert_eq!(
        counters_by(&scrape, "confab_proxy_requests_total", "status"),
        by_status(proxy_stats),
        "proxied requests by status"
    );
    assert_eq!(
        counters_by(&scrape, "confab_proxy_requests_total", "method"),
        BTreeMap::from([
            ("GET".to_owned(), 10),
            ("HEAD".to_owned(), 1),
            ("POST".to_owned(), 1)
        ]),
        "proxied requests by method"
    );
    assert_eq!(
        histogram_counts(&scrape, "confab_proxy_request_duration_seconds"),
        stats_routes,
        "latency observations by route"
    );
    let slow_sum = samples(&scrape, "confab_proxy_request_duration_seconds_sum")
        .find(|sample| label(sample, "route") == "/slow")
        .map(untyped)
        .expect("a duration sum for /slow");
    assert!(
        slow_sum >= SLOW_DELAY.as_secs_f64(),
        "/slow duration sum {slow_sum}"
    );

    // confab's own endpoints: the figures that no longer move.
    let api_by_route = counters_by(&scrape, "confab_api_requests_total", "route");
    assert_eq!(api_by_route.get("/healthz"), Some(&MIXED_HEALTHZ));
    assert_eq!(api_by_route.get("other"), Some(&1));
    for name in api_by_route.keys() {
        assert!(
            API_ROUTES.contains(&name.as_str()),
            "unexpected API route {name:?}"
        );
    }
    let healthz = samples(&scrape, "confab_api_requests_total")
        .find(|sample| label(sample, "route") == "/healthz")
        .expect("a /healthz counter");
    assert_eq!(
        (label(healthz, "method"), label(healthz, "status")),
        ("GET".to_owned(), "200".to_owned())
    );
    let api_latency = histogram_counts(&scrape, "confab_api_request_duration_seconds");
    assert_eq!(api_latency.get("/healthz"), Some(&MIXED_HEALTHZ));

    // Upstream errors, by kind, as /api/stats counts them (kinds never seen may be omitted).
    let mut errors: BTreeMap<String, u64> = UPSTREAM_ERROR_KINDS
        .iter()
        .map(|kind| (kind.to_string(), 0))
        .collect();
    for sample in samples(&scrape, "confab_upstream_errors_total") {
        assert_eq!(
            label_names(sample),
            names(&["kind"]),
            "upstream error labels"
        );
        let kind = label(sample, "kind");
        let slot = errors
            .get_mut(&kind)
            .unwrap_or_else(|| panic!("unknown upstream error kind {kind:?}"));
        *slot += counter(sample);
    }
    assert_eq!(errors, upstream_errors(&document), "upstream errors");
}

// === Reset ===

fn post_reset(addr: SocketAddr, headers: &[(&str, &str)]) -> support::Response {
    Client::connect(addr).exchange(&request("POST", "/api/stats/reset", headers, b""))
}

#[test]
fn reset_is_forbidden_without_a_configured_token() {
    let proxy = Proxy::with_mock();
    assert_problem(&post_reset(proxy.addr(), &[]), 403, "forbidden");
    let bearer = format!("Bearer {TOKEN}");
    assert_problem(
        &post_reset(proxy.addr(), &[("Authorization", &bearer)]),
        403,
        "forbidden",
    );
    let response = proxy.exchange(&get("/api/stats/reset"));
    assert_problem(&response, 405, "method-not-allowed");
    assert_eq!(response.header("allow").as_deref(), Some("POST"));
}

/// A server with the admin token [`TOKEN`] proxying to `upstream`.
fn proxy_with_token(upstream: &Upstream) -> Proxy {
    let mut config = config(Some(upstream.url()));
    config.admin_token = Some(TOKEN.to_owned());
    Proxy::start(config)
}

#[test]
fn reset_needs_the_right_bearer_token_and_clears_the_figures() {
    let upstream = Upstream::echo();
    let proxy = proxy_with_token(&upstream);
    let addr = proxy.addr();
    send_items(addr, 3, 2);
    let before = wait_for_stats(addr, "the traffic", |document| {
        proxied(document) >= 3 && api_requests(document, "/healthz") >= 2
    });

    for method in ["GET", "PUT", "DELETE"] {
        let response =
            Client::connect(addr).exchange(&request(method, "/api/stats/reset", &[], b""));
        assert_problem(&response, 405, "method-not-allowed");
        assert_eq!(
            response.header("allow").as_deref(),
            Some("POST"),
            "{method}"
        );
    }
    assert_problem(&post_reset(addr, &[]), 401, "unauthorized");
    assert_problem(
        &post_reset(addr, &[("Authorization", "Bearer not-the-token")]),
        403,
        "forbidden",
    );
    assert_problem(
        &post_reset(addr, &[("Authorization", &format!("Bearer {TOKEN}x"))]),
        403,
        "forbidden",
    );
    assert_eq!(proxied(&stats(addr)), 3, "refused resets change nothing");

    let bearer = format!("Bearer {TOKEN}");
    let response = post_reset(addr, &[("Authorization", &bearer)]);
    assert_eq!(response.status, 200, "{:?}", response.text());
    assert!(response
        .header("content-type")
        .is_some_and(|value| value.starts_with("application/json")));
    assert_eq!(response.json(), serde_json::json!({"status": "reset"}));

    let after = stats(addr);
    assert_eq!(
        proxied(&after),
        0,
        "proxied requests after the reset: {after:#}"
    );
    assert!(routes(&after["proxy"]).is_empty(), "no proxied routes left");
    assert_eq!(by_status(&after["proxy"]), BTreeMap::new());
    assert_eq!(
        api_requests(&after, "/healthz"),
        0,
        "/healthz after the reset"
    );
    assert!(
        after["proxy"]["latency_ms"]["p50"].is_null(),
        "no latency without requests"
    );
    assert!(
        after["proxy"]["success_rate"].is_null(),
        "no success rate without requests"
    );
    assert!(
        time(&after["since"]) > time(&before["since"])
            && time(&after["since"]) >= time(&before["now"]),
        "since moves to the reset: before {} (now {}), after {}",
        before["since"],
        before["now"],
        after["since"]
    );
    let (per_second, _, _, _) = series_sums(&after["series"]["per_second"], "per_second");
    let (per_minute, _, _, _) = series_sums(&after["series"]["per_minute"], "per_minute");
    assert_eq!((per_second, per_minute), (0, 0), "series after the reset");
    let scrape = scrape(&metrics(addr));
    let proxied_after: u64 = samples(&scrape, "confab_proxy_requests_total")
        .map(counter)
        .sum();
    assert_eq!(proxied_after, 0, "/metrics after the reset");

    // Counting goes on from zero.
    send_items(addr, 1, 0);
    let later = wait_for_stats(addr, "one request after the reset", |document| {
        proxied(document) >= 1
    });
    assert_eq!(proxied(&later), 1);
    assert_eq!(later["since"], after["since"]);
}

#[test]
fn unauthorized_reset_names_the_bearer_challenge() {
    // RFC 9110 §11.6.1: a 401 response must carry WWW-Authenticate.
    let upstream = Upstream::echo();
    let proxy = proxy_with_token(&upstream);
    let response = post_reset(proxy.addr(), &[]);
    assert_problem(&response, 401, "unauthorized");
    let challenge = response.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.to_ascii_lowercase().starts_with("bearer"),
        "401 without a Bearer challenge: WWW-Authenticate {challenge:?}"
    );
}

#[test]
fn reset_accepts_the_bearer_scheme_in_any_case() {
    // RFC 9110 §11.1: the authentication scheme is case-insensitive.
    let upstream = Upstream::echo();
    let proxy = proxy_with_token(&upstream);
    let response = post_reset(
        proxy.addr(),
        &[("Authorization", &format!("bearer {TOKEN}"))],
    );
    assert_eq!(response.status, 200, "{:?}", response.text());
}

// === Windows ===

/// A server with some counted traffic; returns it and a document showing the traffic.
fn proxy_with_traffic(upstream: &Upstream) -> (Proxy, Value) {
    let proxy = Proxy::to(upstream);
    send_items(proxy.addr(), 2, 1);
    let document = wait_for_stats(proxy.addr(), "the traffic", |document| {
        proxied(document) >= 2 && api_requests(document, "/healthz") >= 1
    });
    (proxy, document)
}

/// Asserts a windowed document counts nothing, then that the server still answers.
fn assert_empty_window(addr: SocketAddr, query: &str) {
    let response = fetch(addr, &format!("/api/stats?{query}"));
    assert_eq!(response.status, 200, "?{query}: {:?}", response.text());
    let document = response.json();
    assert_eq!(proxied(&document), 0, "?{query}: {document:#}");
    assert_eq!(
        count(&document["api"]["requests"]),
        0,
        "?{query} API requests"
    );
    assert!(routes(&document["proxy"]).is_empty(), "?{query} routes");
    for series in ["per_second", "per_minute"] {
        assert_eq!(
            document["series"][series].as_array().map(Vec::len),
            Some(0),
            "?{query} {series}"
        );
    }
    // The statistics still answer afterwards.
    let next = fetch(addr, "/api/stats");
    assert_eq!(
        next.status,
        200,
        "/api/stats after ?{query}: {:?}",
        next.text()
    );
    assert!(proxied(&next.json()) >= 2, "figures kept after ?{query}");
}

#[test]
fn window_in_the_future_is_empty() {
    let upstream = Upstream::echo();
    let (proxy, _) = proxy_with_traffic(&upstream);
    let (from, to) = (rfc3339(unix_now() + 3600), rfc3339(unix_now() + 7200));
    let query = format!("from={from}&to={to}");
    assert_empty_window(proxy.addr(), &query);
    let document = stats_with(proxy.addr(), &query);
    assert_eq!(document["window"]["from"], from.as_str(), "window.from");
    assert_eq!(document["window"]["to"], to.as_str(), "window.to");
}

#[test]
fn window_starting_in_the_future_without_an_end_is_empty() {
    let upstream = Upstream::echo();
    let (proxy, _) = proxy_with_traffic(&upstream);
    assert_empty_window(
        proxy.addr(),
        &format!("from={}", rfc3339(unix_now() + 3600)),
    );
}

#[test]
fn window_ending_before_the_history_is_empty() {
    let upstream = Upstream::echo();
    let (proxy, _) = proxy_with_traffic(&upstream);
    assert_empty_window(proxy.addr(), "to=2001-01-01T00:00:00Z");
}

#[test]
fn window_covering_everything_matches_the_totals() {
    let upstream = Upstream::echo();
    let (proxy, before) = proxy_with_traffic(&upstream);
    let past = rfc3339(time(&before["since"]) - 3600);
    let future = rfc3339(unix_now() + 3600);
    let document = stats_with(proxy.addr(), &format!("from={past}&to={future}"));
    assert_eq!(proxied(&document), 2, "{document:#}");
    assert_eq!(api_requests(&document, "/healthz"), 1);
    assert_eq!(
        document["window"]["from"], before["since"],
        "from is clamped to since"
    );
    let document = stats_with(proxy.addr(), &format!("from={past}"));
    assert_eq!(proxied(&document), 2, "{document:#}");
}

#[test]
fn bad_window_parameters_are_named() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    for (query, parameter) in [
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("from=2026-01-01T00:00:00Z&to=soon", "to"),
        ("from=", "from"),
        ("from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "from"),
    ] {
        let response = fetch(proxy.addr(), &format!("/api/stats?{query}"));
        let problem = assert_problem(&response, 400, "bad-request");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(parameter),
            "?{query}: the detail should name {parameter:?}: {detail:?}"
        );
    }
    assert_eq!(
        fetch(proxy.addr(), "/api/stats?other=1").status,
        200,
        "unknown parameters are ignored"
    );
}

#[test]
fn window_accepts_rfc3339_offsets() {
    // RFC 3339 times may carry a numeric offset: 00:00+02:00 is 22:00Z the day before.
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let document = stats_with(
        proxy.addr(),
        "from=2001-01-02T00:00:00%2B02:00&to=2099-01-01T00:00:00-05:00",
    );
    assert_eq!(
        document["window"]["to"], "2099-01-01T05:00:00Z",
        "{document:#}"
    );
}

// === Persistence through the real binary ===

/// Starts `confab serve` with its state in `state_dir`, proxying to `upstream`, flushing
/// statistics every `flush`.
fn serve_binary(state_dir: &Path, upstream: &Upstream, flush: &str) -> Served {
    let upstream_url = upstream.url();
    Served::start(
        state_dir,
        &["--stats-flush-interval", flush, "--upstream", &upstream_url],
    )
}

/// Proxied requests and health checks the persistence tests send before stopping confab.
const BEFORE_STOP: (usize, usize) = (5, 2);

#[test]
fn figures_survive_sigkill_from_the_last_flush() {
    let upstream = Upstream::echo();
    let state = tempfile::tempdir().expect("state dir");
    let first = serve_binary(state.path(), &upstream, "200ms");
    let (items, healthz) = BEFORE_STOP;
    send_items(first.addr, items, healthz);
    let seen = wait_for_stats(first.addr, "the traffic", |document| {
        proxied(document) >= items as u64 && api_requests(document, "/healthz") >= healthz as u64
    });
    assert_eq!(proxied(&seen), items as u64);
    // A flush that ended two seconds after the traffic showed started after it showed.
    let seen_at = time(&seen["now"]);
    let flushed = wait_for_stats(first.addr, "a flush after the traffic", |document| {
        document["store"]["last_flush"]
            .as_str()
            .is_some_and(|flushed| parse_rfc3339(flushed) >= seen_at + 2)
    });
    assert_eq!(flushed["store"]["ok"], true, "store: {}", flushed["store"]);
    first.kill();

    let second = serve_binary(state.path(), &upstream, "200ms");
    let restarted = stats(second.addr);
    assert_eq!(restarted["since"], seen["since"], "since is kept");
    assert_eq!(proxied(&restarted), items as u64, "proxied: {restarted:#}");
    assert_eq!(api_requests(&restarted, "/healthz"), healthz as u64);
    assert_eq!(route_requests(&restarted["proxy"], "/items"), items as u64);
    assert_eq!(
        by_status(&restarted["proxy"]),
        BTreeMap::from([("200".to_owned(), items as u64)])
    );
    assert!(
        count(&restarted["api"]["requests"]) >= count(&seen["api"]["requests"]),
        "API requests continue from the flush: {} < {}",
        restarted["api"]["requests"],
        seen["api"]["requests"]
    );
    let (per_minute, _, _, _) = series_sums(&restarted["series"]["per_minute"], "per_minute");
    assert_eq!(per_minute, items as u64, "per-minute history kept");
    assert_latency(&restarted["proxy"]["latency_ms"], "restarted");
    let scrape = scrape(&metrics(second.addr));
    let counted: u64 = samples(&scrape, "confab_proxy_requests_total")
        .map(counter)
        .sum();
    assert_eq!(
        counted, items as u64,
        "/metrics counters continue after a restart"
    );

    // Counting continues on top of the stored totals.
    send_items(second.addr, 3, 0);
    let later = wait_for_stats(second.addr, "the new traffic", |document| {
        proxied(document) >= items as u64 + 3
    });
    assert_eq!(proxied(&later), items as u64 + 3);
    assert_eq!(later["since"], seen["since"]);
    second.terminate();
}

#[test]
fn sigterm_flushes_everything() {
    let upstream = Upstream::echo();
    let state = tempfile::tempdir().expect("state dir");
    // No periodic flush during the test: only the shutdown can write the figures.
    let first = serve_binary(state.path(), &upstream, "1h");
    let since = stats(first.addr)["since"].clone();
    let (items, healthz) = BEFORE_STOP;
    send_items(first.addr, items, healthz);
    first.terminate();

    let second = serve_binary(state.path(), &upstream, "1h");
    let restarted = stats(second.addr);
    assert_eq!(restarted["since"], since, "since is kept");
    assert_eq!(proxied(&restarted), items as u64, "proxied: {restarted:#}");
    assert_eq!(api_requests(&restarted, "/healthz"), healthz as u64);
    assert_eq!(
        api_requests(&restarted, "/api/stats"),
        1,
        "the one stats request"
    );
    assert_eq!(route_requests(&restarted["proxy"], "/items"), items as u64);
    let (per_minute, _, _, _) = series_sums(&restarted["series"]["per_minute"], "per_minute");
    assert_eq!(per_minute, items as u64, "per-minute history kept");
    second.terminate();
}

// === A failing store ===

#[test]
fn a_failing_store_does_not_stop_the_serving() {
    let upstream = Upstream::echo();
    let blocker = tempfile::NamedTempFile::new().expect("a regular file");
    let mut config = config(Some(upstream.url()));
    // A folder cannot be created below a regular file.
    config.state_dir = blocker.path().join("state");
    config.stats_flush_interval = Duration::from_millis(200);
    let proxy = Proxy::start_keeping_state_dir(config);
    send_items(proxy.addr(), 3, 1);
    let document = wait_for_stats(proxy.addr(), "the traffic, in memory", |document| {
        proxied(document) >= 3 && api_requests(document, "/healthz") >= 1
    });
    assert_eq!(proxied(&document), 3);
    let store = &document["store"];
    assert_eq!(store["ok"], false, "store: {store}");
    assert!(
        store["error"]
            .as_str()
            .is_some_and(|error| !error.is_empty()),
        "store error: {store}"
    );
    assert!(
        store["last_flush"].is_null(),
        "nothing was flushed: {store}"
    );
    // Still serving after flushes were attempted.
    let document = wait_for_stats(proxy.addr(), "a later second", |later| {
        time(&later["now"]) > time(&document["now"])
    });
    assert_eq!(document["store"]["ok"], false);
    send_items(proxy.addr(), 1, 0);
}

// === The dashboard ===

#[test]
fn dashboard_is_a_self_contained_page() {
    let proxy = Proxy::with_mock();
    let response = proxy.exchange(&get("/dashboard"));
    assert_eq!(response.status, 200);
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/html"),
        "content type {content_type:?}"
    );
    let page = response.text();
    assert!(page.to_ascii_lowercase().contains("<html"), "an HTML page");
    let lower = page.to_ascii_lowercase();
    for external in ["http://", "https://", "src=\"//", "href=\"//", "url(//"] {
        assert!(
            !lower.contains(external),
            "the dashboard references {external:?}"
        );
    }
    assert!(
        page.contains("/api/stats"),
        "the dashboard reads /api/stats"
    );
}

// === The test helpers themselves ===

#[test]
fn rfc3339_helpers_round_trip() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    for seconds in [0, 951_782_400, 1_700_000_000, 4_102_444_799] {
        assert_eq!(parse_rfc3339(&rfc3339(seconds)), seconds);
    }
}
