/**
 * The closed, typed list of extension hooks of the proxy core ({@link ProxyHooks}). The proxy
 * calls them at fixed points of RFC 3261 §16 processing; the media/dialog layer
 * (`media_session.ts`) implements them. Every hook is optional and must never throw or reject:
 * a hook that fails leaves the message as it was.
 *
 * | hook            | called                                                                 |
 * |-----------------|------------------------------------------------------------------------|
 * | `request`       | after routing (§16.5 targets known), before any branch starts           |
 * | `forward`       | per branch, on the copy about to be forwarded (§16.6, after step 8)     |
 * | `response`      | per response received on a branch, before §16.7 processing             |
 * | `inviteFinal`   | when the proxy sends the best non-2xx final response of an INVITE (§16.7 step 6) |
 * | `ack`           | on an ACK for a 2xx about to be forwarded statelessly (§16.11)          |
 * | `strayResponse` | on a response forwarded statelessly (no client transaction left)        |
 */
import type { SipRequest, SipResponse } from '../sip/message.js';
import type { ServerTransaction } from '../transaction/types.js';
import type { Destination, Inbound } from '../transport/types.js';
import type { Binding } from '../store/types.js';

/** One forwarding target as the hooks see it (structurally the proxy's own `Target`). */
export interface HookTarget {
  /** Request-URI of the branch. */
  uri: string;
  /** Where the branch goes; the same object is later passed to {@link ProxyHooks.forward}. */
  dest: Destination;
  /** Binding the target came from (location service), if any. */
  binding?: Binding;
}

/**
 * What {@link ProxyHooks.request} decided: `true` = forward, `false` = the request was already
 * answered (or must be dropped), `{status, reason}` = the proxy rejects it with this status.
 */
export type RequestHookResult = boolean | { status: number; reason: string };

/** Extension points of the proxy core. */
export interface ProxyHooks {
  /** A request is about to be proxied to `targets` (every serial group, flattened). */
  request?(tx: ServerTransaction, targets: HookTarget[]): RequestHookResult | Promise<RequestHookResult>;
  /** The copy of `tx.request` for one branch (our Via on top) may be changed in place. */
  forward?(tx: ServerTransaction, forwarded: SipRequest, dest: Destination): void;
  /**
   * A response received on a branch. Returns undefined to let the proxy go on at once with
   * `res`, or a promise of the response to go on with (responses of one call keep their order).
   */
  response?(tx: ServerTransaction, forwarded: SipRequest, dest: Destination, res: SipResponse): Promise<SipResponse> | undefined;
  /** The proxy sends `res` (≥ 300) as the final response to the INVITE of `tx`. */
  inviteFinal?(tx: ServerTransaction, res: SipResponse): void;
  /** An ACK for a 2xx, about to be forwarded to `dest` (may be changed in place). */
  ack?(forwarded: SipRequest, inbound: Inbound, dest: Destination): Promise<void> | undefined;
  /** A response about to be forwarded statelessly (may be changed in place, synchronously). */
  strayResponse?(res: SipResponse): void;
}
