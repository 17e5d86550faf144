/**
 * Media sessions driven by the proxy: the SDP offer/answer of every call passing through the
 * edge is handed to the media engine ({@link MediaControl}: the in-process relay or rtpengine)
 * and the bodies are rewritten so both parties send their RTP to the relay. Implements the
 * proxy's {@link ProxyHooks}; also tracks calls and their dialogs (`dialogs.ts`) so that
 * `show calls` can list them and a call whose media stopped is ended with a BYE to both sides.
 *
 * Offer/answer (RFC 3264) as it travels in SIP (RFC 3261 §13.2.1, RFC 3311, RFC 3262):
 *
 * | SDP in                         | engine call                                         | written for      |
 * |--------------------------------|-----------------------------------------------------|------------------|
 * | INVITE / re-INVITE / UPDATE    | `offer`, fromTag = the request's From tag           | the recipient    |
 * | its 18x / 2xx                  | `answer`, fromTag = offerer, toTag = the To tag      | the requester    |
 * | 18x / 2xx to an INVITE w/o SDP | `offer` (late offer), fromTag = the To tag           | the requester    |
 * | the ACK (PRACK) after that     | `answer`, toTag = the ACK's From tag                 | the recipient    |
 *
 * Offers are remembered per transaction (CSeq number + method), so 183-then-200 and
 * retransmitted 2xx / ACK give the same answer again. SDP operations of one call run one after
 * the other, and the responses of a call are forwarded in the order they arrived.
 *
 * `media.relay`: `always` relays every call; `never` leaves every SDP byte for byte as it was
 * (direct media, Asterisk canreinvite=yes); `nat` relays a call when the caller looks NATed
 * (nat/detect.ts, including `sdp-private`), when a callee binding is NATed, or when the two
 * parties are on different sides of `localnet`. The decision is made on the initial INVITE and
 * holds for the whole call.
 *
 * Lifecycle: the engine session is deleted on BYE (when the last dialog of the Call-ID ends),
 * on a final non-2xx response to the initial INVITE (which is also what a CANCEL leads to), and
 * on media timeout, after which the edge sends BYE to both parties ({@link MediaSessions.onMediaTimeout}).
 */
import { isIP } from 'node:net';
import type { Clock, TimerHandle } from '../lib/clock.js';
import { silentLogger, type Logger } from '../lib/log.js';
import type { SipMessage, SipRequest, SipResponse } from '../sip/message.js';
import { getHeader, getHeaderValues } from '../sip/headers.js';
import { parseNameAddr, tagParam } from '../sip/nameaddr.js';
import { parseCSeq } from '../sip/cseq.js';
import { parseVia } from '../sip/via.js';
import type { ClientTransactionHandler, ServerTransaction } from '../transaction/types.js';
import type { Destination, Flow, Inbound } from '../transport/types.js';
import { advertisedFor, concreteAddress, isInsideFor, type AdvertiseContext, type AdvertiseSocket } from '../nat/advertise.js';
import { detectNat } from '../nat/detect.js';
import type { MediaControl, MediaResult, MediaTimeoutInfo, SocketAddress, EndpointStats } from '../media/control.js';
import type { CallLegRow, CallRow } from '../edge-api.js';
import type { HookTarget, ProxyHooks, RequestHookResult } from './hooks.js';
import { DialogTable, buildBye, contactUri, type Dialog } from './dialogs.js';

/** The `media.*` and `nat.*` settings this unit reads (re-read for every new call: reload applies). */
export interface MediaSessionSettings {
  media: { relay: 'always' | 'nat' | 'never'; address?: string; advertise?: string };
  nat: { clients: 'auto' | 'force' | 'off' };
}

/** Constructor options of {@link MediaSessions}. */
export interface MediaSessionsOptions {
  media: MediaControl;
  clock: Clock;
  logger?: Logger;
  settings: () => MediaSessionSettings;
  /** The current inside/outside inputs (public address, localnet). */
  advertise: () => AdvertiseContext;
  /** The bound SIP sockets (for our Via in BYEs and the fallback media address). */
  sockets: () => AdvertiseSocket[];
  /** Starts a client transaction (the edge's transaction layer). */
  sendRequest: (req: SipRequest, dest: Destination, handler: ClientTransactionHandler) => void;
  /** Where media timeouts are counted (the proxy's stats). */
  stats?: { mediaTimeouts: number };
  /** Calls still ringing after this long are forgotten (their INVITE's final response was lost), ms. Default 10 min. */
  maxEarlyMs?: number;
  /** Confirmed calls without a relay (no media timeout) are forgotten after this long, ms. Default 24 h. */
  maxUnrelayedMs?: number;
}

