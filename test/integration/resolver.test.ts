import t from 'tap';
import dgram from 'node:dgram';
import { createServer } from 'node:http';
import dns2 from 'dns2';
import type { CacheConfig, UpstreamConfig } from '../../src/config/types.js';
import { UpstreamError } from '../../src/errors.js';
import { AnswerCache } from '../../src/resolver/cache.js';
import { CachingResolver as Resolver } from '../../src/resolver/resolver.js';
import { UpstreamClient } from '../../src/resolver/upstream.js';
import { readQuery, type Query } from '../../src/wire/read.js';
import { buildQuery, decodeReply, query, sendRaw, tcpSession, type DnsPacket, type QueryOptions, type Reply } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream, type FakeUpstreamOptions } from '../helpers/fake-upstream.js';
import { truncateForUdp } from '../../src/wire/write.js';

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
    t.same(r.answers.map((a) => a.data), ['192.0.2.10'], `${knob}: the real answer, not 203.0.113.66`);
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
  t.equal((await s.ask({ name: 'nosoa.example.org', type: 'A' })).rcode, 3, 'NXDOMAIN without SOA passed on');
  const noSoa = buildQuery({ name: 'nosoa.example.org', type: 'A' });
  const again = s.resolver.resolve(noSoa, parsed(noSoa));
  t.notOk(Buffer.isBuffer(again), 'NXDOMAIN without SOA is not cached (RFC 2308 §5)');
  await again;
  s.fake.opts.zone['nodata.example.org AAAA'] = {};
  t.equal((await s.ask({ name: 'nodata.example.org', type: 'AAAA' })).answers.length, 0);
  const noData = buildQuery({ name: 'nodata.example.org', type: 'AAAA' });
  const noDataAgain = s.resolver.resolve(noData, parsed(noData));
  t.notOk(Buffer.isBuffer(noDataAgain), 'NODATA without SOA is not cached');
  await noDataAgain;
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

const REFERRAL = { authorities: [{ name: 'org', type: 'NS', ttl: 172800, data: 'a0.org-servers.example' }] };
const CD = 0x10;

/** The client's query with extra bits set in header byte 3 (CD 0x10, AD 0x20). */
type Header = DnsPacket['header'] & { cd?: number; ad?: number };
const flagsOf = (r: Reply): Header => r.packet.header as Header;

function withFlags(raw: Buffer, byte3: number): Buffer {
  const out = Buffer.from(raw);
  out[3] = out[3]! | byte3;
  return out;
}

function ask(s: Setup, raw: Buffer): Promise<Reply> {
  return Promise.resolve(s.resolver.resolve(raw, parsed(raw))).then(decodeReply);
}

/** Header fields and the OPT (offset past the question, assuming no other records) of a query upstream saw. */
function sentUpstream(raw: Buffer): { flags: number; counts: number[]; opt: { size: number; ttl: number; rdata: Buffer } | null } {
  const q = parsed(raw);
  const counts = [4, 6, 8, 10].map((o) => raw.readUInt16BE(o));
  const at = q.questionEnd;
  const opt = q.hasOpt ? { size: raw.readUInt16BE(at + 3), ttl: raw.readUInt32BE(at + 5), rdata: raw.subarray(at + 11, at + 11 + raw.readUInt16BE(at + 9)) } : null;
  return { flags: raw.readUInt16BE(2), counts, opt };
}

t.test('RD=0 from a client: upstream still gets RD=1, the shared cache gets no referral', async (t) => {
  // An upstream that answers RD=0 with a referral (as an authoritative-capable server does).
  const s = await setup(t, { respond: (req) => (req.header.rd ? undefined : REFERRAL) });
  const norec = await s.ask({ name: 'www.example.org', type: 'A', recursionDesired: false, id: 11 });
  t.same(norec.answers.map((a) => a.data), ['192.0.2.10'], 'a real answer for dig +norec');
  t.match(norec.packet.header, { id: 11, rd: 0 }, 'the client\'s own RD in the reply');
  t.equal(s.fake.log.at(-1)!.raw[2]! & 1, 1, 'RD=1 upstream');
  const rec = await s.ask({ name: 'www.example.org', type: 'A' });
  t.same(rec.answers.map((a) => a.data), ['192.0.2.10'], 'everyone else gets the answer, not a cached NODATA');
});

