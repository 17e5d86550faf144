/**
 * The owner of the public (advertised) address: runs the configured discovery strategy at start,
 * every `publicAddress.refresh` seconds, and on demand (`sipedge reload`, SIGHUP); remembers the
 * result, its source and freshness for `show settings`; and tells listeners when it changes so
 * that new transactions and media sessions use the new address.
 *
 * It never makes the edge fail to start. When every method fails it says loudly that the edge
 * is advertising its private address (or, after an earlier success, that it keeps the last known
 * address), reports `failing: true`, and retries every `min(refresh, 30 s)` (30 s when refresh is 0).
 * All timers go through the injected {@link Clock}; network deadlines are real time.
 */
import type { Clock, TimerHandle } from '../lib/clock.js';
import { silentLogger, type Logger } from '../lib/log.js';
import type { PublicAddressConfig } from '../config/types.js';
import {
  describeDiscoverResult,
  discoverPublicAddress,
  publicAddressMode,
  type DiscoverResult,
  type DiscoverSource,
  type DiscoveryRun,
  type FetchLike,
  type HostResolver,
  type PublicAddressMode,
  type StunDiscoverDeps,
} from './discover.js';

/** Source of the current address; `none` when there is none (nothing configured, or discovery failed from the start). */
export type PublicAddressSource = DiscoverSource | 'none';

/** Called when the advertised public address changes (including the first discovery and a loss). */
export type PublicAddressListener = (next: string | undefined, prev: string | undefined, source: PublicAddressSource) => void;

/** Snapshot for `show settings` / `GET /api/settings`. */
export interface PublicAddressState {
  /** The address advertised for sockets without `as`; undefined = the bound (private) address is advertised. */
  address?: string;
  /** Where {@link PublicAddressState.address} came from. */
  source: PublicAddressSource;
  /** Which alternative of `publicAddress` is configured. */
  mode: PublicAddressMode;
  /** ISO time of the last run that produced the current address (or confirmed there is none to find). */
  lastRefresh?: string;
  /** ISO time of the last run, successful or not. */
  lastAttempt?: string;
  /** ISO time of the next scheduled run, if any. */
  nextRefresh?: string;
  /** Why the last run failed (every method's failure), when it failed. */
  lastError?: string;
  /** The last run found no address (so the address is stale or missing). */
  failing: boolean;
  /** Times a known address changed (to another address, or was lost); the first discovery is not counted. */
  changes: number;
  /** Every method of the last run, one line each (`aws: TIMEOUT (…)`, `gcp: 203.0.113.10`). */
  attempts: string[];
  /** A sentence for operators when something is wrong (e.g. "advertising private address"). */
  warning?: string;
}

/** Options of {@link PublicAddressManager}. */
export interface PublicAddressManagerOptions {
  config: PublicAddressConfig;
  clock: Clock;
  logger?: Logger;
  /** Resolver for `publicAddress.host` (default: `dns.promises.lookup`). */
  resolveHost?: HostResolver;
  /** `fetch` for the metadata services (default: global fetch). */
  fetchImpl?: FetchLike;
  /** STUN client options: `localAddress`, `software`, `lookup`, `clock`, `binding`. */
  stun?: StunDiscoverDeps;
  /** Timeout of each method in ms (STUN: each server). Default 2000. */
  timeoutMs?: number;
  /** Longest retry interval while failing, ms. Default 30000. */
  retryIntervalMs?: number;
}

/** Default retry interval while discovery fails, ms. */
export const DEFAULT_RETRY_INTERVAL_MS = 30_000;

/**
 * Discovers and keeps the public address current. Create it, add listeners with
 * {@link PublicAddressManager.onChange}, then `await start()` (never rejects).
 */
export class PublicAddressManager {
  private config: PublicAddressConfig;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly opts: PublicAddressManagerOptions;
  private readonly listeners = new Set<PublicAddressListener>();

