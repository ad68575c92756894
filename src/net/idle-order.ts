/**
 * The open connections of one listener, least recently active first, so a full listener can close
 * the one idle longest to make room (RFC 7766 §6.2.3: "it is suggested that the server close the
 * connection that has been idle the longest") instead of refusing every new client while a few
 * hosts sit on all the slots. A connection with a request in flight is never idle and never closed.
 *
 * A Map keeps insertion order: each activity moves the connection to the end (delete + set, O(1)),
 * so the first idle entry is the longest idle one. Busy connections at the front are skipped (a busy
 * one moves to the end again when its answer goes out), and eviction only runs when the listener is full.
 */
import type net from 'node:net';

/** One connection's activity, reported by the transport that frames its requests. */
export interface ConnectionActivity {
  /** A complete request arrived (the connection is busy until its answer is out). */
  begin(): void;
  /** A request's answer was sent, or it was dropped. */
  end(): void;
}

class Tracked implements ConnectionActivity {
  inFlight = 0;
  constructor(private readonly order: IdleOrder, readonly socket: net.Socket, readonly peer: string) {}

  begin(): void {
    this.inFlight++;
    this.order.touch(this);
  }

  end(): void {
    if (this.inFlight > 0) this.inFlight--;
    this.order.touch(this);
  }
}

/** Does nothing: activity of a connection that is no longer (or never was) tracked. */
const UNTRACKED: ConnectionActivity = { begin() {}, end() {} };

export class IdleOrder {
  private readonly conns = new Map<net.Socket, Tracked>();
  /** remoteAddress|remotePort → raw socket: a TLS socket over it, or an h2 session, has the same peer. */
  private readonly byPeer = new Map<string, Tracked>();
  /** Idle connections closed to make room for a new one. */
  evicted = 0;

  get size(): number {
    return this.conns.size;
  }

  /** Tracks a raw socket from accept on; its accept counts as its first activity. */
  add(socket: net.Socket): void {
    const tracked = new Tracked(this, socket, peerKey(socket));
    this.conns.set(socket, tracked);
    this.byPeer.set(tracked.peer, tracked);
    socket.once('close', () => this.forget(tracked));
  }

  /** The activity handle of a connection (raw or TLS socket over it), found by its peer address and port. */
  activityOf(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined }): ConnectionActivity {
    return this.byPeer.get(peerKey(socket)) ?? UNTRACKED;
  }

  /** Closes the connection idle longest; false when every connection has a request in flight. */
  evictIdlest(): boolean {
    for (const tracked of this.conns.values()) {
      if (tracked.inFlight > 0) continue;
      // forgotten now, not on 'close': the new connection takes this slot in the same turn
      this.forget(tracked);
      tracked.socket.destroy();
      this.evicted++;
      return true;
    }
    return false;
  }

  /** @internal moves a connection to the most recently active end. */
  touch(tracked: Tracked): void {
    if (this.conns.delete(tracked.socket)) this.conns.set(tracked.socket, tracked);
  }

  private forget(tracked: Tracked): void {
    this.conns.delete(tracked.socket);
    if (this.byPeer.get(tracked.peer) === tracked) this.byPeer.delete(tracked.peer);
  }
}

function peerKey(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string {
  return `${socket.remoteAddress ?? ''}|${socket.remotePort ?? 0}`;
}