type CallState = 'trying' | 'early' | 'confirmed';

/** An offer made in one transaction (key `CSeq-number METHOD`). */
interface OfferRecord {
  /** Tag of the party whose SDP is the offer (undefined while a late offer is awaited). */
  offererTag?: string;
  /** The offer came (or is expected) in a response: the answer comes in the ACK/PRACK. */
  inResponse: boolean;
}

/** One call (one Call-ID) as this unit tracks it. */
interface CallSession {
  callId: string;
  callerTag: string;
  from: string;
  to: string;
  /** Wall clock, Unix ms. */
  createdAt: number;
  /** Monotonic, ms. */
  createdMono: number;
  state: CallState;
  /** Media goes through the engine for this call. */
  relay: boolean;
  /** The engine has (or may have) a session for this call. */
  engaged: boolean;
  offers: Map<string, OfferRecord>;
  /** Rewritten 2xx bodies by `CSeq-number METHOD To-tag` (for stateless 2xx retransmissions). */
  answers: Map<string, Buffer>;
  chain: Promise<void>;
  busy: number;
}

const SDP_METHODS = new Set(['INVITE', 'UPDATE']);
const MAX_OFFER_RECORDS = 8;


/** The URI of a From/To value, for display. */
function uriText(value: string | undefined): string {
  if (!value) return '';
  const na = parseNameAddr(value);
  if (!na.ok) return value;
  const u = na.value.uri;
  return `${u.scheme}:${u.user !== undefined ? u.user + '@' : ''}${u.host}${u.port !== undefined ? ':' + u.port : ''}`;
}

function cseqOf(msg: SipMessage): { seq: number; method: string } | undefined {
  const c = parseCSeq(getHeader(msg, 'cseq') ?? '');
  return c.ok ? c.value : undefined;
}

/**
 * The SDP body of a message, or undefined: only a non-empty `application/sdp` body counts
 * (multipart bodies and other types are left alone).
 */
export function sdpBody(msg: SipMessage): string | undefined {
  if (msg.body.length === 0) return undefined;
  const ct = getHeader(msg, 'content-type');
  if (!ct || ct.split(';')[0].trim().toLowerCase() !== 'application/sdp') return undefined;
  const ce = getHeader(msg, 'content-encoding');
  if (ce && ce.trim().toLowerCase() !== 'identity') return undefined;
  return msg.body.toString('utf8');
}

/** Replaces the body (Content-Length is recomputed when the message is serialised). */
function setBody(msg: SipMessage, sdp: string | Buffer): void {
  msg.body = typeof sdp === 'string' ? Buffer.from(sdp, 'utf8') : sdp;
}

function flowDest(flow: Flow): Destination {
  return { transport: flow.transport, address: flow.remote.address, port: flow.remote.port, socketId: flow.local.socketId, connectionId: flow.connectionId };
}

function isUnspecified(a: string | undefined): boolean {
  return a === undefined || a === '' || a === '0.0.0.0' || a === '::';
}

/**
 * Whether an address is on our side of the NAT, as for signalling (nat/advertise.ts
 * `isInsideFor`): loopback, `localnet`, or the private network of the SIP socket.
 */
export function isInside(address: string, ctx: AdvertiseContext, socket?: AdvertiseSocket): boolean {
  return isInsideFor(socket, address, ctx);
}

/**
 * The media address written into SDP sent towards `destination` — the same inside/outside
 * decision as for signalling (nat/advertise.ts): towards loopback, `localnet` or the SIP socket's
 * own private network, the private
 * relay address (`media.address`, else the SIP socket's own address); towards anything else,
 * `media.advertise`, else the current public address, else the SIP socket's `as` address,
 * else `media.address`, else the SIP socket's own address.
 * @param socket the SIP socket facing the destination, when known
 */
export function mediaAddressFor(destination: string, media: { address?: string; advertise?: string }, ctx: AdvertiseContext, socket?: AdvertiseSocket): string {
  const own = isUnspecified(media.address) ? undefined : media.address;
  const sock = (): string => concreteAddress(socket?.address ?? (destination.includes(':') ? '::' : '0.0.0.0'), destination, ctx);
  if (isInside(destination, ctx, socket)) return own ?? sock();
  if (media.advertise) return media.advertise;
  if (ctx.publicAddress) return ctx.publicAddress;
  if (socket?.advertised && isIP(socket.advertised.host) !== 0) return socket.advertised.host;
  return own ?? sock();
}

