/**
 * The registrar: REGISTER processing per RFC 3261 §10.3, with RFC 5626 (outbound: instance-id
 * and reg-id flows) and RFC 3327 (Path). Takes a parsed request and the flow it came on,
 * returns the response to send; the location store is the only I/O.
 *
 * Steps, in RFC 3261 §10.3 order (each failure is a row of `REGISTRAR_ERRORS` in errors.ts):
 *
 * 1. Request-URI: must be a SIP/SIPS URI of a domain we serve (an IP literal counts as ours:
 *    the request reached us) → 400 / 404.
 * 2. `Require`: only `path` and `outbound` are understood → 420 with `Unsupported`.
 * 3. Authentication (when an authenticator is configured) → 401 with a challenge
 *    (`stale=true` after a correct answer to an old nonce), 400 for unusable credentials.
 * 4. Authorization: the authenticated username must equal the AOR user → 403.
 * 5. To: the AOR must be a SIP/SIPS URI of a domain we serve → 400 / 404.
 * 6. Contact `*`: only alone and with `Expires: 0` → 400.
 * 7. Each Contact: expiry from its `expires` param, else `Expires`, else the default; malformed
 *    values count as 3600 (§20.19); clamped to `max` (and to `maxExpiresNat` for NATed UAs);
 *    0 < expiry < min (and < 3600) → 423 with `Min-Expires`. A binding matches a Contact by URI
 *    equality (§19.1.4) or, with `+sip.instance` and `reg-id`, by that pair (RFC 5626 §6: the
 *    new flow replaces the old one whatever its URI). For a match with the same Call-ID the
 *    CSeq must be higher, else "the update MUST be aborted and the request fails" → 500 and
 *    nothing is changed. All updates are committed at once, or none (store failure → 500).
 * 8. 200 OK listing every current binding with its remaining `expires` (and q, +sip.instance,
 *    reg-id), a `Date`, the request's `Path` echoed (RFC 3327 §5.3), `Supported` for the
 *    options the UA listed, and — when outbound was used (RFC 5626 §6) — `Require: outbound`
 *    and `Flow-Timer` (RFC 5626 §5.4) when `flowTimer` is configured.
 *
 * `maxContacts` (0 = unlimited) bounds the unexpired bindings of one AOR. With
 * `overflow: 'reject'` (the default, like Kamailio `max_contacts` with `reject`) a REGISTER that
 * would grow the set past it gets 403; with `'drop-oldest'` the least recently updated other
 * bindings are removed instead.
 *
 * Expired bindings are ignored on read, dropped whenever their AOR is written, and deleted by
 * {@link Registrar.purgeExpired}, which the owner calls from its own timer.
 *
 * Concurrent REGISTERs for one AOR are serialised inside this process, so read-modify-write of
 * the binding set never loses an update.
 */
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import { parseCSeq } from '../sip/cseq.js';
import { getHeader, getHeaderValues } from '../sip/headers.js';
import { generateTag } from '../sip/ids.js';
import type { SipRequest, SipResponse } from '../sip/message.js';
import { parseNameAddr } from '../sip/nameaddr.js';
import { createResponse } from '../sip/response.js';
import { parseUri, unescapeUriPart, urisEqual, type SipUri } from '../sip/uri.js';
import type { Binding, LocationStore, ReceivedFlow } from '../store/types.js';
import type { Flow } from '../transport/types.js';
import { aorFromUri } from './aor.js';
import { contactUriText, parseDeltaSeconds, parseInstanceId, parseQValue, parseRegId } from './contact.js';
import type { DigestAuth } from './digest.js';
import { REGISTRAR_ERRORS, type RegistrarErrorReason } from './errors.js';

export { aorFromUri } from './aor.js';
export { REGISTRAR_ERRORS, type RegistrarErrorReason } from './errors.js';

