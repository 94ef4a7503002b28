// The official SDKs (openai, @anthropic-ai/sdk, @modelcontextprotocol/sdk) with their real
// defaults (gzip asked for, retries on) on the identities of issue 14: a JWT from an identity
// provider given to the SDK as its API key or bearer token, and signed requests made by a
// fetch wrapper around the SDK's own (the way docs/signing.md tells a user to). Each call must
// be metered exactly as with an API key (tenant, tokens, auth, subject), and an SDK's retry
// after an upstream failure must not be refused as a replay of its first attempt.
//
// Time: "now" is the gateway's (the instant `tenant add` stored), never this process's, so the
// file passes under make check's faketime runs too.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import OpenAI from 'openai';

import { sqlite, startGateway, startMcpServer, startMock, tempDir, waitForEvent, waitLoaded } from './lib/harness.mjs';

const ISS = 'https://idp.example.test/pool';
const AUD = 'tollgate-api';
const HS_SECRET = crypto.randomBytes(32).toString('hex');
const b64u = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** An HS256 token as an identity provider would issue it (Cognito-style tenant claim). */
function jwt(now, tenant, sub) {
  const input = `${b64u({ alg: 'HS256', typ: 'JWT' })}.${b64u({ iss: ISS, aud: AUD, sub, 'custom:tenant_id': tenant, iat: now, exp: now + 3600 })}`;
  return `${input}.${crypto.createHmac('sha256', HS_SECRET).update(input).digest('base64url')}`;
}

/** The canonical string of docs/signing.md, for a request the SDK is about to send. */
function canonical(method, url, ts, body, nonce) {
  const u = new URL(url);
  const name = (s) => Buffer.from(`${s.split('=', 1)[0]}=`);
  const query = u.search.slice(1).split('&').filter(Boolean).sort((a, b) => Buffer.compare(name(a), name(b))).join('&');
  const hash = crypto.createHash('sha256').update(body ?? '').digest('hex');
  const lines = [method, u.pathname, query, ts, hash];
  if (nonce) lines.push(nonce);
  return lines.join('\n');
}

/**
 * A fetch for an SDK that signs each attempt (retries included) at the gateway's clock plus
 * the time elapsed here, with a fresh X-Tollgate-Nonce unless nonce is false, and notes each
 * answer's status and x-request-id.
 */
function signingFetch(signing, clock, { nonce = true } = {}) {
  const seen = [];
  const f = async (url, init = {}) => {
    const ts = clock();
    const n = nonce ? crypto.randomUUID() : null;
    const body = typeof init.body === 'string' ? init.body : init.body ? Buffer.from(init.body) : '';
    const mac = crypto.createHmac('sha256', signing).update(canonical(init.method ?? 'GET', String(url), ts, body, n)).digest('hex');
    const headers = new Headers(init.headers);
    headers.set('x-tollgate-timestamp', String(ts));
    headers.set('x-tollgate-signature', `v1=${mac}`);
    if (n) headers.set('x-tollgate-nonce', n);
    const r = await fetch(url, { ...init, headers });
    seen.push({ ts, mac, status: r.status, requestId: r.headers.get('x-request-id'), encoding: r.headers.get('content-encoding') });
    return r;
  };
  return { fetch: f, seen };
}

function noting() {
  const seen = [];
  return {
    seen,
    fetch: async (url, init) => {
      const r = await fetch(url, init);
      seen.push({ status: r.status, requestId: r.headers.get('x-request-id'), encoding: r.headers.get('content-encoding') });
      return r;
    },
  };
}

/** An upstream that fails every odd chat request with 500 and answers the even ones like the
 * provider; it notes the signature headers it was sent (none should reach it). */
