/**
 * IP address and CIDR text parsers, by hand into integers so callers (the prefix table's lookup on
 * every query, config validation) allocate nothing and accept exactly one spelling: no leading
 * zeros in IPv4, RFC 4291 forms for IPv6. Neutral: config, identity and the proxy all read IPs.
 */

/** The parsed form of a CIDR: family, network words (host bits cleared) and prefix length. */
export interface Cidr {
  readonly family: 4 | 6;
  /** IPv4: one uint32; IPv6: four uint32, most significant first. */
  readonly words: readonly number[];
  readonly prefix: number;
  /** True when the text had bits set beyond the prefix (10.20.1.0/16); the words have them cleared. */
  readonly hostBits: boolean;
}

const COLON = 58;
const DOT = 46;
const PERCENT = '%';

/** Scratch for the IPv6 parser; parsing is synchronous, so one set per process is enough. */
const groups = new Uint16Array(8);
const v6 = new Uint32Array(4);

/** Strict dotted quad in s[start, end): no leading zeros (they read as octal elsewhere). uint32, or -1. */
export function parseIPv4(s: string, start = 0, end = s.length): number {
  let value = 0;
  let octets = 0;
  let i = start;
  while (octets < 4) {
    const first = i;
    let octet = 0;
    while (i < end) {
      const c = s.charCodeAt(i) - 48;
      if (c < 0 || c > 9) break;
      octet = octet * 10 + c;
      i++;
    }
    const digits = i - first;
    if (digits === 0 || digits > 3 || octet > 255 || (digits > 1 && s.charCodeAt(first) === 48)) return -1;
    value = value * 256 + octet;
    octets++;
    if (octets < 4) {
      if (i >= end || s.charCodeAt(i) !== DOT) return -1;
      i++;
    }
  }
  return i === end ? value : -1;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * IPv6 text (RFC 4291 forms, incl. "::" and a dotted-quad tail) into `out` as four uint32.
 * A zone id ("fe80::1%eth0") is ignored when `allowZone`: the scope does not change which prefix holds it.
 */
export function parseIPv6(s: string, out: Uint32Array, allowZone = true): boolean {
  let end = s.indexOf(PERCENT);
  if (end === -1) end = s.length;
  else if (!allowZone || end === s.length - 1) return false;
  let n = 0;
  let gap = -1;
  let i = 0;
  if (s.charCodeAt(0) === COLON) {
    if (s.charCodeAt(1) !== COLON) return false;
    gap = 0;
    i = 2;
  }
  while (i < end) {
    let value = 0;
    let j = i;
    while (j < end) {
      const h = hexDigit(s.charCodeAt(j));
      if (h < 0) break;
      value = value * 16 + h;
      if (++j - i > 4) return false;
    }
    if (j < end && s.charCodeAt(j) === DOT) {
      if (n > 6) return false;
      const quad = parseIPv4(s, i, end);
      if (quad < 0) return false;
      groups[n++] = quad >>> 16;
      groups[n++] = quad & 0xffff;
      break;
    }
    if (j === i || n === 8) return false;
    groups[n++] = value;
    if (j === end) break;
    if (s.charCodeAt(j) !== COLON || ++j === end) return false;
    if (s.charCodeAt(j) === COLON) {
      if (gap >= 0) return false;
      gap = n;
      j++;
    }
    i = j;
  }
  if (gap < 0 ? n !== 8 : n > 7) return false;
  if (gap >= 0) {
    const moved = n - gap;
    for (let k = 0; k < moved; k++) groups[7 - k] = groups[n - 1 - k] ?? 0;
    for (let k = gap; k < 8 - moved; k++) groups[k] = 0;
  }
  for (let w = 0; w < 4; w++) out[w] = (((groups[2 * w] ?? 0) << 16) | (groups[2 * w + 1] ?? 0)) >>> 0;
  return true;
}

export function isMapped(words: ArrayLike<number>): boolean {
  return words[0] === 0 && words[1] === 0 && words[2] === 0xffff;
}

/** uint32 mask of the first `bits` bits of a 32-bit word (bits clamped to 0..32). */
export function wordMask(bits: number): number {
  if (bits <= 0) return 0;
  if (bits >= 32) return 0xffffffff;
  return (0xffffffff << (32 - bits)) >>> 0;
}

/**
 * "10.20.0.0/16", "2001:db8:20::/48", or a bare address (= /32 or /128). An IPv4-mapped IPv6
 * CIDR of /96 or longer becomes the IPv4 CIDR it denotes. Returns undefined when not a CIDR.
 */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  let prefix: number | undefined;
  if (slash !== -1) {
    const digits = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(digits)) return undefined;
    prefix = Number(digits);
  }
  const v4 = parseIPv4(address);
  if (v4 >= 0) {
    prefix ??= 32;
    if (prefix > 32) return undefined;
    const network = (v4 & wordMask(prefix)) >>> 0;
    return { family: 4, words: [network], prefix, hostBits: network !== v4 };
  }
  if (!parseIPv6(address, v6, false)) return undefined;
  prefix ??= 128;
  if (prefix > 128) return undefined;
  if (prefix >= 96 && isMapped(v6)) {
    const network = (v6[3]! & wordMask(prefix - 96)) >>> 0;
    return { family: 4, words: [network], prefix: prefix - 96, hostBits: network !== v6[3] };
  }
  const words: number[] = [];
  let hostBits = false;
  for (let w = 0; w < 4; w++) {
    const word = v6[w]!;
    const masked = (word & wordMask(prefix - 32 * w)) >>> 0;
    words.push(masked);
    if (masked !== word) hostBits = true;
  }
  return { family: 6, words, prefix, hostBits };
}

