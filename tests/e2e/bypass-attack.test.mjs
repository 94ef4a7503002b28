// A hostile tenant's further ways to get AI calls free or cheaper than the upstream served
// (issue 9, section 3, attacked after the bypass branch landed): each a regression test
// that failed on the gateway before its fix. An upstream in node answers as the providers
// (and the routers in front of them) do where the mock does not.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';

import { createTenantKey, request, startGateway, startMcpServer, startMock, waitFor, waitForEvent as waitForRow, waitForKey, waitLoaded } from './lib/harness.mjs';

const waitForEvent = async (g, id) => {
  const ev = await waitForRow(g, id);
  for (const k of ['reason', 'price_flag']) ev[k] ??= '';
  return ev;
};
/** Micro-USD of tokens at micro-USD-per-million prices, rounded half up once (price.h). */
const tokenCost = (inTok, outTok, inPrice, outPrice) => Math.floor((inTok * inPrice + outTok * outPrice + 500000) / 1000000);

// x-answer picks what the upstream answers:
//   queued:  the Responses API's answer to "background": true (queued, usage null);
//   routed:  a router's answer: it ran a model of its own choosing, with usage.
const answers = {
  queued: () => ({ id: 'resp_1', object: 'response', status: 'queued', background: true, model: 'gpt-4o', output: [], usage: null }),
  chat: () => ({ id: 'chatcmpl-2', object: 'chat.completion', model: 'gpt-4o', choices: [], usage: { prompt_tokens: 1000, completion_tokens: 1000, total_tokens: 2000 } }),
  routed: () => ({ id: 'chatcmpl-1', object: 'chat.completion', model: 'router-picked-model', choices: [], usage: { prompt_tokens: 1000, completion_tokens: 1000, total_tokens: 2000 } }),
};

/**
 * A JSON-RPC server that runs each tools/call (counted in mcpRan) and answers 300 ms later:
 * tool "boom" with a JSON-RPC error, any other with a result.
 */
const mcpRan = {};
function slowMcp(req, res) {
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', () => {
    const msgs = [].concat(JSON.parse(body));
    const out = msgs.map((m) => {
      const name = m.params?.name;
      mcpRan[name] = (mcpRan[name] ?? 0) + 1;
      return name === 'boom' ? { jsonrpc: '2.0', id: m.id, error: { code: -32000, message: 'boom' } } : { jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: 'done' }] } };
    });
    setTimeout(() => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(Array.isArray(JSON.parse(body)) ? out : out[0]));
    }, 300);
  });
}

let mock, up, gw, srv;
const held = []; // answers an x-answer: hold request waits for
before(async () => {
  mock = await startMock();
  srv = await startMcpServer({ json: true });
  up = http.createServer((req, res) => {
    if (req.url.startsWith('/slowmcp')) return slowMcp(req, res);
    req.resume();
    req.on('end', () => {
      // Path parameters are dropped from each segment before routing, as servlet
      // containers do (Tomcat, Jetty): /a;x=1/b is /a/b.
      const route = req.url.split('?')[0].replace(/;[^/]*/g, '');
      if (req.headers['x-answer'] === 'hold') return held.push(res); // answered by the test
      if (req.headers['x-answer'] === 'stream') {
        // A stream without usage, as asked by a body without stream_options.
        res.setHeader('content-type', 'text/event-stream');
        for (let i = 0; i < 5; i++) res.write(`data: {"object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"tok${i} "}}]}\n\n`);
        return res.end('data: [DONE]\n\n');
      }
      const make = answers[req.headers['x-answer']] ?? (route === '/router/chat/completions' ? answers.chat : undefined);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(make ? make() : { ok: true }));
    });
  });
  await new Promise((r) => up.listen(0, '127.0.0.1', r));
  gw = await startGateway({
    upstreams: [
      { name: 'mock', targets: [mock.url] },
      { name: 'node', targets: [`http://127.0.0.1:${up.address().port}`] },
      { name: 'mcpsrv', targets: [`http://127.0.0.1:${srv.port}`] },
    ],
    routes: [
      { name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' },
      { name: 'router', path_prefix: '/router/', upstream: 'node', kind: 'openai' },
      { name: 'mcp', path_prefix: '/mcp', upstream: 'mcpsrv', kind: 'mcp' },
      { name: 'slowmcp', path_prefix: '/slowmcp', upstream: 'node', kind: 'mcp' },
      { name: 'an', path_prefix: '/anthropic/', upstream: 'node', kind: 'anthropic' },
    ],
    extra: { prices: { models: { 'gpt-4o-mini': { input: '0.15', output: '0.6' }, 'gpt-4o': { input: '2.5', output: '10' } }, tools: { add: { call: '1' }, slow: { call: '2' }, boom: { call: '3' } } }, defaults: { max_output_tokens: 4096 } },
  });
});
after(async () => {
  await gw?.stop();
  await srv?.stop();
  await mock?.stop();
  for (const res of held) res.destroy();
  await new Promise((r) => (up ? up.close(r) : r()));
});

