/**
 * The transport layer (RFC 3261 §18): owns the UDP sockets and TCP listeners/connections,
 * turns received octets into {@link Inbound} messages (parse, received/rport stamping) and
 * sends requests and responses. Implements {@link TransactionTransport}.
 *
 * Hot path rules: no per-packet logging (everything is counted in {@link TransportStats}),
 * no copies of received octets on UDP, one `Flow` object per TCP connection.
 */
import { parseMessage } from '../sip/parse.js';
import { buildErrorResponse } from '../sip/response.js';
import { serializeMessage } from '../sip/serialize.js';
import type { SipErrorCode, SipHeader, SipParseError, SipRequest, SipResponse } from '../sip/message.js';
import type { TransactionTransport } from '../transaction/types.js';
import type { Clock, TimerHandle } from '../lib/clock.js';
import { silentLogger, type Logger } from '../lib/log.js';
import { familyOf, isWildcard, normalizeAddress } from './address.js';
import { nextFrame, type Frame } from './framing.js';
import { responseDestination, stampReceived } from './received.js';
import { UdpSocket, type UdpBufferOptions } from './node/udp.js';
import { TcpConnection, TcpServer, type AcceptedSocket, type TcpConnectionHandlers } from './node/tcp.js';
import type { UdpDispatch } from './dispatch.js';
import type { Destination, Flow, HostPort, Inbound, ListenSpec, SendResult, TransportEvents, TransportProto } from './types.js';

/** Limits; every one is on by default. */
export interface TransportLimits {
  /** Largest accepted message, octets (datagram, or start line + headers + body on a stream). Default 65535. */
  maxMessageSize?: number;
  /** Most header lines in one message. Default 256. */
  maxHeaders?: number;
  /** Most simultaneous TCP connections (inbound + outbound); more are refused. Default 10000. */
  maxConnections?: number;
  /** A TCP connection with no traffic in either direction for this long is closed, ms. Default 600 000 (must exceed registration intervals). */
  tcpIdleTimeoutMs?: number;
  /** An outbound TCP connect that has not completed after this long fails, ms. Default 10 000. */
  tcpConnectTimeoutMs?: number;
  /** A connection whose unsent queue grows beyond this is closed (peer not reading), octets. Default 4 MiB. */
  tcpMaxQueuedBytes?: number;
}

/** Options of {@link TransportLayer}. */
export interface TransportLayerOptions {
  listen: ListenSpec[];
  events: TransportEvents;
  clock: Clock;
  logger?: Logger;
  limits?: TransportLimits;
  /**
   * Several worker processes (src/cluster/): UDP listeners are bound shared (node:cluster hands
   * every worker the same socket) and each received datagram is first offered to this hook;
   * when it returns true (forwarded to the worker that owns it) it is not handled here.
   */
  udpDispatch?: UdpDispatch;
  /** SO_RCVBUF / SO_SNDBUF of the UDP listeners (default 4 MiB / 1 MiB, capped by the kernel's `*mem_max`; see node/udp.ts). */
  udpBuffers?: UdpBufferOptions;
}

