import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { defaultConfig, PACKAGE_ROOT } from '../../src/config/default.js';
import { DEFAULT_ACCESS_ALLOW } from '../../src/config/validate.js';
import { ConfigError, ConfigErrors } from '../../src/errors.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/configs/', import.meta.url));
const FILE = '/etc/appfence/config.yaml';
const MINIMAL = 'dns: { upstreams: ["9.9.9.9"] }\n';

/** The messages of the ConfigErrors that parsing `text` throws; fails the test when nothing is thrown. */
function errorsOf(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(text, FILE, env);
  } catch (err) {
    if (!(err instanceof ConfigErrors)) throw err;
    for (const e of err.errors) if (!(e instanceof ConfigError)) throw new Error('not a ConfigError');
    return err.errors.map((e) => e.message);
  }
  return ['<no error>'];
}

t.test('the SPEC example parses into the normalised shape', async (t) => {
  const c = await loadConfig(join(FIXTURES, 'spec-example.yaml'), { APPFENCE_ADMIN_TOKEN: 's3cret' });
  const dir = FIXTURES.replace(/\/$/, '');
  t.equal(c.source, join(FIXTURES, 'spec-example.yaml'));
  t.same(c.dns.listen, [{ host: '0.0.0.0', port: 53 }]);
  t.same(c.dns.tls, { listen: [{ host: '0.0.0.0', port: 853 }], cert: `${dir}/certs/server.pem`, key: `${dir}/certs/server-key.pem` });
  t.same(c.dns.https?.listen, [{ host: '0.0.0.0', port: 443 }]);
  t.same(c.dns.upstreams, [
    { proto: 'udp', host: '9.9.9.9', port: 53, text: '9.9.9.9' },
    { proto: 'tls', host: '1.1.1.1', port: 853, text: 'tls://1.1.1.1:853' },
    { proto: 'https', host: 'dns.example', port: 443, url: 'https://dns.example/dns-query', text: 'https://dns.example/dns-query' },
  ]);
  t.equal(c.dns.timeoutMs, 1500);
  t.same(c.dns.cache, { maxEntries: 100000, minTtl: 0, maxTtl: 86400, negativeTtl: 300 });
  t.equal(c.dns.blockedTtl, 60);
  t.equal(c.dns.tcpIdleTimeoutMs, 10000);
  t.equal(c.dns.maxConnections, 1000);
  t.equal(c.dns.udpBatch, 'auto');
  t.equal(c.dns.maxUdpSize, 1232);
  t.same(c.dns.rateLimit, { responsesPerSecond: 200, slip: 2 });
  t.equal(c.dns.workers, 1);
  t.same(c.dns.ddr, { target: 'dns.city.example' });
  t.same(c.proxy, {
    listen: [{ host: '0.0.0.0', port: 3128 }],
    tls: { listen: [{ host: '0.0.0.0', port: 3129 }], cert: `${dir}/certs/server.pem`, key: `${dir}/certs/server-key.pem` },
    connectPorts: [443],
    blockPage: { contact: 'IT service desk, ext. 4357' },
    pacHost: 'proxy.city.example',
    maxTunnelsPerClient: 256,
    connectTimeoutMs: 10000,
    idleTimeoutMs: 120000,
  });
  t.same(c.clientCerts, { ca: [`${dir}/certs/device-ca.pem`], crl: [`${dir}/certs/device-ca.crl`], require: false });
  t.same(c.access.allow, ['10.0.0.0/8', '192.168.0.0/16', '127.0.0.0/8', '::1/128']);
  const day = 86_400_000;
  t.same(c.lists, [
    { name: 'tiktok', sources: [`${dir}/blocklists/tiktok.txt`], match: 'auto', refreshMs: day },
    { name: 'doh-bypass', sources: [`${dir}/blocklists/doh-bypass.txt`], match: 'auto', refreshMs: day },
    { name: 'signals', sources: [`${dir}/blocklists/bypass-signals.txt`], match: 'auto', refreshMs: day, answer: 'nxdomain' },
    { name: 'vendor', sources: ['https://lists.example/tiktok.txt'], match: 'auto', refreshMs: 4 * 3_600_000 },
    { name: 'exceptions', sources: [`${dir}/blocklists/allow-example.txt`], match: 'auto', refreshMs: day },
  ]);
  t.equal(c.stateDir, '/var/lib/appfence');
  t.same(c.groups, [{
    name: 'city-devices',
    subnets: ['10.20.0.0/16', '2001:db8:20::/48'],
    certificates: { issuer: 'City Device CA', subject: { OU: 'City Devices' } },
    block: ['tiktok', 'doh-bypass'],
    allow: ['exceptions'],
    mode: 'null',
    audit: false,
    logQueries: false,
  }]);
  t.same(c.default, { name: 'default', subnets: [], block: [], allow: [], mode: 'null', audit: false, logQueries: false });
  t.same(c.log, { level: 'info', blocks: 'stdout', queries: false });
  t.same(c.admin, { listen: { host: '127.0.0.1', port: 9153 }, token: 's3cret' });
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.dns.listen[0]) && Object.isFrozen(c.groups[0]?.subnets), 'deep-frozen');
  t.throws(() => { (c.dns.listen as unknown as unknown[]).push(1); });
});

