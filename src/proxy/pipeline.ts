/**
 * The proxy's decision, one line per stage, the same steps as the DNS pipeline:
 *   identify (access, certificate › subnet › default) → group → block rule for the host name (or the
 *   CIDR rules for an IP literal) → resolve through appfence's resolver → inspect the aliases (CNAME
 *   inspection) and the addresses (IP rules) → the one address to connect to.
 * The outcome names that address: forward.ts and tunnel.ts connect to exactly what was checked, so a
 * record that changes between check and connect (DNS rebinding) cannot slip past the policy.
 */
import type { Identifier } from '../identity/identify.js';
import type { ClientIdentity, Peer } from '../net/peer.js';
import type { GroupPolicy, Policy, RuleInfo } from '../policy/policy.js';
import type { Resolver } from '../resolver/resolver.js';
import { UpstreamError } from '../errors.js';
import { RCODE } from '../wire/codes.js';
import type { Target } from './target.js';

export type ProxyProto = 'http' | 'connect';

export interface ProxyPeer extends Peer {
  readonly proto: ProxyProto;
}

/** What a decision reads from the running configuration (the DNS front end's snapshot); read once per request. */
export interface DecisionContext {
  readonly identifier: Identifier;
  readonly policy: Policy;
  readonly resolver: Resolver;
}

export type ProxyOutcome =
  | { readonly kind: 'refused' }
  | { readonly kind: 'blocked'; readonly who: ClientIdentity; readonly group: GroupPolicy; readonly rule: RuleInfo; readonly cname?: string }
  | { readonly kind: 'allowed'; readonly who: ClientIdentity; readonly group: GroupPolicy; readonly address: string }
  /** The name did not resolve: NXDOMAIN/NODATA (`notFound`), or every upstream failed. */
  | { readonly kind: 'unresolved'; readonly who: ClientIdentity; readonly notFound: boolean; readonly detail: string };

export function decideTarget(ctx: DecisionContext, peer: ProxyPeer, target: Target): ProxyOutcome | Promise<ProxyOutcome> {
  const who = ctx.identifier.identify(peer);
  if (who === null) return { kind: 'refused' };
  const { policy } = ctx;
  const group = policy.group(who.group);
  if (target.ipFamily !== 0) {
    const ipRule = policy.blockingIpRule(group, target.host);
    if (ipRule >= 0) return { kind: 'blocked', who, group, rule: policy.describeIp(ipRule) };
    return { kind: 'allowed', who, group, address: target.host };
  }
  const ruleId = policy.blockingRuleId(group, target.host);
  if (ruleId >= 0) return { kind: 'blocked', who, group, rule: policy.describe(ruleId) };
  return resolveAndInspect(ctx, who, group, target.host);
}

async function resolveAndInspect(ctx: DecisionContext, who: ClientIdentity, group: GroupPolicy, name: string): Promise<ProxyOutcome> {
  const { policy } = ctx;
  try {
    // A first, AAAA only when there is no A: the listeners this proxy reaches are mostly IPv4, and one
    // lookup per request is what a cache hit should cost.
    let found = await ctx.resolver.lookup(name, 4);
    if (found.addresses.length === 0 && found.rcode === RCODE.NOERROR) {
      const v6 = await ctx.resolver.lookup(name, 6);
      found = { addresses: v6.addresses, aliasTargets: [...found.aliasTargets, ...v6.aliasTargets], rcode: v6.rcode };
    }
    const blocked = policy.firstBlockedAlias(group, found.aliasTargets);
    if (blocked >= 0) {
      const alias = found.aliasTargets[blocked]!;
      return { kind: 'blocked', who, group, rule: policy.describe(policy.blockingRuleId(group, alias)), cname: alias };
    }
    const address = found.addresses[0];
    if (address === undefined) {
      const notFound = found.rcode === RCODE.NXDOMAIN || found.rcode === RCODE.NOERROR;
      return { kind: 'unresolved', who, notFound, detail: notFound ? 'no such host' : `DNS error (rcode ${found.rcode})` };
    }
    for (const a of found.addresses) {
      const ipRule = policy.blockingIpRule(group, a);
      if (ipRule >= 0) return { kind: 'blocked', who, group, rule: policy.describeIp(ipRule) };
    }
    return { kind: 'allowed', who, group, address };
  } catch (err) {
    const detail = err instanceof UpstreamError ? `DNS upstream failed (${err.reason})` : 'DNS lookup failed';
    return { kind: 'unresolved', who, notFound: false, detail };
  }
}