/** Counters of a {@link TransportLayer}; a snapshot from {@link TransportLayer.stats}. */
export interface TransportStats {
  /** SIP messages passed up through `onMessage`. */
  received: number;
  /** Messages and other payloads handed to the OS (including error responses and pongs). */
  sent: number;
  /** Malformed input by error code (`sip/` codes, plus `MISSING_HEADER`/`TOO_LARGE`/`BAD_CONTENT_LENGTH` from TCP framing). */
  parseErrors: Partial<Record<SipErrorCode, number>>;
  /** Received inputs not passed up (parse errors, unusable top Via, empty or unhandled non-SIP datagrams). */
  dropped: number;
  /** Requests dropped because their top Via could not be stamped. */
  badVia: number;
  /** Non-SIP datagrams (first byte 0x00/0x01, e.g. STUN). */
  nonSip: number;
  /** CRLF keep-alives: CRLF-only UDP datagrams and TCP CRLFCRLF pings. */
  keepalives: number;
  /** Single-CRLF pongs received on TCP. */
  pongs: number;
  /** Octets skipped on streams while resynchronising on a start line. */
  garbageBytes: number;
  /** Sends that failed (synchronously or later). */
  sendErrors: number;
  /** Exceptions thrown by event handlers (caught; the socket keeps working). */
  handlerErrors: number;
  tcp: {
    /** Connections open now. */
    open: number;
    accepted: number;
    /** Outbound connections established. */
    connected: number;
    /** Inbound connections refused over `maxConnections`. */
    rejected: number;
    connectFailures: number;
    idleClosed: number;
    /** Connections closed because framing failed (oversize, missing Content-Length) or the queue overflowed. */
    errorClosed: number;
    closed: number;
  };
}

interface Sock {
  spec: ListenSpec;
  boundPort: number;
  family: 4 | 6;
  local: Flow['local'];
  udp?: UdpSocket;
  tcp?: TcpServer;
}

interface Conn {
  id: number;
  io: TcpConnection;
  flow: Flow;
  key: string;
  outbound: boolean;
  /** Destination of the send that opened an outbound connection (for onSendFailure). */
  dest?: Destination;
  connected: boolean;
  /** Unconsumed received octets, as chunks (concatenated only when framing needs them). */
  rx: Buffer[];
  rxLen: number;
  /** Do not frame again until this many octets are buffered (body still arriving). */
  rxNeed: number;
  lastActivity: number;
  connectTimer?: TimerHandle;
  closing: boolean;
}

const CRLF = Buffer.from('\r\n');
const EMPTY_HEADERS: SipHeader[] = [];
/** Largest UDP payload: 65535 − 8 (UDP) − 20 (IPv4) = 65507; IPv6 (no extension headers) 65527. */
const MAX_DATAGRAM = { 4: 65507, 6: 65527 } as const;

function fail(code: 'NO_SOCKET' | 'NO_CONNECTION' | 'CONNECT_FAILED' | 'TOO_LARGE' | 'SEND_FAILED', detail: string): SendResult {
  return { ok: false, code, detail };
}

function connKey(transport: TransportProto, address: string, port: number): string {
  return transport + '|' + normalizeAddress(address) + '|' + port;
}

function isCrlfOnly(data: Buffer): boolean {
  for (let i = 0; i < data.length; i++) {
    const c = data[i];
    if (c !== 0x0d && c !== 0x0a) return false;
  }
  return true;
}

/**
 * UDP and TCP transport for SIP (RFC 3261 §18, RFC 3581, RFC 5626 §3.5.1 keep-alives).
 * TLS/WS/WSS listeners are not implemented yet: `start()` rejects them and sends to them
 * return `NO_SOCKET`.
 */
export class TransportLayer implements TransactionTransport {
  private readonly events: TransportEvents;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly maxMessageSize: number;
  private readonly maxHeaders: number;
  private readonly maxConnections: number;
  private readonly idleTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly maxQueued: number;
  private readonly specs: ListenSpec[];
  private readonly dispatch: UdpDispatch | undefined;
  private readonly udpBuffers: UdpBufferOptions | undefined;

  private readonly byId = new Map<string, Sock>();
  private readonly udpSocks: Sock[] = [];
  private readonly tcpSocks: Sock[] = [];
  private readonly conns = new Map<number, Conn>();
  private readonly connsByKey = new Map<string, Conn>();
  /**
   * Connection ids are stored with bindings (SQLite survives restarts), so they must not repeat
   * across process lifetimes: start from the wall clock in µs, which only grows.
   */
  private nextConnId = Date.now() * 1000;
  private sweepTimer: TimerHandle | undefined;
  private started = false;
  private closed = false;
  private readonly st: TransportStats = {
    received: 0,
    sent: 0,
    parseErrors: {},
    dropped: 0,
    badVia: 0,
    nonSip: 0,
    keepalives: 0,
    pongs: 0,
    garbageBytes: 0,
    sendErrors: 0,
    handlerErrors: 0,
    tcp: { open: 0, accepted: 0, connected: 0, rejected: 0, connectFailures: 0, idleClosed: 0, errorClosed: 0, closed: 0 },
  };