t.test('a referral is a failed try: next upstream, else SERVFAIL; never cached', async (t) => {
  const referrer = await startFakeUpstream({ respond: () => REFERRAL });
  t.teardown(() => referrer.close());
  const s = await setup(t, {}, { cache: { negativeTtl: 3600 } });
  const raw = buildQuery({ name: 'www.example.org', type: 'A', id: 7 });
  const tries: { upstream: string; ok: boolean; err?: Error }[] = [];
  const both = new UpstreamClient([referrer.config, s.fake.config], { timeoutMs: 300, onTry: (u, ok, _ms, err) => tries.push({ upstream: u, ok, ...(err ? { err } : {}) }) });
  t.teardown(() => both.close());
  t.same(decodeReply(await both.exchange(raw, parsed(raw))).answers.map((a) => a.data), ['192.0.2.10']);
  t.match(tries, [{ upstream: referrer.config.text, ok: false, err: { message: /referral/ } }, { ok: true }]);

  const only = new UpstreamClient([referrer.config], { timeoutMs: 300 });
  t.teardown(() => only.close());
  const cache = new AnswerCache({ ...CACHE, negativeTtl: 3600 });
  const resolver = new Resolver(cache, only);
  await t.rejects(Promise.resolve(resolver.resolve(raw, parsed(raw))), UpstreamError, 'no upstream recursed: SERVFAIL');
  t.equal(cache.size, 0, 'nothing cached');
  t.equal(referrer.udpQueries, 2);
});

t.test('CD=1 answers never reach CD=0 clients (cache and coalescing)', async (t) => {
  // CD=1 stands for "skip validation": the upstream then returns data a validating answer would not.
  const s = await setup(t, { delayMs: 30, respond: (req) => ((req.header as Header).cd ? { answers: [{ type: 'A', data: '203.0.113.66' }] } : undefined) });
  const plain = buildQuery({ name: 'www.example.org', type: 'A', id: 1 });
  const cd = withFlags(buildQuery({ name: 'www.example.org', type: 'A', id: 2 }), CD);
  const [a, b] = await Promise.all([ask(s, cd), ask(s, plain)]);
  t.equal(s.fake.udpQueries, 2, 'CD=1 and CD=0 are not coalesced');
  t.same(a.answers.map((x) => x.data), ['203.0.113.66']);
  t.equal(flagsOf(a).cd, 1, 'CD echoed');
  t.same(b.answers.map((x) => x.data), ['192.0.2.10']);
  t.equal(flagsOf(b).cd, 0);
  t.ok(s.fake.log.some((l) => (l.raw[3]! & CD) !== 0), 'CD passed upstream');

  const s2 = await setup(t, { respond: (req) => ((req.header as Header).cd ? { answers: [{ type: 'A', data: '203.0.113.66' }] } : undefined) });
  await ask(s2, cd);
  const miss = s2.resolver.resolve(plain, parsed(plain));
  t.notOk(Buffer.isBuffer(miss), 'a CD=1 entry is no hit for CD=0');
  t.same(decodeReply(await miss).answers.map((x) => x.data), ['192.0.2.10']);
  const hit = s2.resolver.resolve(cd, parsed(cd));
  t.ok(Buffer.isBuffer(hit), 'CD=1 hits its own entry');
});

