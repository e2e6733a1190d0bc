"""A strict parser of the Prometheus text exposition format, version 0.0.4,
written from the format's rules (no third-party package), for the tests of
the node's `GET /metrics`.

    exp = parse(text)                      # raises PromParseError on any fault
    exp.families["portico_http_requests_total"].type       # "counter"
    exp.families["portico_http_requests_total"].help       # the decoded HELP text
    exp.families["portico_http_requests_total"].samples    # [Sample(name, labels, value)]
    exp.value("portico_http_requests_total", api="shop", route="ok", method="GET", code="200")
    exp.total("portico_upstream_requests_total", {"class": "none"}, api="dead")

What is refused (each with the line number and the line):

- lines not ending with "\\n" (the last one included), bytes that are not
  UTF-8, anything after the value and the optional timestamp;
- metric names outside [a-zA-Z_:][a-zA-Z0-9_:]*, label names outside
  [a-zA-Z_][a-zA-Z0-9_]* or starting with "__" (reserved), a label name
  twice in one sample;
- escapes other than \\\\, \\" and \\n in label values (\\\\ and \\n in HELP),
  unterminated label values or label sets;
- values that are not floats (decimal with an optional exponent, or NaN,
  +Inf, -Inf exactly); timestamps that are not integers;
- the same series (name and label set) twice;
- a sample without a "# TYPE" line of its family before it; a sample of a
  family after another family started (families are contiguous); a HELP or
  TYPE line after samples of its family or repeated; TYPE names that clash
  with another family's sample names; unknown types;
- counters: negative or NaN values; a counter family whose name does not end
  in _total is a warning (Exposition.warnings), an error for the names in
  `counter_names` (by default the counters of the Portico contract);
- histograms: every sample is name_bucket (with an `le` label that is a
  float), name_sum or name_count (without `le`); per label set the buckets
  appear in ascending `le` order, their counts are non-negative integers that
  never decrease, the last is le="+Inf" and equals name_count, and name_sum
  and name_count are present (and no _sum/_count without buckets);
- summaries: `quantile` labels are floats in [0, 1], _sum and _count present.

With require_help=True every family must also have both a HELP and a TYPE
line.
"""
import math
import re

__all__ = ["PromParseError", "Sample", "Family", "Exposition", "parse", "parse_float",
           "CONTRACT_COUNTERS", "CONTRACT_TYPES", "TYPES"]

TYPES = ("counter", "gauge", "histogram", "summary", "untyped")

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_TIMESTAMP = re.compile(r"-?[0-9]+\Z")
_BLANKS = " \t"

# The families of the Portico contract (/tmp/obs/contract.md, "Prometheus";
# docs/observability.md) and their types.
CONTRACT_TYPES = {
    "portico_info": "gauge",
    "portico_start_time_seconds": "gauge",
    "portico_http_requests_total": "counter",
    "portico_http_request_duration_seconds": "histogram",
    "portico_http_request_size_bytes_total": "counter",
    "portico_http_response_size_bytes_total": "counter",
    "portico_consumer_requests_total": "counter",
    "portico_upstream_requests_total": "counter",
    "portico_upstream_retries_total": "counter",
    "portico_upstream_response_seconds": "histogram",
    "portico_upstream_connect_seconds_total": "counter",
    "portico_upstream_connects_total": "counter",
    "portico_process_executions_total": "counter",
    "portico_process_duration_seconds": "histogram",
    "portico_process_request_size_bytes_total": "counter",
    "portico_process_response_size_bytes_total": "counter",
    "portico_process_pool_threads": "gauge",
    "portico_process_pool_running": "gauge",
    "portico_process_pool_queued": "gauge",
    "portico_process_pool_max_queued": "gauge",
    "portico_process_queue_wait_seconds": "histogram",
    "portico_policy_decisions_total": "counter",
    "portico_connections_open": "gauge",
    "portico_connections_accepted_total": "counter",
    "portico_connections_closed_total": "counter",
    "portico_tls_handshakes_total": "counter",
    "portico_network_received_bytes_total": "counter",
    "portico_network_sent_bytes_total": "counter",
    "portico_deployments_total": "counter",
    "portico_deployment_duration_seconds": "histogram",
    "process_cpu_seconds_total": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_open_fds": "gauge",
    "process_start_time_seconds": "gauge",
}
CONTRACT_COUNTERS = frozenset(n for n, t in CONTRACT_TYPES.items() if t == "counter")


