/**
 * The admin listener (`admin.listen`): what ops and orchestrators ask a running appfence.
 *   GET  /healthz  200 while the process serves requests at all (liveness)
 *   GET  /readyz   200 when every listener is bound and no list waits for a first good copy of a URL source, else 503 naming what is not
 *   GET  /metrics  Prometheus text exposition
 *   GET  /check?client=IP&name=NAME[&name=…][&cert=PEM]  the decision `appfence check` prints, as JSON
 *   POST /reload   the same single-flight reload as SIGHUP; bearer token compared in constant time
 * node:http is enough for five routes; the admin module imports nothing of the front ends: the
 * runtime hands it AdminHooks.
 */
import http from 'node:http';
import net from 'node:net';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { ListenAddress } from '../config/types.js';
import type { AppLogger } from '../log/logger.js';
import { AppfenceError } from '../errors.js';

export interface Readiness {
  readonly ready: boolean;
  /** One line per part that is not ready, e.g. `lists.vendor: no rules`, `dns.listen[0]: not bound`. */
  readonly notReady: readonly string[];
}

export interface CheckRequest {
  readonly client: string;
  readonly names: readonly string[];
  /** PEM text of a device certificate (leaf first). */
  readonly cert?: string;
}

export interface AdminHooks {
  /** Prometheus text from the runtime's registry. */
  metrics(): Promise<{ readonly contentType: string; readonly body: string }>;
  /** Synchronous in one process; a promise when the primary of dns.workers asks its workers. */
  readiness(): Readiness | Promise<Readiness>;
  /** The same single-flight path as SIGHUP: null when the new configuration runs, else why the old one stays. */
  reload(): Promise<Error | null>;
  /** The decision as JSON-ready data; an AppfenceError with exit code 2 means bad input (HTTP 400). */
  check(request: CheckRequest): Promise<unknown>;
}

export interface AdminOptions {
  /** Bearer token for POST /reload; without one, only loopback clients may reload. */
  readonly token?: string | undefined;
  readonly log: AppLogger;
}

/** Largest request body read (POST /reload carries none; a PEM in /check travels in the query string). */
const MAX_BODY_BYTES = 64 * 1024;

export class AdminServer {
  private readonly server: http.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly tokenDigest: Buffer | null;

