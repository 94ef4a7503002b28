// Notifications end to end (issue 11, docs/operations.md "Notifications"): the real gateway
// with three notifiers at once, a webhook receiver in this process that checks every
// X-Tollgate-Signature, a real Alertmanager (Debian's prometheus-alertmanager, started here on
// a free loopback port in a temp dir, stopped by PID) and an exec program.
//
// What is checked:
//   - budget thresholds crossing produce notices, delivered signed to the webhook, as alerts
//     to Alertmanager (read back from its API with their labels), and to the program;
//   - a webhook answering 503 gets every notice once it answers 200 again, and a gateway
//     SIGKILLed while notices wait in the outbox delivers them after a restart on the same
//     store: each id accepted exactly once;
//   - a notice whose tenant holds quotes, $(...), ; and newlines reaches the exec program as
//     JSON on stdin and in its environment, and no shell ever ran it (no marker file);
//   - a resolved notice ends the alert in Alertmanager;
//   - `tollgate alarms test NAME` reports each notifier's result and fails with a receiver down.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import {
  createTenantKey,
  freePort,
  request,
  sqlite,
  startGateway,
  startMock,
  tempDir,
  toYaml,
  waitFor,
  waitForEvent,
  waitForKey,
} from './lib/harness.mjs';

const SECRET = crypto.randomBytes(16).toString('hex');
const AM_BIN = '/usr/bin/prometheus-alertmanager';
const ALERT = { input: '0', output: '1000' }; // 10 output tokens: exactly 0.01 USD

/** A webhook receiver: checks the signature of every POST, answers `status` (settable), and
 * records each id it accepted (2xx) and every attempt. */
async function startReceiver() {
  const r = { status: 200, accepted: new Map(), attempts: [], badSignatures: 0 };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const want = 'sha256=' + crypto.createHmac('sha256', SECRET).update(body).digest('hex');
      const got = String(req.headers['x-tollgate-signature'] ?? '');
      const ts = Number(req.headers['x-tollgate-timestamp']);
      const ok =
        got.length === want.length && crypto.timingSafeEqual(Buffer.from(got), Buffer.from(want)) && ts > 1e9;
      if (!ok) {
        r.badSignatures++;
        res.writeHead(401).end();
        return;
      }
      const notice = JSON.parse(body.toString());
      r.attempts.push({ id: notice.id, status: r.status });
      if (r.status >= 200 && r.status < 300) {
        const prev = r.accepted.get(notice.id);
        r.accepted.set(notice.id, { notice, count: (prev?.count ?? 0) + 1 });
      }
      res.writeHead(r.status, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  const port = await freePort();
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${port}/hook`;
  r.port = port;
  r.close = () => new Promise((resolve) => server.close(resolve));
  return r;
}

/** Debian's Alertmanager on a free loopback port, its state in a temp dir, no clustering. */
async function startAlertmanager() {
  const dir = await tempDir('tollgate-am-');
  const port = await freePort();
  fs.writeFileSync(
    path.join(dir, 'am.yml'),
    'route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n',
  );
  let stderr = '';
  const child = spawn(
    AM_BIN,
    [
      `--config.file=${path.join(dir, 'am.yml')}`,
      `--storage.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr.on('data', (d) => (stderr += d));
  process.once('exit', () => child.kill('SIGKILL'));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      try {
        return (await request(`${url}/-/ready`, { timeoutMs: 1000 })).status === 200;
      } catch {
        return false;
      }
    },
    { timeoutMs: 15000, message: `alertmanager ready (stderr: ${stderr.slice(-500)})` },
  );
  return {
    url,
    async alerts(filter = '') {
      const r = await request(`${url}/api/v2/alerts${filter}`);
      assert.equal(r.status, 200, r.text);
      return JSON.parse(r.text);
    },
    stop: () => {
      child.kill('SIGTERM');
      return new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)));
    },
  };
}

/** An exec notifier: writes its stdin, its argv count and its environment's tenant to out/. */
function writeProgram(dir) {
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  const prog = path.join(dir, 'on-notice.sh');
  fs.writeFileSync(
    prog,
    '#!/bin/sh\n' +
      `n=$(ls '${out}' | wc -l)\n` +
      `cat > '${out}/'"$n.json"\n` +
      `printf '%s' "$TOLLGATE_TENANT" > '${out}/'"$n.tenant"\n` +
      `printf '%s' "$#" > '${out}/'"$n.argc"\n`,
    { mode: 0o755 },
  );
  return { prog, out };
}

