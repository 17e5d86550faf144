/**
 * Keepalives — qualify / NAT pinging. Registered contacts behind NAT are pinged every
 * `interval` seconds so their NAT binding (pinhole) stays open and so we know whether each is
 * reachable and how far away it is (RTT), as Asterisk's `qualify` and Kamailio's nathelper
 * NAT pinging do.
 *
 * Scheduling is a wheel: the interval is cut into slots of `tickMs` (default 100 ms); each
 * binding gets a slot from a least-loaded allocator (see `keepalive_wheel.ts`), and a tick
 * sends only the bindings of the slot that is due — O(due bindings) per tick, no store scan.
 * A slot holding more than {@link MAX_BURST} bindings is not sent at once: its probes are paced
 * in bursts of about {@link MAX_BURST} spread over the slot (at most one burst per
 * {@link MIN_BURST_GAP_MS}), so 100k bindings at 30 s leave as a smooth ~3,300/s rather than
 * 333 every 100 ms — a burst of answers that would overflow the socket's receive buffer.
 * The binding set lives in memory; the edge keeps it current with {@link KeepaliveScheduler.upsert},
 * {@link KeepaliveScheduler.remove} and {@link KeepaliveScheduler.setAor} after each REGISTER, and
 * {@link KeepaliveScheduler.refresh} reloads it from the store (at start and every `refreshMs`).
 *
 * Sending is injected (`send`), so this unit is pure scheduling logic; the edge sends the OPTIONS
 * built by {@link buildKeepaliveOptions} through a client transaction, and CRLF through the
 * transport to the binding's received flow.
 */
import type { Clock, TimerHandle } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { Binding, LocationStore } from '../store/types.js';
import { SlotAllocator } from './keepalive_wheel.js';

export { buildKeepaliveOptions, type KeepaliveLocal } from './keepalive_options.js';

/** The `nat.keepalive` settings. */
export interface KeepaliveSettings {
  /** `options`: SIP OPTIONS (any response = alive, gives RTT); `crlf` / `stun`: fire-and-forget packets. */
  method: 'options' | 'crlf' | 'stun';
  /** Seconds between keepalives per binding; 0 disables keepalives. */
  interval: number;
  /** Ping every binding, not only those detected as NATed. */
  all: boolean;
  /** Consecutive missed answers before a binding is marked unreachable (values < 1 count as 1). */
  maxMissed: number;
  /** Remove a binding from the location store when it becomes unreachable. */
  removeDead: boolean;
}

/** Outcome of one OPTIONS probe. */
export interface OptionsResult {
  /** True when any response arrived (any status counts as alive). */
  answered: boolean;
  /** Final (or first) status received, when answered. */
  status?: number;
}

/** How keepalives leave the process; the edge implements it over the transaction / transport layers. */
export interface KeepaliveSend {
  /** Sends an OPTIONS to the binding's received flow; resolves on a response, transaction timeout or transport error. */
  options(binding: Binding): Promise<OptionsResult>;
  /** Sends a CRLF keepalive to the binding's received flow; false when it could not be sent (e.g. TCP connection gone). */
  crlf(binding: Binding): boolean;
  /** Sends a STUN keepalive (method `stun`); falls back to `crlf` when absent. */
  stun?(binding: Binding): boolean;
}

/** Reachability of a binding: `unknown` until the first answer or until `maxMissed` misses. */
export type Reachability = 'yes' | 'no' | 'unknown';

/** Keepalive state of one binding (for `show peers` and the admin API). */
export interface KeepaliveStatus {
  aor: string;
  contact: string;
  instanceId?: string;
  regId?: number;
  reachable: Reachability;
  /** Round-trip time of the last answered probe, ms (OPTIONS, or a CRLF pong when observed). */
  rttMs?: number;
  /** Consecutive missed answers. */
  missed: number;
  /** Unix epoch ms of the last probe sent. */
  lastSentAt?: number;
  /** Unix epoch ms of the last answer. */
  lastAnsweredAt?: number;
  /** SIP status of the last answered OPTIONS. */
  lastStatus?: number;
}

