// Hostile peers: upstreams and clients that try to crash, exhaust or hold the gateway, and
// requests shaped to slip past its parsing. Raw TCP on both sides (node:net): the hostile
// upstream is written here, so it can send what no well-behaved server would.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { createTenantKey, raw, sqlite, startGateway, startMock, waitFor, waitForKey } from './lib/harness.mjs';

/**
 * A hostile upstream: answer(head, socket) is called with each request head (as text) once
 * it is complete; what it writes is the whole answer. Returns {port, url, heads, stop()}.
 */
async function hostileUpstream(answer) {
  const heads = [];
  const sockets = new Set();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = '';
    let answered = false;
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (answered || end < 0) return;
      answered = true;
      heads.push(buf.slice(0, end));
      answer(buf.slice(0, end), sock, buf.slice(end + 4));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    heads,
    stop: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(r);
      }),
  };
}

/** n response header lines of width + 11 bytes each (127 × 531: over 64 KiB). */
function bigHeaders(n = 127, width = 520) {
  let s = '';
  for (let i = 0; i < n; i++) s += `X-Pad-${String(i).padStart(3, '0')}: ${'a'.repeat(width)}\r\n`;
  return s;
}

/** One request on a fresh connection; resolves with {data, closed} (raw() with a shorter default). */
const once = (port, data, timeoutMs = 5000) => raw(port, data, { timeoutMs });

const statusOf = (data) => Number(/^HTTP\/1\.1 (\d{3}) /.exec(data)?.[1] ?? 0);

// ---- 1. an upstream response head over the limit -----------------------------------------

for (const client of ['native', 'libcurl']) {
  describe(`an upstream head over 64 KiB is a 502 (${client} client)`, () => {
    let up;
    let gw;
    let key;
    before(async () => {
      up = await hostileUpstream((head, sock) => {
        const path = head.split(' ')[1];
        if (path.startsWith('/conn')) {
          // A Connection list longer than tollgate keeps (the headers it names unknown).
          const names = Array.from({ length: 40 }, (_, i) => `X-Named-${i}`).join(', ');
          sock.end(`HTTP/1.1 200 OK\r\nConnection: ${names}\r\nContent-Length: 2\r\n\r\nok`);
        } else if (path.startsWith('/te')) {
          // Both framings after 66 KiB of headers: Transfer-Encoding wins, Content-Length
          // is removed from what the client gets (the line that used to be cut).
          sock.end(
            'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n' +
              bigHeaders() +
              'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
          );
        } else if (path.startsWith('/v1/chat')) {
          // An SSE answer that tollgate rewrites (include_usage), after headers that fill
          // the head just short of the native client's own limit, then a Content-Length.
          const body =
            'data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n' +
            'data: [DONE]\n\n';
          sock.end(
            'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n' +
              bigHeaders(100, 643) +
              `Content-Length: ${body.length}\r\n\r\n${body}`,
          );
        } else if (path.startsWith('/empty')) {
          sock.end('HTTP/1.1 204 No Content\r\n' + bigHeaders(100, 643) + '\r\n');
        } else {
          sock.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        }
      });
      gw = await startGateway({
        upstreams: [{ name: 'up', targets: [up.url] }],
        routes: [
          { name: 'oa', path_prefix: '/v1/', upstream: 'up', kind: 'openai' },
          { name: 'all', path_prefix: '/', upstream: 'up', kind: 'http' },
        ],
        env: client === 'libcurl' ? { TOLLGATE_NO_NATIVE_HTTP: '1' } : {},
        // (The parser's header cap is process-wide: it bounds the native client's
        // response heads too, so it is raised for the native client to reach 64 KiB.)
        extra: { server: { max_header_bytes: '96k' } },
        workers: 1,
      });
      ({ secret: key } = await createTenantKey(gw, 'big'));
      await waitForKey(gw, key, '/ok');
    });
    after(async () => {
      await gw?.stop();
      await up?.stop();
    });

    const chat = JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    const cases = [
      ['Content-Length plus chunked', `GET /te HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'KEY'}\r\nx-request-id: big-te-${client}\r\n\r\n`],
      [
        'an SSE stream tollgate rewrites',
        `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer KEY\r\nContent-Type: application/json\r\nx-request-id: big-sse-${client}\r\nContent-Length: ${chat.length}\r\n\r\n${chat}`,
      ],
      ['a bodiless answer', `GET /empty HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer KEY\r\nx-request-id: big-empty-${client}\r\n\r\n`],
      ['a Connection list over 255 bytes', `GET /conn HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer KEY\r\nx-request-id: big-conn-${client}\r\n\r\n`],
    ];
    for (const [name, req] of cases) {
      test(`${name}: 502, recorded, and the gateway lives on`, async () => {
        const r = await once(gw.port, req.replace('KEY', key));
        assert.equal(statusOf(r.data), 502, r.data.slice(0, 300));
        assert.doesNotMatch(r.data, /X-Pad/i, 'no part of the refused head reaches the client');
        const id = /x-request-id: (\S+)/.exec(req)[1];
        const [ev] = await waitFor(async () => {
          const rows = await sqlite(gw.dbPath, `SELECT status, reason FROM usage_events WHERE request_id = '${id}'`);
          return rows.length ? rows : null;
        });
        assert.equal(ev.status, 502);
        // (The native client refuses a head over its own 64 KiB read limit before tollgate
        // sees it: a bad answer from the upstream either way.)
        assert.match(ev.reason, /^upstream_(bad_response|unreachable)$/);
        const ok = await once(gw.port, `GET /ok HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nConnection: close\r\n\r\n`);
        assert.equal(statusOf(ok.data), 200, 'still serving');
        assert.equal(gw.proc.exitCode, null, `gateway alive; stderr:\n${gw.stderr().slice(-2000)}`);
      });
    }
  });
}

