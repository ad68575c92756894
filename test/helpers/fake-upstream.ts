/**
 * A misbehaving-on-request upstream DNS server for tests: UDP and TCP on one 127.0.0.1 port, answers from a
 * table the test owns (and may change while running). Answers are built with dns2's Packet, independent of
 * src/wire. Knobs: truncateUdp, silent, wrongId / wrongQuestion / spoofFromOtherPort (bogus replies sent
 * first), delayMs, fixed rcode, ignoreEdns, and a per-query `respond` hook that overrides the zone.
 * Counts queries per transport and logs every question it got.
 */
import dgram from 'node:dgram';
import { createServer, type Server as TcpServer, type Socket } from 'node:net';
import dns2 from 'dns2';
import type { UpstreamConfig } from '../../src/config/types.js';
import { typeNumber, type DnsPacket } from './dns-client.js';

const { Packet } = dns2;
type Resource = DnsPacket['answers'][number];

export interface SoaData {
  primary: string; admin: string; serial?: number; refresh?: number; retry?: number; expiration?: number; minimum: number;
}
/**
 * A: / AAAA: address string. CNAME / NS / PTR: target name. TXT: string or strings. MX: {priority, exchange}.
 * SOA: SoaData. Any other type (HTTPS 65, DNAME 39, ...): the raw rdata bytes (see nameToWire).
 */
export type FakeData = string | string[] | Buffer | { priority: number; exchange: string } | SoaData;

export interface FakeRecord {
  /** Owner name; default the question's name. */
  name?: string;
  type: number | string;
  ttl?: number;
  data: FakeData;
}

export interface FakeAnswer {
  rcode?: number;
  /** Set the AD bit. */
  ad?: boolean;
  answers?: FakeRecord[];
  authorities?: FakeRecord[];
}

export interface FakeUpstreamOptions {
  /** Key "name TYPE" (lowercase, no trailing dot; e.g. "www.example.org A") or "name" for every type. Unknown → NXDOMAIN + SOA. */
  zone?: Record<string, FakeAnswer>;
  truncateUdp?: boolean;
  silent?: boolean;
  /** Send a reply with a wrong ID before the real one. */
  wrongId?: boolean;
  /** Send a reply with the right ID but another question (answer 203.0.113.66) before the real one. */
  wrongQuestion?: boolean;
  /** Send a reply with the right ID and question but from another port (answer 203.0.113.66) before the real one. */
  spoofFromOtherPort?: boolean;
  delayMs?: number;
  /** Echo the question lowercased (an upstream that does not keep 0x20 case). */
  lowercaseQuestion?: boolean;
  /**
   * When the question has capitals (0x20): first send a forged reply (203.0.113.66) with the right ID but the
   * question lowercased, as an off-path attacker who guessed ID and port but not the case would.
   */
  caseSpoof?: boolean;
  /** Per question name (as received): a delay in ms instead of delayMs; undefined falls back to delayMs. */
  delayFor?: (name: string) => number | undefined;
  /** Answer every query with this rcode and nothing else. */
  rcode?: number;
  /** Never put an OPT in a reply (a pre-EDNS server). */
  ignoreEdns?: boolean;
  /** Asked first for every query (with the raw bytes as received); undefined falls back to the zone. */
  respond?: (request: DnsPacket, raw: Buffer) => FakeAnswer | undefined;
  /** Asked before everything else: reply bytes built by the test (for what dns2 cannot encode), or undefined. */
  rawReply?: (raw: Buffer) => Buffer | undefined;
}

export interface LoggedQuestion {
  proto: 'udp' | 'tcp';
  id: number;
  name: string;
  type: number;
  raw: Buffer;
  /** The sender's source port. */
  port: number;
}

export interface FakeUpstream {
  readonly host: string;
  readonly port: number;
  /** Ready-made `dns.upstreams` entry. */
  readonly config: UpstreamConfig;
  /** Knobs and zone; tests may change them while the server runs. */
  readonly opts: FakeUpstreamOptions & { zone: Record<string, FakeAnswer> };
  udpQueries: number;
  tcpQueries: number;
  readonly log: LoggedQuestion[];
  close(): Promise<void>;
}

