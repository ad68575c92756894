/**
 * Sends a client's question to the configured upstreams (config `dns.upstreams`, `dns.timeoutMs`) and
 * returns the first acceptable answer's bytes. What goes upstream is our own query (wire/write.ts
 * upstreamQuery: RD=1, our bare OPT, none of the client's EDNS options). Decides what counts as an answer
 * (ID + question match, from the upstream's own address/port: a connected UDP socket lets the kernel check
 * that), when to retry (TC=1 → TCP to the same upstream; timeout, network error, SERVFAIL/REFUSED or a
 * referral → next upstream) and when to give up (UpstreamError). Reports every try to `onTry` (metrics).
 * Plain 'udp' and 'tls' (DoT, RFC 7858, one connection per query) and 'https' (DoH POST, RFC 8484) are
 * supported. dns2's client is not used: it rebuilds the query from (name, type), throws on HTTPS/SVCB and
 * its TCPClient has no timeout (libs.md §1.7).
 */
import { randomFillSync } from 'node:crypto';
import dgram from 'node:dgram';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { UpstreamConfig } from '../config/types.js';
import { UpstreamError, type UpstreamFailure } from '../errors.js';
import { isReferral } from '../wire/answer.js';
import { HEADER_SIZE, type Query } from '../wire/read.js';
import { upstreamQuery } from '../wire/write.js';
import { tryOrder, UpstreamHealth, type UpstreamHealthView } from './upstream-health.js';

export interface UpstreamOptions {
  timeoutMs: number;
  onTry?: (upstream: string, ok: boolean, durationMs: number, err?: Error) => void;
  /**
   * UDP sockets open per upstream, and queries each carries before a new socket (new random port) replaces
   * it. Default 1 × 1 = a socket per query: full port entropy against off-path spoofing (Kaminsky), 34k q/s
   * on loopback; a pool of 4 × 64 gives ~75k q/s (bench/wire.mjs) but lets an attacker who learned a port
   * aim at the next 63 queries with 16 bits of ID to guess. Upstream traffic is the cache-miss rate only.
   */
  udpSockets?: number;
  udpSocketUses?: number;
  /**
   * Client queries waiting on the upstreams at once (default 1000), and tries waiting on one upstream
   * (default 500). Past either cap a query is answered SERVFAIL at once (counted in `stats()`) instead of
   * opening yet another socket: a random-name flood must not take every file descriptor and port.
   */
  maxOutstanding?: number;
  maxOutstandingPerUpstream?: number;
  /**
   * dns.caseRandomization (0x20, Unbound's use-caps-for-id): random letter case in each plain-UDP question;
   * a reply must echo it exactly, else it is dropped as forged and counted. A reply that matches only
   * case-insensitively also sends the query once more without 0x20 (first acceptable answer wins); an
   * upstream whose 0x20 query then never got an exact echo, CASE_STRIKES times in a row, gets no 0x20 for
   * CASE_OFF_MS (Unbound's caps fallback).
   */
  caseRandomization?: boolean;
}

/** Plain-query retries in a row (no exact-case answer between) before an upstream is taken to not echo case. */
export const CASE_STRIKES = 3;
export const CASE_OFF_MS = 10 * 60_000;

/** Per upstream: whether it echoes the question's case, as far as we know. */
class CaseEcho {
  strikes = 0;
  offUntil = 0;
  mismatches = 0;
  answered(echoed: boolean, now: number): void {
    if (echoed) this.strikes = 0;
    else if (++this.strikes >= CASE_STRIKES) {
      this.strikes = 0;
      this.offUntil = now + CASE_OFF_MS;
    }
  }
}

export const DEFAULT_MAX_OUTSTANDING = 1000;
export const DEFAULT_MAX_OUTSTANDING_PER_UPSTREAM = 500;

/** Plain counters for metrics (see UpstreamHealthView for the per-upstream part). */
export interface UpstreamStats {
  /** Client queries waiting on an upstream now. */
  readonly outstanding: number;
  /** Queries answered SERVFAIL at once because of the total or every per-upstream cap. */
  readonly overCapServfails: number;
  readonly upstreams: readonly UpstreamHealthView[];
  /** Per upstream, with dns.caseRandomization on: 0x20 in use now, and replies dropped for a case mismatch. */
  readonly caseRandomization: readonly { readonly upstream: string; readonly active: boolean; readonly mismatches: number }[];
}

interface Pending {
  readonly sent: Buffer;
  readonly questionEnd: number;
  readonly resolve: (reply: Buffer) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
  /** 0x20: called for a reply whose question matches only case-insensitively (dropped); undefined: case not checked. */
  readonly onCaseMismatch: (() => void) | undefined;
}

