/**
 * Upstream health on loopback (issue 14, finding 4): a blackholed first upstream is backed off and
 * stops costing every cache miss its timeout, probes bring it back, the fastest healthy upstream is
 * preferred, and the caps on outstanding queries answer SERVFAIL at once instead of opening sockets.
 */
import t from 'tap';
import { scrape } from '../helpers/metrics.js';
import { UpstreamError } from '../../src/errors.js';
import { UpstreamClient, type UpstreamOptions } from '../../src/resolver/upstream.js';
import { BACKOFF_BASE_MS, FAILURES_TO_BACK_OFF } from '../../src/resolver/upstream-health.js';
import { readQuery, type Query } from '../../src/wire/read.js';
import { buildQuery, query } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream, type FakeUpstreamOptions } from '../helpers/fake-upstream.js';
import { startServer } from '../helpers/start-server.js';

const A = (ip: string) => ({ answers: [{ type: 'A', data: ip, ttl: 300 }] });

async function fake(t: { teardown(fn: () => unknown): void }, opts: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  // every name answers: unique names are cache misses that still get an answer
  const f = await startFakeUpstream({ respond: () => A('192.0.2.1'), ...opts });
  t.teardown(() => f.close());
  return f;
}

function client(t: { teardown(fn: () => unknown): void }, ups: FakeUpstream[], opts: Partial<UpstreamOptions> = {}): UpstreamClient {
  const c = new UpstreamClient(ups.map((u) => u.config), { timeoutMs: 400, ...opts });
  t.teardown(() => c.close());
  return c;
}

let serial = 0;
/** One exchange of a never-seen name; resolves to [ms taken, answer or error]. */
async function ask(c: UpstreamClient): Promise<[number, Buffer | Error]> {
  const raw = buildQuery({ name: `n${serial++}.example.org`, type: 'A' });
  const q = readQuery(raw) as Query;
  const started = performance.now();
  const out = await c.exchange(raw, q).catch((err: Error) => err);
  return [performance.now() - started, out];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('a blackholed first upstream is backed off, then probed back once it answers', async (t) => {
  const dead = await fake(t, { silent: true });
  const good = await fake(t);
  const c = client(t, [dead, good]);
  for (let i = 0; i < FAILURES_TO_BACK_OFF; i++) {
    const [ms, out] = await ask(c);
    t.ok(Buffer.isBuffer(out), 'answered by the second upstream');
    t.ok(ms >= 390, `try ${i + 1} waited for the first upstream's timeout (${ms.toFixed(0)} ms)`);
  }
  t.match(c.stats().upstreams[0], { state: 'backoff', consecutiveFailures: FAILURES_TO_BACK_OFF });
  const sentToDead = dead.udpQueries;
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    const [ms, out] = await ask(c);
    t.ok(Buffer.isBuffer(out));
    times.push(ms);
  }
  t.ok(Math.max(...times) < 300, `in backoff, misses no longer wait for it (slowest ${Math.max(...times).toFixed(0)} ms)`);
  t.equal(dead.udpQueries, sentToDead, 'no client query went to the backed-off upstream');

  // the backoff runs out while it is still dead: one probe, which fails, doubles the backoff
  await sleep(BACKOFF_BASE_MS + 50);
  const [ms] = await ask(c);
  t.ok(ms < 300, 'the probe is sent beside the exchange; the client does not wait on it');
  t.equal(dead.udpQueries, sentToDead + 1, 'exactly one probe');
  t.match(c.stats().upstreams[0], { state: 'probing', probes: 1 });
  await sleep(450); // the probe's timeout
  t.match(c.stats().upstreams[0], { state: 'backoff' });
  t.ok(c.stats().upstreams[0]!.backoffMs > BACKOFF_BASE_MS, `backoff doubled (${c.stats().upstreams[0]!.backoffMs} ms left)`);

  // it recovers; the next probe after the (doubled) backoff brings it back, and it is first again
  dead.opts.silent = false;
  await sleep(2 * BACKOFF_BASE_MS + 50);
  const goodBefore = good.udpQueries;
  await ask(c);
  await sleep(50);
  t.match(c.stats().upstreams[0], { state: 'healthy', consecutiveFailures: 0, probes: 2 });
  const deadBefore = dead.udpQueries;
  for (let i = 0; i < 5; i++) await ask(c);
  t.equal(dead.udpQueries - deadBefore, 5, 'back to first choice');
  t.equal(good.udpQueries - goodBefore, 1, 'the second upstream only answered the query that carried the probe');
});

