"""
Generated contracts: the OpenAPI 3.1 and 3.0.3 documents of a service API
at {base_path}/openapi.json and .yaml, checked by a real third-party
validator (@apidevtools/swagger-parser under node, installed by
scripts/setup.sh), the answers of real requests checked against the schemas
the document declares (Debian's python3-jsonschema), the server URL as the
client reached the node (X-Forwarded-* only from trusted proxies).
"""
import json
import os
import sqlite3
import subprocess

import jsonschema
import pytest
import requests

from conftest import node_config

VALIDATOR = os.path.join(os.path.dirname(__file__), "..", "contracts", "validate-openapi.js")

API = '''
name: shop
base_path: /shop/v2
kind: service
title: Shop "API"
version: "2.1"
description: Orders and customers.
contact: {name: API team, email: api@example.com, url: "https://example.com/api"}
license: {name: Apache-2.0, url: "https://www.apache.org/licenses/LICENSE-2.0"}
terms_of_service: "https://example.com/terms"
connections:
  db: {url: "sqlite:../shop.db"}
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
      tier: {type: string, enum: [gold, silver]}
      address: {$ref: "#/schemas/address"}
  address:
    type: object
    properties:
      city: {type: string}
  customers:
    type: array
    items: {$ref: "#/schemas/customer"}
processes:
  list:
    steps:
      - name: rows
        sql:
          query: SELECT id, name, email FROM customers WHERE ${after} ORDER BY ${order} LIMIT :limit
          params: {limit: page.fetch}
          page: {by: [id], sort: [name], max_limit: 50}
  get:
    steps:
      - sql: {query: "SELECT id, name, email FROM customers WHERE id = :id", params: {id: path.id}, result: row}
  create:
    steps:
      - name: ins
        sql: {query: "INSERT INTO customers(name, email) VALUES (:name, :email)", params: {name: body.name, email: body.email}, result: key}
      - name: row
        sql: {query: "SELECT id, name, email FROM customers WHERE id = :id", params: {id: steps.ins.key}, result: row}
      - respond: {status: 201, headers: {Location: "/shop/v2/customers/${steps.ins.key}"}, body: steps.row}
routes:
  - {method: GET, path: /customers, process: list, response_schema: customers, description: "All customers, paged."}
  - {method: GET, path: "/customers/{id}", process: get, response_schema: customer}
  - {method: GET, path: "/customers/{id}", process: get, headers: {X-Api-Version: "2"}}
  - {method: POST, path: /customers, process: create, body_schema: customer, response_schema: customer,
     query: {dry: {type: boolean, default: false}}}
  - method: GET
    path: /ping
    respond: {status: 200, body: {pong: true}}
'''


@pytest.fixture
def shop(portico_factory, tmp_path):
    con = sqlite3.connect(tmp_path / "shop.db")
    con.execute("CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT)")
    con.commit()
    con.close()
    return portico_factory(node_config(extra="trusted_proxies: [127.0.0.1]\n"),
                           {"shop.yaml": API})


