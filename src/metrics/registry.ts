/**
 * Prometheus metrics (SPEC.md "Metrics"). The hot paths keep counting into plain numbers and typed
 * arrays where they count (DnsStats, AnswerCache.hits, EventTally, …); this registry only reads
 * them, in each metric's collect() at scrape time, so a query never pays for a label lookup.
 * One prom-client Registry per runtime and nothing registered at import time: two runtimes in one
 * process (tests, `check` beside `serve`) never share or double-register state.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Aggregator } from 'prom-client';
import { registerHostileLoadMetrics, type HostileLoadSnapshot } from './hostile-load.js';

/** One series: label values in the metric's label order, then the value. */
export type Sample = readonly [...labels: string[], value: number];

export interface ListStatus {
  readonly name: string;
  readonly rules: number;
  /** Unix seconds of the last load whose every source was read fresh; null while only a fallback copy serves. */
  readonly lastSuccessSeconds: number | null;
}

/**
 * What the runtime exposes to the registry: each function reads live counters when called and
 * yields one Sample per series. Sources that do not exist in this build yield nothing.
 */
export interface MetricsSources {
  /** [proto, result, count] */
  dnsQueries(): Iterable<Sample>;
  /** [group, list, proto, count] */
  blocks(): Iterable<Sample>;
  /** [group, list, count] */
  audits(): Iterable<Sample>;
  cache(): { readonly hits: number; readonly misses: number; readonly entries: number };
  /** [result, count] */
  proxyRequests(): Iterable<Sample>;
  lists(): Iterable<ListStatus>;
  reloads(): { readonly ok: number; readonly failed: number; readonly lastOk: boolean; readonly lastSuccessSeconds: number };
  /** [reason, count] */
  certRejections(): Iterable<Sample>;
  /** [proto, count]: queries and requests refused because the client is outside access.allow */
  accessRefusals(): Iterable<Sample>;
  blockLog(): { readonly written: number; readonly suppressed: number };
  /** The batched UDP path's counters summed over the DNS UDP sockets; null where node:dgram serves. */
  udpBatch?(): UdpBatchCounters | null;
  ready(): boolean;
  /** Rate limiting, kernel UDP drops, upstream health, connection caps (metrics/hostile-load.ts); null: no series. */
  hostileLoad?(): Promise<HostileLoadSnapshot | null>;
}

export interface UdpBatchCounters {
  readonly batches: number;
  readonly datagrams: number;
  readonly truncated: number;
  readonly sendErrors: number;
  readonly recvErrors: number;
}

