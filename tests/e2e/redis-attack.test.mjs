// The shared limiter (limits.backend redis://, src/redis/) against a hostile Redis: a fake
// one (lib/fake-redis.mjs) that answers EVALSHA with the wrong types, errors, NOSCRIPT every
// time, half a reply then a close, late, or never; and hostile clients that leave while
// their admission waits. Every request must be answered, the gateway must not crash or
// leak (run it with TOLLGATE_BIN=build/tollgate-asan), and an admission Redis made for
// nobody is undone.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import fs from 'node:fs';

import { createTenantKey, raw, request, toYaml, startGateway, startMock, waitFor, waitForKey } from './lib/harness.mjs';
import { later, never, resp, startFakeRedis } from './lib/fake-redis.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const TIMEOUT_MS = 100;

async function readyz(gw) {
  return (await request(`${gw.adminUrl}/readyz`)).json();
}

describe('the shared limiter against a hostile Redis', () => {
  let mock, fake, gw, secret, keepAlive;
  const nrules = (args) => Number(args[3 + Number(args[2]) + 9]); // ARGV[10]
  const mode = (args) => args[3 + Number(args[2])];
  const id = (args) => args[4 + Number(args[2])];
  const admitted = (args) => (mode(args) === 'A' ? resp.ints([0, 0, 0, -1, ...Array(2 * nrules(args)).fill(5)]) : resp.ints([0]));

  before(async () => {
    keepAlive = setInterval(() => {}, 1000);
    mock = await startMock();
    fake = await startFakeRedis(admitted);
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'api', path_prefix: '/', upstream: 'mock', kind: 'http' }],
      workers: 1,
      extra: {
        server: { max_body: 4096 },
        limits: { backend: `redis://127.0.0.1:${fake.port}/0`, timeout: `${TIMEOUT_MS}ms`, on_backend_down: 'allow' },
        defaults: { limits: { rpm: 100000, concurrency: 50 } },
      },
    });
    await waitFor(async () => (await readyz(gw)).limits?.status === 'up', { message: 'limits backend up' });
    ({ secret } = await createTenantKey(gw, 't1'));
    await waitForKey(gw, secret, '/v1/models');
  });
  after(async () => {
    await gw?.stop();
    await fake?.stop();
    await mock?.stop();
    clearInterval(keepAlive);
  });

  const get = (p = '/x') => request(`${gw.url}${p}`, { headers: { authorization: `Bearer ${secret}` }, timeoutMs: 10000 });

  test('replies of the wrong shape: every request answered', async () => {
    const bad = [
      () => resp.int(0),
      () => resp.bulk('x'.repeat(1 << 20)),
      () => resp.arr([resp.bulk('0'), resp.bulk('0'), resp.bulk('0'), resp.bulk('0')]),
      () => resp.ints(Array(5000).fill(0)),
      () => resp.arr([resp.ints([0, 0, 0, -1]), resp.int(1), resp.int(2), resp.int(3)]),
      () => resp.err('OOM command not allowed when used memory > maxmemory'),
      () => resp.ints([0, 0, 0]),
      () => resp.ints([7, 99, -5, -1, 1, 1]),
      () => resp.ints([1, 99, -5, -1, 1, 1]),
      () => resp.ints([0, 0, 0, -1, 1]),
      () => '*-1\r\n',
      () => '$-1\r\n',
    ];
    for (const [i, b] of bad.entries()) {
      fake.onEval = (args) => (args[3 + Number(args[2])] === 'A' ? b(args) : resp.ints([0]));
      const r = await get(`/bad${i}`);
      assert.ok([200, 429, 503].includes(r.status), `reply ${i}: ${r.status} ${r.text}`);
    }
    // (The OOM error made it down until a write succeeds.)
    fake.onEval = admitted;
    await waitFor(async () => (await readyz(gw)).limits?.status === 'up', { message: 'up again' });
  });

  test('NOSCRIPT every time: answered, each admission sent at most twice', async () => {
    await waitFor(async () => (await readyz(gw)).limits?.status === 'up', { message: 'up' });
    fake.onEval = () => resp.err('NOSCRIPT No matching script. Please use EVAL.');
    const before = fake.evals('A').length;
    const r = await get('/noscript');
    assert.equal(r.status, 200);
    await sleep(200);
    assert.ok(fake.evals('A').length - before <= 2, `${fake.evals('A').length - before} sends`);
  });

  test('an admission answered late is undone: its id settled with nothing held', async () => {
    fake.onEval = (args) => (mode(args) === 'A' ? later(TIMEOUT_MS + 30, admitted(args)) : resp.ints([0]));
    const n = fake.evals('A').length;
    const r = await get('/late');
    assert.equal(r.status, 200);
    const late = id(fake.evals('A')[n].args);
    await waitFor(() => fake.evals('S').some((e) => id(e.args) === late), { message: 'the late admission undone' });
    fake.onEval = admitted;
  });

  test('half a reply, then the connection closed: answered; the client connects again', async () => {
    fake.onEval = (args, sock) => {
      sock.write('*6\r\n:0\r\n:0');
      setTimeout(() => sock.destroy(), 10);
      return null;
    };
    const r = await get('/half');
    assert.equal(r.status, 200);
    fake.onEval = admitted;
    await waitFor(async () => (await readyz(gw)).limits?.status === 'up', { timeoutMs: 8000, message: 'up again' });
  });

  test('clients that leave while their admission waits; pipelined requests during the wait', async () => {
    const held = [];
    fake.onEval = (args) => {
      if (mode(args) !== 'A') return resp.ints([0]);
      return new Promise((r) => held.push(() => r(admitted(args))));
    };
    const socks = [];
    for (let i = 0; i < 5; i++) {
      const s = net.connect(gw.port ?? new URL(gw.url).port, '127.0.0.1');
      s.on('error', () => {});
      s.write(`GET /leave${i} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\n\r\n`.repeat(3));
      socks.push(s);
    }
    await sleep(30);
    for (const s of socks) s.destroy();
    await sleep(TIMEOUT_MS * 2);
    for (const h of held) h();
    fake.onEval = admitted;
    await sleep(100);
    const r = await get('/after');
    assert.equal(r.status, 200);
  });

  test('a chunked body past server.max_body while admission waits: 413, and the late "yes" given back', async () => {
    const held = [];
    fake.onEval = (args) => (mode(args) === 'A' ? new Promise((r) => held.push([id(args), () => r(admitted(args))])) : resp.ints([0]));
    const port = new URL(gw.url).port;
    const chunk = 'x'.repeat(3000);
    const body = `${(3000).toString(16)}\r\n${chunk}\r\n`.repeat(3) + '0\r\n\r\n';
    const r = raw(port, `POST /big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\nTransfer-Encoding: chunked\r\n\r\n` + body, { timeoutMs: 3000 });
    await waitFor(() => held.length === 1, { message: 'admission sent' });
    await sleep(20);
    const [late, answer] = held[0];
    answer();
    const out = await r;
    assert.match(out.data, /^HTTP\/1.1 (413|200)/, out.data);
    fake.onEval = admitted;
    await sleep(TIMEOUT_MS);
    console.log(`413 during wait: ${out.data.split('\r\n')[0]}; settles for its id: ${fake.evals('S').filter((e) => id(e.args) === late).length}`);
  });

  test('chaos: replies late, wrong, refused or cut, clients leaving at random moments', async () => {
    let k = 0;
    fake.onEval = (args, sock) => {
      if (mode(args) !== 'A') return k++ % 7 === 0 ? resp.err('OOM command not allowed') : resp.ints([0]);
      switch (k++ % 9) {
        case 0: return later(TIMEOUT_MS + 5, admitted(args));
        case 1: return later(TIMEOUT_MS - 5, admitted(args));
        case 2: return resp.err('OOM command not allowed when used memory > maxmemory');
        case 3: return resp.err('NOSCRIPT No matching script.');
        case 4: return resp.ints([1, 1, 5000000, -1, ...Array(2 * nrules(args)).fill(0)]);
        case 5: setTimeout(() => sock.destroy(), 30); return null;
        case 6: return resp.bulk('garbage');
        default: return admitted(args);
      }
    };
    const port = new URL(gw.url).port;
    const clients = [];
    const t0 = performance.now();
    while (performance.now() - t0 < 4000) {
      const batch = Array.from({ length: 20 }, (_, i) => {
        if (i % 3 === 0) {
          const s = net.connect(port, '127.0.0.1');
          s.on('error', () => {});
          s.write(`GET /c${i} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\n\r\n`.repeat(2));
          return sleep(Math.floor(Math.random() * 2 * TIMEOUT_MS)).then(() => s.destroy());
        }
        return get(`/c${i}`).then((r) => clients.push(r.status), (e) => clients.push(e.message));
      });
      await Promise.all(batch);
    }
    fake.onEval = admitted;
    await waitFor(async () => (await readyz(gw)).limits?.status === 'up', { timeoutMs: 10000, message: 'up again' });
    const r = await get('/after-chaos');
    assert.equal(r.status, 200);
    const bad = clients.filter((s) => ![200, 429, 503].includes(s));
    console.log(`chaos: ${clients.length} answered, statuses ${[...new Set(clients)].join(' ')}`);
    assert.deepEqual(bad, []);
  });

  test('SIGHUP switching the backend and on_backend_down while requests wait', async () => {
    await waitFor(async () => (await readyz(gw)).limits?.status === 'up', { timeoutMs: 10000, message: 'up' });
    const held = [];
    fake.onEval = (args) => (mode(args) === 'A' ? new Promise((r) => held.push(() => r(admitted(args)))) : resp.ints([0]));
    const waiting = Array.from({ length: 3 }, (_, i) => get(`/hup${i}`));
    await waitFor(() => held.length === 3, { message: 'three admissions sent' });
    const cfg = structuredClone(gw.config);
    cfg.limits = { backend: 'memory', on_backend_down: 'deny' };
    fs.writeFileSync(gw.configPath, toYaml(cfg));
    gw.proc.kill('SIGHUP');
    await sleep(50);
    for (const h of held) h();
    const res = await Promise.all(waiting);
    console.log(`reload while waiting: ${res.map((r) => r.status).join(', ')}`);
    for (const r of res) assert.ok([200, 503].includes(r.status), r.text);
    fake.onEval = admitted;
    const r = await get('/after-hup');
    console.log(`after reload: ${r.status} ${r.text.slice(0, 100)}`);
    fs.writeFileSync(gw.configPath, toYaml(gw.config));
    gw.proc.kill('SIGHUP');
    await sleep(100);
  });

  test('Redis that never answers (not even the probe): requests answered within the timeout, down, then SIGTERM with requests waiting', async () => {
    fake.onEval = () => null;
    fake.pingSilent = true;
    const res = [];
    for (let i = 0; i < 4; i++) res.push(await get(`/never${i}`));
    for (const r of res) assert.equal(r.status, 200);
    assert.ok(res.every((r) => r.ms < TIMEOUT_MS + 400), res.map((r) => Math.round(r.ms)).join(' '));
    await waitFor(async () => (await readyz(gw)).limits?.status !== 'up', { message: 'down' });
    // Back up, then stalled again with requests waiting as the gateway is stopped.
    fake.onEval = admitted;
    fake.pingSilent = false;
    await waitFor(async () => (await readyz(gw)).limits?.status === 'up', { timeoutMs: 10000, message: 'up again' });
    fake.onEval = () => null;
    const waiting = Array.from({ length: 3 }, (_, i) => get(`/stop${i}`).catch((e) => e));
    await sleep(20);
    await gw.stop();
    const done = await Promise.all(waiting);
    console.log(`stopped while waiting: ${done.map((d) => d.status ?? d.message).join(', ')}`);
    gw = null;
  });
});

