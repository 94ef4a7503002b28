// An https:// upstream (through libcurl): a node https server with a certificate made here
// by the openssl CLI, trusted through the upstream's ca_file; without it, verification fails.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';

import { createTenantKey, curlJson, run, sqlite, startGateway, tempDir, waitFor } from './lib/harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('https upstream', () => {
  let server, port, dir, certPath;
  before(async () => {
    dir = await tempDir('tollgate-tls-');
    certPath = path.join(dir, 'cert.pem');
    const keyPath = path.join(dir, 'key.pem');
    const r = await run('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', keyPath, '-out', certPath,
    ]);
    assert.equal(r.code, 0, r.stderr);
    server = https.createServer({ key: fs.readFileSync(keyPath), cert: fs.readFileSync(certPath) }, (req, res) => {
      let n = 0;
      req.on('data', (d) => (n += d.length));
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ path: req.url, headers: req.headers, body_bytes: n }));
      });
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    port = server.address().port;
  });
  after(() => server?.close());

  test('requests reach an https target verified with ca_file', async () => {
    const gw = await startGateway({
      upstreams: [
        { name: 'tls', targets: [`https://localhost:${port}`], ca_file: certPath },
        { name: 'untrusted', targets: [`https://localhost:${port}`] },
      ],
      routes: [
        { name: 'bad', path_prefix: '/untrusted/', upstream: 'untrusted', kind: 'http' },
        { name: 'api', path_prefix: '/', upstream: 'tls', kind: 'http' },
      ],
    });
    const k = await createTenantKey(gw, 'acme');
    await sleep(600);
    const r = await curlJson(`${gw.url}/secure?x=1`, {
      headers: { Authorization: `Bearer ${k.secret}` },
      data: { hello: 'tls' },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.path, '/secure?x=1');
    assert.equal(r.body.headers['x-tollgate-tenant'], 'acme');
    assert.equal(r.body.headers.authorization, undefined);
    assert.equal(r.body.body_bytes, 15);
    const bad = await curlJson(`${gw.url}/untrusted/x`, { headers: { Authorization: `Bearer ${k.secret}` } });
    assert.equal(bad.status, 502, 'an unverifiable certificate is refused');
    await waitFor(async () => (await sqlite(gw.dbPath, 'select count(*) n from usage_events'))[0].n === 2);
    const rows = await sqlite(gw.dbPath, 'select status, outcome, upstream from usage_events order by id');
    assert.deepEqual(rows.map((e) => [e.status, e.outcome]), [[200, 'billable'], [502, 'failed']]);
    assert.equal(rows[0].upstream, `https://localhost:${port}`);
    assert.equal((await gw.stop()).code, 0);
  });

  test('an unreadable ca_file is a config error naming the key', async () => {
    const gw = await startGateway({
      upstreams: [{ name: 'tls', targets: [`https://localhost:${port}`], ca_file: certPath }],
      routes: [{ name: 'api', path_prefix: '/', upstream: 'tls', kind: 'http' }],
    });
    await gw.stop();
    fs.writeFileSync(gw.configPath, fs.readFileSync(gw.configPath, 'utf8').replace(certPath, `${certPath}.missing`));
    const r = await gw.cli(['serve']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /tollgate\.yaml:\d+: upstreams\[0\]\.ca_file: cannot read/);
  });
});
