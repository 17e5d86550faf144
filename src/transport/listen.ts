/**
 * Parsing of `listen:` entries (DESIGN.md): `proto:address[:port] [as host[:port]]`, the
 * OpenSIPS-style socket definition with an optional advertised address.
 *
 * Examples: `udp:10.0.0.10:5060`, `tcp:[::1]:5060`, `udp:0.0.0.0:5060 as 203.0.113.10:5060`,
 * `udp:127.0.0.1:5060 as pbx.example.org`.
 */
import ipaddr from 'ipaddr.js';
import { defaultPort, formatHostPort, isIPv4, isIPv6 } from './address.js';
import type { ListenSpec, TransportProto } from './types.js';

const TRANSPORTS: ReadonlySet<string> = new Set<TransportProto>(['udp', 'tcp', 'tls', 'ws', 'wss']);
const HOSTNAME_RE = /^(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** Result of {@link parseListen}. */
export type ParseListenResult = { ok: true; value: ListenSpec } | { ok: false; reason: string };

/**
 * The stable socket name `proto:address:port`, IPv6 addresses in brackets
 * (`udp:10.0.0.10:5060`, `tcp:[::1]:5060`). This is {@link ListenSpec.id}.
 */
export function formatSocketId(transport: TransportProto, address: string, port: number): string {
  return `${transport}:${formatHostPort(address, port)}`;
}

interface HostPortText {
  host: string;
  /** undefined when the text had no port. */
  port: number | undefined;
  bracketed: boolean;
}

function splitHostPort(text: string): HostPortText | string {
  let host: string;
  let rest: string;
  let bracketed = false;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return `missing "]" in "${text}"`;
    host = text.slice(1, close);
    rest = text.slice(close + 1);
    bracketed = true;
  } else {
    const first = text.indexOf(':');
    if (first >= 0 && text.indexOf(':', first + 1) >= 0) return `IPv6 address must be written in brackets, e.g. "[::1]:5060" (got "${text}")`;
    host = first < 0 ? text : text.slice(0, first);
    rest = first < 0 ? '' : text.slice(first);
  }
  if (host === '') return `missing address in "${text}"`;
  if (rest === '') return { host, port: undefined, bracketed };
  if (!rest.startsWith(':')) return `unexpected "${rest}" after address in "${text}"`;
  const portText = rest.slice(1);
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) return `invalid port "${portText}" in "${text}"`;
  return { host, port: Number(portText), bracketed };
}

/** Normalizes an IPv6 literal to RFC 5952 form (`0:0::1` → `::1`). */
function normalizeIPv6(address: string): string {
  return ipaddr.IPv6.parse(address).toString();
}

/**
 * Parses one `listen:` entry.
 *
 * - `proto` is one of `udp`, `tcp`, `tls`, `ws`, `wss` (case-insensitive).
 * - The bind address must be an IP literal (IPv6 in brackets); the port defaults to the
 *   transport's default (5060 UDP/TCP, 5061 TLS, 80 WS, 443 WSS). Port 0 binds an ephemeral port.
 * - `as host[:port]` sets the advertised address: an IP literal or a DNS name; its port
 *   defaults to the listening port (as OpenSIPS `advertised_port`).
 *
 * Never throws; a bad entry yields `{ ok: false, reason }`.
 */
export function parseListen(spec: string): ParseListenResult {
  const text = spec.trim();
  const parts = text.split(/\s+as\s+/i);
  if (parts.length > 2) return { ok: false, reason: `more than one "as" in "${spec}"` };
  const [socketText, advertisedText] = parts;
  if (/\s/.test(socketText)) return { ok: false, reason: `unexpected whitespace in "${socketText}" (expected "proto:address:port [as host:port]")` };

  const colon = socketText.indexOf(':');
  if (colon <= 0) return { ok: false, reason: `missing transport in "${spec}" (expected e.g. "udp:0.0.0.0:5060")` };
  const transport = socketText.slice(0, colon).toLowerCase();
  if (!TRANSPORTS.has(transport)) return { ok: false, reason: `unknown transport "${socketText.slice(0, colon)}" (expected udp, tcp, tls, ws or wss)` };
  const proto = transport as TransportProto;

  const hp = splitHostPort(socketText.slice(colon + 1));
  if (typeof hp === 'string') return { ok: false, reason: hp };
  let address: string;
  if (hp.bracketed) {
    if (!isIPv6(hp.host)) return { ok: false, reason: `"${hp.host}" is not an IPv6 address` };
    address = normalizeIPv6(hp.host);
  } else {
    if (!isIPv4(hp.host)) return { ok: false, reason: `listen address "${hp.host}" must be an IP address (IPv6 in brackets)` };
    address = hp.host;
  }
  const port = hp.port ?? defaultPort(proto);

  const value: ListenSpec = { id: formatSocketId(proto, address, port), transport: proto, address, port };

  if (advertisedText !== undefined) {
    const adv = splitHostPort(advertisedText);
    if (typeof adv === 'string') return { ok: false, reason: `advertised address: ${adv}` };
    let host: string;
    if (adv.bracketed) {
      if (!isIPv6(adv.host)) return { ok: false, reason: `advertised address: "${adv.host}" is not an IPv6 address` };
      host = normalizeIPv6(adv.host);
    } else if (isIPv4(adv.host) || (HOSTNAME_RE.test(adv.host) && !/^[\d.]+$/.test(adv.host))) {
      host = adv.host;
    } else {
      return { ok: false, reason: `advertised address: "${adv.host}" is neither an IP address nor a host name` };
    }
    if (adv.port === 0) return { ok: false, reason: `advertised address: port 0 is not a valid port` };
    value.advertised = { host, port: adv.port ?? port };
  }
  return { ok: true, value };
}
