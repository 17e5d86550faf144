/**
 * INVITE server transaction: RFC 3261 §17.2.1 (Figure 7) as updated by RFC 6026 §7.1 / §8.7
 * (the `Accepted` state, Timer L, INVITE retransmissions absorbed and ACKs passed to the TU,
 * transport errors no longer destroying the transaction at once).
 *
 * ```
 * Proceeding ──2xx from TU──▶ Accepted ──Timer L──▶ Terminated
 *     └──300-699 from TU──▶ Completed ──ACK──▶ Confirmed ──Timer I──▶ Terminated
 *                              └──Timer H──▶ Terminated
 * ```
 */
import type { TimerHandle } from '../lib/clock.js';
import type { SipRequest, SipResponse } from '../sip/message.js';
import { createResponse } from '../sip/response.js';
import type { Inbound } from '../transport/types.js';
import type { ServerInviteState, ServerTransaction } from './types.js';
import { legalTransition, publishTransition, type TransactionContext } from './context.js';
import { isReliable, timeout64T1, timerT4OrZero } from './timers.js';

/** Legal edges of RFC 6026 Figure 7. */
const TRANSITIONS: Readonly<Record<ServerInviteState, readonly ServerInviteState[]>> = {
  Proceeding: ['Accepted', 'Completed'],
  Accepted: ['Terminated'],
  Completed: ['Confirmed', 'Terminated'],
  Confirmed: ['Terminated'],
  Terminated: [],
};

/** Outcome of an ACK fed to an INVITE server transaction. */
export type ServerAckOutcome = 'absorbed' | 'to-tu';

/**
 * One INVITE server transaction. Owns the auto-100 timer and Timers G, H, I and L (via the
 * injected clock). Created by {@link TransactionLayer.receive}.
 */
export class ServerInviteTransaction implements ServerTransaction {
  readonly kind = 'INVITE' as const;
  readonly request: SipRequest;
  private current: ServerInviteState = 'Proceeding';
  private last: SipResponse | undefined;
  /** Where responses go: the inbound of the latest copy of the request (NAT bindings may move). */
  private replyTo: Inbound;
  private readonly reliable: boolean;
  private timerTrying: TimerHandle | undefined;
  private timerG: TimerHandle | undefined;
  /** Current Timer G interval, ms: T1, doubling, capped at T2. */
  private timerGInterval = 0;
  private timerH: TimerHandle | undefined;
  private timerI: TimerHandle | undefined;
  private timerL: TimerHandle | undefined;
  /** A send failed and the TU was told (reported once). */
  private transportFailed = false;

  /**
   * @param id transaction key ({@link serverTransactionKey})
   * @param inbound the INVITE as received
   * @param rfc2543 whether the key was built with RFC 2543 rules (To tag checked separately)
   */
  constructor(
    readonly id: string,
    readonly inbound: Inbound,
    private readonly ctx: TransactionContext,
    readonly rfc2543 = false,
  ) {
    this.request = inbound.message as SipRequest;
    this.replyTo = inbound;
    this.reliable = isReliable(inbound.flow.transport);
  }

  /** Current state (RFC 6026 Figure 7). */
  get state(): ServerInviteState {
    return this.current;
  }

  /** Latest provisional or final response sent. */
  get lastResponse(): SipResponse | undefined {
    return this.last;
  }

  /**
   * Starts the 100 (Trying) timer unless the TU already responded.
   * RFC 3261 §17.2.1: "the server transaction MUST generate a 100 (Trying) response unless it
   * knows that the TU will generate a provisional or final response within 200 ms".
   * @param delayMs ms to wait for the TU; 0 disables.
   */
  armAutoTrying(delayMs: number): void {
    if (delayMs <= 0 || this.current !== 'Proceeding' || this.last !== undefined) return;
    this.timerTrying = this.ctx.clock.setTimer(delayMs, () => this.onTimerTrying());
  }

