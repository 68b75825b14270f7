//! The jobs API through HTTP against the real server: authorization, validation at submission,
//! the three parallel analyses checked against figures computed here from the conversations
//! API, ingest (whole snapshots, path escapes, broken files, order, overlap with a running
//! one), cancellation of analyses and ingests, full queues, and recovery after kill -9 of the
//! real binary.
//!
//! Tests that need the serial queue busy for as long as they like hold it deterministically:
//! either with a task of their own on the server's queue ([`SerialHold`]), or with an ingest
//! of a named pipe, whose load waits in `open` until the test opens the pipe's other end
//! ([`Pipe`]; this also works in the real binary).

mod support;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use confab::config::ServeConfig;
use confab::conversations::datagen::{generate, DatagenOptions};
use confab::jobs::journal::{Journal, StoredJob};
use confab::jobs::{
    JobStatus, MAX_QUEUED_PARALLEL_JOBS, MAX_QUEUED_SERIAL_JOBS, RETRY_AFTER_SECONDS,
};
use confab::serial::{SerialQueue, SERIAL_QUEUE_CAPACITY};
use serde_json::{json, Value};

use support::process::Served;
use support::{assert_problem, config, get, request, Client, Proxy, Response};

/// The admin token of these tests.
const TOKEN: &str = "jobs-test-token";
/// Longest wait for a job to finish.
const JOB_DEADLINE: Duration = Duration::from_secs(120);
/// Pause between two polls of a job's status.
const POLL_PAUSE: Duration = Duration::from_millis(20);

fn bearer() -> (&'static str, String) {
    ("authorization", format!("Bearer {TOKEN}"))
}

/// The configuration of these tests: the admin token, serving `data` (the shared dataset when
/// `None`) with `root` as the data root.
fn jobs_config(data: Option<PathBuf>, root: Option<&Path>, job_threads: usize) -> ServeConfig {
    let mut config = config(None);
    config.admin_token = Some(TOKEN.into());
    if data.is_some() {
        config.data = data;
    }
    config.data_root = root.map(Path::to_path_buf);
    config.job_threads = job_threads;
    config
}

/// Starts confab with [`jobs_config`], its state in a fresh temporary folder.
fn serve(data: Option<PathBuf>, root: Option<&Path>, job_threads: usize) -> Proxy {
    Proxy::start(jobs_config(data, root, job_threads))
}

/// Starts confab serving `data` under `root`, its state in `state` (kept for a restart or a
/// look at the journal). Requests are not recorded, so no statistics flush joins the serial
/// queue: what waits on it is only what the test put there.
fn serve_in(state: &Path, data: PathBuf, root: &Path) -> Proxy {
    let mut config = jobs_config(Some(data), Some(root), 2);
    config.state_dir = state.to_path_buf();
    config.record_stats = false;
    Proxy::start_keeping_state_dir(config)
}

/// Sends a job submission without reading the answer (which comes once the serial queue
/// has journaled the job); read it with [`Client::response`].
fn send_job(addr: std::net::SocketAddr, body: &Value) -> Client {
    let (name, value) = bearer();
    let body = body.to_string();
    let headers = [(name, value.as_str()), ("content-type", "application/json")];
    let mut client = Client::connect(addr);
    client.send(&request("POST", "/api/jobs", &headers, body.as_bytes()));
    client
}

fn post_job(addr: std::net::SocketAddr, body: &Value) -> Response {
    send_job(addr, body).response()
}

/// The id of a job accepted with `response`, asserting the 202 of a queued `kind` job.
fn accepted(response: &Response, kind: &str) -> u64 {
    assert_eq!(response.status, 202, "{kind}: {}", response.text());
    let job = response.json();
    assert_eq!(job["status"], "queued", "{job}");
    assert_eq!(job["kind"], kind);
    job["id"].as_u64().expect("numeric id")
}

/// Submits a job and returns its id, asserting the 202.
fn submit(addr: std::net::SocketAddr, body: Value) -> u64 {
    let response = post_job(addr, &body);
    accepted(&response, body["kind"].as_str().expect("a kind"))
}

fn job(addr: std::net::SocketAddr, id: u64) -> Value {
    let response = Client::connect(addr).exchange(&get(&format!("/api/jobs/{id}")));
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()
}

/// Polls job `id` until `done` holds.
fn wait_until(addr: std::net::SocketAddr, id: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + JOB_DEADLINE;
    loop {
        let job = job(addr, id);
        if done(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} stuck: {job}");
        thread::sleep(POLL_PAUSE);
    }
}

fn finished(job: &Value) -> bool {
    matches!(
        job["status"].as_str(),
        Some("succeeded" | "failed" | "cancelled")
    )
}

fn wait_finished(addr: std::net::SocketAddr, id: u64) -> Value {
    wait_until(addr, id, finished)
}

fn succeeded(addr: std::net::SocketAddr, id: u64) -> Value {
    let job = wait_finished(addr, id);
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["progress"], 1.0);
    job
}

fn generate_dataset(out: &Path, conversations: u64, seed: u64) {
    generate(&DatagenOptions {
        out: out.to_path_buf(),
        conversations,
        seed,
    })
    .expect("generate a dataset");
}

fn total(addr: std::net::SocketAddr, query: &str) -> u64 {
    let response = Client::connect(addr).exchange(&get(&format!("/api/conversations{query}")));
    assert_eq!(response.status, 200, "{query}: {}", response.text());
    response.json()["total"].as_u64().expect("total")
}

