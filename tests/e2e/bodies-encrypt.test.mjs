// audit.bodies: encrypt end to end (docs/audit.md, "Bodies"): a chat through the openai SDK (the
// mock answers gzip), a streamed chat and an MCP tool call; `tollgate audit bodies ID --out P`
// gives back exactly the bytes each SDK sent and read (decoded), found by the record whose
// body_in_sha256 is this file's own hash of the request. The prompt is in neither the store
// file, its WAL, the export nor the gateway's output; a request past audit.max_body is kept cut
// and says so; another KEK refuses with a clear error; `kek rotate` re-wraps them (read with the
// new KEK, refused with the old); `tenant erase` deletes them and the chain still verifies.
// Attacks: an upstream that stalls mid-stream and is cut (what arrived is kept, and it is what
// the hash covers), a damaged blob in the store (refused by name, kek rotate exits 1 naming it),
// hostile record ids and --out paths.
//
// Instants come from tollgate only (records are found by their hashes), so the file passes
// under TOLLGATE_FAKETIME too.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { assertNowhere, chatStreamTool, exportJsonl as exportOf, recordFor as recordOf } from './lib/bodies.mjs';
import { createTenantKey, isPgUrl, request, sha256, sqlite, startGateway, startMcpServer, startMock, toYaml, waitForEvent, waitForKey } from './lib/harness.mjs';

const exportJsonl = () => exportOf(gw);
const recordFor = (hash) => recordOf(gw, hash);
const PROMPT = 'the sealed prompt text zq7';
const MAX = 4096; // audit.max_body
let mock, srv, gw, acme, dir, kekFile;
const seen = []; // [{ id, body, answer }] of the calls made, for the later tests

