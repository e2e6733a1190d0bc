"""Node lifecycle: SIGHUP reload (also under load, and refused when the new
configuration is invalid), SIGTERM drain and drain timeout, configuration
errors at start, `portico validate`, and the access log."""
import datetime
import re
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import BIN, HELLO_API, RawClient, access_log, fetch, get_request, node_config, wait_until

GREETINGS = b'{"greetings":["hello","bonjour"]}'


def ready(n):
    return requests.get(n.url("/_portico/ready"), timeout=5).json()


def reload_and_wait(n, generation, timeout=5):
    n.signal(signal.SIGHUP)
    n.wait_log("configuration generation %d published" % generation, timeout=timeout)


def wait_exit(n, timeout):
    try:
        rc = n.proc.wait(timeout=timeout)
    finally:
        n._close_files()
    return rc


def connection_refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


# ---------------------------------------------------------------- reload

def test_sighup_reload_applies_new_definitions(portico):
    assert fetch(portico.port, get_request()).body == GREETINGS
    assert ready(portico)["generation"] == 1
    api = portico.apis_dir / "hello.yaml"
    api.write_text(api.read_text().replace("bonjour", "hola") + """\
  - method: GET
    path: /farewell
    respond:
      body: goodbye
""")
    t0 = time.time()
    portico.signal(signal.SIGHUP)
    ok = wait_until(lambda: fetch(portico.port, get_request()).body == b'{"greetings":["hello","hola"]}',
                    timeout=2)
    assert ok, "the new definition was not served within 2 s"
    assert time.time() - t0 < 2.5
    r = fetch(portico.port, get_request("/hello/v1/farewell"))
    assert r.status == 200 and r.body == b"goodbye"
    assert r.header("Content-Type") == "text/plain; charset=utf-8"
    j = ready(portico)
    assert j["generation"] == 2 and j["status"] == "ready"
    assert requests.get(portico.url("/_portico/apis"), timeout=5).json()["generation"] == 2
    portico.wait_log("configuration generation 2 published")
    # a second reload increments again
    reload_and_wait(portico, 3)
    assert ready(portico)["generation"] == 3


def test_reload_adds_and_removes_apis(portico):
    (portico.apis_dir / "extra.yaml").write_text(
        "name: extra\nbase_path: /extra\nkind: service\ntitle: Extra\nversion: '1'\n"
        "routes:\n  - method: GET\n    path: /\n    respond: {body: extra-root}\n")
    reload_and_wait(portico, 2)
    assert fetch(portico.port, get_request("/extra")).body == b"extra-root"
    assert ready(portico)["apis"] == 2
    (portico.apis_dir / "hello.yaml").unlink()
    reload_and_wait(portico, 3)
    assert fetch(portico.port, get_request()).status == 404
    assert [a["name"] for a in requests.get(portico.url("/_portico/apis"), timeout=5).json()["apis"]] == ["extra"]


def test_keepalive_connection_survives_reloads(portico_factory):
    """A connection that is idle between two requests while a reload
    replaces the snapshot keeps working on the new one."""
    n = portico_factory(node_config(workers=1))
    api = n.apis_dir / "hello.yaml"
    original = api.read_text()
    with RawClient(n.port) as c:
        c.send(get_request())
        assert c.read_response().body == GREETINGS
        for gen in (2, 3, 4):
            api.write_text(original.replace("bonjour", "gen-%d" % gen))
            reload_and_wait(n, gen)
            time.sleep(0.2)  # let the worker swap its snapshot and drop the old one
            c.send(get_request())
            r = c.read_response()
            assert r.status == 200
            assert r.body == b'{"greetings":["hello","gen-%d"]}' % gen


