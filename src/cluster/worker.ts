/**
 * One SIP worker process of a cluster (`workers:` > 1, node:cluster): the private loopback
 * channel to the other workers and the IPC with the primary (`primary.ts`).
 *
 * - Every worker reads the shared SIP UDP socket(s). {@link ClusterWorker.dispatch} (the
 *   transport's `udpDispatch` hook) computes the owner of each SIP datagram from its Call-ID
 *   (`transport/dispatch.ts`) and forwards the datagrams it does not own, with their source
 *   address/port and receiving socket id, to the owner's loopback socket (127.0.0.1, port chosen
 *   by the kernel); the owner injects them into its transport as if read from the shared socket.
 *   Replies leave from the shared socket whichever worker sends them.
 * - The loopback socket accepts frames only from 127.0.0.1 and the other workers' known ports.
 * - Until the owner's port is known (start-up, owner restarting) a datagram is handled where it
 *   was read: better than dropping it; at worst a retransmission meets no transaction state.
 *
 * IPC messages (JSON over the cluster channel), all with `t` prefixed `sipedge:`:
 * worker → primary `ready {index, port}`, `reload-others {index}`;
 * primary → worker `peers {ports}`, `reload`, `stop`.
 */
import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import type { Logger } from '../lib/log.js';
import type { EdgeApi } from '../edge-api.js';
import {
  decodeFrame,
  encodeAorFrame,
  encodeDatagramHeader,
  ownedCallId,
  ownerOfAor,
  ownerOfDatagram,
  type UdpDispatch,
} from '../transport/dispatch.js';
import type { ClusterTarget, EdgeCluster } from './types.js';

/** Loopback address of the worker channel. */
const LOOPBACK = '127.0.0.1';
/** `SO_RCVBUF` requested for a worker's channel socket, octets. */
const CHANNEL_RECV_BUFFER = 4 * 1024 * 1024;

/** Messages a worker sends to the primary. */
export type WorkerToPrimary =
  | { t: 'sipedge:ready'; index: number; port: number }
  | { t: 'sipedge:reload-others'; index: number };

/** Messages the primary sends to a worker. */
export type PrimaryToWorker = { t: 'sipedge:peers'; ports: number[] } | { t: 'sipedge:reload' } | { t: 'sipedge:stop' };

/** The IPC end of a worker (the `process` object of a forked worker). */
export interface WorkerIpc {
  send?(message: WorkerToPrimary): boolean;
  on(event: 'message', fn: (message: unknown) => void): unknown;
  on(event: 'disconnect', fn: () => void): unknown;
  off(event: 'message', fn: (message: unknown) => void): unknown;
  off(event: 'disconnect', fn: () => void): unknown;
  disconnect?(): void;
  connected?: boolean;
}

/** Per-worker counters (logged when the worker stops). */
export interface WorkerCounters {
  /** SIP datagrams read from the shared socket and owned here (or local-only: STUN, CRLF, no Call-ID). */
  handled: number;
  /** Datagrams read here and forwarded to their owner. */
  forwarded: number;
  /** Datagrams another worker forwarded here and that were injected. */
  injected: number;
  /** Datagrams owned by a worker whose channel port is not known (yet): handled here. */
  unowned: number;
  /** Loopback frames refused (unknown sender, bad frame, edge not attached yet). */
  refused: number;
  /** Forwarding sends that failed. */
  sendErrors: number;
}

/**
 * The worker side of the cluster: implements {@link EdgeCluster} for the edge, and is the
 * {@link SignalSource}-like event source the CLI waits on (`SIGTERM` on the primary's `stop`
 * or when the primary goes away, `SIGHUP` on `reload`). Owns a UDP socket: {@link close}.
 */
