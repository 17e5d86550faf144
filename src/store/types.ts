/**
 * The location service (RFC 3261 §10) behind an interface, so the embedded SQLite store and
 * the shared Redis store are interchangeable. All methods are async so network stores fit.
 */
import type { TransportProto } from '../transport/types.js';

/** Where a binding's REGISTER really came from (its flow), kept beside the Contact. */
export interface ReceivedFlow {
  transport: TransportProto;
  address: string;
  port: number;
  /** Id of our socket the REGISTER arrived on (`udp:10.0.0.10:5060`). */
  socketId: string;
  /** TCP/TLS connection id; only meaningful while this process runs. */
  connectionId?: number;
}

/** One registered contact of an address-of-record. */
export interface Binding {
  /** Canonical AOR, `sip:user@domain` (scheme, user and host only; host lower-cased). */
  aor: string;
  /** Contact URI exactly as the UA sent it (without the name-addr brackets or header params). */
  contact: string;
  /** Absolute expiry time, Unix epoch ms. */
  expiresAt: number;
  /** q-value 0..1 (RFC 3261 §10.2.1.2); 1 when absent. */
  q: number;
  callId: string;
  cseq: number;
  /** RFC 5626 +sip.instance (without quotes/angle brackets), if sent. */
  instanceId?: string;
  /** RFC 5626 reg-id, if sent. */
  regId?: number;
  /** The flow the REGISTER arrived on. */
  received: ReceivedFlow;
  /** Whether the UA was detected as behind NAT, and the detection tests that fired. */
  nat: boolean;
  natTests?: string[];
  userAgent?: string;
  /** RFC 3327 Path header values, in order. */
  path?: string[];
  /** Unix epoch ms of the last update. */
  updatedAt: number;
}

/**
 * Location store. Implementations: `MemoryLocationStore`, `SqliteLocationStore`
 * (better-sqlite3, the default), later `RedisLocationStore`.
 * Errors (I/O) reject the promise; they are not swallowed.
 */
export interface LocationStore {
  /** Current bindings of an AOR, including expired ones not yet purged (callers filter by `expiresAt`). */
  getBindings(aor: string): Promise<Binding[]>;
  /** Replaces the whole binding set of an AOR atomically (empty array removes the AOR). */
  setBindings(aor: string, bindings: Binding[]): Promise<void>;
  /** Every binding of every AOR (for `show peers`, keepalives). */
  allBindings(): Promise<Binding[]>;
  /**
   * Every binding of every AOR in pages of about `pageSize` bindings (an AOR's set may make one larger), yielding to the event
   * loop between pages, so that a scan of 100k bindings (the keepalive reload) never stalls
   * other work for long. Not a snapshot: a binding written while the scan runs may be seen in
   * its old or new state, or (when its AOR's set is replaced) not at all. Optional: callers fall
   * back to {@link LocationStore.allBindings}.
   */
  scanBindings?(pageSize: number): AsyncIterable<Binding[]>;
  /**
   * A random secret of `bytes` octets (default 32) shared by every node using this store, created
   * by the first node that asks for `name` (the flow-token key, so any node can route a dialog).
   * Only stores shared between nodes (Redis) have it; file and memory stores keep their secrets
   * beside the data instead.
   */
  sharedSecret?(name: string, bytes?: number): Promise<Buffer>;
  /** Deletes bindings with `expiresAt <= nowMs`; resolves to the number removed. */
  purgeExpired(nowMs: number): Promise<number>;
  close(): Promise<void>;
}
