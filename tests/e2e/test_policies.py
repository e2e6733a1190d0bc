"""
The policy chain (issue 7): `policies:` node-wide, per API and per route
(narrower replaces wider), in the documented order. ip_filter: allow/deny
lists of IPv4/IPv6 addresses and blocks, the client's address taken from
X-Forwarded-For only behind trusted proxies (rightmost untrusted). rate_limit:
a shared lock-free token bucket (or one per client), 429 with Retry-After and
RateLimit-* headers, or 503 as the reference answers; its accuracy is
measured with wrk.
"""
import re
import shutil
import subprocess

import pytest
import requests

from conftest import BIN, node_config

API = '''
name: hello
base_path: /hello
kind: service
title: Hello
version: "1"
policies:
  ip_filter: {deny: [10.9.0.0/16, "2001:db8:bad::/48"]}
routes:
  - method: GET
    path: /open
    respond: {body: open}
  - method: GET
    path: /inside
    policies:
      ip_filter: {allow: [10.0.0.0/8, "2001:db8::/32"]}
    respond: {body: inside}
  - method: GET
    path: /limited
    policies:
      rate_limit: {rate: 2/s, burst: 3}
    respond: {body: limited}
  - method: GET
    path: /per-client
    policies:
      rate_limit: {rate: 1/m, burst: 2, key: client}
    respond: {body: per-client}
  - method: GET
    path: /compat
    policies:
      rate_limit: {rate: 1/h, burst: 1, status: 503}
    respond: {body: compat}
  - method: GET
    path: /multi
    policies:
      rate_limit: [{rate: 1/h, burst: 3}, {rate: 1/h, burst: 2, key: client}]
    respond: {body: multi}
  - method: GET
    path: /fast
    policies:
      rate_limit: {rate: 1000/s, burst: 50}
    respond: {body: fast}
'''


@pytest.fixture
def node(portico_factory):
    return portico_factory(node_config(extra="trusted_proxies: [127.0.0.1]\n"
                                       "policies:\n  ip_filter: {deny: [192.0.2.0/24]}\n"),
                           {"hello.yaml": API})


def get(node, path, xff=None):
    return requests.get(node.url(path), timeout=10,
                        headers={"X-Forwarded-For": xff} if xff else {})


def test_ip_filter_deny_allow_and_forwarded_chain(node):
    assert get(node, "/hello/open").status_code == 200
    r = get(node, "/hello/open", "10.9.1.1")
    assert r.status_code == 403 and r.json()["type"].endswith("forbidden-address"), r.text
    assert "10.9" not in r.text  # nothing about what matched
    assert get(node, "/hello/open", "10.8.1.1").status_code == 200
    # IPv6, and the rightmost address that is not a trusted proxy
    assert get(node, "/hello/open", "2001:db8:bad::1").status_code == 403
    assert get(node, "/hello/open", "2001:db8:bad::1, 127.0.0.1").status_code == 403
    assert get(node, "/hello/open", "10.9.1.1, 10.8.1.1").status_code == 200
    assert get(node, "/hello/open", "[2001:db8:bad::7]:4711").status_code == 403
    # the route's ip_filter replaces the API's: allow only 10/8 and 2001:db8::/32
    assert get(node, "/hello/inside").status_code == 403
    assert get(node, "/hello/inside", "10.9.1.1").status_code == 200
    assert get(node, "/hello/inside", "2001:db8::5").status_code == 200
    assert get(node, "/hello/inside", "172.16.0.1").status_code == 403
    # the node's policy holds where no API matches, before the 404
    assert get(node, "/nowhere", "192.0.2.9").status_code == 403
    assert get(node, "/nowhere").status_code == 404
    # the API's policies replace the node's ip_filter for its routes
    assert get(node, "/hello/open", "192.0.2.9").status_code == 200


def test_standard_forwarded_header(node):
    """RFC 7239 Forwarded, preferred to X-Forwarded-For when a trusted proxy
    sends it: the for= of each element, quoted IPv6 with a port, rightmost
    untrusted; obfuscated or malformed values believe nothing further."""
    def fwd(value, xff=None):
        h = {"Forwarded": value}
        if xff:
            h["X-Forwarded-For"] = xff
        return requests.get(node.url("/hello/open"), headers=h, timeout=10).status_code
    assert fwd("for=10.9.1.1") == 403
    assert fwd('for="[2001:db8:bad::1]:4711";proto=https') == 403
    assert fwd("for=10.9.1.1;by=10.0.0.1, for=127.0.0.1") == 403
    assert fwd("for=10.9.1.1, for=10.8.1.1") == 200
    assert fwd('for=10.9.1.1, for="_hidden"') == 200   # obfuscated: stop at the peer
    assert fwd('for="10.9.1.1') == 200                 # unterminated quote: not believed
    assert fwd("for=10.8.1.1", xff="10.9.1.1") == 200   # Forwarded wins over X-Forwarded-For
    assert fwd(", ".join(["for=127.0.0.1"] * 100)) == 200  # absurd chains are not believed


