// Attacks on the metering of compressed traffic (issue 9 §2), by a hostile client and a hostile
// upstream, against the real gateway. Each test here failed on the gateway as merged (87fa01d)
// and on the one before it (but the last: identity is still accepted), and one attack found
// on the way breaks identity streams too; the report of the attack run lists the attacks that
// did not break it.
//
// The upstream is a raw node:net server (lib/hostile-upstream.mjs), so the bytes, headers and
// codings are exactly what the test writes.
import assert from 'node:assert/strict';
import net from 'node:net';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';

import { createTenantKey, request, startGateway, waitForEvent, waitForKey } from './lib/harness.mjs';
import { answer, startHostile } from './lib/hostile-upstream.mjs';

const J = 'application/json';
const PRICES = { 'gpt-4o-mini': { input: '0.15', output: '0.6' }, 'text-embedding-3-small': { input: '0.02', output: '0' } };

/** An OpenAI embeddings answer of `n` vectors of `dims` floats, its usage at the end (as the
 * API sends it). The floats come from a fixed generator: the text compresses like real
 * embeddings (about 2.5 x with gzip), nothing like a bomb. */
function embeddings(n, dims, promptTokens) {
  let s = 12345;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 0.2 - 0.1;
  const data = [];
  for (let i = 0; i < n; i++) {
    const v = [];
    for (let k = 0; k < dims; k++) v.push(rnd().toFixed(9));
    data.push(`{"object":"embedding","index":${i},"embedding":[${v.join(',')}]}`);
  }
  return Buffer.from(
    `{"object":"list","data":[${data.join(',')}],"model":"text-embedding-3-small",` +
      `"usage":{"prompt_tokens":${promptTokens},"total_tokens":${promptTokens}}}`,
  );
}

let up, gw, key;
const big = embeddings(2048, 384, 2048);
const coded = { gzip: zlib.gzipSync(big, { level: 6 }), br: zlib.brotliCompressSync(big, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } }) };
const usageAnswer = Buffer.from(
  JSON.stringify({ id: 'c', object: 'chat.completion', model: 'gpt-4o-mini', choices: [], usage: { prompt_tokens: 1000, completion_tokens: 500, total_tokens: 1500 } }),
);

before(async () => {
  up = await startHostile((req) => {
    const c = req.headers['x-coding'];
    if (req.headers['x-responses']) {
      const text = responsesStream(req);
      if (c === 'gzip') return answer(200, { 'Content-Type': 'text/event-stream', 'Content-Encoding': c }, zlib.gzipSync(text));
      return answer(200, { 'Content-Type': 'text/event-stream' }, text);
    }
    if (c && coded[c]) return answer(200, { 'Content-Type': J, 'Content-Encoding': c }, coded[c]);
    return answer(200, { 'Content-Type': J }, usageAnswer);
  });
  gw = await startGateway({
    upstreams: [{ name: 'h', targets: [up.url] }],
    routes: [
      { name: 'mcp', path_prefix: '/mcp', upstream: 'h', kind: 'mcp' },
      { name: 'oa', path_prefix: '/v1/', upstream: 'h', kind: 'openai' },
    ],
    // The decoded cap at its floor: 3 x 64 KiB + 4 MiB = 4.2 MiB.
    extra: { server: { max_body: '64k', max_decoded_body: '1m' }, prices: { models: PRICES } },
  });
  ({ secret: key } = await createTenantKey(gw, 'attacker'));
  await waitForKey(gw, key, '/v1/models');
});
after(async () => {
  await gw?.stop();
  await up?.stop();
});

