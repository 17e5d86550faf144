/**
 * SDP inspection and rewriting for the media relay (pure functions, sdp-transform).
 *
 * What {@link rewriteSdp} changes, and why:
 * - `c=` at session and media level → the advertised address (RFC 4566 §5.7), except the
 *   unspecified address `0.0.0.0` / `::`, which is RFC 2543-style hold ("do not send to me")
 *   and is kept as it is, so that the far end stays quiet too (RFC 3264 §8.4).
 * - `m=` port → the relay's RTP port; a rejected m-line (port 0, RFC 3264 §6) stays port 0.
 * - `a=rtcp` (RFC 3605) → the relay's RTCP port and address. When the m-line also carries
 *   `a=rtcp-mux` (RFC 5761 §5.1.3) and the endpoint's `a=rtcp` pointed at its RTP port, it
 *   points at the relay's RTP port, so RTP and RTCP stay on one port.
 * - `o=` (RFC 4566 §5.2): the address → the advertised address; the session version is kept
 *   per sender by {@link nextOrigin}: RFC 3264 §8 "the version in the origin field MUST
 *   increment by one from the previous SDP" on a change, and "If the version in the origin
 *   line does not increment, the SDP MUST be identical to the SDP with that version number".
 * - ICE (RFC 8839): `a=candidate`, `a=ice-ufrag`, `a=ice-pwd`, `a=ice-options`, `a=ice-lite`,
 *   `a=end-of-candidates`, `a=remote-candidates` are removed while relaying (by default), since
 *   candidates would route media around the relay.
 * - Direction attributes (`a=sendrecv/sendonly/recvonly/inactive`, RFC 3264 §5.1) and
 *   everything else are passed through.
 */
import { isIP } from 'node:net';
import { parse, write, type MediaDescription, type SessionDescription } from 'sdp-transform';

/** Media direction (RFC 3264 §5.1); `sendrecv` when absent. */
export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

/** One m-line as the SDP's author announced it. */
export interface SdpStream {
  /** m-line index, 0-based. */
  index: number;
  /** Media type: `audio`, `video`, `image`, … */
  kind: string;
  /** Transport protocol: `RTP/AVP`, `RTP/SAVPF`, `udptl`, … */
  protocol: string;
  /** Effective connection address (media-level `c=`, else session-level; '' if none on a rejected m-line). */
  address: string;
  /** `m=` port; 0 = rejected/disabled. */
  port: number;
  /** RTCP address: `a=rtcp` address, else {@link address}. */
  rtcpAddress: string;
  /** RTCP port: `a=rtcp` port, else port + 1 (RFC 3605 §2.1). */
  rtcpPort: number;
  /** The m-line carries `a=rtcp-mux` (RFC 5761). */
  rtcpMux: boolean;
  /** Media-level direction, else session-level, else sendrecv. */
  direction: Direction;
  /** `c=` is the unspecified address (RFC 2543 hold). */
  hold: boolean;
  /** Port 0. */
  disabled: boolean;
}

/** The relay ports written for one m-line. */
export interface RelayPorts {
  rtp: number;
  rtcp: number;
}

/** What we last sent on behalf of one party, for the `o=` version rule. */
export interface OriginState {
  username: string;
  sessionId: string;
  /** Session version as a decimal string (may exceed 2^53). */
  version: string;
  /** The rewritten SDP with the version elided, to detect changes. */
  body: string;
}

/** Result of {@link describeSdp}. */
export type DescribeResult = { ok: true; streams: SdpStream[] } | { ok: false; detail: string };

/** Options of {@link rewriteSdp}. */
export interface RewriteOptions {
  /** IP written into `c=`, `o=` and full `a=rtcp`. */
  advertiseAddress: string;
  /** Relay ports per m-line index; `undefined` writes port 0 (not relayed / rejected). */
  ports: ReadonlyArray<RelayPorts | undefined>;
  /** Remove ICE attributes (default true). */
  removeIce?: boolean;
  /** What we sent last time on behalf of this party (for the `o=` version). */
  previous?: OriginState;
}

