/**
 * The DNS query path, one line per stage (aesthetics.md §5.3):
 *   parse → identify (access.allow, cert › subnet › default: identity/identify.ts) → decide → sinkhole |
 *   resolve (cache → upstream) → inspect CNAMEs → reply.
 * Transports hand in raw query bytes and a Peer; they get back raw reply bytes, null (drop), or a
 * promise of either. Everything up to a cache hit is synchronous; only an upstream exchange awaits.
 * The pipeline reads the current Generation once per query, so a reload is one reference swap.
 */
import type { ClientIdentity, Peer, Proto } from '../net/peer.js';
import type { BlockLog, LogEvent } from '../log/block-log.js';
import type { GroupPolicy, Policy, RuleInfo } from '../policy/policy.js';
import { Sinkhole } from '../wire/sinkhole.js';
import type { Identifier } from '../identity/identify.js';
import type { Resolver, ResolvedAnswer } from '../resolver/resolver.js';
import type { ResponseRateLimiter } from './rate-limit.js';
import { readQuery, ParseFailure, type Query } from '../wire/read.js';
import { advertiseUdpSize, EDNS_UDP_SIZE, errorReply, truncateForUdp, RCODE } from '../wire/write.js';
import { firstMatchingAddress, lastMatchedAddress } from '../wire/addresses.js';
import { qtypeName } from '../wire/qtype.js';
import type { AppLogger } from '../log/logger.js';
import { Throttle } from '../log/throttle.js';
import { Discovery } from './discovery.js';

export type DnsProto = Extract<Proto, 'udp' | 'tcp' | 'dot' | 'doh'>;

/** A client of the DNS front end: one of the four DNS protocols. */
export interface DnsPeer extends Peer {
  readonly proto: DnsProto;
}

/**
 * What a query reads of the current Generation (runtime/generation.ts), declared here by shape so
 * dns/ does not import runtime/. Everything in it is replaced together by a reload.
 */
export interface DnsGeneration {
  /** dns.maxUdpSize: UDP answers never exceed it (TC=1 beyond), and every OPT of ours advertises it. */
  readonly config: { readonly log: { readonly queries: boolean }; readonly dns: { readonly blockedTtl: number; readonly maxUdpSize: number } };
  readonly policy: Policy;
  readonly identifier: Identifier;
  readonly resolver: Resolver;
  /** dns.rateLimit, applied by the UDP transport to every answer it sends. */
  readonly rateLimiter: ResponseRateLimiter;
}

/** Holds the generation serving now (the Runtime). */
export interface CurrentGeneration {
  readonly generation: DnsGeneration;
}

export const QUERY_RESULTS = ['blocked', 'forwarded', 'cached', 'refused', 'formerr', 'notimp', 'servfail', 'dropped'] as const;
export type QueryResult = (typeof QUERY_RESULTS)[number];
const DNS_PROTOS: readonly DnsProto[] = ['udp', 'tcp', 'dot', 'doh'];

/** Plain counters (no label lookups per query); metrics and tests read them. */
export class DnsStats {
  private readonly counts = new Float64Array(DNS_PROTOS.length * QUERY_RESULTS.length);
  private readonly resultIndex = new Map<QueryResult, number>(QUERY_RESULTS.map((r, i) => [r, i]));
  count(proto: DnsProto, result: QueryResult): void {
    const i = this.slot(proto, result);
    this.counts[i] = (this.counts[i] ?? 0) + 1;
  }
  get(proto: DnsProto, result: QueryResult): number {
    return this.counts[this.slot(proto, result)] ?? 0;
  }
  private slot(proto: DnsProto, result: QueryResult): number {
    return DNS_PROTOS.indexOf(proto) * QUERY_RESULTS.length + (this.resultIndex.get(result) ?? 0);
  }
}

/** A generation's DNS answers: per group (by GroupPolicy.index), and per list position where the list sets its own `answer`. */
interface Sinkholes {
  readonly groups: readonly Sinkhole[];
  readonly lists: readonly (Sinkhole | undefined)[];
}

/** What decided a block: a name rule (id in the DomainIndex) or an IP rule (id in the IpIndex). */
interface Hit {
  readonly rule: RuleInfo;
  readonly list: number;
  readonly cname?: string;
  readonly address?: string;
}

