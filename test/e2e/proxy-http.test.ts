// The HTTP forward proxy end to end with curl: the same policy as DNS by host name (managed devices
// 127.0.10.x get the block page, guests 127.0.20.x the origin), names resolved through appfence's own
// resolver (the fake upstream), CNAME and IP rules, access, PAC, loops, origin failures, malformed input.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startServer, type Started } from '../helpers/start-server.js';
import { startOrigin, type Origin } from '../helpers/origin.js';
import { curl, rawExchange } from '../helpers/curl.js';
import { loadConfig } from '../../src/config/load.js';

const MANAGED = '127.0.10.7';
const GUEST = '127.0.20.7';

let up: FakeUpstream;
let origin: Origin;
let srv: Started;
let proxy: string;

const A = (address: string) => ({ answers: [{ type: 'A', data: address }] });
const yaml = (extra = '') => `
dns: { listen: ["127.0.0.1:0"], upstreams: ["127.0.0.1:${up.port}"], timeoutMs: 400 }
proxy:
  listen: ["127.0.0.1:0"]
  blockPage: { contact: "IT service desk, ext. 4357" }
  connectTimeoutMs: 700
${extra}
access: { allow: ["127.0.10.0/24", "127.0.20.0/24", "127.0.0.1/32"] }
lists: { tiktok: { sources: ["tiktok.txt"] } }
groups: { city: { subnets: ["127.0.10.0/24"], block: [tiktok] } }
log: { level: silent }
`;

t.before(async () => {
  origin = await startOrigin('127.0.0.2');
  up = await startFakeUpstream({ zone: {
    'allowed.example.org A': A('127.0.0.2'),
    'www.tiktok.com A': A('127.0.0.2'),
    'alias.example.org A': { answers: [{ type: 'CNAME', data: 'edge.tiktokcdn.com' }, { name: 'edge.tiktokcdn.com', type: 'A', data: '127.0.0.2' }] },
    'down.example.org A': A('127.0.0.3'),
    'self.example.org A': A('127.0.0.1'),
    'v6.example.org A': { answers: [] },
    'v6.example.org AAAA': { answers: [{ type: 'AAAA', data: '::1' }] },
  } });
  srv = await startServer(yaml(), { 'tiktok.txt': 'tiktok.com\ntiktokcdn.com\n127.0.0.9/32\n' });
  proxy = `http://127.0.0.1:${srv.runtime.ports.proxy[0]}`;
});
t.teardown(async () => {
  await srv.close();
  await up.close();
  await origin.close();
});

const via = (from: string, url: string, ...args: string[]) => curl(['-x', proxy, '--interface', from, ...args, url]);

t.test('a guest reaches the origin; hop-by-hop fields stay on their hop; Via both ways', async (t) => {
  const r = await via(GUEST, `http://allowed.example.org:${origin.port}/page?q=1`, '-U', 'user:pw', '-H', 'Connection: x-private', '-H', 'X-Private: 1');
  t.equal(r.status, 200);
  t.match(r.body, /<h1>Origin page<\/h1>/);
  const seen = origin.seen.at(-1)!;
  t.equal(seen.url, '/page?q=1', 'origin-form path');
  t.equal(seen.headers.host, `allowed.example.org:${origin.port}`);
  t.equal(seen.headers.via, '1.1 appfence');
  t.notOk('proxy-authorization' in seen.headers, 'Proxy-Authorization is not passed on');
  t.notOk('x-private' in seen.headers || 'proxy-connection' in seen.headers, 'fields named by Connection are dropped');
  t.equal(r.headers.via, '1.1 appfence');
  t.notOk('x-origin-hop' in r.headers || 'keep-alive' in r.headers, 'the origin\'s hop-by-hop fields are dropped');
  t.ok(up.log.some((q) => q.name === 'allowed.example.org' && q.type === 1), 'resolved through appfence\'s upstream');
});

