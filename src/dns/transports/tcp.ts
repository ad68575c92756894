/** DNS over TCP: a net.Server whose connections are framed by serveStream; identity is per connection (the source address). */
import net from 'node:net';
import type { ListenAddress } from '../../config/types.js';
import type { AppLogger } from '../../log/logger.js';
import type { DnsPipeline } from '../pipeline.js';
import { listenOn, boundPort, ClientSlots } from './listener.js';
import { serveStream, type StreamOptions } from './stream.js';

export class TcpTransport {
  private readonly sockets = new Set<net.Socket>();
  private closed: Promise<void> | null = null;
  private constructor(private readonly server: net.Server) {}

  static listen(addr: ListenAddress, pipeline: DnsPipeline, opts: StreamOptions & { maxConnections: number; maxConnectionsPerClient: number },
    log: AppLogger): Promise<TcpTransport> {
    const slots = new ClientSlots(opts.maxConnectionsPerClient);
    const server = net.createServer({ allowHalfOpen: true, noDelay: true });
    const transport = new TcpTransport(server);
    server.on('connection', (socket) => {
      const address = socket.remoteAddress;
      if (address === undefined || !slots.admit(socket)) return void socket.destroy();
      transport.sockets.add(socket);
      socket.once('close', () => transport.sockets.delete(socket));
      serveStream(socket, { address, proto: 'tcp' }, pipeline, opts, log);
    });
    server.maxConnections = opts.maxConnections;
    return listenOn(server, addr, log, 'tcp').then(() => transport);
  }

  get port(): number {
    return boundPort(this.server);
  }

  /** Stops accepting at once; the promise settles when the last open connection has gone too. */
  stopAccepting(): Promise<void> {
    this.closed ??= new Promise((resolve) => this.server.close(() => resolve()));
    return this.closed;
  }

  closeConnections(): void {
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    const stopped = this.stopAccepting();
    this.closeConnections();
    await stopped;
  }
}
