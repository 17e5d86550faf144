/**
 * A flow-token secret that survives restarts, so dialogs set up before a restart (their
 * Record-Route carries our flow token) still route in-dialog requests — a BYE to a phone behind
 * NAT — afterwards.
 *
 * With the SQLite store (`store: sqlite:PATH`) the secret lives next to the database, in
 * `PATH.flowtoken.key` (32 random octets, hex, mode 0600), created on first start. Other stores
 * (`memory:`, `sqlite::memory:`) keep no state across restarts, so a random per-process secret
 * is used. Reading the file never throws: a file that is unreadable or malformed is reported
 * and replaced by a per-process secret (never overwritten).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../lib/log.js';

const SECRET_BYTES = 32;

/** The secret file for a `store:` URL, or undefined when the store is not a file. */
export function flowTokenSecretPath(store: string): string | undefined {
  if (!store.startsWith('sqlite:')) return undefined;
  let file = store.slice('sqlite:'.length);
  if (file.startsWith('//')) file = file.slice(2);
  if (file === '' || file === ':memory:') return undefined;
  return path.resolve(file) + '.flowtoken.key';
}

/**
 * Loads (or creates) the persistent secret for `store`.
 * @returns the secret and where it came from
 */
export function loadFlowTokenSecret(store: string, log?: Logger): { secret: Buffer; source: 'file' | 'created' | 'process' } {
  const file = flowTokenSecretPath(store);
  if (file === undefined) return { secret: randomBytes(SECRET_BYTES), source: 'process' };
  try {
    const text = fs.readFileSync(file, 'utf8').trim();
    if (/^[0-9a-f]{64}$/i.test(text)) return { secret: Buffer.from(text, 'hex'), source: 'file' };
    log?.warn({ file }, 'flow token secret file is malformed (expected 64 hex digits); using a per-process secret');
    return { secret: randomBytes(SECRET_BYTES), source: 'process' };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      log?.warn({ file, err: (err as Error).message }, 'flow token secret file unreadable; using a per-process secret');
      return { secret: randomBytes(SECRET_BYTES), source: 'process' };
    }
  }
  const secret = randomBytes(SECRET_BYTES);
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    // 'wx': never overwrite a file another process created meanwhile.
    fs.writeFileSync(file, secret.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
    return { secret, source: 'created' };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadFlowTokenSecret(store, log);
    log?.warn({ file, err: (err as Error).message }, 'could not write the flow token secret file; using a per-process secret');
    return { secret, source: 'process' };
  }
}
