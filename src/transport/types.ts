/**
 * Shapes shared by the transport layer and the units above it (RFC 3261 §18).
 */
import type { SipMessage, SipParseError } from '../sip/message.js';

/** Transport protocol of a socket or flow, lower case as in config (`udp:…`). */
export type TransportProto = 'udp' | 'tcp' | 'tls' | 'ws' | 'wss';

/** An IP address and port. IPv6 addresses are written without brackets. */
export interface HostPort {
  address: string;
  port: number;
}

/**
 * One configured listening socket: `udp:10.0.0.10:5060 as 203.0.113.10:5060`.
 * `id` is the stable socket name `proto:address:port` (IPv6 in brackets).
 */
export interface ListenSpec {
  id: string;
  transport: TransportProto;
  address: string;
  port: number;
  /** The address advertised in SIP for this socket (`as …`), if configured. */
  advertised?: { host: string; port: number };
}

/**
 * A flow (RFC 5626 §3): the 5-tuple a message arrived on or must leave on.
 * For TCP/TLS `connectionId` identifies the connection; replies to a NATed UA must use it.
 */
export interface Flow {
  transport: TransportProto;
  /** Our socket: its id and its actually bound address/port (port 0 resolved). */
  local: HostPort & { socketId: string };
  remote: HostPort;
  connectionId?: number;
}

/** A message received from the network, after parsing and received/rport stamping. */
export interface Inbound {
  message: SipMessage;
  flow: Flow;
  /** The exact octets received (for logging/forensics; do not mutate). */
  raw: Buffer;
  /** Monotonic receive time, ms. */
  receivedAt: number;
}

/**
 * Where to send a message. When `connectionId` is set (TCP/TLS) the message must go on that
 * connection and fails if it is gone (never a new connection); `socketId` forces the
 * local socket (`force_send_socket`).
 */
export interface Destination extends HostPort {
  transport: TransportProto;
  socketId?: string;
  connectionId?: number;
}

/** Outcome of a send; failures carry a stable code. */
export type SendResult = { ok: true; flow: Flow } | { ok: false; code: 'NO_SOCKET' | 'NO_CONNECTION' | 'CONNECT_FAILED' | 'TOO_LARGE' | 'SEND_FAILED'; detail: string };

/** Callbacks the transport layer calls upwards. */
export interface TransportEvents {
  /** A well-formed message arrived (requests already stamped with received/rport). */
  onMessage(inbound: Inbound): void;
  /** A malformed message arrived; the transport has already answered 400/413/505 when possible. */
  onParseError?(error: SipParseError, flow: Flow, raw: Buffer): void;
  /** A non-SIP datagram arrived on a UDP SIP socket (first-byte demux, e.g. STUN 0x00/0x01). */
  onNonSip?(data: Buffer, flow: Flow): Buffer | undefined;
  /** A TCP/TLS connection closed. */
  onConnectionClosed?(flow: Flow): void;
  /**
   * A send that was accepted (`SendResult` ok) failed later: an outbound connection could not
   * be established (`CONNECT_FAILED`: refused, unreachable, timed out) or the OS rejected a
   * datagram (`SEND_FAILED`). Optional; failures are always counted in the transport stats.
   */
  onSendFailure?(dest: Destination, code: 'CONNECT_FAILED' | 'SEND_FAILED', detail: string): void;
}
