/**
 * Small helpers shared by the benchmarks: free ports, process CPU from /proc, the machine
 * description, child processes that are always bounded in time, and table formatting.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_ROOT = path.resolve(BENCH_DIR, '..');
export const HOST = '127.0.0.1';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Clock ticks per second of /proc/<pid>/stat times (`getconf CLK_TCK`, 100 on Linux). */
export const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** utime + stime of one process (all its threads), seconds; NaN when it is gone. */
export function procCpuSeconds(pid: number): number {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces: parse after its closing parenthesis.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state): utime is field 14, stime field 15.
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** Parent pid of a process, or -1. */
function ppidOf(pid: number): number {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return -1;
  }
}

/** The process and all its descendants (Kamailio forks its workers). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const pid = Number(d);
    const pp = ppidOf(pid);
    if (pp < 0) continue;
    const list = children.get(pp);
    if (list) list.push(pid);
    else children.set(pp, [pid]);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    for (const c of children.get(p) ?? []) stack.push(c);
  }
  return out;
}

/** CPU seconds of a process tree; the tree is listed once (`pids`) so that the before/after sums match. */
export function treeCpuSeconds(pids: number[]): number {
  let sum = 0;
  for (const p of pids) {
    const v = procCpuSeconds(p);
    if (!Number.isNaN(v)) sum += v;
  }
  return sum;
}

/** Resident set size of a process, bytes (VmRSS), or NaN. */
export function procRssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** A port free for UDP (and TCP when asked) on 127.0.0.1 at the time of the call. */
export async function freePort(tcp = true): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise<number | null>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.once('error', () => {
        s.close();
        resolve(null);
      });
      s.bind(0, HOST, () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    if (port === null) continue;
    if (!tcp) return port;
    const ok = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen({ port, host: HOST, exclusive: true }, () => srv.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port found');
}

export function makeTempDir(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `sipedge-bench-${name}-`));
}

/** The machine, for BENCHMARKS.md. */
export function machineInfo(): Record<string, string> {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1]?.trim() ?? 'unknown';
  const mhz = /cpu MHz\s*:\s*(.*)/.exec(cpuinfo)?.[1]?.trim();
  const version = (cmd: string, args: string[], re: RegExp): string => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    const m = re.exec(`${r.stdout ?? ''}${r.stderr ?? ''}`);
    return m ? m[1].replace(/\.$/, '') : 'not installed';
  };
  return {
    nproc: String(os.cpus().length),
    cpu: mhz ? `${model} (${Number(mhz).toFixed(0)} MHz)` : model,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    kamailio: version('kamailio', ['-v'], /version: kamailio (\S+)/),
    rtpengine: version('rtpengine', ['--version'], /Version: (\S+)/),
    sipp: version('sipp', ['-v'], /SIPp (v[\w.\-+]+)/),
  };
}

