/**
 * Error replies built from the query's own bytes (FORMERR, NOTIMP, REFUSED, SERVFAIL) and UDP truncation
 * of upstream answers, for the DNS front end. Raw byte copies only; dns2's encoder is not used on the hot
 * path (libs.md §1.8: it is the throughput bottleneck and drops unknown EDNS options).
 */
import { HEADER_SIZE, skipName, skipRecord, type Query } from './read.js';
import { QR, OPCODE_MASK, TC, RD, RA, AD, CD, TYPE_OPT, RCODE } from './codes.js';

export { RCODE } from './codes.js';

/** Our advertised EDNS payload size (DNS flag day 2020). */
export const EDNS_UDP_SIZE = 1232;
export const OPT_SIZE = 11;


/** Writes a bare OPT (root owner, our UDP size, DO echoed) at `offset`. */
export function writeOpt(out: Buffer, offset: number, dnssecOk: boolean): void {
  out[offset] = 0;
  out.writeUInt16BE(TYPE_OPT, offset + 1);
  out.writeUInt16BE(EDNS_UDP_SIZE, offset + 3);
  out.writeUInt32BE(dnssecOk ? 0x8000 : 0, offset + 5);
  out.writeUInt16BE(0, offset + 9);
}

/**
 * The query we send upstream for a client's query: header, its question (0x20 case kept) and our own bare
 * OPT — never the client's. RD=1 whatever the client asked (RD=0 would fetch referrals into a shared cache),
 * CD copied (it is part of the cache key), AD=1 so the upstream reports validation (RFC 6840 §5.7); the
 * cache clears AD again for clients that asked for neither AD nor DO. No client EDNS option (COOKIE, ECS,
 * padding) leaves this host, so no upstream reply can carry one back into the shared cache. ID is 0: each
 * try writes its own.
 */
export function upstreamQuery(query: Buffer, q: Query): Buffer {
  const out = Buffer.allocUnsafe(q.questionEnd + OPT_SIZE);
  out.writeUInt16BE(0, 0);
  out.writeUInt16BE(RD | AD | (q.flags & CD), 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt32BE(0, 6); // ancount, nscount
  out.writeUInt16BE(1, 10);
  query.copy(out, HEADER_SIZE, HEADER_SIZE, q.questionEnd);
  writeOpt(out, q.questionEnd, q.dnssecOk);
  return out;
}

/** Reply flags for a query's flags: QR and RA set, opcode, RD and CD copied. */
export function replyFlags(queryFlags: number, rcode: number): number {
  return QR | (queryFlags & (OPCODE_MASK | RD | CD)) | RA | (rcode & 0xf);
}

export function errorReply(query: Buffer, q: Query | null, rcode: number): Buffer {
  const questionLen = q === null ? 0 : q.questionEnd - HEADER_SIZE;
  const withOpt = q !== null && q.hasOpt;
  const out = Buffer.alloc(HEADER_SIZE + questionLen + (withOpt ? OPT_SIZE : 0));
  if (query.length >= 2) out.writeUInt16BE(query.readUInt16BE(0), 0);
  const flags = query.length >= 4 ? query.readUInt16BE(2) : 0;
  out.writeUInt16BE(replyFlags(flags, rcode), 2);
  if (q !== null) {
    out.writeUInt16BE(1, 4);
    query.copy(out, HEADER_SIZE, HEADER_SIZE, q.questionEnd);
    if (withOpt) {
      out.writeUInt16BE(1, 10);
      writeOpt(out, HEADER_SIZE + questionLen, q.dnssecOk);
    }
  }
  return out;
}

/**
 * Header + question (+ the response's own OPT when it fits) with TC=1, so the client retries over TCP
 * (RFC 6891 §7 wants the OPT kept). A response whose question cannot be read shrinks to its header.
 */
export function truncateForUdp(resp: Buffer, maxSize: number): Buffer {
  if (resp.length <= maxSize || resp.length < HEADER_SIZE) return resp;
  const questionEnd = questionEndOf(resp);
  const readable = questionEnd >= 0 && questionEnd <= maxSize;
  const end = readable ? questionEnd : HEADER_SIZE;
  const opt = readable ? findOpt(resp, questionEnd) : null;
  const keepOpt = opt !== null && end + (opt[1] - opt[0]) <= maxSize;
  const out = Buffer.allocUnsafe(end + (keepOpt ? opt[1] - opt[0] : 0));
  resp.copy(out, 0, 0, end);
  out.writeUInt16BE(resp.readUInt16BE(2) | TC, 2);
  out.writeUInt16BE(readable ? resp.readUInt16BE(4) : 0, 4);
  out.writeUInt32BE(0, 6); // ancount, nscount
  out.writeUInt16BE(keepOpt ? 1 : 0, 10);
  if (keepOpt) resp.copy(out, end, opt[0], opt[1]);
  return out;
}

/**
 * Header and question only, TC=1: what response rate limiting sends instead of a dropped answer (a
 * "slip", BIND RRL), no bigger than the query, so it amplifies nothing and a real client retries over TCP.
 */
export function bareTruncated(resp: Buffer): Buffer {
  if (resp.length < HEADER_SIZE) return resp;
  const questionEnd = questionEndOf(resp);
  const end = questionEnd >= 0 ? questionEnd : HEADER_SIZE;
  const out = Buffer.allocUnsafe(end);
  resp.copy(out, 0, 0, end);
  out.writeUInt16BE(resp.readUInt16BE(2) | TC, 2);
  out.writeUInt16BE(questionEnd >= 0 ? resp.readUInt16BE(4) : 0, 4);
  out.writeUInt32BE(0, 6);
  out.writeUInt16BE(0, 10);
  return out;
}

/** End of the question section, or -1 when it cannot be read. */
function questionEndOf(resp: Buffer): number {
  const qdcount = resp.readUInt16BE(4);
  let questionEnd = HEADER_SIZE;
  for (let i = 0; i < qdcount && questionEnd >= 0; i++) {
    const p = skipName(resp, questionEnd);
    questionEnd = p >= 0 && p + 4 <= resp.length ? p + 4 : -1;
  }
  return questionEnd;
}

/** Writes `size` into the OPT's payload-size field (its CLASS), if `resp` has an OPT; in place. */
export function advertiseUdpSize(resp: Buffer, questionEnd: number, size: number): void {
  const opt = resp.length > questionEnd ? findOpt(resp, questionEnd) : null;
  if (opt !== null) resp.writeUInt16BE(size, opt[0] + 3);
}

/** [start, end) of the OPT record in a message whose question ends at `pos`, or null. */
export function findOpt(buf: Buffer, pos: number): [number, number] | null {
  const before = buf.readUInt16BE(6) + buf.readUInt16BE(8);
  const arcount = buf.readUInt16BE(10);
  for (let i = 0; i < before + arcount; i++) {
    const end = skipRecord(buf, pos);
    if (end < 0) return null;
    if (i >= before && buf[pos] === 0 && buf.readUInt16BE(pos + 1) === TYPE_OPT) return [pos, end];
    pos = end;
  }
  return null;
}
