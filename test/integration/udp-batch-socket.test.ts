// The native batched UDP socket (native/udp_batch.c via src/dns/transports/udp-batch.ts) on its own,
// with real node:dgram clients on loopback: batches in and out on IPv4 and IPv6, MSG_TRUNC, bounds on
// lengths, replies that wait, pause/close. The whole DNS suite also runs on this path (dns-server-batch).
import t from 'tap';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { loadUdpBatch, BatchSocket, type UdpBatchAddon, type OnDatagram } from '../../src/dns/transports/udp-batch.js';

const loaded = loadUdpBatch();
if (typeof loaded === 'string') throw new Error(`the addon must build where the tests run: ${loaded}`);
const addon: UdpBatchAddon = loaded;

interface Client {
  sock: dgram.Socket;
  got: Buffer[];
  /** Resolves once `n` datagrams have arrived (rejects after 3 s). */
  wait(n: number): Promise<Buffer[]>;
}

async function client(type: 'udp4' | 'udp6', host: string): Promise<Client> {
  const sock = dgram.createSocket(type);
  await new Promise<void>((r) => sock.bind(0, host, () => r()));
  const got: Buffer[] = [];
  let waiter: (() => void) | null = null;
  sock.on('message', (m) => {
    got.push(m);
    waiter?.();
  });
  return {
    sock, got,
    wait: (n) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${got.length} of ${n} datagrams arrived`)), 3000);
      waiter = () => {
        if (got.length >= n) {
          clearTimeout(timer);
          resolve(got);
        }
      };
      waiter();
    }),
  };
}

function open(host: string, onDatagram: OnDatagram, extra: Partial<ConstructorParameters<typeof BatchSocket>[1]> = {},
  onError: (err: unknown) => void = (err) => { throw err; }): BatchSocket {
  return new BatchSocket(addon, { host, port: 0, ...extra }, onDatagram, onError);
}

for (const [family, host] of [['udp4', '127.0.0.1'], ['udp6', '::1']] as const) {
  t.test(`${family}: a burst arrives in batches and every reply goes back to its sender`, async (t) => {
    const seen: string[] = [];
    const server = open(host, (msg, address) => {
      seen.push(address);
      return Buffer.concat([Buffer.from('re:'), msg]);
    }, { recvBufferSize: 1 << 20 }); // the default 208 KiB holds only 256 small datagrams
    t.teardown(() => server.close());
    const a = await client(family, host);
    const b = await client(family, host);
    t.teardown(() => { a.sock.close(); b.sock.close(); });
    // sent in one synchronous loop: the server's first wakeup finds many queued
    for (let i = 0; i < 150; i++) {
      a.sock.send(`a${i}`, server.port, host);
      b.sock.send(`b${i}`, server.port, host);
    }
    await Promise.all([a.wait(150), b.wait(150)]);
    t.same(a.got.map(String).sort(), Array.from({ length: 150 }, (_, i) => `re:a${i}`).sort());
    t.same(b.got.map(String).sort(), Array.from({ length: 150 }, (_, i) => `re:b${i}`).sort());
    t.same([...new Set(seen)], [host], 'the sender address is given as text, as node:dgram does');
    const stats = server.stats();
    t.equal(stats.datagrams, 300);
    t.ok(stats.batches < 300, `${stats.batches} batches for 300 datagrams`);
    t.equal(stats.sendErrors, 0);
  });

  t.test(`${family}: oversize datagrams are flagged truncated and cut to the slot`, async (t) => {
    const got: { len: number; truncated: boolean; head: number }[] = [];
    const server = open(host, (msg, _a, _s, truncated) => {
      got.push({ len: msg.length, truncated, head: msg[0]! });
      return Buffer.from([truncated ? 1 : 0]);
    }, { inSize: 512 });
    t.teardown(() => server.close());
    const c = await client(family, host);
    t.teardown(() => c.sock.close());
    c.sock.send(Buffer.alloc(512, 7), server.port, host);
    c.sock.send(Buffer.alloc(513, 8), server.port, host);
    c.sock.send(Buffer.alloc(60000, 9), server.port, host);
    c.sock.send(Buffer.alloc(0), server.port, host);
    await c.wait(4);
    t.same(got, [
      { len: 512, truncated: false, head: 7 },
      { len: 512, truncated: true, head: 8 },
      { len: 512, truncated: true, head: 9 },
      { len: 0, truncated: false, head: undefined as unknown as number },
    ]);
    t.equal(server.stats().truncated, 2);
  });
}

t.test('a reply larger than its out slot goes out whole, on its own', async (t) => {
  const server = open('127.0.0.1', (msg) => Buffer.alloc(msg[0] === 1 ? 3000 : 100, msg[0]!), { outSize: 512 });
  t.teardown(() => server.close());
  const c = await client('udp4', '127.0.0.1');
  t.teardown(() => c.sock.close());
  c.sock.send(Buffer.from([1]), server.port, '127.0.0.1');
  c.sock.send(Buffer.from([2]), server.port, '127.0.0.1');
  const got = await c.wait(2);
  t.same(got.map((b) => [b.length, b[0]]).sort(), [[100, 2], [3000, 1]]);
});

t.test('a reply that waits uses copies: the slot is reused by later batches', async (t) => {
  const later: Promise<void>[] = [];
  const server = open('127.0.0.1', (msg, _address, slot) => {
    if (msg[0] !== 0x41) return Buffer.from(`now:${String(msg)}`);
    const keep = Buffer.from(msg);
    const to = server.returnAddress(slot);
    later.push(new Promise((r) => setTimeout(() => {
      t.equal(server.sendTo(Buffer.from(`later:${String(keep)}`), to), 0);
      r();
    }, 50)));
    return null;
  });
  t.teardown(() => server.close());
  const a = await client('udp4', '127.0.0.1');
  const b = await client('udp4', '127.0.0.1');
  t.teardown(() => { a.sock.close(); b.sock.close(); });
  a.sock.send('A-wait', server.port, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 10));
  for (let i = 0; i < 20; i++) b.sock.send(`b${i}`, server.port, '127.0.0.1');
  await b.wait(20);
  await Promise.all(later);
  t.same((await a.wait(1)).map(String), ['later:A-wait']);
  t.notOk(b.got.some((m) => String(m).startsWith('later')));
});

t.test('a handler that throws costs only its own datagram', async (t) => {
  const errors: unknown[] = [];
  const server = open('127.0.0.1', (msg) => {
    if (String(msg) === 'boom') throw new Error('bug');
    return msg;
  }, {}, (err) => errors.push(err));
  t.teardown(() => server.close());
  const c = await client('udp4', '127.0.0.1');
  t.teardown(() => c.sock.close());
  for (const m of ['x', 'boom', 'y']) c.sock.send(m, server.port, '127.0.0.1');
  t.same((await c.wait(2)).map(String).sort(), ['x', 'y']);
  t.equal(errors.length, 1);
});

t.test('pause stops reading, sends still go; close ends sending too', async (t) => {
  let handled = 0;
  let to: Buffer | null = null;
  const server = open('127.0.0.1', (_m, _a, slot) => {
    handled++;
    to = server.returnAddress(slot);
    return null;
  });
  const c = await client('udp4', '127.0.0.1');
  t.teardown(() => c.sock.close());
  c.sock.send('one', server.port, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 50));
  t.equal(handled, 1);
  server.pause();
  c.sock.send('two', server.port, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 50));
  t.equal(handled, 1, 'nothing read after pause');
  t.equal(server.sendTo(Buffer.from('still'), to!), 0);
  t.same((await c.wait(1)).map(String), ['still']);
  server.close();
  t.equal(server.sendTo(Buffer.from('gone'), to!), -9, 'EBADF after close');
  t.throws(() => server.port, 'a closed socket has no port');
});

t.test('close from inside a batch: replies of that batch still go, nothing after', async (t) => {
  let handled = 0;
  const server = open('127.0.0.1', (msg) => {
    handled++;
    server.close();
    return msg;
  });
  const port = server.port;
  const c = await client('udp4', '127.0.0.1');
  t.teardown(() => c.sock.close());
  c.sock.send('last', port, '127.0.0.1');
  t.same((await c.wait(1)).map(String), ['last']);
  c.sock.send('after', port, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 50));
  t.equal(handled, 1);
});

t.test('bind errors carry the errno name; bad buffers and sizes are refused', async (t) => {
  const taken = dgram.createSocket('udp4');
  taken.bind(0, '127.0.0.1');
  await once(taken, 'listening');
  t.teardown(() => taken.close());
  t.throws(() => open('127.0.0.1', () => null, { port: taken.address().port }), { code: 'EADDRINUSE' });
  t.throws(() => open('127.0.0.1', () => null, { slots: 0 }), RangeError);
  t.throws(() => open('127.0.0.1', () => null, { inSize: 70000 }), RangeError);
  t.throws(() => open('not-an-ip', () => null), TypeError);
  t.throws(() => addon.open({ host: '127.0.0.1', port: 0, slots: 4, inSize: 512, outSize: 512, in: Buffer.alloc(100),
    out: Buffer.alloc(4 * 512), peers: Buffer.alloc(4 * 96), meta: new Int32Array(16), outLen: new Int32Array(4), onBatch: () => {} }), RangeError,
  'an in buffer smaller than slots × inSize');
  const server = open('127.0.0.1', () => null);
  t.teardown(() => server.close());
  t.throws(() => addon.sendTo({} as never, Buffer.alloc(1), 1, Buffer.alloc(28)), TypeError, 'not a socket handle');
  t.throws(() => server.sendTo(Buffer.alloc(1), Buffer.alloc(4)), RangeError, 'a peer shorter than a sockaddr');
});

t.test('reply lengths outside the out slot are never sent', async (t) => {
  // The wrapper never writes such lengths; JS code with access to outLen could. The C side checks again.
  const server = open('127.0.0.1', () => null, { outSize: 64 });
  t.teardown(() => server.close());
  const outLen = (server as unknown as { outLen: Int32Array }).outLen;
  const replace = (server as unknown as { onDatagram: OnDatagram });
  replace.onDatagram = (msg, _a, slot) => {
    outLen[slot] = msg[0] === 1 ? 65 : msg[0] === 2 ? -5 : 4;
    return null;
  };
  const c = await client('udp4', '127.0.0.1');
  t.teardown(() => c.sock.close());
  for (const b of [1, 2, 3]) c.sock.send(Buffer.from([b]), server.port, '127.0.0.1');
  const got = await c.wait(1);
  await new Promise((r) => setTimeout(r, 50));
  t.same(got.map((b) => b.length), [4], 'only the in-bounds reply went out');
});

t.test('two sockets share a port with reusePort (workers)', async (t) => {
  const a = open('127.0.0.1', () => Buffer.from('a'), { reusePort: true });
  t.teardown(() => a.close());
  const b = open('127.0.0.1', () => Buffer.from('b'), { reusePort: true, port: a.port });
  t.teardown(() => b.close());
  t.equal(b.port, a.port);
});
