// Key rotation and expiry (docs/cli.md): `key rotate KEY_ID --grace 1h` makes a new key for
// the same tenant and name, both keys work during the grace and the events name each by its
// id; past the grace the old key is refused with key_expired while the new one works, and
// the same for `key create --expires`. "Past the grace" is a second gateway on the same store
// whose wall clock libfaketime starts two hours after the first gateway's recorded instant:
// nothing sleeps, and "now" is always the gateway's, never this process's.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { createTenantKey, isPgUrl, request, startGateway, startMock, waitForEvent, waitForKey } from './lib/harness.mjs';

const FAKETIME_LIB = process.env.TOLLGATE_FAKETIME_LIB || '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

let mock;
let gw;
let later; // the same store, its clock 2 h ahead
let seq = 0;

async function send(g, key, path = '/api/x') {
  const id = `rot-${++seq}`;
  const r = await request(`${g.url}${path}`, { headers: { authorization: `Bearer ${key}`, 'x-request-id': id } });
  return { status: r.status, ev: await waitForEvent(g, id) };
}

/** "YYYY-MM-DD hh:mm:ss" (UTC) of Unix microseconds, libfaketime's absolute form. */
function faketimeAt(us) {
  return new Date(Number(us) / 1000).toISOString().replace('T', ' ').slice(0, 19);
}

let acme; // { secret, keyId } made by createTenantKey
let rotated; // { secret, keyId } of the rotation
let expiring; // a key made with --expires 1h after the gateway's now
let t0us; // the gateway's clock when the test began

before(async () => {
  mock = await startMock();
  const routes = [{ name: 'api', path_prefix: '/api/', upstream: 'mock' }];
  gw = await startGateway({ upstreams: [{ name: 'mock', targets: [mock.url] }], routes, workers: 1 });
  acme = await createTenantKey(gw, 'acme');
  await waitForKey(gw, acme.secret, '/api/x');
  t0us = Number((await send(gw, acme.secret)).ev.ts_us);
});
after(async () => {
  await later?.stop();
  await gw?.stop();
  await mock?.stop();
});

describe('key rotation and expiry', () => {
  test('rotate: a new key for the same tenant and name, both working during the grace', async () => {
    const l = await gw.cli(['limit', 'set', '--tenant', 'acme', '--key', acme.keyId, '--rpm', '500']);
    assert.equal(l.code, 0, l.stderr);
    const r = await gw.cli(['key', 'rotate', acme.keyId, '--grace', '1h']);
    assert.equal(r.code, 0, r.stderr);
    rotated = {
      secret: /^secret: (tg_\S+)$/m.exec(r.stdout)[1],
      keyId: /^key_id: (key_\S+)$/m.exec(r.stdout)[1],
    };
    assert.match(r.stdout, new RegExp(`^old_key: ${acme.keyId} \\(expires \\d{4}-\\d\\d-\\d\\dT`, 'm'));
    assert.ok(!/signing_secret/.test(r.stdout), 'no signing secret: the old key had none');
    // The old key's own limit now applies to the new key too.
    const limits = await gw.cli(['limit', 'list', '--tenant', 'acme']);
    assert.match(limits.stdout, new RegExp(rotated.keyId));
    assert.match(limits.stdout, new RegExp(acme.keyId));
    await waitForKey(gw, rotated.secret, '/api/x');
    const a = await send(gw, acme.secret);
    const b = await send(gw, rotated.secret);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.equal(a.ev.key_id, acme.keyId);
    assert.equal(b.ev.key_id, rotated.keyId);
    assert.equal(a.ev.tenant, 'acme');
    assert.equal(b.ev.tenant, 'acme');
    const list = await gw.cli(['key', 'list', '--tenant', 'acme']);
    assert.match(list.stdout, /EXPIRES/);
    assert.match(list.stdout, new RegExp(`${rotated.keyId}.*${acme.keyId}`)); // rotated_from
    // Rotating again while the successor is active (a retry after a lost answer) is
    // refused, naming it: no second new key whose secret nobody holds. (That a rotation
    // never lengthens the old key's life is in tests/unit/auth/test_keyops.c.)
    const again = await gw.cli(['key', 'rotate', acme.keyId, '--grace', '30d']);
    assert.equal(again.code, 1, again.stderr);
    assert.match(again.stderr, new RegExp(`rotated already: its successor ${rotated.keyId} is active`));
    assert.equal(again.stdout, '');
  });

  test('create --expires: an RFC 3339 instant one hour after the gateway\'s now', async () => {
    await gw.cli(['tenant', 'add', 'temp']);
    const at = new Date(t0us / 1000 + 3600 * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
    const r = await gw.cli(['key', 'create', '--tenant', 'temp', '--expires', at]);
    assert.equal(r.code, 0, r.stderr);
    expiring = { secret: /^secret: (tg_\S+)$/m.exec(r.stdout)[1], keyId: /^key_id: (key_\S+)$/m.exec(r.stdout)[1] };
    await waitForKey(gw, expiring.secret, '/api/x');
    assert.equal((await send(gw, expiring.secret)).status, 200);
    // A date in the past is refused, clearly.
    const past = await gw.cli(['key', 'create', '--tenant', 'temp', '--expires', '2001-01-01']);
    assert.equal(past.code, 2);
    assert.match(past.stderr, /--expires "2001-01-01": expected a future/);
    const bad = await gw.cli(['key', 'rotate', acme.keyId, '--grace', 'soon']);
    assert.equal(bad.code, 2);
  });

  test('past the grace: the old key gets 401 key_expired, the new one 200', async () => {
    later = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'api', path_prefix: '/api/', upstream: 'mock' }],
      extra: { store: isPgUrl(gw.dbPath) ? gw.dbPath : `sqlite:${gw.dbPath}`, recorder: { spool: 'later.spool' } },
      workers: 1,
      env: {
        LD_PRELOAD: FAKETIME_LIB,
        FAKETIME: `@${faketimeAt(t0us + 2 * 3600e6)}`,
        FAKETIME_DONT_FAKE_MONOTONIC: '1',
        // an ASan build (make e2e-asan's TOLLGATE_BIN) accepts libfaketime preloaded before it
        ASAN_OPTIONS: [process.env.ASAN_OPTIONS, 'verify_asan_link_order=0'].filter(Boolean).join(':'),
      },
    });
    later.dbPath = gw.dbPath;
    await waitForKey(later, rotated.secret, '/api/x');
    const n = await send(later, rotated.secret);
    assert.equal(n.status, 200);
    assert.ok(Number(n.ev.ts_us) >= t0us + 2 * 3600e6 - 60e6, 'the second gateway runs two hours later');
    const o = await send(later, acme.secret);
    assert.equal(o.status, 401);
    assert.equal(o.ev.reason, 'key_expired');
    assert.equal(o.ev.key_id, acme.keyId);
    assert.equal(o.ev.tenant, 'acme');
    const e = await send(later, expiring.secret);
    assert.equal(e.status, 401);
    assert.equal(e.ev.reason, 'key_expired');
    // Meanwhile the first gateway, still inside the grace, takes both.
    assert.equal((await send(gw, acme.secret)).status, 200);
    // A key that has expired cannot be rotated (at the later gateway's time).
    const r = await later.cli(['key', 'rotate', acme.keyId]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /has expired/);
  });
});
