import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dest, harness, header, inbound, makeRequest, makeResponse, NEXT_HOP, RecordingHandler } from './helpers.js';
import { buildAckForNon2xx } from '../../src/transaction/client_invite_fsm.js';

const BRANCH = 'z9hG4bKci1';

function start(transport: 'udp' | 'tcp' = 'udp', timers?: { T1?: number; T2?: number; T4?: number }) {
  const h = harness({ timers });
  const invite = makeRequest('INVITE', {
    branch: BRANCH,
    transport: transport.toUpperCase(),
    routes: ['<sip:198.51.100.20;lr>', '<sip:198.51.100.30;lr>'],
    extraVia: ['SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKupstream'],
    body: 'v=0\r\n',
    cseq: 314,
  });
  const handler = new RecordingHandler();
  const tx = h.layer.sendRequest(invite, dest(transport), handler);
  return { ...h, invite, handler, tx };
}

test('Calling (unreliable): Timer A retransmits at 500, 1500, 3500, 7500, 15500, 31500; Timer B at 64*T1 → timeout', () => {
  const { clock, transport, layer, handler, tx } = start();
  assert.equal(tx.state, 'Calling');
  assert.equal(tx.kind, 'INVITE');
  assert.deepEqual(transport.times('INVITE'), [0]);
  clock.advance(31_999);
  // Timer A doubles without a cap (RFC 3261 §17.1.1.2): 500, 1000, 2000, 4000, 8000, 16000.
  assert.deepEqual(transport.times('INVITE'), [0, 500, 1500, 3500, 7500, 15500, 31500]);
  assert.deepEqual(handler.events, []);
  assert.equal(layer.counts().client, 1);
  clock.advance(1);
  assert.equal(tx.state, 'Terminated');
  assert.deepEqual(handler.events, ['timeout', 'terminated']);
  assert.equal(layer.counts().client, 0);
  assert.equal(clock.pending, 0);
  // No ACK after a timeout.
  assert.equal(transport.requests('ACK').length, 0);
  for (const s of transport.sent) assert.equal(s.kind === 'request' && s.dest.address, NEXT_HOP);
});

test('Calling (reliable): no Timer A, Timer B still fires at 64*T1', () => {
  const { clock, transport, handler, tx } = start('tcp');
  clock.advance(31_999);
  assert.deepEqual(transport.times('INVITE'), [0]);
  clock.advance(1);
  assert.equal(tx.state, 'Terminated');
  assert.deepEqual(handler.events, ['timeout', 'terminated']);
  assert.equal(clock.pending, 0);
});

test('T1 setting drives Timers A and B', () => {
  const { clock, transport, handler } = start('udp', { T1: 100 });
  clock.advance(6400);
  assert.deepEqual(transport.times('INVITE'), [0, 100, 300, 700, 1500, 3100, 6300]);
  assert.deepEqual(handler.events, ['timeout', 'terminated']);
});

test('Calling → Proceeding on 1xx: retransmissions stop, every 1xx passed up, Timer B no longer applies', () => {
  const { clock, transport, layer, handler, tx, invite } = start();
  clock.advance(600);
  layer.receive(inbound(makeResponse(invite, 100)));
  assert.equal(tx.state, 'Proceeding');
  layer.receive(inbound(makeResponse(invite, 180, 'b1')));
  layer.receive(inbound(makeResponse(invite, 183, 'b1')));
  clock.advance(120_000);
  assert.deepEqual(transport.times('INVITE'), [0, 500]);
  assert.deepEqual(handler.events, ['response 100', 'response 180', 'response 183']);
  assert.equal(tx.state, 'Proceeding');
  assert.equal(clock.pending, 0, 'an INVITE client transaction waits in Proceeding with no timers (the TU runs Timer C)');
});

