// DNS-over-HTTPS on loopback through the real runtime, over HTTP/2 and HTTP/1.1 (ALPN), GET and POST:
// a city laptop at a hotel (unmanaged source 127.0.20.x) is identified by its device certificate,
// strangers are not, the office subnet still is; Cache-Control follows the answer TTL; malformed
// requests get the RFC 8484 HTTP statuses; clientCerts.require refuses cert-less handshakes.
import t, { type Test } from 'tap';
import http2 from 'node:http2';
import https from 'node:https';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestPki, cityDevices, type TestPki, type Issued } from '../helpers/certs.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { buildQuery, decodeReply } from '../helpers/dns-client.js';
import { startServer, type Started } from '../helpers/start-server.js';
import { loadConfig } from '../../src/config/load.js';

const HOTEL = '127.0.20.5';
const OFFICE = '127.0.10.5';

let pki: TestPki;
let up: FakeUpstream;
let laptop: Issued;
let otherOu: Issued;
let forged: Issued;
let af: Started;

const yaml = (require: boolean, dnsExtra = '') => `
dns:${dnsExtra}
  listen: ["127.0.0.1:0"]
  https: { listen: ["127.0.0.1:0"], cert: ${pki.server.cert}, key: ${pki.server.key} }
  upstreams: ["127.0.0.1:${up.port}"]
  timeoutMs: 1000
  blockedTtl: 42
clientCerts: { ca: ${pki.ca.cert}, require: ${require} }
access: { allow: ["127.0.0.0/8"] }
lists: { tiktok: { sources: ["tiktok.txt"] } }
groups:
  city:
    subnets: ["127.0.10.0/24"]
    certificates: { issuer: "City Device CA", subject: { OU: "City Devices" } }
    block: [tiktok]
log: { level: silent }
`;

const start = (require = false, dnsExtra = ''): Promise<Started> => startServer(yaml(require, dnsExtra), { 'tiktok.txt': 'tiktok.com\n' });

interface HttpRequest { method?: string; path: string; headers?: Record<string, string | number>; body?: Buffer }
interface HttpReply { status: number; headers: Record<string, string | string[] | number | undefined>; body: Buffer }
type Kind = 'h2' | 'h1';
interface Client {
  request(r: HttpRequest): Promise<HttpReply>;
  /** The protocol ALPN settled on (after the first request). */
  alpn(): string | false | undefined;
  /** Settles when the server has closed the connection. */
  closed: Promise<void>;
  close(): void;
}

function tlsOptions(from: string, cert?: Issued) {
  return {
    localAddress: from, servername: 'localhost', ca: pki.serverCa.pem,
    ...(cert ? { cert: readFileSync(cert.cert), key: readFileSync(cert.key) } : {}),
  };
}

/** One HTTP/2 session: every request of this client shares the connection (and so its identity). */
function h2Client(port: number, from: string, cert?: Issued): Client {
  const session = http2.connect(`https://127.0.0.1:${port}`, tlsOptions(from, cert));
  let sessionError: Error | null = null;
  session.on('error', (err) => { sessionError = err; });
  return {
    request: (r) => new Promise((resolve, reject) => {
      if (sessionError !== null) return reject(sessionError);
      const stream = session.request({ ':method': r.method ?? 'GET', ':path': r.path, ...r.headers });
      const chunks: Buffer[] = [];
      let headers: http2.IncomingHttpHeaders | null = null;
      stream.on('response', (h) => { headers = h; });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        if (headers === null) return reject(new Error('stream ended without a response'));
        resolve({ status: Number(headers[':status']), headers, body: Buffer.concat(chunks) });
      });
      // after a complete response the server may reset the stream to stop an oversized upload
      stream.on('error', (err) => (headers === null ? reject(err) : undefined));
      stream.on('close', () => (headers === null ? reject(sessionError ?? new Error(`stream closed (${stream.rstCode})`)) : undefined));
      stream.end(r.body);
    }),
    alpn: () => session.alpnProtocol,
    closed: new Promise((resolve) => session.once('close', () => resolve())),
    close: () => session.destroy(),
  };
}

