#!/usr/bin/env bash
# The end-to-end smoke path under valgrind (memcheck): start a node, send good
# and bad requests (keep-alive, pipelining, chunked, limits, smuggling shapes,
# reload), stop it with SIGTERM, and fail on any memory error or definite leak.
# Usage: scripts/valgrind-smoke.sh PATH/TO/portico   (KEEP=1 keeps the work folder)
set -euo pipefail
bin=${1:?portico binary}
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
pid=""
uppid=""
tlsuppid=""
cleanup() { [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; [ -n "$uppid" ] && kill "$uppid" 2>/dev/null
            [ -n "$tlsuppid" ] && kill "$tlsuppid" 2>/dev/null
            [ -n "${KEEP:-}" ] || rm -rf "$dir"; }
trap cleanup EXIT
mkdir -p "$dir/apis"
cp "$root"/examples/apis/*.yaml "$dir/apis/"
# an upstream for the proxy API (Python's http.server on an ephemeral port)
mkdir -p "$dir/www" && head -c 300000 /dev/urandom > "$dir/www/blob.bin"
upport=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/python3 -m http.server "$upport" --bind 127.0.0.1 --directory "$dir/www" >/dev/null 2>&1 &
uppid=$!
sed -i "s#http://127.0.0.1:8081#http://127.0.0.1:$upport#" "$dir/apis/legacy.yaml"
cat > "$dir/apis/gone.yaml" <<YAML
name: gone
base_path: /gone
kind: proxy
title: Nothing listens there
version: "1"
upstream:
  targets:
    - url: http://127.0.0.1:9
  health: {max_fails: 0}   # every request below reaches the (refusing) target
YAML
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 1 \
  -subj "/CN=localhost" -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
# an https upstream (Python's http.server over TLS with the same certificate), checked actively
tlsupport=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/python3 - "$tlsupport" "$dir" >/dev/null 2>&1 <<'PY' &
import functools, http.server, ssl, sys
port, d = int(sys.argv[1]), sys.argv[2]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=d + "/www")
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(d + "/cert.pem", d + "/key.pem")
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
PY
tlsuppid=$!
cat > "$dir/apis/secure-legacy.yaml" <<YAML
name: secure-legacy
base_path: /secure-legacy
kind: proxy
title: The same files over TLS
version: "1"
upstream:
  targets:
    - url: https://127.0.0.1:$tlsupport
  tls: {ca_file: $dir/cert.pem}
  health:
    check: {path: /blob.bin, interval: 1s, timeout: 900ms}
YAML
cat > "$dir/apis/gone-checked.yaml" <<YAML
name: gone-checked
base_path: /gone-checked
kind: proxy
title: Nothing listens there, and checks say so
version: "1"
upstream:
  targets:
    - url: http://127.0.0.1:9
  health:
    check: {path: /health, interval: 1s, timeout: 500ms, fails: 1}
YAML
# a service API: SQL on SQLite, a Lua script, an http step, paging, XML
sqlite3 "$dir/erp.db" "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, balance DECIMAL(10,2));
  INSERT INTO customers(name, balance) VALUES ('Ada', 1.5), ('Bo', 2), ('Cy', 3);"
cat > "$dir/apis/crm.yaml" <<YAML
name: crm
base_path: /crm
kind: service
title: CRM
version: "1"
connections:
  db: {url: "sqlite:../erp.db", pool: {min: 1, max: 2}}
  files: {url: "http://127.0.0.1:$upport"}
schemas:
  customer: {type: object, required: [name], properties: {name: {type: string, maxLength: 20}, balance: {type: number}}}
processes:
  list:
    steps:
      - name: rows
        sql:
          query: SELECT id, name, balance FROM customers WHERE \${after} ORDER BY \${order} LIMIT :limit
          params: {limit: page.fetch}
          page: {by: [id], sort: [name], default_limit: 2}
  create:
    steps:
      - name: ins
        sql: {query: "INSERT INTO customers(name, balance) VALUES (:name, :balance)", params: {name: body.name, balance: "default(body.balance, 0)"}, result: key}
      - script: {source: "return {id = ctx.steps.ins.key, doubled = (ctx.body.balance or 0) * 2}"}
      - name: blob
        http: {connection: files, url: "/blob.bin", max_response: 1MiB}
      - respond: {status: 201, body: "{id: steps.step2.id, doubled: steps.step2.doubled, got: steps.blob.status}"}
  loop:
    steps:
      - script: {instructions: 100000, source: "while true do end"}
routes:
  - {method: GET, path: /customers, process: list}
  - {method: POST, path: /customers, process: create, body_schema: customer}
  - {method: GET, path: /loop, process: loop}
YAML
cat > "$dir/portico.yaml" <<YAML
workers: 2
listen:
  - address: 127.0.0.1:0
  - address: 127.0.0.1:0
    name: secure
    tls: {cert: cert.pem, key: key.pem}
limits:
  max_body_size: 1KiB
log:
  level: info
  access_log: $dir/access.log
apis: apis
store: sqlite:data/portico.db
environment: smoke
admin: {address: "127.0.0.1:0"}
YAML
"$bin" admin token create -c "$dir/portico.yaml" --name smoke > "$dir/token" 2>/dev/null
valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
  --show-leak-kinds=definite --track-fds=no --log-file="$dir/valgrind.log" \
  "$bin" serve --config "$dir/portico.yaml" 2> "$dir/stderr.log" &
pid=$!
for _ in $(seq 1 300); do
  grep -q " started: " "$dir/stderr.log" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/stderr.log" "$dir/valgrind.log"; exit 1; }
  sleep 0.1
done
port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$dir/stderr.log" | head -1)
[ -n "$port" ] || { echo "no port"; cat "$dir/stderr.log"; exit 1; }
u="http://127.0.0.1:$port"
check() { # expected-status curl-args...
  local want=$1; shift
  local got; got=$(curl -s -o /dev/null -w '%{http_code}' "$@" || true)
  [ "$got" = "$want" ] || { echo "expected $want got $got for $*"; exit 1; }
}
check 200 "$u/hello/v1/greetings"
check 200 "$u/hello/v1/greetings/fr"
check 201 -X POST -d '{"a":1}' "$u/hello/v1/greetings"
check 201 -X POST -H 'Transfer-Encoding: chunked' -d 'abc' "$u/hello/v1/greetings"
head -c 4096 /dev/zero > "$dir/big.bin"
check 413 -X POST --data-binary @"$dir/big.bin" "$u/hello/v1/greetings"
check 404 "$u/nowhere"
check 405 -X DELETE "$u/hello/v1/greetings"
check 200 "$u/_portico/apis"
check 200 "$u/_portico/ready"
for _ in $(seq 1 50); do curl -fsS -o /dev/null "http://127.0.0.1:$upport/" 2>/dev/null && break; sleep 0.1; done
check 200 "$u/legacy/v1/blob.bin"
cmp <(curl -fsS "$u/legacy/v1/blob.bin") "$dir/www/blob.bin" || { echo "proxied body differs"; exit 1; }
check 404 "$u/legacy/v1/missing"
check 501 -X POST -d 'x=1' "$u/legacy/v1/blob.bin"
check 502 "$u/gone/x"
check 500 -H 'Content-Type: text/xml; charset=utf-8' -H 'SOAPAction: "urn:x"' -d '<a/>' "$u/gone/x"
check 500 -H 'Content-Type: application/soap+xml; charset=utf-8' -d '<a/>' "$u/gone/x"
check 502 -H 'Accept: application/xml' "$u/gone/x"
for _ in $(seq 1 50); do curl -fsS -o /dev/null --cacert "$dir/cert.pem" "https://127.0.0.1:$tlsupport/" 2>/dev/null && break; sleep 0.1; done
check 200 "$u/secure-legacy/blob.bin"
cmp <(curl -fsS "$u/secure-legacy/blob.bin") "$dir/www/blob.bin" || { echo "proxied TLS body differs"; exit 1; }
sleep 1.5 # a few health checks, both ways
check 503 "$u/gone-checked/x"
check 200 "$u/crm/customers?sort=-name"
check 200 -H 'Accept: application/xml' "$u/crm/customers?limit=1"
check 201 -H 'Content-Type: application/json' -d '{"name": "Dee", "balance": 4.25}' "$u/crm/customers"
check 201 -H 'Content-Type: application/xml' -d '<c><name>Eve</name><balance>1</balance></c>' "$u/crm/customers"
check 409 -H 'Content-Type: application/json' -d '{"name": "Dee"}' "$u/crm/customers"
check 400 -H 'Content-Type: application/json' -d '{"name": 5}' "$u/crm/customers"
check 400 -H 'Content-Type: text/xml' -d '<!DOCTYPE x [<!ENTITY a "b">]><c><name>&a;</name></c>' "$u/crm/customers"
check 500 "$u/crm/loop"
/usr/bin/python3 - "$port" <<'PY'
import socket, sys
port = int(sys.argv[1])
def send(data):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(data); s.shutdown(socket.SHUT_WR)
    out = b""
    while True:
        b = s.recv(65536)
        if not b: break
        out += b
    s.close(); return out
r = send(b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\n\r\n" * 3)
assert r.count(b"HTTP/1.1 200") == 3, r
r = send(b"POST /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
assert r.startswith(b"HTTP/1.1 400"), r
r = send(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n")
assert r.startswith(b"HTTP/1.1 400"), r
r = send(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
assert r.startswith(b"HTTP/1.1 414"), r
r = send(b"\x16\x03\x01garbage\r\n\r\n")
assert r.startswith(b"HTTP/1.1 400"), r
PY
tport=$(sed -n 's/.*listening on https:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$dir/stderr.log" | head -1)
[ -n "$tport" ] || { echo "no TLS port"; cat "$dir/stderr.log"; exit 1; }
check 200 --cacert "$dir/cert.pem" "https://127.0.0.1:$tport/hello/v1/greetings"
check 201 --cacert "$dir/cert.pem" -X POST -d '{}' "https://127.0.0.1:$tport/hello/v1/greetings"
check 000 --tls-max 1.1 --cacert "$dir/cert.pem" "https://127.0.0.1:$tport/hello/v1/greetings"
head -c 300 /dev/urandom | curl -s -o /dev/null --max-time 2 "telnet://127.0.0.1:$tport" || true
kill -HUP "$pid"
sleep 1
check 200 "$u/hello/v1/greetings"
check 200 --cacert "$dir/cert.pem" "https://127.0.0.1:$tport/_portico/ready"
# the control plane: push, refuse, deploy, roll back, diff, undeploy
aport=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\) (listener "admin").*/\1/p' "$dir/stderr.log")
[ -n "$aport" ] || { echo "no admin port"; cat "$dir/stderr.log"; exit 1; }
A="http://127.0.0.1:$aport/admin"
H="Authorization: Bearer $(cat "$dir/token")"
check 401 "$A/apis"
check 200 -H "$H" "$A/apis"
sed 's/bonjour/salut/' "$dir/apis/hello.yaml" > "$dir/hello2.yaml"
check 201 -H "$H" --data-binary @"$dir/hello2.yaml" "$A/apis?notes=valgrind"
check 400 -H "$H" --data-binary 'name: [' "$A/apis"
check 201 -H "$H" -d '{"api": "hello"}' "$A/environments/smoke/deployments"
curl -fsS "$u/hello/v1/greetings" | grep -q salut || { echo "deploy not served"; exit 1; }
check 201 -H "$H" -d '{}' "$A/environments/smoke/apis/hello/rollback"
check 200 -H "$H" "$A/apis/hello/diff?from=1&to=2"
check 200 -X DELETE -H "$H" "$A/environments/smoke/apis/hello"
check 404 "$u/hello/v1/greetings"
check 409 -H "$H" -d '{"name": "smoke"}' "$A/environments"
# observability: Prometheus, the dashboard's documents, a console session, its
# CSRF check and the event stream (left open: the stop ends it)
M="http://127.0.0.1:$aport"
curl -fsS -o "$dir/metrics.txt" "$M/metrics"   # (to a file: grep -q would cut curl's pipe)
grep -q '^portico_http_requests_total{api="hello"' "$dir/metrics.txt" || { echo "no metrics"; exit 1; }
check 200 -H "$H" "$A/dashboard/summary?window=15m"
check 200 -H "$H" "$A/dashboard/series?window=1h&api=hello"
check 200 -H "$H" "$A/dashboard/summary?environment=other"
check 400 -H "$H" "$A/dashboard/summary?window=7x"
check 200 "$A/ui/"
curl -fsS -c "$dir/jar" -d "{\"token\": \"$(cat "$dir/token")\"}" "$A/session" > "$dir/session.json"
check 403 -b "$dir/jar" -d '{"name": "qa"}' "$A/environments"
check 200 -b "$dir/jar" "$A/nodes"
curl -sN -b "$dir/jar" --max-time 3 "$A/dashboard/stream" > "$dir/stream.txt" || true
grep -q '^event: tick' "$dir/stream.txt" || { echo "no dashboard tick"; exit 1; }
curl -sN -b "$dir/jar" "$A/dashboard/stream" > /dev/null 2>&1 & streampid=$!
sleep 1
kill -TERM "$pid"
set +e; wait "$pid"; rc=$?; set -e; pid=""
kill "$streampid" 2>/dev/null || true
if [ "$rc" -ne 0 ]; then echo "valgrind/portico exit $rc (files in $dir with KEEP=1)"; cat "$dir/valgrind.log"; exit 1; fi
grep -q "ERROR SUMMARY: 0 errors" "$dir/valgrind.log" || { cat "$dir/valgrind.log"; exit 1; }
echo "valgrind: clean ($(grep -c '"status"' "$dir/access.log") requests logged; $(grep 'ERROR SUMMARY' "$dir/valgrind.log" | sed 's/==[0-9]*== //'))"
