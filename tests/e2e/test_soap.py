"""
SOAP operations of service APIs at POST {base_path}/soap: SOAP 1.1 and 1.2
envelopes dispatched on the Body's element (checked against the action),
payloads typed by the operation's input schema, answers as qualified
<{op}Response> elements, faults for bad requests and process errors, and
hostile XML (billion laughs, external entities, deep nesting) refused fast.
"""
import pathlib
import sqlite3
import subprocess
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
    """(faultcode, faultstring, the status in the detail) of a SOAP 1.1 fault,
    which travels with HTTP 500 (WS-I Basic Profile R1126)."""
    assert r.status_code == 500, r.text
    f = body_el(r, S11)
    assert f.tag == "{%s}Fault" % S11
    status = f.find("detail/{urn:ietf:rfc:7807}problem/{urn:ietf:rfc:7807}status")
    return f.find("faultcode").text, f.find("faultstring").text, int(status.text)


def test_faults(node):
    # process errors keep their meaning in the detail: not found, conflict
    r = call11(node, "getCustomer", "<m:id>999</m:id>")
    assert fault11(r)[0] == "soap:Client" and fault11(r)[2] == 404
    r = call11(node, "createCustomer", "<m:name>Ada</m:name>")  # unique violation
    assert fault11(r)[0] == "soap:Client" and fault11(r)[2] == 409
    r = call11(node, "getCustomer", "<m:id>one</m:id>")  # schema: integer
    assert fault11(r)[0] == "soap:Client" and fault11(r)[2] == 400
    r = call11(node, "deleteEverything", "")
    assert "No operation" in fault11(r)[1]
    r = call11(node, "getCustomer", "<m:id>1</m:id>", action="urn:other/createCustomer")
    assert "action" in fault11(r)[1]
    r = requests.post(node.url("/crm/soap"), data=envelope(S12, "getCustomer", "<m:id>1</m:id>"),
                      headers={"Content-Type": "text/xml", "SOAPAction": ""}, timeout=10)
    assert "SOAP 1.1 Envelope" in fault11(r)[1]
    # SOAP 1.2: a Sender fault is a 400 (SOAP 1.2 part 2, 7.5.2)
    r = call12(node, "getCustomer", "<m:id>999</m:id>")
    assert r.status_code == 400 and r.headers["Content-Type"].startswith("application/soap+xml")
    f = body_el(r, S12)
    assert f.find("{%s}Code/{%s}Value" % (S12, S12)).text == "soap:Sender"
    assert f.find("{%s}Reason/{%s}Text" % (S12, S12)).get(
        "{http://www.w3.org/XML/1998/namespace}lang") == "en"
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
    code, text, status = fault11(r)
    assert status == 400
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


