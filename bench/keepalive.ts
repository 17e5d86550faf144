/**
 * Keepalive fan-out: CPU of one core to keep N NATed bindings alive with SIP OPTIONS at a
 * 30 s interval, each N in its own process (bench/keepalive/child.ts, which describes the setup).
 */
import path from 'node:path';
import { BENCH_DIR, REPO_ROOT, progress, spawnChild } from './lib/util.js';

export interface KeepaliveOptions {
  bindings: number[];
  intervalS: number;
  measureS: number;
}

export interface KeepaliveResult {
  bindings: number;
  intervalS: number;
  measureS: number;
  sent: number;
  answered: number;
  timeouts: number;
  perSecond: number;
  cpuPct: number;
  cpuUsPerKeepalive: number;
  eventLoopUtilization: number;
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  startLoadS: number;
  startLoadCpuS: number;
  refreshS: number;
  refreshCpuS: number;
  rssBytes: number;
  rcvbufDrops: number;
  sinkAnswered: number;
}

export async function benchKeepalive(opts: KeepaliveOptions): Promise<{ results: KeepaliveResult[]; command: string }> {
  const results: KeepaliveResult[] = [];
  for (const n of opts.bindings) {
    progress(`keepalive: ${n} NATed bindings, interval ${opts.intervalS} s, measuring ${opts.measureS} s`);
    const child = spawnChild(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', path.join(BENCH_DIR, 'keepalive', 'child.ts'), String(n), String(opts.intervalS), String(opts.measureS)],
      { cwd: REPO_ROOT, hardTimeoutMs: (opts.measureS + 300) * 1000 },
    );
    const { code } = await child.exited;
    const line = child
      .output()
      .split('\n')
      .find((l) => l.startsWith('{"bindings"'));
    if (code !== 0 || !line) throw new Error(`keepalive child failed (code ${code}):\n${child.output().slice(-3000)}`);
    const r = JSON.parse(line) as KeepaliveResult;
    progress(
      `  ${n} bindings: ${r.perSecond.toFixed(0)} OPTIONS/s, ${r.cpuPct.toFixed(1)} % of one core, ${r.cpuUsPerKeepalive.toFixed(0)} µs each, ` +
        `${r.answered} answered, ${r.timeouts} timeouts, the phones answered ${r.sinkAnswered} requests (retransmissions included), ` +
        `${r.rcvbufDrops} UDP rcvbuf drops, loop delay p99 ${r.loopDelayP99Ms.toFixed(1)} ms`,
    );
    results.push(r);
  }
  return { results, command: `node --expose-gc --import tsx bench/keepalive/child.ts N ${opts.intervalS} ${opts.measureS}` };
}
