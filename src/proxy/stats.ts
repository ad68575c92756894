/**
 * Proxy request counters as plain numbers, counted where the outcome is known; the metrics module reads
 * them at scrape time as appfence_proxy_requests_total{result}. One request or CONNECT counts once.
 *   allowed: forwarded or tunnelled; blocked: the policy said no (block page / 403);
 *   refused: appfence said no for another reason (access, connectPorts, loop, tunnel cap, malformed);
 *   error: the origin or the name could not be reached (502, 504).
 */
export const PROXY_RESULTS = ['allowed', 'blocked', 'refused', 'error'] as const;
export type ProxyResult = (typeof PROXY_RESULTS)[number];

export class ProxyStats {
  allowed = 0;
  blocked = 0;
  refused = 0;
  error = 0;

  count(result: ProxyResult): void {
    this[result]++;
  }

  get(result: ProxyResult): number {
    return this[result];
  }
}
