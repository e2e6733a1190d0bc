"""The control plane end to end (docs/admin-api.md): a node with a store
(SQLite, and a real PostgreSQL started for the module) and an admin
listener. Bearer-token authentication, revisions of API definitions (push,
list, show, diff, refusals), environments, deployments (deploy, history,
rollback, undeploy, base-path conflicts), hot deploys under load, a store
that goes away (while running and at start: the last snapshot is served),
declarative definitions pushed and deployed at start and on SIGHUP,
concurrent deploys, the CLI (exit codes, --json), and many deploy/undeploy
cycles under ASan."""
import itertools
import json
import os
import re
import select
import signal
import socket
import subprocess
import textwrap
import threading
import time

import pytest
import requests

from conftest import BIN, free_tcp_port, node_config, status_of, wait_until

TIMEOUT = 60  # for one admin call: a deploy answers once the snapshot is published
_db_names = itertools.count(1)


# ---------------------------------------------------------------- helpers

def api_def(body, name="hello", base_path="/hello/v1", extra=""):
    """A static API: GET <base_path>/greetings answers `body` (text/plain)."""
    return textwrap.dedent("""\
        name: %s
        base_path: %s
        kind: service
        title: Hello API
        version: "1.0"
        routes:
          - method: GET
            path: /greetings
            respond:
              body: %s
        """) % (name, base_path, body) + extra


FAREWELL = """\
  - method: GET
    path: /farewell
    respond:
      body: goodbye
"""

REV = {1: api_def("rev-one"), 2: api_def("rev-two"), 3: api_def("rev-three", extra=FAREWELL)}
BODY = {1: b"rev-one", 2: b"rev-two", 3: b"rev-three"}


class Admin:
    """A client of the admin API of one node (a new connection per call)."""

    def __init__(self, port, token):
        self.port = port
        self.base = "http://127.0.0.1:%d" % port
        self.token = token

    def req(self, method, path, token="default", headers=None, **kw):
        headers = dict(headers or {})
        token = self.token if token == "default" else token
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        return requests.request(method, self.base + path, headers=headers, timeout=TIMEOUT, **kw)

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def push(self, text, token="default", **params):
        return self.req("POST", "/admin/apis", token=token,
                        data=text.encode() if isinstance(text, str) else text,
                        headers={"Content-Type": "application/yaml"}, params=params)

    def deploy(self, api, revision=None, env="dev", notes=None):
        body = {"api": api}
        if revision is not None:
            body["revision"] = revision
        if notes is not None:
            body["notes"] = notes
        return self.req("POST", "/admin/environments/%s/deployments" % env, json=body)

    def undeploy(self, api, env="dev"):
        return self.req("DELETE", "/admin/environments/%s/apis/%s" % (env, api))

    def rollback(self, api, env="dev", to=None, notes=None):
        body = {}
        if to is not None:
            body["to"] = to
        if notes is not None:
            body["notes"] = notes
        return self.req("POST", "/admin/environments/%s/apis/%s/rollback" % (env, api), json=body)

    def page(self, path, params=None):
        """One page of a list: (items, next)."""
        r = self.get(path, params=params or {})
        assert r.status_code == 200, (path, params, r.status_code, r.text)
        j = r.json()
        assert "items" in j and "next" in j, j
        return j["items"], j["next"]

    def all_items(self, path, params=None, limit=None):
        """Every item of a list, following `next` (the default page size
        unless `limit`)."""
        params = dict(params or {})
        if limit is not None:
            params["limit"] = limit
        items, seen = [], set()
        while True:
            page, nxt = self.page(path, params)
            items += page
            if nxt is None:
                return items
            assert nxt not in seen, ("a cursor repeats", nxt)
            seen.add(nxt)
            assert page, ("an empty page with a next cursor", path, params)
            params["cursor"] = nxt

    def history(self, env="dev", api=None):
        return self.all_items("/admin/environments/%s/deployments" % env, {"api": api} if api else {})

    def revisions(self, api):
        return self.all_items("/admin/apis/%s/revisions" % api)

    def apis(self):
        return self.all_items("/admin/apis")

    def environments(self):
        return self.all_items("/admin/environments")

    def status(self):
        r = self.get("/admin/status")
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def up(self):
        try:
            return requests.get(self.base + "/admin/openapi.json", timeout=5).status_code == 200
        except requests.RequestException:
            return False


def assert_problem(r, status):
    assert r.status_code == status, (r.status_code, r.headers, r.text)
    ctype = r.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip() == "application/problem+json", (ctype, r.text)
    j = r.json()
    assert j["status"] == status, j
    for k in ("type", "title", "detail"):
        assert k in j, (k, j)
    return j


def assert_created(r, status=201):
    assert r.status_code == status, (r.status_code, r.text)
    return r.json()


def public_get(n, path="/hello/v1/greetings"):
    return requests.get(n.url(path, "public"), timeout=10)


def serves(n, body, timeout=1.0, path="/hello/v1/greetings"):
    """True once the public listener answers `path` with 200 `body`."""
    def check():
        r = public_get(n, path)
        return r.status_code == 200 and r.content == body
    return wait_until(check, timeout=timeout, interval=0.02)


def not_served(n, timeout=1.0, path="/hello/v1/greetings"):
    return wait_until(lambda: public_get(n, path).status_code == 404, timeout=timeout, interval=0.02)


def ready(n):
    return requests.get(n.url("/_portico/ready", "public"), timeout=10)


def check_deployment(d, api, revision, env="dev", status="active"):
    for k in ("id", "api", "revision", "environment", "status", "notes", "author", "created_at"):
        assert k in d, (k, d)
    assert (d["api"], d["revision"], d["environment"], d["status"]) == (api, revision, env, status), d


def active(items, api="hello"):
    return [d for d in items if d["api"] == api and d["status"] == "active"]


def create_token(n, name="test"):
    p = subprocess.run([BIN, "admin", "token", "create", "-c", str(n.config_path), "--name", name],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert mark not in p.stderr, p.stderr
    lines = [ln.strip() for ln in p.stdout.splitlines() if ln.strip()]
    assert lines, p.stdout
    token = lines[-1]
    assert re.fullmatch(r"pt_[A-Za-z0-9]+_\S+", token), token
    return token


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def pg_stop_keep_data(pg):
    """Stops the module's PostgreSQL (fast: sessions are cut), keeping its data."""
    pg._pg_ctl("-m", "fast", "-w", "stop")


def pg_start_again(pg):
    pg._pg_ctl("-o", "-p %d -k %s -c listen_addresses=127.0.0.1" % (pg.port, pg.dir),
               "-l", os.path.join(pg.dir, "log"), "-w", "start")


@pytest.fixture
def control(portico_factory, request):
    """make(backend, apis={}, env="dev") -> a started node with a store and
    an admin listener; `n.admin` is an Admin client holding a fresh token."""

    def make(backend, apis=None, env="dev", workers=2, store=None, extra=""):
        if store is None:
            if backend == "sqlite":
                store = "sqlite:data/portico.db"
            else:
                pg = request.getfixturevalue("pg")
                db = "ctl_%d_%d" % (os.getpid(), next(_db_names))
                pg.psql("postgres", "CREATE DATABASE %s;" % db)
                store = pg.url(db)
        admin_port = free_tcp_port()
        cfg = node_config(workers=workers, extra="store: %s\nenvironment: %s\nadmin:\n"
                                                 "  address: 127.0.0.1:%d\n%s" % (store, env, admin_port,
                                                                                  extra))
        n = portico_factory(cfg, apis if apis is not None else {}, start=False)
        n.backend = backend
        n.admin_port = admin_port
        n.start()
        admin = Admin(admin_port, None)
        assert wait_until(admin.up, timeout=15), "admin listener not up:\n" + n.stderr()
        admin.token = create_token(n)
        n.admin = admin
        return n

    return make


def restart(n):
    """SIGTERM (exit code 0), then start the same node again."""
    rc = n.stop()
    assert rc == 0, "portico exited with %s:\n%s" % (rc, n.stderr())
    n.check_clean()
    n.ports = {}
    n.start()
    assert wait_until(n.admin.up, timeout=15), "admin listener not up:\n" + n.stderr()


BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])


