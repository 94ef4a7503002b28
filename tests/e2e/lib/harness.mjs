// End-to-end harness: starts the real build/tollgate and build/mock-upstream on loopback
// ports with generated configs, and talks to them with real clients (curl, node:http, raw
// sockets, the sqlite3 CLI). Node built-ins only, so `node --test tests/e2e/` needs no npm.
//
// Every process started here is SIGKILLed when the test process exits, even after a failed
// assertion, and every temp dir is removed then unless KEEP_TMP=1 (the paths are printed).

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const here = import.meta.dirname ?? path.dirname(decodeURIComponent(new URL(import.meta.url).pathname));

/** Absolute path of the repository root. */
export const repoRoot = path.resolve(here, '..', '..', '..');
/** Absolute path of the gateway binary: build/tollgate, or $TOLLGATE_BIN (e.g. a sanitizer build). */
export const bin = path.resolve(repoRoot, process.env.TOLLGATE_BIN || path.join('build', 'tollgate'));
/** Absolute path of the mock upstream: build/mock-upstream, or $MOCK_UPSTREAM_BIN. */
export const mockBin = path.resolve(repoRoot, process.env.MOCK_UPSTREAM_BIN || path.join('build', 'mock-upstream'));

const KEEP_TMP = process.env.KEEP_TMP === '1';

/**
 * With TOLLGATE_FAKETIME="YYYY-MM-DD hh:mm:ss" (make check's faketime runs), every tollgate
 * process the harness starts (serve and the CLI) sees that wall-clock instant, frozen, through
 * Debian's libfaketime; its monotonic clock stays real, so timers and timeouts work. The test
 * process itself keeps the real date: a test that compared its own month or day with the
 * gateway's would fail here, which is the point (tests take dates from what tollgate recorded).
 */
const FAKETIME = process.env.TOLLGATE_FAKETIME;
const clockEnv = FAKETIME
  ? {
      LD_PRELOAD: process.env.TOLLGATE_FAKETIME_LIB || '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1',
      FAKETIME,
      FAKETIME_DONT_FAKE_MONOTONIC: '1',
    }
  : {};
const children = new Set(); // live ChildProcess objects
const tmpDirs = new Set();

function cleanup() {
  for (const child of children) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
  for (const dir of tmpDirs) {
    if (KEEP_TMP) {
      process.stderr.write(`KEEP_TMP: kept ${dir}\n`);
    } else {
      try {
        fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        // best effort
      }
    }
  }
  tmpDirs.clear();
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    cleanup();
    process.exit(128 + os.constants.signals[sig]);
  });
}

/** Tracks a child: it is SIGKILLed on process exit if still running. */
function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  child.once('error', () => children.delete(child));
  return child;
}

/** A server left running (a forgotten stop()) must not keep the test process alive: the
 * exit handler kills it instead. Waiting for it (ready line, stop()) uses ref'd timers. */
function detachFromLoop(child) {
  child.unref();
  child.stdout?.unref?.();
  child.stderr?.unref?.();
  return child;
}

/** Resolves with {code, signal} once the child has exited (at once if it already has). */
function exited(child) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

function requireBinary(file) {
  if (!fs.existsSync(file)) {
    throw new Error(`${file} not found: run \`make\` first (or make ${path.relative(repoRoot, file)})`);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs a program to completion.
 * @param {string} file
 * @param {string[]} args
 * @param {{env?: object, cwd?: string, input?: string|Buffer, timeoutMs?: number}} [opts]
 * @returns {Promise<{code: number|null, signal: string|null, stdout: string, stderr: string}>}
 */
export function run(file, args, { env, cwd, input, timeoutMs = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = track(
      spawn(file, args, {
        cwd,
        env: { ...process.env, ...(file === bin ? clockEnv : {}), ...env },
        stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      }),
    );
    const out = [];
    const err = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    if (input !== undefined) {
      child.stdin.on('error', () => {}); // the program may exit without reading it all
      child.stdin.end(input);
    }
  });
}

const handedOut = new Set();

/**
 * A loopback TCP port that refuses connections for the whole run: 1 (tcpmux), privileged,
 * never one freePort() hands out and listened on by nothing in the suite. A port that
 * freePort() found free can be taken by another file's gateway or mock (the files run
 * three at a time) before the test connects, and the "dead" upstream then answers 200.
 */
export const refusedPort = 1;

/**
 * A loopback TCP port that was free a moment ago. Never returns the same port twice in one
 * test process, so two calls in a row give two different ports.
 * @returns {Promise<number>}
 */
export async function freePort() {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const { port } = srv.address();
        srv.close(() => resolve(port));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: no fresh port after 50 tries');
}

/**
 * Polls fn until it returns a truthy value (which is returned) or timeoutMs passes.
 * @template T
 * @param {() => T|Promise<T>} fn
 * @param {{timeoutMs?: number, intervalMs?: number, message?: string}} [opts]
 * @returns {Promise<T>}
 */
export async function waitFor(fn, { timeoutMs = 5000, intervalMs = 50, message = 'condition' } = {}) {
  const deadline = performance.now() + timeoutMs; // elapsed time, not the date
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (performance.now() >= deadline) {
      throw new Error(`waitFor: ${message} not met within ${timeoutMs} ms${last ? `: ${last.message}` : ''}`);
    }
    await sleep(intervalMs);
  }
}

