/**
 * The application log (operations: start-up, reloads, upstream trouble). It goes to stderr so
 * that stdout stays a clean stream of block-log JSON lines when `log.blocks` is `stdout`.
 * Components log through `logger.child({ component })`; messages are constant text, data in fields.
 */
import { pino, type Logger } from 'pino';
import type { LogConfig } from '../config/types.js';

export type AppLogger = Logger;

export function createAppLogger(level: LogConfig['level'] = 'info', destination: number | string = 2): AppLogger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ dest: destination, sync: true }),
  );
}
