// The dashboard end to end, in a real browser: Debian's Chromium (/usr/bin/chromium) driven
// headless over CDP by puppeteer-core (pinned in package-lock.json), against the real gateway
// and the mock upstream. Known traffic for two tenants (OK, upstream errors, rate-limit
// rejections, OpenAI calls with tokens and a price), then: the numbers the page shows equal
// the store's (the JSON API, `tollgate usage` and a direct read of the SQLite file); a
// hostile tenant name renders as text; a tenant page's charts have one point per minute and
// per day; the page refreshes by itself; the log-in from ?token= leaves a cookie that is not
// the token and a URL without it; 401 without the cookie or the token. A screenshot is saved
// in build/artifacts/ (a test artifact; docs/img/dashboard.png is a copy kept for the docs).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import puppeteer from 'puppeteer-core';
import { repoRoot, request, sqlDialect, sqlite, startGateway, startMock, waitFor } from './lib/harness.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const ARTIFACTS = path.join(repoRoot, 'build', 'artifacts');
const HOSTILE = '<img src=x onerror="window.__xss=1">Acme & "Co"';
const PRICE = { input: '1', output: '2' }; // USD per 1M tokens: 1 and 2 micro-USD a token

/** µUSD as the page shows it: $W.FFFFFF. */
function usd(micros) {
  return `$${Math.floor(micros / 1e6)}.${String(micros % 1e6).padStart(6, '0')}`;
}