  constructor(opts: TransportLayerOptions) {
    this.specs = opts.listen;
    this.events = opts.events;
    this.clock = opts.clock;
    this.log = opts.logger ?? silentLogger;
    const l = opts.limits ?? {};
    this.maxMessageSize = l.maxMessageSize ?? 65535;
    this.maxHeaders = l.maxHeaders ?? 256;
    this.maxConnections = l.maxConnections ?? 10000;
    this.idleTimeoutMs = l.tcpIdleTimeoutMs ?? 600_000;
    this.connectTimeoutMs = l.tcpConnectTimeoutMs ?? 10_000;
    this.maxQueued = l.tcpMaxQueuedBytes ?? 4 * 1024 * 1024;
    this.dispatch = opts.udpDispatch;
    this.udpBuffers = opts.udpBuffers;
  }

  /**
   * Binds every listening socket. Rejects with an Error naming the socket id (e.g.
   * `udp:127.0.0.1:5060: listen EADDRINUSE …`) and closes whatever was already bound.
   */
  async start(): Promise<void> {
    if (this.started) throw new Error('transport layer already started');
    this.started = true;
    try {
      for (const spec of this.specs) {
        if (this.byId.has(spec.id)) throw new Error(`${spec.id}: listed twice`);
        await this.bind(spec);
      }
    } catch (err) {
      await this.close();
      throw err;
    }
    if (this.tcpSocks.length > 0) this.armSweep();
  }

  private async bind(spec: ListenSpec): Promise<void> {
    const family = familyOf(spec.address);
    const local = { socketId: spec.id, address: spec.address, port: spec.port };
    const sock: Sock = { spec, boundPort: spec.port, family, local };
    try {
      if (spec.transport === 'udp') {
        const udp = new UdpSocket(
          spec.address,
          (data, address, port) => this.onDatagram(sock, data, address, port),
          (err) => {
            this.st.sendErrors++;
            this.log.debug({ socket: spec.id, err: err.message }, 'udp socket error');
          },
          this.udpBuffers,
        );
        sock.udp = udp;
        this.byId.set(spec.id, sock);
        sock.boundPort = await udp.bind(spec.port, this.dispatch === undefined);
        this.udpSocks.push(sock);
      } else if (spec.transport === 'tcp') {
        const tcp = new TcpServer(
          spec.address,
          (accepted) => this.onAccept(sock, accepted),
          (err) => this.log.warn({ socket: spec.id, err: err.message }, 'tcp listener error'),
        );
        sock.tcp = tcp;
        this.byId.set(spec.id, sock);
        sock.boundPort = await tcp.listen(spec.port);
        this.tcpSocks.push(sock);
      } else {
        throw new Error(`transport ${spec.transport} is not implemented yet`);
      }
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const wrapped = new Error(`${spec.id}: ${e.message}`, { cause: err });
      (wrapped as NodeJS.ErrnoException).code = e.code;
      throw wrapped;
    }
    local.port = sock.boundPort;
    this.log.info({ socket: spec.id, port: sock.boundPort }, 'listening');
  }

  /** The listening sockets with their actual ports (port 0 resolved after {@link start}). */
  sockets(): Array<ListenSpec & { boundPort: number }> {
    const out: Array<ListenSpec & { boundPort: number }> = [];
    for (const s of this.byId.values()) if (s.udp !== undefined || s.tcp !== undefined) out.push({ ...s.spec, boundPort: s.boundPort });
    return out;
  }

