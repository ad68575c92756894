/**
 * Composition root: Config → lists → Policy → Snapshot → listeners. Reload builds a complete new
 * Snapshot beside the running one and swaps one reference only when every step succeeded; on any
 * failure the old policy keeps serving and the reason is logged (and returned for the admin API).
 */
import type { Config } from './config/types.js';
import { loadLists, type LoadedList } from './lists/load-lists.js';
import { Policy } from './policy/policy.js';
import { ClientIdentifier } from './identity/identify.js';
import { AnswerCache } from './resolver/cache.js';
import { UpstreamClient } from './resolver/upstream.js';
import { Resolver } from './resolver/resolver.js';
import { DnsPipeline, type Snapshot } from './dns/pipeline.js';
import { Discovery } from './dns/discovery.js';
import { UdpTransport } from './dns/transports/udp.js';
import { TcpTransport } from './dns/transports/tcp.js';
import { DotTransport } from './dns/transports/dot.js';
import { DohTransport } from './dns/transports/doh.js';
import { serverTlsOptions, readPem } from './net/tls-server.js';
import { CertificateIdentifier } from './identity/certificate.js';
import type { CertIdentity } from './net/peer.js';
import type { TLSSocket, TlsOptions } from 'node:tls';
import { BlockLog } from './log/block-log.js';
import type { Listener } from './net/listener.js';
import { ConfigError } from './errors.js';
import { Throttle } from './log/throttle.js';
import type { AppLogger } from './log/logger.js';

interface Built {
  readonly config: Config;
  readonly snapshot: Snapshot;
  readonly cache: AnswerCache;
  readonly upstream: UpstreamClient;
  /** Device-certificate judge; null without `clientCerts`. */
  readonly certs: CertificateIdentifier | null;
  readonly dotTls: TlsOptions | null;
  readonly dohTls: TlsOptions | null;
}

const DRAIN_MS = 5000;

export class Runtime {
  private built: Built;
  readonly pipeline: DnsPipeline;
  readonly blockLog: BlockLog;
  private readonly udp: UdpTransport[] = [];
  private readonly tcp: TcpTransport[] = [];
  private readonly dot: DotTransport[] = [];
  private readonly doh: DohTransport[] = [];
  reloads = { ok: 0, failed: 0 };

  private constructor(built: Built, blockLog: BlockLog, private readonly log: AppLogger) {
    this.built = built;
    this.blockLog = blockLog;
    this.pipeline = new DnsPipeline(built.snapshot, blockLog, log.child({ component: 'dns' }));
  }

