// https:// upstreams: node https servers with certificates made here by the openssl CLI,
// trusted through the upstream's ca_file; without it, verification fails. The native client
// (src/gateway/h1.c on OpenSSL) takes them; TOLLGATE_NO_NATIVE_HTTP=1 in the environment runs
// the same tests through libcurl. Hostile TLS upstreams (node:tls and node:net servers
// written here) cut answers without close_notify, stall in the handshake, or speak no TLS.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dns from 'node:dns/promises';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';

import {
  createTenantKey, curlJson, request, run, sqlite, startGateway, tempDir, waitFor,
} from './lib/harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A self-signed certificate for the given subjectAltName, as { certPath, keyPath, key, cert }.
async function makeCert(dir, name, cn, san) {
  const certPath = path.join(dir, `${name}.pem`);
  const keyPath = path.join(dir, `${name}-key.pem`);
  const r = await run('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${cn}`,
    '-addext', `subjectAltName=${san}`, '-keyout', keyPath, '-out', certPath,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return { certPath, keyPath, key: fs.readFileSync(keyPath), cert: fs.readFileSync(certPath) };
}

const listen = (srv) => new Promise((r) => srv.listen(0, '127.0.0.1', () => r(srv.address().port)));

// The openai answer of the chat route below: its usage is what the event must carry.
const CHAT = {
  id: 'chatcmpl-tls', object: 'chat.completion', created: 1, model: 'gpt-4o-mini',
  choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 },
};