/** Counters since start (metrics). */
export interface KeepaliveCounters {
  /** Probes sent (OPTIONS started, CRLF/STUN packets handed to the transport). */
  sent: number;
  /** Probes answered (OPTIONS responses, CRLF pongs to an outstanding ping). */
  answered: number;
  /** Probes missed (OPTIONS timeouts/transport errors, CRLF/STUN send failures, CRLF pongs that never came once a flow has ponged). */
  missed: number;
  /** Bindings removed from the store because they were unreachable (`removeDead`). */
  removed: number;
}

/** Constructor options of {@link KeepaliveScheduler}. */
export interface KeepaliveOptions {
  clock: Clock;
  store: LocationStore;
  settings: KeepaliveSettings;
  send: KeepaliveSend;
  logger?: Logger;
  /** Called on every reachability change of a binding. */
  onChange?(aor: string, contact: string, state: Reachability, status: KeepaliveStatus): void;
  /** Wheel slot length, ms (default {@link DEFAULT_TICK_MS}); the wheel has at most {@link MAX_SLOTS} slots. */
  tickMs?: number;
  /** Reload the binding set from the store every this many ms; 0 = only at `start()` (default {@link DEFAULT_REFRESH_MS}). */
  refreshMs?: number;
}

/** Default wheel slot length, ms. */
export const DEFAULT_TICK_MS = 100;
/** Upper bound on wheel slots; long intervals get longer slots. */
export const MAX_SLOTS = 3600;
/** Default period of the full reload from the store, ms. */
export const DEFAULT_REFRESH_MS = 300_000;
/** Bindings read and applied per step of a reload from the store; the event loop runs between steps. */
export const REFRESH_PAGE = 1000;
/** Most OPTIONS probes outstanding per binding; a due probe beyond it is skipped. */
export const MAX_IN_FLIGHT = 4;
/** Most probes sent back to back; a slot with more is paced in bursts over the slot's length. */
export const MAX_BURST = 16;
/** Shortest gap between two paced bursts, ms (bursts grow past {@link MAX_BURST} rather than come faster). */
export const MIN_BURST_GAP_MS = 2;

/** Key of a flow for {@link KeepaliveScheduler.pong}: `transport:address:port` of the UA's side. */
export function keepaliveFlowKey(flow: { transport: string; address: string; port: number }): string {
  return flow.transport + ':' + flow.address + ':' + flow.port;
}

/** Identity of a binding: AOR, Contact, and the RFC 5626 flow (instance, reg-id) that may repeat a Contact. */
function bindingKey(b: Binding): string {
  return b.aor + '\u0000' + b.contact + '\u0000' + (b.instanceId ?? '') + '\u0000' + (b.regId ?? '');
}

function sameFlow(a: Binding, b: Binding): boolean {
  const x = a.received;
  const y = b.received;
  return x.transport === y.transport && x.address === y.address && x.port === y.port && x.socketId === y.socketId && x.connectionId === y.connectionId;
}

interface Entry {
  key: string;
  binding: Binding;
  flowKey: string;
  slot: number;
  /** Refresh epoch of the last write (see `refresh`). */
  touched: number;
  reachable: Reachability;
  rttMs?: number;
  missed: number;
  lastSentAt?: number;
  lastAnsweredAt?: number;
  lastStatus?: number;
  /** Sequence number of the last probe sent, and of the newest one answered. */
  seq: number;
  answeredSeq: number;
  inFlight: number;
  /** CRLF/STUN: monotonic time of the last ping, whether its pong is outstanding, whether this flow ever ponged. */
  pingMono: number;
  awaitingPong: boolean;
  pongSeen: boolean;
  removing: boolean;
  /** Waiting in the paced send queue. */
  queued: boolean;
}

/**
 * Sends keepalives to registered bindings, spread evenly over the interval, and tracks their
 * reachability. Owns its timers (through the injected clock); `close()` stops them.
 */
