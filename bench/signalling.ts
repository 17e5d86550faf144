/**
 * Signalling benchmark: sipedge (the real CLI process) and Kamailio configured equivalently
 * (bench/peers/kamailio.cfg), driven by SIPp on loopback.
 *
 * - calls: INVITE → 407 → ACK, INVITE + Proxy-Authorization → 180 → 200 → ACK, BYE → 200,
 *   through the proxy with Record-Route, to a SIPp UAS registered (with digest auth) as the callee.
 *   The highest `-r` sustained for one step (30 s; 10 s with --quick) with every call successful.
 * - registrations: REGISTER → 401 → REGISTER + Authorization → 200, users from a CSV
 *   (SEQUENTIAL, `users` accounts, each registered many times), at 0 failures.
 *
 * Search: the rate doubles from `start` while steps pass, then bisects between the best pass
 * and the first failure, until the gap is under 10 % or the target's time budget is spent.
 * A step passes when SIPp's exit code is 0, no call failed, every call was created and
 * completed, and the run took at most 15 % (+3 s) longer than planned (otherwise the load
 * generator did not keep up, which is reported as such).
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { runSippClient, startSippServer, type SippRun, type SippServer } from './lib/sipp.js';
import {
  BENCH_DIR,
  HOST,
  REPO_ROOT,
  freePort,
  makeTempDir,
  processTree,
  progress,
  sleep,
  spawnChild,
  systemBusySeconds,
  treeCpuSeconds,
  udpRcvbufErrors,
  type Child,
} from './lib/util.js';

const SCENARIOS = path.join(BENCH_DIR, 'scenarios');

export type TargetKind = 'sipedge' | 'kamailio';

export interface TargetSpec {
  /** Label in the tables. */
  label: string;
  kind: TargetKind;
  /** sipedge's store. */
  store?: 'memory' | 'sqlite';
  /** Kamailio UDP worker processes. */
  children?: number;
  /** sipedge `workers:` (SIP worker processes, node:cluster); default 1. Needs store sqlite with more than 1. */
  workers?: number;
}

export interface SignallingOptions {
  quick: boolean;
  /** Step length, s. */
  stepS: number;
  /** Time budget per search, s. */
  budgetS: number;
  /** Digest accounts (the registration CSV cycles through them). */
  users: number;
  callStart: number;
  regStart: number;
  /** Call hold time (pause before BYE), ms. */
  holdMs: number;
  kamailioChildren: number;
}

/** One step of a search. */
export interface Step {
  rate: number;
  pass: boolean;
  why?: string;
  planned: number;
  successful: number;
  failed: number;
  retransmissions: number;
  elapsedS: number;
  /** CPU seconds of the target (all its processes) during the step. */
  targetCpuS: number;
  /** CPU seconds of the SIPp client, and of the SIPp UAS (calls only). */
  clientCpuS: number;
  uasCpuS?: number;
  /** CPU seconds used on the machine by everything else during the step (other users' work). */
  otherCpuS: number;
  /** UDP datagrams dropped machine-wide for full receive buffers during the step. */
  rcvbufDrops: number;
  /** The step was a repeat of one that failed under background load. */
  repeated?: boolean;
}

export interface SearchResult {
  target: string;
  what: 'calls' | 'registrations';
  /** Highest passing rate, per s (0 if none passed). */
  best: number;
  bestStep?: Step;
  /** Lowest failing rate, if any. */
  firstFail?: number;
  steps: Step[];
  /** CPU seconds per 1,000 calls / registrations at the best step. */
  targetCpuPer1k?: number;
  clientCpuPer1k?: number;
  uasCpuPer1k?: number;
  /** What limited the best rate, as far as the CPU figures tell. */
  bottleneck?: string;
  commands: string[];
}

export interface User {
  username: string;
  password: string;
}

export function makeUsers(n: number): User[] {
  const users: User[] = [];
  for (let i = 0; i < n; i++) {
    const u = String(200000 + i);
    // Kamailio derives the same password from the user name (bench/peers/kamailio.cfg).
    users.push({ username: u, password: `pw-${u}-secret` });
  }
  return users;
}