/** HTTP/1.1 over TLS (ALPN http/1.1, as curl --http1.1 offers; or no ALPN at all, as older clients) with one kept-alive socket. */
function h1Client(port: number, from: string, cert?: Issued, offerAlpn = true): Client {
  const agent = new https.Agent({
    keepAlive: true, maxSockets: 1, ...tlsOptions(from, cert), ...(offerAlpn ? { ALPNProtocols: ['http/1.1'] } : {}),
  });
  let alpn: string | false | undefined;
  let onClose: () => void = () => {};
  agent.on('free', (socket) => socket.once('close', () => onClose()));
  return {
    request: (r) => new Promise((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port, agent, method: r.method ?? 'GET', path: r.path, headers: r.headers });
      req.on('response', (res) => {
        alpn = (res.socket as import('node:tls').TLSSocket).alpnProtocol ?? undefined;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end(r.body);
    }),
    alpn: () => alpn,
    closed: new Promise((resolve) => { onClose = resolve; }),
    close: () => agent.destroy(),
  };
}

const clientOf = (kind: Kind, port: number, from: string, cert?: Issued): Client =>
  (kind === 'h2' ? h2Client : h1Client)(port, from, cert);

const getQuery = (c: Client, q: Buffer) => c.request({ path: `/dns-query?dns=${q.toString('base64url')}` });
const postQuery = (c: Client, q: Buffer) =>
  c.request({ method: 'POST', path: '/dns-query', headers: { 'content-type': 'application/dns-message' }, body: q });

/** Asks name/A with the method given; checks the DoH framing of a 200 and returns the addresses and max-age. */
async function ask(t: Test, c: Client, method: 'GET' | 'POST', name: string, label: string) {
  const q = buildQuery({ name, type: 'A', id: 0 });
  const res = method === 'GET' ? await getQuery(c, q) : await postQuery(c, q);
  t.equal(res.status, 200, `${label}: 200`);
  t.equal(res.headers['content-type'], 'application/dns-message', `${label}: content-type`);
  t.equal(Number(res.headers['content-length']), res.body.length, `${label}: content-length`);
  t.notOk('access-control-allow-origin' in res.headers, `${label}: no CORS header`);
  const reply = decodeReply(res.body);
  const maxAge = /^max-age=(\d+)$/.exec(String(res.headers['cache-control']))?.[1];
  t.ok(maxAge !== undefined, `${label}: cache-control max-age`);
  return { addresses: reply.answers.map((a) => a.data), ttls: reply.answers.map((a) => a.ttl), maxAge: Number(maxAge), rcode: reply.rcode };
}

const dohEvents = (s: Started) => s.events().filter((e) => e['proto'] === 'doh');

/**
 * The newest DoH block-log event once there are more than `seen`: the block log writes asynchronously
 * and flush() cannot force a write already in flight, so under load a line may land a moment later.
 */
async function newestDohEvent(s: Started, seen: number): Promise<Record<string, unknown> | undefined> {
  for (let i = 0; i < 100; i++) {
    const events = dohEvents(s);
    if (events.length > seen) return events.pop();
    await new Promise((r) => setTimeout(r, 20));
  }
  return undefined;
}

t.before(async () => {
  pki = await createTestPki();
  ({ laptop, otherOu, forged } = await cityDevices(pki));
  up = await startFakeUpstream({ zone: {
    'www.tiktok.com A': { answers: [{ type: 'A', ttl: 300, data: '198.51.100.7' }] },
    'ttl.example.org A': { answers: [{ type: 'A', ttl: 200, data: '192.0.2.20' }, { type: 'A', ttl: 120, data: '192.0.2.21' }] },
  } });
  af = await start();
});
t.teardown(async () => {
  await af?.close();
  await up?.close();
  if (pki) await rm(pki.dir, { recursive: true, force: true });
});

