import t from 'tap';
import dns2 from 'dns2';
import { readQuery, ParseFailure, type Query } from '../../src/wire/read.js';
import { errorReply, truncateForUdp, upstreamQuery, RCODE } from '../../src/wire/write.js';
import { Sinkhole } from '../../src/wire/sinkhole.js';
import { isReferral, readAnswer } from '../../src/wire/answer.js';
import type { BlockMode } from '../../src/config/types.js';
import { buildQuery, type DnsPacket } from '../helpers/dns-client.js';
import { nameToWire } from '../helpers/fake-upstream.js';

const { Packet } = dns2;
type Resource = DnsPacket['answers'][number];

function parsed(buf: Buffer): Query {
  const q = readQuery(buf);
  if (typeof q === 'number') throw new Error(`readQuery failed with ${q}`);
  return q;
}

/** Builds a response with dns2 (independent encoder); records are plain objects. */
function response(opts: { name: string; type: number; rcode?: number; answers?: object[]; authorities?: object[]; edns?: boolean; tc?: boolean }): Buffer {
  const p = new Packet();
  p.header.id = 4242;
  p.header.qr = 1;
  p.header.rd = 1;
  p.header.ra = 1;
  p.header.rcode = opts.rcode ?? 0;
  p.header.tc = opts.tc ? 1 : 0;
  p.questions.push({ name: opts.name, type: opts.type, class: 1 } as DnsPacket['questions'][number]);
  p.answers = (opts.answers ?? []).map((r) => ({ class: 1, ...r }) as Resource);
  p.authorities = (opts.authorities ?? []).map((r) => ({ class: 1, ...r }) as Resource);
  if (opts.edns) p.additionals.push(Packet.Resource.EDNS([], { udpPayloadSize: 1232 }));
  return p.toBuffer();
}

const SOA = { serial: 1, refresh: 3600, retry: 600, expiration: 86400 };

t.test('readQuery reads good queries', async (t) => {
  const raw = buildQuery({ name: 'WwW.TikTok.COM', type: 'AAAA', id: 0xbeef });
  const q = parsed(raw);
  t.match(q, { id: 0xbeef, qname: 'www.tiktok.com', qtype: 28, qclass: 1, hasOpt: false, udpSize: 512, dnssecOk: false });
  t.equal(q.questionEnd, raw.length);
  t.equal(q.flags & 0x0100, 0x0100, 'RD as sent');
  t.equal(parsed(buildQuery({ name: 'example.org.', type: 'A' })).qname, 'example.org', 'trailing dot');
  t.equal(parsed(buildQuery({ name: '', type: 'NS' })).qname, '', 'root');
  const edns = parsed(buildQuery({ name: 'a.example', type: 65, edns: true }));
  t.match(edns, { hasOpt: true, udpSize: 1232, dnssecOk: false, qtype: 65 });
  t.equal(parsed(buildQuery({ name: 'a.example', type: 'A', dnssecOk: true })).dnssecOk, true);
  // An OPT asking for less than 512 still gets 512 (RFC 6891 §6.2.5).
  const small = buildQuery({ name: 'a.example', type: 'A', edns: true });
  small.writeUInt16BE(100, small.length - 8);
  t.equal(parsed(small).udpSize, 512);
});