def call_every_operation(svc, tag):
    """Every one of the 20 generated operations, in an order the foreign keys
    allow, checking each answer; then a fault."""
    from zeep.exceptions import Fault
    ada = svc.getCustomer(id=1)
    assert ada.name == "Ada Lovelace" and ada.city == "London"
    cust = svc.createCustomer(name="Turing " + tag, email="t-%s@example.com" % tag,
                              city="Wilmslow", balance="1.50")
    assert cust.name == "Turing " + tag and cust.id > 5
    assert svc.updateCustomer(id=cust.id, name="Alan " + tag, city="Wilmslow",
                              balance="2.00").name == "Alan " + tag
    assert [c.id for c in svc.queryCustomers(city="Wilmslow")] == [cust.id]
    assert [c.id for c in svc.queryCustomers(limit=2)] == [1, 2]
    prod = svc.createProduct(sku="T-" + tag, title="Bombe", price="10.00")
    assert svc.getProduct(sku=prod.sku).title == "Bombe"
    assert svc.updateProduct(sku=prod.sku, title="Bombe II", price="12.00").title == "Bombe II"
    assert len(svc.queryProducts(limit=100)) >= 4
    order = svc.createOrder(customerId=cust.id, note="via " + tag)
    assert svc.getOrder(id=order.id).note == "via " + tag
    assert svc.updateOrder(id=order.id, customerId=cust.id, note=None).note is None
    assert [o.id for o in svc.queryOrders(customerId=cust.id)] == [order.id]
    line = svc.createOrderLine(orderId=order.id, lineNo=1, sku=prod.sku, quantity=2)
    assert line.quantity == 2
    assert svc.getOrderLine(orderId=order.id, lineNo=1).sku == prod.sku
    assert svc.updateOrderLine(orderId=order.id, lineNo=1, sku=prod.sku,
                               quantity=5).quantity == 5
    assert [ln.quantity for ln in svc.queryOrderLines(orderId=order.id)] == [5]
    assert svc.getOrderLine(orderId=1, lineNo=2).quantity == 3
    svc.deleteOrderLine(orderId=order.id, lineNo=1)
    svc.deleteOrder(id=order.id)
    svc.deleteProduct(sku=prod.sku)
    svc.deleteCustomer(id=cust.id)
    with pytest.raises(Fault) as f:
        svc.getCustomer(id=cust.id)
    status = f.value.detail.find(".//{urn:ietf:rfc:7807}status")
    assert status is not None and status.text == "404", ET.tostring(f.value.detail)


class Capture:
    """A zeep plugin keeping every envelope sent and received."""
    def __init__(self):
        self.messages = []

    def egress(self, envelope, http_headers, operation, binding_options):
        from lxml import etree
        self.messages.append(etree.tostring(envelope))
        return envelope, http_headers

    def ingress(self, envelope, http_headers, operation):
        from lxml import etree
        self.messages.append(etree.tostring(envelope))
        return envelope, http_headers


def test_generated_api_speaks_soap(erp, tmp_path):
    """`portico generate` adds SOAP operations over the same processes; zeep
    calls every one of them through the generated WSDL, SOAP 1.1 and 1.2.
    The WSDL, its schema and every message exchanged then validate with
    xmllint against the WSDL 1.1, SOAP 1.1 envelope and XML Schema schemas."""
    import zeep
    cap = Capture()
    client = zeep.Client(erp.url("/erp/soap?wsdl"), plugins=[cap])
    ops = client.wsdl.services["erpService"].ports["erpSoap11"].binding._operations
    assert len(ops) == 20, sorted(ops)
    for port in ("erpSoap11", "erpSoap12"):
        call_every_operation(client.bind("erpService", port), port)
    # a fault straight from the server, too
    fault = requests.post(erp.url("/erp/soap"), timeout=10, data=(
        '<s:Envelope xmlns:s="%s"><s:Body><m:getCustomer xmlns:m="urn:portico:erp">'
        '<m:id>x</m:id></m:getCustomer></s:Body></s:Envelope>' % S11).encode(),
        headers={"Content-Type": "text/xml", "SOAPAction": '"urn:portico:erp/getCustomer"'})
    assert fault.status_code == 500 and b"soap:Client" in fault.content
    cap.messages.append(fault.content)
    assert len(cap.messages) >= 2 * 2 * 22
    validate_wsdl_and_messages(tmp_path, requests.get(erp.url("/erp/soap?wsdl"), timeout=10)
                               .content, "urn:portico:erp", cap.messages)


# The schemas of WSDL 1.1, its SOAP binding, the SOAP 1.1 envelope and XML
# Schema itself, as Debian's python3-xmlschema ships them.
XSD = pathlib.Path("/usr/lib/python3/dist-packages/xmlschema/schemas")


