// Signed requests (docs/signing.md): a small signing client below computes the canonical
// string and HMAC-SHA256 the way the docs tell a client to, and the gateway must accept
// exactly those requests. Refusals, each with its own event reason: missing headers,
// malformed ones, a tampered method, path, query or body, a timestamp outside the window
// on either side, a replay, a key without a signing secret, a tenant that must always sign.
// The signature headers never reach the upstream. "Now" is the gateway's own clock (the
// instant it recorded for a request), never this process's, so the file passes under
// make check's faketime runs too.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { createTenantKey, raw, request, sqlite, startGateway, startMock, waitForEvent, waitForKey } from './lib/harness.mjs';

/** The canonical string of docs/signing.md. */
function canonical(method, target, ts, body) {
  const q = target.indexOf('?');
  const p = q < 0 ? target : target.slice(0, q);
  // By name and '=' in byte order, one name's values as sent (Array#sort is stable).
  const name = (s) => Buffer.from(`${s.split('=', 1)[0]}=`);
  const query = q < 0 ? '' : target.slice(q + 1).split('&').filter((s) => s !== '').sort((a, b) => Buffer.compare(name(a), name(b))).join('&');
  const hash = crypto.createHash('sha256').update(body ?? '').digest('hex');
  return `${method}\n${p}\n${query}\n${ts}\n${hash}`;
}

/** The two headers for a request, signed with secret at Unix second ts. */
function sign(secret, method, target, ts, body) {
  const mac = crypto.createHmac('sha256', secret).update(canonical(method, target, ts, body)).digest('hex');
  return { 'X-Tollgate-Timestamp': String(ts), 'X-Tollgate-Signature': `v1=${mac}` };
}

let mock;
let gw;
let signer; // { secret, signing, keyId }
let plain; // a key without a signing secret
let strict; // a tenant in signing.required_tenants, with a signing key
let seq = 0;

/** The gateway's clock, in Unix seconds: the instant it recorded for a request of ours. */
async function gatewayNow() {
  const id = `now-${++seq}`;
  await request(`${gw.url}/nothing-routes-here`, { headers: { 'x-request-id': id } });
  return Math.floor(Number((await waitForEvent(gw, id)).ts_us) / 1e6);
}

async function signingKey(tenant) {
  assert.equal((await gw.cli(['tenant', 'add', tenant])).code, 0);
  const k = await gw.cli(['key', 'create', '--tenant', tenant, '--signing']);
  assert.equal(k.code, 0, k.stderr);
  const secret = /^secret: (tg_\S+)$/m.exec(k.stdout)[1];
  const signing = /^signing_secret: (tgs_\S+)$/m.exec(k.stdout)[1];
  const keyId = /^key_id: (key_\S+)$/m.exec(k.stdout)[1];
  return { secret, signing, keyId };
}

/** Sends one request (signed with extra headers given) and returns the answer and its event. */
async function send(key, method, target, { headers = {}, body } = {}) {
  const id = `sig-${++seq}`;
  const r = await request(`${gw.url}${target}`, {
    method,
    headers: { authorization: `Bearer ${key}`, 'x-request-id': id, ...headers },
    body,
  });
  const ev = await waitForEvent(gw, id);
  return { status: r.status, body: r.text, ev, r };
}

