/**
 * A test DNS client on real sockets, built on dns2's Packet so it is independent of src/wire: builds
 * queries, sends them over UDP or TCP from a chosen source address (127.0.10.5 = "a managed device"),
 * and decodes replies. Also raw sends for malformed input and a TCP session for pipelining.
 */
import dgram from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { randomInt } from 'node:crypto';
import dns2 from 'dns2';

const { Packet } = dns2;
export type DnsPacket = InstanceType<typeof Packet>;

export interface Server {
  host: string;
  port: number;
}

export interface QueryOptions {
  name: string;
  /** A number or a mnemonic ('A', 'AAAA', 'HTTPS', 'TYPE65', ...). */
  type: number | string;
  id?: number;
  /** Add an OPT record (UDP size 1232). */
  edns?: boolean;
  /** DO bit in the OPT (implies edns). */
  dnssecOk?: boolean;
  /** RD bit, default true. */
  recursionDesired?: boolean;
  qclass?: number;
}

export interface SendOptions extends QueryOptions {
  server: Server;
  proto: 'udp' | 'tcp';
  localAddress?: string;
  timeoutMs?: number;
}

export interface DecodedAnswer {
  name: string;
  type: number;
  ttl: number;
  /** address (A/AAAA), domain (CNAME/DNAME-as-raw excluded), TXT text, MX exchange, else the raw rdata. */
  data: unknown;
}

export interface Reply {
  raw: Buffer;
  packet: DnsPacket;
  rcode: number;
  answers: DecodedAnswer[];
}

const EXTRA_TYPES: Record<string, number> = { HTTPS: 65, SVCB: 64, DNAME: 39, DS: 43, NSEC: 47, OPT: 41 };

export function typeNumber(type: number | string): number {
  if (typeof type === 'number') return type;
  const upper = type.toUpperCase();
  const known = (Packet.TYPE as Record<string, number>)[upper] ?? EXTRA_TYPES[upper];
  if (known !== undefined) return known;
  const m = /^TYPE(\d+)$/.exec(upper);
  if (m) return Number(m[1]);
  throw new Error(`unknown type ${type}`);
}

/** Query bytes built by dns2 (an independent encoder). */
export function buildQuery(opts: QueryOptions): Buffer {
  const packet = new Packet();
  packet.header.id = opts.id ?? randomInt(0, 65536);
  packet.header.rd = opts.recursionDesired === false ? 0 : 1;
  packet.questions.push({ name: opts.name, type: typeNumber(opts.type), class: opts.qclass ?? 1 } as DnsPacket['questions'][number]);
  if (opts.edns || opts.dnssecOk) {
    packet.additionals.push(Packet.Resource.EDNS([], { udpPayloadSize: 1232, doFlag: !!opts.dnssecOk }));
  }
  return packet.toBuffer();
}

export function decodeReply(raw: Buffer): Reply {
  const packet = Packet.parse(raw);
  const answers = packet.answers.map((r) => ({
    name: r.name,
    type: r.type,
    ttl: r.ttl,
    data: r.address ?? r.domain ?? r.exchange ?? r.data,
  }));
  return { raw, packet, rcode: packet.header.rcode, answers };
}

export async function query(opts: SendOptions): Promise<Reply> {
  const bytes = buildQuery(opts);
  const raw = await sendRaw(opts.server, bytes, opts.proto, opts.localAddress, opts.timeoutMs ?? 2000);
  if (raw === null) throw new Error(`no reply from ${opts.server.host}:${opts.server.port} for ${opts.name} ${String(opts.type)}`);
  return decodeReply(raw);
}

/** Sends bytes as they are; resolves with the reply, or null when none came within `timeoutMs`. */
export function sendRaw(server: Server, bytes: Buffer, proto: 'udp' | 'tcp', localAddress?: string, timeoutMs = 1000): Promise<Buffer | null> {
  if (proto === 'tcp') {
    const session = tcpSession(server, localAddress);
    session.write(bytes);
    return session.read(timeoutMs).finally(() => session.close());
  }
  return new Promise((resolve) => {
    const socket = dgram.createSocket(server.host.includes(':') ? 'udp6' : 'udp4');
    const done = (reply: Buffer | null): void => {
      clearTimeout(timer);
      socket.close();
      resolve(reply);
    };
    const timer = setTimeout(() => done(null), timeoutMs);
    socket.on('message', (msg: Buffer) => done(msg));
    socket.on('error', () => done(null));
    socket.bind({ address: localAddress ?? (server.host.includes(':') ? '::1' : '127.0.0.1'), port: 0 }, () => {
      socket.send(bytes, server.port, server.host);
    });
  });
}

export interface TcpSession {
  readonly socket: Socket;
  /** Writes one framed message (a length prefix is added). */
  write(message: Buffer): void;
  /** Builds and writes a query; returns its bytes. */
  writeQuery(opts: QueryOptions): Buffer;
  /** The next framed reply in arrival order, or null on timeout / close. */
  read(timeoutMs?: number): Promise<Buffer | null>;
  close(): void;
}

/** One TCP connection for several queries (RFC 7766 pipelining); replies may come in any order. */
export function tcpSession(server: Server, localAddress?: string): TcpSession {
  return framedSession(connect({ host: server.host, port: server.port, ...(localAddress ? { localAddress } : {}) }));
}

/** RFC 7766 framing over any connected stream (a TCP socket, or a TLS socket for DoT). */
export function framedSession(socket: Socket): TcpSession {
  const frames: Buffer[] = [];
  const waiters: ((b: Buffer | null) => void)[] = [];
  let buffered: Buffer = Buffer.alloc(0);
  let ended = false;
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
      const frame = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
      buffered = buffered.subarray(2 + frame.length);
      const waiter = waiters.shift();
      if (waiter) waiter(frame);
      else frames.push(frame);
    }
  });
  const end = (): void => {
    ended = true;
    for (const w of waiters.splice(0)) w(null);
  };
  socket.on('close', end);
  socket.on('error', end);
  const write = (message: Buffer): void => {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(message.length);
    socket.write(Buffer.concat([len, message]));
  };
  return {
    socket,
    write,
    writeQuery(opts) {
      const bytes = buildQuery(opts);
      write(bytes);
      return bytes;
    },
    read(timeoutMs = 2000) {
      const ready = frames.shift();
      if (ready) return Promise.resolve(ready);
      if (ended) return Promise.resolve(null);
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          const at = waiters.indexOf(waiter);
          if (at >= 0) waiters.splice(at, 1);
          resolve(null);
        }, timeoutMs);
        const waiter = (b: Buffer | null): void => {
          clearTimeout(timer);
          resolve(b);
        };
        waiters.push(waiter);
      });
    },
    close() {
      socket.destroy();
    },
  };
}
