/**
 * The listener life cycle every front end shares (DNS over UDP, TCP, DoT and DoH now; the proxy
 * and the admin API later): bind, report the bound port, cap connections, stop accepting, close
 * what is left. The runtime holds one list of Listeners and drives them all through the same steps.
 */
import net from 'node:net';
import type tls from 'node:tls';
import type { ListenAddress } from '../config/types.js';
import type { AppLogger } from '../log/logger.js';
import { clientPrefixText } from './client-prefix.js';
import { IdleOrder, type ConnectionActivity } from './idle-order.js';

/**
 * What the runtime needs of any listener. Shutdown is: stopAccepting() on all (settles when the
 * last connection has gone), wait for in-flight work, closeConnections() on all, await the first.
 */
export interface Listener {
  /** The config key it was made from, e.g. 'dns.listen[0]/udp', 'dns.https.listen[1]'. */
  readonly name: string;
  readonly port: number;
  /** Stops taking new work at once; the promise settles when the listener is fully closed. */
  stopAccepting(): Promise<void>;
  /** Closes whatever is still open (idle keep-alives, stalled handshakes, a UDP socket). */
  closeConnections(): void;
  /** Reload: TLS listeners take the new certificate, key and client-certificate settings. */
  setSecureContext?(options: tls.TlsOptions): void;
}

/**
 * A bind failure (EADDRINUSE, EACCES) rejects, so start-up fails loudly; later server errors are logged.
 * `reusePort` (dns.workers > 1): this process binds its own SO_REUSEPORT socket (exclusive: not the
 * cluster primary's shared handle) and the kernel spreads connections over the workers.
 */
export function listenOn(server: net.Server, addr: ListenAddress, log: AppLogger, proto: string, reusePort = false): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: addr.port, host: addr.host, ipv6Only: net.isIPv6(addr.host), reusePort, exclusive: reusePort }, () => {
      server.off('error', reject);
      server.on('error', (err) => log.warn({ err, proto }, 'listener error'));
      resolve();
    });
  });
}

export function boundPort(server: net.Server): number {
  const a = server.address();
  return typeof a === 'object' && a !== null ? a.port : 0;
}

/**
 * Connections per client on one listener. Without it a handful of idle sockets from one host can
 * take every slot of `maxConnections` from everyone else. `countBy: 'prefix'` counts per /24 (IPv4)
 * or /56 (IPv6), as the DNS listeners do (issue 14: 11 addresses took all 1000 DoT slots; one
 * allocation holds many addresses); 'address' counts each address alone (the proxy's tunnels).
 */
export class ClientSlots {
  private readonly open = new Map<string, number>();
  /** Connections refused because their client was at the cap. */
  refused = 0;
  constructor(private readonly perClient: number, private readonly countBy: 'address' | 'prefix' = 'address') {}

  /**
   * Counts the connection and releases it on close; false when its client is at the cap. `address`
   * defaults to the socket's peer; the proxy counts CONNECT tunnels by the client that asked for them.
   */
  admit(socket: net.Socket, address = socket.remoteAddress ?? ''): boolean {
    const key = this.countBy === 'prefix' ? clientPrefixText(address) : address;
    const n = this.open.get(key) ?? 0;
    if (n >= this.perClient) {
      this.refused++;
      return false;
    }
    this.open.set(key, n + 1);
    socket.once('close', () => {
      const left = (this.open.get(key) ?? 1) - 1;
      if (left <= 0) this.open.delete(key);
      else this.open.set(key, left);
    });
    return true;
  }
}

export interface StreamCaps {
  readonly maxConnections: number;
  readonly maxConnectionsPerClient: number;
}

/**
 * What a listener does when it is full: 'refuse' the new connection (the proxy, whose tunnels report
 * no activity) or 'evict-idlest': close the connection idle longest to make room (DNS: RFC 7766
 * §6.2.3), refusing only when every connection has a query in flight. 'evict-idlest' also counts
 * maxConnectionsPerClient per client /24 or /56 instead of per address.
 */
export type FullPolicy = 'refuse' | 'evict-idlest';

/** Counters of a stream listener's caps (for metrics). */
export interface ConnectionCounts {
  /** Idle connections closed to make room for a new one. */
  readonly evicted: number;
  /** New connections refused: their client was at maxConnectionsPerClient. */
  readonly refusedClientCap: number;
  /** New connections refused: the listener was full and no connection was idle (or the policy is 'refuse'). */
  readonly refusedFull: number;
}

/**
 * The life cycle of a connection-oriented listener (TCP, DoT, DoH; the proxy's later): caps on
 * accept, every raw socket tracked from accept on (so shutdown also reaches connections still in a
 * TLS handshake), stop accepting, then close the rest. Subclasses with sessions of their own (h2)
 * extend stopAccepting/closeConnections and call super.
 */
export abstract class StreamListener<S extends net.Server> implements Listener {
  private readonly sockets = new Set<net.Socket>();
  private closed: Promise<void> | null = null;
  private readonly slots: ClientSlots;
  /** Accepted raw sockets, least recently active first. */
  private readonly idle = new IdleOrder();
  private refusedFull = 0;

  protected constructor(readonly name: string, protected readonly server: S, caps: StreamCaps, full: FullPolicy = 'refuse') {
    // Not server.maxConnections: Node would drop the new connection before we could make room for it.
    this.slots = new ClientSlots(caps.maxConnectionsPerClient, full === 'evict-idlest' ? 'prefix' : 'address');
    server.on('connection', (socket: net.Socket) => {
      if (!this.slots.admit(socket)) return void socket.destroy();
      if (this.idle.size >= caps.maxConnections && (full === 'refuse' || !this.idle.evictIdlest())) {
        this.refusedFull++;
        return void socket.destroy();
      }
      this.idle.add(socket);
      this.track(socket);
      this.accepted(socket);
    });
  }

  get connectionCounts(): ConnectionCounts {
    return { evicted: this.idle.evicted, refusedClientCap: this.slots.refused, refusedFull: this.refusedFull };
  }

  /**
   * Where a transport reports requests beginning and ending on a connection (the raw socket, or a
   * TLS socket or h2 session socket over it), so that a busy connection is never the one evicted.
   */
  protected activityOf(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined }): ConnectionActivity {
    return this.idle.activityOf(socket);
  }

  /** A connection that passed the caps (for TLS: before its handshake). */
  protected abstract accepted(socket: net.Socket): void;

  /** Closed by closeConnections(); TLS subclasses may add the TLSSocket over a raw one. */
  protected track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  get port(): number {
    return boundPort(this.server);
  }

  /** Stops accepting at once; the promise settles when the last open connection has gone too. */
  stopAccepting(): Promise<void> {
    this.closed ??= new Promise((resolve) => this.server.close(() => resolve()));
    return this.closed;
  }

  closeConnections(): void {
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    const stopped = this.stopAccepting();
    this.closeConnections();
    await stopped;
  }
}
