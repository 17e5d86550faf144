/**
 * KeepaliveScheduler: scheduling logic only, driven by a FakeClock and a scripted fake `send`
 * (the real network path is proven by the NAT lab e2e test).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../../src/lib/clock.js';
import type { Logger } from '../../src/lib/log.js';
import {
  KeepaliveScheduler,
  MAX_BURST,
  REFRESH_PAGE,
  keepaliveFlowKey,
  type KeepaliveOptions,
  type KeepaliveSend,
  type KeepaliveSettings,
  type OptionsResult,
  type Reachability,
} from '../../src/nat/keepalive.js';
import { SlotAllocator, bitReversalOrder } from '../../src/nat/keepalive_wheel.js';
import { MemoryLocationStore } from '../../src/store/memory.js';
import { SqliteLocationStore } from '../../src/store/sqlite.js';
import type { Binding, LocationStore } from '../../src/store/types.js';

// ---- fixtures ------------------------------------------------------------------------------
const SETTINGS: KeepaliveSettings = { method: 'options', interval: 30, all: false, maxMissed: 3, removeDead: false };

/** A NATed UDP binding `sip:<user>@sip.example.org` registered from 192.168.1.x behind 203.0.113.7. */
function binding(clock: FakeClock, user: string | number, over: Partial<Binding> = {}): Binding {
  const n = typeof user === 'number' ? user : Number.parseInt(user, 10) || 1;
  return {
    aor: `sip:${user}@sip.example.org`,
    contact: `sip:${user}@192.168.1.${(n % 250) + 2}:5060`,
    expiresAt: clock.wallNow() + 3_600_000,
    q: 1,
    callId: `cid-${user}`,
    cseq: 1,
    received: { transport: 'udp', address: '203.0.113.7', port: 20000 + (n % 40000), socketId: 'udp:10.0.0.10:5060' },
    nat: true,
    updatedAt: clock.wallNow(),
    ...over,
  };
}

/** What the fake does for an OPTIONS to a contact: answer after `ms` with `status`, or time out after `ms`. */
type Behaviour = { answer: true; ms: number; status?: number } | { answer: false; ms: number };

interface SentPing {
  kind: 'options' | 'crlf' | 'stun';
  aor: string;
  contact: string;
  at: number;
}

/** A scripted {@link KeepaliveSend}: every probe is recorded; answers come through the fake clock. */
class FakeSend implements KeepaliveSend {
  readonly sent: SentPing[] = [];
  /** Default behaviour; per-contact overrides in `byContact`. */
  behaviour: Behaviour = { answer: true, ms: 0, status: 200 };
  readonly byContact = new Map<string, Behaviour>();
  /** Return value of `crlf()`/`stun()`. */
  crlfOk = true;

  constructor(private readonly clock: FakeClock) {}

  options(b: Binding): Promise<OptionsResult> {
    this.sent.push({ kind: 'options', aor: b.aor, contact: b.contact, at: this.clock.now() });
    const how = this.byContact.get(b.contact) ?? this.behaviour;
    return new Promise((resolve) => {
      const done = (): void => resolve(how.answer ? { answered: true, status: how.status ?? 200 } : { answered: false });
      if (how.ms === 0) done();
      else this.clock.setTimer(how.ms, done);
    });
  }

  crlf(b: Binding): boolean {
    this.sent.push({ kind: 'crlf', aor: b.aor, contact: b.contact, at: this.clock.now() });
    return this.crlfOk;
  }

  stun(b: Binding): boolean {
    this.sent.push({ kind: 'stun', aor: b.aor, contact: b.contact, at: this.clock.now() });
    return this.crlfOk;
  }

  to(contact: string): SentPing[] {
    return this.sent.filter((s) => s.contact === contact);
  }
}

/** Lets settled promises run their callbacks. */
function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Advances the fake clock in `step` ms steps, flushing promise callbacks after each step. */
async function run(clock: FakeClock, ms: number, step = 100): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.advance(Math.min(step, ms - t));
    await flush();
  }
}

/** A logger that records `[level, msg]` pairs. */
function captureLogger(): { logger: Logger; lines: Array<[string, string]> } {
  const lines: Array<[string, string]> = [];
  const rec =
    (level: string) =>
    (objOrMsg: unknown, msg?: string): void => {
      lines.push([level, typeof objOrMsg === 'string' ? objOrMsg : (msg ?? '')]);
    };
  const logger = { info: rec('info'), warn: rec('warn'), debug: rec('debug'), error: rec('error'), trace: rec('trace') } as unknown as Logger;
  return { logger, lines };
}

// ---- tests ---------------------------------------------------------------------------------

