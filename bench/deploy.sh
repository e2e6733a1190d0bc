#!/usr/bin/env bash
# bench/deploy.sh - hot deploys under load: wrk (50 connections) on a static
# route for DUR without deploys, then for DUR while the admin API deploys the
# API's two revisions alternately every INTERVAL seconds (each deploy
# answered once published). A third run makes the same loop of curl calls
# without deploying (GET /admin/openapi.json): on 2 CPUs the loop shares
# wrk's CPU and its own cost shows in wrk's latencies. Prints requests/s,
# p50, p99 and errors (connection errors + non-2xx) of each run: errors
# must be 0; a deploy's cost is the deploy row against the no-op row.
# Layout: wrk and the deploy loop on CPU 0, Portico on CPU 1.
# Usage: bench/deploy.sh [PATH/TO/portico]   Env: DUR(10s) CONNS(50) INTERVAL(0.2)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build/release/portico}
DUR=${DUR:-10s}; CONNS=${CONNS:-50}; INTERVAL=${INTERVAL:-0.2}
PT=18390; ADMIN=18391
for b in wrk taskset curl; do command -v "$b" >/dev/null || { echo "missing $b: run scripts/setup.sh"; exit 1; }; done
[ -x "$bin" ] || { echo "no portico binary at $bin (make build)"; exit 1; }
run=$(mktemp -d); ptpid=""; looppid=""
cleanup() { [ -n "$looppid" ] && kill "$looppid" 2>/dev/null; [ -n "$ptpid" ] && kill -TERM "$ptpid" 2>/dev/null; rm -rf "$run"; }
trap cleanup EXIT
write_report_lua
mkdir -p "$run/apis"
cat > "$run/portico.yaml" <<YAML
workers: 1
listen:
  - address: 127.0.0.1:$PT
log: {level: warn, access_log: "off"}
store: sqlite:data/portico.db
environment: bench
admin: {address: "127.0.0.1:$ADMIN"}
YAML
for v in alpha beta; do
  cat > "$run/hello-$v.yaml" <<YAML
name: hello
base_path: /hello
kind: service
title: Hello
version: "1"
routes:
  - method: GET
    path: /greeting
    respond: {body: "$v"}
YAML
done
(cd "$run" && "$bin" admin token create -c portico.yaml --name bench > token 2>/dev/null)
H="Authorization: Bearer $(cat "$run/token")"
cd "$run"
taskset -c 1 "$bin" serve --config portico.yaml 2> "$run/stderr.log" &
ptpid=$!
for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$ADMIN/admin/openapi.json" && break; sleep 0.1; done
for v in alpha beta; do curl -fs -o /dev/null -H "$H" --data-binary @"$run/hello-$v.yaml" "http://127.0.0.1:$ADMIN/admin/apis"; done
curl -fs -o /dev/null -H "$H" -d '{"api": "hello", "revision": 1}' "http://127.0.0.1:$ADMIN/admin/environments/bench/deployments"
curl -fs "http://127.0.0.1:$PT/hello/greeting" >/dev/null

base=$(wrk_run "$PT/hello/greeting" "$DUR")
# call_loop PATH [JSON-BODY-FOR-REVISION]: one admin call every INTERVAL
call_loop() {
  local i=0 rev
  while :; do
    rev=$(( i % 2 + 1 ))
    if [ -n "${2:-}" ]; then
      curl -fs -o /dev/null -H "$H" -d "{\"api\": \"hello\", \"revision\": $rev}" \
        "http://127.0.0.1:$ADMIN$1" && echo ok >> "$run/calls"
    else
      curl -fs -o /dev/null "http://127.0.0.1:$ADMIN$1" && echo ok >> "$run/calls"
    fi
    i=$((i + 1)); sleep "$INTERVAL"
  done
}
# with_loop PATH [deploy]: wrk while the loop runs -> "rps p50 p99 errors calls"
with_loop() {
  rm -f "$run/calls"
  taskset -c 0 bash -c "$(declare -f call_loop); H='$H'; ADMIN=$ADMIN; INTERVAL=$INTERVAL; run=$run; call_loop $1 ${2:-}" &
  looppid=$!
  local res; res=$(wrk_run "$PT/hello/greeting" "$DUR")
  kill "$looppid"; wait "$looppid" 2>/dev/null || true; looppid=""
  echo "$res $(wc -l < "$run/calls" 2>/dev/null || echo 0)"
}
# the loop's own cost (curl and bash on wrk's CPU), then the same loop deploying
noop=$(with_loop /admin/openapi.json)
during=$(with_loop /admin/environments/bench/deployments deploy)
printf "%-34s %12s %10s %10s %8s\n" "run" "requests/s" "p50 us" "p99 us" "errors"
read -r r p50 p99 e <<< "$base";     printf "%-34s %12s %10s %10s %8s\n" "no admin calls" "$r" "$p50" "$p99" "$e"
read -r r p50 p99 e n <<< "$noop";   printf "%-34s %12s %10s %10s %8s\n" "$n no-op admin calls (loop cost)" "$r" "$p50" "$p99" "$e"
read -r r p50 p99 e n <<< "$during"; printf "%-34s %12s %10s %10s %8s\n" "$n deploys" "$r" "$p50" "$p99" "$e"
