"""Service APIs end to end: routes that run processes of steps (sql on
SQLite, map, respond) against a real database file, with request bodies
checked against schemas, hostile input, transactions, `when:` and `map`
steps, declared headers, the process pool's limits, max_execution_time,
clients that leave while their process runs, and configuration errors
reported by `portico validate`."""
import json
import os
import re
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.parse

import pytest
import requests

from conftest import BIN, Portico, RawClient, node_config, wait_until

PROBLEM = "application/problem+json"
HEX32 = re.compile(r"^[0-9a-f]{32}$")
ISO_DT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")

SCHEMA_SQL = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT UNIQUE,
    balance REAL NOT NULL DEFAULT 0 CHECK (balance >= 0),
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    amount NUMERIC NOT NULL CHECK (amount > 0)
);
"""

CRM_API = """
name: crm
base_path: /crm/v1
kind: service
title: CRM
version: "1"
connections:
  erp:
    url: sqlite:../erp.db
headers: [X-Tenant]
schemas:
  customer:
    type: object
    required: [name]
    additionalProperties: false
    properties:
      id: {type: integer, readOnly: true}
      name: {type: string, maxLength: 40}
      email: {type: string, format: email, nullable: true}
      balance: {type: number, minimum: 0}
processes:
  list_customers:
    steps:
      - name: rows
        sql:
          query: SELECT id, name, email, balance, created_at FROM customers ORDER BY id LIMIT :limit
          params: {limit: "coalesce(query.limit, 20)"}
  get_customer:
    steps:
      - sql:
          query: SELECT id, name, email, balance, created_at FROM customers WHERE id = :id
          params: {id: path.id}
          result: row
  create_customer:
    on_error: {unique_violation: 409}
    steps:
      - name: ins
        sql:
          query: INSERT INTO customers(name, email, balance) VALUES (:name, :email, :balance)
          params: {name: body.name, email: body.email, balance: "default(body.balance, 0)"}
          result: key
      - respond:
          status: 201
          headers: {Location: "/crm/v1/customers/${steps.ins.key}"}
          body: "{id: steps.ins.key, name: body.name}"
  update_customer:
    steps:
      - name: upd
        sql:
          query: >-
            UPDATE customers SET name = :name, email = :email, balance = :balance
            WHERE id = :id
          params: {id: path.id, name: body.name, email: body.email,
                   balance: "default(body.balance, 0)"}
          result: affected
      - when: "steps.upd.affected == 0"
        respond:
          status: 404
          body: "{missing: path.id}"
  delete_customer:
    steps:
      - name: del
        sql:
          query: DELETE FROM customers WHERE id = :id
          params: {id: path.id}
          result: affected
  create_order:
    steps:
      - name: ins
        sql:
          query: INSERT INTO orders(customer_id, amount) VALUES (:customer_id, :amount)
          params: {customer_id: body.customer_id, amount: body.amount}
          result: key
      - respond:
          status: 201
          body: "{id: steps.ins.key}"
  create_pair:
    transaction: true
    steps:
      - name: first
        sql:
          query: INSERT INTO customers(name, email) VALUES (:name, :email)
          params: {name: body.first.name, email: body.first.email}
          result: key
      - name: second
        sql:
          query: INSERT INTO customers(name, email) VALUES (:name, :email)
          params: {name: body.second.name, email: body.second.email}
          result: key
      - respond:
          status: 201
          body: "{first: steps.first.key, second: steps.second.key}"
  create_pair_implicit:
    steps:
      - name: first
        sql:
          query: INSERT INTO customers(name, email) VALUES (:name, :email)
          params: {name: body.first.name, email: body.first.email}
          result: key
      - name: second
        sql:
          query: INSERT INTO customers(name, email) VALUES (:name, :email)
          params: {name: body.second.name, email: body.second.email}
          result: key
  customer_with_order:
    transaction: true
    steps:
      - name: cust
        sql:
          query: INSERT INTO customers(name, email) VALUES (:name, :email)
          params: {name: body.name, email: body.email}
          result: key
      - name: ord
        sql:
          query: INSERT INTO orders(customer_id, amount) VALUES (:customer_id, :amount)
          params: {customer_id: "coalesce(body.customer_id, steps.cust.key)", amount: body.amount}
          result: key
  report:
    steps:
      - name: rows
        sql:
          query: SELECT id, name FROM customers WHERE name LIKE :prefix ORDER BY id
          params: {prefix: "concat(query.prefix, '%')"}
      - name: flagged
        when: "query.flag == 'yes'"
        sql:
          query: SELECT 'on' AS flag, :tenant AS tenant
          params: {tenant: "header['x-tenant']"}
          result: row
      - name: out
        map:
          over: steps.rows
          fields: {Id: item.id, Name: upper(item.name), Pos: index}
      - name: summary
        map:
          fields: {count: length(steps.out), first: "steps.out[0].Name"}
      - respond:
          headers: {X-Tenant-Seen: "${header['x-tenant']}"}
          body: >-
            {items: steps.out, summary: steps.summary, flagged: steps.flagged,
             tenant: header['x-tenant'], secret: header['x-secret'],
             host: header['host'], headers: header}
  maybe:
    steps:
      - when: "query.go == '1'"
        map:
          fields: {ok: true, go: query.go}
  echo:
    steps:
      - respond:
          body: "{got: body}"
  slow:
    steps:
      - name: touch  # reads a table, so that the connection opens its WAL file
        sql:
          query: SELECT count(*) AS n FROM customers
          result: row
      - sql:
          query: >-
            WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < :n)
            SELECT count(*) AS n FROM c
          params: {n: "number(coalesce(query.n, 5000000))"}
          result: row
  count:
    steps:
      - sql:
          query: SELECT count(*) AS n FROM customers
          result: row