/** Uncompressed wire form of a name, for raw rdata (DNAME targets, SVCB target names). */
export function nameToWire(name: string): Buffer {
  const labels = name.replace(/\.$/, '').split('.').filter(Boolean);
  return Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
}

const DEFAULT_SOA: FakeRecord = {
  name: 'example.org', type: 'SOA', ttl: 3600,
  data: { primary: 'ns.example.org', admin: 'hostmaster.example.org', minimum: 300 },
};

function toResource(rec: FakeRecord, qname: string): Resource {
  const type = typeNumber(rec.type);
  const r = { name: rec.name ?? qname, type, class: 1, ttl: rec.ttl ?? 300 } as Resource;
  const d = rec.data;
  if (type === 1 || type === 28) r.address = d as string;
  else if (type === 5 || type === 12) r.domain = d as string;
  else if (type === 2) r.ns = d as string;
  else if (type === 16) r.data = d as string | string[];
  else if (type === 15) Object.assign(r, d);
  else if (type === 6) Object.assign(r, { serial: 1, refresh: 3600, retry: 600, expiration: 86400 }, d);
  else r.data = d as Buffer;
  return r;
}

function lookup(zone: Record<string, FakeAnswer>, name: string, type: number): FakeAnswer {
  const key = name.toLowerCase().replace(/\.$/, '');
  for (const [k, v] of Object.entries(zone)) {
    const [n, t] = k.split(' ');
    if (n === key && (t === undefined || typeNumber(t) === type)) return v;
  }
  return { rcode: 3, authorities: [DEFAULT_SOA] };
}

