/**
 * The one resolver shared by the DNS front end and the proxy: cache first, then the upstreams.
 * A hit is returned synchronously (no promise on the hot path); concurrent misses for one cache key
 * share a single upstream exchange, except for queries whose name is ambiguous (Query.cacheable false),
 * which always get their own. Every caller gets bytes for its own query (ID, RD/CD, question case,
 * OPT presence). Knows nothing of clients or policy: CNAME inspection happens above it, on every answer.
 * Upstream traffic goes through our UpstreamClient, not dns2's client (libs.md §1.7).
 */
import { UpstreamError } from '../errors.js';
import { readAnswer } from '../wire/answer.js';
import { addressQuery, answerAddresses } from '../wire/address.js';
import { RCODE, TYPE_A, TYPE_AAAA } from '../wire/codes.js';
import { readQuery, type Query } from '../wire/read.js';
import { cacheKey, type AnswerCache, type StoredAnswer } from './cache.js';
import type { UpstreamClient } from './upstream.js';

/** What the proxy gets for a host name: the addresses to connect to and the alias chain to inspect. */
export interface Lookup {
  readonly addresses: readonly string[];
  /** CNAME/DNAME targets in the answer, normalised: the proxy checks them as DNS's CNAME inspection does. */
  readonly aliasTargets: readonly string[];
  readonly rcode: number;
}

/** The bytes for one query and the alias targets CNAME inspection checks (read once, when stored). */
export interface ResolvedAnswer {
  readonly bytes: Buffer;
  readonly aliasTargets: readonly string[];
}

/** What a front end asks of the resolver; an interface so the pipeline's unit tests can hand in a fake. */
export interface Resolver {
  /** DNS front end: the client's query bytes in, bytes with its ID out; a cache hit is synchronous. */
  resolve(query: Buffer, q: Query): Buffer | Promise<Buffer>;
  /**
   * As resolve(), with the answer's CNAME/DNAME targets for inspection. `keep`, when given, is called
   * on a miss only, before anything waits, for query bytes that outlive the call (the caller's may not:
   * a batched UDP slot is reused once the pipeline returns).
   */
  resolveAnswer(query: Buffer, q: Query, keep?: () => Buffer): ResolvedAnswer | Promise<ResolvedAnswer>;
  /** Proxy: A/AAAA of a host through the same cache and upstreams, with the alias chain to inspect. */
  lookup(name: string, family: 4 | 6): Promise<Lookup>;
}

export class CachingResolver implements Resolver {
  private readonly inFlight = new Map<string, Promise<StoredAnswer>>();

  constructor(readonly cache: AnswerCache, readonly upstream: UpstreamClient) {}

  resolve(query: Buffer, q: Query): Buffer | Promise<Buffer> {
    const answer = this.resolveAnswer(query, q);
    return answer instanceof Promise ? answer.then((a) => a.bytes) : answer.bytes;
  }

  /** As resolve(), with the answer's alias targets; a hit is synchronous. The cache key is built once per query. */
  resolveAnswer(query: Buffer, q: Query, keep?: () => Buffer): ResolvedAnswer | Promise<ResolvedAnswer> {
    const key = q.cacheable ? cacheKey(q) : null;
    const stored = this.cache.lookup(key);
    if (stored !== undefined) return { bytes: this.cache.answer(stored, query, q), aliasTargets: stored.aliasTargets };
    const kept = keep?.() ?? query;
    return this.shared(key, kept, q).then((s) => ({ bytes: this.cache.answer(s, kept, q), aliasTargets: s.aliasTargets }));
  }

  /** One upstream exchange per key at a time; an ambiguous name (key null) always gets its own. */
  private shared(key: string | null, query: Buffer, q: Query): Promise<StoredAnswer> {
    if (key === null) return this.fetch(query, q, null);
    let shared = this.inFlight.get(key);
    if (shared === undefined) {
      shared = this.fetch(query, q, key);
      this.inFlight.set(key, shared);
      const done = (): void => {
        this.inFlight.delete(key);
      };
      shared.then(done, done);
    }
    return shared;
  }

  /**
   * A/AAAA of a host through the same cache, single-flight and upstreams as DNS clients' queries, so a
   * name the proxy looks up is the name every DNS client sees (never the OS resolver). `name` is
   * lowercase without trailing dot; one that cannot be a DNS name answers FORMERR without a query.
   * Upstream failure rejects (UpstreamError), as it makes DNS answer SERVFAIL.
   */
  async lookup(name: string, family: 4 | 6): Promise<Lookup> {
    const qtype = family === 4 ? TYPE_A : TYPE_AAAA;
    const query = addressQuery(name, qtype);
    const q = query === null ? null : readQuery(query);
    if (query === null || q === null || typeof q === 'number') return { addresses: [], aliasTargets: [], rcode: RCODE.FORMERR };
    const { bytes, aliasTargets } = await this.resolveAnswer(query, q);
    return { addresses: answerAddresses(bytes, qtype), aliasTargets, rcode: bytes[3]! & 0xf };
  }

  private async fetch(query: Buffer, q: Query, key: string | null): Promise<StoredAnswer> {
    const reply = await this.upstream.exchange(query, q);
    const info = readAnswer(reply);
    // An answer we cannot walk cannot be inspected for blocked CNAMEs either: never pass it on.
    if (info === null) throw new UpstreamError('upstream', 'format', `unreadable answer for ${q.qname}`);
    return this.cache.store(q, reply, info, key);
  }
}
