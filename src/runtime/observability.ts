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
import type { ListStatus as KeptList } from '../lists/list-keeper.js';
import { isUrlSource } from '../lists/source.js';
import { AdminServer, type AdminHooks, type CheckRequest, type Readiness } from '../admin/server.js';
import { MetricsRegistry, type ListStatus, type Sample, type UdpBatchCounters } from '../metrics/registry.js';
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
  /** The list keeper's per-source view (serve); without it readiness falls back to the rule counts of lists(). */
  listStatus?(): readonly KeptList[];
  listeners(): readonly ListenerState[];
  /** Counters the front ends keep that this build may not have yet: absent means no series. */
  proxyRequests?(): Iterable<Sample>;
  certRejections?(): Iterable<Sample>;
  accessRefusals?(): Iterable<Sample>;
  udpBatch?(): UdpBatchCounters | null;
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
      udpBatch: () => view().udpBatch?.() ?? null,
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
    this.admin = await listenAdmin(config, adminHooks, log);
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
    const kept = view.listStatus?.();
    if (kept === undefined) {
      for (const list of view.lists()) if (list.ruleCount === 0) notReady.push(`lists.${list.name}: no rules`);
    }
    // Not ready while a URL source has never had a good copy (it will, once its host answers). A list
    // whose sources all loaded is ready even with no rules: waiting would not change it (README "Readiness").
    for (const list of kept ?? []) {
      if (list.ready) continue;
      const missing = list.sources.filter((s) => s.state === 'missing')
        .map((s) => `${s.source}${s.lastError === null ? ' (no download yet)' : ` (${s.lastError})`}`);
      notReady.push(`lists.${list.name}: no rules yet, no good copy of ${missing.join(', ')}`);
    }
    return { ready: notReady.length === 0, notReady };
  }

  /** SIGTERM: /readyz turns 503 at once so load balancers stop sending before the listeners close. */
  beginStop(): void {
    this.stopping = true;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.admin?.close();
    this.admin = null;
  }

  private loaded(lists: readonly LoadedList[]): void {
    const now = nowSeconds();
    // when a list of files last loaded (even empty: that is what its files hold); URL lists have the keeper's times
    for (const l of lists) this.listLoaded.set(l.name, now);
  }

  /** Last success: the keeper's (the oldest of a list's URL sources, fresh or from stateDir), else when it last loaded. */
  private listStatus(): ListStatus[] {
    const kept = new Map((this.observed?.listStatus?.() ?? []).map((k) => [k.name, k]));
    return (this.observed?.lists() ?? []).map((l) => {
      const k = kept.get(l.name);
      const lastSuccessSeconds = k !== undefined && k.sources.some((s) => isUrlSource(s.source))
        ? (k.lastSuccess === null ? null : k.lastSuccess / 1000) : this.listLoaded.get(l.name) ?? null;
      return { name: l.name, rules: l.ruleCount, lastSuccessSeconds };
    });
  }
}

/** Starts an admin listener on admin.listen; a bind failure is a config error naming the key. */
export async function listenAdmin(config: AdminConfig, hooks: AdminHooks, log: AppLogger): Promise<AdminServer> {
  const { host, port } = config.listen;
  const shown = host.includes(':') ? `[${host}]` : host;
  let admin: AdminServer;
  try {
    admin = await AdminServer.listen(config.listen, hooks, { token: config.token, log });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ConfigError('admin.listen', `cannot listen on ${shown}:${port}: ${code}`, { cause: err });
  }
  log.info({ listen: `${shown}:${admin.port}` }, 'admin listening');
  return admin;
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
