// The admin listener's token, end to end: every admin path but /healthz and /readyz answers
// 401 (with WWW-Authenticate and a JSON error) without `Authorization: Bearer TOKEN` or with
// a wrong one, and its answer with it; the token from server.admin_token, from ${ENV} and
// from server.admin_token_file; a SIGHUP reload that changes it refuses the old one; no
// token configured refuses everything but the probes; refusals counted on /metrics and
// logged at most once a second; the token (and what a client presented) never in the
// gateway's stderr, stdout or access log; config errors name the key, never the value.
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  bin,
  createTenantKey,
  raw,
  request,
  run,
  startGateway,
  startMock,
  tempDir,
  waitFor,
} from './lib/harness.mjs';

const CHALLENGE = 'Bearer realm="tollgate-admin"';

const bearer = (token) => ({ authorization: `Bearer ${token}` });

/** tollgate_admin_unauthorized_total from a scrape made with the token. */
async function refusedCount(gw, headers = gw.adminHeaders) {
  const r = await request(`${gw.adminUrl}/metrics`, { headers });
  assert.equal(r.status, 200, r.text);
  const m = /^tollgate_admin_unauthorized_total (\d+)$/m.exec(r.text);
  assert.ok(m, 'tollgate_admin_unauthorized_total is on /metrics');
  return Number(m[1]);
}

/** Asserts a 401 of the admin listener. */
function assert401(r, what) {
  assert.equal(r.status, 401, `${what}: ${r.status} ${r.text}`);
  assert.ok(r.headers['www-authenticate'].startsWith(CHALLENGE), `${what}: ${r.headers['www-authenticate']}`);
  assert.equal(r.json().error.type, 'unauthorized', what);
}

/** Everything the gateway wrote: stderr, stdout, the access log. */
function gatewayOutput(gw) {
  const log = fs.existsSync(gw.accessLog) ? fs.readFileSync(gw.accessLog, 'utf8') : '';
  return `${gw.stderr()}\n${gw.stdout()}\n${log}`;
}

