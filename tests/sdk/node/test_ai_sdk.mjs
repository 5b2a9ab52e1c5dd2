// The Vercel AI SDK (`ai` + `@ai-sdk/openai`), unmodified, pointed at Gatecast with
// `createOpenAI({ baseURL })`. Its default `openai("model")` calls the Responses API, which
// Gatecast bridges onto chat for every provider: here an OpenAI-compatible one (`up/...`) and an
// Anthropic one (`claude/...`), both on the mock.
//
// The AI SDK drops body options it does not know, so trace metadata goes as headers
// (`headers` on the call, or on `createOpenAI` for every call).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, isStepCount, jsonSchema, streamText, tool } from 'ai';

const MOCK_URL = process.env.MOCK_URL;
const TRACES = process.env.SDK_TRACES;
const openai = createOpenAI({ baseURL: process.env.GATECAST_URL, apiKey: 'client-key' });

const UPSTREAMS = [
  { route: 'up/gpt-4o-mini', model: 'gpt-4o-mini', providerName: 'openai', path: '/v1/chat/completions' },
  { route: 'claude/claude-mock-1', model: 'claude-mock-1', providerName: 'anthropic', path: '/v1/messages' },
];

async function recorded() {
  return (await fetch(`${MOCK_URL}/__mock/requests`)).json();
}

// Every request the mock got holding `text` as a whole string (so `x` is not `x2`).
async function sentWith(text) {
  return (await recorded()).filter((r) => JSON.stringify(r.body).includes(JSON.stringify(text)));
}