/** 0 when MOCK_COMPRESS=off: the mock then answers uncompressed unless a test forces a coding. */
export const mockCompresses = process.env.MOCK_COMPRESS !== 'off';

/**
 * Starts build/mock-upstream on an ephemeral loopback port and waits for its ready line. The
 * mock compresses AI JSON answers as the request's Accept-Encoding allows, like the providers'
 * edges, unless compress is false (default: off when MOCK_COMPRESS=off is in the environment).
 * With credentials (a list of Authorization values), any request carrying another answers 401.
 * @param {{threads?: number, compress?: boolean, credentials?: string[]}} [opts]
 * @returns {Promise<{port: number, url: string, proc: import('node:child_process').ChildProcess,
 *   stdout: () => string, stderr: () => string,
 *   stop: () => Promise<{code: number|null, signal: string|null}>}>}
 *   stop() sends SIGTERM and resolves when the process has exited (SIGKILL after 5 s).
 */
export async function startMock({ threads = 1, compress = mockCompresses, credentials = null } = {}) {
  requireBinary(mockBin);
  const args = ['--listen', '127.0.0.1:0', '--threads', String(threads)];
  if (!compress) args.push('--no-compress');
  if (credentials) {
    // The mock answers 401 unless the Authorization value is one of these (x-mock-credential:
    // its 1-based index here on a match).
    const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'tollgate-mock-'));
    tmpDirs.add(dir);
    const file = path.join(dir, 'accepted');
    await fs.promises.writeFile(file, credentials.map((c) => `${c}\n`).join(''), { mode: 0o600 });
    args.push('--accept-credentials', file);
  }
  const proc = detachFromLoop(
    track(
      spawn(mockBin, args, {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    ),
  );
  let stdout = '';
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`mock-upstream not ready within 10 s; stderr:\n${stderr}`));
    }, 10000);
    proc.stdout.on('data', (d) => {
      stdout += d;
      const m = /mock-upstream listening on 127\.0\.0\.1:(\d+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`mock-upstream exited (code ${code}, signal ${signal}) before ready; stderr:\n${stderr}`));
    });
    proc.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    proc,
    stdout: () => stdout,
    stderr: () => stderr,
    async stop() {
      const done = exited(proc);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      const r = await done;
      clearTimeout(timer);
      return r;
    },
  };
}

// ---- config generation ----

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const YAML11_WORD = /^(y|n|yes|no|on|off|true|false|null)$/i; // resolved as bool/null by some loaders
const yamlKey = (k) => (PLAIN_KEY.test(k) && !YAML11_WORD.test(k) ? k : JSON.stringify(k));

/** One value as YAML flow syntax. Strings are always double-quoted (JSON escapes are valid
 * YAML), so "yes", "on", "0123" or ":" in a string never change meaning. */
function flow(v) {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return `[${v.map(flow).join(', ')}]`;
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      if (!Number.isFinite(v)) throw new Error(`toYaml: cannot write ${v}`);
      return String(v);
    case 'boolean':
      return String(v);
    case 'object': {
      const items = Object.entries(v)
        .filter(([, x]) => x !== undefined)
        .map(([k, x]) => `${yamlKey(k)}: ${flow(x)}`);
      return `{${items.join(', ')}}`;
    }
    default:
      throw new Error(`toYaml: cannot write a ${typeof v}`);
  }
}

/**
 * Serializes a config object: top-level keys in block style, arrays as block sequences of
 * flow items, everything below that in flow style.
 * @param {object} config
 * @returns {string}
 */
export function toYaml(config) {
  const lines = ['# generated by tests/e2e/lib/harness.mjs'];
  for (const [k, v] of Object.entries(config)) {
    if (v === undefined) continue;
    const key = yamlKey(k);
    if (Array.isArray(v) && v.length > 0) {
      lines.push(`${key}:`);
      for (const item of v) lines.push(`  - ${flow(item)}`);
    } else {
      lines.push(`${key}: ${flow(v)}`);
    }
  }
  return lines.join('\n') + '\n';
}

const isPlainObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * GET url with node:http; resolves with the status, or rejects on a connection error.
 * @returns {Promise<number>}
 */
