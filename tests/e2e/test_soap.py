"""
SOAP operations of service APIs at POST {base_path}/soap: SOAP 1.1 and 1.2
envelopes dispatched on the Body's element (checked against the action),
payloads typed by the operation's input schema, answers as qualified
<{op}Response> elements, faults for bad requests and process errors, and
hostile XML (billion laughs, external entities, deep nesting) refused fast.
"""
import sqlite3
import time
import xml.etree.ElementTree as ET

import pytest
import requests

from conftest import node_config

S11 = "http://schemas.xmlsoap.org/soap/envelope/"
S12 = "http://www.w3.org/2003/05/soap-envelope"
TNS = "urn:portico:crm"

API = '''
name: crm
base_path: /crm
kind: service
title: CRM
version: "1"
connections:
  db: {url: "sqlite:../crm.db"}
schemas:
  getCustomer:
    type: object
    required: [id]
    properties: {id: {type: integer}}
  customer:
    type: object
    properties: {id: {type: integer}, name: {type: string}, vip: {type: boolean, nullable: true}}
  createCustomer:
    type: object
    required: [name]
    properties:
      name: {type: string, maxLength: 20}
      vip: {type: boolean}
processes:
  get:
    steps:
      - sql: {query: "SELECT id, name, vip FROM customers WHERE id = :id", params: {id: body.id}, result: row}
  create:
    steps:
      - name: ins
        sql: {query: "INSERT INTO customers(name, vip) VALUES (:name, :vip)", params: {name: body.name, vip: "default(body.vip, false)"}, result: key}
      - map: {fields: {id: steps.ins.key, vip: "default(body.vip, false)"}}
operations:
  - {name: getCustomer, process: get, input: getCustomer, output: customer}
  - {name: createCustomer, process: create, input: createCustomer}
'''


@pytest.fixture
def node(portico_factory, tmp_path):
    con = sqlite3.connect(tmp_path / "crm.db")
    con.execute("CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, vip BOOLEAN)")
    con.execute("INSERT INTO customers(name, vip) VALUES ('Ada', 1)")
    con.commit()
    con.close()
    return portico_factory(node_config(), {"crm.yaml": API})


def envelope(ns, op, inner):
    return ('<?xml version="1.0"?><s:Envelope xmlns:s="%s"><s:Body><m:%s xmlns:m="%s">%s'
            '</m:%s></s:Body></s:Envelope>' % (ns, op, TNS, inner, op)).encode()


def call11(node, op, inner, action=None):
    return requests.post(node.url("/crm/soap"), data=envelope(S11, op, inner), timeout=10,
                         headers={"Content-Type": "text/xml; charset=utf-8",
                                  "SOAPAction": '"%s"' % (action if action is not None
                                                          else TNS + "/" + op)})


def call12(node, op, inner):
    return requests.post(node.url("/crm/soap"), data=envelope(S12, op, inner), timeout=10,
                         headers={"Content-Type": 'application/soap+xml; charset=utf-8; '
                                                  'action="%s/%s"' % (TNS, op)})


def body_el(r, ns):
    root = ET.fromstring(r.content)
    assert root.tag == "{%s}Envelope" % ns
    return root.find("{%s}Body" % ns)[0]


def test_soap11_and_12_operations(node):
    r = call11(node, "getCustomer", "<m:id>1</m:id>")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/xml")
    resp = body_el(r, S11)
    assert resp.tag == "{%s}getCustomerResponse" % TNS
    assert resp.find("{%s}name" % TNS).text == "Ada"
    assert resp.find("{%s}vip" % TNS).text == "true"
    r = call12(node, "createCustomer", "<m:name>Bo &amp; Co</m:name><m:vip>1</m:vip>")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/soap+xml")
    resp = body_el(r, S12)
    assert resp.tag == "{%s}createCustomerResponse" % TNS
    assert resp.find("{%s}vip" % TNS).text == "true"
    new_id = resp.find("{%s}id" % TNS).text
    r = call11(node, "getCustomer", "<m:id>%s</m:id>" % new_id)
    assert body_el(r, S11).find("{%s}name" % TNS).text == "Bo & Co"


def fault11(r):
    f = body_el(r, S11)
    assert f.tag == "{%s}Fault" % S11
    return f.find("faultcode").text, f.find("faultstring").text


