// Bypass resistance end to end on loopback, for managed (127.0.10.x), audited (127.0.11.x) and guest
// (127.0.20.x) clients: the shipped doh-bypass and signals lists (signals answer NXDOMAIN whatever the
// group's mode), an HTTPS record aliasing into a blocked name, hints and A records inside a blocked
// CIDR, TikTok's names inside a shared ByteDance zone (`*` inside a label), and audit mode.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { query } from '../helpers/dns-client.js';
import { nameToWire, startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startServer, type Started } from '../helpers/start-server.js';

const OFFICE = '127.0.10.5';
const AUDITED = '127.0.11.5';
const GUEST = '127.0.20.5';
const shipped = (f: string) => readFileSync(fileURLToPath(new URL(`../../blocklists/${f}`, import.meta.url)), 'utf8');

/** HTTPS/SVCB RDATA: priority, TargetName, then SvcParams (key, value) in ascending key order. */
function svcbRdata(priority: number, target: string, params: [number, Buffer][] = []): Buffer {
  const pri = Buffer.alloc(2);
  pri.writeUInt16BE(priority);
  const encoded = params.map(([k, v]) => { const h = Buffer.alloc(4); h.writeUInt16BE(k); h.writeUInt16BE(v.length, 2); return Buffer.concat([h, v]); });
  return Buffer.concat([pri, target === '.' ? Buffer.from([0]) : nameToWire(target), ...encoded]);
}
const ipv4hint = (...ips: string[]): [number, Buffer] => [4, Buffer.from(ips.flatMap((ip) => ip.split('.').map(Number)))];

let up: FakeUpstream;
let af: Started;

t.before(async () => {
  up = await startFakeUpstream({ zone: {
    'dns.google A': { answers: [{ type: 'A', data: '198.51.100.53' }] },
    'use-application-dns.net A': { answers: [{ type: 'A', data: '198.51.100.54' }] },
    'mask.icloud.com A': { answers: [{ type: 'A', data: '198.51.100.55' }] },
    'www.icloud.com A': { answers: [{ type: 'A', data: '198.51.100.56' }] },
    // A site whose HTTPS record sends clients to TikTok's CDN (ServiceMode) / aliases to it (AliasMode).
    'clips.example.org HTTPS': { answers: [{ type: 65, ttl: 300, data: svcbRdata(1, 'v16-webapp.tiktokcdn.com', [[1, Buffer.from('\x02h2')]]) }] },
    'alias.example.org HTTPS': { answers: [{ type: 65, ttl: 300, data: svcbRdata(0, 'www.tiktok.com') }] },
    'safe.example.org HTTPS': { answers: [{ type: 65, ttl: 300, data: svcbRdata(1, '.', [ipv4hint('192.0.2.10')]) }] },
    'hinted.example.org HTTPS': { answers: [{ type: 65, ttl: 300, data: svcbRdata(1, '.', [ipv4hint('192.0.2.10', '203.0.113.9')]) }] },
    // A name outside every list whose address is inside a blocked range (RPZ IP trigger).
    'innocent.example.org A': { answers: [{ type: 'A', data: '203.0.113.9' }] },
    'innocent.example.org AAAA': { answers: [{ type: 'AAAA', data: '2001:db8:bad::9' }] },
    'fine.example.org A': { answers: [{ type: 'A', data: '192.0.2.10' }] },
    // TikTok's hosts in ByteDance's shared image zone, beside other apps' hosts there.
    'p16-tiktok-va.ibyteimg.com A': { answers: [{ type: 'A', data: '192.0.2.20' }] },
    'p16-capcut-sign-sg.ibyteimg.com A': { answers: [{ type: 'A', data: '192.0.2.21' }] },
    'tiktok-lb-maliva.byteoversea.net A': { answers: [{ type: 'A', data: '192.0.2.22' }] },
    'www.tiktok.com A': { answers: [{ type: 'A', data: '192.0.2.23' }] },
  } });
  af = await startServer(`
dns:
  listen: ["127.0.0.1:0"]
  upstreams: ["127.0.0.1:${up.port}"]
  timeoutMs: 1000
  blockedTtl: 42
access: { allow: ["127.0.0.0/8"] }
lists:
  tiktok: { sources: ["tiktok.txt"] }
  ranges: { sources: ["ranges.txt"] }
  doh-bypass: { sources: ["doh-bypass.txt"] }
  signals: { sources: ["bypass-signals.txt"], answer: nxdomain }
groups:
  city: { subnets: ["127.0.10.0/24"], block: [tiktok, ranges, doh-bypass, signals] }
  parks: { subnets: ["127.0.11.0/24"], block: [tiktok, ranges, signals], audit: true }
log: { level: silent }
`, {
    'tiktok.txt': 'tiktok.com\ntiktokcdn.com\n||p16-tiktok*.ibyteimg.com^\n||tiktok-*lb*.byteoversea.net^\n',
    'ranges.txt': '203.0.113.0/24\n2001:db8:bad::/48\n',
    'doh-bypass.txt': shipped('doh-bypass.txt'),
    'bypass-signals.txt': shipped('bypass-signals.txt'),
  });
});
t.teardown(async () => { await af?.close(); await up?.close(); });

