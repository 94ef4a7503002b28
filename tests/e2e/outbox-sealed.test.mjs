// The notification outbox sealed at rest (issue 14, docs/encryption.md "The notification
// outbox"): the real gateway with a KEK and a webhook receiver in this process.
//
// What is checked, on SQLite (and PostgreSQL with TG_E2E_PG_URL):
//   - budget thresholds crossing produce notices the webhook receives plain and signed, while
//     the store holds none of them in clear: no tenant, summary or notice id in the outbox rows
//     nor (SQLite) anywhere in the database file and its WAL;
//   - a notice waiting in the outbox (receiver down) sealed by a KEK the gateway was restarted
//     without is not sent and its delivery row names the KEK id it needs;
//   - `tollgate kek rotate` re-wraps the outbox's notices; started with the new KEK, the
//     gateway delivers the waiting notice, intact; a damaged notice makes it exit 1, naming it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import {
  createTenantKey,
  freePort,
  isPgUrl,
  request,
  sqlite,
  startGateway,
  startMock,
  toYaml,
  waitFor,
  waitForEvent,
  waitForKey,
} from './lib/harness.mjs';

const SECRET = crypto.randomBytes(16).toString('hex');
const TENANT = 'zebracorp';
const ALERT = { input: '0', output: '1000' }; // 10 output tokens: exactly 0.01 USD

function kekId(key) {
  const h = crypto.createHash('sha256').update(Buffer.concat([Buffer.from('tollgate kek id'), key]));
  return h.digest().subarray(0, 8).toString('hex');
}

