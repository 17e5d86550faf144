/**
 * CPU cost of a proxied call at a fixed, moderate rate (not the maximum): sipedge with the
 * benchmark config, the callee registered, SIPp UAS + SIPp UAC (uac_auth.xml) at `--rate` calls/s
 * for `--seconds` s. Prints sipedge's CPU seconds (/proc utime+stime) per 1,000 calls for each of
 * `--runs` runs.
 *
 *   node --import tsx bench/calls_cpu.ts [--rate 200] [--seconds 20] [--runs 2]
 *
 * SIPEDGE_BENCH_NODE_ARGS adds node flags (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`).
 */
import path from 'node:path';
import fs from 'node:fs';
import { startSippServer, type SippServer } from './lib/sipp.js';
import { BENCH_DIR, CLK_TCK, freePort, makeTempDir, sleep } from './lib/util.js';
import { makeUsers, placeCalls, registerCallee, startTarget } from './signalling.js';

/** [utime, stime] of a process, s. */
function userSys(pid: number): [number, number] {
  const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return [Number(rest[11]) / CLK_TCK, Number(rest[12]) / CLK_TCK];
}

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

const rate = arg('rate', 200);
const seconds = arg('seconds', 20);
const runs = arg('runs', 2);
const SCENARIOS = path.join(BENCH_DIR, 'scenarios');

async function main(): Promise<void> {
  const dir = makeTempDir('calls-cpu');
  const users = makeUsers(10_000);
  const t = await startTarget({ label: 'sipedge', kind: 'sipedge', store: 'memory' }, users, dir);
  const uasPort = await freePort(false);
  let uas: SippServer | undefined;
  try {
    await registerCallee(t, users, uasPort, dir);
    uas = await startSippServer({ scenario: path.join(SCENARIOS, 'uas.xml'), localPort: uasPort, timeoutS: runs * (seconds * 2 + 40) + 60, dir, name: 'uas' });
    for (let run = 0; run < runs; run++) {
      const planned = rate * seconds;
      const cpu0 = t.cpu();
      const us0 = userSys(t.pids[0]);
      const r = await placeCalls(t, users, { calls: planned, rate, holdMs: 100, timeoutS: Math.ceil(seconds * 1.5 + 20), dir, name: `uac-${run}` });
      const cpu = t.cpu() - cpu0;
      const us1 = userSys(t.pids[0]);
      console.log(
        `run ${run + 1}: ${r.successful}/${planned} ok, ${r.failed} failed, ${r.retransmissions} retrans, ${r.elapsedS.toFixed(1)} s; ` +
          `sipedge ${cpu.toFixed(2)} CPU s = ${((cpu / Math.max(1, r.successful)) * 1000).toFixed(3)} CPU s per 1,000 calls (user ${(us1[0] - us0[0]).toFixed(2)} s, system ${(us1[1] - us0[1]).toFixed(2)} s)`,
      );
      await sleep(1000);
    }
  } finally {
    // SIPEDGE_BENCH_SHOW_OUTPUT=1: sipedge's own output (warnings, diagnostics) after the runs.
    if (process.env.SIPEDGE_BENCH_SHOW_OUTPUT === '1') console.log(t.child.output().slice(-4000));
    await uas?.stop().catch(() => undefined);
    await t.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
