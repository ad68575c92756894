/**
 * DNS over UDP: one datagram in, at most one datagram out, to the address it came from.
 * Two socket paths behind one per-datagram function (`serve`), so whatever holds for one holds for
 * the other:
 *  - batched (dns.udpBatch auto, where the native addon loaded): recvmmsg/sendmmsg, one JS call per
 *    batch (udp-batch.ts; dns-performance.md §3b). The query is a slot view valid only during the call.
 *  - node:dgram: one recvmsg, one JS callback and one send per datagram.
 * node:dgram directly rather than dns2's UDPServer: dns2 parses every datagram into a Packet
 * (3 µs, and 16 ms for a hostile 65 KB one, libs.md §1.4) while the pipeline only needs the raw
 * bytes, and replies here are raw bytes already (sinkhole templates, cached or upstream answers).
 */
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { ListenAddress } from '../../config/types.js';
import type { AppLogger } from '../../log/logger.js';
import type { Listener } from '../../net/listener.js';
import { Throttle } from '../../log/throttle.js';
import { errorReply, RCODE } from '../../wire/write.js';
import type { DnsPipeline } from '../pipeline.js';
import { BatchSocket, loadUdpBatch, type BatchStats, type UdpBatchAddon } from './udp-batch.js';

export interface UdpOptions {
  /** The loaded addon for the batched path; null for node:dgram. */
  readonly batch: UdpBatchAddon | null;
  /** dns.workers > 1: every worker binds its own SO_REUSEPORT socket; the kernel spreads clients by source address and port. */
  readonly reusePort?: boolean;
}

/** dns.udpBatch → the addon to use, or null with the reason node:dgram serves (for the start-up line). */
export function chooseUdpPath(mode: 'auto' | 'off'): { batch: UdpBatchAddon | null; reason: string } {
  if (mode === 'off') return { batch: null, reason: 'dns.udpBatch is off' };
  const loaded = loadUdpBatch();
  return typeof loaded === 'string' ? { batch: null, reason: loaded } : { batch: loaded, reason: 'recvmmsg/sendmmsg' };
}

/** What each socket path provides to the transport. */
interface UdpIo {
  readonly port: number;
  /** Stop reading; sending still works (shutdown drain). */
  pause(): void;
  close(): Promise<void>;
  /** Batched path only: the addon's counters. */
  stats?(): BatchStats;
}

/** Sends a reply that had to wait to the client that asked (nothing for null, or once closed). */
type Reply = (bytes: Buffer | null) => void;

export class UdpTransport implements Listener {
  /** Set on shutdown: new datagrams are ignored while answers to earlier ones still go out. */
  private draining = false;
  private closed = false;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;
  private io!: UdpIo;
  /** Which socket path serves this listener. */
  path: 'batch' | 'dgram' = 'dgram';

