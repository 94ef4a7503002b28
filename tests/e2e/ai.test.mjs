// AI metering end to end: the official OpenAI and Anthropic SDKs (pinned in package.json)
// talk to the gateway, the gateway to the mock upstream's OpenAI/Anthropic imitations, and
// every request's usage event must carry exactly the tokens the mock says it reported
// (its x-mock-usage header) and the cost the documented rule gives for them.
//
// Cost rule (src/meter/price.h), prices in the config as USD per 1M tokens, i.e. micro-USD
// per 1M tokens once multiplied by 10^6, the cost in whole micro-USD rounded half up:
//   openai:    ((in - cached) * input + cached * cached + out * output) / 10^6
//   anthropic: (in * input + cached * cached + cache_write * cache_write + out * output) / 10^6
// where cached and cache_write prices default to the input price.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

import {
  createTenantKey,
  parseSse,
  request,
  startGateway,
  startMock,
  waitForEvent,
  waitForKey,
} from './lib/harness.mjs';

const PRICES = {
  'gpt-4o-mini': { input: 0.15, output: 0.6, cached: 0.075 },
  'gpt-3.5-turbo-instruct': { input: 1.5, output: 2 },
  'text-embedding-3-small': { input: 0.02, output: 0 },
  'claude-metering-test': { input: 3, output: 15, cached: 0.3, cache_write: 3.75 },
  '*': { input: 1.25, output: 5.5 },
};
const micro = (usd) => BigInt(Math.round(usd * 1e6)); // USD per 1M tokens -> micro-USD per 1M

/** The cost the gateway must record, by the rule above. */
function expectedCost(kind, u) {
  const p = PRICES[u.model] ?? PRICES['*'];
  const input = micro(p.input);
  const output = micro(p.output);
  const cached = micro(p.cached ?? p.input);
  const cacheWrite = micro(p.cache_write ?? p.input);
  const [i, o, c, w] = [u.input, u.output, u.cached, u.cache_write].map(BigInt);
  const sum =
    kind === 'anthropic' ? i * input + c * cached + w * cacheWrite + o * output : (i - c) * input + c * cached + o * output;
  return (sum * 2n + 1_000_000n) / 2_000_000n; // round half up; sum >= 0
}

let mock;
let gw;
let key;
before(async () => {
  mock = await startMock();
});
after(async () => {
  await gw?.stop();
  await mock?.stop();
});

/** A fetch for the SDKs that notes each response's x-request-id and x-mock-usage. */
function recorder() {
  const seen = [];
  return {
    seen,
    fetch: async (url, init) => {
      const r = await fetch(url, init);
      seen.push({ status: r.status, requestId: r.headers.get('x-request-id'), usage: r.headers.get('x-mock-usage') });
      return r;
    },
    /** The one response the SDK call made (no retries), with its mock usage parsed. */
    only() {
      assert.equal(seen.length, 1, `expected exactly one HTTP request, got ${JSON.stringify(seen)}`);
      return { ...seen[0], usage: seen[0].usage ? JSON.parse(seen[0].usage) : null };
    },
  };
}

const openai = (baseURL, rec, apiKey = 'sk-unused') => new OpenAI({ apiKey, baseURL: `${baseURL}/v1`, maxRetries: 0, fetch: rec.fetch });
const anthropic = (baseURL, rec, auth = { apiKey: 'sk-ant-unused' }) =>
  new Anthropic({ apiKey: null, authToken: null, ...auth, baseURL, maxRetries: 0, fetch: rec.fetch });

const outText = (n) => Array.from({ length: n }, (_, i) => `tok${i} `).join('');
const chatMessages = [
  { role: 'system', content: 'You are a metering test. Answer in tokens.' },
  { role: 'user', content: 'How many tokens is this question, exactly?' },
];
const claudeSystem = [
  { type: 'text', text: 'A long, cacheable system prompt for the metering test.', cache_control: { type: 'ephemeral' } },
];

// ---- the SDKs against the mock directly: the mock is faithful enough for them ----