async function spansFor(traceId, atLeast = 1, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let found = [];
  while (Date.now() < deadline) {
    found = [];
    if (existsSync(TRACES)) {
      for (const line of readFileSync(TRACES, 'utf8').split('\n').filter(Boolean)) {
        for (const rs of JSON.parse(line).resourceSpans ?? []) {
          for (const ss of rs.scopeSpans ?? []) {
            found.push(...(ss.spans ?? []).filter((s) => s.traceId === traceId));
          }
        }
      }
    }
    if (found.length >= atLeast) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${found.length} of ${atLeast} spans for ${traceId}`);
}

function attrs(span) {
  const out = {};
  for (const { key, value } of span.attributes ?? []) {
    if ('intValue' in value) out[key] = Number(value.intValue);
    else if ('arrayValue' in value) out[key] = (value.arrayValue.values ?? []).map((v) => Object.values(v)[0]);
    else out[key] = Object.values(value)[0];
  }
  return out;
}

const traceHeaders = (traceId, generation) => ({
  'x-gatecast-trace-id': traceId,
  'x-gatecast-trace-name': 'ai-sdk',
  'x-gatecast-generation-name': generation,
  'x-gatecast-user': 'u-ai',
  'x-gatecast-metadata-app': 'node-ai',
});

function lookupTool(ran) {
  return tool({
    description: 'Looks a thing up.',
    inputSchema: jsonSchema({ type: 'object', properties: { query: { type: 'string' } }, required: ['query'] }),
    execute: async ({ query }) => {
      ran.push(query);
      return `found: ${query} is in the shed`;
    },
  });
}

for (const up of UPSTREAMS) {
  test(`generateText through ${up.route}, traced from headers`, async () => {
    const text = `ai sdk hello ${up.route}`;
    const traceId = randomUUID().replaceAll('-', '');
    const result = await generateText({
      model: openai(up.route), system: 'be brief', prompt: text, headers: traceHeaders(traceId, 'ai-answer'),
    });
    assert.equal(result.text, `Mock reply to: ${text}`);
    assert.equal(result.finishReason, 'stop');
    assert.ok(result.response.id.startsWith('resp_'), result.response.id);
    assert.equal(result.usage.outputTokens, result.text.split(' ').length);
    const [sent] = await sentWith(text);
    assert.equal(sent.path, up.path);
    assert.ok(!sent.headers.some(([h]) => h.startsWith('x-gatecast')), 'trace headers never go upstream');

    const spans = await spansFor(traceId, 2);
    const root = spans.find((s) => s.name === 'ai-sdk');
    const gen = spans.find((s) => s.name === 'ai-answer');
    assert.ok(root && gen, spans.map((s) => s.name).join());
    assert.equal(gen.parentSpanId, root.spanId);
    const g = attrs(gen);
    assert.equal(g['gen_ai.provider.name'], up.providerName);
    assert.equal(g['gen_ai.request.model'], up.model);
    assert.equal(g['gen_ai.usage.input_tokens'], result.usage.inputTokens);
    assert.equal(g['gen_ai.usage.output_tokens'], result.usage.outputTokens);
    assert.equal(g['user.id'], 'u-ai');
    assert.equal(g['trace.metadata.app'], 'node-ai');
  });

  test(`streamText through ${up.route}`, async () => {
    const text = `ai sdk stream ${up.route}`;
    const traceId = randomUUID().replaceAll('-', '');
    const result = streamText({ model: openai(up.route), prompt: text, headers: traceHeaders(traceId, 'ai-stream') });
    const parts = [];
    for await (const part of result.textStream) parts.push(part);
    assert.ok(parts.length > 1, 'streamed in pieces, not buffered into one');
    assert.equal(parts.join(''), `Mock reply to: ${text}`);
    assert.equal(await result.finishReason, 'stop');
    const usage = await result.usage;
    assert.ok(usage.inputTokens > 0 && usage.outputTokens > 0);
    const g = attrs((await spansFor(traceId, 2)).find((s) => s.name === 'ai-stream'));
    assert.equal(g['gen_ai.request.stream'], true);
    assert.equal(g['gen_ai.usage.output_tokens'], usage.outputTokens);
  });

  test(`a tool round trip by the AI SDK's own loop through ${up.route}`, async () => {
    const text = `ai sdk tool ${up.route}`;
    const traceId = randomUUID().replaceAll('-', '');
    const ran = [];
    const result = await generateText({
      model: openai(up.route),
      prompt: text,
      tools: { lookup: lookupTool(ran) },
      stopWhen: isStepCount(4),
      // The OpenAI mock calls an offered tool on every turn; after the first step the SDK
      // asks for text. The Anthropic mock answers a tool result with text by itself.
      prepareStep: ({ stepNumber }) => (stepNumber > 0 && up.providerName === 'openai' ? { toolChoice: 'none' } : {}),
      headers: { 'x-gatecast-trace-id': traceId, 'x-gatecast-generation-name': 'ai-step' },
    });
    assert.deepEqual(ran, [text]);
    assert.deepEqual(result.steps.map((s) => s.finishReason), ['tool-calls', 'stop']);
    const expected = up.providerName === 'openai' ? text : `found: ${text} is in the shed`;
    assert.equal(result.text, `Mock reply to: ${expected}`);

    const [first, second] = await sentWith(text);
    assert.equal(second.path, up.path);
    const turns = second.body.messages;
    if (up.providerName === 'openai') {
      assert.deepEqual(turns.map((m) => m.role), ['user', 'assistant', 'tool']);
      assert.equal(turns[2].tool_call_id, turns[1].tool_calls[0].id);
      assert.equal(turns[2].content, `found: ${text} is in the shed`);
      assert.equal(second.body.tool_choice, 'none');
    } else {
      assert.deepEqual(turns.map((m) => m.role), ['user', 'assistant', 'user']);
      assert.equal(turns[2].content[0].type, 'tool_result');
      assert.equal(turns[2].content[0].tool_use_id, turns[1].content.at(-1).id);
    }
    assert.ok(first.body.tools, 'the tool was offered');

    // One trace, the two steps' generations in it, in order.
    const spans = (await spansFor(traceId, 2)).sort((a, b) => Number(BigInt(a.startTimeUnixNano) - BigInt(b.startTimeUnixNano)));
    assert.deepEqual(spans.map((s) => s.name), ['ai-step', 'ai-step']);
    assert.deepEqual(spans.map((s) => attrs(s)['gen_ai.response.finish_reasons']), [['tool_calls'], ['stop']]);
  });

  test(`a second turn of a conversation through ${up.route}`, async () => {
    // With `store` on (the default) the SDK sends the earlier answer back as an item_reference.
    const bodies = [];
    const watched = createOpenAI({
      baseURL: process.env.GATECAST_URL, apiKey: 'client-key',
      fetch: async (url, init) => { bodies.push(JSON.parse(init.body)); return fetch(url, init); },
    });
    const text = `ai sdk first turn ${up.route}`;
    const messages = [{ role: 'user', content: text }];
    const first = await generateText({ model: watched(up.route), messages });
    messages.push(...first.response.messages, { role: 'user', content: `ai sdk second turn ${up.route}` });
    const second = await generateText({ model: watched(up.route), messages });
    assert.equal(bodies[1].input[1].type, 'item_reference', JSON.stringify(bodies[1]));
    assert.equal(second.text, `Mock reply to: ai sdk second turn ${up.route}`);
    const sent = (await sentWith(`ai sdk second turn ${up.route}`)).at(-1);
    const earlier = JSON.stringify(sent.body.messages[1]);
    assert.ok(earlier.includes(first.text), `the first answer went up as the assistant turn: ${earlier}`);
  });
}
