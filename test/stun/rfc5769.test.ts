/**
 * RFC 5769 test vectors (Test Vectors for STUN), §2.1–§2.4, typed in from the RFC's listings and
 * cross-checked against the copies in sancane/rustun (stun-vectors/src/lib.rs), creytiv/re
 * (test/stun.c) and the WebRTC/pion test suites. Every MESSAGE-INTEGRITY and FINGERPRINT value
 * below is also verified by computation, so a mistyped octet fails the test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  StunAttr,
  StunMethod,
  decodeStun,
  encodeStun,
  findAttribute,
  isStunPacket,
  longTermKey,
  readSoftware,
  readUsername,
  readXorMappedAddress,
  verifyFingerprint,
  verifyIntegrity,
  xorMappedAddressAttribute,
  type DecodedStunMessage,
} from '../../src/stun/message.js';

/** Joins RFC-style hex rows ("00 01 00 58  ...") into a Buffer. */
function hex(...rows: string[]): Buffer {
  return Buffer.from(rows.join('').replace(/\s+/g, ''), 'hex');
}

const PASSWORD = Buffer.from('VOkJxbRl1RmTxUk/WvJxBt', 'utf8');
const TID = hex('b7 e7 a7 01 bc 34 d6 86 fa 87 df ae');

// RFC 5769 §2.1 Sample Request — Software "STUN test client", USERNAME "evtj:h6vY" (padded with
// three 0x20), short-term password "VOkJxbRl1RmTxUk/WvJxBt".
const SAMPLE_REQUEST = hex(
  '00 01 00 58', //    Request type and message length
  '21 12 a4 42', //    Magic cookie
  'b7 e7 a7 01', // }
  'bc 34 d6 86', // }  Transaction ID
  'fa 87 df ae', // }
  '80 22 00 10', //    SOFTWARE attribute header
  '53 54 55 4e', // }
  '20 74 65 73', // }  User-agent...
  '74 20 63 6c', // }  ...name
  '69 65 6e 74', // }
  '00 24 00 04', //    PRIORITY attribute header
  '6e 00 01 ff', //    ICE priority value
  '80 29 00 08', //    ICE-CONTROLLED attribute header
  '93 2f f9 b1', // }  Pseudo-random tie breaker...
  '51 26 3b 36', // }   ...for ICE control
  '00 06 00 09', //    USERNAME attribute header
  '65 76 74 6a', // }
  '3a 68 36 76', // }  Username (9 bytes) and padding (3 bytes)
  '59 20 20 20', // }
  '00 08 00 14', //    MESSAGE-INTEGRITY attribute header
  '9a ea a7 0c', // }
  'bf d8 cb 56', // }
  '78 1e f2 b5', // }  HMAC-SHA1 fingerprint
  'b2 d3 f2 49', // }
  'c1 b5 71 a2', // }
  '80 28 00 04', //    FINGERPRINT attribute header
  'e5 7a 3b cf', //    CRC32 fingerprint
);

// RFC 5769 §2.2 Sample IPv4 Response — Software "test vector", mapped 192.0.2.1 port 32853.
const IPV4_RESPONSE = hex(
  '01 01 00 3c', //    Response type and message length
  '21 12 a4 42', //    Magic cookie
  'b7 e7 a7 01', // }
  'bc 34 d6 86', // }  Transaction ID
  'fa 87 df ae', // }
  '80 22 00 0b', //    SOFTWARE attribute header
  '74 65 73 74', // }
  '20 76 65 63', // }  UTF-8 server name
  '74 6f 72 20', // }
  '00 20 00 08', //    XOR-MAPPED-ADDRESS attribute header
  '00 01 a1 47', //    Address family (IPv4) and xor'd mapped port number
  'e1 12 a6 43', //    Xor'd mapped IPv4 address
  '00 08 00 14', //    MESSAGE-INTEGRITY attribute header
  '2b 91 f5 99', // }
  'fd 9e 90 c3', // }
  '8c 74 89 f9', // }  HMAC-SHA1 fingerprint
  '2a f9 ba 53', // }
  'f0 6b e7 d7', // }
  '80 28 00 04', //    FINGERPRINT attribute header
  'c0 7d 4c 96', //    CRC32 fingerprint
);

// RFC 5769 §2.3 Sample IPv6 Response — mapped 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
const IPV6_RESPONSE = hex(
  '01 01 00 48', //    Response type and message length
  '21 12 a4 42', //    Magic cookie
  'b7 e7 a7 01', // }
  'bc 34 d6 86', // }  Transaction ID
  'fa 87 df ae', // }
  '80 22 00 0b', //    SOFTWARE attribute header
  '74 65 73 74', // }
  '20 76 65 63', // }  UTF-8 server name
  '74 6f 72 20', // }
  '00 20 00 14', //    XOR-MAPPED-ADDRESS attribute header
  '00 02 a1 47', //    Address family (IPv6) and xor'd mapped port number
  '01 13 a9 fa', // }
  'a5 d3 f1 79', // }  Xor'd mapped IPv6 address
  'bc 25 f4 b5', // }
  'be d2 b9 d9', // }
  '00 08 00 14', //    MESSAGE-INTEGRITY attribute header
  'a3 82 95 4e', // }
  '4b e6 7b f1', // }
  '17 84 c9 7c', // }  HMAC-SHA1 fingerprint
  '82 92 c2 75', // }
  'bf e3 ed 41', // }
  '80 28 00 04', //    FINGERPRINT attribute header
  'c8 fb 0b 4c', //    CRC32 fingerprint
);

