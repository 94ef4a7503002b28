// Unauthenticated floods (issue 9, section 4): refusals without a valid key are recorded one
// by one up to log.unauthenticated_per_minute per client address and UTC minute, and past
// it counted in one aggregate row per address and minute (usage_events.requests, reason
// 'unauthenticated_aggregate'), with one access-log line each. The count is exact: rows
// summed by requests = refusals sent. Minute boundaries cannot be moved from here (the
// gateway reads its own clock), so every assertion holds per (address, minute) whatever
// minute the requests fall in; tests/unit/meter/test_flood.c pins the boundaries.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { describe, test } from 'node:test';

import { createTenantKey, request, sqlite, startGateway, startMock, waitForKey } from './lib/harness.mjs';

const MINUTE_US = 60n * 1000000n;

/**
 * Sends n pipelined keyless requests over one connection from localAddress, in `writes`
 * writes, and resolves with the number of 401 answers once all n arrived (or the server
 * closed the connection).
 */
function pipeline(port, n, { localAddress = '127.0.0.1', writes = 4, headers = '' } = {}) {
  return new Promise((resolve, reject) => {
    const req = `GET /flood HTTP/1.1\r\nHost: x\r\n${headers}\r\n`;
    const sock = net.connect({ port, host: '127.0.0.1', localAddress });
    let text = '';
    let done = false;
    const count = () => (text.match(/HTTP\/1\.1 401 /g) || []).length;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(count());
    };
    const timer = setTimeout(() => {
      done = true;
      sock.destroy();
      reject(new Error(`pipeline: ${count()} of ${n} answers after 30 s`));
    }, 30000);
    sock.on('connect', () => {
      let sent = 0;
      for (let w = 0; w < writes; w++) {
        const k = w === writes - 1 ? n - sent : Math.floor(n / writes);
        sock.write(req.repeat(k));
        sent += k;
      }
    });
    sock.setEncoding('latin1');
    sock.on('data', (d) => {
      text += d;
      if (count() >= n) finish();
    });
    sock.on('close', finish);
    sock.on('error', (e) => {
      if (!done) reject(e);
    });
  });
}

/** The 401 rows of one client address: one entry per (minute, kind). */
async function refusals(dbPath, ip) {
  return sqlite(
    dbPath,
    `SELECT ts_us / ${MINUTE_US} AS minute, reason = 'unauthenticated_aggregate' AS agg, count(*) AS n_rows, ` +
      `sum(requests) AS n_requests, group_concat(DISTINCT reason) AS reasons FROM usage_events ` +
      `WHERE status = 401 AND client_ip = '${ip}' GROUP BY minute, agg ORDER BY minute, agg`,
  );
}

/**
 * Checks the rows of one address against the rule, per minute: at most `bound` rows of one
 * request each; an aggregate (one row) only once the bound is reached; in total exactly
 * `sent` requests. Returns the number of rows.
 */
function checkRule(rows, bound, sent, ip) {
  const minutes = new Map();
  for (const r of rows) {
    const m = minutes.get(r.minute) ?? { single: 0, agg: null };
    if (r.agg) m.agg = r;
    else m.single = r.n_rows;
    if (!r.agg) assert.equal(r.n_requests, r.n_rows, `${ip}: an ordinary row stands for one request`);
    minutes.set(r.minute, m);
  }
  let total = 0;
  let nrows = 0;
  for (const [minute, m] of minutes) {
    assert.ok(m.single <= bound, `${ip} minute ${minute}: ${m.single} rows recorded one by one, bound ${bound}`);
    total += m.single;
    nrows += m.single;
    if (m.agg) {
      assert.equal(m.agg.n_rows, 1, `${ip} minute ${minute}: one aggregate row`);
      assert.equal(m.single, bound, `${ip} minute ${minute}: aggregated only past the bound`);
      total += m.agg.n_requests;
      nrows += 1;
    }
  }
  assert.equal(total, sent, `${ip}: rows summed by requests = refusals sent`);
  return nrows;
}

