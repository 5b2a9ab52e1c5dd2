// The official OpenAI Node SDK, unmodified, pointed at Gatecast, with providers that speak their
// own wire: Anthropic Messages and Azure OpenAI (deployment and v1 forms), all on the mock.
// The cases are those of test_openai_sdk_dialects.py; the direct comparisons call the mock in the
// provider's own dialect (Messages over plain HTTP, as no Anthropic SDK is installed here).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import OpenAI, { AzureOpenAI } from 'openai';

const MOCK_URL = process.env.MOCK_URL;
const gateway = new OpenAI({ baseURL: process.env.GATECAST_URL, apiKey: 'client-key', maxRetries: 0 });
const azureDirect = new AzureOpenAI({
  endpoint: MOCK_URL, apiVersion: '2024-10-21', apiKey: 'azure-direct', maxRetries: 0,
});
const azureV1Direct = new OpenAI({ baseURL: `${MOCK_URL}/openai/v1`, apiKey: 'azure-direct', maxRetries: 0 });
const msgs = (text) => [{ role: 'system', content: 'be brief' }, { role: 'user', content: text }];
const tools = [{
  type: 'function',
  function: {
    name: 'lookup', description: 'Looks a thing up.',
    parameters: { type: 'object', properties: { query: { type: 'string' } } },
  },
}];

async function messagesDirect(text, stream) {
  const response = await fetch(`${MOCK_URL}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': 'sk-ant-direct', 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({
      model: 'claude-mock-1', max_tokens: 512, system: 'be brief', stream,
      messages: [{ role: 'user', content: text }],
    }),
  });
  assert.equal(response.status, 200);
  if (!stream) {
    const msg = await response.json();
    return msg.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
  }
  const events = (await response.text()).split('\n')
    .filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)));
  return events.filter((e) => e.type === 'content_block_delta' && e.delta.type === 'text_delta')
    .map((e) => e.delta.text);
}

function openaiDirect(client, model) {
  return async (text, stream) => {
    if (!stream) {
      return (await client.chat.completions.create({ model, messages: msgs(text) })).choices[0].message.content;
    }
    const out = [];
    for await (const c of await client.chat.completions.create({ model, messages: msgs(text), stream: true })) {
      if (c.choices.length && c.choices[0].delta.content) out.push(c.choices[0].delta.content);
    }
    return out;
  };
}

const UPSTREAMS = [
  { provider: 'claude', model: 'claude-mock-1', providerName: 'anthropic', path: '/v1/messages',
    direct: messagesDirect, retryStatus: 529 },
  { provider: 'azure', model: 'gpt-4o-mini', providerName: 'azure.ai.openai',
    path: '/openai/deployments/dep-mini/chat/completions', direct: openaiDirect(azureDirect, 'dep-mini'),
    retryStatus: 503 },
  { provider: 'azurev1', model: 'my-deployment', providerName: 'azure.ai.openai',
    path: '/openai/v1/chat/completions', direct: openaiDirect(azureV1Direct, 'my-deployment'), retryStatus: 503 },
];
const at = (up, provider = up.provider) => `${provider}/${up.model}`;

async function recorded() {
  return (await fetch(`${MOCK_URL}/__mock/requests`)).json();
}

// The last request the mock got holding `text` as a whole string (so `x` is not `x2`).
async function lastSent(text) {
  return (await recorded()).filter((r) => JSON.stringify(r.body).includes(JSON.stringify(text))).at(-1);
}

async function collect(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

async function spansFor(traceId, atLeast = 1, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const found = [];
    if (existsSync(process.env.SDK_TRACES)) {
      for (const line of readFileSync(process.env.SDK_TRACES, 'utf8').split('\n').filter(Boolean)) {
        for (const rs of JSON.parse(line).resourceSpans ?? []) {
          for (const ss of rs.scopeSpans ?? []) found.push(...(ss.spans ?? []).filter((s) => s.traceId === traceId));
        }
      }
    }
    if (found.length >= atLeast) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no spans for ${traceId}`);
}

function attrs(span) {
  const out = {};
  for (const { key, value } of span.attributes ?? []) {
    // OTLP JSON writes 64-bit integers as strings.
    out[key] = 'intValue' in value ? Number(value.intValue) : Object.values(value)[0];
  }
  return out;
}

