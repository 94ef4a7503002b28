// The mock upstream (tests/mock/upstream.c) is what every other e2e test and the benchmarks
// stand on, so its behaviours are pinned here, through node:http, curl and raw sockets.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { curl, curlJson, mockBin, raw, request, run, sha256, startMock, tempDir } from './lib/harness.mjs';

let mock;
before(async () => {
  mock = await startMock({ threads: 2 });
});
after(async () => {
  // exit 0 on SIGTERM, which also means a clean leak check under ASan or valgrind
  // (MOCK_UPSTREAM_BIN=... with --error-exitcode)
  if (mock) assert.deepEqual(await mock.stop(), { code: 0, signal: null });
});

/** Splits raw HTTP/1.1 output into responses with Content-Length bodies. */
function splitResponses(text) {
  const out = [];
  let rest = text;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    assert.ok(end > 0, `incomplete response head in ${JSON.stringify(rest)}`);
    const head = rest.slice(0, end);
    const len = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
    out.push({ status: Number(head.slice(9, 12)), head, body: rest.slice(end + 4, end + 4 + len) });
    rest = rest.slice(end + 4 + len);
  }
  return out;
}

describe('default response', () => {
  test('node:http', async () => {
    const r = await request(`${mock.url}/anything/at/all`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers['content-length'], '11');
    assert.deepEqual(r.json(), { ok: true });
  });

  test('curl', async () => {
    const r = await curlJson(`${mock.url}/v1/x`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(r.body, { ok: true });
  });

  test('GET /healthz ignores behaviour parameters', async () => {
    const r = await curlJson(`${mock.url}/healthz?status=500&hang=1`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { ok: true });
  });

  test('HEAD has the length but no body', async () => {
    const r = await curl(['-s', '-I', `${mock.url}/?size=123`]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(r.stdout, /\r\nContent-Length: 123\r\n/);
  });
});

describe('status=', () => {
  test('node:http', async () => {
    const r = await request(`${mock.url}/?status=503`);
    assert.equal(r.status, 503);
    assert.deepEqual(r.json(), { ok: true });
  });

  test('curl', async () => {
    const r = await curl(['-s', '-o', '/dev/null', '-w', '%{http_code}', `${mock.url}/x?status=429`]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, '429');
  });

  test('204 has no body and no Content-Length', async () => {
    const r = await request(`${mock.url}/?status=204`);
    assert.equal(r.status, 204);
    assert.equal(r.headers['content-length'], undefined);
    assert.equal(r.body.length, 0);
  });

  test('out of range is a 400', async () => {
    const r = await request(`${mock.url}/?status=42`);
    assert.equal(r.status, 400);
  });
});

describe('size=', () => {
  test('node:http: exactly N bytes with Content-Length', async () => {
    for (const n of [0, 1, 100000, 3 * 1024 * 1024 + 7]) {
      const r = await request(`${mock.url}/?size=${n}`);
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], String(n));
      assert.equal(r.body.length, n);
    }
  });

  test('curl', async () => {
    const r = await curl(['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', `${mock.url}/?size=65537`]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, '200 65537');
  });

  test('combines with status=', async () => {
    const r = await request(`${mock.url}/?size=10&status=502`);
    assert.equal(r.status, 502);
    assert.equal(r.body.length, 10);
  });
});

describe('delay_ms=', () => {
  // libuv keeps loop time in whole milliseconds, truncated, so a timer can end up to 1 ms
  // before delay_ms of wall time has passed since the request arrived.
  test('node:http', async () => {
    const r = await request(`${mock.url}/?delay_ms=300`);
    assert.equal(r.status, 200);
    assert.ok(r.ms >= 299, `took ${r.ms} ms`);
    assert.ok(r.ms < 3000, `took ${r.ms} ms`);
  });

  test('curl', async () => {
    const r = await curl(['-s', '-o', '/dev/null', '-w', '%{http_code} %{time_total}', `${mock.url}/?delay_ms=200`]);
    const [code, secs] = r.stdout.split(' ');
    assert.equal(code, '200');
    assert.ok(Number(secs) >= 0.199, `took ${secs} s`);
  });

  test('a delayed request does not hold up other connections', async () => {
    const slow = request(`${mock.url}/?delay_ms=500`);
    const fast = await request(`${mock.url}/`);
    assert.ok(fast.ms < 400, `fast request took ${fast.ms} ms`);
    assert.equal((await slow).status, 200);
  });
});

