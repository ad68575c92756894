/**
 * Composition root: the current Generation (generation.ts) and the listeners that serve it.
 * Listeners are bound once at start (Unbound's `startup`); a reload builds a complete new
 * Generation beside the running one (`init`) and swaps one reference only when every step
 * succeeded; on any failure the old one keeps serving and the reason is logged and returned.
 * Reloads are single-flight here, not in their callers: a SIGHUP or an admin POST /reload that
 * arrives during a reload is queued (exactly one more reload after it), never dropped or overlapped.
 */
import type { TLSSocket } from 'node:tls';
import type { Config, ListenAddress } from '../config/types.js';
import { loadConfig } from '../config/load.js';
import { defaultConfig, EMBEDDED_SOURCE } from '../config/default.js';
import { DnsPipeline } from '../dns/pipeline.js';

const DNS_PROTOS = ['udp', 'tcp', 'dot', 'doh'] as const;
import { Discovery } from '../dns/discovery.js';
import { UdpTransport, chooseUdpPath } from '../dns/transports/udp.js';
import { kernelUdpDrops } from '../net/udp-drops.js';
import type { UpstreamStats } from '../resolver/upstream.js';
import { TcpTransport } from '../dns/transports/tcp.js';
import { DotTransport } from '../dns/transports/dot.js';
import { DohTransport } from '../dns/transports/doh.js';
import type { CertIdentity } from '../net/peer.js';
import { StreamListener, type Listener } from '../net/listener.js';
import type { HostileLoadSnapshot } from '../metrics/hostile-load.js';
import { BlockLog } from '../log/block-log.js';
import { RefusedClients } from '../log/refused-clients.js';
import { CertRejections, rejectionReason } from '../identity/cert-rejections.js';
import { ConfigError } from '../errors.js';
import { logConfigWarnings } from '../config/warnings.js';
import type { AppLogger } from '../log/logger.js';
import { ListKeeper, type KeeperOptions, type ListStatus } from '../lists/list-keeper.js';
import type { LoadedList } from '../lists/load-lists.js';
import { Policy } from '../policy/policy.js';
import { ProxyHandler } from '../proxy/handler.js';
import { ProxyListener } from '../proxy/server.js';
import { SelfGuard } from '../proxy/self-guard.js';
import { ProxyStats, PROXY_RESULTS } from '../proxy/stats.js';
import { buildGeneration, retireGeneration, type Generation, type GenerationObserver, type TlsListenerKind } from './generation.js';
import { GatewayWatch } from '../identity/gateway-watch.js';
import { Observability } from './observability.js';
import type { UdpBatchCounters } from '../metrics/registry.js';
import { checkReport, type CheckInput, type CheckReport } from './check-report.js';

/** null: the new configuration serves. An Error: the old one stays; ConfigError(s) carry the key path, YAML errors file:line. */
export type ReloadResult = Error | null;

/** Plain counters for the metrics and admin front ends. */
export interface ReloadCounts {
  readonly ok: number;
  readonly failed: number;
  /** Reload requests that arrived during a reload and were folded into the one queued after it. */
  readonly queued: number;
  readonly lastError: Error | null;
}

export interface RuntimeOptions {
  /** Default: a file at log.blocks (tests pass their own). */
  readonly blockLog?: BlockLog;
  /** What a reload reads; default: config.source again (the embedded default stays the embedded default). */
  readonly load?: () => Promise<Config>;
  /** Addresses the Docker gateway warning treats as a container gateway, besides the usual ones (tests). */
  readonly gateways?: readonly string[];
  /** Download and retry timing of URL lists (tests shorten them). */
  readonly lists?: ListTiming;
  /** A dns.workers process: bind the UDP and TCP listeners with SO_REUSEPORT beside the other workers. */
  readonly reusePort?: boolean;
  /** Log config/warnings.ts's warnings after every successful reload (default true; dns.workers: the primary does). */
  readonly reloadWarnings?: boolean;
}

export type ListTiming = Pick<KeeperOptions, 'timeoutMs' | 'maxBytes' | 'firstRetryMs' | 'maxRetryMs'>;

export interface ListenerRole {
  /** Which of Generation.tls this listener takes on every reload. */
  readonly tls?: TlsListenerKind;
  /** Work still in flight on it (shutdown waits for it to reach 0, up to the drain time). */
  readonly inFlight?: () => number;
}

