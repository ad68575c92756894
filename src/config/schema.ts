/**
 * The field readers of config validation: each takes a key path and a raw YAML value, returns the
 * normalised value or undefined, and records a ConfigError that starts with the key path
 * (`dns.listen[0]: "0.0.0.0" must be host:port or [v6]:port`). Errors are collected, never thrown,
 * so an admin sees every problem of a file in one run. config/validate.ts composes them per section;
 * the tree helpers at the end strip absent optionals and deep-freeze the result.
 */
import { isAbsolute, resolve } from 'node:path';
import { ConfigError } from '../errors.js';
import type { ListenAddress, UpstreamConfig } from './types.js';
import { parseCidr, parseIPv4, parseIPv6 } from '../net/ip.js';

export type Raw = Record<string, unknown>;

const scratch = new Uint32Array(4);

export function child(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path === '' ? key : `${path}.${key}`;
}

export function quote(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

export function isIP(text: string, allowZone = false): boolean {
  return parseIPv4(text) >= 0 || parseIPv6(text, scratch, allowZone);
}

/** Host names and IP-like typos get different advice: the first needs an IP, the second a fix. */
function looksLikeHostname(text: string): boolean {
  return /^[a-z0-9-]+(\.[a-z0-9-]+)*\.?$/i.test(text) && /[a-z]/i.test(text);
}

export class Reader {
  readonly errors: ConfigError[] = [];

  /**
   * @param dir folder that relative paths resolve against
   * @param reported key paths whose problem is already recorded (an unset ${VAR}): no second error there
   */
  constructor(readonly dir: string, private readonly reported: ReadonlySet<string> = new Set()) {}

  fail(path: string, message: string): undefined {
    if (!this.reported.has(path)) this.errors.push(new ConfigError(path, message));
    return undefined;
  }

  /** A mapping with only the given keys; every unknown key is its own error. */
  mapping(path: string, value: unknown, keys: readonly string[]): Raw | undefined {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return this.fail(path, 'must be a mapping');
    for (const key of Object.keys(value)) {
      if (!keys.includes(key)) this.fail(child(path, key), 'unknown key');
    }
    return value as Raw;
  }

  /** Any keys (names chosen by the admin: lists, groups). */
  namedMapping(path: string, value: unknown): Raw | undefined {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return this.fail(path, 'must be a mapping');
    return value as Raw;
  }

  /** Each item read by `item`; items that fail are dropped (their errors are recorded). */
  list<T>(path: string, value: unknown, item: (path: string, value: unknown) => T | undefined): T[] | undefined {
    if (!Array.isArray(value)) return this.fail(path, 'must be a list');
    const out: T[] = [];
    value.forEach((v: unknown, i) => {
      const read = item(child(path, i), v);
      if (read !== undefined) out.push(read);
    });
    return out;
  }

  string(path: string, value: unknown): string | undefined {
    if (typeof value !== 'string') return this.fail(path, 'must be a string');
    if (value.trim() === '') return this.fail(path, 'must not be empty');
    return value;
  }

  boolean(path: string, value: unknown, fallback: boolean): boolean {
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') return this.fail(path, 'must be true or false') ?? fallback;
    return value;
  }

  /** Integers only; 1.5, "1500" and 1e400 are errors. `min` 1 reads "positive", 0 "non-negative". */
  integer(path: string, value: unknown, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
    if (value === undefined) return fallback;
    if (typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max) return value;
    if (max !== Number.MAX_SAFE_INTEGER) return this.fail(path, `must be an integer from ${min} to ${max}`) ?? fallback;
    return this.fail(path, `must be a ${min === 1 ? 'positive' : 'non-negative'} integer`) ?? fallback;
  }

  oneOf<T extends string>(path: string, value: unknown, options: readonly T[], fallback: T): T {
    if (value === undefined) return fallback;
    if (typeof value === 'string' && (options as readonly string[]).includes(value)) return value as T;
    return this.fail(path, `must be one of ${options.join(', ')}`) ?? fallback;
  }

  /** A file path; relative ones resolve against the config file's folder. */
  path(path: string, value: unknown): string | undefined {
    const text = this.string(path, value);
    if (text === undefined) return undefined;
    return isAbsolute(text) ? text : resolve(this.dir, text);
  }

  /** `host:port` or `[v6]:port` with an IP host; port 0 asks the OS for a free port (tests). */
  listen(path: string, value: unknown): ListenAddress | undefined {
    if (typeof value !== 'string') return this.fail(path, 'must be a string "host:port" or "[v6]:port"');
    const shape = `${quote(value)} must be host:port or [v6]:port`;
    let host: string;
    let port: string;
    if (value.startsWith('[')) {
      const close = value.indexOf(']:');
      if (close === -1) return this.fail(path, shape);
      host = value.slice(1, close);
      port = value.slice(close + 2);
      if (!parseIPv6(host, scratch, true)) return this.fail(path, `${quote(value)}: ${quote(host)} is not an IPv6 address`);
    } else {
      const colon = value.lastIndexOf(':');
      if (colon === -1 || value.indexOf(':') !== colon) return this.fail(path, shape);
      host = value.slice(0, colon);
      port = value.slice(colon + 1);
      if (parseIPv4(host) < 0) {
        if (looksLikeHostname(host)) return this.fail(path, `${quote(value)}: the host must be an IP address, not a hostname`);
        return this.fail(path, `${quote(value)}: ${quote(host)} is not an IP address`);
      }
    }
    if (!/^[0-9]{1,5}$/.test(port) || Number(port) > 65535) return this.fail(path, `${quote(value)}: port must be 0-65535`);
    return { host, port: Number(port) };
  }

  listenList(path: string, value: unknown, fallback: readonly string[]): ListenAddress[] {
    const read = this.list(path, value ?? fallback, (p, v) => this.listen(p, v)) ?? [];
    return read;
  }

  /** A CIDR or a bare address (= /32, /128), returned as written; host bits set are a typo, not a network. */
  cidr(path: string, value: unknown): string | undefined {
    if (typeof value !== 'string') return this.fail(path, 'must be a string (a CIDR such as "10.20.0.0/16")');
    const parsed = parseCidr(value);
    if (parsed === undefined) return this.fail(path, `${quote(value)} is not a CIDR`);
    if (parsed.hostBits) return this.fail(path, `${quote(value)} has bits set beyond its /${value.split('/')[1]} prefix`);
    return value;
  }

  /**
   * `9.9.9.9`, `9.9.9.9:5353`, `[2620:fe::fe]:53`, `2620:fe::fe`, `udp://…` (UDP, TCP on truncation),
   * `tls://1.1.1.1` (port 853), `https://dns.example/dns-query` (DoH, port 443). Plain and tls hosts
   * must be IPs: appfence would otherwise need a resolver to find its resolver.
   */
  upstream(path: string, value: unknown): UpstreamConfig | undefined {
    if (typeof value !== 'string') return this.fail(path, 'must be a string such as "9.9.9.9" or "tls://1.1.1.1:853"');
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(value)?.[1]?.toLowerCase();
    if (scheme === 'https') return this.httpsUpstream(path, value);
    if (scheme !== undefined && scheme !== 'udp' && scheme !== 'tls') {
      return this.fail(path, `${quote(value)}: unsupported scheme "${scheme}" (use a plain address, tls:// or https://)`);
    }
    const proto = scheme === 'tls' ? 'tls' : 'udp';
    const rest = scheme === undefined ? value : value.slice(scheme.length + 3);
    let host = rest;
    let port = proto === 'tls' ? 853 : 53;
    if (rest.startsWith('[')) {
      const close = rest.indexOf(']');
      host = rest.slice(1, close === -1 ? rest.length : close);
      const after = close === -1 ? '' : rest.slice(close + 1);
      if (close === -1 || (after !== '' && !after.startsWith(':'))) return this.fail(path, `${quote(value)} is not an upstream address`);
      if (after !== '') {
        const p = this.upstreamPort(path, value, after.slice(1));
        if (p === undefined) return undefined;
        port = p;
      }
      if (!parseIPv6(host, scratch, true)) return this.fail(path, `${quote(value)}: ${quote(host)} is not an IPv6 address`);
    } else if (!parseIPv6(rest, scratch, true)) {
      const colon = rest.lastIndexOf(':');
      if (colon !== -1) {
        host = rest.slice(0, colon);
        const p = this.upstreamPort(path, value, rest.slice(colon + 1));
        if (p === undefined) return undefined;
        port = p;
      }
      if (parseIPv4(host) < 0) {
        if (looksLikeHostname(host)) {
          return this.fail(path, `${quote(value)}: the host must be an IP address (appfence does not resolve its own upstreams)`);
        }
        return this.fail(path, `${quote(value)} is not an upstream address`);
      }
    }
    return { proto, host, port, text: value };
  }

  private upstreamPort(path: string, value: string, port: string): number | undefined {
    if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
      return this.fail(path, `${quote(value)}: port must be 1-65535`);
    }
    return Number(port);
  }

  private httpsUpstream(path: string, value: string): UpstreamConfig | undefined {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return this.fail(path, `${quote(value)} is not a URL`);
    }
    if (url.hostname === '') return this.fail(path, `${quote(value)} has no host`);
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    return { proto: 'https', host, port: url.port === '' ? 443 : Number(url.port), url: url.href, text: value };
  }
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
