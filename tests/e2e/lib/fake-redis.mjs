// A fake Redis for hostile-backend tests: speaks enough RESP to pass for one (SELECT, SCRIPT
// LOAD, PING) and hands every EVALSHA to a handler that answers what it likes, late, in
// halves, or never. Each command is recorded ({cmd, args, at}).
import crypto from 'node:crypto';
import net from 'node:net';

/** Parses as many whole RESP arrays of bulk strings as buf holds: [commands, bytes used]. */
function parse(buf) {
  const out = [];
  let i = 0;
  for (;;) {
    if (buf[i] !== 0x2a) return [out, i];
    let nl = buf.indexOf('\r\n', i);
    if (nl < 0) return [out, i];
    const n = Number(buf.toString('latin1', i + 1, nl));
    let p = nl + 2;
    const args = [];
    for (let k = 0; k < n; k++) {
      nl = buf.indexOf('\r\n', p);
      if (nl < 0) return [out, i];
      const len = Number(buf.toString('latin1', p + 1, nl));
      if (buf.length < nl + 2 + len + 2) return [out, i];
      args.push(buf.toString('latin1', nl + 2, nl + 2 + len));
      p = nl + 2 + len + 2;
    }
    out.push(args);
    i = p;
  }
}

export const later = (ms, v) => new Promise((r) => setTimeout(() => r(v), ms));
export const never = () => new Promise(() => {});

export const resp = {
  int: (v) => `:${v}\r\n`,
  err: (m) => `-${m}\r\n`,
  bulk: (s) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`,
  arr: (items) => `*${items.length}\r\n${items.join('')}`,
  ints: (vs) => resp.arr(vs.map(resp.int)),
};

/**
 * Starts the fake on a free loopback port. onEval(args, sock, log) answers an EVALSHA
 * (args: the whole command; return a string to write, a promise of one (a late reply), or
 * null to write nothing, ever).
 */
export async function startFakeRedis(onEval) {
  const log = [];
  const socks = new Set();
  const fake = { log, onEval, pingSilent: false };
  const server = net.createServer((sock) => {
    socks.add(sock);
    sock.on('close', () => socks.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    // Replies go out in the order of the commands, as Redis's do: a late one holds back
    // those after it. (A reply that is never written holds back everything after it.)
    let chain = Promise.resolve();
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const [cmds, used] = parse(buf);
      buf = buf.subarray(used);
      for (const args of cmds) {
        const cmd = args[0].toUpperCase();
        log.push({ cmd, args, at: performance.now() });
        let out = null;
        if (cmd === 'SELECT') out = '+OK\r\n';
        else if (cmd === 'PING' || cmd === 'SET') out = fake.pingSilent ? null : '+OK\r\n';
        else if (cmd === 'SCRIPT') out = resp.bulk(crypto.createHash('sha1').update(args[2]).digest('hex'));
        else if (cmd === 'EVALSHA') out = fake.onEval(args, sock, log) ?? never();
        else out = resp.err('ERR unknown command');
        const prev = chain;
        chain = (async () => {
          const v = await out;
          await prev;
          if (v !== null && !sock.destroyed) sock.write(v); // (PING while pingSilent)
        })();
      }
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  server.unref();
  fake.port = server.address().port;
  fake.evals = (mode) => log.filter((e) => e.cmd === 'EVALSHA' && e.args[3 + Number(e.args[2])] === mode);
  fake.stop = () => {
    for (const s of socks) s.destroy();
    return new Promise((r) => server.close(r));
  };
  return fake;
}
