/**
 * SIP, SIPS and other URIs (RFC 3261 §19.1, §25.1; RFC 5118 for IPv6; RFC 3966 for tel).
 * Hand-written linear scanners: no regular expressions on wire input.
 */
import type { Parsed } from './message.js';
import { sipError } from './errors.js';
import { ParseMemo } from './memo.js';

/**
 * A parsed URI. For `sip`/`sips` every field is filled from the URI; for `tel` the number is
 * in `user` and its parameters in `params` (host `''`); for any other scheme everything after
 * `scheme:` is in `opaque` and host is `''`.
 */
export interface SipUri {
  /** Scheme, lower-case (`sip`, `sips`, `tel`, …). */
  scheme: string;
  /** User part as sent (escaped form, case preserved). */
  user?: string;
  /** Password as sent (escaped form). */
  password?: string;
  /** Host, lower-cased; an IPv6 address WITHOUT brackets; `''` for non-sip schemes. */
  host: string;
  /** Port 0–65535 when present. */
  port?: number;
  /** URI parameters: keys lower-cased (as sent, escaped), values as sent; `null` for a flag like `lr`. */
  params: Record<string, string | null>;
  /** URI headers (`?name=value&…`): names and values as sent (escaped). */
  headers: Record<string, string>;
  /** For non sip/sips/tel schemes: everything after `scheme:`. */
  opaque?: string;
}

/** Sets `obj[key] = value` as an own property even when key is `__proto__`. */
export function setOwn<V>(obj: Record<string, V>, key: string, value: V): void {
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  } else obj[key] = value;
}

/** Whether `obj` has own property `key` (safe for any key). */
export function hasOwn(obj: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(obj, key);
}

function isAlpha(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}
function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isHex(c: number): boolean {
  return isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}
/** hostname characters (RFC 3261 §25.1), plus `_` which is common in the wild. */
function isHostChar(c: number): boolean {
  return isAlpha(c) || isDigit(c) || c === 45 || c === 46 || c === 95;
}

function validIPv4(s: string): boolean {
  if (typeof s !== 'string') return false; // String-type guard (see chars.ts STRING GUARDS).
  let parts = 0;
  let digits = 0;
  let val = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0) return false;
      parts++;
      digits = 0;
      val = 0;
    } else if (isDigit(c)) {
      if (++digits > 3) return false;
      val = val * 10 + (c - 48);
      if (val > 255) return false;
    } else return false;
  }
  return digits > 0 && parts === 3;
}

/**
 * Validates the inside of an IPv6 reference (RFC 3261 §25.1 IPv6address; RFC 4291 §2.2).
 * Tolerates the RFC 3261 ABNF bug form with three colons before an embedded IPv4 address
 * (`2001:db8:::192.0.2.1`, RFC 5118 §4.10).
 */
export function isValidIPv6(h: string): boolean {
  if (typeof h !== 'string') return false; // String-type guard (see chars.ts STRING GUARDS).
  const n = h.length;
  if (n < 2 || n > 64) return false;
  let groups = 0;
  let emptyRuns = 0;
  let maxRun = 0;
  let run = 0;
  let start = 0;
  for (let i = 0; i <= n; i++) {
    if (i < n && h.charCodeAt(i) !== 58) continue;
    const part = h.slice(start, i);
    if (part.length === 0) {
      if (run === 0) emptyRuns++;
      run++;
      if (run > maxRun) maxRun = run;
    } else {
      run = 0;
      if (i === n && part.indexOf('.') >= 0) {
        if (!validIPv4(part)) return false;
        groups += 2;
      } else {
        if (part.length > 4) return false;
        for (let j = 0; j < part.length; j++) if (!isHex(part.charCodeAt(j))) return false;
        groups++;
      }
    }
    start = i + 1;
  }
  if (emptyRuns > 1 || maxRun > 3) return false;
  if (emptyRuns === 0) return groups === 8;
  return groups <= 7;
}

/** Result of {@link readHostPort}: host (lower-case, IPv6 unbracketed), port, next index. */
export interface HostPortScan {
  host: string;
  port?: number;
  next: number;
}

/**
 * Reads `host [":" port]` at `pos` in `s` (RFC 3261 §25.1 hostport). Stops at the first
 * character that cannot belong to it; the caller checks what follows.
 * @returns the scan, or an error string
 */
