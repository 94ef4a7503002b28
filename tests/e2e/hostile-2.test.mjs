// Hostile peers, second round: tricks against the hardening of issue 9 §3-4 (canonical
// targets, strict heads, redaction, deadlines, flood bounds). Raw TCP on both sides.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { createTenantKey, raw, sqlite, startGateway, waitFor, waitForKey } from './lib/harness.mjs';

/**
 * An upstream that answers every request, once its body is whole (Content-Length or
 * chunked), with a chat completion of 7 + 11 tokens, and keeps each request head (text).
 */
async function aiUpstream() {
  const heads = [];
  const sockets = new Set();
  const answer = JSON.stringify({
    id: 'c',
    object: 'chat.completion',
    model: 'm',
    choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 7, completion_tokens: 11, total_tokens: 18 },
  });
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.slice(0, end);
        const cl = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        let rest = buf.slice(end + 4);
        if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
          const z = rest.indexOf('0\r\n\r\n');
          if (z < 0) return;
          rest = rest.slice(z + 5);
        } else {
          if (rest.length < cl) return;
          rest = rest.slice(cl);
        }
        buf = rest;
        heads.push(head);
        sock.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${answer.length}\r\n\r\n${answer}`);
      }
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    heads,
    stop: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(r);
      }),
  };
}

const once = (port, data, timeoutMs = 5000) => raw(port, data, { timeoutMs });
const statusOf = (data) => Number(/^HTTP\/1\.1 (\d{3}) /.exec(data)?.[1] ?? 0);
const chat = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });

async function eventOf(gw, id) {
  const rows = await waitFor(async () => {
    const r = await sqlite(gw.dbPath, `SELECT * FROM usage_events WHERE request_id = '${id}'`);
    return r.length ? r : null;
  });
  return rows[0];
}

// ---- 1. request-targets an upstream reads as a billed endpoint ------------------------------

describe('empty segments and backslashes in the request-target', () => {
  let up;
  let gw;
  let key;
  before(async () => {
    up = await aiUpstream();
    gw = await startGateway({
      upstreams: [{ name: 'up', targets: [up.url] }],
      routes: [
        { name: 'oa', path_prefix: '/v1/', upstream: 'up', kind: 'openai' },
        { name: 'all', path_prefix: '/', upstream: 'up', kind: 'http' },
      ],
      workers: 1,
    });
    ({ secret: key } = await createTenantKey(gw, 'segs'));
    await waitForKey(gw, key, '/ok');
  });
  after(async () => {
    await gw?.stop();
    await up?.stop();
  });

  const post = (target, id) =>
    `POST ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\n` +
    `x-request-id: ${id}\r\nContent-Length: ${chat.length}\r\nConnection: close\r\n\r\n${chat}`;

  // nginx (merge_slashes, on by default) and many frameworks serve each of these as
  // /v1/chat/completions, case-insensitive routers (Express's and Fiber's default, as in
  // OpenAI-compatible servers built on them) the last two: each must be routed and
  // metered as that endpoint.
  for (const [i, target] of [
    '/v1/chat/completions//',
    '/v1/chat/completions%2F%2F',
    '//v1/chat/completions',
    '/v1//chat//completions/',
    '/v1/CHAT/Completions',
    '/V1/chat/completions',
  ].entries()) {
    test(`${target}: the openai route, its tokens metered`, async () => {
      const r = await once(gw.port, post(target, `seg-${i}`));
      assert.equal(statusOf(r.data), 200, r.data);
      const ev = await eventOf(gw, `seg-${i}`);
      assert.equal(ev.route, 'oa');
      assert.equal(ev.tokens_in, 7, `tokens of ${target} not metered`);
      assert.equal(ev.tokens_out, 11);
    });
  }

  // Paths some servers read as another one: "\\" as "/", overlong UTF-8 as "." or "/".
  for (const target of ['/v1\\chat\\completions', '/x/%C0%AE%C0%AE/v1/chat/completions', '/v1/chat%C0%AFcompletions']) {
    test(`${target}: 400, never forwarded`, async () => {
      const n = up.heads.length;
      const r = await once(gw.port, post(target, 'bs-1'));
      assert.equal(statusOf(r.data), 400, r.data);
      assert.equal(up.heads.length, n, 'forwarded');
    });
  }
});

// ---- 2. a chunked body's trailers ------------------------------------------------------------

describe('trailers of a chunked request are not headers', () => {
  let up;
  let gw;
  let key;
  before(async () => {
    up = await aiUpstream();
    gw = await startGateway({
      upstreams: [{ name: 'up', targets: [up.url] }],
      routes: [
        { name: 'oa', path_prefix: '/v1/', upstream: 'up', kind: 'openai' },
        { name: 'all', path_prefix: '/', upstream: 'up', kind: 'http' },
      ],
      extra: { server: { trusted_proxies: ['127.0.0.1/32'] } },
      workers: 1,
    });
    ({ secret: key } = await createTenantKey(gw, 'trailers'));
    await waitForKey(gw, key, '/ok');
    const r = await gw.cli(['ip', 'deny', '203.0.113.0/24']);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(
      async () =>
        statusOf(
          (await once(gw.port, `GET /ok HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nX-Forwarded-For: 203.0.113.7\r\nConnection: close\r\n\r\n`))
            .data,
        ) === 403,
      { message: 'the deny rule in effect' },
    );
  });
  after(async () => {
    await gw?.stop();
    await up?.stop();
  });

  // The trusted proxy (the test's own address) says the client is 203.0.113.5, denied; the
  // client adds a trailer naming another address, and one more field.
  const req = (id) =>
    `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nx-request-id: ${id}\r\n` +
    'X-Forwarded-For: 203.0.113.5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
    `${chat.length.toString(16)}\r\n${chat}\r\n0\r\nX-Forwarded-For: 198.51.100.9\r\nX-Trailer-Field: 1\r\n\r\n`;

  test('a trailing X-Forwarded-For does not pick the client address: the denied client is refused', async () => {
    const r = await once(gw.port, req('trl-1'));
    assert.equal(statusOf(r.data), 403, r.data);
    const ev = await eventOf(gw, 'trl-1');
    assert.equal(ev.client_ip, '203.0.113.5');
  });

  test('a trailer field is not forwarded as a header', async () => {
    const r = await once(gw.port, req('trl-2').replace('203.0.113.5', '192.0.2.1'));
    assert.equal(statusOf(r.data), 200, r.data);
    const head = up.heads.find((h) => h.includes('x-request-id: trl-2'));
    assert.ok(head, 'forwarded');
    assert.doesNotMatch(head, /x-trailer-field/i);
    assert.doesNotMatch(head, /198\.51\.100\.9/);
    assert.equal((await eventOf(gw, 'trl-2')).client_ip, '192.0.2.1');
  });
});

// ---- 3. credentials in the request-target -----------------------------------------------------

describe('credentials in the query or a fragment never reach events or logs', () => {
  let up;
  let gw;
  let key;
  before(async () => {
    up = await aiUpstream();
    gw = await startGateway({
      upstreams: [{ name: 'up', targets: [up.url] }],
      routes: [{ name: 'all', path_prefix: '/', upstream: 'up', kind: 'http' }],
      workers: 1,
    });
    ({ secret: key } = await createTenantKey(gw, 'redact'));
    await waitForKey(gw, key, '/ok');
  });
  after(async () => {
    await gw?.stop();
    await up?.stop();
  });

  const get = (target, id) =>
    `GET ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nx-request-id: ${id}\r\nConnection: close\r\n\r\n`;

  test('percent-encoded names, other credential names, a tollgate key under any name', async () => {
    const cases = [
      ['/x?api%5Fkey=SECRET-A&a=1', '/x?api%5Fkey=REDACTED&a=1'],
      ['/x?%6Bey=SECRET-B', '/x?%6Bey=REDACTED'],
      ['/x?access_token=SECRET-C&token=SECRET-D', '/x?access_token=REDACTED&token=REDACTED'],
      [`/x?q=${key}&r=%74g_${key.slice(3)}`, '/x?q=REDACTED&r=REDACTED'],
    ];
    for (const [i, [target, logged]] of cases.entries()) {
      const r = await once(gw.port, get(target, `rd-${i}`));
      assert.equal(statusOf(r.data), 200, r.data);
      assert.equal((await eventOf(gw, `rd-${i}`)).path, logged);
    }
    await waitFor(() => fs.existsSync(gw.accessLog) && fs.readFileSync(gw.accessLog, 'utf8').includes(`rd-${cases.length - 1}`));
    const log = fs.readFileSync(gw.accessLog, 'utf8');
    assert.doesNotMatch(log, /SECRET-/, 'a credential in the access log');
    assert.ok(!log.includes(key.slice(3)), 'the tollgate key in the access log');
  });

  test('a tollgate key under an encoded credential name does not reach the upstream', async () => {
    const r = await once(gw.port, get(`/x?api%5Fkey=${key}&a=1`, 'rd-strip'));
    assert.equal(statusOf(r.data), 200, r.data);
    const head = up.heads.find((h) => h.includes('x-request-id: rd-strip'));
    assert.equal(head.split('\r\n')[0], 'GET /x?a=1 HTTP/1.1');
  });

  test('a fragment in a refused target is not recorded', async () => {
    const r = await once(gw.port, get('/frag#x&key=SECRET-F', 'rd-frag'));
    assert.equal(statusOf(r.data), 400, r.data);
    const [ev] = await waitFor(async () => {
      const rows = await sqlite(gw.dbPath, "SELECT path FROM usage_events WHERE path LIKE '/frag%'");
      return rows.length ? rows : null;
    });
    assert.equal(ev.path, '/frag#REDACTED');
    await waitFor(() => fs.existsSync(gw.accessLog) && fs.readFileSync(gw.accessLog, 'utf8').includes('/frag'));
    assert.doesNotMatch(fs.readFileSync(gw.accessLog, 'utf8'), /SECRET-F/);
  });
});

// ---- 4. keyless floods of malformed heads --------------------------------------------------

describe('a flood of heads refused before their key is read is bounded like 401s', () => {
  let gw;
  before(async () => {
    gw = await startGateway({
      upstreams: [{ name: 'up', targets: ['http://127.0.0.1:9'] }],
      routes: [{ name: 'all', path_prefix: '/', upstream: 'up', kind: 'http' }],
      extra: { log: { unauthenticated_per_minute: 5 } },
      workers: 1,
    });
  });
  after(async () => {
    await gw?.stop();
  });

  test('400s, one connection each: a few recorded one by one, the rest one aggregate with status 400', async () => {
    // A 400 closes its connection, so a flood of them costs a connection each: cheap for
    // a client, and each was an event and an access-log line whatever the bound.
    const n = 40;
    for (let i = 0; i < n; i++) {
      const r = await once(gw.port, `GET /flood#${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.equal(statusOf(r.data), 400, r.data);
    }
    await gw.stop(); // the last harvest: every count is written
    const rows = await sqlite(gw.dbPath, 'SELECT status, reason, requests FROM usage_events WHERE status = 400');
    const total = rows.reduce((s, r) => s + r.requests, 0);
    assert.equal(total, n, 'every refusal counted, exactly');
    // At most 5 a minute one by one (the run may straddle a minute) plus their aggregates.
    assert.ok(rows.length <= 12, `${rows.length} rows for ${n} refusals`);
    const agg = rows.filter((r) => r.reason === 'unauthenticated_aggregate');
    assert.ok(agg.length >= 1 && agg.every((r) => r.status === 400), JSON.stringify(agg));
    const lines = fs.readFileSync(gw.accessLog, 'utf8').split('\n').filter((l) => l.includes('/flood') || l.includes('unauthenticated_aggregate'));
    assert.ok(lines.length >= 5 && lines.length <= 12, `${lines.length} access-log lines`);
  });
});

