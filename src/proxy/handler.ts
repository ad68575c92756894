/**
 * One proxy request from the wire to its answer, shared by every proxy listener (plain and TLS):
 *   request line → target → decideTarget (pipeline.ts) → block page | refusal | forward/tunnel.
 * Reads the current configuration once per request (`services.context()`), so a reload is a reference
 * swap, and counts every request once in ProxyStats.
 */
import type http from 'node:http';
import type net from 'node:net';
import type { CertIdentity } from '../net/peer.js';
import type { BlockLog, LogEvent } from '../log/block-log.js';
import type { AppLogger } from '../log/logger.js';
import type { ProxyConfig } from '../config/types.js';
import { blockPage } from './block-page.js';
import { Forwarder } from './forward.js';
import { PAC_CONTENT_TYPE, PAC_PATHS, pacFile, pacTarget } from './pac.js';
import { decideTarget, type DecisionContext, type ProxyOutcome, type ProxyPeer, type ProxyProto } from './pipeline.js';
import type { SelfGuard } from './self-guard.js';
import type { ProxyStats } from './stats.js';
import { absoluteTarget, connectTarget, type Target } from './target.js';
import { openTunnel, rawReply } from './tunnel.js';
import { ClientSlots } from '../net/listener.js';

export interface ProxyServices {
  /** The decision inputs of the running configuration (a reload swaps them). */
  context(): DecisionContext;
  /** The running proxy section (connectPorts, blockPage, pacHost may change on reload). */
  proxyConfig(): ProxyConfig;
  readonly blockLog: BlockLog;
  readonly stats: ProxyStats;
  readonly guard: SelfGuard;
  readonly log: AppLogger;
}

const TEXT = { 'content-type': 'text/plain; charset=utf-8' } as const;

export class ProxyHandler {
  private readonly forwarder: Forwarder;
  /** Concurrent tunnels per client: the same per-address counter the stream listeners use. */
  private readonly tunnels: ClientSlots;
  /** Device-certificate identity of each TLS connection, judged once at handshake. */
  private readonly certs = new WeakMap<net.Socket, CertIdentity>();
  /** Requests and tunnel set-ups waiting on a decision or an origin; shutdown drains them. */
  inFlight = 0;

  constructor(private readonly services: ProxyServices, limits: { timeoutMs: number; maxTunnelsPerClient: number }) {
    this.forwarder = new Forwarder({ timeoutMs: limits.timeoutMs });
    this.tunnels = new ClientSlots(limits.maxTunnelsPerClient);
  }

  setCertificate(socket: net.Socket, identity: CertIdentity | undefined): void {
    if (identity !== undefined) this.certs.set(socket, identity);
  }

  private peer(socket: net.Socket, proto: ProxyProto): ProxyPeer | null {
    const address = socket.remoteAddress;
    return address === undefined ? null : { address, proto, cert: this.certs.get(socket) };
  }

  onRequest(req: http.IncomingMessage, res: http.ServerResponse, secure: boolean): void {
    const url = req.url ?? '';
    if (url.startsWith('/')) return this.local(req, res, secure);
    const target = absoluteTarget(url);
    if (target === null) {
      return this.refuse(res, 400, 'appfence is a forward proxy: send absolute http:// URLs, or CONNECT host:port for https');
    }
    const peer = this.peer(req.socket, 'http');
    if (peer === null) return void req.socket.destroy();
    this.decided(decideTarget(this.services.context(), peer, target), (outcome) => this.answerHttp(req, res, peer, target, outcome));
  }

  onConnect(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    // a reset from the client must concern that client only
    socket.on('error', () => socket.destroy());
    const target = connectTarget(req.url ?? '');
    if (target === null) return this.refuseRaw(socket, 400, 'Bad Request', 'CONNECT needs host:port');
    const peer = this.peer(socket, 'connect');
    if (peer === null) return void socket.destroy();
    const config = this.services.proxyConfig();
    if (!config.connectPorts.includes(target.port)) {
      return this.refuseRaw(socket, 403, 'Forbidden', `CONNECT to port ${target.port} is not allowed (proxy.connectPorts)`);
    }
    if (!this.tunnels.admit(socket, peer.address)) {
      return this.refuseRaw(socket, 429, 'Too Many Requests', 'too many open tunnels from this address');
    }
    this.decided(decideTarget(this.services.context(), peer, target), (outcome) => this.answerConnect(socket, head, peer, target, outcome));
  }

  /** Synchronous outcomes (blocked names, IP literals) answer at once; only a DNS lookup awaits. */
  private decided(outcome: ProxyOutcome | Promise<ProxyOutcome>, act: (o: ProxyOutcome) => Promise<void> | void): void {
    if (!(outcome instanceof Promise)) return void this.track(act(outcome));
    this.inFlight++;
    outcome.then(act).catch((err: unknown) => this.services.log.error({ err }, 'proxy request failed')).finally(() => this.inFlight--);
  }

  private track(p: Promise<void> | void): void {
    if (p === undefined) return;
    this.inFlight++;
    p.catch((err: unknown) => this.services.log.error({ err }, 'proxy request failed')).finally(() => this.inFlight--);
  }

