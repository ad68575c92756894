/**
 * The admin API of the primary when dns.workers > 1: the same routes as one process
 * (admin/server.ts), each answered from the workers over the cluster channel.
 *   /metrics  every worker's registry as JSON, combined with prom-client's AggregatorRegistry
 *             (counters add up; readiness and config state take the worst worker: each metric's
 *             `aggregator` in metrics/registry.ts), plus the pool's own worker gauges
 *   /readyz   ready when every configured worker answers and says it is ready
 *   /reload   every worker reloads (the same single-flight path as SIGHUP); one failure → 422
 *   /check    the first worker answers (they all run the same configuration)
 */
import { AggregatorRegistry, Counter, Gauge, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { AdminConfig } from '../config/types.js';
import type { AppLogger } from '../log/logger.js';
import type { AdminHooks, AdminServer, Readiness } from '../admin/server.js';
import { AppfenceError, UsageError } from '../errors.js';
import { listenAdmin } from './observability.js';
import type { WorkerError, WorkerPool } from './workers.js';

/** A worker that takes longer than this to say its metrics or readiness is left out (and /readyz says so). */
const ASK_TIMEOUT_MS = 2000;
/** Reloads read lists (URLs with their own timeouts) and certificates. */
const RELOAD_TIMEOUT_MS = 120_000;

type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

export class PoolAdmin {
  private stopping = false;
  private readonly own = new Registry();

  private admin: AdminServer | null = null;

  /** `reloaded` runs after every worker reloaded (the config warnings are said once, here, not by each worker). */
  private constructor(private readonly pool: WorkerPool, private readonly reloaded: () => void) {
    new Gauge({ name: 'appfence_workers', help: 'DNS worker processes (dns.workers), by state: configured, or listening now.', labelNames: ['state'],
      registers: [this.own], collect(this: Gauge) {
        this.set({ state: 'configured' }, pool.size);
        this.set({ state: 'listening' }, pool.readyCount);
      } });
    new Counter({ name: 'appfence_worker_restarts_total', help: 'Workers that died and were started again by the primary.',
      registers: [this.own], collect(this: Counter) {
        this.reset();
        this.inc(pool.restarts);
      } });
  }

  static async start(config: AdminConfig, pool: WorkerPool, log: AppLogger, reloaded: () => void = () => undefined): Promise<PoolAdmin> {
    const admin = new PoolAdmin(pool, reloaded);
    admin.admin = await listenAdmin(config, admin.hooks(), log);
    return admin;
  }

  get port(): number {
    return this.admin?.port ?? 0;
  }

  /** SIGTERM: /readyz turns 503 at once; the listener closes when the workers have drained. */
  beginStop(): void {
    this.stopping = true;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.admin?.close();
    this.admin = null;
  }

  private hooks(): AdminHooks {
    return {
      metrics: () => this.metrics(),
      readiness: () => this.readiness(),
      reload: () => this.reload(),
      check: (request) => this.check(request),
    };
  }

  private async metrics(): Promise<{ contentType: string; body: string }> {
    const answers = await this.pool.ask<MetricsJson>('metrics', undefined, ASK_TIMEOUT_MS);
    const workers = answers.flatMap((a) => (a.value === undefined ? [] : [a.value]));
    const combined = Registry.merge([AggregatorRegistry.aggregate(workers), this.own]);
    return { contentType: combined.contentType, body: await combined.metrics() };
  }

  private async readiness(): Promise<Readiness> {
    const notReady: string[] = [];
    if (this.stopping) notReady.push('stopping: draining in-flight work');
    const answers = await this.pool.ask<Readiness>('readiness', undefined, ASK_TIMEOUT_MS);
    if (answers.length < this.pool.size) notReady.push(`dns.workers: ${answers.length} of ${this.pool.size} workers answering`);
    for (const a of answers) for (const line of a.value?.notReady ?? [a.error?.message ?? 'no answer']) notReady.push(`worker ${a.worker}: ${line}`);
    return { ready: notReady.length === 0, notReady };
  }

  private async reload(): Promise<Error | null> {
    const answers = await this.pool.ask<null>('reload', undefined, RELOAD_TIMEOUT_MS);
    const failed = answers.find((a) => a.error !== undefined)?.error;
    if (failed !== undefined) return asError(failed);
    if (answers.length < this.pool.size) return new Error(`reload: ${answers.length} of ${this.pool.size} workers answered; the others keep their configuration`);
    this.reloaded();
    return null;
  }

  private async check(request: unknown): Promise<unknown> {
    const [first] = await this.pool.ask<unknown>('check', request, ASK_TIMEOUT_MS, true);
    if (first === undefined) throw new AppfenceError('AF_ERR_WORKERS', 'no worker answered');
    if (first.error !== undefined) throw first.error.exitCode === 2 ? new UsageError(first.error.message) : asError(first.error);
    return first.value;
  }
}

/** A worker's error as the admin server expects it: the message, and keyPath when the config named one. */
function asError(e: WorkerError): Error {
  return Object.assign(new Error(e.message), e.keyPath === undefined ? {} : { keyPath: e.keyPath });
}
