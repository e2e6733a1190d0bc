"""Proxy APIs, continued: upstream TLS (against a real nginx with test
certificates made by the openssl CLI), active health checks, periodic DNS
re-resolution of target names, and gateway errors answered as SOAP faults
(1.1 and 1.2) or RFC 7807 XML to the clients that expect them.

"localhost" is expected to resolve to 127.0.0.1 first (nginx and the test
upstreams listen there only). The test of re-resolution gives its node a
private /etc/hosts in a mount namespace of its own (skipped where unshare -m
is not allowed)."""
import hashlib
import http.server
import io
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

import pytest
import requests

import conftest
from conftest import Portico, RawClient, fetch, node_config, wait_until
from test_proxy import (MIB, Env, Upstream, behave, check_problem, free_port, pattern,
                        pattern_sha, proxy_api, req, stable_fd_count, upstreams)  # noqa: F401
from test_tls import Certs, make_ca, make_leaf

LEAF_SERVER = ("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
               "extendedKeyUsage=serverAuth\nsubjectAltName=%s\n")
LEAF_CLIENT = ("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
               "extendedKeyUsage=clientAuth\n")
BIG = 64 * MIB

# --------------------------------------------------------------------------
# Certificates and a TLS nginx, one of each per module


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """ca signs the server certificates: server (localhost, 127.0.0.1) and
    other (other.example); client_ca signs the client certificate; wrong_ca
    signs nothing that is used."""
    d = tmp_path_factory.mktemp("upki")
    make_ca(d, "ca", "Portico Upstream Test CA")
    make_ca(d, "client_ca", "Portico Upstream Client CA")
    make_ca(d, "wrong_ca", "Unrelated CA")
    make_leaf(d, "server", "localhost", "ca", LEAF_SERVER % "DNS:localhost,IP:127.0.0.1")
    make_leaf(d, "other", "other.example", "ca", LEAF_SERVER % "DNS:other.example")
    make_leaf(d, "client", "portico-client", "client_ca", LEAF_CLIENT)
    return Certs(d)


ECHO = ('return 200 "tls-ok|sni=$ssl_server_name|dn=$ssl_client_s_dn|conn=$connection'
        '|reused=$ssl_session_reused|ua=$http_user_agent\\n";')


@pytest.fixture(scope="module")
def tls_nginx(tmp_path_factory, pki):
    """nginx with three TLS ports:
    main  - the localhost certificate (default server) and, by SNI, the
            other.example one; /files/ serves a 64 MiB file;
    only  - the localhost certificate only;
    mtls  - the localhost certificate, client certificates of client_ca required.
    Every other path answers one line naming the SNI, the client's subject
    DN, nginx's connection serial number, whether the TLS session was
    resumed ("r") or not (".") and the User-Agent."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        pytest.skip("nginx not installed")
    d = tmp_path_factory.mktemp("tls_nginx")
    (d / "www" / "files").mkdir(parents=True)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (d / "tmp" / sub).mkdir(parents=True)
    with open(d / "www" / "files" / "big.bin", "wb") as f:
        for blk in pattern(BIG):
            f.write(blk)
    e = Env()
    e.dir = d
    e.main, e.only, e.mtls = free_port(), free_port(), free_port()
    cert = "ssl_certificate %s; ssl_certificate_key %s;" % (pki.server_pem, pki.server_key)
    conf = d / "nginx.conf"
    conf.write_text("""
daemon off;
master_process off;
worker_processes 1;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    default_type application/octet-stream;
    keepalive_requests 1000;
    keepalive_timeout 75s;
    ssl_protocols TLSv1.2 TLSv1.3;
    server {{
        listen 127.0.0.1:{main} ssl default_server;
        server_name localhost;
        {cert}
        root {d}/www;
        location /files/ {{ }}
        location / {{ default_type text/plain; {echo} }}
    }}
    server {{
        listen 127.0.0.1:{main} ssl;
        server_name other.example;
        ssl_certificate {other_pem}; ssl_certificate_key {other_key};
        location / {{ default_type text/plain; {echo} }}
    }}
    server {{
        listen 127.0.0.1:{only} ssl;
        server_name localhost;
        {cert}
        location / {{ default_type text/plain; {echo} }}
    }}
    server {{
        listen 127.0.0.1:{mtls} ssl;
        server_name localhost;
        {cert}
        ssl_verify_client on;
        ssl_client_certificate {client_ca};
        location / {{ default_type text/plain; {echo} }}
    }}
}}
""".format(d=d, main=e.main, only=e.only, mtls=e.mtls, cert=cert, echo=ECHO,
           other_pem=pki.other_pem, other_key=pki.other_key, client_ca=pki.client_ca_pem))
    proc = subprocess.Popen([binary, "-p", str(d), "-c", str(conf), "-e", str(d / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)

    def listening(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False

    ok = wait_until(lambda: proc.poll() is not None or all(
        listening(p) for p in (e.main, e.only, e.mtls)), 10)
    if not ok or proc.poll() is not None:
        proc.kill()
        proc.wait()
        raise RuntimeError("nginx did not start: %s %s" % (
            proc.stderr.read().decode(errors="replace"),
            (d / "error.log").read_text(errors="replace") if (d / "error.log").exists() else ""))
    yield e
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stderr.close()


def echo_fields(r):
    """The fields of nginx's echo line: {"sni": ..., "dn": ..., "conn": ..., ...}."""
    assert r.status == 200, r
    text = r.body.decode()
    assert text.startswith("tls-ok|"), r
    return dict(kv.split("=", 1) for kv in text.strip().split("|")[1:])


