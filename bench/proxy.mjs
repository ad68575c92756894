// The forward proxy against Squid, in the same run, on loopback: wrk through appfence and through Squid
// (Debian's squid, the same deny list as `acl dstdomain`, the same origin), requests/s for allowed small
// responses and for blocked requests, each as a ratio to Squid; then CONNECT tunnel throughput in MB/s
// through each proxy against a direct connection.
// Run: npm run build && node bench/proxy.mjs   (needs wrk and squid; BENCH_SECONDS per wrk run, default 5;
// CONNECTIONS wrk keep-alive connections, default 32; TUNNEL_MB bytes per tunnel run, default 200)
// Both proxies see the same origin (a separate Node process) and the same managed client (loopback);
// appfence resolves bench names through its own cache (one upstream query, then hits), Squid from a
// hosts_file, so neither waits for DNS during the timed runs.
// CPU per request (µs) and per tunnelled MB (ms) = Δ(utime+stime) of each proxy's process tree from
// /proc over the run ÷ the work done: steadier than req/s on a shared machine, printed next to it.
// APPFENCE_NODE_ARGS adds flags to appfence's node (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
import { spawn, execFileSync } from 'node:child_process';
import net from 'node:net';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, sleep, have, cpuTicks } from './lib.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 32);
const TUNNEL_MB = Number(process.env.TUNNEL_MB ?? 200);
const ORIGIN_HOST = '127.0.0.2';
const ALLOWED = 'allowed.bench.example';
const BLOCKED = 'www.tiktok.com';
for (const cmd of ['wrk', 'squid']) if (!have(cmd)) { console.log(`skipped: ${cmd} is not installed (Debian package "${cmd}")`); process.exit(0); }

const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
/** BENCH_PARTS=allowed,blocked,connect (default all): e.g. one part under a profiler. */
const PARTS = new Set((process.env.BENCH_PARTS ?? 'allowed,blocked,connect').split(','));
const NODE_ARGS = (process.env.APPFENCE_NODE_ARGS ?? '').split(' ').filter(Boolean);


const dir = mkdtempSync(join(tmpdir(), 'appfence-bench-proxy-'));
chmodSync(dir, 0o777); // squid drops to its own user and writes its logs here
const children = [];
const cleanup = () => { for (const c of children) c.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }); };
process.on('exit', cleanup);

/**
 * The origin and the DNS upstream, in their own process (wrk runs synchronously from this one): a 2-byte
 * "ok" on HTTP; TUNNEL_MB of bytes per connection on the tunnel port; and a UDP upstream answering every
 * A question with the origin's address (TTL one day) and anything else with no data.
 */
function startOrigin(httpPort, tunnelPort, dnsPort) {
  const code = `
    const http = require('node:http'), net = require('node:net'), dgram = require('node:dgram');
    const sock = dgram.createSocket('udp4');
    sock.on('message', (q, r) => {
      let o = 12; while (o < q.length && q[o] !== 0) o += q[o] + 1; o += 1;
      const type = q.readUInt16BE(o); o += 4;
      const head = Buffer.from(q.subarray(0, o)); head[2] = 0x81; head[3] = 0x80;
      head.writeUInt16BE(type === 1 ? 1 : 0, 6); head.writeUInt16BE(0, 8); head.writeUInt16BE(0, 10);
      const rr = type === 1 ? Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 1, 0x51, 0x80, 0, 4, ${ORIGIN_HOST.split('.').join(', ')}]) : Buffer.alloc(0);
      sock.send(Buffer.concat([head, rr]), r.port, r.address);
    });
    sock.bind(${dnsPort}, '127.0.0.1');
    http.createServer((q, s) => { s.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 }); s.end('ok'); })
      .listen(${httpPort}, '${ORIGIN_HOST}');
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    net.createServer((c) => {
      c.on('error', () => {});
      let left = ${TUNNEL_MB} * 1024 * 1024;
      const pump = () => { while (left > 0) { left -= chunk.length; if (!c.write(chunk)) return void c.once('drain', pump); } c.end(); };
      c.once('data', pump);
    }).listen(${tunnelPort}, '${ORIGIN_HOST}');`;
  const child = spawn(process.execPath, ['-e', code], { stdio: 'inherit' });
  children.push(child);
}

