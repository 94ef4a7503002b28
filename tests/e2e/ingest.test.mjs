// `tollgate ingest` and `tollgate key import` with the real binary on real files: CloudFront
// logs (plain and gzip, keys encoded twice, decoys, IPv6 viewers, status 000, a month
// boundary), API Gateway JSON with records concatenated on one line, combined log format
// from stdin, malformed lines, --strict, and a second ingestion that counts nothing twice;
// the store is checked through `tollgate usage` and, for what must never be stored, sqlite3.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

import {
  bin,
  createTenantKey,
  curlJson,
  freshPgStore,
  isPgUrl,
  run,
  sqlite,
  startGateway,
  startMock,
  tempDir,
  toYaml,
  waitFor,
} from './lib/harness.mjs';

const FIELDS =
  '#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status ' +
  'cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id ' +
  'x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher ' +
  'x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port ' +
  'time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len ' +
  'sc-range-start sc-range-end';

const ACME = 'sk_live_acme/1+x'; // imported: not a tg_ key, with characters that get escaped
const GLOBEX = 'gx-legacy-0001';
const UNKNOWN = 'sk_live_nobody_knows_me';

// As CloudFront logs a query value: the client's encoding, then CloudFront's own layer.
const cfEncode = (s) => encodeURIComponent(encodeURIComponent(s));

// Record i of a generated CloudFront log: tenants in turn acme, globex, unknown key, no key;
// every 7th a 503, every 11th a viewer gone (000); 1000 + i bytes out; the first half on
// 2026-11-30 23:59, the rest on 2026-12-01 00:00.
function cfRecord(i, n) {
  const late = i >= n / 2;
  const who = i % 4;
  const query =
    who === 0 ? `x_cf_api_key=decoy&cf_api_key=${cfEncode(ACME)}`
    : who === 1 ? `cf_api_key=${cfEncode(GLOBEX)}&cf_api_key_hint=nope`
    : who === 2 ? `cf_api_key=${cfEncode(UNKNOWN)}`
    : 'page=2';
  const status = i % 11 === 0 ? '000' : i % 7 === 0 ? '503' : '200';
  const ip = i % 2 ? `2001:db8::${i.toString(16)}` : `198.51.100.${i % 250}`;
  return [
    late ? '2026-12-01' : '2026-11-30', `${late ? '00:00' : '23:59'}:${String(i % 60).padStart(2, '0')}`,
    'FRA56-P1', 1000 + i, ip, 'GET', 'd1.cloudfront.net', '/v1/items', status, '-', 'curl/8.5', query,
    '-', i % 3 ? 'Miss' : 'Hit', `REQ${String(i).padStart(6, '0')}==`, 'api.example.com', 'https', 50,
    '0.020', '-', 'TLSv1.3', 'TLS_AES_128_GCM_SHA256', 'Miss', 'HTTP/2.0', '-', '-', 443, '0.010',
    'Miss', 'application/json', 900, '-', '-',
  ].join('\t');
}

function cfLog(from, to, n) {
  const lines = ['#Version: 1.0', FIELDS];
  for (let i = from; i < to; i++) lines.push(cfRecord(i, n));
  return lines.join('\n') + '\n';
}

// What the generated records should add up to, per tenant ('' = unknown or no key).
function expected(n) {
  const t = {};
  for (let i = 0; i < n; i++) {
    const who = ['acme', 'globex', '', ''][i % 4];
    const x = (t[who] ??= { requests: 0, billable: 0, failed: 0, bytes_out: 0, bytes_in: 0 });
    const status = i % 11 === 0 ? 0 : i % 7 === 0 ? 503 : 200;
    x.requests++;
    if (status === 200) x.billable++;
    else x.failed++;
    x.bytes_out += 1000 + i;
    x.bytes_in += 50;
  }
  return t;
}