fn list(addr: std::net::SocketAddr, query: &str) -> Value {
    let response = Client::connect(addr).exchange(&get(&format!("/api/jobs{query}")));
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()
}

/// Tasks waiting on the serial queue behind the one running, as the job listing reports them.
fn serial_waiting(addr: std::net::SocketAddr) -> u64 {
    list(addr, "?per_page=1")["serial_queue"]["waiting"]
        .as_u64()
        .expect("a count of waiting tasks")
}

/// Polls the job listing until the serial queue's waiting count satisfies `done`.
fn wait_serial_waiting(addr: std::net::SocketAddr, done: impl Fn(u64) -> bool) -> u64 {
    let deadline = Instant::now() + JOB_DEADLINE;
    loop {
        let waiting = serial_waiting(addr);
        if done(waiting) {
            return waiting;
        }
        assert!(
            Instant::now() < deadline,
            "serial queue stuck at {waiting} waiting"
        );
        thread::sleep(POLL_PAUSE);
    }
}

/// The job `id` as the journal in `state` holds it, read through a connection of its own.
fn journaled(state: &Path, id: u64) -> StoredJob {
    let journal = Journal::open(state).expect("open the journal");
    let jobs = journal.jobs().expect("read the journal");
    jobs.into_iter()
        .find(|job| job.id == id)
        .unwrap_or_else(|| panic!("job {id} is not in the journal"))
}

fn journaled_datasets(state: &Path) -> Vec<PathBuf> {
    let journal = Journal::open(state).expect("open the journal");
    journal.datasets().expect("read the journal's datasets")
}

/// A task of the test holding the serial queue's thread: while it runs, no other serial task
/// does (no submission is admitted, no job changes state). Dropping it releases the thread.
struct SerialHold {
    started: mpsc::Receiver<()>,
    _release: mpsc::Sender<()>,
}

impl SerialHold {
    /// Queues the holding task behind whatever waits on `queue` now.
    fn queue(queue: &SerialQueue) -> SerialHold {
        let (started_tx, started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        queue
            .submit(move |_| {
                let _ = started_tx.send(());
                // Returns once the hold (and with it the sender) is dropped.
                let _ = released.recv();
            })
            .expect("the holding task is queued");
        SerialHold {
            started,
            _release: release,
        }
    }

    /// Queues the holding task and returns once it runs.
    fn start(queue: &SerialQueue) -> SerialHold {
        let hold = SerialHold::queue(queue);
        hold.wait_started();
        hold
    }

    fn wait_started(&self) {
        self.started
            .recv_timeout(JOB_DEADLINE)
            .expect("the holding task runs");
    }

    /// Lets the serial queue go on.
    fn release(self) {}
}

/// A named pipe posing as a Parquet file. Loading it waits in `open` until a writer opens the
/// pipe, so an ingest of it stays running, and holds the serial queue's thread, until the
/// test calls [`Pipe::release`]. The writer is then kept open, so a load that reaches the
/// pipe later does not wait either; it finds an empty file, which is not Parquet.
struct Pipe {
    path: PathBuf,
    writer: Option<File>,
}

impl Pipe {
    fn create(path: PathBuf) -> Pipe {
        let status = Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("run mkfifo");
        assert!(status.success(), "mkfifo {}", path.display());
        Pipe { path, writer: None }
    }

    /// Opens the writing end (for reading too, so the open itself never waits).
    fn release(&mut self) {
        if self.writer.is_none() {
            let writer = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.path)
                .expect("open the pipe");
            self.writer = Some(writer);
        }
    }
}

impl Drop for Pipe {
    /// A test that fails while an ingest waits on the pipe must not hang the server's
    /// shutdown: the writer is opened and left open until the test process exits.
    fn drop(&mut self) {
        if self.writer.is_none() {
            if let Ok(writer) = OpenOptions::new().read(true).write(true).open(&self.path) {
                std::mem::forget(writer);
            }
        }
    }
}

// === Authorization and validation ===

#[test]
fn mutating_calls_need_the_admin_token_and_reading_does_not() {
    let proxy = serve(None, None, 2);
    let body = json!({"kind": "tag-stats"}).to_string();
    let post = |headers: &[(&str, &str)]| {
        proxy.exchange(&request("POST", "/api/jobs", headers, body.as_bytes()))
    };
    let missing = post(&[]);
    assert_problem(&missing, 401, "unauthorized");
    assert!(missing.header("www-authenticate").is_some());
    assert_problem(&post(&[("authorization", "Bearer nope")]), 403, "forbidden");
    let id = submit(proxy.addr(), json!({"kind": "tag-stats"}));
    succeeded(proxy.addr(), id);
    let delete = |headers: &[(&str, &str)]| {
        proxy.exchange(&request("DELETE", &format!("/api/jobs/{id}"), headers, b""))
    };
    assert_problem(&delete(&[]), 401, "unauthorized");
    assert_problem(
        &delete(&[("authorization", "Bearer nope")]),
        403,
        "forbidden",
    );
    let (name, value) = bearer();
    assert_problem(&delete(&[(name, &value)]), 409, "conflict");
    assert_eq!(list(proxy.addr(), "")["total"], 1);

    let mut open = config(None);
    open.admin_token = None;
    let without_token = Proxy::start(open);
    let refused = without_token.exchange(&request(
        "POST",
        "/api/jobs",
        &[(name, &value)],
        body.as_bytes(),
    ));
    assert_problem(&refused, 403, "forbidden");
}

