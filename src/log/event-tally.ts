/**
 * Counts of logged block and audit events by group × list × protocol, for /metrics. Counted where
 * every front end already reports an event (the block log), so DNS and proxy blocks are counted
 * alike. Two Map lookups and one typed-array add per event: next to the JSON line written for the
 * same event, that is noise, and a scrape reads the numbers without touching the hot path.
 */
import { PROTOS, type Proto } from '../net/peer.js';

const PROTO_INDEX: Readonly<Record<Proto, number>> = { udp: 0, tcp: 1, dot: 2, doh: 3, http: 4, connect: 5 };

export class EventTally {
  private readonly byGroup = new Map<string, Map<string, Float64Array>>();

  add(group: string, list: string, proto: Proto): void {
    let lists = this.byGroup.get(group);
    if (lists === undefined) this.byGroup.set(group, (lists = new Map()));
    let counts = lists.get(list);
    if (counts === undefined) lists.set(list, (counts = new Float64Array(PROTOS.length)));
    const i = PROTO_INDEX[proto];
    counts[i] = (counts[i] ?? 0) + 1;
  }

  /** [group, list, proto, count] for every combination seen. */
  *entries(): Generator<[string, string, Proto, number]> {
    for (const [group, lists] of this.byGroup) {
      for (const [list, counts] of lists) {
        for (let i = 0; i < PROTOS.length; i++) if (counts[i] !== 0) yield [group, list, PROTOS[i]!, counts[i]!];
      }
    }
  }

  /** [group, list, count] summed over protocols. */
  *byList(): Generator<[string, string, number]> {
    for (const [group, lists] of this.byGroup) {
      for (const [list, counts] of lists) yield [group, list, counts.reduce((a, b) => a + b, 0)];
    }
  }

  count(group: string, list: string, proto?: Proto): number {
    const counts = this.byGroup.get(group)?.get(list);
    if (counts === undefined) return 0;
    return proto === undefined ? counts.reduce((a, b) => a + b, 0) : counts[PROTO_INDEX[proto]] ?? 0;
  }
}