/** Registrar settings (the `registrar:` config section). All durations in seconds. */
export interface RegistrarConfig {
  /** Domains served (compared lower-case); empty = accept any domain. */
  domains: string[];
  /** Registration interval bounds and default, in seconds (RFC 3261 §10.3 step 7). */
  expires: { min: number; max: number; default: number };
  /** Most unexpired bindings per AOR; 0 = unlimited. */
  maxContacts: number;
  /** Upper bound (s) on the interval granted to UAs detected behind NAT, so they refresh (and keep their pinhole) often. */
  maxExpiresNat?: number;
  /** What a REGISTER that would exceed `maxContacts` gets: `reject` (403, default) or `drop-oldest`. */
  overflow?: 'reject' | 'drop-oldest';
  /**
   * Seconds sent as `Flow-Timer` in the 2xx of an outbound REGISTER (RFC 5626 §5.4, §10): how
   * often the UA must send its own keep-alives (CRLF / STUN) on the flow. Unset or 0: omitted,
   * and the UA uses the RFC 5626 §4.4.1 defaults.
   */
  flowTimer?: number;
}

/** Constructor options of {@link Registrar}. */
export interface RegistrarOptions {
  store: LocationStore;
  clock: Clock;
  config: RegistrarConfig;
  /** Digest authenticator; undefined = no authentication. */
  auth?: DigestAuth;
  logger?: Logger;
}

/** NAT detection outcome for the request (from the nat/ unit). */
export interface NatInfo {
  nat: boolean;
  /** Names of the detection tests that fired. */
  tests: string[];
}

/** Option tags this registrar understands in `Require` (RFC 3261 §8.2.2.3). */
const SUPPORTED_TAGS = ['outbound', 'path'] as const;

/** One Contact of the request, validated. */
interface RequestContact {
  uri: SipUri;
  /** URI text as sent. */
  text: string;
  /** Granted expiry in seconds (0 = remove). */
  expires: number;
  q: number;
  instanceId?: string;
  regId?: number;
}

type Outcome = { ok: true; bindings: Binding[]; changed: boolean } | { ok: false; reason: RegistrarErrorReason };

const IPV4_RE = /^\d{1,3}(?:\.\d{1,3}){3}$/;

function isIpLiteral(host: string): boolean {
  return host.indexOf(':') >= 0 || IPV4_RE.test(host);
}

/** Orders bindings for lookup and for the 200 OK: q descending, then most recently updated first. */
function byPreference(a: Binding, b: Binding): number {
  return b.q - a.q || b.updatedAt - a.updatedAt;
}

function hasTag(values: string[], tag: string): boolean {
  for (const v of values) if (v.toLowerCase() === tag) return true;
  return false;
}

/**
 * Registrar for the domains in its config. Owns no handles: the location store belongs to
 * the caller.
 */
export class Registrar {
  /** Responses given since start, by outcome (`ok` or a failure reason), for metrics. */
  readonly counts: Record<RegistrarErrorReason | 'ok', number>;
  /**
   * Called after every successful REGISTER (a fetch too) with the AOR's unexpired bindings as
   * now stored — what {@link Registrar.lookup} would return, unsorted — so the owner can keep
   * derived state (the keepalive set) current without reading the store again. The bindings
   * are the registrar's own objects: the hook may keep them but must not mutate them. A throw is
   * logged and does not change the response.
   */
  onBindings?: (aor: string, bindings: Binding[]) => void;
  private readonly store: LocationStore;
  private readonly clock: Clock;
  private readonly cfg: RegistrarConfig;
  private readonly domains: Set<string>;
  private readonly auth?: DigestAuth;
  private readonly log?: Logger;
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(opts: RegistrarOptions) {
    this.store = opts.store;
    this.clock = opts.clock;
    this.cfg = opts.config;
    this.domains = new Set(opts.config.domains.map((d) => d.toLowerCase()));
    this.auth = opts.auth;
    this.log = opts.logger;
    const e = opts.config.expires;
    if (!(e.min >= 0 && e.min <= e.max && e.default > 0 && e.max > 0)) {
      throw new Error(`registrar: invalid expires settings (min ${e.min}, max ${e.max}, default ${e.default})`);
    }
    const counts = { ok: 0 } as Record<RegistrarErrorReason | 'ok', number>;
    for (const k of Object.keys(REGISTRAR_ERRORS) as RegistrarErrorReason[]) counts[k] = 0;
    this.counts = counts;
  }

