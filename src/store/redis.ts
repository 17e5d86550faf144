/**
 * Shared location store (RFC 3261 §10) on Redis via ioredis: several sipedge nodes serving one
 * domain read and write the same bindings (`store: redis://host:6379/2?prefix=sipedge:`).
 *
 * Key layout (every key starts with the prefix, default `sipedge:`):
 *
 * | key                 | type       | holds                                                     |
 * |---------------------|------------|-----------------------------------------------------------|
 * | `{prefix}aor:{aor}` | list       | the AOR's binding set, one JSON-encoded {@link Binding} per element, in stored order |
 * | `{prefix}expiry`    | sorted set | member = AOR, score = earliest `expiresAt` of its bindings (Unix epoch ms) |
 * | `{prefix}secret:{name}` | string | a secret shared by the nodes ({@link RedisLocationStore.sharedSecret}) |
 *
 * - `setBindings` replaces the list and the AOR's expiry score in one MULTI/EXEC, so other nodes
 *   never see half a binding set or a list without its expiry entry.
 * - `purgeExpired(now)` reads due AORs with `ZRANGEBYSCORE expiry -inf now LIMIT` in batches and
 *   runs {@link PURGE_AOR_LUA} once per AOR (pipelined). The script is atomic on the server: it
 *   drops the expired elements of the list and re-scores (or removes) the AOR in the same step, so
 *   a REGISTER written by another node between the ZRANGEBYSCORE and the script is never lost
 *   and two nodes purging at once never count a binding twice. It rebuilds the list from the
 *   original JSON strings (it only decodes them to read `expiresAt`), so no value is re-encoded
 *   by Lua's cjson (which would round large integers such as TCP connection ids).
 * - `allBindings()` (and `scanBindings()`, page by page) walk the keys with `SCAN MATCH {prefix}aor:* COUNT 200` (never `KEYS`),
 *   reading each list; it is not a snapshot across AORs (an AOR changed meanwhile is read as it is
 *   when its list is read).
 * - Writes are last-writer-wins per AOR: the interface has no compare-and-set, so two nodes
 *   handling REGISTERs for the same AOR in the same instant may lose one contact until that UA's
 *   next refresh.
 * - Keys carry no TTL: the contract keeps expired bindings until `purgeExpired` (every node's
 *   purge timer) removes them.
 *
 * Connection handling: the connection is opened by {@link RedisLocationStore.connect} (used by
 * `openLocationStore`), which fails within `connectTimeoutMs` when Redis is unreachable. Once
 * connected, a lost connection is re-established in the background (backoff up to 2 s) while
 * every call made meanwhile rejects at once with a {@link RedisStoreError} naming the last
 * connection error; nothing waits in an offline queue. ioredis `error` events are logged
 * (throttled), never left unhandled.
 */
import { randomBytes } from 'node:crypto';
import { Redis, type ChainableCommander, type RedisOptions } from 'ioredis';
import { createLogger, type Logger } from '../lib/log.js';
import { pagesOfSets } from './paging.js';
import type { Binding, LocationStore } from './types.js';

/** Default key prefix. */
export const REDIS_DEFAULT_PREFIX = 'sipedge:';

/** Stable codes of {@link RedisStoreError}. */
export type RedisStoreErrorCode =
  /** The `store:` URL is malformed (bad port, db number or query parameter). */
  | 'SIPEDGE_STORE_REDIS_URL'
  /** Redis could not be reached (or did not answer) at start-up within the connect timeout. */
  | 'SIPEDGE_STORE_REDIS_CONNECT'
  /** A command failed: connection down, timeout, or a Redis error reply. */
  | 'SIPEDGE_STORE_REDIS_IO'
  /** A stored value is not a binding this code can read. */
  | 'SIPEDGE_STORE_REDIS_CORRUPT'
  /** A call after {@link RedisLocationStore.close}. */
  | 'SIPEDGE_STORE_CLOSED';

/** Errors of the Redis store; `code` is stable, the message is for humans (never holds the password). */
export class RedisStoreError extends Error {
  constructor(
    readonly code: RedisStoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RedisStoreError';
  }
}