  private constructor(private readonly hooks: AdminHooks, private readonly opts: AdminOptions) {
    this.tokenDigest = opts.token === undefined || opts.token === '' ? null : digest(opts.token);
    this.server = http.createServer({ headersTimeout: 10_000, requestTimeout: 30_000, maxHeaderSize: 16 * 1024 },
      (req, res) => this.route(req, res));
    this.server.keepAliveTimeout = 5_000;
    this.server.maxConnections = 64;
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    this.server.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
    });
  }

  /** A bind failure rejects (the caller names the config key); later server errors are logged. */
  static async listen(addr: ListenAddress, hooks: AdminHooks, opts: AdminOptions): Promise<AdminServer> {
    const admin = new AdminServer(hooks, opts);
    await new Promise<void>((resolve, reject) => {
      admin.server.once('error', reject);
      admin.server.listen({ host: addr.host, port: addr.port, ipv6Only: net.isIPv6(addr.host) }, () => {
        admin.server.off('error', reject);
        admin.server.on('error', (err) => opts.log.warn({ err }, 'admin listener error'));
        resolve();
      });
    });
    return admin;
  }

  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a !== null ? a.port : 0;
  }

  /** Resolves when every connection has ended; call closeConnections to end idle keep-alives at once. */
  stopAccepting(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  closeConnections(): void {
    for (const s of this.sockets) s.destroy();
  }

  /** Stop: no new connections, open ones (idle keep-alives included) ended now. */
  async close(): Promise<void> {
    const closed = this.stopAccepting();
    this.closeConnections();
    await closed;
  }

  private route(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://admin.invalid');
    const method = req.method ?? 'GET';
    const handle = ROUTES[url.pathname];
    if (handle === undefined) return send(res, 404, { error: `no such endpoint: ${url.pathname}` });
    if (handle.method !== method && !(handle.method === 'GET' && method === 'HEAD')) {
      res.setHeader('Allow', handle.method === 'GET' ? 'GET, HEAD' : handle.method);
      return send(res, 405, { error: `${url.pathname} takes ${handle.method}` });
    }
    drainBody(req).then(
      () => handle.run(this, req, res, url),
      () => send(res, 413, { error: `request body over ${MAX_BODY_BYTES} bytes` }),
    ).catch((err: unknown) => {
      this.opts.log.error({ err, path: url.pathname }, 'admin request failed');
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  }

  async readyz(res: http.ServerResponse): Promise<void> {
    const r = await this.hooks.readiness();
    send(res, r.ready ? 200 : 503, r.ready ? { ready: true } : { ready: false, notReady: r.notReady });
  }

  async metrics(res: http.ServerResponse): Promise<void> {
    const { contentType, body } = await this.hooks.metrics();
    res.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': 'no-store' });
    res.end(body);
  }

  async check(res: http.ServerResponse, url: URL): Promise<void> {
    const client = url.searchParams.get('client');
    const names = url.searchParams.getAll('name').flatMap((n) => n.split(',')).filter((n) => n !== '');
    if (client === null || client === '') return send(res, 400, { error: 'client=IP is required' });
    if (names.length === 0) return send(res, 400, { error: 'name=NAME is required (repeat it for several names)' });
    const cert = url.searchParams.get('cert') ?? undefined;
    try {
      send(res, 200, await this.hooks.check(cert === undefined ? { client, names } : { client, names, cert }));
    } catch (err) {
      if (err instanceof AppfenceError && err.exitCode === 2) return send(res, 400, { error: err.message });
      throw err;
    }
  }

  async reload(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const denied = this.authorize(req);
    if (denied !== null) {
      if (denied === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="appfence admin"');
      this.opts.log.warn({ client: req.socket.remoteAddress, status: denied }, 'admin reload refused');
      return send(res, denied, { ok: false, error: denied === 401 ? 'Authorization: Bearer <admin.token> required' : 'forbidden' });
    }
    const err = await this.hooks.reload();
    if (err === null) return send(res, 200, { ok: true, ready: (await this.hooks.readiness()).ready });
    const keyPath = (err as { keyPath?: unknown }).keyPath;
    send(res, 422, { ok: false, error: err.message, ...(typeof keyPath === 'string' && keyPath !== '' ? { keyPath } : {}) });
  }

  /** null when the request may reload, else the HTTP status that refuses it. */
  private authorize(req: http.IncomingMessage): 401 | 403 | null {
    if (this.tokenDigest === null) return isLoopback(req.socket.remoteAddress) ? null : 403;
    const header = req.headers.authorization;
    const match = header === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (match === null) return 401;
    // Digests have equal length whatever was sent, so the compare's time says nothing about the token.
    return timingSafeEqual(digest(match[1] ?? ''), this.tokenDigest) ? null : 403;
  }
}

interface Route {
  readonly method: 'GET' | 'POST';
  run(admin: AdminServer, req: http.IncomingMessage, res: http.ServerResponse, url: URL): void | Promise<void>;
}

const ROUTES: Readonly<Record<string, Route>> = {
  '/healthz': { method: 'GET', run: (_a, _q, res) => send(res, 200, { ok: true }) },
  '/readyz': { method: 'GET', run: (a, _q, res) => a.readyz(res) },
  '/metrics': { method: 'GET', run: (a, _q, res) => a.metrics(res) },
  '/check': { method: 'GET', run: (a, _q, res, url) => a.check(res, url) },
  '/reload': { method: 'POST', run: (a, req, res) => a.reload(req, res) },
};

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return address === '::1' || (net.isIPv4(v4) && v4.startsWith('127.'));
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}

/** Reads and discards the body so keep-alive stays usable; rejects past MAX_BODY_BYTES. */
function drainBody(req: http.IncomingMessage): Promise<void> {
  return new Promise((resolve, reject) => {
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        req.resume();
        reject(new Error('body too large'));
      }
    });
    req.once('end', () => resolve());
    req.once('error', reject);
  });
}
