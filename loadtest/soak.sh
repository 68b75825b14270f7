#!/usr/bin/env bash
# Soak test: a fixed-rate load through confab for DURATION over a mix of good and failing
# upstream paths, sampling confab's memory and file descriptors every second.
#
# Starts confab's mock upstream (1 thread) and confab (PROXY_THREADS workers) in front of it,
# then runs two open-model (fixed rate) load generators side by side for DURATION:
#   good: GOOD_RATE req/s over proxied category documents, a conversations query and /healthz;
#   bad:  BAD_RATE req/s over the mock's fault paths (/faults/close, /faults/malformed: 502;
#         /faults/truncated: a body cut off mid-way), which exercise confab's failure paths.
# Every second it writes confab's RSS, open file descriptors and threads to a CSV under
# loadtest/results/. It fails (exit 1) if any request on a good path failed (an error or a
# status other than 2xx), or if after WARMUP_SECONDS RSS grew by more than RSS_GROWTH_LIMIT_MIB
# or the descriptor count by more than FD_GROWTH_LIMIT (peak of the last quarter of the run
# against the sample at the end of the warm-up).
#
# Usage: loadtest/soak.sh                       (10 minutes; override through the environment)
#   DURATION=60s WARMUP_SECONDS=10 loadtest/soak.sh
#   GOOD_RATE=5000 BAD_RATE=500 CONNECTIONS=64 loadtest/soak.sh
# Needs oha (cargo install oha --locked) and python3. Loopback only; every process it starts is
# stopped when it exits.
set -euo pipefail

DURATION=${DURATION:-10m}
GOOD_RATE=${GOOD_RATE:-2000}
BAD_RATE=${BAD_RATE:-200}
CONNECTIONS=${CONNECTIONS:-32}
PROXY_THREADS=${PROXY_THREADS:-2}
WARMUP_SECONDS=${WARMUP_SECONDS:-30}
RSS_GROWTH_LIMIT_MIB=${RSS_GROWTH_LIMIT_MIB:-64}
FD_GROWTH_LIMIT=${FD_GROWTH_LIMIT:-256}
UPSTREAM_PORT=${UPSTREAM_PORT:-19290}
PROXY_PORT=${PROXY_PORT:-18280}

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
results="$root/loadtest/results"
mkdir -p "$results"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
samples="$results/soak-$stamp.csv"
pids=()

cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for tool in oha python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool (cargo install oha --locked)" >&2; exit 1; }
done

echo "building confab (release)..." >&2
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
confab="${CARGO_TARGET_DIR:-$root/target}/release/confab"

wait_for_port() {
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    exit 1
}

"$confab" mock-upstream --listen "127.0.0.1:$UPSTREAM_PORT" --threads 1 >"$work/mock.log" 2>&1 &
pids+=($!)
wait_for_port "$UPSTREAM_PORT"
"$confab" serve --listen "127.0.0.1:$PROXY_PORT" --threads "$PROXY_THREADS" \
    --state-dir "$work/confab-state" --upstream "http://127.0.0.1:$UPSTREAM_PORT" \
    >"$work/confab.log" 2>&1 &
proxy_pid=$!
pids+=("$proxy_pid")
wait_for_port "$PROXY_PORT"

base="http://127.0.0.1:$PROXY_PORT"
printf '%s\n' "$base/categories/MLA97994" "$base/categories/MLA1055" \
    "$base/api/conversations?tags=pricing&per_page=10" "$base/healthz" >"$work/good.urls"
printf '%s\n' "$base/faults/close" "$base/faults/malformed" "$base/faults/truncated" \
    >"$work/bad.urls"

# One line a second: seconds since start, RSS (KiB), open descriptors, threads.
sample() {
    local start=$SECONDS
    echo "second,rss_kib,fds,threads"
    while kill -0 "$proxy_pid" 2>/dev/null; do
        local rss threads fds
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$proxy_pid/status" 2>/dev/null || echo 0)
        threads=$(awk '/^Threads:/ {print $2}' "/proc/$proxy_pid/status" 2>/dev/null || echo 0)
        fds=$(ls "/proc/$proxy_pid/fd" 2>/dev/null | wc -l)
        echo "$((SECONDS - start)),$rss,$fds,$threads"
        sleep 1
    done
}
sample >"$samples" &
sampler=$!
pids+=("$sampler")

