/**
 * RFC 3261 §17 timer values (Table 4 of RFC 3261, Timers L/M of RFC 6026 §8.11), all in ms.
 */
import type { TransportProto } from '../transport/types.js';
import type { TimerSettings } from './types.js';

/** RFC 3261 §17.1.1.1 / Table 4 defaults: T1 = 500 ms, T2 = 4 s, T4 = 5 s. */
export const DEFAULT_TIMER_SETTINGS: Readonly<TimerSettings> = Object.freeze({ T1: 500, T2: 4000, T4: 5000 });

/** Fills unset values of `partial` with {@link DEFAULT_TIMER_SETTINGS}. Values are ms. */
export function resolveTimerSettings(partial: Partial<TimerSettings> | undefined): TimerSettings {
  return {
    T1: partial?.T1 ?? DEFAULT_TIMER_SETTINGS.T1,
    T2: partial?.T2 ?? DEFAULT_TIMER_SETTINGS.T2,
    T4: partial?.T4 ?? DEFAULT_TIMER_SETTINGS.T4,
  };
}

/**
 * Whether a transport is reliable in the sense of RFC 3261 §17 (no retransmission timers,
 * zero-length wait timers). Everything except UDP (TCP, TLS, WS, WSS) is reliable.
 */
export function isReliable(transport: TransportProto): boolean {
  return transport !== 'udp';
}

/** Timer B, F, H, L, M: 64*T1 ms (RFC 3261 Table 4, RFC 6026 §8.11). */
export function timeout64T1(t: TimerSettings): number {
  return 64 * t.T1;
}

/**
 * Timer D, ms. RFC 3261 §17.1.1.2: "The client transaction SHOULD start timer D when it enters
 * the "Completed" state, with a value of at least 32 seconds for unreliable transports, and a
 * value of zero seconds for reliable transports." We use max(32 s, 64*T1) so that D always covers
 * the server's Timer H window even when T1 is raised.
 */
export function timerD(t: TimerSettings, reliable: boolean): number {
  return reliable ? 0 : Math.max(32_000, 64 * t.T1);
}

/** Timer I and K: T4 for unreliable transports, 0 for reliable (RFC 3261 §17.2.1, §17.1.2.2), ms. */
export function timerT4OrZero(t: TimerSettings, reliable: boolean): number {
  return reliable ? 0 : t.T4;
}

/** Timer J: 64*T1 for unreliable transports, 0 for reliable (RFC 3261 §17.2.2), ms. */
export function timerJ(t: TimerSettings, reliable: boolean): number {
  return reliable ? 0 : 64 * t.T1;
}
