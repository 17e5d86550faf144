/**
 * `received` / `rport` handling: stamping the top Via of incoming requests (RFC 3261 §18.2.1,
 * RFC 3581 §4) and choosing where a response goes (RFC 3261 §18.2.2, RFC 3581 §4).
 * Pure functions, no I/O.
 */
import { getHeader, replaceFirstHeaderValue } from '../sip/headers.js';
import type { SipRequest, SipResponse } from '../sip/message.js';
import { parseViaShared } from '../sip/via.js';
import { formatHostPort as formatUriHostPort } from '../sip/uri.js';
import { defaultPort, isReliable, stripBrackets, stripZone } from './address.js';
import type { Destination, Flow, HostPort } from './types.js';

/**
 * Stamps the top Via of a received request with the address it really came from, like
 * Kamailio's `force_rport()` applied to every request:
 *
 * - `rport=<source port>` is always set, also when the UA did not send `rport` (RFC 3581 §4
 *   behaviour forced for every client, so responses cross the client's NAT).
 * - `received=<source ip>` is always set, even when it equals the sent-by host: RFC 3581 §4
 *   requires it whenever `rport` is filled in ("MUST insert a received parameter … even if
 *   it is identical"), and a single rule keeps the registrar/NAT tests simple. IPv6 is
 *   written without brackets (the `IPv6address` form of RFC 3261 §25.1; RFC 5118 §4.5), and
 *   without a zone index.
 *
 * Existing `received`/`rport` parameters are replaced in place (`parseVia` lower-cases
 * parameter names); other parameters keep their order.
 *
 * @param req the request, modified in place (its first Via value is rewritten)
 * @param source the packet's source address and port
 * @returns false when there is no top Via or it cannot be parsed (the caller drops the request)
 */
export function stampReceived(req: SipRequest, source: HostPort): boolean {
  const top = getHeader(req, 'via');
  if (top === undefined) return false;
  const via = parseViaShared(top);
  if (via === undefined) return false;
  // formatVia with received/rport set, written directly (the memo's Via is shared, read-only).
  const received = stripZone(source.address);
  const rport = String(source.port);
  let out = via.protocol + '/' + via.transport + ' ' + formatUriHostPort(via.host, via.port);
  let haveReceived = false;
  let haveRport = false;
  const params = via.params;
  for (const k in params) {
    if (!Object.prototype.hasOwnProperty.call(params, k)) continue;
    if (k === 'received') {
      out += ';received=' + received;
      haveReceived = true;
    } else if (k === 'rport') {
      out += ';rport=' + rport;
      haveRport = true;
    } else {
      const v = params[k];
      out += v === null ? ';' + k : ';' + k + '=' + v;
    }
  }
  if (!haveReceived) out += ';received=' + received;
  if (!haveRport) out += ';rport=' + rport;
  return replaceFirstHeaderValue(req, 'via', out);
}

/** A port parameter value (`rport=5062`), or undefined when absent, empty or invalid. */
function portParam(v: string | null | undefined): number | undefined {
  if (v === null || v === undefined || !/^\d{1,5}$/.test(v)) return undefined;
  const n = Number(v);
  return n > 0 && n <= 65535 ? n : undefined;
}

/**
 * Where to send a response, from its top Via and the flow its request arrived on:
 * RFC 3261 §18.2.2 with RFC 3581 §4. The response always leaves from the socket the request
 * arrived on (`socketId`).
 *
 * - Reliable transports: on the request's connection (`connectionId`) while it is open;
 *   otherwise (RFC 3261 §18.2.2) to `received` (or the sent-by host) at the sent-by port, or
 *   the transport's default port (5060, TLS 5061), without a `connectionId` (so the transport
 *   may reuse another connection to that address or open one).
 * - Unreliable: `maddr` if present, at the sent-by port or 5060; else `received` at the `rport`
 *   value (RFC 3581 §4); else `received` at the sent-by port or 5060; with no `received`, the
 *   sent-by host at `rport` or the sent-by port.
 * - A response whose top Via cannot be read goes back to the flow's remote address.
 *
 * `received`/`maddr` written as an IPv6 reference (`[2001:db8::1]`, RFC 5118 §4.5) are accepted.
 *
 * @param res the response to send (its top Via is the request's, as stamped on arrival)
 * @param requestFlow the flow the request arrived on
 * @param connectionOpen tells whether a connection is still open; when omitted, a flow's
 *   `connectionId` is assumed open
 */
export function responseDestination(res: SipResponse, requestFlow: Flow, connectionOpen?: (connectionId: number) => boolean): Destination {
  const transport = requestFlow.transport;
  const socketId = requestFlow.local.socketId;
  const reliable = isReliable(transport);
  const cid = requestFlow.connectionId;
  if (reliable && cid !== undefined && (connectionOpen === undefined || connectionOpen(cid))) {
    return { transport, address: requestFlow.remote.address, port: requestFlow.remote.port, socketId, connectionId: cid };
  }
  const top = getHeader(res, 'via');
  const via = top === undefined ? undefined : parseViaShared(top);
  if (via === undefined) {
    return { transport, address: requestFlow.remote.address, port: requestFlow.remote.port, socketId };
  }
  const params = via.params;
  const sentByHost = via.host; // lower-cased, IPv6 without brackets
  const sentByPort = via.port ?? defaultPort(transport);
  const receivedRaw = params.received;
  const received = receivedRaw ? stripBrackets(receivedRaw) : undefined;
  if (reliable) {
    // RFC 3261 §18.2.2: "the server SHOULD open a connection to the IP address in the received
    // parameter, if present, using the port in the sent-by value, or the default port".
    return { transport, address: received ?? sentByHost, port: sentByPort, socketId };
  }
  const maddr = params.maddr;
  if (maddr) {
    // RFC 3261 §18.2.2: "if the sent-by contains a maddr parameter, the response MUST be
    // forwarded to the address listed there, using the port indicated in sent-by, or port 5060".
    return { transport, address: stripBrackets(maddr), port: sentByPort, socketId };
  }
  const rport = portParam(params.rport);
  // RFC 3581 §4: "send it to the IP address indicated in the received parameter, and the port
  // indicated in the rport parameter".
  if (received) return { transport, address: received, port: rport ?? sentByPort, socketId };
  return { transport, address: sentByHost, port: rport ?? sentByPort, socketId };
}
