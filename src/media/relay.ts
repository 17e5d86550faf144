/**
 * The in-process RTP/RTCP relay: sipedge's default {@link MediaControl} engine.
 *
 * Model (like rtpengine's monologues): a call has two parties, side 0 (the party that made the
 * initial offer, "A") and side 1 ("B"), and one stream per m-line index. Each stream has, per side,
 * a socket pair facing that side: RTP on an even port, RTCP on RTP + 1 (RFC 3550 §11). The
 * SDP forwarded to a party carries the ports of the pair facing *it*; what it sends there is
 * sent on out of the pair facing the other party, to that party's current address.
 *
 * - Ports are allocated for both sides at the offer (so exhaustion is a 503 to the INVITE, not a
 *   failure at the 200) and reused by every later offer/answer for the same Call-ID + m-line.
 * - Each socket latches on its own (RTP and RTCP separately); see `latch.ts`.
 * - RTCP multiplexing (RFC 5761) is on for a stream when both the offer and the answer carried
 *   `a=rtcp-mux`; RTCP then travels between the RTP sockets.
 * - Time comes from the injected {@link Clock}: a periodic sweep detects calls without media
 *   (`timeoutSec`) and fires `onTimeout` once.
 *
 * Hot path ({@link RelayEngine.relay}): one decision, a few counter increments and one
 * `send` per packet; no allocation, no logging.
 */
import { isIP } from 'node:net';
import type { Clock, TimerHandle } from '../lib/clock.js';
import { silentLogger, type Logger } from '../lib/log.js';
import {
  emptyCounters,
  type AnswerParams,
  type CallMediaStats,
  type CallMediaSummary,
  type DeleteParams,
  type EndpointStats,
  type FlowCounters,
  type LegStats,
  type MediaControl,
  type MediaCounters,
  type MediaResult,
  type MediaTimeoutHandler,
  type OfferParams,
  type SocketAddress,
} from './control.js';
import { decideSource, signalChange, trustSignalled, SOURCE_DROP, SOURCE_LATCH, type DestinationState } from './latch.js';
import { PortPool, type PortRange } from './ports.js';
import { describeSdp, isUnspecifiedAddress, rewriteSdp, type Direction, type OriginState, type RelayPorts, type SdpStream } from './sdp.js';
import type { MediaSocket, MediaSocketFactory } from './socket.js';

/** Options of {@link RelayEngine}. */
export interface RelayOptions {
  /** `media.ports`. */
  ports: PortRange;
  /** `media.address`: where relay sockets bind (default `0.0.0.0`). */
  bindAddress?: string;
  /** Socket factory (`NodeMediaSocketFactory` in production). */
  sockets: MediaSocketFactory;
  clock: Clock;
  logger?: Logger;
  /** `media.timeout`: seconds without packets from either side before onTimeout (default 60). */
  timeoutSec?: number;
  /** Same, when every stream of the call is on hold (sendonly/recvonly/inactive/c=0.0.0.0); default 3600. */
  holdTimeoutSec?: number;
  /** `media.strictSource`: drop packets from other sources once latched (default true). */
  strictSource?: boolean;
  /** Learning window after each offer/answer, ms (default 3000). */
  learnWindowMs?: number;
  /** Period of the timeout sweep, ms (default 1000). */
  sweepIntervalMs?: number;
  /** Fired once per call when media stopped (see {@link RelayOptions.timeoutSec}). */
  onTimeout?: MediaTimeoutHandler;
  /** Random source for port choice (tests). */
  random?: () => number;
}

/** One relay socket facing one party: latching state, destination and counters. */
class Endpoint implements DestinationState {
  socket!: MediaSocket;
  latchedAddress: string | undefined = undefined;
  latchedPort = 0;
  learnUntil = 0;
  latchConfirmed = false;
  signalledAddress: string | undefined = undefined;
  signalledPort = 0;
  signalTrusted = true;
  hold = false;
  lastReal: SocketAddress | undefined = undefined;
  /** The endpoint facing the other party: packets received here leave through it. */
  out: Endpoint | undefined = undefined;
  rxPackets = 0;
  rxBytes = 0;
  txPackets = 0;
  txBytes = 0;
  droppedSource = 0;
  droppedNoDestination = 0;
  /** Monotonic ms of the last accepted packet, -1 when none. */
  lastPacketAt = -1;

