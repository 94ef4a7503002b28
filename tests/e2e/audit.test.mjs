// The audit trail end to end (docs/audit.md): CLI changes recorded with the OS user and the
// rows before and after, AI calls through the gateway recorded with their metadata (never
// their bodies; their hashes, with audit.bodies: hash, in bodies.test.mjs), `audit verify`
// passing and then catching rows edited, deleted, inserted and reordered in the store by hand,
// `audit export` in JSON lines and CSV, `tenant erase` removing the tenant's personal data while the chain still verifies, and retention by whole
// days keeping the chain verifiable from its first kept record.
//
// Every instant comes from tollgate (the records' own days), never from this process's
// clock, so the file passes with the gateway and the CLI under TOLLGATE_FAKETIME too.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import { after, before, describe, test } from 'node:test';

import { createTenantKey, isPgUrl, request, sqlite, startGateway, startMock, waitFor, waitForEvent, waitForKey, waitLoaded } from './lib/harness.mjs';

const CLIENT_IP = '198.51.100.77'; // through X-Forwarded-For from a trusted proxy
const PROMPT = 'the secret prompt text zq7';

let mock;
let gw;
let acme;
before(async () => {
  mock = await startMock();
  gw = await startGateway({
    upstreams: [{ name: 'mock', targets: [mock.url] }],
    routes: [{ name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' }],
    extra: { server: { trusted_proxies: ['127.0.0.1/32'] }, prices: { models: { 'gpt-4o-mini': { input: 0.15, output: 0.6 } } }, audit: { bodies: 'none' }, retention: { events: '400d', audit: '7y' } },
  });
  acme = await createTenantKey(gw, 'acme');
});
after(async () => {
  await gw?.stop();
  await mock?.stop();
});

const records = (where = 'TRUE') => sqlite(gw.dbPath, `SELECT * FROM audit WHERE ${where} ORDER BY id`);

// A record's hash in format 2 (docs/audit.md, "Chain format"), from its exported fields only:
// each value a 4-byte big-endian length and its bytes (integers in decimal, NULL 0xFFFFFFFF),
// the erasable values as "sha256:" and the SHA-256 of their bytes.
function formatTwoHash(r) {
  const sha = (s) => crypto.createHash('sha256').update(Buffer.from(s, 'utf8')).digest('hex');
  const erasable = (v) => (v === null ? null : `sha256:${v.startsWith('erased:sha256:') ? v.slice(14) : sha(v)}`);
  const values = ['tg-audit-2', r.day, String(r.seq), String(r.ts_us), r.kind, r.actor, r.action, r.object, r.tenant,
    r.event_id, r.data, erasable(r.before), erasable(r.after),
    erasable(r.client_ip), erasable(r.path), r.prev_hash];
  const parts = [];
  for (const v of values) {
    const len = Buffer.alloc(4);
    if (v === null) {
      len.writeUInt32BE(0xffffffff);
      parts.push(len);
    } else {
      const b = Buffer.from(v, 'utf8');
      len.writeUInt32BE(b.length);
      parts.push(len, b);
    }
  }
  return crypto.createHash('sha256').update(Buffer.concat(parts)).digest('hex');
}

async function cliOk(args, target = gw) {
  const r = await target.cli(args);
  assert.equal(r.code, 0, `tollgate ${args.join(' ')}: ${r.stderr}${r.stdout}`);
  return r;
}

async function verify(target = gw) {
  return target.cli(['audit', 'verify']);
}

describe('audit trail', () => {
  test('CLI changes are recorded with actor, before and after; reads are not', async () => {
    const user = os.userInfo().username;
    const add = await records(`action = 'tenant.add' AND object = 'acme'`);
    assert.equal(add.length, 1);
    assert.equal(add[0].actor, user);
    assert.equal(add[0].kind, 'admin');
    assert.equal(add[0].before_json, null);
    assert.equal(JSON.parse(add[0].after_json).tenants[0].status, 'active');

    const key = await records(`action = 'key.create'`);
    assert.equal(key.length, 1);
    assert.equal(key[0].tenant, 'acme');
    const row = JSON.parse(key[0].after_json).api_keys[0];
    assert.equal(row.id, acme.keyId);
    assert.ok(!('sha256' in row), 'the key hash is not in the audit trail');
    assert.ok(!JSON.stringify(key[0]).includes(acme.secret), 'the secret is not in the audit trail');

    const before = (await records()).length;
    await cliOk(['tenant', 'list']);
    await cliOk(['limit', 'list']);
    assert.equal((await records()).length, before, 'a read adds no record');

    await cliOk(['tenant', 'disable', 'acme']);
    await cliOk(['tenant', 'enable', 'acme']);
    await cliOk(['limit', 'set', '--tenant', 'acme', '--rpm', '600']);
    await cliOk(['budget', 'set', '--tenant', 'acme', '--monthly', '50']);
    await cliOk(['ip', 'allow', '0.0.0.0/0', '--tenant', 'acme']);
    const dis = (await records(`action = 'tenant.disable'`))[0];
    assert.equal(JSON.parse(dis.before_json).tenants[0].status, 'active');
    assert.equal(JSON.parse(dis.after_json).tenants[0].status, 'disabled');
    const lim = (await records(`action = 'limit.set'`))[0];
    assert.equal(lim.tenant, 'acme');
    assert.equal(JSON.parse(lim.after_json).limits[0].requests, 600);
    for (const a of ['tenant.enable', 'budget.set', 'ip.allow']) assert.equal((await records(`action = '${a}'`)).length, 1, a);

    // A failed command records nothing.
    const n = (await records()).length;
    const bad = await gw.cli(['tenant', 'disable', 'nobody']);
    assert.notEqual(bad.code, 0);
    assert.equal((await records()).length, n);
  });

  test('AI calls are recorded with their metadata in the events transaction, never bodies', async () => {
    await waitForKey(gw, acme.secret, '/v1/models');
    await waitLoaded(gw); // the budget (which needs a price) and the IP rule
    const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: PROMPT }], max_tokens: 3 });
    const r = await request(`${gw.url}/v1/chat/completions?user=bob`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${acme.secret}`, 'Content-Type': 'application/json', 'X-Forwarded-For': CLIENT_IP },
      body,
    });
    assert.equal(r.status, 200, r.body?.toString());
    const ev = await waitForEvent(gw, r.headers['x-request-id']);
    // (ids are past 2^53: compared in SQL, not as JS numbers)
    const [rec] = await records(`event_id = (SELECT id FROM usage_events WHERE request_id = '${ev.request_id}')`);
    assert.ok(rec, 'the call has its audit record');
    assert.equal(rec.kind, 'call');
    assert.equal(rec.tenant, 'acme');
    assert.equal(rec.actor, acme.keyId);
    assert.equal(rec.object, 'oa');
    assert.equal(rec.client_ip, CLIENT_IP);
    assert.equal(rec.path, '/v1/chat/completions?user=bob');
    const data = JSON.parse(rec.data);
    assert.deepEqual(
      { model: data.model, tokens_in: data.tokens_in, tokens_out: data.tokens_out, cost: data.cost_micros, status: data.status, decision: data.decision, key: data.key },
      { model: ev.model, tokens_in: ev.tokens_in, tokens_out: ev.tokens_out, cost: Number(ev.cost_micros), status: 200, decision: 'billable', key: acme.keyId },
    );
    const withPrompt = await records(`data LIKE '%zq7%' OR before_json LIKE '%zq7%' OR after_json LIKE '%zq7%'`);
    assert.equal(withPrompt.length, 0, 'no prompt text in the audit trail');
    // A refused call is recorded too, with its decision and reason (a budget needs a price).
    const refused = await request(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${acme.secret}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-unpriced', messages: [{ role: 'user', content: PROMPT }] }),
    });
    assert.equal(refused.status, 400);
    const rev = await waitForEvent(gw, refused.headers['x-request-id']);
    const [rrec] = await records(`event_id = (SELECT id FROM usage_events WHERE request_id = '${rev.request_id}')`);
    assert.deepEqual(
      (({ decision, reason, model }) => ({ decision, reason, model }))(JSON.parse(rrec.data)),
      { decision: 'rejected', reason: rev.reason, model: 'gpt-unpriced' },
    );
    // The day of a record is the writer's (its ts), and the chain's day never goes back.
    const all = await records();
    for (let i = 1; i < all.length; i++) assert.ok(all[i].day >= all[i - 1].day);
  });

  test('verify passes, and export writes every record as JSON lines and CSV', async () => {
    const v = await verify();
    assert.equal(v.code, 0, v.stderr);
    const all = await records();
    assert.match(v.stdout, new RegExp(`^audit: ${all.length} records verified, ids 1\\.\\.${all.length}`, 'm'));
    assert.match(v.stdout, /the chain's start/);

    const j = await cliOk(['audit', 'export', '--format', 'jsonl']);
    const raw = j.stdout.trim().split('\n');
    const lines = raw.map((l) => JSON.parse(l));
    assert.equal(lines.length, all.length);
    assert.deepEqual(lines.map((l) => l.hash), all.map((r) => r.hash));
    assert.equal(lines[1].prev_hash, lines[0].hash);
    const call = lines.find((l) => l.kind === 'call');
    assert.equal(call.path, '/v1/chat/completions?user=bob');
    // The chain recomputed from the export alone, as docs/audit.md defines format 2.
    // (event_id is above 2^53: read from the line's text, not as a JavaScript number.)
    lines.forEach((l, i) => {
      assert.equal(l.format, 2);
      const eventId = raw[i].match(/"event_id":(\d+)/)?.[1] ?? null;
      assert.equal(formatTwoHash({ ...l, event_id: eventId }), l.hash, `record ${l.id}`);
    });

    const c = await cliOk(['audit', 'export', '--format', 'csv', '--from', all[0].day, '--to', all.at(-1).day]);
    const rows = c.stdout.trimEnd().split('\n');
    assert.equal(rows[0], 'id,day,seq,time,ts_us,kind,actor,action,object,tenant,event_id,data,before,after,client_ip,path,prev_hash,hash,format');
    assert.equal(rows.length, all.length + 1);
    // The JSON of after_json holds quotes and commas: quoted as RFC 4180 says.
    assert.ok(rows[1].includes('"{""tenants"":[{'), rows[1]);
    assert.ok(rows[1].endsWith(`,${all[0].prev_hash},${all[0].hash},2`));

    const none = await cliOk(['audit', 'export', '--format', 'jsonl', '--from', '2001-01-01', '--to', '2001-01-01']);
    assert.equal(none.stdout, '');
    const badFormat = await gw.cli(['audit', 'export', '--format', 'xml']);
    assert.equal(badFormat.code, 2);
  });

  test('tenant erase removes client IPs, key names and query strings; the chain still verifies', async () => {
    await cliOk(['key', 'create', '--tenant', 'acme', '--name', 'bobs-laptop-zq8']);
    const e = await cliOk(['tenant', 'erase', 'acme']);
    assert.match(e.stdout, /^tenant acme erased/);
    const v = await verify();
    assert.equal(v.code, 0, v.stderr);

    assert.equal((await sqlite(gw.dbPath, `SELECT count(*) AS n FROM usage_events WHERE client_ip IS NOT NULL AND tenant = 'acme'`))[0].n, 0);
    assert.equal((await sqlite(gw.dbPath, `SELECT count(*) AS n FROM usage_events WHERE path LIKE '%user=bob%'`))[0].n, 0);
    assert.equal((await sqlite(gw.dbPath, `SELECT count(*) AS n FROM api_keys WHERE name <> ''`))[0].n, 0);
    const leftovers = await records(`client_ip = '${CLIENT_IP}' OR path LIKE '%user=bob%' OR after_json LIKE '%zq8%' OR before_json LIKE '%zq8%'`);
    assert.equal(leftovers.length, 0);
    const call = (await records(`kind = 'call'`))[0];
    assert.match(call.client_ip, /^erased:sha256:[0-9a-f]{64}$/);
    assert.equal((await records(`action = 'tenant.erase'`)).length, 1, 'the erase is itself recorded');
    if (!isPgUrl(gw.dbPath)) {
      // Not in the database file, nor in its WAL.
      for (const f of [gw.dbPath, `${gw.dbPath}-wal`]) {
        if (!fs.existsSync(f)) continue;
        const bytes = fs.readFileSync(f);
        for (const s of [CLIENT_IP, 'user=bob', 'zq8']) assert.equal(bytes.indexOf(s), -1, `${s} still in ${f}`);
      }
    }
  });

  test('verify catches a record edited, deleted, inserted or reordered in the store', async () => {
    // One gateway's store per tamper, each with the same records: a tenant, a key, a limit.
    const store = async () => {
      const g = await startGateway({});
      await createTenantKey(g, 'beta');
      await cliOk(['limit', 'set', '--tenant', 'beta', '--rps', '5'], g);
      await cliOk(['tenant', 'disable', 'beta'], g);
      assert.equal((await verify(g)).code, 0);
      return g;
    };
    const cases = [
      ['edited', [`UPDATE audit SET actor = 'mallory' WHERE id = 2`], /record 2: edited/],
      ['deleted', [`DELETE FROM audit WHERE id = 2`], /deleted: record 3: records 2\.\.2 before it deleted/],
      [
        'inserted',
        [
          `UPDATE audit SET id = id + 100 WHERE id >= 2`,
          `UPDATE audit SET id = id - 99 WHERE id >= 100`,
          `INSERT INTO audit (id, day, seq, ts_us, kind, actor, action, object, tenant, after_json, prev_hash, hash, format) SELECT 2, day, seq, ts_us, kind, actor, action, object, tenant, after_json, prev_hash, hash, format FROM audit WHERE id = 3`,
        ],
        /inserted: record 2: not part of the chain/,
      ],
      ['reordered', [`UPDATE audit SET id = -1 WHERE id = 2`, `UPDATE audit SET id = 2 WHERE id = 3`, `UPDATE audit SET id = 3 WHERE id = -1`], /reordered: record 2: out of order/],
    ];
    for (const [what, sql, want] of cases) {
      const g = await store();
      try {
        for (const s of sql) await sqlite(g.dbPath, s);
        const v = await verify(g);
        assert.equal(v.code, 1, `${what}: ${v.stdout}`);
        assert.match(v.stderr, want, what);
      } finally {
        await g.stop();
      }
    }
  });

  test('retention purges whole days; the chain verifies from its first kept record', async (t) => {
    const lib = process.env.TOLLGATE_FAKETIME_LIB || '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
    if (!fs.existsSync(lib)) return t.skip('libfaketime is not installed');
    // ASan must come first in the library list: it refuses a preloaded libfaketime.
    if (/asan/.test(process.env.TOLLGATE_BIN ?? '')) return t.skip('a sanitizer build does not take LD_PRELOAD');
    const g = await startGateway({ extra: { retention: { audit: '30d' } } });
    try {
      // A record made with the CLI's clock ten years back, then today's.
      const old = { LD_PRELOAD: lib, FAKETIME: '2016-06-01 12:00:00', FAKETIME_DONT_FAKE_MONOTONIC: '1' };
      const a = await g.cli(['tenant', 'add', 'old'], { env: old });
      assert.equal(a.code, 0, a.stderr);
      await cliOk(['tenant', 'add', 'new'], g);
      const before = await sqlite(g.dbPath, 'SELECT id, day, hash FROM audit ORDER BY id');
      assert.equal(before[0].day, '2016-06-01');
      const p = await cliOk(['audit', 'purge'], g);
      assert.match(p.stdout, /^audit: 1 records of days before/);
      const kept = await sqlite(g.dbPath, 'SELECT id, prev_hash FROM audit ORDER BY id');
      assert.deepEqual(kept.map((r) => r.id), [2]);
      assert.equal(kept[0].prev_hash, before[0].hash);
      const v = await verify(g);
      assert.equal(v.code, 0, v.stderr);
      assert.match(v.stdout, new RegExp(`starts at record 2, whose prev_hash is ${before[0].hash} \\(the anchor\\)`));
    } finally {
      await g.stop();
    }
  });

  test('audit config: periods, bodies: hash accepted, encrypt refused without encryption:', async () => {
    const probe = async (extra) => {
      const g = await startGateway({}).catch((e) => e);
      await g.stop();
      const yaml = fs.readFileSync(g.configPath, 'utf8') + extra;
      fs.writeFileSync(g.configPath, yaml);
      return g.cli(['tenant', 'list']);
    };
    const hash = await probe('audit:\n  bodies: hash\n');
    assert.equal(hash.code, 0, hash.stderr); // (tests/e2e/bodies.test.mjs)
    const enc = await probe('audit:\n  bodies: encrypt\n');
    assert.equal(enc.code, 2);
    assert.match(enc.stderr, /audit\.bodies: encrypt needs encryption\.kek_file or encryption\.kek_env/); // (bodies-encrypt.test.mjs)
    const bad = await probe('retention:\n  audit: 7 years\n');
    assert.match(bad.stderr, /retention\.audit: bad period "7 years"/);
    await waitFor(async () => true);
  });
});
