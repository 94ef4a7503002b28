// The shared limiter on a password-protected Redis (limits.backend
// redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], limits.password_file; src/redis/client.c sends
// AUTH first on every connection).
//
// One private redis-server (the Debian package's binary on a free loopback port, a temp dir,
// no persistence, stopped by its PID) with `requirepass` for the default user and an ACL
// user `gw` (`--user`, Redis 6+). Under test:
//   - the right password, given through ${ENV}: two gateways on that Redis share a 3-per-minute
//     limit (exactly 3 of 6 admitted, which neither could decide alone); connections killed
//     in Redis are made again and authenticate again;
//   - an ACL user's URL: up, its requests decided in Redis;
//   - a wrong password: requests follow limits.on_backend_down (`local`), /readyz and /metrics
//     show the backend down, the refusal is logged once per worker, and neither stderr (at
//     debug), /readyz nor /metrics ever holds the password;
//   - the password changed in Redis (CONFIG SET requirepass) and in limits.password_file:
//     SIGHUP says limits.backend takes effect on restart; a reconnect with the old password is
//     refused (down); a restart brings it up with the new one.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  createTenantKey,
  freshStore,
  request,
  startGateways,
  startMock,
  startRedis,
  tempDir,
  waitFor,
  waitForKey,
  waitLoaded,
} from './lib/harness.mjs';


// A password with what a generated one holds ("/", "@", ":", "+", "="): through ${ENV} it
// goes into the URL as it is (the credentials end at the last "@"). The ACL user's is
// percent-encoded in the URL ("%25" a "%").
const PASSWORD = 'Pw/7f@3k:q+Z9=';
const USER_PASSWORD = 'Acl-9%x!';
const WRONG = 'Wrong-Pw-4711';
const NEW_PASSWORD = 'Rotated-Pw-0815';

async function readyz(gw) {
  return (await request(`${gw.adminUrl}/readyz`)).json();
}

async function metrics(gw) {
  return (await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders })).text;
}

