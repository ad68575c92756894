// DNS-over-TLS with device certificates, on loopback: a city laptop at a hotel (unmanaged source
// address 127.0.20.x) is still identified by its certificate; strangers are not; require: true
// refuses cert-less handshakes; pipelined queries come back as they are ready; SIGHUP reloads certs.
import t from 'tap';
import tls from 'node:tls';
import net from 'node:net';
import { copyFileSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestPki, cityDevices, type TestPki, type Issued } from '../helpers/certs.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { framedSession, decodeReply, type Reply } from '../helpers/dns-client.js';
import { startServer, type Started } from '../helpers/start-server.js';
import { loadConfig } from '../../src/config/load.js';

const HOTEL = '127.0.20.5';
const OFFICE = '127.0.10.5';

let pki: TestPki;
let up: FakeUpstream;
let laptop: Issued;
let otherOu: Issued;
let forged: Issued;

const yaml = (dir: string, require = false, access = '127.0.0.0/8') => `
dns:
  listen: ["127.0.0.1:0"]
  tls: { listen: ["127.0.0.1:0"], cert: ${join(dir, 'server.pem')}, key: ${join(dir, 'server-key.pem')} }
  upstreams: ["127.0.0.1:${up.port}"]
  timeoutMs: 1000
clientCerts: { ca: ${join(dir, 'device-ca.pem')}, require: ${require} }
access: { allow: ["${access}"] }
lists: { tiktok: { sources: ["tiktok.txt"] } }
groups:
  city:
    subnets: ["127.0.10.0/24"]
    certificates: { issuer: "City Device CA", subject: { OU: "City Devices", CN: "laptop-*" } }
    block: [tiktok]
log: { level: silent }
`;

/** Copies the PKI files the config names into the server's folder, so a test can replace them for a reload. */
function installCerts(dir: string): void {
  copyFileSync(pki.server.cert, join(dir, 'server.pem'));
  copyFileSync(pki.server.key, join(dir, 'server-key.pem'));
  copyFileSync(pki.ca.cert, join(dir, 'device-ca.pem'));
}

function start(require = false, access?: string): Promise<Started> {
  return startServer((dir) => yaml(dir, require, access), { 'tiktok.txt': 'tiktok.com\n' }, installCerts);
}

interface DotClient {
  socket: tls.TLSSocket;
  send(name: string, type: string, id: number): void;
  next(): Promise<Reply>;
  close(): void;
}

function connect(port: number, from: string, cert?: Issued): Promise<DotClient> {
  return new Promise((resolve, reject) => {
    // the TCP socket is made first so it can be bound to the device's source address
    const raw = net.connect({ host: '127.0.0.1', port, localAddress: from });
    const socket = tls.connect({
      socket: raw, servername: 'localhost', ca: pki.serverCa.pem,
      ...(cert ? { cert: readFileSync(cert.cert), key: readFileSync(cert.key) } : {}),
    });
    const session = framedSession(socket);
    socket.once('error', reject);
    socket.once('secureConnect', () => resolve({
      socket,
      send: (name, type, id) => void session.writeQuery({ name, type, id }),
      async next() {
        const frame = await session.read(3000);
        if (frame === null) throw new Error('no reply (timeout or connection closed)');
        return decodeReply(frame);
      },
      close: () => socket.destroy(),
    }));
  });
}

t.before(async () => {
  pki = await createTestPki();
  ({ laptop, otherOu, forged } = await cityDevices(pki));
  up = await startFakeUpstream({ zone: {
    'www.tiktok.com A': { answers: [{ type: 'A', ttl: 300, data: '198.51.100.7' }] },
    'slow.example.org A': { answers: [{ type: 'A', ttl: 300, data: '192.0.2.99' }] },
  } });
});
t.teardown(async () => {
  await up?.close();
  if (pki) await rm(pki.dir, { recursive: true, force: true });
});

t.test('device certificate identifies a laptop on an unmanaged network; others resolve normally', async (t) => {
  const af = await start();
  t.teardown(() => af.close());
  const port = af.runtime.ports.dot[0]!;

  const dev = await connect(port, HOTEL, laptop);
  dev.send('www.tiktok.com', 'A', 1);
  const blocked = await dev.next();
  t.same(blocked.answers.map((a) => a.data), ['0.0.0.0'], 'city laptop at the hotel: sinkholed');
  dev.close();
  const ev = af.events().find((e) => e['proto'] === 'dot');
  t.match(ev, { event: 'block', proto: 'dot', client: HOTEL, group: 'city', via: 'cert', device: 'laptop-042', name: 'www.tiktok.com' });

  for (const [label, cert] of [['no certificate', undefined], ['other OU', otherOu], ['stranger CA, same subject', forged]] as const) {
    const c = await connect(port, HOTEL, cert).catch(() => null);
    if (c === null) {
      t.fail(`${label}: handshake should succeed with require: false`);
      continue;
    }
    c.send('www.tiktok.com', 'A', 2);
    t.same((await c.next()).answers.map((a) => a.data), ['198.51.100.7'], `${label}: not identified, forwarded`);
    c.close();
  }

  const office = await connect(port, OFFICE);
  office.send('www.tiktok.com', 'A', 3);
  t.same((await office.next()).answers.map((a) => a.data), ['0.0.0.0'], 'no certificate but a managed subnet: blocked by subnet');
  office.close();
  t.match(af.events().filter((e) => e['proto'] === 'dot').pop(), { via: 'subnet', device: null, client: OFFICE });
});

