// Compressed answers: the client gets exactly the bytes the upstream sent (Content-Encoding
// and body untouched), and the meter reads a decoded copy, so the event has the upstream's
// exact tokens, or, when the answer cannot be decoded, the documented price_flag
// (coding_unknown, decode_error, decode_cap) instead of passing as an unreadable free answer.
//
// The mock compresses as Accept-Encoding allows; x-mock-encoding forces a coding (also on
// streams, flushed event by event), x-mock-pad makes a JSON answer N bytes longer decoded
// (tests/mock/upstream.c). "Exact bytes" is checked against the same request sent straight
// to the mock: its answers are a pure function of the request.
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';

import { createTenantKey, curl, request, sha256, startGateway, startMcpServer, startMock, waitForEvent, waitForKey } from './lib/harness.mjs';

const PRICES = { 'gpt-4o-mini': { input: '0.15', output: '0.6' }, 'claude-metering-test': { input: '3', output: '15' } };
const CODINGS = ['gzip', 'deflate', 'deflate-raw', 'br', 'zstd'];

let mock, gw, key;
before(async () => {
  mock = await startMock({ compress: true });
  gw = await startGateway({
    upstreams: [{ name: 'mock', targets: [mock.url] }],
    routes: [
      { name: 'claude', path_prefix: '/v1/messages', upstream: 'mock', kind: 'anthropic' },
      { name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' },
    ],
    extra: { prices: { models: PRICES } },
  });
  ({ secret: key } = await createTenantKey(gw, 'zip'));
  await waitForKey(gw, key, '/v1/models');
});
after(async () => {
  await gw?.stop();
  await mock?.stop();
});

const chat = (extra = {}) =>
  JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'How many tokens is this, exactly?' }], max_tokens: 7, ...extra });
const claude = (extra = {}) =>
  JSON.stringify({ model: 'claude-metering-test', max_tokens: 5, messages: [{ role: 'user', content: 'Hi there, Claude' }], ...extra });

/** POST through the gateway and, with upstreamBody, the same straight to the mock (the body the
 * gateway forwards: with include_usage added to a chat stream). Neither is decoded. */
async function both(path, body, headers, upstreamBody = body) {
  const h = { 'Content-Type': 'application/json', ...headers };
  const viaGw = await request(`${gw.url}${path}`, { method: 'POST', headers: { ...h, Authorization: `Bearer ${key}` }, body });
  const direct = await request(`${mock.url}${path}`, { method: 'POST', headers: h, body: upstreamBody });
  return { viaGw, direct };
}

/** The client got the upstream's answer byte for byte, with its Content-Encoding. */
function assertSameBytes({ viaGw, direct }, coding) {
  assert.equal(viaGw.status, direct.status, viaGw.text.slice(0, 200));
  assert.equal(viaGw.headers['content-encoding'], direct.headers['content-encoding']);
  if (coding) assert.equal(viaGw.headers['content-encoding'], coding);
  assert.equal(viaGw.body.length, direct.body.length);
  assert.equal(sha256(viaGw.body), sha256(direct.body));
}

/** The event: billable, the mock's exact tokens, priced (cost > 0), no flag. */
async function assertExact(res) {
  const u = JSON.parse(res.headers['x-mock-usage']);
  const ev = await waitForEvent(gw, res.headers['x-request-id']);
  assert.deepEqual(
    [ev.outcome, ev.model?.startsWith(u.model.slice(0, 6)), ev.tokens_in, ev.tokens_out, ev.tokens_cached, ev.price_flag],
    ['billable', true, u.input, u.output, u.cached, null],
  );
  assert.ok(ev.cost_micros > 0, `cost ${ev.cost_micros}`);
  return ev;
}

async function assertFlagged(res, flag) {
  const ev = await waitForEvent(gw, res.headers['x-request-id']);
  assert.deepEqual([ev.outcome, ev.status, ev.tokens_in, ev.tokens_out, ev.price_flag], ['billable', 200, null, null, flag]);
  return ev;
}

const decoders = {
  gzip: zlib.gunzipSync,
  deflate: (b) => {
    try {
      return zlib.inflateSync(b);
    } catch {
      return zlib.inflateRawSync(b);
    }
  },
  br: zlib.brotliDecompressSync,
};

