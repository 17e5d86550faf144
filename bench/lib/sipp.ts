/**
 * SIPp (`sip-tester`) runs for the signalling benchmark: a bounded client run (`-m`, `-timeout`,
 * a hard kill timer) measured with `/usr/bin/time` (SIPp's own CPU), and a background server.
 */
import fs from 'node:fs';
import path from 'node:path';
import { HOST, procCpuSeconds, sleep, spawnChild, type Child } from './util.js';
// The stat CSV and screen counters are parsed as the end-to-end tests parse them.
import { readStatCsv, statCounter } from '../../test/helpers/sipp.js';

export { readStatCsv };

export interface SippArgs {
  scenario: string;
  remote?: string;
  localPort?: number;
  calls?: number;
  rate?: number;
  limit?: number;
  pauseMs?: number;
  service?: string;
  authUser?: string;
  authPassword?: string;
  authUri?: string;
  keys?: Record<string, string | number>;
  infPath?: string;
  recvTimeoutMs?: number;
  /** SIPp's own -timeout, s. */
  timeoutS: number;
  dir: string;
  name: string;
}

export interface SippRun {
  successful: number;
  failed: number;
  created: number;
  retransmissions: number;
  /** Wall time of the run, s. */
  elapsedS: number;
  /** SIPp's CPU seconds (user + system). */
  cpuS: number;
  code: number | null;
  command: string;
  files: { stat: string; errors: string; screen: string };
}

function buildArgs(a: SippArgs, files: SippRun['files']): string[] {
  const args = ['-sf', a.scenario];
  if (a.remote) args.push(a.remote);
  args.push('-i', HOST);
  if (a.localPort !== undefined) args.push('-p', String(a.localPort));
  if (a.calls !== undefined) args.push('-m', String(a.calls));
  if (a.rate !== undefined) args.push('-r', String(a.rate), '-rp', '1000');
  if (a.limit !== undefined) args.push('-l', String(a.limit));
  if (a.pauseMs !== undefined) args.push('-d', String(a.pauseMs));
  if (a.service !== undefined) args.push('-s', a.service);
  if (a.authUser !== undefined) args.push('-au', a.authUser);
  if (a.authPassword !== undefined) args.push('-ap', a.authPassword);
  if (a.authUri !== undefined) args.push('-auth_uri', a.authUri);
  for (const [k, v] of Object.entries(a.keys ?? {})) args.push('-key', k, String(v));
  if (a.infPath) args.push('-inf', a.infPath);
  args.push('-recv_timeout', String(a.recvTimeoutMs ?? 5000));
  args.push('-timeout', `${a.timeoutS}s`);
  args.push('-nostdin', '-aa');
  args.push('-trace_stat', '-stf', files.stat, '-fd', '1');
  args.push('-trace_err', '-error_file', files.errors);
  args.push('-trace_screen', '-screen_file', files.screen);
  return args;
}

function filesFor(a: SippArgs): SippRun['files'] {
  const stamp = `${a.name}-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
  return {
    stat: path.join(a.dir, `${stamp}-stat.csv`),
    errors: path.join(a.dir, `${stamp}-errors.log`),
    screen: path.join(a.dir, `${stamp}-screen.log`),
  };
}

/** Runs a client scenario to completion; the wall time of SIPp bounds it (`timeoutS` + 20 s). */
export async function runSippClient(a: SippArgs): Promise<SippRun> {
  const files = filesFor(a);
  const timeFile = path.join(a.dir, `${path.basename(files.stat, '-stat.csv')}-time.txt`);
  const args = buildArgs(a, files);
  const command = ['sipp', ...args].join(' ');
  const started = performance.now();
  const child = spawnChild('/usr/bin/time', ['-f', '%U %S', '-o', timeFile, 'sipp', ...args], { hardTimeoutMs: (a.timeoutS + 20) * 1000 });
  const { code } = await child.exited;
  const elapsedS = (performance.now() - started) / 1000;
  const stats = readStatCsv(files.stat);
  let screen = '';
  try {
    screen = fs.readFileSync(files.screen, 'latin1');
  } catch {
    screen = child.output();
  }
  const num = (col: string, label: string): number => statCounter(stats, screen, col, label);
  let cpuS = NaN;
  try {
    const t = fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
    cpuS = t[0] + t[1];
  } catch {
    // time(1) writes nothing when SIPp was killed
  }
  // time(1) exits with the command's status.
  return {
    successful: num('SuccessfulCall(C)', 'Successful call'),
    failed: num('FailedCall(C)', 'Failed call'),
    created: num('TotalCallCreated', 'Total Calls created'),
    retransmissions: num('Retransmissions(C)', 'Retransmissions'),
    elapsedS,
    cpuS,
    code,
    command,
    files,
  };
}

/** A SIPp server running in the background; CPU is read from /proc while it runs. */
export interface SippServer {
  child: Child;
  cpuSeconds(): number;
  stop(): Promise<void>;
  command: string;
}

/** Starts a server scenario on `localPort` and waits until it answers (its port is bound). */
export async function startSippServer(a: SippArgs & { localPort: number }): Promise<SippServer> {
  const files = filesFor(a);
  const args = buildArgs(a, files);
  const child = spawnChild('sipp', args, { hardTimeoutMs: (a.timeoutS + 20) * 1000 });
  // SIPp binds its port at once; give it a moment and check that it did not exit.
  await sleep(300);
  if (child.proc.exitCode !== null) throw new Error(`SIPp server exited at start:\n${child.output().slice(-2000)}`);
  return {
    child,
    command: ['sipp', ...args].join(' '),
    cpuSeconds: () => procCpuSeconds(child.pid),
    async stop() {
      await child.stop('SIGUSR1', 3000);
    },
  };
}
