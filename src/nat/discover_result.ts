/**
 * Shared vocabulary of public-address discovery: the result value every method returns, its
 * stable failure codes, and the validation of an answer ("is this a usable address?").
 *
 * Methods never throw; a failure is a value with a {@link DiscoverErrorCode}.
 */
import ipaddr from 'ipaddr.js';

/** Where an advertised public address came from. `config` = `publicAddress.ip`; `host` = `publicAddress.host`. */
export type DiscoverSource = 'aws' | 'gcp' | 'azure' | 'stun' | 'host' | 'config';

/**
 * Stable failure codes:
 * - `TIMEOUT`: no (complete) answer within the method's timeout, or the attempt was aborted;
 * - `HTTP_ERROR`: the metadata service could not be reached (connection refused, unreachable) or
 *   answered with a non-2xx status;
 * - `BAD_ANSWER`: an answer that is not one usable IP address (empty, garbage, too long,
 *   multicast/unspecified, missing `Metadata-Flavor` on GCP, STUN error or bad response);
 * - `DNS`: a name (metadata host, STUN server, `publicAddress.host`) did not resolve;
 * - `NO_SERVERS`: `discover: [stun]` without any usable `publicAddress.stunServers`.
 */
export type DiscoverErrorCode = 'TIMEOUT' | 'HTTP_ERROR' | 'BAD_ANSWER' | 'DNS' | 'NO_SERVERS';

/** Outcome of one discovery method. */
export type DiscoverResult =
  | {
      ok: true;
      /** Canonical text of the address (IPv4 dotted quad, IPv6 RFC 5952; IPv4-mapped IPv6 unwrapped). */
      address: string;
      source: DiscoverSource;
      /** Set when the address is usable but suspicious (private, loopback, link-local, CGNAT): log it. */
      warning?: string;
    }
  | { ok: false; source: DiscoverSource; code: DiscoverErrorCode; detail: string };

/** Failure variant of {@link DiscoverResult}. */
export type DiscoverFailure = Extract<DiscoverResult, { ok: false }>;

/** Default timeout of one discovery method, ms. */
export const DEFAULT_DISCOVER_TIMEOUT_MS = 2000;

/** Ranges (ipaddr.js names) that are accepted but are not public: advertising them is probably wrong. */
const SUSPICIOUS_RANGES: Record<string, string> = {
  private: 'a private (RFC 1918) address',
  uniqueLocal: 'a unique-local (RFC 4193) address',
  carrierGradeNat: 'a carrier-grade NAT (RFC 6598) address',
  loopback: 'a loopback address',
  linkLocal: 'a link-local address',
};

/** Ranges that can never be the address of one host. */
const REJECTED_RANGES = new Set(['unspecified', 'multicast', 'broadcast']);

/**
 * Validates the text a discovery method received as "our public address".
 *
 * Policy: accept any valid unicast IPv4 or IPv6 address (surrounding whitespace trimmed); reject
 * everything else (empty, host names, zone ids, multicast, unspecified, broadcast). Private,
 * unique-local, CGNAT, loopback and link-local addresses are accepted with a `warning`: they are
 * legitimate in labs and on private clouds, but on a real cloud they mean the wrong thing was asked.
 * Documentation ranges (RFC 5737, RFC 3849) are accepted silently, since test labs use them.
 */
export function checkDiscoveredAddress(text: string, source: DiscoverSource): DiscoverResult {
  const s = text.trim();
  if (s.length === 0) return { ok: false, source, code: 'BAD_ANSWER', detail: 'empty answer (no public address assigned?)' };
  const shown = s.length > 64 ? `${s.slice(0, 64)}…` : s;
  const isV4 = ipaddr.IPv4.isValidFourPartDecimal(s);
  const isV6 = !isV4 && s.includes(':') && !s.includes('%') && ipaddr.IPv6.isValid(s);
  if (!isV4 && !isV6) return { ok: false, source, code: 'BAD_ANSWER', detail: `not an IP address: ${JSON.stringify(shown)}` };
  let addr: ipaddr.IPv4 | ipaddr.IPv6 = ipaddr.parse(s);
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) addr = (addr as ipaddr.IPv6).toIPv4Address();
  const address = addr.toString();
  const range = addr.range();
  if (REJECTED_RANGES.has(range)) return { ok: false, source, code: 'BAD_ANSWER', detail: `${address} is ${range}, not a unicast address` };
  const suspicious = SUSPICIOUS_RANGES[range];
  if (suspicious) return { ok: true, address, source, warning: `${source} reported ${address}, ${suspicious}; advertising it anyway` };
  return { ok: true, address, source };
}

/** A failure value (shorthand). */
export function discoverFailure(source: DiscoverSource, code: DiscoverErrorCode, detail: string): DiscoverFailure {
  return { ok: false, source, code, detail };
}

/** One-line text of a result, for logs and `lastError`: `aws: TIMEOUT (no answer in 2000 ms)`. */
export function describeDiscoverResult(r: DiscoverResult): string {
  return r.ok ? `${r.source}: ${r.address}` : `${r.source}: ${r.code} (${r.detail})`;
}
