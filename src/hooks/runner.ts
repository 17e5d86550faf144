/**
 * Runs the user hooks ({@link EdgeHooks}) for the proxy: builds the contexts, keeps the
 * per-transaction settings (advertised address, send socket) and applies them to the branch
 * targets, which the proxy then turns into Via / Record-Route and the socket it sends from.
 *
 * The proxy calls {@link HookRunner.onRequest} once per server transaction and
 * {@link HookRunner.beforeForward} once with every target of the transaction (all serial
 * groups). Both resolve to a rejection to send, or undefined to go on.
 */
import { isIP } from 'node:net';
import type { Clock, TimerHandle } from '../lib/clock.js';
import { silentLogger, type Logger } from '../lib/log.js';
import type { SipRequest } from '../sip/message.js';
import { getHeader, getHeaderValues } from '../sip/headers.js';
import { parseNameAddr } from '../sip/nameaddr.js';
import type { ServerTransaction } from '../transaction/types.js';
import type { Destination } from '../transport/types.js';
import {
  HOOK_NAMES,
  HookError,
  type EdgeHooks,
  type ForwardHookContext,
  type HookAddress,
  type HookContextBase,
  type HookName,
  type HookRequest,
  type HookSocket,
  type RequestHookContext,
} from './types.js';

/** Default limit on one hook call, ms. */
export const DEFAULT_HOOK_TIMEOUT_MS = 5000;

/** A branch target as the proxy holds it; the runner sets `advertised` and `dest.socketId`. */
export interface RunnerTarget {
  uri: string;
  dest: Destination;
  binding?: { aor: string };
  /** Per-branch advertised address (hooks): Via sent-by and outgoing Record-Route. */
  advertised?: { host: string; port?: number };
}

/** What the proxy does when a hook rejects the request (or fails). */
export interface HookRejection {
  status: number;
  reason: string;
}

/** Options of {@link HookRunner}. */
export interface HookRunnerOptions {
  clock: Clock;
  logger?: Logger;
  /** Limit on one hook call, ms (default 5000); a hook that takes longer fails the request with 500. */
  timeoutMs?: number;
}

/** Transaction-level settings made in onRequest. */
interface TxSettings {
  advertised?: { host: string; port?: number };
  socketId?: string;
}

const HOSTNAME_RE = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** Validates `setAdvertisedAddress` arguments; IPv6 is accepted with or without brackets. */
function checkAddress(host: unknown, port: unknown): { host: string; port?: number } {
  if (typeof host !== 'string') throw new HookError('SIPEDGE_HOOK_BAD_ADDRESS', `setAdvertisedAddress: host must be a string, got ${typeof host}`);
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (isIP(h) === 0 && !(HOSTNAME_RE.test(h) && !/^[0-9.]+$/.test(h))) {
    throw new HookError('SIPEDGE_HOOK_BAD_ADDRESS', `setAdvertisedAddress: "${host}" is not an IP address or host name`);
  }
  if (port !== undefined && !(Number.isInteger(port) && (port as number) >= 1 && (port as number) <= 65535)) {
    throw new HookError('SIPEDGE_HOOK_BAD_ADDRESS', `setAdvertisedAddress: port must be an integer 1-65535, got ${String(port)}`);
  }
  return port === undefined ? { host: h } : { host: h, port: port as number };
}

/** Whether a socket can send to a destination: same transport and IP family. */
function canReach(s: HookSocket, dest: HookAddress): boolean {
  return s.transport === dest.transport && s.address.includes(':') === dest.address.includes(':');
}

/** Checks a hooks object against the closed list of names; returns it typed. */
export function validateHooks(hooks: unknown, where: string): EdgeHooks {
  if (hooks === null || typeof hooks !== 'object') {
    throw new HookError('SIPEDGE_HOOK_INVALID', `${where}: hooks must be an object with ${HOOK_NAMES.join(' / ')}, got ${hooks === null ? 'null' : typeof hooks}`);
  }
  for (const [k, v] of Object.entries(hooks)) {
    if (!(HOOK_NAMES as readonly string[]).includes(k)) {
      throw new HookError('SIPEDGE_HOOK_INVALID', `${where}: unknown hook "${k}"; the hooks are ${HOOK_NAMES.join(', ')}`);
    }
    if (v !== undefined && typeof v !== 'function') throw new HookError('SIPEDGE_HOOK_INVALID', `${where}: hook "${k}" must be a function, got ${typeof v}`);
  }
  return hooks as EdgeHooks;
}

