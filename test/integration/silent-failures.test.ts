// Silent failures get a log line and a counter, end to end on loopback: clients refused by
// access.allow (summary per /24 in the app log, runtime.refusedClients.total), and device
// certificates presented on DoT but not taken (expired, wrong key usage, unknown CA: a warn line
// with subject, issuer and reason, runtime.certRejections.counts) while the client is still served.
import t from 'tap';
import tls from 'node:tls';
import net from 'node:net';
import { copyFileSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestPki, type TestPki, type Issued } from '../helpers/certs.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { framedSession, decodeReply, query } from '../helpers/dns-client.js';
import { startServer, type Started } from '../helpers/start-server.js';
import { scrape } from '../helpers/metrics.js';

const OFFICE = '127.0.10.5';
let pki: TestPki;
let up: FakeUpstream;
let af: Started;

t.before(async () => {
  pki = await createTestPki();
  up = await startFakeUpstream({ zone: { 'www.tiktok.com A': { answers: [{ type: 'A', ttl: 300, data: '198.51.100.7' }] } } });
  af = await startServer((dir) => `
dns:
  listen: ["127.0.0.1:0"]
  tls: { listen: ["127.0.0.1:0"], cert: ${join(dir, 'server.pem')}, key: ${join(dir, 'server-key.pem')} }
  upstreams: ["127.0.0.1:${up.port}"]
clientCerts: { ca: ${join(dir, 'device-ca.pem')} }
access: { allow: ["127.0.10.0/24"] }
lists: { tiktok: { sources: ["tiktok.txt"] } }
groups:
  city:
    subnets: ["127.0.10.0/24"]
    certificates: { issuer: "City Device CA", subject: { OU: "City Devices" } }
    block: [tiktok]
admin: { listen: "127.0.0.1:0" }
`, { 'tiktok.txt': 'tiktok.com\n' }, (dir) => {
    copyFileSync(pki.server.cert, join(dir, 'server.pem'));
    copyFileSync(pki.server.key, join(dir, 'server-key.pem'));
    copyFileSync(pki.ca.cert, join(dir, 'device-ca.pem'));
  }, { appLog: true });
});
t.teardown(async () => {
  await af?.close();
  await up?.close();
  if (pki) await rm(pki.dir, { recursive: true, force: true });
});

/** One DoT query from `from` with `cert`; the answer's first address and rcode. */
function dot(from: string, cert: Issued): Promise<{ rcode: number; data: unknown }> {
  return new Promise((resolve, reject) => {
    const raw = net.connect({ host: '127.0.0.1', port: af.runtime.ports.dot[0]!, localAddress: from });
    const socket = tls.connect({ socket: raw, servername: 'localhost', ca: pki.serverCa.pem, cert: readFileSync(cert.cert), key: readFileSync(cert.key) });
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      const session = framedSession(socket);
      session.writeQuery({ name: 'www.tiktok.com', type: 'A', id: 1 });
      void session.read(3000).then((frame) => {
        socket.destroy();
        if (frame === null) return reject(new Error('no reply'));
        const reply = decodeReply(frame);
        resolve({ rcode: reply.rcode, data: reply.answers[0]?.data });
      });
    });
  });
}

t.test('clients refused by access.allow: counted, summarised per /24', async (t) => {
  for (const from of ['127.0.30.5', '127.0.30.6', '127.0.31.9']) {
    const r = await query({ server: af.server, name: 'www.tiktok.com', type: 'A', proto: 'udp', localAddress: from });
    t.equal(r.rcode, 5, `${from}: REFUSED`);
  }
  t.equal(af.runtime.refusedClients.total, 3);
  const m = await scrape(af.runtime.adminPort);
  t.equal(m.value('appfence_access_refusals_total', { proto: 'udp' }), 3, 'scraped: appfence_access_refusals_total{proto="udp"}');
  af.runtime.refusedClients.report(); // the interval's report, without waiting a minute
  t.match(af.appLog().find((l) => l['msg'] === 'clients refused: not in access.allow'),
    { level: 'warn', component: 'access', count: 3, clients: { '127.0.30.0/24': 2, '127.0.31.0/24': 1 } });
});

t.test('a device certificate presented but rejected: a warn line with the reason; the client falls back to its address', async (t) => {
  const [expired, serverOnly, stranger] = await Promise.all([
    pki.device({ cn: 'laptop-042', ou: 'City Devices', days: -1 }),
    pki.device({ cn: 'laptop-043', ou: 'City Devices', clientAuth: false }),
    pki.device({ cn: 'laptop-044', ou: 'City Devices', issuer: 'stranger' }),
  ]);
  const fromHotel = await dot('127.0.30.7', expired);
  t.equal(fromHotel.rcode, 5, 'expired certificate from outside access.allow: refused like any stranger');
  t.same(await dot(OFFICE, serverOnly), { rcode: 0, data: '0.0.0.0' }, 'at the office the subnet still puts it in its group');
  await dot(OFFICE, stranger);
  t.same(af.runtime.certRejections.counts, { expired: 1, 'not yet valid': 0, 'unknown CA': 1, 'wrong key usage': 1, 'matches no group': 0 });
  const m = await scrape(af.runtime.adminPort);
  t.equal(m.value('appfence_cert_rejections_total', { reason: 'expired' }), 1, 'scraped: expired');
  t.equal(m.value('appfence_cert_rejections_total', { reason: 'unknown CA' }), 1, 'scraped: unknown CA');
  t.equal(m.value('appfence_cert_rejections_total', { reason: 'wrong key usage' }), 1, 'scraped: wrong key usage');
  const lines = af.appLog().filter((l) => String(l['msg']).startsWith('device certificate rejected'));
  t.match(lines, [
    { level: 'warn', component: 'identity', reason: 'expired', subject: /CN=laptop-042/, issuer: /CN=City Device CA/, client: '127.0.30.7' },
    { reason: 'wrong key usage', subject: /CN=laptop-043/ },
    { reason: 'unknown CA', subject: /CN=laptop-044/ },
  ]);
});
