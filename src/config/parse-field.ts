/**
 * Pure parsers for the config's string-shaped values: each takes the text an admin wrote and
 * returns the normalised value, or a `Problem` whose message reads after the key path
 * (`dns.listen[0]: "0.0.0.0" must be host:port or [v6]:port`). No zod here: config/fields.ts wraps
 * these into schema leaves, and the CLI can reuse them.
 */
import { parseCidr, parseIPv4, parseIPv6 } from '../net/ip.js';

export class Problem {
  constructor(readonly message: string) {}
}

export interface ListenAddress {
  /** IP address without brackets, e.g. "0.0.0.0", "::1". */
  readonly host: string;
  readonly port: number;
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

const scratch = new Uint32Array(4);

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

/** A DNS host name (letters, digits, hyphens, dots), e.g. for dns.ddr.target or proxy.pacHost. */
export function parseHostname(value: string): string | Problem {
  const name = value.endsWith('.') ? value.slice(0, -1) : value;
  const labels = name.split('.');
  const ok = name.length <= 253 && labels.every((l) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(l));
  return ok ? name.toLowerCase() : new Problem(`${quote(value)} is not a host name`);
}

/** `host:port` or `[v6]:port` with an IP host; port 0 asks the OS for a free port (tests). */
export function parseListen(value: string): ListenAddress | Problem {
  const shape = new Problem(`${quote(value)} must be host:port or [v6]:port`);
  let host: string;
  let port: string;
  if (value.startsWith('[')) {
    const close = value.indexOf(']:');
    if (close === -1) return shape;
    host = value.slice(1, close);
    port = value.slice(close + 2);
    if (!parseIPv6(host, scratch, true)) return new Problem(`${quote(value)}: ${quote(host)} is not an IPv6 address`);
  } else {
    const colon = value.lastIndexOf(':');
    if (colon === -1 || value.indexOf(':') !== colon) return shape;
    host = value.slice(0, colon);
    port = value.slice(colon + 1);
    if (parseIPv4(host) < 0) {
      if (looksLikeHostname(host)) return new Problem(`${quote(value)}: the host must be an IP address, not a hostname`);
      return new Problem(`${quote(value)}: ${quote(host)} is not an IP address`);
    }
  }
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) > 65535) return new Problem(`${quote(value)}: port must be 0-65535`);
  return { host, port: Number(port) };
}

/** A CIDR or a bare address (= /32, /128), returned as written; host bits set are a typo, not a network. */
export function parseCidrText(value: string): string | Problem {
  const parsed = parseCidr(value);
  if (parsed === undefined) return new Problem(`${quote(value)} is not a CIDR`);
  if (parsed.hostBits) return new Problem(`${quote(value)} has bits set beyond its /${value.split('/')[1]} prefix`);
  return value;
}

/**
 * `9.9.9.9`, `9.9.9.9:5353`, `[2620:fe::fe]:53`, `2620:fe::fe`, `udp://…` (UDP, TCP on truncation),
 * `tls://1.1.1.1` (port 853), `https://dns.example/dns-query` (DoH, port 443). Plain and tls hosts
 * must be IPs: appfence would otherwise need a resolver to find its resolver.
 */
export function parseUpstream(value: string): UpstreamConfig | Problem {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(value)?.[1]?.toLowerCase();
  if (scheme === 'https') return httpsUpstream(value);
  if (scheme !== undefined && scheme !== 'udp' && scheme !== 'tls') {
    return new Problem(`${quote(value)}: unsupported scheme "${scheme}" (use a plain address, tls:// or https://)`);
  }
  const proto = scheme === 'tls' ? 'tls' : 'udp';
  const rest = scheme === undefined ? value : value.slice(scheme.length + 3);
  const notAnUpstream = new Problem(`${quote(value)} is not an upstream address`);
  let host = rest;
  let port = proto === 'tls' ? 853 : 53;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    host = rest.slice(1, close === -1 ? rest.length : close);
    const after = close === -1 ? '' : rest.slice(close + 1);
    if (close === -1 || (after !== '' && !after.startsWith(':'))) return notAnUpstream;
    if (after !== '') {
      const p = upstreamPort(value, after.slice(1));
      if (p instanceof Problem) return p;
      port = p;
    }
    if (!parseIPv6(host, scratch, true)) return new Problem(`${quote(value)}: ${quote(host)} is not an IPv6 address`);
  } else if (!parseIPv6(rest, scratch, true)) {
    const colon = rest.lastIndexOf(':');
    if (colon !== -1) {
      host = rest.slice(0, colon);
      const p = upstreamPort(value, rest.slice(colon + 1));
      if (p instanceof Problem) return p;
      port = p;
    }
    if (parseIPv4(host) < 0) {
      if (looksLikeHostname(host)) {
        return new Problem(`${quote(value)}: the host must be an IP address (appfence does not resolve its own upstreams)`);
      }
      return notAnUpstream;
    }
  }
  return { proto, host, port, text: value };
}

function upstreamPort(value: string, port: string): number | Problem {
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    return new Problem(`${quote(value)}: port must be 1-65535`);
  }
  return Number(port);
}

function httpsUpstream(value: string): UpstreamConfig | Problem {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return new Problem(`${quote(value)} is not a URL`);
  }
  if (url.hostname === '') return new Problem(`${quote(value)} has no host`);
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return { proto: 'https', host, port: url.port === '' ? 443 : Number(url.port), url: url.href, text: value };
}

/** A list source: an http(s) URL (normalised), or a file path (left for the caller to resolve). */
export function parseSourceUrl(value: string): { url: string } | { file: string } | Problem {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return { file: value };
  if (!/^https?:\/\//i.test(value)) return new Problem(`${quote(value)}: only files and http(s) URLs are supported`);
  try {
    return { url: new URL(value).href };
  } catch {
    return new Problem(`${quote(value)} is not a URL`);
  }
}

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `90s`, `30m`, `4h`, `1d` → milliseconds. */
export function parseDuration(value: string): number | Problem {
  const m = /^([1-9][0-9]{0,8})([smhd])$/.exec(value.trim());
  if (m === null) return new Problem(`${quote(value)} is not a duration (a number and s, m, h or d: 90s, 30m, 4h, 1d)`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}