/** Result of {@link rewriteSdp}. */
export type RewriteResult = { ok: true; sdp: string; streams: SdpStream[]; origin: OriginState } | { ok: false; detail: string };

/** Whether an address is the unspecified address (`0.0.0.0`, `::`) — hold, never a destination. */
export function isUnspecifiedAddress(ip: string): boolean {
  if (ip === '0.0.0.0' || ip === '::') return true;
  return isIP(ip) === 6 && /^[0:.]+$/.test(ip);
}

/** 4 or 6 by address syntax (non-IP text, e.g. a host name in SDP, counts as 4). */
export function ipVersionOf(ip: string): 4 | 6 {
  return isIP(ip) === 6 ? 6 : 4;
}

/** The `o=` fields of an endpoint's SDP that the version rule needs. */
export interface RawOrigin {
  username: string;
  sessionId: string;
  version: string;
}

const ORIGIN_LINE = /^o=(\S+) (\S+) (\d+) (\S+) (\S+) (\S+)[ \t]*\r?$/m;

function readOrigin(sdp: string): RawOrigin | undefined {
  const m = ORIGIN_LINE.exec(sdp);
  if (!m) return undefined;
  return { username: m[1], sessionId: m[2], version: BigInt(m[3]).toString() };
}

type Parsed = { ok: true; session: SessionDescription; origin: RawOrigin; streams: SdpStream[] } | { ok: false; detail: string };

function parseAndDescribe(sdp: string): Parsed {
  if (typeof sdp !== 'string' || !/^v=0[ \t]*\r?$/m.test(sdp.slice(0, 8))) return { ok: false, detail: 'SDP must start with v=0 (RFC 4566 §5)' };
  const origin = readOrigin(sdp);
  if (!origin) return { ok: false, detail: 'missing or malformed o= line (RFC 4566 §5.2)' };
  let session: SessionDescription;
  try {
    session = parse(sdp);
  } catch (err) {
    return { ok: false, detail: `unparseable SDP: ${(err as Error).message}` };
  }
  const streams: SdpStream[] = [];
  const sessionAddr = session.connection?.ip;
  const sessionDir = (session as { direction?: Direction }).direction;
  for (let i = 0; i < session.media.length; i++) {
    const m = session.media[i];
    if (typeof m.type !== 'string' || m.type === '' || typeof m.port !== 'number' || typeof m.protocol !== 'string') {
      return { ok: false, detail: `m-line ${i + 1} is malformed (RFC 4566 §5.14)` };
    }
    if (!Number.isInteger(m.port) || m.port < 0 || m.port > 65535) return { ok: false, detail: `m-line ${i + 1} port out of range` };
    const disabled = m.port === 0;
    const address = m.connection?.ip ?? sessionAddr ?? '';
    if (!disabled && address === '') return { ok: false, detail: `m-line ${i + 1} has no c= line (RFC 4566 §5.7)` };
    const rtcpPortRaw = m.rtcp?.port;
    const rtcpPort = typeof rtcpPortRaw === 'number' && rtcpPortRaw > 0 && rtcpPortRaw <= 65535 ? rtcpPortRaw : m.port + 1;
    const rtcpAddress = typeof m.rtcp?.address === 'string' ? m.rtcp.address : address;
    streams.push({
      index: i,
      kind: m.type,
      protocol: m.protocol,
      address,
      port: m.port,
      rtcpAddress,
      rtcpPort: disabled ? 0 : rtcpPort,
      rtcpMux: m.rtcpMux !== undefined,
      direction: m.direction ?? sessionDir ?? 'sendrecv',
      hold: address !== '' && isUnspecifiedAddress(address),
      disabled,
    });
  }
  return { ok: true, session, origin, streams };
}

/** Reads the m-lines of an SDP (to know what to allocate before rewriting). */
export function describeSdp(sdp: string): DescribeResult {
  const p = parseAndDescribe(sdp);
  return p.ok ? { ok: true, streams: p.streams } : p;
}

/**
 * The `o=` state to send next on behalf of a party (RFC 3264 §8): the party's first SDP keeps
 * its own version; afterwards the version increments by one when the rewritten SDP changed
 * and stays the same when it did not. A different username or session id (another UA behind
 * the same tag) restarts from that UA's version.
 * @param prev what we sent last time for this party
 * @param endpoint the party's own `o=` username, session id and version
 * @param body the rewritten SDP with the version elided
 */