// ---- 2. a client that sends requests and never reads the answers ------------------------

/** The gateway's peak resident memory in KiB (VmHWM from /proc). */
function peakRssKiB(gw) {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${gw.proc.pid}/status`, 'utf8'));
  return Number(m[1]);
}

describe('a client that never reads its answers', () => {
  let gw;
  before(async () => {
    gw = await startGateway({
      upstreams: [{ name: 'none', targets: ['http://127.0.0.1:9'] }],
      routes: [{ name: 'all', path_prefix: '/', upstream: 'none', kind: 'http' }],
      extra: { server: { idle_timeout: '1s' } },
      workers: 1,
    });
  });
  after(async () => {
    await gw?.stop();
  });

  test('pipelined unauthenticated requests: reading stops at a bound, then the connection is closed', async () => {
    const before = peakRssKiB(gw);
    const one = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const n = 1 << 20; // 27 MiB of requests, each answered 401 by tollgate itself
    const all = Buffer.alloc(one.length * n);
    for (let i = 0; i < n; i++) one.copy(all, i * one.length);
    const sock = net.connect({ port: gw.port, host: '127.0.0.1' });
    sock.on('error', () => {});
    sock.pause(); // never read
    const t0 = Date.now();
    sock.write(all);
    const closed = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), 30000);
      sock.on('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    const ms = Date.now() - t0;
    sock.destroy();
    const grown = peakRssKiB(gw) - before;
    assert.ok(closed, 'the gateway closed the connection of a client that does not read');
    // (Unbounded, this is hundreds of MiB; the bound leaves room for a sanitizer build.)
    assert.ok(grown < 192 * 1024, `peak RSS grew by ${grown} KiB`);
    // Far fewer requests were taken than sent: the rest never left the client.
    const [{ n: answered }] = await waitFor(async () => {
      const a = await sqlite(gw.dbPath, "SELECT count(*) AS n FROM usage_events WHERE reason = 'missing_key'");
      await new Promise((r) => setTimeout(r, 300));
      const b = await sqlite(gw.dbPath, "SELECT count(*) AS n FROM usage_events WHERE reason = 'missing_key'");
      return a[0].n === b[0].n ? b : null;
    }, { timeoutMs: 30000 });
    assert.ok(answered < n / 4, `${answered} of ${n} requests answered in ${ms} ms`);
  });

  test('a pipelining client that reads late gets every answer, in order', async () => {
    const n = 60000; // ~1.6 MiB of requests, ~13 MiB of 401s: past the bound, then drained
    const reqs = [];
    for (let i = 0; i < n; i++) reqs.push(`GET /p${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const sock = net.connect({ port: gw.port, host: '127.0.0.1' });
    sock.on('error', () => {});
    sock.pause();
    sock.write(reqs.join(''));
    // Let the gateway fill what it may and stop (well within idle_timeout), then read.
    await new Promise((r) => setTimeout(r, 300));
    let count = 0;
    let tail = '';
    const done = new Promise((resolve) => {
      sock.on('data', (d) => {
        const text = tail + d.toString('latin1');
        const m = text.match(/HTTP\/1\.1 401 /g);
        count += m ? m.length : 0;
        tail = text.slice(-12); // shorter than the pattern: no answer is counted twice
        if (count >= n) resolve(true);
      });
      sock.on('close', () => resolve(false));
    });
    sock.resume();
    const all = await done;
    sock.destroy();
    assert.ok(all, `only ${count} of ${n} answers before the close`);
  });
});

