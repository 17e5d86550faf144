/**
 * Media benchmark: sipedge's in-process relay (RelayEngine, alone in a child process, built as
 * src/edge.ts builds it; with `media.workers` 1 and 2) and rtpengine in userspace mode (`--table=-1`, driven over ng by
 * sipedge's NgMediaControl), in the same run, through the same MediaControl API:
 * N calls are offered/answered, then bench/media/rtpload (C, built here with gcc) sends
 * 172-byte G.711 RTP packets both ways on every call and measures loss and one-way latency.
 *
 * - Throughput: total packets/s relayed with ≤ 0.1 % loss, searched by doubling then bisection
 *   (short steps), per relay and per N.
 * - Latency: at the nominal load of N calls (2 streams × 50 packets/s, 20 ms ptime), p50/p99
 *   through the relay minus the same percentile of a direct run (no relay) at the same rate.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SystemClock } from '../src/lib/clock.js';
import { createMediaControl, type AnswerParams, type DeleteParams, type MediaResult, type OfferParams } from '../src/media/index.js';
import {
  BENCH_DIR,
  BENCH_NICE,
  HOST,
  REPO_ROOT,
  freePort,
  makeTempDir,
  procRssBytes,
  progress,
  sleep,
  spawnChild,
  systemBusySeconds,
  track,
  treeCpuSeconds,
  udpRcvbufErrors,
  type Child,
} from './lib/util.js';

export interface MediaOptions {
  quick: boolean;
  callCounts: number[];
  stepMs: number;
  /** Time budget of one throughput search, s. */
  budgetS: number;
  startPps: number;
  /** rtpengine --num-threads (default: one per core, as its default). */
  rtpengineThreads: number;
  /** `media.workers` of each sipedge relay run (default [1, 2]: the event loop alone, and two worker threads). */
  internalWorkers?: number[];
}

/** One run of rtpload. */
export interface LoadRun {
  streams: number;
  rate: number;
  durationS: number;
  sent: number;
  received: number;
  sendErrors: number;
  loss: number;
  p50us: number;
  p90us: number;
  p99us: number;
  p999us: number;
  maxUs: number;
  meanUs: number;
  /** rtpload's own CPU, s. */
  cpuS: number;
}

export interface MediaStep {
  rate: number;
  pass: boolean;
  why?: string;
  run: LoadRun;
  relayCpuS: number;
  otherCpuS: number;
  rcvbufDrops: number;
}

export interface RelayResult {
  relay: string;
  calls: number;
  /** Highest total packets/s with ≤ 0.1 % loss. */
  bestPps: number;
  /** The search stopped because the load generator could not send faster. */
  generatorLimited: boolean;
  bestStep?: MediaStep;
  firstFail?: number;
  steps: MediaStep[];
  /** At the nominal load (calls × 100 packets/s). */
  nominal?: MediaStep;
  /** Relay CPU µs per packet at the best step. */
  cpuUsPerPacket?: number;
  /** Relay RSS after offering the calls. */
  rssBytes?: number;
}

export interface MediaResults {
  direct: Record<number, LoadRun>;
  relays: RelayResult[];
  commands: string[];
  rtpengineThreads: number;
}

const INTERNAL_PORTS = { low: 20000, high: 25999 };
const RTPENGINE_PORTS = { low: 26000, high: 31999 };
/** The load generator's parties bind from here up (below the ephemeral range, away from 10000-10999). */
const LOAD_PORT_BASE = 12000;
const LOSS_LIMIT = 0.001;

export interface Controlled {
  label: string;
  offer(p: OfferParams): Promise<MediaResult>;
  answer(p: AnswerParams): Promise<MediaResult>;
  delete(p: DeleteParams): Promise<void>;
  pids(): number[];
  close(): Promise<void>;
  describe: string;
}

/**
 * sipedge's relay in a child process, driven over IPC.
 * @param workers `media.workers` of the relay (1 = the relay on the child's event loop)
 */