t.test('a label holding a literal "." shares no cache entry or exchange with the dotted name', async (t) => {
  // The single label "wwx.victim" under "test" decodes to the same qname as wwx.victim.test.
  const dotted = (id: number): Buffer => Buffer.concat([
    Buffer.from([id >> 8, id & 0xff, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
    Buffer.from([10]), Buffer.from('wwx.victim'), Buffer.from([4]), Buffer.from('test'), Buffer.from([0, 0, 1, 0, 1]),
  ]);
  // dns2 would re-encode the odd label as two, so replies are built by hand: header + question as asked + one A.
  const rawReply = (raw: Buffer): Buffer => {
    const q = parsed(raw);
    const addr = raw[12] === 10 ? [203, 0, 113, 66] : [192, 0, 2, 20];
    const out = Buffer.concat([raw.subarray(0, q.questionEnd), Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, ...addr])]);
    out.writeUInt16BE(0x8180, 2);
    out.writeUInt32BE(0x00010001, 4); // qdcount 1, ancount 1
    out.writeUInt32BE(0, 8); // nscount, arcount
    return out;
  };
  const s = await setup(t, { rawReply });
  const evil = dotted(5);
  t.equal(parsed(evil).qname, 'wwx.victim.test', 'same qname string, for policy');
  t.same((await ask(s, evil)).answers.map((a) => a.data), ['203.0.113.66']);
  const victim = buildQuery({ name: 'wwx.victim.test', type: 'A' });
  const first = s.resolver.resolve(victim, parsed(victim));
  t.notOk(Buffer.isBuffer(first), 'the odd name filled no cache entry');
  t.same(decodeReply(await first).answers.map((a) => a.data), ['192.0.2.20']);
  const again = s.resolver.resolve(evil, parsed(evil));
  t.notOk(Buffer.isBuffer(again), 'nor does it read one');
  t.same(decodeReply(await again).answers.map((a) => a.data), ['203.0.113.66']);

  const slow = await setup(t, { rawReply, delayMs: 30 });
  const [x, y] = await Promise.all([ask(slow, dotted(6)), ask(slow, buildQuery({ name: 'wwx.victim.test', type: 'A' }))]);
  t.equal(slow.fake.udpQueries, 2, 'not coalesced');
  t.same([x.answers[0]!.data, y.answers[0]!.data], ['203.0.113.66', '192.0.2.20']);
});

t.test('upstream gets our own OPT, never the client\'s options or records', async (t) => {
  const s = await setup(t);
  // Client OPT: UDP 4096, DO, COOKIE (client cookie 8 bytes) and ECS 192.0.2.0/24.
  const cookie = Buffer.from('000a0008a1a2a3a4a5a6a7a8', 'hex');
  const ecs = Buffer.from('000800070001180000c00002', 'hex').subarray(0, 11);
  const base = buildQuery({ name: 'www.example.org', type: 'A', dnssecOk: true, id: 21 });
  const withOptions = Buffer.concat([base, cookie, ecs]);
  withOptions.writeUInt16BE(4096, base.length - 8);
  withOptions.writeUInt16BE(cookie.length + ecs.length, base.length - 2);
  t.equal(parsed(withOptions).hasOpt, true);
  const r = await ask(s, withOptions);
  t.same(r.answers.map((a) => a.data), ['192.0.2.10']);
  t.match(sentUpstream(s.fake.log.at(-1)!.raw), { counts: [1, 0, 0, 1], opt: { size: 1232, ttl: 0x8000, rdata: Buffer.alloc(0) } },
    'bare OPT, our size, client DO');
  const opt = r.packet.additionals.find((x) => x.type === 41);
  t.match(opt, { class: 1232, doFlag: true });

  // No OPT and a stray answer record in the query: upstream still sees header + question + our OPT.
  const plain = buildQuery({ name: 'www.example.org', type: 'AAAA', id: 22 });
  const stray = Buffer.concat([plain, Buffer.from('c00c000100010000003c0004c0000201', 'hex')]);
  stray.writeUInt16BE(1, 6);
  t.equal(parsed(stray).hasOpt, false);
  const r2 = await ask(s, stray);
  t.equal(r2.packet.additionals.length, 0, 'no OPT for a client that sent none');
  t.equal(r2.packet.header.ancount, 1);
  t.match(sentUpstream(s.fake.log.at(-1)!.raw), { flags: 0x0120, counts: [1, 0, 0, 1], opt: { size: 1232, ttl: 0, rdata: Buffer.alloc(0) } });
});

