"""Prometheus metrics end to end (docs/observability.md): `GET /metrics` on
the admin listener of the real binary, read with the strict parser of
tests/e2e/promtext.py, against known load - exact request counts per
api/route/method/code (the admin listener's own requests not counted),
policy decisions, consumers, process executions, upstream requests,
connections, TLS handshakes, deployments - plus the optional bearer token,
monotonic counters and consistent histograms while scrapes race the load,
bounded label values, and the docs (Grafana dashboard, alerting rules) that
may only use metric names the node exposes."""
import base64
import concurrent.futures
import hashlib
import http.server
import json
import math
import os
import re
import shutil
import socket
import sqlite3
import ssl
import subprocess
import threading
import time

import pytest
import requests

import promtext
from conftest import BIN, ROOT, Portico, RawClient, node_config

TEXT_CT = ("text/plain", {"version": "0.0.4", "charset": "utf-8"})
DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                    10, math.inf]
METHOD_CLASSES = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"}
CLASSES = {"1xx", "2xx", "3xx", "4xx", "5xx"}
PROCESS_STATUSES = {"ok", "client_error", "server_error", "timeout", "queue_timeout", "canceled"}
POLICY_DECISIONS = {  # src/policy/policy.c pt_pstat_names
    "auth": {"allowed", "no_credentials", "malformed", "unknown", "bad_password", "bad_token",
             "expired", "claims", "untrusted", "forbidden", "busy"},
    "ip_filter": {"allowed", "denied"},
    "rate_limit": {"allowed", "limited"},
    "concurrency": {"allowed", "rejected"},
    "body_limit": {"too_large"},
    "cors": {"preflight", "refused"},
}
CLOSE_REASONS = {"client", "idle_timeout", "timeout", "error", "server"}

# The labels of every family of the contract (sample label names; histogram
# buckets add `le`).
LABELS = {
    "portico_info": {"version", "node", "environment"},
    "portico_start_time_seconds": set(),
    "portico_http_requests_total": {"api", "route", "method", "code"},
    "portico_http_request_duration_seconds": {"api", "route", "method"},
    "portico_http_request_size_bytes_total": {"api", "route", "method"},
    "portico_http_response_size_bytes_total": {"api", "route", "method"},
    "portico_consumer_requests_total": {"consumer", "class"},
    "portico_upstream_requests_total": {"api", "target", "class"},
    "portico_upstream_retries_total": {"api", "target"},
    "portico_upstream_response_seconds": {"api", "target"},
    "portico_upstream_connect_seconds_total": {"api", "target"},
    "portico_upstream_connects_total": {"api", "target"},
    "portico_process_executions_total": {"api", "process", "status"},
    "portico_process_duration_seconds": {"api", "process"},
    "portico_process_request_size_bytes_total": {"api", "process"},
    "portico_process_response_size_bytes_total": {"api", "process"},
    "portico_process_pool_threads": set(),
    "portico_process_pool_running": set(),
    "portico_process_pool_queued": set(),
    "portico_process_pool_max_queued": set(),
    "portico_process_queue_wait_seconds": set(),
    "portico_policy_decisions_total": {"policy", "decision"},
    "portico_connections_open": set(),
    "portico_connections_accepted_total": set(),
    "portico_connections_closed_total": {"reason"},
    "portico_tls_handshakes_total": {"result"},
    "portico_network_received_bytes_total": set(),
    "portico_network_sent_bytes_total": set(),
    "portico_deployments_total": {"result"},
    "portico_deployment_duration_seconds": set(),
    "process_cpu_seconds_total": set(),
    "process_resident_memory_bytes": set(),
    "process_open_fds": set(),
    "process_start_time_seconds": set(),
}
assert set(LABELS) == set(promtext.CONTRACT_TYPES)

DASHBOARD = os.path.join(ROOT, "docs", "grafana", "portico.json")
ALERTS = os.path.join(ROOT, "docs", "prometheus", "portico-alerts.yml")
SCRAPE_EXAMPLE = os.path.join(ROOT, "docs", "prometheus", "prometheus.yml")
OBSERVABILITY_MD = os.path.join(ROOT, "docs", "observability.md")
PROMTOOL = os.environ.get("PROMTOOL") or shutil.which("promtool")


# ---------------------------------------------------------------- helpers

def check_content_type(value):
    assert value, "no Content-Type"
    parts = [p.strip() for p in value.split(";")]
    params = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        params[k.strip().lower()] = v.strip().strip('"').lower()
    assert (parts[0].lower(), params) == TEXT_CT, value


class Scraper:
    """GET /metrics on one kept-alive connection to the admin listener
    (reopened only when the server closed it: `connects` counts them)."""

    def __init__(self, port, token=None):
        self.port = port
        self.token = token
        self.client = None
        self.connects = 0

    def request(self, path="/metrics", token="default", method="GET"):
        tok = self.token if token == "default" else token
        req = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (method, path)
        if tok is not None:
            req += "Authorization: Bearer %s\r\n" % tok
        req = (req + "\r\n").encode()
        for attempt in (1, 2):
            if self.client is None:
                self.client = RawClient(self.port, timeout=30)
                self.connects += 1
            try:
                self.client.send(req)
                r = self.client.read_response(head=method == "HEAD")
            except (EOFError, OSError):
                self.client.close()
                self.client = None
                if attempt == 2:
                    raise
                continue
            if (r.header("connection") or "").lower() == "close":
                self.client.close()
                self.client = None
            return r

    def text(self):
        r = self.request()
        assert r.status == 200, (r.status, r.body[:500])
        check_content_type(r.header("content-type"))
        return r.body

    def scrape(self):
        """The exposition, parsed strictly (every family with HELP and TYPE)."""
        body = self.text()
        try:
            return promtext.parse(body, require_help=True)
        except promtext.PromParseError as e:
            raise AssertionError("/metrics does not parse: %s\n%s" % (e, body.decode(
                "utf-8", "replace")[:4000]))

    def close(self):
        if self.client is not None:
            self.client.close()
            self.client = None


def series(exp, name, labels):
    """{tuple of the values of `labels`: value} for every sample `name`."""
    out = {}
    for s in exp.samples(name):
        assert set(s.labels) == set(labels), (name, s.labels, labels)
        out[tuple(s.labels[k] for k in labels)] = s.value
    return out


def delta(after, before):
    """after - before for dicts of series values (missing = 0), zeros dropped."""
    keys = set(after) | set(before)
    d = {k: after.get(k, 0) - before.get(k, 0) for k in keys}
    return {k: v for k, v in d.items() if v != 0}


def eventually(scraper, compute, expected, timeout=10):
    """Scrapes until compute(exposition) == expected (the counters are
    updated as responses end, possibly just after the client read them);
    then returns the exposition. Fails with the last difference."""
    deadline = time.time() + timeout
    while True:
        exp = scraper.scrape()
        got = compute(exp)
        if got == expected:
            return exp
        if time.time() > deadline:
            raise AssertionError("metrics after %ss:\n got      %r\n expected %r" % (
                timeout, got, expected))
        time.sleep(0.1)


ADMIN = "admin:\n  address: 127.0.0.1:0\n"


def start_node(portico_factory, apis, extra="", listen=None, workers=2, files=None, limits=""):
    """A node with a public listener and an admin listener (and so a store
    in its data/ folder; the apis/ folder is deployed at start)."""
    kw = {"workers": workers, "extra": ADMIN + extra, "limits": limits}
    if listen is not None:
        kw["listen"] = listen
    n = portico_factory(node_config(**kw), apis, extra_files=files)
    n.admin_port = n.ports["admin"]
    n.public_port = n.ports["public"]
    n.scraper = Scraper(n.admin_port)
    return n


