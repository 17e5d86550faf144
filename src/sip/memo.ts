/**
 * Bounded memo tables for pure parse functions (Via, name-addr, URI). A SIP message's header
 * values are read by several layers (parser validation, transaction matching, response routing,
 * the proxy): each distinct value is parsed once and the result shared.
 *
 * Shared results are read-only by contract: callers of the `…Shared` parsers must never modify
 * what they get (copy first). Only successful parses are remembered (error values are mutated
 * by their callers and are cheap to rebuild on the rare failure path).
 */

/** Values longer than this are parsed every time (keeps the tables' memory bounded). */
export const MEMO_MAX_KEY = 512;

/**
 * A string-keyed table of at most `max` entries; when full it is emptied and refilled (the
 * values a message needs are re-read within microseconds of each other, so recency beyond
 * that does not matter). At most `max` × {@link MEMO_MAX_KEY} characters of keys.
 */
export class ParseMemo<T> {
  private readonly map = new Map<string, T>();

  /** @param max largest number of entries (≥ 1) */
  constructor(private readonly max: number) {}

  /** The remembered value for `key`, or undefined. */
  get(key: string): T | undefined {
    return this.map.get(key);
  }

  /** Remembers `value` for `key` (ignored for keys longer than {@link MEMO_MAX_KEY}). */
  set(key: string, value: T): void {
    if (key.length > MEMO_MAX_KEY) return;
    if (this.map.size >= this.max) this.map.clear();
    this.map.set(key, value);
  }

  /**
   * `parse(key)` through the table: the remembered value for `key`, else the parse's value, which
   * is remembered when the parse succeeds ({@link set}); undefined when it fails (not remembered;
   * call `parse` itself for the error).
   */
  parse(key: string, parse: (key: string) => { ok: true; value: T } | { ok: false }): T | undefined {
    const hit = this.map.get(key);
    if (hit !== undefined) return hit;
    const r = parse(key);
    if (!r.ok) return undefined;
    this.set(key, r.value);
    return r.value;
  }

  /** Number of entries (tests). */
  get size(): number {
    return this.map.size;
  }
}
