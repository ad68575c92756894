/**
 * Raw YAML tree → the normalised Config (config/types.ts): every key checked, defaults filled,
 * relative paths made absolute, cross-references (lists named by groups, one subnet in one group)
 * checked. Collects every problem and throws them together as ConfigErrors; returns a deep-frozen
 * Config. Used by config/load.ts (files) and config/default.ts (the embedded default).
 */
import { ConfigErrors, type ConfigError } from '../errors.js';
import { parseCidr } from '../net/ip.js';
import { Reader, child, deepFreeze, isIP, quote, withoutUndefined } from './schema.js';
import type {
  AdminConfig, BlockMode, CacheConfig, CertificateMatch, ClientCertsConfig, Config, DnsConfig, GroupConfig,
  ListConfig, ListenAddress, LogConfig, ProxyConfig, TlsListenerConfig,
} from './types.js';

/** The matcher keeps a group's lists in one 32-bit mask; one bit stays free for its own use. */
export const MAX_LISTS = 31;

/**
 * Without access.allow, the private, loopback, link-local and ULA ranges may ask: a resolver on
 * 0.0.0.0:53 must not become an open resolver (DNS amplification) just because a key was left out.
 */
export const DEFAULT_ACCESS_ALLOW: readonly string[] = [
  '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '127.0.0.0/8', '169.254.0.0/16',
  '::1/128', 'fc00::/7', 'fe80::/10',
];

/** What Blocky, AdGuard Home and Pi-hole do: serve every IPv4 address on 53; access.allow decides who may ask. */
const DEFAULT_DNS_LISTEN = ['0.0.0.0:53'];
const DEFAULT_PROXY_LISTEN = ['0.0.0.0:3128'];
const DEFAULT_ADMIN_LISTEN = '127.0.0.1:9153';
/** RFC 2181 §8: TTLs are 31-bit. */
const MAX_TTL = 2_147_483_647;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export interface ValidateOptions {
  /** Config.source: the absolute file path, or "<embedded default>". */
  readonly source: string;
  /** Folder that relative paths resolve against. */
  readonly dir: string;
  /** Key paths already reported (unset ${VAR}): no second error for them. */
  readonly reported?: ReadonlySet<string>;
  /** Errors found before validation (env substitution), listed first. */
  readonly earlier?: readonly ConfigError[];
}

export function validateConfig(raw: unknown, options: ValidateOptions): Config {
  const r = new Reader(options.dir, options.reported);
  r.errors.push(...(options.earlier ?? []));
  if (raw !== null && raw !== undefined && (typeof raw !== 'object' || Array.isArray(raw))) {
    r.fail('', 'the top level must be a mapping of sections (dns:, groups:, ...)');
    throw new ConfigErrors(options.source, r.errors);
  }
  const top = r.mapping('', raw ?? {}, ['dns', 'proxy', 'clientCerts', 'access', 'lists', 'groups', 'default', 'log', 'admin']) ?? {};
  const lists = readLists(r, top.lists);
  const clientCerts = optional(top.clientCerts, (v) => readClientCerts(r, v));
  const listNames = new Set(lists.map((l) => l.name));
  const groups = readGroups(r, top.groups, listNames, clientCerts !== undefined);
  const config: Config = {
    source: options.source,
    dns: readDns(r, top.dns),
    proxy: optional(top.proxy, (v) => readProxy(r, v)),
    clientCerts,
    access: readAccess(r, top.access),
    lists,
    groups,
    default: readGroup(r, 'default', 'default', top.default ?? {}, listNames, false),
    log: readLog(r, top.log ?? {}),
    admin: optional(top.admin, (v) => readAdmin(r, v)),
  };
  if (r.errors.length > 0) throw new ConfigErrors(options.source, r.errors);
  return deepFreeze(withoutUndefined(config));
}

/** An optional section written empty (`proxy:`) is as if it were left out. */
function optional<T>(value: unknown, read: (value: unknown) => T | undefined): T | undefined {
  return value === undefined || value === null ? undefined : read(value);
}

