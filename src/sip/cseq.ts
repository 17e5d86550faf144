/**
 * CSeq header field (RFC 3261 §20.16, §8.1.1.5).
 */
import type { Parsed } from './message.js';
import { sipError } from './errors.js';
import { isTokenChar, isWsp, skipWs } from './chars.js';

/** Largest valid CSeq sequence number: it MUST be less than 2**31 (RFC 3261 §8.1.1.5). */
export const MAX_CSEQ = 2 ** 31 - 1;

/**
 * Parses `1*DIGIT LWS Method` (RFC 3261 §20.16). Leading zeros are allowed; the number
 * must be < 2**31 (§8.1.1.5); the method is a case-sensitive token.
 * @param value the CSeq header value, e.g. `314159 INVITE`
 * @returns `{ seq, method }`, or error `BAD_CSEQ` (400)
 */
export function parseCSeq(value: string): Parsed<{ seq: number; method: string }> {
  if (typeof value !== 'string') return sipError('BAD_CSEQ', 'not a string'); // String-type guard (see chars.ts STRING GUARDS).
  const s = value;
  const n = s.length;
  let i = skipWs(s, 0);
  const ds = i;
  let seq = 0;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) break;
    seq = seq * 10 + (c - 48);
    if (seq > MAX_CSEQ) return sipError('BAD_CSEQ', 'CSeq number must be less than 2**31', { offset: ds });
    i++;
  }
  if (i === ds) return sipError('BAD_CSEQ', 'CSeq number missing', { offset: ds });
  const ws = skipWs(s, i);
  if (ws === i) return sipError('BAD_CSEQ', 'expected LWS after CSeq number', { offset: i });
  i = ws;
  const ms = i;
  while (i < n && isTokenChar(s.charCodeAt(i))) i++;
  if (i === ms) return sipError('BAD_CSEQ', 'CSeq method missing', { offset: ms });
  const method = s.slice(ms, i);
  while (i < n && isWsp(s.charCodeAt(i))) i++;
  if (i !== n) return sipError('BAD_CSEQ', 'trailing characters after CSeq method', { offset: i });
  return { ok: true, value: { seq, method } };
}
