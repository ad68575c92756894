/**
 * Certificate identity (SPEC "Identification", rule 1): a device certificate that chains to
 * `clientCerts.ca`, is within its dates, is meant for client authentication and matches a group's
 * `certificates` fields puts its client in that group (via 'cert', device = subject CN), beating
 * the subnet. DoT/DoH/proxy TLS listeners ask identifySocket once per connection;
 * `appfence check --cert` asks identifyPem, which must reach the same verdict and say why not.
 */
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate, TLSSocket, TlsOptions } from 'node:tls';
import { LRUCache } from 'lru-cache';
import type { CertificateMatch, GroupConfig } from '../config/types.js';
import { ConfigError } from '../errors.js';
import type { CertIdentity } from '../net/peer.js';
import { normaliseSerial, parseCrls, type Crl } from './crl.js';

export type { CertIdentity } from '../net/peer.js';

export type CertRejection = 'no certificate' | 'not signed by clientCerts.ca' | 'expired' | 'not yet valid'
  | 'not for client authentication' | 'matches no group' | 'revoked';

export type PemVerdict = { identity: CertIdentity } | { identity?: undefined; reason: CertRejection };

/** A presented certificate's verdict on a TLS socket; `reason` is OpenSSL's code when its chain check failed. */
export type SocketVerdict = { identity: CertIdentity } | { identity?: undefined; cert: X509Certificate; reason: CertRejection | string };

const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';
/** Deeper chains than this are not device PKIs; stop rather than walk a crafted bundle. */
const MAX_CHAIN_DEPTH = 8;
const IDENTITY_CACHE_ENTRIES = 10_000;
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/** The fields groups match on. Every one may repeat in a certificate, so each is a list. */
export interface CertFields {
  readonly issuerCN: readonly string[];
  readonly subject: { readonly CN: readonly string[]; readonly O: readonly string[]; readonly OU: readonly string[] };
}

/**
 * Read from OpenSSL's own decoded name entries (the object getPeerCertificate() returns, repeated
 * keys as arrays) rather than by parsing `x509.subject` text, so escaped commas, `+` in values and
 * multi-valued RDNs cannot be misread. Both the socket and the PEM path come through here.
 */
export function certFields(cert: X509Certificate): CertFields {
  return fieldsOf(cert.toLegacyObject());
}

function fieldsOf(legacy: PeerCertificate): CertFields {
  const subject = legacy.subject as unknown as Record<string, unknown> | undefined;
  const issuer = legacy.issuer as unknown as Record<string, unknown> | undefined;
  return {
    issuerCN: nameValues(issuer, 'CN'),
    subject: { CN: nameValues(subject, 'CN'), O: nameValues(subject, 'O'), OU: nameValues(subject, 'OU') },
  };
}