for (const kind of ['h2', 'h1'] as const) {
  t.test(`${kind}: device certificate identifies a laptop on an unmanaged network; others resolve normally`, async (t) => {
    const port = af.runtime.ports.doh[0]!;
    // count certificate checks: they belong to the connection, not to each request
    const runtime = af.runtime as unknown as { identifyTls: (socket: unknown) => unknown };
    const identifyTls = runtime.identifyTls;
    let identifyCalls = 0;
    runtime.identifyTls = function (this: unknown, socket: unknown) {
      identifyCalls++;
      return identifyTls.call(this, socket);
    };
    t.teardown(() => { runtime.identifyTls = identifyTls; });
    const dev = clientOf(kind, port, HOTEL, laptop);
    t.teardown(() => dev.close());
    for (const method of ['GET', 'POST'] as const) {
      const seen = dohEvents(af).length;
      const r = await ask(t, dev, method, 'www.tiktok.com', `${kind} ${method} city laptop at the hotel`);
      t.same(r.addresses, ['0.0.0.0'], `${method}: sinkholed`);
      t.equal(r.maxAge, 42, `${method}: max-age is blockedTtl`);
      t.match(await newestDohEvent(af, seen),
        { event: 'block', proto: 'doh', client: HOTEL, group: 'city', via: 'cert', device: 'laptop-042', name: 'www.tiktok.com' });
    }
    t.equal(dev.alpn(), kind === 'h2' ? 'h2' : 'http/1.1', 'ALPN picked the protocol asked for');
    t.equal(identifyCalls, 1, 'identity computed once for the two requests of one connection');
    if (kind === 'h1') {
      const old = h1Client(port, HOTEL, laptop, false);
      t.same((await ask(t, old, 'GET', 'www.tiktok.com', 'h1 without ALPN')).addresses, ['0.0.0.0'], 'a client offering no ALPN gets HTTP/1.1');
      t.equal(old.alpn(), false);
      old.close();
    }

    for (const [label, cert] of [['no certificate', undefined], ['other OU', otherOu], ['stranger CA, same subject', forged]] as const) {
      const c = clientOf(kind, port, HOTEL, cert);
      for (const method of ['GET', 'POST'] as const) {
        const r = await ask(t, c, method, 'www.tiktok.com', `${kind} ${method} ${label}`);
        t.same(r.addresses, ['198.51.100.7'], `${method} ${label}: not identified, forwarded`);
      }
      c.close();
    }

    const office = clientOf(kind, port, OFFICE);
    for (const method of ['GET', 'POST'] as const) {
      const seen = dohEvents(af).length;
      const r = await ask(t, office, method, 'www.tiktok.com', `${kind} ${method} office`);
      t.same(r.addresses, ['0.0.0.0'], `${method}: no certificate but a managed subnet: blocked`);
      t.match(await newestDohEvent(af, seen), { via: 'subnet', device: null, client: OFFICE, group: 'city' });
    }
    office.close();
  });
}

t.test('cache-control max-age is the smallest answer TTL and shrinks as the cached answer ages', async (t) => {
  const c = h2Client(af.runtime.ports.doh[0]!, HOTEL);
  t.teardown(() => c.close());
  const first = await ask(t, c, 'GET', 'ttl.example.org', 'fresh');
  t.same(first.addresses, ['192.0.2.20', '192.0.2.21']);
  t.equal(first.maxAge, 120, 'smallest TTL of the answer');
  const negative = await ask(t, c, 'POST', 'nothing.example.org', 'nxdomain');
  t.equal(negative.rcode, 3);
  t.equal(negative.maxAge, 300, 'negative answer: min(SOA TTL 3600, SOA MINIMUM 300)');

  const before = up.udpQueries;
  await new Promise((r) => setTimeout(r, 1100));
  const cached = await ask(t, c, 'POST', 'ttl.example.org', 'cached');
  t.equal(up.udpQueries, before, 'answered from the cache');
  t.ok(cached.maxAge < 120, `max-age went down (${cached.maxAge})`);
  t.equal(cached.maxAge, Math.min(...cached.ttls), 'max-age matches the TTLs in the message');
});

