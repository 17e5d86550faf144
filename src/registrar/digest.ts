/**
 * HTTP Digest authentication, server side, for SIP (RFC 3261 §22.4, RFC 7616; RFC 2617/2069
 * compatibility for old phones).
 *
 * Nonces are stateless-verifiable: `base64url(timestamp ‖ random ‖ HMAC-SHA-256(secret, …))`,
 * so issuing a challenge stores nothing. The only state is a bounded map nonce → highest
 * nonce-count seen, for qop replay protection (RFC 7616 §3.4: "the server … SHOULD check that
 * the nonce-count is greater than the previous value for that nonce").
 *
 * Outcome of {@link DigestAuth.verify} for the caller (registrar: 401 / 400, proxy: 407 / 400):
 *
 * | reason            | meaning                                                                  |
 * |-------------------|--------------------------------------------------------------------------|
 * | `missing`         | no credentials (or only non-Digest schemes) → challenge                  |
 * | `malformed`       | Digest credentials that cannot be evaluated (missing fields, bad nc/qop, algorithm not offered) → 400 |
 * | `realm-mismatch`  | credentials only for other realms → challenge                            |
 * | `unknown-user`    | username not configured → challenge (indistinguishable on the wire from a wrong password) |
 * | `bad-credentials` | response does not match → challenge                                     |
 * | `stale`           | correct response for a nonce that is expired or not ours → challenge with `stale=true` (RFC 7616 §3.3) |
 * | `replay`          | correct response but nonce-count not greater than one already accepted → challenge |
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../lib/clock.js';
import { getHeaderValues } from '../sip/headers.js';
import type { SipRequest } from '../sip/message.js';

/** Digest algorithms we offer (RFC 7616 §3.3; MD5 for RFC 2617 clients). */
export type DigestAlgorithm = 'MD5' | 'SHA-256';

/** Why {@link DigestAuth.verify} rejected a request (see the table in the module comment). */
export type DigestFailureReason = 'missing' | 'malformed' | 'unknown-user' | 'bad-credentials' | 'stale' | 'replay' | 'realm-mismatch';

/** Result of {@link DigestAuth.verify}. */
export type DigestResult = { ok: true; username: string } | { ok: false; reason: DigestFailureReason };

/** Options of {@link DigestAuth}. */
export interface DigestAuthOptions {
  /** Protection space (RFC 7616 §3.3 `realm`), usually the SIP domain. */
  realm: string;
  /** Accounts of this realm. */
  users: Array<{ username: string; password: string }>;
  /** Time source: nonce timestamps use `clock.wallNow()` (ms) so a shared `secret` works across nodes. */
  clock: Clock;
  /** Nonce lifetime in ms; an older nonce with a correct response is `stale`. Default 300 000 (5 min). */
  nonceTtlMs?: number;
  /** Algorithms offered, one challenge each, in this order. Default `['MD5', 'SHA-256']`. */
  algorithms?: DigestAlgorithm[];
  /** HMAC key for nonces (≥ 16 bytes recommended). Default: 32 random bytes per process. */
  secret?: Buffer;
  /** How many nonces' nonce-counts are remembered for replay protection. Default 65 536. */
  maxTrackedNonces?: number;
}

const HASH_NAME: Record<DigestAlgorithm, string> = { MD5: 'md5', 'SHA-256': 'sha256' };
const TS_BYTES = 6;
const RAND_BYTES = 8;
const MAC_BYTES = 16;
const NONCE_BYTES = TS_BYTES + RAND_BYTES + MAC_BYTES; // 30 → 40 base64url chars
const NONCE_CHARS = 40;
const NONCE_RE = /^[A-Za-z0-9_-]{40}$/;
const NC_RE = /^[0-9a-fA-F]{8}$/;
/** Tolerated clock difference (ms) for nonces stamped slightly in the future by another node. */
const FUTURE_SKEW_MS = 5_000;

function hashHex(alg: DigestAlgorithm, s: string): string {
  return createHash(HASH_NAME[alg]).update(s, 'utf8').digest('hex');
}

function hashBufHex(alg: DigestAlgorithm, b: Buffer): string {
  return createHash(HASH_NAME[alg]).update(b).digest('hex');
}

/** Constant-time equality of two ASCII strings (length is not secret). */
function safeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1'));
}