function probe(url, timeoutMs = 1000) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/**
 * Writes a config into a fresh temp dir and starts `build/tollgate serve` on it.
 *
 * The config has server.listen and server.admin_listen on free loopback ports, server.workers,
 * store sqlite:<dir>/tollgate.db, log.access <dir>/access.log (level info), the given upstreams
 * and routes, and `extra`'s top-level keys merged in (a plain-object value such as
 * `extra.server` is merged one level deep, so it can add keys without losing listen).
 *
 * Resolves once GET <adminUrl>/healthz answers 200; rejects after 10 s, or as soon as the
 * process exits, with its stderr in the message.
 *
 * The admin listener's token (every admin path but /healthz and /readyz asks for it): a
 * random one per gateway as server.admin_token, unless `extra.server` gives admin_token or
 * admin_token_file itself. `adminToken` chooses it (null: none configured); with
 * `adminTokenFile: true` it is written to <dir>/admin-token and named by
 * server.admin_token_file instead. The result's `adminHeaders` carry it
 * (`{authorization: 'Bearer ...'}`, `{}` without one): pass them on every admin request.
 *
 * @param {{upstreams?: object[], routes?: object[], extra?: object, workers?: number|string,
 *   env?: object, adminToken?: string|null, adminTokenFile?: boolean}} [opts] env is added
 *   to the environment of serve (and of cli()).
 * @returns {Promise<{dir: string, port: number, url: string, adminPort: number,
 *   adminUrl: string, adminToken: string|null, adminHeaders: object,
 *   adminTokenFile: string|null, configPath: string, dbPath: string, spoolPath: string,
 *   accessLog: string,
 *   config: object,
 *   proc: import('node:child_process').ChildProcess, stdout: () => string,
 *   stderr: () => string,
 *   cli: (args: string[], opts?: {env?: object, input?: string|Buffer}) =>
 *     Promise<{code: number|null, stdout: string, stderr: string}>,
 *   stop: (signal?: string) => Promise<{code: number|null, signal: string|null}>,
 *   kill: () => Promise<{code: number|null, signal: string|null}>,
 *   restart: () => Promise<void>}>}
 *   stdout()/stderr() hold everything the gateway printed, across restarts. `proc` is the
 *   current process. stop() rejects if the process has not exited 30 s after the signal
 *   (it is SIGKILLed then).
 */
export async function startGateway({
  upstreams = [],
  routes = [],
  extra = {},
  workers = 2,
  env = {},
  adminToken = crypto.randomBytes(24).toString('hex'),
  adminTokenFile = false,
} = {}) {
  requireBinary(bin);
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'tollgate-e2e-'));
  tmpDirs.add(dir);
  const port = await freePort();
  const adminPort = await freePort();
  // With TG_E2E_PG_URL (make e2e-pg) each gateway gets a fresh PostgreSQL schema instead of
  // a SQLite file, and dbPath is that store's URL: sqlite() below reads either.
  const dbPath = process.env.TG_E2E_PG_URL && !('store' in extra) ? await freshPgStore() : path.join(dir, 'tollgate.db');
  const accessLog = path.join(dir, 'access.log');
  const config = {
    server: { listen: `127.0.0.1:${port}`, admin_listen: `127.0.0.1:${adminPort}`, workers },
    store: isPgUrl(dbPath) ? dbPath : `sqlite:${dbPath}`,
    log: { access: accessLog, level: 'info' },
    upstreams,
    routes,
  };
  let tokenFile = null;
  const ownToken = isPlainObject(extra.server) && ('admin_token' in extra.server || 'admin_token_file' in extra.server);
  if (ownToken) {
    adminToken = extra.server.admin_token ?? null;
  } else if (adminToken && adminTokenFile) {
    tokenFile = path.join(dir, 'admin-token');
    await fs.promises.writeFile(tokenFile, `${adminToken}\n`, { mode: 0o600 });
    config.server.admin_token_file = tokenFile;
  } else if (adminToken) {
    config.server.admin_token = adminToken;
  }
  for (const [k, v] of Object.entries(extra)) {
    config[k] = isPlainObject(v) && isPlainObject(config[k]) ? { ...config[k], ...v } : v;
  }
  const configPath = path.join(dir, 'tollgate.yaml');
  await fs.promises.writeFile(configPath, toYaml(config));

  let stdout = '';
  let stderr = '';
  let proc = null;
  const url = `http://127.0.0.1:${port}`;
  const adminUrl = `http://127.0.0.1:${adminPort}`;

  async function start() {
    const child = detachFromLoop(
      track(
        spawn(bin, ['serve', '-c', configPath], {
          cwd: dir,
          env: { ...process.env, ...clockEnv, ...env },
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      ),
    );
    proc = child;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    let spawnError = null;
    child.once('error', (e) => (spawnError = e));
    const deadline = performance.now() + 10000;
    for (;;) {
      if (spawnError) throw spawnError;
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(
          `tollgate serve exited (code ${child.exitCode}, signal ${child.signalCode}) before ` +
            `${adminUrl}/healthz answered; config ${configPath}; stderr:\n${stderr}`,
        );
      }
      try {
        if ((await probe(`${adminUrl}/healthz`)) === 200) return;
      } catch {
        // not listening yet
      }
      if (performance.now() >= deadline) {
        child.kill('SIGKILL');
        throw new Error(
          `tollgate serve: ${adminUrl}/healthz did not answer 200 within 10 s; ` +
            `config ${configPath}; stderr:\n${stderr}`,
        );
      }
      await sleep(50);
    }
  }

  async function stop(signal = 'SIGTERM') {
    const child = proc;
    const done = exited(child);
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`tollgate did not exit within 30 s of ${signal}; stderr:\n${stderr}`));
      }, 30000);
    });
    let result;
    try {
      result = await Promise.race([done, timeout]);
    } finally {
      clearTimeout(timer);
    }
    // With a sanitizer build (TOLLGATE_BIN), a report in its stderr fails the test.
    const report = /ERROR: (Address|Leak|Thread)Sanitizer|runtime error:/.exec(stderr);
    if (report) throw new Error(`sanitizer report from tollgate serve:\n${stderr.slice(report.index, report.index + 4000)}`);
    return result;
  }

  await start();
  return {
    dir,
    port,
    url,
    adminPort,
    adminUrl,
    adminToken: adminToken ?? null,
    adminHeaders: adminToken ? { authorization: `Bearer ${adminToken}` } : {},
    adminTokenFile: tokenFile,
    configPath,
    dbPath,
    // recorder.spool's default: next to a SQLite file, else ./tollgate.spool (the cwd is dir)
    spoolPath: config.recorder?.spool
      ? path.resolve(dir, config.recorder.spool)
      : isPgUrl(dbPath) ? path.join(dir, 'tollgate.spool') : `${dbPath}.spool`,
    accessLog,
    config,
    get proc() {
      return proc;
    },
    stdout: () => stdout,
    stderr: () => stderr,
    cli: (args, { env: extraEnv, input } = {}) =>
      run(bin, ['-c', configPath, ...args], { cwd: dir, env: { ...env, ...extraEnv }, input }),
    stop,
    kill: () => stop('SIGKILL'),
    async restart() {
      if (proc.exitCode === null && proc.signalCode === null) await stop('SIGTERM');
      await start();
    },
  };
}

