/**
 * Raw-IP targets against the lists' CIDR rules (SPEC "IP rules"): a proxy request to an address inside
 * a blocked list's range is blocked, unless one of the group's allow lists covers it too. One prefix
 * table per list that has IP rules, built once per Policy (a reload compiles a new one).
 */
import type { GroupPolicy, Policy, RuleInfo } from '../policy/policy.js';
import { PrefixTable } from '../identity/prefix-table.js';

interface ListTable {
  readonly bit: number;
  readonly table: PrefixTable<RuleInfo>;
}

const built = new WeakMap<Policy, readonly ListTable[]>();

function tablesOf(policy: Policy): readonly ListTable[] {
  let tables = built.get(policy);
  if (tables === undefined) {
    const out: ListTable[] = [];
    policy.lists.forEach((list, i) => {
      if (list.ipRules.length === 0) return;
      const table = new PrefixTable<RuleInfo>();
      for (const r of list.ipRules) table.add(r.cidr, Object.freeze({ rule: r.cidr, list: list.name, source: r.source, line: r.line }));
      out.push({ bit: 1 << i, table });
    });
    tables = out;
    built.set(policy, tables);
  }
  return tables;
}

/** The CIDR rule that blocks `address` for this group, or null. */
export function blockingIpRule(policy: Policy, group: GroupPolicy, address: string): RuleInfo | null {
  if (group.blockMask === 0) return null;
  const tables = tablesOf(policy);
  let blocking: RuleInfo | null = null;
  for (const t of tables) {
    if ((t.bit & group.blockMask) === 0) continue;
    blocking = t.table.lookup(address) ?? null;
    if (blocking !== null) break;
  }
  if (blocking === null || group.allowMask === 0) return blocking;
  for (const t of tables) {
    if ((t.bit & group.allowMask) !== 0 && t.table.lookup(address) !== undefined) return null;
  }
  return blocking;
}