function metric(text, name) {
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

const get = (gw, secret, p) => request(`${gw.url}${p}`, { headers: { authorization: `Bearer ${secret}` } });

describe('the shared limiter on a Redis with a password', () => {
  let mock, dir, store, redis, keepAlive;
  const gws = [];
  const base = () => ({
    upstreams: [{ name: 'mock', targets: [mock.url] }],
    routes: [{ name: 'api', path_prefix: '/', upstream: 'mock', kind: 'http' }],
    workers: 2,
  });
  async function start(limits, { env = {}, level = 'info' } = {}) {
    const [gw] = await startGateways(1, store.url, { ...base(), env, extra: { log: { access: 'off', level }, limits } });
    gws.push(gw);
    return gw;
  }
  const leaks = (text) => [PASSWORD, USER_PASSWORD, WRONG, NEW_PASSWORD, encodeURIComponent(USER_PASSWORD)].filter((p) => text.includes(p));

  before(async () => {
    keepAlive = setInterval(() => {}, 1000); // (every child is unref'd)
    dir = await tempDir('tollgate-redisauth-');
    mock = await startMock();
    store = await freshStore(dir);
    redis = await startRedis(dir, {
      args: ['--requirepass', PASSWORD, '--user', 'gw', 'on', `>${USER_PASSWORD}`, '~*', '&*', '+@all'],
      auth: PASSWORD,
    });
  });
  after(async () => {
    for (const gw of gws) await gw.stop();
    await redis?.stop();
    await mock?.stop();
    clearInterval(keepAlive);
  });

  test('the right password through ${ENV}: two gateways share a 3-per-minute limit; a reconnect authenticates again', async () => {
    const limits = { backend: `redis://:\${TG_REDIS_PASSWORD}@127.0.0.1:${redis.port}/0`, timeout: '500ms' };
    const pair = [await start(limits, { env: { TG_REDIS_PASSWORD: PASSWORD } }), await start(limits, { env: { TG_REDIS_PASSWORD: PASSWORD } })];
    for (const gw of pair) await waitFor(async () => (await readyz(gw)).limits?.status === 'up', { message: 'limits backend up' });
    const { secret } = await createTenantKey(pair[0], 'auth3');
    for (const gw of pair) await waitForKey(gw, secret, '/v1/models'); // (before the limit: not counted)
    const cli = await pair[0].cli(['limit', 'set', '--tenant', 'auth3', '--rpm', '3']);
    assert.equal(cli.code, 0, cli.stderr);
    await waitLoaded(pair);
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await get(pair[i % 2], secret, `/r${i}`)).status);
    // Each gateway alone (the local fallback, limits.instances 1) would admit 3: 6 in all.
    assert.deepEqual(
      statuses.filter((s) => s === 200).length,
      3,
      `statuses ${statuses}`,
    );
    assert.equal(statuses.filter((s) => s === 429).length, 3, `statuses ${statuses}`);
    for (const gw of pair) assert.equal(metric(await metrics(gw), 'tollgate_limits_backend_fallbacks_total'), 0);
    assert.ok(Number(await redis.cli('DBSIZE')) > 0, 'the limiter keys are in Redis');

    // Every client connection killed: the gateways connect and authenticate again.
    const killed = Number(await redis.cli('CLIENT', 'KILL', 'TYPE', 'normal'));
    assert.ok(killed >= 4, `${killed} connections killed`); // (2 workers x 2 gateways)
    for (const gw of pair) await waitFor(async () => (await readyz(gw)).limits?.status === 'up', { timeoutMs: 8000, message: 'up again' });
    assert.equal((await get(pair[0], secret, '/after')).status, 429); // (still counted in Redis)
    for (const gw of pair) {
      assert.deepEqual(leaks(gw.stderr() + JSON.stringify(await readyz(gw)) + (await metrics(gw))), []);
    }
  });

  test('an ACL user (Redis 6): up, and its requests decided in Redis', async () => {
    const gw = await start({ backend: `redis://gw:${encodeURIComponent(USER_PASSWORD)}@127.0.0.1:${redis.port}/0`, timeout: '500ms' });
    await waitFor(async () => (await readyz(gw)).limits?.status === 'up', { message: 'limits backend up' });
    const { secret } = await createTenantKey(gw, 'acl');
    await waitForKey(gw, secret, '/v1/models');
    const cli = await gw.cli(['limit', 'set', '--tenant', 'acl', '--rpm', '1000']);
    assert.equal(cli.code, 0, cli.stderr);
    await waitLoaded(gw);
    assert.equal((await get(gw, secret, '/acl')).status, 200);
    const m = await metrics(gw);
    assert.ok(metric(m, 'tollgate_limits_backend_admissions_total') > 0, 'admissions went to Redis');
    assert.equal(metric(m, 'tollgate_limits_backend_fallbacks_total'), 0);
    assert.match(await redis.cli('CLIENT', 'LIST'), /user=gw /);
    assert.deepEqual(leaks(gw.stderr() + m), []);
  });

  test('a wrong password: on_backend_down (local) applies, down in /readyz and /metrics, the password nowhere', async () => {
    // Refused AUTHs as Redis counts them: ACL LOG groups them into one "auth" entry.
    assert.equal(await redis.cli('ACL', 'LOG', 'RESET'), 'OK');
    const denied = async () => {
      const lines = ((await redis.cli('ACL', 'LOG')) || '').split('\n');
      const i = lines.indexOf('count');
      return lines.includes('auth') && i >= 0 ? Number(lines[i + 1]) : 0;
    };
    const gw = await start({ backend: `redis://:${WRONG}@127.0.0.1:${redis.port}/0`, timeout: '500ms' }, { level: 'debug' });
    const { secret } = await createTenantKey(gw, 'wrong');
    await waitForKey(gw, secret, '/v1/models');
    const cli = await gw.cli(['limit', 'set', '--tenant', 'wrong', '--rpm', '3']);
    assert.equal(cli.code, 0, cli.stderr);
    await waitLoaded(gw);
    const r = await readyz(gw);
    assert.equal(r.limits.status, 'down');
    assert.equal(r.limits.workers_up, 0);
    assert.equal(r.limits.on_backend_down, 'local');
    // The local fallback: the in-memory 3 per minute, decided without Redis.
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await get(gw, secret, `/w${i}`)).status);
    assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
    // Several refused reconnects of each of the two workers (the backoff: 100 ms doubling),
    // counted by Redis, so that "once per worker" below is about repeats.
    await waitFor(async () => (await denied()) >= 6, { message: 'six AUTH refusals' });
    const m = await metrics(gw);
    assert.equal(metric(m, 'tollgate_limits_backend_up'), 0);
    assert.ok(metric(m, 'tollgate_limits_backend_fallbacks_total') >= 5);
    const err = gw.stderr();
    // Logged once per worker while it stays down, with Redis's reason and where, not how.
    const refusals = err.split('\n').filter((l) => l.includes('AUTH refused'));
    assert.equal(refusals.length, 2, err);
    assert.match(refusals[0], /redis 127\.0\.0\.1:\d+ down \(worker \d\): AUTH refused: WRONGPASS/);
    assert.ok(err.split('\n').filter((l) => l.includes('connecting')).length >= 4, 'it kept trying');
    assert.deepEqual(leaks(err + JSON.stringify(r) + m), []);
  });

  test('the password rotated: SIGHUP says restart, a reconnect with the old one is refused, a restart brings it up', async () => {
    const pwFile = path.join(dir, 'redis-password');
    fs.writeFileSync(pwFile, `${PASSWORD}\n`, { mode: 0o600 });
    const gw = await start({ backend: `redis://127.0.0.1:${redis.port}/0`, password_file: pwFile, timeout: '500ms' });
    await waitFor(async () => (await readyz(gw)).limits?.status === 'up', { message: 'limits backend up' });

    assert.equal(await redis.cli('CONFIG', 'SET', 'requirepass', NEW_PASSWORD), 'OK');
    redis.auth = NEW_PASSWORD;
    fs.writeFileSync(pwFile, `${NEW_PASSWORD}\n`);
    gw.proc.kill('SIGHUP');
    await waitFor(() => /limits\.backend \(its password too\) take effect on restart/.test(gw.stderr()), { message: 'the reload warning' });
    // The connections it has stay authenticated; a new one with the old password is refused.
    assert.equal((await readyz(gw)).limits.status, 'up');
    await redis.cli('CLIENT', 'KILL', 'TYPE', 'normal');
    await waitFor(async () => (await readyz(gw)).limits?.status === 'down', { message: 'down with the old password' });
    await waitFor(() => /AUTH refused: WRONGPASS/.test(gw.stderr()), { message: 'the refusal logged' });

    await gw.restart();
    await waitFor(async () => (await readyz(gw)).limits?.status === 'up', { message: 'up with the new password' });
    assert.deepEqual(leaks(gw.stderr() + (await metrics(gw))), []);
  });
});
