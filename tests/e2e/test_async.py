"""
Long requests (issue 8): X-Max-Wait answers 202 with an execution id and
links once the wait passes, the execution goes on; its record goes
ENQUEUED/INPROCESS then COMPLETE and /result replays the exact response;
async routes answer 202 at once; cancel stops queued and running
executions; another user cannot see someone else's execution.
"""
import http.server
import subprocess
import threading
import time
import urllib.parse

import pytest
import requests

from conftest import BIN, node_config, wait_until


class Sleepy(http.server.BaseHTTPRequestHandler):
    """GET /sleep?ms=N answers {"slept": N} after N ms."""

    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        ms = int(q.get("ms", ["0"])[0])
        time.sleep(ms / 1000)
        body = ('{"slept": %d}' % ms).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def sleepy():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sleepy)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


API = '''
name: jobs
base_path: /jobs
kind: service
title: Jobs
version: "1"
connections:
  slow:
    url: http://127.0.0.1:%(port)d/
policies:
  auth: {methods: [api_key]}
processes:
  work:
    steps:
      - name: call
        http: {connection: slow, url: "/sleep?ms=${query.ms}"}
      - name: more
        http: {connection: slow, url: "/sleep?ms=${query.ms}"}
      - respond:
          status: 201
          headers: {X-Work: "done-${query.ms}"}
          body: "{slept: steps.call.body.slept, who: user.name}"
routes:
  - method: GET
    path: /work
    process: work
  - method: GET
    path: /waiting
    process: work
    max_wait: 200ms
  - method: POST
    path: /batch
    process: work
    async: true
'''


def new_key():
    p = subprocess.run([BIN, "user", "key"], capture_output=True, text=True, timeout=30)
    return p.stdout.split()


@pytest.fixture
def node(portico_factory, sleepy):
    keys = {n: new_key() for n in ("alice", "bob", "root")}
    users = ("users:\n"
             "  - {name: alice, api_keys: [\"%s\"]}\n"
             "  - {name: bob, api_keys: [\"%s\"]}\n"
             "  - {name: root, roles: [admin], api_keys: [\"%s\"]}\n"
             % (keys["alice"][1], keys["bob"][1], keys["root"][1]))
    n = portico_factory(node_config(extra=users + "processes: {max_running: 2, max_queued: 4}\n"),
                        {"jobs.yaml": API % {"port": sleepy}})
    n.keys = {k: v[0] for k, v in keys.items()}
    return n


def call(node, who, method, path, **kw):
    h = kw.pop("headers", {})
    if who:
        h["X-API-Key"] = node.keys[who]
    return requests.request(method, node.url(path), headers=h, timeout=30, **kw)


def wait_status(node, who, link, status, timeout=20):
    path = urllib.parse.urlparse(link).path
    last = {}

    def done():
        nonlocal last
        last = call(node, who, "GET", path).json()
        return last.get("status") == status
    assert wait_until(done, timeout=timeout), last
    return last


def test_max_wait_gives_202_then_the_result(node):
    r = call(node, "alice", "GET", "/jobs/work?ms=600", headers={"X-Max-Wait": "150"})
    assert r.status_code == 202, r.text
    eid = r.headers["X-Execution-Id"]
    link = r.headers["X-Execution-Status-Link"]
    assert len(eid) == 32 and link == node.url("/_portico/executions/" + eid)
    assert r.headers["Location"] == link and r.headers["Retry-After"] == "1"
    j = r.json()
    assert j["id"] == eid and j["links"] == {"status": link, "result": link + "/result"}
    path = urllib.parse.urlparse(link).path
    # while it runs: INPROCESS, and no result yet (404 with the status)
    st = call(node, "alice", "GET", path).json()
    assert st["status"] in ("ENQUEUED", "INPROCESS") and st["user"] == "alice", st
    res = call(node, "alice", "GET", path + "/result")
    assert res.status_code == 404 and res.json()["execution"]["status"] == "INPROCESS", res.text
    st = wait_status(node, "alice", link, "COMPLETE")
    assert st["http_status"] == 201 and st["result"] == "kept" and st["api"] == "jobs", st
    # the exact response, replayed (as often as asked)
    for _ in range(2):
        res = call(node, "alice", "GET", path + "/result")
        assert res.status_code == 201, res.text
        assert res.json() == {"slept": 600, "who": "alice"}
        assert res.headers["X-Work"] == "done-600"
        assert res.headers["X-Execution-Id"] == eid
        assert res.headers["Content-Type"].startswith("application/json")


