// Upstream credentials from files, several per upstream, rotated by SIGHUP (docs/configuration.md,
// "Upstream credentials"). The mock upstream accepts a fixed set of Authorization values and
// answers 401 to anything else (an empty, torn or stale-and-revoked credential would show as
// a non-2xx), saying which one it got in x-mock-credential. A client keeps sending requests
// through the gateway on keep-alive connections while one credential file is replaced by
// rename, and another rewritten in place with a SIGHUP landing while it is empty: not one
// answer is non-2xx, the refused reload keeps the running credentials, and once a reload took
// effect only the new credentials arrive. A request in flight across the reload finishes with
// the credential it started with. No credential ever reaches stderr, the access log, the
// events or the dashboard.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  bin,
  createTenantKey,
  request,
  run,
  sqlite,
  startGateway,
  startMock,
  tempDir,
  toYaml,
  waitFor,
  waitForKey,
} from './lib/harness.mjs';

// The mock's accepted values; x-mock-credential is the 1-based index here.
const SECRETS = ['sk-alpha-1111', 'sk-beta-2222', 'sk-gamma-3333', 'sk-delta-4444'];
const ALPHA = 1;
const BETA = 2;
const GAMMA = 3;
const DELTA = 4;

describe('upstream credentials from files, rotated under load', () => {
  let mock;
  let gw;
  let dir;
  let k1;
  let k2;
  let key;
  before(async () => {
    dir = await tempDir('tollgate-creds-');
    k1 = path.join(dir, 'k1');
    k2 = path.join(dir, 'k2');
    fs.writeFileSync(k1, `${SECRETS[0]}\r\n`, { mode: 0o600 }); // CRLF: stripped
    fs.writeFileSync(k2, SECRETS[1], { mode: 0o600 }); // no newline at all: as Kubernetes writes
    mock = await startMock({ credentials: SECRETS.map((s) => `Bearer ${s}`) });
    gw = await startGateway({
      upstreams: [
        {
          name: 'mock',
          targets: [mock.url],
          credentials: [`\${file:${k1}}`, `\${file:${k2}}`],
          headers: { Authorization: 'Bearer {credential}' },
        },
      ],
      routes: [{ name: 'api', path_prefix: '/', upstream: 'mock', kind: 'http' }],
      workers: 2,
    });
    key = (await createTenantKey(gw, 'acme')).secret;
    await waitForKey(gw, key, '/healthz');
  });
  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  const get = (p, headers = {}) => request(`${gw.url}${p}`, { headers: { authorization: `Bearer ${key}`, ...headers } });
  const reloads = () => (gw.stderr().match(/config reloaded from/g) || []).length;

  test('two credentials are taken in turn, one per request', async () => {
    const seen = [];
    for (let i = 0; i < 6; i++) {
      const r = await get(`/rr/${i}`);
      assert.equal(r.status, 200, r.text);
      seen.push(Number(r.headers['x-mock-credential']));
    }
    for (let i = 1; i < seen.length; i++) assert.notEqual(seen[i], seen[i - 1], `alternates: ${seen}`);
    assert.deepEqual([...new Set(seen)].sort(), [ALPHA, BETA]);
    // The tenant's own key never reaches the upstream: a mock that sees it answers 401.
  });

  test('a client cannot send its own upstream credential, nor read ours', async () => {
    // A tenant that authenticates with x-api-key and also sends an Authorization the mock
    // would accept (delta, not configured): the config's value replaces it. Were it relayed,
    // the mock would see two Authorization lines (401) or delta.
    for (const h of [{ authorization: `Bearer ${SECRETS[3]}` }, { AUTHORIZATION: `Bearer ${SECRETS[3]}` }]) {
      const r = await request(`${gw.url}/own`, { headers: { 'x-api-key': key, ...h } });
      assert.equal(r.status, 200, r.text);
      assert.ok([ALPHA, BETA].includes(Number(r.headers['x-mock-credential'])), `${r.headers['x-mock-credential']}`);
    }
    // {credential} in what a client sends is text, never replaced.
    const r = await get('/%7Bcredential%7D?q={credential}', { 'x-note': '{credential}' });
    assert.equal(r.status, 200, r.text);
    const e = await request(`${gw.url}/echo?echo=1`, { headers: { authorization: `Bearer ${key}`, 'x-note': '{credential}' } });
    assert.equal(JSON.parse(e.text).headers['x-note'], '{credential}');
  });

  test('rename and in-place rewrite with SIGHUP: no failed request, then only the new credentials', async () => {
    // The load: 8 keep-alive clients, each request tagged with the phase it started in.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    let phase = 0;
    let running = true;
    const results = [];
    const errors = [];
    const one = (n) =>
      new Promise((resolve) => {
        const started = phase;
        const req = http.request(
          `${gw.url}/load/${n}`,
          { agent, headers: { authorization: `Bearer ${key}` }, timeout: 10000 },
          (res) => {
            res.resume();
            res.on('end', () => {
              results.push({ phase: started, status: res.statusCode, cred: Number(res.headers['x-mock-credential'] || 0) });
              resolve();
            });
          },
        );
        req.on('timeout', () => req.destroy(new Error('timed out')));
        req.on('error', (e) => {
          errors.push(e.message);
          resolve();
        });
        req.end();
      });
    let n = 0;
    const clients = Array.from({ length: 8 }, async () => {
      while (running) await one(n++);
    });
    const inPhase = (p) => results.filter((r) => r.phase === p);
    const until = (p, count) => waitFor(() => inPhase(p).length >= count, { timeoutMs: 15000, message: `${count} answers in phase ${p}` });
    const credsOf = (p) => [...new Set(inPhase(p).map((r) => r.cred))].sort();

    try {
      await until(0, 100);
      // A request in flight across the reload: a stream whose head (and credential) came
      // before the SIGHUP, and whose events go on for 1.5 s after it.
      const slowRes = await new Promise((resolve, reject) => {
        const req = http.request(`${gw.url}/slow?sse=15&interval_ms=100`, { headers: { authorization: `Bearer ${key}` } }, resolve);
        req.on('error', reject);
        req.end();
      });
      let slowDone = 0;
      const slow = new Promise((resolve, reject) => {
        let text = '';
        slowRes.on('data', (d) => (text += d));
        slowRes.on('error', reject);
        slowRes.on('end', () => resolve({ status: slowRes.statusCode, headers: slowRes.headers, text, done: (slowDone = performance.now()) }));
      });

      // 1. Replace k1 the safe way: a new file renamed over the old one.
      fs.writeFileSync(`${k1}.tmp`, `${SECRETS[2]}\n`, { mode: 0o600 });
      fs.renameSync(`${k1}.tmp`, k1);
      process.kill(gw.proc.pid, 'SIGHUP');
      await waitFor(() => reloads() === 1, { message: 'the first reload' });
      await waitFor(() => results.some((r) => r.cred === GAMMA), { message: 'the new credential in use' });
      const reloadedAt = performance.now();
      phase = 1;
      await until(1, 200);
      assert.deepEqual(credsOf(1), [BETA, GAMMA], 'after the reload: gamma and beta, never alpha');

      const s = await slow;
      assert.ok(slowDone > reloadedAt, 'the slow request was still in flight when the reload took effect');
      assert.equal(s.status, 200, s.text);
      assert.match(s.text, /data: \[DONE\]/, 'the whole stream');
      assert.ok([ALPHA, BETA].includes(Number(s.headers['x-mock-credential'])), 'in flight: the credential it started with');

      // 2. Rewrite k2 in place, with a SIGHUP while it is empty: the reload is refused (the
      // file named, never a secret) and the running credentials go on.
      fs.truncateSync(k2, 0);
      process.kill(gw.proc.pid, 'SIGHUP');
      await waitFor(() => /reload refused, keeping the running config: .*credentials\[1\]: .*k2: the file is empty/.test(gw.stderr()), {
        message: 'the refused reload is logged',
      });
      phase = 2;
      await until(2, 200);
      assert.deepEqual(credsOf(2), [BETA, GAMMA], 'a refused reload keeps the credentials running');
      fs.writeFileSync(k2, `${SECRETS[3]}\n`); // in place: O_TRUNC then one write
      process.kill(gw.proc.pid, 'SIGHUP');
      await waitFor(() => reloads() === 2, { message: 'the second reload' });
      await waitFor(() => results.some((r) => r.cred === DELTA), { message: 'delta in use' });
      phase = 3;
      await until(3, 200);
      assert.deepEqual(credsOf(3), [GAMMA, DELTA], 'after the second reload: gamma and delta only');
    } finally {
      running = false;
      await Promise.all(clients);
      agent.destroy();
    }
    assert.deepEqual(errors, [], 'no request failed at the socket');
    const bad = results.filter((r) => r.status < 200 || r.status > 299);
    assert.equal(bad.length, 0, `non-2xx answers: ${JSON.stringify(bad.slice(0, 5))} of ${results.length}`);
    assert.ok(results.length >= 700, `${results.length} requests under load`);
  });

  test('no credential in stderr, stdout, the access log, the events or the dashboard', async () => {
    const dash = await request(`${gw.adminUrl}/dashboard/api/tenant/acme`, { headers: gw.adminHeaders });
    assert.equal(dash.status, 200, dash.text);
    const metrics = await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders });
    await gw.stop(); // SIGTERM drains the events into the store and the access log
    const events = await sqlite(gw.dbPath, 'SELECT * FROM usage_events');
    assert.ok(events.length >= 700, `${events.length} events stored`);
    const places = {
      stderr: gw.stderr(),
      stdout: gw.stdout(),
      'access log': fs.readFileSync(gw.accessLog, 'utf8'),
      events: JSON.stringify(events),
      dashboard: dash.text,
      metrics: metrics.text,
    };
    for (const [where, text] of Object.entries(places))
      for (const s of SECRETS) assert.ok(!text.includes(s.slice(3)), `${where} holds a credential`);
    await gw.restart(); // for after()
  });
});

