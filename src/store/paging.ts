/**
 * Helpers for the stores' paged reads (`LocationStore.scanBindings`).
 * @module
 */
import type { Binding } from './types.js';

/**
 * Resolves on the next turn of the event loop (one `setImmediate`, after pending I/O callbacks),
 * so a long paged read never holds the loop for more than one page.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Groups AOR binding sets into pages of at least `pageSize` bindings (an AOR's set is never
 * split, so a page may exceed `pageSize` by its last set; the last page may be smaller), yielding
 * to the event loop after each page and stopping once `closed()` says the store is closed.
 * @param sets the binding sets, AOR by AOR (sync or async: memory walks a Map, Redis reads SCAN batches)
 * @param pageSize bindings per page; values below 1 count as 1
 */
export async function* pagesOfSets(
  sets: Iterable<Binding[]> | AsyncIterable<Binding[]>,
  pageSize: number,
  closed: () => boolean,
): AsyncGenerator<Binding[]> {
  const size = Math.max(1, Math.floor(pageSize));
  let page: Binding[] = [];
  for await (const set of sets) {
    if (closed()) return;
    for (const b of set) page.push(b);
    if (page.length < size) continue;
    yield page;
    page = [];
    await yieldToEventLoop();
    if (closed()) return;
  }
  if (page.length > 0) yield page;
}