def test_forwarded_for_ignored_from_untrusted_peers(portico_factory):
    n = portico_factory(node_config(), {"hello.yaml": API})  # no trusted_proxies
    assert get(n, "/hello/open", "10.9.1.1").status_code == 200
    assert get(n, "/hello/inside", "10.1.1.1").status_code == 403  # 127.0.0.1 is not in 10/8


def test_ipv6_peer(portico_factory):
    n = portico_factory(node_config(listen="  - address: '[::1]:0'\n    name: public\n",
                                    extra="policies:\n  ip_filter: {deny: ['::1']}\n"),
                        {"hello.yaml": API.replace("10.9.0.0/16", "10.7.0.0/16")})
    port = n.ports["public"]
    r = requests.get("http://[::1]:%d/nowhere" % port, timeout=10)
    assert r.status_code == 403, r.text


def test_rate_limit_answers_429_with_headers(node):
    answers = [get(node, "/hello/limited") for _ in range(6)]
    codes = [r.status_code for r in answers]
    assert codes[:3] == [200, 200, 200] and 429 in codes[3:], codes
    # allowed requests say how much is left (draft-ietf-httpapi-ratelimit-headers)
    assert [r.headers["RateLimit-Limit"] for r in answers[:3]] == ["3", "3", "3"]
    assert [int(r.headers["RateLimit-Remaining"]) for r in answers[:3]][0] == 2
    rem = [int(r.headers["RateLimit-Remaining"]) for r in answers[:3]]
    assert rem == sorted(rem, reverse=True) and rem[-1] <= 1, rem
    assert all(1 <= int(r.headers["RateLimit-Reset"]) <= 2 for r in answers[:3])
    r = get(node, "/hello/limited")
    assert r.status_code == 429
    assert r.headers["RateLimit-Limit"] == "3" and r.headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(r.headers["Retry-After"]) <= 1 and r.headers["RateLimit-Reset"] == "1"
    assert r.headers["Content-Type"] == "application/problem+json"
    # other routes are not limited by it
    assert get(node, "/hello/open").status_code == 200


def test_several_rate_limits_at_once(node):
    """A list of limits: a request takes a token from each or from none (a
    refusal by one gives back what the others took)."""
    codes_a = [get(node, "/hello/multi", "10.1.0.1").status_code for _ in range(3)]
    assert codes_a == [200, 200, 429], codes_a  # the client's limit (2)
    codes_b = [get(node, "/hello/multi", "10.1.0.2").status_code for _ in range(2)]
    assert codes_b == [200, 429], codes_b         # the scope's limit (3): 2 + 1
    r = get(node, "/hello/multi", "10.1.0.3")
    assert r.status_code == 429 and r.headers["RateLimit-Limit"] == "3", r.headers


def test_rate_limit_per_client_and_compat_status(node):
    for ip in ("10.1.0.1", "10.1.0.2"):
        codes = [get(node, "/hello/per-client", ip).status_code for _ in range(3)]
        assert codes == [200, 200, 429], (ip, codes)
    r = get(node, "/hello/per-client", "10.1.0.1")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 1
    assert get(node, "/hello/compat").status_code == 200
    r = get(node, "/hello/compat")
    assert r.status_code == 503 and "Retry-After" in r.headers


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is installed by scripts/setup.sh")
def test_rate_limit_accuracy_under_load(node):
    """wrk far above the limit (1000/s, burst 50) for 10 s: the requests let
    through are the configured rate (plus the full bucket at the start)
    within 1%."""
    p = subprocess.run(["wrk", "-t2", "-c32", "-d10s", node.url("/hello/fast")],
                       capture_output=True, text=True, timeout=60)
    out = p.stdout
    total = int(re.search(r"(\d+) requests in ([\d.]+)(m?s)", out).group(1))
    m = re.search(r"requests in ([\d.]+)(m?s)", out)
    secs = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
    refused = int(re.search(r"Non-2xx or 3xx responses: (\d+)", out).group(1))
    ok = total - refused
    expected = 1000 * secs + 50
    print("\nrate_limit 1000/s: %d of %d requests let through in %.2f s (%.2f%% off)"
          % (ok, total, secs, 100 * (ok - expected) / expected))
    assert total > 3 * expected, out  # the load is well above the limit
    assert abs(ok - expected) <= 0.01 * expected + 1, out


