// Hostile config churn and hostile receivers against the notification lanes (one sending
// thread per notifier under a supervisor, docs/operations.md "Notifications") and against
// Alertmanager re-sends. Notices are put straight into the outbox, and firing alarms straight
// into the alarms table, as notify.test.mjs does; receivers are small node servers that
// answer as told.
//
// What is checked:
//   - a notifier removed by a reload while its receiver answers slowly gets nothing more
//     than the send in flight, which is given up: the rest of the batch its lane had claimed
//     stays pending (it was sent, one slow send after another, to a notifier no longer
//     configured);
//   - 64 notifiers renamed twice while every send hangs (60 s): the third set gets its
//     notices at once (the 128 lanes of the first two waited out their sends, and the
//     third set had no lane for up to 60 s);
//   - 64 notifiers on two gateways sharing one store, notices written meanwhile: each
//     reaches each notifier once;
//   - a re-send round in which Alertmanager refuses an alert (4xx) still re-sends the
//     others (the round stopped at the refusal, every round, so every alarm after it expired
//     in Alertmanager while it fired);
//   - a round over 3000 firing alarms takes a few requests, not 3000, and holds up no new
//     notice to the same Alertmanager (it took 16 s, the new notice waiting behind it);
//   - a receiver answering 503 halfway through a round is backed off (the alerts posted
//     before the 503 reset the backoff: a new round came at once, every second);
//   - a SIGHUP storm adding, removing and renaming notifiers while their receivers hang
//     leaks no thread, sends no notice twice to one notifier and loses none;
//   - SIGTERM while lanes hang in 30 s sends: the gateway exits within a few seconds and
//     what was in flight stays pending.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';

import { freePort, sqlite, startGateway, toYaml, waitFor } from './lib/harness.mjs';

const sql = (s) => `'${String(s).replaceAll("'", "''")}'`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A receiver: answer(req, body) returns {status, delayMs} (or null: never answers). Records
 * each request as {path, id, body, at, answered} (answered: a 2xx was written before the
 * sender gave up). */
async function startReceiver(answer) {
  const r = { got: [], sockets: new Set() };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let body = null;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString());
      } catch {
        // recorded as null
      }
      const g = { path: req.url, id: body?.id ?? null, body, at: Date.now(), answered: false };
      r.got.push(g);
      const a = answer(req, body);
      if (!a) return;
      setTimeout(() => {
        if (res.destroyed) return; // the sender gave up first: not taken
        res.writeHead(a.status).end();
        g.answered = a.status >= 200 && a.status < 300;
      }, a.delayMs ?? 0);
    });
  });
  server.on('connection', (s) => {
    r.sockets.add(s);
    s.on('close', () => r.sockets.delete(s));
  });
  const port = await freePort();
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  r.base = `http://127.0.0.1:${port}`;
  r.close = () => {
    for (const s of r.sockets) s.destroy();
    return new Promise((resolve) => server.close(resolve));
  };
  return r;
}

async function insertNotices(gw, ids, notifiers) {
  const now = Date.now() * 1000;
  let q = '';
  for (const id of ids) {
    q += `INSERT INTO outbox (id, kind, alarm, alarm_kind, tenant_id, state, severity, value, threshold, baseline,
            window_s, time_us, started_us, summary, created_us)
          VALUES (${sql(id)}, 'alarm', 'errors', 'error_rate', 'acme', 'firing', 'critical', 0.2, 0.05, 0,
            300, ${now}, ${now}, 'error rate 20%', ${now});\n`;
    for (const n of notifiers)
      q += `INSERT INTO outbox_deliveries (notice_id, notifier, status, attempts, next_us, updated_us)
            VALUES (${sql(id)}, ${sql(n)}, 'pending', 0, ${now}, ${now});\n`;
  }
  await sqlite(gw.dbPath, `BEGIN;\n${q}COMMIT;`);
}

const statuses = async (gw, notifier) =>
  Object.fromEntries(
    (
      await sqlite(gw.dbPath, `SELECT status, count(*) AS n FROM outbox_deliveries WHERE notifier = ${sql(notifier)} GROUP BY status`)
    ).map((r) => [r.status, r.n]),
  );