def test_fast_execution_answers_normally(node):
    r = call(node, "alice", "GET", "/jobs/work?ms=10", headers={"X-Max-Wait": "5000"})
    assert r.status_code == 201 and r.json() == {"slept": 10, "who": "alice"}, r.text
    # a record, but its result went to its client
    path = "/_portico/executions/" + r.headers["X-Execution-Id"]
    assert call(node, "alice", "GET", path).json()["status"] == "COMPLETE"
    assert call(node, "alice", "GET", path + "/result").status_code == 404


def test_route_default_wait_and_bad_header(node):
    r = call(node, "alice", "GET", "/jobs/waiting?ms=500")
    assert r.status_code == 202, r.text
    for bad in ("soon", "-5", "0", "1.5", "99999999999"):
        r = call(node, "alice", "GET", "/jobs/work?ms=1", headers={"X-Max-Wait": bad})
        assert r.status_code == 400, (bad, r.text)


def test_async_route_answers_at_once(node):
    t = time.time()
    r = call(node, "alice", "POST", "/jobs/batch?ms=300", json={})
    assert r.status_code == 202 and time.time() - t < 0.25, r.text
    st = wait_status(node, "alice", r.headers["X-Execution-Status-Link"], "COMPLETE")
    res = call(node, "alice", "GET", urllib.parse.urlparse(r.headers["Location"]).path + "/result")
    assert res.status_code == 201 and res.json()["slept"] == 300, (st, res.text)


def test_other_users_cannot_see_or_cancel(node):
    r = call(node, "alice", "POST", "/jobs/batch?ms=800", json={})
    path = urllib.parse.urlparse(r.headers["Location"]).path
    assert call(node, "bob", "GET", path).status_code == 404
    assert call(node, "bob", "GET", path + "/result").status_code == 404
    assert call(node, "bob", "DELETE", path).status_code == 404
    assert call(node, None, "GET", path).status_code == 401  # the API's authentication
    assert call(node, "root", "GET", path).json()["user"] == "alice"  # an admin sees all
    wait_status(node, "alice", r.headers["Location"], "COMPLETE")
    assert call(node, "alice", "DELETE", path).status_code == 409  # already ended
    assert call(node, "alice", "GET", "/_portico/executions/" + "0" * 32).status_code == 404


def test_cancel_running_and_queued(node):
    # two run (max_running: 2), the others wait
    ids = []
    for _ in range(4):
        r = call(node, "alice", "POST", "/jobs/batch?ms=700", json={})
        assert r.status_code == 202
        ids.append(urllib.parse.urlparse(r.headers["Location"]).path)
    time.sleep(0.3)
    running, queued = ids[0], ids[3]
    assert call(node, "alice", "GET", queued).json()["status"] == "ENQUEUED"
    for p in (running, queued):
        r = call(node, "alice", "DELETE", p)
        assert r.status_code == 202 and r.json()["cancel_requested"] is True, r.text
    st = wait_status(node, "alice", node.url(running), "ABORTED")
    assert "Cancelled before step" in st["message"], st  # stopped between its steps
    st = wait_status(node, "alice", node.url(queued), "ABORTED")
    assert st["message"] == "Cancelled before it ran." and st["started_at"] is None, st
    for p in ids[1:3]:
        wait_status(node, "alice", node.url(p), "COMPLETE")


# ------------------------------------------------------------------ webhooks

SECRET = "webhook secret for the tests 0123456789"