#[test]
fn invalid_submissions_are_refused_and_nothing_is_queued() {
    let root = tempfile::tempdir().expect("root");
    let proxy = serve(None, Some(root.path()), 2);
    let cases = [
        json!({"kind": "frobnicate"}),
        json!({"kind": 3}),
        json!({"params": {}}),
        json!({"kind": "tag-stats", "params": {"company": 7}}),
        json!({"kind": "tag-stats", "params": {"colour": "red"}}),
        json!({"kind": "tag-stats", "extra": true}),
        json!({"kind": "keyword-stats", "params": {}}),
        json!({"kind": "keyword-stats", "params": {"words": ["two words"]}}),
        json!({"kind": "ingest", "params": {}}),
        json!({"kind": "ingest", "params": {"path": "missing"}}),
        json!(["not", "an", "object"]),
    ];
    for case in cases {
        let problem = assert_problem(&post_job(proxy.addr(), &case), 400, "bad-request");
        assert!(
            !problem["detail"].as_str().unwrap_or("").is_empty(),
            "{case}"
        );
    }
    let (name, value) = bearer();
    let not_json = proxy.exchange(&request("POST", "/api/jobs", &[(name, &value)], b"{kind"));
    assert_problem(&not_json, 400, "bad-request");
    let huge = vec![b' '; 100 * 1024];
    let too_large = proxy.exchange(&request("POST", "/api/jobs", &[(name, &value)], &huge));
    assert_problem(&too_large, 413, "content-too-large");
    assert_eq!(list(proxy.addr(), "")["total"], 0);
}

#[test]
fn methods_ids_and_listing_parameters() {
    let proxy = serve(None, None, 2);
    let put = proxy.exchange(&request("PUT", "/api/jobs", &[], b""));
    assert_problem(&put, 405, "method-not-allowed");
    assert_eq!(put.header("allow").as_deref(), Some("GET, HEAD, POST"));
    let post_item = proxy.exchange(&request("POST", "/api/jobs/1", &[], b""));
    assert_problem(&post_item, 405, "method-not-allowed");
    assert_eq!(
        post_item.header("allow").as_deref(),
        Some("GET, HEAD, DELETE")
    );
    assert_problem(&proxy.exchange(&get("/api/jobs/7")), 404, "not-found");
    assert_problem(&proxy.exchange(&get("/api/jobs/seven")), 404, "not-found");
    for query in ["?page=0", "?per_page=101", "?status=done"] {
        let response = proxy.exchange(&get(&format!("/api/jobs{query}")));
        assert_problem(&response, 400, "bad-request");
    }
    let ids: Vec<u64> = (0..3)
        .map(|_| submit(proxy.addr(), json!({"kind": "tag-stats"})))
        .collect();
    for &id in &ids {
        succeeded(proxy.addr(), id);
    }
    let page = list(proxy.addr(), "?per_page=2");
    let listed: Vec<u64> = page["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|job| job["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(listed, vec![ids[2], ids[1]], "newest first: {page}");
    assert_eq!(page["total"], 3);
    assert!(
        page["jobs"][0].get("result").is_none(),
        "listings omit results"
    );
    let second = list(proxy.addr(), "?per_page=2&page=2");
    assert_eq!(second["jobs"][0]["id"], ids[0]);
    assert_eq!(list(proxy.addr(), "?status=queued")["total"], 0);
    assert_eq!(list(proxy.addr(), "?status=succeeded")["total"], 3);
}

// === The parallel analyses, checked against the conversations API ===

/// Every conversation of a small dataset, with its details, fetched through the API.
fn all_details(addr: std::net::SocketAddr) -> Vec<Value> {
    let page = Client::connect(addr).exchange(&get("/api/conversations?per_page=1000"));
    let ids = page.json()["conversation_ids"].clone();
    let mut client = Client::connect(addr);
    ids.as_array()
        .expect("ids")
        .iter()
        .map(|id| {
            let id = id.as_str().expect("text id");
            let response = client.exchange(&get(&format!("/api/conversations/{id}")));
            assert_eq!(response.status, 200, "{}", response.text());
            response.json()
        })
        .collect()
}

/// The words of `text` as the analyses count them: maximal runs of letters and digits.
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect()
}

fn texts(detail: &Value) -> Vec<String> {
    ["question", "answer"]
        .iter()
        .filter_map(|field| detail[field].as_str())
        .map(str::to_owned)
        .collect()
}

fn tags_or_null(detail: &Value) -> Vec<Value> {
    match detail["tags"].as_array() {
        Some(tags) if !tags.is_empty() => tags.clone(),
        _ => vec![Value::Null],
    }
}