/** The caller and the callee of the call benchmark are the first two accounts. */
const CALLER = 0;
const CALLEE = 1;

/** A running target. */
export interface Running {
  port: number;
  /** Every process of the target (listed once, after start). */
  pids: number[];
  cpu(): number;
  describe: string;
  stop(): Promise<void>;
  child: Child;
}

async function startSipedge(spec: TargetSpec, users: User[], dir: string): Promise<Running> {
  const port = await freePort(false);
  const config = {
    listen: [`udp:${HOST}:${port}`],
    store: spec.store === 'sqlite' ? `sqlite:${path.join(dir, 'sipedge.db')}` : 'memory:',
    registrar: { domains: [] },
    auth: { algorithms: ['MD5'] },
    users,
    api: { enabled: false },
    log: { level: 'warn' },
    media: { relay: 'never' },
    nat: { clients: 'auto' },
    ...(spec.workers !== undefined && spec.workers > 1 ? { workers: spec.workers } : {}),
  };
  const configPath = path.join(dir, 'sipedge.yaml');
  fs.writeFileSync(configPath, YAML.stringify(config));
  // SIPEDGE_BENCH_NODE_ARGS: extra node flags for the sipedge process, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const extra = (process.env.SIPEDGE_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  // SIPEDGE_BENCH_DIST=1: run the built dist/cli/main.js (after `npm run build`) instead of the
  // TypeScript sources through tsx. Measured alike (CPU per call within the noise), so tsx stays the default.
  const entry = process.env.SIPEDGE_BENCH_DIST === '1' ? [path.join(REPO_ROOT, 'dist', 'cli', 'main.js')] : ['--import', 'tsx', path.join(REPO_ROOT, 'src', 'cli', 'main.ts')];
  const args = [...extra, ...entry, 'start', '-c', configPath];
  const child = spawnChild(process.execPath, args, { cwd: REPO_ROOT, hardTimeoutMs: 3600_000, env: { ...process.env, NO_COLOR: '1' } });
  // log.level warn hides `sipedge ready`: wait until it answers an OPTIONS instead.
  await waitForSip(port, child, 'sipedge');
  const pids = [child.pid];
  // workers > 1: the primary's forked workers count too (wait until all are there).
  if (spec.workers !== undefined && spec.workers > 1) pids.push(...(await childPidsOf(child.pid, spec.workers)));
  return {
    port,
    pids,
    cpu: () => treeCpuSeconds(pids),
    describe: `node --import tsx src/cli/main.ts start -c sipedge.yaml  (${spec.workers !== undefined && spec.workers > 1 ? `workers: ${spec.workers}, ` : ''}store: ${config.store.startsWith('sqlite') ? 'sqlite:FILE' : 'memory:'}, media.relay: never, log.level: warn, ${users.length} users)`,
    child,
    stop: () => child.stop('SIGTERM', 5000),
  };
}

