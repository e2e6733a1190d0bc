"""
The README's example, as `make run` builds it: the ERP database from
examples/erp.sql, the CRM API generated from it, the examples/ APIs beside it,
all loaded by one node; a few of the curl lines `make run` prints.
"""
import os
import shutil
import sqlite3
import subprocess

import requests

from conftest import BIN, Portico

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def test_make_run_example(tmp_path):
    db = tmp_path / "erp.db"
    con = sqlite3.connect(db)
    con.executescript(open(os.path.join(ROOT, "examples", "erp.sql")).read())
    con.close()
    apis = {}
    for name in os.listdir(os.path.join(ROOT, "examples", "apis")):
        apis[name] = open(os.path.join(ROOT, "examples", "apis", name)).read()
    (tmp_path / "apis").mkdir()
    p = subprocess.run([BIN, "generate", "--db", "sqlite:%s" % db, "--name", "crm",
                        "--base-path", "/crm/v1", "--title", "CRM", "--version", "1",
                        "--naming", "camel", "-o", str(tmp_path / "apis" / "crm.yaml")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    apis["crm.yaml"] = (tmp_path / "apis" / "crm.yaml").read_text()
    config = open(os.path.join(ROOT, "examples", "portico.yaml")).read()
    config = config.replace("127.0.0.1:8080", "127.0.0.1:0").replace('access_log: "-"',
                                                                     "access_log: access.log")
    n = Portico(tmp_path, config, apis)
    n.start()
    try:
        r = requests.get(n.url("/crm/v1/customers"), params={"limit": 2}, timeout=10)
        assert r.status_code == 200 and len(r.json()) == 2
        assert 'rel="next"' in r.headers["Link"]
        r = requests.get(n.url("/crm/v1/customers/1"), timeout=10)
        assert r.json()["name"] == "Ada Lovelace" and r.json()["balance"] == 120.5
        r = requests.post(n.url("/crm/v1/customers"), timeout=10,
                          json={"name": "Alan Turing", "email": "alan@example.com"})
        assert r.status_code == 201 and r.headers["Location"].startswith("/crm/v1/customers/")
        r = requests.get(n.url("/crm/v1/order_lines/1/2"), timeout=10)
        assert r.json() == {"orderId": 1, "lineNo": 2, "sku": "P-200", "quantity": 3}
        r = requests.post(n.url("/crm/v1/orders"), json={"customerId": 999}, timeout=10)
        assert r.status_code == 422
        assert requests.get(n.url("/hello/v1/greetings"), timeout=10).status_code == 200
    finally:
        assert n.stop() == 0
    n.check_clean()
