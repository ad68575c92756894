/**
 * The block log: one pino JSON line per blocked query (and, with `log.queries`, per allowed one),
 * with exactly SPEC.md's fields. Writes are buffered (sonic-boom, async) with a ceiling; when the
 * destination cannot keep up, lines beyond the ceiling are counted rather than queued without
 * bound, and a `{"event":"suppressed","count":N}` line says how many were lost — never silently.
 */
import { pino, type Logger } from 'pino';
import { PROTOS, type Proto, type Via } from '../net/peer.js';

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

type Destination = ReturnType<typeof pino.destination>;

let lastMs = -1;
let lastTime = '';
/** Dozens of events share a millisecond under load; toISOString once per millisecond, not per line. */
function isoTimeField(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastTime = `"time":"${new Date(now).toISOString()}"`;
  }
  return lastTime;
}

export class BlockLog {
  private readonly dest: Destination;
  private readonly logger: Logger;
  /** One child per event × proto: those two fields are serialised once, not per line (pino chindings). */
  private readonly blockChildren: Record<Proto, Logger>;
  private readonly queryChildren: Record<Proto, Logger>;
  private readonly auditChildren: Record<Proto, Logger>;
  private readonly timer: NodeJS.Timeout;
  private suppressed = 0;
  private readonly isStdout: boolean;
  /** Lines handed to the destination (written or buffered), for metrics and tests. */
  written = 0;
  suppressedTotal = 0;

  constructor(opts: BlockLogOptions) {
    this.isStdout = opts.destination === 'stdout';
    this.dest = pino.destination({
      dest: opts.destination === 'stdout' ? 1 : opts.destination,
      sync: opts.sync ?? false,
      minLength: 0, // ops tail this log: write at once; under load sonic-boom batches while a write is in flight
      maxLength: opts.maxBufferBytes ?? 4 * 1024 * 1024,
      mkdir: true,
    });
    this.dest.on('drop', () => {
      this.suppressed++;
      this.suppressedTotal++;
    });
    // An unwritable file or closed pipe must not crash the resolver; it shows up as suppressed lines.
    this.dest.on('error', () => undefined);
    this.logger = pino(
      // No level, pid or hostname: exactly SPEC's fields. With the level gone, `time` opens the object,
      // so it must not carry pino's usual leading comma.
      { base: null, timestamp: isoTimeField, formatters: { level: () => ({}) } },
      this.dest,
    );
    const children = (event: string) => Object.fromEntries(PROTOS.map((proto) => [proto, this.logger.child({ event, proto })])) as Record<Proto, Logger>;
    this.blockChildren = children('block');
    this.queryChildren = children('query');
    this.auditChildren = children('audit');
    this.timer = setInterval(() => this.reportSuppressed(), opts.reportIntervalMs ?? 1000);
    this.timer.unref();
  }

  block(proto: Proto, ev: LogEvent): void {
    this.written++;
    this.blockChildren[proto].info(ev);
  }

  /** A group in audit mode: every block field, but the client was answered as if allowed. */
  audit(proto: Proto, ev: LogEvent): void {
    this.written++;
    this.auditChildren[proto].info(ev);
  }

  query(proto: Proto, ev: LogEvent): void {
    this.written++;
    this.queryChildren[proto].info(ev);
  }

  /** Resolves once the destination file is open (at once for stdout), rejects when it cannot be. */
  ready(): Promise<void> {
    const dest = this.dest as unknown as { fd: number } & NodeJS.EventEmitter;
    if (dest.fd >= 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      dest.once('ready', () => resolve());
      dest.once('error', reject);
    });
  }

  /** Reports lines lost since the last report; the report itself bypasses the ceiling so it cannot be lost too. */
  reportSuppressed(): void {
    if (this.suppressed === 0) return;
    const count = this.suppressed;
    this.suppressed = 0;
    const line = JSON.stringify({ time: new Date().toISOString(), event: 'suppressed', count }) + '\n';
    // sonic-boom reads `maxLength` on every write: lifting it for this one line lets the count through.
    const ceiling = this.dest as unknown as { maxLength: number };
    const maxLength = ceiling.maxLength;
    ceiling.maxLength = 0;
    this.dest.write(line);
    ceiling.maxLength = maxLength;
  }

  /** SIGHUP: reopen the file, so logrotate's rename-and-signal gets a fresh file. */
  reopen(): void {
    if (this.isStdout) return;
    try {
      this.dest.reopen();
    } catch {
      // a destination not open yet will open the path itself
    }
  }

  /** Writes everything buffered, synchronously: used on SIGTERM before exit. */
  flush(): void {
    this.reportSuppressed();
    try {
      this.dest.flushSync();
    } catch {
      // nothing more can be done for a destination that refuses writes
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.flush();
    this.dest.end();
  }
}
