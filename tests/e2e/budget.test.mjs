// Budgets, token limits and prices end to end: the real gateway in front of the mock's
// OpenAI imitation (route `oa`, kind openai), driven with node:http and the CLI.
//
// The rules under test (src/policy/budget.h, src/policy/policy.h, src/meter/price.h,
// docs/cli.md, docs/configuration.md):
//   - An AI request reserves at admission: tokens = request body bytes + (max_tokens |
//     max_completion_tokens | max_output_tokens, else defaults.max_output_tokens); cost =
//     those tokens priced (the body bytes as input, the rest as output) plus the route part.
//   - A hard budget answers 402 (type budget_exceeded) once spend + reservations >= budget;
//     at the end a reservation is replaced by the actual cost. So concurrent requests
//     overshoot by at most one reservation.
//   - Alerts at the budget's thresholds: one alerts row per tenant, threshold and month, and
//     one `budget alert: tenant ...` line on stderr from the process that first saw it.
//   - Token limits admit while at least one token is free, charge the estimate, and settle to
//     the actual tokens (in + out); a refusal is 429 with Retry-After, event reason
//     token_limited.
//   - Costs in integer micro-USD: tokens x USD per 1M, summed exactly, rounded half up once.
//
// The mock counts input = ceil(prompt bytes / 4) and output = max_tokens (16 when none), and
// says so in x-mock-usage.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import {
  createTenantKey,
  request,
  sqlite,
  startGateway,
  startMcpServer,
  startMock,
  waitFor,
  waitForEvent,
  waitForKey,
  waitLoaded,
} from './lib/harness.mjs';
import { tokenCost, usdText } from './lib/money.mjs';

/** The documented wait for a running gateway to pick up a CLI change (polled every 250 ms). */

// ---- money (lib/money.mjs) ----

/** The UTC month in which the gateway recorded tenant t's latest event, by the gateway's own
 * clock: its first microsecond and its "YYYY-MM". A test never takes the month from its own
 * clock (make check runs this suite with the gateway's clock set to other dates). */
async function gatewayMonth(gw, t) {
  const [{ ts }] = await sqlite(gw.dbPath, `SELECT max(ts_us) AS ts FROM usage_events WHERE tenant = '${t}'`);
  assert.ok(ts, `no event of ${t} yet`);
  const d = new Date(Math.floor(ts / 1000));
  return { startUs: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1) * 1000, period: d.toISOString().slice(0, 7) };
}

// ---- requests ----

/** POSTs body (an object) as JSON to path with the tenant's key; the response with the body's
 * byte count, the gateway's request id and the mock's usage report. */
async function post(gw, secret, body, { path = '/v1/chat/completions', query = '', headers = {} } = {}) {
  const data = JSON.stringify(body);
  const r = await request(`${gw.url}${path}${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}`, ...headers },
    body: data,
  });
  const usage = r.headers['x-mock-usage'] ? JSON.parse(r.headers['x-mock-usage']) : null;
  return { ...r, bytes: Buffer.byteLength(data), requestId: r.headers['x-request-id'], usage };
}

const chat = (model, content, extra = {}) => ({ model, messages: [{ role: 'user', content }], ...extra });

