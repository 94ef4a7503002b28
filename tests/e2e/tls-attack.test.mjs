// Attacks on the native client's https:// and host-name path (src/gateway/h1.c over
// h1tls/h1dns/h1url): hostile TLS upstreams scripted here with node:tls and node:net
// (answers split into 1-byte TCP writes and 1-byte records, cut with and without
// close_notify, RSTs, stalls, unsolicited bytes on a pooled connection, a renegotiation,
// old protocol versions, client certificates, bad certificates), a name resolved through a
// hosts file and a slow DNS server of this test (the gateway runs in its own mount
// namespace, so /etc/hosts and /etc/resolv.conf are this test's), backpressure both ways,
// metering over TLS, and resource use (fds) after many failures. Tests marked
// `// FINDING n` failed on the first native TLS client and pass since the fix in h1.c: a
// name's first address that never answers no longer takes the whole connect_timeout (each
// address gets a share), and an idle TLS connection holding part of a record is not
// reused. The names suite needs root
// (unshare -m, and UDP port 53 on 127.0.0.77) and is skipped without it. With
// TOLLGATE_NO_NATIVE_HTTP=1 (libcurl) two more fail: libcurl takes the unsolicited answer
// of an idle connection as the next request's answer, and the answers after it shift.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';

import {
  bin, createTenantKey, parseSse, request, run, sqlite, startGateway, tempDir, waitFor,
} from './lib/harness.mjs';

const listen = (srv, host = '127.0.0.1') =>
  new Promise((r) => srv.listen(0, host, () => r(srv.address().port)));
const tick = () => new Promise((r) => setImmediate(r));
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');

async function makeCert(dir, name, san, { days = 1, expired = false } = {}) {
  const certPath = path.join(dir, `${name}.pem`);
  const keyPath = path.join(dir, `${name}-key.pem`);
  let r = await run('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', String(days), '-subj', '/CN=tg-attack',
    '-addext', `subjectAltName=${san}`, '-keyout', keyPath, '-out', certPath,
  ]);
  assert.equal(r.code, 0, r.stderr);
  if (expired) { // re-signed with a validity that ended yesterday
    r = await run('openssl', ['x509', '-in', certPath, '-signkey', keyPath, '-days', '-1', '-out', certPath]);
    assert.equal(r.code, 0, r.stderr);
  }
  return { certPath, keyPath, key: fs.readFileSync(keyPath), cert: fs.readFileSync(certPath) };
}

// A CA, a leaf it signs (CA:FALSE), and a leaf that leaf signs: { ca, leaf1, leaf2 } as
// { certPath, key, cert }.
async function makeChain(dir) {
  const p = (n) => path.join(dir, n);
  const ok = (r) => assert.equal(r.code, 0, r.stderr);
  ok(await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=tg-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout', p('ca.key'), '-out', p('ca.pem')]));
  fs.writeFileSync(p('leaf.ext'), 'subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\n');
  for (const [n, signer] of [['leaf1', 'ca'], ['leaf2', 'leaf1']]) {
    ok(await run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${n}`, '-keyout', p(`${n}.key`), '-out', p(`${n}.csr`)]));
    ok(await run('openssl', ['x509', '-req', '-in', p(`${n}.csr`), '-CA', p(`${signer}.pem`), '-CAkey', p(`${signer}.key`),
      '-set_serial', String(Math.floor(Math.random() * 1e9)), '-days', '1', '-extfile', p('leaf.ext'), '-out', p(`${n}.pem`)]));
  }
  const get = (n) => ({ certPath: p(`${n}.pem`), key: fs.readFileSync(p(`${n}.key`)), cert: fs.readFileSync(p(`${n}.pem`)) });
  return { ca: get('ca'), leaf1: get('leaf1'), leaf2: get('leaf2') };
}

// Writes buf one byte per write (one TLS record each on a TLSSocket), waiting for each.
async function dribble(sock, buf) {
  for (let i = 0; i < buf.length && !sock.destroyed; i++) {
    await new Promise((r) => sock.write(buf.subarray(i, i + 1), r));
  }
}

// A TCP proxy that forwards what the upstream sends one byte per write (what the client
// sends passes as it comes): handshake records and answers reach the gateway in pieces.
function trickleProxy(targetPort) {
  return net.createServer((down) => {
    down.setNoDelay(true);
    const up = net.connect(targetPort, '127.0.0.1');
    let chain = Promise.resolve();
    up.on('data', (d) => {
      up.pause();
      chain = chain.then(async () => {
        for (let i = 0; i < d.length && !down.destroyed; i++) {
          down.write(d.subarray(i, i + 1));
          await tick();
        }
        up.resume();
      });
    });
    down.on('data', (d) => up.write(d));
    up.on('end', () => chain.then(() => down.end()));
    down.on('end', () => up.end());
    up.on('error', () => down.destroy());
    down.on('error', () => up.destroy());
    up.on('close', () => chain.then(() => down.destroy()));
  });
}

const CHAT_USAGE = { prompt_tokens: 13, completion_tokens: 5, total_tokens: 18 };
const chatJson = (usage = CHAT_USAGE) => JSON.stringify({
  id: 'chatcmpl-att', object: 'chat.completion', created: 1, model: 'gpt-4o-mini',
  choices: [{ index: 0, message: { role: 'assistant', content: 'hello' }, finish_reason: 'stop' }],
  usage,
});
const sseEvents = () => {
  const chunk = (delta, extra = '') =>
    `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":${delta},"finish_reason":null}]${extra}}\n\n`;
  return [
    chunk('{"role":"assistant","content":""}'),
    chunk('{"content":"one"}'),
    chunk('{"content":" two"}'),
    `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":21,"completion_tokens":9,"total_tokens":30}}\n\n`,
    'data: [DONE]\n\n',
  ];
};

// Reads one request head (and a content-length body) off a TLS socket; cb(head, sock).
function onRequests(sock, cb) {
  let buf = Buffer.alloc(0);
  let need = -1;
  let head = null;
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      if (!head) {
        const i = buf.indexOf('\r\n\r\n');
        if (i < 0) return;
        head = buf.subarray(0, i).toString('latin1');
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        need = m ? Number(m[1]) : 0;
        buf = buf.subarray(i + 4);
      }
      if (buf.length < need) return;
      const body = buf.subarray(0, need);
      buf = buf.subarray(need);
      const h = head;
      head = null;
      cb(h, body);
    }
  });
}

