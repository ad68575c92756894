// URL lists over the life of the server, against a list host on 127.0.0.71: refresh on their own
// (no SIGHUP) with conditional requests, the last good copy on disk for restarts during an outage,
// start-up without any copy, a corrupt copy, and the sanity guard against an HTML error page.
import t from 'tap';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { query } from '../helpers/dns-client.js';
import { startServer, type Started } from '../helpers/start-server.js';
import { startListServer, type ListServer } from '../helpers/list-server.js';

const CITY = '127.0.10.5';
// a generous timeout: the machine running the suite may be busy, and a timed-out first download changes the story
const TIMING = { timeoutMs: 8000, firstRetryMs: 200, maxRetryMs: 400 };

let up: FakeUpstream;
t.before(async () => {
  up = await startFakeUpstream({
    zone: {
      'www.tiktok.com A': { answers: [{ type: 'A', ttl: 0, data: '198.51.100.7' }] },
      'www.bytedance.com A': { answers: [{ type: 'A', ttl: 0, data: '198.51.100.8' }] },
    },
  });
});
t.teardown(() => up.close());

const config = (listUrl: string, stateDir: string, refresh: string): string => `
dns: { listen: ["127.0.0.1:0"], upstreams: ["127.0.0.1:${up.port}"], timeoutMs: 500, cache: { maxTtl: 0 } }
access: { allow: ["127.0.10.0/24", "127.0.0.1/32"] }
lists:
  remote: { sources: ["${listUrl}/tiktok.txt"], refresh: ${refresh} }
stateDir: ${stateDir}
groups:
  city: { subnets: ["127.0.10.0/24"], block: [remote] }
log: { level: silent }
`;

const answer = async (s: Started, name: string): Promise<unknown> =>
  (await query({ server: s.server, name, type: 'A', proto: 'udp', localAddress: CITY })).answers[0]?.data;

/** Polls `check` every 50 ms for at most `ms`; true once it holds. */
async function eventually(check: () => boolean | Promise<boolean>, ms = 8000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

const appLog = (file: string): Record<string, unknown>[] =>
  readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

const copies = (stateDir: string): string[] => readdirSync(join(stateDir, 'lists')).sort();

async function start(list: ListServer, stateDir: string, refresh: string): Promise<{ s: Started; log: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'appfence-lifecycle-'));
  const log = join(dir, 'app.log');
  const s = await startServer(config(list.url, stateDir, refresh), {}, undefined, { appLog: log, lists: TIMING });
  // closed by the test or by its teardown, whichever comes first
  let closing: Promise<void> | undefined;
  const close = s.close;
  s.close = () => (closing ??= close());
  return { s, log };
}

