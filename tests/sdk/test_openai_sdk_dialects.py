"""The official OpenAI Python SDK, unmodified, pointed at Gatecast, with providers that speak
their own wire: Anthropic Messages and Azure OpenAI (deployment and v1 forms), all on the mock.

The cases are those of test_openai_sdk.py. Where that file compares with a direct call to the
OpenAI mock, these compare with the same mock called directly in the provider's own dialect
(the Anthropic SDK for Messages, the Azure client for deployments) for the equivalent request.
"""

import json
import os
import time
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Callable, List

import anthropic
import openai
import pydantic
import pytest
from openai import AzureOpenAI, OpenAI

GATECAST_URL = os.environ["GATECAST_URL"]
MOCK_URL = os.environ["MOCK_URL"]
TRACES = os.environ["SDK_TRACES"]

gateway = OpenAI(base_url=GATECAST_URL, api_key="client-key", max_retries=0)
claude_direct = anthropic.Anthropic(base_url=MOCK_URL, api_key="sk-ant-direct", max_retries=0)
azure_direct = AzureOpenAI(azure_endpoint=MOCK_URL, api_version="2024-10-21",
                           api_key="azure-direct", max_retries=0)
azurev1_direct = OpenAI(base_url=MOCK_URL + "/openai/v1", api_key="azure-direct", max_retries=0)

TOOLS = [{
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Looks a thing up.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
    },
}]
ANTHROPIC_TOOL = {"name": "lookup", "description": "Looks a thing up.",
                  "input_schema": TOOLS[0]["function"]["parameters"]}


def msgs(text):
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


def claude_text(text):
    msg = claude_direct.messages.create(model="claude-mock-1", max_tokens=512, system="be brief",
                                        messages=[{"role": "user", "content": text}])
    return "".join(b.text for b in msg.content if b.type == "text")


def claude_stream_texts(text):
    with claude_direct.messages.stream(model="claude-mock-1", max_tokens=512, system="be brief",
                                       messages=[{"role": "user", "content": text}]) as stream:
        return list(stream.text_stream)


def openai_text(client, model):
    return lambda text: client.chat.completions.create(
        model=model, messages=msgs(text)).choices[0].message.content


def openai_stream_texts(client, model):
    def texts(text):
        chunks = client.chat.completions.create(model=model, messages=msgs(text), stream=True)
        return [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    return texts


@dataclass
class Upstream:
    """One provider in tests/sdk/gatecast.toml and how to ask the mock the same thing directly."""
    provider: str
    model: str
    provider_name: str
    path: str
    direct_text: Callable[[str], str]
    direct_stream_texts: Callable[[str], List[str]]
    # What the mock's dialect retries on once (`fail_times=1`) before it answers.
    retry_status: int

    def at(self, provider=None):
        return f"{provider or self.provider}/{self.model}"


UPSTREAMS = [
    Upstream("claude", "claude-mock-1", "anthropic", "/v1/messages",
             claude_text, claude_stream_texts, 529),
    Upstream("azure", "gpt-4o-mini", "azure.ai.openai", "/openai/deployments/dep-mini/chat/completions",
             openai_text(azure_direct, "dep-mini"), openai_stream_texts(azure_direct, "dep-mini"), 503),
    Upstream("azurev1", "my-deployment", "azure.ai.openai", "/openai/v1/chat/completions",
             openai_text(azurev1_direct, "my-deployment"),
             openai_stream_texts(azurev1_direct, "my-deployment"), 503),
]


@pytest.fixture(params=UPSTREAMS, ids=lambda u: u.provider)
def up(request):
    return request.param


def recorded():
    with urllib.request.urlopen(MOCK_URL + "/__mock/requests") as r:
        return json.load(r)


def last_sent(text):
    """The last request the mock got holding `text` as a whole string (so `x` is not `x2`)."""
    return [r for r in recorded() if json.dumps(text) in json.dumps(r["body"])][-1]


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
        if "intValue" in v:  # OTLP JSON writes 64-bit integers as strings
            out[kv["key"]] = int(v["intValue"])
    return out


def test_non_streaming_matches_direct(up):
    text = f"hello py {up.provider}"
    a = gateway.chat.completions.create(model=up.at(), messages=msgs(text))
    assert last_sent(text)["path"] == up.path, "read before the direct call is recorded"
    assert a.object == "chat.completion"
    assert a.choices[0].message.role == "assistant"
    assert a.choices[0].message.content == up.direct_text(text) == f"Mock reply to: {text}"
    assert a.choices[0].finish_reason == "stop"
    assert a.usage.prompt_tokens > 0 and a.usage.completion_tokens > 0
    assert a.usage.total_tokens == a.usage.prompt_tokens + a.usage.completion_tokens


def test_streaming_matches_direct_and_hides_usage(up):
    text = f"stream py {up.provider}"
    chunks = list(gateway.chat.completions.create(model=up.at(), messages=msgs(text), stream=True))
    assert last_sent(text)["path"] == up.path
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks), "no usage chunk (choices: []) unless asked"
    deltas = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    # Chunk for chunk what the provider streamed: translation neither buffers nor splits.
    assert deltas == up.direct_stream_texts(text)
    assert "".join(deltas) == f"Mock reply to: {text}"
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]
    assert len({c.id for c in chunks}) == 1


