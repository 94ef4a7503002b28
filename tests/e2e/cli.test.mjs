// The CLI against a running gateway's store: tenants, keys (secret shown once, never
// listed, last use recorded), usage reports in every grouping and format, and the exit
// codes and one-line errors of bad input.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';

import {
  bin,
  createTenantKey,
  curlJson,
  eventId,
  run,
  sqlDialect,
  sqlite,
  startGateway,
  startMock,
  tempDir,
  usagePartitions,
  waitFor,
} from './lib/harness.mjs';

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
      // a path segment in the dashboard's (and an API's) URLs: "." and ".." would be resolved away
      [['tenant', 'add', '.'], 2, /invalid tenant id "\.": .*not \. or \.\./],
      [['tenant', 'add', '..'], 2, /invalid tenant id "\.\.": .*not \. or \.\./],
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
    // CREATED, LAST_USED, then EXPIRES, SIGNING, ROTATED_FROM (none of those here)
    assert.match(line, /Z\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+-\s+no\s+-\s*$/, `LAST_USED is set after a request: ${line}`);
    const fresh = await gw.cli(['key', 'create', '--tenant', 'acme', '--name', 'unused']);
    const id = /key_id:\s*(\S+)/.exec(fresh.stdout)[1];
    const l2 = (await gw.cli(['key', 'list'])).stdout.split('\n').find((l) => l.includes(id));
    assert.match(l2, /Z\s+-\s+-\s+no\s+-\s*$/, `a key never used shows "-": ${l2}`);
    const rows = await sqlite(gw.dbPath, `select ${sqlDialect(gw.dbPath).hex('sha256')} h from api_keys`);
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
    // The day the gateway recorded globex's request on (its clock, not this process's).
    const [{ day: today }] = await sqlite(
      gw.dbPath,
      `select ${sqlDialect(gw.dbPath).day('ts_us')} AS day from usage_events where tenant = 'globex'`,
    );
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

