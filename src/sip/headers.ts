/**
 * Header field access on a {@link SipMessage} (RFC 3261 §7.3). Lines are kept raw; these
 * helpers look them up by canonical key, split list-valued headers on top-level commas
 * (RFC 3261 §7.3.1: several values of one field may be combined with commas), and edit
 * them while leaving every other line byte for byte.
 */
import type { SipHeader, SipMessage } from './message.js';
import { trimLws } from './chars.js';

/** Compact forms (RFC 3261 §7.3.3 and the IANA registry) → canonical lower-case full name. */
const COMPACT: Record<string, string> = {
  i: 'call-id',
  m: 'contact',
  e: 'content-encoding',
  l: 'content-length',
  c: 'content-type',
  f: 'from',
  s: 'subject',
  k: 'supported',
  t: 'to',
  v: 'via',
  o: 'event',
  r: 'refer-to',
  b: 'referred-by',
  u: 'allow-events',
  a: 'accept-contact',
  j: 'reject-contact',
  d: 'request-disposition',
  x: 'session-expires',
  y: 'identity',
  n: 'identity-info',
};

/** Cache of wire spellings already seen (bounded) → canonical key. */
const keyCache = new Map<string, string>();
const KEY_CACHE_MAX = 1024;

/**
 * Canonical header key: the lower-case full name, with compact forms expanded
 * (`v` → `via`, `M` → `contact`, `Call-ID` → `call-id`). RFC 3261 §7.3.3.
 * @param name header field name as written on the wire
 * @returns lower-case full name (unknown names are just lower-cased)
 */
export function canonicalHeaderKey(name: string): string {
  const cached = keyCache.get(name);
  if (cached !== undefined) return cached;
  const lower = name.toLowerCase();
  const key = lower.length === 1 ? (COMPACT[lower] ?? lower) : lower;
  if (keyCache.size < KEY_CACHE_MAX) {
    // Cache an internalized copy: every `h.key === 'via'` in the code base then compares
    // pointers instead of characters.
    const interned = internalize(key);
    keyCache.set(name, interned);
    return interned;
  }
  return key;
}

/**
 * The engine's internalized (unique) instance of `s`: V8 internalizes property names, so
 * the key of a one-property object is it. Used once per header spelling.
 */
function internalize(s: string): string {
  return Object.keys({ [s]: 0 })[0] ?? s;
}

/**
 * Header keys whose values are comma-separated lists (RFC 3261 §7.3.1, §20 grammar
 * `x *(COMMA x)`). Everything else (Authorization, WWW-Authenticate, Date, Call-ID, …) is
 * never split.
 */
const LIST_HEADERS = new Set<string>([
  'via',
  'contact',
  'route',
  'record-route',
  'path',
  'service-route',
  'allow',
  'supported',
  'require',
  'proxy-require',
  'unsupported',
  'accept',
  'accept-encoding',
  'accept-language',
  'allow-events',
  'in-reply-to',
  'content-encoding',
  'content-language',
  'alert-info',
  'call-info',
  'error-info',
  'warning',
  'p-asserted-identity',
  'p-preferred-identity',
  'p-associated-uri',
  'history-info',
  'reason',
  'security-client',
  'security-server',
  'security-verify',
  'accept-contact',
  'reject-contact',
  'request-disposition',
  'privacy',
]);

/**
 * Whether values of `key` (canonical) are comma-separated lists.
 * @param key canonical key from {@link canonicalHeaderKey}
 */
export function isListHeader(key: string): boolean {
  return LIST_HEADERS.has(key);
}

/**
 * Index of the next top-level comma in `s` at or after `from`, or `s.length` when none.
 * Commas inside quoted strings (with `\` quoted-pairs) and inside `<...>` do not count.
 * Linear time, no backtracking.
 */
function nextComma(s: string, from: number): number {
  if (typeof s !== 'string') return from; // String-type guard (see chars.ts STRING GUARDS).
  const n = s.length;
  let i = from;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c === 44 /* , */) return i;
    if (c === 34 /* " */) {
      i++;
      while (i < n) {
        const d = s.charCodeAt(i);
        if (d === 92 /* \ */) i += 2;
        else if (d === 34) break;
        else i++;
      }
      i++;
    } else if (c === 60 /* < */) {
      const close = s.indexOf('>', i + 1);
      if (close < 0) return n;
      i = close + 1;
    } else i++;
  }
  return n;
}

function isWs(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 10;
}

/**
 * Splits a list-valued header value into trimmed element ranges `[start, end)` (pairs in a
 * flat array). Empty elements are skipped.
 */
