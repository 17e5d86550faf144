/**
 * name-addr / addr-spec header values: From, To, Contact, Route, Record-Route, Path,
 * Refer-To … (RFC 3261 §20.10, §20.20, §20.39, §25.1).
 */
import type { Parsed } from './message.js';
import { sipError } from './errors.js';
import { isTokenChar, isWsp, quotedStringEnd, readGenericParams, skipWs } from './chars.js';
import { formatParams, formatUri, parseUri, setOwn, type SipUri } from './uri.js';
import { ParseMemo } from './memo.js';

/** A parsed name-addr or addr-spec with header parameters. */
export interface NameAddr {
  /** Display name as written: a quoted form keeps its quotes (and escapes); else the token sequence. */
  displayName?: string;
  /** The URI. For the `Contact: *` wildcard: `{ scheme: '', host: '*', params: {}, headers: {} }`. */
  uri: SipUri;
  /** Header parameters (`;tag=…`, `;expires=…`, `;q=…`), keys lower-cased, values as sent (quoted keep quotes); `null` for flags. */
  params: Record<string, string | null>;
  /** True for `Contact: *` (RFC 3261 §10.2.2). */
  wildcard?: boolean;
}

function bad(detail: string, offset?: number): Parsed<NameAddr> {
  return sipError('BAD_NAME_ADDR', detail, offset === undefined ? undefined : { offset });
}

/**
 * Parses one name-addr (`"Alice" <sip:alice@example.com>;tag=1`), addr-spec
 * (`sip:alice@example.com;tag=1` — parameters after an unbracketed URI are header
 * parameters, RFC 3261 §20.10) or the Contact wildcard `*`.
 * An addr-spec must not contain `,` `?` (or `;` inside the URI); those need `<>`.
 * Whitespace inside `<...>` is rejected (RFC 3261 LAQUOT/RAQUOT; RFC 4475 §3.1.2.14).
 * @param value one header value (split list headers first)
 * @returns the NameAddr, or an error: `BAD_QUOTED_STRING` (unterminated display name or
 *   parameter quote), `BAD_URI` (the URI itself), `BAD_NAME_ADDR` (anything else); status 400
 */
