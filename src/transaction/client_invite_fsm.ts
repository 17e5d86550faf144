/**
 * INVITE client transaction: RFC 3261 §17.1.1 (Figure 5) as updated by RFC 6026 §8.4
 * (the `Accepted` state and Timer M).
 *
 * ```
 * Calling ──1xx──▶ Proceeding ──2xx──▶ Accepted ──Timer M──▶ Terminated
 *    │  └──2xx──────────┼─────────────────▲                       ▲
 *    └──300-699──▶ Completed ◀──300-699───┘     Completed ──Timer D──┘
 * Calling ──Timer B / transport error──▶ Terminated
 * ```
 */
import type { TimerHandle } from '../lib/clock.js';
import type { SipHeader, SipRequest, SipResponse } from '../sip/message.js';
import type { Destination, Inbound, SendResult } from '../transport/types.js';
import { getHeader } from '../sip/headers.js';
import { parseCSeq } from '../sip/cseq.js';
import type { ClientInviteState, ClientTransaction, ClientTransactionHandler } from './types.js';
import { legalTransition, logTuError, publishTransition, type TransactionContext } from './context.js';
import { isReliable, timeout64T1, timerD } from './timers.js';

/** Legal edges of RFC 3261 Figure 5 with RFC 6026 Figure 5 (`Accepted`). */
const TRANSITIONS: Readonly<Record<ClientInviteState, readonly ClientInviteState[]>> = {
  Calling: ['Proceeding', 'Accepted', 'Completed', 'Terminated'],
  Proceeding: ['Accepted', 'Completed', 'Terminated'],
  Accepted: ['Terminated'],
  Completed: ['Terminated'],
  Terminated: [],
};

/**
 * Builds the ACK for a 300–699 response to `invite` (RFC 3261 §17.1.1.3).
 *
 * "The ACK request constructed by the client transaction MUST contain values for the Call-ID,
 * From, and Request-URI that are equal to the values of those header fields in the request passed
 * to the transport by the client transaction (call this the "original request"). The To header
 * field in the ACK MUST equal the To header field in the response being acknowledged [...]. The ACK
 * MUST contain a single Via header field, and this MUST be equal to the top Via header field of the
 * original request. The CSeq header field in the ACK MUST contain the same value for the sequence
 * number as was present in the original request, but the method parameter MUST be equal to "ACK".
 * If the INVITE request whose response is being acknowledged had Route header fields, those header
 * fields MUST appear in the ACK." Max-Forwards is 70 (§8.1.1.6) and the body is empty.
 */
export function buildAckForNon2xx(invite: SipRequest, response: SipResponse): SipRequest {
  const headers: SipHeader[] = [];
  const via = getHeader(invite, 'via');
  if (via !== undefined) headers.push({ name: 'Via', key: 'via', value: via });
  for (const h of invite.headers) {
    if (h.key === 'route') headers.push({ name: h.name, key: h.key, value: h.value });
  }
  headers.push({ name: 'Max-Forwards', key: 'max-forwards', value: '70' });
  const from = invite.headers.find((h) => h.key === 'from');
  if (from) headers.push({ name: from.name, key: from.key, value: from.value });
  const to = response.headers.find((h) => h.key === 'to');
  if (to) headers.push({ name: to.name, key: to.key, value: to.value });
  const callId = invite.headers.find((h) => h.key === 'call-id');
  if (callId) headers.push({ name: callId.name, key: callId.key, value: callId.value });
  const cseqRaw = getHeader(invite, 'cseq') ?? '';
  const cseq = parseCSeq(cseqRaw);
  const seq = cseq.ok ? String(cseq.value.seq) : cseqRaw.trim().split(/\s+/, 1)[0];
  headers.push({ name: 'CSeq', key: 'cseq', value: `${seq} ACK` });
  headers.push({ name: 'Content-Length', key: 'content-length', value: '0' });
  return { type: 'request', method: 'ACK', uri: invite.uri, version: 'SIP/2.0', headers, body: Buffer.alloc(0) };
}

/**
 * One INVITE client transaction. Owns Timers A, B, D and M (all via the injected clock).
 * Created and started by {@link TransactionLayer.sendRequest}.
 */
export class ClientInviteTransaction implements ClientTransaction {
  readonly kind = 'INVITE' as const;
  private current: ClientInviteState = 'Calling';
  private readonly reliable: boolean;
  private timerA: TimerHandle | undefined;
  /** Current Timer A interval, ms (T1, 2*T1, 4*T1, … — RFC 3261 does not cap Timer A). */
  private timerAInterval = 0;
  private timerB: TimerHandle | undefined;
  private timerD: TimerHandle | undefined;
  private timerM: TimerHandle | undefined;
  private ack: SipRequest | undefined;

