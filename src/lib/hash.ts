/**
 * A fast non-cryptographic string hash for identifiers that only need to be well spread, not
 * unforgeable: the loop-detection part of a proxy branch (RFC 3261 §16.6 step 8: "any function
 * … of the request that routing used") and a stateless proxy's branch (§16.11).
 */

/**
 * 64-bit hash of a string's UTF-16 code units (two 32-bit multiply-xorshift lanes, cyrb53-style
 * mixing), as 16 lower-case hex digits. Deterministic across processes and versions of Node.
 * Not for secrets: anyone can find collisions.
 * @param s any string (linear time)
 * @returns 16 hex digits
 */
export function hash64Hex(s: string): string {
  if (typeof s !== 'string') return '0000000000000000'; // String-type guard (see chars.ts STRING GUARDS).
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return hex8(h1 >>> 0) + hex8(h2 >>> 0);
}

function hex8(n: number): string {
  const s = n.toString(16);
  return s.length === 8 ? s : '00000000'.slice(s.length) + s;
}
