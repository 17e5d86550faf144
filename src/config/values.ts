/**
 * Parsers for the string-valued settings of `sipedge.yaml` (port ranges, `host:port`, CIDRs,
 * store and media-engine specs). Plain functions: they never throw, they return a value or a
 * reason in plain words, so the schema and the CLI report the same message.
 */
import ipaddr from 'ipaddr.js';
import type { MediaEngineConfig, PortRange, StoreSpec } from './types.js';

/** Result of a value parser: the parsed value, or why the input is wrong. */
export type ParseResult<T> = { ok: true; value: T } | { ok: false; reason: string };

const ok = <T>(value: T): ParseResult<T> => ({ ok: true, value });
const fail = <T>(reason: string): ParseResult<T> => ({ ok: false, reason });

const HOSTNAME_RE = /^(?=.{1,253}\.?$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

/** True for an RFC 1123 host name (`sip.example.org`, `localhost`). Does not accept IP literals. */
export function isHostname(s: string): boolean {
  return HOSTNAME_RE.test(s) && !/^[0-9.]+$/.test(s);
}

/**
 * True for a plain IP address: dotted-quad IPv4 (exactly four decimal parts, no `0x`/octal
 * shorthands that ipaddr.js would otherwise accept) or IPv6 (without brackets or zone).
 */
export function isIpAddress(s: string): boolean {
  if (ipaddr.IPv4.isValidFourPartDecimal(s)) return true;
  return s.includes(':') && ipaddr.IPv6.isValid(s) && !s.includes('%');
}

/** Parses a port number 0..65535 written as decimal digits. */
export function parsePort(s: string, min = 0): ParseResult<number> {
  if (!/^\d{1,5}$/.test(s)) return fail(`"${s}" is not a port number`);
  const n = Number(s);
  if (n < min || n > 65535) return fail(`port ${n} is outside ${min}..65535`);
  return ok(n);
}

/**
 * Parses `host:port`, `[ipv6]:port` (host: IPv4, IPv6 or DNS name; port 0..65535, 0 = any free
 * port). Used for `api.listen` and `--api`. The returned host has no brackets.
 */
export function parseHostPort(s: string): ParseResult<{ host: string; port: number }> {
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(s);
  if (v6) {
    host = v6[1];
    portText = v6[2];
    if (!(ipaddr.IPv6.isValid(host) && host.includes(':'))) return fail(`"${host}" is not an IPv6 address`);
  } else {
    const i = s.lastIndexOf(':');
    if (i <= 0) return fail(`expected host:port (e.g. 127.0.0.1:8088), got "${s}"`);
    host = s.slice(0, i);
    portText = s.slice(i + 1);
    if (host.includes(':')) return fail(`write an IPv6 address in brackets, e.g. [${host}]:${portText}`);
    if (!isIpAddress(host) && !isHostname(host)) return fail(`"${host}" is not an IP address or host name`);
  }
  const port = parsePort(portText);
  if (!port.ok) return port;
  return ok({ host, port: port.value });
}

/**
 * Parses an RTP port range `LOW-HIGH`: 1024 ≤ LOW < HIGH ≤ 65535 and LOW even
 * (RTP uses even ports, RTCP the next odd one).
 */
export function parsePortRange(s: string): ParseResult<PortRange> {
  const m = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(s);
  if (!m) return fail(`expected a port range LOW-HIGH such as 10000-10999, got "${s}"`);
  const low = Number(m[1]);
  const high = Number(m[2]);
  if (low < 1024 || high > 65535) return fail(`ports must be within 1024..65535, got ${low}-${high}`);
  if (low >= high) return fail(`LOW must be below HIGH, got ${low}-${high}`);
  if (low % 2 !== 0) return fail(`LOW must be even (RTP uses even ports, RTCP the next odd one), got ${low}`);
  return ok({ low, high });
}

/** Formats a {@link PortRange} back to `LOW-HIGH`. */
export function formatPortRange(r: PortRange): string {
  return `${r.low}-${r.high}`;
}

/**
 * Parses a CIDR such as `10.0.0.0/8` or `fd00::/8` with ipaddr.js `parseCIDR`.
 * `hostBits` is true when bits below the prefix are set (`10.0.0.1/8`), which is accepted
 * (the network is what matters) but worth a warning.
 */
export function parseCidr(s: string): ParseResult<{ network: string; prefix: number; hostBits: boolean }> {
  const slash = s.indexOf('/');
  if (slash < 0) return fail(`expected a CIDR such as 10.0.0.0/8 or fd00::/8, got "${s}" (add /32 or /128 for a single address)`);
  const addrText = s.slice(0, slash);
  if (!isIpAddress(addrText)) return fail(`"${addrText}" in "${s}" is not an IPv4 or IPv6 address`);
  let parsed: [ipaddr.IPv4 | ipaddr.IPv6, number];
  try {
    parsed = ipaddr.parseCIDR(s);
  } catch {
    const max = addrText.includes(':') ? 128 : 32;
    return fail(`"${s}" is not a valid CIDR (prefix length must be 0..${max})`);
  }
  const [addr, prefix] = parsed;
  const network = addr.kind() === 'ipv4' ? ipaddr.IPv4.networkAddressFromCIDR(s) : ipaddr.IPv6.networkAddressFromCIDR(s);
  return ok({ network: network.toString(), prefix, hostBits: network.toString() !== addr.toString() });
}

/**
 * Parses `media.engine`: `internal`, or `rtpengine:udp:HOST:PORT` (HOST an IP or DNS name,
 * IPv6 in brackets) for an external rtpengine driven over its `ng` protocol.
 */
export function parseMediaEngine(s: string): ParseResult<MediaEngineConfig> {
  if (s === 'internal') return ok({ kind: 'internal' });
  const m = /^rtpengine:(udp):(.+)$/.exec(s);
  if (!m) return fail(`expected "internal" or "rtpengine:udp:HOST:PORT", got "${s}"`);
  const hp = parseHostPort(m[2]);
  if (!hp.ok) return fail(`rtpengine address: ${hp.reason}`);
  if (hp.value.port === 0) return fail('rtpengine port must not be 0');
  return ok({ kind: 'rtpengine', transport: 'udp', host: hp.value.host, port: hp.value.port });
}

/** Formats a {@link MediaEngineConfig} back to its YAML form. */
export function formatMediaEngine(e: MediaEngineConfig): string {
  if (e.kind === 'internal') return 'internal';
  const host = e.host.includes(':') ? `[${e.host}]` : e.host;
  return `rtpengine:${e.transport}:${host}:${e.port}`;
}

/**
 * Parses `store`: `sqlite:PATH`, `memory:` or `redis://…` / `rediss://…`.
 * PATH is returned as written; a relative PATH is relative to the process's working
 * directory (resolve it with `path.resolve` when opening), not to the config file.
 */
export function parseStoreSpec(s: string): ParseResult<StoreSpec> {
  if (s === 'memory:' || s === 'memory') return ok({ kind: 'memory' });
  if (s.startsWith('sqlite:')) {
    const path = s.slice('sqlite:'.length);
    if (path === '') return fail('sqlite store needs a file path, e.g. sqlite:./var/sipedge.db');
    return ok({ kind: 'sqlite', path });
  }
  if (s.startsWith('redis://') || s.startsWith('rediss://')) {
    let url: URL;
    try {
      url = new URL(s);
    } catch {
      return fail(`"${s}" is not a valid redis URL (redis://host:6379)`);
    }
    if (!url.hostname) return fail(`redis URL "${s}" has no host`);
    return ok({ kind: 'redis', url: s });
  }
  return fail(`expected sqlite:PATH, memory: or redis://host:port, got "${s}"`);
}
