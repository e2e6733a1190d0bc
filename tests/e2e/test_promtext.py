"""Self-test of tests/e2e/promtext.py, the strict parser of the Prometheus
text exposition format 0.0.4 used by test_metrics.py: well-formed
expositions are read back exactly (escapes decoded), and every rule the
parser enforces has a hostile input that it refuses."""
import math
import os
import shutil
import subprocess

import pytest

from promtext import PromParseError, parse, parse_float

GOOD = r'''# A plain comment, then an empty line.

# HELP http_requests_total The total number of HTTP requests.\nSecond line, a backslash: \\.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000
http_requests_total{ method = "get" , code = "200" , } 12
# HELP escapes Label values with escapes.
# TYPE escapes gauge
escapes{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9
escapes{label="a\\\"b\nc"} -0.5
escapes{label=""} +Inf
escapes{label="x"} -Inf
escapes{label="y"} NaN
escapes{label="unicode é日"} .5
escapes{label="z"} 5e-3
# TYPE something_weird gauge
something_weird{problem="division by zero"} +Inf -3982045
# HELP no_labels A gauge without labels.
# TYPE no_labels gauge
no_labels 3
# TYPE empty_braces untyped
empty_braces{} 4
# HELP latency_seconds A histogram of the request duration.
# TYPE latency_seconds histogram
latency_seconds_bucket{api="a",le="0.05"} 24054
latency_seconds_bucket{api="a",le="0.1"} 33444
latency_seconds_bucket{api="a",le="0.2"} 100392
latency_seconds_bucket{api="a",le="0.5"} 129389
latency_seconds_bucket{api="a",le="1"} 133988
latency_seconds_bucket{api="a",le="+Inf"} 144320
latency_seconds_sum{api="a"} 53423
latency_seconds_count{api="a"} 144320
latency_seconds_bucket{api="b",le="0.05"} 0
latency_seconds_bucket{api="b",le="1e-1"} 0
latency_seconds_bucket{api="b",le="+Inf"} 0
latency_seconds_count{api="b"} 0
latency_seconds_sum{api="b"} 0
# HELP queue_wait_seconds An unlabelled histogram.
# TYPE queue_wait_seconds histogram
queue_wait_seconds_bucket{le="0.5"} 1
queue_wait_seconds_bucket{le="+Inf"} 2
queue_wait_seconds_sum 0.75
queue_wait_seconds_count 2
# HELP rpc_duration_seconds A summary of the RPC duration in seconds.
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.01"} 3102
rpc_duration_seconds{quantile="0.5"} 4773
rpc_duration_seconds{quantile="0.99"} 76656
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
# HELP no_samples A family with no series yet.
# TYPE no_samples gauge
# TYPE portico:recorded_ratio gauge
portico:recorded_ratio 0.25
'''


