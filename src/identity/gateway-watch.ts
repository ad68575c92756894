/**
 * SPEC "Docker": behind a container bridge network every client arrives from the bridge's gateway
 * address after NAT, so every device falls into one subnet and subnet identity silently stops
 * working (the Pi-hole / AdGuard Home trap). This watches the first client addresses after start:
 * when the first `sample` requests all come from one address that looks like a container gateway,
 * it says so once. After its verdict (or a second address) it costs one boolean test per request.
 */
import { readFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';

export interface GatewayWatchOptions {
  /** Called once with the address and how many requests came only from it. */
  readonly onSuspect: (address: string, requests: number) => void;
  /** Requests to see before judging; default 50. */
  readonly sample?: number;
  /** Addresses that count as a gateway besides the usual container ones (the host's default route, tests). */
  readonly gateways?: readonly string[];
}

export class GatewayWatch {
  /** True once judged: the request path skips the watch entirely. */
  done = false;
  private first: string | null = null;
  private count = 0;
  private readonly sample: number;
  private readonly gateways: ReadonlySet<string>;

  constructor(private readonly opts: GatewayWatchOptions) {
    this.sample = opts.sample ?? 50;
    this.gateways = new Set([...defaultRouteGateways(), ...(opts.gateways ?? [])]);
  }

  see(address: string): void {
    if (this.done) return;
    if (this.first === null) this.first = address;
    else if (address !== this.first) {
      this.done = true; // two clients: not everyone behind one NAT address
      return;
    }
    if (++this.count < this.sample) return;
    this.done = true;
    if (this.looksLikeGateway(address)) this.opts.onSuspect(address, this.count);
  }

  looksLikeGateway(address: string): boolean {
    const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
    if (this.gateways.has(v4) || this.gateways.has(address)) return true;
    if (!isIPv4(v4)) return false;
    const [a, b, , d] = v4.split('.').map(Number) as [number, number, number, number];
    // Docker's default and compose bridges (172.17–31.0.1, x.y.0.1 of 172.16/12), Podman's 10.88.0.1
    return d === 1 && ((a === 172 && b >= 16 && b <= 31) || (a === 10 && b === 88));
  }
}

/** IPv4 default-route gateways from /proc/net/route (inside a bridged container: the bridge). */
export function defaultRouteGateways(routeFile = '/proc/net/route'): string[] {
  let text: string;
  try {
    text = readFileSync(routeFile, 'utf8');
  } catch {
    return []; // not Linux, or /proc hidden: the address patterns still apply
  }
  const found: string[] = [];
  for (const line of text.split('\n').slice(1)) {
    const [, destination, gateway] = line.trim().split(/\s+/);
    if (destination !== '00000000' || gateway === undefined || !/^[0-9A-F]{8}$/i.test(gateway) || gateway === '00000000') continue;
    // little-endian hex, as the kernel prints it
    const n = Number.parseInt(gateway, 16);
    found.push([n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join('.'));
  }
  return found;
}
