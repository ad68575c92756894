/**
 * The one place the identification order is written (SPEC "Identification"):
 *   a verified device certificate › access.allow › the client's subnet › `default`.
 * A certificate passes access.allow (the laptop at a hotel is served) and beats the subnet. Every
 * front end and `appfence check` ask this, so the explanation cannot drift from the decision.
 *
 * access.allow and every group's `subnets` go into one longest-prefix table whose value says both
 * "allowed?" and "which identity" (Unbound's ACL entry carries its tags the same way), so a query
 * costs one lookup. Identities are frozen objects shared by every query of a group.
 */
import type { GroupConfig } from '../config/types.js';
import type { ClientIdentity, Peer } from '../net/peer.js';
import { parseCidr, type Cidr } from '../net/ip.js';
import { PrefixTable } from './prefix-table.js';

export type { ClientIdentity, Via } from '../net/peer.js';

export interface Identifier {
  /** null: outside access.allow and no verified certificate (DNS REFUSED, proxy 403). */
  identify(peer: Peer): ClientIdentity | null;
}

const DEFAULT_IDENTITY: ClientIdentity = Object.freeze({ group: 'default', via: 'default' });

/** What one prefix of the merged table means for an address it holds. */
interface Entry {
  readonly allowed: boolean;
  readonly identity: ClientIdentity;
}

const REFUSED: Entry = Object.freeze({ allowed: false, identity: DEFAULT_IDENTITY });

interface Prefix {
  readonly text: string;
  readonly cidr: Cidr;
}

export class ClientIdentifier implements Identifier {
  private readonly table = new PrefixTable<Entry>();

  /** `allow`: access.allow CIDRs; `groups`: their `subnets` (both validated by config). */
  constructor(allow: readonly string[], groups: readonly GroupConfig[]) {
    const access = prefixes(allow);
    const subnets: { prefix: Prefix; identity: ClientIdentity }[] = [];
    for (const group of groups) {
      const identity: ClientIdentity = Object.freeze({ group: group.name, via: 'subnet' });
      for (const p of prefixes(group.subnets)) subnets.push({ prefix: p, identity });
    }
    // Prefixes holding one address are nested, so the longest one in the merged table says it all
    // once each entry knows the access ranges and the longest group subnet that enclose it.
    const entries = new Map<string, Entry>();
    for (const p of [...access, ...subnets.map((s) => s.prefix)]) {
      const key = `${p.cidr.family}/${p.cidr.words.join('.')}/${p.cidr.prefix}`;
      if (entries.has(key)) continue;
      const allowed = access.some((a) => encloses(a.cidr, p.cidr));
      // Config validation rejects one subnet in two groups; should one slip through, the group
      // written first wins (the first of equal-length enclosing subnets), as a reader would expect.
      let best: { prefix: Prefix; identity: ClientIdentity } | undefined;
      for (const s of subnets) {
        if (encloses(s.prefix.cidr, p.cidr) && (best === undefined || s.prefix.cidr.prefix > best.prefix.cidr.prefix)) best = s;
      }
      const entry: Entry = Object.freeze({ allowed, identity: best?.identity ?? DEFAULT_IDENTITY });
      entries.set(key, entry);
      this.table.add(p.text, entry);
    }
  }

  identify(peer: Peer): ClientIdentity | null {
    if (peer.cert !== undefined) return peer.cert;
    const entry = this.table.lookup(peer.address) ?? REFUSED;
    return entry.allowed ? entry.identity : null;
  }
}

function prefixes(texts: readonly string[]): Prefix[] {
  return texts.map((text) => {
    const cidr = parseCidr(text);
    if (cidr === undefined) throw new TypeError(`"${text}" is not a CIDR`);
    return { text, cidr };
  });
}

/** Whether `outer` holds every address of `inner` (same family, shorter or equal prefix, same network bits). */
function encloses(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || outer.prefix > inner.prefix) return false;
  for (let w = 0, bits = outer.prefix; bits > 0; w++, bits -= 32) {
    const mask = bits >= 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
    if (((inner.words[w]! & mask) >>> 0) !== outer.words[w]) return false;
  }
  return true;
}
