"""The official OpenAI Python SDK's Responses API (`client.responses`) through Gatecast, which
bridges it onto chat for every provider: an OpenAI-compatible one (`up/...`) and an Anthropic one
(`claude/...`), both on the mock. Where it helps, the answer is compared with the mock's own
Responses dialect called directly for the same request.
"""

import json
import os
import uuid
from dataclasses import dataclass

import openai
import pytest
from openai import OpenAI

from sdk_common import MOCK_URL, attrs, last_sent, named, spans_for

gateway = OpenAI(base_url=os.environ["GATECAST_URL"], api_key="client-key", max_retries=0)
direct = OpenAI(base_url=MOCK_URL + "/v1", api_key="direct-key", max_retries=0)

TOOLS = [{"type": "function", "name": "lookup", "description": "Looks a thing up.",
          "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}]


@dataclass
class Upstream:
    provider: str
    model: str
    path: str
    provider_name: str

    @property
    def route(self):
        return f"{self.provider}/{self.model}"


UPSTREAMS = [
    Upstream("up", "gpt-4o-mini", "/v1/chat/completions", "openai"),
    Upstream("claude", "claude-mock-1", "/v1/messages", "anthropic"),
]


@pytest.fixture(params=UPSTREAMS, ids=lambda u: u.provider)
def up(request):
    return request.param


def plain(content):
    """The text of a chat or Messages `content`, a string or a list of text parts."""
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in content if part.get("type") == "text")


def calls_of(response):
    return [item for item in response.output if item.type == "function_call"]


def test_create(up):
    text = f"hello responses sdk {up.provider}"
    r = gateway.responses.create(model=up.route, instructions="be brief", input=text)
    assert r.object == "response" and r.status == "completed"
    assert r.id.startswith("resp_")
    sent = last_sent(text)  # read before the direct call below is recorded
    assert r.output_text == f"Mock reply to: {text}"
    assert r.output_text == direct.responses.create(model="gpt-4o-mini", instructions="be brief",
                                                    input=text).output_text
    assert [item.type for item in r.output] == ["message"]
    assert r.output[0].role == "assistant"
    assert r.usage.input_tokens > 0 and r.usage.output_tokens == len(r.output_text.split())
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert sent["path"] == up.path
    if up.provider_name == "openai":
        turns = sent["body"]["messages"]
        assert [(t["role"], plain(t["content"])) for t in turns] == [("system", "be brief"), ("user", text)]
    else:
        assert plain(sent["body"]["system"]) == "be brief"


def test_stream_true_has_the_typed_events(up):
    text = f"stream responses sdk {up.provider}"
    events = list(gateway.responses.create(model=up.route, input=text, stream=True))
    assert last_sent(text)["path"] == up.path
    types = [e.type for e in events]
    # The same sequence the mock's own Responses dialect streams for this request.
    assert types == [e.type for e in direct.responses.create(model="gpt-4o-mini", input=text, stream=True)]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1, "streamed in pieces, not buffered into one"
    assert "".join(deltas) == f"Mock reply to: {text}"
    done = events[-1].response
    assert done.status == "completed" and done.output_text == "".join(deltas)
    assert done.usage.output_tokens > 0 and done.usage.input_tokens > 0
    assert events[0].response.id == done.id


def test_stream_helper_and_get_final_response(up):
    text = f"helper responses sdk {up.provider}"
    seen = []
    with gateway.responses.stream(model=up.route, input=text) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                seen.append(event.delta)
        final = stream.get_final_response()
    assert final.output_text == "".join(seen) == f"Mock reply to: {text}"
    # What the stream produced is kept and read back like a created one.
    kept = gateway.responses.retrieve(final.id)
    assert kept.id == final.id and kept.output_text == final.output_text


def test_function_tool_and_its_output_on_the_next_turn(up):
    text = f"find responses sdk {up.provider}"
    first = gateway.responses.create(model=up.route, input=text, tools=TOOLS)
    [call] = calls_of(first)
    assert call.name == "lookup" and call.call_id
    assert json.loads(call.arguments) == {"query": text}
    assert last_sent(text)["path"] == up.path

    # Only the new item goes up: the gateway holds the earlier turn.
    # The OpenAI mock calls an offered tool whatever came before; "none" asks it for text.
    # The Anthropic mock answers a tool result with text by itself, as a model would.
    choice = {"tool_choice": "none"} if up.provider_name == "openai" else {}
    second = gateway.responses.create(
        model=up.route, previous_response_id=first.id, tools=TOOLS, **choice,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "in the attic"}])
    assert second.status == "completed" and not calls_of(second)
    assert second.previous_response_id == first.id
    sent = last_sent("in the attic")
    assert sent["path"] == up.path
    turns = sent["body"]["messages"]
    if up.provider_name == "openai":
        assert second.output_text == f"Mock reply to: {text}"
        assert [t["role"] for t in turns] == ["user", "assistant", "tool"]
        assert turns[1]["tool_calls"][0]["id"] == call.call_id
        assert turns[1]["tool_calls"][0]["function"]["name"] == "lookup"
        assert turns[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "in the attic"}
    else:
        assert second.output_text == "Mock reply to: in the attic"
        assert [t["role"] for t in turns] == ["user", "assistant", "user"]
        assert turns[1]["content"][-1]["type"] == "tool_use"
        assert turns[2]["content"][0]["type"] == "tool_result"
        assert turns[2]["content"][0]["tool_use_id"] == call.call_id