  /**
   * Processes a REGISTER (RFC 3261 §10.3) and returns the response to send. Never throws: bad
   * input gets a 4xx, a store failure a 500.
   * @param req a REGISTER request (the caller dispatches by method)
   * @param flow the flow it arrived on: stored with each binding so the UA is reached over it
   * @param nat NAT detection result for this request, stored with the bindings; or a function
   *   computing it, called at most once and only for a request that passed authentication (a
   *   challenged REGISTER — half of all REGISTERs with digest auth — never needs it)
   */
  async handleRegister(req: SipRequest, flow: Flow, nat?: NatInfo | (() => NatInfo)): Promise<SipResponse> {
    // Step 1: Request-URI names a domain we serve.
    const ru = parseUri(req.uri);
    if (!ru.ok || (ru.value.scheme !== 'sip' && ru.value.scheme !== 'sips')) return this.fail(req, 'bad-request-uri');
    if (this.domains.size > 0 && !this.domains.has(ru.value.host) && !isIpLiteral(ru.value.host)) {
      return this.fail(req, 'domain-not-served');
    }

    // Step 2: Require (RFC 3261 §8.2.2.3).
    const require = getHeaderValues(req, 'require');
    if (require.length > 0) {
      const unsupported = require.filter((t) => !(SUPPORTED_TAGS as readonly string[]).includes(t.toLowerCase()));
      if (unsupported.length > 0) return this.fail(req, 'bad-extension', [['Unsupported', unsupported.join(', ')]]);
    }

    // To (needed by steps 4 and 5), Call-ID and CSeq (step 7).
    const toValue = getHeader(req, 'to');
    const to = toValue === undefined ? undefined : parseNameAddr(toValue);
    if (to === undefined || !to.ok || to.value.wildcard === true) return this.fail(req, 'bad-to');
    const aor = aorFromUri(to.value.uri);
    if (aor === undefined) return this.fail(req, 'bad-to');
    const callId = getHeader(req, 'call-id');
    if (callId === undefined || callId.length === 0) return this.fail(req, 'bad-call-id');
    const cseqValue = getHeader(req, 'cseq');
    const cseqParsed = cseqValue === undefined ? undefined : parseCSeq(cseqValue);
    if (cseqParsed === undefined || !cseqParsed.ok) return this.fail(req, 'bad-cseq');
    const cseq = cseqParsed.value.seq;

    // Steps 3 and 4: authentication, then authorization for this AOR.
    if (this.auth !== undefined) {
      const r = this.auth.verify(req, 'authorization');
      if (!r.ok) {
        switch (r.reason) {
          case 'malformed':
            return this.fail(req, 'auth-malformed');
          case 'stale':
            return this.challenge(req, 'auth-stale', true);
          case 'missing':
          case 'realm-mismatch':
            return this.challenge(req, 'auth-required', false);
          default:
            // unknown-user, bad-credentials, replay: a fresh challenge, indistinguishable on the wire.
            return this.challenge(req, 'auth-failed', false);
        }
      }
      const user = to.value.uri.user;
      if (user === undefined || unescapeUriPart(user) !== r.username) return this.fail(req, 'auth-user-mismatch');
    }

    // Step 5: the AOR's domain.
    if (this.domains.size > 0 && !this.domains.has(to.value.uri.host)) return this.fail(req, 'domain-not-served');

    // Steps 6 and 7: parse and validate every Contact before touching the store.
    const natInfo = typeof nat === 'function' ? nat() : nat;
    const natted = natInfo?.nat === true;
    const contactValues = getHeaderValues(req, 'contact');
    let wildcard = false;
    const contacts: RequestContact[] = [];
    if (contactValues.length > 0) {
      const expiresHeader = getHeader(req, 'expires');
      // RFC 3261 §20.19: a malformed Expires value SHOULD be treated as 3600.
      const headerExpires = expiresHeader === undefined ? undefined : (parseDeltaSeconds(expiresHeader) ?? 3600);
      for (const v of contactValues) {
        const na = parseNameAddr(v);
        if (!na.ok) return this.fail(req, 'bad-contact');
        if (na.value.wildcard === true) {
          wildcard = true;
          continue;
        }
        const u = na.value.uri;
        if (u.opaque !== undefined || (u.scheme !== 'sip' && u.scheme !== 'sips' && u.scheme !== 'tel')) {
          // Other schemes (mailto:, http:) cannot be routed to by this proxy.
          return this.fail(req, 'bad-contact');
        }
        const p = na.value.params;
        const rc: RequestContact = { uri: u, text: contactUriText(v), expires: 0, q: 1 };
        if (Object.prototype.hasOwnProperty.call(p, 'q')) {
          const q = parseQValue(p.q);
          if (q === undefined) return this.fail(req, 'bad-q');
          rc.q = q;
        }
        const instanceId = parseInstanceId(p['+sip.instance']);
        if (instanceId !== undefined) rc.instanceId = instanceId;
        if (Object.prototype.hasOwnProperty.call(p, 'reg-id')) {
          const regId = parseRegId(p['reg-id']);
          if (regId === undefined) return this.fail(req, 'bad-reg-id');
          // RFC 5626 §6: reg-id without +sip.instance is processed as plain RFC 3261.
          if (instanceId !== undefined) rc.regId = regId;
        }
        const hasParam = Object.prototype.hasOwnProperty.call(p, 'expires');
        const requested = hasParam ? (parseDeltaSeconds(p.expires) ?? 3600) : (headerExpires ?? this.cfg.expires.default);
        if (requested > 0) {
          // RFC 3261 §10.3 step 7: 423 "if and only if the requested expiration interval is
          // greater than zero AND smaller than one hour AND less than a registrar-configured minimum".
          if (requested < this.cfg.expires.min && requested < 3600) {
            return this.fail(req, 'interval-too-brief', [['Min-Expires', String(this.cfg.expires.min)]]);
          }
          let granted = Math.min(requested, this.cfg.expires.max);
          if (natted && this.cfg.maxExpiresNat !== undefined && this.cfg.maxExpiresNat > 0) {
            granted = Math.min(granted, this.cfg.maxExpiresNat);
          }
          rc.expires = granted;
        }
        contacts.push(rc);
      }
      // Step 6: "*" only alone and with an Expires header of 0.
      if (wildcard && (contactValues.length !== 1 || headerExpires !== 0)) {
        return this.fail(req, 'bad-wildcard');
      }
    }

    // RFC 5626 §6 applies when the UA supports outbound and sent instance-id and reg-id.
    const supported = getHeaderValues(req, 'supported');
    const uaOutbound = hasTag(supported, 'outbound');
    let outboundContacts = 0;
    for (const c of contacts) if (c.regId !== undefined) outboundContacts++;
    const outbound = uaOutbound && outboundContacts > 0;
    const pathValues = getHeaderValues(req, 'path');
    if (outbound) {
      if (outboundContacts > 1) return this.fail(req, 'multiple-reg-id');
      // The first hop's Path entry is the last one; it must carry "ob" (RFC 5626 §5.1, §6).
      if (pathValues.length > 0) {
        const first = parseNameAddr(pathValues[pathValues.length - 1]);
        if (!first.ok || !Object.prototype.hasOwnProperty.call(first.value.uri.params, 'ob')) {
          return this.fail(req, 'first-hop-lacks-outbound');
        }
      }
    }

    const template: Omit<Binding, 'contact' | 'expiresAt' | 'q'> = {
      aor,
      callId,
      cseq,
      received: receivedFlow(flow),
      nat: natted,
      updatedAt: this.clock.wallNow(),
    };
    // Not copied here: every binding built from the template gets its own copy (see apply).
    if (natInfo !== undefined && natInfo.tests.length > 0) template.natTests = natInfo.tests;
    const ua = getHeader(req, 'user-agent');
    if (ua !== undefined) template.userAgent = ua;
    if (pathValues.length > 0) template.path = pathValues;

    let outcome: Outcome;
    try {
      const prev = this.locks.get(aor);
      if (prev === undefined) {
        // No REGISTER for this AOR in progress: run at once (the common case).
        const run = this.update(aor, wildcard, contacts, template);
        const tail = run.then(noop, noop);
        this.locks.set(aor, tail);
        try {
          outcome = await run;
        } finally {
          if (this.locks.get(aor) === tail) this.locks.delete(aor);
        }
      } else outcome = await this.withAorLock(aor, () => this.update(aor, wildcard, contacts, template));
    } catch (err) {
      this.log?.error({ err, aor }, 'registrar: location store failed');
      return this.fail(req, 'store-failed');
    }
    if (!outcome.ok) return this.fail(req, outcome.reason);
    if (this.onBindings !== undefined) {
      try {
        this.onBindings(aor, outcome.bindings);
      } catch (err) {
        this.log?.warn({ err, aor }, 'registrar: onBindings hook threw');
      }
    }
    return this.ok(req, outcome.bindings, outbound, uaOutbound, hasTag(supported, 'path'), pathValues);
  }

