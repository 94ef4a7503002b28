// The signed-request replay cache shared through Redis (docs/signing.md "Replays"): with
// limits.backend redis:// every signature a gateway accepts is claimed in Redis
// (SET tg:replay:HEX(SHA-256(mac)) NX PX ...), so a replay sent to another gateway on the
// same Redis is refused (401 signature_replayed), and of the same request sent to two
// gateways at once exactly one passes. The process's own cache stays in front. Redis down:
// limits.on_backend_down decides (local: this gateway's word, counted in
// tollgate_replay_backend_unanswered_total; deny: 503 signature_replay_unchecked); Redis
// back: shared again.
//
// Three gateways on one store and one private redis-server (the Debian package's binary on
// a free loopback port, a temp dir, no persistence, stopped by its PID): A and B with the
// default on_backend_down (local), C with deny. "Now" is the gateway's own clock (the
// instant it recorded for a request), never this process's: the file passes under faketime.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { freshStore, request, sqlite, startGateways, startMock, startRedis, tempDir, waitFor, waitForKey } from './lib/harness.mjs';

/** The canonical string of docs/signing.md. */
function canonical(method, target, ts, body) {
  const q = target.indexOf('?');
  const p = q < 0 ? target : target.slice(0, q);
  const name = (s) => `${s.split('=', 1)[0]}=`; // by name and '=', a name's values as sent
  const query = q < 0 ? '' : target.slice(q + 1).split('&').filter((s) => s !== '').sort((a, b) => (name(a) < name(b) ? -1 : name(a) > name(b) ? 1 : 0)).join('&');
  const hash = crypto.createHash('sha256').update(body ?? '').digest('hex');
  return `${method}\n${p}\n${query}\n${ts}\n${hash}`;
}

/** The two headers for a request, signed with secret at Unix second ts, and the MAC. */
function sign(secret, method, target, ts, body) {
  const mac = crypto.createHmac('sha256', secret).update(canonical(method, target, ts, body)).digest('hex');
  return { mac, headers: { 'X-Tollgate-Timestamp': String(ts), 'X-Tollgate-Signature': `v1=${mac}` } };
}

async function metric(gw, name) {
  const r = await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders });
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(r.text);
  return m ? Number(m[1]) : null;
}

