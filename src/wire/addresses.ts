/**
 * The addresses an upstream answer would send a client to: A and AAAA records of the answer section,
 * and the ipv4hint/ipv6hint SvcParams of its SVCB/HTTPS records (RFC 9460 §7.3), for IP rules (RPZ's
 * IP triggers). Only walked for groups whose block lists hold IP rules, so most answers never pay for
 * the address strings. Never throws: a malformed answer yields the addresses read before the damage.
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

export function answerAddresses(buf: Buffer): string[] {
  const out: string[] = [];
  if (buf.length < HEADER_SIZE) return out;
  let pos = HEADER_SIZE;
  for (let i = buf.readUInt16BE(4); i > 0; i--) {
    pos = skipName(buf, pos);
    if (pos < 0 || pos + 4 > buf.length) return out;
    pos += 4;
  }
  for (let i = buf.readUInt16BE(6); i > 0; i--) {
    const nameEnd = skipName(buf, pos);
    if (nameEnd < 0 || nameEnd + 10 > buf.length) return out;
    const type = buf.readUInt16BE(nameEnd);
    const rdata = nameEnd + 10;
    const end = rdata + buf.readUInt16BE(nameEnd + 8);
    if (end > buf.length) return out;
    if (type === TYPE_A && end - rdata === 4) out.push(v4(buf, rdata));
    else if (type === TYPE_AAAA && end - rdata === 16) out.push(v6(buf, rdata));
    else if (type === TYPE_SVCB || type === TYPE_HTTPS) hints(buf, rdata, end, out);
    pos = end;
  }
  return out;
}

/** SvcParams after priority and the (uncompressed) TargetName. */
function hints(buf: Buffer, rdata: number, end: number, out: string[]): void {
  let p = skipName(buf, rdata + 2);
  while (p >= 0 && p + 4 <= end) {
    const key = buf.readUInt16BE(p);
    const len = buf.readUInt16BE(p + 2);
    const value = p + 4;
    if (value + len > end) return;
    if (key === KEY_IPV4HINT) for (let a = value; a + 4 <= value + len; a += 4) out.push(v4(buf, a));
    else if (key === KEY_IPV6HINT) for (let a = value; a + 16 <= value + len; a += 16) out.push(v6(buf, a));
    p = value + len;
  }
}