function setup(over: Partial<KeepaliveSettings> = {}, opts: Partial<KeepaliveOptions> = {}) {
  const clock = new FakeClock();
  const store = new MemoryLocationStore();
  const send = new FakeSend(clock);
  const changes: Array<[string, string, Reachability]> = [];
  const log = captureLogger();
  const ka = new KeepaliveScheduler({
    clock,
    store,
    send,
    settings: { ...SETTINGS, ...over },
    logger: log.logger,
    onChange: (aor, contact, state) => changes.push([aor, contact, state]),
    refreshMs: 0,
    ...opts,
  });
  return { clock, store, send, ka, changes, log };
}

describe('KeepaliveScheduler: spreading', () => {
  it('spreads 300 bindings evenly over a 30 s interval and pings each once per interval', async () => {
    const { clock, send, ka } = setup();
    await ka.start();
    const bs: Binding[] = [];
    for (let i = 1; i <= 300; i++) bs.push(binding(clock, i));
    for (const b of bs) ka.upsert(b);
    assert.equal(ka.size, 300);
    await run(clock, 90_000);
    assert.equal(send.sent.length, 900);
    // Each binding: exactly one ping in each 30 s interval (the wheel's first slot fires one tick after start).
    for (const b of bs) {
      const times = send.to(b.contact).map((s) => s.at);
      assert.equal(times.length, 3, b.contact);
      for (let k = 0; k < 3; k++) assert.equal(times.filter((t) => t > k * 30_000 && t <= (k + 1) * 30_000).length, 1, `${b.contact} interval ${k}`);
    }
    // No 1-second window (sliding in 100 ms steps) holds more than 2x the average of 10 pings.
    const avg = 300 / 30;
    let max = 0;
    for (let start = 0; start + 1000 <= 90_000; start += 100) {
      const n = send.sent.filter((s) => s.at >= start && s.at < start + 1000).length;
      if (n > max) max = n;
    }
    assert.ok(max <= 2 * avg, `max ${max} pings in one second, average ${avg}`);
    assert.ok(max >= avg, `max ${max}`);
    ka.close();
    assert.equal(clock.pending, 0);
  });

  it('keeps a few bindings apart rather than in adjacent slots', async () => {
    const { clock, send, ka } = setup();
    await ka.start();
    for (let i = 1; i <= 7; i++) ka.upsert(binding(clock, i));
    await run(clock, 30_000);
    const times = send.sent.map((s) => s.at).sort((a, b) => a - b);
    assert.equal(times.length, 7);
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    gaps.push(times[0] + 30_000 - times[times.length - 1]);
    assert.ok(Math.min(...gaps) >= 1000, `gaps ${gaps.join(',')}`);
    assert.ok(Math.max(...gaps) <= (2 * 30_000) / 7, `gaps ${gaps.join(',')}`);
    ka.close();
  });

  it('per-tick work is O(due bindings): 100k bindings at 30 s send about 1/300 of them per 100 ms tick', async () => {
    const { clock, send, ka } = setup({}, { tickMs: 100 });
    await ka.start();
    for (let i = 1; i <= 100_000; i++) ka.upsert(binding(clock, i, { contact: `sip:u${i}@192.168.1.2:5060` }));
    const perTick: number[] = [];
    let before = 0;
    const t0 = performance.now();
    for (let t = 0; t < 30_000; t += 100) {
      clock.advance(100);
      perTick.push(send.sent.length - before);
      before = send.sent.length;
    }
    // The last slot's paced bursts run into the next 100 ms.
    clock.advance(100);
    const elapsed = performance.now() - t0;
    await flush();
    assert.equal(send.sent.length, 100_000 + perTick[0]);
    // Each slot's probes are paced over its 100 ms, so a window holds the end of one slot and the start of the next.
    const steady = perTick.slice(1);
    assert.ok(Math.max(...steady) <= Math.ceil(100_000 / 300) + MAX_BURST, `max per tick ${Math.max(...steady)}`);
    assert.ok(Math.min(...steady) >= Math.floor(100_000 / 300) - MAX_BURST, `min per tick ${Math.min(...steady)}`);
    assert.equal(ka.counters.answered, 100_000 + perTick[0]);
    assert.ok(elapsed < 5000, `one interval of 100k pings took ${elapsed.toFixed(0)} ms`);
    ka.close();
  });
});

