// A hostile review of /metrics (issue 11): clients and an upstream inventing label values
// by the thousand (models, MCP tools, batches of 64), values that cleaning makes equal,
// label injection (quotes, backslashes, newlines, braces, '#', NUL, invalid UTF-8, KB-long
// names, "_other"), counters against the store's events after a mixed concurrent load on
// two workers, scrapes in a tight loop while series are being created, hostile scrapers
// of the admin listener, and a reload while counting.
//
// A test marked `// FINDING n` asserts the right behaviour for something that was wrong
// when it was written (see the report of the review).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { createTenantKey, refusedPort, request, run, sqlite, startGateway, startMock, toYaml, waitFor, waitForKey } from './lib/harness.mjs';

// ---- the text format --------------------------------------------------------------------

/**
 * The samples of a Prometheus text exposition: [{name, labels, value}]. Label values are
 * unescaped (\\, \", \n); a line that is not a comment, blank or a sample throws, and so do
 * a label set that is not exactly name="value" pairs and an escape other than the three.
 */
function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      assert.match(line, /^# (HELP|TYPE) tollgate_[a-z_]+ /, `a comment line not written by tollgate: ${JSON.stringify(line.slice(0, 200))}`);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/s.exec(line); // (U+2028 is no line end here)
    assert.ok(m, `not a sample line: ${JSON.stringify(line.slice(0, 300))}`);
    const labels = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\[\\"n])*)"(,|$)/gy;
    let lm;
    let used = 0;
    while ((lm = re.exec(m[2] ?? '')) !== null) {
      assert.ok(!(lm[1] in labels), `label ${lm[1]} twice in ${JSON.stringify(line.slice(0, 300))}`);
      labels[lm[1]] = lm[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
      used = re.lastIndex;
      if (lm[3] === '') break;
    }
    assert.equal(used, (m[2] ?? '').length, `bad labels in ${JSON.stringify(line.slice(0, 300))}`);
    assert.ok(Number.isFinite(Number(m[3])), `bad value in ${JSON.stringify(line.slice(0, 300))}`);
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** The sum of the samples named name whose labels include every one of want. */
function sum(samples, name, want = {}) {
  let s = 0;
  for (const x of samples) {
    if (x.name !== name) continue;
    if (Object.entries(want).every(([k, v]) => x.labels[k] === v)) s += x.value;
  }
  return s;
}

/** The distinct values of label key among the samples named name. */
function values(samples, name, key) {
  return new Set(samples.filter((x) => x.name === name).map((x) => x.labels[key]));
}

/** A series' identity: its name and its labels, sorted. */
const seriesKey = (x) => `${x.name}{${Object.entries(x.labels).sort().map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`;

async function promtool(text) {
  const r = await run('promtool', ['check', 'metrics'], { input: text });
  assert.equal(r.code, 0, `promtool check metrics: exit ${r.code}\n${r.stdout}${r.stderr}`.slice(0, 4000));
}

// ---- clients ----------------------------------------------------------------------------

/** A keep-alive client: POST or GET on agent, the body read whole. */
function call(agent, url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent, timeout: 30000 }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts) }));
    });
    req.on('timeout', () => req.destroy(new Error(`${url} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Runs the tasks (functions returning promises) n at a time; resolves to their results. */
async function pool(n, tasks) {
  const out = new Array(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, tasks.length) }, async () => {
      while (next < tasks.length) {
        const i = next++;
        out[i] = await tasks[i]();
      }
    }),
  );
  return out;
}

/** A raw scrape over its own connection: the whole answer (head and body) as a Buffer. */
/** A scrape's request head, with the admin token of gw. */
const scrapeHead = (gw, method = 'GET') => `${method} /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${gw.adminToken}\r\n\r\n`;

function rawScrape(port, reqText, { timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const parts = [];
    const sock = net.connect(port, '127.0.0.1', () => sock.write(reqText));
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('raw scrape timed out'));
    }, timeoutMs);
    sock.on('data', (d) => parts.push(d));
    sock.on('error', () => {});
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(parts));
    });
  });
}

/** Head and body of a raw answer. */
function splitAnswer(buf) {
  const end = buf.indexOf('\r\n\r\n');
  assert.ok(end > 0, `no head in ${JSON.stringify(buf.subarray(0, 200).toString('latin1'))}`);
  const head = buf.subarray(0, end).toString('latin1');
  const len = /\r\ncontent-length: *(\d+)/i.exec(head);
  return { head, status: Number(head.slice(9, 12)), contentLength: len ? Number(len[1]) : null, body: buf.subarray(end + 4) };
}

function vmRssKb(pid) {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

// ---- a fake upstream (node:http) --------------------------------------------------------

/**
 * OpenAI chat completions and MCP JSON-RPC, answered from the request:
 * - POST .../chat/completions: 200, usage 3 prompt and 2 completion tokens (or the number
 *   in x-answer-tokens for both, as digits: any size); the answer's
 *   "model" is the request's, or the raw bytes of the x-answer-model-hex header (hex) put
 *   between the quotes as they are (so the test chooses escapes and invalid UTF-8).
 * - POST /mcp (an object or a batch): a result for each request with an id; a JSON-RPC
 *   error for a tools/call whose name starts with "err".
 */
async function startFake() {
  const server = http.createServer((req, res) => {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', () => {
      const body = Buffer.concat(parts);
      if (req.url.startsWith('/mcp')) {
        let msg;
        try {
          msg = JSON.parse(body.toString('utf8'));
        } catch {
          res.writeHead(400).end();
          return;
        }
        const one = (m) =>
          m.params?.name?.startsWith?.('err')
            ? { jsonrpc: '2.0', id: m.id, error: { code: -32000, message: 'failed' } }
            : { jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: 'ok' }] } };
        const out = Array.isArray(msg) ? msg.filter((m) => m.id !== undefined).map(one) : one(msg);
        const text = JSON.stringify(out);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
        return;
      }
      let model;
      try {
        model = Buffer.from(JSON.stringify(JSON.parse(body.toString('utf8')).model ?? 'm'));
      } catch {
        model = Buffer.from('"m"');
      }
      const tok = /^\d+$/.test(req.headers['x-answer-tokens'] ?? '') ? req.headers['x-answer-tokens'] : null;
      const hex = req.headers['x-answer-model-hex'];
      if (hex) model = Buffer.concat([Buffer.from('"'), Buffer.from(hex, 'hex'), Buffer.from('"')]);
      const out = Buffer.concat([
        Buffer.from('{"id":"c1","object":"chat.completion","created":1,"model":'),
        model,
        Buffer.from(
          ',"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],' +
            `"usage":{"prompt_tokens":${tok ?? 3},"completion_tokens":${tok ?? 2},"total_tokens":5}}`,
        ),
      ]);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': out.length }).end(out);
    });
  });
  server.keepAliveTimeout = 60000;
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    stop: () => new Promise((r) => server.close(r) && server.closeAllConnections()),
  };
}

const FAKE_ROUTES = (upstream = 'fake') => [
  { name: 'oa', path_prefix: '/v1/', upstream, kind: 'openai' },
  { name: 'mcp', path_prefix: '/mcp', upstream, kind: 'mcp' },
];

const chatBody = (model) => JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
const toolCall = (id, name) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } });

// ---- cardinality ------------------------------------------------------------------------

describe('cardinality: invented models and tools stay capped, _other exact', () => {
  let fake;
  let gw;
  let agent;
  const keys = {};
  const TENANTS = ['t0', 't1', 't2', 't3'];
  const scrape = async () => {
    const r = await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders });
    assert.equal(r.status, 200);
    return r.text;
  };
  const auth = (t) => ({ authorization: `Bearer ${keys[t]}`, 'content-type': 'application/json' });

  before(async () => {
    fake = await startFake();
    gw = await startGateway({
      workers: 2,
      upstreams: [{ name: 'fake', targets: [fake.url] }],
      routes: FAKE_ROUTES(),
      extra: { metrics: { max_tenants: 2, max_models: 4, max_tools: 4 } },
    });
    for (const t of TENANTS) keys[t] = (await createTenantKey(gw, t)).secret;
    for (const t of TENANTS) await waitForKey(gw, keys[t], '/v1/models');
    agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  });
  after(async () => {
    agent?.destroy();
    await gw?.stop();
    await fake?.stop();
  });

  test('thousands of request and answer models, 4 tenants: at most the caps, every token counted', async () => {
    const base = parseMetrics(await scrape());
    const N = 1200;
    const tasks = [];
    for (let i = 0; i < N; i++) {
      const t = TENANTS[i % TENANTS.length];
      const headers = auth(t);
      // Half name the model in the request, half only in the upstream's answer.
      if (i % 2) headers['x-answer-model-hex'] = Buffer.from(`answer-${i}`).toString('hex');
      tasks.push(async () => {
        const r = await call(agent, `${gw.url}/v1/chat/completions`, { method: 'POST', headers, body: chatBody(`req-${i}`) });
        assert.equal(r.status, 200, r.body.toString());
      });
    }
    await pool(32, tasks);
    let s;
    await waitFor(
      async () => {
        s = parseMetrics(await scrape());
        return sum(s, 'tollgate_requests_total', { route: 'oa' }) - sum(base, 'tollgate_requests_total', { route: 'oa' }) === N;
      },
      { message: `${N} chat requests counted` },
    );
    const tenants = values(s, 'tollgate_requests_total', 'tenant');
    assert.ok(tenants.size <= 3, `tenants: ${[...tenants]}`);
    assert.ok(tenants.has('_other'));
    const models = values(s, 'tollgate_input_tokens_total', 'model');
    assert.ok(models.size <= 5, `${models.size} model values: ${[...models].slice(0, 10)}`);
    assert.ok(models.has('_other'));
    // Every token is somewhere: named or _other, 3 in and 2 out a request.
    assert.equal(sum(s, 'tollgate_input_tokens_total') - sum(base, 'tollgate_input_tokens_total'), 3 * N);
    assert.equal(sum(s, 'tollgate_output_tokens_total') - sum(base, 'tollgate_output_tokens_total'), 2 * N);
    // And in the store, tenant by tenant (the two named and the rest as _other).
    const rows = await waitFor(
      async () => {
        const r = await sqlite(gw.dbPath, "SELECT tenant, COUNT(*) AS n, SUM(tokens_in) AS tin FROM usage_events WHERE route = 'oa' GROUP BY 1");
        return r.reduce((a, x) => a + x.n, 0) === sum(s, 'tollgate_requests_total', { route: 'oa' }) && r;
      },
      { message: 'the store caught up' },
    );
    let other = 0;
    for (const row of rows) {
      if (tenants.has(row.tenant)) assert.equal(sum(s, 'tollgate_input_tokens_total', { tenant: row.tenant }), row.tin, row.tenant);
      else other += row.tin;
    }
    assert.equal(sum(s, 'tollgate_input_tokens_total', { tenant: '_other' }), other);
    // The scrape stays small: a few dozen series, not thousands.
    assert.ok(s.length < 400, `${s.length} samples`);
  });

  test('MCP batches of 64 invented tool names: at most the cap, every call and error counted', async () => {
    const base = parseMetrics(await scrape());
    const BATCHES = 60;
    let errs = 0;
    const tasks = [];
    for (let b = 0; b < BATCHES; b++) {
      const batch = [];
      for (let k = 0; k < 64; k++) {
        const name = (k % 8 === 0 ? 'err-' : 'tool-') + `${b}-${k}`;
        if (name.startsWith('err')) errs++;
        batch.push(toolCall(k + 1, name));
      }
      const t = TENANTS[b % TENANTS.length];
      tasks.push(async () => {
        const r = await call(agent, `${gw.url}/mcp`, { method: 'POST', headers: { ...auth(t), accept: 'application/json, text/event-stream' }, body: JSON.stringify(batch) });
        assert.equal(r.status, 200, r.body.toString().slice(0, 300));
      });
    }
    await pool(16, tasks);
    let s;
    await waitFor(
      async () => {
        s = parseMetrics(await scrape());
        return sum(s, 'tollgate_requests_total', { route: 'mcp' }) - sum(base, 'tollgate_requests_total', { route: 'mcp' }) === BATCHES;
      },
      { message: 'the batches counted' },
    );
    const tools = values(s, 'tollgate_mcp_tool_calls_total', 'tool');
    assert.ok(tools.size <= 5, `${tools.size} tool values`);
    assert.ok(tools.has('_other'));
    assert.equal(sum(s, 'tollgate_mcp_tool_calls_total') - sum(base, 'tollgate_mcp_tool_calls_total'), BATCHES * 64);
    assert.equal(sum(s, 'tollgate_mcp_tool_errors_total') - sum(base, 'tollgate_mcp_tool_errors_total'), errs);
  });
});

describe('memory: spellings of one name', () => {
  let fake;
  let gw;
  let agent;
  const keys = {};
  const scrape = async () => {
    const r = await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders });
    assert.equal(r.status, 200);
    return r.text;
  };
  const auth = (t) => ({ authorization: `Bearer ${keys[t]}`, 'content-type': 'application/json' });

  before(async () => {
    fake = await startFake();
    gw = await startGateway({
      workers: 2,
      upstreams: [{ name: 'fake', targets: [fake.url] }],
      routes: FAKE_ROUTES(),
      // Under ASan (TOLLGATE_BIN), freed memory would sit in its quarantine and hide
      // what stays allocated: a small one here (the other suites keep the default).
      env: { ASAN_OPTIONS: [process.env.ASAN_OPTIONS, 'quarantine_size_mb=1:thread_local_quarantine_size_kb=64'].filter(Boolean).join(':') },
    });
    keys.t0 = (await createTenantKey(gw, 't0')).secret;
    await waitForKey(gw, keys.t0, '/v1/models');
    agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  });
  after(async () => {
    agent?.destroy();
    await gw?.stop();
    await fake?.stop();
  });

  // FINDING 1: a name once interned is cached per worker under every raw spelling that
  // cleans to it (control characters, invalid UTF-8 -> U+FFFD), one malloc'd copy (up to
  // 256 bytes) and a table slot each, never freed: a client sending batches of 64 tool
  // names that all clean to one interned name grows the gateway without bound, although
  // the scrape does not change (docs/operations.md: "a client inventing model or tool
  // names cannot grow the scrape or the gateway's memory").
  test('tool names that clean to one interned name do not grow the gateway', async () => {
    const stem = 'A'.repeat(240);
    // Control characters (not newline, which is kept) that JSON carries as \u00XX and the
    // metrics turn into U+FFFD: 31 of them, 8 positions.
    const CTL = [...Array.from({ length: 31 }, (_, k) => k + 1).filter((c) => c !== 10), 127];
    const ctl = (n) => {
      let s = '';
      for (let k = 0; k < 8; k++, n = Math.floor(n / 31)) s += String.fromCharCode(CTL[n % 31]);
      return s;
    };
    const send = async (batches, nameOf) => {
      const tasks = [];
      for (let b = 0; b < batches; b++) {
        const batch = Array.from({ length: 64 }, (_, k) => toolCall(k + 1, nameOf(b * 64 + k)));
        tasks.push(async () => {
          const r = await call(agent, `${gw.url}/mcp`, { method: 'POST', headers: { ...auth('t0'), accept: 'application/json' }, body: JSON.stringify(batch) });
          assert.equal(r.status, 200);
        });
      }
      await pool(8, tasks);
    };
    const counted = async (want) =>
      waitFor(async () => sum(parseMetrics(await scrape()), 'tollgate_mcp_tool_calls_total', { tenant: 't0' }) === want, {
        message: `${want} tool calls of t0 counted`,
        timeoutMs: 20000,
      });
    const start = sum(parseMetrics(await scrape()), 'tollgate_mcp_tool_calls_total', { tenant: 't0' });
    const B = 600;
    // Control: the same 64 spellings over and over (the first one interns the name they
    // all clean to: the stem and eight U+FFFD).
    await send(B, (i) => stem + ctl(i % 64));
    await counted(start + B * 64);
    const rss0 = vmRssKb(gw.proc.pid);
    await send(B, (i) => stem + ctl(i % 64));
    await counted(start + 2 * B * 64);
    const rss1 = vmRssKb(gw.proc.pid);
    // Attack: as many requests, every spelling new (all clean to the same name).
    await send(B, (i) => stem + ctl(64 + i));
    await counted(start + 3 * B * 64);
    const rss2 = vmRssKb(gw.proc.pid);
    const control = rss1 - rss0;
    if (process.env.MA_DEBUG) console.error({ rss0, rss1, rss2 });
    const attack = rss2 - rss1;
    const s = parseMetrics(await scrape());
    // One series: every spelling is the same label value.
    assert.deepEqual([...values(s, 'tollgate_mcp_tool_calls_total', 'tool')], [`${stem}${'\ufffd'.repeat(8)}`]);
    assert.ok(
      attack - control < 4096,
      `RSS grew ${attack} kB for ${B * 64} new spellings of one tool name (${control} kB for the same number of repeated ones)`,
    );
  });
});

// ---- label injection ----------------------------------------------------------------------

describe('label injection: hostile model and tool names', () => {
  let fake;
  let gw;
  let agent;
  let secret;
  const scrape = async () => {
    const r = await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders });
    assert.equal(r.status, 200);
    return r.text;
  };
  const headers = () => ({ authorization: `Bearer ${secret}`, 'content-type': 'application/json', accept: 'application/json' });

  before(async () => {
    fake = await startFake();
    gw = await startGateway({ workers: 2, upstreams: [{ name: 'fake', targets: [fake.url] }], routes: FAKE_ROUTES() });
    secret = (await createTenantKey(gw, 'inj')).secret;
    await createTenantKey(gw, 'victim');
    await waitForKey(gw, secret, '/v1/models');
    agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  });
  after(async () => {
    agent?.destroy();
    await gw?.stop();
    await fake?.stop();
  });

  const FORGE = 'x"} 1\ntollgate_cost_micro_usd_total{tenant="victim"} 999999\n# TYPE tollgate_evil counter';
  // Valid names, sent in the request (the fake upstream answers with the same model).
  const NAMES = [
    'a"b',
    'a\\b',
    'a\nb',
    'end\\',
    '\\"',
    '"',
    '\\n',
    '}',
    '{tenant="victim"}',
    '# HELP tollgate_requests_total forged',
    FORGE,
    'tab\there\u0001\u007f',
    '\u2028\u2029\ufeff',
    '',
  ];

  test('each name is one label value, read back unchanged (control characters as U+FFFD); nothing forged; promtool passes', async () => {
    const base = parseMetrics(await scrape());
    for (const n of NAMES) {
      const r = await call(agent, `${gw.url}/v1/chat/completions`, { method: 'POST', headers: headers(), body: chatBody(n) });
      // (an empty model is the request's business; the upstream answered it)
      assert.equal(r.status, 200, `${JSON.stringify(n)}: ${r.body}`);
    }
    const batch = NAMES.map((n, i) => toolCall(i + 1, n));
    const r = await call(agent, `${gw.url}/mcp`, { method: 'POST', headers: headers(), body: JSON.stringify(batch) });
    assert.equal(r.status, 200, r.body.toString());
    let text;
    let s;
    await waitFor(
      async () => {
        text = await scrape();
        s = parseMetrics(text);
        return sum(s, 'tollgate_requests_total', { tenant: 'inj' }) - sum(base, 'tollgate_requests_total', { tenant: 'inj' }) === NAMES.length + 1;
      },
      { message: 'the requests counted' },
    );
    await promtool(text);
    const clean = (n) => n.replace(/[\u0000-\u0009\u000b-\u001f\u007f]/g, '\ufffd');
    for (const n of NAMES) {
      assert.equal(sum(s, 'tollgate_input_tokens_total', { tenant: 'inj', model: clean(n) }), 3, `model ${JSON.stringify(n)}`);
      assert.equal(sum(s, 'tollgate_mcp_tool_calls_total', { tenant: 'inj', tool: clean(n) }), 1, `tool ${JSON.stringify(n)}`);
    }
    assert.equal(values(s, 'tollgate_input_tokens_total', 'model').size, NAMES.length);
    assert.equal(values(s, 'tollgate_mcp_tool_calls_total', 'tool').size, NAMES.length);
    // The victim sent nothing: no series of its own, forged or not; no family but tollgate's.
    assert.equal(s.filter((x) => x.labels.tenant === 'victim').length, 0);
    assert.ok(!/^tollgate_evil|^# TYPE tollgate_evil/m.test(text));
    assert.equal(s.filter((x) => x.name === 'tollgate_cost_micro_usd_total').length, values(s, 'tollgate_cost_micro_usd_total', 'tenant').size);
  });

  test('invalid UTF-8, NUL and very long names from the upstream and the client: valid text, one series each', async () => {
    const before_ = parseMetrics(await scrape());
    // The upstream's answer names the model with raw bytes (JSON strings as yajl lets them
    // through): an overlong '/', an encoded surrogate, a code point past U+10FFFF, a lone
    // \ud800 escape, a NUL escape, a name cut by the gateway in the middle of a character.
    const raws = [
      Buffer.from([0x6f, 0xc0, 0xaf]),
      Buffer.from([0x73, 0xed, 0xa0, 0x80]),
      Buffer.from([0x62, 0xf4, 0x90, 0x80, 0x80]),
      Buffer.from('lone\\ud800x'),
      Buffer.from('nul\\u0000after'),
      Buffer.from('\u00e9'.repeat(200)),
      Buffer.from('_other'),
    ];
    let ok = 0;
    for (const raw of raws) {
      const r = await call(agent, `${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { ...headers(), 'x-answer-model-hex': raw.toString('hex') },
        body: chatBody('plain'),
      });
      if (r.status === 200) ok++;
    }
    // Tool names of several KB, cut inside a character, and "_other".
    const long = ['L'.repeat(5000), `x${'\u00e9'.repeat(3000)}`, `y${'\u00e9'.repeat(3000)}`, '_other'];
    const r = await call(agent, `${gw.url}/mcp`, { method: 'POST', headers: headers(), body: JSON.stringify(long.map((n, i) => toolCall(i + 1, n))) });
    assert.equal(r.status, 200);
    let text;
    let s;
    await waitFor(
      async () => {
        text = await scrape();
        s = parseMetrics(text);
        return sum(s, 'tollgate_requests_total', { tenant: 'inj' }) - sum(before_, 'tollgate_requests_total', { tenant: 'inj' }) === raws.length + 1;
      },
      { message: 'the requests counted' },
    );
    await promtool(text);
    assert.ok(Buffer.from(text, 'utf8').toString('utf8') === text && !text.includes('\u0000'));
    const got = await run('sh', ['-c', 'iconv -f UTF-8 -t UTF-8 >/dev/null'], { input: text });
    assert.equal(got.code, 0, 'the scrape is valid UTF-8');
    // Every token counted once, and each label value is at most 256 bytes of the name.
    assert.equal(sum(s, 'tollgate_input_tokens_total', { tenant: 'inj' }) - sum(before_, 'tollgate_input_tokens_total', { tenant: 'inj' }), 3 * raws.length);
    for (const x of s) for (const v of Object.values(x.labels)) assert.ok(Buffer.byteLength(v) <= 256 * 3, `${Buffer.byteLength(v)} bytes`);
    assert.equal(sum(s, 'tollgate_mcp_tool_calls_total', { tenant: 'inj', tool: '_other' }), 1);
    assert.equal(sum(s, 'tollgate_input_tokens_total', { tenant: 'inj', model: '_other' }), 3);
    if (process.env.MA_DEBUG) console.error(ok, [...values(s, 'tollgate_input_tokens_total', 'model')].map((v) => JSON.stringify(v)), [...values(s, 'tollgate_mcp_tool_calls_total', 'tool')].map((v) => Buffer.byteLength(v) + ':' + JSON.stringify(v.slice(-4))));
    assert.ok(ok >= 5, `${ok} of the hostile answers were read`);
  });
});

