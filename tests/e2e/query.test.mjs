// query, report, backup, restore and archive (issue 12) with the real binary against a
// serving gateway's store: writes refused and not attempted, reports over events with
// known instants around the 2026-11-30/12-01 00:00:00 UTC boundary, a backup taken while
// requests keep coming (the copy opens, passes its integrity check and holds the events),
// restore refused while the gateway runs and done once it is stopped, and the archive
// round trip (exported, read back, purged; the daily aggregates kept).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { createTenantKey, curlJson, run, sqlite, startGateway, startMock, waitFor } from './lib/harness.mjs';

const NOV30 = 1795996800000000; // 2026-11-30T00:00:00Z, µs
const DEC01 = 1796083200000000; // 2026-12-01T00:00:00Z
const H = 3600000000;

// Events of tenant "known", written into the store as the writer would (the event rows
// and their usage_daily rows): ids 1..4, far below the gateway's time-ordered ids.
const known = [
  [1, NOV30 + 10 * H, 'k1', 'POST', '/v1/chat', 200, 'billable', 100000, 1000, 2000000, 100, 50],
  [2, NOV30 + 10 * H + 1, 'k1', 'POST', '/v1/chat', 200, 'billable', 300000, 3000, 1000000, 300, 150],
  [3, DEC01 - 1, 'k1', 'GET', '/v1/models', 200, 'billable', 50000, 0, 2400, null, null],
  [4, DEC01, 'k2', 'POST', '/v1/chat', 502, 'failed', 1000000, 10, 90, null, null],
];

async function seedKnown(db) {
  const rows = known
    .map(([id, ts, key, m, p, st, out, lat, bin, bout, ti, to]) =>
      `(${id}, ${ts}, 'known', '${key}', '${m}', '${p}', ${st}, '${out}', ${lat}, ${bin}, ${bout}, ` +
      `${ti ?? 'NULL'}, ${to ?? 'NULL'}, 0)`)
    .join(', ');
  await sqlite(
    db,
    'INSERT INTO usage_events (id, ts_us, tenant, key_id, method, path, status, outcome, latency_us, ' +
      `bytes_in, bytes_out, tokens_in, tokens_out, cost_micros) VALUES ${rows}; ` +
      'INSERT INTO usage_daily (tenant_id, day, requests, billable, failed, bytes_in, bytes_out, tokens_in, tokens_out) VALUES ' +
      "('known', '2026-11-30', 3, 3, 0, 4000, 3002400, 400, 200), ('known', '2026-12-01', 1, 0, 1, 10, 90, 0, 0)",
  );
}

