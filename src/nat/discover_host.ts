/**
 * `publicAddress.host` (Asterisk `externhost`): the public address is whatever a DNS name
 * (typically a dynamic-DNS name) resolves to, A first, then AAAA. Re-resolved every `refresh` s
 * by the manager (Asterisk `externrefresh`).
 */
import { lookup } from 'node:dns/promises';
import { isIpAddress } from '../config/values.js';
import { DEFAULT_DISCOVER_TIMEOUT_MS, checkDiscoveredAddress, discoverFailure, type DiscoverResult } from './discover_result.js';

/**
 * Resolves `host` to its addresses of one family (4 = A, 6 = AAAA). Rejects, or resolves to an
 * empty list, when there are none. The default uses `dns.promises.lookup` (so `/etc/hosts` counts,
 * as for every other name the system resolves).
 */
export type HostResolver = (host: string, family: 4 | 6) => Promise<string[]>;

/** The default {@link HostResolver}: getaddrinfo via `dns.promises.lookup`. */
export const systemResolveHost: HostResolver = async (host, family) => (await lookup(host, { family, all: true })).map((a) => a.address);

/** Options of {@link discoverHost}. */
export interface HostDiscoverOptions {
  /** The name to resolve (`publicAddress.host`). */
  host: string;
  /** Deadline for both lookups together, ms. Default 2000. */
  timeoutMs?: number;
  /** Aborts the attempt (reported as `TIMEOUT`). */
  signal?: AbortSignal;
  /** Resolver (default {@link systemResolveHost}). */
  resolveHost?: HostResolver;
}

type Outcome = { kind: 'addresses'; addresses: string[] } | { kind: 'error'; message: string } | { kind: 'timeout' } | { kind: 'aborted' };

/**
 * Resolves `host`: the first usable A record, else the first usable AAAA record. Never throws.
 * `DNS` when neither family gives a usable address, `TIMEOUT` when resolution takes longer than
 * `timeoutMs`.
 */
export async function discoverHost(opts: HostDiscoverOptions): Promise<DiscoverResult> {
  const host = opts.host.trim().replace(/\.$/, '');
  if (!host) return discoverFailure('host', 'DNS', 'publicAddress.host is empty');
  if (isIpAddress(host)) return checkDiscoveredAddress(host, 'host');
  const timeoutMs = opts.timeoutMs ?? DEFAULT_DISCOVER_TIMEOUT_MS;
  const resolve = opts.resolveHost ?? systemResolveHost;
  // A referenced timer (cleared when done): the deadline must fire even if the resolver holds no handle.
  let deadline: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<Outcome>((res) => {
    deadline = setTimeout(() => res({ kind: 'timeout' }), Math.max(1, timeoutMs));
    onAbort = () => res({ kind: 'aborted' });
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await resolveInOrder(host, resolve, stop, timeoutMs);
  } finally {
    clearTimeout(deadline);
    if (onAbort) opts.signal?.removeEventListener('abort', onAbort);
  }
}

async function resolveInOrder(host: string, resolve: HostResolver, stop: Promise<Outcome>, timeoutMs: number): Promise<DiscoverResult> {
  const notes: string[] = [];
  for (const family of [4, 6] as const) {
    const rr = family === 4 ? 'A' : 'AAAA';
    const attempt: Promise<Outcome> = (async () => {
      try {
        return { kind: 'addresses', addresses: await resolve(host, family) } as const;
      } catch (err) {
        const e = err as { code?: string; message?: string };
        return { kind: 'error', message: e?.code ?? e?.message ?? String(err) } as const;
      }
    })();
    const o = await Promise.race([attempt, stop]);
    if (o.kind === 'timeout') return discoverFailure('host', 'TIMEOUT', `resolving ${host} (${rr}) took longer than ${timeoutMs} ms`);
    if (o.kind === 'aborted') return discoverFailure('host', 'TIMEOUT', `aborted while resolving ${host}`);
    if (o.kind === 'error') {
      notes.push(`${rr}: ${o.message}`);
      continue;
    }
    if (o.addresses.length === 0) {
      notes.push(`${rr}: no records`);
      continue;
    }
    for (const a of o.addresses) {
      const checked = checkDiscoveredAddress(a, 'host');
      if (checked.ok) return checked;
      notes.push(`${rr}: ${checked.detail}`);
    }
  }
  return discoverFailure('host', 'DNS', `${host} has no usable address (${notes.join('; ')})`);
}
