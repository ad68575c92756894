/**
 * The network a client address belongs to for per-client limits: its /24 (IPv4) or /56 (IPv6),
 * the prefixes an ISP or a site hands to one customer or subnet. Limits counted per exact address
 * are evaded by anyone holding a few addresses (issue 14: 11 addresses took every DoT slot); one
 * /24 or /56 is what one site or one attacker's allocation usually is. IPv4-mapped IPv6 counts as
 * its IPv4 address. Allocation-free: the key is two uint32 written into a caller's array.
 */
import { isMapped, parseIPv4, parseIPv6 } from './ip.js';

export const CLIENT_PREFIX_V4 = 24;
export const CLIENT_PREFIX_V6 = 56;
/** High word of an IPv4 key: ffff:ffff::/32 is multicast space, never a source, so no IPv6 key has it. */
const V4_MARK = 0xffffffff;

const words = new Uint32Array(4);

/** key[0], key[1] := the prefix of `address`; false (key untouched) when it is not an IP literal. */
export function clientPrefixKey(address: string, key: Uint32Array): boolean {
  const v4 = parseIPv4(address);
  if (v4 >= 0) {
    key[0] = V4_MARK;
    key[1] = v4 >>> 8;
    return true;
  }
  if (!parseIPv6(address, words)) return false;
  if (isMapped(words)) {
    key[0] = V4_MARK;
    key[1] = words[3]! >>> 8;
  } else {
    key[0] = words[0]!;
    key[1] = words[1]! >>> 8;
  }
  return true;
}

/** The prefix as text ("192.0.2.0/24", "2001:db8:0:ab00::/56"), for maps and logs; the address itself if unparsable. */
export function clientPrefixText(address: string): string {
  const key = new Uint32Array(2);
  if (!clientPrefixKey(address, key)) return address;
  if (key[0] === V4_MARK) {
    const n = key[1]!;
    return `${n >>> 16}.${(n >>> 8) & 0xff}.${n & 0xff}.0/${CLIENT_PREFIX_V4}`;
  }
  const hi = key[0]!;
  const lo = key[1]! << 8;
  const groups = [hi >>> 16, hi & 0xffff, lo >>> 16 & 0xffff, lo & 0xff00].map((g) => g.toString(16));
  return `${groups.join(':')}::/${CLIENT_PREFIX_V6}`;
}
