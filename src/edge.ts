/**
 * Composition root: builds every unit from the effective config and wires them together
 * (transport → transaction layer → proxy/registrar), following DESIGN.md's layering.
 */
import { SystemClock, type Clock, type TimerHandle } from './lib/clock.js';
import type { Logger } from './lib/log.js';
import type { SipedgeConfig } from './config/types.js';
import { loadConfig } from './config/load.js';
import type { SipedgeMetrics } from './api/metrics.js';
import { messageKind } from './api/metrics.js';
import type { EdgeApi, PeerRow, CallRow } from './edge-api.js';
import { openLocationStore } from './store/index.js';
import type { LocationStore } from './store/types.js';
import { DigestAuth } from './registrar/digest.js';
import { Registrar } from './registrar/registrar.js';
import { TransportLayer } from './transport/layer.js';
import { TransactionLayer } from './transaction/layer.js';
import { Proxy } from './proxy/proxy.js';
import { parseCidrs, type AdvertiseContext } from './nat/advertise.js';
import { formatHostPort } from './sip/uri.js';

/** Options of {@link startEdge}. */
export interface StartEdgeOptions {
  logger: Logger;
  /** Path of the config file, for `reload`. */
  configPath?: string;
  metrics?: SipedgeMetrics;
  /** Time source; the system clock by default. */
  clock?: Clock;
}

/** Interval of the expired-binding purge, ms. */
const PURGE_INTERVAL_MS = 30_000;

function advertiseContext(config: SipedgeConfig): AdvertiseContext {
  return { publicAddress: config.publicAddress.ip, localnet: parseCidrs(config.localnet) };
}

/**
 * The running edge. Owns the store, the sockets and every timer; {@link Edge.close} releases them.
 */
export class Edge implements EdgeApi {
  private purgeTimer?: TimerHandle;
  private closed = false;
  private readonly startedAt: number;

  private constructor(
    private config: SipedgeConfig,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly store: LocationStore,
    readonly transport: TransportLayer,
    readonly transactions: TransactionLayer,
    readonly proxy: Proxy,
    readonly registrar: Registrar,
    private readonly configPath?: string,
  ) {
    this.startedAt = clock.wallNow();
  }

  /** Builds and starts every unit; rejects (after releasing what was opened) when a socket cannot be bound. */
  static async start(config: SipedgeConfig, opts: StartEdgeOptions): Promise<Edge> {
    const clock = opts.clock ?? new SystemClock();
    const log = opts.logger;
    const metrics = opts.metrics;
    const store = await openLocationStore(config.store);
    const auth =
      config.users.length > 0
        ? new DigestAuth({ realm: config.registrar.realm, users: config.users, clock, nonceTtlMs: config.auth.nonceTtl * 1000, algorithms: config.auth.algorithms })
        : undefined;
    const registrar = new Registrar({
      store,
      clock,
      config: {
        domains: config.registrar.domains,
        expires: config.registrar.expires,
        maxContacts: config.registrar.maxContacts,
        maxExpiresNat: config.nat.maxExpires,
      },
      auth,
      logger: log,
    });
    // The transport, transaction layer and proxy refer to each other; `late` closes the loop.
    const late: { layer?: TransactionLayer } = {};
    const transport = new TransportLayer({
      listen: config.sockets,
      clock,
      logger: log,
      limits: { maxMessageSize: config.sip.maxMessageSize, maxHeaders: config.sip.maxHeaders },
      events: {
        onMessage: (inbound) => {
          metrics?.sipMessagesReceived.inc({ kind: inbound.message.type === 'request' ? messageKind(inbound.message.method) : 'response' });
          late.layer?.receive(inbound);
        },
        onParseError: (err, flow) => {
          metrics?.sipParseErrors.inc({ code: err.code });
          log.debug({ code: err.code, detail: err.detail, from: formatHostPort(flow.remote.address, flow.remote.port) }, 'malformed SIP message');
        },
      },
    });
    const proxy = new Proxy({
      clock,
      transport,
      registrar,
      auth,
      users: new Set(config.users.map((u) => u.username)),
      settings: {
        domains: config.registrar.domains,
        aliases: config.aliases,
        recordRoute: config.proxy.recordRoute,
        natClients: config.nat.clients,
        timerCMs: 181_000,
      },
      advertise: advertiseContext(config),
      logger: log,
    });
    const layer = new TransactionLayer({
      clock,
      transport,
      tu: proxy,
      timers: { T1: config.sip.timers.t1, T2: config.sip.timers.t2, T4: config.sip.timers.t4 },
      logger: log,
    });
    late.layer = layer;
    try {
      await transport.start();
    } catch (err) {
      layer.close();
      await store.close();
      throw err;
    }
    proxy.attach(layer);
    const edge = new Edge(config, clock, log, store, transport, layer, proxy, registrar, opts.configPath);
    edge.schedulePurge();
    log.info({ sockets: transport.sockets().map((s) => `${s.id}${s.boundPort !== s.port ? ` (port ${s.boundPort})` : ''}`) }, 'SIP sockets bound');
    return edge;
  }

