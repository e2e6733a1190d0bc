#!/usr/bin/env bash
# bench/run.sh - Portico's static route against nginx returning the same body,
# measured in the same run. One worker each, wrk pinned to CPU 0, the servers
# to CPU 1 (taskset), targets interleaved in every round. Prints requests/s,
# p50 and p99 per target and the Portico/nginx ratios, then the RSS of each
# server holding 10,000 idle keep-alive connections.
#
# Usage: bench/run.sh [PATH/TO/portico]     (make bench builds a release binary first)
# Env:   ROUNDS(3) DUR(10s) WARM(2s) CONNS(50) IDLE(10000) ACCESS_LOG(off|on) PIPELINE(8; 1 = skip)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build/release/portico}
ROUNDS=${ROUNDS:-3}; DUR=${DUR:-10s}; WARM=${WARM:-2s}; CONNS=${CONNS:-50}; IDLE=${IDLE:-10000}
ACCESS_LOG=${ACCESS_LOG:-off}
NGX_PORT=18180; PT_PORT=18181
for b in nginx wrk taskset curl; do command -v $b >/dev/null || { echo "missing $b: run scripts/setup.sh"; exit 1; }; done
[ -x "$bin" ] || { echo "no portico binary at $bin (make build)"; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
run=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; done; sleep 0.5
            for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null; done; rm -rf "$run"; }
trap cleanup EXIT

body='{"ok":true}'
mkdir -p "$run/ngx" "$run/apis"
if [ "$ACCESS_LOG" = on ]; then ngx_log="access_log $run/ngx/access.log combined buffer=16k flush=1s;"; pt_log="$run/access.log"
else ngx_log="access_log off;"; pt_log="off"; fi
cat > "$run/ngx/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $run/ngx/nginx.pid;
error_log $run/ngx/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 20000; }
http {
  server_tokens off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_body_temp_path $run/ngx/b; proxy_temp_path $run/ngx/p; fastcgi_temp_path $run/ngx/f;
  uwsgi_temp_path $run/ngx/u; scgi_temp_path $run/ngx/s;
  $ngx_log
  server {
    listen 127.0.0.1:$NGX_PORT backlog=4096 reuseport;
    location / { default_type application/json; return 200 '$body'; }
  }
}
NGX
cat > "$run/portico.yaml" <<PTC
workers: 1
listen:
  - address: 127.0.0.1:$PT_PORT
limits:
  keepalive_timeout: 300s
  max_connections: 20000
log:
  level: warn
  access_log: "$pt_log"
apis: apis
PTC
cat > "$run/apis/bench.yaml" <<API
name: bench
base_path: /bench
kind: service
title: Benchmark
version: "1"
routes:
  - method: GET
    path: /
    respond:
      headers: {Content-Type: application/json}
      body: '$body'
API
PT_PATH=/bench

taskset -c 1 nginx -p "$run/ngx" -c "$run/ngx/nginx.conf" -e "$run/ngx/error.log" &
pids+=($!); NGX_PID=$!
taskset -c 1 "$bin" serve --config "$run/portico.yaml" 2> "$run/portico.err" &
pids+=($!); PT_PID=$!
for port_path in "$NGX_PORT/" "$PT_PORT$PT_PATH"; do
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port_path" 2>/dev/null && break; sleep 0.1; done
  got=$(curl -fsS "http://127.0.0.1:$port_path") || { echo "server on $port_path did not start"; cat "$run/portico.err"; exit 1; }
  [ "$got" = "$body" ] || { echo "unexpected body from $port_path: $got"; exit 1; }
done
ngx_worker=$(ps -o pid= --ppid "$NGX_PID" | tr -d ' ' | head -1)

write_report_lua
# idle jiffies and total jiffies of CPU 0 (the load generator's)
cpu0() { awk '$1=="cpu0" {t=0; for(i=2;i<=NF;i++) t+=$i; print $5+$6, t}' /proc/stat; }

