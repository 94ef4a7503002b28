// JWT tenants (issue 14): tokens made here with node's crypto (RS256 and ES256 keys generated
// by node, an HS256 secret), verified by the real gateway against a JWKS file and jwt.secret.
// Every attack of the matrix is refused 401 with its own event reason; the happy paths carry
// limits, a budget, the event's auth and subject; the JWKS file is replaced while serving.
//
// Time: "now" is the gateway's, never this process's: the instant `tollgate tenant add`
// stored as the tenant's created_us (the CLI runs under the same TOLLGATE_FAKETIME as serve).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { createTenantKey, request, sqlite, startGateway, startMock, tempDir, waitFor, waitForEvent, waitLoaded } from './lib/harness.mjs';

const ISS = 'https://idp.example.test/pool';
const AUD = 'tollgate-api';
const HS_SECRET = crypto.randomBytes(32).toString('hex');

const b64u = (buf) => Buffer.from(buf).toString('base64url');
const part = (obj) => b64u(typeof obj === 'string' ? obj : JSON.stringify(obj));

function rsaKey(kid) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, alg: 'RS256', privateKey, publicKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' } };
}
function ecKey(kid) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { kid, alg: 'ES256', privateKey, publicKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid } };
}

/** A compact JWS: header and claims as given (strings are taken as raw JSON text). */
function sign(key, header, claims, { der = false } = {}) {
  const h = part(header);
  const c = part(claims);
  const input = Buffer.from(`${h}.${c}`);
  let sig;
  if (key === 'hs') sig = crypto.createHmac('sha256', HS_SECRET).update(input).digest();
  else if (key.hmac) sig = crypto.createHmac('sha256', key.hmac).update(input).digest();
  else if (key.alg === 'ES256') sig = crypto.sign('sha256', input, { key: key.privateKey, dsaEncoding: der ? 'der' : 'ieee-p1363' });
  else sig = crypto.sign('sha256', input, key.privateKey);
  return `${h}.${c}.${b64u(sig)}`;
}