/**
 * Adds a tenant and creates a key for it with the CLI.
 * @param {{cli: Function}} gw a startGateway() result
 * @param {string} tenantId
 * @returns {Promise<{tenant: string, keyId: string, secret: string}>}
 */
export async function createTenantKey(gw, tenantId) {
  const t = await gw.cli(['tenant', 'add', tenantId]);
  if (t.code !== 0) throw new Error(`tenant add ${tenantId}: exit ${t.code}: ${t.stderr}${t.stdout}`);
  const k = await gw.cli(['key', 'create', '--tenant', tenantId]);
  if (k.code !== 0) throw new Error(`key create --tenant ${tenantId}: exit ${k.code}: ${k.stderr}${k.stdout}`);
  const secret = /^\s*secret:\s*(tg_\S+)\s*$/m.exec(k.stdout);
  const keyId = /^\s*key_id:\s*(key_\S+)\s*$/m.exec(k.stdout);
  if (!secret || !keyId) {
    throw new Error(`key create: no "secret: tg_..." and "key_id: key_..." lines in:\n${k.stdout}`);
  }
  return { tenant: tenantId, keyId: keyId[1], secret: secret[1] };
}

/**
 * Runs the real curl binary.
 * @param {string[]} args
 * @param {{input?: string|Buffer, timeoutMs?: number, env?: object}} [opts] input goes to stdin
 * @returns {Promise<{code: number|null, stdout: string, stderr: string}>}
 */
export async function curl(args, opts = {}) {
  const r = await run('curl', args, opts);
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

/** Splits curl -i output into its last (final) header block and the body. */
function splitCurlOutput(out) {
  let rest = out;
  let head = null;
  while (rest.startsWith('HTTP/')) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) {
      head = rest;
      rest = '';
      break;
    }
    head = rest.slice(0, end);
    rest = rest.slice(end + 4);
    const status = Number(/^HTTP\/\S+\s+(\d{3})/.exec(head)?.[1]);
    if (!(status >= 100 && status < 200)) break; // 1xx blocks (100 Continue) precede the final one
  }
  return { head, body: rest };
}