t.test('defaults of a minimal file', async (t) => {
  const c = parseConfig(MINIMAL, FILE, {});
  t.same(c.dns.listen, [{ host: '0.0.0.0', port: 53 }]);
  t.same(c.access.allow, DEFAULT_ACCESS_ALLOW);
  t.same(c.lists, []);
  t.same(c.groups, []);
  t.same(c.default, { name: 'default', subnets: [], block: [], allow: [], mode: 'null', audit: false, logQueries: false });
  t.same(c.log, { level: 'info', blocks: 'stdout', queries: false });
  t.notOk('proxy' in c || 'admin' in c || 'clientCerts' in c || 'tls' in c.dns, 'optional sections stay absent');
  t.same(parseConfig(MINIMAL + 'proxy:\nadmin:\n', FILE, {}).proxy, undefined, 'an empty section is as if left out');
  const p = parseConfig(MINIMAL + 'proxy: {}\nadmin: {}\n', FILE, {});
  t.same(p.proxy, { listen: [{ host: '0.0.0.0', port: 3128 }], connectPorts: [443], blockPage: { contact: '' },
    maxTunnelsPerClient: 256, connectTimeoutMs: 10000, idleTimeoutMs: 120000 });
  const q = parseConfig(MINIMAL + 'proxy: { maxTunnelsPerClient: 8, connectTimeoutMs: 500, idleTimeoutMs: 900 }\n', FILE, {});
  t.same([q.proxy?.maxTunnelsPerClient, q.proxy?.connectTimeoutMs, q.proxy?.idleTimeoutMs], [8, 500, 900]);
  t.same(p.admin, { listen: { host: '127.0.0.1', port: 9153 } });
});