function quote(s: string): string {
  return '"' + s.replace(/[\\"]/g, '\\$&') + '"';
}

/**
 * Parses a credentials or challenge value `Digest k=v, k="quoted", …` (RFC 7616 §3.4,
 * RFC 7235 §2.1 auth-param). Parameter names are lower-cased; quoted-string values are
 * unquoted with `\` quoted-pairs resolved.
 * @param value an Authorization / Proxy-Authorization / WWW-Authenticate header value
 * @returns the parameters (a prototype-less record), or undefined when the scheme is not
 *   `Digest` (case-insensitive) or the value is malformed (unterminated quote, missing `=`,
 *   repeated parameter)
 */
export function parseDigestParams(value: string): Record<string, string> | undefined {
  const r = parseCredentials(value);
  return r !== undefined && r.digest ? r.params : undefined;
}

/** Scheme test + parameter parse; `digest: false` with empty params for another scheme. */
function parseCredentials(value: string): { digest: boolean; params: Record<string, string> } | undefined {
  const s = value;
  const n = s.length;
  let i = 0;
  while (i < n && (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9)) i++;
  const schemeStart = i;
  while (i < n && s.charCodeAt(i) !== 32 && s.charCodeAt(i) !== 9) i++;
  if (s.slice(schemeStart, i).toLowerCase() !== 'digest') return { digest: false, params: Object.create(null) as Record<string, string> };
  const params = Object.create(null) as Record<string, string>;
  for (;;) {
    // Skip separators: whitespace and commas (empty list elements are allowed, RFC 7230 §7).
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === 32 || c === 9 || c === 44) i++;
      else break;
    }
    if (i >= n) break;
    const nameStart = i;
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === 61 /* = */ || c === 32 || c === 9 || c === 44 || c === 34) break;
      i++;
    }
    const name = s.slice(nameStart, i).toLowerCase();
    while (i < n && (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9)) i++;
    if (name.length === 0 || i >= n || s.charCodeAt(i) !== 61) return undefined;
    i++;
    while (i < n && (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9)) i++;
    let val: string;
    if (i < n && s.charCodeAt(i) === 34) {
      i++;
      let out = '';
      let segStart = i;
      let closed = false;
      while (i < n) {
        const c = s.charCodeAt(i);
        if (c === 92 /* \ */) {
          if (i + 1 >= n) return undefined;
          out += s.slice(segStart, i) + s[i + 1];
          i += 2;
          segStart = i;
        } else if (c === 34) {
          out += s.slice(segStart, i);
          i++;
          closed = true;
          break;
        } else i++;
      }
      if (!closed) return undefined;
      val = out;
    } else {
      const vStart = i;
      while (i < n) {
        const c = s.charCodeAt(i);
        if (c === 44 || c === 32 || c === 9) break;
        i++;
      }
      val = s.slice(vStart, i);
    }
    if (name in params) return undefined;
    params[name] = val;
    // After a value only whitespace then a comma (or the end) may follow.
    while (i < n && (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9)) i++;
    if (i < n && s.charCodeAt(i) !== 44) return undefined;
  }
  return { digest: true, params };
}

/** Per-user precomputed HA1 = H(username:realm:password) per algorithm (RFC 7616 §3.4.2). */
type Ha1 = Partial<Record<DigestAlgorithm, string>>;

/**
 * Digest authentication for one realm. Owns no handles (no `close()` needed): nonces are
 * verified statelessly and the nonce-count map is bounded.
 */
export class DigestAuth {
  /** The realm challenged and accepted. */
  readonly realm: string;
  /** Algorithms offered, in challenge order. */
  readonly algorithms: readonly DigestAlgorithm[];
  private readonly clock: Clock;
  private readonly ttlMs: number;
  private readonly secret: Buffer;
  private readonly opaque: string;
  private readonly ha1 = new Map<string, Ha1>();
  private readonly maxTracked: number;
  /** nonce → { highest accepted nc, nonce timestamp } in first-use order (oldest first). */
  private readonly ncSeen = new Map<string, { nc: number; ts: number }>();
  /** Highest timestamp of a nonce evicted from {@link ncSeen}; older unknown nonces are stale. */
  private evictedBefore = -1;
  private readonly nonceBuf = Buffer.alloc(NONCE_BYTES);

