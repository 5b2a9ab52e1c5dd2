"""What the SDK suites share: the mock's request recorder and the gateway's file destination.

Imported by the test files beside it (pytest puts this folder on sys.path).
"""

import json
import os
import time
import urllib.request

MOCK_URL = os.environ["MOCK_URL"]
TRACES = os.environ["SDK_TRACES"]


def recorded():
    """Every request the mock got, in order, with credentials redacted."""
    with urllib.request.urlopen(MOCK_URL + "/__mock/requests") as r:
        return json.load(r)


def last_sent(text):
    """The last request the mock got holding `text` as a whole JSON string (so `x` is not `x2`)."""
    return [r for r in recorded() if json.dumps(text) in json.dumps(r["body"])][-1]


def spans_where(keep, at_least=1, timeout=15.0, traces=TRACES):
    """The spans on the file destination that `keep` accepts, polled until `at_least` have arrived."""
    deadline = time.time() + timeout
    found = []
    while time.time() < deadline:
        found = []
        if os.path.exists(traces):
            with open(traces) as f:
                for line in f:
                    for rs in json.loads(line).get("resourceSpans", []):
                        for ss in rs.get("scopeSpans", []):
                            found += [s for s in ss.get("spans", []) if keep(s)]
        if len(found) >= at_least:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{len(found)} of {at_least} spans")


def spans_for(trace_id, at_least=1, timeout=15.0, traces=TRACES):
    """The spans of one trace, polled until `at_least` have arrived."""
    return spans_where(lambda s: s.get("traceId") == trace_id, at_least, timeout, traces)


def attrs(span):
    """A span's attributes as a plain dict (OTLP JSON writes 64-bit integers as strings)."""
    out = {}
    for kv in span.get("attributes", []):
        v = kv["value"]
        out[kv["key"]] = next(iter(v.values())) if v else None
        if "intValue" in v:
            out[kv["key"]] = int(v["intValue"])
        if "arrayValue" in v:
            out[kv["key"]] = [next(iter(x.values())) for x in v["arrayValue"].get("values", [])]
    return out


def named(spans, name):
    matching = [s for s in spans if s["name"] == name]
    assert len(matching) == 1, f"{name!r} in {[s['name'] for s in spans]}"
    return matching[0]
