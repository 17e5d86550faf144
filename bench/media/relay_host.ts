/**
 * Child process for bench/media.ts and bench/memory.ts: runs sipedge's in-process relay
 * (`createMediaControl({ kind: 'internal' })`, built exactly as src/edge.ts builds it) alone in
 * its own process, so that its CPU and event loop are measured without the benchmark driver.
 * Commands arrive over the IPC channel: `{ id, op, params }` → `{ id, result }`.
 *
 *   node --import tsx [--expose-gc] bench/media/relay_host.ts LOW HIGH [WORKERS]
 *
 * WORKERS is `media.workers` (default 1: the relay runs on this process's event loop).
 */
import { createMediaControl, type AnswerParams, type DeleteParams, type OfferParams } from '../../src/media/index.js';
import { SystemClock } from '../../src/lib/clock.js';

const low = Number(process.argv[2] ?? 20000);
const high = Number(process.argv[3] ?? 25999);
const workers = Number(process.argv[4] ?? 1);

const media = createMediaControl(
  { kind: 'internal' },
  { clock: new SystemClock(), ports: { low, high }, bindAddress: '127.0.0.1', timeoutSec: 600, strictSource: true, workers },
);

type Command =
  | { id: number; op: 'offer'; params: OfferParams }
  | { id: number; op: 'answer'; params: AnswerParams }
  | { id: number; op: 'delete'; params: DeleteParams }
  | { id: number; op: 'counters' }
  | { id: number; op: 'memory' }
  | { id: number; op: 'close' };

function memory(): { rss: number; heapUsed: number; external: number } {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external };
}

process.on('message', (raw: unknown) => {
  const cmd = raw as Command;
  void (async () => {
    let result: unknown;
    switch (cmd.op) {
      case 'offer':
        result = await media.offer(cmd.params);
        break;
      case 'answer':
        result = await media.answer(cmd.params);
        break;
      case 'delete':
        await media.delete(cmd.params);
        result = true;
        break;
      case 'counters':
        result = media.counters();
        break;
      case 'memory':
        result = memory();
        break;
      case 'close':
        await media.close();
        process.send?.({ id: cmd.id, result: true }, () => process.exit(0));
        return;
    }
    process.send?.({ id: cmd.id, result });
  })();
});
process.on('disconnect', () => {
  void media.close().then(() => process.exit(0));
});
process.send?.({ id: 0, result: 'ready' });
