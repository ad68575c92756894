/**
 * DNS over HTTPS (RFC 8484): GET ?dns= and POST application/dns-message on /dns-query, over HTTP/2
 * and HTTP/1.1 (ALPN) on one node:http2 secure server. The device certificate is judged once per
 * connection and every request on it carries that identity. node:http2 directly rather than dns2's
 * DOHServer: that one is HTTP/1.1 only (RFC 8484 §5.2 wants HTTP/2), reads POST bodies without a
 * size limit and answers with `Access-Control-Allow-Origin: *` (libs.md §1.6).
 */
import http2 from 'node:http2';
import net from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket, TlsOptions } from 'node:tls';
import type { ListenAddress } from '../../config/types.js';
import type { CertIdentity } from '../../net/peer.js';
import type { AppLogger } from '../../log/logger.js';
import { listenOn, StreamListener } from '../../net/listener.js';
import type { ConnectionActivity } from '../../net/idle-order.js';
import { HANDSHAKE_TIMEOUT_MS, swapSecureContext } from '../../net/tls-server.js';
import type { DnsPipeline, DnsPeer } from '../pipeline.js';
import { readAnswer } from '../../wire/answer.js';

export interface DohOptions {
  /** Node TLS server options: cert, key, minVersion, and (when clientCerts is configured) ca/requestCert/rejectUnauthorized. */
  readonly tls: TlsOptions;
  /** Certificate identity of a connection (called once per TLS connection; undefined → subnet identity applies). */
  readonly identify: (socket: TLSSocket) => CertIdentity | undefined;
  readonly maxConnections: number;
  readonly maxConnectionsPerClient: number;
  readonly idleTimeoutMs: number;
}

type Request = http2.Http2ServerRequest | IncomingMessage;
type Response = http2.Http2ServerResponse | ServerResponse;

const PATH = '/dns-query';
const MEDIA_TYPE = 'application/dns-message';
/** The largest DNS message (RFC 8484 §4.1 refers to the 16-bit length of RFC 1035 messages). */
const MAX_MESSAGE = 65535;
/** Concurrent requests one h2 connection may have open. */
const MAX_STREAMS_PER_SESSION = 100;
const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;

/** The stream life cycle (caps, tracked sockets) plus h2 sessions, which get a GOAWAY on shutdown. */
export class DohTransport extends StreamListener<http2.Http2SecureServer> {
  /** One Peer per connection (an h2 session or an HTTP/1.1 socket), so requests allocate none. */
  private readonly peers = new WeakMap<object, DnsPeer>();
  /** Per connection too: requests begin and end on it, so a connection with one open is never evicted. */
  private readonly activities = new WeakMap<object, ConnectionActivity>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private draining = false;

  private constructor(name: string, server: http2.Http2SecureServer, private readonly pipeline: DnsPipeline,
    private readonly opts: DohOptions, private readonly log: AppLogger) {
    super(name, server, opts, 'evict-idlest');
  }