  private async answerHttp(req: http.IncomingMessage, res: http.ServerResponse, peer: ProxyPeer, target: Target, o: ProxyOutcome): Promise<void> {
    const { stats } = this.services;
    switch (o.kind) {
      case 'refused':
        return this.refuse(res, 403, 'access denied: this address may not use the proxy');
      case 'blocked': {
        stats.count('blocked');
        this.logBlock(peer, target, o);
        const body = blockPage({ host: target.host, rule: o.rule.rule, list: o.rule.list, group: o.group.name, cname: o.cname,
          contact: this.services.proxyConfig().blockPage.contact });
        res.writeHead(403, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
        return void res.end(body);
      }
      case 'unresolved':
        stats.count('error');
        return this.reply(res, 502, `Bad Gateway: cannot resolve ${target.host}: ${o.detail}`);
      case 'allowed': {
        if (this.services.guard.isSelf(o.address, target.port)) return this.refuse(res, 403, 'refused: that address is this proxy itself');
        this.logQuery(peer, target, o);
        const failure = await this.forwarder.forward(req, res, o.address, target.port, target.authority);
        stats.count(failure === null ? 'allowed' : 'error');
      }
    }
  }

  private async answerConnect(socket: net.Socket, head: Buffer, peer: ProxyPeer, target: Target, o: ProxyOutcome): Promise<void> {
    const { stats } = this.services;
    switch (o.kind) {
      case 'refused':
        return this.refuseRaw(socket, 403, 'Forbidden', 'access denied: this address may not use the proxy');
      case 'blocked':
        stats.count('blocked');
        this.logBlock(peer, target, o);
        return rawReply(socket, 403, 'Forbidden', `blocked by policy: ${target.host} (rule ${o.rule.rule}, list ${o.rule.list})`);
      case 'unresolved':
        stats.count('error');
        return rawReply(socket, 502, 'Bad Gateway', `cannot resolve ${target.host}: ${o.detail}`);
      case 'allowed': {
        if (this.services.guard.isSelf(o.address, target.port)) return this.refuseRaw(socket, 403, 'Forbidden', 'refused: that address is this proxy itself');
        this.logQuery(peer, target, o);
        const { connectTimeoutMs, idleTimeoutMs } = this.services.proxyConfig();
        const result = await openTunnel(socket, head, o.address, target.port, { connectTimeoutMs, idleTimeoutMs });
        stats.count(result.ok ? 'allowed' : 'error');
      }
    }
  }

  private event(peer: ProxyPeer, target: Target, o: Extract<ProxyOutcome, { kind: 'blocked' | 'allowed' }>, answer: string): LogEvent {
    const rule = o.kind === 'blocked' ? o.rule : null;
    return { client: peer.address, group: o.group.name, via: o.who.via, device: o.who.device ?? null, name: target.host,
      rule: rule?.rule ?? null, list: rule?.list ?? null, answer };
  }

  private logBlock(peer: ProxyPeer, target: Target, o: Extract<ProxyOutcome, { kind: 'blocked' }>): void {
    const ev = this.event(peer, target, o, 'forbidden');
    if (o.cname !== undefined) ev.cname = o.cname;
    this.services.blockLog.block(peer.proto, ev);
  }

  private logQuery(peer: ProxyPeer, target: Target, o: Extract<ProxyOutcome, { kind: 'allowed' }>): void {
    // the group's logQueries (validation resolved it from log.queries when the group has none), as DNS does
    if (o.group.logQueries) this.services.blockLog.query(peer.proto, this.event(peer, target, o, 'forward'));
  }

  /** Origin-form requests are for the proxy itself: the PAC file, nothing else. */
  private local(req: http.IncomingMessage, res: http.ServerResponse, secure: boolean): void {
    const path = (req.url ?? '').split('?', 1)[0] ?? '';
    if (!PAC_PATHS.has(path)) return this.refuse(res, 400, 'appfence is a forward proxy; the only local paths are /proxy.pac and /wpad.dat');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return this.refuse(res, 405, 'the PAC file is read with GET');
    }
    const socket = req.socket;
    const body = pacFile(pacTarget(this.services.proxyConfig().pacHost, req.headers.host, socket.localAddress ?? '127.0.0.1', socket.localPort ?? 0), secure);
    res.writeHead(200, { 'content-type': PAC_CONTENT_TYPE, 'content-length': Buffer.byteLength(body), 'cache-control': 'max-age=300' });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private refuse(res: http.ServerResponse, status: number, text: string): void {
    this.services.stats.count('refused');
    this.reply(res, status, text);
  }

  private reply(res: http.ServerResponse, status: number, text: string): void {
    const body = `${text}\n`;
    // a client that sent something we cannot serve gets no second chance on that connection
    if (status === 400) res.shouldKeepAlive = false;
    res.writeHead(status, { ...TEXT, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  private refuseRaw(socket: net.Socket, status: number, reason: string, text: string): void {
    this.services.stats.count('refused');
    rawReply(socket, status, reason, text);
  }

  close(): void {
    this.forwarder.close();
  }
}
