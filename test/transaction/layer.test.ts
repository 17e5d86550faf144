import { test } from 'node:test';
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { TransactionLayerError } from '../../src/transaction/layer.js';
import type { TransactionStateEvent } from '../../src/transaction/context.js';
import { dest, harness, inbound, makeAck, makeRequest, makeResponse, RecordingHandler } from './helpers.js';

test('a response matching no client transaction goes to tu.onStrayResponse', () => {
  const h = harness();
  const res = makeResponse(makeRequest('INVITE', { branch: 'z9hG4bKnobody' }), 200, 'x');
  h.layer.receive(inbound(res));
  assert.equal(h.tu.strayResponses.length, 1);
  assert.equal(h.tu.strayResponses[0].message, res);
  // A response without a usable Via is stray too.
  const broken = makeResponse(makeRequest('INVITE', { via: 'SIP/2.0/UDP 192.0.2.10:5060' }), 200, 'x');
  h.layer.receive(inbound(broken));
  assert.equal(h.tu.strayResponses.length, 2);
  // Same branch, different CSeq method: no match either.
  h.layer.sendRequest(makeRequest('INVITE', { branch: 'z9hG4bKb' }), dest(), new RecordingHandler());
  h.layer.receive(inbound(makeResponse(makeRequest('CANCEL', { branch: 'z9hG4bKb' }), 200)));
  assert.equal(h.tu.strayResponses.length, 3);
});

test('an ACK matching nothing goes to tu.onStrayAck; so does an ACK without usable Via', () => {
  const h = harness();
  const invite = makeRequest('INVITE', { branch: 'z9hG4bKx' });
  const ack = makeAck(invite, makeResponse(invite, 200, 't'));
  h.layer.receive(inbound(ack));
  const noVia = makeAck(invite, makeResponse(invite, 200, 't'));
  noVia.headers = noVia.headers.filter((x) => x.key !== 'via');
  h.layer.receive(inbound(noVia));
  assert.deepEqual(h.tu.strayAcks.map((i) => i.message), [ack, noVia]);
  assert.equal(h.tu.requests.length, 0, 'an ACK never creates a server transaction');
  assert.deepEqual(h.layer.counts(), { client: 0, server: 0 });
});

test('a request without usable Via is dropped (no transaction, no TU call)', () => {
  const h = harness();
  const req = makeRequest('OPTIONS');
  req.headers = req.headers.filter((x) => x.key !== 'via');
  h.layer.receive(inbound(req));
  assert.equal(h.tu.requests.length, 0);
  assert.deepEqual(h.layer.counts(), { client: 0, server: 0 });
});

test('counts() tracks live transactions on both sides', () => {
  const h = harness();
  h.layer.receive(inbound(makeRequest('INVITE', { branch: 'z9hG4bK1' })));
  h.layer.receive(inbound(makeRequest('OPTIONS', { branch: 'z9hG4bK2' })));
  h.layer.sendRequest(makeRequest('INVITE', { branch: 'z9hG4bK3' }), dest(), new RecordingHandler());
  assert.deepEqual(h.layer.counts(), { client: 1, server: 2 });
  h.tu.requests[1].respond(makeResponse(h.tu.requests[1].request, 200, 'x'));
  h.clock.advance(32_000);
  assert.deepEqual(h.layer.counts(), { client: 0, server: 1 }, 'Timer J and Timer B removed theirs; the INVITE waits for its TU');
});

test('sendRequest errors: no branch, duplicate live transaction, closed layer', () => {
  const h = harness();
  const noBranch = makeRequest('OPTIONS', { via: 'SIP/2.0/UDP 203.0.113.10:5060' });
  assert.throws(() => h.layer.sendRequest(noBranch, dest(), new RecordingHandler()), (e: unknown) => e instanceof TransactionLayerError && e.code === 'NO_BRANCH');
  const req = makeRequest('OPTIONS', { branch: 'z9hG4bKdup' });
  h.layer.sendRequest(req, dest(), new RecordingHandler());
  assert.throws(() => h.layer.sendRequest(req, dest(), new RecordingHandler()), (e: unknown) => e instanceof TransactionLayerError && e.code === 'DUPLICATE_TRANSACTION');
  h.layer.close();
  assert.throws(() => h.layer.sendRequest(makeRequest('OPTIONS', { branch: 'z9hG4bKn' }), dest(), new RecordingHandler()), (e: unknown) => e instanceof TransactionLayerError && e.code === 'CLOSED');
});

test('sendRequest(ACK) sends once statelessly and returns a Terminated transaction', () => {
  const h = harness();
  const invite = makeRequest('INVITE', { branch: 'z9hG4bKi' });
  const ack = makeAck(invite, makeResponse(invite, 200, 't'), { branch: 'z9hG4bKack' });
  const handler = new RecordingHandler();
  const tx = h.layer.sendRequest(ack, dest(), handler);
  assert.equal(tx.state, 'Terminated');
  assert.deepEqual(h.transport.times('ACK'), [0]);
  assert.deepEqual(handler.events, ['terminated']);
  assert.deepEqual(h.layer.counts(), { client: 0, server: 0 });
  h.clock.advance(64_000);
  assert.deepEqual(h.transport.times('ACK'), [0]);
  h.transport.failWhen = () => true;
  const h2 = new RecordingHandler();
  h.layer.sendRequest(ack, dest(), h2);
  assert.deepEqual(h2.events, ['transport-error', 'terminated']);
});