describe('KeepaliveScheduler: paced sending within a slot', () => {
  it('sends a crowded slot in bursts of at most MAX_BURST spread over the slot, each binding once', async () => {
    const { clock, send, ka } = setup({}, { tickMs: 100 });
    await ka.start();
    // 30,000 bindings at 30 s: 100 per 100 ms slot, i.e. 1,000/s.
    for (let i = 1; i <= 30_000; i++) ka.upsert(binding(clock, i, { contact: `sip:u${i}@192.168.1.2:5060` }));
    await run(clock, 30_100);
    assert.equal(new Set(send.sent.slice(0, 30_000).map((s) => s.contact)).size, 30_000, 'every binding pinged in the first interval');
    const byMs = new Map<number, number>();
    for (const s of send.sent) byMs.set(s.at, (byMs.get(s.at) ?? 0) + 1);
    const biggest = Math.max(...byMs.values());
    assert.ok(biggest <= MAX_BURST, `largest burst ${biggest}`);
    // Smooth: every 20 ms after the first slot holds about 1,000/s × 20 ms = 20 probes (never a slot's 100 at once).
    const sorted = send.sent.map((s) => s.at).sort((a, b) => a - b);
    const per20: number[] = [];
    let lo = 0;
    let hi = 0;
    for (let w = 200; w + 20 <= 30_000; w += 20) {
      while (lo < sorted.length && sorted[lo] < w) lo++;
      while (hi < sorted.length && sorted[hi] < w + 20) hi++;
      per20.push(hi - lo);
    }
    assert.ok(Math.max(...per20) <= 2 * MAX_BURST, `max ${Math.max(...per20)} probes in 20 ms`);
    assert.ok(Math.min(...per20) >= 1, `min ${Math.min(...per20)} probes in 20 ms`);
    ka.close();
    assert.equal(clock.pending, 0);
  });

  it('a slot of at most MAX_BURST bindings is sent at once, without extra timers', async () => {
    const { clock, send, ka } = setup({}, { tickMs: 100 });
    await ka.start();
    // 300 slots at 30 s / 100 ms: 300 × MAX_BURST bindings fill every slot up to MAX_BURST.
    for (let i = 1; i <= 300 * MAX_BURST; i++) ka.upsert(binding(clock, i, { contact: `sip:u${i}@192.168.1.2:5060` }));
    await run(clock, 30_000);
    assert.equal(send.sent.length, 300 * MAX_BURST);
    const times = new Set(send.sent.map((s) => s.at));
    assert.equal(times.size, 300, 'one send time per slot');
    ka.close();
  });

  it('skips queued probes of bindings removed before their burst, and close() drops the queue', async () => {
    const { clock, send, ka } = setup({}, { tickMs: 100 });
    await ka.start();
    for (let i = 1; i <= 300 * 64; i++) ka.upsert(binding(clock, i, { contact: `sip:u${i}@192.168.1.2:5060` }));
    // First interval: learn the members of the slot that fires at 100 ms (paced until 200 ms).
    await run(clock, 30_000);
    const slot = send.sent.filter((s) => s.at >= 100 && s.at < 200);
    assert.equal(slot.length, 64);
    // Second interval: the same slot fires at 30,100 ms; its first burst goes, the rest waits.
    clock.advance(100);
    const burst = send.sent.filter((s) => s.at === 30_100);
    assert.ok(burst.length > 0 && burst.length <= MAX_BURST, `first burst ${burst.length}`);
    const inBurst = new Set(burst.map((s) => s.contact));
    const waiting = slot.filter((s) => !inBurst.has(s.contact));
    const removed = new Set<string>();
    for (const s of waiting.slice(0, waiting.length >> 1)) {
      ka.remove(s.aor, s.contact);
      removed.add(s.contact);
    }
    clock.advance(99);
    await flush();
    const rest = send.sent.filter((s) => s.at > 30_100 && s.at < 30_200);
    assert.equal(rest.length, waiting.length - removed.size, 'the bindings still tracked were pinged');
    for (const s of rest) assert.ok(!removed.has(s.contact), `pinged removed binding ${s.contact}`);
    // close() with bursts queued: nothing more is sent and no timer is left.
    clock.advance(1);
    assert.ok(send.sent.some((s) => s.at === 30_200));
    ka.close();
    const after = send.sent.length;
    clock.advance(1000);
    assert.equal(send.sent.length, after, 'nothing sent after close');
    assert.equal(clock.pending, 0);
  });
});