class Receiver:
    """An HTTP receiver checking Portico-Signature; answers from a script of
    statuses (the last one repeats)."""

    def __init__(self, statuses):
        import hashlib
        import hmac
        import json as _json
        self.statuses = list(statuses)
        self.got = []
        rcv = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sig = dict(p.split("=", 1) for p in self.headers["Portico-Signature"].split(","))
                want = hmac.new(SECRET.encode(), (sig["t"] + ".").encode() + body,
                                hashlib.sha256).hexdigest()
                ok = hmac.compare_digest(want, sig["v1"]) and abs(time.time() - int(sig["t"])) < 300
                rcv.got.append({"ok": ok, "path": self.path, "body": _json.loads(body),
                                "attempt": self.headers.get("Portico-Attempt"),
                                "exec": self.headers.get("X-Execution-Id")})
                st = rcv.statuses.pop(0) if len(rcv.statuses) > 1 else rcv.statuses[0]
                self.send_response(st if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.port = self.srv.server_address[1]

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


HOOK_API = '''
name: hooked
base_path: /hooked
kind: service
title: Hooked
version: "1"
processes:
  quick:
    steps:
      - respond: {status: 200, body: "{n: query.n}"}
routes:
  - method: POST
    path: /run
    process: quick
    async: true
    webhook: "http://127.0.0.1:%(port)d/hook"
  - method: POST
    path: /plain
    process: quick
    async: true
'''


def hooked_node(portico_factory, port, monkeypatch, subdir=None):
    monkeypatch.setenv("PT_TEST_HOOK_SECRET", SECRET)
    cfg = node_config(extra="webhooks:\n  allowed_hosts: [\"127.0.0.1\"]\n"
                            "  secret: \"${env:PT_TEST_HOOK_SECRET}\"\n  retry_base: 200ms\n")
    return portico_factory(cfg, {"hooked.yaml": HOOK_API % {"port": port}}, subdir=subdir)


def test_webhook_signed_retried_until_accepted(portico_factory, monkeypatch):
    rcv = Receiver([503, 503, 200])
    try:
        n = hooked_node(portico_factory, rcv.port, monkeypatch)
        r = requests.post(n.url("/hooked/run?n=7"), json={}, timeout=10)
        assert r.status_code == 202
        eid = r.headers["X-Execution-Id"]
        path = "/_portico/executions/" + eid

        def delivered():
            st = requests.get(n.url(path), timeout=10).json()
            return st.get("webhooks") and st["webhooks"][0]["state"] == "delivered" and st
        assert wait_until(delivered, timeout=20), requests.get(n.url(path)).json()
        st = delivered()
        hook = st["webhooks"][0]
        assert hook["attempts"] == 3 and [a["status"] for a in hook["last_attempts"]] == \
            [503, 503, 200], hook
        assert len(rcv.got) == 3 and all(g["ok"] for g in rcv.got), rcv.got
        assert [g["attempt"] for g in rcv.got] == ["1", "2", "3"]
        b = rcv.got[-1]["body"]
        assert b["execution"]["id"] == eid and b["execution"]["status"] == "COMPLETE"
        assert b["response"]["status"] == 200 and b["response"]["body"] == {"n": "7"}, b
        assert rcv.got[-1]["exec"] == eid
    finally:
        rcv.close()


def test_webhook_4xx_stops_and_client_urls_checked(portico_factory, monkeypatch):
    rcv = Receiver([400])
    try:
        n = hooked_node(portico_factory, rcv.port, monkeypatch)
        r = requests.post(n.url("/hooked/run"), json={}, timeout=10)
        path = "/_portico/executions/" + r.headers["X-Execution-Id"]

        def failed():
            st = requests.get(n.url(path), timeout=10).json()
            return st.get("webhooks") and st["webhooks"][0]["state"] == "failed"
        assert wait_until(failed, timeout=10)
        time.sleep(0.6)
        assert len(rcv.got) == 1  # a 400 is not retried
        # a client's own webhook URL: only on an allowed host
        r = requests.post(n.url("/hooked/plain"), json={}, timeout=10,
                          headers={"X-Portico-Webhook": "http://evil.test/steal"})
        assert r.status_code == 400
        r = requests.post(n.url("/hooked/plain"), json={}, timeout=10,
                          headers={"X-Portico-Webhook": "http://user@127.0.0.1:1/x"})
        assert r.status_code == 400
        rcv.statuses = [200]
        r = requests.post(n.url("/hooked/plain?n=2"), json={}, timeout=10,
                          headers={"X-Portico-Webhook": "http://127.0.0.1:%d/mine" % rcv.port})
        assert r.status_code == 202
        assert wait_until(lambda: any(g["path"] == "/mine" for g in rcv.got), timeout=10)
    finally:
        rcv.close()


def test_webhook_host_refused_at_deploy(portico_factory, monkeypatch, tmp_path):
    monkeypatch.setenv("PT_TEST_HOOK_SECRET", SECRET)
    cfg = node_config(extra="webhooks:\n  allowed_hosts: [hooks.example.com]\n"
                            "  secret: \"${env:PT_TEST_HOOK_SECRET}\"\n")
    n = portico_factory(cfg, {"hooked.yaml": HOOK_API % {"port": 9}}, start=False)
    p = subprocess.run([BIN, "validate", str(n.config_path)], capture_output=True, text=True,
                       timeout=30, env=dict(__import__("os").environ, PT_TEST_HOOK_SECRET=SECRET))
    assert p.returncode != 0 and "webhooks.allowed_hosts" in p.stdout + p.stderr, p.stdout


def test_burst_of_async_requests(portico_factory, monkeypatch, sleepy):
    """1,000 async requests at once against 20 running / 100 queued: the
    excess is refused at once with 503, every accepted execution completes,
    and each has exactly one webhook delivery."""
    import concurrent.futures
    rcv = Receiver([200])
    try:
        monkeypatch.setenv("PT_TEST_HOOK_SECRET", SECRET)
        api = HOOK_API.replace('''processes:
  quick:
    steps:''', '''connections:
  slow:
    url: http://127.0.0.1:%(sleepy)d/
processes:
  quick:
    steps:
      - http: {connection: slow, url: "/sleep?ms=30"}''') % {"port": rcv.port, "sleepy": sleepy}
        cfg = node_config(extra="webhooks:\n  allowed_hosts: [\"127.0.0.1\"]\n"
                                "  secret: \"${env:PT_TEST_HOOK_SECRET}\"\n"
                                "processes: {max_running: 20, max_queued: 100}\n")
        n = portico_factory(cfg, {"hooked.yaml": api})
        s = requests.Session()

        def one(i):
            t = time.time()
            r = requests.post(n.url("/hooked/run?n=%d" % i), json={}, timeout=30)
            return r.status_code, r.headers.get("X-Execution-Id"), time.time() - t
        with concurrent.futures.ThreadPoolExecutor(64) as pool:
            results = list(pool.map(one, range(1000)))
        codes = [c for c, _, _ in results]
        accepted = [e for c, e, _ in results if c == 202]
        assert set(codes) <= {202, 503}, set(codes)
        assert codes.count(503) > 0 and len(accepted) >= 120, (codes.count(202), codes.count(503))
        assert max(t for c, _, t in results if c == 503) < 5  # refused at once, no hang
        assert len(set(accepted)) == len(accepted)

        def all_done():
            return len(rcv.got) >= len(accepted)
        assert wait_until(all_done, timeout=60), (len(rcv.got), len(accepted))
        time.sleep(0.5)
        delivered = [g["exec"] for g in rcv.got]
        assert sorted(delivered) == sorted(accepted)  # one each: no loss, no duplicate
        for e in accepted[:50]:
            assert s.get(n.url("/_portico/executions/" + e), timeout=10).json()["status"] == \
                "COMPLETE"
    finally:
        rcv.close()


# ------------------------------------------------------------------ restarts (store)

STORE_API = '''
name: kept
base_path: /kept
kind: service
title: Kept
version: "1"
connections:
  slow:
    url: http://127.0.0.1:%(sleepy)d/
processes:
  long:
    steps:
      - http: {connection: slow, url: "/sleep?ms=${query.ms}"}
      - respond: {status: 200, body: "{ms: query.ms}"}
routes:
  - method: POST
    path: /run
    process: long
    async: true
    webhook: "http://127.0.0.1:%(port)d/hook"
'''


_dbs = iter(range(1, 10**6))


def store_url(request, backend):
    if backend == "sqlite":
        return "sqlite:data/portico.db"
    pg = request.getfixturevalue("pg")
    db = "async_%d_%d" % (__import__("os").getpid(), next(_dbs))
    pg.psql("postgres", "CREATE DATABASE %s;" % db)
    return pg.url(db)


def store_node(portico_factory, monkeypatch, rcv_port, sleepy, store, retry_base="200ms"):
    from conftest import free_tcp_port
    monkeypatch.setenv("PT_TEST_HOOK_SECRET", SECRET)
    cfg = node_config(extra="store: %s\nadmin:\n  address: 127.0.0.1:%d\n"
                            "webhooks:\n  allowed_hosts: [\"127.0.0.1\"]\n"
                            "  secret: \"${env:PT_TEST_HOOK_SECRET}\"\n  retry_base: %s\n"
                      % (store, free_tcp_port(), retry_base))
    n = portico_factory(cfg, {"kept.yaml": STORE_API % {"port": rcv_port, "sleepy": sleepy}})
    n.admin_port = int(cfg.split("address: 127.0.0.1:")[-1].split()[0])
    deployed(n)
    return n


def deployed(n):
    """The apis folder is pushed and deployed once the node runs."""
    assert wait_until(lambda: requests.get(n.url("/_portico/ready"), timeout=5).json()
                      .get("apis") == 1, timeout=20), n.stderr()


def kill_and_restart(n):
    import signal as _signal
    n.proc.send_signal(_signal.SIGKILL)
    n.proc.wait(timeout=10)
    n._close_files()
    n.ports = {}
    n.start()
    deployed(n)


BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])