interface PooledSocket {
  readonly socket: dgram.Socket;
  connected: boolean;
  /** Sends waiting for connect(); a socket that fails to connect rejects their queries instead. */
  readonly ready: (() => void)[];
  readonly pending: Map<number, Pending>;
  uses: number;
  retired: boolean;
}

interface Target { readonly cfg: UpstreamConfig; readonly pool: PooledSocket[]; readonly health: UpstreamHealth; readonly caseEcho: CaseEcho }

const RETRY_RCODES: Record<number, string> = { 2: 'SERVFAIL', 5: 'REFUSED' };

/** IDs come from the CSPRNG in batches: crypto.randomInt per query costs more than the rest of a send. */
const idPool = new Uint16Array(4096);
let idNext = idPool.length;
function randomId(): number {
  if (idNext === idPool.length) {
    randomFillSync(idPool);
    idNext = 0;
  }
  return idPool[idNext++]!;
}

export class UpstreamClient {
  private readonly targets: Target[];
  private readonly streams = new Set<Socket>();
  /** Every open UDP socket, pooled or retired and draining. */
  private readonly sockets = new Set<PooledSocket>();
  private readonly socketCount: number;
  private readonly socketUses: number;
  private readonly maxOutstanding: number;
  private readonly maxPerUpstream: number;
  private outstanding = 0;
  private overCapServfails = 0;
  private closed = false;

  constructor(upstreams: readonly UpstreamConfig[], private readonly opts: UpstreamOptions) {
    if (upstreams.length === 0) throw new Error('UpstreamClient needs at least one upstream');
    this.targets = upstreams.map((cfg) => ({ cfg, pool: [], health: new UpstreamHealth(cfg.text), caseEcho: new CaseEcho() }));
    this.socketCount = opts.udpSockets ?? 1;
    this.socketUses = opts.udpSocketUses ?? 1;
    this.maxOutstanding = opts.maxOutstanding ?? DEFAULT_MAX_OUTSTANDING;
    this.maxPerUpstream = opts.maxOutstandingPerUpstream ?? DEFAULT_MAX_OUTSTANDING_PER_UPSTREAM;
  }

  stats(): UpstreamStats {
    const now = performance.now();
    return {
      outstanding: this.outstanding,
      overCapServfails: this.overCapServfails,
      upstreams: this.targets.map((t) => t.health.view(now)),
      caseRandomization: this.opts.caseRandomization !== true ? [] : this.targets.map((t) => ({
        upstream: t.cfg.text, active: t.cfg.proto === 'udp' && now >= t.caseEcho.offUntil, mismatches: t.caseEcho.mismatches })),
    };
  }

  /** `query` is the client's; only its question is sent on (see upstreamQuery). */
  async exchange(query: Buffer, q: Query): Promise<Buffer> {
    if (this.outstanding >= this.maxOutstanding) throw this.overCap(`${this.outstanding} queries already wait on the upstreams`);
    const sent = upstreamQuery(query, q);
    this.outstanding++;
    try {
      return await this.tryInOrder(sent, q);
    } finally {
      this.outstanding--;
    }
  }

  private async tryInOrder(sent: Buffer, q: Query): Promise<Buffer> {
    const now = performance.now();
    for (const target of this.targets) if (target.health.dueForProbe(now)) this.probe(target, sent, q);
    let lastError: UpstreamError | null = null;
    let lastRcodeReply: Buffer | null = null;
    let tried = 0;
    for (const i of tryOrder(this.targets.map((t) => t.health), now)) {
      if (this.closed) break;
      const target = this.targets[i]!;
      const { health } = target;
      if (health.outstanding >= this.maxPerUpstream) {
        health.overCap++;
        continue;
      }
      tried++;
      const started = performance.now();
      health.outstanding++;
      try {
        const reply = await this.tryUpstream(target, sent, q);
        health.answered(performance.now() - started, performance.now());
        const retryRcode = RETRY_RCODES[reply[3]! & 0xf];
        if (retryRcode !== undefined) {
          // Another upstream may do better; if none does, this answer (with any EDE it carries) is passed on.
          lastRcodeReply = reply;
          throw new UpstreamError(target.cfg.text, 'format', `answered ${retryRcode}`);
        }
        // RFC 2308 §5 / RFC 1034 §4.3.1: a referral is no answer; passed on, or cached as NODATA, it blackholes the name.
        if (isReferral(reply)) throw new UpstreamError(target.cfg.text, 'format', 'answered with a referral, not recursion');
        this.opts.onTry?.(target.cfg.text, true, performance.now() - started);
        reply.writeUInt16BE(q.id, 0);
        return reply;
      } catch (err) {
        lastError = asUpstreamError(target.cfg.text, err);
        // an answer we do not use (SERVFAIL, referral) still shows the server is alive: only silence and errors count
        if (lastError.reason !== 'format') health.failed(performance.now());
        this.opts.onTry?.(target.cfg.text, false, performance.now() - started, lastError);
      } finally {
        health.outstanding--;
      }
    }
    if (lastRcodeReply !== null) {
      lastRcodeReply.writeUInt16BE(q.id, 0);
      return lastRcodeReply;
    }
    if (tried === 0 && !this.closed) throw this.overCap(`every upstream has ${this.maxPerUpstream} queries waiting`);
    const names = this.targets.map((t) => t.cfg.text).join(', ');
    throw new UpstreamError(names, lastError?.reason ?? 'network',
      this.closed ? 'upstream client closed' : `all upstreams failed; last: ${lastError?.message ?? 'none'}`, { cause: lastError });
  }

