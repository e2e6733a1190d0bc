"""Proxy APIs end to end: a node forwards to upstream servers written here
(plain sockets, so that every byte they receive is recorded and every byte
they send is chosen) and to a real nginx. Path mapping, request and response
headers, bodies both ways (also 64 MiB streams with bounded memory), upstream
errors, connection pooling, weighted round-robin, client disconnects, access
log, and routing next to service APIs."""
import base64
import datetime
import email.utils
import functools
import hashlib
import http
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import Portico, RawClient, fetch, get_request, node_config, wait_until

MIB = 1024 * 1024
HEX32 = re.compile(r"^[0-9a-f]{32}$")

# --------------------------------------------------------------------------
# Upstream servers


class UpRequest:
    """One request as an upstream received it."""

    def __init__(self, head, cid):
        self.head = head  # raw bytes, up to and including the blank line
        self.cid = cid  # which accepted connection (1, 2, ...) it came on
        lines = head[:-4].split(b"\r\n")
        self.method, self.target, self.version = lines[0].decode("latin-1").split(" ")
        self.path = self.target.split("?", 1)[0]
        self.headers = []
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            self.headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
        self.body_raw = b""  # as received (chunk framing included)
        self.body = b""  # decoded

    def header(self, name):
        vals = self.header_all(name)
        assert len(vals) <= 1, "%s sent %d times: %r" % (name, len(vals), self.head)
        return vals[0] if vals else None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def __repr__(self):
        return "<UpRequest #%d %r>" % (self.cid, self.head[:400])


