// dns.workers: 2 on real sockets. Queries from many source ports reach both workers (each counts its
// own and keeps its own cache: the upstream sees a name once per worker); a killed worker is
// replaced; the primary's counters are the sum over workers; SIGHUP reloads every worker; SIGTERM
// drains every worker and exits 0 with the block log whole.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import dgram from 'node:dgram';
import net from 'node:net';
import { loadUdpBatch } from '../../src/dns/transports/udp-batch.js';
import { scrape, hasPromtool, promtoolCheckMetrics } from '../helpers/metrics.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { buildQuery, query } from '../helpers/dns-client.js';
import { WorkerPool, WORKER_PORTS_ENV, fixPorts } from '../../src/runtime/workers.js';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import { createAppLogger } from '../../src/log/logger.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(root, 'dist/cli.js');
const dir = mkdtempSync(join(tmpdir(), 'appfence-workers-'));
/** appfence_dns_queries_total{proto="udp",result="blocked"} in one worker's registry (prom-client JSON). */
const udpBlocked = (metrics: MetricObjectWithValues<MetricValue<string>>[] | undefined): number =>
  metrics?.find((m) => m.name === 'appfence_dns_queries_total')?.values
    .find((v) => v.labels.proto === 'udp' && v.labels.result === 'blocked')?.value ?? 0;

let up: FakeUpstream;
t.before(async () => {
  up = await startFakeUpstream({ zone: {
    'www.tiktok.com A': { answers: [{ type: 'A', ttl: 300, data: '198.51.100.7' }] },
  } });
});
t.teardown(() => up?.close());

const yaml = (port: number, cityBlocks: string, blocks: string): string => `dns:
  listen: ["127.0.0.1:${port}"]
  upstreams: ["127.0.0.1:${up.port}"]
  workers: 2
access: { allow: ["127.0.0.0/8"] }
lists: { tiktok: { sources: ["${join(root, 'blocklists/tiktok.txt')}"] } }
groups: { city: { subnets: ["127.0.10.0/24"], block: [${cityBlocks}] } }
log: { level: info, blocks: "${blocks}" }
`;

/** One query from each of `n` fresh source ports (the kernel picks the worker by address and port); the answers' first A. */
async function fromManyPorts(port: number, name: string, n: number, from = '127.0.10.5'): Promise<string[]> {
  const one = (i: number): Promise<string> => new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const timer = setTimeout(() => { s.close(); resolve('timeout'); }, 3000);
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m.readUInt16BE(6) > 0 ? Array.from(m.subarray(m.length - 4)).join('.') : `rcode ${m[3]! & 15}`);
    });
    s.bind(0, from, () => s.send(buildQuery({ id: i, name, type: 'A' }), port, '127.0.0.1'));
  });
  const out: string[] = [];
  for (let i = 0; i < n; i += 20) out.push(...await Promise.all(Array.from({ length: Math.min(20, n - i) }, (_, k) => one(i + k))));
  return out;
}

const until = async (cond: () => boolean, ms = 20_000): Promise<void> => {
  for (const end = Date.now() + ms; !cond() && Date.now() < end;) await new Promise((r) => setTimeout(r, 50));
};

t.test('pool of 2: both answer, own caches, counters summed, a killed worker is replaced', async (t) => {
  const config = join(dir, 'pool.yaml');
  writeFileSync(config, yaml(0, 'tiktok', join(dir, 'pool-blocks.log')).replace('level: info', 'level: warn'));
  const [port] = await fixPorts([{ host: '127.0.0.1', port: 0 }]);
  const pool = await WorkerPool.start(2, { [WORKER_PORTS_ENV]: String(port) }, createAppLogger('silent'), { exec: cli, args: ['serve', '--config', config] });
  t.teardown(() => pool.stop());
  t.equal(pool.readyCount, 2);

  const answers = await fromManyPorts(port!, 'v1.tiktokv.com', 60);
  t.same(new Set(answers), new Set(['0.0.0.0']), 'every worker sinkholes');
  const per = (await pool.ask<MetricObjectWithValues<MetricValue<string>>[]>('metrics', undefined, 5000)).map((a) => udpBlocked(a.value));
  t.equal(per.length, 2, 'both workers report');
  t.ok(per.every((n) => n > 0), `queries from 60 source ports reached both (${per.join(' + ')})`);
  t.equal(per.reduce((a, b) => a + b, 0), 60, 'the sum over workers is every query');

  const before = up.log.filter((q) => q.name === 'www.example.org').length;
  t.same(new Set(await fromManyPorts(port!, 'www.example.org', 40, '127.0.20.5')), new Set(['rcode 3']), 'guests resolve (the fake upstream says NXDOMAIN)');
  t.equal(up.log.filter((q) => q.name === 'www.example.org').length - before, 2, 'one upstream query per worker: each keeps its own cache');

  const victim = pool.workers[0]!;
  victim.process.kill('SIGKILL');
  await until(() => pool.restarts === 1 && pool.readyCount === 2);
  t.equal(pool.restarts, 1, 'the dead worker was replaced');
  t.equal(pool.readyCount, 2);
  t.notOk(pool.workers.includes(victim));
  t.same(new Set(await fromManyPorts(port!, 'v2.tiktokv.com', 40)), new Set(['0.0.0.0']), 'still answered from every port');
  t.equal(await pool.stop(), 0, 'stop: every worker exits 0');
});

