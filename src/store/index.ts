/**
 * Location store selection from the `store:` config URL.
 *
 * | URL                       | store                                        |
 * |---------------------------|----------------------------------------------|
 * | `sqlite:./var/sipedge.db` | {@link SqliteLocationStore} on that file (relative to the working directory; `sqlite:///abs/path` also works) |
 * | `sqlite::memory:`         | {@link SqliteLocationStore} in memory        |
 * | `memory:`                 | {@link MemoryLocationStore}                  |
 * | `redis://[[user]:password@]host[:port][/db][?prefix=P]` | {@link RedisLocationStore} (`rediss://` for TLS; db 0 and prefix `sipedge:` by default) |
 */
import { MemoryLocationStore } from './memory.js';
import { SqliteLocationStore } from './sqlite.js';
import type { LocationStore } from './types.js';
import type { Logger } from '../lib/log.js';

export type { Binding, LocationStore, ReceivedFlow } from './types.js';
export { MemoryLocationStore } from './memory.js';
export { SqliteLocationStore, SQLITE_SCHEMA_VERSION } from './sqlite.js';
// The Redis store is loaded only when a redis:// URL is opened: importing ioredis at start-up
// costs every process (its `class VerbatimString extends String` turns String.prototype into a
// slow-properties object in V8, which slows every string method call in the SIP parser).
// Import RedisLocationStore and friends from './redis.js' directly.

/** Options of {@link openLocationStore}. */
export interface OpenLocationStoreOptions {
  /** Where network stores (Redis) log connection errors and reconnects. */
  logger?: Logger;
  /** How long start-up waits for a network store (Redis), ms. Default 3000. */
  connectTimeoutMs?: number;
}

/**
 * Opens the location store named by `url`.
 * @param url `sqlite:PATH`, `sqlite::memory:`, `memory:` or `redis://host:6379[/db][?prefix=P]`
 * @throws Error with a message naming the accepted forms for an unknown or unsupported scheme,
 *   or when the database cannot be opened; for Redis a `RedisStoreError` when the URL is bad or
 *   Redis does not answer within `connectTimeoutMs` (connected eagerly, so start-up fails clearly)
 */
export async function openLocationStore(url: string, opts: OpenLocationStoreOptions = {}): Promise<LocationStore> {
  const colon = url.indexOf(':');
  const scheme = colon > 0 ? url.slice(0, colon).toLowerCase() : '';
  const rest = colon > 0 ? url.slice(colon + 1) : '';
  switch (scheme) {
    case 'memory':
      if (rest !== '' && rest !== '//') throw new Error(`store URL "memory:" takes no path (got "${url}")`);
      return new MemoryLocationStore();
    case 'sqlite': {
      // sqlite:///abs/path and sqlite://./rel are accepted alongside sqlite:PATH.
      const file = rest.startsWith('//') ? rest.slice(2) : rest;
      if (file === '') throw new Error(`store URL "${url}" has no file path (expected sqlite:PATH or sqlite::memory:)`);
      return new SqliteLocationStore(file);
    }
    case 'redis':
    case 'rediss': {
      // The URL may carry a password: RedisLocationStore never echoes it.
      const { RedisLocationStore } = await import('./redis.js');
      return RedisLocationStore.connect(url, opts);
    }
    default:
      throw new Error(
        `unknown store URL ${scheme === '' ? `"${url.length > 64 ? url.slice(0, 64) + '…' : url}"` : `scheme "${scheme}:"`} (expected sqlite:PATH, sqlite::memory:, memory: or redis://host:6379)`,
      );
  }
}
