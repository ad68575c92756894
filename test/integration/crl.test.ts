// clientCerts.crl: a lost laptop's certificate, revoked in a CRL made with `openssl ca -gencrl`, is
// never identified, on DoT (a tls client) and DoH (curl), and `appfence check --cert` says "revoked";
// a valid laptop of the same CA still is. An expired CRL is reported and still enforced.
import t from 'tap';
import tls from 'node:tls';
import net from 'node:net';
import { execFile, spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestPki, type TestPki, type Issued } from '../helpers/certs.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { buildQuery, decodeReply, framedSession } from '../helpers/dns-client.js';
import { startServer, type Started } from '../helpers/start-server.js';
import { CertificateIdentifier } from '../../src/identity/certificate.js';
import { ConfigError } from '../../src/errors.js';

const HOTEL = '127.0.20.5';
let pki: TestPki;
let up: FakeUpstream;
let lost: Issued;
let kept: Issued;
let crl: string;

t.before(async () => {
  pki = await createTestPki();
  [lost, kept] = await Promise.all([
    pki.device({ cn: 'laptop-042', ou: 'City Devices' }),
    pki.device({ cn: 'laptop-043', ou: 'City Devices' }),
  ]);
  crl = await pki.crl({ revoke: [lost] });
  up = await startFakeUpstream({ zone: {
    'www.tiktok.com A': { answers: [{ type: 'A', ttl: 300, data: '198.51.100.7' }] },
    // for the proxy: an unmanaged client is forwarded to a closed loopback port (502), a managed one gets the block page
    'proxy.tiktok.com A': { answers: [{ type: 'A', ttl: 300, data: '127.0.0.9' }] },
  } });
});
t.teardown(async () => {
  await up?.close();
  if (pki) await rm(pki.dir, { recursive: true, force: true });
});

const yaml = (dir: string) => `
dns:
  listen: ["127.0.0.1:0"]
  tls: { listen: ["127.0.0.1:0"], cert: ${join(dir, 'server.pem')}, key: ${join(dir, 'server-key.pem')} }
  https: { listen: ["127.0.0.1:0"], cert: ${join(dir, 'server.pem')}, key: ${join(dir, 'server-key.pem')} }
  upstreams: ["127.0.0.1:${up.port}"]
clientCerts: { ca: ${join(dir, 'device-ca.pem')}, crl: ${join(dir, 'device-ca.crl')} }
access: { allow: ["127.0.0.0/8"] }
lists: { tiktok: { sources: ["tiktok.txt"] } }
groups:
  city: { subnets: ["127.0.10.0/24"], certificates: { issuer: "City Device CA", subject: { OU: "City Devices" } }, block: [tiktok] }
log: { level: silent }
`;

function start(crlFile: string, appLog?: string): Promise<Started> {
  return startServer(yaml, { 'tiktok.txt': 'tiktok.com\n' }, (dir) => {
    copyFileSync(pki.server.cert, join(dir, 'server.pem'));
    copyFileSync(pki.server.key, join(dir, 'server-key.pem'));
    copyFileSync(pki.ca.cert, join(dir, 'device-ca.pem'));
    copyFileSync(crlFile, join(dir, 'device-ca.crl'));
  }, appLog === undefined ? {} : { appLog });
}

/** The A answer www.tiktok.com gets over DoT from the hotel with `cert`. */
function overDot(port: number, cert: Issued): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const raw = net.connect({ host: '127.0.0.1', port, localAddress: HOTEL });
    const socket = tls.connect({ socket: raw, servername: 'localhost', ca: pki.serverCa.pem, cert: readFileSync(cert.cert), key: readFileSync(cert.key) });
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      const session = framedSession(socket);
      session.writeQuery({ name: 'www.tiktok.com', type: 'A', id: 7 });
      session.read(5000).then((frame) => {
        socket.destroy();
        resolve(frame === null ? 'no reply' : decodeReply(frame).answers[0]?.data as string | undefined);
      }, reject);
    });
  });
}

