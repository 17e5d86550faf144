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
import { PublicAddressManager } from './nat/public_address.js';
import { KeepaliveScheduler, buildKeepaliveOptions, type OptionsResult } from './nat/keepalive.js';
import { probeWithOptions } from './nat/keepalive_options.js';
import { stunBindingResponse } from './stun/responder.js';
import type { Binding } from './store/types.js';
import type { Destination } from './transport/types.js';
import { formatHostPort } from './sip/uri.js';
import { createMediaControl, type MediaControl } from './media/index.js';
import { MediaSessions } from './proxy/media_session.js';
import { FlowTokenCodec } from './proxy/flowtoken.js';
import { loadFlowTokenSecret } from './proxy/flowtoken_secret.js';
import { createHookRunner } from './hooks/edge.js';
import type { EdgeHooks } from './hooks/types.js';
import type { EdgeCluster } from './cluster/types.js';
import { ownedBindingsView } from './cluster/keepalive.js';
import { workerPortSlice } from './transport/dispatch.js';
import { OverloadDetector } from './lib/overload.js';

/** Options of {@link startEdge}. */
export interface StartEdgeOptions {
  logger: Logger;
  /** Path of the config file, for `reload`. */
  configPath?: string;
  metrics?: SipedgeMetrics;
  /** Time source; the system clock by default. */
  clock?: Clock;
  /** User hooks (src/hooks), run after those of the config's `hooks:` module. */
  hooks?: EdgeHooks | EdgeHooks[];
  /** This process is one of several SIP workers (`workers:` > 1, src/cluster/). */
  cluster?: EdgeCluster;
}

/** The destination of a binding's received flow (where a NATed UA is reachable). */
function receivedDest(b: Binding): Destination {
  const r = b.received;
  return { transport: r.transport, address: r.address, port: r.port, socketId: r.socketId, connectionId: r.connectionId };
}

/**
 * Qualify: one OPTIONS to a binding's received flow (RFC 3261 §11); any final response counts
 * as alive, a timeout (Timer F) or transport error as a miss.
 */
function sendKeepaliveOptions(b: Binding, proxy: Proxy, layer: TransactionLayer, cluster?: EdgeCluster): Promise<OptionsResult> {
  const local = proxy.localAddressFor(b.received.socketId, b.received.address);
  if (!local) return Promise.resolve({ answered: false });
  const req = buildKeepaliveOptions(b, { ...local, transport: b.received.transport });
  // Several workers: a Call-ID this worker owns, so the response is dispatched back here.
  const cid = cluster === undefined ? undefined : req.headers.find((h) => h.key === 'call-id');
  if (cid !== undefined) cid.value = cluster!.callId(cid.value.includes('@') ? cid.value.slice(cid.value.indexOf('@') + 1) : undefined);
  return probeWithOptions(layer, req, receivedDest(b)).then((r) => (r.answered ? { answered: true, status: r.status } : { answered: false }));
}

/** Interval of the expired-binding purge, ms. */
const PURGE_INTERVAL_MS = 30_000;

/** The inside/outside inputs: the current public address (fixed or discovered) and localnet. */
function advertiseContext(config: SipedgeConfig, publicAddress: string | undefined): AdvertiseContext {
  return { publicAddress, localnet: parseCidrs(config.localnet) };
}

/**
 * The running edge. Owns the store, the sockets and every timer; {@link Edge.close} releases them.
 */
export class Edge implements EdgeApi {
  private purgeTimer?: TimerHandle;
  private closed = false;
  private readonly startedAt: number;

  /** The effective configuration (replaced on reload). */
  config: SipedgeConfig;
  /** The media engine (media.engine) and the proxy's offer/answer + dialog hooks; set by start(). */
  media?: MediaControl;
  sessions?: MediaSessions;
  /** The overload detector (config `overload`); undefined when `maxLoopDelay` is 0. Applies from start (not reloaded). */
  overload?: OverloadDetector;

  private constructor(
    config: SipedgeConfig,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly store: LocationStore,
    readonly transport: TransportLayer,
    readonly transactions: TransactionLayer,
    readonly proxy: Proxy,
    readonly registrar: Registrar,
    readonly publicAddress: PublicAddressManager,
    readonly keepalive: KeepaliveScheduler,
    private readonly configPath?: string,
  ) {
    this.config = config;
    this.startedAt = clock.wallNow();
  }

