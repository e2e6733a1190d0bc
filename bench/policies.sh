#!/usr/bin/env bash
# bench/policies.sh - what the policies cost and how exact the rate limit is,
# on a static route (Portico pinned to CPU 1, wrk to CPU 0, 1 worker):
#   none       no policy (the baseline)
#   api_key    auth with an API key (SHA-256 + binary search per request)
#   basic      auth with a password: Argon2id once, then the per-worker cache
#   jwt-rs256  auth with an RS256 token (one RSA-2048 verification per request)
#   jwt-es256  auth with an ES256 token (one P-256 verification per request)
#   cors       an allowed Origin (headers added to every answer)
#   rate       rate_limit 20000/s (burst 100) under more load than that for
#              DUR: the requests let through against the configured rate
# Prints requests/s, p50/p99 (us) and errors per scenario; the rate row also
# the measured rate and its deviation (the goal: within 1%).
# Usage: bench/policies.sh [PATH/TO/portico]   Env: DUR(10s) CONNS(50)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build/release/portico}
DUR=${DUR:-10s}; CONNS=${CONNS:-50}
PT=18395
for b in wrk taskset curl openssl /usr/bin/python3; do command -v "$b" >/dev/null || { echo "missing $b: run scripts/setup.sh"; exit 1; }; done
[ -x "$bin" ] || { echo "no portico binary at $bin (make build)"; exit 1; }
run=$(mktemp -d); ptpid=""
cleanup() { [ -n "$ptpid" ] && kill -TERM "$ptpid" 2>/dev/null; rm -rf "$run"; }
trap cleanup EXIT
write_report_lua
mkdir -p "$run/apis"
cd "$run"
openssl genrsa -out rsa.key 2048 2>/dev/null; openssl rsa -in rsa.key -pubout -out rsa.pem 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out ec.key; openssl ec -in ec.key -pubout -out ec.pem 2>/dev/null
keyout=$("$bin" user key); KEY=$(sed -n 1p <<<"$keyout"); KEYHASH=$(sed -n 2p <<<"$keyout")
PWHASH=$(echo "bench-password" | "$bin" user password)
/usr/bin/python3 - <<'PY'
import jwt, time
claims = {"sub": "bench", "aud": "portico", "exp": int(time.time()) + 3600}
open("rs.jwt", "w").write(jwt.encode(claims, open("rsa.key").read(), algorithm="RS256"))
open("es.jwt", "w").write(jwt.encode(claims, open("ec.key").read(), algorithm="ES256"))
PY
cat > portico.yaml <<YAML
workers: 1
listen:
  - address: 127.0.0.1:$PT
log: {level: warn, access_log: "off"}
apis: apis
users:
  - {name: bench, api_keys: ["$KEYHASH"], password: "$PWHASH"}
YAML
route() { printf '  - method: GET\n    path: /%s\n    policies: {%s}\n    respond: {body: ok}\n' "$1" "$2"; }
{
  printf 'name: b\nbase_path: /b\nkind: service\ntitle: B\nversion: "1"\nroutes:\n'
  printf '  - method: GET\n    path: /none\n    respond: {body: ok}\n'
  route api_key "auth: {methods: [api_key]}"
  route basic "auth: {methods: [basic]}"
  route jwt "auth: {methods: [jwt], jwt: {keys: [$run/rsa.pem, $run/ec.pem], audience: portico}}"
  route cors "cors: {origins: [\"https://app.example.com\"]}"
  route rate "rate_limit: {rate: 20000/s, burst: 100}"
} > apis/b.yaml
taskset -c 1 "$bin" serve --config portico.yaml 2> stderr.log &
ptpid=$!
for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$PT/b/none" && break; sleep 0.1; done

printf '%-10s %10s %8s %8s %7s\n' scenario rps p50_us p99_us errors
row() { local name=$1 path=$2; shift 2; local r; r=$(WRK_HEADER="${1:-}" wrk_run "$PT$path" "$DUR"); set -- $r
        printf '%-10s %10.0f %8s %8s %7s\n' "$name" "$1" "$2" "$3" "$4"; }
row none /b/none
row api_key /b/api_key "X-API-Key: $KEY"
row basic /b/basic "Authorization: Basic $(printf 'bench:bench-password' | base64 -w0)"
row jwt-rs256 /b/jwt "Authorization: Bearer $(cat rs.jwt)"
row jwt-es256 /b/jwt "Authorization: Bearer $(cat es.jwt)"
row cors /b/cors "Origin: https://app.example.com"
# the rate limit: count what gets through (2xx) against 20000/s x duration + burst
out=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"$DUR" "http://127.0.0.1:$PT/b/rate")
total=$(echo "$out" | awk '/requests in/ {print $1}')
secs=$(echo "$out" | awk '/requests in/ {gsub(/s,/, "", $4); print $4}')
refused=$(echo "$out" | awk '/Non-2xx/ {print $5}'); refused=${refused:-0}
awk -v t="$total" -v r="$refused" -v s="$secs" 'BEGIN {
  ok = t - r; want = 20000 * s + 100
  printf "rate       %10.0f offered/s; let through %d of %d in %.2f s = %.1f/s against 20000/s: %+.3f%%\n",
    t / s, ok, t, s, ok / s, 100 * (ok - want) / want }'