export class ClusterWorker extends EventEmitter implements EdgeCluster {
  readonly counters: WorkerCounters = { handled: 0, forwarded: 0, injected: 0, unowned: 0, refused: 0, sendErrors: 0 };
  private peers: number[] = [];
  private readonly peerPorts = new Set<number>();
  private target: ClusterTarget | undefined;
  private injecting = false;
  private closed = false;
  private readonly onIpc = (m: unknown): void => this.onPrimaryMessage(m);
  private stopRequested = false;
  private readonly onDisconnect = (): void => {
    if (!this.closed) this.log.error({ worker: this.index }, 'cluster primary went away: stopping this worker');
    this.requestStop();
  };
  /** SIGTERM sent to the worker itself (e.g. systemd signals the whole control group). */
  private readonly onSigterm = (): void => this.requestStop();
  /** SIGINT (terminal Ctrl-C reaches the whole process group) and SIGHUP: the primary relays them. */
  private readonly ignoreSignal = (): void => {};

  private constructor(
    readonly index: number,
    readonly count: number,
    private readonly socket: dgram.Socket,
    readonly port: number,
    private readonly ipc: WorkerIpc,
    private readonly log: Logger,
  ) {
    super();
    socket.on('message', (msg, rinfo) => this.onFrame(msg, rinfo.address, rinfo.port));
    socket.on('error', (err) => {
      this.counters.sendErrors++;
      this.log.debug({ err: err.message }, 'cluster channel socket error');
    });
    ipc.on('message', this.onIpc);
    ipc.on('disconnect', this.onDisconnect);
    process.on('SIGTERM', this.onSigterm);
    process.on('SIGINT', this.ignoreSignal);
    process.on('SIGHUP', this.ignoreSignal);
  }

