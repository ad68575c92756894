// RFC 9462 discovery on loopback: `_dns.resolver.arpa` SVCB answered by appfence itself, decoded with
// dns2 (packet) and by hand (SVCB RDATA, RFC 9460 §2.2), for managed and guest clients; never forwarded.
import t from 'tap';
import { createTestPki, type TestPki } from '../helpers/certs.js';
import { query, type Reply } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startServer, type Started } from '../helpers/start-server.js';

const OFFICE = '127.0.10.5';
const GUEST = '127.0.20.5';

let pki: TestPki;
let up: FakeUpstream;

const yaml = (ddr: string, listeners = true) => `
dns:
  listen: ["127.0.0.1:0"]
${listeners ? `  tls: { listen: ["127.0.0.1:0"], cert: ${pki.server.cert}, key: ${pki.server.key} }
  https: { listen: ["127.0.0.1:0"], cert: ${pki.server.cert}, key: ${pki.server.key} }` : ''}
  upstreams: ["127.0.0.1:${up.port}"]
  timeoutMs: 1000
${ddr}
access: { allow: ["127.0.0.0/8"] }
lists: { tiktok: { sources: ["tiktok.txt"] } }
groups: { city: { subnets: ["127.0.10.0/24"], block: [tiktok] } }
log: { level: silent }
`;

interface Svcb { priority: number; target: string; params: Map<number, Buffer> }

/** SVCB RDATA by hand: priority, uncompressed TargetName, (key, length, value)*. */
function decodeSvcb(rdata: Buffer): Svcb {
  const priority = rdata.readUInt16BE(0);
  let pos = 2;
  const labels: string[] = [];
  while (rdata[pos] !== 0) {
    const len = rdata[pos]!;
    labels.push(rdata.toString('ascii', pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
  pos++;
  const params = new Map<number, Buffer>();
  let last = -1;
  while (pos < rdata.length) {
    const key = rdata.readUInt16BE(pos);
    const len = rdata.readUInt16BE(pos + 2);
    if (key <= last) throw new Error('SvcParams not in ascending key order');
    last = key;
    params.set(key, rdata.subarray(pos + 4, pos + 4 + len));
    pos += 4 + len;
  }
  return { priority, target: labels.join('.'), params };
}
const alpnOf = (v: Buffer | undefined): string[] => {
  const ids: string[] = [];
  for (let p = 0; v !== undefined && p < v.length; p += 1 + v[p]!) ids.push(v.toString('ascii', p + 1, p + 1 + v[p]!));
  return ids;
};
const svcbOf = (r: Reply): Svcb[] => r.answers.filter((a) => a.type === 64).map((a) => decodeSvcb(a.data as Buffer));

t.before(async () => {
  pki = await createTestPki();
  up = await startFakeUpstream({ zone: {
    // What a public upstream would say: its own DoH. appfence must never pass this on.
    '_dns.resolver.arpa SVCB': { answers: [{ type: 64, ttl: 300, data: Buffer.from('0001000000010003026833', 'hex') }] },
  } });
});
t.teardown(() => up?.close());

t.test('with dns.ddr.target: our DoH and DoT endpoints, for managed and guest clients, over UDP and TCP', async (t) => {
  const af: Started = await startServer(yaml('  ddr: { target: dns.city.example }'), { 'tiktok.txt': 'tiktok.com\n' });
  t.teardown(() => af.close());
  const { doh, dot } = af.runtime.ports;
  for (const [from, proto] of [[OFFICE, 'udp'], [GUEST, 'udp'], [OFFICE, 'tcp']] as const) {
    const r = await query({ server: af.server, proto, localAddress: from, name: '_dns.resolver.arpa', type: 'SVCB', edns: true });
    t.equal(r.rcode, 0, `${from} ${proto}: NOERROR`);
    t.equal(r.packet.header.aa, 1, 'authoritative: answered here');
    const records = svcbOf(r);
    t.equal(records.length, 2, 'one record per encrypted listener');
    const [https, tls] = records;
    t.same([https!.priority, https!.target, alpnOf(https!.params.get(1)), https!.params.get(3)!.readUInt16BE(0),
      https!.params.get(7)!.toString('utf8')], [1, 'dns.city.example', ['h2'], doh[0], '/dns-query{?dns}'], 'DoH: alpn h2, port, dohpath');
    t.same([tls!.priority, tls!.target, alpnOf(tls!.params.get(1)), tls!.params.get(3)!.readUInt16BE(0), tls!.params.has(7)],
      [2, 'dns.city.example', ['dot'], dot[0], false], 'DoT: alpn dot, port, no dohpath');
    t.ok(r.answers.every((a) => a.name.toLowerCase() === '_dns.resolver.arpa' && a.ttl === 300));
  }
  const verify = await query({ server: af.server, proto: 'udp', localAddress: OFFICE, name: '_dns.dns.city.example', type: 'SVCB' });
  t.same(svcbOf(verify).map((s) => [s.priority, s.target]), [[1, 'dns.city.example'], [2, 'dns.city.example']],
    '_dns.<target> answers the same designation');
  const mixedCase = await query({ server: af.server, proto: 'udp', localAddress: OFFICE, name: '_DNS.Resolver.ARPA', type: 'SVCB' });
  t.equal(svcbOf(mixedCase).length, 2, 'names compare case-insensitively');
  const a = await query({ server: af.server, proto: 'udp', localAddress: OFFICE, name: '_dns.resolver.arpa', type: 'A' });
  t.same([a.rcode, a.answers.length], [0, 0], 'other types: NODATA');
  t.equal(up.log.filter((q) => q.name.toLowerCase().endsWith('resolver.arpa')).length, 0, 'never forwarded');
});

t.test('without dns.ddr: NODATA, never the upstream\'s designation (which would lead devices past appfence)', async (t) => {
  const af = await startServer(yaml(''), { 'tiktok.txt': 'tiktok.com\n' });
  t.teardown(() => af.close());
  const r = await query({ server: af.server, proto: 'udp', localAddress: OFFICE, name: '_dns.resolver.arpa', type: 'SVCB' });
  t.same([r.rcode, r.answers.length], [0, 0]);
  t.equal(up.log.filter((q) => q.name.toLowerCase().endsWith('resolver.arpa')).length, 0);
});