  private addr?: string;
  private src: PublicAddressSource = 'none';
  /** Mode of the config that produced {@link addr} (a stale address is only kept within one mode). */
  private addrMode: PublicAddressMode = 'none';
  private lastRefreshAt?: number;
  private lastAttemptAt?: number;
  private nextRefreshAt?: number;
  private lastError?: string;
  private failing = false;
  private changeCount = 0;
  private lastRun?: DiscoveryRun;

  private timer?: TimerHandle;
  private chain: Promise<unknown> = Promise.resolve();
  private controller?: AbortController;
  private startPromise?: Promise<void>;
  private closed = false;

  constructor(opts: PublicAddressManagerOptions) {
    this.opts = opts;
    this.config = opts.config;
    this.clock = opts.clock;
    this.log = opts.logger ?? silentLogger;
  }

  /**
   * Runs the first discovery and arms the refresh timer. Never rejects; resolves when the first
   * run is over (an address is known, or every method failed and a retry is scheduled).
   * Calling it again returns the same promise.
   */
  start(): Promise<void> {
    this.startPromise ??= this.enqueue().then(() => undefined);
    return this.startPromise;
  }

  /**
   * Re-runs discovery now (`sipedge reload`, SIGHUP), optionally with a new `publicAddress`
   * config, and re-arms the timer. Resolves to whether the address changed. A call made while a
   * run is in progress runs again after it, so the answer is never older than the call.
   */
  refresh(config?: PublicAddressConfig): Promise<boolean> {
    if (config) this.config = config;
    return this.enqueue();
  }

