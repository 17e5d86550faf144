/**
 * NAT detection for requests from UAs, as named, composable tests in the manner of
 * Kamailio's `nat_uac_test`. Each test returns true when it suggests the sender is behind NAT.
 */
import ipaddr from 'ipaddr.js';
import type { SipRequest } from '../sip/message.js';
import { getHeader } from '../sip/headers.js';
import { parseVia } from '../sip/via.js';
import { parseNameAddr } from '../sip/nameaddr.js';
import type { HostPort } from '../transport/types.js';

/** Names of the detection tests (stable; shown in `show peers`). */
export type NatTestName = 'contact-private' | 'via-received' | 'via-rport' | 'source-private' | 'sdp-private';

/** Whether an address is private: RFC 1918, RFC 6598 (100.64/10), link-local, ULA (fc00::/7). */
export function isPrivateAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  let a = ipaddr.parse(address);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) a = (a as ipaddr.IPv6).toIPv4Address();
  const r = a.range();
  return r === 'private' || r === 'carrierGradeNat' || r === 'linkLocal' || r === 'uniqueLocal';
}

/** Result of {@link detectNat}. */
export interface NatDecision {
  nat: boolean;
  /** Tests that fired, in a fixed order. */
  tests: NatTestName[];
}

/**
 * Runs the detection tests on a request received from `source`.
 * - `via-received`: top Via host differs from the source IP (RFC 3261 §18.2.1)
 * - `via-rport`: top Via port (default 5060) differs from the source port (RFC 3581)
 * - `contact-private`: Contact host is a private address while the source is not
 * - `sdp-private`: an SDP body's `c=` address is private while the source is not (Kamailio
 *   `nat_uac_test` flag 8): the media would go to an unreachable address
 * - `source-private`: reserved for `nat.clients` policies; not part of `auto` here
 * @param mode `auto` runs the tests, `force` marks every UA NATed, `off` none.
 */
export function detectNat(req: SipRequest, source: HostPort, mode: 'auto' | 'force' | 'off' = 'auto'): NatDecision {
  if (mode === 'off') return { nat: false, tests: [] };
  const tests: NatTestName[] = [];
  const top = getHeader(req, 'via');
  if (top) {
    const v = parseVia(top);
    if (v.ok) {
      if (v.value.host.toLowerCase() !== source.address.toLowerCase()) tests.push('via-received');
      if ((v.value.port ?? 5060) !== source.port) tests.push('via-rport');
    }
  }
  const contact = getHeader(req, 'contact');
  if (contact) {
    const na = parseNameAddr(contact);
    if (na.ok && !na.value.wildcard && isPrivateAddress(na.value.uri.host) && !isPrivateAddress(source.address)) tests.push('contact-private');
  }
  if (req.body.length > 0 && !isPrivateAddress(source.address) && sdpHasPrivateConnection(req)) tests.push('sdp-private');
  return { nat: mode === 'force' || tests.length > 0, tests };
}

/** Whether the request carries an `application/sdp` body with a private `c=` address (RFC 4566 §5.7). */
function sdpHasPrivateConnection(req: SipRequest): boolean {
  const ct = getHeader(req, 'content-type');
  if (!ct || ct.split(';')[0].trim().toLowerCase() !== 'application/sdp') return false;
  const re = /^c=IN IP[46] ([^\s/]+)/gm;
  const text = req.body.toString('latin1');
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) if (isPrivateAddress(m[1])) return true;
  return false;
}