def tls_node(portico_factory, url, tls=None, extra="", limits=""):
    """A one-worker node with API /t in front of `url`. No retries and no
    passive ejection: every failure is answered as such."""
    x = "  retries: 0\n  health: {max_fails: 0}\n" + extra
    if tls:
        x += "  tls:\n" + "".join("    %s: %s\n" % kv for kv in tls.items())
    return portico_factory(node_config(workers=1, limits=limits),
                           {"t.yaml": proxy_api("t", "/t", url, x)})


# --------------------------------------------------------------------------
# A. Upstream TLS


def test_https_target_verified_with_ca_file(portico_factory, tls_nginx, pki):
    n = tls_node(portico_factory, "https://localhost:%d" % tls_nginx.main, {"ca_file": pki.ca_pem})
    r = fetch(n.port, req("GET", "/t/hello"))
    f = echo_fields(r)
    assert f["sni"] == "localhost", f
    assert f["dn"] == "", f
    assert r.header("Server") == "portico"


def test_https_target_with_path_prefix(portico_factory, tls_nginx, pki):
    """The path of an https target is a prefix, as for http."""
    n = tls_node(portico_factory, "https://localhost:%d/files" % tls_nginx.main,
                 {"ca_file": pki.ca_pem})
    r = fetch(n.port, req("GET", "/t/big.bin", extra=b"Range: bytes=0-15\r\n"))
    assert r.status == 206, r
    assert r.body == next(pattern(BIG))[:16]


def test_https_target_wrong_ca_is_502(portico_factory, tls_nginx, pki):
    n = tls_node(portico_factory, "https://localhost:%d" % tls_nginx.main,
                 {"ca_file": pki.wrong_ca_pem})
    with RawClient(n.port) as c:
        c.send(req("GET", "/t/a"))
        check_problem(c.read_response(), 502, "bad-gateway")
        # the client connection goes on
        c.send(req("GET", "/t/b"))
        check_problem(c.read_response(), 502, "bad-gateway")
        # failed handshakes leave no descriptor behind
        base = stable_fd_count(n.proc.pid)
        for k in range(10):
            c.send(req("GET", "/t/%d" % k))
            assert c.read_response().status == 502
        assert stable_fd_count(n.proc.pid) <= base, (base, fd_list(n.proc.pid))
    logged_verify_failure(n)


def logged_verify_failure(n, also=None):
    """The node logged a certificate verification failure (and `also`)."""
    def found():
        text = n.stderr()
        return re.search(r"certif\w*\s+verif", text, re.I) and (
            also is None or re.search(also, text, re.I))
    assert wait_until(found, 5), "no certificate verification failure logged:\n" + n.stderr()


def fd_list(pid):
    out = []
    d = "/proc/%d/fd" % pid
    for name in os.listdir(d):
        try:
            out.append(os.readlink(d + "/" + name))
        except OSError:
            pass
    return out


def test_https_target_system_store_does_not_trust_test_ca(portico_factory, tls_nginx):
    n = tls_node(portico_factory, "https://localhost:%d" % tls_nginx.main)
    check_problem(fetch(n.port, req("GET", "/t/a")), 502, "bad-gateway")
    logged_verify_failure(n)


def test_https_target_verify_false(portico_factory, tls_nginx):
    n = tls_node(portico_factory, "https://localhost:%d" % tls_nginx.main, {"verify": "false"})
    f = echo_fields(fetch(n.port, req("GET", "/t/a")))
    assert f["sni"] == "localhost", f


def test_https_server_name_mismatch_is_502(portico_factory, tls_nginx, pki):
    # the "only" port has the localhost certificate whatever the SNI
    n = tls_node(portico_factory, "https://localhost:%d" % tls_nginx.only,
                 {"ca_file": pki.ca_pem, "server_name": "other.example"})
    check_problem(fetch(n.port, req("GET", "/t/a")), 502, "bad-gateway")
    logged_verify_failure(n, "mismatch")


def test_https_server_name_sets_sni_and_verified_name(portico_factory, tls_nginx, pki):
    n = tls_node(portico_factory, "https://localhost:%d" % tls_nginx.main,
                 {"ca_file": pki.ca_pem, "server_name": "other.example"})
    f = echo_fields(fetch(n.port, req("GET", "/t/a")))
    assert f["sni"] == "other.example", f


def test_https_client_certificate_required_but_not_configured(portico_factory, tls_nginx, pki):
    """nginx completes the handshake and answers 400 itself: passed through."""
    n = tls_node(portico_factory, "https://localhost:%d" % tls_nginx.mtls, {"ca_file": pki.ca_pem})
    r = fetch(n.port, req("GET", "/t/a"))
    assert r.status == 400, r
    assert b"No required SSL certificate was sent" in r.body, r


