/**
 * Reads the header and question of a client's query straight from the bytes, for the DNS front end.
 * Decides which input is dropped (responses: no reflection), NOTIMP (opcode) or FORMERR, and hands on
 * a normalised qname (lowercase, no trailing dot) plus the EDNS facts the reply needs.
 * Hand-written, not dns2: dns2's codec is ~20x slower and throws on inputs we must answer (libs.md §1.7, §1.8).
 */
import { TYPE_OPT } from './codes.js';

export interface Query {
  id: number;
  /** Header word 2 as read. */
  flags: number;
  /** Lowercase, no trailing dot; "" for the root. */
  qname: string;
  qtype: number;
  qclass: number;
  /** Offset just past the question. */
  questionEnd: number;
  hasOpt: boolean;
  /** max(512, OPT class), or 512 without OPT. */
  udpSize: number;
  dnssecOk: boolean;
  /**
   * False when the qname string does not name one wire name unambiguously (a label holding a literal '.'
   * reads like two labels): such a query may share neither a cache entry nor an upstream exchange.
   */
  readonly cacheable: boolean;
}

/** A plain object rather than a const enum: isolatedModules transpilers then see a real value. */
export const ParseFailure = { Drop: 0, FormErr: 1, NotImp: 2 } as const;
export type ParseFailure = (typeof ParseFailure)[keyof typeof ParseFailure];

export const HEADER_SIZE = 12;
const MAX_NAME_WIRE = 255;

/** One scratch area for building name strings: a name is at most 255 octets on the wire. */
const scratch = Buffer.allocUnsafe(MAX_NAME_WIRE + 1);

/**
 * Decodes the name at `offset` (pointers followed, loops and > 255 octets rejected) into a lowercase
 * string without trailing dot; null when malformed. Label bytes are kept as latin1, so a label holding a
 * literal '.' reads like two labels: that can only over-block, never hide a blocked name.
 */
export function decodeName(buf: Buffer, offset: number, allowPointers = true): string | null {
  let pos = offset;
  let out = 0;
  let wire = 1; // the root octet
  let jumps = 0;
  for (;;) {
    if (pos >= buf.length) return null;
    const len = buf[pos]!;
    if (len === 0) break;
    if (len >= 0xc0) {
      if (!allowPointers || pos + 1 >= buf.length || ++jumps > 64) return null;
      const target = ((len & 0x3f) << 8) | buf[pos + 1]!;
      if (target >= pos) return null; // pointers only point backwards, which also rules out loops
      pos = target;
      continue;
    }
    if (len > 63) return null; // 0x40/0x80 label types are obsolete
    wire += len + 1;
    if (wire > MAX_NAME_WIRE || pos + 1 + len > buf.length) return null;
    if (out !== 0) scratch[out++] = 0x2e;
    for (let i = pos + 1, end = pos + 1 + len; i < end; i++) {
      const c = buf[i]!;
      scratch[out++] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
    }
    pos += len + 1;
  }
  return out === 0 ? '' : scratch.toString('latin1', 0, out);
}

/** Offset just past the name at `offset` (a pointer ends it), or -1 when it runs off the buffer. */
export function skipName(buf: Buffer, offset: number): number {
  let pos = offset;
  for (;;) {
    if (pos >= buf.length) return -1;
    const len = buf[pos]!;
    if (len === 0) return pos + 1;
    if (len >= 0xc0) return pos + 2 <= buf.length ? pos + 2 : -1;
    if (len > 63) return -1;
    pos += len + 1;
  }
}

/** Offset past the resource record at `offset`, or -1 when it is cut short. */
export function skipRecord(buf: Buffer, offset: number): number {
  const p = skipName(buf, offset);
  if (p < 0 || p + 10 > buf.length) return -1;
  const end = p + 10 + buf.readUInt16BE(p + 8);
  return end <= buf.length ? end : -1;
}

/** True when a label of the pointer-free name in [offset, end) contains a '.' octet. */
function labelHasDot(buf: Buffer, offset: number, end: number): boolean {
  for (let pos = offset; pos < end - 1; pos += buf[pos]! + 1) {
    const labelEnd = pos + 1 + buf[pos]!;
    for (let i = pos + 1; i < labelEnd; i++) if (buf[i] === 0x2e) return true;
  }
  return false;
}

/** Never throws; see ParseFailure for what each failure means to the caller. */
export function readQuery(buf: Buffer): Query | ParseFailure {
  if (buf.length < HEADER_SIZE) return ParseFailure.Drop;
  const flags = buf.readUInt16BE(2);
  if (flags & 0x8000) return ParseFailure.Drop; // a response: answering it would make us a reflector
  if ((flags >> 11) & 0xf) return ParseFailure.NotImp;
  if (buf.readUInt16BE(4) !== 1) return ParseFailure.FormErr;
  // Nothing precedes the question, so a compression pointer in it can only be bogus.
  const qname = decodeName(buf, HEADER_SIZE, false);
  if (qname === null) return ParseFailure.FormErr;
  const nameEnd = skipName(buf, HEADER_SIZE);
  if (nameEnd < 0 || nameEnd + 4 > buf.length) return ParseFailure.FormErr;
  const q: Query = {
    id: buf.readUInt16BE(0),
    flags,
    qname,
    qtype: buf.readUInt16BE(nameEnd),
    qclass: buf.readUInt16BE(nameEnd + 2),
    questionEnd: nameEnd + 4,
    hasOpt: false,
    udpSize: 512,
    dnssecOk: false,
    cacheable: !labelHasDot(buf, HEADER_SIZE, nameEnd),
  };
  const records = buf.readUInt16BE(6) + buf.readUInt16BE(8);
  const arcount = buf.readUInt16BE(10);
  if (arcount === 0 && records === 0) return q;
  let pos = q.questionEnd;
  for (let i = 0; i < records; i++) {
    pos = skipRecord(buf, pos);
    if (pos < 0) return ParseFailure.FormErr;
  }
  for (let i = 0; i < arcount; i++) {
    const end = skipRecord(buf, pos);
    if (end < 0) return ParseFailure.FormErr;
    const nameEnd = skipName(buf, pos);
    if (buf.readUInt16BE(nameEnd) === TYPE_OPT) {
      // RFC 6891 §6.1.1: one OPT at most, owned by the root.
      if (q.hasOpt || nameEnd !== pos + 1) return ParseFailure.FormErr;
      q.hasOpt = true;
      q.udpSize = Math.max(512, buf.readUInt16BE(nameEnd + 2));
      q.dnssecOk = (buf[nameEnd + 6]! & 0x80) !== 0;
    }
    pos = end;
  }
  return q;
}
