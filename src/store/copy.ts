/**
 * Copying bindings at store boundaries, so a caller mutating what it passed in or got back
 * never changes stored state.
 */
import type { Binding } from './types.js';

/** Copy of a binding: the object, its `received` flow and its arrays (strings are immutable). */
export function copyBinding(b: Binding): Binding {
  const c: Binding = { ...b, received: { ...b.received } };
  if (b.natTests !== undefined) c.natTests = b.natTests.slice();
  if (b.path !== undefined) c.path = b.path.slice();
  return c;
}

/** {@link copyBinding} over an array. */
export function copyBindings(list: readonly Binding[]): Binding[] {
  const out = new Array<Binding>(list.length);
  for (let i = 0; i < list.length; i++) out[i] = copyBinding(list[i]);
  return out;
}
