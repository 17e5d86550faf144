/**
 * The in-process relay on several threads (`media.workers` > 1): {@link WorkerRelayPool} is a
 * {@link MediaControl} that runs one {@link RelayEngine} per worker thread (`relay_worker.ts`)
 * and routes each call's offer/answer/delete/query to the worker hosting it.
 *
 * Design (the choice recorded for the relay's scaling, see BENCHMARKS.md):
 * - **Packets never cross threads.** Each worker owns a disjoint slice of `media.ports`
 *   (contiguous, whole RTP/RTCP pairs: even RTP, RTCP = RTP + 1) and binds every socket of the
 *   calls it hosts, so a datagram is received, latched and sent on one thread. Only signalling
 *   (a few messages per call) and stats cross the MessagePort. Per-packet CPU is mostly the
 *   kernel's (`sendto`/`recvmsg` on each packet), so the gain comes from running that on every
 *   core, not from sharing work per packet.
 * - **A call lives on one worker**, chosen at its first offer: the worker with the fewest calls
 *   (ties: the lowest index). If that worker's port slice is exhausted (`NO_PORTS`) the next
 *   least loaded worker is tried before the offer is refused; later offers of the call (re-INVITE,
 *   new m-lines) stay on its worker.
 * - **Stats**: {@link WorkerRelayPool.query} asks the worker (fresh); {@link WorkerRelayPool.list}
 *   and {@link WorkerRelayPool.counters} are synchronous by contract, so they return what the
 *   workers last reported — after every op of a call, and every `statsIntervalMs` (default 1 s).
 * - **Media timeouts** are detected by each worker on the real clock (the pool's injected clock
 *   only times requests) and forwarded to `onTimeout` on the main thread.
 * - **A crashed worker** (uncaught exception, exit) is logged at error level with its calls; its
 *   calls are gone: they are dropped from the pool and `onTimeout` fires for each (idleMs 0) so
 *   that the proxy ends them with a BYE; requests in flight resolve with `ENGINE_ERROR`. The
 *   worker is restarted on the same port slice (at most `maxRestarts` times). The main process
 *   never crashes because of a worker.
 * - {@link WorkerRelayPool.close} closes every worker's sockets and ends the threads.
 *
 * The worker script runs from `dist/` (built: `relay_worker.js`) and from `src/` under tsx
 * (tests, benchmarks: `relay_worker.ts`, loaded through tsx's ESM API in the worker, since the
 * loader hooks of `node --import tsx` do not reach worker threads on Node 20).
 */
import { Worker } from 'node:worker_threads';
import { SystemClock, type Clock, type TimerHandle } from '../lib/clock.js';
import { silentLogger, type Logger } from '../lib/log.js';
import {
  emptyCounters,
  type AnswerParams,
  type CallMediaStats,
  type CallMediaSummary,
  type DeleteParams,
  type MediaControl,
  type MediaCounters,
  type MediaResult,
  type MediaTimeoutHandler,
  type OfferParams,
} from './control.js';
import { rtpPortsOf, type PortRange } from './ports.js';
import type { RelayEngineSettings, RelayWorkerData, WorkerEvent, WorkerRequest, WorkerRequestBody } from './worker_protocol.js';

/** Options of {@link WorkerRelayPool}. */
export interface WorkerRelayOptions extends RelayEngineSettings {
  /** Number of worker threads (≥ 1; fewer when `ports` has fewer pairs). */
  workers: number;
  /** `media.ports`, split into one contiguous slice per worker. */
  ports: PortRange;
  /** Fired once per call when media stopped, and for each call of a crashed worker. */
  onTimeout?: MediaTimeoutHandler;
  logger?: Logger;
  /** Times requests to workers (default the system clock). */
  clock?: Clock;
  /** A request a worker has not answered after this many ms resolves with ENGINE_ERROR (default 10000). */
  requestTimeoutMs?: number;
  /** Period of each worker's stats report (for {@link WorkerRelayPool.list}), ms (default 1000). */
  statsIntervalMs?: number;
  /** Restarts of a crashed worker, per worker (default 3). */
  maxRestarts?: number;
}

