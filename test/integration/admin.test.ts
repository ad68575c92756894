// The admin listener end to end, in-process: real DNS queries over UDP from loopback "devices"
// (127.0.10.x city, 127.0.20.x guests), then HTTP to admin.listen — health, readiness, metrics that
// move with the queries (scraped numbers, checked by promtool), reload authentication and /check.
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startListServer } from '../helpers/list-server.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { query } from '../helpers/dns-client.js';
import { startServer, type Started } from '../helpers/start-server.js';
import { scrape, hasPromtool, promtoolCheckMetrics } from '../helpers/metrics.js';
import { parseConfig } from '../../src/config/load.js';
import { ConfigErrors } from '../../src/errors.js';
import { PACKAGE_ROOT } from '../../src/config/default.js';
import { spawnSync } from 'node:child_process';

const CITY = '127.0.10.5';
const GUEST = '127.0.20.5';
const TOKEN = 'correct-horse-battery-staple';

const config = (upstreamPort: number, admin = `admin: { listen: "127.0.0.1:0", token: "${TOKEN}" }`, extraList = ''): string => `
dns:
  listen: ["127.0.0.1:0"]
  upstreams: ["127.0.0.1:${upstreamPort}"]
  timeoutMs: 300
access:
  allow: ["127.0.10.0/24", "127.0.20.0/24", "127.0.0.1/32"]
lists:
  tiktok: { sources: ["tiktok.txt"] }
${extraList}
groups:
  city: { subnets: ["127.0.10.0/24"], block: [tiktok] }
log: { level: silent }
${admin}
`;

let up: FakeUpstream;
t.before(async () => {
  up = await startFakeUpstream({
    zone: { 'example.org A': { answers: [{ type: 'A', ttl: 300, data: '192.0.2.10' }] } },
  });
});
t.teardown(() => up.close());

const admin = (af: Started, path: string, init?: RequestInit): Promise<Response> =>
  fetch(`http://127.0.0.1:${af.runtime.adminPort}${path}`, init);

const dns = (af: Started, name: string, from: string) =>
  query({ server: af.server, name, type: 'A', proto: 'udp', localAddress: from });

t.test('metrics move with blocked, forwarded and cached queries', async (t) => {
  const af = await startServer(config(up.port), { 'tiktok.txt': 'tiktok.com\n' });
  t.teardown(() => af.close());
  const before = await scrape(af.runtime.adminPort);
  const q = (result: string) => before.value('appfence_dns_queries_total', { proto: 'udp', result }) ?? 0;
  t.equal(q('blocked'), 0);
  t.equal(before.value('appfence_list_rules', { list: 'tiktok' }), 1, 'rule count per list');

  t.equal((await dns(af, 'www.tiktok.com', CITY)).answers[0]?.data, '0.0.0.0');
  t.equal((await dns(af, 'www.tiktok.com', CITY)).answers[0]?.data, '0.0.0.0');
  t.equal((await dns(af, 'www.tiktok.com', GUEST)).rcode, 3, 'a guest is not blocked (the fake upstream has no such name)');
  t.equal((await dns(af, 'example.org', GUEST)).answers[0]?.data, '192.0.2.10');
  t.equal((await dns(af, 'example.org', CITY)).answers[0]?.data, '192.0.2.10');

  const after = await scrape(af.runtime.adminPort);
  const udp = (result: string) => after.value('appfence_dns_queries_total', { proto: 'udp', result });
  t.equal(udp('blocked'), 2, 'two blocked queries');
  t.equal(after.value('appfence_blocks_total', { group: 'city', list: 'tiktok', proto: 'udp' }), 2, 'blocks by group, list and proto');
  // guest www.tiktok.com (NXDOMAIN upstream, forwarded), guest example.org (forwarded), city example.org (cached)
  t.equal(udp('forwarded'), 2, 'two answers came from upstream');
  t.equal(udp('cached'), 1, 'one answer came from the cache');
  t.equal(after.value('appfence_cache_hits_total'), 1);
  t.equal(after.value('appfence_cache_misses_total'), 2);
  t.equal(after.value('appfence_upstream_tries_total', { upstream: `127.0.0.1:${up.port}`, result: 'ok' }), 2, 'upstream tries counted');
  t.equal(after.value('appfence_upstream_duration_seconds_count', { upstream: `127.0.0.1:${up.port}` }), 2, 'upstream histogram observed');
  t.ok((after.value('appfence_upstream_duration_seconds_sum', { upstream: `127.0.0.1:${up.port}` }) ?? 0) > 0, 'durations add up');
  t.equal(after.value('appfence_block_log_lines_total'), 2, 'one block-log line per block');
  t.ok((after.value('process_resident_memory_bytes') ?? 0) > 0, 'process metrics are exposed');
  t.equal(after.value('appfence_ready'), 1);
  t.equal(after.types.get('appfence_upstream_duration_seconds'), 'histogram');
  t.equal(after.types.get('appfence_blocks_total'), 'counter');
});

