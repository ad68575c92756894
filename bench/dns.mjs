// DNS over UDP on loopback: appfence against dnsmasq, Unbound and PowerDNS Recursor (whichever are
// installed), same list, same fake upstream, measured with dnsperf in the same run, servers interleaved
// round by round. Workloads: blocked answers (block log on, to a file as deployed) and cache hits.
//
// Run: npm run build && node bench/dns.mjs
// Needs: apt-get install dnsperf dnsmasq-base (anchors, optional: unbound pdns-recursor)
// Environment (all optional):
//   BENCH_SECONDS=4          seconds per measured dnsperf run (each run is bounded by -l)
//   BENCH_ROUNDS=1           rounds; every server is measured once per round, in turn
//   BENCH_SERVERS=a,b        only these (appfence, dnsmasq, unbound, pdns, floor)
//   BENCH_LIST=FILE          block this list too (plain or hosts format), e.g. ../shared/data/blocklist-hagezi-light.hosts.txt
//   BENCH_BUILDS=label=DIR,… several appfence checkouts (built: DIR/dist/cli.js) side by side, e.g. before=/tmp/af-main,after=.
//                            a label ending in @N runs that build with dns.workers: N, e.g. after=.,after@2=.
//   BENCH_UDP=auto,off       each appfence build once per dns.udpBatch mode: auto = batched recvmmsg/sendmmsg
//                            (the native addon), off = node:dgram (default: auto only)
//   BENCH_QPS=30000          offer a fixed rate (dnsperf -Q) instead of saturating
//   BENCH_PIN=0              do not pin (default: servers on core 1, dnsperf on core 0)
//
// CPU µs per query = Δ(utime+stime) of the server's whole process tree (every thread, every worker)
// over the measured run ÷ queries completed. On a shared machine that is far steadier than QPS,
// which depends on what else runs on the client's core; both are printed, with each round.
import { spawn, execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { startUpstream, freePort, sleep, have, cpuTicks, rssMb } from './lib.mjs';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);
const PIN = process.env.BENCH_PIN !== '0';
const ONLY = process.env.BENCH_SERVERS?.split(',').filter(Boolean);
const BUILDS = (process.env.BENCH_BUILDS ?? `appfence=${root}`).split(',').map((b) => {
  const [label, dir] = b.includes('=') ? b.split('=') : ['appfence', b];
  return { label, dir: resolve(dir) };
});
const UDP_MODES = (process.env.BENCH_UDP ?? 'auto').split(',').filter(Boolean);
const FIXED_QPS = process.env.BENCH_QPS === undefined ? [] : ['-Q', String(Number(process.env.BENCH_QPS))];
const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
const dir = mkdtempSync(join(tmpdir(), 'appfence-bench-'));
for (const cmd of ['dnsperf', 'dnsmasq', 'taskset']) if (!have(cmd)) { console.error(`missing ${cmd}: apt-get install -y dnsperf dnsmasq-base`); process.exit(2); }
const wanted = (name) => ONLY === undefined || ONLY.includes(name);
const pin = (core, argv) => (PIN ? ['taskset', '-c', String(core), ...argv] : argv);

// ---- the list and the workloads -------------------------------------------------------------
const names = (text) => text.split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean)
  .map((l) => l.split(/\s+/).at(-1).toLowerCase()).filter((n) => /^[a-z0-9_.-]+$/.test(n) && n.includes('.'));
const blocked = new Set(names(readFileSync(join(root, 'blocklists/tiktok.txt'), 'utf8')));
if (process.env.BENCH_LIST) for (const n of names(readFileSync(process.env.BENCH_LIST, 'utf8'))) blocked.add(n);
const listFile = join(dir, 'list.txt');
writeFileSync(listFile, [...blocked].join('\n') + '\n');
// 1000 distinct names each: blocked ones below tiktokv.com (a subtree rule everywhere), cache hits
// in a zone no rule touches (the fake upstream answers every name).
const blockedFile = join(dir, 'blocked.txt');
writeFileSync(blockedFile, Array.from({ length: 1000 }, (_, i) => `v${i}-api.tiktokv.com A`).join('\n') + '\n');
const cachedFile = join(dir, 'cached.txt');
writeFileSync(cachedFile, Array.from({ length: 1000 }, (_, i) => `www${i}.bench.example A`).join('\n') + '\n');

