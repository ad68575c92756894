/**
 * Everything a reload replaces, built completely beside the running one and swapped as one
 * reference: Config → lists → Policy, the Identifier (access.allow, subnets, device certificates),
 * the resolver (reusing the previous cache and upstream client when their settings are unchanged)
 * and the TLS server options of every TLS listener. `serve` (at start and on every reload) and
 * `check` build it with the same function, so `check` explains exactly what `serve` decides.
 * Building does no socket work: Unbound's split of `init` (per reload) from `startup` (once,
 * runtime.ts) — a failed build leaves nothing behind but an upstream client to close.
 */
import type { TlsOptions } from 'node:tls';
import type { Config } from '../config/types.js';
import { ConfigError } from '../errors.js';
import { loadLists, logRefused, type LoadOptions, type LoadedList, type RefusedSource } from '../lists/load-lists.js';
import { isUrlSource } from '../lists/source.js';
import { Policy } from '../policy/policy.js';
import { ClientIdentifier, type Identifier } from '../identity/identify.js';
import { CertificateIdentifier } from '../identity/certificate.js';
import { AnswerCache } from '../resolver/cache.js';
import { UpstreamClient } from '../resolver/upstream.js';
import { CachingResolver, type Resolver } from '../resolver/resolver.js';
import { readPem, serverTlsOptions } from '../net/tls-server.js';
import { Throttle } from '../log/throttle.js';
import { ResponseRateLimiter, type RateLimitConfig } from '../dns/rate-limit.js';
import type { AppLogger } from '../log/logger.js';

/** Keys of `Generation.tls`: one per kind of TLS listener (the proxy adds its own). */
export type TlsListenerKind = 'dot' | 'doh' | 'proxy';

export interface Generation {
  /** 1 for the configuration started with, +1 per successful reload. */
  readonly id: number;
  readonly config: Config;
  readonly policy: Policy;
  readonly identifier: Identifier;
  /** Device-certificate judge for TLS handshakes; null without `clientCerts`. */
  readonly certs: CertificateIdentifier | null;
  readonly resolver: Resolver;
  readonly cache: AnswerCache;
  readonly upstream: UpstreamClient;
  /** dns.rateLimit for UDP answers; kept across reloads while its settings stay. */
  readonly rateLimiter: ResponseRateLimiter;
  /** Server TLS options per listener kind, present when the config has that listener. */
  readonly tls: Readonly<Partial<Record<TlsListenerKind, TlsOptions>>>;
}

/** What the runtime watches while a generation serves (metrics); `check` passes none. */
export interface GenerationObserver {
  upstreamTry?(upstream: string, ok: boolean, durationMs: number): void;
  /** Every client address the Identifier is asked about (DNS and proxy alike), while `watching`. */
  readonly clients?: { readonly done: boolean; see(address: string): void };
}

/** The Identifier, telling `clients` each address until it has seen enough (then one boolean test). */
class WatchedIdentifier implements Identifier {
  constructor(private readonly inner: Identifier, private readonly clients: NonNullable<GenerationObserver['clients']>) {}
  identify(peer: Parameters<Identifier['identify']>[0]): ReturnType<Identifier['identify']> {
    if (!this.clients.done) this.clients.see(peer.address);
    return this.inner.identify(peer);
  }
}

/** How a generation gets its lists: `serve` through its ListKeeper (refresh, last good copies), `check` by reading them once. */
export type ListLoader = (lists: Config['lists'], stateDir: string, guard: Pick<LoadOptions, 'previous' | 'onRefused'>) => Promise<LoadedList[]>;

