"""The live dashboard's data (docs/observability.md "Dashboard and console"):
exact counts under a known load, the minute history kept in the store across
a restart (SQLite and PostgreSQL) and its retention, the Server-Sent Events
stream, console sessions (CSRF, logout, revoked tokens), bad parameters.
Real node, real stores, real sockets."""
import json
import socket
import sqlite3
import subprocess
import threading
import time

import pytest
import requests

from conftest import BIN, wait_until
from test_control import BACKENDS, control, create_token, restart  # noqa: F401 (fixture)

API = """\
name: shop
base_path: /shop
kind: service
title: Shop
version: "1"
routes:
  - method: GET
    path: /items
    respond: {status: 200, body: "[]"}
  - method: POST
    path: /items
    respond: {status: 201, body: "{}"}
  - method: GET
    path: /broken
    respond: {status: 503, body: "down"}
"""


def deploy_shop(n):
    r = n.admin.push(API)
    assert r.status_code in (200, 201), r.text
    r = n.admin.deploy("shop")
    assert r.status_code == 201, r.text


def pub(n, method, path, **kw):
    return requests.request(method, "http://127.0.0.1:%d%s" % (n.port, path), timeout=10, **kw)


def summary(n, **params):
    r = n.admin.get("/admin/dashboard/summary", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def route_row(s, api, route):
    rows = [r for r in s["routes"] if r["api"] == api and r["route"] == route]
    return rows[0] if rows else None


def load(n, counts):
    for (method, path, status), k in counts.items():
        for _ in range(k):
            assert pub(n, method, path).status_code == status


KNOWN = {("GET", "/shop/items", 200): 23, ("POST", "/shop/items", 201): 7,
         ("GET", "/shop/broken", 503): 5, ("GET", "/nowhere", 404): 4}


@BACKENDS
def test_summary_counts_a_known_load_and_survives_a_restart(control, backend):
    n = control(backend)
    deploy_shop(n)
    load(n, KNOWN)
    # the sampler reads the workers once a second
    assert wait_until(lambda: (route_row(summary(n), "shop", "GET /items") or {})
                      .get("requests") == 23, timeout=5)
    s = summary(n, window="15m")
    assert route_row(s, "shop", "GET /items")["codes"] == {"200": 23}
    assert route_row(s, "shop", "POST /items")["requests"] == 7
    b = route_row(s, "shop", "GET /broken")
    assert b["requests"] == 5 and b["errors"] == 5 and b["error_rate"] == 1
    assert route_row(s, "", "")["client_errors"] == 4
    assert s["status_codes"] == {"200": 23, "201": 7, "503": 5, "404": 4}
    assert s["status_classes"]["2xx"] == 30 and s["status_classes"]["5xx"] == 5
    t = s["totals"]
    assert t["requests"] == 39 and t["errors"] == 5 and t["client_errors"] == 4
    assert 0 < t["p50_ms"] <= t["p95_ms"] <= t["p99_ms"]
    apis = {a["api"]: a for a in s["apis"]}
    assert apis["shop"]["requests"] == 35
    # the filter narrows every table
    f = summary(n, api="shop", route="GET /broken")
    assert f["totals"]["requests"] == 5 and [r["route"] for r in f["routes"]] == ["GET /broken"]
    # the errors carry their request ids
    errs = [e for e in s["recent_errors"] if e["status"] == 503]
    assert len(errs) == 5 and all(len(e["request_id"]) == 32 for e in errs)
    # the admin listener's own calls are not traffic
    assert summary(n)["totals"]["requests"] == 39

    restart(n)
    # the minute rows were written at the stop and read back at the start
    s = summary(n, window="1h")
    assert route_row(s, "shop", "GET /items")["requests"] == 23, s["routes"]
    assert s["totals"]["requests"] == 39
    pts = n.admin.get("/admin/dashboard/series", params={"window": "1h"}).json()
    assert pts["resolution_s"] == 60 and len(pts["points"]) == 60
    assert sum(p["requests"] for p in pts["points"]) == 39
    pts = n.admin.get("/admin/dashboard/series",
                      params={"window": "1h", "api": "shop", "route": "GET /broken"}).json()
    assert sum(p["errors"] for p in pts["points"]) == 5
    nodes = n.admin.get("/admin/nodes").json()["items"]
    assert nodes[0]["this"] is True and nodes[0]["environment"] == "dev"


def test_series_second_by_second(control):
    n = control("sqlite")
    deploy_shop(n)
    load(n, {("GET", "/shop/items", 200): 10})

    def got():
        p = n.admin.get("/admin/dashboard/series", params={"window": "1m", "api": "shop"}).json()
        return sum(x["requests"] for x in p["points"]) == 10 and p
    p = wait_until(got, timeout=5)
    assert p and p["resolution_s"] == 1 and len(p["points"]) == 60
    busy = [x for x in p["points"] if x["requests"]]
    assert all(x["p50_ms"] is not None and x["p99_ms"] >= x["p50_ms"] for x in busy)
    assert all(x["p50_ms"] is None for x in p["points"] if not x["requests"])
    ts = [x["t"] for x in p["points"]]
    assert ts == sorted(ts) and ts[1] - ts[0] == 1000


def test_history_retention_and_rows_of_the_store(control):
    n = control("sqlite")
    node_id = n.admin.get("/admin/status").json()["node"]
    n.stop()
    now_min = int(time.time() // 60)
    db = sqlite3.connect(str(n.dir / "data" / "portico.db"))
    row = "INSERT INTO metrics_minutes VALUES (?, 'dev', ?, 'http', 'ghost', 'GET /x', 'GET', " \
          "?, 0, 0, ?, 0, ?, ?)"
    db.execute(row, (node_id, now_min - 8 * 1440, 11, 1100, "200:11", "40:11"))  # past 7 days
    db.execute(row, (node_id, now_min - 10, 13, 1300, "200:12,500:1", "40:13"))  # recent
    # two nodes of another environment sharing the store
    other = "INSERT INTO metrics_minutes VALUES (?, 'prod', ?, 'http', 'shop', 'GET /items', " \
            "'GET', ?, 0, 0, ?, 0, ?, ?)"
    db.execute(other, ("node-a", now_min - 3, 100, 10000, "200:99,502:1", "40:100"))
    db.execute(other, ("node-b", now_min - 2, 50, 5000, "200:50", "45:50"))
    db.commit()
    db.close()
    n.ports = {}
    n.start()
    assert wait_until(n.admin.up, timeout=15)

    def old_rows():
        c = sqlite3.connect(str(n.dir / "data" / "portico.db"))
        try:
            return c.execute("SELECT COUNT(*) FROM metrics_minutes WHERE minute < ?",
                             (now_min - 7 * 1440,)).fetchone()[0]
        finally:
            c.close()
    assert wait_until(lambda: old_rows() == 0, timeout=10)
    s = summary(n, window="1h")
    g = route_row(s, "ghost", "GET /x")
    assert g is not None and g["requests"] == 13 and g["errors"] == 1
    assert summary(n, window="5m")["totals"]["requests"] == 0  # ten minutes ago
    # the environment filter: prod's nodes, from the store
    p = summary(n, window="15m", environment="prod")
    assert p["environment"] == "prod"
    assert p["totals"]["requests"] == 150 and p["totals"]["errors"] == 1
    assert p["status_codes"] == {"200": 149, "502": 1}
    assert p["recent_errors"] == [] and p["pool"]["running"] == 0
    pts = n.admin.get("/admin/dashboard/series", params={"window": "15m",
                                                         "environment": "prod"}).json()
    assert pts["resolution_s"] == 60 and sum(x["requests"] for x in pts["points"]) == 150
    assert summary(n, window="15m", environment="dev")["totals"]["requests"] == 13  # ghost
    assert summary(n, window="15m", environment="staging")["totals"]["requests"] == 0
    r = n.admin.get("/admin/dashboard/summary", params={"environment": "../x"})
    assert r.status_code == 400
    nodes = {x["node"]: x for x in n.admin.get("/admin/nodes").json()["items"]}
    assert nodes["node-a"]["environment"] == "prod" and not nodes["node-a"]["this"]
    assert nodes[node_id]["this"]


def read_events(resp, want, timeout=6):
    """The first `want` tick events of an open SSE response."""
    events, buf, deadline = [], b"", time.time() + timeout
    for chunk in resp.iter_content(chunk_size=None):
        buf += chunk
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            lines = block.decode().split("\n")
            if "event: tick" in lines:
                data = [ln[6:] for ln in lines if ln.startswith("data: ")]
                events.append(json.loads("".join(data)))
        if len(events) >= want or time.time() > deadline:
            break
    return events


def login(n, token=None):
    s = requests.Session()
    r = s.post("http://127.0.0.1:%d/admin/session" % n.admin_port,
               json={"token": token or n.admin.token}, timeout=10)
    return s, r


def test_event_stream_moves_with_traffic(control):
    n = control("sqlite")
    deploy_shop(n)
    base = "http://127.0.0.1:%d" % n.admin_port
    r = requests.get(base + "/admin/dashboard/stream", stream=True, timeout=5)
    assert r.status_code == 401
    s, r = login(n)
    assert r.status_code == 200
    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            pub(n, "GET", "/shop/items")
            time.sleep(0.01)
    t = threading.Thread(target=traffic)
    t.start()
    try:
        resp = s.get(base + "/admin/dashboard/stream", stream=True, timeout=10)
        assert resp.status_code == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        ev = read_events(resp, 3)
        resp.close()
    finally:
        stop.set()
        t.join()
    assert len(ev) >= 3
    assert [e["t"] for e in ev] == sorted(e["t"] for e in ev)
    busy = [e for e in ev if e["node"]["requests"] > 0]
    assert busy, ev
    e = busy[-1]
    assert any(a["api"] == "shop" for a in e["apis"])
    assert any(r["route"] == "GET /items" and r["requests"] > 0 for r in e["routes"])


def test_stream_ends_when_the_node_stops(control):
    n = control("sqlite")
    sock = socket.create_connection(("127.0.0.1", n.admin_port), timeout=10)
    sock.sendall(b"GET /admin/dashboard/stream HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer "
                 + n.admin.token.encode() + b"\r\n\r\n")
    got = b""
    while b"event: tick" not in got:
        chunk = sock.recv(65536)
        assert chunk, got
        got += chunk
    assert got.startswith(b"HTTP/1.1 200") and b"Transfer-Encoding: chunked" in got
    t0 = time.time()
    rc = n.stop()
    while True:  # the node ends the stream, then the connection
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    sock.close()
    assert rc == 0
    assert time.time() - t0 < 8  # the stream does not hold the drain to its timeout
    assert got.endswith(b"\r\n0\r\n\r\n"), got[-200:]  # a complete chunked body
    n.check_clean()


def test_sessions_csrf_logout_and_revocation(control):
    n = control("sqlite")
    deploy_shop(n)
    base = "http://127.0.0.1:%d" % n.admin_port
    _, r = login(n, "pt_0000000000000000_" + "0" * 64)
    assert r.status_code == 401 and "Set-Cookie" not in r.headers
    _, r = login(n, "' OR 1=1 --")
    assert r.status_code == 401
    r = requests.post(base + "/admin/session", data=b"{not json", timeout=10)
    assert r.status_code == 400
    t2 = create_token(n, "browser")
    s, r = login(n, t2)
    assert r.status_code == 200
    csrf = r.json()["csrf"]
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie  # a plain-HTTP admin listener
    assert s.get(base + "/admin/session").json() == {"name": "browser", "csrf": csrf}
    # a change with the cookie alone is refused, and changes nothing
    r = s.post(base + "/admin/environments/dev/apis/shop/rollback", json={})
    assert r.status_code == 403 and r.json()["type"] == "urn:portico:problem:csrf"
    r = s.post(base + "/admin/environments", json={"name": "qa"},
               headers={"X-CSRF-Token": "0" * 64})
    assert r.status_code == 403
    envs = [e["name"] for e in n.admin.get("/admin/environments").json()["items"]]
    assert "qa" not in envs
    r = s.post(base + "/admin/environments", json={"name": "qa"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201, r.text
    # reading needs no CSRF token; the cookie alone of another site never comes (SameSite)
    assert s.get(base + "/admin/dashboard/summary").status_code == 200
    # logout ends it
    assert s.delete(base + "/admin/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert s.get(base + "/admin/apis").status_code == 401
    # a revoked token ends its sessions
    s2, r = login(n, t2)
    assert r.status_code == 200
    p = subprocess.run([BIN, "admin", "token", "revoke", "-c", str(n.config_path), "--name",
                        "browser"], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert s2.get(base + "/admin/apis").status_code == 401


def test_console_files_and_bad_parameters(control):
    n = control("sqlite")
    base = "http://127.0.0.1:%d" % n.admin_port
    r = requests.get(base + "/admin/ui/", timeout=10)
    assert r.status_code == 200 and "text/html" in r.headers["Content-Type"]
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "http" not in r.text.split("<body")[0].lower().replace("http-equiv", "")
    assert requests.get(base + "/admin/ui/app.js", timeout=10).status_code == 200
    assert requests.get(base + "/admin/ui/../../etc/passwd", timeout=10).status_code in (400, 404)
    assert requests.get(base + "/admin/ui/nope.js", timeout=10).status_code == 404
    assert requests.post(base + "/admin/ui/", timeout=10).status_code == 405
    r = requests.get(base + "/admin", timeout=10, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/admin/ui/"
    for params in ({"window": "7x"}, {"window": "1s"}, {"window": "48h"}, {"route": "GET /x"}):
        r = n.admin.get("/admin/dashboard/summary", params=params)
        assert r.status_code == 400, (params, r.text)
    assert n.admin.get("/admin/dashboard/nope").status_code == 404
    assert n.admin.req("POST", "/admin/dashboard/summary").status_code == 405
    # the public listener serves none of it
    assert pub(n, "GET", "/admin/ui/").status_code == 404
    assert pub(n, "GET", "/metrics").status_code == 404