echo "== $(nginx -v 2>&1 | sed 's/.*: //') vs portico $("$bin" version | awk '{print $2}'); wrk c=$CONNS t=1 on cpu0, servers on cpu1; $ROUNDS rounds x $DUR; access log $ACCESS_LOG; kernel $(uname -r)"
printf 'round\ttarget\trps\tp50_us\tp99_us\terrors\tserver_ns_per_req\twrk_cpu_idle%%\n' > "$run/results.tsv"
for r in $(seq 1 "$ROUNDS"); do
  for t in nginx portico; do
    if [ $t = nginx ]; then target="$NGX_PORT/"; pid=$ngx_worker; else target="$PT_PORT$PT_PATH"; pid=$PT_PID; fi
    wrk_run "$target" "$WARM" > /dev/null
    c0=$(cpu_ns "$pid"); read -r i0 t0 < <(cpu0)
    read -r rps p50 p99 errs < <(wrk_run "$target" "$DUR")
    c1=$(cpu_ns "$pid"); read -r i1 t1 < <(cpu0)
    nspr=$(awk -v a="$c0" -v b="$c1" -v r="$rps" -v d="${DUR%s}" 'BEGIN{printf "%.0f", (b-a)/(r*d)}')
    idle=$(awk -v a="$i0" -v b="$i1" -v x="$t0" -v y="$t1" 'BEGIN{printf "%.0f", 100*(b-a)/(y-x)}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$t" "$rps" "$p50" "$p99" "$errs" "$nspr" "$idle" | tee -a "$run/results.tsv"
  done
done
n_rps=$(med "$run/results.tsv" nginx 3); p_rps=$(med "$run/results.tsv" portico 3); n50=$(med "$run/results.tsv" nginx 4); p50=$(med "$run/results.tsv" portico 4); n99=$(med "$run/results.tsv" nginx 5); p99=$(med "$run/results.tsv" portico 5)
n_ns=$(med "$run/results.tsv" nginx 7); p_ns=$(med "$run/results.tsv" portico 7)
echo
echo "== medians over $ROUNDS rounds (c=$CONNS, 1 worker each)"
printf '%-8s %12s %10s %10s %14s\n' target rps p50_us p99_us server_ns/req
printf '%-8s %12.0f %10s %10s %14s\n' nginx "$n_rps" "$n50" "$n99" "$n_ns"
printf '%-8s %12.0f %10s %10s %14s\n' portico "$p_rps" "$p50" "$p99" "$p_ns"
awk -v a="$p_rps" -v b="$n_rps" -v c="$p99" -v d="$n99" -v e="$p_ns" -v f="$n_ns" 'BEGIN{printf "ratio portico/nginx: rps %.3f (target >= 1.0), p99 %.3f (target <= 1.2), server CPU per request %.3f (lower is better)\n", a/b, c/d, e/f}'
echo "(wrk_cpu_idle% near 0 means the load generator, not the server, set the pace: compare server_ns/req then)"

# Server-bound variant: each connection pipelines PIPELINE requests per write, so
# the load generator spends less per request and the servers' CPU sets the pace.
if [ "${PIPELINE:-8}" -gt 1 ]; then
  cat > "$run/pipe.lua" <<LUA
init = function(args)
  local r = {}
  for i = 1, ${PIPELINE:-8} do r[i] = wrk.format(nil) end
  req = table.concat(r)
end
request = function() return req end
LUA
  echo
  echo "== pipelined: ${PIPELINE:-8} requests per write, c=$CONNS, $DUR, median of $ROUNDS"
  for t in nginx portico; do
    if [ $t = nginx ]; then target="$NGX_PORT/"; else target="$PT_PORT$PT_PATH"; fi
    for r in $(seq 1 "$ROUNDS"); do
      taskset -c 0 wrk -t1 -c"$CONNS" -d"$DUR" -s "$run/pipe.lua" "http://127.0.0.1:$target" |
        awk '/Requests\/sec/ {print $2}'
    done | sort -g | awk -v t=$t '{v[NR]=$1} END{print t, v[int((NR+1)/2)]}'
  done > "$run/pipe.txt"
  awk '{r[$1]=$2; printf "%-8s %12.0f responses/s\n", $1, $2} END{printf "ratio portico/nginx (pipelined): %.2f\n", r["portico"]/r["nginx"]}' "$run/pipe.txt"
fi

# RSS with IDLE idle keep-alive connections (each made one request first)
rss() { awk '/VmRSS/ {print $2}' /proc/"$1"/status; }
idle_rss() { # port path pid
  local before after
  before=$(rss "$3")
  after=$(taskset -c 0 /usr/bin/python3 "$root/bench/idle_conns.py" "$1" "$2" "$IDLE" "$3")
  echo "$before $after"
}
read -r nb na < <(idle_rss "$NGX_PORT" / "$ngx_worker")
read -r pb pa < <(idle_rss "$PT_PORT" "$PT_PATH" "$PT_PID")
echo
echo "== RSS with $IDLE idle keep-alive connections"
awk -v a="$nb" -v b="$na" -v c="$pb" -v d="$pa" -v n="$IDLE" 'BEGIN{
  printf "nginx worker: %.1f MiB -> %.1f MiB (%.0f bytes/conn)\n", a/1024, b/1024, (b-a)*1024/n;
  printf "portico:      %.1f MiB -> %.1f MiB (%.0f bytes/conn; target <= 64 MiB)\n", c/1024, d/1024, (d-c)*1024/n }'
