// CONNECT tunnels and the TLS proxy end to end: curl through a tunnel to an HTTPS origin, raw CONNECT
// to a TCP target, blocked names (403, no tunnel), connectPorts, the per-client tunnel cap, target
// failures (502/504); and `curl --proxy https://… --proxy-cert`: a city laptop at a hotel address is
// identified by its device certificate (via "cert", device CN in the block log).
import t from 'tap';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync, copyFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestPki, cityDevices, type TestPki, type Issued } from '../helpers/certs.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startServer, type Started } from '../helpers/start-server.js';
import { startOrigin, startStalledListener, startTarget, type Origin, type Target } from '../helpers/origin.js';
import { curl, rawExchange } from '../helpers/curl.js';
import { loadConfig } from '../../src/config/load.js';

const MANAGED = '127.0.10.8';
const HOTEL = '127.0.20.8';

let pki: TestPki;
let laptop: Issued;
let forged: Issued;
let up: FakeUpstream;
let tlsOrigin: Origin;
let plain: Origin;
let target: Target;
let stalled: Target;
let srv: Started;
let proxyPort: number;
let tlsPort: number;

const A = (address: string) => ({ answers: [{ type: 'A', data: address }] });

t.before(async () => {
  pki = await createTestPki();
  ({ laptop, forged } = await cityDevices(pki));
  const serverTls = { cert: readFileSync(pki.server.cert), key: readFileSync(pki.server.key) };
  tlsOrigin = await startOrigin('127.0.0.5', 'Secure origin', serverTls);
  plain = await startOrigin('127.0.0.5');
  target = await startTarget('127.0.0.4');
  stalled = await startStalledListener('127.0.0.6');
  up = await startFakeUpstream({ zone: {
    'secure.example.org A': A('127.0.0.5'),
    'www.tiktok.com A': A('127.0.0.5'),
    'plain.example.org A': A('127.0.0.5'),
    'target.example.org A': A('127.0.0.4'),
    'down.example.org A': A('127.0.0.3'),
    'stalled.example.org A': A('127.0.0.6'),
  } });
  srv = await startServer((dir) => `
dns: { listen: ["127.0.0.1:0"], upstreams: ["127.0.0.1:${up.port}"], timeoutMs: 400 }
proxy:
  listen: ["127.0.0.1:0"]
  tls: { listen: ["127.0.0.1:0"], cert: ${join(dir, 'server.pem')}, key: ${join(dir, 'server-key.pem')} }
  connectPorts: [${tlsOrigin.port}, ${target.port}, ${stalled.port}]
  maxTunnelsPerClient: 3
  connectTimeoutMs: 600
clientCerts: { ca: ${join(dir, 'device-ca.pem')} }
access: { allow: ["127.0.10.0/24", "127.0.20.0/24", "127.0.0.1/32"] }
lists: { tiktok: { sources: ["tiktok.txt"] } }
groups:
  city:
    subnets: ["127.0.10.0/24"]
    certificates: { issuer: "City Device CA", subject: { OU: "City Devices" } }
    block: [tiktok]
log: { level: silent }
`, { 'tiktok.txt': 'tiktok.com\n' }, (dir) => {
    copyFileSync(pki.server.cert, join(dir, 'server.pem'));
    copyFileSync(pki.server.key, join(dir, 'server-key.pem'));
    copyFileSync(pki.ca.cert, join(dir, 'device-ca.pem'));
  });
  proxyPort = srv.runtime.ports.proxy[0]!;
  tlsPort = srv.runtime.ports.proxyTls[0]!;
});
t.teardown(async () => {
  await srv.close();
  await Promise.all([up.close(), tlsOrigin.close(), plain.close(), target.close(), stalled.close()]);
  await rm(pki.dir, { recursive: true, force: true });
});

const connect = (from: string, authority: string, waitMs = 1500) =>
  rawExchange(proxyPort, `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`, from, '127.0.0.1', waitMs, true);

t.test('curl through a CONNECT tunnel reaches an HTTPS origin; a managed device is refused with 403 and no tunnel', async (t) => {
  const ok = await curl(['-x', `http://127.0.0.1:${proxyPort}`, '--interface', HOTEL, '-k', `https://secure.example.org:${tlsOrigin.port}/x`]);
  t.equal(ok.status, 200);
  t.match(ok.body, 'Secure origin');
  const before = srv.runtime.proxyStats.blocked;
  const blocked = await curl(['-x', `http://127.0.0.1:${proxyPort}`, '--interface', MANAGED, '-k', `https://www.tiktok.com:${tlsOrigin.port}/`]);
  t.not(blocked.exitCode, 0);
  t.match(blocked.stderr, /CONNECT tunnel failed, response 403/);
  t.equal(srv.runtime.proxyStats.blocked, before + 1);
  t.match(srv.events().at(-1), { event: 'block', proto: 'connect', client: MANAGED, group: 'city', via: 'subnet',
    name: 'www.tiktok.com', rule: 'tiktok.com', list: 'tiktok', answer: 'forbidden' });
  const raw = await connect(MANAGED, `www.tiktok.com:${tlsOrigin.port}`);
  t.match(raw, /^HTTP\/1\.1 403 Forbidden\r\n/);
  t.notMatch(raw, /200 Connection Established/);
});