/** The same over DoH with curl, as a browser or OS resolver would present its client certificate. */
function overDoh(port: number, cert: Issued): Promise<string | undefined> {
  const q = buildQuery({ name: 'www.tiktok.com', type: 'A', id: 0 }).toString('base64url');
  return new Promise((resolve, reject) => {
    execFile('curl', ['-s', '--fail', '--interface', HOTEL, '--cacert', pki.serverCa.cert, '--cert', cert.cert, '--key', cert.key,
      '-H', 'accept: application/dns-message', `https://localhost:${port}/dns-query?dns=${q}`, '--resolve', `localhost:${port}:127.0.0.1`],
    { encoding: 'buffer', timeout: 15_000 }, (err, stdout) => (err ? reject(err) : resolve(decodeReply(stdout).answers[0]?.data as string | undefined)));
  });
}

t.test('a revoked device is never identified, on DoT and DoH; a valid one of the same CA is', async (t) => {
  const af = await start(crl);
  t.teardown(() => af.close());
  const { dot: [dot], doh: [doh] } = af.runtime.ports;
  t.equal(await overDot(dot!, kept), '0.0.0.0', 'DoT: the valid laptop is identified (sinkholed)');
  t.equal(await overDot(dot!, lost), '198.51.100.7', 'DoT: the revoked laptop is not (answered as an unmanaged client)');
  t.equal(await overDoh(doh!, kept), '0.0.0.0', 'DoH: the valid laptop is identified');
  t.equal(await overDoh(doh!, lost), '198.51.100.7', 'DoH: the revoked laptop is not');
  t.notOk(af.events().some((e) => e['device'] === 'laptop-042'), 'no event names the revoked device');
});

t.test('appfence check --cert says "revoked"', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'appfence-crl-check-'));
  copyFileSync(pki.server.cert, join(dir, 'server.pem'));
  copyFileSync(pki.server.key, join(dir, 'server-key.pem'));
  copyFileSync(pki.ca.cert, join(dir, 'device-ca.pem'));
  copyFileSync(crl, join(dir, 'device-ca.crl'));
  writeFileSync(join(dir, 'tiktok.txt'), 'tiktok.com\n');
  writeFileSync(join(dir, 'c.yaml'), yaml(dir));
  const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
  const check = (cert: Issued) => spawnSync(process.execPath, [cli, 'check', '--config', join(dir, 'c.yaml'), '--client', HOTEL,
    '--cert', cert.cert, 'www.tiktok.com'], { encoding: 'utf8', timeout: 30_000 });
  const revoked = check(lost);
  t.match(revoked.stdout, /^certificate: not used \(revoked\)$/m);
  t.match(revoked.stdout, /www\.tiktok\.com\s+ALLOW\s+group=default\s+via=default/);
  t.equal(revoked.status, 0);
  const valid = check(kept);
  t.match(valid.stdout, /BLOCK\s+group=city\s+via=cert\s+device=laptop-043/);
  t.equal(valid.status, 1);
});

t.test('an expired CRL is reported and still enforced', async (t) => {
  const stale = await pki.crl({ revoke: [lost], expired: true });
  const log = join(mkdtempSync(join(tmpdir(), 'appfence-crl-')), 'app.log');
  const af = await start(stale, log);
  t.teardown(() => af.close());
  const warning = readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((l) => String(l['msg']).includes('past its nextUpdate'));
  t.match(warning, { level: 'warn', issuer: /City Device CA/ });
  const [dot] = af.runtime.ports.dot;
  t.equal(await overDot(dot!, lost), '198.51.100.7', 'the revoked laptop stays unidentified');
  t.equal(await overDot(dot!, kept), '0.0.0.0', 'the others are still identified (OpenSSL would refuse them all)');
});