describe('compressed answers through the gateway', () => {
  test('curl --compressed: the mock compresses, curl decodes, the event has exact tokens', async () => {
    const r = await curl([
      '-s', '-S', '--compressed', '-D', '-', '-H', `Authorization: Bearer ${key}`, '-H', 'Content-Type: application/json',
      '--data-binary', chat(), `${gw.url}/v1/chat/completions`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const [head, body] = r.stdout.split('\r\n\r\n');
    assert.match(head, /^HTTP\/1\.1 200/);
    const ce = /\r\ncontent-encoding: (\S+)/i.exec(head)?.[1];
    assert.ok(['gzip', 'br', 'zstd', 'deflate'].includes(ce), `compressed answer (${ce})`);
    const usage = JSON.parse(/\r\nx-mock-usage: (.*)/i.exec(head)[1]);
    const json = JSON.parse(body);
    assert.deepEqual([json.usage.prompt_tokens, json.usage.completion_tokens], [usage.input, usage.output]);
    await assertExact({ headers: { 'x-mock-usage': JSON.stringify(usage), 'x-request-id': /\r\nx-request-id: (\S+)/i.exec(head)[1] } });
  });

  for (const coding of CODINGS) {
    const label = coding === 'deflate-raw' ? 'deflate' : coding;
    test(`${coding}: a JSON answer passes byte for byte and is metered exactly`, async () => {
      const res = await both('/v1/chat/completions', chat(), { 'x-mock-encoding': coding, 'Accept-Encoding': 'gzip, deflate, br, zstd' });
      assertSameBytes(res, label);
      if (decoders[label]) assert.equal(JSON.parse(decoders[label](res.viaGw.body)).object, 'chat.completion');
      await assertExact(res.viaGw);
    });

    test(`${coding}: an OpenAI stream tollgate would rewrite passes unrewritten and is metered exactly`, async () => {
      // The client did not ask for usage; tollgate added include_usage and asked for identity,
      // but this upstream compresses anyway: the stream cannot be rewritten, so it passes as
      // the upstream sent it (usage chunk included) and the meter reads the decoded copy.
      const res = await both('/v1/chat/completions', chat({ stream: true }), { 'x-mock-encoding': coding },
        chat({ stream: true, stream_options: { include_usage: true } }));
      assertSameBytes(res, label);
      await assertExact(res.viaGw);
    });

    test(`${coding}: an Anthropic answer and stream are metered exactly`, async () => {
      const json = await both('/v1/messages', claude(), { 'x-mock-encoding': coding, 'anthropic-version': '2023-06-01' });
      assertSameBytes(json, label);
      await assertExact(json.viaGw);
      const sse = await both('/v1/messages', claude({ stream: true }), { 'x-mock-encoding': coding, 'anthropic-version': '2023-06-01' });
      assertSameBytes(sse, label);
      assert.match(sse.viaGw.headers['content-type'], /^text\/event-stream/);
      await assertExact(sse.viaGw);
    });
  }

  test('Accept-Encoding chooses the coding, as the providers do: each one metered exactly', async () => {
    for (const ae of ['gzip, deflate', 'br', 'zstd', 'deflate', 'zstd;q=1, gzip;q=0.5']) {
      const res = await both('/v1/chat/completions', chat(), { 'Accept-Encoding': ae });
      assertSameBytes(res);
      assert.ok(res.viaGw.headers['content-encoding'], `compressed for ${ae}`);
      await assertExact(res.viaGw);
    }
  });

  test('a large answer under the cap (1 MiB of whitespace, 1 KiB on the wire) is metered exactly', async () => {
    const res = await both('/v1/chat/completions', chat(), { 'x-mock-encoding': 'gzip', 'x-mock-pad': String(1 << 20) });
    assertSameBytes(res, 'gzip');
    assert.ok(res.viaGw.body.length < 8192);
    await assertExact(res.viaGw);
  });

  test('an unknown coding is passed through untouched and flagged coding_unknown', async () => {
    // The mock only labels its plain JSON: read as it is, the tokens still count.
    const res = await both('/v1/chat/completions', chat(), { 'x-mock-encoding': 'x-custom' });
    assertSameBytes(res, 'x-custom');
    assert.equal(JSON.parse(res.viaGw.text).object, 'chat.completion');
    const u = JSON.parse(res.viaGw.headers['x-mock-usage']);
    const ev = await waitForEvent(gw, res.viaGw.headers['x-request-id']);
    assert.deepEqual([ev.outcome, ev.tokens_in, ev.tokens_out, ev.price_flag], ['billable', u.input, u.output, 'coding_unknown']);
    assert.ok(ev.cost_micros > 0);
    // Really encoded in a coding tollgate does not decode (gzip bytes labelled x-zip, or four
    // stacked codings, more than it undoes): not read, tokens unknown, flagged.
    for (const label of ['x-zip', 'gzip, gzip, gzip, gzip']) {
      const r = await both('/v1/chat/completions', chat(), { 'x-mock-encoding': `gzip-as-${label}` });
      assertSameBytes(r, label);
      await assertFlagged(r.viaGw, 'coding_unknown');
    }
  });

  test('a corrupt gzip body is passed through untouched and flagged decode_error', async () => {
    const res = await both('/v1/chat/completions', chat(), { 'x-mock-encoding': 'gzip-corrupt' });
    assertSameBytes(res, 'gzip');
    assert.throws(() => zlib.gunzipSync(res.viaGw.body));
    await assertFlagged(res.viaGw, 'decode_error');
  });

  test('the client cannot invite a coding the meter cannot read: Accept-Encoding is narrowed', async () => {
    // GET /v1/models?echo=1 is on the metered route; the mock echoes what it received.
    const r = await request(`${gw.url}/v1/models?echo=1`, {
      headers: { Authorization: `Bearer ${key}`, 'Accept-Encoding': 'compress, x-foo;q=1, gzip;q=0.5, *' },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().headers['accept-encoding'], 'gzip;q=0.5');
    const none = await request(`${gw.url}/v1/models?echo=1`, { headers: { Authorization: `Bearer ${key}`, 'Accept-Encoding': 'compress' } });
    assert.equal(none.json().headers['accept-encoding'], 'identity');
    const refusal = await request(`${gw.url}/v1/models?echo=1`, { headers: { Authorization: `Bearer ${key}`, 'Accept-Encoding': 'compress, identity;q=0' } });
    assert.equal(refusal.json().headers['accept-encoding'], 'identity');
    // Without the header any coding would be acceptable (RFC 9110): tollgate asks for identity.
    const absent = await request(`${gw.url}/v1/models?echo=1`, { headers: { Authorization: `Bearer ${key}` } });
    assert.equal(absent.json().headers['accept-encoding'], 'identity');
  });
});

describe('decompression bombs', () => {
  let small;
  before(async () => {
    small = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' }],
      // (the cap is never below 3 x max_body + 4 MiB: 4.2 MiB here)
      extra: { server: { max_decoded_body: '1m', max_body: '64k' }, prices: { models: PRICES } },
    });
    await createTenantKey(small, 'zip');
  });
  after(async () => {
    await small?.stop();
  });

  test('an answer decoding past server.max_decoded_body is forwarded whole and flagged decode_cap', async () => {
    const { secret } = await createTenantKey(small, 'bomb');
    await waitForKey(small, secret, '/v1/models');
    const headers = { 'Content-Type': 'application/json', 'x-mock-encoding': 'gzip', 'x-mock-pad': String(64 << 20) };
    const viaGw = await request(`${small.url}/v1/chat/completions`, { method: 'POST', headers: { ...headers, Authorization: `Bearer ${secret}` }, body: chat() });
    const direct = await request(`${mock.url}/v1/chat/completions`, { method: 'POST', headers, body: chat() });
    assertSameBytes({ viaGw, direct }, 'gzip');
    assert.ok(viaGw.body.length < (1 << 20), `${viaGw.body.length} bytes on the wire`);
    const ev = await waitForEvent(small, viaGw.headers['x-request-id']);
    assert.deepEqual([ev.outcome, ev.tokens_in, ev.price_flag], ['billable', null, 'decode_cap']);
    // The gateway is still there and still meters.
    const after = await request(`${small.url}/v1/chat/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', 'Accept-Encoding': 'gzip', Authorization: `Bearer ${secret}` }, body: chat(),
    });
    assert.equal(after.status, 200);
    const ev2 = await waitForEvent(small, after.headers['x-request-id']);
    assert.equal(ev2.tokens_in, JSON.parse(after.headers['x-mock-usage']).input);
  });
});

describe('an Accept-Encoding set by the operator', () => {
  let ogw;
  before(async () => {
    ogw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url], headers: { 'Accept-Encoding': 'br' } }],
      routes: [{ name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' }],
      extra: { prices: { models: PRICES } },
    });
  });
  after(async () => {
    await ogw?.stop();
  });

  test('is sent once, as configured, and its answers are metered', async () => {
    const { secret } = await createTenantKey(ogw, 'op');
    await waitForKey(ogw, secret, '/v1/models');
    const echo = await request(`${ogw.url}/v1/models?echo=1`, { headers: { Authorization: `Bearer ${secret}` } });
    assert.equal(echo.json().headers['accept-encoding'], 'br'); // not "identity, br"
    const r = await request(`${ogw.url}/v1/chat/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${secret}` }, body: chat(),
    });
    assert.equal(r.headers['content-encoding'], 'br');
    const ev = await waitForEvent(ogw, r.headers['x-request-id']);
    assert.equal(ev.tokens_out, JSON.parse(r.headers['x-mock-usage']).output);
  });
});

const unzip = { gzip: zlib.gunzipSync, deflate: zlib.inflateSync, 'deflate-raw': zlib.inflateRawSync, br: zlib.brotliDecompressSync };

for (const kind of ['sse', 'json']) {
  describe(`compressed MCP answers (${kind})`, () => {
    let srv, mgw, secret;
    before(async () => {
      srv = await startMcpServer({ json: kind === 'json', compress: true });
      mgw = await startGateway({
        upstreams: [{ name: 'mcpsrv', targets: [`http://127.0.0.1:${srv.port}`] }],
        routes: [{ name: 'mcp', path_prefix: '/mcp', upstream: 'mcpsrv', kind: 'mcp' }],
        extra: { prices: { tools: { echo: { call: '0.5' } } } },
      });
      ({ secret } = await createTenantKey(mgw, 'zipmcp'));
      await waitForKey(mgw, secret, '/mcp');
    });
    after(async () => {
      await mgw?.stop();
      await srv?.stop();
    });

    for (const coding of ['gzip', 'deflate', 'deflate-raw', 'br']) {
      test(`${coding}: results read from the decoded copy, billed per result`, async () => {
        const base = { Authorization: `Bearer ${secret}`, 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', 'x-mock-encoding': coding };
        const post = (body, h = {}) => request(`${mgw.url}/mcp`, { method: 'POST', headers: { ...base, ...h }, body: JSON.stringify(body) });
        const init = await post({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'zip', version: '1' } } });
        assert.equal(init.status, 200, init.text);
        const h = { 'mcp-session-id': init.headers['mcp-session-id'], 'mcp-protocol-version': '2025-03-26' };
        assert.equal((await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, h)).status, 202);
        const ok = await post({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'zipped' } } }, h);
        assert.equal(ok.status, 200);
        assert.equal(ok.headers['content-encoding'], coding === 'deflate-raw' ? 'deflate' : coding);
        assert.match(unzip[coding](ok.body).toString(), /"text":"zipped"/); // the client's bytes decode
        const ev = await waitForEvent(mgw, ok.headers['x-request-id']);
        assert.deepEqual([ev.outcome, ev.reason, ev.tool, ev.price_flag, ev.cost_micros], ['billable', null, 'echo', null, 500000]);
        const bad = await post({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'fail', arguments: {} } }, h);
        const evb = await waitForEvent(mgw, bad.headers['x-request-id']);
        assert.deepEqual([evb.outcome, evb.reason], ['failed', 'tool_error']); // read, so not billed
      });
    }
  });
}