def test_good_exposition_is_read_back():
    exp = parse(GOOD)
    assert list(exp.families) == [
        "http_requests_total", "escapes", "something_weird", "no_labels", "empty_braces",
        "latency_seconds", "queue_wait_seconds", "rpc_duration_seconds", "no_samples",
        "portico:recorded_ratio"]
    f = exp.families["http_requests_total"]
    assert f.type == "counter"
    assert f.help == "The total number of HTTP requests.\nSecond line, a backslash: \\."
    assert [(s.name, s.labels, s.value, s.timestamp) for s in f.samples] == [
        ("http_requests_total", {"method": "post", "code": "200"}, 1027.0, 1395066363000),
        ("http_requests_total", {"method": "post", "code": "400"}, 3.0, 1395066363000),
        ("http_requests_total", {"method": "get", "code": "200"}, 12.0, None)]
    e = exp.families["escapes"].samples
    assert e[0].labels == {"path": "C:\\DIR\\FILE.TXT", "error": 'Cannot find file:\n"FILE.TXT"'}
    assert e[0].value == 1.458255915e9
    assert e[1].labels == {"label": 'a\\"b\nc'} and e[1].value == -0.5
    assert e[2].labels == {"label": ""} and e[2].value == math.inf
    assert e[3].value == -math.inf and math.isnan(e[4].value)
    assert e[5].labels == {"label": "unicode \u00e9\u65e5"} and e[5].value == 0.5
    assert e[6].value == 0.005
    assert exp.families["something_weird"].samples[0].timestamp == -3982045
    assert exp.families["no_labels"].help == "A gauge without labels."
    assert exp.families["empty_braces"].type == "untyped"
    assert exp.families["empty_braces"].samples[0].labels == {}
    assert exp.families["no_samples"].samples == []
    assert exp.families["something_weird"].help is None
    # look-ups
    assert exp.value("http_requests_total", method="post", code="400") == 3
    assert exp.value("http_requests_total", method="post") is None  # exact label sets only
    assert exp.total("http_requests_total", method="post") == 1030
    assert exp.total("http_requests_total") == 1042
    assert exp.total("nothing_here") == 0
    assert exp.value("latency_seconds_count", {"api": "a"}) == 144320
    assert exp.value("latency_seconds_bucket", api="b", le="1e-1") == 0
    assert exp.label_values("latency_seconds_sum", "api") == {"a", "b"}
    names = exp.metric_names()
    assert {"latency_seconds_bucket", "latency_seconds_sum", "latency_seconds_count",
            "rpc_duration_seconds", "rpc_duration_seconds_sum", "no_samples"} <= names
    assert "latency_seconds" not in names
    assert exp.warnings == []


def test_bytes_empty_and_blank_lines():
    assert parse(b"").families == {}
    exp = parse(b"# TYPE a gauge\n\n \t\na{x=\"\xc3\xa9\"} 1\n")
    assert exp.families["a"].samples[0].labels == {"x": "\u00e9"}
    assert parse("# just a comment\n").families == {}
    # a comment token that only starts like HELP is a comment
    assert parse("# HELPER text\n# TYPE a gauge\na 1\n").families["a"].type == "gauge"


def test_escaped_label_value_from_the_brief():
    exp = parse('# TYPE m gauge\nm{label="a\\\\\\"b\\nc"} 1\n')
    assert exp.families["m"].samples[0].labels["label"] == 'a\\"b\nc'


def test_counter_without_total_warns_unless_listed():
    exp = parse("# TYPE requests counter\nrequests 1\n", counter_names=())
    assert len(exp.warnings) == 1 and "requests" in exp.warnings[0]
    with pytest.raises(PromParseError, match="must be named"):
        parse("# TYPE portico_http_requests counter\nportico_http_requests 1\n")
    with pytest.raises(PromParseError, match="must be named"):
        parse("# TYPE requests counter\nrequests 1\n", counter_names=("requests",))


def test_require_help():
    parse("# TYPE a gauge\na 1\n")
    with pytest.raises(PromParseError, match="no HELP"):
        parse("# TYPE a gauge\na 1\n", require_help=True)
    with pytest.raises(PromParseError, match="no TYPE"):
        parse("# HELP a x\n", require_help=True)
    parse("# HELP a x\n# TYPE a gauge\na 1\n", require_help=True)


def test_parse_float():
    for tok, v in (("1", 1.0), ("-1.5", -1.5), ("+2", 2.0), ("1e3", 1000.0), ("1.E-2", 0.01),
                   (".5", 0.5), ("0", 0.0), ("+Inf", math.inf), ("-Inf", -math.inf)):
        assert parse_float(tok) == v, tok
    assert math.isnan(parse_float("NaN"))
    for tok in ("", "nan", "Inf", "inf", "+inf", "Infinity", "1_000", "0x10", "0x1p3", "1e",
                "1,5", "--1", "1.2.3", "e5", ".", "+", "NaNs", "1 "):
        assert parse_float(tok) is None, tok


