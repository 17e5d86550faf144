/**
 * Runs SIPp (`sipp`, Debian package `sip-tester`) for end-to-end tests.
 *
 * `runSipp()` runs a bounded client scenario to completion (`-m` calls, `-timeout`, and a hard
 * kill timer). `startSipp()` starts a server (UAS) scenario in the background; `stop()` asks it
 * to finish (SIGUSR1, like pressing `q`) and resolves with its result.
 *
 * The result combines SIPp's exit code (0: all calls succeeded, 1: at least one failed,
 * 97: stopped by an internal command, 99: no call processed, 255/-1: fatal error, 254/-2: could
 * not bind) with the counters of its `-trace_stat` CSV (last row; cumulative columns) and, as a
 * fallback, of its final statistics screen.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HOST, makeTempDir, udpPortInUse } from './edge.js';

export const SCENARIO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'e2e', 'scenarios');

const SIPP = process.env.SIPP_BIN ?? 'sipp';

let sippChecked: string | null = null;

/**
 * The SIPp version line; throws a clear error when SIPp is missing. End-to-end tests call this
 * first and must fail (not skip) without SIPp: CI installs it.
 */
export function requireSipp(): string {
  if (sippChecked) return sippChecked;
  const r = spawnSync(SIPP, ['-v'], { encoding: 'utf8' });
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  const m = /SIPp v[\w.\-+]+/.exec(text);
  if (r.error || !m) {
    throw new Error(
      `SIPp is required for the end-to-end tests but \`${SIPP}\` could not be run` +
        `${r.error ? ` (${r.error.message})` : ''}.\n` +
        'Install it with: apt-get install -y sip-tester   (npm test does this by itself when run as root; .ci/run always does)',
    );
  }
  sippChecked = m[0];
  return sippChecked;
}

export interface SippOptions {
  /** Scenario file: a name in test/e2e/scenarios (with or without .xml) or a path. */
  scenario?: string;
  /** Instead of a file: one of SIPp's built-in scenarios (-sn uac, uas, ...). */
  builtin?: string;
  /** host:port to send to (client scenarios). */
  remote?: string;
  /** -i local IP; default 127.0.0.1. */
  localIp?: string;
  /** -p local port; default: SIPp chooses (use freePort() when the port matters). */
  localPort?: number;
  /** -m: stop after this many calls. */
  calls?: number;
  /** -r calls per second (-rp 1000). */
  rate?: number;
  /** -l max simultaneous calls. */
  limit?: number;
  /** -d: duration of <pause/> without an explicit time, ms. */
  pauseMs?: number;
  /** -s: user part of the Request-URI ([service]). */
  service?: string;
  /** -au / -ap: digest credentials for [authentication]. */
  authUser?: string;
  authPassword?: string;
  /** -auth_uri: digest-uri without the `sip:` (SIPp's default is remote ip:port). */
  authUri?: string;
  /** -key NAME VALUE for each entry ([NAME] in the scenario). */
  keys?: Record<string, string | number>;
  /** -inf: a CSV file, or rows to write into one (first line SEQUENTIAL is added). */
  inf?: string | string[][];
  /** -recv_timeout ms: a call that waits longer for a message fails; default 10 000. */
  recvTimeoutMs?: number;
  /** SIPp's own -timeout, s (it then quits); default from timeoutMs. */
  sippTimeoutS?: number;
  /** Hard limit, ms: SIGKILL after it; default 120 000. */
  timeoutMs?: number;
  /** -aa: answer OPTIONS/INFO/NOTIFY/UPDATE with 200 (servers: the edge may qualify contacts). */
  autoAnswer?: boolean;
  /** -trace_msg into the trace dir (default on; set SIPEDGE_E2E_SIPP_TRACE=0 to turn off). */
  traceMessages?: boolean;
  /** Directory for stat/error/message files; default a new temp dir. */
  dir?: string;
  /** Label for file names; default the scenario name. */
  name?: string;
  /** Any other arguments. */
  extraArgs?: string[];
}

export interface SippResult {
  command: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  successful: number;
  failed: number;
  created: number;
  /** Last row of the -trace_stat CSV, column name -> value. */
  stats: Record<string, string>;
  stdout: string;
  stderr: string;
  /** -trace_err contents (unexpected messages and errors), minus known harmless noise. */
  errors: string;
  /** The message table of SIPp's final screen, one row per scenario element, in order. */
  messages: MessageRow[];
  /** Paths of SIPp's output files. */
  files: { stat: string; errors: string; messages: string; screen: string };
}