# ---------------------------------------------------------------- 1. authentication

ENDPOINTS = [
    ("GET", "/admin/status"),
    ("GET", "/admin/apis"),
    ("POST", "/admin/apis"),
    ("GET", "/admin/apis/hello"),
    ("GET", "/admin/apis/hello/revisions"),
    ("GET", "/admin/apis/hello/revisions/1"),
    ("GET", "/admin/apis/hello/diff?from=1&to=1"),
    ("GET", "/admin/environments"),
    ("POST", "/admin/environments"),
    ("POST", "/admin/environments/dev/deployments"),
    ("GET", "/admin/environments/dev/deployments"),
    ("DELETE", "/admin/environments/dev/apis/hello"),
    ("POST", "/admin/environments/dev/apis/hello/rollback"),
]


def check_401(r):
    j = assert_problem(r, 401)
    www = r.headers.get("WWW-Authenticate", "")
    assert www.lower().startswith("bearer"), (www, j)


def test_revoked_token_is_refused(control):
    n = control("sqlite")
    t2 = create_token(n, "second")
    p = subprocess.run([BIN, "admin", "token", "revoke", "-c", str(n.config_path), "--name",
                        "second"], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    r = n.admin.get("/admin/apis", token=t2)
    assert r.status_code == 401, r.text
    assert n.admin.get("/admin/apis").status_code == 200  # the other token still works
    p = subprocess.run([BIN, "admin", "token", "list", "-c", str(n.config_path)],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0 and "second" in p.stdout and t2 not in p.stdout, p.stdout
    p = subprocess.run([BIN, "admin", "token", "revoke", "-c", str(n.config_path), "--name",
                        "nobody"], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p.stderr


@BACKENDS
def test_auth_required_and_changes_nothing(control, backend):
    n = control(backend)
    a = n.admin
    good = a.token
    wrong_secret = good[:-1] + ("A" if good[-1] != "A" else "B")
    other_id = "pt_0000000000_" + good.split("_")[-1]
    bad_tokens = [None, "pt_nope_nope", wrong_secret, other_id, "", "x" * 5000]
    bodies = {"POST /admin/apis": dict(data=REV[1].encode(), headers={"Content-Type": "application/yaml"}),
              "POST /admin/environments": dict(json={"name": "sneaky"}),
              "POST /admin/environments/dev/deployments": dict(json={"api": "hello", "revision": 1}),
              "POST /admin/environments/dev/apis/hello/rollback": dict(json={})}
    for method, path in ENDPOINTS:
        kw = bodies.get("%s %s" % (method, path.split("?")[0]), {})
        for tok in bad_tokens:
            r = a.req(method, path, token=tok, **kw)
            check_401(r)
    # malformed Authorization headers
    for value in ("Bearer", "Bearer ", "Basic dGVzdDp0ZXN0", good, "Token " + good,
                  "Bearer " + good + " extra", "Bearer " + good + "x", "Bearer pt__"):
        for method, path in (("GET", "/admin/apis"), ("POST", "/admin/environments")):
            r = a.req(method, path, token=None, headers={"Authorization": value},
                      json={"name": "sneaky"} if method == "POST" else None)
            check_401(r)
    # nothing changed
    assert a.apis() == []
    names = [e["name"] for e in a.environments()]
    assert "sneaky" not in names and "dev" in names
    assert a.history() == []
    assert public_get(n).status_code == 404
    # a second token works too, the first still does
    t2 = create_token(n, "second")
    assert t2 != good
    assert a.get("/admin/apis", token=t2).status_code == 200
    assert a.get("/admin/apis").status_code == 200


@BACKENDS
def test_openapi_and_listener_separation(control, backend):
    n = control(backend)
    a = n.admin
    r = requests.get(a.base + "/admin/openapi.json", timeout=10)  # no token
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].split(";")[0].strip() == "application/json"
    doc = r.json()
    assert str(doc.get("openapi", "")).startswith("3."), doc.get("openapi")
    paths = doc["paths"]
    for p in ("/admin/apis", "/admin/apis/{name}", "/admin/apis/{name}/revisions",
              "/admin/environments", "/admin/environments/{env}/deployments", "/admin/status"):
        assert p in paths, (p, sorted(paths))
    assert "post" in paths["/admin/apis"] and "get" in paths["/admin/apis"]
    # the admin API is not on the public listener
    for path in ("/admin/openapi.json", "/admin/apis", "/admin/status"):
        r = requests.get(n.url(path, "public"), headers={"Authorization": "Bearer " + a.token}, timeout=10)
        assert r.status_code == 404, (path, r.status_code, r.text)
    r = requests.post(n.url("/admin/apis", "public"), data=REV[1].encode(),
                      headers={"Authorization": "Bearer " + a.token, "Content-Type": "application/yaml"},
                      timeout=10)
    assert r.status_code in (404, 405), r.status_code
    assert a.apis() == []
    # the public APIs are not on the admin listener
    assert assert_created(a.push(REV[1]))["revision"] == 1
    assert assert_created(a.deploy("hello", 1))["revision"] == 1
    assert serves(n, BODY[1])
    r = requests.get(a.base + "/hello/v1/greetings", timeout=10)
    assert r.status_code == 404 or r.status_code == 401, r.status_code
    assert r.content != BODY[1]
    r = requests.get(a.base + "/hello/v1/greetings", headers={"Authorization": "Bearer " + a.token},
                     timeout=10)
    assert r.status_code == 404, (r.status_code, r.text)


# ---------------------------------------------------------------- 2. revisions

def post_raw(port, path, body, token, timeout=60):
    """POSTs `body` on a raw socket, reading while sending (a server may answer
    413 and close before the body is sent); returns the response bytes."""
    head = ("POST %s HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/yaml\r\nContent-Length: %d\r\n\r\n" % (path, token, len(body))).encode()
    data = head + body
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setblocking(False)
    sent, got = 0, b""
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            want_w = [s] if sent < len(data) else []
            r, w, _ = select.select([s], want_w, [], 0.5)
            if r:
                try:
                    b = s.recv(65536)
                except (ConnectionResetError, BlockingIOError):
                    b = b""
                if not b:
                    break
                got += b
                if b"\r\n\r\n" in got:
                    hd, rest = got.split(b"\r\n\r\n", 1)
                    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", hd)
                    if m and len(rest) >= int(m.group(1)):
                        break
            if w:
                try:
                    sent += s.send(data[sent:sent + 262144])
                except (BrokenPipeError, ConnectionResetError):
                    sent = len(data)
                except BlockingIOError:
                    pass
    finally:
        s.close()
    return got


@BACKENDS
def test_revisions(control, backend):
    n = control(backend)
    a = n.admin
    if backend == "sqlite":
        assert (n.dir / "data" / "portico.db").is_file(), list(n.dir.iterdir())
    pushed = {}
    for rev in (1, 2, 3):
        r = a.push(REV[rev], label="v%d" % rev, notes="notes %d" % rev)
        j = assert_created(r, 201)
        assert (j["api"], j["revision"], j["created"]) == ("hello", rev, True), j
        assert isinstance(j["hash"], str) and j["hash"], j
        pushed[rev] = j
    assert len({pushed[r]["hash"] for r in pushed}) == 3
    # the same bytes again: unchanged
    j = assert_created(a.push(REV[3]), 200)
    assert (j["api"], j["revision"], j["created"], j["hash"]) == ("hello", 3, False, pushed[3]["hash"]), j
    # revisions, newest first
    items = a.revisions("hello")
    assert [i["revision"] for i in items] == [3, 2, 1], items
    for i in items:
        rev = i["revision"]
        for k in ("hash", "label", "notes", "author", "created_at"):
            assert k in i, (k, i)
        assert i["hash"] == pushed[rev]["hash"]
        assert i["label"] == "v%d" % rev and i["notes"] == "notes %d" % rev, i
        assert isinstance(i["author"], str) and i["author"], i
        assert "test" in i["author"] or a.token.split("_")[1] in i["author"], i
        assert i["created_at"], i
    # the API and the list of APIs
    apis = a.apis()
    assert len(apis) == 1, apis
    assert {k: apis[0][k] for k in ("name", "latest_revision", "base_path", "kind")} == \
        {"name": "hello", "latest_revision": 3, "base_path": "/hello/v1", "kind": "service"}, apis
    assert "updated_at" in apis[0]
    r = a.get("/admin/apis/hello")
    assert r.status_code == 200
    j = r.json()
    assert (j["name"], j["latest_revision"], j["base_path"], j["kind"], j["deployments"]) == \
        ("hello", 3, "/hello/v1", "service", []), j
    assert_problem(a.get("/admin/apis/nosuch"), 404)
    # one revision
    for rev in (1, 2, 3):
        r = a.get("/admin/apis/hello/revisions/%d" % rev)
        assert r.status_code == 200, r.text
        j = r.json()
        assert j["revision"] == rev and j["hash"] == pushed[rev]["hash"] and j["label"] == "v%d" % rev
        assert j["definition"] == REV[rev], (j["definition"], REV[rev])
    assert_problem(a.get("/admin/apis/hello/revisions/99"), 404)
    # diffs
    r = a.get("/admin/apis/hello/diff", params={"from": 1, "to": 3})
    assert r.status_code == 200, r.text
    j = r.json()
    assert (j["from"], j["to"]) == (1, 3), j
    lines = j["diff"].splitlines()
    assert "@@" in j["diff"], j["diff"]
    assert any(ln.startswith("-") and not ln.startswith("---") and "rev-one" in ln for ln in lines), lines
    assert any(ln.startswith("+") and not ln.startswith("+++") and "rev-three" in ln for ln in lines), lines
    assert any(ln.startswith("+") and "/farewell" in ln for ln in lines), lines
    assert not any(ln.startswith(("-", "+")) and "base_path" in ln for ln in lines), lines
    r = a.get("/admin/apis/hello/diff", params={"from": 2, "to": 2})
    assert r.status_code == 200 and r.json()["diff"] == "", r.text
    r = a.get("/admin/apis/hello/diff", params={"from": 3, "to": 1})
    assert r.status_code == 200
    lines = r.json()["diff"].splitlines()
    assert any(ln.startswith("+") and "rev-one" in ln for ln in lines), lines
    assert a.get("/admin/apis/hello/diff", params={"from": 1, "to": 99}).status_code == 404

    # invalid definitions: 400 with errors carrying a line number, nothing stored
    unknown_process = api_def("x").replace("    respond:\n      body: x\n", "    process: nope\n")
    assert "process: nope" in unknown_process
    for bad in (unknown_process, "name: [unclosed\n", "", "\x00\x01\x02", api_def("x", base_path="no-slash"),
                api_def("x").replace("      body: x\n", "      status: created\n")):
        r = a.push(bad)
        j = assert_problem(r, 400)
        if bad:
            assert isinstance(j.get("errors"), list) and j["errors"], j
            assert any(re.search(r":\d+: ", e) for e in j["errors"]), j["errors"]
    r = a.push(unknown_process)
    errs = r.json()["errors"]
    assert any(re.search(r":9: .*process", e) for e in errs), errs
    assert [i["revision"] for i in a.revisions("hello")] == [3, 2, 1]
    assert [x["name"] for x in a.apis()] == ["hello"]

    # SQL-looking input is refused or stored literally, and never breaks the store
    sqlish = "x'; DROP TABLE apis;--"
    r = a.push(api_def("x", name='"%s"' % sqlish, base_path="/sql"))
    assert r.status_code in (400, 201), (r.status_code, r.text)
    if r.status_code == 201:
        assert sqlish in [x["name"] for x in a.apis()]
    else:
        assert_problem(r, 400)
    label, notes = "l'); DROP TABLE revisions;--", 'n"; DELETE FROM apis; -- \\ %'
    j = assert_created(a.push(REV[1].replace("rev-one", "rev-four"), label=label, notes=notes))
    assert j["revision"] == 4
    top = a.revisions("hello")[0]
    assert (top["revision"], top["label"], top["notes"]) == (4, label, notes), top
    r = a.get("/admin/environments/dev/deployments", params={"api": "' OR '1'='1"})
    assert r.status_code in (200, 400, 404), r.status_code
    if r.status_code == 200:
        assert r.json()["items"] == []
    assert a.get("/admin/apis/%27%20OR%20%271%27%3D%271").status_code in (400, 404)
    assert [i["revision"] for i in a.revisions("hello")] == [4, 3, 2, 1]
    assert "hello" in [x["name"] for x in a.apis()]

    # oversized: 413, nothing stored
    big = (REV[1].replace("rev-one", "rev-big") + "# " + "x" * 1000 + "\n") * 4300
    assert len(big) > 4 * 1024 * 1024
    resp = post_raw(a.port, "/admin/apis", big.encode(), a.token)
    assert status_of(resp) == 413, resp[:500]
    assert [i["revision"] for i in a.revisions("hello")] == [4, 3, 2, 1]
    # the node is fine afterwards
    assert assert_created(a.push(REV[2]))["revision"] == 5


# ---------------------------------------------------------------- 3. environments

@BACKENDS
def test_environments(control, backend):
    n = control(backend)
    a = n.admin
    r = a.req("POST", "/admin/environments", json={"name": "prod"})
    j = assert_created(r, 201)
    assert j["name"] == "prod" and j["created_at"], j
    assert_problem(a.req("POST", "/admin/environments", json={"name": "prod"}), 409)
    assert_problem(a.req("POST", "/admin/environments", json={"name": "dev"}), 409)  # the node's own
    for bad in ("Prod", "-prod", "_prod", "a b", "a/b", "x" * 64, "", "pr\u00f6d", "x'; DROP TABLE environments;--",
                "prod\n", 12, None):
        r = a.req("POST", "/admin/environments", json={"name": bad})
        assert_problem(r, 400)
    for body in (b"not json", b"{}", b"[]", b'{"name": "ok"', b""):
        r = a.req("POST", "/admin/environments", data=body, headers={"Content-Type": "application/json"})
        assert_problem(r, 400)
    assert assert_created(a.req("POST", "/admin/environments", json={"name": "x" * 63}))["name"] == "x" * 63
    assert assert_created(a.req("POST", "/admin/environments", json={"name": "0a_b-c"}))["name"] == "0a_b-c"
    items = a.environments()
    names = sorted(e["name"] for e in items)
    assert names == sorted(["dev", "prod", "x" * 63, "0a_b-c"]), names
    assert all(e["created_at"] for e in items)


# ---------------------------------------------------------------- 3b. paging of lists

@BACKENDS
def test_list_paging(control, backend):
    n = control(backend)
    a = n.admin
    for i in range(1, 8):
        assert assert_created(a.push(api_def("page-%d" % i)))["revision"] == i
    path = "/admin/apis/hello/revisions"
    # the default page holds them all
    items, nxt = a.page(path)
    assert [x["revision"] for x in items] == [7, 6, 5, 4, 3, 2, 1] and nxt is None, (items, nxt)
    # pages of 3, with an insert between two pages: nothing repeated or skipped
    p1, c1 = a.page(path, {"limit": 3})
    assert [x["revision"] for x in p1] == [7, 6, 5] and c1 is not None, (p1, c1)
    assert assert_created(a.push(api_def("page-8")))["revision"] == 8
    p2, c2 = a.page(path, {"limit": 3, "cursor": c1})
    assert [x["revision"] for x in p2] == [4, 3, 2] and c2 is not None, (p2, c2)
    p3, c3 = a.page(path, {"limit": 3, "cursor": c2})
    assert [x["revision"] for x in p3] == [1] and c3 is None, (p3, c3)
    assert [x["revision"] for x in a.all_items(path, limit=1)] == [8, 7, 6, 5, 4, 3, 2, 1]
    assert [x["revision"] for x in a.all_items(path, limit=8)] == [8, 7, 6, 5, 4, 3, 2, 1]
    # the bounds of limit
    for bad in ("0", "1001", "-1", "x", "", "1e3", "2.5"):
        assert_problem(a.get(path, params={"limit": bad}), 400)
    assert a.get(path, params={"limit": 1000}).status_code == 200
    assert a.get(path, params={"limit": 1}).status_code == 200

    # deployment history: newest first, paged; a deploy between two pages
    for rev in (1, 2, 3, 4, 5):
        assert_created(a.deploy("hello", rev))
    h1, c1 = a.page("/admin/environments/dev/deployments", {"limit": 2, "api": "hello"})
    assert [x["revision"] for x in h1] == [5, 4] and c1 is not None, h1
    assert_created(a.deploy("hello", 6))
    rest = a.all_items("/admin/environments/dev/deployments", {"api": "hello", "cursor": c1}, limit=2)
    assert [x["revision"] for x in rest] == [3, 2, 1], rest
    ids = [x["id"] for x in a.history(api="hello")]
    assert len(ids) == len(set(ids)) == 6
    assert [x["revision"] for x in a.all_items("/admin/environments/dev/deployments", limit=4)] == [6, 5, 4, 3, 2, 1]

    # APIs and environments page too (each item once)
    for i in range(5):
        assert_created(a.push(api_def("x", name="api%d" % i, base_path="/api%d" % i)))
        assert_created(a.req("POST", "/admin/environments", json={"name": "env%d" % i}))
    p1, c1 = a.page("/admin/apis", {"limit": 2})
    assert len(p1) == 2 and c1 is not None
    assert_created(a.push(api_def("x", name="zzz", base_path="/zzz")))
    assert_created(a.push(api_def("x", name="aaa", base_path="/aaa")))
    rest = a.all_items("/admin/apis", {"cursor": c1}, limit=2)
    names = [x["name"] for x in p1 + rest]
    assert len(names) == len(set(names)), names
    assert set(["api%d" % i for i in range(5)] + ["hello"]) <= set(names), names
    assert sorted(x["name"] for x in a.all_items("/admin/apis", limit=3)) == \
        sorted(["api%d" % i for i in range(5)] + ["hello", "zzz", "aaa"])
    envs = [x["name"] for x in a.all_items("/admin/environments", limit=2)]
    assert sorted(envs) == sorted(["dev"] + ["env%d" % i for i in range(5)]), envs
    assert len(envs) == len(set(envs))


# ---------------------------------------------------------------- 4. deployments

@BACKENDS
def test_deploy_rollback_undeploy(control, backend):
    n = control(backend)
    a = n.admin
    for rev in (1, 2, 3):
        assert_created(a.push(REV[rev]))
    assert public_get(n).status_code == 404

    d = assert_created(a.deploy("hello", 1, notes="first"))
    check_deployment(d, "hello", 1)
    assert d["notes"] == "first"
    assert isinstance(d.get("generation"), int), d
    assert serves(n, BODY[1]), public_get(n).content
    assert ready(n).json()["generation"] >= d["generation"]
    # nothing deployed before: nothing to roll back to
    assert_problem(a.rollback("hello"), 409)
    assert serves(n, BODY[1])

    d3 = assert_created(a.deploy("hello", 3))
    check_deployment(d3, "hello", 3)
    assert d3["generation"] > d["generation"]
    assert serves(n, BODY[3])
    assert serves(n, b"goodbye", path="/hello/v1/farewell")
    hist = a.history(api="hello")
    assert [(x["revision"], x["status"]) for x in hist] == [(3, "active"), (1, "inactive")], hist
    assert [(x["revision"], x["status"]) for x in a.history()] == [(3, "active"), (1, "inactive")]
    j = a.get("/admin/apis/hello").json()
    assert j["deployments"] == [{"environment": "dev", "revision": 3}], j
    st = a.status()
    assert st["environment"] == "dev" and st["store"] == backend and st["store_ok"] is True, st
    assert st["deployed"] == [{"api": "hello", "revision": 3}], st
    assert isinstance(st["generation"], int) and st["generation"] >= d3["generation"], st

    # rollback without `to`: the revision deployed before
    rb = assert_created(a.rollback("hello", notes="oops"))
    check_deployment(rb, "hello", 1)
    assert serves(n, BODY[1])
    assert not_served(n, path="/hello/v1/farewell")
    assert len(active(a.history(api="hello"))) == 1
    # explicit targets
    assert_created(a.deploy("hello", 2))
    assert serves(n, BODY[2])
    rb = assert_created(a.rollback("hello", to=3))
    check_deployment(rb, "hello", 3)
    assert serves(n, BODY[3])
    rb = assert_created(a.rollback("hello", to=1))
    check_deployment(rb, "hello", 1)
    assert serves(n, BODY[1])
    hist = a.history(api="hello")
    assert [x["revision"] for x in hist] == [1, 3, 2, 1, 3, 1], hist
    assert [x["status"] for x in hist] == ["active"] + ["inactive"] * 5, hist

    # undeploy
    u = a.undeploy("hello")
    assert u.status_code == 200, u.text
    check_deployment(u.json(), "hello", 1, status="inactive")
    assert not_served(n)
    assert active(a.history(api="hello")) == []
    assert a.status()["deployed"] == []
    assert a.get("/admin/apis/hello").json()["deployments"] == []
    assert_problem(a.undeploy("hello"), 404)
    # redeploy: the latest revision when none is given
    d = assert_created(a.deploy("hello"))
    check_deployment(d, "hello", 3)
    assert serves(n, BODY[3])

    # another environment does not change what this node serves
    assert_created(a.req("POST", "/admin/environments", json={"name": "prod"}))
    dp = assert_created(a.deploy("hello", 1, env="prod"))
    check_deployment(dp, "hello", 1, env="prod")
    time.sleep(0.3)
    assert serves(n, BODY[3])
    assert [(x["revision"], x["status"]) for x in a.history(env="prod")] == [(1, "active")]
    assert len(active(a.history(api="hello"))) == 1 and active(a.history())[0]["revision"] == 3
    deps = sorted((x["environment"], x["revision"]) for x in a.get("/admin/apis/hello").json()["deployments"])
    assert deps == [("dev", 3), ("prod", 1)], deps
    assert a.status()["deployed"] == [{"api": "hello", "revision": 3}]
    assert_created(a.undeploy("hello", env="prod"), 200)
    assert serves(n, BODY[3])

    # base path conflict: 409, the first keeps serving
    assert_created(a.push(api_def("clash!", name="clash")))
    assert_problem(a.deploy("clash", 1), 409)
    assert serves(n, BODY[3])
    assert active(a.history(), "clash") == []
    assert a.status()["deployed"] == [{"api": "hello", "revision": 3}]
    # unknown API, revision, environment
    assert_problem(a.deploy("nosuch", 1), 404)
    assert_problem(a.deploy("hello", 99), 404)
    assert_problem(a.deploy("hello", 1, env="nosuch"), 404)
    assert_problem(a.undeploy("nosuch"), 404)
    assert_problem(a.undeploy("hello", env="nosuch"), 404)
    r = a.rollback("nosuch")  # the doc names 409 for "nothing to roll back to"; 404 fits too
    assert r.status_code in (404, 409), (r.status_code, r.text)
    assert_problem(r, r.status_code)
    for body in ({}, {"api": 5}, {"api": "hello", "revision": "one"}):
        r = a.req("POST", "/admin/environments/dev/deployments", json=body)
        assert r.status_code in (400, 404, 422), (body, r.status_code, r.text)
        assert r.headers["Content-Type"].startswith("application/problem+json")
    assert serves(n, BODY[3])
    assert len(active(a.history(api="hello"))) == 1


# ---------------------------------------------------------------- 5. hot deploy under load

def p99(samples):
    if not samples:
        return float("nan")
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * 0.99))]


