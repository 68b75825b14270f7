#!/usr/bin/env bash
# What TLS to the upstream costs: confab and nginx in front of the same HTTPS upstream, and
# confab in front of the same upstream over plain HTTP as the baseline.
#
# Makes a throwaway CA and a leaf certificate for localhost/127.0.0.1 with openssl, and starts
# an nginx upstream (1 worker) answering a static JSON document over TLS on UPSTREAM_PORT and
# over plain HTTP on UPSTREAM_HTTP_PORT, on every address `localhost` resolves to. Then runs wrk
# against each proxy in turn (2 threads/workers each) for ROUNDS interleaved rounds:
#   confab_http  confab --upstream http://localhost:UPSTREAM_HTTP_PORT (no TLS: the baseline)
#   confab       confab --upstream https://localhost:UPSTREAM_PORT --upstream-ca ca.pem
#   nginx        nginx as a reverse proxy to localhost:UPSTREAM_PORT (proxy_ssl_verify on,
#                proxy_ssl_trusted_certificate, proxy_ssl_name localhost,
#                proxy_ssl_server_name on, proxy_ssl_session_reuse on, a keep-alive upstream
#                pool, HTTP/1.1)
# Both TLS proxies name the upstream `localhost`: they resolve it once at startup, send it as
# SNI, verify the certificate against it, and keep their TLS connections open. For every run it
# prints requests/s, p50, p99, errors, the proxy's CPU-seconds (from /proc, all its processes;
# the upstream's are not counted) and requests per proxy CPU-second, and appends a row to a CSV
# under loadtest/results/.
#
# Usage: loadtest/tls.sh            (defaults below; override through the environment)
#   DURATION=10s CONNECTIONS=64 ROUNDS=2 PROXIES="confab_http confab nginx" loadtest/tls.sh
# Needs wrk, nginx and openssl (apt-get install wrk nginx-light openssl). Builds confab in
# release mode into $CARGO_TARGET_DIR (default: target/). Loopback only; every process it starts
# is stopped when it exits.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-2}
PROXIES=${PROXIES:-"confab_http confab nginx"}
PROXY_THREADS=${PROXY_THREADS:-2}
REQUEST_PATH=${REQUEST_PATH:-/categories/MLA97994}
# Upstream connections are kept for this many requests by the upstream and nginx's pool
# (nginx's default, 1000, would make both proxies reconnect every few milliseconds).
KEEPALIVE_REQUESTS=${KEEPALIVE_REQUESTS:-1000000}
UPSTREAM_PORT=${UPSTREAM_PORT:-19443}
UPSTREAM_HTTP_PORT=${UPSTREAM_HTTP_PORT:-19080}
PROXY_PORT=${PROXY_PORT:-18443}

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
results="$root/loadtest/results"
mkdir -p "$results"
csv="$results/tls-$(date -u +%Y%m%dT%H%M%SZ).csv"
proxy_pids=()

# Whether process $1 is a child of this script that is still running. The pid of a child that
# already exited may belong to another process by now, so only running children are signalled.
running() {
    local pid
    for pid in $(jobs -pr); do
        [ "$pid" = "$1" ] && return 0
    done
    return 1
}

# Stops those of the given children that are still running, and waits for all of them.
stop() {
    local pid
    for pid in "$@"; do
        if running "$pid"; then kill "$pid" 2>/dev/null || true; fi
    done
    wait "$@" 2>/dev/null || true
}

cleanup() {
    local children
    mapfile -t children < <(jobs -pr)
    if [ "${#children[@]}" -gt 0 ]; then stop "${children[@]}"; fi
    rm -rf "$work"
}
trap cleanup EXIT

for tool in wrk nginx openssl curl getent; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install wrk nginx-light openssl curl" >&2; exit 1; }
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

# A throwaway CA and a leaf for localhost and 127.0.0.1 (P-256 keys), valid for two days.
make_certificates() {
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -keyout "$work/ca.key" -out "$work/ca.pem" -days 2 \
        -subj "/CN=confab loadtest CA" 2>/dev/null
    openssl req "${ec[@]}" -keyout "$work/leaf.key" -out "$work/leaf.csr" \
        -subj "/CN=localhost" 2>/dev/null
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$work/leaf.ext"
    openssl x509 -req -in "$work/leaf.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
        -CAcreateserial -days 2 -extfile "$work/leaf.ext" -out "$work/leaf.pem" 2>/dev/null
}

# nginx `listen` lines for port $1 (with the parameters $2) on every address of localhost, so
# that whichever address a proxy picks, the upstream answers there.
listen_on_localhost() {
    local addr
    for addr in $(getent ahosts localhost | awk '{print $1}' | sort -u); do
        case $addr in
            *:*) echo "listen [$addr]:$1 $2;" ;;
            *) echo "listen $addr:$1 $2;" ;;
        esac
    done
}

