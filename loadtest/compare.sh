#!/usr/bin/env bash
# Side-by-side proxy load test: confab, nginx and HAProxy in front of the same upstream.
#
# Starts confab's mock upstream (1 thread), then confab, nginx (reverse proxy, keep-alive
# upstream pool) and HAProxy (http-reuse always), each with 2 threads/workers, and runs wrk
# against each in turn for ROUNDS interleaved rounds. For every run it prints requests/s, p50,
# p99, errors, the proxy's CPU-seconds (from /proc, all its processes) and requests per proxy
# CPU-second, and appends a row to a CSV under loadtest/results/.
#
# Usage: loadtest/compare.sh            (defaults below; override through the environment)
#   DURATION=10s CONNECTIONS=64 ROUNDS=2 PROXIES="confab nginx haproxy" loadtest/compare.sh
#   PROXIES="confab confab_nostats" ROUNDS=4 loadtest/compare.sh   (the cost of usage statistics)
#   PROXIES="confab confab_epoll" ROUNDS=4 loadtest/compare.sh     (io_uring against epoll)
# Needs wrk, nginx and haproxy (apt-get install wrk nginx-light haproxy). Loopback only; every
# process it starts is stopped when it exits.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-2}
PROXIES=${PROXIES:-"confab nginx haproxy"}
PROXY_THREADS=${PROXY_THREADS:-2}
REQUEST_PATH=${REQUEST_PATH:-/categories/MLA97994}
UPSTREAM_PORT=19190
PROXY_PORT=18180

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
results="$root/loadtest/results"
mkdir -p "$results"
csv="$results/compare-$(date -u +%Y%m%dT%H%M%SZ).csv"
pids=()

cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for tool in wrk nginx haproxy; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install wrk nginx-light haproxy" >&2; exit 1; }
done

echo "building confab (release)..." >&2
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
confab="${CARGO_TARGET_DIR:-$root/target}/release/confab"

wait_for_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    exit 1
}

# CPU ticks (user + system) used so far by the given processes and their threads.
cpu_ticks() {
    local total=0 pid
    for pid in "$@"; do
        [ -r "/proc/$pid/stat" ] || continue
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$total"
}

start_confab() {
    "$confab" serve --listen "127.0.0.1:$PROXY_PORT" --threads "$PROXY_THREADS" \
        --state-dir "$work/confab-state" \
        --upstream "http://127.0.0.1:$UPSTREAM_PORT" >"$work/confab.log" 2>&1 &
    proxy_pids=($!)
}

# confab with usage statistics off: the baseline for what recording costs.
start_confab_nostats() {
    "$confab" serve --listen "127.0.0.1:$PROXY_PORT" --threads "$PROXY_THREADS" --no-usage-stats \
        --state-dir "$work/confab-state" --upstream "http://127.0.0.1:$UPSTREAM_PORT" >"$work/confab.log" 2>&1 &
    proxy_pids=($!)
}

# confab on the epoll driver (the default, auto, is io_uring where the kernel offers it).
start_confab_epoll() {
    "$confab" serve --listen "127.0.0.1:$PROXY_PORT" --threads "$PROXY_THREADS" --driver epoll \
        --state-dir "$work/confab-state" --upstream "http://127.0.0.1:$UPSTREAM_PORT" >"$work/confab.log" 2>&1 &
    proxy_pids=($!)
}

start_nginx() {
    cat >"$work/nginx.conf" <<EOF
worker_processes $PROXY_THREADS;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 64; }
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
    proxy_pids=($!)
}

start_haproxy() {
    cat >"$work/haproxy.cfg" <<EOF
global
    nbthread $PROXY_THREADS
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 10s
    http-reuse always
frontend front
    bind 127.0.0.1:$PROXY_PORT
    default_backend back
backend back
    server upstream 127.0.0.1:$UPSTREAM_PORT
EOF
    haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
    proxy_pids=($!)
}

# All processes of the proxy (nginx's workers are children of its master).
proxy_processes() {
    local pid
    for pid in "${proxy_pids[@]}"; do
        echo "$pid"
        pgrep -P "$pid" || true
    done
}

run_one() {
    local proxy=$1 round=$2
    "start_$proxy"
    pids+=("${proxy_pids[@]}")
    wait_for_port "$PROXY_PORT"
    curl -fsS -o /dev/null "http://127.0.0.1:$PROXY_PORT$REQUEST_PATH"
    local processes before after
    mapfile -t processes < <(proxy_processes)
    before=$(cpu_ticks "${processes[@]}")
    wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$PROXY_PORT$REQUEST_PATH" >"$work/wrk.txt"
    after=$(cpu_ticks "${processes[@]}")
    kill "${proxy_pids[@]}" 2>/dev/null || true
    wait "${proxy_pids[@]}" 2>/dev/null || true
    local hz rps p50 p99 errors requests cpu per_cpu
    hz=$(getconf CLK_TCK)
    rps=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk.txt")
    requests=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
    p50=$(awk '$1 == "50%" {print $2}' "$work/wrk.txt")
    p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")
    errors=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$work/wrk.txt")
    cpu=$(awk -v t=$((after - before)) -v hz="$hz" 'BEGIN {printf "%.2f", t / hz}')
    per_cpu=$(awk -v r="$requests" -v c="$cpu" 'BEGIN {if (c > 0) printf "%.0f", r / c; else print "n/a"}')
    printf "%-15s %5s %12s %9s %9s %7s %9s %14s\n" "$proxy" "$round" "$rps" "$p50" "$p99" "$errors" "$cpu" "$per_cpu"
    echo "$proxy,$round,$CONNECTIONS,$rps,$p50,$p99,$errors,$cpu,$per_cpu" >>"$csv"
}

"$confab" mock-upstream --listen "127.0.0.1:$UPSTREAM_PORT" --threads 1 >"$work/mock.log" 2>&1 &
pids+=($!)
wait_for_port "$UPSTREAM_PORT"

echo "proxy,round,connections,requests_per_s,p50,p99,errors,proxy_cpu_s,requests_per_cpu_s" >"$csv"
echo "wrk -t1 -c$CONNECTIONS -d$DURATION $REQUEST_PATH; upstream: confab mock (1 thread); proxies: $PROXY_THREADS threads; $(nproc) cores" >&2
printf "%-15s %5s %12s %9s %9s %7s %9s %14s\n" proxy round "req/s" p50 p99 errors "cpu s" "req/cpu-s"
for round in $(seq 1 "$ROUNDS"); do
    for proxy in $PROXIES; do
        run_one "$proxy" "$round"
    done
done
echo "results: $csv" >&2
