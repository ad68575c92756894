/**
 * The validated, normalised configuration: what every other module reads. The types are the
 * output of the one schema (config/schema.ts), so a key added there is typed here at once.
 * Produced only by config/load.ts (from YAML/JSON) or config/default.ts; deep-frozen, never
 * mutated. Paths are absolute (resolved against the config file's folder); addresses are split;
 * lists and groups are arrays in the order written, each with its name.
 */
import type { z } from 'zod';
import type { configSchema } from './schema.js';

export type { BlockMode } from './fields.js';
export type { ListenAddress, UpstreamConfig } from './parse-field.js';

type DeepReadonly<T> = T extends (infer U)[] ? readonly DeepReadonly<U>[]
  : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;

type Parsed = z.output<ReturnType<typeof configSchema>>;
type ParsedList = Parsed['lists'][string];
type ParsedGroup = Parsed['groups'][string];

export type DnsConfig = DeepReadonly<Parsed['dns']>;
export type CacheConfig = DnsConfig['cache'];
export type TlsListenerConfig = NonNullable<DnsConfig['tls']>;
export type ProxyConfig = DeepReadonly<NonNullable<Parsed['proxy']>>;
export type ClientCertsConfig = DeepReadonly<NonNullable<Parsed['clientCerts']>>;
export type LogConfig = DeepReadonly<Parsed['log']>;
export type AdminConfig = DeepReadonly<NonNullable<Parsed['admin']>>;
/** All given fields must match; values may use `*` globs (case-insensitive). `issuer` is the issuer CN. */
export type CertificateMatch = DeepReadonly<NonNullable<ParsedGroup['certificates']>>;

export type ListConfig = DeepReadonly<ParsedList & {
  readonly name: string;
}>;

export type GroupConfig = DeepReadonly<Omit<ParsedGroup, 'logQueries' | 'audit'> & {
  /** Group name; "default" for the `default:` section. */
  readonly name: string;
  /** Decide and log (event "audit") but answer as if allowed. Absent in hand-built groups: false. */
  readonly audit?: boolean;
  /** One "query" line per allowed query: the group's logQueries, else log.queries. Absent: log.queries. */
  readonly logQueries?: boolean;
}>;

export interface Config {
  /** Absolute path of the config file, or "<embedded default>". */
  readonly source: string;
  readonly dns: DnsConfig;
  readonly proxy?: ProxyConfig;
  readonly clientCerts?: ClientCertsConfig;
  readonly access: { readonly allow: readonly string[] };
  readonly lists: readonly ListConfig[];
  /** Absolute folder holding the last good copy of every URL source. */
  readonly stateDir: string;
  /** In the order written; `default` is separate. */
  readonly groups: readonly GroupConfig[];
  readonly default: GroupConfig;
  readonly log: LogConfig;
  readonly admin?: AdminConfig;
}
