//! Query latency and index build time on generated datasets.
//!
//! Sizes come from `CONFAB_BENCH_SIZES` (comma-separated conversation counts,
//! default `1000000,10000000`). Datasets are generated once into the system temp
//! folder (`confab-bench-<size>`) and reused by later runs. Besides criterion's
//! figures it prints generation throughput, build time, index memory, and the
//! two-thread throughput of per-thread replicas versus one shared `Arc`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab::conversations::datagen::{self, DatagenOptions};
use confab::conversations::{ConversationIndex, ConversationQuery};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

/// Sizes benchmarked when `CONFAB_BENCH_SIZES` is unset.
const DEFAULT_SIZES: &str = "1000000,10000000";
/// Seed of the benchmark datasets.
const BENCH_SEED: u64 = 7;
/// Largest dataset whose build time criterion samples repeatedly (bigger ones are timed once).
const MAX_SAMPLED_BUILD: u64 = 1_000_000;
/// Queries each thread runs in the replica-versus-Arc throughput comparison.
const THROUGHPUT_QUERIES: usize = 200_000;
/// File marking a benchmark dataset as completely generated.
const COMPLETE_MARKER: &str = "_BENCH_COMPLETE";

fn sizes() -> Vec<u64> {
    let raw = std::env::var("CONFAB_BENCH_SIZES").unwrap_or_else(|_| DEFAULT_SIZES.to_string());
    raw.split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn dataset(conversations: u64) -> PathBuf {
    let out = std::env::temp_dir().join(format!("confab-bench-{conversations}"));
    if out.join(COMPLETE_MARKER).exists() {
        return out;
    }
    let _ = std::fs::remove_dir_all(&out);
    let options = DatagenOptions {
        out: out.clone(),
        conversations,
        seed: BENCH_SEED,
    };
    let summary = datagen::generate(&options).expect("generate benchmark dataset");
    let seconds = summary.elapsed.as_secs_f64();
    println!(
        "datagen {conversations}: {seconds:.2} s, {:.0} conversations/s, {:.1} MiB on disk",
        conversations as f64 / seconds,
        summary.bytes as f64 / (1 << 20) as f64
    );
    std::fs::write(out.join(COMPLETE_MARKER), b"").expect("write marker");
    out
}

fn load(path: &Path) -> ConversationIndex {
    let index = ConversationIndex::load(path).expect("load benchmark dataset");
    let stats = index.stats();
    println!(
        "build {}: {:.2} s; heap {:.1} MiB ({:.1} B/conversation: hot {:.1}, cold {:.1}); {} companies, {} tags",
        stats.rows,
        stats.build_time.as_secs_f64(),
        stats.heap_bytes as f64 / (1 << 20) as f64,
        stats.heap_bytes as f64 / stats.rows as f64,
        stats.hot_heap_bytes as f64 / stats.rows as f64,
        stats.cold_heap_bytes as f64 / stats.rows as f64,
        stats.companies,
        stats.tags
    );
    index
}

fn queries(index: &ConversationIndex) -> Vec<(&'static str, ConversationQuery)> {
    let parse = |raw: &str| ConversationQuery::parse(Some(raw)).expect("bench query");
    let amazon = index.query(&parse("company=amazon")).total;
    let deep_page = format!("company=amazon&page={}&per_page=50", (amazon / 50).max(1));
    let example = "company=microsoft&tags=competition,orientation";
    let example_total = index.query(&parse(example)).total;
    let example_deep = format!("{example}&page={}&per_page=50", (example_total / 50).max(1));
    vec![
        ("company_two_tags", parse(example)),
        ("company_two_tags_deep_page", parse(&example_deep)),
        ("two_tags", parse("tags=competition,orientation")),
        ("one_tag", parse("tags=growth")),
        ("no_filter", parse("")),
        ("deep_page", parse(&deep_page)),
        (
            "company_two_tags_all",
            parse("company=microsoft&tags=competition,orientation&match=all"),
        ),
    ]
}

fn bench_queries(c: &mut Criterion, size: u64, index: &ConversationIndex) {
    let mut group = c.benchmark_group(format!("query/{size}"));
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut out = Vec::with_capacity(64 * 1024);
    for (name, query) in queries(index) {
        group.bench_function(BenchmarkId::new("replica", name), |b| {
            b.iter(|| {
                out.clear();
                index.write_query_json(&query, &mut out);
                out.len()
            })
        });
    }
    let shared = Arc::new(index.clone());
    let (_, query) = &queries(index)[0];
    group.bench_function(
        BenchmarkId::new("arc_clone_per_query", "company_two_tags"),
        |b| {
            b.iter(|| {
                let handle = Arc::clone(&shared);
                out.clear();
                handle.write_query_json(query, &mut out);
                out.len()
            })
        },
    );
    group.finish();
}

/// Queries per second over two threads, each running `THROUGHPUT_QUERIES` queries.
fn two_thread_rate(indexes: [&ConversationIndex; 2], query: &ConversationQuery) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for index in indexes {
            scope.spawn(move || {
                let mut out = Vec::with_capacity(16 * 1024);
                for _ in 0..THROUGHPUT_QUERIES {
                    out.clear();
                    index.write_query_json(query, &mut out);
                }
            });
        }
    });
    (2 * THROUGHPUT_QUERIES) as f64 / started.elapsed().as_secs_f64()
}

fn compare_replica_and_arc(size: u64, index: &ConversationIndex) {
    let (_, query) = &queries(index)[0];
    let shared = Arc::new(index.clone());
    let replica = index.clone();
    let arc_rate = two_thread_rate([&shared, &shared], query);
    let replica_rate = two_thread_rate([index, &replica], query);
    println!("two threads on {size}: shared Arc {arc_rate:.0} q/s, per-thread replicas {replica_rate:.0} q/s");
}

fn bench_build(c: &mut Criterion, size: u64, path: &Path) {
    if size > MAX_SAMPLED_BUILD {
        return;
    }
    let mut group = c.benchmark_group("build");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(10));
    group.bench_function(BenchmarkId::from_parameter(size), |b| {
        b.iter(|| ConversationIndex::load(path).expect("load").len())
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
    for size in sizes() {
        let path = dataset(size);
        let index = load(&path);
        bench_queries(c, size, &index);
        compare_replica_and_arc(size, &index);
        drop(index);
        bench_build(c, size, &path);
    }
}

criterion_group!(conversation_benches, benches);
criterion_main!(conversation_benches);
