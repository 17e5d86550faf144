/**
 * The narrow control interface between signalling (the proxy) and media (a relay), shaped like
 * rtpengine's `ng` protocol so that the same calls drive the in-process relay
 * (`RelayEngine` in `relay.ts`) or a real rtpengine (`NgMediaControl` in `ng.ts`).
 *
 * ## Mapping to rtpengine `ng` keys
 *
 * | MediaControl                 | ng command / key                                                       |
 * |------------------------------|------------------------------------------------------------------------|
 * | `offer(p)`                   | `command: "offer"`                                                     |
 * | `answer(p)`                  | `command: "answer"`                                                    |
 * | `delete(p)`                  | `command: "delete"`                                                    |
 * | `query(callId)`              | `command: "query"`                                                     |
 * | `list()`                     | (local bookkeeping; ng `list` is used by the ng client to detect timeouts) |
 * | `p.callId`                   | `call-id`                                                              |
 * | `p.fromTag`                  | `from-tag` (the tag of the party that made the offer)                  |
 * | `p.toTag`                    | `to-tag` (the tag of the other party)                                  |
 * | `p.viaBranch`                | `via-branch`                                                           |
 * | `p.sdp`                      | `sdp`                                                                  |
 * | `p.receivedFrom`             | `received-from: ["IP4" \| "IP6", address]` (the port is not sent)      |
 * | `p.removeIce` (default true) | `ICE: "remove"`                                                        |
 * | (always)                     | `replace: ["origin", "session-connection", "SDP-version"]`            |
 * | (always)                     | `flags: ["original-sendrecv"]` (held streams keep their direction)     |
 * | `strictSource` (engine opt.) | `flags: [… "strict-source"]`                                           |
 * | `p.advertiseAddress`         | in-process: written into `c=`, `o=` and `a=rtcp`. rtpengine has no per-call key for it: the address it advertises comes from its `--interface=NAME/LOCAL!ADVERTISED` configuration, selected with `direction` (the ng client's `interfaces` option maps advertise addresses to interface names, see `ng.ts`). Note that ng's `media address` key is *not* the advertised address: it overrides the *endpoint's* address. |
 *
 * ## How the caller (the proxy) calls it, per SIP case
 *
 * Tags name parties, not header positions: `fromTag` is always the tag of the party whose SDP
 * is the **offer**, `toTag` the tag of the other party.
 *
 * - **INVITE with SDP / 200 with SDP** (RFC 3264 §4–§6): on the INVITE,
 *   `offer({callId, fromTag: From-tag, viaBranch, sdp, receivedFrom: source of the INVITE,
 *   advertiseAddress: address facing the callee})`; put the returned SDP in the forwarded
 *   INVITE. On the 200, `answer({callId, fromTag: From-tag, toTag: To-tag, sdp,
 *   receivedFrom: source of the 200, advertiseAddress: address facing the caller})`.
 * - **183 (or any 1xx) with SDP**: the same `answer` as for a 200. Calling `answer` again for the
 *   200 with the same SDP is safe and yields the same `o=` version. With forking, each early
 *   dialog's answer overwrites the callee side (the last answer wins; the 200 settles it).
 * - **re-INVITE / UPDATE with SDP** (RFC 3311, RFC 3264 §8): `offer` with `fromTag` = the
 *   From-tag *of that request* (the sender's tag: the callee's tag when the callee sends it), then
 *   `answer` on its 2xx with `fromTag` = the same From-tag and `toTag` = its To-tag. Existing
 *   streams keep their relay ports (matched by Call-ID + tag + m-line index); learning reopens.
 * - **late offer** (INVITE without SDP, offer in the 200, answer in the ACK, RFC 3261 §13.2.1):
 *   on the 200, `offer({callId, fromTag: To-tag of the 200 (callee), toTag: From-tag (caller),
 *   sdp, advertiseAddress: address facing the caller})`; on the ACK, `answer({callId,
 *   fromTag: To-tag of the ACK (callee = offerer), toTag: From-tag of the ACK (caller), sdp,
 *   advertiseAddress: address facing the callee})`. An offer in a reliable 1xx answered in the
 *   PRACK (RFC 3262) is called the same way.
 * - **BYE, CANCEL, or a final non-2xx response to the *initial* INVITE**:
 *   `delete({callId, fromTag, toTag})`. A failed re-INVITE/UPDATE must **not** delete the call.
 * - **`onTimeout(callId)`**: end the call with a BYE to both sides (or CANCEL it if it was
 *   never answered), then `delete`.
 *
 * Always pass `receivedFrom` (the source of the SIP message carrying the SDP): a private SDP
 * address of a party whose signalling came from another address is never sent to (the party
 * is behind NAT; the relay waits for its first packet and latches onto it).
 *
 * Errors: `NO_PORTS` → answer the request 503 (Retry-After is up to the proxy); `BAD_SDP` → 488
 * (RFC 3261 §21.4.26) for an offer, for an answer drop the SDP / end the call;
 * `UNKNOWN_CALL` → the answer has no offer (forward unchanged or 500); `ENGINE_ERROR` →
 * 500/503.
 */

