/**
 * Subnet identity: which group a client belongs to by its source address (longest prefix over
 * every group's `subnets`), else `default`. Certificate identity (via: 'cert') is decided in
 * identity/certificate.ts and beats this one. Identities are frozen objects shared by every query
 * of a group, and results are memoised per address, so the hot path is one cache lookup.
 */
import { LRUCache } from 'lru-cache';
import type { GroupConfig } from '../config/types.js';
import { PrefixTable } from './prefix-table.js';

import type { ClientIdentity } from '../net/peer.js';

export type { ClientIdentity, Via } from '../net/peer.js';

const DEFAULT_IDENTITY: ClientIdentity = Object.freeze({ group: 'default', via: 'default' });

/** Enough for every device of a large site; an address that falls out is just looked up again. */
const MEMO_ENTRIES = 10_000;

export class SubnetIdentifier {
  private readonly table = new PrefixTable<ClientIdentity>();
  private readonly memo = new LRUCache<string, ClientIdentity>({ max: MEMO_ENTRIES });

  constructor(groups: readonly GroupConfig[]) {
    // Config validation rejects one subnet in two groups; should one slip through, adding in
    // reverse lets the group written first win, as a reader of the file would expect.
    for (const group of [...groups].reverse()) {
      const identity: ClientIdentity = Object.freeze({ group: group.name, via: 'subnet' });
      for (const cidr of group.subnets) this.table.add(cidr, identity);
    }
  }

  identify(address: string): ClientIdentity {
    let identity = this.memo.get(address);
    if (identity === undefined) {
      identity = this.table.lookup(address) ?? DEFAULT_IDENTITY;
      this.memo.set(address, identity);
    }
    return identity;
  }
}