routes:
  - {method: GET, path: /customers, process: list_customers}
  - {method: GET, path: "/customers/{id}", process: get_customer}
  - {method: POST, path: /customers, process: create_customer, body_schema: customer}
  - {method: PUT, path: "/customers/{id}", process: update_customer, body_schema: customer}
  - {method: DELETE, path: "/customers/{id}", process: delete_customer}
  - {method: POST, path: /orders, process: create_order}
  - {method: POST, path: /pairs, process: create_pair}
  - {method: POST, path: /pairs-implicit, process: create_pair_implicit}
  - {method: POST, path: /customer-with-order, process: customer_with_order}
  - {method: GET, path: /report, process: report}
  - {method: GET, path: /maybe, process: maybe}
  - {method: POST, path: /echo, process: echo}
  - {method: GET, path: /slow, process: slow}
  - {method: GET, path: /count, process: count}
"""


def make_db(path):
    db = sqlite3.connect(str(path))
    db.executescript(SCHEMA_SQL)
    db.commit()
    db.close()


def db_rows(path, sql="SELECT id, name, email, balance FROM customers ORDER BY id"):
    db = sqlite3.connect(str(path))
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def table_names(path):
    return {r[0] for r in db_rows(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}


def start_node(dirpath, config=None):
    make_db(dirpath / "erp.db")
    n = Portico(dirpath, config or node_config(), {"crm.yaml": CRM_API})
    n.start()
    return n


def stop_node(n):
    rc = n.stop()
    assert rc == 0, "portico exited with %s:\n%s" % (rc, n.stderr())
    n.check_clean()


@pytest.fixture(scope="module")
def crm(tmp_path_factory):
    """One node for the module's functional tests (bodies up to 16 MiB)."""
    n = start_node(tmp_path_factory.mktemp("crm"),
                   node_config(limits="  max_body_size: 16MiB\n"))
    yield n
    stop_node(n)


@pytest.fixture
def node(portico_factory, tmp_path):
    """A node of its own with extra top-level YAML (processes: ...)."""
    def make(extra):
        make_db(tmp_path / "erp.db")
        return portico_factory(node_config(extra=extra), {"crm.yaml": CRM_API})
    return make


def url(n, path):
    return n.url("/crm/v1" + path)


def post(n, path, body, **kw):
    return requests.post(url(n, path), json=body, timeout=kw.pop("timeout", 10), **kw)


def assert_problem(r, status, type_=None):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith(PROBLEM), r.headers
    p = r.json()
    assert p["status"] == status
    if type_ is not None:
        assert p["type"] == "urn:portico:problem:" + type_, p
    return p


def serves(n):
    r = requests.get(url(n, "/count"), timeout=10)
    return r.status_code == 200 and isinstance(r.json()["n"], int)


# ---------------------------------------------------------------- CRUD