function flakyUpstream() {
  let calls = 0;
  const leaked = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    for (const h of ['x-tollgate-timestamp', 'x-tollgate-signature', 'x-tollgate-nonce']) if (h in req.headers) leaked.push(h);
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      calls++;
      if (calls % 2 === 1) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"error":{"message":"upstream hiccup","type":"server_error"}}');
        return;
      }
      const m = JSON.parse(body);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        id: 'chatcmpl-flaky', object: 'chat.completion', created: 1700000000, model: m.model,
        choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 11, completion_tokens: 2, total_tokens: 13 },
      }));
    });
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${srv.address().port}`,
    calls: () => calls,
    leaked,
    stop: () => new Promise((r) => srv.close(r)),
  })));
}

const messages = [{ role: 'user', content: 'How many tokens is this question, exactly?' }];

describe('the official SDKs with JWTs and signed requests', () => {
  let mock;
  let mcp;
  let flaky;
  let gw;
  let now; // the gateway's wall clock at `tenant add`, Unix seconds
  let signing; // { secret, signing }
  let started; // this process's monotonic ms when `now` was read

  const clock = () => now + Math.floor((performance.now() - started) / 1000);

  before(async () => {
    mock = await startMock();
    mcp = await startMcpServer({ json: false });
    flaky = await flakyUpstream();
    const dir = await tempDir('tollgate-sdkid-');
    const kekFile = path.join(dir, 'kek');
    fs.writeFileSync(kekFile, `${crypto.randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
    gw = await startGateway({
      upstreams: [
        { name: 'mock', targets: [mock.url] },
        { name: 'mcpsrv', targets: [`http://127.0.0.1:${mcp.port}`] },
        { name: 'flaky', targets: [flaky.url] },
      ],
      routes: [
        { name: 'claude', path_prefix: '/v1/messages', upstream: 'mock', kind: 'anthropic' },
        { name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' },
        { name: 'flaky', path_prefix: '/flaky/', upstream: 'flaky', kind: 'openai' },
        { name: 'mcp', path_prefix: '/mcp', upstream: 'mcpsrv', kind: 'mcp' },
      ],
      extra: {
        auth: ['api_key', 'jwt'],
        jwt: { issuer: ISS, audience: AUD, tenant_claim: 'custom:tenant_id', algorithms: ['HS256'], secret: '${JWT_SECRET}', leeway: '30s' },
        encryption: { kek_file: kekFile },
        signing: { required_tenants: ['signer'] },
        prices: { models: { '*': { input: 1, output: 2 } } },
      },
      env: { JWT_SECRET: HS_SECRET },
    });
    for (const t of ['idp', 'signer']) assert.equal((await gw.cli(['tenant', 'add', t])).code, 0);
    const rows = await sqlite(gw.dbPath, "SELECT created_us FROM tenants WHERE id = 'idp'");
    now = Math.floor(Number(rows[0].created_us) / 1e6);
    started = performance.now();
    const k = await gw.cli(['key', 'create', '--tenant', 'signer', '--signing']);
    assert.equal(k.code, 0, k.stderr);
    signing = { secret: /^secret: (tg_\S+)$/m.exec(k.stdout)[1], signing: /^signing_secret: (tgs_\S+)$/m.exec(k.stdout)[1] };
    await waitLoaded(gw);
  });

  after(async () => {
    await gw?.stop();
    await mock?.stop();
    await mcp?.stop();
    await flaky?.stop();
  });

  test('openai: a JWT as the API key; gzip answers and a stream metered to the claim\'s tenant', async () => {
    const rec = noting();
    const c = new OpenAI({ apiKey: jwt(now, 'idp', 'alice@idp'), baseURL: `${gw.url}/v1`, maxRetries: 0, fetch: rec.fetch });
    const r = await c.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 5 });
    assert.equal(r.usage.completion_tokens, 5);
    const s = await c.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 3, stream: true, stream_options: { include_usage: true } });
    let usage;
    for await (const ch of s) if (ch.usage) usage = ch.usage;
    assert.equal(usage.completion_tokens, 3);
    assert.equal(rec.seen.length, 2);
    assert.equal(rec.seen[0].encoding, 'gzip', 'the mock compressed the answer, as the providers do');
    for (const [i, want] of [[0, 5], [1, 3]]) {
      const ev = await waitForEvent(gw, rec.seen[i].requestId);
      assert.deepEqual([ev.tenant, ev.auth, ev.subject, ev.outcome, ev.tokens_out], ['idp', 'jwt', 'alice@idp', 'billable', want]);
      assert.equal(ev.tokens_in, r.usage.prompt_tokens);
      assert.ok(Number(ev.cost_micros) > 0);
    }
  });

  test('anthropic: a JWT as authToken (Authorization: Bearer)', async () => {
    const rec = noting();
    const c = new Anthropic({ apiKey: null, authToken: jwt(now, 'idp', 'bob@idp'), baseURL: gw.url, maxRetries: 0, fetch: rec.fetch });
    const m = await c.messages.create({ model: 'claude-metering-test', max_tokens: 4, messages });
    assert.equal(m.usage.output_tokens, 4);
    const ev = await waitForEvent(gw, rec.seen[0].requestId);
    assert.deepEqual([ev.tenant, ev.route, ev.auth, ev.subject, ev.outcome, ev.tokens_out, ev.tokens_in],
      ['idp', 'claude', 'jwt', 'bob@idp', 'billable', 4, m.usage.input_tokens]);
  });

  test('MCP: a JWT in the transport\'s headers; the tool call is metered with its tool', async () => {
    const rec = noting();
    const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), {
      requestInit: { headers: { Authorization: `Bearer ${jwt(now, 'idp', 'carol@idp')}` } },
      fetch: rec.fetch,
    });
    const client = new Client({ name: 'tollgate-e2e', version: '1.0.0' });
    await client.connect(transport);
    try {
      const before = rec.seen.length;
      const out = await client.callTool({ name: 'echo', arguments: { text: 'hi' } });
      assert.equal(out.isError ?? false, false);
      const mine = rec.seen.slice(before).filter((s) => s.requestId);
      const evs = await Promise.all(mine.map((s) => waitForEvent(gw, s.requestId)));
      const call = evs.find((e) => e.rpc_method === 'tools/call');
      assert.ok(call, JSON.stringify(evs));
      assert.deepEqual([call.tenant, call.auth, call.subject, call.tool, call.outcome], ['idp', 'jwt', 'carol@idp', 'echo', 'billable']);
    } finally {
      await client.close();
    }
  });

  test('openai: requests signed by a fetch wrapper pass for a tenant that must sign; unsigned ones do not', async () => {
    const sf = signingFetch(signing.signing, clock);
    const c = new OpenAI({ apiKey: signing.secret, baseURL: `${gw.url}/v1`, maxRetries: 0, fetch: sf.fetch });
    const r = await c.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 2 });
    assert.equal(r.usage.completion_tokens, 2);
    const s = await c.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 2, stream: true, stream_options: { include_usage: true } });
    for await (const ch of s) void ch;
    for (const seen of sf.seen) {
      const ev = await waitForEvent(gw, seen.requestId);
      assert.deepEqual([ev.tenant, ev.route, ev.outcome, ev.tokens_out], ['signer', 'oa', 'billable', 2]);
    }
    const rec = noting();
    const unsigned = new OpenAI({ apiKey: signing.secret, baseURL: `${gw.url}/v1`, maxRetries: 0, fetch: rec.fetch });
    await assert.rejects(unsigned.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 2 }), (e) => e.status === 401);
    assert.equal((await waitForEvent(gw, rec.seen[0].requestId)).reason, 'signature_missing');
  });

  test('anthropic: messages and a stream signed by the same fetch wrapper', async () => {
    const sf = signingFetch(signing.signing, clock);
    const c = new Anthropic({ apiKey: signing.secret, baseURL: gw.url, maxRetries: 0, fetch: sf.fetch });
    const m = await c.messages.create({ model: 'claude-metering-test', max_tokens: 3, messages });
    assert.equal(m.usage.output_tokens, 3);
    const stream = c.messages.stream({ model: 'claude-metering-test', max_tokens: 2, messages });
    assert.equal((await stream.finalMessage()).usage.output_tokens, 2);
    assert.deepEqual(sf.seen.map((x) => x.status), [200, 200]);
    const evs = await Promise.all(sf.seen.map((x) => waitForEvent(gw, x.requestId)));
    assert.deepEqual(evs.map((e) => [e.tenant, e.route, e.outcome, e.tokens_out]), [['signer', 'claude', 'billable', 3], ['signer', 'claude', 'billable', 2]]);
  });

  test('openai: the SDK\'s retry after an upstream 500 is signed again and answered, not refused as a replay', async () => {
    const sf = signingFetch(signing.signing, clock);
    const c = new OpenAI({ apiKey: signing.secret, baseURL: `${gw.url}/flaky/v1`, fetch: sf.fetch }); // default retries
    const r = await c.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 2 });
    assert.equal(r.choices[0].message.content, 'ok');
    assert.deepEqual(sf.seen.map((s) => s.status), [500, 200]);
    assert.equal(flaky.calls(), 2);
    assert.notEqual(sf.seen[0].mac, sf.seen[1].mac);
    const evs = await Promise.all(sf.seen.map((s) => waitForEvent(gw, s.requestId)));
    assert.notEqual(evs[0].outcome, 'billable', 'the failed attempt is not billed');
    assert.deepEqual([evs[1].tenant, evs[1].outcome, evs[1].tokens_out], ['signer', 'billable', 2]);
    assert.deepEqual(flaky.leaked, [], 'the signature headers never reach the upstream');
  });

  test('without a nonce, a retry in the same second is the same signature, refused as replayed (documented)', async () => {
    // Both attempts sign the same second (the clock held still), as a retry 0.5 s later
    // often does: the second is a replay, which is why the docs' clients send a nonce.
    const ts = clock();
    const sf = signingFetch(signing.signing, () => ts, { nonce: false });
    const c = new OpenAI({ apiKey: signing.secret, baseURL: `${gw.url}/flaky/v1`, fetch: sf.fetch, maxRetries: 1 });
    await assert.rejects(c.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 2 }), (e) => e.status === 401);
    assert.deepEqual(sf.seen.map((s) => s.status), [500, 401]);
    assert.equal((await waitForEvent(gw, sf.seen[1].requestId)).reason, 'signature_replayed');
  });
});