  constructor(opts: DigestAuthOptions) {
    this.realm = opts.realm;
    this.clock = opts.clock;
    this.ttlMs = opts.nonceTtlMs ?? 300_000;
    const algs = opts.algorithms ?? ['MD5', 'SHA-256'];
    if (algs.length === 0) throw new Error('DigestAuth: at least one algorithm is required');
    this.algorithms = [...new Set(algs)];
    this.secret = opts.secret ?? randomBytes(32);
    this.maxTracked = Math.max(1, opts.maxTrackedNonces ?? 65_536);
    this.opaque = createHmac('sha256', this.secret).update('opaque\0' + this.realm).digest().subarray(0, 12).toString('base64url');
    for (const u of opts.users) {
      const h: Ha1 = {};
      for (const a of this.algorithms) h[a] = hashHex(a, `${u.username}:${this.realm}:${u.password}`);
      this.ha1.set(u.username, h);
    }
  }

  /**
   * Builds the challenge header values (for WWW-Authenticate in a 401, or Proxy-Authenticate in
   * a 407), one per configured algorithm in order, sharing one fresh nonce
   * (RFC 7616 §3.3, RFC 3261 §22.4). Example:
   * `Digest realm="sip.example.org", nonce="…", opaque="…", algorithm=MD5, qop="auth"`.
   * @param stale add `stale=true` (the previous nonce was stale, the password right)
   */
  challenge(stale = false): string[] {
    const nonce = this.newNonce();
    const out = new Array<string>(this.algorithms.length);
    const tail = stale ? ', qop="auth", stale=true' : ', qop="auth"';
    const head = `Digest realm=${quote(this.realm)}, nonce="${nonce}", opaque="${this.opaque}", algorithm=`;
    for (let i = 0; i < this.algorithms.length; i++) out[i] = head + this.algorithms[i] + tail;
    return out;
  }

  /**
   * Verifies the Digest credentials in `header` against the request (RFC 7616 §3.4.1,
   * RFC 3261 §22.4). Among several credential headers the first for our realm is used. The
   * `uri` parameter must be present but need not byte-match the Request-URI (proxies and NAT
   * boxes rewrite it). Without `qop` (RFC 2069) there is no nonce-count, so no replay check
   * beyond the nonce lifetime (the registrar's Call-ID/CSeq ordering still rejects a replayed
   * REGISTER). Never throws.
   * @param header `authorization` (registrar, 401) or `proxy-authorization` (proxy, 407)
   */
  verify(req: SipRequest, header: 'authorization' | 'proxy-authorization'): DigestResult {
    const values = getHeaderValues(req, header);
    if (values.length === 0) return FAIL_MISSING;
    let p: Record<string, string> | undefined;
    let sawDigest = false;
    let sawMalformed = false;
    for (const v of values) {
      const c = parseCredentials(v);
      if (c === undefined) {
        sawMalformed = true;
        continue;
      }
      if (!c.digest) continue;
      sawDigest = true;
      if (c.params.realm === this.realm) {
        p = c.params;
        break;
      }
    }
    if (p === undefined) {
      if (sawDigest) return FAIL_REALM;
      return sawMalformed ? FAIL_MALFORMED : FAIL_MISSING;
    }

    const username = p.username;
    const nonce = p.nonce;
    const uri = p.uri;
    let response = p.response;
    if (username === undefined || nonce === undefined || uri === undefined || uri === '' || response === undefined) return FAIL_MALFORMED;
    const alg = this.algorithmOf(p.algorithm);
    if (alg === undefined) return FAIL_MALFORMED;
    const qop = p.qop;
    let nc = 0;
    if (qop !== undefined) {
      if (qop !== 'auth' && qop !== 'auth-int') return FAIL_MALFORMED;
      const ncs = p.nc;
      if (ncs === undefined || !NC_RE.test(ncs) || p.cnonce === undefined) return FAIL_MALFORMED;
      nc = parseInt(ncs, 16);
    }

    const h = this.ha1.get(username);
    if (h === undefined) return FAIL_UNKNOWN_USER;
    const ha1 = h[alg] as string;
    // RFC 7616 §3.4.3: A2 = Method ":" request-uri [":" H(entity-body)] for auth-int.
    const ha2 =
      qop === 'auth-int'
        ? hashHex(alg, `${req.method}:${uri}:${hashBufHex(alg, req.body)}`)
        : hashHex(alg, `${req.method}:${uri}`);
    // RFC 7616 §3.4.1: response = KD(H(A1), nonce:nc:cnonce:qop:H(A2)); RFC 2069 form without qop.
    const expected =
      qop === undefined
        ? hashHex(alg, `${ha1}:${nonce}:${ha2}`)
        : hashHex(alg, `${ha1}:${nonce}:${p.nc}:${p.cnonce}:${qop}:${ha2}`);
    response = response.toLowerCase();
    if (!safeEqual(response, expected)) return FAIL_BAD_CREDENTIALS;

    // The client knows the password. RFC 7616 §3.3: stale=true when "the nonce is invalid"
    // but the digest is valid for it — expired, from another process, or forged.
    const ts = this.nonceTimestamp(nonce);
    const now = this.clock.wallNow();
    if (ts < 0 || now - ts >= this.ttlMs || ts - now > FUTURE_SKEW_MS) return FAIL_STALE;

    if (qop !== undefined) {
      const seen = this.ncSeen.get(nonce);
      if (seen !== undefined) {
        if (nc <= seen.nc) return FAIL_REPLAY;
        seen.nc = nc;
      } else {
        // Forgotten (evicted) nonces cannot be checked for replay any more: make the client fetch a new one.
        if (ts <= this.evictedBefore) return FAIL_STALE;
        this.track(nonce, nc, ts, now);
      }
    }
    return { ok: true, username };
  }

