// `tollgate store copy` (docs/operations.md, "Moving a SQLite store to PostgreSQL"): a SQLite
// store filled through the CLI (tenants, keys, events ingested from an access log, a plan,
// closed invoices) is copied into a private PostgreSQL server (scripts/pg-test.sh), and the
// same `tollgate query`, `report`, `invoice` and `export` answers are read from both. A
// second copy into the now non-empty target is refused and changes nothing.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { bin, freePort, repoRoot, run, tempDir } from './lib/harness.mjs';

const pgScript = path.join(repoRoot, 'scripts', 'pg-test.sh');

describe('store copy: SQLite to PostgreSQL', () => {
  let dir, pgDir, sqliteCfg, pgCfg, pgUrl;
  const tg = (cfg, args, opts) => run(bin, ['-c', cfg, ...args], opts);
  const ok = async (cfg, args) => {
    const r = await tg(cfg, args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r;
  };

  before(async () => {
    dir = await tempDir('tollgate-copy-');
    fs.chmodSync(dir, 0o755); // as root, pg-test.sh runs the server as postgres, inside it
    pgDir = path.join(dir, 'pg');
    const port = await freePort();
    const s = await run(pgScript, ['start', pgDir, String(port)], {
      env: { PG_TEST_FAST: '1' },
      timeoutMs: 60000,
    });
    assert.equal(s.code, 0, s.stderr);
    pgUrl = s.stdout.trim().split('\n').pop();
    sqliteCfg = path.join(dir, 'sqlite.yaml');
    pgCfg = path.join(dir, 'pg.yaml');
    fs.writeFileSync(sqliteCfg, `store: sqlite:${path.join(dir, 'src.db')}\n`);
    fs.writeFileSync(pgCfg, `store: "${pgUrl}"\n`);

    // Two tenants, a key each, 3000 requests over October and November 2026 (statuses
    // 2xx, 4xx, 5xx), a plan, and both months closed for both tenants.
    await ok(sqliteCfg, ['tenant', 'add', 'acme', '--name', 'Acme Ltd']);
    await ok(sqliteCfg, ['tenant', 'add', 'beta']);
    await ok(sqliteCfg, ['key', 'create', '--tenant', 'acme', '--name', 'ci']);
    await ok(sqliteCfg, ['key', 'create', '--tenant', 'beta']);
    const lines = [];
    const statuses = [200, 200, 201, 404, 500, 502, 200];
    for (let i = 0; i < 3000; i++) {
      const tenant = i % 3 ? 'acme' : 'beta';
      const mon = i % 2 ? 'Oct' : 'Nov';
      const day = String((i % 30) + 1).padStart(2, '0');
      const hh = String(i % 24).padStart(2, '0');
      const mm = String(i % 60).padStart(2, '0');
      lines.push(
        `10.0.0.${i % 200} - ${tenant} [${day}/${mon}/2026:${hh}:${mm}:${mm} +0000] ` +
          `"POST /v1/chat/${i % 17} HTTP/1.1" ${statuses[i % 7]} ${(i * 7919) % 90000} "-" "curl"`,
      );
    }
    const log = path.join(dir, 'access.log');
    fs.writeFileSync(log, lines.join('\n') + '\n');
    await ok(sqliteCfg, ['ingest', '--format', 'combined', '--tenant-field', 'user', log]);
    await ok(sqliteCfg, [
      'plan', 'set', 'pro', '--base', '49', '--from', '2026-10',
      '--meter', 'requests unit 100', '--meter', 'billable graduated 2:1000 -:500 included=1',
      '--meter', 'gb unit 0.09',
    ]);
    for (const t of ['acme', 'beta']) await ok(sqliteCfg, ['tenant', 'set-plan', t, 'pro', '--from', '2026-10']);
    for (const m of ['2026-10', '2026-11'])
      await ok(sqliteCfg, ['invoice', '--all', '--month', m, '--close', '--out', dir]);
  });

  after(async () => {
    if (pgDir) await run(pgScript, ['stop', pgDir, '--rm'], { timeoutMs: 60000 });
  });

  test('copies every row, checks counts and sums, and both stores answer alike', async () => {
    const r = await tg(sqliteCfg, ['store', 'copy', '--to', pgUrl], { timeoutMs: 60000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /from a sqlite store into a postgres store/);
    assert.match(r.stderr, /usage_events: 3000 rows copied/);
    assert.match(r.stdout, /usage_events +3000 +3000\n/);
    assert.match(r.stdout, /invoices +4 +4\n/);
    assert.match(r.stdout, /done, the target holds what the source holds/);
    assert.doesNotMatch(r.stdout + r.stderr, /DIFFERENT/);

    const same = async (args) => {
      const a = await ok(sqliteCfg, args);
      const b = await ok(pgCfg, args);
      assert.equal(b.stdout, a.stdout, args.join(' '));
      assert.ok(a.stdout.length > 20, `${args.join(' ')} printed something`);
    };
    await same(['query', 'SELECT * FROM tenants ORDER BY id', '--format', 'json']);
    await same(['query', 'SELECT * FROM keys ORDER BY id', '--format', 'json']);
    await same(['query', 'SELECT * FROM events ORDER BY id', '--format', 'csv']);
    await same(['query', 'SELECT * FROM daily ORDER BY day, tenant', '--format', 'csv']);
    await same(['query', 'SELECT * FROM invoices ORDER BY tenant_id, month', '--format', 'json']);
    await same(['query', 'SELECT * FROM invoice_lines ORDER BY tenant_id, month, seq', '--format', 'csv']);
    await same([
      'query',
      'SELECT tenant, count(*) AS n, sum(cost_micros) AS cost, sum(bytes_out) AS bytes FROM events GROUP BY tenant ORDER BY tenant',
    ]);
    for (const rep of ['daily', 'hourly', 'keys', 'endpoints', 'transfer', 'cache'])
      await same(['report', rep, '--from', '2026-10-05', '--to', '2026-11-20', '--format', 'csv']);
    await same(['report', 'daily', '--tenant', 'beta', '--format', 'json']);
    await same(['plan', 'list', '--format', 'json']);
    await same(['invoice', '--tenant', 'acme', '--month', '2026-10', '--format', 'json']);
    await same(['invoice', '--tenant', 'beta', '--month', '2026-11', '--format', 'csv']);
    await same(['export', '--format', 'jsonl', '--from', '2026-10-01', '--to', '2026-11-30']);
    await same(['key', 'list']);
    await same(['tenant', 'list']);
  });

  test('a target that holds rows is refused, and nothing changes', async () => {
    const before = await ok(pgCfg, ['query', 'SELECT count(*) AS n FROM usage_events']);
    const r = await tg(sqliteCfg, ['store', 'copy', '--to', pgUrl]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /target store is not empty \(tenants has 2 rows\)/);
    assert.doesNotMatch(r.stderr, /postgres:\/\/postgres@/); // the URL is never echoed
    const again = await ok(pgCfg, ['query', 'SELECT count(*) AS n FROM usage_events']);
    assert.equal(again.stdout, before.stdout);
    const u = await tg(sqliteCfg, ['store', 'copy']);
    assert.equal(u.code, 2);
    assert.match(u.stderr, /usage: tollgate store copy --to URL/);
  });

  // SQLite keeps the bytes it is given: an access log line's raw path bytes (not UTF-8),
  // a name with a byte cut out of a character. A UTF8 database refused them (22021) and the
  // copy stopped halfway with tenants already in, so running it again was refused too. They
  // arrive as '?', as the PostgreSQL writer stores them.
  test('text a UTF8 database refuses is copied with its bad bytes as ?', async () => {
    const raw = path.join(dir, 'raw.db');
    const rawCfg = path.join(dir, 'raw.yaml');
    fs.writeFileSync(rawCfg, `store: sqlite:${raw}\n`);
    await ok(rawCfg, ['tenant', 'add', 'acme']);
    const u = await run('sqlite3', [raw, "UPDATE tenants SET name = CAST(X'41636D6520C3' AS TEXT)"]);
    assert.equal(u.code, 0, u.stderr);
    const log = path.join(dir, 'raw.log');
    fs.writeFileSync(log, Buffer.concat([
      Buffer.from('10.0.0.1 - acme [01/Oct/2026:10:00:00 +0000] "GET /a'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('b HTTP/1.1" 200 12 "-" "curl"\n'),
    ]));
    await ok(rawCfg, ['ingest', '--format', 'combined', '--tenant-field', 'user', log]);
    const schema = `raw_${process.pid}`;
    const c = await run('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', pgUrl, '-c', `CREATE SCHEMA ${schema}`]);
    assert.equal(c.code, 0, c.stderr);
    const target = `${pgUrl}?options=-csearch_path%3D${schema}`;
    const r = await tg(rawCfg, ['store', 'copy', '--to', target], { timeoutMs: 60000 });
    assert.equal(r.code, 0, r.stderr);
    const q = await run('psql', ['-X', '-A', '-t', target, '-c',
      "SELECT (SELECT path FROM usage_events) || '|' || (SELECT name FROM tenants)"]);
    assert.equal(q.stdout.trim(), '/a??b|Acme ?');
  });

  // Every local user reads a process's arguments (ps, /proc/PID/cmdline) while it runs:
  // the password of --to (and --from) is overwritten there once parsed. The target here
  // accepts and never answers, so the copy waits out its connect_timeout meanwhile.
  test('the password of --to is not left in the process arguments', async () => {
    const silent = net.createServer(() => {});
    await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const url = `postgres://u:pw-SECRET@127.0.0.1:${silent.address().port}/db?password=also-SECRET`;
    const child = spawn(bin, ['-c', sqliteCfg, 'store', 'copy', '--to', url], { stdio: 'ignore' });
    try {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const cmdline = fs.readFileSync(`/proc/${child.pid}/cmdline`, 'latin1');
      assert.match(cmdline, /store\0copy\0--to\0postgres:\/\/u:x+@127\.0\.0\.1:\d+\/db\?password=x+\0/);
      assert.doesNotMatch(cmdline, /SECRET/);
    } finally {
      child.kill('SIGKILL');
      silent.close();
    }
  });

  test('PostgreSQL back to a new SQLite file: the same rows again', async () => {
    const back = path.join(dir, 'back.db');
    const r = await tg(pgCfg, ['store', 'copy', '--to', `sqlite:${back}`], { timeoutMs: 60000 });
    assert.equal(r.code, 0, r.stderr);
    const backCfg = path.join(dir, 'back.yaml');
    fs.writeFileSync(backCfg, `store: sqlite:${back}\n`);
    for (const q of ['SELECT * FROM events ORDER BY id', 'SELECT * FROM invoice_meters ORDER BY 1, 2, 3, 4']) {
      const a = await ok(sqliteCfg, ['query', q, '--format', 'csv']);
      const b = await ok(backCfg, ['query', q, '--format', 'csv']);
      assert.equal(b.stdout, a.stdout, q);
    }
  });
});
