/**
 * The block log's writer: lines are queued as strings with their byte count, and everything queued
 * during one event-loop turn goes out in one asynchronous write (one more batch per completed write
 * under load). It replaces sonic-boom for this log only: sonic-boom re-measures its whole pending
 * chunk with Buffer.byteLength on every appended line, which under load was a tenth of a blocked
 * query's CPU (../shared/research/dns-performance.md §2). The app log stays on pino.
 *
 * Bounded: beyond `maxBufferBytes` queued-or-in-flight bytes a line is refused (the caller counts
 * it); a chunk the destination refuses is reported as lost lines, never dropped silently.
 * Whole lines only: to a regular file (O_APPEND) every batch is one write(2), which Linux applies
 * atomically; to a pipe, tty or socket chunks stay within PIPE_BUF, the size the kernel writes
 * atomically. Either way several processes (dns.workers) sharing the destination never interleave
 * inside a line.
 */
import { closeSync, fstatSync, mkdirSync, openSync, write, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/** POSIX guarantees atomic pipe writes up to PIPE_BUF; Linux's is 4096. */
const PIPE_BUF = 4096;
/** A full non-blocking pipe (EAGAIN): retry after this long while lines keep queueing (bounded). */
const BUSY_RETRY_MS = 10;
/** At exit, how long a full pipe is waited for before the rest is given up. */
const EXIT_WAIT_MS = 2000;

export interface BatchWriterOptions {
  /** "stdout" or a file path (appended; the folder is created). */
  destination: string;
  /** Queued plus in-flight bytes beyond which `write` refuses a line. */
  maxBufferBytes: number;
  /** Write each line before `write` returns (tests read the file right after a query). */
  sync: boolean;
  /** Lines accepted earlier that the destination then refused (EPIPE, ENOSPC, …). */
  onLost: (lines: number) => void;
}

const open = new Set<BatchWriter>();
let exitHooked = false;

export class BatchWriter {
  private fd = -1;
  private openError: Error | null = null;
  private readonly isStdout: boolean;
  /** Chunks to pipes/ttys stay within PIPE_BUF (see the header); files take a whole batch. */
  private chunkLimit = Infinity;
  private lines: string[] = [];
  private sizes: number[] = [];
  private queuedBytes = 0;
  private inFlightBytes = 0;
  private writing = false;
  private scheduled = false;
  private reopenWanted = false;
  private closed = false;
  private idle: (() => void)[] = [];
  /** write(2) calls that completed, for tests and benchmarks. */
  writes = 0;

  constructor(private readonly opts: BatchWriterOptions) {
    this.isStdout = opts.destination === 'stdout';
    try {
      this.fd = this.isStdout ? 1 : openFile(opts.destination);
      this.chunkLimit = fstatSync(this.fd).isFile() ? Infinity : PIPE_BUF;
    } catch (err) {
      this.openError = err as Error;
    }
    open.add(this);
    if (!exitHooked) {
      exitHooked = true;
      // An exit that skipped close() (a fatal error) still writes what is queued.
      process.on('exit', () => {
        for (const w of open) w.writeQueuedSync();
      });
    }
  }

  /** Resolves when the destination is open, rejects with the open error (its `code`) when it is not. */
  ready(): Promise<void> {
    return this.openError === null ? Promise.resolve() : Promise.reject(this.openError);
  }

  /** Queues one line (ending in "\n"). False: over the ceiling (or not open), the caller counts it. */
  write(line: string, bounded = true): boolean {
    if (this.fd < 0 || this.closed) return false;
    const bytes = Buffer.byteLength(line);
    if (bounded && this.queuedBytes + this.inFlightBytes + bytes > this.opts.maxBufferBytes) return false;
    this.lines.push(line);
    this.sizes.push(bytes);
    this.queuedBytes += bytes;
    if (this.opts.sync) {
      if (!this.writing) this.writeQueuedSync();
    } else if (!this.writing && !this.scheduled) {
      this.scheduled = true;
      setImmediate(this.startWrite);
    }
    return true;
  }

  /** SIGHUP: reopen the file (logrotate renamed it), once the write in flight has finished. */
  reopen(): void {
    if (this.isStdout || this.closed) return;
    if (this.writing) this.reopenWanted = true;
    else this.reopenNow();
  }

  /** Resolves once no write is in flight (bounded: a stdout reader that stopped reading must not hold up shutdown). */
  settle(): Promise<void> {
    if (!this.writing) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, EXIT_WAIT_MS);
      this.idle.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Waits for the write in flight, writes everything queued synchronously, closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.settle();
    this.writeQueuedSync();
    this.closed = true;
    open.delete(this);
    if (!this.isStdout && this.fd >= 0) closeSync(this.fd);
  }

  /** Writes what is queued unless a write is in flight (that one carries on with the queue when done). */
  flushIfIdle(): void {
    if (!this.writing) this.writeQueuedSync();
  }

  /** Writes everything queued before returning (no write may be in flight, or lines may reorder). */
  writeQueuedSync(): void {
    if (this.fd < 0 || this.lines.length === 0) return;
    const deadline = Date.now() + EXIT_WAIT_MS;
    while (this.lines.length > 0) {
      const { lines, buf } = this.takeChunk();
      let done = 0;
      try {
        while (done < buf.length) {
          try {
            done += writeSync(this.fd, buf, done);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || Date.now() > deadline) throw err;
            Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, BUSY_RETRY_MS);
          }
        }
      } catch {
        this.opts.onLost(lines);
      }
      this.inFlightBytes = 0;
    }
  }

  private readonly startWrite = (): void => {
    this.scheduled = false;
    if (this.writing || this.lines.length === 0 || this.closed) return;
    this.writing = true;
    const { lines, buf } = this.takeChunk();
    this.writeChunk(lines, buf, 0);
  };

  private writeChunk(lines: number, buf: Buffer, offset: number): void {
    write(this.fd, buf, offset, buf.length - offset, null, (err, n) => {
      if (err !== null) {
        if (err.code === 'EAGAIN') {
          setTimeout(() => this.writeChunk(lines, buf, offset), BUSY_RETRY_MS).unref();
          return;
        }
        this.opts.onLost(lines);
      } else if (offset + n < buf.length) {
        this.writeChunk(lines, buf, offset + n); // a partial write (a signal, a nearly full disk): the rest
        return;
      }
      this.writes++;
      this.inFlightBytes = 0;
      this.writing = false;
      if (this.reopenWanted) this.reopenNow();
      if (this.lines.length > 0) this.startWrite(); // what queued meanwhile is the next batch
      else for (const resolve of this.idle.splice(0)) resolve();
    });
  }

  /** Moves the next chunk from the queue to "in flight": all of it, or whole lines up to PIPE_BUF. */
  private takeChunk(): { lines: number; buf: Buffer } {
    let n = this.lines.length;
    let bytes = this.queuedBytes;
    if (bytes > this.chunkLimit) {
      bytes = this.sizes[0]!; // a single over-long line still goes out, alone
      for (n = 1; n < this.sizes.length && bytes + this.sizes[n]! <= this.chunkLimit; n++) bytes += this.sizes[n]!;
    }
    const text = n === this.lines.length ? this.lines.join('') : this.lines.slice(0, n).join('');
    if (n === this.lines.length) {
      this.lines = [];
      this.sizes = [];
    } else {
      this.lines.splice(0, n);
      this.sizes.splice(0, n);
    }
    this.queuedBytes -= bytes;
    this.inFlightBytes = bytes;
    return { lines: n, buf: Buffer.from(text, 'utf8') };
  }

  private reopenNow(): void {
    this.reopenWanted = false;
    try {
      const fd = openFile(this.opts.destination);
      closeSync(this.fd);
      this.fd = fd;
    } catch {
      // keep writing to the old file rather than losing lines; the next SIGHUP tries again
    }
  }
}

function openFile(path: string): number {
  mkdirSync(dirname(path), { recursive: true });
  return openSync(path, 'a');
}