  constructor(readonly localPort: number) {}
}

/** The socket pair facing one party for one m-line. */
class SidePair {
  direction: Direction = 'sendrecv';
  /** This party's latest SDP carried a=rtcp-mux. */
  sdpMux = false;
  constructor(
    readonly rtp: Endpoint,
    readonly rtcp: Endpoint,
  ) {}

  get ports(): RelayPorts {
    return { rtp: this.rtp.localPort, rtcp: this.rtcp.localPort };
  }
}

class RelayStream {
  /** RFC 5761 multiplexing negotiated. */
  mux = false;
  constructor(
    readonly index: number,
    public kind: string,
    readonly sides: [SidePair, SidePair],
  ) {}
}

class RelayCall {
  tags: [string | undefined, string | undefined] = [undefined, undefined];
  streams: Array<RelayStream | undefined> = [];
  /** Number of m-lines of the latest offer (an answer must have as many, RFC 3264 §6). */
  offerLines = 0;
  timedOut = false;
  /** An offer succeeded at least once (a failed first offer removes the call). */
  established = false;
  deleted = false;
  queue: Promise<unknown> = Promise.resolve();
  readonly origins = new Map<string, OriginState>();
  lastSignalAt: number;

  constructor(
    readonly callId: string,
    readonly createdAt: number,
  ) {
    this.lastSignalAt = createdAt;
  }
}

type Failure = { ok: false; code: 'NO_PORTS' | 'BAD_SDP' | 'UNKNOWN_CALL' | 'ENGINE_ERROR'; detail: string };

/** The in-process media relay. */
export class RelayEngine implements MediaControl {
  private readonly calls = new Map<string, RelayCall>();
  private readonly pool: PortPool;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly bindAddress: string;
  private readonly strict: boolean;
  private readonly learnMs: number;
  private readonly timeoutMs: number;
  private readonly holdTimeoutMs: number;
  private readonly sweepMs: number;
  private sweepTimer: TimerHandle | undefined;
  private closed = false;
  /** Counters of released endpoints, plus engine-level ones. */
  private readonly totals: MediaCounters = emptyCounters();
  private lastNoPortsLog = -Infinity;

  constructor(private readonly opts: RelayOptions) {
    this.pool = new PortPool(opts.ports, opts.random);
    this.clock = opts.clock;
    this.log = opts.logger ?? silentLogger;
    this.bindAddress = opts.bindAddress ?? '0.0.0.0';
    this.strict = opts.strictSource ?? true;
    this.learnMs = opts.learnWindowMs ?? 3000;
    this.timeoutMs = (opts.timeoutSec ?? 60) * 1000;
    this.holdTimeoutMs = (opts.holdTimeoutSec ?? 3600) * 1000;
    this.sweepMs = opts.sweepIntervalMs ?? 1000;
    this.scheduleSweep();
  }

  // ---------------------------------------------------------------- signalling

  /** RFC 3264 §5 offer (initial or re-offer). See `control.ts` for how to call it. */
  offer(p: OfferParams): Promise<MediaResult> {
    const refused = this.refuse(p.advertiseAddress);
    if (refused) return Promise.resolve(refused);
    const desc = describeSdp(p.sdp);
    if (!desc.ok) return Promise.resolve(this.badSdp(desc.detail));
    let call = this.calls.get(p.callId);
    if (!call) {
      call = new RelayCall(p.callId, this.clock.now());
      call.tags = [p.fromTag, p.toTag];
      this.calls.set(p.callId, call);
    }
    const c = call;
    return this.serialize(c, () => this.doOffer(c, p, desc.streams));
  }

  /** RFC 3264 §6 answer to the latest offer of `fromTag`. */
  answer(p: AnswerParams): Promise<MediaResult> {
    const refused = this.refuse(p.advertiseAddress);
    if (refused) return Promise.resolve(refused);
    const call = this.calls.get(p.callId);
    if (!call) return Promise.resolve({ ok: false, code: 'UNKNOWN_CALL', detail: `no media session for Call-ID ${p.callId}` });
    return this.serialize(call, () => this.doAnswer(call, p));
  }

