/**
 * Fixed-rate relay CPU probe (not part of `npm run bench`): starts sipedge's relay as
 * bench/media.ts does (its own process, `media.workers` = WORKERS), offers CALLS calls, then runs
 * rtpload at each RATE for MS milliseconds and prints, per step, the relay's CPU µs per packet
 * (from /proc utime + stime of the relay process, all threads), loss and p50/p99 one-way latency.
 * A fixed moderate rate measures CPU per packet without the noise of a maximum-rate search.
 *
 *   node --import tsx bench/media/probe.ts WORKERS CALLS MS RATE [RATE ...]
 */
import path from 'node:path';
import fs from 'node:fs';
import { buildLoad, deleteCalls, measure, setupCalls, startInternal } from '../media.js';
import { makeTempDir, sleep } from '../lib/util.js';

const [workers, calls, ms, ...rates] = process.argv.slice(2).map(Number);
if (!workers || !calls || !ms || rates.length === 0) {
  console.error('usage: node --import tsx bench/media/probe.ts WORKERS CALLS MS RATE [RATE ...]');
  process.exit(2);
}
const dir = makeTempDir('media-probe');
try {
  const bin = buildLoad(dir);
  const relay = await startInternal(false, workers);
  try {
    const plan = path.join(dir, 'plan.txt');
    fs.writeFileSync(plan, (await setupCalls(relay, calls, 'probe')).join('\n') + '\n');
    for (const rate of rates) {
      const s = await measure(bin, plan, rate, Math.min(ms, 60_000), relay);
      const el = s.run.durationS + 0.3;
      console.log(
        JSON.stringify({
          workers,
          calls,
          rate,
          pass: s.pass,
          lossPct: +(s.run.loss * 100).toFixed(3),
          cpuUsPerPacket: +((s.relayCpuS / Math.max(1, s.run.received)) * 1e6).toFixed(2),
          relayCpuPct: Math.round((s.relayCpuS / el) * 100),
          otherCpuPct: Math.round((s.otherCpuS / el) * 100),
          p50us: s.run.p50us,
          p99us: s.run.p99us,
          rcvbufDrops: s.rcvbufDrops,
        }),
      );
      await sleep(300);
    }
    await deleteCalls(relay, calls, 'probe');
  } finally {
    await relay.close();
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
