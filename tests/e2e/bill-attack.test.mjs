// Hostile logs against `tollgate ingest` with the real binary: lines that would bill another
// tenant, make a record free, collapse distinct requests into one, or hide a cut .gz. Each
// case was a finding of the issue 12 review (the unit tests beside the parsers hold the
// details); here the store is checked as a user would see it.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

import { bin, run, sqlite, tempDir, toYaml } from './lib/harness.mjs';

describe('bill-attack: hostile logs', () => {
  let dir, cfg, db;
  const tg = (args, opts) => run(bin, ['-c', cfg, ...args], opts);
  const file = (name, text) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };
  const count = async (where) =>
    (await sqlite(db, `select count(*) n from usage_events where ${where}`))[0].n;

  before(async () => {
    dir = await tempDir('tollgate-billattack-');
    db = path.join(dir, 'tollgate.db');
    cfg = path.join(dir, 'tollgate.yaml');
    fs.writeFileSync(cfg, toYaml({ store: `sqlite:${db}` }));
    for (const t of ['acme', 'victim']) assert.equal((await tg(['tenant', 'add', t])).code, 0);
  });

  test('apigw: an injected second tenant_id bills nobody else; a far epoch is refused', async () => {
    const p = file('a.json',
      '{"requestId":"r1","requestTimeEpoch":"1796083200000","status":"200","tenant_id":"acme",' +
      '"ua":"x","tenant_id":"victim"}\n' +
      '{"requestId":"r2","requestTimeEpoch":"999999999999999999","status":"200","tenant_id":"acme"}\n');
    const r = await tg(['ingest', '--format', 'apigw-json', p]);
    assert.match(r.stderr, /a\.json:1: .*duplicate/);
    assert.match(r.stderr, /a\.json:2: bad requestTimeEpoch/);
    assert.equal(await count("tenant = 'victim'"), 0);
    assert.equal(await count("request_id in ('r1', 'r2')"), 0);
  });

  test('clf: identical lines of one second are distinct requests, counted once each', async () => {
    const line = '192.0.2.9 - acme [30/Nov/2026:23:59:59 +0000] "GET /poll HTTP/1.1" 200 7\n';
    const p = file('same.log', line.repeat(50));
    let r = await tg(['ingest', '--format', 'clf', '--tenant-field', 'user', p]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /50 records, 50 stored, 0 duplicates/);
    r = await tg(['ingest', '--format', 'clf', '--tenant-field', 'user', p]);
    assert.match(r.stdout, /0 stored, 50 duplicates/);
    assert.equal(await count("path = '/poll'"), 50);
  });

  test('clf: a line naming the victim as tenant while carrying acme\'s key bills neither', async () => {
    const k = await tg(['key', 'create', '--tenant', 'acme']);
    assert.equal(k.code, 0, k.stderr);
    const secret = /^secret: (\S+)$/m.exec(k.stdout)[1];
    const p = file('mismatch.log',
      `192.0.2.9 - victim [30/Nov/2026:23:59:58 +0000] "GET /mm?api_key=${secret} HTTP/1.1" 200 7\n`);
    const r = await tg(['ingest', '--format', 'clf', '--tenant-field', 'user', p]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^1 record named a tenant that does not hold the record's key: stored for no tenant, reason tenant_mismatch/m);
    assert.equal(await count("path = '/mm' and tenant = '' and reason = 'tenant_mismatch'"), 1);
    assert.equal(await count("path = '/mm' and tenant in ('acme', 'victim')"), 0);
    assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret));
  });

  test('clf: the key parameter twice is malformed; a cut .gz fails its file', async () => {
    const dup = file('dup.log',
      '192.0.2.9 - - [30/Nov/2026:23:59:59 +0000] "GET /d?api_key=tg_victim&api_key=tg_mine HTTP/1.1" 200 7\n');
    let r = await tg(['ingest', '--format', 'clf', dup]);
    assert.match(r.stderr, /dup\.log:1: the key parameter api_key is given twice/);
    assert.ok(!r.stderr.includes('tg_victim'));
    assert.equal(await count("path = '/d'"), 0);

    const gz = zlib.gzipSync(
      Array.from({ length: 3000 }, (_, i) =>
        `192.0.2.9 - acme [01/Dec/2026:00:00:00 +0000] "GET /gz/${i} HTTP/1.1" 200 7\n`).join(''));
    const cut = file('cut.log.gz', gz.subarray(0, gz.length >> 1));
    r = await tg(['ingest', '--format', 'clf', '--tenant-field', 'user', cut]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cut\.log\.gz: truncated gzip data/);
    assert.ok((await count("path like '/gz/%'")) > 0, 'the records before the cut are kept');
  });

  test('invoice --all --out DIR writes no file through a symlink planted there', async () => {
    assert.equal((await tg(['plan', 'set', 'p', '--from', '2026-11', '--meter', 'requests unit 1'])).code, 0);
    for (const t of ['acme', 'victim'])
      assert.equal((await tg(['tenant', 'set-plan', t, 'p', '--from', '2026-11'])).code, 0);
    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    const target = file('precious.txt', 'keep me\n');
    fs.symlinkSync(target, path.join(out, 'victim-2026-11.csv'));
    const r = await tg(['invoice', '--all', '--month', '2026-11', '--format', 'csv', '--out', out]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot write .*victim-2026-11\.csv/);
    assert.equal(fs.readFileSync(target, 'utf8'), 'keep me\n');
    assert.match(fs.readFileSync(path.join(out, 'acme-2026-11.csv'), 'utf8'), /^tenant,month,kind/);
  });
});