t.test('proxy requests are counted: a blocked request moves proxy and block counters', async (t) => {
  const af = await startServer(config(up.port).replace('log: { level: silent }', 'log: { level: silent }\nproxy: { listen: ["127.0.0.1:0"] }'),
    { 'tiktok.txt': 'tiktok.com\n' });
  t.teardown(() => af.close());
  const http = await import('node:http');
  const status = await new Promise<number>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: af.runtime.ports.proxy[0], localAddress: CITY, method: 'GET', path: 'http://www.tiktok.com/',
      headers: { Host: 'www.tiktok.com' } }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
    req.on('error', reject);
    req.end();
  });
  t.equal(status, 403, 'the city laptop gets the block page');
  const m = await scrape(af.runtime.adminPort);
  t.equal(m.value('appfence_proxy_requests_total', { result: 'blocked' }), 1);
  t.equal(m.value('appfence_proxy_requests_total', { result: 'allowed' }), 0);
  t.equal(m.value('appfence_blocks_total', { group: 'city', list: 'tiktok', proto: 'http' }), 1, 'the block counted with proto http');
});

t.test('the exposition passes promtool check metrics', { skip: hasPromtool ? false : 'promtool not installed (Debian package prometheus)' }, async (t) => {
  const af = await startServer(config(up.port), { 'tiktok.txt': 'tiktok.com\n' });
  t.teardown(() => af.close());
  await dns(af, 'www.tiktok.com', CITY);
  await dns(af, 'example.org', CITY);
  const res = await admin(af, '/metrics');
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  const check = promtoolCheckMetrics(text);
  t.equal(check.status, 0, `promtool: ${check.output}`);
  t.equal(check.output.trim(), '', 'no lint findings');
});

t.test('healthz, unknown paths and wrong methods', async (t) => {
  const af = await startServer(config(up.port), { 'tiktok.txt': 'tiktok.com\n' });
  t.teardown(() => af.close());
  const health = await admin(af, '/healthz');
  t.equal(health.status, 200);
  t.same(await health.json(), { ok: true });
  t.equal((await admin(af, '/nope')).status, 404);
  const wrong = await admin(af, '/reload');
  t.equal(wrong.status, 405, 'GET /reload is not a reload');
  t.equal(wrong.headers.get('allow'), 'POST');
  t.equal((await admin(af, '/metrics', { method: 'POST' })).status, 405);
});

