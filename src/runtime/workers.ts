/**
 * dns.workers > 1: the primary process forks N workers (node:cluster); each runs a whole Runtime
 * and binds the UDP and TCP listeners itself with SO_REUSEPORT, so the kernel spreads clients over
 * them (DoT and DoH listeners go through cluster's shared handle). The primary serves no DNS: it
 * owns the signals (SIGHUP fans out to every worker, SIGTERM/SIGINT drain every worker, then exit),
 * restarts a worker that dies, and serves the admin API by asking the workers (ask(); runtime/pool-admin.ts).
 * Workers share the block-log destination; its writer never tears a line (log/batch-writer.ts).
 * Each worker keeps its own cache: a name is fetched from upstream once per worker.
 */
import cluster, { type Worker } from 'node:cluster';
import dgram from 'node:dgram';
import net from 'node:net';
import { availableParallelism } from 'node:os';
import type { Config } from '../config/types.js';
import type { AppLogger } from '../log/logger.js';

/** dns.workers as a process count: "auto" = one per core. */
export function workerCount(config: Config): number {
  const w = config.dns.workers;
  return w === 'auto' ? availableParallelism() : w;
}

/** The primary fixes port-0 listen addresses (tests) to one port every worker binds: "p1,p2" in dns.listen order. */
export const WORKER_PORTS_ENV = 'APPFENCE_DNS_PORTS';

/** What the primary asks a worker over the cluster IPC channel (admin requests it cannot answer itself). */
export type AskKind = 'metrics' | 'readiness' | 'reload' | 'check';
export interface PrimaryMessage {
  readonly type: 'ask';
  readonly id: number;
  readonly what: AskKind;
  readonly request?: unknown;
}

/** An error crossing the IPC channel: the message, and what the admin API needs to map it to a status. */
export interface WorkerError {
  readonly message: string;
  readonly keyPath?: string;
  readonly exitCode?: number;
}

/** What a worker tells the primary: that it listens, and its answers. */
export type WorkerMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'answer'; readonly id: number; readonly value?: unknown; readonly error?: WorkerError };

/** One worker's answer to an ask. */
export interface WorkerAnswer<T> {
  /** cluster worker id */
  readonly worker: number;
  readonly value?: T;
  readonly error?: WorkerError;
}

/** Restarts of a worker that dies within this long of starting wait this long first (a crash loop must not spin). */
const RESTART_BACKOFF_MS = 1000;
/** SIGTERM: a worker drains for up to 5 s (Runtime.stop); after this it is killed. */
const STOP_TIMEOUT_MS = 10_000;

export class WorkerPool {
  private readonly started = new Map<number, number>(); // cluster worker id → start time
  private readonly ready = new Set<number>();
  private stopping = false;
  private readonly pending = new Map<number, (m: WorkerMessage & { type: 'answer' }) => void>();
  private nextAskId = 0;
  restarts = 0;

  private constructor(private readonly count: number, private readonly log: AppLogger) {}

  /**
   * Forks `count` workers with `env` (the listen ports fixed) and resolves once every one is
   * listening; rejects with the exit code of a worker that failed to start (a bad list, a port in use).
   */
  static async start(count: number, env: Record<string, string>, log: AppLogger,
    run: { exec?: string; args?: string[] } = {}): Promise<WorkerPool> {
    const pool = new WorkerPool(count, log);
    // default: the command line this process was started with (`appfence serve …`); tests name dist/cli.js
    cluster.setupPrimary({ silent: false, ...run });
    await Promise.all(Array.from({ length: count }, () => pool.fork(env, true)));
    cluster.on('exit', (worker, code, signal) => pool.exited(worker, code, signal, env));
    return pool;
  }

  /** Workers listening now. */
  get readyCount(): number {
    return this.ready.size;
  }

  get workers(): Worker[] {
    return Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
  }

