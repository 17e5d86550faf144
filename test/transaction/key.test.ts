import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cancelTargetKey,
  cancelTargetMatch,
  clientTransactionKey,
  serverTransactionKey,
  serverTransactionMatch,
  toTagOf,
} from '../../src/transaction/key.js';
import { makeAck, makeRequest, makeResponse } from './helpers.js';

test('server key (§17.2.3): magic-cookie branch + sent-by + method', () => {
  const inv = makeRequest('INVITE', { branch: 'z9hG4bKa1' });
  const m = serverTransactionMatch(inv);
  assert.ok(m);
  assert.equal(m.rfc2543, false);
  // A retransmission (even with different received/rport stamping) has the same key.
  const retrans = makeRequest('INVITE', { via: 'SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa1;rport=1234;received=198.51.100.7' });
  assert.equal(serverTransactionKey(retrans), m.key);
  // Host case does not matter.
  assert.equal(
    serverTransactionKey(makeRequest('INVITE', { branch: 'z9hG4bKa1', sentBy: 'UA.Example.ORG:5060' })),
    serverTransactionKey(makeRequest('INVITE', { branch: 'z9hG4bKa1', sentBy: 'ua.example.org:5060' })),
  );
});

test('server key: ACK maps to the INVITE transaction, CANCEL is its own', () => {
  const inv = makeRequest('INVITE', { branch: 'z9hG4bKa1' });
  const ack = makeAck(inv, makeResponse(inv, 486, 'tt'));
  const cancel = makeRequest('CANCEL', { branch: 'z9hG4bKa1' });
  assert.equal(serverTransactionKey(ack), serverTransactionKey(inv));
  assert.notEqual(serverTransactionKey(cancel), serverTransactionKey(inv));
  assert.equal(cancelTargetKey(cancel), serverTransactionKey(inv));
  assert.equal(cancelTargetMatch(cancel)?.rfc2543, false);
});

test('server key: different branch, sent-by or method → different transactions', () => {
  const base = serverTransactionKey(makeRequest('INVITE', { branch: 'z9hG4bKa1' }));
  assert.notEqual(serverTransactionKey(makeRequest('INVITE', { branch: 'z9hG4bKa2' })), base);
  assert.notEqual(serverTransactionKey(makeRequest('INVITE', { branch: 'z9hG4bKa1', sentBy: '192.0.2.11:5060' })), base);
  assert.notEqual(serverTransactionKey(makeRequest('INVITE', { branch: 'z9hG4bKa1', sentBy: '192.0.2.10' })), base);
  assert.notEqual(serverTransactionKey(makeRequest('OPTIONS', { branch: 'z9hG4bKa1' })), base);
});

test('server key: RFC 2543 fallback without the magic cookie', () => {
  const inv = makeRequest('INVITE', { branch: 'abc123' });
  const m = serverTransactionMatch(inv);
  assert.ok(m);
  assert.equal(m.rfc2543, true);
  // Same request again matches.
  assert.equal(serverTransactionKey(makeRequest('INVITE', { branch: 'abc123' })), m.key);
  // received/rport stamping does not break matching.
  assert.equal(serverTransactionKey(makeRequest('INVITE', { via: 'SIP/2.0/UDP 192.0.2.10:5060;branch=abc123;received=198.51.100.9' })), m.key);
  // ACK for the non-2xx (To tag of the response) matches the INVITE key; To tag is checked separately.
  const ack = makeAck(inv, makeResponse(inv, 404, 'srv1'));
  assert.equal(serverTransactionKey(ack), m.key);
  assert.equal(toTagOf(ack), 'srv1');
  // Each of Request-URI, From tag, Call-ID, CSeq number, top Via distinguishes.
  for (const o of [
    { uri: 'sip:other@sip.example.org' },
    { fromTag: 'other' },
    { callId: 'other@192.0.2.10' },
    { cseq: 2 },
    { sentBy: '192.0.2.99:5060' },
    { branch: 'abc124' },
  ]) {
    assert.notEqual(serverTransactionKey(makeRequest('INVITE', { branch: 'abc123', ...o })), m.key, JSON.stringify(o));
  }
  // No branch at all is also RFC 2543.
  const noBranch = makeRequest('INVITE', { via: 'SIP/2.0/UDP 192.0.2.10:5060' });
  assert.equal(serverTransactionMatch(noBranch)?.rfc2543, true);
  // CANCEL (RFC 2543) targets the INVITE key.
  const cancel = makeRequest('CANCEL', { branch: 'abc123' });
  assert.equal(cancelTargetKey(cancel), m.key);
  assert.notEqual(serverTransactionKey(cancel), m.key);
});

test('client key (§17.1.3): top Via branch + CSeq method', () => {
  const inv = makeRequest('INVITE', { branch: 'z9hG4bKc1' });
  const k = clientTransactionKey(inv);
  assert.ok(k);
  assert.equal(clientTransactionKey(makeResponse(inv, 180)), k);
  assert.equal(clientTransactionKey(makeResponse(inv, 200, 'x')), k);
  // CANCEL shares the branch but is a different transaction.
  const cancel = makeRequest('CANCEL', { branch: 'z9hG4bKc1' });
  assert.notEqual(clientTransactionKey(cancel), k);
  assert.equal(clientTransactionKey(makeResponse(cancel, 200)), clientTransactionKey(cancel));
  // ACK (non-2xx) belongs to the INVITE client transaction.
  assert.equal(clientTransactionKey(makeAck(inv, makeResponse(inv, 486, 't'))), k);
  // Different branch: no match.
  assert.notEqual(clientTransactionKey(makeResponse(makeRequest('INVITE', { branch: 'z9hG4bKc2' }), 200)), k);
});

test('keys are undefined when Via/CSeq are missing or broken', () => {
  const noVia = makeRequest('INVITE');
  noVia.headers = noVia.headers.filter((x) => x.key !== 'via');
  assert.equal(serverTransactionKey(noVia), undefined);
  assert.equal(clientTransactionKey(noVia), undefined);
  assert.equal(cancelTargetKey(noVia), undefined);
  const badVia = makeRequest('INVITE', { via: '!!!' });
  assert.equal(serverTransactionKey(badVia), undefined);
  const noBranch = makeRequest('INVITE', { via: 'SIP/2.0/UDP 192.0.2.10:5060' });
  assert.equal(clientTransactionKey(noBranch), undefined);
  const res = makeResponse(makeRequest('INVITE'), 200);
  res.headers = res.headers.filter((x) => x.key !== 'cseq');
  assert.equal(clientTransactionKey(res), undefined);
  const legacyNoCseq = makeRequest('INVITE', { branch: 'legacy' });
  legacyNoCseq.headers = legacyNoCseq.headers.filter((x) => x.key !== 'cseq');
  assert.equal(serverTransactionKey(legacyNoCseq), undefined);
});

test('toTagOf', () => {
  assert.equal(toTagOf(makeRequest('INVITE')), undefined);
  assert.equal(toTagOf(makeRequest('BYE', { toTag: 'abc' })), 'abc');
});
