import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/lib/clock.js';
import { TransactionLayer } from '../../src/transaction/layer.js';
import type { ServerTransaction } from '../../src/transaction/types.js';
import { harness, header, inbound, makeAck, makeRequest, makeResponse, RecordingTransport, RecordingTU } from './helpers.js';

const BRANCH = 'z9hG4bKsi1';

function receiveInvite(transport: 'udp' | 'tcp' = 'udp', o: { autoTryingMs?: number; branch?: string } = {}) {
  const h = harness({ autoTryingMs: o.autoTryingMs });
  const invite = makeRequest('INVITE', {
    branch: o.branch ?? BRANCH,
    transport: transport.toUpperCase(),
    extraVia: ['SIP/2.0/UDP 198.51.100.50;branch=z9hG4bKprev'],
  });
  h.layer.receive(inbound(invite, transport));
  assert.equal(h.tu.requests.length, 1);
  const tx = h.tu.requests[0];
  return { ...h, invite, tx };
}

test('new INVITE → server transaction in Proceeding, passed to the TU once', () => {
  const { layer, tu, tx, invite } = receiveInvite();
  assert.equal(tx.state, 'Proceeding');
  assert.equal(tx.kind, 'INVITE');
  assert.equal(tx.request, invite);
  assert.equal(tx.lastResponse, undefined);
  assert.deepEqual(layer.counts(), { client: 0, server: 1 });
  assert.equal(tu.requests.length, 1);
});

test('auto 100 Trying after autoTryingMs when the TU is silent; copies Via/From/To/Call-ID/CSeq, no To tag', () => {
  const { clock, transport, tx, invite } = receiveInvite('udp', { autoTryingMs: 200 });
  clock.advance(199);
  assert.equal(transport.sent.length, 0);
  clock.advance(1);
  assert.deepEqual(transport.times(100), [200]);
  const trying = transport.responses(100)[0];
  assert.equal(trying.reason, 'Trying');
  assert.deepEqual(header(trying, 'via'), header(invite, 'via'));
  assert.deepEqual(header(trying, 'from'), header(invite, 'from'));
  assert.deepEqual(header(trying, 'to'), header(invite, 'to'));
  assert.deepEqual(header(trying, 'call-id'), header(invite, 'call-id'));
  assert.deepEqual(header(trying, 'cseq'), header(invite, 'cseq'));
  assert.equal(tx.lastResponse, trying);
  assert.equal(tx.state, 'Proceeding');
});

test('the layer defaults to a 200 ms auto 100 Trying (RFC 3261 §17.2.1)', () => {
  const clock = new FakeClock();
  const transport = new RecordingTransport(clock);
  const layer = new TransactionLayer({ clock, transport, tu: new RecordingTU() });
  layer.receive(inbound(makeRequest('INVITE', { branch: BRANCH })));
  clock.advance(1000);
  assert.deepEqual(transport.times(100), [200]);
  layer.close();
});

test('no auto 100 when the TU responds within autoTryingMs, synchronously or later, or when disabled', () => {
  {
    const h = harness({ autoTryingMs: 200 });
    h.tu.onRequestHook = (tx) => tx.respond(makeResponse(tx.request, 180, 'a'));
    h.layer.receive(inbound(makeRequest('INVITE', { branch: BRANCH })));
    h.clock.advance(1000);
    assert.deepEqual(h.transport.sent.map((s) => s.kind === 'response' && s.msg.status), [180]);
    assert.equal(h.clock.pending, 0);
  }
  {
    const { clock, transport, tx } = receiveInvite('udp', { autoTryingMs: 200 });
    clock.advance(150);
    tx.respond(makeResponse(tx.request, 183, 'a'));
    clock.advance(1000);
    assert.deepEqual(transport.sent.map((s) => s.kind === 'response' && s.msg.status), [183]);
  }
  {
    const { clock, transport } = receiveInvite('udp', { autoTryingMs: 0 });
    clock.advance(10_000);
    assert.equal(transport.sent.length, 0);
    assert.equal(clock.pending, 0);
  }
});