t.test('a query with OPT always gets one: cache filled without EDNS, upstream ignoring EDNS, truncation', async (t) => {
  const s = await setup(t);
  await s.ask({ name: 'www.example.org', type: 'A' });
  const raw = buildQuery({ name: 'www.example.org', type: 'A', edns: true });
  const hit = s.resolver.resolve(raw, parsed(raw));
  t.ok(Buffer.isBuffer(hit));
  t.match(decodeReply(hit as Buffer).packet.additionals, [{ type: 41, class: 1232 }], 'OPT from a cache a non-EDNS client filled');

  const old = await setup(t, { ignoreEdns: true });
  const answers = Array.from({ length: 40 }, (_, i) => ({ type: 'TXT', data: `record ${i} `.repeat(4) }));
  old.fake.opts.zone['big.example.org TXT'] = { answers };
  for (const dnssecOk of [false, true]) {
    const q = buildQuery({ name: 'www.example.org', type: 'A', edns: true, dnssecOk });
    const r = await ask(old, q);
    t.same(r.answers.map((a) => a.data), ['192.0.2.10']);
    t.match(r.packet.additionals, [{ type: 41, class: 1232, doFlag: dnssecOk }], `OPT added, DO=${String(dnssecOk)}`);
    t.equal(r.packet.header.arcount, 1);
  }
  t.equal((await old.ask({ name: 'www.example.org', type: 'A' })).packet.header.arcount, 0, 'none for a client without OPT');
  const big = buildQuery({ name: 'big.example.org', type: 'TXT', edns: true });
  const full = await old.resolver.resolve(big, parsed(big));
  t.equal(decodeReply(full).answers.length, 40);
  const cut = truncateForUdp(full, 512);
  t.match(decodeReply(cut).packet.header, { tc: 1, ancount: 0, arcount: 1 }, 'truncation keeps the added OPT');
});

t.test('coalesced and cached variants (OPT, DO, CD, AD, case, RD) each get their own bytes', async (t) => {
  const s = await setup(t, { delayMs: 40, respond: (req) => (req.questions[0]!.type === 1 ? { ad: true, answers: [{ type: 'A', data: '192.0.2.10' }] } : undefined) });
  const variants: { raw: Buffer; edns: boolean; dnssecOk: boolean; cd: boolean; ad: boolean; name: string; rd: boolean }[] = [];
  const add = (opts: Omit<QueryOptions, 'type'>, cd: boolean, ad: boolean): void => {
    const raw = withFlags(buildQuery({ ...opts, type: 'A', id: variants.length + 1 }), (cd ? CD : 0) | (ad ? 0x20 : 0));
    variants.push({ raw, edns: !!(opts.edns || opts.dnssecOk), dnssecOk: !!opts.dnssecOk, cd, ad, name: opts.name, rd: opts.recursionDesired !== false });
  };
  add({ name: 'www.example.org' }, false, false);
  add({ name: 'WWW.example.ORG', edns: true }, false, true);
  add({ name: 'www.EXAMPLE.org', dnssecOk: true, recursionDesired: false }, false, false);
  add({ name: 'Www.example.org', edns: true }, true, false);
  add({ name: 'www.example.org', dnssecOk: true }, true, true);
  const check = (replies: Reply[], what: string): void => replies.forEach((r, i) => {
    const v = variants[i]!;
    const label = `${what} #${i + 1}`;
    t.match(r.packet.header, { id: i + 1, rd: v.rd ? 1 : 0, cd: v.cd ? 1 : 0, ad: v.ad || v.dnssecOk ? 1 : 0 }, `${label}: header`);
    t.equal(r.packet.questions[0]!.name, v.name, `${label}: question case`);
    const opt = r.packet.additionals.filter((x) => x.type === 41);
    t.equal(opt.length, v.edns ? 1 : 0, `${label}: OPT iff asked`);
    if (v.edns) t.equal(opt[0]!.doFlag, v.dnssecOk, `${label}: DO`);
    t.same(r.answers.map((a) => a.data), ['192.0.2.10']);
  });
  check(await Promise.all(variants.map((v) => ask(s, v.raw))), 'coalesced');
  t.equal(s.fake.udpQueries, 4, 'one exchange per key: DO×CD');
  const hits = variants.map((v) => s.resolver.resolve(v.raw, parsed(v.raw)));
  t.ok(hits.every((h) => Buffer.isBuffer(h)), 'all cached');
  check(hits.map((h) => decodeReply(h as Buffer)), 'cached');
});
