/**
 * A client for rtpengine's **ng** control protocol over UDP, implementing {@link MediaControl}
 * so that `media.engine: rtpengine:udp:HOST:PORT` drives a real rtpengine instead of the
 * in-process relay.
 *
 * Wire format (rtpengine `docs/ng_control_protocol.md`): each datagram is
 * `COOKIE SP BENCODED-DICT`. The reply carries the request's cookie; rtpengine recognises a
 * retransmitted cookie and resends its cached reply, so retransmission is safe. Cookies are a
 * random per-client prefix plus a counter, so that a restarted client never collides with
 * replies rtpengine still caches.
 *
 * Retransmission: the request is resent after `retransmitMs`, doubling up to `maxRetransmitMs`,
 * until `timeoutMs` has passed since the first send; then the call fails with `ENGINE_ERROR`.
 *
 * Keys sent (see `control.ts` for the mapping): `command`, `call-id`, `from-tag`, `to-tag`,
 * `via-branch`, `sdp`, `received-from`, `flags` (`strict-source` when configured,
 * `original-sendrecv` so held streams keep their direction), `replace` (`origin`,
 * `session-connection`, `SDP-version`), `ICE: remove`.
 *
 * The advertised address: rtpengine takes it from its own `--interface=LOCAL!ADVERTISED`
 * configuration. `media address` is deliberately *not* used for it: in ng it overrides the
 * endpoint's address (where rtpengine sends to), not the address it advertises. Deployments
 * with separate inside/outside addresses need named rtpengine interfaces; set
 * {@link NgOptions.interfaces} to send `direction: [offerer side, answerer side]`.
 *
 * Timeouts: rtpengine deletes calls without media by itself and cannot tell us over ng. The
 * client polls `list` every `pollIntervalMs`; a call we know that rtpengine no longer lists (and
 * a confirming `query` says is unknown) fires `onTimeout` once.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import type { Clock, TimerHandle } from '../lib/clock.js';
import { silentLogger, type Logger } from '../lib/log.js';
import { decodeBencode, encodeBencode, type BencodeDict, type BencodeInput, type BencodeValue } from './bencode.js';
import {
  emptyCounters,
  type AnswerParams,
  type CallMediaStats,
  type CallMediaSummary,
  type DeleteParams,
  type EndpointStats,
  type LegStats,
  type LegStreamStats,
  type MediaControl,
  type MediaCounters,
  type MediaErrorCode,
  type MediaResult,
  type MediaTimeoutHandler,
  type OfferParams,
  type SocketAddress,
} from './control.js';
import { describeSdp } from './sdp.js';
import type { MediaSocket, MediaSocketFactory } from './socket.js';

/** Options of {@link NgMediaControl}. */
export interface NgOptions {
  /** rtpengine's ng address (`--listen-ng`). */
  host: string;
  port: number;
  sockets: MediaSocketFactory;
  clock: Clock;
  logger?: Logger;
  /** Local address of the client socket (default `0.0.0.0`, or `::` for an IPv6 host). */
  bindAddress?: string;
  /** First retransmission after this many ms (default 500), doubling. */
  retransmitMs?: number;
  /** Retransmission interval cap, ms (default 2000). */
  maxRetransmitMs?: number;
  /** Give up after this many ms (default 5000) → ENGINE_ERROR. */
  timeoutMs?: number;
  /** Send `strict-source` (media.strictSource, default true). */
  strictSource?: boolean;
  /** Poll `list` this often to notice calls rtpengine timed out, ms (default 10000; 0 = off). */
  pollIntervalMs?: number;
  /** Advertised address → rtpengine logical interface name, for `direction`. */
  interfaces?: Record<string, string>;
  onTimeout?: MediaTimeoutHandler;
}

type Failure = { ok: false; code: MediaErrorCode; detail: string };
type NgReply = { ok: true; dict: BencodeDict } | Failure;

interface Pending {
  packet: Buffer;
  resolve: (r: NgReply) => void;
  timer: TimerHandle | undefined;
  started: number;
  nextDelay: number;
}

