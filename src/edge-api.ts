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

/** Packets and bytes. */
export interface CallCounters {
  packets: number;
  bytes: number;
}

/** One relay socket of a stream, as one party sees it. */
export interface CallEndpointRow {
  /** Relay port facing this party. */
  relayPort: number;
  /** `address:port` the party's SDP announced. */
  signalled?: string;
  /** `address:port` learned from the party's packets (symmetric RTP). */
  latched?: string;
}

/** One m-line of one leg. */
export interface CallStreamRow {
  index: number;
  kind: string;
  direction: string;
  rtcpMux: boolean;
  rtp: CallEndpointRow;
  rtcp: CallEndpointRow;
}

/** One party of a relayed call. */
export interface CallLegRow {
  role: 'caller' | 'callee';
  tag?: string;
  /** Received by the relay from this party (one direction of the call). */
  received: CallCounters;
  /** Sent by the relay to this party (the other direction). */
  sent: CallCounters;
  streams: CallStreamRow[];
}

/** One row of `show calls` / GET /api/calls. */
export interface CallRow {
  callId: string;
  from: string;
  to: string;
  /** `trying`, `early` (ringing) or `confirmed`. */
  state: string;
  /** Seconds since the call was created. */
  age: number;
  /** `relay` (media through the edge) or `direct`. */
  media?: 'relay' | 'direct';
  /** Dialogs of the Call-ID (more than one after a forked INVITE got several 2xx). */
  dialogs?: number;
  /** Seconds since the last media packet of the call. */
  lastPacketAge?: number;
  /** Per party media addresses and counters (relayed calls). */
  legs?: CallLegRow[];
}

/** Handle of a running edge. */
export interface EdgeApi {
  /** Effective settings (the network section of `sip show settings`). JSON-serialisable. */
  settings(): Record<string, unknown>;
  peers(): Promise<PeerRow[]>;
  calls(): CallRow[] | Promise<CallRow[]>;
  /** Re-reads the config file and re-discovers the public address without dropping calls. */
  reload(): Promise<{ ok: boolean; errors?: string[] }>;
  /** Stops every socket and timer; resolves when closed. */
  close(): Promise<void>;
}