  /** True while TCP/TLS connection `connectionId` exists and can take writes. */
  connectionOpen(connectionId: number): boolean {
    const c = this.conns.get(connectionId);
    return c !== undefined && !c.closing && c.io.writable;
  }

  /** Counters snapshot. */
  stats(): TransportStats {
    return { ...this.st, parseErrors: { ...this.st.parseErrors }, tcp: { ...this.st.tcp, open: this.conns.size } };
  }

  // ---------------------------------------------------------------- sending

  /** Serializes and sends a request (RFC 3261 §18.1.1). */
  sendRequest(request: SipRequest, dest: Destination): SendResult {
    return this.sendRaw(serializeMessage(request), dest);
  }

  /**
   * Sends a response of a server transaction to where RFC 3261 §18.2.2 / RFC 3581 §4 say
   * (see {@link responseDestination}), from the socket the request arrived on.
   */
  sendResponse(response: SipResponse, requestInbound: Inbound): SendResult {
    const dest = responseDestination(response, requestInbound.flow, (id) => this.connectionOpen(id));
    return this.sendRaw(serializeMessage(response), dest);
  }

  /**
   * Sends octets as they are.
   *
   * - UDP: from `dest.socketId`, else the first UDP socket of the destination's address family.
   * - TCP: on `dest.connectionId` when set (`NO_CONNECTION` if it is gone: never a new
   *   connection); else on an open connection to the same address:port (inbound or outbound,
   *   RFC 5923-style reuse); else a new connection from the chosen listener's address (octets
   *   are queued until it is established; failure is reported via `onSendFailure`).
   */
  sendRaw(data: Buffer, dest: Destination): SendResult {
    if (this.closed) return fail('NO_SOCKET', 'transport layer closed');
    switch (dest.transport) {
      case 'udp':
        return this.sendUdp(data, dest);
      case 'tcp':
        return this.sendTcp(data, dest);
      default:
        return fail('NO_SOCKET', `transport ${dest.transport} is not implemented`);
    }
  }

  private pick(list: Sock[], dest: Destination): Sock | SendResult {
    if (dest.socketId !== undefined) {
      const s = this.byId.get(dest.socketId);
      if (s === undefined || s.spec.transport !== dest.transport) return fail('NO_SOCKET', `no ${dest.transport} socket ${dest.socketId}`);
      if (s.family !== familyOf(dest.address)) return fail('NO_SOCKET', `socket ${dest.socketId} cannot reach ${dest.address} (address family)`);
      return s;
    }
    const fam = familyOf(dest.address);
    for (let i = 0; i < list.length; i++) if (list[i].family === fam) return list[i];
    return fail('NO_SOCKET', `no ${dest.transport} IPv${fam} socket`);
  }

  private sendUdp(data: Buffer, dest: Destination): SendResult {
    const s = this.pick(this.udpSocks, dest);
    if (!('spec' in s)) return s;
    if (data.length > MAX_DATAGRAM[s.family]) {
      this.st.sendErrors++;
      return fail('TOO_LARGE', `${data.length} octets exceed the largest UDP datagram`);
    }
    try {
      const cb = this.events.onSendFailure === undefined ? undefined : this.udpSendCallback(dest);
      (s.udp as UdpSocket).send(data, dest.port, dest.address, cb);
    } catch (err) {
      this.st.sendErrors++;
      return fail('SEND_FAILED', (err as Error).message);
    }
    this.st.sent++;
    return { ok: true, flow: { transport: 'udp', local: s.local, remote: { address: dest.address, port: dest.port } } };
  }

  private udpSendCallback(dest: Destination): (err: Error | null) => void {
    return (err) => {
      if (err === null || err === undefined) return;
      this.st.sendErrors++;
      this.callSendFailure(dest, 'SEND_FAILED', err.message);
    };
  }

