"""Fixtures for end-to-end tests: start the real `portico` binary on
ephemeral ports of 127.0.0.1 with an inline configuration, talk to it over
real sockets, stop it by PID and check that it exited cleanly (exit code 0,
no sanitizer report)."""
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import textwrap
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# absolute: some tests run the binary from another working directory
BIN = os.path.abspath(os.environ.get("PORTICO_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "asan", "portico"))

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "SUMMARY: UndefinedBehaviorSanitizer", "ThreadSanitizer")

HELLO_API = """
name: hello
base_path: /hello/v1
kind: service
title: Hello API
version: "1.0"
routes:
  - method: GET
    path: /greetings
    respond:
      body: {greetings: [hello, bonjour]}
  - method: GET
    path: /greetings/{language}
    respond:
      headers: {Content-Type: application/json}
      body: '{"greeting":"hello"}'
  - method: POST
    path: /greetings
    respond:
      status: 201
      body: {created: true}
"""


class Portico:
    """One running node. `ports` maps listener names to bound ports."""

    def __init__(self, tmp_path, config, apis=None, extra_files=None, env=None):
        self.dir = tmp_path
        self.apis_dir = tmp_path / "apis"
        self.apis_dir.mkdir(exist_ok=True)
        for name, text in (apis or {}).items():
            (self.apis_dir / name).write_text(textwrap.dedent(text))
        for name, text in (extra_files or {}).items():
            (tmp_path / name).write_text(text)
        self.config_path = tmp_path / "portico.yaml"
        self.config_path.write_text(textwrap.dedent(config))
        self.stderr_path = tmp_path / "stderr.log"
        self.stdout_path = tmp_path / "stdout.log"
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.ports = {}

    def start(self, expect_fail=False, timeout=20):
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen([BIN, "serve", "--config", str(self.config_path)],
                                     stdout=self._out, stderr=self._err, env=self.env,
                                     stdin=subprocess.DEVNULL)
        if expect_fail:
            rc = self.proc.wait(timeout=timeout)
            self._close_files()
            return rc
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.stderr()
            if " started: " in text:
                for m in re.finditer(r'listening on https?://\[?[0-9a-f.:]+\]?:(\d+) \(listener "([^"]+)"\)', text):
                    self.ports[m.group(2)] = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("portico exited early (%s):\n%s" % (self.proc.returncode, text))
            time.sleep(0.05)
        raise RuntimeError("portico did not start:\n" + self.stderr())

    @property
    def port(self):
        return next(iter(self.ports.values()))

    def url(self, path="/", listener=None, scheme="http"):
        port = self.ports[listener] if listener else self.port
        return "%s://127.0.0.1:%d%s" % (scheme, port, path)

    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stdout(self):
        try:
            return self.stdout_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=30):
        """SIGTERM, wait, and return the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        self._close_files()
        return rc

    def _close_files(self):
        for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if f and not f.closed:
                f.close()

    def check_clean(self):
        text = self.stderr()
        for mark in SANITIZER_MARKS:
            assert mark not in text, "sanitizer report:\n" + text

    def wait_log(self, needle, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in self.stderr():
                return True
            time.sleep(0.05)
        raise AssertionError("%r not logged:\n%s" % (needle, self.stderr()))


def node_config(listen="  - address: 127.0.0.1:0\n    name: public\n", limits="", workers=2,
                extra=""):
    cfg = "workers: %d\nlisten:\n%s" % (workers, listen)
    if limits:
        cfg += "limits:\n" + limits
    cfg += "log:\n  level: debug\n  access_log: access.log\napis: apis\n" + extra
    return cfg


@pytest.fixture
def portico_factory(tmp_path):
    nodes = []

    def make(config=None, apis=None, start=True, subdir=None, **kw):
        """subdir: a directory of its own (files, logs) for a node beside others."""
        d = tmp_path
        if subdir is not None:
            d = tmp_path / subdir
            d.mkdir()
        n = Portico(d, config if config is not None else node_config(),
                    apis if apis is not None else {"hello.yaml": HELLO_API}, **kw)
        nodes.append(n)
        if start:
            n.start()
        return n

    yield make
    for n in nodes:
        if n.proc is not None and n.proc.poll() is None:
            rc = n.stop()
            assert rc == 0, "portico exited with %s:\n%s" % (rc, n.stderr())
        n.check_clean()


@pytest.fixture
def portico(portico_factory):
    return portico_factory()


def raw_request(port, data, timeout=5.0, read_until_close=True, shutdown=False):
    """Sends raw bytes and returns everything the server sent until it closes
    (or the timeout passes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if shutdown:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        end = time.time() + timeout
        while time.time() < end:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
            if not read_until_close:
                break
        return b"".join(chunks)
    finally:
        s.close()


def status_of(response_bytes):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", response_bytes)
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------
# Shared node for read-only tests of one module: one process per module
# keeps the suite fast under ASan. Its exit code and sanitizer output are
# checked when the module ends.

@pytest.fixture(scope="module")
def module_portico(tmp_path_factory):
    n = Portico(tmp_path_factory.mktemp("node"), node_config(), {"hello.yaml": HELLO_API})
    n.start()
    yield n
    rc = n.stop()
    assert rc == 0, "portico exited with %s:\n%s" % (rc, n.stderr())
    n.check_clean()


# --------------------------------------------------------------------------
# Raw HTTP/1.1 client: exact bytes out, one parsed response at a time in.

class Response:
    def __init__(self, version, status, reason, headers, body, raw):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # [(name, value)] in order, as received
        self.body = body
        self.raw = raw

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %s %r>" % (self.status, self.raw[:300])


class RawClient:
    """A socket to a node with an input buffer, so that responses to
    pipelined requests can be read one by one."""

    def __init__(self, port, timeout=5.0, sock=None):
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        if self.eof:
            raise EOFError("connection closed by the server; unread: %r" % self.buf)
        try:
            b = self.sock.recv(65536)
        except ConnectionResetError:
            b = b""
        if not b:
            self.eof = True
            raise EOFError("connection closed by the server; unread: %r" % self.buf)
        self.buf += b

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_response(self, head=False):
        """Reads one response (an interim 1xx is returned on its own)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        end = self.buf.index(b"\r\n\r\n") + 4
        head_bytes, self.buf = self.buf[:end], self.buf[end:]
        lines = head_bytes[:-4].split(b"\r\n")
        m = re.match(rb"^(HTTP/\d\.\d) (\d{3}) (.*)$", lines[0])
        assert m, "bad status line %r" % lines[0]
        version, status, reason = m.group(1).decode(), int(m.group(2)), m.group(3).decode()
        headers = []
        for ln in lines[1:]:
            k, sep, v = ln.partition(b":")
            assert sep and k and k == k.strip(), "bad header line %r" % ln
            headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
        r = Response(version, status, reason, headers, b"", head_bytes)
        if head or status < 200 or status in (204, 304):
            return r
        cl = r.header("content-length")
        te = r.header("transfer-encoding")
        if cl is not None:
            r.body = self._take(int(cl))
            r.raw += r.body
        elif te is not None and te.lower() == "chunked":
            body = b""
            while True:
                size_line = self._line()
                r.raw += size_line + b"\r\n"
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while True:  # trailers
                        t = self._line()
                        r.raw += t + b"\r\n"
                        if not t:
                            break
                    break
                chunk = self._take(size + 2)
                r.raw += chunk
                body += chunk[:-2]
            r.body = body
        else:
            data, _ = self.read_until_close()
            r.body = data
            r.raw += data
        return r

    def read_until_close(self, timeout=3.0):
        """Returns (bytes received before the close, closed?) - closed is
        False when the server kept the connection open for `timeout`."""
        data, self.buf = self.buf, b""
        if self.eof:
            return data, True
        deadline = time.time() + timeout
        self.sock.settimeout(0.05)
        try:
            while time.time() < deadline:
                try:
                    b = self.sock.recv(65536)
                except socket.timeout:
                    continue
                except ConnectionResetError:
                    self.eof = True
                    return data, True
                if not b:
                    self.eof = True
                    return data, True
                data += b
            return data, False
        finally:
            self.sock.settimeout(5.0)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def get_request(path="/hello/v1/greetings", host="a", extra=b""):
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n" + extra + b"\r\n"


def fetch(port, data, head=False, timeout=5.0):
    """Sends one request on a new connection and returns the parsed response."""
    with RawClient(port, timeout=timeout) as c:
        c.send(data)
        return c.read_response(head=head)


def access_log(node, count=1, timeout=10, path=None):
    """The parsed lines of the node's access log (flushed by the workers
    every 500 ms), once there are at least `count` of them."""
    path = path or (node.dir / "access.log")
    deadline = time.time() + timeout
    lines = []
    while time.time() < deadline:
        try:
            lines = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
        except FileNotFoundError:
            lines = []
        if len(lines) >= count:
            return lines
        time.sleep(0.1)
    raise AssertionError("%d access log lines after %ss, wanted %d: %r" % (len(lines), timeout, count, lines))


def wait_until(pred, timeout=5.0, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()


# --------------------------------------------------------------------------
# Throwaway database servers for the tests that need a real one (a module
# each: scope="module"). Both listen on an ephemeral port of 127.0.0.1 and
# are stopped by PID (never by name).

PG_BIN = "/usr/lib/postgresql/15/bin"


def free_tcp_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class PgServer:
    """A PostgreSQL cluster owned by the postgres user (it refuses to run as
    root), listening on 127.0.0.1:<port>, trust authentication, superuser
    `portico`."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="portico-pg-")
        shutil.chown(self.dir, "postgres")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.port = free_tcp_port()
        self.started = False

    def _pg_ctl(self, *args):
        return subprocess.run(["runuser", "-u", "postgres", "--", PG_BIN + "/pg_ctl", "-D",
                               self.data] + list(args), check=True, capture_output=True,
                              timeout=60)

    def start(self):
        subprocess.run(["runuser", "-u", "postgres", "--", PG_BIN + "/initdb", "-D", self.data,
                        "-U", "portico", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"],
                       check=True, capture_output=True, timeout=120)
        self._pg_ctl("-o", "-p %d -k %s -c listen_addresses=127.0.0.1" % (self.port, self.dir),
                     "-l", os.path.join(self.dir, "log"), "-w", "start")
        self.started = True

    def restart(self):
        """pg_ctl restart -m fast: every session is cut, the server is back
        on the same port when this returns."""
        self._pg_ctl("-m", "fast", "-l", os.path.join(self.dir, "log"), "-w", "restart")

    def stop(self):
        if self.started:
            subprocess.run(["runuser", "-u", "postgres", "--", PG_BIN + "/pg_ctl", "-D", self.data,
                            "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, db, password=None):
        auth = "portico" + (":" + password if password else "")
        return "postgresql://%s@127.0.0.1:%d/%s" % (auth, self.port, db)

    def psql(self, db, sql):
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self.url(db)],
                           input=sql, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def create_db(self, name, schema):
        self.psql("postgres", "CREATE DATABASE %s;" % name)
        self.psql(name, schema)


class MariaDbServer:
    """A MariaDB server run as root from a data directory of its own,
    listening on 127.0.0.1:<port> (UTC session time zone, utf8mb4
    databases); the user 'portico'@'127.0.0.1' (no password) gets every
    privilege on the databases made by create_db."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="portico-mariadb-")
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        self.port = free_tcp_port()
        self.proc = None

    def start(self):
        if not os.path.isdir(self.data):
            subprocess.run(["mariadb-install-db", "--no-defaults", "--datadir=" + self.data,
                            "--user=root", "--auth-root-authentication-method=normal",
                            "--skip-test-db"], check=True, capture_output=True, timeout=120)
        self.proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", "--datadir=" + self.data, "--socket=" + self.sock,
             "--port=%d" % self.port, "--bind-address=127.0.0.1", "--user=root",
             "--pid-file=" + os.path.join(self.dir, "pid"),
             "--log-error=" + os.path.join(self.dir, "err"), "--skip-name-resolve",
             "--default-time-zone=+00:00"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mariadbd exited (%s):\n%s" % (self.proc.returncode,
                                                                  self.error_log()))
            r = subprocess.run(["mariadb-admin", "--no-defaults", "-S", self.sock, "-uroot",
                                "ping"], capture_output=True, timeout=30)
            if r.returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("mariadbd did not start:\n" + self.error_log())
        self.sql("CREATE USER IF NOT EXISTS 'portico'@'127.0.0.1'")

    def error_log(self):
        try:
            with open(os.path.join(self.dir, "err"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self, timeout=60):
        """SIGTERM to the server's PID, and wait for it to exit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self):
        """SIGTERM, wait, and start again on the same port and data."""
        self.stop()
        self.start()

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, db, user="portico", password=None):
        auth = user + (":" + password if password else "")
        return "mysql://%s@127.0.0.1:%d/%s" % (auth, self.port, db)

    def sql(self, sql, db=None):
        r = subprocess.run(["mariadb", "--no-defaults", "-S", self.sock, "-uroot"] +
                           ([db] if db else []), input=sql, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def create_db(self, name, schema):
        self.sql("CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n"
                 "GRANT ALL ON `%s`.* TO 'portico'@'127.0.0.1';" % (name, name))
        self.sql(schema, db=name)


@pytest.fixture(scope="module")
def pg():
    server = PgServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mariadb():
    server = MariaDbServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def erp(portico_factory, tmp_path):
    """A node serving the API `portico generate` makes from examples/erp.sql."""
    (tmp_path / "apis").mkdir()
    db = tmp_path / "apis" / "erp.db"
    con = sqlite3.connect(db)
    con.executescript(open(os.path.join(ROOT, "examples", "erp.sql")).read())
    con.close()
    p = subprocess.run([BIN, "generate", "--db", "sqlite:%s" % db, "--name", "erp",
                        "--base-path", "/erp", "--naming", "camel",
                        "-o", str(tmp_path / "apis" / "erp.yaml")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    text = (tmp_path / "apis" / "erp.yaml").read_text()
    for op in ("getCustomer", "queryCustomers", "createCustomer", "updateCustomer",
               "deleteCustomer", "getOrderLine"):
        assert "name: %s," % op in text, op
    return portico_factory(node_config(), {"erp.yaml": text})
