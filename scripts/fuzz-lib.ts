/**
 * Seeded mutation fuzzer for the SIP parser. Mutates valid messages (bit flips, byte
 * insert/delete, truncation, duplicated/cut/swapped header lines, inserted delimiters, big
 * numbers, invalid UTF-8) and checks the parser's contract:
 *
 * - `parseMessage` never throws, in datagram or stream mode;
 * - every ok result re-serializes and re-parses ok, with the same start line, headers
 *   (Content-Length aside) and body;
 * - the typed header parsers never throw on accepted values.
 *
 * Used by `test/sip/fuzz.test.ts` (a few thousand cases) and `scripts/fuzz.ts` (≥ 100k).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseMessage } from '../src/sip/parse.js';
import { serializeMessage } from '../src/sip/serialize.js';
import { getHeaderValues, getHeader } from '../src/sip/headers.js';
import { parseVia } from '../src/sip/via.js';
import { parseNameAddr } from '../src/sip/nameaddr.js';
import { parseUri } from '../src/sip/uri.js';
import { parseCSeq } from '../src/sip/cseq.js';
import { buildErrorResponse } from '../src/sip/response.js';
import type { SipMessage } from '../src/sip/message.js';

/** A seeded PRNG (mulberry32): returns floats in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Loads every `.dat` file under the given directories (the valid torture messages). */
export function loadCorpus(dirs: string[]): Buffer[] {
  const out: Buffer[] = [];
  for (const d of dirs) {
    for (const f of readdirSync(d).sort()) if (f.endsWith('.dat')) out.push(readFileSync(join(d, f)));
  }
  return out;
}

/** The default corpus: RFC 4475 valid messages and the RFC 5118 messages. */
export function defaultCorpus(root: string): Buffer[] {
  return loadCorpus([join(root, 'test/fixtures/rfc4475/valid'), join(root, 'test/fixtures/rfc5118')]);
}

const SPECIAL = [13, 10, 58, 34, 60, 62, 59, 37, 0, 44, 32, 9, 92, 91, 93, 64, 61, 63, 42, 0xff, 0xc3];
const SNIPPETS = [
  '\r\n',
  '\r\n ',
  '\r\n\r\n',
  ';;',
  ',,',
  '<sip:x@[::1]>',
  '"',
  '%00',
  '%',
  '4294967296',
  '99999999999999999999',
  '-1',
  'SIP/2.0',
  'Content-Length: 99\r\n',
  'l: 0\r\n',
  'Via: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKx\r\n',
  'Contact: *\r\n',
  'To: <sip:a@b>;tag=1\r\n',
  '\xe2\x82',
  '\u00e9',
  '__proto__',
  ';__proto__',
];

function randInt(rand: () => number, n: number): number {
  return Math.floor(rand() * n);
}

/** Start offsets of every line (after each LF) in the header section. */
function lineStarts(b: Buffer): number[] {
  const out = [0];
  let end = b.indexOf('\r\n\r\n');
  if (end < 0) end = b.length;
  for (let i = 0; i < end; i++) if (b[i] === 10) out.push(i + 1);
  return out;
}

function lineAt(b: Buffer, starts: number[], k: number): [number, number] {
  const s = starts[k];
  const e = k + 1 < starts.length ? starts[k + 1] : Math.min(b.length, s + 80);
  return [s, e];
}

/** Applies one random mutation. */
function mutateOnce(b: Buffer, rand: () => number): Buffer {
  const n = b.length;
  const pos = n === 0 ? 0 : randInt(rand, n);
  switch (randInt(rand, 12)) {
    case 0: {
      // bit flip
      if (n === 0) return b;
      const c = Buffer.from(b);
      c[pos] ^= 1 << randInt(rand, 8);
      return c;
    }
    case 1: // insert random byte
      return Buffer.concat([b.subarray(0, pos), Buffer.from([randInt(rand, 256)]), b.subarray(pos)]);
    case 2: // delete 1..4 bytes
      return Buffer.concat([b.subarray(0, pos), b.subarray(Math.min(n, pos + 1 + randInt(rand, 4)))]);
    case 3: // truncate
      return b.subarray(0, pos);
    case 4: {
      // duplicate a header line
      const st = lineStarts(b);
      const [s, e] = lineAt(b, st, randInt(rand, st.length));
      return Buffer.concat([b.subarray(0, e), b.subarray(s, e), b.subarray(e)]);
    }
    case 5: {
      // cut a header line
      const st = lineStarts(b);
      const [s, e] = lineAt(b, st, randInt(rand, st.length));
      return Buffer.concat([b.subarray(0, s), b.subarray(e)]);
    }
    case 6: // insert a delimiter
      return Buffer.concat([b.subarray(0, pos), Buffer.from([SPECIAL[randInt(rand, SPECIAL.length)]]), b.subarray(pos)]);
    case 7: {
      // overwrite with a delimiter
      if (n === 0) return b;
      const c = Buffer.from(b);
      c[pos] = SPECIAL[randInt(rand, SPECIAL.length)];
      return c;
    }
    case 8: {
      // insert a snippet
      const sn = SNIPPETS[randInt(rand, SNIPPETS.length)];
      return Buffer.concat([b.subarray(0, pos), Buffer.from(sn, 'latin1'), b.subarray(pos)]);
    }
    case 9: {
      // swap two header lines
      const st = lineStarts(b);
      if (st.length < 3) return b;
      const i = 1 + randInt(rand, st.length - 1);
      const j = 1 + randInt(rand, st.length - 1);
      if (i === j) return b;
      const [a0, a1] = lineAt(b, st, Math.min(i, j));
      const [b0, b1] = lineAt(b, st, Math.max(i, j));
      if (a1 > b0) return b;
      return Buffer.concat([b.subarray(0, a0), b.subarray(b0, b1), b.subarray(a1, b0), b.subarray(a0, a1), b.subarray(b1)]);
    }
    case 10: {
      // replace a digit run with a big or odd number
      let i = pos;
      while (i < n && (b[i] < 48 || b[i] > 57)) i++;
      if (i >= n) return b;
      let j = i;
      while (j < n && b[j] >= 48 && b[j] <= 57) j++;
      const nums = ['0', '00000000000', '4294967296', '2147483648', '65536', '256', '999', '-5', ''];
      return Buffer.concat([b.subarray(0, i), Buffer.from(nums[randInt(rand, nums.length)]), b.subarray(j)]);
    }
    default: {
      // copy a random block somewhere else
      if (n === 0) return b;
      const len = 1 + randInt(rand, Math.min(64, n - pos));
      const at = randInt(rand, n + 1);
      return Buffer.concat([b.subarray(0, at), b.subarray(pos, pos + len), b.subarray(at)]);
    }
  }
}

