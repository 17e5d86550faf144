/**
 * TCP adapters (node:net): a listening server and a connection wrapper. No SIP logic:
 * framing and parsing live in `transport/framing.ts` and the transport layer.
 */
import net from 'node:net';

/**
 * An accepted socket not yet wrapped: the owner either adopts it (wrapping it in a
 * {@link TcpConnection} with its handlers) or rejects it (closed at once).
 */
export interface AcceptedSocket {
  /** Peer address (undefined when the socket is already gone). */
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  adopt(handlers: TcpConnectionHandlers): TcpConnection;
  reject(): void;
}

/** A listening TCP socket. IPv6 listeners are IPv6-only. */
export class TcpServer {
  private readonly server: net.Server;
  private listening = false;
  private closed = false;

  /**
   * @param address local IP address to listen on (IPv6 without brackets)
   * @param onConnection called with every accepted socket, which it must adopt or reject
   * @param onError server errors after listening started
   */
  constructor(
    private readonly address: string,
    onConnection: (accepted: AcceptedSocket) => void,
    private readonly onError: (err: Error) => void,
  ) {
    this.server = net.createServer({ noDelay: true, allowHalfOpen: false }, (socket) => {
      onConnection({
        remoteAddress: socket.remoteAddress,
        remotePort: socket.remotePort,
        adopt: (handlers) => new TcpConnection(socket, handlers),
        reject: () => socket.destroy(),
      });
    });
  }

  /**
   * Starts listening.
   * @param port local port, 0 for an ephemeral one
   * @returns the bound port
   */
  listen(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onListenError = (err: Error): void => reject(err);
      this.server.once('error', onListenError);
      this.server.listen({ port, host: this.address, ipv6Only: this.address.includes(':'), exclusive: true }, () => {
        this.server.off('error', onListenError);
        this.server.on('error', this.onError);
        this.listening = true;
        const a = this.server.address();
        resolve(typeof a === 'object' && a !== null ? a.port : port);
      });
    });
  }

  /** Stops listening; resolves when the server and every accepted connection are closed. */
  close(): Promise<void> {
    if (this.closed || !this.listening) {
      this.closed = true;
      return Promise.resolve();
    }
    this.closed = true;
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Callbacks of a {@link TcpConnection}. */
export interface TcpConnectionHandlers {
  /** Outbound connection established. */
  onConnect(): void;
  /** Octets received (a fresh Buffer per read). */
  onData(chunk: Buffer): void;
  /** Socket error (connect refused, reset, …); `onClose` follows. */
  onError(err: Error): void;
  /** The connection is closed (exactly once). */
  onClose(): void;
}

/**
 * One TCP connection, inbound (accepted) or outbound (connecting). Writes made while an
 * outbound connection is still connecting are queued by the socket and flushed on connect.
 */
export class TcpConnection {
  private done = false;

  constructor(
    private readonly socket: net.Socket,
    handlers: TcpConnectionHandlers,
  ) {
    socket.on('connect', () => handlers.onConnect());
    socket.on('data', (chunk: Buffer) => handlers.onData(chunk));
    socket.on('error', (err) => handlers.onError(err));
    socket.on('close', () => {
      if (this.done) return;
      this.done = true;
      handlers.onClose();
    });
  }

  /**
   * Opens an outbound connection.
   * @param localAddress local IP to bind (undefined: chosen by the OS)
   */
  static connect(host: string, port: number, localAddress: string | undefined, handlers: TcpConnectionHandlers): TcpConnection {
    const socket = net.connect({ host, port, localAddress, noDelay: true, allowHalfOpen: false });
    return new TcpConnection(socket, handlers);
  }

  /** Remote address/port as reported by the OS (undefined once the socket is gone). */
  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.socket.remotePort;
  }

  /** True while the connection can take writes (connecting counts as open). */
  get writable(): boolean {
    return !this.done && !this.socket.destroyed && this.socket.writable;
  }

  /** Octets queued in user space, not yet handed to the kernel. */
  get queuedBytes(): number {
    return this.socket.writableLength;
  }

  /** Queues octets for sending (not copied). */
  write(data: Buffer): void {
    this.socket.write(data);
  }

  /** Sends `data` (if any) then closes gracefully (FIN after the queue is flushed). */
  end(data?: Buffer): void {
    if (data !== undefined) this.socket.end(data);
    else this.socket.end();
    // Do not wait forever for the peer to close its side.
    this.socket.setTimeout(5000, () => this.socket.destroy());
  }

  /** Closes immediately (RST if data is pending). */
  destroy(): void {
    this.socket.destroy();
  }

  /** Closes immediately and resolves once the socket is fully closed. */
  destroyAndWait(): Promise<void> {
    if (this.done || this.socket.closed) {
      this.socket.destroy();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.destroy();
    });
  }
}