t.test('values that normalise', async (t) => {
  const c = parseConfig(`
dns:
  listen: ["[::]:53", "127.0.0.1:0", "[fe80::1%eth0]:53"]
  upstreams: ["9.9.9.9:5353", "[2620:fe::fe]:53", "2620:fe::fe", "tls://1.1.1.1", "udp://8.8.8.8", "https://[2001:db8::1]:8443/q"]
lists:
  a: { sources: ["https://example.org/list.txt", "/abs/list.txt", "rel/list.txt"], match: subtree }
groups:
  g1: { subnets: ["10.1.2.3", "2001:db8::1", "::ffff:10.9.0.0/112"], block: [a], mode: "null" }
  g2: { mode: nxdomain }
  g3: { mode: refused }
  g4: { mode: { ip: ["192.0.2.80", "2001:db8::80"] } }
  g5:
clientCerts: { ca: [a.pem, /b.pem], require: true }
log: { blocks: logs/blocks.jsonl, level: debug, queries: true }
`, FILE, {});
  t.same(c.dns.listen, [{ host: '::', port: 53 }, { host: '127.0.0.1', port: 0 }, { host: 'fe80::1%eth0', port: 53 }]);
  t.same(c.dns.upstreams.map((u) => [u.proto, u.host, u.port]), [
    ['udp', '9.9.9.9', 5353], ['udp', '2620:fe::fe', 53], ['udp', '2620:fe::fe', 53], ['tls', '1.1.1.1', 853],
    ['udp', '8.8.8.8', 53], ['https', '2001:db8::1', 8443],
  ]);
  t.same(c.lists[0], { name: 'a', sources: ['https://example.org/list.txt', '/abs/list.txt', '/etc/appfence/rel/list.txt'], match: 'subtree', refreshMs: 86_400_000 });
  t.same(c.groups.map((g) => g.mode), ['null', 'nxdomain', 'refused', { ip: ['192.0.2.80', '2001:db8::80'] }, 'null']);
  t.same(c.groups[0]?.subnets, ['10.1.2.3', '2001:db8::1', '::ffff:10.9.0.0/112']);
  t.same(c.clientCerts, { ca: ['/etc/appfence/a.pem', '/b.pem'], crl: [], require: true });
  t.same(c.log, { level: 'debug', blocks: '/etc/appfence/logs/blocks.jsonl', queries: true });
});