describe('KeepaliveScheduler: which bindings', () => {
  it('pings only NATed bindings by default, every binding with all: true, and loads them from the store at start', async () => {
    for (const all of [false, true]) {
      const { clock, store, send, ka } = setup({ all });
      const nat1 = binding(clock, 1);
      const nat2 = binding(clock, 2);
      const pub1 = binding(clock, 3, { nat: false, contact: 'sip:3@198.51.100.3:5060' });
      const pub2 = binding(clock, 4, { nat: false, contact: 'sip:4@198.51.100.4:5060' });
      for (const b of [nat1, nat2, pub1, pub2]) await store.setBindings(b.aor, [b]);
      await ka.start();
      assert.equal(ka.size, all ? 4 : 2);
      await run(clock, 30_000);
      const pinged = new Set(send.sent.map((s) => s.contact));
      assert.deepEqual([...pinged].sort(), (all ? [nat1, nat2, pub1, pub2] : [nat1, nat2]).map((b) => b.contact).sort());
      assert.equal(send.sent.length, all ? 4 : 2);
      assert.equal(ka.status(pub1.aor, pub1.contact)?.reachable, all ? 'yes' : undefined);
      ka.close();
    }
  });

  it('interval 0 disables: no timers, no pings, hooks are no-ops', async () => {
    const { clock, store, send, ka } = setup({ interval: 0 });
    await store.setBindings('sip:1@sip.example.org', [binding(clock, 1)]);
    await ka.start();
    assert.equal(ka.enabled, false);
    assert.equal(clock.pending, 0);
    ka.upsert(binding(clock, 2));
    assert.equal(ka.size, 0);
    clock.advance(120_000);
    assert.equal(send.sent.length, 0);
    assert.deepEqual(ka.snapshot(), []);
    ka.close();
    assert.equal(clock.pending, 0);
  });

  it('upsert / remove / setAor hooks keep the set current without store scans', async () => {
    const { clock, store, send, ka } = setup();
    let scans = 0;
    const orig = store.allBindings.bind(store);
    store.allBindings = async () => {
      scans++;
      return orig();
    };
    const origScan = store.scanBindings.bind(store);
    store.scanBindings = (pageSize: number) => {
      scans++;
      return origScan(pageSize);
    };
    await ka.start();
    assert.equal(scans, 1);
    const a = binding(clock, 1);
    const b = binding(clock, 2);
    ka.upsert(a);
    ka.upsert(b);
    await run(clock, 30_000);
    assert.equal(send.to(a.contact).length, 1);
    assert.equal(send.to(b.contact).length, 1);

    ka.remove(a.aor, a.contact);
    assert.equal(ka.status(a.aor, a.contact), undefined);
    await run(clock, 30_000);
    assert.equal(send.to(a.contact).length, 1, 'removed binding is not pinged');
    assert.equal(send.to(b.contact).length, 2);

    // setAor replaces an AOR's set: b's contact goes, b2 comes.
    const b2 = binding(clock, 2, { contact: 'sip:2@192.168.1.99:5060' });
    ka.setAor(b.aor, [b2]);
    assert.equal(ka.size, 1);
    await run(clock, 30_000);
    assert.equal(send.to(b.contact).length, 2);
    assert.equal(send.to(b2.contact).length, 1);

    // A re-registration that is no longer NATed stops the pinging.
    ka.upsert({ ...b2, nat: false });
    assert.equal(ka.size, 0);
    assert.equal(scans, 1, 'no store scan after start (refreshMs 0)');
    ka.close();
  });

  it('a re-registration on a new flow resets the state; on the same flow keeps it', async () => {
    const { clock, ka } = setup();
    await ka.start();
    const a = binding(clock, 1);
    ka.upsert(a);
    await run(clock, 30_000);
    assert.equal(ka.statusOf(a)?.reachable, 'yes');
    ka.upsert({ ...a, cseq: 2, updatedAt: clock.wallNow() });
    assert.equal(ka.statusOf(a)?.reachable, 'yes', 'same flow keeps state');
    ka.upsert({ ...a, cseq: 3, received: { ...a.received, port: 31000 } });
    assert.equal(ka.statusOf(a)?.reachable, 'unknown', 'new flow starts unknown');
    ka.close();
  });

  it('stops pinging a binding once it has expired', async () => {
    const { clock, send, ka } = setup();
    await ka.start();
    const a = binding(clock, 1, { expiresAt: clock.wallNow() + 45_000 });
    ka.upsert(a);
    await run(clock, 120_000);
    assert.equal(send.to(a.contact).length, 2, 'pinged at ~0 s and ~30 s, not after 45 s');
    assert.ok(send.to(a.contact).every((p) => p.at < 45_000));
    assert.equal(ka.size, 0);
    ka.close();
  });

  it('refreshes from the store every refreshMs: picks up new bindings, drops vanished ones', async () => {
    const { clock, store, send, ka } = setup({}, { refreshMs: 60_000 });
    const a = binding(clock, 1);
    await store.setBindings(a.aor, [a]);
    await ka.start();
    assert.equal(ka.size, 1);
    const b = binding(clock, 2);
    await store.setBindings(b.aor, [b]);
    await store.setBindings(a.aor, []);
    await run(clock, 60_000);
    assert.equal(ka.size, 1);
    assert.ok(ka.statusOf(b));
    assert.equal(ka.statusOf(a), undefined);
    await run(clock, 30_000);
    assert.ok(send.to(b.contact).length >= 1);
    ka.close();
    assert.equal(clock.pending, 0);
  });

  it('a hook write during a store load wins over the load', async () => {
    const { clock, store, ka } = setup();
    await ka.start();
    const a = binding(clock, 1);
    await store.setBindings(a.aor, [a]);
    const p = ka.refresh();
    ka.remove(a.aor, a.contact); // de-registered while the load runs
    const b = binding(clock, 2);
    ka.upsert(b); // registered after the load's snapshot
    await p;
    assert.equal(ka.statusOf(a), undefined);
    assert.ok(ka.statusOf(b));
    ka.close();
  });
});

