"""A database server restarting under load: a service API with
GET /items/{id} (a SELECT by key) on PostgreSQL and on MariaDB, a steady
load from a few threads, and in the middle a restart of the database server
(PostgreSQL: pg_ctl restart -m fast; MariaDB: SIGTERM, then started again on
the same port and data directory). Requests during the outage fail cleanly
(a 500 or 503 problem+json, in time, never a reset connection); once the
server is back the node answers 200 again by itself, within a few seconds,
without a restart of the node; the node exits cleanly (no sanitizer
report: checked by portico_factory)."""
import json
import threading
import time

import pytest
import requests

from conftest import node_config

ROWS = 20
CLIENT_TIMEOUT = 5.0
RECOVERY = 3.0  # seconds after the server is back by which every request succeeds

ITEMS_API = """
name: items
base_path: /items/v1
kind: service
title: Items
version: "1"
connections:
  db:
    url: "%s"
    pool: {max: 4}
    timeout: 2s
processes:
  get_item:
    mode: low_latency
    steps:
      - name: row
        sql:
          query: SELECT id, name FROM items WHERE id = :id
          params: {id: path.id}
          result: row
routes:
  - {method: GET, path: "/items/{id}", process: get_item}
"""


class Load:
    """Threads GETting /items/{id} in a loop, each on a new connection; every
    answer is kept as (start, end, status or exception, content type, body)."""

    def __init__(self, node, threads=4):
        self.node = node
        self.stop_at = None
        self.results = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]

    def run(self, n):
        i = n
        while time.time() < self.stop_at:
            i = (i + 7) % ROWS + 1
            start = time.time()
            try:
                r = requests.get(self.node.url("/items/v1/items/%d" % i), timeout=CLIENT_TIMEOUT,
                                 headers={"Connection": "close"})
                res = (start, time.time(), r.status_code, r.headers.get("Content-Type", ""),
                       r.text, i)
            except requests.RequestException as e:
                res = (start, time.time(), e, "", "", i)
            with self.lock:
                self.results.append(res)
            time.sleep(0.01)

    def start(self, duration):
        self.stop_at = time.time() + duration
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            t.join(timeout=CLIENT_TIMEOUT * 3)
            assert not t.is_alive(), "a client thread hangs"


@pytest.fixture(params=["postgresql", "mariadb"])
def server(request):
    srv = request.getfixturevalue("pg" if request.param == "postgresql" else "mariadb")
    rows = ", ".join("(%d, 'item %d')" % (i, i) for i in range(1, ROWS + 1))
    name = "r_%s_%s" % (request.function.__name__[5:20], request.param)
    srv.create_db(name, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL);\n"
                  "INSERT INTO items VALUES %s;\n" % rows)
    srv.kind = request.param
    srv.test_url = srv.url(name)
    return srv


def test_requests_recover_after_database_restart(portico_factory, server):
    node = portico_factory(config=node_config(), apis={"items.yaml": ITEMS_API % server.test_url})
    r = requests.get(node.url("/items/v1/items/3"), timeout=CLIENT_TIMEOUT)
    assert r.status_code == 200 and r.json() == {"id": 3, "name": "item 3"}, r.text

    load = Load(node)
    load.start(duration=30)  # ended below, RECOVERY + 1.5 s after the server is back
    time.sleep(1.5)
    down = time.time()
    server.restart()
    back = time.time()
    load.stop_at = back + RECOVERY + 1.5
    load.join()
    res = load.results

    # no request hung or was cut: every one has an HTTP answer in time
    broken = [x for x in res if not isinstance(x[2], int)]
    assert not broken, "requests without an answer: %r" % [(x[2], x[0] - down) for x in broken]
    # a failure is a clean problem+json 500/503
    for start, end, status, ctype, body, i in res:
        if status == 200:
            assert json.loads(body) == {"id": i, "name": "item %d" % i}, body
        else:
            assert status in (500, 503), (status, body, start - down)
            assert ctype.startswith("application/problem+json"), (status, ctype, body)
    before = [x for x in res if x[1] < down]
    after = [x for x in res if x[0] > back + RECOVERY]
    assert before and all(x[2] == 200 for x in before), [x[2] for x in before]
    # back without a restart of the node, within RECOVERY seconds
    assert len(after) >= 10, "too few requests after the restart: %d" % len(after)
    failed = [(x[2], round(x[0] - back, 2), x[4]) for x in after if x[2] != 200]
    assert not failed, "still failing %.1f s after the database came back (restart took " \
        "%.1f s): %r" % (RECOVERY, back - down, failed[:5])

    r = requests.get(node.url("/items/v1/items/5"), timeout=CLIENT_TIMEOUT)
    assert r.status_code == 200 and r.json() == {"id": 5, "name": "item 5"}


def test_first_requests_after_idle_restart_succeed(portico_factory, server):
    """The database restarts while the node is idle, right after a burst that
    left every pooled connection open (and recently used): each is found dead
    on use, replaced and the statement retried, so not one request fails."""
    node = portico_factory(config=node_config(), apis={"items.yaml": ITEMS_API % server.test_url})
    load = Load(node)
    load.start(duration=0.5)  # fills the pool: 4 threads, pool.max 4
    load.join()
    assert all(x[2] == 200 for x in load.results)
    server.restart()
    statuses = []
    for i in range(1, 9):
        r = requests.get(node.url("/items/v1/items/%d" % i), timeout=CLIENT_TIMEOUT)
        statuses.append(r.status_code)
    assert statuses == [200] * 8, statuses
