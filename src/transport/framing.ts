/**
 * Message framing on stream transports (TCP, TLS): RFC 3261 §18.3, RFC 5626 §3.5.1.
 *
 * Pure function over an accumulated receive buffer: it says what the next item is and how
 * many octets it occupies; the caller consumes them and calls again. No copies are made.
 */

/** Why a stream can no longer be framed; the caller closes the connection. */
export type FrameErrorCode = 'TOO_LARGE' | 'MISSING_CONTENT_LENGTH' | 'BAD_CONTENT_LENGTH';

/** The next item at the start of a stream buffer. Every `length` is in octets. */
export type Frame =
  /** A complete SIP message (start line + headers + Content-Length octets of body). */
  | { kind: 'message'; length: number }
  /** RFC 5626 §3.5.1 keep-alive ping `CRLFCRLF`; answer with a single CRLF pong. */
  | { kind: 'ping'; length: 4 }
  /** RFC 5626 §3.5.1 pong: a single `CRLF` (also the CRLF RFC 3261 §7.5 says to ignore before a start line). */
  | { kind: 'pong'; length: 2 }
  /**
   * More octets are needed. `length` is the total message length when the header block is
   * complete and only body octets are missing (callers can wait until that many are buffered).
   */
  | { kind: 'incomplete'; length?: number }
  /** Octets that cannot start a SIP message, to skip (resynchronisation). */
  | { kind: 'garbage'; length: number }
  /**
   * Framing is impossible. `headerLength` is the size of the complete header block when it
   * was read (so a 400/413 can be built from it) — the stream position after it is unknown
   * (missing or bad Content-Length) or the message is over the limit.
   */
  | { kind: 'error'; code: FrameErrorCode; detail: string; headerLength?: number };

const CR = 0x0d;
const LF = 0x0a;

const PING: Frame = { kind: 'ping', length: 4 };
const PONG: Frame = { kind: 'pong', length: 2 };
const INCOMPLETE: Frame = { kind: 'incomplete' };

const TOKEN = "A-Za-z0-9.!%*_+`'~\\-";
/** `Method SP Request-URI SP SIP-Version` (RFC 3261 §7.1), lenient inside so the parser can answer 400/505. */
const REQUEST_LINE_RE = new RegExp(`^[${TOKEN}]+ .* SIP/\\d+\\.\\d+[ \\t]*$`, 'is');
/** `SIP-Version SP Status-Code SP Reason-Phrase` (RFC 3261 §7.2). */
const STATUS_LINE_RE = /^SIP\/\d+\.\d+ \d{3}(?:[ \t].*)?$/is;
/** A line not yet terminated that can still become a request line. */
const REQUEST_PREFIX_RE = new RegExp(`^[${TOKEN}]+(?: .*)?$`, 's');
/** A line not yet terminated that can still become a status line. */
const STATUS_PREFIX_RE = /^SIP\/[\d.]*(?: .*)?$/is;
/** Content-Length or its compact form `l` at the start of a header line (RFC 3261 §20.14, §7.3.3). */
const CONTENT_LENGTH_RE = /\n(?:content-length|l)[ \t]*:([^\r\n]*)/gi;

/**
 * Classifies the line `buf[start, end)`: 2 = a plausible SIP start line, 1 = an unterminated
 * line that can still become one, 0 = cannot.
 */
function startLineState(buf: Buffer, start: number, end: number, terminated: boolean): 0 | 1 | 2 {
  let stop = end;
  if (terminated && stop > start && buf[stop - 1] === CR) stop--;
  const line = buf.toString('latin1', start, stop);
  if (terminated) return REQUEST_LINE_RE.test(line) || STATUS_LINE_RE.test(line) ? 2 : 0;
  return REQUEST_PREFIX_RE.test(line) || STATUS_PREFIX_RE.test(line) ? 1 : 0;
}

/**
 * Skips octets until the next line (after a LF) that is, or can still become, a SIP start
 * line. Empty lines are skipped with the garbage. A trailing CR is kept so a CRLF split
 * across reads is still seen.
 */
function garbage(buf: Buffer): Frame {
  const len = buf.length;
  let i = buf.indexOf(LF);
  while (i >= 0 && i + 1 < len) {
    const p = i + 1;
    const c = buf[p];
    if (c !== CR && c !== LF) {
      const nl = buf.indexOf(LF, p);
      if (startLineState(buf, p, nl < 0 ? len : nl, nl >= 0) !== 0) return { kind: 'garbage', length: p };
    }
    i = buf.indexOf(LF, p);
  }
  const keep = buf[len - 1] === CR ? 1 : 0;
  return { kind: 'garbage', length: Math.max(1, len - keep) };
}

