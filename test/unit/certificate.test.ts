import t from 'tap';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { CertificateIdentifier, certFields, globMatch } from '../../src/identity/certificate.js';
import type { CertificateMatch, GroupConfig } from '../../src/config/types.js';
import { ConfigError } from '../../src/errors.js';
import { createTestPki, type Issued } from '../helpers/certs.js';

const pki = await createTestPki();
t.teardown(() => rm(pki.dir, { recursive: true, force: true }));

function group(name: string, certificates?: CertificateMatch): GroupConfig {
  return { name, subnets: [], block: [], allow: [], mode: 'null', ...(certificates ? { certificates } : {}) };
}

// Config order matters: the first group whose fields all match wins.
const groups: GroupConfig[] = [
  group('subnet-only'),
  group('other-ca', { issuer: 'Other CA', subject: { OU: 'City Devices' } }),
  group('city-devices', { issuer: 'City Device CA', subject: { OU: 'City Devices' } }),
  group('phones', { subject: { CN: 'phone-*' } }),
  group('laptops', { issuer: 'city device *', subject: { CN: 'LAPTOP-*', O: 'City' } }),
  group('units', { subject: { OU: 'second, unit' } }),
  group('via-intermediate', { issuer: 'City Device Intermediate' }),
];

const [valid, phone, contractorLaptop, tablet, stranger, expired, future, serverOnly, multiOu, commaOu, viaIntermediate] =
  await Promise.all([
    pki.device({ cn: 'laptop-042', ou: 'City Devices', o: 'City' }),
    pki.device({ cn: 'phone-7', ou: 'Contractors' }),
    pki.device({ cn: 'laptop-900', ou: 'Contractors', o: 'City' }),
    pki.device({ cn: 'tablet-1', ou: 'Contractors', o: 'City' }),
    pki.device({ cn: 'laptop-042', ou: 'City Devices', o: 'City', issuer: 'stranger' }),
    pki.device({ cn: 'laptop-042', ou: 'City Devices', days: -3 }),
    pki.device({ cn: 'laptop-042', ou: 'City Devices', notYetValid: true }),
    pki.device({ cn: 'laptop-042', ou: 'City Devices', clientAuth: false }),
    pki.device({ cn: 'kiosk-3', ou: ['Lobby', 'City Devices'] }),
    pki.device({ cn: 'kiosk-4', ou: 'Second, Unit' }),
    pki.device({ cn: 'laptop-500', ou: 'City Devices', issuer: 'intermediate' }),
  ]);
const withIntermediate: Issued = { ...viaIntermediate, pem: viaIntermediate.pem + pki.intermediate.pem };

const cases: { name: string; cert?: Issued; group?: string; device?: string; reason?: string }[] = [
  { name: 'valid device cert, OU City Devices', cert: valid, group: 'city-devices', device: 'laptop-042' },
  { name: 'no certificate', reason: 'no certificate' },
  { name: 'stranger CA with the same subject CN', cert: stranger, reason: 'not signed by clientCerts.ca' },
  { name: 'other OU, no CN pattern fits', cert: tablet, reason: 'matches no group' },
  { name: 'expired', cert: expired, reason: 'expired' },
  { name: 'not yet valid', cert: future, reason: 'not yet valid' },
  { name: 'serverAuth-only EKU', cert: serverOnly, reason: 'not for client authentication' },
  { name: 'CN glob phone-*', cert: phone, group: 'phones', device: 'phone-7' },
  { name: 'CN glob laptop-* (not phone-*), issuer glob, O', cert: contractorLaptop, group: 'laptops', device: 'laptop-900' },
  { name: 'multi-valued OU: any value matches', cert: multiOu, group: 'city-devices', device: 'kiosk-3' },
  { name: 'OU with an escaped comma', cert: commaOu, group: 'units', device: 'kiosk-4' },
];

const caPems = [pki.ca.pem];
const identifier = new CertificateIdentifier(caPems, groups);
const serverKey = { cert: readFileSync(pki.server.cert), key: readFileSync(pki.server.key) };

/** A TLS server that answers every connection with what identifySocket decided, then closes. */
async function startTls(t: { teardown(fn: () => unknown): void }, require: boolean, chainCa: string[] = caPems) {
  const server = tls.createServer({ ...serverKey, ...CertificateIdentifier.tlsOptions(chainCa, require) }, (socket) => {
    socket.end(JSON.stringify({ identity: identifier.identifySocket(socket) ?? null }));
  });
  const clientErrors: Error[] = [];
  server.on('tlsClientError', (err) => clientErrors.push(err));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.address() as AddressInfo).port, clientErrors, server };
}

/** Connects presenting `cert` (leaf plus any chain in its PEM); resolves with the server's verdict or the error. */
function ask(port: number, cert?: Issued): Promise<{ identity?: unknown; error?: Error }> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1', port, servername: 'localhost', ca: pki.serverCa.pem,
      ...(cert ? { cert: cert.pem, key: readFileSync(cert.key) } : {}),
    });
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => { text += d; });
    socket.on('error', (error) => resolve({ error }));
    socket.on('end', () => {
      try {
        resolve({ identity: (JSON.parse(text) as { identity: unknown }).identity });
      } catch (error) {
        resolve({ error: error as Error });
      }
    });
  });
}

t.test('identifySocket on real TLS (require: false): every case over loopback', async (t) => {
  const { port } = await startTls(t, false);
  for (const c of cases) {
    const got = await ask(port, c.cert);
    t.equal(got.error, undefined, `${c.name}: handshake completes`);
    t.same(got.identity, c.group === undefined ? null : { group: c.group, via: 'cert', device: c.device }, c.name);
  }
  t.same((await ask(port, withIntermediate)).identity, { group: 'via-intermediate', via: 'cert', device: 'laptop-500' },
    'leaf + intermediate sent by the client chains to the CA; issuer is the immediate issuer');
  t.same((await ask(port, viaIntermediate)).identity, null, 'leaf alone cannot reach the CA');
});