t.test('a URL list refreshes on its own, asks with If-None-Match, takes a 304 as "unchanged", refuses an error page', async (t) => {
  const list = await startListServer('127.0.0.71', 'tiktok.com\n');
  t.teardown(() => list.stop());
  const stateDir = mkdtempSync(join(tmpdir(), 'appfence-state-'));
  const { s } = await start(list, stateDir, '1s');
  t.teardown(() => s.close());
  t.equal(await answer(s, 'www.tiktok.com'), '0.0.0.0', 'the downloaded list blocks');
  t.equal(await answer(s, 'www.bytedance.com'), '198.51.100.8', 'a name not yet listed resolves');
  t.equal(list.requests[0]?.headers['if-none-match'], undefined, 'the first download is unconditional');

  t.ok(await eventually(() => list.requests.some((r) => r.status === 304)), 'a refresh a second later is answered 304');
  const conditional = list.requests.find((r) => r.status === 304);
  t.match(conditional?.headers['if-none-match'], /^"[0-9a-f]{16}"$/, 'with the ETag of the copy held');
  t.equal(conditional?.headers['if-modified-since'], new Date(0).toUTCString(), 'and its Last-Modified');
  t.equal(await answer(s, 'www.tiktok.com'), '0.0.0.0', 'after a 304 the list still blocks');

  list.body = 'tiktok.com\nbytedance.com\n';
  t.ok(await eventually(async () => await answer(s, 'www.bytedance.com') === '0.0.0.0'), 'a changed list blocks without SIGHUP');
  const [status] = s.runtime.listStatus();
  t.match(status, { name: 'remote', rules: 2, ready: true, lastError: null, sources: [{ state: 'fresh' }] });
  t.ok(Date.now() - (status?.lastSuccess ?? 0) < 5000, 'lastSuccess is recent');
  const txt = copies(stateDir).find((f) => f.endsWith('.txt')) as string;
  t.ok(await eventually(() => readFileSync(join(stateDir, 'lists', txt), 'utf8') === list.body), 'the new body is the copy on disk');
  t.ok(await eventually(() => !copies(stateDir).some((f) => f.endsWith('.tmp'))), 'no temporary files left behind');

  list.override = { status: 200, body: '<html><body>Service Unavailable</body></html>\n' };
  const asked = list.requests.length;
  t.ok(await eventually(() => s.runtime.listStatus()[0]?.lastError !== null && list.requests.length > asked), 'the error page is fetched');
  t.match(s.runtime.listStatus()[0], { rules: 2, lastError: /no rules/ }, 'and refused: the running list stays');
  t.equal(await answer(s, 'www.bytedance.com'), '0.0.0.0');
  t.equal(readFileSync(join(stateDir, 'lists', txt), 'utf8'), 'tiktok.com\nbytedance.com\n', 'the error page never reaches the disk');

  list.override = { status: 503, body: 'down' };
  const before = list.requests.length;
  t.ok(await eventually(() => list.requests.length >= before + 2, 3000), 'after a failure it retries (backoff, capped by refresh)');
  t.equal(await answer(s, 'www.bytedance.com'), '0.0.0.0', 'the copy held keeps blocking while the host fails');
});

t.test('list host down at start: the last good copy in stateDir serves; without one appfence starts anyway', async (t) => {
  const list = await startListServer('127.0.0.72', 'tiktok.com\n');
  t.teardown(() => list.stop());
  const stateDir = mkdtempSync(join(tmpdir(), 'appfence-state-'));
  const first = await start(list, stateDir, '1d');
  t.equal(await answer(first.s, 'www.tiktok.com'), '0.0.0.0');
  await first.s.close();
  t.equal(copies(stateDir).length, 2, 'one copy and its metadata in stateDir/lists');
  await list.stop();

  const second = await start(list, stateDir, '1d');
  t.teardown(() => second.s.close());
  t.equal(await answer(second.s, 'www.tiktok.com'), '0.0.0.0', 'a restart during the outage blocks from the copy');
  t.match(second.s.runtime.listStatus()[0], { ready: true, rules: 1, lastError: /ECONNREFUSED/, sources: [{ state: 'copy' }] });
  t.match(appLog(second.log).find((l) => l.msg === 'list download failed; serving the last good copy'),
    { level: 'warn', served: 'last good copy from stateDir', error: /ECONNREFUSED/ }, 'with a warning');
  await second.s.close();

  const txt = copies(stateDir).find((f) => f.endsWith('.txt')) as string;
  writeFileSync(join(stateDir, 'lists', txt), 'tiktok.com\nevil-but-not-vouched-for.example\n');
  const corrupt = await start(list, stateDir, '1d');
  t.teardown(() => corrupt.s.close());
  t.equal(await answer(corrupt.s, 'www.tiktok.com'), '198.51.100.7', 'a corrupt copy is not used');
  t.match(appLog(corrupt.log).find((l) => l.msg === 'list copy'), { level: 'warn', detail: /does not match its checksum/ });
  t.match(corrupt.s.runtime.listStatus()[0], { ready: false, rules: 0, sources: [{ state: 'missing' }] });
  await corrupt.s.close();

  const empty = mkdtempSync(join(tmpdir(), 'appfence-state-'));
  const none = await start(list, empty, '1d');
  t.teardown(() => none.s.close());
  t.equal(await answer(none.s, 'www.tiktok.com'), '198.51.100.7', 'no copy at all: appfence serves DNS, unblocked for now');
  t.match(none.s.runtime.listStatus()[0], { name: 'remote', ready: false, rules: 0, lastSuccess: null, lastError: /ECONNREFUSED/ },
    'not ready: the list has no rules');
  t.match(appLog(none.log).find((l) => l.level === 'error'), { msg: /no copy: its rules are missing until a download succeeds; retrying/ });
  await list.start();
  t.ok(await eventually(async () => await answer(none.s, 'www.tiktok.com') === '0.0.0.0'), 'it keeps retrying and blocks once the host is back');
  t.match(none.s.runtime.listStatus()[0], { ready: true, rules: 1, lastError: null, sources: [{ state: 'fresh' }] });
});