def public(n, path):
    return "http://127.0.0.1:%d%s" % (n.public_port, path)


def raw_status(port, data, timeout=10):
    """One request on a new connection: the status of the answer."""
    with RawClient(port, timeout=timeout) as c:
        c.send(data)
        return c.read_response(head=data.startswith(b"HEAD ")).status


def req(method, path, extra=""):
    return ("%s %s HTTP/1.1\r\nHost: a\r\n%s\r\n" % (method, path, extra)).encode()


def new_key():
    key = "pk_" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    return key, "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def create_token(n, name="metrics"):
    """An admin token from the node's store (`portico admin token create`)."""
    p = subprocess.run([BIN, "admin", "token", "create", "-c", str(n.config_path), "--name", name],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    token = [ln.strip() for ln in p.stdout.splitlines() if ln.strip()][-1]
    assert re.fullmatch(r"pt_[A-Za-z0-9]+_\S+", token), token
    return token


def total_requests(exp):
    return exp.total("portico_http_requests_total")


# ---------------------------------------------------------------- fixtures

SHOP = '''
name: shop
base_path: /shop
kind: service
title: Shop
version: "1"
routes:
  - {method: GET, path: /ok, name: ok, respond: {body: ok}}
  - {method: POST, path: /items, name: create, respond: {status: 201, body: {created: true}}}
  - {method: GET, path: /fail, name: fail, respond: {status: 500, body: boom}}
  - {method: GET, path: /teapot, respond: {status: 418, body: short and stout}}
  - method: GET
    path: /private
    name: private
    policies:
      auth: {methods: [api_key]}
    respond: {body: secret}
  - method: GET
    path: /limited
    name: limited
    policies:
      rate_limit: {rate: 1/h, burst: 1}
    respond: {body: limited}
  - method: POST
    path: /small
    name: small
    policies:
      body_limit: {max: 16}
    respond: {body: small}
'''


def proxy_api(name, base_path, targets, extra=""):
    t = "".join("    - url: %s\n" % u for u in targets)
    return ('name: %s\nbase_path: %s\nkind: proxy\ntitle: %s\nversion: "1"\n'
            'upstream:\n  targets:\n%s%s' % (name, base_path, name, t, extra))


NO_RETRY = "  retries: 0\n  health: {max_fails: 0}\n"


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Upstream:
    """A threaded HTTP/1.1 upstream on 127.0.0.1: /fail answers 503, the
    rest 200 "up"."""

    def __init__(self):
        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                status = 503 if self.path.endswith("/fail") else 200
                body = b"up" if status == 200 else b"down"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def upstream():
    u = Upstream()
    yield u
    u.stop()


# ---------------------------------------------------------------- format, endpoint

def test_metrics_endpoint_and_format(portico_factory):
    n = start_node(portico_factory, {"shop.yaml": SHOP})
    r = n.scraper.request()
    assert r.status == 200, r
    check_content_type(r.header("content-type"))
    assert r.body.endswith(b"\n")
    exp = promtext.parse(r.body, require_help=True)
    info = exp.samples("portico_info")
    assert len(info) == 1 and info[0].value == 1, info
    assert info[0].labels["environment"] == "default", info
    version = subprocess.run([BIN, "version"], capture_output=True, text=True,
                             timeout=30).stdout.split()
    assert info[0].labels["version"] in version, (info, version)
    assert info[0].labels["node"], info
    now = time.time()
    for name in ("portico_start_time_seconds", "process_start_time_seconds"):
        v = exp.value(name)
        assert v is not None and now - 120 < v <= now + 1, (name, v, now)
    assert exp.value("process_resident_memory_bytes") > 1 << 20
    fds = exp.value("process_open_fds")
    assert fds is not None and abs(fds - len(os.listdir("/proc/%d/fd" % n.proc.pid))) <= 16, fds
    assert exp.value("process_cpu_seconds_total") > 0
    assert exp.value("portico_connections_open") >= 0
    # HEAD: the same headers, no body
    h = n.scraper.request(method="HEAD")
    assert h.status == 200 and h.body == b"", h
    check_content_type(h.header("content-type"))
    # only on the admin listener: the public one answers 404 (api "")
    r = requests.get(public(n, "/metrics"), timeout=10)
    assert r.status_code == 404 and "portico_info" not in r.text, r.text
    # the admin listener's own requests are never counted
    for _ in range(3):
        n.scraper.scrape()
        n.scraper.request("/admin/nope")
        n.scraper.request("/admin/status", token=None)
    eventually(n.scraper, lambda e: series(e, "portico_http_requests_total",
                                           ("api", "route", "method", "code")),
               {("", "", "GET", "404"): 1})


def test_every_contract_family_is_exposed_with_its_type_and_labels(full):
    exp = full.exp
    missing = [f for f in promtext.CONTRACT_TYPES if f not in exp.families]
    assert not missing, "families of the contract not exposed: %s" % missing
    wrong = {f: (exp.families[f].type, t) for f, t in promtext.CONTRACT_TYPES.items()
             if exp.families[f].type != t}
    assert not wrong, "families of another type than the contract's (got, want): %r" % wrong
    for f, fam in exp.families.items():
        assert fam.help and fam.help.strip(), "family %s has an empty HELP" % f
    extra = [f for f in exp.families if f not in promtext.CONTRACT_TYPES]
    print("families beyond the contract: %s" % extra)
    bad = {}
    for f, labels in LABELS.items():
        for s in exp.families[f].samples:
            want = labels | ({"le"} if s.name.endswith("_bucket") else set())
            if set(s.labels) != want:
                bad.setdefault(f, (sorted(s.labels), sorted(want)))
    assert not bad, "label names differing from the contract (got, want): %r" % bad
    # every family has series after the traffic of the fixture
    empty = [f for f in promtext.CONTRACT_TYPES if not exp.families[f].samples]
    assert not empty, "families without a series after traffic: %s" % empty


def test_duration_histograms_use_the_contract_buckets(full):
    exp = full.exp
    for f, fam in exp.families.items():
        if fam.type != "histogram" or not f.endswith("_seconds"):
            continue
        groups = {}
        for s in fam.samples:
            if s.name.endswith("_bucket"):
                key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                groups.setdefault(key, []).append(promtext.parse_float(s.labels["le"]))
        assert groups, "histogram %s has no series" % f
        for key, les in groups.items():
            assert les == DURATION_BUCKETS, (f, key, les)
        # durations are not negative, and the mean is plausible
        for s in exp.samples(f + "_sum"):
            cnt = exp.value(f + "_count", s.labels)
            assert s.value >= 0 and (cnt == 0 or s.value / cnt < 60), (f, s, cnt)


def test_label_values_are_bounded(full):
    exp = full.exp
    for s in exp.samples("portico_http_requests_total"):
        assert s.labels["method"] in METHOD_CLASSES, s
        assert re.fullmatch(r"[1-5][0-9][0-9]", s.labels["code"]), s
    for name in ("portico_http_request_duration_seconds_count",
                 "portico_http_request_size_bytes_total", "portico_http_response_size_bytes_total"):
        for s in exp.samples(name):
            assert s.labels["method"] in METHOD_CLASSES, s
    for s in exp.samples("portico_consumer_requests_total"):
        assert s.labels["class"] in CLASSES, s
    for s in exp.samples("portico_upstream_requests_total"):
        assert s.labels["class"] in CLASSES | {"none"}, s
    for s in exp.samples("portico_process_executions_total"):
        assert s.labels["status"] in PROCESS_STATUSES, s
    for s in exp.samples("portico_policy_decisions_total"):
        assert s.labels["decision"] in POLICY_DECISIONS.get(s.labels["policy"], ()), s
    for s in exp.samples("portico_connections_closed_total"):
        assert s.labels["reason"] in CLOSE_REASONS, s
    for s in exp.samples("portico_tls_handshakes_total"):
        assert s.labels["result"] in {"ok", "failed"}, s
    for s in exp.samples("portico_deployments_total"):
        assert s.labels["result"] in {"ok", "failed"}, s
    # what the fixture sent to 40 distinct unknown paths and with odd methods
    # made one series each, not one per path
    nowhere = series(exp, "portico_http_requests_total", ("api", "route", "method", "code"))
    assert nowhere.get(("", "", "GET", "404"), 0) >= 40, nowhere
    assert not [k for k in nowhere if k[0] == "" and k[1] != ""], nowhere
    assert nowhere.get(("shop", "", "OTHER", "405"), 0) >= 2, nowhere
    routes = {s.labels["route"] for s in exp.samples("portico_http_requests_total")}
    assert not [r for r in routes if "nowhere" in r or "zz" in r], routes
    # a route without a name is labelled with its operation name, "METHOD path"
    # (docs/api-definitions.md), as in the access log
    assert ("shop", "GET /teapot", "GET", "418") in nowhere, sorted(nowhere)


# ---------------------------------------------------------------- exact counts

def test_request_counts_are_exact(portico_factory):
    """A fresh node with 2 workers: N requests of each kind, and
    portico_http_requests_total holds exactly those, per api, route, method
    and code; the duration histogram counts the same; the admin listener's
    requests (the scrapes among them) count nowhere."""
    N = 5
    dead = closed_port()
    key, digest = new_key()
    n = start_node(portico_factory,
                   {"shop.yaml": SHOP, "dead.yaml": proxy_api("dead", "/dead",
                                                              ["http://127.0.0.1:%d" % dead],
                                                              NO_RETRY)},
                   extra="users:\n  - {name: u1, api_keys: [\"%s\"]}\n" % digest)
    before = n.scraper.scrape()
    assert total_requests(before) == 0, before.samples("portico_http_requests_total")
    for _ in range(3):  # admin traffic that must not count
        n.scraper.request("/admin/status", token=None)
        n.scraper.request("/admin/nothing-here")
    p = n.public_port
    expected = {}

    def send(data, want, label, times=N):
        for _ in range(times):
            got = raw_status(p, data)
            assert got == want, (data, got, want)
        expected[label] = expected.get(label, 0) + times

    send(req("GET", "/shop/ok"), 200, ("shop", "ok", "GET", "200"))
    send(req("POST", "/shop/items", "Content-Length: 2\r\n") + b"{}", 201,
         ("shop", "create", "POST", "201"))
    send(req("GET", "/shop/nope"), 404, ("shop", "", "GET", "404"))
    send(req("GET", "/nowhere"), 404, ("", "", "GET", "404"))
    send(req("POST", "/nowhere/else", "Content-Length: 0\r\n"), 404, ("", "", "POST", "404"))
    send(req("DELETE", "/shop/ok"), 405, ("shop", "", "DELETE", "405"))
    send(req("PROPFIND", "/shop/ok"), 405, ("shop", "", "OTHER", "405"))
    send(req("GET", "/shop/private", "X-API-Key: %s\r\n" % (key[:-2] + "xx")), 401,
         ("shop", "private", "GET", "401"))
    send(req("GET", "/shop/private"), 401, ("shop", "private", "GET", "401"))
    send(req("GET", "/shop/private", "X-API-Key: %s\r\n" % key), 200,
         ("shop", "private", "GET", "200"))
    send(req("GET", "/shop/limited"), 200, ("shop", "limited", "GET", "200"), times=1)
    send(req("GET", "/shop/limited"), 429, ("shop", "limited", "GET", "429"))
    # 413 from a chunked body cut off once past the limit
    send(req("POST", "/shop/small", "Transfer-Encoding: chunked\r\n") +
         b"10\r\n" + b"x" * 16 + b"\r\n10\r\n" + b"y" * 16 + b"\r\n0\r\n\r\n", 413,
         ("shop", "small", "POST", "413"))
    send(req("GET", "/shop/fail"), 500, ("shop", "fail", "GET", "500"))
    send(req("GET", "/dead/x"), 502, ("dead", "", "GET", "502"))
    sent = sum(expected.values())

    labels = ("api", "route", "method", "code")
    exp = eventually(n.scraper, lambda e: series(e, "portico_http_requests_total", labels),
                     expected)
    assert total_requests(exp) == sent
    # the duration histogram counted every request once, per api, route and method
    per_route = {}
    for (api, route, method, _), v in expected.items():
        per_route[(api, route, method)] = per_route.get((api, route, method), 0) + v
    assert series(exp, "portico_http_request_duration_seconds_count",
                  ("api", "route", "method")) == per_route
    # sizes: at least the bodies (whatever the framing counted besides)
    sizes_out = series(exp, "portico_http_response_size_bytes_total", ("api", "route", "method"))
    sizes_in = series(exp, "portico_http_request_size_bytes_total", ("api", "route", "method"))
    assert sizes_out.get(("shop", "ok", "GET"), 0) >= N * len("ok"), sizes_out
    assert sizes_in.get(("shop", "create", "POST"), 0) >= N * 2, sizes_in
    assert set(sizes_out) <= set(per_route) and set(sizes_in) <= set(per_route)
    # and it stays so: the scrapes themselves count nowhere
    for _ in range(5):
        n.scraper.scrape()
    again = n.scraper.scrape()
    assert series(again, "portico_http_requests_total", labels) == expected


def test_head_requests_have_method_head(portico_factory):
    """HEAD is one of the method classes of the contract: a HEAD answered by
    a GET route counts as method="HEAD", not "GET"."""
    n = start_node(portico_factory, {"shop.yaml": SHOP})
    for _ in range(3):
        assert raw_status(n.public_port, req("HEAD", "/shop/ok")) == 200
    assert raw_status(n.public_port, req("GET", "/shop/ok")) == 200
    eventually(n.scraper, lambda e: series(e, "portico_http_requests_total",
                                           ("api", "route", "method", "code")),
               {("shop", "ok", "HEAD", "200"): 3, ("shop", "ok", "GET", "200"): 1})


def test_body_limit_refusal_before_the_body_is_counted(portico_factory):
    """A body_limit refusal from the announced Content-Length (413 before
    the body, then the connection closes) is a request answered like any
    other: counted under its API and route, and in the duration histogram."""
    n = start_node(portico_factory, {"shop.yaml": SHOP})
    N = 3
    for _ in range(N):
        assert raw_status(n.public_port, req("POST", "/shop/small",
                                             "Content-Length: 1000000\r\n")) == 413
    exp = eventually(n.scraper, lambda e: (
        series(e, "portico_http_requests_total", ("api", "route", "method", "code")),
        e.value("portico_policy_decisions_total", policy="body_limit", decision="too_large")),
        ({("shop", "small", "POST", "413"): N}, N))
    assert exp.value("portico_http_request_duration_seconds_count", api="shop", route="small",
                     method="POST") == N


def test_refusals_before_routing_are_counted(portico_factory):
    """What the HTTP layer refuses before any routing (malformed requests,
    limits) is counted too, with api="" and route=""."""
    n = start_node(portico_factory, {"shop.yaml": SHOP},
                   limits="  max_header_size: 2KiB\n  max_uri_length: 1KiB\n"
                          "  max_body_size: 1KiB\n")
    p = n.public_port

    def refused(data, status):
        with RawClient(p) as c:
            c.send(data)
            r = c.read_response()
            assert r.status == status, (data[:60], r)

    refused(req("GET", "/shop/ok", "X-Big: %s\r\n" % ("x" * 3000)), 431)
    refused(req("GET", "/shop/" + "x" * 2000), 414)
    refused(req("POST", "/shop/items", "Content-Length: 5000\r\n"), 413)
    refused(b"BLAH\r\n\r\n", 400)
    refused(req("GET", "/shop/ok", "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n"), 400)

    def by_code(exp):
        out = {}
        for s in exp.samples("portico_http_requests_total"):
            k = (s.labels["api"], s.labels["route"], s.labels["code"])
            out[k] = out.get(k, 0) + s.value
            assert s.labels["method"] in METHOD_CLASSES, s
        return out

    eventually(n.scraper, by_code, {("", "", "431"): 1, ("", "", "414"): 1, ("", "", "413"): 1,
                                    ("", "", "400"): 2})


def test_policy_decisions_are_exact(portico_factory):
    N = 4
    key, digest = new_key()
    n = start_node(portico_factory, {"shop.yaml": SHOP},
                   extra="users:\n  - {name: u1, api_keys: [\"%s\"]}\n" % digest)
    token = create_token(n)
    before = series(n.scraper.scrape(), "portico_policy_decisions_total", ("policy", "decision"))
    p = n.public_port
    for _ in range(N):
        assert raw_status(p, req("GET", "/shop/private", "X-API-Key: pk_nobody\r\n")) == 401
        assert raw_status(p, req("GET", "/shop/private", "X-API-Key: %s\r\n" % new_key()[0])) == 401
        assert raw_status(p, req("GET", "/shop/private")) == 401
        assert raw_status(p, req("GET", "/shop/private", "X-API-Key: %s\r\n" % key)) == 200
        assert raw_status(p, req("POST", "/shop/small", "Content-Length: 100000\r\n")) == 413
    assert raw_status(p, req("GET", "/shop/limited")) == 200
    for _ in range(N):
        assert raw_status(p, req("GET", "/shop/limited")) == 429
    want = {("auth", "allowed"): N, ("auth", "no_credentials"): N,
            ("rate_limit", "allowed"): 1, ("rate_limit", "limited"): N,
            ("body_limit", "too_large"): N}
    # "pk_nobody" is malformed or unknown, a well-formed key of nobody is unknown

    def compute(exp):
        d = delta(series(exp, "portico_policy_decisions_total", ("policy", "decision")), before)
        unknown = d.get(("auth", "unknown"), 0)
        bad_keys = d.pop(("auth", "unknown"), 0) + d.pop(("auth", "malformed"), 0)
        return d, bad_keys, unknown >= N

    eventually(n.scraper, compute, (want, 2 * N, True))
    # the same numbers as /admin/status
    status = requests.get("http://127.0.0.1:%d/admin/status" % n.admin_port, timeout=30,
                          headers={"Authorization": "Bearer " + token}).json()
    st = status["policy_decisions"]
    exp = n.scraper.scrape()
    # and portico_info names the node and environment /admin/status does
    info = exp.samples("portico_info")[0].labels
    assert (info["node"], info["environment"]) == (status.get("node"), status["environment"]), (
        info, status)
    for s in exp.samples("portico_policy_decisions_total"):
        k = "%s.%s" % (s.labels["policy"], s.labels["decision"])
        assert st.get(k) == s.value, (k, st.get(k), s.value, st)


def test_consumers_are_counted_per_user_and_class(portico_factory):
    k1, h1 = new_key()
    k2, h2 = new_key()
    api = SHOP.replace("routes:\n", "policies:\n  auth: {methods: [api_key]}\nroutes:\n", 1)
    n = start_node(portico_factory, {"shop.yaml": api},
                   extra="users:\n  - {name: u1, api_keys: [\"%s\"]}\n"
                         "  - {name: u2, api_keys: [\"%s\"]}\n" % (h1, h2))
    before = series(n.scraper.scrape(), "portico_consumer_requests_total", ("consumer", "class"))
    p = n.public_port
    for _ in range(3):
        assert raw_status(p, req("GET", "/shop/ok", "X-API-Key: %s\r\n" % k1)) == 200
    for _ in range(2):
        assert raw_status(p, req("GET", "/shop/teapot", "X-API-Key: %s\r\n" % k1)) == 418
    assert raw_status(p, req("GET", "/shop/fail", "X-API-Key: %s\r\n" % k1)) == 500
    for _ in range(4):
        assert raw_status(p, req("GET", "/shop/ok", "X-API-Key: %s\r\n" % k2)) == 200
    for _ in range(3):  # anonymous refusals are nobody's
        assert raw_status(p, req("GET", "/shop/ok")) == 401

    def mine(exp):
        d = delta(series(exp, "portico_consumer_requests_total", ("consumer", "class")), before)
        return {k: v for k, v in d.items() if k[0] in ("u1", "u2")}

    eventually(n.scraper, mine, {("u1", "2xx"): 3, ("u1", "4xx"): 2, ("u1", "5xx"): 1,
                                 ("u2", "2xx"): 4})


def test_consumers_beyond_the_top_20_are_other(portico_factory):
    users = {"c%02d" % i: new_key() for i in range(1, 26)}
    api = SHOP.replace("routes:\n", "policies:\n  auth: {methods: [api_key]}\nroutes:\n", 1)
    n = start_node(portico_factory, {"shop.yaml": api},
                   extra="users:\n" + "".join("  - {name: %s, api_keys: [\"%s\"]}\n" % (u, k[1])
                                              for u, k in users.items()))
    p = n.public_port
    for u in sorted(users)[:20]:      # the top 20: 3 requests each (new connections:
        for _ in range(3):            # both workers see them)
            assert raw_status(p, req("GET", "/shop/ok", "X-API-Key: %s\r\n" % users[u][0])) == 200
    for u in sorted(users)[20:]:      # 5 more consumers, 1 request each
        assert raw_status(p, req("GET", "/shop/ok", "X-API-Key: %s\r\n" % users[u][0])) == 200
    want = {(u, "2xx"): 3 for u in sorted(users)[:20]}
    want[("other", "2xx")] = 5
    exp = eventually(n.scraper, lambda e: series(e, "portico_consumer_requests_total",
                                                 ("consumer", "class")), want)
    assert len(exp.samples("portico_consumer_requests_total")) == 21


def test_consumer_counters_never_decrease_when_the_top_changes(portico_factory):
    """consumer="other" sums the consumers outside the top 20; when one of
    them enters the top, "other" must not lose what it counted (a counter
    that goes down is a reset to Prometheus: rate() and increase() jump)."""
    users = {"c%02d" % i: new_key() for i in range(1, 22)}
    api = SHOP.replace("routes:\n", "policies:\n  auth: {methods: [api_key]}\nroutes:\n", 1)
    n = start_node(portico_factory, {"shop.yaml": api},
                   extra="users:\n" + "".join("  - {name: %s, api_keys: [\"%s\"]}\n" % (u, k[1])
                                              for u, k in users.items()))
    p = n.public_port

    def call(u, path, status):
        assert raw_status(p, req("GET", path, "X-API-Key: %s\r\n" % users[u][0])) == status

    for u in sorted(users)[:20]:
        for _ in range(3):
            call(u, "/shop/ok", 200)
    for _ in range(2):                 # c21: 2 requests, all 4xx: in "other"
        call("c21", "/shop/teapot", 418)
    labels = ("consumer", "class")
    first = series(eventually(n.scraper, lambda e: series(e, "portico_consumer_requests_total",
                                                          labels).get(("other", "4xx")), 2),
                   "portico_consumer_requests_total", labels)
    for _ in range(2):                 # c21 now has 4: it enters the top 20
        call("c21", "/shop/ok", 200)
    second = series(eventually(n.scraper, lambda e: sum(series(
        e, "portico_consumer_requests_total", labels).values()), 64),
        "portico_consumer_requests_total", labels)
    went_down = {k: (v, second.get(k, 0)) for k, v in first.items()
                 if k in second and second[k] < v or (k[0] == "other" and second.get(k, 0) < v)}
    assert not went_down, "consumer counters went down (before, after): %r\nbefore %r\nafter %r" % (
        went_down, first, second)


SQL_API = '''
name: store
base_path: /store
kind: service
title: Store
version: "1"
connections:
  db: {url: "sqlite:%s"}
processes:
  count:
    steps:
      - sql: {query: SELECT count(*) AS n FROM items, result: row}
  add:
    on_error: {unique_violation: 409}
    steps:
      - name: ins
        sql:
          query: INSERT INTO items(name) VALUES (:name)
          params: {name: body.name}
          result: key
      - respond: {status: 201, body: "{id: steps.ins.key}"}
  broken:
    steps:
      - sql: {query: SELECT nothing FROM no_such_table, result: row}
  slow:
    steps:
      - sql:
          query: >-
            WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500000000)
            SELECT count(*) AS n FROM c
          result: row
routes:
  - {method: GET, path: /count, process: count}
  - {method: POST, path: /items, process: add}
  - {method: GET, path: /broken, process: broken}
  - {method: GET, path: /slow, process: slow}
'''


def test_process_executions_are_exact(portico_factory, tmp_path):
    db = tmp_path / "store.db"
    con = sqlite3.connect(str(db))
    con.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
    con.commit()
    con.close()
    n = start_node(portico_factory, {"store.yaml": SQL_API % db},
                   extra="processes:\n  max_running: 3\n  max_queued: 37\n"
                         "  max_execution_time: 300ms\n")
    labels = ("api", "process", "status")
    before = series(n.scraper.scrape(), "portico_process_executions_total", labels)
    N, M = 6, 3
    with requests.Session() as s:
        for _ in range(N):
            r = s.get(public(n, "/store/count"), timeout=10)
            assert r.status_code == 200, r.text
        for _ in range(M):
            r = s.get(public(n, "/store/broken"), timeout=10)
            assert r.status_code == 500, r.text
        assert s.post(public(n, "/store/items"), json={"name": "a"}, timeout=10).status_code == 201
        r = s.post(public(n, "/store/items"), json={"name": "a"}, timeout=10)
        assert r.status_code == 409, r.text
        r = s.get(public(n, "/store/slow"), timeout=30)
        assert r.status_code == 504, r.text
    want = {("store", "count", "ok"): N, ("store", "broken", "server_error"): M,
            ("store", "add", "ok"): 1, ("store", "add", "client_error"): 1,
            ("store", "slow", "timeout"): 1}
    exp = eventually(n.scraper, lambda e: delta(series(e, "portico_process_executions_total",
                                                       labels), before), want)
    durations = series(exp, "portico_process_duration_seconds_count", ("api", "process"))
    assert durations.get(("store", "count")) == N, durations
    for proc, k in (("broken", M), ("add", 2), ("slow", 1)):
        assert durations.get(("store", proc), 0) <= k, durations
    slow_sum = exp.value("portico_process_duration_seconds_sum", api="store", process="slow")
    assert slow_sum is not None and 0.2 <= slow_sum < 10, slow_sum
    # sizes: the request body of add (twice {"name": "a"}), answers of count
    req_sizes = series(exp, "portico_process_request_size_bytes_total", ("api", "process"))
    resp_sizes = series(exp, "portico_process_response_size_bytes_total", ("api", "process"))
    assert req_sizes.get(("store", "add"), 0) >= 2 * len('{"name": "a"}') - 2, req_sizes
    assert resp_sizes.get(("store", "count"), 0) >= N * len('{"n":0}'), resp_sizes
    # the pool at rest
    assert exp.value("portico_process_pool_threads") == 3
    assert exp.value("portico_process_pool_running") == 0
    assert exp.value("portico_process_pool_queued") == 0
    mq = exp.value("portico_process_pool_max_queued")
    assert mq is not None and (mq == 37 or 0 <= mq <= N + M + 3), mq
    waits = exp.value("portico_process_queue_wait_seconds_count")
    assert waits is not None and 0 < waits <= N + M + 3, waits


def test_upstream_requests_by_class(portico_factory, upstream):
    dead = closed_port()
    flaky_extra = "  retries: 1\n  health: {max_fails: 0}\n"
    n = start_node(portico_factory, {
        "up.yaml": proxy_api("up", "/up", [upstream.url()]),
        "dead.yaml": proxy_api("dead", "/dead", ["http://127.0.0.1:%d" % dead], NO_RETRY),
        "flaky.yaml": proxy_api("flaky", "/flaky", ["http://127.0.0.1:%d" % dead,
                                                    upstream.url()], flaky_extra)})
    labels = ("api", "target", "class")
    before = series(n.scraper.scrape(), "portico_upstream_requests_total", labels)
    N, M, D, F = 5, 2, 3, 6
    with requests.Session() as s:
        for _ in range(N):
            assert s.get(public(n, "/up/x"), timeout=10).status_code == 200
        for _ in range(M):
            assert s.get(public(n, "/up/fail"), timeout=10).status_code == 503
        for _ in range(D):
            assert s.get(public(n, "/dead/x"), timeout=10).status_code == 502
        for _ in range(F):  # the dead target first or second: retried on the live one
            assert s.get(public(n, "/flaky/x"), timeout=10).status_code == 200

    def by_api_class(exp):
        out = {}
        for (api, target, cls), v in delta(series(exp, "portico_upstream_requests_total",
                                                  labels), before).items():
            out[(api, cls)] = out.get((api, cls), 0) + v
        return {k: v for k, v in out.items() if k[1] != "none" or k[0] != "flaky"}

    exp = eventually(n.scraper, by_api_class, {("up", "2xx"): N, ("up", "5xx"): M,
                                                ("dead", "none"): D, ("flaky", "2xx"): F})
    targets = {s.labels["target"] for s in exp.samples("portico_upstream_requests_total",
                                                       api="up")}
    assert len(targets) == 1 and str(upstream.port) in targets.pop(), exp.samples(
        "portico_upstream_requests_total", api="up")
    dead_t = {s.labels["target"] for s in exp.samples("portico_upstream_requests_total",
                                                      api="dead")}
    assert len(dead_t) == 1 and str(dead) in dead_t.pop()
    # the flaky API retried the requests that met the dead target first
    retries = exp.total("portico_upstream_retries_total", api="flaky")
    assert 1 <= retries <= F, retries
    assert exp.total("portico_upstream_retries_total", api="up") == 0
    assert exp.total("portico_upstream_retries_total", api="dead") == 0
    # answers timed: one per response head received
    assert exp.total("portico_upstream_response_seconds_count", api="up") == N + M
    assert exp.total("portico_upstream_response_seconds_count", api="dead") == 0
    # connections: at least one, at most one per request (keep-alive reuses them)
    conns = exp.total("portico_upstream_connects_total", api="up")
    assert 1 <= conns <= N + M, conns
    assert exp.total("portico_upstream_connect_seconds_total", api="up") >= 0


def test_a_failing_target_is_visible_when_retries_hide_its_failures(portico_factory, upstream):
    """A proxy API with a target that refuses every connection and a live
    one, retries on: every client request gets its 200 from the live target,
    yet the metrics must still show the dead target failing - under its own
    target label (class "none" for the failed attempts, or the retries it
    caused). Otherwise a pool member that is down is invisible to
    portico_upstream_requests_total and to the PorticoUpstreamFailures alert."""
    dead = closed_port()
    n = start_node(portico_factory, {
        "flaky.yaml": proxy_api("flaky", "/flaky", ["http://127.0.0.1:%d" % dead, upstream.url()],
                                "  retries: 1\n  health: {max_fails: 0}\n")})
    F = 6
    with requests.Session() as s:
        for _ in range(F):
            assert s.get(public(n, "/flaky/x"), timeout=10).status_code == 200

    def state(exp):
        retries = exp.total("portico_upstream_retries_total", api="flaky")
        return (exp.total("portico_upstream_requests_total", {"class": "2xx"}, api="flaky"),
                retries >= 1)

    exp = eventually(n.scraper, state, (F, True))
    dead_series = [s for name in ("portico_upstream_requests_total",
                                  "portico_upstream_retries_total")
                   for s in exp.samples(name, api="flaky") if str(dead) in s.labels["target"]]
    assert dead_series and sum(s.value for s in dead_series) >= 1, (
        "the dead target 127.0.0.1:%d appears in no upstream series: %r" % (
            dead, exp.samples("portico_upstream_requests_total", api="flaky") +
            exp.samples("portico_upstream_retries_total", api="flaky")))


# ---------------------------------------------------------------- connections

def test_connections_accepted_closed_open(portico_factory):
    n = start_node(portico_factory, {"shop.yaml": SHOP})
    sc = n.scraper
    base = sc.scrape()       # the scraper's connection is open from here on
    connects = sc.connects

    def conn_state(exp):
        closed = series(exp, "portico_connections_closed_total", ("reason",))
        return (exp.value("portico_connections_accepted_total"),
                exp.value("portico_connections_open"), closed)

    acc0, open0, closed0 = conn_state(base)
    sent0 = base.value("portico_network_received_bytes_total")
    K = 5
    clients = []
    nbytes = 0
    for _ in range(K):
        c = RawClient(n.public_port)
        data = req("GET", "/shop/ok")
        c.send(data)
        nbytes += len(data)
        assert c.read_response().status == 200
        clients.append(c)
    exp = eventually(sc, lambda e: conn_state(e)[:2], (acc0 + K, open0 + K))
    assert conn_state(exp)[2] == closed0
    assert exp.value("portico_network_received_bytes_total") - sent0 >= nbytes
    for c in clients:
        c.close()
    want_closed = dict(closed0)
    want_closed[("client",)] = want_closed.get(("client",), 0) + K
    eventually(sc, conn_state, (acc0 + K, open0, want_closed))
    assert sc.connects == connects, "the scraper's connection was reopened"


def test_connections_refused_at_the_limit(portico_factory):
    n = start_node(portico_factory, {"shop.yaml": SHOP}, workers=1,
                   limits="  max_connections: 4\n")
    sc = n.scraper
    base = sc.scrape()  # the scraper's own connection is one of the four
    held = []
    try:
        for _ in range(3):
            c = RawClient(n.public_port)
            c.send(req("GET", "/shop/ok"))
            assert c.read_response().status == 200
            held.append(c)
        for _ in range(2):
            with RawClient(n.public_port) as extra:
                data, closed = extra.read_until_close(timeout=3)
                assert closed and data.startswith(b"HTTP/1.1 503"), data
        exp = eventually(sc, lambda e: e.value("portico_connections_refused_total"),
                         base.value("portico_connections_refused_total") + 2)
        assert exp.value("portico_connections_accepted_total") == \
            base.value("portico_connections_accepted_total") + 3
    finally:
        for c in held:
            c.close()


def test_tls_handshakes(full):
    sc = full.scraper
    before = series(sc.scrape(), "portico_tls_handshakes_total", ("result",))
    ctx = ssl.create_default_context(cafile=full.cert)
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", full.ports["secure"]), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as t:
                t.sendall(req("GET", "/shop/ok"))
                assert t.recv(100).startswith(b"HTTP/1.1 200")
    with socket.create_connection(("127.0.0.1", full.ports["secure"]), timeout=10) as raw:
        raw.sendall(req("GET", "/shop/ok"))  # plain HTTP to the TLS port
        try:
            raw.recv(100)
        except OSError:
            pass
    eventually(sc, lambda e: delta(series(e, "portico_tls_handshakes_total", ("result",)),
                                   before), {("ok",): 2, ("failed",): 1})


# ---------------------------------------------------------------- deployments, token

def test_deployments_are_counted(portico_factory, tmp_path):
    n = start_node(portico_factory, {"shop.yaml": SHOP})
    token = create_token(n)
    admin = "http://127.0.0.1:%d" % n.admin_port
    auth = {"Authorization": "Bearer " + token}
    before = n.scraper.scrape()
    dep0 = series(before, "portico_deployments_total", ("result",))
    dur0 = before.value("portico_deployment_duration_seconds_count") or 0
    r = requests.post(admin + "/admin/apis", data=SHOP.replace("name: shop", "name: more")
                      .replace("/shop", "/more").encode(), timeout=60,
                      headers=dict(auth, **{"Content-Type": "application/yaml"}))
    assert r.status_code == 201, r.text
    r = requests.post(admin + "/admin/environments/default/deployments", json={"api": "more"},
                      headers=auth, timeout=60)
    assert r.status_code == 201, r.text
    assert requests.get(public(n, "/more/ok"), timeout=10).text == "ok"
    exp = eventually(n.scraper, lambda e: delta(series(e, "portico_deployments_total",
                                                       ("result",)), dep0), {("ok",): 1})
    assert exp.value("portico_deployment_duration_seconds_count") == dur0 + 1
    # a deployment whose snapshot cannot be built: its CA file went away after the push
    ca = tmp_path / "gone-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(tmp_path / "x.key"),
                    "-out", str(ca), "-days", "2", "-subj", "/CN=gone"], check=True,
                   capture_output=True, timeout=60)
    bad = proxy_api("gone", "/gone", ["https://127.0.0.1:%d" % closed_port()],
                    "  tls: {ca_file: %s}\n" % ca)
    r = requests.post(admin + "/admin/apis", data=bad.encode(), timeout=60,
                      headers=dict(auth, **{"Content-Type": "application/yaml"}))
    assert r.status_code == 201, r.text
    ca.unlink()
    r = requests.post(admin + "/admin/environments/default/deployments", json={"api": "gone"},
                      headers=auth, timeout=60)
    assert r.status_code == 422, r.text
    eventually(n.scraper, lambda e: delta(series(e, "portico_deployments_total", ("result",)),
                                          dep0), {("ok",): 1, ("failed",): 1})


