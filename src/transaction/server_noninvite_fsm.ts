/**
 * Non-INVITE server transaction: RFC 3261 §17.2.2 (Figure 8).
 *
 * ```
 * Trying ──1xx from TU──▶ Proceeding ──200-699 from TU──▶ Completed ──Timer J──▶ Terminated
 *    └──────────200-699 from TU──────────────────────────────▲
 * Proceeding/Completed ──transport error──▶ Terminated
 * ```
 */
import type { TimerHandle } from '../lib/clock.js';
import type { SipRequest, SipResponse } from '../sip/message.js';
import type { Inbound } from '../transport/types.js';
import type { ServerNonInviteState, ServerTransaction } from './types.js';
import { legalTransition, publishTransition, type TransactionContext } from './context.js';
import { isReliable, timerJ } from './timers.js';

/** Legal edges of RFC 3261 Figure 8. */
const TRANSITIONS: Readonly<Record<ServerNonInviteState, readonly ServerNonInviteState[]>> = {
  Trying: ['Proceeding', 'Completed'],
  Proceeding: ['Completed', 'Terminated'],
  Completed: ['Terminated'],
  Terminated: [],
};

/**
 * One non-INVITE server transaction (including CANCEL). Owns Timer J (via the injected clock).
 * Created by {@link TransactionLayer.receive}.
 */
export class ServerNonInviteTransaction implements ServerTransaction {
  readonly kind = 'non-INVITE' as const;
  readonly request: SipRequest;
  private current: ServerNonInviteState = 'Trying';
  private last: SipResponse | undefined;
  /** Where responses go: the inbound of the latest copy of the request (NAT bindings may move). */
  private replyTo: Inbound;
  private readonly reliable: boolean;
  private timerJ: TimerHandle | undefined;

  /**
   * @param id transaction key ({@link serverTransactionKey})
   * @param inbound the request as received
   */
  constructor(
    readonly id: string,
    readonly inbound: Inbound,
    private readonly ctx: TransactionContext,
  ) {
    this.request = inbound.message as SipRequest;
    this.replyTo = inbound;
    this.reliable = isReliable(inbound.flow.transport);
  }

  /** Current state (RFC 3261 Figure 8). */
  get state(): ServerNonInviteState {
    return this.current;
  }

  /** Latest provisional or final response sent. */
  get lastResponse(): SipResponse | undefined {
    return this.last;
  }

  /**
   * Sends a response from the TU through the state machine. Responses the current state does not
   * allow (anything after a final, anything when Terminated) are ignored and logged at debug.
   */
  respond(response: SipResponse): void {
    const status = response.status;
    if (!Number.isInteger(status) || status < 100 || status > 699) {
      this.ctx.logger.debug({ tx: this.id, status }, 'invalid status ignored');
      return;
    }
    if (this.current !== 'Trying' && this.current !== 'Proceeding') {
      // RFC 3261 §17.2.2: "Any other final responses passed by the TU to the server transaction
      // MUST be discarded while in the "Completed" state."
      this.ctx.logger.debug({ tx: this.id, state: this.current, status }, 'response not allowed in this state; ignored');
      return;
    }
    this.last = response;
    if (status < 200) {
      // RFC 3261 §17.2.2: "While in the "Trying" state, if the TU passes a provisional response
      // to the server transaction, the server transaction MUST enter the "Proceeding" state. The
      // response MUST be passed to the transport layer for transmission. Any further provisional
      // responses that are received from the TU while in the "Proceeding" state MUST be passed to
      // the transport layer for transmission."
      if (this.current === 'Trying') this.transition('Proceeding', '1xx from TU');
      this.send(response);
      return;
    }
    // RFC 3261 §17.2.2: "If the TU passes a final response (status codes 200-699) to the server
    // while in the "Proceeding" state, the transaction MUST enter the "Completed" state, and the
    // response MUST be passed to the transport layer for transmission." … "When the server
    // transaction enters the "Completed" state, it MUST set Timer J to fire in 64*T1 seconds for
    // unreliable transports, and zero seconds for reliable transports."
    this.transition('Completed', 'final from TU');
    if (!this.send(response)) return;
    const j = timerJ(this.ctx.timers, this.reliable);
    if (j === 0) this.terminateWith('Timer J');
    else this.timerJ = this.ctx.clock.setTimer(j, () => this.onTimerJ());
  }

  /** Feeds a retransmission of the request (matched by the layer). */
  receiveRetransmission(inbound: Inbound): void {
    this.replyTo = inbound;
    switch (this.current) {
      case 'Trying':
        // RFC 3261 §17.2.2: "Once in the "Trying" state, any further request retransmissions are
        // discarded."
        return;
      case 'Proceeding':
        // RFC 3261 §17.2.2: "If a retransmission of the request is received while in the
        // "Proceeding" state, the most recent provisional response that was received from the TU
        // MUST be passed to the transport layer for retransmission."
        if (this.last) this.send(this.last);
        return;
      case 'Completed':
        // RFC 3261 §17.2.2: "While in the "Completed" state, the server transaction MUST pass the
        // final response to the transport layer for retransmission whenever a retransmission of
        // the request is received."
        if (this.last) this.send(this.last);
        return;
      case 'Terminated':
        return;
    }
  }

  /** Cancels every timer without any callback (layer shutdown). */
  close(): void {
    this.ctx.clock.clearTimer(this.timerJ);
    this.timerJ = undefined;
    this.current = 'Terminated';
  }

  private onTimerJ(): void {
    this.timerJ = undefined;
    // RFC 3261 §17.2.2: "The server transaction remains in this state until Timer J fires, at
    // which point it MUST transition to the "Terminated" state."
    if (this.current === 'Completed') this.terminateWith('Timer J');
  }

  private send(response: SipResponse): boolean {
    const result = this.ctx.transport.sendResponse(response, this.replyTo);
    if (result.ok) return true;
    // RFC 3261 §17.2.4: "If the transport layer indicates a failure [...] the server transaction
    // SHOULD inform the TU"; Figure 8: Proceeding and Completed go to Terminated on
    // "Transport Err. / Inform TU".
    this.ctx.logger.debug({ tx: this.id, state: this.current, code: result.code }, 'response send failed');
    this.terminateWith('transport error', 'transport');
    return false;
  }

  private transition(to: ServerNonInviteState, cause: string): boolean {
    const from = this.current;
    if (!legalTransition(TRANSITIONS, from, to, this.ctx.logger, this.id)) return false;
    this.current = to;
    publishTransition('server', 'non-INVITE', this.id, from, to, cause);
    return true;
  }

  private terminateWith(cause: string, error?: 'timeout' | 'transport'): void {
    if (this.current === 'Terminated' || !this.transition('Terminated', cause)) return;
    this.ctx.clock.clearTimer(this.timerJ);
    this.timerJ = undefined;
    this.ctx.serverTerminated(this);
    if (error) this.ctx.serverError(this, error);
  }
}
