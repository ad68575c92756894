// What the benchmarks share: a fake upstream, free ports, a tiny query builder. Loopback only.
import dgram from 'node:dgram';
import net from 'node:net';
import { execFileSync } from 'node:child_process';

/** Answers every question with one A record 192.0.2.1, TTL one day (so cache hits stay hits). */
export function startUpstream() {
  const sock = dgram.createSocket('udp4');
  sock.on('message', (q, r) => {
    if (q.length < 12) return;
    let o = 12; while (o < q.length && q[o] !== 0) o += q[o] + 1; o += 5;
    const head = Buffer.from(q.subarray(0, o)); head[2] = 0x81 | (q[2] & 0x01); head[3] = 0x80;
    head.writeUInt16BE(1, 6); head.writeUInt16BE(0, 8); head.writeUInt16BE(0, 10);
    const rr = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 1, 0x51, 0x80, 0, 4, 192, 0, 2, 1]);
    sock.send(Buffer.concat([head, rr]), r.port, r.address);
  });
  return new Promise((res) => sock.bind(0, '127.0.0.1', () => res(sock)));
}

/** A port free for TCP (and in practice UDP) on 127.0.0.1. */
export const freePort = () => new Promise((res) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); }); });
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const have = (cmd) => { try { execFileSync('sh', ['-c', `command -v ${cmd}`]); return true; } catch { return false; } };

/** "name TYPE" (A or AAAA) → query bytes with ID `id` and RD set. */
export function wireQuery(line, id = 0) {
  const [name, type] = line.split(' ');
  const labels = name.split('.').filter(Boolean);
  const q = Buffer.alloc(12 + labels.reduce((n, l) => n + l.length + 1, 0) + 5);
  q.writeUInt16BE(id, 0); q[2] = 1; q.writeUInt16BE(1, 4);
  let o = 12; for (const l of labels) { q[o++] = l.length; o += q.write(l, o, 'latin1'); }
  q[o++] = 0; q.writeUInt16BE(type === 'AAAA' ? 28 : 1, o); q.writeUInt16BE(1, o + 2);
  return q;
}