def test_metrics_token_required(portico_factory):
    n = start_node(portico_factory, {"shop.yaml": SHOP}, extra="metrics: {require_token: true}\n")
    sc = n.scraper
    r = sc.request()
    assert r.status == 401, r
    assert (r.header("www-authenticate") or "").lower().startswith("bearer"), r.headers
    assert b"portico_" not in r.body
    assert sc.request(token="pt_nope_nope").status == 401
    sc.token = create_token(n)
    exp = sc.scrape()
    assert exp.samples("portico_info")
    assert sc.request(token=sc.token[:-1] + ("A" if sc.token[-1] != "A" else "B")).status == 401


def test_metrics_open_by_default(portico_factory):
    n = start_node(portico_factory, {"shop.yaml": SHOP})
    assert requests.get("http://127.0.0.1:%d/metrics" % n.admin_port, timeout=30).status_code == 200


# ---------------------------------------------------------------- under load

def test_counters_monotonic_and_histograms_consistent_under_load(portico_factory):
    n = start_node(portico_factory, {"shop.yaml": SHOP})
    THREADS, PER = 4, 150
    stop = threading.Event()

    def load(i):
        done = 0
        with requests.Session() as s:
            for k in range(PER):
                path = "/shop/ok" if k % 3 else ("/shop/fail" if k % 2 else "/shop/nope")
                s.get(public(n, path), timeout=30)
                done += 1
                if stop.is_set():
                    break
        return done

    scrapes = []
    with concurrent.futures.ThreadPoolExecutor(THREADS) as ex:
        futs = [ex.submit(load, i) for i in range(THREADS)]
        deadline = time.time() + 120
        while not all(f.done() for f in futs) and time.time() < deadline:
            scrapes.append(n.scraper.scrape())   # each parsed strictly, histograms checked
        stop.set()
        done = sum(f.result() for f in futs)
    scrapes.append(n.scraper.scrape())
    assert len(scrapes) >= 5, "only %d scrapes during the load" % len(scrapes)
    for prev, cur in zip(scrapes, scrapes[1:]):
        for name, fam in prev.families.items():
            if fam.type not in ("counter", "histogram"):
                continue
            for s in fam.samples:
                v = cur.value(s.name, s.labels)
                assert v is not None, "series %r disappeared" % s
                assert v >= s.value, "%r went down to %r" % (s, v)
    final = eventually(n.scraper, total_requests, done)
    # the histogram counted every request too
    assert final.total("portico_http_request_duration_seconds_count") == done
    assert final.total("portico_http_request_duration_seconds_bucket", le="+Inf") == done