def test_streaming_usage_chunk_when_asked(up):
    chunks = list(gateway.chat.completions.create(
        model=up.at(), messages=msgs(f"usage py {up.provider}"), stream=True,
        stream_options={"include_usage": True}))
    with_usage = [c for c in chunks if c.usage is not None]
    assert with_usage == [chunks[-1]], "exactly one usage chunk, last"
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_tool_calls_plain_and_streamed_with_the_sdk_helper(up):
    text = f"find py {up.provider}"
    plain = gateway.chat.completions.create(model=up.at(), messages=msgs(text), tools=TOOLS)
    assert plain.choices[0].finish_reason == "tool_calls"
    [call] = plain.choices[0].message.tool_calls
    assert call.type == "function" and call.function.name == "lookup" and call.id
    assert json.loads(call.function.arguments) == {"query": text}

    done = []
    with gateway.chat.completions.stream(model=up.at(), messages=msgs(text), tools=TOOLS) as stream:
        for event in stream:
            if event.type == "tool_calls.function.arguments.done":
                done.append(event)
        final = stream.get_final_completion()
    # The SDK's own accumulator put the fragments back together into JSON.
    assert [(e.name, e.index) for e in done] == [("lookup", 0)]
    assert json.loads(done[0].arguments) == {"query": text}
    assert final.choices[0].finish_reason == "tool_calls"
    [streamed] = final.choices[0].message.tool_calls
    assert streamed.function.name == "lookup" and streamed.id
    assert json.loads(streamed.function.arguments) == json.loads(call.function.arguments)


def test_tool_result_round_trip(up):
    text = f"round trip py {up.provider}"
    first = gateway.chat.completions.create(model=up.at(), messages=msgs(text), tools=TOOLS)
    [call] = first.choices[0].message.tool_calls
    # The SDK's own message object goes back as it came, as OpenAI's docs do it.
    follow_up = msgs(text) + [
        first.choices[0].message,
        {"role": "tool", "tool_call_id": call.id, "content": "under the mat"},
    ]
    # tool_choice "none" asks for the text answer; the OpenAI mock otherwise calls an offered
    # tool again, as it does not read tool results.
    answer = gateway.chat.completions.create(model=up.at(), messages=follow_up, tools=TOOLS,
                                             tool_choice="none")
    assert answer.choices[0].finish_reason == "stop"
    assert not answer.choices[0].message.tool_calls
    sent = last_sent("under the mat")
    assert sent["path"] == up.path
    turns = sent["body"]["messages"]
    if up.provider_name == "anthropic":
        # Anthropic reads the tool result (in a user turn) and answers it.
        assert answer.choices[0].message.content == "Mock reply to: under the mat"
        assert [t["role"] for t in turns] == ["user", "assistant", "user"]
        assert turns[1]["content"][0]["type"] == "tool_use"
        assert turns[1]["content"][0]["id"] == call.id
        result = turns[2]["content"][0]
        assert result["type"] == "tool_result" and result["tool_use_id"] == call.id
        assert "under the mat" in json.dumps(result["content"])
    else:
        assert answer.choices[0].message.content == f"Mock reply to: {text}"
        assert [t["role"] for t in turns] == ["system", "user", "assistant", "tool"]
        assert turns[2]["tool_calls"][0]["id"] == call.id
        assert turns[3]["tool_call_id"] == call.id


