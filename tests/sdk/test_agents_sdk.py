"""The OpenAI Agents SDK (`openai-agents`) in its default configuration, pointed at Gatecast the
way its docs say: `OPENAI_BASE_URL` and `OPENAI_API_KEY`. By default it calls the Responses API,
which Gatecast bridges onto the provider's own wire.

Two things a user has to know, both shown here:
- The SDK reads `prefix/model` as its own provider prefix and knows only `openai/`, `litellm/`
  and `any-llm/`, so Gatecast's `claude/claude-mock-1` is written `openai/claude/claude-mock-1`
  (`openai/` is stripped and the rest goes to Gatecast as the model), or a bare alias.
- Each model call is its own HTTP request, so without trace headers each turn is its own trace.
  `ModelSettings(extra_headers=...)` with `x-gatecast-trace-id` (and the run's span as
  `x-gatecast-parent-span-id`) puts the turns of one run in one trace.

The agent's own tracing export is turned off: it would send to the internet.
"""

import asyncio
import json
import os
import time
import uuid
import warnings

import pytest

os.environ["OPENAI_BASE_URL"] = os.environ["GATECAST_URL"]
os.environ["OPENAI_API_KEY"] = "client-key"

from agents import (Agent, ModelSettings, Runner, function_tool,  # noqa: E402
                    set_tracing_disabled)

from sdk_common import attrs, recorded, spans_for, spans_where  # noqa: E402

set_tracing_disabled(True)

# The Anthropic mock answers a tool result with text, as a model would, so a tool round trip
# ends after two model calls. (The OpenAI mock calls an offered tool on every turn.)
CLAUDE = "openai/claude/claude-mock-1"
SPAN_CLIENT = 3


def finder(ran, **settings):
    @function_tool
    def lookup(query: str) -> str:
        """Looks a thing up."""
        ran.append(query)
        return f"found: {query} is in the shed"

    return Agent(name="finder", instructions="be brief", model=settings.pop("model", CLAUDE),
                 tools=[lookup], model_settings=ModelSettings(**settings.pop("model_settings", {})),
                 **settings)


def sent_since(count, text):
    return [r for r in recorded()[count:] if json.dumps(text) in json.dumps(r["body"])]


def test_a_one_tool_agent_runs_to_the_end_in_one_trace():
    ran = []
    run_id, run_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    headers = {"x-gatecast-trace-id": run_id, "x-gatecast-parent-span-id": run_span,
               "x-gatecast-generation-name": "finder turn", "x-gatecast-metadata-agent": "finder"}
    before = len(recorded())
    text = "where is the ladder agents"
    result = Runner.run_sync(finder(ran, model_settings={"extra_headers": headers}), text)

    assert ran == [text], "the tool ran once, with the model's arguments"
    assert result.final_output == f"Mock reply to: found: {text} is in the shed"
    kinds = [item.type for item in result.new_items]
    assert kinds == ["tool_call_item", "tool_call_output_item", "message_output_item"]
    assert len(result.raw_responses) == 2

    # What the bridge sent the provider on each turn: the second carries the call and its output.
    first, second = sent_since(before, text)
    assert first["path"] == second["path"] == "/v1/messages"
    assert [m["role"] for m in first["body"]["messages"]] == ["user"]
    assert [m["role"] for m in second["body"]["messages"]] == ["user", "assistant", "user"]
    [call] = [b for b in second["body"]["messages"][1]["content"] if b["type"] == "tool_use"]
    [output] = second["body"]["messages"][2]["content"]
    assert output["type"] == "tool_result" and output["tool_use_id"] == call["id"]
    assert "is in the shed" in json.dumps(output["content"])

    # Two generations, siblings under the client's run span, in the order they ran.
    spans = sorted(spans_for(run_id, 2), key=lambda s: int(s["startTimeUnixNano"]))
    assert [s["name"] for s in spans] == ["finder turn", "finder turn"]
    assert all(s["kind"] == SPAN_CLIENT and s["parentSpanId"] == run_span for s in spans)
    assert all(s["flags"] & 0x200 for s in spans), "the parent is the client's, remote"
    assert int(spans[0]["endTimeUnixNano"]) <= int(spans[1]["startTimeUnixNano"])
    g1, g2 = attrs(spans[0]), attrs(spans[1])
    for g, response in zip((g1, g2), result.raw_responses):
        assert g["gen_ai.provider.name"] == "anthropic"
        assert g["gen_ai.request.model"] == "claude-mock-1"
        assert g["gen_ai.usage.input_tokens"] == response.usage.input_tokens
        assert g["gen_ai.usage.output_tokens"] == response.usage.output_tokens
        assert g["trace.metadata.agent"] == "finder"
    assert g1["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert g2["gen_ai.response.finish_reasons"] == ["stop"]


def test_a_default_run_without_headers_makes_one_trace_per_turn():
    ran = []
    before = len(recorded())
    started = time.time_ns()
    text = "where is the rake agents"
    result = Runner.run_sync(finder(ran), text)
    assert ran == [text] and result.final_output.endswith("is in the shed")
    assert len(sent_since(before, text)) == 2
    # The tests run one at a time, so what started after `started` is this run's.
    spans = spans_where(lambda s: int(s["startTimeUnixNano"]) >= started, 2)
    assert len(spans) == 2
    assert [s["name"] for s in spans] == ["chat claude-mock-1"] * 2
    assert not any(s["parentSpanId"] for s in spans), "each turn is a root of its own"
    assert spans[0]["traceId"] != spans[1]["traceId"]


def test_a_streamed_run():
    ran = []
    text = "where is the hose agents"

    async def run():
        streamed = Runner.run_streamed(finder(ran), text)
        deltas = [e.data.delta async for e in streamed.stream_events()
                  if e.type == "raw_response_event" and e.data.type == "response.output_text.delta"]
        return streamed, deltas

    # On the loop Runner.run_sync uses: the SDK's shared HTTP client is bound to it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loop = asyncio.get_event_loop_policy().get_event_loop()
    streamed, deltas = loop.run_until_complete(run())
    assert ran == [text]
    assert streamed.final_output == f"Mock reply to: found: {text} is in the shed"
    assert "".join(deltas) == streamed.final_output and len(deltas) > 1


def test_an_openai_provider_gets_the_tool_call_and_its_output_in_chats_shape():
    # On the OpenAI mock a second turn would call the tool again, so the agent stops on its
    # first tool result; the turn after that is checked with max_turns below.
    ran = []
    text = "where is the bucket agents"
    before = len(recorded())
    result = Runner.run_sync(finder(ran, model="openai/up/gpt-4o-mini", tool_use_behavior="stop_on_first_tool"),
                             text)
    assert ran == [text]
    assert result.final_output == f"found: {text} is in the shed"
    [sent] = sent_since(before, text)
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["tools"][0]["function"]["name"] == "lookup"

    from agents.exceptions import MaxTurnsExceeded
    ran.clear()
    with pytest.raises(MaxTurnsExceeded):
        Runner.run_sync(finder(ran, model="openai/up/gpt-4o-mini"), f"{text} twice", max_turns=2)
    second = sent_since(before, f"{text} twice")[1]["body"]["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "tool"]
    assert second[3]["tool_call_id"] == second[2]["tool_calls"][0]["id"]
    assert "is in the shed" in json.dumps(second[3]["content"])
