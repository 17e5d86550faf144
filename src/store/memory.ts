/**
 * In-process location store (RFC 3261 §10): a `Map` from AOR to its binding set. Nothing
 * survives a restart; use it for tests, benchmarks and `store: memory:`.
 */
import { copyBinding, copyBindings } from './copy.js';
import { pagesOfSets } from './paging.js';
import type { Binding, LocationStore } from './types.js';

/**
 * {@link LocationStore} kept in memory. Reads and writes copy bindings, so stored state is
 * only changed through {@link MemoryLocationStore.setBindings}.
 */
export class MemoryLocationStore implements LocationStore {
  private readonly aors = new Map<string, Binding[]>();
  private closed = false;

  /** Bindings of `aor` in stored order, including expired ones not yet purged. */
  async getBindings(aor: string): Promise<Binding[]> {
    this.assertOpen();
    const list = this.aors.get(aor);
    return list === undefined ? [] : copyBindings(list);
  }

  /** Replaces the binding set of `aor`; an empty array removes the AOR. */
  async setBindings(aor: string, bindings: Binding[]): Promise<void> {
    this.assertOpen();
    if (bindings.length === 0) {
      this.aors.delete(aor);
      return;
    }
    this.aors.set(aor, copyBindings(bindings));
  }

  /** Every binding of every AOR. */
  async allBindings(): Promise<Binding[]> {
    this.assertOpen();
    const out: Binding[] = [];
    for (const list of this.aors.values()) for (const b of list) out.push(copyBinding(b));
    return out;
  }

  /**
   * Every binding in pages of about `pageSize` (copies; whole AORs), yielding to the event loop (one
   * `setImmediate`) between pages. AORs added during the scan may or may not be seen.
   */
  async *scanBindings(pageSize: number): AsyncGenerator<Binding[]> {
    this.assertOpen();
    // A live Map iterator: entries deleted before they are reached are skipped.
    const sets = (function* (aors: Map<string, Binding[]>): Generator<Binding[]> {
      for (const list of aors.values()) yield copyBindings(list);
    })(this.aors);
    yield* pagesOfSets(sets, pageSize, () => this.closed);
  }


  /**
   * Deletes bindings with `expiresAt <= nowMs`.
   * @param nowMs Unix epoch ms (`clock.wallNow()`)
   * @returns number of bindings removed
   */
  async purgeExpired(nowMs: number): Promise<number> {
    this.assertOpen();
    let removed = 0;
    for (const [aor, list] of this.aors) {
      let keep = 0;
      for (const b of list) if (b.expiresAt > nowMs) keep++;
      if (keep === list.length) continue;
      removed += list.length - keep;
      if (keep === 0) this.aors.delete(aor);
      else
        this.aors.set(
          aor,
          list.filter((b) => b.expiresAt > nowMs),
        );
    }
    return removed;
  }

  /** Drops every binding; further calls reject. */
  async close(): Promise<void> {
    this.aors.clear();
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('location store is closed');
  }
}