@BACKENDS
def test_hot_deploy_under_load(control, backend):
    n = control(backend, workers=2)
    a = n.admin
    alpha, beta = api_def("alpha"), api_def("beta")
    assert_created(a.push(alpha))
    assert_created(a.push(beta))
    assert_created(a.deploy("hello", 1))
    assert serves(n, b"alpha")

    url = n.url("/hello/v1/greetings", "public")
    stop = threading.Event()
    phase = {"name": "baseline"}
    lock = threading.Lock()
    stats = {"ok": 0, "errors": [], "bodies": set(), "lat": {"baseline": [], "deploys": []}}

    def load():
        with requests.Session() as s:
            while not stop.is_set():
                ph = phase["name"]
                t0 = time.perf_counter()
                try:
                    r = s.get(url, timeout=10)
                    dt = time.perf_counter() - t0
                    with lock:
                        if r.status_code == 200 and r.content in (b"alpha", b"beta"):
                            stats["ok"] += 1
                            stats["bodies"].add(r.content)
                            stats["lat"][ph].append(dt)
                        else:
                            stats["errors"].append((r.status_code, r.content[:200]))
                except requests.RequestException as e:
                    with lock:
                        stats["errors"].append(repr(e))

    threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    slow = []
    try:
        time.sleep(3)
        phase["name"] = "deploys"
        for i in range(50):
            rev = 2 if i % 2 == 0 else 1
            r = a.deploy("hello", rev)
            assert r.status_code == 201, (i, r.status_code, r.text)
            if not serves(n, b"beta" if rev == 2 else b"alpha", timeout=1.0):
                slow.append(i)
        # and rollbacks: each goes back to the revision deployed before
        for i in range(20):
            rev = 2 if i % 2 == 0 else 1
            r = a.rollback("hello")
            assert r.status_code == 201 and r.json()["revision"] == rev, (i, r.status_code, r.text)
            if not serves(n, b"beta" if rev == 2 else b"alpha", timeout=1.0):
                slow.append("rollback %d" % i)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    base, dep = stats["lat"]["baseline"], stats["lat"]["deploys"]
    print("\nhot deploy (%s): %d requests ok; p99 without deploys %.2f ms (%d requests), "
          "p99 during 50 deploys and 20 rollbacks %.2f ms (%d requests)"
          % (backend, stats["ok"], p99(base) * 1000, len(base), p99(dep) * 1000, len(dep)))
    assert stats["errors"] == [], "%d failed requests: %r" % (len(stats["errors"]), stats["errors"][:5])
    assert slow == [], "the new revision was not served within 1 s after deploys %r" % slow
    assert stats["bodies"] == {b"alpha", b"beta"}
    assert len(base) > 20 and len(dep) > 20
    hist = a.history(api="hello")
    assert len(hist) == 71 and len(active(hist)) == 1 and hist[0]["revision"] == 1, hist[:3]