  constructor(
    readonly id: string,
    readonly request: SipRequest,
    readonly destination: Destination,
    private readonly handler: ClientTransactionHandler,
    private readonly ctx: TransactionContext,
  ) {
    this.reliable = isReliable(destination.transport);
  }

  /** Current state (RFC 3261 Figure 5 / RFC 6026). */
  get state(): ClientInviteState {
    return this.current;
  }

  /** The ACK generated for a 300–699 response, once in Completed. */
  get generatedAck(): SipRequest | undefined {
    return this.ack;
  }

  /** Sends the INVITE and starts Timer A (unreliable only) and Timer B. */
  start(): void {
    // RFC 3261 §17.1.1.2: "The initial state, "calling", MUST be entered when the TU initiates a
    // new client transaction with an INVITE request. The client transaction MUST pass the request
    // to the transport layer for transmission (see Section 18). If an unreliable transport is
    // being used, the client transaction MUST start timer A with a value of T1. If a reliable
    // transport is being used, the client transaction SHOULD NOT start timer A [...]. For any
    // transport, the client transaction MUST start timer B with a value of 64*T1 seconds".
    if (!this.send(this.request)) return;
    const { T1 } = this.ctx.timers;
    if (!this.reliable) {
      this.timerAInterval = T1;
      this.timerA = this.ctx.clock.setTimer(T1, () => this.onTimerA());
    }
    this.timerB = this.ctx.clock.setTimer(timeout64T1(this.ctx.timers), () => this.onTimerB());
  }

  /** Feeds a response matched to this transaction (RFC 3261 §17.1.3). */
  receiveResponse(response: SipResponse, inbound: Inbound): void {
    const status = response.status;
    switch (this.current) {
      case 'Calling':
      case 'Proceeding':
        if (status < 200) {
          // RFC 3261 §17.1.1.2: "If the client transaction receives a provisional response while
          // in the "Calling" state, it transitions to the "Proceeding" state. In the "Proceeding"
          // state, the client transaction SHOULD NOT retransmit the request any longer.
          // Furthermore, the provisional response MUST be passed to the TU. Any further
          // provisional responses MUST be passed up to the TU while in the "Proceeding" state."
          if (this.current === 'Calling') {
            this.cancelCallingTimers();
            this.transition('Proceeding', '1xx');
          }
          this.passUp(response, inbound);
        } else if (status < 300) {
          // RFC 6026 §8.4: "If a 2xx response is received while the client INVITE state machine
          // is in the "Calling" or "Proceeding" states, it MUST transition to the "Accepted"
          // state, pass the 2xx response to the TU, and set Timer M to 64*T1. [...] The client
          // transaction MUST NOT generate an ACK to the 2xx response".
          this.cancelCallingTimers();
          this.transition('Accepted', '2xx');
          this.timerM = this.ctx.clock.setTimer(timeout64T1(this.ctx.timers), () => this.onTimerM());
          this.passUp(response, inbound);
        } else {
          // RFC 3261 §17.1.1.2: "When in either the "Calling" or "Proceeding" states, reception
          // of a response with status code from 300-699 MUST cause the client transaction to
          // transition to "Completed". The client transaction MUST pass the received response up
          // to the TU, and the client transaction MUST generate an ACK request, even if the
          // transport is reliable [...]. The ACK MUST be sent to the same address, port, and
          // transport to which the original request was sent. The client transaction SHOULD
          // start timer D when it enters the "Completed" state, with a value of at least 32
          // seconds for unreliable transports, and a value of zero seconds for reliable
          // transports."
          this.cancelCallingTimers();
          this.transition('Completed', '300-699');
          this.ack = buildAckForNon2xx(this.request, response);
          this.passUp(response, inbound);
          if (this.state !== 'Completed') return; // the TU terminated us from its callback
          if (!this.send(this.ack)) return;
          const d = timerD(this.ctx.timers, this.reliable);
          if (d === 0) this.terminateWith('Timer D');
          else this.timerD = this.ctx.clock.setTimer(d, () => this.onTimerD());
        }
        return;
      case 'Accepted':
        // RFC 6026 §8.4: "Any 2xx responses that match this client transaction and that are
        // received while in the "Accepted" state MUST be passed up to the TU. The client
        // transaction MUST NOT generate an ACK to the 2xx response. The client transaction takes
        // no further action." (Retransmissions and 2xx from other forks alike.)
        if (status >= 200 && status < 300) this.passUp(response, inbound);
        else this.ctx.logger.debug({ tx: this.id, status }, 'INVITE client tx Accepted: non-2xx absorbed');
        return;
      case 'Completed':
        // RFC 3261 §17.1.1.2: "Any retransmissions of the final response that are received while
        // in the "Completed" state MUST cause the ACK to be re-passed to the transport layer for
        // retransmission, but the newly received response MUST NOT be passed up to the TU."
        if (status >= 300 && this.ack) this.send(this.ack);
        return;
      case 'Terminated':
        return;
    }
  }