export class KeepaliveScheduler {
  /** Counters since start. */
  readonly counters: KeepaliveCounters = { sent: 0, answered: 0, missed: 0, removed: 0 };
  private readonly clock: Clock;
  private readonly store: LocationStore;
  private readonly send: KeepaliveSend;
  private readonly log?: Logger;
  private readonly onChange?: KeepaliveOptions['onChange'];
  private readonly tickMs: number;
  private readonly refreshMs: number;
  private settings: KeepaliveSettings;

  private readonly entries = new Map<string, Entry>();
  /** Small arrays rather than Sets: most AORs and flows have one binding, and 100k Sets cost memory and GC. */
  private readonly byAor = new Map<string, Entry[]>();
  private readonly byFlow = new Map<string, Entry[]>();
  private slots: Array<Set<Entry> | undefined> = [];
  private alloc: SlotAllocator | undefined;
  private slotMs = 0;

  private started = false;
  private closed = false;
  private tickTimer: TimerHandle | undefined;
  private refreshTimer: TimerHandle | undefined;
  /** Paced sending: probes due but not sent yet (from `queueHead` on), the next burst's timer and size. */
  private queue: Entry[] = [];
  private queueHead = 0;
  private burstTimer: TimerHandle | undefined;
  private burstSize = MAX_BURST;
  private burstGapMs = MIN_BURST_GAP_MS;
  /** Wheel position: the slot fired at `wheelStart + ticks * slotMs`. */
  private cursor = 0;
  private ticks = 0;
  private wheelStart = 0;

  /** Refresh bookkeeping: epochs order hook writes against store loads. */
  private epoch = 0;
  private refreshGen = 0;
  private refreshesPending = 0;
  /** While a load runs: epoch of hook removals, by `a<aor>` (setAor) and `c<aor>\0<contact>` (remove). */
  private readonly hookAt = new Map<string, number>();

  constructor(opts: KeepaliveOptions) {
    this.clock = opts.clock;
    this.store = opts.store;
    this.send = opts.send;
    this.log = opts.logger;
    this.onChange = opts.onChange;
    this.tickMs = opts.tickMs !== undefined && opts.tickMs > 0 ? opts.tickMs : DEFAULT_TICK_MS;
    this.refreshMs = opts.refreshMs ?? DEFAULT_REFRESH_MS;
    this.settings = { ...opts.settings };
    this.buildWheel();
  }

  /** Whether keepalives are on (`interval` > 0). */
  get enabled(): boolean {
    return this.settings.interval > 0;
  }

  /** Number of bindings being pinged. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Starts the wheel and loads the binding set from the store. Resolves when the first load
   * is done (a store error is logged and does not reject). No-op when disabled or closed.
   */
  async start(): Promise<void> {
    if (this.started || this.closed) return;
    this.started = true;
    if (!this.enabled) return;
    this.startTimers();
    await this.refresh();
  }

  /** Stops every timer and forgets all state; probes still outstanding are ignored when they settle. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopTimers();
    this.entries.clear();
    this.byAor.clear();
    this.byFlow.clear();
    this.slots = [];
    this.alloc = undefined;
  }

  /**
   * Applies new settings (reload). A changed `interval` or `all` rebuilds the wheel (keeping each
   * binding's state) and reloads from the store to pick up bindings that became eligible.
   */
  async updateSettings(settings: KeepaliveSettings): Promise<void> {
    if (this.closed) return;
    const old = this.settings;
    this.settings = { ...settings };
    if (old.interval === settings.interval && old.all === settings.all) return;
    this.stopTimers();
    const keep = [...this.entries.values()];
    this.entries.clear();
    this.byAor.clear();
    this.byFlow.clear();
    this.buildWheel();
    if (!this.enabled) return;
    for (const e of keep) if (this.eligible(e.binding)) this.attach(e);
    if (this.started) {
      this.startTimers();
      await this.refresh();
    }
  }

