/**
 * Reads the configured lists (files or URLs) and parses them into compact rule storage
 * (match/rule-store.ts) that the domain index is built from. A bad line is collected, never fatal; an
 * unreadable source is (ListSourceError), so a reload keeps the running lists instead.
 */
import type { ListConfig } from '../config/types.js';
import type { AppLogger } from '../log/logger.js';
import { parseInto, type IpRule, type RejectedLine, type RuleSink, type WildLine } from './parse-line.js';
import { readSource } from './source.js';
import { ruleInfo, type RuleList, type RuleStore } from '../match/rule-store.js';
import { errorPageReason, shrinkReason } from './sanity.js';
import { ListSourceError } from '../errors.js';

export interface LoadedList extends RuleList {
  readonly name: string;
  readonly sources: readonly string[];
  readonly match: 'auto' | 'subtree';
  readonly rules: RuleStore;
  readonly ruleCount: number;
  /** Rules each source gave, in `sources` order (the sanity check compares them across reloads). */
  readonly sourceRuleCounts: readonly number[];
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


/** A source whose new copy was not believed (lists/sanity.ts); its list kept its last good copy. */
export interface RefusedSource {
  readonly list: string;
  readonly source: string;
  readonly reason: string;
  readonly rules: number;
  readonly lastGoodRules: number;
}

/** The warning of a refused copy, with both counts: the same line on reload (runtime/generation.ts) and refresh. */
export function logRefused(log: AppLogger, r: RefusedSource): void {
  log.warn({ list: r.list, source: r.source, rules: r.rules, lastGoodRules: r.lastGoodRules, reason: r.reason },
    `list source refused: ${r.reason}; keeping the last good copy`);
}

export interface LoadOptions {
  timeoutMs?: number;
  onWarning?: (msg: string) => void;
  /** The running lists (on reload): a source's new copy is checked against its last good one. */
  previous?: readonly LoadedList[];
  onRefused?: (refused: RefusedSource) => void;
}

export async function loadLists(lists: readonly ListConfig[], opts: LoadOptions = {}): Promise<LoadedList[]> {
  // Downloads overlap; parsing stays in config order so rule ids are stable across reloads.
  const texts = await Promise.all(lists.map((list) =>
    Promise.all(list.sources.map((source) => readSource(source, opts)))));
  const previous = new Map((opts.previous ?? []).map((l) => [l.name, l]));
  return lists.map((list, i) => {
    const loaded = listFromTexts(list.name, list.sources.map((source, j) => ({ source, text: texts[i]?.[j] ?? '' })), list.match);
    return believable(loaded, texts[i] ?? [], previous.get(list.name), opts.onRefused);
  });
}

/**
 * The list as loaded, or its last good copy when one of its sources is not believable. A list
 * emptied altogether by a copy that is no error page is left to the reload's own check (it refuses
 * the whole reload, runtime/generation.ts). Without a
 * last good copy (start-up, a source new to the list) an error page is an error, not a list.
 */
export function believable(loaded: LoadedList, texts: readonly string[], last: LoadedList | undefined,
  onRefused: LoadOptions['onRefused']): LoadedList {
  const emptied = loaded.ruleCount === 0;
  for (const [j, source] of loaded.sources.entries()) {
    const rules = loaded.sourceRuleCounts[j] ?? 0;
    const k = last?.sources.indexOf(source) ?? -1;
    const lastGoodRules = k < 0 ? undefined : last?.sourceRuleCounts[k];
    const reason = errorPageReason(texts[j] ?? '') ?? (lastGoodRules === undefined || emptied ? null : shrinkReason(rules, lastGoodRules));
    if (reason === null) continue;
    if (last === undefined || lastGoodRules === undefined || !sameSources(last, loaded)) {
      throw new ListSourceError(source, `${reason} (${rules} rules); refused`);
    }
    onRefused?.({ list: loaded.name, source, reason, rules, lastGoodRules });
    return last;
  }
  return loaded;
}

function sameSources(a: LoadedList, b: LoadedList): boolean {
  return a.match === b.match && a.sources.length === b.sources.length && a.sources.every((s, i) => s === b.sources[i]);
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
  const sourceRuleCounts = entries.map(() => 0);
  for (let i = 0; i < rules.count; i++) sourceRuleCounts[rules.sourceIndex[i]!]!++;
  wildRules.forEach((w) => { sourceRuleCounts[entries.findIndex((e) => e.source === w.source)]!++; });
  return { name, sources: entries.map((e) => e.source), match, rules, ruleCount: rules.count + wildRules.length, sourceRuleCounts,
    ipRules, wildRules, rejects, rejectCount };
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
    this.info[i] = ruleInfo(kind, exception, format);
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
