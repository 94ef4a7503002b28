// The admin API's keys beyond create and revoke (docs/admin-api.md, "Keys"): a key made with
// expires and signing through the API (its signing secret signs a request the gateway
// accepts), and POST /admin/v1/keys/{id}/rotate as `tollgate key rotate`: the new key works
// at once, the old one until its grace ends (grace 0: refused within a second), the old
// key's limits follow, the CLI lists the same rows, and the CLI's checks and words (a bad
// grace, an unknown or revoked key) come back as 422, 404 and 409. Read tokens get 403,
// tenant-scoped ones 404; every call is in the audit trail, no secret is. "Now" is the
// gateway's clock (the instant it recorded for a request), so faketime runs pass too.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { request, startGateway, startMock, waitFor, waitForEvent } from './lib/harness.mjs';

const bearer = (token) => ({ authorization: `Bearer ${token}` });

async function adminToken(gw, args) {
  const r = await gw.cli(['admin-token', 'create', ...args]);
  assert.equal(r.code, 0, r.stderr);
  return /^secret: (tgadm_\S+)$/m.exec(r.stdout)[1];
}

/** docs/signing.md's headers for a GET of a path without a query, at Unix second ts. */
function signGet(secret, p, ts) {
  const empty = crypto.createHash('sha256').update('').digest('hex');
  const mac = crypto.createHmac('sha256', secret).update(`GET\n${p}\n\n${ts}\n${empty}`).digest('hex');
  return { 'X-Tollgate-Timestamp': String(ts), 'X-Tollgate-Signature': `v1=${mac}` };
}

