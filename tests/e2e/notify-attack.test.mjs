// Hostile receivers and programs against the notification sender (issue 11, docs/operations.md
// "Notifications"). Notices are put straight into the outbox (as notify.test.mjs does) for one
// notifier each, so every case is independent of the alarm timer.
//
// What is checked:
//   - a webhook that answers 200 and then drips its body forever took the notice: it is
//     delivered once, not retried at every timeout (it was, before: one copy per try);
//   - a webhook that accepts and never answers does not hold up requests through the proxy,
//     and its delivery stays pending with a timeout as its error;
//   - an exec program that never exits is killed at its timeout with what it started (its
//     process group), so no grandchild is left behind;
//   - a webhook that never answers, with a long timeout, holds up only its own deliveries:
//     another notifier gets each notice at once meanwhile (each notifier has its own thread;
//     with one sender thread it waited for the whole timeout).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import { createTenantKey, freePort, request, sqlite, startGateway, startMock, tempDir, waitFor, waitForKey } from './lib/harness.mjs';

const SECRET = crypto.randomBytes(16).toString('hex');
const sql = (s) => `'${String(s).replaceAll("'", "''")}'`;

/** A receiver whose handler is given; records every request's notice id. */
async function startServer(handler) {
  const r = { ids: [], sockets: new Set() };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      try {
        r.ids.push(JSON.parse(Buffer.concat(chunks).toString()).id);
      } catch {
        r.ids.push(null);
      }
      handler(req, res);
    });
  });
  server.on('connection', (s) => {
    r.sockets.add(s);
    s.on('close', () => r.sockets.delete(s));
  });
  const port = await freePort();
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${port}/hook`;
  r.close = () => {
    for (const s of r.sockets) s.destroy();
    return new Promise((resolve) => server.close(resolve));
  };
  return r;
}

async function insertNotice(gw, id, notifier, tenant = 'acme') {
  const now = Date.now() * 1000;
  await sqlite(
    gw.dbPath,
    `INSERT INTO outbox (id, kind, alarm, alarm_kind, tenant_id, state, severity, value, threshold, baseline,
       window_s, time_us, started_us, summary, created_us)
     VALUES (${sql(id)}, 'alarm', 'errors', 'error_rate', ${sql(tenant)}, 'firing', 'critical', 0.2, 0.05, 0,
       300, ${now}, ${now}, 'error rate 20%', ${now});
     INSERT INTO outbox_deliveries (notice_id, notifier, status, attempts, next_us, updated_us)
     VALUES (${sql(id)}, ${sql(notifier)}, 'pending', 0, ${now}, ${now});`,
  );
}

const delivery = async (gw, id) =>
  (await sqlite(gw.dbPath, `SELECT status, attempts, error FROM outbox_deliveries WHERE notice_id = ${sql(id)}`))[0];

function alive(pid) {
  try {
    const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return !/^State:\s+Z/m.test(st); // a zombie is dead, only not reaped yet
  } catch {
    return false;
  }
}

describe('notifications: hostile receivers and programs', () => {
  let mock, gw, drip, hang, workDir, prog;
  const timers = new Set();

  before(async () => {
    workDir = await tempDir('tollgate-notify-attack-');
    prog = path.join(workDir, 'stuck.sh');
    // Starts a grandchild, records both pids, and never exits.
    fs.writeFileSync(
      prog,
      '#!/bin/sh\n' +
        `sleep 1000 &\n` +
        `printf '%s %s' "$$" "$!" > '${workDir}/'"$TOLLGATE_NOTICE_ID"'.pids'\n` +
        'wait\n',
      { mode: 0o755 },
    );
    drip = await startServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('o');
      const t = setInterval(() => res.write('k'), 50);
      timers.add(t);
      res.on('close', () => {
        clearInterval(t);
        timers.delete(t);
      });
    });
    hang = await startServer(() => {}); // reads the request, never answers
    mock = await startMock();
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' }],
      env: { HOOK_SECRET: SECRET },
      extra: {
        notify: [
          { name: 'drip', type: 'webhook', url: drip.url, secret: '${HOOK_SECRET}', timeout: '600ms' },
          { name: 'hang', type: 'webhook', url: hang.url, secret: '${HOOK_SECRET}', timeout: '1s' },
          { name: 'stuck', type: 'exec', command: [prog], timeout: '500ms' },
        ],
        notify_retry: { min: '100ms', max: '200ms' },
      },
    });
  });
  after(async () => {
    for (const t of timers) clearInterval(t);
    await gw?.stop();
    await drip?.close();
    await hang?.close();
    await mock?.stop();
  });

  test('a webhook answering 200 and then dripping its body forever gets the notice once', async () => {
    await insertNotice(gw, 'alarm/errors/acme/1', 'drip');
    await waitFor(async () => (await delivery(gw, 'alarm/errors/acme/1')).status !== 'pending', {
      timeoutMs: 5000,
      message: 'the drip delivery settled',
    }).catch(() => {});
    // Time for several timeouts and retries, had the 200 not counted.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const d = await delivery(gw, 'alarm/errors/acme/1');
    assert.deepEqual([d.status, d.attempts], ['delivered', 1], JSON.stringify(d));
    assert.deepEqual(drip.ids, ['alarm/errors/acme/1'], 'sent once');
  });

  test('a webhook that never answers: the proxy keeps serving, the delivery waits', async () => {
    await insertNotice(gw, 'alarm/errors/acme/2', 'hang');
    await waitFor(() => hang.ids.length >= 1, { timeoutMs: 5000, message: 'the hanging receiver reached' });
    const k = await createTenantKey(gw, 'acme');
    await waitForKey(gw, k.secret, '/v1/models');
    for (let i = 0; i < 20; i++) {
      const r = await request(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${k.secret}` }, timeoutMs: 3000 });
      assert.equal(r.status, 200);
    }
    await waitFor(async () => (await delivery(gw, 'alarm/errors/acme/2')).attempts >= 1, {
      timeoutMs: 5000,
      message: 'the first try timed out',
    });
    const d = await delivery(gw, 'alarm/errors/acme/2');
    assert.equal(d.status, 'pending');
    assert.match(d.error, /timed out/);
  });

  test('an exec program that never exits is killed with its children at the timeout', async () => {
    await insertNotice(gw, 'stuck-4', 'stuck'); // an id without '/': the program's file name
    const file = path.join(workDir, 'stuck-4.pids');
    await waitFor(() => fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes(' '), {
      timeoutMs: 5000,
      message: 'the program started',
    });
    const [pid, child] = fs.readFileSync(file, 'utf8').split(' ').map(Number);
    await waitFor(async () => (await delivery(gw, 'stuck-4')).attempts >= 1, { timeoutMs: 5000, message: 'a timed-out try' });
    assert.match((await delivery(gw, 'stuck-4')).error, /timed out/);
    await waitFor(() => !alive(pid) && !alive(child), { timeoutMs: 3000, message: `program ${pid} and its child ${child} gone` });
  });
});

