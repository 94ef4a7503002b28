// Plans, invoices and the CloudEvents export end to end (docs/billing.md): the real gateway
// in front of the mock upstream records events (AI calls with tokens and cost, plain GETs,
// a 500 that is not billable, another tenant); then `plan set`, `tenant set-plan`, and
// `invoice` in JSON, CSV and HTML must agree with `tollgate usage` and with the exported
// events, to the unit and the micro-dollar. The HTML is opened in headless Chromium and
// a screenshot saved in build/artifacts/ (docs/img/invoice.png is a copy kept for the docs).
//
// The month is the one the gateway recorded the events in, by its own clock: make check
// runs the suites with the gateway's clock set to other dates.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import puppeteer from 'puppeteer-core';

import { createTenantKey, repoRoot, request, sqlite, startGateway, startMock, waitFor, waitForKey } from './lib/harness.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const ARTIFACTS = path.join(repoRoot, 'build', 'artifacts');

const M = 1_000_000n;
/** round half up of q x unit / scale, exactly (BigInt): the documented rule. */
const line = (q, unit, scale) => (BigInt(q) * BigInt(unit) + BigInt(scale) / 2n) / BigInt(scale);

async function cliOk(gw, args) {
  const r = await gw.cli(args);
  assert.equal(r.code, 0, `tollgate ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r;
}

describe('plans, invoices and export', () => {
  let mock, gw, acme, globex, month, first, last;

  before(async () => {
    mock = await startMock();
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [
        { name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' },
        { name: 'api', path_prefix: '/api/', upstream: 'mock' },
      ],
      extra: { prices: { models: { 'gpt-4o-mini': { input: '0.15', output: '0.60' } } } },
    });
    acme = await createTenantKey(gw, 'acme');
    globex = await createTenantKey(gw, 'globex');
    await waitForKey(gw, acme.secret, '/api/ping');
    await waitForKey(gw, globex.secret, '/api/ping');
    const auth = (k) => ({ authorization: `Bearer ${k.secret}` });
    for (let i = 0; i < 3; i++) {
      const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi '.repeat(10 + i) }], max_tokens: 7 + i });
      const r = await request(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { ...auth(acme), 'content-type': 'application/json' },
        body,
      });
      assert.equal(r.status, 200, r.text);
    }
    for (const q of ['size=1000', 'size=2500', 'status=500']) {
      const r = await request(`${gw.url}/api/x?${q}`, { headers: auth(acme) });
      assert.equal(r.status, q.startsWith('status') ? 500 : 200);
    }
    const g = await request(`${gw.url}/api/x?size=10`, { headers: auth(globex) });
    assert.equal(g.status, 200);
    // waitForKey's probes are events too; wait until every request is stored.
    await waitFor(
      async () =>
        (await sqlite(gw.dbPath, `SELECT count(*) AS n FROM usage_events WHERE tenant = 'acme' AND (path LIKE '/api/x%' OR path LIKE '/v1/chat%')`))[0].n === 6,
      { message: 'acme events stored' },
    );
    await waitFor(async () => (await sqlite(gw.dbPath, `SELECT count(*) AS n FROM usage_events WHERE tenant = 'globex' AND path LIKE '/api/x%'`))[0].n === 1, {
      message: 'globex event stored',
    });
    const [{ ts }] = await sqlite(gw.dbPath, `SELECT max(ts_us) AS ts FROM usage_events WHERE tenant = 'acme'`);
    const d = new Date(Math.floor(ts / 1000));
    month = d.toISOString().slice(0, 7);
    first = `${month}-01`;
    last = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).toISOString().slice(0, 10);
  });

  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  const meters = [
    'requests unit 100',
    'billable graduated 2:1000 -:500 included=1',
    'gb unit 0.09',
    'tokens_in:* unit 2.50',
    'tokens_out:gpt-4o-mini volume 10:10 -:8',
    'ai_cost markup 20',
  ];

  test('plan set, list, show; tenant set-plan; bad specs refused with exit 2', async () => {
    const args = ['plan', 'set', 'pro', '--base', '49', '--from', month];
    for (const m of meters) args.push('--meter', m);
    const r = await cliOk(gw, args);
    assert.match(r.stdout, /plan set: pro from \d{4}-\d\d: base 49\.00 USD, 6 meters/);
    const list = JSON.parse((await cliOk(gw, ['plan', 'list', '--format', 'json'])).stdout);
    assert.equal(list.length, 1);
    assert.equal(list[0].name, 'pro');
    const show = JSON.parse((await cliOk(gw, ['plan', 'show', 'pro', '--month', month, '--format', 'json'])).stdout);
    assert.equal(show.base_micros, 49_000_000);
    assert.deepEqual(
      show.meters[1].tiers.map((t) => t.up_to),
      [2, null],
    );
    assert.equal(show.meters[5].tiers[0].unit_micros, 1_200_000);
    for (const bad of ['bytes unit 1', 'billable graduated 5:1 3:1 -:1', 'billable unit -1', 'requests:x unit 1', 'gb volume 1:0.1']) {
      const e = await gw.cli(['plan', 'set', 'bad', '--meter', bad]);
      assert.equal(e.code, 2, `${bad}: ${e.stderr}`);
      assert.match(e.stderr, /^tollgate: --meter /);
    }
    assert.equal((await gw.cli(['tenant', 'set-plan', 'acme', 'nope', '--from', month])).code, 1);
    assert.equal((await gw.cli(['tenant', 'set-plan', 'nobody', 'pro', '--from', month])).code, 1);
    await cliOk(gw, ['tenant', 'set-plan', 'acme', 'pro', '--from', month]);
    await cliOk(gw, ['tenant', 'set-plan', 'globex', 'pro', '--from', month]);
  });

  test('the invoice reconciles with `tollgate usage` and the exported events, to the unit and the micro-dollar', async () => {
    const inv = JSON.parse((await cliOk(gw, ['invoice', '--tenant', 'acme', '--month', month, '--format', 'json'])).stdout);
    assert.equal(inv.tenant, 'acme');
    assert.equal(inv.month, month);
    assert.equal(inv.status, 'open');
    const measured = Object.fromEntries(inv.meters.map((m) => [m.meter, m.measured]));

    const usage = JSON.parse((await cliOk(gw, ['usage', '--tenant', 'acme', '--from', first, '--to', last, '--format', 'json'])).stdout);
    const sum = (k) => usage.reduce((a, r) => a + r[k], 0);
    assert.equal(measured.requests, sum('requests'));
    assert.equal(measured.billable, sum('billable'));
    assert.equal(measured.billable, sum('requests') - 1 - sum('rejected'), 'the 500 is not billable');
    assert.equal(measured.tokens_in, sum('tokens_in'));
    assert.equal(measured.tokens_out, sum('tokens_out'));
    assert.equal(measured.ai_cost, sum('cost_micros'));
    assert.ok(measured.ai_cost > 0 && measured.tokens_in > 0);

    // The export: CloudEvents 1.0, one a line; the billable ones' bytes are the gb meter.
    const ex = await cliOk(gw, ['export', '--format', 'cloudevents', '--from', first, '--to', last, '--tenant', 'acme']);
    const evs = ex.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(evs.length, sum('requests'));
    for (const e of evs) {
      assert.equal(e.specversion, '1.0');
      assert.equal(e.type, 'dev.tollgate.usage');
      assert.equal(e.subject, 'acme');
      assert.equal(e.datacontenttype, 'application/json');
      assert.equal(e.id, e.data.id);
      assert.match(e.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      assert.equal(e.data.tenant, 'acme');
    }
    assert.equal(new Set(evs.map((e) => e.id)).size, evs.length, 'ids are unique');
    const billable = evs.filter((e) => e.data.outcome === 'billable');
    assert.equal(billable.length, measured.billable);
    assert.equal(
      measured.gb,
      billable.reduce((a, e) => a + e.data.bytes_in + e.data.bytes_out, 0),
    );
    assert.equal(
      measured.ai_cost,
      billable.reduce((a, e) => a + e.data.cost_micros, 0),
    );
    const jsonl = await cliOk(gw, ['export', '--format', 'jsonl', '--from', first, '--to', last]);
    const all = jsonl.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.ok(all.some((e) => e.tenant === 'globex') && all.some((e) => e.tenant === 'acme'));

    // The money, computed here from the measured units and the plan.
    const b = BigInt(Math.max(measured.billable - 1, 0));
    const t1 = b < 2n ? b : 2n;
    const out = measured.tokens_out;
    const expected =
      49n * M +
      line(measured.requests, 100n * M, M) +
      line(t1, 1000n * M, M) +
      line(b - t1, 500n * M, M) +
      line(measured.gb, 90_000n, 1_000_000_000n) +
      line(measured.tokens_in, 2_500_000n, M) +
      line(out, out > 10 ? 8n * M : 10n * M, M) +
      line(measured.ai_cost, 1_200_000n, M);
    assert.equal(BigInt(inv.total_micros), expected);
    assert.equal(
      inv.lines.reduce((a, l) => a + BigInt(l.subtotal_micros), 0n),
      expected,
    );

    // CSV: the same lines and total.
    const csv = (await cliOk(gw, ['invoice', '--tenant', 'acme', '--month', month, '--format', 'csv'])).stdout.trim().split('\n');
    assert.equal(csv.length, inv.lines.length + 2);
    assert.match(csv[csv.length - 1], new RegExp(`^acme,${month},total,,,,,,,${expected},`));

    // globex's invoice has only its own requests.
    const g = JSON.parse((await cliOk(gw, ['invoice', '--tenant', 'globex', '--month', month, '--format', 'json'])).stdout);
    const gm = Object.fromEntries(g.meters.map((m) => [m.meter, m.measured]));
    const gu = JSON.parse((await cliOk(gw, ['usage', '--tenant', 'globex', '--from', first, '--to', last, '--format', 'json'])).stdout);
    assert.equal(
      gm.requests,
      gu.reduce((a, r) => a + r.requests, 0),
    );

    // A month not yet over cannot be closed; a tenant without a plan is a clear error.
    const c = await gw.cli(['invoice', '--tenant', 'acme', '--month', month, '--close']);
    assert.equal(c.code, 1);
    assert.match(c.stderr, /has not ended/);
    await cliOk(gw, ['tenant', 'add', 'noplan']);
    const np = await gw.cli(['invoice', '--tenant', 'noplan', '--month', month]);
    assert.equal(np.code, 1);
    assert.match(np.stderr, /no plan/);
  });

  test('--all writes one file per tenant on a plan; the HTML is a printable page, escaped', async () => {
    await cliOk(gw, ['tenant', 'add', 'evil', '--name', '<img src=x onerror=alert(1)> & Co']);
    await cliOk(gw, ['tenant', 'set-plan', 'evil', 'pro', '--from', month]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tollgate-invoices-'));
    try {
      const r = await cliOk(gw, ['invoice', '--all', '--month', month, '--format', 'html', '--out', dir]);
      const files = fs.readdirSync(dir).sort();
      assert.deepEqual(files, [`acme-${month}.html`, `evil-${month}.html`, `globex-${month}.html`], r.stderr);
      const evil = fs.readFileSync(path.join(dir, `evil-${month}.html`), 'utf8');
      assert.ok(!evil.includes('<img'), 'the tenant name is escaped');
      assert.ok(evil.includes('&lt;img src=x onerror=alert(1)&gt; &amp; Co'));
      assert.ok(!/(src|href)=["']?https?:/.test(evil), 'no external assets');

      const inv = JSON.parse((await cliOk(gw, ['invoice', '--tenant', 'acme', '--month', month, '--format', 'json'])).stdout);
      const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tollgate-chromium-'));
      const browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        userDataDir: userDir,
        args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
      });
      try {
        const page = await browser.newPage();
        let dialogs = 0;
        page.on('dialog', async (d) => {
          dialogs++;
          await d.dismiss();
        });
        await page.setViewport({ width: 1000, height: 900 });
        await page.goto(`file://${path.join(dir, `acme-${month}.html`)}`, { waitUntil: 'load' });
        const text = await page.evaluate(() => document.body.innerText);
        assert.ok(text.includes(`USD ${inv.total}`), text);
        assert.ok(text.includes('Invoice') && text.includes('acme'));
        const rows = await page.evaluate(() => document.querySelectorAll('tbody tr').length);
        assert.equal(rows, inv.lines.length + 1);
        fs.mkdirSync(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: path.join(ARTIFACTS, 'invoice.png'), fullPage: true });
        await page.goto(`file://${path.join(dir, `evil-${month}.html`)}`, { waitUntil: 'load' });
        assert.equal(dialogs, 0, 'no script ran');
        const pdf = await page.pdf({ format: 'A4' });
        assert.ok(pdf.length > 1000, 'prints');
      } finally {
        await browser.close();
        fs.rmSync(userDir, { recursive: true, force: true });
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
