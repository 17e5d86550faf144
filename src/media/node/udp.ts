/**
 * node:dgram adapter of {@link MediaSocketFactory}: the only media file that touches sockets.
 *
 * Hot-path notes: each socket gets one `message` listener (no per-packet closure), and a
 * synchronous `lookup` ({@link literalLookup}) so that sending to an IP literal does not go through
 * `dns.lookup`, which defers every datagram by one `process.nextTick`.
 */
import dgram from 'node:dgram';
import { literalLookup } from '../../lib/node/lookup.js';
import type { MediaSocket, MediaSocketFactory, PacketHandler } from '../socket.js';

class NodeMediaSocket implements MediaSocket {
  private closed: Promise<void> | undefined;

  constructor(
    private readonly socket: dgram.Socket,
    readonly port: number,
  ) {}

  send(data: Buffer, port: number, address: string): void {
    this.socket.send(data, port, address);
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = new Promise((resolve) => {
        try {
          this.socket.close(() => resolve());
        } catch {
          resolve();
        }
      });
    }
    return this.closed;
  }
}

/** Options of {@link NodeMediaSocketFactory}. */
export interface NodeMediaSocketOptions {
  /** SO_RCVBUF / SO_SNDBUF in bytes (default: the system's). */
  recvBufferSize?: number;
  sendBufferSize?: number;
}

/** Binds real UDP sockets with node:dgram. */
export class NodeMediaSocketFactory implements MediaSocketFactory {
  constructor(private readonly opts: NodeMediaSocketOptions = {}) {}

  bind(address: string, port: number, onPacket: PacketHandler, onError: (err: Error) => void): Promise<MediaSocket> {
    const v6 = address.includes(':');
    const socket = dgram.createSocket({
      type: v6 ? 'udp6' : 'udp4',
      ipv6Only: v6,
      lookup: literalLookup,
      recvBufferSize: this.opts.recvBufferSize,
      sendBufferSize: this.opts.sendBufferSize,
    });
    return new Promise((resolve, reject) => {
      const onBindError = (err: Error): void => {
        socket.off('error', onBindError);
        try {
          socket.close();
        } catch {
          // never bound
        }
        reject(err);
      };
      socket.once('error', onBindError);
      socket.bind({ port, address, exclusive: true }, () => {
        socket.off('error', onBindError);
        socket.on('error', onError);
        socket.on('message', (msg, rinfo) => onPacket(msg, rinfo.address, rinfo.port));
        resolve(new NodeMediaSocket(socket, socket.address().port));
      });
    });
  }
}