async function tenant(name, { budget } = {}) {
  const { secret } = await createTenantKey(gw, name);
  await waitForKey(gw, secret, '/v1/models');
  if (budget) {
    assert.equal((await gw.cli(['budget', 'set', '--tenant', name, '--monthly', budget])).code, 0);
    await waitLoaded(gw);
  }
  return { authorization: `Bearer ${secret}`, 'content-type': 'application/json' };
}

describe('Responses API background mode', () => {
  test('"background": true (queued, usage null, result fetched by a body-less GET) is charged its bound, not free', async () => {
    const headers = await tenant('background');
    const body = JSON.stringify({ model: 'gpt-4o', input: 'write a long novel', background: true, max_output_tokens: 3000 });
    const r = await request(`${gw.url}/router/responses`, { method: 'POST', headers: { ...headers, 'x-answer': 'queued' }, body });
    assert.equal(r.status, 200, r.text);
    const ev = await waitForEvent(gw, r.headers['x-request-id']);
    const inTok = Math.ceil(Buffer.byteLength(body) / 4);
    assert.deepEqual([ev.outcome, ev.price_flag, ev.tokens_in, ev.tokens_out], ['billable', 'estimated', inTok, 3000]);
    assert.equal(ev.cost_micros, tokenCost(inTok, 3000, 2500000, 10000000));

    // Without a bound of its own: the default one admission reserved.
    const noMax = JSON.stringify({ model: 'gpt-4o', input: 'write a long novel', background: true });
    const r2 = await request(`${gw.url}/router/responses`, { method: 'POST', headers: { ...headers, 'x-answer': 'queued' }, body: noMax });
    const ev2 = await waitForEvent(gw, r2.headers['x-request-id']);
    assert.deepEqual([ev2.price_flag, ev2.tokens_out], ['estimated', 4096]);
    assert.ok(ev2.cost_micros > 0);

    // A path tollgate does not recognise that an upstream may serve as /responses.
    const r3 = await request(`${gw.url}/router/responses/`, { method: 'POST', headers: { ...headers, 'x-answer': 'queued' }, body });
    const ev3 = await waitForEvent(gw, r3.headers['x-request-id']);
    assert.deepEqual([ev3.reason, ev3.price_flag, ev3.tokens_out], ['endpoint_unknown', 'estimated', 3000]);
  });

  test('an ordinary (not background) response is still metered from its usage', async () => {
    const headers = await tenant('foreground');
    const r = await request(`${gw.url}/v1/responses`, { method: 'POST', headers, body: JSON.stringify({ model: 'gpt-4o', input: 'hi', max_output_tokens: 7 }) });
    assert.equal(r.status, 200, r.text);
    const want = JSON.parse(r.headers['x-mock-usage']);
    const ev = await waitForEvent(gw, r.headers['x-request-id']);
    assert.deepEqual([ev.price_flag, ev.tokens_in, ev.tokens_out], ['', want.input, want.output]);
  });
});