  /**
   * Unexpired bindings of an AOR, best first: q descending, then most recently updated.
   * @param aor canonical AOR (see {@link aorFromUri})
   */
  async lookup(aor: string): Promise<Binding[]> {
    const now = this.clock.wallNow();
    const all = await this.store.getBindings(aor);
    const out: Binding[] = [];
    for (const b of all) if (b.expiresAt > now) out.push(b);
    return out.sort(byPreference);
  }

  /**
   * Deletes expired bindings from the store. Call it from a timer (e.g. every 60 s).
   * @returns the number of bindings removed
   */
  async purgeExpired(): Promise<number> {
    return this.store.purgeExpired(this.clock.wallNow());
  }

  /**
   * The read-modify-write of one REGISTER, run under the AOR's lock: reads the bindings,
   * applies the request (steps 6 and 7) and writes the new set when it changed.
   */
  private async update(aor: string, wildcard: boolean, contacts: RequestContact[], template: Omit<Binding, 'contact' | 'expiresAt' | 'q'>): Promise<Outcome> {
    const now = this.clock.wallNow();
    template.updatedAt = now;
    const stored = await this.store.getBindings(aor);
    let current = stored;
    for (let i = 0; i < stored.length; i++) {
      if (stored[i].expiresAt > now) continue;
      // Some are expired: keep only the unexpired ones.
      current = [];
      for (const b of stored) if (b.expiresAt > now) current.push(b);
      break;
    }
    const o = wildcard
      ? removeAll(current, template.callId, template.cseq)
      : contacts.length === 0
        ? ({ ok: true, bindings: current, changed: false } as Outcome)
        : this.apply(current, contacts, template, now);
    if (!o.ok) return o;
    if (o.changed || current.length !== stored.length) await this.store.setBindings(aor, o.bindings);
    return o;
  }

