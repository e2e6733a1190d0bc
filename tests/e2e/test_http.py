"""HTTP/1.1 behaviour of a node over real sockets: keep-alive, pipelining,
request bodies, Expect, HEAD, connection management, Date, X-Request-Id,
problem responses, built-in endpoints, request targets and routing."""
import datetime
import email.utils
import http.client
import re
import time

import requests

from conftest import HELLO_API, RawClient, access_log, fetch, get_request

GREETINGS = b'{"greetings":["hello","bonjour"]}'
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_keepalive_http_client_reuses_one_socket(module_portico):
    conn = http.client.HTTPConnection("127.0.0.1", module_portico.port, timeout=5)
    try:
        conn.request("GET", "/hello/v1/greetings")
        r = conn.getresponse()
        assert r.status == 200 and r.read() == GREETINGS
        sock = conn.sock
        local = sock.getsockname()
        for path, status in [("/hello/v1/greetings/fr", 200), ("/nope", 404),
                             ("/_portico/health", 200), ("/hello/v1/greetings", 200)]:
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            assert r.status == status
            assert r.getheader("Connection") is None  # keep-alive is the HTTP/1.1 default
            assert conn.sock is sock and sock.getsockname() == local, "a new connection was opened"
        conn.request("POST", "/hello/v1/greetings", body=b'{"x":1}',
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 201 and r.read() == b'{"created":true}'
        assert conn.sock is sock
    finally:
        conn.close()


def test_keepalive_requests_session_one_connection(portico):
    with requests.Session() as s:
        for _ in range(5):
            r = s.get(portico.url("/hello/v1/greetings"), timeout=5)
            assert r.status_code == 200
            assert r.content == GREETINGS
    clients = {e["client"] for e in access_log(portico, 5)}
    assert len(clients) == 1, "requests of one session came from %s" % clients


def test_pipelining_responses_in_order(module_portico):
    reqs = (b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nX-Request-Id: pipe-1\r\n\r\n"
            b"POST /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nX-Request-Id: pipe-2\r\n"
            b"Content-Length: 7\r\n\r\n{\"a\":1}"
            b"GET /missing HTTP/1.1\r\nHost: a\r\nX-Request-Id: pipe-3\r\n\r\n"
            b"GET /hello/v1/greetings/de HTTP/1.1\r\nHost: a\r\n\r\n"
            b"DELETE /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nX-Request-Id: pipe-5\r\n\r\n"
            b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\n\r\n")
    with RawClient(module_portico.port) as c:
        c.send(reqs)  # one send: the server sees them all at once
        rs = [c.read_response() for _ in range(6)]
        assert [r.status for r in rs] == [200, 201, 404, 200, 405, 200]
        ids = [r.header("X-Request-Id") for r in rs]
        assert ids[0] == "pipe-1" and ids[1] == "pipe-2" and ids[2] == "pipe-3" and ids[4] == "pipe-5"
        assert HEX32.match(ids[3]) and HEX32.match(ids[5]) and ids[3] != ids[5]
        assert rs[0].body == GREETINGS
        assert rs[1].body == b'{"created":true}'
        assert rs[2].json()["request_id"] == "pipe-3"
        assert rs[3].body == b'{"greeting":"hello"}'
        assert rs[4].json()["request_id"] == "pipe-5"
        # nothing more, and the connection is still usable
        c.send(get_request("/_portico/health"))
        assert c.read_response().status == 200


def test_pipelining_many_requests_split_across_sends(module_portico):
    one = get_request()
    data = one * 20
    with RawClient(module_portico.port) as c:
        # split in the middle of request heads
        for i in range(0, len(data), 37):
            c.send(data[i:i + 37])
        for _ in range(20):
            r = c.read_response()
            assert r.status == 200 and r.body == GREETINGS


def test_upgrade_is_ignored_and_connection_stays_http(module_portico):
    """An Upgrade request is answered as plain HTTP (RFC 9110 §7.8 lets a
    server ignore Upgrade) and the next pipelined request is still parsed."""
    with RawClient(module_portico.port) as c:
        c.send(b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
               b"Upgrade: websocket\r\n\r\n" + get_request("/hello/v1/greetings/fr"))
        first, second = c.read_response(), c.read_response()
        assert first.status == 200 and first.body == GREETINGS
        assert second.status == 200 and second.body == b'{"greeting":"hello"}'


def test_chunked_request_body_in_pieces(module_portico):
    with RawClient(module_portico.port) as c:
        c.send(b"POST /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
               b"Content-Type: application/json\r\n\r\n")
        body = b'{"name":"a chunked body, sent in pieces"}'
        stream = (b"4\r\n" + body[:4] + b"\r\n" + b"a;ext=1\r\n" + body[4:14] + b"\r\n" +
                  b"%x\r\n" % len(body[14:]) + body[14:] + b"\r\n0\r\n\r\n")
        for i in range(0, len(stream), 7):  # pieces cut anywhere, even inside sizes
            time.sleep(0.02)
            c.send(stream[i:i + 7])
        r = c.read_response()
        assert r.status == 201
        assert r.body == b'{"created":true}'
        # the connection stays usable after a chunked body
        c.send(get_request())
        assert c.read_response().status == 200


def test_chunked_request_body_with_trailers(module_portico):
    with RawClient(module_portico.port) as c:
        c.send(b"POST /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3\r\nabc\r\n0\r\nX-Trailer: yes\r\n\r\n" + get_request())
        assert c.read_response().status == 201
        assert c.read_response().status == 200


def test_content_length_body(module_portico):
    r = requests.post(module_portico.url("/hello/v1/greetings"), data=b"x" * 5000, timeout=5)
    assert r.status_code == 201
    assert r.json() == {"created": True}
    assert r.headers["Content-Type"] == "application/json"
    # body in several sends on a raw connection, then a pipelined request
    with RawClient(module_portico.port) as c:
        c.send(b"POST /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234")
        time.sleep(0.1)
        c.send(b"56789" + get_request())
        assert c.read_response().status == 201
        assert c.read_response().status == 200


def test_expect_100_continue(module_portico):
    body = b'{"name":"new"}'
    with RawClient(module_portico.port) as c:
        c.send(b"POST /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body))
        interim = c.read_response()
        assert interim.status == 100
        assert interim.raw == b"HTTP/1.1 100 Continue\r\n\r\n"
        data, closed = c.read_until_close(timeout=0.3)
        assert data == b"" and not closed, "nothing but 100 Continue before the body"
        c.send(body)
        r = c.read_response()
        assert r.status == 201 and r.body == b'{"created":true}'
        c.send(get_request())
        assert c.read_response().status == 200


def test_expect_unknown_is_417(module_portico):
    with RawClient(module_portico.port) as c:
        c.send(b"POST /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\n"
               b"Content-Length: 2\r\n\r\n")
        r = c.read_response()
        assert r.status == 417
        assert r.json()["type"] == "urn:portico:problem:expectation-failed"


def test_head_has_get_length_and_no_body(module_portico):
    get = fetch(module_portico.port, get_request())
    with RawClient(module_portico.port) as c:
        # the GET pipelined behind the HEAD proves that no body bytes follow the HEAD head
        c.send(b"HEAD /hello/v1/greetings HTTP/1.1\r\nHost: a\r\n\r\n" + get_request())
        h = c.read_response(head=True)
        assert h.status == 200
        assert h.header("Content-Length") == str(len(get.body))
        assert h.header("Transfer-Encoding") is None
        after = c.read_response()
        assert after.raw.startswith(b"HTTP/1.1 200 OK\r\n"), "HEAD response had body bytes: %r" % after.raw[:80]
        assert after.body == GREETINGS
    r = requests.head(module_portico.url("/hello/v1/greetings"), timeout=5)
    assert r.status_code == 200 and r.content == b""
    assert int(r.headers["Content-Length"]) == len(GREETINGS)


def test_connection_close_honoured(module_portico):
    with RawClient(module_portico.port) as c:
        c.send(b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        assert r.header("Connection").lower() == "close"
        rest, closed = c.read_until_close(timeout=3)
        assert rest == b"" and closed


def test_connection_close_stops_pipeline(module_portico):
    with RawClient(module_portico.port) as c:
        c.send(b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" +
               get_request("/hello/v1/greetings/it"))
        r = c.read_response()
        assert r.status == 200 and r.header("Connection").lower() == "close"
        rest, closed = c.read_until_close(timeout=3)
        assert rest == b"" and closed, "a request after Connection: close was answered"


def test_http10_without_keepalive_closes(module_portico):
    with RawClient(module_portico.port) as c:
        c.send(b"GET /hello/v1/greetings HTTP/1.0\r\n\r\n")  # no Host needed in 1.0
        r = c.read_response()
        assert r.status == 200 and r.body == GREETINGS
        assert r.version == "HTTP/1.1"
        assert r.header("Connection").lower() == "close"
        rest, closed = c.read_until_close(timeout=3)
        assert rest == b"" and closed


def test_http10_with_keepalive_stays_open(module_portico):
    req = b"GET /hello/v1/greetings HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    with RawClient(module_portico.port) as c:
        for _ in range(3):
            c.send(req)
            r = c.read_response()
            assert r.status == 200 and r.body == GREETINGS
            assert r.header("Connection").lower() == "keep-alive"
            assert r.header("Content-Length") == str(len(GREETINGS))
        rest, closed = c.read_until_close(timeout=0.3)
        assert rest == b"" and not closed


IMF_FIXDATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) "
                         r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4}) "
                         r"(\d{2}):(\d{2}):(\d{2}) GMT$")


