/**
 * Time source for every timer in sipedge. Protocol cores never call `setTimeout`
 * directly: they receive a {@link Clock}, so tests drive time with {@link FakeClock}.
 *
 * All durations are in milliseconds.
 */

/** Opaque handle returned by {@link Clock.setTimer}. */
export interface TimerHandle {
  readonly id: number;
}

/** Injected time source. `now()` is monotonic milliseconds; `wallNow()` is Unix epoch milliseconds. */
export interface Clock {
  /** Monotonic time in ms (only differences are meaningful). */
  now(): number;
  /** Wall-clock time in ms since the Unix epoch (for stored expiry times that survive restarts). */
  wallNow(): number;
  /** Runs `fn` once after `delayMs` ms. */
  setTimer(delayMs: number, fn: () => void): TimerHandle;
  /** Cancels a timer; cancelling an already fired or cancelled timer is a no-op. */
  clearTimer(handle: TimerHandle | undefined): void;
}

/** A {@link SystemClock} timer: the handle carries its Node timeout, so no lookup table is needed. */
class SystemTimer implements TimerHandle {
  /** The pending Node timeout; undefined once fired or cleared. */
  t: NodeJS.Timeout | undefined = undefined;
  constructor(
    readonly id: number,
    readonly owner: SystemClock,
    readonly fn: () => void,
  ) {}
}

/** Runs a due timer (shared by every timer: no closure per timer). */
function fireSystemTimer(timer: SystemTimer): void {
  if (timer.t === undefined) return;
  timer.t = undefined;
  timer.owner.count--;
  timer.fn();
}

/** The real clock, backed by `performance.now()`, `Date.now()` and `setTimeout` (unref'd). */
export class SystemClock implements Clock {
  private nextId = 1;
  /** Number of pending timers (internal; read {@link SystemClock.pending}). */
  count = 0;

  now(): number {
    return performance.now();
  }

  wallNow(): number {
    return Date.now();
  }

  setTimer(delayMs: number, fn: () => void): TimerHandle {
    const timer = new SystemTimer(this.nextId++, this, fn);
    const t = setTimeout(fireSystemTimer, delayMs > 0 ? delayMs : 0, timer);
    t.unref();
    timer.t = t;
    this.count++;
    return timer;
  }

  clearTimer(handle: TimerHandle | undefined): void {
    // Handles of other clocks are ignored, like unknown ids were.
    if (!(handle instanceof SystemTimer) || handle.owner !== this || handle.t === undefined) return;
    clearTimeout(handle.t);
    handle.t = undefined;
    this.count--;
  }

  /** Number of pending timers (for leak checks in tests and metrics). */
  get pending(): number {
    return this.count;
  }
}

interface FakeTimer {
  id: number;
  at: number;
  fn: () => void;
}

/**
 * A manually advanced clock for tests. Timers fire in order of due time (ties in
 * creation order) during {@link FakeClock.advance}.
 */
export class FakeClock implements Clock {
  private t: number;
  private wallOffset: number;
  private nextId = 1;
  private timers: FakeTimer[] = [];

  constructor(start = 0, wallStart = 1_700_000_000_000) {
    this.t = start;
    this.wallOffset = wallStart - start;
  }

  now(): number {
    return this.t;
  }

  wallNow(): number {
    return this.t + this.wallOffset;
  }

  setTimer(delayMs: number, fn: () => void): TimerHandle {
    const id = this.nextId++;
    this.timers.push({ id, at: this.t + Math.max(0, delayMs), fn });
    return { id };
  }

  clearTimer(handle: TimerHandle | undefined): void {
    if (!handle) return;
    this.timers = this.timers.filter((x) => x.id !== handle.id);
  }

  /** Advances time by `ms`, firing every timer that falls due, including timers set while firing. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: FakeTimer | undefined;
      for (const timer of this.timers) {
        if (timer.at <= end && (!next || timer.at < next.at || (timer.at === next.at && timer.id < next.id))) next = timer;
      }
      if (!next) break;
      this.timers = this.timers.filter((x) => x !== next);
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = end;
  }

  /**
   * Moves time forward by `ms` without firing any timer, as a blocked event loop does: timers
   * that fell due fire late, at the current time, on the next {@link FakeClock.advance}.
   */
  stall(ms: number): void {
    this.t += ms;
  }

  /** Number of timers not yet fired. */
  get pending(): number {
    return this.timers.length;
  }
}
