/**
 * A UDP socket served in batches by our native addon (native/udp_batch.c): one recvmmsg fills up to
 * `slots` slots of one shared buffer, JavaScript is entered once for the whole batch, and one sendmmsg
 * sends the replies written into the out slots (dns-performance.md §3b). Linux only; where the addon
 * did not build or the kernel lacks the calls, loadUdpBatch says why and the caller uses node:dgram.
 *
 * The contract with handlers: `msg` is a view of a slot, valid only until the handler returns (the
 * next batch overwrites it). A reply returned at once is copied into the out slot; anything that has
 * to wait (an upstream exchange) must copy what it keeps, and send later through `sendTo` with
 * `returnAddress(slot)`, itself a copy.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { getSystemErrorName } from 'node:util';
import { isIPv6 } from 'node:net';

type Handle = object & { readonly __udpBatch: unique symbol };

export interface UdpBatchAddon {
  open(opts: Record<string, unknown>): Handle;
  port(h: Handle): number;
  sendTo(h: Handle, data: Uint8Array, length: number, peer: Uint8Array): number;
  pause(h: Handle): void;
  close(h: Handle): void;
  stats(h: Handle): BatchStats;
  readonly PEER_SIZE: number;
  readonly PEER_TEXT_AT: number;
  readonly SOCKADDR_SIZE: number;
}

export interface BatchStats {
  batches: number;
  datagrams: number;
  truncated: number;
  sendErrors: number;
  recvErrors: number;
  /** errno of the last failed send, 0 if none. */
  lastSendErrno: number;
}

export interface BatchSocketOptions {
  host: string;
  port: number;
  reusePort?: boolean;
  recvBufferSize?: number;
  sendBufferSize?: number;
  /** Datagrams per recvmmsg. */
  slots?: number;
  /** Bytes per receive slot: a longer datagram arrives cut to this and flagged truncated. */
  inSize?: number;
  /** Bytes per reply slot: a longer reply goes out on its own (sendTo), still before the batch's. */
  outSize?: number;
  /** Batches per wakeup while they come full, before the event loop gets a turn. */
  rounds?: number;
}

/** Gets `msg` (a slot view), the sender's address as node:dgram writes it, the slot, and whether it was cut. */
export type OnDatagram = (msg: Buffer, address: string, slot: number, truncated: boolean) => Buffer | null;

const DEFAULT_ADDON = fileURLToPath(new URL('../../../native/build/Release/udp_batch.node', import.meta.url));
const META_STRIDE = 4;
const FLAG_TRUNCATED = 1;

/** The addon, or the reason it cannot be used here (said in the start-up log line). */
export function loadUdpBatch(file = DEFAULT_ADDON): UdpBatchAddon | string {
  if (process.platform !== 'linux') return `recvmmsg/sendmmsg batching is Linux-only (platform ${process.platform})`;
  try {
    return createRequire(import.meta.url)(file) as UdpBatchAddon;
  } catch (err) {
    return `native addon not loadable (${(err as NodeJS.ErrnoException).code ?? String(err)}): run npm rebuild or node native/build.mjs`;
  }
}

export class BatchSocket {
  private readonly inBuf: Buffer;
  private readonly outBuf: Buffer;
  private readonly peers: Buffer;
  private readonly meta: Int32Array;
  private readonly outLen: Int32Array;
  private readonly inSize: number;
  private readonly outSize: number;
  private readonly peerSize: number;
  private readonly textAt: number;
  private readonly sockaddrSize: number;
  private readonly handle: Handle;
  private closed = false;

  /** Binds (throws an Error whose `code` names the errno, as node:dgram's would) and starts reading. */
  constructor(private readonly addon: UdpBatchAddon, opts: BatchSocketOptions, private readonly onDatagram: OnDatagram,
    private readonly onError: (err: unknown) => void) {
    const slots = opts.slots ?? 64;
    this.inSize = opts.inSize ?? 4096;
    this.outSize = opts.outSize ?? 4096;
    this.peerSize = addon.PEER_SIZE;
    this.textAt = addon.PEER_TEXT_AT;
    this.sockaddrSize = addon.SOCKADDR_SIZE;
    this.inBuf = Buffer.alloc(slots * this.inSize);
    this.outBuf = Buffer.alloc(slots * this.outSize);
    this.peers = Buffer.alloc(slots * this.peerSize);
    this.meta = new Int32Array(slots * META_STRIDE);
    this.outLen = new Int32Array(slots);
    try {
      this.handle = addon.open({
        host: opts.host, port: opts.port, ipv6: isIPv6(opts.host), reusePort: opts.reusePort === true,
        recvBufferSize: opts.recvBufferSize ?? 0, sendBufferSize: opts.sendBufferSize ?? 0,
        slots, inSize: this.inSize, outSize: this.outSize, rounds: opts.rounds ?? 4,
        in: this.inBuf, out: this.outBuf, peers: this.peers, meta: this.meta, outLen: this.outLen,
        onBatch: (n: number) => this.batch(n),
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (typeof e.errno === 'number' && e.errno < 0) e.code = getSystemErrorName(e.errno);
      throw err;
    }
  }

  private batch(n: number): void {
    const { meta, inBuf, inSize, peers, peerSize, textAt } = this;
    for (let i = 0; i < n; i++) {
      const m = i * META_STRIDE;
      const start = i * inSize;
      const msg = inBuf.subarray(start, start + meta[m]!);
      const text = i * peerSize + textAt;
      const address = peers.toString('latin1', text, text + meta[m + 3]!);
      let reply: Buffer | null;
      try {
        reply = this.onDatagram(msg, address, i, (meta[m + 1]! & FLAG_TRUNCATED) !== 0);
      } catch (err) {
        this.onError(err);
        continue;
      }
      if (reply !== null) this.replyInSlot(i, reply);
    }
  }

  private replyInSlot(slot: number, reply: Buffer): void {
    if (reply.length <= this.outSize) {
      this.outBuf.set(reply, slot * this.outSize);
      this.outLen[slot] = reply.length;
    } else {
      this.sendTo(reply, this.peers.subarray(slot * this.peerSize, slot * this.peerSize + this.sockaddrSize));
    }
  }

  get port(): number {
    return this.addon.port(this.handle);
  }

  /** The sender of `slot`, copied: valid after the batch, for a reply that had to wait. */
  returnAddress(slot: number): Buffer {
    const at = slot * this.peerSize;
    return Buffer.from(this.peers.subarray(at, at + this.sockaddrSize));
  }

  /** The sender's port of `slot` in the current batch. */
  peerPort(slot: number): number {
    return this.meta[slot * META_STRIDE + 2] ?? 0;
  }

  /** Sends at once; 0, or the negative errno of a send the kernel refused (that datagram is lost). */
  sendTo(bytes: Buffer, to: Buffer): number {
    if (this.closed) return -9; // EBADF
    return this.addon.sendTo(this.handle, bytes, bytes.length, to);
  }

  /** Stops reading; sendTo keeps working until close (shutdown drain). */
  pause(): void {
    if (!this.closed) this.addon.pause(this.handle);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.addon.close(this.handle);
  }

  stats(): BatchStats {
    return this.addon.stats(this.handle);
  }
}
