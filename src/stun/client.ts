/**
 * STUN Binding client logic (RFC 8489 §6.1, §6.2.1, §6.3.3, §6.3.4) for public-address discovery,
 * without sockets or timers: the retransmission schedule, the request, and the judgement of a
 * received datagram. The `node:dgram` adapter that drives these is `./node/client.ts`.
 */
import {
  StunMethod,
  decodeStun,
  encodeStun,
  isStunPacket,
  newTransactionId,
  readErrorCode,
  readMappedAddress,
  readXorMappedAddress,
  softwareAttribute,
  unknownComprehensionRequired,
  verifyFingerprint,
  type StunAddress,
} from './message.js';

/**
 * Retransmission parameters of a STUN transaction over UDP (RFC 8489 §6.2.1).
 *
 * RFC 8489 names them RTO (initial retransmission timeout), Rc (total requests sent) and Rm (the
 * multiple of RTO to wait after the last request). Here `retransmits` is Rc − 1.
 */
export interface RetransmitOptions {
  /** Initial RTO in ms; doubles after every transmission. */
  rtoMs?: number;
  /** Retransmissions after the first request (Rc − 1). */
  retransmits?: number;
  /** Rm: after the last request, wait `lastWaitFactor × rtoMs` before giving up. */
  lastWaitFactor?: number;
  /** Hard overall deadline in ms from the first transmission; caps the schedule when shorter. */
  timeoutMs?: number;
}

/** RFC 8489 §6.2.1 defaults: RTO 500 ms, Rc = 7, Rm = 16 (gives up after 39.5 s). */
export const RFC8489_RETRANSMIT: Required<Omit<RetransmitOptions, 'timeoutMs'>> = { rtoMs: 500, retransmits: 6, lastWaitFactor: 16 };

/**
 * sipedge's default for address discovery at start-up and reload: 3 requests, RTO 250 ms, Rm 4
 * (requests at 0, 250, 750 ms; gives up at 1750 ms) — discovery tries the next server or method
 * rather than waiting 39.5 s for one.
 */
export const DISCOVERY_RETRANSMIT: Required<Omit<RetransmitOptions, 'timeoutMs'>> = { rtoMs: 250, retransmits: 2, lastWaitFactor: 4 };

/** When each request is sent and when the transaction fails, in ms from the first transmission. */
export interface RetransmitSchedule {
  /** Send times, ascending; the first is 0. */
  sendAt: number[];
  /** Time at which the transaction times out. */
  giveUpAt: number;
}

/**
 * The transmission schedule of RFC 8489 §6.2.1: "the client SHOULD retransmit a STUN request
 * message starting with an interval of RTO ("Retransmission TimeOut"), doubling after each
 * retransmission … Retransmissions continue until a response is received or until a total of Rc
 * requests have been sent … If, after the last request, a duration equal to Rm times the RTO has
 * passed without a response … the client SHOULD consider the transaction to have failed."
 *
 * With {@link RFC8489_RETRANSMIT} this yields sends at 0, 500, 1500, 3500, 7500, 15500, 31500 ms and
 * failure at 39500 ms — the RFC's own example. Unset fields take {@link DISCOVERY_RETRANSMIT}.
 * Sends after `timeoutMs` are dropped and `giveUpAt` is capped at it. Non-finite or negative values
 * fall back to the defaults.
 */
export function retransmitSchedule(opts: RetransmitOptions = {}): RetransmitSchedule {
  const num = (v: number | undefined, d: number, min: number) => (v !== undefined && Number.isFinite(v) && v >= min ? v : d);
  const rto = num(opts.rtoMs, DISCOVERY_RETRANSMIT.rtoMs, 1);
  const rc = Math.floor(num(opts.retransmits, DISCOVERY_RETRANSMIT.retransmits, 0)) + 1;
  const rm = num(opts.lastWaitFactor, DISCOVERY_RETRANSMIT.lastWaitFactor, 0);
  const sendAt: number[] = [];
  let t = 0;
  let interval = rto;
  for (let i = 0; i < rc; i++) {
    sendAt.push(t);
    t += interval;
    interval *= 2;
  }
  let giveUpAt = sendAt[sendAt.length - 1] + rm * rto;
  const cap = opts.timeoutMs;
  if (cap !== undefined && Number.isFinite(cap) && cap >= 0 && cap < giveUpAt) {
    giveUpAt = cap;
    while (sendAt.length > 1 && sendAt[sendAt.length - 1] >= cap) sendAt.pop();
  }
  return { sendAt, giveUpAt };
}

/** Options of {@link createBindingRequest}. */
export interface BindingRequestOptions {
  /** Transaction id to use (12 octets); default: fresh random (RFC 8489 §6.1). */
  transactionId?: Buffer;
  /** SOFTWARE attribute text (RFC 8489 §14.14). */
  software?: string;
  /** Append FINGERPRINT (RFC 8489 §7). Default true: lets the server demultiplex us from SIP/RTP. */
  fingerprint?: boolean;
}

