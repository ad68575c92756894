// The DNS front end end to end, in-process: real UDP/TCP sockets on loopback, a fake upstream on
// 127.0.0.1, managed devices simulated by source address (127.0.10.x city, 127.0.11-13.x other modes,
// 127.0.20.x guests, 127.0.30.x outside access.allow).
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFakeUpstream, nameToWire, type FakeUpstream } from '../helpers/fake-upstream.js';
import { query, sendRaw, tcpSession, buildQuery, decodeReply } from '../helpers/dns-client.js';
import { startServer, type Started } from '../helpers/start-server.js';
import { loadConfig } from '../../src/config/load.js';

const CITY = '127.0.10.5';
const NX = '127.0.11.5';
const REFUSED_GROUP = '127.0.12.5';
const IP_GROUP = '127.0.13.5';
const GUEST = '127.0.20.5';
const STRANGER = '127.0.30.5';

const HTTPS_RDATA = Buffer.concat([Buffer.from([0, 1]), nameToWire(''), Buffer.from([0, 1, 0, 3, 2, 0x68, 0x32])]);

const config = (upstreamPort: number, extra = ''): string => `
dns:
  listen: ["127.0.0.1:0"]
  upstreams: ["127.0.0.1:${upstreamPort}"]
  timeoutMs: 300
  blockedTtl: 42
access:
  allow: ["127.0.10.0/24", "127.0.11.0/24", "127.0.12.0/24", "127.0.13.0/24", "127.0.20.0/24", "127.0.0.1/32"]
lists:
  tiktok: { sources: ["tiktok.txt"] }
  exceptions: { sources: ["allow.txt"] }
groups:
  city: { subnets: ["127.0.10.0/24"], block: [tiktok], allow: [exceptions] }
  city-nx: { subnets: ["127.0.11.0/24"], block: [tiktok], mode: nxdomain }
  city-refused: { subnets: ["127.0.12.0/24"], block: [tiktok], mode: refused }
  city-ip: { subnets: ["127.0.13.0/24"], block: [tiktok], mode: { ip: ["192.0.2.80", "2001:db8::80"] } }
log: { level: silent }
${extra}`;

let up: FakeUpstream;
let af: Started;

t.before(async () => {
  up = await startFakeUpstream({
    zone: {
      'www.tiktok.com A': { answers: [{ type: 'A', ttl: 300, data: '198.51.100.7' }] },
      'example.org A': { answers: [{ type: 'A', ttl: 300, data: '192.0.2.10' }] },
      'example.org HTTPS': { answers: [{ type: 65, ttl: 300, data: HTTPS_RDATA }] },
      'example.org MX': { answers: [{ type: 'MX', ttl: 300, data: { priority: 10, exchange: 'mail.example.org' } }] },
      'example.org TXT': { answers: [{ type: 'TXT', ttl: 300, data: 'v=spf1 -all' }] },
      'cdn.example.net A': {
        answers: [
          { type: 'CNAME', ttl: 300, data: 'v16.tiktokcdn.com' },
          { name: 'v16.tiktokcdn.com', type: 'A', ttl: 300, data: '198.51.100.8' },
        ],
      },
      'allowed.tiktok.com A': { answers: [{ type: 'A', ttl: 300, data: '198.51.100.9' }] },
      'big.example.org TXT': { answers: Array.from({ length: 12 }, (_, i) => ({ type: 'TXT', ttl: 300, data: `${i}`.padEnd(60, 'x') })) },
    },
  });
  af = await startServer(config(up.port), { 'tiktok.txt': 'tiktok.com\ntiktokcdn.com\n', 'allow.txt': 'allowed.tiktok.com\n' });
});
t.teardown(async () => {
  await af?.close();
  await up?.close();
});

const ask = (from: string, name: string, type: string | number, opts: { proto?: 'udp' | 'tcp'; edns?: boolean } = {}) =>
  query({ server: af.server, name, type, proto: opts.proto ?? 'udp', localAddress: from, edns: opts.edns ?? false });