function reload(gw, notify, extra = {}) {
  fs.writeFileSync(gw.configPath, toYaml({ ...gw.config, ...extra, notify }));
  gw.proc.kill('SIGHUP');
}

const threads = (pid) => fs.readdirSync(`/proc/${pid}/task`).length;

const gateway = (notify, extra = {}) =>
  startGateway({
    upstreams: [{ name: 'none', targets: ['http://127.0.0.1:9'] }],
    routes: [{ name: 'r', path_prefix: '/', upstream: 'none' }],
    extra: { notify, notify_retry: { min: '100ms', max: '500ms' }, alarms_interval: '1h', ...extra },
  });

describe('notification lanes: a removed notifier', () => {
  let slow, gw;
  before(async () => {
    slow = await startReceiver(() => ({ status: 200, delayMs: 1500 }));
    gw = await gateway([
      { name: 'slow', type: 'webhook', url: `${slow.base}/slow`, secret: 'x', timeout: '10s' },
      { name: 'other', type: 'webhook', url: `${slow.base}/other`, secret: 'x', timeout: '10s' },
    ]);
  });
  after(async () => {
    await gw?.stop();
    await slow?.close();
  });

  test('gets no more than the send in flight; the rest of its batch stays pending', async () => {
    const ids = Array.from({ length: 8 }, (_, i) => `alarm/errors/acme/${i + 1}`);
    await insertNotices(gw, ids, ['slow']);
    await waitFor(() => slow.got.length >= 1, { timeoutMs: 10000, message: 'the first slow send' });
    reload(gw, [{ name: 'other', type: 'webhook', url: `${slow.base}/other`, secret: 'x', timeout: '10s' }]);
    await waitFor(() => /config reloaded/.test(gw.stderr()), { timeoutMs: 5000, message: 'the reload' });
    const atReload = slow.got.length;
    await sleep(5000); // three more slow sends, had its lane gone on with its batch
    assert.ok(slow.got.length <= atReload + 1, `sends to the removed notifier after the reload: ${slow.got.length - atReload}`);
    const st = await statuses(gw, 'slow');
    assert.ok((st.pending ?? 0) >= 6, `still pending: ${JSON.stringify(st)}`);
  });
});

/** count firing rows of rule name for tenants t0000, t0001, ... started a minute ago. */
async function insertFiring(gw, name, count) {
  const t0 = Date.now() * 1000 - 60e6;
  await sqlite(
    gw.dbPath,
    `INSERT INTO alarms (name, tenant_id, kind, state, value, threshold, baseline, since_us, started_us, updated_us, seq)
     WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < ${count - 1})
     SELECT ${sql(name)}, printf('t%04d', i), 'error_rate', 'firing', 0.3, 0.05, 0, ${t0}, ${t0}, ${t0}, 1 FROM c;`,
  );
}

/** An Alertmanager stand-in answering status(alerts) to each list posted. */
const startAm = (status) => startReceiver((req, body) => ({ status: status(Array.isArray(body) ? body : []) }));
const has = (alerts, name, tenant) => alerts.some((a) => a.labels?.alertname === name && (!tenant || a.labels?.tenant === tenant));
const posts = (am, name, tenant) => am.got.filter((g) => Array.isArray(g.body) && has(g.body, name, tenant)).length;

describe('Alertmanager re-sends: one list refused', () => {
  let am, gw;
  before(async () => {
    // Refuses a list holding an alert of rule "aaa" (as a validation error would), takes the rest.
    am = await startAm((alerts) => (has(alerts, 'aaa') ? 400 : 200));
    gw = await gateway([{ name: 'am', type: 'alertmanager', url: am.base, timeout: '2s', resend: '1s' }], {
      alarms: ['aaa', 'bbb'].map((name) => ({ name, kind: 'error_rate', threshold: 0.05, severity: 'critical' })),
    });
  });
  after(async () => {
    await gw?.stop();
    await am?.close();
  });

  test('the alarms after it are still re-sent every round', async () => {
    await insertFiring(gw, 'aaa', 1); // sorts first: in the first request of each round
    await insertFiring(gw, 'bbb', 600);
    await waitFor(() => posts(am, 'aaa') >= 3, { timeoutMs: 10000, message: 'three rounds' });
    const last = posts(am, 'bbb', 't0599');
    assert.ok(last >= 2, `the last alarm re-sent ${last} times in three rounds`);
  });
});