describe('a client makes its own answer decode past server.max_decoded_body', () => {
  // 2048 inputs of one token each (an 8 KiB request, the API's maximum count) at 384 dimensions
  // answer with about 10 MiB of JSON: more than the decoded cap. The usage comes last, so past
  // the cap it was never read and the answer was free (price_flag decode_cap, cost 0), while the
  // same answer uncompressed is metered. The cap is a defence against bombs, whose ratio is a
  // thousand and more; an answer that compresses like JSON must be read to its end.
  for (const coding of ['gzip', 'br']) {
    test(`${coding}: 10 MiB of embeddings (${coding} ratio about 2-3) are metered exactly`, async () => {
      assert.ok(big.length > 9 << 20 && coded[coding].length > big.length / 8, `${big.length} -> ${coded[coding].length}`);
      const body = JSON.stringify({ model: 'text-embedding-3-small', input: Array(2048).fill('a'), dimensions: 384 });
      assert.ok(body.length < 64 << 10);
      const res = await request(`${gw.url}/v1/embeddings`, {
        method: 'POST',
        headers: { 'Content-Type': J, 'Accept-Encoding': coding, 'x-coding': coding, Authorization: `Bearer ${key}` },
        body,
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-encoding'], coding);
      assert.equal(res.body.length, coded[coding].length); // the client got the upstream's bytes
      const ev = await waitForEvent(gw, res.headers['x-request-id']);
      assert.deepEqual([ev.outcome, ev.tokens_in, ev.price_flag], ['billable', 2048, null]);
      assert.ok(ev.cost_micros > 0, `cost ${ev.cost_micros}`);
    });
  }
});

describe('a compressed request body hides the request from admission', () => {
  // An AI request body in gzip is not JSON tollgate can read: model, max_tokens and the body's
  // length (which bounds the input tokens) were unknown to admission, and it was forwarded as
  // it was; an upstream that accepts request codings then served a model and a size that no
  // limit, price estimate or budget had seen. tollgate does not decode request bodies: a
  // metered route refuses a coded one (RFC 9110 §15.5.16: 415) and never forwards it.
  const body = JSON.stringify({ model: 'gpt-4o', max_tokens: 100000, messages: [{ role: 'user', content: 'x'.repeat(5000) }] });
  const cases = [
    ['gzip', (b) => zlib.gzipSync(b), [['Content-Encoding', 'gzip']]],
    ['deflate', (b) => zlib.deflateSync(b), [['Content-Encoding', 'deflate']]],
    ['br in a list', (b) => zlib.brotliCompressSync(b), [['Content-Encoding', 'identity, br']]],
    ['an unknown coding', (b) => b, [['Content-Encoding', 'x-custom']]],
    ['the second of two lines', (b) => zlib.gzipSync(b), [['Content-Encoding', 'identity'], ['Content-Encoding', 'GZIP']]],
  ];
  for (const [label, enc, lines] of cases) {
    test(`${label}: 415 on an AI route, nothing forwarded`, async () => {
      const seen = up.seen.length;
      const headers = { 'Content-Type': J, Authorization: `Bearer ${key}` };
      const res = await rawPost('/v1/chat/completions', headers, lines, enc(Buffer.from(body)));
      assert.match(res, /^HTTP\/1\.1 415 Unsupported Media Type\r\n/, res.slice(0, 200));
      assert.match(res, /"type":"unsupported_media_type"/);
      assert.equal(up.seen.length, seen, 'the upstream got the request');
    });
  }

  test('the refused body is skipped, never read as a request of its own', async () => {
    // The body is a whole request; a pipelined request follows it on the same connection.
    const inner = `GET /v1/smuggled HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n\r\n`;
    const next = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`;
    const seen = up.seen.length;
    const res = await rawSend(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Encoding: gzip\r\n` +
        `Content-Length: ${inner.length}\r\n\r\n${inner}${next}`,
    );
    assert.deepEqual(res.match(/^HTTP\/1\.1 \d+/gm), ['HTTP/1.1 415', 'HTTP/1.1 200']);
    assert.deepEqual(up.seen.slice(seen).map((r) => r.line), ['POST /v1/chat/completions HTTP/1.1']);
  });

  test('on an MCP route too', async () => {
    const seen = up.seen.length;
    const call = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'denied', arguments: {} } });
    const res = await rawPost('/mcp', { 'Content-Type': J, Authorization: `Bearer ${key}` }, [['Content-Encoding', 'gzip']], zlib.gzipSync(call));
    assert.match(res, /^HTTP\/1\.1 415 Unsupported Media Type\r\n/, res.slice(0, 200));
    assert.equal(up.seen.length, seen);
  });

  test('Content-Encoding: identity is not a coding: the request passes and is metered', async () => {
    const plain = JSON.stringify({ model: 'gpt-4o-mini', messages: [] });
    const res = await rawPost('/v1/chat/completions', { 'Content-Type': J, Authorization: `Bearer ${key}` }, [['Content-Encoding', ' Identity ']], Buffer.from(plain));
    assert.match(res, /^HTTP\/1\.1 200 /, res.slice(0, 200));
  });
});