  private overCap(detail: string): UpstreamError {
    this.overCapServfails++;
    return new UpstreamError('upstream', 'overload', `not sent: ${detail}`);
  }

  /**
   * One copy of a real question to an upstream whose backoff ran out; nobody waits on it. Any answer
   * brings the upstream back; silence or an error doubles its backoff.
   */
  private probe(target: Target, sent: Buffer, q: Query): void {
    const { health } = target;
    health.probing = true;
    health.probes++;
    health.outstanding++;
    const started = performance.now();
    this.tryUpstream(target, sent, q).then(
      () => health.answered(performance.now() - started, performance.now()),
      () => health.probeFailed(performance.now()),
    ).finally(() => {
      health.outstanding--;
    });
  }

  close(): void {
    this.closed = true;
    const err = new UpstreamError('upstream', 'network', 'upstream client closed');
    for (const pooled of this.sockets) this.closeSocket(pooled, err);
    for (const socket of this.streams) socket.destroy(err);
  }

  private async tryUpstream(target: Target, query: Buffer, q: Query): Promise<Buffer> {
    const { cfg } = target;
    if (cfg.proto === 'https') return this.httpsTry(cfg, query, q);
    if (cfg.proto === 'tls') return this.streamTry(cfg, query, q, true);
    const reply = await this.udpTry(target, query, q);
    if ((reply[2]! & 0x02) === 0) return reply;
    return this.streamTry(cfg, query, q, false); // TC=1: the full answer only comes over TCP
  }

  /** A UDP try, with 0x20 when dns.caseRandomization is on and this upstream is known to echo case (or not known not to). */
  private udpTry(target: Target, query: Buffer, q: Query): Promise<Buffer> {
    const echo = target.caseEcho;
    if (this.opts.caseRandomization !== true || performance.now() < echo.offUntil) return this.udpSend(target, query, q, undefined);
    const asked = randomizeCase(query, q.questionEnd);
    return new Promise<Buffer>((resolve, reject) => {
      let done = false;
      let failed = 0;
      let retried = false;
      const win = (reply: Buffer): void => {
        if (done) return;
        done = true;
        // nothing above sees our random case: the client's question goes back in
        query.copy(reply, HEADER_SIZE, HEADER_SIZE, q.questionEnd);
        resolve(reply);
      };
      const lose = (err: unknown): void => {
        if (done || ++failed < (retried ? 2 : 1)) return;
        done = true;
        reject(err);
      };
      // The 0x20 query keeps waiting even after the plain retry answered: its exact echo, whenever it comes,
      // shows the upstream keeps case (so forged replies alone never turn 0x20 off); only its silence counts.
      this.udpSend(target, asked, q, () => {
        echo.mismatches++;
        if (retried) return;
        retried = true;
        this.udpSend(target, query, q, undefined).then(win, lose);
      }).then((reply) => {
        echo.answered(true, performance.now());
        win(reply);
      }, (err: unknown) => {
        if (retried) echo.answered(false, performance.now());
        lose(err);
      });
    });
  }

