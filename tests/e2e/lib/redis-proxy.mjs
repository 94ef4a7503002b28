// A TCP proxy in front of Redis that forwards or swallows a settlement, then cuts: for the
// tests of settlements whose reply was lost (redis-settle, attack3-redis-lost).
import net from 'node:net';

import { freePort } from './harness.mjs';

/**
 * A TCP proxy to Redis on a free port. arm(how) acts on the next settlement (an EVALSHA
 * whose mode argument is "S") the gateway sends: 'forward' passes it on and cuts both
 * connections when Redis's reply comes (the reply never reaches the gateway); 'swallow'
 * cuts at once without passing it on. Every other byte goes through as it is. captured: the
 * raw bytes of the settlements seen.
 */
export async function startProxy(redisPort) {
  const port = await freePort();
  const proxy = { port, armed: null, cuts: 0, captured: [], socks: new Set() };
  const server = net.createServer((client) => {
    const upstream = net.connect(redisPort, '127.0.0.1');
    proxy.socks.add(client);
    proxy.socks.add(upstream);
    let cutOnReply = false;
    const cut = () => {
      proxy.cuts++;
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (d) => {
      if (d.includes('\r\n$1\r\nS\r\n')) {
        proxy.captured.push(Buffer.from(d));
        const how = proxy.armed;
        proxy.armed = null;
        if (how === 'swallow') return cut();
        if (how === 'forward') cutOnReply = true;
      }
      upstream.write(d);
    });
    upstream.on('data', (d) => (cutOnReply ? cut() : client.write(d)));
    for (const s of [client, upstream]) {
      s.on('error', () => {});
      s.on('close', () => {
        proxy.socks.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  proxy.arm = (how) => (proxy.armed = how);
  proxy.stop = async () => {
    for (const s of proxy.socks) s.destroy();
    await new Promise((r) => server.close(r));
  };
  return proxy;
}