# ---------------------------------------------------------------- a node with everything

class Full:
    pass


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """One node with every kind of traffic behind it (service routes, SQL
    processes, a proxy to a live and to a closed upstream, users, policies,
    a TLS listener, a deployment), scraped once after it."""
    d = tmp_path_factory.mktemp("full")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(d / "tls.key"),
                    "-out", str(d / "tls.pem"), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True,
                   capture_output=True, timeout=60)
    db = d / "store.db"
    con = sqlite3.connect(str(db))
    con.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
    con.commit()
    con.close()
    up = Upstream()
    dead = closed_port()
    key, digest = new_key()
    listen = ("  - address: 127.0.0.1:0\n    name: public\n"
              "  - address: 127.0.0.1:0\n    name: secure\n    tls:\n"
              "      cert: %s\n      key: %s\n" % (d / "tls.pem", d / "tls.key"))
    cfg = node_config(listen=listen, extra=ADMIN + "processes:\n  max_execution_time: 300ms\n"
                      "users:\n  - {name: u1, api_keys: [\"%s\"]}\n" % digest)
    apis = {"shop.yaml": SHOP, "store.yaml": SQL_API % db,
            "up.yaml": proxy_api("up", "/up", ["http://127.0.0.1:%d" % dead, up.url()],
                                 "  retries: 1\n  health: {max_fails: 0}\n")}
    n = Portico(d, cfg, apis)
    n.start()
    f = Full()
    f.node, f.upstream, f.cert, f.ports = n, up, str(d / "tls.pem"), n.ports
    f.scraper = Scraper(n.ports["admin"])
    try:
        f.token = create_token(n)
        p = n.ports["public"]
        auth = {"X-API-Key": key}
        with requests.Session() as s:
            for path, h in (("/shop/ok", {}), ("/shop/private", auth), ("/shop/private", {}),
                            ("/shop/limited", {}), ("/shop/limited", {}), ("/shop/fail", {}),
                            ("/shop/teapot", {}), ("/store/count", {}), ("/store/broken", {}),
                            ("/store/slow", {}), ("/up/a", {}), ("/up/b", {}), ("/up/fail", {})):
                s.get("http://127.0.0.1:%d%s" % (p, path), headers=h, timeout=30)
            s.post("http://127.0.0.1:%d/store/items" % p, json={"name": "x"}, timeout=30)
            for i in range(40):
                s.get("http://127.0.0.1:%d/nowhere/zz%d" % (p, i), timeout=30)
        raw_status(p, req("PROPFIND", "/shop/ok"))
        raw_status(p, req("MKCOL", "/shop/ok"))
        raw_status(p, req("POST", "/shop/small", "Content-Length: 100000\r\n"))
        ctx = ssl.create_default_context(cafile=f.cert)
        with socket.create_connection(("127.0.0.1", n.ports["secure"]), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as t:
                t.sendall(req("GET", "/shop/ok", "Connection: close\r\n"))
                t.recv(100)
        # a deployment through the admin API
        admin = "http://127.0.0.1:%d" % n.ports["admin"]
        hdr = {"Authorization": "Bearer " + f.token}
        r = requests.post(admin + "/admin/apis", data=SHOP.replace("name: shop", "name: more")
                          .replace("/shop", "/more").encode(), timeout=60,
                          headers=dict(hdr, **{"Content-Type": "application/yaml"}))
        assert r.status_code == 201, r.text
        r = requests.post(admin + "/admin/environments/default/deployments",
                          json={"api": "more"}, headers=hdr, timeout=60)
        assert r.status_code == 201, r.text
        time.sleep(1.0)  # answers end, connections close, counters settle
        f.exp = f.scraper.scrape()
        f.text = f.scraper.text().decode()
        yield f
    finally:
        f.scraper.close()
        up.stop()
        rc = n.stop()
        assert rc == 0, "portico exited with %s:\n%s" % (rc, n.stderr())
        n.check_clean()


# ---------------------------------------------------------------- the docs follow the code

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                "or", "unless", "offset", "sum", "min", "max", "avg", "count", "stddev",
                "stdvar", "topk", "bottomk", "quantile", "count_values", "group", "rate",
                "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile",
                "clamp_min", "clamp_max", "clamp", "abs", "vector", "scalar", "time",
                "label_replace", "label_join", "sort", "sort_desc", "absent", "absent_over_time",
                "changes", "resets", "avg_over_time", "max_over_time", "min_over_time",
                "sum_over_time", "count_over_time", "last_over_time", "present_over_time",
                "quantile_over_time", "round", "ceil", "floor", "exp", "ln", "log2", "log10",
                "sqrt", "timestamp", "predict_linear", "holt_winters", "inf", "nan", "le"}


