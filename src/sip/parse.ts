/**
 * SIP message parser (RFC 3261 §7, §18.3, §25; RFC 4475 torture tests). Parses ONE message at
 * the start of a buffer, keeps every header as a raw unfolded line, and validates only what
 * routing and a correct 400 need. Never throws on wire input: failures are returned values.
 */
import { isAscii, isUtf8 } from 'node:buffer';
import type { SipHeader, SipMessage, SipParseError, SipParseResult } from './message.js';
import { sipError } from './errors.js';
import { canonicalHeaderKey } from './headers.js';
import { isToken, isTokenChar, isWsp, quotedStringEnd, readGenericParams, skipWs, trimLws } from './chars.js';
import { parseUri, parseUriShared, setOwn } from './uri.js';
import { parseVia, parseViaShared } from './via.js';
import { parseNameAddr, parseNameAddrShared } from './nameaddr.js';
import { parseCSeq } from './cseq.js';

/** Options for {@link parseMessage}. */
export interface ParseOptions {
  /** Largest accepted message in octets (start line + headers + body). Default 65535. */
  maxSize?: number;
  /** Largest accepted number of header lines (after unfolding). Default 256. */
  maxHeaders?: number;
  /**
   * Stream transport (TCP/TLS/WS framing, RFC 3261 §18.3): Content-Length is mandatory and a
   * message that is not complete yet returns code `INCOMPLETE`. Default false (datagram).
   */
  stream?: boolean;
}

/** Default {@link ParseOptions.maxSize}: 65535 octets. */
export const DEFAULT_MAX_SIZE = 65535;
/** Default {@link ParseOptions.maxHeaders}: 256 lines. */
export const DEFAULT_MAX_HEADERS = 256;

/**
 * Header fields that may appear at most once (RFC 3261 §7.3.1: only fields whose grammar is a
 * comma-separated list may be repeated) — the ones whose repetition matters to routing or
 * framing. RFC 4475 §3.3.8, §3.3.9.
 */
const SINGLE_KEYS = [
  'to',
  'from',
  'call-id',
  'cseq',
  'content-length',
  'max-forwards',
  'content-type',
  'expires',
  'min-expires',
  'date',
  'mime-version',
  'content-disposition',
  'timestamp',
  'rseq',
  'rack',
  'session-expires',
  'min-se',
];
/** Single-instance key → bit in a per-message "seen" mask. */
const SINGLE = new Map<string, number>(SINGLE_KEYS.map((k, i) => [k, 1 << i]));
const BIT_TO = SINGLE.get('to') as number;
const BIT_FROM = SINGLE.get('from') as number;
const BIT_CALL_ID = SINGLE.get('call-id') as number;
const BIT_CSEQ = SINGLE.get('cseq') as number;

const EMPTY_BODY = Buffer.alloc(0);

const LF = 10;
const CR = 13;

/** Decodes header-section octets: ASCII fast path, UTF-8 when valid, else ISO-8859-1. */
function decodeHead(data: Buffer, start: number, end: number): string {
  const view = data.subarray(start, end);
  if (isAscii(view)) return view.toString('latin1');
  if (isUtf8(view)) return view.toString('utf8');
  return view.toString('latin1');
}

/** Whether `s` is `SIP/` 1*DIGIT `.` 1*DIGIT (case-insensitive "SIP"). */
function looksLikeVersion(s: string): boolean {
  if (typeof s !== 'string') return false; // String-type guard (see chars.ts STRING GUARDS).
  if (s.length < 7) return false;
  if ((s.charCodeAt(0) | 32) !== 115 || (s.charCodeAt(1) | 32) !== 105 || (s.charCodeAt(2) | 32) !== 112) return false;
  if (s.charCodeAt(3) !== 47) return false;
  let i = 4;
  const ds = i;
  while (i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) i++;
  if (i === ds || i >= s.length || s.charCodeAt(i) !== 46) return false;
  i++;
  const ds2 = i;
  while (i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) i++;
  return i > ds2 && i === s.length;
}