test('Calling → Accepted on 2xx: Timer M, every 2xx (retransmissions and other forks) passed up, no ACK', () => {
  const { clock, transport, layer, tu, handler, tx, invite } = start();
  clock.advance(100);
  layer.receive(inbound(makeResponse(invite, 200, 'fork1')));
  assert.equal(tx.state, 'Accepted');
  layer.receive(inbound(makeResponse(invite, 200, 'fork1')));
  layer.receive(inbound(makeResponse(invite, 200, 'fork2')));
  // 1xx and non-2xx are absorbed in Accepted.
  layer.receive(inbound(makeResponse(invite, 180, 'fork3')));
  layer.receive(inbound(makeResponse(invite, 486, 'fork3')));
  assert.deepEqual(handler.events, ['response 200', 'response 200', 'response 200']);
  assert.deepEqual(handler.responses.map((r) => header(r, 'to')[0].split('tag=')[1]), ['fork1', 'fork1', 'fork2']);
  assert.equal(transport.requests('ACK').length, 0, 'the TU ACKs a 2xx, not the transaction');
  assert.deepEqual(transport.times('INVITE'), [0], 'Timer A stopped');
  clock.advance(32_000 - 1);
  assert.equal(tx.state, 'Accepted');
  clock.advance(1); // Timer M = 64*T1 after entering Accepted at t=100
  assert.equal(tx.state, 'Terminated');
  assert.deepEqual(handler.events.slice(-1), ['terminated']);
  assert.equal(layer.counts().client, 0);
  assert.equal(clock.pending, 0);
  // A 2xx after Timer M matches nothing: stray (the proxy forwards it statelessly).
  layer.receive(inbound(makeResponse(invite, 200, 'fork1')));
  assert.equal(handler.events.length, 4);
  assert.equal(tu.strayResponses.length, 1);
});

test('Proceeding → Accepted on 2xx', () => {
  const { clock, layer, handler, tx, invite } = start('tcp');
  layer.receive(inbound(makeResponse(invite, 180, 'a')));
  layer.receive(inbound(makeResponse(invite, 200, 'a')));
  assert.equal(tx.state, 'Accepted');
  assert.deepEqual(handler.events, ['response 180', 'response 200']);
  clock.advance(32_000);
  assert.equal(tx.state, 'Terminated');
});

test('Calling → Completed on 300-699: ACK built per §17.1.1.3, sent to the same destination, Timer D 32 s', () => {
  const { clock, transport, layer, handler, tx, invite } = start();
  clock.advance(700);
  const busy = makeResponse(invite, 486, 'uas-tag');
  layer.receive(inbound(busy));
  assert.equal(tx.state, 'Completed');
  assert.deepEqual(handler.events, ['response 486']);
  const acks = transport.sent.filter((s) => s.kind === 'request' && s.msg.method === 'ACK');
  assert.equal(acks.length, 1);
  const sent = acks[0];
  assert.ok(sent.kind === 'request');
  assert.deepEqual(sent.dest, dest('udp'));
  const ack = sent.msg;
  assert.equal(ack.uri, invite.uri);
  assert.deepEqual(header(ack, 'via'), [header(invite, 'via')[0]], 'a single Via equal to the top Via of the INVITE');
  assert.deepEqual(header(ack, 'route'), header(invite, 'route'));
  assert.deepEqual(header(ack, 'from'), header(invite, 'from'));
  assert.deepEqual(header(ack, 'call-id'), header(invite, 'call-id'));
  assert.deepEqual(header(ack, 'to'), header(busy, 'to'), 'To of the response (with its tag)');
  assert.deepEqual(header(ack, 'cseq'), ['314 ACK']);
  assert.deepEqual(header(ack, 'max-forwards'), ['70']);
  assert.deepEqual(header(ack, 'content-length'), ['0']);
  assert.equal(header(ack, 'contact').length, 0);
  assert.equal(ack.body.length, 0);
  assert.deepEqual(transport.times('INVITE'), [0, 500], 'retransmissions stopped');

  // Retransmitted finals: ACK re-sent, response not passed up.
  clock.advance(1000);
  layer.receive(inbound(makeResponse(invite, 486, 'uas-tag')));
  clock.advance(1000);
  layer.receive(inbound(makeResponse(invite, 486, 'uas-tag')));
  assert.deepEqual(transport.times('ACK'), [700, 1700, 2700]);
  assert.deepEqual(handler.events, ['response 486']);
  // 1xx / 2xx in Completed are ignored.
  layer.receive(inbound(makeResponse(invite, 180, 'uas-tag')));
  layer.receive(inbound(makeResponse(invite, 200, 'uas-tag')));
  assert.deepEqual(handler.events, ['response 486']);
  assert.equal(transport.times('ACK').length, 3);

  clock.advance(32_000 - 2000 - 1); // Timer D started at 700
  assert.equal(tx.state, 'Completed');
  clock.advance(1);
  assert.equal(tx.state, 'Terminated');
  assert.deepEqual(handler.events, ['response 486', 'terminated']);
  assert.equal(layer.counts().client, 0);
  assert.equal(clock.pending, 0);
});

