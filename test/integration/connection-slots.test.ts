// Connection slots under hostile load (issue 14, finding 5), on loopback DoT: eleven hosts in eleven
// different /24s hold every slot of a small listener, and a managed laptop arriving next still gets
// its handshake and its (sinkholed) answer, because the connection idle longest is closed to make room
// (RFC 7766 §6.2.3) — never one with a query in flight. maxConnectionsPerClient counts per /24.
import t from 'tap';
import tls from 'node:tls';
import net from 'node:net';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { copyFileSync } from 'node:fs';
import { createTestPki, type TestPki } from '../helpers/certs.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { framedSession, decodeReply, type Reply } from '../helpers/dns-client.js';
import { startServer, type Started } from '../helpers/start-server.js';
import { scrape } from '../helpers/metrics.js';

/** 127.0.11.5 … 127.0.21.5: eleven distinct /24s. */
const HOLDERS = Array.from({ length: 11 }, (_, i) => `127.0.${11 + i}.5`);
const LAPTOP = '127.0.10.5';
const PER_HOLDER = 2;
const MAX = HOLDERS.length * PER_HOLDER;

let pki: TestPki;
let up: FakeUpstream;

const yaml = (dir: string) => `
dns:
  listen: ["127.0.0.1:0"]
  tls: { listen: ["127.0.0.1:0"], cert: ${join(dir, 'server.pem')}, key: ${join(dir, 'server-key.pem')} }
  upstreams: ["127.0.0.1:${up.port}"]
  timeoutMs: 5000
  tcpIdleTimeoutMs: 60000
  maxConnections: ${MAX}
  maxConnectionsPerClient: ${PER_HOLDER}
access: { allow: ["127.0.0.0/8"] }
lists: { tiktok: { sources: ["tiktok.txt"] } }
groups:
  city: { subnets: ["127.0.10.0/24"], block: [tiktok] }
admin: { listen: "127.0.0.1:0" }
log: { level: silent }
`;

function start(): Promise<Started> {
  return startServer(yaml, { 'tiktok.txt': 'tiktok.com\n' }, (dir) => {
    copyFileSync(pki.server.cert, join(dir, 'server.pem'));
    copyFileSync(pki.server.key, join(dir, 'server-key.pem'));
  });
}

interface DotClient {
  readonly socket: tls.TLSSocket;
  readonly closed: Promise<void>;
  ask(name: string, id: number): Promise<Reply>;
}

/** A DoT connection from `from`; rejects when the server refuses or drops it during the handshake. */
function connect(port: number, from: string): Promise<DotClient> {
  return new Promise((resolve, reject) => {
    const raw = net.connect({ host: '127.0.0.1', port, localAddress: from });
    const socket = tls.connect({ socket: raw, servername: 'localhost', ca: pki.serverCa.pem });
    const session = framedSession(socket);
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.once('error', reject);
    void closed.then(() => reject(new Error(`${from}: closed before the handshake finished`)));
    socket.once('secureConnect', () => {
      socket.on('error', () => undefined);
      resolve({
        socket,
        closed,
        async ask(name, id) {
          session.writeQuery({ name, type: 'A', id });
          const frame = await session.read(8000);
          if (frame === null) throw new Error(`${from}: no reply (timeout or connection closed)`);
          return decodeReply(frame);
        },
      });
    });
  });
}

const isClosed = (c: DotClient): boolean => c.socket.destroyed;

t.before(async () => {
  pki = await createTestPki();
  up = await startFakeUpstream({
    zone: {
      'www.example.org A': { answers: [{ type: 'A', ttl: 300, data: '198.51.100.7' }] },
      'slow.example.org A': { answers: [{ type: 'A', ttl: 0, data: '198.51.100.8' }] },
    },
    delayFor: (name) => (name.toLowerCase() === 'slow.example.org' ? 1500 : undefined),
  });
});
t.teardown(async () => {
  await up?.close();
  if (pki) await rm(pki.dir, { recursive: true, force: true });
});

t.test('a full DoT listener closes the longest-idle connection for a new managed laptop, never a busy one', async (t) => {
  const af = await start();
  t.teardown(() => af.close());
  const port = af.runtime.ports.dot[0]!;
  const held: DotClient[] = [];
  t.teardown(() => held.forEach((c) => c.socket.destroy()));
  // one at a time, each answered, so the order of last activity is the order of this list
  for (const from of HOLDERS) {
    for (let k = 0; k < PER_HOLDER; k++) {
      const c = await connect(port, from);
      t.equal((await c.ask('www.example.org', held.length)).answers[0]?.data, '198.51.100.7');
      held.push(c);
    }
  }
  t.equal(held.filter(isClosed).length, 0, `${MAX} connections from 11 /24s hold every slot`);

  // the oldest connection now waits on a slow upstream answer: busy, so not the one to go
  const busyAnswer = held[0]!.ask('slow.example.org', 100);
  await new Promise((r) => setTimeout(r, 200));

  const laptop = await connect(port, LAPTOP);
  const blocked = await laptop.ask('www.tiktok.com', 1);
  t.same(blocked.answers.map((a) => a.data), ['0.0.0.0'], 'the managed laptop got in and is identified (sinkholed)');
  await held[1]!.closed;
  t.ok(isClosed(held[1]!), 'the connection idle longest was closed to make room');
  t.same(held.slice(2).filter(isClosed), [], 'no other idle connection was closed');
  t.equal((await busyAnswer).answers[0]?.data, '198.51.100.8', 'the busy connection was kept and got its answer');
  t.notOk(isClosed(held[0]!), 'the busy connection is still open');
  laptop.socket.destroy();

  const m = await scrape(af.runtime.adminPort);
  t.equal(m.value('appfence_dns_connection_evictions_total', { proto: 'dot' }), 1, 'the eviction is counted');
});

t.test('maxConnectionsPerClient is counted per /24: several addresses of one network share it', async (t) => {
  const af = await start();
  t.teardown(() => af.close());
  const port = af.runtime.ports.dot[0]!;
  const first = await connect(port, '127.0.30.1');
  const second = await connect(port, '127.0.30.2');
  t.teardown(() => [first, second].forEach((c) => c.socket.destroy()));
  t.equal((await second.ask('www.example.org', 1)).answers[0]?.data, '198.51.100.7');
  const third = await connect(port, '127.0.30.3').then((c) => c.ask('www.example.org', 2).then(() => c), () => null)
    .catch(() => null);
  t.equal(third, null, `a third address in 127.0.30.0/24 is refused: the /24 holds its ${PER_HOLDER} connections`);
  const neighbour = await connect(port, '127.0.31.1');
  t.equal((await neighbour.ask('www.example.org', 3)).answers[0]?.data, '198.51.100.7', 'the next /24 still gets in');
  neighbour.socket.destroy();
  const m = await scrape(af.runtime.adminPort);
  t.equal(m.value('appfence_dns_connections_refused_total', { proto: 'dot', reason: 'client_cap' }), 1, 'the refusal is counted');
});