describe('chunked=', () => {
  test('node:http: K chunks spaced by chunk_delay_ms', async () => {
    const r = await request(`${mock.url}/?chunked=4&size=4000&chunk_delay_ms=100`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['transfer-encoding'], 'chunked');
    assert.equal(r.headers['content-length'], undefined);
    assert.equal(r.body.length, 4000);
    // Group 'data' events that arrive within 50 ms of each other: there must be four groups
    // of 1000 bytes. The server queues chunk i no sooner than i*100 ms after the request
    // arrived, so that bound holds from the client's start too; gaps between arrivals can be
    // shorter than 100 ms when an earlier chunk was delivered late (e.g. under valgrind).
    const groups = [];
    for (const c of r.chunks) {
      const g = groups.at(-1);
      if (g && c.at - g.at < 50) g.bytes += c.bytes;
      else groups.push({ ...c });
    }
    const trace = JSON.stringify(r.chunks);
    assert.equal(groups.length, 4, trace);
    assert.deepEqual(groups.map((g) => g.bytes), [1000, 1000, 1000, 1000], trace);
    groups.forEach((g, i) => assert.ok(g.at >= i * 100 - 1, `group ${i} at ${g.at} ms: ${trace}`));
  });

  test('curl --raw shows the chunk framing', async () => {
    const r = await curl(['-s', '--raw', `${mock.url}/?chunked=3&size=10`]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, '3\r\n012\r\n3\r\n345\r\n4\r\n6789\r\n0\r\n\r\n');
  });

  test('default size is 1000 bytes', async () => {
    const r = await curl(['-s', '-o', '/dev/null', '-w', '%{size_download}', `${mock.url}/?chunked=5`]);
    assert.equal(r.stdout, '1000');
  });

  test('HTTP/1.0 gets a close-delimited body instead', async () => {
    const r = await raw(mock.port, 'GET /?chunked=2&size=6 HTTP/1.0\r\n\r\n');
    assert.equal(r.closed, true);
    assert.match(r.data, /\r\nConnection: close\r\n/);
    assert.doesNotMatch(r.data, /Transfer-Encoding/i);
    assert.ok(r.data.endsWith('\r\n\r\n012345'), JSON.stringify(r.data));
  });
});