  private fork(env: Record<string, string>, initial: boolean): Promise<void> {
    const worker = cluster.fork(env);
    this.started.set(worker.id, Date.now());
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'answer') this.pending.get(m.id)?.(m);
    });
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => reject(Object.assign(new Error(`worker exited with ${code} before listening`), { exitCode: code ?? 1 }));
      worker.once('exit', onExit);
      worker.on('message', (m: WorkerMessage) => {
        if (m.type !== 'ready') return;
        worker.off('exit', onExit);
        this.ready.add(worker.id);
        this.log.info({ worker: worker.id, workerPid: worker.process.pid, initial }, 'worker started');
        resolve();
      });
    });
  }

  private exited(worker: Worker, code: number | null, signal: string | null, env: Record<string, string>): void {
    const startedAt = this.started.get(worker.id) ?? 0;
    this.started.delete(worker.id);
    this.ready.delete(worker.id);
    if (this.stopping) return;
    this.log.error({ worker: worker.id, workerPid: worker.process.pid, code, signal }, 'worker exited; starting another');
    this.restarts++;
    const delay = Date.now() - startedAt < RESTART_BACKOFF_MS ? RESTART_BACKOFF_MS : 0;
    setTimeout(() => {
      if (this.stopping) return;
      this.fork(env, false).catch((err: unknown) => {
        if (!this.stopping) this.log.error({ err }, 'worker restart failed');
      });
    }, delay);
  }

  /** SIGHUP: every worker reloads (and reopens the block log) on its own. */
  reload(): void {
    for (const w of this.workers) w.process.kill('SIGHUP');
  }

  /** SIGTERM: every worker drains and exits; resolves with 0 when all exited 0. */
  async stop(): Promise<number> {
    this.stopping = true;
    const workers = this.workers;
    const codes = await Promise.all(workers.map((w) => new Promise<number>((resolve) => {
      // one still starting (a restart) has nothing to drain: however it ends is fine
      const judged = this.ready.has(w.id);
      if (w.process.exitCode !== null) return resolve(judged ? w.process.exitCode : 0);
      const timer = setTimeout(() => w.process.kill('SIGKILL'), STOP_TIMEOUT_MS);
      w.once('exit', (code) => {
        clearTimeout(timer);
        resolve(judged ? code ?? 1 : 0);
      });
      w.process.kill('SIGTERM');
    })));
    return codes.every((c) => c === 0) ? 0 : 1;
  }

  /**
   * Asks every listening worker (or only the first, `one`) and gathers their answers; a worker that
   * does not answer within `timeoutMs` (busy, dying) is left out: callers compare the count with size.
   */
  async ask<T>(what: AskKind, request: unknown, timeoutMs: number, one = false): Promise<WorkerAnswer<T>[]> {
    const asked = this.workers.filter((w) => this.ready.has(w.id) && w.isConnected());
    const answers = await Promise.all((one ? asked.slice(0, 1) : asked).map((w) => new Promise<WorkerAnswer<T> | null>((resolve) => {
      const id = this.nextAskId++;
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(null);
      }, timeoutMs);
      this.pending.set(id, (m) => {
        clearTimeout(timer);
        this.pending.delete(id);
        resolve({ worker: w.id, ...(m.error === undefined ? { value: m.value as T } : { error: m.error }) });
      });
      w.send({ type: 'ask', id, what, request } satisfies PrimaryMessage);
    })));
    return answers.filter((a): a is WorkerAnswer<T> => a !== null);
  }

  get size(): number {
    return this.count;
  }
}

/**
 * Listen addresses with port 0 (tests) get a concrete free port here, in the primary: each worker
 * binding port 0 itself would get a port of its own. UDP and TCP must both be free on it.
 */
export async function fixPorts(addrs: readonly { host: string; port: number }[]): Promise<number[]> {
  const ports: number[] = [];
  for (const a of addrs) {
    if (a.port !== 0) {
      ports.push(a.port);
      continue;
    }
    for (let tries = 0; ; tries++) {
      const udp = dgram.createSocket(net.isIPv6(a.host) ? 'udp6' : 'udp4');
      const port = await new Promise<number>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(0, a.host, () => resolve(udp.address().port));
      });
      const tcpFree = await new Promise<boolean>((resolve) => {
        const s = net.createServer().once('error', () => resolve(false)).listen(port, a.host, () => s.close(() => resolve(true)));
      });
      await new Promise<void>((r) => udp.close(() => r()));
      if (tcpFree || tries > 20) {
        ports.push(port);
        break;
      }
    }
  }
  return ports;
}
