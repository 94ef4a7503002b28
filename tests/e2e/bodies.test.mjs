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
import { after, before, describe, test } from 'node:test';

import { assertNowhere, chatStreamTool, exportJsonl as exportOf, recordFor as recordOf } from './lib/bodies.mjs';
import { createTenantKey, request, sha256, startGateway, startMcpServer, startMock, waitForEvent, waitForKey } from './lib/harness.mjs';

const exportJsonl = () => exportOf(gw);
const recordFor = (hash) => recordOf(gw, hash);
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

describe('audit.bodies: hash', () => {
  test('a chat (gzip), a streamed chat and an MCP tool call: both hashes in the export', async () => {
    const calls = await chatStreamTool(gw, acme.secret, PROMPT, 'hello bodies');
    for (const s of calls) {
      await waitForEvent(gw, s.requestId);
      const answer = await s.answer;
      const data = JSON.parse((await recordFor(sha256(s.body))).data);
      assert.equal(data.body_out_sha256, sha256(answer), `answer hash of ${s.body.slice(0, 60)}`);
      assert.equal(data.body_out_state, undefined, 'the whole answer');
    }
    // CSV carries them too (in data).
    const csv = await gw.cli(['audit', 'export', '--format', 'csv']);
    assert.ok(csv.stdout.includes(sha256(calls[0].body)));
    assert.ok(csv.stdout.includes(sha256(await calls[1].answer)));

    // The bodies are nowhere: store, gateway output, export.
    await assertNowhere(gw, [PROMPT, 'hello bodies'], csv.stdout);
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