  /** Deletes the whole call (tags are accepted for ng compatibility and ignored). */
  delete(p: DeleteParams): Promise<void> {
    const call = this.calls.get(p.callId);
    if (!call) return Promise.resolve();
    this.calls.delete(p.callId);
    call.deleted = true;
    return this.serialize(call, () => this.destroyCall(call));
  }

  /** ENGINE_ERROR when closed or when the advertise address is not an IP literal (a caller bug). */
  private refuse(advertiseAddress: string): Failure | undefined {
    if (this.closed) return { ok: false, code: 'ENGINE_ERROR', detail: 'media relay closed' };
    if (isIP(advertiseAddress) === 0) return { ok: false, code: 'ENGINE_ERROR', detail: `advertiseAddress must be an IP address, got "${advertiseAddress}"` };
    return undefined;
  }

  private serialize<T>(call: RelayCall, fn: () => Promise<T>): Promise<T> {
    const run = call.queue.then(fn, fn);
    call.queue = run.catch(() => undefined);
    return run;
  }

  private badSdp(detail: string): Failure {
    this.totals.badSdp++;
    return { ok: false, code: 'BAD_SDP', detail };
  }

  /** Which side made this offer; names a side whose tag was not known yet. */
  private sideOfOfferer(call: RelayCall, p: OfferParams): 0 | 1 | undefined {
    if (call.tags[0] === p.fromTag) return 0;
    if (call.tags[1] === p.fromTag) return 1;
    let side: 0 | 1 | undefined;
    // The offerer's tag changed (e.g. another UA after a transfer) but the other party is known.
    if (p.toTag !== undefined && call.tags[0] === p.toTag) side = 1;
    else if (p.toTag !== undefined && call.tags[1] === p.toTag) side = 0;
    else if (call.tags[1] === undefined) side = 1;
    if (side !== undefined) call.tags[side] = p.fromTag;
    return side;
  }

  private async doOffer(call: RelayCall, p: OfferParams, streams: SdpStream[]): Promise<MediaResult> {
    if (call.deleted) return { ok: false, code: 'UNKNOWN_CALL', detail: `media session ${p.callId} was deleted` };
    const s = this.sideOfOfferer(call, p);
    if (s === undefined) {
      return { ok: false, code: 'UNKNOWN_CALL', detail: `tag ${p.fromTag} is not a party of media session ${p.callId}` };
    }
    const created: RelayStream[] = [];
    try {
      // Allocate what is missing, release what is rejected (port 0) or gone.
      for (const st of streams) {
        const existing = call.streams[st.index];
        if (st.disabled) {
          if (existing) await this.releaseStream(call, st.index);
          continue;
        }
        if (existing) {
          existing.kind = st.kind;
          continue;
        }
        const r = await this.allocateStream(st.index, st.kind);
        if (!r.ok) {
          for (const cs of created) await this.closeStream(cs);
          for (const cs of created) call.streams[cs.index] = undefined;
          if (!call.established) this.dropCall(call);
          this.noPorts(r.detail);
          return r;
        }
        created.push(r.stream);
        call.streams[st.index] = r.stream;
      }
      for (let i = streams.length; i < call.streams.length; i++) if (call.streams[i]) await this.releaseStream(call, i);
      call.streams.length = streams.length;
    } catch (err) {
      for (const cs of created) await this.closeStream(cs).catch(() => undefined);
      for (const cs of created) call.streams[cs.index] = undefined;
      if (!call.established) this.dropCall(call);
      this.totals.engineErrors++;
      this.log.error({ err, callId: p.callId }, 'media relay: cannot bind relay sockets');
      return { ok: false, code: 'ENGINE_ERROR', detail: `cannot bind relay sockets: ${(err as Error).message}` };
    }

    const other = (1 - s) as 0 | 1;
    const ports = streams.map((st) => call.streams[st.index]?.sides[other].ports);
    const rw = rewriteSdp(p.sdp, { advertiseAddress: p.advertiseAddress, ports, removeIce: p.removeIce, previous: call.origins.get(p.fromTag) });
    if (!rw.ok) {
      if (!call.established) {
        await this.destroyCall(call);
        this.dropCall(call);
      }
      return this.badSdp(rw.detail);
    }
    call.origins.set(p.fromTag, rw.origin);
    call.offerLines = streams.length;
    this.applySignal(call, s, streams, p.receivedFrom, false);
    call.established = true;
    return { ok: true, sdp: rw.sdp };
  }

