/**
 * The media unit's entry point: {@link createMediaControl} builds the in-process relay or an
 * rtpengine ng client from `media.engine`, wired to real UDP sockets.
 */
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { MediaControl, MediaTimeoutHandler } from './control.js';
import { NgMediaControl } from './ng.js';
import { NodeMediaSocketFactory } from './node/udp.js';
import type { PortRange } from './ports.js';
import { RelayEngine } from './relay.js';
import type { MediaSocketFactory } from './socket.js';

export * from './control.js';
export { RelayEngine, type RelayOptions } from './relay.js';
export { NgMediaControl, type NgOptions } from './ng.js';
export { PortPool, type PortRange } from './ports.js';

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
  /** Socket factory override (tests); default node:dgram. */
  sockets?: MediaSocketFactory;
}

/** Builds the {@link MediaControl} selected by `media.engine`. */
export function createMediaControl(config: MediaEngineSpec, opts: CreateMediaOptions): MediaControl {
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
