/**
 * The shared answer cache (lru-cache) of raw upstream responses, keyed by qname + qtype + qclass + CD + DO.
 * Decides what is cacheable and for how long (config `dns.cache`: minTtl/maxTtl clamp, negativeTtl cap,
 * RFC 2308 negative TTL; a negative answer without SOA is never kept, RFC 2308 §5) and turns a stored
 * answer into the bytes for one query: its ID, RD/CD bits and question (0x20 case kept), TTLs decremented
 * by the time spent in the cache, OPT dropped for a client that sent none and added for one that did
 * (RFC 6891 §7). Holds answers, never decisions: policy re-checks every hit above it.
 * Raw bytes are patched, never re-encoded: dns2's encoder is slow and lossy (libs.md §1.3, §1.8).
 */
import { LRUCache } from 'lru-cache';
import type { CacheConfig } from '../config/types.js';
import type { AnswerInfo } from '../wire/answer.js';
import { HEADER_SIZE, type Query } from '../wire/read.js';
import { EDNS_UDP_SIZE, OPT_SIZE, writeOpt } from '../wire/write.js';
import { AD, CD, RCODE_NOERROR, RCODE_NXDOMAIN } from '../wire/codes.js';

/** A response as kept in the cache (or shared by coalesced queries): bytes plus where to patch them. */
export interface StoredAnswer {
  readonly bytes: Buffer;
  /** `now()` at store time, ms. */
  readonly storedAt: number;
  readonly expiresAt: number;
  readonly questionEnd: number;
  readonly optStart: number;
  readonly optEnd: number;
  readonly ttlOffsets: readonly number[];
  /** The answer's CNAME/DNAME targets, read once when stored: every hit is inspected without re-parsing. */
  readonly aliasTargets: readonly string[];
}

/** Byte budget per configured entry: typical answers are 100–300 B; a flood of 64 KB answers must not take GBs. */
const BYTES_PER_ENTRY = 1024;

/**
 * The cache (and coalescing) key: the answer depends on the name, type, class, whether validation was
 * disabled (CD=1 may return bogus data a CD=0 client must never see) and whether DNSSEC records were asked
 * for. Meaningless for a query that is not `cacheable`.
 */
export function cacheKey(q: Query): string {
  return q.qname + '\0' + (q.qtype * 262144 + q.qclass * 4 + (q.flags & CD ? 2 : 0) + (q.dnssecOk ? 1 : 0));
}

export class AnswerCache {
  hits = 0;
  misses = 0;
  private readonly lru: LRUCache<string, StoredAnswer> | null;

  /** `now` returns milliseconds on a monotonic clock (tests inject a fake one). */
  constructor(private readonly cfg: CacheConfig, private readonly now: () => number = () => performance.now()) {
    this.lru = cfg.maxEntries > 0
      ? new LRUCache<string, StoredAnswer>({
        max: cfg.maxEntries,
        maxSize: cfg.maxEntries * BYTES_PER_ENTRY,
        sizeCalculation: (v) => v.bytes.length || 1,
      })
      : null;
  }

  get size(): number {
    return this.lru?.size ?? 0;
  }

  get(query: Buffer, q: Query): Buffer | undefined {
    const stored = this.lookup(q.cacheable ? cacheKey(q) : null);
    return stored === undefined ? undefined : this.answer(stored, query, q);
  }

  /** The live entry under `key` (null: the query is not cacheable), counting the hit or miss. */
  lookup(key: string | null): StoredAnswer | undefined {
    const stored = key === null ? undefined : this.lru?.get(key);
    if (stored === undefined) {
      this.misses++;
      return undefined;
    }
    if (this.now() >= stored.expiresAt) {
      this.lru?.delete(key!);
      this.misses++;
      return undefined;
    }
    this.hits++;
    return stored;
  }

  set(q: Query, response: Buffer, info: AnswerInfo): void {
    this.store(q, response, info);
  }