describe('admin token (server.admin_token)', () => {
  let mock;
  let gw;
  const presented = []; // every wrong token sent: none may appear in any output

  before(async () => {
    mock = await startMock();
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'api', path_prefix: '/', upstream: 'mock', kind: 'http' }],
      workers: 1,
    });
  });
  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  test('the harness gave the gateway a token', () => {
    assert.match(gw.adminToken, /^[0-9a-f]{48}$/);
    assert.ok(fs.readFileSync(gw.configPath, 'utf8').includes('admin_token'));
  });

  test('/metrics and unknown paths: 401 without a token, with the challenge and a JSON error', async () => {
    for (const p of ['/metrics', '/metrics?x=1', '/nope', '/', '/healthz/', '/readyz.json', '/HEALTHZ']) {
      const r = await request(`${gw.adminUrl}${p}`);
      assert401(r, p);
      assert.equal(r.headers['www-authenticate'], CHALLENGE, 'no credentials: the challenge alone');
      assert.match(r.headers['content-type'], /^application\/json/);
      assert.equal(r.json().error.message, 'admin endpoints need Authorization: Bearer <admin token>');
    }
    // Before the method is looked at too: no hint about what exists.
    assert401(await request(`${gw.adminUrl}/metrics`, { method: 'POST', body: 'x' }), 'POST /metrics');
  });

  test('401 with a wrong token of any length, another scheme, or two Authorization headers', async () => {
    const t = gw.adminToken;
    const wrong = [
      'x',
      t.slice(0, -1),
      t.slice(0, -1) + (t.endsWith('0') ? '1' : '0'),
      `${t}x`,
      t + t,
      t.toUpperCase() === t ? `${t}A` : t.toUpperCase(),
      'W'.repeat(1000),
    ];
    for (const w of wrong) {
      presented.push(w);
      const r = await request(`${gw.adminUrl}/metrics`, { headers: bearer(w) });
      assert401(r, `wrong token of ${w.length} bytes`);
      assert.equal(r.headers['www-authenticate'], `${CHALLENGE}, error="invalid_token"`);
      assert.ok(!r.text.includes(w), 'the answer does not echo the token');
    }
    for (const h of [`Basic ${Buffer.from(`admin:${t}`).toString('base64')}`, t, `Bearer${t}`, 'Bearer ', `Token ${t}`]) {
      const r = await request(`${gw.adminUrl}/metrics`, { headers: { authorization: h } });
      assert401(r, `Authorization: ${h.slice(0, 12)}...`);
      assert.equal(r.headers['www-authenticate'], `${CHALLENGE}, error="invalid_request"`);
    }
    // The right token twice is still two headers: refused (which one would count?).
    const two = await raw(
      gw.adminPort,
      `GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t}\r\nAuthorization: Bearer ${t}\r\n\r\n`,
    );
    assert.match(two.data, /^HTTP\/1\.1 401 /);
    // The token in the query string is not a credential.
    assert401(await request(`${gw.adminUrl}/metrics?access_token=${t}`), 'query token');
  });

  test('200 with the token: scheme in any case, one space or more', async () => {
    const t = gw.adminToken;
    for (const h of [`Bearer ${t}`, `bearer ${t}`, `BEARER   ${t}`, `bEaReR ${t}  `]) {
      const r = await request(`${gw.adminUrl}/metrics`, { headers: { authorization: h } });
      assert.equal(r.status, 200, `${h}: ${r.text}`);
      assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
      assert.match(r.text, /^tollgate_requests_inflight \d+$/m);
    }
    // With the token, an unknown path is a 404 again, a POST the usual refusal.
    const n = await request(`${gw.adminUrl}/nope`, { headers: gw.adminHeaders });
    assert.equal(n.status, 404);
    const p = await request(`${gw.adminUrl}/metrics`, { method: 'POST', headers: gw.adminHeaders, body: 'x' });
    assert.equal(p.status, 404);
  });

  test('/healthz and /readyz need no token (and ignore a wrong one)', async () => {
    for (const headers of [{}, bearer('wrong-token-0000000000'), gw.adminHeaders]) {
      const h = await request(`${gw.adminUrl}/healthz`, { headers });
      assert.equal(h.status, 200);
      assert.equal(h.json().status, 'ok');
      const r = await request(`${gw.adminUrl}/readyz?verbose=1`, { headers });
      assert.equal(r.status, 200);
      assert.equal(r.json().ready, true);
    }
  });

  test('refusals are counted on /metrics; the log says so at most once a second', async () => {
    const before = await refusedCount(gw);
    const linesBefore = (gw.stderr().match(/admin: 401 /g) ?? []).length;
    const t0 = performance.now();
    const n = 40;
    for (let i = 0; i < n; i++) {
      const w = `guess-${i}-${'z'.repeat(i)}`;
      presented.push(w);
      assert.equal((await request(`${gw.adminUrl}/metrics`, { headers: bearer(w) })).status, 401);
    }
    const secs = (performance.now() - t0) / 1000;
    assert.equal(await refusedCount(gw), before + n, 'every refusal counted');
    await new Promise((r) => setTimeout(r, 200)); // the lines written meanwhile reach stderr()
    const lines = (gw.stderr().match(/admin: 401 /g) ?? []).length - linesBefore;
    assert.ok(lines <= Math.ceil(secs) + 1, `${lines} log lines for ${n} refusals in ${secs.toFixed(2)} s`);
    // A second later the next refusal is logged again, with the count of all of them.
    await new Promise((r) => setTimeout(r, 1100));
    presented.push('one-more-guess-after-a-second');
    assert.equal((await request(`${gw.adminUrl}/metrics`, { headers: bearer('one-more-guess-after-a-second') })).status, 401);
    // (stderr reaches the test through a pipe: it may come after the answer.)
    const re = /admin: 401 for a wrong admin token from 127\.0\.0\.1 \((\d+) refused since the last such line, (\d+) in all\)/g;
    await waitFor(() => [...gw.stderr().matchAll(re)].some((m) => Number(m[2]) === before + n + 1), {
      message: `a log line counting ${before + n + 1} refusals in all`,
    }).catch((e) => {
      throw new Error(`${e.message}; stderr:\n${gw.stderr()}`);
    });
    assert.equal(await refusedCount(gw), before + n + 1);
  });

  test('a tenant key is not an admin token', async () => {
    const { secret } = await createTenantKey(gw, 'acme');
    presented.push(secret);
    assert401(await request(`${gw.adminUrl}/metrics`, { headers: bearer(secret) }), 'tenant key');
  });

  test('neither the token nor what was presented appears in stderr, stdout or the access log', async () => {
    // Some tenant traffic so the access log is not empty.
    assert.equal((await request(`${gw.url}/x`)).status, 401);
    await waitFor(() => fs.existsSync(gw.accessLog) && fs.readFileSync(gw.accessLog, 'utf8').length > 0, {
      message: 'the access log has a line',
    });
    const out = gatewayOutput(gw);
    assert.ok(out.includes('admin: 401'), 'the refusals were logged');
    assert.ok(!out.includes(gw.adminToken), 'the admin token is in the output');
    // (Those long enough not to occur by chance: 'x' is in any log.)
    const checked = presented.filter((w) => w.length >= 8);
    assert.ok(checked.length > 40);
    for (const w of checked) assert.ok(!out.includes(w), `a presented token (${w.length} bytes) is in the output`);
  });
});

