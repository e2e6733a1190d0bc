#!/usr/bin/env bash
# Starts the example in the foreground:
# - a small local upstream (Python's http.server serving examples/upstream/ on
#   127.0.0.1:8081, stopped by PID on exit) for the proxy API;
# - an example ERP database (SQLite, build/example/erp.db, created from
#   examples/erp.sql when absent) and a CRM API generated from it by
#   `portico generate` (build/example/apis/crm.yaml);
# - Portico with CONFIG, whose APIs are examples/apis/ plus the generated one
#   (copied into build/example/, where the node runs).
# Usage: scripts/run-example.sh BINARY CONFIG
set -euo pipefail
bin=$(cd "$(dirname "${1:?portico binary}")" && pwd)/$(basename "$1")
config=${2:?configuration}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$root/build/example
mkdir -p "$work/apis"
cp "$config" "$work/portico.yaml"
cp "$root"/examples/apis/*.yaml "$work/apis/"
if [ ! -f "$work/erp.db" ]; then
  sqlite3 "$work/erp.db" < "$root/examples/erp.sql"
  echo "created the example ERP database $work/erp.db (from examples/erp.sql)"
fi
"$bin" generate --db "sqlite:$work/erp.db" --name crm --base-path /crm/v1 --title "CRM" \
  --version 1 --naming camel -o "$work/apis/crm.yaml"
echo "generated the CRM API $work/apis/crm.yaml from it (portico generate)"
if [ ! -s "$work/admin.token" ]; then
  (cd "$work" && "$bin" admin token create -c "$work/portico.yaml" --name example) \
    > "$work/admin.token" 2>/dev/null
  chmod 600 "$work/admin.token"
  echo "created an admin API token in $work/admin.token"
fi
/usr/bin/python3 -m http.server 8081 --bind 127.0.0.1 --directory "$root/examples/upstream" \
  >/dev/null 2>&1 &
upstream=$!
trap 'kill "$upstream" 2>/dev/null || true' EXIT
trap 'kill -INT "$portico" 2>/dev/null || true' INT TERM
cat <<MSG

Portico is starting with $work/portico.yaml. Try, in another terminal:
  curl -i http://127.0.0.1:8080/crm/v1/customers?limit=2            (a page, and Link: rel="next")
  curl -i http://127.0.0.1:8080/crm/v1/customers/1
  curl -i http://127.0.0.1:8080/crm/v1/customers?city=Paris
  curl -i -X POST http://127.0.0.1:8080/crm/v1/customers -H 'Content-Type: application/json' \\
       -d '{"name": "Alan Turing", "email": "alan@example.com", "balance": 42.10}'
  curl -i -X PATCH http://127.0.0.1:8080/crm/v1/customers/2 -H 'Content-Type: application/json' \\
       -d '{"city": "Médan"}'
  curl -i http://127.0.0.1:8080/crm/v1/order_lines/1/2
  curl -i -X POST http://127.0.0.1:8080/crm/v1/orders -H 'Content-Type: application/json' \\
       -d '{"customerId": 999}'                                       (422: no such customer)
  curl -i http://127.0.0.1:8080/hello/v1/greetings
  curl -i http://127.0.0.1:8080/legacy/v1/index.json                   (proxied to 127.0.0.1:8081)
  curl -i http://127.0.0.1:8080/_portico/apis

The control plane (docs/admin-api.md): every revision is kept; push, deploy, roll back:
  export PORTICO_TOKEN=\$(cat $work/admin.token)
  $bin api list
  sed 's/bonjour/salut/' $work/apis/hello.yaml > /tmp/hello.yaml
  $bin api push /tmp/hello.yaml --notes "informal"             (revision 2)
  $bin api diff hello 1 2
  $bin deploy hello --env dev                                  (live at once, no request lost)
  curl http://127.0.0.1:8080/hello/v1/greetings
  $bin rollback hello --env dev                                (back to revision 1)
  $bin deployments --env dev

The console and live dashboard (docs/observability.md): http://127.0.0.1:9901/admin/ui/
  log in with the token in $work/admin.token; Prometheus: curl http://127.0.0.1:9901/metrics
Ctrl-C stops it (gracefully); kill -HUP <pid> reloads $work/portico.yaml and $work/apis/.

MSG
cd "$work"
"$bin" serve --config "$work/portico.yaml" &
portico=$!
set +e
wait "$portico"; rc=$?
# a signal interrupted the first wait: wait for the graceful stop
while kill -0 "$portico" 2>/dev/null; do wait "$portico"; rc=$?; done
exit "$rc"
