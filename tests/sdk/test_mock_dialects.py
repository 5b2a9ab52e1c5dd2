"""The official SDKs, unmodified, validate the mock's own dialects directly (no gateway):
Anthropic Messages, Azure OpenAI's paths, the Responses API and embeddings. A gateway test
against these dialects is only as good as the mock's fidelity, so the SDKs check it first.
"""

import base64
import json
import os
import struct
import urllib.request

import anthropic
import openai
import pytest
from openai import AzureOpenAI, OpenAI

MOCK_URL = os.environ["MOCK_URL"]

claude = anthropic.Anthropic(base_url=MOCK_URL, api_key="sk-ant-sdk", max_retries=0)
direct = OpenAI(base_url=MOCK_URL + "/v1", api_key="sk-sdk-provider", max_retries=0)
azure = AzureOpenAI(azure_endpoint=MOCK_URL, api_version="2024-10-21", api_key="azure-sdk-key",
                    max_retries=0)

TOOL = {"name": "lookup", "description": "Looks a thing up.",
        "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}


def recorded():
    with urllib.request.urlopen(MOCK_URL + "/__mock/requests") as r:
        return json.load(r)


def header(request, name):
    return next((v for k, v in request["headers"] if k.lower() == name), None)


def user(text):
    return [{"role": "user", "content": text}]


# --- Anthropic Messages ---

def test_anthropic_create():
    msg = claude.messages.create(model="claude-mock-1", max_tokens=256, system="be brief",
                                 messages=user("hello claude"))
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.model == "claude-mock-1"
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == "Mock reply to: hello claude"
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens == 2 + 2 + 1
    assert msg.usage.output_tokens == 5
    assert msg.usage.cache_read_input_tokens is None
    last = recorded()[-1]
    assert last["path"] == "/v1/messages"
    assert header(last, "anthropic-version")
    assert "sk-ant-sdk" not in json.dumps(last), "the recorder's read redacts the key"
    assert header(last, "x-api-key").startswith("[redacted; present")


def test_anthropic_cache_tokens():
    msg = claude.messages.create(model="claude", max_tokens=64,
                                 messages=user("#mock:cache_read=40,cache_write=7 cached"))
    assert msg.usage.cache_read_input_tokens == 40
    assert msg.usage.cache_creation_input_tokens == 7
    assert msg.content[0].text == "Mock reply to: cached"


def test_anthropic_stream_final_message():
    with claude.messages.stream(model="claude", max_tokens=64,
                                messages=user("#mock:chunks=3 stream to me")) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(texts) == 3
    assert "".join(texts) == "Mock reply to: stream to me"
    assert final.content[0].text == "Mock reply to: stream to me"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 6


def test_anthropic_thinking_stream():
    with claude.messages.stream(model="claude", max_tokens=2048,
                                thinking={"type": "enabled", "budget_tokens": 1024},
                                messages=user("think first")) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "Mock thinking about: think first"
    assert final.content[0].signature.startswith("mock-signature-")


def test_anthropic_tool_use_and_round_trip():
    msg = claude.messages.create(model="claude", max_tokens=256, tools=[TOOL],
                                 messages=user("find the key"))
    assert msg.stop_reason == "tool_use"
    [call] = msg.content
    assert call.type == "tool_use" and call.name == "lookup"
    assert call.input == {"query": "find the key"}
    follow = claude.messages.create(model="claude", max_tokens=256, tools=[TOOL], messages=[
        {"role": "user", "content": "find the key"},
        {"role": "assistant", "content": [c.model_dump() for c in msg.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                      "content": "under the mat"}]},
    ])
    assert follow.stop_reason == "end_turn"
    assert follow.content[0].text == "Mock reply to: under the mat"


def test_anthropic_tool_use_streaming():
    with claude.messages.stream(model="claude", max_tokens=256, tools=[TOOL],
                                tool_choice={"type": "tool", "name": "lookup"},
                                messages=user("stream the call")) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    [call] = final.content
    assert call.type == "tool_use" and call.input == {"query": "stream the call"}
    assert final.stop_reason == "tool_use"


