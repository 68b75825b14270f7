//! How much faster an analysis job runs split over every core than on one thread.
//!
//! Each analysis (`tag-stats`, `keyword-stats`, `transcript-summary`) scans a generated dataset
//! of `CONFAB_BENCH_JOB_ROWS` conversations (default 1,000,000) with 1 thread and with every
//! available core, through the same runner the job service uses. The dataset is generated once
//! into the system temp folder (`confab-bench-<rows>`, shared with the conversations
//! benchmark) and reused by later runs.

use std::path::PathBuf;
use std::time::Duration;

use confab::conversations::datagen::{self, DatagenOptions};
use confab::conversations::{
    CompanyFilter, ConversationIndex, KeywordStats, RowAnalysis, TagStats, TranscriptSummary,
};
use confab::jobs::runner::run_analysis;
use confab::jobs::JobControl;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

/// Conversations in the benchmark dataset unless `CONFAB_BENCH_JOB_ROWS` says otherwise.
const DEFAULT_ROWS: u64 = 1_000_000;
/// Seed of the benchmark dataset (the conversations benchmark uses the same).
const BENCH_SEED: u64 = 7;
/// File marking a benchmark dataset as completely generated.
const COMPLETE_MARKER: &str = "_BENCH_COMPLETE";

fn dataset() -> (u64, PathBuf) {
    let rows = std::env::var("CONFAB_BENCH_JOB_ROWS")
        .ok()
        .and_then(|rows| rows.parse().ok())
        .unwrap_or(DEFAULT_ROWS);
    let out = std::env::temp_dir().join(format!("confab-bench-{rows}"));
    if !out.join(COMPLETE_MARKER).exists() {
        let _ = std::fs::remove_dir_all(&out);
        let options = DatagenOptions {
            out: out.clone(),
            conversations: rows,
            seed: BENCH_SEED,
        };
        datagen::generate(&options).expect("generate the benchmark dataset");
        std::fs::write(out.join(COMPLETE_MARKER), b"").expect("write the marker");
    }
    (rows, out)
}

fn bench_one<A: RowAnalysis>(
    c: &mut Criterion,
    name: &str,
    index: &ConversationIndex,
    analysis: &A,
    rows: u64,
) {
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    let mut group = c.benchmark_group(format!("{name}_over_{rows}_conversations"));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    for threads in [1, cores] {
        group.bench_with_input(
            BenchmarkId::new("threads", threads),
            &threads,
            |b, &threads| {
                b.iter(|| {
                    let control = JobControl::default();
                    run_analysis(index, analysis, threads, &control).expect("not interrupted")
                })
            },
        );
    }
    group.finish();
}

fn analyses(c: &mut Criterion) {
    let (rows, path) = dataset();
    let index = ConversationIndex::load(&path).expect("load the benchmark dataset");
    let all = || CompanyFilter::resolve(&index, None);
    bench_one(c, "tag_stats", &index, &TagStats { filter: all() }, rows);
    let keywords = KeywordStats {
        words: vec!["price".into(), "growth".into(), "the".into()],
        filter: all(),
    };
    bench_one(c, "keyword_stats", &index, &keywords, rows);
    bench_one(
        c,
        "transcript_summary",
        &index,
        &TranscriptSummary { filter: all() },
        rows,
    );
}

criterion_group!(benches, analyses);
criterion_main!(benches);
