/**
 * Via header field values (RFC 3261 §20.42, §18.2.1 received/rport; RFC 3581 rport;
 * RFC 5118 §4.5 IPv6 in `received`).
 */
import type { Parsed } from './message.js';
import { sipError } from './errors.js';
import { isTokenChar, readGenericParams, skipWs } from './chars.js';
import { formatHostPort, formatParams, readHostPort, setOwn } from './uri.js';
import { ParseMemo } from './memo.js';

/** One via-parm: `SIP/2.0/UDP host:port;branch=…;received=…;rport`. */
export interface Via {
  /** Protocol name and version as written without spaces, normally `SIP/2.0`. */
  protocol: string;
  /** Transport, upper-case (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, `WSS`, or unknown tokens). */
  transport: string;
  /** sent-by host, lower-cased; IPv6 without brackets. */
  host: string;
  /** sent-by port when present. */
  port?: number;
  /** via-params, keys lower-cased; values as sent (quoted values keep quotes); `null` for flags like `rport`. */
  params: Record<string, string | null>;
}

function badVia(detail: string, offset?: number): Parsed<Via> {
  return sipError('BAD_VIA', detail, offset === undefined ? undefined : { offset });
}

/** Reads a token at i; returns end index (== i when none). */
function tokenEnd(s: string, i: number): number {
  if (typeof s !== 'string') return i; // String-type guard (see chars.ts STRING GUARDS).
  const n = s.length;
  while (i < n && isTokenChar(s.charCodeAt(i))) i++;
  return i;
}

/**
 * Parses ONE via-parm (split a Via line on commas with `getHeaderValues` first).
 * Grammar (RFC 3261 §25.1): `sent-protocol LWS sent-by *( SEMI via-params )`, with SWS
 * allowed around `/`, `:`, `;` and `=`.
 * @param value one via-parm, e.g. `SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776`
 * @returns the Via, or error `BAD_VIA` (400) with `offset` into `value`
 */
export function parseVia(value: string): Parsed<Via> {
  if (typeof value !== 'string') return badVia('not a string'); // String-type guard (see chars.ts STRING GUARDS).
  const s = value;
  const n = s.length;
  let i = skipWs(s, 0);
  // sent-protocol = protocol-name SLASH protocol-version SLASH transport
  let e = tokenEnd(s, i);
  if (e === i) return badVia('missing protocol name', i);
  const name = s.slice(i, e);
  i = skipWs(s, e);
  if (i >= n || s.charCodeAt(i) !== 47) return badVia('expected "/" after protocol name', i);
  i = skipWs(s, i + 1);
  e = tokenEnd(s, i);
  if (e === i) return badVia('missing protocol version', i);
  const version = s.slice(i, e);
  i = skipWs(s, e);
  if (i >= n || s.charCodeAt(i) !== 47) return badVia('expected "/" after protocol version', i);
  i = skipWs(s, i + 1);
  e = tokenEnd(s, i);
  if (e === i) return badVia('missing transport', i);
  const transport = s.slice(i, e).toUpperCase();
  const ws = skipWs(s, e);
  if (ws === e) return badVia('expected LWS before sent-by', e);
  i = ws;
  // sent-by = host [ COLON port ]
  const hp = readHostPort(s, i);
  if (typeof hp === 'string') return badVia('bad sent-by: ' + hp, i);
  const host = hp.host;
  let port = hp.port;
  i = hp.next;
  if (port === undefined) {
    // COLON = SWS ":" SWS — whitespace around the colon is allowed.
    const j = skipWs(s, i);
    if (j < n && s.charCodeAt(j) === 58) {
      const k = skipWs(s, j + 1);
      let p = 0;
      let m = k;
      while (m < n && m - k < 6 && s.charCodeAt(m) >= 48 && s.charCodeAt(m) <= 57) {
        p = p * 10 + (s.charCodeAt(m) - 48);
        m++;
      }
      if (m === k || m - k > 5 || p > 65535) return badVia('bad sent-by port', k);
      port = p;
      i = m;
    }
  }
  const params: Record<string, string | null> = {};
  const err = readGenericParams(s, i, params, setOwn);
  if (err !== undefined) return badVia(err);
  const v: Via = { protocol: name + '/' + version, transport, host, params };
  if (port !== undefined) v.port = port;
  return { ok: true, value: v };
}

const viaMemo = new ParseMemo<Via>(2048);

/**
 * {@link parseVia} through a memo table: the same via-parm text yields the same (shared) Via
 * object. The result MUST NOT be modified (copy it first, as `stampReceived` does).
 * @returns the Via, or undefined when `value` is not a valid via-parm (call {@link parseVia} for the error)
 */
export function parseViaShared(value: string): Readonly<Via> | undefined {
  return viaMemo.parse(value, parseVia);
}

/** Formats a Via as `SIP/2.0/UDP host:port;params` (IPv6 bracketed). RFC 3261 §20.42. */
export function formatVia(v: Via): string {
  return v.protocol + '/' + v.transport + ' ' + formatHostPort(v.host, v.port) + formatParams(v.params);
}

/**
 * The branch parameter (RFC 3261 §8.1.1.7), or undefined when absent or a bare flag.
 * RFC 3261 branches start with the magic cookie `z9hG4bK`.
 */
export function viaBranch(v: Via): string | undefined {
  const b = v.params.branch;
  return typeof b === 'string' && Object.prototype.hasOwnProperty.call(v.params, 'branch') ? b : undefined;
}