def test_date_header_is_imf_fixdate(module_portico):
    before = datetime.datetime.now(datetime.timezone.utc)
    for req in (get_request(), get_request("/nope"), get_request("/_portico/health")):
        r = fetch(module_portico.port, req)
        dates = r.header_all("Date")
        assert len(dates) == 1
        assert IMF_FIXDATE.match(dates[0]), dates[0]
        d = email.utils.parsedate_to_datetime(dates[0])
        assert d.tzinfo is not None and d.utcoffset() == datetime.timedelta(0)
        assert d.strftime("%a, %d %b %Y %H:%M:%S GMT") == dates[0]  # weekday consistent
        assert abs((d - before).total_seconds()) < 10
        assert r.header("Server") == "portico"


def test_request_id_generated(module_portico):
    ids = set()
    with RawClient(module_portico.port) as c:
        for _ in range(10):
            c.send(get_request())
            rid = c.read_response().header("X-Request-Id")
            assert HEX32.match(rid), rid
            ids.add(rid)
    assert len(ids) == 10


def test_request_id_propagated_when_valid(module_portico):
    for rid in ["abc-123", "A.b_c:d-9", "x" * 64, "0"]:
        r = fetch(module_portico.port, get_request(extra=b"X-Request-Id: " + rid.encode() + b"\r\n"))
        assert r.status == 200
        assert r.header("X-Request-Id") == rid
    # also on error responses, in the problem body
    r = fetch(module_portico.port, get_request("/nope", extra=b"X-Request-Id: trace-77\r\n"))
    assert r.header("X-Request-Id") == "trace-77" and r.json()["request_id"] == "trace-77"


