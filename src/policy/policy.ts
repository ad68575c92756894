/**
 * The one policy engine both front ends ask: "may this client's group reach this name?".
 * Compiled once per config/lists load into per-group list masks over one shared DomainIndex;
 * at query time `blockingRuleId` is two integer-returning index walks and allocates nothing.
 * Allow beats block: a rule from any of the group's `allow` lists wins over every block rule.
 * No protocol bytes here: the policy answers rule ids; each front end owns its answer (the DNS
 * sinkholes, the proxy's block page), kept per group in arrays indexed by `GroupPolicy.index`.
 */
import type { BlockMode, Config, GroupConfig } from '../config/types.js';
import { DomainIndex } from '../match/domain-index.js';
import { IpIndex } from '../match/ip-index.js';
import type { LoadedList } from '../lists/load-lists.js';
import { LRUCache } from 'lru-cache';

/** A rule's id in the policy's index; -1 (NO_RULE) means allowed. */
export type RuleId = number;
export const NO_RULE: RuleId = -1;

export interface GroupPolicy {
  /** Position in Policy.groups (config order, `default` last): front ends keep per-group arrays by it. */
  readonly index: number;
  readonly name: string;
  readonly allowMask: number;
  readonly blockMask: number;
  readonly mode: BlockMode;
  /** The mode as the block log and `check` print it: null, nxdomain, refused, ip. */
  readonly answer: string;
  /** One "query" event per allowed query: the group's logQueries, else log.queries (guests may be kept out). */
  readonly logQueries: boolean;
  /** Decide and log as usual, but answer as if allowed (event "audit"). */
  readonly audit: boolean;
  /** The group's block lists that hold IP rules: 0 lets DNS skip reading answer addresses. */
  readonly ipMask: number;
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
  /** Every group, by index: config order, then `default`. */
  readonly groups: readonly GroupPolicy[];
  private readonly byName: Map<string, GroupPolicy>;
  readonly defaultGroup: GroupPolicy;
  /** Blocks repeat the same few rules: describe each once rather than per logged block. */
  private readonly described = new LRUCache<number, RuleInfo>({ max: 10_000 });
  /** Per list position: the list's own `answer` (lists.<name>.answer) overriding the group's mode, or undefined. */
  readonly listModes: readonly (BlockMode | undefined)[];
  private readonly listAnswers: readonly (string | undefined)[];

  private constructor(index: DomainIndex, ipIndex: IpIndex, lists: readonly LoadedList[], groups: readonly GroupPolicy[],
    listModes: readonly (BlockMode | undefined)[]) {
    this.index = index;
    this.ipIndex = ipIndex;
    this.lists = lists;
    this.groups = groups;
    this.byName = new Map(groups.map((g) => [g.name, g]));
    this.defaultGroup = groups[groups.length - 1]!;
    this.listModes = listModes;
    this.listAnswers = listModes.map((m) => (m === undefined ? undefined : answerName(m)));
  }

  /**
   * Reads `groups`, `default` and each list's `answer` mode: what a name is blocked by and which mode
   * applies, not the bytes a front end answers with.
   */
  static compile(config: Pick<Config, 'groups' | 'default'> & { readonly lists?: Config['lists'] }, lists: readonly LoadedList[]): Policy {
    const index = DomainIndex.build(lists);
    const ipIndex = new IpIndex(lists);
    const listConfig = new Map((config.lists ?? []).map((l) => [l.name, l] as const));
    const listModes = lists.map((l) => listConfig.get(l.name)?.answer);
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
    const compileGroup = (g: GroupConfig, index: number): GroupPolicy =>
      Object.freeze({
        index,
        name: g.name,
        allowMask: maskOf(g.allow),
        blockMask: maskOf(g.block),
        mode: g.mode,
        answer: answerName(g.mode),
        logQueries: g.logQueries === true, // config validation resolved it: the group's own key, else log.queries
        audit: g.audit === true,
        ipMask: maskOf(g.block) & ipIndex.usedMask,
      });
    const groups = [...config.groups, config.default].map(compileGroup);
    return new Policy(index, ipIndex, lists, groups, listModes);
  }

  group(name: string): GroupPolicy {
    return this.byName.get(name) ?? this.defaultGroup;
  }

  /** Id of the block rule that applies to `name`, or NO_RULE when it is allowed. Hot path: no allocation. */
  blockingRuleId(group: GroupPolicy, name: string): RuleId {
    if (group.blockMask === 0) return NO_RULE;
    const blockId = this.index.match(name, group.blockMask);
    if (blockId < 0) return NO_RULE;
    if (group.allowMask !== 0 && this.index.match(name, group.allowMask) >= 0) return NO_RULE;
    return blockId;
  }

  /**
   * Index into `targets` of the first blocked alias (CNAME/DNAME/HTTPS-SVCB target), or -1: an allowed name
   * whose answer leads to a blocked one is blocked too. The DNS inspection and the proxy's lookup ask this.
   */
  firstBlockedAlias(group: GroupPolicy, targets: readonly string[]): number {
    if (group.blockMask === 0) return -1;
    for (let i = 0; i < targets.length; i++) if (this.blockingRuleId(group, targets[i]!) >= 0) return i;
    return -1;
  }

  /** Id of the IP rule that blocks `address` for this group, or -1 (an allow list's range wins). */
  blockingIpRule(group: GroupPolicy, address: string): number {
    if (group.ipMask === 0) return -1;
    const id = this.ipIndex.match(address, group.ipMask);
    if (id < 0) return -1;
    if (group.allowMask !== 0 && this.ipIndex.match(address, group.allowMask) >= 0) return -1;
    return id;
  }

  /** The mode a block by `list` (a list position) answers with: the list's own `answer`, else the group's. */
  modeFor(group: GroupPolicy, list: number): BlockMode {
    return this.listModes[list] ?? group.mode;
  }

  /** modeFor as the block log prints it. */
  answerFor(group: GroupPolicy, list: number): string {
    return this.listAnswers[list] ?? group.answer;
  }

  /** List position of a name rule id (hot path of a block: cheap, no allocation). */
  listOfRule(ruleId: RuleId): number {
    return this.index.listOf(ruleId);
  }

  describeIp(id: number): RuleInfo & { readonly listIndex: number } {
    const d = this.ipIndex.describe(id);
    return { rule: d.rule, list: d.listName, source: d.source, line: d.line, listIndex: d.list };
  }

  describe(ruleId: RuleId): RuleInfo {
    let info = this.described.get(ruleId);
    if (info === undefined) {
      const d = this.index.describe(ruleId);
      info = Object.freeze({ rule: d.rule, list: d.listName, source: d.source, line: d.line });
      this.described.set(ruleId, info);
    }
    return info;
  }

  /** The same decision as blockingRuleId, told in full for `appfence check` and the logs. */
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