describe('https upstream', () => {
  let server, port, dir, certPath, cert, other, otherServer, otherPort;
  let hostile, hostilePort, stall, stallPort, garbage, garbagePort;
  let hostName = null; // this machine's name when it resolves to 127.0.0.1 (a real lookup)
  const conns = []; // the upstream's TLS connections, in order: { reused }
  before(async () => {
    dir = await tempDir('tollgate-tls-');
    const host = os.hostname();
    try {
      const a = await dns.lookup(host, { family: 4 });
      if (a.address === '127.0.0.1' && /^[a-z0-9.-]+$/i.test(host) && host !== 'localhost') hostName = host;
    } catch { /* no name: that test is skipped */ }
    cert = await makeCert(dir, 'cert', 'localhost',
      `DNS:localhost,IP:127.0.0.1${hostName ? `,DNS:${hostName}` : ''}`);
    certPath = cert.certPath;
    server = https.createServer({ key: cert.key, cert: cert.cert }, (req, res) => {
      let n = 0;
      req.on('data', (d) => (n += d.length));
      req.on('end', () => {
        if (req.url === '/v1/chat/completions') {
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify(CHAT));
          return;
        }
        if (req.url.startsWith('/sse')) {
          res.writeHead(200, { 'content-type': 'text/event-stream' }); // chunked: no length
          let i = 0;
          const t = setInterval(() => {
            res.write(`data: {"n":${i}}\n\n`);
            if (++i === 5) {
              clearInterval(t);
              res.end('data: [DONE]\n\n');
            }
          }, 20);
          return;
        }
        if (req.url.startsWith('/close')) res.setHeader('connection', 'close');
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ path: req.url, headers: req.headers, body_bytes: n }));
      });
    });
    server.on('secureConnection', (s) => conns.push({ reused: s.isSessionReused() })); // read while open
    port = await listen(server);

    // A certificate for another name, trusted (its ca_file) but not for "localhost".
    other = await makeCert(dir, 'other', 'other.example', 'DNS:other.example');
    otherServer = https.createServer({ key: other.key, cert: other.cert }, (req, res) => res.end('{}'));
    otherPort = await listen(otherServer);

    // Hostile, over TLS: answers read until the close, then closes with or without
    // close_notify (end() sends one; destroy() does not).
    hostile = tls.createServer({ key: cert.key, cert: cert.cert }, (sock) => {
      let head = '';
      sock.on('data', (d) => {
        head += d;
        if (!head.includes('\r\n\r\n')) return;
        const cut = head.startsWith('GET /hostile/cut');
        sock.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\npartial answer ');
        setTimeout(() => (cut ? sock.destroy() : sock.end('and its end')), 50);
        head = '';
      });
      sock.on('error', () => {});
    });
    hostilePort = await listen(hostile);
    // Hostile, over TCP: accepts and says nothing (the handshake stalls)...
    const held = [];
    stall = net.createServer((s) => { held.push(s); s.on('error', () => {}); });
    stall.on('close', () => held.forEach((s) => s.destroy()));
    stallPort = await listen(stall);
    // ... or answers in plain HTTP instead of TLS.
    garbage = net.createServer((s) => {
      s.on('error', () => {});
      s.end('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello');
    });
    garbagePort = await listen(garbage);
  });
  after(() => {
    server?.close();
    server?.closeAllConnections?.();
    otherServer?.close();
    otherServer?.closeAllConnections?.();
    hostile?.close();
    stall?.close();
    garbage?.close();
  });

  // One gateway (one worker, so one pool per upstream) for the tests below.
  let gw, auth;
  const events = async (where) =>
    sqlite(gw.dbPath, `select path, status, outcome, reason, tokens_in, tokens_out, model from usage_events where ${where} order by id`);
  const eventFor = async (p) => {
    await waitFor(async () => (await events(`path = '${p}'`)).length === 1, { message: `the event of ${p}` });
    return (await events(`path = '${p}'`))[0];
  };
  let notPem;
  test('start a gateway with every kind of https upstream', async () => {
    const ca = certPath;
    notPem = path.join(dir, 'not-a-certificate.pem'); // readable, so the config takes it
    fs.writeFileSync(notPem, 'this is not a PEM certificate\n');
    gw = await startGateway({
      workers: 1,
      upstreams: [
        { name: 'tls', targets: [`https://localhost:${port}`], ca_file: ca },
        { name: 'wrongname', targets: [`https://localhost:${otherPort}`], ca_file: other.certPath },
        { name: 'hostile', targets: [`https://localhost:${hostilePort}`], ca_file: ca, max_fails: 1000 },
        { name: 'stall', targets: [`https://127.0.0.1:${stallPort}`], ca_file: ca, connect_timeout: '400ms' },
        { name: 'garbage', targets: [`https://127.0.0.1:${garbagePort}`], ca_file: ca },
        { name: 'nx', targets: ['https://nonexistent.invalid'], ca_file: ca },
        { name: 'byname', targets: [`https://${hostName || 'localhost'}:${port}`], ca_file: ca },
        { name: 'notpem', targets: [`https://127.0.0.1:${port}`], ca_file: notPem },
      ],
      routes: [
        { name: 'wrongname', path_prefix: '/wrongname/', upstream: 'wrongname', kind: 'http' },
        { name: 'hostile', path_prefix: '/hostile/', upstream: 'hostile', kind: 'http' },
        { name: 'stall', path_prefix: '/stall/', upstream: 'stall', kind: 'http' },
        { name: 'garbage', path_prefix: '/garbage/', upstream: 'garbage', kind: 'http' },
        { name: 'nx', path_prefix: '/nx/', upstream: 'nx', kind: 'http' },
        { name: 'byname', path_prefix: '/byname/', upstream: 'byname', kind: 'http' },
        { name: 'notpem', path_prefix: '/notpem/', upstream: 'notpem', kind: 'http' },
        { name: 'chat', path_prefix: '/v1/', upstream: 'tls', kind: 'openai' },
        { name: 'api', path_prefix: '/', upstream: 'tls', kind: 'http' },
      ],
    });
    const k = await createTenantKey(gw, 'acme');
    auth = { Authorization: `Bearer ${k.secret}` };
    await waitFor(async () => (await request(`${gw.url}/warm`, { headers: auth })).status === 200,
      { message: 'the key is loaded' });
  });

  test('keep-alive: many requests over one TLS connection', async () => {
    const before = conns.length;
    for (let i = 0; i < 20; i++) {
      const r = await request(`${gw.url}/ka/${i}`, { headers: auth });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json().path, `/ka/${i}`);
      assert.equal(r.json().headers.host, `localhost:${port}`, 'Host as libcurl sends it');
    }
    assert.ok(conns.length - before <= 1, `${conns.length - before} TLS connections for 20 requests`);
    assert.ok(conns.length >= 1);
  });

  test('a new connection resumes the TLS session', async () => {
    const before = conns.length;
    // the first request ends the pooled connection (the upstream closes after it), the
    // second needs a new one, which offers the session the first connection got
    for (let i = 0; i < 2; i++) {
      const r = await request(`${gw.url}/close/${i}`, { headers: auth });
      assert.equal(r.status, 200, r.text);
    }
    const fresh = conns.slice(before);
    assert.equal(fresh.length, 1, `${fresh.length} new connections`);
    assert.equal(fresh[0].reused, true, 'the session was resumed');
  });

  test('a certificate for another name is refused: 502', async () => {
    const r = await request(`${gw.url}/wrongname/x`, { headers: auth });
    assert.equal(r.status, 502, r.text);
    const ev = await eventFor('/wrongname/x');
    assert.deepEqual([ev.status, ev.outcome, ev.reason], [502, 'failed', 'upstream_unreachable']);
  });

  // libcurl (7.88 with OpenSSL 3 here, TOLLGATE_NO_NATIVE_HTTP=1) was seen to take such a cut
  // answer as complete (200, billable): it tolerates a missing close_notify. Native only.
  const native = !process.env.TOLLGATE_NO_NATIVE_HTTP;
  test('an answer read until the close: cut without close_notify is a failure, with it complete',
    { skip: !native && 'libcurl ignores a missing close_notify' }, async () => {
    let text = '';
    try {
      const r = await request(`${gw.url}/hostile/cut`, { headers: auth });
      text = r.text;
    } catch { /* the client may see the cut as an error */ }
    assert.ok(!text.includes('and its end'));
    const cut = await eventFor('/hostile/cut');
    assert.notEqual(cut.outcome, 'billable', 'a truncated answer is not billed as a success');
    assert.deepEqual([cut.outcome, cut.reason], ['failed', 'upstream_reset']);

    const r = await request(`${gw.url}/hostile/whole`, { headers: auth });
    assert.equal(r.status, 200);
    assert.equal(r.text, 'partial answer and its end');
    const whole = await eventFor('/hostile/whole');
    assert.deepEqual([whole.status, whole.outcome], [200, 'billable']);
  });

  test('a handshake that stalls ends within connect_timeout: 504', async () => {
    const t0 = performance.now();
    const r = await request(`${gw.url}/stall/x`, { headers: auth });
    const ms = performance.now() - t0;
    assert.equal(r.status, 504, r.text);
    assert.ok(ms >= 350 && ms < 3000, `took ${ms} ms`);
    const ev = await eventFor('/stall/x');
    assert.deepEqual([ev.status, ev.outcome, ev.reason], [504, 'failed', 'upstream_timeout']);
  });

  test('an upstream that speaks no TLS: 502', async () => {
    const r = await request(`${gw.url}/garbage/x`, { headers: auth });
    assert.equal(r.status, 502, r.text);
    const ev = await eventFor('/garbage/x');
    assert.deepEqual([ev.status, ev.outcome], [502, 'failed']);
  });

  test('an unresolvable host name: 502 upstream_unreachable', async () => {
    const r = await request(`${gw.url}/nx/x`, { headers: auth });
    assert.equal(r.status, 502, r.text);
    const ev = await eventFor('/nx/x');
    assert.deepEqual([ev.status, ev.outcome, ev.reason], [502, 'failed', 'upstream_unreachable']);
  });

  test('a target named by a host name is resolved and verified against that name', async (t) => {
    if (!hostName) return t.skip(`${os.hostname()} does not resolve to 127.0.0.1 here`);
    for (let i = 0; i < 3; i++) {
      const r = await request(`${gw.url}/byname/${i}`, { headers: auth });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json().headers.host, `${hostName}:${port}`);
    }
  });

  test('a target the native client refuses goes to libcurl, said once without path or query', async () => {
    // A ca_file that is readable but holds no certificate: the native client cannot make
    // its TLS context, libcurl cannot load it either (502); the fallback is logged once.
    for (const q of ['one', 'two']) {
      const r = await request(`${gw.url}/notpem/secret-path?upstream_key=${q}`, { headers: auth });
      assert.equal(r.status, 502, r.text);
    }
    const said = gw.stderr().split('\n').filter((l) => l.includes('not taken by the native client'));
    assert.equal(said.length, 1, gw.stderr());
    assert.ok(said[0].includes(`https://127.0.0.1:${port}`), said[0]);
    assert.ok(!said[0].includes('secret-path') && !said[0].includes('upstream_key'), said[0]);
  });

  test('a streamed (SSE, chunked) answer through TLS', async () => {
    const r = await request(`${gw.url}/sse/1`, { headers: auth });
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /text\/event-stream/);
    const want = [0, 1, 2, 3, 4].map((i) => `data: {"n":${i}}\n\n`).join('') + 'data: [DONE]\n\n';
    assert.equal(r.text, want);
    assert.ok(r.chunks.length >= 3, `the events came as they were sent (${r.chunks.length} reads)`);
    const ev = await eventFor('/sse/1');
    assert.deepEqual([ev.status, ev.outcome], [200, 'billable']);
  });

  test('an openai route over TLS is metered', async () => {
    const r = await request(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
    });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json().usage, CHAT.usage);
    const ev = await eventFor('/v1/chat/completions');
    assert.deepEqual([ev.status, ev.outcome, ev.model, ev.tokens_in, ev.tokens_out],
      [200, 'billable', 'gpt-4o-mini', 11, 7]);
  });

  test('stop the gateway', async () => {
    assert.equal((await gw.stop()).code, 0);
  });

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