t.test('the fastest healthy upstream is preferred; equal ones keep the configured order', async (t) => {
  const slow = await fake(t, { delayMs: 300 });
  const fast = await fake(t);
  const c = client(t, [slow, fast], { timeoutMs: 1000 });
  await ask(c); // slow answers first (configured order), now measured at ~300 ms; fast is unmeasured
  await ask(c); // an unmeasured upstream counts as fastest: fast gets its try
  const slowBefore = slow.udpQueries;
  const times: number[] = [];
  for (let i = 0; i < 10; i++) times.push((await ask(c))[0]);
  t.equal(slow.udpQueries, slowBefore, 'the slow upstream got none of the next 10');
  t.ok(Math.max(...times) < 250, `answers at the fast upstream's speed (slowest ${Math.max(...times).toFixed(0)} ms)`);
  const [slowView, fastView] = c.stats().upstreams;
  t.ok(slowView!.srttMs >= 290 && fastView!.srttMs >= 0 && fastView!.srttMs < 50, `srtt ${slowView!.srttMs} vs ${fastView!.srttMs}`);

  const a = await fake(t);
  const b = await fake(t);
  const equal = client(t, [a, b]);
  for (let i = 0; i < 10; i++) await ask(equal);
  t.equal(a.udpQueries, 10, 'equally fast upstreams: the first configured gets them all');
  t.equal(b.udpQueries, 0);
});

t.test('caps on outstanding queries: SERVFAIL at once past the total, the next upstream past one upstream\'s', async (t) => {
  const dead = await fake(t, { silent: true });
  const total = client(t, [dead], { timeoutMs: 1000, maxOutstanding: 5 });
  const results = await Promise.all(Array.from({ length: 12 }, () => ask(total)));
  const overload = results.filter(([, out]) => out instanceof UpstreamError && out.reason === 'overload');
  t.equal(overload.length, 7, 'the 7 past the cap of 5');
  t.ok(overload.every(([ms]) => ms < 300), 'and at once, not after the 1000 ms timeout');
  t.equal(dead.udpQueries, 5, 'only 5 sockets worth of queries were sent');
  t.equal(total.stats().overCapServfails, 7, 'counted');
  t.equal(total.stats().outstanding, 0, 'nothing left waiting');

  const slow = await fake(t, { delayMs: 300 });
  const spare = await fake(t);
  const per = client(t, [slow, spare], { timeoutMs: 1000, maxOutstandingPerUpstream: 3 });
  const both = await Promise.all(Array.from({ length: 8 }, () => ask(per)));
  t.equal(slow.udpQueries, 3, 'the first upstream got only its cap');
  t.equal(spare.udpQueries, 3, 'the next ones went straight to the second, up to its cap');
  t.equal(both.filter(([, out]) => Buffer.isBuffer(out)).length, 6, '6 answered');
  t.equal(both.filter(([ms, out]) => out instanceof UpstreamError && out.reason === 'overload' && ms < 300).length, 2,
    'the 2 past both caps: SERVFAIL at once');
  t.equal(per.stats().upstreams[0]!.overCap, 5, 'skips counted per upstream');
  t.equal(per.stats().overCapServfails, 2);
});

t.test('source port and ID stay random per query', async (t) => {
  const f = await fake(t);
  const c = client(t, [f]);
  await Promise.all(Array.from({ length: 64 }, () => ask(c)));
  const ports = new Set(f.log.map((l) => l.port));
  const ids = new Set(f.log.map((l) => l.id));
  t.ok(ports.size >= 60, `${ports.size} source ports for 64 queries`);
  t.ok(ids.size >= 60, `${ids.size} IDs for 64 queries`);
});