t.test('SPEC answer table: every mode × record type, over UDP and TCP', async (t) => {
  const rows: [string, string, string | number, number, unknown[]][] = [
    // client, mode, type, rcode, answer data
    [CITY, 'null', 'A', 0, ['0.0.0.0']],
    [CITY, 'null', 'AAAA', 0, ['::']],
    [CITY, 'null', 'HTTPS', 0, []],
    [CITY, 'null', 'MX', 0, []],
    [NX, 'nxdomain', 'A', 3, []],
    [NX, 'nxdomain', 'AAAA', 3, []],
    [NX, 'nxdomain', 'HTTPS', 3, []],
    [REFUSED_GROUP, 'refused', 'A', 5, []],
    [REFUSED_GROUP, 'refused', 'AAAA', 5, []],
    [REFUSED_GROUP, 'refused', 'TXT', 5, []],
    [IP_GROUP, 'ip', 'A', 0, ['192.0.2.80']],
    [IP_GROUP, 'ip', 'AAAA', 0, ['2001:db8::80']],
    [IP_GROUP, 'ip', 'HTTPS', 0, []],
  ];
  for (const proto of ['udp', 'tcp'] as const) {
    for (const edns of [false, true]) {
      for (const [from, mode, type, rcode, data] of rows) {
        const label = `${mode} ${type} ${proto}${edns ? ' +edns' : ''}`;
        const id = 0x1234;
        const r = await query({ server: af.server, name: 'www.TikTok.com', type, proto, localAddress: from, edns, id });
        t.equal(r.rcode, rcode, `${label}: rcode`);
        t.equal(r.packet.header.id, id, `${label}: id echoed`);
        t.equal(r.packet.header.ra, 1, `${label}: RA set`);
        t.equal(r.packet.questions[0]?.name, 'www.TikTok.com', `${label}: question echoed with its case`);
        t.same(r.answers.map((a) => a.data), data, `${label}: answer`);
        for (const a of r.answers) t.equal(a.ttl, 42, `${label}: blockedTtl`);
        const opt = r.packet.additionals.some((a) => a.type === 41);
        t.equal(opt, edns, `${label}: OPT iff the query had one`);
      }
    }
  }
});

t.test('guests resolve normally; the shared cache never leaks an answer to a managed device', async (t) => {
  const before = up.udpQueries;
  const guest = await ask(GUEST, 'www.tiktok.com', 'A');
  t.same(guest.answers.map((a) => a.data), ['198.51.100.7'], 'guest gets the real answer');
  const city = await ask(CITY, 'www.tiktok.com', 'A');
  t.same(city.answers.map((a) => a.data), ['0.0.0.0'], 'city device is sinkholed although the answer is cached');
  const guestAgain = await ask(GUEST, 'www.tiktok.com', 'A');
  t.same(guestAgain.answers.map((a) => a.data), ['198.51.100.7']);
  t.ok(guestAgain.answers[0]!.ttl <= 300, 'cached TTL does not grow');
  t.equal(up.udpQueries - before, 1, 'second guest query was a cache hit');
});

t.test('allow list beats block list', async (t) => {
  const r = await ask(CITY, 'allowed.tiktok.com', 'A');
  t.same(r.answers.map((a) => a.data), ['198.51.100.9']);
});

t.test('CNAME inspection: an allowed name aliasing a blocked one is sinkholed for managed devices only', async (t) => {
  const guest = await ask(GUEST, 'cdn.example.net', 'A');
  t.same(guest.answers.map((a) => a.type), [5, 1], 'guest sees the CNAME chain');
  const city = await ask(CITY, 'cdn.example.net', 'A');
  t.same(city.answers.map((a) => a.data), ['0.0.0.0'], 'whole answer replaced by the sinkhole');
  const ev = af.events().filter((e) => e['name'] === 'cdn.example.net');
  t.equal(ev.length, 1, 'one block event');
  t.match(ev[0], { event: 'block', rule: 'tiktokcdn.com', list: 'tiktok', cname: 'v16.tiktokcdn.com', client: CITY, group: 'city' });
});