// ---- measuring ------------------------------------------------------------------------------

// async: the fake upstream lives in this process and must keep answering while dnsperf runs
async function dnsperf(port, file, seconds, pid) {
  const before = pid === undefined ? 0 : cpuTicks(pid);
  const argv = pin(0, ['dnsperf', '-s', '127.0.0.1', '-p', String(port), '-d', file, '-l', String(seconds), '-c', '4', '-q', '256', '-T', '1', '-t', '2',
    ...(seconds > 1 ? FIXED_QPS : [])]);
  const { stdout: out } = await promisify(execFile)(argv[0], argv.slice(1), { encoding: 'utf8' });
  const ticks = pid === undefined ? 0 : cpuTicks(pid) - before;
  const num = (re) => Number(re.exec(out)?.[1] ?? NaN);
  const completed = num(/Queries completed:\s+(\d+)/);
  return { qps: num(/Queries per second:\s+([\d.]+)/), completed, lost: num(/Queries lost:\s+(\d+)/),
    codes: /Response codes:\s+(.*)/.exec(out)?.[1] ?? '?', cpuUs: (ticks * TICK_US) / completed };
}

const stop = (child) => new Promise((r) => { if (child.exitCode !== null || child.signalCode !== null) r(); else { child.once('exit', r); child.kill('SIGTERM'); } });
function logged(file) {
  let lines = 0, suppressed = 0;
  let text = ''; try { text = readFileSync(file, 'utf8'); } catch { /* not yet created */ }
  for (const l of text.split('\n')) {
    if (l.includes('"event":"block"')) lines++;
    else if (l.includes('"event":"suppressed"')) suppressed += JSON.parse(l).count;
  }
  return { lines, suppressed };
}

async function measure(server) {
  const child = spawn(server.argv[0], server.argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...server.env } });
  let err = ''; child.stderr.on('data', (d) => { err += d; });
  try {
    for (let i = 0; ; i++) { // until it answers a blocked name (bounded: 20 s)
      try { execFileSync('dig', ['+short', '+tries=1', '+time=1', '-p', String(server.port), '@127.0.0.1', 'v1-api.tiktokv.com'], { stdio: 'ignore' }); break; } catch { await sleep(100); }
      if (child.exitCode !== null || i > 200) throw new Error(`${server.name} did not start: ${err.slice(-2000)}`);
    }
    await dnsperf(server.port, cachedFile, 1); // warm the cache (and the JIT)
    await dnsperf(server.port, blockedFile, 1);
    const cached = await dnsperf(server.port, cachedFile, SECONDS, child.pid);
    const before = server.blockLog ? logged(server.blockLog) : null;
    const blockedRun = await dnsperf(server.port, blockedFile, SECONDS, child.pid);
    const rss = rssMb(child.pid);
    await stop(child);
    if (before !== null) { // every blocked answer must have its line (or be counted as suppressed)
      const after = logged(server.blockLog);
      blockedRun.log = { lines: after.lines - before.lines, suppressed: after.suppressed - before.suppressed };
    }
    return { blocked: blockedRun, cached, rssMb: rss };
  } finally {
    await stop(child);
  }
}

// ---- the servers ----------------------------------------------------------------------------
const upstream = await startUpstream();
const upPort = upstream.address().port;
const servers = [];

for (const build of BUILDS) {
  for (const udpBatch of UDP_MODES) {
    if (!wanted('appfence')) break;
    const port = await freePort();
    const workers = /@(\d+|auto)$/.exec(build.label)?.[1];
    const base = workers === undefined ? build.label : `${build.label.replace(/@.*/, '')}, ${workers} worker${workers === '1' ? '' : 's'}`;
    const name = UDP_MODES.length === 1 && udpBatch === 'auto' ? base : `${base} (udp ${udpBatch === 'auto' ? 'batch' : 'dgram'})`;
    const file = join(dir, `appfence-${servers.length}.yaml`);
    writeFileSync(file, `dns:
  listen: ["127.0.0.1:${port}"]
  upstreams: ["127.0.0.1:${upPort}"]
  udpBatch: ${udpBatch}
  # one client (dnsperf on 127.0.0.1) is the whole load here: the per-/24 default of 1000 answers/s would
  # drop nearly all of it. A limit no run reaches keeps the limiter's accounting on the measured path.
  rateLimit: { responsesPerSecond: 1000000000 }
${workers === undefined ? '' : `  workers: ${workers}\n`}access: { allow: ["127.0.0.0/8"] }
lists: { bench: { sources: ["${listFile}"], match: subtree } }
groups: { managed: { subnets: ["127.0.0.0/8"], block: [bench] } }
log: { level: warn, blocks: "${join(dir, `blocks-${servers.length}.log`)}" }
`);
    servers.push({ name, port, blockLog: join(dir, `blocks-${servers.length}.log`), argv: pin(1, [process.execPath, join(build.dir, 'dist/cli.js'), 'serve', '--config', file]) });
  }
}

