/**
 * Self-recognition: does a URI (Request-URI, Route) name this edge? True for any listening or
 * advertised address of ours (with the matching port, default 5060/5061) and for names in
 * `aliases` (any port). RFC 3261 §16.4: "If the first value in the Route header field indicates
 * this proxy, the proxy MUST remove that value from the request."
 */
import os from 'node:os';
import type { SipUri } from '../sip/uri.js';
import type { AdvertiseSocket } from '../nat/advertise.js';

/** Recognises our own addresses. Rebuild it when sockets or the public address change. */
export class SelfMatcher {
  private readonly hostPorts = new Set<string>();
  private readonly aliases: Set<string>;

  constructor(sockets: AdvertiseSocket[], aliases: string[], publicAddress?: string) {
    this.aliases = new Set(aliases.map((a) => a.toLowerCase()));
    for (const s of sockets) {
      const hosts = new Set<string>();
      if (s.address === '0.0.0.0' || s.address === '::') {
        const v6 = s.address === '::';
        for (const list of Object.values(os.networkInterfaces())) {
          for (const i of list ?? []) if ((i.family === 'IPv6') === v6 || !v6) hosts.add(i.address.toLowerCase());
        }
      } else hosts.add(s.address.toLowerCase());
      if (publicAddress) hosts.add(publicAddress.toLowerCase());
      for (const h of hosts) this.hostPorts.add(`${h}|${s.port}`);
      if (s.advertised) this.hostPorts.add(`${s.advertised.host.toLowerCase()}|${s.advertised.port}`);
    }
  }

  /** Whether host:port (port undefined = default for the scheme) names us. */
  isSelfHost(host: string, port: number | undefined, secure = false): boolean {
    const h = host.toLowerCase();
    if (this.aliases.has(h)) return true;
    return this.hostPorts.has(`${h}|${port ?? (secure ? 5061 : 5060)}`);
  }

  /** Whether a parsed SIP URI names us. */
  isSelf(uri: SipUri): boolean {
    if (uri.scheme !== 'sip' && uri.scheme !== 'sips') return false;
    return this.isSelfHost(uri.host, uri.port, uri.scheme === 'sips');
  }
}