describe('the model the upstream reports', () => {
  test('a reported model with no price is priced as the model asked for (admitted and reserved), not free', async () => {
    const headers = await tenant('routed', { budget: '10' });
    const r = await request(`${gw.url}/router/chat/completions`, {
      method: 'POST',
      headers: { ...headers, 'x-answer': 'routed' },
      body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }),
    });
    assert.equal(r.status, 200, r.text);
    const ev = await waitForEvent(gw, r.headers['x-request-id']);
    assert.deepEqual([ev.model, ev.tokens_in, ev.tokens_out, ev.price_flag], ['router-picked-model', 1000, 1000, 'model_asked']);
    assert.equal(ev.cost_micros, tokenCost(1000, 1000, 2500000, 10000000));
  });

  test('on a budgeted tenant a body that names no model (or not as a string) is refused without a "*" price', async () => {
    const headers = await tenant('nomodel', { budget: '10' });
    for (const body of [{ messages: [] }, { model: 5, messages: [] }, { model: null, messages: [] }]) {
      const r = await request(`${gw.url}/router/chat/completions`, { method: 'POST', headers: { ...headers, 'x-answer': 'routed' }, body: JSON.stringify(body) });
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
      assert.equal(JSON.parse(r.text).error.type, 'model_not_priced');
    }
    // A model that is priced still goes through.
    const ok = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }) });
    assert.equal(ok.status, 200, ok.text);
  });
});

describe('endpoints are read from the path as forwarded', () => {
  test('a path routes match as a free endpoint but the upstream serves as chat is metered, not free', async () => {
    // Routes and the old endpoint detection read "%2F" as "/" and drop ";x" up to the next
    // "/": /router/chat/completions;x=%2F..%2Fmoderations matched as .../chat/moderations
    // (free, not even admitted on an estimate), while a servlet upstream drops the path
    // parameter and serves /router/chat/completions.
    const headers = await tenant('matrix');
    const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
    const r = await request(`${gw.url}/router/chat/completions;x=%2F..%2Fmoderations`, { method: 'POST', headers, body });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().usage.completion_tokens, 1000, 'the upstream served a chat completion');
    const ev = await waitForEvent(gw, r.headers['x-request-id']);
    assert.deepEqual([ev.outcome, ev.reason, ev.tokens_in, ev.tokens_out], ['billable', 'endpoint_unknown', 1000, 1000]);
    assert.equal(ev.cost_micros, tokenCost(1000, 1000, 2500000, 10000000));
  });

  test('a trailing "/" the upstream answers without usage is charged on an estimate, not free', async () => {
    // The mock serves no endpoint at /v1/chat/completions/ (it answers {"ok":true}): read
    // as the chat endpoint, its answer had no usage and cost 0.
    const headers = await tenant('trailing');
    const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], max_tokens: 400 });
    const r = await request(`${gw.url}/v1/chat/completions/`, { method: 'POST', headers, body });
    assert.equal(r.status, 200, r.text);
    const ev = await waitForEvent(gw, r.headers['x-request-id']);
    assert.deepEqual([ev.outcome, ev.reason, ev.price_flag], ['billable', 'endpoint_unknown', 'estimated']);
    assert.ok(ev.cost_micros > 0);
  });
});

describe('MCP ids spelled as another number', () => {
  async function mcpSession(headers) {
    const base = { ...headers, accept: 'application/json, text/event-stream' };
    const post = (body, h = {}) => request(`${gw.url}/mcp`, { method: 'POST', headers: { ...base, ...h }, body: typeof body === 'string' ? body : JSON.stringify(body) });
    const init = await post({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'attack', version: '1' } } });
    assert.equal(init.status, 200, init.text);
    const h = { 'mcp-session-id': init.headers['mcp-session-id'], 'mcp-protocol-version': '2025-03-26' };
    assert.equal((await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, h)).status, 202);
    return (body) => post(body, h);
  }
  const add = (id) => `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}`;

  test('a tools/call with id 1.0 or 1e0 (answered as id 1 by the SDK) is billed, not "no_result"', async () => {
    const post = await mcpSession(await tenant('mcpid'));
    for (const [body, calls] of [[add('1.0'), 1], [add('1e0'), 1], [`[${add('2.0')},${add(3)}]`, 2]]) {
      const before = (await srv.stats()).add;
      const r = await post(body);
      assert.equal(r.status, 200, r.text);
      assert.equal((await srv.stats()).add - before, calls, 'the server ran the calls');
      const ev = await waitForEvent(gw, r.headers['x-request-id']);
      assert.deepEqual([ev.outcome, ev.reason, ev.cost_micros], ['billable', '', calls * 1000000], body);
    }
  });

  test('two calls whose ids are one number spelled twice (1 and 1.0) are refused, not one billed', async () => {
    const post = await mcpSession(await tenant('mcpid2'));
    const before = (await srv.stats()).add;
    const r = await post(`[${add(1)},${add('1.0')}]`);
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json().error.code, -32600);
    assert.equal((await srv.stats()).add, before);
  });
});