@BACKENDS
def test_records_survive_a_restart(portico_factory, monkeypatch, sleepy, request, backend):
    rcv = Receiver([200])
    try:
        n = store_node(portico_factory, monkeypatch, rcv.port, sleepy, store_url(request, backend))
        r = requests.post(n.url("/kept/run?ms=50"), json={}, timeout=10)
        done = r.headers["X-Execution-Id"]
        path = "/_portico/executions/" + done
        assert wait_until(lambda: requests.get(n.url(path)).json()["status"] == "COMPLETE")
        assert wait_until(lambda: len(rcv.got) == 1)
        # one still running when the node is killed
        r = requests.post(n.url("/kept/run?ms=5000"), json={}, timeout=10)
        running = r.headers["X-Execution-Id"]
        assert wait_until(lambda: requests.get(
            n.url("/_portico/executions/" + running)).json()["status"] == "INPROCESS")
        time.sleep(0.3)  # written to the store (every 100 ms)
        kill_and_restart(n)
        # the finished one is read back with its result
        st = requests.get(n.url(path), timeout=10).json()
        assert st["status"] == "COMPLETE" and st["result"] == "kept", st
        res = requests.get(n.url(path + "/result"), timeout=10)
        assert res.status_code == 200 and res.json() == {"ms": "50"}, res.text
        # the one in flight reads ABORTED, and its webhook fires once
        st = requests.get(n.url("/_portico/executions/" + running), timeout=10).json()
        assert st["status"] == "ABORTED" and "stopped" in st["message"], st
        assert wait_until(lambda: any(g["exec"] == running for g in rcv.got), timeout=15)
        time.sleep(1)
        hooks = [g for g in rcv.got if g["exec"] == running]
        assert len(hooks) == 1 and hooks[0]["body"]["execution"]["status"] == "ABORTED", hooks
        assert "ABORTED" in n.stderr()
    finally:
        rcv.close()