def test_provider_errors_are_the_sdks_exceptions(up):
    with pytest.raises(openai.BadRequestError) as err:
        gateway.chat.completions.create(model=up.at(), messages=msgs("#mock:error=400 py bad"))
    assert err.value.status_code == 400 and err.value.type == "invalid_request_error"

    with pytest.raises(openai.RateLimitError) as err:
        gateway.chat.completions.create(model=up.at(), messages=msgs("#mock:error=429,retry_after=3 py"))
    assert err.value.status_code == 429
    assert err.value.response.headers["retry-after"] == "3"

    with pytest.raises(openai.InternalServerError) as err:
        gateway.chat.completions.create(model=up.at(), messages=msgs("#mock:error=500 py"))
    assert err.value.status_code == 500

    with pytest.raises(openai.InternalServerError) as err:
        gateway.chat.completions.create(model=up.at(), messages=msgs("#mock:error=529 py"))
    # Anthropic's 529 "overloaded" is OpenAI's 503; Azure has no 529 of its own, so it passes.
    assert err.value.status_code == (503 if up.provider_name == "anthropic" else 529)
    assert isinstance(err.value.body, dict) and err.value.body.get("message"), err.value.body

    # A streamed request that fails before its first event is the same error, not a stream.
    with pytest.raises(openai.RateLimitError) as err:
        gateway.chat.completions.create(model=up.at(), stream=True,
                                        messages=msgs("#mock:error=429,retry_after=2 py stream"))
    assert err.value.response.headers["retry-after"] == "2"
    with pytest.raises(openai.InternalServerError) as err:
        gateway.chat.completions.create(model=up.at(), stream=True, messages=msgs("#mock:error=529 py stream"))
    assert err.value.status_code == (503 if up.provider_name == "anthropic" else 529)


def test_anthropic_only_errors_are_openai_shaped():
    with pytest.raises(openai.BadRequestError) as err:
        gateway.chat.completions.create(model="claude/claude-mock-1", messages=msgs("py two"), n=2)
    assert err.value.param == "n"
    with pytest.raises(openai.InternalServerError) as err:
        gateway.chat.completions.create(model="claude/claude-mock-1",
                                        messages=msgs("#mock:error=529 py overloaded"))
    assert err.value.code == "overloaded"
    # A Messages stream that ends cleanly but before `message_stop` is not a whole answer.
    with pytest.raises(openai.APIError):
        for _ in gateway.chat.completions.create(model="claude/claude-mock-1", stream=True,
                                                 messages=msgs("#mock:truncate_after=4 py short")):
            pass


# `claude-retry` lists only Anthropic's own 529 in `retry_on`.
def test_retry_then_success(up):
    # The mock counts failures per prompt: a fresh one fails once whatever ran before.
    said = f"py retry {up.provider} {uuid.uuid4().hex}"
    text = f"#mock:error={up.retry_status},fail_times=1 {said}"
    r = gateway.chat.completions.create(model=up.at(f"{up.provider}-retry"), messages=msgs(text))
    assert r.choices[0].message.content == f"Mock reply to: {said}"
    assert len([x for x in recorded() if said in json.dumps(x["body"])]) == 2, "one failure, one retry"


def test_mid_stream_abort_and_error_event_raise(up):
    said = []
    with pytest.raises(openai.APIError):
        for c in gateway.chat.completions.create(model=up.at(), stream=True,
                                                 messages=msgs("#mock:abort_after=5 py cut off here")):
            said.append(c.choices[0].delta.content or "" if c.choices else "")
    # What came before the cut reached the client as it came.
    assert "".join(said) and "Mock reply to: py cut off here".startswith("".join(said)), said
    # The provider's own in-stream error (Anthropic's `error` event, OpenAI's error data).
    with pytest.raises(openai.APIError):
        for _ in gateway.chat.completions.create(model=up.at(),
                                                 messages=msgs("#mock:stream_error_after=3 py"),
                                                 stream=True):
            pass