describe('Alertmanager re-sends: 503 halfway through a round', () => {
  let am, gw;
  before(async () => {
    // Takes the first alarms of a round, answers 503 to the one holding tenant t0299.
    am = await startAm((alerts) => (has(alerts, 'errors', 't0299') ? 503 : 200));
    gw = await gateway([{ name: 'am', type: 'alertmanager', url: am.base, timeout: '2s', resend: '1s' }], {
      alarms: [{ name: 'errors', kind: 'error_rate', threshold: 0.05, severity: 'critical' }],
      notify_retry: { min: '10s', max: '10s' },
    });
  });
  after(async () => {
    await gw?.stop();
    await am?.close();
  });

  test('is backed off, not given a new round at once', async () => {
    await insertFiring(gw, 'errors', 300);
    await waitFor(() => posts(am, 'errors', 't0299') >= 1, { timeoutMs: 10000, message: 'the first 503' });
    await sleep(9000); // a backoff of 5..10 s: one more round at most (a round a second or so without)
    const rounds = posts(am, 'errors', 't0299');
    assert.ok(rounds <= 2, `rounds in about 9 s against a receiver answering 503: ${rounds}`);
  });
});

describe('Alertmanager re-sends: 3000 alarms firing', () => {
  let am, gw;
  before(async () => {
    // 3 ms a request, as a receiver a network away answers.
    am = await startReceiver(() => ({ status: 200, delayMs: 3 }));
    gw = await gateway([{ name: 'am', type: 'alertmanager', url: am.base, timeout: '2s', resend: '1s' }], {
      alarms: [{ name: 'errors', kind: 'error_rate', threshold: 0.05, severity: 'critical' }],
    });
  });
  after(async () => {
    await gw?.stop();
    await am?.close();
  });

  test('a round is quick and holds up no new notice', async () => {
    await insertFiring(gw, 'errors', 3000);
    const alerts = () => am.got.reduce((n, g) => n + (Array.isArray(g.body) ? g.body.length : 0), 0);
    await waitFor(() => alerts() >= 1, { timeoutMs: 10000, message: 'the round begun' });
    const t = Date.now();
    await insertNotices(gw, ['alarm/errors/new/1'], ['am']);
    await waitFor(async () => (await statuses(gw, 'am')).delivered === 1, { timeoutMs: 30000, message: 'the new notice delivered' });
    const took = Date.now() - t;
    await waitFor(() => alerts() >= 3000, { timeoutMs: 30000, message: 'the whole round' });
    const roundMs = Date.now() - t;
    console.log(`3000 firing: the new notice took ${took} ms; ${am.got.length} requests for the first round (${roundMs} ms)`);
    assert.ok(took < 2500, `the new notice waited ${took} ms behind the round`);
  });
});

