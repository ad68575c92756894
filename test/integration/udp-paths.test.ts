// What the batched UDP path changes, checked on both paths (dns.udpBatch auto and off): replies to
// bursts that arrive as batches each answer their own query (cache misses keep a copy of a slot that
// later batches overwrite), every blocked query is logged, IPv6 listeners, drain on stop, and the
// one start-up line that says which path runs.
import t from 'tap';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { buildQuery, decodeReply, query } from '../helpers/dns-client.js';
import { startServer } from '../helpers/start-server.js';
import { parseConfig } from '../../src/config/load.js';
import { Runtime } from '../../src/runtime/runtime.js';
import { BlockLog } from '../../src/log/block-log.js';
import { createAppLogger } from '../../src/log/logger.js';

const CITY = '127.0.10.5';
const GUEST = '127.0.20.5';

const yaml = (upstream: number, mode: string, listen = '127.0.0.1:0'): string => `
dns:
  listen: ["${listen}"]
  upstreams: ["127.0.0.1:${upstream}"]
  timeoutMs: 2000
  udpBatch: ${mode}
access:
  allow: ["127.0.0.0/8", "::1/128"]
lists:
  tiktok: { sources: ["tiktok.txt"] }
groups:
  city: { subnets: ["127.0.10.0/24", "::1/128"], block: [tiktok] }
log: { level: silent }
`;
const LISTS = { 'tiktok.txt': 'tiktokv.com\n' };

let up: FakeUpstream;
t.before(async () => {
  up = await startFakeUpstream({ respond: (req) => ({ answers: [{ type: 'A', ttl: 300, data: req.questions[0]?.name.startsWith('slow') ? '192.0.2.2' : '192.0.2.1' }] }) });
});
t.teardown(() => up.close());

async function bind(host: string): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, host, () => r()));
  return s;
}

for (const mode of ['auto', 'off'] as const) {
  const path = mode === 'auto' ? 'batch' : 'dgram';

  t.test(`${path}: a mixed burst from several clients, every reply answers its own query, every block logged`, async (t) => {
    const af = await startServer(yaml(up.port, mode), LISTS);
    t.teardown(() => af.close());
    t.same(af.runtime.udpPaths, [path]);
    up.opts.delayMs = 30; // misses wait while later batches reuse the slots
    t.teardown(() => { up.opts.delayMs = 0; });
    const clients = await Promise.all([CITY, GUEST, '127.0.0.1'].map(bind));
    t.teardown(() => clients.forEach((c) => c.close()));
    const sent = new Map<string, string>();
    const replies = new Map<string, Buffer>();
    let expectBlocked = 0;
    const done = new Promise<void>((resolve) => {
      clients.forEach((c, ci) => c.on('message', (m) => {
        replies.set(`${ci}/${m.readUInt16BE(0)}`, m);
        if (replies.size === sent.size) resolve();
      }));
    });
    // one synchronous loop: the batched path finds many queued at its first wakeup
    for (let i = 0; i < 180; i++) {
      const ci = i % 3;
      const name = i % 2 === 0 ? `v${i}.tiktokv.com` : `miss${i}.example.org`;
      if (ci === 0 && i % 2 === 0) expectBlocked++;
      sent.set(`${ci}/${i}`, name);
      clients[ci]!.send(buildQuery({ name, type: 'A', id: i }), af.port, '127.0.0.1');
    }
    await Promise.race([done, new Promise((r) => setTimeout(r, 5000))]);
    t.equal(replies.size, sent.size, 'one reply per query');
    for (const [key, name] of sent) {
      const raw = replies.get(key);
      if (raw === undefined) continue;
      const reply = decodeReply(raw);
      t.equal(reply.packet.questions[0]?.name, name, `${key}: the reply's question is the query's`);
      const blocked = key.startsWith('0/') && name.endsWith('tiktokv.com');
      t.same(reply.answers.map((a) => a.data), [blocked ? '0.0.0.0' : '192.0.2.1'], `${key}: ${name}`);
    }
    const blocks = af.events().filter((e) => e.event === 'block');
    t.equal(blocks.length, expectBlocked, 'one block-log line per blocked query');
    t.equal(af.runtime.pipeline.stats.get('udp', 'blocked'), expectBlocked);
    t.same(new Set(blocks.map((e) => e.client)), new Set([CITY]));
  });

  t.test(`${path}: IPv6 listener`, async (t) => {
    const af = await startServer(yaml(up.port, mode, '[::1]:0'), LISTS);
    t.teardown(() => af.close());
    t.same(af.runtime.udpPaths, [path]);
    const server = { host: '::1', port: af.port };
    const blocked = await query({ server, name: 'www.tiktokv.com', type: 'AAAA', proto: 'udp' });
    t.same(blocked.answers.map((a) => a.data), ['::']);
    const resolved = await query({ server, name: 'example.org', type: 'A', proto: 'udp' });
    t.same(resolved.answers.map((a) => a.data), ['192.0.2.1']);
    t.same(af.events().filter((e) => e.event === 'block').map((e) => e.client), ['::1']);
  });

  t.test(`${path}: stop drains: a query waiting on the upstream is still answered`, async (t) => {
    const af = await startServer(yaml(up.port, mode), LISTS);
    up.opts.delayMs = 300;
    t.teardown(() => { up.opts.delayMs = 0; });
    const answer = query({ server: af.server, name: 'slow.example.org', type: 'A', proto: 'udp', timeoutMs: 3000 });
    await new Promise((r) => setTimeout(r, 100));
    const stopped = af.runtime.stop(2000);
    t.same((await answer).answers.map((a) => a.data), ['192.0.2.2']);
    await stopped;
  });

  t.test(`${path}: one start-up line says which UDP path runs`, async (t) => {
    const dir = t.testdir(LISTS);
    const file = join(dir, 'app.log');
    const config = parseConfig(yaml(up.port, mode), join(dir, 'appfence.yaml'), {});
    const runtime = await Runtime.start(config, createAppLogger('info', file), { blockLog: new BlockLog({ destination: join(dir, 'b.log'), sync: true }) });
    await runtime.stop(0);
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => String(l.msg).startsWith('dns udp:'));
    t.equal(lines.length, 1);
    t.match(lines[0], { udpBatch: mode, path, reason: mode === 'off' ? 'dns.udpBatch is off' : 'recvmmsg/sendmmsg' });
  });
}