#[test]
fn analyses_match_figures_computed_from_the_conversations_api() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("small");
    generate_dataset(&data, 600, 11);
    let proxy = serve(Some(data), None, 2);
    let addr = proxy.addr();
    let details = all_details(addr);
    assert_eq!(details.len(), 600);

    // tag-stats: conversations per (company, tag).
    let mut expected: BTreeMap<(String, String), u64> = BTreeMap::new();
    for detail in &details {
        for tag in detail["tags"].as_array().expect("tags") {
            let key = (detail["company"].to_string(), tag.to_string());
            *expected.entry(key).or_default() += 1;
        }
    }
    let id = submit(addr, json!({"kind": "tag-stats"}));
    let result = succeeded(addr, id)["result"].clone();
    let counted: BTreeMap<(String, String), u64> = result["counts"]
        .as_array()
        .expect("counts")
        .iter()
        .map(|row| {
            let key = (row["company"].to_string(), row["tag"].to_string());
            (key, row["conversations"].as_u64().expect("count"))
        })
        .collect();
    assert_eq!(counted, expected);

    // keyword-stats: occurrences per (company, tag, word), and per word.
    let chosen = ["the", "growth", "customers"];
    let mut expected: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let mut per_word: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for detail in &details {
        let found: Vec<String> = texts(detail).iter().flat_map(|text| words(text)).collect();
        for word in chosen {
            let occurrences = found.iter().filter(|found| found.as_str() == word).count() as u64;
            if occurrences == 0 {
                continue;
            }
            let totals = per_word.entry(word.to_owned()).or_default();
            totals.0 += occurrences;
            totals.1 += 1;
            for tag in tags_or_null(detail) {
                let key = (
                    detail["company"].to_string(),
                    tag.to_string(),
                    word.to_owned(),
                );
                *expected.entry(key).or_default() += occurrences;
            }
        }
    }
    assert!(
        !expected.is_empty(),
        "the chosen words occur in the dataset"
    );
    let id = submit(
        addr,
        json!({"kind": "keyword-stats", "params": {"words": ["The", "growth", "customers"]}}),
    );
    let result = succeeded(addr, id)["result"].clone();
    let counted: BTreeMap<(String, String, String), u64> = result["counts"]
        .as_array()
        .expect("counts")
        .iter()
        .map(|row| {
            let word = row["word"].as_str().expect("word").to_owned();
            let key = (row["company"].to_string(), row["tag"].to_string(), word);
            (key, row["occurrences"].as_u64().expect("occurrences"))
        })
        .collect();
    assert_eq!(counted, expected);
    for entry in result["words"].as_array().expect("words") {
        let word = entry["word"].as_str().expect("word");
        let (occurrences, conversations) = per_word.get(word).copied().unwrap_or_default();
        assert_eq!(entry["occurrences"], occurrences, "{word}");
        assert_eq!(entry["conversations"], conversations, "{word}");
    }

    // transcript-summary: conversations, words and a tag histogram per transcript.
    let mut expected: BTreeMap<String, (u64, u64, BTreeMap<String, u64>)> = BTreeMap::new();
    for detail in &details {
        let Some(transcript) = detail["transcript_id"].as_str() else {
            continue;
        };
        let figures = expected.entry(transcript.to_owned()).or_default();
        figures.0 += 1;
        figures.1 += texts(detail)
            .iter()
            .map(|text| words(text).len() as u64)
            .sum::<u64>();
        for tag in detail["tags"].as_array().expect("tags") {
            *figures
                .2
                .entry(tag.as_str().expect("tag").to_owned())
                .or_default() += 1;
        }
    }
    let id = submit(addr, json!({"kind": "transcript-summary"}));
    let result = succeeded(addr, id)["result"].clone();
    let summarized: BTreeMap<String, (u64, u64, BTreeMap<String, u64>)> = result["transcripts"]
        .as_array()
        .expect("transcripts")
        .iter()
        .map(|row| {
            let tags = row["tags"]
                .as_object()
                .expect("histogram")
                .iter()
                .map(|(tag, count)| (tag.clone(), count.as_u64().expect("count")))
                .collect();
            let figures = (
                row["conversations"].as_u64().expect("conversations"),
                row["words"].as_u64().expect("words"),
                tags,
            );
            (
                row["transcript_id"].as_str().expect("id").to_owned(),
                figures,
            )
        })
        .collect();
    assert_eq!(summarized, expected);
}

#[test]
fn a_company_filter_narrows_tag_stats_to_the_query_totals() {
    let proxy = serve(None, None, 2);
    let addr = proxy.addr();
    let id = submit(
        addr,
        json!({"kind": "tag-stats", "params": {"company": "Microsoft"}}),
    );
    let result = succeeded(addr, id)["result"].clone();
    let counts = result["counts"].as_array().expect("counts");
    assert!(!counts.is_empty(), "{result}");
    for row in counts {
        let tag = row["tag"].as_str().expect("tag");
        let query = format!("?company=microsoft&tags={}", tag.replace(' ', "%20"));
        assert_eq!(row["conversations"], total(addr, &query), "{row}");
        assert!(row["company"]
            .as_str()
            .expect("name")
            .starts_with("Microsoft"));
    }
}

// === Cancellation and a full queue ===

/// A job that keeps one thread busy for a long while on the shared dataset.
fn long_job() -> Value {
    let words: Vec<String> = (0..64).map(|n| format!("w{n}")).collect();
    json!({"kind": "keyword-stats", "params": {"words": words}})
}

fn cancel(addr: std::net::SocketAddr, id: u64) -> Response {
    let (name, value) = bearer();
    Client::connect(addr).exchange(&request(
        "DELETE",
        &format!("/api/jobs/{id}"),
        &[(name, &value)],
        b"",
    ))
}

#[test]
fn queued_jobs_are_cancelled_at_once_and_running_ones_at_their_next_checkpoint() {
    let proxy = serve(None, None, 1);
    let addr = proxy.addr();
    let running = submit(addr, long_job());
    let queued = submit(addr, json!({"kind": "tag-stats"}));
    wait_until(addr, running, |job| job["status"] == "running");

    let response = cancel(addr, queued);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["status"], "cancelled");
    let response = cancel(addr, running);
    assert_eq!(response.status, 202, "{}", response.text());
    assert_eq!(response.json()["cancel_requested"], true);

    let stopped = wait_finished(addr, running);
    assert_eq!(stopped["status"], "cancelled", "{stopped}");
    assert!(stopped["result"].is_null());
    let skipped = job(addr, queued);
    assert_eq!(skipped["status"], "cancelled");
    assert!(skipped["started_at"].is_null(), "never ran: {skipped}");
    assert_problem(&cancel(addr, queued), 409, "conflict");
    assert_problem(&cancel(addr, 999), 404, "not-found");
}