def test_anthropic_rate_limit():
    with pytest.raises(anthropic.RateLimitError) as e:
        claude.messages.create(model="claude", max_tokens=16,
                               messages=user("#mock:error=429,retry_after=3 slow"))
    assert e.value.status_code == 429
    assert e.value.response.headers["retry-after"] == "3"
    assert e.value.body["error"]["type"] == "rate_limit_error"


def test_anthropic_overloaded():
    expected = getattr(anthropic, "OverloadedError", anthropic.InternalServerError)
    with pytest.raises(expected) as e:
        claude.messages.create(model="claude", max_tokens=16,
                               messages=user("#mock:error=529 busy"))
    assert e.value.status_code == 529
    assert e.value.body["error"]["type"] == "overloaded_error"


def test_anthropic_bad_request_names_the_field():
    with pytest.raises(anthropic.BadRequestError) as e:
        claude.messages.create(model="claude", max_tokens=16, messages=user("hi"),
                               extra_body={"trace": {"name": "x"}})
    assert "trace: Extra inputs are not permitted" in str(e.value)


def test_anthropic_stream_error_event():
    with pytest.raises(anthropic.APIStatusError) as e:
        with claude.messages.stream(model="claude", max_tokens=16,
                                    messages=user("#mock:stream_error_after=3 fail")) as stream:
            for _ in stream:
                pass
    assert "Overloaded" in str(e.value)


def test_anthropic_count_tokens():
    count = claude.messages.count_tokens(model="claude", system="be brief",
                                         messages=user("count these words"))
    msg = claude.messages.create(model="claude", max_tokens=16, system="be brief",
                                 messages=user("count these words"))
    assert count.input_tokens == msg.usage.input_tokens == 2 + 3 + 1


# --- Azure OpenAI ---

def test_azure_chat_on_a_deployment():
    out = azure.chat.completions.create(model="my-gpt4o", messages=user("hello azure"))
    assert out.choices[0].message.content == "Mock reply to: hello azure"
    assert out.model == "my-gpt4o"
    last = recorded()[-1]
    assert last["path"] == "/openai/deployments/my-gpt4o/chat/completions"
    assert "api-version=2024-10-21" in last["query"]
    assert header(last, "api-key").startswith("[redacted; present")


def test_azure_stream_with_content_filter():
    stream = azure.chat.completions.create(model="my-gpt4o", stream=True,
                                           messages=user("#mock:content_filter=1 filtered stream"))
    chunks = list(stream)
    assert chunks[0].choices == []
    assert chunks[0].model_extra["prompt_filter_results"][0]["prompt_index"] == 0
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Mock reply to: filtered stream"


def test_azure_content_filter_error():
    with pytest.raises(openai.BadRequestError) as e:
        azure.chat.completions.create(model="my-gpt4o",
                                      messages=user("#mock:error=400,content_filter=1 bad"))
    assert e.value.code == "content_filter"
    assert e.value.body["innererror"]["code"] == "ResponsibleAIPolicyViolation"


def test_azure_v1_path():
    v1 = OpenAI(base_url=MOCK_URL + "/openai/v1", api_key="azure-sdk-key", max_retries=0)
    out = v1.chat.completions.create(model="my-gpt4o", messages=user("v1 path"))
    assert out.choices[0].message.content == "Mock reply to: v1 path"
    assert recorded()[-1]["path"] == "/openai/v1/chat/completions"


# --- Responses API ---

FUNCTION = {"type": "function", "name": "lookup", "description": "Looks a thing up.",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}


def test_responses_create():
    r = direct.responses.create(model="gpt-4o", instructions="be brief", input="hello responses")
    assert r.status == "completed"
    assert r.output_text == "Mock reply to: hello responses"
    assert r.usage.input_tokens == 2 + 2 + 1 and r.usage.output_tokens == 5


