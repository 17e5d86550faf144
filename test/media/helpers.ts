/** Fake RTP endpoints and SDP builders for the media tests (real UDP sockets on 127.0.0.1). */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { afterEach } from 'node:test';
import { parse } from 'sdp-transform';
import { FakeClock } from '../../src/lib/clock.js';
import type { MediaResult } from '../../src/media/control.js';
import { NodeMediaSocketFactory } from '../../src/media/node/udp.js';
import { RelayEngine, type RelayOptions } from '../../src/media/relay.js';

export const HOST = '127.0.0.1';

/** The SDP of a successful {@link MediaResult}; fails the test with its code and detail otherwise. */
export function sdpOf(r: MediaResult): string {
  assert.ok(r.ok, r.ok ? '' : `${r.code}: ${r.detail}`);
  return r.sdp;
}

/** What a test file closes after each of its tests (see {@link closeAfterEach}). */
export interface Closer {
  /** Closes `x` after the current test (last tracked, first closed); returns `x`. */
  track<T extends { close(): Promise<void> }>(x: T): T;
  /** Runs `fn` after the current test, in the same last-in-first-out order as {@link track}. */
  defer(fn: () => Promise<void>): void;
  /** Opens `n` tracked {@link Peer}s. */
  peers(n: number): Promise<Peer[]>;
}

/**
 * Registers an `afterEach` hook in the calling test file that closes everything tracked during
 * the test, last first. Call once, at the top level of the file.
 */
export function closeAfterEach(): Closer {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });
  const track = <T extends { close(): Promise<void> }>(x: T): T => {
    cleanups.push(() => x.close());
    return x;
  };
  return {
    track,
    defer: (fn) => void cleanups.push(fn),
    peers: (n) => Promise.all(Array.from({ length: n }, () => Peer.open().then(track))),
  };
}

/** One UDP socket of a fake phone: records what it receives. */
export class Peer {
  readonly received: Buffer[] = [];
  readonly sources: string[] = [];
  private constructor(
    private readonly socket: dgram.Socket,
    readonly port: number,
  ) {
    socket.on('message', (msg, rinfo) => {
      this.received.push(msg);
      this.sources.push(`${rinfo.address}:${rinfo.port}`);
    });
  }

  static async open(port = 0): Promise<Peer> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(port, HOST, () => {
        s.off('error', reject);
        resolve();
      });
    });
    return new Peer(s, s.address().port);
  }

  get count(): number {
    return this.received.length;
  }

  send(data: Buffer | string, port: number): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(typeof data === 'string' ? Buffer.from(data) : data, port, HOST, (err) => (err ? reject(err) : resolve())));
  }

  /** Sends `n` 172-byte G.711-sized packets (RTP header + 160 bytes), `marker` in the first payload byte. */
  async sendRtp(n: number, port: number, marker = 0x41): Promise<void> {
    for (let i = 0; i < n; i++) {
      const pkt = Buffer.alloc(172);
      pkt[0] = 0x80;
      pkt.writeUInt16BE(i & 0xffff, 2);
      pkt[12] = marker;
      await this.send(pkt, port);
      if (i % 50 === 49) await sleep(1);
    }
  }

  /** Resolves once `n` datagrams have arrived (or after `ms`, returning the count). */
  async waitFor(n: number, ms = 2000): Promise<number> {
    const until = Date.now() + ms;
    while (this.received.length < n && Date.now() < until) await sleep(5);
    return this.received.length;
  }

  /** Waits a little and returns the count (for "nothing arrives" checks). */
  async settle(ms = 100): Promise<number> {
    await sleep(ms);
    return this.received.length;
  }

  clear(): void {
    this.received.length = 0;
    this.sources.length = 0;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One m-line for {@link makeSdp}. */
export interface MLine {
  kind?: string;
  port: number;
  /** media-level c= address */
  address?: string;
  /** a=rtcp:PORT */
  rtcp?: number;
  mux?: boolean;
  direction?: string;
  extra?: string[];
}

/** Builds an SDP offer/answer. */
export function makeSdp(opts: { address?: string; version?: number; sessionId?: number; user?: string; media: MLine[]; session?: string[] }): string {
  const address = opts.address ?? HOST;
  const lines = ['v=0', `o=${opts.user ?? 'user'} ${opts.sessionId ?? 1000} ${opts.version ?? 1} IN IP4 ${address}`, 's=-', `c=IN IP4 ${address}`, 't=0 0', ...(opts.session ?? [])];
  for (const m of opts.media) {
    const kind = m.kind ?? 'audio';
    lines.push(kind === 'video' ? `m=video ${m.port} RTP/AVP 96` : `m=${kind} ${m.port} RTP/AVP 0 8 101`);
    if (m.address) lines.push(`c=IN IP4 ${m.address}`);
    if (kind === 'video') lines.push('a=rtpmap:96 H264/90000');
    else lines.push('a=rtpmap:0 PCMU/8000', 'a=rtpmap:8 PCMA/8000', 'a=rtpmap:101 telephone-event/8000');
    if (m.rtcp !== undefined) lines.push(`a=rtcp:${m.rtcp}`);
    if (m.mux) lines.push('a=rtcp-mux');
    lines.push(...(m.extra ?? []));
    lines.push(`a=${m.direction ?? 'sendrecv'}`);
  }
  return lines.join('\r\n') + '\r\n';
}

/** m= ports of an SDP, in order. */
export function portsOf(sdp: string): number[] {
  return parse(sdp).media.map((m) => m.port);
}

/** A random port-range base below the Linux ephemeral range, so ranges rarely collide. */
export function randomRange(pairs: number): { low: number; high: number } {
  const low = 20000 + 2 * Math.floor(Math.random() * 6000);
  return { low, high: low + 2 * pairs - 1 };
}

/** A relay on 127.0.0.1 with a FakeClock. */
export function makeRelay(opts: Partial<Omit<RelayOptions, 'clock'>> = {}): { relay: RelayEngine; clock: FakeClock } {
  const clock = new FakeClock();
  const relay = new RelayEngine({ ports: randomRange(50), bindAddress: HOST, sockets: new NodeMediaSocketFactory(), ...opts, clock });
  return { relay, clock };
}