def test_crud_cycle(crm):
    db = crm.dir / "erp.db"
    name = "\u00c9mile O'Brien \"x\" \u65e5\u672c"
    r = post(crm, "/customers", {"name": name, "email": "emile@example.com", "balance": 12.5})
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert HEX32.match(r.headers["X-Execution-Id"]), r.headers
    created = r.json()
    cid = created["id"]
    assert type(cid) is int and created["name"] == name
    assert r.headers["Location"] == "/crm/v1/customers/%d" % cid

    # read back: JSON types from the column types
    r = requests.get(crm.url(r.headers["Location"]), timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["X-Execution-Id"]
    c = r.json()
    assert type(c["id"]) is int and c["id"] == cid
    assert c["name"] == name  # unicode and quotes round-trip
    assert c["email"] == "emile@example.com"
    assert type(c["balance"]) in (int, float) and c["balance"] == 12.5
    assert ISO_DT.match(c["created_at"]), c
    # stored verbatim too
    assert db_rows(db, "SELECT name FROM customers WHERE id = %d" % cid) == [(name,)]

    # a second one, without the optional fields: defaults and null
    r = post(crm, "/customers", {"name": "Zo\u00eb"})
    assert r.status_code == 201, r.text
    cid2 = r.json()["id"]
    c2 = requests.get(url(crm, "/customers/%d" % cid2), timeout=10).json()
    assert c2["email"] is None and c2["balance"] == 0 and type(c2["balance"]) in (int, float)

    # list: an array of objects, in id order, with the limit from the query
    r = requests.get(url(crm, "/customers"), params={"limit": "1000"}, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    rows = r.json()
    assert isinstance(rows, list)
    ids = [x["id"] for x in rows]
    assert ids == sorted(ids) and cid in ids and cid2 in ids
    assert next(x for x in rows if x["id"] == cid) == c
    r = requests.get(url(crm, "/customers"), params={"limit": "1"}, timeout=10)
    assert r.status_code == 200 and len(r.json()) == 1

    # update
    r = requests.put(url(crm, "/customers/%d" % cid),
                     json={"name": name + " II", "email": "emile2@example.com", "balance": 3},
                     timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"affected": 1}
    c = requests.get(url(crm, "/customers/%d" % cid), timeout=10).json()
    assert c["name"] == name + " II" and c["email"] == "emile2@example.com" and c["balance"] == 3
    # update of a missing one: the `when:` respond step answers 404
    r = requests.put(url(crm, "/customers/999999"), json={"name": "nobody"}, timeout=10)
    assert r.status_code == 404 and r.json() == {"missing": "999999"}

    # delete
    r = requests.delete(url(crm, "/customers/%d" % cid), timeout=10)
    assert r.status_code == 200 and r.json() == {"affected": 1}
    r = requests.get(url(crm, "/customers/%d" % cid), timeout=10)
    assert_problem(r, 404, "not-found")
    assert r.headers["X-Execution-Id"]
    r = requests.delete(url(crm, "/customers/%d" % cid), timeout=10)
    assert r.status_code == 200 and r.json() == {"affected": 0}
    assert db_rows(db, "SELECT count(*) FROM customers WHERE id = %d" % cid) == [(0,)]


def test_last_step_result_or_204(crm):
    r = requests.get(url(crm, "/maybe"), timeout=10)
    assert r.status_code == 204 and r.content == b""
    assert r.headers["X-Execution-Id"]
    r = requests.get(url(crm, "/maybe?go=1"), timeout=10)
    assert r.status_code == 200 and r.json() == {"ok": True, "go": "1"}


def test_body_media_types(crm):
    r = requests.post(url(crm, "/echo"), data="plain words", timeout=10,
                      headers={"Content-Type": "text/plain"})
    assert r.status_code == 200 and r.json() == {"got": "plain words"}
    r = requests.post(url(crm, "/echo"), data=b'{"a":[1,2.5,null,"\\u00e9"]}', timeout=10,
                      headers={"Content-Type": "application/vnd.x+json"})
    assert r.status_code == 200 and r.json() == {"got": {"a": [1, 2.5, None, "\u00e9"]}}
    # XML is the same tree (an empty element is "")
    r = requests.post(url(crm, "/echo"), data=b"<a/>", timeout=10,
                      headers={"Content-Type": "application/xml"})
    assert r.status_code == 200 and r.json() == {"got": ""}
    r = requests.post(url(crm, "/echo"), data=b"\x00\x01", timeout=10,
                      headers={"Content-Type": "application/octet-stream"})
    assert_problem(r, 415)
    # a route with a body schema takes JSON only
    r = requests.post(url(crm, "/customers"), data='{"name":"x"}', timeout=10,
                      headers={"Content-Type": "text/plain"})
    assert_problem(r, 415)


# ---------------------------------------------------------------- constraints

def test_constraint_violations(crm):
    db = crm.dir / "erp.db"
    r = post(crm, "/customers", {"name": "Dup One", "email": "dup@example.com"})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    before = db_rows(db)
    # UNIQUE
    r = post(crm, "/customers", {"name": "Dup Two", "email": "dup@example.com"})
    assert_problem(r, 409, "conflict")
    assert r.headers["X-Execution-Id"]
    # FOREIGN KEY (foreign_keys is on)
    r = post(crm, "/orders", {"customer_id": 987654, "amount": 5})
    assert_problem(r, 422, "unprocessable")
    # NOT NULL
    r = post(crm, "/orders", {"customer_id": cid})
    assert_problem(r, 422, "unprocessable")
    # CHECK
    r = post(crm, "/orders", {"customer_id": cid, "amount": -1})
    assert_problem(r, 422, "unprocessable")
    assert db_rows(db) == before
    assert db_rows(db, "SELECT count(*) FROM orders") == [(0,)]
    # and a good one goes in
    r = post(crm, "/orders", {"customer_id": cid, "amount": 7})
    assert r.status_code == 201, r.text
    assert db_rows(db, "SELECT customer_id, amount FROM orders") == [(cid, 7)]
    # a delete that a foreign key forbids
    r = requests.delete(url(crm, "/customers/%d" % cid), timeout=10)
    assert_problem(r, 422, "unprocessable")
    assert db_rows(db) == before


# ---------------------------------------------------------------- hostile input

def test_sql_injection_is_data(crm):
    db = crm.dir / "erp.db"
    evil = "'; DROP TABLE customers; --"
    r = post(crm, "/customers", {"name": evil, "email": None})
    assert r.status_code == 201, r.text
    eid = r.json()["id"]
    assert requests.get(url(crm, "/customers/%d" % eid), timeout=10).json()["name"] == evil
    assert {"customers", "orders"} <= table_names(db)
    assert db_rows(db, "SELECT name FROM customers WHERE id = %d" % eid) == [(evil,)]
    before = db_rows(db)

    # SQL in the path: bound as a value, matches nothing
    for raw in ("1 OR 1=1", "1' OR '1'='1", "%d; DELETE FROM customers" % eid):
        r = requests.get(url(crm, "/customers/" + urllib.parse.quote(raw, safe="")), timeout=10)
        assert_problem(r, 404, "not-found")
        r = requests.delete(url(crm, "/customers/" + urllib.parse.quote(raw, safe="")), timeout=10)
        assert r.status_code == 200 and r.json() == {"affected": 0}, r.text
    # SQL and odd values in the query string: LIMIT takes integers only
    for limit in ("1; DROP TABLE customers", "abc", "2.5", "123456789012345678901234567890",
                  "1e400"):
        r = requests.get(url(crm, "/customers"), params={"limit": limit}, timeout=10)
        assert_problem(r, 400, "bad-request")
    r = requests.get(url(crm, "/customers"), params={"limit": "-1"}, timeout=10)  # no limit
    assert r.status_code == 200 and len(r.json()) == len(before), r.text
    r = requests.get(url(crm, "/report"), params={"prefix": "%' OR 1=1 --"}, timeout=10)
    assert r.status_code == 200 and r.json()["items"] == []
    assert db_rows(db) == before
    assert {"customers", "orders"} <= table_names(db)


def test_huge_numbers_never_break_the_table(crm):
    """A number beyond what a double holds is turned away (400) or stored so
    that it reads back: never a 500, neither now nor on later reads."""
    db = crm.dir / "erp.db"
    before = db_rows(db)
    try:
        for text in (b'{"name":"Big","balance":1e400}',
                     b'{"name":"Big","balance":123456789012345678901234567890}',
                     b'{"name":"Big","balance":-1e400}',
                     b'{"name":"Big","balance":1e-400}'):
            r = requests.post(url(crm, "/customers"), data=text, timeout=10,
                              headers={"Content-Type": "application/json"})
            assert r.status_code < 500, (text, r.status_code, r.text)
            assert serves(crm)
            if r.status_code == 201:
                got = requests.get(url(crm, "/customers/%d" % r.json()["id"]), timeout=10)
                assert got.status_code == 200, (text, got.status_code, got.text)
            else:
                assert_problem(r, 400)
            r = requests.get(url(crm, "/customers"), params={"limit": "1000"}, timeout=10)
            assert r.status_code == 200, (text, r.status_code, r.text)
        r = requests.get(url(crm, "/slow"), params={"n": "1e400"}, timeout=10)
        assert r.status_code < 500, r.text
        # whatever they did, they added at most their own rows
        assert [x for x in db_rows(db) if x[1] != "Big"] == before
    finally:
        con = sqlite3.connect(str(db), timeout=10)
        con.execute("DELETE FROM customers WHERE name = 'Big'")
        con.commit()
        con.close()
    assert db_rows(db) == before
    assert serves(crm)


def test_bad_bodies_leave_data_untouched(crm):
    db = crm.dir / "erp.db"
    before = db_rows(db)
    orders_before = db_rows(db, "SELECT * FROM orders ORDER BY id")
    # invalid JSON
    for text in (b'{"name": "x"', b"{'name': 'x'}", b'{"name": "x"} trailing', b"\xff\xfe",
                 b'{"name": "\xc3\x28"}', b'{"name": NaN}'):
        r = requests.post(url(crm, "/customers"), data=text, timeout=10,
                          headers={"Content-Type": "application/json"})
        assert_problem(r, 400, "invalid-json")
    # wrong types: every violation listed, with a JSON pointer
    r = post(crm, "/customers", {"name": 5, "email": "not-an-email", "balance": "lots",
                                 "admin": True, "id": 3})
    p = assert_problem(r, 400, "validation-failed")
    errs = p["errors"]
    assert isinstance(errs, list) and all(set(e) >= {"pointer", "message"} for e in errs), errs
    pointers = {e["pointer"] for e in errs}
    assert {"/name", "/email", "/balance"} <= pointers, errs
    assert any(ptr in ("/admin", "") for ptr in pointers), errs
    r = post(crm, "/customers", {"name": "x", "balance": -0.5})
    assert [e["pointer"] for e in assert_problem(r, 400)["errors"]] == ["/balance"]
    for body in ([], "str", None, 12, {"email": "a@b.c"}):
        r = post(crm, "/customers", body)
        assert_problem(r, 400, "validation-failed")
    # deep nesting
    r = requests.post(url(crm, "/customers"), data=b"[" * 10000, timeout=10,
                      headers={"Content-Type": "application/json"})
    assert_problem(r, 400, "invalid-json")
    r = requests.post(url(crm, "/echo"), data=b'{"a":' * 10000 + b"1" + b"}" * 10000,
                      timeout=10, headers={"Content-Type": "application/json"})
    assert_problem(r, 400, "invalid-json")
    # a 5 MB string, within the body limit: the schema's maxLength says no
    r = post(crm, "/customers", {"name": "A" * (5 * 1024 * 1024)}, timeout=30)
    p = assert_problem(r, 400, "validation-failed")
    assert [e["pointer"] for e in p["errors"]] == ["/name"]
    # over the body limit (16 MiB)
    r = requests.post(url(crm, "/customers"), data=b'{"name":"' + b"B" * (17 * 1024 * 1024) + b'"}',
                      timeout=30, headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.status_code

    # nothing changed, and the node still serves
    assert db_rows(db) == before
    assert db_rows(db, "SELECT * FROM orders ORDER BY id") == orders_before
    assert {"customers", "orders"} <= table_names(db)
    assert serves(crm)
    assert requests.get(url(crm, "/count"), timeout=10).json() == {"n": len(before)}


# ---------------------------------------------------------------- transactions

def test_transaction_all_or_nothing(crm):
    db = crm.dir / "erp.db"
    before = db_rows(db)
    # the second INSERT breaks UNIQUE: the first one is rolled back
    r = post(crm, "/pairs", {"first": {"name": "Tx A", "email": "txa@example.com"},
                             "second": {"name": "Tx B", "email": "txa@example.com"}})
    assert_problem(r, 409, "conflict")
    # the second breaks NOT NULL
    r = post(crm, "/pairs", {"first": {"name": "Tx C", "email": "txc@example.com"},
                             "second": {"email": "txd@example.com"}})
    assert_problem(r, 422, "unprocessable")
    # two writing steps without `transaction:`: a transaction by default
    r = post(crm, "/pairs-implicit", {"first": {"name": "Tx E", "email": "txe@example.com"},
                                      "second": {"name": "Tx F", "email": "txe@example.com"}})
    assert_problem(r, 409, "conflict")
    # a customer and an order for a customer that does not exist
    r = post(crm, "/customer-with-order", {"name": "Tx G", "email": "txg@example.com",
                                           "customer_id": 424242, "amount": 3})
    assert_problem(r, 422, "unprocessable")
    assert db_rows(db) == before, "a failed process left rows behind"
    assert db_rows(db, "SELECT count(*) FROM customers WHERE name LIKE 'Tx %'") == [(0,)]
    # the lock is released: the same process commits when both steps pass
    r = post(crm, "/pairs", {"first": {"name": "Tx H", "email": "txh@example.com"},
                             "second": {"name": "Tx I", "email": "txi@example.com"}})
    assert r.status_code == 201, r.text
    keys = r.json()
    assert keys["second"] == keys["first"] + 1
    r = post(crm, "/customer-with-order", {"name": "Tx J", "email": "txj@example.com",
                                           "amount": 3})
    assert r.status_code == 200, r.text
    assert r.json()["affected"] == 1
    assert db_rows(db, "SELECT name FROM customers WHERE name LIKE 'Tx %' ORDER BY id") == \
        [("Tx H",), ("Tx I",), ("Tx J",)]
    assert db_rows(db, "SELECT c.name FROM orders o JOIN customers c ON c.id = o.customer_id "
                       "WHERE c.name = 'Tx J'") == [("Tx J",)]


# ---------------------------------------------------------------- when, map, headers

def test_when_map_and_declared_headers(crm):
    for n in ("map alpha", "map beta", "map gamma"):
        assert post(crm, "/customers", {"name": n}).status_code == 201
    r = requests.get(url(crm, "/report"), params={"prefix": "map "}, timeout=10,
                     headers={"X-Tenant": "acme", "X-Secret": "hunter2",
                              "Authorization": "Bearer t0k"})
    assert r.status_code == 200, r.text
    assert r.headers["X-Tenant-Seen"] == "acme"
    out = r.json()
    assert [(i["Name"], i["Pos"]) for i in out["items"]] == \
        [("MAP ALPHA", 0), ("MAP BETA", 1), ("MAP GAMMA", 2)]
    assert all(type(i["Id"]) is int for i in out["items"])
    assert out["summary"] == {"count": 3, "first": "MAP ALPHA"}
    assert out["flagged"] is None  # the `when:` was false: the step did not run
    assert out["tenant"] == "acme"
    assert out["secret"] is None  # not declared: invisible
    assert out["host"] is None  # never visible
    assert out["headers"] == {"x-tenant": "acme"}

    r = requests.get(url(crm, "/report"), params={"prefix": "map g", "flag": "yes"},
                     timeout=10, headers={"x-TENANT": "Globex \u00e9".encode()})
    assert r.status_code == 200, r.text
    out = r.json()
    assert [i["Name"] for i in out["items"]] == ["MAP GAMMA"]
    assert out["flagged"] == {"flag": "on", "tenant": out["tenant"]}
    assert out["tenant"] is not None and out["tenant"].startswith("Globex")
    # no X-Tenant at all: null
    r = requests.get(url(crm, "/report"), params={"prefix": "zzz", "flag": "no"}, timeout=10)
    assert r.status_code == 200
    out = r.json()
    assert out["items"] == [] and out["tenant"] is None and out["flagged"] is None
    assert out["summary"] == {"count": 0, "first": None}
    assert r.headers["X-Tenant-Seen"] == ""


# ---------------------------------------------------------------- pool limits

def _timed_get(u, results, i, timeout=30):
    t = time.time()
    try:
        r = requests.get(u, timeout=timeout)
        results[i] = (r.status_code, r.headers, r.text, time.time() - t)
    except Exception as e:  # noqa: BLE001 - recorded and asserted on
        results[i] = (None, {}, repr(e), time.time() - t)


def _slow_n(n_node, target=1.0):
    """A row count for /slow that takes about `target` seconds on this machine."""
    n = 1000000
    t = time.time()
    r = requests.get(url(n_node, "/slow"), params={"n": n}, timeout=30)
    assert r.status_code == 200 and r.json() == {"n": n}, r.text
    took = max(time.time() - t, 0.01)
    return int(max(200000, min(20000000, n * target / took)))


def test_pool_limits_reject_excess_with_503(node):
    n = node("processes: {max_running: 2, max_queued: 1, queue_timeout: 10s}\n")
    rows = _slow_n(n)
    u = url(n, "/slow?n=%d" % rows)
    results = [None] * 8
    threads = [threading.Thread(target=_timed_get, args=(u, results, i)) for i in range(8)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    elapsed = time.time() - t0
    assert not any(t.is_alive() for t in threads), "a request hung"
    statuses = sorted(r[0] for r in results)
    ok = [r for r in results if r[0] == 200]
    busy = [r for r in results if r[0] == 503]
    assert len(ok) + len(busy) == 8, statuses
    assert 2 <= len(ok) <= 3, statuses  # two running, at most one queued
    for r in ok:
        assert json.loads(r[2]) == {"n": rows}
    for r in busy:
        assert r[1].get("Retry-After") == "1", r[1]
        assert r[1]["Content-Type"].startswith(PROBLEM)
        assert json.loads(r[2])["type"] == "urn:portico:problem:busy"
        assert r[3] < 5, "a rejected request waited %.1fs" % r[3]
    assert elapsed < 30, elapsed
    assert wait_until(lambda: serves(n), timeout=10)


# ---------------------------------------------------------------- max_execution_time

@pytest.mark.parametrize("timeout_status", [None, 522])
def test_max_execution_time(node, timeout_status):
    extra = "processes:\n  max_execution_time: 300ms\n"
    if timeout_status:
        extra += "  timeout_status: %d\n" % timeout_status
    n = node(extra)
    t = time.time()
    r = requests.get(url(n, "/slow"), params={"n": 200000000}, timeout=20)
    took = time.time() - t
    status = timeout_status or 504
    p = assert_problem(r, status, "execution-timeout")
    assert r.headers["X-Execution-Id"]
    assert took < 5, "the statement ran %.1fs past its deadline" % took
    assert p["status"] == status
    # a short one still fits, and the interrupted connection is reusable
    r = requests.get(url(n, "/slow"), params={"n": 10}, timeout=10)
    assert r.status_code == 200 and r.json() == {"n": 10}
    assert serves(n)


# ---------------------------------------------------------------- clients that leave

def _nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def _fds(pid):
    out = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out[int(fd)] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            pass
    return out


def test_client_disconnect_while_process_runs(node):
    n = node("processes: {max_running: 2, max_queued: 1}\n")
    rows = _slow_n(n, target=0.5)
    # warm up: both process threads open their database connection
    results = [None] * 2
    ts = [threading.Thread(target=_timed_get, args=(url(n, "/slow?n=%d" % rows), results, i))
          for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert [r[0] for r in results] == [200, 200], results
    before = _nfds(n.proc.pid)
    fds_before = _fds(n.proc.pid)

    req = ("GET /crm/v1/slow?n=%d HTTP/1.1\r\nHost: a\r\n\r\n" % rows).encode()
    for _ in range(3):
        socks = []
        for _ in range(4):  # some run, some wait, some are turned away
            s = socket.create_connection(("127.0.0.1", n.port), timeout=5)
            s.sendall(req)
            socks.append(s)
        time.sleep(0.1)
        for s in socks:  # leave while the processes run
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
    # a body that never completes
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", n.port), timeout=5)
        s.sendall(b"POST /crm/v1/echo HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"a\":")
        time.sleep(0.05)
        s.close()

    assert wait_until(lambda: serves(n), timeout=15)
    with RawClient(n.port) as c:  # keep-alive still works
        for _ in range(3):
            c.send(b"GET /crm/v1/count HTTP/1.1\r\nHost: a\r\n\r\n")
            assert c.read_response().status == 200
    assert wait_until(lambda: _nfds(n.proc.pid) <= before, timeout=10), \
        "fds: %d before, %d after: %r -> %r" % (before, _nfds(n.proc.pid), fds_before,
                                                _fds(n.proc.pid))
    assert n.proc.poll() is None
    # the queued executions of clients that left were not run
    assert wait_until(lambda: "not run: the client left while it waited" in n.stderr(),
                      timeout=10), n.stderr()[-2000:]


# ---------------------------------------------------------------- portico validate

def _line_of(text, needle, nth=1):
    seen = 0
    for i, ln in enumerate(text.splitlines(), 1):
        if needle in ln:
            seen += 1
            if seen == nth:
                return i
    raise AssertionError("%r not in the definition" % needle)


BASE_API = """\
name: bad
base_path: /bad
kind: service
title: Bad
version: "1"
connections:
  erp:
    url: sqlite:erp.db
processes:
  p:
    steps:
      - sql:
%s
routes:
  - {method: GET, path: "/x/{id}", process: %s}
"""

VALIDATE_CASES = [
    # (sql step lines, route process, needle for the line, key path, message regex)
    ("          query: SELECT 1 AS one\n", "nope", "process: nope",
     r"routes\[0\]\.process", r'no process named "nope" in this API'),
    ("          query: SELECT name FROM t WHERE id = :id\n", "p", "query: SELECT",
     r"processes\.p\.steps\[0\]\.sql\.params\.id", r"the statement uses :id: bind it here"),
    ("          query: SELECT name FROM t WHERE id = :id\n"
     "          params: {id: path.id, extra: path.id}\n", "p", "params:",
     r"processes\.p\.steps\[0\]\.sql\.params", r"\"extra\" is not a parameter of the statement"),
    ("          connection: nope\n          query: SELECT 1 AS one\n", "p", "connection: nope",
     r"processes\.p\.steps\[0\]\.sql\.connection", r'no connection named "nope" in this API'),
    ("          query: SELECT name FROM t WHERE id = :id\n"
     "          params: {id: \"path.id +\"}\n", "p", "params:",
     r"processes\.p\.steps\[0\]\.sql\.params\.id", r"invalid expression: "),
    ("          query: SELECT name FROM t WHERE id = :id\n"
     "          params: {id: secrets.id}\n", "p", "params:",
     r"processes\.p\.steps\[0\]\.sql\.params\.id", r'invalid expression: .*unknown name "secrets"'),
    ("          query: SELECT name FROM t WHERE id = ?\n", "p", "query: SELECT",
     r"processes\.p\.steps\[0\]\.sql\.query", r"positional parameter"),
]


@pytest.mark.parametrize("case", VALIDATE_CASES, ids=["unknown-process", "unbound-param",
                                                      "unused-param", "unknown-connection",
                                                      "bad-expression", "unknown-root",
                                                      "positional-param"])
def test_validate_reports_process_errors(tmp_path, case):
    sql, proc, needle, key, msg = case
    text = BASE_API % (sql.rstrip("\n"), proc)
    (tmp_path / "bad.yaml").write_text(text)
    p = subprocess.run([BIN, "validate", "bad.yaml"], capture_output=True, text=True,
                       timeout=30, cwd=tmp_path)
    assert p.returncode != 0, (p.stdout, p.stderr)
    assert "bad.yaml: ok" not in p.stdout
    line = _line_of(text, needle)
    pat = r"^bad\.yaml:%d: %s: %s" % (line, key, msg)
    assert re.search(pat, p.stderr, re.M), "wanted /%s/ in:\n%s\n%s" % (pat, p.stderr, text)
    for mark in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert mark not in p.stderr


def test_validate_accepts_the_crm_definition(tmp_path):
    (tmp_path / "crm.yaml").write_text(CRM_API)
    p = subprocess.run([BIN, "validate", "crm.yaml"], capture_output=True, text=True,
                       timeout=30, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["crm.yaml: ok"]


QUERY_API = '''
name: q
base_path: /q
kind: service
title: Typed query
version: "1"
processes:
  echo:
    steps:
      - map:
          fields: {query: query}
routes:
  - method: GET
    path: /echo
    process: echo
    query:
      n: integer
      price: {type: number, minimum: 0}
      flag: {type: boolean, default: false}
      kind: {type: string, enum: [a, b], required: true}
'''


def test_declared_query_parameters_are_typed_and_validated(portico_factory):
    n = portico_factory(node_config(), {"q.yaml": QUERY_API})
    r = requests.get(n.url("/q/echo"), params={"n": "42", "price": "1.50", "kind": "a",
                                               "other": "x"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["query"] == {"n": 42, "price": 1.50, "kind": "a", "other": "x",
                                 "flag": False}
    r = requests.get(n.url("/q/echo"), params={"n": "4x", "price": "-1", "kind": "c",
                                               "flag": "maybe"}, timeout=10)
    assert r.status_code == 400
    errs = {(e["pointer"], e["message"]) for e in r.json()["errors"]}
    assert ("/query/n", "must be an integer") in errs
    assert ("/query/flag", "must be true or false") in errs
    assert any(p == "/query/price" for p, _ in errs)
    assert any(p == "/query/kind" for p, _ in errs)
    r = requests.get(n.url("/q/echo"), timeout=10)
    assert r.status_code == 400
    assert r.json()["errors"] == [{"pointer": "/query/kind", "message": "is required"}]
    r = requests.get(n.url("/q/echo?kind=a&kind=b"), timeout=10)
    assert r.status_code == 400 and r.json()["errors"][0]["message"] == "must be given once"


SORT_API = '''
name: s
base_path: /s
kind: service
title: Sorted lists
version: "1"
connections:
  db: {url: "sqlite:../s.db"}
processes:
  list:
    steps:
      - name: rows
        sql:
          query: SELECT id, name, city FROM people WHERE ${after} AND (:city IS NULL OR city = :city) ORDER BY ${order} LIMIT :limit
          params: {city: query.city, limit: page.fetch}
          page: {by: [id], sort: [name, city], default_limit: 2, max_limit: 50}
routes:
  - {method: GET, path: /people, process: list}
'''


def _walk(n, path):
    """Follows Link rel=next from path; returns all rows."""
    rows, seen = [], 0
    while path is not None and seen < 50:
        r = requests.get(n.url(path), timeout=10)
        assert r.status_code == 200, r.text
        rows += r.json()
        link = r.headers.get("Link")
        path = link[1:link.index(">")] if link else None
        seen += 1
    return rows


def test_sorted_keyset_paging(portico_factory, tmp_path):
    con = sqlite3.connect(tmp_path / "s.db")
    con.execute("CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL)")
    people = [("Zoé", "Paris"), ("Adam", "Oslo"), ("Mia", "Paris"), ("Adam", "Lima"),
              ("Bo", "Oslo"), ("Mia", "Oslo"), ("Élie", "Lima")]
    con.executemany("INSERT INTO people(name, city) VALUES (?, ?)", people)
    con.commit()
    con.close()
    n = portico_factory(node_config(), {"s.yaml": SORT_API})
    by_id = _walk(n, "/s/people")
    assert [p["id"] for p in by_id] == list(range(1, 8))
    asc = _walk(n, "/s/people?sort=name")
    assert [(p["name"], p["id"]) for p in asc] == sorted((p["name"], p["id"]) for p in by_id)
    desc = _walk(n, "/s/people?sort=-name&limit=3")
    assert [(p["name"], p["id"]) for p in desc] == sorted(
        ((p["name"], p["id"]) for p in by_id), reverse=True)
    paris = _walk(n, "/s/people?sort=-city&city=Paris")
    assert sorted(p["id"] for p in paris) == [1, 3]
    # a sort that is not allowed, a cursor from another sort, SQL in the sort
    r = requests.get(n.url("/s/people"), params={"sort": "id; DROP TABLE people"}, timeout=10)
    assert r.status_code == 400 and "sort must be one of" in r.json()["detail"]
    first = requests.get(n.url("/s/people?sort=name"), timeout=10)
    link = first.headers["Link"]
    cursor = link[link.index("cursor=") + 7:link.index(">")]
    r = requests.get(n.url("/s/people"), params={"sort": "city", "cursor": cursor}, timeout=10)
    assert r.status_code == 400
    r = requests.get(n.url("/s/people"), params={"cursor": cursor}, timeout=10)
    assert r.status_code == 400


XML_API = '''
name: x
base_path: /x
kind: service
title: XML bodies
version: "1"
schemas:
  order:
    type: object
    required: [id, lines]
    properties:
      id: {type: integer}
      paid: {type: boolean}
      note: {type: string, nullable: true}
      lines:
        type: array
        items:
          type: object
          properties:
            sku: {type: string}
            qty: {type: integer, minimum: 1}
processes:
  echo:
    steps:
      - map:
          fields: {got: body, n: "length(body.lines)"}
routes:
  - {method: POST, path: /orders, process: echo, body_schema: order}
'''


def test_xml_bodies_and_xml_answers(portico_factory, tmp_path):
    import xml.etree.ElementTree as ET
    n = portico_factory(node_config(), {"x.yaml": XML_API})
    xml = (b'<?xml version="1.0"?><order xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
           b'<id>42</id><paid>true</paid><note xsi:nil="true"/>'
           b'<lines><sku>A&amp;B</sku><qty>2</qty></lines></order>')
    r = requests.post(n.url("/x/orders"), data=xml, timeout=10,
                      headers={"Content-Type": "application/xml"})
    assert r.status_code == 200, r.text
    assert r.json() == {"got": {"id": 42, "paid": True, "note": None,
                                "lines": [{"sku": "A&B", "qty": 2}]}, "n": 1}
    # the same answer as XML when Accept prefers it
    r = requests.post(n.url("/x/orders"), data=xml, timeout=10,
                      headers={"Content-Type": "application/xml",
                               "Accept": "application/xml, application/json;q=0.5"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/xml")
    root = ET.fromstring(r.content)
    assert root.tag == "result"
    assert root.find("got/id").text == "42" and root.find("got/lines/sku").text == "A&B"
    assert root.find("n").text == "1"
    # typed by the schema: a bad integer is a violation
    bad = xml.replace(b"<qty>2</qty>", b"<qty>two</qty>")
    r = requests.post(n.url("/x/orders"), data=bad, timeout=10,
                      headers={"Content-Type": "application/xml"})
    assert r.status_code == 400 and r.json()["errors"][0]["pointer"] == "/lines/0/qty"
    # hostile XML: a billion laughs, an external entity, malformed
    bomb = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
            b'<order><id>&c;</id></order>')
    xxe = (b'<?xml version="1.0"?><!DOCTYPE o [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'<order><id>&x;</id></order>')
    for doc in (bomb, xxe, b"<order><id>1</order>", b"<a>" * 5000 + b"</a>" * 5000):
        r = requests.post(n.url("/x/orders"), data=doc, timeout=10,
                          headers={"Content-Type": "text/xml"})
        assert r.status_code == 400, r.text
        assert r.json()["type"] == "urn:portico:problem:invalid-xml"
        assert "root:" not in r.text


RECORDS_API = '''
name: r
base_path: /r
kind: service
title: Records
version: "1"
processes:
  ok:
    steps:
      - map: {fields: {n: "number(path.n) + 1"}}
  fast:
    mode: low_latency
    steps:
      - map: {fields: {n: 1}}
routes:
  - {method: POST, path: "/ok/{n}", process: ok}
  - {method: GET, path: /fast, process: fast}
'''


def test_execution_records(portico_factory):
    n = portico_factory(node_config(), {"r.yaml": RECORDS_API})
    r = requests.post(n.url("/r/ok/41"), json={"x": 1}, timeout=10)
    assert r.status_code == 200 and r.json() == {"n": 42}
    eid = r.headers["X-Execution-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", eid) and eid != r.headers["X-Request-Id"]
    rec = requests.get(n.url("/_portico/executions/" + eid), timeout=10)
    assert rec.status_code == 200, rec.text
    j = rec.json()
    assert j["id"] == eid and j["api"] == "r" and j["process"] == "ok"
    assert j["status"] == "COMPLETE" and j["http_status"] == 200
    assert j["bytes_in"] == len(b'{"x": 1}') and j["bytes_out"] == len(b'{"n":42}')
    assert j["enqueued_at"].endswith("Z") and j["run_ms"] >= 0
    # a failed execution keeps its message
    r = requests.post(n.url("/r/ok/abc"), timeout=10)
    assert r.status_code == 500
    j = requests.get(n.url("/_portico/executions/" + r.headers["X-Execution-Id"]),
                     timeout=10).json()
    assert j["status"] == "ERROR" and j["http_status"] == 500 and "number" in j["message"]
    # low_latency processes keep none; unknown ids are 404
    r = requests.get(n.url("/r/fast"), timeout=10)
    assert requests.get(n.url("/_portico/executions/" + r.headers["X-Execution-Id"]),
                        timeout=10).status_code == 404
    assert requests.get(n.url("/_portico/executions/" + "0" * 32), timeout=10).status_code == 404
    assert requests.get(n.url("/_portico/executions/x"), timeout=10).status_code == 404


def test_pool_min_connections_opened_ahead(portico_factory, tmp_path):
    sqlite3.connect(tmp_path / "w.db").close()
    api = '''
name: w
base_path: /w
kind: service
title: Warm
version: "1"
connections:
  db: {url: "sqlite:../w.db", pool: {min: 3, max: 4}}
processes:
  p: {steps: [{sql: {query: "SELECT 1 AS one", result: row}}]}
routes:
  - {method: GET, path: /, process: p}
'''
    n = portico_factory(node_config(), {"w.yaml": api})
    n.wait_log('API "w": connections.db: 3 connections open (pool.min)')
    assert requests.get(n.url("/w/"), timeout=10).json() == {"one": 1}
    bad = api.replace("min: 3", "min: 5")
    (tmp_path / "bad.yaml").write_text(bad)
    p = subprocess.run([BIN, "validate", "bad.yaml"], capture_output=True, text=True,
                       timeout=30, cwd=tmp_path)
    assert p.returncode != 0 and "connections.db.pool.min: must not exceed max (4)" in p.stderr


ROUTING_API = '''
name: v
base_path: /v
kind: service
title: Routing headers
version: "1"
processes:
  v1: {steps: [{map: {fields: {version: 1}}}]}
  v2: {steps: [{map: {fields: {version: 2}}}]}
  v2beta: {steps: [{map: {fields: {version: "'2-beta'"}}}]}
routes:
  - {method: GET, path: /thing, process: v1}
  - {method: GET, path: /thing, process: v2, headers: {X-Api-Version: "2"}}
  - {method: GET, path: /thing, process: v2beta, headers: {X-Api-Version: "2", X-Beta: "yes"}}
  - {method: GET, path: /only, process: v2, headers: {X-Api-Version: "2"}}
'''


def test_routing_headers(portico_factory, tmp_path):
    n = portico_factory(node_config(), {"v.yaml": ROUTING_API})

    def get(path, **h):
        return requests.get(n.url(path), headers=h, timeout=10)
    assert get("/v/thing").json() == {"version": 1}
    assert get("/v/thing", **{"X-Api-Version": "2"}).json() == {"version": 2}
    assert get("/v/thing", **{"x-api-version": "2", "X-Beta": "yes"}).json() == {"version": "2-beta"}
    assert get("/v/thing", **{"X-Api-Version": "3"}).json() == {"version": 1}
    assert get("/v/only", **{"X-Api-Version": "2"}).json() == {"version": 2}
    r = get("/v/only")
    assert r.status_code == 404 and "headers" in r.json()["detail"]
    # the same routing headers twice is a duplicate
    bad = ROUTING_API.replace('process: v2beta, headers: {X-Api-Version: "2", X-Beta: "yes"}',
                              'process: v2beta, headers: {x-api-version: "2"}')
    (tmp_path / "bad.yaml").write_text(bad)
    p = subprocess.run([BIN, "validate", "bad.yaml"], capture_output=True, text=True,
                       timeout=30, cwd=tmp_path)
    assert p.returncode != 0 and "duplicate route GET /thing: same method, routing headers" \
        in p.stderr, p.stderr
