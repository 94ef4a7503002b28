// The gateway core end to end: the real build/tollgate in front of the project's mock
// upstream, driven with curl, node:http and raw sockets. Each test reads the store and
// the access log to check that every request became exactly one usage event.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';

import {
  createTenantKey as createTenantKeyNow,
  curl,
  curlJson,
  refusedPort,
  raw,
  request,
  sha256,
  sqlite,
  startGateway,
  startMock,
  waitFor,
} from './lib/harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A new tenant and key, once the running gateway has picked them up (the contract is
 * "within 1 second"; the keyring polls every 250 ms). */
async function createTenantKey(gw, id) {
  const k = await createTenantKeyNow(gw, id);
  await sleep(600);
  return k;
}

async function events(gw, where = '1=1') {
  return waitFor(async () => sqlite(gw.dbPath, `select * from usage_events where ${where} order by id`), {
    message: 'events',
  });
}

/** Waits until the store holds n events matching where, then returns them. */
async function eventsN(gw, n, where = '1=1') {
  let rows = [];
  await waitFor(
    async () => {
      rows = await sqlite(gw.dbPath, `select * from usage_events where ${where} order by id`);
      return rows.length >= n;
    },
    { timeoutMs: 5000, message: `${n} events where ${where}` },
  );
  return rows;
}