def test_request_id_replaced_when_invalid(module_portico):
    for rid in [b"abc 123", b"x" * 65, b"a/b", b"a\"b", b"caf\xc3\xa9", b"{id}"]:
        r = fetch(module_portico.port, get_request(extra=b"X-Request-Id: " + rid + b"\r\n"))
        assert r.status == 200
        got = r.header("X-Request-Id")
        assert HEX32.match(got), (rid, got)


def check_problem(r, status, slug, path=None):
    assert r.status == status
    assert r.header("Content-Type") == "application/problem+json"
    p = r.json()
    assert p["type"] == "urn:portico:problem:" + slug
    assert p["title"] == r.reason
    assert p["status"] == status
    assert p["request_id"] == r.header("X-Request-Id")
    if path is not None:
        assert p["instance"] == path
    assert int(r.header("Content-Length")) == len(r.body)
    return p


def test_404_problem(module_portico):
    r = fetch(module_portico.port, get_request("/no/such/api?q=1"))
    p = check_problem(r, 404, "not-found", "/no/such/api")
    assert r.reason == "Not Found"
    assert "detail" in p
    # below an existing base path too
    r = fetch(module_portico.port, get_request("/hello/v1/nothing-here"))
    check_problem(r, 404, "not-found", "/hello/v1/nothing-here")
    # a base path only matches at a segment boundary
    r = fetch(module_portico.port, get_request("/hello/v1x/greetings"))
    check_problem(r, 404, "not-found")