# The upstream: nginx, one worker, a static JSON document on every path, over TLS (with session
# tickets and a session cache, so clients can resume) and over plain HTTP.
start_upstream() {
    mkdir -p "$work/upstream"
    local document='{"id":"MLA97994","name":"Celulares y Teléfonos","path_from_root":[{"id":"MLA1051","name":"Celulares y Teléfonos"},{"id":"MLA97994","name":"Accesorios para Celulares"}],"total_items_in_this_category":248016,"settings":{"adult_content":false,"buying_allowed":true,"currencies":["ARS"],"listing_allowed":true,"max_pictures_per_item":12}}'
    cat >"$work/upstream/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/upstream/nginx.pid;
error_log $work/upstream/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests $KEEPALIVE_REQUESTS;
    keepalive_timeout 75s;
    default_type application/json;
    server {
        $(listen_on_localhost "$UPSTREAM_PORT" ssl)
        ssl_certificate $work/leaf.pem;
        ssl_certificate_key $work/leaf.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:upstream:1m;
        ssl_session_tickets on;
        location / {
            return 200 '$document';
        }
    }
    server {
        $(listen_on_localhost "$UPSTREAM_HTTP_PORT" "")
        location / {
            return 200 '$document';
        }
    }
}
CONF
    nginx -c "$work/upstream/nginx.conf" -p "$work/upstream" &
    wait_for_port "$UPSTREAM_PORT"
    wait_for_port "$UPSTREAM_HTTP_PORT"
    curl -fsS --cacert "$work/ca.pem" -o /dev/null "https://localhost:$UPSTREAM_PORT$REQUEST_PATH"
    curl -fsS -o /dev/null "http://localhost:$UPSTREAM_HTTP_PORT$REQUEST_PATH"
}

# confab in front of the upstream URL $1, with the flags that follow it.
start_confab_to() {
    local upstream=$1
    shift
    "$confab" serve --listen "127.0.0.1:$PROXY_PORT" --threads "$PROXY_THREADS" \
        --state-dir "$work/confab-state" --upstream "$upstream" "$@" >"$work/confab.log" 2>&1 &
    proxy_pids=($!)
}

start_confab() {
    start_confab_to "https://localhost:$UPSTREAM_PORT" --upstream-ca "$work/ca.pem"
}

start_confab_http() {
    start_confab_to "http://localhost:$UPSTREAM_HTTP_PORT"
}

# nginx names the upstream `localhost` as confab does: it resolves it when it reads its
# configuration, checks the leaf against that name and sends it as SNI.
start_nginx() {
    mkdir -p "$work/proxy"
    cat >"$work/proxy/nginx.conf" <<CONF
worker_processes $PROXY_THREADS;
daemon off;
pid $work/proxy/nginx.pid;
error_log $work/proxy/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    upstream backend {
        server localhost:$UPSTREAM_PORT;
        keepalive 64;
        keepalive_requests $KEEPALIVE_REQUESTS;
    }
    server {
        listen 127.0.0.1:$PROXY_PORT reuseport;
        location / {
            proxy_pass https://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $work/ca.pem;
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;
        }
    }
}
CONF
    nginx -c "$work/proxy/nginx.conf" -p "$work/proxy" &
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
    wait_for_port "$PROXY_PORT"
    curl -fsS -o /dev/null "http://127.0.0.1:$PROXY_PORT$REQUEST_PATH"
    local processes before after
    mapfile -t processes < <(proxy_processes)
    before=$(cpu_ticks "${processes[@]}")
    wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$PROXY_PORT$REQUEST_PATH" >"$work/wrk.txt"
    after=$(cpu_ticks "${processes[@]}")
    if ! running "${proxy_pids[0]}"; then
        echo "$proxy exited during round $round; its log: $work" >&2
        exit 1
    fi
    stop "${proxy_pids[@]}"
    proxy_pids=()
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

make_certificates
start_upstream

echo "proxy,round,connections,requests_per_s,p50,p99,errors,proxy_cpu_s,requests_per_cpu_s" >"$csv"
echo "wrk -t1 -c$CONNECTIONS -d$DURATION $REQUEST_PATH; upstream: nginx (1 worker) over TLS and plain HTTP; proxies: $PROXY_THREADS threads; $(nproc) cores" >&2
printf "%-15s %5s %12s %9s %9s %7s %9s %14s\n" proxy round "req/s" p50 p99 errors "cpu s" "req/cpu-s"
for round in $(seq 1 "$ROUNDS"); do
    for proxy in $PROXIES; do
        run_one "$proxy" "$round"
    done
done
echo "results: $csv" >&2
