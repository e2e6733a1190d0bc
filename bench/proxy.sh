#!/usr/bin/env bash
# bench/proxy.sh - Portico proxying to an nginx upstream vs nginx proxying to
# the same upstream (keep-alive pool of 64 on both), in the same run. One
# worker each; wrk (1 thread) on CPU 0; upstream and proxy share CPU 1, so the
# proxy's cost shows directly (../shared/bench/peers.sh "layout B").
# Prints requests/s, p50, p99 and proxy CPU per request (schedstat), medians
# over interleaved rounds, and the Portico/nginx ratios.
# Usage: bench/proxy.sh [PATH/TO/portico]   Env: ROUNDS(3) DUR(10s) WARM(2s) CONNS(50)
#   UPSTREAM_TLS=1: the upstream speaks https (a test CA); both proxies verify it
#   (name and chain), send SNI and reuse their pooled TLS connections.
#   GATEWAY=1: the "gateway" scenario of issue 7 - an API key checked on every
#   request (nginx: a map of the X-API-Key header, 401 when unknown; Portico:
#   the auth policy), a rate limit far above the load (nginx: limit_req per
#   key; Portico: rate_limit) and the access log written (both buffered, to
#   a file).
#   METRICS_AB=1: a second Portico, the same but with `metrics: {enabled:
#   false}`, joins the rounds; prints the metrics-on/off ratio (issue 9:
#   recording costs <= 3% requests/s).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build/release/portico}
ROUNDS=${ROUNDS:-3}; DUR=${DUR:-10s}; WARM=${WARM:-2s}; CONNS=${CONNS:-50}
UP=18280; NGX=18281; PT=18282; PT2=18283
for b in nginx wrk taskset curl; do command -v $b >/dev/null || { echo "missing $b: run scripts/setup.sh"; exit 1; }; done
[ -x "$bin" ] || { echo "no portico binary at $bin (make build)"; exit 1; }
run=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; done; sleep 0.5
            for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null; done; rm -rf "$run"; }