  private schedulePurge(): void {
    this.purgeTimer = this.clock.setTimer(PURGE_INTERVAL_MS, () => {
      this.store
        .purgeExpired(this.clock.wallNow())
        .then((n) => {
          if (n > 0) this.log.debug({ removed: n }, 'expired bindings purged');
        })
        .catch((err: unknown) => this.log.error({ err }, 'binding purge failed'))
        .finally(() => {
          if (!this.closed) this.schedulePurge();
        });
    });
  }

  settings(): Record<string, unknown> {
    const c = this.config;
    return {
      sockets: this.transport.sockets().map((s) => ({
        id: s.id,
        transport: s.transport,
        bind: formatHostPort(s.address, s.boundPort),
        advertised: s.advertised ? formatHostPort(s.advertised.host, s.advertised.port) : (c.publicAddress.ip ?? null),
      })),
      publicAddress: { ip: c.publicAddress.ip ?? null, source: c.publicAddress.ip ? 'config' : 'none' },
      localnet: c.localnet,
      nat: c.nat,
      media: { relay: c.media.relay, ports: `${c.media.ports.low}-${c.media.ports.high}`, advertise: c.media.advertise ?? c.publicAddress.ip ?? null },
      registrar: { domains: c.registrar.domains, realm: c.registrar.realm, expires: c.registrar.expires, maxContacts: c.registrar.maxContacts },
      store: c.store.replace(/\/\/[^@]*@/, '//***@'),
      startedAt: new Date(this.startedAt).toISOString(),
    };
  }

  async peers(): Promise<PeerRow[]> {
    const now = this.clock.wallNow();
    const all = await this.store.allBindings();
    return all
      .filter((b) => b.expiresAt > now)
      .map((b) => ({
        aor: b.aor,
        contact: b.contact,
        received: formatHostPort(b.received.address, b.received.port),
        transport: b.received.transport,
        socket: b.received.socketId,
        nat: b.nat,
        natTests: b.natTests ?? [],
        expires: Math.max(0, Math.round((b.expiresAt - now) / 1000)),
        q: b.q,
        reachable: 'unknown' as const,
        userAgent: b.userAgent,
      }));
  }

  calls(): CallRow[] {
    return [];
  }

  async reload(): Promise<{ ok: boolean; errors?: string[] }> {
    if (!this.configPath) return { ok: false, errors: ['no config file to reload'] };
    const r = await loadConfig(this.configPath);
    if (!r.ok) return { ok: false, errors: r.errors.map((e) => `${e.path}: ${e.message}`) };
    this.config = r.config;
    this.proxy.refreshSockets(advertiseContext(r.config));
    this.log.info({ configPath: this.configPath }, 'configuration reloaded');
    return { ok: true };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.clock.clearTimer(this.purgeTimer);
    this.proxy.close();
    this.transactions.close();
    await this.transport.close();
    await this.store.close();
  }
}

/** Entry point used by `sipedge start`. */
export async function startEdge(config: SipedgeConfig, opts: StartEdgeOptions): Promise<EdgeApi> {
  return Edge.start(config, opts);
}