  /** RFC 3261 §10.3 step 7 for a list of contacts; returns the new binding set or a failure. */
  private apply(current: Binding[], contacts: RequestContact[], template: Omit<Binding, 'contact' | 'expiresAt' | 'q'>, now: number): Outcome {
    const result = current.slice();
    // Parsed stored contact URIs, by binding object (parsed lazily, at most once).
    let parsed: Map<Binding, SipUri | null> | undefined;
    // Bindings written by this request: `fresh` for a request with several Contacts, else `single`.
    const fresh = contacts.length > 1 ? new Set<Binding>() : undefined;
    let single: Binding | undefined;
    let added = 0;
    for (const rc of contacts) {
      // Bindings this Contact replaces: same (instance-id, reg-id) flow (RFC 5626 §6), or an
      // equal URI (RFC 3261 §19.1.4) — for an outbound Contact only bindings without reg-id,
      // since one UA registers the same URI over several flows.
      let firstIdx = -1;
      for (let i = 0; i < result.length; i++) {
        const b = result[i];
        let match: boolean;
        if (rc.regId !== undefined && b.regId !== undefined) match = b.regId === rc.regId && b.instanceId === rc.instanceId;
        // The same text is the same URI (rc.uri parsed, so b.contact parses alike): no parse needed.
        else if (b.contact === rc.text) match = true;
        else {
          parsed ??= new Map();
          const u = storedUri(parsed, b);
          match = u !== null && urisEqual(u, rc.uri);
        }
        if (!match) continue;
        // RFC 3261 §10.3 step 7: same Call-ID needs a higher CSeq, "If not, the update MUST
        // be aborted and the request fails." (A binding written by this same request — a
        // repeated Contact — is simply overwritten.)
        if (!isFresh(fresh, single, b) && b.callId === template.callId && template.cseq <= b.cseq) {
          return { ok: false, reason: 'cseq-out-of-order' };
        }
        if (firstIdx < 0) firstIdx = i;
        result.splice(i, 1);
        i--;
      }
      if (rc.expires > 0) {
        const nb: Binding = {
          aor: template.aor,
          contact: rc.text,
          expiresAt: now + rc.expires * 1000,
          q: rc.q,
          callId: template.callId,
          cseq: template.cseq,
          received: template.received,
          nat: template.nat,
          updatedAt: template.updatedAt,
        };
        if (rc.instanceId !== undefined) nb.instanceId = rc.instanceId;
        if (rc.regId !== undefined) nb.regId = rc.regId;
        if (template.natTests !== undefined) nb.natTests = template.natTests.slice();
        if (template.userAgent !== undefined) nb.userAgent = template.userAgent;
        if (template.path !== undefined) nb.path = template.path.slice();
        if (firstIdx >= 0) result.splice(firstIdx, 0, nb);
        else {
          result.push(nb);
          added++;
        }
        if (fresh !== undefined) fresh.add(nb);
        else single = nb;
      }
    }
    const max = this.cfg.maxContacts;
    if (max > 0 && result.length > max && added > 0) {
      if (this.cfg.overflow !== 'drop-oldest') return { ok: false, reason: 'too-many-contacts' };
      // Drop the least recently updated bindings not written by this request.
      const victims = result.filter((b) => !isFresh(fresh, single, b)).sort((a, b) => a.updatedAt - b.updatedAt);
      let excess = result.length - max;
      const drop = new Set<Binding>();
      for (const v of victims) {
        if (excess === 0) break;
        drop.add(v);
        excess--;
      }
      if (excess > 0) return { ok: false, reason: 'too-many-contacts' };
      return { ok: true, bindings: result.filter((b) => !drop.has(b)), changed: true };
    }
    return { ok: true, bindings: result, changed: true };
  }