t.test('a scheduled refresh applies the sanity guard: a shrunken list or an error page with names in it is refused', async (t) => {
  // ten names; the fake upstream answers only www.tiktok.com, so the others are asked for as NXDOMAIN-or-sinkhole
  const names = ['tiktok.com', 'bytedance.com', 'tiktokv.com', 'tiktokcdn.com', 'ttwstatic.com', 'byteoversea.com',
    'ibytedtos.com', 'muscdn.com', 'musical.ly', 'tik-tokapi.com'];
  const list = await startListServer('127.0.0.75', names.join('\n') + '\n');
  t.teardown(() => list.stop());
  const stateDir = mkdtempSync(join(tmpdir(), 'appfence-state-'));
  const { s, log } = await start(list, stateDir, '1s');
  t.teardown(() => s.close());
  t.equal(await answer(s, 'www.bytedance.com'), '0.0.0.0', 'the good list blocks');
  const txt = copies(stateDir).find((f) => f.endsWith('.txt')) as string;
  const onDisk = (): string => readFileSync(join(stateDir, 'lists', txt), 'utf8');
  t.equal(onDisk(), list.body, 'the good list is the copy on disk');

  const refusals = (): Record<string, unknown>[] => appLog(log).filter((l) => String(l['msg']).startsWith('list source refused'));
  list.body = 'tiktok.com\nmusical.ly\n';
  t.ok(await eventually(() => refusals().length > 0), 'the shrunken download is refused');
  t.match(refusals()[0], { level: 'warn', list: 'remote', source: `${list.url}/tiktok.txt`, rules: 2, lastGoodRules: 10,
    reason: 'has fewer than half the rules of its last good copy' }, 'with both counts');
  t.match(s.runtime.listStatus()[0], { rules: 10, ready: true, lastError: /fewer than half/ });
  t.equal(await answer(s, 'www.bytedance.com'), '0.0.0.0', 'a name only the old copy lists still blocks');
  t.equal(onDisk(), names.join('\n') + '\n', 'the stateDir copy is unchanged');
  t.notOk(appLog(log).some((l) => l['msg'] === 'list refreshed'), 'nothing was swapped in');

  // a 200 HTML page listing as many names as the good copy: only the error-page check catches it
  list.body = names.join('\n') + '\n';
  list.override = { status: 200, body: `<!DOCTYPE html>\n<html><body>\n${names.join('\n')}\nsomething-else.example\n</body></html>\n` };
  t.ok(await eventually(() => refusals().some((r) => r['reason'] === 'looks like an HTML error page')), 'an error page is refused');
  t.equal(onDisk(), names.join('\n') + '\n', 'and never reaches the disk');
  // no rules of its own (refused before any comparison), or one word that parses as a name: both refused
  for (const [body, why] of [['{"error": "rate limited", "status": 429}\n', /no rules/], ['Forbidden', /single word "Forbidden"/]] as const) {
    list.override = { status: 200, body };
    const asked = list.requests.length;
    t.ok(await eventually(() => list.requests.length > asked && why.test(s.runtime.listStatus()[0]?.lastError ?? '')), `refused: ${body.trim()}`);
    t.match(s.runtime.listStatus()[0], { rules: 10, ready: true });
  }
  t.equal(await answer(s, 'www.bytedance.com'), '0.0.0.0', 'the running list still blocks');
  t.equal(onDisk(), names.join('\n') + '\n');

  list.override = null;
  list.body = [...names, 'capcut.com'].join('\n') + '\n';
  t.ok(await eventually(() => onDisk() === list.body), 'a good download is taken again, on disk');
  t.match(s.runtime.listStatus()[0], { rules: 11, lastError: null });
});