export function readHostPort(s: string, pos: number): HostPortScan | string {
  if (typeof s !== 'string') return 'not a string'; // String-type guard (see chars.ts STRING GUARDS).
  const n = s.length;
  let i = pos;
  let host: string;
  if (i < n && s.charCodeAt(i) === 91 /* [ */) {
    const close = s.indexOf(']', i + 1);
    if (close < 0) return 'unterminated IPv6 reference';
    host = s.slice(i + 1, close);
    if (!isValidIPv6(host)) return 'bad IPv6 reference';
    host = host.toLowerCase();
    i = close + 1;
  } else {
    while (i < n && isHostChar(s.charCodeAt(i))) i++;
    if (i === pos) return 'empty host';
    host = s.slice(pos, i).toLowerCase();
  }
  if (i < n && s.charCodeAt(i) === 58 /* : */) {
    i++;
    const ps = i;
    let port = 0;
    while (i < n && isDigit(s.charCodeAt(i))) {
      port = port * 10 + (s.charCodeAt(i) - 48);
      i++;
      if (i - ps > 5) return 'port too long';
    }
    if (i === ps) return 'bad port';
    if (port > 65535) return 'port out of range';
    return { host, port, next: i };
  }
  return { host, next: i };
}

/** Characters never allowed anywhere in a URI: CTLs, SP, DEL, `"`, `<`, `>`. */
function hasForbidden(s: string): number {
  if (typeof s !== 'string') return 0; // String-type guard (see chars.ts STRING GUARDS).
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 32 || c === 127 || c === 34 || c === 60 || c === 62) return i;
  }
  return -1;
}

function badUri(detail: string, offset?: number): Parsed<SipUri> {
  return sipError('BAD_URI', detail, offset === undefined ? undefined : { offset });
}

/**
 * Reads `;name[=value]` parameters from `s` starting at `pos` (which must be `;` or a stop
 * character) until `stop` (char code) or the end. Keys lower-cased; empty names rejected.
 * @returns next index, or -1 on error
 */
function readUriParams(s: string, pos: number, params: Record<string, string | null>, stop: number): number {
  if (typeof s !== 'string') return -1; // String-type guard (see chars.ts STRING GUARDS).
  const n = s.length;
  let i = pos;
  while (i < n && s.charCodeAt(i) === 59 /* ; */) {
    i++;
    const ns = i;
    let eq = -1;
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === 59 || c === stop) break;
      if (c === 61 && eq < 0) eq = i;
      i++;
    }
    const nameEnd = eq < 0 ? i : eq;
    if (nameEnd === ns) return -1;
    const name = s.slice(ns, nameEnd).toLowerCase();
    if (!hasOwn(params, name)) setOwn(params, name, eq < 0 ? null : s.slice(eq + 1, i));
  }
  return i;
}

function readUriHeaders(s: string, pos: number, headers: Record<string, string>): boolean {
  if (typeof s !== 'string') return false; // String-type guard (see chars.ts STRING GUARDS).
  const n = s.length;
  if (pos >= n) return false;
  let i = pos;
  while (i < n) {
    const hs = i;
    let eq = -1;
    while (i < n && s.charCodeAt(i) !== 38 /* & */) {
      if (eq < 0 && s.charCodeAt(i) === 61) eq = i;
      i++;
    }
    const nameEnd = eq < 0 ? i : eq;
    if (nameEnd === hs) return false;
    const name = s.slice(hs, nameEnd);
    if (!hasOwn(headers, name)) setOwn(headers, name, eq < 0 ? '' : s.slice(eq + 1, i));
    if (i < n) {
      i++;
      if (i === n) return false;
    }
  }
  return true;
}

/**
 * Parses a URI (RFC 3261 §19.1.1 for sip/sips, RFC 3966 for tel, RFC 3986 `scheme:` for
 * anything else → {@link SipUri.opaque}). IPv6 hosts must be bracketed (RFC 5118 §4.2);
 * `[2001:db8::10:5070]` is an IPv6 host without port (§4.3).
 * @param s the URI text, without `<>` and without surrounding whitespace
 * @returns the URI, or error `BAD_URI` (status 400) with `offset` into `s` when known
 */