// Both upstream clients: the native HTTP/1.1 one (address targets) and libcurl
// (forced with TOLLGATE_NO_NATIVE_HTTP=1, as for https:// and host-name targets).
for (const client of ['native', 'libcurl']) {
const clientEnv = client === 'libcurl' ? { TOLLGATE_NO_NATIVE_HTTP: '1' } : {};

describe(`proxying (${client} upstream client)`, () => {
  let mock, mock2, gw, key;
  before(async () => {
    mock = await startMock({ threads: 2 });
    mock2 = await startMock();
    gw = await startGateway({
      upstreams: [
        { name: 'mock', targets: [mock.url], headers: { 'X-Upstream-Token': '${UPSTREAM_TOKEN}' } },
        { name: 'pair', targets: [mock.url, mock2.url] },
      ],
      routes: [
        { name: 'pair', path_prefix: '/pair/', upstream: 'pair', kind: 'http' },
        { name: 'api', path_prefix: '/', upstream: 'mock', kind: 'http' },
      ],
      env: { UPSTREAM_TOKEN: 'upstream-secret-123', ...clientEnv },
    });
    key = await createTenantKey(gw, 'acme');
  });
  after(async () => {
    await gw?.stop();
    await mock?.stop();
    await mock2?.stop();
  });

  test('forwards with the tenant credential removed and tollgate headers added', async () => {
    const r = await curlJson(`${gw.url}/v1/thing?echo=1&x=1`, {
      headers: {
        Authorization: `Bearer ${key.secret}`,
        'X-Tollgate-Tenant': 'spoofed',
        'X-Upstream-Token': 'client-value',
        'X-Custom': 'kept',
      },
    });
    assert.equal(r.status, 200);
    const h = r.body.headers;
    assert.equal(r.body.path, '/v1/thing?echo=1&x=1');
    assert.equal(h.authorization, undefined, 'tenant credential must not reach the upstream');
    assert.equal(h['x-tollgate-tenant'], 'acme');
    assert.equal(h['x-upstream-token'], 'upstream-secret-123', 'config header, ${ENV} expanded, wins');
    assert.equal(h['x-custom'], 'kept');
    assert.match(h['x-request-id'], /^[0-9a-f]{16}$/);
    assert.equal(r.headers['x-request-id'], h['x-request-id']);
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    const [ev] = await eventsN(gw, 1, `request_id='${h['x-request-id']}'`);
    assert.equal(ev.tenant, 'acme');
    assert.equal(ev.key_id, key.keyId);
    assert.equal(ev.status, 200);
    assert.equal(ev.outcome, 'billable');
    assert.equal(ev.route, 'api');
    assert.equal(ev.method, 'GET');
    assert.equal(ev.bytes_out, Buffer.byteLength(r.text));
  });

  test('x-api-key works, and a client x-request-id is kept', async () => {
    const r = await curlJson(`${gw.url}/k?echo=1`, {
      headers: { 'x-api-key': key.secret, 'x-request-id': 'client-rid-42' },
    });
    assert.equal(r.status, 200);
    assert.equal(r.body.headers['x-api-key'], undefined);
    assert.equal(r.body.headers['x-request-id'], 'client-rid-42');
    assert.equal(r.headers['x-request-id'], 'client-rid-42');
    await eventsN(gw, 1, "request_id='client-rid-42'");
  });

  test('request bodies stream through intact (1 MiB with length, and chunked)', async () => {
    const body = Buffer.alloc(1 << 20);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7919) & 0xff;
    const auth = { Authorization: `Bearer ${key.secret}` };
    const a = await request(`${gw.url}/up?echo=1`, { method: 'POST', headers: auth, body });
    assert.equal(a.status, 200);
    assert.equal(a.json().body_bytes, body.length);
    assert.equal(a.json().body_sha256, sha256(body));
    assert.equal(a.json().headers['content-length'], String(body.length));
    const pieces = [body.subarray(0, 1000), body.subarray(1000, 500000), body.subarray(500000)];
    const b = await request(`${gw.url}/up?echo=1`, { method: 'PUT', headers: auth, body: pieces });
    assert.equal(b.status, 200);
    assert.equal(b.json().method, 'PUT');
    assert.equal(b.json().body_sha256, sha256(body));
    const rid = b.headers['x-request-id'];
    const [ev] = await eventsN(gw, 1, `request_id='${rid}'`);
    assert.equal(ev.bytes_in, body.length);
  });

  test('Expect: 100-continue is answered so the client sends its body', async () => {
    const sock = net.connect(gw.port, '127.0.0.1');
    await new Promise((r) => sock.on('connect', r));
    let got = '';
    sock.on('data', (d) => (got += d));
    sock.write(
      `POST /up?echo=1 HTTP/1.1\r\nHost: x\r\nx-api-key: ${key.secret}\r\n` +
        'Content-Length: 5\r\nExpect: 100-continue\r\n\r\n',
    );
    await waitFor(() => got.startsWith('HTTP/1.1 100 Continue\r\n\r\n'), { message: '100 Continue' });
    sock.write('hello');
    await waitFor(() => /"body_bytes":5/.test(got), { message: 'final response' });
    assert.match(got, /HTTP\/1\.1 200 OK/);
    assert.doesNotMatch(got, /"expect"/, 'the Expect header is not forwarded');
    sock.destroy();
  });

  test('SSE and chunked responses reach the client chunk by chunk', async () => {
    const auth = { Authorization: `Bearer ${key.secret}` };
    const r = await request(`${gw.url}/stream?sse=5&interval_ms=200`, { headers: auth });
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /text\/event-stream/);
    assert.equal((r.text.match(/^data: /gm) || []).length, 6);
    assert.ok(r.chunks.length >= 5, `expected separate chunks, got ${r.chunks.length}`);
    // The first event arrives long before the stream ends: nothing is held back.
    assert.ok(r.chunks[0].at < r.ms - 600, `first chunk at ${r.chunks[0].at} ms, end at ${r.ms} ms`);
    const c = await request(`${gw.url}/c?chunked=4&size=4000&chunk_delay_ms=150`, { headers: auth });
    assert.equal(c.status, 200);
    assert.equal(c.body.length, 4000);
    assert.ok(c.chunks[0].at < c.ms - 300, `first chunk at ${c.chunks[0].at} ms, end at ${c.ms} ms`);
  });

  test('keep-alive and pipelining on one connection', async () => {
    const req = (p) =>
      `GET ${p} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key.secret}\r\n\r\n`;
    const r = await raw(gw.port, req('/p1?size=10') + req('/p2?status=201') + req('/p3?size=3'), {
      timeoutMs: 1500,
    });
    const statuses = [...r.data.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    assert.deepEqual(statuses, [200, 201, 200]);
    // curl reuses one connection for three URLs: 1 connect, then 0, 0.
    const t = await curl(['-s', '-o', '/dev/null', '-o', '/dev/null', '-o', '/dev/null', '-w', '%{http_code} %{num_connects}\\n',
      '-H', `Authorization: Bearer ${key.secret}`, `${gw.url}/a`, `${gw.url}/b`, `${gw.url}/c`]);
    assert.deepEqual(t.stdout.trim().split('\n'), ['200 1', '200 0', '200 0']);
  });

  test('round-robin over targets, and a dead target is skipped', async () => {
    const auth = { Authorization: `Bearer ${key.secret}` };
    const seen = new Set();
    for (let i = 0; i < 6; i++) {
      const r = await request(`${gw.url}/pair/x?echo=1`, { headers: auth });
      assert.equal(r.status, 200);
      seen.add(r.json().headers.host);
    }
    assert.equal(seen.size, 2, 'both targets got requests');
  });

  test('access log has one JSON line per request', async () => {
    const r = await curlJson(`${gw.url}/logged?size=5`, {
      headers: { Authorization: `Bearer ${key.secret}`, 'x-request-id': 'log-me-1' },
    });
    assert.equal(r.status, 200);
    let line;
    await waitFor(() => {
      const lines = fs.readFileSync(gw.accessLog, 'utf8').trim().split('\n');
      line = lines.map((l) => JSON.parse(l)).find((o) => o.request_id === 'log-me-1');
      return !!line;
    });
    assert.equal(line.tenant, 'acme');
    assert.equal(line.key_id, key.keyId);
    assert.equal(line.method, 'GET');
    assert.equal(line.path, '/logged?size=5');
    assert.equal(line.status, 200);
    assert.equal(line.outcome, 'billable');
    assert.equal(line.bytes_out, 5);
    assert.equal(line.upstream, mock.url);
    assert.equal(typeof line.latency_ms, 'number');
    assert.match(line.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(!fs.readFileSync(gw.accessLog, 'utf8').includes(key.secret), 'secret never logged');
  });

  test('admin /healthz and /readyz', async () => {
    const h = await curlJson(`${gw.adminUrl}/healthz`);
    assert.equal(h.status, 200);
    assert.equal(h.body.status, 'ok');
    const r = await curlJson(`${gw.adminUrl}/readyz`);
    assert.equal(r.status, 200);
    assert.equal(r.body.ready, true);
    assert.equal(r.body.store.status, 'ok');
    assert.equal(r.body.upstreams.mock.healthy_targets, 1);
    assert.equal(r.body.upstreams.pair.targets, 2);
    assert.equal(r.body.inflight, 0, 'no request in flight while /readyz answers');
    const n = await curlJson(`${gw.adminUrl}/nope`, { headers: gw.adminHeaders });
    assert.equal(n.status, 404);
  });
});

describe(`bad input (${client} upstream client)`, () => {
  let mock, gw, key, deadPort;
  before(async () => {
    mock = await startMock();
    deadPort = refusedPort; // nothing listens here
    gw = await startGateway({
      upstreams: [
        { name: 'mock', targets: [mock.url], timeout: '700ms' },
        { name: 'dead', targets: [`http://127.0.0.1:${deadPort}`], connect_timeout: '1s', max_fails: 2 },
      ],
      routes: [
        { name: 'dead', path_prefix: '/dead/', upstream: 'dead', kind: 'http' },
        { name: 'api', path_prefix: '/api/', upstream: 'mock', kind: 'http' },
      ],
      extra: { server: { max_body: '1k', max_header_bytes: '4k' } },
      env: clientEnv,
    });
    key = await createTenantKey(gw, 'acme');
  });
  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });
  const auth = () => ({ Authorization: `Bearer ${key.secret}` });

  async function expectError(r, status, type) {
    assert.equal(r.status, status, r.text);
    assert.equal(r.body.error.type, type);
    assert.equal(typeof r.body.error.message, 'string');
    const rid = r.headers['x-request-id'];
    assert.ok(rid, 'errors carry x-request-id');
    const [ev] = await eventsN(gw, 1, `request_id='${rid}'`);
    assert.equal(ev.status, status);
    assert.notEqual(ev.outcome, 'billable');
    return ev;
  }

  test('missing, unknown and revoked keys get 401', async () => {
    let ev = await expectError(await curlJson(`${gw.url}/api/x`), 401, 'unauthorized');
    assert.equal(ev.outcome, 'rejected');
    assert.equal(ev.reason, 'missing_key');
    ev = await expectError(
      await curlJson(`${gw.url}/api/x`, { headers: { Authorization: 'Bearer tg_nope' } }),
      401,
      'unauthorized',
    );
    assert.equal(ev.reason, 'unknown_key');
    const k2 = await gw.cli(['key', 'create', '--tenant', 'acme']);
    const secret = /secret:\s*(\S+)/.exec(k2.stdout)[1];
    const id = /key_id:\s*(\S+)/.exec(k2.stdout)[1];
    await waitFor(async () => (await curlJson(`${gw.url}/api/x`, { headers: { 'x-api-key': secret } })).status === 200);
    const rv = await gw.cli(['key', 'revoke', id]);
    assert.equal(rv.code, 0, rv.stderr);
    const t0 = Date.now();
    await waitFor(
      async () => (await curlJson(`${gw.url}/api/x`, { headers: { 'x-api-key': secret } })).status === 401,
      { timeoutMs: 1000, intervalMs: 50, message: 'revoked key refused within 1 s' },
    );
    assert.ok(Date.now() - t0 <= 1000);
    ev = await expectError(
      await curlJson(`${gw.url}/api/x`, { headers: { 'x-api-key': secret } }),
      401,
      'unauthorized',
    );
    assert.equal(ev.reason, 'revoked_key');
    assert.equal(ev.key_id, id);
  });

  test('a disabled tenant is refused within 1 s, and enabled again', async () => {
    const k = await createTenantKey(gw, 'globex');
    const h = { Authorization: `Bearer ${k.secret}` };
    await waitFor(async () => (await curlJson(`${gw.url}/api/x`, { headers: h })).status === 200);
    assert.equal((await gw.cli(['tenant', 'disable', 'globex'])).code, 0);
    await waitFor(async () => (await curlJson(`${gw.url}/api/x`, { headers: h })).status === 401, {
      timeoutMs: 1000,
      message: 'disabled tenant refused within 1 s',
    });
    const ev = await expectError(await curlJson(`${gw.url}/api/x`, { headers: h }), 401, 'unauthorized');
    assert.equal(ev.reason, 'tenant_disabled');
    assert.equal((await gw.cli(['tenant', 'enable', 'globex'])).code, 0);
    await waitFor(async () => (await curlJson(`${gw.url}/api/x`, { headers: h })).status === 200, {
      timeoutMs: 1000,
    });
  });

  test('no route is 404', async () => {
    const ev = await expectError(await curlJson(`${gw.url}/other`, { headers: auth() }), 404, 'not_found');
    assert.equal(ev.reason, 'no_route');
    assert.equal(ev.tenant, 'acme');
  });

  test('body over server.max_body is 413, by length and while streaming chunked', async () => {
    let ev = await expectError(
      await curlJson(`${gw.url}/api/x`, { headers: auth(), data: 'x'.repeat(2000) }),
      413,
      'payload_too_large',
    );
    assert.equal(ev.reason, 'body_too_large');
    const r = await request(`${gw.url}/api/x?echo=1`, {
      method: 'POST',
      headers: auth(),
      body: [Buffer.alloc(600, 97), Buffer.alloc(600, 98)],
    });
    assert.equal(r.status, 413);
    const ok = await curlJson(`${gw.url}/api/x?echo=1`, { headers: auth(), data: 'x'.repeat(1000) });
    assert.equal(ok.status, 200, 'a body at the limit passes');
  });

  test('header block over the limit is 431', async () => {
    const big = 'v'.repeat(5000);
    const r = await curlJson(`${gw.url}/api/x`, { headers: { ...auth(), 'X-Big': big } });
    assert.equal(r.status, 431);
    assert.equal(r.body.error.type, 'headers_too_large');
    const rows = await eventsN(gw, 1, "reason='headers_too_large'");
    assert.equal(rows[0].status, 431);
  });

  test('malformed requests get 400 and the server keeps serving', async () => {
    for (const bad of [
      'GARBAGE\r\n\r\n',
      'GET / HTTP/9.9\r\n\r\n',
      'GET / HTTP/1.1\r\nBad Header Line\r\n\r\n',
      'POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
      // Past authentication, the body itself is broken.
      `POST /api/x HTTP/1.1\r\nHost: x\r\nx-api-key: ${key.secret}\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n`,
    ]) {
      const r = await raw(gw.port, bad, { timeoutMs: 3000 });
      assert.match(r.data, /^HTTP\/1\.1 400 /, `for ${JSON.stringify(bad)}: ${r.data}`);
      assert.match(r.data, /"type":"invalid_request"/);
      assert.ok(r.closed, 'connection closed after a malformed request');
    }
    const rows = await eventsN(gw, 5, "reason='malformed_request'");
    assert.ok(rows.every((e) => e.status === 400 && e.outcome === 'rejected'));
    assert.equal((await curlJson(`${gw.url}/api/x`, { headers: auth() })).status, 200);
  });

  test('upstream refusing connections is 502, too slow is 504', async () => {
    let ev = await expectError(await curlJson(`${gw.url}/dead/x`, { headers: auth() }), 502, 'bad_gateway');
    assert.equal(ev.outcome, 'failed');
    assert.equal(ev.reason, 'upstream_unreachable');
    await curlJson(`${gw.url}/dead/x`, { headers: auth() });
    const ready = await curlJson(`${gw.adminUrl}/readyz`);
    assert.equal(ready.status, 503, 'an upstream with no healthy target makes the gateway unready');
    assert.equal(ready.body.upstreams.dead.healthy_targets, 0);
    ev = await expectError(
      await curlJson(`${gw.url}/api/slow?delay_ms=3000`, { headers: auth() }),
      504,
      'gateway_timeout',
    );
    assert.equal(ev.reason, 'upstream_timeout');
    assert.equal((await curlJson(`${gw.url}/api/x`, { headers: auth() })).status, 200);
  });

  test('upstream non-2xx is forwarded and recorded as failed, not billable', async () => {
    const r = await curlJson(`${gw.url}/api/x?status=503`, { headers: auth() });
    assert.equal(r.status, 503);
    const [ev] = await eventsN(gw, 1, `request_id='${r.headers['x-request-id']}'`);
    assert.equal(ev.outcome, 'failed');
    const daily = await sqlite(gw.dbPath, "select sum(billable) b, sum(requests) n from usage_daily where tenant_id='acme'");
    const all = await sqlite(gw.dbPath, "select count(*) n, sum(CASE WHEN outcome = 'billable' THEN 1 ELSE 0 END) b from usage_events where tenant='acme'");
    await waitFor(async () => {
      const d = await sqlite(gw.dbPath, "select sum(requests) n from usage_daily where tenant_id='acme'");
      const e = await sqlite(gw.dbPath, "select count(*) n from usage_events where tenant='acme'");
      return d[0].n === e[0].n;
    });
    assert.ok(daily[0].n >= 1 && all[0].n >= 1);
  });

  test('a client that disconnects mid-request is recorded and its slot freed', async () => {
    const sock = net.connect(gw.port, '127.0.0.1');
    await new Promise((r) => sock.on('connect', r));
    sock.write(`GET /api/hang?delay_ms=2000&x=gone HTTP/1.1\r\nHost: x\r\nx-api-key: ${key.secret}\r\nx-request-id: gone-1\r\n\r\n`);
    await sleep(200);
    sock.destroy();
    const [ev] = await eventsN(gw, 1, "request_id='gone-1'");
    assert.equal(ev.status, 499);
    assert.equal(ev.reason, 'client_closed');
    assert.equal(ev.outcome, 'failed');
  });
});

}

