"""The admin console (web/, served by the admin listener at /admin/ui/) in
a real browser: headless Chromium driven by tests/browser/console.js
(playwright-core). This side starts a node with a SQLite store and an admin
listener, pushes two revisions of an API whose body tells them apart and
deploys the second, keeps one async execution (with a webhook delivery) in
the store, and runs a background load on the public listener while the
script logs in, watches the dashboard move, rolls the API back from its
page (the public answer goes back to revision 1), opens the execution and
logs out. Screenshots of every step go to tests/artifacts/browser/ (or
$PT_ARTIFACTS)."""
import glob
import http.server
import os
import random
import shutil
import subprocess
import textwrap
import threading
import time

import pytest
import requests

from conftest import BIN, ROOT, free_tcp_port, node_config, wait_until

CHROMIUM = "/usr/bin/chromium"
BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
SCRIPT = os.path.join(BROWSER_DIR, "console.js")
WEB = os.path.join(ROOT, "web")


def site_api(body):
    """GET /site/v1/page answers `body` (text/plain)."""
    return textwrap.dedent("""\
        name: site
        base_path: /site/v1
        kind: service
        title: Site
        version: "1"
        routes:
          - method: GET
            path: /page
            respond:
              body: %s
        """) % body


JOBS_API = textwrap.dedent("""\
    name: jobs
    base_path: /jobs
    kind: service
    title: Jobs
    version: "1"
    processes:
      work:
        steps:
          - respond: {status: 200, body: "{ms: query.ms}"}
    routes:
      - method: POST
        path: /run
        process: work
        async: true
        webhook: "http://127.0.0.1:%d/hook"
    """)


def missing_tools():
    miss = []
    if not os.access(CHROMIUM, os.X_OK):
        miss.append(CHROMIUM + " (Debian package chromium)")
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        miss.append("tests/browser/node_modules (npm ci in tests/browser; scripts/setup.sh does it)")
    if not shutil.which("node"):
        miss.append("node")
    return miss