  private sendTcp(data: Buffer, dest: Destination): SendResult {
    if (data.length > this.maxQueued) {
      this.st.sendErrors++;
      return fail('TOO_LARGE', `${data.length} octets exceed the connection queue limit`);
    }
    if (dest.connectionId !== undefined) {
      const c = this.conns.get(dest.connectionId);
      if (c === undefined || c.closing || !c.io.writable) return fail('NO_CONNECTION', `connection ${dest.connectionId} is closed`);
      return this.write(c, data);
    }
    const existing = this.connsByKey.get(connKey('tcp', dest.address, dest.port));
    if (existing !== undefined && !existing.closing && existing.io.writable) return this.write(existing, data);
    const s = this.pick(this.tcpSocks, dest);
    if (!('spec' in s)) return s;
    if (this.conns.size >= this.maxConnections) {
      this.st.sendErrors++;
      return fail('SEND_FAILED', `connection limit ${this.maxConnections} reached`);
    }
    let c: Conn;
    try {
      c = this.connect(s, dest);
    } catch (err) {
      this.st.sendErrors++;
      this.st.tcp.connectFailures++;
      return fail('CONNECT_FAILED', (err as Error).message);
    }
    return this.write(c, data);
  }

  private write(c: Conn, data: Buffer): SendResult {
    c.io.write(data);
    c.lastActivity = this.clock.now();
    this.st.sent++;
    if (c.io.queuedBytes > this.maxQueued) {
      // The peer does not read: RFC 3261 §18.4 — treat as a transport error.
      this.st.sendErrors++;
      this.st.tcp.errorClosed++;
      this.closeConn(c, false);
      return fail('SEND_FAILED', `connection ${c.id}: peer not reading (${c.io.queuedBytes} octets queued)`);
    }
    return { ok: true, flow: c.flow };
  }

  private callSendFailure(dest: Destination, code: 'CONNECT_FAILED' | 'SEND_FAILED', detail: string): void {
    const cb = this.events.onSendFailure;
    if (cb === undefined) return;
    try {
      cb.call(this.events, dest, code, detail);
    } catch (err) {
      this.handlerError(err);
    }
  }

  // ---------------------------------------------------------------- UDP receive

  /**
   * Handles a datagram another worker received on UDP listener `socketId` and forwarded here
   * (src/cluster/), exactly as if it had arrived on that socket from `address`:`port`.
   * @returns false when there is no such UDP listener
   */
  injectDatagram(socketId: string, data: Buffer, address: string, port: number): boolean {
    const sock = this.byId.get(socketId);
    if (sock?.udp === undefined) return false;
    this.onDatagram(sock, data, address, port);
    return true;
  }

  private onDatagram(sock: Sock, data: Buffer, address: string, port: number): void {
    if (this.closed) return;
    if (this.dispatch !== undefined && this.dispatch(sock.spec.id, data, address, port)) return;
    const len = data.length;
    if (len === 0) {
      this.st.dropped++;
      return;
    }
    const b0 = data[0];
    if (b0 === 0x00 || b0 === 0x01) {
      this.onNonSip(sock, data, address, port);
      return;
    }
    if ((b0 === 0x0d || b0 === 0x0a) && isCrlfOnly(data)) {
      // CRLF keep-alive datagrams sent by many UAs to hold their NAT binding: ignore.
      this.st.keepalives++;
      return;
    }
    const flow: Flow = { transport: 'udp', local: sock.local, remote: { address, port } };
    const res = parseMessage(data, { maxSize: this.maxMessageSize, maxHeaders: this.maxHeaders });
    if (!res.ok) {
      this.onParseError(res, flow, data, undefined, sock);
      return;
    }
    const message = res.message;
    if (message.type === 'request' && !stampReceived(message, flow.remote)) {
      this.st.badVia++;
      this.st.dropped++;
      return;
    }
    this.deliver({ message, flow, raw: data, receivedAt: this.clock.now() });
  }

