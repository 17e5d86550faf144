/**
 * src/lib/hash.ts (loop-detection and stateless-branch hash) and the SystemClock timers of
 * src/lib/clock.ts (one Node timeout per timer, handle-based cancel).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hash64Hex } from '../../src/lib/hash.js';
import { SystemClock } from '../../src/lib/clock.js';

test('hash64Hex: 16 hex digits, deterministic, spread', () => {
  assert.match(hash64Hex(''), /^[0-9a-f]{16}$/);
  assert.equal(hash64Hex('sip:bob@example.com|a|b'), hash64Hex('sip:bob@example.com|a|b'));
  const seen = new Set<string>();
  for (let i = 0; i < 50_000; i++) seen.add(hash64Hex(`INVITE sip:${i}@example.com|tag${i}`).slice(0, 10));
  assert.equal(seen.size, 50_000, 'no collision in 40 bits over 50k inputs');
  assert.notEqual(hash64Hex('a'), hash64Hex('b'));
  assert.notEqual(hash64Hex('ab'), hash64Hex('ba'));
});

test('SystemClock: timers fire in order, cancel, and are counted', async () => {
  const clock = new SystemClock();
  const fired: string[] = [];
  clock.setTimer(30, () => fired.push('b'));
  clock.setTimer(5, () => fired.push('a'));
  const c = clock.setTimer(10, () => fired.push('cancelled'));
  assert.equal(clock.pending, 3);
  clock.clearTimer(c);
  clock.clearTimer(c); // twice: a no-op
  clock.clearTimer(undefined);
  clock.clearTimer({ id: 1 }); // not a handle of this clock: ignored
  assert.equal(clock.pending, 2);
  // The timers are unref'd: keep the test alive while they run.
  await new Promise((r) => setTimeout(r, 80));
  assert.deepEqual(fired, ['a', 'b']);
  assert.equal(clock.pending, 0);
  const other = new SystemClock();
  const h = other.setTimer(5, () => fired.push('other'));
  clock.clearTimer(h); // another clock's handle: ignored
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(fired, ['a', 'b', 'other']);
});
