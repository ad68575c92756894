/**
 * `appfence serve`: start the runtime, SIGHUP → reload, SIGTERM/SIGINT → drain, flush, exit 0.
 * With dns.workers > 1 this process becomes the primary of a WorkerPool (runtime/workers.ts) and
 * every worker runs this same command as a cluster worker: a whole runtime on SO_REUSEPORT sockets.
 */
import cluster from 'node:cluster';
import { parse } from './args.js';
import { configFrom } from './load.js';
import { Runtime } from '../runtime/runtime.js';
import { WorkerPool, WORKER_PORTS_ENV, fixPorts, workerCount, type WorkerMessage } from '../runtime/workers.js';
import { answerPrimary } from '../runtime/worker-link.js';
import { PoolAdmin } from '../runtime/pool-admin.js';
import { createAppLogger, type AppLogger } from '../log/logger.js';
import { logConfigWarnings } from '../config/warnings.js';
import type { Config } from '../config/types.js';


export async function serveCommand(args: readonly string[]): Promise<number> {
  const { values } = parse(args, { config: { type: 'string', short: 'c' } }, false);
  const load = async (): Promise<Config> => withFixedPorts(await configFrom(values.config));
  const config = await load();
  const log = createAppLogger(config.log.level);
  // Last line of defence: a bug reached through one client's query is logged, not fatal to everyone.
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  // the warnings `appfence validate` prints: valid, but almost surely not what was meant
  // (again after every successful reload: the runtime logs them, or with dns.workers the primary, once)
  if (!cluster.isWorker) logConfigWarnings(log, config);
  const workers = workerCount(config);
  if (cluster.isPrimary && workers > 1) return primary(config, workers, log, load);

  const runtime = await Runtime.start(config, log, { load, reusePort: cluster.isWorker, reloadWarnings: !cluster.isWorker });
  if (cluster.isWorker) {
    answerPrimary(runtime);
    process.send?.({ type: 'ready' } satisfies WorkerMessage);
  } else {
    log.info({ config: config.source }, 'appfence started');
  }

  // Runtime.reload is single-flight: a SIGHUP during a reload queues one more, none is dropped.
  process.on('SIGHUP', () => {
    log.info({ config: config.source }, 'reloading');
    void runtime.reload();
  });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    runtime.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // a worker whose primary is gone (killed) stops too instead of serving unsupervised
  if (cluster.isWorker) process.on('disconnect', () => stop('primary gone'));
  return -1;
}

/** The primary: forks the workers, owns the signals, serves the admin API from what the workers say. */
async function primary(config: Config, count: number, log: AppLogger, load: () => Promise<Config>): Promise<number> {
  const ports = await fixPorts(config.dns.listen);
  let pool: WorkerPool;
  try {
    pool = await WorkerPool.start(count, { [WORKER_PORTS_ENV]: ports.join(',') }, log);
  } catch (err) {
    // a worker could not start (a port in use, an unreadable list): it said why on stderr
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
    return (err as { exitCode?: number }).exitCode ?? 1;
  }
  // each worker reloads on its own and says whether it succeeded; the warnings are the config's, so said once here
  const warn = (): void => void load().then((next) => logConfigWarnings(log, next), () => undefined);
  let admin: PoolAdmin | null = null;
  if (config.admin !== undefined) {
    try {
      admin = await PoolAdmin.start(config.admin, pool, log.child({ component: 'admin' }), warn);
    } catch (err) {
      await pool.stop(); // the port is taken: no worker keeps serving without the admin API asked for
      throw err;
    }
  }
  log.info({ config: config.source, workers: count, listen: config.dns.listen.map((a, i) => `${a.host}:${ports[i]}`) }, 'appfence started');
  process.on('SIGHUP', () => {
    log.info({ config: config.source, workers: count }, 'reloading');
    pool.reload();
    warn();
  });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, workers: count }, 'stopping');
    admin?.beginStop();
    void pool.stop().then(async (code) => {
      await admin?.stop();
      process.exit(code);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  return -1;
}

function withFixedPorts(config: Config): Config {
  const fixed = process.env[WORKER_PORTS_ENV]?.split(',').map(Number);
  if (!cluster.isWorker || fixed === undefined) return config;
  return { ...config, dns: { ...config.dns, listen: config.dns.listen.map((a, i) => ({ ...a, port: fixed[i] ?? a.port })) } };
}
