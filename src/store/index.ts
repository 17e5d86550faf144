/**
 * Location store selection from the `store:` config URL.
 *
 * | URL                       | store                                        |
 * |---------------------------|----------------------------------------------|
 * | `sqlite:./var/sipedge.db` | {@link SqliteLocationStore} on that file (relative to the working directory; `sqlite:///abs/path` also works) |
 * | `sqlite::memory:`         | {@link SqliteLocationStore} in memory        |
 * | `memory:`                 | {@link MemoryLocationStore}                  |
 * | `redis://…`               | not supported yet (rejected)                 |
 */
import { MemoryLocationStore } from './memory.js';
import { SqliteLocationStore } from './sqlite.js';
import type { LocationStore } from './types.js';

export type { Binding, LocationStore, ReceivedFlow } from './types.js';
export { MemoryLocationStore } from './memory.js';
export { SqliteLocationStore, SQLITE_SCHEMA_VERSION } from './sqlite.js';

/**
 * Opens the location store named by `url`.
 * @param url `sqlite:PATH`, `sqlite::memory:` or `memory:`
 * @throws Error with a message naming the accepted forms for an unknown or unsupported scheme,
 *   or when the database cannot be opened
 */
export async function openLocationStore(url: string): Promise<LocationStore> {
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
    case 'rediss':
      // The URL may carry a password: never echo it.
      throw new Error(`store scheme "${scheme}:" is not supported yet (use sqlite:PATH, sqlite::memory: or memory:)`);
    default:
      throw new Error(
        `unknown store URL ${scheme === '' ? `"${url.length > 64 ? url.slice(0, 64) + '…' : url}"` : `scheme "${scheme}:"`} (expected sqlite:PATH, sqlite::memory: or memory:)`,
      );
  }
}