t.test('readQuery failure classes', async (t) => {
  const good = buildQuery({ name: 'www.example.org', type: 'A', edns: true });
  const mutate = (fn: (b: Buffer) => unknown): Buffer => {
    const b = Buffer.from(good);
    fn(b);
    return b;
  };
  t.equal(readQuery(good.subarray(0, 11)), ParseFailure.Drop, 'short');
  t.equal(readQuery(mutate((b) => (b[2]! |= 0x80))), ParseFailure.Drop, 'QR=1: never answer responses');
  t.equal(readQuery(mutate((b) => (b[2] = (b[2]! & 0x87) | (2 << 3)))), ParseFailure.NotImp, 'opcode STATUS');
  t.equal(readQuery(mutate((b) => b.writeUInt16BE(0, 4))), ParseFailure.FormErr, 'qdcount 0');
  t.equal(readQuery(mutate((b) => b.writeUInt16BE(2, 4))), ParseFailure.FormErr, 'qdcount 2');
  t.equal(readQuery(good.subarray(0, 20)), ParseFailure.FormErr, 'truncated name');
  const noOpt = buildQuery({ name: 'www.example.org', type: 'A' });
  t.equal(readQuery(noOpt.subarray(0, noOpt.length - 2)), ParseFailure.FormErr, 'truncated type/class');
  t.equal(readQuery(good.subarray(0, good.length - 3)), ParseFailure.FormErr, 'truncated OPT');
  t.equal(readQuery(mutate((b) => b.writeUInt16BE(2, 10))), ParseFailure.FormErr, 'arcount beyond the data');
  const pointer = Buffer.concat([good.subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]);
  t.equal(readQuery(pointer), ParseFailure.FormErr, 'pointer (loop) in the question');
  const longLabel = Buffer.concat([good.subarray(0, 12), Buffer.from([64]), Buffer.alloc(64, 0x61), Buffer.from([0, 0, 1, 0, 1])]);
  t.equal(readQuery(longLabel), ParseFailure.FormErr, 'label > 63');
  const labels = Buffer.concat(Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([60]), Buffer.alloc(60, 0x61)])));
  const longName = Buffer.concat([good.subarray(0, 12), labels, Buffer.from([0, 0, 1, 0, 1])]);
  longName.writeUInt16BE(0, 10);
  t.equal(readQuery(longName), ParseFailure.FormErr, 'name > 255 octets');
  const twoOpts = Buffer.concat([good, good.subarray(good.length - 11)]);
  twoOpts.writeUInt16BE(2, 10);
  t.equal(readQuery(twoOpts), ParseFailure.FormErr, 'two OPT records');
  const ownedOpt = Buffer.concat([good.subarray(0, good.length - 11), Buffer.from([1, 0x61, 0]), good.subarray(good.length - 10)]);
  t.equal(readQuery(ownedOpt), ParseFailure.FormErr, 'OPT with a non-root owner');
});

t.test('random and mutated input never throws', async (t) => {
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const seeds = [
    buildQuery({ name: 'www.example.org', type: 'A', edns: true, dnssecOk: true }),
    response({ name: 'a.example', type: 1, answers: [{ name: 'a.example', type: 5, ttl: 60, domain: 'b.example' }, { name: 'b.example', type: 1, ttl: 30, address: '192.0.2.1' }], edns: true }),
    response({ name: 'x.example', type: 28, rcode: 3, authorities: [{ name: 'example', type: 6, ttl: 900, primary: 'ns.example', admin: 'h.example', minimum: 60, ...SOA }] }),
  ];
  const sinkhole = new Sinkhole({ ip: ['192.0.2.1', '2001:db8::1'] }, 60);
  let answered = 0;
  for (let i = 0; i < 20000; i++) {
    let buf: Buffer;
    const kind = i % 4;
    if (kind === 0) {
      buf = Buffer.alloc(rand(80));
      for (let k = 0; k < buf.length; k++) buf[k] = rand(256);
    } else {
      buf = Buffer.from(seeds[i % seeds.length]!);
      const flips = 1 + rand(4);
      for (let k = 0; k < flips; k++) buf[rand(buf.length)] = rand(256);
      if (kind === 3) buf = buf.subarray(0, rand(buf.length + 1));
    }
    const q = readQuery(buf);
    if (typeof q !== 'number') {
      answered++;
      sinkhole.answer(buf, q);
      errorReply(buf, q, RCODE.SERVFAIL);
      upstreamQuery(buf, q);
    } else {
      errorReply(buf, null, RCODE.FORMERR);
    }
    readAnswer(buf);
    isReferral(buf);
    truncateForUdp(buf, 20);
  }
  t.ok(answered > 100, `${answered} mutated queries still parsed and were answered`);
});