describe('dashboard', () => {
  let mock;
  let gw;
  let browser;
  let chromePid;
  let userDir;
  const keys = {};

  async function cliOk(args) {
    const r = await gw.cli(args);
    assert.equal(r.code, 0, `tollgate ${args.join(' ')}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  async function addTenant(id, name) {
    await cliOk(['tenant', 'add', id, '--name', name]);
    const out = await cliOk(['key', 'create', '--tenant', id]);
    keys[id] = /^\s*secret:\s*(tg_\S+)\s*$/m.exec(out)[1];
  }

  const sent = {}; // per tenant: requests the gateway took as that tenant's (not a 401)
  async function send(tenant, p, init = {}) {
    const r = await request(`${gw.url}${p}`, { ...init, headers: { authorization: `Bearer ${keys[tenant]}`, ...(init.headers || {}) } });
    if (r.status !== 401) sent[tenant] = (sent[tenant] || 0) + 1;
    return r;
  }

  const chat = (tenant, maxTokens) =>
    send(tenant, '/v1/chat/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'dash-model', messages: [{ role: 'user', content: 'hello dashboard' }], max_tokens: maxTokens }),
    });

  /** The store's truth for today, per tenant, from the store itself (SQLite file or PostgreSQL). */
  async function storeToday() {
    const rows = await sqlite(
      gw.dbPath,
      `SELECT tenant, sum(requests) AS requests, sum(CASE WHEN outcome = 'billable' THEN requests ELSE 0 END) AS billable,
         sum(CASE WHEN outcome = 'failed' THEN requests ELSE 0 END) AS failed,
         sum(CASE WHEN outcome = 'rejected' THEN requests ELSE 0 END) AS rejected,
         coalesce(sum(tokens_in), 0) AS tokens_in, coalesce(sum(tokens_out), 0) AS tokens_out,
         sum(cost_micros) AS cost_micros
       FROM usage_events WHERE ts_us >= ${sqlDialect(gw.dbPath).todayUs()}
       GROUP BY tenant`,
    );
    return Object.fromEntries(rows.map((r) => [r.tenant, r]));
  }

  before(async () => {
    mock = await startMock();
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [
        { name: 'openai', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' },
        { name: 'api', path_prefix: '/', upstream: 'mock', kind: 'http' },
      ],
      extra: { prices: { models: { 'dash-model': PRICE } } },
    });
    await addTenant('acme', HOSTILE);
    await addTenant('beta', 'Beta Ltd');
    await cliOk(['limit', 'set', '--tenant', 'beta', '--rpm', '3']);
    await cliOk(['budget', 'set', '--tenant', 'acme', '--monthly', '0.001']);
    // The gateway picks policy and keys up within a second (its refreshers).
    await waitFor(async () => (await send('beta', '/warm')).status === 200, { message: 'beta key loaded' });
    await waitFor(async () => (await send('acme', '/warm')).status === 200, { message: 'acme key loaded' });

    // acme: 4 OK, 2 upstream errors, 3 priced chat completions.
    for (let i = 0; i < 4; i++) assert.equal((await send('acme', '/hello')).status, 200);
    for (let i = 0; i < 2; i++) assert.equal((await send('acme', '/boom?status=500')).status, 500);
    for (const n of [5, 7, 9]) assert.equal((await chat('acme', n)).status, 200);
    // beta: over its 3 per minute: rejections with their reason. The limit reaches the
    // gateway with its policy refresher (within a second), so send until two are refused.
    const statuses = [];
    while (statuses.filter((s) => s === 429).length < 2) {
      assert.ok(statuses.length < 200, `beta never limited: ${statuses}`);
      statuses.push((await send('beta', '/hello')).status);
      if (statuses.at(-1) === 200 && statuses.length > 3) await new Promise((r) => setTimeout(r, 20));
    }
    // No key: the unauthenticated row.
    assert.equal((await request(`${gw.url}/hello`)).status, 401);

    await waitFor(async () => {
      const t = await storeToday();
      return t.acme?.requests === sent.acme && t.beta?.requests === sent.beta && t['']?.requests >= 1;
    }, { timeoutMs: 10000, message: 'all events stored' });

    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tollgate-chromium-'));
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      userDataDir: userDir,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
    });
    chromePid = browser.process()?.pid;
  });

  after(async () => {
    try {
      if (browser) await browser.close();
    } catch {
      // closed below by its pid
    }
    if (chromePid) {
      try {
        process.kill(chromePid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
    await gw?.stop();
    await mock?.stop();
  });

  test('401 without the cookie or the token, for the page, the assets and the JSON', async () => {
    for (const p of ['/dashboard', '/dashboard/tenant/acme', '/dashboard/app.js', '/dashboard/api/overview', '/dashboard/api/tenant/acme', '/dashboard/nope']) {
      const r = await request(`${gw.adminUrl}${p}`);
      assert.equal(r.status, 401, `${p}: ${r.status}`);
      assert.equal(r.headers['cache-control'], 'no-store', `${p}: cache-control`);
    }
    const page = await request(`${gw.adminUrl}/dashboard`);
    assert.match(page.headers['content-type'], /^text\/html/);
    assert.match(page.text, /dashboard\?token=/);
    // A wrong token in the URL, a cookie that is not the right HMAC, the token itself as the cookie.
    assert.equal((await request(`${gw.adminUrl}/dashboard?token=${'0'.repeat(48)}`)).status, 401);
    assert.equal((await request(`${gw.adminUrl}/dashboard`, { headers: { cookie: `tg_dash=${'a'.repeat(64)}` } })).status, 401);
    assert.equal((await request(`${gw.adminUrl}/dashboard/api/overview`, { headers: { cookie: `tg_dash=${gw.adminToken}` } })).status, 401);
    // The right token: 303 to the same path without it, and a cookie that works alone.
    const login = await request(`${gw.adminUrl}/dashboard?token=${gw.adminToken}`);
    assert.equal(login.status, 303);
    assert.equal(login.headers.location, '/dashboard');
    const set = String(login.headers['set-cookie']);
    assert.match(set, /^tg_dash=[0-9a-f]{64}; HttpOnly; SameSite=Strict; Path=\/dashboard$/);
    assert.ok(!set.includes(gw.adminToken));
    const cookie = set.split(';')[0];
    const api = await request(`${gw.adminUrl}/dashboard/api/overview`, { headers: { cookie } });
    assert.equal(api.status, 200, api.text);
    assert.equal(api.headers['cache-control'], 'no-store');
    assert.match(api.headers['content-type'], /^application\/json/);
    // The cookie is for /dashboard only: the rest of the admin API still wants the Bearer token.
    assert.equal((await request(`${gw.adminUrl}/metrics`, { headers: { cookie } })).status, 401);
    // The Bearer header works for the dashboard too; the page carries a strict CSP.
    const html = await request(`${gw.adminUrl}/dashboard`, { headers: gw.adminHeaders });
    assert.equal(html.status, 200);
    const csp = html.headers['content-security-policy'];
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'/);
    assert.ok(!/unsafe-inline|unsafe-eval/.test(csp), csp);
    assert.equal((await request(`${gw.adminUrl}/dashboard/app.js`, { headers: gw.adminHeaders })).headers['content-type'], 'text/javascript; charset=utf-8');
    // Unknown tenant ids and paths under /dashboard, once authorized: 404.
    assert.equal((await request(`${gw.adminUrl}/dashboard/api/tenant/nobody`, { headers: gw.adminHeaders })).status, 404);
    assert.equal((await request(`${gw.adminUrl}/dashboard/api/tenant/a%0d%0aX:1`, { headers: gw.adminHeaders })).status, 404);
  });

  test('the JSON API equals the store (its rows and `tollgate usage`)', async () => {
    const r = await request(`${gw.adminUrl}/dashboard/api/overview`, { headers: gw.adminHeaders });
    assert.equal(r.status, 200, r.text);
    const d = r.json();
    const truth = await storeToday();
    const byId = Object.fromEntries(d.tenants.map((t) => [t.id, t]));
    for (const id of ['acme', 'beta', '']) {
      for (const k of ['requests', 'billable', 'failed', 'rejected', 'tokens_in', 'tokens_out', 'cost_micros']) {
        assert.equal(byId[id].range[k], truth[id][k], `${id || '(none)'} ${k}`);
      }
    }
    assert.equal(byId.acme.name, HOSTILE);
    assert.equal(byId.acme.range.failed, 2);
    assert.ok(byId.acme.range.cost_micros > 0);
    assert.ok(byId.beta.range.rejected >= 2);
    assert.deepEqual(d.alarms, []);
    // p95 (nearest rank) of acme's latencies, computed here from the rows.
    const lat = (await sqlite(gw.dbPath, `SELECT latency_us FROM usage_events WHERE tenant = 'acme' ORDER BY latency_us`)).map((x) => x.latency_us);
    assert.equal(byId.acme.range.latency_p95_us, lat[Math.ceil(0.95 * lat.length) - 1]);
    // `tollgate usage` (usage_daily) says the same for today.
    for (const id of ['acme', 'beta']) {
      const rows = JSON.parse(await cliOk(['usage', '--tenant', id, '--format', 'json']));
      const today = (Array.isArray(rows) ? rows : rows.rows).at(-1);
      for (const k of ['requests', 'failed', 'rejected', 'tokens_in', 'tokens_out', 'cost_micros']) {
        assert.equal(byId[id].range[k], today[k], `usage ${id} ${k}`);
      }
    }
    // The budget: the month's spend from usage_daily.
    assert.equal(byId.acme.budget.monthly_micros, 1000);
    assert.equal(byId.acme.budget.spend_micros, truth.acme.cost_micros);

    const t = (await request(`${gw.adminUrl}/dashboard/api/tenant/beta`, { headers: gw.adminHeaders })).json();
    assert.equal(t.minutes.points.length, 60);
    assert.equal(t.days.points.length, 30);
    assert.equal(t.minutes.points.reduce((s, p) => s + p.requests, 0), truth.beta.requests);
    assert.equal(t.days.points.at(-1).requests, truth.beta.requests);
    const reasons = await sqlite(gw.dbPath, `SELECT reason FROM usage_events WHERE tenant = 'beta' AND outcome = 'rejected' ORDER BY ts_us DESC, id DESC`);
    assert.deepEqual(t.rejections.map((x) => x.reason), reasons.map((x) => x.reason));
    assert.equal(t.limits.length, 1);
    assert.equal(t.limits[0].requests, 3);
    assert.equal(t.limits[0].period_s, 60);
    assert.deepEqual(t.alarms, []);
  });

  test('in Chromium: log in, the overview equals the store, names are text, live refresh, tenant charts', async () => {
    const page = await browser.newPage();
    const problems = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(String(e)));
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`);
    });
    await page.setViewport({ width: 1280, height: 800 });

    // Log in with the token URL: redirected to /dashboard, the token gone from the URL.
    const resp = await page.goto(`${gw.adminUrl}/dashboard?token=${gw.adminToken}`, { waitUntil: 'domcontentloaded' });
    assert.equal(resp.status(), 200);
    assert.equal(new URL(page.url()).pathname, '/dashboard');
    assert.equal(new URL(page.url()).search, '');
    const cookies = await page.cookies();
    const c = cookies.find((x) => x.name === 'tg_dash');
    assert.ok(c, 'the dashboard cookie is set');
    assert.equal(c.httpOnly, true);
    assert.equal(c.sameSite, 'Strict');
    assert.equal(c.path, '/dashboard');
    assert.notEqual(c.value, gw.adminToken);
    assert.equal(await page.evaluate(() => document.cookie), '', 'HttpOnly: not visible to scripts');

    await page.waitForSelector('[data-testid="tenant-row"][data-tenant="acme"]', { timeout: 10000 });
    const shown = await page.$$eval('[data-testid="tenant-row"]', (rows) =>
      rows.map((tr) => {
        const get = (k) => tr.querySelector(`[data-testid="${k}"]`).textContent;
        return {
          id: tr.getAttribute('data-tenant'),
          name: get('name'),
          requests: get('requests'),
          failed: get('failed'),
          rejected: get('rejected'),
          tokens_in: get('tokens_in'),
          tokens_out: get('tokens_out'),
          cost: get('cost'),
          p95: tr.querySelector('[data-testid="p95"]').getAttribute('data-value'),
          imgs: tr.querySelectorAll('img').length,
        };
      }),
    );
    const truth = await storeToday();
    for (const id of ['acme', 'beta', '']) {
      const row = shown.find((s) => s.id === id);
      assert.ok(row, `row for ${id || '(none)'}`);
      for (const k of ['requests', 'failed', 'rejected', 'tokens_in', 'tokens_out']) {
        assert.equal(row[k], String(truth[id][k]), `${id || '(none)'} ${k} shown`);
      }
      assert.equal(row.cost, usd(truth[id].cost_micros), `${id || '(none)'} cost shown`);
      assert.equal(row.imgs, 0);
    }
    // The hostile name is shown as the text it is: no element made of it, no script run.
    assert.equal(shown.find((s) => s.id === 'acme').name, HOSTILE);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assert.equal(await page.$$eval('#tenants img', (x) => x.length), 0);
    const totals = await page.$eval('[data-testid="totals"] [data-testid="requests"]', (e) => e.textContent);
    assert.equal(totals, String(Object.values(truth).reduce((s, r) => s + r.requests, 0)));
    const budget = await page.$eval('[data-tenant="acme"] [data-testid="budget"]', (e) => e.getAttribute('data-spend'));
    assert.equal(budget, String(truth.acme.cost_micros));
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png'), fullPage: true });

    // Live: one more request, and the page shows it without a reload.
    assert.equal((await send('acme', '/hello')).status, 200);
    await waitFor(async () => (await storeToday()).acme.requests === truth.acme.requests + 1, { timeoutMs: 5000, message: 'the new event stored' });
    await page.waitForFunction(
      (want) => document.querySelector('[data-tenant="acme"] [data-testid="requests"]')?.textContent === want,
      { timeout: 15000 },
      String(truth.acme.requests + 1),
    );

    // A tenant page: 60 minute points, 30 day points, today's numbers, rejections.
    await page.goto(`${gw.adminUrl}/dashboard/tenant/beta`, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('[data-testid="chart-minutes"] polyline', { timeout: 10000 });
    const charts = await page.evaluate(() => {
      const n = (id) => document.querySelector(`[data-testid="${id}"] polyline`).getAttribute('points').trim().split(/\s+/).length;
      return { minutes: n('chart-minutes'), days: n('chart-days'), cost: n('chart-cost') };
    });
    assert.deepEqual(charts, { minutes: 60, days: 30, cost: 30 });
    const now = await storeToday();
    assert.equal(await page.$eval('[data-testid="today-requests"]', (e) => e.textContent), String(now.beta.requests));
    assert.equal(await page.$eval('[data-testid="today-rejected"]', (e) => e.textContent), String(now.beta.rejected));
    const reasons = await page.$$eval('[data-testid="rejection"] [data-testid="reason"]', (x) => x.map((e) => e.textContent));
    const stored = await sqlite(gw.dbPath, `SELECT reason FROM usage_events WHERE tenant = 'beta' AND outcome = 'rejected' ORDER BY ts_us DESC, id DESC`);
    assert.deepEqual(reasons, stored.map((x) => x.reason));
    assert.equal(await page.$eval('[data-testid="limit-requests"]', (e) => e.textContent), '3/min');
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-tenant.png'), fullPage: true });

    // The acme page: its hostile name as text in the heading.
    await page.goto(`${gw.adminUrl}/dashboard/tenant/acme`, { waitUntil: 'domcontentloaded' });
    await page.waitForFunction(() => document.querySelector('[data-testid="tenant-name"]')?.textContent.length > 0, { timeout: 10000 });
    assert.equal(await page.$eval('[data-testid="tenant-name"]', (e) => e.textContent), HOSTILE);
    assert.equal(await page.evaluate(() => window.__xss), undefined);

    assert.deepEqual(problems, [], 'no console errors (a CSP violation would be one)');
    await page.close();
  });
});

