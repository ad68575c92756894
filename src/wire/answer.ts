/**
 * Walks an upstream response once, for CNAME inspection (alias targets) and the cache (TTL, TTL field
 * offsets, negative answers, OPT position). Never throws: anything malformed gives null, and callers
 * treat an unreadable upstream answer as a failed try. Not dns2: its parse costs ~17 µs and drops records
 * it cannot decode (libs.md §1.3, §1.8).
 */
import { HEADER_SIZE, decodeName, skipName } from './read.js';
import { TYPE_HTTPS, TYPE_SVCB } from './addresses.js';
import { TYPE_NS, TYPE_CNAME, TYPE_SOA, TYPE_DNAME, TYPE_ANY, RCODE_NOERROR, RCODE_NXDOMAIN, TYPE_OPT } from './codes.js';

export interface AnswerInfo {
  id: number;
  rcode: number;
  tc: boolean;
  qname: string;
  qtype: number;
  qclass: number;
  ancount: number;
  /** CNAME and DNAME targets and HTTPS/SVCB TargetNames in the answer section, normalised (lowercase, no trailing dot). */
  aliasTargets: string[];
  /** Offsets of every TTL field in answer/authority/additional sections except OPT. */
  ttlOffsets: number[];
  /**
   * Positive answers: min TTL over the answer records. Negative answers (NXDOMAIN / NODATA): the RFC 2308
   * negative TTL min(SOA TTL, SOA MINIMUM), lowered further by any CNAME TTL in the answer; -1 without SOA.
   */
  ttl: number;
  /** NXDOMAIN, or NOERROR with no answer record of the asked type (NODATA, also after a CNAME chain). */
  negative: boolean;
  /** Offset just past the question. */
  questionEnd: number;
  /** [optStart, optEnd) of the OPT record; both -1 when there is none. */
  optStart: number;
  optEnd: number;
  /** Offset just past the last record: anything after it is trailing junk. */
  end: number;
}


export function readAnswer(buf: Buffer): AnswerInfo | null {
  if (buf.length < HEADER_SIZE) return null;
  const flags = buf.readUInt16BE(2);
  const qdcount = buf.readUInt16BE(4);
  if (qdcount > 1) return null;
  const info: AnswerInfo = {
    id: buf.readUInt16BE(0),
    rcode: flags & 0xf,
    tc: (flags & 0x0200) !== 0,
    qname: '',
    qtype: 0,
    qclass: 0,
    ancount: buf.readUInt16BE(6),
    aliasTargets: [],
    ttlOffsets: [],
    ttl: -1,
    negative: false,
    questionEnd: HEADER_SIZE,
    optStart: -1,
    optEnd: -1,
    end: HEADER_SIZE,
  };
  let pos = HEADER_SIZE;
  if (qdcount === 1) {
    const qname = decodeName(buf, pos);
    pos = skipName(buf, pos);
    if (qname === null || pos < 0 || pos + 4 > buf.length) return null;
    info.qname = qname;
    info.qtype = buf.readUInt16BE(pos);
    info.qclass = buf.readUInt16BE(pos + 2);
    pos += 4;
    info.questionEnd = pos;
  }
  const nscount = buf.readUInt16BE(8);
  const total = info.ancount + nscount + buf.readUInt16BE(10);
  let answerTtl = -1;
  let soaTtl = -1;
  let hasAskedType = false;
  for (let i = 0; i < total; i++) {
    const start = pos;
    const nameEnd = skipName(buf, pos);
    if (nameEnd < 0 || nameEnd + 10 > buf.length) return null;
    const type = buf.readUInt16BE(nameEnd);
    const ttl = buf.readUInt32BE(nameEnd + 4) & 0x7fffffff; // RFC 2181 §8: the top bit means 0; we clamp instead
    const rdata = nameEnd + 10;
    pos = rdata + buf.readUInt16BE(nameEnd + 8);
    if (pos > buf.length) return null;
    if (type === TYPE_OPT && i >= info.ancount + nscount) {
      info.optStart = start;
      info.optEnd = pos;
      continue;
    }
    info.ttlOffsets.push(nameEnd + 4);
    if (i < info.ancount) {
      if (answerTtl < 0 || ttl < answerTtl) answerTtl = ttl;
      if (type === info.qtype || info.qtype === TYPE_ANY) hasAskedType = true;
      if (type === TYPE_CNAME || type === TYPE_DNAME) {
        const target = decodeName(buf, rdata);
        if (target === null) return null;
        info.aliasTargets.push(target);
      } else if ((type === TYPE_SVCB || type === TYPE_HTTPS) && pos - rdata > 2) {
        // RFC 9460: TargetName (uncompressed) is where the client goes next, AliasMode or ServiceMode
        // alike, so a blocked one counts as a CNAME to it. "." (the owner itself) adds nothing.
        const target = decodeName(buf, rdata + 2); // pointers tolerated: some servers compress it anyway
        if (target === null) return null;
        if (target !== '') info.aliasTargets.push(target);
      }
    } else if (i < info.ancount + nscount && type === TYPE_SOA) {
      const minimum = soaMinimum(buf, rdata, pos);
      if (minimum < 0) return null;
      const negTtl = Math.min(ttl, minimum);
      if (soaTtl < 0 || negTtl < soaTtl) soaTtl = negTtl;
    }
  }
  info.end = pos;
  info.negative = info.rcode === RCODE_NXDOMAIN || (info.rcode === RCODE_NOERROR && !hasAskedType);
  if (!info.negative) info.ttl = answerTtl;
  else if (soaTtl >= 0) info.ttl = answerTtl >= 0 ? Math.min(soaTtl, answerTtl) : soaTtl;
  return info;
}

/**
 * A referral (NOERROR, no answer, NS in authority, no SOA): what a server that would not recurse for us
 * says. Not an answer to the question, so the upstream client counts it as a failed try. Header checks
 * first: an ordinary answer is rejected without walking a record.
 */
export function isReferral(buf: Buffer): boolean {
  if (buf.length < HEADER_SIZE || (buf[3]! & 0xf) !== RCODE_NOERROR || buf.readUInt16BE(6) !== 0) return false;
  const nscount = buf.readUInt16BE(8);
  if (nscount === 0) return false;
  let pos = HEADER_SIZE;
  for (let i = buf.readUInt16BE(4); i > 0 && pos >= 0; i--) {
    pos = skipName(buf, pos);
    if (pos >= 0) pos += 4;
  }
  let ns = false;
  for (let i = 0; i < nscount; i++) {
    const nameEnd = pos < 0 ? -1 : skipName(buf, pos);
    if (nameEnd < 0 || nameEnd + 10 > buf.length) return false;
    const type = buf.readUInt16BE(nameEnd);
    if (type === TYPE_SOA) return false;
    if (type === TYPE_NS) ns = true;
    pos = nameEnd + 10 + buf.readUInt16BE(nameEnd + 8);
    if (pos > buf.length) return false;
  }
  return ns;
}

/** SOA MINIMUM (the last 4 rdata octets after MNAME and RNAME), or -1 when the rdata is malformed. */
function soaMinimum(buf: Buffer, rdata: number, end: number): number {
  const mnameEnd = skipName(buf, rdata);
  const rnameEnd = mnameEnd < 0 ? -1 : skipName(buf, mnameEnd);
  if (rnameEnd < 0 || rnameEnd + 20 !== end) return -1;
  return buf.readUInt32BE(rnameEnd + 16) & 0x7fffffff;
}
