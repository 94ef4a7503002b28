// Limits end to end: rate limits exact under parallel load across worker threads, the
// RateLimit headers, Retry-After, the in-flight cap and its release, pause/resume from
// another process, IP rules (v4, v6, trusted proxies), and rejections as events.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';

import { createTenantKey, curlJson, freePort, raw, request, sqlite, startGateway, startMock, waitFor, waitLoaded } from './lib/harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('limits', () => {
  let mock, gw, deadPort;
  before(async () => {
    mock = await startMock({ threads: 2 });
    deadPort = await freePort();
    gw = await startGateway({
      upstreams: [
        { name: 'mock', targets: [mock.url] },
        { name: 'slow', targets: [mock.url], timeout: '300ms' },
        { name: 'dead', targets: [`http://127.0.0.1:${deadPort}`] },
      ],
      routes: [
        { name: 'chat', path_prefix: '/v1/', upstream: 'mock', kind: 'http' },
        { name: 'slow', path_prefix: '/slow/', upstream: 'slow', kind: 'http' },
        { name: 'dead', path_prefix: '/dead/', upstream: 'dead', kind: 'http' },
        { name: 'other', path_prefix: '/', upstream: 'mock', kind: 'http' },
      ],
      extra: { server: { trusted_proxies: ['127.0.0.1/32'] } },
      workers: 2,
    });
  });
  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  async function cli(args) {
    const r = await gw.cli(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r;
  }

  test('exactly L of N parallel requests are admitted, across threads, repeated', async () => {
    for (let round = 0; round < 5; round++) {
      const k = await createTenantKey(gw, `par${round}`);
      await cli(['limit', 'set', '--tenant', `par${round}`, '--rph', '20']);
      await waitLoaded(gw);
      const res = await Promise.all(
        Array.from({ length: 60 }, (_, i) => request(`${gw.url}/x?i=${i}`, { headers: { 'x-api-key': k.secret } })),
      );
      const ok = res.filter((r) => r.status === 200).length;
      const limited = res.filter((r) => r.status === 429).length;
      assert.equal(ok, 20, `round ${round}: ${ok} admitted`);
      assert.equal(limited, 40);
    }
  });

  test('RateLimit headers follow the real state; 429 carries Retry-After', async () => {
    const k = await createTenantKey(gw, 'hdr');
    await cli(['limit', 'set', '--tenant', 'hdr', '--rpm', '3']);
    await waitLoaded(gw);
    const h = { 'x-api-key': k.secret };
    for (let i = 0; i < 3; i++) {
      const r = await curlJson(`${gw.url}/x`, { headers: h });
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-ratelimit-limit'], '3');
      assert.equal(r.headers['x-ratelimit-remaining'], String(2 - i));
      assert.equal(r.headers['ratelimit-policy'], '"tenant";q=3;w=60');
      assert.equal(r.headers.ratelimit, `"tenant";r=${2 - i};t=${r.headers['x-ratelimit-reset']}`);
      assert.ok(Number(r.headers['x-ratelimit-reset']) >= 1 && Number(r.headers['x-ratelimit-reset']) <= 60);
    }
    const r = await curlJson(`${gw.url}/x`, { headers: h });
    assert.equal(r.status, 429);
    assert.equal(r.body.error.type, 'rate_limited');
    assert.equal(r.headers['x-ratelimit-remaining'], '0');
    const ra = Number(r.headers['retry-after']);
    assert.ok(ra >= 1 && ra <= 20, `Retry-After ${ra}: one more request every 20 s`);
    const [ev] = await waitFor(async () => {
      const rows = await sqlite(gw.dbPath, `select * from usage_events where request_id='${r.headers['x-request-id']}'`);
      return rows.length ? rows : null;
    });
    assert.equal(ev.outcome, 'rejected');
    assert.equal(ev.reason, 'rate_limited');
    assert.equal(ev.upstream, null, 'no upstream call');
  });

  test('a client that waits Retry-After is admitted', async () => {
    const k = await createTenantKey(gw, 'wait');
    await cli(['limit', 'set', '--tenant', 'wait', '--rps', '1']);
    await waitLoaded(gw);
    const h = { 'x-api-key': k.secret };
    assert.equal((await curlJson(`${gw.url}/x`, { headers: h })).status, 200);
    const r = await curlJson(`${gw.url}/x`, { headers: h });
    assert.equal(r.status, 429);
    await sleep(Number(r.headers['retry-after']) * 1000);
    assert.equal((await curlJson(`${gw.url}/x`, { headers: h })).status, 200);
  });

  test('every scope applies and the strictest wins', async () => {
    const k = await createTenantKey(gw, 'scopes');
    await cli(['limit', 'set', '--tenant', 'scopes', '--rpm', '100']);
    await cli(['limit', 'set', '--tenant', 'scopes', '--route', 'chat', '--rpm', '2']);
    await waitLoaded(gw);
    const h = { 'x-api-key': k.secret };
    assert.equal((await curlJson(`${gw.url}/v1/a`, { headers: h })).status, 200);
    const second = await curlJson(`${gw.url}/v1/a`, { headers: h });
    assert.equal(second.headers['ratelimit-policy'], '"route";q=2;w=60');
    assert.equal((await curlJson(`${gw.url}/v1/a`, { headers: h })).status, 429);
    const other = await curlJson(`${gw.url}/elsewhere`, { headers: h });
    assert.equal(other.status, 200, 'another route is not limited by the chat rule');
    assert.equal(other.headers['ratelimit-policy'], '"tenant";q=100;w=60');
    await cli(['limit', 'set', '--tenant', 'scopes', '--key', k.keyId, '--rpm', '1']);
    await waitLoaded(gw);
    assert.equal((await curlJson(`${gw.url}/elsewhere`, { headers: h })).status, 200);
    assert.equal((await curlJson(`${gw.url}/elsewhere`, { headers: h })).status, 429, 'key rule');
  });

  test('the in-flight cap is released on completion and on client disconnect', async () => {
    const k = await createTenantKey(gw, 'conc');
    await cli(['limit', 'set', '--tenant', 'conc', '--concurrency', '2']);
    await waitLoaded(gw);
    const h = { 'x-api-key': k.secret };
    const socks = [];
    for (let i = 0; i < 2; i++) {
      const s = net.connect(gw.port, '127.0.0.1');
      await new Promise((r) => s.on('connect', r));
      s.on('error', () => {});
      s.write(`GET /slow?delay_ms=5000 HTTP/1.1\r\nHost: x\r\nx-api-key: ${k.secret}\r\n\r\n`);
      socks.push(s);
    }
    await sleep(300);
    const third = await curlJson(`${gw.url}/x`, { headers: h });
    assert.equal(third.status, 429);
    assert.equal(third.body.error.type, 'rate_limited');
    assert.match(third.body.error.message, /in flight/);
    socks[0].destroy(); // a client that goes away frees its slot
    await waitFor(async () => (await curlJson(`${gw.url}/x`, { headers: h })).status === 200, {
      timeoutMs: 3000,
      message: 'slot released after disconnect',
    });
    socks[1].destroy();
    await sleep(200);
    const res = await Promise.all([0, 1].map(() => curlJson(`${gw.url}/x?delay_ms=100`, { headers: h })));
    assert.deepEqual(res.map((r) => r.status), [200, 200], 'both slots free again');
    let rows = [];
    await waitFor(async () => {
      rows = await sqlite(gw.dbPath, "select reason from usage_events where tenant='conc' and status=429");
      return rows.length >= 1;
    });
    assert.ok(rows.every((r) => r.reason === 'concurrency_limit'));
  });

  test('the in-flight slot is also released after an upstream timeout and an upstream error', async () => {
    const k = await createTenantKey(gw, 'conc1');
    await cli(['limit', 'set', '--tenant', 'conc1', '--concurrency', '1']);
    await waitLoaded(gw);
    const h = { 'x-api-key': k.secret };
    assert.equal((await curlJson(`${gw.url}/slow/x?delay_ms=2000`, { headers: h })).status, 504);
    assert.equal((await curlJson(`${gw.url}/dead/x`, { headers: h })).status, 502);
    assert.equal((await curlJson(`${gw.url}/x`, { headers: h })).status, 200, 'the one slot is free');
  });

  test('a global IP rule applies to every tenant', async () => {
    const k = await createTenantKey(gw, 'gip');
    await waitLoaded(gw);
    const h = { 'x-api-key': k.secret, 'X-Forwarded-For': '192.0.2.44' };
    assert.equal((await curlJson(`${gw.url}/x`, { headers: h })).status, 200);
    await cli(['ip', 'deny', '192.0.2.0/24']);
    await waitFor(async () => (await curlJson(`${gw.url}/x`, { headers: h })).status === 403, { timeoutMs: 1000 });
    await cli(['ip', 'rm', 'deny', '192.0.2.0/24']);
    await waitFor(async () => (await curlJson(`${gw.url}/x`, { headers: h })).status === 200, { timeoutMs: 1000 });
  });

  test('pause and resume, per tenant and global, from another process within a second', async () => {
    const a = await createTenantKey(gw, 'pa');
    const b = await createTenantKey(gw, 'pb');
    await waitLoaded(gw);
    const ha = { 'x-api-key': a.secret };
    const hb = { 'x-api-key': b.secret };
    await cli(['pause', '--tenant', 'pa', '--reason', 'billing "review"']);
    await waitFor(async () => (await curlJson(`${gw.url}/x`, { headers: ha })).status === 503, {
      timeoutMs: 1000,
      message: 'tenant pause within 1 s',
    });
    const r = await curlJson(`${gw.url}/x`, { headers: ha });
    assert.equal(r.body.error.type, 'paused');
    assert.match(r.body.error.message, /billing "review"/);
    assert.equal((await curlJson(`${gw.url}/x`, { headers: hb })).status, 200, 'other tenants unaffected');
    await cli(['pause', '--reason', 'incident']);
    await waitFor(async () => (await curlJson(`${gw.url}/x`, { headers: hb })).status === 503, { timeoutMs: 1000 });
    await cli(['resume']);
    await cli(['resume', '--tenant', 'pa']);
    await waitFor(async () => (await curlJson(`${gw.url}/x`, { headers: ha })).status === 200, { timeoutMs: 1000 });
    assert.equal((await curlJson(`${gw.url}/x`, { headers: hb })).status, 200);
    let rows = [];
    await waitFor(async () => {
      rows = await sqlite(gw.dbPath, 'select outcome, reason, upstream from usage_events where status=503');
      return rows.length >= 2;
    });
    assert.ok(rows.every((e) => e.outcome === 'rejected' && e.reason === 'paused' && !e.upstream));
  });

  test('IP rules: deny wins, allow lists, v6 through a trusted proxy', async () => {
    const k = await createTenantKey(gw, 'ipt');
    await waitLoaded(gw);
    const h = { 'x-api-key': k.secret };
    await cli(['ip', 'deny', '127.0.0.1/32', '--tenant', 'ipt']);
    await waitFor(async () => (await curlJson(`${gw.url}/x`, { headers: h })).status === 403, { timeoutMs: 1000 });
    assert.equal((await curlJson(`${gw.url}/x`, { headers: h })).body.error.type, 'forbidden');
    await cli(['ip', 'rm', 'deny', '127.0.0.1/32', '--tenant', 'ipt']);
    await cli(['ip', 'allow', '10.0.0.0/8', '--tenant', 'ipt']);
    await waitLoaded(gw);
    assert.equal((await curlJson(`${gw.url}/x`, { headers: h })).status, 403, 'not in the allow list');
    // 127.0.0.1 is a trusted proxy: X-Forwarded-For names the client.
    assert.equal((await curlJson(`${gw.url}/x`, { headers: { ...h, 'X-Forwarded-For': '10.1.2.3' } })).status, 200);
    await cli(['ip', 'rm', 'allow', '10.0.0.0/8', '--tenant', 'ipt']);
    await cli(['ip', 'allow', '2001:db8::/32', '--tenant', 'ipt']);
    await cli(['ip', 'deny', '2001:db8:bad::/48', '--tenant', 'ipt']);
    await waitLoaded(gw);
    const v6 = async (addr) => (await curlJson(`${gw.url}/x`, { headers: { ...h, 'X-Forwarded-For': addr } })).status;
    assert.equal(await v6('2001:db8::7'), 200);
    assert.equal(await v6('2001:db8:bad::1'), 403, 'deny wins over allow');
    assert.equal(await v6('2001:db9::1'), 403);
    const hop = await curlJson(`${gw.url}/x`, { headers: { ...h, 'X-Forwarded-For': '198.51.100.1, 2001:db8::7' } });
    assert.equal(hop.status, 200, 'the right-most untrusted hop is the client');
    // A proxy that adds its own X-Forwarded-For line: the lines are joined, so the
    // client-written first line does not decide.
    const two = await raw(
      gw.port,
      `GET /x HTTP/1.1\r\nHost: x\r\nx-api-key: ${k.secret}\r\nX-Forwarded-For: 2001:db8::7\r\n` +
        'X-Forwarded-For: 2001:db9::1\r\nConnection: close\r\n\r\n',
      { timeoutMs: 3000 },
    );
    assert.match(two.data, /^HTTP\/1\.1 403 /);
    let ev;
    await waitFor(async () => {
      [ev] = await sqlite(gw.dbPath, `select client_ip from usage_events where request_id='${hop.headers['x-request-id']}'`);
      return !!ev;
    }, { message: 'the event of the two-hop request' });
    assert.equal(ev.client_ip, '2001:db8::7', 'the event records the client, not the proxy');
  });

  test('counters survive a config reload', async () => {
    const k = await createTenantKey(gw, 'reload');
    await cli(['limit', 'set', '--tenant', 'reload', '--rph', '5']);
    await waitLoaded(gw);
    const h = { 'x-api-key': k.secret };
    for (let i = 0; i < 3; i++) assert.equal((await curlJson(`${gw.url}/x`, { headers: h })).status, 200);
    fs.appendFileSync(gw.configPath, '\n# touched\n');
    gw.proc.kill('SIGHUP');
    await waitFor(() => /config reloaded/.test(gw.stderr()), { message: 'reloaded' });
    const res = [];
    for (let i = 0; i < 3; i++) res.push((await curlJson(`${gw.url}/x`, { headers: h })).status);
    assert.deepEqual(res, [200, 200, 429]);
  });
});