t.test('a raw tunnel relays bytes both ways, with bytes sent along with the CONNECT', async (t) => {
  const s = net.connect({ port: proxyPort, host: '127.0.0.1', localAddress: HOTEL });
  let got = '';
  s.on('data', (c: Buffer) => { got += c.toString('latin1'); });
  s.write(`CONNECT target.example.org:${target.port} HTTP/1.1\r\nHost: x\r\n\r\nearly bytes\n`);
  for (let i = 0; i < 100 && !got.includes('early bytes'); i++) await new Promise((r) => setTimeout(r, 10));
  s.write('ping\n');
  for (let i = 0; i < 100 && !got.includes('ping'); i++) await new Promise((r) => setTimeout(r, 10));
  s.destroy();
  t.match(got, /^HTTP\/1\.1 200 Connection Established\r\n\r\nhello from target\nearly bytes\nping\n$/);
});

t.test('connectPorts, malformed CONNECT, target failures', async (t) => {
  t.match(await connect(HOTEL, 'target.example.org:22'), /^HTTP\/1\.1 403 [^\n]*\n[\s\S]*port 22 is not allowed/);
  t.match(await connect(HOTEL, 'target.example.org'), /^HTTP\/1\.1 400 /);
  t.match(await connect(HOTEL, '[not-v6]:443'), /^HTTP\/1\.1 400 /);
  t.match(await connect(HOTEL, `down.example.org:${target.port}`), /^HTTP\/1\.1 502 Bad Gateway[\s\S]*ECONNREFUSED/);
  t.match(await connect(HOTEL, `gone.example.org:${target.port}`), /^HTTP\/1\.1 502 Bad Gateway[\s\S]*cannot resolve/);
  t.match(await connect(HOTEL, `127.0.0.1:${proxyPort}`), /^HTTP\/1\.1 403 /, 'a port not in connectPorts, and the proxy itself');
  t.match(await connect('127.0.30.1', `target.example.org:${target.port}`), /^HTTP\/1\.1 403 [\s\S]*access denied/);
});

t.test('a target that never completes the handshake: 504 with a short text after connectTimeoutMs; refused: 502', async (t) => {
  const errorsBefore = srv.runtime.proxyStats.error;
  const started = Date.now();
  const slow = await connect(HOTEL, `stalled.example.org:${stalled.port}`, 10_000);
  const waited = Date.now() - started;
  t.match(slow, /^HTTP\/1\.1 504 Gateway Timeout\r\n/);
  t.match(slow, `target 127.0.0.6:${stalled.port} did not accept in time`);
  t.notMatch(slow, /200 Connection Established/);
  t.ok(waited >= 500, `answered after the connect timeout (600 ms), not before: ${waited} ms`);
  const body = slow.split('\r\n\r\n')[1] ?? '';
  t.ok(body.length > 0 && body.length < 200, 'a short text body');
  const refused = await connect(HOTEL, `down.example.org:${target.port}`);
  t.match(refused, /^HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*\r\n\r\ncannot connect to 127\.0\.0\.3:\d+ \(ECONNREFUSED\)\n$/);
  t.equal(srv.runtime.proxyStats.error, errorsBefore + 2, 'both count as errors');
  t.match(await connect(HOTEL, `target.example.org:${target.port}`), /^HTTP\/1\.1 200 /, 'other tunnels unaffected');
});

t.test('no more than maxTunnelsPerClient tunnels per address; others unaffected', async (t) => {
  const open: net.Socket[] = [];
  for (let i = 0; i < 3; i++) {
    const s = net.connect({ port: proxyPort, host: '127.0.0.1', localAddress: '127.0.20.9' });
    await new Promise<void>((resolve) => { s.once('data', () => resolve()); s.write(`CONNECT target.example.org:${target.port} HTTP/1.1\r\n\r\n`); });
    open.push(s);
  }
  t.match(await connect('127.0.20.9', `target.example.org:${target.port}`), /^HTTP\/1\.1 429 /);
  t.match(await connect('127.0.20.10', `target.example.org:${target.port}`), /^HTTP\/1\.1 200 /, 'another client still gets its tunnel');
  for (const s of open) s.destroy();
  await new Promise((r) => setTimeout(r, 50));
  t.match(await connect('127.0.20.9', `target.example.org:${target.port}`), /^HTTP\/1\.1 200 /, 'slots come back when tunnels close');
});

