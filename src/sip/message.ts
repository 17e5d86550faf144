/**
 * The SIP message model (RFC 3261 §7). Only what routing needs is parsed; every header is
 * kept as a raw line so unknown headers are forwarded byte for byte.
 *
 * Typed views of individual header values (Via, name-addr, URI, CSeq) are produced on
 * demand by the parsers in `sip/uri.ts`, `sip/via.ts`, `sip/nameaddr.ts`, `sip/cseq.ts`.
 */

/** One header field line, unfolded (RFC 3261 §7.3.1). */
export interface SipHeader {
  /** Field name as it appeared on the wire (e.g. `v`, `VIA`, `Via`). Serialized as-is. */
  name: string;
  /** Canonical lower-case full name: compact forms expanded (`v` → `via`, `m` → `contact`). */
  key: string;
  /** Field value with folding replaced by a single SP and surrounding whitespace trimmed. */
  value: string;
}

/** A SIP request (RFC 3261 §7.1). */
export interface SipRequest {
  type: 'request';
  /** Method token, case-sensitive (RFC 3261 §7.1). */
  method: string;
  /** Request-URI exactly as received (parse with `parseUri`). */
  uri: string;
  /** Always `SIP/2.0` for accepted messages. */
  version: string;
  headers: SipHeader[];
  /** Message body (exactly Content-Length octets). Empty buffer when there is none. */
  body: Buffer;
}

/** A SIP response (RFC 3261 §7.2). */
export interface SipResponse {
  type: 'response';
  /** Status code 100–699. */
  status: number;
  /** Reason phrase (may be empty, may be UTF-8). */
  reason: string;
  version: string;
  headers: SipHeader[];
  body: Buffer;
}

export type SipMessage = SipRequest | SipResponse;

/**
 * Stable codes for wire-input errors. The transport answers a request that failed with
 * `status` (when a response is possible) and counts the code.
 */
export type SipErrorCode =
  | 'EMPTY'
  | 'TOO_LARGE'
  | 'TOO_MANY_HEADERS'
  | 'INCOMPLETE'
  | 'BAD_START_LINE'
  | 'BAD_VERSION'
  | 'BAD_METHOD'
  | 'BAD_REQUEST_URI'
  | 'BAD_STATUS_CODE'
  | 'BAD_HEADER_LINE'
  | 'BAD_HEADER_VALUE'
  | 'MISSING_HEADER'
  | 'DUPLICATE_HEADER'
  | 'BAD_CONTENT_LENGTH'
  | 'CONTENT_LENGTH_MISMATCH'
  | 'CSEQ_METHOD_MISMATCH'
  | 'BAD_CSEQ'
  | 'BAD_VIA'
  | 'BAD_URI'
  | 'BAD_NAME_ADDR'
  | 'BAD_QUOTED_STRING'
  | 'BAD_DATE'
  | 'BAD_MAX_FORWARDS'
  | 'BAD_EXPIRES';

/**
 * A parse or validation failure. Never thrown: returned as a value.
 * When `startLine` says it was a request and the five headers needed to build a response
 * (Via, From, To, Call-ID, CSeq) were readable, `headers` carries them so a 400 (or the
 * given `status`) can be sent back (RFC 3261 §8.2.6, §16.3).
 */
export interface SipParseError {
  ok: false;
  code: SipErrorCode;
  /** SIP status to answer with: 400 by default; 413 too large, 505 bad version, 416 unsupported URI scheme. */
  status: number;
  /** Reason phrase for the response, e.g. `Bad Request - Content-Length mismatch`. */
  reason: string;
  /** Human-readable detail for logs. */
  detail: string;
  /** Byte offset into the input where the error was found, when known. */
  offset?: number;
  /** `request` or `response` when the start line was recognised. */
  kind?: 'request' | 'response';
  /** The request method, when the start line was readable. */
  method?: string;
  /** Raw headers parsed before the failure (possibly all of them). */
  headers?: SipHeader[];
}

/** Result of parsing one complete message from a buffer. */
export type SipParseResult =
  | { ok: true; message: SipMessage; /** octets consumed (start line + headers + body) */ length: number }
  | SipParseError;

/** Generic result for parsing a single header value or URI. */
export type Parsed<T> = { ok: true; value: T } | SipParseError;
