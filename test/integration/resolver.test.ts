import t from 'tap';
import dgram from 'node:dgram';
import { createServer } from 'node:http';
import dns2 from 'dns2';
import type { CacheConfig, UpstreamConfig } from '../../src/config/types.js';
import { UpstreamError } from '../../src/errors.js';
import { AnswerCache } from '../../src/resolver/cache.js';
import { Resolver } from '../../src/resolver/resolver.js';
import { UpstreamClient } from '../../src/resolver/upstream.js';
import { readQuery, type Query } from '../../src/wire/read.js';
import { buildQuery, decodeReply, query, sendRaw, tcpSession, type QueryOptions, type Reply } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream, type FakeUpstreamOptions } from '../helpers/fake-upstream.js';

const { Packet } = dns2;
const CACHE: CacheConfig = { maxEntries: 1000, minTtl: 0, maxTtl: 86400, negativeTtl: 300 };
const HTTPS_RDATA = Buffer.from('0001000001000302683200040008c000020ac000020b', 'hex'); // priority 1, target ".", alpn h2, ipv4hint

interface Setup {
  fake: FakeUpstream;
  resolver: Resolver;
  cache: AnswerCache;
  tries: { upstream: string; ok: boolean; err?: Error }[];
  clock: { now: number };
  ask(opts: QueryOptions): Promise<Reply>;
}

function parsed(raw: Buffer): Query {
  const q = readQuery(raw);
  if (typeof q === 'number') throw new Error('bad query');
  return q;
}

async function setup(t: { teardown(fn: () => unknown): void }, fakeOpts: FakeUpstreamOptions = {}, more: { upstreams?: UpstreamConfig[]; cache?: Partial<CacheConfig>; timeoutMs?: number } = {}): Promise<Setup> {
  const fake = await startFakeUpstream({
    zone: {
      'www.example.org A': { answers: [{ type: 'A', data: '192.0.2.10', ttl: 300 }] },
      'www.example.org AAAA': { answers: [{ type: 'AAAA', data: '2001:db8::10', ttl: 300 }] },
      'www.example.org HTTPS': { answers: [{ type: 65, data: HTTPS_RDATA, ttl: 300 }] },
      'www.example.org TXT': { answers: [{ type: 'TXT', data: 'v=spf1 -all', ttl: 300 }] },
      'www.example.org MX': { answers: [{ type: 'MX', data: { priority: 10, exchange: 'mail.example.org' }, ttl: 300 }] },
      'short.example.org A': { answers: [{ type: 'A', data: '192.0.2.11', ttl: 5 }] },
      'long.example.org A': { answers: [{ type: 'A', data: '192.0.2.12', ttl: 100000 }] },
      'zero.example.org A': { answers: [{ type: 'A', data: '192.0.2.13', ttl: 0 }] },
      'nosoa.example.org A': { rcode: 3 },
    },
    ...fakeOpts,
  });
  t.teardown(() => fake.close());
  const tries: Setup['tries'] = [];
  const upstream = new UpstreamClient(more.upstreams ?? [fake.config], {
    timeoutMs: more.timeoutMs ?? 300,
    onTry: (name, ok, _ms, err) => tries.push({ upstream: name, ok, ...(err ? { err } : {}) }),
  });
  t.teardown(() => upstream.close());
  const clock = { now: 1_000_000 };
  const cache = new AnswerCache({ ...CACHE, ...more.cache }, () => clock.now);
  const resolver = new Resolver(cache, upstream);
  const ask = async (opts: QueryOptions): Promise<Reply> => {
    const raw = buildQuery(opts);
    return decodeReply(await resolver.resolve(raw, parsed(raw)));
  };
  return { fake, resolver, cache, tries, clock, ask };
}

t.test('forwards with a fresh random ID and answers with the client ID', async (t) => {
  const s = await setup(t);
  const ids: number[] = [];
  for (const type of ['A', 'AAAA']) {
    const r = await s.ask({ name: 'www.example.org', type, id: 4321 });
    t.equal(r.packet.header.id, 4321);
    ids.push(s.fake.log.at(-1)!.id);
  }
  t.same((await s.ask({ name: 'www.example.org', type: 'A', id: 1 })).answers.map((a) => a.data), ['192.0.2.10']);
  t.ok(ids.some((id) => id !== 4321), 'upstream saw other IDs than the client sent');
  t.equal(s.tries.length, 2);
  t.ok(s.tries.every((x) => x.ok));
});