export async function startInternal(exposeGc = false, workers = 1): Promise<Controlled & { memory(): Promise<{ rss: number; heapUsed: number; external: number }> }> {
  // SIPEDGE_BENCH_NODE_ARGS: extra node flags for the relay process too (e.g. `--cpu-prof --cpu-prof-dir=DIR`;
  // relay worker threads inherit --cpu-prof, each writing its own profile).
  const extra = (process.env.SIPEDGE_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  const args = [
    ...extra,
    ...(exposeGc ? ['--expose-gc'] : []),
    '--import',
    'tsx',
    path.join(BENCH_DIR, 'media', 'relay_host.ts'),
    String(INTERNAL_PORTS.low),
    String(INTERNAL_PORTS.high),
    String(workers),
  ];
  const child: ChildProcess =
    BENCH_NICE !== 0
      ? spawn('nice', ['-n', String(BENCH_NICE), process.execPath, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      : spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  track(child);
  const rpc = ipcClient(child);
  await rpc.ready;
  const pid = child.pid!;
  return {
    label: workers > 1 ? `sipedge relay (${workers} workers)` : 'sipedge relay',
    offer: (p) => rpc.call('offer', p) as Promise<MediaResult>,
    answer: (p) => rpc.call('answer', p) as Promise<MediaResult>,
    delete: async (p) => void (await rpc.call('delete', p)),
    pids: () => [pid],
    memory: () => rpc.call('memory') as Promise<{ rss: number; heapUsed: number; external: number }>,
    close: async () => {
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await rpc.call('close').catch(() => undefined);
      await new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));
      clearTimeout(t);
    },
    describe: `node --import tsx bench/media/relay_host.ts: createMediaControl({ kind: 'internal' }, { ports: ${INTERNAL_PORTS.low}-${INTERNAL_PORTS.high}, bindAddress: 127.0.0.1, strictSource: true, workers: ${workers} }) in its own process`,
  };
}

/** A request/response client over a child's IPC channel. */
export function ipcClient(child: ChildProcess): { ready: Promise<void>; call(op: string, params?: unknown): Promise<unknown> } {
  let next = 1;
  const waiting = new Map<number, (v: unknown) => void>();
  let readyResolve!: () => void;
  const ready = new Promise<void>((r) => (readyResolve = r));
  child.on('message', (m: unknown) => {
    const msg = m as { id: number; result: unknown };
    if (msg.id === 0) return readyResolve();
    waiting.get(msg.id)?.(msg.result);
    waiting.delete(msg.id);
  });
  const deadline = setTimeout(() => child.kill('SIGKILL'), 30 * 60_000);
  deadline.unref();
  child.once('exit', () => {
    for (const w of waiting.values()) w(undefined);
    waiting.clear();
  });
  return {
    ready,
    call(op, params) {
      const id = next++;
      return new Promise((resolve) => {
        waiting.set(id, resolve);
        child.send({ id, op, params });
      });
    },
  };
}

/** rtpengine in userspace mode, driven over ng by sipedge's NgMediaControl. */
export async function startRtpengine(threads: number, dir: string): Promise<Controlled & { child: Child }> {
  const ngPort = await freePort(false);
  const args = [
    '--config-file=none',
    '--table=-1',
    `--interface=${HOST}`,
    `--listen-ng=${HOST}:${ngPort}`,
    `--port-min=${RTPENGINE_PORTS.low}`,
    `--port-max=${RTPENGINE_PORTS.high}`,
    '--foreground',
    '--log-stderr',
    '--log-level=3',
    '--delete-delay=0',
    '--timeout=600',
    `--num-threads=${threads}`,
    `--pidfile=${path.join(dir, 'rtpengine.pid')}`,
  ];
  const child = spawnChild('rtpengine', args, { hardTimeoutMs: 3600_000 });
  const ng = createMediaControl({ kind: 'rtpengine', host: HOST, port: ngPort }, { clock: new SystemClock(), ports: RTPENGINE_PORTS, strictSource: true });
  // Ready when ng answers (an offer for a probe call, deleted at once).
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.proc.exitCode !== null) throw new Error(`rtpengine exited at start:\n${child.output().slice(-2000)}`);
    const r = await ng.offer({ callId: 'probe', fromTag: 'p', sdp: sdpFor(LOAD_PORT_BASE - 2), advertiseAddress: HOST });
    if (r.ok) {
      await ng.delete({ callId: 'probe' });
      break;
    }
    if (Date.now() > deadline) throw new Error(`rtpengine did not answer ng: ${r.detail}\n${child.output().slice(-2000)}`);
    await sleep(200);
  }
  return {
    label: `rtpengine userspace (${threads} thread${threads > 1 ? 's' : ''})`,
    offer: (p) => ng.offer(p),
    answer: (p) => ng.answer(p),
    delete: (p) => ng.delete(p),
    pids: () => [child.pid],
    close: async () => {
      await ng.close();
      await child.stop('SIGTERM', 5000);
    },
    describe: `rtpengine ${args.filter((a) => !a.startsWith('--pidfile')).join(' ')}`,
    child,
  };
}

function sdpFor(port: number): string {
  return ['v=0', `o=- ${port} 1 IN IP4 ${HOST}`, 's=-', `c=IN IP4 ${HOST}`, 't=0 0', `m=audio ${port} RTP/AVP 0`, 'a=rtpmap:0 PCMU/8000', 'a=ptime:20', 'a=sendrecv', ''].join('\r\n');
}

function mPort(sdp: string): number {
  const m = /m=audio (\d+)/.exec(sdp);
  if (!m) throw new Error(`no m=audio port in ${sdp}`);
  return Number(m[1]);
}

