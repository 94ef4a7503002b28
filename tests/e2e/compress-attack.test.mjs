// Attacks on the metering of compressed traffic (issue 9 §2), by a hostile client and a hostile
// upstream, against the real gateway. Each test here failed on the gateway as merged (87fa01d)
// and on the one before it; the report of the attack run lists the attacks that did not break it.
//
// The upstream is a raw node:net server (lib/hostile-upstream.mjs), so the bytes, headers and
// codings are exactly what the test writes.
import assert from 'node:assert/strict';
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
  // same answer uncompressed is metered. The cap is a defence against bombs, whose ratio is in
  // the hundreds; an answer that compresses like JSON must be read to its end.
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
