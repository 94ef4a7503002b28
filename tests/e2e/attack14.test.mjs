// attack14: the admin API and its audit trail under a hostile admin-token holder. Each
// case is a regression of a finding (docs in the commit that fixed it) or of an attack
// that held. Runs on SQLite, and on PostgreSQL with TG_E2E_PG_URL.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { raw, request, startGateway, startMock, waitFor } from './lib/harness.mjs';

const bearer = (token) => ({ authorization: `Bearer ${token}` });

async function adminToken(gw, args) {
  const r = await gw.cli(['admin-token', 'create', ...args]);
  assert.equal(r.code, 0, r.stderr);
  const m = /^secret: (tgadm_\S+)$/m.exec(r.stdout);
  assert.ok(m, r.stdout);
  return m[1];
}

describe('attack14: admin API and audit', () => {
  let mock;
  let gw;
  let admin;
  let scoped;

  const call = (token, method, path, body) =>
    request(`${gw.adminUrl}${path}`, {
      method,
      headers: { ...bearer(token), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });

  /** The audit trail as exported (JSON lines), parsed. */
  async function trail() {
    const r = await gw.cli(['audit', 'export', '--format', 'jsonl']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  }

  before(async () => {
    mock = await startMock();
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'api', path_prefix: '/', upstream: 'mock', kind: 'http' }],
    });
    for (const t of ['acme', 'beta']) assert.equal((await gw.cli(['tenant', 'add', t])).code, 0);
    admin = await adminToken(gw, ['--role', 'admin', '--name', 'ops']);
    scoped = await adminToken(gw, ['--role', 'read', '--tenant', 'acme']);
    await waitFor(async () => (await call(scoped, 'GET', '/admin/v1/usage')).status === 200, {
      timeoutMs: 3000,
      message: 'the admin tokens are loaded',
    });
  });

  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  test('a scoped token reaches no other tenant by any spelling of the path (held)', async () => {
    for (const p of [
      '/admin/v1/tenants/beta',
      '/admin/v1/tenants/%62eta',
      '/admin/v1/tenants/BETA',
      '/admin/v1/tenants/beta/',
      '/admin/v1/tenants/acme/../beta',
      '/admin/v1/tenants/acme%2F..%2Fbeta',
      '/admin/v1/tenants/beta?tenant=acme',
      '/admin/v1/tenants/beta/budget',
      '/admin/v1/usage?tenant=beta',
      '/admin/v1/usage?tenant=acme&tenant=beta',
      '/admin/v1/usage?tenant=beta%00',
      '/admin/v1/tenants',
      '/admin/v1/tenants/beta/keys',
    ]) {
      for (const m of ['GET', 'HEAD']) {
        const r = await call(scoped, m, p);
        assert.ok([400, 404].includes(r.status), `${m} ${p}: ${r.status} ${r.text}`);
        assert.ok(!/"beta"[^]*"status"/.test(r.text), `${m} ${p} shows beta: ${r.text}`);
      }
    }
    assert.equal((await call(scoped, 'GET', '/admin/v1/tenants/acme')).status, 200);
  });

  test('hostile bodies: duplicate members, deep nesting, huge numbers, NUL, bad UTF-8 (held)', async () => {
    const cases = [
      '{"id":"dup1","id":"dup2"}',
      `{"id":${'['.repeat(5000)}${']'.repeat(5000)}}`,
      '{"id":"x","name":1e999}',
      '{"id":"x","name":123456789012345678901234567890}',
      '{"id":"nul\\u0000x"}',
      Buffer.from([0x7b, 0x22, 0x69, 0x64, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
    ];
    for (const body of cases) {
      const r = await call(admin, 'POST', '/admin/v1/tenants', body);
      assert.ok(r.status >= 400 && r.status < 500, `${String(body).slice(0, 40)}: ${r.status} ${r.text}`);
    }
    const list = (await call(admin, 'GET', '/admin/v1/tenants')).json().tenants.map((t) => t.id);
    assert.deepEqual(list.sort(), ['acme', 'beta']);
  });

  test('a refused call whose echo is cut through a character is still recorded, as text', async () => {
    // 62 letters and an "é": the record's object ("tenant:" and at most 63 bytes) cut the
    // "é" in half, bytes that are not UTF-8, which PostgreSQL refuses: the 422 was not
    // recorded (only logged). A path with raw bytes that are not UTF-8 likewise.
    const id = `${'a'.repeat(62)}é`;
    const r = await call(admin, 'POST', '/admin/v1/tenants', { id });
    assert.equal(r.status, 422, r.text);
    const rr = await raw(gw.adminPort, Buffer.concat([
      Buffer.from('GET /admin/v1/tenants/x'),
      Buffer.from([0xc3]),
      Buffer.from(`/nowhere HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${admin}\r\nConnection: close\r\n\r\n`),
    ]));
    assert.match(rr.data, /^HTTP\/1\.1 (400|404) /);
    const recs = await trail();
    const mine = recs.filter((x) => x.action === 'POST /admin/v1/tenants 422');
    assert.equal(mine.length, 1, 'the refused create is in the trail');
    assert.equal(mine[0].object, `tenant:${'a'.repeat(62)}?`, 'the cut character is a "?"');
    const out = `${gw.stderr()}\n${gw.stdout()}`;
    assert.ok(!/admin audit: .*not written/.test(out), 'every record written: ' + (/admin audit: .*not written.*/.exec(out) ?? [''])[0]);
    const v = await gw.cli(['audit', 'verify']);
    assert.equal(v.code, 0, v.stderr + v.stdout);
  });
});