if (wanted('dnsmasq')) {
  // address=/base/# answers 0.0.0.0 / :: for the base and every name below it (same as subtree rules)
  const port = await freePort();
  writeFileSync(join(dir, 'dnsmasq.conf'), ['no-resolv', 'no-hosts', `server=127.0.0.1#${upPort}`, `port=${port}`,
    'listen-address=127.0.0.1', 'bind-interfaces', 'cache-size=10000', 'user=root', ...[...blocked].map((d) => `address=/${d}/#`)].join('\n') + '\n');
  servers.push({ name: `dnsmasq ${/version (\S+)/.exec(execFileSync('dnsmasq', ['--version'], { encoding: 'utf8' }))?.[1]}`, port,
    argv: pin(1, ['dnsmasq', '-k', '-C', join(dir, 'dnsmasq.conf'), '--log-facility=/dev/null']) });
}

if (wanted('unbound') && have('unbound')) {
  const port = await freePort();
  writeFileSync(join(dir, 'unbound.conf'), `server:
  interface: 127.0.0.1
  port: ${port}
  num-threads: 1
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "${dir}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  module-config: "iterator"
  do-not-query-localhost: no
  access-control: 127.0.0.0/8 allow
${[...blocked].map((d) => `  local-zone: "${d}." always_null`).join('\n')}
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@${upPort}
`);
  const version = /Version (\S+)/.exec(execFileSync('unbound', ['-V'], { encoding: 'utf8' }))?.[1];
  servers.push({ name: `Unbound ${version}`, port, argv: pin(1, ['unbound', '-d', '-c', join(dir, 'unbound.conf')]) });
}

if (wanted('pdns') && have('pdns_recursor')) {
  // RPZ: NAME and *.NAME answer 0.0.0.0, the same subtree rule as the others
  const port = await freePort();
  writeFileSync(join(dir, 'rpz.zone'), ['$TTL 60', '@ SOA localhost. root.localhost. 1 3600 600 86400 60', '@ NS localhost.',
    ...[...blocked].flatMap((d) => [`${d} A 0.0.0.0`, `*.${d} A 0.0.0.0`])].join('\n') + '\n');
  writeFileSync(join(dir, 'recursor.lua'), `rpzFile("${join(dir, 'rpz.zone')}", { policyName = "bench" })\n`);
  writeFileSync(join(dir, 'recursor.conf'), [`local-address=127.0.0.1`, `local-port=${port}`, `forward-zones-recurse=.=127.0.0.1:${upPort}`,
    'threads=1', 'daemon=no', 'allow-from=127.0.0.0/8', 'dnssec=off', 'quiet=yes', 'disable-syslog=yes', 'loglevel=0',
    `socket-dir=${dir}`, `lua-config-file=${join(dir, 'recursor.lua')}`, 'max-cache-entries=100000'].join('\n') + '\n');
  const version = /(\d+\.\d+\.\d+)/.exec(execFileSync('sh', ['-c', 'pdns_recursor --version 2>&1 || true'], { encoding: 'utf8' }))?.[1];
  servers.push({ name: `PowerDNS Recursor ${version}`, port, argv: pin(1, ['pdns_recursor', `--config-dir=${dir}`]) });
}

