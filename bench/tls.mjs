// Encrypted transports beside plain UDP, in one run against the same appfence process: UDP and DoT
// with dnsperf (-m dot), DoH with a node:http2 client here (dnsperf 2.10's DoH client stalls after a
// few answers from Node's HTTP/2 server), on reused connections, for sinkholed and cache-hit answers;
// then the cost of a new connection (a new TLS connection per query, from a Node client, 8 at a time).
// Server pinned to core 1, clients to core 0.
// Run: npm run build && node bench/tls.mjs   (needs dnsperf, openssl, taskset). Bounded: BENCH_SECONDS per run.
import { spawn, execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { startUpstream, freePort, wireQuery } from './lib.mjs';
import net from 'node:net';
import http2 from 'node:http2';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const dir = mkdtempSync(join(tmpdir(), 'appfence-bench-tls-'));
const run = promisify(execFile);
// this process is the DoH client: keep it off the server's core
execFileSync('taskset', ['-cp', '0', String(process.pid)], { stdio: 'ignore' });
for (const cmd of ['dnsperf', 'openssl', 'taskset']) {
  try { execFileSync('sh', ['-c', `command -v ${cmd}`]); } catch { console.error(`missing ${cmd}`); process.exit(2); }
}
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
  '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });

const up = await startUpstream();
const [udpPort, dotPort, dohPort] = [await freePort(), await freePort(), await freePort()];
writeFileSync(join(dir, 'appfence.yaml'), `dns:
  listen: ["127.0.0.1:${udpPort}"]
  tls: { listen: ["127.0.0.1:${dotPort}"], cert: cert.pem, key: key.pem }
  https: { listen: ["127.0.0.1:${dohPort}"], cert: cert.pem, key: key.pem }
  upstreams: ["127.0.0.1:${up.address().port}"]
access: { allow: ["127.0.0.0/8"] }
lists: { tiktok: { sources: ["${join(root, 'blocklists/tiktok.txt')}"] } }
groups: { managed: { subnets: ["127.0.0.0/8"], block: [tiktok] } }
log: { level: info, blocks: "${join(dir, 'blocks.log')}" }
`);
writeFileSync(join(dir, 'blocked.txt'), 'www.tiktok.com A\napi16-normal-c-useast1a.tiktokv.com A\nv16-webapp.tiktokcdn.com AAAA\n');
writeFileSync(join(dir, 'cached.txt'), 'example.org A\nwww.example.com A\nen.wikipedia.org A\n');

const server = spawn('taskset', ['-c', '1', process.execPath, join(root, 'dist/cli.js'), 'serve', '--config', join(dir, 'appfence.yaml')], { stdio: ['ignore', 'ignore', 'pipe'] });
await new Promise((resolve, reject) => {
  let err = '';
  server.stderr.on('data', (d) => { err += d; if (err.includes('appfence started')) resolve(); });
  server.once('exit', (c) => reject(new Error(`serve exited ${c}: ${err}`)));
});

async function dnsperf(mode, file, extra = []) {
  const port = mode === 'udp' ? udpPort : dotPort;
  const args = ['-c', '0', 'dnsperf', '-m', mode, '-s', '127.0.0.1', '-p', String(port), '-d', join(dir, file),
    '-l', String(SECONDS), '-c', '1', '-q', '100', '-t', '3', ...extra];
    const { stdout } = await run('taskset', args, { timeout: (SECONDS + 30) * 1000 });
  return Math.round(Number(/Queries per second:\s+([\d.]+)/.exec(stdout)?.[1] ?? 0));
}

const connectH2 = () => http2.connect(`https://127.0.0.1:${dohPort}`, { rejectUnauthorized: false });
const post = (session, body) => new Promise((resolve, reject) => {
  const req = session.request({ ':method': 'POST', ':path': '/dns-query', 'content-type': 'application/dns-message' });
  req.on('response', () => undefined).on('data', () => undefined).on('end', resolve).on('error', reject);
  req.end(body);
});
/** DoH on reused HTTP/2 sessions: 4 sessions × 25 streams in flight (100, like dnsperf -q 100), for SECONDS. */
async function doh(file) {
  const bodies = (await import('node:fs')).readFileSync(join(dir, file), 'utf8').trim().split('\n').map(wireQuery);
  const sessions = Array.from({ length: 4 }, connectH2);
  let done = 0;
  const end = Date.now() + SECONDS * 1000;
  await Promise.all(Array.from({ length: 100 }, async (_, w) => {
    for (let i = w; Date.now() < end; i++) { await post(sessions[w % 4], bodies[i % bodies.length]); done++; }
  }));
  sessions.forEach((s) => s.close());
  return Math.round(done / SECONDS);
}
/** A new TLS connection + HTTP/2 session per query, 8 at a time. */
async function dohFresh(file) {
  const body = wireQuery((await import('node:fs')).readFileSync(join(dir, file), 'utf8').split('\n')[0]);
  let done = 0;
  const end = Date.now() + SECONDS * 1000;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (Date.now() < end) { const s = connectH2(); await post(s, body); s.destroy(); done++; }
  }));
  return Math.round(done / SECONDS);
}

/** A new TLS connection per DoT query, 8 at a time (dnsperf's num-queries-per-conn=1 waits on its own reconnect timer). */
async function dotFresh(file) {
  const q = wireQuery((await import('node:fs')).readFileSync(join(dir, file), 'utf8').split('\n')[0]);
  const framed = Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]);
  const tls = await import('node:tls');
  let done = 0;
  const end = Date.now() + SECONDS * 1000;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (Date.now() < end) {
      await new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port: dotPort, rejectUnauthorized: false }, () => s.write(framed));
        s.once('data', () => { s.destroy(); resolve(); }).once('error', reject);
      });
      done++;
    }
  }));
  return Math.round(done / SECONDS);
}

const rows = [];
for (const mode of ['udp', 'dot']) {
  await dnsperf(mode, 'cached.txt');                 // warm the cache (and the connection path)
  rows.push([mode, await dnsperf(mode, 'blocked.txt'), await dnsperf(mode, 'cached.txt')]);
}
await doh('cached.txt');
rows.push(['doh (HTTP/2 POST)', await doh('blocked.txt'), await doh('cached.txt')]);
const fresh = [['dot', await dotFresh('blocked.txt')], ['doh', await dohFresh('blocked.txt')]];
server.kill('SIGTERM');
up.close();

console.log(`\nappfence, ${SECONDS} s per run, 100 queries in flight, server on core 1, clients on core 0 (DoH client is Node: it may be the limit)`);
console.log('| transport | blocked q/s | cache hit q/s |\n|---|---|---|');
for (const [mode, b, c] of rows) console.log(`| ${mode} (reused connection) | ${b} | ${c} |`);
console.log('\n| new connection per query | q/s | ms per connection (8 in parallel, client and server) |\n|---|---|---|');
for (const [mode, qps] of fresh) console.log(`| ${mode} (TLS handshake + 1 query) | ${qps} | ${qps ? (8000 / qps).toFixed(2) : '-'} |`);
