// The Identifier: access.allow + certificate › subnet › default in one prefix lookup. The first two
// tests are the former AccessList and SubnetIdentifier tests with their expectations kept; then the
// merge of the two tables, the certificate precedence, and a differential test against a naive
// reading of SPEC "Identification" over random ranges and addresses.
import t from 'tap';
import { ClientIdentifier } from '../../src/identity/identify.js';
import type { GroupConfig } from '../../src/config/types.js';
import type { CertIdentity, Peer } from '../../src/net/peer.js';

const group = (name: string, subnets: string[]): GroupConfig => ({ name, subnets, block: [], allow: [], mode: 'null' });
const udp = (address: string): Peer => ({ address, proto: 'udp' });
const EVERYONE = ['0.0.0.0/0', '::/0'];

t.test('access list', async (t) => {
  const id = new ClientIdentifier(['10.0.0.0/8', '192.168.0.0/16', '127.0.0.0/8', '::1/128'], []);
  const allows = (a: string): boolean => id.identify(udp(a)) !== null;
  for (const a of ['10.1.2.3', '192.168.5.5', '127.0.0.1', '::1', '::ffff:127.0.0.1', '::ffff:10.9.9.9']) t.ok(allows(a), a);
  for (const a of ['11.0.0.1', '192.169.0.1', '8.8.8.8', '::2', '2001:db8::1', 'garbage', '']) t.notOk(allows(a), a);
  t.equal(new ClientIdentifier([], []).identify(udp('127.0.0.1')), null, 'empty list refuses everyone');
  t.same(id.identify(udp('10.1.2.3')), { group: 'default', via: 'default' }, 'allowed, in no group: default');
});

t.test('subnet identity', async (t) => {
  const id = new ClientIdentifier(EVERYONE, [
    group('city-devices', ['10.20.0.0/16', '2001:db8:20::/48']),
    group('lab', ['10.20.5.0/24', '2001:db8:20:5::/64']),
    group('cert-only', []),
  ]);
  const who = (a: string) => id.identify(udp(a));
  const city = who('10.20.1.2')!;
  t.same(city, { group: 'city-devices', via: 'subnet' });
  t.same(who('10.20.5.9'), { group: 'lab', via: 'subnet' });
  t.same(who('::ffff:10.20.5.9'), { group: 'lab', via: 'subnet' });
  t.same(who('2001:db8:20:5::1'), { group: 'lab', via: 'subnet' });
  t.same(who('2001:db8:20:6::1'), { group: 'city-devices', via: 'subnet' });
  const guest = who('192.168.1.1')!;
  t.same(guest, { group: 'default', via: 'default' });
  t.equal(who('garbage'), null, 'not an IP address: refused (no prefix holds it)');
  t.notOk('device' in city);

  t.equal(who('10.20.1.2'), city, 'the same object on every query');
  t.equal(who('10.20.200.7'), city, 'one shared object per group');
  t.equal(who('172.16.0.1'), guest, 'one shared default');
  t.ok(Object.isFrozen(city) && Object.isFrozen(guest));

  const firstWins = new ClientIdentifier(EVERYONE, [group('a', ['10.0.0.0/8']), group('b', ['10.0.0.0/8'])]);
  t.equal(firstWins.identify(udp('10.1.1.1'))?.group, 'a', 'a subnet given twice belongs to the group written first');
  t.equal(new ClientIdentifier(EVERYONE, []).identify(udp('10.1.1.1'))?.via, 'default');
});

t.test('access.allow and subnets in one table: each answers for its own ranges', async (t) => {
  const id = new ClientIdentifier(['10.20.1.0/24', '192.0.2.0/24', '2001:db8::/32'],
    [group('city', ['10.20.0.0/16', '192.0.2.128/25']), group('lab', ['2001:db8:20::/56'])]);
  const who = (a: string) => id.identify(udp(a));
  t.same(who('10.20.1.9'), { group: 'city', via: 'subnet' }, 'access narrower than the subnet: allowed, and the subnet still names the group');
  t.equal(who('10.20.2.9'), null, 'in the subnet but outside access.allow: refused');
  t.same(who('192.0.2.200'), { group: 'city', via: 'subnet' }, 'subnet narrower than access');
  t.same(who('192.0.2.5'), { group: 'default', via: 'default' }, 'access only');
  t.same(who('2001:db8:20:ff::1'), { group: 'lab', via: 'subnet' }, 'IPv6 /56 inside an allowed /32');
  t.same(who('2001:db8:20:100::1'), { group: 'default', via: 'default' }, 'just past the /56');
  t.equal(who('2001:db9::1'), null);
});

t.test('a verified certificate passes access.allow and beats the subnet', async (t) => {
  const id = new ClientIdentifier(['10.0.0.0/8'], [group('guests', ['10.99.0.0/16']), group('city', [])]);
  const cert: CertIdentity = Object.freeze({ group: 'city', via: 'cert', device: 'laptop-042' });
  t.equal(id.identify({ address: '203.0.113.5', proto: 'dot', cert }), cert, 'the laptop at a hotel');
  t.equal(id.identify({ address: '10.99.1.1', proto: 'doh', cert }), cert, 'on a guest subnet');
  t.equal(id.identify({ address: '203.0.113.5', proto: 'dot' }), null, 'the same address without one');
});

t.test('differential: one lookup agrees with "any access range holds it; the longest subnet names it"', async (t) => {
  let seed = 42;
  const rand = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  // small address space (10.0.x.y) so ranges overlap often
  const ip = (x: number): string => `10.0.${x >>> 8}.${x & 255}`;
  const cidr = (): { text: string; net: number; bits: number } => {
    const bits = 16 + rand(17);
    const mask = bits === 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
    const net = ((0x0a000000 | rand(65536)) & mask) >>> 0;
    return { text: `${net >>> 24}.${(net >>> 16) & 255}.${(net >>> 8) & 255}.${net & 255}/${bits}`, net, bits };
  };
  const holds = (c: { net: number; bits: number }, a: number): boolean =>
    c.bits === 0 || ((a ^ c.net) >>> (32 - c.bits)) === 0 || (c.bits === 32 && a === c.net);
  let wrong = 0;
  for (let round = 0; round < 40; round++) {
    const access = Array.from({ length: 1 + rand(4) }, cidr);
    const groups = Array.from({ length: 1 + rand(4) }, (_, i) => ({ name: `g${i}`, subnets: Array.from({ length: 1 + rand(3) }, cidr) }));
    const id = new ClientIdentifier(access.map((c) => c.text), groups.map((g) => group(g.name, g.subnets.map((c) => c.text))));
    for (let k = 0; k < 200; k++) {
      const low = rand(65536);
      const a = (0x0a000000 | low) >>> 0;
      let expected: string | null = null;
      if (access.some((c) => holds(c, a))) {
        let best = -1;
        expected = 'default';
        for (const g of groups) for (const c of g.subnets) if (holds(c, a) && c.bits > best) { best = c.bits; expected = g.name; }
      }
      const got = id.identify(udp(ip(low)))?.group ?? null;
      if (got !== expected) wrong++;
    }
  }
  t.equal(wrong, 0, '8000 addresses over 40 random configurations');
});