/** The JSON notices the program received, in order. */
function programGot(out) {
  return fs
    .readdirSync(out)
    .filter((f) => f.endsWith('.json'))
    .sort((a, b) => parseInt(a) - parseInt(b))
    .map((f) => {
      const n = parseInt(f);
      return {
        notice: JSON.parse(fs.readFileSync(path.join(out, f), 'utf8')),
        envTenant: fs.readFileSync(path.join(out, `${n}.tenant`), 'utf8'),
        argc: fs.readFileSync(path.join(out, `${n}.argc`), 'utf8'),
      };
    });
}

const sql = (s) => `'${String(s).replaceAll("'", "''")}'`;

/** A notice put straight into the outbox for some notifiers, as a producer other than the
 * budgets (the alarm engine) would: what the running sender picks up within a second. */
async function insertNotice(gw, n, notifiers) {
  const now = Date.now() * 1000;
  const cols = `id, kind, alarm, alarm_kind, tenant_id, state, severity, value, threshold, baseline,
    window_s, time_us, started_us, summary, created_us`;
  const vals = [n.id, n.kind, n.alarm, n.alarm_kind, n.tenant, n.state, n.severity].map(sql);
  const stmt =
    `INSERT INTO outbox (${cols}) VALUES (${vals.join(', ')}, ${n.value}, ${n.threshold}, 0, 300, ` +
    `${n.time_us}, ${n.started_us}, ${sql(n.summary)}, ${now});` +
    notifiers
      .map(
        (d) =>
          `INSERT INTO outbox_deliveries (notice_id, notifier, status, attempts, next_us, updated_us) ` +
          `VALUES (${sql(n.id)}, ${sql(d)}, 'pending', 0, ${now}, ${now});`,
      )
      .join('');
  await sqlite(gw.dbPath, stmt);
}

