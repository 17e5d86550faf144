/**
 * Non-INVITE client transaction: RFC 3261 §17.1.2 (Figure 6).
 *
 * ```
 * Trying ──1xx──▶ Proceeding ──200-699──▶ Completed ──Timer K──▶ Terminated
 *    └──────────200-699─────────────────────▲
 * Trying/Proceeding ──Timer F / transport error──▶ Terminated
 * ```
 */
import type { TimerHandle } from '../lib/clock.js';
import type { SipRequest, SipResponse } from '../sip/message.js';
import type { Destination, Inbound, SendResult } from '../transport/types.js';
import type { ClientNonInviteState, ClientTransaction, ClientTransactionHandler } from './types.js';
import { legalTransition, logTuError, publishTransition, type TransactionContext } from './context.js';
import { isReliable, timeout64T1, timerT4OrZero } from './timers.js';

/** Legal edges of RFC 3261 Figure 6. */
const TRANSITIONS: Readonly<Record<ClientNonInviteState, readonly ClientNonInviteState[]>> = {
  Trying: ['Proceeding', 'Completed', 'Terminated'],
  Proceeding: ['Completed', 'Terminated'],
  Completed: ['Terminated'],
  Terminated: [],
};

/**
 * One non-INVITE client transaction. Owns Timers E, F and K (via the injected clock).
 * Created and started by {@link TransactionLayer.sendRequest}.
 */
export class ClientNonInviteTransaction implements ClientTransaction {
  readonly kind = 'non-INVITE' as const;
  private current: ClientNonInviteState = 'Trying';
  private readonly reliable: boolean;
  private timerE: TimerHandle | undefined;
  /** Current Timer E interval, ms: T1, doubling, capped at T2 (T2 in Proceeding). */
  private timerEInterval = 0;
  private timerF: TimerHandle | undefined;
  private timerK: TimerHandle | undefined;

  constructor(
    readonly id: string,
    readonly request: SipRequest,
    readonly destination: Destination,
    private readonly handler: ClientTransactionHandler,
    private readonly ctx: TransactionContext,
  ) {
    this.reliable = isReliable(destination.transport);
  }

  /** Current state (RFC 3261 Figure 6). */
  get state(): ClientNonInviteState {
    return this.current;
  }

  /** Sends the request and starts Timer E (unreliable only) and Timer F. */
  start(): void {
    // RFC 3261 §17.1.2.2: "The "Trying" state is entered when the TU initiates a new client
    // transaction with a request. When entering this state, the client transaction SHOULD set
    // timer F to fire in 64*T1 seconds. The request MUST be passed to the transport layer for
    // transmission. If an unreliable transport is in use, the client transaction MUST set timer E
    // to fire in T1 seconds."
    if (!this.send()) return;
    const { T1 } = this.ctx.timers;
    if (!this.reliable) {
      this.timerEInterval = T1;
      this.timerE = this.ctx.clock.setTimer(T1, () => this.onTimerE());
    }
    this.timerF = this.ctx.clock.setTimer(timeout64T1(this.ctx.timers), () => this.onTimerF());
  }