/** Offers/answers `n` calls; returns the rtpload plan lines. */
export async function setupCalls(relay: Controlled, n: number, tag: string): Promise<string[]> {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const la = LOAD_PORT_BASE + 4 * i;
    const lb = la + 2;
    const callId = `bench-${tag}-${i}`;
    const o = await relay.offer({ callId, fromTag: 'a', sdp: sdpFor(la), receivedFrom: { address: HOST, port: la }, advertiseAddress: HOST });
    if (!o.ok) throw new Error(`${relay.label}: offer ${i} failed: ${o.code} ${o.detail}`);
    const a = await relay.answer({ callId, fromTag: 'a', toTag: 'b', sdp: sdpFor(lb), receivedFrom: { address: HOST, port: lb }, advertiseAddress: HOST });
    if (!a.ok) throw new Error(`${relay.label}: answer ${i} failed: ${a.code} ${a.detail}`);
    // A sends to the port in the answer (facing A); B to the port in the offer (facing B).
    lines.push(`${la} ${lb} ${mPort(a.sdp)} ${mPort(o.sdp)}`);
  }
  return lines;
}

export async function deleteCalls(relay: Controlled, n: number, tag: string): Promise<void> {
  for (let i = 0; i < n; i++) await relay.delete({ callId: `bench-${tag}-${i}` });
}

