/**
 * Raw YAML tree → the normalised Config (config/types.ts) through the one schema
 * (config/schema.ts): every key checked, defaults filled, relative paths made absolute, addresses
 * split. zod's issues become ConfigErrors that start with the key path, in the order of the file's
 * sections (a mapping's unknown keys first), one per problem; all are thrown together.
 * Used by config/load.ts (files) and config/default.ts (the embedded default).
 */
import type { z } from 'zod';
import { ConfigError, ConfigErrors } from '../errors.js';
import { configSchema } from './schema.js';
import type { Config, GroupConfig, ListConfig } from './types.js';

export { DEFAULT_ACCESS_ALLOW, MAX_LISTS } from './schema.js';

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

type Issue = z.core.$ZodIssue;
type Key = PropertyKey;

export function validateConfig(raw: unknown, options: ValidateOptions): Config {
  const errors: ConfigError[] = [...(options.earlier ?? [])];
  if (raw !== null && raw !== undefined && (typeof raw !== 'object' || Array.isArray(raw))) {
    errors.push(new ConfigError('', 'the top level must be a mapping of sections (dns:, groups:, ...)'));
    throw new ConfigErrors(options.source, errors);
  }
  const result = configSchema(options.dir).safeParse(withoutNulls(raw ?? {}, 0), { error: fallbackMessage });
  if (!result.success) {
    const seen = new Set<string>();
    for (const { path, message } of ordered(result.error.issues.flatMap((i) => flatten(i, [])))) {
      const key = keyPath(path);
      if (options.reported?.has(key) || seen.has(`${key}\n${message}`)) continue;
      seen.add(`${key}\n${message}`);
      errors.push(new ConfigError(key, message));
    }
  }
  if (errors.length > 0 || !result.success) throw new ConfigErrors(options.source, errors);
  const { $schema: _, lists, groups, default: fallback, ...rest } = result.data;
  const logQueries = rest.log.queries;
  const config: Config = {
    source: options.source,
    ...rest,
    lists: Object.entries(lists).map(([name, l]): ListConfig => ({ name, ...l })),
    groups: Object.entries(groups).map(([name, g]): GroupConfig => ({ name, ...g, logQueries: g.logQueries ?? logQueries })),
    default: { name: 'default', subnets: [], ...fallback, logQueries: fallback.logQueries ?? logQueries },
  };
  return deepFreeze(withoutUndefined(config));
}

/**
 * YAML's `key:` with nothing after it is null: as if the key were left out (an empty `proxy:`
 * section is no proxy). A list or group written empty (`groups: { guests: }`) still exists, with
 * its defaults. Items of sequences keep their nulls, so `[443, ~]` stays an error.
 */
function withoutNulls(value: unknown, depth: number, named = false): unknown {
  if (Array.isArray(value)) return value.map((v: unknown) => withoutNulls(v, depth + 1));
  if (typeof value !== 'object' || value === null || Buffer.isBuffer(value)) return value;
  const out: [string, unknown][] = [];
  for (const [k, v] of Object.entries(value)) {
    if (v === null && named) out.push([k, {}]);
    else if (v !== null) out.push([k, withoutNulls(v, depth + 1, depth === 0 && (k === 'lists' || k === 'groups'))]);
  }
  // fromEntries, not assignment: a `__proto__` key must stay a key (and be reported as unknown).
  return Object.fromEntries(out);
}

/** Messages for the issues no schema leaf words itself. */
function fallbackMessage(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code === 'invalid_type') {
    switch (issue.expected) {
      case 'object': case 'record': return 'must be a mapping';
      case 'array': return 'must be a list';
      case 'string': return 'must be a string';
      case 'boolean': return 'must be true or false';
      case 'number': case 'int': return 'must be a number';
      default: return undefined;
    }
  }
  return undefined;
}

interface Flat { readonly path: readonly Key[]; readonly message: string; readonly unknownKey?: true }

/**
 * One entry per problem: an unrecognized_keys issue becomes one "unknown key" per key, and a
 * union's failure is reported from the one branch the value got into (`mode: { ip: [bad] }` is
 * about the ip, not "must be null, nxdomain, ..."), else by the union's own message.
 */
function flatten(issue: Issue, prefix: readonly Key[]): Flat[] {
  const path = [...prefix, ...issue.path];
  if (issue.code === 'unrecognized_keys') return issue.keys.map((k) => ({ path: [...path, k], message: 'unknown key', unknownKey: true }));
  if (issue.code === 'invalid_union') {
    const entered = issue.errors.filter((branch) => !branch.every((i) => i.path.length === 0 &&
      (i.code === 'invalid_type' || i.code === 'invalid_value' || i.code === 'invalid_union')));
    if (entered.length === 1) return entered[0]!.flatMap((i) => flatten(i, path));
  }
  return [{ path, message: issue.message }];
}

/** A mapping's unknown keys first, as an admin reads the file: typos before the values under them. */
function ordered(flat: readonly Flat[]): Flat[] {
  const out: Flat[] = [];
  for (const f of flat) {
    if (f.unknownKey === true) {
      const parent = f.path.slice(0, -1);
      const at = out.findIndex((o) => parent.every((k, i) => o.path[i] === k));
      if (at !== -1) { out.splice(at, 0, f); continue; }
    }
    out.push(f);
  }
  return out;
}

/** `groups.city-devices.subnets[1]` */
export function keyPath(path: readonly Key[]): string {
  let out = '';
  for (const k of path) {
    if (typeof k === 'number') out += `[${k}]`;
    else out += out === '' ? String(k) : `.${String(k)}`;
  }
  return out;
}

/** Optional keys are absent rather than present-and-undefined, so a frozen config prints and compares cleanly. */
export function withoutUndefined<T>(value: T): T {
  if (Array.isArray(value)) return value.map(withoutUndefined) as T;
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)
    .map(([k, v]) => [k, withoutUndefined(v)])) as T;
}

export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
