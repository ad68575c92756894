/**
 * A throw-away PKI for certificate-identity tests, made with the openssl CLI in a temp dir at test
 * time (nothing committed that could expire): the device CA, a stranger CA with the same subject
 * (a forgery attempt), an intermediate under the device CA, and a server CA + localhost server cert.
 * EC P-256 keys keep it fast. Every certificate is issued with `openssl ca`, the only 3.0 command
 * that takes explicit start and end dates (expired and not-yet-valid devices).
 */
import { execFile } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Issued { cert: string; key: string; pem: string }

export interface DeviceOptions {
  cn: string;
  o?: string | readonly string[];
  ou?: string | readonly string[];
  issuer?: 'ca' | 'stranger' | 'intermediate';
  /** Validity in days; negative → expired that many days ago. Default 30. */
  days?: number;
  notYetValid?: boolean;
  /** Default true; false → extendedKeyUsage=serverAuth only. */
  clientAuth?: boolean;
}

export interface TestPki {
  /** Remove with fs.rm(dir, { recursive: true }) when done. */
  dir: string;
  /** "City Device CA". */
  ca: Issued;
  /** A different key with the same subject CN "City Device CA". */
  strangerCa: Issued;
  /** "City Device Intermediate", signed by `ca`; not in anyone's trust list. */
  intermediate: Issued;
  /** CN=localhost, SAN IP:127.0.0.1 and DNS:localhost, signed by serverCa. */
  server: { cert: string; key: string };
  serverCa: { cert: string; pem: string };
  /** Issue a client certificate signed by `issuer` (default ca). */
  device(opts: DeviceOptions): Promise<Issued>;
  /**
   * A PEM CRL of `issuer` (default `ca`; made by `openssl ca -gencrl`) revoking `revoke`; `expired`: its nextUpdate
   * passed yesterday. Returns its path.
   */
  crl(opts: { revoke: readonly Issued[]; expired?: boolean; issuer?: 'ca' | 'stranger' | 'intermediate' }): Promise<string>;
}

const REQ_CONFIG = '[req]\ndistinguished_name = dn\n[dn]\n';
const CA_EXTENSIONS = 'basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n';
const DAY_MS = 86_400_000;