t.test('HTTPS, TXT and MX pass through byte for byte', async (t) => {
  const s = await setup(t);
  const https = await s.ask({ name: 'www.example.org', type: 65, edns: true });
  t.same(https.answers[0]!.data, HTTPS_RDATA, 'HTTPS rdata identical');
  t.equal(https.answers[0]!.type, 65);
  const txt = await s.ask({ name: 'www.example.org', type: 'TXT' });
  t.same(txt.answers[0]!.data, ['v=spf1 -all']);
  const mx = await s.ask({ name: 'www.example.org', type: 'MX' });
  t.match(mx.packet.answers[0], { priority: 10, exchange: 'mail.example.org' });
});

t.test('spoofed replies are ignored', async (t) => {
  for (const knob of ['wrongId', 'wrongQuestion', 'spoofFromOtherPort'] as const) {
    const s = await setup(t, { [knob]: true });
    const r = await s.ask({ name: 'WWW.example.org', type: 'A' });
    t.same(r.answers.map((a) => a.data), ['192.0.2.10'], `${knob}: the real answer, not 6.6.6.6`);
    t.equal(r.packet.questions[0]!.name, 'WWW.example.org');
  }
});

t.test('TC=1 over UDP is retried over TCP', async (t) => {
  const s = await setup(t, { truncateUdp: true });
  const r = await s.ask({ name: 'www.example.org', type: 'A', id: 77 });
  t.equal(r.packet.header.tc, 0);
  t.equal(r.packet.header.id, 77);
  t.same(r.answers.map((a) => a.data), ['192.0.2.10']);
  t.equal(s.fake.udpQueries, 1);
  t.equal(s.fake.tcpQueries, 1);
  t.not(s.fake.log[1]!.id, s.fake.log[0]!.id, 'a fresh ID for the TCP try too');
});

t.test('a silent upstream times out and the next one answers; all failing rejects', async (t) => {
  const silent = await startFakeUpstream({ silent: true });
  t.teardown(() => silent.close());
  const s = await setup(t);
  const client = new UpstreamClient([silent.config, s.fake.config], { timeoutMs: 150, onTry: (u, ok, _ms, err) => s.tries.push({ upstream: u, ok, ...(err ? { err } : {}) }) });
  t.teardown(() => client.close());
  const raw = buildQuery({ name: 'www.example.org', type: 'A', id: 5 });
  const reply = decodeReply(await client.exchange(raw, parsed(raw)));
  t.same(reply.answers.map((a) => a.data), ['192.0.2.10']);
  t.equal(silent.udpQueries, 1);
  t.match(s.tries, [{ upstream: silent.config.text, ok: false, err: { reason: 'timeout' } }, { upstream: s.fake.config.text, ok: true }]);

  // A closed port answers with ICMP: the connected socket fails fast with a network error.
  const closed = dgram.createSocket('udp4');
  await new Promise<void>((r) => closed.bind(0, '127.0.0.1', () => r()));
  const closedPort = closed.address().port;
  await new Promise<void>((r) => closed.close(() => r()));
  const dead = new UpstreamClient([silent.config, { proto: 'udp', host: '127.0.0.1', port: closedPort, text: 'closed' }], { timeoutMs: 150 });
  t.teardown(() => dead.close());
  const err = await dead.exchange(raw, parsed(raw)).then(() => null, (e: unknown) => e);
  t.ok(err instanceof UpstreamError, 'UpstreamError when every upstream failed');
  t.match(err, { code: /^AF_ERR_UPSTREAM_/, message: /all upstreams failed/ });
});

