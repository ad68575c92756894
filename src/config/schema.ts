/**
 * The one source of the configuration: this zod schema validates a file (config/validate.ts),
 * its output type is the Config every module reads (config/types.ts), and `z.toJSONSchema()` of
 * it is the published appfence.schema.json that editors use (scripts/gen-schema.ts). Checks that
 * span keys (a group naming an unknown list, a subnet in two groups) are the superRefines at the
 * end; they run even when other keys are wrong, so an admin sees every problem in one run.
 *
 * The schema is built per config file because relative paths resolve against its folder (`dir`).
 */
import { z } from 'zod';
import { parseCidr } from '../net/ip.js';
import {
  MAX_TTL, blockMode, bool, cidr, duration, filePath, hostname, int, listSource, listen, listenList, oneOf,
  pathOrPaths, text, upstream,
} from './fields.js';
import { quote } from './parse-field.js';

/**
 * Without access.allow, the private, loopback, link-local and ULA ranges may ask: a resolver on
 * 0.0.0.0:53 must not become an open resolver (DNS amplification) just because a key was left out.
 */
export const DEFAULT_ACCESS_ALLOW: readonly string[] = [
  '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '127.0.0.0/8', '169.254.0.0/16',
  '::1/128', 'fc00::/7', 'fe80::/10',
];
/** The matcher keeps a group's lists in one 32-bit mask; one bit stays free for its own use. */
export const MAX_LISTS = 31;
export const DEFAULT_REFRESH_MS = 86_400_000;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const UPSTREAMS_REQUIRED = 'is required: at least one upstream resolver, e.g. ["9.9.9.9"]';

/** listen defaults to the protocol's usual port (853, 443, 3129) on every IPv4 address, as dns.listen does. */
function tlsListener(dir: string, defaultListen: string) {
  return z.strictObject({
    listen: listenList([defaultListen]),
    cert: filePath(dir, 'is required: the PEM certificate (chain) this listener presents'),
    key: filePath(dir, 'is required: the PEM private key of cert'),
  });
}

function dnsSection(dir: string) {
  return z.strictObject({
    tls: tlsListener(dir, '0.0.0.0:853').optional().describe('DNS-over-TLS, RFC 7858'),
    https: tlsListener(dir, '0.0.0.0:443').optional().describe('DNS-over-HTTPS, RFC 8484, GET and POST on /dns-query'),
    listen: listenList(['0.0.0.0:53']).describe('UDP and TCP on each address'),
    // No silent default: forwarding a city's queries to some public resolver must be a written choice.
    upstreams: z.array(upstream(), { error: (i) => (i.input === undefined ? UPSTREAMS_REQUIRED : 'must be a list') })
      .min(1, { error: UPSTREAMS_REQUIRED }).describe('plain = UDP (TCP on truncation), tls://, https://'),
    timeoutMs: int(1).default(1500).describe('per upstream try; then the next upstream; then SERVFAIL'),
    cache: z.strictObject({
      maxEntries: int(1).default(100_000),
      minTtl: int(0, MAX_TTL).default(0),
      maxTtl: int(0, MAX_TTL).default(86_400),
      negativeTtl: int(0, MAX_TTL).default(300),
    }).superRefine((c, ctx) => {
      if (c.minTtl > c.maxTtl) ctx.addIssue({ code: 'custom', path: ['minTtl'], message: `${c.minTtl} is above maxTtl ${c.maxTtl}` });
    }).prefault({}),
    blockedTtl: int(0, MAX_TTL).default(60).describe('TTL of every sinkhole answer'),
    tcpIdleTimeoutMs: int(1).default(10_000).describe('RFC 7766 idle timeout for TCP/DoT connections'),
    maxConnections: int(1).default(1000).describe('cap on concurrent connections per TCP, DoT or DoH listener'),
    maxConnectionsPerClient: int(1).default(100).describe('cap on concurrent connections from one address per listener'),
    maxUdpSize: int(512, 65535).default(1232)
      .describe('largest UDP answer whatever the client\'s EDNS size (DNS Flag Day 2020); bigger: TC=1'),
    rateLimit: z.strictObject({
      responsesPerSecond: int(1).default(200),
      slip: int(0, 100).default(2).describe('every slip-th answer over the limit is sent truncated (TC=1); 0: drop all'),
    }).optional().describe('per client /24 (IPv4) or /56 (IPv6); over it: drop'),
    workers: z.union([int(1, 256), z.literal('auto')], { error: 'must be a positive integer or "auto"' }).default(1)
      .describe('processes serving DNS (SO_REUSEPORT); "auto" = one per core'),
    udpBatch: oneOf(['auto', 'off']).default('auto')
      .describe('UDP in batches (recvmmsg/sendmmsg, native addon) where it built and the kernel has the calls; off: node:dgram'),
    ddr: z.strictObject({ target: hostname() })
      .optional().describe('RFC 9462: _dns.resolver.arpa SVCB advertises the DoT/DoH listeners under this name'),
  }).superRefine((d, ctx) => {
    if (Array.isArray(d.listen) && d.listen.length === 0 && d.tls === undefined && d.https === undefined) {
      ctx.addIssue({ code: 'custom', path: ['listen'], message: 'is empty and there is no dns.tls or dns.https: nothing would serve DNS' });
    }
  }, { when: () => true });
}

