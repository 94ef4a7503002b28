// Settlements the shared limiter will never count are logged, not only counted (hostile
// review, attack3): a metric alone dies with the process, and a counter nobody graphs is a
// silent loss. Under test, one gateway (one worker) and a private redis-server:
//   - Redis stops, requests are admitted locally and their settlements journaled, then the
//     gateway stops before Redis is back: the journal is lost at exit, and a warning says
//     how many commands the shared counts miss;
//   - with markers living 1 ms (TOLLGATE_TEST_SETTLE_MARKER_MS) a settlement whose reply a
//     cut connection lost (lib/redis-proxy.mjs) is too old to be sent again: a warning
//     says it is dropped, besides settles_expired_total.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { createTenantKey, request, startGateway, startMock, startRedis, tempDir, waitFor, waitForKey, waitLoaded } from './lib/harness.mjs';
import { startProxy } from './lib/redis-proxy.mjs';

async function metric(gw, name) {
  const r = await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders });
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(r.text);
  return m ? Number(m[1]) : null;
}
const up = (gw) => metric(gw, 'tollgate_limits_backend_up');

describe('lost settlements are logged', () => {
  let mock, dir, redis, proxy, keepAlive;

  async function gateway(backendPort, env = {}) {
    const gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'api', path_prefix: '/', upstream: 'mock', kind: 'http' }],
      workers: 1,
      env,
      extra: { limits: { backend: `redis://127.0.0.1:${backendPort}/0`, timeout: '1000ms', on_backend_down: 'local' } },
    });
    await waitFor(async () => (await up(gw)) === 1, { message: 'limits backend up' });
    const k = await createTenantKey(gw, 'acme');
    // A rate (a local admission's counts are journaled for Redis) and a concurrency slot
    // (a settlement gives it back in Redis).
    assert.equal((await gw.cli(['limit', 'set', '--tenant', 'acme', '--rpm', '100000', '--concurrency', '100'])).code, 0);
    await waitForKey(gw, k.secret, '/x');
    await waitLoaded([gw]);
    return { gw, get: (id) => request(`${gw.url}/x`, { headers: { authorization: `Bearer ${k.secret}`, 'x-request-id': id } }) };
  }

  before(async () => {
    keepAlive = setInterval(() => {}, 1000); // (every child is unref'd)
    dir = await tempDir('tollgate-a3lost-');
    mock = await startMock();
    redis = await startRedis(dir);
    proxy = await startProxy(redis.port);
  });
  after(async () => {
    await proxy?.stop();
    await redis?.stop();
    await mock?.stop();
    clearInterval(keepAlive);
  });

  test('journaled while Redis is down, then the gateway stops: the loss is logged with its count', async () => {
    const { gw, get } = await gateway(redis.port);
    try {
      await redis.stop();
      await waitFor(async () => (await up(gw)) === 0, { message: 'limits backend down' });
      for (let i = 0; i < 3; i++) assert.equal((await get(`down-${i}`)).status, 200);
      await waitFor(async () => (await metric(gw, 'tollgate_limits_backend_journaled_total')) >= 3, { message: 'journaled' });
      const kept = await metric(gw, 'tollgate_limits_backend_journaled_total');
      await gw.stop();
      const line = /warn.*limits: redis.*(\d+) commands? kept while it was down (?:were|was) not sent/.exec(gw.stderr());
      assert.ok(line, `a warning at exit naming the lost commands; stderr:\n${gw.stderr().slice(-2000)}`);
      assert.equal(Number(line[1]), kept);
    } finally {
      await gw.stop();
      await redis.start();
    }
  });

  test('a lost settlement too old to be sent again (1 ms markers): logged at warn, not only counted', async () => {
    const { gw, get } = await gateway(proxy.port, { TOLLGATE_TEST_SETTLE_MARKER_MS: '1' });
    try {
      assert.equal((await get('old-1')).status, 200);
      proxy.arm('swallow');
      assert.equal((await get('old-2')).status, 200);
      await waitFor(async () => (await metric(gw, 'tollgate_limits_backend_settles_expired_total')) === 1, {
        timeoutMs: 10000,
        message: 'dropped as too old',
      });
      await waitFor(() => /warn.*limits: redis.*settlement.*not sent again/.test(gw.stderr()), {
        message: `a warning for the dropped settlement; stderr:\n${gw.stderr().slice(-2000)}`,
      });
    } finally {
      await gw.stop();
    }
  });
});