describe('config', () => {
  test('a config error exits 2 naming file, line and key', async () => {
    const mock = await startMock();
    const gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [{ name: 'api', path_prefix: '/', upstream: 'mock', kind: 'http' }],
    });
    await gw.stop();
    const bad = fs.readFileSync(gw.configPath, 'utf8').replace('upstream: "mock"', 'upstream: "opanai"');
    fs.writeFileSync(gw.configPath, bad);
    const r = await gw.cli(['serve']);
    assert.equal(r.code, 2);
    const line = r.stderr.trim().split('\n');
    assert.equal(line.length, 1, r.stderr);
    assert.match(r.stderr, /tollgate\.yaml:\d+: routes\[0\]\.upstream: .*opanai/);
    await mock.stop();
  });

  test('SIGHUP reloads routes without dropping connections; a bad config is refused', async () => {
    const a = await startMock();
    const b = await startMock();
    const gw = await startGateway({
      upstreams: [
        { name: 'a', targets: [a.url] },
        { name: 'b', targets: [b.url] },
      ],
      routes: [{ name: 'api', path_prefix: '/', upstream: 'a', kind: 'http' }],
    });
    const k = await createTenantKey(gw, 'acme');
    const h = { Authorization: `Bearer ${k.secret}` };
    const host = async () => (await request(`${gw.url}/x?echo=1`, { headers: h })).json().headers.host;
    assert.equal(await host(), a.url.replace('http://', ''));
    // A stream that spans the reload must complete.
    const streaming = request(`${gw.url}/s?sse=6&interval_ms=150`, { headers: h });
    await sleep(150);
    fs.writeFileSync(gw.configPath, fs.readFileSync(gw.configPath, 'utf8').replace('upstream: "a"', 'upstream: "b"'));
    gw.proc.kill('SIGHUP');
    await waitFor(async () => (await host()) === b.url.replace('http://', ''), { message: 'route switched to b' });
    const s = await streaming;
    assert.equal(s.status, 200);
    assert.equal((s.text.match(/^data: /gm) || []).length, 7);
    // A broken config is refused; the running one stays.
    fs.writeFileSync(gw.configPath, fs.readFileSync(gw.configPath, 'utf8') + '\nbogus_key: 1\n');
    gw.proc.kill('SIGHUP');
    await waitFor(() => /reload refused/.test(gw.stderr()), { message: 'reload refused log line' });
    assert.match(gw.stderr(), /tollgate\.yaml:\d+: bogus_key/);
    assert.equal(await host(), b.url.replace('http://', ''));
    const st = await gw.stop();
    assert.equal(st.code, 0);
    await a.stop();
    await b.stop();
  });
});