/** Inputs of the `media.relay: nat` decision. */
export interface RelayDecisionInput {
  /** nat/detect.ts says the caller is NATed (any test, `sdp-private` included). */
  callerNat: boolean;
  /** A callee binding is marked NATed. */
  calleeNat: boolean;
  /** Caller's source inside localnet/loopback. */
  callerInside: boolean;
  /** Each target's destination inside localnet/loopback. */
  calleeInside: boolean[];
}

/** `media.relay`: whether a call goes through the relay. */
export function shouldRelay(mode: 'always' | 'nat' | 'never', p: RelayDecisionInput): boolean {
  if (mode === 'always') return true;
  if (mode === 'never') return false;
  return p.callerNat || p.calleeNat || p.calleeInside.some((i) => i !== p.callerInside);
}

function fmtAddr(a: SocketAddress | undefined): string | undefined {
  if (!a) return undefined;
  return a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

function endpointRow(e: EndpointStats): { relayPort: number; signalled?: string; latched?: string } {
  const r: { relayPort: number; signalled?: string; latched?: string } = { relayPort: e.localPort };
  const s = fmtAddr(e.signalled);
  const l = fmtAddr(e.latched);
  if (s) r.signalled = s;
  if (l) r.latched = l;
  return r;
}

/** The offer/answer driver and call tracker; plug it into the proxy as `proxy.hooks`. */
export class MediaSessions implements ProxyHooks {
  private readonly calls = new Map<string, CallSession>();
  /** Rewritten bodies of requests being forwarded, per server transaction and branch destination. */
  private readonly forwards = new WeakMap<ServerTransaction, Map<Destination, string>>();
  readonly dialogs = new DialogTable();
  private readonly log: Logger;
  private sweepTimer: TimerHandle | undefined;
  private closed = false;
  /** Counters (also exposed by the edge). */
  readonly counts = { relayed: 0, direct: 0, noPorts: 0, badSdp: 0, engineErrors: 0, timeouts: 0, byesSent: 0 };

  constructor(private readonly opts: MediaSessionsOptions) {
    this.log = (opts.logger ?? silentLogger).child({ unit: 'media-session' });
    this.scheduleSweep();
  }

  /** Number of calls tracked. */
  get size(): number {
    return this.calls.size;
  }

  // ---------------------------------------------------------------- helpers

  private socketById(id: string | undefined): AdvertiseSocket | undefined {
    if (id === undefined) return undefined;
    return this.opts.sockets().find((s) => s.id === id);
  }

  /** SDP address for a message going to `dest` over socket `socketId`. */
  private addressFor(destination: string, socketId: string | undefined): string {
    return mediaAddressFor(destination, this.opts.settings().media, this.opts.advertise(), this.socketById(socketId));
  }

  /** Runs `fn` after every earlier SDP operation of the call (never rejects if fn does not). */
  private run<T>(call: CallSession, fn: () => Promise<T>): Promise<T> {
    call.busy++;
    const p = call.chain.then(fn);
    call.chain = p.then(
      () => {
        call.busy--;
      },
      (err: unknown) => {
        call.busy--;
        this.log.error({ err, callId: call.callId }, 'media session operation failed');
      },
    );
    return p;
  }

  private remember(call: CallSession, key: string, rec: OfferRecord): void {
    call.offers.delete(key);
    call.offers.set(key, rec);
    while (call.offers.size > MAX_OFFER_RECORDS) call.offers.delete(call.offers.keys().next().value as string);
  }

  private failure(r: MediaResult & { ok: false }, callId: string, what: string): { status: number; reason: string } {
    if (r.code === 'NO_PORTS') {
      this.counts.noPorts++;
      this.log.warn({ callId, detail: r.detail }, `${what}: media relay has no free ports, answering 503`);
      return { status: 503, reason: 'Service Unavailable - No Media Ports' };
    }
    if (r.code === 'BAD_SDP') {
      this.counts.badSdp++;
      this.log.info({ callId, detail: r.detail }, `${what}: unusable SDP, answering 488`);
      return { status: 488, reason: 'Not Acceptable Here' };
    }
    this.counts.engineErrors++;
    this.log.error({ callId, code: r.code, detail: r.detail }, `${what}: media engine failed, answering ${r.code === 'UNKNOWN_CALL' ? 500 : 503}`);
    return r.code === 'UNKNOWN_CALL' ? { status: 500, reason: 'Server Internal Error - Media Session Lost' } : { status: 503, reason: 'Service Unavailable - Media Relay Failed' };
  }

  /** Ends a call's media and forgets the call. */
  private endCall(call: CallSession, why: string): void {
    if (this.calls.get(call.callId) === call) this.calls.delete(call.callId);
    for (const d of this.dialogs.forCall(call.callId)) this.dialogs.remove(d);
    if (!call.engaged) return;
    call.engaged = false;
    void this.run(call, async () => {
      // The whole call (the engine knows which tag offered: with a late offer it is the callee's).
      await this.opts.media.delete({ callId: call.callId });
      this.log.debug({ callId: call.callId, why }, 'media session deleted');
    });
  }

  // ---------------------------------------------------------------- requests

  request(tx: ServerTransaction, targets: HookTarget[]): RequestHookResult | Promise<RequestHookResult> {
    const req = tx.request;
    if (this.closed || (req.method !== 'INVITE' && this.calls.size === 0)) return true;
    const callId = getHeader(req, 'call-id');
    if (!callId) return true;
    const fromTag = tagParam(getHeader(req, 'from'));
    const toTag = tagParam(getHeader(req, 'to'));
    const cs = cseqOf(req);
    if (!cs || fromTag === undefined) return true;
    if (req.method === 'INVITE' && toTag === undefined) return this.initialInvite(tx, targets, callId, fromTag, cs.seq);

    const dialog = this.dialogs.find(callId, fromTag, toTag);
    if (dialog && req.method !== 'ACK' && req.method !== 'CANCEL') {
      this.dialogs.noteRequest(dialog, fromTag, cs.seq, SDP_METHODS.has(req.method) ? contactUri(getHeader(req, 'contact')) : undefined);
    }
    const call = this.calls.get(callId);
    if (!call || (call.callerTag !== fromTag && call.callerTag !== toTag)) return true;
    if (req.method === 'BYE') {
      if (dialog) this.dialogs.remove(dialog);
      // Several dialogs after a forked INVITE share the Call-ID: the media ends with the last one.
      if (call.state === 'confirmed' && this.dialogs.forCall(callId).length === 0) this.endCall(call, 'BYE');
      return true;
    }
    if (!call.relay) return true;
    const sdp = sdpBody(req);
    if (SDP_METHODS.has(req.method)) {
      const key = `${cs.seq} ${req.method}`;
      if (sdp === undefined) {
        // RFC 3261 §13.2.1: an INVITE without SDP asks for the offer in the response.
        if (req.method === 'INVITE') this.remember(call, key, { inResponse: true });
        return call.busy > 0 ? this.run(call, async () => true) : true;
      }
      const other = fromTag === call.callerTag ? toTag : call.callerTag;
      return this.run(call, () => this.offerInRequest(call, tx, targets, fromTag, other, key, sdp));
    }
    if (req.method === 'PRACK' && sdp !== undefined) {
      // RFC 3262 §5: the PRACK carries the answer to an offer in a reliable 1xx.
      const rack = (getHeader(req, 'rack') ?? '').trim().split(/\s+/);
      const rec = rack.length === 3 ? call.offers.get(`${rack[1]} ${rack[2].toUpperCase()}`) : undefined;
      if (rec?.inResponse && rec.offererTag !== undefined) {
        const offerer = rec.offererTag;
        return this.run(call, () => this.answerInRequest(call, tx, targets, offerer, fromTag, sdp));
      }
    }
    return call.busy > 0 ? this.run(call, async () => true) : true;
  }

  private async initialInvite(tx: ServerTransaction, targets: HookTarget[], callId: string, fromTag: string, seq: number): Promise<RequestHookResult> {
    const req = tx.request;
    // The same Call-ID again without a To tag: a spiral (RFC 3261 §16.6: the request comes back
    // through us) carrying our own relay's SDP, or a duplicate: left as it is.
    if (this.calls.has(callId)) return true;
    const cfg = this.opts.settings();
    const mode = cfg.media.relay;
    let relay = mode === 'always';
    if (mode === 'nat') {
      const ctx = this.opts.advertise();
      const src = tx.inbound.flow.remote;
      const sock = this.socketById(tx.inbound.flow.local.socketId);
      relay = shouldRelay(mode, {
        callerNat: detectNat(req, src, cfg.nat.clients, { raw: tx.inbound.raw }).nat,
        calleeNat: targets.some((t) => t.binding?.nat === true),
        callerInside: isInside(src.address, ctx, sock),
        calleeInside: targets.map((t) => isInside(t.dest.address, ctx, this.socketById(t.dest.socketId) ?? sock)),
      });
    }
    if (relay) this.counts.relayed++;
    else this.counts.direct++;
    const call: CallSession = {
      callId,
      callerTag: fromTag,
      from: uriText(getHeader(req, 'from')),
      to: uriText(getHeader(req, 'to')),
      createdAt: this.opts.clock.wallNow(),
      createdMono: this.opts.clock.now(),
      state: 'trying',
      relay,
      engaged: false,
      offers: new Map(),
      answers: new Map(),
      chain: Promise.resolve(),
      busy: 0,
    };
    this.calls.set(callId, call);
    if (!relay) return true;
    const key = `${seq} INVITE`;
    const sdp = sdpBody(req);
    if (sdp === undefined) {
      this.remember(call, key, { inResponse: true });
      return true;
    }
    const r = await this.run(call, () => this.offerInRequest(call, tx, targets, fromTag, undefined, key, sdp));
    if (r !== true) {
      this.endCall(call, 'offer refused');
      return r;
    }
    // A CANCEL processed meanwhile already answered the INVITE 487: nothing will be forwarded.
    if (tx.lastResponse !== undefined && tx.lastResponse.status >= 200) {
      this.endCall(call, 'cancelled before forwarding');
      return false;
    }
    return true;
  }

  /** `offer` for an SDP in a request, once per distinct advertise address among the targets. */
  private async offerInRequest(
    call: CallSession,
    tx: ServerTransaction,
    targets: HookTarget[],
    fromTag: string,
    toTag: string | undefined,
    key: string,
    sdp: string,
  ): Promise<RequestHookResult> {
    const req = tx.request;
    if (this.calls.get(call.callId) !== call) return true;
    const viaBranch = (() => {
      const v = parseVia(getHeader(req, 'via') ?? '');
      return v.ok ? (v.value.params.branch ?? undefined) : undefined;
    })();
    const inbound = tx.inbound.flow;
    const byAddress = new Map<string, string>();
    const perDest = new Map<Destination, string>();
    for (const t of targets) {
      const adv = this.addressFor(t.dest.address, t.dest.socketId ?? inbound.local.socketId);
      let out = byAddress.get(adv);
      if (out === undefined) {
        call.engaged = true;
        const r = await this.opts.media.offer({
          callId: call.callId,
          fromTag,
          toTag,
          viaBranch: viaBranch ?? undefined,
          sdp,
          receivedFrom: { address: inbound.remote.address, port: inbound.remote.port },
          advertiseAddress: adv,
        });
        if (!r.ok) return this.failure(r, call.callId, `${req.method} offer`);
        out = r.sdp;
        byAddress.set(adv, out);
      }
      perDest.set(t.dest, out);
    }
    this.forwards.set(tx, perDest);
    this.remember(call, key, { offererTag: fromTag, inResponse: false });
    return true;
  }

  /** `answer` for an SDP in a request (PRACK after an offer in a reliable 1xx). */
  private async answerInRequest(call: CallSession, tx: ServerTransaction, targets: HookTarget[], offererTag: string, answererTag: string, sdp: string): Promise<RequestHookResult> {
    const inbound = tx.inbound.flow;
    const perDest = new Map<Destination, string>();
    for (const t of targets) {
      const r = await this.opts.media.answer({
        callId: call.callId,
        fromTag: offererTag,
        toTag: answererTag,
        sdp,
        receivedFrom: { address: inbound.remote.address, port: inbound.remote.port },
        advertiseAddress: this.addressFor(t.dest.address, t.dest.socketId ?? inbound.local.socketId),
      });
      if (!r.ok) return this.failure(r, call.callId, `${tx.request.method} answer`);
      perDest.set(t.dest, r.sdp);
    }
    this.forwards.set(tx, perDest);
    return true;
  }

  forward(tx: ServerTransaction, forwarded: SipRequest, dest: Destination): void {
    const sdp = this.forwards.get(tx)?.get(dest);
    if (sdp !== undefined) setBody(forwarded, sdp);
  }

  // ---------------------------------------------------------------- responses

  response(tx: ServerTransaction, forwarded: SipRequest, dest: Destination, res: SipResponse): Promise<SipResponse> | undefined {
    const callId = getHeader(res, 'call-id');
    const call = callId ? this.calls.get(callId) : undefined;
    if (!call) return undefined;
    const mayRewrite = call.relay && res.status > 100 && res.status < 300 && res.body.length > 0;
    if (!mayRewrite && call.busy === 0) {
      this.track(call, tx, forwarded, dest, res);
      return undefined;
    }
    return this.run(call, async () => {
      this.track(call, tx, forwarded, dest, res);
      if (!mayRewrite) return res;
      try {
        return await this.sdpInResponse(call, tx, dest, res);
      } catch (err) {
        this.log.error({ err, callId: call.callId }, 'media session: response not rewritten');
        return res;
      }
    });
  }

  /** Call state and dialog bookkeeping for a response on a branch. */
  private track(call: CallSession, tx: ServerTransaction, forwarded: SipRequest, dest: Destination, res: SipResponse): void {
    const cs = cseqOf(res);
    if (!cs || cs.method !== 'INVITE' || res.status < 101 || res.status >= 300) return;
    const toTag = tagParam(getHeader(res, 'to'));
    if (toTag === undefined) return;
    const initial = tagParam(getHeader(forwarded, 'to')) === undefined;
    if (!initial) {
      // RFC 3261 §12.2.1.2: a 2xx to a re-INVITE refreshes the responder's remote target.
      if (res.status >= 200) {
        const d = this.dialogs.find(call.callId, tagParam(getHeader(res, 'from')), toTag);
        const c = contactUri(getHeader(res, 'contact'));
        if (d && c) (d.caller.tag === toTag ? d.caller : d.callee).contact = c;
      }
      return;
    }
    if (res.status < 200) {
      if (call.state === 'trying') call.state = 'early';
      return;
    }
    if (this.calls.get(call.callId) !== call) return;
    call.state = 'confirmed';
    const req = tx.request;
    // Route sets without our own entries: upstream = the INVITE's Record-Route as it reached
    // us; downstream = the 2xx's Record-Route entries above ours, in reverse (RFC 3261 §12.1.2).
    const resRr = getHeaderValues(res, 'record-route');
    const downstream = resRr.slice(0, Math.max(0, resRr.length - getHeaderValues(forwarded, 'record-route').length)).reverse();
    this.dialogs.add({
      callId: call.callId,
      createdAt: this.opts.clock.wallNow(),
      caller: {
        tag: call.callerTag,
        nameAddr: getHeader(req, 'from') ?? '',
        contact: contactUri(getHeader(req, 'contact')) ?? req.uri,
        dest: flowDest(tx.inbound.flow),
        route: getHeaderValues(req, 'record-route'),
        cseq: cs.seq,
      },
      callee: {
        tag: toTag,
        nameAddr: getHeader(res, 'to') ?? '',
        contact: contactUri(getHeader(res, 'contact')) ?? forwarded.uri,
        dest: { ...dest },
        route: downstream,
        cseq: 0,
      },
    });
  }

  private async sdpInResponse(call: CallSession, tx: ServerTransaction, dest: Destination, res: SipResponse): Promise<SipResponse> {
    const sdp = sdpBody(res);
    const cs = cseqOf(res);
    if (sdp === undefined || !cs || !SDP_METHODS.has(cs.method) || this.calls.get(call.callId) !== call) return res;
    const rec = call.offers.get(`${cs.seq} ${cs.method}`);
    const responder = tagParam(getHeader(res, 'to'));
    const requester = tagParam(getHeader(res, 'from'));
    if (!rec || responder === undefined || requester === undefined) return res;
    const inbound = tx.inbound.flow;
    const common = {
      callId: call.callId,
      sdp,
      receivedFrom: { address: dest.address, port: dest.port },
      advertiseAddress: this.addressFor(inbound.remote.address, inbound.local.socketId),
    };
    let r: MediaResult;
    if (rec.inResponse) {
      // Late offer (RFC 3261 §13.2.1): the first SDP in a response is the responder's offer;
      // an unreliable 18x previews it and the 2xx repeats it.
      call.engaged = true;
      r = await this.opts.media.offer({ ...common, fromTag: responder, toTag: requester });
      if (r.ok) rec.offererTag = responder;
    } else {
      r = await this.opts.media.answer({ ...common, fromTag: rec.offererTag ?? requester, toTag: responder });
    }
    if (!r.ok) {
      const f = this.failure(r, call.callId, `${res.status} ${rec.inResponse ? 'offer' : 'answer'}`);
      this.log.warn({ callId: call.callId, status: f.status }, 'SDP of the response forwarded unchanged');
      return res;
    }
    const out = { ...res, headers: res.headers, body: Buffer.from(r.sdp, 'utf8') };
    if (res.status >= 200) {
      call.answers.set(`${cs.seq} ${cs.method} ${responder}`, out.body);
      while (call.answers.size > MAX_OFFER_RECORDS) call.answers.delete(call.answers.keys().next().value as string);
    }
    return out;
  }

  inviteFinal(tx: ServerTransaction, res: SipResponse): void {
    const callId = getHeader(tx.request, 'call-id');
    const call = callId ? this.calls.get(callId) : undefined;
    if (!call) return;
    if (tagParam(getHeader(tx.request, 'to')) !== undefined) {
      // A failed re-INVITE leaves the call as it was (RFC 3261 §14.1).
      const cs = cseqOf(tx.request);
      if (cs) call.offers.delete(`${cs.seq} INVITE`);
      return;
    }
    if (call.callerTag !== tagParam(getHeader(tx.request, 'from')) || call.state === 'confirmed') return;
    this.endCall(call, `INVITE answered ${res.status}`);
  }

  // ---------------------------------------------------------------- ACK and stateless 2xx

  ack(forwarded: SipRequest, inbound: Inbound, dest: Destination): Promise<void> | undefined {
    const callId = getHeader(forwarded, 'call-id');
    const call = callId ? this.calls.get(callId) : undefined;
    if (!call || !call.relay) return undefined;
    const sdp = sdpBody(forwarded);
    const cs = cseqOf(forwarded);
    const rec = cs ? call.offers.get(`${cs.seq} INVITE`) : undefined;
    const answerer = tagParam(getHeader(forwarded, 'from'));
    if (sdp === undefined || !rec?.inResponse || rec.offererTag === undefined || answerer === undefined) {
      return call.busy > 0 ? this.run(call, async () => undefined) : undefined;
    }
    const offerer = rec.offererTag;
    return this.run(call, async () => {
      // RFC 3261 §13.2.1: the ACK carries the answer to an offer in the 2xx.
      const r = await this.opts.media.answer({
        callId: call.callId,
        fromTag: offerer,
        toTag: answerer,
        sdp,
        receivedFrom: { address: inbound.flow.remote.address, port: inbound.flow.remote.port },
        advertiseAddress: this.addressFor(dest.address, dest.socketId ?? inbound.flow.local.socketId),
      });
      if (r.ok) setBody(forwarded, r.sdp);
      else this.failure(r, call.callId, 'ACK answer');
    }).catch(() => undefined);
  }

  strayResponse(res: SipResponse): void {
    const callId = getHeader(res, 'call-id');
    const call = callId ? this.calls.get(callId) : undefined;
    if (!call || res.status < 200 || res.status >= 300) return;
    const cs = cseqOf(res);
    const body = cs ? call.answers.get(`${cs.seq} ${cs.method} ${tagParam(getHeader(res, 'to')) ?? ''}`) : undefined;
    if (body && sdpBody(res) !== undefined) setBody(res, body);
  }

  // ---------------------------------------------------------------- media timeout

  /**
   * `onTimeout` of the media engine: no packets from either side for `media.timeout` s. A
   * confirmed call is ended with a BYE to both parties (RFC 3261 §15.1.1, sent for each by the
   * proxy on behalf of the other) and its media deleted; a call still ringing is left to Timer C.
   */
  onMediaTimeout(callId: string, info: MediaTimeoutInfo): void {
    const call = this.calls.get(callId);
    if (!call) {
      void this.opts.media.delete({ callId });
      return;
    }
    if (call.state !== 'confirmed') {
      this.log.debug({ callId, idleMs: info.idleMs }, 'media timeout of a call not answered yet: left to Timer C');
      return;
    }
    const dialogs = this.dialogs.forCall(callId);
    for (const d of dialogs) {
      this.sendBye(d, 'callee');
      this.sendBye(d, 'caller');
    }
    this.counts.timeouts++;
    if (this.opts.stats) this.opts.stats.mediaTimeouts++;
    this.log.warn({ callId, from: call.from, to: call.to, idleMs: info.idleMs, held: info.held, dialogs: dialogs.length }, 'media timeout: call ended with BYE to both sides');
    this.endCall(call, 'media timeout');
  }

  private sendBye(d: Dialog, towards: 'caller' | 'callee'): void {
    const party = towards === 'caller' ? d.caller : d.callee;
    const sockets = this.opts.sockets();
    const sock = sockets.find((s) => s.id === party.dest.socketId) ?? sockets.find((s) => s.transport === party.dest.transport);
    if (!sock) {
      this.log.warn({ callId: d.callId, towards }, 'no socket to send BYE');
      return;
    }
    const local = advertisedFor(sock, party.dest.address, this.opts.advertise());
    const { request, dest } = buildBye(d, towards, { ...local, transport: sock.transport }, 'SIP;cause=408;text="Media Timeout"');
    dest.socketId = sock.id;
    try {
      this.opts.sendRequest(request, dest, {
        onResponse: (r) => {
          if (r.status >= 200) this.log.debug({ callId: d.callId, towards, status: r.status }, 'BYE answered');
        },
        onTimeout: () => this.log.info({ callId: d.callId, towards }, 'BYE not answered'),
        onTransportError: () => this.log.info({ callId: d.callId, towards }, 'BYE could not be sent'),
      });
      this.counts.byesSent++;
    } catch (err) {
      this.log.warn({ err, callId: d.callId, towards }, 'BYE not sent');
    }
  }

  // ---------------------------------------------------------------- housekeeping

  private scheduleSweep(): void {
    if (this.closed) return;
    this.sweepTimer = this.opts.clock.setTimer(60_000, () => {
      this.sweep();
      this.scheduleSweep();
    });
  }

  /** Forgets calls whose end we cannot see: ringing too long, or confirmed without a relay for a day. */
  sweep(): void {
    const now = this.opts.clock.now();
    const maxEarly = this.opts.maxEarlyMs ?? 600_000;
    const maxDirect = this.opts.maxUnrelayedMs ?? 86_400_000;
    for (const call of [...this.calls.values()]) {
      const age = now - call.createdMono;
      if ((call.state !== 'confirmed' && age > maxEarly) || (call.state === 'confirmed' && !call.relay && age > maxDirect)) {
        this.log.info({ callId: call.callId, state: call.state }, 'call forgotten (no end seen)');
        this.endCall(call, 'stale');
      }
    }
  }

  // ---------------------------------------------------------------- show calls

  /** Active calls for `show calls` / GET /api/calls, with per-leg media addresses and counters. */
  async rows(): Promise<CallRow[]> {
    const now = this.opts.clock.wallNow();
    // Engine queries run in parallel (each is a round trip with rtpengine).
    return Promise.all([...this.calls.values()].map((call) => this.row(call, now)));
  }

  private async row(call: CallSession, now: number): Promise<CallRow> {
    const row: CallRow = {
      callId: call.callId,
      from: call.from,
      to: call.to,
      state: call.state,
      age: Math.max(0, Math.round((now - call.createdAt) / 1000)),
      media: call.relay ? 'relay' : 'direct',
    };
    const dialogs = this.dialogs.forCall(call.callId);
    if (dialogs.length > 0) row.dialogs = dialogs.length;
    const q = call.engaged ? await this.opts.media.query(call.callId) : undefined;
    if (!q) return row;
    if (q.lastPacketAt !== undefined) row.lastPacketAge = Math.max(0, Math.round((now - q.lastPacketAt) / 1000));
    row.legs = q.legs.map((leg): CallLegRow => {
      const l: CallLegRow = {
        role: leg.tag !== undefined && leg.tag === call.callerTag ? 'caller' : 'callee',
        received: { ...leg.received },
        sent: { ...leg.sent },
        streams: leg.streams.map((s) => ({
          index: s.index,
          kind: s.kind,
          direction: s.direction,
          rtcpMux: s.rtcpMux,
          rtp: endpointRow(s.rtp),
          rtcp: endpointRow(s.rtcp),
        })),
      };
      if (leg.tag !== undefined) l.tag = leg.tag;
      return l;
    });
    return row;
  }

  /** Stops the housekeeping timer and forgets every call (the engine is closed by its owner). */
  close(): void {
    this.closed = true;
    this.opts.clock.clearTimer(this.sweepTimer);
    this.calls.clear();
    this.dialogs.clear();
  }
}