@BACKENDS
def test_pending_delivery_resumes_after_a_restart(portico_factory, monkeypatch, sleepy, request,
                                                  backend):
    rcv = Receiver([503])
    try:
        n = store_node(portico_factory, monkeypatch, rcv.port, sleepy,
                       store_url(request, backend), retry_base="2s")
        r = requests.post(n.url("/kept/run?ms=10"), json={}, timeout=10)
        eid = r.headers["X-Execution-Id"]
        assert wait_until(lambda: len(rcv.got) >= 1, timeout=10)  # the first attempt failed
        time.sleep(0.3)
        kill_and_restart(n)
        rcv.statuses = [200]
        assert wait_until(lambda: any(g["exec"] == eid and g["ok"] for g in rcv.got[1:]),
                          timeout=20), rcv.got
        assert all(g["exec"] == eid for g in rcv.got)
        assert int(rcv.got[-1]["attempt"]) >= 2  # the attempts made before are counted
    finally:
        rcv.close()


def cli(n, *args):
    tok = subprocess.run([BIN, "admin", "token", "create", "-c", str(n.config_path), "--name",
                          "t%d" % time.time_ns()], capture_output=True, text=True, timeout=60)
    assert tok.returncode == 0, tok.stderr
    env = dict(__import__("os").environ, PORTICO_SERVER="http://127.0.0.1:%d" % n.admin_port,
               PORTICO_TOKEN=tok.stdout.strip())
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=60, env=env)


