/**
 * Embedded location store (RFC 3261 §10) on SQLite via better-sqlite3: the default, so
 * registrations survive a restart.
 *
 * - WAL journal with `synchronous=NORMAL`: a commit is durable against a process crash; a power
 *   loss may drop the last few commits, which for soft state that UAs refresh anyway is the
 *   right trade for registrations/s.
 * - Every statement is prepared once in the constructor.
 * - `schema_version` holds one row with the schema version; older files are migrated forward,
 *   newer ones are refused (a downgrade would silently misread them).
 * - Group commit: `setBindings` calls made in the same event-loop turn are written in one
 *   transaction at the next `setImmediate`, and each promise resolves only once its write is
 *   committed. Under load (many REGISTERs per turn) this turns hundreds of commits into one.
 *   Reads see pending writes, so the store behaves as if every write were immediate. When a
 *   batch fails, its AORs are retried one transaction each, so one bad write fails alone.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { TransportProto } from '../transport/types.js';
import { copyBindings } from './copy.js';
import { yieldToEventLoop } from './paging.js';
import type { Binding, LocationStore } from './types.js';

/** Schema version this code writes. Bump it and append to {@link MIGRATIONS} when the table changes. */
export const SQLITE_SCHEMA_VERSION = 1;

/** `MIGRATIONS[n]` upgrades a database from version `n` to `n + 1`. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE bindings (
     aor           TEXT    NOT NULL,
     seq           INTEGER NOT NULL,   -- position in the AOR's binding set
     contact       TEXT    NOT NULL,
     expires_at    INTEGER NOT NULL,   -- Unix epoch ms
     q             REAL    NOT NULL,
     call_id       TEXT    NOT NULL,
     cseq          INTEGER NOT NULL,
     instance_id   TEXT,
     reg_id        INTEGER,
     transport     TEXT    NOT NULL,
     address       TEXT    NOT NULL,
     port          INTEGER NOT NULL,
     socket_id     TEXT    NOT NULL,
     connection_id INTEGER,
     nat           INTEGER NOT NULL,
     nat_tests     TEXT,               -- JSON array
     user_agent    TEXT,
     path          TEXT,               -- JSON array
     updated_at    INTEGER NOT NULL,   -- Unix epoch ms
     PRIMARY KEY (aor, seq)
   ) WITHOUT ROWID;
   CREATE INDEX bindings_expires_at ON bindings (expires_at);`,
];

const COLUMNS =
  'contact, expires_at, q, call_id, cseq, instance_id, reg_id, transport, address, port, socket_id, connection_id, nat, nat_tests, user_agent, path, updated_at';

/** A row read in raw (array) mode: the columns of {@link COLUMNS} in order, preceded by `aor`. */
type Row = [
  aor: string,
  contact: string,
  expiresAt: number,
  q: number,
  callId: string,
  cseq: number,
  instanceId: string | null,
  regId: number | null,
  transport: string,
  address: string,
  port: number,
  socketId: string,
  connectionId: number | null,
  nat: number,
  natTests: string | null,
  userAgent: string | null,
  path: string | null,
  updatedAt: number,
];

/** A row of a paged scan: {@link Row} then `seq`, the second half of the scan's key. */
type PageRow = [...Row, number];

function rowToBinding(r: Row | PageRow): Binding {
  const b: Binding = {
    aor: r[0],
    contact: r[1],
    expiresAt: r[2],
    q: r[3],
    callId: r[4],
    cseq: r[5],
    received: { transport: r[8] as TransportProto, address: r[9], port: r[10], socketId: r[11] },
    nat: r[13] !== 0,
    updatedAt: r[17],
  };
  if (r[6] !== null) b.instanceId = r[6];
  if (r[7] !== null) b.regId = r[7];
  if (r[12] !== null) b.received.connectionId = r[12];
  if (r[14] !== null) b.natTests = JSON.parse(r[14]) as string[];
  if (r[15] !== null) b.userAgent = r[15];
  if (r[16] !== null) b.path = JSON.parse(r[16]) as string[];
  return b;
}

/** Options of {@link SqliteLocationStore}. */
export interface SqliteStoreOptions {
  /** How long (ms) a write waits for another process holding the lock. Default 5000. */
  busyTimeoutMs?: number;
  /**
   * SQLite `synchronous` level. `NORMAL` (default) survives process crashes; `FULL` also the
   * last commits on power loss; `OFF` is fastest and may lose (or, on power loss, damage) the file.
   */
  synchronous?: 'OFF' | 'NORMAL' | 'FULL';
}