t.test('other record types pass through untouched when allowed', async (t) => {
  const https = await ask(CITY, 'example.org', 'HTTPS');
  t.equal(https.rcode, 0);
  t.same(https.answers[0]?.data, HTTPS_RDATA, 'HTTPS rdata byte for byte');
  const mx = await ask(CITY, 'example.org', 'MX');
  t.equal(mx.answers[0]?.data, 'mail.example.org');
  const txt = await ask(CITY, 'example.org', 'TXT', { proto: 'tcp' });
  t.match(String(txt.answers[0]?.data), /v=spf1 -all/);
});

t.test('clients outside access.allow are REFUSED before anything else', async (t) => {
  const r = await ask(STRANGER, 'example.org', 'A');
  t.equal(r.rcode, 5);
  t.same(r.answers, []);
  const tcp = await ask(STRANGER, 'www.tiktok.com', 'A', { proto: 'tcp' });
  t.equal(tcp.rcode, 5);
});

t.test('block log: one line per block with every SPEC field', async (t) => {
  await ask(CITY, 'Log-Check.TikTok.com.', 'AAAA');
  const ev = af.events().find((e) => e['name'] === 'log-check.tiktok.com');
  t.ok(ev, 'event written');
  t.match(ev, { event: 'block', proto: 'udp', client: CITY, group: 'city', via: 'subnet', device: null,
    name: 'log-check.tiktok.com', qtype: 'AAAA', rule: 'tiktok.com', list: 'tiktok', answer: 'null' });
  t.match(String(ev?.['time']), /^\d{4}-\d\d-\d\dT/);
  t.notOk(af.events().some((e) => e['client'] === GUEST && e['event'] === 'block'), 'guests never appear as blocks');
});

t.test('TCP: several pipelined queries on one connection', async (t) => {
  const s = tcpSession(af.server, CITY);
  const q1 = s.writeQuery({ name: 'www.tiktok.com', type: 'A', id: 101 });
  const q2 = s.writeQuery({ name: 'example.org', type: 'A', id: 102 });
  const q3 = s.writeQuery({ name: 'cdn.example.net', type: 'A', id: 103 });
  t.ok(q1.length && q2.length && q3.length);
  const replies = [await s.read(2000), await s.read(2000), await s.read(2000)].map((b) => decodeReply(b!));
  const byId = new Map(replies.map((r) => [r.packet.header.id, r]));
  t.same([...byId.keys()].sort(), [101, 102, 103]);
  t.same(byId.get(101)!.answers.map((a) => a.data), ['0.0.0.0']);
  t.same(byId.get(102)!.answers.map((a) => a.data), ['192.0.2.10']);
  t.same(byId.get(103)!.answers.map((a) => a.data), ['0.0.0.0']);
  s.close();
});

t.test('UDP answers larger than the client allows are truncated; TCP gets it whole', async (t) => {
  const udp = await ask(GUEST, 'big.example.org', 'TXT');
  t.equal(udp.packet.header.tc, 1, 'TC set for a 512-byte client');
  t.same(udp.answers, []);
  const tcp = await ask(GUEST, 'big.example.org', 'TXT', { proto: 'tcp' });
  t.equal(tcp.packet.header.tc, 0);
  t.equal(tcp.answers.length, 12);
});

t.test('truncated upstream answer is retried over TCP', async (t) => {
  up.opts.zone['tc.example.org A'] = { answers: [{ type: 'A', ttl: 300, data: '192.0.2.77' }] };
  up.opts.truncateUdp = true;
  const tcpBefore = up.tcpQueries;
  try {
    const r = await ask(CITY, 'tc.example.org', 'A');
    t.same(r.answers.map((a) => a.data), ['192.0.2.77']);
    t.equal(up.tcpQueries - tcpBefore, 1, 'one TCP retry upstream');
  } finally {
    up.opts.truncateUdp = false;
  }
});

t.test('upstream timeout → SERVFAIL, and the server keeps serving', async (t) => {
  up.opts.silent = true;
  try {
    const r = await ask(GUEST, 'slow.example.org', 'A');
    t.equal(r.rcode, 2, 'SERVFAIL');
  } finally {
    up.opts.silent = false;
  }
  t.equal((await ask(CITY, 'www.tiktok.com', 'A')).answers[0]?.data, '0.0.0.0');
});