  static async start(config: Config, log: AppLogger, blockLog?: BlockLog): Promise<Runtime> {
    const built = await build(config, log, null);
    const runtime = new Runtime(built, blockLog ?? new BlockLog({ destination: config.log.blocks }), log);
    try {
      await runtime.blockLog.ready().catch((err: unknown) => {
        throw new ConfigError('log.blocks', `cannot open "${config.log.blocks}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
      });
      await runtime.listen();
      runtime.designate();
    } catch (err) {
      await runtime.stop(0);
      throw err;
    }
    return runtime;
  }

  get config(): Config {
    return this.built.config;
  }

  get snapshot(): Snapshot {
    return this.built.snapshot;
  }

  get cache(): AnswerCache {
    return this.built.cache;
  }

  /** Actual ports, in the order of dns.listen (useful when the config asked for port 0). */
  get ports(): { udp: number[]; tcp: number[]; dot: number[]; doh: number[] } {
    return { udp: this.udp.map((t) => t.port), tcp: this.tcp.map((t) => t.port), dot: this.dot.map((t) => t.port), doh: this.doh.map((t) => t.port) };
  }

  /** RFC 9462: advertise the bound DoH/DoT ports under dns.ddr.target (none without a target). */
  private designate(): void {
    const target = this.built.config.dns.ddr?.target.toLowerCase().replace(/\.$/, '') ?? null;
    this.pipeline.discovery = new Discovery(target, this.doh.map((t) => t.port), this.dot.map((t) => t.port));
  }

  /** Certificate identity of a new TLS connection, judged by the policy current at handshake time. */
  private identifyTls(socket: TLSSocket): CertIdentity | undefined {
    return this.built.certs?.identifySocket(socket);
  }

  private async listen(): Promise<void> {
    const { dns } = this.built.config;
    const dnsLog = this.log.child({ component: 'dns' });
    for (const [i, addr] of dns.listen.entries()) {
      const udp = await bound(`dns.listen[${i}]`, addr, UdpTransport.listen(`dns.listen[${i}]/udp`, addr, this.pipeline, dnsLog));
      this.udp.push(udp);
      // port 0 in tests: TCP follows the port UDP was given, as on a real :53
      const tcpAddr = addr.port === 0 ? { host: addr.host, port: udp.port } : addr;
      this.tcp.push(await bound(`dns.listen[${i}]`, tcpAddr, TcpTransport.listen(`dns.listen[${i}]/tcp`, tcpAddr, this.pipeline,
        { idleTimeoutMs: dns.tcpIdleTimeoutMs, maxInFlight: 100, maxConnections: dns.maxConnections,
          maxConnectionsPerClient: dns.maxConnectionsPerClient }, dnsLog)));
      this.log.info({ listen: `${addr.host}:${udp.port}`, proto: 'udp+tcp' }, 'dns listening');
    }
    // Said out loud rather than ignored: these sections validate (configs written for later releases
    // load) but their front ends are not part of this release.
    if (this.built.config.proxy !== undefined) this.log.warn({ listen: this.built.config.proxy.listen }, 'proxy: not built yet; not started');
    if (this.built.config.admin !== undefined) this.log.warn({ listen: this.built.config.admin.listen }, 'admin API: not built yet; not started');
    const identify = (socket: TLSSocket): CertIdentity | undefined => this.identifyTls(socket);
    const stream = { idleTimeoutMs: dns.tcpIdleTimeoutMs, maxInFlight: 100, maxConnections: dns.maxConnections,
      maxConnectionsPerClient: dns.maxConnectionsPerClient };
    if (dns.tls !== undefined && this.built.dotTls !== null) {
      for (const [i, addr] of dns.tls.listen.entries()) {
        const dot = await bound(`dns.tls.listen[${i}]`, addr, DotTransport.listen(`dns.tls.listen[${i}]`, addr, this.pipeline, { ...stream, tls: this.built.dotTls, identify }, dnsLog));
        this.dot.push(dot);
        this.log.info({ listen: `${addr.host}:${dot.port}`, proto: 'dot' }, 'dns listening');
      }
    }
    if (dns.https !== undefined && this.built.dohTls !== null) {
      for (const [i, addr] of dns.https.listen.entries()) {
        const doh = await bound(`dns.https.listen[${i}]`, addr, DohTransport.listen(`dns.https.listen[${i}]`, addr, this.pipeline,
          { tls: this.built.dohTls, identify, maxConnections: dns.maxConnections,
            maxConnectionsPerClient: dns.maxConnectionsPerClient, idleTimeoutMs: dns.tcpIdleTimeoutMs }, dnsLog));
        this.doh.push(doh);
        this.log.info({ listen: `${addr.host}:${doh.port}`, proto: 'doh' }, 'dns listening');
      }
    }
  }

  /** Loads `next` completely, then swaps. Returns the error when the old configuration stays. */
  async reload(next: () => Promise<Config>): Promise<Error | null> {
    try {
      const config = await next();
      const built = await build(config, this.log, this.built);
      refuseEmptiedLists(this.built.snapshot.policy, built.snapshot.policy);
      if (config.log.blocks !== this.built.config.log.blocks || config.log.level !== this.built.config.log.level) {
        this.log.warn('log.blocks and log.level changes take effect on restart');
      }
      this.blockLog.reopen();
      const listeners = (c: Config): string => JSON.stringify([c.dns.listen, c.dns.tls?.listen, c.dns.https?.listen]);
      if (listeners(config) !== listeners(this.built.config)) {
        this.log.warn('listen addresses changed: they take effect on restart');
      }
      const old = this.built;
      this.built = built;
      this.pipeline.snapshot = built.snapshot;
      this.designate();
      // renewed server certificates and device CAs apply to connections accepted from now on
      if (built.dotTls !== null) for (const t of this.dot) t.setSecureContext(built.dotTls);
      if (built.dohTls !== null) for (const t of this.doh) t.setSecureContext(built.dohTls);
      // in-flight exchanges on the old upstream client finish within its timeout
      if (old.upstream !== built.upstream) setTimeout(() => old.upstream.close(), old.config.dns.timeoutMs * (old.config.dns.upstreams.length + 1)).unref();
      this.reloads.ok++;
      this.log.info({ rules: built.snapshot.policy.index.ruleCount }, 'reloaded');
      return null;
    } catch (err) {
      this.reloads.failed++;
      this.log.error({ err }, 'reload failed; the running configuration stays');
      return err instanceof Error ? err : new Error(String(err));
    }
  }

  /** Stops accepting, lets in-flight queries finish for up to `drainMs`, flushes the block log. */
  async stop(drainMs = DRAIN_MS): Promise<void> {
    const listeners: Listener[] = [...this.udp, ...this.tcp, ...this.dot, ...this.doh];
    // UDP sockets stay open while draining: answers to queries already taken must still go out
    const closed = listeners.map((l) => l.stopAccepting());
    const deadline = Date.now() + drainMs;
    while (this.pipeline.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const l of listeners) l.closeConnections();
    await Promise.all(closed);
    this.built.upstream.close();
    await this.blockLog.close();
  }
}

/**
 * A list that had rules and now has none (a download that returned an HTML error page, an emptied
 * file) would silently stop blocking: refuse the reload instead and keep the running lists.
 */
function refuseEmptiedLists(running: Policy, next: Policy): void {
  const before = new Map(running.lists.map((l) => [l.name, l.ruleCount]));
  for (const list of next.lists) {
    const had = before.get(list.name) ?? 0;
    if (had > 0 && list.ruleCount === 0) {
      throw new ConfigError(`lists.${list.name}`, `now has 0 rules (had ${had}); keeping the running lists`);
    }
  }
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

async function build(config: Config, log: AppLogger, previous: Built | null): Promise<Built> {
  const listLog = log.child({ component: 'lists' });
  const lists = await loadLists(config.lists, { onWarning: (msg) => listLog.warn({ detail: msg }, 'list source warning') });
  reportRejects(lists, listLog);
  const policy = Policy.compile(config, lists);
  const { dns } = config;
  const sameUpstreams = previous !== null &&
    JSON.stringify([previous.config.dns.upstreams, previous.config.dns.timeoutMs]) === JSON.stringify([dns.upstreams, dns.timeoutMs]);
  const sameCache = previous !== null && JSON.stringify(previous.config.dns.cache) === JSON.stringify(dns.cache);
  const upstreamLog = log.child({ component: 'resolver.upstream' });
  const failures = new Map(dns.upstreams.map((u) => [u.text, new Throttle(5000)]));
  const upstream = sameUpstreams ? previous.upstream : new UpstreamClient(dns.upstreams, {
    timeoutMs: dns.timeoutMs,
    onTry: (name, ok, durationMs, err) => {
      const count = ok ? 0 : failures.get(name)?.hit() ?? 1;
      if (count > 0) upstreamLog.warn({ upstream: name, count, durationMs, error: err?.message }, 'upstream tries failed');
    },
  });
  // The cache holds answers, not decisions, so it survives a policy reload.
  const cache = sameCache ? previous.cache : new AnswerCache(dns.cache);
  let caPems: string[] | null = null;
  let certs: CertificateIdentifier | null = null;
  if (config.clientCerts !== undefined) {
    caPems = await Promise.all(config.clientCerts.ca.map((f, i) => readPem(f, `clientCerts.ca[${i}]`)));
    certs = new CertificateIdentifier(caPems, config.groups);
  }
  const clientAuth = caPems === null || config.clientCerts === undefined ? undefined : CertificateIdentifier.tlsOptions(caPems, config.clientCerts.require);
  const dotTls = dns.tls === undefined ? null : await serverTlsOptions(dns.tls, 'dns.tls', clientAuth);
  const dohTls = dns.https === undefined ? null : await serverTlsOptions(dns.https, 'dns.https', clientAuth);
  const snapshot: Snapshot = Object.freeze({
    policy,
    identifier: new ClientIdentifier(config.access.allow, config.groups),
    resolver: new Resolver(cache, upstream),
    logQueries: config.log.queries,
  });
  listLog.info({ count: policy.index.ruleCount, lists: lists.map((l) => `${l.name}=${l.ruleCount}`).join(' ') }, 'lists loaded');
  return { config, snapshot, cache, upstream, certs, dotTls, dohTls };
}

function reportRejects(lists: readonly LoadedList[], log: AppLogger): void {
  for (const list of lists) {
    if (list.rejectCount === 0) continue;
    log.warn({ list: list.name, count: list.rejectCount,
      first: list.rejects.slice(0, 5).map((r) => `${r.source}:${r.line}: ${r.reason}`) }, 'rejected list lines');
  }
}