/** Parses a header block into lowercased names; repeated names are joined with ", ". */
function parseHeaderBlock(head) {
  const headers = {};
  for (const line of head.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return headers;
}

/**
 * One request with curl -s -S -i. `data` is sent as is (string/Buffer) or as JSON (object,
 * with Content-Type: application/json unless headers give one), from stdin.
 * @param {string} url
 * @param {{method?: string, headers?: Record<string,string>, data?: string|Buffer|object,
 *   args?: string[], timeoutMs?: number}} [opts] args are extra curl arguments
 * @returns {Promise<{status: number, headers: Record<string,string>, body: any, text: string,
 *   code: number|null, stderr: string}>} body is the parsed JSON when the body parses as
 *   JSON, else the text; status is 0 when curl got no response (see code and stderr).
 */
export async function curlJson(url, { method, headers = {}, data, args = [], timeoutMs = 30000 } = {}) {
  const a = ['-s', '-S', '-i', '--max-time', String(Math.ceil(timeoutMs / 1000))];
  if (method) a.push('-X', method);
  const hdrs = { ...headers };
  let input;
  if (data !== undefined) {
    if (typeof data === 'string' || Buffer.isBuffer(data)) {
      input = data;
    } else {
      input = JSON.stringify(data);
      if (!Object.keys(hdrs).some((k) => k.toLowerCase() === 'content-type')) {
        hdrs['Content-Type'] = 'application/json';
      }
    }
    a.push('--data-binary', '@-');
  }
  for (const [k, v] of Object.entries(hdrs)) a.push('-H', `${k}: ${v}`);
  a.push(...args, url);
  const r = await run('curl', a, { input, timeoutMs: timeoutMs + 5000 });
  const { head, body: text } = splitCurlOutput(r.stdout);
  if (!head) return { status: 0, headers: {}, body: text, text, code: r.code, stderr: r.stderr };
  let body = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return {
    status: Number(/^HTTP\/\S+\s+(\d{3})/.exec(head)?.[1] ?? 0),
    headers: parseHeaderBlock(head),
    body,
    text,
    code: r.code,
    stderr: r.stderr,
  };
}

/**
 * One request with node:http (no keep-alive agent). Resolves when the response has ended.
 * @param {string} url
 * @param {{method?: string, headers?: object, body?: string|Buffer|Buffer[],
 *   timeoutMs?: number}} [opts] an array body is written piece by piece (chunked unless a
 *   Content-Length header is given)
 * @returns {Promise<{status: number, headers: object, body: Buffer, text: string,
 *   json: () => any, chunks: {at: number, bytes: number}[], ms: number}>} chunks: each 'data'
 *   event with its time (ms since the request started); ms: time to the response's end.
 */
export function request(url, { method = 'GET', headers = {}, body, timeoutMs = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request(url, { method, headers, agent: false, timeout: timeoutMs }, (res) => {
      const parts = [];
      const chunks = [];
      res.on('data', (d) => {
        parts.push(d);
        chunks.push({ at: performance.now() - t0, bytes: d.length });
      });
      res.on('error', reject);
      res.on('end', () => {
        const buf = Buffer.concat(parts);
        resolve({
          status: res.statusCode,
          headers: res.headers,
          body: buf,
          text: buf.toString('utf8'),
          json: () => JSON.parse(buf.toString('utf8')),
          chunks,
          ms: performance.now() - t0,
        });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`request to ${url} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    if (Array.isArray(body)) {
      for (const piece of body) req.write(piece);
      req.end();
    } else {
      req.end(body);
    }
  });
}

/**
 * Writes data to a fresh TCP connection to 127.0.0.1:port and collects everything received
 * until the server closes the connection or timeoutMs passes.
 * @param {number} port
 * @param {string|Buffer} data
 * @param {{timeoutMs?: number}} [opts]
 * @returns {Promise<{data: string, buffer: Buffer, closed: boolean, error?: string}>} closed is
 *   false when the timeout ended it; error is the socket error code (e.g. ECONNRESET), if any.
 */
export function raw(port, data, { timeoutMs = 5000 } = {}) {
  return new Promise((resolve) => {
    const parts = [];
    let settled = false;
    const sock = net.connect({ port, host: '127.0.0.1' });
    const finish = (closed, error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      const buffer = Buffer.concat(parts);
      const r = { data: buffer.toString('utf8'), buffer, closed };
      if (error) r.error = error;
      resolve(r);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('connect', () => sock.write(data));
    sock.on('data', (d) => parts.push(d));
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('error', (e) => finish(true, e.code ?? e.message));
  });
}

/** Whether a gateway's dbPath (or a store setting) is a PostgreSQL URL. */
export function isPgUrl(s) {
  return typeof s === 'string' && /^postgres(ql)?:\/\//.test(s);
}

let pgSchemas = 0;
/**
 * A fresh, empty schema in the database of TG_E2E_PG_URL (a private server: make e2e-pg, or
 * scripts/pg-test.sh start), as a store URL whose search_path is that schema.
 * @returns {Promise<string>}
 */
export async function freshPgStore() {
  const base = process.env.TG_E2E_PG_URL;
  if (!base) throw new Error('freshPgStore: TG_E2E_PG_URL is not set');
  const schema = `tg_e2e_${process.pid}_${pgSchemas++}_${crypto.randomBytes(3).toString('hex')}`;
  const r = await run('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', base, '-c', `CREATE SCHEMA ${schema}`]);
  if (r.code !== 0) throw new Error(`psql: CREATE SCHEMA ${schema}: exit ${r.code}: ${r.stderr}`);
  return `${base}${base.includes('?') ? '&' : '?'}options=-csearch_path%3D${schema}`;
}

/**
 * Runs SQL on a gateway's store: `sqlite3 -json DB SQL` (with a 5 s busy timeout, as the
 * gateway may be writing), or on a PostgreSQL store (dbPath a postgres:// URL) through psql,
 * a query's rows as json_agg gives them (numbers, text and null as sqlite3 -json does).
 * @param {string} dbPath
 * @param {string} sql
 * @returns {Promise<object[]>} the rows; [] when the statement returns none
 */
export async function sqlite(dbPath, sql) {
  if (isPgUrl(dbPath)) {
    const query = /^\s*(select|with|values)\b/i.test(sql);
    const text = query ? `SELECT coalesce(json_agg(q), '[]') FROM (${sql.replace(/;\s*$/, '')}) q` : sql;
    const r = await run('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', dbPath, '-c', text]);
    if (r.code !== 0) throw new Error(`psql "${sql}": exit ${r.code}: ${r.stderr}`);
    return query ? JSON.parse(r.stdout.trim() || '[]') : [];
  }
  const r = await run('sqlite3', ['-cmd', '.timeout 5000', '-json', dbPath, sql]);
  if (r.code !== 0) throw new Error(`sqlite3 ${dbPath} "${sql}": exit ${r.code}: ${r.stderr}`);
  const out = r.stdout.trim();
  return out ? JSON.parse(out) : [];
}

/**
 * SQL expressions spelled differently by the two stores' dialects, for a gateway's dbPath
 * (a SQLite file or a postgres:// URL), so a test's check reads the same on both:
 * `hex(col)` a blob in uppercase hex, `day(us)` the UTC day (YYYY-MM-DD) of Unix µs,
 * `todayUs()` the first µs of the current UTC day by the database's clock.
 * @param {string} dbPath
 */
export function sqlDialect(dbPath) {
  const pg = isPgUrl(dbPath);
  return {
    hex: (col) => (pg ? `upper(encode(${col}, 'hex'))` : `hex(${col})`),
    day: (us) =>
      pg
        ? `to_char(to_timestamp(${us} / 1000000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')`
        : `strftime('%Y-%m-%d', ${us} / 1000000, 'unixepoch')`,
    todayUs: () =>
      pg
        ? `CAST(extract(epoch FROM date_trunc('day', now() AT TIME ZONE 'UTC')) AS BIGINT) * 1000000`
        : `CAST(strftime('%s', 'now', 'start of day') AS INTEGER) * 1000000`,
  };
}

/**
 * The id the writer gives an event at tsUs (tg_event_new_id: ms since 2020-01-01 UTC << 22,
 * then a sequence in the 22 low bits), as a BigInt: a test that writes usage_events rows by
 * hand uses it, as PostgreSQL files each row into the month partition of its id.
 * @param {number} tsUs
 * @param {number} seq 0 .. 2^22-1
 */
export function eventId(tsUs, seq) {
  return ((BigInt(Math.floor(tsUs / 1000)) - 1577836800000n) << 22n) | BigInt(seq);
}

/**
 * Before usage_events rows are written by hand: on PostgreSQL, creates the month partitions
 * of these instants (tg_usage_partition, as the writer does); nothing to do on SQLite.
 * @param {string} dbPath
 * @param {number[]} tsList Unix µs
 */
export async function usagePartitions(dbPath, tsList) {
  if (!isPgUrl(dbPath)) return;
  await sqlite(dbPath, `SELECT DISTINCT tg_usage_partition(x) AS p FROM unnest(ARRAY[${tsList.join(', ')}]::bigint[]) x`);
}

/** SHA-256 of a string or Buffer, as lowercase hex. */
export function sha256(data) {
  return crypto.createHash('sha256').update(data).digest('hex');
}

/** Creates a temp dir that is removed on exit (unless KEEP_TMP=1). */
export async function tempDir(prefix = 'tollgate-e2e-') {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), prefix));
  tmpDirs.add(dir);
  return dir;
}

// ---- AI and MCP helpers ----

/**
 * Splits a text/event-stream body into its events, as an SSE client would: blocks end at a
 * blank line, `data:` lines are joined with "\n", comments and unknown fields are skipped.
 * @param {string} text
 * @returns {{event: string|null, data: string}[]}
 */
export function parseSse(text) {
  const events = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    if (!block.trim()) continue;
    let event = null;
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      const m = /^([^:]*)(?::\s?(.*))?$/.exec(line);
      if (!m || m[1] === '') continue;
      if (m[1] === 'event') event = m[2] ?? '';
      else if (m[1] === 'data') data.push(m[2] ?? '');
    }
    if (event !== null || data.length) events.push({ event, data: data.join('\n') });
  }
  return events;
}

/**
 * Waits until the gateway's store has the usage event with this request_id (the writer
 * commits every 50 ms) and returns it, every column.
 * @param {{dbPath: string}} gw a startGateway() result
 * @param {string} requestId the x-request-id the gateway answered with
 * @param {{timeoutMs?: number}} [opts]
 * @returns {Promise<object>}
 */
export async function waitForEvent(gw, requestId, { timeoutMs = 5000 } = {}) {
  if (!/^[A-Za-z0-9._:-]+$/.test(requestId ?? '')) throw new Error(`waitForEvent: bad request id ${requestId}`);
  return waitFor(
    async () => (await sqlite(gw.dbPath, `SELECT * FROM usage_events WHERE request_id = '${requestId}'`))[0],
    { timeoutMs, message: `usage event with request_id ${requestId}` },
  );
}

/** Absolute path of the MCP test server (tests/e2e/lib/mcp-server.mjs). */
export const mcpServerScript = path.join(here, 'mcp-server.mjs');

/**
 * Starts the MCP test server (lib/mcp-server.mjs: tools echo, add, fail, secret_admin; call
 * counts at GET /stats) on an ephemeral loopback port; it needs `npm ci --prefix tests/e2e`.
 * @param {{json?: boolean, compress?: boolean}} [opts] json: answer POSTs with JSON instead of
 *   SSE streams; compress: compress them as Accept-Encoding allows, like the mock (default: on
 *   unless MOCK_COMPRESS=off)
 * @returns {Promise<{port: number, url: string, proc: import('node:child_process').ChildProcess,
 *   stats: () => Promise<Record<string, number>>, stdout: () => string, stderr: () => string,
 *   stop: () => Promise<{code: number|null, signal: string|null}>}>} url is the MCP endpoint
 *   (http://127.0.0.1:PORT/mcp)
 */
export async function startMcpServer({ json = false, compress = mockCompresses } = {}) {
  const args = [mcpServerScript, '0'];
  if (json) args.push('--json');
  if (compress) args.push('--compress');
  const proc = detachFromLoop(track(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })));
  let stdout = '';
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`mcp-server not ready within 10 s; stderr:\n${stderr}`));
    }, 10000);
    proc.stdout.on('data', (d) => {
      stdout += d;
      const m = /^listening (\d+)$/m.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`mcp-server exited (code ${code}, signal ${signal}) before ready; stderr:\n${stderr}`));
    });
    proc.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  const base = `http://127.0.0.1:${port}`;
  return {
    port,
    url: `${base}/mcp`,
    proc,
    stdout: () => stdout,
    stderr: () => stderr,
    async stats() {
      const r = await request(`${base}/stats`);
      if (r.status !== 200) throw new Error(`mcp-server /stats: ${r.status} ${r.text}`);
      return r.json();
    },
    async stop() {
      const done = exited(proc);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      const r = await done;
      clearTimeout(timer);
      return r;
    },
  };
}