t.test('malformed input: dropped or FORMERR, never disturbing other clients', async (t) => {
  t.equal(await sendRaw(af.server, Buffer.from([1, 2, 3]), 'udp', GUEST, 300), null, 'short garbage dropped');
  const q = buildQuery({ name: 'example.org', type: 'A', id: 7 });
  const response = Buffer.from(q);
  response[2]! |= 0x80;
  t.equal(await sendRaw(af.server, response, 'udp', GUEST, 300), null, 'a response (QR=1) is never answered');
  const noQuestion = Buffer.from(q.subarray(0, 12));
  noQuestion.writeUInt16BE(0, 4);
  const formerr = await sendRaw(af.server, noQuestion, 'udp', GUEST);
  t.equal(formerr && formerr[3]! & 0x0f, 1, 'qdcount 0 → FORMERR');
  t.equal(formerr && formerr.readUInt16BE(0), 7, 'with the ID');
  const notify = Buffer.from(q);
  notify[2] = (4 << 3) | 1;
  const notimp = await sendRaw(af.server, notify, 'udp', GUEST);
  t.equal(notimp && notimp[3]! & 0x0f, 4, 'opcode NOTIFY → NOTIMP');
  const tcpGarbage = await sendRaw(af.server, Buffer.from([0xde, 0xad, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff]), 'tcp', GUEST);
  t.equal(tcpGarbage && tcpGarbage[3]! & 0x0f, 1, 'bad TCP frame → FORMERR');

  // bounded fuzz: random datagrams and one-byte mutations of a valid query, then a normal query still works
  let replies = 0;
  const sends: Promise<Buffer | null>[] = [];
  for (let i = 0; i < 1500; i++) {
    const bytes = i % 2 === 0 ? randomBytes(1 + (i % 300)) : Buffer.from(q);
    if (i % 2 === 1) bytes[i % bytes.length] = bytes[i % bytes.length]! ^ (1 + (i % 255));
    sends.push(sendRaw(af.server, bytes, 'udp', GUEST, 200).then((r) => (r === null ? null : (replies++, r))));
    if (sends.length >= 100) await Promise.all(sends.splice(0));
  }
  await Promise.all(sends);
  t.ok(replies >= 0, `fuzz finished (${replies} replies to 1500 hostile datagrams)`);
  const s = tcpSession(af.server, GUEST);
  for (let i = 0; i < 50; i++) {
    const frame = randomBytes(i % 40);
    s.write(frame);
  }
  s.close();
  const after = await ask(CITY, 'www.tiktok.com', 'A');
  t.same(after.answers.map((a) => a.data), ['0.0.0.0'], 'still answering');
  const guest = await ask(GUEST, 'example.org', 'A', { proto: 'tcp' });
  t.same(guest.answers.map((a) => a.data), ['192.0.2.10'], 'TCP still answering');
});

t.test('reload: a good config swaps atomically, a bad one keeps the running policy', async (t) => {
  const path = af.writeConfig(config(up.port).replace('city: { subnets: ["127.0.10.0/24"], block: [tiktok], allow: [exceptions] }',
    'city: { subnets: ["127.0.10.0/24"], block: [], allow: [exceptions] }'));
  t.equal(await af.runtime.reload(() => loadConfig(path)), null, 'reload succeeded');
  t.same((await ask(CITY, 'www.tiktok.com', 'A')).answers.map((a) => a.data), ['198.51.100.7'], 'new policy: city no longer blocks');
  t.same((await ask(NX, 'www.tiktok.com', 'A')).rcode, 3, 'other groups unchanged');

  af.writeConfig(config(up.port) + 'bogus: true\n');
  const err = await af.runtime.reload(() => loadConfig(path));
  t.match(err?.message, /bogus: unknown key/, 'bad config rejected with its key path');
  t.same((await ask(CITY, 'www.tiktok.com', 'A')).answers.map((a) => a.data), ['198.51.100.7'], 'old policy still serving');

  af.writeConfig(config(up.port).replace('tiktok.txt', 'missing.txt'));
  const listErr = await af.runtime.reload(() => loadConfig(path));
  t.match(listErr?.message, /missing\.txt/, 'unreadable list rejected');
  t.equal(af.runtime.reloads.failed, 2);
  af.writeConfig(config(up.port));
  t.equal(await af.runtime.reload(() => loadConfig(path)), null, 'back to the first config');

  writeFileSync(join(af.dir, 'tiktok.txt'), '# the download came back empty\n');
  af.writeConfig(config(up.port));
  const emptied = await af.runtime.reload(() => loadConfig(path));
  t.match(emptied?.message, /lists\.tiktok: now has 0 rules \(had 2\)/, 'a list that lost all its rules is refused');
  t.same((await ask(NX, 'www.tiktok.com', 'A')).rcode, 3, 'still blocking with the old list');

  writeFileSync(join(af.dir, 'tiktok.txt'), 'tiktok.com\ntiktokcdn.com\nexample.org\n');
  af.writeConfig(config(up.port));
  t.equal(await af.runtime.reload(() => loadConfig(path)), null);
  t.same((await ask(CITY, 'example.org', 'A')).answers.map((a) => a.data), ['0.0.0.0'], 'changed list content took effect');
  t.same((await ask(CITY, 'www.tiktok.com', 'A')).answers.map((a) => a.data), ['0.0.0.0']);
});

