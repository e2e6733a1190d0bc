"""Limits and timeouts (config `limits:`): each one is enforced with its
status code, a problem body, and a graceful close; other clients are not
affected."""
import json
import re
import socket
import threading
import time

import pytest
import requests

from conftest import Portico, RawClient, HELLO_API, fetch, get_request, node_config

SIZE_LIMITS = """\
  max_header_size: 1KiB
  max_uri_length: 256
  max_headers: 10
  max_body_size: 100
"""


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """One node with small size limits for the whole module."""
    n = Portico(tmp_path_factory.mktemp("limits"), node_config(limits=SIZE_LIMITS, workers=1),
                {"hello.yaml": HELLO_API})
    n.start()
    yield n
    rc = n.stop()
    assert rc == 0, n.stderr()
    n.check_clean()


def check_refusal(c, status, slug):
    r = c.read_response()
    assert r.status == status, r.raw
    assert r.header("Content-Type") == "application/problem+json"
    p = r.json()
    assert p["type"] == "urn:portico:problem:" + slug
    assert p["status"] == status
    assert r.header("Connection").lower() == "close"
    rest, closed = c.read_until_close(timeout=4)
    assert closed and rest == b""
    return r


def test_header_too_large_431(small):
    with RawClient(small.port) as c:
        c.send(get_request(extra=b"X-Big: " + b"a" * 1100 + b"\r\n"))
        check_refusal(c, 431, "request-header-fields-too-large")
    # spread over many headers too
    with RawClient(small.port) as c:
        c.send(get_request(extra=b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 150) for i in range(8))))
        check_refusal(c, 431, "request-header-fields-too-large")
    # under the limit is fine
    r = fetch(small.port, get_request(extra=b"X-Big: " + b"a" * 600 + b"\r\n"))
    assert r.status == 200


