"""
The `auth` policy with API keys: keys made by `portico user key` (the node
keeps only their SHA-256), taken from a header or a query parameter; 401 with
WWW-Authenticate and one answer whatever was wrong; roles as the access rule
(403); the user reaching processes (`user.name`, `user.roles`) and the access
log; an audit line per failure that never holds the key.
"""
import subprocess

import pytest
import requests

from conftest import BIN, access_log, node_config, wait_until


def new_key():
    p = subprocess.run([BIN, "user", "key"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    key, digest = p.stdout.split()
    assert key.startswith("pk_") and digest.startswith("sha256:") and len(digest) == 71
    return key, digest


API = '''
name: crm
base_path: /crm
kind: service
title: CRM
version: "1"
policies:
  auth: {methods: [api_key], api_key: {header: X-API-Key, query: apikey}}
processes:
  whoami:
    steps:
      - map: {fields: {name: user.name, roles: user.roles}}
routes:
  - method: GET
    path: /me
    process: whoami
  - method: GET
    path: /ops
    policies:
      auth: {methods: [api_key], roles: [ops]}
    respond: {body: ops}
'''


@pytest.fixture
def keys():
    return {"alice": new_key(), "bob": new_key(), "carol": new_key()}


@pytest.fixture
def node(portico_factory, keys):
    users = ("users:\n"
             "  - {name: alice, roles: [ops, sales], api_keys: [\"%s\"]}\n"
             "  - {name: bob, roles: [sales], api_keys: [\"%s\"]}\n" % (keys["alice"][1],
                                                                       keys["bob"][1]))
    return portico_factory(node_config(extra=users), {"crm.yaml": API})


def test_api_key_header_and_query(node, keys):
    r = requests.get(node.url("/crm/me"), headers={"X-API-Key": keys["alice"][0]}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "alice", "roles": ["ops", "sales"]}
    r = requests.get(node.url("/crm/me"), params={"apikey": keys["bob"][0]}, timeout=10)
    assert r.status_code == 200 and r.json()["name"] == "bob", r.text
    lines = access_log(node, 2)
    # Each worker flushes its own lines: the order across workers is not the request order.
    assert sorted(ln.get("user") for ln in lines[-2:]) == ["alice", "bob"], lines
    text = (node.dir / "access.log").read_text()
    assert keys["alice"][0] not in text and keys["bob"][0] not in text


def test_failures_look_alike_and_are_audited(node, keys):
    answers = []
    for headers in ({}, {"X-API-Key": keys["carol"][0]}, {"X-API-Key": "x" * 300},
                    {"X-API-Key": keys["alice"][0][:-1]}, {"Authorization": keys["alice"][0]}):
        r = requests.get(node.url("/crm/me"), headers=headers, timeout=10)
        assert r.status_code == 401, (headers, r.text)
        assert r.headers["WWW-Authenticate"].startswith('APIKey realm="portico"'), r.headers
        answers.append((r.json()["type"], r.json()["detail"]))
    assert len(set(answers)) == 1, answers
    assert wait_until(lambda: node.stderr().count("auth: ") >= 5)
    log = node.stderr()
    assert "reason=no-credentials" in log and "reason=unknown-key" in log
    for k in keys.values():
        assert k[0] not in log and k[0][:-1] not in log


def test_roles_grant_access(node, keys):
    r = requests.get(node.url("/crm/ops"), headers={"X-API-Key": keys["alice"][0]}, timeout=10)
    assert r.status_code == 200 and r.text == "ops"
    r = requests.get(node.url("/crm/ops"), headers={"X-API-Key": keys["bob"][0]}, timeout=10)
    assert r.status_code == 403 and "WWW-Authenticate" not in r.headers, r.text
    assert wait_until(lambda: "reason=role" in node.stderr() and 'user="bob"' in node.stderr())


@pytest.mark.parametrize("users,message", [
    ("users:\n  - {name: a, api_keys: [\"pk_plaintext\"]}\n", "expected sha256:"),
    ("users:\n  - {name: a}\n  - {name: a}\n", "already defined"),
    ("users:\n  - {name: a, api_keys: [\"sha256:%s\"]}\n  - {name: b, api_keys: [\"sha256:%s\"]}\n"
     % ("ab" * 32, "ab" * 32), "given to both"),
])
def test_user_configuration_errors(tmp_path, users, message):
    f = tmp_path / "node.yaml"
    f.write_text(node_config(extra=users).replace("apis: apis\n", ""))
    p = subprocess.run([BIN, "validate", str(f)], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and message in p.stderr + p.stdout, p.stderr + p.stdout


def test_listener_requires_its_own_authentication(portico_factory, keys):
    """A port can require authentication for everything it serves: the
    listener's policies sit between the node's and the API's."""
    listen = ("  - address: 127.0.0.1:0\n    name: public\n"
              "  - address: 127.0.0.1:0\n    name: partners\n"
              "    policies:\n      auth: {methods: [api_key]}\n")
    users = "users:\n  - {name: alice, roles: [ops], api_keys: [\"%s\"]}\n" % keys["alice"][1]
    api = '''
name: hello
base_path: /hello
kind: service
title: Hello
version: "1"
routes:
  - method: GET
    path: /hi
    respond: {body: hi}
'''
    n = portico_factory(node_config(listen=listen, extra=users), {"hello.yaml": api})
    assert requests.get(n.url("/hello/hi", "public"), timeout=10).status_code == 200
    r = requests.get(n.url("/hello/hi", "partners"), timeout=10)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("APIKey")
    r = requests.get(n.url("/hello/hi", "partners"), headers={"X-API-Key": keys["alice"][0]},
                     timeout=10)
    assert r.status_code == 200 and r.text == "hi"
    # also for what matches no API
    assert requests.get(n.url("/nowhere", "partners"), timeout=10).status_code == 401
    assert requests.get(n.url("/nowhere", "public"), timeout=10).status_code == 404


def test_rate_limit_per_user(portico_factory, keys):
    users = ("users:\n  - {name: alice, api_keys: [\"%s\"]}\n  - {name: bob, api_keys: [\"%s\"]}\n"
             % (keys["alice"][1], keys["bob"][1]))
    api = '''
name: metered
base_path: /metered
kind: service
title: Metered
version: "1"
policies:
  auth: {methods: [api_key]}
  rate_limit: {rate: 1/h, burst: 2, key: user}
routes:
  - method: GET
    path: /x
    respond: {body: x}
'''
    n = portico_factory(node_config(extra=users), {"m.yaml": api})

    def as_(who):
        return requests.get(n.url("/metered/x"), headers={"X-API-Key": keys[who][0]},
                            timeout=10).status_code
    assert [as_("alice") for _ in range(3)] == [200, 200, 429]
    assert [as_("bob") for _ in range(3)] == [200, 200, 429]  # bob has his own bucket