  /**
   * Sends a response from the TU through the state machine. Responses the current state does not
   * allow (a final after a final, a 1xx after a 2xx, anything when Terminated) are ignored and
   * logged at debug.
   */
  respond(response: SipResponse): void {
    const status = response.status;
    if (!Number.isInteger(status) || status < 100 || status > 699) {
      this.ctx.logger.debug({ tx: this.id, status }, 'invalid status ignored');
      return;
    }
    if (this.current === 'Proceeding') {
      this.ctx.clock.clearTimer(this.timerTrying);
      this.timerTrying = undefined;
      this.last = response;
      if (status < 200) {
        // RFC 3261 §17.2.1: "The TU passes any number of provisional responses to the server
        // transaction. So long as the server transaction is in the "Proceeding" state, each of
        // these MUST be passed to the transport layer for transmission."
        this.send(response);
      } else if (status < 300) {
        // RFC 6026 §7.1: "If the SIP element's TU (Transaction User) issues a 2xx response for
        // this transaction while the state machine is in the "Proceeding" state, the state machine
        // MUST transition to the "Accepted" state and set Timer L to 64*T1" … "The server
        // transaction MUST NOT generate 2xx retransmissions on its own." 
        this.transition('Accepted', '2xx from TU');
        this.timerL = this.ctx.clock.setTimer(timeout64T1(this.ctx.timers), () => this.onTimerL());
        this.send(response);
      } else {
        // RFC 3261 §17.2.1: "While in the "Proceeding" state, if the TU passes a response with
        // status code from 300 to 699 to the server transaction, the response MUST be passed to
        // the transport layer for transmission, and the state machine MUST enter the "Completed"
        // state. For unreliable transports, timer G is set to fire in T1 seconds, and is not set
        // to fire for reliable transports." … "When the "Completed" state is entered, timer H
        // MUST be set to fire in 64*T1 seconds for all transports."
        this.transition('Completed', '300-699 from TU');
        if (!this.reliable) {
          this.timerGInterval = this.ctx.timers.T1;
          this.timerG = this.ctx.clock.setTimer(this.timerGInterval, () => this.onTimerG());
        }
        this.timerH = this.ctx.clock.setTimer(timeout64T1(this.ctx.timers), () => this.onTimerH());
        this.send(response);
      }
      return;
    }
    if (this.current === 'Accepted' && status >= 200 && status < 300) {
      // RFC 6026 §8.7: "Any retransmission of the 2xx response passed from the TU to the
      // transaction while in the "Accepted" state MUST be passed to the transport layer for
      // transmission." (2xx retransmissions from the UAS core, or 2xx from other forks.)
      this.last = response;
      this.send(response);
      return;
    }
    this.ctx.logger.debug({ tx: this.id, state: this.current, status }, 'response not allowed in this state; ignored');
  }

  /** Feeds a retransmission of the INVITE (matched by the layer). */
  receiveRetransmission(inbound: Inbound): void {
    this.replyTo = inbound;
    switch (this.current) {
      case 'Proceeding':
        // RFC 3261 §17.2.1: "If a request retransmission is received while in the "Proceeding"
        // state, the most recent provisional response that was received from the TU MUST be
        // passed to the transport layer for retransmission."
        if (this.last) this.send(this.last);
        return;
      case 'Accepted':
        // RFC 6026 §8.7: "While in the "Accepted" state, any retransmissions of the INVITE
        // received will match this transaction state machine and will be absorbed by the machine
        // without changing its state. These retransmissions are not passed onto the TU." 
        return;
      case 'Completed':
        // RFC 3261 §17.2.1: "Furthermore, while in the "Completed" state, if a request
        // retransmission is received, the server SHOULD pass the response to the transport for
        // retransmission."
        if (this.last) this.send(this.last);
        return;
      case 'Confirmed':
      case 'Terminated':
        return;
    }
  }

  /** Feeds an ACK matched to this transaction; says whether the TU must see it. */
  receiveAck(_inbound: Inbound): ServerAckOutcome {
    switch (this.current) {
      case 'Completed': {
        // RFC 3261 §17.2.1: "If an ACK is received while the server transaction is in the
        // "Completed" state, the server transaction MUST transition to the "Confirmed" state. As
        // Timer G is ignored in this state, any retransmissions of the response will cease." …
        // "When this state is entered, timer I is set to fire in T4 seconds for unreliable
        // transports, and zero seconds for reliable transports."
        this.ctx.clock.clearTimer(this.timerG);
        this.ctx.clock.clearTimer(this.timerH);
        this.timerG = this.timerH = undefined;
        this.transition('Confirmed', 'ACK');
        const i = timerT4OrZero(this.ctx.timers, this.reliable);
        if (i === 0) this.terminateWith('Timer I');
        else this.timerI = this.ctx.clock.setTimer(i, () => this.onTimerI());
        return 'absorbed';
      }
      case 'Accepted':
        // RFC 6026 §8.7: "Any ACKs received from the network while in the "Accepted" state MUST
        // be passed directly to the TU and not absorbed." (They acknowledge the 2xx end to end.)
        return 'to-tu';
      case 'Confirmed':
        // RFC 3261 §17.2.1: "The purpose of the "Confirmed" state is to absorb any additional ACK
        // messages that arrive, triggered from retransmissions of the final response."
        return 'absorbed';
      case 'Proceeding':
        this.ctx.logger.debug({ tx: this.id }, 'ACK before any final response; absorbed');
        return 'absorbed';
      case 'Terminated':
        return 'to-tu';
    }
  }

