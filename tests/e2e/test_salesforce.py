"""
The Salesforce outbound-message recipe (examples/salesforce/): a realistic
`notifications` message posted twice gives one row per record and an Ack
each time; a redelivered notification is not applied again; a new
notification for the same record updates it.
"""
import os
import shutil
import sqlite3
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

import requests

from conftest import node_config

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "salesforce")

MESSAGE = '''<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>00D000000000062EAA</OrganizationId>
   <ActionId>04k000000000001AAA</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/59.0/00D000000000062</EnterpriseUrl>
   <PartnerUrl>https://example.my.salesforce.com/services/Soap/u/59.0/00D000000000062</PartnerUrl>
   %s
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>'''

NOTE = '''<Notification>
    <Id>%s</Id>
    <sObject xsi:type="sf:Account" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>%s</sf:Id>
     <sf:Industry>Energy</sf:Industry>
     <sf:Name>%s</sf:Name>
    </sObject>
   </Notification>'''


def post(n, notes):
    body = MESSAGE % "".join(NOTE % (a, b, escape(c)) for a, b, c in notes)
    return requests.post(n.url("/salesforce/v1/soap"), data=body.encode(), timeout=10,
                         headers={"Content-Type": "text/xml; charset=utf-8",
                                  "SOAPAction": '""'})


def ack(r):
    assert r.status_code == 200, r.text
    root = ET.fromstring(r.content)
    resp = root.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")[0]
    assert resp.tag == "{http://soap.sforce.com/2005/09/outbound}notificationsResponse"
    return resp.find("{http://soap.sforce.com/2005/09/outbound}Ack").text


def rows(db):
    con = sqlite3.connect(db)
    try:
        return sorted(con.execute("SELECT id, name, industry, updated_by FROM accounts"))
    finally:
        con.close()


def test_outbound_messages_upserted_once(portico_factory, tmp_path):
    (tmp_path / "apis").mkdir()
    db = tmp_path / "apis" / "salesforce.db"
    con = sqlite3.connect(db)
    con.executescript(open(os.path.join(EXAMPLE, "schema.sql")).read())
    con.close()
    api = open(os.path.join(EXAMPLE, "salesforce.yaml")).read()
    n = portico_factory(node_config(), {"salesforce.yaml": api})
    notes = [("04l000000000001AAA", "001000000000001AAA", "Acme & Sons"),
             ("04l000000000002AAA", "001000000000002AAA", "Ünïcode GmbH")]
    assert ack(post(n, notes)) == "true"
    assert ack(post(n, notes)) == "true"  # Salesforce redelivers: same rows
    assert rows(db) == [("001000000000001AAA", "Acme & Sons", "Energy", "04l000000000001AAA"),
                        ("001000000000002AAA", "Ünïcode GmbH", "Energy", "04l000000000002AAA")]
    # a redelivered notification is not applied again, even with other data
    assert ack(post(n, [("04l000000000001AAA", "001000000000001AAA", "Changed")])) == "true"
    assert rows(db)[0][1] == "Acme & Sons"
    # a new notification for the same record updates it
    assert ack(post(n, [("04l000000000003AAA", "001000000000001AAA", "Acme Ltd")])) == "true"
    assert rows(db)[0][1:] == ("Acme Ltd", "Energy", "04l000000000003AAA")
    assert len(rows(db)) == 2
    # a hundred at once
    many = [("04l%012dAAA" % i, "001%012dAAA" % i, "Account %d" % i) for i in range(100, 200)]
    assert ack(post(n, many)) == "true"
    assert len(rows(db)) == 102
    # not a notifications message: a Client fault, nothing written
    r = requests.post(n.url("/salesforce/v1/soap"), data=b"<nope/>", timeout=10,
                      headers={"Content-Type": "text/xml", "SOAPAction": '""'})
    assert r.status_code == 500 and b"soap:Client" in r.content  # WS-I R1126
    assert len(rows(db)) == 102
