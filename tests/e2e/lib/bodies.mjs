// What the e2e files of audit.bodies share (bodies.test.mjs: hash; bodies-encrypt.test.mjs:
// encrypt): a fetch for the SDKs that keeps each exchange, and the call record of a request
// body found by its hash in `audit export`, and the three calls both make.
import assert from 'node:assert/strict';
import fs from 'node:fs';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import OpenAI from 'openai';

import { isPgUrl, waitFor } from './harness.mjs';

/** A fetch for the SDKs keeping each exchange: the request body sent, the answer as read. */
export function fetchRecorder() {
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

/** `audit export --format jsonl` of gw. */
export async function exportJsonl(gw) {
  const r = await gw.cli(['audit', 'export', '--format', 'jsonl']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** The one call record whose data holds this request body's hash, once written. */
export async function recordFor(gw, bodyHash) {
  let found = [];
  await waitFor(async () => {
    found = (await exportJsonl(gw)).trim().split('\n').filter((l) => JSON.parse(l).data?.includes(`"body_in_sha256":"${bodyHash}"`));
    return found.length > 0;
  }, { message: `a record with body_in_sha256 ${bodyHash}` });
  assert.equal(found.length, 1, `one record with body_in_sha256 ${bodyHash}`);
  return JSON.parse(found[0]);
}

/** Through gw with secret: a chat (the mock answers it gzip) and a streamed chat of prompt with
 * the openai SDK, then an MCP tools/call of echo(text); every answer read whole. The three
 * exchanges as fetchRecorder keeps them: [chat, stream, call]. */
export async function chatStreamTool(gw, secret, prompt, text) {
  const rec = fetchRecorder();
  const oa = new OpenAI({ apiKey: secret, baseURL: `${gw.url}/v1`, maxRetries: 0, fetch: rec.fetch });
  const chat = await oa.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }], max_tokens: 5 });
  assert.ok(chat.choices.length > 0);
  const stream = await oa.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }], max_tokens: 5, stream: true });
  for await (const _ of stream); // eslint-disable-line no-unused-vars
  assert.equal(rec.seen.length, 2);
  assert.equal(rec.seen[0].coding, 'gzip', 'the mock answered the chat gzip');
  const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), {
    requestInit: { headers: { Authorization: `Bearer ${secret}` } },
    fetch: rec.fetch,
  });
  const client = new Client({ name: 'tollgate-e2e', version: '1.0.0' });
  await client.connect(transport);
  const r = await client.callTool({ name: 'echo', arguments: { text } });
  assert.equal(r.content[0].text, text);
  const call = rec.seen.find((s) => s.body?.includes('"tools/call"'));
  assert.ok(call);
  for (const s of rec.seen) if (s.body) assert.ok(await s.answer, `the answer to ${s.body.slice(0, 80)} was read whole`);
  await client.close();
  return [rec.seen[0], rec.seen[1], call];
}

/** None of texts is in gw's export, its output, more, or (SQLite) its store file and WAL; and
 * the chain verifies. */
export async function assertNowhere(gw, texts, more = '') {
  const all = (await exportJsonl(gw)) + more + gw.stdout() + gw.stderr();
  for (const t of texts) assert.ok(!all.includes(t), `"${t}" in the export or output`);
  if (!isPgUrl(gw.dbPath)) {
    for (const f of [gw.dbPath, `${gw.dbPath}-wal`]) {
      if (!fs.existsSync(f)) continue;
      const bytes = fs.readFileSync(f);
      for (const t of texts) assert.ok(!bytes.includes(t), `${f} holds "${t}"`);
    }
  }
  const v = await gw.cli(['audit', 'verify']);
  assert.equal(v.code, 0, v.stderr + v.stdout);
}
