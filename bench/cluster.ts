/**
 * `workers: 1` vs `workers: 2` (src/cluster/), both on the sqlite: store, with the benchmark's
 * config (bench/signalling.ts): for each worker count it starts the real sipedge CLI, then
 *
 * 1. calls (uac_auth.xml → uas.xml, 100 ms hold) and digest registrations (register_inf.xml)
 *    at a fixed, moderate rate `--rate`/`--reg-rate` for `--seconds` s, `--repeat` times:
 *    CPU seconds of all sipedge processes (primary + workers, /proc utime+stime) per 1,000;
 * 2. with `--steps R1,R2,…` (calls/s) / `--reg-steps` (registrations/s): each rate for
 *    `--seconds` s until the first step with a failure; the highest rate with 0 failed is printed.
 *
 *   node --import tsx bench/cluster.ts [--workers 1,2] [--rate 200] [--reg-rate 500] [--seconds 15]
 *        [--repeat 2] [--steps 300,400,500,600,700,800] [--reg-steps 1000,1500,2000] [--only calls,registrations]
 *
 * Every SIPp run is bounded by `-m` and a timeout; everything stays on 127.0.0.1.
 */
import fs from 'node:fs';
import path from 'node:path';
import { runSippClient, startSippServer, type SippServer } from './lib/sipp.js';
import { BENCH_DIR, HOST, freePort, makeTempDir, progress, sleep, systemBusySeconds } from './lib/util.js';
import { makeUsers, placeCalls, registerCallee, startTarget, type Running, type User } from './signalling.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const workerCounts = arg('workers', '1,2').split(',').map(Number);
const callRate = Number(arg('rate', '200'));
const regRate = Number(arg('reg-rate', '500'));
const seconds = Number(arg('seconds', '15'));
const repeat = Number(arg('repeat', '2'));
const steps = arg('steps', '')
  .split(',')
  .filter(Boolean)
  .map(Number);
const regSteps = arg('reg-steps', '')
  .split(',')
  .filter(Boolean)
  .map(Number);
const only = arg('only', 'calls,registrations').split(',');
const SCEN = path.join(BENCH_DIR, 'scenarios');

interface Run {
  workers: number;
  what: 'calls' | 'registrations';
  rate: number;
  ok: number;
  failed: number;
  retrans: number;
  cpuPer1k: number;
  otherPct: number;
}
const out: Run[] = [];

async function calls(t: Running, users: User[], dir: string, rate: number, tag: string): Promise<{ ok: number; failed: number; retrans: number; cpuS: number; otherPct: number }> {
  const planned = Math.round(rate * seconds);
  const busy0 = systemBusySeconds();
  const cpu0 = t.cpu();
  const r = await placeCalls(t, users, { calls: planned, rate, holdMs: 100, timeoutS: Math.ceil(seconds * 1.5 + 20), dir, name: `uac-${tag}` });
  const cpuS = t.cpu() - cpu0;
  const other = Math.max(0, systemBusySeconds() - busy0 - cpuS - (Number.isNaN(r.cpuS) ? 0 : r.cpuS));
  return { ok: r.successful, failed: r.failed + (planned - r.successful - r.failed), retrans: r.retransmissions, cpuS, otherPct: (other / r.elapsedS) * 100 };
}

