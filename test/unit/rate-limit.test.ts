import t from 'tap';
import { clientPrefixKey, clientPrefixText } from '../../src/net/client-prefix.js';
import { RateVerdict, ResponseRateLimiter } from '../../src/dns/rate-limit.js';

t.test('client prefixes: /24 for IPv4 (and IPv4-mapped), /56 for IPv6', async (t) => {
  t.equal(clientPrefixText('192.0.2.77'), '192.0.2.0/24');
  t.equal(clientPrefixText('::ffff:192.0.2.77'), '192.0.2.0/24');
  t.equal(clientPrefixText('2001:db8:1:ab42::7'), '2001:db8:1:ab00::/56');
  t.equal(clientPrefixText('not-an-ip'), 'not-an-ip');
  const a = new Uint32Array(2);
  const b = new Uint32Array(2);
  clientPrefixKey('198.51.100.1', a);
  clientPrefixKey('198.51.100.254', b);
  t.same([...a], [...b], 'one /24, one key');
  clientPrefixKey('198.51.101.1', b);
  t.not(a[1], b[1], 'the next /24 is another key');
  clientPrefixKey('2001:db8:0:ff::1', a);
  clientPrefixKey('2001:db8:0:1::1', b);
  t.same([...a], [...b], '2001:db8:0:ff::/64 and 2001:db8:0:1::/64 share a /56');
  clientPrefixKey('::1', a);
  clientPrefixKey('0.0.0.1', b);
  t.not(a[0], b[0], '::1 and 0.0.0.1 differ');
});

t.test('token bucket per prefix: drop past the rate, every slip-th a TC answer, others unaffected', async (t) => {
  const clock = { now: 1000 };
  const rl = new ResponseRateLimiter({ responsesPerSecond: 10, slip: 2 }, () => clock.now);
  const verdicts = Array.from({ length: 16 }, (_, i) => rl.check(`192.0.2.${i + 1}`));
  t.same(verdicts.slice(0, 10), Array(10).fill(RateVerdict.Send), 'one second\'s worth goes out at once (the burst)');
  t.same(verdicts.slice(10), [RateVerdict.Drop, RateVerdict.Slip, RateVerdict.Drop, RateVerdict.Slip, RateVerdict.Drop, RateVerdict.Slip]);
  t.equal(rl.dropped, 3);
  t.equal(rl.slipped, 3);
  t.equal(rl.check('192.0.3.1'), RateVerdict.Send, 'the neighbouring /24 has its own bucket');
  clock.now += 100; // 100 ms = 1 token
  t.equal(rl.check('192.0.2.9'), RateVerdict.Send);
  t.equal(rl.check('192.0.2.9'), RateVerdict.Drop);
  clock.now += 60_000;
  t.same(Array.from({ length: 10 }, () => rl.check('192.0.2.9')), Array(10).fill(RateVerdict.Send), 'the bucket never holds more than one second');
  t.same([rl.check('192.0.2.9'), rl.check('192.0.2.9')], [RateVerdict.Slip, RateVerdict.Drop], 'the slip count runs on across bursts');
});

t.test('slip 0 drops all, slip 1 truncates all, rate 0 limits nothing', async (t) => {
  const clock = { now: 0 };
  const drop = new ResponseRateLimiter({ responsesPerSecond: 1, slip: 0 }, () => clock.now);
  const trunc = new ResponseRateLimiter({ responsesPerSecond: 1, slip: 1 }, () => clock.now);
  const off = new ResponseRateLimiter({ responsesPerSecond: 0, slip: 2 }, () => clock.now);
  drop.check('::1');
  trunc.check('::1');
  t.same([drop.check('::1'), drop.check('::1')], [RateVerdict.Drop, RateVerdict.Drop]);
  t.same([trunc.check('::1'), trunc.check('::1')], [RateVerdict.Slip, RateVerdict.Slip]);
  t.ok(Array.from({ length: 1000 }, () => off.check('::1')).every((v) => v === RateVerdict.Send));
  t.equal(off.enabled, false);
});

t.test('more active prefixes than table slots: the table evicts, every verdict still sane', async (t) => {
  const clock = { now: 0 };
  const rl = new ResponseRateLimiter({ responsesPerSecond: 2, slip: 2 }, () => clock.now);
  for (let i = 0; i < 70_000; i++) rl.check(`${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.1`);
  clock.now += 1;
  t.equal(rl.check('203.0.113.1'), RateVerdict.Send, 'a new prefix starts with a full bucket');
});