H = "# TYPE h histogram\n"
HOSTILE = [
    # framing
    ("no final newline", "# TYPE a gauge\na 1", "does not end with"),
    ("CRLF line endings", "# TYPE a gauge\r\na 1\r\n", "unknown type"),
    ("CR after a value", "# TYPE a gauge\na 1\r\n", "not a float"),
    ("not UTF-8", b"# TYPE a gauge\na{x=\"\xff\"} 1\n", "not UTF-8"),
    # metric names
    ("name starts with a digit", "# TYPE a gauge\n1a 1\n", "invalid metric name"),
    ("dash in a name", "# TYPE foo gauge\nfoo-bar 1\n", "invalid character"),
    ("dot in a name", "# TYPE foo gauge\nfoo.bar 1\n", "invalid character"),
    ("bad TYPE name", "# TYPE 9lives gauge\n", "invalid metric name"),
    ("bad HELP name", "# HELP a-b help\n", "invalid metric name"),
    ("TYPE without a name", "# TYPE\n", "without a metric name"),
    ("non-ASCII name", "# TYPE a gauge\n\u00e9 1\n", "invalid metric name"),
    # label names
    ("label name starts with a digit", '# TYPE a gauge\na{1x="v"} 1\n', "invalid label name"),
    ("dash in a label name", '# TYPE a gauge\na{x-y="v"} 1\n', "expected '='"),
    ("colon in a label name", '# TYPE a gauge\na{x:y="v"} 1\n', "expected '='"),
    ("reserved label __name__", '# TYPE a gauge\na{__name__="a"} 1\n', "reserved"),
    ("reserved label __x", '# TYPE a gauge\na{__x="v"} 1\n', "reserved"),
    ("duplicate label name", '# TYPE a gauge\na{x="1",y="2",x="3"} 1\n', "given twice"),
    # label values and sets
    ("escape \\t", '# TYPE a gauge\na{x="a\\tb"} 1\n', "invalid escape"),
    ("escape \\x41", '# TYPE a gauge\na{x="\\x41"} 1\n', "invalid escape"),
    ("escape \\u00e9", '# TYPE a gauge\na{x="\\u00e9"} 1\n', "invalid escape"),
    ("escape \\'", "# TYPE a gauge\na{x=\"\\'\"} 1\n", "invalid escape"),
    ("lone backslash at the end", '# TYPE a gauge\na{x="abc\\', "unterminated|does not end"),
    ("escaped closing quote", '# TYPE a gauge\na{x="abc\\"} 1\n', "unterminated"),
    ("unterminated value", '# TYPE a gauge\na{x="abc} 1\n', "unterminated"),
    ("unterminated label set", '# TYPE a gauge\na{x="abc" 1\n', "expected ',' or '}'"),
    ("label set cut at the end", '# TYPE a gauge\na{x="abc",\n', "unterminated label set"),
    ("unquoted value", "# TYPE a gauge\na{x=abc} 1\n", "to open the value"),
    ("single-quoted value", "# TYPE a gauge\na{x='abc'} 1\n", "to open the value"),
    ("missing =", '# TYPE a gauge\na{x "abc"} 1\n', "expected '='"),
    ("lone comma", "# TYPE a gauge\na{,} 1\n", "invalid label name"),
    ("double comma", '# TYPE a gauge\na{x="1",,y="2"} 1\n', "invalid label name"),
    ("HELP escape \\t", "# HELP a bad \\t escape\n", "invalid escape"),
    ("HELP escape \\\"", '# HELP a bad \\" escape\n', "invalid escape"),
    ("HELP lone backslash", "# HELP a bad \\\n", "lone backslash"),
    # duplicates
    ("duplicate series", '# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n', "duplicate series"),
    ("duplicate series, labels reordered",
     '# TYPE a gauge\na{x="1",y="2"} 1\na{y="2",x="1"} 2\n', "duplicate series"),
    ("duplicate series without labels", "# TYPE a gauge\na 1\na{} 2\n", "duplicate series"),
    # families
    ("sample without TYPE", "a 1\n", "no # TYPE"),
    ("sample with HELP only", "# HELP a help\na 1\n", "no # TYPE"),
    ("sample of another family", "# TYPE a gauge\nb 1\n", "no # TYPE"),
    ("families not contiguous", "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x=\"2\"} 2\n",
     "contiguous"),
    ("TYPE after samples", "# HELP a h\na 1\n# TYPE a gauge\n", "no # TYPE"),
    ("TYPE after samples of a typed family", "# TYPE a gauge\na 1\n# TYPE a gauge\n",
     "after samples"),
    ("HELP after samples", "# TYPE a gauge\na 1\n# HELP a late\n", "after samples"),
    ("family reopened by TYPE", "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\n# TYPE a gauge\n",
     "contiguous"),
    ("family reopened by HELP", "# TYPE a gauge\n# TYPE b gauge\n# HELP a x\n", "contiguous"),
    ("second TYPE", "# TYPE a gauge\n# TYPE a counter\n", "second TYPE"),
    ("second HELP", "# HELP a x\n# HELP a y\n", "second HELP"),
    ("unknown type", "# TYPE a info\n", "unknown type"),
    ("type in capitals", "# TYPE a Counter\n", "unknown type"),
    ("TYPE without a type", "# TYPE a\n", "without a type"),
    ("garbage after the type", "# TYPE a gauge extra\n", "trailing garbage"),
    ("#TYPE without a blank", "#TYPE a gauge\na 1\n", "needs a blank"),
    ("name clash with a histogram", H + "# TYPE h_count gauge\n", "sample name of family h"),
    ("histogram over an existing family", "# TYPE h_sum gauge\n" + H, "a name of family h_sum"),
    # values
    ("value with a comma", "# TYPE a gauge\na 1,5\n", "not a float"),
    ("hex value", "# TYPE a gauge\na 0x10\n", "not a float"),
    ("lowercase nan", "# TYPE a gauge\na nan\n", "not a float"),
    ("Inf without a sign", "# TYPE a gauge\na Inf\n", "not a float"),
    ("word value", "# TYPE a gauge\na many\n", "not a float"),
    ("no value", "# TYPE a gauge\na\n", "no value"),
    ("no value after labels", '# TYPE a gauge\na{x="1"}\n', "no value"),
    ("quoted value", '# TYPE a gauge\na "1"\n', "not a float"),
    ("float timestamp", "# TYPE a gauge\na 1 1.5\n", "trailing garbage"),
    ("two timestamps", "# TYPE a gauge\na 1 2 3\n", "trailing garbage"),
    ("comment after a value", "# TYPE a gauge\na 1 # no\n", "trailing garbage"),
    ("garbage after a value", "# TYPE a gauge\na 1 x\n", "trailing garbage"),
    ("negative counter", "# TYPE a_total counter\na_total -1\n", "negative"),
    ("NaN counter", "# TYPE a_total counter\na_total NaN\n", "negative or NaN"),
    # histograms
    ("histogram sample without suffix", H + "h 1\n", "not a sample name of histogram"),
    ("bucket without le", H + 'h_bucket{x="1"} 1\nh_sum 1\nh_count 1\n', "without an le"),
    ("le not a float", H + 'h_bucket{le="abc"} 1\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
     "not a float"),
    ("le NaN", H + 'h_bucket{le="NaN"} 1\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
     "not a float"),
    ("le descending", H + 'h_bucket{le="1"} 1\nh_bucket{le="0.5"} 1\nh_bucket{le="+Inf"} 1\n'
     'h_sum 1\nh_count 1\n', "ascending"),
    ("le repeated as another spelling", H + 'h_bucket{le="1"} 1\nh_bucket{le="1.0"} 1\n'
     'h_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', "ascending"),
    ("+Inf not last", H + 'h_bucket{le="+Inf"} 2\nh_bucket{le="1"} 2\nh_sum 1\nh_count 2\n',
     "ascending"),
    ("counts not cumulative", H + 'h_bucket{le="1"} 5\nh_bucket{le="2"} 3\n'
     'h_bucket{le="+Inf"} 5\nh_sum 1\nh_count 5\n', "cumulative"),
    ("no +Inf bucket", H + 'h_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', "no le=\"\\+Inf\""),
    ("+Inf differs from _count", H + 'h_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\n'
     'h_count 3\n', "differs from the \\+Inf bucket"),
    ("no _count", H + 'h_bucket{le="+Inf"} 2\nh_sum 1\n', "no h_count"),
    ("no _sum", H + 'h_bucket{le="+Inf"} 2\nh_count 2\n', "no h_sum"),
    ("_count of another label set", H + 'h_bucket{a="1",le="+Inf"} 2\nh_sum{a="1"} 1\n'
     'h_count{a="2"} 2\n', "no h_count"),
    ("_sum without buckets", H + "h_sum 1\n", "without buckets"),
    ("_count without buckets", H + 'h_bucket{a="1",le="+Inf"} 0\nh_sum{a="1"} 0\n'
     'h_count{a="1"} 0\nh_count{a="2"} 0\n', "without buckets"),
    ("le on _sum", H + 'h_bucket{le="+Inf"} 1\nh_sum{le="+Inf"} 1\nh_count 1\n', "le label on"),
    ("fractional bucket count", H + 'h_bucket{le="+Inf"} 1.5\nh_sum 1\nh_count 1.5\n',
     "non-negative integer"),
    ("negative bucket count", H + 'h_bucket{le="1"} -1\nh_bucket{le="+Inf"} 0\nh_sum 0\n'
     'h_count 0\n', "non-negative integer"),
    ("NaN _count", H + 'h_bucket{le="+Inf"} 0\nh_sum 0\nh_count NaN\n', "non-negative integer"),
    ("histogram checked before the next family", H + 'h_bucket{le="1"} 1\nh_sum 1\nh_count 1\n'
     "# TYPE z gauge\nz 1\n", "no le="),
    # summaries
    ("quantile out of range", '# TYPE s summary\ns{quantile="1.5"} 1\ns_sum 1\ns_count 1\n',
     "quantile"),
    ("summary without quantile", "# TYPE s summary\ns 1\ns_sum 1\ns_count 1\n", "quantile"),
    ("summary without _count", '# TYPE s summary\ns{quantile="0.5"} 1\ns_sum 1\n',
     "_sum and _count"),
]


