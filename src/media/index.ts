/**
 * The media unit's entry point: {@link createMediaControl} builds the in-process relay (on the
 * main event loop, or on `media.workers` threads) or an rtpengine ng client from `media.engine`,
 * wired to real UDP sockets.
 */
import os from 'node:os';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { MediaControl, MediaTimeoutHandler } from './control.js';
import { NgMediaControl } from './ng.js';
import { NodeMediaSocketFactory } from './node/udp.js';
import type { PortRange } from './ports.js';
import { RelayEngine } from './relay.js';
import type { MediaSocketFactory } from './socket.js';
import { WorkerRelayPool } from './workers.js';

export * from './control.js';
export { RelayEngine, type RelayOptions } from './relay.js';
export { NgMediaControl, type NgOptions } from './ng.js';
export { PortPool, type PortRange } from './ports.js';
export { WorkerRelayPool, splitPortRange, type WorkerRelayOptions } from './workers.js';

/** `media.engine` (structurally the config's `MediaEngineConfig`). */
export type MediaEngineSpec = { kind: 'internal' } | { kind: 'rtpengine'; host: string; port: number; transport?: 'udp' };

/** Settings for {@link createMediaControl} (from `media.*`). */
export interface CreateMediaOptions {
  clock: Clock;
  logger?: Logger;
  /** `media.ports` (internal relay). */
  ports: PortRange;
  /** `media.address` (internal relay bind address; default all addresses). */
  bindAddress?: string;
  /** `media.timeout`, seconds (default 60). */
  timeoutSec?: number;
  /** `media.strictSource` (default true). */
  strictSource?: boolean;
  /** Learning window after each offer/answer, ms (default 3000). */
  learnWindowMs?: number;
  /** Fired once per call when media stopped for `timeoutSec`. */
  onTimeout?: MediaTimeoutHandler;
  /** SO_RCVBUF of each relay socket, bytes (default: the system's; raise it against bursts at high packet rates). */
  recvBufferSize?: number;
  /** Socket factory override (tests); default node:dgram. Not allowed with `workers` > 1. */
  sockets?: MediaSocketFactory;
  /**
   * `media.workers`: threads of the internal relay. 1 (default): the relay runs on this event
   * loop. N > 1: N worker threads, each owning a slice of `ports` ({@link WorkerRelayPool});
   * `auto`: one per core (`os.availableParallelism()`).
   */
  workers?: number | 'auto';
}

/** `media.workers` as a thread count (`auto` = the number of cores; at least 1). */
export function resolveMediaWorkers(workers: number | 'auto' | undefined): number {
  const n = workers === 'auto' ? os.availableParallelism() : (workers ?? 1);
  return Number.isFinite(n) ? Math.max(1, Math.floor(n)) : 1;
}

/**
 * Builds the {@link MediaControl} selected by `media.engine` (and `media.workers` for the
 * internal relay).
 * @throws Error when `workers` > 1 is combined with a `sockets` override (workers bind their own)
 */
export function createMediaControl(config: MediaEngineSpec, opts: CreateMediaOptions): MediaControl {
  const workers = resolveMediaWorkers(opts.workers);
  if (config.kind === 'internal' && workers > 1) {
    if (opts.sockets) throw new Error('createMediaControl: a sockets override cannot be used with workers > 1');
    return new WorkerRelayPool({
      workers,
      ports: opts.ports,
      bindAddress: opts.bindAddress,
      timeoutSec: opts.timeoutSec,
      strictSource: opts.strictSource,
      learnWindowMs: opts.learnWindowMs,
      recvBufferSize: opts.recvBufferSize,
      onTimeout: opts.onTimeout,
      logger: opts.logger,
      clock: opts.clock,
    });
  }
  const sockets = opts.sockets ?? new NodeMediaSocketFactory({ recvBufferSize: opts.recvBufferSize });
  if (config.kind === 'rtpengine') {
    return new NgMediaControl({
      host: config.host,
      port: config.port,
      sockets,
      clock: opts.clock,
      logger: opts.logger,
      strictSource: opts.strictSource,
      onTimeout: opts.onTimeout,
    });
  }
  return new RelayEngine({
    ports: opts.ports,
    bindAddress: opts.bindAddress,
    sockets,
    clock: opts.clock,
    logger: opts.logger,
    timeoutSec: opts.timeoutSec,
    strictSource: opts.strictSource,
    learnWindowMs: opts.learnWindowMs,
    onTimeout: opts.onTimeout,
  });
}