describe('notifications: webhook, Alertmanager, exec, outbox', () => {
  let mock, gw, hook, am, program, workDir;

  before(async () => {
    if (!fs.existsSync(AM_BIN)) throw new Error(`${AM_BIN} missing: run scripts/deps.sh`);
    workDir = await tempDir('tollgate-notify-');
    program = writeProgram(workDir);
    [mock, hook, am] = await Promise.all([startMock(), startReceiver(), startAlertmanager()]);
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' }],
      env: { HOOK_SECRET: SECRET },
      extra: {
        prices: { models: { 'alert-model': ALERT } },
        notify: [
          { name: 'hook', type: 'webhook', url: hook.url, secret: '${HOOK_SECRET}', timeout: '2s' },
          { name: 'am', type: 'alertmanager', url: am.url, timeout: '2s' },
          { name: 'run', type: 'exec', command: [program.prog], timeout: '5s' },
        ],
        notify_retry: { min: '200ms', max: '1s' },
        // `alarms test NAME` takes a configured rule's name (or "budget")
        alarms: [{ name: 'quota', kind: 'quota', threshold: 0.8, severity: 'critical' }],
        alarms_interval: '1h',
      },
    });
  });
  after(async () => {
    await gw?.stop();
    await am?.stop();
    await hook?.close();
    await mock?.stop();
  });

  async function spend(t, n) {
    const k = await createTenantKey(gw, t);
    await waitForKey(gw, k.secret, '/v1/models');
    const r0 = await gw.cli(['budget', 'set', '--tenant', t, '--monthly', '0.04', '--soft', '--thresholds', '25,50']);
    assert.equal(r0.code, 0, r0.stderr);
    await new Promise((resolve) => setTimeout(resolve, 600)); // the budget reaches the gateway
    let period;
    for (let i = 0; i < n; i++) {
      const r = await request(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${k.secret}` },
        body: JSON.stringify({ model: 'alert-model', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }),
      });
      assert.equal(r.status, 200, r.text);
      const ev = await waitForEvent(gw, r.headers['x-request-id']);
      assert.equal(ev.cost_micros, 10000);
      period = new Date(Math.floor(ev.ts_us / 1000)).toISOString().slice(0, 7);
    }
    return period;
  }

  test('budget thresholds: signed webhook, Alertmanager alert with its labels, the program', async () => {
    const period = await spend('acme', 2); // 25% then 50%
    const ids = [`budget/acme/${period}/25`, `budget/acme/${period}/50`];
    await waitFor(() => ids.every((id) => hook.accepted.has(id)), { timeoutMs: 10000, message: 'both budget notices at the webhook' });
    assert.equal(hook.badSignatures, 0);
    const n = hook.accepted.get(ids[1]).notice;
    assert.deepEqual(
      [n.kind, n.alarm, n.alarm_kind, n.tenant, n.state, n.severity, n.threshold],
      ['budget', 'budget', 'budget', 'acme', 'firing', 'warning', 0.5],
    );
    assert.equal(n.value, 0.5);
    assert.match(n.summary, /tenant acme reached 50% of its monthly budget/);
    assert.match(n.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    // Alertmanager: one alert (the two notices share their labels), read back from its API.
    await waitFor(async () => (await am.alerts('?filter=tenant%3D%22acme%22')).length > 0, {
      timeoutMs: 10000,
      message: 'the budget alert in Alertmanager',
    });
    const [alert] = await am.alerts('?filter=tenant%3D%22acme%22');
    assert.deepEqual(alert.labels, {
      alertname: 'budget',
      tenant: 'acme',
      severity: 'warning',
      source: 'tollgate',
      alarm_kind: 'budget',
    });
    assert.match(alert.annotations.summary, /tenant acme reached (25|50)% of its monthly budget/);
    assert.equal(alert.status.state, 'active');

    // The program got both, as JSON on stdin, with no argument added.
    await waitFor(() => programGot(program.out).filter((g) => ids.includes(g.notice.id)).length === 2, {
      timeoutMs: 10000,
      message: 'both notices at the exec program',
    });
    for (const g of programGot(program.out)) assert.equal(g.argc, '0');

    // Each delivery is recorded as delivered in the outbox.
    const rows = await sqlite(gw.dbPath, `SELECT notifier, status, attempts FROM outbox_deliveries WHERE notice_id = ${sql(ids[0])} ORDER BY notifier`);
    assert.deepEqual(rows, [
      { notifier: 'am', status: 'delivered', attempts: 1 },
      { notifier: 'hook', status: 'delivered', attempts: 1 },
      { notifier: 'run', status: 'delivered', attempts: 1 },
    ]);
  });

  test('503 then 200, and SIGKILL with notices in the outbox: each delivered once after the restart', async () => {
    hook.status = 503;
    const before = hook.attempts.length;
    const period = await spend('bolt', 2);
    const ids = [`budget/bolt/${period}/25`, `budget/bolt/${period}/50`];
    // Refused and retried (the 503s reach the receiver), still pending in the store.
    await waitFor(() => hook.attempts.slice(before).filter((a) => a.status === 503).length >= 3, {
      timeoutMs: 10000,
      message: 'the webhook refusing with 503, retried',
    });
    const pending = await sqlite(gw.dbPath, `SELECT notice_id, status, error FROM outbox_deliveries WHERE notifier = 'hook' AND notice_id LIKE 'budget/bolt/%' ORDER BY notice_id`);
    assert.deepEqual(pending.map((p) => [p.notice_id, p.status]), ids.map((id) => [id, 'pending']));
    // One try per backoff for the notifier: the other notice waits with it, untried or 503.
    assert.ok(pending.some((p) => p.error === 'HTTP 503'));
    for (const p of pending) assert.ok(p.error === null || p.error === 'HTTP 503', p.error);

    await gw.kill(); // SIGKILL: nothing gets a chance to flush
    hook.status = 200;
    await gw.restart();
    await waitFor(() => ids.every((id) => hook.accepted.has(id)), { timeoutMs: 15000, message: 'the waiting notices delivered after the restart' });
    // The other notifiers were not held up by the webhook's outage, and no id came twice.
    await waitFor(async () => (await sqlite(gw.dbPath, `SELECT count(*) AS n FROM outbox_deliveries WHERE status != 'delivered'`))[0].n === 0, {
      timeoutMs: 10000,
      message: 'every delivery done',
    });
    for (const [id, { count }] of hook.accepted) assert.equal(count, 1, `${id} accepted ${count} times`);
    const runIds = programGot(program.out).map((g) => g.notice.id);
    assert.equal(new Set(runIds).size, runIds.length, 'the program got no notice twice');
    assert.equal(hook.badSignatures, 0);
  });

  test('exec: a hostile tenant reaches the program as data, and no shell runs it', async () => {
    const hostile = `x'"\n$(touch pwned1);touch pwned2;\`touch pwned3\`|&`;
    const summary = `summary $(touch ${path.join(workDir, 'pwned4')}); touch ${path.join(workDir, 'pwned5')}`;
    const now = Date.now() * 1000;
    await insertNotice(
      gw,
      { id: 'alarm/errors/hostile/1', kind: 'alarm', alarm: 'errors', alarm_kind: 'error_rate', tenant: hostile, state: 'firing', severity: 'critical', value: 0.2, threshold: 0.05, time_us: now, started_us: now, summary },
      ['run'],
    );
    await waitFor(() => programGot(program.out).some((g) => g.notice.id === 'alarm/errors/hostile/1'), { timeoutMs: 10000, message: 'the hostile notice at the program' });
    const g = programGot(program.out).find((x) => x.notice.id === 'alarm/errors/hostile/1');
    assert.equal(g.notice.tenant, hostile);
    assert.equal(g.notice.summary, summary);
    assert.equal(g.envTenant, hostile);
    assert.equal(g.argc, '0');
    for (const dir of [gw.dir, workDir, program.out])
      for (const m of ['pwned1', 'pwned2', 'pwned3', 'pwned4', 'pwned5'])
        assert.equal(fs.existsSync(path.join(dir, m)), false, `${m} in ${dir}: a shell ran`);
  });

  test('Alertmanager: a resolved notice ends the alert', async () => {
    const t0 = Date.now() * 1000 - 60e6;
    const base = { kind: 'alarm', alarm: 'errors', alarm_kind: 'error_rate', tenant: 'cargo', severity: 'critical', value: 0.2, threshold: 0.05, started_us: t0, summary: 'error rate 20% over 5m' };
    await insertNotice(gw, { ...base, id: 'alarm/errors/cargo/1', state: 'firing', time_us: t0 }, ['am']);
    const f = '?filter=alertname%3D%22errors%22&filter=tenant%3D%22cargo%22';
    await waitFor(async () => (await am.alerts(f)).length === 1, { timeoutMs: 10000, message: 'the firing alert' });
    const [a] = await am.alerts(f);
    assert.equal(a.labels.severity, 'critical');
    assert.equal(a.annotations.value, '0.2');
    assert.equal(a.annotations.threshold, '0.05');
    assert.equal(new Date(a.startsAt).getTime(), Math.floor(t0 / 1000));
    assert.ok(new Date(a.endsAt).getTime() > Date.now(), 'a firing alert ends in the future');
    await insertNotice(gw, { ...base, id: 'alarm/errors/cargo/2', state: 'resolved', time_us: Date.now() * 1000 - 1e6 }, ['am']);
    await waitFor(async () => (await am.alerts(f)).length === 0, { timeoutMs: 10000, message: 'the alert resolved (endsAt passed)' });
    const [row] = await sqlite(gw.dbPath, `SELECT status FROM outbox_deliveries WHERE notice_id = 'alarm/errors/cargo/2'`);
    assert.equal(row.status, 'delivered');
  });

  test('tollgate alarms test NAME: each notifier\'s result; a receiver down fails it', async () => {
    const before = hook.attempts.length;
    const unknown = await gw.cli(['alarms', 'test', 'qouta']);
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.match(unknown.stderr, /no alarm named "qouta" .*configured: quota/);
    const ok = await gw.cli(['alarms', 'test', 'quota']);
    assert.equal(ok.code, 0, ok.stderr + ok.stdout);
    assert.match(ok.stdout, /^notice test\/quota\/\S+$/m);
    assert.match(ok.stdout, /^hook \(webhook\): ok: HTTP 200$/m);
    assert.match(ok.stdout, /^am \(alertmanager\): ok: HTTP 200$/m);
    assert.match(ok.stdout, /^run \(exec\): ok: exit status 0$/m);
    const sent = hook.attempts.slice(before).map((a) => a.id);
    assert.equal(sent.length, 1);
    assert.match(sent[0], /^test\/quota\//);
    const body = hook.accepted.get(sent[0]).notice;
    assert.equal(body.alarm_kind, 'quota', 'the rule\'s kind goes into the sample');
    assert.equal(body.severity, 'critical');
    const [{ n }] = await sqlite(gw.dbPath, `SELECT count(*) AS n FROM outbox WHERE kind = 'test'`);
    assert.equal(n, 0, 'a test notice is not stored');

    await hook.close(); // the receiver down
    const down = await gw.cli(['alarms', 'test', 'quota']);
    assert.equal(down.code, 1);
    assert.match(down.stdout, /^hook \(webhook\): failed: .*(refused|connect)/im);
    assert.match(down.stdout, /^am \(alertmanager\): ok: HTTP 200$/m);
    assert.match(down.stderr, /1 of 3 notifiers failed/);
    assert.ok(!down.stdout.includes(SECRET) && !down.stderr.includes(SECRET));
    assert.ok(!gw.stderr().includes(SECRET), 'the secret is never logged');
    hook.close = async () => {};
  });

  test('SIGHUP: a changed notify list applies to what is pending', async () => {
    // The webhook is down (closed above): a notice for it waits in the outbox.
    const now = Date.now() * 1000;
    const base = { kind: 'alarm', alarm: 'slow', alarm_kind: 'latency', tenant: 'delta', state: 'firing', severity: 'warning', value: 900, threshold: 200, time_us: now, started_us: now, summary: 'p95 900 ms' };
    await insertNotice(gw, { ...base, id: 'alarm/slow/delta/1' }, ['hook']);
    await waitFor(async () => (await sqlite(gw.dbPath, `SELECT attempts FROM outbox_deliveries WHERE notice_id = 'alarm/slow/delta/1'`))[0].attempts >= 1, {
      timeoutMs: 10000,
      message: 'a failed try against the closed receiver',
    });
    // A new receiver under the same notifier name, and a reload.
    const hook2 = await startReceiver();
    try {
      const config = { ...gw.config, notify: gw.config.notify.map((n) => (n.name === 'hook' ? { ...n, url: hook2.url } : n)) };
      fs.writeFileSync(gw.configPath, toYaml(config));
      gw.proc.kill('SIGHUP');
      await waitFor(() => hook2.accepted.has('alarm/slow/delta/1'), { timeoutMs: 10000, message: 'the pending notice at the new receiver' });
      assert.equal(hook2.badSignatures, 0);
      assert.match(gw.stderr(), /config reloaded/);
    } finally {
      await hook2.close();
    }
  });
});