for (const workers of workerCounts) {
  const dir = makeTempDir(`cluster-w${workers}`);
  const users = makeUsers(10_000);
  const t = await startTarget({ label: `sipedge (${workers} workers, sqlite:)`, kind: 'sipedge', store: 'sqlite', workers }, users, dir);
  progress(`workers ${workers}: pids ${t.pids.join(' ')}`);
  const uasPort = await freePort(false);
  let uas: SippServer | undefined;
  try {
    await registerCallee(t, users, uasPort, dir);
    uas = await startSippServer({ scenario: path.join(SCEN, 'uas.xml'), localPort: uasPort, timeoutS: 3600, dir, name: 'uas' });
    for (let i = 0; i < (only.includes('calls') ? repeat : 0); i++) {
      const r = await calls(t, users, dir, callRate, `fixed-${i}`);
      out.push({ workers, what: 'calls', rate: callRate, ok: r.ok, failed: r.failed, retrans: r.retrans, cpuPer1k: (r.cpuS / Math.max(1, r.ok)) * 1000, otherPct: r.otherPct });
      progress(`workers ${workers} calls @${callRate}/s run ${i + 1}: ${r.ok} ok, ${r.failed} failed, ${r.retrans} retrans, ${((r.cpuS / Math.max(1, r.ok)) * 1000).toFixed(3)} CPU s/1k, others ${r.otherPct.toFixed(0)} %`);
      await sleep(1000);
    }
    // Registrations: every user REGISTERs with digest (REGISTER → 401 → REGISTER + auth → 200).
    const infPath = path.join(dir, 'users.csv');
    fs.writeFileSync(infPath, ['SEQUENTIAL', ...users.map((u) => `${u.username};[authentication username=${u.username} password=${u.password}]`)].join('\n') + '\n');
    const contactPort = await freePort(false);
    const regRuns: Array<[number, string]> = [];
    for (let i = 0; i < (only.includes('registrations') ? repeat : 0); i++) regRuns.push([regRate, `fixed-${i}`]);
    for (const r of regSteps) regRuns.push([r, `step-${r}`]);
    let regBest = 0;
    for (const [regRate, tag] of regRuns) {
      const i = tag;
      const planned = Math.round(regRate * seconds);
      const busy0 = systemBusySeconds();
      const cpu0 = t.cpu();
      const r = await runSippClient({
        scenario: path.join(SCEN, 'register_inf.xml'),
        remote: `${HOST}:${t.port}`,
        localPort: await freePort(false),
        calls: planned,
        rate: regRate,
        limit: Math.max(1000, regRate * 10),
        infPath,
        keys: { domain: `${HOST}:${t.port}`, contact: `${HOST}:${contactPort}` },
        timeoutS: Math.ceil(seconds * 1.5 + 20),
        dir,
        name: `reg-${i}`,
      });
      const cpuS = t.cpu() - cpu0;
      const other = Math.max(0, systemBusySeconds() - busy0 - cpuS - (Number.isNaN(r.cpuS) ? 0 : r.cpuS));
      const per = (cpuS / Math.max(1, r.successful)) * 1000;
      out.push({ workers, what: 'registrations', rate: regRate, ok: r.successful, failed: r.failed, retrans: r.retransmissions, cpuPer1k: per, otherPct: (other / r.elapsedS) * 100 });
      progress(`workers ${workers} registrations @${regRate}/s ${i}: ${r.successful}/${planned} ok, ${r.failed} failed, ${per.toFixed(3)} CPU s/1k, others ${((other / r.elapsedS) * 100).toFixed(0)} %`);
      if (tag.startsWith('step-')) {
        if (r.failed > 0 || r.successful < planned) break;
        regBest = regRate;
      }
      await sleep(1000);
    }
    if (regSteps.length > 0) progress(`workers ${workers}: best registration rate with 0 failed: ${regBest}/s`);
    let best = 0;
    for (const rate of steps) {
      const r = await calls(t, users, dir, rate, `step-${rate}`);
      const pass = r.failed === 0 && r.ok > 0;
      out.push({ workers, what: 'calls', rate, ok: r.ok, failed: r.failed, retrans: r.retrans, cpuPer1k: (r.cpuS / Math.max(1, r.ok)) * 1000, otherPct: r.otherPct });
      progress(`workers ${workers} step ${rate}/s: ${r.ok} ok, ${r.failed} failed, ${r.retrans} retrans, ${((r.cpuS / Math.max(1, r.ok)) * 1000).toFixed(3)} CPU s/1k, others ${r.otherPct.toFixed(0)} % -> ${pass ? 'pass' : 'FAIL'}`);
      if (!pass) break;
      best = rate;
      await sleep(2000);
    }
    if (steps.length > 0) progress(`workers ${workers}: best call rate with 0 failed: ${best}/s`);
  } finally {
    await uas?.stop().catch(() => undefined);
    await t.stop();
    if (!process.env.SIPEDGE_BENCH_KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }
}
process.stdout.write(JSON.stringify(out) + '\n');
process.exit(0);
