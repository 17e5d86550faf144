/**
 * The effective configuration of sipedge: the shape of `sipedge.yaml` after validation and
 * defaults (see `DESIGN.md`, "The user-facing contract", and {@link sipedgeConfigSchema}).
 *
 * Field names mirror the YAML keys one to one, with these parsed forms:
 * - `sockets` is derived from `listen` (one {@link ListenSpec} per entry, same order);
 * - `media.ports` is `{ low, high }` (YAML: `"10000-10999"`);
 * - `media.engine` is a tagged object (YAML: `internal` or `rtpengine:udp:HOST:PORT`);
 * - `registrar.realm` is always set (defaults to the first domain, else `sipedge`).
 *
 * Units: every duration is in **seconds** unless the field name or doc says ms
 * (`sip.timers.*` are ms, as in RFC 3261). Sizes are in bytes.
 */
import type { ListenSpec } from '../transport/types.js';

/** How the public address is discovered when it is not fixed (tried in the order given). */
export type DiscoverMethod = 'aws' | 'gcp' | 'azure' | 'stun';

/**
 * The public (advertised) address used for sockets that have no `as …` in `listen`
 * (Asterisk `externip` / `externhost`). At most one of `ip`, `host`, `discover` is set;
 * none set means "advertise the bound address".
 */
export interface PublicAddressConfig {
  /** A fixed public IPv4/IPv6 address (Asterisk `externip`). */
  ip?: string;
  /** A DNS name re-resolved every {@link PublicAddressConfig.refresh} s (Asterisk `externhost`). */
  host?: string;
  /** Discovery methods, tried in order: cloud metadata services, then STUN. */
  discover?: DiscoverMethod[];
  /** Seconds between re-resolving `host` / re-running `discover`; 0 = only at start and on reload. Default 600. */
  refresh: number;
  /** STUN servers for `discover: [stun]`, each `host` or `host:port` (default port 3478). */
  stunServers?: string[];
  /** Overrides of the cloud metadata endpoints (for tests and unusual clouds). */
  metadata?: { aws?: string; gcp?: string; azure?: string };
}

/** Keepalive / qualify of registered NATed contacts (NAT pinging). */
export interface KeepaliveConfig {
  /** `options`: SIP OPTIONS (qualify, gives RTT); `crlf`: RFC 5626 double-CRLF; `stun`: STUN binding. Default `options`. */
  method: 'options' | 'crlf' | 'stun';
  /** Seconds between keepalives per contact; 0 disables keepalives. Default 30. */
  interval: number;
  /** Ping every registered contact, not only those detected as NATed. Default false. */
  all: boolean;
  /** Unanswered keepalives in a row before a contact is marked unreachable. Default 3. */
  maxMissed: number;
  /** Remove the binding of a contact that became unreachable. Default false. */
  removeDead: boolean;
}

/** Far-end NAT handling (phones behind NAT). */
export interface NatConfig {
  /** `auto`: detect NATed UAs per request; `force`: treat all as NATed; `off`: never. Default `auto`. */
  clients: 'auto' | 'force' | 'off';
  /** Rewrite the Contact of NATed UAs to their received address (Kamailio `fix_nated_contact`). Default false. */
  rewriteContact: boolean;
  /** Cap, in seconds, on the registration expiry granted to NATed UAs (forces frequent re-REGISTER). */
  maxExpires?: number;
  keepalive: KeepaliveConfig;
}

/** An inclusive UDP port range. `low` is even (RTP even, RTCP = RTP + 1). */
export interface PortRange {
  low: number;
  high: number;
}

/** Where media relaying happens: in this process, or a real rtpengine over its `ng` protocol. */
export type MediaEngineConfig = { kind: 'internal' } | { kind: 'rtpengine'; transport: 'udp'; host: string; port: number };

/** RTP/RTCP relay. */
export interface MediaConfig {
  /** `always`: relay every call; `nat`: only calls with a NATed party; `never`: direct media. Default `always`. */
  relay: 'always' | 'nat' | 'never';
  /** Relay port range (YAML `LOW-HIGH`, default `10000-10999`). */
  ports: PortRange;
  /** IP address the relay binds; default: all addresses. */
  address?: string;
  /** IP address written into SDP; default: the public address. */
  advertise?: string;
  /** Seconds without media before a call's relay is torn down. Default 60. */
  timeout: number;
  /** Once a source has latched, drop packets from any other source. Default true. */
  strictSource: boolean;
  /** Default `{ kind: 'internal' }`. */
  engine: MediaEngineConfig;
  /**
   * Threads of the internal relay (YAML: an integer 1–64 or `auto` = the number of CPU cores,
   * resolved when the config is read). Absent = 1: the relay runs on the main event loop.
   */
  workers?: number;
}