class PromParseError(ValueError):
    def __init__(self, message, lineno=None, line=None):
        self.message = message
        self.lineno = lineno
        self.line = line
        where = "line %d: " % lineno if lineno is not None else ""
        text = where + message
        if line is not None:
            text += ": %r" % (line[:200],)
        ValueError.__init__(self, text)


class Sample:
    __slots__ = ("name", "labels", "value", "timestamp", "lineno")

    def __init__(self, name, labels, value, timestamp=None, lineno=None):
        self.name = name
        self.labels = labels          # {label name: decoded value}
        self.value = value            # float
        self.timestamp = timestamp    # int (ms) or None
        self.lineno = lineno

    def key(self):
        return (self.name, tuple(sorted(self.labels.items())))

    def __repr__(self):
        return "Sample(%s%s %r)" % (self.name, format_labels(self.labels), self.value)


class Family:
    __slots__ = ("name", "type", "help", "samples", "lineno")

    def __init__(self, name, lineno=None):
        self.name = name
        self.type = None      # one of TYPES once its TYPE line is read
        self.help = None      # decoded HELP text, or None
        self.samples = []     # [Sample] in exposition order
        self.lineno = lineno

    def sample_names(self):
        return _sample_names(self.name, self.type)

    def __repr__(self):
        return "Family(%s %s, %d samples)" % (self.name, self.type, len(self.samples))


class Exposition:
    """families: {name: Family} in exposition order; warnings: [str]."""

    def __init__(self):
        self.families = {}
        self.warnings = []
        self._by_sample = {}    # sample name -> [Sample]

    # ------------------------------------------------------------ look-ups

    def samples(self, name, match=None, **kw):
        """The samples named `name` (a sample name: foo_bucket, not foo)
        whose labels include every label of match/kw (exact values)."""
        want = dict(match or {}, **kw)
        return [s for s in self._by_sample.get(name, ())
                if all(s.labels.get(k) == v for k, v in want.items())]

    def value(self, name, match=None, **kw):
        """The value of the one series with exactly these labels, or None."""
        want = dict(match or {}, **kw)
        for s in self._by_sample.get(name, ()):
            if s.labels == want:
                return s.value
        return None

    def total(self, name, match=None, **kw):
        """The sum of the samples named `name` whose labels include these
        (0 when there are none)."""
        return sum(s.value for s in self.samples(name, match, **kw))

    def sample_names(self):
        return set(self._by_sample)

    def metric_names(self):
        """Every name a PromQL query may use against this exposition: the
        sample names of each declared family (foo_bucket, foo_sum, foo_count
        for a histogram), with or without samples."""
        out = set()
        for f in self.families.values():
            out |= set(f.sample_names())
        return out

    def label_values(self, name, label):
        return {s.labels.get(label) for s in self._by_sample.get(name, ())}


# ---------------------------------------------------------------- helpers

def _sample_names(name, type_):
    if type_ == "histogram":
        return (name + "_bucket", name + "_sum", name + "_count")
    if type_ == "summary":
        return (name, name + "_sum", name + "_count")
    return (name,)


def format_labels(labels):
    if not labels:
        return ""
    return "{%s}" % ",".join('%s="%s"' % (k, v.replace("\\", "\\\\").replace('"', '\\"')
                                           .replace("\n", "\\n")) for k, v in labels.items())


def parse_float(token):
    """A float as the format writes it: decimal with an optional exponent,
    or exactly NaN, +Inf, -Inf. None when it is not one."""
    if token == "NaN":
        return math.nan
    if token == "+Inf":
        return math.inf
    if token == "-Inf":
        return -math.inf
    if _FLOAT.match(token):
        return float(token)
    return None


def _skip_blanks(line, i):
    while i < len(line) and line[i] in _BLANKS:
        i += 1
    return i


def _token(line, i):
    """The token at i (up to a blank or the end of the line) and the index after it."""
    j = i
    while j < len(line) and line[j] not in _BLANKS:
        j += 1
    return line[i:j], j