  private async doAnswer(call: RelayCall, p: AnswerParams): Promise<MediaResult> {
    if (call.deleted) return { ok: false, code: 'UNKNOWN_CALL', detail: `media session ${p.callId} was deleted` };
    const o = call.tags[0] === p.fromTag ? 0 : call.tags[1] === p.fromTag ? 1 : undefined;
    if (o === undefined) return { ok: false, code: 'UNKNOWN_CALL', detail: `no offer from tag ${p.fromTag} in media session ${p.callId}` };
    const desc = describeSdp(p.sdp);
    if (!desc.ok) return this.badSdp(desc.detail);
    const streams = desc.streams;
    if (streams.length !== call.offerLines) {
      return this.badSdp(`answer has ${streams.length} m-lines, the offer had ${call.offerLines} (RFC 3264 §6)`);
    }
    const r = (1 - o) as 0 | 1;
    // The answerer's tag: set on the first answer; a different one (forking) takes over the side.
    call.tags[r] = p.toTag;
    for (const st of streams) if (st.disabled && call.streams[st.index]) await this.releaseStream(call, st.index);
    const ports = streams.map((st) => (st.disabled ? undefined : call.streams[st.index]?.sides[o].ports));
    const rw = rewriteSdp(p.sdp, { advertiseAddress: p.advertiseAddress, ports, removeIce: p.removeIce, previous: call.origins.get(p.toTag) });
    if (!rw.ok) return this.badSdp(rw.detail);
    call.origins.set(p.toTag, rw.origin);
    this.applySignal(call, r, streams, p.receivedFrom, true);
    return { ok: true, sdp: rw.sdp };
  }

  /**
   * Records what party `side` announced and reopens learning on every socket of the call.
   * @param negotiate this SDP is an answer: RFC 5761 multiplexing is now settled
   */
  private applySignal(call: RelayCall, side: 0 | 1, streams: SdpStream[], receivedFrom: SocketAddress | undefined, negotiate: boolean): void {
    const now = this.clock.now();
    const learnUntil = now + this.learnMs;
    for (const st of streams) {
      const rs = call.streams[st.index];
      if (!rs || st.disabled) continue;
      const pair = rs.sides[side];
      pair.direction = st.direction;
      pair.sdpMux = st.rtcpMux;
      const trusted = trustSignalled(st.address, receivedFrom);
      signal(pair.rtp, st.address, st.port, trusted);
      signal(pair.rtcp, st.rtcpAddress, st.rtcpPort, trusted);
      if (negotiate) {
        rs.mux = rs.sides[0].sdpMux && rs.sides[1].sdpMux;
        wire(rs);
      }
      for (const sp of rs.sides) {
        sp.rtp.learnUntil = learnUntil;
        sp.rtcp.learnUntil = learnUntil;
      }
    }
    call.lastSignalAt = now;
    call.timedOut = false;
  }

  // ---------------------------------------------------------------- sockets

  private async allocateStream(index: number, kind: string): Promise<{ ok: true; stream: RelayStream } | Failure> {
    const a = await this.pool.allocate((port) => this.bindPair(port));
    if (!a.ok) return a;
    let b;
    try {
      b = await this.pool.allocate((port) => this.bindPair(port));
    } catch (err) {
      await this.closePair(a.value);
      this.pool.release(a.port);
      throw err;
    }
    if (!b.ok) {
      await this.closePair(a.value);
      this.pool.release(a.port);
      return b;
    }
    const rs = new RelayStream(index, kind, [a.value, b.value]);
    wire(rs);
    return { ok: true, stream: rs };
  }