export function parseNameAddr(value: string): Parsed<NameAddr> {
  if (typeof value !== 'string') return bad('not a string'); // String-type guard (see chars.ts STRING GUARDS).
  const s = value;
  const n = s.length;
  const i = skipWs(s, 0);
  if (i >= n) return bad('empty address');
  let end = n;
  while (end > i && isWsp(s.charCodeAt(end - 1))) end--;
  if (end - i === 1 && s.charCodeAt(i) === 42 /* * */) {
    return { ok: true, value: { uri: { scheme: '', host: '*', params: {}, headers: {} }, params: {}, wildcard: true } };
  }
  let displayName: string | undefined;
  let uriStart: number;
  let uriEnd: number;
  let after: number;
  const c0 = s.charCodeAt(i);
  let lt = -1;
  if (c0 === 34 /* " */) {
    const qe = quotedStringEnd(s, i);
    if (qe < 0) return sipError('BAD_QUOTED_STRING', 'unterminated quoted display name', { offset: i });
    displayName = s.slice(i, qe);
    lt = skipWs(s, qe);
    if (lt >= n || s.charCodeAt(lt) !== 60) return bad('expected "<" after display name', lt);
  } else if (c0 === 60 /* < */) {
    lt = i;
  } else {
    // Either `token *(LWS token) <uri>` or an addr-spec. A "<" decides.
    let j = i;
    while (j < n) {
      const c = s.charCodeAt(j);
      if (c === 60 || c === 59 || c === 44 || c === 34) break;
      j++;
    }
    if (j < n && s.charCodeAt(j) === 60) {
      lt = j;
      let e = j;
      while (e > i && isWsp(s.charCodeAt(e - 1))) e--;
      for (let k = i; k < e; k++) {
        const c = s.charCodeAt(k);
        if (!isTokenChar(c) && !isWsp(c)) return bad('display name must be tokens or a quoted string', k);
      }
      displayName = s.slice(i, e);
    } else if (j < n && s.charCodeAt(j) === 34) {
      return bad('misplaced quote', j);
    }
  }
  if (lt >= 0) {
    const gt = s.indexOf('>', lt + 1);
    if (gt < 0) return bad('missing ">"', lt);
    uriStart = lt + 1;
    uriEnd = gt;
    if (uriEnd === uriStart) return bad('empty <>', lt);
    if (isWsp(s.charCodeAt(uriStart)) || isWsp(s.charCodeAt(uriEnd - 1))) {
      return bad('whitespace inside <>', uriStart);
    }
    after = gt + 1;
  } else {
    // addr-spec: the URI runs to the first ";" or whitespace.
    uriStart = i;
    let j = i;
    while (j < n) {
      const c = s.charCodeAt(j);
      if (c === 59 || isWsp(c)) break;
      if (c === 44 || c === 63) {
        if (s.indexOf('<', j) >= 0) return bad('display name must be tokens or a quoted string', j);
        return bad('addr-spec with "," or "?" must be enclosed in <>', j);
      }
      if (c === 62) return bad('unexpected ">"', j);
      j++;
    }
    uriEnd = j;
    after = j;
  }
  const u = parseUri(s.slice(uriStart, uriEnd));
  if (!u.ok) {
    if (u.offset !== undefined) u.offset += uriStart;
    return u;
  }
  const params: Record<string, string | null> = {};
  const err = readGenericParams(s, after, params, setOwn);
  if (err !== undefined) {
    if (err.startsWith('unterminated')) return sipError('BAD_QUOTED_STRING', err);
    return bad(err);
  }
  const na: NameAddr = { uri: u.value, params };
  if (displayName !== undefined && displayName.length > 0) na.displayName = displayName;
  return { ok: true, value: na };
}

/**
 * Formats a NameAddr, always with `<>` (RFC 3261 §20.10): `"Alice" <sip:a@b>;tag=1`,
 * or `*` for the wildcard.
 */
export function formatNameAddr(na: NameAddr): string {
  if (na.wildcard === true) return '*';
  const dn = na.displayName !== undefined && na.displayName.length > 0 ? na.displayName + ' ' : '';
  return dn + '<' + formatUri(na.uri) + '>' + formatParams(na.params);
}

/**
 * Unquotes a display name: strips surrounding quotes and resolves quoted-pairs
 * (`"J \"R\""` → `J "R"`). Token display names are returned unchanged.
 */
export function displayNameText(displayName: string): string {
  if (displayName.length < 2 || displayName.charCodeAt(0) !== 34) return displayName;
  let out = '';
  for (let i = 1; i < displayName.length - 1; i++) {
    const c = displayName[i];
    if (c === '\\' && i + 1 < displayName.length - 1) {
      out += displayName[i + 1];
      i++;
    } else out += c;
  }
  return out;
}

const nameAddrMemo = new ParseMemo<NameAddr>(2048);

/**
 * {@link parseNameAddr} through a memo table: the same text yields the same (shared) NameAddr.
 * The result, its `uri` and `params` MUST NOT be modified (copy first).
 * @returns the name-addr, or undefined when `value` does not parse (call {@link parseNameAddr} for the error)
 */
export function parseNameAddrShared(value: string): Readonly<NameAddr> | undefined {
  return nameAddrMemo.parse(value, parseNameAddr);
}

/**
 * The `tag` parameter of a From/To value (RFC 3261 §19.3), or undefined when the value has no
 * tag or does not parse.
 */
export function tagParam(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  const na = parseNameAddrShared(value);
  if (na === undefined) return undefined;
  const t = na.params.tag;
  return t === null || t === undefined ? undefined : t;
}