describe('tls attacks', () => {
  let dir, cert, nameOnly, expired;
  let srv, srvPort, trickle, tricklePort, rstHs, rstHsPort, old, oldPort, wantCert, wantCertPort;
  let chain, chainOk, chainOkPort, chainBad, chainBadPort, askCert, askCertPort, reneg, renegPort, expSrv, expPort, nameSrv, nameSrvPort, halfHs, halfHsPort, cert6, srv6, srv6Port;
  const seen6 = [];
  const seenSni = [];
  let unsolClosed = false, junkSent = false;
  const upSockets = new Set();
  let bigBody;

  before(async () => {
    dir = await tempDir('tollgate-tlsattack-');
    cert = await makeCert(dir, 'cert',
      'DNS:localhost,DNS:multi.test,DNS:gone.test,DNS:slow.test,DNS:fail.test,IP:127.0.0.1');
    nameOnly = await makeCert(dir, 'nameonly', 'DNS:localhost');
    expired = await makeCert(dir, 'expired', 'DNS:localhost,IP:127.0.0.1', { expired: true });
    bigBody = crypto.randomBytes(3 * 1024 * 1024 + 777);

    // The scripted upstream: its behaviour is chosen by the request's path.
    srv = tls.createServer({ key: cert.key, cert: cert.cert }, (sock) => {
      upSockets.add(sock);
      sock.on('close', () => upSockets.delete(sock));
      sock.setNoDelay(true);
      sock.on('error', () => {});
      seenSni.push(sock.servername || null);
      let n = 0;
      onRequests(sock, async (head, body) => {
        n++;
        const p = head.split(' ')[1].replace(/^\/(t|ip|noca)(?=\/)/, '');
        const ok = (b, type = 'text/plain', extra = '') =>
          `HTTP/1.1 200 OK\r\ncontent-type: ${type}\r\ncontent-length: ${Buffer.byteLength(b)}\r\n${extra}\r\n${b}`;
        if (p.startsWith('/plain/')) {
          sock.write(ok(`plain ${p}`));
        } else if (p.startsWith('/records/')) { // head and body, one byte per TLS record
          await dribble(sock, Buffer.from(ok(`records ${p}`)));
        } else if (p.startsWith('/big/')) {
          sock.write(`HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${bigBody.length}\r\n\r\n`);
          sock.write(bigBody);
        } else if (p.startsWith('/upload/')) {
          sock.write(ok(JSON.stringify({ n: body.length, sha: sha(body) }), 'application/json'));
        } else if (p.startsWith('/cl-cut/')) { // Content-Length body cut by a close_notify
          sock.end('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\nonly forty bytes of a hundred, then bye!');
        } else if (p.startsWith('/chunk-cut/')) { // chunked body cut by a close_notify
          sock.end('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n');
        } else if (p.startsWith('/rst-body/')) { // TCP RST in the middle of a body
          sock.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\nsome of it', () =>
            setTimeout(() => sock._parent ? sock._parent.resetAndDestroy() : sock.resetAndDestroy(), 30));
        } else if (p.startsWith('/stall/')) {
          // handshake done, request read, then nothing
        } else if (p.startsWith('/unsol/')) { // an answer, then bytes nobody asked for
          sock.write(ok(`unsol ${p}`));
          sock.on('close', () => (unsolClosed = true));
          setTimeout(() => sock.write(ok('EVIL')), 50);
        } else if (p.startsWith('/hugerec/')) { // a record header claiming 65535 bytes, mid-body
          sock.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\nabc', () =>
            sock._parent.write(Buffer.from([0x17, 0x03, 0x03, 0xff, 0xff])));
        } else if (p.startsWith('/junkidle/')) { // an answer, then 3 bytes of a record header, raw
          sock.write(ok(`junkidle ${p}`), () => setTimeout(() => sock._parent.write(Buffer.from([0x17, 0x03, 0x03]), () => (junkSent = true)), 30));
        } else if (p.startsWith('/notify-after/')) { // a keep-alive answer, then close_notify at once or later
          sock.write(ok(`notify ${p}`), () => (p.endsWith('now') ? sock.end() : setTimeout(() => sock.end(), 40)));
        } else if (p.startsWith('/stale/')) { // the second request on a connection: dropped
          if (n === 1) sock.write(ok(`stale ${p}`));
          else sock.destroy();
        } else if (p.startsWith('/v1/chat/completions')) {
          if (p.includes('cut')) {
            sock.end(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n${chatJson()}`);
          } else if (p.includes('slowsse')) { // streamed slowly: a client can leave midway
            sock.write('HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n');
            for (const e of sseEvents()) {
              if (sock.destroyed) return;
              sock.write(`${Buffer.byteLength(e).toString(16)}\r\n${e}\r\n`);
              await new Promise((r) => setTimeout(r, 150));
            }
            sock.write('0\r\n\r\n');
          } else if (p.includes('sse')) { // records of a few bytes: events split across records
            const b = sseEvents().join('');
            const h = 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n';
            const whole = Buffer.from(`${h}${Buffer.byteLength(b).toString(16)}\r\n${b}\r\n0\r\n\r\n`);
            for (let i = 0; i < whole.length; i += 7) {
              await new Promise((r) => sock.write(whole.subarray(i, i + 7), r));
            }
          } else {
            await dribble(sock, Buffer.from(ok(chatJson(), 'application/json')));
          }
        } else {
          sock.write(ok(`default ${p}`));
        }
      });
    });
    srvPort = await listen(srv);
    trickle = trickleProxy(srvPort);
    tricklePort = await listen(trickle);

    // TCP RST as soon as the ClientHello arrives.
    rstHs = net.createServer((s) => {
      s.on('error', () => {});
      s.once('data', () => s.resetAndDestroy());
    });
    rstHsPort = await listen(rstHs);
    // The first 100 bytes of the server's handshake, then nothing.
    halfHs = net.createServer((down) => {
      down.on('error', () => {});
      const up = net.connect(srvPort, '127.0.0.1');
      up.on('error', () => {});
      let sent = 0;
      up.on('data', (d) => {
        if (sent < 100) down.write(d.subarray(0, 100 - sent));
        sent += d.length;
      });
      down.on('data', (d) => up.write(d));
      down.on('close', () => up.destroy());
    });
    halfHsPort = await listen(halfHs);
    // An IPv6 literal target, with a certificate for ::1.
    cert6 = await makeCert(dir, 'cert6', 'IP:::1');
    srv6 = tls.createServer({ key: cert6.key, cert: cert6.cert }, (s) => {
      s.on('error', () => {});
      seen6.push(s.servername || null);
      onRequests(s, (head) => {
        const b = /\r\nhost: (\S+)/i.exec(head)[1];
        s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${b.length}\r\n\r\n${b}`);
      });
    });
    srv6Port = await listen(srv6, '::1');
    // A server that speaks TLS 1.0/1.1 only.
    old = tls.createServer({
      key: cert.key, cert: cert.cert, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0',
    }, (s) => { s.on('error', () => {}); s.end('HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nold'); });
    old.on('tlsClientError', () => {});
    oldPort = await listen(old);
    // A leaf signed by the CA, and a leaf signed by that leaf (not a CA) sent with it.
    chain = await makeChain(dir);
    const answer = (b) => (s) => { s.on('error', () => {}); onRequests(s, () => s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${b.length}\r\n\r\n${b}`)); };
    chainOk = tls.createServer({ key: chain.leaf1.key, cert: chain.leaf1.cert }, answer('chained'));
    chainOkPort = await listen(chainOk);
    chainBad = tls.createServer({ key: chain.leaf2.key, cert: Buffer.concat([chain.leaf2.cert, chain.leaf1.cert]) }, answer('forged'));
    chainBad.on('tlsClientError', () => {});
    chainBadPort = await listen(chainBad);
    // A server that asks for a client certificate and takes none.
    askCert = tls.createServer({
      key: cert.key, cert: cert.cert, requestCert: true, rejectUnauthorized: false, ca: [cert.cert],
    }, (s) => { s.on('error', () => {}); onRequests(s, () => s.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nasked')); });
    askCertPort = await listen(askCert);
    // A server that asks for a client certificate and requires one.
    wantCert = tls.createServer({
      key: cert.key, cert: cert.cert, requestCert: true, rejectUnauthorized: true, ca: [cert.cert],
    }, (s) => { s.on('error', () => {}); onRequests(s, () => s.write('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nmine')); });
    wantCert.on('tlsClientError', () => {});
    wantCertPort = await listen(wantCert);
    // TLS 1.2 only, a renegotiation asked for (HelloRequest) when the request arrives.
    reneg = tls.createServer({ key: cert.key, cert: cert.cert, maxVersion: 'TLSv1.2' }, (s) => {
      s.on('error', () => {});
      onRequests(s, (head) => {
        if (head.includes(' /reneg/idle')) { // answered, then a HelloRequest on the idle connection
          s.write('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nidle', () =>
            setTimeout(() => !s.destroyed && s.renegotiate({ rejectUnauthorized: false }, () => {}), 30));
          return;
        }
        s.renegotiate({ rejectUnauthorized: false }, () => {});
        setTimeout(() => !s.destroyed && s.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nreneg'), 50);
      });
    });
    reneg.on('tlsClientError', () => {});
    renegPort = await listen(reneg);
    // An expired certificate (otherwise trusted), and one for "localhost" only.
    expSrv = tls.createServer({ key: expired.key, cert: expired.cert }, (s) => {
      s.on('error', () => {}); onRequests(s, () => s.write('HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nexp'));
    });
    expSrv.on('tlsClientError', () => {});
    expPort = await listen(expSrv);
    nameSrv = tls.createServer({ key: nameOnly.key, cert: nameOnly.cert }, (s) => {
      s.on('error', () => {}); onRequests(s, () => s.write('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nname'));
    });
    nameSrv.on('tlsClientError', () => {});
    nameSrvPort = await listen(nameSrv);
  });
  after(() => {
    for (const s of [srv, trickle, rstHs, old, wantCert, reneg, expSrv, nameSrv, halfHs, srv6, askCert, chainOk, chainBad]) s?.close();
    for (const s of upSockets) s.destroy();
  });

  let gw, auth;
  const eventFor = async (p) => {
    const q = () => sqlite(gw.dbPath, `select path, status, outcome, reason, tokens_in, tokens_out, model from usage_events where path = '${p}' order by id`);
    await waitFor(async () => (await q()).length >= 1, { message: `the event of ${p}` });
    return (await q())[0];
  };
  // A request whose client may see a failure as a cut connection: never throws.
  const tryRequest = async (url, opts) => {
    try { return await request(url, opts); } catch (e) { return { status: 0, text: '', error: e }; }
  };
  const fdCount = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;

  test('start a gateway with the hostile upstreams', async () => {
    const ca = cert.certPath;
    gw = await startGateway({
      workers: 1,
      upstreams: [
        { name: 'srv', targets: [`https://localhost:${srvPort}`], ca_file: ca, max_fails: 100000, idle_timeout: '500ms' },
        { name: 'ip', targets: [`https://127.0.0.1:${srvPort}`], ca_file: ca, max_fails: 100000 },
        { name: 'trickle', targets: [`https://localhost:${tricklePort}`], ca_file: ca, max_fails: 100000 },
        { name: 'rsths', targets: [`https://localhost:${rstHsPort}`], ca_file: ca, max_fails: 100000 },
        { name: 'old', targets: [`https://localhost:${oldPort}`], ca_file: ca, max_fails: 100000 },
        { name: 'wantcert', targets: [`https://localhost:${wantCertPort}`], ca_file: ca, max_fails: 100000 },
        { name: 'reneg', targets: [`https://localhost:${renegPort}`], ca_file: ca, max_fails: 100000, idle_timeout: '2s' },
        { name: 'expired', targets: [`https://localhost:${expPort}`], ca_file: expired.certPath, max_fails: 100000 },
        { name: 'ipname', targets: [`https://127.0.0.1:${nameSrvPort}`], ca_file: nameOnly.certPath, max_fails: 100000 },
        { name: 'noca', targets: [`https://localhost:${srvPort}`], max_fails: 100000 },
        { name: 'chainok', targets: [`https://localhost:${chainOkPort}`], ca_file: chain.ca.certPath, max_fails: 100000 },
        { name: 'chainbad', targets: [`https://localhost:${chainBadPort}`], ca_file: chain.ca.certPath, max_fails: 100000 },
        { name: 'askcert', targets: [`https://localhost:${askCertPort}`], ca_file: ca, max_fails: 100000 },
        { name: 'halfhs', targets: [`https://localhost:${halfHsPort}`], ca_file: ca, max_fails: 100000, connect_timeout: '400ms' },
        { name: 'v6', targets: [`https://[::1]:${srv6Port}`], ca_file: cert6.certPath, max_fails: 100000 },
      ],
      routes: [
        { name: 'trickle', path_prefix: '/t/', upstream: 'trickle', kind: 'http' },
        { name: 'ip', path_prefix: '/ip/', upstream: 'ip', kind: 'http' },
        { name: 'rsths', path_prefix: '/rsths/', upstream: 'rsths', kind: 'http' },
        { name: 'old', path_prefix: '/old/', upstream: 'old', kind: 'http' },
        { name: 'wantcert', path_prefix: '/wantcert/', upstream: 'wantcert', kind: 'http' },
        { name: 'reneg', path_prefix: '/reneg/', upstream: 'reneg', kind: 'http' },
        { name: 'expired', path_prefix: '/expired/', upstream: 'expired', kind: 'http' },
        { name: 'ipname', path_prefix: '/ipname/', upstream: 'ipname', kind: 'http' },
        { name: 'noca', path_prefix: '/noca/', upstream: 'noca', kind: 'http' },
        { name: 'chainok', path_prefix: '/chainok/', upstream: 'chainok', kind: 'http' },
        { name: 'chainbad', path_prefix: '/chainbad/', upstream: 'chainbad', kind: 'http' },
        { name: 'askcert', path_prefix: '/askcert/', upstream: 'askcert', kind: 'http' },
        { name: 'halfhs', path_prefix: '/halfhs/', upstream: 'halfhs', kind: 'http' },
        { name: 'v6', path_prefix: '/v6/', upstream: 'v6', kind: 'http' },
        { name: 'chat', path_prefix: '/v1/', upstream: 'trickle', kind: 'openai' }, // 1-byte TCP writes too
        { name: 'api', path_prefix: '/', upstream: 'srv', kind: 'http' },
      ],
    });
    const k = await createTenantKey(gw, 'acme');
    auth = { Authorization: `Bearer ${k.secret}` };
    await waitFor(async () => (await request(`${gw.url}/plain/warm`, { headers: auth })).status === 200,
      { message: 'the key is loaded' });
  });

  test('handshake and answer in 1-byte TCP writes', { timeout: 20000 }, async () => {
    const r = await request(`${gw.url}/t/plain/trickle`, { headers: auth });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, 'plain /plain/trickle');
  });

  test('an answer of 1-byte TLS records (the head split across records)', async () => {
    const r = await request(`${gw.url}/records/1`, { headers: auth });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, 'records /records/1');
  });

  test('openai over TLS, 1-byte records and 1-byte TCP writes: usage billed exactly', { timeout: 20000 }, async () => {
    const r = await request(`${gw.url}/v1/chat/completions`, {
      method: 'POST', headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
    });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json().usage, CHAT_USAGE);
    const id = r.headers['x-request-id'];
    await waitFor(async () => (await sqlite(gw.dbPath, `select 1 from usage_events where request_id='${id}'`)).length === 1);
    const [ev] = await sqlite(gw.dbPath, `select status, outcome, tokens_in, tokens_out, model from usage_events where request_id='${id}'`);
    assert.deepEqual([ev.status, ev.outcome, ev.tokens_in, ev.tokens_out, ev.model], [200, 'billable', 13, 5, 'gpt-4o-mini']);
  });

  test('openai SSE with usage in the last chunk, events split across 7-byte records', async () => {
    const r = await request(`${gw.url}/v1/chat/completions?sse`, {
      method: 'POST', headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] }),
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, sseEvents().join(''));
    assert.equal(parseSse(r.text).length, 5);
    const id = r.headers['x-request-id'];
    await waitFor(async () => (await sqlite(gw.dbPath, `select 1 from usage_events where request_id='${id}'`)).length === 1);
    const [ev] = await sqlite(gw.dbPath, `select status, outcome, tokens_in, tokens_out from usage_events where request_id='${id}'`);
    assert.deepEqual([ev.status, ev.outcome, ev.tokens_in, ev.tokens_out], [200, 'billable', 21, 9]);
  });

  test('openai answer cut short by a close_notify (Content-Length not reached): not billed as success', async () => {
    const r = await tryRequest(`${gw.url}/v1/chat/completions?cut`, {
      method: 'POST', headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
    });
    assert.ok(r.status === 0 || r.body.length < 1000, 'the client did not get a whole answer');
    const ev = await eventFor('/v1/chat/completions?cut'); // events keep the query
    assert.notEqual(ev.outcome, 'billable', `a cut answer is not billed as a success: ${JSON.stringify(ev)}`);
    assert.deepEqual([ev.outcome, ev.reason], ['failed', 'upstream_reset']);
  });

  test('Content-Length and chunked bodies cut by close_notify are failures', async () => {
    for (const p of ['/cl-cut/1', '/chunk-cut/1']) {
      const r = await tryRequest(`${gw.url}${p}`, { headers: auth });
      assert.ok(r.status === 0 || r.status === 200 || r.status === 502, `${p}: ${r.status}`);
      const ev = await eventFor(p);
      assert.deepEqual([ev.outcome, ev.reason], ['failed', 'upstream_reset'], p);
    }
  });

  test('TCP RST in the middle of a body: a failure', async () => {
    await tryRequest(`${gw.url}/rst-body/1`, { headers: auth });
    const ev = await eventFor('/rst-body/1');
    assert.equal(ev.outcome, 'failed');
  });

  test('TCP RST in the middle of the handshake: 502 at once', async () => {
    const r = await request(`${gw.url}/rsths/x`, { headers: auth });
    assert.equal(r.status, 502, r.text);
    assert.ok(r.ms < 2000, `${r.ms} ms`);
    const ev = await eventFor('/rsths/x');
    assert.deepEqual([ev.status, ev.outcome], [502, 'failed']);
  });

  test('handshake done, then no answer: 504 within the upstream idle_timeout', async () => {
    const r = await request(`${gw.url}/stall/1`, { headers: auth });
    assert.equal(r.status, 504, r.text);
    assert.ok(r.ms >= 400 && r.ms < 3000, `${r.ms} ms`);
    const ev = await eventFor('/stall/1');
    assert.deepEqual([ev.status, ev.outcome, ev.reason], [504, 'failed', 'upstream_timeout']);
  });

  test('bytes nobody asked for on an idle pooled connection never become the next answer', async () => {
    const r1 = await request(`${gw.url}/unsol/1`, { headers: auth });
    assert.equal(r1.text, 'unsol /unsol/1');
    // the upstream sends its unsolicited answer 50 ms later: the gateway closes that connection
    await waitFor(() => unsolClosed, { message: 'the gateway closed the connection that sent bytes unasked' });
    const r2 = await request(`${gw.url}/plain/after-unsol`, { headers: auth });
    assert.equal(r2.status, 200);
    assert.equal(r2.text, 'plain /plain/after-unsol');
  });

  test('a record header claiming 65535 bytes in the middle of a body: a failure, no crash', async () => {
    await tryRequest(`${gw.url}/hugerec/1`, { headers: auth });
    const ev = await eventFor('/hugerec/1');
    assert.deepEqual([ev.status, ev.outcome], [200, 'failed']);
    const r = await request(`${gw.url}/plain/after-hugerec`, { headers: auth });
    assert.equal(r.text, 'plain /plain/after-hugerec');
  });

  // FINDING 2: bytes of an incomplete TLS record that arrive on an idle pooled connection
  // do not close it (only a whole record does: h1.c tls_read with r == NULL; nor does
  // tls_more look past a partial record after an answer); the next request is sent on it
  // and the upstream's answer is read behind those 3 bytes, as the length of a record that
  // never completes: the request waits for the upstream idle_timeout (500 ms here, 30 s by
  // default) and fails 504, not retried, though the upstream answered it. Bytes on an idle
  // plain-HTTP connection close it at once.
  test('bytes of a partial record on an idle pooled connection: that connection is not reused', async () => {
    const r1 = await request(`${gw.url}/junkidle/1`, { headers: auth });
    assert.equal(r1.text, 'junkidle /junkidle/1');
    await waitFor(() => junkSent, { message: 'the 3 bytes went out' });
    await new Promise((r) => setTimeout(r, 50)); // and reached the gateway's idle read
    const r2 = await request(`${gw.url}/plain/after-junk`, { headers: auth }); // the LIFO pool's top
    assert.equal(r2.status, 200, r2.text);
    assert.equal(r2.text, 'plain /plain/after-junk');
  });

  test('a close_notify right after a keep-alive answer, or while idle: the next request gets a fresh connection', async () => {
    for (const when of ['now', 'later']) {
      const a = await request(`${gw.url}/notify-after/${when}`, { headers: auth });
      assert.equal(a.text, `notify /notify-after/${when}`);
      if (when === 'later') await new Promise((r) => setTimeout(r, 100)); // its close_notify comes 40 ms after
      const b = await request(`${gw.url}/plain/after-notify-${when}`, { headers: auth });
      assert.equal(b.status, 200, b.text);
      assert.equal(b.text, `plain /plain/after-notify-${when}`);
    }
  });

  test('a pooled connection the upstream drops at the next request: retried once, 200', async () => {
    // a fresh pool connection (none idle): the ip upstream's pool
    const a = await request(`${gw.url}/ip/stale/1`, { headers: auth });
    assert.equal(a.text, 'stale /stale/1');
    const b = await request(`${gw.url}/ip/stale/2`, { headers: auth });
    assert.equal(b.status, 200, b.text);
    assert.equal(b.text, 'stale /stale/2');
  });

  test('a TLS 1.2 renegotiation asked by the upstream: no hang, and no half answer billed', { timeout: 10000 }, async () => {
    const r = await tryRequest(`${gw.url}/reneg/x`, { headers: auth, timeoutMs: 8000 });
    const ev = await eventFor('/reneg/x');
    if (ev.outcome === 'billable') assert.equal(r.text, 'reneg');
    else assert.notEqual(r.status, 200);
  });

  test('a handshake cut off after 100 bytes of the server: 504 within connect_timeout', async () => {
    const r = await request(`${gw.url}/halfhs/x`, { headers: auth });
    assert.equal(r.status, 504, r.text);
    assert.ok(r.ms >= 350 && r.ms < 3000, `${r.ms} ms`);
    const ev = await eventFor('/halfhs/x');
    assert.deepEqual([ev.status, ev.outcome, ev.reason], [504, 'failed', 'upstream_timeout']);
  });

  test('a HelloRequest on an idle pooled TLS 1.2 connection: the next request still answered', async () => {
    const a = await request(`${gw.url}/reneg/idle1`, { headers: auth });
    assert.equal(a.text, 'idle');
    await new Promise((r) => setTimeout(r, 150)); // the HelloRequest went 30 ms after the answer
    const b = await request(`${gw.url}/reneg/idle2`, { headers: auth });
    assert.equal(b.status, 200, b.text);
    assert.equal(b.text, 'idle');
  });

  test('an IPv6 literal target: Host [::1]:port, verified against the IP, no SNI', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await request(`${gw.url}/v6/${i}`, { headers: auth });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.text, `[::1]:${srv6Port}`);
    }
    assert.ok(seen6.length >= 1 && seen6.every((s) => !s), JSON.stringify(seen6));
  });

  test('certificates: expired, no ca_file for a self-signed one, an IP target with a name-only cert: 502', async () => {
    for (const p of ['/expired/x', '/noca/plain/x', '/ipname/x']) {
      const r = await request(`${gw.url}${p}`, { headers: auth });
      assert.equal(r.status, 502, `${p}: ${r.text}`);
    }
    for (const p of ['/expired/x', '/noca/plain/x', '/ipname/x']) {
      const ev = await eventFor(p === '/noca/plain/x' ? '/noca/plain/x' : p);
      assert.deepEqual([ev.status, ev.outcome, ev.reason], [502, 'failed', 'upstream_unreachable'], p);
    }
  });

  test('a CA chain: a leaf the CA signed is taken, a leaf signed by a leaf (CA:FALSE) is refused', async () => {
    const ok = await request(`${gw.url}/chainok/x`, { headers: auth });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.text, 'chained');
    const bad = await request(`${gw.url}/chainbad/x`, { headers: auth });
    assert.equal(bad.status, 502, bad.text);
    const ev = await eventFor('/chainbad/x');
    assert.deepEqual([ev.status, ev.outcome, ev.reason], [502, 'failed', 'upstream_unreachable']);
  });

  test('an IP-literal target with a certificate for that IP: verified, no SNI sent', async () => {
    const before = seenSni.length;
    const r = await request(`${gw.url}/ip/plain/ipcert`, { headers: auth });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, 'plain /plain/ipcert');
    // name targets send their name (RFC 6066 forbids an IP literal in SNI)
    assert.ok(seenSni.slice(0, before).includes('localhost'));
    assert.ok(seenSni.slice(before).every((s) => s === null || s === false), JSON.stringify(seenSni.slice(before)));
  });

  test('a TLS 1.0/1.1-only upstream is refused: 502', async () => {
    const r = await request(`${gw.url}/old/x`, { headers: auth });
    assert.equal(r.status, 502, r.text);
    const ev = await eventFor('/old/x');
    assert.deepEqual([ev.status, ev.outcome], [502, 'failed']);
  });

  test('an upstream that asks for a client certificate and takes none: answered', async () => {
    const r = await request(`${gw.url}/askcert/x`, { headers: auth });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, 'asked');
  });

  test('an upstream that requires a client certificate: a failure, not a success', async () => {
    const r = await tryRequest(`${gw.url}/wantcert/x`, { headers: auth });
    assert.notEqual(r.status, 200);
    const ev = await eventFor('/wantcert/x');
    assert.equal(ev.outcome, 'failed');
  });

  test('a 3 MiB answer to a client that reads slowly, over TLS: exact bytes', { timeout: 20000 }, async () => {
    const got = await new Promise((resolve, reject) => {
      const req = http.request(`${gw.url}/big/1`, { headers: auth, agent: false }, (res) => {
        const parts = [];
        let n = 0;
        res.on('data', (d) => {
          parts.push(d);
          n += d.length;
          if (n > 256 * 1024 && n - d.length <= 256 * 1024) { // stall the reader once
            res.pause();
            setTimeout(() => res.resume(), 700);
          }
        });
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(parts) }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(got.status, 200);
    assert.equal(got.body.length, bigBody.length);
    assert.equal(sha(got.body), sha(bigBody));
    const ev = await eventFor('/big/1');
    assert.deepEqual([ev.status, ev.outcome], [200, 'billable']);
  });

  test('a 3 MiB upload over TLS to an upstream that reads late: exact bytes', { timeout: 20000 }, async () => {
    // the upstream's sockets stop reading for 1.5 s when the request begins (the ip
    // upstream: its idle_timeout is the default 30 s)
    const pausing = (s) => { s.pause(); setTimeout(() => s.resume(), 1500); };
    srv.once('secureConnection', pausing);
    for (const s of upSockets) if (!s.destroyed) pausing(s);
    const body = crypto.randomBytes(3 * 1024 * 1024 + 13);
    const r = await request(`${gw.url}/ip/upload/1`, { method: 'PUT', headers: auth, body });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), { n: body.length, sha: sha(body) });
  });

  test('a client that leaves a streamed openai answer over TLS: drained, usage billed exactly', { timeout: 15000 }, async () => {
    const body = JSON.stringify({ model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] });
    const sock = net.connect(gw.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write(`POST /v1/chat/completions?slowsse HTTP/1.1\r\nHost: x\r\n${Object.entries(auth).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    let rid = null;
    await new Promise((r) => sock.on('data', (d) => {
      const m = /x-request-id: (\S+)/i.exec(d.toString());
      if (m) rid = m[1];
      if (/data: /.test(d.toString())) r();
    }));
    sock.destroy();
    assert.ok(rid);
    await waitFor(async () => (await sqlite(gw.dbPath, `select 1 from usage_events where request_id='${rid}'`)).length === 1, { timeoutMs: 8000 });
    const [ev] = await sqlite(gw.dbPath, `select outcome, reason, tokens_in, tokens_out, price_flag from usage_events where request_id='${rid}'`);
    assert.deepEqual([ev.outcome, ev.reason, ev.tokens_in, ev.tokens_out], ['billable', 'client_closed', 21, 9], JSON.stringify(ev));
  });

  test('clients that leave during the handshake, mid-upload and mid-answer: no crash, nothing left open', { timeout: 20000 }, async () => {
    const pid = gw.proc.pid;
    const base = fdCount(pid);
    const leave = async (head, body, afterMs) => {
      const s = net.connect(gw.port, '127.0.0.1');
      s.on('error', () => {});
      await new Promise((r) => s.once('connect', r));
      s.write(head);
      if (body) s.write(body);
      await new Promise((r) => setTimeout(r, afterMs));
      s.destroy();
    };
    const a = `Authorization: ${auth.Authorization}`;
    const jobs = [];
    for (let i = 0; i < 20; i++) {
      // through the trickle proxy the handshake takes a while: left in the middle of it
      jobs.push(leave(`GET /t/plain/left${i} HTTP/1.1\r\nHost: x\r\n${a}\r\n\r\n`, null, 2 + (i % 10)));
      // an upload of 1 MiB announced, 256 KiB sent
      jobs.push(leave(`PUT /upload/left${i} HTTP/1.1\r\nHost: x\r\n${a}\r\ncontent-length: 1048576\r\n\r\n`, Buffer.alloc(256 * 1024, 1), 20));
      // a 3 MiB answer left after a few ms
      jobs.push(leave(`GET /big/left${i} HTTP/1.1\r\nHost: x\r\n${a}\r\n\r\n`, null, 5 + i));
    }
    await Promise.all(jobs);
    const r = await request(`${gw.url}/plain/after-leaving`, { headers: auth });
    assert.equal(r.text, 'plain /plain/after-leaving');
    await waitFor(async () => (await sqlite(gw.dbPath, "select count(*) n from usage_events where path like '%left%'"))[0].n === 60,
      { timeoutMs: 10000, message: 'an event for each request left' });
    await waitFor(() => fdCount(pid) <= base + 2, { timeoutMs: 5000, message: `fds back to ${base} (now ${fdCount(pid)})` });
  });

  test('200 concurrent keep-alive clients through TLS', { timeout: 30000 }, async () => {
    // the ip upstream: default timeouts (the srv one's 500 ms idle_timeout is for the stall test)
    const agent = new http.Agent({ keepAlive: true, maxSockets: 200 });
    const one = (i) => new Promise((resolve, reject) => {
      const req = http.request(`${gw.url}/ip/plain/c${i}`, { headers: auth, agent }, (res) => {
        let t = '';
        res.on('data', (d) => (t += d));
        res.on('end', () => resolve({ status: res.statusCode, text: t }));
      });
      req.on('error', reject);
      req.end();
    });
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${gw.proc.pid}/status`, 'utf8'))[1]);
    let rss1 = 0;
    for (let round = 0; round < 6; round++) {
      const rs = await Promise.all(Array.from({ length: 200 }, (_, i) => one(i)));
      rs.forEach((r, i) => assert.deepEqual([r.status, r.text], [200, `plain /plain/c${i}`]));
      if (round === 1) rss1 = rss();
    }
    agent.destroy();
    // 800 more requests after the pools were warm: RSS stays (sanitizer builds allocate more)
    assert.ok(rss() - rss1 < 24 * 1024, `RSS grew ${rss() - rss1} KiB over 800 requests`);
  });

  test('no fd left behind after many failures', { timeout: 30000 }, async () => {
    const pid = gw.proc.pid;
    // warm every path once, then count
    const paths = ['/rsths/f', '/old/f', '/expired/f', '/ipname/f', '/wantcert/f', '/cl-cut/f', '/rst-body/f', '/stall/f'];
    for (const p of paths) await tryRequest(`${gw.url}${p}`, { headers: auth });
    await waitFor(() => fdCount(pid) > 0);
    const base = fdCount(pid);
    for (let i = 0; i < 8; i++) {
      await Promise.all(paths.map((p) => tryRequest(`${gw.url}${p}${i}`, { headers: auth })));
    }
    // upstream connections close when their transfer fails: back to where it was
    await waitFor(() => fdCount(pid) <= base + 2, { timeoutMs: 5000, message: `fds back to ${base} (now ${fdCount(pid)})` });
  });

  test('stop the gateway', async () => {
    assert.equal((await gw.stop()).code, 0);
  });
});