// AI metering commands: prices (effective-dated), budgets (spend from usage_daily, alerts
// of the month), MCP tool rules, token limits and the model scope, and usage by model and
// tool. Money goes in and out as exact USD text; the store holds integer micro-USD.
describe('cli: prices, budgets, tool rules, token limits', () => {
  let mock, gw;
  const month = '2026-03'; // a fixed month, asked for with --month: never today's
  const policyVersion = async () =>
    (await sqlite(gw.dbPath, "select value v from meta where key = 'policy_version'"))[0].v;
  // Every bad input: the exit code, exactly one line on stderr, and what it says.
  const refuses = async (cases) => {
    for (const [args, code, re] of cases) {
      const r = await gw.cli(args);
      assert.equal(r.code, code, `${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^tollgate: /);
      assert.match(r.stderr, re, args.join(' '));
      assert.equal(r.stdout, '', `nothing on stdout for ${args.join(' ')}`);
    }
  };

  before(async () => {
    mock = await startMock();
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'chat', path_prefix: '/', upstream: 'mock', kind: 'http' }],
    });
    for (const t of ['acme', 'beta']) assert.equal((await gw.cli(['tenant', 'add', t])).code, 0);
  });
  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  test('price set, list and rm: models, routes, tools, effective dates', async () => {
    const v0 = await policyVersion();
    let r = await gw.cli(['price', 'set', 'gpt-4o', '--input', '2.50', '--output', '10', '--cached', '1.25', '--from', '2026-01-01']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'price set: model gpt-4o from 2026-01-01T00:00:00Z: input 2.50, output 10.00, cached 1.25 USD per 1M tokens\n');
    r = await gw.cli(['price', 'set', 'gpt-4o', '--input=2', '--output=8', '--from', '2099-01-01']);
    assert.equal(r.code, 0, r.stderr);
    r = await gw.cli(['price', 'set', '*', '--input', '.5', '--output', '1.000001', '--cache-write', '0.625']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^price set: model \* from \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: input 0\.50, output 1\.000001, cache_write 0\.625 USD per 1M tokens\n$/);
    r = await gw.cli(['price', 'set', '--route', 'chat', '--request', '0.0001', '--gb', '0.05']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '', 'a route of the config: no note');
    r = await gw.cli(['price', 'set', '--route', 'later', '--request', '0.001']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /note: .* has no route "later"/);
    r = await gw.cli(['price', 'set', '--tool', 'search', '--call', '0', '--from', 'now']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await policyVersion(), v0 + 6, 'every price change bumps policy_version');

    // Exact integers in the store, NULL for what a row does not set.
    const rows = await sqlite(gw.dbPath, "select * from prices where name = 'gpt-4o' order by effective_us");
    assert.equal(rows.length, 2);
    assert.equal(rows[0].input_micros, 2500000);
    assert.equal(rows[0].output_micros, 10000000);
    assert.equal(rows[0].cached_micros, 1250000);
    assert.equal(rows[0].cache_write_micros, null);
    assert.equal(rows[0].request_micros, null);
    assert.equal(rows[0].effective_us, Date.UTC(2026, 0, 1) * 1000);
    const star = await sqlite(gw.dbPath, "select * from prices where meter = 'model' and name = '*'");
    assert.equal(star[0].output_micros, 1000001);
    assert.equal(star[0].effective_us % 1000000, 0, '--from now is a whole second');

    r = await gw.cli(['price', 'list']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0], /^METER\s+NAME\s+FROM\s+STATUS\s+INPUT\s+OUTPUT\s+CACHED\s+CACHE_WRITE\s+REQUEST\s+GB\s+CALL$/);
    assert.match(r.stdout, /^model\s+gpt-4o\s+2026-01-01T00:00:00Z\s+current\s+2\.50\s+10\.00\s+1\.25\s+-\s+-\s+-\s+-$/m);
    assert.match(r.stdout, /^model\s+gpt-4o\s+2099-01-01T00:00:00Z\s+scheduled\s+2\.00\s+8\.00\s/m);
    assert.match(r.stdout, /^route\s+chat\s+\S+\s+current\s+-\s+-\s+-\s+-\s+0\.0001\s+0\.05\s+-$/m);
    assert.match(r.stdout, /^tool\s+search\s+\S+\s+current(\s+-){6}\s+0\.00$/m);
    r = await gw.cli(['price', 'list', '--format', 'json']);
    const json = JSON.parse(r.stdout);
    assert.equal(json.length, 6);
    const later = json.find((p) => p.name === 'gpt-4o' && p.status === 'scheduled');
    assert.deepEqual(
      { from: later.from, input: later.input, output: later.output, cached: later.cached, cache_write: later.cache_write },
      { from: '2099-01-01T00:00:00Z', input: '2.00', output: '8.00', cached: null, cache_write: null },
    );
    assert.equal(json.find((p) => p.meter === 'tool').call, '0.00');
    assert.ok(!('input' in json.find((p) => p.meter === 'route')), 'a route row has route amounts only');
    r = await gw.cli(['price', 'list', '--format', 'csv']);
    const csv = r.stdout.trim().split('\n');
    assert.equal(csv[0], 'meter,name,from,status,input,output,cached,cache_write,request,gb,call');
    assert.ok(csv.includes('model,gpt-4o,2026-01-01T00:00:00Z,current,2.50,10.00,1.25,,,,'), r.stdout);

    // rm: one row by its --from (as listed), or every row of a name.
    r = await gw.cli(['price', 'rm', 'gpt-4o', '--from', '2099-01-01T00:00:00Z']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'price removed: model gpt-4o from 2099-01-01T00:00:00Z\n');
    r = await gw.cli(['price', 'rm', '--route', 'later']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'price removed: route later (every row)\n');
    const left = JSON.parse((await gw.cli(['price', 'list', '--format', 'json'])).stdout);
    assert.deepEqual(left.map((p) => `${p.meter}:${p.name}`), ['model:*', 'model:gpt-4o', 'route:chat', 'tool:search']);

    const v1 = await policyVersion();
    await refuses([
      [['price', 'set', 'gpt-4o', '--input', 'abc', '--output', '1'], 2, /invalid --input "abc"/],
      [['price', 'set', 'gpt-4o', '--input', '-1', '--output', '1'], 2, /invalid --input "-1"/],
      [['price', 'set', 'gpt-4o', '--input', '1.0000001', '--output', '1'], 2, /invalid --input "1\.0000001".*6 decimals/],
      [['price', 'set', 'gpt-4o', '--input', '$1', '--output', '1'], 2, /invalid --input/],
      [['price', 'set', 'gpt-4o', '--input', '1'], 2, /needs --input USD and --output USD/],
      [['price', 'set', 'gpt-4o', '--input', '1', '--output', '1', '--call', '1'], 2, /--call prices a tool/],
      [['price', 'set', '--tool', 'x'], 2, /needs --call/],
      [['price', 'set', '--route', 'chat'], 2, /needs --request USD or --gb USD/],
      [['price', 'set', '--route', 'chat', '--input', '1'], 2, /--input prices a model/],
      [['price', 'set', 'gpt-4o', '--tool', 'x', '--call', '1'], 2, /one of MODEL, --route NAME and --tool NAME/],
      [['price', 'set', '--input', '1', '--output', '1'], 2, /needs a MODEL, --route NAME or --tool NAME/],
      [['price', 'set', 'gpt-4o', '--input', '1', '--output', '1', '--from', '2026-02-30'], 2, /invalid --from "2026-02-30"/],
      [['price', 'set', 'gpt-4o', '--input', '1', '--output', '1', '--from', 'tomorrow'], 2, /invalid --from/],
      [['price', 'set', 'gpt-4o', '--imput', '1'], 2, /unknown option --imput/],
      [['price', 'rm', 'gpt-4o', '--from', 'now'], 2, /invalid --from "now"/],
      [['price', 'rm', 'nosuch'], 1, /no price for model "nosuch"/],
      [['price', 'rm', 'gpt-4o', '--from', '2030-01-01'], 1, /no price for model "gpt-4o" from 2030-01-01T00:00:00Z/],
      [['price', 'list', '--format', 'xml'], 2, /invalid --format "xml"/],
      [['price', 'frob'], 2, /unknown price subcommand "frob"/],
    ]);
    assert.equal(await policyVersion(), v1, 'refused changes bump nothing');
  });

  test('budget set, show, list and rm: spend of this month, alerts, thresholds', async () => {
    let r = await gw.cli(['budget', 'set', '--tenant', 'acme', '--monthly', '100']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'budget set: acme 100.00 USD per month, hard (402 once spent), alerts at 80,90,100%\n');
    r = await gw.cli(['budget', 'set', '--tenant', 'beta', '--monthly', '0.5', '--soft', '--thresholds', '50,100,250']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /soft \(alerts only\), alerts at 50,100,250%/);
    let rows = await sqlite(gw.dbPath, 'select * from budgets order by tenant_id');
    assert.deepEqual(
      rows.map((b) => [b.tenant_id, b.monthly_micros, b.hard, b.thresholds]),
      [['acme', 100000000, 1, '80,90,100'], ['beta', 500000, 0, '50,100,250']],
    );

    // Spend is usage_daily of this UTC month only; alerts shown are this month's.
    await sqlite(
      gw.dbPath,
      `insert into usage_daily (tenant_id, day, cost_micros) values ('acme', '${month}-01', 42000000),` +
        ` ('acme', '${month}-02', 500001), ('acme', '1999-12-31', 7000000);` +
        ` insert into alerts (kind, tenant_id, threshold, period, spend_micros, budget_micros, fired_us) values` +
        ` ('budget', 'acme', 80, '${month}', 80000000, 100000000, 1767225600000000),` +
        ` ('budget', 'acme', 90, '1999-12', 1, 1, 1)`,
    );
    r = await gw.cli(['budget', 'show', '--tenant', 'acme', '--month', month]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^budget:\s+100\.00 USD per month, hard/m);
    assert.match(r.stdout, new RegExp(`^period:\\s+${month} \\(UTC`, 'm'));
    assert.match(r.stdout, /^spend:\s+42\.500001$/m);
    assert.match(r.stdout, /^used:\s+42\.5%$/m);
    assert.match(r.stdout, /^remaining:\s+57\.499999$/m);
    assert.match(r.stdout, /^thresholds:\s+80,90,100%$/m);
    assert.match(r.stdout, /^alerts:\s+80% at 2026-01-01T00:00:00Z, spend 80\.00$/m);
    assert.doesNotMatch(r.stdout, /90% at/, 'alerts of other months are not shown');
    r = await gw.cli(['budget', 'show', '--tenant', 'acme', '--month', month, '--format', 'json']);
    const b = JSON.parse(r.stdout);
    assert.equal(b.monthly, '100.00');
    assert.equal(b.monthly_micros, 100000000);
    assert.equal(b.mode, 'hard');
    assert.deepEqual(b.thresholds, [80, 90, 100]);
    assert.equal(b.spend, '42.500001');
    assert.equal(b.spend_micros, 42500001);
    assert.equal(b.used_percent, 42.5);
    assert.equal(b.remaining, '57.499999');
    assert.equal(b.period, month);
    assert.deepEqual(b.alerts, [{ threshold: 80, fired: '2026-01-01T00:00:00Z', spend: '80.00', budget: '100.00' }]);

    r = await gw.cli(['budget', 'list', '--month', month]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^TENANT\s+MONTHLY\s+MODE\s+THRESHOLDS\s+SPEND\s+USED\s+UPDATED$/m);
    assert.match(r.stdout, /^acme\s+100\.00\s+hard\s+80,90,100\s+42\.500001\s+42\.5%\s+\d{4}-/m);
    assert.match(r.stdout, /^beta\s+0\.50\s+soft\s+50,100,250\s+0\.00\s+0\.0%\s+/m);
    r = await gw.cli(['budget', 'list', '--month', month, '--format', 'csv']);
    assert.match(r.stdout, /^tenant,monthly,mode,thresholds,spend,used,updated\nacme,100\.00,hard,"80,90,100",42\.500001,42\.5%,/);
    r = await gw.cli(['budget', 'list', '--month', month, '--format', 'json']);
    assert.deepEqual(JSON.parse(r.stdout).map((x) => [x.tenant, x.mode, x.spend]), [['acme', 'hard', '42.500001'], ['beta', 'soft', '0.00']]);

    // set replaces the whole row: no --soft is hard again, no --thresholds the default.
    r = await gw.cli(['budget', 'set', '--tenant', 'beta', '--monthly', '1.25']);
    assert.equal(r.code, 0, r.stderr);
    rows = await sqlite(gw.dbPath, "select * from budgets where tenant_id = 'beta'");
    assert.deepEqual([rows[0].monthly_micros, rows[0].hard, rows[0].thresholds], [1250000, 1, '80,90,100']);
    const v0 = await policyVersion();
    r = await gw.cli(['budget', 'rm', '--tenant', 'beta']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'budget removed: beta\n');
    assert.equal(await policyVersion(), v0 + 1);

    await refuses([
      [['budget', 'set', '--tenant', 'nobody', '--monthly', '10'], 1, /no tenant "nobody"/],
      [['budget', 'set', '--tenant', 'acme', '--monthly', 'ten'], 2, /invalid --monthly "ten"/],
      [['budget', 'set', '--tenant', 'acme', '--monthly', '10.1234567'], 2, /invalid --monthly/],
      [['budget', 'set', '--tenant', 'acme', '--monthly', '0'], 2, /--monthly must be more than 0/],
      [['budget', 'set', '--tenant', 'acme'], 2, /needs --monthly USD/],
      [['budget', 'set', '--monthly', '10'], 2, /needs --tenant ID/],
      [['budget', 'set', '--tenant', '*', '--monthly', '10'], 2, /invalid tenant id "\*"/],
      [['budget', 'set', '--tenant', 'acme', '--monthly', '10', '--thresholds', '90,80'], 2, /must ascend/],
      [['budget', 'set', '--tenant', 'acme', '--monthly', '10', '--thresholds', '80,80'], 2, /must ascend/],
      [['budget', 'set', '--tenant', 'acme', '--monthly', '10', '--thresholds', '0,50'], 2, /invalid --thresholds "0,50"/],
      [['budget', 'set', '--tenant', 'acme', '--monthly', '10', '--thresholds', '1001'], 2, /from 1 to 1000/],
      [['budget', 'set', '--tenant', 'acme', '--monthly', '10', '--thresholds', '80;90'], 2, /invalid --thresholds/],
      [['budget', 'set', '--tenant', 'acme', '--monthly', '10', '--thresholds', ''], 2, /invalid --thresholds/],
      [['budget', 'set', '--tenant', 'acme', '--monthly', '10', '--thresholds', '1,2,3,4,5,6,7,8,9'], 2, /at most 8/],
      [['budget', 'set', '--tenant', 'acme', '--monthly', '10', '--soft=1'], 2, /--soft takes no value/],
      [['budget', 'show', '--tenant', 'beta'], 1, /no budget for tenant "beta"/],
      [['budget', 'show', '--tenant', 'acme', '--month', '2026-13'], 2, /invalid --month "2026-13" \(YYYY-MM\)/],
      [['budget', 'list', '--month', '2026-3'], 2, /invalid --month "2026-3" \(YYYY-MM\)/],
      [['budget', 'show', '--tenant', 'nobody'], 1, /no tenant "nobody"/],
      [['budget', 'show', '--tenant', 'acme', '--format', 'csv'], 2, /invalid --format "csv" \(expected table or json\)/],
      [['budget', 'rm', '--tenant', 'beta'], 1, /no budget for tenant "beta"/],
      [['budget', 'rm'], 2, /needs --tenant ID/],
    ]);
    const still = await sqlite(gw.dbPath, "select * from budgets where tenant_id = 'acme'");
    assert.equal(still[0].monthly_micros, 100000000, 'refused sets changed nothing');
  });

  test('tool allow, deny, list and rm: per tenant and for every tenant', async () => {
    const v0 = await policyVersion();
    for (const [args, out] of [
      [['tool', 'deny', '--tenant', 'acme', 'delete_*'], 'tool rule added: deny delete_* for tenant acme\n'],
      [['tool', 'allow', '--tenant', 'acme', 'github_*'], 'tool rule added: allow github_* for tenant acme\n'],
      [['tool', 'deny', '--tenant', '*', 'shell'], 'tool rule added: deny shell for all tenants\n'],
      [['tool', 'allow', '--tenant=beta', '--', '-odd-[ab]?'], 'tool rule added: allow -odd-[ab]? for tenant beta\n'],
    ]) {
      const r = await gw.cli(args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, out);
    }
    assert.equal(await policyVersion(), v0 + 4);
    let r = await gw.cli(['tool', 'list']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0], /^TENANT\s+ACTION\s+PATTERN\s+CREATED$/);
    assert.deepEqual(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 3).join(' ')), [
      '* deny shell',
      'acme allow github_*',
      'acme deny delete_*',
      'beta allow -odd-[ab]?',
    ]);
    r = await gw.cli(['tool', 'list', '--tenant', 'acme', '--format', 'json']);
    assert.deepEqual(JSON.parse(r.stdout).map((x) => [x.tenant, x.action, x.pattern]), [['acme', 'allow', 'github_*'], ['acme', 'deny', 'delete_*']]);
    r = await gw.cli(['tool', 'list', '--tenant', '*', '--format', 'csv']);
    assert.match(r.stdout, /^tenant,action,pattern,created\n\*,deny,shell,\d{4}-/);
    r = await gw.cli(['tool', 'rm', '--tenant', 'acme', 'deny', 'delete_*']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'tool rule removed: deny delete_* for tenant acme\n');
    assert.equal((await sqlite(gw.dbPath, "select count(*) n from tool_rules where tenant_id = 'acme'"))[0].n, 1);

    await refuses([
      [['tool', 'allow', '--tenant', 'acme', 'github_*'], 1, /tool rule allow "github_\*" for tenant "acme" already exists/],
      [['tool', 'deny', '--tenant', 'nobody', 'x'], 1, /no tenant "nobody"/],
      [['tool', 'deny', 'x'], 2, /needs --tenant ID/],
      [['tool', 'deny', '--tenant', 'acme'], 2, /needs a PATTERN/],
      [['tool', 'deny', '--tenant', 'acme', ''], 2, /must not be empty/],
      [['tool', 'deny', '--tenant', 'acme', 'x'.repeat(200)], 2, /too long/],
      [['tool', 'deny', '--tenant', 'bad id', 'x'], 2, /invalid tenant id/],
      [['tool', 'rm', '--tenant', 'acme', 'block', 'x'], 2, /invalid action "block"/],
      [['tool', 'rm', '--tenant', 'acme', 'deny', 'delete_*'], 1, /no tool rule deny "delete_\*" for tenant "acme"/],
      [['tool', 'list', '--tenant', 'nobody'], 1, /no tenant "nobody"/],
      [['tool', 'list', '--format', 'yaml'], 2, /invalid --format/],
      [['tool', 'block'], 2, /unknown tool subcommand "block"/],
    ]);
  });

  test('limit set --tpm/--tph and --model; limit list shows the token columns', async () => {
    let r = await gw.cli(['limit', 'set', '--tenant', 'acme', '--rpm', '600', '--tpm', '100000']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'limit set: acme 600/min tokens 100000/min\n');
    r = await gw.cli(['limit', 'set', '--tenant', 'acme', '--model', 'gpt-4o', '--tph', '2000000']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'limit set: acme model gpt-4o tokens 2000000/h\n');
    r = await gw.cli(['limit', 'set', '--tenant', 'acme', '--model', 'o1', '--rpm', '0']);
    assert.equal(r.code, 0, r.stderr);
    const rows = await sqlite(gw.dbPath, "select * from limits where tenant_id = 'acme' order by scope, value");
    assert.deepEqual(
      rows.map((l) => [l.scope, l.value, l.requests, l.period_s, l.tokens, l.tokens_period_s]),
      [['model', 'gpt-4o', 0, 0, 2000000, 3600], ['model', 'o1', 0, 60, 0, 0], ['tenant', '', 600, 60, 100000, 60]],
    );
    r = await gw.cli(['limit', 'list', '--tenant', 'acme']);
    assert.match(r.stdout, /^TENANT\s+SCOPE\s+VALUE\s+LIMIT\s+BURST\s+TOKENS\s+CONCURRENCY\s+UPDATED$/m);
    assert.match(r.stdout, /^acme\s+tenant\s+-\s+600\/min\s+600\s+100000\/min\s+-\s+/m);
    assert.match(r.stdout, /^acme\s+model\s+gpt-4o\s+-\s+-\s+2000000\/h\s+-\s+/m);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[1], /tenant/, 'the tenant-wide row first, model rows last');
    r = await gw.cli(['limit', 'list', '--tenant', 'acme', '--format', 'json']);
    const json = JSON.parse(r.stdout);
    assert.deepEqual(
      json.map((l) => [l.scope, l.value, l.tokens, l.tokens_period_s]),
      [['tenant', '', 100000, 60], ['model', 'gpt-4o', 2000000, 3600], ['model', 'o1', null, null]],
    );
    r = await gw.cli(['limit', 'rm', '--tenant', 'acme', '--model', 'o1']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'limit removed: acme model o1\n');
    await refuses([
      [['limit', 'set', '--tenant', 'acme', '--tpm', '0'], 2, /invalid --tpm "0"/],
      [['limit', 'set', '--tenant', 'acme', '--tph', 'many'], 2, /invalid --tph "many"/],
      [['limit', 'set', '--tenant', 'acme', '--tpm', '1', '--tph', '2'], 2, /one of --tpm and --tph/],
      [['limit', 'set', '--tenant', 'acme', '--tool', 'search', '--tpm', '10'], 2, /tool calls have no tokens/],
      [['limit', 'set', '--tenant', 'acme', '--model', 'gpt-4o', '--route', 'chat', '--tpm', '10'], 2, /at most one of --route, --tool, --key and --model/],
      [['limit', 'set', '--tenant', 'acme', '--model', 'gpt-4o', '--concurrency', '2'], 2, /whole tenant/],
      [['limit', 'set', '--tenant', 'acme', '--model', ''], 2, /--model must not be empty/],
      [['limit', 'set', '--tenant', 'acme', '--model', 'gpt-4o'], 2, /needs --rps N.*--tpm N/],
      [['limit', 'set', '--tenant', 'nobody', '--tpm', '10'], 1, /no tenant "nobody"/],
      [['limit', 'rm', '--tenant', 'acme', '--model', 'o1'], 1, /no limit for tenant "acme" model "o1"/],
    ]);
  });

  test('usage --by model and --by tool: tokens in and out, cost in USD', async () => {
    // Events as the recorder writes them for an AI route and an MCP route.
    const now = 1772359200000000; // 2026-03-01T10:00:00Z
    const ev = (id, model, tool, tin, tout, cost) =>
      `(${eventId(now + id, id)}, ${now + id}, 'ai', 'POST', '/v1/x', 200, 'billable', 1, 10, 20, ${model}, ${tin}, ${tout}, ${tool}, ${cost})`;
    await usagePartitions(gw.dbPath, [now]);
    await sqlite(
      gw.dbPath,
      'insert into usage_events (id, ts_us, tenant, method, path, status, outcome, latency_us, bytes_in, bytes_out,' +
        ' model, tokens_in, tokens_out, tool, cost_micros) values ' +
        [
          ev(1, "'gpt-4o'", 'NULL', 1000, 200, 4500),
          ev(2, "'gpt-4o'", 'NULL', 3000, 100, 8500),
          ev(3, "'claude'", 'NULL', 'NULL', 'NULL', 0),
          ev(4, 'NULL', "'search'", 'NULL', 'NULL', 10000),
          ev(5, 'NULL', "'search'", 'NULL', 'NULL', 10000),
        ].join(', '),
    );
    let r = await gw.cli(['usage', '--tenant', 'ai', '--by', 'model', '--format', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const byModel = Object.fromEntries(JSON.parse(r.stdout).map((x) => [x.model, x]));
    assert.deepEqual(
      [byModel['gpt-4o'].requests, byModel['gpt-4o'].tokens_in, byModel['gpt-4o'].tokens_out, byModel['gpt-4o'].cost_micros, byModel['gpt-4o'].cost_usd],
      [2, 4000, 300, 13000, '0.013000'],
    );
    assert.deepEqual([byModel.claude.tokens_in, byModel.claude.tokens_out], [0, 0], 'unknown tokens count as 0');
    assert.equal(byModel[''].requests, 2, 'the tool calls have no model');
    r = await gw.cli(['usage', '--tenant', 'ai', '--by', 'model']);
    assert.match(r.stdout, /^TENANT\s+MODEL\s+REQUESTS\s+BILLABLE\s+FAILED\s+REJECTED\s+BYTES_IN\s+BYTES_OUT\s+TOKENS_IN\s+TOKENS_OUT\s+COST_USD$/m);
    assert.match(r.stdout, /^ai\s+gpt-4o\s+2\s+2\s+0\s+0\s+20\s+40\s+4000\s+300\s+0\.013000$/m);
    r = await gw.cli(['usage', '--tenant', 'ai', '--by', 'tool', '--format', 'csv']);
    const csv = r.stdout.trim().split('\n');
    assert.equal(csv[0], 'tenant,tool,requests,billable,failed,rejected,bytes_in,bytes_out,tokens_in,tokens_out,cost_usd');
    assert.ok(csv.includes('ai,search,2,2,0,0,20,40,0,0,0.020000'), r.stdout);
  });

  test('help lists the new commands', async () => {
    const r = await run(bin, ['help']);
    assert.equal(r.code, 0);
    for (const s of ['price set MODEL', 'price list', 'budget set --tenant ID --monthly USD', 'budget show', 'tool allow|deny', '--tpm N', '--model M']) {
      assert.ok(r.stdout.includes(s), `help mentions ${s}`);
    }
    for (const g of ['price', 'budget', 'tool']) {
      const h = await run(bin, [g, '--help']);
      assert.equal(h.code, 0);
      assert.match(h.stdout, new RegExp(`^usage: tollgate ${g} `));
    }
  });
});

// What every list command prints, byte for byte, in each of its formats: the layout a
// script parses (column widths, "-" for none, CSV quoting, JSON keys, types and nulls).
// Rows get fixed times through sqlite3, and a few are written by hand the way only a
// direct edit of the store could (a long key prefix, a huge concurrency, bytes that are
// not UTF-8), since the commands must print those too.
describe('cli: list output, byte for byte', () => {
  const T = 1772359200000000; // 2026-03-01T10:00:00Z
  const month = '2026-03'; // a fixed month, asked for with --month: never today's
  let dir, db;
  const cli = async (...args) => {
    const r = await run(bin, ['-c', `${dir}/tollgate.yaml`, ...args]);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const lines = (...l) => l.join('\n') + '\n';
  const json = (v) => JSON.stringify(v, null, 2) + '\n';

  before(async () => {
    dir = await tempDir();
    db = `${dir}/t.db`;
    await fs.promises.writeFile(`${dir}/tollgate.yaml`, `store: sqlite:${db}\n`);
    await cli('tenant', 'add', 'acme', '--name', 'Acme Inc');
    await cli('tenant', 'add', 'beta');
    await cli('tenant', 'add', 'a-longer-tenant', '--name', 'Ünïcødé, Ltd');
    await cli('tenant', 'disable', 'beta');
    await cli('key', 'create', '--tenant', 'acme', '--name', 'ci');
    await cli('limit', 'set', '--tenant', 'acme', '--rpm', '600', '--burst', '50', '--concurrency', '20');
    await cli('limit', 'set', '--tenant', 'acme', '--route', 'chat', '--rps', '100');
    await cli('limit', 'set', '--tenant', 'acme', '--tool', 'delete_repo', '--rpm', '0');
    await cli('limit', 'set', '--tenant', 'acme', '--model', 'gpt-4o', '--rph', '60', '--tph', '200000');
    await cli('limit', 'set', '--tenant', 'beta', '--concurrency', '4');
    await cli('pause', '--reason', 'incident 4312');
    await cli('pause', '--tenant', 'acme', '--reason', 'billing, "review"');
    await cli('pause', '--tenant', 'beta');
    await cli('ip', 'deny', '203.0.113.0/24');
    await cli('ip', 'allow', '2001:DB8::/32', '--tenant', 'acme');
    await cli('ip', 'deny', '192.0.2.7', '--tenant', 'acme');
    await cli('price', 'set', 'gpt-4o', '--input', '2.50', '--output', '10', '--cached', '1.25', '--from', '2020-01-01');
    await cli('price', 'set', 'gpt-4o', '--input', '2', '--output', '8', '--cache-write', '0.000001', '--from', '2099-01-01');
    await cli('price', 'set', 'old', '--input', '1', '--output', '1', '--from', '2019-01-01');
    await cli('price', 'set', 'old', '--input', '3', '--output', '3', '--from', '2020-01-01T10:11:12Z');
    await cli('price', 'set', '--route', 'chat', '--gb', '0.05', '--from', '2020-01-01');
    await cli('price', 'set', '--tool', 'a,"b"', '--call', '0', '--from', '2020-01-01');
    await cli('budget', 'set', '--tenant', 'acme', '--monthly', '100');
    await cli('budget', 'set', '--tenant', 'beta', '--monthly', '0.5', '--soft', '--thresholds', '50,100,250');
    await cli('tool', 'deny', '--tenant', '*', 'shell_*');
    await cli('tool', 'allow', '--tenant', 'acme', 'github_*');
    await cli('tool', 'deny', '--tenant', 'acme', 'a "quoted", pattern');
    const bad = "cast(X'C3A9FF' as text)"; // "é" then a byte that is not UTF-8
    await sqlite(
      db,
      [
        `update tenants set created_us = ${T}`,
        `update api_keys set id = 'key_0123456789abcdef', prefix = 'tg_Xb3dE', created_us = ${T}, last_used_us = ${T + 1000000}`,
        `insert into api_keys (id, tenant_id, sha256, prefix, name, status, created_us) values` +
          ` ('key_hand', 'beta', randomblob(32), 'tg_longer_prefix', '', 'revoked', 0)`,
        `insert into limits (tenant_id, scope, value, concurrency, updated_us) values ('zz', 'tenant', '', 123456789012345, ${T})`,
        `update limits set updated_us = ${T}`,
        `insert into pauses (tenant_id, reason, created_us) values ('zz', ${bad}, 0)`,
        `update pauses set created_us = ${T}`,
        `update ip_rules set created_us = ${T}`,
        `update prices set created_us = ${T}`,
        `update budgets set updated_us = ${T}`,
        `update tool_rules set created_us = ${T}`,
        `insert into usage_daily (tenant_id, day, requests, billable, cost_micros) values` +
          ` ('acme', '${month}-01', 3, 3, 42000000), ('acme', '1999-12-31', 1, 1, 7000000), ('', '${month}-02', 2, 0, 0)`,
        `insert into alerts (kind, tenant_id, threshold, period, spend_micros, budget_micros, fired_us) values` +
          ` ('budget', 'acme', 80, '${month}', 80000000, 100000000, ${T}), ('budget', 'acme', 90, '1999-12', 1, 1, 1)`,
        `insert into usage_events (id, ts_us, tenant, method, path, status, outcome, latency_us, bytes_in, bytes_out,` +
          ` model, tokens_in, tokens_out, cost_micros) values` +
          ` (1, ${T}, 'acme', 'POST', '/v1/x', 200, 'billable', 1, 10, 20, 'gpt-4o', 1000, 200, 4500),` +
          ` (2, ${T}, 'acme', 'POST', '/v1/x', 500, 'failed', 1, 10, 20, ${bad}, 3000, 100, 0),` +
          ` (3, ${T}, '', 'POST', '/v1/x', 401, 'rejected', 1, 10, 0, NULL, NULL, NULL, 0),` +
          ` (4, ${T}, 'beta', 'POST', '/v1/x', 200, 'billable', 1, 10, 20, 'a,"b"', 5, 5, 1500)`,
      ].join('; '),
    );
  });
  const created = (tenant, action, x) => ({ tenant, action, [x.key]: x.value, created: '2026-03-01T10:00:00Z' });
  const U = '\uFFFD'; // how a byte that is not UTF-8 reads back here

  test('tenant list and key list: fixed-width columns, "-" for none', async () => {
    assert.equal(
      await cli('tenant', 'list'),
      lines(
        'ID               NAME              STATUS    CREATED',
        'a-longer-tenant  Ünïcødé, Ltd  active    2026-03-01T10:00:00Z',
        'acme             Acme Inc          active    2026-03-01T10:00:00Z',
        'beta                               disabled  2026-03-01T10:00:00Z',
      ),
    );
    // PREFIX, STATUS and CREATED have fixed widths: a longer prefix (only a hand-written
    // row has one) pushes the rest of its line right.
    assert.equal(
      await cli('key', 'list'),
      lines(
        'ID                    TENANT  PREFIX    NAME  STATUS   CREATED               LAST_USED             EXPIRES  SIGNING  ROTATED_FROM',
        'key_0123456789abcdef  acme    tg_Xb3dE  ci    active   2026-03-01T10:00:00Z  2026-03-01T10:00:01Z  -        no       -',
        'key_hand              beta    tg_longer_prefi  -     revoked  -                     -                     -        no       -',
      ),
    );
    assert.equal(await cli('key', 'list', '--tenant', 'a-longer-tenant'), 'ID  TENANT  PREFIX    NAME  STATUS   CREATED               LAST_USED  EXPIRES  SIGNING  ROTATED_FROM\n');
  });

  test('limit list: table and json', async () => {
    assert.equal(
      await cli('limit', 'list'),
      lines(
        'TENANT  SCOPE   VALUE        LIMIT    BURST  TOKENS    CONCURRENCY  UPDATED',
        'acme    tenant  -            600/min  50     -         20           2026-03-01T10:00:00Z',
        'acme    route   chat         100/s    100    -         -            2026-03-01T10:00:00Z',
        'acme    tool    delete_repo  0/min    0      -         -            2026-03-01T10:00:00Z',
        'acme    model   gpt-4o       60/h     60     200000/h  -            2026-03-01T10:00:00Z',
        'beta    tenant  -            -        -      -         4            2026-03-01T10:00:00Z',
        'zz      tenant  -            -        -      -         123456789012345  2026-03-01T10:00:00Z',
      ),
    );
    const none = { limit: null, period_s: null, burst: null, tokens: null, tokens_period_s: null, concurrency: null };
    const row = (tenant, scope, value, set) => ({ tenant, scope, value, ...none, ...set, updated: '2026-03-01T10:00:00Z' });
    assert.equal(
      await cli('limit', 'list', '--format', 'json'),
      json([
        row('acme', 'tenant', '', { limit: 600, period_s: 60, burst: 50, concurrency: 20 }),
        row('acme', 'route', 'chat', { limit: 100, period_s: 1, burst: 100 }),
        row('acme', 'tool', 'delete_repo', { limit: 0, period_s: 60, burst: 0 }),
        row('acme', 'model', 'gpt-4o', { limit: 60, period_s: 3600, burst: 60, tokens: 200000, tokens_period_s: 3600 }),
        row('beta', 'tenant', '', { concurrency: 4 }),
        row('zz', 'tenant', '', { concurrency: 123456789012345 }),
      ]),
    );
    assert.equal(await cli('limit', 'list', '--tenant', 'a-longer-tenant', '--format', 'json'), '[]\n');
  });

  test('pause list and ip list: table and json', async () => {
    assert.equal(
      await cli('pause', 'list'),
      lines(
        'TENANT  REASON             SINCE',
        '*       incident 4312      2026-03-01T10:00:00Z',
        'acme    billing, "review"  2026-03-01T10:00:00Z',
        'beta    -                  2026-03-01T10:00:00Z',
        `zz      é${U}                2026-03-01T10:00:00Z`,
      ),
    );
    const since = '2026-03-01T10:00:00Z';
    assert.equal(
      await cli('pause', 'list', '--format', 'json'),
      json([
        { tenant: '*', reason: 'incident 4312', since },
        { tenant: 'acme', reason: 'billing, "review"', since },
        { tenant: 'beta', reason: '', since },
        { tenant: 'zz', reason: 'é?', since },
      ]),
    );
    assert.equal(
      await cli('ip', 'list'),
      lines(
        'TENANT  ACTION  CIDR            CREATED',
        '*       deny    203.0.113.0/24  2026-03-01T10:00:00Z',
        'acme    allow   2001:db8::/32   2026-03-01T10:00:00Z',
        'acme    deny    192.0.2.7/32    2026-03-01T10:00:00Z',
      ),
    );
    const cidr = (value) => ({ key: 'cidr', value });
    assert.equal(
      await cli('ip', 'list', '--tenant', 'acme', '--format', 'json'),
      json([created('acme', 'allow', cidr('2001:db8::/32')), created('acme', 'deny', cidr('192.0.2.7/32'))]),
    );
    assert.equal(await cli('ip', 'list', '--tenant', 'beta'), 'TENANT  ACTION  CIDR  CREATED\n');
  });

  test('tool list: table, json and csv', async () => {
    assert.equal(
      await cli('tool', 'list'),
      lines(
        'TENANT  ACTION  PATTERN              CREATED',
        '*       deny    shell_*              2026-03-01T10:00:00Z',
        'acme    allow   github_*             2026-03-01T10:00:00Z',
        'acme    deny    a "quoted", pattern  2026-03-01T10:00:00Z',
      ),
    );
    const pattern = (value) => ({ key: 'pattern', value });
    assert.equal(
      await cli('tool', 'list', '--format', 'json'),
      json([
        created('*', 'deny', pattern('shell_*')),
        created('acme', 'allow', pattern('github_*')),
        created('acme', 'deny', pattern('a "quoted", pattern')),
      ]),
    );
    assert.equal(
      await cli('tool', 'list', '--format', 'csv'),
      lines(
        'tenant,action,pattern,created',
        '*,deny,shell_*,2026-03-01T10:00:00Z',
        'acme,allow,github_*,2026-03-01T10:00:00Z',
        'acme,deny,"a ""quoted"", pattern",2026-03-01T10:00:00Z',
      ),
    );
  });

  test("price list: table, json (only the meter's amounts) and csv", async () => {
    assert.equal(
      await cli('price', 'list'),
      lines(
        'METER  NAME    FROM                  STATUS      INPUT  OUTPUT  CACHED  CACHE_WRITE  REQUEST  GB    CALL',
        'model  gpt-4o  2020-01-01T00:00:00Z  current     2.50   10.00   1.25    -            -        -     -',
        'model  gpt-4o  2099-01-01T00:00:00Z  scheduled   2.00   8.00    -       0.000001     -        -     -',
        'model  old     2019-01-01T00:00:00Z  superseded  1.00   1.00    -       -            -        -     -',
        'model  old     2020-01-01T10:11:12Z  current     3.00   3.00    -       -            -        -     -',
        'route  chat    2020-01-01T00:00:00Z  current     -      -       -       -            -        0.05  -',
        'tool   a,"b"   2020-01-01T00:00:00Z  current     -      -       -       -            -        -     0.00',
      ),
    );
    const p = (meter, name, from, status, amounts) => ({ meter, name, from, status, ...amounts, created: '2026-03-01T10:00:00Z' });
    assert.equal(
      await cli('price', 'list', '--format', 'json'),
      json([
        p('model', 'gpt-4o', '2020-01-01T00:00:00Z', 'current', { input: '2.50', output: '10.00', cached: '1.25', cache_write: null }),
        p('model', 'gpt-4o', '2099-01-01T00:00:00Z', 'scheduled', { input: '2.00', output: '8.00', cached: null, cache_write: '0.000001' }),
        p('model', 'old', '2019-01-01T00:00:00Z', 'superseded', { input: '1.00', output: '1.00', cached: null, cache_write: null }),
        p('model', 'old', '2020-01-01T10:11:12Z', 'current', { input: '3.00', output: '3.00', cached: null, cache_write: null }),
        p('route', 'chat', '2020-01-01T00:00:00Z', 'current', { request: null, gb: '0.05' }),
        p('tool', 'a,"b"', '2020-01-01T00:00:00Z', 'current', { call: '0.00' }),
      ]),
    );
    assert.equal(
      await cli('price', 'list', '--format', 'csv'),
      lines(
        'meter,name,from,status,input,output,cached,cache_write,request,gb,call',
        'model,gpt-4o,2020-01-01T00:00:00Z,current,2.50,10.00,1.25,,,,',
        'model,gpt-4o,2099-01-01T00:00:00Z,scheduled,2.00,8.00,,0.000001,,,',
        'model,old,2019-01-01T00:00:00Z,superseded,1.00,1.00,,,,,',
        'model,old,2020-01-01T10:11:12Z,current,3.00,3.00,,,,,',
        'route,chat,2020-01-01T00:00:00Z,current,,,,,,0.05,',
        'tool,"a,""b""",2020-01-01T00:00:00Z,current,,,,,,,0.00',
      ),
    );
  });

  test('budget list and show: table, json (reals as jansson prints them) and csv', async () => {
    assert.equal(
      await cli('budget', 'list', '--month', month),
      lines(
        'TENANT  MONTHLY  MODE  THRESHOLDS  SPEND  USED   UPDATED',
        'acme    100.00   hard  80,90,100   42.00  42.0%  2026-03-01T10:00:00Z',
        'beta    0.50     soft  50,100,250  0.00   0.0%   2026-03-01T10:00:00Z',
      ),
    );
    assert.equal(
      await cli('budget', 'list', '--month', month, '--format', 'csv'),
      lines(
        'tenant,monthly,mode,thresholds,spend,used,updated',
        'acme,100.00,hard,"80,90,100",42.00,42.0%,2026-03-01T10:00:00Z',
        'beta,0.50,soft,"50,100,250",0.00,0.0%,2026-03-01T10:00:00Z',
      ),
    );
    // Literal text, not JSON.stringify: jansson prints a whole used_percent as 42.0. The
    // fields up to updated, which list and show share.
    const fields = (tenant, monthly, mode, thresholds, spend, used, remaining, micros) => [
      `"tenant": "${tenant}",`,
      `"monthly": "${monthly}",`,
      `"mode": "${mode}",`,
      '"thresholds": [',
      ...thresholds.map((t, i) => `  ${t}${i + 1 < thresholds.length ? ',' : ''}`),
      '],',
      `"spend": "${spend}",`,
      `"used_percent": ${used},`,
      `"remaining": "${remaining}",`,
      `"monthly_micros": ${micros[0]},`,
      `"spend_micros": ${micros[1]},`,
      `"remaining_micros": ${micros[2]},`,
    ];
    const acme = fields('acme', '100.00', 'hard', [80, 90, 100], '42.00', '42.0', '58.00', [100000000, 42000000, 58000000]);
    const beta = fields('beta', '0.50', 'soft', [50, 100, 250], '0.00', '0.0', '0.50', [500000, 0, 500000]);
    const updated = '"updated": "2026-03-01T10:00:00Z"';
    const indent = (n, l) => l.map((x) => ' '.repeat(n) + x);
    assert.equal(
      await cli('budget', 'list', '--month', month, '--format', 'json'),
      lines('[', '  {', ...indent(4, [...acme, updated]), '  },', '  {', ...indent(4, [...beta, updated]), '  }', ']'),
    );
    const show = (f, alerts) => lines('{', ...indent(2, [...f, `${updated},`, `"period": "${month}",`, ...alerts]), '}');
    assert.equal(
      await cli('budget', 'show', '--tenant', 'acme', '--month', month, '--format', 'json'),
      show(acme, [
        '"alerts": [',
        '  {',
        '    "threshold": 80,',
        '    "fired": "2026-03-01T10:00:00Z",',
        '    "spend": "80.00",',
        '    "budget": "100.00"',
        '  }',
        ']',
      ]),
    );
    assert.equal(await cli('budget', 'show', '--tenant', 'beta', '--month', month, '--format', 'json'), show(beta, ['"alerts": []']));
  });

  test('usage: table, json (bytes that are not UTF-8 as "?") and csv', async () => {
    assert.equal(
      await cli('usage', '--by', 'model'),
      lines(
        'TENANT  MODEL   REQUESTS  BILLABLE  FAILED  REJECTED  BYTES_IN  BYTES_OUT  TOKENS_IN  TOKENS_OUT  COST_USD',
        '-       -              1         0       0         1        10          0          0           0  0.000000',
        'acme    gpt-4o         1         1       0         0        10         20       1000         200  0.004500',
        `acme    é${U}            1         0       1         0        10         20       3000         100  0.000000`,
        'beta    a,"b"          1         1       0         0        10         20          5           5  0.001500',
      ),
    );
    const u = (tenant, model, counts, tokens_in, tokens_out, cost) => ({
      tenant,
      model,
      requests: 1,
      ...counts,
      bytes_in: 10,
      bytes_out: tenant ? 20 : 0,
      tokens_in,
      tokens_out,
      cost_micros: cost,
      cost_usd: (cost / 1e6).toFixed(6),
    });
    const billable = { billable: 1, failed: 0, rejected: 0 };
    assert.equal(
      await cli('usage', '--by', 'model', '--format', 'json'),
      json([
        u('', '', { billable: 0, failed: 0, rejected: 1 }, 0, 0, 0),
        u('acme', 'gpt-4o', billable, 1000, 200, 4500),
        // Every byte past ASCII becomes "?" once the text is not UTF-8: the "é" too.
        u('acme', '???', { billable: 0, failed: 1, rejected: 0 }, 3000, 100, 0),
        u('beta', 'a,"b"', billable, 5, 5, 1500),
      ]),
    );
    assert.equal(
      await cli('usage', '--by', 'model', '--format', 'csv'),
      lines(
        'tenant,model,requests,billable,failed,rejected,bytes_in,bytes_out,tokens_in,tokens_out,cost_usd',
        ',,1,0,0,1,10,0,0,0,0.000000',
        'acme,gpt-4o,1,1,0,0,10,20,1000,200,0.004500',
        `acme,é${U},1,0,1,0,10,20,3000,100,0.000000`,
        'beta,"a,""b""",1,1,0,0,10,20,5,5,0.001500',
      ),
    );
    assert.equal(
      await cli('usage', '--by', 'day', '--tenant', 'acme'),
      lines(
        'TENANT  DAY         REQUESTS  BILLABLE  FAILED  REJECTED  BYTES_IN  BYTES_OUT  TOKENS_IN  TOKENS_OUT   COST_USD',
        'acme    1999-12-31         1         1       0         0         0          0          0           0   7.000000',
        `acme    ${month}-01         3         3       0         0         0          0          0           0  42.000000`,
      ),
    );
  });
});