def metric_names_in(expr):
    """The metric names a PromQL expression selects: identifiers outside
    strings, label matchers, grouping clauses and range durations, that are
    not functions, keywords, or Grafana variables."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)   # strings
    e = re.sub(r"\{[^{}]*\}", "", e)                                     # label matchers
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)                                     # ranges, subqueries
    e = re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_:]*\}?", "", e)               # $api, ${__rate_interval}
    e = re.sub(r"\b\d+(\.\d+)?([eE][+-]?\d+)?[smhdwy]?\b", "", e)         # numbers, durations
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        w = m.group(0)
        rest = e[m.end():].lstrip()
        if w in PROMQL_WORDS or rest.startswith("("):
            continue
        names.add(w)
    return names


def test_metric_names_in_expressions():
    assert metric_names_in('sum by (api) (rate(portico_http_requests_total{code=~"5..",'
                           'api=~"$api"}[$__rate_interval]))') == {"portico_http_requests_total"}
    assert metric_names_in('histogram_quantile(0.99, sum by (le, api) (rate('
                           'portico_http_request_duration_seconds_bucket[5m]))) > 0.5') == {
        "portico_http_request_duration_seconds_bucket"}
    assert metric_names_in("up{job=\"portico\"} == 0") == {"up"}
    assert metric_names_in("a / on (x) group_left b") == {"a", "b"}


def dashboard_panels(dash):
    out = []
    for p in dash.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows
    return out


def test_grafana_dashboard_uses_only_exposed_metrics(full):
    with open(DASHBOARD) as f:
        dash = json.load(f)
    assert isinstance(dash.get("schemaVersion"), int) and 36 <= dash["schemaVersion"] <= 41, \
        dash.get("schemaVersion")
    assert dash.get("title") and dash.get("uid")
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    dsv = variables.get("DS_PROMETHEUS", {})
    assert dsv.get("type") == "datasource" and dsv.get("query") == "prometheus", variables
    known = full.exp.metric_names()
    ids, unknown, exprs = set(), {}, 0
    for p in dashboard_panels(dash):
        assert p.get("id") not in ids, "panel id %r twice" % p.get("id")
        ids.add(p.get("id"))
        gp = p.get("gridPos", {})
        assert all(isinstance(gp.get(k), int) for k in ("h", "w", "x", "y")), p.get("title")
        if p.get("type") == "row":
            continue
        assert p.get("title"), p
        ds = p.get("datasource") or {}
        assert ds == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, (p["title"], ds)
        assert p.get("targets"), p["title"]
        for t in p["targets"]:
            assert t.get("datasource", ds) == ds and t.get("refId"), (p["title"], t)
            exprs += 1
            for name in metric_names_in(t["expr"]):
                if name not in known:
                    unknown.setdefault(p["title"], set()).add(name)
    for v in variables.values():
        if v.get("type") == "query":
            q = v["query"]["query"] if isinstance(v.get("query"), dict) else v.get("query", "")
            for name in re.findall(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)", q):
                if name not in known:
                    unknown.setdefault("variable " + v["name"], set()).add(name)
    assert exprs >= 10, exprs
    assert not unknown, "dashboard queries use metric names /metrics does not expose: %r" % unknown


def alert_rules():
    if os.environ.get("CI"):
        import yaml  # python3-yaml: scripts/setup.sh installs it; CI must not skip
    else:
        yaml = pytest.importorskip("yaml")
    with open(ALERTS) as f:
        doc = yaml.safe_load(f)
    return [r for g in doc["groups"] for r in g["rules"]], doc


def test_alerting_rules_use_only_exposed_metrics(full):
    rules, doc = alert_rules()
    assert {"name", "rules"} <= set(doc["groups"][0])
    alerts = {r["alert"] for r in rules if "alert" in r}
    for want in ("PorticoHigh5xxRate", "PorticoLatencyP99OverSLO", "PorticoUpstreamFailures",
                 "PorticoProcessQueueSaturated", "PorticoAuthFailureSpike", "PorticoNodeDown"):
        assert want in alerts, (want, alerts)
    known = full.exp.metric_names() | {"up"}
    unknown = {}
    for r in rules:
        assert r.get("expr"), r
        if "alert" in r:
            assert r.get("labels", {}).get("severity") in ("warning", "critical", "page"), r
            assert r.get("annotations", {}).get("summary"), r
        for name in metric_names_in(r["expr"]):
            if name not in known:
                unknown.setdefault(r.get("alert") or r.get("record"), set()).add(name)
    assert not unknown, "rules use metric names /metrics does not expose: %r" % unknown
    # the documented copy is the file
    md = open(OBSERVABILITY_MD).read()
    assert open(ALERTS).read().strip() in md, "docs/observability.md and %s differ" % ALERTS


# scripts/setup.sh installs them; under CI (.ci/run sets CI=1) a missing one fails, not skips
@pytest.mark.skipif(not PROMTOOL and not os.environ.get("CI"),
                    reason="promtool (Debian package prometheus) not installed")
def test_promtool_checks_the_docs_and_the_exposition(full, tmp_path):
    p = subprocess.run([PROMTOOL, "check", "rules", ALERTS], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    # the scrape configuration (its rule file and token file made to exist here)
    cfg = open(SCRAPE_EXAMPLE).read()
    (tmp_path / "portico.token").write_text("pt_x_y\n")
    shutil.copy(ALERTS, tmp_path / "portico-alerts.yml")
    cfg = cfg.replace("/etc/prometheus/", str(tmp_path) + "/")
    (tmp_path / "prometheus.yml").write_text(cfg)
    p = subprocess.run([PROMTOOL, "check", "config", str(tmp_path / "prometheus.yml")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    # every dashboard expression is valid PromQL (as recording rules, variables replaced)
    with open(DASHBOARD) as f:
        dash = json.load(f)
    rules = []
    for i, p in enumerate(dashboard_panels(dash)):
        for t in p.get("targets", []):
            e = t["expr"].replace("$__rate_interval", "5m").replace("$__range", "1h")
            e = re.sub(r"\$\{?[A-Za-z_]+\}?", ".*", e)
            rules.append({"record": "dashboard:panel%d:%s" % (i, t["refId"]), "expr": e})
    (tmp_path / "dash-rules.yml").write_text(json.dumps({"groups": [{"name": "dashboard",
                                                                     "rules": rules}]}))
    p = subprocess.run([PROMTOOL, "check", "rules", str(tmp_path / "dash-rules.yml")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=full.text, capture_output=True,
                       text=True, timeout=60)
    assert "parsing error" not in p.stderr, p.stderr
    print("promtool check metrics:", p.stdout, p.stderr)


PROMETHEUS = os.environ.get("PROMETHEUS") or shutil.which("prometheus")


@pytest.mark.skipif(not PROMETHEUS and not os.environ.get("CI"),
                    reason="prometheus (Debian package prometheus) not installed")
def test_dashboard_and_rules_evaluate_in_prometheus(full, tmp_path):
    """A real Prometheus scrapes the node every second while traffic runs;
    every dashboard query and every alerting rule then evaluates, and the
    main panels have data."""
    port = closed_port()
    (tmp_path / "alerts.yml").write_text(open(ALERTS).read())
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "rule_files: [%s]\n"
        "scrape_configs:\n  - job_name: portico\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n" % (tmp_path / "alerts.yml",
                                                             full.ports["admin"]))
    log = open(tmp_path / "prometheus.log", "w")
    prom = subprocess.Popen([PROMETHEUS, "--config.file", str(tmp_path / "prometheus.yml"),
                             "--storage.tsdb.path", str(tmp_path / "data"),
                             "--web.listen-address", "127.0.0.1:%d" % port],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    api = "http://127.0.0.1:%d/api/v1/" % port
    stop = threading.Event()

    def load():
        paths = ["/shop/ok", "/shop/fail", "/store/count", "/up/a", "/nowhere"]
        with requests.Session() as s:
            for i in range(3000):
                if stop.is_set():
                    break
                s.get("http://127.0.0.1:%d%s" % (full.ports["public"], paths[i % len(paths)]),
                      timeout=10)
                time.sleep(0.01)

    t = threading.Thread(target=load)
    t.start()
    try:
        def scraped():
            try:
                r = requests.get(api + "query", params={"query": "count_over_time(up[1m])"},
                                 timeout=5).json()
            except (requests.RequestException, ValueError):
                return False
            res = r.get("data", {}).get("result", [])
            return bool(res) and float(res[0]["value"][1]) >= 12
        deadline = time.time() + 60
        while not scraped():
            assert time.time() < deadline and prom.poll() is None, (
                tmp_path / "prometheus.log").read_text()[-3000:]
            time.sleep(0.5)
        with open(DASHBOARD) as f:
            dash = json.load(f)
        empty = []
        for p in dashboard_panels(dash):
            for tg in p.get("targets", []):
                e = tg["expr"].replace("$__rate_interval", "10s")
                e = re.sub(r"\$\{?[A-Za-z_]+\}?", ".*", e)
                r = requests.get(api + "query", params={"query": e}, timeout=10).json()
                assert r["status"] == "success", (p["title"], e, r)
                if not r["data"]["result"]:
                    empty.append((p["title"], tg["refId"]))
        for title in ("Requests/s by API", "Latency p50 / p95 / p99", "Status codes",
                      "Process executions by status", "Upstream requests by class",
                      "Connections", "CPU and memory"):
            assert not [e for e in empty if e[0] == title], (title, empty)
        rules = requests.get(api + "rules", timeout=10).json()["data"]["groups"]
        for g in rules:
            for rule in g["rules"]:
                assert rule["health"] in ("ok", "unknown"), rule
    finally:
        stop.set()
        t.join()
        prom.terminate()
        prom.wait(timeout=30)
        log.close()
