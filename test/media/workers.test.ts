import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import os from 'node:os';
import type { Worker } from 'node:worker_threads';
import { pino } from 'pino';
import { SystemClock } from '../../src/lib/clock.js';
import type { Logger } from '../../src/lib/log.js';
import type { MediaTimeoutInfo } from '../../src/media/control.js';
import { createMediaControl, resolveMediaWorkers } from '../../src/media/index.js';
import { rtpPortsOf } from '../../src/media/ports.js';
import { splitPortRange, WorkerRelayPool, type WorkerRelayOptions } from '../../src/media/workers.js';
import { parseConfigText } from '../../src/config/load.js';
import { closeAfterEach, HOST, makeSdp, Peer, portsOf, randomRange, sdpOf, sleep } from './helpers.js';

const { track, defer, peers } = closeAfterEach();

/** A logger that keeps every line (JSON objects), for asserting on what was logged. */
function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines };
}

function pool(opts: Partial<WorkerRelayOptions> = {}): WorkerRelayPool {
  return track(new WorkerRelayPool({ workers: 2, ports: randomRange(40), bindAddress: HOST, clock: new SystemClock(), ...opts }));
}

/** Offer from A (tag "a"), answer from B (tag "b"); the relay ports facing A and B. */
async function establish(relay: WorkerRelayPool, callId: string, a: Peer, b: Peer, aSdpPort = a.port) {
  const offer = sdpOf(await relay.offer({ callId, fromTag: 'a', sdp: makeSdp({ media: [{ port: aSdpPort }] }), advertiseAddress: HOST }));
  const answer = sdpOf(await relay.answer({ callId, fromTag: 'a', toTag: 'b', sdp: makeSdp({ media: [{ port: b.port }] }), advertiseAddress: HOST }));
  return { toB: portsOf(offer)[0], toA: portsOf(answer)[0] };
}

/** Binds a UDP socket on 127.0.0.1:port (to hold a port, or to prove that it is free). */
function bindUdp(port: number): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.bind(port, HOST, () => resolve(s));
  });
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('splitPortRange', () => {
  it('gives each worker a disjoint, contiguous slice of whole RTP/RTCP pairs', () => {
    const slices = splitPortRange({ low: 10000, high: 10999 }, 3);
    assert.equal(slices.length, 3);
    const all = slices.flatMap((r) => rtpPortsOf(r));
    assert.deepEqual(all, rtpPortsOf({ low: 10000, high: 10999 }), 'every pair exactly once, in order');
    for (const r of slices) {
      assert.equal(r.low % 2, 0, 'RTP on an even port');
      assert.equal(r.high % 2, 1, 'ends with an RTCP port');
    }
    assert.deepEqual(
      slices.map((r) => rtpPortsOf(r).length),
      [166, 167, 167],
    );
  });

  it('uses fewer slices than workers when the range has fewer pairs', () => {
    assert.deepEqual(splitPortRange({ low: 20000, high: 20003 }, 4), [
      { low: 20000, high: 20001 },
      { low: 20002, high: 20003 },
    ]);
  });
});

describe('media.workers', () => {
  it('config: an integer 1..64 or auto (= the number of cores); anything else is an error at media.workers', () => {
    const two = parseConfigText('media: { workers: 2 }\n');
    assert.ok(two.ok);
    assert.equal(two.config.media.workers, 2);
    const auto = parseConfigText('media: { workers: auto }\n');
    assert.ok(auto.ok);
    assert.equal(auto.config.media.workers, os.availableParallelism());
    const none = parseConfigText('');
    assert.ok(none.ok);
    assert.equal(resolveMediaWorkers(none.config.media.workers), 1, 'absent = 1');
    for (const bad of ['0', 'many', '1.5', '65']) {
      const r = parseConfigText(`media: { workers: ${bad} }\n`);
      assert.equal(r.ok, false, bad);
      assert.equal((r as { errors: Array<{ path: string }> }).errors[0].path, 'media.workers', bad);
    }
  });

  it('createMediaControl builds a worker pool for workers > 1 and refuses a sockets override', async () => {
    const media = track(createMediaControl({ kind: 'internal' }, { clock: new SystemClock(), ports: randomRange(10), bindAddress: HOST, workers: 2 }));
    assert.ok(media instanceof WorkerRelayPool);
    assert.equal(media.size, 2);
    assert.throws(
      () => createMediaControl({ kind: 'internal' }, { clock: new SystemClock(), ports: randomRange(10), workers: 2, sockets: { bind: () => Promise.reject(new Error('x')) } }),
      /sockets override/,
    );
  });
});