/**
 * A Binding request (RFC 8489 §6.1) with no authentication, as a discovery client or an RFC 5626
 * keepalive sends it. Retransmissions reuse the same octets (RFC 8489 §6.2.1: same transaction id).
 */
export function createBindingRequest(opts: BindingRequestOptions = {}): { transactionId: Buffer; packet: Buffer } {
  const transactionId = opts.transactionId ?? newTransactionId();
  const packet = encodeStun(
    {
      method: StunMethod.Binding,
      class: 'request',
      transactionId,
      attributes: opts.software ? [softwareAttribute(opts.software)] : [],
    },
    { fingerprint: opts.fingerprint ?? true },
  );
  return { transactionId, packet };
}

/** Stable failure codes of a Binding transaction. */
export type StunBindingErrorCode =
  /** No response within the schedule (RFC 8489 §6.2.1). */
  | 'TIMEOUT'
  /** A response for our transaction that is unusable: no (valid) mapped address, unknown comprehension-required attributes, bad class. */
  | 'BAD_RESPONSE'
  /** The server answered with an error response; `errorCode` / `reason` say which (RFC 8489 §6.3.4). */
  | 'ERROR_RESPONSE'
  /** The server name did not resolve. */
  | 'DNS'
  /** The local socket could not be created, bound or sent from. */
  | 'SOCKET';

/** Outcome of a Binding transaction. */
export type StunBindingResult =
  | {
      ok: true;
      /** Our address as the server saw it: XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS from an old server. */
      mapped: StunAddress;
      /** ms from the first transmission to the response (includes any retransmission wait). */
      rttMs: number;
      /** Requests sent, 1 + retransmissions. */
      transmissions: number;
      /** The server that answered, as resolved. */
      server: { address: string; port: number };
    }
  | { ok: false; code: StunBindingErrorCode; detail: string; errorCode?: number; reason?: string };

/** How a received datagram bears on a pending Binding transaction. */
export type BindingResponseVerdict =
  /** Not ours (not STUN, another transaction, a request, a bad FINGERPRINT): keep waiting. */
  | { kind: 'ignore' }
  /** The transaction is finished with this result (without `rttMs`/`transmissions`/`server`). */
  | { kind: 'success'; mapped: StunAddress }
  | { kind: 'failure'; code: 'BAD_RESPONSE' | 'ERROR_RESPONSE'; detail: string; errorCode?: number; reason?: string };

/**
 * Judges a datagram received while a Binding request with `transactionId` is pending
 * (RFC 8489 §6.3.3 success, §6.3.4 error response). Never throws.
 *
 * Datagrams that are not STUN responses to this transaction, and responses whose FINGERPRINT is
 * present but wrong (RFC 8489 §6.3: silently discarded), are ignored so that a shared SIP socket
 * keeps working. "If the success response contains unknown comprehension-required attributes, the
 * response is discarded and the transaction is considered to have failed" (§6.3.3).
 */
export function judgeBindingResponse(packet: Buffer, transactionId: Buffer): BindingResponseVerdict {
  if (!isStunPacket(packet)) return { kind: 'ignore' };
  const d = decodeStun(packet);
  if (!d.ok) return { kind: 'ignore' };
  const m = d.message;
  if (!m.transactionId.equals(transactionId)) return { kind: 'ignore' };
  if (m.class !== 'success' && m.class !== 'error') return { kind: 'ignore' };
  if (m.fingerprintOffset !== undefined && !verifyFingerprint(m).ok) return { kind: 'ignore' };
  if (m.method !== StunMethod.Binding) return { kind: 'failure', code: 'BAD_RESPONSE', detail: `response method 0x${m.method.toString(16)} is not Binding` };
  if (m.class === 'error') {
    const ec = readErrorCode(m);
    if (!ec.ok) return { kind: 'failure', code: 'ERROR_RESPONSE', detail: `error response without a valid ERROR-CODE (${ec.detail})` };
    return { kind: 'failure', code: 'ERROR_RESPONSE', detail: `${ec.value.code} ${ec.value.reason}`.trim(), errorCode: ec.value.code, reason: ec.value.reason };
  }
  const unknown = unknownComprehensionRequired(m);
  if (unknown.length > 0) {
    return { kind: 'failure', code: 'BAD_RESPONSE', detail: `unknown comprehension-required attributes ${unknown.map((t) => `0x${t.toString(16).padStart(4, '0')}`).join(', ')}` };
  }
  const xor = readXorMappedAddress(m);
  if (xor.ok) return { kind: 'success', mapped: xor.value };
  if (xor.code === 'ATTRIBUTE_MISSING') {
    // RFC 8489 §14.1: MAPPED-ADDRESS remains for backwards compatibility with RFC 3489 servers.
    const plain = readMappedAddress(m);
    if (plain.ok) return { kind: 'success', mapped: plain.value };
  }
  return { kind: 'failure', code: 'BAD_RESPONSE', detail: xor.detail };
}