// ---- exactness under a mixed concurrent load --------------------------------------------

/** Sends a request on a raw socket and leaves once until(body so far) holds. */
function leaveEarly(port, { method = 'POST', path, secret, body = '', headers = {}, until }) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let text = '';
    sock.setEncoding('latin1');
    sock.on('connect', () => {
      const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      sock.write(`${method} ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\nContent-Type: application/json\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    });
    sock.on('data', (d) => {
      text += d;
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const status = Number(text.slice(9, 12));
      // A refusal (429, 413) is answered whole, and the connection kept: its status.
      const len = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end));
      const refused = status !== 200 && len && text.length - end - 4 >= Number(len[1]);
      if (!refused && !until(text.slice(end + 4))) return;
      sock.destroy();
      resolve(status);
    });
    sock.on('error', reject);
    sock.on('close', () => reject(new Error(`closed before the condition: ${text.slice(0, 300)}`)));
  });
}

describe('exactness: the scrape equals the store after a mixed concurrent load on two workers', () => {
  let mock;
  let fake;
  let gw;
  let agent;
  const keys = {};
  const scrape = async () => {
    const r = await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders });
    assert.equal(r.status, 200);
    return r.text;
  };

  before(async () => {
    mock = await startMock({ threads: 2 });
    fake = await startFake();
    gw = await startGateway({
      workers: 2,
      upstreams: [
        { name: 'mock', targets: [mock.url] },
        { name: 'fake', targets: [fake.url] },
      ],
      routes: [
        { name: 'api', path_prefix: '/api/', upstream: 'mock', kind: 'http' },
        { name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' },
        { name: 'mcp', path_prefix: '/mcp', upstream: 'fake', kind: 'mcp' },
      ],
      extra: {
        server: { max_body: 4096 },
        prices: { models: { 'gpt-4o-mini': { input: 0.15, output: 0.6, cached: 0.075 } } },
      },
    });
    for (const t of ['ex1', 'ex2', 'ex3']) keys[t] = (await createTenantKey(gw, t)).secret;
    assert.equal((await gw.cli(['limit', 'set', '--tenant', 'ex3', '--rpm', '4'])).code, 0);
    for (const t of ['ex1', 'ex2', 'ex3']) await waitForKey(gw, keys[t], '/api/ready');
    agent = new http.Agent({ keepAlive: true, maxSockets: 24 });
  });
  after(async () => {
    agent?.destroy();
    await gw?.stop();
    await fake?.stop();
    await mock?.stop();
  });

  test('requests by outcome and class, tokens, cost, bytes, latency sums, rejections: equal per tenant', async () => {
    const auth = (t) => ({ authorization: `Bearer ${keys[t]}`, 'content-type': 'application/json', accept: 'application/json' });
    const chat = (extra = {}) => JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'count my tokens, please' }], max_tokens: 5, ...extra });
    const kinds = [
      (t) => call(agent, `${gw.url}/api/x?size=100`, { headers: auth(t) }),
      (t) => call(agent, `${gw.url}/api/up`, { method: 'POST', headers: auth(t), body: 'y'.repeat(77) }),
      (t) => call(agent, `${gw.url}/api/x?status=500`, { headers: auth(t) }),
      (t) => call(agent, `${gw.url}/api/x?close=1`, { headers: auth(t) }),
      (t) => call(agent, `${gw.url}/v1/chat/completions`, { method: 'POST', headers: auth(t), body: chat({ messages: [{ role: 'user', content: 'z'.repeat(5000) }] }) }),
      (t) => call(agent, `${gw.url}/nowhere`, { headers: auth(t) }),
      () => call(agent, `${gw.url}/api/x`, { headers: { authorization: 'Bearer tg_unknown_key_for_metrics' } }),
      (t) => call(agent, `${gw.url}/v1/chat/completions`, { method: 'POST', headers: auth(t), body: chat() }),
      (t) => call(agent, `${gw.url}/v1/chat/completions`, { method: 'POST', headers: auth(t), body: chat({ stream: true }) }),
      (t) => call(agent, `${gw.url}/v1/chat/completions`, { method: 'POST', headers: auth(t), body: chat({ model: 'mock-error' }) }),
      (t) =>
        call(agent, `${gw.url}/mcp`, {
          method: 'POST',
          headers: auth(t),
          body: JSON.stringify([toolCall(1, 'echo'), toolCall(2, 'err-x'), { jsonrpc: '2.0', id: 3, method: 'tools/list' }]),
        }),
      (t) =>
        leaveEarly(gw.port, {
          path: '/v1/chat/completions',
          secret: keys[t],
          body: chat({ stream: true, max_tokens: 20 }),
          headers: { 'x-mock-stall-after': '10', 'x-mock-stall-ms': '200' },
          until: (b) => b.includes('tok5 '),
        }),
      (t) => leaveEarly(gw.port, { method: 'GET', path: '/api/x?size=3000000', secret: keys[t], until: (b) => b.length > 0 }),
    ];
    const tasks = [];
    let unauth = 0;
    for (let i = 0; i < 260; i++) {
      const k = i % kinds.length;
      if (k === 6) unauth++;
      tasks.push(async () => {
        const t1 = performance.now();
        const r = await kinds[k](['ex1', 'ex2', 'ex3'][i % 3]);
        if (process.env.MA_DEBUG && performance.now() - t1 > 2000) console.error('slow', k, performance.now() - t1, typeof r === 'number' ? r : r.status);
        return r;
      });
    }
    assert.ok(unauth < 50); // below log.unauthenticated_per_minute: no aggregate row pending
    const base = sum(parseMetrics(await scrape()), 'tollgate_requests_total'); // waitForKey's
    const N = tasks.length;
    const t0 = performance.now();
    const statuses = await pool(24, tasks);
    if (process.env.MA_DEBUG) console.error('load took', performance.now() - t0);
    const st = (x) => (typeof x === 'number' ? x : x.status);
    const by = {};
    for (const x of statuses) by[st(x)] = (by[st(x)] ?? 0) + 1;
    for (const code of [200, 401, 404, 413, 429, 500, 502]) assert.ok(by[code] > 0, `some ${code}: ${JSON.stringify(by)}`);

    let s;
    let rows;
    let last;
    await waitFor(
      async () => {
        s = parseMetrics(await scrape());
        rows = await sqlite(
          gw.dbPath,
          "SELECT tenant, COALESCE(route, '') AS route, outcome, status / 100 AS cls, SUM(COALESCE(requests, 1)) AS n, SUM(bytes_in) AS bin, " +
            'SUM(bytes_out) AS bout, SUM(cost_micros) AS cost, SUM(MAX(COALESCE(tokens_in, 0), 0)) AS tin, ' +
            'SUM(MAX(COALESCE(tokens_out, 0), 0)) AS tout, SUM(MAX(COALESCE(tokens_cached, 0), 0)) AS tcached, SUM(latency_us) AS lat ' +
            'FROM usage_events GROUP BY 1, 2, 3, 4',
        );
        const n = rows.reduce((a, x) => a + x.n, 0);
        last = [sum(s, 'tollgate_requests_total') - base, n - base];
        return last[0] === N && last[1] === N;
      },
      { timeoutMs: 15000, message: `${N} requests in the scrape and the store` },
    ).catch((e) => {
      throw new Error(`${e.message}: [scrape, store] counted ${last}`);
    });
    const CLS = ['other', '1xx', '2xx', '3xx', '4xx', '5xx'];
    for (const r of rows) {
      const want = { tenant: r.tenant, route: r.route, outcome: r.outcome, status_class: CLS[r.cls] ?? 'other' };
      assert.equal(sum(s, 'tollgate_requests_total', want), r.n, JSON.stringify(want));
    }
    for (const tenant of ['ex1', 'ex2', 'ex3', '']) {
      const mine = rows.filter((x) => x.tenant === tenant);
      const total = (k, f = () => true) => mine.filter(f).reduce((a, x) => a + x[k], 0);
      assert.ok(total('n') > 0, tenant);
      assert.equal(sum(s, 'tollgate_cost_micro_usd_total', { tenant }), total('cost'), `cost of "${tenant}"`);
      assert.equal(sum(s, 'tollgate_input_tokens_total', { tenant }), total('tin'), `tokens in of "${tenant}"`);
      assert.equal(sum(s, 'tollgate_output_tokens_total', { tenant }), total('tout'), `tokens out of "${tenant}"`);
      assert.equal(sum(s, 'tollgate_cached_tokens_total', { tenant }), total('tcached'));
      for (const route of new Set(mine.map((x) => x.route))) {
        const f = (x) => x.route === route;
        const l = { tenant, route };
        assert.equal(sum(s, 'tollgate_request_bytes_total', l), total('bin', f), `bytes in ${JSON.stringify(l)}`);
        assert.equal(sum(s, 'tollgate_response_bytes_total', l), total('bout', f), `bytes out ${JSON.stringify(l)}`);
        assert.equal(sum(s, 'tollgate_request_duration_seconds_count', l), total('n', f));
        assert.equal(Math.round(sum(s, 'tollgate_request_duration_seconds_sum', l) * 1e6), total('lat', f), `latency sum ${JSON.stringify(l)}`);
      }
    }
    assert.ok(sum(s, 'tollgate_cost_micro_usd_total') > 0);
    const rej = await sqlite(gw.dbPath, "SELECT tenant, reason, SUM(COALESCE(requests, 1)) AS n FROM usage_events WHERE outcome = 'rejected' GROUP BY 1, 2");
    for (const r of rej) assert.equal(sum(s, 'tollgate_rejections_total', { tenant: r.tenant, reason: r.reason }), r.n, `${r.tenant}/${r.reason}`);
    assert.equal(sum(s, 'tollgate_rejections_total'), rej.reduce((a, x) => a + x.n, 0));
    assert.ok(sum(s, 'tollgate_rejections_total', { tenant: 'ex3', reason: 'rate_limited' }) > 0);
    // MCP: each batch had an echo and an err-x call sent upstream (a refused batch none).
    const mcpSent = rows.filter((x) => x.route === 'mcp' && x.outcome !== 'rejected').reduce((a, x) => a + x.n, 0);
    assert.equal(sum(s, 'tollgate_mcp_tool_calls_total', { tool: 'echo' }), mcpSent);
    assert.equal(sum(s, 'tollgate_mcp_tool_calls_total', { tool: 'err-x' }), mcpSent);
    assert.equal(sum(s, 'tollgate_mcp_tool_errors_total', { tool: 'err-x' }), mcpSent);
    assert.equal(sum(s, 'tollgate_mcp_tool_errors_total', { tool: 'echo' }), 0);
  });
});

// ---- scrapes while series are being created -----------------------------------------------

/** Checks a scrape against the one before: no series gone, no counter down, histograms whole. */
function checkScrape(prev, text) {
  const s = parseMetrics(text);
  const now = new Map();
  for (const x of s) {
    const k = seriesKey(x);
    assert.ok(!now.has(k), `series twice in one scrape: ${k}`);
    now.set(k, x.value);
  }
  const gauges = /^tollgate_(requests_inflight|events_queued|events_spooling|upstream_targets)/;
  for (const [k, v] of prev) {
    if (gauges.test(k)) continue;
    assert.ok(now.has(k), `series gone between scrapes: ${k}`);
    assert.ok(now.get(k) >= v, `counter went down between scrapes: ${k} ${v} -> ${now.get(k)}`);
  }
  // Each histogram: buckets cumulative, +Inf = _count.
  const hist = new Map();
  for (const x of s) {
    if (!x.name.startsWith('tollgate_request_duration_seconds')) continue;
    const id = `${x.labels.tenant}\u0000${x.labels.route}`;
    const h = hist.get(id) ?? { buckets: [], count: null };
    if (x.name.endsWith('_bucket')) h.buckets.push(x.value);
    if (x.name.endsWith('_count')) h.count = x.value;
    hist.set(id, h);
  }
  for (const [id, h] of hist) {
    assert.equal(h.buckets.length, 15, id);
    for (let i = 1; i < h.buckets.length; i++) assert.ok(h.buckets[i] >= h.buckets[i - 1], `buckets of ${id} not cumulative`);
    assert.equal(h.buckets[14], h.count, `+Inf of ${id} is not its _count`);
  }
  return { samples: s, map: now };
}

describe('scrapes in a tight loop while 120 clients create tenants, models and series', () => {
  let mock;
  let gw;
  before(async () => {
    mock = await startMock({ threads: 2 });
    gw = await startGateway({
      workers: 2,
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [
        { name: 'api', path_prefix: '/api/', upstream: 'mock', kind: 'http' },
        { name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' },
      ],
      extra: { metrics: { max_tenants: 12, max_models: 150 } },
    });
  });
  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  test('every scrape valid and monotonic, the last one exact; promtool passes', async () => {
    const keys = [];
    const add = async (i) => {
      const k = await createTenantKey(gw, `c${i}`);
      await waitForKey(gw, k.secret, '/api/ready');
      keys.push(k.secret);
    };
    for (let i = 0; i < 4; i++) await add(i);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 120 });
    let sent = 0;
    let sentOa = 0;
    let stop = false;
    let scrapes = 0;
    const scraper = async () => {
      let prev = new Map();
      let last;
      while (!stop) {
        const r = await call(undefined, `${gw.adminUrl}/metrics`, { headers: gw.adminHeaders });
        assert.equal(r.status, 200);
        last = r.body.toString('utf8');
        prev = checkScrape(prev, last).map;
        scrapes++;
      }
      return last;
    };
    const scrapers = [scraper(), scraper()];
    // Tenants keep coming (past max_tenants: _other appears meanwhile).
    const adder = (async () => {
      for (let i = 4; i < 16 && !stop; i++) await add(i);
    })();
    const t0 = performance.now();
    const client = async (c) => {
      for (let i = 0; !stop && (i < 25 || performance.now() - t0 < 4000); i++) {
        const secret = keys[(c + i) % keys.length];
        const headers = { authorization: `Bearer ${secret}`, 'content-type': 'application/json' };
        const r =
          i % 3 === 0
            ? await call(agent, `${gw.url}/api/x?size=10`, { headers })
            : await call(agent, `${gw.url}/v1/chat/completions`, {
                method: 'POST',
                headers,
                body: JSON.stringify({ model: `m-${c}-${i}`, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
              });
        assert.equal(r.status, 200);
        sent++;
        if (i % 3) sentOa++;
        if (performance.now() - t0 > 20000) break;
      }
    };
    const base = sum(parseMetrics((await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders })).text), 'tollgate_requests_total');
    await Promise.all(Array.from({ length: 120 }, (_, c) => client(c)));
    await adder;
    // The last requests are counted: then one more scrape each.
    await waitFor(async () => sum(parseMetrics((await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders })).text), 'tollgate_requests_total') - base >= sent, {
      message: `${sent} requests counted`,
    });
    stop = true;
    const [last] = await Promise.all(scrapers);
    agent.destroy();
    assert.ok(scrapes > 20, `${scrapes} scrapes`);
    const s = parseMetrics(last);
    // Only the clients used the openai route: exact there.
    assert.equal(sum(s, 'tollgate_requests_total', { route: 'oa' }), sentOa);
    assert.equal(sum(s, 'tollgate_request_duration_seconds_count', { route: 'oa' }), sentOa);
    assert.equal(sum(s, 'tollgate_output_tokens_total'), 2 * sentOa);
    if (process.env.MA_DEBUG) console.error({ sent, sentOa, scrapes });
    assert.ok(values(s, 'tollgate_requests_total', 'tenant').size <= 13);
    assert.ok(values(s, 'tollgate_input_tokens_total', 'model').size <= 151);
    assert.ok(values(s, 'tollgate_input_tokens_total', 'model').has('_other'));
    await promtool(last);
  });
});

// ---- hostile scrapers of the admin listener ---------------------------------------------

describe('the admin listener under hostile scrapers (a scrape of several MB)', () => {
  let fake;
  let gw;
  let size; // bytes of a scrape
  before(async () => {
    fake = await startFake();
    gw = await startGateway({
      workers: 2,
      upstreams: [{ name: 'fake', targets: [fake.url] }],
      routes: FAKE_ROUTES(),
      extra: { metrics: { max_tools: 20000 } },
    });
    const { secret } = await createTenantKey(gw, 'big');
    await waitForKey(gw, secret, '/v1/models');
    // 9600 tools of ~250 bytes: two lines each.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const tasks = Array.from({ length: 150 }, (_, b) => async () => {
      const batch = Array.from({ length: 64 }, (_, k) => toolCall(k + 1, `${'T'.repeat(240)}-${b}-${k}`));
      const r = await call(agent, `${gw.url}/mcp`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(batch),
      });
      assert.equal(r.status, 200);
    });
    await pool(8, tasks);
    agent.destroy();
    await waitFor(async () => sum(parseMetrics((await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders })).text), 'tollgate_mcp_tool_calls_total') === 150 * 64, {
      message: 'every call counted',
    });
    size = (await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders })).body.length;
    assert.ok(size > 4e6, `${size} bytes`);
  });
  after(async () => {
    await gw?.stop();
    await fake?.stop();
  });

  test('30 concurrent scrapes: each whole (Content-Length) and the same, or 503 past the in-flight cap', async () => {
    // At most 8 /metrics answers are held unread at once (admin.c METRICS_INFLIGHT_MAX,
    // see the stalled scrapers below); the rest are told to retry.
    const answers = (await Promise.all(Array.from({ length: 30 }, () => rawScrape(gw.adminPort, scrapeHead(gw))))).map(splitAnswer);
    const ok = answers.filter((x) => x.status === 200);
    assert.ok(ok.length >= 8, `${ok.length} of 30 answered`);
    for (const x of answers) {
      assert.ok(x.status === 200 || x.status === 503, `status ${x.status}`);
      assert.equal(x.body.length, x.contentLength);
      if (x.status === 200) assert.ok(x.body.equals(ok[0].body));
    }
    await promtool(ok[0].body.toString('utf8'));
  });

  test('scrapes that leave mid-body, requests cut mid-head, a trickled request: the listener goes on', async () => {
    const leave = () =>
      new Promise((resolve) => {
        const s = net.connect(gw.adminPort, '127.0.0.1', () => s.write(scrapeHead(gw)));
        s.once('data', () => {
          s.resetAndDestroy();
          resolve();
        });
        s.on('error', () => resolve());
      });
    const cut = () =>
      new Promise((resolve) => {
        const s = net.connect(gw.adminPort, '127.0.0.1', () => s.end('GET /metr'));
        s.on('close', resolve);
        s.on('error', () => {});
      });
    await Promise.all([...Array.from({ length: 40 }, leave), ...Array.from({ length: 20 }, cut)]);
    // A request sent a byte at a time, while others are served meanwhile.
    const trickled = new Promise((resolve, reject) => {
      const parts = [];
      const s = net.connect(gw.adminPort, '127.0.0.1', async () => {
        for (const ch of scrapeHead(gw)) {
          s.write(ch);
          await new Promise((r) => setTimeout(r, 5));
        }
      });
      s.on('data', (d) => parts.push(d));
      s.on('error', reject);
      s.on('close', () => resolve(Buffer.concat(parts)));
    });
    const meanwhile = await request(`${gw.adminUrl}/healthz`);
    assert.equal(meanwhile.status, 200);
    const t = splitAnswer(await trickled);
    assert.equal(t.body.length, t.contentLength);
    assert.equal(t.body.length, size);
    assert.equal(gw.proc.exitCode, null);
  });

  // FINDING 2: every scrape connection gets its own copy of the whole text (admin.c
  // respond_text mallocs the answer per connection), held until the client reads it or
  // server.idle_timeout (60 s) passes, with no bound on how many: 48 scrapers that never
  // read hold ~48 copies (the kernel's socket buffers take only the first MB or so of
  // each). A slow or hostile scraper multiplies the scrape's size into the gateway's RSS.
  test('scrapers that never read do not each hold a copy of the scrape', async () => {
    const rss0 = vmRssKb(gw.proc.pid);
    const socks = [];
    let started = 0;
    const statuses = [];
    for (let i = 0; i < 48; i++) {
      const s = net.connect(gw.adminPort, '127.0.0.1', () => s.write(scrapeHead(gw)));
      s.once('data', (d) => {
        started++;
        statuses.push(d.toString('latin1', 0, 12));
        s.pause();
      });
      s.on('error', () => {});
      socks.push(s);
    }
    try {
      // Every one of them answered (rendered and queued, or refused): then what is held.
      await waitFor(() => started === 48, { timeoutMs: 20000, message: 'every scrape begun' });
      // At most 8 answers held unread (admin.c METRICS_INFLIGHT_MAX); the rest 503.
      const ok = statuses.filter((x) => x === 'HTTP/1.1 200').length;
      assert.ok(ok >= 1 && ok <= 8, `${ok} of 48 stalled scrapes answered 200`);
      assert.equal(statuses.filter((x) => x === 'HTTP/1.1 503').length, 48 - ok);
      // (Under ASan freed memory sits in its quarantine: RSS says nothing there.)
      const held = vmRssKb(gw.proc.pid) - rss0;
      if (!/asan/.test(process.env.TOLLGATE_BIN || ''))
        assert.ok(held * 1024 < 10 * size, `${Math.round(held / 1024)} MB held by 48 stalled scrapes of ${Math.round(size / 1e6)} MB`);
    } finally {
      for (const s of socks) s.destroy();
    }
    // And all of it is given back once they are gone.
    if (!/asan/.test(process.env.TOLLGATE_BIN || ''))
      await waitFor(() => vmRssKb(gw.proc.pid) - rss0 < 32 * 1024, { timeoutMs: 10000, message: 'memory given back' });
  });

  // FINDING 3: HEAD /metrics is answered with the whole text as a body (admin.c
  // respond_text writes it for HEAD too): a HEAD response has no body (RFC 9110 9.3.2),
  // and a client reading the next answer on the connection reads the scrape instead.
  test('HEAD /metrics: the head only', async () => {
    const a = await rawScrape(gw.adminPort, scrapeHead(gw, 'HEAD'));
    const x = splitAnswer(a);
    assert.equal(x.status, 200);
    assert.equal(x.body.length, 0, `${x.body.length} bytes of body after a HEAD answer`);
  });
});

// ---- reload while counting --------------------------------------------------------------

describe('SIGHUP while counting', () => {
  let mock;
  let gw;
  before(async () => {
    mock = await startMock({ threads: 2 });
    gw = await startGateway({
      workers: 2,
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [
        { name: 'api', path_prefix: '/api/', upstream: 'mock', kind: 'http' },
        { name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' },
      ],
      extra: { metrics: { max_models: 3 } },
    });
  });
  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  test('counters survive reloads (a new route, larger caps in the file), none goes down, the total exact', async () => {
    const { secret } = await createTenantKey(gw, 'hup');
    await waitForKey(gw, secret, '/api/ready');
    const headers = { authorization: `Bearer ${secret}`, 'content-type': 'application/json' };
    const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
    let stop = false;
    let sentOa = 0;
    let sentApi2 = 0;
    let reloads = 0;
    const client = async (c) => {
      for (let i = 0; !stop; i++) {
        if (reloads > 0 && i % 4 === 0) {
          const r = await call(agent, `${gw.url}/api2/x`, { headers });
          if (r.status === 200) sentApi2++;
          else assert.equal(r.status, 404); // before the reload took
          continue;
        }
        const r = await call(agent, `${gw.url}/v1/chat/completions`, {
          method: 'POST',
          headers,
          body: JSON.stringify({ model: `h-${c}-${i % 7}`, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
        });
        assert.equal(r.status, 200);
        sentOa++;
      }
    };
    const clients = Array.from({ length: 20 }, (_, c) => client(c));
    let prev = new Map();
    const scrapeCheck = async () => {
      prev = checkScrape(prev, (await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders })).text).map;
    };
    const config = { ...gw.config };
    for (let k = 0; k < 4; k++) {
      await waitFor(async () => (await scrapeCheck(), sentOa > 150 * (k + 1)), { timeoutMs: 15000, message: 'traffic flowing' });
      config.routes = [...gw.config.routes, { name: 'api2', path_prefix: '/api2/', upstream: 'mock', kind: 'http' }];
      config.metrics = { max_models: 100 + k }; // read once at start (docs): no effect
      fs.writeFileSync(gw.configPath, toYaml(config));
      const logged = (gw.stderr().match(/config reloaded/g) || []).length;
      gw.proc.kill('SIGHUP');
      await waitFor(async () => (await scrapeCheck(), (gw.stderr().match(/config reloaded/g) || []).length > logged), { message: 'reloaded' });
      reloads++;
    }
    await waitFor(async () => (await scrapeCheck(), sentApi2 > 20), { timeoutMs: 15000, message: 'the new route used' });
    stop = true;
    await Promise.all(clients);
    agent.destroy();
    let s;
    await waitFor(
      async () => {
        s = parseMetrics((await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders })).text);
        return sum(s, 'tollgate_requests_total', { route: 'oa' }) === sentOa && sum(s, 'tollgate_requests_total', { route: 'api2' }) === sentApi2;
      },
      { message: `${sentOa} + ${sentApi2} requests counted` },
    );
    checkScrape(prev, (await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders })).text);
    assert.equal(sum(s, 'tollgate_output_tokens_total', { tenant: 'hup' }), 2 * sentOa);
    // The caps of the start hold: 3 models and _other.
    const models = values(s, 'tollgate_input_tokens_total', 'model');
    assert.equal(models.size, 4, [...models].join(' '));
    assert.ok(models.has('_other'));
  });
});

// ---- MCP calls that never left ----------------------------------------------------------

describe('MCP tool calls that never reached the upstream', () => {
  let gw;
  let fake;
  before(async () => {
    fake = await startFake();
    const dead = refusedPort; // nothing listens there
    gw = await startGateway({
      workers: 1,
      upstreams: [
        { name: 'fake', targets: [fake.url] },
        { name: 'dead', targets: [`http://127.0.0.1:${dead}`] },
      ],
      routes: [
        { name: 'mcp', path_prefix: '/mcp', upstream: 'fake', kind: 'mcp' },
        { name: 'deadmcp', path_prefix: '/dead/mcp', upstream: 'dead', kind: 'mcp' },
      ],
    });
  });
  after(async () => {
    await gw?.stop();
    await fake?.stop();
  });

  // FINDING 4: tollgate_mcp_tool_calls_total is documented as "MCP tools/call requests
  // sent upstream" (docs/operations.md; phase_answer.c observe(): "on an MCP route that
  // reached the upstream"), but observe() only leaves out rejected requests: a batch to an
  // upstream that cannot be reached (502, reason upstream_unreachable) counts its calls as
  // sent, and as errors of each tool.
  test('a batch to an unreachable upstream is not counted as calls sent upstream', async () => {
    const { secret } = await createTenantKey(gw, 'mc');
    await waitForKey(gw, secret, '/mcp');
    const headers = { authorization: `Bearer ${secret}`, 'content-type': 'application/json', accept: 'application/json' };
    const ok = await request(`${gw.url}/mcp`, { method: 'POST', headers, body: JSON.stringify([toolCall(1, 'reached')]) });
    assert.equal(ok.status, 200);
    const r = await request(`${gw.url}/dead/mcp`, { method: 'POST', headers, body: JSON.stringify([toolCall(1, 'never-sent'), toolCall(2, 'never-sent-2')]) });
    assert.equal(r.status, 502);
    const s = await waitFor(
      async () => {
        const x = parseMetrics((await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders })).text);
        return sum(x, 'tollgate_requests_total', { tenant: 'mc', route: 'deadmcp' }) === 1 && x;
      },
      { message: 'the 502 counted' },
    );
    assert.equal(sum(s, 'tollgate_mcp_tool_calls_total', { tenant: 'mc', tool: 'reached' }), 1);
    assert.equal(sum(s, 'tollgate_mcp_tool_calls_total', { tenant: 'mc' }), 1, 'calls counted as sent upstream');
  });
});

