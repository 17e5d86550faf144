/**
 * The datagram socket abstraction the media unit is written against. The only implementation
 * touching `node:dgram` is `node/udp.ts`; tests may inject their own.
 */

/**
 * Called for every datagram received: its octets (owned by the callee) and source.
 * On the relay hot path: keep it allocation-free.
 */
export type PacketHandler = (data: Buffer, address: string, port: number) => void;

/** One bound UDP socket. */
export interface MediaSocket {
  /** The bound local port. */
  readonly port: number;
  /**
   * Sends one datagram (fire and forget: failures are reported to the bind's `onError`).
   * @param data not copied: do not modify until sent
   */
  send(data: Buffer, port: number, address: string): void;
  /** Closes the socket; resolves once the port is free again (idempotent). */
  close(): Promise<void>;
}

/** Creates bound sockets. */
export interface MediaSocketFactory {
  /**
   * Binds a UDP socket.
   * @param address local IP (`0.0.0.0`, `::` or a specific address)
   * @param port local port, 0 for an ephemeral one
   * @param onPacket datagram callback
   * @param onError asynchronous socket errors after binding (e.g. failed sends); the socket stays open
   * @throws (rejects) with the system error (`code` `EADDRINUSE`, `EACCES`, `EADDRNOTAVAIL` …) when binding fails
   */
  bind(address: string, port: number, onPacket: PacketHandler, onError: (err: Error) => void): Promise<MediaSocket>;
}