describe('ingest', () => {
  let dir, cfg, db;
  const tg = (args, opts) => run(bin, ['-c', cfg, ...args], opts);
  const totals = async (tenant) => {
    const r = await tg(['usage', '--tenant', tenant, '--format', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const t = { requests: 0, billable: 0, failed: 0, bytes_out: 0, bytes_in: 0, cost_micros: 0 };
    for (const row of JSON.parse(r.stdout)) for (const k of Object.keys(t)) t[k] += row[k];
    return t;
  };

  before(async () => {
    dir = await tempDir('tollgate-ingest-');
    db = path.join(dir, 'tollgate.db');
    cfg = path.join(dir, 'tollgate.yaml');
    fs.writeFileSync(cfg, toYaml({
      store: `sqlite:${db}`,
      upstreams: [{ name: 'u', targets: ['http://127.0.0.1:9'] }],
      routes: [{ name: 'r', path_prefix: '/', upstream: 'u', kind: 'http' }],
    }));
    for (const t of ['acme', 'globex']) assert.equal((await tg(['tenant', 'add', t])).code, 0);
    // any printable secret, from stdin, never echoed
    let r = await tg(['key', 'import', '--tenant', 'acme', '--name', 'from kong'], { input: `${ACME}\n` });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^key_id: key_[0-9a-f]{16}$/m);
    assert.ok(!r.stdout.includes(ACME) && !r.stderr.includes(ACME), 'the secret is never echoed');
    r = await tg(['key', 'import', '--tenant', 'globex'], { input: GLOBEX });
    assert.equal(r.code, 0, r.stderr);
    r = await tg(['key', 'import', '--tenant', 'globex'], { input: GLOBEX });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already a key/);
    assert.ok(!r.stderr.includes(GLOBEX));
    r = await tg(['key', 'import', '--tenant', 'nope'], { input: 'abcdefghijk' });
    assert.equal(r.code, 1);
    r = await tg(['key', 'import', '--tenant', 'acme'], { input: '' });
    assert.equal(r.code, 2);
    // a price for any route: ingested records have none, so the '*' row prices them
    assert.equal((await tg(['price', 'set', '--route', '*', '--request', '0.001', '--from', '2020-01-01'])).code, 0);
  });

  test('cloudfront: known totals, a month boundary, and a second ingestion counts nothing', async () => {
    const N = 2000;
    fs.writeFileSync(path.join(dir, 'a.log'), cfLog(0, N / 2, N));
    fs.writeFileSync(path.join(dir, 'b.log.gz'), zlib.gzipSync(cfLog(N / 2, N, N)));
    fs.writeFileSync(path.join(dir, 'overlap.log'), cfLog(N / 4, (3 * N) / 4, N));
    let r = await tg(['ingest', '--format', 'cloudfront', path.join(dir, 'a.log'), path.join(dir, 'b.log.gz')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^ingested 2 files: ${N + 4} lines, ${N} records, ${N} stored, 0 duplicates skipped, 0 malformed, ${N / 4} with an unknown key`));
    const want = expected(N);
    for (const t of ['acme', 'globex']) {
      const got = await totals(t);
      for (const k of ['requests', 'billable', 'failed', 'bytes_out', 'bytes_in']) assert.equal(got[k], want[t][k], `${t} ${k}`);
      assert.equal(got.cost_micros, want[t].billable * 1000, `${t} cost`);
    }
    // the month boundary: each side has its own day
    r = await tg(['usage', '--tenant', 'acme', '--from', '2026-11-30', '--to', '2026-11-30', '--format', 'json']);
    assert.equal(JSON.parse(r.stdout)[0].requests, N / 8);
    // again, plus a file overlapping both
    r = await tg(['ingest', '--format', 'cloudfront', path.join(dir, 'a.log'), path.join(dir, 'b.log.gz'), path.join(dir, 'overlap.log')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`, 0 stored, ${N + N / 2} duplicates skipped`));
    for (const t of ['acme', 'globex']) assert.equal((await totals(t)).requests, want[t].requests);
    // what was stored of the records
    const [row] = await sqlite(db, "select count(*) n, sum(cache = 'hit') hits, sum(status = 0 and outcome = 'failed') gone, sum(reason = 'client_gone') gone_known from usage_events where source = 'cloudfront'");
    assert.equal(row.n, N);
    assert.equal(row.hits, Math.ceil(N / 3));
    assert.equal(row.gone, Math.ceil(N / 11));
    // the reason says the viewer left when the tenant is known (else why it is unattributed)
    assert.equal(row.gone_known, [...Array(N).keys()].filter((i) => i % 11 === 0 && i % 4 < 2).length);
    // the query views carry the source
    const qr = await tg(['query', "SELECT source, sum(requests) AS n FROM events GROUP BY source", '--format', 'json']);
    assert.equal(qr.code, 0, qr.stderr);
    assert.deepEqual(JSON.parse(qr.stdout), [{ source: 'cloudfront', n: N }]);
    const [v6] = await sqlite(db, "select count(*) n from usage_events where client_ip like '2001:db8::%'");
    assert.equal(v6.n, N / 2);
    // the unknown key: hash and prefix, never the secret, anywhere in the store
    const [unk] = await sqlite(db, "select prefix, records, hex(sha256) h from ingest_unknown_keys");
    assert.equal(unk.prefix, UNKNOWN.slice(0, 8));
    assert.equal(unk.records, N / 4);
    const dump = await run('sqlite3', [db, '.dump']);
    for (const s of [UNKNOWN, ACME, GLOBEX, encodeURIComponent(UNKNOWN)]) assert.ok(!dump.stdout.includes(s), `${s} stored`);
  });

  test('apigw-json: concatenated records, tenant field, malformed lines reported and skipped', async () => {
    const rec = (id, ms, status, len, tenant) =>
      JSON.stringify({ requestId: id, ip: '2001:db8::1', requestTimeEpoch: String(ms), httpMethod: 'POST', resourcePath: '/v1/x', path: '/prod/v1/x', status: String(status), responseLength: String(len), responseLatency: '12', apiKeyId: 'k1', tenant_id: tenant });
    const t0 = Date.UTC(2026, 10, 15, 12);
    const lines = [
      rec('g1', t0, 200, 100, 'globex') + rec('g2', t0 + 1, 201, 200, 'globex') + rec('g3', t0 + 2, 500, 300, 'globex'),
      '{"requestId": "broken"',
      rec('g4', t0 + 3, 200, 400, '-'),
      rec('g5', t0 + 4, 200, 500, 'bad tenant!'),
    ];
    fs.writeFileSync(path.join(dir, 'gw.json'), lines.join('\n'));
    const before = await totals('globex');
    let r = await tg(['ingest', '--format', 'apigw-json', path.join(dir, 'gw.json')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /gw\.json:2: record 1: invalid JSON/);
    assert.match(r.stderr, /gw\.json:4: tenant "bad tenant!"/);
    assert.match(r.stdout, /4 lines, 4 records, 4 stored, 0 duplicates skipped, 2 malformed/);
    const after = await totals('globex');
    assert.equal(after.requests - before.requests, 3);
    assert.equal(after.billable - before.billable, 2);
    assert.equal(after.bytes_out - before.bytes_out, 600);
    // --strict: any malformed line is an error and nothing is written
    const [{ n }] = await sqlite(db, 'select count(*) n from usage_events');
    fs.writeFileSync(path.join(dir, 'gw2.json'), [rec('s1', t0, 200, 1, 'globex'), 'nope'].join('\n'));
    r = await tg(['ingest', '--strict', '--format', 'apigw-json', path.join(dir, 'gw2.json')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /gw2\.json:2: /);
    assert.match(r.stderr, /--strict: 1 malformed line in 2 lines; nothing was stored/);
    assert.equal((await sqlite(db, 'select count(*) n from usage_events'))[0].n, n);
    r = await tg(['ingest', '--strict', '--format', 'apigw-json', '-'], { input: 'x' });
    assert.equal(r.code, 2);
  });

  test('combined from stdin: keys in the query, junk request lines, time zones', async () => {
    const lines = [
      `203.0.113.7 - - [30/Nov/2026:16:00:00 -0800] "GET /v1/a?api_key=${encodeURIComponent(ACME)} HTTP/1.1" 200 1234 "-" "curl/8"`,
      `2001:db8::2 - - [01/Dec/2026:01:00:00 +0100] "GET /v1/a?api_key=${encodeURIComponent(ACME)}&q=\\"x\\" HTTP/1.1" 404 10 "-" "say \\"hi\\""`,
      '203.0.113.7 - - [01/Dec/2026:00:00:01 +0000] "\\x16\\x03\\x01\\x02\\x00" 400 157 "-" "-"',
    ];
    const before = await totals('acme');
    const r = await tg(['ingest', '--format', 'combined', '-'], { input: lines.join('\n') + '\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ingested 1 file: 3 lines, 3 records, 3 stored/);
    const after = await totals('acme');
    assert.equal(after.requests - before.requests, 2);
    assert.equal(after.billable - before.billable, 1);
    assert.equal(after.bytes_out - before.bytes_out, 1244);
    // both at 2026-12-01T00:00:00Z once their zones are applied
    const rows = await sqlite(db, "select ts_us from usage_events where source = 'clf' and tenant = 'acme'");
    assert.deepEqual(rows.map((x) => x.ts_us), [Date.UTC(2026, 11, 1) * 1000, Date.UTC(2026, 11, 1) * 1000]);
    const [junk] = await sqlite(db, "select method, reason from usage_events where source = 'clf' and status = 400");
    assert.deepEqual(junk, { method: '-', reason: 'bad_request_line' });
  });

  test('jsonl: the gateway\'s own access log rebuilds its events in an empty store', async () => {
    const mock = await startMock();
    const gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'api', path_prefix: '/', upstream: 'mock', kind: 'http' }],
    });
    try {
      const acme = await createTenantKey(gw, 'acme');
      await waitFor(async () => (await curlJson(`${gw.url}/x`, { headers: { 'x-api-key': acme.secret } })).status === 200);
      const h = { 'x-api-key': acme.secret };
      for (let i = 0; i < 4; i++) assert.equal((await curlJson(`${gw.url}/v1/a?size=${100 + i}`, { headers: h })).status, 200);
      assert.equal((await curlJson(`${gw.url}/y?status=500`, { headers: h })).status, 500);
      assert.equal((await curlJson(`${gw.url}/z`)).status, 401);
      await gw.stop();
      const q = "select tenant, count(*) n, sum(CASE WHEN outcome = 'billable' THEN 1 ELSE 0 END) b, sum(bytes_out) bo from usage_events group by tenant order by tenant";
      const original = await sqlite(gw.dbPath, q);
      const [gwsrc] = await sqlite(gw.dbPath, "select count(*) n, sum(CASE WHEN source = 'gateway' THEN 1 ELSE 0 END) g from usage_events");
      assert.ok(gwsrc.n >= 6);
      assert.equal(gwsrc.g, gwsrc.n, 'proxied traffic is source gateway');
      // an empty store of the same kind, same tenants and keys not needed: the lines name
      // the tenant
      const d2 = await tempDir('tollgate-rebuild-');
      const c2 = path.join(d2, 'tollgate.yaml');
      const rebuilt = isPgUrl(gw.dbPath) ? await freshPgStore() : path.join(d2, 'r.db');
      fs.writeFileSync(c2, toYaml({
        store: isPgUrl(rebuilt) ? rebuilt : `sqlite:${rebuilt}`,
        upstreams: [{ name: 'u', targets: ['http://127.0.0.1:9'] }],
        routes: [{ name: 'r', path_prefix: '/', upstream: 'u', kind: 'http' }],
      }));
      let r = await run(bin, ['-c', c2, 'ingest', '--format', 'jsonl', gw.accessLog]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /0 malformed/);
      assert.deepEqual(await sqlite(rebuilt, q), original);
      const [src] = await sqlite(rebuilt, "select count(*) n from usage_events where source = 'accesslog'");
      assert.equal(src.n, original.reduce((a, x) => a + x.n, 0));
      r = await run(bin, ['-c', c2, 'ingest', '--format', 'jsonl', gw.accessLog]);
      assert.match(r.stdout, / 0 stored/);
    } finally {
      await gw.stop();
      await mock.stop();
    }
  });

  test('usage errors', async () => {
    for (const [args, re] of [
      [['ingest', 'x.log'], /needs --format/],
      [['ingest', '--format', 'w3c', 'x.log'], /unknown --format "w3c"/],
      [['ingest', '--format', 'clf'], /needs a FILE/],
      [['ingest', '--format', 'clf', '--tenant-field', 'x', 'a'], /only be "user"/],
      [['ingest', '--format', 'jsonl', '--key-field', 'k', 'a'], /does not apply to jsonl/],
    ]) {
      const r = await tg(args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, re);
    }
    const r = await tg(['ingest', '--format', 'clf', path.join(dir, 'missing.log')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /missing\.log: No such file/);
  });
});
