// MCP metering and tool policy end to end: the official MCP SDK client (Streamable HTTP)
// talks through the gateway (route kind mcp) to lib/mcp-server.mjs, an McpServer from the
// same SDK, once with SSE answers (the SDK's default) and once with JSON answers.
//
// What the gateway must do: one event per HTTP request with the JSON-RPC method
// (rpc_method; the first request's for a batch) and, for tools/call, the tool; a tools/call
// whose result has isError is 'failed' with reason 'tool_error' and never billed; a tool the
// tenant's rules do not allow (`tollgate tool allow|deny`) is refused with 403, reason
// 'tool_denied', before the server sees it; a per-tool rate limit (`limit set --tool`) gives
// 429, reason 'rate_limited'.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import {
  createTenantKey,
  parseSse,
  request,
  startGateway,
  startMcpServer,
  waitForEvent,
  waitForKey,
  waitLoaded,
} from './lib/harness.mjs';

/** The documented wait for a running gateway to pick up a policy change (it polls within
 * 1 s; the rules are read every 250 ms). */

/** A fetch for the MCP client transport that notes, per POST, the JSON-RPC method(s) sent
 * and the gateway's x-request-id and status. */
function recorder() {
  const posts = [];
  return {
    posts,
    fetch: async (url, init = {}) => {
      const r = await fetch(url, init);
      if ((init.method ?? 'GET') === 'POST') {
        const body = JSON.parse(init.body);
        const msgs = Array.isArray(body) ? body : [body];
        posts.push({ methods: msgs.map((m) => m.method), requestId: r.headers.get('x-request-id'), status: r.status });
      }
      return r;
    },
    /** The last POST that sent a request with this method. */
    last(method) {
      const p = posts.findLast((x) => x.methods.includes(method));
      assert.ok(p, `a POST with ${method} in ${JSON.stringify(posts)}`);
      return p;
    },
  };
}