t.test('pipelined queries on one connection are answered as they are ready', async (t) => {
  const af = await start();
  t.teardown(() => af.close());
  up.opts.delayMs = 300;
  t.teardown(() => { up.opts.delayMs = 0; });
  const c = await connect(af.runtime.ports.dot[0]!, HOTEL, laptop);
  c.send('slow.example.org', 'A', 10);
  c.send('www.tiktok.com', 'A', 11);
  c.send('www.tiktok.com', 'AAAA', 12);
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push((await c.next()).packet.header.id);
  t.same(ids, [11, 12, 10], 'the sinkhole answers overtake the slow upstream query');
  c.close();
});

t.test('clientCerts.require: a handshake without a valid device certificate fails', async (t) => {
  const af = await start(true);
  t.teardown(() => af.close());
  const port = af.runtime.ports.dot[0]!;
  const refused = async (cert?: Issued): Promise<boolean> => {
    try {
      const c = await connect(port, HOTEL, cert);
      // TLS 1.3: the server's verdict on the client certificate arrives after the client's handshake completes
      c.send('www.tiktok.com', 'A', 1);
      await c.next();
      c.close();
      return false;
    } catch {
      return true;
    }
  };
  t.ok(await refused(), 'no certificate');
  t.ok(await refused(forged), 'stranger CA');
  t.notOk(await refused(laptop), 'valid device certificate accepted');
});

t.test('reload (SIGHUP path) picks up new CA and server certificate for new connections', async (t) => {
  const af = await start();
  t.teardown(() => af.close());
  const port = af.runtime.ports.dot[0]!;
  const before = await connect(port, HOTEL, laptop);
  const fingerprint = before.socket.getPeerCertificate().fingerprint256;
  before.close();

  // the admin swaps the device CA for another one: the old laptops no longer identify
  copyFileSync(pki.strangerCa.cert, join(af.dir, 'device-ca.pem'));
  t.equal(await af.runtime.reload(() => loadConfig(join(af.dir, 'appfence.yaml'))), null);
  const after = await connect(port, HOTEL, laptop);
  after.send('www.tiktok.com', 'A', 5);
  t.same((await after.next()).answers.map((a) => a.data), ['198.51.100.7'], 'laptop of the old CA: no longer identified');
  after.close();
  const stranger = await connect(port, HOTEL, forged);
  stranger.send('www.tiktok.com', 'A', 6);
  t.same((await stranger.next()).answers.map((a) => a.data), ['0.0.0.0'], 'device of the new CA: identified');
  stranger.close();

  // a broken key on reload keeps the running certificates
  copyFileSync(pki.ca.key, join(af.dir, 'server-key.pem'));
  const err = await af.runtime.reload(() => loadConfig(join(af.dir, 'appfence.yaml')));
  t.match(err?.message, /dns\.tls/, 'mismatched key rejected, naming the key path');
  const still = await connect(port, HOTEL);
  t.equal(still.socket.getPeerCertificate().fingerprint256, fingerprint, 'old server certificate still served');
  still.close();
});

t.test('a verified device certificate passes access.allow: the roaming laptop is served, strangers are refused', async (t) => {
  const af = await start(false, '127.0.10.0/24');
  t.teardown(() => af.close());
  const port = af.runtime.ports.dot[0]!;
  const dev = await connect(port, HOTEL, laptop);
  dev.send('www.tiktok.com', 'A', 1);
  t.same((await dev.next()).answers.map((a) => a.data), ['0.0.0.0'], 'device certificate from outside access.allow: served (and blocked)');
  dev.close();
  for (const [label, cert] of [['no certificate', undefined], ['stranger CA', forged], ['other OU', otherOu]] as const) {
    const c = await connect(port, HOTEL, cert);
    c.send('example.org', 'A', 2);
    t.equal((await c.next()).rcode, 5, `${label} from outside access.allow: REFUSED`);
    c.close();
  }
});
