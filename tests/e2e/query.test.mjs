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

import {
  createTenantKey,
  curlJson,
  eventId,
  isPgUrl,
  run,
  sqlDialect,
  sqlite,
  startGateway,
  startMock,
  usagePartitions,
  waitFor,
} from './lib/harness.mjs';

const NOV30 = 1795996800000000; // 2026-11-30T00:00:00Z, µs
const DEC01 = 1796083200000000; // 2026-12-01T00:00:00Z
const H = 3600000000;
// TG_E2E_PG_URL: every gateway's store is a PostgreSQL schema (make e2e-pg).
const pg = Boolean(process.env.TG_E2E_PG_URL);

// Events of tenant "known", written into the store as the writer would (the event rows
// and their usage_daily rows, ids from their instants as tg_event_new_id makes them, so
// PostgreSQL files them into their month's partition); `ids` holds them as text.
const known = [
  [1, NOV30 + 10 * H, 'k1', 'POST', '/v1/chat', 200, 'billable', 100000, 1000, 2000000, 100, 50],
  [2, NOV30 + 10 * H + 1, 'k1', 'POST', '/v1/chat', 200, 'billable', 300000, 3000, 1000000, 300, 150],
  [3, DEC01 - 1, 'k1', 'GET', '/v1/models', 200, 'billable', 50000, 0, 2400, null, null],
  [4, DEC01, 'k2', 'POST', '/v1/chat', 502, 'failed', 1000000, 10, 90, null, null],
];
const ids = known.map(([n, ts]) => String(eventId(ts, n)));