// Regressions from the review of the request path (each failed before its fix).
describe('request-path edge cases', () => {
  let mock, raw304, gw, key;
  before(async () => {
    mock = await startMock();
    // A raw upstream: a 304 that carries Content-Length (allowed, no body follows), then 200.
    raw304 = net.createServer((s) => {
      let buf = '';
      s.on('data', (d) => {
        buf += d;
        while (buf.includes('\r\n\r\n')) {
          const head = buf.slice(0, buf.indexOf('\r\n\r\n'));
          buf = buf.slice(buf.indexOf('\r\n\r\n') + 4);
          s.write(
            head.startsWith('GET /nm/bare')
              ? 'HTTP/1.1 204 No Content\r\n\r\n' // not one header line
              : head.startsWith('GET /nm/zero')
                ? 'HTTP/1.1 0 OK\r\nContent-Length: 2\r\n\r\nok' // not a status
                : head.startsWith('GET /nm')
                ? 'HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: "x"\r\n\r\n'
                : 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
          );
        }
      });
      s.on('error', () => {});
    });
    await new Promise((r) => raw304.listen(0, '127.0.0.1', r));
    gw = await startGateway({
      upstreams: [
        { name: 'mock', targets: [mock.url], idle_timeout: '1s', max_fails: 1 },
        { name: 'raw', targets: [`http://127.0.0.1:${raw304.address().port}`] },
      ],
      routes: [
        { name: 'raw', path_prefix: '/nm', upstream: 'raw', kind: 'http' },
        { name: 'raw2', path_prefix: '/after', upstream: 'raw', kind: 'http' },
        { name: 'api', path_prefix: '/', upstream: 'mock', kind: 'http' },
      ],
    });
    key = await createTenantKey(gw, 'acme');
  });
  after(async () => {
    await gw?.stop();
    await mock?.stop();
    raw304?.close();
  });

  // Found by fuzz_upstream: a head without a single header line made conn.c copy from a
  // NULL buffer (undefined behaviour; the ASan/UBSan build, make e2e-asan, aborted).
  test('an upstream answer without any header line is relayed', async () => {
    const r = await raw(
      gw.port,
      `GET /nm/bare HTTP/1.1\r\nHost: x\r\nx-api-key: ${key.secret}\r\n\r\n` +
        `GET /after HTTP/1.1\r\nHost: x\r\nx-api-key: ${key.secret}\r\n\r\n`,
      { timeoutMs: 1500 },
    );
    assert.match(r.data, /^HTTP\/1\.1 204 /, r.data);
    assert.match(r.data, /HTTP\/1\.1 200 OK[\s\S]*\r\n\r\nok$/, r.data);
  });

  // Found by fuzz_upstream: status 0 was relayed with its Content-Length but no body (under
  // 200 counts as bodiless), so the client read the next answer as this one's body.
  test('an upstream status outside 100-599 is a 502; the next answer stays in sync', async () => {
    const r = await raw(
      gw.port,
      `GET /nm/zero HTTP/1.1\r\nHost: x\r\nx-api-key: ${key.secret}\r\n\r\n` +
        `GET /after HTTP/1.1\r\nHost: x\r\nx-api-key: ${key.secret}\r\n\r\n`,
      { timeoutMs: 1500 },
    );
    assert.match(r.data, /^HTTP\/1\.1 502 /, r.data);
    assert.match(r.data, /"the upstream's response status is invalid"/, r.data);
    assert.match(r.data, /HTTP\/1\.1 200 OK[\s\S]*\r\n\r\nok$/, r.data);
  });

  test('pipelined requests answered by tollgate itself are all answered', async () => {
    const r = await raw(gw.port, 'GET /a HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(3), { timeoutMs: 1500 });
    assert.equal((r.data.match(/HTTP\/1\.1 401 /g) || []).length, 3, r.data);
  });

  test('pipelined POSTs with bodies both reach the upstream', async () => {
    const one = (i) =>
      `POST /p?echo=1&i=${i} HTTP/1.1\r\nHost: x\r\nx-api-key: ${key.secret}\r\nContent-Length: 5\r\n\r\nhello`;
    const r = await raw(gw.port, one(1) + one(2), { timeoutMs: 1500 });
    assert.equal((r.data.match(/HTTP\/1\.1 200 /g) || []).length, 2, r.data);
    assert.equal((r.data.match(/"body_bytes":5/g) || []).length, 2);
  });

  test('an error to a HEAD request has no body; keep-alive stays in sync', async () => {
    const r = await raw(gw.port, 'HEAD /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\n', {
      timeoutMs: 1000,
    });
    assert.equal((r.data.match(/HTTP\/1\.1 401 /g) || []).length, 2, r.data);
    assert.ok(!r.data.includes('"error"'), 'no body after a HEAD response head');
  });

  test('Upgrade is ignored (served, then closed); CONNECT is refused', async () => {
    const up = await raw(
      gw.port,
      `GET /u HTTP/1.1\r\nHost: x\r\nx-api-key: ${key.secret}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n`,
      { timeoutMs: 3000 },
    );
    assert.match(up.data, /^HTTP\/1\.1 200 /);
    assert.match(up.data, /Connection: close/);
    assert.ok(up.closed, 'closed after the response');
    const c = await raw(gw.port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', {
      timeoutMs: 3000,
    });
    assert.match(c.data, /^HTTP\/1\.1 400 /);
    assert.match(c.data, /CONNECT is not supported/);
  });

  test('a Transfer-Encoding other than chunked is refused before the upstream', async () => {
    const r = await raw(
      gw.port,
      `POST /te?echo=1 HTTP/1.1\r\nHost: x\r\nx-api-key: ${key.secret}\r\nTransfer-Encoding: gzip\r\n\r\n`,
      { timeoutMs: 3000 },
    );
    assert.match(r.data, /^HTTP\/1\.1 400 /);
    assert.match(r.data, /Transfer-Encoding/);
  });

  test('a 304 with Content-Length does not stall the connection', async () => {
    const r = await raw(
      gw.port,
      `GET /nm HTTP/1.1\r\nHost: x\r\nx-api-key: ${key.secret}\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\nx-api-key: ${key.secret}\r\n\r\n`,
      { timeoutMs: 2500 },
    );
    assert.match(r.data, /^HTTP\/1\.1 304 /);
    assert.match(r.data, /HTTP\/1\.1 200 OK[\s\S]*\r\n\r\nok$/, r.data);
  });

  test('a client that stalls its body gets 408 and the upstream is not blamed', async () => {
    const sock = net.connect(gw.port, '127.0.0.1');
    await new Promise((r) => sock.on('connect', r));
    let got = '';
    sock.on('data', (d) => (got += d));
    sock.on('error', () => {});
    sock.write(`POST /slowbody?echo=1 HTTP/1.1\r\nHost: x\r\nx-api-key: ${key.secret}\r\nContent-Length: 100\r\n\r\nabc`);
    await waitFor(() => got.length > 0, { timeoutMs: 5000, message: 'an answer' });
    assert.match(got, /^HTTP\/1\.1 408 /);
    sock.destroy();
    const ready = await curlJson(`${gw.adminUrl}/readyz`);
    assert.equal(ready.body.upstreams.mock.healthy_targets, 1, 'max_fails 1, yet the target is healthy');
  });
});