// ---- names: a hosts file and a DNS server of this test, seen by the gateway alone ----------

// A DNS server on 127.0.0.77:53 (UDP): A records for the names in `zone` after `delayMs`,
// NXDOMAIN for the others (after the same delay); AAAA: no data.
function dnsServer(zone, delayMs) {
  const sock = dgram.createSocket('udp4');
  const stats = { queries: 0 };
  sock.on('message', (msg, rinfo) => {
    stats.queries++;
    let o = 12;
    const labels = [];
    while (msg[o] !== 0) { labels.push(msg.subarray(o + 1, o + 1 + msg[o]).toString()); o += msg[o] + 1; }
    o++;
    const qtype = msg.readUInt16BE(o);
    const qend = o + 4;
    const name = labels.join('.').toLowerCase();
    const ip = zone[name];
    const hdr = Buffer.alloc(12);
    msg.copy(hdr, 0, 0, 2);
    hdr.writeUInt16BE(ip ? 0x8180 : 0x8183, 2);
    hdr.writeUInt16BE(1, 4);
    const ans = [];
    if (ip && qtype === 1) {
      const a = Buffer.alloc(16);
      a.writeUInt16BE(0xc00c, 0); a.writeUInt16BE(1, 2); a.writeUInt16BE(1, 4);
      a.writeUInt32BE(60, 6); a.writeUInt16BE(4, 10);
      ip.split('.').forEach((x, i) => (a[12 + i] = Number(x)));
      ans.push(a);
    }
    hdr.writeUInt16BE(ans.length, 6);
    const out = Buffer.concat([hdr, msg.subarray(12, qend), ...ans]);
    setTimeout(() => sock.send(out, rinfo.port, rinfo.address), delayMs);
  });
  return new Promise((r) => sock.bind(53, '127.0.0.77', () => r({ sock, stats, close: () => sock.close() })));
}

