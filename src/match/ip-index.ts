/**
 * IP rules: the CIDR lines of the loaded lists (198.51.100.0/24, a bare 192.0.2.7), matched against
 * an address with a mask of lists, as DomainIndex does for names. One PrefixTable per list that has
 * IP rules (few lists do: bypass lists, an operator's own ranges), so a lookup is one longest-prefix
 * walk per such list in the mask and allocates nothing. Ids run over all lists' IP rules in order.
 */
import { PrefixTable } from '../identity/prefix-table.js';
import type { LoadedList } from '../lists/load-lists.js';

export interface IpRuleInfo {
  readonly list: number;
  readonly listName: string;
  readonly rule: string;
  readonly source: string;
  readonly line: number;
}

export class IpIndex {
  readonly ruleCount: number;
  /** Lists (bits) that have at least one IP rule. */
  readonly usedMask: number;
  private readonly tables: (PrefixTable<number> | null)[];
  private readonly rules: IpRuleInfo[] = [];
  /** Prefix length per rule id, so the most specific of several lists' hits wins without parsing. */
  private prefixes: Int16Array = new Int16Array(0);

  constructor(lists: readonly LoadedList[]) {
    let used = 0;
    this.tables = lists.map((list, l) => {
      if (list.ipRules.length === 0) return null;
      used |= 1 << l;
      const table = new PrefixTable<number>();
      const first = this.rules.length;
      for (const r of list.ipRules) this.rules.push({ list: l, listName: list.name, rule: r.cidr, source: r.source, line: r.line });
      // Added last to first: add() replaces, so a CIDR listed twice keeps its first line for explanations.
      for (let id = this.rules.length - 1; id >= first; id--) table.add(this.rules[id]!.rule, id);
      return table;
    });
    this.usedMask = used;
    this.ruleCount = this.rules.length;
    this.prefixes = Int16Array.from(this.rules, (r) => prefixOf(r.rule));
  }

  /** match() for an IPv4 address as a uint32 (read from an A record or ipv4hint): no allocation. */
  match4(address: number, listMask: number): number {
    let mask = listMask & this.usedMask;
    let best = -1;
    for (let l = 0; mask !== 0; l++, mask >>>= 1) {
      if ((mask & 1) === 0) continue;
      const id = this.tables[l]!.lookup4(address);
      if (id !== undefined && (best < 0 || this.prefixes[id]! > this.prefixes[best]!)) best = id;
    }
    return best;
  }

  /** match() for an IPv6 address as four uint32 words: no allocation. */
  match6(a0: number, a1: number, a2: number, a3: number, listMask: number): number {
    let mask = listMask & this.usedMask;
    let best = -1;
    for (let l = 0; mask !== 0; l++, mask >>>= 1) {
      if ((mask & 1) === 0) continue;
      const id = this.tables[l]!.lookup6(a0, a1, a2, a3);
      if (id !== undefined && (best < 0 || this.prefixes[id]! > this.prefixes[best]!)) best = id;
    }
    return best;
  }

  /** Id of the most specific IP rule of a list in `listMask` holding `address`, or -1. */
  match(address: string, listMask: number): number {
    let mask = listMask & this.usedMask;
    let best = -1;
    let bestPrefix = -1;
    for (let l = 0; mask !== 0; l++, mask >>>= 1) {
      if ((mask & 1) === 0) continue;
      const id = this.tables[l]!.lookup(address);
      if (id === undefined) continue;
      const prefix = prefixOf(this.rules[id]!.rule);
      if (prefix > bestPrefix) { best = id; bestPrefix = prefix; }
    }
    return best;
  }

  describe(id: number): IpRuleInfo {
    const info = this.rules[id];
    if (info === undefined) throw new RangeError(`no IP rule ${id}`);
    return info;
  }
}

function prefixOf(cidr: string): number {
  return Number(cidr.slice(cidr.indexOf('/') + 1));
}