describe('credential files that cannot be used refuse to start', () => {
  let dir;
  before(async () => {
    dir = await tempDir('tollgate-creds-bad-');
  });

  async function serve(creds) {
    const cfg = path.join(dir, 'tollgate.yaml');
    fs.writeFileSync(
      cfg,
      toYaml({
        store: `sqlite:${path.join(dir, 't.db')}`,
        upstreams: [{ name: 'm', targets: ['http://127.0.0.1:9'], credentials: creds, headers: { 'x-api-key': '{credential}' } }],
        routes: [{ name: 'r', path_prefix: '/', upstream: 'm' }],
      }),
    );
    return run(bin, ['-c', cfg, 'serve'], { cwd: dir });
  }

  test('missing, empty, a control byte: exit 2, FILE:LINE: KEY, never the secret', async () => {
    const ok = path.join(dir, 'ok');
    const empty = path.join(dir, 'empty');
    const ctl = path.join(dir, 'ctl');
    fs.writeFileSync(ok, 'sk-fine-0000\n');
    fs.writeFileSync(empty, '\n\n');
    fs.writeFileSync(ctl, 'sk-HIDDEN-9999\x1b[2J\n');
    const cases = [
      [path.join(dir, 'nope'), /credentials\[1\]: cannot open .*nope: No such file or directory/],
      [empty, /credentials\[1\]: .*empty: the first line is empty/],
      [ctl, /credentials\[1\]: .*ctl: the first line has a control character \(at byte 15\), not allowed in a header value/],
    ];
    for (const [file, want] of cases) {
      const r = await serve([`\${file:${ok}}`, `\${file:${file}}`]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /tollgate\.yaml:\d+: upstreams\[0\]\./);
      assert.match(r.stderr, want);
      assert.ok(!r.stderr.includes('HIDDEN') && !r.stderr.includes('fine-0000'), r.stderr);
    }
  });
});