test('Proceeding: provisional responses sent; a retransmitted INVITE re-sends the last one and is not passed up', () => {
  const { clock, transport, layer, tu, tx, invite } = receiveInvite();
  // Before any provisional: a retransmission gets nothing.
  layer.receive(inbound(invite));
  assert.equal(transport.sent.length, 0);
  tx.respond(makeResponse(invite, 100));
  tx.respond(makeResponse(invite, 180, 'uas'));
  clock.advance(500);
  // The retransmission arrives from a new NAT port: the answer goes where it came from.
  layer.receive(inbound(invite, 'udp', 40000));
  assert.deepEqual(transport.sent.map((s) => s.kind === 'response' && s.msg.status), [100, 180, 180]);
  const last = transport.sent[2];
  assert.ok(last.kind === 'response');
  assert.equal(last.inbound.flow.remote.port, 40000);
  assert.equal(tu.requests.length, 1);
  assert.equal(tx.state, 'Proceeding');
  assert.equal(clock.pending, 0, 'no timers in Proceeding (auto 100 disabled here)');
});

test('Proceeding → Accepted on 2xx (RFC 6026): INVITE retransmissions absorbed, ACKs to the TU, 2xx from TU sent, Timer L', () => {
  const { clock, transport, layer, tu, tx, invite } = receiveInvite();
  clock.advance(100);
  const ok = makeResponse(invite, 200, 'uas');
  tx.respond(ok);
  assert.equal(tx.state, 'Accepted');
  assert.deepEqual(transport.times(200), [100]);
  // Retransmitted INVITE: absorbed, nothing sent, not passed up.
  layer.receive(inbound(invite));
  assert.equal(transport.sent.length, 1);
  assert.equal(tu.requests.length, 1);
  // The ACK for the 2xx (new branch, RFC 3261 §13.2.2.4) and one that reuses the INVITE branch: both go to the TU.
  const ackNewBranch = makeAck(invite, ok, { branch: 'z9hG4bKack2xx' });
  const ackSameBranch = makeAck(invite, ok);
  layer.receive(inbound(ackNewBranch));
  layer.receive(inbound(ackSameBranch));
  assert.deepEqual(tu.strayAcks.map((i) => i.message), [ackNewBranch, ackSameBranch]);
  assert.equal(tx.state, 'Accepted');
  // 2xx retransmissions (or other forks' 2xx) from the TU are sent; 1xx and non-2xx are ignored.
  clock.advance(500);
  const ok2 = makeResponse(invite, 200, 'uas');
  tx.respond(ok2);
  tx.respond(makeResponse(invite, 180, 'uas'));
  tx.respond(makeResponse(invite, 486, 'uas'));
  assert.deepEqual(transport.times(200), [100, 600]);
  assert.equal(transport.sent.length, 2);
  assert.equal(tx.lastResponse, ok2);
  // No retransmission by the transaction itself.
  clock.advance(31_499);
  assert.deepEqual(transport.times(200), [100, 600]);
  assert.equal(tx.state, 'Accepted');
  clock.advance(1); // Timer L = 64*T1 from t=100
  assert.equal(tx.state, 'Terminated');
  assert.equal(layer.counts().server, 0);
  assert.equal(clock.pending, 0);
  assert.equal(tu.errors.length, 0);
  // After Timer L an ACK matches nothing → TU.
  layer.receive(inbound(ackSameBranch));
  assert.equal(tu.strayAcks.length, 3);
});

