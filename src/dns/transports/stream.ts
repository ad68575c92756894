/**
 * RFC 7766 message framing over any byte stream (TCP now, TLS for DoT): two-byte length prefix,
 * several queries per connection, pipelined, answered as each is ready (possibly out of order),
 * an idle timeout, and a cap on queries in flight per connection (reading pauses at the cap).
 * Own framing rather than dns2's TCPServer: dns2 parses each frame into a Packet and destroys the
 * connection on a malformed one; here a malformed frame gets FORMERR and the connection lives on.
 */
import type { Socket } from 'node:net';
import type { AppLogger } from '../../log/logger.js';
import type { DnsPipeline, DnsPeer } from '../pipeline.js';
import type { ConnectionActivity } from '../../net/idle-order.js';

export interface StreamOptions {
  readonly idleTimeoutMs: number;
  readonly maxInFlight: number;
}

/** Answers queued for a client that does not read: beyond this, reading its queries stops. */
const MAX_UNSENT_BYTES = 256 * 1024;
/** After our FIN, how long a peer may keep its half of the connection (and its connection slot). */
const CLOSE_GRACE_MS = 2000;

/** `activity` learns when each query begins and ends, so a full listener never evicts a connection waiting on an answer. */
export function serveStream(socket: Socket, peer: DnsPeer, pipeline: DnsPipeline, opts: StreamOptions, log: AppLogger,
  activity: ConnectionActivity): void {
  let pending: Buffer | null = null;
  let inFlight = 0;
  let peerEnded = false;

  const close = (): void => {
    if (socket.destroyed) return;
    socket.end();
    setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
  };
  // RFC 7766 §6.2.3: the idle clock restarts on complete messages only, so a client trickling one
  // byte at a time, or sending half a frame and stopping, is closed like any idle one.
  const idle = setTimeout(() => (inFlight > 0 ? idle.refresh() : close()), opts.idleTimeoutMs);
  idle.unref();
  const readMore = (): void => {
    if (socket.isPaused() && inFlight < opts.maxInFlight && socket.writableLength <= MAX_UNSENT_BYTES) socket.resume();
  };

  const write = (bytes: Buffer | null): void => {
    inFlight--;
    activity.end();
    idle.refresh();
    if (bytes !== null && !socket.destroyed && socket.writable) {
      const framed = Buffer.allocUnsafe(bytes.length + 2);
      framed.writeUInt16BE(bytes.length, 0);
      bytes.copy(framed, 2);
      socket.write(framed);
      if (socket.writableLength > MAX_UNSENT_BYTES) socket.pause();
    }
    readMore();
    if (peerEnded && inFlight === 0) close();
  };

  const dispatch = (frame: Buffer): void => {
    inFlight++;
    activity.begin();
    try {
      const out = pipeline.handle(frame, peer);
      if (out === null || Buffer.isBuffer(out)) write(out);
      else out.then(write, (err: unknown) => {
        log.error({ err, client: peer.address }, 'stream query failed');
        write(null);
      });
    } catch (err) {
      log.error({ err, client: peer.address }, 'stream query failed');
      write(null);
    }
  };

  socket.on('data', (chunk: Buffer) => {
    const buf = pending === null ? chunk : Buffer.concat([pending, chunk]);
    let offset = 0;
    while (buf.length - offset >= 2) {
      const len = buf.readUInt16BE(offset);
      if (buf.length - offset - 2 < len) break;
      idle.refresh();
      // frames share memory with this read's buffer, which Node never reuses
      dispatch(buf.subarray(offset + 2, offset + 2 + len));
      offset += 2 + len;
    }
    pending = offset === buf.length ? null : Buffer.from(buf.subarray(offset));
    if (inFlight >= opts.maxInFlight) socket.pause();
  });
  socket.on('drain', readMore);
  socket.on('end', () => {
    peerEnded = true;
    if (inFlight === 0) close();
  });
  socket.on('close', () => clearTimeout(idle));
  // ECONNRESET and friends end this connection only.
  socket.on('error', () => socket.destroy());
}