/** A write waiting for the next group commit. */
interface PendingWrite {
  bindings: Binding[];
  waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }>;
}

/**
 * {@link LocationStore} on one SQLite file (or `:memory:`). Owns the database handle:
 * call {@link SqliteLocationStore.close}.
 */
export class SqliteLocationStore implements LocationStore {
  /** The file the store was opened on (`:memory:` for an in-memory database). */
  readonly filename: string;
  private readonly db: Database.Database;
  private readonly selectAor: Database.Statement<[string], Row>;
  private readonly selectAll: Database.Statement<[], Row>;
  private readonly selectFirstPage: Database.Statement<[number], PageRow>;
  private readonly selectNextPage: Database.Statement<[string, number, number], PageRow>;
  private readonly deleteAor: Database.Statement<[string]>;
  private readonly insert: Database.Statement<unknown[]>;
  private readonly deleteExpired: Database.Statement<[number]>;
  private readonly replace: (aor: string, bindings: Binding[]) => void;
  private readonly replaceMany: (writes: Map<string, PendingWrite>) => void;
  /** Writes not yet committed, by AOR (the latest set wins). */
  private pending = new Map<string, PendingWrite>();
  private flushScheduled = false;
  private closed = false;

  /**
   * Opens (creating when missing, parent directories included) and migrates the database.
   * @param filename path of the database file, or `:memory:`
   * @throws Error when the file cannot be opened or has a newer schema than this code
   */
  constructor(filename: string, options: SqliteStoreOptions = {}) {
    this.filename = filename;
    const inMemory = filename === ':memory:' || filename === '';
    if (!inMemory) mkdirSync(dirname(filename), { recursive: true });
    this.db = new Database(filename);
    try {
      if (!inMemory) this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${options.synchronous ?? 'NORMAL'}`);
      this.db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
      migrate(this.db, filename);
    } catch (err) {
      this.db.close();
      throw err;
    }
    this.selectAor = this.db.prepare<[string], Row>(`SELECT aor, ${COLUMNS} FROM bindings WHERE aor = ? ORDER BY seq`).raw(true);
    this.selectAll = this.db.prepare<[], Row>(`SELECT aor, ${COLUMNS} FROM bindings ORDER BY aor, seq`).raw(true);
    // Keyset pagination on the primary key (aor, seq): each page is an index range scan.
    this.selectFirstPage = this.db.prepare<[number], PageRow>(`SELECT aor, ${COLUMNS}, seq FROM bindings ORDER BY aor, seq LIMIT ?`).raw(true);
    this.selectNextPage = this.db
      .prepare<[string, number, number], PageRow>(`SELECT aor, ${COLUMNS}, seq FROM bindings WHERE (aor, seq) > (?, ?) ORDER BY aor, seq LIMIT ?`)
      .raw(true);
    this.deleteAor = this.db.prepare<[string]>('DELETE FROM bindings WHERE aor = ?');
    this.insert = this.db.prepare<unknown[]>(
      `INSERT INTO bindings (aor, seq, ${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.deleteExpired = this.db.prepare<[number]>('DELETE FROM bindings WHERE expires_at <= ?');
    this.replace = this.db.transaction((aor: string, bindings: Binding[]) => this.write(aor, bindings));
    this.replaceMany = this.db.transaction((writes: Map<string, PendingWrite>) => {
      for (const [aor, w] of writes) this.write(aor, w.bindings);
    });
  }

  /** Bindings of `aor` in stored order, including expired ones not yet purged (pending writes included). */
  async getBindings(aor: string): Promise<Binding[]> {
    this.assertOpen();
    const p = this.pending.get(aor);
    if (p !== undefined) return copyBindings(p.bindings);
    const rows = this.selectAor.all(aor);
    const out = new Array<Binding>(rows.length);
    for (let i = 0; i < rows.length; i++) out[i] = rowToBinding(rows[i]);
    return out;
  }

  /**
   * Replaces the binding set of `aor` atomically (an empty array removes the AOR). Resolves
   * once committed (group commit, see the module comment); rejects with the SQLite error.
   * The stored `aor` column is the `aor` argument.
   */
  setBindings(aor: string, bindings: Binding[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('location store is closed'));
    return new Promise<void>((resolve, reject) => {
      const copy = copyBindings(bindings);
      const p = this.pending.get(aor);
      if (p === undefined) this.pending.set(aor, { bindings: copy, waiters: [{ resolve, reject }] });
      else {
        p.bindings = copy;
        p.waiters.push({ resolve, reject });
      }
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flushBound);
      }
    });
  }

  /** Every binding of every AOR, grouped by AOR. */
  async allBindings(): Promise<Binding[]> {
    this.assertOpen();
    this.flush();
    const rows = this.selectAll.all();
    const out = new Array<Binding>(rows.length);
    for (let i = 0; i < rows.length; i++) out[i] = rowToBinding(rows[i]);
    return out;
  }

  /**
   * Every binding in (aor, seq) order, in pages of at most `pageSize` read with keyset
   * pagination (each page an index range scan, so the cost per page stays flat), yielding to
   * the event loop (one `setImmediate`) between pages. Pending writes are committed before each
   * page, so the scan sees every write made before it reads that part of the key range.
   */
  async *scanBindings(pageSize: number): AsyncGenerator<Binding[]> {
    this.assertOpen();
    const size = Math.max(1, Math.floor(pageSize));
    let rows: PageRow[] | undefined;
    for (;;) {
      this.flush();
      if (rows === undefined) rows = this.selectFirstPage.all(size);
      else {
        const last = rows[rows.length - 1];
        rows = this.selectNextPage.all(last[0], last[18], size);
      }
      if (rows.length === 0) return;
      const page = new Array<Binding>(rows.length);
      for (let i = 0; i < rows.length; i++) page[i] = rowToBinding(rows[i]);
      yield page;
      if (rows.length < size) return;
      await yieldToEventLoop();
      if (this.closed) return;
    }
  }

  /**
   * Deletes bindings with `expiresAt <= nowMs` (uses the `expires_at` index).
   * @param nowMs Unix epoch ms (`clock.wallNow()`)
   * @returns number of bindings removed
   */
  async purgeExpired(nowMs: number): Promise<number> {
    this.assertOpen();
    this.flush();
    return this.deleteExpired.run(nowMs).changes;
  }

  /** Commits pending writes, then closes the database (checkpointing the WAL). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.db.close();
  }

  private readonly flushBound = (): void => this.flush();

  /** Commits every pending write: one transaction, or one per AOR when the batch fails. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    try {
      if (batch.size === 1) {
        const [aor, w] = batch.entries().next().value as [string, PendingWrite];
        this.replace(aor, w.bindings);
      } else this.replaceMany(batch);
    } catch (err) {
      if (batch.size === 1) {
        for (const w of batch.values()) for (const x of w.waiters) x.reject(err);
        return;
      }
      for (const [aor, w] of batch) {
        try {
          this.replace(aor, w.bindings);
        } catch (e) {
          for (const x of w.waiters) x.reject(e);
          continue;
        }
        for (const x of w.waiters) x.resolve();
      }
      return;
    }
    for (const w of batch.values()) for (const x of w.waiters) x.resolve();
  }

  /** Deletes and re-inserts the binding set of one AOR (inside a transaction). */
  private write(aor: string, bindings: Binding[]): void {
    this.deleteAor.run(aor);
    for (let i = 0; i < bindings.length; i++) {
      const b = bindings[i];
      const rcv = b.received;
      this.insert.run(
        aor,
        i,
        b.contact,
        b.expiresAt,
        b.q,
        b.callId,
        b.cseq,
        b.instanceId ?? null,
        b.regId ?? null,
        rcv.transport,
        rcv.address,
        rcv.port,
        rcv.socketId,
        rcv.connectionId ?? null,
        b.nat ? 1 : 0,
        b.natTests === undefined ? null : JSON.stringify(b.natTests),
        b.userAgent ?? null,
        b.path === undefined ? null : JSON.stringify(b.path),
        b.updatedAt,
      );
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('location store is closed');
  }
}

/** Creates or upgrades the schema inside one transaction. */
function migrate(db: Database.Database, filename: string): void {
  db.transaction(() => {
    db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    const row = db.prepare<[], { version: number }>('SELECT version FROM schema_version').get();
    const current = row?.version ?? 0;
    if (current > SQLITE_SCHEMA_VERSION) {
      throw new Error(
        `location store ${filename}: schema version ${current} is newer than this sipedge supports (${SQLITE_SCHEMA_VERSION}); upgrade sipedge or use another file`,
      );
    }
    for (let v = current; v < SQLITE_SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]);
    if (row === undefined) db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(SQLITE_SCHEMA_VERSION);
    else if (current !== SQLITE_SCHEMA_VERSION) db.prepare('UPDATE schema_version SET version = ?').run(SQLITE_SCHEMA_VERSION);
  })();
}