async function accessLines(file) {
  const text = await fs.promises.readFile(file, 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

describe('unauthenticated flood', () => {
  // The default bound (100): no config key, so the old gateway starts too and shows the
  // flood costing one row and one log line per request.
  test('2,000 pipelined keyless requests: 100 rows, then one aggregate with the exact rest', async () => {
    const mock = await startMock();
    const gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'all', path_prefix: '/', upstream: 'mock', kind: 'http' }],
    });
    try {
      const { secret } = await createTenantKey(gw, 'acme');
      // Its probes until the key is loaded may be refused too: the first refusals of the
      // address, so recorded one by one with their path, and counted below.
      await waitForKey(gw, secret, '/probe');
      assert.equal(await pipeline(gw.port, 2000), 2000);
      // Bad keys count the same as none: a revoked or unknown key is no way around it.
      assert.equal(await pipeline(gw.port, 150, { headers: 'Authorization: Bearer tg_nope\r\n', writes: 1 }), 150);
      // A valid key from the same address is served and recorded as usual.
      const ok = await request(`${gw.url}/ok`, { headers: { authorization: `Bearer ${secret}` } });
      assert.equal(ok.status, 200);
      await gw.stop(); // the last aggregates are written at stop

      // Bounded disk first (on the old gateway: one row per refusal).
      const all = (await sqlite(gw.dbPath, "SELECT count(*) AS n FROM usage_events WHERE status = 401 AND client_ip = '127.0.0.1'"))[0].n;
      assert.ok(all <= 2 * 101, `${all} rows for more than 2,150 refusals`);
      const probes = (await sqlite(gw.dbPath, "SELECT count(*) AS n FROM usage_events WHERE status = 401 AND path = '/probe'"))[0].n;
      const sent = 2150 + probes;
      const rows = await refusals(gw.dbPath, '127.0.0.1');
      const nrows = checkRule(rows, 100, sent, '127.0.0.1');
      assert.ok(nrows <= 2 * 101, `${nrows} rows for 2,150 refusals`);
      const agg = rows.filter((r) => r.agg);
      assert.ok(agg.length >= 1, 'an aggregate row');
      const single = rows.filter((r) => !r.agg).map((r) => r.reasons).join(',');
      assert.match(single, /missing_key/, 'the first refusals keep their own reason');

      const served = await sqlite(gw.dbPath, "SELECT count(*) AS n FROM usage_events WHERE tenant = 'acme' AND status = 200 AND path = '/ok'");
      assert.equal(served[0].n, 1);

      // The access log: one line per row, the aggregate's with its count.
      const lines = (await accessLines(gw.accessLog)).filter((l) => l.status === 401);
      assert.equal(lines.length, nrows);
      const aggLines = lines.filter((l) => l.reason === 'unauthenticated_aggregate');
      assert.equal(aggLines.length, agg.length);
      assert.equal(
        lines.reduce((s, l) => s + (l.count ?? 1), 0),
        sent,
        'log lines summed by count = refusals',
      );

      // What an operator sees: `tollgate usage` counts every refusal.
      const r = await gw.cli(['usage', '--format', 'json']);
      assert.equal(r.code, 0, r.stderr);
      const byTenant = Object.fromEntries(JSON.parse(r.stdout).map((x) => [x.tenant, x]));
      assert.equal(byTenant[''].rejected, sent);
      assert.equal(byTenant[''].requests, sent);
    } finally {
      await gw.stop().catch(() => {});
      await mock.stop();
    }
  });

  test('the bound is configurable and per address: another address is counted apart', async () => {
    const mock = await startMock();
    const gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'all', path_prefix: '/', upstream: 'mock', kind: 'http' }],
      extra: { log: { unauthenticated_per_minute: 5 } },
    });
    try {
      assert.equal(await pipeline(gw.port, 300, { localAddress: '127.0.0.1' }), 300);
      assert.equal(await pipeline(gw.port, 40, { localAddress: '127.0.0.2', writes: 2 }), 40);
      assert.equal(await pipeline(gw.port, 3, { localAddress: '127.0.0.3', writes: 1 }), 3);
      await gw.stop();
      const a = checkRule(await refusals(gw.dbPath, '127.0.0.1'), 5, 300, '127.0.0.1');
      const b = checkRule(await refusals(gw.dbPath, '127.0.0.2'), 5, 40, '127.0.0.2');
      const c = checkRule(await refusals(gw.dbPath, '127.0.0.3'), 5, 3, '127.0.0.3');
      assert.ok(a <= 12 && b <= 12, `rows: ${a}, ${b}`);
      assert.equal(c, 3, 'below the bound every refusal is its own row');
    } finally {
      await gw.stop().catch(() => {});
      await mock.stop();
    }
  });
});
