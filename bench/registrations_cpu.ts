/**
 * CPU seconds per 1,000 digest registrations at a fixed, moderate rate (not the maximum rate,
 * which other load on a shared machine distorts):
 *
 *   node --import tsx bench/registrations_cpu.ts [--store memory,sqlite] [--rate 500]
 *        [--seconds 20] [--repeat 2] [--users 10000]
 *
 * For each store it starts the real sipedge CLI process with the benchmark's config
 * (bench/signalling.ts: 10,000 users, MD5 only, media.relay never, log warn, API disabled),
 * runs SIPp bench/scenarios/register_inf.xml (REGISTER → 401 → REGISTER + Authorization → 200)
 * at `rate`/s for `seconds` s, `repeat` times against the same process, and prints per run the
 * sipedge CPU seconds (utime + stime from /proc) per 1,000 successful registrations. Extra node
 * flags for sipedge (e.g. `--cpu-prof --cpu-prof-dir=DIR`) come from SIPEDGE_BENCH_NODE_ARGS.
 * Each SIPp run is bounded by `-m` and a timeout; everything stays on 127.0.0.1.
 */
import fs from 'node:fs';
import path from 'node:path';
import { runSippClient } from './lib/sipp.js';
import { BENCH_DIR, HOST, freePort, makeTempDir, progress, raiseAutogroupPriority, sleep, systemBusySeconds, udpRcvbufErrors } from './lib/util.js';
import { makeUsers, startTarget } from './signalling.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const stores = arg('store', 'memory,sqlite').split(',') as Array<'memory' | 'sqlite'>;
const rate = Number(arg('rate', '500'));
const seconds = Number(arg('seconds', '20'));
const repeat = Number(arg('repeat', '2'));
const userCount = Number(arg('users', '10000'));

interface RunResult {
  store: string;
  run: number;
  successful: number;
  failed: number;
  retransmissions: number;
  elapsedS: number;
  cpuS: number;
  cpuPer1k: number;
  sippCpuPer1k: number;
  otherCpuPct: number;
  rcvbufDrops: number;
}

// As `npm run bench` does: this session's processes at the benchmark's priority (SIPEDGE_BENCH_NICE).
progress(`priority: ${raiseAutogroupPriority()}`);
const results: RunResult[] = [];
for (const store of stores) {
  const dir = makeTempDir(`regcpu-${store}`);
  const users = makeUsers(userCount);
  const t = await startTarget({ label: `sipedge (${store}:)`, kind: 'sipedge', store }, users, dir);
  const infPath = path.join(dir, 'users.csv');
  fs.writeFileSync(infPath, ['SEQUENTIAL', ...users.map((u) => `${u.username};[authentication username=${u.username} password=${u.password}]`)].join('\n') + '\n');
  const contactPort = await freePort(false);
  const domain = `${HOST}:${t.port}`;
  try {
    for (let i = 0; i < repeat; i++) {
      const planned = Math.round(rate * seconds);
      const busy0 = systemBusySeconds();
      const drops0 = udpRcvbufErrors();
      const cpu0 = t.cpu();
      const r = await runSippClient({
        scenario: path.join(BENCH_DIR, 'scenarios', 'register_inf.xml'),
        remote: domain,
        localPort: await freePort(false),
        calls: planned,
        rate,
        limit: Math.max(1000, rate * 10),
        infPath,
        keys: { domain, contact: `${HOST}:${contactPort}` },
        timeoutS: Math.ceil(seconds * 1.5 + 20),
        dir,
        name: `reg-${store}-${i}`,
      });
      const cpuS = t.cpu() - cpu0;
      const other = Math.max(0, systemBusySeconds() - busy0 - cpuS - (Number.isNaN(r.cpuS) ? 0 : r.cpuS));
      const res: RunResult = {
        store,
        run: i + 1,
        successful: r.successful,
        failed: r.failed,
        retransmissions: r.retransmissions,
        elapsedS: r.elapsedS,
        cpuS,
        cpuPer1k: r.successful > 0 ? (cpuS / r.successful) * 1000 : NaN,
        sippCpuPer1k: r.successful > 0 ? (r.cpuS / r.successful) * 1000 : NaN,
        otherCpuPct: (other / r.elapsedS) * 100,
        rcvbufDrops: udpRcvbufErrors() - drops0,
      };
      results.push(res);
      progress(
        `${store} run ${i + 1}: ${r.successful}/${planned} ok, ${r.failed} failed, ${r.retransmissions} retrans, ${r.elapsedS.toFixed(1)} s, ` +
          `sipedge ${cpuS.toFixed(2)} CPU s = ${res.cpuPer1k.toFixed(3)} s per 1,000, SIPp ${res.sippCpuPer1k.toFixed(3)} s per 1,000, others ${res.otherCpuPct.toFixed(0)} % of a core`,
      );
      await sleep(1000);
    }
  } finally {
    await t.stop();
    if (!process.env.SIPEDGE_BENCH_KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }
}
process.stdout.write(JSON.stringify(results) + '\n');
process.exit(0);
