/**
 * The cluster primary (`sipedge start` with `workers:` > 1): forks the SIP worker processes
 * (node:cluster), tells each the others' channel ports, relays reloads, stops them on
 * SIGTERM/SIGINT and restarts any that dies. It handles no SIP itself: node:cluster binds the
 * shared UDP sockets in this process and hands them to the workers (`worker.ts`).
 *
 * Before forking it prepares the state the workers share, so they do not race to create it:
 * the SQLite file (opened once: created and migrated) and the flow-token secret file beside it.
 */
import cluster, { type Worker } from 'node:cluster';
import type { SipedgeConfig } from '../config/types.js';
import type { Logger } from '../lib/log.js';
import { openLocationStore } from '../store/index.js';
import { loadFlowTokenSecret } from '../proxy/flowtoken_secret.js';
import type { PrimaryToWorker, WorkerToPrimary } from './worker.js';

/** Environment variables a forked worker reads: its index and the number of workers. */
export const WORKER_INDEX_ENV = 'SIPEDGE_WORKER_INDEX';
export const WORKER_COUNT_ENV = 'SIPEDGE_WORKERS';

/** Minimal signal source (the `process` object in production). */
export interface PrimarySignals {
  on(signal: NodeJS.Signals, fn: () => void): unknown;
  off(signal: NodeJS.Signals, fn: () => void): unknown;
}

/** Options of {@link runPrimary}. */
export interface PrimaryOptions {
  config: SipedgeConfig;
  configPath: string;
  logger: Logger;
  signals: PrimarySignals;
  /** First delay before restarting a worker that died, ms (doubles on each death within a minute, up to 30 s). Default 1000. */
  restartDelayMs?: number;
  /** How long a stop waits for the workers before SIGKILL, ms. Default 10 000. */
  stopTimeoutMs?: number;
}

/** Exit codes (same as the CLI's). */
const OK = 0;
const FAILURE = 1;

/**
 * Runs the primary until it is stopped. Resolves to the exit code: 0 after a clean stop, 1 when
 * a worker failed to start (the others are stopped), a worker did not stop cleanly, or a second
 * signal forced the exit.
 */
export async function runPrimary(opts: PrimaryOptions): Promise<number> {
  const { config, logger: log, signals } = opts;
  const n = config.workers;
  const restartBase = opts.restartDelayMs ?? 1000;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 10_000;
  try {
    await prepareSharedState(config, log);
  } catch (err) {
    log.fatal({ err }, 'cannot prepare the shared store for the workers');
    return FAILURE;
  }

  const workers: Array<Worker | undefined> = new Array<Worker | undefined>(n).fill(undefined);
  const ports: number[] = new Array<number>(n).fill(0);
  const deaths: number[][] = Array.from({ length: n }, () => []);
  const restartTimers = new Set<NodeJS.Timeout>();
  let allReady = false;
  let stopping = false;
  let failed = false;

  return new Promise<number>((resolveExit) => {
    let killTimer: NodeJS.Timeout | undefined;
    const broadcast = (msg: PrimaryToWorker, except?: number): void => {
      workers.forEach((w, i) => {
        if (w !== undefined && i !== except && w.isConnected()) w.send(msg);
      });
    };
    const finishIfDone = (): void => {
      if (!stopping || workers.some((w) => w !== undefined)) return;
      clearTimeout(killTimer);
      for (const t of restartTimers) clearTimeout(t);
      for (const s of ['SIGTERM', 'SIGINT'] as const) signals.off(s, onStop);
      signals.off('SIGHUP', onHup);
      log.info({ workers: n }, 'sipedge stopped');
      resolveExit(failed ? FAILURE : OK);
    };
    const stopAll = (): void => {
      stopping = true;
      for (const t of restartTimers) clearTimeout(t);
      restartTimers.clear();
      broadcast({ t: 'sipedge:stop' });
      killTimer = setTimeout(() => {
        workers.forEach((w, i) => {
          if (w === undefined) return;
          log.error({ worker: i, pid: w.process.pid }, `worker ${i} did not stop within ${stopTimeoutMs} ms: killing it`);
          failed = true;
          w.process.kill('SIGKILL');
        });
      }, stopTimeoutMs);
      finishIfDone();
    };

    const fork = (index: number): void => {
      const w = cluster.fork({ [WORKER_INDEX_ENV]: String(index), [WORKER_COUNT_ENV]: String(n) });
      workers[index] = w;
      let ready = false;
      w.on('message', (m: WorkerToPrimary) => {
        if (typeof m !== 'object' || m === null) return;
        if (m.t === 'sipedge:ready') {
          ready = true;
          ports[index] = m.port;
          broadcast({ t: 'sipedge:peers', ports: ports.slice() });
          if (!allReady && ports.every((p) => p > 0)) {
            allReady = true;
            log.info(
              { configPath: opts.configPath, workers: n, pids: workers.map((x) => x?.process.pid), sockets: config.sockets.map((s) => s.id) },
              'sipedge ready',
            );
          } else if (allReady) {
            log.warn({ worker: index, pid: w.process.pid }, `worker ${index} restarted and ready`);
          }
        } else if (m.t === 'sipedge:reload-others') {
          broadcast({ t: 'sipedge:reload' }, m.index);
        }
      });
      w.on('exit', (code, signal) => {
        if (workers[index] === w) workers[index] = undefined;
        ports[index] = 0;
        if (stopping) {
          if (code !== 0) failed = true;
          finishIfDone();
          return;
        }
        broadcast({ t: 'sipedge:peers', ports: ports.slice() });
        if (!allReady && !ready) {
          log.fatal({ worker: index, code, signal }, `worker ${index} exited before it was ready: stopping the cluster`);
          failed = true;
          stopAll();
          return;
        }
        const now = Date.now();
        const recent = deaths[index].filter((t) => now - t < 60_000);
        recent.push(now);
        deaths[index] = recent;
        const delay = Math.min(30_000, restartBase * 2 ** (recent.length - 1));
        log.error({ worker: index, pid: w.process.pid, code, signal, restartInMs: delay }, `WORKER ${index} DIED (code ${code}, signal ${signal}): restarting it`);
        const t = setTimeout(() => {
          restartTimers.delete(t);
          if (!stopping) fork(index);
        }, delay);
        restartTimers.add(t);
      });
    };

    const onStop = (): void => {
      if (stopping) {
        log.warn('second stop signal: killing the workers without waiting');
        failed = true;
        workers.forEach((w) => w?.process.kill('SIGKILL'));
        return;
      }
      log.info({ workers: n }, 'stopping the workers (send the signal again to force)');
      stopAll();
    };
    const onHup = (): void => {
      if (stopping) return;
      log.info({ workers: n }, 'SIGHUP: every worker reloads');
      broadcast({ t: 'sipedge:reload' });
    };
    for (const s of ['SIGTERM', 'SIGINT'] as const) signals.on(s, onStop);
    signals.on('SIGHUP', onHup);
    log.info({ workers: n }, `starting ${n} SIP worker processes`);
    for (let i = 0; i < n; i++) fork(i);
  });
}

/** Creates/migrates the SQLite file and the flow-token secret once, before the workers open them. */
async function prepareSharedState(config: SipedgeConfig, log: Logger): Promise<void> {
  if (!config.store.startsWith('sqlite:')) return;
  const store = await openLocationStore(config.store, { logger: log });
  await store.close();
  loadFlowTokenSecret(config.store, log);
}