@pytest.mark.parametrize("text,message", [(t, m) for _, t, m in HOSTILE],
                         ids=[n for n, _, _ in HOSTILE])
def test_hostile_input_is_refused(text, message):
    with pytest.raises(PromParseError, match=message):
        parse(text)


def test_errors_name_the_line():
    with pytest.raises(PromParseError) as e:
        parse("# TYPE a gauge\na 1\na{x=\"\\q\"} 2\n")
    assert e.value.lineno == 3 and "line 3:" in str(e.value)


def test_each_hostile_input_differs_from_a_good_one_in_its_fault():
    """The hostile inputs are refused for their fault, not for something
    incidental: the repaired histogram passes."""
    parse(H + 'h_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 2\n')
    parse('# TYPE a gauge\na{x="a\\\\tb"} 1\n')  # an escaped backslash before a t is fine
    parse("# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\n")


PROMTOOL = os.environ.get("PROMTOOL") or shutil.which("promtool")


@pytest.mark.skipif(not PROMTOOL, reason="promtool (Debian package prometheus) not installed")
def test_promtool_accepts_the_good_exposition():
    """Cross-check: the reference linter reads GOOD too (lint findings such as
    a missing HELP are not parse errors)."""
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=GOOD, capture_output=True,
                       text=True, timeout=60)
    assert "error while linting" not in p.stderr and "text format parsing error" not in p.stderr, \
        p.stderr