t.test('one error per problem, each starting with its key path', async (t) => {
  const cases: [string, string, string[]][] = [
    ['bad CIDR', MINIMAL + 'groups: { city-devices: { subnets: ["10.20.0.0/16", "10.20.0.0/33"] } }',
      ['groups.city-devices.subnets[1]: "10.20.0.0/33" is not a CIDR']],
    ['host bits', MINIMAL + 'access: { allow: ["10.20.1.0/16"] }', ['access.allow[0]: "10.20.1.0/16" has bits set beyond its /16 prefix']],
    ['listen without port', 'dns: { listen: ["0.0.0.0"], upstreams: ["9.9.9.9"] }',
      ['dns.listen[0]: "0.0.0.0" must be host:port or [v6]:port']],
    ['unbracketed v6 listen', 'dns: { listen: ["::1:53"], upstreams: ["9.9.9.9"] }',
      ['dns.listen[0]: "::1:53" must be host:port or [v6]:port']],
    ['hostname listen', 'dns: { listen: ["localhost:53"], upstreams: ["9.9.9.9"] }',
      ['dns.listen[0]: "localhost:53": the host must be an IP address, not a hostname']],
    ['bad port', 'dns: { listen: ["1.2.3.4:65536"], upstreams: ["9.9.9.9"] }', ['dns.listen[0]: "1.2.3.4:65536": port must be 0-65535']],
    ['unknown key', 'dns: { cahce: {}, upstreams: ["9.9.9.9"] }', ['dns.cahce: unknown key']],
    ['unknown top key', MINIMAL + 'dnss: {}', ['dnss: unknown key']],
    ['timeout type', 'dns: { timeoutMs: "1500", upstreams: ["9.9.9.9"] }', ['dns.timeoutMs: must be a positive integer']],
    ['timeout zero', 'dns: { timeoutMs: 0, upstreams: ["9.9.9.9"] }', ['dns.timeoutMs: must be a positive integer']],
    ['float ttl', 'dns: { blockedTtl: 1.5, upstreams: ["9.9.9.9"] }', ['dns.blockedTtl: must be an integer from 0 to 2147483647']],
    ['minTtl > maxTtl', 'dns: { cache: { minTtl: 10, maxTtl: 5 }, upstreams: ["9.9.9.9"] }', ['dns.cache.minTtl: 10 is above maxTtl 5']],
    ['unknown list', MINIMAL + 'lists: { tiktok: { sources: [a] } }\ngroups: { city: { block: [tiktk] } }',
      ['groups.city.block[0]: no list named "tiktk"']],
    ['unknown list in default', MINIMAL + 'default: { allow: [x] }', ['default.allow[0]: no list named "x"']],
    ['subnets in default', MINIMAL + 'default: { subnets: ["10.0.0.0/8"] }', ['default.subnets: unknown key']],
    ['reserved group', MINIMAL + 'groups: { default: {} }',
      ['groups.default: "default" is reserved: write that group as the top-level default section']],
    ['upstreams missing', 'dns: {}', ['dns.upstreams: is required: at least one upstream resolver, e.g. ["9.9.9.9"]']],
    ['upstream hostname', 'dns: { upstreams: ["dns.quad9.net"] }',
      ['dns.upstreams[0]: "dns.quad9.net": the host must be an IP address (appfence does not resolve its own upstreams)']],
    ['upstream scheme', 'dns: { upstreams: ["quic://1.1.1.1"] }',
      ['dns.upstreams[0]: "quic://1.1.1.1": unsupported scheme "quic" (use a plain address, tls:// or https://)']],
    ['upstreams not a list', 'dns: { upstreams: "9.9.9.9" }', ['dns.upstreams: must be a list']],
    ['upstreams null', 'dns: { upstreams: }', ['dns.upstreams: is required: at least one upstream resolver, e.g. ["9.9.9.9"]']],
    ['upstream port', 'dns: { upstreams: ["9.9.9.9:0"] }', ['dns.upstreams[0]: "9.9.9.9:0": port must be 1-65535']],
    ['tls without key', MINIMAL.replace('}', ', tls: { cert: a.pem } }'), ['dns.tls.key: is required: the PEM private key of cert']],
    ['mode', MINIMAL + 'groups: { a: { mode: sinkhole } }', ['groups.a.mode: "sinkhole" must be null, nxdomain, refused or { ip: [...] }']],
    ['mode ip', MINIMAL + 'groups: { a: { mode: { ip: ["192.0.2.300"] } } }', ['groups.a.mode.ip[0]: "192.0.2.300" is not an IP address']],
    ['mode ip empty', MINIMAL + 'groups: { a: { mode: { ip: [] } } }', ['groups.a.mode.ip: must give at least one IPv4 or IPv6 address']],
    ['certificates key', MINIMAL + 'clientCerts: { ca: ca.pem }\ngroups: { a: { certificates: { subject: { CN: x, C: y } } } }',
      ['groups.a.certificates.subject.C: unknown key']],
    ['certificates empty', MINIMAL + 'clientCerts: { ca: ca.pem }\ngroups: { a: { certificates: {} } }',
      ['groups.a.certificates: must give issuer or subject (an empty match would take every valid certificate)']],
    ['certificates without CA', MINIMAL + 'groups: { a: { certificates: { issuer: X } } }',
      ['groups.a.certificates: needs clientCerts.ca to verify device certificates']],
    ['subnet twice', MINIMAL + 'groups: { a: { subnets: ["10.0.0.0/8"] }, b: { subnets: ["10.0.0.0/8"] } }',
      ['groups.b.subnets[0]: "10.0.0.0/8" is already a subnet of group "a"']],
    ['empty path', MINIMAL + 'log: { blocks: "" }', ['log.blocks: must not be empty']],
    ['list source scheme', MINIMAL + 'lists: { a: { sources: ["ftp://x/y"] } }',
      ['lists.a.sources[0]: "ftp://x/y": only files and http(s) URLs are supported']],
    ['list match', MINIMAL + 'lists: { a: { sources: [x], match: exact } }', ['lists.a.match: must be one of auto, subtree']],
    ['udp batch mode', 'dns: { upstreams: ["9.9.9.9"], udpBatch: on }\n', ['dns.udpBatch: must be one of auto, off']],
    ['log level', MINIMAL + 'log: { level: verbose }', ['log.level: must be one of fatal, error, warn, info, debug, trace, silent']],
    ['boolean', MINIMAL + 'log: { queries: "yes" }', ['log.queries: must be true or false']],
    ['connect port', MINIMAL + 'proxy: { connectPorts: [443, 70000] }', ['proxy.connectPorts[1]: must be an integer from 1 to 65535']],
    ['tunnel cap', MINIMAL + 'proxy: { maxTunnelsPerClient: 0 }', ['proxy.maxTunnelsPerClient: must be a positive integer']],
    ['admin listen list', MINIMAL + 'admin: { listen: ["127.0.0.1:9153"] }',
      ['admin.listen: must be a string "host:port" or "[v6]:port"']],
    ['section not a mapping', 'dns: 5', ['dns: must be a mapping']],
    ['not a mapping', '- a\n- b\n', ['the top level must be a mapping of sections (dns:, groups:, ...)']],
    ['several at once', 'dns: { listen: ["0.0.0.0"], upstreams: [], cahce: 1 }\nlog: { level: loud }', [
      'dns.cahce: unknown key',
      'dns.listen[0]: "0.0.0.0" must be host:port or [v6]:port',
      'dns.upstreams: is required: at least one upstream resolver, e.g. ["9.9.9.9"]',
      'log.level: must be one of fatal, error, warn, info, debug, trace, silent',
    ]],
  ];
  for (const [name, yaml, expected] of cases) t.same(errorsOf(yaml), expected, name);
  const many = Array.from({ length: 32 }, (_, i) => `  l${i}: { sources: [x] }`).join('\n');
  t.same(errorsOf(MINIMAL + `lists:\n${many}\n`), ['lists: 32 lists; at most 31 are supported']);
});