export class DnsPipeline {
  readonly stats = new DnsStats();
  /** Queries waiting on an upstream; shutdown drains them. */
  inFlight = 0;
  private readonly servfailLog = new Throttle(5000);
  /** The DNS answers of the generation last seen (per group and per list answer): built once per generation. */
  private sinkholesOf: DnsGeneration | null = null;
  private sinkholes: Sinkholes = { groups: [], lists: [] };
  private readonly sinkholesByGeneration = new WeakMap<DnsGeneration, Sinkholes>();
  /** RFC 9462 answers; the runtime sets it once the DoT/DoH ports are bound (and again on reload). */
  discovery = new Discovery(null, [], []);

  /** `refused`: told each client refused by access.allow (the throttled summary, log/refused-clients.ts). */
  constructor(private readonly current: CurrentGeneration, private readonly blockLog: BlockLog, private readonly log: AppLogger,
    private readonly refused?: { note(address: string): void }) {}

  /**
   * `transient`: `buf` is valid only during this call (a slot of the batched UDP socket's shared
   * buffer). Only a query that has to wait for an upstream is then copied; every other path answers
   * before returning.
   */
  handle(buf: Buffer, peer: DnsPeer, transient = false): Buffer | null | Promise<Buffer | null> {
    const q = readQuery(buf);
    if (typeof q === 'number') return this.malformed(buf, peer, q);
    const s = this.current.generation;
    const who = s.identifier.identify(peer);
    if (who === null) {
      this.stats.count(peer.proto, 'refused');
      this.refused?.note(peer.address);
      return this.fit(errorReply(buf, q, RCODE.REFUSED), q, peer, s);
    }
    // Discovery before policy: `_dns.resolver.arpa` is ours to answer, for every client we serve.
    const designation = this.discovery.answer(buf, q);
    if (designation !== null) {
      this.stats.count(peer.proto, 'cached'); // answered from local data, no upstream
      return this.fit(designation, q, peer, s);
    }
    const group = s.policy.group(who.group);
    const ruleId = s.policy.blockingRuleId(group, q.qname);
    if (ruleId >= 0) {
      const hit = { rule: s.policy.describe(ruleId), list: s.policy.listOfRule(ruleId) };
      if (!group.audit) return this.sinkhole(buf, q, peer, who, group, s, hit);
      this.audit(q, peer, who, group, s, hit);
    }

    let kept = buf;
    const answer = transient ? s.resolver.resolveAnswer(buf, q, () => (kept = Buffer.from(buf))) : s.resolver.resolveAnswer(buf, q);
    if (!(answer instanceof Promise)) {
      this.stats.count(peer.proto, 'cached');
      return this.inspect(answer, buf, q, peer, who, group, s);
    }
    this.inFlight++;
    return answer.then(
      (resolved) => {
        this.inFlight--;
        this.stats.count(peer.proto, 'forwarded');
        return this.inspect(resolved, kept, q, peer, who, group, s);
      },
      (err: unknown) => {
        this.inFlight--;
        this.stats.count(peer.proto, 'servfail');
        const count = this.servfailLog.hit();
        if (count > 0) this.log.warn({ count, last: { name: q.qname, qtype: qtypeName(q.qtype), error: String(err) } }, 'answered SERVFAIL: every upstream failed');
        return this.fit(errorReply(kept, q, RCODE.SERVFAIL), q, peer, s);
      },
    );
  }

  /** Inspection runs after the cache on purpose: a cached answer fetched for a guest is re-checked for this client. */
  private inspect(resolved: ResolvedAnswer, buf: Buffer, q: Query, peer: DnsPeer, who: ClientIdentity, group: GroupPolicy, s: DnsGeneration): Buffer {
    if (group.blockMask !== 0) {
      const hit = this.inspectAnswer(resolved, group, s);
      if (hit !== null) {
        if (!group.audit) return this.sinkhole(buf, q, peer, who, group, s, hit);
        this.audit(q, peer, who, group, s, hit);
      }
    }
    const answer = resolved.bytes;
    if (group.logQueries) this.blockLog.query(peer.proto, this.event(q, peer, who, group, null, 'forward'));
    return this.fit(answer, q, peer, s);
  }

  /**
   * The last stage of every answer: our OPT advertises dns.maxUdpSize, and a UDP answer larger than the
   * client's EDNS size or dns.maxUdpSize, whichever is smaller, becomes TC=1 (an uncapped 65535 made a
   * 47-byte query draw 61 KB: a ×1300 amplifier).
   */
  private fit(answer: Buffer, q: Query, peer: DnsPeer, s: DnsGeneration): Buffer {
    const max = s.config.dns.maxUdpSize;
    if (q.hasOpt && max !== EDNS_UDP_SIZE) advertiseUdpSize(answer, q.questionEnd, max);
    if (peer.proto !== 'udp') return answer;
    const limit = Math.min(q.udpSize, max);
    return answer.length > limit ? truncateForUdp(answer, limit) : answer;
  }

