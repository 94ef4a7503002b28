// An MCP server for the end-to-end tests: the official SDK's McpServer behind its Streamable
// HTTP transport, with sessions (Mcp-Session-Id), so the gateway sees what a real MCP server
// sends. Started by harness.mjs startMcpServer(); needs `npm ci --prefix tests/e2e`.
//
//   node tests/e2e/lib/mcp-server.mjs PORT [--json] [--compress]
//
// PORT 0 picks a free one; "listening PORT" on stdout says it is ready. POST /mcp answers
// with an SSE stream (the SDK's default) or, with --json, with application/json. GET /mcp is
// 405: the optional server-to-client stream is not offered, so no request stays open through
// the gateway after a test. GET /stats gives the calls each tool's handler ran,
// {"echo":N,"add":N,"fail":N,"secret_admin":N}, and GET /last-headers the headers of the
// last POST /mcp (lowercased), to see what the gateway forwarded. Exits 0 on SIGTERM/SIGINT.
//
// Tools: echo {text} returns its text; add {a, b} returns a + b (text and structured);
// fail returns a result with isError: true; secret_admin returns "secret" (the tests deny it).
//
// With --compress, 200 answers on /mcp (JSON, and SSE streams flushed event by event) are
// compressed as the request's Accept-Encoding allows (gzip, deflate or br: the accepted one
// with the highest q, gzip on a tie), as a provider's edge would; a request header
// x-mock-encoding: gzip|deflate|deflate-raw|br|identity forces a coding, compress or not.

import crypto from 'node:crypto';
import http from 'node:http';
import zlib from 'node:zlib';

import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

const args = process.argv.slice(2);
const port = Number(args.find((a) => /^\d+$/.test(a)) ?? 0);
const jsonResponses = args.includes('--json');
const compress = args.includes('--compress');
if (args.some((a) => !/^\d+$/.test(a) && a !== '--json' && a !== '--compress')) {
  process.stderr.write('usage: mcp-server.mjs PORT [--json] [--compress]\n');
  process.exit(2);
}

const calls = { echo: 0, add: 0, fail: 0, secret_admin: 0 };
let lastHeaders = {};
const sessions = new Map(); // Mcp-Session-Id -> transport

function newServer() {
  const server = new McpServer({ name: 'tollgate-e2e-mcp', version: '1.0.0' });
  server.registerTool(
    'echo',
    { description: 'Returns its text', inputSchema: { text: z.string() } },
    async ({ text }) => {
      calls.echo++;
      return { content: [{ type: 'text', text }] };
    },
  );
  server.registerTool(
    'add',
    {
      description: 'Adds two numbers',
      inputSchema: { a: z.number(), b: z.number() },
      outputSchema: { sum: z.number() },
    },
    async ({ a, b }) => {
      calls.add++;
      return { content: [{ type: 'text', text: String(a + b) }], structuredContent: { sum: a + b } };
    },
  );
  server.registerTool('fail', { description: 'Always fails (a tool error, not a protocol error)' }, async () => {
    calls.fail++;
    return { isError: true, content: [{ type: 'text', text: 'this tool always fails' }] };
  });
  server.registerTool('secret_admin', { description: 'Must never be reached when denied' }, async () => {
    calls.secret_admin++;
    return { content: [{ type: 'text', text: 'secret' }] };
  });
  return server;
}

function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

const rpcError = (code, message) => ({ jsonrpc: '2.0', error: { code, message }, id: null });

async function readBody(req) {
  const parts = [];
  for await (const d of req) parts.push(d);
  return Buffer.concat(parts).toString('utf8');
}

async function handleMcp(req, res) {
  if (req.method === 'GET') {
    sendJson(res, 405, rpcError(-32000, 'Method not allowed.'), { Allow: 'POST, DELETE' });
    return;
  }
  let body;
  if (req.method === 'POST') {
    lastHeaders = { ...req.headers };
    const text = await readBody(req);
    try {
      body = JSON.parse(text);
    } catch {
      sendJson(res, 400, rpcError(-32700, 'Parse error: Invalid JSON'));
      return;
    }
  }
  const sid = req.headers['mcp-session-id'];
  let transport = sid ? sessions.get(sid) : undefined;
  if (!transport) {
    if (sid) {
      sendJson(res, 404, rpcError(-32001, 'Session not found'));
      return;
    }
    if (req.method !== 'POST' || !isInitializeRequest(body)) {
      sendJson(res, 400, rpcError(-32000, 'Bad Request: no session; initialize first'));
      return;
    }
    const t = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => crypto.randomUUID(),
      enableJsonResponse: jsonResponses,
      onsessioninitialized: (id) => sessions.set(id, t),
    });
    t.onclose = () => {
      if (t.sessionId) sessions.delete(t.sessionId);
    };
    await newServer().connect(t);
    transport = t;
  }
  await transport.handleRequest(req, res, body);
}