describe('notification lanes: SIGHUP storm while receivers hang', () => {
  let rx, gw;
  const names = ['n0', 'n1', 'n2', 'n3'];
  const conf = (name, path = name, timeout = '3s') => ({ name, type: 'webhook', url: `${rx.base}/${path}`, secret: 'x', timeout });
  before(async () => {
    // Each first request of a notice hangs 2 s; later ones (the storm is over) answer at once.
    rx = await startReceiver(() => ({ status: 200, delayMs: rx.fast ? 0 : 2000 }));
    gw = await gateway(names.map((n) => conf(n)));
  });
  after(async () => {
    await gw?.stop();
    await rx?.close();
  });

  test('no thread leak, no double delivery, nothing lost', async () => {
    const ids = Array.from({ length: 12 }, (_, i) => `alarm/errors/acme/${100 + i}`);
    await insertNotices(gw, ids, names);
    await waitFor(() => rx.got.length >= 4, { timeoutMs: 10000, message: 'every lane sending' });
    const base = threads(gw.proc.pid);
    let most = base;
    const configs = [
      [conf('n0'), conf('n1')],
      [conf('n2'), conf('n3'), conf('x0', 'n0')],
      [],
      names.map((n) => conf(n)),
      [conf('n1'), conf('n3')],
      names.map((n) => conf(n)).concat([conf('x1', 'n1')]),
    ];
    for (let i = 0; i < 60; i++) {
      reload(gw, configs[i % configs.length]);
      await sleep(50);
      most = Math.max(most, threads(gw.proc.pid));
    }
    rx.fast = true;
    reload(gw, names.map((n) => conf(n)));
    await waitFor(
      async () => (await sqlite(gw.dbPath, `SELECT count(*) AS n FROM outbox_deliveries WHERE status = 'delivered'`))[0].n === ids.length * names.length,
      { timeoutMs: 60000, message: 'every delivery made' },
    );
    await sleep(1500); // lanes of removed notifiers end and are joined
    const settled = threads(gw.proc.pid);
    const seen = new Map(); // taken (answered 2xx) per notifier path and notice
    for (const g of rx.got.filter((g) => g.answered)) seen.set(`${g.path} ${g.id}`, (seen.get(`${g.path} ${g.id}`) ?? 0) + 1);
    const twice = [...seen].filter(([k, n]) => n > 1 && !k.startsWith('/x'));
    console.log(`threads: ${base} before, ${most} at most in the storm, ${settled} after; requests ${rx.got.length}`);
    assert.ok(settled <= base, `threads after the storm: ${settled} (before ${base})`);
    assert.deepEqual(twice, [], 'one notice sent twice to one notifier');
    const fails = await sqlite(gw.dbPath, `SELECT count(*) AS n FROM outbox_deliveries WHERE status != 'delivered'`);
    assert.equal(fails[0].n, 0);
  });
});

describe('notification lanes: renamed twice while every send hangs', () => {
  let hang, fast, gw;
  const set = (prefix, base) =>
    Array.from({ length: 64 }, (_, i) => ({ name: `${prefix}${String(i).padStart(2, '0')}`, type: 'webhook', url: `${base}/${prefix}`, secret: 'x', timeout: '60s' }));
  before(async () => {
    hang = await startReceiver(() => null); // never answers
    fast = await startReceiver(() => ({ status: 200 }));
    gw = await gateway(set('a', hang.base));
  });
  after(async () => {
    await gw?.stop();
    await hang?.close();
    await fast?.close();
  });

  test('the third set of notifiers gets its notices at once', async () => {
    const a = set('a', hang.base).map((n) => n.name);
    const b = set('b', hang.base).map((n) => n.name);
    const c = set('c', fast.base).map((n) => n.name);
    await insertNotices(gw, ['alarm/errors/acme/700'], [...a, ...b]);
    await waitFor(() => hang.got.length >= 64, { timeoutMs: 10000, message: "the a lanes' sends hanging" });
    reload(gw, set('b', hang.base));
    await waitFor(() => hang.got.length >= 128, { timeoutMs: 10000, message: "the b lanes' sends hanging" });
    reload(gw, set('c', fast.base));
    const t = Date.now();
    await insertNotices(gw, ['alarm/errors/acme/701'], c);
    await waitFor(() => fast.got.length >= 64, { timeoutMs: 15000, message: 'the c notifiers got the notice' }).catch((e) => {
      throw new Error(`${e.message}: ${fast.got.length} of 64 (threads ${threads(gw.proc.pid)})`);
    });
    const took = Date.now() - t;
    console.log(`third set after two renames over hung sends: ${took} ms`);
    assert.ok(took < 5000, `took ${took} ms`);
    // The removed notifiers' sends were given up, not made: pending, no attempt counted.
    const st = await sqlite(gw.dbPath, `SELECT status, attempts FROM outbox_deliveries WHERE notice_id = 'alarm/errors/acme/700'`);
    assert.ok(st.every((d) => d.status === 'pending' && d.attempts === 0), JSON.stringify(st.slice(0, 3)));
  });
});