t.test('a CRL that no clientCerts.ca signed, or that is not a CRL, is a config error', async (t) => {
  const other = await createTestPki();
  t.teardown(() => rm(other.dir, { recursive: true, force: true }));
  const foreign = readFileSync(await other.crl({ revoke: [] }), 'utf8');
  // another PKI's CA of the same name: found by name, refused by its signature
  t.throws(() => new CertificateIdentifier([pki.ca.pem], [], [foreign]), new ConfigError('clientCerts.crl[0]',
    'holds a CRL issued by "CN=City Device CA" whose signature does not verify with that clientCerts.ca certificate\'s key (a CRL of another CA with the same name?)'));
  t.throws(() => new CertificateIdentifier([pki.ca.pem], [], [pki.ca.pem]), { keyPath: 'clientCerts.crl[0]', message: /holds no PEM CRL/ });
});

// A two-level device PKI: clientCerts.ca holds the root and its intermediate; the intermediate issues the laptops
// and its own CRL. That CRL is verified against the intermediate (the CA its issuer names), and it is what revokes.
const chainYaml = (dir: string) => `
dns:
  listen: ["127.0.0.1:0"]
  tls: { listen: ["127.0.0.1:0"], cert: ${join(dir, 'server.pem')}, key: ${join(dir, 'server-key.pem')} }
  https: { listen: ["127.0.0.1:0"], cert: ${join(dir, 'server.pem')}, key: ${join(dir, 'server-key.pem')} }
  upstreams: ["127.0.0.1:${up.port}"]
proxy:
  listen: ["127.0.0.1:0"]
  tls: { listen: ["127.0.0.1:0"], cert: ${join(dir, 'server.pem')}, key: ${join(dir, 'server-key.pem')} }
clientCerts: { ca: ${join(dir, 'device-chain.pem')}, crl: [${join(dir, 'root.crl')}, ${join(dir, 'intermediate.crl')}] }
access: { allow: ["127.0.0.0/8"] }
lists: { tiktok: { sources: ["tiktok.txt"] } }
groups:
  city: { subnets: ["127.0.10.0/24"], certificates: { issuer: "City Device Intermediate", subject: { OU: "City Devices" } }, block: [tiktok] }
log: { level: silent }
`;

function prepareChain(dir: string, rootCrl: string, intermediateCrl: string): void {
  copyFileSync(pki.server.cert, join(dir, 'server.pem'));
  copyFileSync(pki.server.key, join(dir, 'server-key.pem'));
  writeFileSync(join(dir, 'device-chain.pem'), pki.ca.pem + pki.intermediate.pem);
  copyFileSync(rootCrl, join(dir, 'root.crl'));
  copyFileSync(intermediateCrl, join(dir, 'intermediate.crl'));
  writeFileSync(join(dir, 'tiktok.txt'), 'tiktok.com\n');
}

/** curl through the TLS proxy from the hotel with `cert`: 403 (block page) when identified as city, else 502 (forwarded to a closed port). */
function overTlsProxy(port: number, cert: Issued): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--interface', HOTEL, '--proxy', `https://127.0.0.1:${port}`,
      '--proxy-cacert', pki.serverCa.cert, '--proxy-cert', cert.cert, '--proxy-key', cert.key, 'http://proxy.tiktok.com:9/'],
    { encoding: 'utf8', timeout: 15_000 }, (err, stdout) => (err && stdout === '' ? reject(err) : resolve(Number(stdout))));
  });
}

