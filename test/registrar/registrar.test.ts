import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FakeClock } from '../../src/lib/clock.js';
import type { SipRequest, SipResponse } from '../../src/sip/message.js';
import { parseMessage } from '../../src/sip/parse.js';
import { serializeMessage } from '../../src/sip/serialize.js';
import { DigestAuth } from '../../src/registrar/digest.js';
import { aorFromUri, Registrar, REGISTRAR_ERRORS, type RegistrarConfig } from '../../src/registrar/registrar.js';
import { MemoryLocationStore } from '../../src/store/memory.js';
import { SqliteLocationStore } from '../../src/store/sqlite.js';
import type { Binding, LocationStore } from '../../src/store/types.js';
import { authorization, challengeParams, header, headers, register, tcpFlow, udpFlow } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'sipedge-registrar-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const AOR = 'sip:1001@sip.example.org';
const CONFIG: RegistrarConfig = { domains: ['sip.example.org'], expires: { min: 60, max: 3600, default: 600 }, maxContacts: 5 };

let fileNo = 0;
const STORES: Array<[string, () => LocationStore]> = [
  ['memory', () => new MemoryLocationStore()],
  ['sqlite', () => new SqliteLocationStore(join(dir, `r${fileNo++}.db`))],
];

interface Setup {
  clock: FakeClock;
  store: LocationStore;
  reg: Registrar;
}

function make(newStore: () => LocationStore, config: Partial<RegistrarConfig> = {}, auth?: (clock: FakeClock) => DigestAuth): Setup {
  const clock = new FakeClock();
  const store = newStore();
  const reg = new Registrar({ store, clock, config: { ...CONFIG, ...config }, auth: auth?.(clock) });
  return { clock, store, reg };
}

/** `<uri>;expires=N…` values of the response's Contact headers. */
function contacts(res: SipResponse): string[] {
  return headers(res, 'contact');
}

