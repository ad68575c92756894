/**
 * access.allow: may this source address use appfence at all? Anyone outside it gets DNS REFUSED
 * or proxy 403 before identification, so a resolver on 0.0.0.0:53 is not an open resolver.
 * Fed by Config.access.allow (CIDRs, already validated); IPv4-mapped IPv6 counts as IPv4.
 */
import { PrefixTable } from './prefix-table.js';

export class AccessList {
  private readonly table = new PrefixTable<true>();

  constructor(cidrs: readonly string[]) {
    for (const cidr of cidrs) this.table.add(cidr, true);
  }

  /** False for addresses outside every range and for anything that is not an IP address. */
  allows(address: string): boolean {
    return this.table.lookup(address) === true;
  }
}
