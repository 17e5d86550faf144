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
import * as crypto from 'node:crypto';
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

/** One-shot `crypto.hash` (Node ≥ 20.12): no Hash object per call. */
const oneShotHash = (crypto as { hash?: typeof crypto.hash }).hash;

function hashHex(alg: DigestAlgorithm, s: string): string {
  const name = HASH_NAME[alg];
  return oneShotHash !== undefined ? oneShotHash(name, s, 'hex') : crypto.createHash(name).update(s, 'utf8').digest('hex');
}

function hashBufHex(alg: DigestAlgorithm, b: Buffer): string {
  const name = HASH_NAME[alg];
  return oneShotHash !== undefined ? oneShotHash(name, b, 'hex') : crypto.createHash(name).update(b).digest('hex');
}

/**
 * Constant-time equality of two ASCII strings (length is not secret): every character is
 * compared, whatever the first difference.
 */
function safeEqual(a: string, b: string): boolean {
  const n = a.length;
  if (n !== b.length) return false;
  let d = 0;
  for (let i = 0; i < n; i++) d |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return d === 0;
}

/** Random octets from a pooled CSPRNG buffer refilled 4 KiB at a time (one syscall per 512 nonces). */
const RAND_POOL_SIZE = 4096;
const randPool = Buffer.allocUnsafe(RAND_POOL_SIZE);
let randOffset = RAND_POOL_SIZE;

/** Copies `n` fresh random octets into `target` at `at`. */
function fillRandom(target: Buffer, at: number, n: number): void {
  if (randOffset + n > RAND_POOL_SIZE) {
    crypto.randomFillSync(randPool);
    randOffset = 0;
  }
  randPool.copy(target, at, randOffset, randOffset + n);
  randOffset += n;
}

const SHA256_BLOCK = 64;

/**
 * HMAC-SHA-256 (RFC 2104) of `TS_BYTES + RAND_BYTES`-octet messages with a fixed key, computed
 * with two one-shot hashes over preallocated pads — the same octets as `createHmac('sha256', key)`
 * without an Hmac object per call. Falls back to `createHmac` where `crypto.hash` is missing.
 */
class NonceMac {
  private readonly inner: Buffer;
  private readonly outer: Buffer;

  constructor(private readonly key: Buffer) {
    // RFC 2104 §2: keys longer than the block are hashed first; shorter ones are zero-padded.
    const k = key.length > SHA256_BLOCK ? crypto.createHash('sha256').update(key).digest() : key;
    this.inner = Buffer.alloc(SHA256_BLOCK + TS_BYTES + RAND_BYTES);
    this.outer = Buffer.alloc(SHA256_BLOCK + 32);
    for (let i = 0; i < SHA256_BLOCK; i++) {
      const b = i < k.length ? k[i] : 0;
      this.inner[i] = b ^ 0x36;
      this.outer[i] = b ^ 0x5c;
    }
  }