for (const [kind, newStore] of STORES) {
  describe(`Registrar (${kind} store)`, () => {
    it('onBindings gets the AOR\'s unexpired bindings after every 2xx (a fetch too), nothing after a failure', async () => {
      const { reg, clock } = make(newStore);
      const calls: Array<[string, Binding[]]> = [];
      reg.onBindings = (aor, bindings) => calls.push([aor, bindings]);
      const sort = (list: Binding[]): string[] => list.map((b) => b.contact).sort();
      let res = await reg.handleRegister(register({ contacts: ['<sip:1001@192.168.1.20:5062>'], expires: 120 }), udpFlow(), { nat: true, tests: ['via-received'] });
      assert.equal(res.status, 200);
      res = await reg.handleRegister(register({ cseq: 2, contacts: ['<sip:1001@192.168.1.21:5062>'], expires: 3600 }), udpFlow());
      assert.equal(res.status, 200);
      assert.equal(calls.length, 2);
      assert.equal(calls[1][0], AOR);
      assert.deepEqual(calls[1][1], await reg.lookup(AOR).then((l) => l.sort((x, y) => x.contact.localeCompare(y.contact))));
      assert.equal(calls[0][1][0].nat, true);
      assert.deepEqual(calls[0][1][0].natTests, ['via-received']);
      // A fetch (no Contact) after the first binding expired: the current set, without it.
      clock.advance(121_000);
      res = await reg.handleRegister(register({ cseq: 3 }), udpFlow());
      assert.equal(res.status, 200);
      assert.equal(calls.length, 3);
      assert.deepEqual(sort(calls[2][1]), ['sip:1001@192.168.1.21:5062']);
      // Failures (CSeq not higher for the same Call-ID) call nothing.
      res = await reg.handleRegister(register({ cseq: 2, contacts: ['<sip:1001@192.168.1.21:5062>'] }), udpFlow());
      assert.equal(res.status, 500);
      assert.equal(calls.length, 3);
      // A throwing hook changes nothing on the wire.
      reg.onBindings = () => {
        throw new Error('hook failed');
      };
      res = await reg.handleRegister(register({ cseq: 4, contacts: ['<sip:1001@192.168.1.22:5062>'] }), udpFlow());
      assert.equal(res.status, 200);
      assert.equal(contacts(res).length, 2);
    });

    it('adds a binding: 200 lists it with the default expiry, Date, To tag; lookup has the flow', async () => {
      const { reg, clock, store } = make(newStore);
      const res = await reg.handleRegister(register({ contacts: ['<sip:1001@192.168.1.20:5062;transport=udp>'] }), udpFlow(), { nat: true, tests: ['rfc1918-contact'] });
      assert.equal(res.status, 200);
      assert.deepEqual(contacts(res), ['<sip:1001@192.168.1.20:5062;transport=udp>;expires=600']);
      assert.equal(header(res, 'date'), new Date(clock.wallNow()).toUTCString());
      assert.match(header(res, 'to') ?? '', /;tag=[0-9a-f]+$/);
      assert.equal(header(res, 'call-id'), '1j9FpLxk3uxtm8tn@192.168.1.20');
      const [b] = await reg.lookup(AOR);
      assert.equal(b.aor, AOR);
      assert.equal(b.contact, 'sip:1001@192.168.1.20:5062;transport=udp');
      assert.equal(b.expiresAt, clock.wallNow() + 600_000);
      assert.equal(b.q, 1);
      assert.deepEqual(b.received, { transport: 'udp', address: '203.0.113.77', port: 40112, socketId: 'udp:10.0.0.10:5060' });
      assert.equal(b.nat, true);
      assert.deepEqual(b.natTests, ['rfc1918-contact']);
      assert.equal(b.userAgent, 'TestPhone/1.0');
      assert.equal(b.callId, '1j9FpLxk3uxtm8tn@192.168.1.20');
      assert.equal(b.cseq, 1);
      assert.equal(reg.counts.ok, 1);
      await store.close();
    });

    it('stores the TCP connection id, keeps the Contact text as sent (display name, addr-spec)', async () => {
      const { reg, store } = make(newStore);
      await reg.handleRegister(
        register({ contacts: ['"Desk Phone" <sip:1001@[2001:DB8::20]:5062;transport=tcp>;expires=120', 'sip:1001@Phone.Example.COM;q=0.5'] }),
        tcpFlow(42),
      );
      const bs = await reg.lookup(AOR);
      assert.deepEqual(
        bs.map((b) => b.contact),
        ['sip:1001@[2001:DB8::20]:5062;transport=tcp', 'sip:1001@Phone.Example.COM'],
      );
      assert.equal(bs[0].received.connectionId, 42);
      assert.equal(bs[0].nat, false);
      assert.equal(bs[0].natTests, undefined);
      await store.close();
    });

    it('expiry: Expires header, contact param wins, clamp to max, 423 with Min-Expires, malformed = 3600', async () => {
      const { reg, store } = make(newStore);
      let res = await reg.handleRegister(register({ contacts: ['<sip:1001@192.0.2.1>', '<sip:1001@192.0.2.2>;expires=120', '<sip:1001@192.0.2.3>;expires=7200'], expires: 300 }), udpFlow());
      assert.equal(res.status, 200);
      assert.deepEqual(contacts(res).sort(), ['<sip:1001@192.0.2.1>;expires=300', '<sip:1001@192.0.2.2>;expires=120', '<sip:1001@192.0.2.3>;expires=3600']);
      res = await reg.handleRegister(register({ cseq: 2, contacts: ['<sip:1001@192.0.2.4>'], expires: 30 }), udpFlow());
      assert.equal(res.status, 423);
      assert.equal(res.reason, 'Interval Too Brief');
      assert.equal(header(res, 'min-expires'), '60');
      res = await reg.handleRegister(register({ cseq: 3, contacts: ['<sip:1001@192.0.2.4>;expires=59'] }), udpFlow());
      assert.equal(res.status, 423);
      assert.equal((await reg.lookup(AOR)).length, 3, '423 changes nothing');
      res = await reg.handleRegister(register({ cseq: 4, contacts: ['<sip:1001@192.0.2.5>;expires=soon'], expires: 'Thu, 01 Dec 1994 16:00:00 GMT' }), udpFlow());
      assert.equal(res.status, 200);
      assert.ok(contacts(res).includes('<sip:1001@192.0.2.5>;expires=3600'));
      await store.close();
    });

    it('refreshes a binding (same Call-ID, higher CSeq) and reports the remaining time of others', async () => {
      const { reg, clock, store } = make(newStore);
      await reg.handleRegister(register({ contacts: ['<sip:1001@192.0.2.1>'], expires: 600 }), udpFlow());
      await reg.handleRegister(register({ callId: 'other-ua', contacts: ['<sip:1001@192.0.2.9>'], expires: 600 }), udpFlow(5000));
      clock.advance(100_000);
      const res = await reg.handleRegister(register({ cseq: 2, contacts: ['<SIP:1001@192.0.2.1>'], expires: 600 }), udpFlow(40113));
      assert.equal(res.status, 200);
      assert.deepEqual(contacts(res), ['<SIP:1001@192.0.2.1>;expires=600', '<sip:1001@192.0.2.9>;expires=500']);
      const bs = await reg.lookup(AOR);
      assert.equal(bs.length, 2);
      assert.equal(bs[0].contact, 'SIP:1001@192.0.2.1');
      assert.equal(bs[0].received.port, 40113, 'refresh records the new flow');
      assert.equal(bs[0].cseq, 2);
      assert.equal(bs[0].expiresAt, clock.wallNow() + 600_000);
      await store.close();
    });

    it('removes a binding with expires=0 and with Expires: 0', async () => {
      const { reg, store } = make(newStore);
      await reg.handleRegister(register({ contacts: ['<sip:1001@192.0.2.1>', '<sip:1001@192.0.2.2>'] }), udpFlow());
      let res = await reg.handleRegister(register({ cseq: 2, contacts: ['<sip:1001@192.0.2.1>;expires=0'] }), udpFlow());
      assert.equal(res.status, 200);
      assert.deepEqual(contacts(res), ['<sip:1001@192.0.2.2>;expires=600']);
      res = await reg.handleRegister(register({ cseq: 3, contacts: ['<sip:1001@192.0.2.2>'], expires: 0 }), udpFlow());
      assert.equal(res.status, 200);
      assert.deepEqual(contacts(res), []);
      assert.deepEqual(await reg.lookup(AOR), []);
      assert.deepEqual(await store.getBindings(AOR), []);
      // Removing an unknown contact is fine.
      res = await reg.handleRegister(register({ cseq: 4, contacts: ['<sip:1001@192.0.2.3>;expires=0'] }), udpFlow());
      assert.equal(res.status, 200);
      await store.close();
    });

    it('wildcard: removes all with Expires: 0; 400 otherwise; CSeq ordering applies', async () => {
      const { reg, store } = make(newStore);
      await reg.handleRegister(register({ contacts: ['<sip:1001@192.0.2.1>, <sip:1001@192.0.2.2>'] }), udpFlow());
      await reg.handleRegister(register({ callId: 'ua2', contacts: ['<sip:1001@192.0.2.3>'] }), udpFlow());
      for (const bad of [
        register({ cseq: 5, contacts: ['*'] }),
        register({ cseq: 5, contacts: ['*'], expires: 60 }),
        register({ cseq: 5, contacts: ['*', '<sip:1001@192.0.2.1>'], expires: 0 }),
        register({ cseq: 5, contacts: ['*, *'], expires: 0 }),
      ]) {
        const res = await reg.handleRegister(bad, udpFlow());
        assert.equal(res.status, 400);
        assert.equal(res.reason, REGISTRAR_ERRORS['bad-wildcard'].reason);
      }
      // Same Call-ID as a binding with CSeq 1: CSeq 1 again is out of order → nothing removed.
      let res = await reg.handleRegister(register({ cseq: 1, contacts: ['*'], expires: 0 }), udpFlow());
      assert.equal(res.status, 500);
      assert.equal((await reg.lookup(AOR)).length, 3);
      res = await reg.handleRegister(register({ cseq: 2, contacts: ['*'], expires: 0 }), udpFlow());
      assert.equal(res.status, 200);
      assert.deepEqual(contacts(res), []);
      assert.deepEqual(await reg.lookup(AOR), []);
      await store.close();
    });

    it('several contacts and q ordering (lookup and 200 OK: q desc, then most recent first)', async () => {
      const { reg, clock, store } = make(newStore);
      await reg.handleRegister(register({ callId: 'a', contacts: ['<sip:1001@192.0.2.1>;q=0.5'] }), udpFlow());
      clock.advance(1000);
      await reg.handleRegister(register({ callId: 'b', contacts: ['<sip:1001@192.0.2.2>;q=0.5'] }), udpFlow());
      clock.advance(1000);
      const res = await reg.handleRegister(register({ callId: 'c', contacts: ['<sip:1001@192.0.2.3>;q=0.1, <sip:1001@192.0.2.4>;q=1.0', '<sip:1001@192.0.2.5>'] }), udpFlow());
      assert.equal(res.status, 200);
      // .4 (q=1.0) and .5 (no q) tie on q and time: stored order.
      const expected = ['192.0.2.4', '192.0.2.5', '192.0.2.2', '192.0.2.1', '192.0.2.3'];
      assert.deepEqual(
        (await reg.lookup(AOR)).map((b) => b.contact.slice(9)),
        expected,
      );
      assert.deepEqual(contacts(res), [
        '<sip:1001@192.0.2.4>;expires=600',
        '<sip:1001@192.0.2.5>;expires=600',
        '<sip:1001@192.0.2.2>;expires=599;q=0.5',
        '<sip:1001@192.0.2.1>;expires=598;q=0.5',
        '<sip:1001@192.0.2.3>;expires=600;q=0.1',
      ].sort((x, y) => expected.indexOf(x.slice(10, 19)) - expected.indexOf(y.slice(10, 19))));
      for (const q of ['1.5', '0.1234', 'high', '']) {
        const bad = await reg.handleRegister(register({ callId: 'd', contacts: [`<sip:1001@192.0.2.9>;q=${q}`] }), udpFlow());
        assert.equal(bad.status, 400, q);
      }
      await store.close();
    });

    it('Call-ID/CSeq ordering: same Call-ID needs a higher CSeq, else 500 and nothing changes', async () => {
      const { reg, store } = make(newStore);
      await reg.handleRegister(register({ cseq: 10, contacts: ['<sip:1001@192.0.2.1>'], expires: 600 }), udpFlow());
      for (const cseq of [10, 9]) {
        const res = await reg.handleRegister(register({ cseq, contacts: ['<sip:1001@192.0.2.1>;expires=0', '<sip:1001@192.0.2.7>'] }), udpFlow());
        assert.equal(res.status, 500, `CSeq ${cseq}`);
        assert.equal(res.reason, REGISTRAR_ERRORS['cseq-out-of-order'].reason);
      }
      assert.deepEqual(
        (await reg.lookup(AOR)).map((b) => b.contact),
        ['sip:1001@192.0.2.1'],
        'aborted: no tentative change committed',
      );
      // A different Call-ID (e.g. the phone rebooted) may use any CSeq.
      const res = await reg.handleRegister(register({ callId: 'rebooted', cseq: 1, contacts: ['<sip:1001@192.0.2.1>'], expires: 900 }), udpFlow());
      assert.equal(res.status, 200);
      const [b] = await reg.lookup(AOR);
      assert.equal(b.callId, 'rebooted');
      assert.equal(b.cseq, 1);
      await store.close();
    });

    it('a REGISTER without Contact is a query', async () => {
      const { reg, store } = make(newStore);
      await reg.handleRegister(register({ contacts: ['<sip:1001@192.0.2.1>;q=0.7'] }), udpFlow());
      const res = await reg.handleRegister(register({ cseq: 1, callId: 'query' }), udpFlow());
      assert.equal(res.status, 200);
      assert.deepEqual(contacts(res), ['<sip:1001@192.0.2.1>;expires=600;q=0.7']);
      const empty = await reg.handleRegister(register({ user: '1002' }), udpFlow());
      assert.equal(empty.status, 200);
      assert.deepEqual(contacts(empty), []);
      await store.close();
    });

    it('maxContacts: reject (403) new contacts beyond the limit, refreshes still pass', async () => {
      const { reg, store } = make(newStore, { maxContacts: 2 });
      await reg.handleRegister(register({ callId: 'a', contacts: ['<sip:1001@192.0.2.1>', '<sip:1001@192.0.2.2>'] }), udpFlow());
      let res = await reg.handleRegister(register({ callId: 'b', contacts: ['<sip:1001@192.0.2.3>'] }), udpFlow());
      assert.equal(res.status, 403);
      assert.equal(res.reason, 'Forbidden - Too Many Contacts');
      assert.equal((await reg.lookup(AOR)).length, 2);
      res = await reg.handleRegister(register({ callId: 'a', cseq: 2, contacts: ['<sip:1001@192.0.2.2>'] }), udpFlow());
      assert.equal(res.status, 200);
      // Replace one by another in one request: the count does not grow.
      res = await reg.handleRegister(register({ callId: 'a', cseq: 3, contacts: ['<sip:1001@192.0.2.1>;expires=0', '<sip:1001@192.0.2.3>'] }), udpFlow());
      assert.equal(res.status, 200);
      assert.equal((await reg.lookup(AOR)).length, 2);
      await store.close();
    });

    it('maxContacts with overflow drop-oldest removes the least recently updated binding', async () => {
      const { reg, clock, store } = make(newStore, { maxContacts: 2, overflow: 'drop-oldest' });
      await reg.handleRegister(register({ callId: 'a', contacts: ['<sip:1001@192.0.2.1>'] }), udpFlow());
      clock.advance(1000);
      await reg.handleRegister(register({ callId: 'b', contacts: ['<sip:1001@192.0.2.2>'] }), udpFlow());
      clock.advance(1000);
      const res = await reg.handleRegister(register({ callId: 'c', contacts: ['<sip:1001@192.0.2.3>'] }), udpFlow());
      assert.equal(res.status, 200);
      assert.deepEqual(
        (await reg.lookup(AOR)).map((b) => b.contact).sort(),
        ['sip:1001@192.0.2.2', 'sip:1001@192.0.2.3'],
      );
      const tooMany = await reg.handleRegister(register({ callId: 'd', contacts: ['<sip:1001@192.0.2.4>', '<sip:1001@192.0.2.5>', '<sip:1001@192.0.2.6>'] }), udpFlow());
      assert.equal(tooMany.status, 403);
      await store.close();
    });

    it('RFC 5626: same +sip.instance and reg-id replaces the flow whatever the Contact URI', async () => {
      const { reg, store } = make(newStore);
      const inst = '+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"';
      let res = await reg.handleRegister(
        register({ contacts: [`<sip:1001@192.168.1.20:5062;transport=tcp;ob>;${inst};reg-id=1`], extra: ['Supported: path, outbound'] }),
        tcpFlow(1),
      );
      assert.equal(res.status, 200);
      assert.equal(header(res, 'require'), 'outbound');
      assert.equal(header(res, 'supported'), 'outbound');
      assert.deepEqual(headers(res, 'supported'), ['outbound', 'path']);
      assert.deepEqual(contacts(res), [`<sip:1001@192.168.1.20:5062;transport=tcp;ob>;expires=600;${inst};reg-id=1`]);
      // A second flow (reg-id 2) with the same URI coexists.
      res = await reg.handleRegister(
        register({ cseq: 2, contacts: [`<sip:1001@192.168.1.20:5062;transport=tcp;ob>;${inst};reg-id=2`], extra: ['Supported: outbound'] }),
        tcpFlow(2),
      );
      assert.equal(res.status, 200);
      assert.equal((await reg.lookup(AOR)).length, 2);
      // New Call-ID (reboot), new address, same instance + reg-id 1: replaces flow 1.
      res = await reg.handleRegister(
        register({ callId: 'after-reboot', contacts: [`<sip:1001@192.168.1.33:6000;transport=tcp;ob>;${inst};reg-id=1`], extra: ['Supported: outbound'] }),
        tcpFlow(3),
      );
      assert.equal(res.status, 200);
      const bs = await reg.lookup(AOR);
      assert.equal(bs.length, 2);
      const flow1 = bs.find((b) => b.regId === 1) as Binding;
      assert.equal(flow1.contact, 'sip:1001@192.168.1.33:6000;transport=tcp;ob');
      assert.equal(flow1.instanceId, 'urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF');
      assert.equal(flow1.received.connectionId, 3);
      assert.equal((bs.find((b) => b.regId === 2) as Binding).received.connectionId, 2);
      // Without Supported: outbound the pair still identifies the binding, but no Require.
      res = await reg.handleRegister(register({ callId: 'after-reboot', cseq: 2, contacts: [`<sip:1001@192.0.2.50>;${inst};reg-id=1`] }), tcpFlow(4));
      assert.equal(res.status, 200);
      assert.equal(header(res, 'require'), undefined);
      assert.equal(header(res, 'supported'), undefined);
      assert.equal((await reg.lookup(AOR)).length, 2);
      // Two reg-id contacts in one outbound REGISTER → 400.
      res = await reg.handleRegister(
        register({ callId: 'x', contacts: [`<sip:1001@192.0.2.60>;${inst};reg-id=3`, `<sip:1001@192.0.2.61>;${inst};reg-id=4`], extra: ['Supported: outbound'] }),
        tcpFlow(5),
      );
      assert.equal(res.status, 400);
      res = await reg.handleRegister(register({ callId: 'x', contacts: [`<sip:1001@192.0.2.60>;${inst};reg-id=0`] }), tcpFlow(5));
      assert.equal(res.status, 400);
      await store.close();
    });

    it('stores and echoes Path (RFC 3327); 439 when outbound is used and the first hop lacks ob', async () => {
      const { reg, store } = make(newStore);
      let res = await reg.handleRegister(
        register({ contacts: ['<sip:1001@192.0.2.1>'], extra: ['Path: <sip:edge2.example.org;lr>, <sip:edge1.example.org;lr;ob>', 'Supported: path'] }),
        udpFlow(),
      );
      assert.equal(res.status, 200);
      assert.deepEqual(headers(res, 'path'), ['<sip:edge2.example.org;lr>', '<sip:edge1.example.org;lr;ob>']);
      assert.equal(header(res, 'supported'), 'path');
      assert.deepEqual((await reg.lookup(AOR))[0].path, ['<sip:edge2.example.org;lr>', '<sip:edge1.example.org;lr;ob>']);
      res = await reg.handleRegister(
        register({
          cseq: 2,
          contacts: ['<sip:1001@192.0.2.2>;+sip.instance="<urn:uuid:1>";reg-id=1'],
          extra: ['Path: <sip:edge1.example.org;lr>', 'Supported: outbound, path'],
        }),
        udpFlow(),
      );
      assert.equal(res.status, 439);
      await store.close();
    });

    it('Require with an unknown option tag → 420 with Unsupported', async () => {
      const { reg, store } = make(newStore);
      const res = await reg.handleRegister(register({ contacts: ['<sip:1001@192.0.2.1>'], extra: ['Require: path, gruu, 100rel'] }), udpFlow());
      assert.equal(res.status, 420);
      assert.deepEqual(headers(res, 'unsupported'), ['gruu', '100rel']);
      await store.close();
    });

    it('domains: 404 for other domains, IP Request-URI accepted, empty list accepts any', async () => {
      const { reg, store } = make(newStore);
      let res = await reg.handleRegister(register({ domain: 'evil.example.net', contacts: ['<sip:1001@192.0.2.1>'] }), udpFlow());
      assert.equal(res.status, 404);
      res = await reg.handleRegister(register({ ruri: 'sip:other.example.net', contacts: ['<sip:1001@192.0.2.1>'] }), udpFlow());
      assert.equal(res.status, 404);
      res = await reg.handleRegister(register({ ruri: 'sip:203.0.113.10:5060', contacts: ['<sip:1001@192.0.2.1>'] }), udpFlow());
      assert.equal(res.status, 200);
      res = await reg.handleRegister(register({ domain: 'SIP.Example.ORG', ruri: 'sips:sip.example.org', cseq: 2, contacts: ['<sip:1001@192.0.2.1>'] }), udpFlow());
      assert.equal(res.status, 200, 'domain compare is case-insensitive');
      assert.equal((await reg.lookup(AOR)).length, 1, 'SIP.Example.ORG is the same AOR');
      await store.close();
      const any = make(newStore, { domains: [] });
      res = await any.reg.handleRegister(register({ domain: 'anything.example', contacts: ['<sip:1001@192.0.2.1>'] }), udpFlow());
      assert.equal(res.status, 200);
      assert.equal((await any.reg.lookup('sip:1001@anything.example')).length, 1);
      await any.store.close();
    });

    it('400 for malformed To, Contact, Call-ID, CSeq, Request-URI', async () => {
      const { reg, store } = make(newStore);
      const base = register({ contacts: ['<sip:1001@192.0.2.1>'] });
      const mutate = (key: string, value: string | null) => ({
        ...base,
        headers: base.headers.flatMap((h) => (h.key !== key ? [h] : value === null ? [] : [{ ...h, value }])),
      });
      for (const [key, value] of [
        ['to', '<tel:+15551234567>'],
        ['to', '<sip:1001@sip.example.org'],
        ['to', '*'],
        ['contact', '<sip:1001@192.0.2.1'],
        ['contact', '<mailto:a@b.c>'],
        ['call-id', null],
        ['cseq', 'abc REGISTER'],
        ['cseq', null],
      ] as const) {
        const res = await reg.handleRegister(mutate(key, value), udpFlow());
        assert.equal(res.status, 400, `${key}: ${value}`);
      }
      const res = await reg.handleRegister({ ...base, uri: 'http://sip.example.org' }, udpFlow());
      assert.equal(res.status, 400);
      assert.deepEqual(await reg.lookup(AOR), []);
      await store.close();
    });

    it('maxExpiresNat shortens the interval for NATed UAs only', async () => {
      const { reg, store } = make(newStore, { maxExpiresNat: 120 });
      let res = await reg.handleRegister(register({ contacts: ['<sip:1001@192.168.1.20>'], expires: 3600 }), udpFlow(), { nat: true, tests: ['via-received'] });
      assert.deepEqual(contacts(res), ['<sip:1001@192.168.1.20>;expires=120']);
      res = await reg.handleRegister(register({ user: '1002', contacts: ['<sip:1002@198.51.100.9>'], expires: 3600 }), udpFlow(), { nat: false, tests: [] });
      assert.deepEqual(contacts(res), ['<sip:1002@198.51.100.9>;expires=3600']);
      await store.close();
    });

    it('expired bindings are ignored on read, dropped on write and purged', async () => {
      const { reg, clock, store } = make(newStore);
      await reg.handleRegister(register({ contacts: ['<sip:1001@192.0.2.1>'], expires: 60 }), udpFlow());
      await reg.handleRegister(register({ callId: 'b', contacts: ['<sip:1001@192.0.2.2>'], expires: 600 }), udpFlow());
      await reg.handleRegister(register({ user: '1002', contacts: ['<sip:1002@192.0.2.3>'], expires: 60 }), udpFlow());
      clock.advance(60_000);
      assert.deepEqual(
        (await reg.lookup(AOR)).map((b) => b.contact),
        ['sip:1001@192.0.2.2'],
      );
      assert.deepEqual(await reg.lookup('sip:1002@sip.example.org'), []);
      // An expired binding with the same Call-ID no longer blocks a lower CSeq.
      const res = await reg.handleRegister(register({ cseq: 1, contacts: ['<sip:1001@192.0.2.1>'], expires: 60 }), udpFlow());
      assert.equal(res.status, 200);
      assert.equal(await reg.purgeExpired(), 1, 'only 1002 was still stored expired');
      assert.equal(await reg.purgeExpired(), 0);
      await store.close();
    });

    it('serialises concurrent REGISTERs for one AOR (no lost update)', async () => {
      const { reg, store } = make(newStore, { maxContacts: 0 });
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => reg.handleRegister(register({ callId: `c${i}`, contacts: [`<sip:1001@192.0.2.${i + 1}>`] }), udpFlow())),
      );
      for (const r of results) assert.equal(r.status, 200);
      assert.equal((await reg.lookup(AOR)).length, 20);
      await store.close();
    });

    it('a store failure is a 500 and the registrar keeps working', async () => {
      const { reg, store } = make(newStore);
      const orig = store.setBindings.bind(store);
      store.setBindings = async () => {
        throw new Error('disk full');
      };
      let res = await reg.handleRegister(register({ contacts: ['<sip:1001@192.0.2.1>'] }), udpFlow());
      assert.equal(res.status, 500);
      assert.equal(res.reason, 'Server Internal Error');
      store.setBindings = orig;
      res = await reg.handleRegister(register({ cseq: 2, contacts: ['<sip:1001@192.0.2.1>'] }), udpFlow());
      assert.equal(res.status, 200);
      await store.close();
    });
  });

  describe(`Registrar authentication (${kind} store)`, () => {
    const users = [
      { username: '1001', password: 'change-me' },
      { username: '1002', password: 'other' },
    ];
    const withAuth = (opts: { nonceTtlMs?: number } = {}) =>
      make(newStore, {}, (clock) => new DigestAuth({ realm: 'sip.example.org', users, clock, nonceTtlMs: opts.nonceTtlMs }));

    function answerFor(res: SipResponse, o: { username?: string; password?: string; nc?: string; alg?: number } = {}): string {
      const c = challengeParams(headers(res, 'www-authenticate')[o.alg ?? 0]);
      return authorization({
        username: o.username ?? '1001',
        password: o.password ?? 'change-me',
        realm: c.realm,
        nonce: c.nonce,
        opaque: c.opaque,
        algorithm: c.algorithm as 'MD5' | 'SHA-256',
        uri: 'sip:sip.example.org',
        method: 'REGISTER',
        qop: 'auth',
        nc: o.nc ?? '00000001',
        cnonce: 'f00dcafe',
      });
    }

    it('a NAT detection function is called only for an authenticated REGISTER, once, and its verdict stored', async () => {
      const { reg, store } = withAuth();
      const contact = ['<sip:1001@192.168.1.20:5062>'];
      let calls = 0;
      const detect = () => {
        calls++;
        return { nat: true, tests: ['via-received', 'contact-private'] };
      };
      const first = await reg.handleRegister(register({ contacts: contact }), udpFlow(), detect);
      assert.equal(first.status, 401);
      assert.equal(calls, 0, 'not called for a challenged REGISTER');
      const wrong = await reg.handleRegister(register({ cseq: 2, contacts: contact, extra: [`Authorization: ${answerFor(first, { password: 'nope' })}`] }), udpFlow(), detect);
      assert.equal(wrong.status, 401);
      assert.equal(calls, 0, 'not called when the credentials are wrong');
      const ok = await reg.handleRegister(register({ cseq: 3, contacts: contact, extra: [`Authorization: ${answerFor(first)}`] }), udpFlow(), detect);
      assert.equal(ok.status, 200);
      assert.equal(calls, 1);
      const [b] = await reg.lookup(AOR);
      assert.equal(b.nat, true);
      assert.deepEqual(b.natTests, ['via-received', 'contact-private']);
      await store.close();
    });

    it('401 with MD5 and SHA-256 challenges, then 200 (both algorithms)', async () => {
      const { reg, store } = withAuth();
      const contact = ['<sip:1001@192.168.1.20:5062>'];
      const first = await reg.handleRegister(register({ contacts: contact }), udpFlow());
      assert.equal(first.status, 401);
      const ch = headers(first, 'www-authenticate');
      assert.equal(ch.length, 2);
      assert.match(ch[0], /algorithm=MD5/);
      assert.match(ch[1], /algorithm=SHA-256/);
      assert.deepEqual(await reg.lookup(AOR), []);
      const ok = await reg.handleRegister(register({ cseq: 2, contacts: contact, extra: [`Authorization: ${answerFor(first)}`] }), udpFlow());
      assert.equal(ok.status, 200);
      assert.equal((await reg.lookup(AOR)).length, 1);
      const ok2 = await reg.handleRegister(register({ cseq: 3, contacts: contact, extra: [`Authorization: ${answerFor(first, { alg: 1, nc: '00000002' })}`] }), udpFlow());
      assert.equal(ok2.status, 200);
      await store.close();
    });

    it('a wrong password never gets a 200', async () => {
      const { reg, store } = withAuth();
      const first = await reg.handleRegister(register({ contacts: ['<sip:1001@192.0.2.1>'] }), udpFlow());
      for (let i = 0; i < 5; i++) {
        const res = await reg.handleRegister(
          register({ cseq: 2 + i, contacts: ['<sip:1001@192.0.2.1>'], extra: [`Authorization: ${answerFor(first, { password: `guess${i}`, nc: `0000000${i + 1}` })}`] }),
          udpFlow(),
        );
        assert.equal(res.status, 401);
        assert.equal(headers(res, 'www-authenticate').length, 2);
        assert.doesNotMatch(header(res, 'www-authenticate') ?? '', /stale/);
      }
      // Unknown user looks the same on the wire.
      const unknown = await reg.handleRegister(
        register({ user: '7777', contacts: ['<sip:7777@192.0.2.1>'], extra: [`Authorization: ${answerFor(first, { username: '7777' })}`] }),
        udpFlow(),
      );
      assert.equal(unknown.status, 401);
      assert.deepEqual(await reg.lookup(AOR), []);
      await store.close();
    });

    it('stale nonce → 401 with stale=true, then 200 with the new nonce', async () => {
      const { reg, clock, store } = withAuth({ nonceTtlMs: 30_000 });
      const first = await reg.handleRegister(register({ contacts: ['<sip:1001@192.0.2.1>'] }), udpFlow());
      clock.advance(31_000);
      const stale = await reg.handleRegister(register({ cseq: 2, contacts: ['<sip:1001@192.0.2.1>'], extra: [`Authorization: ${answerFor(first)}`] }), udpFlow());
      assert.equal(stale.status, 401);
      for (const v of headers(stale, 'www-authenticate')) assert.equal(challengeParams(v).stale, 'true');
      const ok = await reg.handleRegister(register({ cseq: 3, contacts: ['<sip:1001@192.0.2.1>'], extra: [`Authorization: ${answerFor(stale)}`] }), udpFlow());
      assert.equal(ok.status, 200);
      await store.close();
    });

    it('a replayed nonce-count is challenged again', async () => {
      const { reg, store } = withAuth();
      const first = await reg.handleRegister(register({ contacts: ['<sip:1001@192.0.2.1>'] }), udpFlow());
      const auth = `Authorization: ${answerFor(first)}`;
      assert.equal((await reg.handleRegister(register({ cseq: 2, contacts: ['<sip:1001@192.0.2.1>'], extra: [auth] }), udpFlow())).status, 200);
      assert.equal((await reg.handleRegister(register({ cseq: 3, contacts: ['<sip:1001@192.0.2.1>'], extra: [auth] }), udpFlow())).status, 401);
      await store.close();
    });

    it('authenticated user must own the AOR → 403', async () => {
      const { reg, store } = withAuth();
      const first = await reg.handleRegister(register({ contacts: ['<sip:1001@192.0.2.1>'] }), udpFlow());
      const res = await reg.handleRegister(
        register({ cseq: 2, contacts: ['<sip:1001@192.0.2.1>'], extra: [`Authorization: ${answerFor(first, { username: '1002', password: 'other' })}`] }),
        udpFlow(),
      );
      assert.equal(res.status, 403);
      assert.equal(res.reason, 'Forbidden - Not Authorized for this AOR');
      assert.deepEqual(await reg.lookup(AOR), []);
      await store.close();
    });

    it('malformed credentials → 400', async () => {
      const { reg, store } = withAuth();
      const res = await reg.handleRegister(
        register({ contacts: ['<sip:1001@192.0.2.1>'], extra: ['Authorization: Digest username="1001", realm="sip.example.org", nonce="x"'] }),
        udpFlow(),
      );
      assert.equal(res.status, 400);
      await store.close();
    });
  });
}