// RFC 5769 §2.4 Sample Request with Long-Term Authentication — USERNAME "マトリックス"
// (U+30DE U+30C8 U+30EA U+30C3 U+30AF U+30B9), password "The\u00adM\u00aatr\u2168" which is
// "TheMatrIX" after SASLprep, NONCE "f//499k954d6OL34oL9FSTvy64sA", REALM "example.org".
const LONG_TERM_REQUEST = hex(
  '00 01 00 60', //    Request type and message length
  '21 12 a4 42', //    Magic cookie
  '78 ad 34 33', // }
  'c6 ad 72 c0', // }  Transaction ID
  '29 da 41 2e', // }
  '00 06 00 12', //    USERNAME attribute header
  'e3 83 9e e3', // }
  '83 88 e3 83', // }
  'aa e3 83 83', // }  Username value (18 bytes) and padding (2 bytes)
  'e3 82 af e3', // }
  '82 b9 00 00', // }
  '00 15 00 1c', //    NONCE attribute header
  '66 2f 2f 34', // }
  '39 39 6b 39', // }
  '35 34 64 36', // }
  '4f 4c 33 34', // }  Nonce value
  '6f 4c 39 46', // }
  '53 54 76 79', // }
  '36 34 73 41', // }
  '00 14 00 0b', //    REALM attribute header
  '65 78 61 6d', // }
  '70 6c 65 2e', // }  Realm value (11 bytes) and padding (1 byte)
  '6f 72 67 00', // }
  '00 08 00 14', //    MESSAGE-INTEGRITY attribute header
  'f6 70 24 65', // }
  '6d d6 4a 3e', // }
  '02 b8 e0 71', // }  HMAC-SHA1 fingerprint
  '2e 85 c9 a2', // }
  '8c a8 96 66', // }
);

function decodeOk(buf: Buffer): DecodedStunMessage {
  const r = decodeStun(buf);
  if (!r.ok) assert.fail(`decode failed: ${r.code} at ${r.offset}: ${r.detail}`);
  return r.message;
}

test('vector sizes match the RFC listings', () => {
  assert.equal(SAMPLE_REQUEST.length, 108);
  assert.equal(IPV4_RESPONSE.length, 80);
  assert.equal(IPV6_RESPONSE.length, 92);
  assert.equal(LONG_TERM_REQUEST.length, 116);
  for (const v of [SAMPLE_REQUEST, IPV4_RESPONSE, IPV6_RESPONSE, LONG_TERM_REQUEST]) assert.ok(isStunPacket(v));
});

test('RFC 5769 §2.1 sample request: fields, integrity, fingerprint', () => {
  const m = decodeOk(SAMPLE_REQUEST);
  assert.equal(m.method, StunMethod.Binding);
  assert.equal(m.class, 'request');
  assert.deepEqual(m.transactionId, TID);
  assert.deepEqual(
    m.attributes.map((a) => a.type),
    [StunAttr.SOFTWARE, 0x0024, 0x8029, StunAttr.USERNAME, StunAttr.MESSAGE_INTEGRITY, StunAttr.FINGERPRINT],
  );
  assert.deepEqual(readSoftware(m), { ok: true, value: 'STUN test client' });
  assert.deepEqual(readUsername(m), { ok: true, value: 'evtj:h6vY' });
  assert.deepEqual(findAttribute(m, 0x0024)?.value, hex('6e 00 01 ff'));
  assert.deepEqual(findAttribute(m, 0x8029)?.value, hex('93 2f f9 b1 51 26 3b 36'));
  assert.equal(m.integrityOffset, 76);
  assert.equal(m.fingerprintOffset, 100);
  assert.deepEqual(verifyIntegrity(SAMPLE_REQUEST, PASSWORD), { ok: true, value: true });
  assert.deepEqual(verifyIntegrity(m, PASSWORD, 'sha1'), { ok: true, value: true });
  assert.deepEqual(verifyFingerprint(SAMPLE_REQUEST), { ok: true, value: true });
  const wrong = verifyIntegrity(SAMPLE_REQUEST, Buffer.from('wrong password'));
  assert.equal(wrong.ok, false);
  assert.equal(!wrong.ok && wrong.code, 'MISMATCH');
  assert.equal((verifyIntegrity(SAMPLE_REQUEST, PASSWORD, 'sha256') as { code?: string }).code, 'ATTRIBUTE_MISSING');
});

