/**
 * OverloadDetector (src/lib/overload.ts) driven by FakeClock: `advance()` fires its sampling
 * timer on time, `stall()` makes the next firing late, as a blocked event loop does.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FakeClock } from '../../src/lib/clock.js';
import { OverloadDetector, DEFAULT_SAMPLE_INTERVAL_MS as TICK } from '../../src/lib/overload.js';

function detector(maxLoopDelayMs: number, clock = new FakeClock()) {
  const changes: Array<[boolean, number]> = [];
  const d = new OverloadDetector({ clock, maxLoopDelayMs, onChange: (o, lag) => changes.push([o, lag]) });
  d.start();
  return { d, clock, changes };
}

/** Blocks the (fake) loop for `ms`, then lets the late sampling timer fire. */
function block(clock: FakeClock, ms: number): void {
  clock.stall(ms);
  clock.advance(0);
}

/** Makes the next sampling timer (due TICK after the previous one) fire `ms` late. */
function late(clock: FakeClock, ms: number): void {
  block(clock, TICK + ms);
}

describe('OverloadDetector', () => {
  test('timers firing on time: never overloaded, lag 0, one pending timer', () => {
    const { d, clock, changes } = detector(50);
    for (let i = 0; i < 400; i++) clock.advance(TICK);
    assert.equal(d.overloaded, false);
    assert.equal(d.lagMs, 0);
    assert.deepEqual(changes, []);
    assert.equal(clock.pending, 1);
    // Large advances fire the timer at its due times too: no lag.
    clock.advance(60_000);
    assert.equal(d.overloaded, false);
    assert.equal(d.lagMs, 0);
  });

  test('a stall longer than the threshold makes it overloaded; recovery after on-time samples', () => {
    const { d, clock, changes } = detector(50);
    clock.advance(TICK * 4);
    block(clock, 300);
    assert.equal(d.overloaded, true);
    assert.ok(d.lagMs > 50, `smoothed lag ${d.lagMs}`);
    assert.equal(changes.length, 1);
    assert.equal(changes[0][0], true);
    assert.equal(d.episodes, 1);
    // On-time samples halve the smoothed lag; the state holds until it is below half the threshold.
    clock.advance(TICK);
    assert.equal(d.overloaded, true, `still overloaded at lag ${d.lagMs}`);
    for (let i = 0; i < 10 && d.overloaded; i++) clock.advance(TICK);
    assert.equal(d.overloaded, false);
    assert.ok(d.lagMs < 25, `smoothed lag ${d.lagMs}`);
    assert.deepEqual(
      changes.map((c) => c[0]),
      [true, false],
    );
    // A second episode is a second enter/leave pair.
    block(clock, 500);
    assert.equal(d.overloaded, true);
    assert.equal(d.episodes, 2);
  });

  test('late firings below the threshold, or one short spike, do not overload (smoothing)', () => {
    const { d, clock, changes } = detector(200);
    for (let i = 0; i < 100; i++) late(clock, 150); // every sample 150 ms late: below 200
    assert.equal(d.overloaded, false);
    assert.ok(d.lagMs > 140 && d.lagMs <= 150, `smoothed lag ${d.lagMs}`);
    const { d: d2, clock: c2 } = detector(200);
    late(c2, 300); // one 300 ms stall: smoothed to 150
    assert.equal(d2.overloaded, false);
    assert.equal(d2.lagMs, 150);
    late(c2, 300); // sustained: 225 > 200
    assert.equal(d2.overloaded, true);
    assert.deepEqual(changes, []);
  });

  test('sustained lag just above the threshold enters; hysteresis keeps it until below half', () => {
    const { d, clock } = detector(100);
    for (let i = 0; i < 20; i++) late(clock, 120);
    assert.equal(d.overloaded, true);
    for (let i = 0; i < 20; i++) late(clock, 60); // between 50 and 100: stays overloaded
    assert.equal(d.overloaded, true);
    for (let i = 0; i < 20; i++) late(clock, 40); // below 50: leaves
    assert.equal(d.overloaded, false);
  });

  test('close() stops sampling; invalid options throw RangeError', () => {
    const { d, clock } = detector(50);
    d.close();
    assert.equal(clock.pending, 0);
    block(clock, 1000);
    assert.equal(d.overloaded, false);
    d.start();
    assert.equal(clock.pending, 0, 'a closed detector stays closed');
    const c = new FakeClock();
    assert.throws(() => new OverloadDetector({ clock: c, maxLoopDelayMs: 0 }), RangeError);
    assert.throws(() => new OverloadDetector({ clock: c, maxLoopDelayMs: 10, intervalMs: 0 }), RangeError);
    assert.throws(() => new OverloadDetector({ clock: c, maxLoopDelayMs: 10, smoothing: 0 }), RangeError);
    assert.equal(c.pending, 0);
  });
});
