/**
 * Seeded mutation fuzzing of the parser over every valid fixture (scripts/fuzz-lib.ts):
 * parseMessage never throws, and every accepted message re-serializes and re-parses to the
 * same message. `scripts/fuzz.ts` runs the same engine for 100k+ cases.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { checkCase, defaultCorpus, newStats, runFuzz } from '../../scripts/fuzz-lib.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const corpus = defaultCorpus(ROOT);

test('every unmutated corpus message passes the round-trip check', () => {
  const stats = newStats();
  for (const b of corpus) assert.equal(checkCase(b, stats), undefined);
  assert.equal(corpus.length, 39);
});

for (const seed of [1, 2, 3]) {
  test(`fuzz seed ${seed}: 1000 mutated messages`, () => {
    const r = runFuzz(corpus, 1000, seed, 10_000);
    const msg = r.failures.map((f) => `${f.error}\n${JSON.stringify(f.input.toString('latin1'))}`).join('\n\n');
    assert.equal(r.failures.length, 0, msg);
    assert.equal(r.cases, 1000);
    assert.ok(r.accepted > 50, 'some mutants are still accepted');
    assert.ok(r.rejected > 300, 'most mutants are rejected');
  });
}
