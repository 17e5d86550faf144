/**
 * Bencode (BitTorrent BEP 3 "The connectivity is as follows" — the encoding rtpengine's ng
 * protocol uses): byte strings `4:spam`, integers `i42e`, lists `l…e`, dictionaries `d…e`
 * with byte-string keys in sorted order.
 *
 * Wire input never throws: {@link decodeBencode} returns a result value with the offset where
 * the input went wrong.
 */

/** A bencode value. Byte strings decode to `string` (UTF-8) unless `bytes` is requested. */
export type BencodeValue = string | Buffer | number | bigint | BencodeValue[] | BencodeDict;

/** A bencode dictionary. */
export interface BencodeDict {
  [key: string]: BencodeValue;
}

/** What {@link encodeBencode} accepts: `undefined` dictionary values are skipped. */
export type BencodeInput = string | Uint8Array | number | bigint | boolean | BencodeInput[] | { [key: string]: BencodeInput | undefined };

/** Result of {@link decodeBencode}. */
export type BencodeResult = { ok: true; value: BencodeValue; end: number } | { ok: false; offset: number; reason: string };

/** Nesting limit of the decoder (protects the stack). */
export const MAX_DEPTH = 64;

function encodeInto(v: BencodeInput, out: Buffer[]): void {
  if (typeof v === 'string') {
    const b = Buffer.from(v, 'utf8');
    out.push(Buffer.from(`${b.length}:`, 'latin1'), b);
  } else if (v instanceof Uint8Array) {
    out.push(Buffer.from(`${v.length}:`, 'latin1'), Buffer.from(v.buffer, v.byteOffset, v.length));
  } else if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new TypeError(`bencode integers only: ${v}`);
    out.push(Buffer.from(`i${v}e`, 'latin1'));
  } else if (typeof v === 'bigint') {
    out.push(Buffer.from(`i${v.toString()}e`, 'latin1'));
  } else if (typeof v === 'boolean') {
    out.push(Buffer.from(v ? 'i1e' : 'i0e', 'latin1'));
  } else if (Array.isArray(v)) {
    out.push(Buffer.from('l', 'latin1'));
    for (const item of v) encodeInto(item, out);
    out.push(Buffer.from('e', 'latin1'));
  } else if (v !== null && typeof v === 'object') {
    out.push(Buffer.from('d', 'latin1'));
    // BEP 3: "Keys must be strings and appear in sorted order (sorted as raw strings, not alphanumerics)."
    const keys = Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .map((k) => ({ k, b: Buffer.from(k, 'utf8') }))
      .sort((x, y) => Buffer.compare(x.b, y.b));
    for (const { k, b } of keys) {
      out.push(Buffer.from(`${b.length}:`, 'latin1'), b);
      encodeInto(v[k] as BencodeInput, out);
    }
    out.push(Buffer.from('e', 'latin1'));
  } else {
    throw new TypeError(`cannot bencode ${v === null ? 'null' : typeof v}`);
  }
}

/**
 * Encodes a value. Throws TypeError for values bencode cannot carry (non-integer numbers,
 * null, functions): a programming error, not wire input.
 */
export function encodeBencode(v: BencodeInput): Buffer {
  const out: Buffer[] = [];
  encodeInto(v, out);
  return Buffer.concat(out);
}

class DecodeError {
  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {}
}

const C_0 = 0x30;
const C_9 = 0x39;
const C_COLON = 0x3a;
const C_MINUS = 0x2d;
const C_D = 0x64;
const C_E = 0x65;
const C_I = 0x69;
const C_L = 0x6c;

class Decoder {
  pos: number;
  constructor(
    private readonly buf: Buffer,
    start: number,
    private readonly bytes: boolean,
  ) {
    this.pos = start;
  }

  value(depth: number): BencodeValue {
    if (depth > MAX_DEPTH) throw new DecodeError(this.pos, `nesting deeper than ${MAX_DEPTH}`);
    const c = this.buf[this.pos];
    if (c === undefined) throw new DecodeError(this.pos, 'unexpected end of input');
    if (c === C_I) return this.integer();
    if (c >= C_0 && c <= C_9) {
      const b = this.byteString();
      return this.bytes ? b : b.toString('utf8');
    }
    if (c === C_L) {
      this.pos++;
      const list: BencodeValue[] = [];
      while (this.peek() !== C_E) list.push(this.value(depth + 1));
      this.pos++;
      return list;
    }
    if (c === C_D) {
      this.pos++;
      const dict: BencodeDict = {};
      while (this.peek() !== C_E) {
        const at = this.pos;
        const k = this.peek();
        if (k < C_0 || k > C_9) throw new DecodeError(at, 'dictionary key must be a byte string');
        const key = this.byteString().toString('utf8');
        const v = this.value(depth + 1);
        // A key named __proto__ must not replace the prototype.
        if (key === '__proto__') Object.defineProperty(dict, key, { value: v, enumerable: true, writable: true, configurable: true });
        else dict[key] = v;
      }
      this.pos++;
      return dict;
    }
    throw new DecodeError(this.pos, `unexpected byte 0x${c.toString(16).padStart(2, '0')}`);
  }

  private peek(): number {
    const c = this.buf[this.pos];
    if (c === undefined) throw new DecodeError(this.pos, 'unexpected end of input');
    return c;
  }

  private integer(): number | bigint {
    const start = this.pos;
    this.pos++; // 'i'
    const end = this.buf.indexOf(C_E, this.pos);
    if (end < 0) throw new DecodeError(start, 'unterminated integer');
    const text = this.buf.toString('latin1', this.pos, end);
    // BEP 3: "i-0e is invalid. All encodings with a leading zero, such as i03e, are invalid, other than i0e".
    if (!/^(0|-?[1-9][0-9]*)$/.test(text)) throw new DecodeError(start, `invalid integer "${text.slice(0, 24)}"`);
    this.pos = end + 1;
    const n = Number(text);
    return Number.isSafeInteger(n) ? n : BigInt(text);
  }

  private byteString(): Buffer {
    const start = this.pos;
    let len = 0;
    let c = this.buf[this.pos];
    if (c === C_0 && this.buf[this.pos + 1] !== C_COLON) throw new DecodeError(start, 'string length with a leading zero');
    while (c !== undefined && c >= C_0 && c <= C_9) {
      len = len * 10 + (c - C_0);
      if (len > this.buf.length) throw new DecodeError(start, 'string length beyond the input');
      c = this.buf[++this.pos];
    }
    if (c !== C_COLON) throw new DecodeError(this.pos, c === C_MINUS ? 'negative string length' : 'expected ":" after string length');
    this.pos++;
    if (this.pos + len > this.buf.length) throw new DecodeError(start, 'string length beyond the input');
    const b = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return b;
  }
}

/**
 * Decodes one bencode value starting at `start`. With `whole` (default true) trailing bytes are
 * an error. Byte strings become UTF-8 strings, or Buffers (views into `buf`) with `bytes: true`.
 */
export function decodeBencode(buf: Buffer, opts: { start?: number; whole?: boolean; bytes?: boolean } = {}): BencodeResult {
  const d = new Decoder(buf, opts.start ?? 0, opts.bytes ?? false);
  try {
    const value = d.value(0);
    if ((opts.whole ?? true) && d.pos !== buf.length) return { ok: false, offset: d.pos, reason: 'trailing bytes after the value' };
    return { ok: true, value, end: d.pos };
  } catch (err) {
    if (err instanceof DecodeError) return { ok: false, offset: err.offset, reason: err.reason };
    return { ok: false, offset: d.pos, reason: String(err) };
  }
}