  /** Adds or updates one binding (call after a successful REGISTER). Ineligible or expired bindings are dropped. */
  upsert(binding: Binding): void {
    if (this.closed || !this.enabled) return;
    this.write(binding, this.epoch);
  }

  /** Stops pinging every binding of `aor` with this Contact (after a de-registration). */
  remove(aor: string, contact: string): void {
    if (this.refreshesPending > 0) this.hookAt.set('c' + aor + '\u0000' + contact, this.epoch);
    const list = this.byAor.get(aor);
    if (list === undefined) return;
    for (const e of list.slice()) if (e.binding.contact === contact) this.dropByHook(e);
  }

  /** Replaces the tracked bindings of an AOR with its whole current binding set (the REGISTER result). */
  setAor(aor: string, bindings: Binding[]): void {
    if (this.closed || !this.enabled) return;
    if (this.refreshesPending > 0) this.hookAt.set('a' + aor, this.epoch);
    const keys = new Set<string>();
    for (const b of bindings) if (b.aor === aor) keys.add(bindingKey(b));
    const list = this.byAor.get(aor);
    if (list !== undefined) for (const e of list.slice()) if (!keys.has(e.key)) this.dropByHook(e);
    for (const b of bindings) if (b.aor === aor) this.write(b, this.epoch);
  }

  /**
   * A CRLF pong (or any keepalive) arrived on a flow (see {@link keepaliveFlowKey}): the
   * bindings on that flow are alive; an outstanding CRLF/STUN ping gets its RTT.
   */
  pong(flowKey: string): void {
    const list = this.byFlow.get(flowKey);
    if (list === undefined) return;
    const now = this.clock.now();
    for (const e of list.slice()) {
      if (!this.isCurrent(e)) continue;
      e.pongSeen = true;
      if (e.awaitingPong) {
        e.awaitingPong = false;
        this.counters.answered++;
        this.answered(e, now - e.pingMono, undefined);
      } else this.answered(e, undefined, undefined);
    }
  }

  /** Keepalive state of the first tracked binding of `aor` with this Contact. */
  status(aor: string, contact: string): KeepaliveStatus | undefined {
    const list = this.byAor.get(aor);
    if (list === undefined) return undefined;
    for (const e of list) if (e.binding.contact === contact) return statusOf(e);
    return undefined;
  }

  /** Keepalive state of exactly this binding (same AOR, Contact, instance and reg-id). */
  statusOf(binding: Binding): KeepaliveStatus | undefined {
    const e = this.entries.get(bindingKey(binding));
    return e === undefined ? undefined : statusOf(e);
  }

  /** Keepalive state of every tracked binding. */
  snapshot(): KeepaliveStatus[] {
    const out: KeepaliveStatus[] = [];
    for (const e of this.entries.values()) out.push(statusOf(e));
    return out;
  }

  /**
   * Reloads the binding set from the store: adds new eligible bindings, updates changed ones,
   * drops ones no longer stored. Hook writes made while the load runs win over it. Incremental:
   * bindings are read ({@link LocationStore.scanBindings} when the store has it, else one
   * `allBindings()`) and applied {@link REFRESH_PAGE} at a time, yielding to the event loop
   * between pages, so a reload of 100k bindings never stalls SIP traffic for long. A refresh
   * started while another runs supersedes it.
   */
  async refresh(): Promise<void> {
    if (this.closed || !this.enabled) return;
    const gen = ++this.refreshGen;
    const startEpoch = ++this.epoch;
    this.refreshesPending++;
    const seen = new Set<string>();
    try {
      if (this.store.scanBindings !== undefined) {
        for await (const page of this.store.scanBindings(REFRESH_PAGE)) {
          if (this.refreshStale(gen)) return;
          this.applyLoaded(page, 0, page.length, seen, startEpoch);
        }
      } else {
        const loaded = await this.store.allBindings();
        for (let i = 0; i < loaded.length; i += REFRESH_PAGE) {
          if (this.refreshStale(gen)) return;
          if (i > 0) await yieldToEventLoop();
          if (this.refreshStale(gen)) return;
          this.applyLoaded(loaded, i, Math.min(loaded.length, i + REFRESH_PAGE), seen, startEpoch);
        }
      }
      if (this.refreshStale(gen)) return;
      // Bindings no longer stored (and not written by a hook since the load began) are dropped.
      for (const e of this.entries.values()) {
        if (e.touched < startEpoch && !seen.has(e.key)) this.detach(e);
      }
    } catch (err) {
      this.log?.warn({ err }, 'keepalive: loading bindings from the store failed');
    } finally {
      this.refreshDone();
    }
  }