  /**
   * Clamps the response's TTLs and keeps it when cacheable (the answer and the query); returns the stored form either way, so
   * coalesced queries are answered from exactly what later hits will see.
   */
  store(q: Query, response: Buffer, info: AnswerInfo, key: string | null = q.cacheable ? cacheKey(q) : null): StoredAnswer {
    const lifetime = this.lifetimeSeconds(info);
    const bytes = Buffer.from(response.subarray(0, info.end));
    // Clients get our EDNS payload size, not the upstream's (the OPT's class field).
    if (info.optStart >= 0) bytes.writeUInt16BE(EDNS_UDP_SIZE, info.optStart + 3);
    const positive = !info.negative;
    // Clients see what we keep: positive TTLs clamped like the entry, negative ones no longer than it.
    for (let i = 0; lifetime > 0 && i < info.ttlOffsets.length; i++) {
      const offset = info.ttlOffsets[i]!;
      const ttl = bytes.readUInt32BE(offset) & 0x7fffffff;
      bytes.writeUInt32BE(positive ? Math.min(Math.max(ttl, this.cfg.minTtl), this.cfg.maxTtl) : Math.min(ttl, lifetime), offset);
    }
    const storedAt = this.now();
    const stored: StoredAnswer = {
      bytes,
      storedAt,
      expiresAt: storedAt + lifetime * 1000,
      questionEnd: info.questionEnd,
      optStart: info.optStart,
      optEnd: info.optEnd,
      ttlOffsets: info.ttlOffsets,
      aliasTargets: info.aliasTargets,
    };
    if (lifetime > 0 && key !== null && this.lru !== null) this.lru.set(key, stored);
    return stored;
  }

  /**
   * Bytes of `stored` for this query: ID, RD and CD, AD only for a client that asked for AD or DO
   * (RFC 6840 §5.8), question, elapsed TTL, OPT exactly when the query had one.
   */
  answer(stored: StoredAnswer, query: Buffer, q: Query): Buffer {
    const src = stored.bytes;
    const strip = !q.hasOpt && stored.optStart >= 0;
    const add = q.hasOpt && stored.optStart < 0; // an upstream that ignored our OPT
    const cut = strip ? stored.optEnd - stored.optStart : 0;
    const out = Buffer.allocUnsafe(src.length - cut + (add ? OPT_SIZE : 0));
    if (strip) {
      src.copy(out, 0, 0, stored.optStart);
      src.copy(out, stored.optStart, stored.optEnd);
      out.writeUInt16BE(out.readUInt16BE(10) - 1, 10);
    } else {
      src.copy(out, 0);
    }
    if (add) {
      writeOpt(out, src.length, q.dnssecOk); // additional is the last section, stored bytes end at its last record
      out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
    }
    out.writeUInt16BE(q.id, 0);
    out[2] = (out[2]! & 0xfe) | ((q.flags >> 8) & 1);
    const keepAd = (q.flags & AD) !== 0 || q.dnssecOk;
    out[3] = (out[3]! & ~(CD | (keepAd ? 0 : AD))) | (q.flags & CD);
    if (stored.questionEnd === q.questionEnd) query.copy(out, HEADER_SIZE, HEADER_SIZE, q.questionEnd);
    const elapsed = Math.floor((this.now() - stored.storedAt) / 1000);
    if (elapsed > 0) {
      for (const offset of stored.ttlOffsets) {
        const at = strip && offset > stored.optStart ? offset - cut : offset;
        out.writeUInt32BE(Math.max(0, (src.readUInt32BE(offset) & 0x7fffffff) - elapsed), at);
      }
    }
    return out;
  }

  /** Seconds to keep `info`'s response; 0 = do not cache. */
  private lifetimeSeconds(info: AnswerInfo): number {
    if (info.tc || (info.rcode !== RCODE_NOERROR && info.rcode !== RCODE_NXDOMAIN)) return 0;
    if (info.negative) {
      // RFC 2308 §5: no SOA, no negative caching. It is also how a referral would look as NODATA.
      if (info.ttl < 0) return 0;
      return Math.min(info.ttl, this.cfg.negativeTtl, this.cfg.maxTtl);
    }
    if (info.ttl <= 0) return 0; // RFC 1035 §3.2.1: TTL 0 = use for this transaction only, even with minTtl
    return Math.min(Math.max(info.ttl, this.cfg.minTtl), this.cfg.maxTtl);
  }

  clear(): void {
    this.lru?.clear();
  }
}