  /** Registers a listener; returns a function that removes it. Listener errors are logged and ignored. */
  onChange(listener: PublicAddressListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The current advertised public address, if any (hot-path accessor). */
  get address(): string | undefined {
    return this.addr;
  }

  /** Number of changes of a known address so far (see {@link PublicAddressState.changes}). */
  get changes(): number {
    return this.changeCount;
  }

  /** Snapshot for `show settings`. */
  current(): PublicAddressState {
    const iso = (t: number | undefined) => (t === undefined ? undefined : new Date(t).toISOString());
    let warning: string | undefined;
    if (this.failing && this.addr === undefined) warning = 'public address discovery failing: advertising private address';
    else if (this.failing) warning = `public address discovery failing: still advertising ${this.addr} from the last successful refresh`;
    else if (this.lastRun?.result?.warning) warning = this.lastRun.result.warning;
    return {
      address: this.addr,
      source: this.src,
      mode: publicAddressMode(this.config),
      lastRefresh: iso(this.lastRefreshAt),
      lastAttempt: iso(this.lastAttemptAt),
      nextRefresh: iso(this.nextRefreshAt),
      lastError: this.lastError,
      failing: this.failing,
      changes: this.changeCount,
      attempts: (this.lastRun?.attempts ?? []).map(describeDiscoverResult),
      warning,
    };
  }

  /** Resolves when no run is in progress or queued (for tests and orderly shutdown). */
  async settled(): Promise<void> {
    for (;;) {
      const c = this.chain;
      await c;
      if (c === this.chain) return;
    }
  }

  /** Cancels the timer and any run in progress; no listener is called afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.nextRefreshAt = undefined;
    this.controller?.abort();
    this.listeners.clear();
    await this.settled();
  }

  private enqueue(): Promise<boolean> {
    const p = this.chain.then(() => this.runOnce());
    this.chain = p;
    return p;
  }

  /** One run of the strategy; never rejects. */
  private async runOnce(): Promise<boolean> {
    if (this.closed) return false;
    const controller = new AbortController();
    this.controller = controller;
    const config = this.config;
    const mode = publicAddressMode(config);
    let run: DiscoveryRun;
    try {
      run = await discoverPublicAddress(config, {
        timeoutMs: this.opts.timeoutMs,
        signal: controller.signal,
        fetchImpl: this.opts.fetchImpl,
        resolveHost: this.opts.resolveHost,
        stun: this.opts.stun,
      });
    } catch (err) {
      // discoverPublicAddress never throws; guard anyway so a bug cannot stop the refresh loop.
      run = { mode, attempts: [{ ok: false, source: 'config', code: 'BAD_ANSWER', detail: `internal error: ${(err as Error)?.message ?? String(err)}` }] };
    } finally {
      if (this.controller === controller) this.controller = undefined;
    }
    if (this.closed) return false;

    const now = this.clock.wallNow();
    this.lastAttemptAt = now;
    this.lastRun = run;
    for (const a of run.attempts) this.logAttempt(a, run);

    let changed = false;
    const refreshMs = config.refresh > 0 ? config.refresh * 1000 : undefined;
    if (run.result) {
      if (this.failing) this.log.warn({ address: run.result.address, source: run.result.source }, 'public address discovery recovered');
      this.failing = false;
      this.lastError = undefined;
      this.lastRefreshAt = now;
      this.addrMode = mode;
      changed = this.set(run.result.address, run.result.source);
      this.schedule(mode === 'ip' ? undefined : refreshMs);
    } else if (mode === 'none') {
      this.failing = false;
      this.lastError = undefined;
      this.lastRefreshAt = now;
      this.addrMode = mode;
      changed = this.set(undefined, 'none');
      this.log.info('no publicAddress configured: sockets without "as" advertise their bound address');
      this.schedule(undefined);
    } else {
      const retryMs = Math.min(refreshMs ?? Infinity, this.opts.retryIntervalMs ?? DEFAULT_RETRY_INTERVAL_MS);
      const why = run.attempts.map(describeDiscoverResult).join('; ') || 'aborted';
      this.failing = true;
      this.lastError = why;
      const retryText = `retrying in ${Math.round(retryMs / 1000)} s`;
      if (this.addr !== undefined && this.addrMode === mode) {
        this.log.warn({ attempts: run.attempts, address: this.addr, source: this.src }, `public address discovery failed (${why}); keeping ${this.addr} from ${this.src}; ${retryText}`);
      } else {
        changed = this.set(undefined, 'none');
        this.log.error(
          { attempts: run.attempts },
          `public address discovery failed (${why}): ADVERTISING PRIVATE ADDRESS to the outside; calls through NAT will break; ${retryText}`,
        );
      }
      this.schedule(retryMs);
    }
    return changed;
  }

  private logAttempt(a: DiscoverResult, run: DiscoveryRun): void {
    if (a.ok) {
      if (a.warning) this.log.warn({ source: a.source, address: a.address }, a.warning);
    } else if (run.result) {
      // An earlier method in the list failed but a later one worked: expected on the other clouds.
      this.log.debug({ source: a.source, code: a.code, detail: a.detail }, `public address: ${describeDiscoverResult(a)}`);
    } else {
      this.log.info({ source: a.source, code: a.code, detail: a.detail }, `public address: ${describeDiscoverResult(a)}`);
    }
  }

  /** Sets the address; logs, counts and notifies when it changed. */
  private set(next: string | undefined, source: PublicAddressSource): boolean {
    const prev = this.addr;
    this.src = source;
    if (next === prev) return false;
    this.addr = next;
    if (prev !== undefined && next !== undefined) {
      this.changeCount++;
      this.log.warn({ prev, next, source }, `public address changed from ${prev} to ${next} (${source})`);
    } else if (next !== undefined) {
      this.log.info({ address: next, source }, `public address is ${next} (${source})`);
    } else {
      this.changeCount++;
      this.log.warn({ prev }, `public address ${prev} dropped`);
    }
    for (const l of [...this.listeners]) {
      try {
        l(next, prev, source);
      } catch (err) {
        this.log.error({ err }, 'public address change listener failed');
      }
    }
    return true;
  }

  private schedule(delayMs: number | undefined): void {
    this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.nextRefreshAt = undefined;
    if (this.closed || delayMs === undefined || !Number.isFinite(delayMs)) return;
    this.nextRefreshAt = this.clock.wallNow() + delayMs;
    this.timer = this.clock.setTimer(delayMs, () => {
      this.timer = undefined;
      void this.enqueue();
    });
  }
}
