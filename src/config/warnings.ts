/**
 * Valid-but-suspicious settings: things the schema accepts that are probably not what the
 * operator meant. Reported by `sipedge check` and logged at start; never fatal.
 */
import ipaddr from 'ipaddr.js';
import type { SipedgeConfig } from './types.js';
import { parseCidr, parseHostPort } from './values.js';

/** Passwords copied from DESIGN.md / the examples that must not stay in production. */
const EXAMPLE_PASSWORDS = new Set(['change-me', 'changeme', 'password', 'secret']);

/** Returns the warnings for a validated config, each a sentence naming its key path. */
export function configWarnings(c: SipedgeConfig): string[] {
  const w: string[] = [];
  const pa = c.publicAddress;
  if (pa.stunServers && !pa.discover?.includes('stun')) {
    w.push('publicAddress.stunServers is ignored: publicAddress.discover does not include stun');
  }
  if (pa.metadata && !pa.discover?.some((m) => m !== 'stun')) {
    w.push('publicAddress.metadata is ignored: publicAddress.discover lists no cloud (aws, gcp, azure)');
  }
  c.localnet.forEach((cidr, i) => {
    const r = parseCidr(cidr);
    if (r.ok && r.value.hostBits) w.push(`localnet.${i}: ${cidr} has host bits set; it means ${r.value.network}/${r.value.prefix}`);
  });
  if (c.media.relay === 'never' && c.media.advertise) {
    w.push('media.advertise is ignored: media.relay is never (media flows directly between the phones)');
  }
  if (c.nat.keepalive.method === 'crlf' && c.sockets.length > 0 && c.sockets.every((s) => s.transport === 'udp')) {
    // Not wrong (RFC 5626 allows CRLF over UDP only as STUN), but phones ignore bare CRLF on UDP.
    w.push('nat.keepalive.method crlf is meant for TCP/TLS flows; UDP peers usually need options or stun');
  }
  c.users.forEach((u, i) => {
    if (EXAMPLE_PASSWORDS.has(u.password.toLowerCase())) w.push(`users.${i}.password: user "${u.username}" still has an example password`);
  });
  const api = parseHostPort(c.api.listen);
  if (c.api.enabled && api.ok && !isLoopback(api.value.host)) {
    w.push(`api.listen ${c.api.listen} is not a loopback address: the admin API has no authentication`);
  }
  return w;
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (!ipaddr.isValid(host)) return false;
  return ipaddr.process(host).range() === 'loopback';
}