describe('KeepaliveScheduler: incremental reload', () => {
  /** Counts event-loop turns (setImmediate callbacks) until the returned stop() is called. */
  function turnCounter(onTurn?: (n: number) => void): { turns: () => number; stop: () => void } {
    let n = 0;
    let on = true;
    const tick = (): void => {
      if (!on) return;
      n++;
      onTurn?.(n);
      setImmediate(tick);
    };
    setImmediate(tick);
    return { turns: () => n, stop: () => (on = false) };
  }

  async function filled(store: LocationStore, clock: FakeClock, n: number): Promise<Binding[]> {
    const bs: Binding[] = [];
    for (let i = 1; i <= n; i++) {
      const b = binding(clock, i, { contact: `sip:u${i}@192.168.1.2:5060` });
      bs.push(b);
      await store.setBindings(b.aor, [b]);
    }
    return bs;
  }

  it(`reloads 5,000 bindings from SQLite in pages of ${REFRESH_PAGE}, the event loop running between pages`, async () => {
    const store = new SqliteLocationStore(':memory:');
    const { clock, ka } = setup({}, { store });
    const bs = await filled(store, clock, 5000);
    const c = turnCounter();
    await ka.start();
    c.stop();
    assert.equal(ka.size, 5000);
    assert.ok(c.turns() >= 5000 / REFRESH_PAGE - 1, `event loop turned ${c.turns()} times during the reload`);
    // A second reload after changes in the store: one binding gone, one new.
    await store.setBindings(bs[0].aor, []);
    const extra = binding(clock, 6001, { contact: 'sip:u6001@192.168.1.2:5060' });
    await store.setBindings(extra.aor, [extra]);
    await ka.refresh();
    assert.equal(ka.size, 5000);
    assert.equal(ka.statusOf(bs[0]), undefined);
    assert.ok(ka.statusOf(extra));
    ka.close();
    await store.close();
  });

  it('a store without scanBindings is read with allBindings and applied in pages all the same', async () => {
    const inner = new MemoryLocationStore();
    let reads = 0;
    const store: LocationStore = {
      getBindings: (aor) => inner.getBindings(aor),
      setBindings: (aor, list) => inner.setBindings(aor, list),
      allBindings: () => {
        reads++;
        return inner.allBindings();
      },
      purgeExpired: (now) => inner.purgeExpired(now),
      close: () => inner.close(),
    };
    const { clock, ka } = setup({}, { store });
    await filled(store, clock, 3 * REFRESH_PAGE + 10);
    const c = turnCounter();
    await ka.start();
    c.stop();
    assert.equal(reads, 1);
    assert.equal(ka.size, 3 * REFRESH_PAGE + 10);
    assert.ok(c.turns() >= 3, `event loop turned ${c.turns()} times during the reload`);
    ka.close();
  });

  it('hook writes made between pages win over the pages read before or after them', async () => {
    const store = new SqliteLocationStore(':memory:');
    const { clock, ka } = setup({}, { store });
    const bs = await filled(store, clock, 4 * REFRESH_PAGE);
    await ka.start();
    assert.equal(ka.size, 4 * REFRESH_PAGE);
    // During the next reload, after its first page: de-register one binding from an early page
    // and one from a late page (without the store noticing yet), and register a new one.
    const early = bs[1];
    const late = bs[bs.length - 2];
    const fresh = binding(clock, 9999, { contact: 'sip:u9999@192.168.1.2:5060' });
    const c = turnCounter((n) => {
      if (n !== 2) return;
      ka.remove(early.aor, early.contact);
      ka.remove(late.aor, late.contact);
      ka.upsert(fresh);
    });
    await ka.refresh();
    c.stop();
    assert.ok(c.turns() >= 2, 'the hooks ran during the reload');
    assert.equal(ka.statusOf(early), undefined, 'removed binding not brought back by a page read before the removal');
    assert.equal(ka.statusOf(late), undefined, 'removed binding not brought back by a page read after the removal');
    assert.ok(ka.statusOf(fresh), 'binding registered during the reload kept although the store lacks it');
    assert.equal(ka.size, 4 * REFRESH_PAGE - 1);
    ka.close();
    await store.close();
  });

  it('a reload started while another runs supersedes it; both settle and the result is the newer one', async () => {
    const store = new SqliteLocationStore(':memory:');
    const { clock, ka } = setup({}, { store });
    const bs = await filled(store, clock, 3 * REFRESH_PAGE);
    await ka.start();
    await store.setBindings(bs[0].aor, []);
    const p1 = ka.refresh();
    const p2 = ka.refresh();
    await Promise.all([p1, p2]);
    assert.equal(ka.size, 3 * REFRESH_PAGE - 1);
    assert.equal(ka.statusOf(bs[0]), undefined);
    ka.close();
    await store.close();
  });
});