  // ---- internals -------------------------------------------------------------------------

  private refreshDone(): void {
    if (--this.refreshesPending === 0) this.hookAt.clear();
  }

  /** Whether the reload `gen` must stop: closed, disabled, or superseded by a newer reload. */
  private refreshStale(gen: number): boolean {
    return this.closed || !this.enabled || gen !== this.refreshGen;
  }

  /** Applies `list[from, to)` of a reload that began at `startEpoch`; records each binding's key in `seen`. */
  private applyLoaded(list: Binding[], from: number, to: number, seen: Set<string>, startEpoch: number): void {
    for (let i = from; i < to; i++) {
      const b = list[i];
      const key = bindingKey(b);
      seen.add(key);
      if (this.hookAt.size > 0 && this.hookNewer(b, startEpoch)) continue;
      const e = this.entries.get(key);
      if (e !== undefined && e.touched >= startEpoch) continue;
      this.write(b, startEpoch - 1);
    }
  }

  /** Whether a hook changed this binding's AOR or Contact after the load with `startEpoch` began. */
  private hookNewer(b: Binding, startEpoch: number): boolean {
    const a = this.hookAt.get('a' + b.aor);
    if (a !== undefined && a >= startEpoch) return true;
    const c = this.hookAt.get('c' + b.aor + '\u0000' + b.contact);
    return c !== undefined && c >= startEpoch;
  }

  private eligible(b: Binding): boolean {
    return (this.settings.all || b.nat) && b.expiresAt > this.clock.wallNow();
  }

  private buildWheel(): void {
    this.slots = [];
    this.alloc = undefined;
    if (!this.enabled) return;
    const intervalMs = this.settings.interval * 1000;
    const n = Math.min(MAX_SLOTS, Math.max(1, Math.round(intervalMs / this.tickMs)));
    this.alloc = new SlotAllocator(n);
    this.slots = new Array<Set<Entry> | undefined>(n);
    this.slotMs = intervalMs / n;
  }

  private startTimers(): void {
    this.cursor = 0;
    this.ticks = 0;
    this.wheelStart = this.clock.now();
    this.tickTimer = this.clock.setTimer(this.slotMs, () => this.onTick());
    if (this.refreshMs > 0) this.refreshTimer = this.clock.setTimer(this.refreshMs, () => this.onRefreshTimer());
  }

  private stopTimers(): void {
    this.clock.clearTimer(this.tickTimer);
    this.clock.clearTimer(this.refreshTimer);
    this.clock.clearTimer(this.burstTimer);
    this.tickTimer = undefined;
    this.refreshTimer = undefined;
    this.burstTimer = undefined;
    for (let i = this.queueHead; i < this.queue.length; i++) this.queue[i].queued = false;
    this.queue = [];
    this.queueHead = 0;
  }

  private onRefreshTimer(): void {
    this.refreshTimer = undefined;
    if (this.closed) return;
    this.refreshTimer = this.clock.setTimer(this.refreshMs, () => this.onRefreshTimer());
    void this.refresh();
  }

