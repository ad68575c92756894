// Reload semantics of the Runtime, in-process on loopback: single flight (a reload asked for during
// a slow one is queued — exactly one more, with the newest loader — never dropped or overlapped),
// the block log reopened on every reload even when the reload fails (logrotate's rename-then-signal),
// and the counters the admin and metrics front ends read.
import t from 'tap';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { query } from '../helpers/dns-client.js';
import { startServer, type Started } from '../helpers/start-server.js';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';

const CITY = '127.0.10.5';

let up: FakeUpstream;
t.before(async () => {
  up = await startFakeUpstream({ zone: { 'www.tiktok.com A': { answers: [{ type: 'A', ttl: 300, data: '198.51.100.7' }] } } });
});
t.teardown(() => up?.close());

const yaml = (block: string) => `
dns: { listen: ["127.0.0.1:0"], upstreams: ["127.0.0.1:${up.port}"], timeoutMs: 300 }
access: { allow: ["127.0.0.0/8"] }
lists: { tiktok: { sources: ["tiktok.txt"] } }
groups: { city: { subnets: ["127.0.10.0/24"], block: [${block}] } }
log: { level: silent }
`;

const tiktokFor = async (af: Started): Promise<string | undefined> =>
  (await query({ server: af.server, name: 'www.tiktok.com', type: 'A', proto: 'udp', localAddress: CITY })).answers[0]?.data as string | undefined;

/** A loader that waits for `open()` before reading the config file: a slow list download, say. */
function gatedLoader(path: string): { load: () => Promise<Config>; calls: () => number; open: () => void } {
  let calls = 0;
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  return {
    load: async () => {
      calls++;
      await gate;
      return loadConfig(path);
    },
    calls: () => calls,
    open: () => open(),
  };
}

t.test('a reload asked for during a slow reload is queued: exactly one more, none dropped', async (t) => {
  const af = await startServer(yaml('tiktok'), { 'tiktok.txt': 'tiktok.com\n' });
  t.teardown(() => af.close());
  const path = join(af.dir, 'appfence.yaml');
  const slow = gatedLoader(path);
  const first = af.runtime.reload(slow.load);
  await new Promise((r) => setTimeout(r, 20));
  t.equal(slow.calls(), 1, 'the first reload is waiting on its loader');

  // Two more requests while it waits (SIGHUP, then admin POST /reload, say). The config now unblocks tiktok.
  writeFileSync(path, yaml(''));
  let laterCalls = 0;
  const later = async () => {
    laterCalls++;
    return loadConfig(path);
  };
  const second = af.runtime.reload(later);
  const third = af.runtime.reload(later);
  t.equal(af.runtime.reloads.queued, 2, 'both counted as queued');
  await new Promise((r) => setTimeout(r, 20));
  t.equal(laterCalls, 0, 'nothing overlaps the running reload');

  slow.open();
  t.equal(await first, null, 'the first reload completes');
  t.equal(await second, null);
  t.equal(await third, null, 'both queued requests get the result of the one queued reload');
  t.equal(laterCalls, 1, 'exactly one more reload ran after the first');
  t.equal(af.runtime.reloads.ok, 2);
  t.equal(af.runtime.generation.id, 3, 'start + two reloads');
  t.equal(await tiktokFor(af), '198.51.100.7', 'the queued reload read the newest config');

  // once idle, a reload runs at once again
  writeFileSync(path, yaml('tiktok'));
  t.equal(await af.runtime.reload(), null, 'the default loader re-reads config.source');
  t.equal(await tiktokFor(af), '0.0.0.0');
  t.equal(af.runtime.reloads.queued, 2);
});

t.test('logrotate, then a reload that fails: the block log is reopened anyway', async (t) => {
  const af = await startServer(yaml('tiktok'), { 'tiktok.txt': 'tiktok.com\n' });
  t.teardown(() => af.close());
  const blocks = join(af.dir, 'blocks.log');
  t.equal(await tiktokFor(af), '0.0.0.0');
  t.ok(existsSync(blocks), 'the first block event is written');
  renameSync(blocks, `${blocks}.1`); // logrotate: rename, then signal

  writeFileSync(join(af.dir, 'appfence.yaml'), yaml('tiktok') + 'bogus: true\n');
  const err = await af.runtime.reload();
  t.match(err?.message, /bogus: unknown key/, 'the reload fails with the key path');
  t.equal(af.runtime.reloads.failed, 1);
  t.equal(af.runtime.reloads.lastError, err, 'lastError is the returned error');

  t.equal(await tiktokFor(af), '0.0.0.0', 'the running policy still blocks');
  af.runtime.blockLog.flush();
  t.ok(existsSync(blocks), 'a fresh blocks.log was opened');
  const fresh = readFileSync(blocks, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; name: string });
  t.match(fresh, [{ event: 'block', name: 'www.tiktok.com' }], 'the new event went into the new file');
  t.equal(readFileSync(`${blocks}.1`, 'utf8').trim().split('\n').length, 1, 'the rotated file got nothing more');
});