t.test('HTTP errors: 400, 404, 405, 413, 415 (HTTP/2 and HTTP/1.1)', async (t) => {
  const port = af.runtime.ports.doh[0]!;
  const query = buildQuery({ name: 'example.org', type: 'A', id: 0 });
  const response = Buffer.from(query);
  response[2] = response[2]! | 0x80; // QR=1: a response sent as a query
  const post = (body: Buffer, headers: Record<string, string | number> = { 'content-type': 'application/dns-message' }) =>
    ({ method: 'POST', path: '/dns-query', headers, body });
  const cases: [string, HttpRequest, number][] = [
    ['GET bad base64url', { path: '/dns-query?dns=AAAA*BBB' }, 400],
    ['GET standard base64 "+"', { path: '/dns-query?dns=ab+c' }, 400],
    ['GET impossible length', { path: '/dns-query?dns=AAAAA' }, 400],
    ['GET without dns', { path: '/dns-query' }, 400],
    ['GET other parameter only', { path: '/dns-query?name=example.org' }, 400],
    ['GET empty dns', { path: '/dns-query?dns=' }, 400],
    ['GET a response (QR=1)', { path: `/dns-query?dns=${response.toString('base64url')}` }, 400],
    ['POST a response (QR=1)', post(response), 400],
    ['POST shorter than a header', post(query.subarray(0, 11)), 400],
    ['POST empty body', post(Buffer.alloc(0)), 400],
    ['POST text/plain', post(query, { 'content-type': 'text/plain' }), 415],
    ['POST without content-type', { method: 'POST', path: '/dns-query', body: query }, 415],
    ['POST 65536 bytes, declared', post(Buffer.alloc(65536), { 'content-type': 'application/dns-message', 'content-length': 65536 }), 413],
    ['POST 100000 bytes, streamed', post(Buffer.alloc(100_000)), 413],
    ['GET other path', { path: '/resolve?dns=AAAA' }, 404],
    ['GET path with trailing slash', { path: '/dns-query/' }, 404],
    ['PUT', { method: 'PUT', path: '/dns-query', headers: { 'content-type': 'application/dns-message' }, body: query }, 405],
    ['DELETE', { method: 'DELETE', path: '/dns-query' }, 405],
  ];
  for (const kind of ['h2', 'h1'] as const) {
    for (const [label, req, status] of cases) {
      // a fresh connection each: HTTP/1.1 closes the connection after refusing an unread body
      const c = clientOf(kind, port, HOTEL);
      const res = await c.request(req).catch((err: Error) => err);
      c.close();
      if (res instanceof Error) {
        t.fail(`${kind} ${label}: ${res.message}`);
        continue;
      }
      t.equal(res.status, status, `${kind} ${label}: ${status}`);
      if (status === 405) t.equal(res.headers['allow'], 'GET, POST', `${kind} ${label}: Allow`);
    }
    // the padded form of a valid query is tolerated, and the largest legal body is read, not refused
    const c = clientOf(kind, port, HOTEL);
    const padded = query.toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
    t.equal((await c.request({ path: `/dns-query?dns=${padded}` })).status, 200, `${kind} padded base64url`);
    t.equal((await c.request(post(Buffer.concat([query, Buffer.alloc(65535 - query.length)])))).status, 200,
      `${kind} 65535-byte body (trailing junk after the question is ignored)`);
    c.close();
  }
});

t.test('HTTP/1.1 that does not parse gets 400 and the connection is closed', async (t) => {
  const socket = tls.connect({ host: '127.0.0.1', port: af.runtime.ports.doh[0]!, ALPNProtocols: ['http/1.1'], ...tlsOptions(HOTEL) });
  socket.on('secureConnect', () => socket.write('NOT HTTP AT ALL\r\n\r\n'));
  let text = '';
  socket.on('data', (c: Buffer) => { text += c.toString('latin1'); });
  await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  t.match(text, /^HTTP\/1\.1 400 /);
});