class UpConn:
    """The upstream's side of one connection, with an input buffer."""

    def __init__(self, sock, cid):
        self.sock = sock
        self.cid = cid
        self.buf = b""

    def _more(self):
        b = self.sock.recv(262144)
        if not b:
            raise EOFError
        self.buf += b

    def read_head(self):
        """The next request head, or None when the peer closed between requests."""
        while b"\r\n\r\n" not in self.buf:
            try:
                self._more()
            except EOFError:
                if self.buf:
                    raise
                return None
        i = self.buf.index(b"\r\n\r\n") + 4
        head, self.buf = self.buf[:i], self.buf[i:]
        return head

    def _take(self, n):
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self):
        while b"\r\n" not in self.buf:
            self._more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_body(self, req):
        te = req.header("Transfer-Encoding")
        cl = req.header("Content-Length")
        if te is not None:
            assert te.lower() == "chunked", req
            raw, body = [], []
            while True:
                line = self._line()
                raw.append(line + b"\r\n")
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    while True:
                        t = self._line()
                        raw.append(t + b"\r\n")
                        if not t:
                            break
                    break
                data = self._take(size + 2)
                assert data[-2:] == b"\r\n"
                raw.append(data)
                body.append(data[:-2])
            req.body_raw, req.body = b"".join(raw), b"".join(body)
        elif cl is not None:
            req.body_raw = req.body = self._take(int(cl))

    def stream_body(self, n, fn):
        """Reads n body bytes without keeping them: fn(chunk) for each."""
        if self.buf:
            take = self.buf[:n]
            self.buf = self.buf[n:]
            fn(take)
            n -= len(take)
        while n > 0:
            b = self.sock.recv(min(n, 1 << 20))
            if not b:
                raise EOFError
            fn(b)
            n -= len(b)

    def send(self, data):
        self.sock.sendall(data)

    def respond(self, status, headers=(), body=b"", length=True):
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Other"
        out = ["HTTP/1.1 %d %s\r\n" % (status, reason)]
        for k, v in headers:
            out.append("%s: %s\r\n" % (k, v))
        if length:
            out.append("Content-Length: %d\r\n" % len(body))
        out.append("\r\n")
        self.send("".join(out).encode("latin-1") + body)

    def wait_eof(self, timeout=30):
        """Reads and discards until the peer closes (True) or the timeout."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
            return True
        except (socket.timeout, OSError):
            return False


class Upstream:
    """A threaded HTTP/1.1 server on 127.0.0.1. handler(upstream, conn, req)
    is called for each request head; it answers and returns True to keep the
    connection for the next request. Every request and every accepted and
    closed connection is recorded."""

    def __init__(self, handler=None):
        self.handler = handler or default_handler
        self.lsock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.lsock.settimeout(0.1)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.requests = []
        self.accepted = 0
        self.closed = []  # cids of connections whose end was seen
        self.events = {}  # handler notes: name -> value
        self.socks = {}
        self.stopping = False
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def url(self, path=""):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def _accept_loop(self):
        while not self.stopping:
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            with self.lock:
                self.accepted += 1
                cid = self.accepted
                self.socks[cid] = s
            s.settimeout(30)
            threading.Thread(target=self._serve, args=(UpConn(s, cid),), daemon=True).start()

    def _serve(self, c):
        try:
            while True:
                head = c.read_head()
                if head is None:
                    break
                req = UpRequest(head, c.cid)
                with self.lock:
                    self.requests.append(req)
                if not self.handler(self, c, req):
                    break
        except (OSError, EOFError):
            pass
        finally:
            try:
                c.sock.close()
            except OSError:
                pass
            with self.lock:
                self.closed.append(c.cid)
                self.socks.pop(c.cid, None)

    def find(self, request_id):
        with self.lock:
            found = [r for r in self.requests if r.header_all("X-Request-Id") == [request_id]]
        assert len(found) == 1, "upstream got %d requests with id %s: %r" % (
            len(found), request_id, self.requests[-5:])
        return found[0]

    def reset(self):
        with self.lock:
            self.requests = []

    def stop(self):
        self.stopping = True
        self.lsock.close()
        self.thread.join(5)
        with self.lock:
            socks = list(self.socks.values())
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def default_handler(u, c, req):
    c.read_body(req)
    c.respond(200, [("Content-Type", "text/plain"), ("X-Conn", str(c.cid))], b"ok")
    return True


@functools.lru_cache(maxsize=None)
def _pattern_base(block):
    seed = hashlib.sha256(b"portico").digest()
    blocks = (hashlib.sha256(seed + b"%d" % k).digest() for k in range(block // 32 + 1))
    return b"".join(blocks)[:block]


def pattern(total, block=MIB):
    """A deterministic, non-periodic byte stream of `total` bytes, in blocks."""
    base = _pattern_base(block)
    i = 0
    sent = 0
    while sent < total:
        r = (i * 4099) % block
        blk = base[r:] + base[:r]
        n = min(block, total - sent)
        yield blk[:n]
        sent += n
        i += 1


@functools.lru_cache(maxsize=None)
def pattern_sha(total):
    h = hashlib.sha256()
    for blk in pattern(total):
        h.update(blk)
    return h.hexdigest()


def behave(u, c, req):
    """The module upstream: what it does depends on the path (after an
    optional /prefix)."""
    path = req.path[len("/prefix"):] if req.path.startswith("/prefix") else req.path
    parts = path.strip("/").split("/")
    kind = parts[0]
    if kind == "status":
        code = int(parts[1])
        c.read_body(req)
        if code in (204, 304):
            c.respond(code, [("ETag", '"v1"')], length=False)
        else:
            c.respond(code, [("Content-Type", "text/plain"), ("Location", "/elsewhere")],
                      b"status %d" % code)
        return True
    if kind == "headers":
        c.send(b"HTTP/1.1 200 OK\r\n"
               b"Date: Mon, 01 Jan 2001 00:00:00 GMT\r\n"
               b"Server: upstream-server/1.0\r\n"
               b"X-Request-Id: upstream-made-id\r\n"
               b"Connection: X-Hop-Resp\r\n"
               b"X-Hop-Resp: secret\r\n"
               b"Keep-Alive: timeout=5, max=100\r\n"
               b"Proxy-Authenticate: Basic realm=\"x\"\r\n"
               b"Upgrade: h2c\r\n"
               b"Trailer: X-Checksum\r\n"
               b"Proxy-Connection: keep-alive\r\n"
               b"Via: 1.0 upstream-cache\r\n"
               b"Set-Cookie: a=1; Path=/\r\n"
               b"Set-Cookie: b=2; HttpOnly\r\n"
               b"Set-Cookie: c=3; Expires=Wed, 21 Oct 2015 07:28:00 GMT\r\n"
               b"X-Custom-Resp: yes\r\n"
               b"Cache-Control: max-age=60\r\n"
               b"Content-Type: application/json\r\n"
               b"Content-Length: 11\r\n"
               b"\r\n"
               b'{"ok":true}')
        return True
    if kind == "chunked":
        c.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;ext=1\r\nhello\r\n")
        time.sleep(0.05)  # two reads on the proxy's side
        c.send(b"6\r\n world\r\n" + b"%x\r\n" % 70000 + b"z" * 70000 + b"\r\n"
               b"0\r\nX-Trailer: t\r\n\r\n")
        return True
    if kind == "noclen":
        c.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
               b"Connection: close\r\n\r\n")
        for blk in pattern(300000, 65536):
            c.send(blk)
        return False  # the close ends the body
    if kind == "1xx":
        c.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        time.sleep(0.05)
        c.send(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        time.sleep(0.05)
        c.respond(200, [("Content-Type", "text/plain"), ("X-Final", "1")], b"final")
        return True
    if kind == "head":
        assert req.method == "HEAD"
        # declares a length, sends no body (as it must for HEAD)
        c.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1234\r\n\r\n")
        return True
    if kind == "garbage":
        c.send(b"XYZ\r\n\r\n")
        c.wait_eof(10)
        return False
    if kind == "hang":
        c.read_body(req)
        u.events["hang_closed"] = c.wait_eof(10)
        return False
    if kind == "truncate":
        c.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n" +
               b"t" * 1000)
        time.sleep(0.1)
        return False
    if kind == "big":
        total = int(parts[1])
        c.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
               b"Content-Length: %d\r\n\r\n" % total)
        u.events["big_sent"] = 0
        for blk in pattern(total):
            c.send(blk)
            u.events["big_sent"] += len(blk)
        return True
    if kind == "upload":
        cl = int(req.header("Content-Length"))
        time.sleep(float(parts[1]) if len(parts) > 1 else 0)  # let the client push meanwhile
        h = hashlib.sha256()
        c.stream_body(cl, h.update)
        body = json.dumps({"len": cl, "sha256": h.hexdigest()}).encode()
        c.respond(200, [("Content-Type", "application/json")], body)
        return True
    if kind == "trickle":
        # a long body, slowly: until the proxy closes the connection
        c.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
               b"Content-Length: %d\r\n\r\n" % (256 * MIB))
        sent = 0
        try:
            while sent < 256 * MIB:
                c.send(b"x" * 4096)
                sent += 4096
                time.sleep(0.01)
        except OSError:
            u.events["trickle_closed"] = time.time()
        return False
    return default_handler(u, c, req)


# --------------------------------------------------------------------------
# Definitions and nodes


def proxy_api(name, base_path, targets, extra=""):
    if isinstance(targets, str):
        targets = [(targets, 1)]
    t = "".join("    - url: %s\n      weight: %d\n" % (url, w) for url, w in targets)
    return ('name: %s\nbase_path: %s\nkind: proxy\ntitle: %s\nversion: "1"\n'
            'upstream:\n  targets:\n%s%s' % (name, base_path, name, t, extra))


SERVICE_V2 = """
name: legacy-v2
base_path: /legacy/v2
kind: service
title: Legacy v2
version: "2"
routes:
  - method: GET
    path: /items
    respond:
      body: {from: service}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Env:
    pass


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One node with several proxy APIs in front of one behaviour-by-path
    upstream (one process per module keeps the suite fast under ASan)."""
    e = Env()
    e.up = Upstream(behave)
    e.dead_port = free_port()
    apis = {
        "legacy.yaml": proxy_api("legacy", "/legacy", e.up.url("/prefix"),
                                 "  connect_timeout: 5s\n  read_timeout: 60s\n"
                                 "  keepalive: {max_idle: 32, idle_timeout: 60s,"
                                 " max_requests: 1000}\n"
                                 "  preserve_host: false\n"),
        "plain.yaml": proxy_api("plain", "/plain", e.up.url()),
        "slash.yaml": proxy_api("slash", "/slash/deep", e.up.url("/pre/")),
        "preserve.yaml": proxy_api("preserve", "/preserve", e.up.url(), "  preserve_host: true\n"),
        "slow.yaml": proxy_api("slow", "/slow", e.up.url(), "  read_timeout: 1s\n"),
        # passive health off: the tests of this module expect a 502 every time
        "dead.yaml": proxy_api("dead", "/dead", "http://127.0.0.1:%d" % e.dead_port,
                               "  health: {max_fails: 0}\n"),
        "v2.yaml": SERVICE_V2,
    }
    e.node = Portico(tmp_path_factory.mktemp("proxy"), node_config(), apis)
    e.node.start()
    e.port = e.node.port
    yield e
    rc = e.node.stop()
    e.up.stop()
    assert rc == 0, "portico exited with %s:\n%s" % (rc, e.node.stderr())
    e.node.check_clean()


@pytest.fixture
def upstreams():
    made = []

    def make(handler=None):
        u = Upstream(handler)
        made.append(u)
        return u

    yield make
    for u in made:
        u.stop()


_ids = [0]


def rid(tag="t"):
    _ids[0] += 1
    return "px-%s-%d-%d" % (tag, os.getpid(), _ids[0])


def req(method, path, rid_=None, host="client.example", extra=b"", body=None):
    h = b"%s %s HTTP/1.1\r\nHost: %s\r\n" % (method.encode(), path.encode(), host.encode())
    if rid_:
        h += b"X-Request-Id: " + rid_.encode() + b"\r\n"
    h += extra
    if body is not None:
        h += b"Content-Length: %d\r\n" % len(body)
    return h + b"\r\n" + (body or b"")


def check_problem(r, status, type_):
    assert r.status == status, r
    assert r.header("Content-Type") == "application/problem+json", r
    j = r.json()
    assert j["type"] == "urn:portico:problem:" + type_, j
    assert j["status"] == status, j
    assert j["request_id"] == r.header("X-Request-Id")
    return j


def log_entry(node, pred, timeout=10):
    """The one access log line that pred accepts (waits for the flush)."""
    def find():
        try:
            text = (node.dir / "access.log").read_text()
        except FileNotFoundError:
            return None
        found = [e for e in map(json.loads, filter(None, text.splitlines())) if pred(e)]
        assert len(found) <= 1, found
        return found[0] if found else None
    e = wait_until(find, timeout)
    assert e is not None, "no such access log line"
    return e


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def stable_fd_count(pid, quiet=0.3, timeout=5):
    """The fd count once it has not changed for `quiet` seconds (closes of
    connections that just ended are asynchronous)."""
    deadline = time.time() + timeout
    last, since = fd_count(pid), time.time()
    while time.time() < deadline:
        time.sleep(0.05)
        n = fd_count(pid)
        if n != last:
            last, since = n, time.time()
        elif time.time() - since >= quiet:
            break
    return last


class RssSampler:
    """Samples a process's VmRSS in the background; .peak in KiB."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = rss_kib(pid)
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop_ev.is_set():
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
            except (OSError, AssertionError):
                return
            time.sleep(0.01)

    def stop(self):
        self.stop_ev.set()
        self.t.join(2)
        self.peak = max(self.peak, rss_kib(self.pid))
        return self.peak