  /** Runs `fn` after every earlier call for the same AOR has finished. */
  private async withAorLock<T>(aor: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(aor);
    const run = prev === undefined ? fn() : prev.then(fn, fn);
    const tail = run.then(noop, noop);
    this.locks.set(aor, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(aor) === tail) this.locks.delete(aor);
    }
  }

  private ok(
    req: SipRequest,
    bindings: Binding[],
    outbound: boolean,
    uaOutbound: boolean,
    uaPath: boolean,
    path: string[],
  ): SipResponse {
    this.counts.ok++;
    const now = this.clock.wallNow();
    const headers: Array<[string, string]> = [];
    const sorted = bindings.length > 1 ? bindings.slice().sort(byPreference) : bindings;
    for (const b of sorted) {
      let v = '<' + b.contact + '>;expires=' + Math.max(0, Math.ceil((b.expiresAt - now) / 1000));
      if (b.q !== 1) v += ';q=' + b.q;
      if (b.instanceId !== undefined) v += ';+sip.instance="<' + b.instanceId + '>"';
      if (b.regId !== undefined) v += ';reg-id=' + b.regId;
      headers.push(['Contact', v]);
    }
    // RFC 3261 §10.3 step 8: "The response SHOULD include a Date header field."
    headers.push(['Date', sipDate(now)]);
    // RFC 3327 §5.3: "The registrar copies the Path header field values into a Path header field
    // in the successful (200 class) REGISTER response."
    for (const p of path) headers.push(['Path', p]);
    if (uaOutbound || uaPath) headers.push(['Supported', uaOutbound && uaPath ? 'outbound, path' : uaOutbound ? 'outbound' : 'path']);
    // RFC 5626 §6: Require: outbound in the 2xx when the registrar used outbound processing.
    if (outbound) headers.push(['Require', 'outbound']);
    // RFC 5626 §5.4: a registrar/edge proxy that wants keep-alives at a given rate says so with
    // Flow-Timer in the 2xx; the UA then sends them at 80–100 % of that interval (§4.4.1).
    if (outbound && this.cfg.flowTimer !== undefined && this.cfg.flowTimer > 0) headers.push(['Flow-Timer', String(Math.floor(this.cfg.flowTimer))]);
    return createResponse(req, 200, undefined, { toTag: generateTag(), headers });
  }

  private fail(req: SipRequest, reason: RegistrarErrorReason, headers?: Array<[string, string]>): SipResponse {
    this.counts[reason]++;
    const e = REGISTRAR_ERRORS[reason];
    return createResponse(req, e.status, e.reason, headers === undefined ? { toTag: generateTag() } : { toTag: generateTag(), headers });
  }

  private challenge(req: SipRequest, reason: 'auth-required' | 'auth-stale' | 'auth-failed', stale: boolean): SipResponse {
    const values = (this.auth as DigestAuth).challenge(stale);
    const headers = new Array<[string, string]>(values.length);
    for (let i = 0; i < values.length; i++) headers[i] = ['WWW-Authenticate', values[i]];
    return this.fail(req, reason, headers);
  }
}