const ask = (from: string, name: string, type: string | number) =>
  query({ server: af.server, proto: 'udp', localAddress: from, name, type, edns: true });
const lastEvent = (name: string) => af.events().filter((e) => e['name'] === name).at(-1);

t.test('DoH resolver names: sinkholed for managed devices, resolved for guests', async (t) => {
  const managed = await ask(OFFICE, 'dns.google', 'A');
  t.same(managed.answers.map((a) => a.data), ['0.0.0.0']);
  t.match(lastEvent('dns.google'), { event: 'block', group: 'city', list: 'doh-bypass', rule: 'dns.google', answer: 'null' });
  const guest = await ask(GUEST, 'dns.google', 'A');
  t.same(guest.answers.map((a) => a.data), ['198.51.100.53']);
});

t.test('bypass signals: NXDOMAIN (the list\'s answer) although the group\'s mode is null; guests unaffected', async (t) => {
  for (const name of ['use-application-dns.net', 'mask.icloud.com']) {
    const managed = await ask(OFFICE, name, 'A');
    t.equal(managed.rcode, 3, `${name}: NXDOMAIN for a managed device`);
    t.match(lastEvent(name), { event: 'block', list: 'signals', answer: 'nxdomain' });
    t.same((await ask(GUEST, name, 'A')).answers.length, 1, `${name}: answered for a guest`);
  }
  t.same((await ask(OFFICE, 'www.icloud.com', 'A')).answers.map((a) => a.data), ['198.51.100.56'], 'iCloud itself works');
  t.equal((await ask(OFFICE, 'www.tiktok.com', 'A')).answers[0]?.data, '0.0.0.0', 'the other lists keep the group\'s mode');
});

t.test('HTTPS records: a TargetName that is blocked counts as a CNAME to it', async (t) => {
  for (const [name, target] of [['clips.example.org', 'v16-webapp.tiktokcdn.com'], ['alias.example.org', 'www.tiktok.com']] as const) {
    const managed = await ask(OFFICE, name, 'HTTPS');
    t.same([managed.rcode, managed.answers.length], [0, 0], `${name}: NODATA sinkhole for a managed device`);
    t.match(lastEvent(name), { event: 'block', qtype: 'HTTPS', cname: target, list: 'tiktok' });
    t.equal((await ask(GUEST, name, 'HTTPS')).answers.length, 1, `${name}: the guest gets the record`);
  }
  t.equal((await ask(OFFICE, 'safe.example.org', 'HTTPS')).answers.length, 1, 'TargetName "." with harmless hints passes');
});

