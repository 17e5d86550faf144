/**
 * `sipedge start [-c FILE]`: runs the edge in the foreground.
 *
 * 1. Loads the config; on errors prints each `key.path: message` to stderr and exits 2.
 * 2. Imports `src/edge.ts` (lazily) and calls `startEdge(config, { logger, configPath, metrics })`.
 * 3. Starts the admin API (`api.listen`) unless `api.enabled: false`.
 * 4. SIGTERM / SIGINT: closes the API and `edge.close()`, then exits 0; a second signal
 *    while closing forces exit 1. SIGHUP: `edge.reload()` (calls keep running).
 *
 * Logs (pino JSON) go to stdout; the level is `log.level`, overridden by `SIPEDGE_LOG_LEVEL`.
 *
 * With `workers:` > 1 this process becomes the node:cluster primary (`src/cluster/primary.ts`):
 * it forks the workers, logs `sipedge ready` once all are up and relays SIGHUP / SIGTERM. Each
 * forked worker runs this same command: steps 1–4 with the cluster hooks passed to the edge, the
 * admin API in worker 0 only, `sipedge worker ready` instead of `sipedge ready`, and the signals
 * coming from the primary (`src/cluster/worker.ts`).
 */
import { resolve } from 'node:path';
import type { ApiServer, ApiServerOptions } from '../../api/server.js';
import { createApiServer } from '../../api/server.js';
import { createMetrics, type SipedgeMetrics } from '../../api/metrics.js';
import { loadConfig } from '../../config/load.js';
import type { SipedgeConfig } from '../../config/types.js';
import type { EdgeApi } from '../../edge-api.js';
import { createLogger, type Logger } from '../../lib/log.js';
import { configErrorLines } from '../config-errors.js';
import { ExitCode } from '../exit-codes.js';
import type { CliIo } from '../io.js';
import cluster from 'node:cluster';
import type { EdgeCluster } from '../../cluster/types.js';
import { startClusterWorker, type ClusterWorker } from '../../cluster/worker.js';

/** Signature the CLI expects of `startEdge` in `src/edge.ts`. */
export type StartEdge = (
  config: SipedgeConfig,
  opts: { logger: Logger; configPath?: string; metrics?: SipedgeMetrics; cluster?: EdgeCluster },
) => Promise<EdgeApi>;

/** Minimal signal source (the `process` object in production). */
export interface SignalSource {
  on(signal: NodeJS.Signals, fn: () => void): unknown;
  off(signal: NodeJS.Signals, fn: () => void): unknown;
}

/** What `start` depends on; replaced in tests. */
export interface StartDeps {
  io: CliIo;
  /** Loads `startEdge` (default: dynamic import of `../edge.js`). */
  importEdge?: () => Promise<StartEdge>;
  signals?: SignalSource;
  createLogger?: (level: string) => Logger;
  createApiServer?: (api: EdgeApi, opts: ApiServerOptions) => Promise<ApiServer>;
  createMetrics?: () => SipedgeMetrics;
  /** Called once the edge (and API) are up, with the API address if any (tests wait on it). */
  onReady?: (info: { edge: EdgeApi; api?: ApiServer['address'] }) => void;
}

/** Options of {@link runStart}. */
export interface StartOptions {
  config: string;
}

const STOP_SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

/** Imports `startEdge` from `src/edge.ts` (built: `dist/edge.js`); loaded lazily so `check`/`show` never load the SIP stack. */
async function importEdgeModule(): Promise<StartEdge> {
  const mod = await import('../../edge.js');
  // Compile-time check that edge.ts matches what the CLI passes.
  const startEdge: StartEdge = mod.startEdge;
  return startEdge;
}

