/**
 * The embedded default: what `appfence serve` runs without --config. Everything on loopback
 * (DNS 127.0.0.1:1053, proxy :3128, admin :9153), upstreams taken from /etc/resolv.conf, the
 * shipped TikTok list, and every loopback client managed — so `dig @127.0.0.1 -p 1053
 * www.tiktok.com` shows the sinkhole at once. Built through the same validator as a file.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../errors.js';
import { isIP } from './parse-field.js';
import type { Config } from './types.js';
import { validateConfig } from './validate.js';

export const EMBEDDED_SOURCE = '<embedded default>';

/** src/config/ and dist/config/ both sit two folders below the package root. */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function defaultConfig(opts: { resolvConf?: string } = {}): Config {
  const resolvConf = opts.resolvConf ?? '/etc/resolv.conf';
  const upstreams = nameservers(resolvConf).map((ip) => (ip.includes(':') ? `[${ip}]:53` : ip));
  const loopback = ['127.0.0.0/8', '::1/128'];
  return validateConfig({
    dns: { listen: ['127.0.0.1:1053'], upstreams },
    proxy: { listen: ['127.0.0.1:3128'] },
    access: { allow: loopback },
    lists: { tiktok: { sources: ['blocklists/tiktok.txt'] } },
    groups: { loopback: { subnets: loopback, block: ['tiktok'] } },
    log: { level: 'info', blocks: 'stdout' },
    admin: { listen: '127.0.0.1:9153' },
  }, { source: EMBEDDED_SOURCE, dir: PACKAGE_ROOT });
}

/** The `nameserver` lines of a resolv.conf that hold an IP address (zone ids such as %eth0 kept). */
export function nameservers(resolvConf: string): string[] {
  let text: string;
  try {
    text = readFileSync(resolvConf, 'utf8');
  } catch (err) {
    throw new ConfigError('dns.upstreams', `the embedded default takes its upstreams from ${resolvConf}, which cannot be read ` +
      `(${(err as Error).message}); run with --config and dns.upstreams`, { cause: err });
  }
  const found: string[] = [];
  for (const line of text.split('\n')) {
    const [keyword, address] = line.trim().split(/\s+/);
    if (keyword === 'nameserver' && address !== undefined && isIP(address, true)) found.push(address);
  }
  if (found.length === 0) {
    throw new ConfigError('dns.upstreams', `the embedded default takes its upstreams from ${resolvConf}, which names no ` +
      'usable nameserver; run with --config and dns.upstreams');
  }
  return found;
}