function readDns(r: Reader, value: unknown): DnsConfig {
  const path = 'dns';
  const checked = r.mapping(path, value ?? {}, [
    'listen', 'tls', 'https', 'upstreams', 'timeoutMs', 'cache', 'blockedTtl', 'tcpIdleTimeoutMs', 'maxConnections',
    'maxConnectionsPerClient', 'ddr',
  ]);
  const v = checked ?? {};
  const tls = optional(v.tls, (t) => readTls(r, child(path, 'tls'), t, ['0.0.0.0:853']));
  const https = optional(v.https, (t) => readTls(r, child(path, 'https'), t, ['0.0.0.0:443']));
  const listen = r.listenList(child(path, 'listen'), v.listen, DEFAULT_DNS_LISTEN);
  if (Array.isArray(v.listen) && v.listen.length === 0 && tls === undefined && https === undefined) {
    r.fail(child(path, 'listen'), 'is empty and there is no dns.tls or dns.https: nothing would serve DNS');
  }
  // No silent default: forwarding a city's queries to some public resolver must be a written choice.
  const given: unknown = v.upstreams ?? [];
  const upstreams = r.list(child(path, 'upstreams'), given, (p, u) => r.upstream(p, u)) ?? [];
  if (checked !== undefined && Array.isArray(given) && given.length === 0) {
    r.fail(child(path, 'upstreams'), 'is required: at least one upstream resolver, e.g. ["9.9.9.9"]');
  }
  return {
    listen, tls, https, upstreams,
    timeoutMs: r.integer(child(path, 'timeoutMs'), v.timeoutMs, 1500, 1),
    cache: readCache(r, child(path, 'cache'), v.cache ?? {}),
    blockedTtl: r.integer(child(path, 'blockedTtl'), v.blockedTtl, 60, 0, MAX_TTL),
    tcpIdleTimeoutMs: r.integer(child(path, 'tcpIdleTimeoutMs'), v.tcpIdleTimeoutMs, 10_000, 1),
    maxConnections: r.integer(child(path, 'maxConnections'), v.maxConnections, 1000, 1),
    maxConnectionsPerClient: r.integer(child(path, 'maxConnectionsPerClient'), v.maxConnectionsPerClient, 100, 1),
    ddr: optional(v.ddr, (d) => readDdr(r, child(path, 'ddr'), d, tls !== undefined || https !== undefined)),
  };
}

/** A host name (letters, digits, hyphens, dots; no trailing dot needed) the DoT/DoH certificates are for. */
const HOST_NAME = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

function readDdr(r: Reader, path: string, value: unknown, encrypted: boolean): { target: string } | undefined {
  const v = r.mapping(path, value, ['target']);
  if (v === undefined) return undefined;
  if (v.target === undefined) return r.fail(child(path, 'target'), 'is required: the host name clients verify the DoT/DoH certificate against');
  const target = r.string(child(path, 'target'), v.target);
  if (target === undefined) return undefined;
  if (!HOST_NAME.test(target)) return r.fail(child(path, 'target'), `${quote(target)} is not a host name`);
  if (!encrypted) return r.fail(path, 'needs dns.tls or dns.https: discovery advertises encrypted listeners, and there are none');
  return { target: target.toLowerCase().replace(/\.$/, '') };
}

function readCache(r: Reader, path: string, value: unknown): CacheConfig {
  const v = r.mapping(path, value, ['maxEntries', 'minTtl', 'maxTtl', 'negativeTtl']) ?? {};
  const cache = {
    maxEntries: r.integer(child(path, 'maxEntries'), v.maxEntries, 100_000, 1),
    minTtl: r.integer(child(path, 'minTtl'), v.minTtl, 0, 0, MAX_TTL),
    maxTtl: r.integer(child(path, 'maxTtl'), v.maxTtl, 86_400, 0, MAX_TTL),
    negativeTtl: r.integer(child(path, 'negativeTtl'), v.negativeTtl, 300, 0, MAX_TTL),
  };
  if (cache.minTtl > cache.maxTtl) r.fail(child(path, 'minTtl'), `${cache.minTtl} is above maxTtl ${cache.maxTtl}`);
  return cache;
}

/** listen defaults to the protocol's usual port (853, 443, 3129) on every IPv4 address, as dns.listen does. */
function readTls(r: Reader, path: string, value: unknown, defaultListen: readonly string[]): TlsListenerConfig | undefined {
  const v = r.mapping(path, value, ['listen', 'cert', 'key']);
  if (v === undefined) return undefined;
  const listen = r.listenList(child(path, 'listen'), v.listen, defaultListen);
  if (v.cert === undefined) r.fail(child(path, 'cert'), 'is required: the PEM certificate (chain) this listener presents');
  if (v.key === undefined) r.fail(child(path, 'key'), 'is required: the PEM private key of cert');
  const cert = v.cert === undefined ? undefined : r.path(child(path, 'cert'), v.cert);
  const key = v.key === undefined ? undefined : r.path(child(path, 'key'), v.key);
  return cert === undefined || key === undefined ? undefined : { listen, cert, key };
}