interface KnownCall {
  tags: [string | undefined, string | undefined];
  streams: number;
  /** The address advertised towards each side's party, for `direction`. */
  advertise: [string | undefined, string | undefined];
  timedOut: boolean;
}

/**
 * Maps an ng `error-reason` to a {@link MediaErrorCode}. rtpengine's reasons are free text;
 * these are the ones its sources use for the cases we distinguish.
 */
export function ngErrorCode(reason: string): MediaErrorCode {
  if (/unknown call|call-id not found|unknown from-tag|unknown to-tag/i.test(reason)) return 'UNKNOWN_CALL';
  if (/ran out of ports|no ports|port allocation|load limit/i.test(reason)) return 'NO_PORTS';
  if (/sdp/i.test(reason)) return 'BAD_SDP';
  return 'ENGINE_ERROR';
}

function str(v: BencodeValue | undefined): string | undefined {
  return typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString('utf8') : undefined;
}

function num(v: BencodeValue | undefined): number | undefined {
  return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined;
}

function dict(v: BencodeValue | undefined): BencodeDict | undefined {
  return v !== undefined && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v) ? (v as BencodeDict) : undefined;
}

function list(v: BencodeValue | undefined): BencodeValue[] {
  return Array.isArray(v) ? v : [];
}

function addr(v: BencodeValue | undefined): SocketAddress | undefined {
  const d = dict(v);
  const a = str(d?.address);
  const p = num(d?.port);
  return a !== undefined && p !== undefined && a !== '' ? { address: a, port: p } : undefined;
}

/** Maps an ng `query` reply to {@link CallMediaStats} (best effort; rtpengine counts ingress only). */
export function statsFromQuery(callId: string, reply: BencodeDict, tagOrder: Array<string | undefined> = []): CallMediaStats {
  const tags = dict(reply.tags) ?? {};
  const names = Object.keys(tags);
  const ordered = [...tagOrder.filter((t): t is string => t !== undefined && names.includes(t)), ...names.filter((n) => !tagOrder.includes(n))];
  const legs: LegStats[] = ordered.map((name) => {
    const t = dict(tags[name]) ?? {};
    const received = { packets: 0, bytes: 0 };
    const streams: LegStreamStats[] = list(t.medias).map((mv, i) => {
      const m = dict(mv) ?? {};
      const flags = list(m.flags).map(str);
      const eps = list(m.streams).map((sv) => {
        const s = dict(sv) ?? {};
        const stats = dict(s.stats) ?? {};
        const ep: EndpointStats = {
          localPort: num(s['local port']) ?? 0,
          received: { packets: num(stats.packets) ?? 0, bytes: num(stats.bytes) ?? 0 },
          sent: { packets: 0, bytes: 0 },
          droppedSource: 0,
          droppedNoDestination: 0,
        };
        const adv = addr(s['advertised endpoint']);
        const real = addr(s.endpoint);
        if (adv) ep.signalled = adv;
        if (real) ep.latched = real;
        const last = num(s['last packet']);
        if (last) ep.lastPacketAt = last * 1000;
        received.packets += ep.received.packets;
        received.bytes += ep.received.bytes;
        return ep;
      });
      const none: EndpointStats = { localPort: 0, received: { packets: 0, bytes: 0 }, sent: { packets: 0, bytes: 0 }, droppedSource: 0, droppedNoDestination: 0 };
      return {
        index: (num(m.index) ?? i + 1) - 1,
        kind: str(m.type) ?? '',
        rtcpMux: flags.includes('rtcp-mux'),
        direction: 'sendrecv',
        hold: false,
        rtp: eps[0] ?? none,
        rtcp: eps[1] ?? eps[0] ?? none,
      };
    });
    const leg: LegStats = { received, sent: { packets: 0, bytes: 0 }, streams };
    if (name !== '') leg.tag = name;
    return leg;
  });
  let lastPacketAt: number | undefined;
  for (const leg of legs)
    for (const s of leg.streams)
      for (const ep of [s.rtp, s.rtcp]) if (ep.lastPacketAt !== undefined) lastPacketAt = Math.max(lastPacketAt ?? 0, ep.lastPacketAt);
  const out: CallMediaStats = {
    callId,
    createdAt: (num(reply.created) ?? 0) * 1000,
    lastSignalAt: (num(reply['last signal']) ?? num(reply.last_signal) ?? 0) * 1000,
    timedOut: false,
    legs,
  };
  if (lastPacketAt !== undefined) out.lastPacketAt = lastPacketAt;
  return out;
}

