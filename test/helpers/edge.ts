/**
 * Runs the real sipedge CLI as a child process for end-to-end tests.
 *
 * `startEdge()` writes a config into a fresh temp dir, picks free ports on 127.0.0.1, spawns
 * `node --import tsx src/cli/main.ts start -c FILE` and resolves once the edge logs `sipedge ready`.
 * `SIPEDGE_E2E_CMD` replaces the command (e.g. `node dist/cli/main.js`); `start -c FILE` is
 * appended to it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const HOST = '127.0.0.1';

const READY_MSG = 'sipedge ready';

export interface User {
  username: string;
  password: string;
}

export interface EdgeOptions {
  users?: User[];
  /** Extra config keys, merged over the generated ones (top level only). */
  config?: Record<string, unknown>;
  /** ms to wait for `sipedge ready`; default 15 000. */
  readyTimeoutMs?: number;
  /** Prefix for the temp dir name. */
  name?: string;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The command that runs the CLI, as argv (without `start -c FILE`). */
export function cliCommand(): string[] {
  const custom = process.env.SIPEDGE_E2E_CMD?.trim();
  if (custom) return custom.split(/\s+/);
  return [process.execPath, '--import', 'tsx', path.join(REPO_ROOT, 'src', 'cli', 'main.ts')];
}

/** A port that is free for UDP and TCP on `host` at the time of the call. */
export async function freePort(opts: { udp?: boolean; tcp?: boolean } = { udp: true, tcp: true }, host = HOST): Promise<number> {
  const wantUdp = opts.udp !== false;
  const wantTcp = opts.tcp !== false;
  for (let attempt = 0; attempt < 50; attempt++) {
    // Let the kernel choose with whichever protocol is asked first, then check the other.
    const port = wantUdp ? await bindUdp(0, host) : await bindTcp(0, host);
    if (port === null) continue;
    if (wantUdp && wantTcp && (await bindTcp(port, host)) === null) continue;
    return port;
  }
  throw new Error('freePort: no free port found in 50 attempts');
}

/** Binds and closes; resolves the port, or null if it was in use. */
function bindUdp(port: number, host: string): Promise<number | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => {
      s.close();
      resolve(null);
    });
    s.bind(port, host, () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

function bindTcp(port: number, host: string): Promise<number | null> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(null));
    srv.listen({ port, host, exclusive: true }, () => {
      const addr = srv.address();
      const p = typeof addr === 'object' && addr ? addr.port : null;
      srv.close(() => resolve(p));
    });
  });
}

/** True when something is bound to this UDP port. */
export async function udpPortInUse(port: number, host = HOST): Promise<boolean> {
  return (await bindUdp(port, host)) === null;
}

export function makeTempDir(name = 'sipedge-e2e'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `${name}-`));
}

/** A running (or stopped) edge process with its config, ports and captured output. */
export class EdgeProcess {
  readonly dir: string;
  readonly configPath: string;
  readonly dbPath: string;
  readonly sipPort: number;
  readonly apiPort: number;
  readonly host = HOST;
  readonly users: User[];
  private readonly readyTimeoutMs: number;
  private child: ChildProcess | null = null;
  private exitPromise: Promise<ExitInfo> | null = null;
  private out = '';
  /** Output of every run so far, including previous runs before restart(). */
  private history = '';

  constructor(opts: { dir: string; configPath: string; dbPath: string; sipPort: number; apiPort: number; users: User[]; readyTimeoutMs: number }) {
    this.dir = opts.dir;
    this.configPath = opts.configPath;
    this.dbPath = opts.dbPath;
    this.sipPort = opts.sipPort;
    this.apiPort = opts.apiPort;
    this.users = opts.users;
    this.readyTimeoutMs = opts.readyTimeoutMs;
  }

