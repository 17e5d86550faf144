/** Keepalive ownership across workers (src/cluster/keepalive.ts): each AOR is pinged by one worker. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ownedBindingsView } from '../../src/cluster/keepalive.js';
import { MemoryLocationStore } from '../../src/store/memory.js';
import { ownerOfAor } from '../../src/transport/dispatch.js';
import { minimalBinding } from '../store/contract.js';

test('ownedBindingsView: allBindings() of the workers partition the store; other methods reach the store', async () => {
  const store = new MemoryLocationStore();
  const aors = Array.from({ length: 40 }, (_, i) => `sip:${1000 + i}@example.org`);
  for (const aor of aors) await store.setBindings(aor, [minimalBinding({ aor, contact: `sip:u@192.0.2.1:${5000 + aors.indexOf(aor)}` })]);
  const views = [0, 1].map((w) => ownedBindingsView(store, (aor) => ownerOfAor(aor, 2) === w));
  const seen = await Promise.all(views.map(async (v) => (await v.allBindings()).map((b) => b.aor)));
  assert.ok(seen[0].length > 0 && seen[1].length > 0, 'both workers own some AORs');
  assert.deepEqual([...seen[0], ...seen[1]].sort(), [...aors].sort(), 'every AOR is owned exactly once');
  for (const a of seen[1]) assert.equal(ownerOfAor(a, 2), 1);
  // Reads and writes are the store's own, whoever owns the AOR.
  assert.equal((await views[0].getBindings(seen[1][0])).length, 1);
  await views[0].setBindings(seen[1][0], []);
  assert.equal((await store.getBindings(seen[1][0])).length, 0);
  await views[0].close();
  assert.equal((await store.allBindings()).length, aors.length - 1, 'closing the view leaves the store open');
});