/** {@link MediaControl} over rtpengine's ng protocol. */
export class NgMediaControl implements MediaControl {
  private socket: Promise<MediaSocket> | undefined;
  private readonly pending = new Map<string, Pending>();
  private readonly calls = new Map<string, KnownCall>();
  private readonly prefix = randomBytes(4).toString('hex');
  private seq = 0;
  private closed = false;
  private pollTimer: TimerHandle | undefined;
  private polling = false;
  private readonly log: Logger;
  private readonly counts: MediaCounters = emptyCounters();

  constructor(private readonly opts: NgOptions) {
    this.log = opts.logger ?? silentLogger;
    this.schedulePoll();
  }

  // ---------------------------------------------------------------- transport

  private open(): Promise<MediaSocket> {
    if (!this.socket) {
      const local = this.opts.bindAddress ?? (isIP(this.opts.host) === 6 ? '::' : '0.0.0.0');
      this.socket = this.opts.sockets.bind(
        local,
        0,
        (data) => this.onReply(data),
        (err) => {
          this.counts.socketErrors++;
          this.log.warn({ err }, 'ng client: socket error');
        },
      );
      this.socket.catch(() => {
        this.socket = undefined;
      });
    }
    return this.socket;
  }

  /** Sends one ng command and waits for its reply (retransmitting), never rejects. */
  async request(command: { [key: string]: BencodeInput | undefined }): Promise<NgReply> {
    if (this.closed) return { ok: false, code: 'ENGINE_ERROR', detail: 'ng client closed' };
    let sock: MediaSocket;
    try {
      sock = await this.open();
    } catch (err) {
      this.counts.engineErrors++;
      return { ok: false, code: 'ENGINE_ERROR', detail: `ng client socket: ${(err as Error).message}` };
    }
    const cookie = `${this.prefix}_${++this.seq}`;
    const packet = Buffer.concat([Buffer.from(`${cookie} `, 'latin1'), encodeBencode(command)]);
    const clock = this.opts.clock;
    const reply = await new Promise<NgReply>((resolve) => {
      const p: Pending = { packet, resolve, timer: undefined, started: clock.now(), nextDelay: this.opts.retransmitMs ?? 500 };
      this.pending.set(cookie, p);
      const fire = (): void => {
        const elapsed = clock.now() - p.started;
        const limit = this.opts.timeoutMs ?? 5000;
        if (elapsed >= limit) {
          this.pending.delete(cookie);
          resolve({ ok: false, code: 'ENGINE_ERROR', detail: `rtpengine ${this.opts.host}:${this.opts.port} did not answer "${String(command.command)}" within ${limit} ms` });
          return;
        }
        this.send(sock, packet);
        const delay = Math.min(p.nextDelay, limit - elapsed);
        p.nextDelay = Math.min(p.nextDelay * 2, this.opts.maxRetransmitMs ?? 2000);
        p.timer = clock.setTimer(delay, fire);
      };
      fire();
    });
    if (!reply.ok) this.counts.engineErrors++;
    return reply;
  }

  private send(sock: MediaSocket, packet: Buffer): void {
    try {
      sock.send(packet, this.opts.port, this.opts.host);
    } catch (err) {
      this.counts.socketErrors++;
      this.log.warn({ err }, 'ng client: send failed');
    }
  }