/** The child processes of `pid` once there are `n` of them (within 30 s). */
async function childPidsOf(pid: number, n: number): Promise<number[]> {
  const read = (): number[] => {
    try {
      return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  for (let i = 0; i < 300; i++) {
    const kids = read();
    if (kids.length >= n) return kids;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`sipedge: ${n} worker processes did not start within 30 s`);
}

async function startKamailio(spec: TargetSpec, users: User[], dir: string): Promise<Running> {
  const port = await freePort(false);
  fs.copyFileSync(path.join(BENCH_DIR, 'peers', 'kamailio.cfg'), path.join(dir, 'kamailio.cfg'));
  fs.writeFileSync(path.join(dir, 'bench-local.cfg'), `listen=udp:${HOST}:${port}\nalias="${HOST}:${port}"\nchildren=${spec.children ?? 4}\n`);
  fs.writeFileSync(path.join(dir, 'bench-ctl.cfg'), `modparam("ctl", "binrpc", "unix:${path.join(dir, 'kamailio_ctl')}")\n`);
  const args = ['-DD', '-E', '-f', path.join(dir, 'kamailio.cfg'), '-m', '512', '-M', '32', '-Y', dir, '-P', path.join(dir, 'kamailio.pid')];
  const child = spawnChild('kamailio', args, { cwd: dir, hardTimeoutMs: 3600_000 });
  // Ready when it answers an OPTIONS: poll with a short SIPp-free UDP probe.
  await waitForSip(port, child, 'kamailio');
  const pids = processTree(child.pid);
  return {
    port,
    pids,
    cpu: () => treeCpuSeconds(pids),
    describe: `kamailio -DD -E -f bench/peers/kamailio.cfg -m 512 -M 32  (children=${spec.children ?? 4}, ${pids.length} processes, ${users.length} users)`,
    child,
    stop: () => child.stop('SIGTERM', 5000),
  };
}

async function waitForSip(port: number, child: Child, what: string): Promise<void> {
  const dgram = await import('node:dgram');
  const deadline = Date.now() + 90_000;
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, HOST, () => r()));
  const local = sock.address().port;
  let answered = false;
  sock.on('message', () => (answered = true));
  try {
    while (Date.now() < deadline && !answered) {
      if (child.proc.exitCode !== null) throw new Error(`${what} exited at start:\n${child.output().slice(-3000)}`);
      const msg =
        `OPTIONS sip:${HOST}:${port} SIP/2.0\r\nVia: SIP/2.0/UDP ${HOST}:${local};branch=z9hG4bK${Date.now()};rport\r\n` +
        `Max-Forwards: 70\r\nFrom: <sip:probe@${HOST}>;tag=1\r\nTo: <sip:${HOST}:${port}>\r\nCall-ID: probe-${Date.now()}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`;
      sock.send(msg, port, HOST);
      await sleep(200);
    }
  } finally {
    sock.close();
  }
  if (!answered) throw new Error(`${what} did not answer OPTIONS within 90 s:\n${child.output().slice(-3000)}`);
  // Let every worker finish its start-up.
  await sleep(500);
}

export function startTarget(spec: TargetSpec, users: User[], dir: string): Promise<Running> {
  return spec.kind === 'sipedge' ? startSipedge(spec, users, dir) : startKamailio(spec, users, dir);
}

/** Registers the callee from the UAS port (so source, Via and Contact agree: no NAT detected). */
export async function registerCallee(t: Running, users: User[], uasPort: number, dir: string): Promise<void> {
  const u = users[CALLEE];
  const domain = `${HOST}:${t.port}`;
  const r = await runSippClient({
    scenario: path.join(SCENARIOS, 'register_auth.xml'),
    remote: domain,
    localPort: uasPort,
    calls: 1,
    service: u.username,
    authUser: u.username,
    authPassword: u.password,
    keys: { domain, contact: `${HOST}:${uasPort}`, expires: 3600 },
    timeoutS: 15,
    dir,
    name: 'register-callee',
  });
  if (r.successful !== 1) throw new Error(`could not register the callee (${r.command}); see ${r.files.errors}`);
}

/**
 * Places `calls` calls at `rate` calls/s from the caller (users[0]) to the registered callee
 * (users[1]) with SIPp's uac_auth.xml (digest auth as the caller), each held `holdMs` ms; the
 * client is given `timeoutS` seconds. `localPort` defaults to a free UDP port.
 */
export async function placeCalls(
  t: Running,
  users: User[],
  a: { calls: number; rate: number; holdMs: number; timeoutS: number; dir: string; name: string; localPort?: number },
): Promise<SippRun> {
  const domain = `${HOST}:${t.port}`;
  const caller = users[CALLER];
  const callee = users[CALLEE];
  return runSippClient({
    scenario: path.join(SCENARIOS, 'uac_auth.xml'),
    remote: domain,
    localPort: a.localPort ?? (await freePort(false)),
    calls: a.calls,
    rate: a.rate,
    limit: Math.max(1000, a.rate * 10),
    pauseMs: a.holdMs,
    service: callee.username,
    authUser: caller.username,
    authPassword: caller.password,
    authUri: `${callee.username}@${domain}`,
    keys: { domain, caller: caller.username },
    timeoutS: a.timeoutS,
    dir: a.dir,
    name: a.name,
  });
}

