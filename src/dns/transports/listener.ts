/** What the stream listeners (TCP, DoT, DoH) share: binding, the bound port, and swapping TLS material on reload. */
import net from 'node:net';
import type tls from 'node:tls';
import type { ListenAddress } from '../../config/types.js';
import type { AppLogger } from '../../log/logger.js';

/** A bind failure (EADDRINUSE, EACCES) rejects, so start-up fails loudly; later server errors are logged. */
export function listenOn(server: net.Server, addr: ListenAddress, log: AppLogger, proto: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: addr.port, host: addr.host, ipv6Only: net.isIPv6(addr.host) }, () => {
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
 * Reload: connections accepted from now on use the new certificate, key and client CA. Whether a
 * client certificate is asked for (and required) is a server property, not part of the secure
 * context, so it is carried over too (clientCerts added, removed or `require` flipped by a reload).
 */
export function swapSecureContext(server: tls.Server, options: tls.TlsOptions): void {
  server.setSecureContext(options);
  const settings = server as unknown as { requestCert: boolean; rejectUnauthorized: boolean };
  settings.requestCert = options.requestCert === true;
  settings.rejectUnauthorized = options.rejectUnauthorized !== false;
}

/**
 * Connections per source address on one listener. Without it a handful of idle sockets from one
 * host can take every slot of `maxConnections` from everyone else.
 */
export class ClientSlots {
  private readonly open = new Map<string, number>();
  constructor(private readonly perClient: number) {}

  /** Counts the connection and releases it on close; false when its address is at the cap. */
  admit(socket: net.Socket): boolean {
    const address = socket.remoteAddress ?? '';
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

/**
 * The life cycle TCP and DoT share: caps on accept, every raw socket tracked from accept on (so
 * shutdown also reaches connections still in a TLS handshake), stop accepting, then close the rest.
 */
export abstract class StreamListener<S extends net.Server> {
  private readonly sockets = new Set<net.Socket>();
  private closed: Promise<void> | null = null;

  protected constructor(protected readonly server: S, caps: { maxConnections: number; maxConnectionsPerClient: number }) {
    server.maxConnections = caps.maxConnections;
    const slots = new ClientSlots(caps.maxConnectionsPerClient);
    server.on('connection', (socket: net.Socket) => {
      if (!slots.admit(socket)) return void socket.destroy();
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      this.accepted(socket);
    });
  }

  /** A connection that passed the caps (for DoT: before its handshake). */
  protected abstract accepted(socket: net.Socket): void;

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