  /** Feeds a response matched to this transaction (RFC 3261 §17.1.3). */
  receiveResponse(response: SipResponse, inbound: Inbound): void {
    const status = response.status;
    switch (this.current) {
      case 'Trying':
      case 'Proceeding':
        if (status < 200) {
          // RFC 3261 §17.1.2.2: "If a provisional response is received while in the "Trying"
          // state, the response MUST be passed to the TU, and then the client transaction SHOULD
          // move to the "Proceeding" state." … "If a provisional response is received while in
          // the "Proceeding" state, it MUST be passed to the TU."
          this.passUp(response, inbound);
          if (this.current === 'Trying') this.transition('Proceeding', '1xx');
          return;
        }
        // RFC 3261 §17.1.2.2: "If a final response (status codes 200-699) is received while in
        // the "Trying" state, the response MUST be passed to the TU, and the client transaction
        // MUST transition to the "Completed" state." … "Once the client transaction enters the
        // "Completed" state, it MUST set Timer K to fire in T4 seconds for unreliable transports,
        // and zero seconds for reliable transports."
        this.ctx.clock.clearTimer(this.timerE);
        this.ctx.clock.clearTimer(this.timerF);
        this.timerE = this.timerF = undefined;
        this.transition('Completed', 'final response');
        this.passUp(response, inbound);
        if (this.state !== 'Completed') return; // the TU terminated us from its callback
        {
          const k = timerT4OrZero(this.ctx.timers, this.reliable);
          if (k === 0) this.terminateWith('Timer K');
          else this.timerK = this.ctx.clock.setTimer(k, () => this.onTimerK());
        }
        return;
      case 'Completed':
        // RFC 3261 §17.1.2.2: "The "Completed" state exists to buffer any additional response
        // retransmissions that may be received" — absorbed, not passed up.
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

  private onTimerE(): void {
    this.timerE = undefined;
    const { T2 } = this.ctx.timers;
    if (this.current === 'Trying') {
      // RFC 3261 §17.1.2.2: "If timer E fires while still in this state, the timer is reset, but
      // this time with a value of MIN(2*T1, T2). When the timer fires again, it is reset to a
      // MIN(4*T1, T2). This process continues so that retransmissions occur with an
      // exponentially increasing interval that caps at T2."
      if (!this.send()) return;
      this.timerEInterval = Math.min(this.timerEInterval * 2, T2);
    } else if (this.current === 'Proceeding') {
      // RFC 3261 §17.1.2.2: "If Timer E fires while in the "Proceeding" state, the request MUST
      // be passed to the transport layer for retransmission, and Timer E MUST be reset with a
      // value of T2 seconds."
      if (!this.send()) return;
      this.timerEInterval = T2;
    } else {
      return;
    }
    this.timerE = this.ctx.clock.setTimer(this.timerEInterval, () => this.onTimerE());
  }

  private onTimerF(): void {
    this.timerF = undefined;
    // RFC 3261 §17.1.2.2: "If Timer F fires while the client transaction is still in the "Trying"
    // state, the client transaction SHOULD inform the TU about the timeout, and then it SHOULD
    // enter the "Terminated" state." … "If timer F fires while in the "Proceeding" state, the TU
    // MUST be informed of a timeout, and the client transaction MUST transition to the
    // terminated state."
    if (this.current === 'Trying' || this.current === 'Proceeding') {
      this.terminateWith('Timer F', () => this.handler.onTimeout());
    }
  }

  private onTimerK(): void {
    this.timerK = undefined;
    // RFC 3261 §17.1.2.2: "If Timer K fires while in this state, the client transaction MUST
    // transition to the "Terminated" state."
    if (this.current === 'Completed') this.terminateWith('Timer K');
  }

  private send(): boolean {
    const result = this.ctx.transport.sendRequest(this.request, this.destination);
    if (result.ok) return true;
    this.onTransportError(result);
    return false;
  }

  private onTransportError(result: SendResult): void {
    // RFC 3261 §17.1.4: "the client transaction SHOULD inform the TU that a transport failure has
    // occurred, and the client transaction SHOULD transition directly to the "Terminated" state."
    this.terminateWith('transport error', () => this.handler.onTransportError(result));
  }

  private passUp(response: SipResponse, inbound: Inbound): void {
    try {
      this.handler.onResponse(response, inbound);
    } catch (err) {
      logTuError(this.ctx.logger, this.id, 'onResponse', err);
    }
  }

  private clearAllTimers(): void {
    this.ctx.clock.clearTimer(this.timerE);
    this.ctx.clock.clearTimer(this.timerF);
    this.ctx.clock.clearTimer(this.timerK);
    this.timerE = this.timerF = this.timerK = undefined;
  }

  private transition(to: ClientNonInviteState, cause: string): boolean {
    const from = this.current;
    if (!legalTransition(TRANSITIONS, from, to, this.ctx.logger, this.id)) return false;
    this.current = to;
    publishTransition('client', 'non-INVITE', this.id, from, to, cause);
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
