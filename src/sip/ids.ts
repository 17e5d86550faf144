/**
 * Identifiers: Via branches (RFC 3261 §8.1.1.7), tags (§19.3) and Call-IDs (§8.1.1.4).
 * Random octets come from a pooled CSPRNG buffer refilled 4 KiB at a time.
 */
import { randomFillSync } from 'node:crypto';

const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let offset = POOL_SIZE;

/** `n` random octets as lower-case hex (2n characters). */
function randomHex(n: number): string {
  if (offset + n > POOL_SIZE) {
    randomFillSync(pool);
    offset = 0;
  }
  const s = pool.toString('hex', offset, offset + n);
  offset += n;
  return s;
}

/**
 * `n` random octets (1 ≤ n ≤ 4096) from the pooled CSPRNG buffer, copied into a new Buffer.
 * Every octet is handed out once, so the result is as unpredictable as `crypto.randomBytes(n)`
 * (suitable for AES-GCM IVs and nonces) without a call into the CSPRNG per use.
 * @throws RangeError when `n` is outside 1..4096
 */
export function randomOctets(n: number): Buffer {
  if (!(n >= 1 && n <= POOL_SIZE)) throw new RangeError(`randomOctets: ${n} is outside 1..${POOL_SIZE}`);
  if (offset + n > POOL_SIZE) {
    randomFillSync(pool);
    offset = 0;
  }
  const out = Buffer.allocUnsafe(n);
  pool.copy(out, 0, offset, offset + n);
  offset += n;
  return out;
}

/** RFC 3261 magic cookie that starts every compliant branch (§8.1.1.7). */
export const BRANCH_COOKIE = 'z9hG4bK';

/**
 * A new Via branch: `z9hG4bK` + 96 random bits as 24 hex digits. Unique across space and
 * time as RFC 3261 §8.1.1.7 requires.
 */
export function generateBranch(): string {
  return BRANCH_COOKIE + randomHex(12);
}

/** A new From/To tag: 64 random bits as 16 hex digits (RFC 3261 §19.3 asks for ≥ 32). */
export function generateTag(): string {
  return randomHex(8);
}

/**
 * A new Call-ID: 128 random bits as 32 hex digits, plus `@host` when `host` is given
 * (RFC 3261 §8.1.1.4, §20.8).
 */
export function generateCallId(host?: string): string {
  const id = randomHex(16);
  return host === undefined || host.length === 0 ? id : id + '@' + host;
}