if (wanted('floor')) {
  // The floor of Node itself: node:dgram answering every query with a fixed 0.0.0.0 and doing nothing
  // else (one recvmsg, one JS callback, one sendmsg per packet) — what no node:dgram server can beat.
  const port = await freePort();
  writeFileSync(join(dir, 'floor.cjs'), `const s = require('node:dgram').createSocket({ type: 'udp4', lookup: (a, f, cb) => cb(null, a, 4) });
const A = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 0, 0, 0, 0]);
s.on('message', (m, r) => { let o = 12; while (o < m.length && m[o] !== 0) o += m[o] + 1; o += 5;
  const out = Buffer.allocUnsafe(o + 16); m.copy(out, 0, 0, o); out[2] = 0x81; out[3] = 0x80; out.writeUInt16BE(1, 6); out.writeUInt32BE(0, 8); A.copy(out, o);
  s.send(out, r.port, r.address); });
s.bind(${port}, '127.0.0.1');`);
  servers.push({ name: 'node:dgram floor (fixed reply)', port, argv: pin(1, [process.execPath, join(dir, 'floor.cjs')]) });
}

// ---- run and report -------------------------------------------------------------------------
const results = new Map(servers.map((s) => [s.name, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const server of servers) {
    const r = await measure(server);
    results.get(server.name).push(r);
    process.stderr.write(`round ${round + 1} ${server.name}: blocked ${Math.round(r.blocked.qps)} q/s ${r.blocked.cpuUs.toFixed(1)} µs, cached ${Math.round(r.cached.qps)} q/s ${r.cached.cpuUs.toFixed(1)} µs\n`);
  }
}
upstream.close();
rmSync(dir, { recursive: true, force: true });

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const anchors = servers.filter((s) => /^(dnsmasq|Unbound)/.test(s.name)).map((s) => s.name);
const fmtK = (q) => `${(q / 1000).toFixed(1)}k`;
console.log(`\nDNS over UDP on loopback, ${blocked.size} names blocked (subtree), dnsperf -c 4 -q 256 -T 1, ${SECONDS} s per run, ${ROUNDS} round(s)` +
  (FIXED_QPS.length > 0 ? `, ${process.env.BENCH_QPS} QPS offered (dnsperf -Q)` : ', saturating') +
  (PIN ? ', servers on core 1, dnsperf on core 0' : ', unpinned'));
for (const workload of ['blocked', 'cached']) {
  console.log(`\n${workload === 'blocked' ? 'Blocked (sinkhole answer, one block-log line each)' : 'Cache hits'}`);
  // ratios are taken within each round (same minute), then the median of them
  const ratio = (name, anchor, key) => median(results.get(name).map((r, i) => r[workload][key] / results.get(anchor)[i][workload][key]));
  console.log(`| server | QPS (each round) | CPU µs/query (each round) | ${anchors.map((a) => `÷ ${a.split(' ')[0]}: QPS, CPU`).join(' | ')} | lost | codes |`);
  console.log(`|---|---|---|${anchors.map(() => '---|').join('')}---|---|`);
  for (const s of servers) {
    const rs = results.get(s.name).map((r) => r[workload]);
    const each = (key, f) => `${f(median(rs.map((r) => r[key])))}${rs.length > 1 ? ` (${rs.map((r) => f(r[key])).join(' / ')})` : ''}`;
    console.log(`| ${s.name} | ${each('qps', fmtK)} | ${each('cpuUs', (v) => v.toFixed(1))} | ${anchors.map((a) => `${ratio(s.name, a, 'qps').toFixed(2)}, ${ratio(s.name, a, 'cpuUs').toFixed(2)}`).join(' | ')} | ${rs.map((r) => r.lost).join('/')} | ${rs[0].codes} |`);
  }
}
for (const s of servers.filter((x) => x.blockLog)) {
  const rs = results.get(s.name).map((r) => r.blocked);
  console.log(`${s.name}: block-log lines written ÷ blocked answers ${rs.map((r) => `${r.log.lines} ÷ ${r.completed}`).join(', ')}` +
    `; suppressed ${rs.map((r) => r.log.suppressed).join(', ')} (lines may exceed answers by the queries in flight when dnsperf stopped)`);
}
console.log(`\nRSS after the runs (whole process tree): ${servers.map((s) => `${s.name} ${median(results.get(s.name).map((r) => r.rssMb)).toFixed(0)} MB`).join(', ')}`);
