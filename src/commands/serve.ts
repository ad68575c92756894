/** `appfence serve`: start the runtime, SIGHUP → reload, SIGTERM/SIGINT → drain, flush, exit 0. */
import { parse } from './args.js';
import { configFrom } from './load.js';
import { Runtime } from '../runtime/runtime.js';
import { createAppLogger } from '../log/logger.js';

export async function serveCommand(args: readonly string[]): Promise<number> {
  const { values } = parse(args, { config: { type: 'string', short: 'c' } }, false);
  const config = await configFrom(values.config);
  const log = createAppLogger(config.log.level);
  // Last line of defence: a bug reached through one client's query is logged, not fatal to everyone.
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  const runtime = await Runtime.start(config, log, { load: () => configFrom(values.config) });
  log.info({ config: config.source }, 'appfence started');

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
  return -1;
}