// The gateway of gw's config, run in its own mount namespace with hostsPath and
// resolvPath over /etc/hosts and /etc/resolv.conf; resolves once /healthz answers.
async function startInNamespace(gw, hostsPath, resolvPath, env = {}) {
  const script = `mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && exec "$3" serve -c "$4"`;
  const proc = spawn('unshare', ['-m', 'sh', '-c', script, 'sh', hostsPath, resolvPath, bin, gw.configPath], {
    cwd: gw.dir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  proc.stdout.resume();
  process.on('exit', () => proc.kill('SIGKILL'));
  await waitFor(async () => {
    if (proc.exitCode !== null) throw new Error(`gateway exited: ${stderr}`);
    try { return (await request(`${gw.adminUrl}/healthz`, { timeoutMs: 500 })).status === 200; } catch { return false; }
  }, { timeoutMs: 10000, message: 'the namespaced gateway answers /healthz' });
  return {
    proc,
    stderr: () => stderr,
    async stop() {
      const done = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
      proc.kill('SIGTERM');
      const res = await done;
      const report = /ERROR: (Address|Leak|Thread)Sanitizer|runtime error:/.exec(stderr);
      if (report) throw new Error(`sanitizer report:\n${stderr.slice(report.index, report.index + 4000)}`);
      return res;
    },
  };
}

describe('names', () => {
  let dir, cert, srv, srvPort, dns, hostsPath, resolvPath, gw, ns, auth, hostsBase;
  const namespacesWork = (() => {
    try {
      return process.getuid() === 0;
    } catch { return false; }
  })();

  before(async () => {
    if (!namespacesWork) return;
    dir = await tempDir('tollgate-tlsattack-dns-');
    cert = await makeCert(dir, 'cert', 'DNS:multi.test,DNS:gone.test,DNS:slow.test,DNS:fail.test,DNS:bh.test');
    srv = tls.createServer({ key: cert.key, cert: cert.cert }, (s) => {
      s.on('error', () => {});
      onRequests(s, (head) => {
        const p = head.split(' ')[1];
        const host = /\r\nhost: (\S+)/i.exec(head)[1];
        const b = `${host} ${p}`;
        // connection: close, so every request needs a connection (and so the addresses)
        s.end(`HTTP/1.1 200 OK\r\ncontent-length: ${b.length}\r\nconnection: close\r\n\r\n${b}`);
      });
    });
    srvPort = await listen(srv); // 127.0.0.1 only: ::1 refuses
    dns = await dnsServer({ 'slow.test': '127.0.0.1' }, 600);
    hostsPath = path.join(dir, 'hosts');
    resolvPath = path.join(dir, 'resolv.conf');
    // bh.test: first an on-link IPv6 address nobody has (the connect waits for neighbour
    // discovery, then EHOSTUNREACH after about 3 s), then 127.0.0.1
    hostsBase = '127.0.0.1 localhost\n::1 multi.test\n127.0.0.1 multi.test\nfd00::99 bh.test\n127.0.0.1 bh.test\n';
    fs.writeFileSync(hostsPath, `${hostsBase}127.0.0.1 gone.test\n`);
    fs.writeFileSync(resolvPath, 'nameserver 127.0.0.77\noptions timeout:3 attempts:1\n');
  });
  after(async () => {
    srv?.close();
    dns?.close();
    if (ns && ns.proc.exitCode === null) ns.proc.kill('SIGKILL');
  });

  test('start a gateway whose names this test resolves', { skip: !namespacesWork && 'needs root for a mount namespace' }, async () => {
    const ca = cert.certPath;
    const up = (name, host) => ({ name, targets: [`https://${host}:${srvPort}`], ca_file: ca, max_fails: 100000, connect_timeout: '5s' });
    gw = await startGateway({
      workers: 1,
      upstreams: [up('multi', 'multi.test'), up('gone', 'gone.test'), up('slow', 'slow.test'), up('fail', 'fail.test'),
        { ...up('bh', 'bh.test'), connect_timeout: '2s' }],
      routes: ['multi', 'gone', 'slow', 'fail', 'bh'].map((n) => ({ name: n, path_prefix: `/${n}/`, upstream: n, kind: 'http' })),
    });
    const k = await createTenantKey(gw, 'acme');
    auth = { Authorization: `Bearer ${k.secret}` };
    await gw.stop();
    ns = await startInNamespace(gw, hostsPath, resolvPath);
    await waitFor(async () => (await request(`${gw.url}/gone/warm`, { headers: auth })).status === 200,
      { message: 'the key is loaded and gone.test answers' });
  });

  test('a name whose first address refuses: the next one is tried', { skip: !namespacesWork }, async () => {
    for (let i = 0; i < 3; i++) {
      const r = await request(`${gw.url}/multi/${i}`, { headers: auth });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.text, `multi.test:${srvPort} /multi/${i}`);
    }
  });

  // FINDING 1: the first address of a name takes the whole connect_timeout; when it does
  // not answer (an unreachable IPv6 address listed first is common) the next addresses are
  // never tried and the request fails with 504, where the libcurl path (happy eyeballs:
  // the next address after 200 ms) answered.
  test('a name whose first address does not answer: the next one is tried within connect_timeout', { skip: !namespacesWork, timeout: 10000 }, async () => {
    const r = await request(`${gw.url}/bh/1`, { headers: auth });
    assert.equal(r.status, 200, `${r.status} after ${Math.round(r.ms)} ms: ${r.text}`);
    assert.equal(r.text, `bh.test:${srvPort} /bh/1`);
  });

  test('a name that stops resolving is still served from the cache (within its 30 s)', { skip: !namespacesWork }, async () => {
    fs.writeFileSync(hostsPath, hostsBase);
    const r = await request(`${gw.url}/gone/after`, { headers: auth });
    assert.equal(r.status, 200, r.text);
  });

  test('many requests while the first resolve is pending: all complete', { skip: !namespacesWork, timeout: 15000 }, async () => {
    const q0 = dns.stats.queries;
    const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => request(`${gw.url}/slow/${i}`, { headers: auth })));
    rs.forEach((r, i) => assert.deepEqual([r.status, r.text], [200, `slow.test:${srvPort} /slow/${i}`]));
    // one resolve (A and AAAA) for all of them (libcurl, TOLLGATE_NO_NATIVE_HTTP=1, resolves per transfer)
    if (!process.env.TOLLGATE_NO_NATIVE_HTTP) assert.ok(dns.stats.queries - q0 <= 4, `${dns.stats.queries - q0} DNS queries for 40 requests`);
  });

  test('a resolve that fails fails every queued transfer: 502 and an event each', { skip: !namespacesWork, timeout: 15000 }, async () => {
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => request(`${gw.url}/fail/${i}`, { headers: auth })));
    rs.forEach((r) => assert.equal(r.status, 502, r.text));
    await waitFor(async () => (await sqlite(gw.dbPath, "select count(*) n from usage_events where path like '/fail/%'"))[0].n === 20,
      { message: '20 events' });
    const rows = await sqlite(gw.dbPath, "select distinct status, outcome, reason from usage_events where path like '/fail/%'");
    assert.deepEqual(rows, [{ status: 502, outcome: 'failed', reason: 'upstream_unreachable' }]);
  });

  test('SIGTERM while a resolve is pending and its client has left: clean exit', { skip: !namespacesWork, timeout: 15000 }, async () => {
    const s = net.connect(gw.port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    s.write(`GET /slow/left HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth.Authorization}\r\n\r\n`);
    await new Promise((r) => setTimeout(r, 100)); // the resolve has started (its answer comes 600 ms later)
    s.destroy();
    const res = await ns.stop();
    assert.deepEqual(res, { code: 0, signal: null }, ns.stderr());
  });
});
