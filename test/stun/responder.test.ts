/** The Binding responder for UDP SIP sockets (RFC 8489 §6.3, RFC 5626 §4.4.2). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  StunAttr,
  StunMethod,
  decodeStun,
  encodeStun,
  findAttribute,
  readErrorCode,
  readSoftware,
  readUnknownAttributes,
  readXorMappedAddress,
  softwareAttribute,
  usernameAttribute,
  verifyFingerprint,
  type DecodedStunMessage,
  type StunAttribute,
} from '../../src/stun/message.js';
import { stunBindingResponse } from '../../src/stun/responder.js';
import { createBindingRequest } from '../../src/stun/client.js';

const TID = Buffer.from('a1a2a3a4a5a6a7a8a9aaabac', 'hex');
const SOURCE = { address: '203.0.113.45', port: 40123 };

function request(attributes: StunAttribute[] = [], opts: { fingerprint?: boolean; cls?: 'request' | 'indication' | 'success'; method?: number } = {}) {
  return encodeStun(
    { method: opts.method ?? StunMethod.Binding, class: opts.cls ?? 'request', transactionId: TID, attributes },
    { fingerprint: opts.fingerprint },
  );
}

function decoded(buf: Buffer | undefined): DecodedStunMessage {
  assert.ok(buf, 'expected a response');
  const r = decodeStun(buf);
  assert.ok(r.ok, 'response decodes');
  return r.message;
}

test('Binding request → success with XOR-MAPPED-ADDRESS of the source, same transaction id', () => {
  const m = decoded(stunBindingResponse(request(), SOURCE));
  assert.equal(m.method, StunMethod.Binding);
  assert.equal(m.class, 'success');
  assert.deepEqual(m.transactionId, TID);
  assert.deepEqual(readXorMappedAddress(m), { ok: true, value: { family: 'IPv4', ...SOURCE } });
  assert.equal(m.fingerprintOffset, undefined, 'no FINGERPRINT when the request had none');
  assert.equal(findAttribute(m, StunAttr.SOFTWARE), undefined);
});

test('FINGERPRINT and SOFTWARE in the response', () => {
  const m = decoded(stunBindingResponse(request([], { fingerprint: true }), SOURCE, { software: 'sipedge test' }));
  assert.ok(verifyFingerprint(m).ok);
  assert.deepEqual(readSoftware(m), { ok: true, value: 'sipedge test' });
  // A request from our own client (FINGERPRINT by default) round trips.
  const { transactionId, packet } = createBindingRequest({ software: 'probe' });
  const r = decoded(stunBindingResponse(packet, SOURCE));
  assert.deepEqual(r.transactionId, transactionId);
  assert.ok(verifyFingerprint(r).ok);
});

test('IPv6 and IPv4-mapped sources', () => {
  const v6 = decoded(stunBindingResponse(request(), { address: '2001:db8::42', port: 5060 }));
  assert.deepEqual(readXorMappedAddress(v6), { ok: true, value: { family: 'IPv6', address: '2001:db8::42', port: 5060 } });
  const mapped = decoded(stunBindingResponse(request(), { address: '::ffff:198.51.100.20', port: 5062 }));
  assert.deepEqual(readXorMappedAddress(mapped), { ok: true, value: { family: 'IPv4', address: '198.51.100.20', port: 5062 } });
});

test('unknown comprehension-required attributes → 420 with UNKNOWN-ATTRIBUTES', () => {
  const req = request(
    [
      { type: 0x0024, value: Buffer.from('6e0001ff', 'hex') }, // ICE PRIORITY: not ours
      { type: 0x8029, value: Buffer.alloc(8) }, // ICE-CONTROLLED: comprehension-optional, ignored
      { type: 0x7abc, value: Buffer.alloc(0) },
      { type: 0x0024, value: Buffer.from('00000001', 'hex') },
      usernameAttribute('known'),
    ],
    { fingerprint: true },
  );
  const m = decoded(stunBindingResponse(req, SOURCE, { software: 'sw' }));
  assert.equal(m.class, 'error');
  assert.deepEqual(m.transactionId, TID);
  assert.deepEqual(readErrorCode(m), { ok: true, value: { code: 420, reason: 'Unknown Attribute' } });
  assert.deepEqual(readUnknownAttributes(m), { ok: true, value: [0x0024, 0x7abc] });
  assert.equal(findAttribute(m, StunAttr.XOR_MAPPED_ADDRESS), undefined);
  assert.ok(verifyFingerprint(m).ok);
});

test('comprehension-optional unknown attributes and credentials are tolerated', () => {
  const req = encodeStun(
    { method: StunMethod.Binding, class: 'request', transactionId: TID, attributes: [softwareAttribute('x'), { type: 0xc001, value: Buffer.alloc(3) }, usernameAttribute('u')] },
    { integrityKey: Buffer.from('pw'), fingerprint: true },
  );
  assert.equal(decoded(stunBindingResponse(req, SOURCE)).class, 'success');
});

test('nothing to send for indications, responses, other methods, bad fingerprints and junk', () => {
  assert.equal(stunBindingResponse(request([], { cls: 'indication' }), SOURCE), undefined);
  assert.equal(stunBindingResponse(request([], { cls: 'success' }), SOURCE), undefined);
  assert.equal(stunBindingResponse(request([], { method: 0x003 }), SOURCE), undefined);
  const badFp = request([], { fingerprint: true });
  badFp[badFp.length - 1] ^= 0xff;
  assert.equal(stunBindingResponse(badFp, SOURCE), undefined);
  assert.equal(stunBindingResponse(Buffer.from('REGISTER sip:x SIP/2.0\r\n\r\n'), SOURCE), undefined);
  assert.equal(stunBindingResponse(Buffer.from('\r\n\r\n'), SOURCE), undefined);
  assert.equal(stunBindingResponse(Buffer.alloc(0), SOURCE), undefined);
  assert.equal(stunBindingResponse(request([softwareAttribute('abcdef')]).subarray(0, 26), SOURCE), undefined);
  assert.equal(stunBindingResponse(request(), { address: 'bogus', port: 1 }), undefined);
  assert.equal(stunBindingResponse(request(), { address: '192.0.2.1', port: 70000 }), undefined);
});