describe('SDKs straight to the mock', () => {
  test('openai chat: create, stream with include_usage, stream helper', async () => {
    const rec = recorder();
    const c = openai(mock.url, rec);
    const r = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: chatMessages, max_tokens: 4 });
    assert.equal(r.choices[0].message.content, outText(4));
    const u = rec.only().usage;
    assert.deepEqual([r.usage.prompt_tokens, r.usage.completion_tokens], [u.input, u.output]);

    const s = await c.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: chatMessages,
      max_tokens: 4,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage;
    for await (const ch of s) {
      text += ch.choices[0]?.delta?.content ?? '';
      if (ch.usage) usage = ch.usage;
    }
    assert.equal(text, outText(4));
    assert.equal(usage.prompt_tokens, u.input);
    assert.equal(usage.completion_tokens, 4);

    const h = c.chat.completions.stream({ model: 'gpt-4o-mini', messages: chatMessages, max_tokens: 2 });
    assert.equal((await h.finalChatCompletion()).choices[0].message.content, outText(2));
  });

  test('openai completions, embeddings (base64 default), responses create and stream', async () => {
    const rec = recorder();
    const c = openai(mock.url, rec);
    const cm = await c.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'Say this is a test', max_tokens: 3 });
    assert.equal(cm.choices[0].text, outText(3));

    const e = await c.embeddings.create({ model: 'text-embedding-3-small', input: ['alpha', 'beta'] });
    const f = await c.embeddings.create({ model: 'text-embedding-3-small', input: ['alpha', 'beta'], encoding_format: 'float' });
    assert.equal(e.data.length, 2);
    assert.deepEqual(e.data.map((d) => d.embedding), f.data.map((d) => d.embedding));

    const r = await c.responses.create({ model: 'gpt-4o-mini', input: 'Tell me a joke', max_output_tokens: 3 });
    assert.equal(r.output_text, outText(3));
    const st = c.responses.stream({ model: 'gpt-4o-mini', input: 'Tell me a joke', max_output_tokens: 3 });
    const deltas = [];
    st.on('response.output_text.delta', (d) => deltas.push(d.delta));
    const fr = await st.finalResponse();
    assert.deepEqual(deltas, ['tok0 ', 'tok1 ', 'tok2 ']);
    assert.equal(fr.output_text, outText(3));
    assert.deepEqual(fr.usage, r.usage);
  });

  test('anthropic messages: create and the stream helper', async () => {
    const rec = recorder();
    const c = anthropic(mock.url, rec);
    const m = await c.messages.create({ model: 'claude-metering-test', max_tokens: 5, system: claudeSystem, messages: [{ role: 'user', content: 'Hi' }] });
    assert.equal(m.content[0].text, outText(5));
    const u = rec.only().usage;
    assert.deepEqual(
      [m.usage.input_tokens, m.usage.output_tokens, m.usage.cache_read_input_tokens, m.usage.cache_creation_input_tokens],
      [u.input, u.output, u.cached, u.cache_write],
    );
    assert.ok(u.cached > 0 && u.cache_write > 0);
    const s = c.messages.stream({ model: 'claude-metering-test', max_tokens: 5, system: claudeSystem, messages: [{ role: 'user', content: 'Hi' }] });
    const texts = [];
    s.on('text', (t) => texts.push(t));
    const fm = await s.finalMessage();
    assert.equal(texts.join(''), outText(5));
    assert.deepEqual(fm.usage, m.usage); // message_delta's final count replaced the provisional 1
  });
});

// ---- through the gateway ----

