// Requests on AI and MCP routes are read whole before admission (the body says which
// model, how many tokens and which tools). These are the edges of that: a body that stops
// arriving, a chunked body over the limit, Expect: 100-continue, pipelining, and a bad JSON
// body, each answered correctly and recorded once, with the connection still usable where
// it should be.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { createTenantKey, raw, sqlite, startGateway, startMock, waitFor, waitForKey } from './lib/harness.mjs';

let mock;
let gw;
let key;
before(async () => {
  mock = await startMock();
  gw = await startGateway({
    upstreams: [{ name: 'mock', targets: [mock.url] }],
    routes: [{ name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' }],
    extra: { server: { header_timeout: '1s', max_body: '4k' } },
    workers: 1,
  });
  ({ secret: key } = await createTenantKey(gw, 'held'));
  await waitForKey(gw, key, '/v1/models');
});
after(async () => {
  await gw?.stop();
  await mock?.stop();
});

const chat = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there' }], max_tokens: 2 });

async function eventsWhere(where) {
  return sqlite(gw.dbPath, `SELECT status, outcome, reason, model, tokens_in, tokens_out FROM usage_events WHERE ${where} ORDER BY id`);
}

describe('held request bodies (AI routes)', () => {
  test('a body that stops arriving gets 408 after header_timeout, recorded as body_timeout', async () => {
    const t0 = Date.now();
    const r = await raw(
      gw.port,
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nx-request-id: held-slow-1\r\nContent-Length: 100\r\n\r\n{"model":`,
      { timeoutMs: 5000 },
    );
    const ms = Date.now() - t0;
    assert.match(r.data, /^HTTP\/1\.1 408 /);
    assert.ok(r.closed, 'connection closed after the 408');
    assert.ok(ms >= 900 && ms < 4000, `408 after ${ms} ms`);
    await waitFor(async () => (await eventsWhere("request_id = 'held-slow-1'")).length === 1);
    const [ev] = await eventsWhere("request_id = 'held-slow-1'");
    assert.equal(ev.status, 408);
    assert.equal(ev.outcome, 'rejected');
    assert.equal(ev.reason, 'body_timeout');
  });

  test('a chunked body over max_body gets 413 without reaching the upstream', async () => {
    const big = 'x'.repeat(3000);
    const r = await raw(
      gw.port,
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nx-request-id: held-big-1\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `bb8\r\n${big}\r\nbb8\r\n${big}\r\n0\r\n\r\n`,
    );
    assert.match(r.data, /^HTTP\/1\.1 413 /);
    await waitFor(async () => (await eventsWhere("request_id = 'held-big-1'")).length === 1);
    const [ev] = await eventsWhere("request_id = 'held-big-1'");
    assert.equal(ev.outcome, 'rejected');
    assert.equal(ev.reason, 'body_too_large');
  });

  test('Expect: 100-continue gets its 100 before the body is sent', async () => {
    const head = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nx-request-id: held-expect-1\r\nExpect: 100-continue\r\nContent-Length: ${Buffer.byteLength(chat)}\r\n\r\n`;
    // Only the head is sent: the 100 must come without the body.
    const r = await raw(gw.port, head, { timeoutMs: 700 });
    assert.match(r.data, /^HTTP\/1\.1 100 Continue\r\n\r\n/);
  });

  test('two pipelined AI requests are both answered, in order, and metered', async () => {
    const one = (id) =>
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nx-request-id: ${id}\r\nContent-Length: ${Buffer.byteLength(chat)}\r\n\r\n${chat}`;
    const r = await raw(gw.port, one('held-pipe-1') + one('held-pipe-2'), { timeoutMs: 1500 });
    const statuses = [...r.data.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]);
    assert.deepEqual(statuses, ['200', '200']);
    const ids = [...r.data.matchAll(/x-request-id: (held-pipe-\d)/gi)].map((m) => m[1]);
    assert.deepEqual(ids, ['held-pipe-1', 'held-pipe-2']);
    await waitFor(async () => (await eventsWhere("request_id LIKE 'held-pipe-%'")).length === 2);
    for (const ev of await eventsWhere("request_id LIKE 'held-pipe-%'")) {
      assert.equal(ev.outcome, 'billable');
      assert.equal(ev.model, 'gpt-4o-mini');
      assert.equal(ev.tokens_out, 2);
      assert.ok(ev.tokens_in > 0);
    }
  });

  test('a bodiless answer (HEAD) on a metered path is not counted as unreadable', async () => {
    const metric = async () => {
      const r = await fetch(`http://127.0.0.1:${gw.adminPort}/metrics`, { headers: gw.adminHeaders });
      return Number(/^tollgate_usage_unparsed_total (\d+)$/m.exec(await r.text())[1]);
    };
    const before = await metric();
    const r = await fetch(`${gw.url}/v1/chat/completions`, { method: 'HEAD', headers: { authorization: `Bearer ${key}`, 'x-request-id': 'held-head-1' } });
    assert.equal(r.status, 200);
    await waitFor(async () => (await eventsWhere("request_id = 'held-head-1'")).length === 1);
    assert.equal(await metric(), before);
  });

  test('a body that is not JSON is forwarded untouched: the upstream answers it', async () => {
    const body = '{"model": "gpt-4o-mini", oops';
    const r = await raw(
      gw.port,
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nx-request-id: held-bad-1\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    assert.match(r.data, /^HTTP\/1\.1 400 /); // the mock's answer to bad JSON
    await waitFor(async () => (await eventsWhere("request_id = 'held-bad-1'")).length === 1);
    const [ev] = await eventsWhere("request_id = 'held-bad-1'");
    assert.equal(ev.status, 400);
    assert.equal(ev.outcome, 'failed');
    assert.equal(ev.tokens_in, null);
  });
});