function nameValues(name: Record<string, unknown> | undefined, key: string): readonly string[] {
  const v = name?.[key];
  if (typeof v === 'string') return [v];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** `*` matches any run of characters (none included); nothing else is special; case-insensitive; whole string. */
export function globMatch(pattern: string, value: string): boolean {
  return wildcard(pattern.toLowerCase(), value.toLowerCase());
}

// Greedy two-pointer match with backtracking to the last star: O(pattern × value) at worst, no regex to blow up.
function wildcard(p: string, v: string): boolean {
  let pi = 0;
  let vi = 0;
  let star = -1;
  let resume = 0;
  while (vi < v.length) {
    if (pi < p.length && p[pi] === '*') {
      star = pi++;
      resume = vi;
    } else if (pi < p.length && p[pi] === v[vi]) {
      pi++;
      vi++;
    } else if (star >= 0) {
      pi = star + 1;
      vi = ++resume;
    } else {
      return false;
    }
  }
  while (p[pi] === '*') pi++;
  return pi === p.length;
}

interface GroupMatcher {
  readonly group: string;
  /** Lower-cased patterns; undefined = field not constrained. */
  readonly issuer: string | undefined;
  readonly CN: string | undefined;
  readonly O: string | undefined;
  readonly OU: string | undefined;
}

function compileMatcher(group: string, m: CertificateMatch): GroupMatcher {
  const lower = (s: string | undefined): string | undefined => s?.toLowerCase();
  return { group, issuer: lower(m.issuer), CN: lower(m.subject?.CN), O: lower(m.subject?.O), OU: lower(m.subject?.OU) };
}

function anyMatches(pattern: string | undefined, values: readonly string[]): boolean {
  return pattern === undefined || values.some((v) => wildcard(pattern, v.toLowerCase()));
}

export class CertificateIdentifier {
  private readonly anchors: readonly X509Certificate[];
  private readonly matchers: readonly GroupMatcher[];
  private readonly identities = new LRUCache<string, CertIdentity>({ max: IDENTITY_CACHE_ENTRIES });
  private readonly crls: readonly Crl[];

  /**
   * caPems: the text of each clientCerts.ca file (one or more certificates each); crlPems: of each
   * clientCerts.crl file. Groups without `certificates` are skipped.
   */
  constructor(caPems: readonly string[], groups: readonly GroupConfig[], crlPems: readonly string[] = []) {
    this.anchors = caPems.flatMap((pem, i) => {
      const certs = parsePemCertificates(pem);
      if (certs === undefined) throw new ConfigError(`clientCerts.ca[${i}]`, 'holds a certificate that does not parse');
      if (certs.length === 0) throw new ConfigError(`clientCerts.ca[${i}]`, 'holds no PEM certificate');
      return certs;
    });
    this.matchers = groups.flatMap((g) => (g.certificates === undefined ? [] : [compileMatcher(g.name, g.certificates)]));
    this.crls = crlPems.flatMap((pem, i) => parseCrls(pem, this.anchors, `clientCerts.crl[${i}]`));
  }

  /** CRLs past their nextUpdate: still enforced (a stale list of lost laptops beats none), but the admin must renew them. */
  staleCrls(now: Date = new Date()): { issuer: string; nextUpdate: string }[] {
    return this.crls.filter((c) => c.nextUpdate !== undefined && c.nextUpdate.getTime() < now.getTime())
      .map((c) => ({ issuer: c.issuer.subject.replace(/\n/g, ', '), nextUpdate: (c.nextUpdate as Date).toISOString() }));
  }

  /**
   * Some certificate of the chain is on a CRL of the CA that issued it: the device on its issuer's,
   * an intermediate (even one clientCerts.ca holds) on its root's. Only self-signed roots are beyond revocation.
   */
  private revoked(chain: readonly X509Certificate[]): boolean {
    for (const cert of chain) {
      if (selfSigned(cert)) continue;
      const serial = normaliseSerial(cert.serialNumber);
      for (const crl of this.crls) if (crl.revoked.has(serial) && signs(crl.issuer, cert)) return true;
    }
    return false;
  }

  /**
   * TLS server options to spread into tls.createServer / http2.createSecureServer. Giving `ca`
   * also keeps the public root store out: only clientCerts.ca vouches for devices.
   */
  static tlsOptions(caPems: readonly string[], require: boolean): TlsOptions {
    return { ca: [...caPems], requestCert: true, rejectUnauthorized: require };
  }

  /**
   * For a server-side TLS socket made with tlsOptions(): OpenSSL has already checked the chain,
   * dates and purpose (socket.authorized); dates and purpose are checked again here so this
   * function alone decides, whatever options the listener was built with.
   */
  identifySocket(socket: TLSSocket): CertIdentity | undefined {
    return this.judgeSocket(socket)?.identity;
  }

  /** identifySocket with the reason a presented certificate was not taken; undefined when none was presented. */
  judgeSocket(socket: TLSSocket): SocketVerdict | undefined {
    const cert = socket.getPeerX509Certificate();
    if (cert === undefined) return undefined;
    if (!socket.authorized) return { cert, reason: String(socket.authorizationError ?? 'not signed by clientCerts.ca') };
    if (this.crls.length > 0) {
      const chain = this.chainOf(cert, cert.issuerCertificate === undefined ? [] : [cert.issuerCertificate]);
      if (chain === undefined) return { cert, reason: 'not signed by clientCerts.ca' };
      if (this.revoked(chain)) return { cert, reason: 'revoked' };
    }
    const verdict = this.judgeLeaf(cert, Date.now());
    return typeof verdict === 'string' ? { cert, reason: verdict } : { identity: verdict };
  }

  /** The same decision for PEM text (leaf first, optional intermediates after), with the reason when there is none. */
  identifyPem(pem: string, now: Date = new Date()): PemVerdict {
    const certs = parsePemCertificates(pem);
    const leaf = certs?.[0];
    if (certs === undefined || leaf === undefined) return { reason: 'no certificate' };
    const chain = this.chainOf(leaf, certs.slice(1));
    if (chain === undefined) return { reason: 'not signed by clientCerts.ca' };
    if (this.revoked(chain)) return { reason: 'revoked' };
    const nowMs = now.getTime();
    for (const cert of chain) {
      const reason = dateProblem(cert, nowMs);
      if (reason !== undefined) return { reason };
    }
    const verdict = this.judgeLeaf(leaf, nowMs);
    return typeof verdict === 'string' ? { reason: verdict } : { identity: verdict };
  }

  /**
   * Leaf → … → one of our CAs, each link checked by name and signature; undefined when no path exists.
   * Once an anchor is reached the chain goes on through the other anchors up to a root, so an
   * intermediate that clientCerts.ca holds can still be found on its root's CRL.
   */
  private chainOf(leaf: X509Certificate, untrusted: readonly X509Certificate[]): X509Certificate[] | undefined {
    const chain = [leaf];
    let cert = leaf;
    let anchored = false;
    for (let depth = 0; depth < MAX_CHAIN_DEPTH; depth++) {
      if (anchored && selfSigned(cert)) return chain;
      const anchor = this.anchors.find((ca) => !chain.includes(ca) && !ca.raw.equals(cert.raw) && signs(ca, cert));
      if (anchor !== undefined) {
        chain.push(anchor);
        cert = anchor;
        anchored = true;
        continue;
      }
      // a self-signed anchor presented as the leaf: trusted as it is (judgeLeaf refuses CAs as devices anyway)
      if (anchored || this.anchors.some((ca) => ca.raw.equals(cert.raw))) return chain;
      // Certificates that came with the leaf may bridge to an anchor, but only real CAs, each used once.
      const next = untrusted.find((c) => c.ca && !chain.includes(c) && signs(c, cert));
      if (next === undefined) return undefined;
      chain.push(next);
      cert = next;
    }
    return anchored ? chain : undefined;
  }

  /** Dates, client-auth purpose, then the groups in config order. */
  private judgeLeaf(cert: X509Certificate, nowMs: number): CertIdentity | CertRejection {
    const dates = dateProblem(cert, nowMs);
    if (dates !== undefined) return dates;
    // A device certificate is never a CA; OpenSSL would take one whose key usage allows signing, we don't.
    if (cert.ca) return 'not for client authentication';
    const legacy = cert.toLegacyObject();
    // Absent extKeyUsage means any purpose (RFC 5280 §4.2.1.12); anyExtendedKeyUsage alone is refused, as OpenSSL does.
    const eku = legacy.ext_key_usage;
    if (eku !== undefined && !eku.includes(CLIENT_AUTH_OID)) return 'not for client authentication';
    return this.matchGroup(fieldsOf(legacy)) ?? 'matches no group';
  }

  private matchGroup(fields: CertFields): CertIdentity | undefined {
    for (const m of this.matchers) {
      if (!anyMatches(m.issuer, fields.issuerCN) || !anyMatches(m.O, fields.subject.O) ||
          !anyMatches(m.OU, fields.subject.OU) || !anyMatches(m.CN, fields.subject.CN)) continue;
      return this.identity(m.group, deviceName(m.CN, fields.subject.CN));
    }
    return undefined;
  }

  private identity(group: string, device: string): CertIdentity {
    const key = `${group}\n${device}`;
    let identity = this.identities.get(key);
    if (identity === undefined) {
      identity = Object.freeze({ group, via: 'cert', device });
      this.identities.set(key, identity);
    }
    return identity;
  }
}

/**
 * A certificate may carry several CNs: the one the group's pattern matched names the device;
 * without a pattern, the last (most specific in DN order, as TLS name checks read it).
 */
function deviceName(pattern: string | undefined, cns: readonly string[]): string {
  if (pattern !== undefined) return cns.find((cn) => wildcard(pattern, cn.toLowerCase())) ?? '';
  return cns[cns.length - 1] ?? '';
}

function signs(issuer: X509Certificate, cert: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false; // a key type verify() cannot use is not a signature we accept
  }
}

function selfSigned(cert: X509Certificate): boolean {
  return signs(cert, cert);
}

function dateProblem(cert: X509Certificate, nowMs: number): 'expired' | 'not yet valid' | undefined {
  // OpenSSL prints "Mon DD HH:MM:SS YYYY GMT", which Date.parse reads; unreadable dates fail closed.
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  if (!(notBefore <= nowMs)) return Number.isNaN(notBefore) ? 'expired' : 'not yet valid';
  if (!(nowMs <= notAfter)) return 'expired';
  return undefined;
}

/** Every CERTIFICATE block in the text (other blocks, e.g. a key, ignored); undefined if one does not parse. */
function parsePemCertificates(pem: string): X509Certificate[] | undefined {
  const certs: X509Certificate[] = [];
  for (const block of pem.match(PEM_CERTIFICATE) ?? []) {
    try {
      certs.push(new X509Certificate(block));
    } catch {
      return undefined;
    }
  }
  return certs;
}
