/**
 * Where a proxy request wants to go, read from the request line: an absolute URI (`GET http://host/…`)
 * or a CONNECT authority (`host:port`). Host names come out as the policy compares them (lowercase,
 * punycode, no trailing dot); IP literals as the WHATWG URL parser normalises them, so `0x7f.1` and
 * `2130706433` are checked, and connected to, as 127.0.0.1.
 */
import net from 'node:net';

export interface Target {
  /** Lowercase name without trailing dot, or an IP address (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
  /** 4 or 6 for an IP literal, 0 for a name. */
  readonly ipFamily: 0 | 4 | 6;
  /** For absolute URIs: host[:port] as the origin must receive it in Host. */
  readonly authority: string;
}

/** Labels of letters, digits, '-' and '_' (seen in real CDN names), 1 to 63 octets each. */
const NAME = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;
const AUTHORITY = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/?#@[\]\\]+):(\d{1,5})$/;

function fromUrl(url: URL, port: number): Target | null {
  let host = url.hostname;
  if (host.startsWith('[')) host = host.slice(1, -1);
  if (host.endsWith('.')) host = host.slice(0, -1);
  const family = net.isIP(host);
  if (family === 0 && (host.length > 253 || !NAME.test(host))) return null;
  if (port < 1 || port > 65535) return null;
  return { host, port, ipFamily: family as 0 | 4 | 6, authority: url.host };
}

/** `http://host[:port]/path` → target; null for anything else (origin-form, https:, userinfo, bad host). */
export function absoluteTarget(requestUrl: string): Target | null {
  if (!requestUrl.startsWith('http://') && !requestUrl.startsWith('HTTP://')) return null;
  let url: URL;
  try {
    url = new URL(requestUrl);
  } catch {
    return null;
  }
  // credentials in a proxied URL would be passed to whoever the name resolves to: refuse rather than strip
  if (url.username !== '' || url.password !== '') return null;
  return fromUrl(url, url.port === '' ? 80 : Number(url.port));
}

/** CONNECT's `host:port` (RFC 9110 §9.3.6: the port is required) → target; null when malformed. */
export function connectTarget(authority: string): Target | null {
  const m = AUTHORITY.exec(authority);
  if (m === null) return null;
  let url: URL;
  try {
    url = new URL(`http://${m[1]}/`);
  } catch {
    return null;
  }
  return fromUrl(url, Number(m[2]));
}
