/**
 * `appfence tail [--from-start] [--group G] [--device CN] [--client IP] [FILE]`: the block log, one
 * readable line per event. Follows FILE from its end as it grows, across renames and truncation;
 * without FILE reads stdin to its end. Without filters, lines that are not block-log JSON are
 * printed as they are, so nothing is hidden.
 */
import { createInterface } from 'node:readline';
import { open, stat, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { parse } from './args.js';

export function formatEvent(line: string): string {
  let ev: Record<string, unknown>;
  try {
    ev = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (typeof ev !== 'object' || ev === null || typeof ev['event'] !== 'string') return line;
  const time = typeof ev['time'] === 'string' ? ev['time'] : typeof ev['time'] === 'number' ? new Date(ev['time']).toISOString() : '-';
  const s = (k: string): string => (ev[k] === undefined || ev[k] === null ? '-' : String(ev[k]));
  if (ev['event'] === 'suppressed') return `${time}  !! ${s('count')} events not written (logging could not keep up)`;
  const who = ev['device'] ? `${s('group')} (${s('via')} ${s('device')})` : `${s('group')} (${s('via')})`;
  const what = ev['qtype'] === undefined ? s('name') : `${s('name')} ${s('qtype')}`;
  const why = ev['rule'] === null || ev['rule'] === undefined ? '' : `  [${s('list')}: ${s('rule')}${ev['cname'] ? ` via CNAME ${s('cname')}` : ''}]`;
  return `${time}  ${String(ev['event']).toUpperCase().padEnd(5)}  ${s('proto').padEnd(4)}  ${s('client')}  ${who}  ${what} → ${s('answer')}${why}`;
}

/** --group, --device, --client: an event is shown when every given field equals its value. */
export interface TailFilter {
  readonly group?: string;
  readonly device?: string;
  readonly client?: string;
}

/** The line to print for one log line, or null when the filter hides it ("suppressed" notices always show). */
export function render(line: string, filter: TailFilter): string | null {
  const keys = (['group', 'device', 'client'] as const).filter((k) => filter[k] !== undefined);
  if (keys.length > 0) {
    let ev: unknown;
    try {
      ev = JSON.parse(line);
    } catch {
      return null;
    }
    if (typeof ev !== 'object' || ev === null) return null;
    const e = ev as Record<string, unknown>;
    if (e['event'] !== 'suppressed' && !keys.every((k) => e[k] === filter[k])) return null;
  }
  return formatEvent(line);
}

async function printLines(input: Readable, filter: TailFilter): Promise<void> {
  const rl = createInterface({ input, crlfDelay: Infinity });
  for await (const line of rl) {
    const out = line.length > 0 ? render(line, filter) : null;
    if (out !== null) process.stdout.write(out + '\n');
  }
}

/**
 * Follows `file` as `tail -F` does: from its end unless `fromStart`; after a rename (logrotate)
 * the old file is read to its end and the new one from its start; a truncated file from its start.
 */
async function follow(file: string, fromStart: boolean, filter: TailFilter, pollMs: number): Promise<never> {
  const buf = Buffer.alloc(64 * 1024);
  let partial = '';
  let fh: FileHandle | undefined;
  let ino = -1;
  let position = 0;
  const emit = (text: string): void => {
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const out = line.length > 0 ? render(line, filter) : null;
      if (out !== null) process.stdout.write(out + '\n');
    }
  };
  const drain = async (): Promise<void> => {
    if (fh === undefined) return;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, position);
      if (bytesRead === 0) return;
      position += bytesRead;
      emit(buf.toString('utf8', 0, bytesRead));
    }
  };
  let first = true;
  for (;;) {
    const now = await stat(file).catch(() => undefined);
    if (now !== undefined && now.ino !== ino) {
      await drain(); // what was written to the old file before the rename
      await fh?.close();
      fh = await open(file, 'r').catch(() => undefined);
      ino = fh === undefined ? -1 : now.ino;
      position = first && !fromStart ? now.size : 0;
      partial = '';
      if (first) process.stderr.write(`appfence tail: following ${file} ${fromStart ? 'from its start' : 'from its end (--from-start replays it)'}\n`);
      first = false;
    } else if (now !== undefined && now.size < position) {
      position = 0; // truncated in place (copytruncate)
      partial = '';
    }
    await drain();
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

export async function tailCommand(args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    'from-start': { type: 'boolean' },
    group: { type: 'string' },
    device: { type: 'string' },
    client: { type: 'string' },
  }, true);
  const filter: TailFilter = {
    ...(values.group !== undefined ? { group: values.group } : {}),
    ...(values.device !== undefined ? { device: values.device } : {}),
    ...(values.client !== undefined ? { client: values.client } : {}),
  };
  const file = positionals[0];
  if (file === undefined || file === '-') {
    await printLines(process.stdin, filter);
    return 0;
  }
  return follow(file, values['from-start'] === true, filter, 250);
}
