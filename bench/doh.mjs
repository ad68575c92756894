// DNS over HTTPS on loopback: requests/s for sinkholed and cache-hit answers, over HTTP/2 (GET and
// POST, several sessions, many streams each) and HTTP/1.1 (keep-alive sockets), with mean latency.
// Run: npm run build && node bench/doh.mjs   (needs openssl for a throw-away certificate; taskset optional;
// APPFENCE_DIST=/some/dir runs another build of src/, default ../dist)
// The server is dist/cli.js serve, pinned to core 1 when taskset exists; the client runs here on core 0.
// Bounded: each run lasts BENCH_SECONDS (default 5) with at most CONCURRENCY (default 64) requests in flight.
import { spawn, execFileSync } from 'node:child_process';
import { startUpstream, freePort, sleep, have } from './lib.mjs';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 64);
const SESSIONS = 4;
const dir = mkdtempSync(join(tmpdir(), 'appfence-bench-doh-'));
if (!have('openssl')) { console.error('missing openssl'); process.exit(2); }
const pin = have('taskset');
if (pin) execFileSync('taskset', ['-cp', '0', String(process.pid)], { stdio: 'ignore' });



/** An A query with ID 0 (RFC 8484 §4.1: cache-friendly), built by hand so the bench needs no build of the tests. */
function query(name) {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  return Buffer.concat([Buffer.from([0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
  '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
const ca = readFileSync(join(dir, 'cert.pem'));

const upstream = await startUpstream();
const [dnsPort, dohPort] = [await freePort(), await freePort()];
writeFileSync(join(dir, 'appfence.yaml'), `dns:
  listen: ["127.0.0.1:${dnsPort}"]
  https: { listen: ["127.0.0.1:${dohPort}"], cert: ${join(dir, 'cert.pem')}, key: ${join(dir, 'key.pem')} }
  upstreams: ["127.0.0.1:${upstream.address().port}"]
  maxConnections: 1000
access: { allow: ["127.0.0.0/8"] }
lists: { tiktok: { sources: ["${join(root, 'blocklists/tiktok.txt')}"] } }
groups: { managed: { subnets: ["127.0.0.0/8"], block: [tiktok] } }
log: { level: warn, blocks: "${join(dir, 'blocks.log')}" }
`);
const argv = ['node', join(process.env.APPFENCE_DIST ?? join(root, 'dist'), 'cli.js'), 'serve', '--config', join(dir, 'appfence.yaml')];
const child = pin ? spawn('taskset', ['-c', '1', ...argv], { stdio: ['ignore', 'ignore', 'pipe'] })
  : spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
let err = ''; child.stderr.on('data', (d) => { err += d; });

const blocked = ['www.tiktok.com', 'api16-normal-c-useast1a.tiktokv.com', 'v16-webapp.tiktokcdn.com', 'mon.tiktokv.com'].map(query);
const cached = ['example.org', 'www.example.com', 'en.wikipedia.org', 'mail.example.net'].map(query);

/** Server CPU seconds so far (user + system), from /proc: the client may be the bottleneck, this says what the server spent. */
function serverCpu() {
  const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Keeps CONCURRENCY requests in flight for SECONDS; `send(body)` resolves with the HTTP status. */
async function drive(send, bodies) {
  const end = Date.now() + SECONDS * 1000;
  let done = 0; let failed = 0; let latency = 0;
  const worker = async (i) => {
    for (let n = i; Date.now() < end; n++) {
      const t0 = process.hrtime.bigint();
      const status = await send(bodies[n % bodies.length]).catch(() => 0);
      latency += Number(process.hrtime.bigint() - t0) / 1e6;
      if (status === 200) done++; else failed++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => worker(i)));
  return { rps: done / SECONDS, failed, meanMs: latency / Math.max(1, done + failed) };
}

function h2Sender(method) {
  const sessions = Array.from({ length: SESSIONS }, () => http2.connect(`https://127.0.0.1:${dohPort}`, { ca }));
  for (const s of sessions) s.on('error', () => {});
  let next = 0;
  const send = (body) => new Promise((resolve, reject) => {
    const session = sessions[next++ % sessions.length];
    const headers = method === 'GET'
      ? { ':method': 'GET', ':path': `/dns-query?dns=${body.toString('base64url')}`, accept: 'application/dns-message' }
      : { ':method': 'POST', ':path': '/dns-query', 'content-type': 'application/dns-message', 'content-length': body.length };
    const stream = session.request(headers);
    let status = 0;
    stream.on('response', (h) => { status = h[':status']; });
    stream.on('data', () => {});
    stream.on('end', () => resolve(status));
    stream.on('error', reject);
    stream.end(method === 'POST' ? body : undefined);
  });
  return { send, close: () => sessions.forEach((s) => s.close()) };
}

function h1Sender() {
  const agent = new https.Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca, ALPNProtocols: ['http/1.1'] });
  const send = (body) => new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: dohPort, agent, method: 'POST', path: '/dns-query',
      headers: { 'content-type': 'application/dns-message', 'content-length': body.length } });
    req.on('response', (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
    req.on('error', reject);
    req.end(body);
  });
  return { send, close: () => agent.destroy() };
}

try {
  for (let i = 0; ; i++) {              // wait until the DoH listener answers (bounded: 10 s)
    if (child.exitCode !== null) throw new Error(`appfence exited: ${err}`);
    const probe = h2Sender('GET');
    const ok = await probe.send(blocked[0]).then((s) => s === 200, () => false);
    probe.close();
    if (ok) break;
    if (i >= 100) throw new Error('appfence DoH listener did not come up');
    await sleep(100);
  }
  const rows = [];
  for (const [label, make] of [['HTTP/2 GET', () => h2Sender('GET')], ['HTTP/2 POST', () => h2Sender('POST')], ['HTTP/1.1 POST', h1Sender]]) {
    for (const [scenario, bodies] of [['blocked', blocked], ['cached', cached]]) {
      const sender = make();
      if (scenario === 'cached') await Promise.all(bodies.map((b) => sender.send(b))); // warm the cache
      const cpu0 = serverCpu();
      const r = await drive(sender.send, bodies);
      const cpu = serverCpu() - cpu0;
      sender.close();
      const usPerRequest = (cpu * 1e6) / Math.max(1, r.rps * SECONDS);
      rows.push(`| ${label} | ${scenario} | ${Math.round(r.rps)} | ${r.meanMs.toFixed(2)} | ${Math.round((100 * cpu) / SECONDS)} % | ${usPerRequest.toFixed(0)} | ${r.failed} |`);
    }
  }
  console.log(`\nDoH on loopback, ${CONCURRENCY} requests in flight (HTTP/2: over ${SESSIONS} sessions), ${SECONDS} s per run` +
    (pin ? ', server on core 1, client on core 0' : ' (no taskset: server and client share cores)'));
  console.log('| protocol | scenario | requests/s | mean latency ms | server CPU | server µs/request | failed |\n|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0);
  console.log(`server RSS after run: ${(rss / 1024).toFixed(1)} MB`);
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
  upstream.close();
}
