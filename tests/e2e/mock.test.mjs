// The mock upstream (tests/mock/upstream.c) is what every other e2e test and the benchmarks
// stand on, so its behaviours are pinned here, through node:http, curl and raw sockets.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';

import {
  curl,
  curlJson,
  mockBin,
  parseSse,
  raw,
  request,
  run,
  sha256,
  startMock,
  tempDir,
} from './lib/harness.mjs';

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

// ---- AI endpoints: OpenAI- and Anthropic-shaped answers, token counts by a fixed rule ----

/** POSTs a JSON body (object, or a string sent as is) to the mock. */
function ai(path, body, headers = {}) {
  return request(`${mock.url}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** The mock's rule: ceil(UTF-8 bytes of all prompt text / 4). */
const tokensOf = (...texts) => Math.ceil(texts.reduce((n, t) => n + Buffer.byteLength(t), 0) / 4);
const outText = (n) => Array.from({ length: n }, (_, i) => `tok${i} `).join('');
const usageHeader = (r) => JSON.parse(r.headers['x-mock-usage']);
/** Compact JSON, as the real APIs send it: no whitespace outside strings. */
function assertCompact(data) {
  JSON.parse(data);
  assert.doesNotMatch(data.replace(/"(?:[^"\\]|\\.)*"/g, '""'), /\s/, data);
}

describe('POST /v1/chat/completions', () => {
  const messages = [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: [{ type: 'text', text: 'héllo ' }, { type: 'text', text: 'wörld' }] },
  ];
  const T = tokensOf('You are terse.', 'héllo ', 'wörld');

  test('non-streamed: a chat.completion with usage; x-mock-usage says the same', async () => {
    const r = await ai('/v1/chat/completions', { model: 'gpt-4o-mini', messages, max_tokens: 5 });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json');
    assertCompact(r.text);
    const b = r.json();
    assert.match(b.id, /^chatcmpl-[0-9a-f]{24}$/);
    assert.equal(b.object, 'chat.completion');
    assert.equal(b.created, 1700000000);
    assert.equal(b.model, 'gpt-4o-mini');
    assert.deepEqual(b.choices[0].message.role, 'assistant');
    assert.equal(b.choices[0].message.content, outText(5));
    assert.equal(b.choices[0].finish_reason, 'stop');
    assert.deepEqual(b.usage, {
      prompt_tokens: T,
      completion_tokens: 5,
      total_tokens: T + 5,
      prompt_tokens_details: { cached_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0 },
    });
    assert.deepEqual(usageHeader(r), { model: 'gpt-4o-mini', input: T, output: 5, cached: 0, cache_write: 0 });
    // deterministic: the same request, the same bytes
    const again = await ai('/v1/chat/completions', { model: 'gpt-4o-mini', messages, max_tokens: 5 });
    assert.equal(again.text, r.text);
  });

  test('output tokens: max_completion_tokens over max_tokens, 16 by default, capped at 10000', async () => {
    const msgs = [{ role: 'user', content: 'x' }];
    const a = await ai('/v1/chat/completions', { model: 'm', messages: msgs, max_tokens: 9, max_completion_tokens: 2 });
    assert.equal(a.json().usage.completion_tokens, 2);
    const d = await ai('/v1/chat/completions', { model: 'm', messages: msgs });
    assert.equal(d.json().usage.completion_tokens, 16);
    assert.equal(d.json().choices[0].message.content, outText(16));
    const big = await ai('/v1/chat/completions', { model: 'm', messages: msgs, max_tokens: 50000 });
    assert.equal(big.json().usage.completion_tokens, 10000);
    assert.equal(big.json().choices[0].message.content, outText(10000));
  });

  test('prompt_cache_key: cached_tokens = floor(prompt_tokens / 2)', async () => {
    const content = 'a'.repeat(37); // 10 tokens
    const r = await ai('/v1/chat/completions', {
      model: 'm',
      messages: [{ role: 'user', content }],
      max_tokens: 1,
      prompt_cache_key: 'tenant-1',
    });
    assert.equal(r.json().usage.prompt_tokens, 10);
    assert.equal(r.json().usage.prompt_tokens_details.cached_tokens, 5);
    assert.deepEqual(usageHeader(r), { model: 'm', input: 10, output: 1, cached: 5, cache_write: 0 });
  });

  test('streamed without include_usage: OpenAI chunks, no usage key anywhere', async () => {
    const r = await ai('/v1/chat/completions', { model: 'gpt-4o-mini', messages, max_tokens: 3, stream: true });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.equal(r.headers['transfer-encoding'], 'chunked');
    assert.doesNotMatch(r.text, /usage/);
    assert.ok(r.text.endsWith('\n\ndata: [DONE]\n\n'), r.text);
    const evs = parseSse(r.text);
    assert.equal(evs.length, 1 + 3 + 1 + 1);
    assert.ok(evs.every((e) => e.event === null));
    const chunks = evs.slice(0, -1).map((e) => (assertCompact(e.data), JSON.parse(e.data)));
    const id = chunks[0].id;
    assert.match(id, /^chatcmpl-[0-9a-f]{24}$/);
    for (const c of chunks) {
      assert.equal(c.id, id);
      assert.equal(c.object, 'chat.completion.chunk');
      assert.equal(c.created, 1700000000);
      assert.equal(c.model, 'gpt-4o-mini');
      assert.equal(c.choices.length, 1);
    }
    assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
    assert.deepEqual(chunks.slice(1, 4).map((c) => c.choices[0].delta.content), ['tok0 ', 'tok1 ', 'tok2 ']);
    assert.deepEqual(chunks[4].choices[0].delta, {});
    assert.equal(chunks[4].choices[0].finish_reason, 'stop');
    assert.deepEqual(usageHeader(r), { model: 'gpt-4o-mini', input: T, output: 3, cached: 0, cache_write: 0 });
  });

  test('streamed with include_usage: "usage":null last in every chunk, then a usage chunk; stripping them gives the plain stream byte for byte', async () => {
    const req = { model: 'gpt-4o-mini', messages, max_tokens: 4, stream: true };
    const plain = await ai('/v1/chat/completions', req);
    const withUsage = await ai('/v1/chat/completions', { ...req, stream_options: { include_usage: true } });
    assert.equal(withUsage.status, 200);
    const evs = parseSse(withUsage.text);
    assert.equal(evs.length, 1 + 4 + 1 + 1 + 1);
    assert.equal(evs.at(-1).data, '[DONE]');
    for (const e of evs.slice(0, -2)) {
      assertCompact(e.data);
      assert.ok(e.data.endsWith(',"usage":null}'), e.data);
    }
    const last = JSON.parse(evs.at(-2).data);
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, {
      prompt_tokens: T,
      completion_tokens: 4,
      total_tokens: T + 4,
      prompt_tokens_details: { cached_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0 },
    });
    assert.ok(evs.at(-2).data.endsWith('}}}'), 'the usage object is the last key');
    assert.deepEqual(usageHeader(withUsage), usageHeader(plain));
    // What a gateway that injected include_usage must take out again:
    const usageChunk = `data: ${evs.at(-2).data}\n\n`;
    assert.equal(withUsage.text.split(usageChunk).length, 2);
    const stripped = withUsage.text.replace(usageChunk, '').replaceAll(',"usage":null}\n\n', '}\n\n');
    assert.equal(stripped, plain.text);
  });

  test('x-mock-interval-ms spaces the events', async () => {
    const r = await ai(
      '/v1/chat/completions',
      { model: 'm', messages: [{ role: 'user', content: 'x' }], max_tokens: 2, stream: true },
      { 'x-mock-interval-ms': '150' },
    );
    assert.equal(parseSse(r.text).length, 5); // role, 2 tokens, stop, [DONE]: 4 gaps
    assert.ok(r.ms >= 4 * 150 - 1, `took ${r.ms} ms`);
    assert.ok(r.chunks.length >= 3, JSON.stringify(r.chunks));
    const fast = await ai('/v1/chat/completions', {
      model: 'm',
      messages: [{ role: 'user', content: 'x' }],
      max_tokens: 2,
      stream: true,
    });
    assert.ok(fast.ms < 400, `without the header took ${fast.ms} ms`);
  });
});

describe('POST /v1/completions', () => {
  test('non-streamed text_completion; prompt string or array', async () => {
    const r = await ai('/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: ['abc', 'defgh'], max_tokens: 2 });
    assert.equal(r.status, 200);
    const b = r.json();
    assert.match(b.id, /^cmpl-[0-9a-f]{24}$/);
    assert.equal(b.object, 'text_completion');
    assert.equal(b.choices[0].text, outText(2));
    assert.deepEqual(b.usage, { prompt_tokens: 2, completion_tokens: 2, total_tokens: 4 });
    assert.deepEqual(usageHeader(r), { model: 'gpt-3.5-turbo-instruct', input: 2, output: 2, cached: 0, cache_write: 0 });
  });

  test('streamed, with and without include_usage', async () => {
    const req = { model: 'x', prompt: 'hello', max_tokens: 2, stream: true };
    const plain = await ai('/v1/completions', req);
    assert.doesNotMatch(plain.text, /usage/);
    const evs = parseSse(plain.text);
    assert.deepEqual(
      evs.slice(0, -1).map((e) => JSON.parse(e.data).choices[0].text),
      ['tok0 ', 'tok1 ', ''],
    );
    assert.equal(JSON.parse(evs[2].data).choices[0].finish_reason, 'stop');
    assert.equal(evs.at(-1).data, '[DONE]');
    const wu = await ai('/v1/completions', { ...req, stream_options: { include_usage: true } });
    const uevs = parseSse(wu.text);
    assert.deepEqual(JSON.parse(uevs.at(-2).data).usage, { prompt_tokens: 2, completion_tokens: 2, total_tokens: 4 });
    const stripped = wu.text
      .replace(`data: ${uevs.at(-2).data}\n\n`, '')
      .replaceAll(',"usage":null}\n\n', '}\n\n');
    assert.equal(stripped, plain.text);
  });
});

describe('POST /v1/embeddings', () => {
  test('float vectors, one per input, and usage', async () => {
    const r = await ai('/v1/embeddings', { model: 'text-embedding-3-small', input: ['one', 'three'], encoding_format: 'float' });
    assert.equal(r.status, 200);
    const b = r.json();
    assert.equal(b.object, 'list');
    assert.equal(b.model, 'text-embedding-3-small');
    assert.equal(b.data.length, 2);
    b.data.forEach((d, i) => {
      assert.equal(d.object, 'embedding');
      assert.equal(d.index, i);
      assert.equal(d.embedding.length, 8);
      assert.ok(d.embedding.every((x) => x >= -1 && x < 1));
    });
    assert.notDeepEqual(b.data[0].embedding, b.data[1].embedding);
    assert.deepEqual(b.usage, { prompt_tokens: tokensOf('one', 'three'), total_tokens: tokensOf('one', 'three') });
    assert.deepEqual(usageHeader(r), { model: 'text-embedding-3-small', input: 2, output: 0, cached: 0, cache_write: 0 });
  });

  test('base64 is the same vector as little-endian float32; dimensions is honoured', async () => {
    const req = { model: 'e', input: 'some text', dimensions: 40 };
    const f = (await ai('/v1/embeddings', { ...req, encoding_format: 'float' })).json();
    const b = (await ai('/v1/embeddings', { ...req, encoding_format: 'base64' })).json();
    const buf = Buffer.from(b.data[0].embedding, 'base64');
    assert.equal(buf.length, 40 * 4);
    const decoded = Array.from({ length: 40 }, (_, i) => buf.readFloatLE(i * 4));
    assert.deepEqual(decoded, f.data[0].embedding);
    const bad = await ai('/v1/embeddings', { ...req, encoding_format: 'hex' });
    assert.equal(bad.status, 400);
  });
});

describe('POST /v1/responses', () => {
  const req = {
    model: 'gpt-4.1',
    instructions: 'Be brief.',
    input: [{ role: 'user', content: [{ type: 'input_text', text: 'What is up?' }] }],
    max_output_tokens: 3,
    prompt_cache_key: 'k',
  };
  const T = tokensOf('Be brief.', 'What is up?');

  test('non-streamed response object with usage', async () => {
    const r = await ai('/v1/responses', req);
    assert.equal(r.status, 200);
    const b = r.json();
    assert.match(b.id, /^resp_[0-9a-f]{24}$/);
    assert.equal(b.object, 'response');
    assert.equal(b.status, 'completed');
    assert.equal(b.instructions, 'Be brief.');
    assert.equal(b.output.length, 1);
    assert.equal(b.output[0].type, 'message');
    assert.equal(b.output[0].role, 'assistant');
    assert.deepEqual(b.output[0].content.map((c) => [c.type, c.text]), [['output_text', outText(3)]]);
    assert.deepEqual(b.usage, {
      input_tokens: T,
      input_tokens_details: { cached_tokens: Math.floor(T / 2) },
      output_tokens: 3,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: T + 3,
    });
    assert.deepEqual(usageHeader(r), { model: 'gpt-4.1', input: T, output: 3, cached: Math.floor(T / 2), cache_write: 0 });
  });

  test('streamed: the Responses event sequence, numbered, ending in response.completed', async () => {
    const r = await ai('/v1/responses', { ...req, stream: true });
    assert.equal(r.headers['content-type'], 'text/event-stream; charset=utf-8');
    const evs = parseSse(r.text);
    assert.deepEqual(evs.map((e) => e.event), [
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    const data = evs.map((e) => (assertCompact(e.data), JSON.parse(e.data)));
    data.forEach((d, i) => {
      assert.equal(d.type, evs[i].event);
      assert.equal(d.sequence_number, i);
    });
    assert.equal(data[0].response.status, 'in_progress');
    assert.equal(data[0].response.usage, null);
    assert.deepEqual(data.slice(4, 7).map((d) => d.delta), ['tok0 ', 'tok1 ', 'tok2 ']);
    assert.equal(data[7].text, outText(3));
    const done = data.at(-1).response;
    assert.equal(done.status, 'completed');
    assert.deepEqual(done, (await ai('/v1/responses', req)).json());
    assert.deepEqual(usageHeader(r), { model: 'gpt-4.1', input: T, output: 3, cached: Math.floor(T / 2), cache_write: 0 });
  });
});

describe('POST /v1/messages (Anthropic)', () => {
  const system = [{ type: 'text', text: 'A long system prompt to cache.', cache_control: { type: 'ephemeral' } }];
  const messages = [{ role: 'user', content: 'Hello, Claude' }];
  const T = tokensOf('A long system prompt to cache.', 'Hello, Claude');

  test('non-streamed message; cache_control gives cache reads and writes', async () => {
    const r = await ai('/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 4, system, messages });
    assert.equal(r.status, 200);
    const b = r.json();
    assert.match(b.id, /^msg_[0-9a-f]{24}$/);
    assert.equal(b.type, 'message');
    assert.equal(b.role, 'assistant');
    assert.deepEqual(b.content, [{ type: 'text', text: outText(4) }]);
    assert.equal(b.stop_reason, 'end_turn');
    const read = Math.floor(T / 2);
    const write = Math.floor(T / 4);
    assert.ok(read > 0 && write > 0);
    assert.deepEqual(b.usage, {
      input_tokens: T - read - write,
      cache_creation_input_tokens: write,
      cache_read_input_tokens: read,
      output_tokens: 4,
    });
    assert.deepEqual(usageHeader(r), { model: 'claude-sonnet-4-5', input: T - read - write, output: 4, cached: read, cache_write: write });
    const plain = await ai('/v1/messages', { model: 'c', max_tokens: 4, system: 'A long system prompt to cache.', messages });
    assert.deepEqual(plain.json().usage, { input_tokens: T, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 4 });
  });

  test('streamed: Anthropic events; provisional output_tokens 1, the final count in message_delta', async () => {
    const r = await ai('/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 3, system, messages, stream: true });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.match(r.text, /^event: message_start\ndata: \{/);
    const evs = parseSse(r.text);
    assert.deepEqual(evs.map((e) => e.event), [
      'message_start',
      'content_block_start',
      'ping',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    const data = evs.map((e) => (assertCompact(e.data), JSON.parse(e.data)));
    data.forEach((d, i) => assert.equal(d.type, evs[i].event));
    const read = Math.floor(T / 2);
    const write = Math.floor(T / 4);
    assert.deepEqual(data[0].message.usage, {
      input_tokens: T - read - write,
      cache_creation_input_tokens: write,
      cache_read_input_tokens: read,
      output_tokens: 1,
    });
    assert.deepEqual(data.slice(3, 6).map((d) => d.delta), [0, 1, 2].map((i) => ({ type: 'text_delta', text: `tok${i} ` })));
    assert.deepEqual(data[7].delta, { stop_reason: 'end_turn', stop_sequence: null });
    assert.deepEqual(data[7].usage, { output_tokens: 3 });
    assert.deepEqual(usageHeader(r), { model: 'claude-sonnet-4-5', input: T - read - write, output: 3, cached: read, cache_write: write });
  });
});

describe('AI special models and bad requests', () => {
  const chat = { messages: [{ role: 'user', content: 'abcdefgh' }], max_tokens: 2 };

  test('mock-no-usage: no usage object, even with include_usage; x-mock-usage still says what it would have been', async () => {
    for (const [path, body] of [
      ['/v1/chat/completions', { ...chat, model: 'mock-no-usage' }],
      ['/v1/chat/completions', { ...chat, model: 'mock-no-usage', stream: true, stream_options: { include_usage: true } }],
      ['/v1/completions', { model: 'mock-no-usage', prompt: 'abcdefgh', max_tokens: 2, stream: true, stream_options: { include_usage: true } }],
      ['/v1/embeddings', { model: 'mock-no-usage', input: 'abcdefgh' }],
      ['/v1/responses', { model: 'mock-no-usage', input: 'abcdefgh', max_output_tokens: 2 }],
      ['/v1/responses', { model: 'mock-no-usage', input: 'abcdefgh', max_output_tokens: 2, stream: true }],
      ['/v1/messages', { ...chat, model: 'mock-no-usage' }],
      ['/v1/messages', { ...chat, model: 'mock-no-usage', stream: true }],
    ]) {
      const r = await ai(path, body);
      assert.equal(r.status, 200, `${path} ${r.text}`);
      assert.doesNotMatch(r.text, /"usage"|"(prompt|completion|input|output|total)_tokens"/, `${path} ${JSON.stringify(body)}`);
      const out = path === '/v1/embeddings' ? 0 : 2;
      assert.deepEqual(usageHeader(r), { model: 'mock-no-usage', input: 2, output: out, cached: 0, cache_write: 0 }, path);
    }
  });

  test('mock-bad-json: 200, but the body (or each event\'s data) is cut short of valid JSON', async () => {
    const r = await ai('/v1/chat/completions', { ...chat, model: 'mock-bad-json' });
    assert.equal(r.status, 200);
    assert.throws(() => JSON.parse(r.text));
    assert.equal(JSON.parse(`${r.text}}`).usage.prompt_tokens, 2); // exactly one byte short
    assert.deepEqual(usageHeader(r), { model: 'mock-bad-json', input: 2, output: 2, cached: 0, cache_write: 0 });
    for (const [path, body] of [
      ['/v1/chat/completions', { ...chat, model: 'mock-bad-json', stream: true, stream_options: { include_usage: true } }],
      ['/v1/messages', { ...chat, model: 'mock-bad-json', stream: true }],
      ['/v1/responses', { model: 'mock-bad-json', input: 'x', stream: true }],
    ]) {
      const s = await ai(path, body);
      assert.equal(s.status, 200);
      const evs = parseSse(s.text).filter((e) => e.data !== '[DONE]');
      assert.ok(evs.length > 3);
      for (const e of evs) assert.throws(() => JSON.parse(e.data), `${path}: ${e.data}`);
    }
  });

  test('mock-error: 400 with the API\'s error shape', async () => {
    const o = await ai('/v1/chat/completions', { ...chat, model: 'mock-error' });
    assert.equal(o.status, 400);
    assert.equal(o.json().error.type, 'invalid_request_error');
    assert.match(o.json().error.message, /mock-error/);
    assert.deepEqual(usageHeader(o), { model: 'mock-error', input: 0, output: 0, cached: 0, cache_write: 0 });
    const a = await ai('/v1/messages', { ...chat, model: 'mock-error', stream: true });
    assert.equal(a.status, 400);
    assert.equal(a.headers['content-type'], 'application/json');
    assert.equal(a.json().type, 'error');
    assert.equal(a.json().error.type, 'invalid_request_error');
  });

  test('malformed requests get 400 JSON errors, an oversized body 413', async () => {
    const cases = [
      ['/v1/chat/completions', '{"model":'],
      ['/v1/chat/completions', '[1,2]'],
      ['/v1/chat/completions', { messages: [] }],
      ['/v1/chat/completions', { model: 'm', messages: 'hi' }],
      ['/v1/chat/completions', { model: 'm', messages: [], max_tokens: -1 }],
      ['/v1/completions', { model: 'm' }],
      ['/v1/embeddings', { model: 'm', input: [] }],
      ['/v1/responses', { model: 'm', input: 5 }],
      ['/v1/messages', { model: 'm', messages: [{ role: 'user', content: 7 }] }],
    ];
    for (const [path, body] of cases) {
      const r = await ai(path, body);
      assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}`);
      const e = r.json();
      assert.equal(typeof (path === '/v1/messages' ? e.error.message : e.error.message), 'string');
      if (path === '/v1/messages') assert.equal(e.type, 'error');
      assert.equal(r.headers['x-mock-usage'], undefined);
    }
    const big = await ai('/v1/chat/completions', `{"model":"m","messages":[{"content":"${'a'.repeat(9 << 20)}"}]}`);
    assert.equal(big.status, 413);
    assert.equal(big.json().error.type, 'invalid_request_error');
  });

  test('other methods and paths keep the query-parameter behaviours; delay_ms applies to AI answers', async () => {
    const g = await request(`${mock.url}/v1/chat/completions?status=201`);
    assert.equal(g.status, 201);
    assert.deepEqual(g.json(), { ok: true });
    const p = await request(`${mock.url}/v1/chat/completions/x?echo=1`, { method: 'POST', body: 'abc' });
    assert.equal(p.json().body_sha256, sha256('abc'));
    const d = await ai('/v1/messages?delay_ms=200', { ...chat, model: 'm' });
    assert.equal(d.status, 200);
    assert.ok(d.ms >= 199, `took ${d.ms} ms`);
    assert.equal(d.json().type, 'message');
  });

  test('keep-alive: several AI requests, streamed and not, on one connection', async () => {
    const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 });
    const sbody = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1, stream: true });
    const req = (b, close) =>
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(b)}\r\n${close ? 'Connection: close\r\n' : ''}\r\n${b}`;
    const r = await raw(mock.port, req(body) + req(sbody) + req(body, true));
    assert.equal(r.closed, true);
    assert.equal(r.data.match(/HTTP\/1\.1 200 OK\r\n/g).length, 3);
    assert.equal(r.data.match(/\r\nx-mock-usage: /g).length, 3);
    assert.match(r.data, /data: \[DONE\]\n\n\r\n0\r\n\r\nHTTP\/1\.1 200 OK/);
  });
});

describe('mock upstream: compressed AI answers', () => {
  const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'squeeze me' }], max_tokens: 6 });
  const post = (m, headers = {}) =>
    request(`${m.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body });
  const unzip = { gzip: zlib.gunzipSync, deflate: zlib.inflateSync, br: zlib.brotliDecompressSync };

  test('Accept-Encoding picks the coding (highest q, gzip on a tie); the decoded body is the plain one', async () => {
    const plain = await post(mock);
    assert.equal(plain.headers['content-encoding'], undefined); // no Accept-Encoding: identity
    const cases = [
      ['gzip, deflate', 'gzip'],
      ['deflate, br', 'deflate'],
      ['br;q=0.9, gzip;q=0.5', 'br'],
      ['zstd', 'zstd'],
      ['compress', undefined],
      ['gzip;q=0, br', 'br'],
    ];
    for (const [ae, want] of cases) {
      const r = await post(mock, { 'Accept-Encoding': ae });
      assert.equal(r.headers['content-encoding'], want, ae);
      assert.equal(r.headers['x-mock-usage'], plain.headers['x-mock-usage']);
      if (unzip[want]) assert.equal(unzip[want](r.body).toString(), plain.text);
      if (!want) assert.equal(r.text, plain.text);
    }
  });

  test('x-mock-encoding forces a coding (streams flushed per event); --no-compress only stops the default', async () => {
    const off = await startMock({ compress: false });
    try {
      assert.equal((await post(off, { 'Accept-Encoding': 'gzip' })).headers['content-encoding'], undefined);
      const forced = await post(off, { 'x-mock-encoding': 'deflate-raw' });
      assert.equal(forced.headers['content-encoding'], 'deflate');
      assert.equal(JSON.parse(zlib.inflateRawSync(forced.body)).object, 'chat.completion');
    } finally {
      await off.stop();
    }
    const sse = await request(`${mock.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'x-mock-encoding': 'gzip' },
      body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'x' }] }),
    });
    assert.equal(sse.headers['content-encoding'], 'gzip');
    assert.match(zlib.gunzipSync(sse.body).toString(), /data: \[DONE\]\n\n$/);
    const labelled = await post(mock, { 'x-mock-encoding': 'gzip-as-x-zip' });
    assert.equal(labelled.headers['content-encoding'], 'x-zip');
    assert.equal(JSON.parse(zlib.gunzipSync(labelled.body)).object, 'chat.completion');
  });
});
