/**
 * At most one app-log line per interval for events that can repeat thousands of times a second
 * (an upstream outage fails every query): the line carries how many occurred since the last one.
 */
export class Throttle {
  private last = -Infinity;
  private count = 0;
  constructor(private readonly intervalMs: number, private readonly now: () => number = Date.now) {}

  /** Counts one occurrence; returns how many to report when a line is due, else 0. */
  hit(): number {
    this.count++;
    const now = this.now();
    if (now - this.last < this.intervalMs) return 0;
    this.last = now;
    const n = this.count;
    this.count = 0;
    return n;
  }
}
