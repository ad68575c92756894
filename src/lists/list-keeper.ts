/**
 * Keeps the server's lists alive between reloads. `load()` reads every list of a config (start and
 * SIGHUP): files as they are, URL sources downloaded conditionally, falling back to the copy held
 * or the last good copy in stateDir, and with neither the source is empty (an error is logged) —
 * a DNS outage for a whole city is worse than one list missing for a minute. After the runtime
 * swapped to those lists, `activate()` arms one timer per list with URL sources: every
 * `refresh` it asks the servers again (a 304 costs nothing), and after a failure it retries
 * with backoff. A changed list is rebuilt and handed to `onRefresh`, which swaps the policy.
 *
 * Sanity guard, the same at start, on reload and on every scheduled refresh: a download that
 * yields no rules is refused; so is, against the running copy, one that looks like an HTML or JSON
 * error page or a single word, or that has under half the rules its source had (load-lists.ts
 * `believable`). A refused download never reaches the disk and the copy held keeps serving.
 */
import type { ListConfig } from '../config/types.js';
import type { AppLogger } from '../log/logger.js';
import { believable, listFromTexts, logRefused, type LoadOptions, type LoadedList, type RefusedSource } from './load-lists.js';
import { isUrlSource, readFileSource } from './source.js';
import { StateDir } from './state-dir.js';
import { UrlSource, type Candidate, type SourceStatus } from './url-source.js';

export interface ListStatus {
  readonly name: string;
  readonly rules: number;
  /**
   * Every URL source has a copy (fresh or last good; a copy always has rules: the guard refuses
   * empty downloads), or it has only files. A list of files that hold no rules is ready: it is what
   * the admin wrote, and no wait makes it better (runtime/generation.ts warns about it instead).
   */
  readonly ready: boolean;
  /** The oldest of its sources' last successes: when the whole list was last known good (ms since the epoch). */
  readonly lastSuccess: number | null;
  readonly lastError: string | null;
  readonly sources: readonly SourceStatus[];
}

export interface KeeperOptions {
  readonly log: AppLogger;
  /** A refreshed list, rebuilt; throws when the runtime cannot take it (the keeper logs and retries). */
  readonly onRefresh: (list: LoadedList) => void;
  readonly timeoutMs?: number;
  readonly maxBytes?: number;
  /** First retry after a failure; doubles per failure up to maxRetryMs, never beyond the list's refresh. */
  readonly firstRetryMs?: number;
  readonly maxRetryMs?: number;
  readonly now?: () => number;
}

interface Kept {
  readonly config: ListConfig;
  loaded: LoadedList;
  /** File bodies as read by the last load(): a refresh re-asks URLs only (files change on SIGHUP). */
  readonly files: ReadonlyMap<string, string>;
  /** Changed bodies that passed the guard, kept as last good copies once the runtime serves the list. */
  toAccept: ReadonlyMap<string, Candidate>;
  failures: number;
  timer?: NodeJS.Timeout;
  refreshing: boolean;
}