function elementRanges(s: string): number[] {
  if (typeof s !== 'string') return []; // String-type guard (see chars.ts STRING GUARDS).
  const out: number[] = [];
  let pos = 0;
  const n = s.length;
  while (pos <= n) {
    const end = nextComma(s, pos);
    let a = pos;
    let b = end;
    while (a < b && isWs(s.charCodeAt(a))) a++;
    while (b > a && isWs(s.charCodeAt(b - 1))) b--;
    if (b > a) out.push(a, b);
    pos = end + 1;
  }
  return out;
}

/** End (exclusive) of the range found by the last {@link firstElementStart} call. */
let firstEnd = 0;

/**
 * Start of the first non-empty element of a list value, or -1; its end is left in `firstEnd`
 * (no array allocated per lookup: this runs for every Via/Route read).
 */
function firstElementStart(s: string): number {
  if (typeof s !== 'string') return -1; // String-type guard (see chars.ts STRING GUARDS).
  let pos = 0;
  const n = s.length;
  while (pos <= n) {
    const end = nextComma(s, pos);
    let a = pos;
    let b = end;
    while (a < b && isWs(s.charCodeAt(a))) a++;
    while (b > a && isWs(s.charCodeAt(b - 1))) b--;
    if (b > a) {
      firstEnd = b;
      return a;
    }
    pos = end + 1;
  }
  return -1;
}

/**
 * Splits one header value on top-level commas (outside quoted strings and `<...>`),
 * trimming each element and dropping empty ones. RFC 3261 §7.3.1.
 * @param value a header field value
 * @returns the elements in order (empty array for an empty value)
 */
export function splitHeaderList(value: string): string[] {
  const r = elementRanges(value);
  const out: string[] = new Array<string>(r.length >> 1);
  for (let i = 0; i < r.length; i += 2) out[i >> 1] = value.slice(r[i], r[i + 1]);
  return out;
}

/**
 * All values of header `key` in message order. `key` may be any spelling (`v`, `Via`);
 * it is canonicalised. List-valued headers (Via, Contact, Route, Record-Route, Path, Allow,
 * Supported, Require, …) are split on top-level commas, respecting quoted strings and
 * `<...>`; other headers (Authorization, WWW-Authenticate, Date, …) yield one value per line.
 * Values are trimmed; empty list elements are dropped. RFC 3261 §7.3.1.
 * @returns values (empty array when the header is absent)
 */
export function getHeaderValues(msg: SipMessage, key: string): string[] {
  const k = canonicalHeaderKey(key);
  const list = LIST_HEADERS.has(k);
  const out: string[] = [];
  const hs = msg.headers;
  for (let i = 0; i < hs.length; i++) {
    const h = hs[i];
    if (h.key !== k) continue;
    if (!list) {
      out.push(trimLws(h.value));
      continue;
    }
    const v = h.value;
    if (v.indexOf(',') < 0) {
      const t = trimLws(v);
      if (t.length > 0) out.push(t);
      continue;
    }
    const r = elementRanges(v);
    for (let j = 0; j < r.length; j += 2) out.push(v.slice(r[j], r[j + 1]));
  }
  return out;
}

/**
 * First value of header `key` (see {@link getHeaderValues} for splitting rules).
 * @returns the trimmed value, or undefined when absent
 */
export function getHeader(msg: SipMessage, key: string): string | undefined {
  const k = canonicalHeaderKey(key);
  const list = LIST_HEADERS.has(k);
  const hs = msg.headers;
  for (let i = 0; i < hs.length; i++) {
    const h = hs[i];
    if (h.key !== k) continue;
    if (!list) return trimLws(h.value);
    const a = firstElementStart(h.value);
    if (a >= 0) return h.value.slice(a, firstEnd);
  }
  return undefined;
}

/** Whether at least one line of header `key` (any spelling) is present. */
export function hasHeader(msg: SipMessage, key: string): boolean {
  const k = canonicalHeaderKey(key);
  const hs = msg.headers;
  for (let i = 0; i < hs.length; i++) if (hs[i].key === k) return true;
  return false;
}

/**
 * Removes every line of header `key` (any spelling).
 * @returns the number of lines removed
 */
export function removeHeader(msg: SipMessage, key: string): number {
  const k = canonicalHeaderKey(key);
  const hs = msg.headers;
  let w = 0;
  for (let i = 0; i < hs.length; i++) {
    const h = hs[i];
    if (h.key !== k) hs[w++] = h;
  }
  const removed = hs.length - w;
  hs.length = w;
  return removed;
}

function makeHeader(name: string, value: string): SipHeader {
  return { name, key: canonicalHeaderKey(name), value };
}

/**
 * Replaces all lines of the header named `name` (any spelling; canonicalised) with one line
 * `name: value` at the position of the first one, or appends it when there was none.
 */
export function setHeader(msg: SipMessage, name: string, value: string): void {
  const nh = makeHeader(name, value);
  const hs = msg.headers;
  let w = 0;
  let placed = false;
  for (let i = 0; i < hs.length; i++) {
    const h = hs[i];
    if (h.key === nh.key) {
      if (!placed) {
        hs[w++] = nh;
        placed = true;
      }
    } else hs[w++] = h;
  }
  hs.length = w;
  if (!placed) hs.push(nh);
}