/** An IP address and UDP port. */
export interface SocketAddress {
  /** IPv4 dotted quad or IPv6 without brackets. */
  address: string;
  port: number;
}

/** Stable error codes of {@link MediaResult}. */
export type MediaErrorCode = 'NO_PORTS' | 'BAD_SDP' | 'UNKNOWN_CALL' | 'ENGINE_ERROR';

/** Result of {@link MediaControl.offer} and {@link MediaControl.answer}. */
export type MediaResult = { ok: true; sdp: string } | { ok: false; code: MediaErrorCode; detail: string };

/** Parameters of {@link MediaControl.offer}. */
export interface OfferParams {
  callId: string;
  /** Tag of the party that made this offer (the From-tag of an offer in a request). */
  fromTag: string;
  /** Tag of the other party, when known (re-offers, late offer in a 200). */
  toTag?: string;
  /** Top Via branch of the request (ng `via-branch`); informational for the in-process relay. */
  viaBranch?: string;
  /** The offer as received. */
  sdp: string;
  /** Where the offerer's signalling came from (rtpengine `received-from`). */
  receivedFrom?: SocketAddress;
  /** IP to write into the outgoing SDP (the inside/outside decision is made by the caller). */
  advertiseAddress: string;
  /** Strip ICE attributes while relaying (default true). */
  removeIce?: boolean;
}

/** Parameters of {@link MediaControl.answer}. */
export interface AnswerParams {
  callId: string;
  /** Tag of the party that made the offer being answered (the same `fromTag` as in its `offer`). */
  fromTag: string;
  /** Tag of the answering party. */
  toTag: string;
  viaBranch?: string;
  /** The answer as received. */
  sdp: string;
  /** Where the answerer's signalling came from. */
  receivedFrom?: SocketAddress;
  /** IP to write into the outgoing SDP (towards the offerer). */
  advertiseAddress: string;
  /** Strip ICE attributes while relaying (default true). */
  removeIce?: boolean;
}

/** Parameters of {@link MediaControl.delete}. The whole call is deleted; tags are informational. */
export interface DeleteParams {
  callId: string;
  fromTag?: string;
  toTag?: string;
}

/** Packets and bytes. */
export interface FlowCounters {
  packets: number;
  bytes: number;
}

/** One relay socket facing one party (RTP or RTCP component of one stream). */
export interface EndpointStats {
  /** Relay port this party sends to (and that we send to it from). */
  localPort: number;
  /** Address the party's SDP announced (absent when on hold with c=0.0.0.0 or not yet signalled). */
  signalled?: SocketAddress;
  /** Address learned from the party's packets (symmetric RTP, RFC 4961). */
  latched?: SocketAddress;
  /** Packets received from this party on this socket (relayed or not). */
  received: FlowCounters;
  /** Packets sent to this party from this socket. */
  sent: FlowCounters;
  /** Packets from a source other than the latched one, dropped by strictSource (RTP Bleed). */
  droppedSource: number;
  /** Packets for this party dropped because it has no address yet (or is on hold). */
  droppedNoDestination: number;
  /** Wall-clock time (Unix ms) of the last packet received from this party, if any. */
  lastPacketAt?: number;
}

/** One m-line as seen on one leg. */
export interface LegStreamStats {
  /** m-line index (0-based). */
  index: number;
  /** `audio`, `video`, … */
  kind: string;
  /** RFC 5761 multiplexing negotiated (both offer and answer carried a=rtcp-mux). */
  rtcpMux: boolean;
  /** Direction attribute of this leg's latest SDP (RFC 3264 §5.1). */
  direction: string;
  /** This leg's latest SDP had c=0.0.0.0 (RFC 2543 hold). */
  hold: boolean;
  rtp: EndpointStats;
  rtcp: EndpointStats;
}