test('Proceeding → Completed on 300-699 (unreliable): Timer G 500, 1000, 2000, 4000, 4000 …; Timer H → Terminated, TU told', () => {
  const { clock, transport, layer, tu, tx, invite } = receiveInvite();
  tx.respond(makeResponse(invite, 180, 'uas'));
  tx.respond(makeResponse(invite, 486, 'uas'));
  assert.equal(tx.state, 'Completed');
  clock.advance(31_999);
  assert.deepEqual(transport.times(486), [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
  assert.equal(tx.state, 'Completed');
  clock.advance(1);
  assert.equal(tx.state, 'Terminated');
  assert.deepEqual(tu.errors.map((e) => [e.tx, e.reason]), [[tx, 'timeout']]);
  assert.equal(layer.counts().server, 0);
  assert.equal(clock.pending, 0);
});

test('Completed: a retransmitted INVITE re-sends the final; further TU responses ignored', () => {
  const { clock, transport, layer, tu, tx, invite } = receiveInvite();
  const final = makeResponse(invite, 404, 'uas');
  tx.respond(final);
  clock.advance(100);
  layer.receive(inbound(invite));
  tx.respond(makeResponse(invite, 500, 'uas'));
  tx.respond(makeResponse(invite, 200, 'uas'));
  tx.respond(makeResponse(invite, 180, 'uas'));
  assert.deepEqual(transport.sent.map((s) => s.kind === 'response' && [s.at, s.msg.status]), [
    [0, 404],
    [100, 404],
  ]);
  assert.equal(tx.lastResponse, final);
  assert.equal(tu.requests.length, 1);
});

test('Completed → Confirmed on ACK: Timer G stops, ACK retransmissions absorbed, Timer I = T4 → Terminated', () => {
  const { clock, transport, layer, tu, tx, invite } = receiveInvite();
  const final = makeResponse(invite, 486, 'uas');
  tx.respond(final);
  clock.advance(1600); // G fired at 500 and 1500
  const ack = makeAck(invite, final);
  layer.receive(inbound(ack));
  assert.equal(tx.state, 'Confirmed');
  layer.receive(inbound(ack));
  layer.receive(inbound(invite)); // a late INVITE retransmission is absorbed too
  assert.equal(tu.strayAcks.length, 0);
  clock.advance(4999);
  assert.deepEqual(transport.times(486), [0, 500, 1500]);
  assert.equal(tx.state, 'Confirmed');
  clock.advance(1);
  assert.equal(tx.state, 'Terminated');
  assert.equal(layer.counts().server, 0);
  assert.equal(tu.errors.length, 0);
  assert.equal(clock.pending, 0);
  tx.respond(makeResponse(invite, 500, 'uas'));
  assert.deepEqual(transport.times(486), [0, 500, 1500]);
  assert.equal(transport.sent.length, 3);
});

test('reliable: no Timer G, Timer H still 64*T1; ACK → Confirmed → Terminated at once (Timer I = 0)', () => {
  {
    const { clock, transport, tu, tx, invite } = receiveInvite('tcp');
    tx.respond(makeResponse(invite, 603, 'uas'));
    clock.advance(31_999);
    assert.deepEqual(transport.times(603), [0]);
    clock.advance(1);
    assert.equal(tx.state, 'Terminated');
    assert.deepEqual(tu.errors.map((e) => e.reason), ['timeout']);
  }
  {
    const { clock, layer, tx, invite } = receiveInvite('tcp');
    const final = makeResponse(invite, 603, 'uas');
    tx.respond(final);
    layer.receive(inbound(makeAck(invite, final), 'tcp'));
    assert.equal(tx.state, 'Terminated');
    assert.equal(layer.counts().server, 0);
    assert.equal(clock.pending, 0);
  }
});

test('ACK while still Proceeding is absorbed', () => {
  const { layer, tu, tx, invite } = receiveInvite();
  tx.respond(makeResponse(invite, 180, 'uas'));
  layer.receive(inbound(makeAck(invite, makeResponse(invite, 486, 'uas'))));
  assert.equal(tx.state, 'Proceeding');
  assert.equal(tu.strayAcks.length, 0);
});

test('invalid statuses are ignored', () => {
  const { transport, tx, invite } = receiveInvite();
  tx.respond(makeResponse(invite, 99));
  tx.respond(makeResponse(invite, 700));
  tx.respond(makeResponse(invite, 180.5));
  assert.equal(transport.sent.length, 0);
  assert.equal(tx.state, 'Proceeding');
});

test('transport error in Proceeding (RFC 6026): TU informed once, transaction kept, retransmissions absorbed', () => {
  const { layer, transport, tu, tx, invite } = receiveInvite();
  transport.failWhen = () => true;
  tx.respond(makeResponse(invite, 180, 'uas'));
  assert.deepEqual(tu.errors.map((e) => e.reason), ['transport']);
  assert.equal(tx.state, 'Proceeding');
  layer.receive(inbound(invite));
  assert.equal(tu.requests.length, 1, 'the retransmission is not a new request');
  assert.deepEqual(tu.errors.map((e) => e.reason), ['transport'], 'reported once');
  transport.failWhen = undefined;
  tx.respond(makeResponse(invite, 200, 'uas'));
  assert.equal(tx.state, 'Accepted');
});

test('transport error on a 2xx (RFC 6026): Accepted kept until Timer L', () => {
  const { clock, layer, transport, tu, tx, invite } = receiveInvite();
  transport.failWhen = () => true;
  tx.respond(makeResponse(invite, 200, 'uas'));
  assert.equal(tx.state, 'Accepted');
  assert.deepEqual(tu.errors.map((e) => e.reason), ['transport']);
  layer.receive(inbound(invite));
  assert.equal(tu.requests.length, 1);
  clock.advance(32_000);
  assert.equal(tx.state, 'Terminated');
  assert.equal(clock.pending, 0);
});

test('transport error in Completed: TU told once, Timer G stops, Timer H ends the transaction silently', () => {
  const { clock, transport, layer, tu, tx, invite } = receiveInvite();
  tx.respond(makeResponse(invite, 486, 'uas'));
  clock.advance(500);
  transport.failWhen = () => true;
  clock.advance(1000); // G at 1500 fails
  assert.deepEqual(tu.errors.map((e) => e.reason), ['transport']);
  assert.equal(tx.state, 'Completed');
  layer.receive(inbound(invite)); // answered again (fails again, not reported again)
  clock.advance(30_499);
  assert.equal(tx.state, 'Completed');
  clock.advance(1);
  assert.deepEqual(transport.times(486), [0, 500, 1500, 1500]);
  assert.equal(tx.state, 'Terminated');
  assert.deepEqual(tu.errors.map((e) => e.reason), ['transport']);
  assert.equal(layer.counts().server, 0);
  assert.equal(clock.pending, 0);
});

test('RFC 2543 INVITE (no magic cookie): retransmission matched, ACK matched by the response To tag', () => {
  const { clock, layer, transport, tu, tx, invite } = receiveInvite('udp', { branch: 'legacy42' });
  layer.receive(inbound(makeRequest('INVITE', { branch: 'legacy42', extraVia: ['SIP/2.0/UDP 198.51.100.50;branch=z9hG4bKprev'] })));
  assert.equal(tu.requests.length, 1);
  const final = makeResponse(invite, 480, 'srvtag');
  tx.respond(final);
  // An ACK whose To tag is not the one we sent does not match: it goes to the TU.
  layer.receive(inbound(makeAck(invite, makeResponse(invite, 480, 'othertag'))));
  assert.equal(tx.state, 'Completed');
  assert.equal(tu.strayAcks.length, 1);
  layer.receive(inbound(makeAck(invite, final)));
  assert.equal(tx.state, 'Confirmed');
  clock.advance(5000);
  assert.equal(tx.state, 'Terminated');
  assert.ok(transport.times(480).length >= 1);
});

test('CANCEL: own non-INVITE transaction; findInviteServerTransaction returns the INVITE (§9.2)', () => {
  const { layer, tu, tx, invite } = receiveInvite();
  const cancel = makeRequest('CANCEL', { branch: BRANCH, extraVia: ['SIP/2.0/UDP 198.51.100.50;branch=z9hG4bKprev'] });
  layer.receive(inbound(cancel));
  assert.equal(tu.requests.length, 2);
  const cancelTx: ServerTransaction = tu.requests[1];
  assert.equal(cancelTx.kind, 'non-INVITE');
  assert.notEqual(cancelTx.id, tx.id);
  assert.equal(layer.findInviteServerTransaction(cancel), tx);
  assert.deepEqual(layer.counts(), { client: 0, server: 2 });
  // Another branch, or sent-by: nothing.
  assert.equal(layer.findInviteServerTransaction(makeRequest('CANCEL', { branch: 'z9hG4bKother' })), undefined);
  assert.equal(layer.findInviteServerTransaction(makeRequest('CANCEL', { branch: BRANCH, sentBy: '192.0.2.77:5060' })), undefined);
  // The INVITE's transaction is found in any live state (here Completed after the 487).
  tx.respond(makeResponse(invite, 487, 'uas'));
  assert.equal(layer.findInviteServerTransaction(cancel), tx);
  // A non-INVITE transaction with the same branch is never returned.
  const h2 = receiveInvite();
  h2.layer.receive(inbound(makeRequest('OPTIONS', { branch: 'z9hG4bKopt' })));
  assert.equal(h2.layer.findInviteServerTransaction(makeRequest('CANCEL', { branch: 'z9hG4bKopt' })), undefined);
  assert.equal(h2.layer.findInviteServerTransaction(makeRequest('CANCEL', { via: '???' })), undefined);
});

test('CANCEL lookup for RFC 2543 INVITEs also checks the To tag', () => {
  const { layer, tx } = receiveInvite('udp', { branch: 'legacy7' });
  assert.equal(layer.findInviteServerTransaction(makeRequest('CANCEL', { branch: 'legacy7' })), tx);
  assert.equal(layer.findInviteServerTransaction(makeRequest('CANCEL', { branch: 'legacy7', toTag: 'zzz' })), undefined);
});
