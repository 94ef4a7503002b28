// /metrics on the admin listener, end to end: two tenants send plain, failing, refused,
// OpenAI (with usage from the mock) and MCP requests through a two-worker gateway; the
// scrape must count exactly what was sent (deltas from a scrape taken before), agree with
// the store's events (requests, bytes, tokens, cost, rejections, tool calls per tenant),
// and pass `promtool check metrics`. Then a real Prometheus (the Debian package's binary,
// loopback, a temp dir) scrapes the gateway every second, and a PromQL query through its
// HTTP API returns the per-tenant request counts.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import {
  createTenantKey,
  freePort,
  request,
  run,
  sqlite,
  startGateway,
  startMcpServer,
  startMock,
  tempDir,
  waitFor,
  waitForKey,
} from './lib/harness.mjs';

const PRICES = { 'gpt-4o-mini': { input: 0.15, output: 0.6, cached: 0.075 } };

/**
 * The samples of a Prometheus text exposition: [{name, labels, value}]. Label values are
 * unescaped (\\, \", \n); a line that is not a comment, blank or a sample throws.
 */
function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${JSON.stringify(line)}`);
    const labels = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/gy;
    let lm;
    let used = 0;
    while ((lm = re.exec(m[2] ?? '')) !== null) {
      labels[lm[1]] = lm[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
      used = re.lastIndex;
      if (lm[3] === '') break;
    }
    assert.equal(used, (m[2] ?? '').length, `bad labels in ${JSON.stringify(line)}`);
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** The sum of the samples named name whose labels include every one of want. */
function sum(samples, name, want = {}) {
  let s = 0;
  for (const x of samples) {
    if (x.name !== name) continue;
    if (Object.entries(want).every(([k, v]) => x.labels[k] === v)) s += x.value;
  }
  return s;
}

describe('/metrics per tenant', () => {
  let mock;
  let mcp;
  let gw;
  const keys = {};
  const sent = []; // x-mock-usage of each chat answer: {tenant, usage}
  let base; // samples of the scrape before the traffic
  let final; // samples once every request of the traffic is counted
  let text; // the final scrape, raw

  const scrape = async () => {
    const r = await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders });
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    return r.text;
  };
  const auth = (tenant) => ({ authorization: `Bearer ${keys[tenant]}` });

  async function chat(tenant, body) {
    const r = await request(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...auth(tenant), 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'count my tokens, please' }], ...body }),
    });
    assert.equal(r.status, 200, r.text);
    sent.push({ tenant, usage: JSON.parse(r.headers['x-mock-usage']) });
  }

  async function mcpCalls(tenant) {
    const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), {
      requestInit: { headers: auth(tenant) },
    });
    const client = new Client({ name: 'tollgate-e2e-metrics', version: '1.0.0' });
    await client.connect(transport);
    try {
      const ok = await client.callTool({ name: 'echo', arguments: { text: 'counted' } });
      assert.equal(ok.isError, undefined);
      const bad = await client.callTool({ name: 'fail', arguments: {} });
      assert.equal(bad.isError, true);
      await client.callTool({ name: 'echo', arguments: { text: 'twice' } });
    } finally {
      await client.close();
    }
  }

  before(async () => {
    mock = await startMock();
    mcp = await startMcpServer({ json: true });
    gw = await startGateway({
      workers: 2,
      upstreams: [
        { name: 'mock', targets: [mock.url] },
        { name: 'mcpsrv', targets: [`http://127.0.0.1:${mcp.port}`] },
      ],
      routes: [
        { name: 'api', path_prefix: '/api/', upstream: 'mock', kind: 'http' },
        { name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' },
        { name: 'mcp', path_prefix: '/mcp', upstream: 'mcpsrv', kind: 'mcp' },
      ],
      extra: { prices: { models: PRICES }, metrics: { max_tenants: 10 } },
    });
    for (const t of ['alpha', 'beta']) {
      keys[t] = (await createTenantKey(gw, t)).secret;
      await waitForKey(gw, keys[t], '/api/ready');
    }
    base = parseMetrics(await scrape());

    // The traffic, one request at a time over fresh connections (both workers get some).
    for (let i = 0; i < 3; i++) assert.equal((await request(`${gw.url}/api/x?size=100`, { headers: auth('alpha') })).status, 200);
    const post = await request(`${gw.url}/api/up`, { method: 'POST', headers: auth('alpha'), body: 'x'.repeat(50) });
    assert.equal(post.status, 200);
    assert.equal((await request(`${gw.url}/api/x?status=503`, { headers: auth('alpha') })).status, 503);
    await chat('alpha', { max_tokens: 4 });
    await chat('alpha', { max_tokens: 7 });
    await mcpCalls('alpha');
    assert.equal((await request(`${gw.url}/api/x`, { headers: auth('beta') })).status, 200);
    await chat('beta', { max_tokens: 3, prompt_cache_key: 'k' });
    assert.equal((await request(`${gw.url}/nowhere`, { headers: auth('beta') })).status, 404);
    assert.equal((await request(`${gw.url}/api/x`)).status, 401);

    // Counted when each request ends (just after its answer went out): wait for the last.
    await waitFor(
      async () => {
        text = await scrape();
        final = parseMetrics(text);
        return sum(final, 'tollgate_requests_total', { tenant: '' }) - sum(base, 'tollgate_requests_total', { tenant: '' }) === 1;
      },
      { message: 'the last request counted' },
    );
  });
  after(async () => {
    await gw?.stop();
    await mcp?.stop();
    await mock?.stop();
  });

  const delta = (name, want) => sum(final, name, want) - sum(base, name, want);

  test('requests by tenant, route, outcome and status class: what was sent', () => {
    const req = (tenant, route, outcome, cls) =>
      delta('tollgate_requests_total', { tenant, route, outcome, status_class: cls });
    assert.equal(req('alpha', 'api', 'billable', '2xx'), 4);
    assert.equal(req('alpha', 'api', 'failed', '5xx'), 1);
    assert.equal(req('alpha', 'oa', 'billable', '2xx'), 2);
    assert.equal(req('beta', 'api', 'billable', '2xx'), 1);
    assert.equal(req('beta', 'oa', 'billable', '2xx'), 1);
    assert.equal(req('beta', '', 'rejected', '4xx'), 1);
    assert.equal(req('', '', 'rejected', '4xx'), 1);
    assert.equal(delta('tollgate_rejections_total', { tenant: 'beta', reason: 'no_route' }), 1);
    assert.equal(delta('tollgate_rejections_total', { tenant: '', reason: 'missing_key' }), 1);
    assert.equal(delta('tollgate_request_bytes_total', { tenant: 'alpha', route: 'api' }), 50);
    // Each (tenant, route) histogram counts its requests, and its +Inf bucket is its count.
    for (const [tenant, route] of [['alpha', 'api'], ['alpha', 'oa'], ['beta', 'oa']]) {
      const reqs = sum(final, 'tollgate_requests_total', { tenant, route });
      assert.equal(sum(final, 'tollgate_request_duration_seconds_count', { tenant, route }), reqs);
      assert.equal(sum(final, 'tollgate_request_duration_seconds_bucket', { tenant, route, le: '+Inf' }), reqs);
    }
  });

  test('upstream latency: one observation per request that reached the upstream, within the total', () => {
    // Every request of these routes went upstream (the 503 too: the mock answered it).
    for (const [tenant, route] of [['alpha', 'api'], ['alpha', 'oa'], ['alpha', 'mcp'], ['beta', 'api'], ['beta', 'oa']]) {
      const reqs = delta('tollgate_requests_total', { tenant, route });
      assert.ok(reqs > 0, `${tenant}/${route} sent requests`);
      assert.equal(delta('tollgate_upstream_duration_seconds_count', { tenant, route }), reqs, `${tenant}/${route}`);
      assert.equal(delta('tollgate_upstream_duration_seconds_bucket', { tenant, route, le: '+Inf' }), reqs);
      // The upstream call is part of the request: its time never exceeds the total's.
      const up = sum(final, 'tollgate_upstream_duration_seconds_sum', { tenant, route });
      assert.ok(up > 0 && up <= sum(final, 'tollgate_request_duration_seconds_sum', { tenant, route }) + 1e-6, `${tenant}/${route}: ${up}`);
    }
    // Refused before any upstream work: no upstream series at all.
    for (const tenant of ['beta', '']) {
      assert.equal(final.filter((x) => x.name.startsWith('tollgate_upstream_duration_seconds') && x.labels.tenant === tenant && x.labels.route === '').length, 0);
      assert.ok(sum(final, 'tollgate_request_duration_seconds_count', { tenant, route: '' }) > 0);
    }
  });

  test('tokens and cost per tenant: what the mock reported and the price rule', () => {
    for (const tenant of ['alpha', 'beta']) {
      const mine = sent.filter((s) => s.tenant === tenant).map((s) => s.usage);
      const tot = (k) => mine.reduce((a, u) => a + u[k], 0);
      const labels = { tenant, model: 'gpt-4o-mini' };
      assert.equal(sum(final, 'tollgate_input_tokens_total', labels), tot('input'));
      assert.equal(sum(final, 'tollgate_output_tokens_total', labels), tot('output'));
      assert.equal(sum(final, 'tollgate_cached_tokens_total', labels), tot('cached'));
      // openai: ((in - cached) * input + cached * cached + out * output) / 10^6 per request,
      // prices in micro-USD per 1M tokens, rounded half up (ai.test.mjs).
      const p = PRICES['gpt-4o-mini'];
      const [input, output, cached] = [p.input, p.output, p.cached].map((usd) => BigInt(Math.round(usd * 1e6)));
      const cost = mine.reduce((a, u) => {
        const [i, o, c] = [u.input, u.output, u.cached].map(BigInt);
        return a + Number((((i - c) * input + c * cached + o * output) * 2n + 1_000_000n) / 2_000_000n);
      }, 0);
      assert.ok(cost > 0);
      assert.equal(sum(final, 'tollgate_cost_micro_usd_total', { tenant }), cost);
    }
    assert.ok(sum(final, 'tollgate_cached_tokens_total', { tenant: 'beta' }) > 0);
  });

  test('MCP tool calls and errors per tenant and tool', () => {
    assert.equal(delta('tollgate_mcp_tool_calls_total', { tenant: 'alpha', tool: 'echo' }), 2);
    assert.equal(delta('tollgate_mcp_tool_errors_total', { tenant: 'alpha', tool: 'echo' }), 0);
    assert.equal(delta('tollgate_mcp_tool_calls_total', { tenant: 'alpha', tool: 'fail' }), 1);
    assert.equal(delta('tollgate_mcp_tool_errors_total', { tenant: 'alpha', tool: 'fail' }), 1);
  });

  test('the scrape agrees with the store, tenant by tenant', async () => {
    // Every event is in the store once the writer caught up (the metrics never lag it).
    const rows = await waitFor(
      async () => {
        const r = await sqlite(
          gw.dbPath,
          "SELECT tenant, COALESCE(route, '') AS route, outcome, SUM(COALESCE(requests, 1)) AS n, SUM(bytes_in) AS bin, " +
            'SUM(bytes_out) AS bout, SUM(cost_micros) AS cost, SUM(CASE WHEN tokens_in > 0 THEN tokens_in ELSE 0 END) AS tin, ' +
            'SUM(CASE WHEN tokens_out > 0 THEN tokens_out ELSE 0 END) AS tout, SUM(CASE WHEN tokens_cached > 0 THEN tokens_cached ELSE 0 END) AS tcached ' +
            'FROM usage_events GROUP BY 1, 2, 3',
        );
        const n = r.reduce((a, x) => a + x.n, 0);
        return n === sum(final, 'tollgate_requests_total') && r;
      },
      { message: 'the store holds as many events as /metrics counted' },
    );
    const by = (f) => (x) => (f.tenant === undefined || x.tenant === f.tenant) && (f.route === undefined || x.route === f.route);
    for (const tenant of ['alpha', 'beta', '']) {
      const mine = rows.filter(by({ tenant }));
      const total = (k) => mine.reduce((a, x) => a + x[k], 0);
      assert.equal(sum(final, 'tollgate_requests_total', { tenant }), total('n'), `requests of "${tenant}"`);
      for (const outcome of ['billable', 'failed', 'rejected']) {
        assert.equal(
          sum(final, 'tollgate_requests_total', { tenant, outcome }),
          mine.filter((x) => x.outcome === outcome).reduce((a, x) => a + x.n, 0),
          `${outcome} of "${tenant}"`,
        );
      }
      assert.equal(sum(final, 'tollgate_cost_micro_usd_total', { tenant }), total('cost'), `cost of "${tenant}"`);
      assert.equal(sum(final, 'tollgate_input_tokens_total', { tenant }), total('tin'));
      assert.equal(sum(final, 'tollgate_output_tokens_total', { tenant }), total('tout'));
      assert.equal(sum(final, 'tollgate_cached_tokens_total', { tenant }), total('tcached'));
      for (const route of new Set(mine.map((x) => x.route))) {
        const r = mine.filter(by({ route }));
        assert.equal(sum(final, 'tollgate_request_bytes_total', { tenant, route }), r.reduce((a, x) => a + x.bin, 0));
        assert.equal(sum(final, 'tollgate_response_bytes_total', { tenant, route }), r.reduce((a, x) => a + x.bout, 0));
      }
    }
    const rej = await sqlite(
      gw.dbPath,
      "SELECT tenant, reason, SUM(COALESCE(requests, 1)) AS n FROM usage_events WHERE outcome = 'rejected' GROUP BY 1, 2",
    );
    for (const r of rej) assert.equal(sum(final, 'tollgate_rejections_total', { tenant: r.tenant, reason: r.reason }), r.n);
    assert.equal(sum(final, 'tollgate_rejections_total'), rej.reduce((a, x) => a + x.n, 0));
    const tools = await sqlite(
      gw.dbPath,
      "SELECT tool, COUNT(*) AS calls, SUM(CASE WHEN outcome != 'billable' THEN 1 ELSE 0 END) AS errors FROM usage_events " +
        "WHERE tenant = 'alpha' AND tool IS NOT NULL AND outcome != 'rejected' GROUP BY tool",
    );
    assert.equal(tools.length, 2);
    for (const t of tools) {
      assert.equal(sum(final, 'tollgate_mcp_tool_calls_total', { tenant: 'alpha', tool: t.tool }), t.calls);
      assert.equal(sum(final, 'tollgate_mcp_tool_errors_total', { tenant: 'alpha', tool: t.tool }), t.errors);
    }
    // The process families are still there, with their old names.
    for (const name of ['tollgate_requests_inflight', 'tollgate_usage_unparsed_total', 'tollgate_events_queued', 'tollgate_events_spooled_total']) {
      assert.equal(final.filter((x) => x.name === name).length, 1, name);
    }
    // Process: upstream target health as /readyz has it, the spool not in use.
    for (const upstream of ['mock', 'mcpsrv']) {
      assert.equal(sum(final, 'tollgate_upstream_targets', { upstream }), 1);
      assert.equal(sum(final, 'tollgate_upstream_targets_healthy', { upstream }), 1);
    }
    assert.equal(sum(final, 'tollgate_events_spooling'), 0);
    const written = parseMetrics(await scrape()).find((x) => x.name === 'tollgate_events_written_total');
    assert.ok(written.value >= rows.reduce((a, x) => a + x.n, 0));
  });

  test('promtool check metrics passes on the scrape', async () => {
    const r = await run('promtool', ['check', 'metrics'], { input: text });
    assert.equal(r.code, 0, `promtool check metrics: exit ${r.code}\n${r.stdout}${r.stderr}`);
  });

  describe('a real Prometheus scraping the admin listener', () => {
    let prom;
    let promUrl;
    let promErr = '';

    before(async () => {
      const dir = await tempDir('tollgate-prom-');
      const port = await freePort();
      promUrl = `http://127.0.0.1:${port}`;
      const cfg = path.join(dir, 'prometheus.yml');
      await fs.promises.writeFile(
        cfg,
        [
          'global: { scrape_interval: 1s, evaluation_interval: 1s }',
          'scrape_configs:',
          '  - job_name: tollgate',
          `    static_configs: [{ targets: ['127.0.0.1:${gw.adminPort}'] }]`,
          `    authorization: { type: Bearer, credentials: '${gw.adminToken}' }`,
          '',
        ].join('\n'),
      );
      prom = spawn(
        'prometheus',
        [
          `--config.file=${cfg}`,
          `--storage.tsdb.path=${path.join(dir, 'data')}`,
          `--web.listen-address=127.0.0.1:${port}`,
          '--log.level=warn',
        ],
        { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      prom.stderr.on('data', (d) => (promErr += d));
      await new Promise((resolve, reject) => {
        prom.once('spawn', resolve);
        prom.once('error', (e) => reject(new Error(`cannot start prometheus (scripts/deps.sh installs it): ${e.message}`)));
      });
    });
    after(async () => {
      if (prom && prom.exitCode === null && prom.signalCode === null) {
        const done = new Promise((r) => prom.once('exit', r));
        process.kill(prom.pid, 'SIGTERM');
        const t = setTimeout(() => process.kill(prom.pid, 'SIGKILL'), 10000);
        await done;
        clearTimeout(t);
      }
    });

    test('sum by (tenant) (tollgate_requests_total) through the HTTP API', async () => {
      // What the gateway itself says now (no traffic since the final scrape).
      const now = parseMetrics(await scrape());
      const want = {};
      for (const x of now) if (x.name === 'tollgate_requests_total') want[x.labels.tenant] = (want[x.labels.tenant] ?? 0) + x.value;
      assert.equal(want.alpha, sum(final, 'tollgate_requests_total', { tenant: 'alpha' }));
      const q = 'sum by (tenant) (tollgate_requests_total{job="tollgate"})';
      let last;
      await waitFor(
        async () => {
          assert.equal(prom.exitCode, null, `prometheus exited: ${promErr}`);
          const r = await request(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`);
          if (r.status !== 200) return false;
          last = JSON.parse(r.text);
          const got = {};
          for (const s of last.data.result) got[s.metric.tenant ?? ''] = Number(s.value[1]);
          return JSON.stringify(Object.entries(got).sort()) === JSON.stringify(Object.entries(want).sort());
        },
        { timeoutMs: 30000, intervalMs: 250, message: `Prometheus answering ${q} with ${JSON.stringify(want)}` },
      ).catch((e) => {
        throw new Error(`${e.message}; last answer ${JSON.stringify(last)}; prometheus stderr:\n${promErr}`);
      });
      // The scrape itself was healthy: up is 1 and no sample was dropped.
      const up = JSON.parse((await request(`${promUrl}/api/v1/query?query=${encodeURIComponent('up{job="tollgate"}')}`)).text);
      assert.equal(up.data.result[0].value[1], '1');
      // Two scrapes in a 1 m window give a rate per tenant.
      const rq = 'sum by (tenant) (rate(tollgate_requests_total{tenant="alpha"}[1m]))';
      const rate = await waitFor(
        async () => {
          const r = JSON.parse((await request(`${promUrl}/api/v1/query?query=${encodeURIComponent(rq)}`)).text);
          return r.status === 'success' && r.data.result.length === 1 && r;
        },
        { timeoutMs: 10000, intervalMs: 250, message: rq },
      );
      assert.equal(rate.data.result[0].metric.tenant, 'alpha');
      assert.ok(Number(rate.data.result[0].value[1]) >= 0);
    });
  });
});

// The process series added with issue 11, on a gateway of their own (its upstream is
// stopped at the end): the writer's batch-time histogram grows as it writes, the spool is
// empty, and a target's health flips to down (with its failures counted) once the
// upstream is gone.
describe('/metrics process series', () => {
  let mock;
  let gw;
  let key;

  const scrape = async () => {
    const r = await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders });
    assert.equal(r.status, 200);
    return { text: r.text, samples: parseMetrics(r.text) };
  };
  const get = (key_) => request(`${gw.url}/api/x`, { headers: { authorization: `Bearer ${key_}` } });

  before(async () => {
    mock = await startMock();
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url], max_fails: 2, fail_timeout: '10m' }],
      routes: [
        { name: 'api', path_prefix: '/api/', upstream: 'mock', kind: 'http' },
        { name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' },
      ],
      extra: { prices: { models: PRICES } },
    });
    key = (await createTenantKey(gw, 'gamma')).secret;
    await waitForKey(gw, key, '/api/ready');
  });
  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  test('writer batches: the histogram counts each batch the writer wrote', async () => {
    const before_ = (await scrape()).samples;
    const batches0 = sum(before_, 'tollgate_writer_batch_duration_seconds_count');
    const written0 = sum(before_, 'tollgate_events_written_total');
    for (let i = 0; i < 3; i++) assert.equal((await get(key)).status, 200);
    let now;
    await waitFor(
      async () => {
        now = (await scrape()).samples;
        return sum(now, 'tollgate_events_written_total') >= written0 + 3;
      },
      { message: 'three more events written' },
    );
    const batches = sum(now, 'tollgate_writer_batch_duration_seconds_count');
    assert.ok(batches > batches0, `batches ${batches0} -> ${batches}`);
    // At most one batch per event written (a batch holds one or more).
    assert.ok(batches - batches0 <= sum(now, 'tollgate_events_written_total') - written0);
    assert.equal(sum(now, 'tollgate_writer_batch_duration_seconds_bucket', { le: '+Inf' }), batches);
    assert.ok(sum(now, 'tollgate_writer_batch_duration_seconds_sum') > 0);
    assert.equal(now.filter((x) => x.name === 'tollgate_spool_bytes').length, 1);
    assert.equal(sum(now, 'tollgate_spool_bytes'), 0);
  });

  test('budget utilisation: spend this month over the budget, as the store has it', async () => {
    const budgetMicros = 2000; // 0.002 USD, soft: requests go on past it
    const r = await gw.cli(['budget', 'set', '--tenant', 'gamma', '--monthly', '0.002', '--soft']);
    assert.equal(r.code, 0, r.stderr);
    // Only tenants with a budget have the gauge; gamma's appears once the policy reloads.
    let samples;
    await waitFor(
      async () => {
        ({ samples } = await scrape());
        return samples.some((x) => x.name === 'tollgate_budget_utilisation' && x.labels.tenant === 'gamma');
      },
      { message: "gamma's budget loaded" },
    );
    assert.equal(samples.filter((x) => x.name === 'tollgate_budget_utilisation').length, 1);
    for (let i = 0; i < 4; i++) {
      const c = await request(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'spend a little' }], max_tokens: 50 + i }),
      });
      assert.equal(c.status, 200, c.text);
    }
    // The store's spend of this UTC month (what `tollgate budget show` reads), once the
    // writer has every event, over the budget: the gauge says the same.
    const month = new Date().toISOString().slice(0, 7);
    let spend;
    let got;
    await waitFor(
      async () => {
        const [row] = await sqlite(gw.dbPath, `SELECT COALESCE(SUM(cost_micros), 0) AS c FROM usage_daily WHERE tenant_id = 'gamma' AND day >= '${month}-01'`);
        spend = row.c;
        got = sum((await scrape()).samples, 'tollgate_budget_utilisation', { tenant: 'gamma' });
        return spend > 0 && Math.abs(got - spend / budgetMicros) < 1e-12;
      },
      { message: 'utilisation equal to the store spend over the budget' },
    ).catch((e) => {
      throw new Error(`${e.message}: store spend ${spend} micro-USD of ${budgetMicros}, gauge ${got}`);
    });
    assert.ok(got > 0);
  });

  test('target health: up with no failures, then down once the upstream is stopped', async () => {
    const target = mock.url.replace(/\/$/, '');
    const labels = { upstream: 'mock', target };
    let { samples, text } = await scrape();
    assert.equal(samples.filter((x) => x.name === 'tollgate_upstream_target_up').length, 1, text);
    assert.equal(sum(samples, 'tollgate_upstream_target_up', labels), 1, text);
    assert.equal(sum(samples, 'tollgate_upstream_target_consecutive_failures', labels), 0);
    await mock.stop();
    mock = null;
    // The first failure is counted and the target still up (max_fails: 2) ...
    assert.equal((await get(key)).status, 502);
    ({ samples } = await scrape());
    assert.equal(sum(samples, 'tollgate_upstream_target_up', labels), 1);
    assert.equal(sum(samples, 'tollgate_upstream_target_consecutive_failures', labels), 1);
    // ... the second takes it down for fail_timeout; the failures go on counting.
    assert.equal((await get(key)).status, 502);
    ({ samples, text } = await scrape());
    assert.equal(sum(samples, 'tollgate_upstream_target_up', labels), 0, text);
    assert.equal(sum(samples, 'tollgate_upstream_target_consecutive_failures', labels), 2);
    assert.equal(sum(samples, 'tollgate_upstream_targets_healthy', { upstream: 'mock' }), 0);
    const r = await run('promtool', ['check', 'metrics'], { input: text });
    assert.equal(r.code, 0, `promtool check metrics: exit ${r.code}\n${r.stdout}${r.stderr}`);
  });
});