/** One party of a call. */
export interface LegStats {
  /** The party's SIP tag (undefined until it answered). */
  tag?: string;
  /** Totals of packets received from this party (= one direction of the call). */
  received: FlowCounters;
  /** Totals of packets sent to this party. */
  sent: FlowCounters;
  streams: LegStreamStats[];
}

/** Per-call statistics ({@link MediaControl.query}). */
export interface CallMediaStats {
  callId: string;
  /** Wall-clock creation time, Unix ms. */
  createdAt: number;
  /** Wall-clock time of the last offer/answer, Unix ms. */
  lastSignalAt: number;
  /** Wall-clock time of the last packet from either side, Unix ms. */
  lastPacketAt?: number;
  /** onTimeout has fired for this call. */
  timedOut: boolean;
  /** `[offerer of the initial offer, the other party]`; `legs[0].received` is the A→B direction. */
  legs: LegStats[];
}

/** One line of {@link MediaControl.list} (for `sipedge show calls`). */
export interface CallMediaSummary {
  callId: string;
  /** `[A, B]` tags. */
  tags: Array<string | undefined>;
  /** Number of relayed (non-rejected) m-lines. */
  streams: number;
  /** Packets/bytes A→B and B→A (counted when received by the relay); undefined if unknown (ng). */
  aToB?: FlowCounters;
  bToA?: FlowCounters;
  /** Wall-clock time of the last packet, Unix ms. */
  lastPacketAt?: number;
  timedOut: boolean;
}

/** Why {@link MediaControlOptions.onTimeout} fired. */
export interface MediaTimeoutInfo {
  /** ms since the last packet (or signalling event, if later). */
  idleMs: number;
  /** Every stream was on hold, so the hold timeout applied. */
  held: boolean;
}

/** Engine-wide counters (for /metrics). All are totals since start unless noted. */
export interface MediaCounters {
  /** Calls currently held (gauge). */
  calls: number;
  /** RTP/RTCP port pairs in use (gauge), and the pool size. */
  portPairsInUse: number;
  portPairsCapacity: number;
  /** Offers refused because the port range was exhausted. */
  noPorts: number;
  /** Ports skipped because something else had them bound. */
  bindFailures: number;
  badSdp: number;
  /** onTimeout callbacks fired. */
  timeouts: number;
  /** Packets/bytes forwarded. */
  packetsRelayed: number;
  bytesRelayed: number;
  /** Dropped by strictSource (RTP Bleed protection). */
  droppedSource: number;
  /** Dropped because the destination had no address (not yet signalled/latched, or on hold). */
  droppedNoDestination: number;
  /** Asynchronous socket errors (send failures). */
  socketErrors: number;
  /** ng client only: requests that failed (timeout, error reply). */
  engineErrors: number;
}

/** Callback fired once per call when media stopped for `timeoutSec`. */
export type MediaTimeoutHandler = (callId: string, info: MediaTimeoutInfo) => void;

/**
 * Media control: offer/answer/delete/query, shaped like rtpengine's ng commands. Every method
 * is safe to call concurrently (the in-process relay serialises the operations of one call;
 * rtpengine does the same on its side). Results are values: no method rejects.
 */
export interface MediaControl {
  /** Processes an offer; returns the SDP to forward to the other party. */
  offer(p: OfferParams): Promise<MediaResult>;
  /** Processes an answer; returns the SDP to forward to the offerer. */
  answer(p: AnswerParams): Promise<MediaResult>;
  /** Deletes the call and releases its ports (unknown calls are ignored). */
  delete(p: DeleteParams): Promise<void>;
  /** Statistics of one call, or undefined when unknown. */
  query(callId: string): Promise<CallMediaStats | undefined>;
  /** Summaries of all current calls. */
  list(): CallMediaSummary[];
  /** Engine-wide counters. */
  counters(): MediaCounters;
  /** Releases every socket and timer. */
  close(): Promise<void>;
}

/** Options shared by every {@link MediaControl} implementation. */
export interface MediaControlOptions {
  /** Fired once per call when no packets flowed for `timeoutSec` (media.timeout). */
  onTimeout?: MediaTimeoutHandler;
}

/** Zeroed {@link MediaCounters}. */
export function emptyCounters(): MediaCounters {
  return {
    calls: 0,
    portPairsInUse: 0,
    portPairsCapacity: 0,
    noPorts: 0,
    bindFailures: 0,
    badSdp: 0,
    timeouts: 0,
    packetsRelayed: 0,
    bytesRelayed: 0,
    droppedSource: 0,
    droppedNoDestination: 0,
    socketErrors: 0,
    engineErrors: 0,
  };
}
