/**
 * The two wire steps of Resolver.lookup (the proxy's door into the resolver): a plain A/AAAA query for
 * a host name, and the addresses of that type in an answer. Hand-written like the rest of wire/, so a
 * lookup costs what a DNS query costs.
 */
import { HEADER_SIZE, skipName } from './read.js';
import { CLASS_IN, RD, TYPE_A, TYPE_AAAA } from './codes.js';

/** RFC 1035 §2.3.4: 255 octets on the wire, so at most 253 characters of text. */
const MAX_NAME_TEXT = 253;

/**
 * Query bytes for `name` (lowercase, no trailing dot, LDH or '_' labels already checked by the caller),
 * or null when it cannot be a DNS name. ID 0 and RD set; no OPT: the upstream query adds our own.
 */
export function addressQuery(name: string, qtype: typeof TYPE_A | typeof TYPE_AAAA): Buffer | null {
  if (name.length === 0 || name.length > MAX_NAME_TEXT) return null;
  const out = Buffer.allocUnsafe(HEADER_SIZE + name.length + 2 + 4);
  out.writeUInt16BE(0, 0);
  out.writeUInt16BE(RD, 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt32BE(0, 6);
  out.writeUInt16BE(0, 10);
  let pos = HEADER_SIZE;
  let start = 0;
  while (start <= name.length) {
    let end = name.indexOf('.', start);
    if (end < 0) end = name.length;
    const len = end - start;
    if (len < 1 || len > 63) return null;
    out[pos++] = len;
    if (out.write(name.slice(start, end), pos, 'latin1') !== len) return null;
    pos += len;
    start = end + 1;
  }
  out[pos++] = 0;
  out.writeUInt16BE(qtype, pos);
  out.writeUInt16BE(CLASS_IN, pos + 2);
  return out.subarray(0, pos + 4);
}

/** Addresses of type `qtype` (A or AAAA) in the answer section, as text; [] for anything unreadable. */
export function answerAddresses(buf: Buffer, qtype: typeof TYPE_A | typeof TYPE_AAAA): string[] {
  const out: string[] = [];
  if (buf.length < HEADER_SIZE) return out;
  let pos = HEADER_SIZE;
  for (let i = buf.readUInt16BE(4); i > 0; i--) {
    pos = skipName(buf, pos);
    if (pos < 0) return out;
    pos += 4;
  }
  for (let i = buf.readUInt16BE(6); i > 0; i--) {
    const nameEnd = skipName(buf, pos);
    if (nameEnd < 0 || nameEnd + 10 > buf.length) return out;
    const type = buf.readUInt16BE(nameEnd);
    const rdlength = buf.readUInt16BE(nameEnd + 8);
    const rdata = nameEnd + 10;
    pos = rdata + rdlength;
    if (pos > buf.length) return out;
    if (type !== qtype || buf.readUInt16BE(nameEnd + 2) !== CLASS_IN) continue;
    if (type === TYPE_A && rdlength === 4) out.push(`${buf[rdata]}.${buf[rdata + 1]}.${buf[rdata + 2]}.${buf[rdata + 3]}`);
    else if (type === TYPE_AAAA && rdlength === 16) out.push(ipv6Text(buf, rdata));
  }
  return out;
}

/** RFC 5952 text: lowercase hex, the longest run of two or more zero groups as "::". */
function ipv6Text(buf: Buffer, offset: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(offset + 2 * i));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}