# --------------------------------------------------------------------------
# 1. Path mapping


def test_path_mapping_with_prefix_and_query(env):
    cases = [
        ("/legacy/a/b?x=1&y=2", "/prefix/a/b?x=1&y=2"),
        ("/legacy", "/prefix/"),
        ("/legacy/", "/prefix/"),
        ("/legacy?q=%20z", "/prefix/?q=%20z"),
        ("/legacy/a%2Fb/c%20d/", "/prefix/a%2Fb/c%20d/"),
        ("/plain/a/b", "/a/b"),
        ("/plain/a/b?x=1", "/a/b?x=1"),
        ("/plain", "/"),
        ("/preserve/x/y", "/x/y"),
        ("/slash/deep/a", "/pre/a"),  # the prefix's trailing '/' is dropped
        ("/slash/deep", "/pre/"),
    ]
    with RawClient(env.port) as c:
        for path, target in cases:
            i = rid("path")
            c.send(req("GET", path, i))
            r = c.read_response()
            assert r.status == 200 and r.body == b"ok", (path, r)
            got = env.up.find(i)
            assert got.target == target, (path, got)
            assert got.method == "GET" and got.version == "HTTP/1.1"


def test_base_path_matches_whole_segments(env):
    # /legacyx is not under /legacy: no API, and nothing forwarded
    n = len(env.up.requests)
    r = fetch(env.port, req("GET", "/legacyx/a"))
    check_problem(r, 404, "not-found")
    assert len(env.up.requests) == n


def test_methods_are_forwarded(env):
    with RawClient(env.port) as c:
        for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
            i = rid("m")
            body = b"m=" + m.encode() if m in ("POST", "PUT", "PATCH") else None
            c.send(req(m, "/legacy/res/1", i, body=body))
            r = c.read_response()
            assert r.status == 200 and r.body == b"ok", (m, r)
            got = env.up.find(i)
            assert got.method == m and got.target == "/prefix/res/1"
            assert got.body == (body or b"")


# --------------------------------------------------------------------------
# 2. Request headers


def test_request_headers_untrusted_client(env):
    i = rid("hdr")
    extra = (b"Connection: keep-alive, X-Hop\r\n"
             b"X-Hop: drop-me\r\n"
             b"Keep-Alive: timeout=5\r\n"
             b"TE: trailers\r\n"
             b"Trailer: X-T\r\n"
             b"Upgrade: websocket\r\n"
             b"Proxy-Authorization: Basic cHJveHk6c2VjcmV0\r\n"
             b"Proxy-Connection: keep-alive\r\n"
             b"Authorization: Bearer tok-123\r\n"
             b"X-Custom: v1\r\n"
             b"X-Custom: v2\r\n"
             b"Accept: application/json\r\n"
             b"Cookie: s=1\r\n"
             b"X-Forwarded-For: 1.2.3.4\r\n"
             b"X-Forwarded-Proto: https\r\n"
             b"X-Forwarded-Host: evil.example\r\n"
             b"X-Forwarded-Port: 9999\r\n"
             b"Forwarded: for=1.2.3.4;proto=https\r\n"
             b"Via: 1.0 corp-proxy\r\n")
    with RawClient(env.port) as c:
        c.send(req("GET", "/legacy/h", i, host="client.example:8080", extra=extra))
        r = c.read_response()
        assert r.status == 200 and r.header("X-Request-Id") == i
        got = env.up.find(i)
        names = {k.lower() for k, _ in got.headers}
        for hop in ("connection", "x-hop", "keep-alive", "te", "trailer", "upgrade",
                    "proxy-authorization", "proxy-connection", "transfer-encoding",
                    "content-length", "expect"):
            assert hop not in names, (hop, got)
        assert got.header("Host") == "127.0.0.1:%d" % env.up.port
        assert got.header("Authorization") == "Bearer tok-123"
        assert got.header_all("X-Custom") == ["v1", "v2"]
        assert got.header("Accept") == "application/json"
        assert got.header("Cookie") == "s=1"
        # the client is not a trusted proxy: its X-Forwarded-* are not believed
        assert got.header("X-Forwarded-For") == "127.0.0.1"
        assert got.header("X-Forwarded-Proto") == "http"
        assert got.header("X-Forwarded-Host") == "client.example:8080"
        assert got.header("X-Forwarded-Port") == str(env.port)
        assert got.header("Forwarded") == 'for=127.0.0.1;proto=http;host="client.example:8080"'
        assert got.header("Via") == "1.0 corp-proxy, 1.1 portico"
        assert got.header("X-Request-Id") == i
        # the same connection goes on
        c.send(req("GET", "/legacy/again"))
        r2 = c.read_response()
        assert r2.status == 200
        assert HEX32.match(r2.header("X-Request-Id"))
        got2 = env.up.find(r2.header("X-Request-Id"))  # the generated id goes upstream too
        assert got2.target == "/prefix/again"
        assert got2.header("Via") == "1.1 portico"
        assert got2.header("X-Forwarded-For") == "127.0.0.1"
        assert got2.header("Forwarded") == 'for=127.0.0.1;proto=http;host="client.example"'
        assert got2.header("X-Forwarded-Host") == "client.example"


def test_request_http10_client(env):
    i = rid("h10")
    r = fetch(env.port, b"GET /legacy/old HTTP/1.0\r\nHost: h10.example\r\nX-Request-Id: " +
              i.encode() + b"\r\n\r\n")
    assert r.status == 200 and r.body == b"ok"
    got = env.up.find(i)
    assert got.version == "HTTP/1.1"  # always HTTP/1.1 upstream
    assert got.header("Via") == "1.0 portico"  # the client's protocol version
    assert got.header("Host") == "127.0.0.1:%d" % env.up.port


def test_preserve_host(env):
    i = rid("ph")
    r = fetch(env.port, req("GET", "/preserve/p", i, host="public.example:8443"))
    assert r.status == 200
    got = env.up.find(i)
    assert got.header("Host") == "public.example:8443"
    assert got.header("X-Forwarded-Host") == "public.example:8443"


def test_request_headers_trusted_proxy(portico_factory, upstreams):
    u = upstreams()
    n = portico_factory(node_config(extra="trusted_proxies: [127.0.0.1]\n"),
                        {"legacy.yaml": proxy_api("legacy", "/legacy", u.url("/prefix"))})
    i = rid("tr")
    extra = (b"X-Forwarded-For: 1.2.3.4, 10.0.0.1\r\n"
             b"X-Forwarded-Proto: https\r\n"
             b"X-Forwarded-Host: public.example\r\n"
             b"X-Forwarded-Port: 443\r\n"
             b"Forwarded: for=1.2.3.4;proto=https\r\n"
             b"Via: 1.1 edge\r\n")
    r = fetch(n.port, req("GET", "/legacy/t", i, host="inner:1", extra=extra))
    assert r.status == 200
    got = u.find(i)
    assert got.header("X-Forwarded-For") == "1.2.3.4, 10.0.0.1, 127.0.0.1"
    assert got.header("X-Forwarded-Proto") == "https"
    assert got.header("X-Forwarded-Host") == "public.example"
    assert got.header("X-Forwarded-Port") == "443"
    assert got.header("Forwarded") == \
        'for=1.2.3.4;proto=https, for=127.0.0.1;proto=http;host="inner:1"'
    assert got.header("Via") == "1.1 edge, 1.1 portico"
    # without X-Forwarded-* from the trusted peer: its own address
    i = rid("tr")
    assert fetch(n.port, req("GET", "/legacy/t", i)).status == 200
    got = u.find(i)
    assert got.header("X-Forwarded-For") == "127.0.0.1"
    assert got.header("X-Forwarded-Proto") == "http"
    assert got.header("X-Forwarded-Port") == str(n.port)