def xmllint(tmp_path, schema, docs):
    catalog = tmp_path / "catalog.xml"
    catalog.write_text(  # XMLSchema.xsd imports xml.xsd by its URL: no network
        '<catalog xmlns="urn:oasis:names:tc:entity:xmlns:xml:catalog">'
        '<system systemId="http://www.w3.org/2001/xml.xsd" uri="%s"/></catalog>'
        % (XSD / "XML" / "xml_minimal.xsd").as_uri())
    return subprocess.run(["xmllint", "--nonet", "--noout", "--schema", str(schema)] +
                          [str(d) for d in docs], capture_output=True, text=True, timeout=120,
                          env={"XML_CATALOG_FILES": str(catalog), "PATH": "/usr/bin:/bin"})


def importing(tmp_path, name, imports):
    """A schema that only imports others, so that xmllint knows them all."""
    f = tmp_path / name
    f.write_text('<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
                 'targetNamespace="urn:portico:test:%s">%s</xs:schema>' % (name, "".join(
                     '<xs:import namespace="%s" schemaLocation="%s"/>' % (ns, loc.as_uri())
                     for ns, loc in imports)))
    return f


def validate_wsdl_and_messages(tmp_path, wsdl, tns, messages):
    from lxml import etree
    (tmp_path / "api.wsdl").write_bytes(wsdl)
    defs = importing(tmp_path, "wsdl.xsd", [
        ("http://schemas.xmlsoap.org/wsdl/", XSD / "WSDL" / "wsdl.xsd"),
        ("http://schemas.xmlsoap.org/wsdl/soap/", XSD / "WSDL" / "wsdl-soap.xsd")])
    p = xmllint(tmp_path, defs, [tmp_path / "api.wsdl"])
    assert p.returncode == 0, p.stderr
    # the validator is awake: a portType without its name is refused
    (tmp_path / "broken.wsdl").write_bytes(wsdl.replace(b"<wsdl:portType name=",
                                                        b"<wsdl:portType nom="))
    assert xmllint(tmp_path, defs, [tmp_path / "broken.wsdl"]).returncode != 0
    # the embedded schema is a valid XML Schema (in-scope prefixes kept)
    types = etree.fromstring(wsdl).find("{http://schemas.xmlsoap.org/wsdl/}types")
    assert len(types) == 1 and types[0].get("targetNamespace") == tns
    (tmp_path / "types.xsd").write_bytes(etree.tostring(types[0]))
    p = xmllint(tmp_path, XSD / "XSD_1.0" / "XMLSchema.xsd", [tmp_path / "types.xsd"])
    assert p.returncode == 0, p.stderr
    # every SOAP 1.1 message against the envelope schema and the types, and
    # every SOAP 1.2 Body's element against the types
    env11 = importing(tmp_path, "env11.xsd", [
        ("http://schemas.xmlsoap.org/soap/envelope/", XSD / "WSDL" / "soap-envelope.xsd"),
        (tns, tmp_path / "types.xsd")])
    docs11, docs12 = [], []
    for i, m in enumerate(messages):
        root = etree.fromstring(m)
        if root.tag == "{%s}Envelope" % S11:
            docs11.append(tmp_path / ("m%d.xml" % i))
            docs11[-1].write_bytes(m)
        else:
            assert root.tag == "{%s}Envelope" % S12, m
            el = root.find("{%s}Body" % S12)[0]
            if el.tag == "{%s}Fault" % S12:
                continue  # no SOAP 1.2 envelope schema in Debian; test_faults reads these
            docs12.append(tmp_path / ("m%d.xml" % i))
            docs12[-1].write_bytes(etree.tostring(el))
    assert len(docs11) > 40 and len(docs12) > 40
    p = xmllint(tmp_path, env11, docs11)
    assert p.returncode == 0, p.stderr
    p = xmllint(tmp_path, tmp_path / "types.xsd", docs12)
    assert p.returncode == 0, p.stderr
    # and a message that breaks the types is refused
    bad = tmp_path / "bad.xml"
    bad.write_bytes(envelope(S11, "getCustomer", "<m:id>x</m:id>").replace(TNS.encode(),
                                                                            tns.encode()))
    assert "not a valid value" in xmllint(tmp_path, env11, [bad]).stderr


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