describe('n answers in one request', () => {
  test('"n": 50 reserves 50 answers against a hard budget (the provider bills each), not one', async () => {
    // 0.01 USD. A call for 50 answers of up to 1000 gpt-4o-mini tokens (30000 micro-USD)
    // is in flight: its reservation alone is past the budget, so a second call waits for
    // it. Reserved as one answer (600 micro-USD), the second went through as well.
    const headers = await tenant('nchoices', { budget: '0.01' });
    for (const n of ['50', '50.0']) {
      const first = request(`${gw.url}/router/chat/completions`, {
        method: 'POST',
        headers: { ...headers, 'x-answer': 'hold' },
        body: `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":1000,"n":${n}}`,
      });
      await waitFor(() => held.length > 0, { message: 'the first call reached the upstream' });
      const second = await request(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers,
        body: '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":10}',
      });
      assert.equal(second.status, 402, `n ${n}: ${second.text}`);
      assert.equal(JSON.parse(second.text).error.type, 'budget_exceeded');
      held.shift().end('{"object":"chat.completion","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}');
      assert.equal((await first).status, 200);
    }
  });
});

describe('an MCP client that leaves before the answer', () => {
  /** Sends one POST and closes at once: the call is admitted and forwarded, its answer never read. */
  async function sendAndLeave(secret, id, body) {
    const sock = net.connect(gw.port, '127.0.0.1');
    await new Promise((resolve, reject) => {
      sock.on('error', reject);
      sock.on('connect', () =>
        sock.end(`POST /slowmcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\nContent-Type: application/json\r\nAccept: application/json\r\nx-request-id: ${id}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, resolve),
      );
    });
    sock.destroy();
    return waitForEvent(gw, id);
  }
  const tcall = (id, name) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } });

  test('still pays for the tools the server ran (drained), not client_closed at cost 0', async () => {
    const { secret } = await createTenantKey(gw, 'mcpleave');
    await waitForKey(gw, secret, '/v1/models');
    const before = mcpRan.slow ?? 0;
    const ev = await sendAndLeave(secret, 'mcp-left-1', JSON.stringify(tcall(1, 'slow')));
    assert.equal(mcpRan.slow - before, 1, 'the server ran the tool');
    assert.deepEqual([ev.status, ev.outcome, ev.reason, ev.tool, ev.cost_micros], [200, 'billable', 'client_closed', 'slow', 2000000]);

    // A batch: the call that got a result is billed, the one that got an error is not.
    const ev2 = await sendAndLeave(secret, 'mcp-left-2', JSON.stringify([tcall(2, 'slow'), tcall(3, 'boom')]));
    assert.deepEqual([ev2.outcome, ev2.reason, ev2.cost_micros], ['billable', 'client_closed', 2000000]);

    // Nothing but an error: not billable, and the reason says why.
    const ev3 = await sendAndLeave(secret, 'mcp-left-3', JSON.stringify(tcall(4, 'boom')));
    assert.deepEqual([ev3.outcome, ev3.reason, ev3.cost_micros], ['failed', 'rpc_error', 0]);
  });
});

describe('a body tollgate cannot read', () => {
  test('a streamed chat body behind a BOM (read by a provider, not by tollgate) is charged on an estimate, not free', async () => {
    // Python's json.loads(bytes) reads a UTF-8 BOM (and UTF-16): the upstream streams
    // without usage, since tollgate could not ask for it.
    const headers = await tenant('bom');
    const body = '\ufeff' + JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], max_tokens: 50, stream: true });
    const r = await request(`${gw.url}/router/chat/completions`, { method: 'POST', headers: { ...headers, 'x-answer': 'stream' }, body });
    assert.equal(r.status, 200, r.text);
    const ev = await waitForEvent(gw, r.headers['x-request-id']);
    assert.deepEqual([ev.outcome, ev.price_flag, ev.tokens_in, ev.tokens_out], ['billable', 'estimated', Math.ceil(Buffer.byteLength(body) / 4), 5]);
    assert.ok(ev.cost_micros > 0);
  });
});

describe('a compressed request body on a metered route', () => {
  test('is refused with 415, not forwarded past its model\'s limits and estimated from its compressed size', async () => {
    const headers = await tenant('gzipbody');
    // A model limit tollgate could not have applied: it reads the model from the body.
    assert.equal((await gw.cli(['limit', 'set', '--tenant', 'gzipbody', '--model', 'gpt-4o', '--rpm', '1'])).code, 0);
    await waitLoaded(gw);
    const json = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'word '.repeat(20000) }], stream: true });
    const gz = zlib.gzipSync(json);
    for (const coding of ['gzip', 'GZIP ', 'identity, gzip']) {
      const r = await new Promise((resolve, reject) => {
        const req = http.request(`${gw.url}/router/chat/completions`, { method: 'POST', headers: { ...headers, 'content-encoding': coding, 'x-answer': 'stream', 'content-length': gz.length } }, (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode, text, id: res.headers['x-request-id'] }));
        });
        req.on('error', reject);
        req.end(gz);
      });
      assert.equal(r.status, 415, `${coding}: ${r.text}`);
      const ev = await waitForEvent(gw, r.id);
      assert.deepEqual([ev.outcome, ev.reason], ['rejected', 'content_encoding']);
    }
    // "identity" is no coding at all.
    const ok = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { ...headers, 'content-encoding': 'identity' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 }) });
    assert.equal(ok.status, 200, ok.text);
  });
});

describe('endpoints that spend out of sight', () => {
  test('an ephemeral credential, a batch or a fine-tuning job is refused on an AI route (403), not admitted on a tiny estimate', async () => {
    // A realtime client secret lets the client talk to the provider directly on the
    // operator's account; a batch's or a job's work is billed later, its results fetched
    // by GETs with nothing to meter.
    const headers = await tenant('offside');
    for (const [path, body] of [
      ['/router/realtime/client_secrets', ''],
      ['/router/realtime/sessions', JSON.stringify({ model: 'gpt-4o-realtime-preview' })],
      ['/router/realtime/transcription_sessions/', '{}'],
      ['/router/batches', JSON.stringify({ input_file_id: 'file-1', endpoint: '/v1/chat/completions', completion_window: '24h' })],
      ['/router/fine_tuning/jobs', JSON.stringify({ model: 'gpt-4o-mini', training_file: 'file-1' })],
      ['/router/realtime/calls', 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n'],
      ['/router/videos', JSON.stringify({ model: 'sora-2', prompt: 'a toll gate', seconds: '12' })],
      ['/anthropic/messages/batches', JSON.stringify({ requests: [{ custom_id: 'a', params: { model: 'claude-x', max_tokens: 4096, messages: [] } }] })],
      // What a lenient upstream reads as the same endpoint: path parameters (also
      // percent-encoded) and trailing dots.
      ['/router/threads/thread_1/runs;x=1', JSON.stringify({ assistant_id: 'asst_1' })],
      ['/router/threads/thread_1/runs%3B', JSON.stringify({ assistant_id: 'asst_1' })],
      ['/router/threads/thread_1/runs.', JSON.stringify({ assistant_id: 'asst_1' })],
      ['/router/batches./', JSON.stringify({ input_file_id: 'file-1' })],
    ]) {
      const r = await request(`${gw.url}${path}`, { method: 'POST', headers, body });
      assert.equal(r.status, 403, `${path}: ${r.text}`);
      assert.equal(JSON.parse(r.text).error.type, 'endpoint_not_metered');
      const ev = await waitForEvent(gw, r.headers['x-request-id']);
      assert.deepEqual([ev.outcome, ev.reason], ['rejected', 'endpoint_not_metered'], path);
    }
    // Reading a batch (no body) stays allowed: it spends nothing.
    const list = await request(`${gw.url}/router/batches`, { headers });
    assert.equal(list.status, 200, list.text);
  });
});

describe('a client that leaves at once, on an answer longer than the drain', () => {
  let gwDrain;
  before(async () => {
    gwDrain = await startGateway({
      upstreams: [{ name: 'mock', targets: [mock.url] }],
      routes: [
        { name: 'an', path_prefix: '/v1/messages', upstream: 'mock', kind: 'anthropic' },
        { name: 'oa', path_prefix: '/v1/', upstream: 'mock', kind: 'openai' },
      ],
      extra: { prices: { models: { 'gpt-4o': { input: '2.5', output: '10' }, 'claude-x': { input: '3', output: '15' } } }, ai: { drain_after_disconnect: '1s' } },
    });
  });
  after(async () => {
    await gwDrain?.stop();
  });

  /** Sends a stream request, reads until `until` shows, leaves; resolves with the request id. */
  function readAndLeave(secret, path, body, until) {
    const sock = net.connect(gwDrain.port, '127.0.0.1');
    return new Promise((resolve, reject) => {
      let text = '';
      sock.setEncoding('latin1');
      sock.on('error', reject);
      sock.on('connect', () =>
        sock.write(
          `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\nContent-Type: application/json\r\n` +
            `x-mock-interval-ms: 50\r\nx-mock-stall-after: 12\r\nx-mock-stall-ms: 3600000\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
        ),
      );
      sock.on('data', (d) => {
        text += d;
        if (!text.includes(until)) return;
        sock.destroy();
        resolve(/x-request-id: (\S+)/i.exec(text)[1]);
      });
    });
  }

  test('is charged for every event the upstream sent, not only the one it read', async () => {
    // The client reads the first token and leaves; the upstream goes on sending (50 ms
    // apart) up to 12 events, then stalls past ai.drain_after_disconnect (1 s): no usage,
    // an estimate. The provider generated (and bills) all 12, not the 1 or 2 delivered.
    const { secret } = await createTenantKey(gwDrain, 'quickleave');
    await waitForKey(gwDrain, secret, '/v1/models');
    const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'a long story' }], max_tokens: 20, stream: true });
    const ev = await waitForEvent(gwDrain, await readAndLeave(secret, '/v1/chat/completions', body, 'tok0 '));
    assert.deepEqual([ev.outcome, ev.reason, ev.price_flag, ev.tokens_out], ['billable', 'client_closed', 'estimated', 12]);
    assert.equal(ev.cost_micros, tokenCost(ev.tokens_in, 12, 2500000, 10000000));
  });

  test('a tiny max_completion_tokens beside the max_tokens Anthropic reads does not cap the estimate', async () => {
    // Anthropic reads max_tokens (30); the estimate was capped at the first count named
    // (max_completion_tokens: 1). 12 events: message_start, content_block_start, ping and
    // 9 text deltas.
    const { secret } = await createTenantKey(gwDrain, 'maxpick');
    await waitForKey(gwDrain, secret, '/v1/models');
    const body = JSON.stringify({ model: 'claude-x', messages: [{ role: 'user', content: 'a long story' }], max_completion_tokens: 1, max_tokens: 30, stream: true });
    const ev = await waitForEvent(gwDrain, await readAndLeave(secret, '/v1/messages', body, 'tok0 '));
    assert.deepEqual([ev.outcome, ev.reason, ev.price_flag, ev.tokens_out], ['billable', 'client_closed', 'estimated', 9]);
  });
});
