/**
 * Response rate limiting for UDP answers (config `dns.rateLimit`), BIND RRL's semantics per client
 * prefix (/24, /56: net/client-prefix.ts): each prefix has a token bucket of `responsesPerSecond`
 * (refilled continuously, holding at most one second's worth); an answer past it is dropped, except
 * every `slip`-th one, which goes out as a bare TC=1 answer so a real client behind a forged flood
 * retries over TCP (where forging is impossible) and still gets its answer. slip 0 drops all, slip 1
 * truncates all. Only UDP is limited: a TCP answer cannot be aimed at a forged victim.
 *
 * Allocation-free on the hot path: a fixed open-addressing table in typed arrays. A prefix not found
 * within PROBE slots takes the probed slot idle the longest; an evicted prefix comes back with a full
 * bucket, so a flood of more than TABLE_SIZE active prefixes is limited less, never a quiet one more.
 */
import { clientPrefixKey } from '../net/client-prefix.js';

export interface RateLimitConfig {
  /** 0: no limit. */
  readonly responsesPerSecond: number;
  readonly slip: number;
}

export const RateVerdict = { Send: 0, Drop: 1, Slip: 2 } as const;
export type RateVerdict = (typeof RateVerdict)[keyof typeof RateVerdict];

const TABLE_SIZE = 1 << 14;
const PROBE = 8;

export class ResponseRateLimiter {
  /** Answers not sent because their prefix was over the limit. */
  dropped = 0;
  /** Answers replaced by a bare TC=1 one. */
  slipped = 0;
  private readonly hi = new Uint32Array(TABLE_SIZE);
  private readonly lo = new Uint32Array(TABLE_SIZE);
  private readonly used = new Uint8Array(TABLE_SIZE);
  private readonly tokens = new Float64Array(TABLE_SIZE);
  /** performance.now() of the last refill; also what eviction compares. */
  private readonly seen = new Float64Array(TABLE_SIZE);
  /** Over-limit answers of the prefix so far (wrapping), for every slip-th. */
  private readonly over = new Uint32Array(TABLE_SIZE);
  private readonly key = new Uint32Array(2);
  private readonly perMs: number;

  constructor(readonly config: RateLimitConfig, private readonly now: () => number = () => performance.now()) {
    this.perMs = config.responsesPerSecond / 1000;
  }

  get enabled(): boolean {
    return this.config.responsesPerSecond > 0;
  }

  /** Takes one answer from `address`'s prefix bucket and says what to do with it. */
  check(address: string): RateVerdict {
    if (this.config.responsesPerSecond <= 0 || !clientPrefixKey(address, this.key)) return RateVerdict.Send;
    const now = this.now();
    const i = this.slot(this.key[0]!, this.key[1]!, now);
    const burst = this.config.responsesPerSecond;
    const tokens = Math.min(burst, this.tokens[i]! + (now - this.seen[i]!) * this.perMs);
    this.seen[i] = now;
    if (tokens >= 1) {
      this.tokens[i] = tokens - 1;
      return RateVerdict.Send;
    }
    this.tokens[i] = tokens;
    const n = ++this.over[i]!;
    if (this.config.slip > 0 && n % this.config.slip === 0) {
      this.slipped++;
      return RateVerdict.Slip;
    }
    this.dropped++;
    return RateVerdict.Drop;
  }

  private slot(hi: number, lo: number, now: number): number {
    let h = Math.imul(hi ^ Math.imul(lo, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 15;
    const start = h & (TABLE_SIZE - 1);
    let victim = start;
    for (let p = 0; p < PROBE; p++) {
      const i = (start + p) & (TABLE_SIZE - 1);
      if (this.used[i] === 0) return this.claim(i, hi, lo, now);
      if (this.hi[i] === hi && this.lo[i] === lo) return i;
      if (this.seen[i]! < this.seen[victim]!) victim = i;
    }
    return this.claim(victim, hi, lo, now);
  }

  private claim(i: number, hi: number, lo: number, now: number): number {
    this.used[i] = 1;
    this.hi[i] = hi;
    this.lo[i] = lo;
    this.tokens[i] = this.config.responsesPerSecond;
    this.seen[i] = now;
    this.over[i] = 0;
    return i;
  }
}