def test_responses_stream():
    stream = direct.responses.create(model="gpt-4o", input="#mock:chunks=2 stream it", stream=True)
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Mock reply to: stream it"
    assert events[-1].response.usage.output_tokens == 5


def test_responses_stream_helper():
    with direct.responses.stream(model="gpt-4o", input="use the helper") as stream:
        final = stream.get_final_response()
    assert final.output_text == "Mock reply to: use the helper"


def test_responses_function_tool_and_its_output():
    r = direct.responses.create(model="gpt-4o", input="find the key", tools=[FUNCTION])
    [call] = r.output
    assert call.type == "function_call" and call.name == "lookup"
    assert json.loads(call.arguments) == {"query": "find the key"}
    follow = direct.responses.create(model="gpt-4o", tools=[FUNCTION], input=[
        {"role": "user", "content": "find the key"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name,
         "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "under the mat"},
    ])
    assert follow.output_text == "Mock reply to: under the mat"


def test_responses_function_tool_streamed():
    events = list(direct.responses.create(model="gpt-4o", input="stream the call",
                                          tools=[FUNCTION], stream=True))
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(args) == {"query": "stream the call"}
    assert events[-1].response.output[0].type == "function_call"


def test_responses_errors():
    with pytest.raises(openai.RateLimitError):
        direct.responses.create(model="gpt-4o", input="#mock:error=429 slow")
    with pytest.raises(openai.BadRequestError) as e:
        direct.responses.create(model="gpt-4o", input="hi", extra_body={"trace": {}})
    assert e.value.code == "unknown_parameter" and e.value.param == "trace"


# --- Embeddings ---

def test_embeddings_string_list_and_dimensions():
    one = direct.embeddings.create(model="text-embedding-3-small", input="hello")
    assert len(one.data) == 1 and len(one.data[0].embedding) == 8
    assert abs(sum(x * x for x in one.data[0].embedding) - 1.0) < 1e-4
    again = direct.embeddings.create(model="text-embedding-3-small", input="hello",
                                     encoding_format="float")
    assert [round(x, 5) for x in again.data[0].embedding] == \
        [round(x, 5) for x in one.data[0].embedding]
    many = direct.embeddings.create(model="text-embedding-3-small", input=["a b", "c"])
    assert [d.index for d in many.data] == [0, 1]
    assert many.usage.prompt_tokens == 3 == many.usage.total_tokens
    wide = direct.embeddings.create(model="text-embedding-3-small", input="x", dimensions=64)
    assert len(wide.data[0].embedding) == 64


def test_embeddings_base64_is_float32():
    raw = direct.embeddings.with_raw_response.create(model="e", input="hello",
                                                     encoding_format="base64")
    body = json.loads(raw.text)
    packed = base64.b64decode(body["data"][0]["embedding"])
    floats = struct.unpack("<8f", packed)
    plain = direct.embeddings.create(model="e", input="hello", encoding_format="float")
    assert [round(x, 5) for x in floats] == [round(x, 5) for x in plain.data[0].embedding]


def test_azure_rate_limit_is_the_sdks_rate_limit_error():
    with pytest.raises(openai.RateLimitError) as e:
        azure.chat.completions.create(model="my-gpt4o", messages=user("#mock:error=429 slow"))
    assert e.value.code == "429"
    assert e.value.response.headers["retry-after"] == "1"


def test_anthropic_stream_usage_is_not_counted_twice():
    with claude.messages.stream(model="claude", max_tokens=64,
                                messages=user("#mock:cache_read=11 usage")) as stream:
        final = stream.get_final_message()
    plain = claude.messages.create(model="claude", max_tokens=64,
                                   messages=user("#mock:cache_read=11 usage"))
    assert final.usage.input_tokens == plain.usage.input_tokens
    assert final.usage.cache_read_input_tokens == 11
    assert final.usage.output_tokens == plain.usage.output_tokens