async function waitForPort(port, host = '127.0.0.1', what = 'server') {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((res) => { const s = net.connect(port, host, () => { s.destroy(); res(true); }); s.on('error', () => res(false)); });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`${what} did not start on ${host}:${port}`);
}

/** wrk through a forward proxy: the request line carries the absolute URI (wrk has no proxy option). */
function wrk(proxyPort, url, pid) {
  const before = pid === undefined ? 0 : cpuTicks(pid);
  const script = join(dir, `wrk-${proxyPort}.lua`);
  const u = new URL(url);
  writeFileSync(script, `wrk.method = "GET"\nwrk.path = "${url}"\nwrk.headers["Host"] = "${u.host}"\n`);
  const out = execFileSync('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${SECONDS}s`, '-s', script, `http://127.0.0.1:${proxyPort}`],
    { encoding: 'utf8', timeout: (SECONDS + 30) * 1000 });
  const cpuUs = pid === undefined ? 0 : (cpuTicks(pid) - before) * TICK_US;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const errors = /Socket errors:[^\n]*/.exec(out)?.[0] ?? '';
  const total = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  return { rps, non2xx, total, errors, usPerRequest: total > 0 ? cpuUs / total : 0 };
}

/** Reads TUNNEL_MB through CONNECT (or directly when proxyPort is null); MB/s. */
function tunnel(proxyPort, targetPort, pid) {
  const before = pid === undefined ? 0 : cpuTicks(pid);
  return new Promise((resolve, reject) => {
    const want = TUNNEL_MB * 1024 * 1024;
    const s = proxyPort === null ? net.connect(targetPort, ORIGIN_HOST) : net.connect(proxyPort, '127.0.0.1');
    let got = 0, start = 0, open = proxyPort === null;
    let head = '';
    const begin = () => { start = performance.now(); s.write('go'); };
    s.on('connect', () => { if (open) begin(); else s.write(`CONNECT ${ALLOWED}:${targetPort} HTTP/1.1\r\nHost: ${ALLOWED}:${targetPort}\r\n\r\n`); });
    s.on('data', (c) => {
      if (!open) {
        head += c.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!/^HTTP\/1\.[01] 200/.test(head)) return reject(new Error(`CONNECT refused: ${head.split('\r\n')[0]}`));
        open = true;
        return begin();
      }
      got += c.length;
    });
    s.on('close', () => got >= want
      ? resolve({ mbps: got / 1048576 / ((performance.now() - start) / 1000), msPerMb: pid === undefined ? 0 : (cpuTicks(pid) - before) * TICK_US / 1000 / (got / 1048576) })
      : reject(new Error(`tunnel closed after ${got} bytes`)));
    s.on('error', reject);
  });
}

const [originPort, tunnelPort, dnsPort, upstreamPort, appfencePort, squidPort] =
  await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
startOrigin(originPort, tunnelPort, upstreamPort);

// appfence: every loopback client managed, the shipped TikTok list
const config = join(dir, 'appfence.yaml');
writeFileSync(config, `
dns: { listen: ["127.0.0.1:${dnsPort}"], upstreams: ["127.0.0.1:${upstreamPort}"] }
proxy: { listen: ["127.0.0.1:${appfencePort}"], connectPorts: [${tunnelPort}] }
access: { allow: ["127.0.0.0/8"] }
lists: { tiktok: { sources: ["${join(root, 'blocklists/tiktok.txt')}"] } }
groups: { managed: { subnets: ["127.0.0.0/8"], block: [tiktok] } }
log: { level: warn, blocks: ${join(dir, 'blocks.log')} }
`);
const appfence = spawn(process.execPath, [...NODE_ARGS, '--disable-warning=DEP0060', join(root, 'dist/cli.js'), 'serve', '--config', config], { stdio: ['ignore', 'ignore', 'inherit'] });
children.push(appfence);