for (const json of [false, true]) {
  describe(`MCP through the gateway (${json ? 'JSON' : 'SSE'} responses)`, () => {
    let srv;
    let gw;

    before(async () => {
      srv = await startMcpServer({ json });
      gw = await startGateway({
        upstreams: [{ name: 'mcpsrv', targets: [`http://127.0.0.1:${srv.port}`] }],
        routes: [{ name: 'mcp', path_prefix: '/mcp', upstream: 'mcpsrv', kind: 'mcp' }],
      });
    });
    after(async () => {
      await gw?.stop();
      if (srv) assert.deepEqual(await srv.stop(), { code: 0, signal: null });
    });

    /** A tenant with a key the gateway already accepts, and a connected SDK client. */
    async function connect(tenant) {
      const { secret } = await createTenantKey(gw, tenant);
      await waitForKey(gw, secret, '/mcp');
      const rec = recorder();
      const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), {
        requestInit: { headers: { Authorization: `Bearer ${secret}` } },
        fetch: rec.fetch,
      });
      const client = new Client({ name: 'tollgate-e2e', version: '1.0.0' });
      await client.connect(transport);
      return { client, rec, secret, close: () => client.close() };
    }

    async function event(requestId) {
      assert.ok(requestId, 'the gateway answered with an x-request-id');
      return waitForEvent(gw, requestId);
    }

    test('initialize, tools/list and tools/call echo are metered; the server never sees the tenant key', async () => {
      const { client, rec, close } = await connect('acme');
      try {
        const init = await event(rec.last('initialize').requestId);
        assert.deepEqual([init.tenant, init.route, init.rpc_method, init.outcome, init.tool], ['acme', 'mcp', 'initialize', 'billable', null]);

        const { tools } = await client.listTools();
        assert.deepEqual(tools.map((t) => t.name).sort(), ['add', 'echo', 'fail', 'secret_admin']);
        const list = await event(rec.last('tools/list').requestId);
        assert.deepEqual([list.rpc_method, list.outcome, list.tool], ['tools/list', 'billable', null]);

        const before = await srv.stats();
        const r = await client.callTool({ name: 'echo', arguments: { text: 'hello through the gateway' } });
        assert.deepEqual(r.content, [{ type: 'text', text: 'hello through the gateway' }]);
        assert.equal((await srv.stats()).echo, before.echo + 1);
        const call = await event(rec.last('tools/call').requestId);
        assert.deepEqual(
          [call.tenant, call.method, call.status, call.rpc_method, call.tool, call.outcome, call.reason],
          ['acme', 'POST', 200, 'tools/call', 'echo', 'billable', null],
        );

        const seen = await request(`http://127.0.0.1:${srv.port}/last-headers`);
        assert.equal(seen.json().authorization, undefined);
        assert.equal(seen.json()['x-tollgate-tenant'], 'acme');
      } finally {
        await close();
      }
    });

    test('a tool error (isError) is failed, reason tool_error, not billed', async () => {
      const { client, rec, close } = await connect('initech');
      try {
        const r = await client.callTool({ name: 'fail', arguments: {} });
        assert.equal(r.isError, true);
        const ev = await event(rec.last('tools/call').requestId);
        assert.deepEqual(
          [ev.status, ev.rpc_method, ev.tool, ev.outcome, ev.reason, ev.cost_micros],
          [200, 'tools/call', 'fail', 'failed', 'tool_error', 0],
        );
        const add = await client.callTool({ name: 'add', arguments: { a: 2, b: 40 } });
        assert.deepEqual(add.structuredContent, { sum: 42 });
        assert.equal((await event(rec.last('tools/call').requestId)).outcome, 'billable');
      } finally {
        await close();
      }
    });

    test('tool deny: the call is refused with 403 before the server sees it', async () => {
      const { client, rec, close } = await connect('globex');
      try {
        const d = await gw.cli(['tool', 'deny', '--tenant', 'globex', 'secret_*']);
        assert.equal(d.code, 0, d.stderr);
        await waitLoaded(gw);
        await assert.rejects(client.callTool({ name: 'secret_admin', arguments: {} }), (e) => {
          assert.ok(e.code === 403 || /\b403\b/.test(e.message), `${e.code} ${e.message}`);
          return true;
        });
        const post = rec.last('tools/call');
        assert.equal(post.status, 403);
        const ev = await event(post.requestId);
        assert.deepEqual(
          [ev.status, ev.rpc_method, ev.tool, ev.outcome, ev.reason, ev.cost_micros],
          [403, 'tools/call', 'secret_admin', 'rejected', 'tool_denied', 0],
        );
        assert.equal((await srv.stats()).secret_admin, 0);
        // other tools, and other tenants, are not affected
        const ok = await client.callTool({ name: 'echo', arguments: { text: 'still fine' } });
        assert.equal(ok.content[0].text, 'still fine');
        const list = await gw.cli(['tool', 'list', '--tenant', 'globex']);
        assert.equal(list.code, 0, list.stderr);
        assert.match(list.stdout, /deny/);
        assert.match(list.stdout, /secret_\*/);
      } finally {
        await close();
      }
    });

    test('tool allow: once a tenant has an allow rule, only matching tools get through; tool rm lifts it', async () => {
      const { client, rec, close } = await connect('umbrella');
      try {
        assert.equal((await gw.cli(['tool', 'allow', '--tenant', 'umbrella', 'ec*'])).code, 0);
        await waitLoaded(gw);
        const statsBefore = await srv.stats();
        assert.equal((await client.callTool({ name: 'echo', arguments: { text: 'allowed' } })).content[0].text, 'allowed');
        await assert.rejects(client.callTool({ name: 'add', arguments: { a: 1, b: 2 } }), (e) => e.code === 403);
        const ev = await event(rec.last('tools/call').requestId);
        assert.deepEqual([ev.tool, ev.outcome, ev.reason], ['add', 'rejected', 'tool_denied']);
        assert.equal((await srv.stats()).add, statsBefore.add);
        // tools/list is not a tool call: still answered
        assert.equal((await client.listTools()).tools.length, 4);

        const rm = await gw.cli(['tool', 'rm', '--tenant', 'umbrella', 'allow', 'ec*']);
        assert.equal(rm.code, 0, rm.stderr);
        await waitLoaded(gw);
        const sum = await client.callTool({ name: 'add', arguments: { a: 1, b: 2 } });
        assert.deepEqual(sum.structuredContent, { sum: 3 });
      } finally {
        await close();
      }
    });

    test('a per-tool rate limit: the third echo in a minute is 429, other tools still pass', async () => {
      const { client, rec, close } = await connect('hooli');
      try {
        const l = await gw.cli(['limit', 'set', '--tenant', 'hooli', '--tool', 'echo', '--rpm', '2']);
        assert.equal(l.code, 0, l.stderr);
        await waitLoaded(gw);
        for (const i of [1, 2]) {
          assert.equal((await client.callTool({ name: 'echo', arguments: { text: `e${i}` } })).content[0].text, `e${i}`);
        }
        const before = (await srv.stats()).echo;
        await assert.rejects(client.callTool({ name: 'echo', arguments: { text: 'e3' } }), (e) => {
          assert.ok(e.code === 429 || /\b429\b/.test(e.message), `${e.code} ${e.message}`);
          return true;
        });
        assert.equal((await srv.stats()).echo, before);
        const ev = await event(rec.last('tools/call').requestId);
        assert.deepEqual([ev.status, ev.tool, ev.outcome, ev.reason], [429, 'echo', 'rejected', 'rate_limited']);
        const sum = await client.callTool({ name: 'add', arguments: { a: 5, b: 5 } });
        assert.deepEqual(sum.structuredContent, { sum: 10 });
      } finally {
        await close();
      }
    });

    test('a raw JSON-RPC batch: both answers come back; a batch with a denied tool is refused whole', async () => {
      const { secret } = await createTenantKey(gw, 'batchco');
      await waitForKey(gw, secret, '/mcp');
      const base = {
        Authorization: `Bearer ${secret}`,
        'Content-Type': 'application/json',
        Accept: 'application/json, text/event-stream',
      };
      const post = (body, headers = {}) =>
        request(`${gw.url}/mcp`, { method: 'POST', headers: { ...base, ...headers }, body: JSON.stringify(body) });
      /** JSON-RPC responses of an answer, whichever way the server sent them. */
      const responses = (r) =>
        /^text\/event-stream/.test(r.headers['content-type'] ?? '')
          ? parseSse(r.text).filter((e) => e.data).map((e) => JSON.parse(e.data)).flat()
          : [r.json()].flat();

      const init = await post({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
      });
      assert.equal(init.status, 200, init.text);
      const session = init.headers['mcp-session-id'];
      assert.ok(session, 'Mcp-Session-Id passed back through the gateway');
      const h = { 'mcp-session-id': session, 'mcp-protocol-version': '2025-03-26' };
      assert.equal((await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, h)).status, 202);

      const before = await srv.stats();
      const batch = await post(
        [
          { jsonrpc: '2.0', id: 10, method: 'tools/call', params: { name: 'echo', arguments: { text: 'one' } } },
          { jsonrpc: '2.0', id: 11, method: 'tools/call', params: { name: 'add', arguments: { a: 20, b: 22 } } },
        ],
        h,
      );
      assert.equal(batch.status, 200, batch.text);
      assert.match(batch.headers['content-type'], json ? /^application\/json/ : /^text\/event-stream/);
      const byId = Object.fromEntries(responses(batch).map((m) => [m.id, m]));
      assert.deepEqual(byId[10].result.content, [{ type: 'text', text: 'one' }]);
      assert.deepEqual(byId[11].result.structuredContent, { sum: 42 });
      const after = await srv.stats();
      assert.deepEqual([after.echo - before.echo, after.add - before.add], [1, 1]);
      const ev = await event(batch.headers['x-request-id']);
      assert.deepEqual([ev.tenant, ev.rpc_method, ev.outcome], ['batchco', 'tools/call', 'billable']);

      assert.equal((await gw.cli(['tool', 'deny', '--tenant', 'batchco', 'secret_*'])).code, 0);
      await waitLoaded(gw);
      const sneaky = await post(
        [
          { jsonrpc: '2.0', id: 20, method: 'tools/call', params: { name: 'echo', arguments: { text: 'cover' } } },
          { jsonrpc: '2.0', id: 21, method: 'tools/call', params: { name: 'secret_admin', arguments: {} } },
        ],
        h,
      );
      assert.equal(sneaky.status, 403, sneaky.text);
      assert.equal((await srv.stats()).secret_admin, 0);
      const rej = await event(sneaky.headers['x-request-id']);
      assert.deepEqual([rej.outcome, rej.reason], ['rejected', 'tool_denied']);
    });
  });
}
