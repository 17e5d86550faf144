/**
 * Construction of {@link SipParseError} values (RFC 3261 §21.4 status choice per error code).
 * Wire input never throws: every parser in `sip/` returns one of these instead.
 */
import type { SipErrorCode, SipParseError } from './message.js';

/** Default SIP status and reason phrase for each error code. */
const DEFAULTS: Record<SipErrorCode, [number, string]> = {
  EMPTY: [400, 'Bad Request - Empty message'],
  TOO_LARGE: [413, 'Message Too Large'],
  TOO_MANY_HEADERS: [400, 'Bad Request - Too many header fields'],
  INCOMPLETE: [400, 'Bad Request - Incomplete message'],
  BAD_START_LINE: [400, 'Bad Request - Malformed start line'],
  BAD_VERSION: [505, 'Version Not Supported'],
  BAD_METHOD: [400, 'Bad Request - Malformed method'],
  BAD_REQUEST_URI: [400, 'Bad Request - Malformed Request-URI'],
  BAD_STATUS_CODE: [400, 'Bad Request - Malformed status code'],
  BAD_HEADER_LINE: [400, 'Bad Request - Malformed header line'],
  BAD_HEADER_VALUE: [400, 'Bad Request - Malformed header value'],
  MISSING_HEADER: [400, 'Bad Request - Missing header field'],
  DUPLICATE_HEADER: [400, 'Bad Request - Repeated single-value header field'],
  BAD_CONTENT_LENGTH: [400, 'Bad Request - Malformed Content-Length'],
  CONTENT_LENGTH_MISMATCH: [400, 'Bad Request - Content-Length mismatch'],
  CSEQ_METHOD_MISMATCH: [400, 'Bad Request - CSeq method does not match'],
  BAD_CSEQ: [400, 'Bad Request - Malformed CSeq'],
  BAD_VIA: [400, 'Bad Request - Malformed Via'],
  BAD_URI: [400, 'Bad Request - Malformed URI'],
  BAD_NAME_ADDR: [400, 'Bad Request - Malformed address'],
  BAD_QUOTED_STRING: [400, 'Bad Request - Unterminated quoted string'],
  BAD_DATE: [400, 'Bad Request - Malformed Date'],
  BAD_MAX_FORWARDS: [400, 'Bad Request - Malformed Max-Forwards'],
  BAD_EXPIRES: [400, 'Bad Request - Malformed Expires'],
};

/**
 * Builds a {@link SipParseError} for `code` with its default status (400, 413 for
 * TOO_LARGE, 505 for BAD_VERSION) and reason phrase; `extra` overrides any field.
 * @param code stable error code
 * @param detail human-readable text for logs
 * @param extra optional fields (offset, kind, method, headers, status, reason)
 */
export function sipError(
  code: SipErrorCode,
  detail: string,
  extra?: Partial<Omit<SipParseError, 'ok' | 'code' | 'detail'>>,
): SipParseError {
  const d = DEFAULTS[code];
  const e: SipParseError = { ok: false, code, status: d[0], reason: d[1], detail };
  if (extra !== undefined) Object.assign(e, extra);
  return e;
}
