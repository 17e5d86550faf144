/**
 * Overload detection by event-loop delay (lag), so the proxy can shed new work with
 * `503 Service Unavailable` + `Retry-After` (RFC 3261 §21.5.4, §20.33) before the backlog in the
 * socket buffers turns into retransmissions and failed calls.
 *
 * Measure: a periodic timer on the injected {@link Clock} (every {@link DEFAULT_SAMPLE_INTERVAL_MS}
 * ms). Each time it fires, the difference between the actual and the expected fire time is one
 * lag sample; samples are smoothed by an exponentially weighted moving average (EWMA), so one
 * short stall (a GC pause) does not shed calls but a sustained or long lag does.
 *
 * Why a clock timer and not `perf_hooks.monitorEventLoopDelay`: the histogram would still have to
 * be polled by a timer and hidden behind an interface with its own fake for tests; the clock
 * timer measures the same thing (how late a timer callback runs — exactly what delays the
 * transaction layer's retransmission timers too), costs one timer every 25 ms, and is driven
 * by {@link FakeClock} (`stall()` + `advance()`) in tests without any extra seam.
 *
 * Limit: the lag is the duration of one event-loop turn. libuv reads at most 32 datagrams per
 * UDP socket and turn, so a flood of cheap datagrams can fill the socket buffer while each turn
 * stays short; the detector reacts to what makes turns long (slow handlers, synchronous work,
 * GC, many sockets), not to the socket backlog itself.
 */
import type { Clock, TimerHandle } from './clock.js';
import { silentLogger, type Logger } from './log.js';

/** Default period of the lag sampling timer, ms. */
export const DEFAULT_SAMPLE_INTERVAL_MS = 25;

/** Default EWMA weight of a new sample (0 < alpha ≤ 1; 1 = no smoothing). */
export const DEFAULT_SMOOTHING = 0.5;

/** What the proxy reads to decide whether to shed a request. */
export interface OverloadState {
  /** True while the edge is overloaded (between the warn logs of one episode). */
  readonly overloaded: boolean;
}

/** Options of {@link OverloadDetector}. */
export interface OverloadDetectorOptions {
  clock: Clock;
  /**
   * Smoothed lag, ms, above which the edge is overloaded (`overload.maxLoopDelay`, > 0). The
   * episode ends when the smoothed lag falls below half of it (hysteresis, so the state does
   * not flap around the threshold).
   */
  maxLoopDelayMs: number;
  /** Sampling period, ms. Default {@link DEFAULT_SAMPLE_INTERVAL_MS}. */
  intervalMs?: number;
  /** EWMA weight of a new sample. Default {@link DEFAULT_SMOOTHING}. */
  smoothing?: number;
  /** Gets one warn line when an episode starts and one when it ends. */
  logger?: Logger;
  /** Called on every change of {@link OverloadDetector.overloaded}. */
  onChange?: (overloaded: boolean, lagMs: number) => void;
}

/**
 * Samples the event-loop lag on a clock timer and keeps an overloaded/normal state with
 * hysteresis. Owns one timer, armed by {@link OverloadDetector.start}; {@link OverloadDetector.close}
 * stops it.
 *
 * @throws RangeError when `maxLoopDelayMs` or `intervalMs` is not > 0, or `smoothing` is not in (0, 1]
 */
export class OverloadDetector implements OverloadState {
  private readonly clock: Clock;
  private readonly maxMs: number;
  private readonly intervalMs: number;
  private readonly alpha: number;
  private readonly log: Logger;
  private readonly onChange?: (overloaded: boolean, lagMs: number) => void;
  private timer?: TimerHandle;
  private expectedAt = 0;
  private lag = 0;
  private state = false;
  private since = 0;
  private closed = false;
  /** Number of overload episodes entered since start. */
  episodes = 0;

  constructor(opts: OverloadDetectorOptions) {
    const intervalMs = opts.intervalMs ?? DEFAULT_SAMPLE_INTERVAL_MS;
    const alpha = opts.smoothing ?? DEFAULT_SMOOTHING;
    if (!(opts.maxLoopDelayMs > 0)) throw new RangeError(`maxLoopDelayMs must be > 0, got ${opts.maxLoopDelayMs}`);
    if (!(intervalMs > 0)) throw new RangeError(`intervalMs must be > 0, got ${intervalMs}`);
    if (!(alpha > 0 && alpha <= 1)) throw new RangeError(`smoothing must be in (0, 1], got ${alpha}`);
    this.clock = opts.clock;
    this.maxMs = opts.maxLoopDelayMs;
    this.intervalMs = intervalMs;
    this.alpha = alpha;
    this.log = opts.logger ?? silentLogger;
    this.onChange = opts.onChange;
  }

  /** Starts sampling (idempotent; a closed detector stays closed). */
  start(): void {
    if (this.closed || this.timer !== undefined) return;
    this.arm();
  }

  /** True while overloaded: smoothed lag went above `maxLoopDelayMs` and has not yet fallen below half of it. */
  get overloaded(): boolean {
    return this.state;
  }

  /** The smoothed event-loop lag, ms. */
  get lagMs(): number {
    return this.lag;
  }

  /** Stops sampling; the state stays as it was. */
  close(): void {
    this.closed = true;
    this.clock.clearTimer(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    this.expectedAt = this.clock.now() + this.intervalMs;
    this.timer = this.clock.setTimer(this.intervalMs, () => this.sample());
  }

  private sample(): void {
    if (this.closed) return;
    const now = this.clock.now();
    const sample = Math.max(0, now - this.expectedAt);
    this.lag += this.alpha * (sample - this.lag);
    if (!this.state && this.lag > this.maxMs) {
      this.state = true;
      this.since = now;
      this.episodes++;
      this.log.warn({ lagMs: Math.round(this.lag), maxLoopDelayMs: this.maxMs }, 'overloaded: event loop lagging, answering new requests 503 Service Unavailable');
      this.onChange?.(true, this.lag);
    } else if (this.state && this.lag < this.maxMs / 2) {
      this.state = false;
      this.log.warn({ lagMs: Math.round(this.lag), durationMs: Math.round(now - this.since) }, 'overload over: accepting new requests again');
      this.onChange?.(false, this.lag);
    }
    this.arm();
  }
}