describe('Registrar persistence', () => {
  it('a new Registrar on the same SQLite file sees the bindings', async () => {
    const file = join(dir, 'persist', 'sipedge.db');
    const clock = new FakeClock();
    let store = new SqliteLocationStore(file);
    let reg = new Registrar({ store, clock, config: CONFIG });
    const res = await reg.handleRegister(
      register({ contacts: ['<sip:1001@192.168.1.20:5062>;+sip.instance="<urn:uuid:abc>";reg-id=1'], extra: ['Supported: outbound', 'Path: <sip:edge.example.org;lr;ob>'] }),
      tcpFlow(9),
      { nat: true, tests: ['rfc1918-contact'] },
    );
    assert.equal(res.status, 200);
    const before = await reg.lookup(AOR);
    await store.close();
    clock.advance(10_000);
    store = new SqliteLocationStore(file);
    reg = new Registrar({ store, clock, config: CONFIG });
    assert.deepEqual(await reg.lookup(AOR), before);
    // Refresh works across the restart (same Call-ID, higher CSeq) and a lower one is refused.
    assert.equal((await reg.handleRegister(register({ cseq: 1, contacts: ['<sip:1001@192.168.1.20:5062>'] }), udpFlow())).status, 500);
    assert.equal((await reg.handleRegister(register({ cseq: 2, contacts: ['<sip:1001@192.168.1.20:5062>'] }), udpFlow())).status, 200);
    await store.close();
  });
});