trap cleanup EXIT
[ -n "${HOLD:-}" ] && trap - EXIT
TLS=${UPSTREAM_TLS:-}
uplisten="listen 127.0.0.1:$UP backlog=4096;"; scheme=http; pxtls=""; pttls=""
if [ -n "$TLS" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$run/up.key" \
    -out "$run/up.pem" -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null
  uplisten="listen 127.0.0.1:$UP ssl backlog=4096; ssl_certificate $run/up.pem; ssl_certificate_key $run/up.key; ssl_protocols TLSv1.2 TLSv1.3;"
  scheme=https
  pxtls="proxy_ssl_verify on; proxy_ssl_trusted_certificate $run/up.pem; proxy_ssl_name localhost; proxy_ssl_server_name on; proxy_ssl_session_reuse on;"
  pttls="  tls: {ca_file: $run/up.pem}"
fi
host=127.0.0.1; [ -n "$TLS" ] && host=localhost
GW=${GATEWAY:-}; gwhttp=""; gwloc=""; ptlog='"off"'; ptusers=""; ptpolicies=""
if [ -n "$GW" ]; then
  { read -r KEY; read -r KEYHASH; } < <("$bin" user key)
  export WRK_HEADER="X-API-Key: $KEY"
  gwhttp="map \$http_x_api_key \$api_client { default \"\"; \"$KEY\" bench; }
  limit_req_zone \$api_client zone=rl:10m rate=1000000r/s;
  log_format gw escape=json '{\"time\":\"\$time_iso8601\",\"request_id\":\"\$request_id\",\"client\":\"\$remote_addr\",\"method\":\"\$request_method\",\"path\":\"\$uri\",\"status\":\$status,\"bytes_out\":\$bytes_sent,\"duration\":\$request_time,\"user\":\"\$api_client\",\"upstream_status\":\"\$upstream_status\"}';"
  gwloc="if (\$api_client = \"\") { return 401; } limit_req zone=rl burst=100000 nodelay; access_log $run/px.access gw buffer=64k flush=1s;"
  ptlog="$run/pt.access"
  ptusers="users:
  - {name: bench, api_keys: [\"$KEYHASH\"]}"
  ptpolicies="policies:
  auth: {methods: [api_key]}
  rate_limit: {rate: 1000000/s, burst: 100000}"
  curlh=(-H "X-API-Key: $KEY")
else
  curlh=()
fi
common="client_body_temp_path $run/b; proxy_temp_path $run/p; fastcgi_temp_path $run/f; uwsgi_temp_path $run/u; scgi_temp_path $run/s; access_log off; keepalive_requests 1000000;"
cat > "$run/up.conf" <<EOF
worker_processes 1; daemon off; pid $run/up.pid; error_log $run/up.err warn;
events { worker_connections 4096; }
http { $common server { $uplisten location / { default_type application/json; return 200 '{"ok":true}'; } } }
EOF
cat > "$run/px.conf" <<EOF
worker_processes 1; daemon off; pid $run/px.pid; error_log $run/px.err warn;
events { worker_connections 4096; }
http { $common $gwhttp
  upstream up { server 127.0.0.1:$UP; keepalive 64; keepalive_requests 1000000; }
  server { listen 127.0.0.1:$NGX backlog=4096; location / { proxy_pass $scheme://up; proxy_http_version 1.1; proxy_set_header Connection ""; $pxtls $gwloc } } }
EOF
mkdir -p "$run/apis"
cat > "$run/portico.yaml" <<EOF
workers: 1
listen:
  - address: 127.0.0.1:$PT
limits:
  keepalive_timeout: 300s
log:
  level: warn
  access_log: $ptlog
apis: apis
$ptusers
EOF
cat > "$run/apis/bench.yaml" <<EOF
name: bench
base_path: /bench
kind: proxy
title: Benchmark
version: "1"
$ptpolicies
upstream:
  targets:
    - url: $scheme://$host:$UP
  keepalive:
    max_idle: 64
    max_requests: 1000000
$pttls
EOF
taskset -c 1 nginx -p "$run" -c "$run/up.conf" -e "$run/up.err" & pids+=($!); UPPID=$!
taskset -c 1 nginx -p "$run" -c "$run/px.conf" -e "$run/px.err" & pids+=($!); NGXPID=$!
taskset -c 1 "$bin" serve --config "$run/portico.yaml" 2> "$run/portico.err" & pids+=($!); PTPID=$!
AB=${METRICS_AB:-}; targets="nginx portico"; urls=("$scheme://localhost:$UP/" "http://127.0.0.1:$NGX/" "http://127.0.0.1:$PT/bench/")
if [ -n "$AB" ]; then
  mkdir -p "$run/off"; cp -r "$run/apis" "$run/off/apis"
  sed -e "s/127.0.0.1:$PT/127.0.0.1:$PT2/" -e "s#$run/pt.access#$run/off/pt.access#" "$run/portico.yaml" > "$run/off/portico.yaml"
  printf 'metrics:\n  enabled: false\n' >> "$run/off/portico.yaml"
  taskset -c 1 "$bin" serve --config "$run/off/portico.yaml" 2> "$run/off/portico.err" & pids+=($!); PT2PID=$!
  targets="nginx portico portico-nometrics"; urls+=("http://127.0.0.1:$PT2/bench/")
fi
for u in "${urls[@]}"; do
  for _ in $(seq 1 100); do curl -fsS -k "${curlh[@]}" -o /dev/null "$u" 2>/dev/null && break; sleep 0.1; done
  [ "$(curl -fsS -k "${curlh[@]}" "$u")" = '{"ok":true}' ] || { echo "$u did not answer"; cat "$run/portico.err" "$run/px.err"; exit 1; }
done
if [ -n "$GW" ]; then
  for u in "http://127.0.0.1:$NGX/" "http://127.0.0.1:$PT/bench/"; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'X-API-Key: wrong' "$u")" = 401 ] || { echo "$u accepts a wrong key"; exit 1; }
  done
fi
ngxw=$(ps -o pid= --ppid "$NGXPID" | tr -d ' ' | head -1)
write_report_lua
echo "== proxies${GW:+ (gateway: API key + rate limit + access log)}: nginx $(nginx -v 2>&1 | sed 's/.*\///') vs portico; upstream $scheme; wrk c=$CONNS on cpu0, upstream+proxy on cpu1; $ROUNDS rounds x $DUR"
printf 'round\ttarget\trps\tp50_us\tp99_us\terrors\tproxy_ns_per_req\n' > "$run/r.tsv"
for r in $(seq 1 "$ROUNDS"); do
  for t in $targets; do
    case $t in nginx) u="$NGX/"; p=$ngxw;; portico) u="$PT/bench/"; p=$PTPID;; *) u="$PT2/bench/"; p=$PT2PID;; esac
    wrk_run "$u" "$WARM" > /dev/null
    c0=$(cpu_ns "$p"); read -r rps p50 p99 errs < <(wrk_run "$u" "$DUR"); c1=$(cpu_ns "$p")
    ns=$(awk -v a="$c0" -v b="$c1" -v r="$rps" -v d="${DUR%s}" 'BEGIN{printf "%.0f", (b-a)/(r*d)}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$t" "$rps" "$p50" "$p99" "$errs" "$ns" | tee -a "$run/r.tsv"
  done
done
echo
printf '%-8s %10s %8s %8s %14s\n' target rps p50_us p99_us proxy_ns/req
for t in $targets; do printf '%-8s %10.0f %8s %8s %14s\n' $t "$(med "$run/r.tsv" $t 3)" "$(med "$run/r.tsv" $t 4)" "$(med "$run/r.tsv" $t 5)" "$(med "$run/r.tsv" $t 7)"; done
awk -v a="$(med "$run/r.tsv" portico 3)" -v b="$(med "$run/r.tsv" nginx 3)" -v c="$(med "$run/r.tsv" portico 5)" -v d="$(med "$run/r.tsv" nginx 5)" -v e="$(med "$run/r.tsv" portico 7)" -v f="$(med "$run/r.tsv" nginx 7)" \
  'BEGIN{printf "ratio portico/nginx: rps %.3f (target >= 1.0), p99 %.3f (target <= 1.1), proxy CPU per request %.3f (target <= 1.0)\n", a/b, c/d, e/f}'
if [ -n "$AB" ]; then
  awk -v a="$(med "$run/r.tsv" portico 3)" -v b="$(med "$run/r.tsv" portico-nometrics 3)" -v c="$(med "$run/r.tsv" portico 5)" -v d="$(med "$run/r.tsv" portico-nometrics 5)" -v e="$(med "$run/r.tsv" portico 7)" -v f="$(med "$run/r.tsv" portico-nometrics 7)" \
    'BEGIN{printf "metrics on/off: rps %.3f (target >= 0.97), p99 %.3f, CPU per request %.3f\n", a/b, c/d, e/f}'
fi