def test_faults(node):
    # a process error (not found) is a Server fault with 500... a 404 keeps its status
    r = call11(node, "getCustomer", "<m:id>999</m:id>")
    assert r.status_code == 404 and fault11(r)[0].endswith("Client")
    r = call11(node, "createCustomer", "<m:name>Ada</m:name>")  # unique violation
    assert r.status_code == 409 and fault11(r)[0].endswith("Client")
    r = call11(node, "getCustomer", "<m:id>one</m:id>")  # schema: integer
    assert r.status_code == 400 and fault11(r)[0].endswith("Client")
    r = call11(node, "deleteEverything", "")
    assert r.status_code == 400 and "No operation" in fault11(r)[1]
    r = call11(node, "getCustomer", "<m:id>1</m:id>", action="urn:other/createCustomer")
    assert r.status_code == 400 and "action" in fault11(r)[1]
    r = requests.post(node.url("/crm/soap"), data=envelope(S12, "getCustomer", "<m:id>1</m:id>"),
                      headers={"Content-Type": "text/xml", "SOAPAction": ""}, timeout=10)
    assert r.status_code == 400 and "SOAP 1.1 Envelope" in fault11(r)[1]
    r = requests.post(node.url("/crm/soap"), data=b"{}", timeout=10,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 415
    assert requests.get(node.url("/crm/soap"), timeout=10).status_code == 405


@pytest.mark.parametrize("doc", [
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;">]><s:Envelope xmlns:s="' + S11.encode() +
    b'"><s:Body><getCustomer><id>&c;</id></getCustomer></s:Body></s:Envelope>',
    b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]><s:Envelope '
    b'xmlns:s="' + S11.encode() + b'"><s:Body><getCustomer><id>&x;</id></getCustomer></s:Body>'
    b'</s:Envelope>',
    b'<s:Envelope xmlns:s="' + S11.encode() + b'"><s:Body>' + b"<a>" * 10000 + b"</a>" * 10000 +
    b'</s:Body></s:Envelope>',
    b'<s:Envelope xmlns:s="urn:wrong"><s:Body><getCustomer/></s:Body></s:Envelope>',
    b'<s:Envelope xmlns:s="' + S11.encode() + b'"></s:Envelope>',
])
def test_hostile_envelopes_are_client_faults(node, doc):
    t0 = time.time()
    r = requests.post(node.url("/crm/soap"), data=doc, timeout=10,
                      headers={"Content-Type": "text/xml", "SOAPAction": '""'})
    assert time.time() - t0 < 2
    assert r.status_code == 400, r.text
    code, text = fault11(r)
    assert code.endswith("Client")
    assert "root:" not in r.text


def test_wsdl_consumed_by_zeep(node):
    """zeep (a real SOAP client) reads the WSDL and calls every operation, over
    the SOAP 1.1 and the SOAP 1.2 port, and gets a fault as a zeep Fault."""
    import zeep
    from zeep.exceptions import Fault
    wsdl = node.url("/crm/soap?wsdl")
    r = requests.get(wsdl, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(r.content)
    W = "http://schemas.xmlsoap.org/wsdl/"
    schema = root.find("{%s}types/{http://www.w3.org/2001/XMLSchema}schema" % W)
    assert schema.get("elementFormDefault") == "qualified" and schema.get("targetNamespace") == TNS
    actions = [op.get("soapAction") for op in
               root.iter("{http://schemas.xmlsoap.org/wsdl/soap/}operation")]
    assert sorted(actions) == [TNS + "/createCustomer", TNS + "/getCustomer"]
    addresses = [a.get("location") for a in root.iter() if a.tag.endswith("}address")]
    assert addresses == [node.url("/crm/soap")] * 2
    client = zeep.Client(wsdl)
    for port in ("crmSoap11", "crmSoap12"):
        svc = client.bind("crmService", port)
        got = svc.getCustomer(id=1)
        assert got.id == 1 and got.name == "Ada" and got.vip is True  # typed by the WSDL
        created = svc.createCustomer(name="Zed %s" % port, vip=True)
        assert created is not None
        with pytest.raises(Fault):
            svc.getCustomer(id=424242)


def test_apis_lists_soap_urls(node):
    apis = requests.get(node.url("/_portico/apis"), timeout=10).json()["apis"]
    crm = [a for a in apis if a["name"] == "crm"][0]
    assert crm["soap"] == "/crm/soap" and crm["wsdl"] == "/crm/soap?wsdl"
    assert crm["openapi"] == "/crm/openapi.json"


def test_generated_api_speaks_soap(portico_factory, tmp_path):
    """`portico generate` adds SOAP operations over the same processes; zeep
    calls them through the generated WSDL (SOAP 1.1 and 1.2)."""
    import os
    import subprocess
    import zeep
    from zeep.exceptions import Fault
    from conftest import BIN
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    (tmp_path / "apis").mkdir()
    db = tmp_path / "apis" / "erp.db"
    con = sqlite3.connect(db)
    con.executescript(open(os.path.join(root, "examples", "erp.sql")).read())
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
    n = portico_factory(node_config(), {"erp.yaml": text})
    client = zeep.Client(n.url("/erp/soap?wsdl"))
    for port in ("erpSoap11", "erpSoap12"):
        svc = client.bind("erpService", port)
        ada = svc.getCustomer(id=1)
        assert ada.name == "Ada Lovelace" and ada.city == "London"
        line = svc.getOrderLine(orderId=1, lineNo=2)
        assert line.sku == "P-200" and line.quantity == 3
        made = svc.createCustomer(name="Turing %s" % port, email="t-%s@example.com" % port,
                                  balance="1.50")
        assert made.name == "Turing %s" % port
        upd = svc.updateCustomer(id=made.id, name="Alan %s" % port, balance="2.00")
        assert upd.name == "Alan %s" % port
        svc.deleteCustomer(id=made.id)
        with pytest.raises(Fault):
            svc.getCustomer(id=made.id)
        assert svc.queryCustomers() is not None


def test_wsdl_consumed_by_node_soap(node):
    """A second, independent consumer: the npm `soap` package (installed by
    scripts/setup.sh) loads the WSDL and calls an operation."""
    import json
    import os
    import subprocess
    script = os.path.join(os.path.dirname(__file__), "..", "contracts", "soap-client.js")
    p = subprocess.run(["node", script, node.url("/crm/soap?wsdl"), "getCustomer",
                        json.dumps({"id": 1})], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    ports = out["describe"]["crmService"]
    assert set(ports) == {"crmSoap11", "crmSoap12"}
    assert set(ports["crmSoap11"]) == {"getCustomer", "createCustomer"}
    assert out["result"]["name"] == "Ada" and str(out["result"]["id"]) == "1"
