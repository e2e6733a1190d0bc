#!/usr/bin/env bash
# bench/service.sh - a service API endpoint `GET /customers/{id}` (one SQL
# SELECT by primary key, random ids over 10,000 rows) on SQLite and on
# PostgreSQL, under wrk (50 connections), next to the same query issued by
# pgbench straight to PostgreSQL: the database's own ceiling on this machine.
# Layout: wrk / pgbench on CPU 0; Portico and PostgreSQL on CPU 1 (so every
# microsecond Portico adds shows). Prints requests/s and p99 per target and
# Portico-on-PostgreSQL / pgbench (target >= 0.5).
# Usage: bench/service.sh [PATH/TO/portico]   Env: DUR(10s) WARM(2s) CONNS(50) ROUNDS(3)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build/release/portico}
DUR=${DUR:-10s}; WARM=${WARM:-2s}; CONNS=${CONNS:-50}; ROUNDS=${ROUNDS:-3}
PT=18380; PGPORT=18381
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
for b in wrk taskset curl sqlite3 "$PGBIN/initdb" "$PGBIN/pgbench"; do
  command -v "$b" >/dev/null || [ -x "$b" ] || { echo "missing $b: run scripts/setup.sh"; exit 1; }; done
[ -x "$bin" ] || { echo "no portico binary at $bin (make build)"; exit 1; }
run=$(mktemp -d); chmod 755 "$run"; ptpid=""
cleanup() {
  [ -n "$ptpid" ] && kill -TERM "$ptpid" 2>/dev/null
  [ -d "$run/pg" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$run/pg" -m immediate stop >/dev/null 2>&1
  rm -rf "$run"
}
trap cleanup EXIT

# the same 10,000 customers in both databases
rows=$(mktemp); for i in $(seq 1 10000); do echo "$i,Customer $i,c$i@example.com,$((i % 1000)).50"; done > "$rows"
sqlite3 "$run/erp.db" "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, balance DECIMAL(12,2));" \
  ".mode csv" ".import $rows customers"
mkdir -p "$run/pg" "$run/sock" && chown postgres "$run/pg" "$run/sock"
runuser -u postgres -- "$PGBIN/initdb" -D "$run/pg" -U portico --auth=trust -E UTF8 >/dev/null
taskset -c 1 runuser -u postgres -- "$PGBIN/pg_ctl" -D "$run/pg" -l "$run/sock/pg.log" \
  -o "-p $PGPORT -k $run/sock -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >/dev/null
url="postgresql://portico@127.0.0.1:$PGPORT/postgres"
psql -q "$url" -c "CREATE TABLE customers(id integer PRIMARY KEY, name text NOT NULL, email text, balance numeric(12,2));"
psql -q "$url" -c "\\copy customers FROM '$rows' CSV"
rm -f "$rows"

mkdir -p "$run/apis"
cat > "$run/portico.yaml" <<EOF
workers: 1
listen:
  - address: 127.0.0.1:$PT
limits:
  keepalive_timeout: 300s
processes:
  max_running: 8
  max_queued: 1024
log:
  level: warn
  access_log: "off"
apis: apis
EOF
for db in sqlite pg; do
  if [ $db = sqlite ]; then u="sqlite:$run/erp.db"; else u="$url"; fi
  cat > "$run/apis/$db.yaml" <<EOF
name: crm-$db
base_path: /$db
kind: service
title: CRM on $db
version: "1"
connections:
  db:
    url: $u
    pool: {max: 8}
processes:
  get_customer:
    mode: low_latency
    steps:
      - sql:
          query: SELECT id, name, email, balance FROM customers WHERE id = :id
          params: {id: number(path.id)}
          result: row
routes:
  - {method: GET, path: "/customers/{id}", process: get_customer}
EOF
done
taskset -c 1 "$bin" serve --config "$run/portico.yaml" 2> "$run/portico.err" & ptpid=$!
for db in sqlite pg; do
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$PT/$db/customers/1" 2>/dev/null && break; sleep 0.1; done
  curl -fsS "http://127.0.0.1:$PT/$db/customers/42" | grep -q '"id":42' || { echo "$db endpoint did not answer"; cat "$run/portico.err"; exit 1; }
done

cat > "$run/random.lua" <<'LUA'
request = function()
  return wrk.format("GET", wrk.path .. math.random(1, 10000))
end
LUA
write_report_lua
cat "$run/random.lua" >> "$run/report.lua"
cat > "$run/pgbench.sql" <<'SQL'
\set id random(1, 10000)
SELECT id, name, email, balance FROM customers WHERE id = :id;
SQL
echo "== GET /customers/{id}: Portico (1 worker, 8 process threads) on SQLite and PostgreSQL vs pgbench; c=$CONNS, $ROUNDS rounds x $DUR"
printf 'round\ttarget\trps\tp50_us\tp99_us\terrors\n' > "$run/r.tsv"
secs=${DUR%s}
for r in $(seq 1 "$ROUNDS"); do
  for db in sqlite pg; do
    wrk_run "$PT/$db/customers/" "$WARM" > /dev/null
    read -r rps p50 p99 errs < <(wrk_run "$PT/$db/customers/" "$DUR")
    printf '%s\tportico-%s\t%s\t%s\t%s\t%s\n' "$r" "$db" "$rps" "$p50" "$p99" "$errs" | tee -a "$run/r.tsv"
  done
  out=$(taskset -c 0 "$PGBIN/pgbench" -n -c "$CONNS" -j 1 -T "$secs" -f "$run/pgbench.sql" "$url" 2>/dev/null)
  tps=$(echo "$out" | awk '/^tps/ {print $3; exit}')
  lat=$(echo "$out" | awk '/latency average/ {print $4 * 1000; exit}')
  printf '%s\tpgbench\t%s\t%s\tNA\t0\n' "$r" "$tps" "$lat" | tee -a "$run/r.tsv"
done
echo
printf '%-16s %10s %8s %8s\n' target rps p50_us p99_us
for t in portico-sqlite portico-pg pgbench; do
  printf '%-16s %10.0f %8s %8s\n' $t "$(med "$run/r.tsv" $t 3)" "$(med "$run/r.tsv" $t 4)" "$(med "$run/r.tsv" $t 5)"
done
awk -v a="$(med "$run/r.tsv" portico-pg 3)" -v b="$(med "$run/r.tsv" pgbench 3)" \
  'BEGIN{printf "ratio portico-pg/pgbench: %.3f (target >= 0.5); pgbench p50 column is its average latency\n", a/b}'
