// SQLite's WAL index (tollgate.db-shm) is mapped into memory: a file that cannot back the
// mapping is SIGBUS, not an error (issue 9, section 4). tollgate refuses to start on a -shm
// it cannot write, with one line naming the file, and stops using a connection whose -shm
// was truncated, removed or replaced while serving: the events go to the spool and the
// gateway keeps answering. See src/store/walshm.h.
//
// Root ignores file modes, so an unwritable file is made with what root cannot override:
// a directory in the file's place, and `chattr +i` (skipped where the filesystem or the
// capabilities do not allow it).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { describe, test } from 'node:test';

import { request, sqlite, startGateway, startMock, waitFor } from './lib/harness.mjs';

/** n keyless requests pipelined on one connection; resolves with the 401s answered. */
function keyless(port, n) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    let text = '';
    const count = () => (text.match(/HTTP\/1\.1 401 /g) || []).length;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`${count()} of ${n} answers after 20 s`));
    }, 20000);
    sock.setEncoding('latin1');
    sock.on('connect', () => sock.write('GET /x HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(n)));
    sock.on('data', (d) => {
      text += d;
      if (count() >= n) {
        clearTimeout(timer);
        sock.destroy();
        resolve(n);
      }
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(count());
    });
  });
}

async function gateway() {
  const mock = await startMock();
  const gw = await startGateway({
    upstreams: [{ name: 'mock', targets: [mock.url] }],
    routes: [{ name: 'all', path_prefix: '/', upstream: 'mock', kind: 'http' }],
  });
  return { mock, gw };
}

/** Restarts gw expecting it to refuse: returns the error startGateway's start() threw. */
async function refusedStart(gw) {
  const before = gw.stderr().length;
  try {
    await gw.restart();
  } catch (e) {
    return { message: e.message, stderr: gw.stderr().slice(before) };
  }
  assert.fail('tollgate started on an unusable WAL index');
}

function checkRefusal(e, shm) {
  assert.match(e.message, /exited \(code 1, signal null\)/, e.message);
  const lines = e.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${lines.join(' | ')}`);
  assert.ok(lines[0].includes(shm), `names ${shm}: ${lines[0]}`);
}

describe('the WAL index (-shm)', () => {
  test('a directory in its place: refused at start, one line naming it', async () => {
    const { mock, gw } = await gateway();
    try {
      await gw.stop();
      const shm = `${gw.dbPath}-shm`;
      fs.rmSync(shm, { force: true });
      fs.mkdirSync(shm);
      checkRefusal(await refusedStart(gw), shm);
    } finally {
      await mock.stop();
    }
  });

  test('an immutable file (chattr +i, which root cannot write either): refused at start', async (t) => {
    const { mock, gw } = await gateway();
    const shm = `${gw.dbPath}-shm`;
    let immutable = false;
    try {
      await gw.stop();
      fs.writeFileSync(shm, Buffer.alloc(32768));
      immutable = spawnSync('chattr', ['+i', shm]).status === 0;
      if (!immutable) {
        t.skip('chattr +i is not available here');
        return;
      }
      checkRefusal(await refusedStart(gw), shm);
    } finally {
      if (immutable) spawnSync('chattr', ['-i', shm]);
      await mock.stop();
    }
  });

  test('truncated while serving: no SIGBUS; the gateway answers, events spool, none lost', async () => {
    const { mock, gw } = await gateway();
    try {
      assert.equal(await keyless(gw.port, 50), 50);
      // Truncate while the writer is idle (its 50 events committed): a truncation that lands
      // inside a store call can still fault there (docs/operations.md, "WAL index"); what is
      // tested is that tollgate notices a lost index before its next use.
      await waitFor(async () => (await sqlite(gw.dbPath, 'SELECT count(*) AS n FROM usage_events'))[0].n === 50, {
        message: 'the first 50 refusals committed',
      });
      fs.truncateSync(`${gw.dbPath}-shm`, 0); // what a full or failing filesystem can do to a mapping
      let sent = 50;
      for (let i = 0; i < 5; i++) {
        assert.equal(await keyless(gw.port, 100), 100, 'the gateway still answers');
        sent += 100;
      }
      assert.equal(gw.proc.signalCode, null, 'not killed by a signal');
      assert.equal(gw.proc.exitCode, null, 'still running');
      // Not ready: the store is not being written (a load balancer can take it out).
      await waitFor(async () => (await request(`${gw.adminUrl}/readyz`)).status === 503, {
        message: '/readyz 503 once the writer met the lost index',
      });
      const ready = await request(`${gw.adminUrl}/readyz`);
      assert.equal(JSON.parse(ready.body).store.status, 'spooling');
      await gw.stop();
      assert.equal(gw.proc.signalCode, null, `no signal at stop: ${gw.stderr().slice(-500)}`);
      assert.match(gw.stderr(), /tollgate\.db-shm was truncated while in use/);
      // A restart maps a fresh index and replays the spool: every refusal is counted.
      await gw.restart();
      await gw.stop();
      const [row] = await sqlite(gw.dbPath, 'SELECT sum(requests) AS n FROM usage_events WHERE status = 401');
      assert.equal(row.n, sent);
    } finally {
      await gw.stop().catch(() => {});
      await mock.stop();
    }
  });
});