echo "soaking for $DURATION: good $GOOD_RATE req/s, failing $BAD_RATE req/s, $CONNECTIONS connections each" >&2
# Requests still in flight at the deadline are waited for, not counted as errors.
oha_run() { # name rate
    oha --no-tui --output-format json -o "$work/$1.json" -z "$DURATION" -q "$2" \
        -c "$CONNECTIONS" --latency-correction --wait-ongoing-requests-after-deadline \
        --urls-from-file "$work/$1.urls" >/dev/null 2>&1 || true
}
oha_run good "$GOOD_RATE" &
good_pid=$!
oha_run bad "$BAD_RATE" &
bad_pid=$!
wait "$good_pid" "$bad_pid"
kill "$sampler" 2>/dev/null || true

status=0
python3 - "$work/good.json" "$work/bad.json" "$samples" "$WARMUP_SECONDS" \
    "$RSS_GROWTH_LIMIT_MIB" "$FD_GROWTH_LIMIT" <<'PY' || status=1
import csv, json, sys

good_path, bad_path, samples_path, warmup, rss_limit_mib, fd_limit = sys.argv[1:]
warmup, rss_limit_mib, fd_limit = int(warmup), float(rss_limit_mib), int(fd_limit)
failed = []

def load(path, name):
    with open(path) as f:
        report = json.load(f)
    summary = report["summary"]
    statuses = report.get("statusCodeDistribution", {})
    errors = report.get("errorDistribution", {})
    total = sum(statuses.values()) + sum(errors.values())
    p50 = report["latencyPercentiles"].get("p50") or 0
    p99 = report["latencyPercentiles"].get("p99") or 0
    print(f"{name}: {total} requests, {summary['requestsPerSec']:.0f} req/s, "
          f"p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, statuses {statuses}, errors {errors}")
    return statuses, errors

statuses, errors = load(good_path, "good paths")
bad_statuses = {code: n for code, n in statuses.items() if not code.startswith("2")}
if errors or bad_statuses:
    failed.append(f"good paths saw errors {errors} or statuses {bad_statuses}")
load(bad_path, "failing paths")

with open(samples_path) as f:
    rows = [{k: int(v) for k, v in row.items()} for row in csv.DictReader(f)]
if len(rows) < 4:
    failed.append(f"only {len(rows)} samples")
else:
    after = [row for row in rows if row["second"] >= warmup] or rows
    base = after[0]
    tail = after[-max(1, len(after) // 4):]
    peak_rss = max(row["rss_kib"] for row in tail)
    peak_fds = max(row["fds"] for row in tail)
    growth_mib = (peak_rss - base["rss_kib"]) / 1024
    print(f"RSS: {base['rss_kib'] / 1024:.1f} MiB after warm-up ({base['second']} s), "
          f"peak {max(r['rss_kib'] for r in rows) / 1024:.1f} MiB, last quarter peak "
          f"{peak_rss / 1024:.1f} MiB (growth {growth_mib:+.1f} MiB, limit {rss_limit_mib} MiB)")
    print(f"fds: {base['fds']} after warm-up, last quarter peak {peak_fds} "
          f"(growth {peak_fds - base['fds']:+d}, limit {fd_limit}); samples: {len(rows)}")
    if growth_mib > rss_limit_mib:
        failed.append(f"RSS grew by {growth_mib:.1f} MiB after warm-up")
    if peak_fds - base["fds"] > fd_limit:
        failed.append(f"descriptors grew by {peak_fds - base['fds']}")

for failure in failed:
    print("FAIL:", failure)
sys.exit(1 if failed else 0)
PY
echo "samples: $samples" >&2
if grep -q "panicked" "$work/confab.log"; then
    echo "FAIL: confab panicked:" >&2
    grep -A3 "panicked" "$work/confab.log" >&2
    status=1
fi
exit "$status"