const viaTls = (args: string[]) => curl(['--proxy', `https://127.0.0.1:${tlsPort}`, '--proxy-cacert', pki.serverCa.cert, '--interface', HOTEL, ...args]);

t.test('TLS proxy: a device certificate identifies the laptop at a hotel (via "cert"); without one it is a guest', async (t) => {
  const blocked = await viaTls(['--proxy-cert', laptop.cert, '--proxy-key', laptop.key, `http://www.tiktok.com:${plain.port}/`]);
  t.equal(blocked.status, 403);
  t.match(blocked.body, 'This site is blocked');
  t.match(srv.events().at(-1), { event: 'block', proto: 'http', client: HOTEL, group: 'city', via: 'cert', device: 'laptop-042',
    name: 'www.tiktok.com', rule: 'tiktok.com' });
  const tunnel = await viaTls(['--proxy-cert', laptop.cert, '--proxy-key', laptop.key, '-k', `https://www.tiktok.com:${tlsOrigin.port}/`]);
  t.match(tunnel.stderr, /CONNECT tunnel failed, response 403/);
  t.match(srv.events().at(-1), { proto: 'connect', via: 'cert', device: 'laptop-042' });
  const guest = await viaTls([`http://plain.example.org:${plain.port}/`]);
  t.equal(guest.status, 200, 'no certificate: the hotel address is a guest');
  const fake = await viaTls(['--proxy-cert', forged.cert, '--proxy-key', forged.key, `http://www.tiktok.com:${plain.port}/`]);
  t.equal(fake.status, 200, 'a certificate from another CA identifies nobody: a guest');
  t.match(fake.body, 'Origin page');
  const pac = await curl(['--cacert', pki.serverCa.cert, `https://127.0.0.1:${tlsPort}/proxy.pac`]);
  t.match(pac.body, `HTTPS 127.0.0.1:${tlsPort}`);
});

t.test('a reload swaps the TLS proxy\'s server certificate for new connections; an open tunnel keeps running', async (t) => {
  const renewed = await pki.device({ cn: 'proxy renewed', clientAuth: false });
  const open = (): Promise<tls.TLSSocket> => new Promise((resolve, reject) => {
    const s = tls.connect({ socket: net.connect({ port: tlsPort, host: '127.0.0.1', localAddress: HOTEL }), rejectUnauthorized: false }, () => resolve(s));
    s.once('error', reject);
  });
  const subject = (s: tls.TLSSocket) => s.getPeerCertificate().subject.CN;
  /** Sends `bytes` on `s` and waits until `expect` came back through the tunnel. */
  const echo = (s: tls.TLSSocket, bytes: string, expect: string, got: { text: string }) => new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${expect}; got ${JSON.stringify(got.text)}`)), 3000);
    const check = () => { if (got.text.includes(expect)) { clearTimeout(timer); s.off('data', check); resolve(); } };
    s.on('data', check);
    s.write(bytes);
  });

  const old = await open();
  t.equal(subject(old), 'localhost', 'certificate A before the reload');
  const received = { text: '' };
  old.on('data', (c: Buffer) => { received.text += c.toString('latin1'); });
  await echo(old, `CONNECT target.example.org:${target.port} HTTP/1.1\r\nHost: x\r\n\r\nbefore\n`, 'before\n', received);
  t.match(received.text, /^HTTP\/1\.1 200 Connection Established\r\n\r\nhello from target\n/);

  copyFileSync(renewed.cert, join(srv.dir, 'server.pem'));
  copyFileSync(renewed.key, join(srv.dir, 'server-key.pem'));
  t.equal(await srv.runtime.reload(() => loadConfig(join(srv.dir, 'appfence.yaml'))), null);
  const fresh = await open();
  t.equal(subject(fresh), 'proxy renewed', 'certificate B on a connection made after the reload');
  fresh.destroy();
  const pac = await curl(['-k', '-v', `https://127.0.0.1:${tlsPort}/proxy.pac`]);
  t.match(pac.stderr, /subject: CN=proxy renewed/, 'curl sees certificate B too');

  await echo(old, 'after the reload\n', 'before\nafter the reload\n', received);
  t.equal(subject(old), 'localhost', 'the open tunnel still runs on its TLS session with certificate A');
  old.destroy();

  copyFileSync(pki.server.cert, join(srv.dir, 'server.pem'));
  copyFileSync(pki.server.key, join(srv.dir, 'server-key.pem'));
  t.equal(await srv.runtime.reload(() => loadConfig(join(srv.dir, 'appfence.yaml'))), null);
});