def _unescape_help(text, lineno, line):
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 >= len(text):
                raise PromParseError("HELP text ends with a lone backslash", lineno, line)
            n = text[i + 1]
            if n == "\\":
                out.append("\\")
            elif n == "n":
                out.append("\n")
            else:
                raise PromParseError("invalid escape \\%s in HELP text (only \\\\ and \\n)" % n,
                                     lineno, line)
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _read_label_value(line, i, lineno):
    """line[i] is just after the opening quote; returns (decoded value,
    index after the closing quote)."""
    out = []
    n = len(line)
    while i < n:
        c = line[i]
        if c == "\\":
            if i + 1 >= n:
                break
            e = line[i + 1]
            if e == "\\":
                out.append("\\")
            elif e == '"':
                out.append('"')
            elif e == "n":
                out.append("\n")
            else:
                raise PromParseError("invalid escape \\%s in a label value "
                                     "(only \\\\, \\\" and \\n)" % e, lineno, line)
            i += 2
        elif c == '"':
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise PromParseError("unterminated label value", lineno, line)


def _parse_sample_line(line, lineno):
    """One sample line -> Sample. The syntax only; family rules are the caller's."""
    i = _skip_blanks(line, 0)
    m = _METRIC_NAME.match(line, i)
    if not m:
        raise PromParseError("invalid metric name", lineno, line)
    name = m.group(0)
    i = m.end()
    labels = {}
    if i < len(line) and line[i] not in _BLANKS and line[i] != "{":
        raise PromParseError("invalid character %r in metric name %r" % (line[i], name),
                             lineno, line)
    i = _skip_blanks(line, i)
    if i < len(line) and line[i] == "{":
        i += 1
        while True:
            i = _skip_blanks(line, i)
            if i >= len(line):
                raise PromParseError("unterminated label set", lineno, line)
            if line[i] == "}":
                i += 1
                break
            lm = _LABEL_NAME.match(line, i)
            if not lm:
                raise PromParseError("invalid label name at column %d" % (i + 1), lineno, line)
            lname = lm.group(0)
            i = lm.end()
            if lname.startswith("__"):
                raise PromParseError("label name %r is reserved (starts with __)" % lname,
                                     lineno, line)
            if lname in labels:
                raise PromParseError("label %r given twice" % lname, lineno, line)
            i = _skip_blanks(line, i)
            if i >= len(line) or line[i] != "=":
                raise PromParseError("expected '=' after label name %r" % lname, lineno, line)
            i = _skip_blanks(line, i + 1)
            if i >= len(line) or line[i] != '"':
                raise PromParseError("expected '\"' to open the value of label %r" % lname,
                                     lineno, line)
            labels[lname], i = _read_label_value(line, i + 1, lineno)
            i = _skip_blanks(line, i)
            if i >= len(line):
                raise PromParseError("unterminated label set", lineno, line)
            if line[i] == ",":
                i += 1
                continue
            if line[i] == "}":
                i += 1
                break
            raise PromParseError("expected ',' or '}' after the value of label %r" % lname,
                                 lineno, line)
        i = _skip_blanks(line, i)
    if i >= len(line):
        raise PromParseError("no value", lineno, line)
    tok, i = _token(line, i)
    value = parse_float(tok)
    if value is None:
        raise PromParseError("value %r is not a float" % tok, lineno, line)
    i = _skip_blanks(line, i)
    timestamp = None
    if i < len(line):
        tok, i = _token(line, i)
        if not _TIMESTAMP.match(tok):
            raise PromParseError("trailing garbage %r after the value" % tok, lineno, line)
        timestamp = int(tok)
        i = _skip_blanks(line, i)
        if i < len(line):
            raise PromParseError("trailing garbage %r after the timestamp" % line[i:], lineno,
                                 line)
    return Sample(name, labels, value, timestamp, lineno)


# ---------------------------------------------------------------- family checks