describe('worker relay pool (worker threads, real UDP sockets on 127.0.0.1)', () => {
  it('relays RTP both ways through a worker-hosted call; query, list and counters see it', async () => {
    const relay = pool();
    const [a, b] = await peers(2);
    const callId = 'w1@pc33.example.org';
    const { toA, toB } = await establish(relay, callId, a, b);
    const w = relay.workerOf(callId);
    assert.ok(w !== undefined);
    const slice = relay.workers()[w].ports;
    for (const p of [toA, toB]) assert.ok(p >= slice.low && p <= slice.high, `port ${p} in worker ${w}'s slice ${slice.low}-${slice.high}`);

    await Promise.all([a.sendRtp(200, toA, 0x41), b.sendRtp(200, toB, 0x42)]);
    assert.equal(await b.waitFor(200), 200, 'A→B all arrive');
    assert.equal(await a.waitFor(200), 200, 'B→A all arrive');
    assert.ok(b.received.every((p) => p[12] === 0x41 && p.length === 172));
    assert.ok(a.received.every((p) => p[12] === 0x42));
    assert.ok(b.sources.every((s) => s === `${HOST}:${toB}`), 'B receives from the port it sends to (symmetric RTP)');

    const st = await relay.query(callId);
    assert.ok(st);
    assert.deepEqual(st.legs[0].received, { packets: 200, bytes: 200 * 172 });
    assert.deepEqual(st.legs[1].sent, { packets: 200, bytes: 200 * 172 });
    assert.deepEqual(st.legs[0].streams[0].rtp.latched, { address: HOST, port: a.port });
    const c = relay.counters();
    assert.equal(c.calls, 1);
    assert.equal(c.packetsRelayed, 400, 'counters as of the query reply');
    assert.equal(c.portPairsInUse, 2);
    assert.equal(c.portPairsCapacity, 40);
    // list() is refreshed by the workers' periodic report (statsIntervalMs, 1 s by default).
    await until(() => relay.list()[0]?.aToB?.packets === 200, 3000, 'list() to show the packets');
    const [sum] = relay.list();
    assert.equal(sum.callId, callId);
    assert.deepEqual(sum.tags, ['a', 'b']);
    assert.deepEqual(sum.bToA, { packets: 200, bytes: 200 * 172 });
  });

  it('latches onto the real source (NAT) inside the worker', async () => {
    const relay = pool();
    const [a, aNat, b] = await peers(3);
    const callId = 'latch@pc33.example.org';
    // A's SDP names a.port, but its packets come from aNat (the NAT's mapping).
    const { toA, toB } = await establish(relay, callId, a, b, a.port);
    await aNat.sendRtp(5, toA);
    assert.equal(await b.waitFor(5), 5);
    await b.sendRtp(5, toB);
    assert.equal(await aNat.waitFor(5), 5, 'B→A goes to the latched source');
    assert.equal(await a.settle(50), 0, 'nothing to the SDP address once latched');
    const st = await relay.query(callId);
    assert.deepEqual(st?.legs[0].streams[0].rtp.latched, { address: HOST, port: aNat.port });
  });

  it('spreads calls over the workers (least loaded) on different threads', async () => {
    const relay = pool({ workers: 2 });
    const ws = new Set<number>();
    for (let i = 0; i < 4; i++) {
      const [a, b] = await peers(2);
      await establish(relay, `spread-${i}@x`, a, b);
      ws.add(relay.workerOf(`spread-${i}@x`)!);
    }
    assert.deepEqual([...ws].sort(), [0, 1]);
    const info = relay.workers();
    assert.deepEqual(
      info.map((w) => w.calls),
      [2, 2],
    );
    assert.notEqual(info[0].threadId, info[1].threadId);
    assert.ok(info.every((w) => w.threadId !== undefined && w.threadId > 0));
    assert.equal(relay.counters().calls, 4);
    assert.equal(relay.list().length, 4);
  });

  it('delete frees the ports (they can be bound again) and forgets the call', async () => {
    const relay = pool();
    const [a, b] = await peers(2);
    const callId = 'del@x';
    const { toA, toB } = await establish(relay, callId, a, b);
    assert.equal(relay.counters().portPairsInUse, 2);
    await relay.delete({ callId });
    assert.equal(relay.counters().portPairsInUse, 0);
    assert.equal(relay.counters().calls, 0);
    assert.equal(relay.list().length, 0);
    assert.equal(await relay.query(callId), undefined);
    const held = await Promise.all([toA, toA + 1, toB, toB + 1].map(bindUdp));
    for (const s of held) s.close();
    const r = await relay.answer({ callId, fromTag: 'a', toTag: 'b', sdp: makeSdp({ media: [{ port: b.port }] }), advertiseAddress: HOST });
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.code, 'UNKNOWN_CALL');
  });

  it("falls back to another worker when one worker's slice is exhausted, then answers NO_PORTS", async () => {
    const range = randomRange(4);
    const relay = pool({ ports: range });
    const [s0] = splitPortRange(range, 2);
    // Something else holds worker 0's ports.
    const blockers = await Promise.all(rtpPortsOf(s0).map(bindUdp));
    defer(async () => blockers.forEach((s) => s.close()));
    const [a, b] = await peers(2);
    await establish(relay, 'fallback-1@x', a, b);
    assert.equal(relay.workerOf('fallback-1@x'), 1, 'hosted by worker 1');
    assert.equal(relay.counters().noPorts, 0, 'not refused');
    const r = await relay.offer({ callId: 'fallback-2@x', fromTag: 'a', sdp: makeSdp({ media: [{ port: a.port }] }), advertiseAddress: HOST });
    assert.equal(!r.ok && r.code, 'NO_PORTS');
    assert.equal(relay.counters().noPorts, 1);
    assert.equal(relay.workerOf('fallback-2@x'), undefined);
    assert.equal(relay.counters().calls, 1);
  });

  it('forwards media timeouts from the workers to onTimeout on the main thread', async () => {
    const timeouts: Array<[string, MediaTimeoutInfo]> = [];
    const relay = pool({ timeoutSec: 1, sweepIntervalMs: 100, onTimeout: (id, info) => timeouts.push([id, info]) });
    const [a, b] = await peers(2);
    await establish(relay, 'idle@x', a, b);
    await until(() => timeouts.length > 0, 4000, 'onTimeout');
    assert.equal(timeouts[0][0], 'idle@x');
    assert.ok(timeouts[0][1].idleMs >= 1000);
    await until(() => relay.list()[0]?.timedOut === true, 3000, 'list() timedOut');
    assert.equal(relay.counters().timeouts, 1);
  });

  it('a crashed worker is logged as an error, its calls are ended, the process survives and the worker restarts', async () => {
    const { logger, lines } = capturingLogger();
    const timeouts: string[] = [];
    const relay = pool({ logger, onTimeout: (id) => timeouts.push(id) });
    const [a, b, c, d] = await peers(4);
    const lost = await establish(relay, 'crash-0@x', a, b);
    await establish(relay, 'crash-1@x', c, d);
    const victim = relay.workerOf('crash-0@x')!;
    const survivor = relay.workerOf('crash-1@x')!;
    assert.notEqual(victim, survivor);
    // Kill the thread from outside (as an uncaught exception or an abort would end it).
    const slots = (relay as unknown as { slots: Array<{ worker: Worker }> }).slots;
    const oldThread = slots[victim].worker.threadId;
    await slots[victim].worker.terminate();
    await until(() => timeouts.includes('crash-0@x'), 3000, 'onTimeout for the lost call');
    assert.deepEqual(timeouts, ['crash-0@x'], 'only the calls of the crashed worker');
    const err = lines.find((l) => l.level === 50 && String(l.msg).includes('exited unexpectedly'));
    assert.ok(err, 'logged at error level');
    assert.equal(err.lostCalls, 1);
    assert.equal(relay.workerOf('crash-0@x'), undefined);
    assert.equal(relay.counters().calls, 1);
    assert.equal(await relay.query('crash-0@x'), undefined);
    // The dead thread's sockets were closed with it: its ports can be bound again.
    const held = await Promise.all([lost.toA, lost.toA + 1, lost.toB, lost.toB + 1].map(bindUdp));
    for (const s of held) s.close();
    // The other worker's call still relays.
    const st = await relay.query('crash-1@x');
    assert.ok(st);
    // The worker was restarted on its slice: new calls work again (on both workers).
    await until(() => relay.workers()[victim].alive && relay.workers()[victim].threadId !== oldThread, 5000, 'restart');
    const [e, f] = await peers(2);
    const { toA, toB } = await establish(relay, 'crash-2@x', e, f);
    assert.equal(relay.workerOf('crash-2@x'), victim, 'the least loaded worker is the restarted one');
    await e.sendRtp(3, toA);
    assert.equal(await f.waitFor(3), 3);
    void toB;
  });

  it('close() closes every socket and ends the worker threads; later offers fail with ENGINE_ERROR', async () => {
    const relay = new WorkerRelayPool({ workers: 2, ports: randomRange(10), bindAddress: HOST });
    const [a, b] = await peers(2);
    const { toA, toB } = await establish(relay, 'close@x', a, b);
    const slots = (relay as unknown as { slots: Array<{ worker: Worker }> }).slots;
    const exited = slots.map((s) => new Promise<number>((resolve) => s.worker.once('exit', resolve)));
    await relay.close();
    await Promise.all(exited);
    assert.ok(relay.workers().every((w) => !w.alive));
    const held = await Promise.all([toA, toA + 1, toB, toB + 1].map(bindUdp));
    for (const s of held) s.close();
    const r = await relay.offer({ callId: 'after@x', fromTag: 'a', sdp: makeSdp({ media: [{ port: a.port }] }), advertiseAddress: HOST });
    assert.equal(!r.ok && r.code, 'ENGINE_ERROR');
    await relay.close();
  });
});
