"""The official OpenAI Python SDK, unmodified, pointed at Gatecast by base URL only.

Each scenario also runs straight against the mock provider where the answers must match.
"""

import json
import os
import time
import urllib.request

import openai
import pytest
from openai import OpenAI

GATECAST_URL = os.environ["GATECAST_URL"]
MOCK_URL = os.environ["MOCK_URL"]
TRACES = os.environ["SDK_TRACES"]

gateway = OpenAI(base_url=GATECAST_URL, api_key="client-key", max_retries=0)
direct = OpenAI(base_url=MOCK_URL + "/v1", api_key="sk-sdk-provider", max_retries=0)

TOOLS = [{
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Looks a thing up.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
    },
}]


def msgs(text):
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


def recorded():
    with urllib.request.urlopen(MOCK_URL + "/__mock/requests") as r:
        return json.load(r)


def spans_for(trace_id, at_least=1, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = []
        if os.path.exists(TRACES):
            with open(TRACES) as f:
                for line in f:
                    for rs in json.loads(line).get("resourceSpans", []):
                        for ss in rs.get("scopeSpans", []):
                            found += [s for s in ss.get("spans", []) if s.get("traceId") == trace_id]
        if len(found) >= at_least:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no spans for {trace_id}")


def attrs(span):
    out = {}
    for kv in span.get("attributes", []):
        v = kv["value"]
        out[kv["key"]] = next(iter(v.values())) if v else None
    return out


def test_non_streaming_matches_direct():
    a = gateway.chat.completions.create(model="up/gpt-4o-mini", messages=msgs("hello sdk"))
    b = direct.chat.completions.create(model="gpt-4o-mini", messages=msgs("hello sdk"))
    assert a.model_dump() == b.model_dump()
    assert "hello sdk" in a.choices[0].message.content
    assert a.usage.total_tokens > 0


def test_streaming_matches_direct_and_hides_usage():
    a = list(gateway.chat.completions.create(model="up/gpt-4o-mini", messages=msgs("stream sdk"), stream=True))
    b = list(direct.chat.completions.create(model="gpt-4o-mini", messages=msgs("stream sdk"), stream=True))
    # The mock derives ids from the request body, which differs by the injected stream_options.
    assert [c.model_dump(exclude={"id"}) for c in a] == [c.model_dump(exclude={"id"}) for c in b]
    assert all(c.usage is None for c in a)
    text = "".join(c.choices[0].delta.content or "" for c in a if c.choices)
    assert "stream sdk" in text


def test_streaming_usage_chunk_when_asked():
    chunks = list(gateway.chat.completions.create(
        model="up/gpt-4o-mini", messages=msgs("usage please"), stream=True,
        stream_options={"include_usage": True}))
    assert chunks[-1].choices == []
    assert chunks[-1].usage.total_tokens > 0


def test_tool_calls_plain_and_streamed():
    plain = gateway.chat.completions.create(model="up/gpt-4o-mini", messages=msgs("find x"), tools=TOOLS)
    call = plain.choices[0].message.tool_calls[0]
    assert call.function.name == "lookup"
    assert plain.choices[0].finish_reason == "tool_calls"
    args = ""
    for c in gateway.chat.completions.create(model="up/gpt-4o-mini", messages=msgs("find x"), tools=TOOLS, stream=True):
        if c.choices and c.choices[0].delta.tool_calls:
            args += c.choices[0].delta.tool_calls[0].function.arguments or ""
    assert json.loads(args) == json.loads(call.function.arguments)


def test_rate_limit_passes_through():
    with pytest.raises(openai.RateLimitError) as err:
        gateway.chat.completions.create(model="up/gpt-4o-mini", messages=msgs("#mock:error=429,retry_after=3 x"))
    assert err.value.response.headers["retry-after"] == "3"


def test_server_error_passes_through():
    with pytest.raises(openai.InternalServerError) as err:
        gateway.chat.completions.create(model="up/gpt-4o-mini", messages=msgs("#mock:error=500 x"))
    assert err.value.status_code == 500


def test_unknown_model_is_not_found():
    with pytest.raises(openai.NotFoundError) as err:
        gateway.chat.completions.create(model="no-such-model", messages=msgs("x"))
    assert err.value.code == "model_not_found"
    assert err.value.response.headers["x-gatecast-trace-id"]


def test_timeout_is_504_and_unreachable_is_502():
    with pytest.raises(openai.APIStatusError) as err:
        gateway.chat.completions.create(model="slow/x", messages=msgs("#mock:latency_ms=2000 x"))
    assert err.value.status_code == 504
    with pytest.raises(openai.APIStatusError) as err:
        gateway.chat.completions.create(model="dead/x", messages=msgs("x"))
    assert err.value.status_code == 502


def test_retry_then_success_and_fallback():
    r = gateway.chat.completions.create(model="retry/gpt-4o-mini", messages=msgs("#mock:error=502,fail_times=1 sdk retry"))
    assert r.choices[0].message.content
    r = gateway.chat.completions.create(model="fast", messages=msgs("sdk fallback"))
    assert r.model == "gpt-4o-mini"


def test_mid_stream_abort_raises():
    with pytest.raises(openai.APIError):
        for _ in gateway.chat.completions.create(model="up/gpt-4o-mini", messages=msgs("#mock:abort_after=2 x"), stream=True):
            pass


def test_trace_metadata_via_extra_body():
    resp = gateway.chat.completions.with_raw_response.create(
        model="up/gpt-4o-mini", messages=msgs("sdk trace"), user="u-17",
        extra_body={"trace": {"trace_id": "sdk-run-1", "trace_name": "support-agent", "span_name": "triage",
                              "generation_name": "classify", "customer": "acme"},
                    "session_id": "chat-9"})
    trace_id = resp.headers["x-gatecast-trace-id"]
    completion = resp.parse()
    assert completion.choices[0].message.content
    sent = [r for r in recorded() if "sdk trace" in json.dumps(r["body"])][-1]["body"]
    assert "trace" not in sent and "session_id" not in sent
    assert sent["user"] == "u-17"
    spans = spans_for(trace_id, 3)
    names = {s["name"] for s in spans}
    assert names == {"support-agent", "triage", "classify"}
    gen = attrs(next(s for s in spans if s["name"] == "classify"))
    assert gen["user.id"] == "u-17"
    assert gen["session.id"] == "chat-9"
    assert gen["trace.metadata.customer"] == "acme"


def test_virtual_key_is_the_api_key():
    keyed_url = os.environ["GATECAST_KEYED_URL"]
    key = os.environ["SDK_VIRTUAL_KEY"]
    assert key.startswith("gk_")
    keyed = OpenAI(base_url=keyed_url, api_key=key, max_retries=0)
    completion = keyed.chat.completions.create(model="up/gpt-4o-mini", messages=msgs("with a virtual key"))
    assert completion.choices[0].message.content
    assert [m.id for m in keyed.models.list()]
    for wrong in ["gk_not-a-real-key", "sk-provider-style"]:
        with pytest.raises(openai.AuthenticationError) as err:
            OpenAI(base_url=keyed_url, api_key=wrong, max_retries=0).chat.completions.create(
                model="up/gpt-4o-mini", messages=msgs("wrong key"))
        assert err.value.status_code == 401
        assert err.value.code == "invalid_api_key"