describe('sse=', () => {
  const expected = 'data: {"i":0}\n\ndata: {"i":1}\n\ndata: {"i":2}\n\ndata: [DONE]\n\n';

  test('node:http: events then [DONE], interval_ms apart', async () => {
    const r = await request(`${mock.url}/v1/chat?sse=3&interval_ms=60`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/event-stream');
    assert.equal(r.headers['transfer-encoding'], 'chunked');
    assert.equal(r.text, expected);
    // Event i is queued no sooner than i*60 ms after the request arrived (see chunked= above).
    assert.ok(r.chunks.length >= 2, JSON.stringify(r.chunks));
    assert.ok(r.chunks.at(-1).at >= 3 * 60 - 1, JSON.stringify(r.chunks));
  });

  test('curl -N', async () => {
    const r = await curl(['-s', '-N', `${mock.url}/?sse=3`]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, expected);
  });

  test('sse=0 sends only [DONE]', async () => {
    const r = await request(`${mock.url}/?sse=0`);
    assert.equal(r.text, 'data: [DONE]\n\n');
  });
});

describe('echo=1', () => {
  const body = crypto.randomBytes(1024 * 1024);

  test('node:http: POST 1 MiB with Content-Length', async () => {
    const r = await request(`${mock.url}/v1/things?echo=1&x=%20y`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/octet-stream',
        'X-Custom': 'Value',
        'X-Multi': ['a', 'b'],
        'Content-Length': body.length,
      },
      body,
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json');
    const e = r.json();
    assert.equal(e.method, 'POST');
    assert.equal(e.path, '/v1/things?echo=1&x=%20y');
    assert.equal(e.headers['x-custom'], 'Value');
    assert.equal(e.headers['x-multi'], 'a, b');
    assert.equal(e.headers['content-type'], 'application/octet-stream');
    assert.equal(e.headers['content-length'], String(body.length));
    assert.equal(e.body_bytes, body.length);
    assert.equal(e.body_sha256, sha256(body));
  });

  test('node:http: chunked request body', async () => {
    const pieces = [body.subarray(0, 1000), body.subarray(1000, 500000), body.subarray(500000)];
    const r = await request(`${mock.url}/?echo=1`, { method: 'PUT', body: pieces });
    const e = r.json();
    assert.equal(e.method, 'PUT');
    assert.equal(e.headers['transfer-encoding'], 'chunked');
    assert.equal(e.body_bytes, body.length);
    assert.equal(e.body_sha256, sha256(body));
  });

  test('curl: POST 1 MiB, then a chunked upload', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'body.bin');
    await fs.promises.writeFile(file, body);
    const r = await curlJson(`${mock.url}/up?echo=1`, {
      headers: { Authorization: 'Bearer tg_secret', 'Content-Type': 'application/octet-stream' },
      args: ['--data-binary', `@${file}`],
    });
    assert.equal(r.status, 200, r.stderr);
    assert.equal(r.body.method, 'POST');
    assert.equal(r.body.headers.authorization, 'Bearer tg_secret');
    assert.equal(r.body.body_bytes, body.length);
    assert.equal(r.body.body_sha256, sha256(body));

    const c = await curlJson(`${mock.url}/up?echo=1`, {
      headers: { 'Transfer-Encoding': 'chunked' },
      args: ['--data-binary', `@${file}`],
    });
    assert.equal(c.body.headers['transfer-encoding'], 'chunked');
    assert.equal(c.body.body_bytes, body.length);
    assert.equal(c.body.body_sha256, sha256(body));
  });

  test('Expect: 100-continue is answered at once', async () => {
    const r = await curlJson(`${mock.url}/?echo=1`, {
      headers: { Expect: '100-continue' },
      data: 'hello',
    });
    assert.equal(r.status, 200);
    assert.equal(r.body.body_sha256, sha256('hello'));
    // curl waits 1 s for a 100 Continue that never comes; it must not have waited.
    const t = await curl(['-s', '-o', '/dev/null', '-w', '%{time_total}', '-H', 'Expect: 100-continue',
      '--data-binary', 'hello', `${mock.url}/`]);
    assert.ok(Number(t.stdout) < 0.5, `took ${t.stdout} s`);
  });

  test('GET without a body hashes the empty string', async () => {
    const r = await request(`${mock.url}/?echo=1`);
    const e = r.json();
    assert.equal(e.method, 'GET');
    assert.equal(e.body_bytes, 0);
    assert.equal(e.body_sha256, sha256(''));
  });
});