  /** CNAME/DNAME/HTTPS-SVCB targets against name rules, then (lists with IP rules only) addresses against IP rules. */
  private inspectAnswer(resolved: ResolvedAnswer, group: GroupPolicy, s: DnsGeneration): Hit | null {
    const blocked = s.policy.firstBlockedAlias(group, resolved.aliasTargets);
    if (blocked >= 0) {
      const target = resolved.aliasTargets[blocked]!;
      const ruleId = s.policy.blockingRuleId(group, target);
      return { rule: s.policy.describe(ruleId), list: s.policy.listOfRule(ruleId), cname: target };
    }
    const answer = resolved.bytes;
    if (group.ipMask === 0 || answer.length < 12 || answer.readUInt16BE(6) === 0) return null;
    const id = firstMatchingAddress(answer, s.policy.ipIndex, group.ipMask, group.allowMask);
    if (id < 0) return null;
    const d = s.policy.describeIp(id);
    return { rule: d, list: d.listIndex, address: lastMatchedAddress() };
  }

  /** `s` is the generation that decided: after a reload during an upstream wait, rule ids of the new one differ. */
  private sinkhole(buf: Buffer, q: Query, peer: DnsPeer, who: ClientIdentity, group: GroupPolicy, s: DnsGeneration, hit: Hit): Buffer {
    this.stats.count(peer.proto, 'blocked');
    this.blockLog.block(peer.proto, this.hitEvent(q, peer, who, group, s, hit));
    const answers = this.sinkholesFor(s);
    return this.fit((answers.lists[hit.list] ?? answers.groups[group.index]!).answer(buf, q), q, peer, s);
  }

  private sinkholesFor(s: DnsGeneration): Sinkholes {
    if (this.sinkholesOf === s) return this.sinkholes;
    // a block decided by the previous generation (its upstream wait spanned a reload) keeps that one's answers
    let built = this.sinkholesByGeneration.get(s);
    if (built === undefined) {
      const ttl = s.config.dns.blockedTtl;
      built = {
        groups: s.policy.groups.map((g) => new Sinkhole(g.mode, ttl)),
        lists: s.policy.listModes.map((m) => (m === undefined ? undefined : new Sinkhole(m, ttl))),
      };
      this.sinkholesByGeneration.set(s, built);
    }
    this.sinkholesOf = s;
    this.sinkholes = built;
    return built;
  }

  /** Audit mode: the block that would have happened, logged (the block log counts it); the caller answers as allowed. */
  private audit(q: Query, peer: DnsPeer, who: ClientIdentity, group: GroupPolicy, s: DnsGeneration, hit: Hit): void {
    this.blockLog.audit(peer.proto, this.hitEvent(q, peer, who, group, s, hit));
  }

  private hitEvent(q: Query, peer: DnsPeer, who: ClientIdentity, group: GroupPolicy, s: DnsGeneration, hit: Hit): LogEvent {
    const ev = this.event(q, peer, who, group, hit.rule, s.policy.answerFor(group, hit.list));
    if (hit.cname !== undefined) ev.cname = hit.cname;
    if (hit.address !== undefined) ev.address = hit.address;
    return ev;
  }

  private event(q: Query, peer: DnsPeer, who: ClientIdentity, group: GroupPolicy, rule: RuleInfo | null, answer: string): LogEvent {
    return {
      client: peer.address,
      group: group.name,
      via: who.via,
      device: who.device ?? null,
      name: q.qname,
      qtype: qtypeName(q.qtype),
      rule: rule?.rule ?? null,
      list: rule?.list ?? null,
      answer,
    };
  }

  private malformed(buf: Buffer, peer: DnsPeer, failure: ParseFailure): Buffer | null {
    if (failure === ParseFailure.Drop) {
      this.stats.count(peer.proto, 'dropped');
      return null;
    }
    if (failure === ParseFailure.NotImp) {
      this.stats.count(peer.proto, 'notimp');
      return errorReply(buf, null, RCODE.NOTIMP);
    }
    this.stats.count(peer.proto, 'formerr');
    return errorReply(buf, null, RCODE.FORMERR);
  }
}
