/**
 * The CLI process contract (DESIGN.md, "The user-facing contract"):
 *  - `sipedge start` with a bad config refuses to start: exit code 2, the error names the key path;
 *  - `sipedge check` reports the same error with its key path;
 *  - a started edge logs `sipedge ready` and exits 0 on SIGTERM and on SIGINT.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import YAML from 'yaml';
import { makeTempDir, prepareEdge, runCli } from '../helpers/edge.js';

/** A config whose only error is `media.relay` (DESIGN.md: always | nat | never). */
function badConfig(): { dir: string; file: string } {
  const dir = makeTempDir('sipedge-cli');
  const file = path.join(dir, 'bad.yaml');
  fs.writeFileSync(
    file,
    YAML.stringify({
      store: `sqlite:${path.join(dir, 'sipedge.db')}`,
      media: { relay: 'sometimes' },
    }),
  );
  return { dir, file };
}

test('start with a bad config exits 2 and names the key path', async () => {
  const { dir, file } = badConfig();
  try {
    const r = await runCli(['start', '-c', file], { timeoutMs: 20_000 });
    const out = r.stdout + r.stderr;
    assert.equal(r.timedOut, false, `the edge started (or hung) on a bad config:\n${out}`);
    assert.equal(r.code, 2, `exit code ${r.code} (signal ${r.signal}), expected 2:\n${out}`);
    assert.match(out, /media\.relay/, `the error does not name the key path media.relay:\n${out}`);
    assert.doesNotMatch(out, /sipedge ready/, 'the edge must not get ready with a bad config');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('check with a bad config fails and names the key path', async () => {
  const { dir, file } = badConfig();
  try {
    const r = await runCli(['check', '-c', file], { timeoutMs: 20_000 });
    const out = r.stdout + r.stderr;
    assert.notEqual(r.code, 0, `check accepted a bad config:\n${out}`);
    assert.match(out, /media\.relay/, `check does not name the key path media.relay:\n${out}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`a running edge exits 0 on ${signal}`, async () => {
    const edge = await prepareEdge({ users: [{ username: '1001', password: 'x' }], name: 'sipedge-cli' });
    try {
      await edge.start();
      assert.ok(edge.running);
      const exit = await edge.stop(5000, signal);
      assert.deepEqual(exit, { code: 0, signal: null }, `exit on ${signal}: code ${exit.code}, signal ${exit.signal}\n${edge.output()}`);
    } finally {
      await edge.dispose();
    }
  });
}