def test_reload_under_load_loses_no_request(portico):
    stop = threading.Event()
    stats = {"ok": 0, "failed": [], "bodies": set()}
    lock = threading.Lock()

    def load():
        with requests.Session() as s:
            while not stop.is_set():
                try:
                    r = s.get(portico.url("/hello/v1/greetings"), timeout=5)
                    with lock:
                        if r.status_code == 200:
                            stats["ok"] += 1
                            stats["bodies"].add(r.content)
                        else:
                            stats["failed"].append(r.status_code)
                except requests.RequestException as e:
                    with lock:
                        stats["failed"].append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    api = portico.apis_dir / "hello.yaml"
    original = api.read_text()
    try:
        for i in range(5):
            time.sleep(0.3)
            api.write_text(original.replace("bonjour", "version-%d" % (i + 2)))
            reload_and_wait(portico, i + 2)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert stats["failed"] == [], "%d failed requests: %r" % (len(stats["failed"]), stats["failed"][:5])
    assert stats["ok"] >= 20
    assert b'{"greetings":["hello","version-6"]}' in stats["bodies"]
    assert len(stats["bodies"]) >= 2
    assert ready(portico)["generation"] == 6


def test_invalid_reload_keeps_running_configuration(portico):
    cfg = portico.config_path
    good = cfg.read_text()
    # unknown key in the node configuration
    cfg.write_text(good.replace("log:\n", "limits:\n  max_body_sise: 1MiB\nlog:\n", 1))
    line = cfg.read_text().splitlines().index("  max_body_sise: 1MiB") + 1
    portico.signal(signal.SIGHUP)
    portico.wait_log("reload refused")
    err = portico.stderr()
    assert re.search(r"portico\.yaml:%d: limits\.max_body_sise: unknown key" % line, err), err
    assert "keeping configuration generation 1" in err
    assert fetch(portico.port, get_request()).body == GREETINGS
    assert ready(portico)["generation"] == 1
    # an invalid API definition
    cfg.write_text(good)
    api = portico.apis_dir / "hello.yaml"
    api.write_text(api.read_text().replace("status: 201", "status: created"))
    portico.signal(signal.SIGHUP)
    wait_until(lambda: portico.stderr().count("reload refused") >= 2, timeout=5)
    err = portico.stderr()
    assert err.count("reload refused") == 2, err
    assert re.search(r"hello\.yaml:\d+: routes\[2\]\.respond\.status: expected an integer", err), err
    r = fetch(portico.port, b"POST /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    assert r.status == 201
    assert ready(portico)["generation"] == 1
    # a YAML syntax error
    api.write_text("name: [unclosed\n")
    portico.signal(signal.SIGHUP)
    wait_until(lambda: portico.stderr().count("reload refused") >= 3, timeout=5)
    assert fetch(portico.port, get_request()).body == GREETINGS
    # fixed: the next reload succeeds
    api.write_text(HELLO_API)
    reload_and_wait(portico, 2)
    assert ready(portico)["generation"] == 2


def test_reload_refuses_listener_change(portico):
    cfg = portico.config_path
    cfg.write_text(cfg.read_text().replace("127.0.0.1:0", "127.0.0.2:0"))
    portico.signal(signal.SIGHUP)
    portico.wait_log("reload refused: listeners changed")
    assert fetch(portico.port, get_request()).body == GREETINGS
    assert ready(portico)["generation"] == 1


def test_sighup_reopens_access_log(portico):
    log = portico.dir / "access.log"
    assert fetch(portico.port, get_request("/hello/v1/greetings/first")).status == 200
    access_log(portico, 1)
    rotated = portico.dir / "access.log.1"
    log.rename(rotated)
    reload_and_wait(portico, 2)
    time.sleep(0.2)
    assert fetch(portico.port, get_request("/hello/v1/greetings/second")).status == 200
    entries = access_log(portico, 1)
    assert [e["path"] for e in entries] == ["/hello/v1/greetings/second"]
    assert "/hello/v1/greetings/first" in rotated.read_text()


# ---------------------------------------------------------------- shutdown

@pytest.mark.parametrize("expect", [False, True], ids=["partial-body", "expect-100-continue"])
def test_sigterm_drain_finishes_request_in_flight(portico_factory, expect):
    n = portico_factory(node_config(limits="  drain_timeout: 5s\n", workers=1))
    c = RawClient(n.port, timeout=5)
    try:
        head = (b"POST /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n" +
                (b"Expect: 100-continue\r\n" if expect else b"") + b"\r\n")
        if expect:
            c.send(head)
            assert c.read_response().status == 100
            c.send(b"01234")
        else:
            c.send(head + b"01234")
        time.sleep(0.2)
        t0 = time.time()
        n.signal(signal.SIGTERM)
        n.wait_log("draining")
        # the listener closes at once
        assert wait_until(lambda: connection_refused(n.port), timeout=2), "still accepting after SIGTERM"
        c.send(b"56789")
        r = c.read_response()
        assert r.status == 201 and r.body == b'{"created":true}'
        assert r.header("Connection").lower() == "close"
        assert time.time() - t0 < 4, "the response waited for the drain timeout"
        rest, closed = c.read_until_close(timeout=3)
        assert closed and rest == b""
    finally:
        c.close()
    assert wait_exit(n, 10) == 0
    assert "drain timeout" not in n.stderr()
    assert connection_refused(n.port)
    n.check_clean()


def test_ready_reports_draining(portico_factory):
    """A request in flight when SIGTERM arrives sees /_portico/ready answer
    503 "draining", with Connection: close."""
    n = portico_factory(node_config(limits="  drain_timeout: 5s\n", workers=1))
    with RawClient(n.port) as c:
        c.send(b"GET /_portico/ready HTTP/1.1\r\nHost: a\r\n")  # head not finished yet
        time.sleep(0.2)
        n.signal(signal.SIGTERM)
        n.wait_log("worker 0: draining")  # the worker's own view, not just main's
        c.send(b"\r\n")
        r = c.read_response()
        assert r.status == 503
        assert r.json()["status"] == "draining"
        assert r.header("Connection").lower() == "close"
    assert wait_exit(n, 10) == 0
    n.check_clean()


def test_sigterm_closes_idle_connections_and_exits_at_once(portico_factory):
    n = portico_factory(node_config(limits="  drain_timeout: 20s\n"))
    idle = []
    for _ in range(3):
        c = RawClient(n.port)
        c.send(get_request())
        assert c.read_response().status == 200
        idle.append(c)
    never_spoke = RawClient(n.port)
    t0 = time.time()
    n.signal(signal.SIGTERM)
    assert wait_exit(n, 10) == 0
    assert time.time() - t0 < 5, "idle connections delayed the shutdown"
    for c in idle + [never_spoke]:
        rest, closed = c.read_until_close(timeout=2)
        assert closed and rest == b""
        c.close()
    assert connection_refused(n.port)
    assert "stopped" in n.stderr()
    n.check_clean()


def test_drain_timeout_cuts_unfinished_request(portico_factory):
    n = portico_factory(node_config(limits="  drain_timeout: 1s\n  header_timeout: 60s\n"
                                           "  body_timeout: 60s\n"))
    stuck_head = RawClient(n.port)
    stuck_head.send(b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\n")  # never finished
    stuck_body = RawClient(n.port)
    stuck_body.send(b"POST /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
    time.sleep(0.2)
    t0 = time.time()
    n.signal(signal.SIGTERM)
    rc = wait_exit(n, 10)
    elapsed = time.time() - t0
    assert rc == 0
    assert 0.8 <= elapsed < 4, elapsed
    assert "drain timeout" in n.stderr()
    for c in (stuck_head, stuck_body):
        _, closed = c.read_until_close(timeout=2)
        assert closed
        c.close()
    n.check_clean()


def test_second_sigterm_stops_at_once(portico_factory):
    n = portico_factory(node_config(limits="  drain_timeout: 30s\n  header_timeout: 60s\n"))
    stuck = RawClient(n.port)
    stuck.send(b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\n")
    time.sleep(0.2)
    n.signal(signal.SIGTERM)
    n.wait_log("draining")
    t0 = time.time()
    n.signal(signal.SIGTERM)
    assert wait_exit(n, 10) == 0
    assert time.time() - t0 < 4
    stuck.close()
    n.check_clean()


# ---------------------------------------------------------------- configuration errors

DUP_API = HELLO_API.replace("name: hello", "name: hello-again")

BAD_CONFIGS = {
    "unknown-key": (node_config(limits="  max_body_sise: 1MiB\n"), None,
                    r"portico\.yaml:6: limits\.max_body_sise: unknown key"),
    "unknown-top-key": (node_config(extra="listeners: []\n"), None,
                        r"portico\.yaml:\d+: listeners: unknown key"),
    "wrong-type": ("workers: two\nlisten:\n  - address: 127.0.0.1:0\napis: apis\n", None,
                   r"portico\.yaml:1: workers: expected an integer"),
    "wrong-type-listen": ("workers: 1\nlisten: 127.0.0.1:0\napis: apis\n", None,
                          r"portico\.yaml:2: listen: expected a list"),
    "missing-listen": ("workers: 1\nlog:\n  level: info\napis: apis\n", None,
                       r"portico\.yaml:\d+: listen: required key is missing"),
    "bad-size-unit": (node_config(limits="  max_body_size: 8XB\n"), None,
                      r"portico\.yaml:6: limits\.max_body_size: expected a size"),
    "bad-duration": (node_config(limits="  header_timeout: soon\n"), None,
                     r"portico\.yaml:6: limits\.header_timeout: expected a duration"),
    "bad-address": (node_config(listen="  - address: localhost:0\n"), None,
                    r"portico\.yaml:3: listen\[0\]\.address: "),
    "duplicate-base-path": (node_config(), {"a.yaml": HELLO_API, "b.yaml": DUP_API},
                            r"[ab]\.yaml:3: base_path: base path /hello/v1 is already used .*[ab]\.yaml:3"),
    "invalid-api": (node_config(), {"hello.yaml": HELLO_API.replace("status: 201", "status: [1]")},
                    r"hello\.yaml:\d+: routes\[2\]\.respond\.status: "),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_invalid_configuration_at_start(portico_factory, name):
    config, apis, pattern = BAD_CONFIGS[name]
    n = portico_factory(config, apis=apis, start=False)
    rc = n.start(expect_fail=True)
    err = n.stderr()
    assert rc != 0
    assert re.search(pattern, err), err
    assert "listening on" not in err
    n.check_clean()


def test_port_in_use_is_refused(portico_factory, tmp_path):
    """SO_REUSEPORT would let a second node share the first one's port and
    steal half its traffic; the second node must refuse to start instead."""
    first = portico_factory()
    port = first.port
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    from conftest import Portico
    second = Portico(second_dir, node_config(listen="  - address: 127.0.0.1:%d\n" % port),
                     {"hello.yaml": HELLO_API})
    rc = second.start(expect_fail=True)
    assert rc == 1
    assert "port %d is already in use" % port in second.stderr()
    second.check_clean()
    # the first node still answers every request
    for _ in range(20):
        assert requests.get(first.url("/hello/v1/greetings"), timeout=5).status_code == 200


def run_validate(*files, cwd=None):
    return subprocess.run([BIN, "validate", *[str(f) for f in files]], capture_output=True,
                          text=True, timeout=30, cwd=cwd)


def test_validate_good_files(tmp_path):
    (tmp_path / "apis").mkdir()
    (tmp_path / "apis" / "hello.yaml").write_text(HELLO_API)
    (tmp_path / "portico.yaml").write_text(node_config())
    p = run_validate("portico.yaml", "apis/hello.yaml", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["portico.yaml: ok", "apis/hello.yaml: ok"]
    assert p.stderr == ""


def test_validate_bad_files(tmp_path):
    (tmp_path / "apis").mkdir()
    (tmp_path / "apis" / "hello.yaml").write_text(HELLO_API)
    (tmp_path / "apis" / "dup.yaml").write_text(DUP_API)
    (tmp_path / "bad.yaml").write_text(node_config(limits="  max_body_size: lots\n  bogus: 1\n"))
    (tmp_path / "broken.yaml").write_text(
        "name: broken\nbase_path: /broken\nkind: service\ntitle: B\nversion: '1'\nroutes:\n"
        "  - method: GET\n    path: /x\n")
    (tmp_path / "good.yaml").write_text(HELLO_API.replace("name: hello", "name: other")
                                        .replace("/hello/v1", "/other"))
    p = run_validate("good.yaml", "bad.yaml", "broken.yaml", "apis/hello.yaml", "apis/dup.yaml",
                     cwd=tmp_path)
    assert p.returncode == 1
    oks = p.stdout.splitlines()
    assert "good.yaml: ok" in oks
    assert "bad.yaml: ok" not in oks and "broken.yaml: ok" not in oks
    err = p.stderr
    assert re.search(r"^bad\.yaml:6: limits\.max_body_size: expected a size", err, re.M), err
    assert re.search(r"^bad\.yaml:7: limits\.bogus: unknown key", err, re.M), err
    assert re.search(r"^broken\.yaml:7: routes\[0\]\.respond: required key is missing", err, re.M), err
    # one of the two definitions is blamed, and the message names the other
    m = re.search(r"^apis/(hello|dup)\.yaml:3: base_path: base path /hello/v1 is already used "
                  r"by API \"[a-z-]+\" \(apis/(hello|dup)\.yaml:3\)", err, re.M)
    assert m and m.group(1) != m.group(2), err
    assert "apis/%s.yaml: ok" % m.group(1) not in oks
    # a file that does not exist
    p = run_validate("nope.yaml", cwd=tmp_path)
    assert p.returncode == 1 and "nope.yaml" in p.stderr


# ---------------------------------------------------------------- access log

def test_access_log_one_json_line_per_request(portico):
    sent = []
    with RawClient(portico.port) as c:
        local = "%s:%d" % c.sock.getsockname()
        reqs = [
            (b"GET /hello/v1/greetings?token=s3cr3t&x=1 HTTP/1.1\r\nHost: a\r\n"
             b"X-Request-Id: log-1\r\n\r\n", "GET", "/hello/v1/greetings", 200),
            (b"POST /hello/v1/greetings?password=hunter2 HTTP/1.1\r\nHost: a\r\n"
             b"Content-Length: 11\r\n\r\nhello world", "POST", "/hello/v1/greetings", 201),
            (b"GET /hello/v1/greetings/fr HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/hello/v1/greetings/fr", 200),
            (b"GET /missing?q=private HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/missing", 404),
            (b"HEAD /hello/v1/greetings HTTP/1.1\r\nHost: a\r\n\r\n", "HEAD", "/hello/v1/greetings", 200),
        ]
        for data, method, path, status in reqs:
            c.send(data)
            r = c.read_response(head=method == "HEAD")
            assert r.status == status
            sent.append((data, method, path, status, r))
    entries = access_log(portico, len(reqs))
    assert len(entries) == len(reqs)
    text = (portico.dir / "access.log").read_text()
    for secret in ("s3cr3t", "hunter2", "private", "token=", "?"):
        assert secret not in text, "the query string was logged: %r" % text
    keys = {"time", "request_id", "client", "method", "path", "status", "bytes_in", "bytes_out",
            "duration_us"}
    now = datetime.datetime.now(datetime.timezone.utc)
    for e, (data, method, path, status, r) in zip(entries, sent):
        assert keys <= set(e), e
        assert e["method"] == method and e["path"] == path and e["status"] == status
        assert e["request_id"] == r.header("X-Request-Id")
        assert e["client"] == local
        assert e["bytes_out"] == len(r.raw), (e, len(r.raw))
        assert isinstance(e["bytes_in"], int) and 0 < e["bytes_in"] <= len(data)
        assert isinstance(e["duration_us"], int) and e["duration_us"] >= 0
        t = datetime.datetime.strptime(e["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc)
        assert abs((now - t).total_seconds()) < 30
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", e["time"])
    assert entries[0]["request_id"] == "log-1"
    assert entries[0]["api"] == "hello" and entries[0]["route"] == "GET /greetings"
    assert entries[1]["api"] == "hello" and entries[1]["route"] == "POST /greetings"
    assert entries[2]["route"] == "GET /greetings/{language}"
    assert "api" not in entries[3] and "route" not in entries[3]
    assert entries[1]["bytes_in"] >= 11
    assert "tls_client" not in text
    for line in text.splitlines():
        assert line.startswith("{") and line.endswith("}")


def test_access_log_refused_requests_are_logged(portico):
    with RawClient(portico.port) as c:
        c.send(b"GET /hello/v1/../etc HTTP/1.1\r\nHost: a\r\n\r\n")
        r = c.read_response()
        assert r.status == 400
    e = access_log(portico, 1)[0]
    assert e["status"] == 400 and e["request_id"] == r.header("X-Request-Id")
    assert e["bytes_out"] == len(r.raw)