describe('query, report, backup, restore, archive', () => {
  let mock, gw, acme;
  before(async () => {
    mock = await startMock();
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'all', path_prefix: '/', upstream: 'mock', kind: 'http' }],
    });
    acme = await createTenantKey(gw, 'acme');
    await waitFor(async () => (await curlJson(`${gw.url}/x`, { headers: { Authorization: `Bearer ${acme.secret}` } })).status === 200);
    await seedKnown(gw.dbPath);
  });
  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  test('query: reads the views in every format; writes refused, not attempted', async () => {
    let r = await gw.cli(['query', "SELECT tenant, count(*) AS n FROM events WHERE tenant = 'known' GROUP BY tenant", '--format', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [{ tenant: 'known', n: 4 }]);
    r = await gw.cli(['query', "SELECT id, time, day FROM events WHERE tenant = 'known' ORDER BY id", '--format', 'csv']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      'id,time,day\n1,2026-11-30T10:00:00Z,2026-11-30\n2,2026-11-30T10:00:00Z,2026-11-30\n' +
        '3,2026-11-30T23:59:59Z,2026-11-30\n4,2026-12-01T00:00:00Z,2026-12-01\n',
    );
    r = await gw.cli(['query', 'SELECT * FROM keys']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ID\s+TENANT\s+PREFIX\s+NAME\s+STATUS/);
    assert.ok(r.stdout.includes(acme.keyId));
    const [{ h }] = await sqlite(gw.dbPath, 'SELECT hex(sha256) h FROM api_keys LIMIT 1');
    assert.ok(!r.stdout.toUpperCase().includes(h), 'no key hash in the keys view');

    const before = await sqlite(gw.dbPath, 'SELECT count(*) n FROM tenants');
    const vacuum = path.join(gw.dir, 'vacuum.db');
    const attach = path.join(gw.dir, 'attach.db');
    for (const [sql, re] of [
      ["DELETE FROM tenants", /could write/],
      ["INSERT INTO tenants (id, created_us) VALUES ('evil', 0)", /could write/],
      ['DROP TABLE usage_daily', /could write/],
      ["UPDATE api_keys SET status = 'revoked'", /could write/],
      [`VACUUM INTO '${vacuum}'`, /could write/],
      [`ATTACH '${attach}' AS a`, /ATTACH is not allowed/],
      ['PRAGMA query_only = 0', /PRAGMA query_only is not allowed/],
      ['PRAGMA journal_mode = DELETE', /PRAGMA journal_mode/],
      ["SELECT load_extension('/tmp/x')", /load_extension/],
      ['SELECT 1; DELETE FROM tenants', /one statement per query/],
      ['SELECT sha256 FROM keys', /no such column: sha256/],
    ]) {
      r = await gw.cli(['query', sql]);
      assert.equal(r.code, 2, `${sql}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, re, sql);
    }
    assert.deepEqual(await sqlite(gw.dbPath, 'SELECT count(*) n FROM tenants'), before);
    assert.ok(!fs.existsSync(vacuum) && !fs.existsSync(attach), 'no file created');
    // The gateway still serves and records.
    assert.equal((await curlJson(`${gw.url}/x`, { headers: { Authorization: `Bearer ${acme.secret}` } })).status, 200);
  });

  test('query streams a large result', async () => {
    const r = await gw.cli(['query', 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 250000) SELECT x, x * 2 AS y FROM c', '--format', 'csv']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 250001);
    assert.equal(lines[250000], '250000,500000');
  });

  test('reports match the known events, --from/--to inclusive, --tenant', async () => {
    let r = await gw.cli(['report', 'daily', '--tenant', 'known', '--format', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [
      { day: '2026-11-30', tenant: 'known', requests: 3, billable: 3, tokens_in: 400, tokens_out: 200, avg_tokens_per_request: 200.0 },
      { day: '2026-12-01', tenant: 'known', requests: 1, billable: 0, tokens_in: 0, tokens_out: 0, avg_tokens_per_request: 0.0 },
    ]);
    r = await gw.cli(['report', 'hourly', '--from', '2026-11-30', '--to', '2026-11-30', '--tenant', 'known', '--format', 'csv']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      'hour,day,tenant,requests,billable,tokens_in,tokens_out,avg_tokens_per_request\n' +
        '2026-11-30T10:00:00Z,2026-11-30,known,2,2,400,200,300.0\n' +
        '2026-11-30T23:00:00Z,2026-11-30,known,1,1,0,0,0.0\n',
    );
    r = await gw.cli(['report', 'keys', '--to', '2026-12-01', '--tenant', 'known', '--format', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const keys = JSON.parse(r.stdout);
    assert.deepEqual(keys.map((k) => [k.day, k.key_id, k.requests, k.mb_sent, k.mb_received, k.avg_response_ms]), [
      ['2026-11-30', 'k1', 3, 3.002, 0.004, 150.0],
      ['2026-12-01', 'k2', 1, 0.0, 0.0, 1000.0],
    ]);
    r = await gw.cli(['report', 'transfer', '--from', '2026-12-01', '--to', '2026-12-01', '--tenant', 'known', '--format', 'json']);
    // 100 bytes: 1e-7 GB, 0 at 6 decimals
    assert.deepEqual(JSON.parse(r.stdout).map((k) => [k.key_id, k.bytes_sent, k.gb_total]), [['k2', 90, 0]]);
    r = await gw.cli(['report', 'endpoints', '--tenant', 'known']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^2026-11-30\s+known\s+k1\s+POST\s+\/v1\/chat\s+2\s+3000000\s+3000\.0$/m);
    for (const name of ['cache', 'models', 'tools']) assert.equal((await gw.cli(['report', name])).code, 0, name);
    for (const [args, re] of [
      [['report', 'nope'], /unknown report "nope" \(reports: daily, hourly/],
      [['report', 'daily', '--from', '2026-12-02', '--to', '2026-12-01'], /after --to/],
      [['report', 'daily', '--from', '2026-13-01'], /invalid --from/],
      [['report', 'daily', '--tenant', 'bad id'], /tenant/],
    ]) {
      r = await gw.cli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
  });

  test('backup while the gateway serves; restore refused while it runs, done once stopped', async () => {
    const auth = { Authorization: `Bearer ${acme.secret}` };
    let stop = false;
    let sent = 0;
    const load = (async () => {
      while (!stop) {
        if ((await curlJson(`${gw.url}/load?size=100`, { headers: auth })).status === 200) sent++;
      }
    })();
    await waitFor(() => sent >= 5);
    const copy = path.join(gw.dir, 'copy.db');
    let r = await gw.cli(['backup', copy]);
    const during = sent;
    await waitFor(() => sent >= during + 5, { message: 'requests go on after the backup' });
    stop = true;
    await load;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /integrity ok/);
    assert.deepEqual(await sqlite(copy, 'PRAGMA integrity_check'), [{ integrity_check: 'ok' }]);
    const [{ n, d }] = await sqlite(copy, "SELECT (SELECT count(*) FROM usage_events WHERE tenant = 'acme') n, (SELECT sum(requests) FROM usage_daily WHERE tenant_id = 'acme') d");
    assert.ok(n >= 5, `the copy holds the events: ${n}`);
    assert.equal(n, d, 'one snapshot: events and daily sums agree');

    r = await gw.cli(['backup', copy]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already exists \(--force/);
    r = await gw.cli(['restore', copy]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /a gateway is running/);
    r = await gw.cli(['restore', gw.configPath]);
    assert.equal(r.code, 1);

    await waitFor(async () => (await sqlite(gw.dbPath, "SELECT count(*) n FROM usage_events WHERE tenant = 'acme'"))[0].n > n);
    await gw.stop();
    r = await gw.cli(['restore', gw.configPath]);
    assert.equal(r.code, 1, 'not a database: refused');
    assert.match(r.stderr, /restore: /);
    r = await gw.cli(['restore', copy]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /kept in .*tollgate\.db\.bak/);
    assert.deepEqual(await sqlite(gw.dbPath, "SELECT count(*) n FROM usage_events WHERE tenant = 'acme'"), [{ n }]);
    assert.ok(fs.existsSync(`${gw.dbPath}.bak`));
    await gw.restart();
    assert.equal((await curlJson(`${gw.url}/x`, { headers: auth })).status, 200, 'serves on the restored store');
  });

  test('archive: exported, read back, purged; daily kept; never overwritten', async () => {
    const out = path.join(gw.dir, 'nov.jsonl.zst');
    let r = await gw.cli(['archive', '--before', '2026-12-01', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^archived 3 events before 2026-12-01 into .*; purged 3$/m);
    const z = await run('zstd', ['-dc', out]);
    assert.equal(z.code, 0, z.stderr);
    const lines = z.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((e) => [e.id, e.ts_us, e.key_id]), [[1, NOV30 + 10 * H, 'k1'], [2, NOV30 + 10 * H + 1, 'k1'], [3, DEC01 - 1, 'k1']]);
    assert.equal(lines[2].path, '/v1/models');
    assert.deepEqual(await sqlite(gw.dbPath, "SELECT id FROM usage_events WHERE tenant = 'known'"), [{ id: 4 }]);
    r = await gw.cli(['report', 'daily', '--tenant', 'known', '--to', '2026-11-30', '--format', 'json']);
    assert.equal(JSON.parse(r.stdout)[0].requests, 3, 'usage_daily kept');
    r = await gw.cli(['archive', '--before', '2026-12-02', '--out', out]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already exists/);
    assert.deepEqual(await sqlite(gw.dbPath, "SELECT count(*) n FROM usage_events WHERE tenant = 'known'"), [{ n: 1 }]);
    r = await gw.cli(['archive', '--before', 'yesterday', '--out', `${out}.2`]);
    assert.equal(r.code, 2);
  });
});