  /** Fires every slot that has come due (catching up after a stalled event loop, at most one turn). */
  private onTick(): void {
    this.tickTimer = undefined;
    if (this.closed || this.alloc === undefined) return;
    const n = this.alloc.size;
    const now = this.clock.now();
    let fired = 0;
    while (this.wheelStart + (this.ticks + 1) * this.slotMs <= now + 1e-6 && fired < n) {
      this.ticks++;
      this.fireSlot(this.cursor);
      this.cursor = (this.cursor + 1) % n;
      fired++;
    }
    if (this.wheelStart + (this.ticks + 1) * this.slotMs <= now) {
      // More than a whole interval behind: skip ahead rather than burst.
      this.wheelStart = now - this.ticks * this.slotMs;
    }
    if (this.closed) return;
    const next = this.wheelStart + (this.ticks + 1) * this.slotMs;
    this.tickTimer = this.clock.setTimer(Math.max(0, next - now), () => this.onTick());
  }

  private fireSlot(slot: number): void {
    const set = this.slots[slot];
    if (set === undefined || set.size === 0) return;
    if (set.size <= MAX_BURST && this.queueHead === this.queue.length) {
      // A small slot and nothing paced: send at once.
      const wall = this.clock.wallNow();
      const mono = this.clock.now();
      for (const e of set) {
        if (e.binding.expiresAt <= wall) {
          this.detach(e);
          continue;
        }
        this.probe(e, wall, mono);
        if (this.closed) return;
      }
      return;
    }
    // Pace: queue the slot, then send it (and anything still queued) in bursts over one slot length.
    for (const e of set) {
      if (e.queued) continue;
      e.queued = true;
      this.queue.push(e);
    }
    const pending = this.queue.length - this.queueHead;
    const bursts = Math.max(1, Math.min(Math.ceil(pending / MAX_BURST), Math.floor(this.slotMs / MIN_BURST_GAP_MS)));
    this.burstSize = Math.ceil(pending / bursts);
    this.burstGapMs = this.slotMs / bursts;
    if (this.burstTimer === undefined) this.sendBurst();
  }

  /** Sends the next paced burst from the queue and schedules the one after it. */
  private sendBurst(): void {
    this.burstTimer = undefined;
    if (this.closed) return;
    const q = this.queue;
    const end = Math.min(q.length, this.queueHead + this.burstSize);
    const wall = this.clock.wallNow();
    const mono = this.clock.now();
    while (this.queueHead < end) {
      const e = q[this.queueHead++];
      e.queued = false;
      // Removed, replaced or moved since it was queued: not this slot's probe any more.
      if (!this.isCurrent(e)) continue;
      if (e.binding.expiresAt <= wall) {
        this.detach(e);
        continue;
      }
      this.probe(e, wall, mono);
      if (this.closed) return;
    }
    if (this.queueHead >= q.length) {
      this.queue = [];
      this.queueHead = 0;
      return;
    }
    if (this.queueHead > 4096 && this.queueHead * 2 > q.length) {
      this.queue = q.slice(this.queueHead);
      this.queueHead = 0;
    }
    this.burstTimer = this.clock.setTimer(this.burstGapMs, () => this.sendBurst());
  }

  private probe(e: Entry, wall: number, mono: number): void {
    const method = this.settings.method;
    if (method === 'options') {
      if (e.inFlight >= MAX_IN_FLIGHT) return;
      const seq = ++e.seq;
      e.inFlight++;
      e.lastSentAt = wall;
      this.counters.sent++;
      let p: Promise<OptionsResult>;
      try {
        p = this.send.options(e.binding);
      } catch (err) {
        this.log?.debug({ err, aor: e.binding.aor, contact: e.binding.contact }, 'keepalive: OPTIONS send threw');
        p = Promise.resolve({ answered: false });
      }
      p.then(
        (r) => this.optionsSettled(e, seq, mono, r),
        (err: unknown) => {
          this.log?.debug({ err, aor: e.binding.aor, contact: e.binding.contact }, 'keepalive: OPTIONS failed');
          this.optionsSettled(e, seq, mono, { answered: false });
        },
      );
      return;
    }
    // crlf / stun: fire and forget. A ping whose pong never came counts as missed only on
    // flows that have ponged before (many UAs never answer a server's CRLF).
    if (e.awaitingPong && e.pongSeen) this.missedOne(e);
    if (!this.isCurrent(e)) return;
    let ok: boolean;
    try {
      ok = method === 'stun' && this.send.stun !== undefined ? this.send.stun(e.binding) : this.send.crlf(e.binding);
    } catch (err) {
      this.log?.debug({ err, aor: e.binding.aor, contact: e.binding.contact }, 'keepalive: send threw');
      ok = false;
    }
    e.lastSentAt = wall;
    if (!ok) {
      e.awaitingPong = false;
      this.missedOne(e);
      return;
    }
    this.counters.sent++;
    e.pingMono = mono;
    e.awaitingPong = true;
  }