describe('dashboard cookie after the token changes (SIGHUP)', () => {
  let gw;
  before(async () => {
    gw = await startGateway({ adminTokenFile: true, workers: 1 });
  });
  after(async () => gw?.stop());

  const cookieFor = async (token) => {
    const r = await request(`${gw.adminUrl}/dashboard?token=${token}`);
    assert.equal(r.status, 303);
    return String(r.headers['set-cookie']).split(';')[0];
  };
  const api = async (cookie) => (await request(`${gw.adminUrl}/dashboard/api/overview`, { headers: { cookie } })).status;

  test('the old cookie is refused once a reload changed the token; the new token logs in', async () => {
    const old = await cookieFor(gw.adminToken);
    assert.equal(await api(old), 200);
    const next = `rotated-${crypto.randomBytes(8).toString('hex')}-dashboard`;
    await fs.promises.writeFile(gw.adminTokenFile, `${next}\n`);
    process.kill(gw.proc.pid, 'SIGHUP');
    await waitFor(async () => (await request(`${gw.adminUrl}/metrics`, { headers: { authorization: `Bearer ${next}` } })).status === 200, {
      message: 'the new token in force',
    });
    assert.equal(await api(old), 401);
    assert.equal((await request(`${gw.adminUrl}/dashboard?token=${gw.adminToken}`)).status, 401);
    const fresh = await cookieFor(next);
    assert.notEqual(fresh, old);
    assert.equal(await api(fresh), 200);
  });
});