t.test('errorReply', async (t) => {
  const raw = buildQuery({ name: 'WWW.Example.org', type: 'MX', id: 77, dnssecOk: true });
  const q = parsed(raw);
  const reply = errorReply(raw, q, RCODE.REFUSED);
  const p = Packet.parse(reply);
  t.match(p.header, { id: 77, qr: 1, rd: 1, ra: 1, aa: 0, rcode: 5, qdcount: 1, ancount: 0, arcount: 1 });
  t.same(reply.subarray(12, q.questionEnd), raw.subarray(12, q.questionEnd), 'question bytes copied');
  t.match(p.additionals[0], { type: 41, class: 1232, doFlag: true });

  const plain = buildQuery({ name: 'a.example', type: 'A', id: 9, recursionDesired: false });
  const servfail = Packet.parse(errorReply(plain, parsed(plain), RCODE.SERVFAIL));
  t.match(servfail.header, { id: 9, rd: 0, rcode: 2, arcount: 0 });

  const headerOnly = errorReply(Buffer.from(raw).fill(0xff, 12), null, RCODE.FORMERR);
  t.equal(headerOnly.length, 12);
  t.match(Packet.parse(headerOnly).header, { id: 77, qr: 1, rcode: 1, qdcount: 0 });
});

t.test('truncateForUdp', async (t) => {
  const answers = Array.from({ length: 30 }, (_, i) => ({ name: 'big.example', type: 16, ttl: 60, data: `record number ${i} `.repeat(3) }));
  const big = response({ name: 'Big.Example', type: 16, answers, edns: true });
  t.ok(big.length > 1232);
  t.equal(truncateForUdp(big, 65535), big, 'fits: same buffer');
  const cut = truncateForUdp(big, 512);
  t.ok(cut.length <= 512);
  const p = Packet.parse(cut);
  t.match(p.header, { id: 4242, tc: 1, qdcount: 1, ancount: 0, nscount: 0, arcount: 1 });
  t.equal(p.questions[0]!.name, 'Big.Example');
  t.match(p.additionals[0], { type: 41, class: 1232 });
  const noRoom = truncateForUdp(big, 30);
  t.equal(Packet.parse(noRoom).header.arcount, 0, 'OPT dropped when it does not fit');
});

t.test('Sinkhole answers SPEC table', async (t) => {
  const modes: [string, BlockMode][] = [['null', 'null'], ['nxdomain', 'nxdomain'], ['refused', 'refused'],
    ['ip', { ip: ['192.0.2.80', '2001:db8::80', '192.0.2.81'] }], ['ip4only', { ip: ['192.0.2.80'] }]];
  const types = [1, 28, 65, 15, 16];
  const expected: Record<string, Record<number, { rcode: number; data: string[] }>> = {
    null: { 1: { rcode: 0, data: ['0.0.0.0'] }, 28: { rcode: 0, data: ['::'] } },
    nxdomain: {},
    refused: {},
    ip: { 1: { rcode: 0, data: ['192.0.2.80', '192.0.2.81'] }, 28: { rcode: 0, data: ['2001:db8::80'] } },
    ip4only: { 1: { rcode: 0, data: ['192.0.2.80'] } },
  };
  const fallback: Record<string, number> = { null: 0, nxdomain: 3, refused: 5, ip: 0, ip4only: 0 };
  for (const [label, mode] of modes) {
    const sinkhole = new Sinkhole(mode, 42);
    for (const type of types) {
      for (const edns of [false, true]) {
        const raw = buildQuery({ name: 'WwW.TikTok.com', type, id: 0x1234 + type, edns, dnssecOk: edns && type === 1, recursionDesired: type !== 15 });
        const q = parsed(raw);
        const out = sinkhole.answer(raw, q);
        const p = Packet.parse(out);
        const want = expected[label]![type] ?? { rcode: fallback[label]!, data: [] };
        const what = `${label} type ${type} edns ${edns}`;
        t.match(p.header, { id: 0x1234 + type, qr: 1, aa: 0, ra: 1, rd: type !== 15 ? 1 : 0, rcode: want.rcode, qdcount: 1 }, what);
        t.same(out.subarray(12, q.questionEnd), raw.subarray(12, q.questionEnd), `${what}: question echoed byte for byte`);
        t.same(p.answers.map((r) => r.address), want.data, `${what}: answers`);
        for (const r of p.answers) t.match(r, { name: 'WwW.TikTok.com', type, class: 1, ttl: 42 }, `${what}: owner via pointer, TTL`);
        const negative = want.rcode === 3 || (want.rcode === 0 && want.data.length === 0);
        t.same(p.authorities.map((r) => [r.type, r.ttl, r.minimum]), negative ? [[6, 42, 42]] : [], `${what}: SOA iff negative`);
        const opt = p.additionals.filter((r) => r.type === 41);
        t.equal(opt.length, edns ? 1 : 0, `${what}: OPT iff the query had one`);
        if (edns) t.match(opt[0], { class: 1232, doFlag: type === 1 });
        t.equal(p.errors.length, 0);
      }
    }
  }
});