describe('JWT tenants', () => {
  let mock;
  let gw;
  let dir;
  let jwksPath;
  let now; // the gateway's wall clock, seconds
  const rsa = rsaKey('rsa-1');
  const ec = ecKey('ec-1');
  let seq = 0;

  const claims = (tenant, extra = {}) => ({
    iss: ISS,
    aud: AUD,
    sub: `user-${tenant}`,
    'custom:tenant_id': tenant,
    iat: now,
    exp: now + 3600,
    ...extra,
  });

  /** GET path with the token; the answer and its stored event. */
  async function call(token, urlPath = '/free/x') {
    const rid = `jwt-${process.pid}-${++seq}`;
    const headers = { 'x-request-id': rid };
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const r = await request(`${gw.url}${urlPath}`, { headers });
    if (r.status === 431) return { r, ev: null };
    return { r, ev: await waitForEvent(gw, rid) };
  }

  async function refused(token, reason) {
    const { r, ev } = await call(token);
    assert.equal(r.status, 401, `${reason}: ${r.text}`);
    assert.equal(ev.reason, reason);
    assert.equal(ev.auth, 'jwt');
    return ev;
  }

  before(async () => {
    mock = await startMock();
    dir = await tempDir('tollgate-jwt-');
    jwksPath = path.join(dir, 'jwks.json');
    fs.writeFileSync(jwksPath, JSON.stringify({ keys: [rsa.jwk, ec.jwk] }));
    gw = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [
        { name: 'free', path_prefix: '/free/', upstream: 'mock' },
        { name: 'paid', path_prefix: '/paid/', upstream: 'mock' },
        { name: 'keyonly', path_prefix: '/keyonly/', upstream: 'mock', auth: ['api_key'] },
      ],
      extra: {
        auth: ['api_key', 'jwt'],
        jwt: {
          issuer: ISS,
          audience: AUD,
          tenant_claim: 'custom:tenant_id',
          key_claim: 'custom:key_id',
          algorithms: ['RS256', 'ES256', 'HS256'],
          jwks_file: jwksPath,
          secret: '${JWT_SECRET}',
          leeway: '30s',
        },
        prices: { routes: { paid: { request: '0.01' } } },
      },
      env: { JWT_SECRET: HS_SECRET },
    });
    for (const t of ['acme', 'limited', 'budgeted', 'off']) {
      const r = await gw.cli(['tenant', 'add', t]);
      assert.equal(r.code, 0, r.stderr);
    }
    const rows = await sqlite(gw.dbPath, "SELECT created_us FROM tenants WHERE id = 'acme'");
    now = Math.floor(Number(rows[0].created_us) / 1e6);
    assert.equal((await gw.cli(['tenant', 'disable', 'off'])).code, 0);
    assert.equal((await gw.cli(['limit', 'set', '--tenant', 'limited', '--rpm', '2'])).code, 0);
    assert.equal((await gw.cli(['budget', 'set', '--tenant', 'budgeted', '--monthly', '0.02'])).code, 0);
    await waitLoaded(gw);
  });

  after(async () => {
    await gw?.stop();
    await mock?.stop?.();
  });

  test('RS256, ES256 and HS256 tokens authenticate; the event records auth jwt and the sub', async () => {
    for (const [key, kid] of [[rsa, 'rsa-1'], [ec, 'ec-1'], ['hs', undefined]]) {
      const alg = key === 'hs' ? 'HS256' : key.alg;
      const hdr = kid ? { alg, typ: 'JWT', kid } : { alg, typ: 'JWT' };
      const { r, ev } = await call(sign(key, hdr, claims('acme', { sub: `sub-${alg}` })));
      assert.equal(r.status, 200, `${alg}: ${r.text}`);
      assert.equal(ev.tenant, 'acme');
      assert.equal(ev.auth, 'jwt');
      assert.equal(ev.subject, `sub-${alg}`);
      assert.equal(ev.key_id ?? '', '');
      assert.equal(ev.outcome, 'billable');
    }
    // An API key still works beside them, and says so.
    const k = await createTenantKey(gw, 'keyed');
    await waitLoaded(gw);
    const { r, ev } = await call(k.secret, '/keyonly/x');
    assert.equal(r.status, 200);
    assert.equal(ev.auth, 'api_key');
    assert.equal(ev.subject ?? '', '');
    // A route with auth: [api_key] does not take a JWT at all.
    const j = await call(sign(rsa, { alg: 'RS256', kid: 'rsa-1' }, claims('acme')), '/keyonly/x');
    assert.equal(j.r.status, 401);
    assert.equal(j.ev.reason, 'unknown_key');
  });

  test('the JWT is not forwarded upstream', async () => {
    const token = sign(rsa, { alg: 'RS256', kid: 'rsa-1' }, claims('acme'));
    const r = await request(`${gw.url}/free/x?echo=1`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200);
    const echoed = r.json();
    const names = Object.keys(echoed.headers ?? {}).map((n) => n.toLowerCase());
    assert.ok(names.length > 0, r.text);
    assert.ok(!names.includes('authorization'), r.text);
    assert.ok(!r.text.includes(token.split('.')[2]), 'the signature reached the upstream');
    assert.equal(echoed.headers['x-tollgate-tenant'] ?? echoed.headers['X-Tollgate-Tenant'], 'acme');
  });

  test('a rate limit and a budget apply to JWT tenants as to keys', async () => {
    const lim = sign(ec, { alg: 'ES256', kid: 'ec-1' }, claims('limited'));
    const st = [];
    for (let i = 0; i < 3; i++) st.push((await call(lim)).r.status);
    assert.deepEqual(st, [200, 200, 429]);
    const bud = sign('hs', { alg: 'HS256' }, claims('budgeted'));
    const sb = [];
    for (let i = 0; i < 3; i++) sb.push((await call(bud, '/paid/x')).r.status);
    assert.deepEqual(sb, [200, 200, 402]);
    const rows = await sqlite(gw.dbPath, "SELECT sum(cost_micros) AS c FROM usage_events WHERE tenant = 'budgeted' AND outcome = 'billable'");
    assert.equal(Number(rows[0].c), 20000);
  });

  test('key_claim names a key of the tenant whose limits apply', async () => {
    const k = await createTenantKey(gw, 'perkey');
    assert.equal((await gw.cli(['limit', 'set', '--tenant', 'perkey', '--key', k.keyId, '--rpm', '1'])).code, 0);
    const other = await createTenantKey(gw, 'otherco');
    await waitLoaded(gw);
    const tok = sign(rsa, { alg: 'RS256', kid: 'rsa-1' }, claims('perkey', { 'custom:key_id': k.keyId }));
    const a = await call(tok);
    assert.equal(a.r.status, 200);
    assert.equal(a.ev.key_id, k.keyId);
    assert.equal((await call(tok)).r.status, 429);
    // Without the claim the tenant's own (absent) limits apply: key_id is empty.
    const plain = await call(sign(rsa, { alg: 'RS256', kid: 'rsa-1' }, claims('perkey')));
    assert.equal(plain.r.status, 200);
    // Another tenant's key is refused.
    await refusedWith(sign(rsa, { alg: 'RS256', kid: 'rsa-1' }, claims('perkey', { 'custom:key_id': other.keyId })), 'jwt_unknown_key');
  });

  async function refusedWith(token, reason) {
    const { r, ev } = await call(token);
    assert.equal(r.status, 401);
    assert.equal(ev.reason, reason);
  }

  test('attack matrix: each refused 401 with its own reason', async () => {
    const good = claims('acme');
    const rs = { alg: 'RS256', typ: 'JWT', kid: 'rsa-1' };
    // alg none, unsigned (and with any case).
    await refused(`${part({ alg: 'none', typ: 'JWT' })}.${part(good)}.`, 'jwt_alg_none');
    await refused(`${part({ alg: 'NoNe', kid: 'rsa-1' })}.${part(good)}.`, 'jwt_alg_none');
    // RS256 -> HS256 confusion: the public key's PEM as the HMAC secret, with and without kid.
    const pem = rsa.publicKey.export({ type: 'spki', format: 'pem' });
    await refused(sign({ hmac: pem }, { alg: 'HS256', kid: 'rsa-1' }, good), 'jwt_alg_mismatch');
    await refused(sign({ hmac: pem }, { alg: 'HS256' }, good), 'jwt_bad_signature');
    // A kid that is a path or SQL is only ever compared: unknown.
    await refused(sign(rsa, { ...rs, kid: '../../../../etc/passwd' }, good), 'jwt_unknown_kid');
    await refused(sign(rsa, { ...rs, kid: "x' OR '1'='1" }, good), 'jwt_unknown_kid');
    // Expired, not yet valid, issued in the future (beyond the 30 s leeway).
    await refused(sign(rsa, rs, { ...good, exp: now - 120, iat: now - 3600 }), 'jwt_expired');
    await refused(sign(rsa, rs, { ...good, nbf: now + 600 }), 'jwt_not_yet_valid');
    await refused(sign(rsa, rs, { ...good, iat: now + 600 }), 'jwt_iat_future');
    // Inside the leeway is fine.
    assert.equal((await call(sign(rsa, rs, { ...good, exp: now - 10 }))).r.status, 200);
    // Wrong issuer, wrong audience (string and array).
    await refused(sign(rsa, rs, { ...good, iss: 'https://evil.example' }), 'jwt_bad_issuer');
    await refused(sign(rsa, rs, { ...good, aud: 'other-api' }), 'jwt_bad_audience');
    await refused(sign(rsa, rs, { ...good, aud: ['a', 'b'] }), 'jwt_bad_audience');
    assert.equal((await call(sign(rsa, rs, { ...good, aud: ['a', AUD] }))).r.status, 200);
    // Disabled and unknown tenants.
    const off = await refused(sign(rsa, rs, claims('off')), 'tenant_disabled');
    assert.equal(off.tenant, 'off');
    const ghost = await refused(sign(rsa, rs, claims('ghost')), 'jwt_unknown_tenant');
    assert.equal(ghost.tenant ?? '', '');
    await refused(sign(rsa, rs, { ...good, 'custom:tenant_id': 'a/b' }), 'jwt_no_tenant');
    // Signature stripped, truncated, or of another token.
    const tok = sign(rsa, rs, good);
    const [h, c, s] = tok.split('.');
    await refused(`${h}.${c}.`, 'jwt_no_signature');
    await refused(`${h}.${c}.${b64u(Buffer.from(s, 'base64url').subarray(0, 200))}`, 'jwt_signature_length');
    await refused(`${h}.${c}.${s.slice(0, -1)}`, 'jwt_malformed'); // a cut base64url character
    const other = sign(rsa, rs, claims('acme', { sub: 'other' })).split('.')[2];
    await refused(`${h}.${c}.${other}`, 'jwt_bad_signature');
    // A claim changed after signing.
    await refused(`${h}.${part({ ...good, 'custom:tenant_id': 'limited' })}.${s}`, 'jwt_bad_signature');
    // A duplicated claim (signed properly), and a duplicated header member.
    const dup = JSON.stringify(good).replace(/}$/, ',"custom:tenant_id":"limited"}');
    await refused(sign(rsa, rs, dup), 'jwt_duplicate_member');
    await refused(sign(rsa, '{"alg":"RS256","kid":"rsa-1","kid":"ec-1"}', good), 'jwt_duplicate_member');
    // Malformed base64url, not JSON, two parts, four parts.
    await refused(`${h}!!.${c}.${s}`, 'jwt_malformed');
    await refused(`${h}.${c}.${s.slice(0, 100)}*${s.slice(101)}`, 'jwt_malformed');
    // Claims are read only once the signature verified: bad base64url there is a bad signature.
    await refused(`${h}.${c}!!.${s}`, 'jwt_bad_signature');
    await refused(`${h}=.${c}.${s}`, 'jwt_malformed');
    await refused(`${b64u('not json')}.${c}.${s}`, 'jwt_malformed');
    await refusedWith(`${h}.${c}.${s}.x`, 'unknown_key'); // three dots: not a JWT, an unknown key
    // ES256 with a DER signature instead of r||s.
    await refused(sign(ec, { alg: 'ES256', kid: 'ec-1' }, good, { der: true }), 'jwt_signature_length');
    // The EC key presented as RS256, and an alg tollgate does not take.
    await refused(sign(rsa, { alg: 'RS256', kid: 'ec-1' }, good), 'jwt_alg_mismatch');
    await refused(sign(rsa, { alg: 'PS256', kid: 'rsa-1' }, good), 'jwt_alg_not_allowed');
    // A token with crit, and one without exp.
    await refused(sign(rsa, { ...rs, crit: ['exp'] }, good), 'jwt_crit_unsupported');
    const { exp, ...noExp } = good;
    assert.ok(exp);
    await refused(sign(rsa, rs, noExp), 'jwt_bad_claim');
  });

  test('a huge token (over server.max_header_bytes) is 431, one over the token cap 401', async () => {
    const big = sign(rsa, { alg: 'RS256', kid: 'rsa-1' }, claims('acme', { pad: 'x'.repeat(20000) }));
    const { r } = await call(big);
    assert.equal(r.status, 431);
    const mid = sign(rsa, { alg: 'RS256', kid: 'rsa-1' }, claims('acme', { pad: 'x'.repeat(9000) }));
    await refused(mid, 'jwt_too_large');
  });

  // The verified-token cache (auth/jwtcache.h): the same bytes again are accepted without a
  // second verification, and are still refused at once when their tenant is disabled, or
  // (in the next test) when their key leaves the JWKS.
  let remembered; // an RS256 token of rsa-1, accepted (so cached on the worker that took it)
  test('a token presented again is accepted; its tenant disabled refuses it at once', async () => {
    remembered = sign(rsa, { alg: 'RS256', kid: 'rsa-1' }, claims('cached', { sub: 'again' }));
    assert.equal((await gw.cli(['tenant', 'add', 'cached'])).code, 0);
    await waitFor(async () => (await call(remembered)).r.status === 200, { timeoutMs: 5000, message: 'the new tenant known' });
    for (let i = 0; i < 3; i++) {
      const { r, ev } = await call(remembered);
      assert.equal(r.status, 200);
      assert.equal(ev.tenant, 'cached');
      assert.equal(ev.subject, 'again');
    }
    assert.equal((await gw.cli(['tenant', 'disable', 'cached'])).code, 0);
    await waitFor(async () => (await call(remembered)).r.status === 401, { timeoutMs: 5000, message: 'the disabled tenant refused' });
    await refused(remembered, 'tenant_disabled');
    assert.equal((await gw.cli(['tenant', 'enable', 'cached'])).code, 0);
    await waitFor(async () => (await call(remembered)).r.status === 200, { timeoutMs: 5000, message: 'enabled again' });
  });

  test('the JWKS file replaced while serving: a new kid works, a removed kid is refused', async () => {
    const rsa2 = rsaKey('rsa-2');
    const before2 = await call(sign(rsa2, { alg: 'RS256', kid: 'rsa-2' }, claims('acme')));
    assert.equal(before2.r.status, 401);
    assert.equal(before2.ev.reason, 'jwt_unknown_kid');
    const tmp = `${jwksPath}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ keys: [rsa2.jwk, ec.jwk] }));
    fs.renameSync(tmp, jwksPath);
    await waitFor(async () => (await call(sign(rsa2, { alg: 'RS256', kid: 'rsa-2' }, claims('acme')))).r.status === 200, {
      timeoutMs: 5000,
      intervalMs: 200,
      message: 'the new kid accepted',
    });
    await refused(sign(rsa, { alg: 'RS256', kid: 'rsa-1' }, claims('acme')), 'jwt_unknown_kid');
    // The same bytes as a token accepted (and remembered) before the key left: refused too.
    await refused(remembered, 'jwt_unknown_kid');
    // A broken file keeps the keys in use.
    fs.writeFileSync(tmp, '{"keys": [');
    fs.renameSync(tmp, jwksPath);
    // The file is looked at when a JWT comes (at most once a second): keep asking.
    await waitFor(
      async () => {
        await call(sign(rsa2, { alg: 'RS256', kid: 'rsa-2' }, claims('acme')));
        return /jwt: keys kept as they were/.test(gw.stderr() + gw.stdout());
      },
      { timeoutMs: 5000, intervalMs: 200, message: 'the refusal logged' },
    );
    assert.equal((await call(sign(rsa2, { alg: 'RS256', kid: 'rsa-2' }, claims('acme')))).r.status, 200);
  });
});

describe('JWT config errors', () => {
  test('jwt listed without a jwt section, and a bad algorithm, name the file and line', async () => {
    const dir = await tempDir('tollgate-jwtcfg-');
    const bin = (await import('./lib/harness.mjs')).bin;
    const { run } = await import('./lib/harness.mjs');
    const cases = [
      ['auth: [api_key, jwt]\n', /tollgate.yaml:1: jwt: required key is missing/],
      ['auth: [api_key, jwt]\njwt: { issuer: x, secret: short }\n', /tollgate.yaml:2: jwt.secret: must be 32 to/],
      ['auth: [api_key, jwt]\njwt: { issuer: x, jwks_file: /nonexistent, algorithms: [RS256, HS256] }\n', /jwt.algorithms: HS256 needs jwt.secret/],
      ['auth: [api_key, oauth]\n', /tollgate.yaml:1: auth\[1\]: unknown auth method "oauth"/],
    ];
    for (const [text, want] of cases) {
      const p = path.join(dir, 'tollgate.yaml');
      fs.writeFileSync(p, text);
      const r = await run(bin, ['-c', p, 'serve'], { cwd: dir });
      assert.equal(r.code, 2, `${text}: ${r.stderr}`);
      assert.match(r.stderr, want);
    }
  });
});
