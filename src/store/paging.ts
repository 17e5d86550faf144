/**
 * Helpers for the stores' paged reads (`LocationStore.scanBindings`).
 * @module
 */

/**
 * Resolves on the next turn of the event loop (one `setImmediate`, after pending I/O callbacks),
 * so a long paged read never holds the loop for more than one page.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