@pytest.mark.parametrize("policies,message", [
    ("  nope: {}\n", "unknown policy"),
    ("  rate_limit: {rate: fast}\n", "expected a rate like 100/s"),
    ("  rate_limit: {burst: 3}\n", "required key is missing"),
    ("  rate_limit: {rate: 1/s, key: consumer}\n", "expected scope"),
    ("  rate_limit: [{rate: 1/s}, 5]\n", "expected a mapping"),
    ("  ip_filter: {deny: [10.0.0.1/8]}\n", "host bits set"),
    ("  ip_filter: {}\n", "give allow, deny or both"),
])
def test_policy_configuration_errors(tmp_path, policies, message):
    f = tmp_path / "bad.yaml"
    f.write_text(API.replace("policies:\n  ip_filter: {deny: [10.9.0.0/16, \"2001:db8:bad::/48\"]}\n",
                             "policies:\n" + policies))
    p = subprocess.run([BIN, "validate", str(f)], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and message in p.stderr + p.stdout, p.stderr
    assert re.search(r"bad\.yaml:\d+: policies", p.stderr + p.stdout), p.stderr


LIMITS_API = '''
name: lim
base_path: /lim
kind: proxy
title: Limits
version: "1"
policies:
  concurrency: {max: 2}
upstream:
  targets:
    - url: %s
routes: []
'''


@pytest.fixture
def slow_upstream():
    """An HTTP server answering every request after 1 s (threads: many at once)."""
    import http.server
    import threading
    import time

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            time.sleep(1)
            self.send_response(200)
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"slow")

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield "http://127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def test_concurrency_limit_holds_under_a_burst(portico_factory, slow_upstream):
    import concurrent.futures
    api = LIMITS_API.replace("routes: []\n", "") % slow_upstream
    n = portico_factory(node_config(), {"lim.yaml": api})
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        codes = sorted(ex.map(lambda _: requests.get(n.url("/lim/x"), timeout=10).status_code,
                              range(8)))
    assert codes.count(200) == 2 and codes.count(503) == 6, codes
    # the slots are given back when the requests end
    assert requests.get(n.url("/lim/x"), timeout=10).status_code == 200


def test_body_limit_answers_413_before_the_body(portico_factory):
    import socket
    api = API.replace('''  - method: GET
    path: /open
    respond: {body: open}''', '''  - method: GET
    path: /open
    respond: {body: open}
  - method: POST
    path: /small
    policies:
      body_limit: {max: 16}
    respond: {body: ok}''')
    n = portico_factory(node_config(), {"hello.yaml": api})
    assert requests.post(n.url("/hello/small"), data=b"x" * 16, timeout=10).status_code == 200
    # headers only, announcing a large body: the answer comes without it
    s = socket.create_connection(("127.0.0.1", n.port), timeout=10)
    s.sendall(b"POST /hello/small HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n")
    head = s.recv(4096)
    s.close()
    assert head.startswith(b"HTTP/1.1 413"), head
    # chunked: cut off once past the limit
    r = requests.post(n.url("/hello/small"), data=iter([b"x" * 10, b"y" * 10]), timeout=10)
    assert r.status_code == 413, r.text
    # the node's other routes are unaffected
    assert requests.get(n.url("/hello/open"), timeout=10).status_code == 200


CORS_API = '''
name: shop
base_path: /shop
kind: service
title: Shop
version: "1"
policies:
  cors:
    origins: ["https://app.example.com", "https://*.example.org"]
    methods: [GET, POST]
    headers: [Content-Type, X-API-Key]
    expose_headers: [X-Request-Id]
    credentials: true
    max_age: 10m
  auth: {methods: [api_key]}
routes:
  - method: GET
    path: /items
    respond: {body: items}
'''

PUBLIC_CORS_API = '''
name: pub
base_path: /pub
kind: service
title: Public
version: "1"
policies:
  cors: {origins: ["*"]}
routes:
  - method: GET
    path: /data
    respond: {body: data}
'''


