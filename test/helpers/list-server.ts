/**
 * A list host on loopback for URL-source tests: serves `body` with an ETag (its hash) and a
 * Last-Modified, answers 304 to a matching If-None-Match, records every request, and can be
 * stopped and started again on the same address and port (an outage of the list's host).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ListServer {
  /** Base URL, e.g. http://127.0.0.71:40123 */
  readonly url: string;
  body: string;
  /** Served instead of 200 + body when set (e.g. 500, or 200 with an HTML page). */
  override: { status: number; body: string } | null;
  readonly requests: { path: string; headers: IncomingHttpHeaders; status: number }[];
  stop(): Promise<void>;
  /** Listens again on the same address and port. */
  start(): Promise<void>;
}

export async function startListServer(host = '127.0.0.71', body = ''): Promise<ListServer> {
  let server: Server | undefined;
  let port = 0;
  const state: ListServer = {
    url: '',
    body,
    override: null,
    requests: [],
    async stop() {
      const s = server;
      server = undefined;
      if (s === undefined) return;
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    },
    async start() {
      const s = createServer((req, res) => {
        const etag = `"${createHash('sha256').update(state.body).digest('hex').slice(0, 16)}"`;
        let status = 200;
        if (state.override !== null) {
          status = state.override.status;
          res.writeHead(status, { 'content-type': 'text/html' }).end(state.override.body);
        } else if (req.headers['if-none-match'] === etag) {
          status = 304;
          res.writeHead(304, { etag }).end();
        } else {
          res.writeHead(200, { 'content-type': 'text/plain', etag, 'last-modified': new Date(0).toUTCString() }).end(state.body);
        }
        state.requests.push({ path: req.url ?? '', headers: req.headers, status });
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, host, () => resolve());
      });
      port = (s.address() as AddressInfo).port;
      (state as { url: string }).url = `http://${host}:${port}`;
      server = s;
    },
  };
  await state.start();
  return state;
}