function startedServe(child: ChildProcess, stderr: { text: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      stderr.text += d.toString();
      if (/"msg":"appfence started"/.test(stderr.text)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr.text}`)));
  });
}

t.test('appfence serve with dns.workers: 2 — SIGHUP reloads both, SIGTERM drains both and exits 0', async (t) => {
  const [port] = await fixPorts([{ host: '127.0.0.1', port: 0 }]);
  const blocks = join(dir, 'serve-blocks.log');
  const config = join(dir, 'serve.yaml');
  writeFileSync(config, yaml(port!, 'tiktok', blocks));
  const child = spawn(process.execPath, [cli, 'serve', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const stderr = { text: '' };
  await startedServe(child, stderr);
  t.equal((stderr.text.match(/"msg":"worker started"/g) ?? []).length, 2, 'two workers');

  t.same(new Set(await fromManyPorts(port!, 'www.tiktok.com', 40)), new Set(['0.0.0.0']), 'sinkholed by both');
  const overTcp = await query({ server: { host: '127.0.0.1', port: port! }, proto: 'tcp', name: 'www.tiktok.com', type: 'A', localAddress: '127.0.10.5' });
  t.same(overTcp.answers.map((a) => a.data), ['0.0.0.0'], 'TCP on the workers\' SO_REUSEPORT listeners too');
  writeFileSync(config, yaml(port!, '', blocks));
  child.kill('SIGHUP');
  await until(() => (stderr.text.match(/"msg":"reloaded"/g) ?? []).length >= 2);
  t.equal((stderr.text.match(/"msg":"reloaded"/g) ?? []).length, 2, 'each worker reloaded');
  t.same(new Set(await fromManyPorts(port!, 'www.tiktok.com', 40)), new Set(['198.51.100.7']), 'the new policy, whichever worker answers');

  // a query in flight at SIGTERM is answered before the workers exit
  up.opts.delayMs = 800;
  t.teardown(() => { up.opts.delayMs = 0; });
  const inFlight = fromManyPorts(port!, 'slow.example.org', 1, '127.0.20.5');
  await new Promise((r) => setTimeout(r, 300));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.same(await inFlight, ['rcode 3'], 'answered during the drain');
  t.equal(await exited, 0, 'SIGTERM: exit 0 once every worker drained');
  const lines = readFileSync(blocks, 'utf8').split('\n').filter(Boolean);
  t.equal(lines.length, 41, 'one line per blocked answer (40 UDP, 1 TCP) from both workers, none torn');
  t.ok(lines.every((l) => (JSON.parse(l) as { event: string }).event === 'block'));
});

t.test('dns.workers: 2 on a port in use: exit 2 naming the key, no worker left behind', async (t) => {
  const busy = dgram.createSocket('udp4'); // a plain socket, no SO_REUSEPORT: the workers cannot join it
  await new Promise<void>((r) => busy.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => busy.close());
  const config = join(dir, 'busy.yaml');
  writeFileSync(config, yaml(busy.address().port, 'tiktok', join(dir, 'busy-blocks.log')));
  const child = spawn(process.execPath, [cli, 'serve', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  t.equal(code, 2, 'the worker\'s config-error exit code');
  t.match(stderr, /dns\.listen\[0\]: cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
  await new Promise((r) => setTimeout(r, 500));
  const left = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(config); } catch { return false; }
  });
  t.same(left, [], 'no worker process left running');
});

t.test('dns.workers: 2 with admin.listen — the primary serves /metrics summed over workers, /readyz, /check, POST /reload', async (t) => {
  const [port, adminPort] = await fixPorts([{ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port: 0 }]);
  const config = join(dir, 'admin.yaml');
  const withAdmin = (cityBlocks: string): string => yaml(port!, cityBlocks, join(dir, 'admin-blocks.log')) + `admin: { listen: "127.0.0.1:${adminPort}" }\n`;
  writeFileSync(config, withAdmin('tiktok'));
  const child = spawn(process.execPath, [cli, 'serve', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const stderr = { text: '' };
  await startedServe(child, stderr);
  const admin = `http://127.0.0.1:${adminPort}`;

  const ready = await fetch(`${admin}/readyz`);
  t.equal(ready.status, 200, '/readyz: both workers ready');
  t.same(await ready.json(), { ready: true });

  t.same(new Set(await fromManyPorts(port!, 'v3.tiktokv.com', 50)), new Set(['0.0.0.0']));
  t.same(new Set(await fromManyPorts(port!, 'www.example.org', 30, '127.0.20.5')), new Set(['rcode 3']));
  const m = await scrape(adminPort!);
  t.equal(m.value('appfence_dns_queries_total', { proto: 'udp', result: 'blocked' }), 50, 'blocked: the sum over both workers');
  t.equal((m.value('appfence_dns_queries_total', { proto: 'udp', result: 'forwarded' }) ?? 0)
    + (m.value('appfence_dns_queries_total', { proto: 'udp', result: 'cached' }) ?? 0), 30, 'forwarded + cached: the guests\' 30');
  t.equal(m.value('appfence_blocks_total', { group: 'city', list: 'tiktok', proto: 'udp' }), 50);
  t.equal(m.value('appfence_block_log_lines_total'), 50);
  t.equal((m.value('appfence_cache_misses_total') ?? 0) + (m.value('appfence_cache_hits_total') ?? 0), 30, 'cache lookups: the guests\' 30, summed');
  t.equal(m.value('appfence_ready'), 1, 'ready: the worst worker (min), not a sum');
  t.equal(m.value('appfence_list_rules', { list: 'tiktok' }), (m.series('appfence_list_rules')[0]?.[1] ?? -1), 'one series per list');
  t.ok((m.value('appfence_list_rules', { list: 'tiktok' }) ?? 0) > 50 && (m.value('appfence_list_rules', { list: 'tiktok' }) ?? 0) < 1000,
    'rules per list: a worker\'s count, not the sum of two');
  t.equal(m.value('appfence_workers', { state: 'configured' }), 2);
  t.equal(m.value('appfence_workers', { state: 'listening' }), 2);
  t.equal(m.value('appfence_worker_restarts_total'), 0);
  t.equal(m.series('appfence_build_info').length, 1, 'build info once');
  if (typeof loadUdpBatch() === 'string') t.equal(m.value('appfence_udp_batch_datagrams_total'), undefined, 'node:dgram: no batch series');
  else {
    t.equal(m.value('appfence_udp_batch_datagrams_total'), 80, 'batched path: every datagram of both workers (50 + 30)');
    const batches = m.value('appfence_udp_batches_total') ?? 0;
    t.ok(batches >= 1 && batches <= 80, `recvmmsg batches: ${batches}`);
    t.equal(m.value('appfence_udp_batch_errors_total', { direction: 'send' }), 0);
  }
  if (hasPromtool) {
    const check = promtoolCheckMetrics(m.text);
    t.equal(check.status, 0, `promtool check metrics on the aggregated text: ${check.output}`);
  }

  const check = await fetch(`${admin}/check?client=127.0.10.5&name=www.tiktok.com`);
  t.equal(check.status, 200);
  const report = await check.json() as { group: string; blocked: boolean };
  t.equal(report.group, 'city');
  t.equal(report.blocked, true, '/check answered by a worker');
  t.equal((await fetch(`${admin}/check?client=not-an-ip&name=x.org`)).status, 400, 'a worker\'s usage error is a 400');

  writeFileSync(config, withAdmin(''));
  const reload = await fetch(`${admin}/reload`, { method: 'POST' });
  t.equal(reload.status, 200, 'POST /reload: every worker reloaded');
  t.same(await reload.json(), { ok: true, ready: true });
  t.same(new Set(await fromManyPorts(port!, 'www.tiktok.com', 30)), new Set(['198.51.100.7']), 'the new policy on both workers');
  t.equal((await scrape(adminPort!)).value('appfence_reloads_total', { result: 'ok' }), 1, 'one reload, not one per worker');

  writeFileSync(config, withAdmin('tiktok').replace('workers: 2', 'workers: 2\n  timeoutMs: -5'));
  const bad = await fetch(`${admin}/reload`, { method: 'POST' });
  t.equal(bad.status, 422, 'a bad config: 422 and the running one stays');
  t.match(await bad.json(), { ok: false, error: /timeoutMs/ });
  t.same(new Set(await fromManyPorts(port!, 'www.tiktok.com', 10)), new Set(['198.51.100.7']));

  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM: workers drained, admin closed, exit 0');
});

t.test('dns.workers: 2 with admin.listen on a port in use: exit 2 naming admin.listen, no worker left', async (t) => {
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => busy.close());
  const [port] = await fixPorts([{ host: '127.0.0.1', port: 0 }]);
  const config = join(dir, 'admin-busy.yaml');
  writeFileSync(config, yaml(port!, 'tiktok', join(dir, 'admin-busy.log')) + `admin: { listen: "127.0.0.1:${(busy.address() as net.AddressInfo).port}" }\n`);
  const child = spawn(process.execPath, [cli, 'serve', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  t.equal(await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c))), 2);
  t.match(stderr, /admin\.listen: cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
});
