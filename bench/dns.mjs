// DNS over UDP on loopback: appfence vs dnsmasq, same list (blocklists/tiktok.txt), same fake
// upstream, measured with dnsperf in the same run. Scenarios: blocked answers, cache-hit answers.
// Run: npm run build && node bench/dns.mjs   (needs: apt-get install dnsperf dnsmasq-base)
// Servers are pinned to core 1 and dnsperf to core 0 (taskset). Bounded: each dnsperf run is -l seconds.
import { spawn, execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { startUpstream, freePort, sleep, have } from './lib.mjs';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const dir = mkdtempSync(join(tmpdir(), 'appfence-bench-'));
for (const cmd of ['dnsperf', 'dnsmasq', 'taskset']) if (!have(cmd)) { console.error(`missing ${cmd}: apt-get install -y dnsperf dnsmasq-base`); process.exit(2); }



// async: the fake upstream lives in this process and must keep answering while dnsperf runs
async function dnsperf(port, file, seconds) {
  const { stdout: out } = await promisify(execFile)('taskset', ['-c', '0', 'dnsperf', '-s', '127.0.0.1', '-p', String(port), '-d', file, '-l', String(seconds), '-c', '1', '-q', '200', '-t', '2'], { encoding: 'utf8' });
  const qps = /Queries per second:\s+([\d.]+)/.exec(out);
  const lost = /Queries lost:\s+(\d+)/.exec(out);
  const codes = /Response codes:\s+(.*)/.exec(out)?.[1] ?? '?';
  return { qps: qps ? Number(qps[1]) : 0, lost: lost ? Number(lost[1]) : -1, codes };
}

const upstream = await startUpstream();
const upPort = upstream.address().port;
const tiktok = readFileSync(join(root, 'blocklists/tiktok.txt'), 'utf8').split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean);
const blockedNames = ['www.tiktok.com', 'api16-normal-c-useast1a.tiktokv.com', 'v16-webapp.tiktokcdn.com', 'p16-sign.tiktokcdn-us.com', 'mon.tiktokv.com'];
const cachedNames = ['example.org', 'www.example.com', 'en.wikipedia.org', 'www.city.example', 'mail.example.net'];
const blockedFile = join(dir, 'blocked.txt'); writeFileSync(blockedFile, blockedNames.map((n) => `${n} A`).join('\n') + '\n');
const cachedFile = join(dir, 'cached.txt'); writeFileSync(cachedFile, cachedNames.map((n) => `${n} A`).join('\n') + '\n');

async function runServer(name, argv, port) {
  const child = spawn('taskset', ['-c', '1', ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = ''; child.stderr.on('data', (d) => { err += d; });
  for (let i = 0; i < 100; i++) {       // wait until it answers (bounded: 10 s)
    try { execFileSync('dig', ['+short', '+tries=1', '+time=1', '-p', String(port), '@127.0.0.1', 'www.tiktok.com'], { stdio: 'ignore' }); break; } catch { await sleep(100); }
    if (child.exitCode !== null) throw new Error(`${name} exited: ${err}`);
  }
  await dnsperf(port, cachedFile, 1); // warm the cache
  const cached = await dnsperf(port, cachedFile, SECONDS);
  const blocked = await dnsperf(port, blockedFile, SECONDS);
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0);
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  return { blocked, cached, rssMb: rss / 1024 };
}

// appfence: block log to a file, as deployed (every blocked query writes one line)
const afPort = await freePort();
writeFileSync(join(dir, 'appfence.yaml'), `dns:
  listen: ["127.0.0.1:${afPort}"]
  upstreams: ["127.0.0.1:${upPort}"]
access: { allow: ["127.0.0.0/8"] }
lists: { tiktok: { sources: ["${join(root, 'blocklists/tiktok.txt')}"] } }
groups: { managed: { subnets: ["127.0.0.0/8"], block: [tiktok] } }
log: { level: warn, blocks: "${join(dir, 'blocks.log')}" }
`);
const af = await runServer('appfence', ['node', join(root, 'dist/cli.js'), 'serve', '--config', join(dir, 'appfence.yaml')], afPort);

// dnsmasq: address=/base/# answers 0.0.0.0 / :: for the base and every name below it (same as our subtree rules)
const dmPort = await freePort();
writeFileSync(join(dir, 'dnsmasq.conf'), [
  'no-resolv', 'no-hosts', `server=127.0.0.1#${upPort}`, `port=${dmPort}`, 'listen-address=127.0.0.1', 'bind-interfaces',
  'cache-size=10000', 'user=root', ...tiktok.map((d) => `address=/${d}/#`),
].join('\n') + '\n');
const dm = await runServer('dnsmasq', ['dnsmasq', '-k', '-C', join(dir, 'dnsmasq.conf'), '--log-facility=/dev/null'], dmPort);

// The floor of Node itself: node:dgram answering every query with a fixed 0.0.0.0 and doing nothing
// else (one recvmsg, one JS callback, one sendmsg per packet) — what no Node server can beat.
const floorPort = await freePort();
writeFileSync(join(dir, 'floor.cjs'), `const s = require('node:dgram').createSocket({ type: 'udp4', lookup: (a, f, cb) => cb(null, a, 4) });
const A = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 0, 0, 0, 0]);
s.on('message', (m, r) => { let o = 12; while (o < m.length && m[o] !== 0) o += m[o] + 1; o += 5;
  const out = Buffer.allocUnsafe(o + 16); m.copy(out, 0, 0, o); out[2] = 0x81; out[3] = 0x80; out.writeUInt16BE(1, 6); out.writeUInt32BE(0, 8); A.copy(out, o);
  s.send(out, r.port, r.address); });
s.bind(${floorPort}, '127.0.0.1');`);
const floor = await runServer('node:dgram floor', ['node', join(dir, 'floor.cjs')], floorPort);
upstream.close();

const row = (label, a, d) => `| ${label} | ${Math.round(a.qps)} | ${Math.round(d.qps)} | ${(a.qps / d.qps).toFixed(2)}× | ${Math.round(floor.cached.qps)} |`;
console.log(`\nDNS over UDP, dnsperf -c 1 -q 200, ${SECONDS} s per run, servers on core 1, dnsperf on core 0`);
console.log('| scenario | appfence q/s | dnsmasq q/s | appfence / dnsmasq | node:dgram floor q/s |\n|---|---|---|---|---|');
console.log(row('blocked (sinkhole, block log on)', af.blocked, dm.blocked));
console.log(row('cache hit', af.cached, dm.cached));
console.log(`response codes: appfence ${af.blocked.codes} / ${af.cached.codes}; dnsmasq ${dm.blocked.codes} / ${dm.cached.codes}`);
console.log(`lost: appfence ${af.blocked.lost}/${af.cached.lost}, dnsmasq ${dm.blocked.lost}/${dm.cached.lost}; RSS after run: appfence ${af.rssMb.toFixed(1)} MB, dnsmasq ${dm.rssMb.toFixed(1)} MB`);