/** Thrown inside a context when the hook calls reject(); carries the answer. */
class Rejected {
  constructor(readonly rejection: HookRejection) {}
}

/** Runs the user hooks of the edge. */
export class HookRunner {
  private readonly hooks: EdgeHooks[];
  private readonly tx = new WeakMap<ServerTransaction, TxSettings>();
  /** Frozen copies of the proxy's socket lists (hooks must not change the proxy's own). */
  private readonly socketViews = new WeakMap<readonly HookSocket[], readonly HookSocket[]>();
  private readonly log: Logger;
  private readonly timeoutMs: number;
  /** Counters: hook calls, rejections, failures (throw / timeout). */
  readonly stats = { calls: 0, rejected: 0, failed: 0 };

  constructor(
    hooks: EdgeHooks[],
    private readonly opts: HookRunnerOptions,
  ) {
    this.hooks = hooks.map((h, i) => validateHooks(h, `hooks[${i}]`));
    this.log = (opts.logger ?? silentLogger).child({ unit: 'hooks' });
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_HOOK_TIMEOUT_MS;
  }

  /** Whether any hook of this name is registered. */
  has(name: HookName): boolean {
    return this.hooks.some((h) => typeof h[name] === 'function');
  }

  /**
   * Runs every `onRequest` hook for a new server transaction.
   * @param sockets our sockets (the proxy's view, bound ports resolved)
   */
  async onRequest(tx: ServerTransaction, sockets: readonly HookSocket[]): Promise<HookRejection | undefined> {
    if (!this.has('onRequest')) return undefined;
    const settings: TxSettings = {};
    this.tx.set(tx, settings);
    const ctx = this.baseContext(tx, sockets, settings, undefined);
    return this.runAll('onRequest', tx, (h) => h.onRequest?.(ctx as RequestHookContext));
  }

  /**
   * Applies the transaction's settings to every target, then runs `beforeForward` once per
   * target (in order). Sets `target.advertised` and `target.dest.socketId`.
   */
  async beforeForward(tx: ServerTransaction, targets: RunnerTarget[], sockets: readonly HookSocket[]): Promise<HookRejection | undefined> {
    const txs = this.tx.get(tx);
    const run = this.has('beforeForward');
    if (!txs && !run) return undefined;
    for (const t of targets) {
      const dest: HookAddress = { transport: t.dest.transport, address: t.dest.address, port: t.dest.port };
      const branch: TxSettings = {};
      if (txs?.advertised) branch.advertised = txs.advertised;
      if (txs?.socketId) {
        const s = sockets.find((x) => x.id === txs.socketId);
        if (s && canReach(s, dest)) branch.socketId = s.id;
        else this.log.warn({ socket: txs.socketId, destination: `${dest.transport}:${dest.address}:${dest.port}` }, 'forceSendSocket from onRequest ignored for a branch it cannot reach');
      }
      if (run) {
        const base = this.baseContext(tx, sockets, branch, dest);
        const ctx: ForwardHookContext = Object.assign(base, {
          target: { uri: t.uri, destination: dest, aor: t.binding?.aor },
          chosen: { advertised: txs?.advertised, socketId: txs?.socketId },
        });
        const r = await this.runAll('beforeForward', tx, (h) => h.beforeForward?.(ctx));
        if (r) return r;
      }
      if (branch.advertised) t.advertised = branch.advertised;
      if (branch.socketId && branch.socketId !== t.dest.socketId) {
        t.dest.socketId = branch.socketId;
        // A connection belongs to the socket that accepted it: a forced socket opens its own.
        if (t.dest.transport !== 'udp') delete t.dest.connectionId;
      }
    }
    return undefined;
  }

  private view(sockets: readonly HookSocket[]): readonly HookSocket[] {
    let v = this.socketViews.get(sockets);
    if (!v) {
      v = Object.freeze(sockets.map((s) => Object.freeze({ ...s, ...(s.advertised ? { advertised: Object.freeze({ ...s.advertised }) } : {}) })));
      this.socketViews.set(sockets, v);
    }
    return v;
  }