// ---- a real Redis behind a proxy that delays its replies ----

async function startRedisServer(port) {
  const { spawn, spawnSync } = await import('node:child_process');
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'],
    { stdio: 'ignore' },
  );
  proc.unref();
  const cli = (...a) => {
    const r = spawnSync('redis-cli', ['-p', String(port), '--raw', ...a], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : null;
  };
  await waitFor(() => cli('PING') === 'PONG', { timeoutMs: 10000, message: 'redis-server up' });
  return { proc, cli, port, stop: () => proc.kill('SIGKILL') };
}

/** A TCP proxy to port whose replies (each chunk Redis writes) are delayed by delayMs(). */
async function startDelayProxy(port, delayMs) {
  const server = net.createServer((c) => {
    const r = net.connect(port, '127.0.0.1');
    c.on('error', () => r.destroy());
    r.on('error', () => c.destroy());
    c.pipe(r);
    let last = 0;
    r.on('data', (d) => {
      // (In order: never before the previous chunk.)
      const at = Math.max(performance.now() + delayMs(), last);
      last = at;
      setTimeout(() => !c.destroyed && c.write(d), at - performance.now());
    });
    c.on('close', () => r.destroy());
    r.on('close', () => c.destroy());
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  server.unref();
  return { port: server.address().port, stop: () => new Promise((r) => server.close(r)) };
}

describe('replies right at limits.timeout', () => {
  let mock, redis, proxy, gw, secret, keepAlive;
  let delay = () => 0;
  before(async () => {
    keepAlive = setInterval(() => {}, 1000);
    mock = await startMock();
    const { freePort } = await import('./lib/harness.mjs');
    const rport = await freePort();
    redis = await startRedisServer(rport);
    proxy = await startDelayProxy(rport, () => delay());
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'api', path_prefix: '/', upstream: 'mock', kind: 'http' }],
      workers: 1,
      extra: {
        limits: { backend: `redis://127.0.0.1:${proxy.port}/0`, timeout: `${TIMEOUT_MS}ms`, on_backend_down: 'local' },
      },
    });
    await waitFor(async () => (await readyz(gw)).limits?.status === 'up', { message: 'limits backend up' });
    ({ secret } = await createTenantKey(gw, 'edge'));
    await waitForKey(gw, secret, '/v1/models');
  });
  after(async () => {
    await gw?.stop();
    await proxy?.stop();
    redis?.stop();
    await mock?.stop();
    clearInterval(keepAlive);
  });

  test('a 10-per-minute limit with every other reply late admits 10', async () => {
    await gw.cli(['limit', 'set', '--tenant', 'edge', '--rpm', '10', '--burst', '10']);
    await sleep(1200);
    let n = 0;
    delay = () => (n++ % 3 === 2 ? TIMEOUT_MS + 15 : TIMEOUT_MS - 40);
    const res = [];
    for (let i = 0; i < 30; i++)
      res.push(await request(`${gw.url}/e${i}`, { headers: { authorization: `Bearer ${secret}` } }));
    delay = () => 0;
    const ok = res.filter((r) => r.status === 200).length;
    await sleep(300);
    const m = (await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders })).text;
    console.log(`edge: 30 sent, ${ok} admitted; ${/^tollgate_limits_backend_fallbacks_total \d+/m.exec(m)?.[0]}; keys ${redis.cli('KEYS', '*')?.replace(/\n/g, ' ')}`);
    assert.ok(ok <= 10, `admitted ${ok}`);
    // Redis's count: the tenant's GCRA state is one 6 s step per admission from the first.
    const tat = Number(redis.cli('GET', 'tg:{edge}:tenant:'));
    const [sec, us] = redis.cli('TIME').split('\n').map(Number);
    const steps = (tat - (sec * 1e6 + us)) / 6e6;
    console.log(`edge: Redis holds ${steps.toFixed(2)} steps ahead`);
    assert.ok(Math.abs(steps - ok) < 1, `Redis counted ${steps.toFixed(2)} for ${ok} admitted`);
  });

  test('Redis out of memory (maxmemory, noeviction): what was admitted meanwhile is counted once it can write', async () => {
    const { secret: s2 } = await createTenantKey(gw, 'oom2');
    await waitForKey(gw, s2, '/v1/models');
    await gw.cli(['limit', 'set', '--tenant', 'oom2', '--rpm', '10', '--burst', '10']);
    await sleep(1200);
    const get2 = (p) => request(`${gw.url}${p}`, { headers: { authorization: `Bearer ${s2}` } });
    redis.cli('CONFIG', 'SET', 'maxmemory', '1');
    const during = [];
    for (let i = 0; i < 4; i++) during.push((await get2(`/oom${i}`)).status);
    redis.cli('CONFIG', 'SET', 'maxmemory', '0');
    await waitFor(async () => (await readyz(gw)).limits?.status === 'up', { timeoutMs: 8000, message: 'up' });
    await sleep(300);
    const res = [];
    for (let i = 0; i < 12; i++) res.push((await get2(`/after${i}`)).status);
    const ok = during.concat(res).filter((s) => s === 200).length;
    console.log(`oom: during ${during.join(' ')}; after ${res.join(' ')}; admitted ${ok} of a 10-per-minute limit`);
    assert.ok(ok <= 10, `admitted ${ok}`);
  });
});

