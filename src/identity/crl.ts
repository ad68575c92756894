/**
 * Certificate revocation lists (clientCerts.crl): PEM "X509 CRL" blocks, read with a small DER
 * reader (RFC 5280 §5.1) because Node has no CRL class, each verified against the device CA that
 * issued it: the clientCerts.ca certificate whose subject is the CRL's issuer name (a root or an
 * intermediate), by that certificate's key. Revocation is checked by appfence itself rather than by OpenSSL's `crl` TLS option:
 * OpenSSL refuses every chain once a CRL is past its nextUpdate, which would drop every device
 * to subnet identity; an expired CRL here is reported and still enforced.
 */
import { verify, type X509Certificate } from 'node:crypto';
import { ConfigError } from '../errors.js';

export interface Crl {
  /** The CA that issued this CRL (one of clientCerts.ca: its subject is the CRL's issuer, its key signed it). */
  readonly issuer: X509Certificate;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | undefined;
  /** Serial numbers, upper-case hex without leading zeros (as X509Certificate.serialNumber normalised). */
  readonly revoked: ReadonlySet<string>;
}

const PEM_CRL = /-----BEGIN X509 CRL-----([^-]+)-----END X509 CRL-----/g;

/** Signature algorithm OID → the hash node:crypto verifies with (null: the key type decides, Ed25519/Ed448). */
const SIGNATURE_HASH: Record<string, string | null> = {
  '1.2.840.113549.1.1.5': 'sha1', '1.2.840.113549.1.1.11': 'sha256', '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512', '1.2.840.10045.4.1': 'sha1', '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384', '1.2.840.10045.4.3.4': 'sha512', '1.3.101.112': null, '1.3.101.113': null,
};

export function normaliseSerial(hex: string): string {
  return hex.toUpperCase().replace(/^0+(?=.)/, '');
}

/** Every CRL of one PEM file, each verified against `anchors`; a CRL no anchor signed is a config error. */
export function parseCrls(pem: string, anchors: readonly X509Certificate[], keyPath: string): Crl[] {
  const crls: Crl[] = [];
  for (const [, body] of pem.matchAll(PEM_CRL)) {
    const der = Buffer.from((body ?? '').replace(/\s+/g, ''), 'base64');
    let parsed: ReturnType<typeof readCrl>;
    try {
      parsed = readCrl(der);
    } catch (err) {
      throw new ConfigError(keyPath, `holds a CRL that does not parse (${(err as Error).message})`);
    }
    const hash = SIGNATURE_HASH[parsed.algorithm];
    if (hash === undefined) throw new ConfigError(keyPath, `holds a CRL signed with an unsupported algorithm (${parsed.algorithm})`);
    const issuerText = parsed.issuerText;
    const named = anchors.filter((ca) => sameName(subjectOf(ca), der.subarray(parsed.issuerName.headerStart, parsed.issuerName.end), issuerText));
    if (named.length === 0) {
      throw new ConfigError(keyPath, `holds a CRL issued by "${issuerText}", which no clientCerts.ca certificate is (add that CA's certificate to clientCerts.ca)`);
    }
    // Several CAs may share a name (a renewed CA with a new key): the one whose key verifies issued it.
    const issuer = named.find((ca) => {
      try {
        return verify(hash, parsed.tbs, ca.publicKey, parsed.signature);
      } catch {
        return false;
      }
    });
    if (issuer === undefined) {
      throw new ConfigError(keyPath, `holds a CRL issued by "${issuerText}" whose signature does not verify with that clientCerts.ca certificate's key (a CRL of another CA with the same name?)`);
    }
    crls.push({ issuer, thisUpdate: parsed.thisUpdate, nextUpdate: parsed.nextUpdate, revoked: parsed.revoked });
  }
  if (crls.length === 0) throw new ConfigError(keyPath, 'holds no PEM CRL ("-----BEGIN X509 CRL-----")');
  return crls;
}

interface Tlv { readonly tag: number; readonly start: number; readonly end: number; readonly headerStart: number }

/** One DER tag-length-value at `at` (definite lengths only, as DER requires). */
function tlv(der: Buffer, at: number, limit = der.length): Tlv {
  if (at + 2 > limit) throw new Error('truncated');
  const tag = der[at]!;
  let len = der[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const bytes = len & 0x7f;
    if (bytes === 0 || bytes > 4 || start + bytes > limit) throw new Error('bad length');
    len = 0;
    for (let i = 0; i < bytes; i++) len = len * 256 + der[start + i]!;
    start += bytes;
  }
  if (start + len > limit) throw new Error('truncated');
  return { tag, start, end: start + len, headerStart: at };
}

function children(der: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end;) {
    const t = tlv(der, at, parent.end);
    out.push(t);
    at = t.end;
  }
  return out;
}

