/**
 * Hostile load over UDP (issue 14, findings 1-3), on loopback through the real server: answers are
 * capped at dns.maxUdpSize whatever the client's EDNS size (dig +bufsize=4096 and raw bytes), a
 * flooding /24 is rate limited while a quiet one is not, and the kernel's receive-queue drops on our
 * socket are counted.
 */
import t from 'tap';
import { scrape } from '../helpers/metrics.js';
import dgram from 'node:dgram';
import { execFile } from 'node:child_process';
import dns2 from 'dns2';
import { buildQuery, decodeReply, query, sendRaw, type DnsPacket } from '../helpers/dns-client.js';
import { largeTxt, startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startServer, type Started } from '../helpers/start-server.js';

const { Packet } = dns2;
const TC = 0x0200;
const FLOOD_NET = '127.0.30';
const QUIET = '127.0.10.5';

function dig(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('dig', args, { timeout: 10_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
}

/** A query with an OPT advertising `size` (dns2's builder caps nothing; the server must). */
function ednsQuery(name: string, type: number, size: number): Buffer {
  const p = new Packet();
  p.header.id = 4242;
  p.header.rd = 1;
  p.questions.push({ name, type, class: 1 } as DnsPacket['questions'][number]);
  p.additionals.push(Packet.Resource.EDNS([], { udpPayloadSize: size }));
  return p.toBuffer();
}

/** The OPT's payload-size field (its CLASS) in a reply, via dns2's decoder; undefined when there is no OPT. */
function advertised(raw: Buffer): number | undefined {
  const opt = decodeReply(raw).packet.additionals.find((r) => r.type === 41);
  return opt === undefined ? undefined : (opt as unknown as { class: number }).class;
}

let up: FakeUpstream;
t.before(async () => {
  up = await startFakeUpstream({
    truncateUdp: true, // every answer needs TCP upstream: the large one only fits there
    zone: {
      'big.example.org TXT': largeTxt(4000),
      'www.example.org A': { answers: [{ type: 'A', data: '192.0.2.10', ttl: 300 }] },
    },
  });
});
t.teardown(() => up.close());

const config = (extra = ''): string => `
dns:
  listen: ["127.0.0.1:0"]
  upstreams: ["${up.config.text}"]${extra}
admin: { listen: "127.0.0.1:0" }
`;

async function server(t: { teardown(fn: () => unknown): void }, extra = ''): Promise<Started> {
  const s = await startServer(config(extra));
  t.teardown(() => s.close());
  return s;
}

t.test('finding 1: a 4 KB answer over UDP is TC=1 within 1232 bytes whatever the client asks; TCP gets it whole', async (t) => {
  const s = await server(t);
  const out = await dig(['@127.0.0.1', '-p', String(s.port), '+bufsize=4096', '+ignore', '+notcp', '+tries=1', 'big.example.org', 'TXT']);
  t.match(out, /;; flags: qr tc rd ra;/, 'dig sees TC=1');
  t.match(out, /; EDNS: version: 0, flags:; udp: 1232/, 'our OPT advertises 1232');
  const rcvd = Number(/MSG SIZE\s+rcvd: (\d+)/.exec(out)?.[1]);
  t.ok(rcvd > 0 && rcvd <= 1232, `dig received ${rcvd} bytes`);

  const raw = await sendRaw(s.server, ednsQuery('big.example.org', 16, 65535), 'udp');
  t.ok(raw !== null && raw.length <= 1232, `EDNS 65535 → ${raw?.length} bytes`);
  t.equal(raw!.readUInt16BE(2) & TC, TC, 'TC=1');
  t.equal(raw!.readUInt16BE(6), 0, 'no partial answer section');
  t.equal(advertised(raw!), 1232);

  const full = await dig(['@127.0.0.1', '-p', String(s.port), '+tcp', '+tries=1', 'big.example.org', 'TXT']);
  t.ok(Number(/MSG SIZE\s+rcvd: (\d+)/.exec(full)?.[1]) > 4000, 'over TCP the whole answer');
  t.match(full, /"0019x{196}"/, 'the last string is there');
});

t.test('finding 1: dns.maxUdpSize: 1400 is the cap and what our OPT advertises, on every kind of answer', async (t) => {
  const s = await server(t, '\n  maxUdpSize: 1400');
  const big = await sendRaw(s.server, ednsQuery('big.example.org', 16, 4096), 'udp');
  t.ok(big !== null && big.length <= 1400 && (big.readUInt16BE(2) & TC) === TC);
  t.equal(advertised(big!), 1400);
  const small = await sendRaw(s.server, ednsQuery('www.example.org', 1, 4096), 'udp');
  t.equal(advertised(small!), 1400, 'a forwarded answer');
  t.equal(decodeReply(small!).answers[0]?.data, '192.0.2.10');
  const nx = await sendRaw(s.server, ednsQuery('nothing.example.org', 1, 4096), 'udp');
  t.equal(advertised(nx!), 1400, 'a negative one');
  const tcp = await sendRaw(s.server, ednsQuery('big.example.org', 16, 4096), 'tcp');
  t.ok(tcp!.length > 4000, 'TCP is not capped');
});

/** Sends `count` queries for a cached name from each of `sources`, as fast as the socket takes them; counts what comes back. */
async function flood(port: number, sources: string[], count: number): Promise<{ full: number; truncated: number }> {
  const got = { full: 0, truncated: 0 };
  const sockets = await Promise.all(sources.map((address) => new Promise<dgram.Socket>((resolve) => {
    // big enough for every reply: a loss here would be ours, not the server's
    const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
    sock.on('message', (msg) => {
      if ((msg.readUInt16BE(2) & TC) !== 0) got.truncated++;
      else got.full++;
    });
    sock.bind(0, address, () => resolve(sock));
  })));
  const q = buildQuery({ name: 'www.example.org', type: 'A' });
  let last = performance.now();
  for (const sock of sockets) sock.on('message', () => (last = performance.now()));
  for (let i = 0; i < count; i++) for (const sock of sockets) sock.send(q, port, '127.0.0.1');
  last = performance.now();
  // until every answer is in or none came for a second (a loaded machine is slow to get through them), at most 8 s
  const started = performance.now();
  const all = sources.length * count;
  while (got.full + got.truncated < all && performance.now() - last < 1000 && performance.now() - started < 8000) {
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const sock of sockets) sock.close();
  return got;
}

t.test('finding 2: a flooding /24 is held to dns.rateLimit, every 2nd excess answer TC=1; a quiet /24 and TCP are untouched', async (t) => {
  const s = await server(t, '\n  rateLimit: { responsesPerSecond: 100, slip: 2 }');
  await query({ server: s.server, proto: 'udp', name: 'www.example.org', type: 'A' }); // cached from now on
  const sources = Array.from({ length: 8 }, (_, i) => `${FLOOD_NET}.${i + 1}`);
  const quiet: Promise<number>[] = [];
  const flooding = flood(s.port, sources, 250); // 2000 queries from one /24, well under a second
  for (let i = 0; i < 20; i++) {
    quiet.push(query({ server: s.server, proto: 'udp', name: 'www.example.org', type: 'A', localAddress: QUIET }).then((r) => r.answers.length));
  }
  const got = await flooding;
  const quietAnswers = await Promise.all(quiet);
  t.same(quietAnswers, Array(20).fill(1), 'the quiet /24 got all 20 answers, with data');
  // one second's burst (100) plus what refills while the flood lasts; half of the rest come back as TC=1
  t.ok(got.full >= 100 && got.full < 400, `${got.full} full answers of 2000`);
  const stats = await s.runtime.udpStats();
  t.equal(stats.rateLimitSlipped, got.truncated, `${got.truncated} TC=1 answers, each counted`);
  t.ok(Math.abs(stats.rateLimitDropped - stats.rateLimitSlipped) <= 1, `as many dropped (${stats.rateLimitDropped}): slip 2`);
  t.ok(got.full + stats.rateLimitSlipped + stats.rateLimitDropped > 1500, 'the limiter saw (nearly) the whole flood');
  const m = await scrape(s.runtime.adminPort);
  t.equal(m.value('appfence_rate_limit_responses_total', { action: 'slipped' }), stats.rateLimitSlipped, '/metrics: slips');
  t.equal(m.value('appfence_rate_limit_responses_total', { action: 'dropped' }), stats.rateLimitDropped, '/metrics: drops');
  const bare = await sendRaw(s.server, buildQuery({ name: 'www.example.org', type: 'A' }), 'udp', `${FLOOD_NET}.77`);
  if (bare !== null && (bare.readUInt16BE(2) & TC) !== 0) {
    t.equal(bare.readUInt16BE(6) + bare.readUInt16BE(8) + bare.readUInt16BE(10), 0, 'a slip is header and question only');
  }
  const viaTcp = await query({ server: s.server, proto: 'tcp', name: 'www.example.org', type: 'A', localAddress: `${FLOOD_NET}.1` });
  t.equal(viaTcp.answers[0]?.data, '192.0.2.10', 'the flooded /24 still gets its answer over TCP');
});

t.test('finding 2: by default (1000/s per /24) a burst of 500 from one /24 is all answered', async (t) => {
  const s = await server(t);
  await query({ server: s.server, proto: 'udp', name: 'www.example.org', type: 'A' });
  const got = await flood(s.port, [`${FLOOD_NET}.9`], 500);
  const stats = await s.runtime.udpStats();
  t.match(stats, { rateLimitDropped: 0, rateLimitSlipped: 0 }, 'the limiter let every answer through');
  t.equal(got.truncated, 0);
  t.ok(got.full > 400, `${got.full} answers came back (a loaded machine may lose a few in the kernel, not the limiter)`);
});

t.test('finding 3: 4 MiB socket buffers by default; the kernel\'s receive-queue drops on our socket are counted', async (t) => {
  const s = await server(t, '\n  rateLimit: { responsesPerSecond: 0 }\n  udpBufferBytes: 65536');
  const before = await s.runtime.udpStats();
  t.equal(before.kernelReceiveDrops, 0, 'read from /proc/net/udp for our socket: none yet');
  // the server runs in this process: while this loop holds the event loop nothing reads its socket
  const sender = dgram.createSocket('udp4');
  await new Promise<void>((r) => sender.bind(0, '127.0.0.1', () => r()));
  let answered = 0;
  sender.on('message', () => answered++);
  const q = buildQuery({ name: 'www.example.org', type: 'A' });
  for (let i = 0; i < 3000; i++) sender.send(q, s.port, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 1000));
  sender.close();
  const after = await s.runtime.udpStats();
  t.ok(after.kernelReceiveDrops !== null && after.kernelReceiveDrops > 0, `${after.kernelReceiveDrops} drops counted`);
  t.ok(answered < 3000, `${answered} of 3000 answered`);
  t.ok(after.kernelReceiveDrops! >= 3000 - answered - 50, 'the drops account for the missing answers');
  const scraped = (await scrape(s.runtime.adminPort)).value('appfence_udp_receive_drops_total') ?? -1;
  t.ok(scraped >= after.kernelReceiveDrops!, `/metrics: ${scraped} kernel drops`);

  const d = await server(t);
  const ss = await new Promise<string>((resolve, reject) => execFile('ss', ['-u', '-a', '-n', '-m', `sport = :${d.port}`],
    (err, stdout) => (err ? reject(err) : resolve(stdout))));
  const rb = Number(/rb(\d+)/.exec(ss)?.[1]);
  t.ok(rb >= 4 * 1024 * 1024, `ss shows a receive buffer of ${rb} bytes`);
});
