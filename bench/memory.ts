/**
 * Memory benchmark.
 *
 * Bindings (N = 100k by default):
 * - in-process, precise: bench/memory/child.ts (MemoryLocationStore + Registrar, keepalive
 *   tracking, SQLite file size), heap deltas after forced GCs;
 * - process level, against the baseline: the real sipedge process (store `memory:`) and
 *   Kamailio (usrloc db_mode 0) each get N REGISTERs with digest auth from SIPp; sipedge's RSS
 *   delta and Kamailio's shared-memory `real_used` delta (kamcmd core.shmmem) / N.
 * Relayed calls (1,000): sipedge's relay in its own process (--expose-gc), heap and RSS delta / N
 * after offer/answer; rtpengine's RSS delta / N for the same calls over ng.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setupCalls, startInternal, startRtpengine } from './media.js';
import { runSippClient } from './lib/sipp.js';
import { makeUsers, startTarget, type TargetSpec } from './signalling.js';
import { BENCH_DIR, HOST, REPO_ROOT, freePort, makeTempDir, procRssBytes, progress, sleep, spawnChild } from './lib/util.js';

export interface MemoryOptions {
  bindings: number;
  relayCalls: number;
  kamailioChildren: number;
  /** REGISTERs per second when filling the real processes. */
  fillRate: number;
  rtpengineThreads: number;
}

export interface MemoryResults {
  bindings: number;
  inProcess?: {
    memoryStore: { heapBytesPerBinding: number; rssBytesPerBinding: number };
    keepalive: { tracked: number; heapBytesPerBinding: number };
    sqlite: { bindings: number; fileBytes: number; fileBytesPerBinding: number; heapBytesPerBinding: number };
  };
  sipedgeProcess?: { registered: number; rssBytesPerBinding: number; failed: number };
  kamailio?: { registered: number; shmBytesPerBinding: number; rssBytesPerBinding: number; failed: number };
  relayCalls: number;
  sipedgeRelay?: { heapBytesPerCall: number; rssBytesPerCall: number };
  rtpengine?: { rssBytesPerCall: number };
  commands: string[];
}

function runChild(script: string, args: string[], timeoutMs: number): Promise<Record<string, unknown>> {
  const child = spawnChild(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(BENCH_DIR, script), ...args], { cwd: REPO_ROOT, hardTimeoutMs: timeoutMs });
  return child.exited.then(({ code }) => {
    const line = child
      .output()
      .split('\n')
      .find((l) => l.startsWith('{'));
    if (code !== 0 || !line) throw new Error(`${script} failed (code ${code}):\n${child.output().slice(-3000)}`);
    return JSON.parse(line) as Record<string, unknown>;
  });
}

function kamShm(dir: string): number {
  const r = spawnSync('kamcmd', ['-s', `unix:${path.join(dir, 'kamailio_ctl')}`, 'core.shmmem'], { encoding: 'utf8' });
  const m = /real_used:\s*(\d+)/.exec(r.stdout ?? '');
  if (!m) throw new Error(`kamcmd core.shmmem failed: ${r.stdout}${r.stderr}`);
  return Number(m[1]);
}

function kamContacts(dir: string): number {
  const r = spawnSync('kamcmd', ['-s', `unix:${path.join(dir, 'kamailio_ctl')}`, 'stats.get_statistics', 'usrloc:location_contacts'], { encoding: 'utf8' });
  const m = /location_contacts\s*=\s*(\d+)/.exec(r.stdout ?? '');
  return m ? Number(m[1]) : NaN;
}

/** N REGISTERs (distinct users) into a real process; returns the SIPp run. */
async function fillProcess(spec: TargetSpec, n: number, rate: number, dir: string, measure: (phase: 'before' | 'after', pid: number) => void): Promise<{ successful: number; failed: number }> {
  const users = makeUsers(n);
  const t = await startTarget(spec, users, dir);
  try {
    const infPath = path.join(dir, 'users.csv');
    fs.writeFileSync(infPath, ['SEQUENTIAL', ...users.map((u) => `${u.username};[authentication username=${u.username} password=${u.password}]`)].join('\n') + '\n');
    await sleep(1000);
    measure('before', t.pids[0]);
    const r = await runSippClient({
      scenario: path.join(BENCH_DIR, 'scenarios', 'register_inf.xml'),
      remote: `${HOST}:${t.port}`,
      localPort: await freePort(false),
      calls: n,
      rate,
      limit: 5000,
      infPath,
      keys: { domain: `${HOST}:${t.port}`, contact: `${HOST}:${await freePort(false)}` },
      timeoutS: Math.ceil(n / rate) * 3 + 30,
      dir,
      name: 'fill',
    });
    await sleep(1000);
    measure('after', t.pids[0]);
    return { successful: r.successful, failed: r.failed };
  } finally {
    await t.stop();
  }
}