describe('close= and hang=', () => {
  test('close=1: node:http sees the connection end without a response', async () => {
    await assert.rejects(request(`${mock.url}/?close=1`), (e) => {
      assert.match(e.code ?? e.message, /ECONNRESET|socket hang up/);
      return true;
    });
  });

  test('close=1: curl reports an empty reply (52)', async () => {
    const r = await curl(['-s', `${mock.url}/?close=1`]);
    assert.equal(r.code, 52);
  });

  test('close=1: raw socket closed, nothing received', async () => {
    const r = await raw(mock.port, 'GET /?close=1 HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(r.closed, true);
    assert.equal(r.data, '');
  });

  test('hang=1: no response, connection left open', async () => {
    const r = await raw(mock.port, 'GET /?hang=1 HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 400 });
    assert.equal(r.closed, false);
    assert.equal(r.data, '');
  });
});

describe('connection handling', () => {
  test('two pipelined GETs in one write get two responses, in order', async () => {
    const r = await raw(
      mock.port,
      'GET /a?delay_ms=100&size=3 HTTP/1.1\r\nHost: x\r\n\r\n' +
        'GET /b?status=201 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    assert.equal(r.closed, true);
    const rs = splitResponses(r.data);
    assert.equal(rs.length, 2, r.data);
    assert.equal(rs[0].status, 200);
    assert.equal(rs[0].body, '012');
    assert.equal(rs[1].status, 201);
    assert.equal(rs[1].body, '{"ok":true}');
    assert.match(rs[1].head, /\r\nConnection: close/);
  });

  test('many pipelined requests with bodies', async () => {
    let req = '';
    for (let i = 0; i < 50; i++) {
      req += `POST /p${i}?size=${i} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello`;
    }
    req += 'GET /last HTTP/1.1\r\nConnection: close\r\n\r\n';
    const r = await raw(mock.port, req);
    const rs = splitResponses(r.data);
    assert.equal(rs.length, 51);
    for (let i = 0; i < 50; i++) assert.equal(rs[i].body.length, i);
  });

  test('HTTP/1.0 closes after the response; keep-alive is honoured', async () => {
    const r = await raw(mock.port, 'GET / HTTP/1.0\r\n\r\n');
    assert.equal(r.closed, true);
    assert.match(r.data, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(r.data, /\r\nConnection: close\r\n/);
    const k = await raw(mock.port, 'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', { timeoutMs: 300 });
    assert.equal(k.closed, false);
    assert.match(k.data, /\r\nConnection: keep-alive\r\n/);
  });

  test('malformed request gets 400 and a close', async () => {
    const r = await raw(mock.port, 'NOT HTTP AT ALL\r\n\r\n');
    assert.equal(r.closed, true);
    assert.match(r.data, /^HTTP\/1\.1 400 /);
  });

  test('oversized header block gets 431', async () => {
    const r = await raw(mock.port, `GET / HTTP/1.1\r\nX-Big: ${'a'.repeat(100000)}\r\n\r\n`);
    assert.match(r.data, /^HTTP\/1\.1 431 /);
  });

  test('curl reuses one connection for several URLs', async () => {
    const r = await curl(['-s', '-v', '-o', '/dev/null', '-o', '/dev/null', `${mock.url}/1`, `${mock.url}/2?size=5`]);
    assert.equal(r.code, 0);
    assert.match(r.stderr, /Re-using existing connection/);
  });

  test('concurrent clients across threads', async () => {
    const rs = await Promise.all(Array.from({ length: 100 }, (_, i) => request(`${mock.url}/?size=${i}`)));
    rs.forEach((r, i) => assert.equal(r.body.length, i));
  });
});

describe('process', () => {
  test('--port-file, --threads and exit 0 on SIGTERM', async () => {
    const dir = await tempDir();
    const portFile = path.join(dir, 'port');
    const m = await startMock({ threads: 4 });
    assert.ok(m.port > 0);
    assert.equal((await request(`${m.url}/`)).status, 200);
    assert.deepEqual(await m.stop(), { code: 0, signal: null });

    // --port-file, checked directly: the mock runs until killed, so read then stop it.
    const { spawn } = await import('node:child_process');
    const p = spawn(mockBin, ['--listen', '127.0.0.1:0', '--port-file', portFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    const exited = new Promise((resolve) => p.once('exit', (code, signal) => resolve({ code, signal })));
    const deadline = Date.now() + 5000;
    while (!/listening on/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const port = Number(fs.readFileSync(portFile, 'utf8').trim());
    assert.equal(out, `mock-upstream listening on 127.0.0.1:${port}\n`);
    assert.equal((await request(`http://127.0.0.1:${port}/`)).status, 200);
    p.kill('SIGINT');
    assert.deepEqual(await exited, { code: 0, signal: null });
  });

  test('bad arguments exit 2', async () => {
    const r = await run(mockBin, ['--listen', 'nonsense']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /bad --listen/);
  });
});
