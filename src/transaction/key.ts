/**
 * Transaction matching keys (RFC 3261 §17.1.3 for client transactions, §17.2.3 for server
 * transactions, §9.2 for the INVITE a CANCEL refers to). Each function turns a message into a
 * string used as a `Map` key, so matching is one hash lookup. Keys are `undefined` when the
 * message lacks what matching needs (no parsable top Via or CSeq).
 *
 * Key parts are joined with `\n`, which cannot occur inside an unfolded header value.
 */
import type { SipMessage, SipRequest } from '../sip/message.js';
import { getHeader } from '../sip/headers.js';
import { parseViaShared, viaBranch } from '../sip/via.js';
import { parseCSeq } from '../sip/cseq.js';
import { tagParam } from '../sip/nameaddr.js';

/** RFC 3261 §8.1.1.7: "The branch ID inserted by an element compliant with this specification MUST always begin with the characters "z9hG4bK"." */
export const MAGIC_COOKIE = 'z9hG4bK';

/** A server-side match key and how it was built. */
export interface ServerMatchKey {
  key: string;
  /**
   * `true` when the top Via branch lacks the magic cookie and the RFC 2543 rules of §17.2.3
   * were used. Then the To tag is not part of the key and must be checked separately
   * ({@link toTagOf}): for an ACK against the To tag of the response sent, for a CANCEL against
   * the INVITE's To tag.
   */
  rfc2543: boolean;
}

const SEP = '\n';

interface TopVia {
  branch: string | undefined;
  transport: string;
  sentBy: string;
}

function topVia(msg: SipMessage): TopVia | undefined {
  const raw = getHeader(msg, 'via');
  if (raw === undefined) return undefined;
  const v = parseViaShared(raw);
  if (v === undefined) return undefined;
  // parseVia lower-cases the host and upper-cases the transport.
  const sentBy = v.port === undefined ? v.host : v.host + ':' + v.port;
  return { branch: viaBranch(v), transport: v.transport, sentBy };
}


/** The `tag` parameter of the To header field, or `undefined` when there is none. */
export function toTagOf(msg: SipMessage): string | undefined {
  return tagParam(getHeader(msg, 'to'));
}

/**
 * Builds the server transaction key of `req` as if its method were `method`.
 *
 * RFC 3261 §17.2.3: "If the branch parameter in the top Via header field is present and begins
 * with the magic cookie "z9hG4bK", the request matches a transaction if: 1. the branch parameter
 * in the request is equal to the one in the top Via header field of the request that created the
 * transaction, and 2. the sent-by value in the top Via of the request is equal to the one in the
 * request that created the transaction, and 3. the method of the request matches the one that
 * created the transaction, except for ACK, where the method of the request that created the
 * transaction is INVITE."
 *
 * Otherwise (RFC 2543 peers): "The INVITE request matches a transaction if the Request-URI, To
 * tag, From tag, Call-ID, CSeq, and top Via header field match those of the INVITE request which
 * created the transaction. [...] The ACK request matches a transaction if the Request-URI, From
 * tag, Call-ID, CSeq number (not the method), and top Via header field match those of the INVITE
 * request which created the transaction, and the To tag of the ACK matches the To tag of the
 * response sent by the server transaction." The To tag is left out of the key (see
 * {@link ServerMatchKey.rfc2543}); the top Via is compared by transport, sent-by and branch so that
 * `received`/`rport` stamping cannot break matching.
 */
function serverKeyAs(req: SipRequest, method: string): ServerMatchKey | undefined {
  const via = topVia(req);
  if (via === undefined) return undefined;
  if (via.branch !== undefined && via.branch.startsWith(MAGIC_COOKIE)) {
    return { key: via.branch + SEP + via.sentBy + SEP + method, rfc2543: false };
  }
  const cseqRaw = getHeader(req, 'cseq');
  const callId = getHeader(req, 'call-id');
  if (cseqRaw === undefined || callId === undefined) return undefined;
  const cseq = parseCSeq(cseqRaw);
  if (!cseq.ok) return undefined;
  const fromTag = tagParam(getHeader(req, 'from')) ?? '';
  const key = [
    'rfc2543',
    req.uri,
    fromTag,
    callId,
    String(cseq.value.seq),
    via.transport + ' ' + via.sentBy + ';' + (via.branch ?? ''),
    method,
  ].join(SEP);
  return { key, rfc2543: true };
}

/**
 * Server transaction key with its matching mode (RFC 3261 §17.2.3). ACK maps to the INVITE
 * transaction; CANCEL is its own transaction.
 */
export function serverTransactionMatch(req: SipRequest): ServerMatchKey | undefined {
  return serverKeyAs(req, req.method === 'ACK' ? 'INVITE' : req.method);
}

/**
 * Server transaction key of a request (RFC 3261 §17.2.3): an ACK yields the key of the INVITE
 * transaction it belongs to; a CANCEL yields its own (non-INVITE) transaction key.
 */
export function serverTransactionKey(req: SipRequest): string | undefined {
  return serverTransactionMatch(req)?.key;
}

/**
 * Key of the INVITE server transaction a CANCEL refers to (RFC 3261 §9.2): "the CANCEL request
 * matches a transaction if the Request-URI, To tag, From tag, Call-ID, CSeq number (not the
 * method), and top Via header field match those of the transaction. [...] the transaction for
 * which a CANCEL is received is matched using the procedures of Section 17.2.3, except that the
 * method of the request is INVITE"; with the magic cookie this is the INVITE's branch + sent-by.
 */
export function cancelTargetMatch(cancel: SipRequest): ServerMatchKey | undefined {
  return serverKeyAs(cancel, 'INVITE');
}

/** String form of {@link cancelTargetMatch}. */
export function cancelTargetKey(cancel: SipRequest): string | undefined {
  return cancelTargetMatch(cancel)?.key;
}

/**
 * Client transaction key (RFC 3261 §17.1.3): "1. If the response has the same value of the branch
 * parameter in the top Via header field as the branch parameter in the top Via header field of
 * the request that created the transaction. 2. If the method parameter in the CSeq header field
 * matches the method of the request that created the transaction. The method is needed since a
 * CANCEL request constitutes a different transaction, but shares the same value of the branch
 * parameter."
 *
 * For a request this is its top Via branch + method (ACK → INVITE: the ACK for a non-2xx belongs
 * to the INVITE client transaction); for a response the branch + CSeq method.
 */
export function clientTransactionKey(msg: SipMessage): string | undefined {
  const via = topVia(msg);
  if (via === undefined || via.branch === undefined || via.branch === '') return undefined;
  let method: string;
  if (msg.type === 'request') {
    method = msg.method === 'ACK' ? 'INVITE' : msg.method;
  } else {
    const cseqRaw = getHeader(msg, 'cseq');
    if (cseqRaw === undefined) return undefined;
    const cseq = parseCSeq(cseqRaw);
    if (!cseq.ok) return undefined;
    method = cseq.value.method;
  }
  return via.branch + SEP + method;
}