t.test('the keys that serve list refresh, certificates, logging and DNS limits', async (t) => {
  const c = parseConfig(MINIMAL.replace('}', ', maxUdpSize: 4096, workers: auto, rateLimit: { slip: 0 } }') + `
lists:
  a: { sources: ["https://lists.example/a.txt"], refresh: 90s, answer: { ip: ["192.0.2.1"] } }
  b: { sources: [b.txt], refresh: 30m }
  c: { sources: [c.txt], refresh: 1d }
clientCerts: { ca: ca.pem, crl: revoked.crl }
groups:
  guests: { subnets: ["10.30.0.0/16"], logQueries: false, audit: true }
  staff: { subnets: ["10.40.0.0/16"] }
default: { logQueries: false }
log: { queries: true }
`, FILE, {});
  t.same(c.lists.map((l) => [l.name, l.refreshMs]), [['a', 90_000], ['b', 1_800_000], ['c', 86_400_000]]);
  t.same(c.lists[0]?.answer, { ip: ['192.0.2.1'] });
  t.equal(c.dns.workers, 'auto');
  t.same(c.dns.rateLimit, { responsesPerSecond: 200, slip: 0 });
  t.equal(c.dns.maxUdpSize, 4096);
  t.same(c.clientCerts?.crl, ['/etc/appfence/revoked.crl'], 'one CRL path becomes a list, resolved beside the config');
  t.equal(c.stateDir, '/etc/appfence/state', 'stateDir defaults to "state" beside the config file');
  t.same(c.groups.map((g) => [g.name, g.logQueries, g.audit]), [['guests', false, true], ['staff', true, false]],
    'a group without logQueries follows log.queries');
  t.equal(c.default.logQueries, false, 'default may keep its clients out of the query log');
  t.equal(parseConfig(MINIMAL + 'stateDir: /srv/af\n', FILE, {}).stateDir, '/srv/af');
  t.notOk('rateLimit' in parseConfig(MINIMAL, FILE, {}).dns, 'no rate limit unless written');

  const cases: [string, string, string[]][] = [
    ['refresh unit', MINIMAL + 'lists: { a: { sources: [x], refresh: 5x } }',
      ['lists.a.refresh: "5x" is not a duration (a number and s, m, h or d: 90s, 30m, 4h, 1d)']],
    ['refresh number', MINIMAL + 'lists: { a: { sources: [x], refresh: 3600 } }',
      ['lists.a.refresh: must be a duration such as "90s", "30m", "4h" or "1d"']],
    ['answer', MINIMAL + 'lists: { a: { sources: [x], answer: block } }',
      ['lists.a.answer: "block" must be null, nxdomain, refused or { ip: [...] }']],
    ['workers', 'dns: { upstreams: ["9.9.9.9"], workers: many }', ['dns.workers: must be a positive integer or "auto"']],
    ['maxUdpSize', 'dns: { upstreams: ["9.9.9.9"], maxUdpSize: 100 }', ['dns.maxUdpSize: must be an integer from 512 to 65535']],
    ['rateLimit key', 'dns: { upstreams: ["9.9.9.9"], rateLimit: { qps: 5 } }', ['dns.rateLimit.qps: unknown key']],
    ['ddr target', 'dns: { upstreams: ["9.9.9.9"], ddr: { target: "not a name" } }', ['dns.ddr.target: "not a name" is not a host name']],
    ['pacHost', MINIMAL + 'proxy: { pacHost: "http://x" }', ['proxy.pacHost: "http://x" is not a host name']],
    ['crl empty', MINIMAL + 'clientCerts: { ca: ca.pem, crl: [] }', ['clientCerts.crl: must name at least one PEM CRL file']],
    ['ca missing', MINIMAL + 'clientCerts: { crl: x.crl }', ['clientCerts.ca: is required: one or more PEM files of the device CA']],
    ['logQueries', MINIMAL + 'groups: { g: { logQueries: sometimes } }', ['groups.g.logQueries: must be true or false']],
    ['audit', MINIMAL + 'default: { audit: 1 }', ['default.audit: must be true or false']],
    ['public admin without token', MINIMAL + 'admin: { listen: "0.0.0.0:9153" }',
      ['admin.token: is required when admin.listen is not on loopback (0.0.0.0)']],
  ];
  for (const [name, yaml, expected] of cases) t.same(errorsOf(yaml), expected, name);
});

