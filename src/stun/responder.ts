/**
 * STUN Binding responder for datagrams that arrive on a UDP SIP socket.
 *
 * RFC 5626 §4.4.2 / §8: a SIP UA using outbound keeps its NAT binding alive by sending STUN Binding
 * requests to the very port it sends SIP to, and learns its reflexive address from the response.
 * The transport demultiplexes by first byte (RFC 7983) and hands non-SIP datagrams here.
 *
 * A pure function: datagram and source address in, datagram to send back (or nothing) out. It has
 * no credentials, so it does not authenticate (RFC 5626 keepalives are unauthenticated); a
 * MESSAGE-INTEGRITY in the request is understood but not checked, and the response carries none.
 */
import {
  StunMethod,
  decodeStun,
  encodeStun,
  errorCodeAttribute,
  isStunPacket,
  softwareAttribute,
  unknownAttributesAttribute,
  unknownComprehensionRequired,
  verifyFingerprint,
  xorMappedAddressAttribute,
  type StunAttribute,
} from './message.js';
import { addressToBytes } from './address.js';

/** Options of {@link stunBindingResponse}. */
export interface StunResponderOptions {
  /** Adds a SOFTWARE attribute (RFC 8489 §14.14) to every response, e.g. `sipedge/0.1.0`. */
  software?: string;
}

/**
 * Answers a STUN Binding request (RFC 8489 §6.3.1 and §3 "Binding method").
 *
 * - Binding request → success response with the transaction id of the request and
 *   XOR-MAPPED-ADDRESS set to `source` (RFC 8489 §6.3.1.1, §14.2); an IPv4-mapped IPv6 source
 *   (`::ffff:a.b.c.d` from a dual-stack socket) is reported as IPv4.
 * - Request carrying comprehension-required attributes outside RFC 8489's own set → error response
 *   420 (Unknown Attribute) with UNKNOWN-ATTRIBUTES listing them (RFC 8489 §6.3.1).
 * - FINGERPRINT (RFC 8489 §7, §14.7) is added to the response iff the request carried one, since a
 *   client that uses the FINGERPRINT mechanism to demultiplex expects it back; a request whose
 *   FINGERPRINT is wrong is silently discarded (RFC 8489 §6.3).
 * - Indications (including Binding indications used as keepalives, RFC 8489 §6.3.2), responses,
 *   other methods, non-STUN and malformed datagrams → `undefined` (nothing to send).
 *
 * Never throws.
 */
export function stunBindingResponse(
  request: Buffer,
  source: { address: string; port: number },
  opts: StunResponderOptions = {},
): Buffer | undefined {
  try {
    if (!isStunPacket(request)) return undefined;
    const decoded = decodeStun(request);
    if (!decoded.ok) return undefined;
    const req = decoded.message;
    if (req.class !== 'request' || req.method !== StunMethod.Binding) return undefined;
    const withFingerprint = req.fingerprintOffset !== undefined;
    if (withFingerprint && !verifyFingerprint(req).ok) return undefined;
    if (!addressToBytes(source.address) || !Number.isInteger(source.port) || source.port < 0 || source.port > 0xffff) return undefined;

    const transactionId = Buffer.from(req.transactionId);
    const tail: StunAttribute[] = opts.software ? [softwareAttribute(opts.software)] : [];
    const unknown = unknownComprehensionRequired(req);
    if (unknown.length > 0) {
      return encodeStun(
        {
          method: StunMethod.Binding,
          class: 'error',
          transactionId,
          attributes: [errorCodeAttribute(420), unknownAttributesAttribute(unknown), ...tail],
        },
        { fingerprint: withFingerprint },
      );
    }
    return encodeStun(
      {
        method: StunMethod.Binding,
        class: 'success',
        transactionId,
        attributes: [xorMappedAddressAttribute(source, transactionId), ...tail],
      },
      { fingerprint: withFingerprint },
    );
  } catch {
    // Defensive: every input path above is validated, but a responder on a SIP socket must never
    // take the socket down.
    return undefined;
  }
}
