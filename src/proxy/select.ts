/**
 * Best-response selection for a forking proxy (RFC 3261 §16.7 step 6) and the
 * validation steps of §16.3 that need no state.
 */
import type { SipRequest, SipResponse } from '../sip/message.js';
import { appendHeader, getHeaderValues } from '../sip/headers.js';

/**
 * Chooses the response to send upstream once every branch has a final response.
 * RFC 3261 §16.7 step 6: "The proxy MUST choose from the 6xx class responses if any exist in
 * the context. If no 6xx class responses are present, the proxy SHOULD choose from the lowest
 * response class stored in the response context." 401/407 challenges of all branches are
 * aggregated (§16.7 step 7); a 503 is replaced by 500 (§16.7 step 6).
 * @param finals final responses (status ≥ 300) of all branches, in arrival order
 * @returns the chosen response, or undefined when `finals` is empty (caller answers 408)
 */
export function selectBestResponse(finals: SipResponse[]): SipResponse | undefined {
  if (finals.length === 0) return undefined;
  let best: SipResponse | undefined;
  for (const r of finals) {
    if (r.status >= 600) {
      best = r;
      break;
    }
    if (!best || Math.floor(r.status / 100) < Math.floor(best.status / 100)) best = r;
    else if (Math.floor(r.status / 100) === Math.floor(best.status / 100) && preferWithinClass(r.status, best.status)) best = r;
  }
  if (!best) return undefined;
  if (best.status === 401 || best.status === 407) {
    // RFC 3261 §16.7 step 7: collect every WWW-Authenticate / Proxy-Authenticate of the context.
    const out: SipResponse = { ...best, headers: best.headers.slice() };
    for (const r of finals) {
      if (r === best || (r.status !== 401 && r.status !== 407)) continue;
      for (const v of getHeaderValues(r, 'www-authenticate')) appendHeader(out, 'WWW-Authenticate', v);
      for (const v of getHeaderValues(r, 'proxy-authenticate')) appendHeader(out, 'Proxy-Authenticate', v);
    }
    return out;
  }
  if (best.status === 503) return { ...best, status: 500, reason: 'Server Internal Error' };
  return best;
}

/** Within one class, prefer challenges (so the UA can retry) and 486 Busy over generic errors. */
function preferWithinClass(candidate: number, current: number): boolean {
  const rank = (s: number): number => (s === 401 || s === 407 ? 3 : s === 486 || s === 600 ? 2 : s === 408 || s === 480 ? 0 : 1);
  return rank(candidate) > rank(current);
}

/** Result of a stateless validation step: the status to answer with and extra headers. */
export interface Rejection {
  status: number;
  reason?: string;
  headers?: Array<[string, string]>;
}

/**
 * RFC 3261 §16.3 step 5 (Proxy-Require): "If the request contains a Proxy-Require header
 * field with one or more option-tags this element does not understand, the element MUST
 * return a 420 (Bad Extension) response. The response MUST include an Unsupported header
 * field listing those option-tags the element did not understand."
 */
export function checkProxyRequire(req: SipRequest, supported: ReadonlySet<string>): Rejection | undefined {
  const unknown = getHeaderValues(req, 'proxy-require').filter((t) => !supported.has(t.toLowerCase()));
  if (unknown.length === 0) return undefined;
  return { status: 420, headers: [['Unsupported', unknown.join(', ')]] };
}