test('close() cancels every timer of transactions in every state and ignores later input', () => {
  const h = harness({ autoTryingMs: 200 });
  // Client: Calling (A, B), Proceeding non-INVITE (E, F), Accepted (M), Completed (D), Completed non-INVITE (K).
  const inv1 = makeRequest('INVITE', { branch: 'z9hG4bKc1' });
  const inv2 = makeRequest('INVITE', { branch: 'z9hG4bKc2' });
  const inv3 = makeRequest('INVITE', { branch: 'z9hG4bKc3' });
  const opt1 = makeRequest('OPTIONS', { branch: 'z9hG4bKc4' });
  const opt2 = makeRequest('OPTIONS', { branch: 'z9hG4bKc5' });
  for (const r of [inv1, inv2, inv3, opt1, opt2]) h.layer.sendRequest(r, dest(), new RecordingHandler());
  h.layer.receive(inbound(makeResponse(inv2, 200, 't')));
  h.layer.receive(inbound(makeResponse(inv3, 486, 't')));
  h.layer.receive(inbound(makeResponse(opt1, 100)));
  h.layer.receive(inbound(makeResponse(opt2, 200, 't')));
  // Server: Proceeding with auto-100 pending, Accepted (L), Completed (G, H), Confirmed (I), Completed non-INVITE (J).
  const s = ['z9hG4bKs1', 'z9hG4bKs2', 'z9hG4bKs3', 'z9hG4bKs4'].map((b) => makeRequest('INVITE', { branch: b }));
  for (const r of s) h.layer.receive(inbound(r));
  h.layer.receive(inbound(makeRequest('MESSAGE', { branch: 'z9hG4bKs5' })));
  const [, t2, t3, t4, t5] = h.tu.requests;
  t2.respond(makeResponse(t2.request, 200, 't'));
  t3.respond(makeResponse(t3.request, 500, 't'));
  const f4 = makeResponse(t4.request, 500, 't');
  t4.respond(f4);
  h.layer.receive(inbound(makeAck(t4.request, f4)));
  t5.respond(makeResponse(t5.request, 200, 't'));
  assert.deepEqual(h.layer.counts(), { client: 5, server: 5 });
  assert.ok(h.clock.pending >= 10);
  h.layer.close();
  assert.equal(h.clock.pending, 0);
  assert.deepEqual(h.layer.counts(), { client: 0, server: 0 });
  const before = h.transport.sent.length;
  h.layer.receive(inbound(makeRequest('INVITE', { branch: 'z9hG4bKlate' })));
  h.layer.receive(inbound(makeResponse(inv1, 180)));
  h.clock.advance(100_000);
  assert.equal(h.transport.sent.length, before);
  assert.equal(h.tu.requests.length, 5);
  h.layer.close(); // idempotent
});

test('a TU that throws in onRequest does not break the layer; auto 100 still goes out', () => {
  const h = harness({ autoTryingMs: 200 });
  h.tu.onRequestHook = () => {
    throw new Error('TU bug');
  };
  const invite = makeRequest('INVITE', { branch: 'z9hG4bKthrow' });
  assert.doesNotThrow(() => h.layer.receive(inbound(invite)));
  h.clock.advance(200);
  assert.deepEqual(h.transport.times(100), [200]);
  h.layer.receive(inbound(invite));
  assert.equal(h.tu.requests.length, 1);
  assert.deepEqual(h.transport.times(100), [200, 200]);
});

test('TU errors in stray callbacks and onServerTransactionError are contained', () => {
  const h = harness();
  h.tu.onStrayAck = () => {
    throw new Error('x');
  };
  h.tu.onStrayResponse = () => {
    throw new Error('x');
  };
  h.tu.onServerTransactionError = () => {
    throw new Error('x');
  };
  const invite = makeRequest('INVITE', { branch: 'z9hG4bKe' });
  assert.doesNotThrow(() => h.layer.receive(inbound(makeAck(invite, makeResponse(invite, 200, 't')))));
  assert.doesNotThrow(() => h.layer.receive(inbound(makeResponse(invite, 200, 't'))));
  h.layer.receive(inbound(invite));
  h.transport.failWhen = () => true;
  assert.doesNotThrow(() => h.tu.requests[0].respond(makeResponse(invite, 180, 't')));
});

test('state transitions are published on diagnostics_channel sipedge:transaction:state', () => {
  const events: TransactionStateEvent[] = [];
  const fn = (m: unknown): void => {
    events.push(m as TransactionStateEvent);
  };
  subscribe('sipedge:transaction:state', fn);
  try {
    const h = harness();
    const req = makeRequest('OPTIONS', { branch: 'z9hG4bKdiag' });
    h.layer.sendRequest(req, dest('tcp'), new RecordingHandler());
    h.layer.receive(inbound(makeResponse(req, 200, 't'), 'tcp'));
  } finally {
    unsubscribe('sipedge:transaction:state', fn);
  }
  assert.deepEqual(
    events.map((e) => [e.side, e.kind, e.from, e.to, e.cause]),
    [
      ['client', 'non-INVITE', 'Trying', 'Completed', 'final response'],
      ['client', 'non-INVITE', 'Completed', 'Terminated', 'Timer K'],
    ],
  );
});

test('default timers are RFC 3261 Table 4; overrides apply per value', () => {
  assert.deepEqual(harness().layer.timers, { T1: 500, T2: 4000, T4: 5000 });
  assert.deepEqual(harness({ timers: { T1: 250 } }).layer.timers, { T1: 250, T2: 4000, T4: 5000 });
});
