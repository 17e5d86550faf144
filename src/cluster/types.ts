/**
 * What the edge (src/edge.ts) needs from the cluster when it runs as one of several SIP worker
 * processes (`workers:` > 1). See `worker.ts` for the implementation and `primary.ts` for the
 * process that forks and supervises the workers.
 */
import type { UdpDispatch } from '../transport/dispatch.js';

/** What a worker's edge offers the cluster: where forwarded datagrams and AOR notices go. */
export interface ClusterTarget {
  /** Handles a datagram another worker forwarded, as if received on UDP listener `socketId` (TransportLayer.injectDatagram). */
  inject(socketId: string, data: Buffer, address: string, port: number): boolean;
  /** Re-reads the bindings of `aor` from the store and (re)schedules their keepalives. */
  trackAor(aor: string): void;
}

/** One worker's place in the cluster, as the edge sees it. */
export interface EdgeCluster {
  /** This worker, 0 … count−1. */
  readonly index: number;
  /** Number of workers. */
  readonly count: number;
  /** The transport hook: forwards a datagram to the worker owning its Call-ID (true = taken). */
  readonly dispatch: UdpDispatch;
  /** Whether this worker sends the keepalives of `aor`'s bindings. */
  ownsAor(aor: string): boolean;
  /** The binding set of `aor` changed here (REGISTER): tells the worker that owns its keepalives. */
  aorChanged(aor: string): void;
  /** A new Call-ID owned by this worker, for requests the edge originates (keepalive OPTIONS). */
  callId(host?: string): string;
  /** Connects the edge once it is built; forwarded datagrams arriving before are dropped (UAs retransmit). */
  attach(target: ClusterTarget): void;
}