t.test('readAnswer', async (t) => {
  const chain = response({
    name: 'WWW.Example.org', type: 1, edns: true,
    answers: [
      { name: 'www.example.org', type: 5, ttl: 300, domain: 'Edge.CDN.example' },
      { name: 'edge.cdn.example', type: 5, ttl: 120, domain: 'v16.TikTokCDN.com.' },
      { name: 'v16.tiktokcdn.com', type: 1, ttl: 30, address: '192.0.2.7' },
    ],
  });
  const info = readAnswer(chain)!;
  t.match(info, { id: 4242, rcode: 0, tc: false, qname: 'www.example.org', qtype: 1, qclass: 1, ancount: 3, ttl: 30, negative: false });
  t.same(info.aliasTargets, ['edge.cdn.example', 'v16.tiktokcdn.com']);
  t.same(info.ttlOffsets.map((o) => chain.readUInt32BE(o)), [300, 120, 30], 'offsets point at TTLs; OPT excluded');
  t.ok(info.optStart > 0 && info.optEnd === chain.length);

  const dname = response({ name: 'a.old.example', type: 1, answers: [
    { name: 'old.example', type: 39, ttl: 60, data: nameToWire('New.Example') },
    { name: 'a.old.example', type: 5, ttl: 60, domain: 'a.new.example' },
  ] });
  const d = readAnswer(dname)!;
  t.same(d.aliasTargets, ['new.example', 'a.new.example']);
  t.equal(d.negative, true, 'CNAME chain without the asked type is NODATA');

  const nx = response({ name: 'nope.example', type: 1, rcode: 3, authorities: [{ name: 'example', type: 6, ttl: 900, primary: 'ns.example', admin: 'h.example', minimum: 60, ...SOA }] });
  t.match(readAnswer(nx), { rcode: 3, negative: true, ttl: 60, ancount: 0 });
  const nodata = response({ name: 'x.example', type: 28, authorities: [{ name: 'example', type: 6, ttl: 40, primary: 'ns.example', admin: 'h.example', minimum: 600, ...SOA }] });
  t.match(readAnswer(nodata), { rcode: 0, negative: true, ttl: 40 });
  t.match(readAnswer(response({ name: 'x.example', type: 28 })), { negative: true, ttl: -1 }, 'NODATA without SOA');
  t.match(readAnswer(response({ name: 'x.example', type: 1, rcode: 2 })), { rcode: 2, negative: false, ttl: -1 });

  t.equal(readAnswer(Buffer.from('not dns')), null);
  t.equal(readAnswer(chain.subarray(0, chain.length - 5)), null, 'cut short');
  const loop = Buffer.from(chain);
  const rdata = info.ttlOffsets[0]! + 6;
  loop.writeUInt16BE(0xc000 | rdata, rdata); // the first CNAME's target points at itself
  t.equal(readAnswer(loop), null, 'pointer loop in a CNAME target');
});

