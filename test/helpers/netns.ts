/**
 * Processes, HTTP requests, SIPp runs and packet counters inside NAT-lab namespaces, for the
 * end-to-end tests that run the real edge in the `edge` namespace and SIPp phones in the phone
 * namespaces (lab/README.md).
 *
 *   const edge = await startEdgeIn(lab, 'edge', configPath);          // `sipedge start -c FILE`, waits for "sipedge ready"
 *   const calls = await httpJsonIn(lab, 'edge', 'http://127.0.0.1:8088/api/calls');  // fetch from inside the namespace
 *   const uas = sippIn(lab, 'b1', ['-sf', 'uas.xml', ...], { dir: work, name: 'uas' });
 *   const res = await uas.done;                                        // { code, out }; uas.trace() parses -trace_msg
 *   const c = await countUdpLength(lab, 'b1', { dport: 6000, length: 200 }); // iptables -m length counter
 *   const r = await cliIn(lab, 'edge', ['show', 'peers', '--json']);   // the CLI as a one-shot command: { code, stdout, stderr }
 *   await edge.stop();
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PacketCounter, type ExecResult, type HostName, type Lab, type PortMatch } from '../../lab/lab.js';
import { REPO_ROOT, cliCommand } from './edge.js';
import { readStatCsv } from './sipp.js';

/** A process running inside a namespace, with its output (stdout + stderr, tail). */
export interface NsProcess {
  child: ChildProcess;
  /** stdout + stderr so far (the last `keepChars`). */
  out(): string;
  /** Resolves with the exit code (null when killed by a signal or not spawned). */
  exit: Promise<number | null>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number, signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `argv` inside `host`'s namespace (killed by `lab.down()` at the latest). */
export function spawnIn(lab: Lab, host: HostName, argv: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; keepChars?: number } = {}): NsProcess {
  const child = lab.spawn(host, argv, {
    cwd: opts.cwd ?? REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: opts.env ?? { ...process.env, NO_COLOR: '1' },
  });
  const keepChars = opts.keepChars ?? 400_000;
  let out = '';
  const keep = (d: Buffer) => {
    out = (out + d.toString('latin1')).slice(-keepChars);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exit = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', (e) => {
      out += `\nspawn error: ${e.message}`;
      resolve(null);
    });
  });
  return {
    child,
    out: () => out,
    exit,
    async stop(graceMs = 5000, signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
        const code = await exit;
        clearTimeout(t);
        return code;
      }
      return exit;
    },
  };
}

/**
 * Waits until `p` printed `ready` (a substring, or a pattern tested on all its output so far).
 * Throws when it exits first, or (after killing it) when `timeoutMs` passes.
 */
export async function waitOutputIn(p: NsProcess, ready: string | RegExp, what: string, timeoutMs: number): Promise<NsProcess> {
  const deadline = Date.now() + timeoutMs;
  const seen = () => (typeof ready === 'string' ? p.out().includes(ready) : ready.test(p.out()));
  while (!seen()) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`${what} exited (${p.child.exitCode ?? p.child.signalCode}) before it was ready\n${p.out().slice(-4000)}`);
    if (Date.now() > deadline) {
      await p.stop(1000, 'SIGKILL');
      throw new Error(`${what} not ready within ${timeoutMs} ms\n${p.out().slice(-4000)}`);
    }
    await sleep(50);
  }
  return p;
}

/** Runs the real CLI (`sipedge start -c FILE`, see helpers/edge.ts cliCommand) inside a namespace; resolves once it logged "sipedge ready". */
export async function startEdgeIn(lab: Lab, host: HostName, configPath: string, readyTimeoutMs = 30_000): Promise<NsProcess> {
  const p = spawnIn(lab, host, [...cliCommand(), 'start', '-c', configPath]);
  return waitOutputIn(p, '"msg":"sipedge ready"', 'sipedge', readyTimeoutMs);
}

/** Runs the real CLI once inside a namespace (`sipedge ARGS`, e.g. `show peers --json`); never throws on its exit status. */
export function cliIn(lab: Lab, host: HostName, args: string[], timeoutMs = 60_000): Promise<ExecResult> {
  return lab.exec(host, [...cliCommand(), ...args], { allowFail: true, timeoutMs });
}