  /** Number of nonces whose nonce-count is remembered (for metrics and tests). */
  get trackedNonces(): number {
    return this.ncSeen.size;
  }

  private algorithmOf(param: string | undefined): DigestAlgorithm | undefined {
    // RFC 7616 §3.4: "If [algorithm] is not present, it is assumed to be MD5."
    if (param === undefined) return this.algorithms.includes('MD5') ? 'MD5' : undefined;
    const up = param.toUpperCase();
    for (const a of this.algorithms) if (a === up) return a;
    return undefined;
  }

  private newNonce(): string {
    const b = this.nonceBuf;
    b.writeUIntBE(Math.max(0, Math.floor(this.clock.wallNow())), 0, TS_BYTES);
    randomBytes(RAND_BYTES).copy(b, TS_BYTES);
    this.mac(b.subarray(0, TS_BYTES + RAND_BYTES)).copy(b, TS_BYTES + RAND_BYTES);
    return b.toString('base64url');
  }

  private mac(data: Buffer): Buffer {
    return createHmac('sha256', this.secret).update(data).digest().subarray(0, MAC_BYTES);
  }

  /** Timestamp (epoch ms) of an authentic nonce of ours, or -1. */
  private nonceTimestamp(nonce: string): number {
    if (nonce.length !== NONCE_CHARS || !NONCE_RE.test(nonce)) return -1;
    const b = Buffer.from(nonce, 'base64url');
    if (b.length !== NONCE_BYTES) return -1;
    const mac = this.mac(b.subarray(0, TS_BYTES + RAND_BYTES));
    if (!timingSafeEqual(mac, b.subarray(TS_BYTES + RAND_BYTES))) return -1;
    return b.readUIntBE(0, TS_BYTES);
  }

  private track(nonce: string, nc: number, ts: number, now: number): void {
    const m = this.ncSeen;
    m.set(nonce, { nc, ts });
    // Evict from the oldest end: expired entries (harmless to forget) and anything over the bound.
    for (const [k, v] of m) {
      const expired = now - v.ts >= this.ttlMs;
      if (!expired && m.size <= this.maxTracked) break;
      m.delete(k);
      if (!expired && v.ts > this.evictedBefore) this.evictedBefore = v.ts;
    }
  }
}

const FAIL_MISSING: DigestResult = Object.freeze({ ok: false, reason: 'missing' });
const FAIL_MALFORMED: DigestResult = Object.freeze({ ok: false, reason: 'malformed' });
const FAIL_REALM: DigestResult = Object.freeze({ ok: false, reason: 'realm-mismatch' });
const FAIL_UNKNOWN_USER: DigestResult = Object.freeze({ ok: false, reason: 'unknown-user' });
const FAIL_BAD_CREDENTIALS: DigestResult = Object.freeze({ ok: false, reason: 'bad-credentials' });
const FAIL_STALE: DigestResult = Object.freeze({ ok: false, reason: 'stale' });
const FAIL_REPLAY: DigestResult = Object.freeze({ ok: false, reason: 'replay' });