before(async () => {
  dir = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'tg-encb-'));
  kekFile = path.join(dir, 'kek');
  fs.writeFileSync(kekFile, `${crypto.randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
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
    extra: {
      prices: { models: { 'gpt-4o-mini': { input: 0.15, output: 0.6 } } },
      encryption: { kek_file: kekFile },
      audit: { bodies: 'encrypt', max_body: `${MAX}` },
    },
  });
  acme = await createTenantKey(gw, 'acme');
  await waitForKey(gw, acme.secret, '/v1/models');
});
after(async () => {
  await gw?.stop();
  await srv?.stop();
  await mock?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** `audit bodies ID --out P`: { code, stdout, stderr, request, answer } (files read when written). */
async function bodies(id) {
  const prefix = path.join(dir, `rec-${id}`);
  const r = await gw.cli(['audit', 'bodies', String(id), '--out', prefix]);
  const read = (f) => (fs.existsSync(f) ? fs.readFileSync(f) : null);
  const res = { ...r, request: read(`${prefix}.request`), answer: read(`${prefix}.answer`) };
  fs.rmSync(`${prefix}.request`, { force: true });
  fs.rmSync(`${prefix}.answer`, { force: true });
  return res;
}

/** Runs CLI args with the config's KEK replaced by file (the config restored after). */
async function withKek(file, args) {
  const was = gw.config.encryption;
  gw.config.encryption = { kek_file: file };
  fs.writeFileSync(gw.configPath, toYaml(gw.config));
  try {
    return await gw.cli(args);
  } finally {
    gw.config.encryption = was;
    fs.writeFileSync(gw.configPath, toYaml(gw.config));
  }
}

describe('audit.bodies: encrypt', () => {
  test('a chat (gzip), a streamed chat and an MCP tool call: audit bodies gives back the exact bytes', async () => {
    const calls = await chatStreamTool(gw, acme.secret, PROMPT, 'hello sealed bodies');
    for (const s of calls) {
      await waitForEvent(gw, s.requestId);
      const recd = await recordFor(sha256(s.body));
      assert.equal(JSON.parse(recd.data).bodies, 'sealed');
      const answer = await s.answer;
      const b = await bodies(recd.id);
      assert.equal(b.code, 0, b.stderr);
      assert.ok(b.request.equals(Buffer.from(s.body)), `request of ${s.body.slice(0, 60)}`);
      assert.ok(b.answer.equals(answer), `answer of ${s.body.slice(0, 60)}: ${b.answer.length} vs ${answer.length} bytes`);
      assert.doesNotMatch(b.stdout, /truncated/);
      seen.push({ id: recd.id, body: s.body, answer });
    }
    // Printed when there is no --out.
    const p = await gw.cli(['audit', 'bodies', String(seen[0].id)]);
    assert.equal(p.code, 0, p.stderr);
    assert.ok(p.stdout.includes(PROMPT) && p.stdout.startsWith('--- request: '));

    // The prompt is nowhere else: store file and WAL, export, gateway output.
    await assertNowhere(gw, [PROMPT, 'hello sealed bodies']);
  });

  test('a request past audit.max_body: its first max_body bytes, flagged truncated; the hash covers all', async () => {
    const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x'.repeat(2 * MAX) }], max_tokens: 5 });
    const r = await request(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${acme.secret}`, 'Content-Type': 'application/json' },
      body,
    });
    assert.equal(r.status, 200);
    const recd = await recordFor(sha256(body));
    const b = await bodies(recd.id);
    assert.equal(b.code, 0, b.stderr);
    assert.ok(b.request.equals(Buffer.from(body).subarray(0, MAX)));
    assert.match(b.stdout, new RegExp(`request ${MAX} bytes \\(truncated`));
  });

  test('another KEK refuses with a clear error; a record without bodies says so', async () => {
    const other = path.join(dir, 'other');
    fs.writeFileSync(other, `${crypto.randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    const r = await withKek(other, ['audit', 'bodies', String(seen[0].id)]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`audit record ${seen[0].id}: its bodies do not open: .*key-encryption key`, 'i'));
    assert.ok(!r.stdout.includes(PROMPT));
    const admin = JSON.parse((await exportJsonl()).trim().split('\n').find((l) => JSON.parse(l).kind === 'admin'));
    const n = await gw.cli(['audit', 'bodies', String(admin.id)]);
    assert.equal(n.code, 1);
    assert.match(n.stderr, /has no bodies/);
    const u = await gw.cli(['audit', 'bodies', 'x1']);
    assert.equal(u.code, 2);
  });

  test('kek rotate re-wraps them: read with the new KEK, refused with the old', async () => {
    assert.equal((await gw.stop()).code, 0); // the spool's lock: rotate runs with the gateway down
    const newFile = path.join(dir, 'kek.new');
    fs.writeFileSync(newFile, `${crypto.randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    const r = await gw.cli(['kek', 'rotate', '--new-kek-file', newFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /re-wrapped [4-9] calls' audit bodies \(0 already under it, 0 under another KEK\)/);
    const again = await gw.cli(['kek', 'rotate', '--new-kek-file', newFile]);
    assert.match(again.stdout, /re-wrapped 0 calls' audit bodies \([4-9] already under it/);
    const old = await gw.cli(['audit', 'bodies', String(seen[0].id)]);
    assert.equal(old.code, 1);
    fs.copyFileSync(newFile, kekFile); // the config now points at the new key
    const b = await bodies(seen[1].id);
    assert.equal(b.code, 0, b.stderr);
    assert.ok(b.answer.equals(seen[1].answer));

    // store copy takes them along (a BLOB column, either backend into SQLite): they open there.
    const copy = path.join(dir, 'copy.db');
    const c = await gw.cli(['store', 'copy', '--to', `sqlite:${copy}`]);
    assert.equal(c.code, 0, c.stderr);
    const store = gw.config.store;
    gw.config.store = `sqlite:${copy}`;
    fs.writeFileSync(gw.configPath, toYaml(gw.config));
    try {
      const fromCopy = await bodies(seen[2].id);
      assert.equal(fromCopy.code, 0, fromCopy.stderr);
      assert.ok(fromCopy.request.equals(Buffer.from(seen[2].body)));
    } finally {
      gw.config.store = store;
      fs.writeFileSync(gw.configPath, toYaml(gw.config));
    }
    await gw.restart();
  });

  test('tenant erase deletes them; the hashes stay and the chain verifies', async () => {
    const e = await gw.cli(['tenant', 'erase', 'acme']);
    assert.equal(e.code, 0, e.stderr);
    for (const s of seen) {
      const b = await bodies(s.id);
      assert.equal(b.code, 1);
      assert.match(b.stderr, /has no bodies/);
    }
    assert.ok((await exportJsonl()).includes(sha256(seen[0].body)));
    const v = await gw.cli(['audit', 'verify']);
    assert.equal(v.code, 0, v.stderr + v.stdout);
  });

  test('attacks: a stream cut by a stalling upstream, a damaged blob, hostile ids and paths', async () => {
    const globex = await createTenantKey(gw, 'globex');
    await waitForKey(gw, globex.secret, '/v1/models');
    const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'cut me, sealed' }], max_tokens: 20, stream: true });
    await request(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${globex.secret}`, 'Content-Type': 'application/json', 'x-mock-stall-after': '3', 'x-mock-stall-ms': '3600000' },
      body,
    }).catch((e) => assert.equal(e.code, 'ECONNRESET'));
    const recd = await recordFor(sha256(body));
    const data = JSON.parse(recd.data);
    assert.equal(data.body_out_state, 'cut');
    let b = await bodies(recd.id);
    assert.equal(b.code, 0, b.stderr);
    assert.ok(b.request.equals(Buffer.from(body)));
    assert.ok(b.answer.length > 0 && b.answer.toString().startsWith('data: '), 'what arrived before the cut');
    assert.equal(sha256(b.answer), data.body_out_sha256, 'the bytes kept are the bytes hashed');
    const o = await gw.cli(['audit', 'bodies', String(recd.id), '--out', path.join(dir, 'no', 'such', 'dir', 'x')]);
    assert.equal(o.code, 1);
    assert.match(o.stderr, /no\/such\/dir\/x\.request: cannot write it/);

    // A damaged blob: refused naming the record; kek rotate names it and exits 1.
    await sqlite(gw.dbPath, `UPDATE audit_bodies SET sealed = ${isPgUrl(gw.dbPath) ? "'\\x00'::bytea" : "X'00'"} WHERE record_id = ${recd.id}`);
    b = await bodies(recd.id);
    assert.equal(b.code, 1);
    assert.match(b.stderr, new RegExp(`audit record ${recd.id}: its bodies do not open`));
    assert.equal((await gw.stop()).code, 0);
    const third = path.join(dir, 'kek.third');
    fs.writeFileSync(third, `${crypto.randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    const r = await gw.cli(['kek', 'rotate', '--new-kek-file', third]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`audit record ${recd.id}: its sealed bodies are damaged`));
    await gw.restart();

    // Hostile ids and paths: usage errors (exit 2), an --out directory that is not there (1).
    for (const id of ['0', '-1', '1e3', '99999999999999999999', '']) {
      const u = await gw.cli(['audit', 'bodies', id]);
      assert.equal(u.code, 2, `id "${id}": ${u.stderr}`);
    }
  });
});