t.test('through the server: dig-like clients behind a blackholed first upstream stop paying its timeout', async (t) => {
  const dead = await fake(t, { silent: true });
  const good = await fake(t);
  const s = await startServer(`
dns:
  listen: ["127.0.0.1:0"]
  upstreams: ["${dead.config.text}", "${good.config.text}"]
  timeoutMs: 500
admin: { listen: "127.0.0.1:0" }
`);
  t.teardown(() => s.close());
  for (let i = 0; i < FAILURES_TO_BACK_OFF; i++) await query({ server: s.server, proto: 'udp', name: `warm${i}.example.org`, type: 'A', timeoutMs: 2000 });
  const started = performance.now();
  for (let i = 0; i < 10; i++) {
    const r = await query({ server: s.server, proto: 'udp', name: `cold${i}.example.org`, type: 'A', timeoutMs: 2000 });
    t.equal(r.rcode, 0);
  }
  const ms = performance.now() - started;
  t.ok(ms < 10 * 250, `10 cache misses in ${ms.toFixed(0)} ms, not 10 × 500 ms`);
  t.match(s.runtime.upstreamStats().upstreams[0], { state: 'backoff' });

  const m = await scrape(s.runtime.adminPort);
  t.equal(m.value('appfence_upstream_state', { upstream: dead.config.text, state: 'backoff' }), 1, '/metrics: the dead one is in backoff');
  t.equal(m.value('appfence_upstream_state', { upstream: good.config.text, state: 'healthy' }), 1, '/metrics: the good one is healthy');
  t.ok((m.value('appfence_upstream_failures_total', { upstream: dead.config.text }) ?? 0) >= FAILURES_TO_BACK_OFF, 'its failures are counted');
  t.ok((m.value('appfence_upstream_backoff_seconds', { upstream: dead.config.text }) ?? -1) >= 0, 'backoff time left is exposed');
  const srtt = m.value('appfence_upstream_srtt_seconds', { upstream: good.config.text }) ?? -1;
  t.ok(srtt > 0 && srtt < 0.5, `the good one's smoothed RTT: ${srtt} s`);
  t.equal(m.value('appfence_upstream_srtt_seconds', { upstream: dead.config.text }), undefined, 'none for one that never answered');
  t.equal(m.value('appfence_upstream_outstanding_queries'), 0);
  t.equal(m.value('appfence_upstream_overload_servfails_total'), 0);
});

t.test('through the server: SERVFAILs past the outstanding cap are scraped from /metrics', async (t) => {
  const dead = await fake(t, { silent: true });
  const s = await startServer(`
dns:
  listen: ["127.0.0.1:0"]
  upstreams: ["${dead.config.text}"]
  timeoutMs: 3000
admin: { listen: "127.0.0.1:0" }
`);
  t.teardown(() => s.close());
  // the runtime's caps are the defaults (1000 / 500): shrink them on the client it built
  const upstream = s.runtime.generation.upstream as unknown as { maxPerUpstream: number };
  upstream.maxPerUpstream = 2;
  const answers = Promise.all(Array.from({ length: 5 }, (_, i) =>
    query({ server: s.server, proto: 'udp', name: `cap${i}.example.org`, type: 'A', timeoutMs: 6000 }).catch(() => null)));
  await new Promise((r) => setTimeout(r, 500));
  const m = await scrape(s.runtime.adminPort);
  t.equal(m.value('appfence_upstream_outstanding_tries', { upstream: dead.config.text }), 2, 'two tries wait on the dead upstream');
  t.equal(m.value('appfence_upstream_over_cap_skips_total', { upstream: dead.config.text }), 3, 'three were not sent to it');
  t.equal(m.value('appfence_upstream_overload_servfails_total'), 3, 'and answered SERVFAIL at once');
  await answers;
});