def test_executions_in_the_admin_api_and_cli(portico_factory, monkeypatch, sleepy):
    rcv = Receiver([200])
    try:
        n = store_node(portico_factory, monkeypatch, rcv.port, sleepy, "sqlite:data/portico.db")
        quick = requests.post(n.url("/kept/run?ms=10"), json={}, timeout=10).headers[
            "X-Execution-Id"]
        slow = requests.post(n.url("/kept/run?ms=3000"), json={}, timeout=10).headers[
            "X-Execution-Id"]
        assert wait_until(lambda: len(rcv.got) == 1)
        time.sleep(0.3)
        p = cli(n, "executions", "list", "--status", "COMPLETE")
        assert p.returncode == 0 and quick in p.stdout and slow not in p.stdout, p.stdout + p.stderr
        p = cli(n, "executions", "list", "--api", "kept", "--json")
        ids = [x["id"] for x in __import__("json").loads(p.stdout)["items"]]
        assert ids == [slow, quick], ids  # newest first
        p = cli(n, "executions", "show", quick)
        assert p.returncode == 0 and "COMPLETE" in p.stdout and "delivered after 1" in p.stdout, \
            p.stdout
        p = cli(n, "executions", "cancel", slow)
        assert p.returncode == 0 and "cancel requested" in p.stdout, p.stderr
        assert wait_until(lambda: requests.get(
            n.url("/_portico/executions/" + slow)).json()["status"] == "ABORTED", timeout=10)
        assert cli(n, "executions", "cancel", slow).returncode == 1  # ended: 409
        assert cli(n, "executions", "show", "0" * 32).returncode == 1
        time.sleep(0.3)
        tok = cli(n, "executions", "list", "--json")
        assert len(__import__("json").loads(tok.stdout)["items"]) == 2
        r = requests.post("http://127.0.0.1:%d/admin/executions/purge" % n.admin_port,
                          json={"before": int(time.time() * 1000) + 1000}, timeout=10,
                          headers={"Authorization": "Bearer " + subprocess.run(
                              [BIN, "admin", "token", "create", "-c", str(n.config_path),
                               "--name", "purger"], capture_output=True, text=True,
                              timeout=60).stdout.strip()})
        assert r.status_code == 200 and r.json()["deleted"] == 2, r.text
        assert __import__("json").loads(cli(n, "executions", "list", "--json").stdout)[
            "items"] == []
    finally:
        rcv.close()


SQL_API = '''
name: heavy
base_path: /heavy
kind: service
title: Heavy
version: "1"
connections:
  db:
    url: "%(url)s"
processes:
  crunch:
    steps:
      - name: first
        sql: {query: "SELECT 1 AS one", result: row}
      - name: slow
        sql: {query: "%(slow)s", result: row}
routes:
  - method: POST
    path: /crunch
    process: crunch
    async: true
'''