/** A webhook receiver checking each signature; answers `status`; records accepted notices. */
async function startReceiver() {
  const r = { status: 200, accepted: new Map(), badSignatures: 0 };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const want = 'sha256=' + crypto.createHmac('sha256', SECRET).update(body).digest('hex');
      const got = String(req.headers['x-tollgate-signature'] ?? '');
      if (got.length !== want.length || !crypto.timingSafeEqual(Buffer.from(got), Buffer.from(want))) {
        r.badSignatures++;
        res.writeHead(401).end();
        return;
      }
      const notice = JSON.parse(body.toString());
      if (r.status === 200) r.accepted.set(notice.id, notice);
      res.writeHead(r.status).end('ok');
    });
  });
  const port = await freePort();
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${port}/hook`;
  r.close = () => new Promise((resolve) => server.close(resolve));
  return r;
}

describe('the notification outbox sealed at rest', () => {
  let mock, gw, hook, kek, kekFile;

  before(async () => {
    [mock, hook] = await Promise.all([startMock(), startReceiver()]);
    kek = crypto.randomBytes(32);
    kekFile = path.join(fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'tg-obx-')), 'kek');
    fs.writeFileSync(kekFile, `${kek.toString('hex')}\n`, { mode: 0o600 });
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' }],
      env: { HOOK_SECRET: SECRET },
      extra: {
        encryption: { kek_file: kekFile },
        prices: { models: { 'alert-model': ALERT } },
        notify: [{ name: 'hook', type: 'webhook', url: hook.url, secret: '${HOOK_SECRET}', timeout: '2s' }],
        notify_retry: { min: '200ms', max: '1s' },
      },
    });
  });
  after(async () => {
    await gw?.stop();
    await hook?.close();
    await mock?.stop();
    if (kekFile) fs.rmSync(path.dirname(kekFile), { recursive: true, force: true });
  });

  let key, period;
  async function spend(n) {
    for (let i = 0; i < n; i++) {
      const r = await request(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key.secret}` },
        body: JSON.stringify({ model: 'alert-model', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }),
      });
      assert.equal(r.status, 200, r.text);
      const ev = await waitForEvent(gw, r.headers['x-request-id']);
      period = new Date(Math.floor(ev.ts_us / 1000)).toISOString().slice(0, 7);
    }
  }

  /** The outbox's rows as text, and every byte of the store (the SQLite file and its WAL;
   * on PostgreSQL the outbox's rows): the tenant's name is in other tables (tenants, keys,
   * budgets: the store is not sealed as a whole), the notices' text and ids are not. */
  async function stored() {
    const rows = await sqlite(gw.dbPath, 'SELECT * FROM outbox');
    const dels = await sqlite(gw.dbPath, 'SELECT * FROM outbox_deliveries');
    const outbox = JSON.stringify(rows) + JSON.stringify(dels);
    let bytes = Buffer.from(outbox);
    if (!isPgUrl(gw.dbPath))
      for (const f of [gw.dbPath, `${gw.dbPath}-wal`])
        if (fs.existsSync(f)) bytes = Buffer.concat([bytes, fs.readFileSync(f)]);
    return { rows, dels, outbox, bytes };
  }

  test('notices reach the webhook plain; the store holds none of them in clear', async () => {
    key = await createTenantKey(gw, TENANT);
    await waitForKey(gw, key.secret, '/v1/models');
    const b = await gw.cli(['budget', 'set', '--tenant', TENANT, '--monthly', '0.04', '--soft', '--thresholds', '25,50,75']);
    assert.equal(b.code, 0, b.stderr);
    await new Promise((resolve) => setTimeout(resolve, 600)); // the budget reaches the gateway
    await spend(1);
    const id = `budget/${TENANT}/${period}/25`;
    await waitFor(() => hook.accepted.has(id), { timeoutMs: 10000, message: 'the notice at the webhook' });
    assert.equal(hook.badSignatures, 0);
    const n = hook.accepted.get(id);
    assert.equal(n.tenant, TENANT);
    assert.match(n.summary, new RegExp(`tenant ${TENANT} reached 25% of its monthly budget`));

    const { rows, dels, outbox, bytes } = await stored();
    assert.equal(rows.length, 1);
    assert.match(rows[0].id, /^k1\/[0-9a-f]{64}$/);
    assert.ok(rows[0].sealed && rows[0].sealed.length > 100);
    assert.equal(rows[0].tenant_id, '');
    assert.equal(rows[0].summary, '');
    assert.equal(dels[0].status, 'delivered');
    assert.ok(!outbox.includes(TENANT), 'the tenant in the outbox');
    for (const s of ['reached 25%', `budget/${TENANT}/`]) assert.equal(bytes.indexOf(s), -1, `"${s}" in the store`);
  });

  test('a waiting notice: refused without its KEK (naming it), delivered after kek rotate', async () => {
    hook.status = 503; // the receiver is down: the next notice waits in the outbox
    await spend(1);
    const id = `budget/${TENANT}/${period}/50`;
    await waitFor(async () => (await sqlite(gw.dbPath, `SELECT error FROM outbox_deliveries WHERE error LIKE 'HTTP 503%'`)).length > 0, {
      timeoutMs: 10000,
      message: 'the delivery failed once',
    });
    assert.equal((await gw.stop()).code, 0);
    hook.status = 200;

    // Restarted without any KEK: the sealed notice is not sent; its row names the KEK id.
    const withKek = gw.config.encryption;
    delete gw.config.encryption;
    fs.writeFileSync(gw.configPath, toYaml(gw.config));
    await gw.restart();
    await waitFor(
      async () => (await sqlite(gw.dbPath, `SELECT error FROM outbox_deliveries WHERE error LIKE '%${kekId(kek)}%'`)).length === 1,
      { timeoutMs: 10000, message: 'the delivery names the KEK it needs' },
    );
    assert.ok(!hook.accepted.has(id));
    const st = await sqlite(gw.dbPath, `SELECT status FROM outbox_deliveries WHERE status = 'pending'`);
    assert.equal(st.length, 1, 'kept pending, not dropped');
    assert.equal((await gw.stop()).code, 0);

    // kek rotate to a new KEK re-wraps it; run again, nothing left.
    const newKek = crypto.randomBytes(32);
    const newFile = `${kekFile}.new`;
    fs.writeFileSync(newFile, `${newKek.toString('hex')}\n`, { mode: 0o600 });
    gw.config.encryption = withKek;
    fs.writeFileSync(gw.configPath, toYaml(gw.config));
    let r = await gw.cli(['kek', 'rotate', '--new-kek-file', newFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /re-wrapped 2 outbox notices \(0 already under it, 0 under another KEK\)/);
    r = await gw.cli(['kek', 'rotate', '--new-kek-file', newFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /re-wrapped 0 outbox notices \(2 already under it/);

    // Started with the new KEK: the waiting notice (its due time moved by the refusals) goes.
    gw.config.encryption = { kek_file: newFile };
    fs.writeFileSync(gw.configPath, toYaml(gw.config));
    await gw.restart();
    await waitFor(() => hook.accepted.has(id), { timeoutMs: 15000, message: 'the waiting notice delivered' });
    const n = hook.accepted.get(id);
    assert.equal(n.tenant, TENANT);
    assert.match(n.summary, /reached 50%/);
    const { outbox, bytes } = await stored();
    assert.ok(!outbox.includes(TENANT), 'the tenant in the outbox');
    for (const s of ['reached 50%', `budget/${TENANT}/`]) assert.equal(bytes.indexOf(s), -1, `"${s}" in the store`);
  });

  test('kek rotate over a damaged outbox notice says which one and exits 1', async () => {
    assert.equal((await gw.stop()).code, 0);
    const [row] = await sqlite(gw.dbPath, 'SELECT id FROM outbox ORDER BY created_us LIMIT 1');
    await sqlite(gw.dbPath, `UPDATE outbox SET sealed = 'not base64 at all' WHERE id = '${row.id}'`);
    const third = `${kekFile}.third`;
    fs.writeFileSync(third, `${crypto.randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    const r = await gw.cli(['kek', 'rotate', '--new-kek-file', third]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`outbox notice ${row.id}: its sealed text is damaged`));
    assert.match(r.stdout, /re-wrapped 1 outbox notices/); // the other one
    assert.match(r.stderr, /not everything was re-wrapped/);
  });
});
