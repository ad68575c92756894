/**
 * Fake origins for proxy tests, on 127.0.0.x port 0: an HTTP server that answers every request with a
 * small page saying what it received (method, path, Host, headers as JSON, body length), and
 * can stream, stall or reset on request paths; and a TCP/TLS target that greets and echoes.
 * Paths: /slow (never answers), /stream?n=K (K chunks of 1 KiB, 20 ms apart), /reset (destroys the socket),
 * /big?kb=N (N KiB at once). Every request is logged with its headers.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { spawn } from 'node:child_process';

export interface Seen { method: string; url: string; headers: http.IncomingHttpHeaders; bodyBytes: number; remote: string }

export interface Origin {
  readonly host: string;
  readonly port: number;
  readonly seen: Seen[];
  /** Streams still being written (left open by a client that went away: must reach 0). */
  openStreams: number;
  close(): Promise<void>;
}

function listen(server: net.Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      const a = server.address();
      resolve(typeof a === 'object' && a !== null ? a.port : 0);
    });
  });
}

/** With `tlsOptions`, an HTTPS origin (for CONNECT tests with a real TLS client). */
export async function startOrigin(host = '127.0.0.2', title = 'Origin page', tlsOptions?: tls.TlsOptions): Promise<Origin> {
  const sockets = new Set<net.Socket>();
  const origin: Origin = { host, port: 0, seen: [], openStreams: 0, close: async () => undefined };
  const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    let bodyBytes = 0;
    req.on('data', (c: Buffer) => { bodyBytes += c.length; });
    req.on('end', () => {
      origin.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, bodyBytes, remote: req.socket.remoteAddress ?? '' });
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/slow') return;
      if (url.pathname === '/reset') return void req.socket.destroy();
      if (url.pathname === '/stream') {
        const n = Number(url.searchParams.get('n') ?? '10');
        origin.openStreams++;
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        let sent = 0;
        const timer = setInterval(() => {
          if (sent++ >= n) { clearInterval(timer); return void res.end(); }
          res.write(Buffer.alloc(1024, 0x61));
        }, 20);
        res.once('close', () => { clearInterval(timer); origin.openStreams--; });
        return;
      }
      if (url.pathname === '/big') {
        const body = Buffer.alloc(Number(url.searchParams.get('kb') ?? '1') * 1024, 0x62);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
        return void res.end(body);
      }
      const body = `<!doctype html><html><head><title>${title}</title></head><body><h1>${title}</h1>` +
        `<p id="host">${req.headers.host ?? ''}</p><pre id="req">${JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyBytes })}</pre></body></html>`;
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body),
        // hop-by-hop fields the proxy must not pass on
        connection: 'keep-alive, x-origin-hop', 'x-origin-hop': 'secret', 'keep-alive': 'timeout=5',
      });
      res.end(body);
    });
  };
  const server = tlsOptions === undefined ? http.createServer(handle) : https.createServer(tlsOptions, handle);
  server.on('connection', (s) => { sockets.add(s); s.once('close', () => sockets.delete(s)); });
  const port = await listen(server, host);
  return Object.assign(origin, {
    port,
    close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  });
}

export interface Target { readonly host: string; readonly port: number; close(): Promise<void> }

/** Greets with "hello from target\n" and echoes; with `tlsOptions`, over TLS. */
export async function startTarget(host = '127.0.0.4', tlsOptions?: tls.TlsOptions): Promise<Target> {
  const sockets = new Set<net.Socket>();
  const serve = (s: net.Socket): void => {
    s.on('error', () => s.destroy());
    s.write('hello from target\n');
    s.pipe(s);
  };
  const server = tlsOptions === undefined ? net.createServer(serve) : tls.createServer(tlsOptions, serve);
  server.on('connection', (s: net.Socket) => { sockets.add(s); s.once('close', () => sockets.delete(s)); });
  const port = await listen(server, host);
  return { host, port, close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }) };
}

/**
 * A TCP port on `host` whose TCP handshake never completes: a child process listens with backlog 1
 * and then blocks its event loop, so it never accepts; `fill()` queues connections until the
 * kernel's accept queue is full, after which the kernel drops every new SYN and a connect() to the
 * port hangs until the caller's own timeout (loopback only, no firewall rule needed).
 */
export async function startStalledListener(host = '127.0.0.6'): Promise<Target> {
  const code = `const s = require('node:net').createServer().listen({ port: 0, host: ${JSON.stringify(host)}, backlog: 1 }, () => {
    process.stdout.write(s.address().port + '\\n');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120000);
  });`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  // more than backlog + 1 connections: the queue holds what it can, the rest stay in SYN-SENT
  const fillers: net.Socket[] = [];
  for (let i = 0; i < 4; i++) {
    const s = net.connect({ port, host });
    s.on('error', () => s.destroy());
    fillers.push(s);
  }
  await new Promise((r) => setTimeout(r, 100));
  return { host, port, close: async () => { for (const s of fillers) s.destroy(); child.kill('SIGKILL'); } };
}
