/**
 * Folds block-log events into one row per device: the certificate CN when the device was identified
 * by certificate, else the client address. Counts blocks and audits (a group in audit mode logs what
 * it would have blocked), first/last seen, the names, and the app/web signals (classify.ts).
 */
import { patternOf, signalOf, type Pattern } from './classify.js';

export interface ReportFilter {
  /** Events before this time (ms since epoch) are skipped. */
  sinceMs?: number;
  group?: string;
}

export interface DeviceRow {
  device: string;
  via: string;
  groups: string[];
  clients: string[];
  blocks: number;
  audits: number;
  firstSeen: string;
  lastSeen: string;
  distinctNames: number;
  topNames: { name: string; count: number }[];
  appSignals: number;
  webSignals: number;
  pattern: Pattern;
}

export interface Report {
  devices: DeviceRow[];
  events: number;
  /** Events the server could not write (its "suppressed" lines): the report undercounts by this much. */
  suppressed: number;
  /** Lines that are not block-log JSON (other logs mixed in, a cut last line). */
  skippedLines: number;
}

interface Acc {
  device: string;
  via: string;
  groups: Set<string>;
  clients: Set<string>;
  blocks: number;
  audits: number;
  first: number;
  last: number;
  names: Map<string, number>;
  app: number;
  web: number;
}

const TOP_NAMES = 5;

export class ReportBuilder {
  private readonly devices = new Map<string, Acc>();
  private events = 0;
  private suppressed = 0;
  private skipped = 0;

  constructor(private readonly filter: ReportFilter = {}) {}

  add(line: string): void {
    let ev: Record<string, unknown>;
    try {
      ev = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.skipped++;
      return;
    }
    if (typeof ev !== 'object' || ev === null) { this.skipped++; return; }
    const event = ev['event'];
    const ms = typeof ev['time'] === 'string' ? Date.parse(ev['time']) : typeof ev['time'] === 'number' ? ev['time'] : NaN;
    if (event === 'suppressed') {
      if (this.inWindow(ms) && typeof ev['count'] === 'number') this.suppressed += ev['count'];
      return;
    }
    if (event !== 'block' && event !== 'audit') {
      if (event !== 'query') this.skipped++;
      return;
    }
    const name = ev['name'];
    const client = ev['client'];
    const group = typeof ev['group'] === 'string' ? ev['group'] : '';
    if (typeof name !== 'string' || typeof client !== 'string' || Number.isNaN(ms)) { this.skipped++; return; }
    if (!this.inWindow(ms)) return;
    if (this.filter.group !== undefined && group !== this.filter.group) return;
    const cert = ev['via'] === 'cert' && typeof ev['device'] === 'string' && ev['device'] !== '';
    const key = cert ? `cert:${ev['device'] as string}` : `ip:${client}`;
    let acc = this.devices.get(key);
    if (acc === undefined) {
      acc = { device: cert ? (ev['device'] as string) : client, via: cert ? 'cert' : 'address', groups: new Set(), clients: new Set(),
        blocks: 0, audits: 0, first: ms, last: ms, names: new Map(), app: 0, web: 0 };
      this.devices.set(key, acc);
    }
    this.events++;
    if (event === 'block') acc.blocks++;
    else acc.audits++;
    if (group !== '') acc.groups.add(group);
    acc.clients.add(client);
    if (ms < acc.first) acc.first = ms;
    if (ms > acc.last) acc.last = ms;
    acc.names.set(name, (acc.names.get(name) ?? 0) + 1);
    const signal = signalOf(name);
    if (signal === 'app') acc.app++;
    else if (signal === 'web') acc.web++;
  }

  private inWindow(ms: number): boolean {
    return this.filter.sinceMs === undefined || (!Number.isNaN(ms) && ms >= this.filter.sinceMs);
  }

  build(): Report {
    const devices = [...this.devices.values()].map((a): DeviceRow => ({
      device: a.device,
      via: a.via,
      groups: [...a.groups].sort(),
      clients: [...a.clients].sort(),
      blocks: a.blocks,
      audits: a.audits,
      firstSeen: new Date(a.first).toISOString(),
      lastSeen: new Date(a.last).toISOString(),
      distinctNames: a.names.size,
      topNames: [...a.names].sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1)).slice(0, TOP_NAMES)
        .map(([name, count]) => ({ name, count })),
      appSignals: a.app,
      webSignals: a.web,
      pattern: patternOf(a.app, a.web),
    }));
    // Devices that show the app first (what IT acts on), then by how much they tried.
    const rank = { app: 0, web: 1, other: 2 } as const;
    devices.sort((x, y) => rank[x.pattern] - rank[y.pattern] || (y.blocks + y.audits) - (x.blocks + x.audits) ||
      (x.device < y.device ? -1 : 1));
    return { devices, events: this.events, suppressed: this.suppressed, skippedLines: this.skipped };
  }
}