/** Splits a port range into `n` contiguous slices of whole RTP/RTCP pairs (fewer if it has fewer pairs). */
export function splitPortRange(range: PortRange, n: number): PortRange[] {
  const pairs = rtpPortsOf(range);
  const count = Math.max(1, Math.min(n, pairs.length));
  if (pairs.length === 0) return [range];
  const out: PortRange[] = [];
  for (let i = 0; i < count; i++) {
    const from = Math.floor((i * pairs.length) / count);
    const to = Math.floor(((i + 1) * pairs.length) / count) - 1;
    out.push({ low: pairs[from], high: pairs[to] + 1 });
  }
  return out;
}

type Reply = Extract<WorkerEvent, { kind: 'reply' }>;

interface Pending {
  op: WorkerRequest['op'];
  resolve: (r: Reply | undefined) => void;
  timer: TimerHandle;
}

/** One worker thread and what the pool knows about it. */
class Slot {
  worker: Worker | undefined;
  alive = false;
  restarts = 0;
  /** Latest counters reported by the worker. */
  counters: MediaCounters = emptyCounters();
  /** Calls routed to this worker. */
  readonly calls = new Set<string>();
  readonly pending = new Map<number, Pending>();
  readonly capacity: number;

  constructor(
    readonly index: number,
    readonly ports: PortRange,
  ) {
    this.capacity = rtpPortsOf(ports).length;
  }
}

/** Creates the worker thread of one slot (from src under tsx, or from dist). */
function spawnRelayWorker(data: RelayWorkerData): Worker {
  const self = import.meta.url;
  if (self.endsWith('.ts')) {
    const entry = new URL('./relay_worker.ts', self).href;
    const tsx = import.meta.resolve('tsx/esm/api');
    const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
    // Only diagnostics flags are passed on: the parent's `--import tsx` does not work in a worker.
    const execArgv = process.execArgv.filter((a) => /^--(cpu-prof|heap-prof|expose-gc|enable-source-maps)/.test(a));
    return new Worker(code, { eval: true, workerData: data, execArgv });
  }
  return new Worker(new URL('./relay_worker.js', self), { workerData: data });
}

/** The in-process relay on `workers` threads; see the module comment for the design. */
export class WorkerRelayPool implements MediaControl {
  private readonly slots: Slot[];
  private readonly routes = new Map<string, Slot>();
  private readonly summaries = new Map<string, CallMediaSummary>();
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly requestTimeoutMs: number;
  private readonly maxRestarts: number;
  private nextId = 1;
  private closing = false;
  private closed: Promise<void> | undefined;
  /** Counters of crashed workers (their last report) and of the pool itself. */
  private readonly retired: MediaCounters = emptyCounters();
  private noPorts = 0;
  private engineErrors = 0;
  private lostTimeouts = 0;

  constructor(private readonly opts: WorkerRelayOptions) {
    this.log = opts.logger ?? silentLogger;
    this.clock = opts.clock ?? new SystemClock();
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.maxRestarts = opts.maxRestarts ?? 3;
    this.slots = splitPortRange(opts.ports, Math.max(1, Math.floor(opts.workers))).map((r, i) => new Slot(i, r));
    for (const slot of this.slots) this.start(slot);
  }

  /** Number of worker threads. */
  get size(): number {
    return this.slots.length;
  }

  /** Each worker's port slice and number of calls (for tests and diagnostics). */
  workers(): Array<{ index: number; ports: PortRange; calls: number; alive: boolean; threadId: number | undefined }> {
    return this.slots.map((s) => ({ index: s.index, ports: s.ports, calls: s.calls.size, alive: s.alive, threadId: s.worker?.threadId }));
  }

  /** Index of the worker hosting a call, or undefined. */
  workerOf(callId: string): number | undefined {
    return this.routes.get(callId)?.index;
  }

