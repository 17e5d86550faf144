/**
 * Public-address discovery with STUN (RFC 8489 Binding, our own client in `src/stun/`): the
 * XOR-MAPPED-ADDRESS a server reports is the address our NAT maps us to. Servers are tried in
 * the configured order until one answers.
 *
 * A fresh UDP socket is used for each server (optionally bound to `localAddress`, e.g. the SIP
 * socket's address, so the path through the NAT is the one SIP takes). On a 1-to-1 cloud NAT the
 * mapped address is the public address; behind a port-translating NAT it is still the right
 * address, and the mapped port is ignored.
 */
import type { Clock } from '../lib/clock.js';
import type { StunBindingResult } from '../stun/client.js';
import { stunBinding, type StunBindingOptions, type StunLookup } from '../stun/node/client.js';
import { isHostname, isIpAddress, parseHostPort } from '../config/values.js';
import { DEFAULT_DISCOVER_TIMEOUT_MS, checkDiscoveredAddress, discoverFailure, type DiscoverErrorCode, type DiscoverResult } from './discover_result.js';

/** Default STUN port (RFC 8489 §9). */
export const DEFAULT_STUN_PORT = 3478;

/** One Binding transaction; {@link stunBinding} by default (injectable for tests). */
export type StunBindingFn = (server: { host: string; port: number }, opts: StunBindingOptions) => Promise<StunBindingResult>;

/** Options of {@link discoverStun}. */
export interface StunDiscoverOptions {
  /** `publicAddress.stunServers`: `host`, `host:port`, `[v6]:port` or a bare IPv6 address; default port 3478. */
  servers?: string[];
  /** Deadline per server in ms (each server is one attempt). Default 2000. */
  timeoutMs?: number;
  /** Stops trying further servers and reports `TIMEOUT` (the running transaction ends on its own deadline). */
  signal?: AbortSignal;
  /** Local address to send from (its family picks IPv4/IPv6). Default: any. */
  localAddress?: string;
  /** SOFTWARE attribute of the requests. */
  software?: string;
  /** Name resolution of server names (default: `dns.promises.lookup`). */
  lookup?: StunLookup;
  /** Clock of the retransmission timers (default: the system clock). */
  clock?: Clock;
  /** The Binding client (default: {@link stunBinding}). */
  binding?: StunBindingFn;
}

/** Parses one `publicAddress.stunServers` entry; undefined when unusable. */
export function parseStunServer(entry: string): { host: string; port: number } | undefined {
  const s = entry.trim();
  if (isIpAddress(s) || isHostname(s)) return { host: s, port: DEFAULT_STUN_PORT };
  const bare = /^\[([^\]]+)\]$/.exec(s);
  if (bare && isIpAddress(bare[1])) return { host: bare[1], port: DEFAULT_STUN_PORT };
  const hp = parseHostPort(s);
  if (hp.ok && hp.value.port > 0) return hp.value;
  return undefined;
}

function codeOf(r: Extract<StunBindingResult, { ok: false }>): DiscoverErrorCode {
  switch (r.code) {
    case 'TIMEOUT':
      return 'TIMEOUT';
    case 'DNS':
      return 'DNS';
    case 'BAD_RESPONSE':
    case 'ERROR_RESPONSE':
      return 'BAD_ANSWER';
    case 'SOCKET':
      // The server could not be reached at all; the closest stable code (as for a refused HTTP connection).
      return 'HTTP_ERROR';
  }
}

function abortPromise(signal: AbortSignal | undefined): Promise<'aborted'> | undefined {
  if (!signal) return undefined;
  return new Promise((resolve) => {
    if (signal.aborted) resolve('aborted');
    else signal.addEventListener('abort', () => resolve('aborted'), { once: true });
  });
}

/**
 * Asks each configured STUN server in order for our mapped address; returns the first usable
 * answer. Never throws. `NO_SERVERS` when no entry is usable; otherwise, when all fail, the code
 * of the last failure and every server's failure in `detail`.
 */
export async function discoverStun(opts: StunDiscoverOptions = {}): Promise<DiscoverResult> {
  const entries = opts.servers ?? [];
  const servers: Array<{ host: string; port: number; text: string }> = [];
  const invalid: string[] = [];
  for (const e of entries) {
    const p = parseStunServer(e);
    if (p) servers.push({ ...p, text: e.trim() });
    else invalid.push(e);
  }
  if (servers.length === 0) {
    return discoverFailure('stun', 'NO_SERVERS', invalid.length ? `no usable STUN server (invalid: ${invalid.join(', ')})` : 'publicAddress.stunServers is empty');
  }
  const binding = opts.binding ?? stunBinding;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_DISCOVER_TIMEOUT_MS;
  const aborted = abortPromise(opts.signal);
  const failures: string[] = [];
  let lastCode: DiscoverErrorCode = 'TIMEOUT';
  for (const server of servers) {
    if (opts.signal?.aborted) return discoverFailure('stun', 'TIMEOUT', `aborted${failures.length ? ` after ${failures.join('; ')}` : ''}`);
    let r: StunBindingResult | 'aborted';
    try {
      const attempt = binding(
        { host: server.host, port: server.port },
        { timeoutMs, localAddress: opts.localAddress, software: opts.software, lookup: opts.lookup, clock: opts.clock },
      );
      r = aborted ? await Promise.race([attempt, aborted]) : await attempt;
    } catch (err) {
      // The default client never throws; an injected one might.
      r = { ok: false, code: 'SOCKET', detail: (err as Error)?.message ?? String(err) };
    }
    if (r === 'aborted') return discoverFailure('stun', 'TIMEOUT', `aborted while asking ${server.text}`);
    if (r.ok) {
      const checked = checkDiscoveredAddress(r.mapped.address, 'stun');
      if (checked.ok) return checked;
      lastCode = checked.code;
      failures.push(`${server.text}: ${checked.code} ${checked.detail}`);
      continue;
    }
    lastCode = codeOf(r);
    failures.push(`${server.text}: ${r.code} ${r.detail}`);
  }
  if (invalid.length) failures.push(`invalid: ${invalid.join(', ')}`);
  return discoverFailure('stun', lastCode, failures.join('; '));
}