t.test('a pipeline that throws or rejects gives 500 and the listener lives on', async (t) => {
  const c = h2Client(af.runtime.ports.doh[0]!, HOTEL);
  t.teardown(() => c.close());
  const pipeline = af.runtime.pipeline;
  const handle = pipeline.handle;
  t.teardown(() => { pipeline.handle = handle; });
  const q = buildQuery({ name: 'example.org', type: 'A' });
  pipeline.handle = () => { throw new Error('bug'); };
  t.equal((await getQuery(c, q)).status, 500, 'synchronous throw');
  pipeline.handle = () => Promise.reject(new Error('bug'));
  t.equal((await postQuery(c, q)).status, 500, 'rejected promise');
  pipeline.handle = handle;
  const r = await ask(t, c, 'GET', 'www.tiktok.com', 'after the failures');
  t.same(r.addresses, ['198.51.100.7'], 'same connection still served');
});

t.test('clientCerts.require: a handshake without a valid device certificate fails; a reload can lift it', async (t) => {
  const strict = await start(true);
  t.teardown(() => strict.close());
  const port = strict.runtime.ports.doh[0]!;
  for (const kind of ['h2', 'h1'] as const) {
    for (const [label, cert] of [['no certificate', undefined], ['stranger CA', forged]] as const) {
      const c = clientOf(kind, port, HOTEL, cert);
      // TLS 1.3: the server's verdict on the client certificate arrives after the client's handshake completes
      const res = await getQuery(c, buildQuery({ name: 'www.tiktok.com', type: 'A' })).catch((err: Error) => err);
      c.close();
      t.ok(res instanceof Error, `${kind} ${label}: refused`);
    }
    const dev = clientOf(kind, port, HOTEL, laptop);
    t.same((await ask(t, dev, 'POST', 'www.tiktok.com', `${kind} device`)).addresses, ['0.0.0.0'], `${kind}: device certificate accepted`);
    dev.close();
  }

  // require is a server property, not part of the secure context: the reload must carry it over
  strict.writeConfig(yaml(false));
  t.equal(await strict.runtime.reload(() => loadConfig(join(strict.dir, 'appfence.yaml'))), null, 'reloaded');
  const c = h2Client(port, HOTEL);
  t.same((await ask(t, c, 'GET', 'www.tiktok.com', 'cert-less after reload')).addresses, ['198.51.100.7'], 'cert-less client now accepted');
  c.close();
});

t.test('stop with clients still connected: open sessions and sockets are closed, stop() returns', async (t) => {
  const own = await start();
  const port = own.runtime.ports.doh[0]!;
  const h2 = h2Client(port, HOTEL, laptop);
  const h1 = h1Client(port, OFFICE);
  t.equal((await getQuery(h2, buildQuery({ name: 'www.tiktok.com', type: 'A' }))).status, 200);
  t.equal((await getQuery(h1, buildQuery({ name: 'www.tiktok.com', type: 'A' }))).status, 200);
  await own.close();
  const after = await getQuery(h2Client(port, HOTEL), buildQuery({ name: 'www.tiktok.com', type: 'A' })).catch((err: Error) => err);
  t.ok(after instanceof Error, 'listener gone');
  h2.close();
  h1.close();
});

t.test('idle connections are closed; a full listener closes the longest-idle one for a new connection', async (t) => {
  const own = await start(false, '\n  tcpIdleTimeoutMs: 300\n  maxConnections: 2');
  t.teardown(() => own.close());
  const port = own.runtime.ports.doh[0]!;
  const q = buildQuery({ name: 'www.tiktok.com', type: 'A' });
  const h2 = h2Client(port, HOTEL);
  const h1 = h1Client(port, HOTEL);
  t.equal((await getQuery(h2, q)).status, 200);
  t.equal((await getQuery(h1, q)).status, 200);
  const third = h2Client(port, HOTEL);
  t.equal((await getQuery(third, q)).status, 200, 'a third connection gets in (RFC 7766 6.2.3: the idlest goes)');
  await h2.closed;
  t.pass('the longest-idle connection (the first h2 one) was closed to make room');
  third.close();
  await h1.closed;
  t.pass('the other idle connection was closed by the idle timeout');
  const again = h2Client(port, HOTEL);
  t.equal((await getQuery(again, q)).status, 200, 'room again once they are gone');
  again.close();
});
