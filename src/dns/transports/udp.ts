/**
 * DNS over UDP: one datagram in, at most one datagram out, to the address it came from.
 * node:dgram directly rather than dns2's UDPServer: dns2 parses every datagram into a Packet
 * (3 µs, and 16 ms for a hostile 65 KB one, libs.md §1.4) while the pipeline only needs the raw
 * bytes, and replies here are raw bytes already (sinkhole templates, cached or upstream answers).
 */
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { ListenAddress } from '../../config/types.js';
import type { AppLogger } from '../../log/logger.js';
import type { Listener } from '../../net/listener.js';
import type { DnsPipeline } from '../pipeline.js';

export class UdpTransport implements Listener {
  /** Set on shutdown: new datagrams are ignored while answers to earlier ones still go out. */
  private draining = false;
  private closed = false;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;
  private constructor(readonly name: string, private readonly socket: dgram.Socket) {
    this.closedPromise = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  /** `reusePort` (dns.workers > 1): every worker binds its own SO_REUSEPORT socket; the kernel spreads clients by source address and port. */
  static listen(name: string, addr: ListenAddress, pipeline: DnsPipeline, log: AppLogger, reusePort = false): Promise<UdpTransport> {
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
    let transport: UdpTransport | null = null;
    const reply = (bytes: Buffer | null, port: number, address: string): void => {
      if (bytes === null || transport?.closed === true) return;
      try {
        socket.send(bytes, port, address);
      } catch (err) {
        log.warn({ err, client: address }, 'udp reply not sent');
      }
    };
    socket.on('message', (msg, rinfo) => {
      if (transport?.draining === true) return;
      try {
        const out = pipeline.handle(msg, { address: rinfo.address, proto: 'udp' });
        if (out === null || Buffer.isBuffer(out)) reply(out, rinfo.port, rinfo.address);
        else out.then((bytes) => reply(bytes, rinfo.port, rinfo.address), (err: unknown) => log.error({ err }, 'udp query failed'));
      } catch (err) {
        // A bug on one packet must not take the listener down for everyone else.
        log.error({ err, client: rinfo.address }, 'udp query failed');
      }
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
        transport = new UdpTransport(name, socket);
        resolve(transport);
      });
    });
  }

  get port(): number {
    return this.socket.address().port;
  }

  /**
   * Shutdown, step 1: stop taking queries; the socket stays open so answers to those in flight
   * still go out. Settles once closeConnections() has closed the socket.
   */
  stopAccepting(): Promise<void> {
    this.draining = true;
    return this.closedPromise;
  }

  /** Shutdown, step 2: there are no connections; closing the socket is what is left. */
  closeConnections(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close(() => this.resolveClosed());
  }

  close(): Promise<void> {
    this.stopAccepting();
    this.closeConnections();
    return this.closedPromise;
  }
}

type LookupCallback = (err: Error | null, address: string, family: number) => void;
function literalLookup4(address: string, _family: unknown, callback: LookupCallback): void {
  callback(null, address, 4);
}
function literalLookup6(address: string, _family: unknown, callback: LookupCallback): void {
  callback(null, address, 6);
}