t.test('require: true refuses a handshake without a valid certificate', async (t) => {
  const { port, clientErrors } = await startTls(t, true);
  const none = await ask(port);
  t.ok(none.error, 'client without a certificate sees an error');
  t.equal(none.identity, undefined);
  const forged = await ask(port, stranger);
  t.ok(forged.error, 'stranger-CA certificate is refused');
  const old = await ask(port, expired);
  t.ok(old.error, 'expired certificate is refused');
  t.same((await ask(port, valid)).identity, { group: 'city-devices', via: 'cert', device: 'laptop-042' });
  // The server-side error may trail the client's by a tick; wait a bounded while.
  for (let i = 0; i < 100 && clientErrors.length < 3; i++) await delay(10);
  t.equal(clientErrors.length, 3, 'server saw three refused handshakes');
});

t.test('identifySocket re-checks what OpenSSL already vouched for', async (t) => {
  const fake = (authorized: boolean, pem?: string) => ({
    authorized, getPeerX509Certificate: () => (pem === undefined ? undefined : new X509Certificate(pem)),
  }) as unknown as tls.TLSSocket;
  t.same(identifier.identifySocket(fake(true, valid.pem)), { group: 'city-devices', via: 'cert', device: 'laptop-042' });
  t.equal(identifier.identifySocket(fake(false, valid.pem)), undefined, 'not authorized by OpenSSL');
  t.equal(identifier.identifySocket(fake(true)), undefined, 'no peer certificate');
  t.equal(identifier.identifySocket(fake(true, expired.pem)), undefined, 'expired, even if authorized');
  t.equal(identifier.identifySocket(fake(true, future.pem)), undefined, 'not yet valid, even if authorized');
  t.equal(identifier.identifySocket(fake(true, serverOnly.pem)), undefined, 'serverAuth only, even if authorized');
});

t.test('identifyPem gives the same decisions, with reasons', async (t) => {
  for (const c of cases) {
    const got = identifier.identifyPem(c.cert?.pem ?? '');
    if (c.group === undefined) t.same(got, { reason: c.reason }, c.name);
    else t.same(got, { identity: { group: c.group, via: 'cert', device: c.device } }, c.name);
  }
  t.same(identifier.identifyPem(withIntermediate.pem), { identity: { group: 'via-intermediate', via: 'cert', device: 'laptop-500' } },
    'an intermediate after the leaf bridges to the CA');
  t.same(identifier.identifyPem(viaIntermediate.pem), { reason: 'not signed by clientCerts.ca' });
  t.same(identifier.identifyPem(pki.intermediate.pem + valid.pem), { reason: 'not for client authentication' },
    'the first certificate is the leaf, and a CA certificate is no device');
  t.same(identifier.identifyPem(stranger.pem + pki.strangerCa.pem), { reason: 'not signed by clientCerts.ca' },
    'bringing the stranger CA along does not help');
  t.same(identifier.identifyPem('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), { reason: 'no certificate' });
  const day = 86_400_000;
  t.same(identifier.identifyPem(valid.pem, new Date(Date.now() + 40 * day)), { reason: 'expired' }, 'now is a parameter');
  t.same(identifier.identifyPem(future.pem, new Date(Date.now() + 2 * day)).identity?.group, 'city-devices');
  t.equal(identifier.identifyPem(valid.pem).identity, identifier.identifyPem(valid.pem).identity, 'identity objects are shared');
  t.ok(Object.isFrozen(identifier.identifyPem(valid.pem).identity));

  const both = new CertificateIdentifier([pki.strangerCa.pem + pki.ca.pem], groups);
  t.equal(both.identifyPem(stranger.pem).identity?.group, 'city-devices', 'a bundle file trusts each CA in it');
  t.equal(both.identifyPem(valid.pem).identity?.group, 'city-devices');
  t.same(new CertificateIdentifier(caPems, [group('x', { issuer: 'Other CA' })]).identifyPem(valid.pem), { reason: 'matches no group' });
  t.throws(() => new CertificateIdentifier(['not a pem'], groups), ConfigError);
});

t.test('fields are read from the decoded name, alike for socket and PEM', async (t) => {
  t.same(certFields(new X509Certificate(multiOu.pem)),
    { issuerCN: ['City Device CA'], subject: { CN: ['kiosk-3'], O: [], OU: ['Lobby', 'City Devices'] } });
  t.same(certFields(new X509Certificate(commaOu.pem)).subject.OU, ['Second, Unit']);
  t.same(CertificateIdentifier.tlsOptions(caPems, true), { ca: caPems, requestCert: true, rejectUnauthorized: true });
});

t.test('globMatch', async (t) => {
  const yes: [string, string][] = [['laptop-*', 'laptop-042'], ['LAPTOP-*', 'laptop-042'], ['*', ''], ['*', 'x'],
    ['a*b*c', 'abc'], ['a*b*c', 'aXbYbZc'], ['*-042', 'laptop-042'], ['city devices', 'City Devices'], ['a**', 'a']];
  const no: [string, string][] = [['phone-*', 'laptop-042'], ['laptop-*', 'xlaptop-1'], ['laptop', 'laptop-1'],
    ['a*b*c', 'acb'], ['l?ptop', 'laptop'], ['', 'x'], ['a.c', 'abc']];
  for (const [p, v] of yes) t.ok(globMatch(p, v), `${p} ~ ${v}`);
  for (const [p, v] of no) t.notOk(globMatch(p, v), `${p} !~ ${v}`);
});