  private optionsSettled(e: Entry, seq: number, sentMono: number, r: OptionsResult): void {
    if (!this.isCurrent(e)) return;
    e.inFlight--;
    if (r.answered) {
      this.counters.answered++;
      if (seq <= e.answeredSeq) return;
      e.answeredSeq = seq;
      this.answered(e, this.clock.now() - sentMono, r.status);
      return;
    }
    // A probe older than one already answered says nothing about the binding now.
    if (seq < e.answeredSeq) {
      this.counters.missed++;
      return;
    }
    this.missedOne(e);
  }

  private answered(e: Entry, rttMs: number | undefined, status: number | undefined): void {
    e.missed = 0;
    e.lastAnsweredAt = this.clock.wallNow();
    if (rttMs !== undefined) e.rttMs = Math.round(rttMs * 1000) / 1000;
    if (status !== undefined) e.lastStatus = status;
    if (e.reachable !== 'yes') {
      const was = e.reachable;
      e.reachable = 'yes';
      if (was === 'no') this.log?.info({ aor: e.binding.aor, contact: e.binding.contact, rttMs: e.rttMs }, 'keepalive: contact reachable again');
      this.changed(e);
    }
  }

  private missedOne(e: Entry): void {
    this.counters.missed++;
    e.missed++;
    if (e.missed < Math.max(1, this.settings.maxMissed)) return;
    if (e.reachable !== 'no') {
      e.reachable = 'no';
      const b = e.binding;
      this.log?.info(
        { aor: b.aor, contact: b.contact, received: keepaliveFlowKey(b.received), missed: e.missed },
        'keepalive: contact unreachable',
      );
      this.changed(e);
    }
    // Retried on every further miss (a store error, or a re-registration that went silent too).
    if (this.settings.removeDead && this.isCurrent(e)) void this.removeDead(e);
  }

  private changed(e: Entry): void {
    if (this.onChange === undefined) return;
    try {
      this.onChange(e.binding.aor, e.binding.contact, e.reachable, statusOf(e));
    } catch (err) {
      this.log?.warn({ err }, 'keepalive: onChange hook threw');
    }
  }

  /** Removes an unreachable binding from the store, unless it has been re-registered since. */
  private async removeDead(e: Entry): Promise<void> {
    if (e.removing) return;
    e.removing = true;
    const b = e.binding;
    let newer: Binding | undefined;
    let removed = false;
    try {
      const list = await this.store.getBindings(b.aor);
      const keep: Binding[] = [];
      for (const s of list) {
        if (bindingKey(s) !== e.key) keep.push(s);
        else if (s.updatedAt > b.updatedAt) {
          keep.push(s);
          newer = s;
        }
      }
      if (keep.length !== list.length) {
        await this.store.setBindings(b.aor, keep);
        removed = true;
      }
    } catch (err) {
      this.log?.warn({ err, aor: b.aor, contact: b.contact }, 'keepalive: removing unreachable binding failed');
      e.removing = false;
      return;
    }
    if (removed) {
      this.counters.removed++;
      this.log?.info({ aor: b.aor, contact: b.contact }, 'keepalive: unreachable binding removed');
    }
    e.removing = false;
    if (this.closed || !this.isCurrent(e)) return;
    // Re-registered meanwhile: keep pinging the new registration; else stop pinging.
    if (newer !== undefined) this.write(newer, e.touched);
    else this.dropByHook(e);
  }