type StepFn = (rate: number) => Promise<Step>;

/** Share of one core used by other processes above which a failed step is repeated once. */
const BACKGROUND_LIMIT = 0.15;

/** Machine-wide counters around a step. */
function machineMark(): { busy: number; drops: number } {
  return { busy: systemBusySeconds(), drops: udpRcvbufErrors() };
}

/** Doubling ramp, then bisection, bounded by `budgetS` and 14 steps. */
async function search(what: string, start: number, stepS: number, budgetS: number, runStep: StepFn, pauseS: number): Promise<{ steps: Step[]; best?: Step; firstFail?: Step }> {
  const steps: Step[] = [];
  const t0 = Date.now();
  let best: Step | undefined;
  let firstFail: Step | undefined;
  const left = (): number => budgetS - (Date.now() - t0) / 1000;
  const fits = (): boolean => left() > stepS + 10 && steps.length < 14;
  const run = async (rate: number, repeated = false): Promise<Step> => {
    const s = await runStep(rate);
    if (repeated) s.repeated = true;
    steps.push(s);
    progress(
      `  ${what} @ ${rate}/s: ${s.pass ? 'pass' : `FAIL (${s.why})`}; ${s.successful}/${s.planned} ok, ${s.failed} failed, ${s.retransmissions} retrans, ` +
        `${s.elapsedS.toFixed(1)} s, target ${(s.targetCpuS / s.elapsedS * 100).toFixed(0)} % CPU, sipp ${(s.clientCpuS / s.elapsedS * 100).toFixed(0)} %` +
        (s.uasCpuS !== undefined ? `, uas ${(s.uasCpuS / s.elapsedS * 100).toFixed(0)} %` : '') +
        `, others ${(s.otherCpuS / s.elapsedS * 100).toFixed(0)} %, ${s.rcvbufDrops} UDP rcvbuf drops`,
    );
    await sleep(pauseS * 1000);
    // Other work on the machine (someone's build) can fail a step: repeat such a failure once.
    if (!s.pass && !repeated && s.otherCpuS / s.elapsedS > BACKGROUND_LIMIT && fits()) {
      progress(`  background load ${(s.otherCpuS / s.elapsedS * 100).toFixed(0)} % of a core during the failed step: repeating it once`);
      return run(rate, true);
    }
    return s;
  };
  let rate = start;
  // Ramp.
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
  // Nothing passed at the start rate: halve until something does.
  while (!best && firstFail && fits() && rate > 10) {
    rate = Math.floor(rate / 2);
    const s = await run(rate);
    if (s.pass) best = s;
    else firstFail = s;
  }
  // Bisect.
  while (best && firstFail && firstFail.rate / best.rate > 1.1 && fits()) {
    const mid = roundRate((best.rate + firstFail.rate) / 2);
    if (mid <= best.rate || mid >= firstFail.rate) break;
    const s = await run(mid);
    if (s.pass) best = s;
    else firstFail = s;
  }
  return { steps, best, firstFail };
}

function roundRate(r: number): number {
  const unit = r >= 2000 ? 50 : r >= 500 ? 10 : 5;
  return Math.max(unit, Math.round(r / unit) * unit);
}

function judge(planned: number, r: { code: number | null; successful: number; failed: number; created: number; elapsedS: number }, stepS: number): { pass: boolean; why?: string } {
  if (r.failed > 0) return { pass: false, why: `${r.failed} failed` };
  if (r.created < planned) return { pass: false, why: `SIPp created only ${r.created} of ${planned} calls` };
  if (r.successful < planned) return { pass: false, why: `${planned - r.successful} calls not completed` };
  if (r.code !== 0) return { pass: false, why: `SIPp exit code ${r.code}` };
  if (r.elapsedS > stepS * 1.15 + 3) return { pass: false, why: `took ${r.elapsedS.toFixed(1)} s for a ${stepS} s step (load generator or target fell behind)` };
  return { pass: true };
}