/** setTimeout's limit (~24.8 days); longer refresh periods wait in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class ListKeeper {
  private readonly sources = new Map<string, UrlSource>();
  private active: Kept[] = [];
  private pending: Kept[] = [];
  private disk: StateDir | undefined;
  private closed = false;

  constructor(private readonly opts: KeeperOptions) {}

  /** Reads every list; an unreadable file throws (ListSourceError), an unreachable URL never does. */
  /**
   * `guard` (on reload): the request core's sanity check — a source whose new copy looks like an error page or has
   * under half its last good rules keeps the list's running copy, and none of that list's downloads is accepted.
   */
  async load(lists: readonly ListConfig[], stateDir: string, guard?: Pick<LoadOptions, 'previous' | 'onRefused'>): Promise<LoadedList[]> {
    if (this.disk?.dir !== stateDir) {
      this.disk = new StateDir(stateDir);
      this.sources.clear();
    }
    const fileTexts = new Map<string, string>();
    const files = lists.flatMap((l) => l.sources.filter((s) => !isUrlSource(s)));
    await Promise.all([...new Set(files)].map(async (f) => { fileTexts.set(f, await readFileSource(f)); }));
    const urls = [...new Set(lists.flatMap((l) => l.sources.filter(isUrlSource)))];
    const candidates = new Map<string, Candidate>();
    const failed = new Set<string>();
    await Promise.all(urls.map(async (url) => {
      const source = this.source(url);
      try {
        const changed = await source.update(this.downloadOptions());
        if (changed !== null) candidates.set(url, changed);
      } catch (err) {
        failed.add(url);
        this.reportFailure(source, err);
      }
    }));
    this.pending = lists.map((config) => {
      const files = new Map(config.sources.filter((s) => !isUrlSource(s)).map((s) => [s, fileTexts.get(s) ?? ''] as const));
      const built = this.build(config, files, candidates);
      const { accepted } = built;
      let list = built.list;
      const last = guard?.previous?.find((l) => l.name === config.name);
      // at start-up only lists of files alone: a URL list with no good copy still starts (and keeps retrying)
      if (last !== undefined || !config.sources.some(isUrlSource)) {
        const texts = config.sources.map((src) => (isUrlSource(src) ? accepted.get(src)?.text ?? this.source(src).current ?? '' : files.get(src) ?? ''));
        list = believable(list, texts, last, guard?.onRefused);
        if (list === last) accepted.clear();
      }
      const failures = config.sources.some((s) => failed.has(s) || (isUrlSource(s) && !accepted.has(s) &&
        this.source(s).current === undefined)) ? 1 : 0;
      return { config, files, loaded: list, toAccept: accepted, failures, refreshing: false };
    });
    return this.pending.map((k) => k.loaded);
  }

  /** The runtime now serves what the last load() returned: keep its good downloads, refresh those lists from now on. */
  async activate(): Promise<void> {
    for (const kept of this.active) clearTimeout(kept.timer);
    this.active = this.pending;
    this.pending = [];
    await Promise.all(this.active.map((kept) => this.keep(kept)));
    for (const kept of this.active) this.schedule(kept);
  }

  private async keep(kept: Kept): Promise<void> {
    const accepted = kept.toAccept;
    kept.toAccept = new Map();
    await Promise.all([...accepted].map(([url, candidate]) => this.source(url).accept(candidate)));
  }

  /** The lists serving (since the last activate()). */
  status(): ListStatus[] {
    return this.statusOf(this.active);
  }

  /** What the last load() returned, before activate(): `appfence check` loads once and never activates (nor writes stateDir). */
  loadedStatus(): ListStatus[] {
    return this.statusOf(this.pending);
  }

  private statusOf(kept: readonly Kept[]): ListStatus[] {
    return kept.map(({ config, loaded, toAccept }) => {
      const sources = config.sources.map((s): SourceStatus => (!isUrlSource(s) ? { source: s, state: 'fresh', lastSuccess: null, lastError: null }
        // downloaded and believed, to be kept on activate()
        : toAccept.has(s) ? { ...this.source(s).status(), state: 'fresh', lastError: null } : this.source(s).status()));
      const urls = sources.filter((s) => isUrlSource(s.source));
      const successes = urls.map((s) => s.lastSuccess);
      return {
        name: config.name,
        rules: loaded.ruleCount,
        ready: urls.every((s) => s.state !== 'missing'),
        lastSuccess: urls.length === 0 || successes.includes(null) ? null : Math.min(...(successes as number[])),
        lastError: urls.map((s) => s.lastError).find((e) => e !== null) ?? null,
        sources,
      };
    });
  }

  close(): void {
    this.closed = true;
    for (const kept of [...this.active, ...this.pending]) clearTimeout(kept.timer);
  }

  private source(url: string): UrlSource {
    let source = this.sources.get(url);
    if (source === undefined) {
      const log = this.opts.log;
      source = new UrlSource(url, this.disk as StateDir, this.opts.now, (detail) => log.warn({ source: url, detail }, 'list copy'));
      this.sources.set(url, source);
    }
    return source;
  }

  private downloadOptions(): { timeoutMs?: number; maxBytes?: number } {
    return { ...(this.opts.timeoutMs !== undefined ? { timeoutMs: this.opts.timeoutMs } : {}),
      ...(this.opts.maxBytes !== undefined ? { maxBytes: this.opts.maxBytes } : {}) };
  }

  /**
   * The list from its file bodies, the copies held and the changed bodies. A changed body that
   * yields no rule of its own is refused (the copy held stays); `accepted` are the others.
   */
  private build(config: ListConfig, files: ReadonlyMap<string, string>, candidates: ReadonlyMap<string, Candidate>):
    { list: LoadedList; accepted: Map<string, Candidate> } {
    const accepted = new Map(config.sources.filter((s) => candidates.has(s)).map((s) => [s, candidates.get(s) as Candidate]));
    const assemble = () => listFromTexts(config.name, config.sources.map((source) => ({
      source, text: isUrlSource(source) ? accepted.get(source)?.text ?? this.source(source).current ?? '' : files.get(source) ?? '',
    })), config.match);
    let list = assemble();
    const refused = [...accepted.keys()].filter((url) => rulesFrom(list, config.sources.indexOf(url)) === 0);
    for (const url of refused) {
      const reason = 'the download has no rules (an error page or an emptied list?); keeping the copy held';
      accepted.delete(url);
      this.source(url).refuse(reason);
      this.opts.log.error({ list: config.name, source: url }, reason);
    }
    if (refused.length > 0) list = assemble();
    return { list, accepted };
  }

  /**
   * A refreshed list against the one serving: the running list when one of its new copies is not
   * believable (every download of this refresh refused then, its source told why), else `list`.
   */
  private believed(kept: Kept, list: LoadedList, accepted: Map<string, Candidate>): LoadedList {
    if (accepted.size === 0) return list;
    const texts = kept.config.sources.map((src) => (isUrlSource(src) ? accepted.get(src)?.text ?? this.source(src).current ?? ''
      : kept.files.get(src) ?? ''));
    let refused: RefusedSource | undefined;
    try {
      const result = believable(list, texts, kept.loaded, (r) => { refused = r; });
      if (result === list) return list;
    } catch (err) {
      // no running copy to keep for that source (cannot happen while the config stays): refuse rather than guess
      refused = { list: kept.config.name, source: kept.config.sources[0] ?? '', reason: (err as Error).message, rules: list.ruleCount,
        lastGoodRules: kept.loaded.ruleCount };
    }
    if (refused !== undefined) {
      for (const url of accepted.keys()) this.source(url).refuse(refused.source === url ? refused.reason : `refused with ${refused.source}`);
      logRefused(this.opts.log, refused);
    }
    accepted.clear();
    return kept.loaded;
  }

  private reportFailure(source: UrlSource, err: unknown): void {
    const error = (err as Error).message;
    const { state, lastSuccess } = source.status();
    if (source.current !== undefined) {
      this.opts.log.warn({ source: source.url, error, served: state === 'copy' ? 'last good copy from stateDir' : 'copy held',
        since: lastSuccess === null ? undefined : new Date(lastSuccess).toISOString() }, 'list download failed; serving the last good copy');
    } else {
      this.opts.log.error({ source: source.url, error }, 'list download failed and there is no copy: its rules are missing until a download succeeds; retrying');
    }
  }

  private schedule(kept: Kept): void {
    if (this.closed || !kept.config.sources.some(isUrlSource)) return;
    const first = this.opts.firstRetryMs ?? 5_000;
    const retry = Math.min(first * 2 ** Math.max(0, kept.failures - 1), this.opts.maxRetryMs ?? 300_000, kept.config.refreshMs);
    const wait = kept.failures > 0 ? retry : kept.config.refreshMs;
    kept.timer = setTimeout(() => void this.refresh(kept), Math.min(wait, MAX_TIMER_MS));
    kept.timer.unref();
  }

  private async refresh(kept: Kept): Promise<void> {
    if (kept.refreshing || !this.active.includes(kept)) return;
    kept.refreshing = true;
    try {
      const candidates = new Map<string, Candidate>();
      let failed = false;
      await Promise.all(kept.config.sources.filter(isUrlSource).map(async (url) => {
        const source = this.source(url);
        try {
          const changed = await source.update(this.downloadOptions());
          if (changed !== null) candidates.set(url, changed);
        } catch (err) {
          failed = true;
          this.reportFailure(source, err);
        }
      }));
      if (candidates.size > 0) {
        const built = this.build(kept.config, kept.files, candidates);
        const { accepted } = built;
        const list = this.believed(kept, built.list, accepted);
        if (accepted.size < candidates.size) failed = true;
        if (accepted.size > 0 && this.active.includes(kept)) {
          this.opts.onRefresh(list);
          kept.loaded = list;
          kept.toAccept = accepted;
          await this.keep(kept);
          this.opts.log.info({ list: kept.config.name, rules: list.ruleCount }, 'list refreshed');
        }
      }
      const missing = kept.config.sources.some((s) => isUrlSource(s) && this.source(s).current === undefined);
      kept.failures = failed || missing ? kept.failures + 1 : 0;
    } catch (err) {
      kept.failures++;
      this.opts.log.error({ err, list: kept.config.name }, 'list refresh failed; the running list stays');
    } finally {
      kept.refreshing = false;
      if (this.active.includes(kept)) this.schedule(kept);
    }
  }
}

/** How many rules (names and IP ranges) source `index` of `list` contributed. */
function rulesFrom(list: LoadedList, index: number): number {
  let n = 0;
  for (const s of list.rules.sourceIndex) if (s === index) n++;
  const source = list.sources[index];
  for (const ip of list.ipRules) if (ip.source === source) n++;
  return n;
}
