"""The official Anthropic Python SDK, unmodified, pointed at Gatecast's `POST /v1/messages`.

Every case runs twice: to an Anthropic-dialect provider (`claude/...`, passed through as sent)
and to an OpenAI-dialect one (`up/...`, translated to chat and back), both on the mock. The SDK
is given Gatecast's root as `base_url`, as Claude Code's `ANTHROPIC_BASE_URL` is; it adds
/v1/messages itself.

Left out, as the gateway does not do them yet:
- `messages.count_tokens`: `POST /v1/messages/count_tokens` is a 404 (an unknown route, in OpenAI's shape).
"""

import hashlib
import json
import os
import uuid
from dataclasses import dataclass

import anthropic
import pytest

from sdk_common import MOCK_URL, attrs, last_sent, named, spans_for

ROOT = os.environ["GATECAST_URL"].removesuffix("/v1")
KEYED_ROOT = os.environ["GATECAST_KEYED_URL"].removesuffix("/v1")
KEYED_TRACES = os.path.join(os.environ["SDK_KEYED_WORK"], "traces.jsonl")

# max_retries=0: the SDK retries 429 and 529 itself, and these cases look at the first answer.
gateway = anthropic.Anthropic(base_url=ROOT, api_key="client-key", max_retries=0)
direct = anthropic.Anthropic(base_url=MOCK_URL, api_key="sk-ant-direct", max_retries=0)

