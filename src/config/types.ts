/**
 * The validated, normalised configuration: what every other module reads. Produced only by
 * config/load.ts (from YAML/JSON) or config/default.ts; deep-frozen, never mutated.
 * Paths are absolute (resolved against the config file's folder); addresses are split.
 */

export type BlockMode = 'null' | 'nxdomain' | 'refused' | { readonly ip: readonly string[] };

export interface ListenAddress {
  /** IP address without brackets, e.g. "0.0.0.0", "::1". */
  readonly host: string;
  readonly port: number;
}

export interface TlsListenerConfig {
  readonly listen: readonly ListenAddress[];
  /** Absolute paths to PEM files. */
  readonly cert: string;
  readonly key: string;
}

export interface CacheConfig {
  readonly maxEntries: number;
  readonly minTtl: number;
  readonly maxTtl: number;
  readonly negativeTtl: number;
}

export interface UpstreamConfig {
  /** "udp" = plain DNS over UDP with TCP on truncation. */
  readonly proto: 'udp' | 'tls' | 'https';
  readonly host: string;
  readonly port: number;
  /** For https upstreams, the full URL. */
  readonly url?: string;
  /** The string as written in the config, for logs. */
  readonly text: string;
}

export interface DnsConfig {
  readonly listen: readonly ListenAddress[];
  readonly tls?: TlsListenerConfig;
  readonly https?: TlsListenerConfig;
  readonly upstreams: readonly UpstreamConfig[];
  readonly timeoutMs: number;
  readonly cache: CacheConfig;
  readonly blockedTtl: number;
  /** RFC 7766 idle timeout for TCP/DoT connections. */
  readonly tcpIdleTimeoutMs: number;
  /** Cap on concurrent connections per TCP, DoT or DoH listener. */
  readonly maxConnections: number;
  /** Cap on concurrent connections from one source address per listener (a few sockets must not take them all). */
  readonly maxConnectionsPerClient: number;
  /** RFC 9462 discovery: `_dns.resolver.arpa` SVCB advertises the DoT/DoH listeners under this host name. */
  readonly ddr?: { readonly target: string };
}

export interface ProxyConfig {
  readonly listen: readonly ListenAddress[];
  readonly tls?: TlsListenerConfig;
  readonly connectPorts: readonly number[];
  readonly blockPage: { readonly contact: string };
}

export interface ClientCertsConfig {
  /** Absolute paths of PEM files, each holding one or more CA certificates. */
  readonly ca: readonly string[];
  readonly require: boolean;
}

/** All given fields must match; values may use `*` globs (case-insensitive). */
export interface CertificateMatch {
  /** Issuer common name. */
  readonly issuer?: string;
  readonly subject?: { readonly CN?: string; readonly O?: string; readonly OU?: string };
}

export interface ListConfig {
  readonly name: string;
  /** Absolute file paths or http(s) URLs. */
  readonly sources: readonly string[];
  /** "auto": each line's own format decides; "subtree": every rule covers the name and everything below it. */
  readonly match: 'auto' | 'subtree';
  /** Overrides the group's mode for names this list blocks (bypass signals must be NXDOMAIN). */
  readonly answer?: BlockMode;
}

export interface GroupConfig {
  /** Group name; "default" for the `default:` section. */
  readonly name: string;
  /** CIDR strings as written, e.g. "10.20.0.0/16", "2001:db8:20::/48". */
  readonly subnets: readonly string[];
  readonly certificates?: CertificateMatch;
  /** List names (keys of Config.lists). */
  readonly block: readonly string[];
  readonly allow: readonly string[];
  readonly mode: BlockMode;
  /** Decide and log (event "audit") as usual, but answer as if allowed: a ban rolled out group by group. */
  readonly audit?: boolean;
}

export interface LogConfig {
  readonly level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** "stdout" or an absolute file path. */
  readonly blocks: string;
  readonly queries: boolean;
}

export interface AdminConfig {
  readonly listen: ListenAddress;
  readonly token?: string;
}

export interface Config {
  /** Absolute path of the config file, or "<embedded default>". */
  readonly source: string;
  readonly dns: DnsConfig;
  readonly proxy?: ProxyConfig;
  readonly clientCerts?: ClientCertsConfig;
  readonly access: { readonly allow: readonly string[] };
  /** In the order written. */
  readonly lists: readonly ListConfig[];
  /** In the order written; `default` is separate. */
  readonly groups: readonly GroupConfig[];
  readonly default: GroupConfig;
  readonly log: LogConfig;
  readonly admin?: AdminConfig;
}