/// Parallel jobs beyond what may wait for the runner are refused.
#[test]
fn a_full_runner_queue_answers_503_with_retry_after() {
    let proxy = serve(None, None, 1);
    let addr = proxy.addr();
    let running = submit(addr, long_job());
    wait_until(addr, running, |job| job["status"] == "running");
    let mut accepted = Vec::new();
    let mut refused = 0;
    for _ in 0..MAX_QUEUED_PARALLEL_JOBS + 3 {
        let response = post_job(addr, &json!({"kind": "tag-stats"}));
        match response.status {
            202 => accepted.push(response.json()["id"].as_u64().expect("id")),
            _ => {
                assert_problem(&response, 503, "unavailable");
                assert!(response.header("retry-after").is_some());
                refused += 1;
            }
        }
    }
    assert_eq!(
        job(addr, running)["status"],
        "running",
        "the test needs it busy"
    );
    assert_eq!(accepted.len(), MAX_QUEUED_PARALLEL_JOBS);
    assert_eq!(refused, 3);
    for id in accepted {
        assert_eq!(cancel(addr, id).status, 200);
    }
    assert_eq!(cancel(addr, running).status, 202);
    wait_finished(addr, running);
}

/// Asserts `response` is the refusal of a full queue: 503, `Retry-After`, a problem document.
fn assert_queue_full(response: &Response) {
    let problem = assert_problem(response, 503, "unavailable");
    assert_eq!(
        response.header("retry-after"),
        Some(RETRY_AFTER_SECONDS.to_string()),
        "{problem}"
    );
    let detail = problem["detail"].as_str().expect("detail");
    assert!(detail.contains("full"), "{problem}");
}

#[test]
fn a_full_serial_queue_answers_503_with_retry_after() {
    let root = data_root(100);
    let state = tempfile::tempdir().expect("state");
    let proxy = serve_in(state.path(), root.path().join("base"), root.path());
    let addr = proxy.addr();
    let queue = proxy.serial_queue();
    let hold = SerialHold::start(&queue);
    let mut filled = 0;
    while queue.submit(|_| {}).is_ok() {
        filled += 1;
        assert!(filled <= SERIAL_QUEUE_CAPACITY, "the queue is bounded");
    }
    assert_eq!(filled, SERIAL_QUEUE_CAPACITY);
    let listing = list(addr, "");
    assert_eq!(listing["serial_queue"]["waiting"], SERIAL_QUEUE_CAPACITY);
    assert_eq!(listing["serial_queue"]["capacity"], SERIAL_QUEUE_CAPACITY);

    // Every kind is admitted on the serial queue, so every kind is refused at once.
    for body in [
        json!({"kind": "tag-stats"}),
        json!({"kind": "ingest", "params": {"path": "second"}}),
        json!({"kind": "reload"}),
    ] {
        assert_queue_full(&post_job(addr, &body));
    }
    // Reading does not need the serial queue.
    assert_eq!(total(addr, ""), 100);

    // Once the queue has drained, the same submission is taken.
    hold.release();
    wait_serial_waiting(addr, |waiting| waiting == 0);
    let id = submit(
        addr,
        json!({"kind": "ingest", "params": {"path": "second"}}),
    );
    succeeded(addr, id);
    assert_eq!(
        list(addr, "")["total"],
        1,
        "refused submissions leave nothing"
    );
    let ids: Vec<u64> = Journal::open(state.path())
        .expect("journal")
        .jobs()
        .expect("jobs")
        .iter()
        .map(|job| job.id)
        .collect();
    assert_eq!(ids, vec![id], "nor in the journal");
    assert_eq!(total(addr, ""), 200);
}

#[test]
fn serial_jobs_beyond_the_waiting_limit_are_refused_with_503() {
    let root = data_root(100);
    let state = tempfile::tempdir().expect("state");
    let proxy = serve_in(state.path(), root.path().join("base"), root.path());
    let addr = proxy.addr();
    let hold = SerialHold::start(&proxy.serial_queue());
    // Every submission waits, unanswered, for the held thread; all are admitted one after
    // the other once it is released, before the first of them runs.
    let body = json!({"kind": "ingest", "params": {"path": "second"}});
    let submitted = MAX_QUEUED_SERIAL_JOBS + 1;
    let mut clients: Vec<Client> = (0..submitted).map(|_| send_job(addr, &body)).collect();
    wait_serial_waiting(addr, |waiting| waiting == submitted as u64);
    hold.release();
    let mut ids = Vec::new();
    let mut refused = 0;
    for client in &mut clients {
        let response = client.response();
        match response.status {
            202 => ids.push(accepted(&response, "ingest")),
            _ => {
                assert_queue_full(&response);
                refused += 1;
            }
        }
    }
    assert_eq!((ids.len(), refused), (MAX_QUEUED_SERIAL_JOBS, 1));
    ids.sort_unstable();
    let outcomes: Vec<String> = ids
        .iter()
        .map(|&id| {
            wait_finished(addr, id)["status"]
                .as_str()
                .expect("status")
                .to_owned()
        })
        .collect();
    assert_eq!(outcomes[0], "succeeded");
    assert!(
        outcomes[1..].iter().all(|status| status == "failed"),
        "the same dataset again: {outcomes:?}"
    );
    assert_eq!(list(addr, "")["total"], MAX_QUEUED_SERIAL_JOBS);
    assert_eq!(total(addr, ""), 200);
}

