/**
 * A proxy listener (plain HTTP on proxy.listen, TLS on proxy.tls.listen) in the same life cycle as the
 * DNS listeners (net/listener.ts): bind (a failure names the key), connection caps, stop accepting,
 * close what is left after the drain, and swap the TLS context on reload. HTTP parsing and its safety
 * limits are node:http's: header size (431), header timeout (408), idle connections closed; a
 * malformed request gets 400 and concerns its own connection only.
 */
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type tls from 'node:tls';
import type { ListenAddress } from '../config/types.js';
import type { CertIdentity } from '../net/peer.js';
import type { AppLogger } from '../log/logger.js';
import { listenOn, StreamListener, type StreamCaps } from '../net/listener.js';
import { HANDSHAKE_TIMEOUT_MS, swapSecureContext } from '../net/tls-server.js';
import type { ProxyHandler } from './handler.js';
import type { ProxyStats } from './stats.js';
import { rawReply } from './tunnel.js';

/** Request line plus headers; Squid's and nginx's defaults are in this range too. */
export const MAX_HEADER_BYTES = 16 * 1024;
/** All of a request's headers must arrive within this (slowloris). */
export const HEADERS_TIMEOUT_MS = 10_000;
/** A kept-alive client connection with no next request is closed after this. */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;

export interface ProxyListenerOptions extends StreamCaps {
  /** TLS proxy: server certificate and the device-certificate settings. */
  readonly tls?: tls.TlsOptions;
  readonly identify?: (socket: tls.TLSSocket) => CertIdentity | undefined;
  readonly idleTimeoutMs: number;
  readonly stats: ProxyStats;
}

export class ProxyListener extends StreamListener<http.Server | https.Server> {
  private constructor(name: string, server: http.Server | https.Server, caps: StreamCaps, readonly secure: boolean) {
    super(name, server, caps);
  }

  static async listen(name: string, addr: ListenAddress, handler: ProxyHandler, opts: ProxyListenerOptions, log: AppLogger): Promise<ProxyListener> {
    const httpOptions: http.ServerOptions = {
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: HEADERS_TIMEOUT_MS,
      // a long upload is fine while bytes flow; silence is caught by the idle timeout below
      requestTimeout: 0,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    };
    const secure = opts.tls !== undefined;
    const server = secure
      ? https.createServer({ ...opts.tls, ...httpOptions, handshakeTimeout: HANDSHAKE_TIMEOUT_MS })
      : http.createServer(httpOptions);
    const listener = new ProxyListener(name, server, opts, secure);
    server.setTimeout(opts.idleTimeoutMs);
    if (secure && opts.identify !== undefined) {
      const identify = opts.identify;
      server.on('secureConnection', (socket: tls.TLSSocket) => handler.setCertificate(socket, identify(socket)));
      server.on('tlsClientError', (err, socket) => {
        log.debug({ err, client: socket.remoteAddress }, 'proxy tls handshake failed');
        socket.destroy();
      });
    }
    server.on('request', (req, res) => handler.onRequest(req, res, secure));
    server.on('connect', (req, socket: net.Socket, head) => handler.onConnect(req, socket, head));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
      if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
      opts.stats.count('refused');
      if (err.code === 'HPE_HEADER_OVERFLOW') return rawReply(socket, 431, 'Request Header Fields Too Large', `request headers over ${MAX_HEADER_BYTES} bytes`);
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return rawReply(socket, 408, 'Request Timeout', 'request headers did not arrive in time');
      rawReply(socket, 400, 'Bad Request', `malformed request (${err.code ?? 'parse error'})`);
    });
    await listenOn(server, addr, log, secure ? 'proxy-tls' : 'proxy');
    return listener;
  }

  protected accepted(socket: net.Socket): void {
    socket.setNoDelay(true);
  }

  /** Also closes idle kept-alive connections at once: only requests in progress hold the drain. */
  override stopAccepting(): Promise<void> {
    const closed = super.stopAccepting();
    this.server.closeIdleConnections();
    return closed;
  }

  setSecureContext(options: tls.TlsOptions): void {
    if (this.server instanceof https.Server) swapSecureContext(this.server, options);
  }
}