def test_timeout_is_504(up):
    with pytest.raises(openai.InternalServerError) as err:
        gateway.chat.completions.create(model=up.at(f"{up.provider}-slow"),
                                        messages=msgs("#mock:latency_ms=2000 py"))
    assert err.value.status_code == 504
    assert err.value.code == "upstream_timeout"


def test_trace_on_the_file_destination(up):
    resp = gateway.chat.completions.with_raw_response.create(
        model=up.at(), messages=msgs(f"py trace {up.provider}"), user="u-22",
        extra_body={"trace": {"trace_name": "dialects", "generation_name": "answer"}})
    trace_id = resp.headers["x-gatecast-trace-id"]
    completion = resp.parse()
    spans = spans_for(trace_id, 2)
    gen = attrs(next(s for s in spans if s["name"] == "answer"))
    assert gen["gen_ai.provider.name"] == up.provider_name
    assert gen["gen_ai.request.model"] == up.model
    assert gen["gen_ai.usage.input_tokens"] == completion.usage.prompt_tokens
    assert gen["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens
    assert gen["user.id"] == "u-22"
    sent = last_sent(f"py trace {up.provider}")["body"]
    assert "trace" not in sent


def test_azure_content_filter_results_reach_the_sdk_streamed_or_not():
    whole = gateway.chat.completions.create(model="azure/gpt-4o-mini",
                                            messages=msgs("#mock:content_filter=1 py filtered"))
    assert whole.model_extra["prompt_filter_results"][0]["prompt_index"] == 0
    assert "content_filter_results" in whole.choices[0].model_extra
    chunks = list(gateway.chat.completions.create(model="azure/gpt-4o-mini", stream=True,
                                                  messages=msgs("#mock:content_filter=1 py filtered")))
    # Azure's first chunk has no choices, like a usage chunk; only the usage chunk is removed.
    assert chunks[0].choices == [] and chunks[0].model_extra["prompt_filter_results"]
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content == "Mock reply to: py filtered"
    with pytest.raises(openai.BadRequestError) as err:
        gateway.chat.completions.create(model="azure/gpt-4o-mini",
                                        messages=msgs("#mock:error=400,content_filter=1 py bad"))
    assert err.value.code == "content_filter"
    assert err.value.body["innererror"]["code"] == "ResponsibleAIPolicyViolation"


def test_anthropic_cache_tokens_reach_the_sdk_and_the_trace():
    resp = gateway.chat.completions.with_raw_response.create(
        model="claude/claude-mock-1", messages=msgs("#mock:cache_read=40,cache_write=7 py cached"))
    trace_id = resp.headers["x-gatecast-trace-id"]
    completion = resp.parse()
    assert completion.usage.prompt_tokens_details.cached_tokens == 40
    # Both caches are parts of the input total.
    assert completion.usage.prompt_tokens > 40 + 7
    gen = attrs(spans_for(trace_id)[0])
    assert gen["gen_ai.usage.input_tokens"] == completion.usage.prompt_tokens
    assert gen["gen_ai.usage.cache_read.input_tokens"] == 40
    assert gen["gen_ai.usage.cache_creation.input_tokens"] == 7


class Query(pydantic.BaseModel):
    query: str


def test_anthropic_structured_output_and_reasoning_through_the_sdk_helpers():
    # json_schema goes up as a forced tool; its input comes back as the content the SDK parses.
    parsed = gateway.chat.completions.parse(model="claude/claude-mock-1", messages=msgs("py structured"),
                                            response_format=Query)
    assert parsed.choices[0].message.parsed == Query(query="py structured")
    assert parsed.choices[0].finish_reason == "stop"
    with gateway.chat.completions.stream(model="claude/claude-mock-1", messages=msgs("py structured stream"),
                                         response_format=Query) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == Query(query="py structured stream")
    sent = last_sent("py structured stream")["body"]
    assert sent["tool_choice"]["type"] == "tool"

    thought = gateway.chat.completions.create(model="claude/claude-mock-1", messages=msgs("py think"),
                                              reasoning_effort="low", max_completion_tokens=3000)
    assert thought.choices[0].message.content == "Mock reply to: py think"
    assert thought.choices[0].message.model_extra["reasoning_content"] == "Mock thinking about: py think"
