/**
 * What the running edge exposes to its entry points (CLI signal handling, HTTP admin API).
 * Implemented by `Edge` in `edge.ts`.
 */

/** One row of `show peers` / GET /api/peers. */
export interface PeerRow {
  aor: string;
  contact: string;
  /** `address:port` the REGISTER really came from. */
  received: string;
  transport: string;
  socket: string;
  nat: boolean;
  natTests: string[];
  /** Seconds until the binding expires. */
  expires: number;
  q: number;
  reachable: 'yes' | 'no' | 'unknown';
  /** Last keepalive round-trip time, ms. */
  rttMs?: number;
  userAgent?: string;
}

/** One row of `show calls` / GET /api/calls. */
export interface CallRow {
  callId: string;
  from: string;
  to: string;
  state: string;
  /** Seconds since the call was created. */
  age: number;
  legs?: unknown[];
}

/** Handle of a running edge. */
export interface EdgeApi {
  /** Effective settings (the network section of `sip show settings`). JSON-serialisable. */
  settings(): Record<string, unknown>;
  peers(): Promise<PeerRow[]>;
  calls(): CallRow[];
  /** Re-reads the config file and re-discovers the public address without dropping calls. */
  reload(): Promise<{ ok: boolean; errors?: string[] }>;
  /** Stops every socket and timer; resolves when closed. */
  close(): Promise<void>;
}