const DRAIN_MS = 5000;
/** Browsers open many connections each; the process's file limit is the real ceiling. */
const PROXY_MAX_CONNECTIONS = 10_000;
/** One host (a NAT, a busy terminal server) may hold many; not all of them. */
const PROXY_MAX_CONNECTIONS_PER_CLIENT = 1_000;

export class Runtime {
  private gen: Generation;
  readonly pipeline: DnsPipeline;
  readonly blockLog: BlockLog;
  /** Clients refused by access.allow: `total` for metrics, a throttled summary per /24 or /56 in the app log. */
  readonly refusedClients: RefusedClients;
  /** Device certificates presented but not taken: `counts` by reason for metrics, a throttled line per certificate. */
  readonly certRejections: CertRejections;
  private readonly load: () => Promise<Config>;
  private readonly listeners: { readonly listener: Listener; readonly role: ListenerRole }[] = [];
  private counts = { ok: 0, failed: 0, queued: 0, lastError: null as Error | null };
  private active: Promise<ReloadResult> | null = null;
  private queued: { next: () => Promise<Config>; readonly result: Promise<ReloadResult> } | null = null;
  private stopping = false;
  /** Metrics registry, readiness and the admin listener. */
  readonly observability: Observability;
  private proxyHandler: ProxyHandler | null = null;
  /** Proxy request counters (appfence_proxy_requests_total{result}). */
  readonly proxyStats = new ProxyStats();
  private reusePort = false;
  private reloadWarnings = true;

  private constructor(gen: Generation, blockLog: BlockLog, load: () => Promise<Config>, private readonly log: AppLogger,
    observability: Observability, private readonly observer: GenerationObserver, private readonly keeper: ListKeeper) {
    this.gen = gen;
    this.blockLog = blockLog;
    this.load = load;
    this.refusedClients = new RefusedClients(log.child({ component: 'access' }));
    this.certRejections = new CertRejections(log.child({ component: 'identity' }));
    this.pipeline = new DnsPipeline(this, blockLog, log.child({ component: 'dns' }), this.refusedClients);
    this.observability = observability;
    observability.observe({
      dnsStats: this.pipeline.stats,
      blockLog,
      cache: () => this.gen.cache,
      lists: () => this.gen.policy.lists,
      listStatus: () => this.keeper.status(),
      listeners: () => this.listeners.map(({ listener }) => ({ name: listener.name, bound: isBound(listener) })),
      proxyRequests: () => PROXY_RESULTS.map((result) => [result, this.proxyStats.get(result)] as const),
      certRejections: () => Object.entries(this.certRejections.counts),
      // access refusals are the DNS pipeline's 'refused' result (the proxy's 'refused' also counts other refusals)
      accessRefusals: () => DNS_PROTOS.map((proto) => [proto, this.pipeline.stats.get(proto, 'refused')] as const),
      udpBatch: () => this.udpBatchStats(),
      hostileLoad: () => this.hostileLoad(),
    });
  }