  private udpSend(target: Target, query: Buffer, q: Query, onCaseMismatch: (() => void) | undefined): Promise<Buffer> {
    const pooled = this.pickSocket(target);
    let id = randomId();
    while (pooled.pending.has(id)) id = randomId();
    const sent = Buffer.from(query);
    sent.writeUInt16BE(id, 0);
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        pooled.pending.delete(id);
        this.releaseIfDone(pooled);
        reject(new UpstreamError(target.cfg.text, 'timeout', `no answer over udp within ${this.opts.timeoutMs} ms`));
      }, this.opts.timeoutMs);
      pooled.pending.set(id, { sent, questionEnd: q.questionEnd, resolve, reject, timer, onCaseMismatch });
      const fail = (err: Error): void => this.settle(pooled, id, null,
        new UpstreamError(target.cfg.text, 'network', err.message, { cause: err }));
      const send = (): void => {
        try {
          pooled.socket.send(sent, (err) => err && fail(err));
        } catch (err) {
          fail(err as Error); // the socket was closed under us
        }
      };
      if (pooled.connected) send();
      else pooled.ready.push(send);
    });
  }

  /** A pooled socket with uses left; a used-up one is retired (closed once its last reply is in). */
  private pickSocket(target: Target): PooledSocket {
    const pool = target.pool;
    let pooled = pool.length < this.socketCount ? undefined : pool[randomId() % pool.length];
    if (pooled === undefined) {
      pooled = this.openSocket(target.cfg);
      pool.push(pooled);
    }
    if (++pooled.uses >= this.socketUses) {
      pooled.retired = true;
      pool.splice(pool.indexOf(pooled), 1);
    }
    return pooled;
  }

  private openSocket(cfg: UpstreamConfig): PooledSocket {
    const socket = dgram.createSocket(isIP(cfg.host) === 6 ? 'udp6' : 'udp4');
    const pending = new Map<number, Pending>();
    const pooled: PooledSocket = { socket, connected: false, ready: [], pending, uses: 0, retired: false };
    this.sockets.add(pooled);
    // connect(): the kernel then drops datagrams from any other address/port, and ICMP errors surface.
    socket.connect(cfg.port, cfg.host, () => {
      pooled.connected = true;
      for (const send of pooled.ready.splice(0)) send();
    });
    socket.on('message', (msg: Buffer) => this.onDatagram(pooled, msg));
    socket.on('error', (err: Error) => this.closeSocket(pooled, new UpstreamError(cfg.text, 'network', err.message, { cause: err })));
    socket.unref();
    return pooled;
  }

  private onDatagram(pooled: PooledSocket, msg: Buffer): void {
    if (msg.length < HEADER_SIZE || (msg[2]! & 0x80) === 0) return;
    const p = pooled.pending.get(msg.readUInt16BE(0));
    // A wrong ID or question is a stale or spoofed reply: ignore it and keep waiting for the real one.
    if (p === undefined || !sameQuestion(msg, p.sent, p.questionEnd)) return;
    // 0x20: the case we chose was not echoed, so whoever sent this did not see our query (or the upstream ignores case)
    if (p.onCaseMismatch !== undefined && !msg.subarray(HEADER_SIZE, p.questionEnd).equals(p.sent.subarray(HEADER_SIZE, p.questionEnd))) {
      p.onCaseMismatch();
      return;
    }
    this.settle(pooled, msg.readUInt16BE(0), msg, null);
  }

  private settle(pooled: PooledSocket, id: number, reply: Buffer | null, err: Error | null): void {
    const p = pooled.pending.get(id);
    if (p === undefined) return;
    pooled.pending.delete(id);
    clearTimeout(p.timer);
    if (reply !== null) p.resolve(reply);
    else p.reject(err ?? new Error('no reply'));
    this.releaseIfDone(pooled);
  }

  private releaseIfDone(pooled: PooledSocket): void {
    if (pooled.retired && pooled.pending.size === 0) this.closeSocket(pooled, null);
  }

  private closeSocket(pooled: PooledSocket, err: Error | null): void {
    if (!this.sockets.delete(pooled)) return;
    pooled.retired = true;
    pooled.ready.length = 0;
    for (const [id, p] of pooled.pending) {
      pooled.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(err ?? new Error('socket closed'));
    }
    for (const { pool } of this.targets) if (pool.includes(pooled)) pool.splice(pool.indexOf(pooled), 1);
    pooled.socket.close();
  }

  /** One query over TCP or TLS with RFC 1035 §4.2.2 length framing, on its own connection. */
  private streamTry(cfg: UpstreamConfig, query: Buffer, q: Query, useTls: boolean): Promise<Buffer> {
    const proto = useTls ? 'tls' : 'tcp';
    const framed = Buffer.allocUnsafe(query.length + 2);
    framed.writeUInt16BE(query.length, 0);
    query.copy(framed, 2);
    framed.writeUInt16BE(randomId(), 2);
    const sent = framed.subarray(2);
    return new Promise<Buffer>((resolve, reject) => {
      const socket = useTls
        ? tlsConnect({ host: cfg.host, port: cfg.port, ...(isIP(cfg.host) === 0 ? { servername: cfg.host } : {}) })
        : netConnect({ host: cfg.host, port: cfg.port });
      this.streams.add(socket);
      let received: Buffer = Buffer.alloc(0);
      let done = false;
      const finish = (reply: Buffer | null, err: UpstreamError | null): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.streams.delete(socket);
        socket.destroy();
        if (reply !== null) resolve(reply);
        else reject(err ?? new UpstreamError(cfg.text, 'network', `${proto} connection closed`));
      };
      const timer = setTimeout(() => finish(null, new UpstreamError(cfg.text, 'timeout',
        `no answer over ${proto} within ${this.opts.timeoutMs} ms`)), this.opts.timeoutMs);
      socket.on(useTls ? 'secureConnect' : 'connect', () => socket.write(framed));
      socket.on('data', (chunk: Buffer) => {
        received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
        if (received.length < 2 || received.length < 2 + received.readUInt16BE(0)) return;
        const reply = Buffer.from(received.subarray(2, 2 + received.readUInt16BE(0)));
        const ok = reply.length >= HEADER_SIZE && reply.readUInt16BE(0) === sent.readUInt16BE(0) &&
          sameQuestion(reply, sent, q.questionEnd);
        finish(ok ? reply : null, ok ? null : new UpstreamError(cfg.text, 'mismatch', `${proto} answer for another query`));
      });
      socket.on('error', (err: Error) => finish(null, new UpstreamError(cfg.text, 'network', err.message, { cause: err })));
      socket.on('close', () => finish(null, null));
    });
  }

  /** DoH POST (RFC 8484 §4.1): ID 0 so HTTP caches can share answers; ours is restored by the caller. */
  private async httpsTry(cfg: UpstreamConfig, query: Buffer, q: Query): Promise<Buffer> {
    const sent = Buffer.from(query);
    sent.writeUInt16BE(0, 0);
    const res = await fetch(cfg.url ?? `https://${cfg.host}:${cfg.port}/dns-query`, {
      method: 'POST',
      headers: { 'content-type': 'application/dns-message', accept: 'application/dns-message' },
      body: sent,
      signal: AbortSignal.timeout(this.opts.timeoutMs),
    });
    if (res.status !== 200) throw new UpstreamError(cfg.text, 'format', `HTTP ${res.status}`);
    const reply = Buffer.from(await res.arrayBuffer());
    if (reply.length < HEADER_SIZE || (reply[2]! & 0x80) === 0 || !sameQuestion(reply, sent, q.questionEnd)) {
      throw new UpstreamError(cfg.text, 'mismatch', 'DoH answer for another query');
    }
    return reply;
  }
}

