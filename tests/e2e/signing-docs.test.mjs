// docs/signing.md's client examples (Python, Node, and the OpenAI SDK's signing fetch), taken
// from the document as written and run against a gateway: only the placeholders (the base
// URL, the key and the signing secret) are replaced. If the docs drift from what the gateway
// accepts, this fails. The examples read the real clock, so this file is not run under
// faketime.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';

import { startGateway, startMock, tempDir, waitFor, waitForEvent, waitLoaded } from './lib/harness.mjs';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const doc = fs.readFileSync(path.join(here, '../../docs/signing.md'), 'utf8');

/** The fenced blocks of one language, in order. */
const blocks = (lang) => [...doc.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]);

describe('docs/signing.md examples against a gateway', () => {
  let mock;
  let gw;
  let key;
  let signing;
  const fill = (code) => code.replaceAll('http://127.0.0.1:8080', gw.url).replaceAll('tg_Xb3…', key).replaceAll('tgs_Q7…', signing);

  before(async () => {
    mock = await startMock();
    const dir = await tempDir('tollgate-signdocs-');
    const kek = path.join(dir, 'kek');
    fs.writeFileSync(kek, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [
        { name: 'pay', path_prefix: '/payments/', upstream: 'mock', signed: 'required' },
        { name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai', signed: 'required' },
      ],
      extra: { encryption: { kek_file: kek } },
    });
    assert.equal((await gw.cli(['tenant', 'add', 'acme'])).code, 0);
    const k = await gw.cli(['key', 'create', '--tenant', 'acme', '--signing']);
    assert.equal(k.code, 0, k.stderr);
    key = /^secret: (tg_\S+)$/m.exec(k.stdout)[1];
    signing = /^signing_secret: (tgs_\S+)$/m.exec(k.stdout)[1];
    await waitLoaded(gw);
  });

  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  /** The latest event of route, once the route has n events stored. */
  async function lastEvent(route, n) {
    let rows = [];
    await waitFor(async () => {
      const r = await gw.cli(['query', `SELECT request_id FROM events WHERE route = '${route}' ORDER BY ts_us`, '--format', 'json']);
      assert.equal(r.code, 0, r.stderr);
      rows = JSON.parse(r.stdout);
      return rows.length >= n;
    }, { message: `${n} events of route ${route}` });
    assert.equal(rows.length, n);
    return waitForEvent(gw, rows[n - 1].request_id);
  }

  test('the Python example (standard library) is accepted', async () => {
    const py = blocks('python');
    assert.equal(py.length, 1);
    const { stdout } = await run('python3', ['-c', fill(py[0])]);
    assert.match(stdout, /^200 /);
    const ev = await lastEvent('pay', 1);
    assert.deepEqual([ev.tenant, ev.status], ['acme', 200]);
  });

  test('the Node example is accepted (run twice: a fresh nonce and timestamp each time)', async () => {
    const js = blocks('js').filter((b) => b.includes('async function signedFetch'));
    assert.equal(js.length, 1);
    for (let i = 0; i < 2; i++) {
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', fill(js[0])], { cwd: here });
      assert.match(stdout, /^200 /);
    }
    assert.equal((await lastEvent('pay', 3)).status, 200);
  });

  test('the OpenAI SDK with the signing fetch of the docs is accepted and metered', async () => {
    const js = blocks('js').filter((b) => b.includes('function signingFetch'));
    assert.equal(js.length, 1);
    const code = `${fill(js[0])}
const r = await client.chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 3, messages: [{ role: 'user', content: 'hi' }] });
console.log(JSON.stringify(r.usage));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', code], { cwd: here });
    assert.equal(JSON.parse(stdout).completion_tokens, 3);
    const ev = await lastEvent('oa', 1);
    assert.deepEqual([ev.tenant, ev.outcome, ev.tokens_out], ['acme', 'billable', 3]);
  });
});