/** A child process with a hard kill timer; `stop()` sends `signal` then SIGKILL. */
export interface Child {
  proc: ChildProcess;
  pid: number;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

/**
 * Niceness of every process the benchmark starts (targets, SIPp, load generators), so that other
 * work on a shared machine disturbs the measurement less; `SIPEDGE_BENCH_NICE=0` turns it off.
 * Every target gets the same, so the comparison stays fair.
 */
export const BENCH_NICE = Number(process.env.SIPEDGE_BENCH_NICE ?? -10);

/**
 * With the kernel's autogroup scheduling (`/proc/sys/kernel/sched_autogroup_enabled` = 1), CPU
 * is shared fairly between sessions first and `nice` only orders processes inside one session,
 * so the niceness is also given to this session's autogroup (`/proc/self/autogroup`; root may
 * lower it) until the benchmark exits. Only this benchmark's own session is affected.
 * Returns what was done.
 */
export function raiseAutogroupPriority(): string {
  if (BENCH_NICE === 0 || !Number.isFinite(BENCH_NICE)) return 'off';
  try {
    if (fs.readFileSync('/proc/sys/kernel/sched_autogroup_enabled', 'utf8').trim() !== '1') return 'autogroup scheduling off';
    const before = /nice\s+(-?\d+)/.exec(fs.readFileSync('/proc/self/autogroup', 'utf8'))?.[1] ?? '0';
    fs.writeFileSync('/proc/self/autogroup', String(BENCH_NICE));
    // Give the session its previous priority back when the benchmark ends.
    process.once('exit', () => {
      try {
        fs.writeFileSync('/proc/self/autogroup', before);
      } catch {
        // nothing to restore
      }
    });
    return fs.readFileSync('/proc/self/autogroup', 'utf8').trim();
  } catch (err) {
    return `not changed (${(err as Error).message})`;
  }
}

/** Every child still running, so that an interrupted benchmark leaves no process behind. */
const live = new Set<ChildProcess>();
let exitHooked = false;

/** Registers a child for {@link killAll} (spawnChild does it; other spawns call this). */
export function track(proc: ChildProcess): void {
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  if (exitHooked) return;
  exitHooked = true;
  process.once('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

/** SIGKILLs every tracked child still running. */
export function killAll(): void {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}

/**
 * Spawns a command (under `nice -n BENCH_NICE`, which execs it: the pid is the command's);
 * stdout+stderr are kept (tail). It is SIGKILLed after `hardTimeoutMs`.
 */
export function spawnChild(cmd: string, args: string[], opts: SpawnOptions & { hardTimeoutMs: number }): Child {
  const niced = BENCH_NICE !== 0 && Number.isFinite(BENCH_NICE);
  const proc = niced
    ? spawn('nice', ['-n', String(BENCH_NICE), cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
    : spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  if (proc.pid === undefined) throw new Error(`could not spawn ${cmd}`);
  track(proc);
  let out = '';
  const keep = (s: string): string => (s.length > 400_000 ? s.slice(-200_000) : s);
  proc.stdout?.on('data', (c: Buffer) => (out = keep(out + c.toString('latin1'))));
  proc.stderr?.on('data', (c: Buffer) => (out = keep(out + c.toString('latin1'))));
  const hard = setTimeout(() => proc.kill('SIGKILL'), opts.hardTimeoutMs);
  hard.unref();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once('exit', (code, signal) => {
      clearTimeout(hard);
      resolve({ code, signal });
    });
    proc.once('error', () => {
      clearTimeout(hard);
      resolve({ code: null, signal: null });
    });
  });
  return {
    proc,
    pid: proc.pid,
    output: () => out,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Resolves when `text()` matches `re`, rejects after `timeoutMs` or when the child exits. */
export async function waitForOutput(child: Child, re: RegExp, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void child.exited.then(() => (exited = true));
  while (Date.now() < deadline) {
    if (re.test(child.output())) return;
    if (exited) throw new Error(`${what} exited before it was ready:\n${child.output().slice(-3000)}`);
    await sleep(50);
  }
  throw new Error(`${what} was not ready within ${timeoutMs} ms:\n${child.output().slice(-3000)}`);
}

/** Formats a number with a few significant digits. */
export function fmt(n: number | undefined, digits = 3): string {
  if (n === undefined || Number.isNaN(n)) return '—';
  if (!Number.isFinite(n)) return '∞';
  const a = Math.abs(n);
  if (a >= 1000) return Math.round(n).toLocaleString('en-US');
  if (a === 0) return '0';
  return Number(n.toPrecision(digits)).toString();
}

/** sipedge / baseline, formatted `0.62×`. */
export function ratio(ours: number | undefined, base: number | undefined): string {
  if (ours === undefined || base === undefined || !Number.isFinite(ours) || !Number.isFinite(base) || base === 0) return '—';
  return `${(ours / base).toFixed(2)}×`;
}

/** A plain-text table with aligned columns. */
export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** A Markdown table. */
export function mdTable(head: string[], rows: string[][]): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  return [`| ${head.map(esc).join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

/** Logs a progress line to stderr (the table goes to stdout). */
export function progress(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** Busy CPU seconds of the whole machine (all cores) from /proc/stat. */
export function systemBusySeconds(): number {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return (f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] ?? 0)) / CLK_TCK;
}

/** UDP datagrams the kernel dropped because a socket's receive buffer was full (machine-wide). */
export function udpRcvbufErrors(): number {
  const lines = fs.readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
  if (lines.length < 2) return NaN;
  const head = lines[0].split(/\s+/);
  const vals = lines[1].split(/\s+/);
  return Number(vals[head.indexOf('RcvbufErrors')]);
}
