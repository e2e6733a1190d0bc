"""Fixtures for end-to-end tests: start the real `portico` binary on
ephemeral ports of 127.0.0.1 with an inline configuration, talk to it over
real sockets, stop it by PID and check that it exited cleanly (exit code 0,
no sanitizer report)."""
import os
import re
import signal
import socket
import subprocess
import textwrap
import time

import pytest

BIN = os.environ.get("PORTICO_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "asan", "portico")

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

    def make(config=None, apis=None, start=True, **kw):
        n = Portico(tmp_path, config if config is not None else node_config(),
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