describe('notifications: a receiver that never answers holds up only itself', () => {
  let gw, hang, fast;
  before(async () => {
    hang = await startServer(() => {}); // reads the request, never answers
    fast = await startServer((req, res) => res.writeHead(204).end());
    gw = await startGateway({
      upstreams: [{ name: 'none', targets: ['http://127.0.0.1:9'] }],
      routes: [{ name: 'r', path_prefix: '/', upstream: 'none' }],
      env: { HOOK_SECRET: SECRET },
      extra: {
        notify: [
          // first in the config and in the outbox: the one a single sender would try first
          { name: 'hang', type: 'webhook', url: hang.url, secret: '${HOOK_SECRET}', timeout: '30s' },
          { name: 'fast', type: 'webhook', url: fast.url, secret: '${HOOK_SECRET}', timeout: '2s' },
        ],
      },
    });
  });
  after(async () => {
    await gw?.stop();
    await hang?.close();
    await fast?.close();
  });

  test('while one send hangs for its 30 s timeout, the other notifier gets every notice', async () => {
    await insertNotice(gw, 'iso/hang/1', 'hang');
    await waitFor(() => hang.ids.length >= 1, { timeoutMs: 5000, message: 'the hanging receiver reached' });
    for (let i = 1; i <= 3; i++) {
      const id = `iso/fast/${i}`;
      await insertNotice(gw, id, 'fast');
      await waitFor(() => fast.ids.includes(id), { timeoutMs: 5000, message: `${id} at the other receiver` });
    }
    const d = await delivery(gw, 'iso/hang/1');
    assert.deepEqual([d.status, d.attempts], ['pending', 0], 'the hanging send is still in progress');
  });
});