function readProxy(r: Reader, value: unknown): ProxyConfig | undefined {
  const path = 'proxy';
  const v = r.mapping(path, value, ['listen', 'tls', 'connectPorts', 'blockPage']);
  if (v === undefined) return undefined;
  const ports = r.list(child(path, 'connectPorts'), v.connectPorts ?? [443],
    (p, port) => r.integer(p, port ?? null, 0, 1, 65535)) ?? [];
  const page = r.mapping(child(path, 'blockPage'), v.blockPage ?? {}, ['contact']) ?? {};
  let contact = '';
  if (page.contact !== undefined && page.contact !== null) {
    if (typeof page.contact === 'string') contact = page.contact;
    else r.fail(child(child(path, 'blockPage'), 'contact'), 'must be a string');
  }
  return {
    listen: r.listenList(child(path, 'listen'), v.listen, DEFAULT_PROXY_LISTEN),
    tls: optional(v.tls, (t) => readTls(r, child(path, 'tls'), t, ['0.0.0.0:3129'])),
    connectPorts: ports,
    blockPage: { contact },
  };
}

function readClientCerts(r: Reader, value: unknown): ClientCertsConfig | undefined {
  const path = 'clientCerts';
  const v = r.mapping(path, value, ['ca', 'require']);
  if (v === undefined) return undefined;
  const caPath = child(path, 'ca');
  let ca: string[] = [];
  if (v.ca === undefined) r.fail(caPath, 'is required: one or more PEM files of the device CA');
  else if (Array.isArray(v.ca)) {
    ca = r.list(caPath, v.ca, (p, c) => r.path(p, c)) ?? [];
    if (v.ca.length === 0) r.fail(caPath, 'must name at least one PEM file');
  } else {
    const one = r.path(caPath, v.ca);
    if (one !== undefined) ca = [one];
  }
  return { ca, require: r.boolean(child(path, 'require'), v.require, false) };
}

function readAccess(r: Reader, value: unknown): { allow: readonly string[] } {
  if (value === undefined || value === null) return { allow: DEFAULT_ACCESS_ALLOW };
  const v = r.mapping('access', value, ['allow']) ?? {};
  if (v.allow === undefined) return { allow: DEFAULT_ACCESS_ALLOW };
  return { allow: r.list('access.allow', v.allow, (p, c) => r.cidr(p, c)) ?? [] };
}

function readLists(r: Reader, value: unknown): ListConfig[] {
  if (value === undefined || value === null) return [];
  const v = r.namedMapping('lists', value);
  if (v === undefined) return [];
  const names = Object.keys(v);
  if (names.length > MAX_LISTS) r.fail('lists', `${names.length} lists; at most ${MAX_LISTS} are supported`);
  const lists: ListConfig[] = [];
  for (const name of names) {
    const path = child('lists', name);
    const l = r.mapping(path, v[name], ['sources', 'match', 'answer']);
    if (l === undefined) continue;
    if (l.sources === undefined) r.fail(child(path, 'sources'), 'is required: files or http(s) URLs');
    const sources = l.sources === undefined ? [] : r.list(child(path, 'sources'), l.sources, (p, s) => readSource(r, p, s)) ?? [];
    if (Array.isArray(l.sources) && l.sources.length === 0) r.fail(child(path, 'sources'), 'must name at least one file or URL');
    const answer = l.answer === undefined ? undefined : readMode(r, child(path, 'answer'), l.answer);
    lists.push({ name, sources, match: r.oneOf(child(path, 'match'), l.match, ['auto', 'subtree'], 'auto'), answer });
  }
  return lists;
}