def test_405_problem_with_allow(module_portico):
    r = fetch(module_portico.port,
              b"DELETE /hello/v1/greetings HTTP/1.1\r\nHost: a\r\n\r\n")
    check_problem(r, 405, "method-not-allowed", "/hello/v1/greetings")
    allow = {m.strip() for m in r.header("Allow").split(",")}
    assert allow == {"GET", "HEAD", "POST"}
    r = fetch(module_portico.port,
              b"PUT /hello/v1/greetings/fr HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    check_problem(r, 405, "method-not-allowed")
    assert {m.strip() for m in r.header("Allow").split(",")} == {"GET", "HEAD"}
    r = fetch(module_portico.port, b"POST /_portico/health HTTP/1.1\r\nHost: a\r\n\r\n")
    check_problem(r, 405, "method-not-allowed")
    assert {m.strip() for m in r.header("Allow").split(",")} == {"GET", "HEAD"}


def test_builtin_health(module_portico):
    r = requests.get(module_portico.url("/_portico/health"), timeout=5)
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["Cache-Control"] == "no-store"
    r = requests.head(module_portico.url("/_portico/health"), timeout=5)
    assert r.status_code == 200 and r.content == b""


def test_builtin_ready(module_portico):
    r = requests.get(module_portico.url("/_portico/ready"), timeout=5)
    assert r.status_code == 200
    j = r.json()
    assert j["status"] == "ready" and j["generation"] == 1 and j["apis"] == 1


def test_builtin_unknown_is_404(module_portico):
    r = fetch(module_portico.port, get_request("/_portico/nothing"))
    check_problem(r, 404, "not-found", "/_portico/nothing")


SHOP_API = """
name: shop
base_path: /shop
kind: service
title: Shop
version: "1"
routes:
  - method: GET
    path: /items
    respond: {body: shop-items}
  - method: GET
    path: /v2/items
    respond: {body: shop-v2-items-in-shop-api}
  - method: GET
    path: /v2/other
    respond: {body: shop-v2-other}
"""

SHOP_V2_API = """
name: shop-v2
base_path: /shop/v2
kind: service
title: Shop v2
version: "2.0"
routes:
  - method: GET
    path: /items
    respond: {body: v2-items}
  - method: GET
    path: /items/{id}
    name: getItem
    respond: {body: v2-item-param}
  - method: GET
    path: /items/special
    respond: {body: v2-item-special}
  - method: GET
    path: /items/{id}/reviews
    respond: {body: v2-item-reviews}
  - method: GET
    path: /items/special/info
    respond: {body: v2-special-info}
  - method: "*"
    path: /any
    respond: {body: any-method}
  - method: GET
    path: /
    respond: {body: v2-root}
"""


def test_builtin_apis_lists_every_api(portico_factory):
    n = portico_factory(apis={"hello.yaml": HELLO_API, "shop.yaml": SHOP_API,
                              "shop2.yaml": SHOP_V2_API})
    r = requests.get(n.url("/_portico/apis"), timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    j = r.json()
    assert j["generation"] == 1
    by_name = {a["name"]: a for a in j["apis"]}
    assert set(by_name) == {"hello", "shop", "shop-v2"}
    assert by_name["hello"]["base_path"] == "/hello/v1"
    assert by_name["shop"]["base_path"] == "/shop"
    assert by_name["shop-v2"]["base_path"] == "/shop/v2"
    assert by_name["shop-v2"]["version"] == "2.0" and by_name["shop-v2"]["title"] == "Shop v2"
    assert by_name["shop-v2"]["routes"] == 7
    assert by_name["hello"]["kind"] == "service"
    assert requests.get(n.url("/_portico/ready"), timeout=5).json()["apis"] == 3


def test_absolute_form_target(module_portico):
    r = fetch(module_portico.port,
              b"GET http://example/hello/v1/greetings HTTP/1.1\r\nHost: example\r\n\r\n")
    assert r.status == 200 and r.body == GREETINGS
    r = fetch(module_portico.port,
              b"GET http://example:8080/hello/v1/greetings/fr?x=1 HTTP/1.1\r\nHost: other\r\n\r\n")
    assert r.status == 200 and r.body == b'{"greeting":"hello"}'
    r = fetch(module_portico.port, b"GET http://example/nope HTTP/1.1\r\nHost: example\r\n\r\n")
    check_problem(r, 404, "not-found", "/nope")


def test_options_asterisk(module_portico):
    with RawClient(module_portico.port) as c:
        c.send(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n" + get_request())
        r = c.read_response()
        assert r.status == 204
        assert r.body == b""
        assert r.header("Content-Length") is None
        allow = {m.strip() for m in r.header("Allow").split(",")}
        assert {"GET", "HEAD", "POST", "OPTIONS"} <= allow
        assert c.read_response().status == 200  # no body bytes after the 204


def test_asterisk_only_for_options(module_portico):
    with RawClient(module_portico.port) as c:
        c.send(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n")
        r = c.read_response()
        assert r.status == 400


def test_routing_longest_base_path_and_static_before_param(portico_factory):
    n = portico_factory(apis={"shop.yaml": SHOP_API, "shop2.yaml": SHOP_V2_API})
    port = n.port

    def body(path, method="GET"):
        r = fetch(port, method.encode() + b" " + path.encode() + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        return r.status, r.body

    # longest base path wins, even though /shop has a /v2/items route
    assert body("/shop/v2/items") == (200, b"v2-items")
    assert body("/shop/items") == (200, b"shop-items")
    # /shop/v2 has no /other route: the longer base path still wins (no fallback)
    assert body("/shop/v2/other")[0] == 404
    assert body("/shop/v2") == (200, b"v2-root")
    assert body("/shop/v2/") == (200, b"v2-root")
    # base paths match whole segments only
    assert body("/shop/v2x/items")[0] == 404
    assert body("/shopx/items")[0] == 404
    # a static segment beats a parameter
    assert body("/shop/v2/items/special") == (200, b"v2-item-special")
    assert body("/shop/v2/items/42") == (200, b"v2-item-param")
    assert body("/shop/v2/items/specialx") == (200, b"v2-item-param")
    # backtracking: the static branch fails deeper, the parameter branch matches
    assert body("/shop/v2/items/special/reviews") == (200, b"v2-item-reviews")
    assert body("/shop/v2/items/special/info") == (200, b"v2-special-info")
    assert body("/shop/v2/items/7/reviews") == (200, b"v2-item-reviews")
    assert body("/shop/v2/items/7/info")[0] == 404
    # method "*" accepts any method
    assert body("/shop/v2/any", "DELETE") == (200, b"any-method")
    assert body("/shop/v2/any", "PATCH") == (200, b"any-method")
    # the query string does not take part in routing
    assert body("/shop/v2/items/special?x=/y") == (200, b"v2-item-special")
    entries = access_log(n, 1)
    assert any(e.get("route") == "getItem" and e.get("api") == "shop-v2" for e in entries)

