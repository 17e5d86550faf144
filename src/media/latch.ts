/**
 * Latching decisions for symmetric RTP (RFC 4961) behind NAT (RFC 7362 §4 "Latching"),
 * as pure functions over plain state. The relay ({@link ../relay.ts}) owns the state and calls
 * these per packet (no allocation) and per offer/answer.
 *
 * Rules:
 * - A party is first expected at the address its SDP announced ("signalled"). RFC 7362 §4:
 *   "the media relay … latches onto the source address of the first media packet it receives",
 *   so the real source ip:port (the NAT's public mapping) is learned from its packets.
 * - Learning is open until the first packet, and again for a short window after every
 *   offer/answer (the party may have moved). Within the window a new source re-latches, unless
 *   the latched source is exactly the signalled address ("confirmed", as rtpengine does): a
 *   party that is not behind NAT cannot be hijacked during the window.
 * - Outside the window, a packet from another source is dropped when `strictSource` is on
 *   (RTP Bleed protection, RFC 7362 §5.1), or relayed without re-latching when it is off
 *   (rtpengine's default).
 * - Packets are sent to the latched address, else to the signalled one; never to an address
 *   that is neither, never to the unspecified address (hold), and not to a private SDP address
 *   of a party whose signalling came from elsewhere (it is behind NAT: wait for its packets).
 */
import { isIP } from 'node:net';
import type { SocketAddress } from './control.js';

/** {@link decideSource}: the packet comes from the latched source. */
export const SOURCE_ACCEPT = 0;
/** {@link decideSource}: latch onto this source (first packet, or within the learning window), then relay. */
export const SOURCE_LATCH = 1;
/** {@link decideSource}: drop (strictSource, or an invalid source). */
export const SOURCE_DROP = 2;
/** {@link decideSource}: relay without re-latching (a foreign source with strictSource off). */
export const SOURCE_FOREIGN = 3;

/** Latching state of one relay socket (one component of one stream, facing one party). */
export interface LatchState {
  /** Learned source address, undefined until the first packet. */
  latchedAddress: string | undefined;
  latchedPort: number;
  /** Learning is open while `now < learnUntil` (monotonic ms). */
  learnUntil: number;
  /** The latched source equals the signalled address: no re-latching, even within the window. */
  latchConfirmed: boolean;
}

/** Destination state of one relay socket: where packets for its party go. */
export interface DestinationState extends LatchState {
  /** Address announced in the party's SDP; undefined when none or on hold. */
  signalledAddress: string | undefined;
  signalledPort: number;
  /** The signalled address may be used before latching ({@link trustSignalled}). */
  signalTrusted: boolean;
  /** The party's SDP said c=0.0.0.0 (RFC 2543 hold) or port 0: send nothing to it. */
  hold: boolean;
}

/**
 * What to do with a packet received from `address:port` on a socket with state `s`.
 * Called per packet: no allocation.
 * @param now monotonic ms
 * @param strict `media.strictSource`
 * @returns one of {@link SOURCE_ACCEPT}, {@link SOURCE_LATCH}, {@link SOURCE_DROP}, {@link SOURCE_FOREIGN}
 */
export function decideSource(s: LatchState, address: string, port: number, now: number, strict: boolean): number {
  if (port === 0 || address === '0.0.0.0' || address === '::') return SOURCE_DROP;
  if (s.latchedAddress === undefined) return SOURCE_LATCH;
  if (s.latchedPort === port && s.latchedAddress === address) return SOURCE_ACCEPT;
  if (now < s.learnUntil && !s.latchConfirmed) return SOURCE_LATCH;
  return strict ? SOURCE_DROP : SOURCE_FOREIGN;
}

/** Where packets for the party of `s` go, or undefined (for stats and tests; the relay inlines it). */
export function destinationOf(s: DestinationState): SocketAddress | undefined {
  if (s.hold) return undefined;
  if (s.latchedAddress !== undefined) return { address: s.latchedAddress, port: s.latchedPort };
  if (s.signalledAddress !== undefined && s.signalTrusted) return { address: s.signalledAddress, port: s.signalledPort };
  return undefined;
}

/**
 * Private, shared, link-local and unique-local ranges (RFC 1918, RFC 6598, RFC 3927, RFC 4193,
 * RFC 4291 link-local), loopback excluded.
 */
export function isPrivateAddress(ip: string): boolean {
  const v = isIP(ip);
  if (v === 4) {
    const p = ip.split('.');
    const a = Number(p[0]);
    const b = Number(p[1]);
    return a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127) || (a === 169 && b === 254);
  }
  if (v === 6) {
    const low = ip.toLowerCase();
    if (low.startsWith('::ffff:')) return isPrivateAddress(low.slice(7));
    return /^f[cd]/.test(low) || /^fe[89ab]/.test(low);
  }
  return false;
}

/**
 * Whether the SDP address of a party may be used as a destination before its first packet.
 * Not when it is private and the party's signalling came from another address: the party is
 * behind NAT and the address belongs to another network (Kamailio `nat_uac_test` 8 + 2).
 * @param sdpAddress the party's `c=` address
 * @param receivedFrom where the party's SIP message came from, if known
 */
export function trustSignalled(sdpAddress: string, receivedFrom: SocketAddress | undefined): boolean {
  if (!receivedFrom) return true;
  if (sdpAddress === receivedFrom.address) return true;
  return !isPrivateAddress(sdpAddress);
}

/** Result of {@link signalChange}. */
export interface SignalChange {
  /** The party asked not to receive media (unspecified address or port 0). */
  hold: boolean;
  /** Forget the latched address: the party announced a new real address. */
  clearLatch: boolean;
}

/**
 * How a new offer/answer changes a socket's state. A new real address (different from the last
 * real one; hold periods in between are ignored) drops the latch, so the new address is used
 * until packets arrive; an unchanged one keeps the NAT mapping learned earlier.
 * @param lastReal the last non-hold signalled address, if any
 */
export function signalChange(lastReal: SocketAddress | undefined, address: string, port: number, unspecified: boolean): SignalChange {
  if (unspecified || port === 0 || address === '') return { hold: true, clearLatch: false };
  return { hold: false, clearLatch: lastReal !== undefined && (lastReal.address !== address || lastReal.port !== port) };
}
