#!/usr/bin/env bash
# Starts the example: a small local upstream (Python's http.server serving
# examples/upstream/ on 127.0.0.1:8081, stopped by PID on exit) and Portico
# with examples/portico.yaml in the foreground. Usage: scripts/run-example.sh BINARY CONFIG
set -euo pipefail
bin=${1:?portico binary}
config=${2:?configuration}
root=$(cd "$(dirname "$0")/.." && pwd)
/usr/bin/python3 -m http.server 8081 --bind 127.0.0.1 --directory "$root/examples/upstream" \
  >/dev/null 2>&1 &
upstream=$!
trap 'kill "$upstream" 2>/dev/null || true' EXIT
trap 'kill -INT "$portico" 2>/dev/null || true' INT TERM
cat <<MSG

Portico is starting with $config. Try, in another terminal:
  curl -i http://127.0.0.1:8080/hello/v1/greetings
  curl -i http://127.0.0.1:8080/hello/v1/greetings/fr
  curl -i -X POST http://127.0.0.1:8080/hello/v1/greetings -d '{}'
  curl -i http://127.0.0.1:8080/legacy/v1/index.json      (proxied to 127.0.0.1:8081)
  curl -i http://127.0.0.1:8080/status/
  curl -i http://127.0.0.1:8080/_portico/apis
  curl -i http://127.0.0.1:8080/_portico/health
Ctrl-C stops it (gracefully); kill -HUP <pid> reloads $config and examples/apis/.

MSG
"$bin" serve --config "$config" &
portico=$!
set +e
wait "$portico"; rc=$?
# a signal interrupted the first wait: wait for the graceful stop
while kill -0 "$portico" 2>/dev/null; do wait "$portico"; rc=$?; done
exit "$rc"
