/**
 * The public, typed hook API of sipedge: per-transaction control of what the edge writes and
 * where it sends, in the manner of fastify's hooks — a closed list of named hooks
 * ({@link HOOK_NAMES}), each an optional function receiving a context object.
 *
 * | hook            | called                                                                   | can                                        |
 * |-----------------|--------------------------------------------------------------------------|--------------------------------------------|
 * | `onRequest`     | once per request that opens a server transaction (all but ACK, CANCEL),  | reject; set advertised address / send socket for the whole transaction |
 * |                 | after the RFC 3261 §16.3 checks, before Route processing and routing     |                                            |
 * | `beforeForward` | once per branch, when the targets are known, before our Via/Record-Route | reject; set advertised address / send socket for this branch |
 *
 * The two per-transaction controls are OpenSIPS's:
 *
 * - `setAdvertisedAddress(host, port?)` — `set_advertised_address()`: the address written into
 *   our Via sent-by and our (outgoing-side) Record-Route for this transaction, instead of the
 *   inside/outside decision of `nat/advertise.ts`. The edge also recognises that address as
 *   itself when it comes back in a Route header (OpenSIPS needs an `alias` for that).
 * - `forceSendSocket(id)` — `force_send_socket()`: the listening socket the request leaves
 *   from (`udp:10.0.0.10:5060`, as in `listen:` / `show settings`). In-dialog requests of a
 *   dialog set up this way keep using that socket (it is in our Record-Route's flow token).
 *
 * A setting made in `onRequest` applies to every branch; `beforeForward` overrides it for one
 * branch. Requests the edge answers itself (REGISTER, OPTIONS to the edge) are not forwarded,
 * so the two controls have no effect on them; `reject` does. SDP media addresses follow
 * `media.advertise` / the public address, not these controls.
 *
 * (Not to be confused with `src/proxy/hooks.ts`: the proxy's internal extension points, which
 * the media unit implements. These user hooks run before those, so the SDP addresses the media
 * unit writes follow a forced socket.)
 *
 * Hooks may be async. A hook that throws (or rejects, or takes longer than the hook timeout,
 * 5 s) gets the request answered with 500 and is logged; the edge goes on. Invalid arguments to
 * the context's methods throw a {@link HookError} with a stable `code`.
 */
import type { Logger } from '../lib/log.js';
import type { TransportProto } from '../transport/types.js';

/** The closed list of hook names. */
export const HOOK_NAMES = ['onRequest', 'beforeForward'] as const;

/** One of {@link HOOK_NAMES}. */
export type HookName = (typeof HOOK_NAMES)[number];

/** Stable error codes of {@link HookError}. */
export type HookErrorCode =
  /** A hooks module could not be imported or its export is not a hooks object/factory. */
  | 'SIPEDGE_HOOKS_LOAD'
  /** A key that is not in {@link HOOK_NAMES} (a typo such as `onReqest`), or a hook that is not a function. */
  | 'SIPEDGE_HOOK_INVALID'
  /** `forceSendSocket` with an id that is not one of our sockets. */
  | 'SIPEDGE_HOOK_UNKNOWN_SOCKET'
  /** `forceSendSocket` with a socket whose transport or IP family cannot reach the branch's destination. */
  | 'SIPEDGE_HOOK_SOCKET_MISMATCH'
  /** `setAdvertisedAddress` with something that is not an IP address or host name, or a bad port. */
  | 'SIPEDGE_HOOK_BAD_ADDRESS'
  /** `reject` with a status outside 300–699. */
  | 'SIPEDGE_HOOK_BAD_STATUS';

/** Errors of the hook API; `code` is stable, the message is for humans. */
export class HookError extends Error {
  constructor(
    readonly code: HookErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'HookError';
  }
}