  private isCurrent(e: Entry): boolean {
    return !this.closed && this.entries.get(e.key) === e;
  }

  /** Adds or updates a binding's entry; `touched` is the refresh epoch of the write. */
  private write(b: Binding, touched: number): void {
    const key = bindingKey(b);
    const e = this.entries.get(key);
    if (!this.eligible(b)) {
      if (e !== undefined) this.detach(e);
      return;
    }
    if (e !== undefined && sameFlow(e.binding, b)) {
      // A re-registration on the same flow earns another `maxMissed` probes before removal.
      if (b.updatedAt > e.binding.updatedAt) e.missed = 0;
      e.binding = b;
      e.touched = Math.max(e.touched, touched);
      return;
    }
    // New binding, or the same contact on a new flow: fresh state (the old flow's probes are ignored).
    const slot = e !== undefined ? e.slot : -1;
    if (e !== undefined) this.detach(e, true);
    this.attach(newEntry(key, b, touched), slot);
  }

  private attach(e: Entry, slot = -1): void {
    if (this.alloc === undefined) return;
    e.slot = slot >= 0 ? slot : this.alloc.acquire();
    this.entries.set(e.key, e);
    let s = this.slots[e.slot];
    if (s === undefined) {
      s = new Set();
      this.slots[e.slot] = s;
    }
    s.add(e);
    addTo(this.byAor, e.binding.aor, e);
    addTo(this.byFlow, e.flowKey, e);
  }

  /** Forgets an entry; `keepSlot` leaves its slot reserved for a replacement. */
  private detach(e: Entry, keepSlot = false): void {
    if (this.entries.get(e.key) !== e) return;
    this.entries.delete(e.key);
    this.slots[e.slot]?.delete(e);
    if (!keepSlot) this.alloc?.release(e.slot);
    deleteFrom(this.byAor, e.binding.aor, e);
    deleteFrom(this.byFlow, e.flowKey, e);
  }

  private dropByHook(e: Entry): void {
    if (this.refreshesPending > 0) this.hookAt.set('c' + e.binding.aor + '\u0000' + e.binding.contact, this.epoch);
    this.detach(e);
  }
}

/** Resolves on the next turn of the event loop, after pending I/O callbacks (not a timer: no clock needed). */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function newEntry(key: string, b: Binding, touched: number): Entry {
  return {
    key,
    binding: b,
    flowKey: keepaliveFlowKey(b.received),
    slot: -1,
    touched,
    reachable: 'unknown',
    missed: 0,
    seq: 0,
    answeredSeq: 0,
    inFlight: 0,
    pingMono: 0,
    awaitingPong: false,
    pongSeen: false,
    removing: false,
    queued: false,
  };
}

function statusOf(e: Entry): KeepaliveStatus {
  const b = e.binding;
  const s: KeepaliveStatus = { aor: b.aor, contact: b.contact, reachable: e.reachable, missed: e.missed };
  if (b.instanceId !== undefined) s.instanceId = b.instanceId;
  if (b.regId !== undefined) s.regId = b.regId;
  if (e.rttMs !== undefined) s.rttMs = e.rttMs;
  if (e.lastSentAt !== undefined) s.lastSentAt = e.lastSentAt;
  if (e.lastAnsweredAt !== undefined) s.lastAnsweredAt = e.lastAnsweredAt;
  if (e.lastStatus !== undefined) s.lastStatus = e.lastStatus;
  return s;
}

function addTo(m: Map<string, Entry[]>, k: string, e: Entry): void {
  const list = m.get(k);
  if (list === undefined) m.set(k, [e]);
  else list.push(e);
}

function deleteFrom(m: Map<string, Entry[]>, k: string, e: Entry): void {
  const list = m.get(k);
  if (list === undefined) return;
  const i = list.indexOf(e);
  if (i < 0) return;
  if (list.length === 1) m.delete(k);
  else list.splice(i, 1);
}
