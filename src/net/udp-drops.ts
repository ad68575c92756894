/**
 * The kernel's count of datagrams it dropped because a socket's receive queue was full: the `drops`
 * column of /proc/net/udp and /proc/net/udp6 (Linux), for the sockets this process owns (matched by
 * inode through /proc/self/fd, so another process on the same port is not counted) on the given ports.
 * Node exposes neither SO_RXQ_OVFL nor a socket's fd, and this is read per scrape, not per query.
 * Resolves to null where /proc is not there (not Linux).
 */
import { readdir, readFile, readlink } from 'node:fs/promises';

export async function kernelUdpDrops(ports: readonly number[]): Promise<number | null> {
  let inodes: Set<string>;
  try {
    inodes = await ownSocketInodes();
  } catch {
    return null;
  }
  const wanted = new Set(ports);
  let drops = 0;
  let found = false;
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
      if (f.length < 13 || !inodes.has(f[9]!)) continue;
      const port = parseInt(f[1]!.slice(f[1]!.lastIndexOf(':') + 1), 16);
      if (!wanted.has(port)) continue;
      found = true;
      drops += Number(f[12]);
    }
  }
  return found ? drops : null;
}

async function ownSocketInodes(): Promise<Set<string>> {
  const inodes = new Set<string>();
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.startsWith('socket:[')) inodes.add(target.slice(8, -1));
  }
  return inodes;
}
