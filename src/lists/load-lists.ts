/**
 * Reads the configured lists (files or URLs) and parses them into compact rule storage that the
 * domain index is built from. One million rules must stay small: names go into one string (each
 * followed by '\n'), everything else into typed arrays. A bad line is collected, never fatal; an
 * unreadable source is (ListSourceError), so a reload keeps the running lists instead.
 */
import type { ListConfig } from '../config/types.js';
import { parseInto, type IpRule, type RejectedLine, type RuleSink, type WildLine } from './parse-line.js';
import { readSource } from './source.js';

/** Rule i: name = names[starts[i] .. next '\n'), info = kind | exception << 2 | format << 3. */
export interface RuleStore {
  readonly count: number;
  readonly names: string;
  readonly starts: Int32Array;
  readonly info: Uint8Array;
  readonly lines: Int32Array;
  /** Index into LoadedList.sources. */
  readonly sourceIndex: Uint16Array;
}

export interface LoadedList {
  readonly name: string;
  readonly sources: readonly string[];
  readonly match: 'auto' | 'subtree';
  readonly rules: RuleStore;
  readonly ruleCount: number;
  /** Bare IPs and CIDRs, kept for the proxy's raw-IP checks; DNS does not use them. */
  readonly ipRules: readonly (IpRule & { readonly source: string })[];
  /** Adblock rules with `*` inside their first label (match/wildcard.ts). */
  readonly wildRules: readonly (WildLine & { readonly source: string })[];
  /** The first MAX_KEPT_REJECTS rejected lines; rejectCount has the true total. */
  readonly rejects: readonly RejectedLine[];
  readonly rejectCount: number;
}

/** A garbage source (an HTML error page, a binary) must not turn into a million reject objects. */
export const MAX_KEPT_REJECTS = 1000;

export const INFO_EXCEPTION = 4;

export async function loadLists(lists: readonly ListConfig[],
  opts: { timeoutMs?: number; onWarning?: (msg: string) => void } = {}): Promise<LoadedList[]> {
  // Downloads overlap; parsing stays in config order so rule ids are stable across reloads.
  const texts = await Promise.all(lists.map((list) =>
    Promise.all(list.sources.map((source) => readSource(source, opts)))));
  return lists.map((list, i) => listFromTexts(list.name,
    list.sources.map((source, j) => ({ source, text: texts[i]?.[j] ?? '' })), list.match));
}

/** Parses already-read texts into one list (no I/O): the loader's second half, also for tests and benches. */
export function listFromTexts(name: string, entries: readonly { source: string; text: string }[],
  match: 'auto' | 'subtree' = 'auto'): LoadedList {
  const builder = new RuleStoreBuilder();
  const ipRules: (IpRule & { source: string })[] = [];
  const wildRules: (WildLine & { source: string })[] = [];
  const rejects: RejectedLine[] = [];
  let rejectCount = 0;
  entries.forEach(({ source, text }, sourceIndex) => {
    builder.sourceIndex = sourceIndex;
    builder.onIp = (cidr, line) => { ipRules.push({ cidr, line, source }); };
    builder.onWild = (glob, anchor, text, line) => { wildRules.push({ glob, anchor, text, line, source }); };
    builder.onReject = (line, lineText, reason) => {
      rejectCount++;
      if (rejects.length < MAX_KEPT_REJECTS) rejects.push({ source, line, text: lineText, reason });
    };
    parseInto(text, match === 'subtree', builder);
  });
  const rules = builder.finish();
  return { name, sources: entries.map((e) => e.source), match, rules, ruleCount: rules.count + wildRules.length, ipRules, wildRules,
    rejects, rejectCount };
}

/** The name of rule i of a store (cold path: describe, tests). */
export function ruleName(store: RuleStore, i: number): string {
  const start = store.starts[i] ?? 0;
  return store.names.slice(start, store.names.indexOf('\n', start));
}

class RuleStoreBuilder implements RuleSink {
  sourceIndex = 0;
  onIp: (cidr: string, line: number) => void = () => undefined;
  onWild: (glob: string, anchor: string, text: string, line: number) => void = () => undefined;
  onReject: (line: number, text: string, reason: string) => void = () => undefined;
  private bytes = Buffer.allocUnsafe(1 << 16);
  private used = 0;
  private count = 0;
  private starts = new Int32Array(1024);
  private info = new Uint8Array(1024);
  private lines = new Int32Array(1024);
  private sources = new Uint16Array(1024);

  rule(text: string, start: number, end: number, kind: number, exception: boolean, format: number, line: number): void {
    if (this.count === this.starts.length) this.growRules();
    if (this.used + (end - start) + 1 > this.bytes.length) this.growBytes(end - start + 1);
    const i = this.count++;
    this.starts[i] = this.used;
    this.info[i] = kind | (exception ? INFO_EXCEPTION : 0) | (format << 3);
    this.lines[i] = line;
    this.sources[i] = this.sourceIndex;
    // Names are ASCII here (IDNs already converted), so lowercasing is one bit.
    const bytes = this.bytes;
    let used = this.used;
    for (let k = start; k < end; k++) {
      const c = text.charCodeAt(k);
      bytes[used++] = c >= 65 && c <= 90 ? c | 32 : c;
    }
    bytes[used++] = 10;
    this.used = used;
  }

  ip(cidr: string, line: number): void { this.onIp(cidr, line); }
  wild(glob: string, anchor: string, text: string, line: number): void { this.onWild(glob, anchor, text, line); }
  reject(line: number, text: string, reason: string): void { this.onReject(line, text, reason); }

  finish(): RuleStore {
    const n = this.count;
    return {
      count: n,
      // latin1 decoding of ASCII bytes gives one flat one-byte string: the cheapest form to compare.
      names: this.bytes.toString('latin1', 0, this.used),
      starts: this.starts.slice(0, n),
      info: this.info.slice(0, n),
      lines: this.lines.slice(0, n),
      sourceIndex: this.sources.slice(0, n),
    };
  }

  private growRules(): void {
    const size = this.starts.length * 2;
    const grow = <T extends Int32Array | Uint8Array | Uint16Array>(a: T, make: (n: number) => T): T => {
      const b = make(size);
      b.set(a);
      return b;
    };
    this.starts = grow(this.starts, (k) => new Int32Array(k));
    this.info = grow(this.info, (k) => new Uint8Array(k));
    this.lines = grow(this.lines, (k) => new Int32Array(k));
    this.sources = grow(this.sources, (k) => new Uint16Array(k));
  }

  private growBytes(need: number): void {
    const next = Buffer.allocUnsafe(Math.max(this.bytes.length * 2, this.used + need));
    this.bytes.copy(next, 0, 0, this.used);
    this.bytes = next;
  }
}
