"""TLS listeners: versions, ALPN, client certificates (none, optional,
required), failed handshakes that cost only their own connection, and plain
and TLS listeners on one node."""
import os
import socket
import ssl
import subprocess
import time
import warnings

import pytest
import requests

from conftest import RawClient, access_log, get_request, node_config

GREETINGS = b'{"greetings":["hello","bonjour"]}'


def openssl(cwd, *args):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


def make_ca(d, name, cn):
    openssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", name + ".key", "-out", name + ".pem", "-days", "2",
            "-subj", "/CN=" + cn,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def make_leaf(d, name, cn, ca, ext):
    (d / (name + ".ext")).write_text(ext)
    openssl(d, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn)
    openssl(d, "x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
            "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext")


class Certs:
    def __init__(self, d):
        self.dir = d

    def __getattr__(self, name):  # certs.ca_pem -> "/.../ca.pem"
        stem, _, ext = name.rpartition("_")
        return str(self.dir / ("%s.%s" % (stem, ext)))


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca", "Portico Test CA")
    make_ca(d, "other_ca", "Other CA")
    make_leaf(d, "server", "localhost", "ca",
              "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
              "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    make_leaf(d, "client", "client-one", "ca",
              "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n")
    make_leaf(d, "intruder", "intruder", "other_ca",
              "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n")
    return Certs(d)


def tls_listen(certs, client_cert=None, plain=True):
    s = ""
    if plain:
        s += "  - address: 127.0.0.1:0\n    name: public\n"
    s += ("  - address: 127.0.0.1:0\n    name: secure\n    tls:\n"
          "      cert: %s\n      key: %s\n" % (certs.server_pem, certs.server_key))
    if client_cert:
        s += "      client_ca: %s\n      client_cert: %s\n" % (certs.ca_pem, client_cert)
    return s