before(async () => {
  mock = await startMock();
  const dir = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'tg-kek-'));
  const kekFile = path.join(dir, 'kek');
  fs.writeFileSync(kekFile, `${crypto.randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  gw = await startGateway({
    upstreams: [{ name: 'mock', targets: [mock.url] }],
    routes: [
      { name: 'signed', path_prefix: '/signed/', upstream: 'mock', signed: 'required' },
      { name: 'opt', path_prefix: '/opt/', upstream: 'mock', signed: 'optional' },
      { name: 'ai', path_prefix: '/v1/', upstream: 'mock', kind: 'openai', signed: 'required' },
      { name: 'plain', path_prefix: '/plain/', upstream: 'mock' },
    ],
    extra: { encryption: { kek_file: kekFile }, signing: { window: '300s', required_tenants: ['strict'] }, server: { max_body: '64k' } },
  });
  signer = await signingKey('acme');
  strict = await signingKey('strict');
  ({ secret: plain } = await createTenantKey(gw, 'nosign'));
  await waitForKey(gw, plain, '/plain/x');
  fs.rmSync(dir, { recursive: true, force: true }); // the gateway read it at start
});
after(async () => {
  await gw?.stop();
  await mock?.stop();
});

describe('signed requests', () => {
  test('a signed GET and POST pass; the signature headers do not reach the upstream', async () => {
    const now = await gatewayNow();
    const t = '/signed/items?echo=1&b=2&a=1&a=0';
    let r = await send(signer.secret, 'GET', t, { headers: sign(signer.signing, 'GET', t, now) });
    assert.equal(r.status, 200, r.body);
    const echoed = JSON.parse(r.body);
    const names = JSON.stringify(echoed.headers).toLowerCase();
    assert.ok(!names.includes('x-tollgate-signature') && !names.includes('x-tollgate-timestamp'), names);
    assert.equal(r.ev.key_id, signer.keyId);
    const body = JSON.stringify({ hello: 'world', n: [1, 2, 3] });
    r = await send(signer.secret, 'POST', '/signed/p?echo=1', {
      headers: { 'content-type': 'application/json', ...sign(signer.signing, 'POST', '/signed/p?echo=1', now, body) },
      body,
    });
    assert.equal(r.status, 200, r.body);
    assert.equal(JSON.parse(r.body).body_sha256, crypto.createHash('sha256').update(body).digest('hex'));
    // A chunked body is read whole and checked the same way.
    r = await send(signer.secret, 'PUT', '/signed/c?echo=1', {
      headers: sign(signer.signing, 'PUT', '/signed/c?echo=1', now, 'part1part2'),
      body: ['part1', 'part2'],
    });
    assert.equal(r.status, 200, r.body);
    assert.equal(JSON.parse(r.body).body_bytes, 10);
  });

  test('an AI route: the body the signature covers is the one sent', async () => {
    const now = await gatewayNow();
    const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    const t = '/v1/chat/completions';
    let r = await send(signer.secret, 'POST', t, { headers: { 'content-type': 'application/json', ...sign(signer.signing, 'POST', t, now, body) }, body });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.ev.model, 'gpt-4o-mini');
    r = await send(signer.secret, 'POST', t, { headers: { 'content-type': 'application/json', ...sign(signer.signing, 'POST', t, now, body) }, body: body.replace('hi', 'ho') });
    assert.equal(r.status, 401);
    assert.equal(r.ev.reason, 'signature_invalid');
    assert.equal(r.ev.tokens_in, null); // never forwarded, nothing metered
  });

  test('replay, skew on both sides, and the edges of the window', async () => {
    const now = await gatewayNow();
    const t = '/signed/r';
    const h = sign(signer.signing, 'GET', t, now);
    assert.equal((await send(signer.secret, 'GET', t, { headers: h })).status, 200);
    let r = await send(signer.secret, 'GET', t, { headers: h });
    assert.equal(r.status, 401);
    assert.equal(r.ev.reason, 'signature_replayed');
    // Over another connection and with the key in x-api-key instead: still the same signature.
    r = await raw(gw.port, `GET ${t} HTTP/1.1\r\nHost: x\r\nx-api-key: ${signer.secret}\r\nX-Tollgate-Timestamp: ${now}\r\nX-Tollgate-Signature: ${h['X-Tollgate-Signature']}\r\nConnection: close\r\n\r\n`);
    assert.match(r.data, /^HTTP\/1\.1 401 /);
    for (const [ts, want] of [[now - 400, 'signature_expired'], [now + 400, 'signature_expired'], [now - 10, null], [now + 10, null]]) {
      r = await send(signer.secret, 'GET', `${t}?ts=${ts}`, { headers: sign(signer.signing, 'GET', `${t}?ts=${ts}`, ts) });
      if (want) {
        assert.equal(r.status, 401, `ts ${ts - now}`);
        assert.equal(r.ev.reason, want);
        assert.equal(r.ev.key_id, signer.keyId); // the event names the key
      } else {
        assert.equal(r.status, 200, `ts ${ts - now}: ${r.body}`);
      }
    }
  });

  test('tampered method, path, query, body or timestamp: signature_invalid', async () => {
    const now = await gatewayNow();
    const body = '{"a":1}';
    const h = sign(signer.signing, 'POST', '/signed/t?x=1&y=2', now, body);
    const cases = [
      ['PUT', '/signed/t?x=1&y=2', body, h],
      ['POST', '/signed/u?x=1&y=2', body, h],
      ['POST', '/signed/t?x=1&y=3', body, h],
      ['POST', '/signed/t?x=1&y=2&z', body, h],
      ['POST', '/signed/t?x=1', body, h],
      ['POST', '/signed/t?x=1&y=2', '{"a":2}', h],
      ['POST', '/signed/t?x=1&y=2', '', h],
      ['POST', '/signed/t?x=1&y=2', body, { ...h, 'X-Tollgate-Timestamp': String(now + 1) }],
      ['POST', '/signed/t?x=1&y=2', body, sign('tgs_not-the-secret', 'POST', '/signed/t?x=1&y=2', now, body)],
    ];
    for (const [m, t, b, hh] of cases) {
      const r = await send(signer.secret, m, t, { headers: hh, body: b });
      assert.equal(r.status, 401, `${m} ${t} ${b}`);
      assert.equal(r.ev.reason, 'signature_invalid', `${m} ${t} ${b}`);
      assert.match(JSON.parse(r.body).error.type, /unauthorized/);
    }
    // Reordered query parameters are the same request (sorted), as documented.
    const r = await send(signer.secret, 'POST', '/signed/t?y=2&x=1', { headers: h, body });
    assert.equal(r.status, 200, r.body);
    // But not a repeated parameter's values swapped: an upstream reading the first "a"
    // would see another request (attack14).
    const h2 = sign(signer.signing, 'POST', '/signed/t?a=1&a=2', now, body);
    const sw = await send(signer.secret, 'POST', '/signed/t?a=2&a=1', { headers: h2, body });
    assert.equal(sw.status, 401, sw.body);
    assert.equal(sw.ev.reason, 'signature_invalid');
    const ok = await send(signer.secret, 'POST', '/signed/t?a=1&a=2', { headers: h2, body });
    assert.equal(ok.status, 200, ok.body);
  });

  test('missing and malformed headers, and a key without a signing secret', async () => {
    const now = await gatewayNow();
    let r = await send(signer.secret, 'GET', '/signed/m');
    assert.equal(r.status, 401);
    assert.equal(r.ev.reason, 'signature_missing');
    const h = sign(signer.signing, 'GET', '/signed/m', now);
    r = await send(signer.secret, 'GET', '/signed/m', { headers: { 'X-Tollgate-Signature': h['X-Tollgate-Signature'] } });
    assert.equal(r.ev.reason, 'signature_missing');
    for (const bad of [{ ...h, 'X-Tollgate-Signature': h['X-Tollgate-Signature'].replace('v1=', 'v0=') }, { ...h, 'X-Tollgate-Timestamp': `${now}.5` }, { ...h, 'X-Tollgate-Signature': 'v1=abc' }]) {
      r = await send(signer.secret, 'GET', '/signed/m', { headers: bad });
      assert.equal(r.status, 401);
      assert.equal(r.ev.reason, 'signature_malformed');
    }
    r = await send(plain, 'GET', '/signed/m', { headers: sign('anything', 'GET', '/signed/m', now) });
    assert.equal(r.status, 401);
    assert.equal(r.ev.reason, 'signature_no_secret');
    // The signature does not replace the key: no key, no entry.
    const id = `sig-${++seq}`;
    const nk = await request(`${gw.url}/signed/m`, { headers: { 'x-request-id': id, ...h } });
    assert.equal(nk.status, 401);
    assert.equal((await waitForEvent(gw, id)).reason, 'missing_key');
  });

  test('optional routes check a signature only when one is sent; off routes never', async () => {
    const now = await gatewayNow();
    assert.equal((await send(signer.secret, 'GET', '/opt/a')).status, 200);
    assert.equal((await send(plain, 'GET', '/opt/a')).status, 200);
    let r = await send(signer.secret, 'GET', '/opt/a', { headers: sign(signer.signing, 'GET', '/opt/b', now) });
    assert.equal(r.status, 401);
    assert.equal(r.ev.reason, 'signature_invalid');
    r = await send(signer.secret, 'GET', '/opt/a', { headers: sign(signer.signing, 'GET', '/opt/a', now) });
    assert.equal(r.status, 200);
    r = await send(signer.secret, 'GET', '/plain/a?echo=1', { headers: { 'X-Tollgate-Signature': 'v1=garbage', 'X-Tollgate-Timestamp': '1' } });
    assert.equal(r.status, 200);
    assert.ok(!JSON.stringify(JSON.parse(r.body).headers).toLowerCase().includes('x-tollgate-signature'));
  });

  test('a tenant in signing.required_tenants signs on every route', async () => {
    const now = await gatewayNow();
    let r = await send(strict.secret, 'GET', '/plain/s');
    assert.equal(r.status, 401);
    assert.equal(r.ev.reason, 'signature_missing');
    r = await send(strict.secret, 'GET', '/plain/s', { headers: sign(strict.signing, 'GET', '/plain/s', now) });
    assert.equal(r.status, 200, r.body);
    // Another key's signing secret does not sign for this one.
    r = await send(strict.secret, 'GET', '/plain/s2', { headers: sign(signer.signing, 'GET', '/plain/s2', now) });
    assert.equal(r.ev.reason, 'signature_invalid');
  });

  test('a streamed body over max_body cannot be checked: 413, never forwarded', async () => {
    const now = await gatewayNow();
    const big = 'x'.repeat(40000);
    const r = await raw(
      gw.port,
      `POST /signed/big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${signer.secret}\r\nx-request-id: sig-big\r\n` +
        `X-Tollgate-Timestamp: ${now}\r\nX-Tollgate-Signature: v1=${'0'.repeat(64)}\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `9c40\r\n${big}\r\n9c40\r\n${big}\r\n0\r\n\r\n`,
    );
    assert.match(r.data, /^HTTP\/1\.1 413 /);
    const ev = await waitForEvent(gw, 'sig-big');
    assert.equal(ev.reason, 'body_too_large');
  });

  test('the signing secret is stored sealed, never in the clear', async () => {
    const rows = await sqlite(gw.dbPath, `SELECT hex(signing_secret) AS s FROM api_keys WHERE id = '${signer.keyId}'`).catch(() => null);
    if (rows) {
      // SQLite: the blob is there, and the secret's bytes are not in it.
      assert.equal(rows[0].s.length, 2 * 147);
      assert.ok(!rows[0].s.includes(Buffer.from(signer.signing).toString('hex').toUpperCase()));
    }
    const list = await gw.cli(['key', 'list', '--tenant', 'acme']);
    assert.ok(!list.stdout.includes(signer.signing) && !list.stdout.includes('tgs_'));
    assert.ok(!gw.stderr().includes(signer.signing) && !gw.stdout().includes(signer.signing));
  });
});
