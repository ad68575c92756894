// Fuzz of the native batched UDP socket, meant to run under AddressSanitizer (see
// test/integration/udp-batch-asan.test.ts, which builds native/build-asan and preloads libasan).
// Hostile input on every axis the C code touches: datagram sizes 0..65507 against small slots
// (MSG_TRUNC), replies larger than the out slot, out lengths scribbled directly (negative, huge),
// late replies to copied return addresses, handlers that throw, close from inside a batch, IPv4 and
// IPv6. Bounded: DATAGRAMS datagrams in bursts, at most ~10 s. Prints one JSON line of counters.
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadUdpBatch, BatchSocket } from '../../dist/dns/transports/udp-batch.js';

const [addonFile, countArg] = process.argv.slice(2);
const DATAGRAMS = Number(countArg ?? 20000);
const addon = loadUdpBatch(resolve(addonFile));
if (typeof addon === 'string') throw new Error(addon);
const sanitized = readFileSync('/proc/self/maps', 'utf8').includes('libasan');

let seed = 0x2545f491;
const rand = (n) => {
  seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
  return (seed >>> 0) % n;
};
const counts = { handled: 0, truncated: 0, thrown: 0, late: 0, lateRefused: 0, replies: 0 };

function server(host) {
  let sock;
  const late = [];
  sock = new BatchSocket(addon, { host, port: 0, slots: 8, inSize: 512, outSize: 256, rounds: 3, recvBufferSize: 4 << 20 }, (msg, address, slot, truncated) => {
    counts.handled++;
    if (truncated) counts.truncated++;
    if (msg.length > 512 || address.length === 0) throw new Error(`out of bounds: ${msg.length} bytes from "${address}"`);
    const outLen = sock.outLen;
    switch (rand(8)) {
      case 0: return null;
      case 1: return msg;
      case 2: return Buffer.alloc(rand(1200), 0x5a); // often beyond outSize: the sendTo path
      case 3: counts.thrown++; throw new Error('handler bug');
      case 4: outLen[slot] = [-1, -2147483648, 257, 2147483647, 1 << 20][rand(5)]; return null; // bounds in C
      case 5: {
        const to = sock.returnAddress(slot);
        const keep = Buffer.from(msg);
        late.push([to, keep]);
        return null;
      }
      case 6: outLen[rand(8)] = rand(300); return null; // another slot, maybe past this batch's count
      default: return Buffer.from(address);
    }
  }, () => {});
  return { sock, late };
}

const servers = [server('127.0.0.1'), server('::1')];
const clients = await Promise.all([['udp4', '127.0.0.1'], ['udp6', '::1'], ['udp4', '127.0.0.1'], ['udp6', '::1']].map(([type, host]) =>
  new Promise((resolve) => {
    const c = dgram.createSocket(type);
    c.on('message', () => counts.replies++);
    c.on('error', () => {});
    c.bind(0, host, () => resolve({ c, host, port: servers[type === 'udp4' ? 0 : 1].sock.port }));
  })));

const deadline = Date.now() + 10_000;
for (let sent = 0; sent < DATAGRAMS && Date.now() < deadline;) {
  for (let i = 0; i < 100; i++, sent++) {
    const { c, host, port } = clients[rand(clients.length)];
    const size = rand(20) === 0 ? 512 + rand(65507 - 512) : rand(700);
    const bytes = Buffer.allocUnsafe(size);
    for (let j = 0; j < size; j += 64) bytes[j] = rand(256);
    c.send(bytes, port, host);
  }
  await new Promise((r) => setImmediate(r));
  for (const { sock, late } of servers) {
    for (const [to, keep] of late.splice(0)) {
      counts.late++;
      // a mangled address family must be refused (only the family: a mangled address or port could
      // reach someone else's socket, and the tests send nowhere but to their own)
      if (rand(4) === 0) to[rand(2)] ^= 0xff;
      if (sock.sendTo(keep, to) !== 0) counts.lateRefused++;
    }
  }
}
await new Promise((r) => setTimeout(r, 100));

// close from inside a batch, then everything after close must be refused cleanly
const last = servers[0].sock;
const closing = new BatchSocket(addon, { host: '127.0.0.1', port: 0, slots: 4 }, (msg) => { closing.close(); return msg; }, () => {});
const port = closing.port;
for (let i = 0; i < 20; i++) clients[0].c.send(Buffer.alloc(i * 10), port, '127.0.0.1');
await new Promise((r) => setTimeout(r, 100));
const after = closing.sendTo(Buffer.alloc(10), last.returnAddress(0));
for (const { sock } of servers) {
  sock.pause();
  sock.close();
  sock.close();
}
for (const { c } of clients) c.close();
console.log(JSON.stringify({ sanitized, ...counts, closedSend: after, stats: servers.map(({ sock }) => sock.stats()) }));
