/**
 * Public-address discovery (issue 4 item 4): where the advertised address of sockets without
 * `as …` comes from when the server sits behind NAT.
 *
 * - `publicAddress.ip`: fixed (Asterisk `externip`) — source `config`;
 * - `publicAddress.host`: a DNS name, A then AAAA (Asterisk `externhost`) — source `host`;
 * - `publicAddress.discover: [aws, gcp, azure, stun]`: cloud metadata services, then STUN, tried
 *   in the configured order until one gives a usable address.
 *
 * Every method is a plain async function that never throws and returns a {@link DiscoverResult}.
 * {@link discoverPublicAddress} runs the configured strategy once; the long-lived owner of the
 * result, with refresh timer and change notification, is `PublicAddressManager`
 * (`./public_address.ts`).
 */
import type { DiscoverMethod, PublicAddressConfig } from '../config/types.js';
import { discoverHost, type HostResolver } from './discover_host.js';
import { discoverAws, discoverAzure, discoverGcp, type FetchLike } from './discover_metadata.js';
import { discoverStun, type StunDiscoverOptions } from './discover_stun.js';
import { checkDiscoveredAddress, type DiscoverResult } from './discover_result.js';

export * from './discover_result.js';
export * from './discover_metadata.js';
export * from './discover_stun.js';
export * from './discover_host.js';

/** STUN settings that do not come from {@link PublicAddressConfig}. */
export type StunDiscoverDeps = Omit<StunDiscoverOptions, 'servers' | 'timeoutMs' | 'signal'>;

/** Injected dependencies and limits of a discovery run. */
export interface DiscoverDeps {
  /** Timeout of each method in ms (for STUN: of each server). Default 2000. */
  timeoutMs?: number;
  /** Aborts the run: the method in progress reports `TIMEOUT` and no further method is tried. */
  signal?: AbortSignal;
  /** `fetch` for the metadata methods (default: global fetch). */
  fetchImpl?: FetchLike;
  /** Resolver for `publicAddress.host` (default: `dns.promises.lookup`). */
  resolveHost?: HostResolver;
  /** STUN client options (local address, SOFTWARE, resolver, clock, injected client). */
  stun?: StunDiscoverDeps;
}

/** Runs one `discover` method with the settings of `config`. Never throws. */
export function discoverWith(method: DiscoverMethod, config: PublicAddressConfig, deps: DiscoverDeps = {}): Promise<DiscoverResult> {
  const common = { timeoutMs: deps.timeoutMs, signal: deps.signal, fetchImpl: deps.fetchImpl };
  switch (method) {
    case 'aws':
      return discoverAws({ ...common, baseUrl: config.metadata?.aws });
    case 'gcp':
      return discoverGcp({ ...common, baseUrl: config.metadata?.gcp });
    case 'azure':
      return discoverAzure({ ...common, baseUrl: config.metadata?.azure });
    case 'stun':
      return discoverStun({ ...deps.stun, servers: config.stunServers, timeoutMs: deps.timeoutMs, signal: deps.signal });
  }
}

/** Which alternative of {@link PublicAddressConfig} is in use. */
export type PublicAddressMode = 'ip' | 'host' | 'discover' | 'none';

/** The mode of a config: `ip`, `host`, `discover` (first one set, in that order), else `none`. */
export function publicAddressMode(config: PublicAddressConfig): PublicAddressMode {
  if (config.ip !== undefined) return 'ip';
  if (config.host !== undefined) return 'host';
  if (config.discover !== undefined && config.discover.length > 0) return 'discover';
  return 'none';
}

/** Outcome of one run of the configured strategy. */
export interface DiscoveryRun {
  mode: PublicAddressMode;
  /** The successful result, if any (undefined when every method failed, or mode `none`). */
  result?: Extract<DiscoverResult, { ok: true }>;
  /** Every method tried, in order, including the successful one. */
  attempts: DiscoverResult[];
}

/**
 * Runs the configured strategy once: fixed `ip` → that; `host` → resolve it; `discover` → each
 * method in order until one succeeds; nothing configured → no address (`mode: 'none'`).
 * Never throws.
 */
export async function discoverPublicAddress(config: PublicAddressConfig, deps: DiscoverDeps = {}): Promise<DiscoveryRun> {
  const mode = publicAddressMode(config);
  const attempts: DiscoverResult[] = [];
  const finish = (): DiscoveryRun => {
    const last = attempts[attempts.length - 1];
    return { mode, result: last?.ok ? last : undefined, attempts };
  };
  switch (mode) {
    case 'none':
      return finish();
    case 'ip':
      attempts.push(checkDiscoveredAddress(config.ip ?? '', 'config'));
      return finish();
    case 'host':
      attempts.push(await discoverHost({ host: config.host ?? '', timeoutMs: deps.timeoutMs, signal: deps.signal, resolveHost: deps.resolveHost }));
      return finish();
    case 'discover':
      for (const method of config.discover ?? []) {
        if (deps.signal?.aborted) break;
        const r = await discoverWith(method, config, deps);
        attempts.push(r);
        if (r.ok) break;
      }
      return finish();
  }
}
