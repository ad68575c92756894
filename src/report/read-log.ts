/**
 * Block-log lines from files as logrotate leaves them: the live file, plain rotated copies
 * (blocks.log.1) and gzip-compressed ones (blocks.log.2.gz). Compression is recognised by the gzip
 * magic bytes, not the name, so `delaycompress` and odd suffixes read right. A truncated .gz (being
 * written by logrotate right now) yields what it holds and reports the damage instead of failing.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { AppfenceError } from '../errors.js';

export class LogReadError extends AppfenceError {
  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super('AF_ERR_LOG_READ', `${file}: ${message}`, { ...options, exitCode: 2 });
  }
}

async function isGzip(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await fh.read(head, 0, 2, 0);
    return bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

/** Every non-empty line of `input`; `onDamage` hears a stream error (e.g. a truncated gzip) once. */
async function* linesOf(input: Readable, onDamage: (err: Error) => void): AsyncGenerator<string> {
  const rl = createInterface({ input, crlfDelay: Infinity });
  try {
    // readline's iterator rejects with the source's error: the lines before it were already yielded.
    for await (const line of rl) if (line.length > 0) yield line;
  } catch (err) {
    onDamage(err instanceof Error ? err : new Error(String(err)));
  } finally {
    rl.close();
  }
}

export async function* readLogFile(file: string, onDamage: (file: string, err: Error) => void): AsyncGenerator<string> {
  let gzip: boolean;
  try {
    gzip = await isGzip(file);
  } catch (err) {
    throw new LogReadError(file, err instanceof Error ? err.message : String(err), { cause: err });
  }
  const raw = createReadStream(file);
  const input = gzip ? raw.pipe(createGunzip()) : raw;
  if (gzip) raw.on('error', (err) => input.destroy(err));
  yield* linesOf(input, (err) => onDamage(file, err));
}

export function readLogStream(input: Readable, name: string, onDamage: (file: string, err: Error) => void): AsyncGenerator<string> {
  return linesOf(input, (err) => onDamage(name, err));
}
