//! Unit tests of the statistics pieces: route keys, counters, the store, the aggregator.

use std::sync::Arc;
use std::time::Duration;

use super::aggregate::Aggregator;
use super::recorder::proxy_route_key;
use super::store::{Figures, FlushBatch, Store};
use super::*;
use crate::serial::{SerialContext, SerialQueue};

fn counters(status: u16, micros: &[u64]) -> RouteCounters {
    let mut counters = RouteCounters::default();
    for &latency in micros {
        counters.record(method_index(b"GET"), status, latency, 10, 100);
    }
    counters
}

#[test]
fn proxy_routes_are_first_segments() {
    assert_eq!(proxy_route_key(b"/categories/MLA1"), b"/categories");
    assert_eq!(proxy_route_key(b"/categories"), b"/categories");
    assert_eq!(proxy_route_key(b"/"), b"/");
    let long = format!("/{}", "x".repeat(MAX_ROUTE_KEY_BYTES));
    assert_eq!(proxy_route_key(long.as_bytes()), OTHER_ROUTE.as_bytes());
}

#[test]
fn counters_merge_and_count_failures() {
    let mut total = counters(200, &[100, 200]);
    total.merge(&counters(502, &[5_000]));
    assert_eq!(total.requests(), 3);
    assert_eq!(total.failures(), 1);
    assert_eq!(total.bytes_out, 300);
    assert_eq!(total.latency.len(), 3);
}

#[test]
fn methods_have_stable_indexes() {
    assert_eq!(METHODS[method_index(b"GET") as usize], "GET");
    assert_eq!(METHODS[method_index(b"BREW") as usize], "OTHER");
}

#[test]
fn store_round_trips_totals_and_minutes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(dir.path()).expect("open");
    let mut figures = Figures::default();
    figures.add(
        Scope::Proxy,
        "/categories",
        &counters(200, &[150, 250, 900]),
    );
    figures.add(Scope::Api, "/healthz", &counters(200, &[20]));
    figures.upstream_errors[2] = 4;
    let minute = 1_800_000_000; // a minute boundary: 30_000_000 × 60
    let batch = FlushBatch {
        since: 1_799_999_000,
        totals: figures.clone(),
        minutes: vec![(minute, figures.clone(), render::summarize(&figures))],
        retain_from: 0,
    };
    store.write(&batch).expect("write");
    store
        .write(&batch)
        .expect("a repeated flush replaces, never adds");

    let stored = store.load(0).expect("load");
    assert_eq!(stored.since, Some(1_799_999_000));
    let proxy = &stored.totals.routes[&(Scope::Proxy, "/categories".to_owned())];
    assert_eq!(proxy.requests(), 3);
    assert_eq!(proxy.latency.len(), 3);
    assert_eq!(stored.totals.upstream_errors[2], 4);
    assert_eq!(stored.summaries[&minute].proxy_requests, 3);
    let window = store.window(minute, minute, &[]).expect("window");
    assert_eq!(window.routes.len(), 2);
    store.clear(1_800_000_100).expect("clear");
    assert!(store.load(0).expect("load").totals.routes.is_empty());
}

fn aggregator(dir: Option<&std::path::Path>) -> (Aggregator, Arc<SerialQueue>) {
    let serial = Arc::new(SerialQueue::start(SerialContext::default()).expect("serial"));
    let config = StatsConfig {
        state_dir: dir.map(|dir| dir.to_path_buf()),
        flush_interval: Duration::from_secs(3600),
        retention: DEFAULT_RETENTION,
    };
    (Aggregator::open(config, Arc::clone(&serial)), serial)
}

fn delta(route: &str, status: u16, count: usize) -> Delta {
    Delta {
        second: unix_now(),
        routes: vec![(
            Scope::Proxy,
            route.to_owned(),
            counters(status, &vec![500; count]),
        )],
        upstream_errors: [0, 0, 1, 0, 0, 0, 0, 0],
    }
}

fn ask_json(aggregator: &mut Aggregator) -> serde_json::Value {
    let (reply, answer) = futures_channel::oneshot::channel();
    aggregator.answer(Query::Json {
        from: None,
        to: None,
        reply,
    });
    let text = futures_executor_block_on(answer);
    serde_json::from_str(&text).expect("JSON")
}

fn futures_executor_block_on<T>(mut receiver: futures_channel::oneshot::Receiver<T>) -> T {
    // The aggregator answers synchronously in `answer`, so the value is already there.
    receiver
        .try_recv()
        .expect("channel open")
        .expect("answered")
}

#[test]
fn aggregator_merges_workers_and_renders_the_document() {
    let (mut aggregator, serial) = aggregator(None);
    aggregator.merge(delta("/categories", 200, 8));
    aggregator.merge(delta("/categories", 502, 2));
    let document = ask_json(&mut aggregator);
    assert_eq!(document["proxy"]["requests"], 10);
    assert_eq!(document["proxy"]["success_rate"], 0.8);
    assert_eq!(document["proxy"]["by_status"]["200"], 8);
    assert_eq!(document["proxy"]["upstream_errors"]["reset"], 2);
    assert_eq!(document["proxy"]["by_route"][0]["route"], "/categories");
    assert!(
        document["proxy"]["latency_ms"]["p99"]
            .as_f64()
            .expect("p99")
            > 0.4
    );
    assert_eq!(document["series"]["per_second"][0]["proxy_requests"], 10);
    serial.shutdown();
}

#[test]
fn prometheus_text_has_the_families() {
    let (mut aggregator, serial) = aggregator(None);
    aggregator.merge(delta("/categories", 200, 3));
    let (reply, answer) = futures_channel::oneshot::channel();
    aggregator.answer(Query::Prometheus { reply });
    let text = futures_executor_block_on(answer);
    assert!(text.contains(
        "confab_proxy_requests_total{route=\"/categories\",method=\"GET\",status=\"200\"} 3"
    ));
    assert!(text.contains("confab_proxy_request_duration_seconds_bucket{route=\"/categories\""));
    assert!(text.contains("confab_upstream_errors_total{kind=\"reset\"} 1"));
    serial.shutdown();
}

#[test]
fn totals_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut first, serial) = aggregator(Some(dir.path()));
    first.merge(delta("/categories", 200, 5));
    first.flush_now(true);
    serial.shutdown();
    let (mut second, serial) = aggregator(Some(dir.path()));
    let document = ask_json(&mut second);
    assert_eq!(document["proxy"]["requests"], 5);
    assert_eq!(document["store"]["ok"], true);
    serial.shutdown();
}