# ---------------------------------------------------------------- 6. the store goes away

def deploy_retrying(a, api, rev, env="dev", timeout=30):
    """Deploys, retrying while the node reconnects to its store."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = a.deploy(api, rev, env=env)
            if last.status_code == 201:
                return last
        except requests.RequestException as e:
            last = e
        time.sleep(0.5)
    raise AssertionError("deploy did not succeed within %ss: %r %s" %
                         (timeout, last, getattr(last, "text", "")))


def test_postgresql_down_while_running(control, request):
    pg = request.getfixturevalue("pg")
    n = control("postgresql")
    a = n.admin
    for rev in (1, 2):
        assert_created(a.push(REV[rev]))
    assert_created(a.deploy("hello", 1))
    assert serves(n, BODY[1])
    pg_stop_keep_data(pg)
    try:
        for _ in range(20):
            r = public_get(n)
            assert r.status_code == 200 and r.content == BODY[1]
            time.sleep(0.05)
        r = a.deploy("hello", 2)
        assert r.status_code >= 500, (r.status_code, r.text)
        assert r.headers["Content-Type"].startswith("application/problem+json"), r.headers
        assert wait_until(lambda: a.status()["store_ok"] is False, timeout=10), a.status()
        assert serves(n, BODY[1])
        assert ready(n).status_code == 200
    finally:
        pg_start_again(pg)
    deploy_retrying(a, "hello", 2)
    assert serves(n, BODY[2])
    assert wait_until(lambda: a.status()["store_ok"] is True, timeout=10), a.status()
    hist = a.history(api="hello")
    assert hist[0]["revision"] == 2 and len(active(hist)) == 1, hist


def snapshot_text(n):
    path = n.dir / "data" / "last-snapshot.json"
    assert path.is_file(), sorted(map(str, n.dir.rglob("*")))
    text = path.read_text()
    json.loads(text)
    return text


def push_and_deploy(n, deploys):
    """Pushes revisions 1 to 3, deploys the given ones in order; the last serves."""
    a = n.admin
    for rev in (1, 2, 3):
        assert_created(a.push(REV[rev]))
    for rev in deploys:
        assert_created(a.deploy("hello", rev))
    assert serves(n, BODY[deploys[-1]])
    return a


def test_postgresql_down_at_start_serves_last_snapshot(control, request):
    pg = request.getfixturevalue("pg")
    n = control("postgresql")
    a = push_and_deploy(n, (1, 3))
    # what it serves is kept in <data dir>/last-snapshot.json (data_dir default: data/)
    text = snapshot_text(n)
    assert "rev-three" in text and "rev-one" not in text, text[:500]
    rc = n.stop()
    assert rc == 0, n.stderr()
    n.check_clean()
    pg_stop_keep_data(pg)
    try:
        n.ports = {}
        n.start(timeout=60)
        assert serves(n, BODY[3], timeout=5), public_get(n).content
        assert serves(n, b"goodbye", path="/hello/v1/farewell")
        r = ready(n)
        j = r.json()
        print("\n/_portico/ready with the store down: %s %s" % (r.status_code, j))
        assert j.get("store") == "unreachable", j
        assert "unreachable" in n.stderr() or "last snapshot" in n.stderr() or "snapshot" in n.stderr(), n.stderr()
    finally:
        pg_start_again(pg)
    # the store is back: the node reconnects, deploys work again
    assert wait_until(n.admin.up, timeout=15)
    deploy_retrying(a, "hello", 2)
    assert serves(n, BODY[2])
    assert wait_until(lambda: ready(n).json().get("store") != "unreachable", timeout=10), ready(n).json()
    assert wait_until(lambda: "rev-two" in snapshot_text(n), timeout=5), snapshot_text(n)[:500]


def test_sqlite_restart_keeps_deployments(control):
    n = control("sqlite")
    a = push_and_deploy(n, (3, 2))
    rc = n.stop()
    assert rc == 0, n.stderr()
    # `portico migrate` on the migrated store, twice: nothing to do, exit 0
    for _ in range(2):
        p = subprocess.run([BIN, "migrate", "-c", str(n.config_path)], capture_output=True, text=True,
                           timeout=120, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
        assert "Sanitizer" not in p.stderr, p.stderr
    restart(n)
    assert serves(n, BODY[2], timeout=5)
    assert a.status()["deployed"] == [{"api": "hello", "revision": 2}]
    hist = a.history(api="hello")
    assert [(x["revision"], x["status"]) for x in hist] == [(2, "active"), (3, "inactive")], hist
    assert [i["revision"] for i in a.revisions("hello")] == [3, 2, 1]
    # the token still works, and a rollback after the restart too
    rb = assert_created(a.rollback("hello"))
    assert rb["revision"] == 3
    assert serves(n, BODY[3])
    assert ready(n).json().get("store") != "unreachable"


def test_newer_store_schema_is_refused(control):
    """A store migrated by a newer portico: this one refuses it (start and
    `portico migrate`), rather than write into a schema it does not know."""
    import sqlite3
    n = control("sqlite")
    rc = n.stop()
    assert rc == 0, n.stderr()
    con = sqlite3.connect(n.dir / "data" / "portico.db")
    con.execute("INSERT INTO portico_schema (version) VALUES (99)")
    con.commit()
    con.close()
    p = subprocess.run([BIN, "migrate", "-c", str(n.config_path)], capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 1 and "newer than this build" in p.stderr, (p.returncode, p.stderr)
    n.ports = {}
    assert n.start(expect_fail=True, timeout=60) == 1
    assert "schema version 99" in n.stderr() and "not starting" in n.stderr(), n.stderr()


# ---------------------------------------------------------------- 7. declarative mode

@BACKENDS
def test_declarative_push_and_deploy(control, backend):
    n = control(backend, apis={"hello.yaml": api_def("decl-1")})
    a = n.admin
    assert serves(n, b"decl-1", timeout=5)
    revs = a.revisions("hello")
    assert [i["revision"] for i in revs] == [1], revs
    assert revs[0]["author"], revs
    r = a.get("/admin/apis/hello/revisions/1")
    assert r.json()["definition"] == api_def("decl-1")
    hist = a.history(api="hello")
    assert [(x["revision"], x["status"]) for x in hist] == [(1, "active")], hist
    print("\ndeclarative author: revision %r, deployment %r" % (revs[0]["author"], hist[0]["author"]))
    assert hist[0]["author"], hist
    # the changes of the apis/ folder are made by the node itself, as "declarative"
    assert revs[0]["author"] == "declarative" and hist[0]["author"] == "declarative", (revs, hist)
    assert a.status()["deployed"] == [{"api": "hello", "revision": 1}]
    # edit + SIGHUP: revision 2 pushed, deployed and served
    (n.apis_dir / "hello.yaml").write_text(api_def("decl-2"))
    n.signal(signal.SIGHUP)
    assert serves(n, b"decl-2", timeout=10), public_get(n).content
    assert [i["revision"] for i in a.revisions("hello")] == [2, 1]
    hist = a.history(api="hello")
    assert hist[0]["revision"] == 2 and hist[0]["status"] == "active" and len(active(hist)) == 1, hist
    # SIGHUP without a change: no new revision
    n.signal(signal.SIGHUP)
    time.sleep(1.5)
    assert [i["revision"] for i in a.revisions("hello")] == [2, 1]
    assert serves(n, b"decl-2")
    # restart: the same file is not a new revision either
    restart(n)
    assert serves(n, b"decl-2", timeout=5)
    assert [i["revision"] for i in a.revisions("hello")] == [2, 1]
    assert len(active(a.history(api="hello"))) == 1


# ---------------------------------------------------------------- 8. concurrent deploys

@BACKENDS
def test_concurrent_deploys(control, backend):
    n = control(backend)
    a = n.admin
    assert_created(a.push(REV[1]))
    assert_created(a.push(REV[2]))
    assert_created(a.deploy("hello", 1))
    codes = []
    lock = threading.Lock()
    for rnd in range(3):
        barrier = threading.Barrier(8)

        def go(i):
            barrier.wait(10)
            try:
                r = a.deploy("hello", 1 + (i % 2), notes="t%d" % i)
                res = (r.status_code, r.headers.get("Content-Type", ""), r.text)
            except requests.RequestException as e:
                res = (repr(e), "", "")
            with lock:
                codes.append(res)

        threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    bad = [c for c in codes if c[0] not in (201, 409, 503)
           or (c[0] != 201 and not c[1].startswith("application/problem+json"))]
    assert bad == [], bad
    assert sum(1 for c in codes if c[0] == 201) >= 3, codes
    print("\nconcurrent deploys (%s): %s" % (backend, sorted(str(c[0]) for c in codes)))
    hist = a.history(api="hello")
    act = active(hist)
    assert len(act) == 1, hist
    assert hist[0]["status"] == "active", hist[:2]
    assert a.status()["deployed"] == [{"api": "hello", "revision": act[0]["revision"]}]
    assert serves(n, BODY[act[0]["revision"]])
    assert a.get("/admin/apis/hello").json()["deployments"] == [{"environment": "dev",
                                                                 "revision": act[0]["revision"]}]


# ---------------------------------------------------------------- 9. CLI

def cli(args, server=None, token=None, extra_env=None, timeout=120, stdin=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTICO_")}
    if server is not None:
        env["PORTICO_SERVER"] = server
    if token is not None:
        env["PORTICO_TOKEN"] = token
    env.update(extra_env or {})
    if stdin is None:
        p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout, env=env,
                           stdin=subprocess.DEVNULL)
    else:
        p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout, env=env,
                           input=stdin)
    for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert mark not in p.stderr, (args, p.stderr)
    return p


def test_cli(control, tmp_path):
    n = control("sqlite")
    a = n.admin
    srv, tok = a.base, a.token
    f1, f2 = tmp_path / "hello-1.yaml", tmp_path / "hello-2.yaml"
    f1.write_text(REV[1])
    f2.write_text(REV[2])

    def ok(args, **kw):
        p = cli(args, srv, tok, **kw)
        assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
        return p

    def ok_json(args):
        p = ok(args + ["--json"])
        try:
            return json.loads(p.stdout)
        except ValueError:
            raise AssertionError("%s --json printed no JSON: %r" % (args, p.stdout))

    j = ok_json(["api", "push", str(f1), "--label", "first", "--notes", "from the cli"])
    assert (j["api"], j["revision"], j["created"]) == ("hello", 1, True), j
    p = ok(["api", "push", str(f1)])  # unchanged: still 0
    j = ok_json(["api", "push", str(f1)])
    assert (j["revision"], j["created"]) == (1, False), j
    p = ok(["api", "push", str(f2)])
    assert "2" in p.stdout, p.stdout
    assert [i["revision"] for i in a.revisions("hello")] == [2, 1]
    assert a.revisions("hello")[1]["label"] == "first" and a.revisions("hello")[1]["notes"] == "from the cli"

    p = ok(["api", "list"])
    assert "hello" in p.stdout, p.stdout
    j = ok_json(["api", "list"])
    assert [x["name"] for x in j["items"]] == ["hello"], j
    p = ok(["api", "revisions", "hello"])
    assert len([ln for ln in p.stdout.splitlines() if ln.strip()]) >= 2, p.stdout
    j = ok_json(["api", "revisions", "hello"])
    assert [x["revision"] for x in j["items"]] == [2, 1], j
    p = ok(["api", "diff", "hello", "1", "2"])
    assert re.search(r"(?m)^-.*rev-one", p.stdout) and re.search(r"(?m)^\+.*rev-two", p.stdout), p.stdout
    j = ok_json(["api", "diff", "hello", "1", "2"])
    assert (j["from"], j["to"]) == (1, 2) and "rev-two" in j["diff"], j

    p = ok(["deploy", "hello", "--env", "dev", "--notes", "cli deploy"])
    assert serves(n, BODY[2])
    j = ok_json(["deploy", "hello", "--revision", "1", "--env", "dev"])
    assert (j["api"], j["revision"], j["status"]) == ("hello", 1, "active"), j
    assert serves(n, BODY[1])
    p = ok(["deployments", "--env", "dev"])
    assert "hello" in p.stdout, p.stdout
    j = ok_json(["deployments", "--env", "dev", "--api", "hello"])
    assert [(x["revision"], x["status"]) for x in j["items"]] == [(1, "active"), (2, "inactive")], j
    assert j["items"][1]["notes"] == "cli deploy"
    p = ok(["rollback", "hello", "--env", "dev"])
    assert serves(n, BODY[2])
    j = ok_json(["rollback", "hello", "--env", "dev", "--to", "1"])
    assert j["revision"] == 1, j
    assert serves(n, BODY[1])

    ok(["env", "create", "qa"])
    p = ok(["env", "list"])
    assert "qa" in p.stdout and "dev" in p.stdout, p.stdout
    j = ok_json(["env", "list"])
    assert sorted(x["name"] for x in j["items"]) == ["dev", "qa"], j
    p = cli(["env", "create", "qa"], srv, tok)
    assert p.returncode == 1 and p.stderr.strip(), (p.returncode, p.stderr)

    # --server and --token-file instead of the environment
    tf = tmp_path / "token"
    tf.write_text(tok + "\n")
    p = cli(["api", "list", "--server", srv, "--token-file", str(tf), "--json"])
    assert p.returncode == 0, (p.returncode, p.stderr)
    assert json.loads(p.stdout)["items"][0]["name"] == "hello"

    # refusals and errors
    p = cli(["deploy", "nosuch", "--env", "dev"], srv, tok)
    assert p.returncode == 1 and p.stderr.strip(), (p.returncode, p.stdout, p.stderr)
    p = cli(["deploy", "hello", "--revision", "99", "--env", "dev"], srv, tok)
    assert p.returncode == 1, (p.returncode, p.stderr)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    p = cli(["api", "push", str(bad)], srv, tok)
    assert p.returncode == 1 and re.search(r":\d+:", p.stderr), (p.returncode, p.stderr)
    p = cli(["api", "list"], srv, "pt_wrong_token")
    assert p.returncode == 3, (p.returncode, p.stderr)
    p = cli(["api", "list"], srv, None)  # no token at all
    assert p.returncode in (2, 3), (p.returncode, p.stderr)
    p = cli(["api", "list"], "http://127.0.0.1:%d" % free_tcp_port(), tok)
    assert p.returncode == 3, (p.returncode, p.stderr)
    for args in (["deploy", "hello"], ["api", "frobnicate"], ["api", "push"], ["api", "diff", "hello", "1"],
                 ["deploy", "hello", "--env", "dev", "--revision", "one"], ["env"], ["rollback", "hello"],
                 ["deployments"], ["api", "list", "--no-such-option"]):
        p = cli(args, srv, tok)
        assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
        assert p.stderr.strip(), args
    p = cli(["api", "push", str(tmp_path / "missing.yaml")], srv, tok)
    assert p.returncode in (1, 2), (p.returncode, p.stderr)

    ok(["undeploy", "hello", "--env", "dev"])
    assert not_served(n)
    p = cli(["undeploy", "hello", "--env", "dev"], srv, tok)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert [i["revision"] for i in a.revisions("hello")] == [2, 1]


# ---------------------------------------------------------------- 10. memory

def test_deploy_undeploy_cycles(control):
    cycles = int(os.environ.get("PORTICO_CYCLES", "200"))
    n = control("sqlite")
    a = n.admin
    assert assert_created(a.push(REV[1]))["revision"] == 1
    assert assert_created(a.push(REV[2]))["revision"] == 2
    assert_created(a.deploy("hello", 1))
    assert serves(n, BODY[1])
    assert a.undeploy("hello").status_code == 200
    before = rss_kib(n.proc.pid)
    t0 = time.time()
    for i in range(cycles):
        rev = 1 if i % 2 == 0 else 2
        r = a.deploy("hello", rev)
        assert r.status_code == 201, (i, r.status_code, r.text)
        if i % 25 == 0:
            assert serves(n, BODY[rev])
        r = a.undeploy("hello")
        assert r.status_code == 200, (i, r.status_code, r.text)
    after = rss_kib(n.proc.pid)
    print("\n%d deploy/undeploy cycles in %.1f s: VmRSS %d KiB before, %d KiB after (%+d KiB)"
          % (cycles, time.time() - t0, before, after, after - before))
    assert not_served(n)
    assert_created(a.deploy("hello", 2))
    assert serves(n, BODY[2])
    assert len(active(a.history(api="hello"))) == 1
    rc = n.stop()
    assert rc == 0, "portico exited with %s:\n%s" % (rc, n.stderr())
    n.check_clean()


def test_status_counts_policy_decisions(control):
    """Every policy decision is counted per worker and summed for the
    admin status (and the later metrics)."""
    n = control("sqlite", extra="policies:\n  auth: {methods: [api_key]}\n"
                                "  ip_filter: {deny: [10.0.0.0/8]}\n"
                                "trusted_proxies: [127.0.0.1]\n")
    for _ in range(3):
        assert public_get(n, path="/nowhere").status_code == 401
    r = requests.get(n.url("/nowhere", "public"), headers={"X-Forwarded-For": "10.1.2.3"},
                     timeout=10)
    assert r.status_code == 403
    d = n.admin.status()["policy_decisions"]
    assert d["auth.no_credentials"] == 3 and d["ip_filter.denied"] == 1, d
    assert d["ip_filter.allowed"] == 3 and d["auth.allowed"] == 0, d
    assert set(d) >= {"rate_limit.limited", "concurrency.rejected", "body_limit.too_large",
                      "cors.refused", "auth.bad_password", "auth.expired"}


USERS_API = """
name: crm
base_path: /crm
kind: service
title: CRM
version: "1"
policies:
  auth: {methods: [api_key, basic], roles: [ops]}