/** Runs `start`; resolves to the exit code once the edge has stopped. */
export async function runStart(opts: StartOptions, deps: StartDeps): Promise<number> {
  const { io } = deps;
  const configPath = resolve(opts.config);
  const loaded = await loadConfig(configPath);
  if (!loaded.ok) {
    for (const line of configErrorLines(opts.config, loaded.errors, 'invalid configuration, not starting')) io.err(`${line}\n`);
    return ExitCode.CONFIG;
  }
  const { config } = loaded;
  let logger = (deps.createLogger ?? createLogger)(process.env.SIPEDGE_LOG_LEVEL ?? config.log.level);
  // workers > 1 (src/cluster/): this process is the primary (forks the SIP workers) or one of them.
  if (config.workers > 1 && cluster.isPrimary) {
    for (const w of loaded.warnings) logger.warn({ configPath }, `config: ${w}`);
    const { runPrimary } = await import('../../cluster/primary.js');
    return runPrimary({ config, configPath, logger, signals: deps.signals ?? process });
  }
  let worker: ClusterWorker | undefined;
  if (config.workers > 1) {
    worker = await startClusterWorker(logger);
    logger = logger.child({ worker: worker.index });
  } else {
    for (const w of loaded.warnings) logger.warn({ configPath }, `config: ${w}`);
  }

  let startEdge: StartEdge;
  try {
    startEdge = await (deps.importEdge ?? importEdgeModule)();
  } catch (err) {
    logger.fatal({ err }, 'cannot load the edge module');
    io.err(`cannot load the edge module: ${(err as Error).message}\n`);
    return ExitCode.FAILURE;
  }

  const metrics = (deps.createMetrics ?? createMetrics)();
  let edge: EdgeApi;
  try {
    edge = await startEdge(config, { logger, configPath, metrics, cluster: worker });
  } catch (err) {
    logger.fatal({ err }, 'the edge failed to start');
    io.err(`the edge failed to start: ${(err as Error).message}\n`);
    await worker?.close();
    return ExitCode.FAILURE;
  }

  let api: ApiServer | undefined;
  // Several workers: only worker 0 serves the admin API (its view of calls; peers come from the shared store).
  if (config.api.enabled && (worker === undefined || worker.index === 0)) {
    try {
      api = await (deps.createApiServer ?? createApiServer)(worker ? worker.wrapApi(edge) : edge, { listen: config.api.listen, logger, registry: metrics.registry });
    } catch (err) {
      logger.fatal({ err, listen: config.api.listen }, 'the admin API failed to start');
      io.err(`the admin API failed to start on ${config.api.listen}: ${(err as Error).message}\n`);
      await edge.close().catch((e: unknown) => logger.error({ err: e }, 'error while closing the edge'));
      await worker?.close();
      return ExitCode.FAILURE;
    }
  }

  logger.info({ configPath, sockets: config.sockets.map((s) => s.id), api: api?.address }, worker ? 'sipedge worker ready' : 'sipedge ready');
  worker?.ready();
  const code = await waitForStop({ edge, api, logger, configPath, config, signals: worker ?? deps.signals ?? process, onReady: deps.onReady });
  if (worker) {
    logger.info({ ...worker.counters }, 'cluster worker stats');
    await worker.close();
  }
  return code;
}

function waitForStop(ctx: {
  edge: EdgeApi;
  api?: ApiServer;
  logger: Logger;
  configPath: string;
  config: SipedgeConfig;
  signals: SignalSource;
  onReady?: StartDeps['onReady'];
}): Promise<number> {
  const { edge, api, logger, signals } = ctx;
  return new Promise<number>((resolveExit) => {
    let stopping = false;
    let reloading: Promise<void> | undefined;

    const cleanup = () => {
      for (const s of STOP_SIGNALS) signals.off(s, onStop);
      signals.off('SIGHUP', onHup);
    };

    const onStop = () => {
      if (stopping) {
        logger.warn('second stop signal: exiting without waiting for a clean shutdown');
        cleanup();
        resolveExit(ExitCode.FAILURE);
        return;
      }
      stopping = true;
      logger.info('stopping (send the signal again to force)');
      void (async () => {
        let code: number = ExitCode.OK;
        try {
          await api?.close();
        } catch (err) {
          logger.error({ err }, 'error while closing the admin API');
        }
        try {
          await edge.close();
          logger.info('sipedge stopped');
        } catch (err) {
          logger.error({ err }, 'error while closing the edge');
          code = ExitCode.FAILURE;
        }
        cleanup();
        resolveExit(code);
      })();
    };

    const onHup = () => {
      if (stopping) return;
      if (reloading) {
        logger.info('SIGHUP: a reload is already running');
        return;
      }
      logger.info('SIGHUP: reloading');
      reloading = (async () => {
        try {
          const r = await edge.reload();
          if (r.ok) logger.info('reloaded');
          else logger.error({ errors: r.errors }, 'reload refused; keeping the previous settings');
          if (r.ok) await warnOnApiChange(ctx);
        } catch (err) {
          logger.error({ err }, 'reload failed; keeping the previous settings');
        } finally {
          reloading = undefined;
        }
      })();
    };

    for (const s of STOP_SIGNALS) signals.on(s, onStop);
    signals.on('SIGHUP', onHup);
    ctx.onReady?.({ edge, api: api?.address });
  });
}

/** The admin API is owned by the CLI and is not rebound on reload: say so if its settings changed. */
async function warnOnApiChange(ctx: { configPath: string; config: SipedgeConfig; logger: Logger }): Promise<void> {
  const again = await loadConfig(ctx.configPath);
  if (!again.ok) return;
  const before = ctx.config.api;
  const after = again.config.api;
  if (before.listen !== after.listen || before.enabled !== after.enabled) {
    ctx.logger.warn({ before, after }, 'api settings changed: they take effect after a restart');
  }
}
