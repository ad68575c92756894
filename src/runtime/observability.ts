/**
 * What ops see of a running appfence: the metrics registry over the runtime's plain counters, the
 * readiness verdict, and the admin listener that serves both (plus /check and POST /reload). The
 * runtime owns the counters and hands this module read-only views of them; the admin server and
 * the registry import nothing of the front ends.
 */
import { readFileSync } from 'node:fs';
import type { AdminConfig } from '../config/types.js';
import type { AppLogger } from '../log/logger.js';
import type { BlockLog } from '../log/block-log.js';
import type { DnsStats } from '../dns/pipeline.js';
import { QUERY_RESULTS } from '../dns/pipeline.js';
import type { AnswerCache } from '../resolver/cache.js';
import type { LoadedList } from '../lists/load-lists.js';
import { AdminServer, type AdminHooks, type CheckRequest, type Readiness } from '../admin/server.js';
import { MetricsRegistry, type ListStatus, type Sample } from '../metrics/registry.js';
import type { HostileLoadSnapshot } from '../metrics/hostile-load.js';
import { ConfigError } from '../errors.js';
import { PACKAGE_ROOT } from '../config/default.js';

/** A listener as readiness sees it: its config key and whether it holds a bound socket. */
export interface ListenerState {
  readonly name: string;
  readonly bound: boolean;
}

/** Read-only views of the runtime, called at scrape or probe time (never on the query path). */
export interface ObservedRuntime {
  readonly dnsStats: DnsStats;
  readonly blockLog: BlockLog;
  cache(): AnswerCache;
  lists(): readonly LoadedList[];
  listeners(): readonly ListenerState[];
  /** Counters the front ends keep that this build may not have yet: absent means no series. */
  proxyRequests?(): Iterable<Sample>;
  certRejections?(): Iterable<Sample>;
  accessRefusals?(): Iterable<Sample>;
  hostileLoad?(): Promise<HostileLoadSnapshot>;
}

export interface ObservabilityHooks {
  reload(): Promise<Error | null>;
  check(request: CheckRequest): Promise<unknown>;
}

const DNS_PROTOS = ['udp', 'tcp', 'dot', 'doh'] as const;

export class Observability {
  readonly metrics: MetricsRegistry;
  private admin: AdminServer | null = null;
  private stopping = false;
  private readonly reloads = { ok: 0, failed: 0, lastOk: true, lastSuccessSeconds: nowSeconds() };
  /** list name → unix seconds of its last successful load. */
  private readonly listLoaded = new Map<string, number>();
  private observed: ObservedRuntime | null = null;

  /**
   * The registry exists before the runtime it observes (the upstream client built first feeds its
   * histogram); `observe` connects the views once the runtime stands.
   */
  constructor(opts: { processMetrics?: boolean } = {}) {
    const view = (): ObservedRuntime => {
      if (this.observed === null) throw new Error('Observability.observe() was not called');
      return this.observed;
    };
    this.metrics = new MetricsRegistry({
      dnsQueries: () => dnsQuerySamples(view().dnsStats),
      blocks: () => view().blockLog.blocks.entries(),
      audits: () => view().blockLog.audits.byList(),
      cache: () => {
        const c = view().cache();
        return { hits: c.hits, misses: c.misses, entries: c.size };
      },
      proxyRequests: () => view().proxyRequests?.() ?? [],
      lists: () => this.listStatus(),
      reloads: () => this.reloads,
      certRejections: () => view().certRejections?.() ?? [],
      accessRefusals: () => view().accessRefusals?.() ?? [],
      blockLog: () => ({ written: view().blockLog.written, suppressed: view().blockLog.suppressedTotal }),
      ready: () => this.readiness().ready,
      hostileLoad: () => this.observed?.hostileLoad?.() ?? Promise.resolve(null),
    }, { version: packageVersion(), ...(opts.processMetrics === undefined ? {} : { processMetrics: opts.processMetrics }) });
  }

  observe(view: ObservedRuntime): void {
    this.observed = view;
    this.loaded(view.lists());
  }

  /** Starts the admin listener; a bind failure is a config error naming admin.listen. */
  async start(config: AdminConfig, hooks: ObservabilityHooks, log: AppLogger): Promise<void> {
    const adminHooks: AdminHooks = {
      metrics: async () => ({ contentType: this.metrics.contentType, body: await this.metrics.text() }),
      readiness: () => this.readiness(),
      reload: () => hooks.reload(),
      check: (request) => hooks.check(request),
    };
    const { host, port } = config.listen;
    try {
      this.admin = await AdminServer.listen(config.listen, adminHooks, { token: config.token, log });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new ConfigError('admin.listen', `cannot listen on ${host.includes(':') ? `[${host}]` : host}:${port}: ${code}`, { cause: err });
    }
    log.info({ listen: `${host.includes(':') ? `[${host}]` : host}:${this.admin.port}` }, 'admin listening');
  }

  get adminPort(): number {
    return this.admin?.port ?? 0;
  }

  /** Records a reload's outcome for appfence_reloads_total and friends. */
  reloaded(err: Error | null, lists: readonly LoadedList[]): void {
    if (err !== null) {
      this.reloads.failed++;
      this.reloads.lastOk = false;
      return;
    }
    this.reloads.ok++;
    this.reloads.lastOk = true;
    this.reloads.lastSuccessSeconds = nowSeconds();
    this.loaded(lists);
  }

  readiness(): Readiness {
    const notReady: string[] = [];
    if (this.stopping) notReady.push('stopping: draining in-flight work');
    const view = this.observed;
    if (view === null) return { ready: false, notReady: ['starting'] };
    for (const l of view.listeners()) if (!l.bound) notReady.push(`${l.name}: not bound`);
    for (const list of view.lists()) if (list.ruleCount === 0) notReady.push(`lists.${list.name}: no rules`);
    return { ready: notReady.length === 0, notReady };
  }

  /** SIGTERM: /readyz turns 503 at once so load balancers stop sending before the listeners close. */
  beginStop(): void {
    this.stopping = true;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.admin === null) return;
    const closed = this.admin.stopAccepting();
    this.admin.closeConnections();
    await closed;
    this.admin = null;
  }

  private loaded(lists: readonly LoadedList[]): void {
    const now = nowSeconds();
    // A URL source that failed falls back to its last good copy with a warning; its list still
    // counts as loaded here. TODO(lifecycle): per-source success times once the state dir keeps them.
    for (const l of lists) if (l.ruleCount > 0) this.listLoaded.set(l.name, now);
  }

  private listStatus(): ListStatus[] {
    return (this.observed?.lists() ?? []).map((l) => ({ name: l.name, rules: l.ruleCount, lastSuccessSeconds: this.listLoaded.get(l.name) ?? null }));
  }
}

function* dnsQuerySamples(stats: DnsStats): Generator<Sample> {
  for (const proto of DNS_PROTOS) for (const result of QUERY_RESULTS) yield [proto, result, stats.get(proto, result)];
}

function nowSeconds(): number {
  return Date.now() / 1000;
}

let version: string | undefined;
function packageVersion(): string {
  version ??= (JSON.parse(readFileSync(`${PACKAGE_ROOT}package.json`, 'utf8')) as { version: string }).version;
  return version;
}