  /** Binds RTP on `port` and RTCP on `port + 1`; undoes the first bind if the second fails. */
  private async bindPair(port: number): Promise<SidePair> {
    const rtp = new Endpoint(port);
    const rtcp = new Endpoint(port + 1);
    rtp.socket = await this.bindEndpoint(rtp);
    try {
      rtcp.socket = await this.bindEndpoint(rtcp);
    } catch (err) {
      await rtp.socket.close();
      throw err;
    }
    return new SidePair(rtp, rtcp);
  }

  private bindEndpoint(ep: Endpoint): Promise<MediaSocket> {
    return this.opts.sockets.bind(
      this.bindAddress,
      ep.localPort,
      (data, address, port) => this.relay(ep, data, address, port),
      () => {
        this.totals.socketErrors++;
      },
    );
  }

  /**
   * The hot path: a datagram from `address:port` arrived on `ep` (the socket facing the sender).
   * Counters only; no allocation; no logging.
   */
  private relay(ep: Endpoint, data: Buffer, address: string, port: number): void {
    const now = this.clock.now();
    const d = decideSource(ep, address, port, now, this.strict);
    if (d === SOURCE_DROP) {
      ep.droppedSource++;
      return;
    }
    if (d === SOURCE_LATCH) {
      ep.latchedAddress = address;
      ep.latchedPort = port;
      ep.latchConfirmed = port === ep.signalledPort && address === ep.signalledAddress;
    }
    ep.rxPackets++;
    ep.rxBytes += data.length;
    ep.lastPacketAt = now;
    const out = ep.out;
    if (out === undefined || out.hold) {
      if (out) out.droppedNoDestination++;
      return;
    }
    let toAddress = out.latchedAddress;
    let toPort = out.latchedPort;
    if (toAddress === undefined) {
      if (!out.signalTrusted) {
        out.droppedNoDestination++;
        return;
      }
      toAddress = out.signalledAddress;
      toPort = out.signalledPort;
      if (toAddress === undefined) {
        out.droppedNoDestination++;
        return;
      }
    }
    out.txPackets++;
    out.txBytes += data.length;
    try {
      out.socket.send(data, toPort, toAddress);
    } catch {
      this.totals.socketErrors++;
    }
  }

  private async closePair(pair: SidePair): Promise<void> {
    this.retire(pair.rtp);
    this.retire(pair.rtcp);
    await Promise.all([pair.rtp.socket.close(), pair.rtcp.socket.close()]);
  }

  /** Closes a stream's four sockets and returns its two port pairs to the pool. */
  private async closeStream(rs: RelayStream): Promise<void> {
    for (const sp of rs.sides) sp.rtp.out = sp.rtcp.out = undefined;
    await Promise.all(rs.sides.map((sp) => this.closePair(sp)));
    for (const sp of rs.sides) this.pool.release(sp.rtp.localPort);
  }

  private async releaseStream(call: RelayCall, index: number): Promise<void> {
    const rs = call.streams[index];
    if (!rs) return;
    call.streams[index] = undefined;
    await this.closeStream(rs);
  }

  private async destroyCall(call: RelayCall): Promise<void> {
    const streams = call.streams.filter((x): x is RelayStream => x !== undefined);
    call.streams = [];
    await Promise.all(streams.map((rs) => this.closeStream(rs)));
  }

  private dropCall(call: RelayCall): void {
    if (this.calls.get(call.callId) === call) this.calls.delete(call.callId);
    call.deleted = true;
  }

  /** Adds a released endpoint's counters to the engine totals. */
  private retire(ep: Endpoint): void {
    this.totals.packetsRelayed += ep.txPackets;
    this.totals.bytesRelayed += ep.txBytes;
    this.totals.droppedSource += ep.droppedSource;
    this.totals.droppedNoDestination += ep.droppedNoDestination;
    ep.txPackets = ep.txBytes = ep.droppedSource = ep.droppedNoDestination = 0;
  }

  private noPorts(detail: string): void {
    const now = this.clock.now();
    if (now - this.lastNoPortsLog >= 10_000) {
      this.lastNoPortsLog = now;
      this.log.warn({ noPorts: this.pool.noPorts, inUse: this.pool.inUse, capacity: this.pool.capacity }, `media relay: ${detail}; answering 503`);
    }
  }

