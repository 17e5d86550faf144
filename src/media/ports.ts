/**
 * Relay port pool over `media.ports` (`{low, high}`, inclusive).
 *
 * Ports are handed out in pairs: RTP on an even port, RTCP on RTP + 1 (RFC 3550 §11: "RTP SHOULD
 * use an even destination port number and the corresponding RTCP stream SHOULD use the next
 * higher (odd) destination port number"). The pair is chosen **at random** among the free pairs
 * (not sequentially), which makes the next relay port hard to guess for an off-path attacker
 * (RTP Bleed / RTP injection, RFC 7362 §5) and spreads ports over the range.
 *
 * The pool does not own sockets: {@link PortPool.allocate} hands a candidate port to a bind
 * callback. A candidate that something else already holds (`EADDRINUSE`, `EACCES`) is skipped and
 * the next random candidate tried; when no candidate is left the result is `NO_PORTS` and
 * {@link PortPool.noPorts} is incremented.
 */

/** An inclusive UDP port range. */
export interface PortRange {
  low: number;
  high: number;
}

/** Result of {@link PortPool.allocate}. */
export type PortAllocation<T> = { ok: true; port: number; value: T } | { ok: false; code: 'NO_PORTS'; detail: string };

/**
 * The even RTP ports of a range whose RTCP port (RTP + 1) is also inside it.
 * `{low: 10000, high: 10999}` gives 10000, 10002, …, 10998 (500 pairs).
 */
export function rtpPortsOf(range: PortRange): number[] {
  const out: number[] = [];
  const low = Math.max(range.low + (range.low % 2), 2);
  const high = Math.min(range.high, 65535);
  for (let p = low; p + 1 <= high; p += 2) out.push(p);
  return out;
}

/** Whether a bind error means "this port is taken by someone else": skip it and try another. */
export function isPortConflict(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'EADDRINUSE' || code === 'EACCES';
}

/**
 * Picks the index of the next candidate among `n` free entries, uniformly at random.
 * @param random a function returning a float in [0, 1) (Math.random in production)
 */
export function pickIndex(n: number, random: () => number): number {
  const i = Math.floor(random() * n);
  return i >= n ? n - 1 : i < 0 ? 0 : i;
}

/** A pool of RTP/RTCP port pairs; O(1) take and release. */
export class PortPool {
  /** Free RTP ports (unordered; random picks are swap-removed). */
  private readonly free: number[];
  private readonly used = new Set<number>();
  private readonly total: number;
  /** Allocations refused because no pair could be bound (range exhausted). */
  noPorts = 0;
  /** Candidate ports skipped because something else had them bound. */
  bindFailures = 0;

  /**
   * @param range `media.ports`
   * @param random uniform random source in [0, 1), injectable for tests
   */
  constructor(
    readonly range: PortRange,
    private readonly random: () => number = Math.random,
  ) {
    this.free = rtpPortsOf(range);
    this.total = this.free.length;
  }

  /** Number of pairs in the range. */
  get capacity(): number {
    return this.total;
  }

  /** Number of pairs handed out and not released. */
  get inUse(): number {
    return this.used.size;
  }

  /** Whether `rtpPort` is currently allocated. */
  isAllocated(rtpPort: number): boolean {
    return this.used.has(rtpPort);
  }

  /**
   * Reserves a random free pair and binds it with `bind(rtpPort)` (which must bind both RTP
   * and RTP + 1, and undo a half-done bind before throwing). Ports whose bind fails with a
   * conflict ({@link isPortConflict}) are skipped for this allocation and stay in the pool for
   * later. Any other bind error is rethrown (e.g. `EADDRNOTAVAIL`: a wrong `media.address`).
   *
   * Safe to call concurrently: a candidate is reserved before the asynchronous bind.
   */
  async allocate<T>(bind: (rtpPort: number) => Promise<T>): Promise<PortAllocation<T>> {
    const skipped: number[] = [];
    try {
      for (;;) {
        if (this.free.length === 0) {
          this.noPorts++;
          const detail =
            skipped.length > 0
              ? `media port range ${this.range.low}-${this.range.high} exhausted (${this.used.size} pairs in use, ${skipped.length} held by other processes)`
              : `media port range ${this.range.low}-${this.range.high} exhausted (${this.used.size} pairs in use)`;
          return { ok: false, code: 'NO_PORTS', detail };
        }
        const i = pickIndex(this.free.length, this.random);
        const port = this.free[i];
        this.free[i] = this.free[this.free.length - 1];
        this.free.pop();
        this.used.add(port);
        try {
          const value = await bind(port);
          return { ok: true, port, value };
        } catch (err) {
          this.used.delete(port);
          if (!isPortConflict(err)) {
            this.free.push(port);
            throw err;
          }
          this.bindFailures++;
          skipped.push(port);
        }
      }
    } finally {
      for (const p of skipped) this.free.push(p);
    }
  }

  /** Returns a pair to the pool (idempotent). */
  release(rtpPort: number): void {
    if (this.used.delete(rtpPort)) this.free.push(rtpPort);
  }
}
