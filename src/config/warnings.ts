/**
 * Configurations that are valid but almost surely wrong, found without touching the network:
 * `appfence validate` prints them, `serve` logs them at start. Each names the key path to look at.
 */
import { parseCidr, wordMask, type Cidr } from '../net/ip.js';
import type { Config } from './types.js';
import type { AppLogger } from '../log/logger.js';

export interface ConfigWarning {
  readonly keyPath: string;
  readonly message: string;
}

export function configWarnings(config: Config): ConfigWarning[] {
  const warnings: ConfigWarning[] = [];
  const warn = (keyPath: string, message: string): void => { warnings.push({ keyPath, message }); };
  const allow = config.access.allow.map(parseCidr).filter((c): c is Cidr => c !== undefined);

  const subnets: { group: string; text: string; cidr: Cidr; key: string }[] = [];
  for (const g of config.groups) {
    const path = `groups.${g.name}`;
    if (g.block.length === 0) warn(path, 'blocks nothing (no block lists): its devices are answered as if unmanaged');
    g.subnets.forEach((text, i) => {
      const cidr = parseCidr(text);
      if (cidr === undefined) return;
      const key = `${path}.subnets[${i}]`;
      subnets.push({ group: g.name, text, cidr, key });
      if (!allow.some((a) => contains(a, cidr))) {
        warn(key, `"${text}" is not inside access.allow: these clients are REFUSED before the group applies`);
      }
    });
  }
  for (const inner of subnets) {
    const outer = subnets.find((o) => o.group !== inner.group && o.cidr.prefix < inner.cidr.prefix && contains(o.cidr, inner.cidr));
    if (outer !== undefined) {
      warn(inner.key, `"${inner.text}" lies inside "${outer.text}" of group "${outer.group}": the longer prefix wins, so its devices are "${inner.group}"`);
    }
  }

  const used = new Set([config.default, ...config.groups].flatMap((g) => [...g.block, ...g.allow]));
  for (const list of config.lists) {
    if (!used.has(list.name)) warn(`lists.${list.name}`, 'no group blocks or allows with this list');
  }

  const tlsListener = config.dns.tls !== undefined || config.dns.https !== undefined || config.proxy?.tls !== undefined;
  for (const g of config.groups) {
    if (g.certificates !== undefined && !tlsListener) {
      warn(`groups.${g.name}.certificates`, 'no TLS listener (dns.tls, dns.https, proxy.tls) asks for a device certificate, so this never matches');
    }
  }
  return warnings;
}

/** The app-log form, the same at start and after every successful reload (SIGHUP, POST /reload). */
export function logConfigWarnings(log: AppLogger, config: Config): void {
  for (const w of configWarnings(config)) log.warn({ key: w.keyPath, detail: w.message }, 'config warning');
}

/** `outer` covers every address of `inner`. */
function contains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || outer.prefix > inner.prefix) return false;
  for (let w = 0; w < outer.words.length; w++) {
    const mask = wordMask(outer.prefix - 32 * w);
    if ((((inner.words[w] ?? 0) & mask) >>> 0) !== (outer.words[w] ?? 0)) return false;
  }
  return true;
}