describe('KeepaliveScheduler: reachability', () => {
  it('marks unreachable after maxMissed misses (logged once), reachable again after an answer', async () => {
    const { clock, send, ka, changes, log } = setup({ interval: 10 });
    await ka.start();
    const a = binding(clock, 1);
    ka.upsert(a);
    send.behaviour = { answer: false, ms: 32_000 }; // Timer F
    await run(clock, 10_000);
    assert.equal(send.sent.length, 1);
    const firstAt = send.sent[0].at;
    assert.equal(ka.statusOf(a)?.reachable, 'unknown');
    // Pings at t, t+10, t+20 time out at t+32, t+42, t+52.
    await run(clock, firstAt + 52_000 - clock.now() - 100);
    assert.equal(ka.statusOf(a)?.missed, 2);
    assert.equal(ka.statusOf(a)?.reachable, 'unknown');
    await run(clock, 200);
    assert.equal(ka.statusOf(a)?.missed, 3);
    assert.equal(ka.statusOf(a)?.reachable, 'no');
    assert.deepEqual(changes, [[a.aor, a.contact, 'no']]);
    await run(clock, 30_000);
    assert.ok(ka.statusOf(a)!.missed > 3);
    assert.equal(log.lines.filter(([lvl, m]) => lvl === 'info' && /unreachable/.test(m)).length, 1, 'logged at info once');
    assert.equal(changes.length, 1);
    assert.ok(ka.counters.missed >= 4);

    // The phone answers again: the next answered ping marks it reachable.
    send.behaviour = { answer: true, ms: 40, status: 200 };
    await run(clock, 10_000, 10);
    const st = ka.statusOf(a)!;
    assert.equal(st.reachable, 'yes');
    assert.equal(st.missed, 0);
    assert.equal(st.rttMs, 40);
    assert.deepEqual(changes.at(-1), [a.aor, a.contact, 'yes']);
    assert.equal(log.lines.filter(([lvl, m]) => lvl === 'info' && /reachable again/.test(m)).length, 1);
    // Late timeouts of probes older than the answered one do not count as misses.
    await run(clock, 40_000);
    assert.equal(ka.statusOf(a)?.reachable, 'yes');
    assert.equal(ka.statusOf(a)?.missed, 0);
    ka.close();
    assert.equal(clock.pending, 0);
  });

  it('measures RTT from the clock; any status (404) counts as alive', async () => {
    const { clock, send, ka, changes } = setup();
    await ka.start();
    const a = binding(clock, 1);
    ka.upsert(a);
    send.byContact.set(a.contact, { answer: true, ms: 87, status: 404 });
    await run(clock, 30_000, 1);
    const st = ka.statusOf(a)!;
    assert.equal(st.reachable, 'yes');
    assert.equal(st.rttMs, 87);
    assert.equal(st.lastStatus, 404);
    assert.equal(st.lastSentAt, clock.wallNow() - (clock.now() - send.sent[0].at));
    assert.equal(st.lastAnsweredAt, st.lastSentAt! + 87);
    assert.deepEqual(changes, [[a.aor, a.contact, 'yes']]);
    assert.deepEqual(ka.counters, { sent: 1, answered: 1, missed: 0, removed: 0 });
    assert.deepEqual(ka.snapshot(), [st]);
    ka.close();
  });

  it('removeDead removes the unreachable binding from the store and keeps the others', async () => {
    const { clock, store, send, ka } = setup({ removeDead: true });
    const dead = binding(clock, 1);
    const alive = binding(clock, 1, { contact: 'sip:1@192.168.1.50:5060', received: { ...dead.received, port: 20050 } });
    await store.setBindings(dead.aor, [dead, alive]);
    await ka.start();
    send.byContact.set(dead.contact, { answer: false, ms: 0 });
    await run(clock, 3 * 30_000);
    const left = await store.getBindings(dead.aor);
    assert.deepEqual(
      left.map((b) => b.contact),
      [alive.contact],
    );
    assert.equal(ka.counters.removed, 1);
    assert.equal(ka.statusOf(dead), undefined);
    const pings = send.to(dead.contact).length;
    await run(clock, 60_000);
    assert.equal(send.to(dead.contact).length, pings, 'no pings after removal');
    assert.equal(ka.statusOf(alive)?.reachable, 'yes');
    ka.close();
  });

  it('without removeDead an unreachable binding stays in the store and is still pinged', async () => {
    const { clock, store, send, ka } = setup({ removeDead: false });
    const dead = binding(clock, 1);
    await store.setBindings(dead.aor, [dead]);
    await ka.start();
    send.behaviour = { answer: false, ms: 0 };
    await run(clock, 4 * 30_000);
    assert.equal((await store.getBindings(dead.aor)).length, 1);
    assert.equal(ka.statusOf(dead)?.reachable, 'no');
    assert.equal(send.to(dead.contact).length, 4);
    assert.equal(ka.counters.removed, 0);
    ka.close();
  });

  it('removeDead does not remove a binding re-registered since it went silent', async () => {
    const { clock, store, send, ka } = setup({ removeDead: true, maxMissed: 1 });
    const old = binding(clock, 1);
    await store.setBindings(old.aor, [old]);
    await ka.start();
    const fresh = { ...old, cseq: 2, updatedAt: old.updatedAt + 1, received: { ...old.received, port: 33333 } };
    send.behaviour = { answer: false, ms: 0 };
    const origSend = send.options.bind(send);
    send.options = (b) => {
      void store.setBindings(old.aor, [fresh]); // the phone re-registered meanwhile (edge hook not called)
      return origSend(b);
    };
    await run(clock, 30_000);
    assert.deepEqual(await store.getBindings(old.aor), [fresh]);
    assert.equal(ka.counters.removed, 0);
    assert.equal(ka.statusOf(fresh)?.reachable, 'unknown', 'now pinging the new registration');
    ka.close();
  });

  it('retries removeDead after a store error on the next miss', async () => {
    const { clock, store, send, ka, log } = setup({ removeDead: true, maxMissed: 1 });
    const dead = binding(clock, 1);
    await store.setBindings(dead.aor, [dead]);
    await ka.start();
    send.behaviour = { answer: false, ms: 0 };
    const orig = store.setBindings.bind(store);
    let fail = true;
    store.setBindings = async (aor, bs) => {
      if (fail) {
        fail = false;
        throw new Error('disk full');
      }
      return orig(aor, bs);
    };
    await run(clock, 30_000);
    assert.equal((await store.getBindings(dead.aor)).length, 1);
    assert.equal(log.lines.filter(([lvl]) => lvl === 'warn').length, 1);
    await run(clock, 30_000);
    assert.equal((await store.getBindings(dead.aor)).length, 0);
    assert.equal(ka.counters.removed, 1);
    ka.close();
  });

  it('counts a thrown or rejected send as a miss', async () => {
    const { clock, send, ka } = setup({ maxMissed: 2 });
    await ka.start();
    const a = binding(clock, 1);
    ka.upsert(a);
    let n = 0;
    send.options = () => {
      if (n++ === 0) throw new Error('transaction layer closed');
      return Promise.reject(new Error('boom'));
    };
    await run(clock, 60_000);
    assert.equal(ka.statusOf(a)?.reachable, 'no');
    assert.equal(ka.counters.missed, 2);
    ka.close();
  });
});