// === Ingest and reload ===

/// A data root holding a base dataset and two more, each of `rows` conversations.
fn data_root(rows: u64) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("root");
    for (name, seed) in [("base", 1), ("second", 2), ("third", 3)] {
        generate_dataset(&root.path().join(name), rows, seed);
    }
    root
}

#[test]
fn ingest_adds_a_dataset_and_every_query_sees_a_whole_snapshot() {
    let root = data_root(3_000);
    let proxy = serve(Some(root.path().join("base")), Some(root.path()), 2);
    let addr = proxy.addr();
    assert_eq!(total(addr, ""), 3_000);

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut seen = Vec::new();
            let mut client = Client::connect(addr);
            while !stop.load(Ordering::Relaxed) {
                let response = client.exchange(&get("/api/conversations?per_page=1"));
                seen.push(response.json()["total"].as_u64().expect("total"));
            }
            seen
        })
    };
    let id = submit(
        addr,
        json!({"kind": "ingest", "params": {"path": "second"}}),
    );
    let job = succeeded(addr, id);
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.join().expect("watcher");
    assert_eq!(job["result"]["conversations"], 6_000, "{job}");
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|&total| total == 3_000 || total == 6_000),
        "only whole snapshots: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|pair| pair[0] <= pair[1]),
        "never back: {seen:?}"
    );
    assert_eq!(total(addr, ""), 6_000);
    let companies = Client::connect(addr)
        .exchange(&get("/api/companies"))
        .json();
    let counted: u64 = companies
        .as_array()
        .expect("companies")
        .iter()
        .map(|company| company["conversations"].as_u64().expect("count"))
        .sum();
    assert_eq!(counted, 6_000);

    // The same dataset twice fails the job; a reload keeps both.
    let again = submit(
        addr,
        json!({"kind": "ingest", "params": {"path": "./second/"}}),
    );
    let failed = wait_finished(addr, again);
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"]
        .as_str()
        .expect("error")
        .contains("already served"));
    let reload = submit(addr, json!({"kind": "reload"}));
    assert_eq!(succeeded(addr, reload)["result"]["conversations"], 6_000);
}

#[test]
fn serial_jobs_run_one_at_a_time_in_submission_order() {
    let root = data_root(2_000);
    let proxy = serve(Some(root.path().join("base")), Some(root.path()), 2);
    let addr = proxy.addr();
    let submitters: Vec<_> = ["second", "third"]
        .into_iter()
        .enumerate()
        .map(|(order, path)| {
            thread::spawn(move || {
                (
                    order,
                    submit(addr, json!({"kind": "ingest", "params": {"path": path}})),
                )
            })
        })
        .collect();
    let mut ids: Vec<(usize, u64)> = submitters
        .into_iter()
        .map(|submitter| submitter.join().expect("submitter"))
        .collect();
    ids.sort_by_key(|&(_, id)| id);
    let first = succeeded(addr, ids[0].1);
    let second = succeeded(addr, ids[1].1);
    assert!(
        first["finished_at"].as_str() <= second["started_at"].as_str(),
        "one at a time: {first} {second}"
    );
    let datasets = |job: &Value| {
        job["result"]["datasets"]
            .as_array()
            .expect("datasets")
            .len()
    };
    assert_eq!((datasets(&first), datasets(&second)), (2, 3));
    assert_eq!(total(addr, ""), 6_000);
}

#[test]
fn ingest_paths_cannot_leave_the_data_root() {
    let root = data_root(100);
    let outside = tempfile::tempdir().expect("outside");
    generate_dataset(&outside.path().join("elsewhere"), 100, 9);
    std::os::unix::fs::symlink(outside.path(), root.path().join("link")).expect("symlink");
    let proxy = serve(Some(root.path().join("base")), Some(root.path()), 2);
    let absolute = outside.path().join("elsewhere");
    for path in [
        "../elsewhere",
        "second/../../elsewhere",
        absolute.to_str().expect("UTF-8"),
        "link/elsewhere",
    ] {
        let response = post_job(
            proxy.addr(),
            &json!({"kind": "ingest", "params": {"path": path}}),
        );
        assert_problem(&response, 400, "bad-request");
    }
    assert_eq!(list(proxy.addr(), "")["total"], 0);
    assert_eq!(total(proxy.addr(), ""), 100);
}

#[test]
fn a_broken_dataset_fails_its_job_naming_the_file_and_changes_nothing() {
    let root = data_root(100);
    let broken = root.path().join("broken.parquet");
    std::fs::write(&broken, b"PAR1 this is not parquet").expect("write");
    let proxy = serve(Some(root.path().join("base")), Some(root.path()), 2);
    let addr = proxy.addr();
    let id = submit(
        addr,
        json!({"kind": "ingest", "params": {"path": "broken.parquet"}}),
    );
    let job = wait_finished(addr, id);
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        job["error"]
            .as_str()
            .expect("error")
            .contains("broken.parquet"),
        "{job}"
    );
    assert_eq!(total(addr, ""), 100);
    let next = submit(
        addr,
        json!({"kind": "ingest", "params": {"path": "second"}}),
    );
    succeeded(addr, next);
    assert_eq!(total(addr, ""), 200);
}