  static async start(config: Config, log: AppLogger, options: RuntimeOptions = {}): Promise<Runtime> {
    // Process metrics (GC observer, event-loop monitor) only where something can scrape them.
    const observability = new Observability({ processMetrics: config.admin !== undefined });
    const observer: GenerationObserver = {
      upstreamTry: (name, ok, ms) => observability.metrics.upstreamTry(name, ok, ms),
      clients: new GatewayWatch({
        gateways: options.gateways ?? [],
        onSuspect: (address, requests) => log.warn({ address, requests, docs: 'docs/operations.md#1-deploy-with-docker-compose' },
          'all recent clients come from one address that looks like a container gateway: behind NAT every device looks the same ' +
          'and subnet identity cannot work; run with host networking (compose: network_mode: host)'),
      }),
    };
    let runtime: Runtime | undefined;
    const keeper = new ListKeeper({ ...options.lists, log: log.child({ component: 'lists' }),
      onRefresh: (list) => runtime?.takeRefreshedList(list) });
    const gen = await buildGeneration(config, log, undefined, observer, (lists, stateDir, guard) => keeper.load(lists, stateDir, guard));
    const load = options.load ?? (() => (config.source === EMBEDDED_SOURCE ? Promise.resolve(defaultConfig()) : loadConfig(config.source)));
    runtime = new Runtime(gen, options.blockLog ?? new BlockLog({ destination: config.log.blocks }), load, log, observability, observer, keeper);
    const started = runtime;
    runtime.reusePort = options.reusePort ?? false;
    runtime.reloadWarnings = options.reloadWarnings ?? true;
    try {
      await runtime.blockLog.ready().catch((err: unknown) => {
        throw new ConfigError('log.blocks', `cannot open "${config.log.blocks}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
      });
      await runtime.listen();
      await keeper.activate();
      runtime.designate();
      // Last: once it answers, /readyz can be true. It shares the runtime's life cycle (stopped by stop()).
      // dns.workers: the workers share the DNS ports, not the admin port (the primary does not serve it yet).
      if (config.admin !== undefined && !runtime.reusePort) {
        await observability.start(config.admin, {
          reload: () => started.reload(),
          check: async (request) => started.check(request),
        }, log.child({ component: 'admin' }));
      }
    } catch (err) {
      await runtime.stop(0);
      throw err;
    }
    return runtime;
  }

  /** The generation serving now. Read it once per request and pass that one on: a reload may swap it mid-request. */
  get generation(): Generation {
    return this.gen;
  }

  get config(): Config {
    return this.gen.config;
  }

  get reloads(): ReloadCounts {
    return { ...this.counts };
  }

  /** The admin listener's bound port (0 without `admin`). */
  get adminPort(): number {
    return this.observability.adminPort;
  }

  /** The decision `appfence check` explains, against the generation serving now (GET /check). */
  check(request: CheckInput): CheckReport {
    return checkReport(request, this.gen);
  }

  /** Per list: rule count, whether it is ready (has its rules), last success and last error (for /readyz and /metrics). */
  listStatus(): ListStatus[] {
    return this.keeper.status();
  }

  /** A URL list refreshed on its own schedule: the same generation with that list's new rules. */
  private takeRefreshedList(list: LoadedList): void {
    const gen = this.gen;
    const lists = gen.policy.lists.map((l) => (l.name === list.name ? list : l));
    this.gen = Object.freeze({ ...gen, policy: Policy.compile(gen.config, lists) });
  }

  /** The batched UDP path's counters summed over the DNS UDP sockets; null when every one runs on node:dgram. */
  udpBatchStats(): UdpBatchCounters | null {
    let sum: { batches: number; datagrams: number; truncated: number; sendErrors: number; recvErrors: number } | null = null;
    for (const { listener } of this.listeners) {
      const s = listener instanceof UdpTransport ? listener.batchStats() : null;
      if (s === null) continue;
      sum ??= { batches: 0, datagrams: 0, truncated: 0, sendErrors: 0, recvErrors: 0 };
      sum.batches += s.batches;
      sum.datagrams += s.datagrams;
      sum.truncated += s.truncated;
      sum.sendErrors += s.sendErrors;
      sum.recvErrors += s.recvErrors;
    }
    return sum;
  }

  /** Upstream health and the outstanding-query caps' counters (for metrics). */
  upstreamStats(): UpstreamStats {
    return this.gen.upstream.stats();
  }

  /**
   * UDP counters for metrics: answers the rate limit dropped or sent as TC=1 (since start, across
   * reloads), and datagrams the kernel dropped from our DNS sockets' full receive queues (null off Linux).
   */
  async udpStats(): Promise<{ rateLimitDropped: number; rateLimitSlipped: number; kernelReceiveDrops: number | null }> {
    const limiter = this.gen.rateLimiter;
    return {
      rateLimitDropped: limiter.dropped,
      rateLimitSlipped: limiter.slipped,
      kernelReceiveDrops: await kernelUdpDrops(this.ports.udp),
    };
  }

  /** Everything issue 14's defences count, for /metrics (metrics/hostile-load.ts). */
  async hostileLoad(): Promise<HostileLoadSnapshot> {
    const { rateLimitDropped, rateLimitSlipped, kernelReceiveDrops } = await this.udpStats();
    const connections = new Map<string, { proto: string; evicted: number; refusedClientCap: number; refusedFull: number }>();
    for (const { listener } of this.listeners) {
      const proto = listener instanceof TcpTransport ? 'tcp' : listener instanceof DotTransport ? 'dot' : listener instanceof DohTransport ? 'doh' : null;
      if (proto === null || !(listener instanceof StreamListener)) continue;
      const c = listener.connectionCounts;
      const sum = connections.get(proto) ?? { proto, evicted: 0, refusedClientCap: 0, refusedFull: 0 };
      connections.set(proto, { proto, evicted: sum.evicted + c.evicted, refusedClientCap: sum.refusedClientCap + c.refusedClientCap,
        refusedFull: sum.refusedFull + c.refusedFull });
    }
    return { rateLimit: { dropped: rateLimitDropped, slipped: rateLimitSlipped }, kernelReceiveDrops,
      upstream: this.upstreamStats(), connections: [...connections.values()] };
  }

  /** Actual ports, in the order of dns.listen (useful when the config asked for port 0). */
  get ports(): { udp: number[]; tcp: number[]; dot: number[]; doh: number[]; proxy: number[]; proxyTls: number[] } {
    const of = (is: (l: Listener) => boolean): number[] => this.listeners.filter((l) => is(l.listener)).map((l) => l.listener.port);
    return { udp: of((l) => l instanceof UdpTransport), tcp: of((l) => l instanceof TcpTransport),
      dot: of((l) => l instanceof DotTransport), doh: of((l) => l instanceof DohTransport),
      proxy: of((l) => l instanceof ProxyListener && !l.secure), proxyTls: of((l) => l instanceof ProxyListener && l.secure) };
  }

  /**
   * Joins a bound listener to the life cycle: new TLS options on every reload (role.tls), and on
   * stop: stop accepting, drain, close. The DNS listeners are added this way; so are the proxy's and admin's.
   */
  addListener(listener: Listener, role: ListenerRole = {}): void {
    this.listeners.push({ listener, role });
  }

  /** RFC 9462: advertise the bound DoH/DoT ports under dns.ddr.target (none without a target). */
  private designate(): void {
    const target = this.gen.config.dns.ddr?.target.toLowerCase().replace(/\.$/, '') ?? null;
    const { doh, dot } = this.ports;
    this.pipeline.discovery = new Discovery(target, doh, dot);
  }

  /** Which socket path serves each UDP listener ('batch' or 'dgram'), in the order of dns.listen. */
  get udpPaths(): ('batch' | 'dgram')[] {
    return this.listeners.flatMap(({ listener: l }) => (l instanceof UdpTransport ? [l.path] : []));
  }

  /** Certificate identity of a new TLS connection, judged by the generation current at handshake time. */
  private identifyTls(socket: TLSSocket): CertIdentity | undefined {
    const verdict = this.gen.certs?.judgeSocket(socket);
    if (verdict === undefined || verdict.identity !== undefined) return verdict?.identity;
    this.certRejections.note(verdict.cert, rejectionReason(verdict.reason), socket.remoteAddress ?? '');
    return undefined;
  }

  private async listen(): Promise<void> {
    const { dns } = this.gen.config;
    const dnsLog = this.log.child({ component: 'dns' });
    const inFlight = (): number => this.pipeline.inFlight;
    const caps = { idleTimeoutMs: dns.tcpIdleTimeoutMs, maxInFlight: 100, maxConnections: dns.maxConnections,
      maxConnectionsPerClient: dns.maxConnectionsPerClient };
    const reusePort = this.reusePort;
    const udpPath = chooseUdpPath(dns.udpBatch);
    const udps: UdpTransport[] = [];
    for (const [i, addr] of dns.listen.entries()) {
      const key = `dns.listen[${i}]`;
      const udp = await bound(key, addr, UdpTransport.listen(`${key}/udp`, addr, this.pipeline, dnsLog,
        { ...udpPath, reusePort, bufferBytes: dns.udpBufferBytes, rateLimiter: () => this.gen.rateLimiter }));
      udps.push(udp);
      this.addListener(udp, { inFlight });
      // port 0 in tests: TCP follows the port UDP was given, as on a real :53
      const tcpAddr = addr.port === 0 ? { host: addr.host, port: udp.port } : addr;
      this.addListener(await bound(key, tcpAddr, TcpTransport.listen(`${key}/tcp`, tcpAddr, this.pipeline, { ...caps, reusePort }, dnsLog)));
      this.log.info({ listen: `${addr.host}:${udp.port}`, proto: 'udp+tcp' }, 'dns listening');
    }
    if (udps.length > 0) logUdpPath(this.log, dns.udpBatch, udpPath.reason, udps.every((u) => u.path === 'batch'), udpPath.batch !== null);
    const identify = (socket: TLSSocket): CertIdentity | undefined => this.identifyTls(socket);
    const { dot: dotTls, doh: dohTls } = this.gen.tls;
    if (dns.tls !== undefined && dotTls !== undefined) {
      for (const [i, addr] of dns.tls.listen.entries()) {
        const key = `dns.tls.listen[${i}]`;
        const dot = await bound(key, addr, DotTransport.listen(key, addr, this.pipeline, { ...caps, tls: dotTls, identify }, dnsLog));
        this.addListener(dot, { tls: 'dot', inFlight });
        this.log.info({ listen: `${addr.host}:${dot.port}`, proto: 'dot' }, 'dns listening');
      }
    }
    if (dns.https !== undefined && dohTls !== undefined) {
      for (const [i, addr] of dns.https.listen.entries()) {
        const key = `dns.https.listen[${i}]`;
        const doh = await bound(key, addr, DohTransport.listen(key, addr, this.pipeline, { ...caps, tls: dohTls, identify }, dnsLog));
        this.addListener(doh, { tls: 'doh', inFlight });
        this.log.info({ listen: `${addr.host}:${doh.port}`, proto: 'doh' }, 'dns listening');
      }
    }
    await this.listenProxy(identify);
  }

  /** The proxy listeners, after every other one: the loop guard learns each port this process serves. */
  private async listenProxy(identify: (socket: TLSSocket) => CertIdentity | undefined): Promise<void> {
    const { proxy, admin } = this.gen.config;
    if (proxy === undefined) return;
    const guard = new SelfGuard();
    for (const { listener } of this.listeners) guard.add(listenHost(this.gen.config, listener.name), listener.port);
    if (admin !== undefined) guard.add(admin.listen.host, admin.listen.port);
    const log = this.log.child({ component: 'proxy' });
    const handler = new ProxyHandler({
      context: () => this.gen,
      proxyConfig: () => this.gen.config.proxy ?? proxy,
      blockLog: this.blockLog,
      stats: this.proxyStats,
      guard,
      log,
    }, { timeoutMs: proxy.connectTimeoutMs, maxTunnelsPerClient: proxy.maxTunnelsPerClient });
    this.proxyHandler = handler;
    const inFlight = (): number => handler.inFlight;
    const caps = { idleTimeoutMs: proxy.idleTimeoutMs, maxConnections: PROXY_MAX_CONNECTIONS,
      maxConnectionsPerClient: PROXY_MAX_CONNECTIONS_PER_CLIENT, stats: this.proxyStats };
    const start = async (key: string, addr: ListenAddress, secure: boolean): Promise<void> => {
      const tls = secure ? this.gen.tls.proxy : undefined;
      if (secure && tls === undefined) return;
      const listener = await bound(key, addr, ProxyListener.listen(key, addr, handler, tls === undefined ? caps : { ...caps, tls, identify }, log));
      this.addListener(listener, secure ? { tls: 'proxy', inFlight } : { inFlight });
      guard.add(addr.host, listener.port);
      this.log.info({ listen: `${addr.host}:${listener.port}`, proto: secure ? 'https' : 'http' }, 'proxy listening');
    };
    for (const [i, addr] of proxy.listen.entries()) await start(`proxy.listen[${i}]`, addr, false);
    for (const [i, addr] of (proxy.tls?.listen ?? []).entries()) await start(`proxy.tls.listen[${i}]`, addr, true);
  }

  /**
   * Loads `next` (default: the config source again) completely, then swaps. Single-flight: called
   * during a reload, it returns the result of the one reload queued after the running one (which
   * uses the newest `next`), so a burst of SIGHUPs costs at most one extra reload and loses none.
   */
  reload(next: () => Promise<Config> = this.load): Promise<ReloadResult> {
    if (this.active === null) return this.begin(next);
    this.counts.queued++;
    if (this.queued !== null) {
      this.queued.next = next;
      return this.queued.result;
    }
    const running = this.active;
    const queued: { next: () => Promise<Config>; result: Promise<ReloadResult> } = {
      next,
      result: running.then(() => {
        this.queued = null;
        return this.begin(queued.next);
      }),
    };
    this.queued = queued;
    return queued.result;
  }

  private begin(next: () => Promise<Config>): Promise<ReloadResult> {
    const run = this.reloadNow(next);
    this.active = run;
    // registered before any queued reload's callback, so `active` is clear when that one begins
    void run.then(() => {
      if (this.active === run) this.active = null;
    });
    return run;
  }

  private async reloadNow(next: () => Promise<Config>): Promise<ReloadResult> {
    // First, whatever follows: logrotate renamed the file and signalled. A reload that fails must not
    // leave block events going into the rotated file (which logrotate may compress or delete).
    this.blockLog.reopen();
    const old = this.gen;
    try {
      const config = await next();
      const gen = await buildGeneration(config, this.log, old, this.observer, (lists, stateDir, guard) => this.keeper.load(lists, stateDir, guard));
      if (this.stopping) {
        retireGeneration(gen, old);
        throw new Error('shutting down; reload abandoned');
      }
      if (config.log.blocks !== old.config.log.blocks || config.log.level !== old.config.log.level) {
        this.log.warn('log.blocks and log.level changes take effect on restart');
      }
      const addresses = (c: Config): string => JSON.stringify([c.dns.listen, c.dns.tls?.listen, c.dns.https?.listen,
        c.proxy?.listen, c.proxy?.tls?.listen]);
      if (addresses(config) !== addresses(old.config)) this.log.warn('listen addresses changed: they take effect on restart');
      this.gen = gen;
      this.designate();
      // renewed server certificates and device CAs apply to connections accepted from now on
      for (const { listener, role } of this.listeners) {
        const options = role.tls === undefined ? undefined : gen.tls[role.tls];
        if (options !== undefined) listener.setSecureContext?.(options);
      }
      // in-flight exchanges on the old upstream client finish within its timeout
      setTimeout(() => retireGeneration(old, this.stopping ? null : gen), old.config.dns.timeoutMs * (old.config.dns.upstreams.length + 1)).unref();
      await this.keeper.activate();
      this.counts.ok++;
      this.observability.reloaded(null, gen.policy.lists);
      this.log.info({ rules: gen.policy.index.ruleCount, generation: gen.id }, 'reloaded');
      // valid but almost surely wrong, as at start: a reload may have introduced it
      if (this.reloadWarnings) logConfigWarnings(this.log, config);
      return null;
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      this.counts.failed++;
      this.counts.lastError = error;
      this.observability.reloaded(error, []);
      this.log.error({ err }, 'reload failed; the running configuration stays');
      return error;
    }
  }

  /** Stops accepting, lets in-flight work finish for up to `drainMs`, flushes the block log. */
  async stop(drainMs = DRAIN_MS): Promise<void> {
    this.stopping = true;
    // /readyz turns 503 at once; the admin listener itself stays up through the drain.
    this.observability.beginStop();
    this.keeper.close();
    const listeners = this.listeners.map((l) => l.listener);
    // UDP sockets stay open while draining: answers to queries already taken must still go out
    const closed = listeners.map((l) => l.stopAccepting());
    const busy = (): boolean => this.listeners.some((l) => (l.role.inFlight?.() ?? 0) > 0);
    const deadline = Date.now() + drainMs;
    while (busy() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const l of listeners) l.closeConnections();
    await Promise.all(closed);
    this.proxyHandler?.close();
    retireGeneration(this.gen, null);
    this.refusedClients.report();
    await this.observability.stop();
    await this.blockLog.close();
  }
}

/** A listener that stopped accepting (or whose socket closed) has no bound port any more. */
function isBound(listener: Listener): boolean {
  try {
    return listener.port > 0;
  } catch {
    return false; // a closed UDP socket has no address
  }
}

/** The host a DNS listener was bound on, from its key ('dns.listen[0]/udp' → dns.listen[0].host). */
function listenHost(config: Config, name: string): string {
  const m = /^dns\.(?:(tls|https)\.)?listen\[(\d+)\]/.exec(name);
  const list = m?.[1] === 'tls' ? config.dns.tls?.listen : m?.[1] === 'https' ? config.dns.https?.listen : config.dns.listen;
  return list?.[Number(m?.[2] ?? -1)]?.host ?? '0.0.0.0';
}

/** A port in use or not allowed is a configuration problem: exit 2 naming the key, not a stack trace. */
async function bound<T>(keyPath: string, addr: { host: string; port: number }, listening: Promise<T>): Promise<T> {
  try {
    return await listening;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ConfigError(keyPath, `cannot listen on ${addr.host.includes(':') ? `[${addr.host}]` : addr.host}:${addr.port}: ${code}`, { cause: err });
  }
}

/** The one start-up line that says which UDP socket path runs, and why when it is not the batched one. */
function logUdpPath(log: AppLogger, mode: 'auto' | 'off', reason: string, batched: boolean, loaded: boolean): void {
  if (batched) log.info({ udpBatch: mode, path: 'batch', reason }, 'dns udp: batched recvmmsg/sendmmsg (native addon)');
  else log.info({ udpBatch: mode, path: 'dgram', reason: loaded ? 'ENOSYS: the kernel lacks recvmmsg/sendmmsg' : reason },
    'dns udp: node:dgram, one datagram per call');
}