def test_a_streamed_function_call(up):
    text = f"streamed find responses sdk {up.provider}"
    fragments = []
    with gateway.responses.stream(model=up.route, input=text, tools=TOOLS) as stream:
        for event in stream:
            if event.type == "response.function_call_arguments.delta":
                fragments.append(event.delta)
            if event.type == "response.function_call_arguments.done":
                done = event
        final = stream.get_final_response()
    assert len(fragments) > 1, fragments
    assert json.loads("".join(fragments)) == json.loads(done.arguments) == {"query": text}
    [call] = calls_of(final)
    assert call.name == "lookup" and json.loads(call.arguments) == {"query": text}


def test_retrieve_and_unknown_ids():
    created = gateway.responses.create(model="up/gpt-4o-mini", input="keep responses sdk")
    kept = gateway.responses.retrieve(created.id)
    assert kept.id == created.id
    assert kept.output_text == created.output_text
    assert kept.status == "completed"
    with pytest.raises(openai.NotFoundError):
        gateway.responses.retrieve("resp_never_made")
    with pytest.raises(openai.BadRequestError) as err:
        gateway.responses.create(model="up/gpt-4o-mini", input="x", previous_response_id="resp_never_made")
    assert err.value.param == "previous_response_id"


def test_errors_are_the_sdks_exceptions(up):
    with pytest.raises(openai.RateLimitError) as err:
        gateway.responses.create(model=up.route, input="#mock:error=429,retry_after=3 responses busy")
    assert err.value.response.headers["retry-after"] == "3"
    with pytest.raises(openai.RateLimitError):
        list(gateway.responses.create(model=up.route, input="#mock:error=429 responses stream busy",
                                      stream=True))
    with pytest.raises(openai.NotFoundError) as err:
        gateway.responses.create(model="nowhere/x", input="x")
    assert err.value.code == "model_not_found"


def test_trace_from_the_body_and_from_headers(up):
    text = f"traced responses sdk {up.provider}"
    raw = gateway.responses.with_raw_response.create(
        model=up.route, input=text, user="u-resp",
        extra_body={"trace": {"trace_name": "responses-agent", "generation_name": "respond",
                              "team": "red"}})
    trace_id = raw.headers["x-gatecast-trace-id"]
    r = raw.parse()
    spans = spans_for(trace_id, 2)
    root, gen = named(spans, "responses-agent"), named(spans, "respond")
    assert gen["parentSpanId"] == root["spanId"]
    g = attrs(gen)
    assert g["gen_ai.provider.name"] == up.provider_name
    assert g["gen_ai.request.model"] == up.model
    assert g["gen_ai.usage.input_tokens"] == r.usage.input_tokens
    assert g["gen_ai.usage.output_tokens"] == r.usage.output_tokens
    assert g["user.id"] == "u-resp"
    assert g["trace.metadata.team"] == "red"
    assert "trace" not in last_sent(text)["body"]

    run = uuid.uuid4().hex
    raw = gateway.responses.with_raw_response.create(
        model=up.route, input=f"{text} by header",
        extra_headers={"x-gatecast-trace-id": run, "x-gatecast-generation-name": "respond-by-header",
                       "x-gatecast-metadata-team": "amber"})
    assert raw.headers["x-gatecast-trace-id"] == run
    g = attrs(named(spans_for(run), "respond-by-header"))
    assert g["trace.metadata.team"] == "amber"