SLOW_SQL = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000000)"
              " SELECT count(*) AS n FROM c",
    "postgresql": "SELECT pg_sleep(30) IS NULL AS slept",
}


@BACKENDS
def test_cancel_stops_a_running_statement(portico_factory, request, backend, tmp_path):
    """A cancel reaches the statement through its driver (sqlite3_interrupt,
    PQcancel): the execution ends ABORTED within moments, not when the
    statement would have."""
    if backend == "sqlite":
        url = "sqlite:%s" % (tmp_path / "heavy.db")
        import sqlite3
        sqlite3.connect(tmp_path / "heavy.db").close()
    else:
        pg = request.getfixturevalue("pg")
        url = pg.url("postgres")
    n = portico_factory(node_config(extra="processes: {max_execution_time: 60s}\n"),
                        {"heavy.yaml": SQL_API % {"url": url, "slow": SLOW_SQL[backend]}})
    r = requests.post(n.url("/heavy/crunch"), json={}, timeout=10)
    assert r.status_code == 202, r.text
    path = urllib.parse.urlparse(r.headers["Location"]).path
    assert wait_until(lambda: requests.get(n.url(path)).json()["status"] == "INPROCESS")
    time.sleep(0.5)  # inside the slow statement
    t = time.time()
    assert requests.delete(n.url(path), timeout=10).status_code == 202
    assert wait_until(lambda: requests.get(n.url(path)).json()["status"] == "ABORTED",
                      timeout=10), requests.get(n.url(path)).json()
    assert time.time() - t < 5
    st = requests.get(n.url(path)).json()
    assert st["message"] == 'Cancelled during step "slow".', st


DEBUG_API = '''
name: fast
base_path: /fast
kind: service
title: Fast
version: "1"
connections:
  db:
    url: "sqlite:%(db)s"
policies:
  auth: {methods: [api_key]}
processes:
  lookup:
    mode: low_latency
    steps:
      - name: q
        sql: {query: "SELECT :n + 1 AS next, 'hunter2' AS password", params: {n: "query.n"}, result: row}
      - map: {fields: {next: steps.q.next}}
routes:
  - method: GET
    path: /next
    process: lookup
'''


def test_debug_switch_records_one_execution_in_full(portico_factory, tmp_path):
    import sqlite3
    sqlite3.connect(tmp_path / "f.db").close()
    keys = {n: new_key() for n in ("dev", "plain")}
    users = ("users:\n  - {name: dev, roles: [debug], api_keys: [\"%s\"]}\n"
             "  - {name: plain, api_keys: [\"%s\"]}\n" % (keys["dev"][1], keys["plain"][1]))
    n = portico_factory(node_config(extra=users), {"fast.yaml": DEBUG_API % {"db": tmp_path / "f.db"}})

    def get(who, debug):
        h = {"X-API-Key": keys[who][0]}
        if debug:
            h["X-Portico-Debug"] = "true"
        return requests.get(n.url("/fast/next?n=41"), headers=h, timeout=10)
    r = get("plain", True)  # not a debug user: low_latency keeps no record
    assert r.status_code == 200 and r.json() == {"next": 42}
    path = "/_portico/executions/" + r.headers["X-Execution-Id"]
    assert requests.get(n.url(path), headers={"X-API-Key": keys["plain"][0]}).status_code == 404
    r = get("dev", True)
    assert r.status_code == 200 and r.json() == {"next": 42}
    path = "/_portico/executions/" + r.headers["X-Execution-Id"]
    st = requests.get(n.url(path), headers={"X-API-Key": keys["dev"][0]}, timeout=10).json()
    assert st["status"] == "COMPLETE", st
    steps = st["debug"]["steps"]
    assert len(steps) == 2 and steps[0]["step"] == "q", steps
    assert steps[0]["kind"] == "sql" and steps[0]["input"] == {"n": "41"}, steps[0]
    assert steps[0]["output"]["next"] == 42 and steps[0]["output"]["password"] == "[redacted]"
    assert "hunter2" not in __import__("json").dumps(st)
    assert st["debug"]["request"]["query"] == {"n": "41"}