  /** The first {@link MAC_BYTES} octets of HMAC-SHA-256(key, data); `data` is `TS_BYTES + RAND_BYTES` octets. */
  mac(data: Buffer): Buffer {
    if (oneShotHash === undefined || data.length !== TS_BYTES + RAND_BYTES) {
      return crypto.createHmac('sha256', this.key).update(data).digest().subarray(0, MAC_BYTES);
    }
    data.copy(this.inner, SHA256_BLOCK);
    (oneShotHash('sha256', this.inner, 'buffer') as Buffer).copy(this.outer, SHA256_BLOCK);
    return (oneShotHash('sha256', this.outer, 'buffer') as Buffer).subarray(0, MAC_BYTES);
  }
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

/** Whether `s[from, to)` is `Digest` in any case. */
function isDigestScheme(s: string, from: number, to: number): boolean {
  if (to - from !== 6) return false;
  for (let k = 0; k < 6; k++) if ((s.charCodeAt(from + k) | 0x20) !== DIGEST_LOWER.charCodeAt(k)) return false;
  return true;
}

const DIGEST_LOWER = 'digest';

/** Scheme test + parameter parse; `digest: false` with empty params for another scheme. */
function parseCredentials(value: string): { digest: boolean; params: Record<string, string> } | undefined {
  const s = value;
  const n = s.length;
  let i = 0;
  while (i < n && (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9)) i++;
  const schemeStart = i;
  while (i < n && s.charCodeAt(i) !== 32 && s.charCodeAt(i) !== 9) i++;
  if (!isDigestScheme(s, schemeStart, i)) return { digest: false, params: Object.create(null) as Record<string, string> };
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
      // Fast path: no quoted-pair before the closing quote.
      const close = s.indexOf('"', i);
      if (close >= 0) {
        const bs = s.indexOf('\\', i);
        if (bs < 0 || bs > close) {
          if (name in params) return undefined;
          params[name] = s.slice(i, close);
          i = close + 1;
          while (i < n && (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9)) i++;
          if (i < n && s.charCodeAt(i) !== 44) return undefined;
          continue;
        }
      }
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
  private readonly nonceMac: NonceMac;
  /** Challenge text before the nonce, and after it up to `algorithm=` (built once). */
  private challengeHead = '';
  private challengeMid = '';
  /** Last H(A2) computed for `qop=auth` / no qop, by `method:uri` (a UA re-registers with the same Request-URI). */
  private ha2Key = '';
  private ha2Alg: DigestAlgorithm | undefined;
  private ha2Value = '';

  constructor(opts: DigestAuthOptions) {
    this.realm = opts.realm;
    this.clock = opts.clock;
    this.ttlMs = opts.nonceTtlMs ?? 300_000;
    const algs = opts.algorithms ?? ['MD5', 'SHA-256'];
    if (algs.length === 0) throw new Error('DigestAuth: at least one algorithm is required');
    this.algorithms = [...new Set(algs)];
    this.secret = opts.secret ?? crypto.randomBytes(32);
    this.nonceMac = new NonceMac(this.secret);
    this.maxTracked = Math.max(1, opts.maxTrackedNonces ?? 65_536);
    this.opaque = crypto.createHmac('sha256', this.secret).update('opaque\0' + this.realm).digest().subarray(0, 12).toString('base64url');
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
    if (this.challengeHead === '') {
      this.challengeHead = `Digest realm=${quote(this.realm)}, nonce="`;
      this.challengeMid = `", opaque="${this.opaque}", algorithm=`;
    }
    const head = this.challengeHead + nonce + this.challengeMid;
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
    const response = p.response;
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
    let ha2: string;
    if (qop === 'auth-int') ha2 = hashHex(alg, `${req.method}:${uri}:${hashBufHex(alg, req.body)}`);
    else {
      const a2 = req.method + ':' + uri;
      if (a2 !== this.ha2Key || alg !== this.ha2Alg) {
        this.ha2Value = hashHex(alg, a2);
        this.ha2Key = a2;
        this.ha2Alg = alg;
      }
      ha2 = this.ha2Value;
    }
    // RFC 7616 §3.4.1: response = KD(H(A1), nonce:nc:cnonce:qop:H(A2)); RFC 2069 form without qop.
    const expected =
      qop === undefined
        ? hashHex(alg, `${ha1}:${nonce}:${ha2}`)
        : hashHex(alg, `${ha1}:${nonce}:${p.nc}:${p.cnonce}:${qop}:${ha2}`);
    if (!safeEqual(response, expected) && !safeEqual(response.toLowerCase(), expected)) return FAIL_BAD_CREDENTIALS;

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
    fillRandom(b, TS_BYTES, RAND_BYTES);
    this.nonceMac.mac(b.subarray(0, TS_BYTES + RAND_BYTES)).copy(b, TS_BYTES + RAND_BYTES);
    return b.toString('base64url');
  }

  /** Timestamp (epoch ms) of an authentic nonce of ours, or -1. */
  private nonceTimestamp(nonce: string): number {
    if (nonce.length !== NONCE_CHARS || !NONCE_RE.test(nonce)) return -1;
    const b = Buffer.from(nonce, 'base64url');
    if (b.length !== NONCE_BYTES) return -1;
    const mac = this.nonceMac.mac(b.subarray(0, TS_BYTES + RAND_BYTES));
    if (!crypto.timingSafeEqual(mac, b.subarray(TS_BYTES + RAND_BYTES))) return -1;
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
