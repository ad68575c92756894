// What the benchmarks share: a fake upstream, free ports, a tiny query builder. Loopback only.
import dgram from 'node:dgram';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

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

/** pid and every descendant (cluster workers, squid's helpers), from /proc. */
export function processTree(pid) {
  const parent = new Map();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch { /* gone meanwhile */ }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) for (const [p, pp] of parent) if (pp === out[i]) out.push(p);
  return out;
}

/** utime+stime in clock ticks of the process tree (all threads: /proc/PID/stat sums them). */
export function cpuTicks(pid) {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      const f = readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch { /* exited */ }
  }
  return ticks;
}

/** Resident memory of the process tree, MB. */
export const rssMb = (pid) => processTree(pid).reduce((n, p) => {
  try { return n + Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0) / 1024; } catch { return n; }
}, 0);
