/**
 * DNS over TLS (RFC 7858): TLS 1.2+ on top of the same RFC 7766 framing as TCP (serveStream), so
 * pipelined queries are answered as they complete, possibly out of order. The device certificate,
 * if any, is judged once per connection and carried on every query of it as the Peer's identity.
 */
import tls from 'node:tls';
import net from 'node:net';
import type { ListenAddress } from '../../config/types.js';
import type { CertIdentity } from '../../net/peer.js';
import type { AppLogger } from '../../log/logger.js';
import type { DnsPipeline } from '../pipeline.js';
import { listenOn, StreamListener } from '../../net/listener.js';
import { HANDSHAKE_TIMEOUT_MS, swapSecureContext } from '../../net/tls-server.js';
import { serveStream, type StreamOptions } from './stream.js';

export interface DotOptions extends StreamOptions {
  readonly tls: tls.TlsOptions;
  readonly identify: (socket: tls.TLSSocket) => CertIdentity | undefined;
  readonly maxConnections: number;
  readonly maxConnectionsPerClient: number;
}

export class DotTransport extends StreamListener<tls.Server> {
  private constructor(name: string, server: tls.Server, opts: DotOptions) {
    super(name, server, opts, 'evict-idlest');
  }

  static listen(name: string, addr: ListenAddress, pipeline: DnsPipeline, opts: DotOptions, log: AppLogger): Promise<DotTransport> {
    const server = tls.createServer({ ...opts.tls, allowHalfOpen: true, handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
    const transport = new DotTransport(name, server, opts);
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      const address = socket.remoteAddress;
      if (address === undefined) return void socket.destroy();
      serveStream(socket, { address, proto: 'dot', cert: opts.identify(socket) }, pipeline, opts, log, transport.activityOf(socket));
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