const encoders = {
  gzip: () => zlib.createGzip(),
  deflate: () => zlib.createDeflate(),
  'deflate-raw': () => zlib.createDeflateRaw(),
  br: () => zlib.createBrotliCompress(),
};

/** The coding for this request (see the top), or null. */
function pickCoding(req) {
  const forced = req.headers['x-mock-encoding'];
  if (forced) return encoders[forced] ? forced : null;
  if (!compress) return null;
  let best = null;
  let bq = 0;
  for (const el of String(req.headers['accept-encoding'] ?? '').split(',')) {
    const [name, ...params] = el.trim().split(';');
    const qp = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const q = qp ? Number(qp.slice(2)) : 1;
    const n = name.trim().toLowerCase();
    if (!['gzip', 'deflate', 'br'].includes(n) || !(q > 0)) continue;
    if (q > bq || (q === bq && n === 'gzip')) [best, bq] = [n, q];
  }
  return best;
}

/** Makes res compress its body when it turns out to be a 200 (the transport writes the head
 * itself): Content-Length dropped, Content-Encoding set, every write flushed at once so an
 * SSE event is decodable as soon as it is sent. */
function compressResponse(req, res) {
  const coding = pickCoding(req);
  if (!coding) return;
  const { writeHead, write, end } = res;
  let z = null;
  res.writeHead = function (status, ...rest) {
    if (status === 200) {
      z = encoders[coding]();
      z.on('data', (d) => write.call(res, d));
      z.on('end', () => end.call(res));
      for (const r of rest) {
        if (r && typeof r === 'object' && !Array.isArray(r))
          for (const k of Object.keys(r)) if (k.toLowerCase() === 'content-length') delete r[k];
      }
      res.removeHeader('content-length');
      res.setHeader('Content-Encoding', coding === 'deflate-raw' ? 'deflate' : coding);
      res.setHeader('Vary', 'Accept-Encoding');
    }
    return writeHead.call(res, status, ...rest);
  };
  res.write = function (chunk, encoding, cb) {
    if (!z) return write.call(res, chunk, encoding, cb);
    z.write(chunk, typeof encoding === 'string' ? encoding : undefined);
    z.flush();
    if (typeof encoding === 'function') encoding();
    else if (typeof cb === 'function') cb();
    return true;
  };
  res.end = function (chunk, encoding, cb) {
    if (!z) return end.call(res, chunk, encoding, cb);
    if (typeof chunk === 'function') [chunk, cb] = [undefined, chunk];
    if (typeof encoding === 'function') [encoding, cb] = [undefined, encoding];
    if (chunk !== undefined && chunk !== null) z.write(chunk, encoding);
    if (typeof cb === 'function') res.once('finish', cb);
    z.end();
    return res;
  };
}

const httpServer = http.createServer((req, res) => {
  const { pathname } = new URL(req.url, 'http://localhost');
  if (pathname === '/mcp') compressResponse(req, res);
  let work;
  if (pathname === '/stats' && req.method === 'GET') work = Promise.resolve(sendJson(res, 200, calls));
  else if (pathname === '/last-headers' && req.method === 'GET') work = Promise.resolve(sendJson(res, 200, lastHeaders));
  else if (pathname === '/mcp') work = handleMcp(req, res);
  else work = Promise.resolve(sendJson(res, 404, { error: 'not found' }));
  work.catch((e) => {
    process.stderr.write(`mcp-server: ${e.stack ?? e}\n`);
    if (!res.headersSent) sendJson(res, 500, rpcError(-32603, 'Internal error'));
    else res.destroy();
  });
});

httpServer.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${httpServer.address().port}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.once(sig, async () => {
    for (const t of sessions.values()) await t.close().catch(() => {});
    httpServer.closeAllConnections();
    httpServer.close(() => process.exit(0));
  });
}
