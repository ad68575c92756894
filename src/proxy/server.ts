/**
 * A proxy listener (plain HTTP on proxy.listen, TLS on proxy.tls.listen) in the same life cycle as the
 * DNS listeners: bind (a failure names the key), stop accepting, close what is left after the drain,
 * and swap the TLS context on reload. HTTP parsing and its safety limits are node:http's: header size
 * (431), header timeout (408), idle connections closed; a malformed request gets 400 and concerns its
 * own connection only.
 */
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type tls from 'node:tls';
import type { ListenAddress } from '../config/types.js';
import type { ClientIdentity } from '../identity/identify.js';
import type { AppLogger } from '../log/logger.js';
import { boundPort, listenOn, swapSecureContext } from '../dns/transports/listener.js';
import type { ProxyHandler } from './handler.js';
import type { ProxyStats } from './stats.js';
import { rawReply } from './tunnel.js';

/** Request line plus headers; what Squid and nginx allow by default is in this range too. */
export const MAX_HEADER_BYTES = 16 * 1024;
/** All of a request's headers must arrive within this (slowloris). */
export const HEADERS_TIMEOUT_MS = 10_000;
/** A kept-alive client connection with no next request is closed after this. */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
const HANDSHAKE_TIMEOUT_MS = 10_000;

export interface ProxyListenerOptions {
  /** TLS proxy: server certificate and the device-certificate settings. */
  readonly tls?: tls.TlsOptions;
  readonly identify?: (socket: tls.TLSSocket) => ClientIdentity | undefined;
  readonly idleTimeoutMs: number;
  readonly maxConnections: number;
  readonly stats: ProxyStats;
}

export class ProxyListener {
  private readonly sockets = new Set<net.Socket>();
  private closed: Promise<void> | null = null;

  private constructor(private readonly server: http.Server | https.Server, readonly secure: boolean) {}

  static async listen(addr: ListenAddress, handler: ProxyHandler, opts: ProxyListenerOptions, log: AppLogger): Promise<ProxyListener> {
    const httpOptions: http.ServerOptions = {
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: HEADERS_TIMEOUT_MS,
      // a long upload is fine while bytes flow; silence is caught by the idle timeout below
      requestTimeout: 0,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      // a proxy must see what the client wrote: no header merging surprises, no lowercasing of the URL
      joinDuplicateHeaders: false,
    };
    const secure = opts.tls !== undefined;
    const server = secure
      ? https.createServer({ ...opts.tls, ...httpOptions, handshakeTimeout: HANDSHAKE_TIMEOUT_MS })
      : http.createServer(httpOptions);
    const listener = new ProxyListener(server, secure);
    server.maxConnections = opts.maxConnections;
    server.setTimeout(opts.idleTimeoutMs);
    server.on('connection', (socket: net.Socket) => {
      listener.sockets.add(socket);
      socket.once('close', () => listener.sockets.delete(socket));
    });
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

  get port(): number {
    return boundPort(this.server);
  }

  /** Stops accepting at once and closes idle kept-alive connections; settles when the last one is gone. */
  stopAccepting(): Promise<void> {
    this.closed ??= new Promise((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    return this.closed;
  }

  /** After the drain: requests still running and open tunnels end here. */
  closeConnections(): void {
    for (const s of this.sockets) s.destroy();
  }

  setSecureContext(options: tls.TlsOptions): void {
    if (this.server instanceof https.Server) swapSecureContext(this.server, options);
  }
}