describe('a streamed Responses answer that echoes a large request', () => {
  // The Responses API repeats the request's instructions (and tools) in response.created and
  // in response.completed, the event that carries the usage. With over 1 MiB of instructions
  // (a 10 MiB body is allowed) that event passed the meter's 1 MiB event cap, was skipped,
  // and the answer was free: 300 000 input tokens at cost 0, compressed or not. The event cap
  // now follows what an answer may echo (3 x max_body + 4 MiB), as a JSON answer's does.
  let rgw, rkey;
  before(async () => {
    rgw = await startGateway({
      upstreams: [{ name: 'h', targets: [up.url] }],
      routes: [{ name: 'oa', path_prefix: '/v1/', upstream: 'h', kind: 'openai' }],
      extra: { prices: { models: PRICES } },
    });
    ({ secret: rkey } = await createTenantKey(rgw, 'echo'));
    await waitForKey(rgw, rkey, '/v1/models');
  });
  after(async () => {
    await rgw?.stop();
  });

  for (const coding of [null, 'gzip']) {
    test(`${coding ?? 'identity'}: 1.2 MiB of instructions, echoed twice: metered exactly`, async () => {
      const body = JSON.stringify({ model: 'gpt-4o-mini', stream: true, instructions: 'a'.repeat(1200000), input: 'hi' });
      const headers = { 'Content-Type': J, Authorization: `Bearer ${rkey}`, 'x-responses': '1' };
      if (coding) Object.assign(headers, { 'Accept-Encoding': coding, 'x-coding': coding });
      const res = await request(`${rgw.url}/v1/responses`, { method: 'POST', headers, body });
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-encoding'], coding ?? undefined);
      const ev = await waitForEvent(rgw, res.headers['x-request-id']);
      assert.deepEqual([ev.outcome, ev.tokens_in, ev.tokens_out, ev.price_flag], ['billable', 300000, 20, null]);
      assert.ok(ev.cost_micros > 0, `cost ${ev.cost_micros}`);
    });
  }
});

/** The SSE stream of the Responses API for a request: instructions echoed in
 * response.created and response.completed (with the usage). */
function responsesStream(req) {
  const { instructions } = JSON.parse(req.body.toString());
  const response = (status, usage) => ({ id: 'resp_1', object: 'response', status, model: 'gpt-4o-mini', instructions, output: [], usage });
  const ev = (type, r) => `event: ${type}\ndata: ${JSON.stringify({ type, response: r })}\n\n`;
  return Buffer.from(
    ev('response.created', response('in_progress', null)) +
      ev('response.completed', response('completed', { input_tokens: 300000, output_tokens: 20, total_tokens: 300020 })),
  );
}

/** A POST on a fresh connection with the header lines exactly as given (repeated names kept). */
function rawPost(path, headers, lines, body) {
  const all = [...Object.entries(headers), ...lines, ['Content-Length', String(body.length)], ['Connection', 'close']];
  const head = `POST ${path} HTTP/1.1\r\nHost: x\r\n${all.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  return rawSend(Buffer.concat([Buffer.from(head, 'latin1'), body]));
}

/** Bytes written to a fresh connection; everything received until the gateway closes it. */
function rawSend(data) {
  return new Promise((resolve, reject) => {
    const parts = [];
    const sock = net.connect(Number(new URL(gw.url).port), '127.0.0.1', () => sock.write(data));
    sock.on('data', (d) => parts.push(d));
    sock.on('close', () => resolve(Buffer.concat(parts).toString('latin1')));
    sock.on('error', reject);
  });
}
