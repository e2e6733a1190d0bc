"""
The `auth` policy's other methods: basic (Argon2id hashes from `portico user
password`, verified off the I/O loop with the request suspended, then
cached), JWT bearer tokens made by a real JWT library (PyJWT) with RSA, EC
and HMAC keys from PEM files, a secret and a JWK Set, client certificates
(mTLS) and a certificate header from a trusted proxy; then the per-user IP
allow list and API list, and every failure shape.
"""
import base64
import concurrent.futures
import json
import re
import signal
import socket
import subprocess
import time
import urllib.parse

import jwt as pyjwt
import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography import x509

from conftest import BIN, access_log, node_config, raw_request
from test_tls import certs, client_ctx, tls_exchange, tls_listen  # noqa: F401 (fixture)

SECRET = "an HMAC secret that is long enough for HS256 at least"


def password_hash(pw):
    p = subprocess.run([BIN, "user", "password"], input=pw + "\n", capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("$argon2id$"), p.stdout
    return p.stdout.strip()


@pytest.fixture(scope="module")
def hashes_():
    return {"alice": password_hash("wonderland"), "bob": password_hash("builder")}


def api(name, auth, extra_routes=""):
    return '''
name: %s
base_path: /%s
kind: service
title: %s
version: "1"
policies:
  auth: %s
processes:
  whoami:
    steps:
      - map: {fields: {name: user.name, roles: user.roles}}
  echo:
    steps:
      - map: {fields: {got: body.text, name: user.name}}
routes:
  - method: GET
    path: /me
    process: whoami
  - method: POST
    path: /echo
    process: echo
%s''' % (name, name, name, auth, extra_routes)


def basic(user, pw):
    return "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()


# ------------------------------------------------------------------ basic

@pytest.fixture
def basic_node(portico_factory, hashes_):
    users = ("users:\n"
             "  - {name: alice, roles: [ops], password: \"%s\"}\n"
             "  - {name: bob, roles: [sales], password: \"%s\", allow_ips: [10.9.9.0/24]}\n"
             "  - {name: carol, roles: [ops]}\n" % (hashes_["alice"], hashes_["bob"]))
    return portico_factory(node_config(extra=users),
                           {"crm.yaml": api("crm", "{methods: [basic], roles: [ops]}")})


def test_basic_success_and_cache(basic_node):
    for _ in range(3):  # the first verifies off the loop, the others hit the cache
        r = requests.get(basic_node.url("/crm/me"), headers={"Authorization": basic("alice", "wonderland")},
                         timeout=10)
        assert r.status_code == 200, r.text
        assert r.json() == {"name": "alice", "roles": ["ops"]}
    # requests' own basic auth, the way clients send it
    r = requests.get(basic_node.url("/crm/me"), auth=("alice", "wonderland"), timeout=10)
    assert r.status_code == 200, r.text
    lines = access_log(basic_node, 4)
    assert {ln.get("user") for ln in lines} == {"alice"}
    assert "wonderland" not in (basic_node.dir / "access.log").read_text()
    assert "wonderland" not in basic_node.stderr()


def test_basic_same_credentials_verified_once(basic_node):
    """40 connections presenting the same new password at once: each worker
    verifies it once, the others wait for that result."""
    def one(_):
        return requests.get(basic_node.url("/crm/me"), auth=("alice", "wonderland"),
                            timeout=30).status_code
    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        codes = list(pool.map(one, range(40)))
    assert codes == [200] * 40, codes
    starts = basic_node.stderr().count("a password verification starts")
    assert 1 <= starts <= 2, starts  # one per worker at most (workers: 2)


def test_basic_failures_look_alike(basic_node):
    answers = []
    for authz in (None, basic("alice", "wrong"), basic("nobody", "wonderland"),
                  basic("carol", "anything"), "Basic !!notbase64", "Basic " + "A" * 600,
                  "Basic " + base64.b64encode(b"no-colon").decode()):
        headers = {"Authorization": authz} if authz else {}
        r = requests.get(basic_node.url("/crm/me"), headers=headers, timeout=10)
        assert r.status_code == 401, (authz, r.text)
        assert r.headers["WWW-Authenticate"] == 'Basic realm="portico", charset="UTF-8"'
        answers.append((r.json()["type"], r.json()["detail"]))
    assert len(set(answers)) == 1, answers
    err = basic_node.stderr()
    assert "reason=bad-password" in err and "reason=unknown-user" in err
    assert "reason=malformed" in err and "wrong" not in err.replace("wrong-", "")


def test_basic_user_ip_list_and_roles(basic_node):
    # bob's password is right, but he may only come from 10.9.9.0/24, and lacks the role
    r = requests.get(basic_node.url("/crm/me"), auth=("bob", "builder"), timeout=10)
    assert r.status_code == 403, r.text
    assert "address-not-allowed" in basic_node.stderr()


def test_basic_body_held_while_suspended(basic_node):
    # the body arrives while the password is verified off the loop: nothing is lost
    text = "x" * 200000
    r = requests.post(basic_node.url("/crm/echo"), json={"text": text},
                      auth=("alice", "wonderland"), timeout=20)
    assert r.status_code == 200, r.text[:300]
    assert r.json() == {"got": text, "name": "alice"}


def test_basic_expect_continue_refused_without_body(basic_node):
    port = basic_node.port
    req = ("POST /crm/echo HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
           "Content-Type: application/json\r\nContent-Length: 100000\r\n"
           "Expect: 100-continue\r\n\r\n" % basic("alice", "nope"))
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(req.encode())
        data = s.recv(65536)
        assert data.startswith(b"HTTP/1.1 401 "), data[:200]
    finally:
        s.close()
    # and a right password gets "100 Continue" before the body is sent
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        body = json.dumps({"text": "hello"}).encode()
        s.sendall(("POST /crm/echo HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
                   "Content-Type: application/json\r\nContent-Length: %d\r\n"
                   "Expect: 100-continue\r\n\r\n" % (basic("alice", "wonderland"), len(body))).encode())
        first = s.recv(65536)
        if first.startswith(b"HTTP/1.1 100 "):  # a cached verification answers at once too
            s.sendall(body)
            rest = b""
            while b'"hello"' not in rest:
                chunk = s.recv(65536)
                assert chunk, rest
                rest += chunk
            assert b"HTTP/1.1 200 " in rest
        else:
            raise AssertionError(first[:200])
    finally:
        s.close()


def test_basic_pipelined_and_client_leaving(basic_node):
    one = "GET /crm/me HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n"
    data = (one % basic("alice", "wonderland")) + (one % basic("alice", "wrong")) + \
           "GET /crm/me HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nConnection: close\r\n\r\n" % \
           basic("alice", "wonderland")
    out = raw_request(basic_node.port, data.encode(), timeout=20)
    statuses = re.findall(r"HTTP/1\.1 (\d{3}) ", out.decode("latin-1"))
    assert statuses == ["200", "401", "200"], out[:600]
    # clients that leave while their password is being verified cost nothing
    for i in range(20):
        s = socket.create_connection(("127.0.0.1", basic_node.port), timeout=5)
        s.sendall((one % basic("alice", "pw-%d" % i)).encode())
        s.close()
    r = requests.get(basic_node.url("/crm/me"), auth=("alice", "wonderland"), timeout=20)
    assert r.status_code == 200


# ------------------------------------------------------------------ JWT

@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("jwtkeys")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = lambda k: k.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    (d / "rsa.pem").write_bytes(pub(rsa_key))
    (d / "ec.pem").write_bytes(pub(ec_key))
    (d / "secret").write_text(SECRET)
    # a JWK Set with the same keys, named
    jwks = {"keys": []}
    for kid, k in (("r1", rsa_key), ("e1", ec_key)):
        jwk = json.loads(pyjwt.algorithms.RSAAlgorithm.to_jwk(k.public_key()) if kid == "r1"
                         else pyjwt.algorithms.ECAlgorithm.to_jwk(k.public_key()))
        jwk.update({"kid": kid, "use": "sig"})
        jwks["keys"].append(jwk)
    (d / "jwks.json").write_text(json.dumps(jwks))
    return {"dir": d, "rsa": rsa_key, "ec": ec_key, "other": other, "rsa_pub": pub(rsa_key)}


def token(key, alg="RS256", kid=None, **claims):
    now = int(time.time())
    body = {"sub": "u-1", "preferred_username": "dana", "roles": ["ops"], "iss": "https://idp.test",
            "aud": "portico", "exp": now + 300}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return pyjwt.encode(body, key, algorithm=alg, headers={"kid": kid} if kid else None)


def jwt_auth(keys_line):
    return ("{methods: [jwt], roles: [ops], jwt: {%s, issuer: \"https://idp.test\", "
            "audience: portico, algorithms: [RS256, ES256, HS256], leeway: 30s}}" % keys_line)


@pytest.fixture
def jwt_node(portico_factory, keys, monkeypatch):
    monkeypatch.setenv("PT_TEST_JWT_SECRET", SECRET)
    k = "keys: [%s, %s], secret: \"${env:PT_TEST_JWT_SECRET}\"" % (keys["dir"] / "rsa.pem",
                                                                  keys["dir"] / "ec.pem")
    return portico_factory(node_config(), {
        "crm.yaml": api("crm", jwt_auth(k)),
        "erp.yaml": api("erp", jwt_auth("jwks_file: %s" % (keys["dir"] / "jwks.json")))})


def call(node, path, tok):
    return requests.get(node.url(path), headers={"Authorization": "Bearer " + tok}, timeout=10)


def test_jwt_accepted(jwt_node, keys):
    for tok in (token(keys["rsa"]), token(keys["ec"], "ES256"), token(SECRET, "HS256")):
        r = call(jwt_node, "/crm/me", tok)
        assert r.status_code == 200, r.text
        assert r.json() == {"name": "dana", "roles": ["ops"]}
    # the JWK Set: by kid, and without one
    for tok in (token(keys["rsa"], kid="r1"), token(keys["ec"], "ES256", kid="e1"),
                token(keys["rsa"])):
        assert call(jwt_node, "/erp/me", tok).status_code == 200
    # sub when there is no preferred_username; roles as a space-separated string
    r = call(jwt_node, "/crm/me", token(keys["rsa"], preferred_username=None, roles="ops audit"))
    assert r.json() == {"name": "u-1", "roles": ["ops", "audit"]}
    assert access_log(jwt_node, 7)[-1]["user"] in ("u-1", "dana")


def b64(d):
    return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()


def test_jwt_every_failure_is_one_401(jwt_node, keys):
    now = int(time.time())
    good = token(keys["rsa"])
    h, p, s = good.split(".")
    forged_none = b64({"alg": "none", "typ": "JWT"}) + "." + p + "."
    # HS256 signed with the RSA *public* key as the secret: the classic key confusion
    confused = pyjwt.api_jws.PyJWS()
    confused._algorithms["HS256"].prepare_key = lambda k: k  # allow a PEM as an HMAC key
    confusion = confused.encode(json.dumps({"preferred_username": "eve", "roles": ["ops"],
                                            "iss": "https://idp.test", "aud": "portico",
                                            "exp": now + 300}).encode(),
                                keys["rsa_pub"], algorithm="HS256")
    cases = {
        "expired": token(keys["rsa"], exp=now - 120),
        "not-yet-valid": token(keys["rsa"], nbf=now + 600),
        "wrong-audience": token(keys["rsa"], aud="someone-else"),
        "wrong-issuer": token(keys["rsa"], iss="https://evil.test"),
        "no-expiry": token(keys["rsa"], exp=None),
        "bad-signature": token(keys["other"]),
        "unsupported-algorithm": forged_none,
        "key-confusion": confusion,
        "tampered": h + "." + b64({"preferred_username": "root", "roles": ["ops"],
                                   "iss": "https://idp.test", "aud": "portico",
                                   "exp": now + 300}) + "." + s,
        "malformed": "not.a.token",
        "algorithm-not-allowed": token(keys["rsa"], "RS384"),
        "huge": "a" * 9000 + "." + p + "." + s,
    }
    answers = set()
    for why, tok in cases.items():
        r = call(jwt_node, "/crm/me", tok)
        assert r.status_code == 401, (why, r.text)
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="portico"', why
        answers.add((r.json()["type"], r.json()["detail"]))
    assert len(answers) == 1, answers
    err = jwt_node.stderr()
    for reason in ("expired", "not-yet-valid", "wrong-audience", "wrong-issuer", "no-expiry",
                   "bad-signature", "unsupported-algorithm", "algorithm-not-allowed"):
        assert "reason=%s" % reason in err, reason
    assert good not in err and s not in err
    # within the leeway is fine; the role rule gives 403
    assert call(jwt_node, "/crm/me", token(keys["rsa"], exp=now - 10)).status_code == 200
    assert call(jwt_node, "/crm/me", token(keys["rsa"], roles=["sales"])).status_code == 403
    # a JWK Set key that is not the token's kid does not verify it
    assert call(jwt_node, "/erp/me", token(keys["rsa"], kid="e1")).status_code == 401


# ------------------------------------------------------------------ JWKS URL

def test_jwt_jwks_url_refreshed(portico_factory, keys, tmp_path):
    """A JWK Set served over HTTP by another Portico node (a static route):
    fetched at start, then refreshed, so a rotated key is accepted."""
    jwks = (keys["dir"] / "jwks.json").read_text()
    idp_api = '''
name: idp
base_path: /idp
kind: service
title: IdP
version: "1"
routes:
  - method: GET
    path: /jwks
    respond: {status: 200, headers: {Content-Type: application/json}, body: '%s'}
''' % jwks.replace("'", "''")
    idp = portico_factory(node_config(), {"idp.yaml": idp_api}, subdir="idp")
    url = idp.url("/idp/jwks")
    n = portico_factory(node_config(), {"crm.yaml": api(
        "crm", jwt_auth("jwks_url: \"%s\", jwks_refresh: 10s" % url))})
    assert call(n, "/crm/me", token(keys["rsa"], kid="r1")).status_code == 200
    assert call(n, "/crm/me", token(keys["other"], kid="r2")).status_code == 401
    # rotate: the IdP now publishes r2 (the other key)
    jwk = json.loads(pyjwt.algorithms.RSAAlgorithm.to_jwk(keys["other"].public_key()))
    jwk.update({"kid": "r2", "use": "sig"})
    (idp.dir / "apis" / "idp.yaml").write_text(idp_api.replace(
        jwks.replace("'", "''"), json.dumps({"keys": [jwk]}).replace("'", "''")))
    idp.signal(signal.SIGHUP)
    deadline = time.time() + 30
    while time.time() < deadline:
        if call(n, "/crm/me", token(keys["other"], kid="r2")).status_code == 200:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the rotated key was never fetched:\n" + n.stderr()[-2000:])
    assert "jwks: %s: 1 keys" % url in n.stderr()


# ------------------------------------------------------------------ certificates

def fingerprint(pem_path):
    cert = x509.load_pem_x509_certificate(open(pem_path, "rb").read())
    return "sha256:" + cert.fingerprint(hashes.SHA256()).hex()


def test_client_certificate_maps_to_user(portico_factory, certs):
    users = ("users:\n"
             "  - {name: robot, roles: [ops], certificates: [\"CN=client-one\"]}\n")
    n = portico_factory(node_config(listen=tls_listen(certs, client_cert="optional"), extra=users),
                        {"crm.yaml": api("crm", "{methods: [client_cert, api_key]}")})
    port = n.ports["secure"]
    res = tls_exchange(port, client_ctx(certs, cert="client"),
                       b"GET /crm/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b" 200 " in res[:20] and b'"name":"robot"' in res, res
    res = tls_exchange(port, client_ctx(certs),
                       b"GET /crm/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b" 401 " in res[:20], res
    assert b'WWW-Authenticate: APIKey' in res


def test_client_certificate_by_fingerprint_and_unknown(portico_factory, certs):
    users = ("users:\n  - {name: robot, certificates: [\"%s\"]}\n" % fingerprint(certs.client_pem))
    n = portico_factory(node_config(listen=tls_listen(certs, client_cert="optional"), extra=users),
                        {"crm.yaml": api("crm", "{methods: [client_cert]}")})
    res = tls_exchange(n.ports["secure"], client_ctx(certs, cert="client"),
                       b"GET /crm/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b'"name":"robot"' in res, res
    users2 = "users:\n  - {name: robot, certificates: [\"CN=somebody-else\"]}\n"
    n2 = portico_factory(node_config(listen=tls_listen(certs, client_cert="optional"),
                                     extra=users2),
                         {"crm.yaml": api("crm", "{methods: [client_cert]}")}, subdir="n2")
    res = tls_exchange(n2.ports["secure"], client_ctx(certs, cert="client"),
                       b"GET /crm/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b" 401 " in res[:20] and b'Certificate realm="portico"' in res, res
    assert "reason=unknown-certificate" in n2.stderr()


def test_certificate_header_only_from_trusted_proxies(portico_factory, certs):
    pem = open(certs.client_pem).read()
    escaped = urllib.parse.quote(pem, safe="")  # nginx's $ssl_client_escaped_cert
    users = "users:\n  - {name: robot, roles: [ops], certificates: [\"CN=client-one\"]}\n"
    auth = "{methods: [cert_header], cert_header: {header: X-SSL-Cert, ca_file: %s}}" % certs.ca_pem
    trusted = portico_factory(node_config(extra=users + "trusted_proxies: [127.0.0.1]\n"),
                              {"crm.yaml": api("crm", auth)})
    r = requests.get(trusted.url("/crm/me"), headers={"X-SSL-Cert": escaped}, timeout=10)
    assert r.status_code == 200 and r.json()["name"] == "robot", r.text
    # newlines as spaces (some proxies) are accepted too
    r = requests.get(trusted.url("/crm/me"), headers={"X-SSL-Cert": pem.replace("\n", " ").strip()},
                     timeout=10)
    assert r.status_code == 200, r.text
    # a certificate from another CA is refused even from the trusted proxy
    other = urllib.parse.quote(open(certs.intruder_pem).read(), safe="")
    r = requests.get(trusted.url("/crm/me"), headers={"X-SSL-Cert": other}, timeout=10)
    assert r.status_code == 401
    r = requests.get(trusted.url("/crm/me"), headers={"X-SSL-Cert": "garbage%ZZ"}, timeout=10)
    assert r.status_code == 401
    # the same header from a client that is not a trusted proxy: refused
    untrusted = portico_factory(node_config(extra=users), {"crm.yaml": api("crm", auth)},
                                subdir="untrusted")
    r = requests.get(untrusted.url("/crm/me"), headers={"X-SSL-Cert": escaped}, timeout=10)
    assert r.status_code == 401
    assert "reason=untrusted-proxy" in untrusted.stderr()
    assert "reason=untrusted-certificate" in trusted.stderr(), [ln for ln in trusted.stderr().splitlines() if "auth:" in ln]


# ------------------------------------------------------------------ several methods, access

def test_methods_together_and_api_list(portico_factory, hashes_, keys):
    p = subprocess.run([BIN, "user", "key"], capture_output=True, text=True, timeout=30)
    key, digest = p.stdout.split()
    users = ("users:\n"
             "  - {name: alice, password: \"%s\", api_keys: [\"%s\"], apis: [crm]}\n"
             "  - {name: nobody-from-anywhere, password: \"%s\", allow_ips: []}\n"
             % (hashes_["alice"], digest, hashes_["bob"]))
    auth = ("{methods: [api_key, basic, jwt], jwt: {keys: [%s], audience: portico}}"
            % (keys["dir"] / "rsa.pem"))
    n = portico_factory(node_config(extra=users),
                        {"crm.yaml": api("crm", auth), "erp.yaml": api("erp", auth)})
    r = requests.get(n.url("/crm/me"), timeout=10)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == \
        'APIKey realm="portico", header="x-api-key", Basic realm="portico", charset="UTF-8", ' \
        'Bearer realm="portico"'
    assert requests.get(n.url("/crm/me"), headers={"X-API-Key": key}, timeout=10).status_code == 200
    assert requests.get(n.url("/crm/me"), auth=("alice", "wonderland"), timeout=10).status_code == 200
    assert call(n, "/crm/me", token(keys["rsa"])).status_code == 200
    # alice may only call crm
    assert requests.get(n.url("/erp/me"), headers={"X-API-Key": key}, timeout=10).status_code == 403
    # an allow list present and empty denies everything (the reference's behaviour)
    r = requests.get(n.url("/crm/me"), auth=("nobody-from-anywhere", "builder"), timeout=10)
    assert r.status_code == 403
    # the JWT user is not a configured user: its token's claims decide
    assert call(n, "/erp/me", token(keys["rsa"])).status_code == 200


def test_bad_auth_configuration_is_explained(portico_factory, keys, tmp_path):
    cases = {
        "{methods: [jwt]}": "jwt",
        "{methods: [jwt], jwt: {secret: \"plain-text-secret-in-the-file-0123456789\"}}":
            "${env:NAME}",
        "{methods: [jwt], jwt: {keys: [/nonexistent.pem]}}": "cannot read",
        "{methods: [jwt], jwt: {keys: [%s], algorithms: [none]}}" % (keys["dir"] / "rsa.pem"):
            "unknown algorithm",
        "{methods: [magic]}": "unknown method",
    }
    for i, (auth, expect) in enumerate(cases.items()):
        n = portico_factory(node_config(), {"crm.yaml": api("crm", auth)}, start=False,
                            subdir="case%d" % i)
        p = subprocess.run([BIN, "validate", str(n.config_path)], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode != 0, auth
        assert expect in p.stderr + p.stdout, (auth, p.stderr)
    bad_user = "users:\n  - {name: x, password: \"hunter2\"}\n"
    n = portico_factory(node_config(extra=bad_user), {}, start=False, subdir="bad-user")
    p = subprocess.run([BIN, "validate", str(n.config_path)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0 and "Argon2id" in p.stderr + p.stdout
    assert "hunter2" not in p.stderr + p.stdout


def test_consumed_credentials_do_not_reach_the_upstream(portico_factory, hashes_, keys):
    """API keys and passwords were for the gateway: hidden from the upstream
    by default; a bearer token is passed on (the upstream may check it too);
    hide_credentials decides otherwise."""
    up_api = '''
name: up
base_path: /up
kind: service
title: Up
version: "1"
headers: [X-API-Key, Authorization]
processes:
  seen:
    steps:
      - map: {fields: {key: "header['x-api-key']", authz: "header['authorization']", q: query.apikey, other: query.other}}
routes:
  - method: GET
    path: /seen
    process: seen
'''
    up = portico_factory(node_config(), {"up.yaml": up_api}, subdir="up")
    p = subprocess.run([BIN, "user", "key"], capture_output=True, text=True, timeout=30)
    key, digest = p.stdout.split()
    users = "users:\n  - {name: alice, password: \"%s\", api_keys: [\"%s\"]}\n" % (
        hashes_["alice"], digest)

    def front(name, hide=""):
        return ('name: %s\nbase_path: /%s\nkind: proxy\ntitle: F\nversion: "1"\n'
                'upstream:\n  targets:\n    - url: "http://127.0.0.1:%d/up"\n'
                'policies:\n  auth: {methods: [api_key, basic, jwt], api_key: {header: X-API-Key, '
                'query: apikey}, jwt: {keys: [%s], audience: portico}%s}\n'
                % (name, name, up.port, keys["dir"] / "rsa.pem", hide))
    n = portico_factory(node_config(extra=users),
                        {"f.yaml": front("f"), "g.yaml": front("g", ", hide_credentials: false")},
                        subdir="front")
    r = requests.get(n.url("/f/seen"), headers={"X-API-Key": key}, timeout=10)
    assert r.status_code == 200 and r.json()["key"] is None, r.text
    r = requests.get(n.url("/f/seen?apikey=%s&other=1" % key), timeout=10)
    assert r.json()["q"] is None and r.json()["other"] == "1", r.text
    r = requests.get(n.url("/f/seen"), auth=("alice", "wonderland"), timeout=10)
    assert r.json()["authz"] is None, r.text
    tok = token(keys["rsa"])
    r = requests.get(n.url("/f/seen"), headers={"Authorization": "Bearer " + tok}, timeout=10)
    assert r.json()["authz"] == "Bearer " + tok, r.text
    r = requests.get(n.url("/g/seen"), headers={"X-API-Key": key}, timeout=10)
    assert r.json()["key"] == key, r.text
