"""`portico generate` end to end: build a database (SQLite, and a real
PostgreSQL and MariaDB started for the module), generate a service API definition from
it, check that `portico validate` accepts it as is, start a node with it and
run CRUD cycles over HTTP: keyset paging through Link rel="next", filters,
create (201 + Location), replace, update of one member, delete, 404s, 409 on
a unique violation, 422 on a foreign key violation, composite keys, tables
without a primary key, read-only tables, camelCase names, and names that need
quoting in SQL and in YAML."""
import os
import re
import sqlite3
import subprocess
import urllib.parse

import pytest
import requests

from conftest import BIN, free_tcp_port, node_config
UNICODE_NAME = "O'Brien \"Bob\" \u2013 Zo\u00eb \u2713 \U0001F600"

# ---------------------------------------------------------------- schemas

SQLITE_SCHEMA = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name VARCHAR(80) NOT NULL,
    email TEXT UNIQUE,
    balance DECIMAL(10,2) NOT NULL DEFAULT 0,
    born DATE,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    active BOOLEAN NOT NULL DEFAULT 1,
    note TEXT
);
CREATE INDEX customers_name ON customers(name);
CREATE TABLE "order" (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    "Placed At" TIMESTAMP,
    total NUMERIC
);
CREATE INDEX order_customer ON "order"(customer_id);
CREATE TABLE order_items (
    order_id INTEGER NOT NULL REFERENCES "order"(id) ON DELETE CASCADE,
    line_no INTEGER NOT NULL,
    sku TEXT NOT NULL,
    qty INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (order_id, line_no)
);
CREATE TABLE audit_log (at TEXT, message TEXT);
CREATE TABLE "Stra\u00dfe \"\"Spezial\"\"\" (
    "K\u00fcrzel" TEXT PRIMARY KEY,
    "Gr\u00f6\u00dfe #1: x" REAL,
    "select" TEXT
) WITHOUT ROWID;
CREATE VIEW big_customers AS SELECT * FROM customers WHERE balance > 100;
"""

PG_SCHEMA = """
CREATE TABLE customers (
    id serial PRIMARY KEY,
    name varchar(80) NOT NULL,
    email text UNIQUE,
    balance numeric(10,2) NOT NULL DEFAULT 0,
    born date,
    created_at timestamptz DEFAULT now(),
    active boolean NOT NULL DEFAULT true,
    note text
);
CREATE INDEX customers_name ON customers(name);
CREATE TABLE "order" (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers(id),
    "Placed At" timestamp,
    total numeric
);
CREATE INDEX order_customer ON "order"(customer_id);
CREATE TABLE order_items (
    order_id bigint NOT NULL REFERENCES "order"(id) ON DELETE CASCADE,
    line_no integer NOT NULL,
    sku text NOT NULL,
    qty integer NOT NULL DEFAULT 1,
    PRIMARY KEY (order_id, line_no)
);
CREATE TABLE audit_log (at text, message text);
CREATE TABLE "Stra\u00dfe \"\"Spezial\"\"\" (
    "K\u00fcrzel" text PRIMARY KEY,
    "Gr\u00f6\u00dfe #1: x" double precision,
    "select" text
);
CREATE TYPE mood AS ENUM ('happy', 'sad', '1');
CREATE TABLE kinds (
    id bigserial PRIMARY KEY,
    code char(3),
    m mood,
    meta jsonb,
    pic bytea,
    uid uuid UNIQUE,
    tags text[],
    made date NOT NULL DEFAULT CURRENT_DATE
);
CREATE VIEW big_customers AS SELECT * FROM customers WHERE balance > 100;
"""

MARIADB_SCHEMA = """
CREATE TABLE customers (
    id INT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(80) NOT NULL,
    email VARCHAR(255) UNIQUE,
    balance DECIMAL(10,2) NOT NULL DEFAULT 0,
    born DATE,
    created_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    note TEXT
);
CREATE INDEX customers_name ON customers(name);
CREATE TABLE `order` (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    customer_id INT NOT NULL,
    `Placed At` DATETIME,
    total DECIMAL(12,4),
    CONSTRAINT order_customer FOREIGN KEY (customer_id) REFERENCES customers(id)
);
CREATE TABLE order_items (
    order_id BIGINT NOT NULL,
    line_no INT NOT NULL,
    sku VARCHAR(40) NOT NULL,
    qty INT NOT NULL DEFAULT 1,
    PRIMARY KEY (order_id, line_no),
    FOREIGN KEY (order_id) REFERENCES `order`(id) ON DELETE CASCADE
);
CREATE TABLE audit_log (at VARCHAR(20), message TEXT);
CREATE TABLE `Stra\u00dfe "Spezial"` (
    `K\u00fcrzel` VARCHAR(20) PRIMARY KEY,
    `Gr\u00f6\u00dfe #1: x` DOUBLE,
    `select` TEXT
);
CREATE TABLE kinds (
    id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    code CHAR(3),
    m ENUM('happy', 'sad', '1'),
    meta JSON,
    pic BLOB,
    uid UUID UNIQUE,
    at TIMESTAMP NULL,
    flags SET('a', 'b'),
    made DATE NOT NULL DEFAULT (CURRENT_DATE)
);
CREATE TABLE tokens (
    token UUID NOT NULL DEFAULT UUID() PRIMARY KEY,
    label VARCHAR(20) NOT NULL
);
CREATE VIEW big_customers AS SELECT * FROM customers WHERE balance > 100;
"""

AUDIT_ROWS = [("2024-01-0%d" % i, "event %d" % i) for i in range(1, 6)]

# ---------------------------------------------------------------- helpers


def generate(*args, env=None, cwd=None):
    return subprocess.run([BIN, "generate"] + list(args), capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), cwd=cwd, timeout=60)


def validate(path, env=None):
    return subprocess.run([BIN, "validate", str(path)], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=60)


class Backend:
    """One database with the test schema, and how to reach it."""

    def __init__(self, kind, tmp_path, server=None, dbname=None):
        self.kind = kind
        self.server = server
        rows = "".join("INSERT INTO audit_log VALUES ('%s', '%s');\n" % r for r in AUDIT_ROWS)
        if kind == "sqlite":
            self.path = tmp_path / "erp.db"
            con = sqlite3.connect(self.path)
            con.executescript(SQLITE_SCHEMA)
            con.executemany("INSERT INTO audit_log VALUES (?, ?)", AUDIT_ROWS)
            con.commit()
            con.close()
            self.url = "sqlite:" + str(self.path)
        else:
            server.create_db(dbname, (PG_SCHEMA if kind == "postgresql" else MARIADB_SCHEMA) + rows)
            self.url = server.url(dbname)

    def quote(self, name):
        """An identifier quoted as in the generated SQL."""
        return "`%s`" % name if self.kind == "mariadb" else '"%s"' % name


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def backend(request, tmp_path):
    if request.param == "sqlite":
        return Backend("sqlite", tmp_path)
    server = request.getfixturevalue("pg" if request.param == "postgresql" else "mariadb")
    name = "t_" + re.sub(r"[^a-z0-9]", "_", request.node.name.lower())[:50]
    return Backend(request.param, tmp_path, server=server, dbname=name)


def make_node(portico_factory, backend, *gen_args, env=None):
    """Generates apis/crm.yaml, validates the node configuration, starts the node.
    Returns (node, base URL, the YAML text)."""
    node = portico_factory(config=node_config(), apis={}, start=False, env=env)
    out = node.apis_dir / "crm.yaml"
    r = generate("--db", backend.url, "--name", "crm", "--base-path", "/crm/v1", "-o", str(out),
                 *gen_args, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    text = out.read_text()
    v = validate(node.config_path, env=env)
    assert v.returncode == 0, v.stdout + v.stderr + "\n" + text
    node.start()
    return node, node.url("/crm/v1"), text


def next_link(resp):
    link = resp.headers.get("Link")
    if not link:
        return None
    m = re.match(r'<([^>]+)>;\s*rel="next"', link)
    assert m, link
    return m.group(1)


def walk_pages(node, first):
    """GETs `first` and follows Link rel=next; returns the list of pages."""
    pages, url = [], first
    while url is not None:
        r = requests.get(node.url(url) if url.startswith("/") else url, timeout=10)
        assert r.status_code == 200, r.text
        pages.append(r.json())
        url = next_link(r)
        assert len(pages) < 50, "paging does not end"
    return pages


def problem(r, status):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/problem+json"), r.headers
    return r.json()


# ---------------------------------------------------------------- CRUD


def test_generated_definition_crud(portico_factory, backend):
    node, base, text = make_node(portico_factory, backend, "--title", "CRM \"quoted\" \u00fc")
    assert 'title: "CRM \\"quoted\\" \u00fc"' in text
    # views are not tables
    assert "big_customers" not in text

    # ---- create
    made = []
    for i in range(5):
        body = {"name": "%s %d" % (UNICODE_NAME, i), "email": "c%d@example.com" % i,
                "balance": 10.25 * (i + 1), "born": "1990-01-0%d" % (i + 1),
                "note": "it's \"quoted\"\n\ttabbed \\ back"}
        r = requests.post(base + "/customers", json=body, timeout=10)
        assert r.status_code == 201, r.text
        row = r.json()
        assert isinstance(row["id"], int)
        assert r.headers["Location"] == "/crm/v1/customers/%d" % row["id"]
        for k, v in body.items():
            if k == "balance":
                assert float(row[k]) == v
            else:
                assert row[k] == v, k
        assert row["active"] is True  # the column default
        assert row["created_at"] is not None  # the column default
        made.append(row)
    ids = [c["id"] for c in made]

    # ---- get, 404
    r = requests.get(base + "/customers/%d" % ids[0], timeout=10)
    assert r.status_code == 200
    assert r.json() == made[0]
    problem(requests.get(base + "/customers/999999", timeout=10), 404)

    # ---- paging with ?limit=2, following Link rel="next" to the end
    pages = walk_pages(node, "/crm/v1/customers?limit=2")
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [c["id"] for p in pages for c in p] == ids
    assert [[c["id"] for c in p] for p in walk_pages(node, "/crm/v1/customers")] == [ids]
    r = requests.get(base + "/customers?limit=1000", timeout=10)
    assert r.status_code == 400, r.text

    # ---- filters: indexed and unique columns
    r = requests.get(base + "/customers", params={"email": "c3@example.com"}, timeout=10)
    assert r.status_code == 200 and [c["id"] for c in r.json()] == [ids[3]]
    r = requests.get(base + "/customers", params={"name": made[1]["name"]}, timeout=10)
    assert [c["id"] for c in r.json()] == [ids[1]]
    r = requests.get(base + "/customers", params={"email": "nobody@example.com"}, timeout=10)
    assert r.json() == []
    # a filter and paging together
    pages = walk_pages(node, "/crm/v1/customers?limit=1&email=c2%40example.com")
    assert [c["id"] for p in pages for c in p] == [ids[2]]

    # ---- PATCH one member: the others stay
    r = requests.patch(base + "/customers/%d" % ids[1], json={"email": None}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == dict(made[1], email=None)
    r = requests.patch(base + "/customers/%d" % ids[1], json={"active": False}, timeout=10)
    assert r.json() == dict(made[1], email=None, active=False)
    problem(requests.patch(base + "/customers/999999", json={"note": "x"}, timeout=10), 404)
    problem(requests.patch(base + "/customers/%d" % ids[1], json={"id": 5}, timeout=10), 400)
    problem(requests.patch(base + "/customers/%d" % ids[1], json={"name": None}, timeout=10), 400)
    problem(requests.patch(base + "/customers/%d" % ids[1], json={"bogus": 1}, timeout=10), 400)

    # ---- PUT: members left out become null, or the column default
    r = requests.put(base + "/customers/%d" % ids[2], json={"name": "Renamed", "balance": 1},
                     timeout=10)
    assert r.status_code == 200, r.text
    row = r.json()
    assert row["id"] == ids[2] and row["name"] == "Renamed" and float(row["balance"]) == 1
    assert row["email"] is None and row["note"] is None and row["born"] is None
    assert row["active"] is True
    assert requests.get(base + "/customers/%d" % ids[2], timeout=10).json() == row
    problem(requests.put(base + "/customers/999999", json={"name": "x"}, timeout=10), 404)
    problem(requests.put(base + "/customers/%d" % ids[2], json={"email": "x@y.z"}, timeout=10),
            400)  # name is required

    # ---- 409 on a unique violation, 400 on a body that breaks the schema
    p = problem(requests.post(base + "/customers", json={"name": "Dup", "email": "c0@example.com"},
                              timeout=10), 409)
    assert p["type"] == "urn:portico:problem:conflict"
    problem(requests.patch(base + "/customers/%d" % ids[4], json={"email": "c0@example.com"},
                           timeout=10), 409)
    problem(requests.post(base + "/customers", json={"email": "x@example.com"}, timeout=10), 400)
    problem(requests.post(base + "/customers", json={"name": "x" * 81}, timeout=10), 400)
    problem(requests.post(base + "/customers", json={"name": "x", "id": 7}, timeout=10), 400)

    # ---- orders: a reserved word as the table, a column name with a space
    r = requests.post(base + "/order", json={"customer_id": ids[0], "Placed_At":
                                             "2024-05-06T07:08:09Z", "total": 12.5}, timeout=10)
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["customer_id"] == ids[0] and float(order["total"]) == 12.5
    assert order["Placed_At"].startswith("2024-05-06T07:08:09")
    oid = order["id"]
    assert r.headers["Location"] == "/crm/v1/order/%d" % oid
    # 422 on a foreign key violation (insert and update)
    p = problem(requests.post(base + "/order", json={"customer_id": 999999}, timeout=10), 422)
    assert p["type"] == "urn:portico:problem:unprocessable"
    problem(requests.patch(base + "/order/%d" % oid, json={"customer_id": 999999}, timeout=10),
            422)
    r = requests.get(base + "/order", params={"customer_id": str(ids[0])}, timeout=10)
    assert [o["id"] for o in r.json()] == [oid]

    # ---- order items: a composite key
    for line in (1, 2, 3):
        r = requests.post(base + "/order_items",
                          json={"order_id": oid, "line_no": line, "sku": "SKU-%d" % line},
                          timeout=10)
        assert r.status_code == 201, r.text
        assert r.headers["Location"] == "/crm/v1/order_items/%d/%d" % (oid, line)
        assert r.json() == {"order_id": oid, "line_no": line, "sku": "SKU-%d" % line, "qty": 1}
    problem(requests.post(base + "/order_items", json={"order_id": oid, "line_no": 1, "sku": "X"},
                          timeout=10), 409)
    problem(requests.post(base + "/order_items",
                          json={"order_id": 999999, "line_no": 1, "sku": "X"}, timeout=10), 422)
    r = requests.post(base + "/order", json={"customer_id": ids[1]}, timeout=10)
    oid2 = r.json()["id"]
    requests.post(base + "/order_items", json={"order_id": oid2, "line_no": 1, "sku": "B"},
                  timeout=10).raise_for_status()
    pages = walk_pages(node, "/crm/v1/order_items?limit=2")
    keys = [(i["order_id"], i["line_no"]) for p in pages for i in p]
    assert keys == [(oid, 1), (oid, 2), (oid, 3), (oid2, 1)]
    assert [len(p) for p in pages] == [2, 2]
    r = requests.get(base + "/order_items", params={"order_id": str(oid2)}, timeout=10)
    assert [(i["order_id"], i["line_no"]) for i in r.json()] == [(oid2, 1)]
    r = requests.get(base + "/order_items/%d/2" % oid, timeout=10)
    assert r.status_code == 200 and r.json()["sku"] == "SKU-2"
    problem(requests.get(base + "/order_items/%d/9" % oid, timeout=10), 404)
    r = requests.patch(base + "/order_items/%d/2" % oid, json={"qty": 7}, timeout=10)
    assert r.status_code == 200 and r.json() == {"order_id": oid, "line_no": 2, "sku": "SKU-2",
                                                 "qty": 7}
    r = requests.put(base + "/order_items/%d/3" % oid, json={"sku": "NEW"}, timeout=10)
    assert r.status_code == 200 and r.json() == {"order_id": oid, "line_no": 3, "sku": "NEW",
                                                 "qty": 1}
    # the key comes from the path, never from the body
    problem(requests.put(base + "/order_items/%d/3" % oid,
                         json={"order_id": oid, "line_no": 3, "sku": "X"}, timeout=10), 400)
    r = requests.delete(base + "/order_items/%d/1" % oid, timeout=10)
    assert r.status_code == 204 and r.content == b""
    problem(requests.delete(base + "/order_items/%d/1" % oid, timeout=10), 404)

    # ---- DELETE: a referenced row is a 422, a missing one 404
    problem(requests.delete(base + "/customers/%d" % ids[0], timeout=10), 422)
    r = requests.delete(base + "/customers/%d" % ids[4], timeout=10)
    assert r.status_code == 204
    problem(requests.delete(base + "/customers/%d" % ids[4], timeout=10), 404)
    problem(requests.get(base + "/customers/%d" % ids[4], timeout=10), 404)
    assert [c["id"] for p in walk_pages(node, "/crm/v1/customers?limit=2")
            for c in p] == ids[:4]

    # ---- a table without a primary key: the list only, not paged
    r = requests.get(base + "/audit_log", timeout=10)
    assert r.status_code == 200
    assert sorted((x["at"], x["message"]) for x in r.json()) == AUDIT_ROWS
    assert "Link" not in r.headers
    assert len(requests.get(base + "/audit_log?limit=2", timeout=10).json()) == 2
    assert len(requests.get(base + "/audit_log?limit=1000", timeout=10).json()) == 5
    problem(requests.get(base + "/audit_log?limit=abc", timeout=10), 400)
    assert requests.post(base + "/audit_log", json={"at": "x"}, timeout=10).status_code == 405
    assert requests.get(base + "/audit_log/1", timeout=10).status_code == 404

    # ---- names that need quoting in SQL and sanitising for JSON and paths
    weird = base + "/Stra_e_Spezial"
    r = requests.post(weird, json={"K_rzel": "\u00e4\u00f6\u00fc", "Gr_e_1_x": 1.5,
                                   "select": "it's"}, timeout=10)
    assert r.status_code == 201, r.text
    assert r.json() == {"K_rzel": "\u00e4\u00f6\u00fc", "Gr_e_1_x": 1.5, "select": "it's"}
    assert r.headers["Location"].startswith("/crm/v1/Stra_e_Spezial/")
    r = requests.get(weird + "/" + urllib.parse.quote("\u00e4\u00f6\u00fc"), timeout=10)
    assert r.status_code == 200 and r.json()["select"] == "it's"
    r = requests.patch(weird + "/" + urllib.parse.quote("\u00e4\u00f6\u00fc"),
                       json={"select": None}, timeout=10)
    assert r.status_code == 200 and r.json()["select"] is None
    r = requests.get(weird, params={"limit": "1"}, timeout=10)
    assert len(r.json()) == 1

    if backend.kind == "postgresql":
        check_postgresql_types(base)
    if backend.kind == "mariadb":
        check_mariadb_types(base, text)


def check_postgresql_types(base):
    """Types only PostgreSQL has: enums, jsonb, bytea, uuid, arrays, char(n)."""
    body = {"code": "ab", "m": "1", "meta": {"a": [1, "x"], "b": None}, "pic": "aGVsbG8=",
            "uid": "123e4567-e89b-12d3-a456-426614174000", "tags": "{a,b}"}
    r = requests.post(base + "/kinds", json=body, timeout=10)
    assert r.status_code == 201, r.text
    row = r.json()
    assert row["code"] == "ab " and row["m"] == "1" and row["meta"] == body["meta"]
    assert row["pic"] == "aGVsbG8=" and row["uid"] == body["uid"] and row["tags"] == "{a,b}"
    assert re.match(r"^\d{4}-\d\d-\d\d$", row["made"])
    problem(requests.post(base + "/kinds", json={"m": "angry"}, timeout=10), 400)
    problem(requests.post(base + "/kinds", json={"code": "abcd"}, timeout=10), 400)
    problem(requests.post(base + "/kinds", json={"uid": "nope"}, timeout=10), 400)
    problem(requests.post(base + "/kinds", json={"uid": body["uid"]}, timeout=10), 409)
    r = requests.get(base + "/kinds", params={"uid": body["uid"]}, timeout=10)
    assert [k["id"] for k in r.json()] == [row["id"]]
    r = requests.patch(base + "/kinds/%d" % row["id"], json={"meta": [1, 2]}, timeout=10)
    assert r.status_code == 200 and r.json()["meta"] == [1, 2] and r.json()["pic"] == "aGVsbG8="


def check_mariadb_types(base, text):
    """MariaDB: ENUM, JSON (LONGTEXT with a json_valid check: JSON values, as on
    PostgreSQL), BLOB
    (base64 decoded with FROM_BASE64), UUID, TIMESTAMP (an offset converted to
    the session's time zone, UTC here), SET; a key the request does not know
    (DEFAULT UUID()): INSERT ... RETURNING."""
    body = {"code": "ab", "m": "1", "meta": {"a": [1, "x"]}, "pic": "aGVsbG8=",
            "uid": "123e4567-e89b-12d3-a456-426614174000", "at": "2024-05-06T09:08:09+02:00",
            "flags": "a,b"}
    r = requests.post(base + "/kinds", json=body, timeout=10)
    assert r.status_code == 201, r.text
    row = r.json()
    assert r.headers["Location"] == "/crm/v1/kinds/%d" % row["id"]
    assert row["code"] == "ab" and row["m"] == "1" and row["meta"] == body["meta"]
    assert row["pic"] == "aGVsbG8=" and row["uid"] == body["uid"] and row["flags"] == "a,b"
    assert row["at"] == "2024-05-06T07:08:09"
    assert re.match(r"^\d{4}-\d\d-\d\d$", row["made"])
    problem(requests.post(base + "/kinds", json={"m": "angry"}, timeout=10), 400)
    problem(requests.post(base + "/kinds", json={"code": "abcd"}, timeout=10), 400)
    problem(requests.post(base + "/kinds", json={"uid": "nope"}, timeout=10), 400)
    problem(requests.post(base + "/kinds", json={"uid": body["uid"]}, timeout=10), 409)
    problem(requests.post(base + "/kinds", json={"meta": "{not json"}, timeout=10), 400)
    r = requests.get(base + "/kinds", params={"uid": body["uid"]}, timeout=10)
    assert [k["id"] for k in r.json()] == [row["id"]]
    r = requests.patch(base + "/kinds/%d" % row["id"], json={"at": "2024-05-06T07:08:09Z"},
                       timeout=10)
    assert r.status_code == 200 and r.json()["at"] == "2024-05-06T07:08:09"
    assert r.json()["pic"] == "aGVsbG8="
    # the key is the server's UUID(): read back with RETURNING
    assert "RETURNING token, label" in text
    r = requests.post(base + "/tokens", json={"label": "t1"}, timeout=10)
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert re.match(r"^[0-9a-f-]{36}$", token)
    assert r.headers["Location"] == "/crm/v1/tokens/" + token
    assert requests.get(base + "/tokens/" + token, timeout=10).json() == {"token": token,
                                                                         "label": "t1"}
    r = requests.patch(base + "/tokens/" + token, json={"label": "t2"}, timeout=10)
    assert r.status_code == 200 and r.json() == {"token": token, "label": "t2"}
    assert requests.delete(base + "/tokens/" + token, timeout=10).status_code == 204


def test_mariadb_returning_conflict(portico_factory, mariadb):
    backend = Backend("mariadb", None, server=mariadb, dbname="t_returning_conflict")
    node, base, text = make_node(portico_factory, backend, "--tables", "tokens")
    assert "RETURNING token, label" in text
    r = requests.post(base + "/tokens", json={"label": "t1"}, timeout=10)
    assert r.status_code == 201, r.text
    r = requests.post(base + "/tokens", json={"label": "t2", "token": r.json()["token"]},
                      timeout=10)
    problem(r, 409)


# ---------------------------------------------------------------- options


def test_camel_case_names(portico_factory, backend):
    node, base, text = make_node(portico_factory, backend, "--naming", "camel",
                                 "--tables", "customers,order,order_items")
    assert "audit_log" not in text
    assert "order_id AS %s" % backend.quote("orderId") in text
    assert "by: [orderId, lineNo]" in text
    r = requests.post(base + "/customers", json={"name": "A", "createdAt": "2024-01-02T03:04:05Z"},
                      timeout=10)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert r.json()["createdAt"].startswith("2024-01-02T03:04:05")
    oid = requests.post(base + "/order", json={"customerId": cid, "PlacedAt": None},
                        timeout=10).json()["id"]
    for line in range(1, 6):
        r = requests.post(base + "/order_items", json={"orderId": oid, "lineNo": line, "sku": "s"},
                          timeout=10)
        assert r.status_code == 201, r.text
        assert r.headers["Location"] == "/crm/v1/order_items/%d/%d" % (oid, line)
    pages = walk_pages(node, "/crm/v1/order_items?limit=2")
    assert [[i["lineNo"] for i in p] for p in pages] == [[1, 2], [3, 4], [5]]
    r = requests.get(base + "/order_items", params={"orderId": str(oid), "limit": "10"},
                     timeout=10)
    assert len(r.json()) == 5
    r = requests.patch(base + "/order_items/%d/4" % oid, json={"qty": 3}, timeout=10)
    assert r.json() == {"orderId": oid, "lineNo": 4, "sku": "s", "qty": 3}
    problem(requests.post(base + "/order_items", json={"order_id": oid, "line_no": 9, "sku": "s"},
                          timeout=10), 400)


def test_read_only_tables(portico_factory, backend):
    node, base, text = make_node(portico_factory, backend, "--tables", "customers,audit_log",
                                 "--read-only", "customers,audit_log", "--version", "2.0")
    assert 'version: "2.0"' in text
    # the connection refuses writes too
    assert "read_only: true" in text
    for verb in ("create", "replace", "update", "delete"):
        assert verb + "_customers" not in text
    assert requests.get(base + "/customers", timeout=10).json() == []
    problem(requests.get(base + "/customers/1", timeout=10), 404)
    r = requests.post(base + "/customers", json={"name": "x"}, timeout=10)
    assert r.status_code == 405
    assert requests.delete(base + "/customers/1", timeout=10).status_code == 405


def test_stdout_and_defaults(tmp_path, backend):
    r = generate("--db", backend.url, "--tables", "customers")
    assert r.returncode == 0, r.stderr
    y = r.stdout
    if backend.kind == "sqlite":
        assert y.startswith("name: erp\nbase_path: /erp/v1\nkind: service\ntitle: erp\n")
        assert 'url: "sqlite:%s"' % backend.path in y
    else:
        assert y.startswith("name: t_test_stdout_and_defaults_%s\n" % backend.kind)
        assert 'url: "%s"' % backend.url in y
    assert 'version: "1"' in y
    r = generate("--db", backend.url, "--tables", "customers", "--connection-url",
                 "sqlite:${env:DB_FILE}")
    assert 'url: "sqlite:${env:DB_FILE}"' in r.stdout


def test_errors(tmp_path, backend):
    r = generate("--db", backend.url, "--tables", "customers,nope")
    assert r.returncode == 1 and 'no table "nope"' in r.stderr and r.stdout == ""
    r = generate("--db", backend.url, "--read-only", "nope")
    assert r.returncode == 1 and "nope" in r.stderr
    r = generate("--db", backend.url, "--name", "Not A Name")
    assert r.returncode == 1 and "--name" in r.stderr
    r = generate("--db", backend.url, "--base-path", "/x/")
    assert r.returncode == 1 and "--base-path" in r.stderr
    r = generate("--db", backend.url, "--naming", "kebab")
    assert r.returncode == 2
    r = generate("--db", backend.url, "--bogus")
    assert r.returncode == 2 and "Usage" in r.stderr
    r = generate()
    assert r.returncode == 2 and "--db" in r.stderr
    r = generate("--db", "oracle://x")
    assert r.returncode == 2 and "mysql://" in r.stderr
    out = tmp_path / "missing-dir" / "x.yaml"
    r = generate("--db", backend.url, "-o", str(out))
    assert r.returncode == 1 and not out.exists()


def test_sqlite_errors(tmp_path):
    r = generate("--db", "sqlite:" + str(tmp_path / "none.db"))
    assert r.returncode == 1 and "cannot open" in r.stderr
    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    r = generate("--db", "sqlite:" + str(junk))
    assert r.returncode == 1 and "not a database" in r.stderr
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    r = generate("--db", "sqlite:" + str(empty))
    assert r.returncode == 1 and "no table" in r.stderr


def test_sqlite_path_relative_to_output(tmp_path):
    db = tmp_path / "data" / "erp.db"
    db.parent.mkdir()
    con = sqlite3.connect(db)
    con.executescript(SQLITE_SCHEMA)
    con.close()
    (tmp_path / "node" / "apis").mkdir(parents=True)
    out = tmp_path / "node" / "apis" / "erp.yaml"
    r = generate("--db", "sqlite:data/erp.db", "-o", "node/apis/erp.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'url: "sqlite:../../data/erp.db"' in out.read_text()
    (tmp_path / "node" / "portico.yaml").write_text(node_config())
    v = validate(tmp_path / "node" / "portico.yaml")
    assert v.returncode == 0, v.stderr


def test_postgresql_password_is_never_written(tmp_path, pg):
    pg.create_db("pw_test", "CREATE TABLE t (id serial PRIMARY KEY, v text);")
    secret = "s3cr%2Ft"
    for url in (pg.url("pw_test", password=secret),
                pg.url("pw_test") + "?sslmode=disable&password=" + secret):
        out = tmp_path / "apis" / "pw.yaml"
        out.parent.mkdir(exist_ok=True)
        r = generate("--db", url, "-o", str(out))
        assert r.returncode == 0, r.stderr
        text = out.read_text()
        assert secret not in text and secret not in r.stderr
        assert "${env:PORTICO_DB_PASSWORD}" in text and "PORTICO_DB_PASSWORD" in r.stderr
        (tmp_path / "portico.yaml").write_text(node_config())
        v = validate(tmp_path / "portico.yaml", env={"PORTICO_DB_PASSWORD": "x"})
        assert v.returncode == 0, v.stdout + v.stderr
        assert secret not in v.stdout + v.stderr
    # a connection failure names the server, not the password
    r = generate("--db", "postgresql://portico:%s@127.0.0.1:1/x" % secret)
    assert r.returncode == 1 and secret not in r.stderr and "cannot connect" in r.stderr
    # libpq quotes a token it cannot decode: the password is masked there too
    for url in ("postgresql://portico:bad%%zzpw@127.0.0.1:%d/x" % pg.port,
                "postgresql://portico@127.0.0.1:%d/x?password=bad%%zzpw" % pg.port):
        r = generate("--db", url)
        assert r.returncode == 1 and "zzpw" not in r.stderr, r.stderr
        assert "cannot connect" in r.stderr


def test_mariadb_password_and_errors(portico_factory, tmp_path, mariadb):
    mariadb.create_db("pw_test", "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v TEXT);"
                      "INSERT INTO t (v) VALUES ('one');")
    mariadb.sql("CREATE USER 'pw'@'127.0.0.1' IDENTIFIED BY 's3cr/t';"
                "GRANT ALL ON pw_test.* TO 'pw'@'127.0.0.1';")
    secret = "s3cr%2Ft"
    env = {"PORTICO_DB_PASSWORD": secret}
    node = portico_factory(config=node_config(), apis={}, start=False, env=env)
    out = node.apis_dir / "pw.yaml"
    r = generate("--db", mariadb.url("pw_test", user="pw", password=secret), "-o", str(out))
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert secret not in text and secret not in r.stderr and "s3cr/t" not in text
    assert 'url: "mysql://pw:${env:PORTICO_DB_PASSWORD}@127.0.0.1:%d/pw_test"' % mariadb.port \
        in text
    assert "PORTICO_DB_PASSWORD" in r.stderr
    assert text.startswith("name: pw_test\n")
    v = validate(node.config_path, env=env)
    assert v.returncode == 0, v.stdout + v.stderr
    node.start()
    r = requests.get(node.url("/pw_test/v1/t/1"), timeout=10)
    assert r.status_code == 200 and r.json() == {"id": 1, "v": "one"}
    # a wrong password: the server says so, the password stays out of it
    r = generate("--db", mariadb.url("pw_test", user="pw", password="wr0ngpw"))
    assert r.returncode == 1 and "cannot connect" in r.stderr and "wr0ngpw" not in r.stderr
    r = generate("--db", "mariadb://pw:wr0ngpw@127.0.0.1:%d/pw_test" % free_tcp_port())
    assert r.returncode == 1 and "cannot connect" in r.stderr and "wr0ngpw" not in r.stderr
    r = generate("--db", "mysql://portico@127.0.0.1:%d" % mariadb.port)
    assert r.returncode == 1 and "names no database" in r.stderr
    r = generate("--db", mariadb.url("no_such_db"))
    assert r.returncode == 1 and "cannot connect" in r.stderr