// ---- 3. every connection state has a deadline -------------------------------------------

/**
 * Opens a connection, writes `head`, then `body` one byte every `everyMs` (until the server
 * closes); resolves with {data, closed, ms} when the server closes or after timeoutMs.
 */
function trickle(port, head, body = '', { everyMs = 100, timeoutMs = 6000 } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const parts = [];
    let i = 0;
    let done = false;
    const sock = net.connect({ port, host: '127.0.0.1' });
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearInterval(tick);
      clearTimeout(timer);
      sock.destroy();
      resolve({ data: Buffer.concat(parts).toString('utf8'), closed, ms: Date.now() - t0 });
    };
    const tick = setInterval(() => {
      if (i < body.length && !sock.destroyed) sock.write(body[i++]);
    }, everyMs);
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('connect', () => sock.write(head));
    sock.on('data', (d) => parts.push(d));
    sock.on('close', () => finish(true));
    sock.on('error', () => finish(true));
  });
}

describe('deadlines for every connection state', () => {
  let up;
  let gw;
  let key;
  before(async () => {
    // Answers at once, without waiting for the request body.
    up = await hostileUpstream((head, sock) => sock.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'));
    gw = await startGateway({
      upstreams: [{ name: 'up', targets: [up.url] }],
      routes: [
        { name: 'oa', path_prefix: '/v1/', upstream: 'up', kind: 'openai' },
        { name: 'all', path_prefix: '/', upstream: 'up', kind: 'http' },
      ],
      extra: { server: { header_timeout: '1s', body_timeout: '1500ms', idle_timeout: '1s' } },
      workers: 1,
    });
    ({ secret: key } = await createTenantKey(gw, 'slow'));
    await waitForKey(gw, key, '/ok');
  });
  after(async () => {
    await gw?.stop();
    await up?.stop();
  });

  test('a 401 whose announced body never comes: closed by body_timeout', async () => {
    const r = await trickle(gw.port, 'POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n', '', { timeoutMs: 6000 });
    assert.equal(statusOf(r.data), 401);
    assert.ok(r.closed, `still open after ${r.ms} ms`);
    assert.ok(r.ms < 4000, `closed after ${r.ms} ms`);
  });

  test('a 401 whose body trickles: closed by body_timeout, not kept alive by each byte', async () => {
    const r = await trickle(gw.port, 'POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n', 'x'.repeat(1000), {
      everyMs: 200,
      timeoutMs: 6000,
    });
    assert.equal(statusOf(r.data), 401);
    assert.ok(r.closed && r.ms < 4000, `closed ${r.closed} after ${r.ms} ms`);
  });

  test('an upstream that answered before the body came: the rest has a deadline too', async () => {
    const r = await trickle(
      gw.port,
      `POST /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Length: 60000\r\n\r\nabc`,
      '',
      { timeoutMs: 8000 },
    );
    assert.equal(statusOf(r.data), 200, r.data);
    assert.ok(r.closed, `still open after ${r.ms} ms`);
    assert.ok(r.ms < 6000, `closed after ${r.ms} ms`);
  });

  test('a held AI body that trickles gets 408 at body_timeout, not only per byte', async () => {
    const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(200) }] });
    const r = await trickle(
      gw.port,
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nx-request-id: slow-held-1\r\nContent-Length: ${body.length}\r\n\r\n`,
      body,
      { everyMs: 100, timeoutMs: 6000 },
    );
    assert.equal(statusOf(r.data), 408, r.data);
    assert.ok(r.ms >= 1400 && r.ms < 4000, `408 after ${r.ms} ms`);
    const [ev] = await waitFor(async () => {
      const rows = await sqlite(gw.dbPath, "SELECT status, reason FROM usage_events WHERE request_id = 'slow-held-1'");
      return rows.length ? rows : null;
    });
    assert.deepEqual(ev, { status: 408, reason: 'body_timeout' });
  });

  test('admin listener: a head that never completes is closed after header_timeout', async () => {
    const r = await trickle(gw.adminPort, 'GET /healthz HTTP/1.1\r\nHost: x\r\n', 'X-Slow: yes', { everyMs: 200, timeoutMs: 6000 });
    assert.ok(r.closed, `admin connection still open after ${r.ms} ms`);
    assert.ok(r.ms < 4000, `closed after ${r.ms} ms`);
    assert.equal(r.data, '', 'no answer to a head that never completed');
  });

  test('admin listener: a silent connection is closed after header_timeout', async () => {
    const r = await trickle(gw.adminPort, '', '', { timeoutMs: 6000 });
    assert.ok(r.closed && r.ms < 4000, `closed ${r.closed} after ${r.ms} ms`);
  });

  test('admin listener still answers', async () => {
    const r = await once(gw.adminPort, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(statusOf(r.data), 200);
  });
});

// ---- 4. header parsing strictness; 5. request-target tricks -----------------------------

describe('strict heads and canonical request-targets', () => {
  let mock;
  let up;
  let gw;
  let key;
  before(async () => {
    mock = await startMock();
    // Names a header in its Connection header: that header is hop-by-hop.
    up = await hostileUpstream((head, sock) =>
      sock.end('HTTP/1.1 200 OK\r\nX-Up-Hop: secret\r\nConnection: close, X-Up-Hop\r\nX-Kept: 1\r\nContent-Length: 2\r\n\r\nok'),
    );
    gw = await startGateway({
      upstreams: [
        { name: 'mock', targets: [mock.url] },
        { name: 'hop', targets: [up.url] },
      ],
      routes: [
        { name: 'an', path_prefix: '/v1/messages', upstream: 'mock', kind: 'anthropic' },
        { name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' },
        { name: 'hop', path_prefix: '/hop', upstream: 'hop', kind: 'http' },
        { name: 'all', path_prefix: '/', upstream: 'mock', kind: 'http' },
      ],
      workers: 1,
    });
    ({ secret: key } = await createTenantKey(gw, 'strict'));
    await waitForKey(gw, key, '/ok');
  });
  after(async () => {
    await gw?.stop();
    await up?.stop();
    await mock?.stop();
  });

  const event = async (id) =>
    (
      await waitFor(async () => {
        const rows = await sqlite(
          gw.dbPath,
          `SELECT status, route, path, model, tokens_in, tokens_out, reason FROM usage_events WHERE request_id = '${id}'`,
        );
        return rows.length ? rows : null;
      })
    )[0];

  for (const [name, head] of [
    ['Host : x', 'GET /x?echo=1 HTTP/1.1\r\nHost : evil\r\nAuthorization: Bearer KEY\r\n\r\n'],
    ['Content-Length : 4', 'POST /x?echo=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer KEY\r\nContent-Length : 4\r\n\r\nabcd'],
    [
      'Transfer-Encoding : chunked',
      'POST /x?echo=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer KEY\r\nTransfer-Encoding : chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n',
    ],
    [
      'Transfer-Encoding: gzip, chunked',
      'POST /x?echo=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer KEY\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n',
    ],
    [
      'two Transfer-Encoding lines',
      'POST /x?echo=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer KEY\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n',
    ],
  ]) {
    test(`${name}: 400, not forwarded`, async () => {
      const r = await once(gw.port, head.replace('KEY', key));
      assert.equal(statusOf(r.data), 400, r.data);
      assert.ok(r.closed, 'connection closed after the 400');
    });
  }

  test('headers named in Connection are not forwarded, either way', async () => {
    const r = await once(
      gw.port,
      `GET /x?echo=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nConnection: X-Hop, close\r\nX-Hop: secret\r\nX-Other: 1\r\n\r\n`,
    );
    assert.equal(statusOf(r.data), 200, r.data);
    const echo = JSON.parse(r.data.slice(r.data.indexOf('\r\n\r\n') + 4));
    assert.equal(echo.headers['x-hop'], undefined, 'X-Hop reached the upstream');
    assert.equal(echo.headers['x-other'], '1');
    const h = await once(gw.port, `GET /hop HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nConnection: close\r\n\r\n`);
    assert.equal(statusOf(h.data), 200, h.data);
    assert.doesNotMatch(h.data, /x-up-hop/i, 'X-Up-Hop reached the client');
    assert.match(h.data, /\r\nX-Kept: 1\r\n/);
  });

  test('a key in the query string is redacted in events and the access log; a tollgate key never reaches the upstream', async () => {
    const r = await once(
      gw.port,
      `GET /x?echo=1&api_key=${key}&KEY=upstream-own&q=2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nx-request-id: qkey-1\r\nConnection: close\r\n\r\n`,
    );
    assert.equal(statusOf(r.data), 200, r.data);
    const echo = JSON.parse(r.data.slice(r.data.indexOf('\r\n\r\n') + 4));
    assert.equal(echo.path, '/x?echo=1&KEY=upstream-own&q=2', 'the tenant key is stripped, the upstream key kept');
    const ev = await event('qkey-1');
    assert.equal(ev.path, '/x?echo=1&KEY=REDACTED&q=2');
    await waitFor(() => fs.existsSync(gw.accessLog) && fs.readFileSync(gw.accessLog, 'utf8').includes('qkey-1'));
    const log = fs.readFileSync(gw.accessLog, 'utf8');
    assert.ok(!log.includes(key) && !log.includes('upstream-own'), 'a credential in the access log');
    // A key the upstream is given (not a tollgate one) is still redacted in the records.
    const r2 = await once(gw.port, `GET /x?Api_Key=abc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nx-request-id: qkey-2\r\nConnection: close\r\n\r\n`);
    assert.equal(statusOf(r2.data), 200);
    assert.equal((await event('qkey-2')).path, '/x?Api_Key=REDACTED');
  });

  const chat = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there' }], max_tokens: 2 });
  const post = (path, id) =>
    `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nx-request-id: ${id}\r\nConnection: close\r\nContent-Length: ${chat.length}\r\n\r\n${chat}`;

  for (const [name, path] of [
    ['a fragment', '/v1/chat/completions#x'],
    ['a TAB', '/v1/chat/\tcompletions'],
    ['an encoded NUL', '/v1/chat/completions%00'],
  ]) {
    test(`request-target with ${name}: 400`, async () => {
      const id = `bad-target-${name.replace(/\W+/g, '-')}`;
      const r = await once(gw.port, post(path, id));
      assert.equal(statusOf(r.data), 400, r.data);
      // (Recorded as sent, but a fragment, which may hold anything, is not kept.)
      const logged = path.replace(/#.*/, '#REDACTED');
      const [ev] = await waitFor(async () => {
        const rows = await sqlite(gw.dbPath, `SELECT status, path, reason FROM usage_events WHERE path LIKE '/v1/chat/%' AND status = 400 AND path = '${logged.replace(/'/g, "''")}'`);
        return rows.length ? rows : null;
      });
      assert.equal(ev.reason, 'malformed_request');
    });
  }

  for (const [name, path, forwarded] of [
    ['dot-segments', '/x/../v1/chat/completions', '/v1/chat/completions'],
    ['a percent-encoded letter', '/v1/chat/complet%69ons', '/v1/chat/completions'],
    ['encoded dot-segments', '/v1/x/%2e%2E/chat/completions', '/v1/chat/completions'],
  ]) {
    test(`${name} are normalised before routing and metering, and forwarded normalised`, async () => {
      const id = `norm-${name.replace(/\W+/g, '-')}`;
      const r = await once(gw.port, post(path, id));
      assert.equal(statusOf(r.data), 200, r.data);
      assert.match(r.data, /x-mock-usage: /i, `the mock did not see ${forwarded}`);
      const ev = await event(id);
      assert.equal(ev.route, 'oa');
      assert.equal(ev.path, forwarded);
      assert.equal(ev.model, 'gpt-4o-mini');
      assert.ok(ev.tokens_in > 0 && ev.tokens_out === 2, `tokens ${ev.tokens_in}/${ev.tokens_out}`);
    });
  }

  for (const [name, path] of [
    ['";a=b" parameters', '/v1/chat/completions;a=b'],
    ['a trailing slash', '/v1/chat/completions/'],
    ['an encoded slash', '/v1/chat%2Fcompletions'],
  ]) {
    test(`${name} do not hide the endpoint`, async () => {
      const id = `param-${name.replace(/\W+/g, '-')}`;
      await once(gw.port, post(path, id));
      const ev = await event(id);
      assert.equal(ev.route, 'oa');
      assert.equal(ev.path, path, 'forwarded as sent (parameters are the upstream\'s business)');
      assert.equal(ev.model, 'gpt-4o-mini', 'the chat endpoint was recognised (the model read from the body)');
    });
  }

  test('a route prefix matches on a segment boundary: /v1/messagesX is not the /v1/messages route', async () => {
    const id = 'prefix-x';
    await once(gw.port, post('/v1/messagesX', id));
    assert.equal((await event(id)).route, 'oa');
    await once(gw.port, post('/v1/messages', 'prefix-exact'));
    assert.equal((await event('prefix-exact')).route, 'an');
  });
});

