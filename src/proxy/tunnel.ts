/**
 * CONNECT tunnels with node:net (http-proxy has none): connect to exactly the checked address, answer
 * 200 only once the target accepted, then relay bytes both ways until either side closes or the tunnel
 * is idle too long. A target that refuses or cannot be reached gets 502, one that does not answer in
 * time 504, each with a short text; neither outcome touches any other client.
 */
import net from 'node:net';

export interface TunnelOptions {
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
}

export type TunnelResult = { readonly ok: true } | { readonly ok: false; readonly status: 502 | 504; readonly reason: string };

/** Raw HTTP/1.1 answer on a socket that is not (or no longer) an HTTP response object. */
export function rawReply(socket: net.Socket, status: number, reason: string, text: string): void {
  if (!socket.writable) return void socket.destroy();
  const body = `${text}\n`;
  socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
    `connection: close\r\n\r\n${body}`);
}

export function openTunnel(client: net.Socket, head: Buffer, address: string, port: number, opts: TunnelOptions): Promise<TunnelResult> {
  return new Promise((resolve) => {
    const target = net.connect({ host: address, port, noDelay: true });
    let connected = false;
    const fail = (status: 502 | 504, reason: string): void => {
      target.destroy();
      rawReply(client, status, status === 504 ? 'Gateway Timeout' : 'Bad Gateway', reason);
      resolve({ ok: false, status, reason });
    };
    target.setTimeout(opts.connectTimeoutMs, () => {
      if (connected) return void closeBoth();
      fail(504, `target ${address}:${port} did not accept in time`);
    });
    const closeBoth = (): void => {
      target.destroy();
      client.destroy();
    };
    target.once('connect', () => {
      connected = true;
      target.setTimeout(opts.idleTimeoutMs);
      client.setTimeout(opts.idleTimeoutMs, closeBoth);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) target.write(head);
      target.pipe(client);
      client.pipe(target);
      resolve({ ok: true });
    });
    target.on('error', (err: NodeJS.ErrnoException) => {
      if (connected) return void closeBoth();
      fail(502, `cannot connect to ${address}:${port} (${err.code ?? err.message})`);
    });
    target.once('close', () => {
      if (connected) client.end();
    });
    client.once('close', () => target.destroy());
  });
}
