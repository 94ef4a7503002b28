// Alarms end to end (docs/operations.md, "Alarms"): the real gateway evaluates its rules
// every second over short windows. A tenant's error spike through the mock upstream goes
// pending -> firing in `tollgate alarms list` and the alarm_events history, then resolved
// once the errors stop; a quiet tenant with one error never fires; a quota alarm fires
// and its throttle action halves the tenant's limit (RateLimit headers, refusals) until
// it resolves; a pause action pauses the tenant as `tollgate pause` does, and an
// operator's resume meanwhile is not overridden; `alarms export-rules` passes
// `promtool check rules`. States are awaited by polling with generous deadlines; nothing
// asserts on timing.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { createTenantKey, request, run, startGateway, startMock, waitFor } from './lib/harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const REFRESH_MS = 600; // the policy and keyring poll the store every 250 ms

async function listAlarms(gw) {
  const r = await gw.cli(['alarms', 'list', '--format', 'json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

async function history(gw, tenant) {
  const r = await gw.cli(['alarms', 'history', '--tenant', tenant, '--limit', '0', '--format', 'json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** Polls the alarms list until (alarm, tenant) is in state; returns its row. */
function waitState(gw, alarm, tenant, states, timeoutMs = 15000) {
  const want = Array.isArray(states) ? states : [states];
  return waitFor(
    async () => (await listAlarms(gw)).find((a) => a.alarm === alarm && a.tenant === tenant && want.includes(a.state)),
    { timeoutMs, intervalMs: 200, message: `${alarm}/${tenant} ${want.join('|')}` },
  );
}

describe('alarms', () => {
  let mock;
  let gw;
  const keys = {};

  before(async () => {
    mock = await startMock();
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url], max_fails: 1000000 }],
      routes: [{ name: 'api', path_prefix: '/', upstream: 'mock', kind: 'http' }],
      extra: {
        alarms_interval: '1s',
        alarms: [
          { name: 'errors', kind: 'error_rate', window: '3s', threshold: 0.3, min_requests: 10 },
          { name: 'hot', kind: 'quota', threshold: 0.85, resolve_margin: 0 },
        ],
        actions: [{ alarm: 'hot', do: 'throttle', factor: 0.5 }],
      },
    });
    for (const t of ['spiky', 'quiet', 'busy']) keys[t] = (await createTenantKey(gw, t)).secret;
    assert.equal((await gw.cli(['limit', 'set', '--tenant', 'busy', '--rpm', '60'])).code, 0);
    await sleep(REFRESH_MS);
  });

  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  const get = (tenant, q = '') => request(`${gw.url}/x${q}`, { headers: { 'x-api-key': keys[tenant] } });

  test('an error spike goes pending -> firing -> resolved; a quiet tenant never fires', async () => {
    // The quiet tenant: one error in three requests, far below min_requests.
    assert.equal((await get('quiet', '?status=500')).status, 500);
    assert.equal((await get('quiet')).status, 200);
    assert.equal((await get('quiet')).status, 200);
    // The spike: errors keep coming until the alarm fires.
    let stop = false;
    const spike = (async () => {
      while (!stop) {
        await Promise.all(Array.from({ length: 5 }, () => get('spiky', '?status=500')));
        await sleep(50);
      }
    })();
    let firing;
    try {
      firing = await waitState(gw, 'errors', 'spiky', 'firing');
    } finally {
      stop = true;
      await spike;
    }
    assert.equal(firing.kind, 'error_rate');
    assert.ok(firing.value >= 0.3, `value ${firing.value}`);
    // Errors stopped: resolved, then ok.
    await waitState(gw, 'errors', 'spiky', ['resolved', 'ok']);
    const h = (await history(gw, 'spiky')).reverse(); // oldest first
    assert.deepEqual(
      h.slice(0, 3).map((e) => [e.from, e.to, e.id]),
      [
        ['ok', 'pending', 'alarm/errors/spiky/1'],
        ['pending', 'firing', 'alarm/errors/spiky/2'],
        ['firing', 'resolved', 'alarm/errors/spiky/3'],
      ],
    );
    assert.equal(h[1].window_s, 3);
    assert.match(h[1].summary, /error rate/);
    // The transitions are logged, one line each.
    assert.match(gw.stderr(), /alarm errors tenant=spiky pending -> firing .*id=alarm\/errors\/spiky\/2/);
    // The quiet tenant: nothing, ever.
    assert.deepEqual(await history(gw, 'quiet'), []);
    assert.equal((await listAlarms(gw)).filter((a) => a.tenant === 'quiet').length, 0);
  });

  test('a quota alarm throttles the tenant while it fires, and the throttle is undone', async () => {
    // 57 of 60 per minute: utilisation 0.95.
    for (let i = 0; i < 57; i++) assert.equal((await get('busy')).status, 200);
    const firing = await waitState(gw, 'hot', 'busy', 'firing');
    assert.equal(firing.action, 'throttle 0.5');
    // The limit in force is half: the RateLimit headers say 30, and requests are refused
    // after at most two more (the full limit would admit several).
    const r = await get('busy');
    assert.equal(r.headers['x-ratelimit-limit'], '30');
    let admitted = r.status === 200 ? 1 : 0;
    for (let i = 0; i < 5; i++) if ((await get('busy')).status === 200) admitted++;
    assert.ok(admitted <= 2, `admitted ${admitted} while throttled`);
    // Resolves as the window drains; the throttle is gone with it.
    await waitState(gw, 'hot', 'busy', ['resolved', 'ok'], 30000);
    const back = await waitFor(
      async () => {
        const x = await get('busy');
        return x.status === 200 && x;
      },
      { timeoutMs: 20000, intervalMs: 500, message: 'busy admitted again' },
    );
    assert.equal(back.headers['x-ratelimit-limit'], '60');
    const h = await history(gw, 'busy');
    assert.ok(h.some((e) => e.to === 'firing' && e.action === 'throttle 0.5'));
    assert.ok(h.some((e) => e.to === 'resolved' && e.action === 'unthrottle'));
    // The utilisation the alarm judges is on /metrics too.
    const m = await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders });
    assert.match(m.text, /^tollgate_limit_utilisation\{tenant="busy"\} [0-9.e+-]+$/m);
  });

  test('export-rules passes promtool check rules', async () => {
    const r = await gw.cli(['alarms', 'export-rules']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /- alert: tollgate_errors\n/);
    assert.match(r.stdout, /- alert: tollgate_hot\n/);
    const file = path.join(gw.dir, 'rules.yml');
    fs.writeFileSync(file, r.stdout);
    const p = await run('promtool', ['check', 'rules', file]);
    assert.equal(p.code, 0, p.stdout + p.stderr);
    assert.match(p.stdout, /SUCCESS: 2 rules found/);
  });
});

