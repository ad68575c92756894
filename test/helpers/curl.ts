/** curl as a child process: the real client users point at the proxy. Status, headers and body come back apart. */
import { execFile } from 'node:child_process';
import net from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface CurlResult { exitCode: number; status: number; headers: Record<string, string>; body: string; stderr: string }

export function curl(args: readonly string[], timeoutMs = 10_000): Promise<CurlResult> {
  const dir = mkdtempSync(join(tmpdir(), 'appfence-curl-'));
  const headerFile = join(dir, 'headers');
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--noproxy', '', '-D', headerFile, '--max-time', String(timeoutMs / 1000), ...args],
      { timeout: timeoutMs + 2000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        const headers: Record<string, string> = {};
        let status = 0;
        let dumped = '';
        try { dumped = readFileSync(headerFile, 'latin1'); } catch { /* no response at all */ }
        rmSync(dir, { recursive: true, force: true });
        // the last header block is the final response's (a CONNECT's 200 comes first)
        for (const line of dumped.split(/\r?\n/)) {
          const m = /^HTTP\/[\d.]+ (\d{3})/.exec(line);
          if (m !== null) { status = Number(m[1]); for (const k of Object.keys(headers)) delete headers[k]; continue; }
          const h = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
          if (h !== null) headers[h[1]!.toLowerCase()] = h[2]!;
        }
        const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
        resolve({ exitCode: code, status, headers, body: stdout, stderr: stderr + (err !== null && code < 0 ? String(err) : '') });
      });
  });
}

/** Raw bytes to a server from a chosen source address; resolves with everything it answered before closing. */
/** `firstAnswer`: resolve once a whole status line and header block arrived (a tunnel stays open). */
export function rawExchange(port: number, bytes: string | Buffer, from = '127.0.20.1', host = '127.0.0.1', waitMs = 3000,
  firstAnswer = false): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host, localAddress: from });
    const chunks: Buffer[] = [];
    const done = (): void => { clearTimeout(timer); s.destroy(); resolve(Buffer.concat(chunks).toString('latin1')); };
    const timer = setTimeout(done, waitMs);
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      if (firstAnswer && Buffer.concat(chunks).includes('\r\n\r\n')) setTimeout(done, 20);
    });
    s.on('close', done);
    s.on('error', done);
    s.write(bytes);
  });
}
