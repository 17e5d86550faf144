/**
 * What every transaction state machine receives from the {@link TransactionLayer}: the clock,
 * the transport, the timer settings and the hooks the layer uses to keep its maps in sync.
 * One context object is shared by all transactions of a layer (no per-transaction closures).
 */
import { channel } from 'node:diagnostics_channel';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { ClientTransaction, ServerTransaction, TimerSettings, TransactionTransport } from './types.js';

/** Shared environment of the transaction state machines (internal to `transaction/`). */
export interface TransactionContext {
  readonly clock: Clock;
  readonly transport: TransactionTransport;
  /** RFC 3261 T1/T2/T4, ms. */
  readonly timers: TimerSettings;
  readonly logger: Logger;
  /** Called exactly once when a client transaction reaches Terminated (not on `close()`). */
  clientTerminated(tx: ClientTransaction): void;
  /** Called exactly once when a server transaction reaches Terminated (not on `close()`). */
  serverTerminated(tx: ServerTransaction): void;
  /** Timer H fired or the transport failed (RFC 3261 §17.2.1, §17.2.4): forwarded to the TU. */
  serverError(tx: ServerTransaction, reason: 'timeout' | 'transport'): void;
}

/** Payload of the `sipedge:transaction:state` diagnostics channel. */
export interface TransactionStateEvent {
  id: string;
  kind: 'INVITE' | 'non-INVITE';
  side: 'client' | 'server';
  from: string;
  to: string;
  /** What caused the transition (`1xx`, `Timer B`, `transport error`, …). */
  cause: string;
}

/**
 * `diagnostics_channel` on which every state transition is published (only built when someone
 * subscribes, so it costs nothing on the hot path otherwise).
 */
export const transactionStateChannel = channel('sipedge:transaction:state');

/** Publishes a transition if anyone listens. */
export function publishTransition(
  side: 'client' | 'server',
  kind: 'INVITE' | 'non-INVITE',
  id: string,
  from: string,
  to: string,
  cause: string,
): void {
  if (transactionStateChannel.hasSubscribers) {
    const ev: TransactionStateEvent = { id, kind, side, from, to, cause };
    transactionStateChannel.publish(ev);
  }
}

/**
 * Checks a transition against an explicit table of the legal edges of an RFC figure. An illegal
 * edge is a bug in this directory; it is logged and refused rather than thrown.
 */
export function legalTransition<S extends string>(
  table: Readonly<Record<S, readonly S[]>>,
  from: S,
  to: S,
  logger: Logger,
  id: string,
): boolean {
  if (table[from].includes(to)) return true;
  logger.error({ tx: id, from, to }, 'illegal transaction state transition refused');
  return false;
}

/** Logs an exception thrown by a transaction user callback; the transaction layer keeps going. */
export function logTuError(logger: Logger, id: string, callback: string, err: unknown): void {
  logger.error({ tx: id, callback, err }, 'transaction user callback threw');
}
