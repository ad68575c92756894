/**
 * The listener life cycle every front end shares (DNS over UDP, TCP, DoT and DoH now; the proxy
 * and the admin API later): bind, report the bound port, cap connections, stop accepting, close
 * what is left. The runtime holds one list of Listeners and drives them all through the same steps.
 */
import net from 'node:net';
import type tls from 'node:tls';
import type { ListenAddress } from '../config/types.js';
import type { AppLogger } from '../log/logger.js';

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
 * Connections per source address on one listener. Without it a handful of idle sockets from one
 * host can take every slot of `maxConnections` from everyone else.
 */
export class ClientSlots {
  private readonly open = new Map<string, number>();
  constructor(private readonly perClient: number) {}

  /**
   * Counts the connection and releases it on close; false when its address is at the cap. `address`
   * defaults to the socket's peer; the proxy counts CONNECT tunnels by the client that asked for them.
   */
  admit(socket: net.Socket, address = socket.remoteAddress ?? ''): boolean {
    const n = this.open.get(address) ?? 0;
    if (n >= this.perClient) return false;
    this.open.set(address, n + 1);
    socket.once('close', () => {
      const left = (this.open.get(address) ?? 1) - 1;
      if (left <= 0) this.open.delete(address);
      else this.open.set(address, left);
    });
    return true;
  }
}

export interface StreamCaps {
  readonly maxConnections: number;
  readonly maxConnectionsPerClient: number;
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

  protected constructor(readonly name: string, protected readonly server: S, caps: StreamCaps) {
    server.maxConnections = caps.maxConnections;
    const slots = new ClientSlots(caps.maxConnectionsPerClient);
    server.on('connection', (socket: net.Socket) => {
      if (!slots.admit(socket)) return void socket.destroy();
      this.track(socket);
      this.accepted(socket);
    });
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