/** A parsed `redis://` / `rediss://` store URL. */
export interface RedisStoreTarget {
  host: string;
  port: number;
  /** Database number from the URL path (`/2`); 0 when absent. */
  db: number;
  /** Key prefix from `?prefix=`; {@link REDIS_DEFAULT_PREFIX} when absent (an empty `?prefix=` means none). */
  prefix: string;
  username?: string;
  password?: string;
  /** `rediss://`: TLS. */
  tls: boolean;
  /** The URL without credentials, for messages and logs: `redis://host:6379/2`. */
  display: string;
}

/**
 * Parses `redis://[[user]:password@]host[:port][/db][?prefix=P]` (`rediss://` for TLS).
 * @throws RedisStoreError `SIPEDGE_STORE_REDIS_URL` naming what is wrong (never echoing the password)
 */
export function parseRedisStoreUrl(url: string): RedisStoreTarget {
  const scheme = /^(rediss?):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) throw urlError(`store URL must start with redis:// or rediss://`);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw urlError(`store URL is not a valid ${scheme}:// URL (expected ${scheme}://host:6379[/db][?prefix=sipedge:])`);
  }
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw urlError(`store URL ${scheme}:// has no host`);
  const port = u.port === '' ? 6379 : Number(u.port);
  const hostPort = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const path = u.pathname.replace(/^\/+/, '').replace(/\/+$/, '');
  if (path !== '' && !/^\d{1,5}$/.test(path)) throw urlError(`store URL ${scheme}://${hostPort}: the path must be a database number (/0, /1 …), got "/${path}"`);
  const db = path === '' ? 0 : Number(path);
  let prefix = REDIS_DEFAULT_PREFIX;
  for (const [k, v] of u.searchParams) {
    if (k === 'prefix') prefix = v;
    else throw urlError(`store URL ${scheme}://${hostPort}/${db}: unknown parameter "${k}" (only ?prefix= is accepted)`);
  }
  const t: RedisStoreTarget = { host, port, db, prefix, tls: scheme === 'rediss', display: `${scheme}://${hostPort}/${db}` };
  if (u.username !== '') t.username = decodeURIComponent(u.username);
  if (u.password !== '') t.password = decodeURIComponent(u.password);
  return t;
}

function urlError(message: string): RedisStoreError {
  return new RedisStoreError('SIPEDGE_STORE_REDIS_URL', message);
}

/** Options of {@link RedisLocationStore}. */
export interface RedisStoreOptions {
  /** Receives connection errors (throttled) and reconnects. Default: a process logger at `info`. */
  logger?: Logger;
  /** How long start-up waits for Redis before failing, ms. Default 3000. */
  connectTimeoutMs?: number;
  /** How long one command may take before it rejects, ms. Default 5000. */
  commandTimeoutMs?: number;
  /** Overrides the URL's `?prefix=`. */
  prefix?: string;
}

/**
 * Removes the expired bindings of one AOR atomically and re-scores it in the expiry set.
 * KEYS[1] = the AOR's binding list, KEYS[2] = the expiry sorted set;
 * ARGV[1] = now (Unix epoch ms), ARGV[2] = the AOR (expiry set member).
 * An element that is not JSON or has no numeric `expiresAt` counts as expired.
 * Returns the number of bindings removed.
 */
export const PURGE_AOR_LUA = `
local now = tonumber(ARGV[1])
local items = redis.call('LRANGE', KEYS[1], 0, -1)
local keep = {}
local earliest = nil
for i = 1, #items do
  local ok, b = pcall(cjson.decode, items[i])
  local e = nil
  if ok and type(b) == 'table' then e = tonumber(b['expiresAt']) end
  if e ~= nil and e > now then
    keep[#keep + 1] = items[i]
    if earliest == nil or e < earliest then earliest = e end
  end
end
local removed = #items - #keep
if removed > 0 then
  redis.call('DEL', KEYS[1])
  for i = 1, #keep, 500 do
    redis.call('RPUSH', KEYS[1], unpack(keep, i, math.min(i + 499, #keep)))
  end
end
if earliest == nil then
  redis.call('ZREM', KEYS[2], ARGV[2])
else
  redis.call('ZADD', KEYS[2], string.format('%.17g', earliest), ARGV[2])
end
return removed
`;

