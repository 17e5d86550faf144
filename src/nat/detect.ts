/**
 * NAT detection for requests from UAs, as named, composable tests in the manner of
 * Kamailio's `nat_uac_test`. Each test is a pure function of the request, the address it came
 * from and (for `rport-present`) the octets as received; {@link runNatTests} returns the names of
 * the tests that fired and {@link detectNat} turns them into the `nat.clients` decision.
 *
 * | test             | fires when                                                            | Kamailio flag |
 * |------------------|-----------------------------------------------------------------------|---------------|
 * | `contact-private`| a Contact URI host is a private address (RFC 1918, RFC 6598 100.64/10, link-local, ULA) | 1 |
 * | `via-received`   | the top Via sent-by host differs from the source IP (RFC 3261 §18.2.1) | 2             |
 * | `via-rport`      | UDP only: the top Via port (default 5060) differs from the source port (RFC 3581) | 16 |
 * | `rport-present`  | the UA asked for `rport` in its top Via (RFC 3581 §3)                  | —             |
 * | `sdp-private`    | an `application/sdp` body has a private `c=` address                   | 8             |
 * | `source-private` | the source IP itself is a private address                              | 32            |
 *
 * `nat.clients: auto` says NATed when any of these fired (see {@link AUTO_NAT_TESTS}):
 *  - `via-received` or `via-rport`: something between the UA and us rewrote the address or port
 *    it sends from — that is what a NAT does;
 *  - `contact-private` / `sdp-private`, unless that private address is the source address itself
 *    (a phone on our own LAN or `localnet` is reachable at its private address).
 * They never do on their own:
 *  - `rport-present`: RFC 3581 asks every client to send `rport`, NATed or not, so many public UAs
 *    carry it;
 *  - `source-private`: a private source is on our side of any NAT (our LAN, a VPN, `localnet`)
 *    and is reached at that address as it is.
 * Both are still reported, so `show peers` tells the whole story.
 */
import { isPrivateAddress, normalizedIp } from './advertise.js';
import type { Logger } from '../lib/log.js';
import type { SipRequest } from '../sip/message.js';
import { getHeader, getHeaderValues, splitHeaderList } from '../sip/headers.js';
import { parseVia, type Via } from '../sip/via.js';
import { parseNameAddr } from '../sip/nameaddr.js';
import { formatHostPort } from '../sip/uri.js';
import type { HostPort } from '../transport/types.js';

/** Names of the detection tests (stable; shown in `show peers` and the debug log). */
export type NatTestName = 'contact-private' | 'via-received' | 'via-rport' | 'rport-present' | 'sdp-private' | 'source-private';

/** Every test, in the order results are reported. */
export const NAT_TEST_NAMES: readonly NatTestName[] = ['via-received', 'via-rport', 'rport-present', 'contact-private', 'sdp-private', 'source-private'];

/** Tests that can make `nat.clients: auto` say NATed (subject to the exceptions in the module doc). */
export const AUTO_NAT_TESTS: ReadonlySet<NatTestName> = new Set<NatTestName>(['via-received', 'via-rport', 'contact-private', 'sdp-private']);

/** `nat.clients`: `auto` decides per request, `force` treats every UA as NATed, `off` none. */
export type NatClientsMode = 'auto' | 'force' | 'off';

/** Whether an address is private: RFC 1918, RFC 6598 (100.64/10), link-local, ULA (fc00::/7). */
export { isPrivateAddress };

/** Result of {@link detectNat}. */
export interface NatDecision {
  nat: boolean;
  /** Tests that fired, in {@link NAT_TEST_NAMES} order (also when `mode` decided alone). */
  tests: NatTestName[];
  /** The `nat.clients` mode that made the decision. */
  mode: NatClientsMode;
}

/** Extra inputs of the tests. */
export interface NatTestOptions {
  /**
   * The request as received. The transport stamps `received`/`rport` into the top Via of every
   * request (RFC 3581 behaviour forced for every client), so whether the UA itself asked for
   * `rport` can only be read from the original octets. Without it the parsed Via is used.
   */
  raw?: Buffer;
}

/** Options of {@link detectNat}. */
export interface DetectNatOptions extends NatTestOptions {
  /** Logs the decision at debug level with the tests that fired. */
  log?: Logger;
}

/** Normalised IP text for comparisons (IPv4-mapped IPv6 → IPv4, IPv6 compressed, brackets off); other hosts lower-cased. */
function normIp(host: string): string {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return normalizedIp(h) ?? h.toLowerCase();
}

function topVia(req: SipRequest): Via | undefined {
  const v = getHeader(req, 'via');
  if (v === undefined) return undefined;
  const p = parseVia(v);
  return p.ok ? p.value : undefined;
}