TOOL = {"name": "lookup", "description": "Looks a thing up.",
        "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}


@dataclass
class Upstream:
    """A provider in tests/sdk/gatecast.toml, what the gateway calls on the mock for it and what
    its spans name it."""
    provider: str
    model: str
    path: str
    provider_name: str

    @property
    def route(self):
        return f"{self.provider}/{self.model}"


UPSTREAMS = [
    Upstream("claude", "claude-mock-1", "/v1/messages", "anthropic"),
    Upstream("up", "gpt-4o-mini", "/v1/chat/completions", "openai"),
]


@pytest.fixture(params=UPSTREAMS, ids=lambda u: u.provider)
def up(request):
    return request.param


def ask(text):
    return [{"role": "user", "content": text}]


def text_of(message):
    return "".join(b.text for b in message.content if b.type == "text")


def test_create(up):
    text = f"hello anthropic sdk {up.provider}"
    msg = gateway.messages.create(model=up.route, max_tokens=256, system="be brief", messages=ask(text),
                                  metadata={"user_id": "u-a1"})
    assert msg.type == "message" and msg.role == "assistant"
    assert text_of(msg) == f"Mock reply to: {text}"
    assert msg.stop_reason == "end_turn"
    # The mock counts words.
    assert msg.usage.input_tokens > 0
    assert msg.usage.output_tokens == len(text_of(msg).split())
    sent = last_sent(text)
    assert sent["path"] == up.path
    if up.provider_name == "anthropic":
        # Passed through: the body the SDK built, with the gateway's route prefix taken off.
        assert sent["body"]["model"] == "claude-mock-1"
        assert sent["body"]["system"] == "be brief"
        assert sent["body"]["metadata"] == {"user_id": "u-a1"}
        # The same request straight to the mock answers the same.
        again = direct.messages.create(model="claude-mock-1", max_tokens=256, system="be brief",
                                       messages=ask(text))
        assert text_of(again) == text_of(msg) and again.usage == msg.usage
    else:
        assert sent["body"]["messages"][0] == {"role": "system", "content": "be brief"}
        assert sent["body"]["user"] == "u-a1"


def test_stream_and_get_final_message(up):
    text = f"stream anthropic sdk {up.provider}"
    whole = gateway.messages.create(model=up.route, max_tokens=256, messages=ask(text))
    with gateway.messages.stream(model=up.route, max_tokens=256, messages=ask(text)) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
    assert last_sent(text)["path"] == up.path
    assert len(deltas) > 1, "streamed in pieces, not buffered into one"
    assert "".join(deltas) == text_of(final) == text_of(whole) == f"Mock reply to: {text}"
    assert final.stop_reason == "end_turn"
    # The SDK keeps message_start's input count and takes message_delta's output count.
    assert final.usage.input_tokens == whole.usage.input_tokens
    assert final.usage.output_tokens == whole.usage.output_tokens


def test_tool_use_plain_and_streamed(up):
    text = f"find anthropic sdk {up.provider}"
    msg = gateway.messages.create(model=up.route, max_tokens=256, messages=ask(text), tools=[TOOL])
    assert msg.stop_reason == "tool_use"
    [call] = [b for b in msg.content if b.type == "tool_use"]
    assert call.name == "lookup" and call.id
    assert call.input == {"query": text}
    sent = last_sent(text)["body"]
    if up.provider_name == "openai":
        assert sent["tools"][0]["function"]["name"] == "lookup"

    fragments = []
    with gateway.messages.stream(model=up.route, max_tokens=256, messages=ask(text), tools=[TOOL]) as stream:
        for event in stream:
            if event.type == "input_json":
                fragments.append(event.partial_json)
                snapshot = event.snapshot
        final = stream.get_final_message()
    # The SDK's own accumulator put the argument fragments back together.
    assert len(fragments) > 1, fragments
    assert json.loads("".join(fragments)) == snapshot == {"query": text}
    assert final.stop_reason == "tool_use"
    [streamed] = [b for b in final.content if b.type == "tool_use"]
    assert streamed.name == "lookup" and streamed.id
    assert streamed.input == call.input


def test_tool_result_round_trip(up):
    text = f"round trip anthropic sdk {up.provider}"
    first = gateway.messages.create(model=up.route, max_tokens=256, messages=ask(text), tools=[TOOL])
    [call] = [b for b in first.content if b.type == "tool_use"]
    # The SDK's content blocks go back as they came, as Anthropic's docs do it.
    turns = ask(text) + [
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                      "content": "under the doormat"}]},
    ]
    # The OpenAI mock calls an offered tool whatever came before; "none" asks it for text.
    # The Anthropic mock answers a tool result with text by itself, as a model would.
    choice = {"tool_choice": {"type": "none"}} if up.provider_name == "openai" else {}
    answer = gateway.messages.create(model=up.route, max_tokens=256, messages=turns, tools=[TOOL], **choice)
    assert answer.stop_reason == "end_turn"
    assert not [b for b in answer.content if b.type == "tool_use"]
    sent = last_sent("under the doormat")
    assert sent["path"] == up.path
    if up.provider_name == "anthropic":
        assert text_of(answer) == "Mock reply to: under the doormat"
        assert [t["role"] for t in sent["body"]["messages"]] == ["user", "assistant", "user"]
        assert sent["body"]["messages"][2]["content"][0]["tool_use_id"] == call.id
    else:
        assert text_of(answer) == f"Mock reply to: {text}"
        messages = sent["body"]["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
        assert messages[1]["tool_calls"][0]["id"] == call.id
        assert json.loads(messages[1]["tool_calls"][0]["function"]["arguments"]) == {"query": text}
        assert messages[2] == {"role": "tool", "tool_call_id": call.id, "content": "under the doormat"}
        assert sent["body"]["tool_choice"] == "none"


def test_the_sdks_own_tool_runner_on_the_beta_path():
    # Claude Code calls the beta form (`?beta=true` with `anthropic-beta`). Only the Anthropic
    # provider: the OpenAI mock calls an offered tool on every turn, so the loop would not end.
    ran = []

    @anthropic.beta_tool
    def lookup(query: str) -> str:
        """Looks a thing up."""
        ran.append(query)
        return "found: under the doormat"

    runner = gateway.beta.messages.tool_runner(
        model="claude/claude-mock-1", max_tokens=256, tools=[lookup], max_iterations=4,
        messages=ask("runner anthropic sdk"), betas=["interleaved-thinking-2025-05-14"])
    turns = list(runner)
    assert ran == ["runner anthropic sdk"]
    assert [t.stop_reason for t in turns] == ["tool_use", "end_turn"]
    assert text_of(turns[-1]) == "Mock reply to: found: under the doormat"
    sent = last_sent("found: under the doormat")
    assert sent["path"] == "/v1/messages"
    assert sent["body"]["messages"][-1]["content"][0]["type"] == "tool_result"
    # The client's betas reach the Anthropic provider.
    beta = next(h for h in sent["headers"] if h[0].lower() == "anthropic-beta")
    assert "interleaved-thinking-2025-05-14" in beta[1]


def test_errors_are_the_sdks_exceptions(up):
    with pytest.raises(anthropic.BadRequestError) as err:
        gateway.messages.create(model=up.route, max_tokens=64, messages=ask("#mock:error=400 a bad one"))
    assert err.value.status_code == 400
    assert err.value.body["error"]["type"] == "invalid_request_error"

    with pytest.raises(anthropic.RateLimitError) as err:
        gateway.messages.create(model=up.route, max_tokens=64, messages=ask("#mock:error=429,retry_after=3 busy"))
    assert err.value.response.headers["retry-after"] == "3"
    assert err.value.body["type"] == "error"
    assert err.value.body["error"]["type"] == "rate_limit_error"

    # Anthropic's 529 passes through; an OpenAI-wire 529 arrives as 529 too, and in
    # Anthropic's shape, so the SDK raises its own OverloadedError for both.
    with pytest.raises(anthropic.OverloadedError) as err:
        gateway.messages.create(model=up.route, max_tokens=64, messages=ask("#mock:error=529 overloaded"))
    assert err.value.status_code == 529
    assert err.value.body["error"]["type"] == "overloaded_error"

    # A 503, which is how OpenAI-compatible providers say "overloaded", is the SDK's
    # InternalServerError; translated, its type is Anthropic's overloaded_error.
    with pytest.raises(anthropic.InternalServerError) as err:
        gateway.messages.create(model=up.route, max_tokens=64, messages=ask("#mock:error=503 unavailable"))
    assert err.value.status_code == 503
    expected = "overloaded_error" if up.provider_name == "openai" else "api_error"
    assert err.value.body["error"]["type"] == expected

    # A stream that fails before its first event is the same error, not a broken stream.
    with pytest.raises(anthropic.RateLimitError):
        with gateway.messages.stream(model=up.route, max_tokens=64,
                                     messages=ask("#mock:error=429 stream busy")) as stream:
            stream.get_final_message()
    with pytest.raises(anthropic.OverloadedError):
        with gateway.messages.stream(model=up.route, max_tokens=64,
                                     messages=ask("#mock:error=529 stream overloaded")) as stream:
            stream.get_final_message()


def test_the_gateways_own_refusals_are_anthropic_shaped():
    with pytest.raises(anthropic.NotFoundError) as err:
        gateway.messages.create(model="nowhere/claude-x", max_tokens=64, messages=ask("x"))
    assert err.value.body["type"] == "error"
    assert err.value.body["error"]["type"] == "not_found_error"
    assert "nowhere/claude-x" in err.value.body["error"]["message"]


def test_trace_from_extra_body(up):
    text = f"traced body anthropic sdk {up.provider}"
    raw = gateway.messages.with_raw_response.create(
        model=up.route, max_tokens=256, messages=ask(text), metadata={"user_id": "u-body"},
        extra_body={"trace": {"trace_name": "sdk-agent", "generation_name": "answer",
                              "team": "blue"}, "session_id": "s-body"})
    trace_id = raw.headers["x-gatecast-trace-id"]
    msg = raw.parse()
    spans = spans_for(trace_id, 2)
    root, gen = named(spans, "sdk-agent"), named(spans, "answer")
    assert gen["parentSpanId"] == root["spanId"] and not root["parentSpanId"]
    g = attrs(gen)
    assert g["gen_ai.provider.name"] == up.provider_name
    assert g["gen_ai.request.model"] == up.model
    assert g["gen_ai.usage.input_tokens"] == msg.usage.input_tokens
    assert g["gen_ai.usage.output_tokens"] == msg.usage.output_tokens
    assert g["user.id"] == "u-body"
    assert g["session.id"] == "s-body"
    assert g["trace.metadata.team"] == "blue"
    # The gateway's fields never reach the provider (the Anthropic mock 400s on unknown fields).
    sent = last_sent(text)["body"]
    assert "trace" not in sent and "session_id" not in sent


def test_trace_from_extra_headers(up):
    # What a client that cannot change the body does (Claude Code's ANTHROPIC_CUSTOM_HEADERS).
    text = f"traced headers anthropic sdk {up.provider}"
    run = uuid.uuid4().hex
    parent = uuid.uuid4().hex[:16]
    headers = {"x-gatecast-trace-id": run, "x-gatecast-parent-span-id": parent,
               "x-gatecast-span-name": "plan", "x-gatecast-generation-name": "header-answer",
               "x-gatecast-user": "u-header", "x-session-id": "s-header",
               "x-gatecast-metadata-team": "green"}
    with gateway.messages.with_streaming_response.create(model=up.route, max_tokens=256, messages=ask(text),
                                                         stream=True, extra_headers=headers) as raw:
        assert raw.headers["x-gatecast-trace-id"] == run, "32 hex digits are used as they are"
        events = list(raw.parse())
    assert events[-1].type == "message_stop"
    spans = spans_for(run, 2)
    span, gen = named(spans, "plan"), named(spans, "header-answer")
    assert span["parentSpanId"] == parent, "the client's span is the parent"
    assert gen["parentSpanId"] == span["spanId"]
    g = attrs(gen)
    assert g["gen_ai.provider.name"] == up.provider_name
    assert g["gen_ai.request.stream"] is True
    assert g["gen_ai.usage.output_tokens"] > 0
    assert g["user.id"] == "u-header"
    assert g["session.id"] == "s-header"
    assert g["trace.metadata.team"] == "green"
    sent = last_sent(text)
    assert not [h for h, _ in sent["headers"] if h.startswith("x-gatecast") or h == "x-session-id"]

    # A body field wins over the header with the same meaning.
    raw = gateway.messages.with_raw_response.create(
        model=up.route, max_tokens=64, messages=ask(f"{text} again"),
        extra_headers={"x-gatecast-generation-name": "from-header", "x-gatecast-metadata-team": "green"},
        extra_body={"trace": {"generation_name": "from-body"}})
    spans = spans_for(raw.headers["x-gatecast-trace-id"])
    assert [s["name"] for s in spans] == ["from-body"]
    assert attrs(spans[0])["trace.metadata.team"] == "green"


def test_a_virtual_key_is_the_api_key():
    keyed = anthropic.Anthropic(base_url=KEYED_ROOT, api_key=os.environ["SDK_VIRTUAL_KEY"], max_retries=0)
    raw = keyed.messages.with_raw_response.create(model="claude/claude-mock-1", max_tokens=64,
                                                  messages=ask("keyed anthropic sdk"))
    assert text_of(raw.parse()) == "Mock reply to: keyed anthropic sdk"
    sent = last_sent("keyed anthropic sdk")
    # The SDK sent the key as x-api-key; the provider got the provider's key instead.
    forwarded = dict(sent["headers"])
    assert forwarded["x-api-key"] == redaction_marker("sk-ant-sdk-provider")
    assert os.environ["SDK_VIRTUAL_KEY"] not in json.dumps(sent)
    g = attrs(spans_for(raw.headers["x-gatecast-trace-id"], traces=KEYED_TRACES)[0])
    assert g["gatecast.key.name"] == "sdk-tests"

    wrong = anthropic.Anthropic(base_url=KEYED_ROOT, api_key="gk_not-a-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as err:
        wrong.messages.create(model="claude/claude-mock-1", max_tokens=64, messages=ask("x"))
    assert err.value.body["error"]["type"] == "authentication_error"


def redaction_marker(key):
    """How the mock's recorder shows a key it got (docs/mock.md)."""
    return f"[redacted; present, sha256:{hashlib.sha256(key.encode()).hexdigest()[:8]}]"