// ---- absurd numbers from an upstream ----------------------------------------------------

describe('absurd token counts from an upstream', () => {
  let fake;
  let gw;
  let agent;
  const scrape = async () => {
    const r = await request(`${gw.adminUrl}/metrics`, { headers: gw.adminHeaders });
    assert.equal(r.status, 200);
    return r.text;
  };
  before(async () => {
    fake = await startFake();
    gw = await startGateway({ workers: 1, upstreams: [{ name: 'fake', targets: [fake.url] }], routes: FAKE_ROUTES() });
    agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  });
  after(async () => {
    agent?.destroy();
    try {
      await gw?.stop(); // a sanitizer report fails here (TOLLGATE_BIN=build/tollgate-asan)
    } finally {
      await fake?.stop(); // (else its server keeps the test process alive)
    }
  });

  // FINDING 5: counters are uint64 sums that wrap: an upstream reporting 2^61 input and
  // 2^61 output tokens (read as int64s, and billed as such) eight times brings
  // tollgate_input_tokens_total back to 0 (metrics.c add() has no saturation), so the
  // counter goes down and Prometheus reads a reset (with a price, the cost counter wraps
  // after two answers: each cost_micros is INT64_MAX). A counter must never decrease.
  test('an upstream reporting absurd token counts cannot make a counter go down', async () => {
    const { secret: s2 } = await createTenantKey(gw, 'huge');
    await waitForKey(gw, s2, '/v1/models');
    let prev = new Map();
    let last = 0;
    const billable = async () => sum(parseMetrics(await scrape()), 'tollgate_requests_total', { tenant: 'huge', route: 'oa', outcome: 'billable' });
    const base = await billable(); // waitForKey's
    for (let i = 0; i < 9; i++) {
      const r = await call(agent, `${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${s2}`, 'content-type': 'application/json', 'x-answer-tokens': String(2n ** 61n) },
        body: chatBody('m'),
      });
      assert.equal(r.status, 200);
      const text = await waitFor(
        async () => {
          const t = await scrape();
          return sum(parseMetrics(t), 'tollgate_requests_total', { tenant: 'huge', route: 'oa', outcome: 'billable' }) === base + i + 1 && t;
        },
        { message: `answer ${i + 1} counted` },
      ).catch(async (e) => {
        throw new Error(`${e.message}: ${(await scrape()).split('\n').filter((l) => l.includes('huge')).join(' / ')}`);
      });
      prev = checkScrape(prev, text).map; // no counter down
      const now = prev.get('tollgate_input_tokens_total{model="m",tenant="huge"}');
      assert.ok(now >= last, `input tokens went from ${last} to ${now}`);
      last = now;
    }
  });

  // FINDING 6 (billing and store, found here; fails with the ASan/UBSan build only): 2^62
  // input and 2^62 output tokens from an upstream overflow int64 in src/bill/bill.c
  // tg_bill_tokens (tokens_in + tokens_out), and large counts summed over a writer batch
  // overflow in src/store/sqlite_events.c (the usage_daily aggregate, g->tokens_in +=):
  // undefined behaviour; the UBSan gateway aborts on it (-fno-sanitize-recover), so any
  // upstream takes a sanitizer gateway down (FINDING 5's test meets the store one first
  // there); in the release build the sums are whatever the overflow gives.
  test('2^62 + 2^62 tokens: the gateway survives and goes on counting', async () => {
    const { secret } = await createTenantKey(gw, 'ovf');
    await waitForKey(gw, secret, '/v1/models');
    const headers = { authorization: `Bearer ${secret}`, 'content-type': 'application/json' };
    const r = await call(agent, `${gw.url}/v1/chat/completions`, { method: 'POST', headers: { ...headers, 'x-answer-tokens': String(2n ** 62n) }, body: chatBody('m') });
    assert.equal(r.status, 200);
    const after_ = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers, body: chatBody('m') });
    assert.equal(after_.status, 200);
    assert.equal(gw.proc.exitCode, null);
    assert.equal(gw.proc.signalCode, null);
  });
});