function isSip20(s: string): boolean {
  return s.length === 7 && looksLikeVersion(s) && s.endsWith('/2.0');
}

/**
 * Reads a decimal value consisting only of digits (after trimming).
 * @returns the value (capped at `cap + 1` when larger), or -1 when not `1*DIGIT`
 */
function readDigits(s: string, cap: number): number {
  if (typeof s !== 'string') return -1; // String-type guard (see chars.ts STRING GUARDS).
  const n = s.length;
  if (n === 0) return -1;
  let v = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    if (v <= cap) v = v * 10 + (c - 48);
  }
  return v > cap ? cap + 1 : v;
}

const WKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

function twoDigits(s: string, i: number, max: number): boolean {
  const a = s.charCodeAt(i) - 48;
  const b = s.charCodeAt(i + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 && a * 10 + b <= max;
}

/**
 * Validates SIP-date = rfc1123-date with the zone fixed to GMT (RFC 3261 §20.17, §25.1):
 * `Sat, 13 Nov 2010 23:29:00 GMT`. Names compared case-insensitively.
 */
export function isValidSipDate(s: string): boolean {
  if (s.length !== 29) return false;
  const l = s.toLowerCase();
  if (!WKDAYS.includes(l.slice(0, 3)) || l[3] !== ',' || l[4] !== ' ') return false;
  if (!twoDigits(l, 5, 31) || l[7] !== ' ') return false;
  if (!MONTHS.includes(l.slice(8, 11)) || l[11] !== ' ') return false;
  for (let i = 12; i < 16; i++) if (l.charCodeAt(i) < 48 || l.charCodeAt(i) > 57) return false;
  if (l[16] !== ' ' || !twoDigits(l, 17, 23) || l[19] !== ':' || !twoDigits(l, 20, 59) || l[22] !== ':') return false;
  if (!twoDigits(l, 23, 60) || l[25] !== ' ') return false;
  return l.slice(26) === 'gmt';
}

/** media-type = m-type "/" m-subtype *( SEMI m-parameter ) (RFC 3261 §20.15). */
function isValidMediaType(v: string): boolean {
  if (typeof v !== 'string') return false; // String-type guard (see chars.ts STRING GUARDS).
  let i = skipWs(v, 0);
  const n = v.length;
  const ts = i;
  while (i < n && isTokenChar(v.charCodeAt(i))) i++;
  if (i === ts) return false;
  i = skipWs(v, i);
  if (i >= n || v.charCodeAt(i) !== 47) return false;
  i = skipWs(v, i + 1);
  const ss = i;
  while (i < n && isTokenChar(v.charCodeAt(i))) i++;
  if (i === ss) return false;
  const params: Record<string, string | null> = {};
  return readGenericParams(v, i, params, setOwn) === undefined;
}

/**
 * Splits a list value into raw elements, reporting empty ones (`a,,b`, trailing comma) as
 * undefined entries so callers can reject them.
 */
function rawElements(v: string): Array<string | undefined> {
  if (typeof v !== 'string') return [undefined]; // String-type guard (see chars.ts STRING GUARDS).
  if (v.indexOf(',') < 0) return [v.length === 0 ? undefined : v];
  const out: Array<string | undefined> = [];
  const n = v.length;
  let pos = 0;
  for (;;) {
    let i = pos;
    while (i < n) {
      const c = v.charCodeAt(i);
      if (c === 44) break;
      if (c === 34) {
        const e = quotedStringEnd(v, i);
        if (e < 0) {
          i = n;
          break;
        }
        i = e;
      } else if (c === 60) {
        const e = v.indexOf('>', i + 1);
        i = e < 0 ? n : e + 1;
      } else i++;
    }
    const el = trimLws(v.slice(pos, i));
    out.push(el.length === 0 ? undefined : el);
    if (i >= n) break;
    pos = i + 1;
  }
  return out;
}

/** Validates one header line's value by key. @returns an error or undefined. */
function validateHeader(h: SipHeader): SipParseError | undefined {
  const v = h.value;
  if (typeof v !== 'string') return sipError('BAD_HEADER_VALUE', 'not a string'); // String-type guard (see chars.ts STRING GUARDS).
  switch (h.key) {
    case 'via': {
      const els = rawElements(v);
      for (const el of els) {
        if (el === undefined) return sipError('BAD_VIA', 'empty Via value');
        // The memo keeps the parse for the layers above (transaction key, response routing).
        if (parseViaShared(el) === undefined) {
          const r = parseVia(el);
          if (!r.ok) return r;
        }
      }
      return undefined;
    }
    case 'from':
    case 'to': {
      const na = parseNameAddrShared(v);
      if (na === undefined) {
        const r = parseNameAddr(v);
        return r.ok ? sipError('BAD_NAME_ADDR', `malformed ${h.name}`) : r;
      }
      if (na.wildcard === true) return sipError('BAD_NAME_ADDR', `"*" is not allowed in ${h.name}`);
      return undefined;
    }
    case 'contact':
    case 'route':
    case 'record-route':
    case 'path': {
      const els = rawElements(v);
      for (const el of els) {
        if (el === undefined) return sipError('BAD_NAME_ADDR', `empty ${h.name} value`);
        // Not memoized: these values are seldom read again (unlike From/To and Via).
        const r = parseNameAddr(el);
        if (!r.ok) return r;
        if (r.value.wildcard === true && (h.key !== 'contact' || els.length > 1)) {
          return sipError('BAD_NAME_ADDR', `"*" is not allowed here in ${h.name}`);
        }
      }
      return undefined;
    }
    case 'cseq': {
      const r = parseCSeq(v);
      return r.ok ? undefined : r;
    }
    case 'call-id': {
      if (v.length === 0) return sipError('BAD_HEADER_VALUE', 'empty Call-ID');
      for (let i = 0; i < v.length; i++) {
        if (isWsp(v.charCodeAt(i))) return sipError('BAD_HEADER_VALUE', 'whitespace in Call-ID');
      }
      return undefined;
    }
    case 'content-length':
      return readDigits(v, 0x7fffffff) < 0 ? sipError('BAD_CONTENT_LENGTH', `Content-Length "${v}" is not 1*DIGIT`) : undefined;
    case 'max-forwards': {
      const mf = readDigits(v, 255);
      return mf < 0 || mf > 255 ? sipError('BAD_MAX_FORWARDS', `Max-Forwards "${v}" is not 0-255`) : undefined;
    }
    case 'expires':
      // RFC 4475 §3.1.2.4: overlarge values may be treated as the default; only syntax is enforced.
      return readDigits(v, 0xffffffff) < 0 ? sipError('BAD_EXPIRES', `Expires "${v}" is not delta-seconds`) : undefined;
    case 'date':
      return isValidSipDate(v) ? undefined : sipError('BAD_DATE', `Date "${v}" is not an RFC 1123 date in GMT`);
    case 'content-type':
      return isValidMediaType(v) ? undefined : sipError('BAD_HEADER_VALUE', 'malformed Content-Type');
    default:
      return undefined;
  }
}

/** Whether an object has at least one own enumerable key (no array allocated). */
function hasAnyKey(o: object): boolean {
  for (const k in o) if (Object.prototype.hasOwnProperty.call(o, k)) return true;
  return false;
}

/** Attaches start-line facts and the headers read so far to an error. */
function withContext(
  e: SipParseError,
  kind: 'request' | 'response' | undefined,
  method: string | undefined,
  headers: SipHeader[] | undefined,
): SipParseError {
  if (kind !== undefined) e.kind = kind;
  if (method !== undefined) e.method = method;
  if (headers !== undefined) e.headers = headers;
  return e;
}

/**
 * Parses ONE SIP message at the start of `data` (RFC 3261 §7).
 *
 * - Leading CR/LF octets are skipped (§7.5); line ends may be CRLF or bare LF; folded lines
 *   are joined with a single SP (§7.3.1); header names may be followed by LWS before `:`.
 * - Input that is empty or only CR/LF octets (a keepalive, RFC 5626 §3.5.1) returns `EMPTY`
 *   with `offset` = its length: drop it silently.
 * - Datagram mode (default): octets after the body are ignored (RFC 4475 §3.1.1.8); with no
 *   Content-Length the body is the rest of the datagram (§18.3); a header section that runs to
 *   the end without an empty line is accepted.
 * - Stream mode: Content-Length is required (§18.3, `MISSING_HEADER`) and an unfinished
 *   message returns `INCOMPLETE` (with kind and method when only the body is missing).
 * - Validation: exact start line (single SP, no trailing SP: `BAD_START_LINE`; token method:
 *   `BAD_METHOD`; Request-URI without `<>`/LWS/escaped headers: `BAD_REQUEST_URI`; version
 *   `SIP/2.0` else `BAD_VERSION` 505; status 3 digits 100–699: `BAD_STATUS_CODE`), header
 *   lines (`BAD_HEADER_LINE`), limits (`TOO_MANY_HEADERS` 400, `TOO_LARGE` 413), single-value
 *   headers not repeated (`DUPLICATE_HEADER`), Via/From/To/Contact/Route/Record-Route/Path
 *   (`BAD_VIA`, `BAD_NAME_ADDR`, `BAD_QUOTED_STRING`, `BAD_URI`), CSeq (`BAD_CSEQ`,
 *   `CSEQ_METHOD_MISMATCH`), Call-ID and Content-Type (`BAD_HEADER_VALUE`), Content-Length
 *   (`BAD_CONTENT_LENGTH`, `CONTENT_LENGTH_MISMATCH`), Max-Forwards 0–255
 *   (`BAD_MAX_FORWARDS`), Expires digits (`BAD_EXPIRES`), Date (`BAD_DATE`), and the
 *   presence of Via, From, To, Call-ID, CSeq (`MISSING_HEADER`). Unknown headers are untouched.
 * - Errors carry `kind`, `method` and the headers read so far, for {@link buildErrorResponse}.
 *
 * Header text is decoded as UTF-8 (ISO-8859-1 when not valid UTF-8). The body is a view
 * into `data` (no copy).
 * @returns `{ ok: true, message, length }` with `length` = octets consumed including leading
 *   CRLFs, or a {@link SipParseError}
 */
export function parseMessage(data: Buffer, opts?: ParseOptions): SipParseResult {
  const maxSize = opts?.maxSize ?? DEFAULT_MAX_SIZE;
  const maxHeaders = opts?.maxHeaders ?? DEFAULT_MAX_HEADERS;
  const stream = opts?.stream === true;
  const n = data.length;

  let start = 0;
  while (start < n && (data[start] === CR || data[start] === LF)) start++;
  if (start === n) {
    if (stream && n === 0) return sipError('INCOMPLETE', 'no data yet', { offset: 0 });
    return sipError('EMPTY', n === 0 ? 'empty message' : 'only CR/LF octets', { offset: n });
  }
  if (!stream && n > maxSize) return sipError('TOO_LARGE', `datagram of ${n} octets exceeds ${maxSize}`);

  // End of the header section: the first empty line (CRLF CRLF, or bare LF LF).
  let headEnd: number; // index of the LF that ends the last header line (exclusive end of head text)
  let bodyStart: number;
  const a = data.indexOf('\n\r\n', start);
  const b = data.indexOf('\n\n', start);
  if (a >= 0 && (b < 0 || a <= b)) {
    headEnd = a;
    bodyStart = a + 3;
  } else if (b >= 0) {
    headEnd = b;
    bodyStart = b + 2;
  } else if (stream) {
    if (n - start > maxSize) return sipError('TOO_LARGE', `header section exceeds ${maxSize} octets`);
    return sipError('INCOMPLETE', 'header section not finished', { offset: n });
  } else {
    // Datagram without the empty line (RFC 4475 baddn): the headers end with the datagram.
    headEnd = n;
    bodyStart = n;
  }
  if (stream && bodyStart > maxSize) return sipError('TOO_LARGE', `header section exceeds ${maxSize} octets`);

  const text = decodeHead(data, start, headEnd);
  if (typeof text !== 'string') return sipError('BAD_HEADER_LINE', 'undecodable header section'); // String-type guard (see chars.ts STRING GUARDS).
  const tn = text.length;

  // ---- start line (RFC 3261 §7.1, §7.2) ----
  let lineEnd = text.indexOf('\n');
  if (lineEnd < 0) lineEnd = tn;
  const line = text.slice(0, lineEnd > 0 && text.charCodeAt(lineEnd - 1) === CR ? lineEnd - 1 : lineEnd);
  let kind: 'request' | 'response' | undefined;
  let method: string | undefined;
  let startErr: SipParseError | undefined;
  const version = 'SIP/2.0';
  let status = 0;
  let reason = '';
  let uri = '';
  if (line.indexOf('\r') >= 0) {
    startErr = sipError('BAD_START_LINE', 'CR inside the start line', { offset: start });
  } else if (line.length >= 4 && line.slice(0, 4).toUpperCase() === 'SIP/') {
    // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
    kind = 'response';
    const sp = line.indexOf(' ');
    const ver = sp < 0 ? line : line.slice(0, sp);
    if (!looksLikeVersion(ver)) startErr = sipError('BAD_START_LINE', 'malformed SIP-Version', { offset: start });
    else if (!isSip20(ver)) startErr = sipError('BAD_VERSION', `unsupported version ${ver}`, { offset: start });
    else if (sp < 0) startErr = sipError('BAD_START_LINE', 'status line without status code', { offset: start });
    else {
      let i = sp + 1;
      const ds = i;
      while (i < line.length && line.charCodeAt(i) >= 48 && line.charCodeAt(i) <= 57) i++;
      if (i - ds !== 3 || (i < line.length && line.charCodeAt(i) !== 32)) {
        startErr = sipError('BAD_STATUS_CODE', `status code "${line.slice(ds, i)}" is not 3 digits`, {
          offset: start + ds,
        });
      } else {
        status = (line.charCodeAt(ds) - 48) * 100 + (line.charCodeAt(ds + 1) - 48) * 10 + (line.charCodeAt(ds + 2) - 48);
        if (status < 100 || status > 699) {
          startErr = sipError('BAD_STATUS_CODE', `status code ${status} out of range`, { offset: start + ds });
        }
        reason = i < line.length ? line.slice(i + 1) : '';
      }
    }
  } else {
    // Request-Line = Method SP Request-URI SP SIP-Version CRLF
    const sp1 = line.indexOf(' ');
    const sp2 = line.lastIndexOf(' ');
    if (sp1 <= 0) {
      startErr = sipError(isToken(line) || line.length === 0 ? 'BAD_START_LINE' : 'BAD_METHOD', 'malformed request line', {
        offset: start,
      });
    } else if (!isToken(line, 0, sp1)) {
      startErr = sipError('BAD_METHOD', 'method is not a token', { offset: start });
    } else {
      kind = 'request';
      method = line.slice(0, sp1);
      const ver = line.slice(sp2 + 1);
      if (sp2 === sp1) startErr = sipError('BAD_START_LINE', 'request line has two elements', { offset: start + sp1 });
      else if (line.charCodeAt(sp1 + 1) === 32) {
        startErr = sipError('BAD_START_LINE', 'more than one SP after the method', { offset: start + sp1 });
      } else if (ver.length === 0 || line.charCodeAt(sp2 - 1) === 32) {
        startErr = sipError('BAD_START_LINE', 'extra SP in the request line', { offset: start + sp2 });
      } else if (!looksLikeVersion(ver)) {
        startErr = sipError('BAD_START_LINE', 'malformed SIP-Version', { offset: start + sp2 + 1 });
      } else if (!isSip20(ver)) {
        startErr = sipError('BAD_VERSION', `unsupported version ${ver}`, { offset: start + sp2 + 1 });
      } else {
        uri = line.slice(sp1 + 1, sp2);
        let bad = -1;
        for (let i = 0; i < uri.length; i++) {
          const c = uri.charCodeAt(i);
          if (c === 32 || c === 9) {
            bad = i;
            break;
          }
        }
        if (bad >= 0) {
          startErr = sipError('BAD_REQUEST_URI', 'LWS inside the Request-URI', { offset: start + sp1 + 1 + bad });
        } else {
          const shared = parseUriShared(uri);
          const u = shared === undefined ? parseUri(uri) : undefined;
          if (u !== undefined && !u.ok) {
            startErr = sipError('BAD_REQUEST_URI', 'Request-URI: ' + u.detail, { offset: start + sp1 + 1 });
          } else if (shared !== undefined && (shared.scheme === 'sip' || shared.scheme === 'sips') && hasAnyKey(shared.headers)) {
            // RFC 3261 §19.1.1: headers are not allowed in the Request-URI (RFC 4475 §3.1.2.11).
            startErr = sipError('BAD_REQUEST_URI', 'escaped headers in the Request-URI', { offset: start + sp1 + 1 });
          }
        }
      }
    }
  }

  // ---- header lines (RFC 3261 §7.3) ----
  const headers: SipHeader[] = [];
  let prev: SipHeader | undefined;
  let pos = lineEnd + 1;
  let lineErr: SipParseError | undefined;
  let nextCr = text.indexOf('\r', pos);
  while (pos < tn) {
    let le = text.indexOf('\n', pos);
    if (le < 0) le = tn;
    const ce = le > pos && text.charCodeAt(le - 1) === CR ? le - 1 : le;
    const lineOff = pos;
    if (nextCr >= 0 && nextCr < ce) {
      lineErr = sipError('BAD_HEADER_LINE', 'CR inside a header line', { offset: start + nextCr });
      break;
    }
    if (nextCr >= 0 && nextCr <= le) nextCr = text.indexOf('\r', le + 1);
    pos = le + 1;
    if (ce === lineOff) continue; // only possible in a datagram without the final empty line
    const c0 = text.charCodeAt(lineOff);
    if (c0 === 32 || c0 === 9) {
      // Continuation line (folding, §7.3.1): replace the line break and leading LWS by one SP.
      if (prev === undefined) {
        lineErr = sipError('BAD_HEADER_LINE', 'continuation line before any header', { offset: start + lineOff });
        break;
      }
      const t = trimLws(text.slice(lineOff, ce));
      if (t.length > 0) prev.value = prev.value.length === 0 ? t : prev.value + ' ' + t;
      continue;
    }
    // field-name = token, then optional SP/HTAB, then ":" (RFC 3261 §7.3.1 HCOLON).
    let i = lineOff;
    while (i < ce && isTokenChar(text.charCodeAt(i))) i++;
    const ne = i;
    while (i < ce && (text.charCodeAt(i) === 32 || text.charCodeAt(i) === 9)) i++;
    if (ne === lineOff || i >= ce || text.charCodeAt(i) !== 58) {
      lineErr = sipError(
        'BAD_HEADER_LINE',
        ne === lineOff ? 'header name is not a token' : 'header name not followed by ":"',
        { offset: start + lineOff },
      );
      break;
    }
    if (headers.length >= maxHeaders) {
      lineErr = sipError('TOO_MANY_HEADERS', `more than ${maxHeaders} header lines`, { offset: start + lineOff });
      break;
    }
    let vs = i + 1;
    let ve = ce;
    while (vs < ve && isWsp(text.charCodeAt(vs))) vs++;
    while (ve > vs && isWsp(text.charCodeAt(ve - 1))) ve--;
    const name = text.slice(lineOff, ne);
    prev = { name, key: canonicalHeaderKey(name), value: text.slice(vs, ve) };
    headers.push(prev);
  }

  if (startErr !== undefined) return withContext(startErr, kind, method, headers);
  if (lineErr !== undefined) return withContext(lineErr, kind, method, headers);

  // ---- framing: Content-Length (RFC 3261 §18.3, §20.14) ----
  let cl = -1;
  let clCount = 0;
  for (let i = 0; i < headers.length; i++) {
    if (headers[i].key === 'content-length') {
      if (clCount++ === 0) cl = readDigits(headers[i].value, 0x7fffffff);
    }
  }
  if (clCount > 0 && cl >= 0) {
    if (stream) {
      if (bodyStart + cl > maxSize) {
        return withContext(sipError('TOO_LARGE', `message of ${bodyStart + cl} octets exceeds ${maxSize}`), kind, method, headers);
      }
      if (n < bodyStart + cl) return sipError('INCOMPLETE', 'body not complete', { offset: n, kind, method });
    }
  }

  // ---- header validation, in line order ----
  let seen = 0;
  let hasVia = false;
  let cseqMethod: string | undefined;
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i];
    const bit = SINGLE.get(h.key);
    if (bit !== undefined) {
      if ((seen & bit) !== 0) {
        return withContext(sipError('DUPLICATE_HEADER', `${h.name} appears more than once`), kind, method, headers);
      }
      seen |= bit;
    }
    let e: SipParseError | undefined;
    if (h.key === 'cseq') {
      const cs = parseCSeq(h.value);
      if (cs.ok) cseqMethod = cs.value.method;
      else e = cs;
    } else {
      if (h.key === 'via') hasVia = true;
      e = validateHeader(h);
    }
    if (e !== undefined) {
      e.detail = `${h.name}: ${e.detail}`;
      delete e.offset; // relative to the value, not the message
      return withContext(e, kind, method, headers);
    }
  }
  // RFC 3261 §8.1.1: To, From, CSeq, Call-ID, Max-Forwards (not enforced: RFC 2543 peers) and Via.
  const missing = !hasVia
    ? 'Via'
    : (seen & BIT_FROM) === 0
      ? 'From'
      : (seen & BIT_TO) === 0
        ? 'To'
        : (seen & BIT_CALL_ID) === 0
          ? 'Call-ID'
          : (seen & BIT_CSEQ) === 0
            ? 'CSeq'
            : undefined;
  if (missing !== undefined) {
    return withContext(sipError('MISSING_HEADER', `missing ${missing} header`), kind, method, headers);
  }
  if (kind === 'request' && cseqMethod !== method) {
    return withContext(
      sipError('CSEQ_METHOD_MISMATCH', `CSeq method ${cseqMethod as string} differs from ${method as string}`),
      kind,
      method,
      headers,
    );
  }

  // ---- body ----
  let body: Buffer;
  let length: number;
  if (clCount === 0) {
    if (stream) {
      return withContext(sipError('MISSING_HEADER', 'Content-Length is mandatory on stream transports'), kind, method, headers);
    }
    body = bodyStart < n ? data.subarray(bodyStart, n) : EMPTY_BODY;
    length = n;
  } else {
    if (bodyStart + cl > n) {
      return withContext(
        sipError('CONTENT_LENGTH_MISMATCH', `Content-Length ${cl} exceeds the ${Math.max(0, n - bodyStart)} octets present`),
        kind,
        method,
        headers,
      );
    }
    body = cl === 0 ? EMPTY_BODY : data.subarray(bodyStart, bodyStart + cl);
    length = bodyStart + cl;
  }

  let message: SipMessage;
  if (kind === 'request') {
    message = { type: 'request', method: method as string, uri, version, headers, body };
  } else {
    message = { type: 'response', status, reason, version, headers, body };
  }
  return { ok: true, message, length };
}