for (const up of UPSTREAMS) {
  test(`${up.provider}: non-streaming answers match the provider's`, async () => {
    const text = `hello node ${up.provider}`;
    const a = await gateway.chat.completions.create({ model: at(up), messages: msgs(text) });
    assert.equal((await lastSent(text)).path, up.path, 'read before the direct call is recorded');
    assert.equal(a.object, 'chat.completion');
    assert.equal(a.choices[0].message.content, `Mock reply to: ${text}`);
    assert.equal(a.choices[0].message.content, await up.direct(text, false));
    assert.equal(a.choices[0].finish_reason, 'stop');
    assert.ok(a.usage.prompt_tokens > 0 && a.usage.completion_tokens > 0);
    assert.equal(a.usage.total_tokens, a.usage.prompt_tokens + a.usage.completion_tokens);
  });

  test(`${up.provider}: streamed chunk for chunk as the provider streams, without a usage chunk`, async () => {
    const text = `stream node ${up.provider}`;
    const chunks = await collect(await gateway.chat.completions.create({ model: at(up), messages: msgs(text), stream: true }));
    assert.equal((await lastSent(text)).path, up.path);
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.usage === undefined && c.choices.length === 1));
    const deltas = chunks.map((c) => c.choices[0].delta.content).filter(Boolean);
    assert.deepEqual(deltas, await up.direct(text, true));
    assert.equal(deltas.join(''), `Mock reply to: ${text}`);
    assert.deepEqual(chunks.map((c) => c.choices[0].finish_reason).filter(Boolean), ['stop']);
  });

  test(`${up.provider}: the usage chunk when asked`, async () => {
    const chunks = await collect(await gateway.chat.completions.create({
      model: at(up), messages: msgs(`usage node ${up.provider}`), stream: true, stream_options: { include_usage: true },
    }));
    assert.deepEqual(chunks.filter((c) => c.usage), [chunks.at(-1)], 'exactly one usage chunk, last');
    const { usage, choices } = chunks.at(-1);
    assert.deepEqual(choices, []);
    assert.ok(usage.prompt_tokens > 0 && usage.completion_tokens > 0);
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  });

  test(`${up.provider}: tool calls, plain and assembled by the SDK's stream helper`, async () => {
    const text = `find node ${up.provider}`;
    const plain = await gateway.chat.completions.create({ model: at(up), messages: msgs(text), tools });
    assert.equal(plain.choices[0].finish_reason, 'tool_calls');
    const [call] = plain.choices[0].message.tool_calls;
    assert.equal(call.function.name, 'lookup');
    assert.ok(call.id);
    assert.deepEqual(JSON.parse(call.function.arguments), { query: text });

    const done = [];
    const stream = gateway.chat.completions.stream({ model: at(up), messages: msgs(text), tools });
    stream.on('tool_calls.function.arguments.done', (e) => done.push(e));
    const final = await stream.finalChatCompletion();
    assert.deepEqual(done.map((e) => [e.name, e.index]), [['lookup', 0]]);
    assert.deepEqual(JSON.parse(done[0].arguments), { query: text });
    assert.equal(final.choices[0].finish_reason, 'tool_calls');
    const [streamed] = final.choices[0].message.tool_calls;
    assert.equal(streamed.function.name, 'lookup');
    assert.deepEqual(JSON.parse(streamed.function.arguments), JSON.parse(call.function.arguments));
  });

  test(`${up.provider}: a tool result round trip`, async () => {
    const text = `round trip node ${up.provider}`;
    const first = await gateway.chat.completions.create({ model: at(up), messages: msgs(text), tools });
    const [call] = first.choices[0].message.tool_calls;
    // tool_choice "none" asks for the text answer; the OpenAI mock otherwise calls an offered
    // tool again, as it does not read tool results.
    const answer = await gateway.chat.completions.create({
      model: at(up), tools, tool_choice: 'none', messages: [
        ...msgs(text),
        first.choices[0].message, // the SDK's own message goes back as it came
        { role: 'tool', tool_call_id: call.id, content: 'under the mat node' },
      ],
    });
    assert.equal(answer.choices[0].finish_reason, 'stop');
    const sent = await lastSent('under the mat node');
    assert.equal(sent.path, up.path);
    const turns = sent.body.messages;
    if (up.providerName === 'anthropic') {
      assert.equal(answer.choices[0].message.content, 'Mock reply to: under the mat node');
      assert.deepEqual(turns.map((t) => t.role), ['user', 'assistant', 'user']);
      assert.equal(turns[1].content[0].type, 'tool_use');
      assert.equal(turns[1].content[0].id, call.id);
      assert.equal(turns[2].content[0].type, 'tool_result');
      assert.equal(turns[2].content[0].tool_use_id, call.id);
    } else {
      assert.equal(answer.choices[0].message.content, `Mock reply to: ${text}`);
      assert.deepEqual(turns.map((t) => t.role), ['system', 'user', 'assistant', 'tool']);
      assert.equal(turns[3].tool_call_id, call.id);
    }
  });

  test(`${up.provider}: provider errors are the SDK's error classes`, async () => {
    const ask = (directive) => gateway.chat.completions.create({ model: at(up), messages: msgs(`#mock:${directive} node`) });
    await assert.rejects(ask('error=400'), (e) => e instanceof OpenAI.BadRequestError && e.status === 400);
    await assert.rejects(ask('error=429,retry_after=3'),
      (e) => e instanceof OpenAI.RateLimitError && e.headers.get('retry-after') === '3');
    await assert.rejects(ask('error=500'), (e) => e instanceof OpenAI.InternalServerError && e.status === 500);
    // Anthropic's 529 "overloaded" is OpenAI's 503; Azure has no 529 of its own, so it passes.
    const overloaded = up.providerName === 'anthropic' ? 503 : 529;
    await assert.rejects(ask('error=529'),
      (e) => e instanceof OpenAI.InternalServerError && e.status === overloaded && Boolean(e.error?.message));
    // A streamed request that fails before its first event is the same error, not a stream.
    const askStream = (directive) => gateway.chat.completions.create({
      model: at(up), stream: true, messages: msgs(`#mock:${directive} node stream`),
    });
    await assert.rejects(askStream('error=429,retry_after=2'),
      (e) => e instanceof OpenAI.RateLimitError && e.headers.get('retry-after') === '2');
    await assert.rejects(askStream('error=529'), (e) => e instanceof OpenAI.InternalServerError && e.status === overloaded);
  });

  test(`${up.provider}: a retry, then the answer`, async () => {
    // The mock counts failures per prompt: a fresh one fails once whatever ran before.
    const said = `node retry ${up.provider} ${randomUUID()}`;
    const r = await gateway.chat.completions.create({
      model: at(up, `${up.provider}-retry`), messages: msgs(`#mock:error=${up.retryStatus},fail_times=1 ${said}`),
    });
    assert.equal(r.choices[0].message.content, `Mock reply to: ${said}`);
    assert.equal((await recorded()).filter((x) => JSON.stringify(x.body).includes(said)).length, 2);
  });

  test(`${up.provider}: a mid-stream abort and an in-stream error reject`, async () => {
    const said = [];
    await assert.rejects(async () => {
      const stream = await gateway.chat.completions.create({
        model: at(up), stream: true, messages: msgs('#mock:abort_after=5 node cut off here'),
      });
      for await (const c of stream) said.push(c.choices[0]?.delta.content ?? '');
    }, // A cut connection surfaces from fetch itself (`TypeError: terminated`), as with OpenAI.
    (e) => e instanceof Error && (e instanceof OpenAI.APIError || e.message === 'terminated'));
    // What came before the cut reached the client as it came.
    assert.ok(said.join('') && 'Mock reply to: node cut off here'.startsWith(said.join('')), said);
    await assert.rejects(async () => {
      const stream = await gateway.chat.completions.create({
        model: at(up), stream: true, messages: msgs('#mock:stream_error_after=3 node'),
      });
      for await (const _ of stream);
    }, (e) => e instanceof OpenAI.APIError);
  });

  test(`${up.provider}: a timeout is a 504`, async () => {
    await assert.rejects(
      gateway.chat.completions.create({ model: at(up, `${up.provider}-slow`), messages: msgs('#mock:latency_ms=2000 node') }),
      (e) => e instanceof OpenAI.InternalServerError && e.status === 504 && e.code === 'upstream_timeout',
    );
  });

  test(`${up.provider}: the trace names the provider and carries usage`, async () => {
    const { data, response } = await gateway.chat.completions.create({
      model: at(up), messages: msgs(`node trace ${up.provider}`), user: 'u-22',
      trace: { trace_name: 'dialects', generation_name: 'answer' },
    }).withResponse();
    const spans = await spansFor(response.headers.get('x-gatecast-trace-id'), 2);
    const gen = attrs(spans.find((s) => s.name === 'answer'));
    assert.equal(gen['gen_ai.provider.name'], up.providerName);
    assert.equal(gen['gen_ai.request.model'], up.model);
    assert.equal(gen['gen_ai.usage.input_tokens'], data.usage.prompt_tokens);
    assert.equal(gen['gen_ai.usage.output_tokens'], data.usage.completion_tokens);
    assert.equal((await lastSent(`node trace ${up.provider}`)).body.trace, undefined);
  });
}