def client_ctx(certs, cert=None, minv=None, maxv=None, alpn=None, ciphers=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(certs.ca_pem)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if minv:
            ctx.minimum_version = minv
        if maxv:
            ctx.maximum_version = maxv
    if ciphers:
        ctx.set_ciphers(ciphers)
    if cert:
        ctx.load_cert_chain(getattr(certs, cert + "_pem"), getattr(certs, cert + "_key"))
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_connect(port, ctx, host="localhost"):
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        return ctx.wrap_socket(raw, server_hostname=host)
    except BaseException:
        raw.close()
        raise


def tls_exchange(port, ctx, request=None):
    """One request with Connection: close; returns the response bytes, or
    the exception that ended the attempt."""
    request = request or (b"GET /hello/v1/greetings HTTP/1.1\r\nHost: localhost\r\n"
                          b"Connection: close\r\n\r\n")
    try:
        s = tls_connect(port, ctx)
    except (ssl.SSLError, ConnectionError, OSError) as e:
        return e
    try:
        s.sendall(request)
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                return data
            data += b
    except (ssl.SSLError, ConnectionError, OSError) as e:
        return e if not data else data
    finally:
        s.close()


def assert_refused(res):
    assert not (isinstance(res, bytes) and b"HTTP/1.1" in res), "the request was served: %r" % res[:80]


def assert_served(res):
    assert isinstance(res, bytes), "TLS exchange failed: %r" % (res,)
    assert res.startswith(b"HTTP/1.1 200 OK\r\n"), res[:200]
    assert res.endswith(GREETINGS)


def test_https_with_requests_and_plain_side_by_side(portico_factory, certs):
    n = portico_factory(node_config(listen=tls_listen(certs)))
    assert set(n.ports) == {"public", "secure"}
    for host in ("127.0.0.1", "localhost"):
        r = requests.get("https://%s:%d/hello/v1/greetings" % (host, n.ports["secure"]),
                         verify=certs.ca_pem, timeout=5)
        assert r.status_code == 200 and r.content == GREETINGS
    r = requests.get(n.url("/hello/v1/greetings", listener="public"), timeout=5)
    assert r.status_code == 200 and r.content == GREETINGS
    # the same session keeps one TLS connection for several requests
    with requests.Session() as s:
        for path in ("/hello/v1/greetings", "/hello/v1/greetings/fr", "/_portico/health"):
            assert s.get(n.url(path, listener="secure", scheme="https"), verify=certs.ca_pem,
                         timeout=5).status_code == 200
        r = s.post(n.url("/hello/v1/greetings", listener="secure", scheme="https"),
                   data=b"x" * 40000, verify=certs.ca_pem, timeout=5)
        assert r.status_code == 201
    # an untrusted client (no CA) rejects the server certificate: it is ours, not a public one
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(n.url("/", listener="secure", scheme="https"), timeout=5)
    # plain HTTP on the TLS port and TLS on the plain port are not served
    with RawClient(n.ports["secure"]) as c:
        c.send(get_request())
        data, closed = c.read_until_close(timeout=4)
        assert closed and b"HTTP/1.1 200" not in data
    assert_refused(tls_exchange(n.ports["public"], client_ctx(certs)))
    # and both listeners still work
    assert_served(tls_exchange(n.ports["secure"], client_ctx(certs)))
    assert requests.get(n.url("/_portico/health", listener="public"), timeout=5).status_code == 200


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_tls_versions_negotiate(portico_factory, certs, version):
    n = portico_factory(node_config(listen=tls_listen(certs, plain=False)))
    v = getattr(ssl.TLSVersion, version)
    ctx = client_ctx(certs, minv=v, maxv=v)
    s = tls_connect(n.port, ctx)
    try:
        assert s.version() == version.replace("_", ".")
        cipher = s.cipher()[0]
        if version == "TLSv1_2":
            assert cipher.startswith("ECDHE-") and ("GCM" in cipher or "CHACHA20" in cipher), cipher
        c = RawClient(n.port, sock=s)
        c.send(get_request() + get_request("/hello/v1/greetings/fr"))  # pipelined over TLS
        assert c.read_response().body == GREETINGS
        assert c.read_response().status == 200
    finally:
        s.close()


def test_tls12_without_ecdhe_aead_refused(portico_factory, certs):
    n = portico_factory(node_config(listen=tls_listen(certs, plain=False)))
    ctx = client_ctx(certs, minv=ssl.TLSVersion.TLSv1_2, maxv=ssl.TLSVersion.TLSv1_2,
                     ciphers="ECDHE-ECDSA-AES128-SHA:AES128-SHA:AES128-GCM-SHA256:@SECLEVEL=0")
    assert_refused(tls_exchange(n.port, ctx))
    assert_served(tls_exchange(n.port, client_ctx(certs)))


def test_tls11_refused(portico_factory, certs):
    n = portico_factory(node_config(listen=tls_listen(certs, plain=False)))
    try:
        ctx = client_ctx(certs, minv=ssl.TLSVersion.TLSv1_1, maxv=ssl.TLSVersion.TLSv1_1,
                         ciphers="DEFAULT:@SECLEVEL=0")
    except (ssl.SSLError, ValueError) as e:
        pytest.skip("the local OpenSSL cannot offer TLS 1.1: %s" % e)
    res = tls_exchange(n.port, ctx)
    assert_refused(res)
    msg = str(res)
    if "ALERT_PROTOCOL_VERSION" not in msg.upper() and "alert protocol version" not in msg:
        if "handshake failed" not in n.stderr():
            pytest.skip("the local OpenSSL refused to send a TLS 1.1 ClientHello: %s" % msg)
    n.wait_log("TLS handshake failed")
    assert_served(tls_exchange(n.port, client_ctx(certs)))


def test_alpn_http11_selected(portico_factory, certs):
    n = portico_factory(node_config(listen=tls_listen(certs, plain=False)))
    s = tls_connect(n.port, client_ctx(certs, alpn=["h2", "http/1.1"]))
    try:
        assert s.selected_alpn_protocol() == "http/1.1"
        c = RawClient(n.port, sock=s)
        c.send(get_request())
        assert c.read_response().status == 200
    finally:
        s.close()
    # no ALPN at all is fine too
    s = tls_connect(n.port, client_ctx(certs))
    try:
        assert s.selected_alpn_protocol() is None
    finally:
        s.close()


def test_client_cert_required(portico_factory, certs):
    n = portico_factory(node_config(listen=tls_listen(certs, client_cert="required")))
    port = n.ports["secure"]
    for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        assert_refused(tls_exchange(port, client_ctx(certs, minv=v, maxv=v)))
        assert_refused(tls_exchange(port, client_ctx(certs, cert="intruder", minv=v, maxv=v)))
        assert_served(tls_exchange(port, client_ctx(certs, cert="client", minv=v, maxv=v)))
    r = requests.get(n.url("/hello/v1/greetings", listener="secure", scheme="https"),
                     verify=certs.ca_pem, cert=(certs.client_pem, certs.client_key), timeout=5)
    assert r.status_code == 200
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        requests.get(n.url("/hello/v1/greetings", listener="secure", scheme="https"),
                     verify=certs.ca_pem, timeout=5)
    # the plain listener of the node is not affected
    assert requests.get(n.url("/hello/v1/greetings", listener="public"), timeout=5).status_code == 200
    entries = access_log(n, 4)
    tls_lines = [e for e in entries if "tls_client" in e]
    assert len(tls_lines) == 3
    assert all(e["tls_client"] == "CN=client-one" for e in tls_lines)
    assert all(e["status"] == 200 and e["path"] == "/hello/v1/greetings" for e in tls_lines)
    assert '"tls_client":"CN=client-one"' in (n.dir / "access.log").read_text()
    plain = [e for e in entries if "tls_client" not in e]
    assert len(plain) == 1
    n.wait_log("TLS handshake failed")


def test_client_cert_optional(portico_factory, certs):
    n = portico_factory(node_config(listen=tls_listen(certs, client_cert="optional"), workers=1))
    port = n.ports["secure"]
    assert_served(tls_exchange(port, client_ctx(certs)))
    time.sleep(0.1)
    assert_served(tls_exchange(port, client_ctx(certs, cert="client")))
    # a certificate that is sent is verified
    assert_refused(tls_exchange(port, client_ctx(certs, cert="intruder")))
    entries = access_log(n, 2)
    assert len(entries) == 2
    assert "tls_client" not in entries[0]
    assert entries[1]["tls_client"] == "CN=client-one"


def test_garbage_handshake_costs_one_connection(portico_factory, certs):
    n = portico_factory(node_config(listen=tls_listen(certs, client_cert="optional"),
                                    limits="  header_timeout: 1s\n", workers=1))
    port = n.ports["secure"]
    junk = [os.urandom(2000), b"\x16\x03\x01\x00\x05hello", b"\x16\x03\x03\xff\xff" + b"\x00" * 300,
            b"\x00" * 10]
    for data in junk:
        with RawClient(port) as c:
            c.send(data)
            got, closed = c.read_until_close(timeout=3)
            assert closed, "garbage %r left the connection open" % data[:10]
            assert b"HTTP/1.1" not in got
        assert_served(tls_exchange(port, client_ctx(certs)))
    # a client that connects and never speaks is dropped after header_timeout
    with RawClient(port) as c:
        t0 = time.time()
        _, closed = c.read_until_close(timeout=4)
        assert closed and time.time() - t0 < 3.5
    # a truncated ClientHello followed by silence too, while others are served
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        assert_served(tls_exchange(port, client_ctx(certs, cert="client")))
        assert requests.get(n.url("/_portico/health", listener="public"), timeout=5).status_code == 200
    finally:
        s.close()


def test_tls_connection_close(portico_factory, certs):
    n = portico_factory(node_config(listen=tls_listen(certs, plain=False)))
    res = tls_exchange(n.port, client_ctx(certs))
    assert_served(res)  # the read loop ended on the server's close, after the whole body
    assert b"Connection: close\r\n" in res
