/**
 * The block log: one JSON line per blocked query (and, with `log.queries`, per allowed one), with
 * exactly SPEC.md's fields, byte for byte what pino wrote before (`time`, `event`, `proto`, then the
 * event's fields in order). Lines go through a BatchWriter (one write per event-loop turn, async,
 * with a ceiling); when the destination cannot keep up, lines beyond the ceiling are counted rather
 * than queued without bound, and a `{"event":"suppressed","count":N}` line says how many were
 * lost — never silently.
 *
 * pino is bypassed here (it stays the app log): its per-line work — child bindings, a key-by-key
 * serialiser, and sonic-boom re-measuring its pending chunk on every write — was a quarter of a
 * blocked query's CPU. The fixed fields are one cached prefix and the event one JSON.stringify,
 * which escapes exactly as pino does for every string the resolver can produce.
 */
import { PROTOS, type Proto, type Via } from '../net/peer.js';
import { BatchWriter } from './batch-writer.js';
import { EventTally } from './event-tally.js';

/** The per-event fields; `time`, `event` and `proto` are added by the log. */
export interface LogEvent {
  client: string;
  group: string;
  via: Via;
  device: string | null;
  name: string;
  qtype?: string;
  rule: string | null;
  list: string | null;
  answer: string;
  /** For CNAME inspection: the alias target (CNAME, DNAME, HTTPS/SVCB TargetName) that matched the rule. */
  cname?: string;
  /** For IP rules: the answer address (A, AAAA, ipv4hint/ipv6hint) inside the rule's range. */
  address?: string;
}

export interface BlockLogOptions {
  /** "stdout" or a file path (appended; the folder is created). */
  destination: string;
  /** Buffered bytes beyond which lines are dropped and counted. */
  maxBufferBytes?: number;
  /** How often a pending suppressed count is reported. */
  reportIntervalMs?: number;
  /** Write each line before returning (tests read the file right after a query). */
  sync?: boolean;
}

let lastMs = -1;
let lastTime = '';
/** Dozens of events share a millisecond under load; toISOString once per millisecond, not per line. Opens the line. */
function isoTimeField(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastTime = `{"time":"${new Date(now).toISOString()}"`;
  }
  return lastTime;
}

export type EventKind = 'block' | 'query' | 'audit';

/** `,"event":"block","proto":"udp",` for every kind × proto: serialised once, not per line. */
const PREFIXES = Object.fromEntries((['block', 'query', 'audit'] as const).map((event) => [event,
  Object.fromEntries(PROTOS.map((proto) => [proto, `,"event":"${event}","proto":"${proto}",`]))])) as Record<EventKind, Record<Proto, string>>;

export class BlockLog {
  private readonly out: BatchWriter;
  private readonly timer: NodeJS.Timeout;
  private suppressed = 0;
  /** Events logged (written, queued or counted as suppressed), for metrics and tests. */
  written = 0;
  suppressedTotal = 0;
  /** Block and audit events by group × list × proto, read by /metrics (counted where every front end reports). */
  readonly blocks = new EventTally();
  readonly audits = new EventTally();

  constructor(opts: BlockLogOptions) {
    this.out = new BatchWriter({
      destination: opts.destination,
      maxBufferBytes: opts.maxBufferBytes ?? 4 * 1024 * 1024,
      sync: opts.sync ?? false,
      // an unwritable file or closed pipe must not crash the resolver: it shows up as suppressed lines
      onLost: (lines) => this.lost(lines),
    });
    this.timer = setInterval(() => this.reportSuppressed(), opts.reportIntervalMs ?? 1000);
    this.timer.unref();
  }

  block(proto: Proto, ev: LogEvent): void {
    if (ev.list !== null) this.blocks.add(ev.group, ev.list, proto);
    this.log('block', proto, ev);
  }

  /** A group in audit mode: the block that would have happened, answered normally. */
  audit(proto: Proto, ev: LogEvent): void {
    if (ev.list !== null) this.audits.add(ev.group, ev.list, proto);
    this.log('audit', proto, ev);
  }

  query(proto: Proto, ev: LogEvent): void {
    this.log('query', proto, ev);
  }

  private log(kind: EventKind, proto: Proto, ev: LogEvent): void {
    this.written++;
    // `{"time":…` + `,"event":…,"proto":…,` + the event's fields without their opening brace
    if (!this.out.write(isoTimeField() + PREFIXES[kind][proto] + JSON.stringify(ev).slice(1) + '\n')) this.lost(1);
  }

  private lost(lines: number): void {
    this.suppressed += lines;
    this.suppressedTotal += lines;
  }

  /** Resolves once the destination file is open (at once for stdout), rejects when it cannot be. */
  ready(): Promise<void> {
    return this.out.ready();
  }

  /** Reports lines lost since the last report; the report itself bypasses the ceiling so it cannot be lost too. */
  reportSuppressed(): void {
    if (this.suppressed === 0) return;
    const count = this.suppressed;
    this.suppressed = 0;
    this.out.write(JSON.stringify({ time: new Date().toISOString(), event: 'suppressed', count }) + '\n', false);
  }

  /** write(2) calls completed: one per batch. */
  get writes(): number {
    return this.out.writes;
  }

  /** Resolves once no write is in flight. */
  settle(): Promise<void> {
    return this.out.settle();
  }

  /** SIGHUP: reopen the file, so logrotate's rename-and-signal gets a fresh file. */
  reopen(): void {
    this.out.reopen();
  }

  /** Writes what is queued now, synchronously (a write already in flight finishes on its own). */
  flush(): void {
    this.reportSuppressed();
    this.out.flushIfIdle();
  }

  /** SIGTERM: the suppressed count and every queued line are written before this resolves. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.out.settle(); // a failing write in flight may still add to the count
    this.reportSuppressed();
    await this.out.close();
  }
}