/** An HTTP request made with plain node inside a namespace: `{ status, body }` (body parsed as JSON when it is). status 0 = no connection. */
export async function httpIn(lab: Lab, host: HostName, method: string, url: string, body?: string): Promise<{ status: number; body: unknown }> {
  const script = `fetch(${JSON.stringify(url)}, { method: ${JSON.stringify(method)}${body !== undefined ? `, body: ${JSON.stringify(body)}` : ''} })
    .then(async (r) => process.stdout.write(JSON.stringify({ status: r.status, text: await r.text() })))
    .catch((e) => { process.stdout.write(JSON.stringify({ status: 0, text: String(e) })); });`;
  const r = await lab.exec(host, [process.execPath, '-e', script], { timeoutMs: 20_000 });
  const out = JSON.parse(r.stdout) as { status: number; text: string };
  let parsed: unknown = out.text;
  try {
    parsed = JSON.parse(out.text);
  } catch {
    /* not JSON: the text */
  }
  return { status: out.status, body: parsed };
}

/** GET `url` from inside a namespace and return the JSON body; throws on a non-2xx status. */
export async function httpJsonIn<T>(lab: Lab, host: HostName, url: string): Promise<T> {
  const r = await httpIn(lab, host, 'GET', url);
  if (r.status < 200 || r.status > 299) throw new Error(`GET ${url} (in ${host}): HTTP ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as T;
}

/** Waits until something has bound UDP `port` inside a namespace. */
export async function waitUdpBound(lab: Lab, host: HostName, port: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await lab.exec(host, ['ss', '-Hunl', `sport = :${port}`], { allowFail: true });
    if (r.stdout.trim()) return;
    await sleep(50);
  }
  throw new Error(`nothing bound udp port ${port} in ${host} within ${timeoutMs} ms`);
}

// ------------------------------------------------------------------ SIPp

/** One message of a SIPp `-trace_msg` file. */
export interface SippTraceEntry {
  /** When SIPp logged it, Unix ms (local time as SIPp printed it). */
  at: number;
  dir: 'sent' | 'received';
  transport: string;
  /** The message, LF line ends. */
  text: string;
  /** Start line. */
  first: string;
}

/**
 * Parses a SIPp -trace_msg file. Each entry is
 * `----------------------------------------------- 2024-05-01\t12:00:00.123456` then
 * `UDP message sent (412 bytes):` (or `received [412] bytes :`), a blank line and the message.
 */
export function readSippTrace(file: string): SippTraceEntry[] {
  const s = fs.existsSync(file) ? fs.readFileSync(file, 'latin1') : '';
  const out: SippTraceEntry[] = [];
  const parts = s.split(/^-{20,}[ \t]*(.*)$/m);
  // split with one capture group: [before, stamp1, block1, stamp2, block2, ...]
  for (let i = 1; i + 1 < parts.length; i += 2) {
    const stamp = parts[i].trim();
    const block = parts[i + 1];
    const m = /^\s*(UDP|TCP|TLS|SCTP)\s+message\s+(sent|received)[^\n]*\n([\s\S]*)$/.exec(block);
    if (!m) continue;
    const sm = /^(\d{4}-\d{2}-\d{2})\s+(\d{2}:\d{2}:\d{2})(?:\.(\d+))?/.exec(stamp);
    const at = sm ? new Date(`${sm[1]}T${sm[2]}`).getTime() + Number(`0.${sm[3] ?? '0'}`) * 1000 : NaN;
    const text = m[3].replace(/\r/g, '').replace(/^\n+/, '').replace(/\n+$/, '\n');
    out.push({ at, dir: m[2] as SippTraceEntry['dir'], transport: m[1], text, first: text.split('\n')[0].trim() });
  }
  return out;
}

/** The value of header `name` in a traced message. */
export function traceHeader(e: SippTraceEntry, name: string): string | undefined {
  const re = new RegExp(`^${name}\\s*:\\s*(.*)$`, 'im');
  return re.exec(e.text)?.[1]?.trim();
}

/** A SIPp process inside a namespace. */
export interface SippRun {
  name: string;
  command: string;
  proc: NsProcess;
  /** Resolves when SIPp exits: exit code (0 = every call succeeded) and output tail. */
  done: Promise<{ code: number | null; out: string }>;
  files: { errors: string; messages: string; stat: string };
  /** The -trace_msg entries so far. */
  trace(): SippTraceEntry[];
  /** SIGUSR1 (SIPp's "quit after the running calls"), SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<{ code: number | null; out: string }>;
  /** Command, exit, errors, screen tail: for assertion messages. */
  describe(res?: { code: number | null; out: string }): string;
}

let sippSeq = 0;

/**
 * Starts `sipp ARGS` inside `host` with `-nostdin`, `-trace_msg`, `-trace_err` and `-trace_stat`
 * into `dir` (files named `<seq>-<host>-<name>`), working directory `cwd` (default `dir`: SIPp
 * finds play_pcap_audio files relative to the scenario's directory or the working directory).
 * A hard SIGKILL after `timeoutMs` (default 120 s) bounds it; `timeoutMs: 0` sets none (a phone
 * that lives as long as the lab: `lab.down()` kills it at the latest).
 */
export function sippIn(lab: Lab, host: HostName, args: string[], opts: { dir: string; name: string; cwd?: string; timeoutMs?: number }): SippRun {
  const name = `${++sippSeq}-${host}-${opts.name}`;
  const files = {
    errors: path.join(opts.dir, `${name}-errors.log`),
    messages: path.join(opts.dir, `${name}-messages.log`),
    stat: path.join(opts.dir, `${name}-stat.csv`),
  };
  const argv = [
    'sipp',
    ...args,
    '-nostdin',
    '-trace_err',
    '-error_file',
    files.errors,
    '-trace_msg',
    '-message_file',
    files.messages,
    '-trace_stat',
    '-stf',
    files.stat,
  ];
  const proc = spawnIn(lab, host, argv, { cwd: opts.cwd ?? opts.dir, keepChars: 40_000 });
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const hard = timeoutMs > 0 ? setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs) : undefined;
  const done = proc.exit.then((code) => {
    clearTimeout(hard);
    return { code, out: proc.out() };
  });
  const command = `ip netns exec ${lab.ns(host)} ${argv.join(' ')}`;
  const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'latin1') : '');
  return {
    name,
    command,
    proc,
    done,
    files,
    trace: () => readSippTrace(files.messages),
    async stop(graceMs = 5000) {
      if (proc.child.exitCode === null && proc.child.signalCode === null) {
        proc.child.kill('SIGUSR1');
        const t = setTimeout(() => proc.child.kill('SIGKILL'), graceMs);
        const r = await done;
        clearTimeout(t);
        return r;
      }
      return done;
    },
    describe(res) {
      const r = res ?? { code: proc.child.exitCode, out: proc.out() };
      return [
        `$ ${command}`,
        `exit code ${r.code}`,
        `--- SIPp errors ---\n${read(files.errors).slice(-3000)}`,
        `--- SIPp screen (tail) ---\n${r.out.slice(-2500)}`,
        `(messages: ${files.messages})`,
      ].join('\n');
    },
  };
}

/** Cumulative counters of the last row of a SIPp -trace_stat CSV (e.g. `SuccessfulCall(C)`): helpers/sipp.ts readStatCsv. */
export const sippStats: (file: string) => Record<string, string> = readStatCsv;

// ------------------------------------------------------------------ counters

/**
 * A UDP packet counter that also matches the IPv4 total length (`iptables -m length`), so that
 * two RTP streams of different packet sizes on one port are counted apart (helpers/rtp_pcap.ts
 * `rtpIpLength`). Lives in the same LAB_* chains as the lab's own counters (`lab.counters()`
 * reads it; `lab.down()` removes it).
 */
export async function countUdpLength(
  lab: Lab,
  host: HostName,
  m: { length: number; hook?: 'in' | 'out'; src?: string; dst?: string; sport?: PortMatch; dport?: PortMatch; name: string },
): Promise<PacketCounter> {
  const chain = m.hook === 'out' ? 'LAB_OUT' : 'LAB_IN';
  // A plain counter first: makes sure the lab's chain exists and is hooked in.
  await lab.countPackets(host, { hook: m.hook ?? 'in', proto: 'udp', name: `${m.name}_any` });
  const port = (p: PortMatch) => (Array.isArray(p) ? `${p[0]}:${p[1]}` : String(p));
  const rule = ['-p', 'udp'];
  if (m.src) rule.push('-s', m.src);
  if (m.dst) rule.push('-d', m.dst);
  if (m.sport !== undefined) rule.push('--sport', port(m.sport));
  if (m.dport !== undefined) rule.push('--dport', port(m.dport));
  rule.push('-m', 'length', '--length', String(m.length), '-m', 'comment', '--comment', m.name);
  await lab.exec(host, ['iptables', '-w', '-A', chain, ...rule]);
  const c = new PacketCounter(lab, host, m.name);
  await c.reset();
  return c;
}
