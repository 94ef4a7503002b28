// audit.bodies: hash end to end (docs/audit.md, "Bodies"): a chat through the openai SDK (the
// mock answers gzip), a streamed chat and an MCP tool call; this file hashes the request bodies
// the SDKs sent and the answers they read (decoded) itself, and finds both hashes in the call
// records of `audit export` (JSON lines and CSV). An answer the upstream cuts is flagged. The
// bodies themselves are in neither the store, the gateway's output nor the export; `tenant
// erase` keeps the hashes and the chain verifies.
//
// Instants come from tollgate only (records are found by their hashes), so the file passes
// under TOLLGATE_FAKETIME too.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import OpenAI from 'openai';

import { createTenantKey, isPgUrl, request, sha256, startGateway, startMcpServer, startMock, waitFor, waitForEvent, waitForKey } from './lib/harness.mjs';

const PROMPT = 'the secret prompt text bq4';
let mock, srv, gw, acme;

before(async () => {
  mock = await startMock({ compress: true });
  srv = await startMcpServer({ json: false });
  gw = await startGateway({
    upstreams: [
      { name: 'mock', targets: [mock.url], idle_timeout: '300ms' },
      { name: 'mcpsrv', targets: [`http://127.0.0.1:${srv.port}`] },
    ],
    routes: [
      { name: 'mcp', path_prefix: '/mcp', upstream: 'mcpsrv', kind: 'mcp' },
      { name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' },
    ],
    extra: { prices: { models: { 'gpt-4o-mini': { input: 0.15, output: 0.6 } } }, audit: { bodies: 'hash' } },
  });
  acme = await createTenantKey(gw, 'acme');
  await waitForKey(gw, acme.secret, '/v1/models');
});
after(async () => {
  await gw?.stop();
  await srv?.stop();
  await mock?.stop();
});

/** A fetch for the SDKs keeping each exchange: the request body sent, the answer as read. */
function recorder() {
  const seen = [];
  return {
    seen,
    fetch: async (url, init) => {
      const r = await fetch(url, init);
      const body = typeof init?.body === 'string' ? init.body : null;
      seen.push({ body, requestId: r.headers.get('x-request-id'), coding: r.headers.get('content-encoding'), answer: r.clone().arrayBuffer().then(Buffer.from, () => null) });
      return r;
    },
  };
}

async function exportJsonl() {
  const r = await gw.cli(['audit', 'export', '--format', 'jsonl']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** The call record whose data holds this request body's hash (from the export), once written. */
async function recordFor(bodyHash) {
  let found = [];
  await waitFor(async () => {
    const lines = (await exportJsonl()).trim().split('\n');
    found = lines.filter((l) => JSON.parse(l).data?.includes(`"body_in_sha256":"${bodyHash}"`));
    return found.length > 0;
  }, { message: `a record with body_in_sha256 ${bodyHash}` });
  assert.equal(found.length, 1, `one record with body_in_sha256 ${bodyHash}`);
  return JSON.parse(found[0]);
}

describe('audit.bodies: hash', () => {
  test('a chat (gzip), a streamed chat and an MCP tool call: both hashes in the export', async () => {
    const rec = recorder();
    const oa = new OpenAI({ apiKey: acme.secret, baseURL: `${gw.url}/v1`, maxRetries: 0, fetch: rec.fetch });
    const chat = await oa.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: PROMPT }], max_tokens: 5 });
    assert.ok(chat.choices.length > 0);
    const stream = await oa.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: PROMPT }], max_tokens: 5, stream: true });
    for await (const _ of stream); // eslint-disable-line no-unused-vars
    assert.equal(rec.seen.length, 2);
    assert.equal(rec.seen[0].coding, 'gzip', 'the mock answered the chat gzip');

    const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), {
      requestInit: { headers: { Authorization: `Bearer ${acme.secret}` } },
      fetch: rec.fetch,
    });
    const client = new Client({ name: 'tollgate-e2e', version: '1.0.0' });
    await client.connect(transport);
    const r = await client.callTool({ name: 'echo', arguments: { text: 'hello bodies' } });
    assert.equal(r.content[0].text, 'hello bodies');
    const call = rec.seen.find((s) => s.body?.includes('"tools/call"'));
    assert.ok(call);
    for (const s of rec.seen) if (s.body) assert.ok(await s.answer, `the answer to ${s.body.slice(0, 80)} was read whole`);
    await client.close();

    for (const s of [rec.seen[0], rec.seen[1], call]) {
      await waitForEvent(gw, s.requestId);
      const answer = await s.answer;
      const data = JSON.parse((await recordFor(sha256(s.body))).data);
      assert.equal(data.body_out_sha256, sha256(answer), `answer hash of ${s.body.slice(0, 60)}`);
      assert.equal(data.body_out_state, undefined, 'the whole answer');
    }
    // CSV carries them too (in data).
    const csv = await gw.cli(['audit', 'export', '--format', 'csv']);
    assert.ok(csv.stdout.includes(sha256(rec.seen[0].body)));
    assert.ok(csv.stdout.includes(sha256(await rec.seen[1].answer)));

    // The bodies are nowhere: store, gateway output, export.
    const all = (await exportJsonl()) + csv.stdout + gw.stdout() + gw.stderr();
    assert.ok(!all.includes(PROMPT) && !all.includes('hello bodies'));
    if (!isPgUrl(gw.dbPath)) {
      for (const f of [gw.dbPath, `${gw.dbPath}-wal`]) {
        if (fs.existsSync(f)) assert.ok(!fs.readFileSync(f).includes(PROMPT), `${f} holds no prompt`);
      }
    }
    const v = await gw.cli(['audit', 'verify']);
    assert.equal(v.code, 0, v.stderr + v.stdout);
  });

  test('an answer the upstream cuts is flagged cut, hashed over what arrived', async () => {
    const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'cut me' }], max_tokens: 20, stream: true });
    // The client sees the stream end early (the connection closes): that is the point.
    await request(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${acme.secret}`, 'Content-Type': 'application/json', 'x-mock-stall-after': '3', 'x-mock-stall-ms': '3600000' },
      body,
    }).catch((e) => assert.equal(e.code, 'ECONNRESET'));
    const data = JSON.parse((await recordFor(sha256(body))).data);
    assert.equal(data.body_out_state, 'cut');
    assert.match(data.body_out_sha256, /^[0-9a-f]{64}$/);
  });

  test('tenant erase keeps the hashes (not personal data) and the chain verifies', async () => {
    const before = (await exportJsonl()).match(/"body_in_sha256\\":\\"[0-9a-f]{64}/g);
    assert.ok(before.length >= 3);
    const e = await gw.cli(['tenant', 'erase', 'acme']);
    assert.equal(e.code, 0, e.stderr);
    const afterErase = (await exportJsonl()).match(/"body_in_sha256\\":\\"[0-9a-f]{64}/g);
    assert.deepEqual(afterErase, before);
    const v = await gw.cli(['audit', 'verify']);
    assert.equal(v.code, 0, v.stderr + v.stdout);
  });
});
