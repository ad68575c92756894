/**
 * The compiled matcher both front ends ask: (normalised name, mask of lists) → id of the most
 * specific covering rule, or -1. Built once per reload from the loaded lists (list i = bit i).
 * An open-addressing hash table over every distinct rule name, keyed by a hash that is computed
 * right to left, so every suffix of a queried name is looked up in one pass without a substring.
 */
import { ConfigError } from '../errors.js';
import {
  FORMAT_ADBLOCK, FORMAT_ADBLOCK_BELOW, FORMAT_HOSTS, FORMAT_WILDCARD, INFO_EXCEPTION, KIND_BELOW, KIND_EXACT, MAX_LISTS,
  infoFormat, ruleName, type RuleList,
} from './rule-store.js';
import { WildcardRules } from './wildcard.js';

export { MAX_LISTS } from './rule-store.js';

const DOT = 46;
// ruleInfo byte: kind (2 bits) | exception (1 bit) | list (5 bits).
const KIND_MASK = 3;
const LIST_SHIFT = 3;

function mix(h: number): number {
  // murmur3 finaliser: the raw 31-multiplier hash clusters for names that differ in their last letters.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** The suffix hash both the index and the wildcard anchors use: right to left, then mixed. */
function suffixHash(text: string, start: number, end: number): number {
  let h = 0;
  for (let i = end - 1; i >= start; i--) h = (Math.imul(h, 31) + text.charCodeAt(i)) | 0;
  return mix(h);
}

export class DomainIndex {
  /** Plain-name rules and wildcard rules; ids [0, nameRules) are names, then wildcards. */
  readonly ruleCount: number;
  private readonly nameRules: number;
  /** `*`-in-a-label rules of every list; their ids follow the name rules'. */
  private readonly wild: WildcardRules;
  private readonly lists: readonly RuleList[];
  private readonly listBase: Int32Array;
  /** Lists that have at least one rule / one exception: lets match() skip work. */
  private readonly usedMask: number;
  private readonly exceptionMask: number;
  private readonly slotMask: number;
  private readonly slotPairMask: number;
  /**
   * One bit per hash (top bits) of every rule name: most suffixes of a query are no rule, and this
   * 1 MB filter stays in the CPU cache where the big slot table does not (bench/match.mjs:
   * 3.3 → 5 million lookups/s over 1M rules).
   */
  private readonly filter: Int32Array;
  private readonly filterShift: number;
  /** Pairs (hash, entry + 1), 0 = empty: the hash sits beside the entry so a probe touches one cache line. */
  private readonly slots: Int32Array;
  private readonly entryList: Uint8Array;
  private readonly entryStart: Int32Array;
  private readonly entryLength: Uint8Array;
  /** First rule of the entry's chain (ruleNext links the rest; -1 ends). */
  private readonly entryRule: Int32Array;
  /** Lists with a block rule covering the entry's name itself / the names below it. */
  private readonly entrySelf: Int32Array;
  private readonly entryBelow: Int32Array;
  private readonly entryHasException: Uint8Array;
  private readonly ruleNext: Int32Array;
  private readonly ruleInfo: Uint8Array;
  private readonly texts: readonly string[];

  static build(lists: readonly RuleList[]): DomainIndex {
    if (lists.length > MAX_LISTS) {
      throw new ConfigError('lists', `at most ${MAX_LISTS} lists can be used at once (got ${lists.length}); merge sources into fewer lists`);
    }
    return new DomainIndex(lists);
  }

  private constructor(lists: readonly RuleList[]) {
    this.lists = lists;
    this.texts = lists.map((l) => l.rules.names);
    this.listBase = new Int32Array(lists.length + 1);
    let total = 0;
    lists.forEach((l, i) => { this.listBase[i] = total; total += l.rules.count; });
    this.listBase[lists.length] = total;
    this.nameRules = total;
    this.wild = new WildcardRules(lists.flatMap((l, i) => (l.wildRules ?? []).map((w) => ({ ...w, list: i }))),
      (text) => suffixHash(text, 0, text.length));
    this.ruleCount = total + this.wild.count;

    let capacity = 16;
    while (capacity < total * 2) capacity *= 2; // load factor ≤ 0.5 keeps probe chains short
    this.slotMask = capacity - 1;
    this.slotPairMask = capacity * 2 - 1;
    this.slots = new Int32Array(capacity * 2);
    // 8 bits per rule, at most 2^23 bits (1 MB): ≈ 12 % false positives at 1M names.
    let filterBits = 1 << 10;
    while (filterBits < total * 8 && filterBits < (1 << 23)) filterBits *= 2;
    this.filter = new Int32Array(filterBits >>> 5);
    this.filterShift = 32 - Math.log2(filterBits);
    this.entryList = new Uint8Array(total);
    this.entryStart = new Int32Array(total);
    this.entryLength = new Uint8Array(total);
    this.entryRule = new Int32Array(total);
    this.entrySelf = new Int32Array(total);
    this.entryBelow = new Int32Array(total);
    this.entryHasException = new Uint8Array(total);
    this.ruleNext = new Int32Array(total);
    this.ruleInfo = new Uint8Array(total);

    let used = 0;
    let excepted = 0;
    let entries = 0;
    // Backwards, so that prepending to a chain leaves each chain in list and line order.
    for (let l = lists.length - 1; l >= 0; l--) {
      const store = lists[l]!.rules;
      const names = store.names;
      const bit = 1 << l;
      if (store.count > 0) used |= bit;
      for (let r = store.count - 1; r >= 0; r--) {
        const start = store.starts[r]!;
        const end = names.indexOf('\n', start);
        let h = 0;
        for (let i = end - 1; i >= start; i--) h = (Math.imul(h, 31) + names.charCodeAt(i)) | 0;
        h = mix(h);
        const len = end - start;
        let slot = (h & this.slotMask) << 1;
        let e = -1;
        for (;;) {
          const s = this.slots[slot + 1]!;
          if (s === 0) break;
          if (this.slots[slot] === h && this.entryLength[s - 1] === len &&
            sameText(this.texts[this.entryList[s - 1]!]!, this.entryStart[s - 1]!, names, start, len)) {
            e = s - 1;
            break;
          }
          slot = (slot + 2) & this.slotPairMask;
        }
        if (e < 0) {
          const f = h >>> this.filterShift;
          this.filter[f >>> 5]! |= 1 << (f & 31);
          e = entries++;
          this.slots[slot] = h;
          this.slots[slot + 1] = e + 1;
          this.entryList[e] = l;
          this.entryStart[e] = start;
          this.entryLength[e] = len;
          this.entryRule[e] = -1;
        }
        const id = this.listBase[l]! + r;
        const info = store.info[r]!;
        const kind = info & KIND_MASK;
        const exception = (info & INFO_EXCEPTION) !== 0;
        this.ruleInfo[id] = kind | (exception ? INFO_EXCEPTION : 0) | (l << LIST_SHIFT);
        this.ruleNext[id] = this.entryRule[e]!;
        this.entryRule[e] = id;
        if (exception) {
          this.entryHasException[e] = 1;
          excepted |= bit;
        } else {
          if (kind !== KIND_BELOW) this.entrySelf[e]! |= bit;
          if (kind !== KIND_EXACT) this.entryBelow[e]! |= bit;
        }
      }
    }
    this.usedMask = used | this.wild.usedMask;
    this.exceptionMask = excepted;
  }

  /**
   * Id of the most specific block rule of a list in `listMask` that covers `name` (already
   * normalised), skipping lists whose own exception covers `name`; -1 if none. Allocation-free.
   */
  match(name: string, listMask: number): number {
    const mask = listMask & this.usedMask;
    if (mask === 0) return -1;
    return this.find(name, mask, (mask & this.exceptionMask) !== 0);
  }

  private find(name: string, mask: number, withExceptions: boolean): number {
    const end = name.length;
    const wildMask = mask & this.wild.usedMask;
    let best = -1;
    let excepted = 0;
    let h = 0;
    // Right to left: each label start closes a suffix, from the root-most one to the full name,
    // so the last hit is the most specific. A wildcard rule anchored at a suffix covers the label
    // left of it, so it ranks above a plain rule on that suffix and below one on the longer name.
    for (let i = end - 1; i >= 0; i--) {
      h = (Math.imul(h, 31) + name.charCodeAt(i)) | 0;
      if (i !== 0 && name.charCodeAt(i - 1) !== DOT) continue;
      const hm = mix(h);
      const e = this.lookup(name, i, end - i, hm);
      if (e >= 0) {
        const covers = i === 0 ? this.entrySelf[e]! : this.entryBelow[e]!;
        if ((covers & mask) !== 0) best = this.firstBlockRule(e, mask, i === 0);
        if (withExceptions && this.entryHasException[e] === 1) excepted |= this.exceptionBits(e, mask, i === 0);
      }
      if (wildMask !== 0 && i > 0) {
        const w = this.wild.matchAt(name, i, end, hm, wildMask);
        if (w >= 0) best = this.nameRules + w;
      }
    }
    if (best >= 0 && (excepted & (1 << this.listOf(best))) !== 0) {
      // The most specific hit is cancelled by its own list's exception; the other lists still count.
      const rest = mask & ~excepted;
      return rest === 0 ? -1 : this.find(name, rest, false);
    }
    return best;
  }

  /** The list (position) of a rule id; cheap enough for every logged block. */
  listOf(ruleId: number): number {
    return ruleId >= this.nameRules ? this.wild.rule(ruleId - this.nameRules).list : this.ruleInfo[ruleId]! >>> LIST_SHIFT;
  }

  private lookup(name: string, start: number, len: number, h: number): number {
    const f = h >>> this.filterShift;
    if ((this.filter[f >>> 5]! & (1 << (f & 31))) === 0) return -1;
    const slots = this.slots;
    let slot = (h & this.slotMask) << 1;
    for (;;) {
      const s = slots[slot + 1]!;
      if (s === 0) return -1;
      const e = s - 1;
      if (slots[slot] === h && this.entryLength[e] === len &&
        sameText(this.texts[this.entryList[e]!]!, this.entryStart[e]!, name, start, len)) return e;
      slot = (slot + 2) & this.slotPairMask;
    }
  }

  /** First block rule in the entry's chain, of a list in `mask`, covering the name (self) or names below it. */
  private firstBlockRule(e: number, mask: number, self: boolean): number {
    for (let id = this.entryRule[e]!; id >= 0; id = this.ruleNext[id]!) {
      const info = this.ruleInfo[id]!;
      if ((info & INFO_EXCEPTION) !== 0) continue;
      if ((mask & (1 << (info >>> LIST_SHIFT))) === 0) continue;
      const kind = info & KIND_MASK;
      if (self ? kind !== KIND_BELOW : kind !== KIND_EXACT) return id;
    }
    return -1;
  }

  private exceptionBits(e: number, mask: number, self: boolean): number {
    let bits = 0;
    for (let id = this.entryRule[e]!; id >= 0; id = this.ruleNext[id]!) {
      const info = this.ruleInfo[id]!;
      if ((info & INFO_EXCEPTION) === 0) continue;
      const kind = info & KIND_MASK;
      if (self ? kind !== KIND_BELOW : kind !== KIND_EXACT) bits |= 1 << (info >>> LIST_SHIFT);
    }
    return bits & mask;
  }

  /** For logs and explanations (cold path): the rule as written, its list and where it came from. */
  describe(ruleId: number): { list: number; listName: string; rule: string; source: string; line: number } {
    if (!Number.isInteger(ruleId) || ruleId < 0 || ruleId >= this.ruleCount) throw new RangeError(`no rule ${ruleId}`);
    if (ruleId >= this.nameRules) {
      const w = this.wild.rule(ruleId - this.nameRules);
      return { list: w.list, listName: this.lists[w.list]!.name, rule: w.text, source: w.source, line: w.line };
    }
    let list = 0;
    while (this.listBase[list + 1]! <= ruleId) list++;
    const loaded = this.lists[list]!;
    const store = loaded.rules;
    const r = ruleId - this.listBase[list]!;
    const info = store.info[r]!;
    const name = ruleName(store, r);
    const format = infoFormat(info);
    const text = format === FORMAT_ADBLOCK ? `||${name}^`
      : format === FORMAT_ADBLOCK_BELOW ? `||*.${name}^`
        : format === FORMAT_WILDCARD ? `*.${name}`
          : format === FORMAT_HOSTS ? `0.0.0.0 ${name}` : name;
    return {
      list,
      listName: loaded.name,
      rule: (info & INFO_EXCEPTION) !== 0 ? `@@${text}` : text,
      source: loaded.sources[store.sourceIndex[r]!] ?? '',
      line: store.lines[r]!,
    };
  }

  listRuleCount(list: number): number {
    return this.lists[list]?.ruleCount ?? 0;
  }
}

function sameText(a: string, aStart: number, b: string, bStart: number, len: number): boolean {
  for (let k = 0; k < len; k++) {
    if (a.charCodeAt(aStart + k) !== b.charCodeAt(bStart + k)) return false;
  }
  return true;
}