describe('the replay cache shared through Redis', () => {
  let mock, dir, store, db, redis, keepAlive, a, b, c, key;
  let seq = 0;

  async function event(id) {
    return waitFor(async () => (await sqlite(db, `SELECT * FROM usage_events WHERE request_id = '${id}'`))[0], {
      message: `usage event ${id}`,
    });
  }

  /** Sends a signed GET (headers given) to gw; the answer and its event. */
  async function send(gw, target, headers) {
    const id = `rr-${++seq}`;
    const r = await request(`${gw.url}${target}`, {
      headers: { authorization: `Bearer ${key.secret}`, 'x-request-id': id, ...headers },
    });
    return { status: r.status, body: r.text, ev: await event(id) };
  }

  /** gw's clock in Unix seconds: the instant it recorded for a request of ours. */
  async function now(gw) {
    const id = `now-${++seq}`;
    await request(`${gw.url}/nothing-routes-here`, { headers: { 'x-request-id': id } });
    return Math.floor(Number((await event(id)).ts_us) / 1e6);
  }

  const up = (gw) => metric(gw, 'tollgate_limits_backend_up');

  before(async () => {
    keepAlive = setInterval(() => {}, 1000); // (every child is unref'd)
    dir = await tempDir('tollgate-rreplay-');
    mock = await startMock();
    store = await freshStore(dir);
    db = store.dbPath ?? store.url;
    redis = await startRedis(dir);
    const kek = path.join(dir, 'kek');
    fs.writeFileSync(kek, `${crypto.randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
    const opts = (onDown) => ({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [
        { name: 'signed', path_prefix: '/signed/', upstream: 'mock', signed: 'required' },
        { name: 'plain', path_prefix: '/plain/', upstream: 'mock' },
      ],
      workers: 2,
      extra: {
        encryption: { kek_file: kek },
        signing: { window: '300s' },
        limits: { backend: redis.url, timeout: '1000ms', on_backend_down: onDown },
      },
    });
    [a, b] = await startGateways(2, store.url, opts('local'));
    [c] = await startGateways(1, store.url, opts('deny'));
    assert.equal((await a.cli(['tenant', 'add', 'acme'])).code, 0);
    const k = await a.cli(['key', 'create', '--tenant', 'acme', '--signing']);
    assert.equal(k.code, 0, k.stderr);
    key = { secret: /^secret: (tg_\S+)$/m.exec(k.stdout)[1], signing: /^signing_secret: (tgs_\S+)$/m.exec(k.stdout)[1] };
    for (const gw of [a, b, c]) {
      await waitForKey(gw, key.secret, '/plain/x');
      await waitFor(async () => (await up(gw)) === 1, { message: 'limits backend up' });
    }
  });
  after(async () => {
    for (const gw of [a, b, c]) await gw?.stop(); // (a sanitizer report in its stderr fails here)
    await redis?.stop();
    await mock?.stop();
    clearInterval(keepAlive);
  });

  test('accepted by A, its replay to B is refused; A refuses it from its own cache', async () => {
    const t = '/signed/one';
    const s = sign(key.signing, 'GET', t, await now(a));
    const claims0 = await metric(a, 'tollgate_replay_backend_claims_total');
    let r = await send(a, t, s.headers);
    assert.equal(r.status, 200, r.body);
    assert.equal(await metric(a, 'tollgate_replay_backend_claims_total'), claims0 + 1);
    // In Redis: the hash of the MAC, never the MAC, for the window and the skew allowance.
    const rkey = `tg:replay:${crypto.createHash('sha256').update(Buffer.from(s.mac, 'hex')).digest('hex')}`;
    assert.equal(await redis.cli('EXISTS', rkey), '1');
    const pttl = Number(await redis.cli('PTTL', rkey));
    assert.ok(pttl > 300_000 && pttl <= 361_000, `PTTL ${pttl}`);
    assert.equal(await redis.cli('KEYS', `*${s.mac}*`), '');

    r = await send(b, t, s.headers);
    assert.equal(r.status, 401, r.body);
    assert.equal(r.ev.reason, 'signature_replayed');
    assert.equal(JSON.parse(r.body).error.type, 'unauthorized');
    assert.equal(await metric(b, 'tollgate_replay_backend_replays_total'), 1);

    // A's own cache answers its replay: no claim sent.
    const claims1 = await metric(a, 'tollgate_replay_backend_claims_total');
    r = await send(a, t, s.headers);
    assert.equal(r.status, 401);
    assert.equal(r.ev.reason, 'signature_replayed');
    assert.equal(await metric(a, 'tollgate_replay_backend_claims_total'), claims1);
  });

  test('the same signed request sent to A and B at once: exactly one passes', async () => {
    const base = await now(a);
    for (let i = 0; i < 10; i++) {
      const t = `/signed/race-${i}`;
      const s = sign(key.signing, 'GET', t, base);
      const rs = await Promise.all([send(a, t, s.headers), send(b, t, s.headers), send(c, t, s.headers)]);
      const codes = rs.map((x) => x.status).sort();
      assert.deepEqual(codes, [200, 401, 401], JSON.stringify(rs.map((x) => [x.status, x.ev.reason])));
      for (const x of rs) if (x.status === 401) assert.equal(x.ev.reason, 'signature_replayed');
    }
  });

  test('Redis stopped: local keeps serving on its own cache, deny answers 503; Redis back: shared again', async () => {
    const base = await now(a);
    await redis.stop();
    await waitFor(async () => (await up(a)) === 0 && (await up(c)) === 0, { message: 'backend down' });
    const un0 = await metric(a, 'tollgate_replay_backend_unanswered_total');
    const t = '/signed/down';
    const s = sign(key.signing, 'GET', t, base);
    let r = await send(a, t, s.headers);
    assert.equal(r.status, 200, r.body); // local: this gateway's word
    assert.ok((await metric(a, 'tollgate_replay_backend_unanswered_total')) > un0);
    r = await send(a, t, s.headers);
    assert.equal(r.ev.reason, 'signature_replayed'); // still caught by its own cache
    const t2 = '/signed/down-deny';
    r = await send(c, t2, sign(key.signing, 'GET', t2, base).headers);
    assert.equal(r.status, 503, r.body);
    assert.equal(r.ev.reason, 'signature_replay_unchecked');
    assert.equal(JSON.parse(r.body).error.type, 'replay_check_unavailable');

    await redis.start(); // (an empty Redis)
    await waitFor(async () => (await up(a)) === 1 && (await up(b)) === 1 && (await up(c)) === 1, {
      timeoutMs: 10000,
      message: 'backend up again',
    });
    const t3 = '/signed/back';
    const s3 = sign(key.signing, 'GET', t3, base);
    r = await send(c, t3, s3.headers);
    assert.equal(r.status, 200, r.body);
    r = await send(a, t3, s3.headers);
    assert.equal(r.ev.reason, 'signature_replayed');
  });

  test('Redis slower than limits.timeout: local accepts on its word, deny answers 503, a client that leaves while its claim waits ends cleanly', async () => {
    const base = await now(a);
    // Writes paused in Redis (PING still answered): every claim waits past limits.timeout
    // (1 s: generous, as make check loads two cores).
    assert.equal(await redis.cli('CLIENT', 'PAUSE', '4000', 'WRITE'), 'OK');
    const un0 = await metric(a, 'tollgate_replay_backend_unanswered_total');
    const t = '/signed/slow';
    const [ra, rc] = await Promise.all([
      send(a, t, sign(key.signing, 'GET', t, base).headers),
      send(c, `${t}-deny`, sign(key.signing, 'GET', `${t}-deny`, base).headers),
    ]);
    assert.equal(ra.status, 200, ra.body);
    assert.equal(await metric(a, 'tollgate_replay_backend_unanswered_total'), un0 + 1);
    assert.equal(rc.status, 503, rc.body);
    assert.equal(rc.ev.reason, 'signature_replay_unchecked');
    // B's client gives up after 100 ms, while B waits on Redis: its ticket is cancelled and
    // the late answer is nobody's (under ASAN a use after free would end B here).
    const id = `rr-${++seq}`;
    const tl = '/signed/left';
    await assert.rejects(
      request(`${b.url}${tl}`, {
        headers: { authorization: `Bearer ${key.secret}`, 'x-request-id': id, ...sign(key.signing, 'GET', tl, base).headers },
        timeoutMs: 100,
      }),
    );
    const ev = await event(id);
    assert.notEqual(ev.status, 200);
    await redis.cli('CLIENT', 'UNPAUSE');
    await waitFor(async () => (await up(b)) === 1, { timeoutMs: 10000, message: 'backend up again' });
    // B serves on, shared again.
    const t2 = '/signed/after';
    const s2 = sign(key.signing, 'GET', t2, base);
    assert.equal((await send(b, t2, s2.headers)).status, 200);
    assert.equal((await send(a, t2, s2.headers)).ev.reason, 'signature_replayed');
  });

  test('a Redis that refuses the claim (an ACL without the key): on_backend_down decides, logged once', async () => {
    const base = await now(a);
    // The default user keeps the limiter's keys and the probe, loses tg:replay:*.
    assert.equal(await redis.cli('ACL', 'SETUSER', 'default', 'resetkeys', '~tg:{*', '~tg:probe'), 'OK');
    try {
      for (let i = 0; i < 3; i++) {
        const t = `/signed/noperm-${i}`;
        const s = sign(key.signing, 'GET', t, base);
        assert.equal((await send(a, t, s.headers)).status, 200);
        assert.equal((await send(a, t, s.headers)).ev.reason, 'signature_replayed'); // its own cache
        const r = await send(c, `${t}-c`, sign(key.signing, 'GET', `${t}-c`, base).headers);
        assert.equal(r.status, 503, r.body);
        assert.equal(r.ev.reason, 'signature_replay_unchecked');
      }
      const lines = a.stderr().split('\n').filter((l) => l.includes('refused the replay check'));
      assert.ok(lines.length >= 1 && lines.length <= 2, lines.join('\n')); // once per worker
      assert.match(lines[0], /NOPERM/);
    } finally {
      await redis.cli('ACL', 'SETUSER', 'default', 'allkeys');
    }
    const t = '/signed/perm-back';
    const s = sign(key.signing, 'GET', t, base);
    assert.equal((await send(a, t, s.headers)).status, 200);
    assert.equal((await send(b, t, s.headers)).ev.reason, 'signature_replayed');
  });
});