async function cliOk(gw, args) {
  const r = await gw.cli(args);
  assert.equal(r.code, 0, `tollgate ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r;
}

/** A tenant whose key the running gateway already accepts. */
async function tenant(gw, id) {
  const k = await createTenantKey(gw, id);
  await waitForKey(gw, k.secret, '/v1/models');
  return k;
}

async function budgetShow(gw, t) {
  return JSON.parse((await cliOk(gw, ['budget', 'show', '--tenant', t, '--format', 'json'])).stdout);
}

/** Waits until the store holds n events of tenant t matching the SQL condition `where`. */
async function waitForCount(gw, t, where, n) {
  await waitFor(
    async () => (await sqlite(gw.dbPath, `SELECT count(*) AS n FROM usage_events WHERE tenant = '${t}' AND ${where}`))[0].n === n,
    { message: `${n} events of ${t} where ${where}` },
  );
}

async function billableSum(gw, t) {
  const { startUs } = await gatewayMonth(gw, t);
  const [row] = await sqlite(
    gw.dbPath,
    `SELECT coalesce(sum(cost_micros), 0) AS s FROM usage_events
     WHERE tenant = '${t}' AND outcome = 'billable' AND ts_us >= ${startUs}`,
  );
  return row.s;
}

async function alertRows(gw, t) {
  return sqlite(
    gw.dbPath,
    `SELECT kind, threshold, period, spend_micros, budget_micros FROM alerts WHERE tenant_id = '${t}' ORDER BY threshold`,
  );
}

const count = (text, re) => (text.match(new RegExp(re.source, 'g')) ?? []).length;

// ---- budgets and token limits ----

describe('budgets and token limits', () => {
  const OVR = { input: '3', output: '45' }; // micro-USD 3 per input token, 45 per output token
  const ALERT = { input: '0', output: '1000' }; // 10 output tokens: exactly 0.01 USD
  let mock, gw;

  before(async () => {
    mock = await startMock({ threads: 2 });
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' }],
      extra: {
        prices: { models: { 'ovr-model': OVR, 'alert-model': ALERT } },
        defaults: { max_output_tokens: 3000 },
      },
    });
  });
  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  test('a hard budget under 50 concurrent requests: overshoot bounded by one reservation, exactly the ones that fit admitted (5 rounds)', async () => {
    for (let round = 0; round < 5; round++) {
      const t = `ovr${round}`;
      const { secret } = await tenant(gw, t);
      // Rounds 0, 1, 4: delayed answers; rounds 2, 3: streamed answers (with include_usage
      // asked by the client, so the gateway forwards the body as sent).
      const streamed = round === 2 || round === 3;
      const maxTokens = 20 + round;
      const streamOpts = { stream: true, stream_options: { include_usage: true } };
      const body = chat('ovr-model', 'x'.repeat(200 + 37 * round), { max_tokens: maxTokens, ...(streamed ? streamOpts : {}) });
      const bytes = Buffer.byteLength(JSON.stringify(body));
      const reservation = tokenCost(OVR, bytes, maxTokens);

      // Spend most of a budget first: three requests, in the store before the budget exists.
      const warm = [];
      for (let i = 0; i < 3; i++) {
        const r = await post(gw, secret, body);
        assert.equal(r.status, 200, r.text);
        warm.push(r);
      }
      let spent0 = 0;
      for (const r of warm) {
        const ev = await waitForEvent(gw, r.requestId);
        const actual = tokenCost(OVR, r.usage.input, r.usage.output);
        assert.equal(ev.cost_micros, actual);
        assert.ok(actual <= reservation, `actual ${actual} within the reservation ${reservation}`);
        spent0 += actual;
      }

      // Room for exactly `fits` reservations on top of it. Even rounds put the budget one
      // micro-USD above (fits - 1) reservations, odd rounds exactly at fits reservations:
      // a reservation one micro-USD larger (even) or smaller (odd) than the rule says
      // changes the count, in both answer modes.
      const fits = 2 + (round % 3);
      const budget = round % 2 === 0 ? spent0 + (fits - 1) * reservation + 1 : spent0 + fits * reservation;
      await cliOk(gw, ['budget', 'set', '--tenant', t, '--monthly', usdText(budget)]);
      await waitLoaded(gw);

      const opts = streamed ? { headers: { 'x-mock-interval-ms': '30' } } : { query: '?delay_ms=700' };
      const res = await Promise.all(Array.from({ length: 50 }, () => post(gw, secret, body, opts)));
      assert.deepEqual([...new Set(res.map((r) => r.status))].filter((s) => s !== 200 && s !== 402), [], 'only 200 and 402');
      const ok = res.filter((r) => r.status === 200);
      const refused = res.filter((r) => r.status === 402);

      await waitForCount(gw, t, "method = 'POST'", 53);
      const events = await Promise.all(res.map((r) => waitForEvent(gw, r.requestId)));
      const okEvents = events.filter((e) => e.status === 200);
      // Precondition for an exact count: every request was admitted (or refused) before the
      // first admitted one ended, so no settled cost stood in for a reservation.
      const lastStart = Math.max(...events.map((e) => e.ts_us));
      const firstEnd = Math.min(...okEvents.map((e) => e.ts_us + e.latency_us));
      assert.ok(lastStart < firstEnd, `round ${round}: the 50 requests overlapped (${lastStart} < ${firstEnd})`);

      assert.ok(refused.length > 0, `round ${round}: some requests refused`);
      assert.ok(ok.length > 0, `round ${round}: some requests admitted`);
      assert.equal(ok.length, fits, `round ${round}: budget ${budget}, spent ${spent0}, reservation ${reservation}`);
      assert.equal(refused.length, 50 - fits);
      for (const r of refused) assert.equal(r.json().error.type, 'budget_exceeded');
      for (const e of events.filter((x) => x.status === 402)) {
        assert.deepEqual([e.outcome, e.reason, e.cost_micros, e.tokens_in, e.price_flag], ['rejected', 'budget_exceeded', 0, null, null]);
      }
      for (const r of ok) {
        const ev = okEvents.find((e) => e.request_id === r.requestId);
        assert.deepEqual([ev.outcome, ev.tokens_in, ev.tokens_out], ['billable', r.usage.input, r.usage.output]);
        assert.equal(ev.cost_micros, tokenCost(OVR, r.usage.input, r.usage.output));
      }

      const spent = await billableSum(gw, t);
      assert.ok(spent <= budget + reservation, `round ${round}: spent ${spent} <= budget ${budget} + one reservation ${reservation}`);
      const show = await budgetShow(gw, t);
      assert.equal(show.monthly_micros, budget);
      assert.equal(show.mode, 'hard');
      assert.equal(show.spend_micros, spent, 'budget show spend = the sum of the billable events');
      assert.equal(show.remaining_micros, Math.max(0, budget - spent));
    }
  });

  test('budget alerts at 80/90/100% fire once per threshold and month, across more requests and restarts', async () => {
    const t = 'alerts';
    const { secret } = await tenant(gw, t);
    let period; // the gateway's month, from its first event below
    const body = chat('alert-model', 'hi', { max_tokens: 10 }); // costs exactly 10000 micro-USD
    const one = async (status = 200) => {
      const r = await post(gw, secret, body);
      assert.equal(r.status, status, r.text);
      const ev = await waitForEvent(gw, r.requestId);
      assert.equal(ev.cost_micros, status === 200 ? 10000 : 0);
      return ev;
    };
    const line = (thr) => new RegExp(`budget alert: tenant ${t} reached ${thr}% of its monthly budget for ${period}`);

    await cliOk(gw, ['budget', 'set', '--tenant', t, '--monthly', '0.1']);
    await waitLoaded(gw);
    for (let i = 0; i < 8; i++) await one(); // 80% with the 8th (the rows' spend below says when each fired)
    ({ period } = await gatewayMonth(gw, t));
    await waitFor(async () => (await alertRows(gw, t)).length === 1, { message: 'the 80% alert row' });
    await waitFor(() => line(80).test(gw.stderr()), { message: 'the 80% log line' });
    const firstProcess = gw.stderr().length;

    // A new process on the same store: it reads the month's spend and alerts from the store.
    await gw.restart();
    await one(); // 90%
    await one(); // 100%
    await waitFor(async () => (await alertRows(gw, t)).length === 3, { message: 'the 90% and 100% alert rows' });
    await waitFor(() => line(90).test(gw.stderr()) && line(100).test(gw.stderr()), { message: 'the 90% and 100% log lines' });
    for (let i = 0; i < 3; i++) await one(402); // hard: spent
    const secondProcess = gw.stderr().length;

    await gw.restart();
    for (let i = 0; i < 2; i++) await one(402);
    // A budget change reloads the budgets (and re-checks thresholds) in the running gateway.
    await cliOk(gw, ['budget', 'set', '--tenant', t, '--monthly', '0.1']);
    await waitLoaded(gw);
    await one(402);

    assert.deepEqual(await alertRows(gw, t), [
      { kind: 'budget', threshold: 80, period, spend_micros: 80000, budget_micros: 100000 },
      { kind: 'budget', threshold: 90, period, spend_micros: 90000, budget_micros: 100000 },
      { kind: 'budget', threshold: 100, period, spend_micros: 100000, budget_micros: 100000 },
    ]);
    const all = gw.stderr();
    const [p1, p2, p3] = [all.slice(0, firstProcess), all.slice(firstProcess, secondProcess), all.slice(secondProcess)];
    assert.deepEqual(
      [80, 90, 100].map((thr) => [count(p1, line(thr)), count(p2, line(thr)), count(p3, line(thr))]),
      [
        [1, 0, 0],
        [0, 1, 0],
        [0, 1, 0],
      ],
      'each alert logged once, by the process that first saw it',
    );
    const show = await budgetShow(gw, t);
    assert.equal(show.spend_micros, 100000);
    assert.equal(show.remaining_micros, 0);
    assert.deepEqual(show.alerts.map((a) => a.threshold), [80, 90, 100]);
    assert.equal(await billableSum(gw, t), 100000);
  });

  test('a soft budget never refuses, and its alerts still fire (thresholds 50,100,150)', async () => {
    const t = 'softie';
    const { secret } = await tenant(gw, t);
    await cliOk(gw, ['budget', 'set', '--tenant', t, '--monthly', '0.03', '--soft', '--thresholds', '50,100,150']);
    await waitLoaded(gw);
    const body = chat('alert-model', 'hi', { max_tokens: 10 }); // 10000 each
    for (let i = 0; i < 5; i++) {
      const r = await post(gw, secret, body);
      assert.equal(r.status, 200, `request ${i + 1}: ${r.text}`);
      await waitForEvent(gw, r.requestId);
    }
    // over budget (166%): a concurrent burst still goes through
    const burst = await Promise.all(Array.from({ length: 10 }, () => post(gw, secret, body, { query: '?delay_ms=200' })));
    assert.deepEqual(burst.map((r) => r.status), Array(10).fill(200));
    await waitForCount(gw, t, "method = 'POST'", 15);
    await waitFor(async () => (await alertRows(gw, t)).length === 3, { message: 'three soft-budget alerts' });
    const { period } = await gatewayMonth(gw, t);
    assert.deepEqual(await alertRows(gw, t), [
      { kind: 'budget', threshold: 50, period, spend_micros: 20000, budget_micros: 30000 },
      { kind: 'budget', threshold: 100, period, spend_micros: 30000, budget_micros: 30000 },
      { kind: 'budget', threshold: 150, period, spend_micros: 50000, budget_micros: 30000 },
    ]);
    for (const thr of [50, 100, 150]) {
      await waitFor(() => count(gw.stderr(), new RegExp(`budget alert: tenant ${t} reached ${thr}%`)) === 1, {
        message: `one ${thr}% log line`,
      });
    }
    const show = await budgetShow(gw, t);
    assert.deepEqual([show.mode, show.spend_micros, show.remaining_micros], ['soft', 150000, 0]);
    assert.equal(show.spend_micros, await billableSum(gw, t));
    const rejected = await sqlite(gw.dbPath, `SELECT count(*) AS n FROM usage_events WHERE tenant = '${t}' AND status = 402`);
    assert.equal(rejected[0].n, 0);
  });

  test('--tpm: admitted while a token is free, then 429 token_limited with Retry-After', async () => {
    const t = 'tokA';
    const { secret } = await tenant(gw, t);
    await cliOk(gw, ['limit', 'set', '--tenant', t, '--tpm', '2500']);
    await waitLoaded(gw);
    // actual = 1 + 1000 tokens, estimate = body bytes + 1000: close, so settling barely matters
    const body = chat('tok-model', 'hi', { max_tokens: 1000 });
    const seen = [];
    for (let i = 0; i < 3; i++) {
      const r = await post(gw, secret, body);
      assert.equal(r.status, 200, `request ${i + 1} (${1001 * i} of 2500 tokens used): ${r.text}`);
      assert.deepEqual([r.usage.input, r.usage.output], [1, 1000]);
      await waitForEvent(gw, r.requestId); // recorded once settled: the next one sees 1001 more
      seen.push(r);
    }
    const r = await post(gw, secret, body);
    assert.equal(r.status, 429, '3003 of 2500 tokens used');
    assert.equal(r.json().error.type, 'rate_limited');
    // one more token is free once 3003 - 2499 tokens have come back, at 2500 per 60 s
    const ra = Number(r.headers['retry-after']);
    assert.ok(ra >= 10 && ra <= 13, `Retry-After ${ra} (about ${((3003 - 2499) * 60) / 2500} s)`);
    const ev = await waitForEvent(gw, r.requestId);
    assert.deepEqual([ev.status, ev.outcome, ev.reason, ev.cost_micros, ev.model], [429, 'rejected', 'token_limited', 0, 'tok-model']);
    for (const s of seen) {
      const e = await waitForEvent(gw, s.requestId);
      assert.deepEqual([e.outcome, e.tokens_in + e.tokens_out], ['billable', 1001]);
    }
  });

  test('token limits settle to the actual count: reservations block concurrent requests, settled tokens come back', async () => {
    const t = 'tokB';
    const { secret } = await tenant(gw, t);
    await cliOk(gw, ['limit', 'set', '--tenant', t, '--tpm', '6000']);
    await waitLoaded(gw);
    // 5000 bytes of padding outside the prompt: estimate about 5080 tokens, actual 1 + 5 = 6
    const body = chat('tok-model', 'hi', { max_tokens: 5, user: 'p'.repeat(5000) });
    const estimate = Buffer.byteLength(JSON.stringify(body)) + 5;
    assert.ok(estimate > 3000 && estimate < 6000);

    // Concurrent: each holds its estimate, so the second fills the minute and the rest wait.
    const burst = await Promise.all(Array.from({ length: 5 }, () => post(gw, secret, body, { query: '?delay_ms=500' })));
    assert.deepEqual(burst.map((r) => r.status).sort(), [200, 200, 429, 429, 429]);
    for (const r of burst.filter((x) => x.status === 429)) {
      assert.equal((await waitForEvent(gw, r.requestId)).reason, 'token_limited');
    }
    for (const r of burst.filter((x) => x.status === 200)) {
      const ev = await waitForEvent(gw, r.requestId);
      assert.equal(ev.tokens_in + ev.tokens_out, 6);
    }
    // Settled, the two took 12 tokens, not 2 x 5080: five more in a row all fit, where
    // counting estimates would refuse the first of them.
    for (let i = 0; i < 5; i++) {
      const r = await post(gw, secret, body);
      assert.equal(r.status, 200, `sequential request ${i + 1} after settling: ${r.text}`);
    }
  });

  test('a request without max_tokens reserves defaults.max_output_tokens (3000 here)', async () => {
    const t = 'tokC';
    const { secret } = await tenant(gw, t);
    await cliOk(gw, ['limit', 'set', '--tenant', t, '--tpm', '4000']);
    await waitLoaded(gw);
    const body = chat('tok-model', 'hi'); // the mock answers 16 output tokens
    // estimate = bytes + 3000: two fit under 4000 (one free token each time), a third does not.
    // With 4096 only one would be admitted; counting the mock's 16, all three.
    const burst = await Promise.all(Array.from({ length: 3 }, () => post(gw, secret, body, { query: '?delay_ms=500' })));
    assert.deepEqual(burst.map((r) => r.status).sort(), [200, 200, 429]);
    const ok = burst.find((r) => r.status === 200);
    assert.deepEqual([ok.usage.input, ok.usage.output], [1, 16]);
    // settled to 17 tokens each: room again
    for (const r of burst) await waitForEvent(gw, r.requestId);
    assert.equal((await post(gw, secret, body)).status, 200);
  });

  test('--model limits count and limit only that model', async () => {
    const t = 'tokD';
    const { secret } = await tenant(gw, t);
    await cliOk(gw, ['limit', 'set', '--tenant', t, '--model', 'tok-model', '--tpm', '2500']);
    await waitLoaded(gw);
    const other = chat('other-model', 'hi', { max_tokens: 1000 });
    const limited = chat('tok-model', 'hi', { max_tokens: 1000 });
    // 5005 tokens of another model first: not counted against tok-model
    for (let i = 0; i < 5; i++) assert.equal((await post(gw, secret, other)).status, 200);
    for (let i = 0; i < 3; i++) assert.equal((await post(gw, secret, limited)).status, 200, `tok-model request ${i + 1}`);
    const r = await post(gw, secret, limited);
    assert.equal(r.status, 429);
    assert.ok(Number(r.headers['retry-after']) >= 1);
    const ev = await waitForEvent(gw, r.requestId);
    assert.deepEqual([ev.model, ev.reason], ['tok-model', 'token_limited']);
    // the other model is not held back by tok-model's limit
    for (let i = 0; i < 3; i++) assert.equal((await post(gw, secret, other)).status, 200);
  });
});

// ---- prices and reports ----

describe('prices and usage reports', () => {
  const CONFIG = {
    'p-model': { input: '0.15', output: '0.6' },
    'p2-model': { input: '1', output: '1' },
  };
  const NEW_P = { input: '1', output: '2' };
  const STAR = { input: '2', output: '4' };
  const tomorrow = '2099-01-01'; // a day still to come, whatever the gateway's date
  let mock, mcp, gw;

  before(async () => {
    mock = await startMock();
    mcp = await startMcpServer();
    gw = await startGateway({
      upstreams: [
        { name: 'mock', targets: [mock.url] },
        { name: 'mcpsrv', targets: [`http://127.0.0.1:${mcp.port}`] },
      ],
      routes: [
        { name: 'mcp', path_prefix: '/mcp', upstream: 'mcpsrv', kind: 'mcp' },
        { name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' },
      ],
      extra: { prices: { models: CONFIG, tools: { echo: { call: '0.002' }, '*': { call: '0.0005' } } } },
    });
  });
  after(async () => {
    await gw?.stop();
    await mcp?.stop();
    await mock?.stop();
  });

  /** The event of a request, checked against the cost expected from the mock's counts. */
  async function priced(r, { cost, flag = null, outcome = 'billable' }) {
    assert.equal(r.status, outcome === 'billable' ? 200 : r.status, r.text);
    const ev = await waitForEvent(gw, r.requestId);
    assert.deepEqual(
      { outcome: ev.outcome, cost_micros: ev.cost_micros, price_flag: ev.price_flag },
      { outcome, cost_micros: cost, price_flag: flag },
      `${ev.method} ${ev.path} model ${ev.model}`,
    );
    return ev;
  }
  const cost = (price, r) => tokenCost(price, r.usage.input, r.usage.output);

  test('config prices, price set --from now and --from tomorrow, "*" fallback, unpriced, route price, non-billable', async () => {
    const { secret } = await tenant(gw, 'pr');
    // 101 input tokens and 7 output: 101 x 0.15 + 7 x 0.6 = 19.35 micro-USD, recorded as 19
    const pBody = chat('p-model', 'y'.repeat(404), { max_tokens: 7 });
    await cliOk(gw, ['price', 'set', 'p2-model', '--input', '5', '--output', '5', '--from', tomorrow]);
    await cliOk(gw, ['price', 'set', 'future-model', '--input', '5', '--output', '5', '--from', tomorrow]);
    await waitLoaded(gw);

    const p1 = await post(gw, secret, pBody);
    assert.deepEqual([p1.usage.input, p1.usage.output], [101, 7]);
    const e1 = await priced(p1, { cost: 19 });
    assert.equal(cost(CONFIG['p-model'], p1), 19);
    const p2 = await post(gw, secret, chat('p2-model', 'z'.repeat(40), { max_tokens: 9 }));
    await priced(p2, { cost: cost(CONFIG['p2-model'], p2) }); // tomorrow's price not yet
    const u1 = await post(gw, secret, chat('mystery-model', 'hello', { max_tokens: 3 }));
    await priced(u1, { cost: 0, flag: 'unpriced' });
    const f1 = await post(gw, secret, chat('future-model', 'hello', { max_tokens: 3 }));
    await priced(f1, { cost: 0, flag: 'unpriced' }); // its only row starts tomorrow

    const list = JSON.parse((await cliOk(gw, ['price', 'list', '--format', 'json'])).stdout);
    const row = (name) => list.filter((x) => x.meter === 'model' && x.name === name).map((x) => x.status);
    assert.deepEqual(row('p2-model'), ['scheduled']);
    assert.deepEqual(row('future-model'), ['scheduled']);

    // An override from now on, and a "*" fallback.
    await cliOk(gw, ['price', 'set', 'p-model', '--input', NEW_P.input, '--output', NEW_P.output, '--from', 'now']);
    await cliOk(gw, ['price', 'set', '*', '--input', STAR.input, '--output', STAR.output]);
    await waitLoaded(gw);
    const p3 = await post(gw, secret, pBody);
    await priced(p3, { cost: cost(NEW_P, p3) });
    assert.equal(cost(NEW_P, p3), 101 + 14);
    assert.equal((await waitForEvent(gw, p1.requestId)).cost_micros, e1.cost_micros, 'an earlier event keeps its cost');
    const u2 = await post(gw, secret, chat('mystery-model', 'hello', { max_tokens: 3 }));
    await priced(u2, { cost: cost(STAR, u2), flag: 'fallback' });
    assert.ok(cost(STAR, u2) > 0);
    const f2 = await post(gw, secret, chat('future-model', 'hello', { max_tokens: 3 }));
    await priced(f2, { cost: cost(STAR, f2), flag: 'fallback' }); // its own row is not in force yet
    assert.equal((await waitForEvent(gw, u1.requestId)).cost_micros, 0);

    // A route price: 0.001 USD per request on oa, on top of the model part.
    await cliOk(gw, ['price', 'set', '--route', 'oa', '--request', '0.001']);
    await waitLoaded(gw);
    const p4 = await post(gw, secret, pBody);
    await priced(p4, { cost: cost(NEW_P, p4) + 1000 });
    const g = await request(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${secret}` } });
    assert.equal(g.status, 200);
    await priced({ ...g, requestId: g.headers['x-request-id'] }, { cost: 1000 }); // not a model call: no flag
    const u3 = await post(gw, secret, chat('mystery-model', 'hello', { max_tokens: 3 }));
    await priced(u3, { cost: cost(STAR, u3) + 1000, flag: 'fallback' });

    // Not billable: nothing to pay, whatever the prices.
    const five = await request(`${gw.url}/v1/anything?status=500`, { headers: { authorization: `Bearer ${secret}` } });
    assert.equal(five.status, 500);
    const e5 = await priced({ ...five, requestId: five.headers['x-request-id'] }, { cost: 0, outcome: 'failed' });
    assert.equal(e5.status, 500);
    const bad = await post(gw, secret, chat('mock-error', 'hello', { max_tokens: 3 }));
    assert.equal(bad.status, 400);
    await priced(bad, { cost: 0, outcome: 'failed' });
  });

  test('usage --by model and --by tool: tokens and cost equal the sums over the events', async () => {
    const t = 'rep';
    const { secret } = await tenant(gw, t);
    const ids = [];
    const ai = async (body) => {
      const r = await post(gw, secret, body);
      ids.push(r.requestId);
      return r;
    };
    const sent = [
      await ai(chat('p-model', 'a'.repeat(100), { max_tokens: 11 })),
      await ai(chat('p-model', 'b'.repeat(333), { max_tokens: 2, stream: true })),
      await ai(chat('p2-model', 'c'.repeat(50), { max_tokens: 40 })),
      await ai(chat('mystery-model', 'd', { max_tokens: 5 })),
    ];
    await ai(chat('mock-error', 'e', { max_tokens: 5 }));
    assert.deepEqual(sent.map((r) => r.status), [200, 200, 200, 200]);

    // MCP tool calls (the official SDK through the gateway's mcp route)
    const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), {
      requestInit: { headers: { Authorization: `Bearer ${secret}` } },
      fetch: async (url, init) => {
        const r = await fetch(url, init);
        ids.push(r.headers.get('x-request-id'));
        return r;
      },
    });
    const client = new Client({ name: 'budget-e2e', version: '1.0.0' });
    await client.connect(transport);
    try {
      await client.callTool({ name: 'echo', arguments: { text: 'one' } });
      await client.callTool({ name: 'echo', arguments: { text: 'two' } });
      await client.callTool({ name: 'add', arguments: { a: 1, b: 2 } });
      await client.callTool({ name: 'fail', arguments: {} });
    } finally {
      await client.close();
    }
    for (const id of ids.filter(Boolean)) await waitForEvent(gw, id);

    const report = async (by) => JSON.parse((await cliOk(gw, ['usage', '--tenant', t, '--by', by, '--format', 'json'])).stdout);
    const sums = (col) =>
      sqlite(
        gw.dbPath,
        `SELECT tenant, coalesce(${col}, '') AS ${col}, count(*) AS requests,
           sum(CASE WHEN outcome = 'billable' THEN 1 ELSE 0 END) AS billable, sum(CASE WHEN outcome = 'failed' THEN 1 ELSE 0 END) AS failed,
           sum(CASE WHEN outcome = 'rejected' THEN 1 ELSE 0 END) AS rejected, sum(bytes_in) AS bytes_in, sum(bytes_out) AS bytes_out,
           coalesce(sum(tokens_in), 0) AS tokens_in, coalesce(sum(tokens_out), 0) AS tokens_out,
           sum(cost_micros) AS cost_micros
         FROM usage_events WHERE tenant = '${t}' GROUP BY 1, 2 ORDER BY 2`,
      );
    const withUsd = (rows) => rows.map((r) => ({ ...r, cost_usd: usdText(r.cost_micros) }));

    const byModel = await report('model');
    assert.deepEqual(byModel, withUsd(await sums('model')));
    // and per model: the tokens the mock reported, the costs of those very events
    const m = (name) => byModel.find((r) => r.model === name);
    const costOf = async (rs) => (await Promise.all(rs.map((r) => waitForEvent(gw, r.requestId)))).reduce((s, e) => s + e.cost_micros, 0);
    for (const [name, rs] of [
      ['p-model', sent.slice(0, 2)],
      ['p2-model', [sent[2]]],
      ['mystery-model', [sent[3]]],
    ]) {
      assert.deepEqual(
        [m(name).requests, m(name).billable, m(name).tokens_in, m(name).tokens_out, m(name).cost_micros],
        [rs.length, rs.length, rs.reduce((s, r) => s + r.usage.input, 0), rs.reduce((s, r) => s + r.usage.output, 0), await costOf(rs)],
        name,
      );
      if (name !== 'mystery-model') assert.ok(m(name).cost_micros > 0, `${name} was priced`); // (mystery: "*" if set)
    }
    assert.deepEqual([m('mock-error').failed, m('mock-error').cost_micros], [1, 0]);

    const byTool = await report('tool');
    assert.deepEqual(byTool, withUsd(await sums('tool')));
    const tl = (name) => byTool.find((r) => r.tool === name);
    assert.deepEqual([tl('echo').requests, tl('echo').billable, tl('echo').cost_micros], [2, 2, 4000]);
    assert.deepEqual([tl('add').requests, tl('add').cost_micros], [1, 500]);
    assert.deepEqual([tl('fail').requests, tl('fail').failed, tl('fail').cost_micros], [1, 1, 0]);
    const total = byModel.reduce((s, r) => s + r.cost_micros, 0);
    assert.equal(byTool.reduce((s, r) => s + r.cost_micros, 0), total, 'both groupings add up to the same cost');
    assert.equal(byTool.reduce((s, r) => s + r.tokens_in, 0), byModel.reduce((s, r) => s + r.tokens_in, 0));
  });
});

// ---- int64 overflow in admission (regressions) ----
//
// A client-chosen max_tokens near 2^63 once overflowed int64 arithmetic in admission (UBSan:
// "signed integer overflow" at src/gateway/conn.c `body_len + out` and src/policy/budget.c
// `e->spent + e->reserved`): the token limit was skipped, and a hard budget admitted
// requests while an enormous reservation was in flight. Now max_tokens counts as at most
// 10^8 in estimates, a token rule is charged at most its limit, and budget sums saturate.
// The mock answers such a request (it caps output at 10000), so the effects show.

describe('int64 overflow in admission', () => {
  let mock, gw;
  before(async () => {
    mock = await startMock({ threads: 2 });
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' }],
      extra: { prices: { models: { 'big-model': { input: '10', output: '20' } } } },
    });
  });
  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  // (max_tokens written as digits: a JS number cannot hold 2^63-1 exactly)
  const hugeBody = (model, maxTokens, extra = '') =>
    `{"model":"${model}","messages":[{"role":"user","content":"hello"}],"max_tokens":${maxTokens}${extra}}`;
  const postRaw = async (secret, data, query = '') => {
    const r = await request(`${gw.url}/v1/chat/completions${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
      body: data,
    });
    return { ...r, requestId: r.headers['x-request-id'], usage: r.headers['x-mock-usage'] ? JSON.parse(r.headers['x-mock-usage']) : null };
  };

  test('max_tokens 2^63-1 is still counted against --tpm', async () => {
    const { secret } = await tenant(gw, 'ovf-tok');
    await cliOk(gw, ['limit', 'set', '--tenant', 'ovf-tok', '--tpm', '1000']);
    await waitLoaded(gw);
    const r1 = await postRaw(secret, hugeBody('any-model', '9223372036854775807'));
    assert.equal(r1.status, 200, 'admitted: a token was free');
    assert.ok(r1.usage.output >= 10000);
    await waitForEvent(gw, r1.requestId);
    const r2 = await postRaw(secret, JSON.stringify(chat('any-model', 'hi', { max_tokens: 10 })));
    assert.equal(r2.status, 429, `${r1.usage.input + r1.usage.output} tokens used of 1000 per minute`);
  });

  test('a hard budget refuses while a huge reservation is in flight', async () => {
    const { secret } = await tenant(gw, 'ovf-bud');
    const small = JSON.stringify(chat('big-model', 'hi', { max_tokens: 10 }));
    assert.equal((await postRaw(secret, small)).status, 200); // some spend (the overflow needs spend > 0)
    await cliOk(gw, ['budget', 'set', '--tenant', 'ovf-bud', '--monthly', '1']);
    await waitLoaded(gw);
    // Reserves max_tokens x 20 micro-USD (saturated at 2^63-1). Streamed slowly, it is
    // surely admitted and in flight once its response head has arrived.
    const huge = http.request(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}`, 'x-mock-interval-ms': '100' },
    });
    huge.on('error', () => {});
    const head = new Promise((resolve, reject) => {
      huge.on('response', resolve);
      huge.on('error', reject);
    });
    huge.end(hugeBody('big-model', '9000000000000000000', ',"stream":true,"stream_options":{"include_usage":true}'));
    try {
      const res = await head;
      assert.equal(res.statusCode, 200);
      assert.match(res.headers['content-type'], /event-stream/);
      const during = await Promise.all(Array.from({ length: 10 }, () => postRaw(secret, small)));
      assert.deepEqual(during.map((r) => r.status), Array(10).fill(402), 'spend + reservations >= budget while the huge one runs');
    } finally {
      huge.destroy();
    }
  });
});