  /** `127.0.0.1:PORT`: the SIP domain and the address SIPp sends to. */
  get address(): string {
    return `${this.host}:${this.sipPort}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** stdout + stderr of the current run. */
  output(): string {
    return this.out;
  }

  /** stdout + stderr of all runs. */
  allOutput(): string {
    return this.history + this.out;
  }

  /** The pino JSON lines of the current run (lines that are not JSON are skipped). */
  logs(): Array<Record<string, unknown>> {
    return parseJsonLines(this.out);
  }

  /** Spawns the CLI and waits for `sipedge ready`. */
  async start(): Promise<void> {
    if (this.running) throw new Error('edge already running');
    this.history += this.out;
    this.out = '';
    const [cmd, ...args] = cliCommand();
    const child = spawn(cmd, [...args, 'start', '-c', this.configPath], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    this.child = child;
    this.exitPromise = new Promise((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    await new Promise<void>((resolve, reject) => {
      let buffered = '';
      let done = false;
      const finish = (err?: Error) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      const onData = (chunk: Buffer) => {
        const text = chunk.toString('utf8');
        this.out += text;
        buffered += text;
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          const rec = parseJsonLine(line);
          if (rec && rec.msg === READY_MSG) finish();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', (chunk: Buffer) => {
        this.out += chunk.toString('utf8');
      });
      child.once('error', (err) => finish(new Error(`could not spawn the edge (${cmd}): ${err.message}`)));
      child.once('exit', (code, signal) =>
        finish(new Error(`edge exited before "${READY_MSG}" (code ${code}, signal ${signal})\n--- output ---\n${this.out}`)),
      );
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        finish(new Error(`edge did not log "${READY_MSG}" within ${this.readyTimeoutMs} ms\n--- output ---\n${this.out}`));
      }, this.readyTimeoutMs);
    });
  }

  /** SIGTERM (or `signal`), then SIGKILL after `killAfterMs`; resolves with how it exited. */
  async stop(killAfterMs = 5000, signal: NodeJS.Signals = 'SIGTERM'): Promise<ExitInfo> {
    const child = this.child;
    if (!child || !this.exitPromise) return { code: null, signal: null };
    if (!this.running) return this.exitPromise;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    try {
      return await this.exitPromise;
    } finally {
      clearTimeout(timer);
    }
  }

  /** stop() then start() with the same config, ports and SQLite file. Rejects if the stop was not clean. */
  async restart(): Promise<ExitInfo> {
    const exit = await this.stop();
    if (exit.code !== 0) {
      throw new Error(`edge did not stop cleanly on SIGTERM (code ${exit.code}, signal ${exit.signal})\n--- output ---\n${this.out}`);
    }
    await this.start();
    return exit;
  }

  /** GET http://API/path and parse JSON; rejects on a non-2xx status. */
  async fetchJson<T = unknown>(urlPath: string): Promise<T> {
    const res = await fetch(`http://${this.host}:${this.apiPort}${urlPath}`);
    const text = await res.text();
    if (!res.ok) throw new Error(`GET ${urlPath}: HTTP ${res.status}: ${text}`);
    return JSON.parse(text) as T;
  }

  /** Stops the edge (if running) and removes the temp dir unless SIPEDGE_E2E_KEEP is set. */
  async dispose(): Promise<void> {
    await this.stop();
    if (!process.env.SIPEDGE_E2E_KEEP) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Writes a config for a loopback edge and starts it. */
export async function startEdge(opts: EdgeOptions = {}): Promise<EdgeProcess> {
  return startPrepared(await prepareEdge(opts));
}

/**
 * Starts an edge made by {@link prepareEdge} (its config file possibly edited since); if it does
 * not become ready, disposes of it (stop, temp dir removed) and rethrows.
 */
export async function startPrepared(edge: EdgeProcess): Promise<EdgeProcess> {
  try {
    await edge.start();
  } catch (err) {
    await edge.dispose();
    throw err;
  }
  return edge;
}

/** Like startEdge() without starting it. */
export async function prepareEdge(opts: EdgeOptions = {}): Promise<EdgeProcess> {
  const dir = makeTempDir(opts.name ?? 'sipedge-e2e');
  const sipPort = await freePort({ udp: true, tcp: true });
  let apiPort = await freePort({ udp: false, tcp: true });
  while (apiPort === sipPort) apiPort = await freePort({ udp: false, tcp: true });
  const dbPath = path.join(dir, 'sipedge.db');
  const users = opts.users ?? [];
  const config: Record<string, unknown> = {
    listen: [`udp:${HOST}:${sipPort}`, `tcp:${HOST}:${sipPort}`],
    store: `sqlite:${dbPath}`,
    registrar: { domains: [] },
    users,
    api: { listen: `${HOST}:${apiPort}` },
    log: { level: 'info' },
    media: { relay: 'never' },
    ...opts.config,
  };
  const configPath = path.join(dir, 'sipedge.yaml');
  fs.writeFileSync(configPath, YAML.stringify(config));
  return new EdgeProcess({ dir, configPath, dbPath, sipPort, apiPort, users, readyTimeoutMs: opts.readyTimeoutMs ?? 15_000 });
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs the CLI with `args` to completion (SIGKILL after timeoutMs). */
export function runCli(args: string[], opts: { timeoutMs?: number; cwd?: string } = {}): Promise<CliResult> {
  const [cmd, ...pre] = cliCommand();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...pre, ...args], {
      cwd: opts.cwd ?? REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 20_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

export function parseJsonLine(line: string): Record<string, unknown> | null {
  const t = line.trim();
  if (!t.startsWith('{')) return null;
  try {
    const v: unknown = JSON.parse(t);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export function parseJsonLines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .map(parseJsonLine)
    .filter((r): r is Record<string, unknown> => r !== null);
}
