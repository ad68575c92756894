import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { configWarnings } from '../../src/config/warnings.js';

const FILE = '/etc/appfence/config.yaml';
const warningsOf = (yaml: string): string[] =>
  configWarnings(parseConfig(`dns: { upstreams: ["9.9.9.9"] }\n${yaml}`, FILE, {})).map((w) => `${w.keyPath}: ${w.message}`);

t.test('a clean config has no warnings', async (t) => {
  t.same(warningsOf(`
access: { allow: ["10.0.0.0/8"] }
lists: { tiktok: { sources: [t.txt] } }
groups: { city: { subnets: ["10.20.0.0/16"], block: [tiktok] } }
`), []);
});

t.test('each warning, with its key path', async (t) => {
  t.same(warningsOf(`
access: { allow: ["10.0.0.0/8"] }
lists: { tiktok: { sources: [t.txt] } }
groups: { city: { subnets: ["192.168.5.0/24", "10.0.0.0/7"], block: [tiktok] } }
`), [
    'groups.city.subnets[0]: "192.168.5.0/24" is not inside access.allow: these clients are REFUSED before the group applies',
    'groups.city.subnets[1]: "10.0.0.0/7" is not inside access.allow: these clients are REFUSED before the group applies',
  ], 'a group subnet outside access.allow (or only partly inside)');
  t.same(warningsOf('lists: { tiktok: { sources: [t.txt] }, vendor: { sources: ["https://lists.example/x"] } }\ndefault: { block: [tiktok] }'),
    ['lists.vendor: no group blocks or allows with this list'], 'a list no group uses');
  t.same(warningsOf('lists: { ok: { sources: [ok.txt] } }\ngroups: { city: { subnets: ["10.20.0.0/16"], allow: [ok] } }'),
    ['groups.city: blocks nothing (no block lists): its devices are answered as if unmanaged'], 'a group that blocks nothing');
  t.same(warningsOf(`
access: { allow: ["10.0.0.0/8", "2001:db8::/32"] }
lists: { tiktok: { sources: [t.txt] } }
groups:
  city: { subnets: ["10.20.0.0/16", "2001:db8:20::/48"], block: [tiktok] }
  lab: { subnets: ["10.20.5.0/24", "2001:db8:20:5::/64"], block: [tiktok] }
`), [
    'groups.lab.subnets[0]: "10.20.5.0/24" lies inside "10.20.0.0/16" of group "city": the longer prefix wins, so its devices are "lab"',
    'groups.lab.subnets[1]: "2001:db8:20:5::/64" lies inside "2001:db8:20::/48" of group "city": the longer prefix wins, so its devices are "lab"',
  ], 'overlapping subnets of different groups');
  t.same(warningsOf(`
clientCerts: { ca: ca.pem }
lists: { tiktok: { sources: [t.txt] } }
groups: { laptops: { certificates: { issuer: "City Device CA" }, block: [tiktok] } }
`), ['groups.laptops.certificates: no TLS listener (dns.tls, dns.https, proxy.tls) asks for a device certificate, so this never matches'],
  'certificate groups without a TLS listener');
});
