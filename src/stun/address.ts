/**
 * IP address ⇄ octet conversion for STUN address attributes (RFC 8489 §14.1, §14.2).
 *
 * Pure helpers with no I/O. Validation uses `node:net`'s strict `isIP` (dotted-quad IPv4 only,
 * unlike `ipaddr.js`'s lenient forms); octet layout uses `ipaddr.js`.
 */
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/** Address family as carried in the attribute's Family octet: 0x01 IPv4, 0x02 IPv6 (RFC 8489 §14.1). */
export type StunFamily = 'IPv4' | 'IPv6';

/** A transport address carried in MAPPED-ADDRESS / XOR-MAPPED-ADDRESS. */
export interface StunAddress {
  family: StunFamily;
  /** Textual address: dotted quad, or RFC 5952 compressed IPv6 (IPv4-mapped shown as `::ffff:a.b.c.d`). */
  address: string;
  port: number;
}

/** Strips an IPv6 zone (`fe80::1%eth0`) and brackets (`[2001:db8::1]`). */
function bare(address: string): string {
  let a = address.trim();
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
  const pct = a.indexOf('%');
  return pct >= 0 ? a.slice(0, pct) : a;
}

/**
 * The octets of an IP address (4 for IPv4, 16 for IPv6), or `undefined` when `address` is not a
 * valid literal. With `unmapV4`, an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, as a dual-stack
 * socket reports an IPv4 peer) is returned as its 4 IPv4 octets.
 */
export function addressToBytes(address: string, unmapV4 = false): Buffer | undefined {
  const a = bare(address);
  const kind = isIP(a);
  if (kind === 0) return undefined;
  try {
    const parsed = ipaddr.parse(a);
    if (unmapV4 && parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
      return Buffer.from((parsed as ipaddr.IPv6).toIPv4Address().toByteArray());
    }
    const bytes = Buffer.from(parsed.toByteArray());
    return bytes.length === (kind === 4 ? 4 : 16) ? bytes : undefined;
  } catch {
    return undefined;
  }
}

/** The text form of 4 or 16 address octets (RFC 5952 for IPv6); `undefined` for other lengths. */
export function bytesToAddress(bytes: Uint8Array): string | undefined {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) return undefined;
  const v6 = ipaddr.fromByteArray(Array.from(bytes)) as ipaddr.IPv6;
  if (v6.isIPv4MappedAddress()) return `::ffff:${bytesToAddress(bytes.subarray(12))}`;
  return v6.toRFC5952String();
}
