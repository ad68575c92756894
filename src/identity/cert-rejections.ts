/**
 * Device certificates that were presented but did not identify their client. Without a line, an
 * expired laptop certificate silently turns a city device into an unmanaged one. One warn line per
 * certificate per interval (subject, issuer, reason), and plain counters by reason for the metrics
 * front end. Reasons are the operator's words: expired, not yet valid, unknown CA, wrong key usage,
 * matches no group.
 */
import type { X509Certificate } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { AppLogger } from '../log/logger.js';

export const CERT_REJECTION_REASONS = ['expired', 'not yet valid', 'unknown CA', 'wrong key usage', 'matches no group'] as const;
export type CertRejectionReason = (typeof CERT_REJECTION_REASONS)[number];

const REPORT_INTERVAL_MS = 60_000;

/** Our verdicts and OpenSSL's chain-check codes (socket.authorizationError), in the operator's words. */
export function rejectionReason(reason: string): CertRejectionReason {
  switch (reason) {
    case 'expired': case 'CERT_HAS_EXPIRED': return 'expired';
    case 'not yet valid': case 'CERT_NOT_YET_VALID': return 'not yet valid';
    case 'not for client authentication': case 'INVALID_PURPOSE': return 'wrong key usage';
    case 'matches no group': return 'matches no group';
    default: return 'unknown CA'; // not signed by clientCerts.ca, self-signed, unable to get issuer
  }
}

export class CertRejections {
  /** Rejections since start, by reason. */
  readonly counts: Record<CertRejectionReason, number> = Object.fromEntries(CERT_REJECTION_REASONS.map((r) => [r, 0])) as Record<CertRejectionReason, number>;
  /** Per certificate (SHA-256 fingerprint): when it was last reported, and how often since. */
  private readonly seen = new LRUCache<string, { last: number; count: number }>({ max: 10_000 });

  constructor(private readonly log: AppLogger, private readonly intervalMs = REPORT_INTERVAL_MS, private readonly now: () => number = Date.now) {}

  note(cert: X509Certificate, reason: CertRejectionReason, client: string): void {
    this.counts[reason]++;
    const key = cert.fingerprint256;
    const now = this.now();
    const entry = this.seen.get(key);
    if (entry !== undefined && now - entry.last < this.intervalMs) {
      entry.count++;
      return;
    }
    const count = (entry?.count ?? 0) + 1;
    this.seen.set(key, { last: now, count: 0 });
    this.log.warn({ subject: oneLine(cert.subject), issuer: oneLine(cert.issuer), reason, client, count,
      validTo: cert.validTo }, 'device certificate rejected: client identified by address instead');
  }
}

/** "CN=laptop-042\nOU=City Devices" → "CN=laptop-042, OU=City Devices". */
function oneLine(name: string): string {
  return name.split('\n').join(', ');
}