  /** Stops every timer and moves to Terminated (handler.onTerminated is called). */
  terminate(): void {
    this.terminateWith('terminated by TU');
  }

  /** Cancels every timer without any callback (layer shutdown). */
  close(): void {
    this.clearAllTimers();
    this.current = 'Terminated';
  }

  private onTimerA(): void {
    this.timerA = undefined;
    if (this.current !== 'Calling') return;
    // RFC 3261 §17.1.1.2: "When timer A fires, the client transaction MUST retransmit the request
    // by passing it to the transport layer, and MUST reset the timer with a value of 2*T1. [...]
    // This process MUST continue so that the request is retransmitted with intervals that double
    // after each transmission."
    if (!this.send(this.request)) return;
    this.timerAInterval *= 2;
    this.timerA = this.ctx.clock.setTimer(this.timerAInterval, () => this.onTimerA());
  }

  private onTimerB(): void {
    this.timerB = undefined;
    if (this.current !== 'Calling') return;
    // RFC 3261 §17.1.1.2: "If the client transaction is still in the "Calling" state when timer B
    // fires, the client transaction SHOULD inform the TU that a timeout has occurred. The client
    // transaction MUST NOT generate an ACK."
    this.terminateWith('Timer B', () => this.handler.onTimeout());
  }

  private onTimerD(): void {
    this.timerD = undefined;
    // RFC 3261 §17.1.1.2: "If timer D fires while the client transaction is in the "Completed"
    // state, the client transaction MUST move to the terminated state."
    if (this.current === 'Completed') this.terminateWith('Timer D');
  }

  private onTimerM(): void {
    this.timerM = undefined;
    // RFC 6026 §8.4: "If Timer M fires while the client INVITE state machine is in the
    // "Accepted" state, the client transaction MUST move to the "Terminated" state."
    if (this.current === 'Accepted') this.terminateWith('Timer M');
  }

  /** Sends via the transport; on failure applies RFC 3261 §17.1.4 and returns false. */
  private send(req: SipRequest): boolean {
    const result = this.ctx.transport.sendRequest(req, this.destination);
    if (result.ok) return true;
    this.onTransportError(result);
    return false;
  }

  private onTransportError(result: SendResult): void {
    // RFC 3261 §17.1.4: "the client transaction SHOULD inform the TU that a transport failure has
    // occurred, and the client transaction SHOULD transition directly to the "Terminated" state."
    // (Figure 5: Calling and Completed → Terminated on "Transport Err. / Inform TU".)
    this.terminateWith('transport error', () => this.handler.onTransportError(result));
  }

  private passUp(response: SipResponse, inbound: Inbound): void {
    try {
      this.handler.onResponse(response, inbound);
    } catch (err) {
      logTuError(this.ctx.logger, this.id, 'onResponse', err);
    }
  }

  private cancelCallingTimers(): void {
    this.ctx.clock.clearTimer(this.timerA);
    this.ctx.clock.clearTimer(this.timerB);
    this.timerA = this.timerB = undefined;
  }

  private clearAllTimers(): void {
    this.cancelCallingTimers();
    this.ctx.clock.clearTimer(this.timerD);
    this.ctx.clock.clearTimer(this.timerM);
    this.timerD = this.timerM = undefined;
  }

  private transition(to: ClientInviteState, cause: string): boolean {
    const from = this.current;
    if (!legalTransition(TRANSITIONS, from, to, this.ctx.logger, this.id)) return false;
    this.current = to;
    publishTransition('client', 'INVITE', this.id, from, to, cause);
    return true;
  }

  /** Enters Terminated: timers off, layer map entry removed, then `inform` and onTerminated. */
  private terminateWith(cause: string, inform?: () => void): void {
    if (this.current === 'Terminated' || !this.transition('Terminated', cause)) return;
    this.clearAllTimers();
    this.ctx.clientTerminated(this);
    try {
      inform?.();
    } catch (err) {
      logTuError(this.ctx.logger, this.id, cause, err);
    }
    try {
      this.handler.onTerminated?.();
    } catch (err) {
      logTuError(this.ctx.logger, this.id, 'onTerminated', err);
    }
  }
}