t.test('TCP: an idle connection is closed after dns.tcpIdleTimeoutMs', async (t) => {
  const idle = await startServer(config(up.port).replace('blockedTtl: 42', 'blockedTtl: 42\n  tcpIdleTimeoutMs: 200\n  maxConnections: 1'),
    { 'tiktok.txt': 'tiktok.com\n', 'allow.txt': 'allowed.tiktok.com\n' });
  t.teardown(() => idle.close());
  const s = tcpSession(idle.server, CITY);
  s.writeQuery({ name: 'www.tiktok.com', type: 'A', id: 9 });
  t.ok(await s.read(1000), 'answered');
  const closed = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 3000);
    s.socket.once('close', () => { clearTimeout(timer); resolve(true); });
  });
  t.ok(closed, 'server closed the idle connection');

  // slowloris: half a frame, then one byte at a time — the idle clock only restarts on whole messages
  const trickle = tcpSession(idle.server, CITY);
  trickle.write(Buffer.from([0x00])); // a 1-byte "message" that needs a 2nd length byte... then payload
  const timer = setInterval(() => { if (!trickle.socket.destroyed) trickle.socket.write(Buffer.from([0x01])); }, 50);
  const trickleClosed = await new Promise<boolean>((resolve) => {
    const t2 = setTimeout(() => resolve(false), 3000);
    trickle.socket.once('close', () => { clearTimeout(t2); resolve(true); });
  });
  clearInterval(timer);
  t.ok(trickleClosed, 'a client trickling bytes of an unfinished frame is closed too');

  // a client that never closes its side after our FIN must not keep the only connection slot (maxConnections: 1)
  const net = await import('node:net');
  const halfOpen = net.connect({ host: '127.0.0.1', port: idle.port, localAddress: CITY, allowHalfOpen: true });
  halfOpen.on('error', () => undefined);
  t.teardown(() => halfOpen.destroy());
  await new Promise((r) => setTimeout(r, 2600)); // idle timeout 200 ms + 2 s grace
  const next = await query({ server: idle.server, name: 'www.tiktok.com', type: 'A', proto: 'tcp', localAddress: GUEST, timeoutMs: 1000 }).catch(() => null);
  const released = next !== null && next.rcode === 0;
  t.ok(released, 'a half-open peer does not keep its connection slot');
});

t.test('log.queries: allowed queries get a "query" line too', async (t) => {
  const path = af.writeConfig(config(up.port).replace('log: { level: silent }', 'log: { level: silent, queries: true }'));
  t.equal(await af.runtime.reload(() => loadConfig(path)), null);
  await ask(GUEST, 'example.org', 'A');
  const ev = af.events().filter((e) => e['event'] === 'query').pop();
  t.match(ev, { event: 'query', proto: 'udp', client: GUEST, group: 'default', via: 'default', name: 'example.org', qtype: 'A', rule: null, answer: 'forward' });
  af.writeConfig(config(up.port));
  t.equal(await af.runtime.reload(() => loadConfig(path)), null);
  const before = af.events().length;
  await ask(GUEST, 'example.org', 'A');
  t.equal(af.events().length, before, 'off again: no line for an allowed query');
});

