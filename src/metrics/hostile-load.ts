/**
 * The hostile-load counters of issue 14 in /metrics: response rate limiting, kernel drops on the DNS
 * UDP sockets, upstream health and the outstanding-query caps, and the stream listeners' connection
 * caps. One snapshot per scrape (the kernel counter is a read of /proc/net/udp), shared by every
 * family below; the numbers come from plain counters the runtime keeps (structural types: this file
 * imports nothing of the front ends).
 */
import type { Registry } from 'prom-client';
import { samples, type Sample } from './registry.js';

export interface UpstreamHealthSample {
  readonly upstream: string;
  readonly state: string;
  /** ms; < 0 before the first answer */
  readonly srttMs: number;
  readonly consecutiveFailures: number;
  readonly backoffMs: number;
  readonly outstanding: number;
  readonly failures: number;
  readonly probes: number;
  readonly overCap: number;
}

export interface HostileLoadSnapshot {
  readonly rateLimit: { readonly dropped: number; readonly slipped: number };
  /** null where the kernel does not tell (not Linux). */
  readonly kernelReceiveDrops: number | null;
  readonly upstream: {
    readonly outstanding: number;
    readonly overCapServfails: number;
    readonly upstreams: readonly UpstreamHealthSample[];
    /** Only with dns.caseRandomization on. */
    readonly caseRandomization: readonly { readonly upstream: string; readonly active: boolean; readonly mismatches: number }[];
  };
  readonly connections: readonly { readonly proto: string; readonly evicted: number; readonly refusedClientCap: number; readonly refusedFull: number }[];
}

const STATES = ['healthy', 'backoff', 'probing'] as const;

// With dns.workers the primary combines workers' values (pool-admin.ts): per-upstream health takes the
// average RTT; a state, consecutive failures and backoff read 1 / the most when any worker has them;
// everything counted adds up.
export function registerHostileLoadMetrics(r: Registry, read: () => Promise<HostileLoadSnapshot | null>): void {
  // every family's collect() starts in the same turn of a scrape: they share one snapshot
  let shared: Promise<HostileLoadSnapshot | null> | null = null;
  const snapshot = (): Promise<HostileLoadSnapshot | null> => {
    if (shared === null) {
      shared = read();
      const clear = (): void => void setImmediate(() => { shared = null; });
      shared.then(clear, clear);
    }
    return shared;
  };
  const from = (pick: (s: HostileLoadSnapshot) => Iterable<Sample>) => async (): Promise<Iterable<Sample>> => {
    const s = await snapshot();
    return s === null ? [] : pick(s);
  };
  const perUpstream = (value: (u: UpstreamHealthSample) => number | null) => from((s) =>
    s.upstream.upstreams.flatMap((u) => { const v = value(u); return v === null ? [] : [[u.upstream, v] as const]; }));

  samples(r, 'appfence_rate_limit_responses_total', 'UDP answers over dns.rateLimit, by action: dropped, or slipped (sent as a bare TC=1 answer).', ['action'],
    from((s) => [['dropped', s.rateLimit.dropped], ['slipped', s.rateLimit.slipped]]));
  samples(r, 'appfence_udp_receive_drops_total', 'Datagrams the kernel dropped because a DNS UDP socket\'s receive queue was full (dns.udpBufferBytes).', [],
    from((s) => (s.kernelReceiveDrops === null ? [] : [[s.kernelReceiveDrops]])));
  samples(r, 'appfence_upstream_outstanding_queries', 'Client queries waiting on the upstreams now.', [], from((s) => [[s.upstream.outstanding]]), 'gauge');
  samples(r, 'appfence_upstream_overload_servfails_total', 'Queries answered SERVFAIL at once because too many already waited on the upstreams.', [],
    from((s) => [[s.upstream.overCapServfails]]));
  samples(r, 'appfence_upstream_srtt_seconds', 'Smoothed round-trip time of each upstream (absent before its first answer).', ['upstream'],
    perUpstream((u) => (u.srttMs < 0 ? null : u.srttMs / 1000)), 'gauge', 'average');
  samples(r, 'appfence_upstream_consecutive_failures', 'Timeouts and errors in a row from each upstream.', ['upstream'], perUpstream((u) => u.consecutiveFailures), 'gauge', 'max');
  samples(r, 'appfence_upstream_failures_total', 'Tries to each upstream that timed out or failed on the network.', ['upstream'], perUpstream((u) => u.failures));
  samples(r, 'appfence_upstream_probes_total', 'Probes sent to each upstream in backoff.', ['upstream'], perUpstream((u) => u.probes));
  samples(r, 'appfence_upstream_backoff_seconds', 'Time left before a backed-off upstream is probed again (0 when healthy).', ['upstream'],
    perUpstream((u) => u.backoffMs / 1000), 'gauge', 'max');
  samples(r, 'appfence_upstream_state', 'Health state of each upstream (1 for the current state).', ['upstream', 'state'],
    from((s) => s.upstream.upstreams.flatMap((u) => STATES.map((state) => [u.upstream, state, u.state === state ? 1 : 0] as const))), 'gauge', 'max');
  samples(r, 'appfence_upstream_outstanding_tries', 'Tries waiting on each upstream now.', ['upstream'], perUpstream((u) => u.outstanding), 'gauge');
  samples(r, 'appfence_upstream_over_cap_skips_total', 'Tries not sent to an upstream because it had its cap of outstanding queries.', ['upstream'],
    perUpstream((u) => u.overCap));
  samples(r, 'appfence_upstream_case_mismatches_total', 'Replies dropped because their question did not echo our 0x20 letter case (dns.caseRandomization).',
    ['upstream'], from((s) => s.upstream.caseRandomization.map((c) => [c.upstream, c.mismatches] as const)));
  samples(r, 'appfence_upstream_case_randomization', '1 while 0x20 is used with an upstream, 0 while it is off for one that did not echo case.', ['upstream'],
    from((s) => s.upstream.caseRandomization.map((c) => [c.upstream, c.active ? 1 : 0] as const)), 'gauge', 'min');
  samples(r, 'appfence_dns_connection_evictions_total', 'Idle TCP, DoT and DoH connections closed to make room on a full listener (RFC 7766 6.2.3).', ['proto'],
    from((s) => s.connections.map((c) => [c.proto, c.evicted] as const)));
  samples(r, 'appfence_dns_connections_refused_total', 'New connections refused: client_cap (its /24 or /56 at maxConnectionsPerClient) or full (every connection busy).',
    ['proto', 'reason'], from((s) => s.connections.flatMap((c) => [[c.proto, 'client_cap', c.refusedClientCap], [c.proto, 'full', c.refusedFull]] as const)));
}
