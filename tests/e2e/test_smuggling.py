"""Request smuggling and malformed requests: each shape is refused with a
problem response (400, or 505 for unknown HTTP versions) and the connection
is closed, so that nothing sent after it can be read as another request.
After each refusal the node still serves a fresh connection."""
import pytest

from conftest import RawClient, fetch, get_request

POST = b"POST /hello/v1/greetings HTTP/1.1\r\nHost: a\r\n"
# Appended to every shape: if the server misreads the framing, this request
# (or the tail of the body) would be answered as a second request.
SMUGGLED = b"GET /hello/v1/greetings/smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

CASES = {
    # framing
    "cl-and-te": POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te-and-cl": POST + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "two-content-lengths-differing": POST + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "two-content-lengths-equal": POST + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    "content-length-list": POST + b"Content-Length: 5, 5\r\n\r\nhello",
    "content-length-negative": POST + b"Content-Length: -1\r\n\r\n",
    "content-length-plus": POST + b"Content-Length: +5\r\n\r\nhello",
    "content-length-hex": POST + b"Content-Length: 0x5\r\n\r\nhello",
    "te-gzip": POST + b"Transfer-Encoding: gzip\r\n\r\n",
    "te-identity": POST + b"Transfer-Encoding: identity\r\n\r\n",
    "te-chunked-then-gzip": POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "te-gzip-then-chunked": POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "te-xchunked": POST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "te-chunked-suffix": POST + b"Transfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n",
    "two-te-headers": POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two-te-headers-gzip": POST + b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te-on-http10": b"POST /hello/v1/greetings HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te-space-before-colon": POST + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    # header syntax
    "obs-fold-space": b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
    "obs-fold-tab": b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n",
    "obs-fold-after-empty-value": b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nX-A:\r\n b\r\n\r\n",
    "obs-fold-te": POST + b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
    "bare-lf": b"GET /hello/v1/greetings HTTP/1.1\nHost: a\n\n",
    "bare-lf-one-header": b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n",
    "bare-cr-in-value": b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n",
    "nul-in-value": b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n",
    "ctl-01-in-value": b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n",
    "ctl-1f-in-value": b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nX-A: b\x1fc\r\n\r\n",
    "del-in-value": b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nX-A: b\x7fc\r\n\r\n",
    "space-before-colon": b"GET /hello/v1/greetings HTTP/1.1\r\nHost : a\r\n\r\n",
    "tab-before-colon": b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n",
    "space-in-header-name": b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n",
    "header-without-colon": b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n",
    "empty-header-name": b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n",
    # Host
    "missing-host": b"GET /hello/v1/greetings HTTP/1.1\r\n\r\n",
    "two-hosts": b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "two-equal-hosts": b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
    "host-with-space": b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a b\r\n\r\n",
    "host-with-slash": b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a/b\r\n\r\n",
    "host-with-userinfo": b"GET /hello/v1/greetings HTTP/1.1\r\nHost: u@a\r\n\r\n",
    "host-bad-port": b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a:8x\r\n\r\n",
    "host-empty": b"GET /hello/v1/greetings HTTP/1.1\r\nHost: \r\n\r\n",
    "absolute-form-userinfo": b"GET http://u@a/hello/v1/greetings HTTP/1.1\r\nHost: a\r\n\r\n",
    # request line
    "method-with-at": b"G@T /hello/v1/greetings HTTP/1.1\r\nHost: a\r\n\r\n",
    "method-lowercase": b"get /hello/v1/greetings HTTP/1.1\r\nHost: a\r\n\r\n",
    "method-unknown": b"FROB /hello/v1/greetings HTTP/1.1\r\nHost: a\r\n\r\n",
    "space-in-target": b"GET /hello/v1/greet ings HTTP/1.1\r\nHost: a\r\n\r\n",
    "backslash-in-target": b"GET /hello/v1\\greetings HTTP/1.1\r\nHost: a\r\n\r\n",
    "ctl-in-target": b"GET /hello/v1/gr\x01eetings HTTP/1.1\r\nHost: a\r\n\r\n",
    "relative-target": b"GET hello/v1/greetings HTTP/1.1\r\nHost: a\r\n\r\n",
    "connect-authority-form": b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
    "version-garbage": b"GET /hello/v1/greetings HTTP/x\r\nHost: a\r\n\r\n",
    "version-three-digits": b"GET /hello/v1/greetings HTTP/1.10\r\nHost: a\r\n\r\n",
    # dot segments (raw and percent-encoded)
    "dot-dot": b"GET /hello/v1/../x HTTP/1.1\r\nHost: a\r\n\r\n",
    "dot-dot-at-end": b"GET /hello/v1/greetings/.. HTTP/1.1\r\nHost: a\r\n\r\n",
    "dot": b"GET /hello/v1/./greetings HTTP/1.1\r\nHost: a\r\n\r\n",
    "pct-dot-dot-lower": b"GET /hello/v1/%2e%2e/x HTTP/1.1\r\nHost: a\r\n\r\n",
    "pct-dot-dot-upper": b"GET /hello/v1/%2E%2E/x HTTP/1.1\r\nHost: a\r\n\r\n",
    "pct-dot-mixed": b"GET /hello/v1/.%2e/x HTTP/1.1\r\nHost: a\r\n\r\n",
    "pct-dot": b"GET /hello/v1/%2e/greetings HTTP/1.1\r\nHost: a\r\n\r\n",
    "absolute-form-dot-dot": b"GET http://a/hello/v1/../x HTTP/1.1\r\nHost: a\r\n\r\n",
    # chunk framing
    "chunk-size-overflow": POST + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
    "chunk-size-2^64": POST + b"Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\nabc\r\n0\r\n\r\n",
    "chunk-size-not-hex": POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "chunk-size-negative": POST + b"Transfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n",
    "chunk-size-0x": POST + b"Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
    "chunk-size-trailing-space": POST + b"Transfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n",
    "chunk-size-empty": POST + b"Transfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n",
    "chunk-data-too-long": POST + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
    "chunk-bare-lf": POST + b"Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
}