/** Same question (one entry; name compared case-insensitively, type, class), as the query's bytes have it. */
function sameQuestion(reply: Buffer, sent: Buffer, questionEnd: number): boolean {
  if (reply.length < questionEnd || reply.readUInt16BE(4) !== 1) return false;
  if (reply.readUInt32BE(questionEnd - 4) !== sent.readUInt32BE(questionEnd - 4)) return false;
  for (let i = HEADER_SIZE; i < questionEnd - 4; i++) {
    const a = reply[i]!;
    const b = sent[i]!;
    if (a !== b && ((a | 0x20) !== (b | 0x20) || (a | 0x20) < 0x61 || (a | 0x20) > 0x7a)) return false;
  }
  return true;
}

/** Random bytes for 0x20, drawn in batches from the CSPRNG like the IDs. */
const casePool = new Uint8Array(4096);
let caseNext = casePool.length;

/**
 * A copy of `query` with every letter of its question name in random case. Label length bytes (0–63) and
 * the type/class after the name are never letters, so the bytes can be walked without parsing labels.
 */
function randomizeCase(query: Buffer, questionEnd: number): Buffer {
  const out = Buffer.from(query);
  for (let i = HEADER_SIZE; i < questionEnd - 4; i++) {
    const lower = out[i]! | 0x20;
    if (lower < 0x61 || lower > 0x7a) continue;
    if (caseNext === casePool.length) {
      randomFillSync(casePool);
      caseNext = 0;
    }
    out[i] = (casePool[caseNext++]! & 1) === 0 ? lower : lower & ~0x20;
  }
  return out;
}

function asUpstreamError(upstream: string, err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  const reason: UpstreamFailure = e.name === 'TimeoutError' ? 'timeout' : 'network';
  return new UpstreamError(upstream, reason, e.message, { cause: e });
}
