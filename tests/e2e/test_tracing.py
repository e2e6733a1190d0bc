"""W3C Trace Context (docs/observability.md "Tracing"): a request's
traceparent is kept, or a trace is started; the upstream gets the node's own
span as its parent; the access log carries trace_id, span_id and the client's
span. Real node, real upstream."""
import re

from conftest import fetch, node_config
from test_proxy import Upstream, log_entry, proxy_api, req, rid

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TP = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def node_with(portico_factory, u, extra=""):
    return portico_factory(node_config(extra=extra),
                           {"legacy.yaml": proxy_api("legacy", "/legacy", u.url())})


def test_traceparent_kept_and_new_span_upstream(portico_factory):
    u = Upstream()
    try:
        n = node_with(portico_factory, u)
        i = rid("tp")
        extra = ("traceparent: 00-%s-%s-01\r\ntracestate: vendor=x\r\n" % (TRACE, PARENT)).encode()
        assert fetch(n.port, req("GET", "/legacy/a", i, extra=extra)).status == 200
        got = u.find(i)
        m = TP.match(got.header("traceparent"))
        assert m, got.header("traceparent")
        assert m.group(1) == TRACE          # the same trace
        assert m.group(2) != PARENT         # the node's own span is the parent now
        assert m.group(3) == "01"
        assert got.header("tracestate") == "vendor=x"  # passed on untouched
        e = log_entry(n, lambda e: e["request_id"] == i)
        assert e["trace_id"] == TRACE
        assert e["span_id"] == m.group(2)
        assert e["parent_span_id"] == PARENT
    finally:
        u.stop()


def test_trace_started_when_absent_or_invalid(portico_factory):
    u = Upstream()
    try:
        n = node_with(portico_factory, u)
        bad = [
            None,
            "00-%s-%s-01" % ("0" * 32, PARENT),             # all-zero trace id
            "00-%s-%s-01" % (TRACE, "0" * 16),              # all-zero parent id
            "00-%s-%s-01" % (TRACE.upper(), PARENT),        # upper-case hex
            "ff-%s-%s-01" % (TRACE, PARENT),                # version ff
            "00-%s-%s-01-extra" % (TRACE, PARENT),          # version 00 is exactly 55
            "00-%s-%s" % (TRACE, PARENT),                   # too short
            "' OR 1=1 --",
        ]
        seen = set()
        for v in bad:
            i = rid("tn")
            extra = ("traceparent: %s\r\n" % v).encode() if v else b""
            assert fetch(n.port, req("GET", "/legacy/b", i, extra=extra)).status == 200
            m = TP.match(u.find(i).header("traceparent"))
            assert m and m.group(1) != TRACE, v
            seen.add(m.group(1))
            e = log_entry(n, lambda e: e["request_id"] == i)
            assert e["trace_id"] == m.group(1) and "parent_span_id" not in e
        assert len(seen) == len(bad)  # a new trace each time
        # two traceparent headers are invalid too (the specification): a new trace
        i = rid("t2")
        extra = ("traceparent: 00-%s-%s-01\r\ntraceparent: 00-%s-%s-01\r\n"
                 % (TRACE, PARENT, TRACE, PARENT)).encode()
        assert fetch(n.port, req("GET", "/legacy/c", i, extra=extra)).status == 200
        assert TP.match(u.find(i).header("traceparent")).group(1) != TRACE
        # a later version's extra fields are allowed (the first 55 characters count)
        i = rid("tv")
        extra = ("traceparent: 01-%s-%s-01-future\r\n" % (TRACE, PARENT)).encode()
        assert fetch(n.port, req("GET", "/legacy/d", i, extra=extra)).status == 200
        assert TP.match(u.find(i).header("traceparent")).group(1) == TRACE
    finally:
        u.stop()


def test_tracing_off(portico_factory):
    u = Upstream()
    try:
        n = node_with(portico_factory, u, "tracing: {traceparent: false}\n")
        i = rid("off")
        extra = ("traceparent: 00-%s-%s-01\r\n" % (TRACE, PARENT)).encode()
        assert fetch(n.port, req("GET", "/legacy/e", i, extra=extra)).status == 200
        # passed through untouched, nothing in the log
        assert u.find(i).header("traceparent") == "00-%s-%s-01" % (TRACE, PARENT)
        e = log_entry(n, lambda e: e["request_id"] == i)
        assert "trace_id" not in e
    finally:
        u.stop()