def _check_histogram(fam):
    groups = {}       # label set without le -> [(le, value, sample)]
    sums, counts = {}, {}
    for s in fam.samples:
        if s.name == fam.name + "_bucket":
            le_text = s.labels.get("le")
            if le_text is None:
                raise PromParseError("histogram bucket without an le label", s.lineno, repr(s))
            le = parse_float(le_text)
            if le is None or math.isnan(le):
                raise PromParseError("le=%r is not a float" % le_text, s.lineno, repr(s))
            rest = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            groups.setdefault(rest, []).append((le, s))
        elif s.name == fam.name + "_sum":
            sums[tuple(sorted(s.labels.items()))] = s
        else:
            counts[tuple(sorted(s.labels.items()))] = s
    for rest, buckets in groups.items():
        where = "histogram %s%s" % (fam.name, format_labels(dict(rest)))
        prev_le, prev_v = None, None
        for le, s in buckets:
            if prev_le is not None and not le > prev_le:
                raise PromParseError("%s: le=%r after le=%r: buckets must be in ascending order"
                                     % (where, s.labels["le"], prev_le), s.lineno, repr(s))
            if prev_v is not None and s.value < prev_v:
                raise PromParseError("%s: bucket le=%r is %r, below the previous %r: buckets "
                                     "are cumulative" % (where, s.labels["le"], s.value, prev_v),
                                     s.lineno, repr(s))
            prev_le, prev_v = le, s.value
        last_le, last = buckets[-1]
        if last_le != math.inf:
            raise PromParseError("%s: no le=\"+Inf\" bucket (the last is le=%r)"
                                 % (where, last.labels["le"]), last.lineno, repr(last))
        if rest not in counts:
            raise PromParseError("%s: no %s_count" % (where, fam.name), last.lineno)
        if rest not in sums:
            raise PromParseError("%s: no %s_sum" % (where, fam.name), last.lineno)
        if counts[rest].value != last.value:
            raise PromParseError("%s: _count %r differs from the +Inf bucket %r"
                                 % (where, counts[rest].value, last.value), counts[rest].lineno)
    for d, what in ((sums, "_sum"), (counts, "_count")):
        for rest, s in d.items():
            if rest not in groups:
                raise PromParseError("histogram %s: %s without buckets" % (fam.name, what),
                                     s.lineno, repr(s))


def _check_summary(fam):
    groups, sums, counts = set(), {}, {}
    for s in fam.samples:
        if s.name == fam.name:
            q = s.labels.get("quantile")
            qv = parse_float(q) if q is not None else None
            if qv is None or not 0 <= qv <= 1:
                raise PromParseError("summary quantile %r is not a float in [0, 1]" % q,
                                     s.lineno, repr(s))
            groups.add(tuple(sorted((k, v) for k, v in s.labels.items() if k != "quantile")))
        elif s.name == fam.name + "_sum":
            sums[tuple(sorted(s.labels.items()))] = s
        else:
            counts[tuple(sorted(s.labels.items()))] = s
    for rest in groups | set(sums) | set(counts):
        if rest not in sums or rest not in counts:
            raise PromParseError("summary %s%s: _sum and _count are both required"
                                 % (fam.name, format_labels(dict(rest))), fam.lineno)


def _check_sample_in_family(fam, s, line):
    if fam.type == "histogram":
        if s.name.endswith("_bucket"):
            pass  # le checked with the family
        elif "le" in s.labels:
            raise PromParseError("le label on %s (only _bucket samples have it)" % s.name,
                                 s.lineno, line)
        if s.name.endswith("_bucket") or s.name.endswith("_count"):
            if math.isnan(s.value) or s.value < 0 or math.isinf(s.value) or \
                    not float(s.value).is_integer():
                raise PromParseError("histogram count %r is not a non-negative integer"
                                     % s.value, s.lineno, line)
    elif fam.type == "summary":
        if s.name != fam.name and "quantile" in s.labels:
            raise PromParseError("quantile label on %s" % s.name, s.lineno, line)
        if s.name == fam.name + "_count" and (math.isnan(s.value) or s.value < 0):
            raise PromParseError("summary count %r is negative" % s.value, s.lineno, line)
    elif fam.type == "counter":
        if math.isnan(s.value) or s.value < 0:
            raise PromParseError("counter value %r is negative or NaN" % s.value, s.lineno, line)


def _finish_family(fam, exp, require_help):
    if fam is None:
        return
    if require_help and (fam.help is None or fam.type is None):
        raise PromParseError("family %s has no %s line" % (fam.name, "HELP" if fam.help is None
                                                          else "TYPE"), fam.lineno)
    if fam.type == "histogram":
        _check_histogram(fam)
    elif fam.type == "summary":
        _check_summary(fam)


# ---------------------------------------------------------------- the parser

