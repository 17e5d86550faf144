/**
 * Messages between {@link ../workers.ts WorkerRelayPool} (main thread) and one relay worker
 * (`relay_worker.ts`), over the worker's MessagePort. Plain structured-clone data only.
 *
 * Main → worker: {@link WorkerRequest}. Worker → main: {@link WorkerEvent} — a `reply` to each
 * request (same `id`), and unsolicited `ready`, `timeout`, `stats` and `log` events.
 */
import type {
  AnswerParams,
  CallMediaStats,
  CallMediaSummary,
  DeleteParams,
  MediaCounters,
  MediaResult,
  MediaTimeoutInfo,
  OfferParams,
} from './control.js';
import type { PortRange } from './ports.js';

/**
 * Settings of the {@link ../relay.ts RelayEngine} in each relay worker, as given to
 * {@link ../workers.ts WorkerRelayPool} and passed on unchanged to every worker.
 */
export interface RelayEngineSettings {
  /** `media.address` (default `0.0.0.0`). */
  bindAddress?: string;
  /** `media.timeout`, seconds (default 60). */
  timeoutSec?: number;
  /** Timeout when every stream is on hold, seconds (default 3600). */
  holdTimeoutSec?: number;
  /** `media.strictSource` (default true). */
  strictSource?: boolean;
  /** Learning window after each offer/answer, ms (default 3000). */
  learnWindowMs?: number;
  /** Period of each worker's media timeout sweep, ms (default 1000). */
  sweepIntervalMs?: number;
  /** SO_RCVBUF of each relay socket, bytes (default: the system's). */
  recvBufferSize?: number;
}

/** `workerData` of a relay worker: the settings of its {@link ../relay.ts RelayEngine}. */
export interface RelayWorkerData extends RelayEngineSettings {
  /** Index of the worker in the pool (for logs). */
  index: number;
  /** This worker's slice of `media.ports` (disjoint from every other worker's). */
  ports: PortRange;
  /** Period of the unsolicited `stats` event, ms. */
  statsIntervalMs: number;
}

/** A request to a relay worker; answered by a `reply` event with the same `id`. */
export type WorkerRequest =
  | { id: number; op: 'offer'; params: OfferParams }
  | { id: number; op: 'answer'; params: AnswerParams }
  | { id: number; op: 'delete'; params: DeleteParams }
  | { id: number; op: 'query'; callId: string }
  | { id: number; op: 'close' };

/** A {@link WorkerRequest} before the pool numbers it. */
export type WorkerRequestBody = WorkerRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/** Result of each {@link WorkerRequest} op. */
export type WorkerResult = MediaResult | CallMediaStats | undefined | true;

/** An event from a relay worker. */
export type WorkerEvent =
  | { kind: 'ready' }
  | {
      kind: 'reply';
      id: number;
      result: WorkerResult;
      /** The worker's counters after the op. */
      counters: MediaCounters;
      /** The call the op was about, after the op: its summary, or null when the worker no longer holds it. */
      summary?: CallMediaSummary | null;
    }
  | { kind: 'timeout'; callId: string; info: MediaTimeoutInfo }
  | { kind: 'stats'; counters: MediaCounters; calls: CallMediaSummary[] }
  | { kind: 'log'; level: 'error' | 'warn' | 'info' | 'debug'; obj: Record<string, unknown>; msg: string };
