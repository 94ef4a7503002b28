// Ways a request could escape its meter or its limits (issue 9, section 3), each a
// regression test that failed on the gateway before the fix: an MCP batch billed by each
// call's own result, nested batches and cut tool names refused, a client that leaves a 2xx
// AI answer still paying what the upstream served, model names matched whatever their
// spelling or snapshot, and endpoints tollgate does not recognise still metered.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { createTenantKey, request, startGateway, startMcpServer, startMock, waitForEvent as waitForRow, waitForKey, waitLoaded } from './lib/harness.mjs';

/** The event, with the store's NULL for an empty reason or price flag read as ''. */
const waitForEvent = async (g, id) => {
  const ev = await waitForRow(g, id);
  for (const k of ['reason', 'price_flag']) ev[k] ??= '';
  return ev;
};

let mock, srv, gw, gwShort, upstreams, routes, prices;
before(async () => {
  mock = await startMock();
  srv = await startMcpServer({ json: true });
  upstreams = [
    { name: 'mock', targets: [mock.url] },
    { name: 'mcpsrv', targets: [`http://127.0.0.1:${srv.port}`] },
  ];
  routes = [
    { name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' },
    { name: 'mcp', path_prefix: '/mcp', upstream: 'mcpsrv', kind: 'mcp' },
  ];
  prices = {
    models: { 'gpt-4o-mini': { input: '0.15', output: '0.6' }, 'gpt-4o': { input: '2.5', output: '10' } },
    tools: { echo: { call: '0.001' }, add: { call: '1' }, fail: { call: '5' } },
  };
  gw = await startGateway({ upstreams, routes, extra: { prices } });
});
after(async () => {
  await gw?.stop();
  await gwShort?.stop();
  await srv?.stop();
  await mock?.stop();
});

async function mcpSession(secret) {
  const base = { Authorization: `Bearer ${secret}`, 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' };
  const post = (body, headers = {}) =>
    request(`${gw.url}/mcp`, { method: 'POST', headers: { ...base, ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const init = await post({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'bypass', version: '1' } } });
  assert.equal(init.status, 200, init.text);
  const h = { 'mcp-session-id': init.headers['mcp-session-id'], 'mcp-protocol-version': '2025-03-26' };
  assert.equal((await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, h)).status, 202);
  return (body) => post(body, h);
}

const call = (id, name, args) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

/** Micro-USD of tokens at micro-USD-per-million prices, rounded half up once (price.h). */
const tokenCost = (inTok, outTok, inPrice, outPrice) => Math.floor((inTok * inPrice + outTok * outPrice + 500000) / 1000000);

/**
 * A raw HTTP/1.1 client that sends one request, reads the answer until until(text) holds,
 * then closes the socket (a client leaving mid-answer). Resolves with the head's headers.
 */
function leaveEarly(gateway, { path, secret, body, headers = {}, until }) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(gateway.port, '127.0.0.1');
    let text = '';
    sock.setEncoding('latin1');
    sock.on('connect', () => {
      const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      sock.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\nContent-Type: application/json\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    });
    sock.on('data', (d) => {
      text += d;
      const end = text.indexOf('\r\n\r\n');
      if (end < 0 || !until(text.slice(end + 4))) return;
      const hdrs = {};
      for (const line of text.slice(0, end).split('\r\n').slice(1)) {
        const i = line.indexOf(':');
        hdrs[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      sock.destroy();
      resolve({ status: Number(text.slice(9, 12)), headers: hdrs, body: text.slice(end + 4) });
    });
    sock.on('error', reject);
    sock.on('close', () => reject(new Error(`closed before the condition: ${text.slice(0, 300)}`)));
  });
}

describe('MCP batches', () => {
  test('a batch of three good calls and an unknown method bills the three (partial), not nothing', async () => {
    const { secret } = await createTenantKey(gw, 'mixed');
    await waitForKey(gw, secret, '/mcp');
    const post = await mcpSession(secret);
    const r = await post([
      call(10, 'echo', { text: 'x' }),
      call(11, 'add', { a: 1, b: 2 }),
      call(12, 'add', { a: 3, b: 4 }),
      { jsonrpc: '2.0', id: 13, method: 'no/such_method', params: {} },
    ]);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().filter((m) => m.result).length, 3, r.text);
    const ev = await waitForEvent(gw, r.headers['x-request-id']);
    assert.deepEqual([ev.outcome, ev.reason], ['billable', 'partial:3/4']);
    assert.equal(ev.cost_micros, 1000 + 1000000 + 1000000);
    assert.equal(ev.tool, 'echo');
  });

  test('a call whose tool failed is not billed; the others in its batch are', async () => {
    const { secret } = await createTenantKey(gw, 'mixedfail');
    await waitForKey(gw, secret, '/mcp');
    const post = await mcpSession(secret);
    const r = await post([call(20, 'fail', {}), call(21, 'add', { a: 1, b: 1 })]);
    assert.equal(r.status, 200, r.text);
    const ev = await waitForEvent(gw, r.headers['x-request-id']);
    assert.deepEqual([ev.outcome, ev.reason, ev.cost_micros], ['billable', 'partial:1/2', 1000000]);
  });

  test('a nested batch is a JSON-RPC invalid request, never a way around the tool rules', async () => {
    const { secret } = await createTenantKey(gw, 'nested');
    await waitForKey(gw, secret, '/mcp');
    assert.equal((await gw.cli(['tool', 'deny', '--tenant', 'nested', 'secret_admin'])).code, 0);
    await waitLoaded(gw);
    const post = await mcpSession(secret);
    const before = await srv.stats();
    const r = await post([[call(30, 'secret_admin', {})]]);
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json().error.code, -32600);
    assert.equal((await srv.stats()).secret_admin ?? 0, before.secret_admin ?? 0);
    const ev = await waitForEvent(gw, r.headers['x-request-id']);
    assert.deepEqual([ev.outcome, ev.reason], ['rejected', 'malformed_request']);
  });

  test('a tool name with a NUL inside is refused, not cut to an allowed name', async () => {
    const { secret } = await createTenantKey(gw, 'nulname');
    await waitForKey(gw, secret, '/mcp');
    assert.equal((await gw.cli(['tool', 'allow', '--tenant', 'nulname', 'echo'])).code, 0);
    await waitLoaded(gw);
    const post = await mcpSession(secret);
    const r = await post('{"jsonrpc":"2.0","id":40,"method":"tools/call","params":{"name":"echo\\u0000secret_admin","arguments":{"text":"x"}}}');
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json().error.code, -32600);
    const ev = await waitForEvent(gw, r.headers['x-request-id']);
    assert.deepEqual([ev.outcome, ev.reason], ['rejected', 'malformed_request']);
  });

  test('a tools/call sharing its id with another request (whose result could be credited to it) is refused', async () => {
    const { secret } = await createTenantKey(gw, 'dupid');
    await waitForKey(gw, secret, '/mcp');
    const post = await mcpSession(secret);
    const before = await srv.stats();
    const r = await post([{ jsonrpc: '2.0', id: 50, method: 'tools/list' }, call(50, 'add', { a: 1, b: 2 })]);
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json().error.code, -32600);
    assert.equal((await srv.stats()).add ?? 0, before.add ?? 0);
  });

  test('a tools/call without an id (no answer could bill it) is refused', async () => {
    const { secret } = await createTenantKey(gw, 'noid');
    await waitForKey(gw, secret, '/mcp');
    const post = await mcpSession(secret);
    const before = await srv.stats();
    const r = await post({ jsonrpc: '2.0', method: 'tools/call', params: { name: 'add', arguments: { a: 1, b: 2 } } });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json().error.code, -32600);
    assert.equal((await srv.stats()).add ?? 0, before.add ?? 0);
  });
});