#[test]
fn a_reload_submitted_while_an_ingest_runs_waits_for_it() {
    let root = data_root(200);
    let state = tempfile::tempdir().expect("state");
    let proxy = serve_in(state.path(), root.path().join("base"), root.path());
    let addr = proxy.addr();
    let mut pipe = Pipe::create(root.path().join("pipe.parquet"));
    // Both jobs are admitted while the queue is held, the ingest first; then the ingest
    // runs and waits on the pipe with the reload queued behind it.
    let hold = SerialHold::start(&proxy.serial_queue());
    let mut ingesting = send_job(
        addr,
        &json!({"kind": "ingest", "params": {"path": "pipe.parquet"}}),
    );
    wait_serial_waiting(addr, |waiting| waiting == 1);
    let mut reloading = send_job(addr, &json!({"kind": "reload"}));
    wait_serial_waiting(addr, |waiting| waiting == 2);
    hold.release();
    let ingest = accepted(&ingesting.response(), "ingest");
    let reload = accepted(&reloading.response(), "reload");
    assert!(ingest < reload, "ids follow submission order");

    let running = wait_until(addr, ingest, |job| job["status"] == "running");
    assert!(running["started_at"].is_string(), "{running}");
    let waiting = job(addr, reload);
    assert_eq!(
        waiting["status"], "queued",
        "not run beside the ingest: {waiting}"
    );
    assert!(waiting["started_at"].is_null(), "{waiting}");
    assert_eq!(serial_waiting(addr), 1, "the reload's turn is queued");
    assert_eq!(total(addr, ""), 200, "queries go on during the ingest");

    pipe.release();
    let ingest = wait_finished(addr, ingest);
    assert_eq!(ingest["status"], "failed", "{ingest}");
    assert!(
        ingest["error"]
            .as_str()
            .expect("error")
            .contains("pipe.parquet"),
        "{ingest}"
    );
    let reload = succeeded(addr, reload);
    assert!(
        ingest["finished_at"].as_str() <= reload["started_at"].as_str(),
        "one after the other: {ingest} {reload}"
    );
    assert_eq!(
        reload["result"]["datasets"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(reload["result"]["conversations"], 200);
    assert_eq!(total(addr, ""), 200);
}

#[test]
fn cancelling_a_queued_ingest_journals_it_and_the_served_data_stays() {
    let root = data_root(200);
    let state = tempfile::tempdir().expect("state");
    let base = root.path().join("base");
    let proxy = serve_in(state.path(), base.clone(), root.path());
    let addr = proxy.addr();
    let queue = proxy.serial_queue();
    // The ingest is admitted, then a second hold keeps its turn from coming.
    let first = SerialHold::start(&queue);
    let mut submitting = send_job(
        addr,
        &json!({"kind": "ingest", "params": {"path": "second"}}),
    );
    wait_serial_waiting(addr, |waiting| waiting == 1);
    let second = SerialHold::queue(&queue);
    first.release();
    let id = accepted(&submitting.response(), "ingest");
    second.wait_started();
    assert_eq!(job(addr, id)["status"], "queued");

    // The cancellation is answered once journaled, so only after the hold is released.
    let (name, value) = bearer();
    let mut cancelling = Client::connect(addr);
    cancelling.send(&request(
        "DELETE",
        &format!("/api/jobs/{id}"),
        &[(name, &value)],
        b"",
    ));
    let asked = wait_until(addr, id, |job| job["cancel_requested"] == true);
    assert_eq!(asked["status"], "queued", "{asked}");
    second.release();
    let response = cancelling.response();
    assert_eq!(response.status, 200, "{}", response.text());
    let cancelled = response.json();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert!(cancelled["started_at"].is_null(), "never ran: {cancelled}");
    let stored = journaled(state.path(), id);
    assert_eq!(stored.status, JobStatus::Cancelled, "{stored:?}");
    assert_eq!(stored.started_at, None);
    assert!(journaled_datasets(state.path()).is_empty());
    assert_eq!(total(addr, ""), 200, "the old index still serves");
    assert_problem(&cancel(addr, id), 409, "conflict");

    // After a restart the job stays cancelled: it does not run.
    proxy.shutdown().expect("a clean shutdown");
    let proxy = serve_in(state.path(), base, root.path());
    let addr = proxy.addr();
    let after = job(addr, id);
    assert_eq!(after["status"], "cancelled", "{after}");
    assert!(after["started_at"].is_null(), "{after}");
    assert_eq!(total(addr, ""), 200);
}

#[test]
fn cancelling_a_running_ingest_stops_it_journals_it_and_the_served_data_stays() {
    let root = data_root(200);
    let state = tempfile::tempdir().expect("state");
    let proxy = serve_in(state.path(), root.path().join("base"), root.path());
    let addr = proxy.addr();
    let mut pipe = Pipe::create(root.path().join("pipe.parquet"));
    let id = submit(
        addr,
        json!({"kind": "ingest", "params": {"path": "pipe.parquet"}}),
    );
    wait_until(addr, id, |job| job["status"] == "running");
    assert_eq!(journaled(state.path(), id).status, JobStatus::Running);
    assert_eq!(total(addr, ""), 200, "queries go on during the ingest");

    // A running job is asked to stop, and answered at once: the ingest still waits.
    let response = cancel(addr, id);
    assert_eq!(response.status, 202, "{}", response.text());
    let asked = response.json();
    assert_eq!(asked["status"], "running", "{asked}");
    assert_eq!(asked["cancel_requested"], true);
    pipe.release();
    let stopped = wait_finished(addr, id);
    assert_eq!(stopped["status"], "cancelled", "{stopped}");
    assert_eq!(stopped["error"], "cancelled while running");
    assert!(stopped["result"].is_null(), "{stopped}");
    let stored = journaled(state.path(), id);
    assert_eq!(stored.status, JobStatus::Cancelled, "{stored:?}");
    assert!(stored.finished_at.is_some());
    assert!(journaled_datasets(state.path()).is_empty());
    assert_eq!(total(addr, ""), 200, "the old index still serves");

    // The serial queue goes on with the next ingest.
    let next = submit(
        addr,
        json!({"kind": "ingest", "params": {"path": "second"}}),
    );
    succeeded(addr, next);
    assert_eq!(total(addr, ""), 400);
}

// === Durability through the real binary ===

/// Conversations of the base dataset of the kill -9 test: enough that its long analysis runs
/// for a good while on one thread.
const CRASH_BASE_ROWS: u64 = 60_000;
/// Conversations of the dataset the kill -9 test ingests before the crash.
const CRASH_INGESTED_ROWS: u64 = 3_000;

#[test]
fn jobs_and_datasets_survive_kill_9() {
    let root = tempfile::tempdir().expect("root");
    generate_dataset(&root.path().join("base"), CRASH_BASE_ROWS, 1);
    generate_dataset(&root.path().join("second"), CRASH_INGESTED_ROWS, 2);
    let served = CRASH_BASE_ROWS + CRASH_INGESTED_ROWS;
    let _pipe = Pipe::create(root.path().join("pipe.parquet"));
    let state = tempfile::tempdir().expect("state");
    let root_arg = root.path().to_str().expect("UTF-8").to_owned();
    let base = root.path().join("base");
    let base_arg = base.to_str().expect("UTF-8").to_owned();
    // Without recorded requests no statistics flush joins the serial queue.
    let args = [
        "--admin-token",
        TOKEN,
        "--data",
        &base_arg,
        "--data-root",
        &root_arg,
        "--job-threads",
        "1",
        "--no-usage-stats",
    ];
    let first = Served::start(state.path(), &args);
    let addr = first.addr;
    let stats = submit(addr, json!({"kind": "tag-stats"}));
    let stats_result = succeeded(addr, stats)["result"].clone();
    let ingest = submit(
        addr,
        json!({"kind": "ingest", "params": {"path": "second"}}),
    );
    succeeded(addr, ingest);
    assert_eq!(total(addr, ""), served);
    let running = submit(addr, long_job());
    wait_until(addr, running, |job| job["status"] == "running");
    let queued = submit(addr, json!({"kind": "transcript-summary"}));
    let stuck = submit(
        addr,
        json!({"kind": "ingest", "params": {"path": "pipe.parquet"}}),
    );
    wait_until(addr, stuck, |job| job["status"] == "running");
    // The ingest now waits on the pipe on the serial queue's thread, where every change of a
    // job's state is journaled: from here on no state changes, and what is shown is what the
    // journal holds when the process dies.
    let before = |id: u64, status: &str| {
        let seen = job(addr, id);
        assert_eq!(seen["status"], status, "when killed: {seen}");
        seen
    };
    let running_before = before(running, "running");
    assert!(running_before["started_at"].is_string());
    let queued_before = before(queued, "queued");
    assert!(queued_before["started_at"].is_null(), "{queued_before}");
    before(stuck, "running");
    // A submission not yet answered waits on the serial queue; it was never acknowledged, so
    // it may be lost with the process (and is: it must not appear after the restart).
    let waiting = serial_waiting(addr);
    let mut unanswered = send_job(addr, &json!({"kind": "tag-stats"}));
    wait_serial_waiting(addr, |now| now > waiting);
    first.kill();
    assert!(
        unanswered.try_response(false).is_err(),
        "no answer from a killed process"
    );

    let second = Served::start(state.path(), &args);
    let addr = second.addr;
    assert_eq!(
        total(addr, ""),
        served,
        "the ingested dataset is served again, the interrupted one is not"
    );
    let kept = job(addr, stats);
    assert_eq!(kept["status"], "succeeded");
    assert_eq!(kept["result"], stats_result);
    assert_eq!(job(addr, ingest)["status"], "succeeded");
    for id in [running, stuck] {
        let interrupted = job(addr, id);
        assert_eq!(interrupted["status"], "failed", "{interrupted}");
        assert!(
            interrupted["error"]
                .as_str()
                .expect("error")
                .contains("interrupted"),
            "{interrupted}"
        );
        assert!(interrupted["finished_at"].is_string(), "{interrupted}");
        assert!(interrupted["result"].is_null(), "{interrupted}");
    }
    assert_eq!(
        job(addr, running)["started_at"],
        running_before["started_at"]
    );
    let resumed = succeeded(addr, queued);
    assert!(resumed["started_at"].is_string(), "run after the restart");
    assert!(!resumed["result"]["transcripts"]
        .as_array()
        .expect("transcripts")
        .is_empty());
    assert_eq!(
        list(addr, "")["total"],
        5,
        "the unanswered submission is gone"
    );
    let next = submit(addr, json!({"kind": "tag-stats"}));
    assert_eq!(next, stuck + 1, "ids keep growing across restarts");
    second.terminate();
}
