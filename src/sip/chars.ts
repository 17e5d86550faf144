/**
 * Character classes from RFC 3261 §25.1, as lookup tables for the hand-written scanners.
 */

/** token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~") */
export const TOKEN = new Uint8Array(128);
for (let c = 48; c <= 57; c++) TOKEN[c] = 1;
for (let c = 65; c <= 90; c++) TOKEN[c] = 1;
for (let c = 97; c <= 122; c++) TOKEN[c] = 1;
for (const ch of "-.!%*_+`'~") TOKEN[ch.charCodeAt(0)] = 1;

/*
 * STRING GUARDS. Hot scanners here and in the other sip/ files start with
 * `if (typeof s !== 'string') return …;`. The parameter is typed `string`, so the branch never
 * runs; it is there for V8: header text reaches these functions as flat, sliced, cons and thin
 * strings (different hidden classes), which makes the property-load feedback for `s.length` and
 * `s.charCodeAt` megamorphic, and optimized code then does a generic property lookup per
 * character. After the typeof check the optimizing compiler knows `s` is a string and uses its
 * string fast paths (5× faster scanning in a micro-benchmark; ~10 % of the proxy's CPU in a
 * `perf` profile was such lookups).
 */

/** Whether char code `c` is a token character (RFC 3261 §25.1). */
export function isTokenChar(c: number): boolean {
  return c < 128 && TOKEN[c] === 1;
}

/** Whether `s[start, end)` is a non-empty token. */
export function isToken(s: string, start = 0, end = s.length): boolean {
  if (typeof s !== 'string') return false; // String-type guard (see chars.ts STRING GUARDS).
  if (end <= start) return false;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TOKEN[c] !== 1) return false;
  }
  return true;
}

/** SP or HTAB (and CR/LF, which can only remain from sloppy folding). */
export function isWsp(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 10;
}

/** Index of the first non-whitespace character at or after `i`. */
export function skipWs(s: string, i: number): number {
  if (typeof s !== 'string') return i; // String-type guard (see chars.ts STRING GUARDS).
  const n = s.length;
  while (i < n && isWsp(s.charCodeAt(i))) i++;
  return i;
}

/**
 * End index (exclusive, just past the closing quote) of the quoted-string starting at
 * `s[i] === '"'`, honouring quoted-pairs (RFC 3261 §25.1). Returns -1 when unterminated.
 */
export function quotedStringEnd(s: string, i: number): number {
  if (typeof s !== 'string') return -1; // String-type guard (see chars.ts STRING GUARDS).
  const n = s.length;
  i++;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c === 92) i += 2;
    else if (c === 34) return i + 1;
    else i++;
  }
  return -1;
}

/** Whether `c` may appear in an unquoted generic-param value (token, host, IPv6 reference). */
export function isParamValueChar(c: number): boolean {
  if (c >= 128) return true;
  if (TOKEN[c] === 1) return true;
  // host / IPv6reference, and characters lenient peers put in values (`/`, `@`, `?`, `&`, `=`, `$`, `#`)
  return c === 58 || c === 91 || c === 93 || c === 47 || c === 64 || c === 63 || c === 38 || c === 61 || c === 36 || c === 35;
}

/**
 * Reads `*( SEMI generic-param )` (RFC 3261 §25.1: generic-param = token [ EQUAL gen-value ];
 * gen-value = token / host / quoted-string) from `s` at `i`, allowing LWS around `;` and `=`.
 * Keys are lower-cased; quoted values keep their quotes. Stops at the end of `s`.
 * @returns undefined on success, or an error detail string
 */
export function readGenericParams(
  s: string,
  i: number,
  params: Record<string, string | null>,
  set: (o: Record<string, string | null>, k: string, v: string | null) => void,
): string | undefined {
  if (typeof s !== 'string') return 'not a string'; // String-type guard (see chars.ts STRING GUARDS).
  const n = s.length;
  for (;;) {
    i = skipWs(s, i);
    if (i >= n) return undefined;
    if (s.charCodeAt(i) !== 59) return 'expected ";" before parameter';
    i = skipWs(s, i + 1);
    const ns = i;
    while (i < n && isTokenChar(s.charCodeAt(i))) i++;
    if (i === ns) return 'empty parameter name';
    const name = s.slice(ns, i).toLowerCase();
    i = skipWs(s, i);
    let value: string | null = null;
    if (i < n && s.charCodeAt(i) === 61) {
      i = skipWs(s, i + 1);
      if (i < n && s.charCodeAt(i) === 34) {
        const e = quotedStringEnd(s, i);
        if (e < 0) return 'unterminated quoted parameter value';
        value = s.slice(i, e);
        i = e;
      } else {
        const vs = i;
        while (i < n && isParamValueChar(s.charCodeAt(i))) i++;
        if (i === vs) return 'empty parameter value';
        value = s.slice(vs, i);
      }
    }
    if (!Object.prototype.hasOwnProperty.call(params, name)) set(params, name, value);
  }
}

/**
 * Trims SP, HTAB, CR and LF only (String#trim would also strip U+FEFF, U+00A0 and other
 * Unicode spaces that belong to a value and must be forwarded byte for byte).
 */
export function trimLws(s: string): string {
  if (typeof s !== 'string') return s; // String-type guard (see chars.ts STRING GUARDS).
  let a = 0;
  let b = s.length;
  while (a < b && isWsp(s.charCodeAt(a))) a++;
  while (b > a && isWsp(s.charCodeAt(b - 1))) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}
