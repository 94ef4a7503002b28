// Encryption at rest (docs/encryption.md): with a KEK configured, the spool written while
// the store cannot be written is sealed (no event text in it), survives a restart, refuses
// a restart without its KEK (naming the KEK id), and is replayed with it; an archive is
// sealed and `archive read` gives its events back.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { createTenantKey, isPgUrl, request, sqlite, startGateway, startMock, toYaml, waitFor, waitForEvent } from './lib/harness.mjs';

const SECRET_PATH = '/spool-secret-path-7f3a';

/** The KEK id tollgate names: SHA-256("tollgate kek id" || key), first 8 bytes in hex. */
function kekId(key) {
  return crypto.createHash('sha256').update(Buffer.concat([Buffer.from('tollgate kek id'), key])).digest().subarray(0, 8).toString('hex');
}

/** The two signature headers of docs/signing.md for a GET without a body at Unix second ts. */
function sign(secret, target, ts) {
  const [p, q = ''] = target.split('?');
  const query = q.split('&').filter((x) => x !== '').sort().join('&');
  const canonical = `GET\n${p}\n${query}\n${ts}\n${crypto.createHash('sha256').update('').digest('hex')}`;
  return { 'X-Tollgate-Timestamp': String(ts), 'X-Tollgate-Signature': `v1=${crypto.createHmac('sha256', secret).update(canonical).digest('hex')}` };
}