t.test('IP rules: an answer address or hint inside a blocked CIDR is sinkholed', async (t) => {
  const a = await ask(OFFICE, 'innocent.example.org', 'A');
  t.same(a.answers.map((r) => r.data), ['0.0.0.0']);
  t.match(lastEvent('innocent.example.org'), { event: 'block', qtype: 'A', rule: '203.0.113.0/24', list: 'ranges', address: '203.0.113.9' });
  const aaaa = await ask(OFFICE, 'innocent.example.org', 'AAAA');
  t.same(aaaa.answers.map((r) => r.data), ['::']);
  t.match(lastEvent('innocent.example.org'), { qtype: 'AAAA', rule: '2001:db8:bad::/48' });
  const hinted = await ask(OFFICE, 'hinted.example.org', 'HTTPS');
  t.same([hinted.rcode, hinted.answers.length], [0, 0], 'an ipv4hint in the range');
  t.match(lastEvent('hinted.example.org'), { address: '203.0.113.9' });
  t.same((await ask(OFFICE, 'fine.example.org', 'A')).answers.map((r) => r.data), ['192.0.2.10'], 'outside the range: untouched');
  t.same((await ask(GUEST, 'innocent.example.org', 'A')).answers.map((r) => r.data), ['203.0.113.9'], 'guests: untouched');
});

t.test('`*` inside a label: TikTok\'s hosts in a shared zone, not the zone', async (t) => {
  t.same((await ask(OFFICE, 'p16-tiktok-va.ibyteimg.com', 'A')).answers.map((r) => r.data), ['0.0.0.0']);
  t.match(lastEvent('p16-tiktok-va.ibyteimg.com'), { rule: '||p16-tiktok*.ibyteimg.com^' });
  t.same((await ask(OFFICE, 'tiktok-lb-maliva.byteoversea.net', 'A')).answers.map((r) => r.data), ['0.0.0.0']);
  t.same((await ask(OFFICE, 'p16-capcut-sign-sg.ibyteimg.com', 'A')).answers.map((r) => r.data), ['192.0.2.21'], 'CapCut\'s host stays');
  t.same((await ask(GUEST, 'p16-tiktok-va.ibyteimg.com', 'A')).answers.map((r) => r.data), ['192.0.2.20']);
});

t.test('audit mode: decided and logged with every block field, answered as allowed, counted', async (t) => {
  const before = af.runtime.blockLog.audits.count('parks', 'tiktok');
  const r = await ask(AUDITED, 'www.tiktok.com', 'A');
  t.same(r.answers.map((a) => a.data), ['192.0.2.23'], 'the real answer');
  const ev = lastEvent('www.tiktok.com')!;
  t.same(Object.keys(ev).sort(), ['answer', 'client', 'device', 'event', 'group', 'list', 'name', 'proto', 'qtype', 'rule', 'time', 'via']);
  t.match(ev, { event: 'audit', proto: 'udp', client: AUDITED, group: 'parks', via: 'subnet', device: null, qtype: 'A',
    rule: 'tiktok.com', list: 'tiktok', answer: 'null' });
  t.equal(af.runtime.blockLog.audits.count('parks', 'tiktok'), before + 1);
  const signal = await ask(AUDITED, 'use-application-dns.net', 'A');
  t.same([signal.rcode, signal.answers.length], [0, 1], 'even signals answer normally under audit');
  t.match(lastEvent('use-application-dns.net'), { event: 'audit', list: 'signals', answer: 'nxdomain' });
  const viaAlias = await ask(AUDITED, 'clips.example.org', 'HTTPS');
  t.equal(viaAlias.answers.length, 1, 'an alias hit under audit answers too');
  t.match(lastEvent('clips.example.org'), { event: 'audit', cname: 'v16-webapp.tiktokcdn.com' });
  t.same((await ask(AUDITED, 'innocent.example.org', 'A')).answers.map((a) => a.data), ['203.0.113.9']);
  t.match(lastEvent('innocent.example.org'), { event: 'audit', list: 'ranges' });
  t.equal(af.runtime.blockLog.audits.count('parks', 'ranges'), 1);
});