export async function createTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'appfence-pki-'));
  const reqConfig = join(dir, 'req.cnf');
  await writeFile(reqConfig, REQ_CONFIG);
  let issued = 0;

  async function selfSigned(name: string, cn: string): Promise<Issued> {
    const cert = join(dir, `${name}.pem`);
    const key = join(dir, `${name}-key.pem`);
    await run('openssl', ['req', '-x509', '-config', reqConfig, '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
      '-nodes', '-keyout', key, '-out', cert, '-subj', subj([['CN', cn]]), '-days', '3650',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    return { cert, key, pem: await readFile(cert, 'utf8') };
  }

  /** One CSR + `openssl ca` in its own little database, so parallel issues never share files. */
  async function issue(issuer: Issued, rdns: readonly (readonly [string, string])[], extensions: string,
    notBefore: Date, notAfter: Date): Promise<Issued> {
    const work = join(dir, `issue-${++issued}`);
    await mkdir(work);
    const csr = join(work, 'req.csr');
    const cert = join(work, 'cert.pem');
    const key = join(work, 'key.pem');
    await Promise.all([
      writeFile(join(work, 'index.txt'), ''),
      writeFile(join(work, 'serial'), '1' + randomBytes(8).toString('hex').slice(1) + '\n'),
      writeFile(join(work, 'ext.cnf'), extensions),
      writeFile(join(work, 'ca.cnf'), `[ca]\ndefault_ca = issuer\n[issuer]\ndatabase = ${join(work, 'index.txt')}\n` +
        `serial = ${join(work, 'serial')}\nnew_certs_dir = ${work}\nunique_subject = no\ndefault_md = sha256\n` +
        'policy = keep_all\n[keep_all]\n'),
    ]);
    await run('openssl', ['req', '-new', '-config', reqConfig, '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
      '-nodes', '-keyout', key, '-out', csr, '-subj', subj(rdns)]);
    await run('openssl', ['ca', '-batch', '-config', join(work, 'ca.cnf'), '-cert', issuer.cert, '-keyfile', issuer.key,
      '-in', csr, '-out', cert, '-extfile', join(work, 'ext.cnf'), '-notext', '-preserveDN',
      '-startdate', asn1Time(notBefore), '-enddate', asn1Time(notAfter)]);
    return { cert, key, pem: await readFile(cert, 'utf8') };
  }

  const [ca, strangerCa, serverCa] = await Promise.all([
    selfSigned('ca', 'City Device CA'),
    selfSigned('stranger-ca', 'City Device CA'),
    selfSigned('server-ca', 'appfence test server CA'),
  ]);
  const now = Date.now();
  const [intermediate, server] = await Promise.all([
    issue(ca, [['CN', 'City Device Intermediate']], CA_EXTENSIONS, new Date(now - DAY_MS), new Date(now + 3650 * DAY_MS)),
    issue(serverCa, [['CN', 'localhost']], 'basicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\n' +
      'extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1, DNS:localhost\n',
    new Date(now - DAY_MS), new Date(now + 30 * DAY_MS)),
  ]);
  const issuers = { ca, stranger: strangerCa, intermediate };

  return {
    dir, ca, strangerCa, intermediate, serverCa: { cert: serverCa.cert, pem: serverCa.pem },
    server: { cert: server.cert, key: server.key },
    async crl({ revoke, expired, issuer = 'ca' }) {
      const work = join(dir, `crl-${++issued}`);
      await mkdir(work);
      const yesterday = asn1Time(new Date(Date.now() - DAY_MS)).slice(2);
      const index = revoke.map((c) => {
        const x = new X509Certificate(c.pem);
        return `R\t${asn1Time(new Date(x.validTo)).slice(2)}\t${yesterday}\t${x.serialNumber}\tunknown\t/${x.subject.split('\n').join('/')}\n`;
      }).join('');
      await Promise.all([
        writeFile(join(work, 'index.txt'), index),
        writeFile(join(work, 'ca.cnf'), `[ca]\ndefault_ca = issuer\n[issuer]\ndatabase = ${join(work, 'index.txt')}\ndefault_md = sha256\n`),
      ]);
      const out = join(work, 'crl.pem');
      const dates = expired === true
        ? ['-crl_lastupdate', asn1Time(new Date(Date.now() - 3 * DAY_MS)), '-crl_nextupdate', asn1Time(new Date(Date.now() - DAY_MS))]
        : ['-crldays', '7'];
      await run('openssl', ['ca', '-gencrl', '-batch', '-config', join(work, 'ca.cnf'), '-cert', issuers[issuer].cert, '-keyfile', issuers[issuer].key,
        '-out', out, ...dates]);
      return out;
    },
    device(opts) {
      const days = opts.days ?? 30;
      const start = Date.now();
      // An hour of slack before "now" so a freshly issued certificate is valid on any clock reading.
      let notBefore = new Date(start - 3_600_000);
      let notAfter = new Date(start + days * DAY_MS);
      if (days < 0) notBefore = new Date(notAfter.getTime() - DAY_MS);
      if (opts.notYetValid === true) {
        notBefore = new Date(start + DAY_MS);
        notAfter = new Date(start + (1 + Math.abs(days)) * DAY_MS);
      }
      const rdns: (readonly [string, string])[] = [];
      for (const o of list(opts.o)) rdns.push(['O', o]);
      for (const ou of list(opts.ou)) rdns.push(['OU', ou]);
      rdns.push(['CN', opts.cn]);
      const eku = opts.clientAuth === false ? 'serverAuth' : 'clientAuth';
      return issue(issuers[opts.issuer ?? 'ca'], rdns,
        `basicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = ${eku}\n`, notBefore, notAfter);
    },
  };
}

function list(v: string | readonly string[] | undefined): readonly string[] {
  return v === undefined ? [] : typeof v === 'string' ? [v] : v;
}

/** `-subj` syntax: `/` separates RDNs, so `/` and `\` inside a value are escaped. */
function subj(rdns: readonly (readonly [string, string])[]): string {
  return rdns.map(([k, v]) => `/${k}=${v.replace(/[\\/]/g, (c) => '\\' + c)}`).join('');
}

/** GeneralizedTime, which `openssl ca -startdate/-enddate` accepts for any year. */
function asn1Time(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

/** The devices the DoT/DoH tests meet: the city laptop, a contractor's, and a forgery of the laptop from another CA. */
export async function cityDevices(pki: TestPki): Promise<{ laptop: Issued; otherOu: Issued; forged: Issued }> {
  const [laptop, otherOu, forged] = await Promise.all([
    pki.device({ cn: 'laptop-042', o: 'City of Example', ou: 'City Devices' }),
    pki.device({ cn: 'laptop-043', ou: 'Contractors' }),
    pki.device({ cn: 'laptop-042', ou: 'City Devices', issuer: 'stranger' }),
  ]);
  return { laptop, otherOu, forged };
}
