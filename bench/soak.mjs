// Bounded soak over UDP on loopback (issue 14): appfence at half of its measured capacity for a few
// minutes, a mix of cache hits, blocked names and never-seen names with dns.cache.maxEntries far below
// the unique count (so the cache evicts all along), against the fake upstream. Reports per 30 s window:
// queries sent, lost (no answer within 2 s), p50/p99 latency; RSS of the server at start and end; the
// kernel drop counter and the rate-limit counters from /metrics.
//
// Run: npm run build && node bench/soak.mjs
// Environment (all optional):
//   SOAK_SECONDS=180   length of the soak (bounded; for a quick check 60–90)
//   SOAK_QPS=N         offered rate; default half of the capacity measured first with dnsperf (3 s)
//   SOAK_WINDOW=30     seconds per reported window
//   SOAK_CACHE=1000    dns.cache.maxEntries
// The client is this process: a fixed-rate sender (every 10 ms a slice of the rate) over 32 sockets in
// 32 different /24s (127.0.100.1 …), as a city's subnets would be; latency from send to reply by ID.
// dns.rateLimit is off: dnsperf's capacity run comes from one address (one /24), which the default
// 1000/s would hold to 1000/s; what the soak measures is loss in the socket and resolver path. The server is a separate process (dist/cli.js serve).
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, sleep, have, wireQuery } from './lib.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const SECONDS = Math.min(Number(process.env.SOAK_SECONDS ?? 180), 3600);
const WINDOW = Number(process.env.SOAK_WINDOW ?? 30);
const CACHE = Number(process.env.SOAK_CACHE ?? 1000);
const TIMEOUT_MS = 2000;
const dir = mkdtempSync(join(tmpdir(), 'appfence-soak-'));

// the fake upstream in its own process: sharing this one's event loop with the sender, it would be starved
const upstream = spawn(process.execPath, ['--input-type=module', '-e',
  `import('${join(root, 'bench/lib.mjs')}').then(async (m) => { const s = await m.startUpstream(); console.log(s.address().port); })`],
{ stdio: ['ignore', 'pipe', 'inherit'] });
const upPort = await new Promise((r) => upstream.stdout.once('data', (d) => r(Number(String(d).trim()))));
const port = await freePort();
const adminPort = await freePort();
writeFileSync(join(dir, 'list.txt'), 'tiktokv.com\n');
writeFileSync(join(dir, 'soak.yaml'), `dns:
  listen: ["127.0.0.1:${port}"]
  upstreams: ["127.0.0.1:${upPort}"]
  cache: { maxEntries: ${CACHE} }
  rateLimit: { responsesPerSecond: 0 }
access: { allow: ["127.0.0.0/8"] }
lists: { bench: { sources: ["${join(dir, 'list.txt')}"] } }
groups: { managed: { subnets: ["127.0.0.0/8"], block: [bench] } }
admin: { listen: "127.0.0.1:${adminPort}" }
log: { level: warn, blocks: "${join(dir, 'blocks.log')}" }
`);
const child = spawn(process.execPath, [join(root, 'dist/cli.js'), 'serve', '--config', join(dir, 'soak.yaml')], { stdio: ['ignore', 'ignore', 'inherit'] });
const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
const metric = async (name) => {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name)).map((l) => l.replace(/^\S+?(\{.*\})? /, '$1 ')).join(', ') || 'none';
};

