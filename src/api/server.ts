/**
 * The HTTP admin API of a running edge (fastify). Routes:
 *
 * | route | answers |
 * |---|---|
 * | `GET /api/settings` | `EdgeApi.settings()` as JSON |
 * | `GET /api/peers` | `PeerRow[]` as JSON |
 * | `GET /api/calls` | `CallRow[]` as JSON |
 * | `POST /api/reload` | `{ ok, errors? }`; 200 when ok, 422 when the reload was refused |
 * | `GET /healthz` | `{ status: "ok" }` |
 * | `GET /metrics` | Prometheus text of the given registry (404 when none was given) |
 *
 * The API has no authentication: bind it to loopback (the default `api.listen`,
 * `127.0.0.1:8088`) or protect it at the network level.
 */
import Fastify from 'fastify';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { EdgeApi } from '../edge-api.js';
import type { Logger } from '../lib/log.js';
import { parseHostPort } from '../config/values.js';

/** Options of {@link createApiServer}. */
export interface ApiServerOptions {
  /** `host:port` to bind (IPv6 as `[::1]:8088`); port 0 picks a free port (see the returned `address`). */
  listen: string;
  /** Request errors are logged here (nothing per request below `debug`). */
  logger?: Logger;
  /** Registry served at GET /metrics (e.g. `createMetrics().registry`). */
  registry?: Registry;
}

/** A listening admin API server. */
export interface ApiServer {
  /** Stops listening and closes idle connections; resolves when closed. */
  close(): Promise<void>;
  /** The bound address and port (the real port when `listen` used port 0). */
  address: { address: string; port: number };
}

/**
 * Starts the admin API for `api` and resolves once it is listening.
 * Rejects if `opts.listen` is malformed or the address cannot be bound (e.g. `EADDRINUSE`).
 */
export async function createApiServer(api: EdgeApi, opts: ApiServerOptions): Promise<ApiServer> {
  const hp = parseHostPort(opts.listen);
  if (!hp.ok) throw new Error(`api listen address ${opts.listen}: ${hp.reason}`);
  const log = opts.logger?.child({ unit: 'api' });

  const app = Fastify({ logger: false });

  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) log?.error({ err, url: req.url, method: req.method }, 'admin API request failed');
    void reply.code(status).send({ error: status >= 500 ? 'internal error' : err.message, message: err.message });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: 'not found', message: `no route ${req.method} ${req.url}` });
  });
  app.addHook('onResponse', async (req, reply) => {
    log?.debug({ method: req.method, url: req.url, status: reply.statusCode }, 'admin API request');
  });

  app.get('/api/settings', async () => api.settings());
  app.get('/api/peers', async () => api.peers());
  app.get('/api/calls', async () => api.calls());
  app.post('/api/reload', async (_req, reply) => {
    const result = await api.reload();
    log?.info({ ok: result.ok, errors: result.errors }, 'reload requested through the admin API');
    return reply.code(result.ok ? 200 : 422).send(result);
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/metrics', async (_req, reply) => {
    if (!opts.registry) return reply.code(404).send({ error: 'not found', message: 'metrics are not enabled' });
    const text = await opts.registry.metrics();
    return reply.header('content-type', opts.registry.contentType).send(text);
  });

  await app.listen({ host: hp.value.host, port: hp.value.port });
  const bound = app.server.address() as AddressInfo;
  log?.info({ address: bound.address, port: bound.port }, 'admin API listening');
  return {
    address: { address: bound.address, port: bound.port },
    close: async () => {
      await app.close();
    },
  };
}