  // ---------------------------------------------------------------- workers

  private start(slot: Slot): void {
    const data: RelayWorkerData = {
      index: slot.index,
      ports: slot.ports,
      bindAddress: this.opts.bindAddress,
      timeoutSec: this.opts.timeoutSec,
      holdTimeoutSec: this.opts.holdTimeoutSec,
      strictSource: this.opts.strictSource,
      learnWindowMs: this.opts.learnWindowMs,
      sweepIntervalMs: this.opts.sweepIntervalMs,
      recvBufferSize: this.opts.recvBufferSize,
      statsIntervalMs: this.opts.statsIntervalMs ?? 1000,
    };
    let worker: Worker;
    try {
      worker = spawnRelayWorker(data);
    } catch (err) {
      this.log.error({ err, mediaWorker: slot.index }, 'media relay: cannot start worker thread');
      slot.alive = false;
      return;
    }
    slot.worker = worker;
    slot.alive = true;
    slot.counters = emptyCounters();
    worker.on('message', (ev: WorkerEvent) => this.onEvent(slot, worker, ev));
    worker.on('error', (err) => {
      this.log.error({ err, mediaWorker: slot.index, calls: slot.calls.size }, 'media relay worker crashed');
    });
    worker.on('exit', (code) => {
      if (slot.worker === worker) this.onExit(slot, code);
    });
  }

  private onEvent(slot: Slot, worker: Worker, ev: WorkerEvent): void {
    if (slot.worker !== worker) return;
    switch (ev.kind) {
      case 'ready':
        return;
      case 'reply': {
        slot.counters = ev.counters;
        const p = slot.pending.get(ev.id);
        if (!p) return;
        slot.pending.delete(ev.id);
        this.clock.clearTimer(p.timer);
        p.resolve(ev);
        return;
      }
      case 'timeout': {
        // Counted by the worker too; its next report replaces this estimate.
        slot.counters.timeouts++;
        if (this.routes.get(ev.callId) !== slot) {
          // A call the pool no longer routes here (e.g. its offer timed out and it was deleted meanwhile): free it.
          void this.request(slot, { op: 'delete', params: { callId: ev.callId } });
          return;
        }
        const sum = this.summaries.get(ev.callId);
        if (sum) sum.timedOut = true;
        this.fireTimeout(ev.callId, ev.info.idleMs, ev.info.held);
        return;
      }
      case 'stats':
        slot.counters = ev.counters;
        for (const sum of ev.calls) if (this.routes.get(sum.callId) === slot) this.summaries.set(sum.callId, sum);
        return;
      case 'log': {
        const fn = this.log[ev.level].bind(this.log) as (obj: object, msg: string) => void;
        fn(ev.obj, ev.msg);
        return;
      }
    }
  }

  private fireTimeout(callId: string, idleMs: number, held: boolean): void {
    try {
      this.opts.onTimeout?.(callId, { idleMs, held });
    } catch (err) {
      this.log.error({ err, callId }, 'media relay: onTimeout handler threw');
    }
  }

  /** A worker ended. Unless the pool is closing, its calls are gone; it is restarted. */
  private onExit(slot: Slot, code: number): void {
    slot.alive = false;
    slot.worker = undefined;
    for (const [id, p] of slot.pending) {
      this.clock.clearTimer(p.timer);
      slot.pending.delete(id);
      p.resolve(undefined);
    }
    if (this.closing) return;
    const lost = [...slot.calls];
    this.log.error(
      { mediaWorker: slot.index, exitCode: code, ports: `${slot.ports.low}-${slot.ports.high}`, lostCalls: lost.length, callIds: lost.slice(0, 20) },
      'media relay worker exited unexpectedly: its calls lost their media and are ended',
    );
    for (const k of ['packetsRelayed', 'bytesRelayed', 'droppedSource', 'droppedNoDestination', 'socketErrors', 'badSdp', 'timeouts', 'bindFailures'] as const) {
      this.retired[k] += slot.counters[k];
    }
    slot.counters = emptyCounters();
    for (const callId of lost) {
      this.unroute(callId);
      this.lostTimeouts++;
      this.fireTimeout(callId, 0, false);
    }
    if (slot.restarts < this.maxRestarts) {
      slot.restarts++;
      this.log.warn({ mediaWorker: slot.index, restart: slot.restarts }, 'media relay: restarting worker');
      this.start(slot);
    }
  }