  // ---------------------------------------------------------------- timeouts

  private scheduleSweep(): void {
    if (this.closed) return;
    this.sweepTimer = this.clock.setTimer(this.sweepMs, () => {
      this.sweep();
      this.scheduleSweep();
    });
  }

  /** Fires onTimeout for calls idle longer than media.timeout (checked every sweepIntervalMs). */
  sweep(): void {
    const now = this.clock.now();
    for (const call of this.calls.values()) {
      if (call.timedOut || !call.established) continue;
      let last = call.lastSignalAt;
      let streams = 0;
      let heldStreams = 0;
      for (const rs of call.streams) {
        if (!rs) continue;
        streams++;
        if (rs.sides.some((sp) => sp.direction !== 'sendrecv' || sp.rtp.hold)) heldStreams++;
        for (const sp of rs.sides) last = Math.max(last, sp.rtp.lastPacketAt, sp.rtcp.lastPacketAt);
      }
      const held = streams > 0 && heldStreams === streams;
      const idleMs = now - last;
      if (idleMs < (held ? this.holdTimeoutMs : this.timeoutMs)) continue;
      call.timedOut = true;
      this.totals.timeouts++;
      try {
        this.opts.onTimeout?.(call.callId, { idleMs, held });
      } catch (err) {
        this.log.error({ err, callId: call.callId }, 'media relay: onTimeout handler threw');
      }
    }
  }

  // ---------------------------------------------------------------- stats

  private wall(mono: number): number {
    return this.clock.wallNow() - (this.clock.now() - mono);
  }

  private endpointStats(ep: Endpoint): EndpointStats {
    const st: EndpointStats = {
      localPort: ep.localPort,
      received: { packets: ep.rxPackets, bytes: ep.rxBytes },
      sent: { packets: ep.txPackets, bytes: ep.txBytes },
      droppedSource: ep.droppedSource,
      droppedNoDestination: ep.droppedNoDestination,
    };
    if (ep.signalledAddress !== undefined) st.signalled = { address: ep.signalledAddress, port: ep.signalledPort };
    if (ep.latchedAddress !== undefined) st.latched = { address: ep.latchedAddress, port: ep.latchedPort };
    if (ep.lastPacketAt >= 0) st.lastPacketAt = this.wall(ep.lastPacketAt);
    return st;
  }

  /** Per-call statistics; resolves undefined for an unknown call. */
  query(callId: string): Promise<CallMediaStats | undefined> {
    const call = this.calls.get(callId);
    return Promise.resolve(call ? this.callStats(call) : undefined);
  }

  private callStats(call: RelayCall): CallMediaStats {
    const legs: LegStats[] = [0, 1].map((side) => {
      const received: FlowCounters = { packets: 0, bytes: 0 };
      const sent: FlowCounters = { packets: 0, bytes: 0 };
      const streams = [];
      for (const rs of call.streams) {
        if (!rs) continue;
        const sp = rs.sides[side];
        const rtp = this.endpointStats(sp.rtp);
        const rtcp = this.endpointStats(sp.rtcp);
        received.packets += rtp.received.packets + rtcp.received.packets;
        received.bytes += rtp.received.bytes + rtcp.received.bytes;
        sent.packets += rtp.sent.packets + rtcp.sent.packets;
        sent.bytes += rtp.sent.bytes + rtcp.sent.bytes;
        streams.push({ index: rs.index, kind: rs.kind, rtcpMux: rs.mux, direction: sp.direction, hold: sp.rtp.hold, rtp, rtcp });
      }
      const leg: LegStats = { received, sent, streams };
      const tag = call.tags[side];
      if (tag !== undefined) leg.tag = tag;
      return leg;
    });
    const lastMono = this.lastPacketOf(call);
    const stats: CallMediaStats = {
      callId: call.callId,
      createdAt: this.wall(call.createdAt),
      lastSignalAt: this.wall(call.lastSignalAt),
      timedOut: call.timedOut,
      legs,
    };
    if (lastMono >= 0) stats.lastPacketAt = this.wall(lastMono);
    return stats;
  }