/** Another process holds the store's write lock until release() (as durability.test.mjs). */
async function lockStore(dbPath) {
  const pg = isPgUrl(dbPath);
  const locker = pg
    ? spawn('psql', ['-X', '-q', '-A', '-t', dbPath], { stdio: ['pipe', 'pipe', 'pipe'] })
    : spawn('sqlite3', [dbPath], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  locker.stdout.on('data', (d) => (out += d));
  locker.stdin.write(pg ? "BEGIN;\nLOCK TABLE usage_events IN EXCLUSIVE MODE;\nSELECT 'locked';\n" : "BEGIN EXCLUSIVE;\nSELECT 'locked';\n");
  await waitFor(() => out.includes('locked'), { message: 'the locker holds the lock' });
  return async () => {
    locker.stdin.end(pg ? 'COMMIT;\n' : 'COMMIT;\n.quit\n');
    await new Promise((r) => locker.once('exit', r));
  };
}

describe('encryption at rest', () => {
  let mock, gw, kekDir, kek;
  before(async () => {
    mock = await startMock();
    kekDir = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'tg-enc-'));
    kek = crypto.randomBytes(32);
    fs.writeFileSync(path.join(kekDir, 'kek'), `${kek.toString('hex')}\n`, { mode: 0o600 });
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [
        { name: 'signed', path_prefix: '/signed/', upstream: 'mock', signed: 'required' },
        { name: 'api', path_prefix: '/', upstream: 'mock', kind: 'http' },
      ],
      extra: { encryption: { kek_file: path.join(kekDir, 'kek') } },
    });
  });
  after(async () => {
    await gw?.stop();
    await mock?.stop();
    fs.rmSync(kekDir, { recursive: true, force: true });
  });

  test('the spool is sealed, needs its KEK after a restart, and is replayed with it', async () => {
    const k = await createTenantKey(gw, 'acme');
    const headers = { 'x-api-key': k.secret };
    await waitFor(async () => (await request(`${gw.url}/warm`, { headers })).status === 200, { message: 'key loaded' });
    const release = await lockStore(gw.dbPath);
    let released = false;
    try {
      for (let i = 0; i < 20; i++) assert.equal((await request(`${gw.url}${SECRET_PATH}?i=${i}`, { headers })).status, 200);
      // Stopped while the store is locked: the events stay in the spool.
      assert.equal((await gw.stop()).code, 0);
      const spool = fs.readFileSync(gw.spoolPath);
      assert.equal(spool.subarray(0, 8).toString('latin1'), 'TGSPOOLS', 'a sealed spool header');
      assert.equal(spool.subarray(16, 24).toString('hex'), kekId(kek), 'the header names the KEK id');
      assert.ok(spool.length > 24 + 20 * 1000, `20 events in the spool (${spool.length} bytes)`);
      assert.ok(!spool.includes(SECRET_PATH), 'no request path in clear');
      assert.ok(!spool.includes('acme'), 'no tenant id in clear');

      // Without the KEK the gateway refuses to start, naming the KEK id; the spool is kept.
      const plain = { ...gw.config, routes: gw.config.routes.filter((r) => !r.signed) }; // signed routes need a KEK
      delete plain.encryption;
      fs.writeFileSync(gw.configPath, toYaml(plain));
      await assert.rejects(gw.restart(), (e) => e.message.includes(kekId(kek)) && e.message.includes('sealed'));
      assert.equal(fs.statSync(gw.spoolPath).size, spool.length, 'nothing cut from the spool');
      await release();
      released = true;
    } finally {
      if (!released) await release();
    }
    fs.writeFileSync(gw.configPath, toYaml(gw.config));
    await gw.restart();
    const held = `select count(*) n, count(distinct request_id) d from usage_events where path like '${SECRET_PATH}%'`;
    await waitFor(async () => (await sqlite(gw.dbPath, held))[0].n === 20, {
      timeoutMs: 10000,
      message: 'the sealed spool replayed into the store',
    });
    assert.equal((await sqlite(gw.dbPath, held))[0].d, 20);
  });

  test('an archive is sealed and archive read gives its events back', async () => {
    const [last] = await sqlite(gw.dbPath, 'select max(ts_us) t, count(*) n from usage_events');
    const day = new Date(Number(last.t) / 1000 + 86400000).toISOString().slice(0, 10);
    const out = path.join(gw.dir, 'old.jsonl.zst');
    const r = await gw.cli(['archive', '--before', day, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const file = fs.readFileSync(out);
    assert.equal(file.subarray(0, 6).toString('latin1'), 'TGSTRM');
    assert.ok(!file.includes(SECRET_PATH));
    const back = await gw.cli(['archive', 'read', out]);
    assert.equal(back.code, 0, back.stderr);
    const lines = back.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, last.n);
    assert.equal(lines.filter((e) => e.path.startsWith(SECRET_PATH)).length, 20);
    // Cut short by one byte: refused (exit 1), not read as a shorter archive.
    fs.writeFileSync(`${out}.cut`, file.subarray(0, file.length - 1));
    const cut = await gw.cli(['archive', 'read', `${out}.cut`]);
    assert.equal(cut.code, 1);
    assert.match(cut.stderr, /frame/);
  });
  test('kek rotate re-wraps the signing secrets, the spool and an archive; the new KEK then works', async () => {
    assert.equal((await gw.cli(['tenant', 'add', 'signer'])).code, 0);
    const k = await gw.cli(['key', 'create', '--tenant', 'signer', '--signing']);
    assert.equal(k.code, 0, k.stderr);
    const secret = /^secret: (tg_\S+)$/m.exec(k.stdout)[1];
    const signing = /^signing_secret: (tgs_\S+)$/m.exec(k.stdout)[1];
    const newKek = crypto.randomBytes(32);
    const newFile = path.join(kekDir, 'kek.new');
    fs.writeFileSync(newFile, `${newKek.toString('base64')}\n`, { mode: 0o600 });

    // While the gateway runs (it holds the spool): refused, nothing changed.
    let r = await gw.cli(['kek', 'rotate', '--new-kek-file', newFile]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /in use by a running gateway/);
    assert.ok(!r.stderr.includes(newKek.toString('base64')) && !r.stdout.includes(newKek.toString('base64')));
    assert.equal((await gw.stop()).code, 0);

    const archive = path.join(gw.dir, 'old.jsonl.zst');
    r = await gw.cli(['kek', 'rotate', '--new-kek-file', newFile, archive]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`re-wrapped 1 signing secrets from key-encryption key ${kekId(kek)} to ${kekId(newKek)} \\(0 already`));
    assert.match(r.stdout, /old\.jsonl\.zst: re-wrapped/);
    assert.equal(fs.readFileSync(archive).subarray(8, 16).toString('hex'), kekId(newKek));
    // Run again (resumed): nothing left to do.
    r = await gw.cli(['kek', 'rotate', '--new-kek-file', newFile, archive]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /re-wrapped 0 signing secrets .* \(1 already under it/);
    assert.match(r.stdout, /already under the new key-encryption key/);

    // The config switched to the new KEK: signed requests pass, the archive reads.
    gw.config.encryption = { kek_file: newFile };
    fs.writeFileSync(gw.configPath, toYaml(gw.config));
    await gw.restart();
    const id = 'kek-now';
    await request(`${gw.url}/nothing?x=1`, { headers: { 'x-request-id': id } });
    const now = Math.floor(Number((await waitForEvent(gw, id)).ts_us) / 1e6);
    const target = '/signed/after-rotate';
    await waitFor(async () => (await request(`${gw.url}${target}`, { headers: { 'x-api-key': secret, ...sign(signing, target, now) } })).status === 200, {
      message: 'a signed request passes with the re-wrapped secret',
    });
    const back = await gw.cli(['archive', 'read', archive]);
    assert.equal(back.code, 0, back.stderr);
  });
});