/** Builds rtpload with gcc into `dir`. */
export function buildLoad(dir: string): string {
  const out = path.join(dir, 'rtpload');
  const r = spawnSync('gcc', ['-O2', '-Wall', '-o', out, path.join(BENCH_DIR, 'media', 'rtpload.c')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`could not build bench/media/rtpload.c (gcc: ${r.error?.message ?? r.stderr}); run bench/setup.sh`);
  return out;
}

async function runLoad(bin: string, plan: string, rate: number, ms: number): Promise<LoadRun> {
  const child = spawnChild(bin, [plan, String(Math.round(rate)), String(ms)], { hardTimeoutMs: ms + 30_000 });
  const { code } = await child.exited;
  const line = child
    .output()
    .split('\n')
    .find((l) => l.startsWith('{'));
  if (code !== 0 || !line) throw new Error(`rtpload failed (code ${code}):\n${child.output().slice(-2000)}`);
  return JSON.parse(line) as LoadRun;
}

export async function measure(bin: string, plan: string, rate: number, ms: number, relay?: Controlled): Promise<MediaStep> {
  const pids = relay?.pids() ?? [];
  const c0 = treeCpuSeconds(pids);
  const b0 = systemBusySeconds();
  const d0 = udpRcvbufErrors();
  const run = await runLoad(bin, plan, rate, ms);
  const c1 = treeCpuSeconds(pids);
  const b1 = systemBusySeconds();
  const d1 = udpRcvbufErrors();
  const relayCpuS = c1 - c0;
  const step: MediaStep = {
    rate,
    pass: true,
    run,
    relayCpuS,
    otherCpuS: Math.max(0, b1 - b0 - relayCpuS - run.cpuS),
    rcvbufDrops: d1 - d0,
  };
  const planned = rate * run.durationS;
  if (run.sent < planned * 0.98) {
    step.pass = false;
    step.why = `generator sent only ${run.sent} of ${Math.round(planned)}`;
  } else if (run.loss > LOSS_LIMIT) {
    step.pass = false;
    step.why = `loss ${(run.loss * 100).toFixed(3)} %`;
  }
  return step;
}

function logStep(label: string, s: MediaStep): void {
  const r = s.run;
  const el = r.durationS + 0.3;
  progress(
    `  ${label} @ ${s.rate} pps: ${s.pass ? 'pass' : `FAIL (${s.why})`}; loss ${(r.loss * 100).toFixed(3)} %, p50 ${r.p50us} µs, p99 ${r.p99us} µs, ` +
      `relay ${((s.relayCpuS / el) * 100).toFixed(0)} % CPU, generator ${((r.cpuS / el) * 100).toFixed(0)} %, others ${((s.otherCpuS / el) * 100).toFixed(0)} %, ${s.rcvbufDrops} rcvbuf drops`,
  );
}

/**
 * Doubling then bisection on the packet rate. After a failed step the calls are deleted and
 * offered/answered again (`renew`): an overloaded relay may keep per-stream state from the
 * overload (rtpengine was seen to forward only about half of the streams afterwards), and the
 * next step must start from a clean relay, as the first one did.
 */
async function searchRelay(bin: string, plan: string, relay: Controlled, calls: number, opts: MediaOptions, renew: () => Promise<void>): Promise<RelayResult> {
  const steps: MediaStep[] = [];
  const t0 = Date.now();
  const fits = (): boolean => (Date.now() - t0) / 1000 + opts.stepMs / 1000 + 2 < opts.budgetS && steps.length < 14;
  let best: MediaStep | undefined;
  let firstFail: MediaStep | undefined;
  const run = async (rate: number, repeated = false): Promise<MediaStep> => {
    const s = await measure(bin, plan, rate, opts.stepMs, relay);
    steps.push(s);
    logStep(`${relay.label}, ${calls} calls`, s);
    await sleep(500);
    if (!s.pass) await renew();
    if (!s.pass && !repeated && s.otherCpuS / (s.run.durationS + 0.3) > 0.15 && !s.why?.startsWith('generator') && fits()) {
      progress(`  background load during the failed step: repeating it once`);
      return run(rate, true);
    }
    return s;
  };
  let rate = opts.startPps;
  while (fits()) {
    const s = await run(rate);
    if (s.pass) {
      best = s;
      rate *= 2;
    } else {
      firstFail = s;
      break;
    }
  }
  while (!best && firstFail && fits() && rate > 1000) {
    rate = Math.floor(rate / 2);
    const s = await run(rate);
    if (s.pass) best = s;
    else firstFail = s;
  }
  while (best && firstFail && firstFail.rate / best.rate > 1.1 && fits()) {
    const mid = Math.round((best.rate + firstFail.rate) / 2 / 1000) * 1000;
    if (mid <= best.rate || mid >= firstFail.rate) break;
    const s = await run(mid);
    if (s.pass) best = s;
    else firstFail = s;
  }
  // The lowest failing rate failed because the generator could not send fast enough.
  const generatorLimited = firstFail?.why?.startsWith('generator') === true;
  return {
    relay: relay.label,
    calls,
    bestPps: best?.rate ?? 0,
    generatorLimited,
    bestStep: best,
    firstFail: firstFail?.rate,
    steps,
    cpuUsPerPacket: best ? (best.relayCpuS / best.run.received) * 1e6 : undefined,
  };
}

export async function benchMedia(opts: MediaOptions): Promise<MediaResults> {
  const dir = makeTempDir('media');
  const bin = buildLoad(dir);
  const results: MediaResults = { direct: {}, relays: [], commands: [], rtpengineThreads: opts.rtpengineThreads };
  try {
    for (const calls of opts.callCounts) {
      const nominal = calls * 2 * 50;
      // Baseline: the same parties straight to each other (no relay), at the nominal rate.
      const directPlan = path.join(dir, `direct-${calls}.txt`);
      const lines: string[] = [];
      for (let i = 0; i < calls; i++) {
        const la = LOAD_PORT_BASE + 4 * i;
        lines.push(`${la} ${la + 2} ${la + 2} ${la}`);
      }
      fs.writeFileSync(directPlan, lines.join('\n') + '\n');
      const d = await measure(bin, directPlan, nominal, opts.stepMs);
      logStep(`direct (no relay), ${calls} calls`, d);
      results.direct[calls] = d.run;

      const runs: Array<number | 'rtpengine'> = [...(opts.internalWorkers ?? [1, 2]), 'rtpengine'];
      for (const run of runs) {
        const which = run === 'rtpengine' ? run : run > 1 ? `internal-w${run}` : 'internal';
        const relay = run === 'rtpengine' ? await startRtpengine(opts.rtpengineThreads, dir) : await startInternal(false, run);
        if (!results.commands.includes(relay.describe)) results.commands.push(relay.describe);
        try {
          progress(`media: ${relay.label}, ${calls} calls: offer/answer`);
          const tag = `${which}-${calls}`;
          const plan = path.join(dir, `plan-${tag}.txt`);
          let round = 0;
          let current = `${tag}-${round}`;
          fs.writeFileSync(plan, (await setupCalls(relay, calls, current)).join('\n') + '\n');
          const renew = async (): Promise<void> => {
            await deleteCalls(relay, calls, current);
            current = `${tag}-${++round}`;
            fs.writeFileSync(plan, (await setupCalls(relay, calls, current)).join('\n') + '\n');
          };
          const rss = procRssBytes(relay.pids()[0]);
          const nom = await measure(bin, plan, nominal, opts.stepMs, relay);
          logStep(`${relay.label}, ${calls} calls, nominal`, nom);
          const r = await searchRelay(bin, plan, relay, calls, opts, renew);
          r.nominal = nom;
          r.rssBytes = rss;
          results.relays.push(r);
          await deleteCalls(relay, calls, current);
        } finally {
          await relay.close();
        }
      }
    }
    results.commands.push(`bench/media/rtpload PLAN RATE_PPS ${opts.stepMs}   (gcc -O2; 172-byte RTP, both directions of every call)`);
    return results;
  } finally {
    if (!process.env.SIPEDGE_BENCH_KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }
}
