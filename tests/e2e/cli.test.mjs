// The CLI against a running gateway's store: tenants, keys (secret shown once, never
// listed, last use recorded), usage reports in every grouping and format, and the exit
// codes and one-line errors of bad input.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { createTenantKey, curlJson, run, bin, startGateway, startMock, waitFor, sqlite } from './lib/harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('cli', () => {
  let mock, gw, acme, globex;
  before(async () => {
    mock = await startMock();
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [
        { name: 'chat', path_prefix: '/v1/', upstream: 'mock', kind: 'http' },
        { name: 'other', path_prefix: '/', upstream: 'mock', kind: 'http' },
      ],
    });
    acme = await createTenantKey(gw, 'acme');
    globex = await createTenantKey(gw, 'globex');
    await sleep(600);
    const a = { Authorization: `Bearer ${acme.secret}` };
    for (let i = 0; i < 3; i++) assert.equal((await curlJson(`${gw.url}/v1/x?size=10`, { headers: a })).status, 200);
    assert.equal((await curlJson(`${gw.url}/y?status=500`, { headers: a })).status, 500);
    assert.equal((await curlJson(`${gw.url}/v1/z?size=7`, { headers: { 'x-api-key': globex.secret } })).status, 200);
    assert.equal((await curlJson(`${gw.url}/v1/z`)).status, 401);
    await waitFor(async () => (await sqlite(gw.dbPath, 'select count(*) n from usage_events'))[0].n === 6);
  });
  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  test('tenants: add, list, show, disable, enable, and errors', async () => {
    let r = await gw.cli(['tenant', 'add', 'initech', '--name', 'Initech Corp']);
    assert.equal(r.code, 0, r.stderr);
    r = await gw.cli(['tenant', 'list']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^ID\s+NAME\s+STATUS/m);
    assert.match(r.stdout, /^initech\s+Initech Corp\s+active/m);
    r = await gw.cli(['tenant', 'show', 'acme']);
    assert.match(r.stdout, /status:\s+active/);
    assert.equal((await gw.cli(['tenant', 'disable', 'initech'])).code, 0);
    assert.match((await gw.cli(['tenant', 'show', 'initech'])).stdout, /status:\s+disabled/);
    assert.equal((await gw.cli(['tenant', 'enable', 'initech'])).code, 0);
    for (const [args, code, re] of [
      [['tenant', 'add', 'acme'], 1, /already exists/],
      [['tenant', 'show', 'nope'], 1, /nope/],
      [['tenant', 'add', 'bad id!'], 2, /tenant id/i],
      [['tenant', 'add', 'x', '--nmae', 'y'], 2, /unknown option --nmae/],
      [['tenant', 'frobnicate'], 2, /frobnicate/],
      [['frobnicate'], 2, /unknown command/],
    ]) {
      r = await gw.cli(args);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
  });

  test('keys: listed without secrets, last use recorded, revoke errors', async () => {
    const r = await gw.cli(['key', 'list', '--tenant', 'acme']);
    assert.equal(r.code, 0);
    assert.ok(r.stdout.includes(acme.keyId));
    assert.ok(r.stdout.includes(acme.secret.slice(0, 8)), 'display prefix shown');
    assert.ok(!r.stdout.includes(acme.secret), 'secret never listed');
    const line = r.stdout.split('\n').find((l) => l.includes(acme.keyId));
    assert.match(line, /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s*$/, `LAST_USED is set after a request: ${line}`);
    const fresh = await gw.cli(['key', 'create', '--tenant', 'acme', '--name', 'unused']);
    const id = /key_id:\s*(\S+)/.exec(fresh.stdout)[1];
    const l2 = (await gw.cli(['key', 'list'])).stdout.split('\n').find((l) => l.includes(id));
    assert.match(l2, /\s-\s*$/, `a key never used shows "-": ${l2}`);
    const rows = await sqlite(gw.dbPath, 'select hex(sha256) h from api_keys');
    assert.ok(rows.every((x) => x.h.length === 64), 'only hashes stored');
    let e = await gw.cli(['key', 'revoke', 'key_doesnotexist']);
    assert.equal(e.code, 1);
    e = await gw.cli(['key', 'create', '--tenant', 'nobody']);
    assert.equal(e.code, 1);
    e = await gw.cli(['key', 'create']);
    assert.equal(e.code, 2);
  });

  test('usage: by day, route, key, hour; json and csv; filters', async () => {
    let r = await gw.cli(['usage', '--format', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const byTenant = Object.fromEntries(JSON.parse(r.stdout).map((x) => [x.tenant, x]));
    assert.equal(byTenant.acme.requests, 4);
    assert.equal(byTenant.acme.billable, 3);
    assert.equal(byTenant.acme.failed, 1);
    assert.equal(byTenant.acme.bytes_out, 30 + Buffer.byteLength('{"ok":true}'));
    assert.equal(byTenant.globex.requests, 1);
    assert.equal(byTenant[''].rejected, 1, 'unauthenticated requests are counted too');
    r = await gw.cli(['usage', '--tenant', 'acme', '--by', 'route', '--format', 'json']);
    const routes = Object.fromEntries(JSON.parse(r.stdout).map((x) => [x.route, x.requests]));
    assert.deepEqual(routes, { chat: 3, other: 1 });
    r = await gw.cli(['usage', '--tenant', 'acme', '--by', 'key', '--format', 'csv']);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0], /^tenant,key_id,requests,billable/);
    assert.ok(lines[1].startsWith(`acme,${acme.keyId},4,3`), lines[1]);
    r = await gw.cli(['usage', '--by', 'hour', '--tenant', 'globex']);
    assert.match(r.stdout, /^TENANT\s+HOUR/m);
    assert.match(r.stdout, /globex\s+\d{4}-\d\d-\d\dT\d\d/);
    const today = new Date().toISOString().slice(0, 10);
    r = await gw.cli(['usage', '--from', today, '--to', today, '--format', 'json', '--tenant', 'globex']);
    assert.equal(JSON.parse(r.stdout)[0].requests, 1);
    r = await gw.cli(['usage', '--from', '2000-01-01', '--to', '2000-01-02', '--format', 'json']);
    assert.deepEqual(JSON.parse(r.stdout), []);
    for (const args of [['usage', '--from', '2026-02-30'], ['usage', '--by', 'color'], ['usage', '--format', 'xml']]) {
      const b = await gw.cli(args);
      assert.equal(b.code, 2, args.join(' '));
      assert.equal(b.stderr.trim().split('\n').length, 1);
    }
  });

  test('a missing config is exit 2 with one line', async () => {
    const r = await run(bin, ['-c', '/nonexistent/tollgate.yaml', 'tenant', 'list']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /nonexistent\/tollgate\.yaml/);
  });
});
