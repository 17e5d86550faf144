/**
 * Small pure helpers for addresses, ports and transports (no I/O).
 */
import ipaddr from 'ipaddr.js';
import type { TransportProto } from './types.js';

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** True for a dotted-quad IPv4 address (`192.0.2.1`; no short or octal forms). */
export function isIPv4(s: string): boolean {
  return IPV4_RE.test(s);
}

/** True for an IPv6 address written without brackets (`2001:db8::1`, `::ffff:192.0.2.1`). */
export function isIPv6(s: string): boolean {
  return s.includes(':') && ipaddr.IPv6.isValid(s);
}

/** 4, 6, or 0 when `s` is not an IP literal (e.g. a DNS name). */
export function ipFamily(s: string): 0 | 4 | 6 {
  if (isIPv4(s)) return 4;
  if (isIPv6(s)) return 6;
  return 0;
}

/**
 * Address family for socket choice, cheap enough for the send path: anything with a `:` is
 * IPv6, everything else (IPv4 literal or DNS name) IPv4.
 */
export function familyOf(address: string): 4 | 6 {
  return address.includes(':') ? 6 : 4;
}

/** Removes `[` `]` around an IPv6 reference (RFC 3261 §25.1 `IPv6reference`). */
export function stripBrackets(host: string): string {
  return host.length > 1 && host.charCodeAt(0) === 0x5b && host.charCodeAt(host.length - 1) === 0x5d ? host.slice(1, -1) : host;
}

/** Removes an IPv6 zone index (`fe80::1%eth0` → `fe80::1`), which SIP syntax cannot carry. */
export function stripZone(address: string): string {
  const i = address.indexOf('%');
  return i < 0 ? address : address.slice(0, i);
}

/** `host:port` with an IPv6 address in brackets (RFC 3261 §19.1.1 / RFC 5118 §4.1). */
export function formatHostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** Reliable (stream, connection-oriented) transports: RFC 3261 §18. */
export function isReliable(transport: TransportProto): boolean {
  return transport !== 'udp';
}

/**
 * Default port of a transport when a URI or Via omits it: 5060 for UDP/TCP, 5061 for TLS
 * (RFC 3261 §18.2.2, §19.1.2), 80/443 for WS/WSS (RFC 7118 uses the HTTP ports).
 */
export function defaultPort(transport: TransportProto): number {
  switch (transport) {
    case 'tls':
      return 5061;
    case 'ws':
      return 80;
    case 'wss':
      return 443;
    default:
      return 5060;
  }
}

/** True for the wildcard addresses `0.0.0.0` and `::`. */
export function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

/**
 * Canonical text of an address for map keys: IPv6 in RFC 5952 form (`0:0::1` → `::1`),
 * anything else unchanged.
 */
export function normalizeAddress(address: string): string {
  if (!address.includes(':')) return address;
  try {
    return ipaddr.IPv6.parse(stripBrackets(address)).toString();
  } catch {
    return address;
  }
}
