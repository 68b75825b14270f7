#!/usr/bin/env bash
# Fixed-rate load test: RATE requests/s through confab (or nginx) for DURATION, with latency measured from
# when each request was due (oha --latency-correction), so a stall is charged to every request
# it delays instead of hiding behind fewer requests (the closed-loop blind spot of wrk).
#
# Starts confab's mock upstream (1 thread) and PROXY (confab, or nginx with a keep-alive upstream
# pool, the same configuration as loadtest/compare) with PROXY_THREADS workers in front of it,
# runs oha at RATE over CONNECTIONS connections, and prints the achieved rate, p50, p99, p99.9,
# statuses, errors, the proxy's CPU-seconds and requests per proxy CPU-second. It fails (exit 1)
# if any request failed or got a status other than 2xx, if the achieved rate fell more than 1%
# short of RATE, or if p99 is over P99_LIMIT_MS.
#
# Usage: loadtest/fixed-rate.sh                 (50,000 req/s for 60 s; override through the environment)
#   RATE=20000 DURATION=30s CONNECTIONS=128 loadtest/fixed-rate.sh
#   OHA_THREADS=1 PROXY_THREADS=1 loadtest/fixed-rate.sh   (threads of the load generator, of confab)
#   CONFAB_FLAGS="--pin-workers" loadtest/fixed-rate.sh     (extra flags for confab)
#   PROXY=nginx loadtest/fixed-rate.sh                      (nginx instead, same upstream and load)
#   PROXY=none loadtest/fixed-rate.sh                       (no proxy: oha straight at the upstream,
#       the floor this machine's load generator and upstream set for any proxy; the CPU figures
#       are then the upstream's)
# Needs oha (cargo install oha --locked) and python3. Loopback only; every process it starts is
# stopped when it exits.
set -euo pipefail

RATE=${RATE:-50000}
DURATION=${DURATION:-60s}
CONNECTIONS=${CONNECTIONS:-64}
PROXY_THREADS=${PROXY_THREADS:-2}
OHA_THREADS=${OHA_THREADS:-2}
CONFAB_FLAGS=${CONFAB_FLAGS:-}
PROXY=${PROXY:-confab}
P99_LIMIT_MS=${P99_LIMIT_MS:-5}
REQUEST_PATH=${REQUEST_PATH:-/categories/MLA97994}
UPSTREAM_PORT=${UPSTREAM_PORT:-19390}
PROXY_PORT=${PROXY_PORT:-18380}

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
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
case "$PROXY" in
confab)
    # shellcheck disable=SC2086 # CONFAB_FLAGS is a list of flags
    "$confab" serve --listen "127.0.0.1:$PROXY_PORT" --threads "$PROXY_THREADS" \
        --state-dir "$work/confab-state" --upstream "http://127.0.0.1:$UPSTREAM_PORT" \
        $CONFAB_FLAGS >"$work/confab.log" 2>&1 &
    ;;
nginx)
    cat >"$work/nginx.conf" <<EOF
worker_processes $PROXY_THREADS;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 256; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:$PROXY_PORT reuseport;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    nginx -c "$work/nginx.conf" -p "$work" &
    ;;
none)
    PROXY_PORT=$UPSTREAM_PORT
    ;;
*)
    echo "PROXY must be confab, nginx or none, not $PROXY" >&2
    exit 1
    ;;
esac
proxy_pid=$!
[ "$PROXY" = none ] || pids+=("$proxy_pid")
wait_for_port "$PROXY_PORT"
curl -fsS -o /dev/null "http://127.0.0.1:$PROXY_PORT$REQUEST_PATH"

ticks_per_second=$(getconf CLK_TCK)
# CPU ticks (user + system) of the proxy and its children (nginx's workers), all threads.
cpu_ticks() {
    local total=0 pid
    for pid in "$proxy_pid" $(pgrep -P "$proxy_pid" || true); do
        [ -r "/proc/$pid/stat" ] || continue
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$total"
}

echo "oha: $RATE req/s for $DURATION over $CONNECTIONS connections to $REQUEST_PATH; $PROXY: $PROXY_THREADS threads; $(nproc) cores" >&2
before=$(cpu_ticks)
oha --no-tui --output-format json -o "$work/oha.json" -z "$DURATION" -q "$RATE" \
    --worker-threads "$OHA_THREADS" \
    -c "$CONNECTIONS" --latency-correction --wait-ongoing-requests-after-deadline \
    "http://127.0.0.1:$PROXY_PORT$REQUEST_PATH" >/dev/null 2>&1 || true
after=$(cpu_ticks)

# With no proxy, the CPU measured is the upstream's.
measured=$PROXY
[ "$PROXY" = none ] && measured=upstream
python3 - "$work/oha.json" "$RATE" "$P99_LIMIT_MS" "$((after - before))" "$ticks_per_second" "$measured" <<'PY'
import json, sys

path, rate, p99_limit_ms, ticks, ticks_per_second, proxy = sys.argv[1:]
rate, p99_limit_ms = float(rate), float(p99_limit_ms)
cpu_seconds = int(ticks) / int(ticks_per_second)
with open(path) as f:
    report = json.load(f)
summary = report["summary"]
statuses = report.get("statusCodeDistribution", {})
errors = report.get("errorDistribution", {})
answered = sum(statuses.values())
percentiles = report["latencyPercentiles"]
p50, p99, p999 = (1000 * (percentiles.get(key) or 0) for key in ("p50", "p99", "p99.9"))
achieved = summary["requestsPerSec"]
print(f"achieved {achieved:.0f} req/s of {rate:.0f}; {answered} answered; p50 {p50:.2f} ms, "
      f"p99 {p99:.2f} ms, p99.9 {p999:.2f} ms; statuses {statuses}; errors {errors}")
print(f"{proxy} CPU {cpu_seconds:.2f} s; {answered / cpu_seconds if cpu_seconds else 0:.0f} "
      f"requests per {proxy} CPU-second")
failed = []
if errors or any(not code.startswith("2") for code in statuses):
    failed.append("requests failed")
if achieved < 0.99 * rate:
    failed.append(f"the achieved rate is {achieved:.0f}, below {0.99 * rate:.0f}")
if p99 > p99_limit_ms:
    failed.append(f"p99 {p99:.2f} ms is over {p99_limit_ms} ms")
for failure in failed:
    print("FAIL:", failure)
sys.exit(1 if failed else 0)
PY
