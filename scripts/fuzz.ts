/**
 * SIP parser fuzzer: `node --import tsx scripts/fuzz.ts [--count 100000] [--seed N] [--time 120]`.
 * Runs up to `count` mutated torture messages (bounded by `--time` seconds), prints cases/s
 * and the error-code histogram, and exits 1 on any contract violation (a throw, or an
 * accepted message that does not re-serialize and re-parse identically).
 */
import { fileURLToPath } from 'node:url';
import { writeFileSync } from 'node:fs';
import { defaultCorpus, runFuzz } from './fuzz-lib.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf('--' + name);
  if (i < 0 || i + 1 >= process.argv.length) return def;
  const v = Number(process.argv[i + 1]);
  return Number.isFinite(v) ? v : def;
}

const count = arg('count', 100000);
const seed = arg('seed', Date.now() % 2 ** 31);
const timeS = arg('time', 300);
const root = fileURLToPath(new URL('..', import.meta.url));
const corpus = defaultCorpus(root);

const r = runFuzz(corpus, count, seed, timeS * 1000);
const rate = Math.round((r.cases / r.ms) * 1000);
console.log(`seed ${seed}: ${r.cases} cases in ${(r.ms / 1000).toFixed(2)} s (${rate} cases/s), ` +
  `${r.accepted} accepted, ${r.rejected} rejected`);
const codes = Object.entries(r.codes).sort((a, b) => b[1] - a[1]);
console.log('rejections: ' + codes.map(([c, k]) => `${c}=${k}`).join(' '));
if (r.failures.length > 0) {
  for (const [i, f] of r.failures.entries()) {
    const file = `/tmp/sipedge-fuzz-${seed}-${i}.bin`;
    writeFileSync(file, f.input);
    console.error(`FAIL ${i}: ${f.error}\n  input saved to ${file}`);
  }
  process.exit(1);
}