  /** Cancels every timer without any callback (layer shutdown). */
  close(): void {
    this.clearAllTimers();
    this.current = 'Terminated';
  }

  private onTimerTrying(): void {
    this.timerTrying = undefined;
    // RFC 3261 §8.2.6.1: the 100 (Trying) copies Via, From, To, Call-ID, CSeq and Timestamp and
    // carries no To tag.
    if (this.current === 'Proceeding' && this.last === undefined) this.respond(createResponse(this.request, 100, 'Trying'));
  }

  private onTimerG(): void {
    this.timerG = undefined;
    if (this.current !== 'Completed' || !this.last) return;
    // RFC 3261 §17.2.1: "If timer G fires, the response is passed to the transport layer once
    // more for retransmission, and timer G is set to fire in MIN(2*T1, T2) seconds. From then on,
    // when timer G fires, the response is passed to the transport again for transmission, and
    // timer G is reset with a value that doubles, unless that value exceeds T2, in which case it
    // is reset with the value of T2."
    if (!this.send(this.last)) return;
    this.timerGInterval = Math.min(this.timerGInterval * 2, this.ctx.timers.T2);
    this.timerG = this.ctx.clock.setTimer(this.timerGInterval, () => this.onTimerG());
  }

  private onTimerH(): void {
    this.timerH = undefined;
    // RFC 3261 §17.2.1: "If timer H fires while in the "Completed" state, it implies that the ACK
    // was never received. In this case, the server transaction MUST transition to the
    // "Terminated" state, and MUST indicate to the TU that a transaction failure has occurred."
    if (this.current === 'Completed') this.terminateWith('Timer H', this.transportFailed ? undefined : 'timeout');
  }

  private onTimerI(): void {
    this.timerI = undefined;
    // RFC 3261 §17.2.1: "Once timer I fires, the server MUST transition to the "Terminated" state."
    if (this.current === 'Confirmed') this.terminateWith('Timer I');
  }

  private onTimerL(): void {
    this.timerL = undefined;
    // RFC 6026 §8.7: "If Timer L fires while the INVITE server transaction is in the "Accepted"
    // state, the transaction MUST transition to the "Terminated" state."
    if (this.current === 'Accepted') this.terminateWith('Timer L');
  }

  /** Sends a response on the request's flow; on failure applies RFC 3261 §17.2.4 / RFC 6026. */
  private send(response: SipResponse): boolean {
    const result = this.ctx.transport.sendResponse(response, this.replyTo);
    if (result.ok) return true;
    this.ctx.logger.debug({ tx: this.id, state: this.current, code: result.code }, 'response send failed');
    // RFC 3261 §17.2.4: "If the transport layer indicates a failure [...] the server transaction
    // SHOULD inform the TU" — once per transaction. RFC 6026: "An element encountering an
    // unrecoverable transport error when trying to send a response to an INVITE request MUST NOT
    // immediately destroy the associated INVITE server transaction state. This state is necessary
    // to ensure correct processing of retransmissions of the request." So the state stays; in
    // Completed, Timer G retransmissions stop and Timer H still ends the transaction (silently,
    // the TU already knows).
    if (this.current === 'Completed') {
      this.ctx.clock.clearTimer(this.timerG);
      this.timerG = undefined;
    }
    if (!this.transportFailed) {
      this.transportFailed = true;
      this.ctx.serverError(this, 'transport');
    }
    return false;
  }

  private clearAllTimers(): void {
    const c = this.ctx.clock;
    c.clearTimer(this.timerTrying);
    c.clearTimer(this.timerG);
    c.clearTimer(this.timerH);
    c.clearTimer(this.timerI);
    c.clearTimer(this.timerL);
    this.timerTrying = this.timerG = this.timerH = this.timerI = this.timerL = undefined;
  }

  private transition(to: ServerInviteState, cause: string): boolean {
    const from = this.current;
    if (!legalTransition(TRANSITIONS, from, to, this.ctx.logger, this.id)) return false;
    this.current = to;
    publishTransition('server', 'INVITE', this.id, from, to, cause);
    return true;
  }

  private terminateWith(cause: string, error?: 'timeout' | 'transport'): void {
    if (this.current === 'Terminated' || !this.transition('Terminated', cause)) return;
    this.clearAllTimers();
    this.ctx.serverTerminated(this);
    if (error) this.ctx.serverError(this, error);
  }
}
