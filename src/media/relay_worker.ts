/**
 * Entry point of one relay worker thread (`media.workers` > 1): a {@link RelayEngine} over this
 * worker's slice of `media.ports`, with its own node:dgram sockets, so that the packets of the
 * calls it hosts are received, latched and sent on this thread only and never cross threads.
 *
 * Driven by {@link ../workers.ts WorkerRelayPool} over the parent port with the messages of
 * `worker_protocol.ts`. Time is the real clock (the pool's injected clock stays on the main
 * thread); logs, media timeouts and periodic stats are posted to the main thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SystemClock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { AnswerParams, DeleteParams, OfferParams } from './control.js';
import { NodeMediaSocketFactory } from './node/udp.js';
import { RelayEngine } from './relay.js';
import type { RelayWorkerData, WorkerEvent, WorkerRequest, WorkerResult } from './worker_protocol.js';

const port = parentPort;
if (!port) throw new Error('relay_worker.ts must run in a worker thread (see media/workers.ts)');
const data = workerData as RelayWorkerData;

function post(ev: WorkerEvent): void {
  port!.postMessage(ev);
}

/** An Error (or anything) as plain data that survives postMessage with its message, code and stack. */
function plainError(err: unknown): Record<string, unknown> {
  if (err instanceof Error) {
    const out: Record<string, unknown> = { message: err.message, name: err.name, stack: err.stack };
    const code = (err as { code?: unknown }).code;
    if (code !== undefined) out.code = code;
    return out;
  }
  return { message: String(err) };
}

/** Forwards one log call to the main thread's logger (pino call shapes: `(obj, msg)` or `(msg)`). */
function logAt(level: 'error' | 'warn' | 'info' | 'debug') {
  return (a: unknown, b?: unknown): void => {
    const obj: Record<string, unknown> = typeof a === 'string' ? {} : { ...(a as Record<string, unknown>) };
    if (obj.err !== undefined) obj.err = plainError(obj.err);
    const msg = typeof a === 'string' ? a : typeof b === 'string' ? b : '';
    post({ kind: 'log', level, obj: { ...obj, mediaWorker: data.index }, msg });
  };
}

// Only the methods the relay calls are forwarded (RelayEngine logs with error/warn/info/debug).
const logger = { error: logAt('error'), warn: logAt('warn'), info: logAt('info'), debug: logAt('debug') } as unknown as Logger;

const engine = new RelayEngine({
  ports: data.ports,
  bindAddress: data.bindAddress,
  sockets: new NodeMediaSocketFactory({ recvBufferSize: data.recvBufferSize }),
  clock: new SystemClock(),
  logger,
  timeoutSec: data.timeoutSec,
  holdTimeoutSec: data.holdTimeoutSec,
  strictSource: data.strictSource,
  learnWindowMs: data.learnWindowMs,
  sweepIntervalMs: data.sweepIntervalMs,
  onTimeout: (callId, info) => post({ kind: 'timeout', callId, info }),
});

const stats = setInterval(() => post({ kind: 'stats', counters: engine.counters(), calls: engine.list() }), data.statsIntervalMs);
stats.unref();

function reply(id: number, result: WorkerResult, callId?: string): void {
  const ev: WorkerEvent = { kind: 'reply', id, result, counters: engine.counters() };
  if (callId !== undefined) ev.summary = engine.summary(callId) ?? null;
  post(ev);
}

async function handle(req: WorkerRequest): Promise<void> {
  switch (req.op) {
    case 'offer':
      return reply(req.id, await engine.offer(req.params as OfferParams), req.params.callId);
    case 'answer':
      return reply(req.id, await engine.answer(req.params as AnswerParams), req.params.callId);
    case 'delete':
      await engine.delete(req.params as DeleteParams);
      return reply(req.id, true, req.params.callId);
    case 'query':
      return reply(req.id, await engine.query(req.callId));
    case 'close':
      clearInterval(stats);
      await engine.close();
      reply(req.id, true);
      port!.close();
      return;
  }
}

port.on('message', (req: WorkerRequest) => {
  handle(req).catch((err: unknown) => {
    // RelayEngine's methods resolve to values; this is a bug. Answer so the caller never hangs.
    logAt('error')({ err, op: req.op }, 'media relay worker: request failed');
    const result: WorkerResult = req.op === 'offer' || req.op === 'answer' ? { ok: false, code: 'ENGINE_ERROR', detail: `relay worker: ${(err as Error).message}` } : undefined;
    reply(req.id, result);
  });
});
post({ kind: 'ready' });