  private onNonSip(sock: Sock, data: Buffer, address: string, port: number): void {
    this.st.nonSip++;
    const handler = this.events.onNonSip;
    if (handler === undefined) {
      this.st.dropped++;
      return;
    }
    let reply: Buffer | undefined;
    try {
      reply = handler.call(this.events, data, { transport: 'udp', local: sock.local, remote: { address, port } });
    } catch (err) {
      this.handlerError(err);
      return;
    }
    if (reply !== undefined) this.sendUdpReply(sock, reply, address, port);
  }

  private sendUdpReply(sock: Sock, data: Buffer, address: string, port: number): void {
    try {
      (sock.udp as UdpSocket).send(data, port, address);
      this.st.sent++;
    } catch {
      this.st.sendErrors++;
    }
  }

  // ---------------------------------------------------------------- shared receive

  private deliver(inbound: Inbound): void {
    this.st.received++;
    try {
      this.events.onMessage(inbound);
    } catch (err) {
      this.handlerError(err);
    }
  }

  /**
   * Counts a parse error, answers it when a response can be built (RFC 3261 §8.2.6:
   * 400/413/505 … back to the source: same socket for UDP, same connection for TCP) and
   * tells the upper layer.
   */
  private onParseError(err: SipParseError, flow: Flow, raw: Buffer, conn: Conn | undefined, sock: Sock | undefined): void {
    const pe = this.st.parseErrors;
    pe[err.code] = (pe[err.code] ?? 0) + 1;
    this.st.dropped++;
    const response = buildErrorResponse(err);
    if (response !== undefined) {
      const out = serializeMessage(response);
      if (conn !== undefined) {
        if (conn.io.writable) {
          conn.io.write(out);
          this.st.sent++;
        }
      } else if (sock !== undefined) {
        this.sendUdpReply(sock, out, flow.remote.address, flow.remote.port);
      }
    }
    const cb = this.events.onParseError;
    if (cb !== undefined) {
      try {
        cb.call(this.events, err, flow, raw);
      } catch (e) {
        this.handlerError(e);
      }
    }
  }

  private handlerError(err: unknown): void {
    this.st.handlerErrors++;
    this.log.error({ err }, 'transport event handler threw');
  }

  // ---------------------------------------------------------------- TCP

  private onAccept(sock: Sock, accepted: AcceptedSocket): void {
    const { remoteAddress, remotePort } = accepted;
    if (this.closed || remoteAddress === undefined || remotePort === undefined) {
      accepted.reject();
      return;
    }
    if (this.conns.size >= this.maxConnections) {
      this.st.tcp.rejected++;
      accepted.reject();
      return;
    }
    this.st.tcp.accepted++;
    const c = this.newConn(sock, { address: remoteAddress, port: remotePort }, false, (h) => accepted.adopt(h));
    c.connected = true;
  }

  private connect(sock: Sock, dest: Destination): Conn {
    const localAddress = isWildcard(sock.spec.address) ? undefined : sock.spec.address;
    const c = this.newConn(sock, { address: dest.address, port: dest.port }, true, (h) => TcpConnection.connect(dest.address, dest.port, localAddress, h));
    c.dest = dest;
    c.connectTimer = this.clock.setTimer(this.connectTimeoutMs, () => {
      c.connectTimer = undefined;
      if (c.connected || c.closing) return;
      this.connectFailed(c, `connect to ${dest.address}:${dest.port} timed out after ${this.connectTimeoutMs} ms`);
      this.closeConn(c, false);
    });
    return c;
  }

  private newConn(sock: Sock, remote: HostPort, outbound: boolean, open: (h: TcpConnectionHandlers) => TcpConnection): Conn {
    const id = this.nextConnId++;
    const partial: Omit<Conn, 'io'> = {
      id,
      flow: { transport: sock.spec.transport, local: sock.local, remote, connectionId: id },
      key: connKey(sock.spec.transport, remote.address, remote.port),
      outbound,
      connected: false,
      rx: [],
      rxLen: 0,
      rxNeed: 0,
      lastActivity: this.clock.now(),
      closing: false,
    };
    const c = partial as Conn;
    c.io = open(this.handlers(c));
    this.conns.set(id, c);
    this.connsByKey.set(c.key, c);
    return c;
  }