t.test('a CRL of an intermediate CA revokes its devices on DoT, DoH, the TLS proxy and in check --cert', async (t) => {
  const [lostViaIntermediate, keptViaIntermediate] = await Promise.all([
    pki.device({ cn: 'laptop-142', ou: 'City Devices', issuer: 'intermediate' }),
    pki.device({ cn: 'laptop-143', ou: 'City Devices', issuer: 'intermediate' }),
  ]);
  // the root's CRL revokes nothing of the intermediate's: the same serial on the root's list would not count either
  const [rootCrl, intermediateCrl] = await Promise.all([pki.crl({ revoke: [] }), pki.crl({ revoke: [lostViaIntermediate], issuer: 'intermediate' })]);
  const af = await startServer(chainYaml, {}, (dir) => prepareChain(dir, rootCrl, intermediateCrl));
  t.teardown(() => af.close());
  const { dot: [dot], doh: [doh], proxyTls: [proxyTls] } = af.runtime.ports;
  t.equal(await overDot(dot!, keptViaIntermediate), '0.0.0.0', 'DoT: a valid laptop of the intermediate is identified');
  t.equal(await overDot(dot!, lostViaIntermediate), '198.51.100.7', 'DoT: the one on the intermediate\'s CRL is not');
  t.equal(await overDoh(doh!, keptViaIntermediate), '0.0.0.0', 'DoH: valid laptop identified');
  t.equal(await overDoh(doh!, lostViaIntermediate), '198.51.100.7', 'DoH: revoked laptop not');
  t.equal(await overTlsProxy(proxyTls!, keptViaIntermediate), 403, 'TLS proxy: the valid laptop gets the block page');
  t.equal(await overTlsProxy(proxyTls!, lostViaIntermediate), 502, 'TLS proxy: the revoked laptop is an unmanaged guest');
  t.notOk(af.events().some((e) => e['device'] === 'laptop-142'), 'no event names the revoked device');

  const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
  const check = (cert: Issued) => spawnSync(process.execPath, [cli, 'check', '--config', join(af.dir, 'appfence.yaml'), '--client', HOTEL,
    '--cert', cert.cert, 'www.tiktok.com'], { encoding: 'utf8', timeout: 30_000 });
  t.match(check(lostViaIntermediate).stdout, /^certificate: not used \(revoked\)$/m, 'check --cert: revoked');
  t.match(check(keptViaIntermediate).stdout, /BLOCK\s+group=city\s+via=cert\s+device=laptop-143/);
});

t.test('the root\'s CRL revokes an intermediate CA that clientCerts.ca itself holds: its devices are no longer identified', async (t) => {
  const laptop = await pki.device({ cn: 'laptop-144', ou: 'City Devices', issuer: 'intermediate' });
  const [rootCrl, intermediateCrl] = await Promise.all([pki.crl({ revoke: [pki.intermediate] }), pki.crl({ revoke: [], issuer: 'intermediate' })]);
  const af = await startServer(chainYaml, {}, (dir) => prepareChain(dir, rootCrl, intermediateCrl));
  t.teardown(() => af.close());
  t.equal(await overDot(af.runtime.ports.dot[0]!, laptop), '198.51.100.7', 'DoT: a laptop under a revoked intermediate is not identified');
  const identifier = new CertificateIdentifier([pki.ca.pem + pki.intermediate.pem], [],
    [readFileSync(rootCrl, 'utf8'), readFileSync(intermediateCrl, 'utf8')]);
  t.same(identifier.identifyPem(laptop.pem), { reason: 'revoked' });
});

t.test('a CRL is verified against the CA its issuer names: a forged one under the same name is a config error', async (t) => {
  // the stranger CA has the subject "City Device CA" but another key
  const forged = readFileSync(await pki.crl({ revoke: [kept], issuer: 'stranger' }), 'utf8');
  t.throws(() => new CertificateIdentifier([pki.ca.pem + pki.intermediate.pem], [], [forged]),
    { keyPath: 'clientCerts.crl[0]', message: /CN=City Device CA.*signature does not verify/ });
  const ofIntermediate = readFileSync(await pki.crl({ revoke: [], issuer: 'intermediate' }), 'utf8');
  t.throws(() => new CertificateIdentifier([pki.ca.pem], [], [ofIntermediate]),
    { keyPath: 'clientCerts.crl[0]', message: /issued by "CN=City Device Intermediate", which no clientCerts\.ca certificate is/ });
});