describe('KeepaliveScheduler: crlf', () => {
  it('sends CRLF fire-and-forget: no RTT, stays unknown, failures count as misses', async () => {
    const { clock, send, ka } = setup({ method: 'crlf' });
    await ka.start();
    const a = binding(clock, 1, { received: { transport: 'tcp', address: '203.0.113.7', port: 40001, socketId: 'tcp:10.0.0.10:5060', connectionId: 5 } });
    ka.upsert(a);
    await run(clock, 90_000);
    assert.deepEqual(
      send.sent.map((s) => s.kind),
      ['crlf', 'crlf', 'crlf'],
    );
    let st = ka.statusOf(a)!;
    assert.equal(st.reachable, 'unknown');
    assert.equal(st.rttMs, undefined);
    assert.equal(st.missed, 0);
    // The connection is gone: sends fail, the binding becomes unreachable.
    send.crlfOk = false;
    await run(clock, 90_000);
    st = ka.statusOf(a)!;
    assert.equal(st.reachable, 'no');
    assert.equal(st.missed, 3);
    ka.close();
  });

  it('a pong gives RTT and reachability; once a flow has ponged, a missing pong is a miss', async () => {
    const { clock, send, ka } = setup({ method: 'crlf', maxMissed: 2 });
    await ka.start();
    const a = binding(clock, 1, { received: { transport: 'tcp', address: '203.0.113.7', port: 40001, socketId: 'tcp:10.0.0.10:5060' } });
    ka.upsert(a);
    await run(clock, 30_000, 1);
    const sentAt = send.sent[0].at;
    clock.advance(sentAt + 25 - clock.now());
    ka.pong(keepaliveFlowKey({ transport: 'tcp', address: '203.0.113.7', port: 40001 }));
    let st = ka.statusOf(a)!;
    assert.equal(st.reachable, 'yes');
    assert.equal(st.rttMs, 25);
    assert.equal(ka.counters.answered, 1);
    // No more pongs: pings 2 and 3 find the previous one unanswered.
    await run(clock, 90_000);
    st = ka.statusOf(a)!;
    assert.equal(st.reachable, 'no');
    ka.close();
  });

  it('method stun uses send.stun', async () => {
    const { clock, send, ka } = setup({ method: 'stun' });
    await ka.start();
    ka.upsert(binding(clock, 1));
    await run(clock, 30_000);
    assert.deepEqual(
      send.sent.map((s) => s.kind),
      ['stun'],
    );
    ka.close();
  });
});

