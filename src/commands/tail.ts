/**
 * `appfence tail [FILE]`: the block log, one readable line per event. Follows FILE as it grows
 * (and starts over when it is truncated or rotated); without FILE reads stdin to its end.
 * Lines that are not block-log JSON are printed as they are, so nothing is hidden.
 */
import { createInterface } from 'node:readline';
import { open, stat } from 'node:fs/promises';
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

async function printLines(input: Readable): Promise<void> {
  const rl = createInterface({ input, crlfDelay: Infinity });
  for await (const line of rl) if (line.length > 0) process.stdout.write(formatEvent(line) + '\n');
}

async function follow(file: string, pollMs: number): Promise<never> {
  let position = 0;
  let partial = '';
  const buf = Buffer.alloc(64 * 1024);
  for (;;) {
    const size = await stat(file).then((s) => s.size, () => 0);
    if (size < position) position = 0; // truncated or replaced by rotation
    if (size > position) {
      const fh = await open(file, 'r');
      try {
        while (position < size) {
          const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - position), position);
          if (bytesRead === 0) break;
          position += bytesRead;
          const lines = (partial + buf.toString('utf8', 0, bytesRead)).split('\n');
          partial = lines.pop() ?? '';
          for (const line of lines) if (line.length > 0) process.stdout.write(formatEvent(line) + '\n');
        }
      } finally {
        await fh.close();
      }
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

export async function tailCommand(args: readonly string[]): Promise<number> {
  const { positionals } = parse(args, {}, true);
  const file = positionals[0];
  if (file === undefined || file === '-') {
    await printLines(process.stdin);
    return 0;
  }
  return follow(file, 250);
}
