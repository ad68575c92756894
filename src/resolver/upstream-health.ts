/**
 * What the upstream client knows about each upstream, as Unbound's infrastructure cache does: a
 * smoothed round-trip time, consecutive failures, and a capped exponential backoff with probes.
 *
 * - A try that got an answer (any rcode: the server is alive) feeds the smoothed RTT and clears
 *   failures. A timeout or network error counts as a failure; FAILURES_TO_BACK_OFF in a row put the
 *   upstream in backoff for BACKOFF_BASE_MS.
 * - In backoff the upstream gets no client queries. Once its backoff has run out, ONE probe (a copy of
 *   a real question, sent beside the normal exchange so no client waits on it) is allowed; a probe
 *   answer brings it back, a failed probe doubles the backoff up to BACKOFF_MAX_MS.
 * - Failures of tries already in flight when backoff started do not escalate it: a burst of 500
 *   timeouts from one outage is one failure episode, not 500 doublings.
 * - `order()` prefers the fastest healthy upstreams, keeping the configured order among those within
 *   RTT_BAND_MS of the best (so equal upstreams keep the operator's preference and nobody flaps on
 *   noise); upstreams in backoff come only when no healthy one is left.
 */

/** Consecutive failed tries (timeouts, network errors) before an upstream is backed off. */
export const FAILURES_TO_BACK_OFF = 3;
export const BACKOFF_BASE_MS = 1000;
export const BACKOFF_MAX_MS = 60_000;
/** Upstreams whose smoothed RTT is within this of the fastest count as equally fast. */
export const RTT_BAND_MS = 50;
/**
 * A smoothed RTT not refreshed for this long is forgotten (Unbound's infra-host-ttl, shorter): an
 * upstream that sank in the order because of one bad minute gets measured again.
 */
export const RTT_FORGET_MS = 60_000;
/** Weight of a new sample in the smoothed RTT (RFC 6298 uses 1/8; Unbound's infra cache is close). */
const SRTT_GAIN = 0.125;

export type HealthState = 'healthy' | 'backoff' | 'probing';

/** A plain snapshot for metrics and logs (appfence_upstream_* in the admin API). */
export interface UpstreamHealthView {
  readonly upstream: string;
  readonly state: HealthState;
  /** Smoothed RTT in ms; -1 before the first answer. */
  readonly srttMs: number;
  readonly consecutiveFailures: number;
  /** ms left in backoff (0 when healthy or due for a probe). */
  readonly backoffMs: number;
  /** Tries waiting on this upstream now. */
  readonly outstanding: number;
  readonly tries: number;
  readonly failures: number;
  readonly probes: number;
  /** Tries not sent because this upstream had `maxOutstandingPerUpstream` waiting already. */
  readonly overCap: number;
}

export class UpstreamHealth {
  srttMs = -1;
  /** performance.now() of the last RTT sample. */
  sampledAt = 0;
  consecutiveFailures = 0;
  /** Current backoff length; 0 when healthy. */
  backoffMs = 0;
  /** performance.now() at which a probe may go; meaningful only while backoffMs > 0. */
  retryAt = 0;
  probing = false;
  outstanding = 0;
  tries = 0;
  failures = 0;
  probes = 0;
  overCap = 0;

  constructor(readonly name: string) {}

  get healthy(): boolean {
    return this.backoffMs === 0;
  }

  /** In backoff, backoff over, no probe out: the next query may probe it. */
  dueForProbe(now: number): boolean {
    return this.backoffMs > 0 && !this.probing && now >= this.retryAt;
  }

  answered(rttMs: number, now: number): void {
    this.tries++;
    this.sampledAt = now;
    this.srttMs = this.srttMs < 0 ? rttMs : this.srttMs + SRTT_GAIN * (rttMs - this.srttMs);
    this.consecutiveFailures = 0;
    this.backoffMs = 0;
    this.probing = false;
  }

  /**
   * Silence is not an RTT sample: one lost datagram must not reorder the upstreams. Repeated
   * failures are what the backoff is for.
   */
  failed(now: number): void {
    this.tries++;
    this.failures++;
    this.consecutiveFailures++;
    if (this.backoffMs === 0 && this.consecutiveFailures >= FAILURES_TO_BACK_OFF) this.backOff(now, BACKOFF_BASE_MS);
  }

  probeFailed(now: number): void {
    this.probing = false;
    if (this.backoffMs > 0) this.backOff(now, Math.min(this.backoffMs * 2, BACKOFF_MAX_MS));
  }

  view(now: number, outstanding = this.outstanding): UpstreamHealthView {
    return {
      upstream: this.name,
      state: this.probing ? 'probing' : this.healthy ? 'healthy' : 'backoff',
      srttMs: this.srttMs < 0 ? -1 : Math.round(this.srttMs * 10) / 10,
      consecutiveFailures: this.consecutiveFailures,
      backoffMs: this.healthy ? 0 : Math.max(0, Math.round(this.retryAt - now)),
      outstanding,
      tries: this.tries,
      failures: this.failures,
      probes: this.probes,
      overCap: this.overCap,
    };
  }

  private backOff(now: number, ms: number): void {
    this.backoffMs = ms;
    this.retryAt = now + ms;
  }
}

/**
 * Indexes of `health` in the order to try: healthy upstreams within RTT_BAND_MS of the fastest
 * (configured order), then the other healthy ones by RTT, then — only if none is healthy — the
 * backed-off ones, soonest retry first. An upstream not yet (or no longer) measured counts as the
 * fastest, so it gets a try and a measurement.
 */
export function tryOrder(health: readonly UpstreamHealth[], now: number): number[] {
  let best = Infinity;
  for (const h of health) {
    if (h.srttMs >= 0 && now - h.sampledAt > RTT_FORGET_MS) h.srttMs = -1;
    if (h.healthy) best = Math.min(best, Math.max(h.srttMs, 0));
  }
  const fast: number[] = [];
  const slow: number[] = [];
  for (let i = 0; i < health.length; i++) {
    const h = health[i]!;
    if (!h.healthy) continue;
    if (Math.max(h.srttMs, 0) <= best + RTT_BAND_MS) fast.push(i);
    else slow.push(i);
  }
  if (slow.length > 1) slow.sort((a, b) => health[a]!.srttMs - health[b]!.srttMs);
  const order = fast.concat(slow);
  if (order.length > 0) return order;
  return health.map((_, i) => i).sort((a, b) => health[a]!.retryAt - health[b]!.retryAt);
}