  private onReply(data: Buffer): void {
    const sp = data.indexOf(0x20);
    if (sp <= 0) return;
    const cookie = data.toString('latin1', 0, sp);
    const p = this.pending.get(cookie);
    if (!p) return; // late duplicate of a reply already taken
    const dec = decodeBencode(data, { start: sp + 1 });
    if (!dec.ok || dict(dec.value) === undefined) {
      this.log.warn({ cookie, reason: dec.ok ? 'not a dictionary' : dec.reason }, 'ng client: undecodable reply');
      return;
    }
    this.pending.delete(cookie);
    this.opts.clock.clearTimer(p.timer);
    const d = dict(dec.value) as BencodeDict;
    const result = str(d.result);
    if (result === 'ok' || result === 'pong') p.resolve({ ok: true, dict: d });
    else if (result === 'load limit') p.resolve({ ok: false, code: 'NO_PORTS', detail: `rtpengine load limit: ${str(d.message) ?? ''}`.trim() });
    else {
      const reason = str(d['error-reason']) ?? `unexpected result "${result ?? ''}"`;
      p.resolve({ ok: false, code: ngErrorCode(reason), detail: `rtpengine: ${reason}` });
    }
  }

  // ---------------------------------------------------------------- commands

  private common(p: { callId: string; fromTag: string; toTag?: string; viaBranch?: string; sdp: string; receivedFrom?: SocketAddress; removeIce?: boolean }): {
    [key: string]: BencodeInput | undefined;
  } {
    const flags: string[] = ['original-sendrecv'];
    if (this.opts.strictSource ?? true) flags.push('strict-source');
    return {
      'call-id': p.callId,
      'from-tag': p.fromTag,
      'to-tag': p.toTag,
      'via-branch': p.viaBranch,
      sdp: p.sdp,
      'received-from': p.receivedFrom ? [isIP(p.receivedFrom.address) === 6 ? 'IP6' : 'IP4', p.receivedFrom.address] : undefined,
      flags,
      replace: ['origin', 'session-connection', 'SDP-version'],
      ICE: p.removeIce === false ? undefined : 'remove',
    };
  }

  private mapError(r: Failure): Failure {
    if (r.code === 'NO_PORTS') this.counts.noPorts++;
    if (r.code === 'BAD_SDP') this.counts.badSdp++;
    return r;
  }

  /** ng `offer`. */
  async offer(p: OfferParams): Promise<MediaResult> {
    const desc = describeSdp(p.sdp);
    if (!desc.ok) {
      this.counts.badSdp++;
      return { ok: false, code: 'BAD_SDP', detail: desc.detail };
    }
    const known = this.calls.get(p.callId);
    const cmd = { command: 'offer', ...this.common(p) };
    const ifaces = this.opts.interfaces;
    if (ifaces) {
      // direction: [interface facing the offerer, interface facing the answerer]; the one facing
      // the offerer is known from an earlier answer, else assumed to be the same.
      const toward = ifaces[p.advertiseAddress];
      const side = known ? (known.tags[0] === p.fromTag ? 0 : 1) : 0;
      const back = known?.advertise[side] !== undefined ? ifaces[known.advertise[side] as string] : undefined;
      if (toward !== undefined) (cmd as Record<string, BencodeInput | undefined>).direction = [back ?? toward, toward];
    }
    const r = await this.request(cmd);
    if (!r.ok) return this.mapError(r);
    const sdp = str(r.dict.sdp);
    if (sdp === undefined) return { ok: false, code: 'ENGINE_ERROR', detail: 'rtpengine offer reply without sdp' };
    if (!known) {
      this.calls.set(p.callId, { tags: [p.fromTag, p.toTag], streams: desc.streams.filter((s) => !s.disabled).length, advertise: [undefined, p.advertiseAddress], timedOut: false });
    } else {
      const side = known.tags[0] === p.fromTag ? 0 : 1;
      known.tags[side] = p.fromTag;
      known.advertise[1 - side] = p.advertiseAddress;
      known.streams = desc.streams.filter((s) => !s.disabled).length;
      known.timedOut = false;
    }
    return { ok: true, sdp };
  }