async function seedKnown(db) {
  await usagePartitions(db, known.map((k) => k[1]));
  const rows = known
    .map(([n, ts, key, m, p, st, out, lat, bin, bout, ti, to]) =>
      `(${eventId(ts, n)}, ${ts}, 'known', '${key}', '${m}', '${p}', ${st}, '${out}', ${lat}, ${bin}, ${bout}, ` +
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
      `id,time,day\n${ids[0]},2026-11-30T10:00:00Z,2026-11-30\n${ids[1]},2026-11-30T10:00:00Z,2026-11-30\n` +
        `${ids[2]},2026-11-30T23:59:59Z,2026-11-30\n${ids[3]},2026-12-01T00:00:00Z,2026-12-01\n`,
    );
    r = await gw.cli(['query', 'SELECT * FROM keys']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ID\s+TENANT\s+PREFIX\s+NAME\s+STATUS/);
    assert.ok(r.stdout.includes(acme.keyId));
    const [{ h }] = await sqlite(gw.dbPath, `SELECT ${sqlDialect(gw.dbPath).hex('sha256')} h FROM api_keys LIMIT 1`);
    assert.ok(!r.stdout.toUpperCase().includes(h), 'no key hash in the keys view');

    const before = await sqlite(gw.dbPath, 'SELECT count(*) n FROM tenants');
    const vacuum = path.join(gw.dir, 'vacuum.db');
    const attach = path.join(gw.dir, 'attach.db');
    // PostgreSQL's read-only transaction: a statement that returns no rows is refused
    // before it runs, a writing one by its plan; SQLite's refusals name the statement's kind.
    const refusals = pg
      ? [
          ['DELETE FROM tenants', /returns no rows/],
          ["INSERT INTO tenants (id, created_us) VALUES ('evil', 0)", /returns no rows/],
          ['DROP TABLE usage_daily', /returns no rows/],
          ["UPDATE api_keys SET status = 'revoked'", /returns no rows/],
          ['WITH d AS (DELETE FROM tenants RETURNING id) SELECT * FROM d', /could write/],
          ['SELECT * FROM tenants FOR UPDATE', /could write/],
          ['SELECT 1; DELETE FROM tenants', /one statement per query/],
          ['SELECT sha256 FROM keys', /column "sha256" does not exist/],
        ]
      : null;
    for (const [sql, re] of refusals ?? [
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

  test('a query that never ends is cancelled at --timeout (60 s unless given); bad values refused', async () => {
    const endless = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c';
    let r = await gw.cli(['query', endless, '--timeout', '400ms']);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, 'tollgate: query: cancelled after 400 ms (the query timeout): narrow it down, or give it longer with --timeout\n');
    for (const [v, re] of [
      ['0', /a positive duration/],
      ['-1s', /a positive duration/],
      ['1.5s', /a positive duration/],
      ['5 s', /a positive duration/],
      ['1w', /a positive duration/],
      ['2d', /at most 24h/],
      ['25h', /at most 24h/],
      ['99999999999999999999', /at most 24h/],
    ]) {
      r = await gw.cli(['query', 'SELECT 1', '--timeout', v]);
      assert.equal(r.code, 2, `${v}: ${r.stderr}`);
      assert.match(r.stderr, re, v);
    }
    r = await gw.cli(['report', 'daily', '--tenant', 'known', '--timeout', '30s', '--format', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).length, 2);
    // The handle's snapshot was let go: the gateway still writes and a new query sees it.
    assert.equal((await curlJson(`${gw.url}/x`, { headers: { Authorization: `Bearer ${acme.secret}` } })).status, 200);
    r = await gw.cli(['query', "SELECT count(*) AS n FROM events WHERE tenant = 'known'", '--timeout', '1m', '--format', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [{ n: 4 }]);
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

  test('backup while the gateway serves; restore refused while it runs, done once stopped', {
    skip: pg && 'backup and restore are SQLite\'s: a PostgreSQL store refuses them (pg_dump, next test)',
  }, async () => {
    const auth = { Authorization: `Bearer ${acme.secret}` };
    let stop = false;
    let sent = 0;
    const load = (async () => {
      while (!stop) {
        if ((await curlJson(`${gw.url}/load?size=100`, { headers: auth })).status === 200) sent++;
      }
    })();
    // Answered requests reach the store within a flush window, not at once: wait until five
    // are stored, or the copy may be taken before they are (seen under load: 3 of 5).
    await waitFor(async () => {
      const [{ n }] = await sqlite(gw.dbPath, "SELECT count(*) AS n FROM usage_events WHERE tenant = 'acme'");
      return n >= 5;
    }, { message: 'five events stored before the backup' });
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

  test('backup and restore refuse a PostgreSQL store, naming pg_dump and pg_restore', {
    skip: !pg && 'a SQLite store is backed up and restored (previous test)',
  }, async () => {
    const copy = path.join(gw.dir, 'copy.db');
    let r = await gw.cli(['backup', copy]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'tollgate: backup: a postgres store is backed up with pg_dump (see docs/operations.md, "The store")\n');
    assert.ok(!fs.existsSync(copy) && !fs.existsSync(`${copy}.partial`), 'no file made');
    // The same answer whether a gateway runs or not (not "stop it first", then this).
    const refused = 'tollgate: restore: a postgres store is restored with pg_restore (see docs/operations.md, "The store")\n';
    r = await gw.cli(['restore', copy]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, refused);
    await gw.stop();
    r = await gw.cli(['restore', copy]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, refused);
    await gw.restart();
    assert.equal((await curlJson(`${gw.url}/x`, { headers: { Authorization: `Bearer ${acme.secret}` } })).status, 200);
  });

  test('archive: exported, read back, purged; daily kept; never overwritten', async () => {
    const out = path.join(gw.dir, 'nov.jsonl.zst');
    let r = await gw.cli(['archive', '--before', '2026-12-01', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^archived 3 events before 2026-12-01 into .*; purged 3$/m);
    const z = await run('zstd', ['-dc', out]);
    assert.equal(z.code, 0, z.stderr);
    const lines = z.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    // ids past 2^53: read from the text, not through JSON.parse
    const textIds = z.stdout.trimEnd().split('\n').map((l) => /"id":(\d+)/.exec(l)[1]);
    assert.deepEqual(textIds, ids.slice(0, 3));
    assert.deepEqual(lines.map((e) => [e.ts_us, e.key_id]), [[NOV30 + 10 * H, 'k1'], [NOV30 + 10 * H + 1, 'k1'], [DEC01 - 1, 'k1']]);
    assert.equal(lines[2].path, '/v1/models');
    assert.deepEqual(await sqlite(gw.dbPath, "SELECT CAST(id AS TEXT) AS id FROM usage_events WHERE tenant = 'known'"), [{ id: ids[3] }]);
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
