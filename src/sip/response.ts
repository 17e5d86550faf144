/**
 * Building responses to requests (RFC 3261 §8.2.6) and the reason-phrase table (§21).
 */
import type { SipHeader, SipParseError, SipRequest, SipResponse } from './message.js';
import { canonicalHeaderKey } from './headers.js';
import { parseNameAddr } from './nameaddr.js';
import { generateTag } from './ids.js';

const REASONS: Record<number, string> = {
  100: 'Trying',
  180: 'Ringing',
  181: 'Call Is Being Forwarded',
  182: 'Queued',
  183: 'Session Progress',
  199: 'Early Dialog Terminated',
  200: 'OK',
  202: 'Accepted',
  204: 'No Notification',
  300: 'Multiple Choices',
  301: 'Moved Permanently',
  302: 'Moved Temporarily',
  305: 'Use Proxy',
  380: 'Alternative Service',
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  407: 'Proxy Authentication Required',
  408: 'Request Timeout',
  410: 'Gone',
  412: 'Conditional Request Failed',
  413: 'Request Entity Too Large',
  414: 'Request-URI Too Long',
  415: 'Unsupported Media Type',
  416: 'Unsupported URI Scheme',
  417: 'Unknown Resource-Priority',
  420: 'Bad Extension',
  421: 'Extension Required',
  422: 'Session Interval Too Small',
  423: 'Interval Too Brief',
  424: 'Bad Location Information',
  428: 'Use Identity Header',
  429: 'Provide Referrer Identity',
  430: 'Flow Failed',
  433: 'Anonymity Disallowed',
  436: 'Bad Identity-Info',
  437: 'Unsupported Certificate',
  438: 'Invalid Identity Header',
  439: 'First Hop Lacks Outbound Support',
  440: 'Max-Breadth Exceeded',
  469: 'Bad Info Package',
  470: 'Consent Needed',
  480: 'Temporarily Unavailable',
  481: 'Call/Transaction Does Not Exist',
  482: 'Loop Detected',
  483: 'Too Many Hops',
  484: 'Address Incomplete',
  485: 'Ambiguous',
  486: 'Busy Here',
  487: 'Request Terminated',
  488: 'Not Acceptable Here',
  489: 'Bad Event',
  491: 'Request Pending',
  493: 'Undecipherable',
  494: 'Security Agreement Required',
  500: 'Server Internal Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Server Time-out',
  505: 'Version Not Supported',
  513: 'Message Too Large',
  555: 'Push Notification Service Not Supported',
  580: 'Precondition Failure',
  600: 'Busy Everywhere',
  603: 'Decline',
  604: 'Does Not Exist Anywhere',
  606: 'Not Acceptable',
  607: 'Unwanted',
  608: 'Rejected',
};

const CLASS_REASONS = ['', 'Provisional', 'Success', 'Redirection', 'Client Error', 'Server Error', 'Global Failure'];

/**
 * Standard reason phrase for a status code (RFC 3261 §21 and later registrations);
 * unknown codes get their class name (`Client Error` for 4xx, …), out-of-range ones `Unknown`.
 */
export function reasonPhrase(status: number): string {
  const r = REASONS[status];
  if (r !== undefined) return r;
  const cls = Math.floor(status / 100);
  return cls >= 1 && cls <= 6 ? CLASS_REASONS[cls] : 'Unknown';
}

/** Options for {@link createResponse}. */
export interface CreateResponseOptions {
  /** To tag to add when the request's To has none (RFC 3261 §8.2.6.2). */
  toTag?: string;
  /** Extra header lines `[name, value]`, appended after the copied ones, in order. */
  headers?: Array<[string, string]>;
  /** Body octets (Content-Length is set from it). */
  body?: Buffer;
  /** Content-Type to add when a body is given. */
  contentType?: string;
}

function hasTagParam(toValue: string): boolean {
  const na = parseNameAddr(toValue);
  if (na.ok) return Object.prototype.hasOwnProperty.call(na.value.params, 'tag');
  return toValue.toLowerCase().indexOf(';tag=') >= 0;
}

/**
 * Builds a response to `req` (RFC 3261 §8.2.6.1): every Via line in order, From, To (with
 * `;tag=toTag` added when given and To has none), Call-ID, CSeq — all copied byte for byte —
 * then Timestamp for a 100 (§8.2.6.1), then `opts.headers`, Content-Type (when body and
 * contentType) and Content-Length last.
 * @param status 100–699
 * @param reason reason phrase; defaults to {@link reasonPhrase}
 */
export function createResponse(
  req: SipRequest,
  status: number,
  reason?: string,
  opts?: CreateResponseOptions,
): SipResponse {
  const out: SipHeader[] = [];
  const src = req.headers;
  for (let i = 0; i < src.length; i++) {
    const h = src[i];
    if (h.key === 'via') out.push({ name: h.name, key: h.key, value: h.value });
  }
  const toTag = opts?.toTag;
  for (const key of ['from', 'to', 'call-id', 'cseq']) {
    for (let i = 0; i < src.length; i++) {
      const h = src[i];
      if (h.key !== key) continue;
      let value = h.value;
      if (key === 'to' && toTag !== undefined && !hasTagParam(value)) value = value + ';tag=' + toTag;
      out.push({ name: h.name, key: h.key, value });
    }
  }
  if (status === 100) {
    for (let i = 0; i < src.length; i++) {
      const h = src[i];
      if (h.key === 'timestamp') out.push({ name: h.name, key: h.key, value: h.value });
    }
  }
  if (opts?.headers !== undefined) {
    for (const [name, value] of opts.headers) out.push({ name, key: canonicalHeaderKey(name), value });
  }
  const body = opts?.body ?? Buffer.alloc(0);
  if (opts?.contentType !== undefined && body.length > 0) {
    out.push({ name: 'Content-Type', key: 'content-type', value: opts.contentType });
  }
  out.push({ name: 'Content-Length', key: 'content-length', value: String(body.length) });
  return {
    type: 'response',
    status,
    reason: reason ?? reasonPhrase(status),
    version: 'SIP/2.0',
    headers: out,
    body,
  };
}

/**
 * Only a Via is needed to route a response back (RFC 3261 §18.2.2). RFC 4475 §3.3.1 (insuf):
 * a request missing Call-ID/From/To should "ideally" be answered 400, so the response copies
 * whatever of From/To/Call-ID/CSeq is present.
 */
const NEEDED = ['via'];

/**
 * The response to send for a request that failed to parse (RFC 3261 §8.2.6, §16.3; RFC 4475
 * §3.1.2): `err.status` (400, 413, 505, …) with `err.reason`, and a To tag added when To has
 * none. Returns undefined — send nothing, just count — when the input was not a request, was
 * an ACK (never answered, §17.2.1), or lacked any of Via, From, To, Call-ID, CSeq in
 * `err.headers`.
 */
export function buildErrorResponse(err: SipParseError): SipResponse | undefined {
  if (err.kind !== 'request' || err.method === undefined || err.method === 'ACK') return undefined;
  const hs = err.headers;
  if (hs === undefined) return undefined;
  for (const k of NEEDED) {
    let found = false;
    for (let i = 0; i < hs.length; i++) {
      if (hs[i].key === k) {
        found = true;
        break;
      }
    }
    if (!found) return undefined;
  }
  const req: SipRequest = {
    type: 'request',
    method: err.method,
    uri: '',
    version: 'SIP/2.0',
    headers: hs,
    body: Buffer.alloc(0),
  };
  return createResponse(req, err.status, err.reason, { toTag: generateTag() });
}
