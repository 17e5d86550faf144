import { test } from 'node:test';
import assert from 'node:assert/strict';
import { harness, inbound, makeRequest, makeResponse } from './helpers.js';

function receive(transport: 'udp' | 'tcp' = 'udp', method = 'REGISTER') {
  const h = harness();
  const request = makeRequest(method, { branch: 'z9hG4bKsn1', transport: transport.toUpperCase() });
  h.layer.receive(inbound(request, transport));
  assert.equal(h.tu.requests.length, 1);
  return { ...h, request, tx: h.tu.requests[0] };
}

const statuses = (h: ReturnType<typeof receive>) => h.transport.sent.map((s) => s.kind === 'response' && [s.at, s.msg.status]);

test('Trying: request retransmissions discarded, no 100 Trying, not passed up', () => {
  const h = receive();
  assert.equal(h.tx.state, 'Trying');
  assert.equal(h.tx.kind, 'non-INVITE');
  h.clock.advance(500);
  h.layer.receive(inbound(h.request));
  h.clock.advance(10_000);
  assert.equal(h.transport.sent.length, 0);
  assert.equal(h.tu.requests.length, 1);
  assert.equal(h.clock.pending, 0);
});

test('Trying → Proceeding on 1xx; retransmission re-sends the last 1xx; → Completed on final; Timer J 64*T1', () => {
  const h = receive();
  h.tx.respond(makeResponse(h.request, 100));
  assert.equal(h.tx.state, 'Proceeding');
  h.clock.advance(100);
  h.tx.respond(makeResponse(h.request, 182));
  h.clock.advance(400);
  h.layer.receive(inbound(h.request));
  h.clock.advance(100);
  const final = makeResponse(h.request, 200, 'x');
  h.tx.respond(final);
  assert.equal(h.tx.state, 'Completed');
  assert.equal(h.tx.lastResponse, final);
  // Completed: retransmissions answered with the final; other TU responses discarded.
  h.clock.advance(1000);
  h.layer.receive(inbound(h.request));
  h.tx.respond(makeResponse(h.request, 500, 'x'));
  h.tx.respond(makeResponse(h.request, 180, 'x'));
  assert.deepEqual(statuses(h), [
    [0, 100],
    [100, 182],
    [500, 182],
    [600, 200],
    [1600, 200],
  ]);
  assert.equal(h.tu.requests.length, 1);
  h.clock.advance(32_000 - 1000 - 1); // J started at 600
  assert.equal(h.tx.state, 'Completed');
  h.clock.advance(1);
  assert.equal(h.tx.state, 'Terminated');
  assert.equal(h.layer.counts().server, 0);
  assert.equal(h.clock.pending, 0);
  assert.equal(h.tu.errors.length, 0);
  // After Timer J, the same request is new again.
  h.layer.receive(inbound(h.request));
  assert.equal(h.tu.requests.length, 2);
});

test('Trying → Completed directly on a final', () => {
  const h = receive('udp', 'OPTIONS');
  h.tx.respond(makeResponse(h.request, 200, 'x'));
  assert.equal(h.tx.state, 'Completed');
  h.clock.advance(32_000);
  assert.equal(h.tx.state, 'Terminated');
});

test('reliable: Timer J = 0 → Terminated as soon as the final is sent', () => {
  const h = receive('tcp', 'BYE');
  h.tx.respond(makeResponse(h.request, 200, 'x'));
  assert.equal(h.tx.state, 'Terminated');
  assert.equal(h.layer.counts().server, 0);
  assert.equal(h.clock.pending, 0);
  assert.equal(h.transport.sent.length, 1);
});

test('transport error → Terminated, TU informed (Figure 8)', () => {
  {
    const h = receive();
    h.transport.failWhen = () => true;
    h.tx.respond(makeResponse(h.request, 100));
    assert.equal(h.tx.state, 'Terminated');
    assert.deepEqual(h.tu.errors.map((e) => [e.tx, e.reason]), [[h.tx, 'transport']]);
    assert.equal(h.layer.counts().server, 0);
  }
  {
    const h = receive();
    h.transport.failWhen = () => true;
    h.tx.respond(makeResponse(h.request, 200, 'x'));
    assert.equal(h.tx.state, 'Terminated');
    assert.deepEqual(h.tu.errors.map((e) => e.reason), ['transport']);
    assert.equal(h.clock.pending, 0);
  }
  {
    const h = receive();
    h.tx.respond(makeResponse(h.request, 200, 'x'));
    h.transport.failWhen = () => true;
    h.layer.receive(inbound(h.request));
    assert.equal(h.tx.state, 'Terminated');
    assert.deepEqual(h.tu.errors.map((e) => e.reason), ['transport']);
    assert.equal(h.clock.pending, 0);
  }
});

test('invalid statuses and responses after Terminated are ignored', () => {
  const h = receive('tcp');
  h.tx.respond(makeResponse(h.request, 42));
  assert.equal(h.tx.state, 'Trying');
  h.tx.respond(makeResponse(h.request, 200, 'x'));
  h.tx.respond(makeResponse(h.request, 200, 'x'));
  assert.equal(h.transport.sent.length, 1);
});
