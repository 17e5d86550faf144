/**
 * Self-recognition: does a URI (Request-URI, Route) name this edge? RFC 3261 §16.4: "If the
 * first value in the Route header field indicates this proxy, the proxy MUST remove that value
 * from the request." A URI names us when its host and port are
 *
 *  - a listening address of ours (a wildcard bind counts every interface address),
 *  - an advertised address of ours: a socket's `as`, the public address (fixed or discovered),
 *    and every public address this process advertised before (a Record-Route written before
 *    the address changed comes back in Route headers for the rest of the dialog),
 *  - an address a hook advertised for a transaction ({@link SelfMatcher.learn}; OpenSIPS needs
 *    an `alias` for that, sipedge learns it when it writes it),
 *  - a name in `aliases:` (`host` = any port, `host:port` = that port only).
 *
 * A URI without a port means 5060 (5061 for `sips:` and `transport=tls`, RFC 3263 §4.2). Hosts
 * compare case-insensitively; IPv6 addresses compare in canonical form.
 */
import os from 'node:os';
import ipaddr from 'ipaddr.js';
import type { SipUri } from '../sip/uri.js';
import type { AdvertiseSocket } from '../nat/advertise.js';

/** Former advertised addresses kept (host|port keys), newest first. */
const MAX_FORMER = 64;
/** Addresses learnt from per-transaction advertising (hooks). */
const MAX_LEARNED = 256;

/** Canonical host text: lower case, IPv6 compressed without brackets, IPv4-mapped → IPv4. */
export function canonicalHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.includes(':') && ipaddr.IPv6.isValid(h)) {
    const a = ipaddr.IPv6.parse(h);
    return a.isIPv4MappedAddress() ? a.toIPv4Address().toString() : a.toString();
  }
  return h;
}

/** Parses an alias: `host`, `host:port`, `v6`, `[v6]`, `[v6]:port`. */
export function parseAlias(alias: string): { host: string; port?: number } {
  const s = alias.trim();
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (v6) return { host: canonicalHost(v6[1]), port: v6[2] ? Number(v6[2]) : undefined };
  const colons = s.split(':').length - 1;
  if (colons === 1) {
    const [h, p] = s.split(':');
    if (/^\d+$/.test(p)) return { host: canonicalHost(h), port: Number(p) };
  }
  return { host: canonicalHost(s) };
}

const key = (host: string, port: number): string => `${canonicalHost(host)}|${port}`;

/** Recognises our own addresses. Rebuild it when sockets or the public address change, passing the previous one. */
export class SelfMatcher {
  /** Current listening and advertised addresses. */
  private readonly hostPorts = new Set<string>();
  /** Advertised addresses of earlier generations (public address before a change), newest first. */
  private readonly former: string[];
  private readonly learned: Set<string>;
  private readonly anyPort = new Set<string>();

  /**
   * @param previous the matcher this one replaces: its addresses stay recognised (bounded), so
   *   dialogs set up before a public-address change keep working
   */
  constructor(sockets: AdvertiseSocket[], aliases: string[], publicAddress?: string, previous?: SelfMatcher) {
    for (const a of aliases) {
      const p = parseAlias(a);
      if (p.port === undefined) this.anyPort.add(p.host);
      else this.hostPorts.add(key(p.host, p.port));
    }
    for (const s of sockets) {
      const hosts = new Set<string>();
      if (s.address === '0.0.0.0' || s.address === '::') {
        for (const list of Object.values(os.networkInterfaces())) {
          for (const i of list ?? []) hosts.add(i.address);
        }
      } else hosts.add(s.address);
      if (publicAddress) hosts.add(publicAddress);
      for (const h of hosts) this.hostPorts.add(key(h, s.port));
      if (s.advertised) this.hostPorts.add(key(s.advertised.host, s.advertised.port));
    }
    this.former = [];
    this.learned = new Set();
    if (previous) {
      const seen = new Set<string>();
      for (const k of [...previous.hostPorts, ...previous.former]) {
        if (this.hostPorts.has(k) || seen.has(k)) continue;
        seen.add(k);
        this.former.push(k);
      }
      this.former.length = Math.min(this.former.length, MAX_FORMER);
      for (const k of previous.learned) this.learned.add(k);
    }
  }

  /**
   * Remembers an address advertised for one transaction (a hook's `setAdvertisedAddress`): the
   * Record-Route carrying it comes back in Route headers. The oldest of more than 256 are forgotten.
   */
  learn(host: string, port: number): void {
    const k = key(host, port);
    if (this.hostPorts.has(k)) return;
    this.learned.delete(k);
    this.learned.add(k);
    if (this.learned.size > MAX_LEARNED) this.learned.delete(this.learned.values().next().value as string);
  }

  /** Whether host:port (port undefined = the default for the scheme) names us. */
  isSelfHost(host: string, port: number | undefined, secure = false): boolean {
    const h = canonicalHost(host);
    if (this.anyPort.has(h)) return true;
    const k = `${h}|${port ?? (secure ? 5061 : 5060)}`;
    return this.hostPorts.has(k) || this.learned.has(k) || this.former.includes(k);
  }

  /** Whether a parsed SIP URI names us. */
  isSelf(uri: SipUri): boolean {
    if (uri.scheme !== 'sip' && uri.scheme !== 'sips') return false;
    const secure = uri.scheme === 'sips' || uri.params.transport?.toLowerCase() === 'tls';
    return this.isSelfHost(uri.host, uri.port, secure);
  }

  /** Every recognised host|port (current, former, learned) and any-port alias, for diagnostics. */
  describe(): { current: string[]; former: string[]; learned: string[]; aliases: string[] } {
    return { current: [...this.hostPorts], former: [...this.former], learned: [...this.learned], aliases: [...this.anyPort] };
  }
}