  static listen(name: string, addr: ListenAddress, pipeline: DnsPipeline, opts: DohOptions, log: AppLogger): Promise<DohTransport> {
    const server = http2.createSecureServer({
      ...opts.tls, allowHTTP1: true, ALPNProtocols: ['h2', 'http/1.1'], handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      // Node's default is 2^32-1 streams per session: one client could then queue unbounded work
      settings: { maxConcurrentStreams: MAX_STREAMS_PER_SESSION },
    });
    const transport = new DohTransport(name, server, pipeline, opts, log);
    server.on('request', (req: Request, res: Response) => transport.serve(req, res));
    // Raw sockets are tracked from accept on (StreamListener); the TLS sockets over them too.
    server.on('secureConnection', (socket: TLSSocket) => transport.track(socket));
    server.on('session', (session: http2.ServerHttp2Session) => {
      transport.sessions.add(session);
      session.once('close', () => transport.sessions.delete(session));
      if (transport.draining) session.close();
    });
    // Idle h2 sessions get a GOAWAY (open streams finish); idle HTTP/1.1 sockets are closed.
    server.setTimeout(opts.idleTimeoutMs);
    server.on('timeout', (conn: http2.ServerHttp2Session | net.Socket) => {
      if ('goaway' in conn) conn.close();
      else conn.destroy();
    });
    server.on('tlsClientError', (err, socket) => log.debug({ err, client: socket.remoteAddress }, 'doh handshake failed'));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
      // HTTP/1.1 parse errors get the usual 400; anything else (TLS failures, resets) just ends the connection.
      if (err.code?.startsWith('HPE_') === true && socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      else socket.destroy();
    });
    server.on('sessionError', (err) => log.debug({ err }, 'doh session error'));
    return listenOn(server, addr, log, 'doh').then(() => transport);
  }

  /** Raw sockets need nothing more: TLS and HTTP take over from here. */
  protected accepted(): void {}

  /** Reload: new connections use the new certificate, key and client-certificate settings. */
  setSecureContext(options: TlsOptions): void {
    swapSecureContext(this.server, options);
  }

  /** Stops accepting at once and asks open connections to finish what they have; settles when the last one has gone. */
  override stopAccepting(): Promise<void> {
    this.draining = true;
    const closed = super.stopAccepting();
    for (const session of this.sessions) session.close();
    return closed;
  }

  override closeConnections(): void {
    for (const session of this.sessions) session.destroy();
    super.closeConnections();
  }

  private serve(req: Request, res: Response): void {
    const activity = this.connectionActivity(req);
    activity.begin();
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      activity.end();
    };
    res.once('finish', end);
    res.once('close', end);
    const url = req.url ?? '';
    const q = url.indexOf('?');
    if ((q < 0 ? url : url.slice(0, q)) !== PATH) return this.fail(req, res, 404);
    if (req.method === 'GET') {
      const encoded = q < 0 ? null : new URLSearchParams(url.slice(q + 1)).get('dns');
      if (encoded === null || !BASE64URL.test(encoded) || encoded.replace(/=+$/, '').length % 4 === 1) return this.fail(req, res, 400);
      const message = Buffer.from(encoded, 'base64url');
      if (message.length > MAX_MESSAGE) return this.fail(req, res, 413);
      return this.answer(req, res, message);
    }
    if (req.method === 'POST') return this.readBody(req, res);
    res.setHeader('allow', 'GET, POST');
    return this.fail(req, res, 405);
  }

  private readBody(req: Request, res: Response): void {
    const type = req.headers['content-type'];
    const semicolon = type?.indexOf(';') ?? -1;
    if (type === undefined || (semicolon < 0 ? type : type.slice(0, semicolon)).trim().toLowerCase() !== MEDIA_TYPE) {
      return this.fail(req, res, 415);
    }
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > MAX_MESSAGE) return this.fail(req, res, 413);
    const chunks: Buffer[] = [];
    let length = 0;
    let rejected = false;
    req.on('data', (chunk: Buffer) => {
      if (rejected) return;
      length += chunk.length;
      if (length > MAX_MESSAGE) {
        rejected = true;
        return this.fail(req, res, 413);
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!rejected) this.answer(req, res, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length));
    });
    // A client that goes away mid-body is gone; there is nobody left to answer.
    req.on('error', () => {});
  }

  private answer(req: Request, res: Response, message: Buffer): void {
    if (message.length === 0) return this.fail(req, res, 400);
    const peer = this.peerOf(req);
    if (peer === undefined) return this.fail(req, res, 400);
    try {
      const out = this.pipeline.handle(message, peer);
      if (out === null || Buffer.isBuffer(out)) return this.reply(req, res, out);
      // one catch for both a rejected pipeline and a throw while replying: neither may become an unhandled rejection
      out.then((bytes) => this.reply(req, res, bytes)).catch((err: unknown) => this.crashed(req, res, peer, err));
    } catch (err) {
      this.crashed(req, res, peer, err);
    }
  }

  /** null is what the pipeline returns for messages it drops (a response, fewer than 12 bytes): not a DNS query. */
  private reply(req: Request, res: Response, bytes: Buffer | null): void {
    if (bytes === null) return this.fail(req, res, 400);
    if (res.writableEnded) return;
    const ttl = readAnswer(bytes)?.ttl ?? -1;
    if (this.draining && req.httpVersionMajor === 1) res.setHeader('connection', 'close');
    // @types/node 24 types the two writeHead overload sets as incompatible; one header object suits both.
    (res as ServerResponse).writeHead(200, {
      'content-type': MEDIA_TYPE,
      'cache-control': `max-age=${ttl < 0 ? 0 : ttl}`,
      'content-length': bytes.length,
    });
    res.end(bytes);
  }

  private crashed(req: Request, res: Response, peer: DnsPeer, err: unknown): void {
    // A bug on one request must not take the listener down for everyone else.
    this.log.error({ err, client: peer.address }, 'doh query failed');
    this.fail(req, res, 500);
  }

  /** An HTTP error with an empty body. A request body not yet read is refused without reading it. */
  private fail(req: Request, res: Response, status: number): void {
    if (res.writableEnded || res.headersSent) return;
    const unread = bodyUnread(req);
    if (unread && req.httpVersionMajor === 1) res.setHeader('connection', 'close');
    (res as ServerResponse).writeHead(status, { 'content-length': 0 });
    res.end();
    // RFC 9113 §8.1: a complete response, then RST_STREAM(NO_ERROR) tells the client to stop sending.
    if (unread && 'stream' in req) req.stream.close(http2.constants.NGHTTP2_NO_ERROR);
  }

  private connectionActivity(req: Request): ConnectionActivity {
    const conn: object | undefined = 'stream' in req ? req.stream.session : req.socket;
    let activity = conn === undefined ? undefined : this.activities.get(conn);
    if (activity === undefined) {
      // h2: the session's socket is a proxy of the TLSSocket; its peer address and port find the raw socket
      activity = this.activityOf(('stream' in req ? req.stream.session?.socket : req.socket) ?? {});
      if (conn !== undefined) this.activities.set(conn, activity);
    }
    return activity;
  }

  /** The Peer of the request's connection, made on its first request: address and certificate identity. */
  private peerOf(req: Request): DnsPeer | undefined {
    // h2: the session (its .socket is a stable proxy of the TLSSocket); HTTP/1.1: the TLSSocket itself.
    const conn: object | undefined = 'stream' in req ? req.stream.session : req.socket;
    if (conn === undefined) return undefined;
    let peer = this.peers.get(conn);
    if (peer === undefined) {
      const socket = ('stream' in req ? req.stream.session?.socket : req.socket) as TLSSocket;
      const address = socket.remoteAddress;
      if (address === undefined) return undefined;
      peer = Object.freeze({ address, proto: 'doh', cert: this.opts.identify(socket) });
      this.peers.set(conn, peer);
    }
    return peer;
  }
}

/** Whether the client may still be sending a request body we are not going to read. */
function bodyUnread(req: Request): boolean {
  if ('stream' in req) return !(req.stream.endAfterHeaders || req.readableEnded);
  return !req.complete;
}