/**
 * Returns the next item in a stream receive buffer.
 *
 * - A leading `CRLFCRLF` is a ping, a lone `CRLF` a pong (RFC 5626 §3.5.1); `CRLF` or
 *   `CRLFCR` alone is incomplete (it may still become a ping).
 * - A message is framed by its Content-Length (full or compact `l`), which RFC 3261 §18.3
 *   makes mandatory on streams: a missing or non-numeric value is an `error`.
 * - Octets that cannot begin a start line (`METHOD SP … SIP/2.0` or `SIP/2.0 SP 3DIGIT`) are
 *   `garbage` up to the next line that can.
 * - A message (or an unterminated header block) longer than `maxSize` octets is an `error`.
 *
 * @param buf accumulated octets, starting at an item boundary
 * @param maxSize largest accepted message, octets (start line + headers + body)
 */
export function nextFrame(buf: Buffer, maxSize = 65535): Frame {
  const len = buf.length;
  if (len === 0) return INCOMPLETE;
  const b0 = buf[0];
  if (b0 === CR) {
    if (len < 2) return INCOMPLETE;
    if (buf[1] === LF) {
      if (len < 3) return INCOMPLETE;
      if (buf[2] !== CR) return PONG;
      if (len < 4) return INCOMPLETE;
      return buf[3] === LF ? PING : PONG;
    }
    return garbage(buf);
  }
  if (b0 === LF) return garbage(buf);

  // Start line.
  const lineEnd = buf.indexOf(LF);
  if (lineEnd < 0) {
    if (startLineState(buf, 0, len, false) === 0) return garbage(buf);
    if (len > maxSize) return { kind: 'error', code: 'TOO_LARGE', detail: `start line longer than ${maxSize} octets` };
    return INCOMPLETE;
  }
  if (startLineState(buf, 0, lineEnd, true) === 0) return garbage(buf);

  // End of the header block: an empty line (CRLF CRLF, or bare-LF variants).
  let headerEnd = -1;
  const limit = Math.min(len, maxSize + 1);
  for (let i = lineEnd; i < limit; ) {
    const n = buf[i + 1];
    if (n === LF) {
      headerEnd = i + 2;
      break;
    }
    if (n === CR && i + 2 < len && buf[i + 2] === LF) {
      headerEnd = i + 3;
      break;
    }
    i = buf.indexOf(LF, i + 1);
    if (i < 0) break;
  }
  if (headerEnd < 0) {
    if (len > maxSize) return { kind: 'error', code: 'TOO_LARGE', detail: `header block longer than ${maxSize} octets` };
    return INCOMPLETE;
  }
  if (headerEnd > maxSize) return { kind: 'error', code: 'TOO_LARGE', detail: `header block longer than ${maxSize} octets` };

  // Content-Length (RFC 3261 §18.3: mandatory on stream transports).
  const block = buf.toString('latin1', lineEnd, headerEnd);
  let contentLength = -1;
  CONTENT_LENGTH_RE.lastIndex = 0;
  for (let m = CONTENT_LENGTH_RE.exec(block); m !== null; m = CONTENT_LENGTH_RE.exec(block)) {
    const v = m[1].trim();
    if (!/^\d{1,10}$/.test(v)) return { kind: 'error', code: 'BAD_CONTENT_LENGTH', detail: `bad Content-Length "${v}"`, headerLength: headerEnd };
    const n = Number(v);
    if (contentLength >= 0 && n !== contentLength) {
      return { kind: 'error', code: 'BAD_CONTENT_LENGTH', detail: `conflicting Content-Length values ${contentLength} and ${n}`, headerLength: headerEnd };
    }
    contentLength = n;
  }
  if (contentLength < 0) return { kind: 'error', code: 'MISSING_CONTENT_LENGTH', detail: 'no Content-Length on a stream transport (RFC 3261 §18.3)', headerLength: headerEnd };
  const total = headerEnd + contentLength;
  if (total > maxSize) return { kind: 'error', code: 'TOO_LARGE', detail: `message of ${total} octets exceeds ${maxSize}`, headerLength: headerEnd };
  if (len < total) return { kind: 'incomplete', length: total };
  return { kind: 'message', length: total };
}