t.test('a managed device gets the block page; a guest asking the same name gets the origin', async (t) => {
  const before = srv.runtime.proxyStats.blocked;
  const r = await via(MANAGED, `http://www.tiktok.com:${origin.port}/foryou`);
  t.equal(r.status, 403);
  t.match(r.headers['content-type'], /^text\/html/);
  for (const text of ['www.tiktok.com', 'tiktok.com', 'city', 'IT service desk, ext. 4357']) t.match(r.body, text);
  t.notMatch(r.body, /<script|src=|href=|url\(/i, 'self-contained: no script, no external resource');
  t.equal(srv.runtime.proxyStats.blocked, before + 1);
  const ev = srv.events().filter((e) => e.proto === 'http').at(-1);
  t.match(ev, { event: 'block', proto: 'http', client: MANAGED, group: 'city', via: 'subnet', device: null,
    name: 'www.tiktok.com', rule: 'tiktok.com', list: 'tiktok', answer: 'forbidden' });
  t.type(ev?.time, 'string');
  const g = await via(GUEST, `http://www.tiktok.com:${origin.port}/foryou`);
  t.equal(g.status, 200);
  t.match(g.body, 'Origin page');
});

t.test('CNAME inspection and IP rules apply to the proxy too', async (t) => {
  const c = await via(MANAGED, `http://alias.example.org:${origin.port}/`);
  t.equal(c.status, 403);
  t.match(c.body, 'edge.tiktokcdn.com');
  t.match(srv.events().at(-1), { proto: 'http', name: 'alias.example.org', cname: 'edge.tiktokcdn.com', rule: 'tiktokcdn.com' });
  const ip = await via(MANAGED, 'http://127.0.0.9/');
  t.equal(ip.status, 403);
  t.match(srv.events().at(-1), { name: '127.0.0.9', rule: '127.0.0.9/32', list: 'tiktok' });
  const rawOk = await via(MANAGED, `http://127.0.0.2:${origin.port}/raw`);
  t.equal(rawOk.status, 200, 'a raw IP outside every range is forwarded');
  const v6 = await via(GUEST, `http://v6.example.org:1/`);
  t.equal(v6.status, 502, 'AAAA is used when a name has no A (::1:1 refuses)');
  t.match(v6.body, '[::1]:1');
});

t.test('clients outside access.allow get 403; the PAC file points at this proxy', async (t) => {
  const r = await via('127.0.30.1', `http://allowed.example.org:${origin.port}/`);
  t.equal(r.status, 403);
  t.match(r.body, 'access denied');
  const port = srv.runtime.ports.proxy[0];
  for (const path of ['/proxy.pac', '/wpad.dat']) {
    const pac = await curl(['--interface', GUEST, `${proxy}${path}`]);
    t.equal(pac.status, 200);
    t.equal(pac.headers['content-type'], 'application/x-ns-proxy-autoconfig');
    t.match(pac.body, `return "PROXY 127.0.0.1:${port}";`);
  }
  const named = await curl(['-H', 'Host: proxy.lan:3128', `${proxy}/proxy.pac`]);
  t.match(named.body, 'PROXY proxy.lan:3128', 'the Host the device used');
  const post = await curl(['-d', 'x', `${proxy}/proxy.pac`]);
  t.equal(post.status, 405);
});

t.test('loops and SSRF into appfence are refused', async (t) => {
  const port = srv.runtime.ports.proxy[0]!;
  for (const url of [`http://127.0.0.1:${port}/`, `http://self.example.org:${port}/x`, `http://0.0.0.0:${port}/`,
    `http://localhost.:${srv.port}/`, `http://2130706433:${srv.port}/`]) {
    const r = await via(GUEST, url);
    t.equal(r.status, url.includes('localhost') ? 502 : 403, url);
    if (r.status === 403) t.match(r.body, 'this proxy itself');
  }
});

t.test('origin failures: 502 on a refused connection or unknown name, 504 on silence; others unaffected', async (t) => {
  const errors = srv.runtime.proxyStats.error;
  const refused = await via(GUEST, `http://down.example.org:${origin.port}/`);
  t.equal(refused.status, 502);
  t.match(refused.body, `Bad Gateway: cannot reach origin 127.0.0.3:${origin.port} (ECONNREFUSED)`);
  const unknown = await via(GUEST, 'http://gone.example.org/');
  t.equal(unknown.status, 502);
  t.match(unknown.body, 'cannot resolve gone.example.org');
  const [slow, ok] = await Promise.all([via(GUEST, `http://allowed.example.org:${origin.port}/slow`),
    via(GUEST, `http://allowed.example.org:${origin.port}/fine`)]);
  t.equal(slow.status, 504);
  t.match(slow.body, 'Gateway Timeout');
  t.equal(ok.status, 200);
  t.equal(srv.runtime.proxyStats.error, errors + 3);
  const reset = await via(GUEST, `http://allowed.example.org:${origin.port}/reset`);
  t.equal(reset.status, 502);
});

t.test('bodies stream both ways; Expect: 100-continue works; a client that leaves stops the origin', async (t) => {
  const file = join(srv.dir, 'upload.bin');
  writeFileSync(file, 'x'.repeat(300_000));
  const post = await via(GUEST, `http://allowed.example.org:${origin.port}/upload`, '-H', 'Expect: 100-continue', '-U', 'u:p',
    '--data-binary', `@${file}`);
  t.equal(post.status, 200);
  const seen = origin.seen.at(-1)!;
  t.equal(seen.bodyBytes, 300_000);
  t.notOk('proxy-authorization' in seen.headers || 'expect' in seen.headers);
  t.equal(seen.headers.via, '1.1 appfence', 'Via set even with Expect (http-proxy skips proxyReq then)');
  const big = await via(GUEST, `http://allowed.example.org:${origin.port}/big?kb=2048`);
  t.equal(big.body.length, 2048 * 1024);
  await curl(['-x', proxy, '--interface', GUEST, '--max-time', '0.3', `http://allowed.example.org:${origin.port}/stream?n=200`], 300);
  for (let i = 0; i < 50 && origin.openStreams > 0; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(origin.openStreams, 0, 'the origin stream was closed when the client went away');
});

t.test('malformed requests get 400/431 and concern their own connection only', async (t) => {
  const port = srv.runtime.ports.proxy[0]!;
  t.match(await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'), /^HTTP\/1\.1 400 /);
  t.match(await rawExchange(port, 'BLAH\r\n\r\n'), /^HTTP\/1\.1 400 /);
  t.match(await rawExchange(port, `GET http://allowed.example.org/ HTTP/1.1\r\nHost: a\r\nX: ${'y'.repeat(20_000)}\r\n\r\n`), /^HTTP\/1\.1 431 /);
  t.match(await rawExchange(port, 'GET https://allowed.example.org/ HTTP/1.1\r\nHost: a\r\n\r\n'), /^HTTP\/1\.1 400 /);
  t.match(await rawExchange(port, 'GET http://us:pw@allowed.example.org/ HTTP/1.1\r\nHost: a\r\n\r\n'), /^HTTP\/1\.1 400 /);
  t.match(await rawExchange(port, 'GET http://bad_host!/ HTTP/1.1\r\nHost: a\r\n\r\n'), /^HTTP\/1\.1 400 /);
  const ok = await via(GUEST, `http://allowed.example.org:${origin.port}/after`);
  t.equal(ok.status, 200, 'the proxy still serves everyone else');
});

t.test('a reload applies new proxy settings (pacHost, contact) without a restart', async (t) => {
  const path = srv.writeConfig(yaml('  pacHost: proxy.city.example').replace('ext. 4357', 'ext. 9999'));
  t.equal(await srv.runtime.reload(() => loadConfig(path)), null);
  const pac = await curl([`${proxy}/proxy.pac`]);
  t.match(pac.body, `PROXY proxy.city.example:${srv.runtime.ports.proxy[0]}`);
  const r = await via(MANAGED, 'http://www.tiktok.com/');
  t.match(r.body, 'ext. 9999');
});

t.test('query lines follow groups.<g>.logQueries over log.queries, as DNS query lines do', async (t) => {
  const queryLines = () => srv.events().filter((e) => e['event'] === 'query');
  const groups = 'groups: { city: { subnets: ["127.0.10.0/24"], block: [tiktok] } }';
  const page = `http://allowed.example.org:${origin.port}/logged`;
  // log.queries on, the guests' group off
  let path = srv.writeConfig(yaml().replace('log: { level: silent }', 'log: { level: silent, queries: true }')
    .replace(groups, 'groups:\n  city: { subnets: ["127.0.10.0/24"], block: [tiktok], logQueries: true }\n  guests: { subnets: ["127.0.20.0/24"], logQueries: false }'));
  t.equal(await srv.runtime.reload(() => loadConfig(path)), null);
  let before = queryLines().length;
  t.equal((await via(GUEST, page)).status, 200);
  t.equal((await via(MANAGED, page)).status, 200);
  t.match(queryLines().slice(before), [{ event: 'query', proto: 'http', client: MANAGED, group: 'city', name: 'allowed.example.org', answer: 'forward' }],
    'log.queries on: the city device is logged, the guests (logQueries: false) are not');
  t.equal(queryLines().slice(before).length, 1);

  // log.queries off, the city group on
  path = srv.writeConfig(yaml().replace(groups,
    'groups:\n  city: { subnets: ["127.0.10.0/24"], block: [tiktok], logQueries: true }\n  guests: { subnets: ["127.0.20.0/24"] }'));
  t.equal(await srv.runtime.reload(() => loadConfig(path)), null);
  before = queryLines().length;
  t.equal((await via(GUEST, page)).status, 200);
  t.equal((await via(MANAGED, page)).status, 200);
  t.match(queryLines().slice(before), [{ proto: 'http', client: MANAGED, group: 'city' }], 'log.queries off: only the group that asks for it');
  t.equal(queryLines().slice(before).length, 1);
  path = srv.writeConfig(yaml());
  t.equal(await srv.runtime.reload(() => loadConfig(path)), null);
});

t.test('bodiless requests (the undici path): HEAD, the path sent as written, Connection: close honoured', async (t) => {
  const head = await via(GUEST, `http://allowed.example.org:${origin.port}/head`, '-I');
  t.equal(head.status, 200);
  t.notMatch(head.body, /<html|Origin page/, 'no body on HEAD');
  t.ok(Number(head.headers['content-length']) > 0, 'the origin\'s content-length is passed on');
  t.equal(origin.seen.at(-1)!.method, 'HEAD');
  await via(GUEST, `http://allowed.example.org:${origin.port}/a/../b;p?x=1#frag`, '--path-as-is');
  t.equal(origin.seen.at(-1)!.url, '/a/../b;p?x=1', 'no dot-segment rewriting, no fragment');
  const port = srv.runtime.ports.proxy[0]!;
  const raw = await rawExchange(port, `GET http://allowed.example.org:${origin.port}?only HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`, GUEST);
  t.match(raw, /^HTTP\/1\.1 200 OK\r\n/);
  t.match(raw, /\r\nconnection: close\r\n/i, 'the client asked to close: told so, and closed (rawExchange saw the end)');
  t.equal(origin.seen.at(-1)!.url, '/?only');
  t.notMatch(raw, /keep-alive: timeout/i);
});