// Squid: the same list as dstdomain (".name" = the name and everything below, as our plain-domain rules)
const domains = readFileSync(join(root, 'blocklists/tiktok.txt'), 'utf8').split('\n')
  .map((l) => l.replace(/#.*/, '').trim()).filter((l) => /^[a-z0-9.-]+$/i.test(l));
writeFileSync(join(dir, 'deny.txt'), domains.map((d) => `.${d}`).join('\n') + '\n');
writeFileSync(join(dir, 'hosts'), `${ORIGIN_HOST} ${ALLOWED}\n`);
writeFileSync(join(dir, 'squid.conf'), `
http_port 127.0.0.1:${squidPort}
pid_filename ${join(dir, 'squid.pid')}
cache_log ${join(dir, 'cache.log')}
access_log ${join(dir, 'access.log')}
coredump_dir ${dir}
hosts_file ${join(dir, 'hosts')}
dns_nameservers 127.0.0.1
cache deny all
acl tunnel_port port ${tunnelPort}
acl CONNECT method CONNECT
acl blocked dstdomain "${join(dir, 'deny.txt')}"
http_access deny blocked
http_access deny CONNECT !tunnel_port
http_access allow localhost
http_access deny all
shutdown_lifetime 1 seconds
`);
const squid = spawn('squid', ['-N', '-f', join(dir, 'squid.conf')], { stdio: ['ignore', 'ignore', 'inherit'] });
children.push(squid);

await Promise.all([waitForPort(appfencePort, '127.0.0.1', 'appfence'), waitForPort(squidPort, '127.0.0.1', 'squid'),
  waitForPort(originPort, ORIGIN_HOST, 'origin')]);

const allowedUrl = `http://${ALLOWED}:${originPort}/`;
const blockedUrl = `http://${BLOCKED}:${originPort}/`;
console.log(`wrk: ${CONNECTIONS} keep-alive connections, ${SECONDS} s per run; origin answers "ok" (2 bytes)`);
const rows = [];
for (const [label, url, expectBlocked] of [['allowed (200)', allowedUrl, false], ['blocked (403)', blockedUrl, true]]) {
  if (!PARTS.has(expectBlocked ? 'blocked' : 'allowed')) continue;
  wrk(appfencePort, url); // warm-up: DNS cache, origin connections
  const a = wrk(appfencePort, url, appfence.pid);
  const s = wrk(squidPort, url, squid.pid);
  for (const [who, r] of [['appfence', a], ['squid', s]]) {
    const wrong = expectBlocked ? r.total - r.non2xx : r.non2xx;
    if (wrong > 0) console.log(`  warning: ${who} answered ${wrong} of ${r.total} requests unexpectedly (${expectBlocked ? 'not blocked' : 'non-2xx'})`);
    if (r.errors) console.log(`  ${who}: ${r.errors}`);
  }
  rows.push({ label, a, s });
}
for (const { label, a, s } of rows) {
  console.log(`${label.padEnd(14)} appfence ${a.rps.toFixed(0).padStart(7)} req/s ${a.usPerRequest.toFixed(1).padStart(6)} µs CPU/req   ` +
    `squid ${s.rps.toFixed(0).padStart(7)} req/s ${s.usPerRequest.toFixed(1).padStart(6)} µs CPU/req   ` +
    `ratio ${(a.rps / s.rps).toFixed(2)}x req/s, ${(s.usPerRequest / a.usPerRequest).toFixed(2)}x CPU (squid µs ÷ appfence µs)`);
}

if (PARTS.has('connect')) {
const direct = (await tunnel(null, tunnelPort)).mbps;
const viaAppfence = await tunnel(appfencePort, tunnelPort, appfence.pid);
const viaSquid = await tunnel(squidPort, tunnelPort, squid.pid);
console.log(`CONNECT ${TUNNEL_MB} MB download: direct ${direct.toFixed(0)} MB/s, appfence ${viaAppfence.mbps.toFixed(0)} MB/s ` +
  `(${(viaAppfence.mbps / direct).toFixed(2)}x direct, ${viaAppfence.msPerMb.toFixed(2)} ms CPU/MB), squid ${viaSquid.mbps.toFixed(0)} MB/s ` +
  `(${(viaSquid.mbps / direct).toFixed(2)}x direct, ${viaSquid.msPerMb.toFixed(2)} ms CPU/MB)`);
}
console.log(`load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);

squid.kill('SIGTERM');
appfence.kill('SIGTERM');
// a profiler writes its file on exit
await (NODE_ARGS.length > 0 ? new Promise((res) => appfence.once('exit', res)) : sleep(300));
process.exit(0);