t.test('SERVFAIL from one upstream moves on; from all, it is passed on', async (t) => {
  const failing = await startFakeUpstream({ rcode: 2 });
  t.teardown(() => failing.close());
  const s = await setup(t);
  const client = new UpstreamClient([failing.config, s.fake.config], { timeoutMs: 300 });
  t.teardown(() => client.close());
  const raw = buildQuery({ name: 'www.example.org', type: 'A', id: 6 });
  t.equal(decodeReply(await client.exchange(raw, parsed(raw))).answers.length, 1);
  const only = new UpstreamClient([failing.config], { timeoutMs: 300 });
  t.teardown(() => only.close());
  const r = decodeReply(await only.exchange(raw, parsed(raw)));
  t.match(r.packet.header, { id: 6, rcode: 2 });
});

t.test('cache hit: synchronous, own ID and question, TTL decremented', async (t) => {
  const s = await setup(t);
  await s.ask({ name: 'www.example.org', type: 'A', edns: true });
  s.clock.now += 10_500;
  const raw = buildQuery({ name: 'WwW.eXample.org', type: 'A', id: 999 });
  const hit = s.resolver.resolve(raw, parsed(raw));
  t.ok(Buffer.isBuffer(hit), 'a Buffer, not a promise');
  const r = decodeReply(hit as Buffer);
  t.equal(r.packet.header.id, 999);
  t.equal(r.packet.questions[0]!.name, 'WwW.eXample.org', 'the client\'s 0x20 case');
  t.equal(r.answers[0]!.ttl, 290);
  t.equal(r.packet.additionals.length, 0, 'no OPT for a client that sent none');
  t.equal(s.fake.udpQueries, 1);
  t.equal(s.cache.hits, 1);
  const withDo = buildQuery({ name: 'www.example.org', type: 'A', dnssecOk: true });
  const miss = s.resolver.resolve(withDo, parsed(withDo));
  t.notOk(Buffer.isBuffer(miss), 'DO=1 is another cache key');
  await miss;
  s.clock.now += 290_000;
  const expired = s.resolver.resolve(raw, parsed(raw));
  t.notOk(Buffer.isBuffer(expired), 'expired → upstream again');
  await expired;
});

t.test('negative caching', async (t) => {
  const s = await setup(t, {}, { cache: { negativeTtl: 60 } });
  const nx = await s.ask({ name: 'missing.example.org', type: 'A' });
  t.equal(nx.rcode, 3);
  t.equal(nx.packet.authorities[0]!.ttl, 60, 'SOA TTL capped at negativeTtl');
  s.clock.now += 59_000;
  const raw = buildQuery({ name: 'missing.example.org', type: 'A' });
  const hit = s.resolver.resolve(raw, parsed(raw));
  t.ok(Buffer.isBuffer(hit), 'NXDOMAIN cached');
  t.equal(decodeReply(hit as Buffer).packet.authorities[0]!.ttl, 1);
  s.clock.now += 2_000;
  const gone = s.resolver.resolve(raw, parsed(raw));
  t.notOk(Buffer.isBuffer(gone), 'gone after negativeTtl');
  await gone;
  await s.ask({ name: 'nosoa.example.org', type: 'A' });
  s.clock.now += 59_000;
  const noSoa = buildQuery({ name: 'nosoa.example.org', type: 'A' });
  t.ok(Buffer.isBuffer(s.resolver.resolve(noSoa, parsed(noSoa))), 'NXDOMAIN without SOA: negativeTtl');
});

t.test('minTtl / maxTtl clamping and TTL 0', async (t) => {
  const s = await setup(t, {}, { cache: { minTtl: 30, maxTtl: 3600 } });
  await s.ask({ name: 'short.example.org', type: 'A' });
  await s.ask({ name: 'long.example.org', type: 'A' });
  await s.ask({ name: 'zero.example.org', type: 'A' });
  s.clock.now += 20_000;
  const short = buildQuery({ name: 'short.example.org', type: 'A' });
  const hit = s.resolver.resolve(short, parsed(short));
  t.ok(Buffer.isBuffer(hit), 'TTL 5 kept for minTtl 30');
  t.equal(decodeReply(hit as Buffer).answers[0]!.ttl, 10);
  const long = buildQuery({ name: 'long.example.org', type: 'A' });
  t.equal(decodeReply(s.resolver.resolve(long, parsed(long)) as Buffer).answers[0]!.ttl, 3580, 'capped at maxTtl');
  const zero = buildQuery({ name: 'zero.example.org', type: 'A' });
  const z = s.resolver.resolve(zero, parsed(zero));
  t.notOk(Buffer.isBuffer(z), 'TTL 0 never cached');
  await z;
  s.clock.now += 3_600_000;
  const again = s.resolver.resolve(long, parsed(long));
  t.notOk(Buffer.isBuffer(again), 'expired at maxTtl');
  await again;
  t.ok(s.cache.size >= 1);
});

