/**
 * The addresses an upstream answer would send a client to: A and AAAA records of the answer section,
 * and the ipv4hint/ipv6hint SvcParams of its SVCB/HTTPS records (RFC 9460 §7.3), for IP rules (RPZ's
 * IP triggers). Only walked for groups whose block lists hold IP rules; addresses are matched as
 * integers straight from the bytes, and only a hit becomes text. Never throws: a malformed answer is
 * judged by the records before the damage.
 */
import ipaddr from 'ipaddr.js';
import { HEADER_SIZE, skipName } from './read.js';
import { TYPE_A, TYPE_AAAA } from './codes.js';

export const TYPE_SVCB = 64;
export const TYPE_HTTPS = 65;
const KEY_IPV4HINT = 4;
const KEY_IPV6HINT = 6;

const v4 = (buf: Buffer, at: number): string => `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
const v6 = (buf: Buffer, at: number): string => ipaddr.fromByteArray([...buf.subarray(at, at + 16)]).toString();

/** What firstMatchingAddress asks per address (IpIndex is one): a rule id or -1. */
export interface AddressMatcher {
  match4(address: number, mask: number): number;
  match6(a0: number, a1: number, a2: number, a3: number, mask: number): number;
}

let cur: AddressMatcher;
let curBuf: Buffer = Buffer.alloc(0);
let curBlock = 0;
let curAllow = 0;

function judge4(at: number): number {
  const a = curBuf.readUInt32BE(at);
  const id = cur.match4(a, curBlock);
  if (id < 0 || (curAllow !== 0 && cur.match4(a, curAllow) >= 0)) return -1;
  hitBuf = curBuf; hitAt = at; hitFamily = 4;
  return id;
}

function judge6(at: number): number {
  const b = curBuf;
  const a0 = b.readUInt32BE(at), a1 = b.readUInt32BE(at + 4), a2 = b.readUInt32BE(at + 8), a3 = b.readUInt32BE(at + 12);
  const id = cur.match6(a0, a1, a2, a3, curBlock);
  if (id < 0 || (curAllow !== 0 && cur.match6(a0, a1, a2, a3, curAllow) >= 0)) return -1;
  hitBuf = b; hitAt = at; hitFamily = 6;
  return id;
}

/** Where the last hit of firstMatchingAddress was; read it (as text) only after a hit. */
let hitBuf: Buffer = Buffer.alloc(0);
let hitAt = 0;
let hitFamily = 4;

export function lastMatchedAddress(): string {
  return hitFamily === 4 ? v4(hitBuf, hitAt) : v6(hitBuf, hitAt);
}

/**
 * The first answer address (A, AAAA, ipv4hint, ipv6hint) that `m` matches in `blockMask` and not in
 * `allowMask` (an allow list's range wins): its rule id, or -1. Reads addresses as integers from the
 * bytes, so a clean answer costs no allocation; lastMatchedAddress() gives the hit's text.
 */
export function firstMatchingAddress(buf: Buffer, m: AddressMatcher, blockMask: number, allowMask: number): number {
  if (buf.length < HEADER_SIZE) return -1;
  // Module state instead of closures: one query at a time runs this (synchronous), and no allocation.
  cur = m; curBuf = buf; curBlock = blockMask; curAllow = allowMask;
  let pos = HEADER_SIZE;
  for (let i = buf.readUInt16BE(4); i > 0; i--) {
    pos = skipName(buf, pos);
    if (pos < 0 || pos + 4 > buf.length) return -1;
    pos += 4;
  }
  for (let i = buf.readUInt16BE(6); i > 0; i--) {
    const nameEnd = skipName(buf, pos);
    if (nameEnd < 0 || nameEnd + 10 > buf.length) return -1;
    const type = buf.readUInt16BE(nameEnd);
    const rdata = nameEnd + 10;
    const end = rdata + buf.readUInt16BE(nameEnd + 8);
    if (end > buf.length) return -1;
    let id = -1;
    if (type === TYPE_A && end - rdata === 4) id = judge4(rdata);
    else if (type === TYPE_AAAA && end - rdata === 16) id = judge6(rdata);
    else if (type === TYPE_SVCB || type === TYPE_HTTPS) {
      let p = skipName(buf, rdata + 2);
      while (id < 0 && p >= 0 && p + 4 <= end) {
        const key = buf.readUInt16BE(p);
        const len = buf.readUInt16BE(p + 2);
        const value = p + 4;
        if (value + len > end) break;
        if (key === KEY_IPV4HINT) for (let a = value; id < 0 && a + 4 <= value + len; a += 4) id = judge4(a);
        else if (key === KEY_IPV6HINT) for (let a = value; id < 0 && a + 16 <= value + len; a += 16) id = judge6(a);
        p = value + len;
      }
    }
    if (id >= 0) return id;
    pos = end;
  }
  return -1;
}
