/**
 * Reading the parts of a REGISTER Contact value the registrar needs (RFC 3261 §10.2.1, §20.10;
 * RFC 5626 §4.2 +sip.instance / reg-id). Pure functions on strings: no allocation beyond results.
 */

/** Largest delta-seconds we accept before clamping (RFC 3261 §20.19: up to 2^32-1). */
const MAX_DELTA = 4_294_967_295;

/**
 * Parses delta-seconds (`1*DIGIT`, RFC 3261 §20.19 / §10.2.1.1 `expires` param).
 * @returns seconds (values above 2^32-1 are capped there), or undefined when malformed
 */
export function parseDeltaSeconds(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined) return undefined;
  const s = value.trim();
  const n = s.length;
  if (n === 0) return undefined;
  let v = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
    v = v * 10 + (c - 48);
    if (v > MAX_DELTA) v = MAX_DELTA;
  }
  return v;
}

/**
 * Parses a q-value (RFC 3261 §25.1: `( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`).
 * @returns 0..1, or undefined when malformed
 */
export function parseQValue(value: string | null): number | undefined {
  if (value === null) return undefined;
  const s = value;
  const n = s.length;
  if (n === 0 || n > 5) return undefined;
  const first = s.charCodeAt(0);
  if (first !== 48 && first !== 49) return undefined;
  if (n === 1) return first - 48;
  if (s.charCodeAt(1) !== 46 /* . */) return undefined;
  let frac = 0;
  let scale = 1;
  for (let i = 2; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
    if (first === 49 && c !== 48) return undefined;
    frac = frac * 10 + (c - 48);
    scale *= 10;
  }
  return first === 49 ? 1 : frac / scale;
}

/**
 * The instance id of a `+sip.instance` Contact parameter (RFC 5626 §4.1: `"<urn:uuid:…>"`)
 * without the quotes and angle brackets.
 * @returns the URN, or undefined when absent or empty
 */
export function parseInstanceId(value: string | null | undefined): string | undefined {
  if (value === null || value === undefined) return undefined;
  let s = value.trim();
  if (s.length >= 2 && s.charCodeAt(0) === 34 && s.charCodeAt(s.length - 1) === 34) s = s.slice(1, -1);
  if (s.length >= 2 && s.charCodeAt(0) === 60 && s.charCodeAt(s.length - 1) === 62) s = s.slice(1, -1);
  return s.length === 0 ? undefined : s;
}

/**
 * Parses a reg-id Contact parameter (RFC 5626 §4.2: `1*DIGIT`, 1 to 2^31-1).
 * @returns the reg-id, or undefined when malformed or out of range
 */
export function parseRegId(value: string | null): number | undefined {
  if (value === null) return undefined;
  const v = parseDeltaSeconds(value);
  if (v === undefined || v < 1 || v > 2_147_483_647) return undefined;
  return v;
}

/**
 * The URI text of one Contact value exactly as sent, without the `<>` of a name-addr and
 * without header parameters (RFC 3261 §20.10: in an addr-spec everything after the first `;`
 * is a header parameter). Call only on values `parseNameAddr` accepted.
 * @param value one Contact value (list already split)
 */
export function contactUriText(value: string): string {
  const s = value;
  const n = s.length;
  let i = 0;
  while (i < n && (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9)) i++;
  if (i < n && s.charCodeAt(i) === 34) {
    // Quoted display name: skip it, honouring quoted-pairs.
    i++;
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === 92) i += 2;
      else if (c === 34) break;
      else i++;
    }
    i++;
    const lt = s.indexOf('<', i);
    const gt = s.indexOf('>', lt + 1);
    return s.slice(lt + 1, gt);
  }
  // Token display name then "<", or an addr-spec: a "<" before any ";" decides.
  let j = i;
  while (j < n) {
    const c = s.charCodeAt(j);
    if (c === 60 /* < */) return s.slice(j + 1, s.indexOf('>', j + 1));
    if (c === 59 /* ; */) break;
    j++;
  }
  // addr-spec: the URI runs to the first ";" or whitespace.
  j = i;
  while (j < n) {
    const c = s.charCodeAt(j);
    if (c === 59 || c === 32 || c === 9) break;
    j++;
  }
  return s.slice(i, j);
}
