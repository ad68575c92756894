/**
 * Clients refused by access.allow, told to the operator without a line per query: counts per /24
 * (IPv4) or /56 (IPv6) collected and written as one warn line per interval. A client that is
 * refused silently looks like "appfence is down" from the client's side; this says who and how often.
 * `total` is a plain counter for the metrics front end. Bounded: at most MAX_PREFIXES per report.
 */
import { isIPv4 } from 'node:net';
import type { AppLogger } from './logger.js';

const MAX_PREFIXES = 256;
export const REPORT_INTERVAL_MS = 60_000;

export class RefusedClients {
  /** Every refusal since start (all front ends). */
  total = 0;
  private readonly pending = new Map<string, number>();
  private others = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly log: AppLogger, private readonly intervalMs = REPORT_INTERVAL_MS) {}

  /** Counts one refused request; the first of an interval schedules the report. */
  note(address: string): void {
    this.total++;
    const prefix = prefixOf(address);
    const n = this.pending.get(prefix);
    if (n !== undefined) this.pending.set(prefix, n + 1);
    else if (this.pending.size < MAX_PREFIXES) this.pending.set(prefix, 1);
    else this.others++;
    if (this.timer === null) {
      this.timer = setTimeout(() => this.report(), this.intervalMs);
      this.timer.unref();
    }
  }

  /** Writes what was counted since the last report (also called on shutdown). */
  report(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending.size === 0) return;
    const clients = Object.fromEntries([...this.pending].sort((a, b) => b[1] - a[1]));
    let count = this.others;
    for (const n of this.pending.values()) count += n;
    this.log.warn({ count, clients, ...(this.others > 0 ? { unlisted: this.others } : {}) },
      'clients refused: not in access.allow');
    this.pending.clear();
    this.others = 0;
  }
}

/** "203.0.113.7" → "203.0.113.0/24"; "2001:db8:1:2ff::5" → "2001:db8:1:200::/56"; IPv4-mapped IPv6 as IPv4. */
export function prefixOf(address: string): string {
  const mapped = address.toLowerCase().startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address;
  if (isIPv4(mapped)) return `${mapped.slice(0, mapped.lastIndexOf('.'))}.0/24`;
  const groups = expandIPv6(mapped);
  if (groups === null) return address;
  const g3 = (groups[3]! & 0xff00).toString(16);
  return `${groups.slice(0, 3).map((g) => g.toString(16)).join(':')}:${g3}::/56`;
}

function expandIPv6(address: string): number[] | null {
  const bare = address.split('%')[0]!;
  const [head, tail] = bare.split('::') as [string, string | undefined];
  const parse = (s: string | undefined): number[] => (s === undefined || s === '' ? [] : s.split(':').map((h) => parseInt(h, 16)));
  const left = parse(head);
  const right = parse(tail);
  const groups = tail === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : null;
}