describe('admin token from ${ENV}', () => {
  let gw;
  const token = `env-token-${randomBytes(8).toString('hex')}-0123456789`;
  before(async () => {
    gw = await startGateway({
      adminToken: null,
      extra: { server: { admin_token: '${TG_E2E_ADMIN_TOKEN}' } },
      env: { TG_E2E_ADMIN_TOKEN: token },
      workers: 1,
    });
  });
  after(async () => gw?.stop());

  test('the expanded value is the token', async () => {
    assert.ok(!fs.readFileSync(gw.configPath, 'utf8').includes(token));
    assert.equal((await request(`${gw.adminUrl}/metrics`, { headers: bearer(token) })).status, 200);
    assert401(await request(`${gw.adminUrl}/metrics`, { headers: bearer('${TG_E2E_ADMIN_TOKEN}') }), 'the reference itself');
    assert.ok(!gatewayOutput(gw).includes(token));
  });
});

describe('admin token from a file, changed on SIGHUP', () => {
  let gw;
  before(async () => {
    gw = await startGateway({ adminTokenFile: true, workers: 1 });
  });
  after(async () => gw?.stop());

  const status = async (token) => (await request(`${gw.adminUrl}/metrics`, { headers: bearer(token) })).status;

  test('the first line of the file is the token', async () => {
    assert.ok(gw.adminTokenFile);
    assert.ok(fs.readFileSync(gw.configPath, 'utf8').includes('admin_token_file'));
    assert.ok(!fs.readFileSync(gw.configPath, 'utf8').includes(gw.adminToken));
    assert.equal(await status(gw.adminToken), 200);
    assert.equal(await status(`${gw.adminToken}x`), 401);
  });

  test('a new token in the file takes effect on SIGHUP; the old one is refused', async () => {
    const old = gw.adminToken;
    const next = `rotated-${randomBytes(8).toString('hex')}-abcdef0123456789`;
    // Whitespace around the first line and a second line are not the token's.
    await fs.promises.writeFile(gw.adminTokenFile, `  ${next} \r\n# a comment line\n`);
    assert.equal(await status(old), 200, 'nothing changes before the signal');
    process.kill(gw.proc.pid, 'SIGHUP');
    await waitFor(async () => (await status(next)) === 200, { message: 'the new token accepted after SIGHUP' });
    assert.equal(await status(old), 401, 'the old token refused after the reload');
    await waitFor(() => /reload: the admin token changed/.test(gw.stderr()), { message: 'the reload is logged' });

    // A reload whose file holds no usable token is refused: the running token stays.
    await fs.promises.writeFile(gw.adminTokenFile, 'short\n');
    process.kill(gw.proc.pid, 'SIGHUP');
    await waitFor(() => /reload refused, keeping the running config: .*server\.admin_token_file: the token in .*: too short/.test(gw.stderr()), {
      message: 'the refused reload is logged',
    });
    assert.equal(await status(next), 200);
    assert.equal(await status('short'), 401);

    // An unreadable file likewise names the key.
    await fs.promises.rm(gw.adminTokenFile);
    process.kill(gw.proc.pid, 'SIGHUP');
    await waitFor(() => /server\.admin_token_file: cannot open .*admin-token: No such file/.test(gw.stderr()), {
      message: 'the missing file is named',
    });
    assert.equal(await status(next), 200);
    const out = gatewayOutput(gw);
    for (const t of [old, next]) assert.ok(!out.includes(t), 'a token is in the output');
  });
});

