"""
Lua `script` steps of service API processes: results, the context, and the
sandbox — an endless loop, a memory bomb, and every way out (io, os, require,
debug, load of bytecode, string.dump) fail that execution with a 500 and a
log line while the node keeps serving.
"""
import subprocess

import pytest
import requests

from conftest import BIN, node_config

API = r'''
name: calc
base_path: /calc
kind: service
title: Scripts
version: "1"
processes:
  total:
    steps:
      - name: calc
        script:
          source: |
            local total = 0
            for _, l in ipairs(ctx.body.lines) do total = total + l.qty * l.price end
            return {total = total, n = #ctx.body.lines, first = ctx.body.lines[1],
                    none = null, path = ctx.path.id, tags = {"a", "b"}}
  from_file:
    steps:
      - script: {file: scripts/hello.lua}
      - respond:
          status: 200
          body: "concat('hello ', steps.step1.who)"
  evil:
    steps:
      - script:
          instructions: 200000
          memory: 2MiB
          source: |
            local k = ctx.query.kind
            if k == "loop" then while true do end end
            if k == "mem" then local t = {} for i = 1, 1e9 do t[i] = string.rep("x", 1000) .. i end end
            if k == "strmem" then return string.rep("x", 1e9) end
            if k == "io" then return io.open("/etc/passwd"):read("a") end
            if k == "os" then return os.execute("id") end
            if k == "dump" then return string.dump(function() end) end
            if k == "require" then return require("os") end
            if k == "debug" then return debug.getinfo(1) end
            if k == "dofile" then return dofile("/etc/passwd") end
            if k == "bytecode" then
              local f, e = load("\27Lua\84\0")
              return {loaded = f ~= nil, error = e}
            end
            if k == "err" then error("boom") end
            if k == "fn" then return {f = function() end} end
            if k == "keys" then return {[1] = "a", [3] = "c"} end
            return {ok = true, time = os.time() > 0}
routes:
  - {method: POST, path: "/total/{id}", process: total}
  - {method: GET, path: /hello, process: from_file}
  - {method: GET, path: /evil, process: evil}
'''


@pytest.fixture
def node(portico_factory, tmp_path):
    (tmp_path / "apis" / "scripts").mkdir(parents=True, exist_ok=True)
    (tmp_path / "apis" / "scripts" / "hello.lua").write_text('return {who = "world"}\n')
    return portico_factory(node_config(), {"calc.yaml": API})


def test_script_result_and_context(node):
    r = requests.post(node.url("/calc/total/42"), timeout=10,
                      json={"lines": [{"qty": 2, "price": 1.5}, {"qty": 1, "price": 10}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 13
    assert body["n"] == 2
    assert body["first"] == {"qty": 2, "price": 1.5}
    assert body["none"] is None
    assert body["path"] == "42"
    assert body["tags"] == ["a", "b"]
    assert r.headers.get("X-Execution-Id")


def test_script_from_file(node):
    r = requests.get(node.url("/calc/hello"), timeout=10)
    assert r.status_code == 200
    assert r.text == "hello world"


@pytest.mark.parametrize("kind,log", [
    ("loop", "instruction budget"),
    ("mem", "memory cap"),
    ("strmem", "memory cap"),
    ("io", "global 'io'"),
    ("os", "field 'execute'"),
    ("dump", "field 'dump'"),
    ("require", "global 'require'"),
    ("debug", "global 'debug'"),
    ("dofile", "global 'dofile'"),
    ("err", "boom"),
    ("fn", "JSON cannot carry"),
    ("keys", "non-string keys"),
])
def test_sandbox_refuses(node, kind, log):
    r = requests.get(node.url("/calc/evil"), params={"kind": kind}, timeout=30)
    assert r.status_code == 500, r.text
    assert r.json()["type"] == "urn:portico:problem:script-error"
    assert "passwd" not in r.text and "uid=" not in r.text
    node.wait_log(log) if hasattr(node, "wait_log") else None
    assert log in node.stderr()
    # the node is unharmed
    ok = requests.get(node.url("/calc/evil"), params={"kind": "fine"}, timeout=10)
    assert ok.status_code == 200 and ok.json() == {"ok": True, "time": True}


def test_bytecode_is_never_loaded(node):
    r = requests.get(node.url("/calc/evil"), params={"kind": "bytecode"}, timeout=10)
    assert r.status_code == 200
    body = r.json()
    assert body["loaded"] is False
    assert "binary chunk" in body["error"]


def test_syntax_error_is_a_load_error(tmp_path):
    (tmp_path / "bad.yaml").write_text('''
name: bad
base_path: /bad
kind: service
title: Bad
version: "1"
processes:
  p:
    steps:
      - script:
          source: "return 1 +"
routes:
  - {method: GET, path: /, process: p}
''')
    p = subprocess.run([BIN, "validate", "bad.yaml"], capture_output=True, text=True,
                       timeout=30, cwd=tmp_path)
    assert p.returncode != 0
    assert "bad.yaml:11: processes.p.steps[0].script.source: the Lua code does not compile" \
        in p.stderr, p.stderr