t.test('readiness follows the list keeper: a URL list that never got rules is named; an empty list of files is ready', async (t) => {
  const host = await startListServer('127.0.0.76', 'capcut.com\nlemon8-app.com\n');
  await host.stop(); // the list's host is down when appfence starts, and there is no copy in stateDir
  t.teardown(() => host.stop());
  const state = mkdtempSync(join(tmpdir(), 'appfence-admin-state-'));
  const af = await startServer(`${config(up.port, undefined, `  vendor: { sources: ["${host.url}/vendor.txt"], refresh: 1d }
  exceptions: { sources: ["exceptions.txt"] }`).replace('block: [tiktok] }', 'block: [tiktok, vendor], allow: [exceptions] }')}
stateDir: ${state}
`, { 'tiktok.txt': 'tiktok.com\n', 'exceptions.txt': '# nothing excepted yet\n' }, undefined, { appLog: true, lists: { firstRetryMs: 200, maxRetryMs: 400 } });
  t.teardown(() => af.close());
  const r1 = await admin(af, '/readyz');
  t.equal(r1.status, 503);
  const body = (await r1.json()) as { ready: boolean; notReady: string[] };
  t.match(body, { ready: false, notReady: [new RegExp(`^lists\\.vendor: no rules yet, no good copy of ${host.url}/vendor\\.txt \\(.*ECONNREFUSED.*\\)$`)] },
    'the URL list is named, with its source and why; the empty exceptions list is not');
  t.equal(body.notReady.length, 1);
  t.equal((await scrape(af.runtime.adminPort)).value('appfence_ready'), 0);
  t.match(af.appLog().find((l) => l['list'] === 'exceptions'), { level: 'warn', msg: /list has no rules/ }, 'the empty list is a warning instead');

  await host.start(); // no reload: the keeper retries on its own
  let ready: Response | undefined;
  for (let i = 0; i < 160 && ready?.status !== 200; i++) {
    ready = await admin(af, '/readyz');
    if (ready.status !== 200) await new Promise((r) => setTimeout(r, 50));
  }
  t.equal(ready?.status, 200, 'ready once the download succeeded');
  t.same(await ready?.json(), { ready: true });
  t.equal((await dns(af, 'www.capcut.com', CITY)).answers[0]?.data, '0.0.0.0', 'and the list blocks');
  const m = await scrape(af.runtime.adminPort);
  t.equal(m.value('appfence_list_rules', { list: 'vendor' }), 2);
  t.equal(m.value('appfence_list_rules', { list: 'exceptions' }), 0);
  t.equal(m.value('appfence_ready'), 1);
  const vendorSuccess = m.value('appfence_list_last_success_timestamp_seconds', { list: 'vendor' }) ?? 0;
  t.ok(Math.abs(vendorSuccess - Date.now() / 1000) < 30, 'the URL list\'s last success is its download');
  t.ok(m.value('appfence_list_last_success_timestamp_seconds', { list: 'exceptions' }), 'the empty list of files loaded: it has a last-success time');

  writeFileSync(join(af.dir, 'exceptions.txt'), '@@||capcut.com^\n');
  const reload = await admin(af, '/reload', { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}` } });
  t.equal(reload.status, 200);
  t.same(await reload.json(), { ok: true, ready: true }, 'a reload keeps the downloaded copy: still ready');
});

t.test('readiness turns 503 while stopping, before the listeners close', async (t) => {
  const slow = await startFakeUpstream({ delayMs: 400, zone: { 'example.org A': { answers: [{ type: 'A', ttl: 300, data: '192.0.2.10' }] } } });
  t.teardown(() => slow.close());
  const af = await startServer(config(slow.port).replace('timeoutMs: 300', 'timeoutMs: 1000'), { 'tiktok.txt': 'tiktok.com\n' });
  const port = af.runtime.adminPort;
  const inFlight = dns(af, 'example.org', CITY);
  await new Promise((r) => setTimeout(r, 100));
  const stopped = af.runtime.stop(2000);
  const during = await fetch(`http://127.0.0.1:${port}/readyz`);
  t.equal(during.status, 503);
  const body = (await during.json()) as { ready: boolean; notReady: string[] };
  t.equal(body.ready, false);
  t.equal(body.notReady[0], 'stopping: draining in-flight work');
  t.ok(body.notReady.includes('dns.listen[0]/tcp: not bound'), 'a listener that stopped accepting is named');
  t.equal((await inFlight).answers[0]?.data, '192.0.2.10', 'the in-flight query is still answered');
  await stopped;
  await t.rejects(fetch(`http://127.0.0.1:${port}/healthz`), 'the admin listener is closed after the stop');
});

t.test('reload: 401 without a token, 403 with a wrong one, 200 with it, 422 naming the key path', async (t) => {
  const af = await startServer(config(up.port), { 'tiktok.txt': 'tiktok.com\n' });
  t.teardown(() => af.close());
  const post = (headers: Record<string, string> = {}) => admin(af, '/reload', { method: 'POST', headers });

  const none = await post();
  t.equal(none.status, 401);
  t.match(none.headers.get('www-authenticate'), /^Bearer/);
  t.equal((await post({ Authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` })).status, 401, 'only bearer tokens count');
  t.equal((await post({ Authorization: 'Bearer wrong' })).status, 403);
  t.equal((await post({ Authorization: `Bearer ${TOKEN}x` })).status, 403, 'a longer token is wrong too');
  t.equal((await post({ Authorization: `Bearer ${TOKEN.slice(0, -1)}` })).status, 403, 'a prefix of the token is wrong');

  af.writeConfig(config(up.port).replace('tiktok.txt', 'tiktok.txt", "extra.txt'));
  writeFileSync(join(af.dir, 'extra.txt'), 'douyin.com\n');
  const ok = await post({ Authorization: `Bearer ${TOKEN}` });
  t.equal(ok.status, 200);
  t.same(await ok.json(), { ok: true, ready: true });
  t.equal((await dns(af, 'www.douyin.com', CITY)).answers[0]?.data, '0.0.0.0', 'the reloaded list blocks');

  af.writeConfig(config(up.port).replace('timeoutMs: 300', 'timeoutMs: 300\n  blockedTTL: 5'));
  const bad = await post({ Authorization: `Bearer ${TOKEN}` });
  t.equal(bad.status, 422);
  const body = (await bad.json()) as { ok: boolean; error: string };
  t.equal(body.ok, false);
  t.match(body.error, /dns\.blockedTTL: unknown key/, 'the error names the key path');
  t.equal((await dns(af, 'www.douyin.com', CITY)).answers[0]?.data, '0.0.0.0', 'the running configuration stays');

  writeFileSync(join(af.dir, 'extra.txt'), 'douyin.com\nbad line here\n');
  af.writeConfig(config(up.port).replace('tiktok.txt', 'tiktok.txt", "missing.txt'));
  const missing = await post({ Authorization: `Bearer ${TOKEN}` });
  t.equal(missing.status, 422);
  t.match(((await missing.json()) as { error: string }).error, /missing\.txt: file not found/, 'a list failure names the file');

  const m = await scrape(af.runtime.adminPort);
  t.equal(m.value('appfence_reloads_total', { result: 'ok' }), 1);
  t.equal(m.value('appfence_reloads_total', { result: 'failed' }), 2);
  t.equal(m.value('appfence_config_last_reload_successful'), 0);
});

t.test('without admin.token, loopback clients may reload', async (t) => {
  const af = await startServer(config(up.port, 'admin: { listen: "127.0.0.1:0" }'), { 'tiktok.txt': 'tiktok.com\n' });
  t.teardown(() => af.close());
  const res = await admin(af, '/reload', { method: 'POST' });
  t.equal(res.status, 200);
  t.same(await res.json(), { ok: true, ready: true });
});

t.test('concurrent reloads run one at a time and each caller gets an outcome', async (t) => {
  const af = await startServer(config(up.port), { 'tiktok.txt': 'tiktok.com\n' });
  t.teardown(() => af.close());
  const post = () => admin(af, '/reload', { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}` } });
  const results = await Promise.all([post(), post(), post(), post()]);
  t.same(results.map((r) => r.status), [200, 200, 200, 200]);
  const reloads = (await scrape(af.runtime.adminPort)).value('appfence_reloads_total', { result: 'ok' }) ?? 0;
  t.ok(reloads >= 2 && reloads <= 3, `overlapping requests shared reloads (${reloads} ran for 4 requests)`);
});

t.test('GET /check answers the decision as JSON', async (t) => {
  const af = await startServer(config(up.port), { 'tiktok.txt': 'tiktok.com\n' });
  t.teardown(() => af.close());
  const res = await admin(af, `/check?client=${CITY}&name=WWW.TikTok.com.&name=example.org`);
  t.equal(res.status, 200);
  const body = (await res.json()) as Record<string, unknown>;
  t.match(body, {
    client: CITY, refused: false, group: 'city', via: 'subnet', blocked: true,
    names: [
      { name: 'www.tiktok.com', action: 'block', answer: 'null', rule: { rule: 'tiktok.com', list: 'tiktok', line: 1 } },
      { name: 'example.org', action: 'allow', answer: 'forward', rule: null },
    ],
  });
  // `appfence check --json` prints exactly what GET /check answers.
  const cli = spawnSync(process.execPath, [join(PACKAGE_ROOT, 'dist/cli.js'), 'check', '--config', join(af.dir, 'appfence.yaml'),
    '--client', CITY, '--json', 'WWW.TikTok.com.', 'example.org'], { encoding: 'utf8' });
  t.equal(cli.status, 1, 'check --json exits 1 when a name is blocked');
  t.same(JSON.parse(cli.stdout), body, 'check --json = GET /check');
  const guest = (await (await admin(af, `/check?client=${GUEST}&name=www.tiktok.com`)).json()) as Record<string, unknown>;
  t.match(guest, { group: 'default', via: 'default', blocked: false });
  const stranger = (await (await admin(af, '/check?client=127.0.30.5&name=www.tiktok.com')).json()) as Record<string, unknown>;
  t.match(stranger, { refused: true, group: null });
  const bad = await admin(af, '/check?client=not-an-ip&name=x.org');
  t.equal(bad.status, 400);
  t.match(((await bad.json()) as { error: string }).error, /not an IP address/);
  t.equal((await admin(af, `/check?client=${CITY}`)).status, 400, 'a name is required');
  t.equal((await admin(af, `/check?client=${CITY}&name=${encodeURIComponent('a b')}`)).status, 400, 'a bad name is bad input');
});

t.test('a non-loopback admin.listen without a token is a config error', async (t) => {
  const yaml = (admin: string) => `dns: { listen: ["127.0.0.1:0"], upstreams: ["127.0.0.1:53"] }\nadmin: ${admin}\n`;
  const err = (() => {
    try {
      parseConfig(yaml('{ listen: "0.0.0.0:9153" }'), '/tmp/x.yaml', {});
    } catch (e) {
      return e;
    }
    return null;
  })();
  t.ok(err instanceof ConfigErrors, 'a config error (exit 2)');
  t.match((err as Error).message, /admin\.token: is required when admin\.listen is not on loopback \(0\.0\.0\.0\)/);
  t.throws(() => parseConfig(yaml('{ listen: "[::]:9153" }'), '/tmp/x.yaml', {}), /admin\.token: is required/);
  t.throws(() => parseConfig(yaml('{ listen: "127.0.0.1:9153", token: "" }'), '/tmp/x.yaml', {}), /admin\.token: must not be empty/);
  t.doesNotThrow(() => parseConfig(yaml('{ listen: "0.0.0.0:9153", token: "s3cret" }'), '/tmp/x.yaml', {}));
  t.doesNotThrow(() => parseConfig(yaml('{ listen: "[::1]:9153" }'), '/tmp/x.yaml', {}));
});