/** The value of the first Via header line of a raw message (compact `v` too), or undefined. */
function rawTopViaValue(raw: Buffer): string | undefined {
  const end = raw.indexOf('\r\n\r\n');
  const head = raw.subarray(0, end < 0 ? Math.min(raw.length, 65536) : end).toString('latin1');
  const lines = head.split(/\r?\n/);
  for (let i = 1; i < lines.length; i++) {
    const m = /^(via|v)[ \t]*:(.*)$/i.exec(lines[i]);
    if (!m) continue;
    let value = m[2];
    // RFC 3261 §7.3.1: a line starting with whitespace continues the previous one.
    while (i + 1 < lines.length && /^[ \t]/.test(lines[i + 1])) value += ' ' + lines[++i].trim();
    return splitHeaderList(value)[0];
  }
  return undefined;
}

/** `rport-present`: the UA's own top Via carries `rport` (RFC 3581 §3), read from the octets when given. */
function rportSent(req: SipRequest, raw: Buffer | undefined): boolean {
  if (raw !== undefined) {
    const v = rawTopViaValue(raw);
    if (v === undefined) return false;
    const p = parseVia(v);
    return p.ok && Object.prototype.hasOwnProperty.call(p.value.params, 'rport');
  }
  const v = topVia(req);
  return v !== undefined && Object.prototype.hasOwnProperty.call(v.params, 'rport');
}

/** Private hosts of the request's Contact URIs (wildcard and non-IP hosts skipped). */
function privateContactHosts(req: SipRequest): string[] {
  const out: string[] = [];
  for (const c of getHeaderValues(req, 'contact')) {
    const na = parseNameAddr(c);
    if (na.ok && !na.value.wildcard && isPrivateAddress(na.value.uri.host)) out.push(normIp(na.value.uri.host));
  }
  return out;
}

/** Private `c=` addresses of an `application/sdp` body (RFC 4566 §5.7). */
function privateSdpAddresses(req: SipRequest): string[] {
  if (req.body.length === 0) return [];
  const ct = getHeader(req, 'content-type');
  if (!ct || ct.split(';')[0].trim().toLowerCase() !== 'application/sdp') return [];
  const out: string[] = [];
  const re = /^c=IN IP[46] ([^\s/]+)/gm;
  const text = req.body.toString('latin1');
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) if (isPrivateAddress(m[1])) out.push(normIp(m[1]));
  return out;
}

/** Evidence gathered by the tests, for the `auto` policy. */
interface Evidence {
  tests: NatTestName[];
  /** A private Contact / SDP address that is not the source address. */
  contactElsewhere: boolean;
  sdpElsewhere: boolean;
}

function evaluate(req: SipRequest, source: HostPort, opts: NatTestOptions): Evidence {
  const fired = new Set<NatTestName>();
  const src = normIp(source.address);
  const via = topVia(req);
  if (via) {
    if (normIp(via.host) !== src) fired.add('via-received');
    // Over TCP/TLS the source port is the UA's ephemeral connecting port, never its Via port:
    // the comparison only means something for UDP.
    const t = via.transport.toUpperCase();
    if ((t === 'UDP' || t === 'DTLS') && (via.port ?? 5060) !== source.port) fired.add('via-rport');
  }
  if (rportSent(req, opts.raw)) fired.add('rport-present');
  const contacts = privateContactHosts(req);
  if (contacts.length > 0) fired.add('contact-private');
  const sdp = privateSdpAddresses(req);
  if (sdp.length > 0) fired.add('sdp-private');
  if (isPrivateAddress(source.address)) fired.add('source-private');
  return {
    tests: NAT_TEST_NAMES.filter((t) => fired.has(t)),
    contactElsewhere: contacts.some((h) => h !== src),
    sdpElsewhere: sdp.some((h) => h !== src),
  };
}

/**
 * Runs every detection test on a request received from `source`.
 * @returns the names of the tests that fired, in {@link NAT_TEST_NAMES} order
 */
export function runNatTests(req: SipRequest, source: HostPort, opts: NatTestOptions = {}): NatTestName[] {
  return evaluate(req, source, opts).tests;
}

/** The `auto` policy over the evidence (see the module doc). */
function autoSaysNat(e: Evidence): boolean {
  for (const t of e.tests) {
    if (!AUTO_NAT_TESTS.has(t)) continue;
    if (t === 'contact-private' && !e.contactElsewhere) continue;
    if (t === 'sdp-private' && !e.sdpElsewhere) continue;
    return true;
  }
  return false;
}

/**
 * Decides whether the UA that sent `req` from `source` is behind NAT (`nat.clients`).
 * The tests always run, so the decision carries them also under `force` and `off`.
 * @param mode `auto` applies the policy of the module doc, `force` marks every UA NATed, `off` none.
 */
export function detectNat(req: SipRequest, source: HostPort, mode: NatClientsMode = 'auto', opts: DetectNatOptions = {}): NatDecision {
  const e = evaluate(req, source, opts);
  const nat = mode === 'force' ? true : mode === 'off' ? false : autoSaysNat(e);
  // Level-guarded: building the log object costs more than the tests at warn level.
  if (opts.log?.isLevelEnabled('debug') === true) {
    opts.log.debug(
      { method: req.method, source: formatHostPort(source.address, source.port), mode, nat, tests: e.tests },
      nat ? 'nat detection: UA is behind NAT' : 'nat detection: UA is not behind NAT',
    );
  }
  return { nat, tests: e.tests, mode };
}