/** Registrar (RFC 3261 §10). */
export interface RegistrarConfig {
  /** Domains served (lower-cased). Empty = accept any domain. */
  domains: string[];
  /** Digest realm; default: the first domain, else `sipedge`. */
  realm: string;
  /** Registration expiry bounds in seconds; `min` ≤ `default` ≤ `max`. Defaults 60 / 3600 / 600. */
  expires: { min: number; max: number; default: number };
  /** Maximum contacts per AOR. Default 5. */
  maxContacts: number;
}

/** Digest authentication (RFC 7616 / RFC 8760). */
export interface AuthConfig {
  /** Challenge algorithms offered, in order. Default `['MD5', 'SHA-256']`. */
  algorithms: Array<'MD5' | 'SHA-256'>;
  /** Seconds a nonce stays valid. Default 300. */
  nonceTtl: number;
}

/** One digest account. */
export interface UserAccount {
  username: string;
  password: string;
}

/** Stateful proxy (RFC 3261 §16). */
export interface ProxyConfig {
  /** Insert Record-Route (needed to stay in the path of NATed dialogs). Default true. */
  recordRoute: boolean;
}

/** SIP message limits and RFC 3261 timers. */
export interface SipConfig {
  /** Largest accepted message, bytes. Default 65535. */
  maxMessageSize: number;
  /** Most header fields accepted in one message. Default 256. */
  maxHeaders: number;
  /** RFC 3261 §17 timers in **ms**: T1 (RTT estimate, 500), T2 (max retransmit interval, 4000), T4 (max network lifetime, 5000). */
  timers: { t1: number; t2: number; t4: number };
}

/** HTTP admin API (`/api/*`, `/metrics`, `/healthz`). */
export interface ApiConfig {
  /** `host:port` (IPv6 as `[::1]:8088`). Default `127.0.0.1:8088`. */
  listen: string;
  /** Default true. */
  enabled: boolean;
}

/**
 * The hooks module (`hooks:`; see src/hooks): YAML `hooks: ./path.mjs` or
 * `hooks: { module: ./path.mjs, options: {…} }`. A relative path is resolved against the
 * working directory (like `store`); a bare name is imported as a package.
 */
export interface HooksConfig {
  module: string;
  /** Passed to the module's factory export. Default `{}`. */
  options: Record<string, unknown>;
}

/** Load shedding while the event loop lags (RFC 3261 §21.5.4 503 + §20.33 Retry-After). */
export interface OverloadConfig {
  /**
   * Smoothed event-loop delay, in **ms**, above which new out-of-dialog requests (INVITE,
   * REGISTER, …; not OPTIONS) get `503 Service Unavailable`. 0 disables. Default 200.
   */
  maxLoopDelay: number;
  /** Seconds sent in `Retry-After` of those 503 responses. Default 5. */
  retryAfter: number;
}

/** pino level names. */
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** The whole effective configuration. */
export interface SipedgeConfig {
  /**
   * Listening sockets as written in the config (`udp:10.0.0.10:5060 as 203.0.113.10:5060`).
   * Default `['udp:0.0.0.0:5060', 'tcp:0.0.0.0:5060']`.
   */
  listen: string[];
  /** Derived from {@link SipedgeConfig.listen}: the parsed sockets, same order, unique ids. */
  sockets: ListenSpec[];
  publicAddress: PublicAddressConfig;
  /** Other names/addresses that mean "this proxy" in Request-URIs and Routes (`host` or `host:port`). */
  aliases: string[];
  /** CIDRs (IPv4/IPv6) of our own LAN: peers there see the private address, never the public one. */
  localnet: string[];
  nat: NatConfig;
  media: MediaConfig;
  registrar: RegistrarConfig;
  auth: AuthConfig;
  users: UserAccount[];
  proxy: ProxyConfig;
  sip: SipConfig;
  /**
   * Location store: `sqlite:PATH` (default `sqlite:./var/sipedge.db`), `memory:`, or
   * `redis://host:port[/db]`. A relative sqlite PATH is resolved against the process's
   * working directory (not the config file's directory), like most daemons; see {@link parseStoreSpec}.
   */
  store: string;
  api: ApiConfig;
  log: { level: LogLevel };
  /** Per-transaction hooks module; none by default. */
  hooks?: HooksConfig;
  overload: OverloadConfig;
  /**
   * SIP worker processes (node:cluster, `src/cluster/`), resolved: YAML `auto` becomes
   * `os.availableParallelism()`. 1 (default) = one process, no cluster. With more than one,
   * `store` must be `sqlite:FILE` or `redis://` and every listener UDP.
   */
  workers: number;
}

/** Parsed form of {@link SipedgeConfig.store}. */
export type StoreSpec = { kind: 'sqlite'; path: string } | { kind: 'memory' } | { kind: 'redis'; url: string };