t.test('readQuery: a label holding a literal "." makes the query uncacheable', async (t) => {
  t.equal(parsed(buildQuery({ name: 'wwx.victim.test', type: 'A' })).cacheable, true);
  t.equal(parsed(buildQuery({ name: '', type: 'NS' })).cacheable, true, 'root');
  const odd = (labels: string[]): Buffer => Buffer.concat([
    Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
    ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])),
    Buffer.from([0, 0, 1, 0, 1]),
  ]);
  for (const labels of [['wwx.victim', 'test'], ['wwx', 'victim.test'], ['.'], ['a', 'b.']]) {
    const q = parsed(odd(labels));
    t.equal(q.qname, labels.join('.'), `${JSON.stringify(labels)}: qname kept for policy (over-blocks)`);
    t.equal(q.cacheable, false, `${JSON.stringify(labels)}: not cacheable`);
  }
  t.equal(parsed(odd(['wwx', 'victim', 'test'])).cacheable, true);
  t.equal(parsed(odd(['wwx', 'Victim\u00e9', 'test'])).cacheable, true, 'other octets are unambiguous in latin1');
});

t.test('upstreamQuery: header + question + our bare OPT, whatever the client sent', async (t) => {
  const base = buildQuery({ name: 'WwW.Example.org', type: 'AAAA', id: 99, dnssecOk: true, recursionDesired: false });
  const cookie = Buffer.from('000a0008a1a2a3a4a5a6a7a8', 'hex');
  const client = Buffer.concat([base, cookie]);
  client.writeUInt16BE(cookie.length, base.length - 2);
  client.writeUInt16BE(4096, base.length - 8);
  client[3] = client[3]! | 0x10 | 0x40; // CD and the reserved Z bit
  const q = parsed(client);
  const sent = upstreamQuery(client, q);
  const p = Packet.parse(sent);
  t.match(p.header, { id: 0, qr: 0, opcode: 0, rd: 1, qdcount: 1, ancount: 0, nscount: 0, arcount: 1 });
  t.equal(sent.readUInt16BE(2), 0x0130, 'RD, AD, CD copied; Z cleared');
  t.same(sent.subarray(12, q.questionEnd), client.subarray(12, q.questionEnd), 'question with its 0x20 case');
  t.equal(sent.length, q.questionEnd + 11, 'nothing after our OPT');
  t.match(p.additionals[0], { type: 41, class: 1232, doFlag: true, rdata: [] });
  const plain = buildQuery({ name: 'a.example', type: 'A' });
  const sentPlain = upstreamQuery(plain, parsed(plain));
  t.equal(sentPlain.readUInt16BE(2), 0x0120);
  t.match(Packet.parse(sentPlain).additionals[0], { type: 41, class: 1232, doFlag: false });
});

t.test('isReferral and readAnswer.end', async (t) => {
  const ns = { name: 'example', type: 2, ttl: 3600, ns: 'ns1.example' };
  const soa = { name: 'example', type: 6, ttl: 900, primary: 'ns.example', admin: 'h.example', minimum: 60, ...SOA };
  t.equal(isReferral(response({ name: 'x.example', type: 1, authorities: [ns], edns: true })), true, 'NOERROR, no answer, NS, no SOA');
  t.equal(isReferral(response({ name: 'x.example', type: 1, authorities: [ns, soa] })), false, 'NODATA with SOA');
  t.equal(isReferral(response({ name: 'x.example', type: 1 })), false, 'bare NODATA');
  t.equal(isReferral(response({ name: 'x.example', type: 1, rcode: 3, authorities: [ns] })), false, 'NXDOMAIN');
  t.equal(isReferral(response({ name: 'x.example', type: 1, answers: [{ name: 'x.example', type: 1, ttl: 5, address: '192.0.2.1' }], authorities: [ns] })), false, 'an answer');
  const referral = response({ name: 'x.example', type: 1, authorities: [ns] });
  t.equal(isReferral(referral.subarray(0, referral.length - 3)), false, 'cut short: not a referral (readAnswer rejects it)');
  const info = readAnswer(Buffer.concat([referral, Buffer.from('junk')]))!;
  t.equal(info.end, referral.length, 'end excludes trailing junk');
  t.match(info, { negative: true, ttl: -1 }, 'a referral reads as NODATA without SOA: never cached');
});
