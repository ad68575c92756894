/**
 * DNS over TLS (RFC 7858): TLS 1.2+ on top of the same RFC 7766 framing as TCP (serveStream), so
 * pipelined queries are answered as they complete, possibly out of order. The device certificate,
 * if any, is judged once per connection and carried on every query of it as the Peer's identity.
 */
import tls from 'node:tls';
import net from 'node:net';
import type { ListenAddress } from '../../config/types.js';
import type { ClientIdentity } from '../../identity/identify.js';
import type { AppLogger } from '../../log/logger.js';
import type { DnsPipeline } from '../pipeline.js';
import { listenOn, boundPort, swapSecureContext, ClientSlots } from './listener.js';
import { serveStream, type StreamOptions } from './stream.js';

export interface DotOptions extends StreamOptions {
  readonly tls: tls.TlsOptions;
  readonly identify: (socket: tls.TLSSocket) => ClientIdentity | undefined;
  readonly maxConnections: number;
  readonly maxConnectionsPerClient: number;
}

/** A handshake that has not completed by then is a stalled or hostile client. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

export class DotTransport {
  /** Raw TCP sockets, tracked from accept on so that shutdown also ends connections still in their handshake. */
  private readonly sockets = new Set<net.Socket>();
  private closed: Promise<void> | null = null;
  private constructor(private readonly server: tls.Server) {}

  static listen(addr: ListenAddress, pipeline: DnsPipeline, opts: DotOptions, log: AppLogger): Promise<DotTransport> {
    const server = tls.createServer({ ...opts.tls, allowHalfOpen: true, handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
    const transport = new DotTransport(server);
    const slots = new ClientSlots(opts.maxConnectionsPerClient);
    server.on('connection', (raw: net.Socket) => {
      if (!slots.admit(raw)) return void raw.destroy();
      transport.sockets.add(raw);
      raw.once('close', () => transport.sockets.delete(raw));
      raw.setNoDelay(true);
    });
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      const address = socket.remoteAddress;
      if (address === undefined) return void socket.destroy();
      serveStream(socket, { address, proto: 'dot', identity: opts.identify(socket) }, pipeline, opts, log);
    });
    // failed handshakes (no or bad certificate with clientCerts.require, scanners) concern that client only
    server.on('tlsClientError', (err, socket) => {
      log.debug({ err, client: socket.remoteAddress }, 'dot handshake failed');
      socket.destroy();
    });
    server.maxConnections = opts.maxConnections;
    return listenOn(server, addr, log, 'dot').then(() => transport);
  }

  get port(): number {
    return boundPort(this.server);
  }

  /** Reload: new connections use the new certificate, key and client-certificate settings. */
  setSecureContext(options: tls.TlsOptions): void {
    swapSecureContext(this.server, options);
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