export function nextOrigin(prev: OriginState | undefined, endpoint: RawOrigin, body: string): OriginState {
  if (!prev || prev.username !== endpoint.username || prev.sessionId !== endpoint.sessionId) {
    return { username: endpoint.username, sessionId: endpoint.sessionId, version: endpoint.version, body };
  }
  if (prev.body === body) return prev;
  return { username: prev.username, sessionId: prev.sessionId, version: (BigInt(prev.version) + 1n).toString(), body };
}

type AttrBag = Record<string, unknown> & { invalid?: Array<{ value: string }> };

const ICE_ATTRS = ['candidates', 'iceUfrag', 'icePwd', 'iceOptions', 'icelite', 'endOfCandidates', 'remoteCandidates'] as const;
const ICE_INVALID = /^(ice-|candidate:|remote-candidates|end-of-candidates)/;

function stripIce(bag: AttrBag): void {
  for (const k of ICE_ATTRS) delete bag[k];
  if (bag.invalid) {
    bag.invalid = bag.invalid.filter((a) => !ICE_INVALID.test(a.value));
    if (bag.invalid.length === 0) delete bag.invalid;
  }
}

function rewriteMedia(m: MediaDescription, s: SdpStream, ports: RelayPorts | undefined, adv: string, advVer: 4 | 6): void {
  if (s.disabled || !ports) {
    m.port = 0;
    return;
  }
  const origPort = m.port;
  m.port = ports.rtp;
  if (m.connection && !isUnspecifiedAddress(m.connection.ip)) m.connection = { version: advVer, ip: adv };
  if (m.rtcp) {
    // RFC 5761 §5.1.3 / RFC 8035: with rtcp-mux, an a=rtcp equal to the RTP port means "RTCP on the RTP port".
    const onRtpPort = s.rtcpMux && m.rtcp.port === origPort;
    m.rtcp.port = onRtpPort ? ports.rtp : ports.rtcp;
    if (m.rtcp.address !== undefined && !isUnspecifiedAddress(m.rtcp.address)) {
      m.rtcp.netType = 'IN';
      m.rtcp.ipVer = advVer;
      m.rtcp.address = adv;
    }
  }
}

/**
 * Rewrites an SDP for relaying: see the module comment. Pure: the same inputs give the same
 * output. `streams` describes the SDP as received (the addresses the relay should expect).
 */
export function rewriteSdp(sdp: string, opts: RewriteOptions): RewriteResult {
  const p = parseAndDescribe(sdp);
  if (!p.ok) return p;
  const { session, origin, streams } = p;
  const adv = opts.advertiseAddress;
  const advVer = ipVersionOf(adv);
  const removeIce = opts.removeIce ?? true;

  if (session.connection && !isUnspecifiedAddress(session.connection.ip)) session.connection = { version: advVer, ip: adv };
  if (removeIce) stripIce(session as unknown as AttrBag);
  for (let i = 0; i < session.media.length; i++) {
    const m = session.media[i];
    rewriteMedia(m, streams[i], opts.ports[i], adv, advVer);
    if (removeIce) stripIce(m as unknown as AttrBag);
  }
  // sdp-transform writes the session version through Number(); write o= ourselves to keep 64-bit versions exact.
  session.origin = { ...session.origin, sessionVersion: 0, netType: 'IN', ipVer: advVer, address: adv };
  let written: string;
  try {
    written = write(session);
  } catch (err) {
    return { ok: false, detail: `cannot write SDP: ${(err as Error).message}` };
  }
  const originLine = (version: string): string => `o=${origin.username} ${origin.sessionId} ${version} IN IP${advVer} ${adv}`;
  const body = written.replace(/^o=.*$/m, () => originLine('*'));
  const next = nextOrigin(opts.previous, origin, body);
  const out = written.replace(/^o=.*$/m, () => originLine(next.version));
  return { ok: true, sdp: out, streams, origin: next };
}
