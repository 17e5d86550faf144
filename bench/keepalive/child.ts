/**
 * Keepalive fan-out, measured in a process of its own:
 *
 *   node --import tsx bench/keepalive/child.ts N INTERVAL_S MEASURE_S
 *
 * Builds what src/edge.ts builds for NAT pinging — a SQLite location store (the default store)
 * filled with N NATed bindings, the real TransportLayer (one UDP socket on 127.0.0.1) and
 * TransactionLayer, and the KeepaliveScheduler whose `send.options` does what the edge's
 * `sendKeepaliveOptions` does: buildKeepaliveOptions() → a non-INVITE client transaction →
 * serialize → UDP. The phones are bench/keepalive/sink.ts (another process, 256 ports) that
 * answer each OPTIONS with 200 OK, which comes back through the transport parser and the
 * transaction layer. After start() has loaded the bindings, this process's CPU time is
 * measured over MEASURE_S seconds. Prints one JSON line.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { SystemClock } from '../../src/lib/clock.js';
import { KeepaliveScheduler, buildKeepaliveOptions, type OptionsResult } from '../../src/nat/keepalive.js';
import { probeWithOptions } from '../../src/nat/keepalive_options.js';
import { SqliteLocationStore } from '../../src/store/sqlite.js';
import type { Binding } from '../../src/store/types.js';
import { TransactionLayer } from '../../src/transaction/layer.js';
import { TransportLayer } from '../../src/transport/layer.js';
import { udpRcvbufErrors } from '../lib/util.js';
import { parseListen } from '../../src/transport/listen.js';

const N = Number(process.argv[2] ?? 10000);
const intervalS = Number(process.argv[3] ?? 30);
const measureS = Number(process.argv[4] ?? 30);
const SINK_PORTS = 256;
const here = path.dirname(fileURLToPath(import.meta.url));

const clock = new SystemClock();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sipedge-bench-keepalive-'));

// The phones.
const sink = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'sink.ts'), String(SINK_PORTS), String(measureS + 600)], {
  stdio: ['pipe', 'pipe', 'pipe'],
});
const sinkPorts: number[] = await new Promise((resolve, reject) => {
  let buf = '';
  sink.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    const nl = buf.indexOf('\n');
    if (nl >= 0) resolve((JSON.parse(buf.slice(0, nl)) as { ports: number[] }).ports);
  });
  sink.once('exit', (code) => reject(new Error(`sink exited (${code})`)));
});
let sinkAnswered = 0;
sink.stderr!.on('data', (c: Buffer) => {
  const m = /"answered":(\d+)/.exec(c.toString());
  if (m) sinkAnswered = Number(m[1]);
});

// The edge's SIP stack, without the proxy: transport → transactions; nothing else receives.
const spec = parseListen('udp:127.0.0.1:0');
if (!spec.ok) throw new Error(spec.reason);
const late: { layer?: TransactionLayer } = {};
const transport = new TransportLayer({
  listen: [spec.value],
  // SIPEDGE_BENCH_UDP_RCVBUF: SO_RCVBUF to request instead of the transport's default (0 = kernel default).
  udpBuffers: process.env.SIPEDGE_BENCH_UDP_RCVBUF ? { recvBufferSize: Number(process.env.SIPEDGE_BENCH_UDP_RCVBUF) } : undefined,
  clock,
  events: { onMessage: (inbound) => late.layer?.receive(inbound) },
});
const layer = new TransactionLayer({
  clock,
  transport,
  tu: { onRequest: () => undefined, onStrayAck: () => undefined, onStrayResponse: () => undefined },
});
late.layer = layer;
await transport.start();
const sock = transport.sockets()[0];

// N NATed bindings: private Contact, received from a "NAT" address (a sink port).
const store = new SqliteLocationStore(path.join(dir, 'sipedge.db'));
const now = Date.now();
const fillStart = performance.now();
const writes: Array<Promise<void>> = [];
for (let i = 0; i < N; i++) {
  const aor = `sip:${300000 + i}@bench.example`;
  const b: Binding = {
    aor,
    contact: `sip:${300000 + i}@192.168.${(i >> 8) & 255}.${i & 255}:5060;ob`,
    expiresAt: now + 3600_000,
    q: 1,
    callId: `reg-${i}@bench`,
    cseq: 1,
    received: { transport: 'udp', address: '127.0.0.1', port: sinkPorts[i % SINK_PORTS], socketId: sock.id },
    nat: true,
    natTests: ['contact-private', 'via-received'],
    userAgent: 'bench phone',
    updatedAt: now,
  };
  writes.push(store.setBindings(aor, [b]));
  if (writes.length >= 5000) await Promise.all(writes.splice(0));
}
await Promise.all(writes);
const fillS = (performance.now() - fillStart) / 1000;

let timeouts = 0;
function sendOptions(b: Binding): Promise<OptionsResult> {
  const req = buildKeepaliveOptions(b, { host: '127.0.0.1', port: sock.boundPort, transport: b.received.transport });
  const dest = { transport: b.received.transport, address: b.received.address, port: b.received.port, socketId: b.received.socketId };
  return probeWithOptions(layer, req, dest).then((r) => {
    if (r.answered) return { answered: true, status: r.status };
    if (r.reason === 'timeout') timeouts++;
    return { answered: false };
  });
}

const keepalive = new KeepaliveScheduler({
  clock,
  store,
  settings: { method: 'options', interval: intervalS, all: false, maxMissed: 3, removeDead: false },
  send: { options: sendOptions, crlf: () => true },
  // SIPEDGE_BENCH_KEEPALIVE_TICK_MS: try another wheel slot length (default: the edge's, 100 ms).
  tickMs: process.env.SIPEDGE_BENCH_KEEPALIVE_TICK_MS ? Number(process.env.SIPEDGE_BENCH_KEEPALIVE_TICK_MS) : undefined,
});

const gc = (globalThis as { gc?: () => void }).gc;
gc?.();
// start(): loads every binding from the store (as at edge start and every refreshMs).
const loadCpu0 = process.cpuUsage();
const loadT0 = performance.now();
await keepalive.start();
const loadCpu = process.cpuUsage(loadCpu0);
const loadS = (performance.now() - loadT0) / 1000;

const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();
const elu0 = performance.eventLoopUtilization();
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const sent0 = keepalive.counters.sent;
const drops0 = udpRcvbufErrors();
await new Promise((r) => setTimeout(r, measureS * 1000));
const drops = udpRcvbufErrors() - drops0;
const cpu = process.cpuUsage(cpu0);
const wallS = (performance.now() - t0) / 1000;
const elu = performance.eventLoopUtilization(elu0);
delay.disable();
const sent = keepalive.counters.sent - sent0;

// A reload from the store (every DEFAULT_REFRESH_MS = 300 s in the edge), timed on its own, with
// the longest event-loop stall it causes (keepalives keep flowing meanwhile).
const refDelay = monitorEventLoopDelay({ resolution: 10 });
refDelay.enable();
// The longest gap between two turns of the event loop (setImmediate to setImmediate): a reload
// done in one synchronous block shows as one gap as long as the reload.
let turnAt = performance.now();
let maxTurnGapMs = 0;
let turning = true;
const turn = (): void => {
  const t = performance.now();
  if (t - turnAt > maxTurnGapMs) maxTurnGapMs = t - turnAt;
  turnAt = t;
  if (turning) setImmediate(turn);
};
setImmediate(turn);
const refCpu0 = process.cpuUsage();
const refT0 = performance.now();
await keepalive.refresh();
const refreshCpu = process.cpuUsage(refCpu0);
const refreshS = (performance.now() - refT0) / 1000;
// One more timer turn, so a stall at the very end of the reload is recorded too.
await new Promise((r) => setTimeout(r, 50));
turning = false;
refDelay.disable();
const refreshLoopDelayMaxMs = refDelay.max / 1e6;
const totalSent = keepalive.counters.sent;

const result = {
  bindings: N,
  intervalS,
  measureS: wallS,
  tracked: keepalive.size,
  sent,
  answered: keepalive.counters.answered,
  missed: keepalive.counters.missed,
  timeouts,
  perSecond: sent / wallS,
  cpuS: (cpu.user + cpu.system) / 1e6,
  cpuPct: ((cpu.user + cpu.system) / 1e6 / wallS) * 100,
  cpuUsPerKeepalive: sent > 0 ? (cpu.user + cpu.system) / sent : 0,
  eventLoopUtilization: elu.utilization,
  loopDelayP99Ms: delay.percentile(99) / 1e6,
  loopDelayMaxMs: delay.max / 1e6,
  fillS,
  startLoadS: loadS,
  startLoadCpuS: (loadCpu.user + loadCpu.system) / 1e6,
  refreshS,
  refreshCpuS: (refreshCpu.user + refreshCpu.system) / 1e6,
  /** Longest event-loop delay (ms, monitorEventLoopDelay) while the reload ran. */
  refreshLoopDelayMaxMs,
  /** Longest gap between two event-loop turns (ms) while the reload ran: the stall it caused. */
  refreshMaxTurnGapMs: maxTurnGapMs,
  rssBytes: process.memoryUsage().rss,
  /** UDP datagrams dropped machine-wide (receive buffer full) during the measurement. */
  rcvbufDrops: drops,
  /** Requests the phones answered (retransmissions included), over the whole run. */
  sinkAnswered: 0,
  /** OPTIONS started over the whole run, and the phones' requests per OPTIONS (> 1: retransmissions). */
  totalSent,
  requestsPerKeepalive: 0,
};
keepalive.close();
layer.close();
await transport.close();
await store.close();
sink.stdin!.end();
await new Promise<void>((r) => (sink.exitCode !== null ? r() : sink.once('exit', () => r())));
result.sinkAnswered = sinkAnswered;
result.requestsPerKeepalive = totalSent > 0 ? sinkAnswered / totalSent : 0;
fs.rmSync(dir, { recursive: true, force: true });
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(0);