describe('alarm pause action', () => {
  let mock;
  let gw;
  let key;

  before(async () => {
    mock = await startMock();
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url], max_fails: 1000000 }],
      routes: [{ name: 'api', path_prefix: '/', upstream: 'mock', kind: 'http' }],
      extra: {
        alarms_interval: '1s',
        alarms: [{ name: 'stop', kind: 'error_rate', window: '3s', threshold: 0.5, min_requests: 5 }],
        actions: [{ alarm: 'stop', do: 'pause' }],
      },
    });
    key = (await createTenantKey(gw, 'bad')).secret;
    await sleep(REFRESH_MS);
  });

  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  test('pauses the tenant; an operator resume meanwhile is not overridden', async () => {
    const get = (q = '') => request(`${gw.url}/x${q}`, { headers: { 'x-api-key': key } });
    // Errors until the alarm pauses the tenant: then tollgate answers 503 itself.
    const paused = await waitFor(
      async () => {
        await Promise.all(Array.from({ length: 5 }, () => get('?status=500')));
        const r = await get();
        return r.status === 503 && /alarm:stop/.test(r.text) && r;
      },
      { timeoutMs: 20000, intervalMs: 100, message: 'tenant bad paused by the alarm' },
    );
    assert.match(paused.text, /tenant paused: alarm:stop/);
    const pl = await gw.cli(['pause', 'list', '--format', 'json']);
    assert.deepEqual(
      JSON.parse(pl.stdout).map((p) => [p.tenant, p.reason]),
      [['bad', 'alarm:stop']],
    );
    const firing = (await listAlarms(gw)).find((a) => a.alarm === 'stop' && a.tenant === 'bad');
    assert.equal(firing.state, 'firing');
    assert.equal(firing.action, 'pause');
    // The operator resumes the tenant while the alarm still fires (errors go on): the
    // alarm does not pause it again.
    assert.equal((await gw.cli(['resume', '--tenant', 'bad'])).code, 0);
    await waitFor(async () => (await get()).status === 200, { timeoutMs: 5000, message: 'resumed' });
    for (let i = 0; i < 3; i++) {
      await Promise.all(Array.from({ length: 5 }, () => get('?status=500')));
      await sleep(400);
    }
    assert.equal((await listAlarms(gw)).find((a) => a.alarm === 'stop').state, 'firing');
    assert.equal((await get()).status, 200);
    // Errors stop: it resolves, and the resolve leaves the operator's decision alone.
    await waitState(gw, 'stop', 'bad', ['resolved', 'ok']);
    assert.equal(JSON.parse((await gw.cli(['pause', 'list', '--format', 'json'])).stdout).length, 0);
    const h = await history(gw, 'bad');
    const resolved = h.find((e) => e.to === 'resolved');
    assert.equal(resolved.action, 'pause left: an operator changed it');
    assert.equal((await get()).status, 200);
  });

  test('a reload keeps the state of a rule that stays and takes a new one', async () => {
    const seqBefore = (await waitState(gw, 'stop', 'bad', 'ok')).seq; // settled: ok
    assert.ok(seqBefore >= 3);
    // SIGHUP with one more rule (and the pause action dropped): stop keeps its count.
    const cfg = fs.readFileSync(gw.configPath, 'utf8');
    fs.writeFileSync(
      gw.configPath,
      cfg.replace(/^actions:.*\n(  - .*\n)*/m, '').replace(/^(alarms:\n)/m, '$1  - { name: errors2, kind: error_rate, window: 3s, threshold: 0.5, min_requests: 5 }\n'),
    );
    gw.proc.kill('SIGHUP');
    await waitFor(() => /config reloaded/.test(gw.stderr()), { timeoutMs: 5000, message: 'reload' });
    const get = (q = '') => request(`${gw.url}/x${q}`, { headers: { 'x-api-key': key } });
    let stop = false;
    const spike = (async () => {
      while (!stop) {
        await Promise.all(Array.from({ length: 5 }, () => get('?status=500')));
        await sleep(50);
      }
    })();
    let both;
    try {
      both = await waitFor(
        async () => {
          const l = await listAlarms(gw);
          const a = l.find((x) => x.alarm === 'stop' && x.tenant === 'bad' && x.state === 'firing');
          const b = l.find((x) => x.alarm === 'errors2' && x.tenant === 'bad' && x.state === 'firing');
          return a && b && [a, b];
        },
        { timeoutMs: 15000, intervalMs: 200, message: 'stop and errors2 firing' },
      );
    } finally {
      stop = true;
      await spike;
    }
    // The ids go on from where they were (a restart at 1 would collide with stored ones).
    assert.equal(both[0].seq, seqBefore + 2);
    assert.equal(both[1].seq, 2);
    const h = await history(gw, 'bad');
    assert.ok(h.some((e) => e.id === `alarm/stop/bad/${seqBefore + 2}` && e.to === 'firing' && e.action === ''));
    // No pause this time: the action is gone with the reload.
    assert.equal((await get()).status, 200);
  });
});