function proxySection(dir: string) {
  return z.strictObject({
    listen: listenList(['0.0.0.0:3128']).describe('plain HTTP forward proxy: absolute-URI requests and CONNECT'),
    tls: tlsListener(dir, '0.0.0.0:3129').optional().describe('the same proxy over TLS ("HTTPS proxy"), for certificate identity'),
    connectPorts: z.array(int(1, 65535), { error: 'must be a list' }).default([443]).describe('CONNECT to any other port is refused (403)'),
    blockPage: z.strictObject({ contact: z.string({ error: 'must be a string' }).default('') }).prefault({}),
    pacHost: hostname().optional().describe('the host name the PAC file points at (default: the request\'s Host)'),
    maxTunnelsPerClient: int(1).default(256).describe('concurrent CONNECT tunnels from one address; more: 429'),
    connectTimeoutMs: int(1).default(10_000).describe('connecting to the origin, and each wait for its next bytes; then 504'),
    idleTimeoutMs: int(1).default(120_000).describe('client connections and tunnels idle this long are closed'),
  });
}

function clientCertsSection(dir: string) {
  return z.strictObject({
    ca: pathOrPaths(dir, { required: 'is required: one or more PEM files of the device CA', empty: 'must name at least one PEM file' }),
    crl: pathOrPaths(dir, { empty: 'must name at least one PEM CRL file' }).default([]).describe('a revoked device is never identified'),
    require: bool().default(false).describe('true: a TLS handshake without a valid device cert is refused'),
  });
}

function listSection(dir: string) {
  return z.strictObject({
    sources: z.array(listSource(dir), { error: (i) => (i.input === undefined ? 'is required: files or http(s) URLs' : 'must be a list') })
      .min(1, { error: 'must name at least one file or URL' }).describe('files or http(s) URLs'),
    match: oneOf(['auto', 'subtree']).default('auto')
      .describe('auto: each line\'s format decides; subtree: every rule covers the name and everything below it'),
    refresh: duration().prefault('24h').describe('how often URL sources are fetched again (files: on SIGHUP)'),
    answer: blockMode().optional().describe('overrides the group\'s mode for names this list blocks'),
  }).transform(({ refresh, ...rest }) => ({ ...rest, refreshMs: refresh }));
}

const listRef = () => text();

/** The group keys that `default:` has too (it has no subnets or certificates: it is whoever matches nothing). */
const groupPolicyShape = () => ({
  block: z.array(listRef(), { error: 'must be a list' }).default([]),
  allow: z.array(listRef(), { error: 'must be a list' }).default([]).describe('allow beats block'),
  mode: blockMode().default('null'),
  audit: bool().default(false).describe('true: decide and log (event "audit"), but answer as if allowed'),
  logQueries: bool().optional().describe('one "query" line per allowed query (overrides log.queries)'),
});

const certificateMatch = () => {
  const field = () => text();
  return z.strictObject({
    issuer: field().optional(),
    subject: z.strictObject({ CN: field().optional(), O: field().optional(), OU: field().optional() }).refine(
      (s) => Object.keys(s).length > 0, { error: 'must give at least one of CN, O, OU' }).optional(),
  }).refine((c) => c.issuer !== undefined || c.subject !== undefined,
    { error: 'must give issuer or subject (an empty match would take every valid certificate)' })
    .describe('all given fields must match; values may use * globs');
};

const groupSection = () => z.strictObject({
  subnets: z.array(cidr(), { error: 'must be a list' }).default([]),
  certificates: certificateMatch().optional(),
  ...groupPolicyShape(),
});

function logSection(dir: string) {
  return z.strictObject({
    level: oneOf(LOG_LEVELS).default('info'),
    blocks: z.union([z.literal('stdout'), filePath(dir)], { error: 'must be a string' }).default('stdout')
      .describe('stdout | FILE: one JSON line per blocked query or request'),
    queries: bool().default(false).describe('true: also one line per allowed query'),
  });
}