  private handlers(c: Conn): TcpConnectionHandlers {
    return {
      onConnect: () => {
        c.connected = true;
        this.clock.clearTimer(c.connectTimer);
        c.connectTimer = undefined;
        this.st.tcp.connected++;
      },
      onData: (chunk) => this.onStreamData(c, chunk),
      onError: (err) => {
        if (!c.connected && c.outbound && !c.closing) this.connectFailed(c, err.message);
        else this.log.debug({ connectionId: c.id, err: err.message }, 'tcp connection error');
      },
      onClose: () => this.onConnClosed(c),
    };
  }

  private connectFailed(c: Conn, detail: string): void {
    this.st.tcp.connectFailures++;
    this.st.sendErrors++;
    this.log.debug({ connectionId: c.id, detail }, 'tcp connect failed');
    if (c.dest !== undefined) this.callSendFailure(c.dest, 'CONNECT_FAILED', detail);
  }

  private closeConn(c: Conn, graceful: boolean, last?: Buffer): void {
    if (c.closing) return;
    c.closing = true;
    this.unregister(c);
    if (graceful) c.io.end(last);
    else c.io.destroy();
  }

  private unregister(c: Conn): void {
    this.clock.clearTimer(c.connectTimer);
    c.connectTimer = undefined;
    if (this.connsByKey.get(c.key) === c) this.connsByKey.delete(c.key);
  }

  private onConnClosed(c: Conn): void {
    c.closing = true;
    this.unregister(c);
    this.conns.delete(c.id);
    c.rx = [];
    c.rxLen = 0;
    this.st.tcp.closed++;
    const cb = this.events.onConnectionClosed;
    if (cb !== undefined && !this.closed) {
      try {
        cb.call(this.events, c.flow);
      } catch (err) {
        this.handlerError(err);
      }
    }
  }

  /** Accumulates stream octets and handles every complete item (RFC 3261 §18.3). */
  private onStreamData(c: Conn, chunk: Buffer): void {
    if (c.closing || this.closed) return;
    c.lastActivity = this.clock.now();
    c.rx.push(chunk);
    c.rxLen += chunk.length;
    if (c.rxLen < c.rxNeed) return;
    const buf = c.rx.length === 1 ? c.rx[0] : Buffer.concat(c.rx, c.rxLen);
    c.rxNeed = 0;
    let off = 0;
    const len = buf.length;
    while (off < len) {
      const view = off === 0 ? buf : buf.subarray(off);
      const f: Frame = nextFrame(view, this.maxMessageSize);
      if (f.kind === 'incomplete') {
        c.rxNeed = f.length ?? 0;
        break;
      }
      if (f.kind === 'error') {
        this.onFrameError(c, view, f);
        return;
      }
      if (f.kind === 'message') {
        this.onStreamMessage(c, view.subarray(0, f.length));
        if (c.closing) return;
      } else if (f.kind === 'ping') {
        // RFC 5626 §3.5.1: a CRLFCRLF ping is answered with a single CRLF pong.
        this.st.keepalives++;
        c.io.write(CRLF);
        this.st.sent++;
      } else if (f.kind === 'pong') {
        this.st.pongs++;
      } else {
        this.st.garbageBytes += f.length;
      }
      off += f.length;
    }
    if (off >= len) {
      c.rx = [];
      c.rxLen = 0;
    } else {
      const rest = off === 0 ? buf : buf.subarray(off);
      c.rx = [rest];
      c.rxLen = rest.length;
    }
  }

