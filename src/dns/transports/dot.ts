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
import { listenOn, swapSecureContext, StreamListener } from './listener.js';
import { serveStream, type StreamOptions } from './stream.js';

export interface DotOptions extends StreamOptions {
  readonly tls: tls.TlsOptions;
  readonly identify: (socket: tls.TLSSocket) => ClientIdentity | undefined;
  readonly maxConnections: number;
  readonly maxConnectionsPerClient: number;
}

/** A handshake that has not completed by then is a stalled or hostile client. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

export class DotTransport extends StreamListener<tls.Server> {
  private constructor(server: tls.Server, opts: DotOptions) {
    super(server, opts);
  }

  static listen(addr: ListenAddress, pipeline: DnsPipeline, opts: DotOptions, log: AppLogger): Promise<DotTransport> {
    const server = tls.createServer({ ...opts.tls, allowHalfOpen: true, handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
    const transport = new DotTransport(server, opts);
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
    return listenOn(server, addr, log, 'dot').then(() => transport);
  }

  protected accepted(socket: net.Socket): void {
    socket.setNoDelay(true);
  }

  /** Reload: new connections use the new certificate, key and client-certificate settings. */
  setSecureContext(options: tls.TlsOptions): void {
    swapSecureContext(this.server, options);
  }
}
