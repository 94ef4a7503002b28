// Makes the dashboard screenshots of the docs (docs/img/dashboard.png, dashboard-tenant.png)
// from a small demo: the real gateway in front of the mock upstream, three tenants with
// budgets and limits, AI calls, plain calls, upstream errors and rate-limit refusals, and an
// error-rate alarm that fires for one tenant. Not a test (dashboard.test.mjs checks what the
// page shows against the store); run it when the dashboard's look changes:
//
//   cd tests/e2e && node tools/dashboard-shots.mjs
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import { repoRoot, request, startGateway, startMock, waitFor } from '../lib/harness.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const OUT = path.join(repoRoot, 'docs', 'img');

const mock = await startMock();
const gw = await startGateway({
  upstreams: [{ name: 'mock', targets: [mock.url] }],
  routes: [
    { name: 'openai', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' },
    { name: 'api', path_prefix: '/', upstream: 'mock', kind: 'http' },
  ],
  extra: {
    prices: { models: { 'gpt-4o-mini': { input: '0.15', output: '0.60' }, 'gpt-4o': { input: '2.50', output: '10.00' } } },
    alarms: [{ name: 'errors', kind: 'error_rate', window: '5m', threshold: 0.2, min_requests: 10, severity: 'critical' }],
    alarms_interval: '1s',
  },
});
const keys = {};
async function cli(args) {
  const r = await gw.cli(args);
  if (r.code !== 0) throw new Error(`tollgate ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
for (const [id, name] of [
  ['acme', 'Acme Corp'],
  ['globex', 'Globex Inc'],
  ['initech', 'Initech'],
]) {
  await cli(['tenant', 'add', id, '--name', name]);
  keys[id] = /^\s*secret:\s*(tg_\S+)\s*$/m.exec(await cli(['key', 'create', '--tenant', id]))[1];
}
await cli(['budget', 'set', '--tenant', 'acme', '--monthly', '5']);
await cli(['budget', 'set', '--tenant', 'globex', '--monthly', '0.5']);
await cli(['limit', 'set', '--tenant', 'initech', '--rpm', '30']);
const send = (t, p, init = {}) => request(`${gw.url}${p}`, { ...init, headers: { authorization: `Bearer ${keys[t]}`, ...(init.headers || {}) } });
const chat = (t, model, n) =>
  send(t, '/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'summarise this ticket '.repeat(20) }], max_tokens: n }),
  });
for (const t of Object.keys(keys)) await waitFor(async () => (await send(t, '/warm')).status === 200, { message: `${t} key loaded` });

// A few minutes of traffic squeezed into seconds: each tenant its own mix.
for (let round = 0; round < 12; round++) {
  for (let i = 0; i < 4; i++) await chat('acme', i % 2 ? 'gpt-4o' : 'gpt-4o-mini', 200 + 40 * i);
  for (let i = 0; i < 6; i++) await send('acme', `/orders/${round * 10 + i}`);
  for (let i = 0; i < 3; i++) await chat('globex', 'gpt-4o', 400);
  await send('globex', '/reports?status=500');
  for (let i = 0; i < 2; i++) await send('globex', `/reports/${i}`);
  for (let i = 0; i < 8; i++) await send('initech', `/tps/${i}`); // over 30 a minute: 429s
  await new Promise((r) => setTimeout(r, 250));
}
for (let i = 0; i < 8; i++) await send('globex', '/export?status=503'); // its error rate climbs
await request(`${gw.url}/hello`); // no key
await waitFor(async () => (await cli(['alarms', 'list', '--format', 'json'])).includes('"firing"'), {
  timeoutMs: 20000,
  message: 'the errors alarm firing',
});

const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tollgate-shots-'));
const browser = await puppeteer.launch({
  executablePath: CHROMIUM,
  headless: true,
  userDataDir: userDir,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 640 });
  await page.goto(`${gw.adminUrl}/dashboard?token=${gw.adminToken}`, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('[data-tenant="acme"]', { timeout: 10000 });
  await new Promise((r) => setTimeout(r, 500));
  await page.screenshot({ path: path.join(OUT, 'dashboard.png'), fullPage: true });
  await page.goto(`${gw.adminUrl}/dashboard/tenant/globex`, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('[data-testid="chart-minutes"] polyline', { timeout: 10000 });
  await new Promise((r) => setTimeout(r, 500));
  await page.screenshot({ path: path.join(OUT, 'dashboard-tenant.png'), fullPage: true });
  console.log(`written: ${path.join(OUT, 'dashboard.png')}, ${path.join(OUT, 'dashboard-tenant.png')}`);
} finally {
  await browser.close();
  fs.rmSync(userDir, { recursive: true, force: true });
  await gw.stop();
  await mock.stop();
}