describe('a client that leaves a 2xx AI answer', () => {
  const chat = (max) => JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'tell me a story about a toll gate' }], max_tokens: max, stream: true });

  test('reading 19 of 20 streamed tokens still pays the upstream usage (drained)', async () => {
    const { secret } = await createTenantKey(gw, 'leaver');
    await waitForKey(gw, secret, '/v1/models');
    // The mock stops after the role chunk and 19 tokens for 300 ms: the client has left
    // by then, and the rest (the 20th token, the usage) comes only to tollgate.
    const r = await leaveEarly(gw, {
      path: '/v1/chat/completions',
      secret,
      body: chat(20),
      headers: { 'x-mock-stall-after': '20', 'x-mock-stall-ms': '300' },
      until: (b) => b.includes('tok18 '),
    });
    assert.equal(r.status, 200);
    assert.ok(!r.body.includes('tok19 '));
    const want = JSON.parse(r.headers['x-mock-usage']);
    const ev = await waitForEvent(gw, r.headers['x-request-id']);
    assert.deepEqual([ev.outcome, ev.reason, ev.price_flag], ['billable', 'client_closed', '']);
    assert.deepEqual([ev.tokens_in, ev.tokens_out], [want.input, want.output]);
    assert.equal(want.output, 20);
    assert.equal(ev.cost_micros, tokenCost(want.input, want.output, 150000, 600000));
  });

  test('an upstream that does not finish within ai.drain_after_disconnect is charged an estimate', async () => {
    // The same gateway with a short drain: an upstream that never ends is given up on
    // after 200 ms.
    gwShort = await startGateway({
      upstreams,
      routes: [{ name: 'an', path_prefix: '/v1/messages', upstream: 'mock', kind: 'anthropic' }, ...routes],
      extra: { prices: { ...prices, models: { ...prices.models, 'claude-x': { input: '3', output: '15' } } }, ai: { drain_after_disconnect: '200ms' } },
    });
    const { secret } = await createTenantKey(gwShort, 'leaver2');
    await waitForKey(gwShort, secret, '/v1/models');
    const body = chat(20);
    // Five events (the role chunk and four tokens), then nothing for an hour.
    const r = await leaveEarly(gwShort, {
      path: '/v1/chat/completions',
      secret,
      body,
      headers: { 'x-mock-stall-after': '5', 'x-mock-stall-ms': '3600000' },
      until: (b) => b.includes('tok3 '),
    });
    assert.equal(r.status, 200);
    const ev = await waitForEvent(gwShort, r.headers['x-request-id']);
    assert.deepEqual([ev.outcome, ev.reason, ev.price_flag], ['billable', 'client_closed', 'estimated']);
    const inTok = Math.ceil(Buffer.byteLength(body) / 4);
    assert.deepEqual([ev.tokens_in, ev.tokens_out], [inTok, 5]);
    assert.equal(ev.cost_micros, tokenCost(inTok, 5, 150000, 600000));
    assert.ok(ev.cost_micros > 0);

    // Anthropic: message_start's input count stands; its provisional output count does
    // not, the delivered deltas are counted instead (two: tok0 and tok1).
    const an = JSON.stringify({ model: 'claude-x', messages: [{ role: 'user', content: 'tell me a story' }], max_tokens: 20, stream: true });
    const r2 = await leaveEarly(gwShort, {
      path: '/v1/messages',
      secret,
      body: an,
      headers: { 'x-mock-stall-after': '5', 'x-mock-stall-ms': '3600000' },
      until: (b) => b.includes('tok1 '),
    });
    const want = JSON.parse(r2.headers['x-mock-usage']);
    const ev2 = await waitForEvent(gwShort, r2.headers['x-request-id']);
    assert.deepEqual([ev2.outcome, ev2.reason, ev2.price_flag], ['billable', 'client_closed', 'estimated']);
    assert.deepEqual([ev2.tokens_in, ev2.tokens_out], [want.input, 2]);
    assert.equal(ev2.cost_micros, tokenCost(want.input, 2, 3000000, 15000000));
  });

  test('a non-streamed JSON answer the client abandons halfway still pays its usage', async () => {
    const { secret } = await createTenantKey(gw, 'leaver3');
    await waitForKey(gw, secret, '/v1/models');
    const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello there' }], max_tokens: 40 });
    // The mock sends the head and half the JSON, then waits 300 ms for the rest.
    const r = await leaveEarly(gw, {
      path: '/v1/chat/completions',
      secret,
      body,
      headers: { 'x-mock-stall-after': '1', 'x-mock-stall-ms': '300' },
      until: (b) => b.length > 0,
    });
    assert.equal(r.status, 200);
    const want = JSON.parse(r.headers['x-mock-usage']);
    const ev = await waitForEvent(gw, r.headers['x-request-id']);
    assert.deepEqual([ev.outcome, ev.reason, ev.price_flag], ['billable', 'client_closed', '']);
    assert.deepEqual([ev.tokens_in, ev.tokens_out], [want.input, want.output]);
    assert.equal(ev.cost_micros, tokenCost(want.input, want.output, 2500000, 10000000));
  });
});