/**
 * Waits until a running gateway accepts a key just created with the CLI (the contract is
 * "within 1 second"), by GETting path with it until the answer is not 401. The probe is a
 * real request: it is forwarded (if path has a route) and recorded like any other.
 * @param {{url: string}} gw a startGateway() result
 * @param {string} secret the key's secret
 * @param {string} [path] a path that has a route
 */
export async function waitForKey(gw, secret, path = '/', { timeoutMs = 5000 } = {}) {
  await waitFor(
    async () => (await request(`${gw.url}${path}`, { headers: { Authorization: `Bearer ${secret}` } })).status !== 401,
    { timeoutMs, intervalMs: 100, message: `key ${secret.slice(0, 8)}... accepted by the gateway` },
  );
}

/**
 * Resolves once every gateway in gws runs on the store's current policy (limits, pauses, IP
 * and tool rules, budgets, prices) and keys: its /readyz `loaded` versions have reached the
 * store's meta values. Call it after a CLI change instead of sleeping for the refreshers'
 * poll interval. All gateways must share one store (the first one's: its config's store, or
 * its own file).
 * @param {object|object[]} gws a gateway of startGateway(), or several on one store
 */
export async function waitLoaded(gws, { timeoutMs = 10000 } = {}) {
  const list = Array.isArray(gws) ? gws : [gws];
  const store = list[0].config?.store;
  const db =
    typeof store === 'string' && store.startsWith('sqlite:') ? store.slice(7) : isPgUrl(store) ? store : list[0].dbPath;
  const meta = await sqlite(db, `SELECT key, value FROM meta WHERE key IN ('policy_version', 'auth_version')`);
  const want = Object.fromEntries(meta.map((r) => [r.key, Number(r.value)]));
  for (const gw of list) {
    await waitFor(
      async () => {
        const r = await request(`${gw.adminUrl}/readyz`);
        const got = JSON.parse(r.text).loaded ?? {};
        return (got.policy_version ?? -1) >= (want.policy_version ?? 0) && (got.auth_version ?? -1) >= (want.auth_version ?? 0);
      },
      { timeoutMs, intervalMs: 50, message: `gateway ${gw.url} on store versions ${JSON.stringify(want)}` },
    );
  }
}

