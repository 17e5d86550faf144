/**
 * Address-of-record canonicalisation (RFC 3261 §10.3 step 5: "the registrar … MUST convert the
 * URI to a canonical form … all URI parameters MUST be removed … and any escaped characters
 * MUST be converted to their unescaped form").
 */
import { formatHostPort, parseUri, type SipUri } from '../sip/uri.js';

/** Characters that may stand unescaped in a SIP URI user part (RFC 3261 §25.1 unreserved / user-unreserved). */
const USER_SAFE = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()&=+$,;?/") USER_SAFE[c.charCodeAt(0)] = 1;

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/**
 * Canonical user part: `%HH` escapes of characters allowed unescaped are decoded
 * (`%31001` → `1001`); the others keep their escape with upper-case hex digits, so two
 * spellings of one user give one key. Case is preserved (user parts are case-sensitive).
 */
export function canonicalUser(user: string): string {
  if (user.indexOf('%') < 0) return user;
  let out = '';
  for (let i = 0; i < user.length; i++) {
    const c = user.charCodeAt(i);
    if (c === 37 && i + 2 < user.length) {
      const h = hexVal(user.charCodeAt(i + 1));
      const l = hexVal(user.charCodeAt(i + 2));
      if (h >= 0 && l >= 0) {
        const v = h * 16 + l;
        out += v < 128 && USER_SAFE[v] === 1 ? String.fromCharCode(v) : '%' + user.slice(i + 1, i + 3).toUpperCase();
        i += 2;
        continue;
      }
    }
    out += user[i];
  }
  return out;
}

/**
 * Canonical AOR of a SIP or SIPS URI: `sip:user@host` — scheme `sip` (a `sips:` AOR names the
 * same resource), user unescaped where allowed (see {@link canonicalUser}), host lower-case
 * (IPv6 in brackets), no password, port, parameters or headers. `sip:host` when there is no user.
 * @param uri a parsed URI or URI text (without `<>`)
 * @returns the AOR, or undefined for an unparsable or non-SIP URI (tel:, http:, …)
 */
export function aorFromUri(uri: SipUri | string): string | undefined {
  let u: SipUri;
  if (typeof uri === 'string') {
    const p = parseUri(uri);
    if (!p.ok) return undefined;
    u = p.value;
  } else u = uri;
  if ((u.scheme !== 'sip' && u.scheme !== 'sips') || u.host === '') return undefined;
  const host = formatHostPort(u.host.toLowerCase());
  return u.user === undefined ? 'sip:' + host : 'sip:' + canonicalUser(u.user) + '@' + host;
}