/**
 * What limited a search, from the CPU figures of its first failing step (else its best step).
 * Shares are of one core over the step's planned length (the load phase; retransmissions after
 * it add little CPU). sipedge is one event loop: ≥ 85 % of one core is saturation. Kamailio's
 * workers spread over both cores, so for it the question is whether the machine was full.
 */
export function bottleneckOf(step: Step | undefined, firstFail: Step | undefined, label: string): string | undefined {
  const s = firstFail ?? step;
  if (!s) return undefined;
  const stepS = s.planned / s.rate;
  const t = s.targetCpuS / stepS;
  const c = s.clientCpuS / stepS;
  const u = s.uasCpuS !== undefined ? s.uasCpuS / stepS : 0;
  const o = s.otherCpuS / stepS;
  const p = (x: number): string => `${(x * 100).toFixed(0)} %`;
  const parts =
    `at ${s.rate}/s: ${label} ${p(t)}, SIPp client ${p(c)}${s.uasCpuS !== undefined ? `, SIPp UAS ${p(u)}` : ''}, other processes ${p(o)} of one core` +
    `${s.rcvbufDrops > 0 ? `; ${s.rcvbufDrops} UDP datagrams dropped at full receive buffers` : ''}`;
  if (!firstFail) return `no limit found within the time budget (${parts})`;
  const oneLoop = label.startsWith('sipedge') && !/\bworkers\b/.test(label);
  if (oneLoop && t >= 0.85) return `limited by sipedge's single event loop (${parts})`;
  if (t + c + u + o >= 1.7) return `limited by the machine's two cores (${parts})`;
  if (c >= 0.85 || u >= 0.85) return `limited by SIPp (${parts})`;
  return `no CPU was saturated: failures from lost datagrams and timeouts (${parts})`;
}

function per1k(cpu: number | undefined, n: number | undefined): number | undefined {
  return cpu !== undefined && n ? (cpu / n) * 1000 : undefined;
}