/** A row of SIPp's message table: how often a scenario element was sent/received. */
export interface MessageRow {
  /** Method or status code (`INVITE`, `180`), or `Pause`. */
  message: string;
  dir: 'send' | 'recv' | 'pause';
  count: number;
  retrans: number;
  /** Messages that arrived while this element was expected (recv rows). */
  unexpected: number;
}

interface Prepared {
  args: string[];
  files: SippResult['files'];
  hardTimeoutMs: number;
}

function prepare(opts: SippOptions): Prepared {
  const dir = opts.dir ?? makeTempDir('sipedge-sipp');
  fs.mkdirSync(dir, { recursive: true });
  if (!opts.scenario === !opts.builtin) throw new Error('runSipp: give exactly one of scenario and builtin');
  const scenarioArgs = opts.builtin ? ['-sn', opts.builtin] : ['-sf', resolveScenario(opts.scenario!)];
  const name = opts.name ?? (opts.builtin ? `builtin-${opts.builtin}` : path.basename(scenarioArgs[1], '.xml'));
  const stamp = `${name}-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
  const files = {
    stat: path.join(dir, `${stamp}-stat.csv`),
    errors: path.join(dir, `${stamp}-errors.log`),
    messages: path.join(dir, `${stamp}-messages.log`),
    screen: path.join(dir, `${stamp}-screen.log`),
  };
  const hardTimeoutMs = opts.timeoutMs ?? 120_000;
  const args: string[] = [...scenarioArgs];
  if (opts.remote) args.push(opts.remote);
  args.push('-i', opts.localIp ?? HOST);
  if (opts.localPort !== undefined) args.push('-p', String(opts.localPort));
  if (opts.calls !== undefined) args.push('-m', String(opts.calls));
  if (opts.rate !== undefined) args.push('-r', String(opts.rate), '-rp', '1000');
  if (opts.limit !== undefined) args.push('-l', String(opts.limit));
  if (opts.pauseMs !== undefined) args.push('-d', String(opts.pauseMs));
  if (opts.service !== undefined) args.push('-s', opts.service);
  if (opts.authUser !== undefined) args.push('-au', opts.authUser);
  if (opts.authPassword !== undefined) args.push('-ap', opts.authPassword);
  if (opts.authUri !== undefined) args.push('-auth_uri', opts.authUri);
  for (const [k, v] of Object.entries(opts.keys ?? {})) args.push('-key', k, String(v));
  if (opts.inf !== undefined) {
    let infPath: string;
    if (typeof opts.inf === 'string') infPath = opts.inf;
    else {
      infPath = path.join(dir, `${stamp}-inf.csv`);
      fs.writeFileSync(infPath, ['SEQUENTIAL', ...opts.inf.map((row) => row.join(';'))].join('\n') + '\n');
    }
    args.push('-inf', infPath);
  }
  args.push('-recv_timeout', String(opts.recvTimeoutMs ?? 10_000));
  args.push('-timeout', `${opts.sippTimeoutS ?? Math.max(1, Math.floor(hardTimeoutMs / 1000) - 2)}s`);
  if (opts.autoAnswer) args.push('-aa');
  args.push('-nostdin');
  args.push('-trace_stat', '-stf', files.stat, '-fd', '1');
  args.push('-trace_err', '-error_file', files.errors);
  args.push('-trace_screen', '-screen_file', files.screen);
  const trace = opts.traceMessages ?? process.env.SIPEDGE_E2E_SIPP_TRACE !== '0';
  if (trace) args.push('-trace_msg', '-message_file', files.messages);
  args.push(...(opts.extraArgs ?? []));
  return { args, files, hardTimeoutMs };
}

export function resolveScenario(scenario: string): string {
  if (path.isAbsolute(scenario) || scenario.includes('/')) return path.resolve(scenario);
  return path.join(SCENARIO_DIR, scenario.endsWith('.xml') ? scenario : `${scenario}.xml`);
}

/** A SIPp process running in the background. */
export interface SippProcess {
  readonly pid: number | undefined;
  readonly command: string;
  /** Resolves when SIPp exits by itself (or is stopped). */
  readonly result: Promise<SippResult>;
  /** SIGUSR1 (finish the running calls, then quit), then SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<SippResult>;
}

/** Starts SIPp and returns at once; see waitForPort() for servers. */
export function startSipp(opts: SippOptions): SippProcess {
  requireSipp();
  const { args, files, hardTimeoutMs } = prepare(opts);
  const command = [SIPP, ...args].map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ');
  const child = spawn(SIPP, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  // SIPp redraws its screen on stdout every second; keep only the tail.
  const keep = (s: string) => (s.length > 200_000 ? s.slice(-100_000) : s);
  child.stdout.on('data', (c: Buffer) => (stdout = keep(stdout + c.toString('latin1'))));
  child.stderr.on('data', (c: Buffer) => (stderr = keep(stderr + c.toString('latin1'))));
  const hard = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, hardTimeoutMs);
  const result = new Promise<SippResult>((resolve) => {
    const done = (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(hard);
      resolve(collect({ command, code, signal, timedOut, stdout, stderr, files }));
    };
    child.once('error', (err) => {
      stderr += `\nspawn error: ${err.message}`;
      done(null, null);
    });
    child.once('exit', (code, signal) => done(code, signal));
  });
  return {
    pid: child.pid,
    command,
    result,
    async stop(graceMs = 10_000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGUSR1');
        const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
        const r = await result;
        clearTimeout(t);
        return r;
      }
      return result;
    },
  };
}

/** Runs a (client) scenario to completion. */
export function runSipp(opts: SippOptions): Promise<SippResult> {
  return startSipp(opts).result;
}

/** Starts a server scenario on `localPort` and waits until SIPp has bound it. */
export async function startSippServer(opts: SippOptions & { localPort: number }, readyTimeoutMs = 5000): Promise<SippProcess> {
  const p = startSipp({ autoAnswer: true, ...opts });
  let exited = false;
  void p.result.then(() => (exited = true));
  const deadline = Date.now() + readyTimeoutMs;
  while (Date.now() < deadline) {
    if (exited) {
      const r = await p.result;
      throw new Error(`SIPp exited before binding port ${opts.localPort} (code ${r.code})\n${describe(r)}`);
    }
    if (await udpPortInUse(opts.localPort, opts.localIp ?? HOST)) return p;
    await new Promise((r) => setTimeout(r, 50));
  }
  const r = await p.stop(1000);
  throw new Error(`SIPp did not bind port ${opts.localPort} within ${readyTimeoutMs} ms\n${describe(r)}`);
}

/** A SIP account as SIPp uses it (digest credentials). */
export interface SippAccount {
  username: string;
  password: string;
}

/**
 * Options of a UAC call from `caller` (who answers the digest challenge) to `callee` through the
 * edge at `domain` (host:port, also where SIPp sends): Request-URI sip:CALLEE@DOMAIN, so the
 * digest-uri is set to it (SIPp's default is the remote ip:port); keys `domain` and `caller`.
 */
export function authCallOptions(domain: string, caller: SippAccount, callee: { username: string }): SippOptions {
  return {
    remote: domain,
    service: callee.username,
    authUser: caller.username,
    authPassword: caller.password,
    authUri: `${callee.username}@${domain}`,
    keys: { domain, caller: caller.username },
  };
}

/**
 * Options of one digest REGISTER (scenario `register_auth`) of `user` at the edge at `domain`
 * (host:port) from `localPort`, Contact HOST:localPort, Expires 3600; 5 s receive timeout, 30 s
 * in all.
 */
export function registerOptions(domain: string, user: SippAccount, localPort: number): SippOptions & { localPort: number } {
  return {
    scenario: 'register_auth',
    remote: domain,
    localPort,
    calls: 1,
    service: user.username,
    authUser: user.username,
    authPassword: user.password,
    keys: { domain, contact: `${HOST}:${localPort}`, expires: 3600 },
    recvTimeoutMs: 5000,
    timeoutMs: 30_000,
  };
}

/**
 * Runs a call scenario pair: starts the server `uas` (see {@link startSippServer}), runs the
 * client `uac` against it to completion, then stops the UAS (SIGUSR1: it finishes its running
 * calls, so its counters are final). If the UAC run throws, the UAS is stopped and the error
 * rethrown.
 */
export async function runCallPair(uas: SippOptions & { localPort: number }, uac: SippOptions): Promise<{ uac: SippResult; uas: SippResult }> {
  const server = await startSippServer(uas);
  let client: SippResult;
  try {
    client = await runSipp(uac);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return { uac: client, uas: await server.stop() };
}

function collect(r: Omit<SippResult, 'successful' | 'failed' | 'created' | 'stats' | 'errors' | 'messages'>): SippResult {
  const stats = readStatCsv(r.files.stat);
  const screen = readFile(r.files.screen) || r.stdout;
  const num = (col: string, label: string): number => statCounter(stats, screen, col, label);
  const errors = readFile(r.files.errors)
    .split('\n')
    .filter((l) => !/Failed to delete FD from epoll|^The following events occurred:\s*$/.test(l))
    .join('\n')
    .trim();
  return {
    ...r,
    stats,
    successful: num('SuccessfulCall(C)', 'Successful call'),
    failed: num('FailedCall(C)', 'Failed call'),
    created: num('TotalCallCreated', 'Total Calls created'),
    errors,
    messages: parseMessageTable(screen),
  };
}

/**
 * The last message table of a SIPp screen dump:
 *
 *                                  Messages  Retrans   Timeout   Unexpected-Msg
 *       INVITE ---------->         100       0         0
 *          200 <----------  E-RTD1 100       0         0         0
 *        Pause [    500ms]         100                           0
 *   ----------> INVITE             100       0         0         3          (server side)
 */
export function parseMessageTable(screen: string): MessageRow[] {
  const start = screen.lastIndexOf('Messages  Retrans');
  if (start < 0) return [];
  const rows: MessageRow[] = [];
  for (const line of screen.slice(start).split('\n').slice(1)) {
    if (/^\s*(-+ |Last Error|={5,})/.test(line)) break; // "------- Waiting ...", next screen
    let m = /^\s*(\S+) (-{10}>|<-{10})\s+(?:[EB]-RTD\d+\s+)?(.*)$/.exec(line); // client: NAME ---> / NAME <---
    let message: string;
    let dir: MessageRow['dir'];
    let rest: string;
    if (m) {
      message = m[1];
      dir = m[2].endsWith('>') ? 'send' : 'recv';
      rest = m[3];
    } else if ((m = /^\s*(-{10}>|<-{10}) (\S+)\s+(?:[EB]-RTD\d+\s+)?(.*)$/.exec(line))) {
      message = m[2]; // server: ---> NAME (received) / <--- NAME (sent)
      dir = m[1].endsWith('>') ? 'recv' : 'send';
      rest = m[3];
    } else if ((m = /^\s*(?:Pause \[[^\]]*\]|\[[^\]]*\] Pause)\s+(.*)$/.exec(line))) {
      message = 'Pause';
      dir = 'pause';
      rest = m[1];
    } else {
      continue;
    }
    const nums = rest.trim().split(/\s+/).map(Number);
    rows.push({
      message,
      dir,
      count: nums[0] ?? 0,
      retrans: dir === 'pause' ? 0 : (nums[1] ?? 0),
      unexpected: dir === 'recv' ? (nums[3] ?? 0) : dir === 'pause' ? (nums[1] ?? 0) : 0,
    });
  }
  return rows;
}

function readFile(p: string): string {
  try {
    return fs.readFileSync(p, 'latin1');
  } catch {
    return '';
  }
}

/** Last data row of a SIPp -trace_stat CSV (`;`-separated, header first). */
export function readStatCsv(p: string): Record<string, string> {
  const lines = readFile(p)
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  if (lines.length < 2) return {};
  const head = lines[0].split(';');
  const last = lines[lines.length - 1].split(';');
  return Object.fromEntries(head.map((h, i) => [h, last[i] ?? '']));
}

/**
 * The cumulative value of a SIPp counter: column `col` of the -trace_stat row (readStatCsv), else
 * the last value of `label` in the statistics screen, else 0.
 */
export function statCounter(stats: Record<string, string>, screen: string, col: string, label: string): number {
  const v = stats[col];
  if (v !== undefined && v !== '' && !Number.isNaN(Number(v))) return Number(v);
  // "  Successful call        |        0                  |        3     "
  const re = new RegExp(`${label}\\s*\\|[^|]*\\|\\s*(\\d+)`, 'g');
  let last = NaN;
  for (const m of screen.matchAll(re)) last = Number(m[1]);
  return Number.isNaN(last) ? 0 : last;
}

/** A one-paragraph summary for assertion messages: command, exit, counters, errors, stderr. */
export function describe(r: SippResult, maxErrors = 4000): string {
  const parts = [
    `$ ${r.command}`,
    `exit code ${r.code}${r.signal ? ` (signal ${r.signal})` : ''}${r.timedOut ? ' — killed after the hard timeout' : ''}`,
    `calls: ${r.created} created, ${r.successful} successful, ${r.failed} failed`,
  ];
  const failures = Object.entries(r.stats)
    .filter(([k, v]) => /^Failed.*\(C\)$/.test(k) && k !== 'FailedCall(C)' && Number(v) > 0)
    .map(([k, v]) => `${k}=${v}`);
  if (failures.length) parts.push(`failure kinds: ${failures.join(', ')}`);
  if (r.errors) parts.push(`--- SIPp errors (${r.files.errors}) ---\n${r.errors.slice(0, maxErrors)}`);
  if (r.stderr.trim()) parts.push(`--- stderr ---\n${r.stderr.trim().slice(-2000)}`);
  parts.push(`(messages: ${r.files.messages})`);
  return parts.join('\n');
}