describe('a busy worker', () => {
  let mock, redis, gw, secret, keepAlive;
  before(async () => {
    keepAlive = setInterval(() => {}, 1000);
    mock = await startMock();
    const { freePort } = await import('./lib/harness.mjs');
    redis = await startRedisServer(await freePort());
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'api', path_prefix: '/', upstream: 'mock', kind: 'http' }],
      workers: 1,
      extra: {
        limits: { backend: `redis://127.0.0.1:${redis.port}/0`, timeout: '20ms', on_backend_down: 'allow' },
        defaults: { limits: { rpm: 1000000 } },
      },
    });
    await waitFor(async () => (await readyz(gw)).limits?.status === 'up', { message: 'limits backend up' });
    ({ secret } = await createTenantKey(gw, 'busy'));
    await waitForKey(gw, secret, '/v1/models');
  });
  after(async () => {
    await gw?.stop();
    redis?.stop();
    await mock?.stop();
    clearInterval(keepAlive);
  });

  // Under `allow`, an admission that times out is admitted without limits: a loaded worker
  // must not time out a local Redis's answers (they sat unsent, then unread, behind its
  // timers: 19 to 145 of 1000 timed out and the stalls that followed let 130 to 994 through
  // unlimited).
  test('two hundred bodies at once, five times: a local Redis answers every admission within 20 ms', async () => {
    const body = 'x'.repeat(200000);
    for (let round = 0; round < 5; round++)
      await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          request(`${gw.url}/b${i}`, { method: 'POST', body, headers: { authorization: `Bearer ${secret}` } }),
        ),
      );
    const m = (await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders })).text;
    const v = (n) => Number(new RegExp(`^tollgate_limits_backend_${n} (\\d+)$`, 'm').exec(m)?.[1]);
    console.log(`busy: admissions ${v('admissions_total')}, timeouts ${v('timeouts_total')}, fallbacks ${v('fallbacks_total')}`);
    assert.ok(v('timeouts_total') <= 5, `${v('timeouts_total')} timed out`);
    assert.ok(v('fallbacks_total') <= 5, `${v('fallbacks_total')} fell back`);
  });
});