  private lastPacketOf(call: RelayCall): number {
    let last = -1;
    for (const rs of call.streams) {
      if (!rs) continue;
      for (const sp of rs.sides) last = Math.max(last, sp.rtp.lastPacketAt, sp.rtcp.lastPacketAt);
    }
    return last;
  }

  /** One summary per call (for `sipedge show calls`). */
  list(): CallMediaSummary[] {
    const out: CallMediaSummary[] = [];
    for (const call of this.calls.values()) out.push(this.summarize(call));
    return out;
  }

  /** The {@link list} line of one call, or undefined when the relay does not hold it. */
  summary(callId: string): CallMediaSummary | undefined {
    const call = this.calls.get(callId);
    return call ? this.summarize(call) : undefined;
  }

  private summarize(call: RelayCall): CallMediaSummary {
    const flows: FlowCounters[] = [
      { packets: 0, bytes: 0 },
      { packets: 0, bytes: 0 },
    ];
    let streams = 0;
    for (const rs of call.streams) {
      if (!rs) continue;
      streams++;
      for (let side = 0; side < 2; side++) {
        const sp = rs.sides[side];
        flows[side].packets += sp.rtp.rxPackets + sp.rtcp.rxPackets;
        flows[side].bytes += sp.rtp.rxBytes + sp.rtcp.rxBytes;
      }
    }
    const sum: CallMediaSummary = { callId: call.callId, tags: [...call.tags], streams, aToB: flows[0], bToA: flows[1], timedOut: call.timedOut };
    const last = this.lastPacketOf(call);
    if (last >= 0) sum.lastPacketAt = this.wall(last);
    return sum;
  }

  /** Engine-wide counters: totals of released sockets plus live ones. */
  counters(): MediaCounters {
    const c: MediaCounters = { ...this.totals };
    c.calls = this.calls.size;
    c.portPairsInUse = this.pool.inUse;
    c.portPairsCapacity = this.pool.capacity;
    c.noPorts = this.pool.noPorts;
    c.bindFailures = this.pool.bindFailures;
    for (const call of this.calls.values()) {
      for (const rs of call.streams) {
        if (!rs) continue;
        for (const sp of rs.sides) {
          for (const ep of [sp.rtp, sp.rtcp]) {
            c.packetsRelayed += ep.txPackets;
            c.bytesRelayed += ep.txBytes;
            c.droppedSource += ep.droppedSource;
            c.droppedNoDestination += ep.droppedNoDestination;
          }
        }
      }
    }
    return c;
  }

  /** Closes every socket, stops the sweep; further offers fail with ENGINE_ERROR. */
  async close(): Promise<void> {
    this.closed = true;
    this.clock.clearTimer(this.sweepTimer);
    this.sweepTimer = undefined;
    const calls = [...this.calls.values()];
    this.calls.clear();
    await Promise.all(
      calls.map((call) => {
        call.deleted = true;
        return this.serialize(call, () => this.destroyCall(call));
      }),
    );
  }
}

/** Points every socket of a stream at the socket facing the other party (RTCP at RTP when multiplexed). */
function wire(rs: RelayStream): void {
  for (let s = 0; s < 2; s++) {
    const me = rs.sides[s];
    const peer = rs.sides[1 - s];
    me.rtp.out = peer.rtp;
    me.rtcp.out = rs.mux ? peer.rtp : peer.rtcp;
  }
}

/** Applies a party's signalled address to one of the sockets facing it. */
function signal(ep: Endpoint, address: string, port: number, trusted: boolean): void {
  const unspecified = address === '' || isUnspecifiedAddress(address);
  const ch = signalChange(ep.lastReal, address, port, unspecified);
  ep.hold = ch.hold;
  if (ch.hold) {
    ep.signalledAddress = undefined;
    ep.signalledPort = 0;
    return;
  }
  if (ch.clearLatch) {
    ep.latchedAddress = undefined;
    ep.latchedPort = 0;
  }
  ep.latchConfirmed = ep.latchedAddress !== undefined && ep.latchedAddress === address && ep.latchedPort === port;
  ep.signalledAddress = address;
  ep.signalledPort = port;
  ep.signalTrusted = trusted;
  ep.lastReal = { address, port };
}