def test_cors_preflight_without_credentials_and_refusals(portico_factory):
    n = portico_factory(node_config(), {"shop.yaml": CORS_API, "pub.yaml": PUBLIC_CORS_API})
    pre = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "content-type, x-api-key"}
    r = requests.options(n.url("/shop/items"), headers=pre, timeout=10)
    assert r.status_code == 204, r.text  # no API key needed for a preflight
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert r.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert r.headers["Access-Control-Allow-Headers"] == "Content-Type, X-API-Key"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert r.headers["Access-Control-Max-Age"] == "600"
    assert "Origin" in r.headers["Vary"]
    # the wildcard covers subdomains, not look-alikes
    for origin, ok in (("https://a.example.org", True), ("https://a.b.example.org", True),
                       ("https://example.org", False), ("https://example.org.evil.test", False),
                       ("http://a.example.org", False), ("https://evil.test", False),
                       ("null", False)):
        r = requests.options(n.url("/shop/items"), headers=dict(pre, Origin=origin), timeout=10)
        assert r.status_code == 204
        got = {k for k in r.headers if k.lower().startswith("access-control-")}
        assert bool(got) == ok, (origin, r.headers)
    # a method or a header that is not allowed: no CORS headers either
    for extra in ({"Access-Control-Request-Method": "DELETE"},
                  {"Access-Control-Request-Headers": "x-secret"}):
        r = requests.options(n.url("/shop/items"), headers=dict(pre, **extra), timeout=10)
        assert not [k for k in r.headers if k.lower().startswith("access-control-")], r.headers
    # the actual request: the 401 of the auth policy is readable by the page
    r = requests.get(n.url("/shop/items"), headers={"Origin": "https://app.example.com"},
                     timeout=10)
    assert r.status_code == 401
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert r.headers["Access-Control-Expose-Headers"] == "X-Request-Id"
    r = requests.get(n.url("/shop/items"), headers={"Origin": "https://evil.test"}, timeout=10)
    assert r.status_code == 401
    assert not [k for k in r.headers if k.lower().startswith("access-control-")]
    # "*" without credentials
    r = requests.get(n.url("/pub/data"), headers={"Origin": "https://anyone.test"}, timeout=10)
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in r.headers
    r = requests.get(n.url("/pub/data"), timeout=10)  # same-origin or not a browser
    assert "Access-Control-Allow-Origin" not in r.headers


def test_cors_owns_the_upstream_headers(portico_factory):
    upstream_api = '''
name: up
base_path: /up
kind: service
title: Up
version: "1"
routes:
  - method: GET
    path: /x
    respond: {body: x, headers: {Access-Control-Allow-Origin: "*", Access-Control-Allow-Methods: "PUT"}}
'''
    up = portico_factory(node_config(), {"up.yaml": upstream_api}, subdir="up")
    proxy_api = '''
name: front
base_path: /front
kind: proxy
title: Front
version: "1"
upstream:
  targets: [{url: "http://127.0.0.1:%d/up"}]
policies:
  cors: {origins: ["https://app.example.com"]}
''' % up.port
    n = portico_factory(node_config(), {"front.yaml": proxy_api}, subdir="front")
    r = requests.get(n.url("/front/x"), headers={"Origin": "https://evil.test"}, timeout=10)
    assert r.status_code == 200 and r.text == "x"
    assert not [k for k in r.headers if k.lower().startswith("access-control-")], r.headers
    r = requests.get(n.url("/front/x"), headers={"Origin": "https://app.example.com"}, timeout=10)
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Access-Control-Allow-Methods" not in r.headers


def test_configured_protected_headers_never_reach_processes(portico_factory):
    api = '''
name: who
base_path: /who
kind: service
title: Who
version: "1"
headers: [X-Internal-User, X-Tenant]
processes:
  seen:
    steps:
      - map: {fields: {internal: "header['x-internal-user']", tenant: "header['x-tenant']"}}
routes:
  - method: GET
    path: /seen
    process: seen
'''
    n = portico_factory(node_config(extra="protected_headers: [X-Internal-User]\n"),
                        {"who.yaml": api})
    r = requests.get(n.url("/who/seen"), headers={"X-Internal-User": "admin", "X-Tenant": "t1"},
                     timeout=10)
    assert r.status_code == 200 and r.json() == {"internal": None, "tenant": "t1"}, r.text