t.test('the ConfigErrors summary names the file and every error', async (t) => {
  const err = t.throws(() => parseConfig('dns: { cahce: 1 }', FILE, {})) as ConfigErrors;
  t.equal(err.exitCode, 2);
  t.equal(err.message, `${FILE}: 2 errors\n  dns.cahce: unknown key\n  dns.upstreams: is required: at least one upstream resolver, e.g. ["9.9.9.9"]`);
  t.equal(err.errors[0]?.keyPath, 'dns.cahce');
});

t.test('${ENV} substitution', async (t) => {
  const env = { UP: '9.9.9.9', PORT: '5353', TOKEN: 'abc' };
  const c = parseConfig('dns: { upstreams: ["${UP}:${PORT}"] }\nadmin: { token: "Bearer-${TOKEN}-$${TOKEN}" }', FILE, env);
  t.equal(c.dns.upstreams[0]?.text, '9.9.9.9:5353');
  t.equal(c.admin?.token, 'Bearer-abc-${TOKEN}', '$${X} is a literal ${X}');
  t.same(errorsOf(MINIMAL + 'admin: { token: "${APPFENCE_ADMIN_TOKEN}" }'),
    ['admin.token: environment variable APPFENCE_ADMIN_TOKEN is not set'], 'one error, not a second one from validation');
  t.same(errorsOf('dns: { upstreams: ["${UP}"], listen: ["${NOPE}"] }', { UP: '9.9.9.9' }),
    ['dns.listen[0]: environment variable NOPE is not set']);
  t.same(errorsOf(MINIMAL + 'log: { blocks: "${1X}" }'),
    ['log.blocks: "${1X}" is not a variable reference (names are letters, digits and _; write $${ for a literal ${)']);
  t.same(errorsOf('dns: { upstreams: ["9.9.9.9"], timeoutMs: "${T}" }', { T: '1500' }), ['dns.timeoutMs: must be a positive integer'],
    'only strings are substituted: a number from the environment stays a string');
  t.same(errorsOf(MINIMAL + 'admin: { token: "${EMPTY}" }', { EMPTY: '' }), ['admin.token: must not be empty']);
  const keyed = parseConfig(MINIMAL + 'groups: { "${G}": {} }', FILE, { G: 'x' });
  t.equal(keyed.groups[0]?.name, '${G}', 'keys are not substituted');
});