/** Upstream round trips: a few ms on a LAN resolver, up to the per-try timeout (default 1.5 s). */
const UPSTREAM_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class MetricsRegistry {
  readonly registry = new Registry();
  private readonly upstreamSeconds: Histogram<'upstream'>;
  /** Per-upstream children bound once, so an upstream try costs one observe, not a label lookup. */
  private readonly upstreamTimers = new Map<string, { observe(seconds: number): void }>();
  private readonly upstreamTries = new Map<string, { ok: number; failed: number }>();

  constructor(sources: MetricsSources, opts: { version: string; processMetrics?: boolean }) {
    const r = this.registry;
    samples(r, 'appfence_dns_queries_total', 'DNS queries answered (or dropped), by transport and result.', ['proto', 'result'], () => sources.dnsQueries());
    samples(r, 'appfence_blocks_total', 'Blocked DNS queries and proxy requests, by group, deciding list and protocol.', ['group', 'list', 'proto'], () => sources.blocks());
    samples(r, 'appfence_audits_total', 'Queries a group in audit mode would have blocked (answered normally).', ['group', 'list'], () => sources.audits());
    samples(r, 'appfence_proxy_requests_total', 'Proxy requests and CONNECT tunnels, by result.', ['result'], () => sources.proxyRequests());
    samples(r, 'appfence_cert_rejections_total', 'Device certificates presented but not used for identity, by reason.', ['reason'], () => sources.certRejections());
    samples(r, 'appfence_access_refusals_total', 'Queries and requests refused because the client is outside access.allow.', ['proto'], () => sources.accessRefusals());
    samples(r, 'appfence_cache_hits_total', 'Answers served from the cache.', [], () => [[sources.cache().hits]]);
    samples(r, 'appfence_cache_misses_total', 'Cache lookups that went upstream.', [], () => [[sources.cache().misses]]);
    samples(r, 'appfence_cache_entries', 'Answers held in the cache now.', [], () => [[sources.cache().entries]], 'gauge');
    samples(r, 'appfence_reloads_total', 'Reloads (SIGHUP or POST /reload), by result.', ['result'], () => {
      const { ok, failed } = sources.reloads();
      return [['ok', ok], ['failed', failed]];
    }, 'counter', 'max'); // with dns.workers every worker reloads once per SIGHUP: one reload, not N
    samples(r, 'appfence_config_last_reload_successful', '1 when the last reload succeeded (or none was tried), 0 when it failed and the previous configuration still runs.', [],
      () => [[sources.reloads().lastOk ? 1 : 0]], 'gauge', 'min');
    samples(r, 'appfence_config_last_reload_success_timestamp_seconds', 'When the running configuration was loaded.', [],
      () => [[sources.reloads().lastSuccessSeconds]], 'gauge', 'min');
    samples(r, 'appfence_list_rules', 'Rules loaded per list.', ['list'], () => [...sources.lists()].map((l) => [l.name, l.rules] as const), 'gauge', 'min');
    samples(r, 'appfence_list_last_success_timestamp_seconds', 'When every source of the list was last read fresh (no fallback copy).', ['list'],
      () => [...sources.lists()].flatMap((l) => (l.lastSuccessSeconds === null ? [] : [[l.name, l.lastSuccessSeconds] as const])), 'gauge', 'min');
    samples(r, 'appfence_block_log_lines_total', 'Lines handed to the block log.', [], () => [[sources.blockLog().written]]);
    samples(r, 'appfence_block_log_suppressed_total', 'Block-log lines lost because the destination could not keep up (each reported in a "suppressed" event).', [],
      () => [[sources.blockLog().suppressed]]);
    samples(r, 'appfence_upstream_tries_total', 'Tries sent to each upstream resolver, by result.', ['upstream', 'result'], () =>
      [...this.upstreamTries].flatMap(([name, t]) => [[name, 'ok', t.ok], [name, 'failed', t.failed]] as const));
    samples(r, 'appfence_ready', '1 when every listener is bound and every list has rules (as GET /readyz).', [], () => [[sources.ready() ? 1 : 0]], 'gauge', 'min');
    const batch = (pick: (c: UdpBatchCounters) => number) => (): Sample[] => {
      const c = sources.udpBatch?.() ?? null;
      return c === null ? [] : [[pick(c)]];
    };
    samples(r, 'appfence_udp_batches_total', 'recvmmsg calls that returned datagrams on the batched UDP path (dns.udpBatch).', [], batch((c) => c.batches));
    samples(r, 'appfence_udp_batch_datagrams_total', 'Datagrams received on the batched UDP path.', [], batch((c) => c.datagrams));
    samples(r, 'appfence_udp_batch_truncated_total', 'Datagrams longer than a receive slot (MSG_TRUNC) on the batched UDP path: queries among them get FORMERR.', [], batch((c) => c.truncated));
    samples(r, 'appfence_udp_batch_errors_total', 'Failed recvmmsg/sendmmsg calls on the batched UDP path, by direction.', ['direction'], () => {
      const c = sources.udpBatch?.() ?? null;
      return c === null ? [] : [['receive', c.recvErrors], ['send', c.sendErrors]];
    });
    new Gauge({ name: 'appfence_build_info', help: 'Version of the running appfence and Node.js (value always 1).', labelNames: ['version', 'node'], registers: [r], aggregator: 'first' })
      .set({ version: opts.version, node: process.versions.node }, 1);
    this.upstreamSeconds = new Histogram({
      name: 'appfence_upstream_duration_seconds',
      help: 'Duration of each upstream try, successful or not (a failed try usually lasts dns.timeoutMs).',
      labelNames: ['upstream'],
      buckets: UPSTREAM_BUCKETS,
      registers: [r],
    });
    if (sources.hostileLoad !== undefined) registerHostileLoadMetrics(r, () => sources.hostileLoad!());
    if (opts.processMetrics !== false) {
      collectDefaultMetrics({ register: r });
      // Gauges named *_total break Prometheus naming rules (promtool check metrics); the same
      // numbers are exposed per type as nodejs_active_handles, nodejs_active_requests, nodejs_active_resources.
      for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) r.removeSingleMetric(name);
    }
  }

  /** Called for every upstream try (cache misses only, which wait on a network round trip anyway). */
  upstreamTry(upstream: string, ok: boolean, durationMs: number): void {
    let timer = this.upstreamTimers.get(upstream);
    let tries = this.upstreamTries.get(upstream);
    if (timer === undefined || tries === undefined) {
      timer = this.upstreamSeconds.labels(upstream);
      tries = { ok: 0, failed: 0 };
      this.upstreamTimers.set(upstream, timer);
      this.upstreamTries.set(upstream, tries);
    }
    timer.observe(durationMs / 1000);
    if (ok) tries.ok++;
    else tries.failed++;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/**
 * A counter (or gauge) whose series are read from `read` at scrape: collect() replaces every value
 * with the live one, so prom-client's own increment path is never on a hot path. `aggregator` says
 * how the primary combines the workers' values with dns.workers > 1 (prom-client's
 * AggregatorRegistry): counts add up; readiness and config state take the worst worker.
 */
export function samples(registry: Registry, name: string, help: string, labelNames: readonly string[],
  read: () => Iterable<Sample> | Promise<Iterable<Sample>>, type: 'counter' | 'gauge' = 'counter', aggregator: Aggregator = 'sum'): void {
  const fill = async (metric: Counter | Gauge, set: (labels: Record<string, string>, value: number) => void): Promise<void> => {
    const got = await read();
    metric.reset();
    for (const sample of got) {
      const labels: Record<string, string> = {};
      labelNames.forEach((label, i) => { labels[label] = String(sample[i]); });
      set(labels, Number(sample[labelNames.length]));
    }
  };
  if (type === 'counter') {
    new Counter({ name, help, labelNames, registers: [registry], aggregator, collect(this: Counter) {
      return fill(this, (labels, value) => this.inc(labels, value));
    } });
  } else {
    new Gauge({ name, help, labelNames, registers: [registry], aggregator, collect(this: Gauge) {
      return fill(this, (labels, value) => this.set(labels, value));
    } });
  }
}
