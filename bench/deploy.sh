#!/usr/bin/env bash
# bench/deploy.sh - hot deploys under load: wrk (50 connections) on a static
# route for DUR without deploys, then for DUR while the admin API deploys the
# API's two revisions alternately every INTERVAL seconds (each deploy
# answered once published). Prints requests/s, p50, p99 and errors
# (connection errors + non-2xx) of both runs and the deploys made: the
# errors must be 0 and p99 should barely move.
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
deploy_loop() {
  local i=0 rev
  while :; do
    rev=$(( i % 2 + 1 ))
    curl -fs -o /dev/null -H "$H" -d "{\"api\": \"hello\", \"revision\": $rev}" \
      "http://127.0.0.1:$ADMIN/admin/environments/bench/deployments" && echo ok >> "$run/deploys"
    i=$((i + 1)); sleep "$INTERVAL"
  done
}
taskset -c 0 bash -c "$(declare -f deploy_loop); H='$H'; ADMIN=$ADMIN; INTERVAL=$INTERVAL; run=$run; deploy_loop" &
looppid=$!
during=$(wrk_run "$PT/hello/greeting" "$DUR")
kill "$looppid"; wait "$looppid" 2>/dev/null || true; looppid=""
deploys=$(wc -l < "$run/deploys" 2>/dev/null || echo 0)
printf "%-28s %12s %10s %10s %8s\n" "run" "requests/s" "p50 us" "p99 us" "errors"
read -r r p50 p99 e <<< "$base";   printf "%-28s %12s %10s %10s %8s\n" "no deploys" "$r" "$p50" "$p99" "$e"
read -r r p50 p99 e <<< "$during"; printf "%-28s %12s %10s %10s %8s\n" "$deploys deploys (every ${INTERVAL}s)" "$r" "$p50" "$p99" "$e"
