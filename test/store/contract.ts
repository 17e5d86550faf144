/**
 * One contract test suite for every {@link LocationStore} implementation. Each implementation's
 * test file calls {@link locationStoreContract} with a factory.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Binding, LocationStore } from '../../src/store/types.js';

const NOW = 1_700_000_000_000;

/** A complete binding with every optional field set; `over` overrides fields. */
export function fullBinding(over: Partial<Binding> = {}): Binding {
  return {
    aor: 'sip:1001@sip.example.org',
    contact: 'sip:1001@192.168.1.20:5062;transport=udp;ob',
    expiresAt: NOW + 600_000,
    q: 0.5,
    callId: 'a84b4c76e66710@pc33',
    cseq: 314159,
    instanceId: 'urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6',
    regId: 1,
    received: { transport: 'udp', address: '203.0.113.77', port: 40112, socketId: 'udp:10.0.0.10:5060', connectionId: 17 },
    nat: true,
    natTests: ['rfc1918-contact', 'via-received'],
    userAgent: 'Yealink SIP-T46S 66.86.0.15',
    path: ['<sip:edge1.example.org;lr;ob>', '<sip:edge2.example.org;lr>'],
    updatedAt: NOW,
    ...over,
  };
}

/** A binding with only the required fields. */
export function minimalBinding(over: Partial<Binding> = {}): Binding {
  return {
    aor: 'sip:1002@sip.example.org',
    contact: 'sip:1002@198.51.100.9',
    expiresAt: NOW + 3_600_000,
    q: 1,
    callId: 'cid-1002',
    cseq: 1,
    received: { transport: 'tcp', address: '198.51.100.9', port: 5060, socketId: 'tcp:10.0.0.10:5060' },
    nat: false,
    updatedAt: NOW,
    ...over,
  };
}

export interface ContractOptions {
  /** Opens a fresh, empty store. */
  open(): Promise<LocationStore>;
  /** Opens the store again on the same persistent backend (for persistence tests); absent = not persistent. */
  reopen?: () => Promise<LocationStore>;
}