EXPECTED_STATUS = {
    "version-garbage": 400,
    "version-three-digits": 400,
}


def assert_refused(port, data, status=400):
    with RawClient(port, timeout=5) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.read_response()
        assert r.status == status, "%r answered %r" % (data, r.raw)
        assert r.header("Content-Type") == "application/problem+json"
        p = r.json()
        assert p["status"] == status
        assert p["request_id"] == r.header("X-Request-Id")
        assert r.header("Connection").lower() == "close"
        rest, closed = c.read_until_close(timeout=4)
        assert closed, "the server kept the connection open after %r" % data
        assert rest == b"", "a second response followed the refusal: %r" % rest
    return r, p


def assert_healthy(port):
    r = fetch(port, get_request())
    assert r.status == 200, r.raw


@pytest.mark.parametrize("name", sorted(CASES))
def test_refused_and_closed(module_portico, name):
    status = EXPECTED_STATUS.get(name, 400)
    r, p = assert_refused(module_portico.port, CASES[name] + SMUGGLED, status)
    assert p["type"] == "urn:portico:problem:bad-request"
    assert r.reason == "Bad Request"
    assert_healthy(module_portico.port)


@pytest.mark.parametrize("version", [b"HTTP/1.2", b"HTTP/2.0", b"HTTP/3.0", b"HTTP/0.9"])
def test_unknown_version_is_505(module_portico, version):
    r, p = assert_refused(module_portico.port,
                          b"GET /hello/v1/greetings " + version + b"\r\nHost: a\r\n\r\n", 505)
    assert p["type"] == "urn:portico:problem:http-version-not-supported"
    assert r.reason == "HTTP Version Not Supported"
    assert_healthy(module_portico.port)


def test_refusal_in_a_pipeline_stops_it(module_portico):
    """A good request, a bad one, then a good one: the first is answered, the
    second refused, and the third never read."""
    with RawClient(module_portico.port) as c:
        c.send(get_request() + CASES["cl-and-te"] + get_request("/hello/v1/greetings/fr"))
        assert c.read_response().status == 200
        bad = c.read_response()
        assert bad.status == 400 and bad.header("Connection").lower() == "close"
        rest, closed = c.read_until_close(timeout=4)
        assert closed and rest == b""
    assert_healthy(module_portico.port)


def test_smuggled_body_is_not_a_request(module_portico):
    """CL.TE classic: a front end that used Content-Length would forward the
    'G' as the start of the next request; we must answer once and close."""
    data = (POST + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG" +
            b"ET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\n\r\n")
    with RawClient(module_portico.port) as c:
        c.send(data)
        r = c.read_response()
        assert r.status == 400
        rest, closed = c.read_until_close(timeout=4)
        assert closed and b"HTTP/1.1" not in rest


def test_accepted_edge_cases_stay_open(module_portico):
    """Valid but unusual framing is not refused: chunk extensions,
    case-insensitive "chunked", OWS around values, Content-Length: 0."""
    with RawClient(module_portico.port) as c:
        c.send(POST + b"Transfer-Encoding: chunked\r\n\r\n3;name=value\r\nabc\r\n0\r\n\r\n")
        assert c.read_response().status == 201
        c.send(POST + b"Transfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        assert c.read_response().status == 201
        c.send(POST + b"Content-Length:   3  \r\n\r\nabc")
        assert c.read_response().status == 201
        c.send(POST + b"Content-Length: 0\r\n\r\n")
        assert c.read_response().status == 201
        c.send(b"GET /hello/v1/greetings HTTP/1.1\r\nhOsT: a:8080\r\nX-Tab:\tv\t\r\n\r\n")
        assert c.read_response().status == 200
        c.send(b"GET /hello/v1/greetings HTTP/1.1\r\nHost: [::1]:80\r\n\r\n")
        assert c.read_response().status == 200
        c.send(b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\nX-Obs: caf\xc3\xa9\r\n\r\n")
        assert c.read_response().status == 200


@pytest.mark.parametrize("line", [b"X-Empty:", b"X-Empty: ", b"X-Empty:\t"])
def test_empty_header_value_is_accepted(module_portico, line):
    """field-value may be empty (RFC 9110 5.5): not an obs-fold, not refused."""
    with RawClient(module_portico.port) as c:
        c.send(b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\n" + line + b"\r\nX-Next: 1\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r.raw
        c.send(b"GET /hello/v1/greetings HTTP/1.1\r\nHost: a\r\n" + line + b"\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r.raw