t.test('a reload abandoned by shutdown leaves the running generation alone', async (t) => {
  const af = await startServer(yaml('tiktok'), { 'tiktok.txt': 'tiktok.com\n' });
  const slow = gatedLoader(join(af.dir, 'appfence.yaml'));
  const pending = af.runtime.reload(slow.load);
  const before = af.runtime.generation;
  const stopped = af.close();
  slow.open();
  await stopped;
  t.match((await pending)?.message, /shutting down/, 'told why');
  t.equal(af.runtime.generation, before, 'not swapped in after stop');
});

t.test('list sanity on reload: a one-word copy, an HTML page, a copy with under half the rules are refused; the last good copy stays', async (t) => {
  const http = await import('node:http');
  let page = 'tiktok.com\ntiktokv.com\ntiktokcdn.com\n';
  const web = http.createServer((_req, res) => res.end(page));
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => web.close());
  const url = `http://127.0.0.1:${(web.address() as import('node:net').AddressInfo).port}/tiktok.txt`;
  const config = yaml('tiktok, mirror').replace('lists: { tiktok: { sources: ["tiktok.txt"] } }',
    `lists: { tiktok: { sources: ["tiktok.txt"] }, mirror: { sources: ["${url}"] } }`);
  const af = await startServer(config, { 'tiktok.txt': 'tiktok.com\ntiktokv.com\n' }, undefined, { appLog: true });
  t.teardown(() => af.close());
  const refusals = () => af.appLog().filter((l) => String(l['msg']).startsWith('list source refused'));

  writeFileSync(join(af.dir, 'tiktok.txt'), 'Forbidden\n');
  t.equal(await af.runtime.reload(), null, 'the reload goes ahead');
  t.equal(await tiktokFor(af), '0.0.0.0', 'TikTok still blocked for managed devices');
  t.match(refusals().pop(), { level: 'warn', list: 'tiktok', source: 'tiktok.txt', rules: 1, lastGoodRules: 2, reason: /single word "Forbidden"/ });
  t.same(af.runtime.generation.policy.lists.map((l) => [l.name, l.ruleCount]), [['tiktok', 2], ['mirror', 3]]);

  page = '<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>tiktok.com</body></html>';
  t.equal(await af.runtime.reload(), null);
  // a download without a single rule is refused by the list keeper before the sanity check sees it
  t.match(af.appLog().filter((l) => String(l['msg']).includes('the download has no rules')).pop(), { list: 'mirror', source: url },
    'the mirror\'s HTML page refused');
  t.same(af.runtime.generation.policy.lists.map((l) => l.ruleCount), [2, 3]);

  page = 'tiktok.com\n';
  writeFileSync(join(af.dir, 'tiktok.txt'), 'tiktok.com\ntiktokv.com\ntiktokcdn.com\n');
  t.equal(await af.runtime.reload(), null);
  t.match(refusals().pop(), { list: 'mirror', rules: 1, lastGoodRules: 3, reason: /fewer than half/ });
  t.same(af.runtime.generation.policy.lists.map((l) => l.ruleCount), [3, 3], 'the good file is taken, the shrunken download is not');

  page = 'tiktok.com\ntiktokv.com\n';
  const before = refusals().length;
  t.equal(await af.runtime.reload(), null);
  t.equal(refusals().length, before, 'two of three rules is believable');
  t.same(af.runtime.generation.policy.lists.map((l) => l.ruleCount), [3, 2]);
});

t.test('a list that is an error page at start-up is an error, not a list', async (t) => {
  await t.rejects(startServer(yaml('tiktok'), { 'tiktok.txt': 'Forbidden' }), { code: 'AF_ERR_LIST_SOURCE', message: /tiktok\.txt: is the single word "Forbidden"/ });
});