/** Applies 1–4 random mutations to `input` (which is not modified). */
export function mutate(input: Buffer, rand: () => number): Buffer {
  let b = input;
  const k = 1 + randInt(rand, 4);
  for (let i = 0; i < k; i++) b = mutateOnce(b, rand);
  return b;
}

/** Per-run counters. */
export interface FuzzStats {
  cases: number;
  accepted: number;
  rejected: number;
  codes: Record<string, number>;
  failures: Array<{ input: Buffer; error: string }>;
}

/** Fresh zeroed {@link FuzzStats}. */
export function newStats(): FuzzStats {
  return { cases: 0, accepted: 0, rejected: 0, codes: {}, failures: [] };
}

function startLine(m: SipMessage): string {
  return m.type === 'request' ? `${m.method} ${m.uri} ${m.version}` : `${m.version} ${m.status} ${m.reason}`;
}

function sameHeaders(a: SipMessage, b: SipMessage): boolean {
  const x = a.headers.filter((h) => h.key !== 'content-length');
  const y = b.headers.filter((h) => h.key !== 'content-length');
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) {
    if (x[i].name !== y[i].name || x[i].key !== y[i].key || x[i].value !== y[i].value) return false;
  }
  return true;
}

/** Exercises the typed views on an accepted message; they must not throw. */
function exercise(m: SipMessage): void {
  for (const v of getHeaderValues(m, 'via')) parseVia(v);
  for (const k of ['contact', 'route', 'record-route']) for (const v of getHeaderValues(m, k)) parseNameAddr(v);
  const f = getHeader(m, 'from');
  if (f !== undefined) parseNameAddr(f);
  const c = getHeader(m, 'cseq');
  if (c !== undefined) parseCSeq(c);
  if (m.type === 'request') parseUri(m.uri);
}

/**
 * Runs one case: parses `input` in datagram and stream mode and checks the contract.
 * @returns undefined when fine, else a description of the violation
 */
export function checkCase(input: Buffer, stats: FuzzStats): string | undefined {
  stats.cases++;
  for (const stream of [false, true]) {
    let r;
    try {
      r = parseMessage(input, { stream });
    } catch (e) {
      return `parseMessage threw (stream=${stream}): ${(e as Error).stack ?? String(e)}`;
    }
    if (!r.ok) {
      if (!stream) {
        stats.rejected++;
        stats.codes[r.code] = (stats.codes[r.code] ?? 0) + 1;
      }
      try {
        buildErrorResponse(r);
      } catch (e) {
        return `buildErrorResponse threw: ${(e as Error).stack ?? String(e)}`;
      }
      continue;
    }
    if (!stream) stats.accepted++;
    try {
      exercise(r.message);
      const again = parseMessage(serializeMessage(r.message));
      if (!again.ok) return `re-parse failed (stream=${stream}): ${again.code} ${again.detail}`;
      if (startLine(again.message) !== startLine(r.message)) return 'start line changed on re-parse';
      if (!sameHeaders(again.message, r.message)) return 'headers changed on re-parse';
      if (!again.message.body.equals(r.message.body)) return 'body changed on re-parse';
    } catch (e) {
      return `threw after parse: ${(e as Error).stack ?? String(e)}`;
    }
  }
  return undefined;
}

/**
 * Runs up to `count` cases (stopping early after `timeLimitMs`) from `seed` over `corpus`.
 * Failures are collected in the returned stats (the first 20).
 */
export function runFuzz(corpus: Buffer[], count: number, seed: number, timeLimitMs = Infinity): FuzzStats & { ms: number } {
  const rand = rng(seed);
  const stats = newStats();
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    if ((i & 255) === 0 && performance.now() - t0 > timeLimitMs) break;
    const input = mutate(corpus[Math.floor(rand() * corpus.length)], rand);
    const err = checkCase(input, stats);
    if (err !== undefined && stats.failures.length < 20) stats.failures.push({ input, error: err });
  }
  return { ...stats, ms: performance.now() - t0 };
}
