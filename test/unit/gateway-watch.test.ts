// The Docker gateway warning's judge: one address for the first N requests, and that address looks
// like a container bridge gateway (or is this host's default-route gateway).
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GatewayWatch, defaultRouteGateways } from '../../src/identity/gateway-watch.js';

const watch = (opts: { sample?: number; gateways?: string[] } = {}) => {
  const suspects: [string, number][] = [];
  const w = new GatewayWatch({ ...opts, onSuspect: (a, n) => suspects.push([a, n]) });
  return { w, suspects };
};

t.test('every request from the Docker bridge gateway: warned once', async (t) => {
  const { w, suspects } = watch({ sample: 5 });
  for (let i = 0; i < 20; i++) w.see('172.17.0.1');
  t.same(suspects, [['172.17.0.1', 5]]);
  t.equal(w.done, true, 'then it stops watching');
});

t.test('IPv4-mapped, compose networks and Podman count as gateways; real clients do not', async (t) => {
  const { w } = watch();
  for (const a of ['::ffff:172.17.0.1', '172.18.0.1', '172.31.0.1', '10.88.0.1']) t.ok(w.looksLikeGateway(a), a);
  // (this machine's own default-route gateway counts too, so leave it out of the negatives)
  const hostGateways = new Set(defaultRouteGateways());
  for (const a of ['172.17.0.2', '172.32.0.1', '10.20.0.1', '198.51.100.7', '2001:db8::1', '127.0.0.1'].filter((a) => !hostGateways.has(a))) {
    t.notOk(w.looksLikeGateway(a), a);
  }
});

t.test('a second client address ends the watch without a warning', async (t) => {
  const { w, suspects } = watch({ sample: 5 });
  w.see('172.17.0.1');
  w.see('10.20.1.5');
  for (let i = 0; i < 10; i++) w.see('172.17.0.1');
  t.same(suspects, []);
  t.equal(w.done, true);
});

t.test('one real client only: no warning', async (t) => {
  const { w, suspects } = watch({ sample: 3 });
  for (let i = 0; i < 5; i++) w.see('10.20.1.5');
  t.same(suspects, []);
});

t.test('the default route gateway from /proc/net/route', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'appfence-route-'));
  const file = join(dir, 'route');
  writeFileSync(file, 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n' +
    'eth0\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n' +
    'eth0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n');
  t.same(defaultRouteGateways(file), ['172.18.0.1'], 'little-endian hex, default route only');
  t.same(defaultRouteGateways(join(dir, 'missing')), [], 'no /proc: nothing');
  const { w } = watch({ gateways: ['192.0.2.254'] });
  t.ok(w.looksLikeGateway('192.0.2.254'), 'configured gateways count');
});
