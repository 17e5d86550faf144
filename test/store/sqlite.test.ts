import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { SQLITE_SCHEMA_VERSION, SqliteLocationStore } from '../../src/store/sqlite.js';
import { locationStoreContract, minimalBinding } from './contract.js';

const dir = mkdtempSync(join(tmpdir(), 'sipedge-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const file = join(dir, 'nested', 'deeper', 'contract.db');
locationStoreContract('SqliteLocationStore (file)', {
  open: async () => new SqliteLocationStore(file),
  reopen: async () => new SqliteLocationStore(file),
});
locationStoreContract('SqliteLocationStore (:memory:)', { open: async () => new SqliteLocationStore(':memory:') });

describe('SqliteLocationStore specifics', () => {
  it('creates the parent directory and uses WAL with a schema version row', async () => {
    const f = join(dir, 'a', 'b', 'c.db');
    const s = new SqliteLocationStore(f);
    assert.ok(existsSync(f));
    await s.close();
    await s.close(); // idempotent
    const db = new Database(f, { readonly: true });
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    assert.deepEqual(db.prepare('SELECT version FROM schema_version').all(), [{ version: SQLITE_SCHEMA_VERSION }]);
    db.close();
  });

  it('reopening does not add schema version rows or lose data', async () => {
    const f = join(dir, 'reopen.db');
    let s = new SqliteLocationStore(f);
    const b = minimalBinding();
    await s.setBindings(b.aor, [b]);
    await s.close();
    s = new SqliteLocationStore(f);
    assert.deepEqual(await s.getBindings(b.aor), [b]);
    await s.close();
    const db = new Database(f, { readonly: true });
    assert.equal((db.prepare('SELECT count(*) AS n FROM schema_version').get() as { n: number }).n, 1);
    db.close();
  });

  it('refuses a database with a newer schema version', () => {
    const f = join(dir, 'newer.db');
    new SqliteLocationStore(f).close();
    const db = new Database(f);
    db.prepare('UPDATE schema_version SET version = ?').run(SQLITE_SCHEMA_VERSION + 1);
    db.close();
    assert.throws(() => new SqliteLocationStore(f), new RegExp(`schema version ${SQLITE_SCHEMA_VERSION + 1} is newer`));
  });

  it('rejects calls after close', async () => {
    const s = new SqliteLocationStore(':memory:');
    await s.close();
    await assert.rejects(s.getBindings('sip:x@y'));
  });

  it('setBindings is atomic: a failing insert leaves the old set', async () => {
    const s = new SqliteLocationStore(':memory:');
    const b = minimalBinding();
    await s.setBindings(b.aor, [b]);
    const bad = minimalBinding({ contact: 'sip:bad@192.0.2.1' });
    // NOT NULL constraint on call_id fails inside the transaction.
    (bad as unknown as { callId: null }).callId = null;
    await assert.rejects(s.setBindings(b.aor, [minimalBinding({ contact: 'sip:new@192.0.2.2' }), bad]));
    assert.deepEqual(await s.getBindings(b.aor), [b]);
    await s.close();
  });
});