test('azure: content-filter results reach the SDK, streamed or not', async () => {
  const filtered = msgs('#mock:content_filter=1 node filtered');
  const whole = await gateway.chat.completions.create({ model: 'azure/gpt-4o-mini', messages: filtered });
  assert.equal(whole.prompt_filter_results[0].prompt_index, 0);
  assert.ok(whole.choices[0].content_filter_results);
  const chunks = await collect(await gateway.chat.completions.create({ model: 'azure/gpt-4o-mini', messages: filtered, stream: true }));
  // Azure's first chunk has no choices, like a usage chunk; only the usage chunk is removed.
  assert.deepEqual(chunks[0].choices, []);
  assert.ok(chunks[0].prompt_filter_results);
  assert.ok(chunks.every((c) => !c.usage));
  assert.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), whole.choices[0].message.content);
  await assert.rejects(
    gateway.chat.completions.create({ model: 'azure/gpt-4o-mini', messages: msgs('#mock:error=400,content_filter=1 node bad') }),
    (e) => e instanceof OpenAI.BadRequestError && e.code === 'content_filter' && Boolean(e.error.innererror),
  );
});

test('claude: cache tokens reach the SDK and the trace', async () => {
  const { data, response } = await gateway.chat.completions.create({
    model: 'claude/claude-mock-1', messages: msgs('#mock:cache_read=40,cache_write=7 node cached'),
  }).withResponse();
  assert.equal(data.usage.prompt_tokens_details.cached_tokens, 40);
  assert.ok(data.usage.prompt_tokens > 40 + 7, 'both caches are parts of the input total');
  const [gen] = await spansFor(response.headers.get('x-gatecast-trace-id'));
  const a = attrs(gen);
  assert.equal(a['gen_ai.usage.input_tokens'], data.usage.prompt_tokens);
  assert.equal(a['gen_ai.usage.cache_read.input_tokens'], 40);
  assert.equal(a['gen_ai.usage.cache_creation.input_tokens'], 7);
});