/** One of our listening sockets as hooks see it. */
export interface HookSocket {
  /** The socket id as in `listen:` (`udp:10.0.0.10:5060`); pass it to `forceSendSocket`. */
  readonly id: string;
  readonly transport: TransportProto;
  /** Bound address (may be a wildcard `0.0.0.0` / `::`). */
  readonly address: string;
  /** Bound port (the real one when `listen:` said port 0). */
  readonly port: number;
  /** The socket's `as` address, if configured. */
  readonly advertised?: { readonly host: string; readonly port: number };
}

/** An address with transport, IPv6 without brackets. */
export interface HookAddress {
  readonly transport: TransportProto;
  readonly address: string;
  readonly port: number;
}

/** A read-only view of the request as received (before the edge changes anything). */
export interface HookRequest {
  readonly method: string;
  /** Request-URI as received. */
  readonly uri: string;
  /** First value of a header (full or compact name, any case), or undefined. */
  header(name: string): string | undefined;
  /** Every value of a header, in order (comma-separated values split). */
  headerValues(name: string): string[];
}

/** What every hook context offers. */
export interface HookContextBase {
  readonly request: HookRequest;
  /** Where the request came from (after NAT: the received address and rport). */
  readonly source: HookAddress;
  /** The socket it arrived on. */
  readonly socket: HookSocket;
  /** Every listening socket of the edge. */
  readonly sockets: readonly HookSocket[];
  /** Logger of the edge (pino), with the Call-ID bound. */
  readonly log: Logger;
  /** The request is in a dialog (its To header has a tag). */
  readonly inDialog: boolean;
  /**
   * OpenSIPS `set_advertised_address()`: write `host[:port]` as our Via sent-by and Record-Route
   * for this transaction (onRequest) or branch (beforeForward). `port` defaults to the sending
   * socket's advertised port.
   * @throws HookError `SIPEDGE_HOOK_BAD_ADDRESS`
   */
  setAdvertisedAddress(host: string, port?: number): void;
  /**
   * OpenSIPS `force_send_socket()`: send from this socket (its id, see {@link HookSocket.id}).
   * @throws HookError `SIPEDGE_HOOK_UNKNOWN_SOCKET`, or (beforeForward) `SIPEDGE_HOOK_SOCKET_MISMATCH`
   */
  forceSendSocket(socketId: string): void;
  /**
   * Answer the request with `status` (300–699) instead of forwarding it. The remaining hooks
   * are not called.
   * @throws HookError `SIPEDGE_HOOK_BAD_STATUS`
   */
  reject(status: number, reason?: string): void;
}

/** Context of {@link EdgeHooks.onRequest}. */
export type RequestHookContext = HookContextBase;

/** Context of {@link EdgeHooks.beforeForward}: one branch. */
export interface ForwardHookContext extends HookContextBase {
  readonly target: {
    /** Request-URI of this branch. */
    readonly uri: string;
    /** Where the branch goes (a NATed phone: its received address). */
    readonly destination: HookAddress;
    /** The registered AOR the target came from, when it came from the location service. */
    readonly aor?: string;
  };
  /** What the transaction-level settings (from onRequest) already chose, if anything. */
  readonly chosen: { readonly advertised?: { host: string; port?: number }; readonly socketId?: string };
}

/** A hook's return: nothing (or a promise of nothing). */
export type HookResult = void | Promise<void>;

/**
 * The hooks of a sipedge module. Every member is optional; any other key is an error
 * (`SIPEDGE_HOOK_INVALID`), so a typo never goes unnoticed.
 */
export interface EdgeHooks {
  onRequest?(ctx: RequestHookContext): HookResult;
  beforeForward?(ctx: ForwardHookContext): HookResult;
}

/**
 * What a hooks module exports (as `default`, or named exports `onRequest` / `beforeForward`):
 * a hooks object, or a factory that receives `hooks.options` from the config.
 */
export type HooksExport = EdgeHooks | ((options: Record<string, unknown>) => EdgeHooks | Promise<EdgeHooks>);

/** Identity function that types a hooks object (like fastify's plugin helpers). */
export function defineHooks<T extends EdgeHooks>(hooks: T): T {
  return hooks;
}