  private baseContext(tx: ServerTransaction, allSockets: readonly HookSocket[], settings: TxSettings, dest: HookAddress | undefined): HookContextBase {
    const sockets = this.view(allSockets);
    const req = tx.request;
    const flow = tx.inbound.flow;
    const socket = sockets.find((s) => s.id === flow.local.socketId) ?? {
      id: flow.local.socketId,
      transport: flow.transport,
      address: flow.local.address,
      port: flow.local.port,
    };
    const to = parseNameAddr(getHeader(req, 'to') ?? '');
    const log = this.log.child({ callId: getHeader(req, 'call-id') });
    return {
      request: requestView(req),
      source: { transport: flow.transport, address: flow.remote.address, port: flow.remote.port },
      socket,
      sockets,
      log,
      inDialog: to.ok && typeof to.value.params.tag === 'string',
      setAdvertisedAddress(host: string, port?: number) {
        settings.advertised = checkAddress(host, port);
      },
      forceSendSocket(socketId: string) {
        const s = sockets.find((x) => x.id === socketId || `${x.transport}:${x.address.includes(':') ? `[${x.address}]` : x.address}:${x.port}` === socketId);
        if (!s) throw new HookError('SIPEDGE_HOOK_UNKNOWN_SOCKET', `forceSendSocket: no socket "${socketId}"; the sockets are ${sockets.map((x) => x.id).join(', ')}`);
        if (dest && !canReach(s, dest)) {
          throw new HookError('SIPEDGE_HOOK_SOCKET_MISMATCH', `forceSendSocket: socket ${s.id} cannot send to ${dest.transport}:${dest.address}:${dest.port}`);
        }
        settings.socketId = s.id;
      },
      reject(status: number, reason?: string) {
        if (!Number.isInteger(status) || status < 300 || status > 699) {
          throw new HookError('SIPEDGE_HOOK_BAD_STATUS', `reject: status must be an integer 300-699, got ${String(status)}`);
        }
        throw new Rejected({ status, reason: reason ?? defaultReason(status) });
      },
    };
  }

  /** Runs one hook of every registered hooks object in order; the first rejection or failure stops. */
  private async runAll(name: HookName, tx: ServerTransaction, call: (h: EdgeHooks) => unknown): Promise<HookRejection | undefined> {
    for (const h of this.hooks) {
      if (typeof h[name] !== 'function') continue;
      this.stats.calls++;
      try {
        await this.withTimeout(name, () => call(h));
      } catch (err) {
        if (err instanceof Rejected) {
          this.stats.rejected++;
          return err.rejection;
        }
        this.stats.failed++;
        this.log.error({ err, hook: name, method: tx.request.method, callId: getHeader(tx.request, 'call-id') }, 'hook failed; request answered 500');
        return { status: 500, reason: 'Server Internal Error' };
      }
    }
    return undefined;
  }

  /** Calls `fn`; a returned promise is awaited for at most the hook timeout. */
  private withTimeout(name: HookName, fn: () => unknown): Promise<void> | void {
    const r = fn();
    if (!r || typeof (r as Promise<unknown>).then !== 'function') return;
    let timer: TimerHandle | undefined;
    return Promise.race([
      (r as Promise<unknown>).then(() => undefined),
      new Promise<void>((_, reject) => {
        timer = this.opts.clock.setTimer(this.timeoutMs, () => reject(new Error(`hook ${name} did not finish within ${this.timeoutMs} ms`)));
      }),
    ]).finally(() => this.opts.clock.clearTimer(timer));
  }
}

function requestView(req: SipRequest): HookRequest {
  return {
    method: req.method,
    uri: req.uri,
    header: (name) => getHeader(req, name),
    headerValues: (name) => getHeaderValues(req, name),
  };
}

function defaultReason(status: number): string {
  const reasons: Record<number, string> = {
    403: 'Forbidden',
    404: 'Not Found',
    480: 'Temporarily Unavailable',
    486: 'Busy Here',
    488: 'Not Acceptable Here',
    500: 'Server Internal Error',
    503: 'Service Unavailable',
    603: 'Decline',
  };
  return reasons[status] ?? 'Rejected';
}
