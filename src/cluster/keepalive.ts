/**
 * Keepalive ownership across workers: each binding is pinged by exactly one worker, the owner
 * of its AOR (`ownerOfAor`, FNV-1a of the AOR mod the number of workers).
 */
import type { Binding, LocationStore } from '../store/types.js';

/**
 * A view of `store` for the keepalive scheduler of one worker: `allBindings()` returns only the
 * bindings whose AOR `owns` accepts; every other method is the store's own.
 */
export function ownedBindingsView(store: LocationStore, owns: (aor: string) => boolean): LocationStore {
  const allBindings = async (): Promise<Binding[]> => (await store.allBindings()).filter((b) => owns(b.aor));
  return {
    getBindings: (aor) => store.getBindings(aor),
    setBindings: (aor, bindings) => store.setBindings(aor, bindings),
    allBindings,
    purgeExpired: (nowMs) => store.purgeExpired(nowMs),
    // The edge owns and closes the store.
    close: async () => {},
  };
}
