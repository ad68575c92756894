/**
 * Longest-prefix match of a client address over IPv4 and IPv6 CIDRs, for subnet identity and
 * access.allow. IPv4-mapped IPv6 (::ffff:10.20.1.2, what a dual-stack socket reports) counts as IPv4.
 * Addresses are parsed by hand into integers so a lookup allocates nothing: IPv4 is one uint32,
 * IPv6 four; each prefix length present has its own hash table, tried longest first.
 */

import { isMapped, parseCidr, parseIPv4, parseIPv6, wordMask } from '../net/ip.js';

/** Scratch for parsing looked-up IPv6 addresses; lookups are synchronous, so one per process is enough. */
const v6 = new Uint32Array(4);

/** A chained bucket entry: the hash of IPv6 network words can collide, so each entry keeps them. */
interface V6Entry<T> {
  readonly words: readonly number[];
  value: T;
  next: V6Entry<T> | undefined;
}

function hash6(w0: number, w1: number, w2: number, w3: number): number {
  return (Math.imul(w0, 0x9e3779b1) ^ Math.imul(w1, 0x85ebca77) ^ Math.imul(w2, 0xc2b2ae3d) ^ Math.imul(w3, 0x27d4eb2f)) | 0;
}

interface V4Level<T> { readonly prefix: number; readonly mask: number; readonly table: Map<number, T> }
interface V6Level<T> { readonly prefix: number; readonly masks: readonly number[]; readonly table: Map<number, V6Entry<T>> }

export class PrefixTable<T> {
  /** One level per prefix length present, longest first: a lookup tries at most that many hashes. */
  private v4: V4Level<T>[] = [];
  private v6: V6Level<T>[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds (or replaces) the value for a CIDR; host bits are cleared. Throws on a bad CIDR. */
  add(cidr: string, value: T): void {
    const parsed = parseCidr(cidr);
    if (parsed === undefined) throw new TypeError(`"${cidr}" is not a CIDR`);
    if (parsed.family === 4) {
      const level = this.level4(parsed.prefix);
      const key = parsed.words[0]!;
      if (!level.table.has(key)) this.count++;
      level.table.set(key, value);
      return;
    }
    const [w0 = 0, w1 = 0, w2 = 0, w3 = 0] = parsed.words;
    const level = this.level6(parsed.prefix);
    const h = hash6(w0, w1, w2, w3);
    const head = level.table.get(h);
    for (let e = head; e !== undefined; e = e.next) {
      if (e.words[0] === w0 && e.words[1] === w1 && e.words[2] === w2 && e.words[3] === w3) {
        e.value = value;
        return;
      }
    }
    level.table.set(h, { words: parsed.words, value, next: head });
    this.count++;
  }

  /** The value of the longest prefix holding `address`; undefined when none does or it is not an IP. */
  lookup(address: string): T | undefined {
    const v4 = parseIPv4(address);
    if (v4 >= 0) return this.lookup4(v4);
    if (!parseIPv6(address, v6)) return undefined;
    if (isMapped(v6)) return this.lookup4(v6[3]!);
    return this.lookup6(v6[0]!, v6[1]!, v6[2]!, v6[3]!);
  }

  /** The same, for an IPv6 address as four uint32 words (most significant first): no parsing. */
  lookup6(a0: number, a1: number, a2: number, a3: number): T | undefined {
    if (a0 === 0 && a1 === 0 && a2 === 0xffff) return this.lookup4(a3);
    for (const level of this.v6) {
      const m = level.masks;
      const w0 = (a0 & m[0]!) >>> 0, w1 = (a1 & m[1]!) >>> 0, w2 = (a2 & m[2]!) >>> 0, w3 = (a3 & m[3]!) >>> 0;
      for (let e = level.table.get(hash6(w0, w1, w2, w3)); e !== undefined; e = e.next) {
        if (e.words[0] === w0 && e.words[1] === w1 && e.words[2] === w2 && e.words[3] === w3) return e.value;
      }
    }
    return undefined;
  }

  /** The same, for an IPv4 address as a uint32: no parsing, for addresses read from DNS answers. */
  lookup4(address: number): T | undefined {
    for (const level of this.v4) {
      const value = level.table.get((address & level.mask) >>> 0);
      if (value !== undefined) return value;
    }
    return undefined;
  }

  private level4(prefix: number): V4Level<T> {
    let level = this.v4.find((l) => l.prefix === prefix);
    if (level === undefined) {
      level = { prefix, mask: wordMask(prefix), table: new Map() };
      this.v4.push(level);
      this.v4.sort((a, b) => b.prefix - a.prefix);
    }
    return level;
  }

  private level6(prefix: number): V6Level<T> {
    let level = this.v6.find((l) => l.prefix === prefix);
    if (level === undefined) {
      const masks = [0, 1, 2, 3].map((w) => wordMask(prefix - 32 * w));
      level = { prefix, masks, table: new Map() };
      this.v6.push(level);
      this.v6.sort((a, b) => b.prefix - a.prefix);
    }
    return level;
  }
}