export function parseUri(s: string): Parsed<SipUri> {
  if (typeof s !== 'string') return badUri('not a string'); // String-type guard (see chars.ts STRING GUARDS).
  const n = s.length;
  if (n === 0) return badUri('empty URI');
  const bad = hasForbidden(s);
  if (bad >= 0) return badUri('forbidden character in URI', bad);
  // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
  if (!isAlpha(s.charCodeAt(0))) return badUri('URI scheme must start with a letter', 0);
  let i = 1;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (isAlpha(c) || isDigit(c) || c === 43 || c === 45 || c === 46) i++;
    else break;
  }
  if (i >= n || s.charCodeAt(i) !== 58) return badUri('URI without scheme', i);
  const scheme = s.slice(0, i).toLowerCase();
  i++;
  if (i >= n) return badUri('empty URI after scheme', i);
  const params: Record<string, string | null> = {};
  const headers: Record<string, string> = {};

  if (scheme === 'sip' || scheme === 'sips') {
    const uri: SipUri = { scheme, host: '', params, headers };
    // userinfo ends at the first "@" (no "@" may appear unescaped elsewhere, §25.1).
    const at = s.indexOf('@', i);
    if (at >= 0) {
      const colon = s.indexOf(':', i);
      if (colon >= 0 && colon < at) {
        if (colon === i) return badUri('empty user', i);
        uri.user = s.slice(i, colon);
        uri.password = s.slice(colon + 1, at);
      } else {
        if (at === i) return badUri('empty user', i);
        uri.user = s.slice(i, at);
      }
      i = at + 1;
    }
    const hp = readHostPort(s, i);
    if (typeof hp === 'string') return badUri(hp, i);
    uri.host = hp.host;
    if (hp.port !== undefined) uri.port = hp.port;
    i = hp.next;
    if (i < n) {
      const c = s.charCodeAt(i);
      if (c !== 59 && c !== 63) return badUri('unexpected character after host', i);
      i = readUriParams(s, i, params, 63 /* ? */);
      if (i < 0) return badUri('empty URI parameter name');
      if (i < n) {
        // s[i] is "?"
        if (!readUriHeaders(s, i + 1, headers)) return badUri('malformed URI headers', i);
      }
    }
    return { ok: true, value: uri };
  }

  if (scheme === 'tel') {
    let j = i;
    while (j < n && s.charCodeAt(j) !== 59) j++;
    if (j === i) return badUri('empty telephone number', i);
    const uri: SipUri = { scheme, user: s.slice(i, j), host: '', params, headers };
    const end = readUriParams(s, j, params, -1);
    if (end < 0) return badUri('empty tel parameter name');
    return { ok: true, value: uri };
  }

  return { ok: true, value: { scheme, host: '', params, headers, opaque: s.slice(i) } };
}

const uriMemo = new ParseMemo<SipUri>(2048);

/**
 * {@link parseUri} through a memo table: the same text yields the same (shared) SipUri. The
 * result, its `params` and `headers` MUST NOT be modified (copy first).
 * @returns the URI, or undefined when `s` does not parse (call {@link parseUri} for the error)
 */
export function parseUriShared(s: string): Readonly<SipUri> | undefined {
  return uriMemo.parse(s, parseUri);
}

/**
 * Formats host and optional port for the wire: IPv6 addresses get brackets
 * (RFC 3261 §19.1.1 hostport, RFC 5118).
 * @param host host name, IPv4 address, or IPv6 address with or without brackets
 * @param port port number; omitted when undefined
 */
export function formatHostPort(host: string, port?: number): string {
  const h = host.indexOf(':') >= 0 && host.charCodeAt(0) !== 91 ? '[' + host + ']' : host;
  return port === undefined ? h : h + ':' + port;
}

/** Formats `;k` / `;k=v` parameters (RFC 3261 §19.1.1 uri-parameters, §7.3.1 generic-param). */
export function formatParams(params: Record<string, string | null>): string {
  let out = '';
  for (const k in params) {
    if (!hasOwn(params, k)) continue;
    const v = params[k];
    out += v === null ? ';' + k : ';' + k + '=' + v;
  }
  return out;
}

/**
 * Serializes a {@link SipUri} (RFC 3261 §19.1.1). IPv6 hosts are bracketed; parameters and
 * headers are written as stored (already escaped).
 */
export function formatUri(u: SipUri): string {
  if (u.opaque !== undefined) return u.scheme + ':' + u.opaque;
  let out = u.scheme + ':';
  if (u.scheme !== 'sip' && u.scheme !== 'sips') {
    return out + (u.user ?? '') + formatParams(u.params);
  }
  if (u.user !== undefined) {
    out += u.user;
    if (u.password !== undefined) out += ':' + u.password;
    out += '@';
  }
  out += formatHostPort(u.host, u.port);
  out += formatParams(u.params);
  let first = true;
  for (const k in u.headers) {
    if (!hasOwn(u.headers, k)) continue;
    out += (first ? '?' : '&') + k + '=' + u.headers[k];
    first = false;
  }
  return out;
}