function noop(): void {}

/** Whether `b` was written by the current request (see `apply`). */
function isFresh(fresh: Set<Binding> | undefined, single: Binding | undefined, b: Binding): boolean {
  return fresh !== undefined ? fresh.has(b) : b === single;
}

/** Parsed Contact URI of a stored binding (parsed at most once per request), or null when unparsable. */
function storedUri(cache: Map<Binding, SipUri | null>, b: Binding): SipUri | null {
  let u = cache.get(b);
  if (u === undefined) {
    const p = parseUri(b.contact);
    u = p.ok ? p.value : null;
    cache.set(b, u);
  }
  return u;
}

let dateSecond = -1;
let dateText = '';

/** RFC 1123 date for the Date header (RFC 3261 §20.17), formatted once per second. */
function sipDate(epochMs: number): string {
  const sec = Math.floor(epochMs / 1000);
  if (sec !== dateSecond) {
    dateSecond = sec;
    dateText = new Date(sec * 1000).toUTCString();
  }
  return dateText;
}

/** The flow a REGISTER arrived on, as stored with its bindings. */
function receivedFlow(flow: Flow): ReceivedFlow {
  const r: ReceivedFlow = {
    transport: flow.transport,
    address: flow.remote.address,
    port: flow.remote.port,
    socketId: flow.local.socketId,
  };
  if (flow.connectionId !== undefined) r.connectionId = flow.connectionId;
  return r;
}

/**
 * RFC 3261 §10.3 step 6/7 for `Contact: *`: a binding with the same Call-ID is removed only if
 * the request's CSeq is higher, "Otherwise, the update is aborted and the request fails."
 */
function removeAll(current: Binding[], callId: string, cseq: number): Outcome {
  for (const b of current) if (b.callId === callId && cseq <= b.cseq) return { ok: false, reason: 'cseq-out-of-order' };
  return { ok: true, bindings: [], changed: true };
}