  private onStreamMessage(c: Conn, raw: Buffer): void {
    const res = parseMessage(raw, { maxSize: this.maxMessageSize, maxHeaders: this.maxHeaders, stream: true });
    if (!res.ok) {
      this.onParseError(res, c.flow, raw, c, undefined);
      return;
    }
    const message = res.message;
    if (message.type === 'request' && !stampReceived(message, c.flow.remote)) {
      this.st.badVia++;
      this.st.dropped++;
      return;
    }
    this.deliver({ message, flow: c.flow, raw, receivedAt: this.clock.now() });
  }

  /**
   * The stream cannot be framed any more (oversize, missing or bad Content-Length): answer
   * 413/400 when the header block was read and is a request, then close the connection.
   */
  private onFrameError(c: Conn, view: Buffer, f: Extract<Frame, { kind: 'error' }>): void {
    const code: SipErrorCode = f.code === 'MISSING_CONTENT_LENGTH' ? 'MISSING_HEADER' : f.code;
    const status = f.code === 'TOO_LARGE' ? 413 : 400;
    const reason =
      f.code === 'TOO_LARGE' ? 'Message Too Large' : f.code === 'MISSING_CONTENT_LENGTH' ? 'Bad Request - Missing Content-Length' : 'Bad Request - Malformed Content-Length';
    const err: SipParseError = { ok: false, code, status, reason, detail: f.detail };
    const raw = f.headerLength !== undefined ? view.subarray(0, f.headerLength) : view;
    if (f.headerLength !== undefined) {
      // Re-read the header block alone to get what a response needs (Via, From, To, Call-ID, CSeq).
      const head = parseMessage(raw, { maxSize: this.maxMessageSize, maxHeaders: this.maxHeaders });
      if (head.ok) {
        err.kind = head.message.type;
        if (head.message.type === 'request') err.method = head.message.method;
        err.headers = head.message.headers;
      } else {
        err.kind = head.kind;
        err.method = head.method;
        err.headers = head.headers ?? EMPTY_HEADERS;
      }
    }
    const pe = this.st.parseErrors;
    pe[code] = (pe[code] ?? 0) + 1;
    this.st.dropped++;
    this.st.tcp.errorClosed++;
    const response = buildErrorResponse(err);
    const cb = this.events.onParseError;
    if (cb !== undefined) {
      try {
        cb.call(this.events, err, c.flow, raw);
      } catch (e) {
        this.handlerError(e);
      }
    }
    if (response !== undefined) {
      this.st.sent++;
      this.closeConn(c, true, serializeMessage(response));
    } else {
      this.closeConn(c, false);
    }
  }

  // ---------------------------------------------------------------- idle sweep

  private armSweep(): void {
    const every = Math.max(10, Math.min(30_000, Math.ceil(this.idleTimeoutMs / 2)));
    this.sweepTimer = this.clock.setTimer(every, () => {
      this.sweepTimer = undefined;
      if (this.closed) return;
      const now = this.clock.now();
      for (const c of this.conns.values()) {
        if (!c.closing && now - c.lastActivity >= this.idleTimeoutMs) {
          this.st.tcp.idleClosed++;
          this.closeConn(c, false);
        }
      }
      this.armSweep();
    });
  }

  // ---------------------------------------------------------------- shutdown

  /** Closes every socket, listener and connection; resolves when all are closed (idempotent). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.clock.clearTimer(this.sweepTimer);
    this.sweepTimer = undefined;
    const waits: Promise<void>[] = [];
    for (const c of this.conns.values()) {
      c.closing = true;
      this.unregister(c);
      waits.push(c.io.destroyAndWait());
    }
    for (const s of this.byId.values()) {
      if (s.udp !== undefined) waits.push(s.udp.close());
      if (s.tcp !== undefined) waits.push(s.tcp.close());
    }
    await Promise.all(waits);
    this.udpSocks.length = 0;
    this.tcpSocks.length = 0;
  }
}
