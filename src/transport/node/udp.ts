/**
 * UDP socket adapter (node:dgram). Owns one bound datagram socket; no SIP logic.
 */
import dgram from 'node:dgram';
import { literalLookup } from '../../lib/node/lookup.js';

/** Called for every datagram: its octets (a fresh Buffer, not reused) and source. */
export type DatagramHandler = (data: Buffer, address: string, port: number) => void;

/**
 * Default `SO_RCVBUF` requested for SIP UDP sockets, octets (4 MiB): room for a burst of a few
 * thousand datagrams (answers to keepalives, a REGISTER storm after an outage) while the event
 * loop is busy, where the kernel default (`net.core.rmem_default`, often 208 KiB) holds ~150.
 */
export const DEFAULT_UDP_RECV_BUFFER = 4 * 1024 * 1024;
/** Default `SO_SNDBUF` requested for SIP UDP sockets, octets (1 MiB). */
export const DEFAULT_UDP_SEND_BUFFER = 1024 * 1024;

/**
 * Socket buffer sizes of a {@link UdpSocket}, octets; 0 leaves the kernel default. Linux caps a
 * request at `net.core.rmem_max` / `net.core.wmem_max` (often 208 KiB) without an error, and
 * reports twice the granted size (the doubling covers its bookkeeping). To get 4 MiB on such a
 * host raise the limit first (root): `sysctl -w net.core.rmem_max=4194304` (persist it in
 * /etc/sysctl.d/); sipedge never changes sysctls itself.
 */
export interface UdpBufferOptions {
  /** `SO_RCVBUF` to request; default {@link DEFAULT_UDP_RECV_BUFFER}. */
  recvBufferSize?: number;
  /** `SO_SNDBUF` to request; default {@link DEFAULT_UDP_SEND_BUFFER}. */
  sendBufferSize?: number;
}

/** One bound UDP socket. IPv6 sockets are IPv6-only, so `0.0.0.0` and `::` can both be bound. */
export class UdpSocket {
  private readonly socket: dgram.Socket;
  private bound = false;
  private closed = false;

  /**
   * @param address local IP address to bind (IPv6 without brackets)
   * @param onMessage datagram callback
   * @param onError socket errors after binding (e.g. asynchronous send errors); the socket stays open
   * @param buffers socket buffer sizes requested once bound (see {@link UdpBufferOptions})
   */
  constructor(
    private readonly address: string,
    onMessage: DatagramHandler,
    private readonly onError: (err: Error) => void,
    private readonly buffers: UdpBufferOptions = {},
  ) {
    this.socket = dgram.createSocket({
      type: address.includes(':') ? 'udp6' : 'udp4',
      ipv6Only: address.includes(':'),
      lookup: literalLookup,
    });
    this.socket.on('message', (msg, rinfo) => onMessage(msg, rinfo.address, rinfo.port));
  }

  /**
   * Binds the socket.
   * @param port local port, 0 for an ephemeral one
   * @param exclusive false in a node:cluster worker to share one socket with the other workers
   *   (the primary binds it; each datagram is read by one worker); default true
   * @returns the bound port
   */
  bind(port: number, exclusive = true): Promise<number> {
    return new Promise((resolve, reject) => {
      const onBindError = (err: Error): void => reject(err);
      this.socket.once('error', onBindError);
      this.socket.bind({ port, address: this.address, exclusive }, () => {
        this.socket.off('error', onBindError);
        this.socket.on('error', this.onError);
        this.bound = true;
        this.applyBufferSizes();
        resolve(this.socket.address().port);
      });
    });
  }

  /**
   * Socket buffer sizes as the kernel reports them (`getsockopt`: on Linux twice the size granted),
   * octets; 0 before the socket is bound.
   */
  bufferSizes(): { recv: number; send: number } {
    if (!this.bound || this.closed) return { recv: 0, send: 0 };
    return { recv: this.socket.getRecvBufferSize(), send: this.socket.getSendBufferSize() };
  }

  /**
   * Requests the configured `SO_RCVBUF` / `SO_SNDBUF`. A refusal is not fatal: the socket keeps
   * the kernel default (a request above the `*mem_max` sysctl is capped silently, not refused).
   */
  private applyBufferSizes(): void {
    const recv = this.buffers.recvBufferSize ?? DEFAULT_UDP_RECV_BUFFER;
    const send = this.buffers.sendBufferSize ?? DEFAULT_UDP_SEND_BUFFER;
    try {
      if (recv > 0) this.socket.setRecvBufferSize(recv);
    } catch (err) {
      this.onError(err as Error);
    }
    try {
      if (send > 0) this.socket.setSendBufferSize(send);
    } catch (err) {
      this.onError(err as Error);
    }
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