# --------------------------------------------------------------------------
# 3. Responses


def test_status_codes_passed_through(env):
    with RawClient(env.port) as c:
        for code in (200, 201, 202, 301, 302, 400, 401, 403, 404, 409, 418, 500, 502, 503):
            c.send(req("GET", "/legacy/status/%d" % code))
            r = c.read_response()
            assert r.status == code, r
            assert r.body == b"status %d" % code
            assert r.header("Content-Length") == str(len(r.body))
            assert r.header("Location") == "/elsewhere"
            assert r.header("Content-Type") == "text/plain"
            assert r.header("Connection") is None  # still keep-alive


def test_204_and_304_have_no_body(env):
    with RawClient(env.port) as c:
        for code in (204, 304, 204):
            c.send(req("GET", "/legacy/status/%d" % code))
            r = c.read_response()
            assert r.status == code
            assert r.header("Content-Length") is None and r.header("Transfer-Encoding") is None, r
            assert r.header("ETag") == '"v1"'
        # no stray body bytes: the next response parses
        c.send(req("GET", "/legacy/status/200"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"status 200"


def test_response_headers(env):
    i = rid("resp")
    before = datetime.datetime.now(datetime.timezone.utc)
    with RawClient(env.port) as c:
        c.send(req("GET", "/legacy/headers", i))
        r = c.read_response()
        assert r.status == 200 and r.body == b'{"ok":true}'
        assert r.header_all("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly",
                                              "c=3; Expires=Wed, 21 Oct 2015 07:28:00 GMT"]
        assert r.header("X-Custom-Resp") == "yes"
        assert r.header("Cache-Control") == "max-age=60"
        assert r.header_all("Content-Type") == ["application/json"]
        assert r.header_all("Content-Length") == ["11"]
        names = {k.lower() for k, _ in r.headers}
        for hop in ("x-hop-resp", "keep-alive", "proxy-authenticate", "upgrade", "trailer",
                    "proxy-connection", "connection", "transfer-encoding"):
            assert hop not in names, (hop, r)
        vias = r.header_all("Via")
        assert "1.1 portico" in ", ".join(vias) and "1.0 upstream-cache" in ", ".join(vias), vias
        assert r.header_all("Server") == ["portico"]
        assert r.header_all("X-Request-Id") == [i]
        dates = r.header_all("Date")
        assert len(dates) == 1 and "2001" not in dates[0]
        d = email.utils.parsedate_to_datetime(dates[0])
        assert abs((d - before).total_seconds()) < 30
        c.send(req("GET", "/legacy/status/201"))
        assert c.read_response().status == 201


def test_head_response_has_length_and_no_body(env):
    with RawClient(env.port) as c:
        for _ in range(2):
            c.send(req("HEAD", "/legacy/head"))
            r = c.read_response(head=True)
            assert r.status == 200
            assert r.header("Content-Length") == "1234"
            assert r.header("Transfer-Encoding") is None
        # no body followed: the next response is parsed right after the head
        c.send(req("GET", "/legacy/status/200"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"status 200"
        data, closed = c.read_until_close(0.3)
        assert data == b"" and not closed


def test_chunked_upstream_response(env):
    with RawClient(env.port) as c:
        c.send(req("GET", "/legacy/chunked"))
        r = c.read_response()
        assert r.status == 200
        assert r.body == b"hello world" + b"z" * 70000
        assert r.header("Content-Length") is None
        assert r.header("Transfer-Encoding") == "chunked"
        assert r.header("X-Trailer") is None
        c.send(req("GET", "/legacy/status/200"))
        assert c.read_response().body == b"status 200"


def test_response_delimited_by_close(env):
    expected = b"".join(pattern(300000, 65536))
    with RawClient(env.port) as c:
        c.send(req("GET", "/legacy/noclen"))
        r = c.read_response()
        assert r.status == 200
        assert len(r.body) == len(expected) and r.body == expected
        assert r.header("Content-Type") == "application/octet-stream"
        # the client response was delimited (chunked): the connection goes on
        c.send(req("GET", "/legacy/status/202"))
        assert c.read_response().status == 202


def test_informational_responses_not_relayed(env):
    with RawClient(env.port) as c:
        c.send(req("GET", "/legacy/1xx"))
        r = c.read_response()
        assert r.status == 200, r
        assert r.body == b"final" and r.header("X-Final") == "1"
        assert r.header("Link") is None
        c.send(req("GET", "/legacy/status/200"))
        assert c.read_response().status == 200


def test_pipelined_requests_answered_in_order(env):
    ids = [rid("pipe") for _ in range(4)]
    with RawClient(env.port) as c:
        c.send(req("GET", "/legacy/status/201", ids[0]) + req("GET", "/legacy/chunked", ids[1]) +
               req("POST", "/legacy/status/404", ids[2], body=b"xyz") +
               req("GET", "/legacy/big/100000", ids[3]))
        rs = [c.read_response() for _ in range(4)]
        assert [r.status for r in rs] == [201, 200, 404, 200]
        assert [r.header("X-Request-Id") for r in rs] == ids
        assert rs[1].body == b"hello world" + b"z" * 70000
        assert rs[3].body == b"".join(pattern(100000))
        assert env.up.find(ids[2]).body == b"xyz"


def test_concurrent_clients(env):
    sizes = [1000 + 37777 * k for k in range(8)]
    errors = []

    def client(k):
        try:
            with RawClient(env.port, timeout=20) as c:
                for j in range(6):
                    n = sizes[(k + j) % len(sizes)]
                    c.send(req("GET", "/legacy/big/%d" % n))
                    r = c.read_response()
                    assert r.status == 200 and len(r.body) == n
                    assert hashlib.sha256(r.body).hexdigest() == pattern_sha(n)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((k, repr(e)))
    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


# --------------------------------------------------------------------------
# 4. Request bodies


def test_content_length_body_forwarded_exactly(env):
    body = bytes(range(256)) * 300 + b"\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n"
    i = rid("cl")
    with RawClient(env.port) as c:
        c.send(req("POST", "/legacy/post", i, extra=b"Content-Type: application/octet-stream\r\n",
                   body=body))
        r = c.read_response()
        assert r.status == 200 and r.body == b"ok"
        got = env.up.find(i)
        assert got.header("Content-Length") == str(len(body))
        assert got.header("Transfer-Encoding") is None
        assert got.header("Content-Type") == "application/octet-stream"
        assert got.body == body
        # Expect: 100-continue is answered by the node, not forwarded
        i = rid("cl")
        c.send(req("PUT", "/legacy/put", i, extra=b"Expect: 100-continue\r\nContent-Length: 5\r\n"))
        r = c.read_response()
        assert r.status == 100
        c.send(b"hello")
        r = c.read_response()
        assert r.status == 200
        got = env.up.find(i)
        assert got.header("Expect") is None and got.body == b"hello"


def test_chunked_body_forwarded(env):
    i = rid("ch")
    body = b"".join(pattern(200000, 65536))
    with RawClient(env.port) as c:
        c.send(b"POST /legacy/chunked-in HTTP/1.1\r\nHost: a\r\nX-Request-Id: " + i.encode() +
               b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        pos = 0
        for size in (1, 10, 4096, 100000, 95893):
            c.send(b"%x;name=val\r\n" % size + body[pos:pos + size] + b"\r\n")
            pos += size
            time.sleep(0.01)
        assert pos == len(body)
        c.send(b"0\r\nX-Trailer: 1\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"ok"
        got = env.up.find(i)
        assert got.header("Transfer-Encoding") == "chunked"
        assert got.header("Content-Length") is None
        assert got.body == body
        # empty chunked body
        i = rid("ch")
        c.send(b"POST /legacy/chunked-in HTTP/1.1\r\nHost: a\r\nX-Request-Id: " + i.encode() +
               b"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        assert c.read_response().status == 200
        got = env.up.find(i)
        assert got.header("Transfer-Encoding") == "chunked" and got.body == b""


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A one-worker node for the 64 MiB transfers. ASan's quarantine keeps
    freed memory resident, which would hide what the proxy itself holds: it
    is kept small here."""
    e = Env()
    e.up = Upstream(behave)
    asan = os.environ.get("ASAN_OPTIONS", "")
    e.node = Portico(tmp_path_factory.mktemp("big"),
                     node_config(workers=1, limits="  max_body_size: 256MiB\n"),
                     {"legacy.yaml": proxy_api("legacy", "/legacy", e.up.url("/prefix"))},
                     env={"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=4"})
    e.node.start()
    e.port = e.node.port
    e.pid = e.node.proc.pid
    # warm up (pools, buffers) before any baseline is taken
    for _ in range(3):
        assert fetch(e.port, req("GET", "/legacy/big/%d" % (2 * MIB))).status == 200
    yield e
    rc = e.node.stop()
    e.up.stop()
    assert rc == 0, "portico exited with %s:\n%s" % (rc, e.node.stderr())
    e.node.check_clean()


def test_large_download_streams(big):
    total = 64 * MIB
    base = rss_kib(big.pid)
    sampler = RssSampler(big.pid)
    h = hashlib.sha256()
    with RawClient(big.port, timeout=30) as c:
        c.send(req("GET", "/legacy/big/%d" % total))
        while b"\r\n\r\n" not in c.buf:
            c._fill()
        head, rest = c.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"\r\nContent-Length: %d\r\n" % total in head + b"\r\n"
        c.buf = b""
        got = len(rest)
        h.update(rest)
        # a slow client: the proxy must stop reading the upstream, not buffer
        time.sleep(1.5)
        mid = rss_kib(big.pid)
        # ... and so the upstream, too, was held back (socket buffers aside)
        held = big.up.events["big_sent"]
        assert held < 48 * MIB, "the upstream could send %d MiB to a client reading nothing" % (
            held // MIB)
        while got < total:
            b = c.sock.recv(1 << 20)
            assert b, "closed after %d bytes" % got
            h.update(b)
            got += len(b)
        assert got == total
        peak = sampler.stop()
        assert h.hexdigest() == pattern_sha(total)
        # keep-alive goes on after 64 MiB
        c.send(req("GET", "/legacy/status/200"))
        assert c.read_response().status == 200
    growth = (peak - base) / 1024
    assert growth < 48, "RSS grew by %.1f MiB during a 64 MiB download (mid %.1f)" % (
        growth, (mid - base) / 1024)


def test_large_upload_streams(big):
    total = 64 * MIB
    base = rss_kib(big.pid)
    sampler = RssSampler(big.pid)
    err = []
    sent = [0]
    with RawClient(big.port, timeout=30) as c:
        def send():
            try:
                c.send(b"POST /legacy/upload/1.5 HTTP/1.1\r\nHost: a\r\n"
                       b"Content-Type: application/octet-stream\r\n"
                       b"Content-Length: %d\r\n\r\n" % total)
                for blk in pattern(total):
                    c.send(blk)
                    sent[0] += len(blk)
            except OSError as e:
                err.append(e)
        t = threading.Thread(target=send, daemon=True)
        t.start()
        time.sleep(1.2)  # the upstream reads nothing for 1.5 s
        held = sent[0]
        assert held < 48 * MIB, "the client could send %d MiB to an upstream reading nothing" % (
            held // MIB)
        r = c.read_response()
        t.join(30)
        peak = sampler.stop()
        assert not err, err
        assert r.status == 200, r
        assert r.json() == {"len": total, "sha256": pattern_sha(total)}
        c.send(req("GET", "/legacy/status/200"))
        assert c.read_response().status == 200
    growth = (peak - base) / 1024
    assert growth < 48, "RSS grew by %.1f MiB during a 64 MiB upload" % growth


# --------------------------------------------------------------------------
# 5. Upstream errors


def test_nothing_listening_is_502_and_connection_goes_on(env):
    with RawClient(env.port) as c:
        for _ in range(2):
            i = rid("dead")
            c.send(req("GET", "/dead/x", i))
            r = c.read_response()
            j = check_problem(r, 502, "bad-gateway")
            assert j["instance"] == "/dead/x" and j["request_id"] == i
        c.send(req("GET", "/legacy/status/200"))
        assert c.read_response().status == 200
    e = log_entry(env.node, lambda e: e["request_id"] == i)
    assert e["status"] == 502 and e.get("api") == "dead", e


def test_502_with_request_body_keeps_connection(env):
    body = b"b" * 300000
    with RawClient(env.port) as c:
        c.send(req("POST", "/dead/upload", body=body))
        check_problem(c.read_response(), 502, "bad-gateway")
        c.send(b"POST /dead/upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
               b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
        check_problem(c.read_response(), 502, "bad-gateway")
        i = rid("after502")
        c.send(req("POST", "/legacy/after", i, body=b"fine"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"ok"
        assert env.up.find(i).body == b"fine"


def test_read_timeout_is_504(env):
    env.up.events.pop("hang_closed", None)
    with RawClient(env.port) as c:
        t0 = time.time()
        c.send(req("GET", "/slow/hang"))
        r = c.read_response()
        took = time.time() - t0
        check_problem(r, 504, "upstream-timeout")
        assert 0.9 <= took < 3, took
        # the upstream connection was given up
        assert wait_until(lambda: "hang_closed" in env.up.events, 5), "upstream not closed"
        assert env.up.events["hang_closed"] is True
        # the client connection is still usable
        c.send(req("GET", "/slow/fine"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"ok"


def test_read_timeout_also_for_post(env):
    with RawClient(env.port) as c:
        t0 = time.time()
        c.send(req("POST", "/slow/hang", body=b"payload"))
        r = c.read_response()
        check_problem(r, 504, "upstream-timeout")
        assert 0.9 <= time.time() - t0 < 3
        c.send(req("GET", "/slow/fine"))
        assert c.read_response().status == 200


def test_garbage_from_upstream_is_502(env):
    with RawClient(env.port) as c:
        c.send(req("GET", "/legacy/garbage"))
        check_problem(c.read_response(), 502, "bad-gateway")
        c.send(req("GET", "/legacy/status/200"))
        assert c.read_response().status == 200


def test_upstream_closes_mid_body(env):
    with RawClient(env.port) as c:
        c.send(req("GET", "/legacy/truncate"))
        r = c.read_response(head=True)
        assert r.status == 200 and r.header("Content-Length") == "100000"
        data, closed = c.read_until_close(5)
        assert closed, "the client connection was left open"
        assert len(data) == 1000 and data == b"t" * 1000
    # the node goes on
    r = fetch(env.port, req("GET", "/legacy/status/200"))
    assert r.status == 200 and r.body == b"status 200"
    assert fetch(env.port, get_request("/_portico/health")).status == 200


def test_upstream_closes_before_responding(upstreams, portico_factory):
    def close_now(u, c, req):
        return False  # read the head, close without a byte
    u = upstreams(close_now)
    n = portico_factory(apis={"x.yaml": proxy_api("x", "/x", u.url())})
    with RawClient(n.port) as c:
        c.send(req("GET", "/x/a"))
        check_problem(c.read_response(), 502, "bad-gateway")
        c.send(req("GET", "/x/b"))
        check_problem(c.read_response(), 502, "bad-gateway")


# --------------------------------------------------------------------------
# 6. Pooling


def pool_node(portico_factory, u, keepalive=""):
    extra = "  keepalive: {%s}\n" % keepalive if keepalive else ""
    return portico_factory(node_config(workers=1),
                           {"p.yaml": proxy_api("p", "/p", u.url(), extra)})


def test_pool_reuses_one_upstream_connection(portico_factory, upstreams):
    u = upstreams()
    n = pool_node(portico_factory, u)
    with RawClient(n.port) as c:
        for k in range(20):
            c.send(req("GET", "/p/%d" % k))
            r = c.read_response()
            assert r.status == 200 and r.body == b"ok"
    # several client connections, one after the other: the same pool
    for k in range(5):
        assert fetch(n.port, req("GET", "/p/again")).status == 200
    assert len(u.requests) == 25
    assert u.accepted == 1, "%d upstream connections for 25 sequential requests" % u.accepted


def test_pool_max_idle_zero_means_one_connection_per_request(portico_factory, upstreams):
    u = upstreams()
    n = pool_node(portico_factory, u, "max_idle: 0")
    with RawClient(n.port) as c:
        for k in range(20):
            c.send(req("GET", "/p/%d" % k))
            assert c.read_response().status == 200
    assert u.accepted == 20
    assert wait_until(lambda: len(u.closed) == 20, 5), u.closed


def test_pool_max_requests(portico_factory, upstreams):
    u = upstreams()
    n = pool_node(portico_factory, u, "max_idle: 32, idle_timeout: 60s, max_requests: 5")
    with RawClient(n.port) as c:
        for k in range(20):
            c.send(req("GET", "/p/%d" % k))
            assert c.read_response().status == 200
    assert u.accepted == 4, u.accepted
    per_conn = {}
    for r in u.requests:
        per_conn[r.cid] = per_conn.get(r.cid, 0) + 1
    assert sorted(per_conn.values()) == [5, 5, 5, 5]


def test_pool_idle_connection_closed_by_upstream(portico_factory, upstreams):
    # the upstream closes each connection after its response (keep-alive
    # on its side not honoured): the next request must not fail
    def one_shot(u, c, req):
        c.respond(200, [("Content-Type", "text/plain")], b"once")
        return False
    u = upstreams(one_shot)
    n = pool_node(portico_factory, u)
    with RawClient(n.port) as c:
        for k in range(5):
            c.send(req("GET", "/p/%d" % k))
            r = c.read_response()
            assert r.status == 200 and r.body == b"once"
            time.sleep(0.1)  # the close is seen while the connection is idle
        assert u.accepted == 5
        # back to back: the close may be seen only once the next request was
        # written on it (nothing consumed: retried on a new connection)
        for k in range(30):
            c.send(req("GET", "/p/b%d" % k))
            r = c.read_response()
            assert r.status == 200 and r.body == b"once", (k, r)


# --------------------------------------------------------------------------
# 7. Weighted round-robin


def test_weighted_round_robin(portico_factory, upstreams):
    a, b = upstreams(), upstreams()
    n = portico_factory(node_config(workers=1),
                        {"w.yaml": proxy_api("w", "/w", [(a.url("/a"), 3), (b.url("/b"), 1)])})
    seq = []
    with RawClient(n.port) as c:
        for k in range(40):
            i = rid("w")
            c.send(req("GET", "/w/x", i))
            assert c.read_response().status == 200
            seq.append("a" if any(r.header_all("X-Request-Id") == [i] for r in a.requests) else "b")
    assert len(a.requests) == 30 and len(b.requests) == 10, (len(a.requests), len(b.requests))
    assert all(r.target == "/a/x" for r in a.requests)
    assert all(r.target == "/b/x" for r in b.requests)
    # spread, not in bursts: every 4 consecutive requests are 3 + 1
    for k in range(0, 40, 4):
        assert seq[k:k + 4].count("b") == 1, seq


# --------------------------------------------------------------------------
# 8. Client disconnect mid-stream


def test_client_disconnect_mid_download(portico_factory, upstreams):
    u = upstreams(behave)
    n = portico_factory(node_config(workers=1),
                        {"d.yaml": proxy_api("d", "/d", u.url(), "  keepalive: {max_idle: 0}\n")})
    pid = n.proc.pid
    assert fetch(n.port, req("GET", "/d/warm")).status == 200
    assert wait_until(lambda: len(u.closed) == 1, 5)
    base = stable_fd_count(pid)
    c = RawClient(n.port)
    c.send(req("GET", "/d/trickle"))
    r = c.read_response(head=True)
    assert r.status == 200 and r.header("Content-Length") == str(256 * MIB)
    got = len(c.buf)
    while got < 8192:
        got += len(c.sock.recv(4096))
    assert fd_count(pid) == base + 2  # the client and the upstream connection
    c.close()
    t0 = time.time()
    assert wait_until(lambda: "trickle_closed" in u.events, 5), \
        "the upstream connection stayed open"
    assert wait_until(lambda: fd_count(pid) == base, 5), (fd_count(pid), base)
    assert time.time() - t0 < 5
    assert wait_until(lambda: len(u.closed) == 2, 5)
    r = fetch(n.port, req("GET", "/d/after"))
    assert r.status == 200 and r.body == b"ok"


def test_client_disconnect_while_waiting_for_head(portico_factory, upstreams):
    # the client leaves before the upstream answered at all
    u = upstreams(behave)
    n = portico_factory(node_config(workers=1),
                        {"d.yaml": proxy_api("d", "/d", u.url(), "  keepalive: {max_idle: 0}\n")})
    pid = n.proc.pid
    assert fetch(n.port, req("GET", "/d/warm")).status == 200
    assert wait_until(lambda: len(u.closed) == 1, 5)
    base = stable_fd_count(pid)
    c = RawClient(n.port)
    c.send(req("GET", "/d/hang"))
    assert wait_until(lambda: u.accepted == 2, 5)
    c.close()
    assert wait_until(lambda: u.events.get("hang_closed") is not None, 3), \
        "the upstream connection stayed open after the client left"
    assert wait_until(lambda: fd_count(pid) == base, 5), (fd_count(pid), base)
    assert fetch(n.port, req("GET", "/d/after")).status == 200


# --------------------------------------------------------------------------
# 9. Access log


def test_access_log_of_proxied_request(env):
    i = rid("log")
    r = fetch(env.port, req("POST", "/legacy/status/201?secret=1", i, body=b"abc"))
    assert r.status == 201
    i2 = rid("log")
    assert fetch(env.port, req("GET", "/legacy/status/404", i2)).status == 404
    e = log_entry(env.node, lambda e: e["request_id"] == i)
    assert e["api"] == "legacy" and e["status"] == 201 and e["method"] == "POST", e
    assert e["path"] == "/legacy/status/201"
    assert e["bytes_in"] >= 3 and e["bytes_out"] == len(r.raw)
    e = log_entry(env.node, lambda e: e["request_id"] == i2)
    assert e["api"] == "legacy" and e["status"] == 404, e
    # upstream fields: target, its status, connect time (0 on a reused
    # connection), time to first byte, retries
    assert e["upstream"] == "127.0.0.1:%d" % env.up.port, e
    assert e["upstream_status"] == 404
    assert e["upstream_connect_us"] >= 0 and e["upstream_ttfb_us"] > 0
    assert e["upstream_retries"] == 0


def test_access_log_of_unreachable_upstream(env):
    i = rid("log")
    assert fetch(env.port, req("GET", "/dead/x", i)).status == 502
    e = log_entry(env.node, lambda e: e["request_id"] == i)
    assert e["api"] == "dead" and e["status"] == 502, e
    assert e["upstream"].startswith("127.0.0.1:") and e["upstream_status"] == 0, e


# --------------------------------------------------------------------------
# 10. Next to a service API


def test_longest_base_path_wins_over_proxy(env):
    n = len(env.up.requests)
    r = fetch(env.port, req("GET", "/legacy/v2/items"))
    assert r.status == 200 and r.json() == {"from": "service"}
    r = fetch(env.port, req("GET", "/legacy/v2/nope"))
    check_problem(r, 404, "not-found")
    assert len(env.up.requests) == n, "a request of the service API was forwarded"
    # outside the service's base path: the proxy
    for path, target in (("/legacy/v2x/items", "/prefix/v2x/items"),
                         ("/legacy/v1/items", "/prefix/v1/items"),
                         ("/legacy/items", "/prefix/items")):
        i = rid("lp")
        r = fetch(env.port, req("GET", path, i))
        assert r.status == 200 and r.body == b"ok", path
        assert env.up.find(i).target == target


# --------------------------------------------------------------------------
# A real nginx upstream


@pytest.fixture
def nginx(tmp_path):
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        pytest.skip("nginx not installed")
    d = tmp_path / "nginx"
    (d / "www" / "static").mkdir(parents=True)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (d / "tmp" / sub).mkdir(parents=True)
    blob = b"".join(pattern(3 * MIB + 17, 65536))
    (d / "www" / "static" / "blob.bin").write_bytes(blob)
    (d / "www" / "static" / "hello.txt").write_bytes(b"hello from nginx\n")
    port = free_port()
    conf = d / "nginx.conf"
    conf.write_text("""
daemon off;
master_process off;
worker_processes 1;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    types {{ text/plain txt; application/octet-stream bin; }}
    default_type application/octet-stream;
    keepalive_requests 1000;
    server {{
        listen 127.0.0.1:{port};
        root {d}/www;
        location /static/ {{ }}
        location = /echo {{
            default_type text/plain;
            return 200 "uri=$request_uri|host=$http_host|xff=$http_x_forwarded_for|via=$http_via|rid=$http_x_request_id|conn=$connection\\n";
        }}
    }}
}}
""".format(d=d, port=port))
    proc = subprocess.Popen([binary, "-p", str(d), "-c", str(conf), "-e", str(d / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)

    def up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return proc.poll() is not None and "exited"
    ok = wait_until(up, 10)
    if ok != True or proc.poll() is not None:  # noqa: E712
        proc.kill()
        raise RuntimeError("nginx did not start: %s %s" % (
            proc.stderr.read().decode(errors="replace"),
            (d / "error.log").read_text(errors="replace") if (d / "error.log").exists() else ""))
    e = Env()
    e.port, e.blob, e.dir = port, blob, d
    yield e
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stderr.close()


def test_nginx_upstream(portico_factory, nginx):
    n = portico_factory(node_config(workers=1),
                        {"web.yaml": proxy_api("web", "/web", "http://127.0.0.1:%d" % nginx.port)})
    with requests.Session() as s:
        r = s.get(n.url("/web/static/hello.txt"), timeout=10)
        assert r.status_code == 200 and r.content == b"hello from nginx\n"
        assert r.headers["Content-Type"] == "text/plain"
        assert r.headers["Server"] == "portico" and "1.1 portico" in r.headers["Via"]
        assert "ETag" in r.headers and "Last-Modified" in r.headers
        r = s.get(n.url("/web/static/blob.bin"), timeout=10)
        assert r.status_code == 200 and r.content == nginx.blob
        assert r.headers["Content-Length"] == str(len(nginx.blob))
        # conditional request: nginx's 304 is relayed without a body
        etag = r.headers["ETag"]
        r = s.get(n.url("/web/static/blob.bin"), headers={"If-None-Match": etag}, timeout=10)
        assert r.status_code == 304 and r.content == b""
        r = s.head(n.url("/web/static/blob.bin"), timeout=10)
        assert r.status_code == 200 and r.content == b""
        assert r.headers["Content-Length"] == str(len(nginx.blob))
        r = s.get(n.url("/web/static/missing.txt"), timeout=10)
        assert r.status_code == 404 and b"nginx" in r.content
        r = s.get(n.url("/web/static/blob.bin"), headers={"Range": "bytes=10-19"}, timeout=10)
        assert r.status_code == 206 and r.content == nginx.blob[10:20]
        assert r.headers["Content-Range"] == "bytes 10-19/%d" % len(nginx.blob)
        r = s.get(n.url("/web/echo?a=1"), headers={"X-Request-Id": "ngx-1"}, timeout=10)
        assert r.status_code == 200
        fields = dict(kv.split("=", 1) for kv in r.text.strip().split("|"))
        assert fields["uri"] == "/echo?a=1"
        assert fields["host"] == "127.0.0.1:%d" % nginx.port
        assert fields["xff"] == "127.0.0.1"
        assert fields["via"] == "1.1 portico"
        assert fields["rid"] == "ngx-1"
        r2 = s.get(n.url("/web/echo"), timeout=10)
        fields2 = dict(kv.split("=", 1) for kv in r2.text.strip().split("|"))
        # nginx's connection serial number: the pooled connection was reused
        assert fields2["conn"] == fields["conn"], (fields, fields2)
    log = (nginx.dir / "access.log").read_text()
    assert log.count("GET /echo") == 2


# --------------------------------------------------------------------------
# 11. Retries and passive health


def test_retry_moves_to_the_healthy_target(portico_factory, upstreams):
    """A target that refuses connections: requests are retried on the other
    target (nothing was sent), and after max_fails it is ejected, so later
    requests go straight to the healthy one."""
    live = upstreams(behave)
    dead = free_port()
    n = portico_factory(node_config(workers=1), {"r.yaml": proxy_api(
        "r", "/r", [("http://127.0.0.1:%d" % dead, 1), (live.url(), 1)],
        "  retries: 1\n  health: {max_fails: 2, fail_timeout: 30s}\n")})
    ids = []
    with RawClient(n.port) as c:
        for k in range(12):
            i = rid("retry")
            ids.append(i)
            c.send(req("GET", "/r/status/200", i))
            assert c.read_response().status == 200
    assert len(live.requests) == 12
    entries = [log_entry(n, lambda e, i=i: e["request_id"] == i) for i in ids]
    retried = [e for e in entries if e["upstream_retries"] == 1]
    # two failures eject the dead target: at most two requests needed a retry,
    # and the last ones were not even tried on it
    assert 1 <= len(retried) <= 2, entries
    assert all(e["upstream"] == "127.0.0.1:%d" % live.port for e in entries)
    assert all(e["upstream_retries"] == 0 for e in entries[-6:])
    assert "ejected" in n.stderr()


def test_no_retry_after_sending_a_non_idempotent_request(portico_factory, upstreams):
    """The first target accepts and hangs up without answering: a POST was
    sent, so it is not retried (502); a GET is retried on the other target."""
    hangup = upstreams(lambda u, c, r: False)  # closes at once, no answer
    live = upstreams(behave)
    n = portico_factory(node_config(workers=1), {"n.yaml": proxy_api(
        "n", "/n", [(hangup.url(), 1), (live.url(), 1)],
        "  retries: 1\n  health: {max_fails: 0}\n")})
    posts = [fetch(n.port, req("POST", "/n/status/201")).status for _ in range(4)]
    # the schedule alternates: half the POSTs met the hang-up target
    assert sorted(posts) == [201, 201, 502, 502], posts
    gets = [fetch(n.port, req("GET", "/n/status/200")).status for _ in range(4)]
    assert gets == [200] * 4, gets


def test_every_target_ejected_gives_503_with_retry_after(portico_factory):
    dead = free_port()
    n = portico_factory(node_config(workers=1), {"e.yaml": proxy_api(
        "e", "/e", "http://127.0.0.1:%d" % dead,
        "  retries: 0\n  health: {max_fails: 1, fail_timeout: 30s}\n")})
    r = fetch(n.port, req("GET", "/e/x"))
    check_problem(r, 502, "bad-gateway")
    r = fetch(n.port, req("GET", "/e/x"))
    check_problem(r, 503, "no-healthy-upstream")
    assert 1 <= int(r.header("Retry-After")) <= 30


# --------------------------------------------------------------------------
# 12. Header edits, upstream authentication, send and total timeouts


def test_request_and_response_header_edits_with_env_secret(portico_factory, upstreams):
    u = upstreams(behave)
    secret = "s3cret-%d" % os.getpid()
    n = portico_factory(node_config(workers=1), {"h.yaml": proxy_api("h", "/h", u.url(), (
        "  request_headers:\n"
        "    set:\n"
        "      X-Api-Version: \"2\"\n"
        "      X-Upstream-Key: \"key=${env:PT_TEST_UPSTREAM_KEY}; $$literal\"\n"
        "    remove: [X-Debug, Cookie]\n"
        "  response_headers:\n"
        "    set: {X-Served-By: portico}\n"
        "    remove: [Location]\n"))}, env={"PT_TEST_UPSTREAM_KEY": secret})
    i = rid("edit")
    r = fetch(n.port, req("GET", "/h/status/200", i,
                          extra=b"X-Api-Version: 1\r\nX-Debug: yes\r\nCookie: a=b\r\nX-Keep: k\r\n"))
    assert r.status == 200
    got = u.requests[-1]
    assert got.header_all("X-Api-Version") == ["2"]
    assert got.header("X-Upstream-Key") == "key=%s; $literal" % secret
    assert got.header_all("X-Debug") == [] and got.header_all("Cookie") == []
    assert got.header("X-Keep") == "k"
    assert r.header("X-Served-By") == "portico"
    assert r.header("Location") is None  # the upstream sent one; removed
    e = log_entry(n, lambda e: e["request_id"] == i)
    assert secret not in json.dumps(e) and secret not in n.stderr()


def test_missing_env_variable_is_a_load_error_naming_it(portico_factory):
    n = portico_factory(node_config(workers=1), {"h.yaml": proxy_api(
        "h", "/h", "http://127.0.0.1:9",
        "  request_headers:\n    set: {X-Key: \"${env:PT_TEST_NOT_SET_ANYWHERE}\"}\n")},
        start=False)
    assert n.start(expect_fail=True) != 0
    assert "PT_TEST_NOT_SET_ANYWHERE" in n.stderr()


@pytest.mark.parametrize("mode", ["basic", "none", "passthrough"])
def test_upstream_auth_modes(portico_factory, upstreams, mode):
    u = upstreams(behave)
    extra = "  auth:\n    mode: %s\n" % mode
    if mode == "basic":
        extra += ("    username: erp\n    password: \"${env:PT_TEST_PW}\"\n"
                  "    forward_original: true\n")
    n = portico_factory(node_config(workers=1),
                        {"a.yaml": proxy_api("a", "/a", u.url(), extra)},
                        env={"PT_TEST_PW": "pa:ss"})
    r = fetch(n.port, req("GET", "/a/status/200", extra=b"Authorization: Bearer client-token\r\n"))
    assert r.status == 200
    got = u.requests[-1]
    if mode == "basic":
        assert got.header("Authorization") == "Basic " + base64.b64encode(b"erp:pa:ss").decode()
        assert got.header("X-Forwarded-Authorization") == "Bearer client-token"
    elif mode == "none":
        assert got.header_all("Authorization") == []
        assert got.header_all("X-Forwarded-Authorization") == []
    else:
        assert got.header("Authorization") == "Bearer client-token"
    assert "pa:ss" not in n.stderr()


def test_total_timeout_bounds_a_streaming_response(portico_factory, upstreams):
    """A response still trickling when total_timeout passes: the response
    began, so the client connection is closed (and the upstream's too)."""
    u = upstreams(behave)
    n = portico_factory(node_config(workers=1), {"t.yaml": proxy_api(
        "t", "/t", u.url(), "  total_timeout: 1s\n")})
    start = time.time()
    with RawClient(n.port) as c:
        c.send(req("GET", "/t/trickle"))
        data, closed = c.read_until_close(timeout=10)
    assert closed and data.startswith(b"HTTP/1.1 200 "), data[:200]
    assert 0.8 <= time.time() - start < 5
    assert wait_until(lambda: "trickle_closed" in u.events, 5)


def test_total_timeout_before_the_response_is_504(portico_factory, upstreams):
    u = upstreams(behave)
    n = portico_factory(node_config(workers=1), {"t.yaml": proxy_api(
        "t", "/t", u.url(), "  total_timeout: 1s\n  read_timeout: 30s\n  retries: 0\n")})
    start = time.time()
    r = fetch(n.port, req("GET", "/t/hang"), timeout=10)
    check_problem(r, 504, "upstream-timeout")
    assert time.time() - start < 5


def test_catch_all_proxy_at_root_base_path(portico_factory, upstreams):
    """base_path "/" takes every path no other API claims; built-ins and
    longer base paths keep theirs."""
    u = upstreams(behave)
    svc = ('name: svc\nbase_path: /svc\nkind: service\ntitle: S\nversion: "1"\n'
           'routes:\n  - method: GET\n    path: /x\n    respond: {body: {from: service}}\n')
    n = portico_factory(node_config(workers=1), {"root.yaml": proxy_api("root", "/", u.url("/prefix")),
                                                  "svc.yaml": svc})
    assert fetch(n.port, req("GET", "/status/201?q=1")).status == 201
    assert u.requests[-1].target == "/prefix/status/201?q=1"
    assert fetch(n.port, req("GET", "/")).status in (200, 404)
    assert u.requests[-1].target == "/prefix/"
    before = len(u.requests)
    r = fetch(n.port, req("GET", "/svc/x"))
    assert r.status == 200 and r.json() == {"from": "service"}
    assert fetch(n.port, req("GET", "/_portico/health")).status == 200
    assert len(u.requests) == before
    assert fetch(n.port, req("GET", "/svcx/status/200")).status == 200
    assert u.requests[-1].target == "/prefix/svcx/status/200"
