/**
 * `nat.rewriteContact`: Contact rewriting for UAs behind NAT, like Kamailio's
 * `fix_nated_contact()` and Asterisk's `nat=force_rport,comedia`. The host and port of every
 * Contact URI become the address the message really came from, and the `transport` parameter
 * names the transport it came over; user part, other URI parameters, header parameters and
 * display name are kept.
 *
 * This is for peers that ignore Record-Route and send in-dialog requests straight to the
 * remote target (RFC 3261 §12.2.1.1): with the rewrite they at least aim at the NAT's public
 * mapping. The edge itself never needs it — it reaches NATed UAs over their flow (bindings
 * and flow tokens). REGISTER Contacts are never rewritten: the registrar stores and returns
 * the Contact the UA sent and keeps the received flow beside it.
 *
 * Pure functions; the proxy decides when to apply them.
 */
import ipaddr from 'ipaddr.js';
import type { Logger } from '../lib/log.js';
import { cloneMessage, getHeaderValues, hasHeader, setHeader } from '../sip/headers.js';
import type { SipMessage, SipRequest, SipResponse } from '../sip/message.js';
import { formatNameAddr, parseNameAddr } from '../sip/nameaddr.js';
import type { Flow, TransportProto } from '../transport/types.js';
import { detectNat, isPrivateAddress, type NatClientsMode } from './detect.js';

/** Where a message came from. */
export interface ReceivedAddress {
  transport: TransportProto;
  address: string;
  port: number;
}

function sameIp(a: string, b: string): boolean {
  if (!ipaddr.isValid(a) || !ipaddr.isValid(b)) return a.toLowerCase() === b.toLowerCase();
  const norm = (s: string): string => {
    let x = ipaddr.parse(s);
    if (x.kind() === 'ipv6' && (x as ipaddr.IPv6).isIPv4MappedAddress()) x = (x as ipaddr.IPv6).toIPv4Address();
    return x.toString();
  };
  return norm(a) === norm(b);
}

/**
 * Rewrites every Contact of `msg` in place to `received` (Kamailio `fix_nated_contact`).
 * The wildcard `*` and values that do not parse are left as they are.
 * @returns whether any Contact changed
 */
export function fixNatedContact(msg: SipMessage, received: ReceivedAddress): boolean {
  const values = getHeaderValues(msg, 'contact');
  if (values.length === 0) return false;
  let changed = false;
  const out: string[] = [];
  const host = received.address.startsWith('::ffff:') && ipaddr.isValid(received.address) ? ipaddr.process(received.address).toString() : received.address;
  for (const v of values) {
    const na = parseNameAddr(v);
    if (!na.ok || na.value.wildcard === true || (na.value.uri.scheme !== 'sip' && na.value.uri.scheme !== 'sips')) {
      out.push(v);
      continue;
    }
    const u = na.value.uri;
    const params = { ...u.params };
    // RFC 3261 §19.1.1: no transport parameter means UDP (sips: TLS); name TCP/TLS explicitly.
    delete params.transport;
    if (received.transport !== 'udp' && !(u.scheme === 'sips' && received.transport === 'tls')) params.transport = received.transport;
    const next = formatNameAddr({ ...na.value, uri: { ...u, host, port: received.port, params } });
    if (next !== v) changed = true;
    out.push(next);
  }
  if (changed) setHeader(msg, 'Contact', out.join(', '));
  return changed;
}

/**
 * The `contact-private` test for a response (a UAS behind NAT answering): true when a Contact
 * host is a private address other than the address the response came from.
 */
export function responseContactPrivate(res: SipResponse, source: string): boolean {
  for (const v of getHeaderValues(res, 'contact')) {
    const na = parseNameAddr(v);
    if (!na.ok || na.value.wildcard === true) continue;
    const h = na.value.uri.host;
    if (isPrivateAddress(h) && !sameIp(h, source)) return true;
  }
  return false;
}

function receivedOf(flow: Flow): ReceivedAddress {
  return { transport: flow.transport, address: flow.remote.address, port: flow.remote.port };
}

/**
 * `nat.rewriteContact` for a request the proxy is about to forward: when the sender is behind
 * NAT (per `nat.clients`, see detect.ts), its Contact becomes the flow it came from.
 * REGISTER is never touched (the registrar keeps the Contact as sent, RFC 3261 §10.3).
 * @param req the received request, modified in place
 * @returns whether the Contact was rewritten
 */
export function fixRequestContact(req: SipRequest, flow: Flow, mode: NatClientsMode, opts: { raw?: Buffer; log?: Logger } = {}): boolean {
  if (mode === 'off' || req.method === 'REGISTER' || !hasHeader(req, 'contact')) return false;
  if (!detectNat(req, flow.remote, mode, opts).nat) return false;
  const changed = fixNatedContact(req, receivedOf(flow));
  if (changed) opts.log?.debug({ method: req.method, received: receivedOf(flow) }, 'nat: Contact rewritten to the received address');
  return changed;
}

/**
 * `nat.rewriteContact` for a 18x/2xx response from a UAS behind NAT (the callee's Contact
 * becomes its remote target, RFC 3261 §12.1.2). The UAS counts as NATed when `mode` is
 * `force`, when the binding it was reached through is NATed, or when its Contact is private
 * and not the address the response came from.
 * @returns `res` itself, or a rewritten copy
 */
export function fixResponseContact(res: SipResponse, flow: Flow, mode: NatClientsMode, bindingNat = false): SipResponse {
  if (mode === 'off' || res.status <= 100 || res.status >= 300 || !hasHeader(res, 'contact')) return res;
  if (mode !== 'force' && !bindingNat && !responseContactPrivate(res, flow.remote.address)) return res;
  const copy = cloneMessage(res);
  return fixNatedContact(copy, receivedOf(flow)) ? copy : res;
}
