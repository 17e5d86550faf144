import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dest, harness, inbound, makeRequest, makeResponse, RecordingHandler } from './helpers.js';

function start(transport: 'udp' | 'tcp' = 'udp', method = 'OPTIONS', timers?: { T1?: number; T2?: number; T4?: number }) {
  const h = harness({ timers });
  const request = makeRequest(method, { branch: 'z9hG4bKni1', transport: transport.toUpperCase() });
  const handler = new RecordingHandler();
  const tx = h.layer.sendRequest(request, dest(transport), handler);
  return { ...h, request, handler, tx };
}

test('Trying (unreliable): Timer E doubles from T1 and caps at T2; Timer F at 64*T1 → timeout', () => {
  const { clock, transport, layer, handler, tx } = start();
  assert.equal(tx.state, 'Trying');
  assert.equal(tx.kind, 'non-INVITE');
  clock.advance(31_999);
  // Intervals 500, 1000, 2000, 4000, 4000, … (RFC 3261 §17.1.2.2).
  assert.deepEqual(transport.times('OPTIONS'), [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
  assert.deepEqual(handler.events, []);
  clock.advance(1);
  assert.equal(tx.state, 'Terminated');
  assert.deepEqual(handler.events, ['timeout', 'terminated']);
  assert.equal(layer.counts().client, 0);
  assert.equal(clock.pending, 0);
});

test('custom T1/T2: E = 100, 200, 400, 400 …; F = 6400', () => {
  const { clock, transport, handler } = start('udp', 'REGISTER', { T1: 100, T2: 400 });
  clock.advance(6400);
  const t = transport.times('REGISTER');
  assert.deepEqual(t.slice(0, 6), [0, 100, 300, 700, 1100, 1500]);
  assert.equal(t.at(-1), 6300);
  assert.deepEqual(handler.events, ['timeout', 'terminated']);
});

test('Trying (reliable): no Timer E; Timer F fires', () => {
  const { clock, transport, handler, tx } = start('tcp');
  clock.advance(32_000);
  assert.deepEqual(transport.times('OPTIONS'), [0]);
  assert.equal(tx.state, 'Terminated');
  assert.deepEqual(handler.events, ['timeout', 'terminated']);
});

test('Trying → Proceeding on 1xx: Timer E continues, then every T2; Timer F → timeout from Proceeding', () => {
  const { clock, transport, layer, handler, tx, request } = start();
  clock.advance(600);
  layer.receive(inbound(makeResponse(request, 100)));
  assert.equal(tx.state, 'Proceeding');
  layer.receive(inbound(makeResponse(request, 183)));
  clock.advance(32_000 - 600);
  // E fired at 500 (Trying, next 1000) → 1500 in Proceeding, then every T2 = 4000.
  assert.deepEqual(transport.times('OPTIONS'), [0, 500, 1500, 5500, 9500, 13500, 17500, 21500, 25500, 29500]);
  assert.deepEqual(handler.events, ['response 100', 'response 183', 'timeout', 'terminated']);
  assert.equal(clock.pending, 0);
});

test('Trying → Completed on final: passed up once, retransmissions absorbed, Timer K = T4', () => {
  const { clock, transport, layer, handler, tx, request } = start();
  clock.advance(200);
  layer.receive(inbound(makeResponse(request, 200, 'x')));
  assert.equal(tx.state, 'Completed');
  layer.receive(inbound(makeResponse(request, 200, 'x')));
  layer.receive(inbound(makeResponse(request, 180, 'x')));
  clock.advance(4999);
  assert.deepEqual(handler.events, ['response 200']);
  assert.deepEqual(transport.times('OPTIONS'), [0], 'no retransmission after the final');
  assert.equal(tx.state, 'Completed');
  clock.advance(1);
  assert.equal(tx.state, 'Terminated');
  assert.deepEqual(handler.events, ['response 200', 'terminated']);
  assert.equal(layer.counts().client, 0);
  assert.equal(clock.pending, 0);
});

test('Proceeding → Completed on final (3xx-6xx too)', () => {
  const { clock, layer, handler, tx, request } = start('udp', 'REGISTER');
  layer.receive(inbound(makeResponse(request, 100)));
  layer.receive(inbound(makeResponse(request, 401, 'x')));
  assert.equal(tx.state, 'Completed');
  assert.deepEqual(handler.events, ['response 100', 'response 401']);
  clock.advance(5000);
  assert.equal(tx.state, 'Terminated');
});

test('reliable: Timer K = 0 → Terminated as soon as the final arrives', () => {
  const { clock, layer, handler, tx, request } = start('tcp', 'BYE');
  layer.receive(inbound(makeResponse(request, 200, 'x'), 'tcp'));
  assert.equal(tx.state, 'Terminated');
  assert.deepEqual(handler.events, ['response 200', 'terminated']);
  assert.equal(layer.counts().client, 0);
  assert.equal(clock.pending, 0);
});

test('transport error: on first send and on a Timer E retransmission in Proceeding', () => {
  {
    const h = harness();
    h.transport.failWhen = () => true;
    const handler = new RecordingHandler();
    const tx = h.layer.sendRequest(makeRequest('MESSAGE', { branch: 'z9hG4bKm' }), dest(), handler);
    assert.equal(tx.state, 'Terminated');
    assert.deepEqual(handler.events, ['transport-error', 'terminated']);
    assert.equal(h.clock.pending, 0);
  }
  {
    const { clock, transport, layer, handler, tx, request } = start();
    layer.receive(inbound(makeResponse(request, 100)));
    transport.failWhen = () => true;
    clock.advance(500);
    assert.equal(tx.state, 'Terminated');
    assert.deepEqual(handler.events, ['response 100', 'transport-error', 'terminated']);
    assert.equal(layer.counts().client, 0);
    assert.equal(clock.pending, 0);
  }
});

test('CANCEL is its own client transaction with the INVITE branch; responses route by CSeq method', () => {
  const h = harness();
  const invite = makeRequest('INVITE', { branch: 'z9hG4bKshared' });
  const cancel = makeRequest('CANCEL', { branch: 'z9hG4bKshared', cseqMethod: 'CANCEL' });
  const hi = new RecordingHandler();
  const hc = new RecordingHandler();
  h.layer.sendRequest(invite, dest(), hi);
  h.layer.sendRequest(cancel, dest(), hc);
  assert.deepEqual(h.layer.counts(), { client: 2, server: 0 });
  h.layer.receive(inbound(makeResponse(cancel, 200, 'x')));
  h.layer.receive(inbound(makeResponse(invite, 487, 'x')));
  assert.deepEqual(hc.events, ['response 200']);
  assert.deepEqual(hi.events, ['response 487']);
  assert.equal(h.transport.times('ACK').length, 1);
});