def parse(text, counter_names=CONTRACT_COUNTERS, require_help=False):
    """Parses an exposition (str or bytes) and returns an Exposition, or
    raises PromParseError."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise PromParseError("not UTF-8: %s" % e)
    exp = Exposition()
    if text == "":
        return exp
    if not text.endswith("\n"):
        raise PromParseError("the last line does not end with \\n", text.count("\n") + 1,
                             text.rsplit("\n", 1)[-1])
    counter_names = frozenset(counter_names or ())
    owner = {}          # sample name -> Family that may produce it
    seen = set()        # series keys
    current = None      # the family whose samples may come now
    lines = text.split("\n")[:-1]
    for lineno, line in enumerate(lines, 1):
        stripped = line.lstrip(_BLANKS)
        if stripped == "":
            continue  # empty lines (and blank ones) are ignored
        if stripped.startswith("#"):
            if stripped[1:5] in ("HELP", "TYPE") and stripped[5:6] in ("", " ", "\t"):
                raise PromParseError("'#%s' needs a blank after '#'" % stripped[1:5], lineno, line)
            i = _skip_blanks(stripped, 1)
            tok, j = _token(stripped, i)
            if tok not in ("HELP", "TYPE"):
                continue  # a plain comment
            kind = tok
            i = _skip_blanks(stripped, j)
            name, j = _token(stripped, i)
            if not name:
                raise PromParseError("# %s without a metric name" % kind, lineno, line)
            if not _METRIC_NAME.fullmatch(name):
                raise PromParseError("invalid metric name %r" % name, lineno, line)
            fam = exp.families.get(name)
            if fam is not None:
                if fam is not current:
                    raise PromParseError("# %s for %s after another family started (families "
                                         "must be contiguous)" % (kind, name), lineno, line)
                if fam.samples:
                    raise PromParseError("# %s line after samples of %s" % (kind, name),
                                         lineno, line)
            else:
                if name in owner:
                    raise PromParseError("# %s %s: the name is a sample name of family %s"
                                         % (kind, name, owner[name].name), lineno, line)
                _finish_family(current, exp, require_help)
                fam = Family(name, lineno)
                exp.families[name] = fam
                owner.setdefault(name, fam)
                current = fam
            if kind == "HELP":
                if fam.help is not None:
                    raise PromParseError("second HELP line for %s" % name, lineno, line)
                # the docstring: the rest of the line after one run of blanks
                k = j
                if k < len(stripped):
                    k = _skip_blanks(stripped, k)
                fam.help = _unescape_help(stripped[k:], lineno, line)
            else:
                if fam.type is not None:
                    raise PromParseError("second TYPE line for %s" % name, lineno, line)
                k = _skip_blanks(stripped, j)
                type_, k = _token(stripped, k)
                if not type_:
                    raise PromParseError("# TYPE %s without a type" % name, lineno, line)
                if type_ not in TYPES:
                    raise PromParseError("unknown type %r" % type_, lineno, line)
                k = _skip_blanks(stripped, k)
                if k < len(stripped):
                    raise PromParseError("trailing garbage after the type", lineno, line)
                for sn in _sample_names(name, type_):
                    other = owner.get(sn)
                    if other is not None and other is not fam:
                        raise PromParseError("%s %s would produce %s, a name of family %s"
                                             % (type_, name, sn, other.name), lineno, line)
                    if sn != name and sn in exp.families:
                        raise PromParseError("%s %s would produce %s, a family of its own"
                                             % (type_, name, sn), lineno, line)
                fam.type = type_
                for sn in _sample_names(name, type_):
                    owner[sn] = fam
                if type_ == "counter" and not name.endswith("_total"):
                    if name in counter_names or name + "_total" in counter_names:
                        raise PromParseError("counter %s must be named %s_total"
                                             % (name, name), lineno, line)
                    exp.warnings.append("line %d: counter %s does not end in _total"
                                        % (lineno, name))
            continue
        # a sample
        s = _parse_sample_line(line, lineno)
        fam = current
        if fam is None or fam.type is None or s.name not in fam.sample_names():
            other = owner.get(s.name)
            if other is not None and other is not current and other.type is not None:
                raise PromParseError("sample of family %s after family %s started (families "
                                     "must be contiguous)" % (other.name, current.name
                                                              if current else "?"),
                                     lineno, line)
            if fam is not None and fam.type is not None and s.name.startswith(fam.name):
                raise PromParseError("%s is not a sample name of %s %s (expected one of %s)"
                                     % (s.name, fam.type, fam.name,
                                        ", ".join(fam.sample_names())), lineno, line)
            raise PromParseError("sample %s has no # TYPE line of its family before it"
                                 % s.name, lineno, line)
        key = s.key()
        if key in seen:
            raise PromParseError("duplicate series %s%s" % (s.name, format_labels(s.labels)),
                                 lineno, line)
        seen.add(key)
        _check_sample_in_family(fam, s, line)
        fam.samples.append(s)
        exp._by_sample.setdefault(s.name, []).append(s)
    _finish_family(current, exp, require_help)
    return exp