/** The custom command {@link PURGE_AOR_LUA} is registered as. */
interface PurgeCommand {
  sipedgePurgeAor(listKey: string, expiryKey: string, now: string, aor: string): Promise<number>;
}

/** AORs handled per ZRANGEBYSCORE round of `purgeExpired`. */
const PURGE_BATCH = 256;
/** SCAN COUNT hint of `allBindings`. */
const SCAN_COUNT = 200;
/** At most one log line per distinct connection error message in this window, ms. */
const ERROR_LOG_INTERVAL_MS = 30_000;

let defaultLogger: Logger | undefined;

/**
 * {@link LocationStore} on Redis, shared by every node configured with the same URL and prefix.
 * Create it with {@link RedisLocationStore.connect} (or `openLocationStore('redis://…')`); own it:
 * call {@link RedisLocationStore.close}.
 *
 * TCP/TLS `received.connectionId` is an id of a connection *in the process that wrote the
 * binding*. Bindings written by another node keep their flow (transport, address, port,
 * socket id), but their connection ids mean nothing here: the proxy treats a connection id it does
 * not know as closed (RFC 5626 — the flow is gone), exactly as after a restart.
 */
export class RedisLocationStore implements LocationStore {
  /** The URL without credentials (`redis://host:6379/0`), for logs and messages. */
  readonly display: string;
  /** Key prefix in use. */
  readonly prefix: string;
  private readonly redis: Redis;
  private readonly log: Logger;
  private readonly expiryKey: string;
  private readonly scanPattern: string;
  private readonly connectTimeoutMs: number;
  /** True once the first connection was ready: from then on ioredis reconnects by itself. */
  private started = false;
  private closed = false;
  private closing?: Promise<void>;
  private lastError?: Error;
  private readonly errorLoggedAt = new Map<string, number>();

  private constructor(target: RedisStoreTarget, opts: RedisStoreOptions) {
    this.display = target.display;
    this.prefix = opts.prefix ?? target.prefix;
    this.expiryKey = `${this.prefix}expiry`;
    this.scanPattern = `${escapeGlob(this.prefix)}aor:*`;
    this.connectTimeoutMs = Math.max(1, opts.connectTimeoutMs ?? 3000);
    this.log = opts.logger ?? (defaultLogger ??= createLogger());
    const options: RedisOptions = {
      host: target.host,
      port: target.port,
      db: target.db,
      lazyConnect: true,
      connectTimeout: this.connectTimeoutMs,
      commandTimeout: Math.max(1, opts.commandTimeoutMs ?? 5000),
      // Fail calls at once while disconnected instead of queueing them behind a reconnect.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // No reconnect before the first success: start-up must fail fast and clearly.
      retryStrategy: (times) => (this.started && !this.closed ? Math.min(100 * times, 2000) : null),
      // RESP2 works with every Redis and Redis-compatible server.
      protocol: 2,
      connectionName: 'sipedge',
      disableClientInfo: true,
    };
    if (target.username !== undefined) options.username = target.username;
    if (target.password !== undefined) options.password = target.password;
    if (target.tls) options.tls = { servername: target.host };
    this.redis = new Redis(options);
    this.redis.defineCommand('sipedgePurgeAor', { numberOfKeys: 2, lua: PURGE_AOR_LUA });
    this.redis.on('error', (err: Error) => this.onError(err));
    this.redis.on('ready', () => {
      if (this.started && this.lastError !== undefined) this.log.warn({ store: this.display }, 'redis location store: connection restored');
      this.lastError = undefined;
    });
  }

