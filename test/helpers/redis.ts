/**
 * A real, throw-away redis-server for a test: `startRedis()` runs
 * `redis-server --save '' --appendonly no --port N --bind 127.0.0.1` on a free port with its
 * own temp dir as working directory, waits until it answers PING and resolves a handle whose
 * `stop()` terminates it and removes the dir.
 *
 * Missing redis-server is a failure, never a skip: CI installs it (Debian package `redis-server`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './edge.js';

export const REDIS_HOST = '127.0.0.1';

const INSTALL_HINT = 'Install it with: apt-get install -y redis-server   (Debian/Ubuntu package redis-server; .ci/run installs it)';

export interface RedisServer {
  readonly host: string;
  readonly port: number;
  /** `redis://127.0.0.1:PORT` */
  readonly url: string;
  readonly pid: number;
  /** SIGTERM (SIGKILL after 3 s), wait for exit, remove the temp dir. Idempotent. */
  stop(): Promise<void>;
}

/** Servers not stopped yet: killed when the test process exits, so none outlives it. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Starts redis-server on a free port of 127.0.0.1.
 * @param opts.timeoutMs how long to wait for PONG; default 5000
 * @param opts.args extra redis-server arguments (`['--requirepass', 'pw']`); with a password the
 *   readiness probe sends it (`AUTH`) before PING
 * @throws Error with the install command when redis-server is not on PATH
 */
export async function startRedis(opts: { timeoutMs?: number; args?: string[]; password?: string } = {}): Promise<RedisServer> {
  let lastErr: unknown;
  // A port found free may be taken before redis-server binds it: try a few.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(await freePort({ tcp: true, udp: false }, REDIS_HOST), opts.timeoutMs ?? 5000, opts.args ?? [], opts.password);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') throw err;
      lastErr = err;
    }
  }
  throw lastErr;
}

function startOnce(port: number, timeoutMs: number, extra: string[], password?: string): Promise<RedisServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sipedge-redis-'));
  const args = ['--save', '', '--appendonly', 'no', '--port', String(port), '--bind', REDIS_HOST, '--dir', dir, '--daemonize', 'no', '--logfile', '', ...extra];
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  child.stderr.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  installExitHook();
  running.add(child);

  let stopped: Promise<void> | undefined;
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }
      running.delete(child);
      child.stdout.destroy();
      child.stderr.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  return new Promise<RedisServer>((resolve, reject) => {
    let done = false;
    const fail = (err: Error & { code?: string }): void => {
      if (done) return;
      done = true;
      void stop().then(() => reject(err));
    };
    child.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') {
        const e = new Error(`redis-server not found on PATH: the Redis store tests need a real Redis. ${INSTALL_HINT}`) as Error & { code?: string };
        e.code = 'ENOENT';
        fail(e);
      } else fail(new Error(`redis-server failed to start: ${err.message}`));
    });
    child.once('exit', (code, signal) => fail(new Error(`redis-server exited before answering PING (code ${code}, signal ${signal}); its output:\n${output}`)));
    const deadline = Date.now() + timeoutMs;
    const poll = (): void => {
      if (done) return;
      void ping(port, REDIS_HOST, password).then((ok) => {
        if (done) return;
        if (ok) {
          done = true;
          resolve({ host: REDIS_HOST, port, url: `redis://${REDIS_HOST}:${port}`, pid: child.pid ?? -1, stop });
        } else if (Date.now() > deadline) fail(new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms; its output:\n${output}`));
        else setTimeout(poll, 25);
      });
    };
    poll();
  });
}

/** True when a Redis on host:port answers `PING` with `+PONG` (after `AUTH password` when given). */
export function ping(port: number, host = REDIS_HOST, password?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let buf = '';
    const finish = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => finish(false));
    s.on('error', () => finish(false));
    const auth = password === undefined ? '' : `AUTH ${password}\r\n`;
    s.on('connect', () => s.write(`${auth}PING\r\n`));
    s.on('data', (d) => {
      buf += d.toString();
      const lines = buf.split('\r\n');
      const want = password === undefined ? 1 : 2;
      if (lines.length > want) finish(lines[want - 1] === '+PONG');
    });
  });
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of running) c.kill('SIGKILL');
  });
}