// ---- garbage after a finished keep-alive request ----------------------------------------------

describe('bytes that are no request, after a finished one on the same connection', () => {
  let up;
  let gw;
  let key;
  before(async () => {
    up = await aiUpstream();
    gw = await startGateway({
      upstreams: [{ name: 'up', targets: [up.url] }],
      routes: [{ name: 'all', path_prefix: '/', upstream: 'up', kind: 'http' }],
      workers: 1,
    });
    ({ secret: key } = await createTenantKey(gw, 'garbage'));
    await waitForKey(gw, key, '/ok');
  });
  after(async () => {
    await gw?.stop();
    await up?.stop();
  });

  // The parser fails before a message begins: that is a request of its own (a 400 and an
  // event with no tenant), never the last request's event a second time.
  test('a 400 and an event of their own, nothing of the request before them', async () => {
    const first = `GET /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nx-request-id: ka-first\r\n\r\n`;
    const r = await once(gw.port, `${first}\x01garbage\r\n\r\n`);
    const statuses = [...r.data.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    assert.deepEqual(statuses, [200, 400], r.data);
    await eventOf(gw, 'ka-first');
    const rows = await waitFor(async () => {
      const x = await sqlite(
        gw.dbPath,
        `SELECT * FROM usage_events WHERE request_id <> 'ka-first' AND (reason = 'malformed_request' OR path = '/echo')`,
      );
      return x.length ? x : null;
    });
    assert.equal(rows.length, 1, JSON.stringify(rows));
    const ev = rows[0];
    assert.equal(ev.status, 400);
    assert.equal(ev.outcome, 'rejected');
    assert.equal(ev.reason, 'malformed_request');
    assert.ok(!ev.tenant, `the last request's tenant: ${ev.tenant}`);
    assert.notEqual(ev.path, '/echo');
    assert.ok(!ev.key_id);
    const body400 = r.data.slice(r.data.indexOf('\r\n\r\n', r.data.indexOf('HTTP/1.1 400')) + 4);
    assert.equal(ev.bytes_out, Buffer.byteLength(body400), 'the bytes of its own 400');
  });
});