test('Proceeding → Completed; reliable transport: ACK sent, Timer D = 0 → Terminated at once', () => {
  const { clock, transport, layer, handler, tx, invite } = start('tcp');
  layer.receive(inbound(makeResponse(invite, 180, 't'), 'tcp'));
  layer.receive(inbound(makeResponse(invite, 603, 't'), 'tcp'));
  assert.equal(tx.state, 'Terminated');
  assert.deepEqual(transport.times('ACK'), [0]);
  assert.deepEqual(handler.events, ['response 180', 'response 603', 'terminated']);
  assert.equal(layer.counts().client, 0);
  assert.equal(clock.pending, 0);
});

test('transport error on the initial INVITE → onTransportError synchronously, Terminated (§17.1.4)', () => {
  const h = harness();
  h.transport.failWhen = () => true;
  const handler = new RecordingHandler();
  const tx = h.layer.sendRequest(makeRequest('INVITE', { branch: BRANCH }), dest(), handler);
  assert.equal(tx.state, 'Terminated');
  assert.deepEqual(handler.events, ['transport-error', 'terminated']);
  assert.deepEqual(handler.results[0], { ok: false, code: 'SEND_FAILED', detail: 'test failure' });
  assert.equal(h.layer.counts().client, 0);
  assert.equal(h.clock.pending, 0);
});

test('transport error on a Timer A retransmission → Terminated', () => {
  const { clock, transport, layer, handler, tx } = start();
  clock.advance(500);
  transport.failWhen = () => true;
  clock.advance(1000);
  assert.equal(tx.state, 'Terminated');
  assert.deepEqual(handler.events, ['transport-error', 'terminated']);
  assert.equal(layer.counts().client, 0);
  assert.equal(clock.pending, 0);
});

test('transport error sending the ACK → Completed → Terminated, TU informed', () => {
  const { clock, transport, layer, handler, tx, invite } = start();
  transport.failWhen = (m) => m.type === 'request' && m.method === 'ACK';
  layer.receive(inbound(makeResponse(invite, 404, 'x')));
  assert.equal(tx.state, 'Terminated');
  assert.deepEqual(handler.events, ['response 404', 'transport-error', 'terminated']);
  assert.equal(clock.pending, 0);
});

test('terminate() by the TU stops timers and removes the transaction; a second call is a no-op', () => {
  const { clock, layer, handler, tx, invite } = start();
  tx.terminate();
  tx.terminate();
  assert.equal(tx.state, 'Terminated');
  assert.deepEqual(handler.events, ['terminated']);
  assert.equal(layer.counts().client, 0);
  assert.equal(clock.pending, 0);
  layer.receive(inbound(makeResponse(invite, 200, 'x')));
  assert.deepEqual(handler.events, ['terminated']);
});

test('TU terminating from inside onResponse for a non-2xx: no ACK sent after, no timers left', () => {
  const h = harness();
  const invite = makeRequest('INVITE', { branch: BRANCH });
  const tx = h.layer.sendRequest(invite, dest(), {
    onResponse: () => tx.terminate(),
    onTimeout: () => {},
    onTransportError: () => {},
  });
  h.layer.receive(inbound(makeResponse(invite, 500, 'x')));
  assert.equal(tx.state, 'Terminated');
  assert.equal(h.transport.times('ACK').length, 0);
  assert.equal(h.clock.pending, 0);
});

test('a TU callback that throws does not break the state machine', () => {
  const h = harness();
  const invite = makeRequest('INVITE', { branch: BRANCH });
  const tx = h.layer.sendRequest(invite, dest(), {
    onResponse: () => {
      throw new Error('boom');
    },
    onTimeout: () => {},
    onTransportError: () => {},
  });
  h.layer.receive(inbound(makeResponse(invite, 486, 'x')));
  assert.equal(tx.state, 'Completed');
  assert.equal(h.transport.times('ACK').length, 1);
});

test('buildAckForNon2xx without Route headers has none', () => {
  const invite = makeRequest('INVITE', { branch: BRANCH, cseq: 9 });
  const ack = buildAckForNon2xx(invite, makeResponse(invite, 407, 'p'));
  assert.deepEqual(
    ack.headers.map((x) => x.key),
    ['via', 'max-forwards', 'from', 'to', 'call-id', 'cseq', 'content-length'],
  );
  assert.equal(header(ack, 'cseq')[0], '9 ACK');
});