def test_header_too_large_431_before_head_ends(small):
    """The limit is enforced while the head streams in: the 431 comes
    without the client ever finishing its head."""
    with RawClient(small.port) as c:
        c.send(b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nX-Endless: ")
        for _ in range(20):
            try:
                c.send(b"z" * 100)
            except (BrokenPipeError, ConnectionResetError):
                break
        check_refusal(c, 431, "request-header-fields-too-large")


def test_uri_too_long_414(small):
    with RawClient(small.port) as c:
        c.send(get_request("/hello/v1/" + "u" * 300))
        check_refusal(c, 414, "uri-too-long")
    with RawClient(small.port) as c:
        c.send(get_request("/hello/v1/greetings?" + "q=1&" * 70))
        check_refusal(c, 414, "uri-too-long")
    r = fetch(small.port, get_request("/hello/v1/greetings/" + "l" * 200))
    assert r.status == 200


def test_too_many_headers_431(small):
    nine = b"".join(b"X-N%d: v\r\n" % i for i in range(9))
    r = fetch(small.port, get_request(extra=nine))  # Host + 9 = 10: the maximum
    assert r.status == 200
    with RawClient(small.port) as c:
        c.send(get_request(extra=nine + b"X-Eleventh: v\r\n"))
        check_refusal(c, 431, "request-header-fields-too-large")


def test_body_over_limit_content_length_413_before_body(small):
    with RawClient(small.port) as c:
        # only the head: the server must answer without waiting for the body
        c.send(b"POST /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n")
        t0 = time.time()
        check_refusal(c, 413, "payload-too-large")
        assert time.time() - t0 < 3
    with RawClient(small.port) as c:
        c.send(b"POST /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n")
        check_refusal(c, 413, "payload-too-large")
    # exactly the limit is accepted
    with RawClient(small.port) as c:
        c.send(b"POST /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" + b"b" * 100)
        assert c.read_response().status == 201


def test_body_over_limit_chunked_413_while_streaming(small):
    with RawClient(small.port) as c:
        c.send(b"POST /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        sent = 0
        got = b""
        for _ in range(20):
            try:
                c.send(b"20\r\n" + b"c" * 32 + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 32
            # past the limit, give the server time to answer before sending more
            got, _ = c.read_until_close(timeout=0.6 if sent > 100 else 0.05)
            if got:
                break
        c.buf = got
        assert got, "no answer while streaming %d body bytes" % sent
        assert sent <= 160, "the 413 came late, after %d bytes" % sent
        check_refusal(c, 413, "payload-too-large")
    # a chunked body within the limit is accepted
    with RawClient(small.port) as c:
        c.send(b"POST /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"32\r\n" + b"d" * 50 + b"\r\n32\r\n" + b"d" * 50 + b"\r\n0\r\n\r\n")
        assert c.read_response().status == 201


def test_node_still_serves_after_limits(small):
    r = requests.get(small.url("/hello/v1/greetings"), timeout=5)
    assert r.status_code == 200


# ---------------------------------------------------------------- timeouts

def slowloris(port, result, stop):
    """A head that never ends: one byte every 0.2 s."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setblocking(False)
    t0 = time.time()
    data = b""
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n")
        while time.time() - t0 < 6 and not stop.is_set():
            try:
                b = s.recv(65536)
                if not b:
                    result["closed_after"] = time.time() - t0
                    break
                data += b
                result.setdefault("answered_after", time.time() - t0)
                continue
            except BlockingIOError:
                pass
            except ConnectionResetError:
                result["closed_after"] = time.time() - t0
                break
            if "answered_after" not in result:
                try:
                    s.send(b"X")
                except (BrokenPipeError, ConnectionResetError):
                    pass
            time.sleep(0.2 if "answered_after" not in result else 0.02)
    finally:
        result["data"] = data
        s.close()


def test_header_timeout_slowloris_408_others_served(portico_factory):
    n = portico_factory(node_config(limits="  header_timeout: 1s\n", workers=1))
    stop = threading.Event()
    results = [{} for _ in range(3)]
    threads = [threading.Thread(target=slowloris, args=(n.port, r, stop)) for r in results]
    for t in threads:
        t.start()
    ok = failed = 0
    try:
        t_end = time.time() + 1.5
        while time.time() < t_end:  # other clients during the attack, on the same worker
            try:
                r = requests.get(n.url("/hello/v1/greetings"), timeout=2)
                ok += r.status_code == 200
                failed += r.status_code != 200
            except requests.RequestException:
                failed += 1
            time.sleep(0.05)
    finally:
        for t in threads:
            t.join(10)
        stop.set()
    assert failed == 0 and ok >= 5
    for res in results:
        assert res["data"].startswith(b"HTTP/1.1 408 Request Timeout\r\n"), res
        assert b"Connection: close\r\n" in res["data"]
        assert b"urn:portico:problem:request-timeout" in res["data"]
        assert 0.7 <= res["answered_after"] <= 2.5, res
        assert "closed_after" in res and res["closed_after"] <= 3.0, res


def test_header_timeout_counts_from_first_byte_not_per_read(portico_factory):
    """Steady progress does not extend the head deadline."""
    n = portico_factory(node_config(limits="  header_timeout: 1s\n", workers=1))
    with RawClient(n.port) as c:
        t0 = time.time()
        c.send(b"GET /hello/v1/greetings HTTP/1.1\r\n")
        answered = None
        for _ in range(15):
            time.sleep(0.15)
            try:
                c.send(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            got, _ = c.read_until_close(timeout=0.01)
            if got:
                c.buf = got
                answered = time.time() - t0
                break
        assert answered is not None and answered < 2.2
        r = c.read_response()
        assert r.status == 408


def test_body_timeout_408(portico_factory):
    n = portico_factory(node_config(limits="  body_timeout: 1s\n", workers=1))
    with RawClient(n.port, timeout=6) as c:
        c.send(b"POST /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab")
        t0 = time.time()
        got, closed = c.read_until_close(timeout=4)
        c.buf = got
        assert got, "no 408 %.1f s after the body stalled (body_timeout 1s)" % (time.time() - t0)
        r = check_refusal(c, 408, "request-timeout")
        assert b"body" in r.body


def test_body_timeout_408_chunked(portico_factory):
    n = portico_factory(node_config(limits="  body_timeout: 1s\n", workers=1))
    with RawClient(n.port, timeout=6) as c:
        c.send(b"POST /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nab")
        got, closed = c.read_until_close(timeout=4)
        c.buf = got
        assert got, "no 408 after the chunked body stalled (body_timeout 1s)"
        check_refusal(c, 408, "request-timeout")


def test_slow_but_steady_body_is_not_cut(portico_factory):
    """body_timeout is the longest gap between reads, not a total."""
    n = portico_factory(node_config(limits="  body_timeout: 1s\n", workers=1))
    with RawClient(n.port) as c:
        c.send(b"POST /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n")
        for b in b"abcdef":
            time.sleep(0.35)
            c.send(bytes([b]))
        r = c.read_response()
        assert r.status == 201


def test_keepalive_idle_timeout_closes(portico_factory):
    n = portico_factory(node_config(limits="  keepalive_timeout: 1s\n", workers=1))
    with RawClient(n.port) as c:
        c.send(get_request())
        assert c.read_response().status == 200
        t0 = time.time()
        rest, closed = c.read_until_close(timeout=4)
        elapsed = time.time() - t0
        assert closed and rest == b"", "idle keep-alive connection not closed"
        assert 0.5 <= elapsed <= 3.0, elapsed
    # requests within the timeout keep the connection
    with RawClient(n.port) as c:
        for _ in range(4):
            c.send(get_request())
            assert c.read_response().status == 200
            time.sleep(0.4)


def test_keepalive_timeout_zero_disables_keepalive(portico_factory):
    n = portico_factory(node_config(limits="  keepalive_timeout: 0\n", workers=1))
    with RawClient(n.port) as c:
        c.send(get_request() + get_request())
        r = c.read_response()
        assert r.status == 200
        assert r.header("Connection").lower() == "close"
        rest, closed = c.read_until_close(timeout=3)
        assert closed and rest == b""


def test_max_connections_per_worker(portico_factory):
    n = portico_factory(node_config(limits="  max_connections: 3\n", workers=1))
    held = [RawClient(n.port) for _ in range(3)]
    try:
        for c in held:
            c.send(get_request())
            assert c.read_response().status == 200
        for _ in range(2):
            with RawClient(n.port) as extra:
                data, closed = extra.read_until_close(timeout=3)
                assert closed, "the connection over the limit was kept open"
                head, _, body = data.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), data
                assert b"Content-Type: application/problem+json" in head
                assert b"Connection: close" in head
                assert re.search(rb"\r\nX-Request-Id: [0-9a-f]{32}\r\n", head + b"\r\n"), head
                cl = int([ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")][0]
                         .split(b":")[1])
                assert len(body) == cl, (cl, body)
                p = json.loads(body)
                assert p["status"] == 503
                assert p["type"] == "urn:portico:problem:too-many-connections"
        # the first three are unaffected
        for c in held:
            c.send(get_request("/hello/v1/greetings/fr"))
            assert c.read_response().status == 200
        # closing one makes room for a new connection
        held.pop().close()

        def admitted():
            try:
                r = fetch(n.port, get_request(), timeout=2)
                return r.status == 200
            except (EOFError, OSError, AssertionError):
                return False

        deadline = time.time() + 3
        while time.time() < deadline and not admitted():
            time.sleep(0.1)
        assert admitted()
    finally:
        for c in held:
            c.close()
