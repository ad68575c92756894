/**
 * RFC 9110 §7.6.1: connection-specific fields are not forwarded, in either direction, and neither is any
 * field the Connection header names. Proxy-Authorization/-Authenticate concern this hop only.
 */
import type { IncomingHttpHeaders } from 'node:http';

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te',
  'trailer', 'transfer-encoding', 'upgrade'];

export function stripHopByHop(headers: IncomingHttpHeaders): void {
  const listed = headers.connection;
  if (listed !== undefined) {
    for (const name of listed.split(',')) {
      const n = name.trim().toLowerCase();
      if (n !== '') delete headers[n];
    }
  }
  for (const name of HOP_BY_HOP) delete headers[name];
}

/** Our Via entry appended to any the message already carries (RFC 9110 §7.6.3). */
export function withVia(existing: string | string[] | undefined, httpVersion: string): string {
  const ours = `${httpVersion} appfence`;
  if (existing === undefined || existing === '') return ours;
  return `${Array.isArray(existing) ? existing.join(', ') : existing}, ${ours}`;
}