// ---- several gateways: a shared store, a private Redis, an nginx front (multi.test.mjs) ----

/** Checks that a child has not exited, else rejects with what it printed. */
function aliveOrThrow(child, what, output) {
  if (child.exitCode !== null || child.signalCode !== null) {
    throw new Error(`${what} exited (code ${child.exitCode}, signal ${child.signalCode}); output:\n${output()}`);
  }
}

/**
 * A fresh, empty store for one test file, shared by the gateways it starts: with
 * TG_E2E_PG_URL set (postgres://USER@HOST:PORT/DB), a new database on that server, created
 * with psql and named tg_e2e_<random>; else the SQLite file DIR/shared.db. The database is
 * not dropped afterwards (a private server's data dir goes with its temp dir).
 * @param {string} dir the test's temp dir
 * @returns {Promise<{url: string, kind: 'postgres'|'sqlite', dbPath: string|null}>}
 */
export async function freshStore(dir) {
  const pg = process.env.TG_E2E_PG_URL;
  if (!pg) {
    const dbPath = path.join(dir, 'shared.db');
    return { url: `sqlite:${dbPath}`, kind: 'sqlite', dbPath };
  }
  // A fresh schema (freshPgStore), dropped with the server: no database left behind.
  return { url: await freshPgStore(), kind: 'postgres', dbPath: null };
}

/**
 * Starts a private PostgreSQL in dir on a loopback port with scripts/pg-test.sh (initdb on
 * the first start, the data kept across stop/start); resolves with its URL (the script's
 * stdout). pgStop(dir) stops it (a fast shutdown: sessions are cut).
 */
