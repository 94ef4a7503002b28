// Metering edges found by review, each a way a client could be billed wrong or slip past a
// rule: MCP batches priced and rate-limited per call, an MCP body tollgate cannot read
// refused (not forwarded unchecked), an AI body tollgate cannot read still held by token
// limits, and client metadata echoed after the usage of a Responses API answer not taken
// for the usage.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { createTenantKey, request, startGateway, startMcpServer, startMock, waitForEvent, waitForKey, waitLoaded } from './lib/harness.mjs';


let mock, srv, gw;
before(async () => {
  mock = await startMock();
  srv = await startMcpServer({ json: true });
  gw = await startGateway({
    upstreams: [
      { name: 'mock', targets: [mock.url] },
      { name: 'mcpsrv', targets: [`http://127.0.0.1:${srv.port}`] },
    ],
    routes: [
      { name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' },
      { name: 'mcp', path_prefix: '/mcp', upstream: 'mcpsrv', kind: 'mcp' },
    ],
    extra: {
      prices: {
        models: { 'gpt-4o': { input: '2.5', output: '10' } },
        tools: { echo: { call: '0.001' }, add: { call: '1' } },
      },
    },
  });
});
after(async () => {
  await gw?.stop();
  await srv?.stop();
  await mock?.stop();
});

async function mcpSession(secret) {
  const base = { Authorization: `Bearer ${secret}`, 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' };
  const post = (body, headers = {}) =>
    request(`${gw.url}/mcp`, { method: 'POST', headers: { ...base, ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const init = await post({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'edges', version: '1' } } });
  assert.equal(init.status, 200, init.text);
  const h = { 'mcp-session-id': init.headers['mcp-session-id'], 'mcp-protocol-version': '2025-03-26' };
  assert.equal((await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, h)).status, 202);
  return (body) => post(body, h);
}

const call = (id, name, args) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

describe('metering edges', () => {
  test('a batch is priced per tools/call, not as one call to its first tool', async () => {
    const { secret } = await createTenantKey(gw, 'batchprice');
    await waitForKey(gw, secret, '/mcp');
    const post = await mcpSession(secret);
    const r = await post([call(10, 'echo', { text: 'x' }), call(11, 'add', { a: 1, b: 2 }), call(12, 'add', { a: 3, b: 4 })]);
    assert.equal(r.status, 200, r.text);
    const ev = await waitForEvent(gw, r.headers['x-request-id']);
    assert.equal(ev.outcome, 'billable');
    assert.equal(ev.cost_micros, 1000 + 1000000 + 1000000);
  });

  test('a batch is counted against every tool it calls: a rate-limited second tool refuses it', async () => {
    const { secret } = await createTenantKey(gw, 'batchrate');
    await waitForKey(gw, secret, '/mcp');
    assert.equal((await gw.cli(['limit', 'set', '--tenant', 'batchrate', '--tool', 'add', '--rpm', '1'])).code, 0);
    await waitLoaded(gw);
    const post = await mcpSession(secret);
    const before = await srv.stats();
    const ok = await post([call(20, 'echo', { text: 'a' }), call(21, 'add', { a: 1, b: 1 })]);
    assert.equal(ok.status, 200, ok.text);
    const refused = await post([call(22, 'echo', { text: 'b' }), call(23, 'add', { a: 2, b: 2 })]);
    assert.equal(refused.status, 429, refused.text);
    const after = await srv.stats();
    assert.equal((after.add ?? 0) - (before.add ?? 0), 1, 'the refused batch never reached the server');
    const ev = await waitForEvent(gw, refused.headers['x-request-id']);
    assert.deepEqual([ev.outcome, ev.reason], ['rejected', 'rate_limited']);
  });

  test('an MCP body tollgate cannot read is refused with a JSON-RPC parse error', async () => {
    const { secret } = await createTenantKey(gw, 'badbody');
    await waitForKey(gw, secret, '/mcp');
    assert.equal((await gw.cli(['tool', 'deny', '--tenant', 'badbody', 'add'])).code, 0);
    await waitLoaded(gw);
    const post = await mcpSession(secret);
    const before = await srv.stats();
    // Valid JSON for most parsers, but an integer beyond 64 bits: the call must not be
    // forwarded unchecked past the deny rule.
    const r = await post('{"jsonrpc":"2.0","id":30,"method":"tools/call","params":{"name":"add","arguments":{"a":123456789012345678901234567890,"b":1}}}');
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json().error.code, -32700);
    assert.equal((await srv.stats()).add ?? 0, before.add ?? 0);
    const ev = await waitForEvent(gw, r.headers['x-request-id']);
    assert.deepEqual([ev.outcome, ev.reason], ['rejected', 'malformed_request']);
    // A NUL escape is readable (JSON_ALLOW_NUL): the deny rule is applied to it.
    const nul = await post('{"jsonrpc":"2.0","id":31,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2,"x":"\\u0000"}}}');
    assert.equal(nul.status, 403, nul.text);
  });

  test('an AI body tollgate cannot read is still held by the token limit', async () => {
    const { secret } = await createTenantKey(gw, 'badai');
    await waitForKey(gw, secret, '/v1/models');
    assert.equal((await gw.cli(['limit', 'set', '--tenant', 'badai', '--tpm', '100'])).code, 0);
    await waitLoaded(gw);
    const headers = { authorization: `Bearer ${secret}`, 'content-type': 'application/json' };
    const body = '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":16,"n":123456789012345678901234567890}';
    const first = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers, body });
    // Reserved at the worst case (body bytes + defaults.max_output_tokens), over the limit.
    const second = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers, body });
    assert.notEqual(first.status, 429);
    assert.equal(second.status, 429, 'the first, unreadable, request was counted');
  });

  test('client metadata after the usage of a Responses API answer is not taken for the usage', async () => {
    const { secret } = await createTenantKey(gw, 'spoof');
    await waitForKey(gw, secret, '/v1/models');
    const headers = { authorization: `Bearer ${secret}`, 'content-type': 'application/json' };
    const plain = await request(`${gw.url}/v1/responses`, { method: 'POST', headers, body: JSON.stringify({ model: 'gpt-4o', input: 'hi', max_output_tokens: 8 }) });
    assert.equal(plain.status, 200, plain.text);
    const answer = plain.json();
    // The API (and the mock) echo the request's metadata after the usage.
    const spoofBody = { model: 'gpt-4o', input: 'hi', max_output_tokens: 8, metadata: { usage: { input_tokens: 0, output_tokens: 0 } } };
    const spoof = await request(`${gw.url}/v1/responses`, { method: 'POST', headers, body: JSON.stringify(spoofBody) });
    assert.equal(spoof.status, 200, spoof.text);
    assert.match(spoof.text, /"usage":\{.*"metadata":\{"usage":\{"input_tokens":0/s, 'the spoof follows the real usage');
    const a = await waitForEvent(gw, plain.headers['x-request-id']);
    const b = await waitForEvent(gw, spoof.headers['x-request-id']);
    assert.equal(a.tokens_in, answer.usage.input_tokens);
    assert.equal(b.tokens_in, spoof.json().usage.input_tokens);
    assert.equal(b.tokens_out, spoof.json().usage.output_tokens);
    assert.ok(b.cost_micros > 0);

    // The same in an answer over 4 MiB (the echoed metadata makes it so): it is read as it
    // passes, whole, so the top-level usage still counts and the echo does not.
    const bigBody = { ...spoofBody, metadata: { pad: 'x'.repeat(5 << 20), usage: { input_tokens: 0, output_tokens: 0 } } };
    const big = await request(`${gw.url}/v1/responses`, { method: 'POST', headers, body: JSON.stringify(bigBody) });
    assert.equal(big.status, 200, big.text.slice(0, 200));
    assert.ok(big.text.length > 5 << 20, 'the answer carries the echo');
    assert.match(big.text, /"usage":\{.*"metadata":\{"pad":"x+","usage":\{"input_tokens":0/s);
    const c = await waitForEvent(gw, big.headers['x-request-id']);
    assert.equal(c.tokens_in, big.json().usage.input_tokens);
    assert.ok(c.tokens_in > 0);
    assert.equal(c.tokens_out, big.json().usage.output_tokens);
  });
});