describe('a client that leaves before the answer', () => {
  test('an admitted AI call whose client left before the head is still billed when it answers 2xx', async () => {
    const { secret } = await createTenantKey(gw, 'leaver4');
    await waitForKey(gw, secret, '/v1/models');
    const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello there' }], max_tokens: 30 });
    // The mock answers after 300 ms; the client sends its request and closes at once.
    const sock = net.connect(gw.port, '127.0.0.1');
    await new Promise((resolve, reject) => {
      sock.on('error', reject);
      sock.on('connect', () => {
        sock.end(`POST /v1/chat/completions?delay_ms=300 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\nContent-Type: application/json\r\nx-request-id: left-before-head\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, resolve);
      });
    });
    sock.destroy();
    const ev = await waitForEvent(gw, 'left-before-head');
    assert.deepEqual([ev.outcome, ev.reason, ev.status, ev.price_flag], ['billable', 'client_closed', 200, '']);
    assert.equal(ev.tokens_out, 30);
    assert.ok(ev.cost_micros > 0);
  });
});

describe('a client that stops reading a 2xx AI answer', () => {
  test('is cut off after idle_timeout and still pays: the upstream is drained, or the answer estimated', async () => {
    // Its own gateway: a short idle_timeout (the patience for a client that reads nothing).
    const g = await startGateway({ upstreams, routes, extra: { prices, server: { idle_timeout: '1s' } } });
    try {
      const { secret } = await createTenantKey(g, 'staller');
      await waitForKey(g, secret, '/v1/models');
      const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], max_tokens: 400 });
      // A 32 MiB answer (more than the kernel's socket buffers hold) to a client that reads
      // nothing: tollgate's queue for it stops moving, and idle_timeout cuts it off.
      const sock = net.connect(g.port, '127.0.0.1');
      sock.on('error', () => {});
      await new Promise((resolve) => sock.on('connect', resolve));
      sock.pause();
      sock.write(
        `POST /v1/something-new?size=33554432 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\n` +
          `Content-Type: application/json\r\nx-request-id: stalled-1\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      const ev = await waitForEvent(g, 'stalled-1');
      sock.destroy();
      // Before: failed, reason client_stalled, cost 0 (a free answer for a client that stops
      // reading instead of closing).
      assert.deepEqual([ev.outcome, ev.reason, ev.status, ev.price_flag], ['billable', 'client_stalled', 200, 'estimated']);
      assert.equal(ev.tokens_out, 400, 'output estimated up to the request\'s max_tokens');
      assert.equal(ev.cost_micros, tokenCost(ev.tokens_in, 400, 2500000, 10000000));
    } finally {
      await g.stop();
    }
  });
});

describe('model names', () => {
  const ask = (secret, model, max = 16) =>
    request(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: max }),
    });

  test('another case and a dated snapshot are priced as the model (no fallback row needed)', async () => {
    const { secret } = await createTenantKey(gw, 'spelling');
    await waitForKey(gw, secret, '/v1/models');
    for (const model of ['GPT-4o-mini', 'gpt-4o-mini-2024-07-18', 'gpt-4o-mini@2024-07-18', 'gpt-4o-mini:ft']) {
      const r = await ask(secret, model);
      assert.equal(r.status, 200, r.text);
      const want = JSON.parse(r.headers['x-mock-usage']);
      const ev = await waitForEvent(gw, r.headers['x-request-id']);
      assert.equal(ev.price_flag, '', model);
      assert.equal(ev.cost_micros, tokenCost(want.input, want.output, 150000, 600000), model);
      assert.ok(ev.cost_micros > 0, model);
    }
  });

  test('a token limit on a model holds its other spellings and snapshots', async () => {
    const { secret } = await createTenantKey(gw, 'modellim');
    await waitForKey(gw, secret, '/v1/models');
    assert.equal((await gw.cli(['limit', 'set', '--tenant', 'modellim', '--model', 'gpt-4o-mini', '--tpm', '1000'])).code, 0);
    await waitLoaded(gw);
    // The first answer's 2000 tokens are more than the minute allows: the next request is
    // refused whatever it calls the model.
    assert.equal((await ask(secret, 'gpt-4o-mini', 2000)).status, 200);
    for (const model of ['gpt-4o-mini', 'GPT-4o-mini', 'gpt-4o-mini-2024-07-18', 'Gpt-4o-Mini@x']) {
      const r = await ask(secret, model, 16);
      assert.equal(r.status, 429, `${model}: ${r.text}`);
      assert.equal(JSON.parse(r.text).error.type, 'rate_limited');
    }
    // Another model is not held by it.
    assert.equal((await ask(secret, 'gpt-4o', 16)).status, 200);
  });

  test('a request-rate limit on a model (limit set --model M --rpm N) holds it, in every spelling', async () => {
    const { secret } = await createTenantKey(gw, 'modelrpm');
    await waitForKey(gw, secret, '/v1/models');
    assert.equal((await gw.cli(['limit', 'set', '--tenant', 'modelrpm', '--model', 'gpt-4o', '--rpm', '2'])).code, 0);
    await waitLoaded(gw);
    assert.equal((await ask(secret, 'gpt-4o')).status, 200);
    assert.equal((await ask(secret, 'GPT-4o-2024-08-06')).status, 200);
    const r = await ask(secret, 'gpt-4o@x');
    assert.equal(r.status, 429, r.text);
    assert.equal(r.headers['ratelimit-policy'], '"model";q=2;w=60');
    assert.equal((await ask(secret, 'gpt-4o-mini')).status, 200);
  });

  test('on a budgeted tenant a model with no price (and no "*" price) is refused, not free', async () => {
    const { secret } = await createTenantKey(gw, 'unpriced');
    await waitForKey(gw, secret, '/v1/models');
    assert.equal((await gw.cli(['budget', 'set', '--tenant', 'unpriced', '--monthly', '10'])).code, 0);
    await waitLoaded(gw);
    const r = await ask(secret, 'mystery-model');
    assert.equal(r.status, 400, r.text);
    assert.equal(JSON.parse(r.text).error.type, 'model_not_priced');
    const ev = await waitForEvent(gw, r.headers['x-request-id']);
    assert.deepEqual([ev.outcome, ev.reason], ['rejected', 'model_not_priced']);
    // A priced model (by its snapshot's base) still goes through.
    assert.equal((await ask(secret, 'gpt-4o-mini-2024-07-18')).status, 200);
  });
});

describe('endpoints tollgate does not recognise on an AI route', () => {
  test('are held by the token limit and charged on an estimate when the answer has no usage', async () => {
    const { secret } = await createTenantKey(gw, 'unknownep');
    await waitForKey(gw, secret, '/v1/models');
    assert.equal((await gw.cli(['limit', 'set', '--tenant', 'unknownep', '--tpm', '1000'])).code, 0);
    await waitLoaded(gw);
    const headers = { authorization: `Bearer ${secret}`, 'content-type': 'application/json' };
    const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], max_tokens: 400 });
    // (A trailing "/" or ";a=b" no longer hides the chat endpoint: gateway/target.c. These
    // paths are not ones tollgate meters.)
    for (const path of ['/v1/chat/completionsx', '/v1/chat/completions/extra', '/v1/something-new']) {
      const r = await request(`${gw.url}${path}`, { method: 'POST', headers, body });
      assert.equal(r.status, 200, `${path}: ${r.text}`);
      const ev = await waitForEvent(gw, r.headers['x-request-id']);
      assert.deepEqual([ev.outcome, ev.reason, ev.price_flag], ['billable', 'endpoint_unknown', 'estimated'], path);
      // In: a token per 4 bytes of the body; out: a token per 4 bytes of {"ok":true}.
      assert.deepEqual([ev.tokens_in, ev.tokens_out], [Math.ceil(Buffer.byteLength(body) / 4), 3], path);
      assert.equal(ev.cost_micros, tokenCost(ev.tokens_in, 3, 2500000, 10000000), path);
    }
    // An answer of 8000 bytes is estimated at 2000 tokens (the request named no maximum):
    // more than the tenant's minute, so the next request is refused.
    const noMax = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
    const big = await request(`${gw.url}/v1/something-new?size=8000`, { method: 'POST', headers, body: noMax });
    assert.equal(big.status, 200);
    assert.equal((await waitForEvent(gw, big.headers['x-request-id'])).tokens_out, 2000);
    const next = await request(`${gw.url}/v1/something-new`, { method: 'POST', headers, body });
    assert.equal(next.status, 429, next.text);
    assert.equal(JSON.parse(next.text).error.type, 'rate_limited');
  });

  test('are metered from the usage object when the answer carries one', async () => {
    const { secret } = await createTenantKey(gw, 'unknownep2');
    await waitForKey(gw, secret, '/v1/models');
    // /v1/messages is not an OpenAI endpoint; the mock answers it with Anthropic's usage.
    const r = await request(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }], max_tokens: 12 }),
    });
    assert.equal(r.status, 200, r.text);
    const want = JSON.parse(r.headers['x-mock-usage']);
    const ev = await waitForEvent(gw, r.headers['x-request-id']);
    assert.deepEqual([ev.outcome, ev.reason, ev.price_flag], ['billable', 'endpoint_unknown', '']);
    assert.deepEqual([ev.tokens_in, ev.tokens_out], [want.input, want.output]);
    assert.equal(ev.cost_micros, tokenCost(want.input, want.output, 2500000, 10000000));
  });

  test('a body-less request (GET /v1/models) is not an AI call: no estimate, no flag', async () => {
    const { secret } = await createTenantKey(gw, 'models');
    await waitForKey(gw, secret, '/v1/models');
    const r = await request(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${secret}` } });
    assert.equal(r.status, 200);
    const ev = await waitForEvent(gw, r.headers['x-request-id']);
    assert.deepEqual([ev.outcome, ev.reason, ev.price_flag, ev.cost_micros], ['billable', '', '', 0]);
  });
});