export async function pgStart(dir, port) {
  const r = await run(path.join(repoRoot, 'scripts', 'pg-test.sh'), ['start', dir, String(port)], { timeoutMs: 60000 });
  if (r.code !== 0) throw new Error(`pg-test.sh start ${dir} ${port}: exit ${r.code}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Stops the PostgreSQL that pgStart(dir, ...) started. */
export async function pgStop(dir) {
  const r = await run(path.join(repoRoot, 'scripts', 'pg-test.sh'), ['stop', dir], { timeoutMs: 60000 });
  if (r.code !== 0) throw new Error(`pg-test.sh stop ${dir}: exit ${r.code}: ${r.stderr}`);
}

/**
 * Runs `tollgate query SQL --format json` with a gateway's config: rows read from its store,
 * whatever the backend.
 * @returns {Promise<object[]>}
 */
export async function storeQuery(gw, sql) {
  const r = await gw.cli(['query', '--format', 'json', '--', sql]);
  if (r.code !== 0) throw new Error(`tollgate query "${sql}": exit ${r.code}: ${r.stderr}`);
  const out = r.stdout.trim();
  return out ? JSON.parse(out) : [];
}

/**
 * Starts n gateways on one config (startGateway's options) that share `store` (a URL), each
 * with its own recorder.spool in its own dir, one after the other.
 * @returns {Promise<object[]>} startGateway() results
 */
export async function startGateways(n, store, { extra = {}, ...opts } = {}) {
  const gws = [];
  for (let i = 0; i < n; i++) {
    const spoolDir = await tempDir('tollgate-spool-');
    const recorder = { ...(extra.recorder ?? {}), spool: path.join(spoolDir, `gateway${i}.spool`) };
    gws.push(await startGateway({ ...opts, extra: { ...extra, store, recorder } }));
  }
  return gws;
}

/**
 * Starts the Debian package's redis-server on a free loopback port with dir as its working
 * dir and no persistence; resolves once it answers PING. start() runs it again on the same
 * port (an empty Redis), stop() sends SIGTERM and waits for the exit; cli(...args) runs
 * redis-cli against it (stdout, or null on failure). args: more redis-server arguments
 * (`--requirepass PW`, `--user "NAME on >PW ~* &* +@all"`); auth: the password redis-cli
 * gives (`redis.auth`, which a test may change after a CONFIG SET requirepass).
 */
export async function startRedis(dir, { args: more = [], auth = null } = {}) {
  const port = await freePort();
  const cli = async (...args) => {
    const a = redis.auth === null ? [] : ['--no-auth-warning', '-a', redis.auth];
    const r = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...a, '--raw', ...args], { timeoutMs: 5000 });
    return r.code === 0 ? r.stdout.trim() : null;
  };
  const redis = {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    proc: null,
    auth,
    cli,
    async start() {
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...more];
      let out = '';
      const proc = detachFromLoop(track(spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] })));
      proc.stdout.on('data', (d) => (out += d));
      proc.stderr.on('data', (d) => (out += d));
      redis.proc = proc;
      await waitFor(
        async () => {
          aliveOrThrow(proc, 'redis-server', () => out);
          return (await cli('PING')) === 'PONG';
        },
        { timeoutMs: 10000, message: 'redis-server answers PING' },
      );
    },
    async stop() {
      const proc = redis.proc;
      const done = exited(proc);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await done;
    },
  };
  await redis.start();
  return redis;
}

/**
 * Starts nginx (Debian's /usr/sbin/nginx, or $NGINX_BIN) as a private process in front of
 * gws with the committed examples/nginx-front.conf: its listen port 8080 and gateway ports
 * 8081, 8082, ... are replaced with a free port and the gateways' ports (each must appear
 * exactly once), and it is included from a main config in dir that keeps pid, logs and
 * temp files there. Resolves once the front answers; stop() sends SIGQUIT (graceful) by PID.
 * @returns {Promise<{port: number, url: string, conf: string, proc: object, stop: () => Promise<void>}>}
 */
export async function startNginxFront(dir, gws) {
  const port = await freePort();
  let conf = await fs.promises.readFile(path.join(repoRoot, 'examples', 'nginx-front.conf'), 'utf8');
  const swap = (re, to) => {
    const n = conf.match(new RegExp(re.source, 'gm'))?.length ?? 0;
    if (n !== 1) throw new Error(`examples/nginx-front.conf: ${re} found ${n} times, not once`);
    conf = conf.replace(new RegExp(re.source, 'm'), to);
  };
  swap(/^(\s*listen )8080;/, `$1127.0.0.1:${port};`);
  gws.forEach((gw, i) => swap(new RegExp(`^(\\s*server 127\\.0\\.0\\.1:)${8081 + i}\\b`), `$1${gw.port}`));
  const front = path.join(dir, 'front.conf');
  await fs.promises.writeFile(front, conf);
  const main = path.join(dir, 'nginx.conf');
  const temps = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'];
  await fs.promises.writeFile(
    main,
    [
      'daemon off;',
      'worker_processes 1;',
      `pid ${path.join(dir, 'nginx.pid')};`,
      `error_log ${path.join(dir, 'nginx-error.log')} warn;`,
      'events { worker_connections 1024; }',
      'http {',
      `  access_log ${path.join(dir, 'nginx-access.log')};`,
      ...temps.map((t) => `  ${t}_temp_path ${path.join(dir, `nginx-${t}`)};`),
      `  include ${front};`,
      '}',
      '',
    ].join('\n'),
  );
  const nginx = process.env.NGINX_BIN || '/usr/sbin/nginx';
  let out = '';
  const proc = detachFromLoop(
    track(spawn(nginx, ['-p', dir, '-e', path.join(dir, 'nginx-error.log'), '-c', main], { stdio: ['ignore', 'pipe', 'pipe'] })),
  );
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  await waitFor(
    async () => {
      aliveOrThrow(proc, 'nginx', () => out + fs.readFileSync(path.join(dir, 'nginx-error.log'), 'utf8'));
      return (await probe(`http://127.0.0.1:${port}/`)) > 0;
    },
    { timeoutMs: 10000, message: 'nginx front answers' },
  );
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    conf: front,
    proc,
    async stop() {
      const done = exited(proc);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGQUIT');
      await done;
    },
  };
}