  /** Builds and starts every unit; rejects (after releasing what was opened) when a socket cannot be bound. */
  static async start(config: SipedgeConfig, opts: StartEdgeOptions): Promise<Edge> {
    const clock = opts.clock ?? new SystemClock();
    const log = opts.logger;
    // User hooks first: a hooks module that cannot be loaded stops the start before anything is opened.
    const userHooks = await createHookRunner(config, opts.hooks, clock, log);
    const metrics = opts.metrics;
    // Public address first (externip / externhost / cloud metadata / STUN): it never rejects;
    // when every method fails it logs loudly and keeps retrying while we advertise the private one.
    const publicAddress = new PublicAddressManager({ config: config.publicAddress, clock, logger: log });
    await publicAddress.start();
    const store = await openLocationStore(config.store, { logger: log });
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
        // RFC 5626 outbound UAs are asked to keep their flow alive as often as we ping it.
        flowTimer: config.nat.keepalive.interval > 0 ? config.nat.keepalive.interval : undefined,
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
      udpDispatch: opts.cluster?.dispatch,
      events: {
        onMessage: (inbound) => {
          metrics?.sipMessagesReceived.inc({ kind: inbound.message.type === 'request' ? messageKind(inbound.message.method) : 'response' });
          late.layer?.receive(inbound);
        },
        // RFC 5626 §4.4.2 / RFC 8489: a STUN Binding responder on every UDP SIP socket
        // (first-byte demux), so UAs can keep their NAT binding and learn their mapped address.
        onNonSip: (data, flow) => stunBindingResponse(data, flow.remote, { software: 'sipedge' }),
        onParseError: (err, flow) => {
          metrics?.sipParseErrors.inc({ code: err.code });
          log.debug({ code: err.code, detail: err.detail, from: formatHostPort(flow.remote.address, flow.remote.port) }, 'malformed SIP message');
        },
      },
    });
    // Load shedding (overload.maxLoopDelay ms of smoothed event-loop lag; 0 = off): 503 + Retry-After.
    const overload = config.overload.maxLoopDelay > 0 ? new OverloadDetector({ clock, maxLoopDelayMs: config.overload.maxLoopDelay, logger: log }) : undefined;
    const proxy = new Proxy({
      clock,
      overload: overload ? { state: overload, retryAfter: config.overload.retryAfter } : undefined,
      transport,
      registrar,
      auth,
      users: new Set(config.users.map((u) => u.username)),
      settings: {
        domains: config.registrar.domains,
        aliases: config.aliases,
        recordRoute: config.proxy.recordRoute,
        natClients: config.nat.clients,
        rewriteContact: config.nat.rewriteContact,
        timerCMs: 181_000,
      },
      advertise: advertiseContext(config, publicAddress.address),
      // Flow tokens in our Record-Route survive a restart when the secret sits next to the SQLite file.
      // Nodes sharing a Redis store share the flow-token key, so any node can route a dialog.
      flowTokens: new FlowTokenCodec(store.sharedSecret !== undefined ? await store.sharedSecret('flowtoken') : loadFlowTokenSecret(config.store, log).secret),
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
      await publicAddress.close();
      throw err;
    }
    proxy.attach(layer);
    proxy.userHooks = userHooks;
    overload?.start();
    if (metrics) proxy.onOverloadRejected = () => metrics.sipOverloadRejected.inc();
    // Media relay (in-process or rtpengine) driven by the proxy's offer/answer hooks (proxy/media_session.ts).
    const mediaRef: { edge?: Edge } = {};
    const media = createMediaControl(config.media.engine, {
      clock,
      logger: log,
      // Several workers: each relays on its own slice of media.ports.
      ports: opts.cluster ? workerPortSlice(config.media.ports, opts.cluster.index, opts.cluster.count) : config.media.ports,
      bindAddress: config.media.address,
      timeoutSec: config.media.timeout,
      strictSource: config.media.strictSource,
      workers: config.media.workers,
      onTimeout: (callId, info) => sessions.onMediaTimeout(callId, info),
    });
    const sessions = new MediaSessions({
      media,
      clock,
      logger: log,
      settings: () => mediaRef.edge?.config ?? config,
      advertise: () => advertiseContext(mediaRef.edge?.config ?? config, publicAddress.address),
      sockets: () => transport.sockets().map((s) => ({ id: s.id, transport: s.transport, address: s.address, port: s.boundPort, advertised: s.advertised })),
      sendRequest: (req, dest, handler) => void layer.sendRequest(req, dest, handler),
      stats: proxy.stats,
    });
    proxy.hooks = sessions;
    const keepalive = new KeepaliveScheduler({
      clock,
      // Several workers: each pings only the bindings of the AORs it owns.
      store: opts.cluster ? ownedBindingsView(store, (aor) => opts.cluster!.ownsAor(aor)) : store,
      settings: config.nat.keepalive,
      logger: log,
      send: {
        options: (b) => sendKeepaliveOptions(b, proxy, layer, opts.cluster),
        crlf: (b) => transport.sendRaw(Buffer.from('\r\n\r\n'), receivedDest(b)).ok,
      },
      onChange: (aor, contact, state) => log.info({ aor, contact, reachable: state }, 'peer reachability changed'),
    });
    const trackAor = (aor: string): void => {
      registrar
        .lookup(aor)
        .then((bindings) => keepalive.setAor(aor, bindings))
        .catch((err: unknown) => log.warn({ err, aor }, 'keepalive update failed'));
    };
    // The registrar hands over each REGISTER's result, so no store read is needed. Several
    // workers: an AOR owned by another worker is announced to it, which re-reads the shared store.
    const cl = opts.cluster;
    if (cl) registrar.onBindings = (aor, bindings) => (cl.ownsAor(aor) ? keepalive.setAor(aor, bindings) : cl.aorChanged(aor));
    else registrar.onBindings = (aor, bindings) => keepalive.setAor(aor, bindings);
    await keepalive.start();
    const edge = new Edge(config, clock, log, store, transport, layer, proxy, registrar, publicAddress, keepalive, opts.configPath);
    mediaRef.edge = edge;
    edge.media = media;
    edge.sessions = sessions;
    edge.overload = overload;
    // A new public address applies to new transactions and media sessions; nothing is dropped.
    publicAddress.onChange((next, prev, source) => {
      log.warn({ next, prev, source }, 'public address changed');
      proxy.refreshSockets(advertiseContext(edge.config, next));
    });
    edge.schedulePurge();
    opts.cluster?.attach({ inject: (id, data, address, port) => transport.injectDatagram(id, data, address, port), trackAor });
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
    const pub = this.publicAddress.current();
    const advertised = pub.address;
    return {
      sockets: this.transport.sockets().map((s) => ({
        id: s.id,
        transport: s.transport,
        bind: formatHostPort(s.address, s.boundPort),
        // What peers outside localnet see: the socket's `as`, else the public address, else the bound one.
        advertised: s.advertised
          ? formatHostPort(s.advertised.host, s.advertised.port)
          : advertised
            ? formatHostPort(advertised, s.boundPort)
            : formatHostPort(s.address, s.boundPort),
      })),
      publicAddress: {
        address: advertised ?? null,
        source: pub.source,
        mode: pub.mode,
        lastRefresh: pub.lastRefresh ?? null,
        nextRefresh: pub.nextRefresh ?? null,
        refresh: c.publicAddress.refresh,
        failing: pub.failing,
        warning: pub.warning ?? (pub.failing ? 'public address unknown: ADVERTISING PRIVATE ADDRESS' : null),
        lastError: pub.lastError ?? null,
        changes: pub.changes,
      },
      aliases: c.aliases,
      hooks: c.hooks?.module ?? null,
      localnet: c.localnet,
      nat: c.nat,
      media: { relay: c.media.relay, ports: `${c.media.ports.low}-${c.media.ports.high}`, advertise: c.media.advertise ?? advertised ?? null },
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
      .map((b) => {
        const ka = this.keepalive.statusOf(b);
        return {
        aor: b.aor,
        contact: b.contact,
        received: formatHostPort(b.received.address, b.received.port),
        transport: b.received.transport,
        socket: b.received.socketId,
        nat: b.nat,
        natTests: b.natTests ?? [],
        expires: Math.max(0, Math.round((b.expiresAt - now) / 1000)),
        q: b.q,
        reachable: ka?.reachable ?? ('unknown' as const),
        rttMs: ka?.rttMs,
        userAgent: b.userAgent,
      };
      });
  }

  /** Active calls with per-leg media addresses and counters (`show calls`, GET /api/calls). */
  async calls(): Promise<CallRow[]> {
    return this.sessions ? this.sessions.rows() : [];
  }

  async reload(): Promise<{ ok: boolean; errors?: string[] }> {
    if (!this.configPath) return { ok: false, errors: ['no config file to reload'] };
    const r = await loadConfig(this.configPath);
    if (!r.ok) return { ok: false, errors: r.errors.map((e) => `${e.path}: ${e.message}`) };
    this.config = r.config;
    // Re-discover the public address (the onChange listener applies a change); then apply localnet.
    await this.publicAddress.refresh(r.config.publicAddress);
    this.proxy.refreshSockets(advertiseContext(r.config, this.publicAddress.address));
    await this.keepalive.updateSettings(r.config.nat.keepalive);
    this.log.info({ configPath: this.configPath }, 'configuration reloaded');
    return { ok: true };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.clock.clearTimer(this.purgeTimer);
    this.overload?.close();
    this.keepalive.close();
    this.sessions?.close();
    this.proxy.close();
    this.transactions.close();
    await this.transport.close();
    await this.media?.close();
    await this.store.close();
    await this.publicAddress.close();
  }
}

/** Entry point used by `sipedge start`. */
export async function startEdge(config: SipedgeConfig, opts: StartEdgeOptions): Promise<EdgeApi> {
  return Edge.start(config, opts);
}