/** Registers the contract tests under `describe(name)`. */
export function locationStoreContract(name: string, opts: ContractOptions): void {
  describe(`LocationStore contract: ${name}`, () => {
    let store: LocationStore;
    before(async () => {
      store = await opts.open();
    });
    after(async () => {
      await store.close();
    });

    it('returns [] for an unknown AOR', async () => {
      assert.deepEqual(await store.getBindings('sip:nobody@sip.example.org'), []);
    });

    it('round-trips a binding with every field, and one with only required fields', async () => {
      const full = fullBinding();
      const min = minimalBinding();
      await store.setBindings(full.aor, [full]);
      await store.setBindings(min.aor, [min]);
      assert.deepEqual(await store.getBindings(full.aor), [full]);
      assert.deepEqual(await store.getBindings(min.aor), [min]);
      const got = (await store.getBindings(min.aor))[0];
      assert.equal('instanceId' in got, false);
      assert.equal('connectionId' in got.received, false);
      await store.setBindings(full.aor, []);
      await store.setBindings(min.aor, []);
    });

    it('keeps the order of the binding set and replaces it as a whole', async () => {
      const aor = 'sip:order@sip.example.org';
      const set = [3, 1, 2].map((n) => minimalBinding({ aor, contact: `sip:order@192.0.2.${n}`, q: n / 10 }));
      await store.setBindings(aor, set);
      assert.deepEqual(
        (await store.getBindings(aor)).map((b) => b.contact),
        ['sip:order@192.0.2.3', 'sip:order@192.0.2.1', 'sip:order@192.0.2.2'],
      );
      await store.setBindings(aor, [set[1]]);
      assert.deepEqual(await store.getBindings(aor), [set[1]]);
      await store.setBindings(aor, []);
      assert.deepEqual(await store.getBindings(aor), []);
    });

    it('does not let callers mutate stored bindings', async () => {
      const b = fullBinding({ aor: 'sip:mut@sip.example.org' });
      await store.setBindings(b.aor, [b]);
      b.contact = 'sip:changed@192.0.2.1';
      b.path!.push('<sip:evil.example>');
      const got = await store.getBindings(b.aor);
      got[0].received.port = 1;
      const again = await store.getBindings(b.aor);
      assert.equal(again[0].contact, 'sip:1001@192.168.1.20:5062;transport=udp;ob');
      assert.equal(again[0].path!.length, 2);
      assert.equal(again[0].received.port, 40112);
      await store.setBindings(b.aor, []);
    });

    it('allBindings lists every binding of every AOR', async () => {
      const a = minimalBinding({ aor: 'sip:a@sip.example.org', contact: 'sip:a@192.0.2.1' });
      const b1 = minimalBinding({ aor: 'sip:b@sip.example.org', contact: 'sip:b@192.0.2.2' });
      const b2 = minimalBinding({ aor: 'sip:b@sip.example.org', contact: 'sip:b@192.0.2.3' });
      await store.setBindings(a.aor, [a]);
      await store.setBindings(b1.aor, [b1, b2]);
      const all = await store.allBindings();
      const contacts = all.map((x) => x.contact).sort();
      assert.deepEqual(contacts, ['sip:a@192.0.2.1', 'sip:b@192.0.2.2', 'sip:b@192.0.2.3']);
      for (const x of all) assert.ok(x.aor === a.aor || x.aor === b1.aor);
      await store.setBindings(a.aor, []);
      await store.setBindings(b1.aor, []);
      assert.deepEqual(await store.allBindings(), []);
    });

    it('scanBindings pages every binding, yielding to the event loop between pages', async () => {
      // Every store of ours implements it (the interface keeps it optional for third-party stores).
      assert.ok(store.scanBindings !== undefined, 'scanBindings is implemented');
      const written: Binding[] = [];
      for (let i = 0; i < 25; i++) {
        const aor = `sip:scan${String(i).padStart(2, '0')}@sip.example.org`;
        // AORs with one, two and three bindings.
        const set = Array.from({ length: (i % 3) + 1 }, (_, k) => minimalBinding({ aor, contact: `sip:scan${i}@192.0.2.${k + 1}` }));
        await store.setBindings(aor, set);
        written.push(...set);
      }
      // A pending write (not committed yet by stores that group commits) is seen too.
      const late = fullBinding({ aor: 'sip:scanlate@sip.example.org' });
      void store.setBindings(late.aor, [late]);
      written.push(late);
      let turns = 0;
      let ticking = true;
      const tick = (): void => {
        turns++;
        if (ticking) setImmediate(tick);
      };
      setImmediate(tick);
      const pages: Binding[][] = [];
      for await (const page of store.scanBindings(10)) pages.push(page);
      ticking = false;
      const got = pages.flat();
      const key = (b: Binding): string => b.aor + ' ' + b.contact;
      assert.deepEqual(got.map(key).sort(), written.map(key).sort());
      assert.deepEqual(
        got.find((b) => b.aor === late.aor),
        late,
      );
      assert.ok(pages.length >= 5, `${pages.length} pages for ${written.length} bindings`);
      for (const p of pages) assert.ok(p.length > 0 && p.length <= 10 + 2, `page of ${p.length}`);
      assert.ok(turns >= pages.length - 1, `event loop turned ${turns} times during ${pages.length} pages`);
      // Copies: changing a scanned binding changes nothing stored.
      got[0].contact = 'sip:changed@192.0.2.250';
      assert.notEqual((await store.getBindings(got[0].aor))[0]?.contact, 'sip:changed@192.0.2.250');
      for (const b of written) await store.setBindings(b.aor, []);
      const empty: Binding[][] = [];
      for await (const page of store.scanBindings(10)) empty.push(page);
      assert.deepEqual(empty.flat(), []);
    });

    it('purgeExpired removes bindings with expiresAt <= now and counts them', async () => {
      const aor1 = 'sip:p1@sip.example.org';
      const aor2 = 'sip:p2@sip.example.org';
      await store.setBindings(aor1, [
        minimalBinding({ aor: aor1, contact: 'sip:p1@192.0.2.1', expiresAt: NOW - 1 }),
        minimalBinding({ aor: aor1, contact: 'sip:p1@192.0.2.2', expiresAt: NOW }),
        minimalBinding({ aor: aor1, contact: 'sip:p1@192.0.2.3', expiresAt: NOW + 1 }),
      ]);
      await store.setBindings(aor2, [minimalBinding({ aor: aor2, contact: 'sip:p2@192.0.2.4', expiresAt: NOW - 5000 })]);
      // Expired bindings are still returned until purged (callers filter).
      assert.equal((await store.getBindings(aor1)).length, 3);
      assert.equal(await store.purgeExpired(NOW), 3);
      assert.deepEqual(
        (await store.getBindings(aor1)).map((b) => b.contact),
        ['sip:p1@192.0.2.3'],
      );
      assert.deepEqual(await store.getBindings(aor2), []);
      assert.equal(await store.purgeExpired(NOW), 0);
      await store.setBindings(aor1, []);
    });

    if (opts.reopen !== undefined) {
      const reopen = opts.reopen;
      it('bindings survive close and reopen', async () => {
        const full = fullBinding({ aor: 'sip:persist@sip.example.org' });
        const min = minimalBinding({ aor: 'sip:persist@sip.example.org', contact: 'sip:persist@192.0.2.9' });
        await store.setBindings(full.aor, [full, min]);
        await store.close();
        store = await reopen();
        assert.deepEqual(await store.getBindings(full.aor), [full, min]);
        assert.equal(await store.purgeExpired(full.expiresAt), 1);
        await store.close();
        store = await reopen();
        assert.deepEqual(await store.getBindings(full.aor), [min]);
        await store.setBindings(full.aor, []);
      });
    }
  });
}
