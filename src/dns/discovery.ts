/**
 * Discovery of Designated Resolvers (RFC 9462): a device that knows only our plain address asks
 * `_dns.resolver.arpa` SVCB and learns our DoT/DoH endpoints, then upgrades to them (Windows 11, iOS,
 * macOS and Android do). With `dns.ddr.target` set, every DoH listener port and every DoT listener
 * port becomes one ServiceMode SVCB record (RFC 9461: alpn, port, dohpath), TargetName = the target,
 * whose certificate the device then verifies. `_dns.<target>` SVCB (asked when a device verifies the
 * designation, RFC 9462 §4.2) gets the same records.
 *
 * `_dns.resolver.arpa` is never forwarded, with or without a target: the upstream (9.9.9.9, 1.1.1.1)
 * would answer with its *own* encrypted endpoints, and a managed device would upgrade straight past
 * appfence. Without a target the answer is NODATA, which tells devices there is nothing to upgrade to.
 * Records are encoded once per config load; a query only copies its question and patches the header.
 */
import { HEADER_SIZE, type Query } from '../wire/read.js';
import { OPT_SIZE, RCODE, replyFlags, writeOpt } from '../wire/write.js';
import { CLASS_IN } from '../wire/codes.js';

export const TYPE_SVCB = 64;
export const RESOLVER_ARPA = '_dns.resolver.arpa';
/** RFC 9461 §5: the URI template a DoH client fills in. */
export const DOH_PATH = '/dns-query{?dns}';
const TTL = 300;
const KEY_ALPN = 1;
const KEY_PORT = 3;
const KEY_DOHPATH = 7;

export class Discovery {
  /** `_dns.<target>` or null without a target. */
  private readonly targetOwner: string | null;
  private readonly records: Buffer;
  private readonly count: number;

  /** `target` null: no discovery (NODATA). Ports: the bound DoH and DoT listener ports. */
  constructor(target: string | null, dohPorts: readonly number[], dotPorts: readonly number[]) {
    this.targetOwner = target === null ? null : `_dns.${target}`;
    const rdatas: Buffer[] = [];
    if (target !== null) {
      let priority = 1;
      // DoH first: it also works where only 443 leaves the network; then DoT.
      for (const port of new Set(dohPorts)) rdatas.push(svcb(priority++, target, ['h2'], port, DOH_PATH));
      for (const port of new Set(dotPorts)) rdatas.push(svcb(priority++, target, ['dot'], port, null));
    }
    this.records = Buffer.concat(rdatas.map(ownedByQname));
    this.count = rdatas.length;
  }

  /** Our own answer when `q` asks for discovery, else null (the query goes on through the pipeline). */
  answer(query: Buffer, q: Query): Buffer | null {
    const designated = q.qname === RESOLVER_ARPA;
    if (!designated && (q.qname !== this.targetOwner || q.qtype !== TYPE_SVCB)) return null;
    const records = q.qclass === CLASS_IN && q.qtype === TYPE_SVCB ? this.count : 0;
    const questionLen = q.questionEnd - HEADER_SIZE;
    const body = records > 0 ? this.records : Buffer.alloc(0);
    const out = Buffer.allocUnsafe(HEADER_SIZE + questionLen + body.length + (q.hasOpt ? OPT_SIZE : 0));
    out.writeUInt16BE(q.id, 0);
    // AA: for resolver.arpa we are the authority (RFC 9462 §6.5: answered locally, never forwarded).
    out.writeUInt16BE(replyFlags(q.flags, RCODE.NOERROR) | (designated ? 0x0400 : 0), 2);
    out.writeUInt16BE(1, 4);
    out.writeUInt16BE(records, 6);
    out.writeUInt16BE(0, 8);
    out.writeUInt16BE(q.hasOpt ? 1 : 0, 10);
    let pos = HEADER_SIZE + query.copy(out, HEADER_SIZE, HEADER_SIZE, q.questionEnd);
    pos += body.copy(out, pos);
    if (q.hasOpt) writeOpt(out, pos, q.dnssecOk);
    return out;
  }
}

function wireName(name: string): Buffer {
  const parts: Buffer[] = [];
  for (const label of name.split('.')) {
    if (label.length === 0) continue;
    parts.push(Buffer.from([label.length]), Buffer.from(label, 'ascii'));
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

function param(key: number, value: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16BE(key, 0);
  head.writeUInt16BE(value.length, 2);
  return Buffer.concat([head, value]);
}

/** SVCB RDATA (RFC 9460 §2.2): priority, uncompressed TargetName, SvcParams in ascending key order. */
function svcb(priority: number, target: string, alpn: string[], port: number, dohpath: string | null): Buffer {
  const pri = Buffer.alloc(2);
  pri.writeUInt16BE(priority, 0);
  const portBytes = Buffer.alloc(2);
  portBytes.writeUInt16BE(port, 0);
  const alpnBytes = Buffer.concat(alpn.map((id) => Buffer.concat([Buffer.from([id.length]), Buffer.from(id, 'ascii')])));
  const params = [param(KEY_ALPN, alpnBytes), param(KEY_PORT, portBytes)];
  if (dohpath !== null) params.push(param(KEY_DOHPATH, Buffer.from(dohpath, 'utf8')));
  return Buffer.concat([pri, wireName(target), ...params]);
}

/** A record whose owner is the question's name (pointer to offset 12), class IN, TTL. */
function ownedByQname(rdata: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(0xc00c, 0);
  head.writeUInt16BE(TYPE_SVCB, 2);
  head.writeUInt16BE(CLASS_IN, 4);
  head.writeUInt32BE(TTL, 6);
  head.writeUInt16BE(rdata.length, 10);
  return Buffer.concat([head, rdata]);
}
