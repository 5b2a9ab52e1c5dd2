// The official OpenAI Node SDK, unmodified, pointed at Gatecast by base URL only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const gateway = new OpenAI({ baseURL: process.env.GATECAST_URL, apiKey: 'client-key', maxRetries: 0 });
const direct = new OpenAI({ baseURL: `${process.env.MOCK_URL}/v1`, apiKey: 'sk-sdk-provider', maxRetries: 0 });
const msgs = (text) => [{ role: 'system', content: 'be brief' }, { role: 'user', content: text }];
const withoutId = ({ id, ...rest }) => rest;

test('non-streaming answers match the provider', async () => {
  const a = await gateway.chat.completions.create({ model: 'up/gpt-4o-mini', messages: msgs('hello node') });
  const b = await direct.chat.completions.create({ model: 'gpt-4o-mini', messages: msgs('hello node') });
  assert.deepEqual(a, b);
  assert.match(a.choices[0].message.content, /hello node/);
});

test('streamed answers match the provider, without a usage chunk', async () => {
  const collect = async (client, model) => {
    const out = [];
    for await (const chunk of await client.chat.completions.create({ model, messages: msgs('stream node'), stream: true })) {
      out.push(withoutId(chunk));
    }
    return out;
  };
  const a = await collect(gateway, 'up/gpt-4o-mini');
  const b = await collect(direct, 'gpt-4o-mini');
  assert.deepEqual(a, b);
  assert.ok(a.every((c) => c.usage === undefined));
});

test('tool calls', async () => {
  const tools = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object' } } }];
  const r = await gateway.chat.completions.create({ model: 'up/gpt-4o-mini', messages: msgs('find'), tools });
  assert.equal(r.choices[0].message.tool_calls[0].function.name, 'lookup');
});

test('errors keep their status', async () => {
  await assert.rejects(
    gateway.chat.completions.create({ model: 'up/gpt-4o-mini', messages: msgs('#mock:error=429 x') }),
    (e) => e instanceof OpenAI.RateLimitError && e.status === 429,
  );
  await assert.rejects(
    gateway.chat.completions.create({ model: 'no-such-model', messages: msgs('x') }),
    (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found',
  );
});

test('trace metadata in the body is accepted and the trace id is returned', async () => {
  const { data, response } = await gateway.chat.completions
    .create({
      model: 'up/gpt-4o-mini', messages: msgs('node trace'), user: 'u-17',
      // Gateway-only fields ride along as extra body params.
      trace: { trace_id: 'node-run-1', generation_name: 'classify' }, session_id: 'chat-9',
    })
    .withResponse();
  assert.ok(data.choices[0].message.content);
  assert.match(response.headers.get('x-gatecast-trace-id'), /^[0-9a-f]{32}$/);
});

test('a virtual key is the API key; a wrong one is an AuthenticationError', async () => {
  const keyed = new OpenAI({ baseURL: process.env.GATECAST_KEYED_URL, apiKey: process.env.SDK_VIRTUAL_KEY, maxRetries: 0 });
  const r = await keyed.chat.completions.create({ model: 'up/gpt-4o-mini', messages: msgs('node with a key') });
  assert.match(r.choices[0].message.content, /node with a key/);
  const wrong = new OpenAI({ baseURL: process.env.GATECAST_KEYED_URL, apiKey: 'gk_wrong', maxRetries: 0 });
  await assert.rejects(
    wrong.chat.completions.create({ model: 'up/gpt-4o-mini', messages: msgs('nope') }),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401 && e.code === 'invalid_api_key',
  );
});