def validate(tmp_path, name, text):
    f = tmp_path / name
    f.write_text(text)
    p = subprocess.run(["node", VALIDATOR, str(f)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr + p.stdout
    return p.stdout


@pytest.mark.parametrize("suffix,version", [("openapi.json", ""), ("openapi.json", "3.0"),
                                             ("openapi.yaml", "")])
def test_openapi_validates(shop, tmp_path, suffix, version):
    r = requests.get(shop.url("/shop/v2/" + suffix), params={"version": version} if version else {},
                     timeout=10)
    assert r.status_code == 200
    out = validate(tmp_path, "doc-" + suffix, r.text)
    assert out.startswith('ok Shop "API" ' + ("3.0.3" if version else "3.1.0")), out


def test_openapi_content(shop):
    doc = requests.get(shop.url("/shop/v2/openapi.json"), timeout=10).json()
    assert doc["info"] == {"title": 'Shop "API"', "version": "2.1",
                           "description": "Orders and customers.",
                           "termsOfService": "https://example.com/terms",
                           "contact": {"name": "API team", "email": "api@example.com",
                                       "url": "https://example.com/api"},
                           "license": {"name": "Apache-2.0",
                                       "url": "https://www.apache.org/licenses/LICENSE-2.0"}}
    assert doc["servers"] == [{"url": "http://127.0.0.1:%d/shop/v2" % shop.port}]
    ops = [(p, m, o["operationId"]) for p, item in doc["paths"].items() for m, o in item.items()]
    assert len({o for _, _, o in ops}) == len(ops)  # unique operationIds
    get = doc["paths"]["/customers/{id}"]["get"]
    assert {"name": "id", "in": "path", "required": True,
            "schema": {"type": "string"}} in get["parameters"]
    assert any(p["name"] == "x-tenant" and p["in"] == "header" for p in get["parameters"])
    for code in ("200", "400", "404", "500", "503", "504"):
        assert code in get["responses"], code
    post = doc["paths"]["/customers"]["post"]
    assert "201" in post["responses"] and "409" in post["responses"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/customer"}
    assert any(p["name"] == "dry" and p["schema"]["type"] == "boolean"
               for p in post["parameters"])
    lst = doc["paths"]["/customers"]["get"]
    names = {p["name"] for p in lst["parameters"]}
    assert {"limit", "cursor", "sort"} <= names
    schemas = doc["components"]["schemas"]
    assert schemas["customer"]["properties"]["email"]["type"] == ["string", "null"]
    assert schemas["customer"]["properties"]["address"] == {"$ref": "#/components/schemas/address"}
    assert "Problem" in schemas
    doc30 = requests.get(shop.url("/shop/v2/openapi.json?version=3.0"), timeout=10).json()
    assert doc30["components"]["schemas"]["customer"]["properties"]["email"] == {
        "type": "string", "format": "email", "nullable": True}


def test_server_url_follows_trusted_forwarding(shop):
    doc = requests.get(shop.url("/shop/v2/openapi.json"), timeout=10,
                       headers={"X-Forwarded-Proto": "https",
                                "X-Forwarded-Host": "api.example.com"}).json()
    assert doc["servers"] == [{"url": "https://api.example.com/shop/v2"}]


def test_answers_match_declared_schemas(shop):
    doc = requests.get(shop.url("/shop/v2/openapi.json"), timeout=10).json()
    resolver = jsonschema.RefResolver.from_schema(doc)

    def check(path, method, status, body):
        resp = doc["paths"][path][method]["responses"][str(status)]
        if "$ref" in resp:
            resp = resolver.resolve(resp["$ref"])[1]
        media = "application/problem+json" if status >= 400 else "application/json"
        schema = resp["content"][media]["schema"]
        jsonschema.Draft202012Validator(schema, resolver=resolver).validate(body)

    r = requests.post(shop.url("/shop/v2/customers"), json={"name": "Ada", "email": None},
                      timeout=10)
    assert r.status_code == 201, r.text
    check("/customers", "post", 201, r.json())
    cid = r.json()["id"]
    r = requests.get(shop.url("/shop/v2/customers/%d" % cid), timeout=10)
    check("/customers/{id}", "get", 200, r.json())
    r = requests.get(shop.url("/shop/v2/customers"), timeout=10)
    check("/customers", "get", 200, r.json())
    r = requests.get(shop.url("/shop/v2/customers/999"), timeout=10)
    assert r.status_code == 404
    check("/customers/{id}", "get", 404, r.json())
    r = requests.post(shop.url("/shop/v2/customers"), json={"name": 5}, timeout=10)
    assert r.status_code == 400
    check("/customers", "post", 400, r.json())


def test_contract_is_cached_and_read_only(shop):
    a = requests.get(shop.url("/shop/v2/openapi.json"), timeout=10).content
    b = requests.get(shop.url("/shop/v2/openapi.json"), timeout=10).content
    assert a == b
    r = requests.post(shop.url("/shop/v2/openapi.json"), timeout=10)
    assert r.status_code == 405
    assert requests.head(shop.url("/shop/v2/openapi.json"), timeout=10).status_code == 200


PROXY_API = '''
name: legacy
base_path: /legacy
kind: proxy
title: Legacy
version: "1"
openapi: contracts/legacy-openapi.yaml   # not in apis/ itself: its *.yaml are definitions
upstream:
  targets: [{url: "http://127.0.0.1:9"}]
'''

IMPORTED = '''openapi: 3.0.3
info: {title: Legacy ERP, version: "7"}
servers:
  - url: http://erp.internal:8080/api
paths:
  /items/{id}:
    get:
      operationId: getItem
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer}}
      responses:
        "200": {description: An item}
'''


def test_proxy_api_serves_its_imported_contract(portico_factory, tmp_path):
    (tmp_path / "apis" / "contracts").mkdir(parents=True, exist_ok=True)
    (tmp_path / "apis" / "contracts" / "legacy-openapi.yaml").write_text(IMPORTED)
    n = portico_factory(node_config(), {"legacy.yaml": PROXY_API, "shop.yaml": API})
    r = requests.get(n.url("/legacy/openapi.json"), timeout=10)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["servers"] == [{"url": "http://127.0.0.1:%d/legacy" % n.port}]
    assert doc["paths"]["/items/{id}"]["get"]["operationId"] == "getItem"
    out = validate(tmp_path, "imported.json", r.text)
    assert out.startswith("ok Legacy ERP 3.0.3"), out
    # everything else still goes upstream (nothing listens there: 502)
    assert requests.get(n.url("/legacy/items/1"), timeout=10).status_code == 502
    apis = {a["name"]: a for a in requests.get(n.url("/_portico/apis"), timeout=10).json()["apis"]}
    assert apis["legacy"]["openapi"] == "/legacy/openapi.json"
    assert apis["shop"]["openapi"] == "/shop/v2/openapi.json"


def test_imported_contract_errors(tmp_path):
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "legacy-openapi.yaml").write_text("swagger: '2.0'\npaths: {}\n")
    (tmp_path / "legacy.yaml").write_text(PROXY_API)
    p = subprocess.run([os.environ.get("PORTICO_BIN") and os.path.abspath(os.environ["PORTICO_BIN"])
                        or os.path.join(os.path.dirname(__file__), "..", "..", "build", "asan",
                                        "portico"), "validate", "legacy.yaml"],
                       capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert p.returncode != 0 and "is not an OpenAPI 3.x document" in p.stderr, p.stderr


@pytest.mark.parametrize("version", ["", "3.0"])
def test_generated_api_contract(erp, tmp_path, version):
    """The API `portico generate` makes is documented without holes: the
    validator accepts it, every success answer has a schema (lists as arrays
    of rows), filters are typed query parameters, and real answers match."""
    r = requests.get(erp.url("/erp/openapi.json"), params={"version": version} if version else {},
                     timeout=10)
    out = validate(tmp_path, "erp.json", r.text)
    assert out.startswith("ok erp " + ("3.0.3" if version else "3.1.0")), out
    doc = r.json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for code, resp in op["responses"].items():
                if code.startswith("2") and code != "204":
                    schema = resp["content"]["application/json"]["schema"]
                    assert schema, (method, path, code)
    lst = doc["paths"]["/orders"]["get"]
    assert lst["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ordersList"}
    assert {"name": "customerId", "in": "query", "required": False,
            "schema": {"type": "integer"}} in [
                {k: p[k] for k in ("name", "in", "required", "schema")}
                for p in lst["parameters"]]
    if version:
        return
    resolver = jsonschema.RefResolver.from_schema(doc)

    def check(path, method, status, body):
        resp = doc["paths"][path][method]["responses"][str(status)]
        if "$ref" in resp:
            resp = resolver.resolve(resp["$ref"])[1]
        media = "application/problem+json" if status >= 400 else "application/json"
        jsonschema.Draft202012Validator(resp["content"][media]["schema"],
                                        resolver=resolver).validate(body)

    base = erp.url("/erp")
    for path in ("/customers", "/orders", "/order_lines", "/products"):
        r = requests.get(base + path, timeout=10)
        assert r.status_code == 200 and len(r.json()) >= 2
        check(path, "get", 200, r.json())
    r = requests.get(base + "/orders", params={"customerId": 1}, timeout=10)
    assert [o["customerId"] for o in r.json()] == [1]
    check("/orders", "get", 200, r.json())
    r = requests.get(base + "/orders", params={"customerId": "one"}, timeout=10)
    assert r.status_code == 400 and r.json()["errors"][0]["pointer"] == "/query/customerId"
    check("/orders", "get", 400, r.json())
    r = requests.get(base + "/order_lines/1/2", timeout=10)
    check("/order_lines/{orderId}/{lineNo}", "get", 200, r.json())
    r = requests.post(base + "/customers", json={"name": "Hopper", "balance": 3.5}, timeout=10)
    assert r.status_code == 201, r.text
    check("/customers", "post", 201, r.json())
    r = requests.patch(base + "/customers/%d" % r.json()["id"], json={"city": "Arlington"},
                       timeout=10)
    assert r.status_code == 200, r.text
    check("/customers/{id}", "patch", 200, r.json())
    r = requests.get(base + "/customers/999", timeout=10)
    assert r.status_code == 404
    check("/customers/{id}", "get", 404, r.json())


SECURED_API = '''
name: vault
base_path: /vault
kind: service
title: Vault
version: "1"
policies:
  auth: {methods: [api_key, basic, jwt, client_cert], api_key: {header: X-API-Key, query: apikey},
         jwt: {secret: "${env:PT_TEST_VAULT_SECRET}"}, roles: [ops]}
  rate_limit: {rate: 100/s}
routes:
  - method: GET
    path: /items
    respond: {body: items}
  - method: GET
    path: /open
    policies:
      auth: {methods: [api_key]}
    respond: {body: open}
'''


@pytest.mark.parametrize("version", ["", "3.0"])
def test_openapi_security_follows_the_policies(portico_factory, tmp_path, version):
    """The contract says how to authenticate (one security requirement per
    method the route's auth policy takes) and what the policies answer."""
    n = portico_factory(node_config(), {"vault.yaml": SECURED_API},
                        env={"PT_TEST_VAULT_SECRET": "x" * 40})
    r = requests.get(n.url("/vault/openapi.json"), params={"version": version} if version else {},
                     timeout=10)
    assert r.status_code == 200
    validate(tmp_path, "vault.json", r.text)
    doc = r.json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["apiKeyHeader"] == {"type": "apiKey", "in": "header", "name": "x-api-key"}
    assert schemes["apiKeyQuery"] == {"type": "apiKey", "in": "query", "name": "apikey"}
    assert schemes["basicAuth"] == {"type": "http", "scheme": "basic"}
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert ("mutualTLS" in schemes) == (version == ""), schemes  # OpenAPI 3.1 only
    items = doc["paths"]["/items"]["get"]
    names = [list(alt)[0] for alt in items["security"]]
    assert names[:4] == ["apiKeyHeader", "apiKeyQuery", "basicAuth", "bearerAuth"], names
    for code in ("401", "403", "429"):
        assert code in items["responses"], (code, items["responses"])
    opened = doc["paths"]["/open"]["get"]
    assert [list(alt)[0] for alt in opened["security"]] == ["apiKeyHeader"]
    assert "429" in opened["responses"] and "403" in opened["responses"]  # user lists may refuse


def test_contracts_public_unless_protected(portico_factory):
    protected = SECURED_API.replace("name: vault", "name: safe").replace(
        "base_path: /vault", "base_path: /safe").replace(
        "roles: [ops]}", "roles: [ops], contracts: protected}")
    n = portico_factory(node_config(), {"vault.yaml": SECURED_API, "safe.yaml": protected},
                        env={"PT_TEST_VAULT_SECRET": "x" * 40})
    assert requests.get(n.url("/vault/items"), timeout=10).status_code == 401
    assert requests.get(n.url("/vault/openapi.yaml"), timeout=10).status_code == 200
    assert requests.get(n.url("/safe/openapi.json"), timeout=10).status_code == 401
