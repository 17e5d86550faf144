/**
 * UDP socket adapter (node:dgram). Owns one bound datagram socket; no SIP logic.
 */
import dgram from 'node:dgram';

/** Called for every datagram: its octets (a fresh Buffer, not reused) and source. */
export type DatagramHandler = (data: Buffer, address: string, port: number) => void;

/** One bound UDP socket. IPv6 sockets are IPv6-only, so `0.0.0.0` and `::` can both be bound. */
export class UdpSocket {
  private readonly socket: dgram.Socket;
  private bound = false;
  private closed = false;

  /**
   * @param address local IP address to bind (IPv6 without brackets)
   * @param onMessage datagram callback
   * @param onError socket errors after binding (e.g. asynchronous send errors); the socket stays open
   */
  constructor(
    private readonly address: string,
    onMessage: DatagramHandler,
    private readonly onError: (err: Error) => void,
  ) {
    this.socket = dgram.createSocket({ type: address.includes(':') ? 'udp6' : 'udp4', ipv6Only: address.includes(':') });
    this.socket.on('message', (msg, rinfo) => onMessage(msg, rinfo.address, rinfo.port));
  }

  /**
   * Binds the socket.
   * @param port local port, 0 for an ephemeral one
   * @returns the bound port
   */
  bind(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onBindError = (err: Error): void => reject(err);
      this.socket.once('error', onBindError);
      this.socket.bind({ port, address: this.address, exclusive: true }, () => {
        this.socket.off('error', onBindError);
        this.socket.on('error', this.onError);
        this.bound = true;
        resolve(this.socket.address().port);
      });
    });
  }

  /**
   * Sends one datagram. Throws synchronously only for invalid arguments or a closed socket;
   * asynchronous failures go to `cb`, or to the error handler when `cb` is omitted.
   * @param data the octets (not copied; do not modify until sent)
   */
  send(data: Buffer, port: number, address: string, cb?: (err: Error | null) => void): void {
    this.socket.send(data, port, address, cb);
  }

  /** Closes the socket; resolves once closed (idempotent). */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve(); // never bound or already closed
      }
      if (!this.bound) resolve();
    });
  }
}
