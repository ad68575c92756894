/**
 * The PAC file served on GET /proxy.pac and /wpad.dat: every URL through this proxy, no DIRECT
 * fallback (a fallback would let a device skip the policy whenever the proxy is slow). Served from the
 * TLS listener, it names the proxy as HTTPS (Chromium and Firefox understand "HTTPS host:port").
 */
export const PAC_CONTENT_TYPE = 'application/x-ns-proxy-autoconfig';
export const PAC_PATHS: ReadonlySet<string> = new Set(['/proxy.pac', '/wpad.dat']);

/** `hostPort` is already checked (config pacHost, or a Host header that passed HOST_HEADER). */
export function pacFile(hostPort: string, tls: boolean): string {
  return `// appfence: every request through this proxy
function FindProxyForURL(url, host) {
  return "${tls ? 'HTTPS' : 'PROXY'} ${hostPort}";
}
`;
}

/** A Host header fit to be written into the PAC's string: name or IPv4 or [IPv6], optional port. */
export const HOST_HEADER = /^(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * Where the PAC points: `pacHost` with the port this request came in on; else the request's own Host
 * (what the device used to reach us), else the address it connected to.
 */
export function pacTarget(pacHost: string | undefined, hostHeader: string | undefined, localAddress: string, localPort: number): string {
  if (pacHost !== undefined) return `${pacHost}:${localPort}`;
  if (hostHeader !== undefined && HOST_HEADER.test(hostHeader)) return hostHeader.includes(':') && !hostHeader.endsWith(']') ? hostHeader : `${hostHeader}:${localPort}`;
  return localAddress.includes(':') ? `[${localAddress}]:${localPort}` : `${localAddress}:${localPort}`;
}
