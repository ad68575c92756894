/**
 * Loop and SSRF guard: a proxied request or tunnel aimed at one of appfence's own listeners (the proxy
 * itself, DNS, DoT/DoH, admin) is refused. Without it `GET http://127.0.0.1:3128/` loops until sockets
 * run out, and any client could reach the loopback-only admin API through the proxy.
 */
import { networkInterfaces } from 'node:os';
import net from 'node:net';

function unmapped(address: string): string {
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
}

function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

export class SelfGuard {
  /** Bound ports by listen host ("0.0.0.0" and "::" mean every local address). */
  private readonly bound = new Map<number, Set<string>>();
  private readonly local = new Set<string>(['::1']);

  constructor() {
    for (const list of Object.values(networkInterfaces())) {
      for (const i of list ?? []) this.local.add(unmapped(i.address));
    }
  }

  add(host: string, port: number): void {
    let hosts = this.bound.get(port);
    if (hosts === undefined) this.bound.set(port, (hosts = new Set()));
    hosts.add(unmapped(host));
  }

  private isLocal(address: string): boolean {
    return this.local.has(address) || address.startsWith('127.') || isWildcard(address);
  }

  /** Would connecting to address:port reach one of our own listeners? */
  isSelf(address: string, port: number): boolean {
    const hosts = this.bound.get(port);
    if (hosts === undefined) return false;
    const a = unmapped(address);
    if (!this.isLocal(a)) return false;
    // connecting to 0.0.0.0 reaches whatever listens on loopback
    if (isWildcard(a)) return true;
    for (const h of hosts) if (isWildcard(h) || h === a) return true;
    return false;
  }
}