  private constructor(readonly name: string) {
    this.closedPromise = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  static async listen(name: string, addr: ListenAddress, pipeline: DnsPipeline, log: AppLogger,
    opts: UdpOptions = { batch: null }): Promise<UdpTransport> {
    const reusePort = opts.reusePort === true;
    const transport = new UdpTransport(name);
    const failed = new Throttle(10_000);
    /** The per-datagram step both paths share; `later` sends a reply that had to wait. */
    const serve = (msg: Buffer, address: string, transient: boolean, later: () => Reply): Buffer | null => {
      if (transport.draining) return null;
      try {
        const out = pipeline.handle(msg, { address, proto: 'udp' }, transient);
        if (out === null || Buffer.isBuffer(out)) return out;
        const reply = later();
        out.then(reply, (err: unknown) => log.error({ err }, 'udp query failed'));
      } catch (err) {
        // A bug on one packet must not take the listener down for everyone else.
        log.error({ err, client: address }, 'udp query failed');
      }
      return null;
    };
    const sendFailed = (err: unknown, client: string): void => {
      const count = failed.hit();
      if (count > 0) log.warn({ err, client, count }, 'udp reply not sent');
    };
    const isClosed = (): boolean => transport.closed;
    if (opts.batch !== null) {
      try {
        transport.io = listenBatched(opts.batch, addr, reusePort, pipeline, serve, isClosed, sendFailed, log);
        transport.path = 'batch';
        return transport;
      } catch (err) {
        // a kernel without the calls (or a seccomp filter that hides them) says ENOSYS: node:dgram then
        if ((err as NodeJS.ErrnoException).code !== 'ENOSYS') throw err;
      }
    }
    transport.io = await listenDgram(addr, reusePort, serve, isClosed, sendFailed, log);
    return transport;
  }

  get port(): number {
    return this.io.port;
  }

  /** The batched path's counters (batches, datagrams, truncated, send errors); null on node:dgram. */
  batchStats(): BatchStats | null {
    return this.io.stats?.() ?? null;
  }

  /**
   * Shutdown, step 1: stop taking queries; the socket stays open so answers to those in flight
   * still go out. Settles once closeConnections() has closed the socket.
   */
  stopAccepting(): Promise<void> {
    this.draining = true;
    this.io.pause();
    return this.closedPromise;
  }

  /** Shutdown, step 2: there are no connections; closing the socket is what is left. */
  closeConnections(): void {
    if (this.closed) return;
    this.closed = true;
    void this.io.close().then(() => this.resolveClosed());
  }

  close(): Promise<void> {
    void this.stopAccepting();
    this.closeConnections();
    return this.closedPromise;
  }
}

type Serve = (msg: Buffer, address: string, transient: boolean, later: () => Reply) => Buffer | null;

function listenBatched(addon: UdpBatchAddon, addr: ListenAddress, reusePort: boolean, pipeline: DnsPipeline, serve: Serve,
  isClosed: () => boolean, sendFailed: (err: unknown, client: string) => void, log: AppLogger): UdpIo {
  const socket: BatchSocket = new BatchSocket(addon, {
    host: addr.host, port: addr.port, reusePort,
    // 64 KiB slots: every datagram IPv4 can carry arrives whole, as with node:dgram. Pages of the
    // slots are only touched by datagrams that long, so RSS grows by what hostile traffic uses.
    inSize: 65536,
  }, (msg, address, slot, truncated) => {
    // Only a datagram longer than a slot (64 KiB, so none that IP carries) is cut: it is not the query sent.
    if (truncated) return oversize(msg, pipeline);
    return serve(msg, address, true, () => {
      const to = socket.returnAddress(slot);
      return (bytes) => {
        if (bytes === null || isClosed()) return;
        const r = socket.sendTo(bytes, to);
        if (r < 0) sendFailed(new Error(`sendto: errno ${-r}`), address);
      };
    });
  }, (err) => log.error({ err }, 'udp query failed'));
  // sendmmsg failures are counted in C (one lost reply each); said here at most every 10 s
  let reported = 0;
  const watch = setInterval(() => {
    const s = socket.stats();
    if (s.sendErrors > reported) log.warn({ count: s.sendErrors - reported, errno: s.lastSendErrno }, 'udp replies not sent');
    reported = s.sendErrors;
  }, 10_000).unref();
  const port = socket.port;
  return {
    port,
    pause: () => socket.pause(),
    close: () => {
      clearInterval(watch);
      socket.close();
      return Promise.resolve();
    },
    stats: () => socket.stats(),
  };
}

/** As readQuery would: a response is dropped (no reflection), anything else that is not whole is FORMERR. */
function oversize(msg: Buffer, pipeline: DnsPipeline): Buffer | null {
  if ((msg[2]! & 0x80) !== 0) {
    pipeline.stats.count('udp', 'dropped');
    return null;
  }
  pipeline.stats.count('udp', 'formerr');
  return errorReply(msg, null, RCODE.FORMERR);
}

function listenDgram(addr: ListenAddress, reusePort: boolean, serve: Serve, isClosed: () => boolean,
  sendFailed: (err: unknown, client: string) => void, log: AppLogger): Promise<UdpIo> {
  const v6 = isIPv6(addr.host);
  const socket = dgram.createSocket({
    type: v6 ? 'udp6' : 'udp4',
    ipv6Only: v6,
    // Replies go to rinfo.address, always an IP literal of the socket's own family: the default
    // dns.lookup would only defer each send by a tick to return it unchanged, and even an isIPv6
    // test per reply was 2 % of the CPU of an answer.
    lookup: v6 ? literalLookup6 : literalLookup4,
    reusePort,
  });
  // No send callback: Node then tries a synchronous send (uv_udp_try_send) instead of queueing a
  // send request whose completion calls back into JS — measured 80k → see bench/dns.mjs.
  const send = (bytes: Buffer | null, port: number, address: string): void => {
    if (bytes === null || isClosed()) return;
    try {
      socket.send(bytes, port, address);
    } catch (err) {
      sendFailed(err, address);
    }
  };
  socket.on('message', (msg, rinfo) => {
    const now = serve(msg, rinfo.address, false, () => (bytes) => send(bytes, rinfo.port, rinfo.address));
    if (now !== null) send(now, rinfo.port, rinfo.address);
  });
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    // exclusive: a cluster worker binds its own socket instead of sharing the primary's handle
    socket.bind({ port: addr.port, address: addr.host, exclusive: reusePort }, () => {
      socket.off('error', reject);
      // a failed send (ENOBUFS under a flood, EPERM from a firewall) is that reply's loss only
      let lastReport = 0;
      socket.on('error', (err) => {
        if (Date.now() - lastReport < 10_000) return;
        lastReport = Date.now();
        log.warn({ err }, 'udp socket error');
      });
      resolve({
        port: socket.address().port,
        // node:dgram cannot stop reading without closing: `serve` ignores what arrives while draining
        pause: () => undefined,
        close: () => new Promise((r) => socket.close(() => r())),
      });
    });
  });
}

type LookupCallback = (err: Error | null, address: string, family: number) => void;
function literalLookup4(address: string, _family: unknown, callback: LookupCallback): void {
  callback(null, address, 4);
}
function literalLookup6(address: string, _family: unknown, callback: LookupCallback): void {
  callback(null, address, 6);
}
