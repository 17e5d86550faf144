import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { MemoryLocationStore, openLocationStore, SqliteLocationStore } from '../../src/store/index.js';

const dir = mkdtempSync(join(tmpdir(), 'sipedge-open-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('openLocationStore', () => {
  it('opens memory:', async () => {
    const s = await openLocationStore('memory:');
    assert.ok(s instanceof MemoryLocationStore);
    await s.close();
  });

  it('opens sqlite::memory:', async () => {
    const s = await openLocationStore('sqlite::memory:');
    assert.ok(s instanceof SqliteLocationStore);
    assert.equal(s.filename, ':memory:');
    await s.close();
  });

  it('opens sqlite:PATH (relative and sqlite:///absolute)', async () => {
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      const s = await openLocationStore('sqlite:./var/sipedge.db');
      assert.ok(s instanceof SqliteLocationStore);
      await s.close();
      assert.ok(existsSync(join(dir, 'var', 'sipedge.db')));
    } finally {
      process.chdir(cwd);
    }
    const abs = join(dir, 'abs', 'x.db');
    const s2 = await openLocationStore(`sqlite://${abs}`);
    await s2.close();
    assert.ok(existsSync(abs));
  });

  it('redis:// to an unreachable server fails fast, naming the URL without the password', async () => {
    // Loopback only (network rule): port 1 refuses the connection at once.
    await assert.rejects(openLocationStore('redis://:hunter2@127.0.0.1:1'), (err: Error) => {
      assert.match(err.message, /cannot connect to the Redis location store at redis:\/\/127\.0\.0\.1:1\/0/);
      assert.doesNotMatch(err.message, /hunter2/);
      return true;
    });
  });

  it('rejects unknown schemes and empty paths with a clear message', async () => {
    await assert.rejects(openLocationStore('postgres://db/sip'), /unknown store URL scheme "postgres:".*sqlite:PATH/);
    await assert.rejects(openLocationStore('./var/sipedge.db'), /unknown store URL/);
    await assert.rejects(openLocationStore('sqlite:'), /no file path/);
    await assert.rejects(openLocationStore(''), /unknown store URL/);
  });
});

describe('ioredis is loaded only for a redis:// store', () => {
  // ioredis defines `class VerbatimString extends String`, which turns String.prototype into a
  // slow (dictionary-mode) object in V8 and slows every string method in the SIP parser. A process
  // that never opens a Redis store must not pay for it.
  const probe = (code: string): string => {
    const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: join(import.meta.dirname, '..', '..'),
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
  };

  it('importing the edge and opening sqlite/memory stores keeps String.prototype fast', () => {
    const out = probe(
      "const { Edge } = await import('./src/edge.ts'); const { openLocationStore } = await import('./src/store/index.ts');" +
        " for (const u of ['memory:', 'sqlite::memory:']) await (await openLocationStore(u)).close();" +
        ' console.log(typeof Edge, %HasFastProperties(String.prototype));',
    );
    assert.equal(out, 'function true');
  });

  it('the probe can tell: loading ioredis makes String.prototype slow', () => {
    assert.equal(probe("await import('ioredis'); console.log(%HasFastProperties(String.prototype));"), 'false');
  });
});