export async function startFakeUpstream(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const opts = { ...options, zone: options.zone ?? {} };
  let udp = dgram.createSocket('udp4');
  const spoofer = dgram.createSocket('udp4');
  const conns = new Set<Socket>();
  let tcp: TcpServer | null = null;
  const state: FakeUpstream = {
    host: '127.0.0.1', port: 0, config: { proto: 'udp', host: '127.0.0.1', port: 0, text: '' },
    opts, udpQueries: 0, tcpQueries: 0, log: [],
    async close() {
      for (const c of conns) c.destroy();
      await Promise.all([
        new Promise<void>((r) => udp.close(() => r())),
        new Promise<void>((r) => spoofer.close(() => r())),
        new Promise<void>((r) => (tcp ? tcp.close(() => r()) : r())),
      ]);
    },
  };

  /** The reply for a query, or null when the query is unreadable. */
  const answer = (raw: Buffer, proto: 'udp' | 'tcp', port: number): { reply: Buffer; request: DnsPacket } | null => {
    let request: DnsPacket;
    try {
      request = Packet.parse(raw);
    } catch {
      return null;
    }
    const question = request.questions[0];
    if (!question) return null;
    state.log.push({ proto, id: request.header.id, name: question.name, type: question.type, raw: Buffer.from(raw), port });
    const custom = opts.rawReply?.(raw);
    if (custom) return { reply: custom, request };
    const res = Packet.createResponseFromRequest(request);
    res.header.ra = 1;
    if (opts.lowercaseQuestion) res.questions = res.questions.map((q) => ({ ...q, name: q.name.toLowerCase() }));
    const opt = request.additionals.find((r) => r.type === 41);
    if (opt && !opts.ignoreEdns) res.additionals.push(Packet.Resource.EDNS([], { udpPayloadSize: 1232, doFlag: !!opt.doFlag }));
    if (opts.rcode !== undefined) {
      res.header.rcode = opts.rcode;
    } else if (proto === 'udp' && opts.truncateUdp) {
      res.header.tc = 1;
    } else {
      const a = opts.respond?.(request, raw) ?? lookup(opts.zone, question.name, question.type);
      res.header.rcode = a.rcode ?? 0;
      if (a.ad) Object.assign(res.header, { ad: 1 }); // dns2's typings lack ad/cd; its codec has them
      res.answers = (a.answers ?? []).map((rec) => toResource(rec, question.name));
      res.authorities = (a.authorities ?? []).map((rec) => toResource(rec, question.name));
    }
    return { reply: res.toBuffer(), request };
  };

  const bogus = (request: DnsPacket, change: 'id' | 'question' | 'case' | 'none'): Buffer => {
    const res = Packet.createResponseFromRequest(request);
    res.header.ra = 1;
    if (change === 'case') res.questions = res.questions.map((q) => ({ ...q, name: q.name.toLowerCase() }));
    if (change === 'id') res.header.id = (request.header.id + 1) & 0xffff;
    if (change === 'question') res.questions = [{ ...request.questions[0]!, name: 'spoofed.invalid' } as DnsPacket['questions'][number]];
    res.answers = [toResource({ type: 'A', data: '203.0.113.66', ttl: 9999 }, res.questions[0]!.name)];
    return res.toBuffer();
  };

  const later = (fn: () => void, name = ''): void => {
    const ms = opts.delayFor?.(name) ?? opts.delayMs;
    if (ms) setTimeout(fn, ms);
    else fn();
  };

  const onDatagram = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    state.udpQueries++;
    if (opts.silent) return;
    const result = answer(msg, 'udp', rinfo.port);
    if (!result) return;
    later(() => {
      const send = (b: Buffer): void => udp.send(b, rinfo.port, rinfo.address);
      if (opts.spoofFromOtherPort) spoofer.send(bogus(result.request, 'none'), rinfo.port, rinfo.address);
      if (opts.wrongId) send(bogus(result.request, 'id'));
      if (opts.wrongQuestion) send(bogus(result.request, 'question'));
      const caseSpoofed = opts.caseSpoof === true && /[A-Z]/.test(result.request.questions[0]?.name ?? '');
      if (caseSpoofed) send(bogus(result.request, 'case'));
      // Let the bogus replies land first, as an off-path attacker racing the real answer would hope.
      setTimeout(() => send(result.reply), opts.wrongId || opts.wrongQuestion || opts.spoofFromOtherPort || caseSpoofed ? 20 : 0);
    }, result.request.questions[0]?.name);
  };

  const onConnection = (socket: Socket): void => {
    conns.add(socket);
    socket.on('close', () => conns.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const msg = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
        buffered = buffered.subarray(2 + msg.length);
        state.tcpQueries++;
        if (opts.silent) continue;
        const result = answer(Buffer.from(msg), 'tcp', socket.remotePort ?? 0);
        if (!result) continue;
        later(() => {
          const len = Buffer.alloc(2);
          len.writeUInt16BE(result.reply.length);
          if (!socket.destroyed) socket.write(Buffer.concat([len, result.reply]));
        });
      }
    });
  };

  // UDP picks the port; TCP takes the same one (retry on the rare clash with another listener).
  for (let attempt = 0; ; attempt++) {
    udp.on('message', onDatagram);
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', () => resolve()));
    const port = udp.address().port;
    try {
      tcp = await new Promise<TcpServer>((resolve, reject) => {
        const server = createServer(onConnection);
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => resolve(server));
      });
      break;
    } catch (err) {
      if (attempt > 5) throw err;
      await new Promise<void>((r) => udp.close(() => r()));
      udp = dgram.createSocket('udp4');
    }
  }
  await new Promise<void>((resolve) => spoofer.bind(0, '127.0.0.1', () => resolve()));
  const port = udp.address().port;
  Object.assign(state, { port, config: { proto: 'udp', host: '127.0.0.1', port, text: `127.0.0.1:${port}` } });
  return state;
}

/** A TXT answer of about `bytes` bytes of rdata (strings of 200 characters), for answer-size tests. */
export function largeTxt(bytes: number, ttl = 300): FakeAnswer {
  const strings = Array.from({ length: Math.ceil(bytes / 200) }, (_, i) => `${String(i).padStart(4, '0')}${'x'.repeat(196)}`);
  return { answers: [{ type: 'TXT', ttl, data: strings }] };
}