function adminSection() {
  return z.strictObject({
    listen: listen().prefault('127.0.0.1:9153'),
    token: text().optional(),
  });
}

export function configSchema(dir: string) {
  return z.strictObject({
    $schema: z.string().optional().describe('the JSON Schema this file follows (for editors; ignored)'),
    dns: dnsSection(dir).prefault({} as z.input<ReturnType<typeof dnsSection>>),
    proxy: proxySection(dir).optional(),
    clientCerts: clientCertsSection(dir).optional().describe('trust for device certificates, on every TLS listener'),
    access: z.strictObject({ allow: z.array(cidr(), { error: 'must be a list' }).default([...DEFAULT_ACCESS_ALLOW]) })
      .prefault({}).describe('anyone else: DNS REFUSED, proxy 403'),
    lists: z.record(z.string(), listSection(dir), { error: 'must be a mapping' })
      .superRefine((l, ctx) => {
        const n = Object.keys(l).length;
        if (n > MAX_LISTS) ctx.addIssue({ code: 'custom', message: `${n} lists; at most ${MAX_LISTS} are supported` });
      }, { when: () => true }).default({}),
    stateDir: filePath(dir).prefault('state').describe('last good copy of every URL source (default: "state" beside the config file)'),
    groups: z.record(z.string(), groupSection(), { error: 'must be a mapping' }).default({}),
    default: z.strictObject(groupPolicyShape()).prefault({}).describe('clients that match no group'),
    log: logSection(dir).prefault({}),
    admin: adminSection().optional().describe('GET /metrics /healthz /readyz /check; POST /reload (bearer token)'),
  }).superRefine(crossChecks, { when: () => true });
}

type Checked = Record<string, unknown>;
const record = (v: unknown): Checked => (typeof v === 'object' && v !== null && !Array.isArray(v) ? v as Checked : {});

/**
 * Checks between sections. They also run when other keys failed, so every value is looked at
 * defensively (a key that failed holds whatever was written there).
 */
function crossChecks(raw: unknown, ctx: z.RefinementCtx): void {
  const top = record(raw);
  const lists = new Set(Object.keys(record(top.lists)));
  const hasCa = top.clientCerts !== undefined;
  const refs = (path: (string | number)[], group: Checked) => {
    for (const key of ['block', 'allow'] as const) {
      const names = group[key];
      if (!Array.isArray(names)) continue;
      names.forEach((name: unknown, i) => {
        if (typeof name === 'string' && name.trim() !== '' && !lists.has(name)) {
          ctx.addIssue({ code: 'custom', path: [...path, key, i], message: `no list named ${quote(name)}` });
        }
      });
    }
  };
  const owners = new Map<string, string>();
  for (const [name, value] of Object.entries(record(top.groups))) {
    const path = ['groups', name];
    if (name.trim() === '') { ctx.addIssue({ code: 'custom', path, message: 'a group needs a name' }); continue; }
    if (name === 'default') {
      ctx.addIssue({ code: 'custom', path, message: '"default" is reserved: write that group as the top-level default section' });
      continue;
    }
    const group = record(value);
    refs(path, group);
    if (group.certificates !== undefined && !hasCa) {
      ctx.addIssue({ code: 'custom', path: [...path, 'certificates'], message: 'needs clientCerts.ca to verify device certificates' });
    }
    if (!Array.isArray(group.subnets)) continue;
    group.subnets.forEach((subnet: unknown, i) => {
      const c = typeof subnet === 'string' ? parseCidr(subnet) : undefined;
      if (c === undefined) return;
      const key = `${c.family}:${c.words.join(',')}/${c.prefix}`;
      const owner = owners.get(key);
      if (owner !== undefined) {
        ctx.addIssue({ code: 'custom', path: [...path, 'subnets', i], message: `${quote(subnet)} is already a subnet of group "${owner}"` });
      } else owners.set(key, name);
    });
  }
  refs(['default'], record(top.default));
  const admin = record(top.admin);
  const at = typeof admin.listen === 'object' && admin.listen !== null ? admin.listen as { host?: unknown } : undefined;
  if (top.admin !== undefined && at !== undefined && admin.token === undefined && typeof at.host === 'string' && !isLoopback(at.host)) {
    ctx.addIssue({ code: 'custom', path: ['admin', 'token'], message: `is required when admin.listen is not on loopback (${at.host})` });
  }
}

function isLoopback(host: string): boolean {
  return host === '::1' || /^127\./.test(host) || /^::ffff:127\./i.test(host);
}