/**
 * Decodes `%HH` escapes (RFC 3261 §25.1 escaped) and reads the octets as UTF-8. Malformed
 * `%` sequences are kept literally. `%00` becomes U+0000.
 * @param s escaped text (user, password, parameter, header)
 * @returns the unescaped text (the same string when it holds no `%`)
 */
export function unescapeUriPart(s: string): string {
  if (s.indexOf('%') < 0) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 37 && i + 2 < s.length && isHex(s.charCodeAt(i + 1)) && isHex(s.charCodeAt(i + 2))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c < 128) bytes.push(c);
    else {
      // Non-ASCII literal: append its UTF-8 octets (handles surrogate pairs via codePointAt).
      const cp = s.codePointAt(i) as number;
      if (cp > 0xffff) i++;
      const enc = Buffer.from(String.fromCodePoint(cp), 'utf8');
      for (let k = 0; k < enc.length; k++) bytes.push(enc[k]);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function paramEq(a: string | null, b: string | null): boolean {
  if (a === null || b === null) return a === b;
  return unescapeUriPart(a).toLowerCase() === unescapeUriPart(b).toLowerCase();
}

/** Parameter maps keyed by unescaped, lower-cased names. */
function normParams(p: Record<string, string | null>): Map<string, string | null> {
  const m = new Map<string, string | null>();
  for (const k in p) if (hasOwn(p, k)) m.set(unescapeUriPart(k).toLowerCase(), p[k]);
  return m;
}

/**
 * URI equivalence per RFC 3261 §19.1.4: scheme must match (sip ≠ sips); userinfo compared
 * case-sensitively after unescaping; host case-insensitively; an explicit port never equals
 * an absent one; `user`, `ttl`, `method`, `maddr` (and `transport`) parameters must be in
 * both or neither; other parameters are compared only when in both (case-insensitive,
 * unescaped); URI headers must all be in both and match. Non-sip URIs: tel compares number
 * and parameters; other schemes compare the opaque part case-sensitively.
 */
export function urisEqual(a: SipUri, b: SipUri): boolean {
  if (a.scheme !== b.scheme) return false;
  if (a.opaque !== undefined || b.opaque !== undefined) return a.opaque === b.opaque;
  const au = a.user === undefined ? undefined : unescapeUriPart(a.user);
  const bu = b.user === undefined ? undefined : unescapeUriPart(b.user);
  if (au !== bu) return false;
  if (a.scheme !== 'sip' && a.scheme !== 'sips') {
    // tel (RFC 3966 §4): number plus all parameters, both ways.
    const ap = normParams(a.params);
    const bp = normParams(b.params);
    if (ap.size !== bp.size) return false;
    for (const [k, v] of ap) {
      if (!bp.has(k) || !paramEq(v, bp.get(k) as string | null)) return false;
    }
    return true;
  }
  const apw = a.password === undefined ? undefined : unescapeUriPart(a.password);
  const bpw = b.password === undefined ? undefined : unescapeUriPart(b.password);
  if (apw !== bpw) return false;
  if (a.host.toLowerCase() !== b.host.toLowerCase()) return false;
  if (a.port !== b.port) return false;
  const ap = normParams(a.params);
  const bp = normParams(b.params);
  for (const [k, v] of ap) {
    if (bp.has(k)) {
      if (!paramEq(v, bp.get(k) as string | null)) return false;
    } else if (k === 'user' || k === 'ttl' || k === 'method' || k === 'maddr' || k === 'transport') {
      return false;
    }
  }
  for (const k of bp.keys()) {
    if (!ap.has(k) && (k === 'user' || k === 'ttl' || k === 'method' || k === 'maddr' || k === 'transport')) {
      return false;
    }
  }
  const ah = new Map<string, string>();
  for (const k in a.headers) if (hasOwn(a.headers, k)) ah.set(unescapeUriPart(k).toLowerCase(), a.headers[k]);
  const bh = new Map<string, string>();
  for (const k in b.headers) if (hasOwn(b.headers, k)) bh.set(unescapeUriPart(k).toLowerCase(), b.headers[k]);
  if (ah.size !== bh.size) return false;
  for (const [k, v] of ah) {
    const w = bh.get(k);
    if (w === undefined || unescapeUriPart(v).toLowerCase() !== unescapeUriPart(w).toLowerCase()) return false;
  }
  return true;
}
