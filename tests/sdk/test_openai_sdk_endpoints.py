"""The official OpenAI and Anthropic Python SDKs, unmodified, on the endpoints beside chat:
embeddings, legacy completions, models, and Anthropic's count_tokens and models list.

Pointed at Gatecast by base URL only; each answer is checked against the mock straight where
the two must match, and the spans on the file destination where the exchange is traced.
"""

import os

import anthropic
import openai
import pytest
from openai import OpenAI

from test_openai_sdk import attrs, recorded, spans_for

GATECAST_URL = os.environ["GATECAST_URL"]
MOCK_URL = os.environ["MOCK_URL"]

gateway = OpenAI(base_url=GATECAST_URL, api_key="client-key", max_retries=0)
direct = OpenAI(base_url=MOCK_URL + "/v1", api_key="sk-sdk-provider", max_retries=0)
# Anthropic's SDK takes the root and adds /v1 itself.
claude = anthropic.Anthropic(base_url=GATECAST_URL.removesuffix("/v1"), api_key="client-key", max_retries=0)

EMBEDDING_MODEL = "text-embedding-3-small"


def test_embeddings_of_one_string_match_direct_and_are_traced():
    raw = gateway.embeddings.with_raw_response.create(model="up/" + EMBEDDING_MODEL, input="embed me")
    a = raw.parse()
    b = direct.embeddings.create(model=EMBEDDING_MODEL, input="embed me")
    assert a.model_dump() == b.model_dump()
    assert len(a.data) == 1 and len(a.data[0].embedding) == 8
    # The SDK asks for base64 unless told otherwise: the dimension count reads it too.
    assert recorded()[-1]["body"].get("encoding_format") == "base64"
    span = spans_for(raw.headers["x-gatecast-trace-id"])[0]
    assert span["name"] == "embeddings " + EMBEDDING_MODEL
    got = attrs(span)
    assert got["gen_ai.operation.name"] == "embeddings"
    assert int(got["gen_ai.embeddings.dimension.count"]) == 8
    assert int(got["gen_ai.usage.input_tokens"]) == a.usage.prompt_tokens


def test_embeddings_of_a_list_with_dimensions():
    out = gateway.embeddings.create(model="up/" + EMBEDDING_MODEL, input=["one", "two", "three"], dimensions=16)
    assert [d.index for d in out.data] == [0, 1, 2]
    assert all(len(d.embedding) == 16 for d in out.data)
    assert out.data[0].embedding != out.data[1].embedding
    floats = gateway.embeddings.create(
        model="up/" + EMBEDDING_MODEL, input=["one"], dimensions=16, encoding_format="float")
    assert floats.data[0].embedding == out.data[0].embedding


def test_embeddings_bad_input_is_the_sdks_own_error():
    with pytest.raises(openai.BadRequestError) as err:
        gateway.embeddings.create(model="up/" + EMBEDDING_MODEL, input=[])
    assert err.value.body["param"] == "input"
    with pytest.raises(openai.NotFoundError):
        gateway.embeddings.create(model="no-such-model", input="x")


def test_legacy_completions_plain_and_streamed():
    plain = gateway.completions.create(model="up/gpt-3.5-turbo-instruct", prompt="complete sdk", max_tokens=16)
    assert plain.object == "text_completion"
    assert "complete sdk" in plain.choices[0].text
    assert plain.usage.total_tokens > 0
    chunks = list(gateway.completions.create(
        model="up/gpt-3.5-turbo-instruct", prompt="stream sdk", max_tokens=16, stream=True))
    assert "stream sdk" in "".join(c.choices[0].text for c in chunks if c.choices)
    assert all(c.usage is None for c in chunks), "usage the gateway asked for stays hidden"


def test_models_list_and_retrieve():
    ids = [m.id for m in gateway.models.list()]
    for id in ["fast", "up/gpt-4o-mini", "gpt-4o-mini"]:
        assert id in ids
    assert gateway.models.retrieve("up/gpt-4o-mini").id == "up/gpt-4o-mini"
    assert gateway.models.retrieve("fast").object == "model"
    with pytest.raises(openai.NotFoundError) as err:
        gateway.models.retrieve("no-such/model")
    assert err.value.code == "model_not_found"


def test_anthropic_count_tokens_forwarded_and_estimated():
    messages = [{"role": "user", "content": "count these words please"}]
    forwarded = claude.messages.count_tokens(model="claude/claude-sonnet-4-5", messages=messages)
    assert forwarded.input_tokens > 0
    assert recorded()[-1]["path"] == "/v1/messages/count_tokens"
    estimated = claude.messages.count_tokens(model="up/gpt-4o-mini", system="be brief", messages=messages)
    assert estimated.input_tokens > 0
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.count_tokens(model="no-such-model", messages=messages)


def test_anthropic_models_list():
    page = claude.models.list()
    ids = [m.id for m in page.data]
    assert "up/gpt-4o-mini" in ids and "gpt-4o-mini" in ids
    assert all(m.type == "model" for m in page.data)
    assert page.has_more is False
    assert page.first_id == ids[0] and page.last_id == ids[-1]