  /**
   * Binds this worker's loopback channel socket (127.0.0.1, kernel-chosen port, never shared
   * with the other workers).
   * @param index this worker, 0 … count−1
   * @param count number of workers (≥ 2)
   */
  static async start(opts: { index: number; count: number; logger: Logger; ipc?: WorkerIpc }): Promise<ClusterWorker> {
    // Peers are IP literals: answer the lookup at once (dgram would defer every send by a tick).
    const lookup = (host: string, _o: unknown, cb: (err: Error | null, address: string, family: number) => void): void => cb(null, host, 4);
    const socket = dgram.createSocket({ type: 'udp4', lookup: lookup as unknown as dgram.SocketOptions['lookup'] });
    const port = await new Promise<number>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ address: LOOPBACK, port: 0, exclusive: true }, () => {
        socket.off('error', reject);
        // Room for bursts while the owner is busy (the kernel caps this at net.core.rmem_max).
        try {
          socket.setRecvBufferSize(CHANNEL_RECV_BUFFER);
        } catch {
          // keep the kernel default
        }
        resolve(socket.address().port);
      });
    });
    return new ClusterWorker(opts.index, opts.count, socket, port, opts.ipc ?? (process as unknown as WorkerIpc), opts.logger);
  }

  /** @inheritdoc */
  readonly dispatch: UdpDispatch = (socketId, data, address, port) => {
    if (this.injecting) return false;
    const owner = ownerOfDatagram(data, this.count);
    if (owner < 0 || owner === this.index) {
      this.counters.handled++;
      return false;
    }
    const peer = this.peers[owner];
    if (peer === undefined || peer === 0) {
      this.counters.unowned++;
      return false;
    }
    try {
      this.socket.send([encodeDatagramHeader(socketId, address, port), data], peer, LOOPBACK);
      this.counters.forwarded++;
    } catch {
      this.counters.sendErrors++;
      return false;
    }
    return true;
  };

  /** @inheritdoc */
  ownsAor(aor: string): boolean {
    return ownerOfAor(aor, this.count) === this.index;
  }

  /** @inheritdoc */
  aorChanged(aor: string): void {
    const owner = ownerOfAor(aor, this.count);
    if (owner === this.index) {
      this.target?.trackAor(aor);
      return;
    }
    const peer = this.peers[owner];
    if (peer === undefined || peer === 0) return; // the owner reloads the store when it (re)starts
    try {
      this.socket.send(encodeAorFrame(aor), peer, LOOPBACK);
    } catch {
      this.counters.sendErrors++;
    }
  }

  /** @inheritdoc */
  callId(host?: string): string {
    return ownedCallId(this.index, this.count, host);
  }

  /** @inheritdoc */
  attach(target: ClusterTarget): void {
    this.target = target;
  }

  /** Tells the primary this worker's edge is up and where its channel listens. */
  ready(): void {
    this.ipc.send?.({ t: 'sipedge:ready', index: this.index, port: this.port });
  }

  /**
   * The API of worker 0 serves `sipedge reload` (POST /api/reload): after a successful reload
   * here, the primary has every other worker reload too.
   */
  wrapApi(edge: EdgeApi): EdgeApi {
    return {
      settings: () => ({ ...edge.settings(), workers: { count: this.count, view: `worker ${this.index}` } }),
      peers: () => edge.peers(),
      calls: () => edge.calls(),
      reload: async () => {
        const r = await edge.reload();
        if (r.ok) this.ipc.send?.({ t: 'sipedge:reload-others', index: this.index });
        return r;
      },
      close: () => edge.close(),
    };
  }

  /** Closes the channel socket and the IPC channel (so the process can exit). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ipc.off('message', this.onIpc);
    this.ipc.off('disconnect', this.onDisconnect);
    process.off('SIGTERM', this.onSigterm);
    process.off('SIGINT', this.ignoreSignal);
    process.off('SIGHUP', this.ignoreSignal);
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
    if (this.ipc.connected) this.ipc.disconnect?.();
  }

  private onPrimaryMessage(m: unknown): void {
    if (typeof m !== 'object' || m === null) return;
    const msg = m as PrimaryToWorker;
    switch (msg.t) {
      case 'sipedge:peers':
        this.peers = msg.ports.slice();
        this.peerPorts.clear();
        msg.ports.forEach((p, i) => {
          if (i !== this.index && p > 0) this.peerPorts.add(p);
        });
        break;
      case 'sipedge:reload':
        this.emit('SIGHUP');
        break;
      case 'sipedge:stop':
        this.requestStop();
        break;
      default:
        break;
    }
  }

  /** Emits SIGTERM once: the primary's `stop` and a direct SIGTERM often both arrive. */
  private requestStop(): void {
    if (this.stopRequested) return;
    this.stopRequested = true;
    this.emit('SIGTERM');
  }

  private onFrame(buf: Buffer, address: string, port: number): void {
    if (address !== LOOPBACK || !this.peerPorts.has(port) || this.target === undefined) {
      this.counters.refused++;
      return;
    }
    const f = decodeFrame(buf);
    if (f === undefined) {
      this.counters.refused++;
      return;
    }
    if (f.kind === 'aor') {
      this.target.trackAor(f.aor);
      return;
    }
    this.counters.injected++;
    this.injecting = true;
    try {
      this.target.inject(f.socketId, f.data, f.address, f.port);
    } finally {
      this.injecting = false;
    }
  }
}

/**
 * Starts the worker side of the cluster in a process forked by `primary.ts`: its index and the
 * number of workers come from the environment the primary set.
 * @throws Error when the process was not forked by the primary (no valid index in the environment)
 */
export async function startClusterWorker(logger: Logger): Promise<ClusterWorker> {
  const index = Number(process.env.SIPEDGE_WORKER_INDEX);
  const count = Number(process.env.SIPEDGE_WORKERS);
  if (!Number.isInteger(index) || !Number.isInteger(count) || count < 2 || index < 0 || index >= count) {
    throw new Error('not a sipedge cluster worker: SIPEDGE_WORKER_INDEX / SIPEDGE_WORKERS are missing or invalid');
  }
  return ClusterWorker.start({ index, count, logger });
}