test('claude: requests Anthropic cannot serve and truncated streams are OpenAI errors', async () => {
  await assert.rejects(
    gateway.chat.completions.create({ model: 'claude/claude-mock-1', messages: msgs('node two'), n: 2 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'n',
  );
  await assert.rejects(
    gateway.chat.completions.create({ model: 'claude/claude-mock-1', messages: msgs('#mock:error=529 node overloaded') }),
    (e) => e instanceof OpenAI.InternalServerError && e.code === 'overloaded',
  );
  await assert.rejects(async () => {
    const stream = await gateway.chat.completions.create({
      model: 'claude/claude-mock-1', stream: true, messages: msgs('#mock:truncate_after=4 node short'),
    });
    for await (const _ of stream);
  }, (e) => e instanceof OpenAI.APIError);
});

test('claude: structured output through a forced tool, streamed or not', async () => {
  const schema = { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] };
  const response_format = { type: 'json_schema', json_schema: { name: 'query', schema, strict: true } };
  const r = await gateway.chat.completions.create({ model: 'claude/claude-mock-1', messages: msgs('node structured'), response_format });
  assert.deepEqual(JSON.parse(r.choices[0].message.content), { query: 'node structured' });
  assert.equal(r.choices[0].finish_reason, 'stop');
  const stream = gateway.chat.completions.stream({ model: 'claude/claude-mock-1', messages: msgs('node structured s'), response_format });
  const final = await stream.finalChatCompletion();
  assert.deepEqual(JSON.parse(final.choices[0].message.content), { query: 'node structured s' });
});

test("claude: the SDK's own tool loop (runTools), plain and streamed", async () => {
  for (const stream of [false, true]) {
    const seen = [];
    const runner = gateway.chat.completions.runTools({
      model: 'claude/claude-mock-1', stream, messages: msgs(`node loop ${stream}`),
      tools: [{
        type: 'function',
        function: {
          name: 'lookup', parameters: tools[0].function.parameters, parse: JSON.parse,
          function: ({ query }) => { seen.push(query); return `found ${query.split(' ').at(-1)}`; },
        },
      }],
    });
    // The SDK called the tool with the parsed arguments, sent the result back, and got text.
    assert.equal(await runner.finalContent(), `Mock reply to: found ${stream}`);
    assert.deepEqual(seen, [`node loop ${stream}`]);
  }
});
