/**
 * Forwarding of allowed absolute-URI requests with http-proxy, to exactly the address the pipeline
 * checked (the client's Host header is kept, so virtual hosting works). http-proxy 1.18.1 has four traps
 * for a forward proxy (libs.md §2), each handled here:
 *  1. no 'error' listener makes it rethrow and kill the process → one listener answers 502/504;
 *  2. on Node ≥ 15.5 it never aborts the origin request when the client goes away → we destroy it on
 *     the response's 'close' when the response did not finish;
 *  3. its 'proxyReq' event is skipped for requests with `Expect:`, so hop-by-hop headers (incl.
 *     Proxy-Authorization) would leak → headers are cleaned before web() and Via passed as an option;
 *  4. it copies hop-by-hop headers both ways → stripped on the request here and on 'proxyRes'.
 * Bodies stream both ways (http-proxy pipes); nothing is buffered whole.
 * Requests without a body take the fast path instead (fast-forward.ts: undici, same contract), because
 * http-proxy over Node's http client costs ≈ 1.6× Squid's CPU per small request; see there.
 */
import http from 'node:http';
import httpProxy from 'http-proxy';
import { stripHopByHop, withVia } from './hop-by-hop.js';
import { FastForwarder, hasNoBody } from './fast-forward.js';

export interface ForwardOptions {
  /** Connecting, and then silence from the origin, beyond this: 504 (or a cut response once streaming). */
  readonly timeoutMs: number;
}

/** How a forwarded request ended, for the counters: 'allowed' once the origin answered. */
export type ForwardFailure = { readonly status: 502 | 504; readonly reason: string };

const TIMED_OUT = 'ETIMEDOUT_APPFENCE';

export class Forwarder {
  private readonly proxy = httpProxy.createProxyServer({ xfwd: false, changeOrigin: false, ws: false });
  /** Origin connections are reused across clients: keyed by address:port, which is what was checked. */
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, scheduling: 'lifo' });
  private readonly fast: FastForwarder;
  private readonly pending = new WeakMap<http.IncomingMessage, { readonly done: (failure: ForwardFailure | null) => void; readonly where: string }>();

  constructor(private readonly opts: ForwardOptions) {
    this.fast = new FastForwarder(opts.timeoutMs);
    this.proxy.on('proxyReq', (proxyReq, req, res) => {
      // trap 3 does not bite here (Expect is removed before web()), but timeouts must hold either way
      proxyReq.setTimeout(this.opts.timeoutMs, () => {
        proxyReq.destroy(Object.assign(new Error('origin did not answer in time'), { code: TIMED_OUT }));
      });
      // trap 2, before the response: a client that leaves stops the origin request too
      res.once('close', () => {
        if (!res.writableFinished) proxyReq.destroy();
      });
    });
    this.proxy.on('proxyRes', (proxyRes, req, res) => {
      stripHopByHop(proxyRes.headers);
      proxyRes.headers.via = withVia(proxyRes.headers.via, `${proxyRes.httpVersion}`);
      res.once('close', () => {
        if (!res.writableFinished) proxyRes.destroy();
      });
      this.settle(req, null);
    });
    // trap 1
    this.proxy.on('error', (err, req, res) => {
      const code = (err as NodeJS.ErrnoException).code;
      const timedOut = code === TIMED_OUT || code === 'ETIMEDOUT';
      const where = this.pending.get(req)?.where ?? 'origin';
      const failure: ForwardFailure = { status: timedOut ? 504 : 502,
        reason: timedOut ? `origin ${where} did not answer in time` : `cannot reach origin ${where} (${code ?? err.message})` };
      this.settle(req, failure);
      if (res instanceof http.ServerResponse) {
        if (!res.headersSent) {
          res.writeHead(failure.status, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
          res.end(`${failure.status === 504 ? 'Gateway Timeout' : 'Bad Gateway'}: ${failure.reason}\n`);
        } else res.destroy();
      } else (res as { destroy(): void }).destroy();
    });
  }

  private settle(req: http.IncomingMessage, failure: ForwardFailure | null): void {
    const entry = this.pending.get(req);
    if (entry === undefined) return;
    this.pending.delete(req);
    entry.done(failure);
  }

  /**
   * Sends `req` (absolute URI, already checked) to address:port with Host = authority. Resolves with
   * null once the origin's response started, or the failure that was answered.
   */
  forward(req: http.IncomingMessage, res: http.ServerResponse, address: string, port: number, authority: string): Promise<ForwardFailure | null> {
    const headers = req.headers;
    const via = withVia(headers.via, req.httpVersion);
    // Node's server has answered `Expect: 100-continue` already; forwarding it would trip trap 3
    delete headers.expect;
    stripHopByHop(headers);
    delete headers.via;
    // RFC 9112 §3.2.2: a proxy replaces Host with the authority of the absolute URI
    headers.host = authority;
    if (hasNoBody(req)) {
      headers.via = via;
      const fast = this.fast.forward(req, res, address, port, headers);
      if (fast !== null) return fast;
      delete headers.via;
    }
    return new Promise((resolve) => {
      this.pending.set(req, { done: resolve, where: address.includes(':') ? `[${address}]:${port}` : `${address}:${port}` });
      res.once('close', () => this.settle(req, null));
      this.proxy.web(req, res, { target: { host: address, port }, agent: this.agent, headers: { via } });
    });
  }

  close(): void {
    this.fast.close();
    this.agent.destroy();
    this.proxy.close();
  }
}