function readSource(r: Reader, path: string, value: unknown): string | undefined {
  if (typeof value === 'string' && /^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    if (!/^https?:\/\//i.test(value)) return r.fail(path, `${quote(value)}: only files and http(s) URLs are supported`);
    try {
      return new URL(value).href;
    } catch {
      return r.fail(path, `${quote(value)} is not a URL`);
    }
  }
  return r.path(path, value);
}

function readGroups(r: Reader, value: unknown, lists: ReadonlySet<string>, hasCa: boolean): GroupConfig[] {
  if (value === undefined || value === null) return [];
  const v = r.namedMapping('groups', value);
  if (v === undefined) return [];
  const groups: GroupConfig[] = [];
  const owners = new Map<string, string>();
  for (const [name, g] of Object.entries(v)) {
    const path = child('groups', name);
    if (name.trim() === '') { r.fail(path, 'a group needs a name'); continue; }
    if (name === 'default') { r.fail(path, '"default" is reserved: write that group as the top-level default section'); continue; }
    const group = readGroup(r, path, name, g ?? {}, lists, true);
    if (group.certificates !== undefined && !hasCa) {
      r.fail(child(path, 'certificates'), 'needs clientCerts.ca to verify device certificates');
    }
    group.subnets.forEach((cidr, i) => {
      const c = parseCidr(cidr);
      const key = c === undefined ? cidr : `${c.family}:${c.words.join(',')}/${c.prefix}`;
      const owner = owners.get(key);
      if (owner !== undefined) r.fail(child(child(path, 'subnets'), i), `${quote(cidr)} is already a subnet of group "${owner}"`);
      else owners.set(key, name);
    });
    groups.push(group);
  }
  return groups;
}

function readGroup(r: Reader, path: string, name: string, value: unknown, lists: ReadonlySet<string>, named: boolean): GroupConfig {
  const keys = named ? ['subnets', 'certificates', 'block', 'allow', 'mode', 'audit'] : ['block', 'allow', 'mode', 'audit'];
  const v = r.mapping(path, value ?? {}, keys) ?? {};
  const listRef = (p: string, ref: unknown): string | undefined => {
    const text = r.string(p, ref);
    if (text !== undefined && !lists.has(text)) return r.fail(p, `no list named ${quote(text)}`);
    return text;
  };
  return {
    name,
    subnets: named ? r.list(child(path, 'subnets'), v.subnets ?? [], (p, c) => r.cidr(p, c)) ?? [] : [],
    certificates: named ? optional(v.certificates, (c) => readCertificates(r, child(path, 'certificates'), c)) : undefined,
    block: r.list(child(path, 'block'), v.block ?? [], listRef) ?? [],
    allow: r.list(child(path, 'allow'), v.allow ?? [], listRef) ?? [],
    mode: readMode(r, child(path, 'mode'), v.mode),
    audit: r.boolean(child(path, 'audit'), v.audit, false),
  };
}

function readCertificates(r: Reader, path: string, value: unknown): CertificateMatch | undefined {
  const v = r.mapping(path, value, ['issuer', 'subject']);
  if (v === undefined) return undefined;
  const issuer = v.issuer === undefined ? undefined : r.string(child(path, 'issuer'), v.issuer);
  let subject: { CN?: string; O?: string; OU?: string } | undefined;
  if (v.subject !== undefined) {
    const s = r.mapping(child(path, 'subject'), v.subject, ['CN', 'O', 'OU']) ?? {};
    subject = {};
    for (const field of ['CN', 'O', 'OU'] as const) {
      if (s[field] !== undefined) subject[field] = r.string(child(child(path, 'subject'), field), s[field]);
    }
    if (Object.keys(s).length === 0) r.fail(child(path, 'subject'), 'must give at least one of CN, O, OU');
  }
  if (v.issuer === undefined && v.subject === undefined) {
    return r.fail(path, 'must give issuer or subject (an empty match would take every valid certificate)');
  }
  return { issuer, subject };
}

function readMode(r: Reader, path: string, value: unknown): BlockMode {
  if (value === undefined || value === null || value === 'null') return 'null';
  if (value === 'nxdomain' || value === 'refused') return value;
  if (typeof value === 'object' && !Array.isArray(value)) {
    const v = r.mapping(path, value, ['ip']) ?? {};
    const ipPath = child(path, 'ip');
    const ips = r.list(ipPath, v.ip ?? [], (p, ip) => {
      if (typeof ip === 'string' && isIP(ip)) return ip;
      return r.fail(p, `${quote(ip)} is not an IP address`);
    }) ?? [];
    if (Array.isArray(v.ip ?? []) && ((v.ip ?? []) as unknown[]).length === 0) r.fail(ipPath, 'must give at least one IPv4 or IPv6 address');
    return { ip: ips };
  }
  return r.fail(path, `${quote(value)} must be null, nxdomain, refused or { ip: [...] }`) ?? 'null';
}

function readLog(r: Reader, value: unknown): LogConfig {
  const v = r.mapping('log', value, ['level', 'blocks', 'queries']) ?? {};
  const blocks = v.blocks === undefined || v.blocks === 'stdout' ? 'stdout' : r.path('log.blocks', v.blocks) ?? 'stdout';
  return {
    level: r.oneOf('log.level', v.level, LOG_LEVELS, 'info'),
    blocks,
    queries: r.boolean('log.queries', v.queries, false),
  };
}

function readAdmin(r: Reader, value: unknown): AdminConfig | undefined {
  const v = r.mapping('admin', value, ['listen', 'token']);
  if (v === undefined) return undefined;
  const listen: ListenAddress | undefined = r.listen('admin.listen', v.listen ?? DEFAULT_ADMIN_LISTEN);
  const token = v.token === undefined || v.token === null ? undefined : r.string('admin.token', v.token);
  return listen === undefined ? undefined : { listen, token };
}