def test_https_client_certificate(portico_factory, tls_nginx, pki):
    n = tls_node(portico_factory, "https://localhost:%d" % tls_nginx.mtls,
                 {"ca_file": pki.ca_pem, "client_cert": pki.client_pem,
                  "client_key": pki.client_key})
    f = echo_fields(fetch(n.port, req("GET", "/t/a")))
    assert f["dn"] == "CN=portico-client", f
    assert f["sni"] == "localhost", f


def test_https_pool_reuses_one_tls_connection(portico_factory, tls_nginx, pki):
    n = tls_node(portico_factory, "https://localhost:%d" % tls_nginx.main, {"ca_file": pki.ca_pem})
    conns = []
    with RawClient(n.port) as c:
        for k in range(20):
            c.send(req("GET", "/t/pool/%d" % k))
            conns.append(echo_fields(c.read_response())["conn"])
    assert len(set(conns)) == 1, conns
    # new client connections, the same pooled upstream connection
    for k in range(3):
        assert echo_fields(fetch(n.port, req("GET", "/t/pool/again")))["conn"] == conns[0]


def test_https_sessions_are_resumed(portico_factory, tls_nginx, pki):
    """No pooling: a new TLS connection per request, each after the first
    resuming the target's last session."""
    n = tls_node(portico_factory, "https://localhost:%d" % tls_nginx.main,
                 {"ca_file": pki.ca_pem}, "  keepalive: {max_idle: 0}\n")
    fields = [echo_fields(fetch(n.port, req("GET", "/t/s/%d" % k))) for k in range(4)]
    assert len({f["conn"] for f in fields}) == 4, fields
    assert fields[0]["reused"] == ".", fields
    assert [f["reused"] for f in fields[1:]] == ["r"] * 3, fields


def test_https_large_download_intact(portico_factory, tls_nginx, pki):
    n = tls_node(portico_factory, "https://localhost:%d" % tls_nginx.main, {"ca_file": pki.ca_pem})
    h = hashlib.sha256()
    got = 0
    with requests.get(n.url("/t/files/big.bin"), stream=True, timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["Content-Length"] == str(BIG)
        for chunk in r.iter_content(1 << 20):
            h.update(chunk)
            got += len(chunk)
    assert got == BIG
    assert h.hexdigest() == pattern_sha(BIG)
    # and the connection is fine for a small one after it
    assert echo_fields(fetch(n.port, req("GET", "/t/after")))["sni"] == "localhost"


def test_https_ip_literal_target(portico_factory, tls_nginx, pki):
    n = tls_node(portico_factory, "https://127.0.0.1:%d" % tls_nginx.main, {"ca_file": pki.ca_pem})
    f = echo_fields(fetch(n.port, req("GET", "/t/ip")))
    # RFC 6066 3: literal IP addresses are not sent as server names
    assert f["sni"] == "", f


class TlsUpstream(Upstream):
    """The Upstream of test_proxy, over TLS (the localhost certificate)."""

    def __init__(self, handler, pki):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki.server_pem, pki.server_key)
        super().__init__(handler)

    def _serve(self, c):
        raw = c.sock
        try:
            c.sock = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        super()._serve(c)


