#!/usr/bin/env bash
# Throughput of the conversations example query against /healthz, in the same run, on the
# release binary (default dataset unless DATA names one). Prints req/s, p50, p99 of each and
# the ratio. Usage: loadtest/conversations.sh   (DURATION=10s CONNECTIONS=64 ROUNDS=2 DATA=path)
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-2}
PORT=18280
QUERY='/api/conversations?company=microsoft&tags=competition,orientation'

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
command -v wrk >/dev/null || { echo "missing wrk: apt-get install wrk" >&2; exit 1; }

cargo build --release --quiet --manifest-path "$root/Cargo.toml"
data_flag=()
[ -n "${DATA:-}" ] && data_flag=(--data "$DATA")
"${CARGO_TARGET_DIR:-$root/target}/release/confab" serve --listen "127.0.0.1:$PORT" --state-dir "$work/state" \
    "${data_flag[@]}" >"$work/confab.log" 2>&1 &
server=$!
for _ in $(seq 1 200); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null && break
    sleep 0.1
done

run() {
    wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$PORT$1" >"$work/wrk.txt"
    awk '/^Requests\/sec/ {rps = $2} $1 == "50%" {p50 = $2} $1 == "99%" {p99 = $2}
         END {printf "%s %s %s\n", rps, p50, p99}' "$work/wrk.txt"
}

printf "%-6s %-10s %12s %10s %10s\n" round target "req/s" p50 p99
for round in $(seq 1 "$ROUNDS"); do
    read -r h50 hp50 hp99 < <(run /healthz)
    read -r q50 qp50 qp99 < <(run "$QUERY")
    printf "%-6s %-10s %12s %10s %10s\n" "$round" healthz "$h50" "$hp50" "$hp99"
    printf "%-6s %-10s %12s %10s %10s\n" "$round" query "$q50" "$qp50" "$qp99"
    awk -v q="$q50" -v h="$h50" 'BEGIN {printf "       query / healthz = %.1f%%\n", 100 * q / h}'
done