// An alarm that keeps firing is posted to Alertmanager again every `resend` with endsAt four
// intervals ahead (as Prometheus does): Alertmanager keeps it active while tollgate says it
// fires, and ends it on its own once tollgate stops saying so (or is gone). The firing row is
// written into the store as a restarted gateway finds it: no notice in the outbox for it.
describe('Alertmanager: what still fires is re-sent', () => {
  let am, gw;
  before(async () => {
    if (!fs.existsSync(AM_BIN)) throw new Error(`${AM_BIN} missing: run scripts/deps.sh`);
    am = await startAlertmanager();
    gw = await startGateway({
      upstreams: [{ name: 'none', targets: ['http://127.0.0.1:9'] }],
      routes: [{ name: 'r', path_prefix: '/', upstream: 'none' }],
      extra: {
        notify: [{ name: 'am', type: 'alertmanager', url: am.url, timeout: '2s', resend: '1s' }],
        alarms: [{ name: 'errors', kind: 'error_rate', threshold: 0.05, severity: 'critical' }],
        alarms_interval: '1h',
      },
    });
  });
  after(async () => {
    await gw?.stop();
    await am?.stop();
  });

  test('re-sent each second with a lease; ends once the store says resolved', async () => {
    const t0 = Date.now() * 1000 - 120e6;
    await sqlite(
      gw.dbPath,
      `INSERT INTO alarms (name, tenant_id, kind, state, value, threshold, baseline, since_us, started_us, updated_us, seq) ` +
        `VALUES ('errors', 'dock', 'error_rate', 'firing', 0.3, 0.05, 0, ${t0}, ${t0}, ${t0}, 7)`,
    );
    const f = '?filter=alertname%3D%22errors%22&filter=tenant%3D%22dock%22';
    await waitFor(async () => (await am.alerts(f)).length === 1, { timeoutMs: 10000, message: 'the re-sent alert' });
    const [a] = await am.alerts(f);
    assert.deepEqual(a.labels, { alertname: 'errors', tenant: 'dock', severity: 'critical', source: 'tollgate', alarm_kind: 'error_rate' });
    assert.equal(a.annotations.notice_id, 'alarm/errors/dock/7');
    assert.equal(new Date(a.startsAt).getTime(), Math.floor(t0 / 1000));
    const lease = new Date(a.endsAt).getTime() - Date.now();
    assert.ok(lease > 1000 && lease <= 4500, `endsAt about 4 s ahead (got ${lease} ms)`);
    // Posted again: endsAt moves forward while it fires.
    await waitFor(async () => new Date((await am.alerts(f))[0].endsAt).getTime() > new Date(a.endsAt).getTime() + 500, {
      timeoutMs: 10000,
      message: 'endsAt moved forward',
    });
    // Resolved in the store (no notice sent): re-sends stop and Alertmanager ends it itself.
    await sqlite(gw.dbPath, `UPDATE alarms SET state = 'resolved' WHERE name = 'errors' AND tenant_id = 'dock'`);
    await waitFor(async () => (await am.alerts(`${f}&active=true`)).length === 0, {
      timeoutMs: 15000,
      message: 'the alert ended after its lease',
    });
  });
});