function oid(der: Buffer, t: Tlv): string {
  const b = der.subarray(t.start, t.end);
  const parts = [Math.floor(b[0]! / 40), b[0]! % 40];
  let v = 0;
  for (let i = 1; i < b.length; i++) {
    v = v * 128 + (b[i]! & 0x7f);
    if (!(b[i]! & 0x80)) { parts.push(v); v = 0; }
  }
  return parts.join('.');
}

function time(der: Buffer, t: Tlv): Date {
  const s = der.toString('latin1', t.start, t.end);
  const m = t.tag === 0x17 ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (m === null) throw new Error(`bad time "${s}"`);
  let year = Number(m[1]);
  if (t.tag === 0x17) year += year < 50 ? 2000 : 1900; // RFC 5280 §4.1.2.5.1
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

function readCrl(der: Buffer) {
  const top = tlv(der, 0);
  const [tbsT, algT, sigT] = children(der, top);
  if (tbsT === undefined || algT === undefined || sigT === undefined || sigT.tag !== 0x03) throw new Error('not a CertificateList');
  const algOid = children(der, algT)[0];
  if (algOid === undefined || algOid.tag !== 0x06) throw new Error('no signature algorithm');
  const fields = children(der, tbsT);
  let i = fields[0]?.tag === 0x02 ? 1 : 0; // version
  i++; // signature algorithm
  const issuerT = fields[i++];
  if (issuerT === undefined || issuerT.tag !== 0x30) throw new Error('no issuer name');
  const thisT = fields[i++];
  if (thisT === undefined) throw new Error('no thisUpdate');
  let nextUpdate: Date | undefined;
  if (fields[i]?.tag === 0x17 || fields[i]?.tag === 0x18) nextUpdate = time(der, fields[i++]!);
  const revoked = new Set<string>();
  if (fields[i]?.tag === 0x30) {
    for (const entry of children(der, fields[i]!)) {
      const serial = children(der, entry)[0];
      if (serial === undefined || serial.tag !== 0x02) throw new Error('bad revoked entry');
      revoked.add(normaliseSerial(der.toString('hex', serial.start, serial.end)));
    }
  }
  return {
    tbs: der.subarray(tbsT.headerStart, tbsT.end),
    issuerName: issuerT,
    issuerText: nameText(der, issuerT),
    algorithm: oid(der, algOid),
    signature: der.subarray(sigT.start + 1, sigT.end), // BIT STRING: skip the unused-bits byte
    thisUpdate: time(der, thisT),
    nextUpdate,
    revoked,
  };
}

/** A certificate's subject Name as DER TLV within its own encoding (Certificate → tbsCertificate → subject). */
interface NameAt { readonly bytes: Buffer; readonly text: string }

function subjectOf(cert: X509Certificate): NameAt | undefined {
  try {
    const der = cert.raw;
    const [tbs] = children(der, tlv(der, 0));
    if (tbs === undefined) return undefined;
    const fields = children(der, tbs);
    const i = fields[0]?.tag === 0xa0 ? 1 : 0; // [0] version
    const name = fields[i + 4]; // serial, signature, issuer, validity, subject
    return name?.tag === 0x30 ? { bytes: der.subarray(name.headerStart, name.end), text: nameText(der, name) } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * RFC 5280 §7.1 name matching, in the two forms that occur: identical DER (a CRL made by the CA
 * copies its subject), else the same attributes, compared case-insensitively (a string type changed).
 */
function sameName(subject: NameAt | undefined, issuerBytes: Buffer, issuerText: string): boolean {
  if (subject === undefined) return false;
  return subject.bytes.equals(issuerBytes) || subject.text.toLowerCase() === issuerText.toLowerCase();
}

const ATTRIBUTE_NAMES: Record<string, string> = {
  '2.5.4.3': 'CN', '2.5.4.6': 'C', '2.5.4.7': 'L', '2.5.4.8': 'ST', '2.5.4.10': 'O', '2.5.4.11': 'OU', '0.9.2342.19200300.100.1.25': 'DC',
};

/** A Name as `CN=…, O=…` in encoded order (for messages and the fallback comparison). */
function nameText(der: Buffer, name: Tlv): string {
  const parts: string[] = [];
  for (const rdn of children(der, name)) {
    for (const atv of children(der, rdn)) {
      const [type, value] = children(der, atv);
      if (type === undefined || value === undefined) continue;
      const key = oid(der, type);
      const bmp = value.tag === 0x1e && (value.end - value.start) % 2 === 0; // BMPString: UTF-16BE
      const text = bmp ? Buffer.from(der.subarray(value.start, value.end)).swap16().toString('utf16le') : der.toString('utf8', value.start, value.end);
      parts.push(`${ATTRIBUTE_NAMES[key] ?? key}=${text}`);
    }
  }
  return parts.join(', ');
}