test('RFC 5769 §2.1 re-encodes byte for byte (padding 0x20 as in the RFC)', () => {
  const m = decodeOk(SAMPLE_REQUEST);
  const out = encodeStun(m, { integrityKey: PASSWORD, fingerprint: true, paddingByte: 0x20 });
  assert.deepEqual(out, SAMPLE_REQUEST);
  // With RFC 8489's zero padding the integrity changes but still verifies.
  const zero = encodeStun(m, { integrityKey: PASSWORD, fingerprint: true });
  assert.equal(zero.length, SAMPLE_REQUEST.length);
  assert.ok(verifyIntegrity(zero, PASSWORD).ok);
  assert.ok(verifyFingerprint(zero).ok);
});

test('RFC 5769 §2.2 sample IPv4 response: XOR-MAPPED-ADDRESS 192.0.2.1:32853', () => {
  const m = decodeOk(IPV4_RESPONSE);
  assert.equal(m.method, StunMethod.Binding);
  assert.equal(m.class, 'success');
  assert.deepEqual(m.transactionId, TID);
  assert.deepEqual(readSoftware(m), { ok: true, value: 'test vector' });
  assert.deepEqual(readXorMappedAddress(m), { ok: true, value: { family: 'IPv4', address: '192.0.2.1', port: 32853 } });
  assert.ok(verifyIntegrity(IPV4_RESPONSE, PASSWORD).ok);
  assert.ok(verifyFingerprint(IPV4_RESPONSE).ok);
  assert.deepEqual(encodeStun(m, { integrityKey: PASSWORD, fingerprint: true, paddingByte: 0x20 }), IPV4_RESPONSE);
});

test('RFC 5769 §2.3 sample IPv6 response: XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853', () => {
  const m = decodeOk(IPV6_RESPONSE);
  assert.equal(m.class, 'success');
  assert.deepEqual(readSoftware(m), { ok: true, value: 'test vector' });
  assert.deepEqual(readXorMappedAddress(m), {
    ok: true,
    value: { family: 'IPv6', address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 },
  });
  assert.ok(verifyIntegrity(IPV6_RESPONSE, PASSWORD).ok);
  assert.ok(verifyFingerprint(IPV6_RESPONSE).ok);
  assert.deepEqual(encodeStun(m, { integrityKey: PASSWORD, fingerprint: true, paddingByte: 0x20 }), IPV6_RESPONSE);
});

test('XOR-MAPPED-ADDRESS encoding reproduces the RFC 5769 octets', () => {
  assert.deepEqual(xorMappedAddressAttribute({ address: '192.0.2.1', port: 32853 }, TID).value, hex('00 01 a1 47 e1 12 a6 43'));
  assert.deepEqual(
    xorMappedAddressAttribute({ address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 }, TID).value,
    hex('00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9'),
  );
});

test('RFC 5769 §2.4 request with long-term authentication', () => {
  const m = decodeOk(LONG_TERM_REQUEST);
  const username = '\u30de\u30c8\u30ea\u30c3\u30af\u30b9';
  assert.equal(m.class, 'request');
  assert.deepEqual(m.transactionId, hex('78 ad 34 33 c6 ad 72 c0 29 da 41 2e'));
  assert.deepEqual(readUsername(m), { ok: true, value: username });
  assert.equal(findAttribute(m, StunAttr.NONCE)?.value.toString(), 'f//499k954d6OL34oL9FSTvy64sA');
  assert.equal(findAttribute(m, StunAttr.REALM)?.value.toString(), 'example.org');
  assert.equal(m.fingerprintOffset, undefined);
  const key = longTermKey(username, 'example.org', 'TheMatrIX');
  assert.deepEqual(verifyIntegrity(LONG_TERM_REQUEST, key), { ok: true, value: true });
  assert.equal(verifyIntegrity(LONG_TERM_REQUEST, PASSWORD).ok, false);
  assert.equal((verifyFingerprint(LONG_TERM_REQUEST) as { code?: string }).code, 'ATTRIBUTE_MISSING');
  // Zero padding here, so RFC 8489's default encoding reproduces it exactly.
  assert.deepEqual(encodeStun(m, { integrityKey: key }), LONG_TERM_REQUEST);
});

test('MESSAGE-INTEGRITY-SHA256 round trip (alone and after MESSAGE-INTEGRITY)', () => {
  const m = decodeOk(IPV4_RESPONSE);
  for (const integrity of ['sha256', 'both'] as const) {
    const out = encodeStun(m, { integrityKey: PASSWORD, integrity, fingerprint: true });
    const d = decodeOk(out);
    assert.notEqual(d.integritySha256Offset, undefined);
    assert.equal(d.integrityOffset !== undefined, integrity === 'both');
    assert.ok(verifyIntegrity(out, PASSWORD).ok, `${integrity} auto`);
    assert.ok(verifyIntegrity(out, PASSWORD, 'sha256').ok, `${integrity} sha256`);
    if (integrity === 'both') assert.ok(verifyIntegrity(out, PASSWORD, 'sha1').ok);
    assert.equal(verifyIntegrity(out, Buffer.from('x')).ok, false);
    assert.ok(verifyFingerprint(out).ok);
  }
});