describe('admin API: keys', () => {
  let mock, gw, admin, reader, scoped, dir;
  const secrets = [];
  let seq = 0;

  const call = (token, method, p, body) =>
    request(`${gw.adminUrl}${p}`, {
      method,
      headers: { ...bearer(token), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const get = (secret, p = '/x', headers = {}) => request(`${gw.url}${p}`, { headers: { ...bearer(secret), ...headers } });

  /** The gateway's clock in microseconds: the instant it recorded for a request of ours. */
  async function gatewayNowUs() {
    const id = `now-${++seq}`;
    await request(`${gw.url}/x`, { headers: { 'x-request-id': id } });
    return Number((await waitForEvent(gw, id)).ts_us);
  }

  before(async () => {
    mock = await startMock();
    dir = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'tg-apikeys-'));
    const kek = path.join(dir, 'kek');
    fs.writeFileSync(kek, `${crypto.randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [
        { name: 'signed', path_prefix: '/signed/', upstream: 'mock', signed: 'required' },
        { name: 'api', path_prefix: '/', upstream: 'mock', kind: 'http' },
      ],
      extra: { encryption: { kek_file: kek } },
    });
    for (const t of ['acme', 'beta']) assert.equal((await gw.cli(['tenant', 'add', t])).code, 0);
    admin = await adminToken(gw, ['--role', 'admin']);
    reader = await adminToken(gw, ['--role', 'read']);
    scoped = await adminToken(gw, ['--role', 'read', '--tenant', 'acme']);
    secrets.push(admin, reader, scoped);
    await waitFor(async () => (await call(scoped, 'GET', '/admin/v1/usage')).status === 200, { timeoutMs: 3000, message: 'tokens loaded' });
  });

  after(async () => {
    await gw?.stop();
    await mock?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('create with expires and signing: the signing secret signs a request the gateway takes', async () => {
    const now = await gatewayNowUs();
    const expires = new Date(now / 1000 + 30 * 86400e3).toISOString().slice(0, 10);
    const r = await call(admin, 'POST', '/admin/v1/tenants/acme/keys', { name: 'signer', expires, signing: true });
    assert.equal(r.status, 201, r.text);
    const k = r.json();
    secrets.push(k.secret, k.signing_secret);
    assert.match(k.signing_secret, /^tgs_[0-9A-Za-z]{43}$/);
    assert.equal(k.signing, true);
    assert.equal(k.expires_us, Date.parse(`${expires}T00:00:00Z`) * 1000);
    assert.equal(k.rotated_from, null);
    // The CLI lists the same key: signing yes, the same expiry.
    const cli = (await gw.cli(['key', 'list', '--tenant', 'acme'])).stdout;
    const line = cli.split('\n').find((l) => l.startsWith(k.id));
    assert.ok(line && / yes /.test(line) && line.includes(`${expires}T00:00:00Z`), cli);
    await waitFor(async () => (await get(k.secret)).status === 200, { timeoutMs: 1500, message: 'the key works' });
    const ts = Math.floor((await gatewayNowUs()) / 1e6);
    assert.equal((await get(k.secret, '/signed/a', signGet(k.signing_secret, '/signed/a', ts))).status, 200);
    assert.equal((await get(k.secret, '/signed/a', signGet('tgs_wrong', '/signed/a', ts))).status, 401);
    // The CLI's checks.
    for (const [body, status] of [
      [{ expires: '2001-01-01' }, 422],
      [{ expires: 'tomorrow' }, 422],
      [{ signing: 'yes' }, 400],
      [{ secret: 'tg_mine' }, 400], // no import through the API
    ]) {
      const bad = await call(admin, 'POST', '/admin/v1/tenants/acme/keys', body);
      assert.equal(bad.status, status, `${JSON.stringify(body)}: ${bad.text}`);
    }
    assert.equal((await call(admin, 'POST', '/admin/v1/tenants/nosuch/keys', { signing: true })).status, 404);
    // A disabled tenant's key is made, with the CLI's note as a warning.
    assert.equal((await gw.cli(['tenant', 'add', 'gone'])).code, 0);
    assert.equal((await gw.cli(['tenant', 'disable', 'gone'])).code, 0);
    const off = await call(admin, 'POST', '/admin/v1/tenants/gone/keys', {});
    assert.equal(off.status, 201, off.text);
    secrets.push(off.json().secret);
    assert.equal(off.json().warning, 'tenant "gone" is disabled; the key works once it is enabled');
  });

  test('rotate: the new key works, the old one until its grace; its limits follow; the CLI agrees', async () => {
    const made = await call(admin, 'POST', '/admin/v1/tenants/beta/keys', { name: 'svc' });
    assert.equal(made.status, 201, made.text);
    const old = made.json();
    secrets.push(old.secret);
    assert.equal((await gw.cli(['limit', 'set', '--tenant', 'beta', '--key', old.id, '--rpm', '600'])).code, 0);
    await waitFor(async () => (await get(old.secret)).status === 200, { timeoutMs: 1500, message: 'the old key works' });

    const r = await call(admin, 'POST', `/admin/v1/keys/${old.id}/rotate`, { grace: '1h' });
    assert.equal(r.status, 201, r.text);
    const { key, old: was, warning } = r.json();
    secrets.push(key.secret);
    assert.equal(warning, undefined);
    assert.equal(key.tenant, 'beta');
    assert.equal(key.name, 'svc');
    assert.equal(key.rotated_from, old.id);
    assert.equal(key.signing, false);
    assert.equal(was.id, old.id);
    assert.equal(was.status, 'active');
    const now = await gatewayNowUs();
    assert.ok(was.expires_us > now + 3500e6 && was.expires_us <= now + 3600e6, `${was.expires_us} ~ ${now} + 1h`);
    await waitFor(async () => (await get(key.secret)).status === 200, { timeoutMs: 1500, message: 'the new key works' });
    assert.equal((await get(old.secret)).status, 200, 'the old key works during its grace');
    const limits = JSON.parse((await gw.cli(['limit', 'list', '--tenant', 'beta', '--format', 'json'])).stdout);
    const of = (id) => limits.filter((l) => l.scope === 'key' && l.value === id).map((l) => [l.limit, l.period_s]);
    assert.deepEqual(of(key.id), [[600, 60]], JSON.stringify(limits));
    assert.deepEqual(of(old.id), [[600, 60]], 'the old key keeps its limit while it works');
    const cli = (await gw.cli(['key', 'list', '--tenant', 'beta'])).stdout;
    assert.ok(cli.split('\n').some((l) => l.startsWith(key.id) && l.includes(old.id)), cli);
    // The same rotation sent again (a retry after a lost answer), and two at once: 409
    // naming the successor, and no third key (whose secret nobody would hold).
    const keysBefore = (await call(admin, 'GET', '/admin/v1/tenants/beta/keys')).json().keys.length;
    const retries = await Promise.all([1, 2].map(() => call(admin, 'POST', `/admin/v1/keys/${old.id}/rotate`, { grace: '1h' })));
    for (const x of retries) {
      assert.equal(x.status, 409, x.text);
      assert.match(x.json().error.message, new RegExp(`rotated already: its successor ${key.id} is active`));
    }
    assert.equal((await call(admin, 'GET', '/admin/v1/tenants/beta/keys')).json().keys.length, keysBefore);

    // Again with grace 0: the (new) old key is refused within a second.
    const r0 = await call(admin, 'POST', `/admin/v1/keys/${key.id}/rotate`, { grace: '0' });
    assert.equal(r0.status, 201, r0.text);
    secrets.push(r0.json().key.secret);
    await waitFor(async () => (await get(key.secret)).status === 401, { timeoutMs: 1500, message: 'grace 0: the old key is refused' });
    await waitFor(async () => (await get(r0.json().key.secret)).status === 200, { timeoutMs: 1500, message: 'its successor works' });
  });

  test("rotate: the CLI's checks and words; a signing key gets a new signing secret", async () => {
    const k = (await call(admin, 'POST', '/admin/v1/tenants/acme/keys', { signing: true })).json();
    secrets.push(k.secret, k.signing_secret);
    for (const [p, body, status, words] of [
      [`/admin/v1/keys/${k.id}/rotate`, { grace: '24' }, 422, /grace "24": expected a duration/],
      [`/admin/v1/keys/${k.id}/rotate`, { grace: '400d' }, 422, /at most 365d/],
      [`/admin/v1/keys/${k.id}/rotate`, { grace: 24 }, 400, /"grace" must be a string/],
      [`/admin/v1/keys/${k.id}/rotate`, { grace: '1h', extra: 1 }, 400, /extra/],
      ['/admin/v1/keys/key_0000000000000000/rotate', {}, 404, /no key "key_0000000000000000"/],
    ]) {
      const r = await call(admin, 'POST', p, body);
      assert.equal(r.status, status, `${JSON.stringify(body)}: ${r.text}`);
      assert.match(r.json().error.message, words);
    }
    // Hostile ids: not text, a slash, far too long, a body that is no object.
    for (const [p, body, status] of [
      ['/admin/v1/keys/%FF/rotate', {}, 404],
      ['/admin/v1/keys/a%2Fb/rotate', {}, 404],
      [`/admin/v1/keys/${'k'.repeat(300)}/rotate`, {}, 404],
      [`/admin/v1/keys/${k.id}/rotate`, [], 400],
      [`/admin/v1/keys/${k.id}/rotate`, { grace: null }, 400],
    ]) {
      const r = await call(admin, 'POST', p, body);
      assert.equal(r.status, status, `${p.slice(0, 60)} ${JSON.stringify(body)}: ${r.text}`);
    }
    const r = await call(admin, 'POST', `/admin/v1/keys/${k.id}/rotate`);
    assert.equal(r.status, 201, r.text);
    const nk = r.json().key;
    secrets.push(nk.secret, nk.signing_secret);
    assert.equal(nk.signing, true);
    assert.match(nk.signing_secret, /^tgs_/);
    assert.notEqual(nk.signing_secret, k.signing_secret);
    const grace = r.json().old.expires_us - nk.created_us;
    assert.equal(grace, 24 * 3600e6, 'the default grace is 24h');
    assert.equal((await call(admin, 'DELETE', `/admin/v1/keys/${nk.id}`)).status, 200);
    const revoked = await call(admin, 'POST', `/admin/v1/keys/${nk.id}/rotate`, {});
    assert.equal(revoked.status, 409, revoked.text);
    assert.match(revoked.json().error.message, /is revoked: nothing to rotate/);
    // Read tokens may not; a scoped one does not see keys at all.
    assert.equal((await call(reader, 'POST', `/admin/v1/keys/${k.id}/rotate`, {})).status, 403);
    assert.equal((await call(scoped, 'POST', `/admin/v1/keys/${k.id}/rotate`, {})).status, 403);
    assert.equal((await call(scoped, 'GET', '/admin/v1/tenants/acme/keys')).status, 404);
  });

  test('every rotation is in the audit trail with its tenant; no secret anywhere', async () => {
    const r = await gw.cli(['audit', 'export', '--format', 'jsonl']);
    assert.equal(r.code, 0, r.stderr);
    const recs = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    const rot = recs.filter((x) => x.action === 'POST /admin/v1/keys/{id}/rotate 201');
    assert.ok(rot.length >= 3, JSON.stringify(rot));
    const beta = rot.find((x) => x.tenant === 'beta');
    assert.match(beta.object, /^key:key_/);
    const after = JSON.parse(beta.after);
    assert.equal(after.key.rotated_from, beta.object.slice(4));
    assert.equal(JSON.parse(beta.before).expires_us, null, 'before: the old key as it was');
    assert.notEqual(after.old.expires_us, null, 'after: the old key set to expire');
    assert.ok(recs.some((x) => x.action === 'POST /admin/v1/keys/{id}/rotate 422'), 'a refusal recorded');
    assert.ok(recs.some((x) => x.action === 'POST /admin/v1/keys/{id}/rotate 403'), 'a read token recorded');
    const out = `${gw.stderr()}\n${gw.stdout()}\n${r.stdout}`;
    for (const s of secrets) assert.ok(!out.includes(s), 'a secret is in the gateway output or the trail');
  });
});