  /**
   * Connects to the Redis named by `url` and checks that it answers.
   * @param url `redis://[[user]:password@]host[:port][/db][?prefix=P]` or `rediss://…`
   * @throws RedisStoreError `SIPEDGE_STORE_REDIS_URL` for a bad URL, `SIPEDGE_STORE_REDIS_CONNECT`
   *   when Redis is unreachable, refuses the credentials or does not answer within `connectTimeoutMs`
   */
  static async connect(url: string, opts: RedisStoreOptions = {}): Promise<RedisLocationStore> {
    const store = new RedisLocationStore(parseRedisStoreUrl(url), opts);
    await store.start();
    return store;
  }

  private async start(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.redis.connect().then(() => this.redis.ping()),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${this.connectTimeoutMs} ms`)), this.connectTimeoutMs);
        }),
      ]);
    } catch (err) {
      this.closed = true;
      this.redis.disconnect();
      const reason = this.lastError?.message ?? (err instanceof Error ? err.message : String(err));
      throw new RedisStoreError('SIPEDGE_STORE_REDIS_CONNECT', `cannot connect to the Redis location store at ${this.display}: ${reason}`, {
        cause: this.lastError ?? err,
      });
    } finally {
      clearTimeout(timer);
    }
    this.started = true;
  }

  /** Bindings of `aor` in stored order, including expired ones not yet purged. */
  async getBindings(aor: string): Promise<Binding[]> {
    this.assertUsable('getBindings');
    let items: string[];
    try {
      items = await this.redis.lrange(this.aorKey(aor), 0, -1);
    } catch (err) {
      throw this.ioError('getBindings', err);
    }
    return items.map((s) => this.decode(aor, s));
  }

  /**
   * Replaces the binding set of `aor` and its expiry entry in one MULTI/EXEC (an empty array
   * removes the AOR). Each binding's `aor` is stored as the `aor` argument.
   */
  async setBindings(aor: string, bindings: Binding[]): Promise<void> {
    this.assertUsable('setBindings');
    const key = this.aorKey(aor);
    const tx = this.redis.multi().del(key);
    if (bindings.length === 0) tx.zrem(this.expiryKey, aor);
    else {
      let earliest = Infinity;
      const items = new Array<string>(bindings.length);
      for (let i = 0; i < bindings.length; i++) {
        const b = bindings[i];
        if (typeof b.expiresAt !== 'number' || !Number.isFinite(b.expiresAt)) {
          throw new RedisStoreError('SIPEDGE_STORE_REDIS_IO', `setBindings(${aor}): binding ${i} has no finite expiresAt (${String(b.expiresAt)})`);
        }
        if (b.expiresAt < earliest) earliest = b.expiresAt;
        items[i] = JSON.stringify({ ...b, aor });
      }
      tx.rpush(key, ...items).zadd(this.expiryKey, String(earliest), aor);
    }
    await this.exec('setBindings', tx);
  }

  /** Every binding of every AOR (SCAN with a bounded COUNT, then one LRANGE per AOR, pipelined), grouped by AOR in AOR order. */
  async allBindings(): Promise<Binding[]> {
    this.assertUsable('allBindings');
    const keys: string[] = [];
    for await (const batch of this.scanAorKeys('allBindings')) keys.push(...batch);
    keys.sort();
    const out: Binding[] = [];
    for (let i = 0; i < keys.length; i += PURGE_BATCH) {
      for (const set of await this.readAors('allBindings', keys.slice(i, i + PURGE_BATCH))) out.push(...set);
    }
    return out;
  }

  /**
   * Every binding of every AOR in pages of about `pageSize` bindings (an AOR's set is never split;
   * a page may exceed `pageSize` by the last AOR's bindings). Walks the keys with
   * `SCAN MATCH {prefix}aor:* COUNT 200` and reads each SCAN batch with pipelined LRANGEs, so the
   * event loop turns between round trips; like {@link allBindings} it is not a snapshot across AORs.
   * Yields nothing more once the store is closed.
   * @throws RedisStoreError `SIPEDGE_STORE_REDIS_IO` when a command fails
   */
  async *scanBindings(pageSize: number): AsyncGenerator<Binding[]> {
    this.assertUsable('scanBindings');
    const sets = async function* (store: RedisLocationStore): AsyncGenerator<Binding[]> {
      for await (const batch of store.scanAorKeys('scanBindings')) {
        if (store.closed) return;
        yield* await store.readAors('scanBindings', batch);
      }
    };
    yield* pagesOfSets(sets(this), pageSize, () => this.closed);
  }


  /**
   * The AOR keys, batch by batch as `SCAN MATCH {prefix}aor:* COUNT 200` returns them, each key
   * once (SCAN may return a key more than once). Empty batches are skipped.
   */
  private async *scanAorKeys(op: string): AsyncGenerator<string[]> {
    const seen = new Set<string>();
    let cursor = '0';
    do {
      let batch: string[];
      try {
        [cursor, batch] = await this.redis.scan(cursor, 'MATCH', this.scanPattern, 'COUNT', SCAN_COUNT);
      } catch (err) {
        throw this.ioError(op, err);
      }
      const fresh = batch.filter((k) => !seen.has(k));
      for (const k of fresh) seen.add(k);
      if (fresh.length > 0) yield fresh;
    } while (cursor !== '0');
  }

  /** The binding sets stored under `keys` (AOR keys), in the same order, with one pipelined LRANGE each. */
  private async readAors(op: string, keys: string[]): Promise<Binding[][]> {
    const keyStart = this.prefix.length + 'aor:'.length;
    const pipe = this.redis.pipeline();
    for (const k of keys) pipe.lrange(k, 0, -1);
    const results = (await this.exec(op, pipe)) as string[][];
    return keys.map((k, j) => {
      const aor = k.slice(keyStart);
      return results[j].map((v) => this.decode(aor, v));
    });
  }

  /**
   * Deletes bindings with `expiresAt <= nowMs`, AOR by AOR, each atomically (see the module comment).
   * @param nowMs Unix epoch ms (`clock.wallNow()`)
   * @returns number of bindings removed by this call
   */
  async purgeExpired(nowMs: number): Promise<number> {
    this.assertUsable('purgeExpired');
    const now = String(nowMs);
    let removed = 0;
    for (;;) {
      let due: string[];
      try {
        due = await this.redis.zrangebyscore(this.expiryKey, '-inf', now, 'LIMIT', 0, PURGE_BATCH);
      } catch (err) {
        throw this.ioError('purgeExpired', err);
      }
      if (due.length === 0) return removed;
      const pipe = this.redis.pipeline() as ChainableCommander & { sipedgePurgeAor(...args: string[]): unknown };
      for (const aor of due) pipe.sipedgePurgeAor(this.aorKey(aor), this.expiryKey, now, aor);
      const counts = (await this.exec('purgeExpired', pipe)) as number[];
      for (const n of counts) removed += Number(n);
      // Every AOR handled was re-scored above `now` or removed, so the next round sees new ones only.
      if (due.length < PURGE_BATCH) return removed;
    }
  }

  /** Sends QUIT and waits for the connection to close; further calls reject. Idempotent. */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.closed = true;
    this.closing = (async () => {
      if (this.redis.status === 'end') return;
      if (this.redis.status !== 'ready') {
        this.redis.disconnect();
        return;
      }
      const ended = new Promise<void>((resolve) => this.redis.once('end', () => resolve()));
      try {
        await this.redis.quit();
      } catch {
        this.redis.disconnect();
      }
      await ended;
    })();
    return this.closing;
  }

  /**
   * A random secret shared by every node on this Redis and prefix (`{prefix}secret:{name}`, hex),
   * created by whichever node asks first (`SET NX`), never changed afterwards. Meant for the
   * flow-token key, so a dialog's Record-Route token made by one node decodes on the others.
   * @param bytes length of a newly created secret
   */
  async sharedSecret(name: string, bytes = 32): Promise<Buffer> {
    this.assertUsable('sharedSecret');
    const key = `${this.prefix}secret:${name}`;
    let hex: string | null;
    try {
      await this.redis.set(key, randomBytes(bytes).toString('hex'), 'NX');
      hex = await this.redis.get(key);
    } catch (err) {
      throw this.ioError('sharedSecret', err);
    }
    if (hex === null || !/^(?:[0-9a-f]{2})+$/i.test(hex)) {
      throw new RedisStoreError('SIPEDGE_STORE_REDIS_CORRUPT', `redis location store ${this.display}: key "${key}" does not hold a hex secret`);
    }
    return Buffer.from(hex, 'hex');
  }

  /** Runs the same script as {@link purgeExpired} uses on one AOR (for tests and tools). */
  async purgeAor(aor: string, nowMs: number): Promise<number> {
    this.assertUsable('purgeAor');
    try {
      return Number(await (this.redis as unknown as PurgeCommand).sipedgePurgeAor(this.aorKey(aor), this.expiryKey, String(nowMs), aor));
    } catch (err) {
      throw this.ioError('purgeAor', err);
    }
  }

  private aorKey(aor: string): string {
    return `${this.prefix}aor:${aor}`;
  }

  /** Executes a MULTI or pipeline; resolves each command's result, rejects with the first error. */
  private async exec(op: string, batch: ChainableCommander): Promise<unknown[]> {
    let res: [error: Error | null, result: unknown][] | null;
    try {
      res = await batch.exec();
    } catch (err) {
      throw this.ioError(op, err);
    }
    if (res === null) throw this.ioError(op, new Error('transaction aborted'));
    const out = new Array<unknown>(res.length);
    for (let i = 0; i < res.length; i++) {
      const [err, value] = res[i];
      if (err) throw this.ioError(op, err);
      out[i] = value;
    }
    return out;
  }

  private decode(aor: string, s: string): Binding {
    let b: unknown;
    try {
      b = JSON.parse(s);
    } catch {
      b = undefined;
    }
    const ok =
      typeof b === 'object' &&
      b !== null &&
      typeof (b as Binding).contact === 'string' &&
      typeof (b as Binding).expiresAt === 'number' &&
      typeof (b as Binding).received === 'object' &&
      (b as Binding).received !== null;
    if (!ok) {
      throw new RedisStoreError(
        'SIPEDGE_STORE_REDIS_CORRUPT',
        `redis location store ${this.display}: key "${this.aorKey(aor)}" holds a value that is not a binding: ${s.length > 80 ? s.slice(0, 80) + '…' : s}`,
      );
    }
    return b as Binding;
  }

  private assertUsable(op: string): void {
    if (this.closed) throw new RedisStoreError('SIPEDGE_STORE_CLOSED', 'location store is closed');
    if (this.redis.status !== 'ready') {
      const why = this.lastError !== undefined ? `: ${this.lastError.message}` : '';
      throw new RedisStoreError('SIPEDGE_STORE_REDIS_IO', `redis location store ${this.display}: ${op} failed: not connected (${this.redis.status})${why}`);
    }
  }

  private ioError(op: string, err: unknown): RedisStoreError {
    const msg = err instanceof Error ? err.message : String(err);
    return new RedisStoreError('SIPEDGE_STORE_REDIS_IO', `redis location store ${this.display}: ${op} failed: ${msg}`, { cause: err });
  }

  /** ioredis `error` events: remembered for messages; logged once per message per 30 s after start-up. */
  private onError(err: Error): void {
    this.lastError = err;
    if (!this.started || this.closed) return; // start-up failures reject connect() instead
    const now = Date.now();
    const last = this.errorLoggedAt.get(err.message);
    if (last !== undefined && now - last < ERROR_LOG_INTERVAL_MS) return;
    if (this.errorLoggedAt.size > 100) this.errorLoggedAt.clear();
    this.errorLoggedAt.set(err.message, now);
    this.log.error({ store: this.display, err: err.message }, 'redis location store: connection error (reconnecting)');
  }
}

/** Escapes Redis glob metacharacters (`* ? [ ] \`) so a prefix matches only itself in SCAN MATCH. */
export function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&');
}
