/** DNS over TCP: a net.Server whose connections are framed by serveStream; identity is per connection (the source address). */
import net from 'node:net';
import type { ListenAddress } from '../../config/types.js';
import type { AppLogger } from '../../log/logger.js';
import type { DnsPipeline } from '../pipeline.js';
import { listenOn, StreamListener } from '../../net/listener.js';
import { serveStream, type StreamOptions } from './stream.js';

export interface TcpOptions extends StreamOptions {
  readonly maxConnections: number;
  readonly maxConnectionsPerClient: number;
  /** dns.workers > 1: every worker binds the port itself (SO_REUSEPORT). */
  readonly reusePort?: boolean;
}

export class TcpTransport extends StreamListener<net.Server> {
  private constructor(name: string, server: net.Server, private readonly pipeline: DnsPipeline, private readonly opts: TcpOptions,
    private readonly log: AppLogger) {
    super(name, server, opts, 'evict-idlest');
  }

  static listen(name: string, addr: ListenAddress, pipeline: DnsPipeline, opts: TcpOptions, log: AppLogger): Promise<TcpTransport> {
    const transport = new TcpTransport(name, net.createServer({ allowHalfOpen: true, noDelay: true }), pipeline, opts, log);
    return listenOn(transport.server, addr, log, 'tcp', opts.reusePort).then(() => transport);
  }

  protected accepted(socket: net.Socket): void {
    const address = socket.remoteAddress;
    if (address === undefined) return void socket.destroy();
    serveStream(socket, { address, proto: 'tcp' }, this.pipeline, this.opts, this.log, this.activityOf(socket));
  }
}
