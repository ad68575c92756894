import t from 'tap';
import { isIP } from 'node:net';
import { PrefixTable } from '../../src/identity/prefix-table.js';
import { parseCidr, parseIPv4, parseIPv6 } from '../../src/net/ip.js';

t.test('address parsers agree with node:net on valid and invalid text', async (t) => {
  const samples = [
    '0.0.0.0', '255.255.255.255', '10.20.1.2', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.-4', '1..2.3', '', ' 1.2.3.4',
    '::', '::1', '1::', '2001:db8::1', '2001:DB8:0:0:0:0:0:1', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::',
    '::1:2:3:4:5:6:7', '1::2::3', ':1', '1:', ':::', '12345::', 'g::1', '::ffff:10.20.1.2', '::ffff:10.20.1.256',
    '1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:7:1.2.3.4', '::1.2.3.4', '1.2.3.4::', 'fe80::1%eth0', 'fe80::1%', 'localhost',
  ];
  const words = new Uint32Array(4);
  for (const s of samples) {
    const ours = parseIPv4(s) >= 0 ? 4 : parseIPv6(s, words) ? 6 : 0;
    t.equal(ours, s === 'fe80::1%' ? 0 : isIP(s), s);
  }
  t.ok(parseIPv6('2001:db8::1', words));
  t.same([...words], [0x20010db8, 0, 0, 1]);
  t.ok(parseIPv6('::ffff:10.20.1.2', words));
  t.same([...words], [0, 0, 0xffff, 0x0a140102]);
  t.notOk(parseIPv6('fe80::1%eth0', words, false), 'zone ids can be refused (config CIDRs)');
});

t.test('parseCidr', async (t) => {
  t.same(parseCidr('10.20.0.0/16'), { family: 4, words: [0x0a140000], prefix: 16, hostBits: false });
  t.same(parseCidr('10.20.1.2'), { family: 4, words: [0x0a140102], prefix: 32, hostBits: false });
  t.same(parseCidr('10.20.1.0/16'), { family: 4, words: [0x0a140000], prefix: 16, hostBits: true });
  t.same(parseCidr('::ffff:10.0.0.0/104'), { family: 4, words: [0x0a000000], prefix: 8, hostBits: false });
  t.same(parseCidr('2001:db8:20::/48'), { family: 6, words: [0x20010db8, 0x00200000, 0, 0], prefix: 48, hostBits: false });
  t.equal(parseCidr('::1')?.prefix, 128);
  for (const bad of ['10.20.0.0/33', '10.0.0.0/', '10.0.0.0/08', '10.0.0.0/-1', '::/129', 'x/8', '10.0.0.0/8/8', 'fe80::/10%eth0']) {
    t.equal(parseCidr(bad), undefined, bad);
  }
});

t.test('longest-prefix match', async (t) => {
  const table = new PrefixTable<string>();
  table.add('0.0.0.0/0', 'v4-any');
  table.add('10.0.0.0/8', 'ten');
  table.add('10.20.0.0/16', 'city');
  table.add('10.20.30.0/24', 'office');
  table.add('10.20.30.40', 'host');
  table.add('2001:db8:20::/48', 'city6');
  table.add('2001:db8:20:5::/64', 'lab6');
  table.add('2001:db8:20:5::1/128', 'host6');
  t.equal(table.size, 8);
  const cases: [string, string | undefined][] = [
    ['10.20.30.40', 'host'], ['10.20.30.41', 'office'], ['10.20.31.1', 'city'], ['10.21.0.1', 'ten'], ['11.0.0.1', 'v4-any'],
    ['255.255.255.255', 'v4-any'], ['0.0.0.0', 'v4-any'],
    ['::ffff:10.20.30.40', 'host'], ['::ffff:10.20.99.1', 'city'], ['::ffff:0a14:1e28', 'host'],
    ['2001:db8:20:5::1', 'host6'], ['2001:db8:20:5::2', 'lab6'], ['2001:db8:20:5:ffff:ffff:ffff:ffff', 'lab6'],
    ['2001:db8:20:6::1', 'city6'], ['2001:db8:20:ffff::1', 'city6'], ['2001:db8:21::1', undefined], ['::1', undefined],
    ['2001:DB8:20:0005:0:0:0:1', 'host6'], ['fe80::1%eth0', undefined],
    ['not-an-ip', undefined], ['', undefined], ['10.20.30', undefined], ['10.20.30.40 ', undefined],
  ];
  for (const [address, expected] of cases) t.equal(table.lookup(address), expected, address);

  const v6 = new PrefixTable<string>();
  v6.add('::/0', 'v6-any');
  v6.add('2001:db8::/32', 'doc');
  t.equal(v6.lookup('2001:db8:1::1'), 'doc');
  t.equal(v6.lookup('2a00::1'), 'v6-any');
  t.equal(v6.lookup('10.0.0.1'), undefined, '::/0 does not hold IPv4 addresses');
  v6.add('2001:db8::/32', 'replaced');
  t.equal(v6.lookup('2001:db8::5'), 'replaced');
  t.equal(v6.size, 2, 'adding a prefix again replaces it');
  v6.add('2001:db8:0:0:1::/80', 'host-bits-cleared');
  t.equal(v6.lookup('2001:db8::1:0:0:9'), 'host-bits-cleared');

  const many = new PrefixTable<number>();
  for (let i = 0; i < 2000; i++) many.add(`2001:db8:${i.toString(16)}::/48`, i);
  let wrong = 0;
  for (let i = 0; i < 2000; i++) if (many.lookup(`2001:db8:${i.toString(16)}::42`) !== i) wrong++;
  t.equal(wrong, 0, '2000 /48s, each found');

  t.throws(() => table.add('10.0.0.0/33', 'x'), TypeError);
});