describe('admin token in the config, changed on SIGHUP', () => {
  let gw;
  before(async () => {
    gw = await startGateway({ workers: 1 });
  });
  after(async () => gw?.stop());

  test('the old token is refused after the reload, the new one accepted', async () => {
    const old = gw.adminToken;
    const next = `changed-${randomBytes(8).toString('hex')}-0123456789abcdef`;
    const cfg = fs.readFileSync(gw.configPath, 'utf8');
    assert.ok(cfg.includes(old));
    await fs.promises.writeFile(gw.configPath, cfg.replace(old, next));
    process.kill(gw.proc.pid, 'SIGHUP');
    const st = async (t) => (await request(`${gw.adminUrl}/metrics`, { headers: bearer(t) })).status;
    await waitFor(async () => (await st(next)) === 200, { message: 'the new token accepted' });
    assert.equal(await st(old), 401);
    // Removing the token refuses everything but the probes (and says so).
    await fs.promises.writeFile(gw.configPath, cfg.replace(/, "?admin_token"?: "[^"]*"/, ''));
    assert.ok(!fs.readFileSync(gw.configPath, 'utf8').includes('admin_token'));
    process.kill(gw.proc.pid, 'SIGHUP');
    await waitFor(async () => (await st(next)) === 401, { message: 'no token after the reload' });
    await waitFor(() => /neither server\.admin_token nor server\.admin_token_file is set/.test(gw.stderr()), {
      message: 'the reload without a token is logged',
    });
    assert.equal((await request(`${gw.adminUrl}/healthz`)).status, 200);
  });
});

describe('no admin token configured', () => {
  let gw;
  before(async () => {
    gw = await startGateway({ adminToken: null, workers: 1 });
  });
  after(async () => gw?.stop());

  test('every path but the probes is 401, and the start-up log says why, once', async () => {
    assert.deepEqual(gw.adminHeaders, {});
    assert.ok(!fs.readFileSync(gw.configPath, 'utf8').includes('admin_token'));
    for (const headers of [{}, bearer('anything-at-all-0123456789'), { authorization: 'Bearer ' }]) {
      const r = await request(`${gw.adminUrl}/metrics`, { headers });
      assert401(r, '/metrics without a configured token');
      assert.equal(r.json().error.message, 'no admin token is configured (server.admin_token)');
    }
    assert.equal((await request(`${gw.adminUrl}/healthz`)).status, 200);
    assert.equal((await request(`${gw.adminUrl}/readyz`)).status, 200);
    await waitFor(() => /neither server\.admin_token/.test(gw.stderr()), { message: 'the warning' });
    const warned = gw.stderr().match(/neither server\.admin_token nor server\.admin_token_file is set: 127\.0\.0\.1:\d+ answers 401 on every path but \/healthz and \/readyz/g);
    assert.equal(warned?.length, 1, gw.stderr());
  });
});

describe('admin token config errors', () => {
  let dir;
  before(async () => {
    dir = await tempDir('tollgate-admintoken-');
  });

  async function tollgate(yaml, args = ['tenant', 'list'], env = {}) {
    const cfg = path.join(dir, 'tollgate.yaml');
    await fs.promises.writeFile(cfg, `store: sqlite:${path.join(dir, 't.db')}\n${yaml}`);
    return run(bin, ['-c', cfg, ...args], { cwd: dir, env });
  }

  test('too short, both keys, unreadable file: exit 2, FILE:LINE: key: problem, no value', async () => {
    const short = 'sh0rt-t0ken-15c';
    let r = await tollgate(`server:\n  admin_token: ${short}\n`);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /tollgate\.yaml:3: server\.admin_token: too short \(15 bytes; at least 16/);
    assert.ok(!r.stderr.includes(short));
    r = await tollgate(`server:\n  admin_token: ${short}\n`, ['serve']);
    assert.equal(r.code, 2, 'serve refuses to start');
    assert.ok(!r.stderr.includes(short));

    r = await tollgate('server:\n  admin_token: 0123456789abcdef0\n  admin_token_file: ./tok\n');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /tollgate\.yaml:4: server\.admin_token_file: give server\.admin_token or server\.admin_token_file, not both/);
    assert.ok(!r.stderr.includes('0123456789abcdef0'));

    r = await tollgate('server:\n  admin_token_file: ./no-such-token\n');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /tollgate\.yaml:3: server\.admin_token_file: cannot open \.\/no-such-token: No such file or directory/);

    const secretish = 'a b c d e f g h i j';
    await fs.promises.writeFile(path.join(dir, 'tok'), `${secretish}\n`);
    r = await tollgate('server:\n  admin_token_file: ./tok\n');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /server\.admin_token_file: the token in \.\/tok: must be visible ASCII/);
    assert.ok(!r.stderr.includes(secretish));

    r = await tollgate('server:\n  admin_token: ${TG_E2E_UNSET_ADMIN}\n');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /server\.admin_token: environment variable TG_E2E_UNSET_ADMIN is not set/);
  });
});