try {
  for (let i = 0; ; i++) {
    try { await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => { if (r.status !== 200) throw new Error(); }); break; } catch { await sleep(100); }
    if (child.exitCode !== null || i > 300) throw new Error('appfence did not start');
  }
  // 200 hot names (cache hits after the first), blocked names below tiktokv.com, unique names (misses)
  const hot = Array.from({ length: 200 }, (_, i) => wireQuery(`hot${i}.soak.example A`));
  const blocked = Array.from({ length: 200 }, (_, i) => wireQuery(`v${i}-api.tiktokv.com A`));
  let qps = Number(process.env.SOAK_QPS ?? 0);
  if (!(qps > 0)) {
    if (!have('dnsperf')) throw new Error('set SOAK_QPS or apt-get install dnsperf');
    const mix = join(dir, 'mix.txt');
    // long enough that the unique quarter stays unique for the whole 3 s run (dnsperf loops over the file)
    writeFileSync(mix, Array.from({ length: 400_000 }, (_, i) => (i % 4 === 3 ? `v${i % 200}-api.tiktokv.com A` : i % 4 === 2 ? `m${i}.cap.example A` : `hot${i % 200}.soak.example A`)).join('\n') + '\n');
    const { stdout } = await promisify(execFile)('dnsperf', ['-s', '127.0.0.1', '-p', String(port), '-d', mix, '-l', '3', '-c', '2', '-q', '200', '-t', '2'], { encoding: 'utf8' });
    const capacity = Number(/Queries per second:\s+([\d.]+)/.exec(stdout)?.[1] ?? NaN);
    qps = Math.max(100, Math.round(capacity / 2));
    console.log(`capacity (dnsperf 3 s, same mix): ${capacity.toFixed(0)} q/s → soak at ${qps} q/s`);
  }
  await sleep(1000);
  const rssStart = rssMb();
  const drops0 = await metric('appfence_udp_receive_drops_total');
  console.log(`soak: ${SECONDS} s at ${qps} q/s, windows of ${WINDOW} s, cache.maxEntries ${CACHE}; mix 50 % hits, 25 % blocked, 25 % unique; RSS ${rssStart.toFixed(1)} MB; kernel drops before: ${drops0}`);

  const socks = await Promise.all(Array.from({ length: 32 }, (_, i) => new Promise((r) => {
    const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
    s.bind(0, `127.0.${100 + i}.1`, () => r(s));
  })));
  const sentAt = new Float64Array(65536).fill(-1);
  const windowOf = new Int32Array(65536);
  const windows = [];
  const win = (i) => (windows[i] ??= { sent: 0, answered: 0, latencies: [] });
  const onReply = (msg) => {
    const id = msg.readUInt16BE(0);
    const t0 = sentAt[id];
    if (t0 < 0) return;
    const ms = performance.now() - t0;
    sentAt[id] = -1;
    if (ms > TIMEOUT_MS) return; // late counts as lost
    const w = win(windowOf[id]);
    w.answered++;
    w.latencies.push(ms);
  };
  for (const s of socks) s.on('message', onReply);
  let seq = 0;
  let unique = 0;
  const started = performance.now();
  let due = 0;
  const TICK = 10;
  await new Promise((done) => {
    const timer = setInterval(() => {
      const elapsed = performance.now() - started;
      if (elapsed >= SECONDS * 1000) { clearInterval(timer); return done(); }
      const wi = Math.floor(elapsed / (WINDOW * 1000));
      due += (qps * TICK) / 1000;
      for (; due >= 1; due--) {
        const id = seq++ & 0xffff;
        const kind = seq % 4;
        const q = kind < 2 ? hot[seq % hot.length] : kind === 2 ? blocked[seq % blocked.length] : wireQuery(`u${unique++}.soak.example A`);
        q.writeUInt16BE(id, 0);
        sentAt[id] = performance.now();
        windowOf[id] = wi;
        win(wi).sent++;
        socks[seq % socks.length].send(q, port, '127.0.0.1');
      }
    }, TICK);
  });
  await sleep(TIMEOUT_MS + 200);
  for (const s of socks) s.close();
  const rssEnd = rssMb();
  const pct = (sorted, p) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]);
  let sent = 0, answered = 0;
  console.log('window      sent    lost %   p50 ms   p99 ms');
  windows.forEach((w, i) => {
    if (w === undefined) return;
    const sorted = w.latencies.sort((a, b) => a - b);
    sent += w.sent; answered += w.answered;
    console.log(`${String(i * WINDOW).padStart(4)}-${String(Math.min((i + 1) * WINDOW, SECONDS)).padEnd(4)} ${String(w.sent).padStart(9)} ${(100 * (1 - w.answered / w.sent)).toFixed(3).padStart(9)} ${pct(sorted, 50).toFixed(2).padStart(8)} ${pct(sorted, 99).toFixed(2).padStart(8)}`);
  });
  console.log(`total: ${sent} sent, ${sent - answered} lost (${(100 * (1 - answered / sent)).toFixed(3)} %), ${unique} unique names; RSS ${rssStart.toFixed(1)} → ${rssEnd.toFixed(1)} MB`);
  console.log(`kernel drops after: ${await metric('appfence_udp_receive_drops_total')}; rate limit: ${await metric('appfence_rate_limit_responses_total')}; cache entries: ${await metric('appfence_cache_entries')}`);
  console.log(`load average: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
  upstream.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
