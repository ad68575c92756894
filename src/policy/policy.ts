/**
 * The one policy engine both front ends ask: "may this client's group reach this name?".
 * Compiled once per config/lists load into per-group list masks over one shared DomainIndex;
 * at query time `blockRule` is two integer-returning index walks and allocates nothing.
 * Allow beats block: a rule from any of the group's `allow` lists wins over every block rule.
 */
import type { BlockMode, Config, GroupConfig } from '../config/types.js';
import { DomainIndex } from '../match/domain-index.js';
import { IpIndex } from '../match/ip-index.js';
import type { LoadedList } from '../lists/load-lists.js';
import { Sinkhole } from '../wire/sinkhole.js';
import { LRUCache } from 'lru-cache';

export interface GroupPolicy {
  readonly name: string;
  readonly allowMask: number;
  readonly blockMask: number;
  readonly mode: BlockMode;
  /** The mode as the block log and `check` print it: null, nxdomain, refused, ip. */
  readonly answer: string;
  readonly sinkhole: Sinkhole;
  /** Decide and log as usual, but answer as if allowed (event "audit"). */
  readonly audit: boolean;
  /** The group's block lists that hold IP rules: 0 lets DNS skip reading answer addresses. */
  readonly ipMask: number;
  /** Per list position: the list's own `answer` overriding the group's mode, or undefined. */
  readonly listSinkholes: readonly (Sinkhole | undefined)[];
  readonly listAnswers: readonly (string | undefined)[];
}

export interface RuleInfo {
  readonly rule: string;
  readonly list: string;
  readonly source: string;
  readonly line: number;
}

export interface Explanation {
  readonly name: string;
  readonly action: 'allow' | 'block';
  readonly group: string;
  /** The rule that decided: the block rule, or the allow rule that overrode one. */
  readonly rule: RuleInfo | null;
  /** For an allow that overrode a block: the block rule that lost. */
  readonly overridden: RuleInfo | null;
  readonly answer: string;
}

export function answerName(mode: BlockMode): string {
  return typeof mode === 'string' ? mode : 'ip';
}

export class Policy {
  readonly index: DomainIndex;
  readonly ipIndex: IpIndex;
  readonly lists: readonly LoadedList[];
  private readonly groups: Map<string, GroupPolicy>;
  readonly defaultGroup: GroupPolicy;
  /** Blocks repeat the same few rules: describe each once rather than per logged block. */
  private readonly described = new LRUCache<number, RuleInfo>({ max: 10_000 });

  private constructor(index: DomainIndex, ipIndex: IpIndex, lists: readonly LoadedList[], groups: Map<string, GroupPolicy>,
    def: GroupPolicy) {
    this.index = index;
    this.ipIndex = ipIndex;
    this.lists = lists;
    this.groups = groups;
    this.defaultGroup = def;
  }

  static compile(config: Config, lists: readonly LoadedList[]): Policy {
    const index = DomainIndex.build(lists);
    const ipIndex = new IpIndex(lists);
    const listConfig = new Map(config.lists.map((l) => [l.name, l] as const));
    // One Sinkhole per list answer and group TTL, shared by every group (answers only depend on the mode).
    const listModes = lists.map((l) => listConfig.get(l.name)?.answer);
    const listSinkholes = listModes.map((m) => (m === undefined ? undefined : new Sinkhole(m, config.dns.blockedTtl)));
    const listAnswers = listModes.map((m) => (m === undefined ? undefined : answerName(m)));
    const position = new Map(lists.map((l, i) => [l.name, i] as const));
    const maskOf = (names: readonly string[]): number => {
      let mask = 0;
      for (const n of names) {
        const i = position.get(n);
        // config validation guarantees the name exists; a miss here is a programming error
        if (i === undefined) throw new Error(`list "${n}" was not loaded`);
        mask |= 1 << i;
      }
      return mask;
    };
    const compileGroup = (g: GroupConfig): GroupPolicy =>
      Object.freeze({
        name: g.name,
        allowMask: maskOf(g.allow),
        blockMask: maskOf(g.block),
        mode: g.mode,
        answer: answerName(g.mode),
        sinkhole: new Sinkhole(g.mode, config.dns.blockedTtl),
        audit: g.audit === true,
        ipMask: maskOf(g.block) & ipIndex.usedMask,
        listSinkholes,
        listAnswers,
      });
    const groups = new Map<string, GroupPolicy>();
    for (const g of config.groups) groups.set(g.name, compileGroup(g));
    const def = compileGroup(config.default);
    groups.set(def.name, def);
    return new Policy(index, ipIndex, lists, groups, def);
  }

  group(name: string): GroupPolicy {
    return this.groups.get(name) ?? this.defaultGroup;
  }

  /** Id of the block rule that applies, or -1 when the name is allowed. Hot path: no allocation. */
  blockRule(group: GroupPolicy, name: string): number {
    if (group.blockMask === 0) return -1;
    const blockId = this.index.match(name, group.blockMask);
    if (blockId < 0) return -1;
    if (group.allowMask !== 0 && this.index.match(name, group.allowMask) >= 0) return -1;
    return blockId;
  }

  /** Id of the IP rule that blocks `address` for this group, or -1 (an allow list's range wins). */
  blockingIpRule(group: GroupPolicy, address: string): number {
    if (group.ipMask === 0) return -1;
    const id = this.ipIndex.match(address, group.ipMask);
    if (id < 0) return -1;
    if (group.allowMask !== 0 && this.ipIndex.match(address, group.allowMask) >= 0) return -1;
    return id;
  }

  /** The sinkhole for a block by `list` (a list position): the list's own answer, else the group's. */
  sinkholeFor(group: GroupPolicy, list: number): Sinkhole {
    return group.listSinkholes[list] ?? group.sinkhole;
  }

  answerFor(group: GroupPolicy, list: number): string {
    return group.listAnswers[list] ?? group.answer;
  }

  /** List position of a name rule id (hot path of a block: cheap, no allocation). */
  listOfRule(ruleId: number): number {
    return this.index.listOf(ruleId);
  }

  describeIp(id: number): RuleInfo & { readonly listIndex: number } {
    const d = this.ipIndex.describe(id);
    return { rule: d.rule, list: d.listName, source: d.source, line: d.line, listIndex: d.list };
  }

  describe(ruleId: number): RuleInfo {
    let info = this.described.get(ruleId);
    if (info === undefined) {
      const d = this.index.describe(ruleId);
      info = Object.freeze({ rule: d.rule, list: d.listName, source: d.source, line: d.line });
      this.described.set(ruleId, info);
    }
    return info;
  }

  /** The same decision as blockRule, told in full for `appfence check` and the logs. */
  explain(group: GroupPolicy, name: string): Explanation {
    const blockId = group.blockMask === 0 ? -1 : this.index.match(name, group.blockMask);
    const allowId = group.allowMask === 0 ? -1 : this.index.match(name, group.allowMask);
    if (blockId >= 0 && allowId < 0) {
      return { name, action: 'block', group: group.name, rule: this.describe(blockId), overridden: null,
        answer: this.answerFor(group, this.listOfRule(blockId)) };
    }
    return {
      name,
      action: 'allow',
      group: group.name,
      rule: blockId >= 0 ? this.describe(allowId) : null,
      overridden: blockId >= 0 ? this.describe(blockId) : null,
      answer: 'forward',
    };
  }
}