@BACKENDS
def test_graceful_stop_aborts_what_outlives_the_drain(portico_factory, monkeypatch, sleepy,
                                                      request, backend):
    """SIGTERM with an execution longer than the drain timeout: the node
    stops on time and the execution reads ABORTED after the restart."""
    import signal as _signal
    rcv = Receiver([200])
    try:
        n = store_node(portico_factory, monkeypatch, rcv.port, sleepy, store_url(request, backend))
        n.config_path.write_text(n.config_path.read_text() + "limits: {drain_timeout: 1s}\n")
        n.signal(_signal.SIGHUP)
        time.sleep(0.5)
        r = requests.post(n.url("/kept/run?ms=1500"), json={}, timeout=10)
        eid = r.headers["X-Execution-Id"]
        assert wait_until(lambda: requests.get(
            n.url("/_portico/executions/" + eid)).json()["status"] == "INPROCESS")
        t = time.time()
        assert n.stop() == 0
        assert time.time() - t < 6, time.time() - t
        n.ports = {}
        n.start()
        deployed(n)
        st = requests.get(n.url("/_portico/executions/" + eid), timeout=10).json()
        assert st["status"] in ("ABORTED", "COMPLETE"), st
        # a 1.5 s call in a 1 s drain: stopped before its next step
        assert st["status"] == "ABORTED" and "Cancelled" in st["message"], st
    finally:
        rcv.close()


def test_large_result_kept_cut(portico_factory, sleepy):
    """A result above processes.max_result_size is kept cut, and says so."""
    open_api = API.replace("policies:\n  auth: {methods: [api_key]}\n", "") % {"port": sleepy}
    n = portico_factory(node_config(extra="processes: {max_result_size: 10B}\n"),
                        {"jobs.yaml": open_api})
    r = requests.post(n.url("/jobs/batch?ms=10"), json={}, timeout=10)
    path = urllib.parse.urlparse(r.headers["Location"]).path
    st = None

    def done():
        nonlocal st
        st = requests.get(n.url(path), timeout=10).json()
        return st["status"] not in ("ENQUEUED", "INPROCESS")
    assert wait_until(done), st
    assert st["status"] == "COMPLETE_WARN" and st["result_truncated"] is True, st
    assert "kept cut at 10" in st["message"], st
    res = requests.get(n.url(path + "/result"), timeout=10)
    assert res.status_code == 201 and len(res.content) == 10, res.content


def test_large_result_dropped_when_configured(portico_factory, sleepy):
    open_api = API.replace("policies:\n  auth: {methods: [api_key]}\n", "") % {"port": sleepy}
    n = portico_factory(node_config(
        extra="processes: {max_result_size: 10B, result_overflow: drop}\n"), {"jobs.yaml": open_api})
    r = requests.post(n.url("/jobs/batch?ms=10"), json={}, timeout=10)
    path = urllib.parse.urlparse(r.headers["Location"]).path
    assert wait_until(lambda: requests.get(n.url(path)).json()["status"] == "COMPLETE_WARN")
    st = requests.get(n.url(path)).json()
    assert "not kept" in st["message"] and st["result"] == "not kept", st
    assert requests.get(n.url(path + "/result"), timeout=10).status_code == 404


def test_result_gone_after_its_retention(portico_factory, sleepy):
    open_api = API.replace("policies:\n  auth: {methods: [api_key]}\n", "") % {"port": sleepy}
    n = portico_factory(node_config(extra="processes: {result_retention: 1s}\n"),
                        {"jobs.yaml": open_api})
    r = requests.post(n.url("/jobs/batch?ms=10"), json={}, timeout=10)
    path = urllib.parse.urlparse(r.headers["Location"]).path
    assert wait_until(lambda: requests.get(n.url(path + "/result")).status_code == 201)
    time.sleep(1.2)
    res = requests.get(n.url(path + "/result"), timeout=10)
    assert res.status_code == 410, res.text
    assert requests.get(n.url(path)).json()["status"] == "COMPLETE"  # the record stays