describe('through the gateway', () => {
  before(async () => {
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [
        { name: 'claude', path_prefix: '/v1/messages', upstream: 'mock', kind: 'anthropic' },
        { name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' },
      ],
      extra: { prices: { models: PRICES } },
    });
    ({ secret: key } = await createTenantKey(gw, 'acme'));
    await waitForKey(gw, key, '/v1/models');
  });

  /** The event of this request, which must be billable with the mock's tokens and cost. */
  async function assertMetered(requestId, usage, kind, { flag = null } = {}) {
    assert.ok(requestId, 'the gateway answered with an x-request-id');
    assert.ok(usage, 'the mock answered with x-mock-usage (passed through the gateway)');
    const ev = await waitForEvent(gw, requestId);
    const got = {
      tenant: ev.tenant,
      route: ev.route,
      outcome: ev.outcome,
      model: ev.model,
      tokens_in: ev.tokens_in,
      tokens_out: ev.tokens_out,
      tokens_cached: ev.tokens_cached,
      tokens_cache_write: ev.tokens_cache_write,
      price_flag: ev.price_flag,
    };
    assert.deepEqual(got, {
      tenant: 'acme',
      route: kind === 'anthropic' ? 'claude' : 'oa',
      outcome: 'billable',
      model: usage.model,
      tokens_in: usage.input,
      tokens_out: usage.output,
      tokens_cached: usage.cached,
      tokens_cache_write: usage.cache_write,
      price_flag: flag,
    });
    assert.equal(BigInt(ev.cost_micros), expectedCost(kind, usage), `cost of ${JSON.stringify(usage)}`);
    return ev;
  }

  /** POSTs the same JSON body to the mock and through the gateway; both raw responses. */
  async function both(path, body) {
    const data = JSON.stringify(body);
    const direct = await request(`${mock.url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: data });
    const via = await request(`${gw.url}${path}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
      body: data,
    });
    return { direct, via };
  }

  test('chat, not streamed', async () => {
    const rec = recorder();
    const r = await openai(gw.url, rec, key).chat.completions.create({ model: 'gpt-4o-mini', messages: chatMessages, max_tokens: 7 });
    const { requestId, usage } = rec.only();
    assert.equal(r.choices[0].message.content, outText(7));
    assert.equal(r.usage.prompt_tokens, usage.input);
    assert.equal(r.usage.completion_tokens, usage.output);
    await assertMetered(requestId, usage, 'openai');
  });

  test('chat, prompt_cache_key: cached tokens priced at the cached rate', async () => {
    const rec = recorder();
    const r = await openai(gw.url, rec, key).chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'x'.repeat(4000) }],
      max_tokens: 50,
      prompt_cache_key: 'acme-1',
    });
    const { requestId, usage } = rec.only();
    assert.equal(usage.cached, 500);
    assert.equal(r.usage.prompt_tokens_details.cached_tokens, 500);
    await assertMetered(requestId, usage, 'openai');
  });

  test('chat streamed without include_usage: the client sees the bytes it would see without the gateway, and the gateway still meters', async () => {
    const rec = recorder();
    const s = await openai(gw.url, rec, key).chat.completions.create({ model: 'gpt-4o-mini', messages: chatMessages, max_tokens: 5, stream: true });
    const chunks = [];
    for await (const ch of s) chunks.push(ch);
    assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), outText(5));
    assert.ok(chunks.every((c) => !('usage' in c)), 'no chunk has a usage key');
    assert.ok(chunks.every((c) => c.choices.length === 1), 'no usage-only chunk');
    const { requestId, usage } = rec.only();
    await assertMetered(requestId, usage, 'openai');

    const req = { model: 'gpt-4o-mini', messages: chatMessages, max_tokens: 5, stream: true };
    const { direct, via } = await both('/v1/chat/completions', req);
    assert.equal(via.status, 200);
    assert.doesNotMatch(direct.text, /usage/);
    assert.equal(via.text, direct.text);
    await assertMetered(via.headers['x-request-id'], JSON.parse(via.headers['x-mock-usage']), 'openai');

    // include_usage: false is the same as leaving it out
    const off = await both('/v1/chat/completions', { ...req, stream_options: { include_usage: false } });
    assert.equal(off.via.text, direct.text);
    await assertMetered(off.via.headers['x-request-id'], JSON.parse(off.via.headers['x-mock-usage']), 'openai');
  });

  test('chat streamed with include_usage asked by the client: passed through untouched', async () => {
    const rec = recorder();
    const s = await openai(gw.url, rec, key).chat.completions.create({
      model: 'gpt-4o-mini',
      messages: chatMessages,
      max_tokens: 6,
      stream: true,
      stream_options: { include_usage: true },
    });
    let usageChunk;
    for await (const ch of s) if (ch.usage) usageChunk = ch;
    const { requestId, usage } = rec.only();
    assert.deepEqual(usageChunk.choices, []);
    assert.equal(usageChunk.usage.prompt_tokens, usage.input);
    assert.equal(usageChunk.usage.completion_tokens, usage.output);
    await assertMetered(requestId, usage, 'openai');

    const { direct, via } = await both('/v1/chat/completions', {
      model: 'gpt-4o-mini',
      messages: chatMessages,
      max_tokens: 6,
      stream: true,
      stream_options: { include_usage: true },
    });
    assert.match(direct.text, /"usage":null/);
    assert.equal(via.text, direct.text);
  });

  test('legacy completions, not streamed and streamed', async () => {
    const rec = recorder();
    const c = openai(gw.url, rec, key);
    const r = await c.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'Say this is a test, please.', max_tokens: 9 });
    assert.equal(r.choices[0].text, outText(9));
    await assertMetered(rec.seen[0].requestId, JSON.parse(rec.seen[0].usage), 'openai');

    const req = { model: 'gpt-3.5-turbo-instruct', prompt: ['one', 'two'], max_tokens: 3, stream: true };
    const { direct, via } = await both('/v1/completions', req);
    assert.equal(via.text, direct.text);
    await assertMetered(via.headers['x-request-id'], JSON.parse(via.headers['x-mock-usage']), 'openai');
  });

  test('embeddings, base64 as the SDK asks by default', async () => {
    const rec = recorder();
    const input = ['The food was delicious', 'and the waiter was friendly.'];
    const e = await openai(gw.url, rec, key).embeddings.create({ model: 'text-embedding-3-small', input });
    const { requestId, usage } = rec.only();
    const direct = await request(`${mock.url}/v1/embeddings`, {
      method: 'POST',
      body: JSON.stringify({ model: 'text-embedding-3-small', input, encoding_format: 'float' }),
    });
    assert.deepEqual(e.data.map((d) => d.embedding), direct.json().data.map((d) => d.embedding));
    assert.equal(e.usage.prompt_tokens, usage.input);
    assert.equal(usage.output, 0);
    await assertMetered(requestId, usage, 'openai');
  });

  test('responses API, not streamed and streamed', async () => {
    const rec = recorder();
    const c = openai(gw.url, rec, key);
    const r = await c.responses.create({
      model: 'gpt-4o-mini',
      instructions: 'Be brief.',
      input: 'Write a haiku about metering.',
      max_output_tokens: 12,
      prompt_cache_key: 'haiku',
    });
    assert.equal(r.output_text, outText(12));
    const first = { requestId: rec.seen[0].requestId, usage: JSON.parse(rec.seen[0].usage) };
    assert.ok(first.usage.cached > 0);
    await assertMetered(first.requestId, first.usage, 'openai');

    const st = c.responses.stream({ model: 'gpt-4o-mini', input: 'Write a haiku about metering.', max_output_tokens: 8 });
    const fr = await st.finalResponse();
    assert.equal(fr.output_text, outText(8));
    assert.equal(rec.seen.length, 2);
    const second = { requestId: rec.seen[1].requestId, usage: JSON.parse(rec.seen[1].usage) };
    assert.equal(fr.usage.input_tokens, second.usage.input);
    await assertMetered(second.requestId, second.usage, 'openai');

    const { direct, via } = await both('/v1/responses', { model: 'gpt-4o-mini', input: 'hi', max_output_tokens: 3, stream: true });
    assert.equal(via.text, direct.text);
  });

  test('anthropic messages with x-api-key, not streamed, with cache reads and writes', async () => {
    const rec = recorder();
    const m = await anthropic(gw.url, rec, { apiKey: key }).messages.create({
      model: 'claude-metering-test',
      max_tokens: 20,
      system: claudeSystem,
      messages: [{ role: 'user', content: 'Hello, Claude. How are you today?' }],
    });
    const { requestId, usage } = rec.only();
    assert.equal(m.content[0].text, outText(20));
    assert.ok(usage.cached > 0 && usage.cache_write > 0);
    assert.equal(m.usage.cache_read_input_tokens, usage.cached);
    await assertMetered(requestId, usage, 'anthropic');
  });

  test('anthropic messages with Authorization: Bearer, streamed (stream helper, finalMessage)', async () => {
    const rec = recorder();
    const s = anthropic(gw.url, rec, { authToken: key }).messages.stream({
      model: 'claude-metering-test',
      max_tokens: 11,
      system: claudeSystem,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Stream me something.' }] }],
    });
    const fm = await s.finalMessage();
    const { requestId, usage } = rec.only();
    assert.equal(fm.content[0].text, outText(11));
    assert.equal(fm.usage.output_tokens, 11);
    // the event counts the final output_tokens (message_delta), not message_start's provisional 1
    await assertMetered(requestId, usage, 'anthropic');

    const { direct, via } = await both('/v1/messages', {
      model: 'claude-metering-test',
      max_tokens: 4,
      messages: [{ role: 'user', content: 'plain' }],
      stream: true,
    });
    assert.equal(via.text, direct.text);
    await assertMetered(via.headers['x-request-id'], JSON.parse(via.headers['x-mock-usage']), 'anthropic');
  });

  test('a model with no price of its own is priced by the "*" fallback and flagged', async () => {
    const rec = recorder();
    await openai(gw.url, rec, key).chat.completions.create({ model: 'brand-new-model', messages: chatMessages, max_tokens: 33 });
    const { requestId, usage } = rec.only();
    const ev = await assertMetered(requestId, usage, 'openai', { flag: 'fallback' });
    assert.ok(ev.cost_micros > 0);
  });

  /** Tokens the gateway could not read: recorded as unknown (NULL), flagged, never guessed. */
  async function assertTokensUnknown(requestId, model) {
    const ev = await waitForEvent(gw, requestId);
    assert.deepEqual(
      [ev.outcome, ev.model, ev.tokens_in, ev.tokens_out, ev.tokens_cached, ev.tokens_cache_write, ev.price_flag, ev.cost_micros],
      ['billable', model, null, null, null, null, 'tokens_unknown', 0],
    );
  }

  test('mock-bad-json: the client gets the upstream bytes as they are; tokens unknown', async () => {
    const { direct, via } = await both('/v1/chat/completions', { model: 'mock-bad-json', messages: chatMessages, max_tokens: 3 });
    assert.equal(via.status, 200);
    assert.throws(() => JSON.parse(direct.text));
    assert.equal(via.text, direct.text);
    await assertTokensUnknown(via.headers['x-request-id'], 'mock-bad-json');

    const s = await both('/v1/chat/completions', {
      model: 'mock-bad-json',
      messages: chatMessages,
      max_tokens: 3,
      stream: true,
      stream_options: { include_usage: true },
    });
    assert.equal(s.via.text, s.direct.text);
    await assertTokensUnknown(s.via.headers['x-request-id'], 'mock-bad-json');

    const a = await both('/v1/messages', { model: 'mock-bad-json', max_tokens: 3, messages: [{ role: 'user', content: 'x' }], stream: true });
    assert.equal(a.via.text, a.direct.text);
    await assertTokensUnknown(a.via.headers['x-request-id'], 'mock-bad-json');
  });

  test('mock-no-usage: no usage in the answer, tokens unknown, nothing invented', async () => {
    const n = await both('/v1/chat/completions', { model: 'mock-no-usage', messages: chatMessages, max_tokens: 3 });
    assert.equal(n.via.text, n.direct.text);
    await assertTokensUnknown(n.via.headers['x-request-id'], 'mock-no-usage');

    // streamed without include_usage: the gateway asks for usage, none comes, nothing is stripped wrongly
    const s = await both('/v1/chat/completions', { model: 'mock-no-usage', messages: chatMessages, max_tokens: 3, stream: true });
    assert.equal(s.via.text, s.direct.text);
    assert.equal(parseSse(s.via.text).at(-1).data, '[DONE]');
    await assertTokensUnknown(s.via.headers['x-request-id'], 'mock-no-usage');

    const a = await both('/v1/messages', { model: 'mock-no-usage', max_tokens: 3, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(a.via.text, a.direct.text);
    await assertTokensUnknown(a.via.headers['x-request-id'], 'mock-no-usage');
  });

  test('an upstream 400 is passed through, recorded as failed and never billed', async () => {
    const rec = recorder();
    await assert.rejects(
      openai(gw.url, rec, key).chat.completions.create({ model: 'mock-error', messages: chatMessages }),
      (e) => e instanceof OpenAI.BadRequestError && /mock-error/.test(e.message),
    );
    const { requestId } = rec.only();
    const ev = await waitForEvent(gw, requestId);
    assert.deepEqual([ev.status, ev.outcome, ev.cost_micros], [400, 'failed', 0]);
  });

  test('without a tenant key the SDK gets 401 and the mock is never asked', async () => {
    const rec = recorder();
    await assert.rejects(
      openai(gw.url, rec, 'tg_not_a_key').chat.completions.create({ model: 'gpt-4o-mini', messages: chatMessages }),
      (e) => e instanceof OpenAI.AuthenticationError,
    );
    assert.equal(rec.only().usage, null, 'no x-mock-usage: the request did not reach the mock');
  });
});