describe('aorFromUri', () => {
  it('canonicalises to sip:user@host', () => {
    assert.equal(aorFromUri('sip:1001@SIP.Example.ORG:5060;transport=tcp?subject=x'), 'sip:1001@sip.example.org');
    assert.equal(aorFromUri('sips:alice:secret@example.com'), 'sip:alice@example.com');
    assert.equal(aorFromUri('sip:%61lice@example.com'), 'sip:alice@example.com');
    assert.equal(aorFromUri('sip:a%2fb%40c@example.com'), 'sip:a/b%40c@example.com');
    assert.equal(aorFromUri('sip:Alice@example.com'), 'sip:Alice@example.com', 'user part is case-sensitive');
    assert.equal(aorFromUri('sip:1001@[2001:DB8::1]:5060'), 'sip:1001@[2001:db8::1]');
    assert.equal(aorFromUri('sip:example.com'), 'sip:example.com');
    assert.equal(aorFromUri('tel:+15551234567'), undefined);
    assert.equal(aorFromUri('http://example.com'), undefined);
    assert.equal(aorFromUri('not a uri'), undefined);
  });
});

describe('Registrar on parsed wire messages', () => {
  it('handles a REGISTER with compact headers and serialises a parsable 200', async () => {
    const wire = [
      'REGISTER sip:sip.example.org SIP/2.0',
      'v: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bKnashds7;rport',
      'Max-Forwards: 70',
      'f: "Desk" <sip:1001@sip.example.org>;tag=456248',
      't: <sip:1001@sip.example.org>',
      'i: 843817637684230@998sdasdh09',
      'CSeq: 1826 REGISTER',
      'm: <sip:1001@192.168.1.20:5062;line=abc>;q=0.8;expires=120, <sip:1001@192.168.1.20:5063>',
      'k: path',
      'User-Agent: Grandstream GXP2170 1.0.11.3',
      'l: 0',
      '',
      '',
    ].join('\r\n');
    const parsed = parseMessage(Buffer.from(wire));
    assert.ok(parsed.ok);
    assert.equal(parsed.message.type, 'request');
    const clock = new FakeClock();
    const store = new MemoryLocationStore();
    const reg = new Registrar({ store, clock, config: CONFIG });
    const res = await reg.handleRegister(parsed.message as SipRequest, udpFlow());
    assert.equal(res.status, 200);
    const back = parseMessage(serializeMessage(res));
    assert.ok(back.ok, 'the 200 OK parses');
    assert.deepEqual(headers(back.message as SipResponse, 'contact'), [
      '<sip:1001@192.168.1.20:5063>;expires=600',
      '<sip:1001@192.168.1.20:5062;line=abc>;expires=120;q=0.8',
    ]);
    assert.equal(header(back.message as SipResponse, 'cseq'), '1826 REGISTER');
    assert.equal((await reg.lookup(AOR))[0].userAgent, 'Grandstream GXP2170 1.0.11.3');
    await store.close();
  });
});