t.test('concurrent misses share one upstream exchange', async (t) => {
  const s = await setup(t, { delayMs: 50 });
  const variants: QueryOptions[] = [
    { name: 'www.example.org', type: 'A', id: 1, edns: true },
    { name: 'WWW.EXAMPLE.ORG', type: 'A', id: 2 },
    { name: 'www.Example.org', type: 'A', id: 3, edns: true, recursionDesired: false },
  ];
  const replies = await Promise.all(variants.map((v) => s.ask(v)));
  t.equal(s.fake.udpQueries, 1, 'one upstream query');
  replies.forEach((r, i) => {
    const v = variants[i]!;
    t.equal(r.packet.header.id, v.id);
    t.equal(r.packet.questions[0]!.name, v.name);
    t.equal(r.packet.header.rd, v.recursionDesired === false ? 0 : 1);
    t.equal(r.packet.additionals.length, v.edns ? 1 : 0, 'OPT iff asked');
    t.same(r.answers.map((a) => a.data), ['192.0.2.10']);
  });
});

t.test('DoH upstream (POST, ID 0)', async (t) => {
  const seen: { id: number; type: string | undefined }[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const request = Packet.parse(Buffer.concat(chunks));
      seen.push({ id: request.header.id, type: req.headers['content-type'] });
      const reply = Packet.createResponseFromRequest(request);
      reply.answers.push({ name: request.questions[0]!.name, type: 1, class: 1, ttl: 60, address: '192.0.2.99' } as never);
      res.writeHead(200, { 'content-type': 'application/dns-message' }).end(reply.toBuffer());
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const client = new UpstreamClient([{ proto: 'https', host: '127.0.0.1', port, url: `http://127.0.0.1:${port}/dns-query`, text: 'doh' }], { timeoutMs: 1000 });
  const raw = buildQuery({ name: 'doh.example.org', type: 'A', id: 31337 });
  const r = decodeReply(await client.exchange(raw, parsed(raw)));
  t.equal(r.packet.header.id, 31337);
  t.same(r.answers.map((a) => a.data), ['192.0.2.99']);
  t.same(seen, [{ id: 0, type: 'application/dns-message' }]);
});

t.test('close() rejects queries in flight', async (t) => {
  const silent = await startFakeUpstream({ silent: true });
  t.teardown(() => silent.close());
  const client = new UpstreamClient([silent.config], { timeoutMs: 5000 });
  const raw = buildQuery({ name: 'www.example.org', type: 'A' });
  const pending = client.exchange(raw, parsed(raw));
  setTimeout(() => client.close(), 20);
  await t.rejects(pending, UpstreamError);
});

t.test('test helpers: dns-client against the fake upstream (UDP from a chosen source, TCP pipelining)', async (t) => {
  const s = await setup(t);
  const r = await query({ server: s.fake, name: 'www.example.org', type: 'A', proto: 'udp', localAddress: '127.0.10.5', edns: true });
  t.same(r.answers, [{ name: 'www.example.org', type: 1, ttl: 300, data: '192.0.2.10' }]);
  const overTcp = await query({ server: s.fake, name: 'missing.example.org', type: 'AAAA', proto: 'tcp' });
  t.equal(overTcp.rcode, 3);
  const session = tcpSession(s.fake, '127.0.10.6');
  t.teardown(() => session.close());
  session.writeQuery({ name: 'www.example.org', type: 'A', id: 1 });
  session.writeQuery({ name: 'www.example.org', type: 'AAAA', id: 2 });
  const ids = [await session.read(), await session.read()].map((b) => b!.readUInt16BE(0)).sort();
  t.same(ids, [1, 2]);
  t.equal(await sendRaw(s.fake, Buffer.from('junk'), 'udp', undefined, 100), null, 'no reply → null');
});