  /** ng `answer`. */
  async answer(p: AnswerParams): Promise<MediaResult> {
    const r = await this.request({ command: 'answer', ...this.common(p) });
    if (!r.ok) return this.mapError(r);
    const sdp = str(r.dict.sdp);
    if (sdp === undefined) return { ok: false, code: 'ENGINE_ERROR', detail: 'rtpengine answer reply without sdp' };
    const known = this.calls.get(p.callId);
    if (known) {
      const o = known.tags[0] === p.fromTag ? 0 : 1;
      known.tags[1 - o] = p.toTag;
      known.advertise[o] = p.advertiseAddress;
    }
    return { ok: true, sdp };
  }

  /** ng `delete`; failures are logged, never thrown. */
  async delete(p: DeleteParams): Promise<void> {
    const known = this.calls.get(p.callId);
    this.calls.delete(p.callId);
    const r = await this.request({ command: 'delete', 'call-id': p.callId, 'from-tag': p.fromTag ?? known?.tags[0], 'to-tag': p.toTag });
    if (!r.ok && r.code !== 'UNKNOWN_CALL') this.log.warn({ callId: p.callId, detail: r.detail }, 'ng client: delete failed');
  }

  /** ng `query`, mapped to {@link CallMediaStats}. */
  async query(callId: string): Promise<CallMediaStats | undefined> {
    const r = await this.request({ command: 'query', 'call-id': callId });
    if (!r.ok) return undefined;
    const known = this.calls.get(callId);
    const stats = statsFromQuery(callId, r.dict, known?.tags ?? []);
    stats.timedOut = known?.timedOut ?? false;
    return stats;
  }

  /** Calls this client offered and did not delete (no packet counters: use {@link query}). */
  list(): CallMediaSummary[] {
    return [...this.calls].map(([callId, c]) => ({ callId, tags: [...c.tags], streams: c.streams, timedOut: c.timedOut }));
  }

  counters(): MediaCounters {
    return { ...this.counts, calls: this.calls.size };
  }

  /** `ping` → true when rtpengine answered `pong`. */
  async ping(): Promise<boolean> {
    const r = await this.request({ command: 'ping' });
    return r.ok && str(r.dict.result) === 'pong';
  }

  // ---------------------------------------------------------------- timeouts

  private schedulePoll(): void {
    const every = this.opts.pollIntervalMs ?? 10_000;
    if (this.closed || every <= 0) return;
    this.pollTimer = this.opts.clock.setTimer(every, () => {
      void this.poll().finally(() => this.schedulePoll());
    });
  }

  /** Compares rtpengine's `list` with our calls; fires onTimeout for calls it dropped. */
  async poll(): Promise<void> {
    if (this.polling || this.calls.size === 0) return;
    this.polling = true;
    try {
      const limit = Math.min(this.calls.size + 1000, 100_000);
      const r = await this.request({ command: 'list', limit });
      if (!r.ok) return;
      const alive = new Set(list(r.dict.calls).map(str));
      for (const [callId, c] of [...this.calls]) {
        if (c.timedOut || alive.has(callId)) continue;
        // Confirm: the list may have been truncated.
        const q = await this.request({ command: 'query', 'call-id': callId });
        if (q.ok || q.code !== 'UNKNOWN_CALL' || this.calls.get(callId) !== c) continue;
        c.timedOut = true;
        this.counts.timeouts++;
        try {
          this.opts.onTimeout?.(callId, { idleMs: 0, held: false });
        } catch (err) {
          this.log.error({ err, callId }, 'ng client: onTimeout handler threw');
        }
      }
    } finally {
      this.polling = false;
    }
  }

  /** Fails pending requests with ENGINE_ERROR, stops polling, closes the socket. */
  async close(): Promise<void> {
    this.closed = true;
    this.opts.clock.clearTimer(this.pollTimer);
    for (const [cookie, p] of this.pending) {
      this.opts.clock.clearTimer(p.timer);
      this.pending.delete(cookie);
      p.resolve({ ok: false, code: 'ENGINE_ERROR', detail: 'ng client closed' });
    }
    const s = this.socket;
    this.socket = undefined;
    if (s) await s.then((x) => x.close()).catch(() => undefined);
  }
}