def test_https_large_upload_intact(portico_factory, pki):
    """64 MiB up over TLS to an upstream that reads nothing for 1.5 s:
    the client is held back meanwhile, and every byte arrives."""
    u = TlsUpstream(behave, pki)
    try:
        n = tls_node(portico_factory, "https://localhost:%d" % u.port, {"ca_file": pki.ca_pem},
                     limits="  max_body_size: 256MiB\n")
        total = 64 * MIB
        err, sent = [], [0]
        with RawClient(n.port, timeout=30) as c:
            def send():
                try:
                    c.send(b"POST /t/upload/1.5 HTTP/1.1\r\nHost: a\r\n"
                           b"Content-Type: application/octet-stream\r\n"
                           b"Content-Length: %d\r\n\r\n" % total)
                    for blk in pattern(total):
                        c.send(blk)
                        sent[0] += len(blk)
                except OSError as e:
                    err.append(e)
            t = threading.Thread(target=send, daemon=True)
            t.start()
            time.sleep(1.2)
            assert sent[0] < 48 * MIB, "%d MiB sent to an upstream reading nothing" % (
                sent[0] // MIB)
            r = c.read_response()
            t.join(30)
            assert r.status == 200, (r, err, n.stderr()[-3000:])
            assert not err, err
            assert r.json() == {"len": total, "sha256": pattern_sha(total)}
            c.send(req("GET", "/t/status/200"))
            r = c.read_response()
            assert r.status == 200 and r.body == b"status 200"
        assert u.accepted == 1, u.accepted
    finally:
        u.stop()


def test_mixed_http_and_https_targets(portico_factory, upstreams, tls_nginx, pki):
    u = upstreams(behave)
    n = portico_factory(node_config(workers=1), {"m.yaml": proxy_api(
        "m", "/m", [(u.url(), 1), ("https://localhost:%d" % tls_nginx.main, 1)],
        "  retries: 0\n  tls: {ca_file: %s}\n" % pki.ca_pem)})
    bodies = [fetch(n.port, req("GET", "/m/status/200")).body for _ in range(6)]
    assert bodies.count(b"status 200") == 3, bodies
    assert sum(b.startswith(b"tls-ok|sni=localhost|") for b in bodies) == 3, bodies


def test_tls_files_relative_to_the_definition(portico_factory, tls_nginx, pki):
    n = portico_factory(node_config(workers=1), {"t.yaml": proxy_api(
        "t", "/t", "https://localhost:%d" % tls_nginx.mtls,
        "  tls:\n    ca_file: certs/ca.pem\n    client_cert: certs/client.pem\n"
        "    client_key: certs/client.key\n")}, start=False)
    (n.apis_dir / "certs").mkdir()
    for name in ("ca.pem", "client.pem", "client.key"):
        shutil.copy(str(pki.dir / name), str(n.apis_dir / "certs" / name))
    n.start()
    assert echo_fields(fetch(n.port, req("GET", "/t/rel")))["dn"] == "CN=portico-client"


# --------------------------------------------------------------------------
# B. Active health checks


def health_handler(u, c, r):
    """GET /health answers u.events["health"] (default 200); the rest as behave."""
    if r.path == "/health":
        c.read_body(r)
        code = u.events.get("health", 200)
        time.sleep(u.events.get("health_delay", 0))
        if code in (204, 304):
            c.respond(code, length=False)
            return True
        hdrs = [("Content-Type", "text/plain")]
        if 300 <= code < 400:
            hdrs.append(("Location", "/elsewhere"))
        c.respond(code, hdrs, b"health %d" % code)
        return True
    return behave(u, c, r)


def is_check(r):
    return r.header_all("User-Agent") == ["portico-health-check"]


def served(u):
    with u.lock:
        return sum(1 for r in u.requests if not is_check(r))


def checks(u, path="/health"):
    with u.lock:
        return sum(1 for r in u.requests if is_check(r) and r.target == path)


def batch(port, ups, count, path="/h/status/200"):
    """count requests on one connection: (statuses, requests each upstream got)."""
    before = [served(u) for u in ups]
    statuses = []
    with RawClient(port) as c:
        for _ in range(count):
            c.send(req("GET", path))
            statuses.append(c.read_response().status)
    return statuses, [served(u) - b for u, b in zip(ups, before)]


CHECK = "{path: /health, interval: 1s, timeout: 500ms, fails: 1, passes: 1%s}"


def health_api(targets, check_extra="", extra=""):
    return {"h.yaml": proxy_api(
        "h", "/h", [(t, 1) for t in targets],
        "  retries: 0\n  health:\n    max_fails: 0\n    check: %s\n%s" % (
            CHECK % check_extra, extra))}


def health_node(portico_factory, targets, check_extra="", extra="", workers=1):
    return portico_factory(node_config(workers=workers),
                           health_api(targets, check_extra, extra))


def test_active_check_takes_sick_target_out_and_back(portico_factory, upstreams):
    well, sick = upstreams(health_handler), upstreams(health_handler)
    sick.events["health"] = 503
    n = health_node(portico_factory, [well.url(), sick.url()])
    # both are checked, and the sick one is soon out of the rotation
    assert wait_until(lambda: batch(n.port, [well, sick], 6)[1][1] == 0, 6, 0.2), n.stderr()
    statuses, got = batch(n.port, [well, sick], 20)
    assert statuses == [200] * 20 and got == [20, 0], (statuses, got)
    assert wait_until(lambda: checks(well) >= 1, 3)
    with well.lock:
        hc = [r for r in well.requests if r.path == "/health"][0]
    assert (hc.method, hc.target, hc.version) == ("GET", "/health", "HTTP/1.1"), hc
    assert hc.header("Host") == "127.0.0.1:%d" % well.port, hc
    assert hc.header("User-Agent") == "portico-health-check", hc
    assert hc.header("Connection") == "close", hc
    # it recovers: traffic is split again
    sick.events["health"] = 200
    assert wait_until(lambda: batch(n.port, [well, sick], 6)[1][1] > 0, 6, 0.2), n.stderr()
    statuses, got = batch(n.port, [well, sick], 20)
    assert statuses == [200] * 20, statuses
    assert got[0] >= 5 and got[1] >= 5, got


def test_active_check_every_target_down_is_503(portico_factory, upstreams):
    a, b = upstreams(health_handler), upstreams(health_handler)
    a.events["health"] = b.events["health"] = 503
    n = health_node(portico_factory, [a.url(), b.url()])
    r = wait_until(lambda: (lambda r: r if r.status == 503 else None)(
        fetch(n.port, req("GET", "/h/status/200"))), 6, 0.2)
    assert r is not None, n.stderr()
    check_problem(r, 503, "no-healthy-upstream")
    ra = r.header("Retry-After")
    assert ra is not None and ra.isdigit() and int(ra) <= 3600, r
    # no traffic reached them once they were down
    before = served(a) + served(b)
    for _ in range(5):
        assert fetch(n.port, req("GET", "/h/status/200")).status == 503
    assert served(a) + served(b) == before


def test_active_check_marks_closed_port_down(portico_factory, upstreams):
    live = upstreams(health_handler)
    dead = "http://127.0.0.1:%d" % free_port()
    n = health_node(portico_factory, [dead, live.url()])
    # passive ejection is off and there are no retries: until the check
    # marks the dead target down, half the requests are 502
    assert wait_until(lambda: batch(n.port, [live], 6)[0] == [200] * 6, 6, 0.2), n.stderr()
    statuses, got = batch(n.port, [live], 20)
    assert statuses == [200] * 20 and got == [20], (statuses, got)


@pytest.mark.parametrize("expected,good", [("[204]", 204), ('[204, "3xx"]', 302)])
def test_active_check_expected_status(portico_factory, upstreams, expected, good):
    """A target whose /health answers 200 is down when 200 is not expected."""
    plain, other = upstreams(health_handler), upstreams(health_handler)
    plain.events["health"] = 200
    other.events["health"] = good
    n = health_node(portico_factory, [plain.url(), other.url()],
                    ", expected_status: %s" % expected)
    assert wait_until(lambda: batch(n.port, [plain, other], 6)[1][0] == 0, 6, 0.2), n.stderr()
    statuses, got = batch(n.port, [plain, other], 20)
    assert statuses == [200] * 20 and got == [0, 20], (statuses, got)
    # targets not checked yet are up: once the other one has been checked
    # (fails: 1), it is still up, so its answer passed
    # (the second check began after the first was judged)
    assert wait_until(lambda: checks(other) >= 2, 4), n.stderr()
    statuses, got = batch(n.port, [plain, other], 20)
    assert statuses == [200] * 20 and got == [0, 20], (statuses, got, n.stderr())


def test_active_check_timeout_marks_down(portico_factory, upstreams):
    """A /health slower than the check's timeout (500 ms) fails the check."""
    well, slow = upstreams(health_handler), upstreams(health_handler)
    slow.events["health_delay"] = 0.8
    n = health_node(portico_factory, [well.url(), slow.url()])
    assert wait_until(lambda: batch(n.port, [well, slow], 6)[1][1] == 0, 6, 0.2), n.stderr()
    statuses, got = batch(n.port, [well, slow], 10)
    assert statuses == [200] * 10 and got == [10, 0], (statuses, got)


def test_active_checks_with_several_workers(portico_factory, upstreams):
    """One node checks once per interval (not once per worker), and a down
    target gets traffic from no worker."""
    well, sick = upstreams(health_handler), upstreams(health_handler)
    sick.events["health"] = 503
    n = health_node(portico_factory, [well.url(), sick.url()], workers=2)
    def all_well():  # new connections: both workers take some
        b = served(sick)
        got = [fetch(n.port, req("GET", "/h/status/200")).status for _ in range(8)]
        return got == [200] * 8 and served(sick) == b
    assert wait_until(all_well, 4, 0.2), n.stderr()
    before = served(sick)
    # one check per interval (1 s): two more take about 2 s, not half that
    c1 = checks(well)
    assert wait_until(lambda: checks(well) > c1, 3, 0.01)
    t0, c0 = time.time(), checks(well)
    assert wait_until(lambda: checks(well) >= c0 + 2, 4, 0.01)
    assert time.time() - t0 >= 1.5, (time.time() - t0, checks(well) - c0)
    for _ in range(20):
        assert fetch(n.port, req("GET", "/h/status/200")).status == 200
    assert served(sick) == before


def test_reload_applies_new_check(portico_factory, upstreams):
    """SIGHUP with another check path: the target that failed /health passes
    /ok (answered 200 by every upstream) and is back in the rotation."""
    well, sick = upstreams(health_handler), upstreams(health_handler)
    sick.events["health"] = 503
    n = health_node(portico_factory, [well.url(), sick.url()])
    assert wait_until(lambda: batch(n.port, [well, sick], 6)[1][1] == 0, 6, 0.2), n.stderr()
    (n.apis_dir / "h.yaml").write_text(
        health_api([well.url(), sick.url()])["h.yaml"].replace("path: /health", "path: /ok"))
    n.signal(signal.SIGHUP)
    n.wait_log("configuration generation 2 published")
    assert wait_until(lambda: checks(sick, "/ok") >= 1, 4), n.stderr()
    assert wait_until(lambda: batch(n.port, [well, sick], 6)[1][1] > 0, 4, 0.2), n.stderr()
    # the old check stopped
    c = checks(sick)
    assert wait_until(lambda: checks(sick, "/ok") >= 3, 4)
    assert checks(sick) == c


def test_active_check_over_https(portico_factory, tls_nginx, pki):
    """Checks of https targets go over verified TLS: a target whose
    certificate cannot be verified fails its checks and is down (503)."""
    check = ("  retries: 0\n  health:\n    max_fails: 0\n    check: " + CHECK % "" + "\n"
             "  tls: {ca_file: %s}\n")
    url = "https://localhost:%d" % tls_nginx.main
    n = portico_factory(node_config(workers=1), {
        "good.yaml": proxy_api("good", "/good", url, check % pki.ca_pem),
        "bad.yaml": proxy_api("bad", "/bad", url, check % pki.wrong_ca_pem)})
    r = wait_until(lambda: (lambda r: r if r.status == 503 else None)(
        fetch(n.port, req("GET", "/bad/x"))), 6, 0.2)
    assert r is not None, n.stderr()
    check_problem(r, 503, "no-healthy-upstream")
    # the good one was checked too (nginx saw the checker), and is up
    log = tls_nginx.dir / "access.log"
    assert wait_until(lambda: "portico-health-check" in log.read_text(), 4)
    assert echo_fields(fetch(n.port, req("GET", "/good/x")))["sni"] == "localhost"


# --------------------------------------------------------------------------
# C. DNS


LOG_PROBLEM = re.compile(r"^\S+Z (warn|error) ", re.M)


def test_dns_name_target_with_short_ttl(portico_factory, upstreams):
    """A target named by DNS name, re-resolved every 200 ms; new upstream
    connections for every request, for over a second."""
    u = upstreams(behave)
    n = portico_factory(node_config(workers=1), {"d.yaml": proxy_api(
        "d", "/d", "http://localhost:%d" % u.port,
        "  dns_ttl: 200ms\n  keepalive: {max_idle: 0}\n  retries: 0\n")})
    start, count = time.time(), 0
    while time.time() - start < 1.3:
        r = fetch(n.port, req("GET", "/d/status/200"))
        assert r.status == 200 and r.body == b"status 200", (count, r)
        count += 1
        time.sleep(0.03)
    assert len(u.requests) == count and u.accepted == count
    assert not LOG_PROBLEM.search(n.stderr()), n.stderr()


def test_dns_ttl_over_https(portico_factory, tls_nginx, pki):
    n = tls_node(portico_factory, "https://localhost:%d" % tls_nginx.main,
                 {"ca_file": pki.ca_pem}, "  dns_ttl: 200ms\n  keepalive: {max_idle: 0}\n")
    start = time.time()
    while time.time() - start < 1.2:
        assert echo_fields(fetch(n.port, req("GET", "/t/dns")))["sni"] == "localhost"
        time.sleep(0.05)
    assert not LOG_PROBLEM.search(n.stderr()), n.stderr()


@pytest.fixture
def private_hosts(tmp_path, monkeypatch):
    """Nodes started in this test see `hosts` (a file of this test) as their
    /etc/hosts, and resolve names from files only: each runs in its own mount
    namespace (unshare -m; the process is still the node, by PID)."""
    hosts = tmp_path / "hosts"
    nss = tmp_path / "nsswitch.conf"
    hosts.write_text("127.0.0.1 localhost\n")
    nss.write_text("hosts: files\n")
    unshare = shutil.which("unshare")
    probe = unshare and subprocess.run(
        [unshare, "-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && getent hosts localhost',
         str(hosts)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10)
    if not probe or probe.returncode != 0:
        pytest.skip("cannot make a private /etc/hosts (unshare -m, mount --bind)")
    wrapper = tmp_path / "portico-private-hosts"
    wrapper.write_text(
        "#!/bin/sh\n"
        "exec %s -m sh -c 'mount --bind \"$0\" /etc/hosts && mount --bind \"$1\" "
        "/etc/nsswitch.conf && shift && exec \"$@\"' %s %s %s \"$@\"\n" % (
            unshare, hosts, nss, os.path.abspath(conftest.BIN)))
    wrapper.chmod(0o755)
    monkeypatch.setattr(conftest, "BIN", str(wrapper))
    return hosts


class TwoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"two")

    def log_message(self, *a):
        pass


def test_dns_reresolution_follows_the_name(private_hosts, portico_factory, upstreams):
    """The name moves from 127.0.0.1 to 127.0.0.2: after dns_ttl, new
    connections go to the new address; when the name stops resolving, the
    last address is kept and the failure logged."""
    one = upstreams(behave)
    two = http.server.ThreadingHTTPServer(("127.0.0.2", one.port), TwoHandler)
    threading.Thread(target=two.serve_forever, daemon=True).start()
    try:
        private_hosts.write_text("127.0.0.1 localhost\n127.0.0.1 upstream.portico.test\n")
        n = portico_factory(node_config(workers=1), {"d.yaml": proxy_api(
            "d", "/d", "http://upstream.portico.test:%d" % one.port,
            "  dns_ttl: 200ms\n  keepalive: {max_idle: 0}\n  retries: 0\n")})
        assert n.proc.pid and fetch(n.port, req("GET", "/d/status/200")).body == b"status 200"
        private_hosts.write_text("127.0.0.1 localhost\n127.0.0.2 upstream.portico.test\n")
        assert wait_until(lambda: fetch(n.port, req("GET", "/d/x")).body == b"two", 4, 0.1), \
            n.stderr()
        for _ in range(5):
            assert fetch(n.port, req("GET", "/d/x")).body == b"two"
        private_hosts.write_text("127.0.0.1 localhost\n")
        bodies = []

        def failure_logged():  # resolutions are made as traffic needs them
            bodies.append(fetch(n.port, req("GET", "/d/x")).body)
            return "upstream.portico.test" in "".join(
                ln for ln in n.stderr().splitlines(True) if LOG_PROBLEM.match(ln))
        assert wait_until(failure_logged, 4, 0.1), n.stderr()
        for _ in range(5):
            bodies.append(fetch(n.port, req("GET", "/d/x")).body)
        assert set(bodies) == {b"two"}, bodies
    finally:
        two.shutdown()
        two.server_close()


# --------------------------------------------------------------------------
# D. SOAP faults and problem+xml for gateway errors

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
RFC7807 = "urn:ietf:rfc:7807"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

ENVELOPE11 = (b'<?xml version="1.0" encoding="utf-8"?>\n'
              b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
              b'<soap:Body><m:GetPrice xmlns:m="urn:x"><m:Item>Apples</m:Item></m:GetPrice>'
              b'</soap:Body></soap:Envelope>')
ENVELOPE12 = (b'<?xml version="1.0" encoding="utf-8"?>\n'
              b'<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope">'
              b'<env:Body><m:GetPrice xmlns:m="urn:x"><m:Item>Apples</m:Item></m:GetPrice>'
              b'</env:Body></env:Envelope>')
SOAP11_HDRS = b'Content-Type: text/xml; charset=utf-8\r\nSOAPAction: "urn:x"\r\n'
SOAP12_HDRS = b'Content-Type: application/soap+xml; charset=utf-8; action="urn:x"\r\n'


@pytest.fixture(scope="module")
def soap(tmp_path_factory):
    e = Env()
    e.dead = free_port()
    dead = "http://127.0.0.1:%d" % e.dead
    apis = {
        "svc.yaml": proxy_api("svc", "/svc", dead, "  retries: 0\n  health: {max_fails: 0}\n"),
        # ejected after its first failure: 503 with Retry-After from then on
        "gone.yaml": proxy_api("gone", "/gone", dead,
                               "  retries: 0\n  health: {max_fails: 1, fail_timeout: 60s}\n"),
    }
    e.node = Portico(tmp_path_factory.mktemp("soap"), node_config(workers=1), apis)
    e.node.start()
    e.port = e.node.port
    yield e
    rc = e.node.stop()
    assert rc == 0, "portico exited with %s:\n%s" % (rc, e.node.stderr())
    e.node.check_clean()


def parse_xml(body):
    """(root element, {prefix: namespace} of every declaration)."""
    ns, root = {}, None
    for ev, item in ET.iterparse(io.BytesIO(body), events=("start-ns", "start")):
        if ev == "start-ns":
            prefix, uri = item
            assert ns.get(prefix, uri) == uri, "prefix %r redefined: %r" % (prefix, body)
            ns[prefix] = uri
        elif root is None:
            root = item
    return root, ns


def resolve_qname(text, ns):
    prefix, _, local = text.strip().rpartition(":")
    return ns.get(prefix), local


def media_type(r):
    ct = r.header("Content-Type") or ""
    parts = [p.strip() for p in ct.split(";")]
    return parts[0].lower(), [p.lower().replace('"', "") for p in parts[1:] if p]


def json_detail(soap, path):
    """The detail of the problem+json answer for this path."""
    r = fetch(soap.port, req("POST", path, extra=b"Content-Type: application/json\r\n",
                             body=b'{"a":1}'))
    j = check_problem(r, 502, "bad-gateway")
    assert j.get("detail"), j
    return j["detail"]


def problem_fields(el, where):
    """The children of an RFC 7807 <problem> element, by local name."""
    assert el is not None and el.tag == "{%s}problem" % RFC7807, where
    out = {}
    for child in el:
        assert child.tag.startswith("{%s}" % RFC7807), (child.tag, where)
        out[child.tag.split("}", 1)[1]] = child.text or ""
    return out


def soap11_fault(r):
    """(faultcode as (namespace, local name), faultstring, the problem in the
    detail) of a SOAP 1.1 fault."""
    mt, params = media_type(r)
    assert mt == "text/xml" and params == ["charset=utf-8"], r
    root, ns = parse_xml(r.body)
    assert root.tag == "{%s}Envelope" % SOAP11, r.body
    body = root.find("{%s}Body" % SOAP11)
    assert body is not None, r.body
    fault = body.find("{%s}Fault" % SOAP11)
    assert fault is not None and len(body) == 1, r.body
    # SOAP 1.1 4.4: faultcode, faultstring and detail are unqualified
    code, string = fault.find("faultcode"), fault.find("faultstring")
    assert code is not None and string is not None, r.body
    detail = fault.find("detail")
    assert detail is not None and len(detail) == 1, r.body
    return resolve_qname(code.text, ns), string.text or "", problem_fields(detail[0], r.body)


# docs/http.md: a 5xx travels as HTTP 500 in a SOAP fault (WS-I Basic Profile
# R1126), the gateway's own status is the status of the problem in the detail


def test_soap11_fault_for_bad_gateway(soap):
    detail = json_detail(soap, "/svc/Service.asmx")
    with RawClient(soap.port) as c:
        for _ in range(2):  # framing intact: the connection goes on
            c.send(req("POST", "/svc/Service.asmx", extra=SOAP11_HDRS, body=ENVELOPE11))
            r = c.read_response()
            assert r.status == 500, r
            code, string, problem = soap11_fault(r)
            assert code == (SOAP11, "Server"), (code, r.body)
            assert detail in string, (detail, r.body)
            assert problem["type"] == "urn:portico:problem:bad-gateway", problem
            assert problem["status"] == "502", problem
            assert problem["detail"] == detail and problem["instance"] == "/svc/Service.asmx"
            assert problem["request_id"] == r.header("X-Request-Id"), problem


def test_soap12_fault_for_bad_gateway(soap):
    detail = json_detail(soap, "/svc/Service.svc")
    r = fetch(soap.port, req("POST", "/svc/Service.svc", extra=SOAP12_HDRS, body=ENVELOPE12))
    assert r.status == 500, r
    mt, params = media_type(r)
    assert mt == "application/soap+xml" and "charset=utf-8" in params, r
    root, ns = parse_xml(r.body)
    assert root.tag == "{%s}Envelope" % SOAP12, r.body
    fault = root.find("{%s}Body/{%s}Fault" % (SOAP12, SOAP12))
    assert fault is not None, r.body
    value = fault.find("{%s}Code/{%s}Value" % (SOAP12, SOAP12))
    assert value is not None and resolve_qname(value.text, ns) == (SOAP12, "Receiver"), r.body
    texts = fault.findall("{%s}Reason/{%s}Text" % (SOAP12, SOAP12))
    assert len(texts) == 1, r.body
    assert texts[0].get(XML_LANG) == "en", r.body
    assert detail in (texts[0].text or ""), (detail, r.body)
    d = fault.find("{%s}Detail" % SOAP12)
    assert d is not None and len(d) == 1, r.body
    problem = problem_fields(d[0], r.body)
    assert problem["type"] == "urn:portico:problem:bad-gateway" and problem["status"] == "502"


def test_json_clients_still_get_problem_json(soap):
    json_detail(soap, "/svc/x")
    check_problem(fetch(soap.port, req("GET", "/svc/x")), 502, "bad-gateway")
    check_problem(fetch(soap.port, req("GET", "/svc/x", extra=b"Accept: application/json\r\n")),
                  502, "bad-gateway")
    # XML accepted, but JSON preferred
    check_problem(fetch(soap.port, req(
        "GET", "/svc/x", extra=b"Accept: application/json, application/xml;q=0.5\r\n")),
        502, "bad-gateway")


def test_problem_xml_for_xml_clients(soap):
    detail = json_detail(soap, "/svc/items?q=1")
    for accept in (b"application/xml", b"text/xml", b"application/problem+xml",
                   b"application/json;q=0.5, application/xml"):
        r = fetch(soap.port, req("GET", "/svc/items?q=1", extra=b"Accept: " + accept + b"\r\n"))
        assert r.status == 502, r
        assert media_type(r)[0] == "application/problem+xml", r
        root, _ = parse_xml(r.body)
        p = problem_fields(root, r.body)
        assert p["type"] == "urn:portico:problem:bad-gateway", p
        assert p["title"] == "Bad Gateway", p
        assert p["status"] == "502", p
        assert p["detail"] == detail, p
        assert p["instance"] == "/svc/items", p
    # wildcards choose nothing
    check_problem(fetch(soap.port, req("GET", "/svc/x", extra=b"Accept: */*\r\n")),
                  502, "bad-gateway")
    # markup characters of the path are escaped
    r = fetch(soap.port, req("GET", "/svc/a&b'c", extra=b"Accept: application/xml\r\n"))
    assert r.status == 502
    assert problem_fields(parse_xml(r.body)[0], r.body)["instance"] == "/svc/a&b'c"


def test_soap_fault_for_client_errors_keeps_status(soap):
    """A 4xx of the gateway itself (no API here: 404) keeps its status, as a
    soap:Client (1.1) or soap:Sender (1.2) fault."""
    r = fetch(soap.port, req("POST", "/nowhere/a&b", extra=SOAP11_HDRS, body=ENVELOPE11))
    assert r.status == 404, r
    code, _, problem = soap11_fault(r)
    assert code == (SOAP11, "Client"), (code, r.body)
    assert problem["status"] == "404" and problem["instance"] == "/nowhere/a&b", problem
    r = fetch(soap.port, req("POST", "/nowhere", extra=SOAP12_HDRS, body=ENVELOPE12))
    assert r.status == 404, r
    root, ns = parse_xml(r.body)
    value = root.find("{%s}Body/{%s}Fault/{%s}Code/{%s}Value" % ((SOAP12,) * 4))
    assert value is not None and resolve_qname(value.text, ns) == (SOAP12, "Sender"), r.body


def test_soap_fault_for_503_keeps_retry_after(soap):
    check_problem(fetch(soap.port, req("GET", "/gone/x")), 502, "bad-gateway")
    r = fetch(soap.port, req("GET", "/gone/x"))
    check_problem(r, 503, "no-healthy-upstream")
    r = fetch(soap.port, req("POST", "/gone/Service.asmx", extra=SOAP11_HDRS, body=ENVELOPE11))
    assert r.status == 500, r
    ra = r.header("Retry-After")
    assert ra is not None and ra.isdigit() and 1 <= int(ra) <= 60, r
    code, string, problem = soap11_fault(r)
    assert code == (SOAP11, "Server"), (code, r.body)
    assert string, r.body
    assert problem["type"] == "urn:portico:problem:no-healthy-upstream", problem
    assert problem["status"] == "503", problem