// ---- 6. a long X-Forwarded-For behind a trusted proxy ------------------------------------

describe('X-Forwarded-For of any length', () => {
  let mock;
  let gw;
  let key;
  before(async () => {
    mock = await startMock();
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'all', path_prefix: '/', upstream: 'mock', kind: 'http' }],
      extra: { server: { trusted_proxies: ['127.0.0.1/32'], max_header_bytes: '16k' } },
      workers: 1,
    });
    ({ secret: key } = await createTenantKey(gw, 'xff'));
    await waitForKey(gw, key, '/ok');
    const r = await gw.cli(['ip', 'deny', '203.0.113.0/24']);
    assert.equal(r.code, 0, r.stderr);
    // The rule is live once a short header naming a denied client is refused.
    await waitFor(
      async () => statusOf((await once(gw.port, get('203.0.113.7'))).data) === 403,
      { message: 'the deny rule in effect' },
    );
  });
  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  const get = (xff) =>
    `GET /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nX-Forwarded-For: ${xff}\r\nConnection: close\r\n\r\n`;

  test('a line over 2 KiB is read, not skipped: the denied client is refused', async () => {
    // A client-written padding, then what the trusted proxy appended: the real client.
    const xff = '10.0.0.1, '.repeat(300) + '203.0.113.7';
    assert.ok(xff.length > 2048);
    const r = await once(gw.port, get(xff));
    assert.equal(statusOf(r.data), 403, r.data.slice(0, 200));
  });

  test('lines that only together pass 2 KiB are all read', async () => {
    const pad = '10.0.0.1, '.repeat(150);
    const r = await once(
      gw.port,
      `GET /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nX-Forwarded-For: ${pad}10.0.0.2\r\n` +
        `X-Forwarded-For: ${pad}203.0.113.9\r\nConnection: close\r\n\r\n`,
    );
    assert.equal(statusOf(r.data), 403, r.data.slice(0, 200));
  });

  test('every X-Forwarded-For line reaches the upstream, joined, then the peer', async () => {
    const r = await once(
      gw.port,
      `GET /x?echo=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nX-Forwarded-For: 198.51.100.1\r\n` +
        'X-Forwarded-For: 198.51.100.2\r\nConnection: close\r\n\r\n',
    );
    assert.equal(statusOf(r.data), 200, r.data.slice(0, 200));
    const echo = JSON.parse(r.data.slice(r.data.indexOf('\r\n\r\n') + 4));
    assert.equal(echo.headers['x-forwarded-for'], '198.51.100.1, 198.51.100.2, 127.0.0.1');
  });

  test('an allowed client behind a long line still passes', async () => {
    const r = await once(gw.port, get('10.0.0.1, '.repeat(300) + '198.51.100.4'));
    assert.equal(statusOf(r.data), 200, r.data.slice(0, 200));
  });

  test('past the header limit the request is refused (431), never passed with the header skipped', async () => {
    const r = await once(gw.port, get('10.0.0.1, '.repeat(2000) + '203.0.113.7'));
    assert.equal(statusOf(r.data), 431, r.data.slice(0, 200));
  });
});