/** Appends a new line `name: value` at the end of the header list. */
export function appendHeader(msg: SipMessage, name: string, value: string): void {
  msg.headers.push(makeHeader(name, value));
}

/**
 * Inserts a new line `name: value` just before the first existing line of the same key, or at
 * the very top of the header list when there is none (for Via, RFC 3261 §16.6 step 8, and
 * Record-Route, §16.6 step 4).
 */
export function prependHeader(msg: SipMessage, name: string, value: string): void {
  const nh = makeHeader(name, value);
  const hs = msg.headers;
  let i = 0;
  while (i < hs.length && hs[i].key !== nh.key) i++;
  if (i === hs.length) i = 0;
  hs.splice(i, 0, nh);
}

/**
 * Locates the first value of `key`: line index and element range within that line's value.
 * For non-list headers the range is the whole (trimmed) value of the first line.
 */
function locateFirst(msg: SipMessage, k: string): [number, number, number] | undefined {
  const list = LIST_HEADERS.has(k);
  const hs = msg.headers;
  for (let i = 0; i < hs.length; i++) {
    const h = hs[i];
    if (h.key !== k) continue;
    const v = h.value;
    if (!list) {
      let a = 0;
      let b = v.length;
      while (a < b && isWs(v.charCodeAt(a))) a++;
      while (b > a && isWs(v.charCodeAt(b - 1))) b--;
      return [i, a, b];
    }
    const a = firstElementStart(v);
    if (a >= 0) return [i, a, firstEnd];
  }
  return undefined;
}

/**
 * Removes the first value of header `key` (e.g. the top Via in a response, RFC 3261 §18.1.2;
 * the top Route, §16.4). When the first line holds several comma-separated values only the
 * first is cut and the rest of the line stays byte for byte (leading whitespace trimmed);
 * otherwise the line is removed.
 * @returns the removed value (trimmed), or undefined when the header is absent
 */
export function removeFirstHeaderValue(msg: SipMessage, key: string): string | undefined {
  const k = canonicalHeaderKey(key);
  const loc = locateFirst(msg, k);
  if (loc === undefined) return undefined;
  const [i, a, b] = loc;
  const h = msg.headers[i];
  const v = h.value;
  const removed = v.slice(a, b);
  if (!LIST_HEADERS.has(k)) {
    msg.headers.splice(i, 1);
    return removed;
  }
  // Cut [start of line .. the comma after the element]; keep what follows untouched.
  const comma = nextComma(v, b);
  let rest = comma < v.length ? v.slice(comma + 1) : '';
  let s = 0;
  while (s < rest.length && isWs(rest.charCodeAt(s))) s++;
  if (s > 0) rest = rest.slice(s);
  // Anything before `a` is whitespace or empty elements, dropped with the value.
  const remaining = rest;
  if (remaining.length === 0 || firstElementStart(remaining) < 0) msg.headers.splice(i, 1);
  else msg.headers[i] = { name: h.name, key: h.key, value: remaining };
  return removed;
}

/**
 * Replaces the first value of header `key` with `value` (same splitting rules as
 * {@link removeFirstHeaderValue}); the rest of the line stays byte for byte.
 * @returns false when the header is absent (nothing changed)
 */
export function replaceFirstHeaderValue(msg: SipMessage, key: string, value: string): boolean {
  const k = canonicalHeaderKey(key);
  const loc = locateFirst(msg, k);
  if (loc === undefined) return false;
  const [i, a, b] = loc;
  const h = msg.headers[i];
  const v = h.value;
  msg.headers[i] = { name: h.name, key: h.key, value: v.slice(0, a) + value + v.slice(b) };
  return true;
}

/**
 * Copies a message for independent editing: a new headers array of new header objects; the
 * body Buffer is shared (treat it as immutable).
 */
export function cloneMessage<T extends SipMessage>(msg: T): T {
  const hs = msg.headers;
  const copy = new Array<SipHeader>(hs.length);
  for (let i = 0; i < hs.length; i++) {
    const h = hs[i];
    copy[i] = { name: h.name, key: h.key, value: h.value };
  }
  // Built as the same object literal as the parser's (same keys, same order), not by spreading:
  // every message then has one of two shapes, and `msg.headers` stays a fast property load in
  // the hot helpers above (a spread copy gets a shape of its own).
  if (msg.type === 'request') {
    return { type: 'request', method: msg.method, uri: msg.uri, version: msg.version, headers: copy, body: msg.body } as T;
  }
  return { type: 'response', status: msg.status, reason: msg.reason, version: msg.version, headers: copy, body: msg.body } as T;
}