processes:
  whoami:
    steps:
      - map: {fields: {name: user.name, roles: user.roles}}
routes:
  - method: GET
    path: /me
    process: whoami
"""


@BACKENDS
def test_users_managed_through_the_admin_api_and_cli(control, backend):
    """`portico user add|set|list|remove|key create|revoke` against the
    store: the password is hashed by the node and never shown, a key is
    shown once, every change takes effect on the next request, and the users
    survive a restart."""
    n = control(backend, apis={"crm.yaml": USERS_API})
    a = n.admin
    srv, tok = a.base, a.token

    def me(**kw):
        return requests.get(n.url("/crm/me", "public"), timeout=10, **kw)

    p = cli(["user", "add", "carol", "--roles", "ops,audit", "--password-stdin"], srv, tok,
            stdin="correct horse battery\n")
    assert p.returncode == 0 and "user carol added" in p.stdout, p.stderr
    r = me(auth=("carol", "correct horse battery"))
    assert r.status_code == 200 and r.json() == {"name": "carol", "roles": ["ops", "audit"]}, r.text
    assert me(auth=("carol", "wrong password")).status_code == 401
    # the password is hashed: nowhere in the answers, the store or the logs
    u = a.get("/admin/users/carol").json()
    assert u["has_password"] is True and u["roles"] == ["ops", "audit"] and u["keys"] == [], u
    assert "password" not in u and "correct horse" not in json.dumps(a.get("/admin/users").json())
    assert "correct horse" not in n.stderr()
    if backend == "sqlite":
        raw = b"".join(f.read_bytes() for f in (n.dir / "data").glob("portico.db*"))
        assert b"correct horse" not in raw and b"$argon2id$" in raw

    # a key: shown once, works, then revoked
    p = cli(["user", "key", "create", "carol", "--label", "laptop"], srv, tok)
    assert p.returncode == 0, p.stderr
    key = p.stdout.splitlines()[0]
    assert key.startswith("pk_") and "not shown again" in p.stdout
    assert me(headers={"X-API-Key": key}).json()["name"] == "carol"
    listed = a.get("/admin/users/carol").json()["keys"]
    assert len(listed) == 1 and listed[0]["label"] == "laptop" and "hash" not in listed[0], listed
    assert key not in json.dumps(listed)
    p = cli(["user", "key", "revoke", "carol", listed[0]["id"]], srv, tok)
    assert p.returncode == 0, p.stderr
    assert me(headers={"X-API-Key": key}).status_code == 401
    assert cli(["user", "key", "revoke", "carol", listed[0]["id"]], srv, tok).returncode == 1

    # set: roles replaced; a role the route does not grant gives 403
    assert cli(["user", "set", "carol", "--roles", "sales"], srv, tok).returncode == 0
    assert me(auth=("carol", "correct horse battery")).status_code == 403
    # per-user addresses: present and empty denies everything
    assert cli(["user", "set", "carol", "--roles", "ops", "--allow-ips", ""], srv,
               tok).returncode == 0
    assert me(auth=("carol", "correct horse battery")).status_code == 403
    assert cli(["user", "set", "carol", "--allow-ips", "127.0.0.0/8,::1"], srv,
               tok).returncode == 0
    assert me(auth=("carol", "correct horse battery")).status_code == 200

    # refusals: a duplicate, an unknown user, a value the node cannot use (nothing changes)
    assert cli(["user", "add", "carol"], srv, tok).returncode == 1
    r = a.req("POST", "/admin/users", json={"name": "dave", "allow_ips": ["10.0.0.1/33"]})
    assert r.status_code == 422, r.text
    assert "dave" not in json.dumps(a.get("/admin/users").json())
    r = a.req("POST", "/admin/users", json={"name": "x:y"})
    assert r.status_code == 400
    r = a.req("POST", "/admin/users", json={"name": "erin", "password": "short"})
    assert r.status_code == 400
    r = a.req("PATCH", "/admin/users/nobody", json={"roles": []})
    assert r.status_code == 404
    p = cli(["user", "list"], srv, tok)
    assert p.returncode == 0 and "carol" in p.stdout, p.stdout

    # the users survive a restart (from the store, or its copy)
    restart(n)
    assert me(auth=("carol", "correct horse battery")).status_code == 200
    assert cli(["user", "remove", "carol"], srv, tok).returncode == 0
    assert me(auth=("carol", "correct horse battery")).status_code == 401
    assert a.get("/admin/users/carol").status_code == 404