  /** Sends a request to a worker; resolves undefined when it died, timed out or is not running. */
  private request(slot: Slot, req: WorkerRequestBody): Promise<Reply | undefined> {
    const worker = slot.worker;
    if (!slot.alive || !worker) return Promise.resolve(undefined);
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = this.clock.setTimer(this.requestTimeoutMs, () => {
        if (!slot.pending.delete(id)) return;
        this.log.error({ mediaWorker: slot.index, op: req.op }, `media relay worker did not answer within ${this.requestTimeoutMs} ms`);
        resolve(undefined);
      });
      slot.pending.set(id, { op: req.op, resolve, timer });
      try {
        worker.postMessage({ ...req, id } as WorkerRequest);
      } catch (err) {
        slot.pending.delete(id);
        this.clock.clearTimer(timer);
        this.log.error({ err, mediaWorker: slot.index }, 'media relay: cannot post to worker');
        resolve(undefined);
      }
    });
  }

  private route(callId: string, slot: Slot): void {
    const prev = this.routes.get(callId);
    if (prev === slot) return;
    prev?.calls.delete(callId);
    this.routes.set(callId, slot);
    slot.calls.add(callId);
  }

  private unroute(callId: string): void {
    this.routes.get(callId)?.calls.delete(callId);
    this.routes.delete(callId);
    this.summaries.delete(callId);
  }

  /** Applies the call state a reply reports (summary, or gone). */
  private track(callId: string, slot: Slot, reply: Reply): void {
    if (this.routes.get(callId) !== slot || reply.summary === undefined) return;
    if (reply.summary === null) this.unroute(callId);
    else this.summaries.set(callId, reply.summary);
  }

  private engineError(what: string): MediaResult {
    this.engineErrors++;
    return { ok: false, code: 'ENGINE_ERROR', detail: `media relay worker ${what}` };
  }

  /** Alive workers, least loaded first (fewest calls, then most free pairs, then lowest index). */
  private candidates(): Slot[] {
    return this.slots
      .filter((s) => s.alive)
      .sort((a, b) => a.calls.size - b.calls.size || b.capacity - b.counters.portPairsInUse - (a.capacity - a.counters.portPairsInUse) || a.index - b.index);
  }

  // ---------------------------------------------------------------- MediaControl

  /** RFC 3264 §5 offer; a new call goes to the least loaded worker (next one on NO_PORTS). */
  async offer(p: OfferParams): Promise<MediaResult> {
    if (this.closing) return { ok: false, code: 'ENGINE_ERROR', detail: 'media relay closed' };
    const existing = this.routes.get(p.callId);
    if (existing) {
      const reply = await this.request(existing, { op: 'offer', params: p });
      if (!reply) return this.engineError(`${existing.index} did not answer the offer`);
      this.track(p.callId, existing, reply);
      const r = reply.result as MediaResult;
      if (!r.ok && r.code === 'NO_PORTS') this.noPorts++;
      return r;
    }
    const candidates = this.candidates();
    if (candidates.length === 0) return this.engineError('threads are not running');
    let last: MediaResult | undefined;
    for (const slot of candidates) {
      const mine = this.routes.get(p.callId);
      if (mine !== undefined && mine !== slot) return this.offer(p);
      this.route(p.callId, slot);
      const reply = await this.request(slot, { op: 'offer', params: p });
      if (this.routes.get(p.callId) !== slot) {
        // Deleted (or re-routed by a crash) while the worker was working on it.
        return reply ? (reply.result as MediaResult) : this.engineError(`${slot.index} did not answer the offer`);
      }
      // No reply (timed out): not retried elsewhere, and the route stays, since a slow worker
      // may still create the call; the caller's delete then reaches it.
      if (!reply) return this.engineError(`${slot.index} did not answer the offer`);
      this.track(p.callId, slot, reply);
      last = reply.result as MediaResult;
      if (last.ok || last.code !== 'NO_PORTS' || reply.summary !== null) break;
      // This worker's port slice is exhausted: try the next one.
    }
    if (last && !last.ok && last.code === 'NO_PORTS') {
      this.noPorts++;
      this.log.warn({ callId: p.callId, workers: this.slots.length }, 'media relay: every worker is out of ports');
    }
    return last ?? this.engineError('threads are not running');
  }

  /** RFC 3264 §6 answer, handled by the worker hosting the call. */
  async answer(p: AnswerParams): Promise<MediaResult> {
    if (this.closing) return { ok: false, code: 'ENGINE_ERROR', detail: 'media relay closed' };
    const slot = this.routes.get(p.callId);
    if (!slot) return { ok: false, code: 'UNKNOWN_CALL', detail: `no media session for Call-ID ${p.callId}` };
    const reply = await this.request(slot, { op: 'answer', params: p });
    if (!reply) return this.engineError(`${slot.index} did not answer the answer`);
    this.track(p.callId, slot, reply);
    return reply.result as MediaResult;
  }

  /** Deletes the call on its worker and frees its ports (unknown calls are ignored). */
  async delete(p: DeleteParams): Promise<void> {
    const slot = this.routes.get(p.callId);
    if (!slot) return;
    this.unroute(p.callId);
    await this.request(slot, { op: 'delete', params: p });
  }

  /** Fresh statistics of one call from its worker; undefined when unknown. */
  async query(callId: string): Promise<CallMediaStats | undefined> {
    const slot = this.routes.get(callId);
    if (!slot) return undefined;
    const reply = await this.request(slot, { op: 'query', callId });
    return reply?.result as CallMediaStats | undefined;
  }

  /** Summaries of all calls, as last reported by the workers (after each op, and every statsIntervalMs). */
  list(): CallMediaSummary[] {
    return [...this.summaries.values()].map((s) => ({ ...s, tags: [...s.tags] }));
  }

  /** Sum of the workers' counters (as last reported), the pool's own, and those of crashed workers. */
  counters(): MediaCounters {
    const c: MediaCounters = { ...this.retired };
    for (const s of this.slots) {
      c.portPairsCapacity += s.capacity;
      if (!s.alive) continue;
      const w = s.counters;
      c.portPairsInUse += w.portPairsInUse;
      c.bindFailures += w.bindFailures;
      c.badSdp += w.badSdp;
      c.timeouts += w.timeouts;
      c.packetsRelayed += w.packetsRelayed;
      c.bytesRelayed += w.bytesRelayed;
      c.droppedSource += w.droppedSource;
      c.droppedNoDestination += w.droppedNoDestination;
      c.socketErrors += w.socketErrors;
      c.engineErrors += w.engineErrors;
    }
    c.calls = this.routes.size;
    c.noPorts = this.noPorts;
    c.engineErrors += this.engineErrors;
    c.timeouts += this.lostTimeouts;
    return c;
  }

  /** Closes every worker's sockets and ends the threads; further offers fail with ENGINE_ERROR. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closing = true;
      this.closed = Promise.all(
        this.slots.map(async (slot) => {
          const worker = slot.worker;
          if (!worker) return;
          await this.request(slot, { op: 'close' });
          slot.alive = false;
          await worker.terminate();
        }),
      ).then(() => {
        this.routes.clear();
        this.summaries.clear();
        for (const s of this.slots) s.calls.clear();
      });
    }
    return this.closed;
  }
}
