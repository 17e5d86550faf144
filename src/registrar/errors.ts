/**
 * Registrar failure reasons and the SIP status each one is answered with (Kamailio style: one
 * table, one place to read what a REGISTER can get back). `reason` is the reason phrase sent.
 */

/** One row of {@link REGISTRAR_ERRORS}. */
export interface RegistrarErrorInfo {
  /** SIP status code of the response. */
  status: number;
  /** Reason phrase of the response. */
  reason: string;
  /** Where the behaviour is specified. */
  ref: string;
}

/**
 * Every reason a REGISTER is refused, with its status. Authentication failures other than
 * `auth-malformed` are answered with a fresh challenge, so a UA with a wrong password, an
 * unknown username or a replayed nonce-count cannot tell them apart.
 */
export const REGISTRAR_ERRORS = {
  'bad-request-uri': { status: 400, reason: 'Bad Request - Invalid Request-URI', ref: 'RFC 3261 §10.3 step 1' },
  'bad-to': { status: 400, reason: 'Bad Request - Invalid To AOR', ref: 'RFC 3261 §10.3 step 5, §10.2 (To MUST be a SIP or SIPS URI)' },
  'bad-call-id': { status: 400, reason: 'Bad Request - Missing Call-ID', ref: 'RFC 3261 §8.1.1.4' },
  'bad-cseq': { status: 400, reason: 'Bad Request - Invalid CSeq', ref: 'RFC 3261 §8.1.1.5' },
  'bad-contact': { status: 400, reason: 'Bad Request - Invalid Contact', ref: 'RFC 3261 §20.10' },
  'bad-wildcard': {
    status: 400,
    reason: 'Bad Request - Invalid Wildcard Contact',
    ref: 'RFC 3261 §10.3 step 6 ("*" only alone and with Expires: 0)',
  },
  'bad-q': { status: 400, reason: 'Bad Request - Invalid q Value', ref: 'RFC 3261 §20.10 (qvalue 0..1, 3 decimals)' },
  'bad-reg-id': { status: 400, reason: 'Bad Request - Invalid reg-id', ref: 'RFC 5626 §4.2 (reg-id 1..2^31-1)' },
  'multiple-reg-id': { status: 400, reason: 'Bad Request - Multiple Contacts with reg-id', ref: 'RFC 5626 §6' },
  'auth-malformed': { status: 400, reason: 'Bad Request - Malformed Credentials', ref: 'RFC 7616 §3.4' },
  'auth-required': { status: 401, reason: 'Unauthorized', ref: 'RFC 3261 §10.3 step 3, §22.4' },
  'auth-stale': { status: 401, reason: 'Unauthorized', ref: 'RFC 7616 §3.3 (challenge with stale=true)' },
  'auth-failed': { status: 401, reason: 'Unauthorized', ref: 'RFC 3261 §22.4 (re-challenge on bad credentials)' },
  'auth-user-mismatch': {
    status: 403,
    reason: 'Forbidden - Not Authorized for this AOR',
    ref: 'RFC 3261 §10.3 step 4',
  },
  'too-many-contacts': { status: 403, reason: 'Forbidden - Too Many Contacts', ref: 'local policy (maxContacts)' },
  'domain-not-served': { status: 404, reason: 'Not Found - Domain Not Served', ref: 'RFC 3261 §10.3 steps 1 and 5, §21.4.5' },
  'bad-extension': { status: 420, reason: 'Bad Extension', ref: 'RFC 3261 §10.3 step 2, §8.2.2.3' },
  'interval-too-brief': { status: 423, reason: 'Interval Too Brief', ref: 'RFC 3261 §10.3 step 7, §21.4.17' },
  'first-hop-lacks-outbound': { status: 439, reason: 'First Hop Lacks Outbound Support', ref: 'RFC 5626 §6' },
  'cseq-out-of-order': {
    status: 500,
    reason: 'Server Internal Error - Out of Order CSeq',
    ref: 'RFC 3261 §10.3 step 7 ("the update MUST be aborted and the request fails"; failures are 500)',
  },
  'store-failed': { status: 500, reason: 'Server Internal Error', ref: 'RFC 3261 §10.3 step 7 (back-end failure → 500)' },
} as const satisfies Record<string, RegistrarErrorInfo>;

/** A registrar failure reason (a key of {@link REGISTRAR_ERRORS}). */
export type RegistrarErrorReason = keyof typeof REGISTRAR_ERRORS;
