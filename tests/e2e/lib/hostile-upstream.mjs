// A hostile upstream on node:net: reads one request (head and Content-Length body), then
// answers with whatever raw bytes the test's handler returns (a Buffer, or an array of
// Buffers written one by one), and closes. Every request it got is kept in `seen`.
import net from 'node:net';

export async function startHostile(handler) {
  const seen = [];
  const sockets = new Set();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    let done = false;
    sock.on('data', async (d) => {
      if (done) return;
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      const [line, ...lines] = head.split('\r\n');
      const headers = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        const k = l.slice(0, i).trim().toLowerCase();
        headers[k] = headers[k] === undefined ? l.slice(i + 1).trim() : `${headers[k]}, ${l.slice(i + 1).trim()}`;
      }
      const len = Number(headers['content-length'] ?? 0);
      if (buf.length < end + 4 + len) return;
      done = true;
      const req = { line, headers, body: buf.subarray(end + 4, end + 4 + len) };
      seen.push(req);
      const out = await handler(req);
      for (const piece of Array.isArray(out) ? out : [out]) {
        if (!sock.writable) break;
        await new Promise((r) => sock.write(piece, r));
      }
      sock.end();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    stop: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(r);
      }),
  };
}

/** A raw HTTP/1.1 answer: status line, the headers given (name -> value, or an array of
 * [name, value] to repeat or order them), Content-Length unless one is named, the body. */
export function answer(status, headers, body = Buffer.alloc(0)) {
  const list = Array.isArray(headers) ? headers : Object.entries(headers);
  if (!list.some(([k]) => /^(content-length|transfer-encoding)$/i.test(k))) list.push(['Content-Length', String(body.length)]);
  const head = `HTTP/1.1 ${status} X\r\n${list.map(([k, v]) => `${k}: ${v}\r\n`).join('')}Connection: close\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}
