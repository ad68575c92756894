/**
 * The answer for a blocked name, per SPEC "Answers for a blocked name": mode × qtype → bytes. Records are
 * pre-encoded in the constructor (one Sinkhole per group, built at load); a query only copies its question
 * in and patches ID/flags. Not built with dns2's encoder: it is slow (libs.md §1.8) and this runs per block.
 *
 * NODATA and NXDOMAIN answers carry a synthetic SOA in the authority section (owner = the queried name,
 * TTL and MINIMUM = blockedTtl, as AdGuard Home does) so negative-caching clients keep the block for
 * blockedTtl (RFC 2308 §5) instead of their own default. REFUSED carries none.
 */
import ipaddr from 'ipaddr.js';
import type { BlockMode } from '../config/types.js';
import { HEADER_SIZE, type Query } from './read.js';
import { OPT_SIZE, RCODE, replyFlags, writeOpt } from './write.js';
import { TYPE_A, TYPE_AAAA, TYPE_SOA, CLASS_IN } from './codes.js';

const POINTER_TO_QNAME = 0xc00c;
const EMPTY = Buffer.alloc(0);
const SOA_MNAME = 'appfence.invalid';
const SOA_RNAME = 'hostmaster.appfence.invalid';

/** Pre-encoded records and the counts that go into the header with them. */
interface Section {
  readonly bytes: Buffer;
  readonly count: number;
}

const NONE: Section = { bytes: EMPTY, count: 0 };

export class Sinkhole {
  private readonly rcode: number;
  private readonly a: Section;
  private readonly aaaa: Section;
  /** Authority section for NODATA / NXDOMAIN. */
  private readonly negative: Section;

  constructor(mode: BlockMode, ttlSeconds: number) {
    const ttl = Math.max(0, Math.min(ttlSeconds >>> 0, 0x7fffffff));
    this.negative = { bytes: encodeSoa(ttl), count: 1 };
    if (mode === 'refused' || mode === 'nxdomain') {
      this.rcode = mode === 'refused' ? RCODE.REFUSED : RCODE.NXDOMAIN;
      this.a = NONE;
      this.aaaa = NONE;
      if (mode === 'refused') this.negative = NONE;
      return;
    }
    this.rcode = RCODE.NOERROR;
    const addresses = mode === 'null' ? ['0.0.0.0', '::'] : mode.ip;
    const v4: number[][] = [];
    const v6: number[][] = [];
    for (const text of addresses) {
      const addr = ipaddr.parse(text); // throws on a bad address: config validation should have caught it
      (addr.kind() === 'ipv4' ? v4 : v6).push(addr.toByteArray());
    }
    this.a = encodeAddresses(TYPE_A, v4, ttl);
    this.aaaa = encodeAddresses(TYPE_AAAA, v6, ttl);
  }

  /** Never throws for a Query that readQuery produced from `query`. */
  answer(query: Buffer, q: Query): Buffer {
    let answers = NONE;
    let authority = NONE;
    if (this.rcode === RCODE.NOERROR) {
      if (q.qclass === CLASS_IN && q.qtype === TYPE_A) answers = this.a;
      else if (q.qclass === CLASS_IN && q.qtype === TYPE_AAAA) answers = this.aaaa;
      if (answers.count === 0) authority = this.negative; // NODATA
    } else {
      authority = this.negative;
    }
    const questionLen = q.questionEnd - HEADER_SIZE;
    const out = Buffer.allocUnsafe(HEADER_SIZE + questionLen + answers.bytes.length + authority.bytes.length +
      (q.hasOpt ? OPT_SIZE : 0));
    out.writeUInt16BE(q.id, 0);
    out.writeUInt16BE(replyFlags(q.flags, this.rcode), 2);
    out.writeUInt16BE(1, 4);
    out.writeUInt16BE(answers.count, 6);
    out.writeUInt16BE(authority.count, 8);
    out.writeUInt16BE(q.hasOpt ? 1 : 0, 10);
    let pos = HEADER_SIZE + query.copy(out, HEADER_SIZE, HEADER_SIZE, q.questionEnd);
    pos += answers.bytes.copy(out, pos);
    pos += authority.bytes.copy(out, pos);
    if (q.hasOpt) writeOpt(out, pos, q.dnssecOk);
    return out;
  }
}

/** Fixed part of a record owned by the queried name: pointer, type, class IN, TTL, RDLENGTH. */
function recordHead(type: number, ttl: number, rdlength: number): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(POINTER_TO_QNAME, 0);
  head.writeUInt16BE(type, 2);
  head.writeUInt16BE(CLASS_IN, 4);
  head.writeUInt32BE(ttl, 6);
  head.writeUInt16BE(rdlength, 10);
  return head;
}

function encodeAddresses(type: number, addresses: number[][], ttl: number): Section {
  if (addresses.length === 0) return NONE;
  const parts = addresses.map((bytes) => Buffer.concat([recordHead(type, ttl, bytes.length), Buffer.from(bytes)]));
  return { bytes: Buffer.concat(parts), count: addresses.length };
}

function encodeName(name: string): Buffer {
  const labels = name.split('.').map((label) => Buffer.concat([Buffer.from([label.length]), Buffer.from(label, 'ascii')]));
  return Buffer.concat([...labels, Buffer.from([0])]);
}

function encodeSoa(ttl: number): Buffer {
  const timers = Buffer.alloc(20);
  timers.writeUInt32BE(1, 0); // serial
  timers.writeUInt32BE(3600, 4); // refresh
  timers.writeUInt32BE(600, 8); // retry
  timers.writeUInt32BE(86400, 12); // expire
  timers.writeUInt32BE(ttl, 16); // minimum: the negative-caching TTL
  const rdata = Buffer.concat([encodeName(SOA_MNAME), encodeName(SOA_RNAME), timers]);
  return Buffer.concat([recordHead(TYPE_SOA, ttl, rdata.length), rdata]);
}
