/**
 * Public shapes of the transaction layer (RFC 3261 §17, with RFC 6026).
 * The implementation lives in `transaction/layer.ts` (class `TransactionLayer`) and the
 * per-kind state machines in `transaction/*_fsm.ts`.
 */
import type { SipRequest, SipResponse } from '../sip/message.js';
import type { Destination, Inbound, SendResult } from '../transport/types.js';

/** RFC 3261 §17 timer base values, ms. Defaults T1=500, T2=4000, T4=5000. */
export interface TimerSettings {
  T1: number;
  T2: number;
  T4: number;
}

/** State names as in RFC 3261 Figures 5–8 and RFC 6026 (`Accepted`). */
export type ClientInviteState = 'Calling' | 'Proceeding' | 'Accepted' | 'Completed' | 'Terminated';
export type ClientNonInviteState = 'Trying' | 'Proceeding' | 'Completed' | 'Terminated';
export type ServerInviteState = 'Proceeding' | 'Accepted' | 'Completed' | 'Confirmed' | 'Terminated';
export type ServerNonInviteState = 'Trying' | 'Proceeding' | 'Completed' | 'Terminated';

/** What the transaction layer needs from the transport layer. */
export interface TransactionTransport {
  /** Sends a request to a destination (client transactions, and ACK for non-2xx). */
  sendRequest(request: SipRequest, dest: Destination): SendResult;
  /** Sends a response for a server transaction per RFC 3261 §18.2.2 / RFC 3581, using the request's inbound flow. */
  sendResponse(response: SipResponse, requestInbound: Inbound): SendResult;
}

/** Callbacks of a client transaction's transaction user. */
export interface ClientTransactionHandler {
  /** Every response passed up (1xx, 2xx incl. retransmitted 2xx in Accepted, 3xx–6xx once). */
  onResponse(response: SipResponse, inbound: Inbound): void;
  /** Timer B or F fired (RFC 3261 §17.1.1.2 / §17.1.2.2): treat as 408. */
  onTimeout(): void;
  /** The transport could not send the request (RFC 3261 §17.1.4): treat as 503. */
  onTransportError(result: SendResult): void;
  /** The transaction reached Terminated (for cleanup); optional. */
  onTerminated?(): void;
}

export interface ClientTransaction {
  readonly id: string;
  readonly kind: 'INVITE' | 'non-INVITE';
  readonly request: SipRequest;
  readonly destination: Destination;
  readonly state: ClientInviteState | ClientNonInviteState;
  /** Stops the transaction's timers and removes it (for CANCEL flow cleanup; normally not needed). */
  terminate(): void;
}

export interface ServerTransaction {
  readonly id: string;
  readonly kind: 'INVITE' | 'non-INVITE';
  readonly request: SipRequest;
  readonly inbound: Inbound;
  readonly state: ServerInviteState | ServerNonInviteState;
  /** Sends a response through the state machine (retransmissions handled per §17.2). */
  respond(response: SipResponse): void;
  /** Latest provisional or final response sent, if any. */
  readonly lastResponse: SipResponse | undefined;
}

/** The transaction user (proxy/registrar core) as seen by the transaction layer. */
export interface TransactionUser {
  /** A new request that created a server transaction (not a retransmission; not ACK). */
  onRequest(tx: ServerTransaction): void;
  /**
   * A request no server transaction takes: an ACK for a 2xx (end-to-end, RFC 3261 §17.2.3 /
   * RFC 6026), or any ACK not matching a transaction. The TU forwards it statelessly.
   */
  onStrayAck(inbound: Inbound): void;
  /** A response that matched no client transaction (e.g. a 2xx retransmission after Terminated); the proxy forwards it statelessly (RFC 3261 §16.7 step 3 / RFC 6026). */
  onStrayResponse(inbound: Inbound): void;
  /** Server transaction timed out waiting for ACK (Timer H) or transport failed; optional. */
  onServerTransactionError?(tx: ServerTransaction, reason: 'timeout' | 'transport'): void;
}