describe('notification lanes: 64 notifiers, two gateways on one store', () => {
  let rx, gw, gw2;
  const names = Array.from({ length: 64 }, (_, i) => `w${String(i).padStart(2, '0')}`);
  const notify = () => names.map((n) => ({ name: n, type: 'webhook', url: `${rx.base}/${n}`, secret: 'x', timeout: '5s' }));
  before(async () => {
    rx = await startReceiver(() => ({ status: 200, delayMs: 1 }));
    gw = await gateway(notify());
    gw2 = await gateway(notify(), { store: `sqlite:${gw.dbPath}`, recorder: { spool: 'second.spool' } });
  });
  after(async () => {
    await gw2?.stop();
    await gw?.stop();
    await rx?.close();
  });

  test('every notice reaches every notifier once while more are written', async () => {
    const ids = [];
    for (let b = 0; b < 5; b++) {
      // Written in batches while both gateways' 128 lanes claim and mark.
      const batch = Array.from({ length: 10 }, (_, i) => `alarm/errors/acme/${1000 + b * 10 + i}`);
      await insertNotices(gw, batch, names);
      ids.push(...batch);
      await sleep(200);
    }
    const want = ids.length * names.length;
    await waitFor(
      async () => (await sqlite(gw.dbPath, `SELECT count(*) AS n FROM outbox_deliveries WHERE status = 'delivered'`))[0].n === want,
      { timeoutMs: 90000, intervalMs: 500, message: `${want} deliveries made` },
    );
    await sleep(1000);
    const seen = new Map();
    for (const g of rx.got) seen.set(`${g.path} ${g.id}`, (seen.get(`${g.path} ${g.id}`) ?? 0) + 1);
    const twice = [...seen].filter(([, n]) => n > 1);
    console.log(`64 notifiers x ${ids.length} notices on two gateways: ${rx.got.length} requests, ${twice.length} sent twice`);
    assert.equal(seen.size, want);
    const why = (gw.stderr() + gw2.stderr()).split('\n').filter((l) => / (warn|error) /.test(l)).slice(0, 10).join('\n');
    assert.deepEqual(twice.slice(0, 5), [], `sent twice to one notifier; log:\n${why}`);
    assert.doesNotMatch(gw.stderr() + gw2.stderr(), /cannot record the delivery/);
  });
});

describe('notification lanes: SIGTERM while sends hang', () => {
  let rx, gw;
  before(async () => {
    rx = await startReceiver(() => null); // never answers
    gw = await gateway(
      Array.from({ length: 8 }, (_, i) => ({ name: `h${i}`, type: 'webhook', url: `${rx.base}/h${i}`, secret: 'x', timeout: '30s' })),
    );
  });
  after(async () => {
    await gw?.stop().catch(() => {});
    await rx?.close();
  });

  test('exits within a few seconds; what was in flight stays pending', async () => {
    const notifiers = Array.from({ length: 8 }, (_, i) => `h${i}`);
    await insertNotices(gw, ['alarm/errors/acme/500', 'alarm/errors/acme/501'], notifiers);
    await waitFor(() => rx.got.length >= 8, { timeoutMs: 10000, message: 'every lane hanging' });
    const t = Date.now();
    await gw.stop();
    const took = Date.now() - t;
    console.log(`SIGTERM with 8 hung sends: exited in ${took} ms`);
    assert.ok(took < 5000, `exit took ${took} ms`);
    const st = await sqlite(gw.dbPath, `SELECT status, attempts, next_us FROM outbox_deliveries`);
    assert.equal(st.length, 16);
    assert.ok(st.every((d) => d.status === 'pending' && d.attempts === 0), JSON.stringify(st));
    // Handed back for the next sender at once, not at the lease's end.
    assert.ok(st.every((d) => d.next_us <= Date.now() * 1000), JSON.stringify(st));
  });
});