describe('KeepaliveScheduler: lifecycle', () => {
  it('close() leaves no timers and ignores probes that settle later', async () => {
    const { clock, send, ka } = setup();
    await ka.start();
    for (let i = 1; i <= 50; i++) ka.upsert(binding(clock, i));
    let resolveLate: ((r: OptionsResult) => void) | undefined;
    send.options = () => new Promise<OptionsResult>((r) => (resolveLate = r));
    await run(clock, 30_000);
    assert.ok(clock.pending > 0);
    ka.close();
    assert.equal(clock.pending, 0);
    resolveLate?.({ answered: true, status: 200 });
    await flush();
    assert.equal(ka.size, 0);
    assert.deepEqual(ka.snapshot(), []);
    ka.upsert(binding(clock, 1));
    assert.equal(ka.size, 0);
    assert.equal(clock.pending, 0);
  });

  it('updateSettings changes the interval and the all flag, keeping state', async () => {
    const { clock, store, send, ka } = setup({ interval: 30 });
    const a = binding(clock, 1);
    const pub = binding(clock, 2, { nat: false });
    await store.setBindings(a.aor, [a]);
    await store.setBindings(pub.aor, [pub]);
    await ka.start();
    await run(clock, 30_000);
    assert.equal(ka.statusOf(a)?.reachable, 'yes');
    await ka.updateSettings({ ...SETTINGS, interval: 10, all: true });
    assert.equal(ka.statusOf(a)?.reachable, 'yes');
    assert.ok(ka.statusOf(pub));
    const before = send.to(a.contact).length;
    await run(clock, 30_000);
    assert.equal(send.to(a.contact).length - before, 3);
    assert.equal(send.to(pub.contact).length, 3);
    await ka.updateSettings({ ...SETTINGS, interval: 0 });
    assert.equal(clock.pending, 0);
    assert.equal(ka.size, 0);
    ka.close();
  });
});

describe('SlotAllocator', () => {
  it('bit-reversal order is a permutation that halves the gaps', () => {
    assert.deepEqual(bitReversalOrder(8), [0, 4, 2, 6, 1, 5, 3, 7]);
    const o = bitReversalOrder(300);
    assert.equal(o.length, 300);
    assert.deepEqual([...o].sort((a, b) => a - b), [...Array(300).keys()]);
  });

  it('fills the least loaded slot, also after releases', () => {
    const a = new SlotAllocator(10);
    const got: number[] = [];
    for (let i = 0; i < 25; i++) got.push(a.acquire());
    const loads = () => [...Array(10).keys()].map((s) => a.loadOf(s));
    assert.ok(Math.max(...loads()) - Math.min(...loads()) <= 1, loads().join(','));
    // Empty slot 3 completely: the next acquisitions go there first.
    while (a.loadOf(3) > 0) a.release(3);
    assert.equal(a.acquire(), 3);
    assert.equal(a.acquire(), 3);
    a.release(3);
    a.release(3);
    a.release(3); // extra release is ignored
    assert.equal(a.loadOf(3), 0);
  });
});