export async function benchMemory(opts: MemoryOptions): Promise<MemoryResults> {
  const out: MemoryResults = { bindings: opts.bindings, relayCalls: opts.relayCalls, commands: [] };
  const n = opts.bindings;

  progress(`memory: ${n} bindings in-process (registrar + MemoryLocationStore / SqliteLocationStore, keepalive state)`);
  out.inProcess = (await runChild('memory/child.ts', [String(n)], 600_000)) as unknown as MemoryResults['inProcess'];
  out.commands.push(`node --expose-gc --import tsx bench/memory/child.ts ${n}`);

  progress(`memory: ${n} REGISTERs into the sipedge process (store memory:) at ${opts.fillRate}/s`);
  {
    const dir = makeTempDir('mem-sipedge');
    let before = 0;
    let after = 0;
    const r = await fillProcess({ label: 'sipedge', kind: 'sipedge', store: 'memory' }, n, opts.fillRate, dir, (phase, pid) => {
      if (phase === 'before') before = procRssBytes(pid);
      else after = procRssBytes(pid);
    });
    out.sipedgeProcess = { registered: r.successful, failed: r.failed, rssBytesPerBinding: (after - before) / Math.max(1, r.successful) };
    fs.rmSync(dir, { recursive: true, force: true });
  }

  progress(`memory: ${n} REGISTERs into Kamailio (usrloc db_mode 0) at ${opts.fillRate}/s`);
  {
    const dir = makeTempDir('mem-kamailio');
    let shm0 = 0;
    let shm1 = 0;
    let rss0 = 0;
    let rss1 = 0;
    let contacts = NaN;
    const r = await fillProcess({ label: 'kamailio', kind: 'kamailio', children: opts.kamailioChildren }, n, opts.fillRate, dir, (phase, pid) => {
      if (phase === 'before') {
        shm0 = kamShm(dir);
        rss0 = procRssBytes(pid);
      } else {
        shm1 = kamShm(dir);
        rss1 = procRssBytes(pid);
        contacts = kamContacts(dir);
      }
    });
    const reg = Number.isNaN(contacts) ? r.successful : contacts;
    out.kamailio = { registered: reg, failed: r.failed, shmBytesPerBinding: (shm1 - shm0) / Math.max(1, reg), rssBytesPerBinding: (rss1 - rss0) / Math.max(1, reg) };
    out.commands.push('kamcmd -s unix:DIR/kamailio_ctl core.shmmem   (real_used before/after; usrloc:location_contacts)');
    fs.rmSync(dir, { recursive: true, force: true });
  }

  progress(`memory: ${opts.relayCalls} relayed calls (sipedge relay, rtpengine)`);
  {
    const relay = await startInternal(true);
    try {
      const m0 = await relay.memory();
      await setupCalls(relay, opts.relayCalls, 'mem');
      const m1 = await relay.memory();
      out.sipedgeRelay = { heapBytesPerCall: (m1.heapUsed - m0.heapUsed) / opts.relayCalls, rssBytesPerCall: (m1.rss - m0.rss) / opts.relayCalls };
    } finally {
      await relay.close();
    }
    const dir = makeTempDir('mem-rtpengine');
    const rtp = await startRtpengine(opts.rtpengineThreads, dir);
    try {
      await sleep(500);
      const r0 = procRssBytes(rtp.child.pid);
      await setupCalls(rtp, opts.relayCalls, 'mem');
      await sleep(500);
      const r1 = procRssBytes(rtp.child.pid);
      out.rtpengine = { rssBytesPerCall: (r1 - r0) / opts.relayCalls };
    } finally {
      await rtp.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  return out;
}