t.test('groups.<g>.logQueries overrides log.queries per group: guests never logged query by query', async (t) => {
  const queryEvents = () => af.events().filter((e) => e['event'] === 'query');
  writeFileSync(join(af.dir, 'tiktok.txt'), 'tiktok.com\ntiktokcdn.com\n'); // earlier tests change it
  const path = af.writeConfig(config(up.port).replace('log: { level: silent }', 'log: { level: silent, queries: true }\ndefault: { logQueries: false }'));
  t.equal(await af.runtime.reload(() => loadConfig(path)), null);
  let before = queryEvents().length;
  await ask(GUEST, 'example.org', 'A');
  await ask(CITY, 'example.org', 'A');
  t.match(queryEvents().slice(before), [{ event: 'query', client: CITY, group: 'city', name: 'example.org' }],
    'log.queries on: the city device is logged, the guest (default, logQueries: false) is not');

  af.writeConfig(config(up.port).replace('city: { subnets: ["127.0.10.0/24"],', 'city: { logQueries: true, subnets: ["127.0.10.0/24"],'));
  t.equal(await af.runtime.reload(() => loadConfig(path)), null);
  before = queryEvents().length;
  await ask(GUEST, 'example.org', 'A');
  await ask(CITY, 'example.org', 'A');
  await ask(NX, 'example.org', 'A');
  t.match(queryEvents().slice(before), [{ client: CITY, group: 'city' }], 'log.queries off: only the group that asks for it is logged');
  t.equal(queryEvents().slice(before).length, 1);
  af.writeConfig(config(up.port));
  t.equal(await af.runtime.reload(() => loadConfig(path)), null);
});

t.test('TCP: dns.maxConnectionsPerClient keeps one host from taking every slot', async (t) => {
  const capped = await startServer(config(up.port).replace('blockedTtl: 42', 'blockedTtl: 42\n  maxConnectionsPerClient: 2'),
    { 'tiktok.txt': 'tiktok.com\n', 'allow.txt': 'allowed.tiktok.com\n' });
  t.teardown(() => capped.close());
  const held = [tcpSession(capped.server, CITY), tcpSession(capped.server, CITY)];
  for (const [i, s] of held.entries()) {
    s.writeQuery({ name: 'www.tiktok.com', type: 'A', id: i });
    t.ok(await s.read(1000), `connection ${i + 1} from the host is served`);
  }
  const third = tcpSession(capped.server, CITY);
  third.writeQuery({ name: 'www.tiktok.com', type: 'A', id: 3 });
  t.equal(await third.read(1000), null, 'a third concurrent connection from the same host is refused');
  const other = await query({ server: capped.server, name: 'www.tiktok.com', type: 'A', proto: 'tcp', localAddress: GUEST });
  t.equal(other.rcode, 0, 'another host still gets in');
  held.forEach((s) => s.close());
  third.close();
});

t.test('a list from an http URL: a failed download on reload keeps the last good copy', async (t) => {
  const http = await import('node:http');
  const web = http.createServer((_req, res) => res.end('tiktok.com\n'));
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(web.address() as import('node:net').AddressInfo).port}/tiktok.txt`;
  const yaml = config(up.port).replace('tiktok: { sources: ["tiktok.txt"] }', `tiktok: { sources: ["${url}"] }`);
  const s = await startServer(yaml, { 'allow.txt': 'allowed.tiktok.com\n' });
  t.teardown(() => s.close());
  const blocked = async () => (await query({ server: s.server, name: 'www.tiktok.com', type: 'A', proto: 'udp', localAddress: CITY })).answers[0]?.data;
  t.equal(await blocked(), '0.0.0.0', 'downloaded list blocks');

  await new Promise((r) => web.close(r));
  const path = s.writeConfig(yaml);
  t.equal(await s.runtime.reload(() => loadConfig(path)), null, 'reload succeeds with the last good copy');
  t.equal(await blocked(), '0.0.0.0', 'still blocking while the list server is down');
});
