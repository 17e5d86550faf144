/**
 * The transaction layer (RFC 3261 §17, with RFC 6026): matches every inbound message to its
 * transaction with one `Map` lookup, creates server transactions for new requests, runs client
 * transactions for the TU, and routes what matches nothing (stray ACKs and responses) to the TU.
 *
 * All timers run on the injected {@link Clock}; {@link TransactionLayer.close} cancels them all.
 */
import type { Clock } from '../lib/clock.js';
import { silentLogger, type Logger } from '../lib/log.js';
import type { SipRequest, SipResponse } from '../sip/message.js';
import type { Destination, Inbound } from '../transport/types.js';
import type {
  ClientTransaction,
  ClientTransactionHandler,
  ServerTransaction,
  TimerSettings,
  TransactionTransport,
  TransactionUser,
} from './types.js';
import { logTuError, type TransactionContext } from './context.js';
import { cancelTargetMatch, clientTransactionKey, serverTransactionMatch, toTagOf } from './key.js';
import { resolveTimerSettings } from './timers.js';
import { ClientInviteTransaction } from './client_invite_fsm.js';
import { ClientNonInviteTransaction } from './client_noninvite_fsm.js';
import { ServerInviteTransaction } from './server_invite_fsm.js';
import { ServerNonInviteTransaction } from './server_noninvite_fsm.js';

/** Options of {@link TransactionLayer}. */
export interface TransactionLayerOptions {
  clock: Clock;
  transport: TransactionTransport;
  tu: TransactionUser;
  /** T1/T2/T4 overrides, ms (defaults 500/4000/5000, RFC 3261 Table 4). */
  timers?: Partial<TimerSettings>;
  /**
   * ms an INVITE server transaction waits for the TU's first response before sending
   * 100 (Trying) itself (RFC 3261 §17.2.1: "unless it knows that the TU will generate a provisional
   * or final response within 200 ms"). Default 200; 0 disables.
   */
  autoTryingMs?: number;
  logger?: Logger;
}

/** Stable codes of the errors {@link TransactionLayer.sendRequest} throws (TU programming errors). */
export type TransactionLayerErrorCode = 'NO_BRANCH' | 'DUPLICATE_TRANSACTION' | 'CLOSED';

/** Thrown by {@link TransactionLayer.sendRequest} for requests no transaction can be built for. */
export class TransactionLayerError extends Error {
  constructor(
    readonly code: TransactionLayerErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'TransactionLayerError';
  }
}

type AnyClientTransaction = ClientInviteTransaction | ClientNonInviteTransaction;
type AnyServerTransaction = ServerInviteTransaction | ServerNonInviteTransaction;

/** Default wait before the automatic 100 (Trying), ms (RFC 3261 §17.2.1). */
export const DEFAULT_AUTO_TRYING_MS = 200;

/**
 * RFC 3261 §17 transaction layer. One instance per edge; owns every transaction timer.
 */
export class TransactionLayer {
  private readonly clients = new Map<string, AnyClientTransaction>();
  private readonly servers = new Map<string, AnyServerTransaction>();
  private readonly ctx: TransactionContext;
  private readonly tu: TransactionUser;
  private readonly logger: Logger;
  private readonly autoTryingMs: number;
  private closed = false;

  constructor(opts: TransactionLayerOptions) {
    this.tu = opts.tu;
    this.logger = opts.logger ?? silentLogger;
    this.autoTryingMs = opts.autoTryingMs ?? DEFAULT_AUTO_TRYING_MS;
    const clients = this.clients;
    const servers = this.servers;
    const tu = this.tu;
    const logger = this.logger;
    this.ctx = {
      clock: opts.clock,
      transport: opts.transport,
      timers: resolveTimerSettings(opts.timers),
      logger,
      clientTerminated(tx: ClientTransaction): void {
        if (clients.get(tx.id) === tx) clients.delete(tx.id);
      },
      serverTerminated(tx: ServerTransaction): void {
        if (servers.get(tx.id) === tx) servers.delete(tx.id);
      },
      serverError(tx: ServerTransaction, reason: 'timeout' | 'transport'): void {
        try {
          tu.onServerTransactionError?.(tx, reason);
        } catch (err) {
          logTuError(logger, tx.id, 'onServerTransactionError', err);
        }
      },
    };
  }

  /** The effective timer settings, ms. */
  get timers(): Readonly<TimerSettings> {
    return this.ctx.timers;
  }

  /**
   * Feeds one inbound message. Requests: a retransmission goes to its server transaction; an ACK
   * for a Completed INVITE server transaction confirms it; an ACK matching nothing or an Accepted
   * transaction goes to `tu.onStrayAck`; any other request creates a server transaction and is
   * passed to `tu.onRequest`. Responses: to the matching client transaction, else
   * `tu.onStrayResponse`. Never throws.
   */
  receive(inbound: Inbound): void {
    if (this.closed) return;
    try {
      const msg = inbound.message;
      if (msg.type === 'request') this.receiveRequest(msg, inbound);
      else this.receiveResponse(msg, inbound);
    } catch (err) {
      this.logger.error({ err }, 'transaction layer: unexpected error while receiving');
    }
  }

