// Attacks on the hot-path shortcuts of issue 10 (the response head without snprintf, the
// canonical-target fast path, ...): each test here failed against a shortcut that answered
// differently from the code it replaced (ac2da40). Raw TCP on both sides.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { createTenantKey, raw, startGateway, waitForKey } from './lib/harness.mjs';

/** An upstream answering every request head with `answer(head)` (latin1), then closing. */
async function rawUpstream(answer) {
  const sockets = new Set();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.slice(0, end);
      buf = '';
      sock.end(Buffer.from(answer(head), 'latin1'));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(r);
      }),
  };
}

// ---- 1. the reason phrase of an upstream's status line ----------------------------------------

// http_parser lets any byte but CR and LF through in a reason phrase, NUL included. The
// head used to be printed with "%.*s", which stops at a NUL; copied by length, the NUL (and
// what follows it) reached the client's status line, where a C client reads the line as
// ending early and a lenient one as whatever follows.
for (const client of ['native', 'libcurl']) {
  describe(`a NUL in the upstream's reason phrase (${client} client)`, () => {
    let up;
    let gw;
    let key;
    before(async () => {
      up = await rawUpstream((head) =>
        head.startsWith('GET /nul ')
          ? 'HTTP/1.1 200 O\x00K\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi'
          : head.startsWith('GET /ctl ')
            ? 'HTTP/1.1 200 O\x01K\x1b[2J\x7f\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi'
            : head.startsWith('GET /tab ')
              ? 'HTTP/1.1 200 Fine\tby me \xe9\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi'
              : 'HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n',
      );
      gw = await startGateway({
        upstreams: [{ name: 'up', targets: [up.url] }],
        routes: [{ name: 'all', path_prefix: '/', upstream: 'up', kind: 'http' }],
        workers: 1,
        env: client === 'libcurl' ? { TOLLGATE_NO_NATIVE_HTTP: '1' } : {},
      });
      ({ secret: key } = await createTenantKey(gw, 'nul'));
      await waitForKey(gw, key, '/ok');
    });
    after(async () => {
      await gw?.stop();
      await up?.stop();
    });

    test('no NUL byte reaches the client', async () => {
      const r = await raw(gw.port, `GET /nul HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nConnection: close\r\n\r\n`);
      const head = r.buffer.subarray(0, r.buffer.indexOf('\r\n\r\n'));
      assert.ok(head.length > 0, r.data);
      assert.equal(head.indexOf(0), -1, `a NUL in the head: ${JSON.stringify(head.toString('latin1'))}`);
      if (client === 'native') {
        // (libcurl refuses the NUL itself: a 502, before and after.)
        assert.match(r.data, /^HTTP\/1\.1 200 O\r\n/);
        assert.ok(r.data.endsWith('\r\n\r\nhi'), r.data);
      }
    });

    test('a reason phrase with control bytes is replaced by the status\'s own; HTAB and obs-text pass', async () => {
      const r = await raw(gw.port, `GET /ctl HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nConnection: close\r\n\r\n`);
      const line = r.buffer.subarray(0, r.buffer.indexOf('\r\n'));
      assert.ok(line.length > 0, r.data);
      for (const b of line) assert.ok(b === 9 || (b >= 0x20 && b !== 0x7f), `a control byte in ${JSON.stringify(line.toString('latin1'))}`);
      if (client === 'native') assert.equal(line.toString('latin1'), 'HTTP/1.1 200 OK');
      const t = await raw(gw.port, `GET /tab HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nConnection: close\r\n\r\n`);
      const tline = t.buffer.subarray(0, t.buffer.indexOf('\r\n')).toString('latin1');
      if (client === 'native') assert.equal(tline, 'HTTP/1.1 200 Fine\tby me \xe9');
      else assert.match(tline, /^HTTP\/1\.1 200 /);
    });
  });
}