class Hooks(http.server.BaseHTTPRequestHandler):
    """Accepts every webhook delivery."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def hooks():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


class Load:
    """Threads sending GETs to the public listener at an uneven pace (about
    100 requests/s in all, a few 404s among them) until stopped."""

    def __init__(self, base, path, threads=4):
        self.base, self.path, self.stop_ev = base, path, threading.Event()
        self.sent, self.failed = 0, 0
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def run(self):
        rnd = random.Random()
        with requests.Session() as s:
            while not self.stop_ev.is_set():
                path = "/nope" if rnd.random() < 0.05 else self.path
                try:
                    s.get(self.base + path, timeout=10)
                    self.sent += 1
                except requests.RequestException:
                    self.failed += 1
                self.stop_ev.wait(rnd.uniform(0.005, 0.07))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=15)


def artifacts_dir():
    d = os.environ.get("PT_ARTIFACTS") or os.path.join(ROOT, "tests", "artifacts", "browser")
    os.makedirs(d, exist_ok=True)
    for f in glob.glob(os.path.join(d, "[0-9][0-9]-*.png")) + glob.glob(os.path.join(d, "fail-*.png")):
        os.remove(f)  # screenshots of an earlier run
    return d


def test_console_in_a_browser(portico_factory, hooks):
    miss = missing_tools()
    if miss:
        if os.environ.get("CI"):
            pytest.fail("browser test tools missing under CI: " + ", ".join(miss))
        pytest.skip("browser test tools missing: " + ", ".join(miss))

    admin_port = free_tcp_port()
    cfg = node_config(extra="store: sqlite:data/portico.db\nenvironment: dev\n"
                            "admin:\n  address: 127.0.0.1:%d\n"
                            "webhooks:\n  allowed_hosts: [\"127.0.0.1\"]\n  secret: \"${env:PT_TEST_HOOK_SECRET}\"\n"
                            % admin_port)
    secret = {"PT_TEST_HOOK_SECRET": "browser-test-secret-0123"}  # the node file reads it
    n = portico_factory(cfg, {}, start=False, env=secret)
    n.start()
    admin = "http://127.0.0.1:%d" % admin_port
    assert wait_until(lambda: requests.get(admin + "/admin/openapi.json", timeout=5).status_code == 200,
                      timeout=15), n.stderr()
    p = subprocess.run([BIN, "admin", "token", "create", "-c", str(n.config_path), "--name", "browser"],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, **secret))
    assert p.returncode == 0, p.stderr
    token = p.stdout.strip().splitlines()[-1].strip()
    auth = {"Authorization": "Bearer " + token}

    # the console's files are served as they are in web/
    js = ("application/javascript", "text/javascript")  # both JavaScript (RFC 9239 prefers text/)
    for name, ctypes in (("", ("text/html",)), ("index.html", ("text/html",)), ("app.js", js),
                         ("app.css", ("text/css",))):
        r = requests.get(admin + "/admin/ui/" + name, timeout=10)
        assert r.status_code == 200, (name, r.status_code, r.text[:200])
        assert r.headers.get("Content-Type", "").split(";")[0].strip() in ctypes, (name, r.headers)
        assert "script-src 'self'" in r.headers.get("Content-Security-Policy", ""), (name, r.headers)
        with open(os.path.join(WEB, name or "index.html"), "rb") as f:
            assert r.content == f.read(), "/admin/ui/%s differs from web/%s: rebuild" % (name, name)

    def push(text):
        r = requests.post(admin + "/admin/apis", data=text.encode(), timeout=60,
                          headers=dict(auth, **{"Content-Type": "application/yaml"}))
        assert r.status_code in (200, 201), r.text
        return r.json()["revision"]

    def deploy(api, revision):
        r = requests.post(admin + "/admin/environments/dev/deployments", json={"api": api, "revision": revision},
                          headers=auth, timeout=60)
        assert r.status_code == 201, r.text

    assert push(site_api("rev-1")) == 1
    assert push(site_api("rev-2")) == 2
    deploy("site", 1)
    deploy("site", 2)  # a rollback goes back to 1
    deploy("jobs", push(JOBS_API % hooks))
    page = n.url("/site/v1/page", "public")
    assert requests.get(page, timeout=10).text == "rev-2"

    # one execution kept in the store, its webhook delivered
    r = requests.post(n.url("/jobs/run?ms=5", "public"), json={}, timeout=10)
    assert r.status_code == 202, r.text
    eid = r.headers["X-Execution-Id"]

    def kept():
        r = requests.get(admin + "/admin/executions/" + eid, headers=auth, timeout=10)
        return r.status_code == 200 and r.json()["status"] == "COMPLETE" and r.json().get("deliveries")
    assert wait_until(kept, timeout=15), requests.get(admin + "/admin/executions/" + eid, headers=auth).text
    result = requests.get(n.url("/_portico/executions/%s/result" % eid, "public"), timeout=10)
    assert result.status_code == 200 and result.text, (result.status_code, result.text)

    art = artifacts_dir()
    # the token goes in the environment, not on a command line others can read
    env = dict(os.environ, PT_ADMIN_URL=admin, PT_ADMIN_TOKEN=token, PT_PUBLIC_URL=page, PT_ARTIFACTS=art,
               PT_API="site", PT_ENV="dev", PT_EXPECT_BODY="rev-1", PT_EXPECT_RESULT=result.text,
               PT_CHROMIUM=CHROMIUM)
    with Load(n.url("", "public"), "/site/v1/page") as load:
        time.sleep(1.5)  # a few seconds of traffic in the history first
        p = subprocess.run(["node", SCRIPT], cwd=BROWSER_DIR, env=env,
                           capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    out = "stdout:\n%s\nstderr:\n%s\nscreenshots in %s" % (p.stdout, p.stderr, art)
    assert p.returncode == 0, out
    assert "all steps passed" in p.stdout, out
    assert load.sent > 100, (load.sent, load.failed)
    assert glob.glob(os.path.join(art, "*-dashboard.png")), out

    # the rollback made through the console is in the history
    r = requests.get(admin + "/admin/environments/dev/deployments?api=site", headers=auth, timeout=10)
    latest = r.json()["items"][0]
    assert latest["revision"] == 1 and latest.get("status", "active") == "active", latest
    assert requests.get(page, timeout=10).text == "rev-1"