  /**
   * Starts a client transaction for `request` (which already carries its top Via with a branch;
   * the layer adds nothing) towards `dest`. The request is sent before this returns; a transport
   * failure is reported through `handler.onTransportError` synchronously, before the return.
   *
   * An ACK is not a transaction (RFC 3261 §17.1.1.3: the ACK for a 2xx is the TU's own business):
   * it is sent once, statelessly, and the returned object is already Terminated.
   *
   * @throws TransactionLayerError `NO_BRANCH` when the top Via has no branch,
   *   `DUPLICATE_TRANSACTION` when a live client transaction has the same branch and method,
   *   `CLOSED` after {@link close}.
   */
  sendRequest(request: SipRequest, dest: Destination, handler: ClientTransactionHandler): ClientTransaction {
    if (this.closed) throw new TransactionLayerError('CLOSED', 'transaction layer is closed');
    const key = clientTransactionKey(request);
    if (key === undefined) throw new TransactionLayerError('NO_BRANCH', `${request.method} has no top Via branch`);
    if (request.method === 'ACK') return this.sendStatelessAck(key, request, dest, handler);
    if (this.clients.has(key)) {
      throw new TransactionLayerError('DUPLICATE_TRANSACTION', `a client transaction ${JSON.stringify(key)} already exists`);
    }
    const tx =
      request.method === 'INVITE'
        ? new ClientInviteTransaction(key, request, dest, handler, this.ctx)
        : new ClientNonInviteTransaction(key, request, dest, handler, this.ctx);
    this.clients.set(key, tx);
    tx.start();
    return tx;
  }

  /**
   * The INVITE server transaction a CANCEL refers to (RFC 3261 §9.2), in whatever state it is, or
   * `undefined` when there is none (the TU then answers the CANCEL with 481).
   */
  findInviteServerTransaction(cancel: SipRequest): ServerTransaction | undefined {
    const match = cancelTargetMatch(cancel);
    if (match === undefined) return undefined;
    const tx = this.servers.get(match.key);
    if (tx === undefined || tx.kind !== 'INVITE') return undefined;
    // RFC 3261 §9.2 (RFC 2543 peers): the To tag must match too.
    if (match.rfc2543 && toTagOf(cancel) !== toTagOf(tx.request)) return undefined;
    return tx;
  }

  /** Live (not Terminated) transactions. */
  counts(): { client: number; server: number } {
    return { client: this.clients.size, server: this.servers.size };
  }

  /** Cancels every timer of every transaction and forgets them; later input is ignored. */
  close(): void {
    this.closed = true;
    for (const tx of this.clients.values()) tx.close();
    for (const tx of this.servers.values()) tx.close();
    this.clients.clear();
    this.servers.clear();
  }

  private receiveRequest(req: SipRequest, inbound: Inbound): void {
    const match = serverTransactionMatch(req);
    if (req.method === 'ACK') {
      const tx = match === undefined ? undefined : this.servers.get(match.key);
      if (tx !== undefined && tx.kind === 'INVITE') {
        // RFC 3261 §17.2.3 (RFC 2543 peers): "the To tag of the ACK matches the To tag of the
        // response sent by the server transaction".
        const legacyMismatch =
          tx.rfc2543 && (tx.lastResponse === undefined || toTagOf(req) !== toTagOf(tx.lastResponse));
        if (!legacyMismatch && tx.receiveAck(inbound) === 'absorbed') return;
      }
      // RFC 6026 §8.7: ACKs in "Accepted" "MUST be passed directly to the TU"; an ACK matching no
      // transaction (the ACK for a 2xx, RFC 3261 §17.2.3) also goes to the TU core.
      this.strayAck(inbound);
      return;
    }
    if (match === undefined) {
      this.logger.debug({ method: req.method }, 'request without usable Via/CSeq dropped by transaction layer');
      return;
    }
    const existing = this.servers.get(match.key);
    if (existing !== undefined) {
      existing.receiveRetransmission(inbound);
      return;
    }
    const tx =
      req.method === 'INVITE'
        ? new ServerInviteTransaction(match.key, inbound, this.ctx, match.rfc2543)
        : new ServerNonInviteTransaction(match.key, inbound, this.ctx);
    this.servers.set(match.key, tx);
    try {
      this.tu.onRequest(tx);
    } catch (err) {
      logTuError(this.logger, tx.id, 'onRequest', err);
    }
    if (tx.kind === 'INVITE' && !this.closed) tx.armAutoTrying(this.autoTryingMs);
  }

  private receiveResponse(res: SipResponse, inbound: Inbound): void {
    const key = clientTransactionKey(res);
    const tx = key === undefined ? undefined : this.clients.get(key);
    if (tx !== undefined) {
      tx.receiveResponse(res, inbound);
      return;
    }
    // RFC 6026 §8.4 / RFC 3261 §16.7 step 3: a response matching no client transaction goes to
    // the TU core (a proxy forwards stray 2xx statelessly).
    try {
      this.tu.onStrayResponse(inbound);
    } catch (err) {
      logTuError(this.logger, key ?? '', 'onStrayResponse', err);
    }
  }

  private strayAck(inbound: Inbound): void {
    try {
      this.tu.onStrayAck(inbound);
    } catch (err) {
      logTuError(this.logger, '', 'onStrayAck', err);
    }
  }

  private sendStatelessAck(key: string, request: SipRequest, dest: Destination, handler: ClientTransactionHandler): ClientTransaction {
    const result = this.ctx.transport.sendRequest(request, dest);
    const tx: ClientTransaction = {
      id: key,
      kind: 'non-INVITE',
      request,
      destination: dest,
      state: 'Terminated',
      terminate(): void {},
    };
    try {
      if (!result.ok) handler.onTransportError(result);
      handler.onTerminated?.();
    } catch (err) {
      logTuError(this.logger, key, 'ACK handler', err);
    }
    return tx;
  }
}