t.test('YAML syntax errors name file:line:col', async (t) => {
  t.same(errorsOf('dns:\n  upstreams: ["9.9.9.9"]\n  listen: [1\nlog: {}\n'),
    [`${FILE}:4:1: Flow sequence in block collection must be sufficiently indented and end with a ]`]);
  t.same(errorsOf('dns: 1\ndns: 2\n'), [`${FILE}:2:1: Map keys must be unique`]);
  t.match(errorsOf('dns: *nope\n')[0], /^\/etc\/appfence\/config\.yaml: Unresolved alias/);
});

t.test('files: relative paths, JSON, missing file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'appfence-config-'));
  writeFileSync(join(dir, 'c.json'), JSON.stringify({
    dns: { upstreams: ['9.9.9.9'], tls: { cert: 'certs/s.pem', key: '../k.pem' } },
    lists: { l: { sources: ['l.txt'] } },
  }, null, '\t'));
  const c = await loadConfig(join(dir, 'c.json'), {});
  t.equal(c.source, join(dir, 'c.json'));
  t.same(c.dns.tls, { listen: [{ host: '0.0.0.0', port: 853 }], cert: join(dir, 'certs/s.pem'), key: resolve(dir, '../k.pem') });
  t.same(c.lists[0]?.sources, [join(dir, 'l.txt')]);
  const missing = await loadConfig(join(dir, 'nope.yaml'), {}).catch((e: unknown) => e);
  t.type(missing, ConfigErrors);
  t.same((missing as ConfigErrors).errors.map((e) => e.message), [`cannot read ${join(dir, 'nope.yaml')}: no such file`]);
});

t.test('embedded default', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'appfence-resolv-'));
  const resolvConf = join(dir, 'resolv.conf');
  writeFileSync(resolvConf, '# generated\nsearch example.org\nnameserver 192.0.2.53\nnameserver 2001:db8::53\nnameserver bogus\noptions edns0\n');
  const c = defaultConfig({ resolvConf });
  t.equal(c.source, '<embedded default>');
  t.same(c.dns.listen, [{ host: '127.0.0.1', port: 1053 }]);
  t.same(c.dns.upstreams, [
    { proto: 'udp', host: '192.0.2.53', port: 53, text: '192.0.2.53' },
    { proto: 'udp', host: '2001:db8::53', port: 53, text: '[2001:db8::53]:53' },
  ]);
  t.same(c.lists, [{ name: 'tiktok', sources: [join(PACKAGE_ROOT, 'blocklists/tiktok.txt')], match: 'auto', refreshMs: 86_400_000 }]);
  t.equal(PACKAGE_ROOT, fileURLToPath(new URL('../../', import.meta.url)), 'package root is the repository root');
  t.same(c.groups, [{ name: 'loopback', subnets: ['127.0.0.0/8', '::1/128'], block: ['tiktok'], allow: [], mode: 'null', audit: false, logQueries: false }]);
  t.same(c.access.allow, ['127.0.0.0/8', '::1/128']);
  t.same(c.proxy?.listen, [{ host: '127.0.0.1', port: 3128 }]);
  t.same(c.admin, { listen: { host: '127.0.0.1', port: 9153 } });
  t.same(c.log, { level: 'info', blocks: 'stdout', queries: false });
  t.ok(Object.isFrozen(c.dns.upstreams[0]));

  writeFileSync(resolvConf, 'search example.org\n');
  const none = t.throws(() => defaultConfig({ resolvConf })) as ConfigError;
  t.type(none, ConfigError);
  t.match(none.message, `${resolvConf}, which names no usable nameserver`);
  t.throws(() => defaultConfig({ resolvConf: join(dir, 'absent') }), ConfigError);
});
