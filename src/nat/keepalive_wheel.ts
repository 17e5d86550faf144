/**
 * Slot allocation for the keepalive wheel: the interval is cut into `size` slots of equal
 * length, each pinged binding lives in exactly one slot, and a tick sends the bindings of
 * the slot that is due. New bindings go to the least loaded slot, and among equally loaded
 * slots in bit-reversal order (0, S/2, S/4, 3S/4, …), so that any number of bindings is
 * spread evenly over the interval — never a burst of every binding at once — and a few
 * bindings are far apart rather than in adjacent slots.
 *
 * Every operation is O(1) (amortised): per load level a `Set` of slots holds the slots with
 * that many bindings, and `minLoad` points at the lowest non-empty level.
 */

/** Slots `0..size-1` in bit-reversal order (a low-discrepancy sequence over the interval). */
export function bitReversalOrder(size: number): number[] {
  let bits = 0;
  while (1 << bits < size) bits++;
  const out: number[] = [];
  const n = 1 << bits;
  for (let i = 0; i < n; i++) {
    let r = 0;
    for (let b = 0; b < bits; b++) if (i & (1 << b)) r |= 1 << (bits - 1 - b);
    if (r < size) out.push(r);
  }
  return out;
}

/** Least-loaded slot allocator with O(1) `acquire` and `release`. */
export class SlotAllocator {
  readonly size: number;
  private readonly load: Uint32Array;
  /** `levels[c]` = the slots holding exactly `c` bindings, in the order they reached that level. */
  private readonly levels: Array<Set<number>> = [];
  private minLoad = 0;

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`slot count must be a positive integer, got ${size}`);
    this.size = size;
    this.load = new Uint32Array(size);
    this.levels.push(new Set(bitReversalOrder(size)));
  }

  /** Takes one place in the least loaded slot; returns the slot index. */
  acquire(): number {
    let level = this.levels[this.minLoad];
    while (level.size === 0) level = this.levels[++this.minLoad];
    const slot = level.values().next().value as number;
    level.delete(slot);
    const c = ++this.load[slot];
    let up = this.levels[c];
    if (up === undefined) {
      up = new Set();
      this.levels[c] = up;
    }
    up.add(slot);
    return slot;
  }

  /** Gives back one place in `slot` (acquired earlier). */
  release(slot: number): void {
    const c = this.load[slot];
    if (c === 0) return;
    this.levels[c].delete(slot);
    this.load[slot] = c - 1;
    this.levels[c - 1].add(slot);
    if (c - 1 < this.minLoad) this.minLoad = c - 1;
  }

  /** Number of bindings in `slot`. */
  loadOf(slot: number): number {
    return this.load[slot];
  }
}