export async function buildGeneration(config: Config, log: AppLogger, previous?: Generation, observer?: GenerationObserver,
  loader?: ListLoader): Promise<Generation> {
  const listLog = log.child({ component: 'lists' });
  const guard = {
    previous: previous?.policy.lists,
    onRefused: (r: RefusedSource) => logRefused(listLog, r),
  };
  const lists = loader !== undefined ? await loader(config.lists, config.stateDir, guard)
    : await loadLists(config.lists, { onWarning: (msg) => listLog.warn({ detail: msg }, 'list source warning'), ...guard });
  reportRejects(lists, listLog);
  if (previous !== undefined) refuseEmptiedLists(previous.policy, lists);
  const policy = Policy.compile(config, lists);

  let caPems: string[] | null = null;
  let certs: CertificateIdentifier | null = null;
  if (config.clientCerts !== undefined) {
    caPems = await Promise.all(config.clientCerts.ca.map((f, i) => readPem(f, `clientCerts.ca[${i}]`)));
    const crlPems = await Promise.all(config.clientCerts.crl.map((f, i) => readPem(f, `clientCerts.crl[${i}]`)));
    certs = new CertificateIdentifier(caPems, config.groups, crlPems);
    for (const stale of certs.staleCrls()) {
      log.warn({ component: 'certs', ...stale }, 'a clientCerts.crl is past its nextUpdate: still enforced, renew it');
    }
  }
  const clientAuth = caPems === null || config.clientCerts === undefined ? undefined
    : CertificateIdentifier.tlsOptions(caPems, config.clientCerts.require);
  const { dns } = config;
  const tls: Partial<Record<TlsListenerKind, TlsOptions>> = {};
  if (dns.tls !== undefined) tls.dot = await serverTlsOptions(dns.tls, 'dns.tls', clientAuth);
  if (dns.https !== undefined) tls.doh = await serverTlsOptions(dns.https, 'dns.https', clientAuth);
  if (config.proxy?.tls !== undefined) tls.proxy = await serverTlsOptions(config.proxy.tls, 'proxy.tls', clientAuth);

  // Last, after every step that can fail: nothing to close when an earlier one throws.
  const upstream = previous !== undefined && sameUpstreams(previous.config, config) ? previous.upstream : newUpstream(config, log, observer);
  // The cache holds answers, not decisions, so it survives a policy reload.
  const cache = previous !== undefined && JSON.stringify(previous.config.dns.cache) === JSON.stringify(dns.cache)
    ? previous.cache : new AnswerCache(dns.cache);
  listLog.info({ count: policy.index.ruleCount, lists: lists.map((l) => `${l.name}=${l.ruleCount}`).join(' ') }, 'lists loaded');
  return Object.freeze({
    id: (previous?.id ?? 0) + 1,
    config,
    policy,
    identifier: watched(new ClientIdentifier(config.access.allow, config.groups), observer),
    certs,
    resolver: new CachingResolver(cache, upstream),
    cache,
    upstream,
    rateLimiter: rateLimiterFor(dns.rateLimit, previous?.rateLimiter),
    tls: Object.freeze(tls),
  });
}

function watched(identifier: Identifier, observer: GenerationObserver | undefined): Identifier {
  return observer?.clients === undefined || observer.clients.done ? identifier : new WatchedIdentifier(identifier, observer.clients);
}

/** What a generation holds open that the next one does not reuse (call once no query uses it any more). */
export function retireGeneration(old: Generation, next: Generation | null): void {
  if (next === null || old.upstream !== next.upstream) old.upstream.close();
}

/** The running limiter while its settings stay (buckets and counters live on); a new one carries the counters. */
function rateLimiterFor(cfg: RateLimitConfig, running: ResponseRateLimiter | undefined): ResponseRateLimiter {
  if (running !== undefined && JSON.stringify(running.config) === JSON.stringify(cfg)) return running;
  const limiter = new ResponseRateLimiter(cfg);
  limiter.dropped = running?.dropped ?? 0;
  limiter.slipped = running?.slipped ?? 0;
  return limiter;
}

function sameUpstreams(a: Config, b: Config): boolean {
  const key = (c: Config): string => JSON.stringify([c.dns.upstreams, c.dns.timeoutMs, c.dns.caseRandomization]);
  return key(a) === key(b);
}

function newUpstream(config: Config, log: AppLogger, observer?: GenerationObserver): UpstreamClient {
  const { dns } = config;
  const upstreamLog = log.child({ component: 'resolver.upstream' });
  const failures = new Map(dns.upstreams.map((u) => [u.text, new Throttle(5000)]));
  return new UpstreamClient(dns.upstreams, {
    timeoutMs: dns.timeoutMs,
    caseRandomization: dns.caseRandomization,
    onTry: (name, ok, durationMs, err) => {
      observer?.upstreamTry?.(name, ok, durationMs);
      const count = ok ? 0 : failures.get(name)?.hit() ?? 1;
      if (count > 0) upstreamLog.warn({ upstream: name, count, durationMs, error: err?.message }, 'upstream tries failed');
    },
  });
}

/**
 * A list that had rules and now has none (a download that returned an HTML error page, an emptied
 * file) would silently stop blocking: refuse the reload instead and keep the running lists.
 */
function refuseEmptiedLists(running: Policy, next: readonly LoadedList[]): void {
  const before = new Map(running.lists.map((l) => [l.name, l.ruleCount]));
  for (const list of next) {
    const had = before.get(list.name) ?? 0;
    if (had > 0 && list.ruleCount === 0) {
      throw new ConfigError(`lists.${list.name}`, `now has 0 rules (had ${had}); keeping the running lists`);
    }
  }
}

function reportRejects(lists: readonly LoadedList[], log: AppLogger): void {
  for (const list of lists) {
    // URL sources without a copy are reported by the list keeper; a copy always has rules
    if (list.ruleCount === 0 && !list.sources.some(isUrlSource)) {
      log.warn({ list: list.name, sources: list.sources }, 'list has no rules: it blocks or allows nothing (ready anyway: its files loaded)');
    }
    if (list.rejectCount === 0) continue;
    log.warn({ list: list.name, count: list.rejectCount,
      first: list.rejects.slice(0, 5).map((r) => `${r.source}:${r.line}: ${r.reason}`) }, 'rejected list lines');
  }
}