describe('limits from config defaults, and XFF from an untrusted peer', () => {
  test('defaults.limits applies to every tenant; XFF is ignored without trusted proxies', async () => {
    const mock = await startMock();
    const gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'api', path_prefix: '/', upstream: 'mock', kind: 'http' }],
      extra: { defaults: { limits: { rpm: 2 } } },
    });
    const k = await createTenantKey(gw, 'd1');
    await waitLoaded(gw);
    const h = { 'x-api-key': k.secret };
    const st = [];
    for (let i = 0; i < 3; i++) st.push((await curlJson(`${gw.url}/x`, { headers: h })).status);
    assert.deepEqual(st, [200, 200, 429]);
    const r = await gw.cli(['ip', 'deny', '203.0.113.0/24', '--tenant', 'd1']);
    assert.equal(r.code, 0, r.stderr);
    const k2 = await createTenantKey(gw, 'd2');
    await gw.cli(['ip', 'deny', '203.0.113.0/24', '--tenant', 'd2']);
    await waitLoaded(gw);
    const x = await curlJson(`${gw.url}/x`, { headers: { 'x-api-key': k2.secret, 'X-Forwarded-For': '203.0.113.9' } });
    assert.equal(x.status, 200, 'a spoofed X-Forwarded-For from an untrusted peer is not believed');
    await gw.stop();
    await mock.stop();
  });
});