/** Call-rate search for one target. */
export async function benchCalls(spec: TargetSpec, opts: SignallingOptions): Promise<SearchResult> {
  const dir = makeTempDir(`calls-${spec.label.replace(/\W+/g, '_')}`);
  const users = makeUsers(Math.max(2, opts.users));
  progress(`calls: starting ${spec.label}`);
  const t = await startTarget(spec, users, dir);
  const uasPort = await freePort(false);
  let uas: SippServer | undefined;
  const commands = [t.describe];
  try {
    await registerCallee(t, users, uasPort, dir);
    uas = await startSippServer({ scenario: path.join(SCENARIOS, 'uas.xml'), localPort: uasPort, timeoutS: opts.budgetS + 120, dir, name: 'uas' });
    commands.push(uas.command);
    let lastClientCmd = '';
    const step: StepFn = async (rate) => {
      const planned = Math.round(rate * opts.stepS);
      const localPort = await freePort(false);
      const m0 = machineMark();
      const cpu0 = t.cpu();
      const uas0 = uas!.cpuSeconds();
      const r = await placeCalls(t, users, { calls: planned, rate, holdMs: opts.holdMs, timeoutS: Math.ceil(opts.stepS * 1.5 + 20), dir, name: `uac-${rate}`, localPort });
      lastClientCmd = r.command;
      const cpu1 = t.cpu();
      const uas1 = uas!.cpuSeconds();
      const m1 = machineMark();
      return {
        otherCpuS: Math.max(0, m1.busy - m0.busy - (cpu1 - cpu0) - (uas1 - uas0) - (Number.isNaN(r.cpuS) ? 0 : r.cpuS)),
        rcvbufDrops: m1.drops - m0.drops,
        rate,
        planned,
        successful: r.successful,
        failed: r.failed,
        retransmissions: r.retransmissions,
        elapsedS: r.elapsedS,
        targetCpuS: cpu1 - cpu0,
        clientCpuS: r.cpuS,
        uasCpuS: uas1 - uas0,
        ...judge(planned, r, opts.stepS),
      };
    };
    const s = await search(`${spec.label} calls`, opts.callStart, opts.stepS, opts.budgetS, step, opts.quick ? 2 : 4);
    commands.push(lastClientCmd.replace(/-m \d+/, '-m RATE×STEP').replace(/-r \d+/, '-r RATE').replace(/-p \d+/, '-p PORT').replace(/-l \d+/, '-l LIMIT').replace(/\/tmp\/\S+\//g, ''));
    const b = s.best;
    return {
      target: spec.label,
      what: 'calls',
      best: b?.rate ?? 0,
      bestStep: b,
      firstFail: s.firstFail?.rate,
      steps: s.steps,
      targetCpuPer1k: per1k(b?.targetCpuS, b?.successful),
      clientCpuPer1k: per1k(b?.clientCpuS, b?.successful),
      uasCpuPer1k: per1k(b?.uasCpuS, b?.successful),
      bottleneck: bottleneckOf(b, s.firstFail, spec.label),
      commands,
    };
  } finally {
    await uas?.stop().catch(() => undefined);
    await t.stop();
    if (!process.env.SIPEDGE_BENCH_KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Registration-rate search for one target. */
export async function benchRegistrations(spec: TargetSpec, opts: SignallingOptions): Promise<SearchResult> {
  const dir = makeTempDir(`reg-${spec.label.replace(/\W+/g, '_')}`);
  const users = makeUsers(opts.users);
  progress(`registrations: starting ${spec.label}`);
  const t = await startTarget(spec, users, dir);
  const commands = [t.describe];
  const infPath = path.join(dir, 'users.csv');
  fs.writeFileSync(
    infPath,
    ['SEQUENTIAL', ...users.map((u) => `${u.username};[authentication username=${u.username} password=${u.password}]`)].join('\n') + '\n',
  );
  // Contacts point at a port where nothing listens: nothing is sent to them during the run.
  const contactPort = await freePort(false);
  try {
    const domain = `${HOST}:${t.port}`;
    let lastClientCmd = '';
    const step: StepFn = async (rate) => {
      const planned = Math.round(rate * opts.stepS);
      const localPort = await freePort(false);
      const m0 = machineMark();
      const cpu0 = t.cpu();
      const r = await runSippClient({
        scenario: path.join(SCENARIOS, 'register_inf.xml'),
        remote: domain,
        localPort,
        calls: planned,
        rate,
        limit: Math.max(1000, rate * 10),
        infPath,
        keys: { domain, contact: `${HOST}:${contactPort}` },
        timeoutS: Math.ceil(opts.stepS * 1.5 + 20),
        dir,
        name: `reg-${rate}`,
      });
      lastClientCmd = r.command;
      const cpu1 = t.cpu();
      const m1 = machineMark();
      return {
        otherCpuS: Math.max(0, m1.busy - m0.busy - (cpu1 - cpu0) - (Number.isNaN(r.cpuS) ? 0 : r.cpuS)),
        rcvbufDrops: m1.drops - m0.drops,
        rate,
        planned,
        successful: r.successful,
        failed: r.failed,
        retransmissions: r.retransmissions,
        elapsedS: r.elapsedS,
        targetCpuS: cpu1 - cpu0,
        clientCpuS: r.cpuS,
        ...judge(planned, r, opts.stepS),
      };
    };
    const s = await search(`${spec.label} registrations`, opts.regStart, opts.stepS, opts.budgetS, step, opts.quick ? 2 : 4);
    commands.push(lastClientCmd.replace(/-m \d+/, '-m RATE×STEP').replace(/-r \d+/, '-r RATE').replace(/-p \d+/, '-p PORT').replace(/-l \d+/, '-l LIMIT').replace(/\/tmp\/\S+\//g, ''));
    const b = s.best;
    return {
      target: spec.label,
      what: 'registrations',
      best: b?.rate ?? 0,
      bestStep: b,
      firstFail: s.firstFail?.rate,
      steps: s.steps,
      targetCpuPer1k: per1k(b?.targetCpuS, b?.successful),
      clientCpuPer1k: per1k(b?.clientCpuS, b?.successful),
      bottleneck: bottleneckOf(b, s.firstFail, spec.label),
      commands,
    };
  } finally {
    await t.stop();
    if (!process.env.SIPEDGE_BENCH_KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }
}
