/** STUN codec edge cases (RFC 8489 §5, §14) and decoder fuzzing: wire input never throws. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  StunAttr,
  StunMethod,
  crc32,
  crc32Portable,
  decodeMessageType,
  decodeStun,
  encodeMessageType,
  encodeStun,
  errorCodeAttribute,
  isStunPacket,
  mappedAddressAttribute,
  readErrorCode,
  readMappedAddress,
  readSoftware,
  readUnknownAttributes,
  readUsername,
  readXorMappedAddress,
  softwareAttribute,
  unknownAttributesAttribute,
  unknownComprehensionRequired,
  usernameAttribute,
  verifyFingerprint,
  verifyIntegrity,
  xorMappedAddressAttribute,
  type StunClass,
} from '../../src/stun/message.js';
import { stunBindingResponse } from '../../src/stun/responder.js';
import { judgeBindingResponse } from '../../src/stun/client.js';

const TID = Buffer.from('0102030405060708090a0b0c', 'hex');

function binding(cls: StunClass, attributes = [softwareAttribute('t')]) {
  return { method: StunMethod.Binding, class: cls, transactionId: TID, attributes };
}

test('message type interleaves method and class bits (RFC 8489 §5)', () => {
  assert.equal(encodeMessageType(StunMethod.Binding, 'request'), 0x0001);
  assert.equal(encodeMessageType(StunMethod.Binding, 'indication'), 0x0011);
  assert.equal(encodeMessageType(StunMethod.Binding, 'success'), 0x0101);
  assert.equal(encodeMessageType(StunMethod.Binding, 'error'), 0x0111);
  for (const cls of ['request', 'indication', 'success', 'error'] as const) {
    for (const method of [0x000, 0x001, 0x003, 0x07f, 0x080, 0xabc, 0xfff]) {
      assert.deepEqual(decodeMessageType(encodeMessageType(method, cls)), { method, class: cls });
    }
  }
});

test('CRC-32 is the IEEE one (check value of "123456789")', () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  assert.equal(crc32(Buffer.alloc(0)), 0);
  // The table fallback (Node < 20.15) agrees with the native one.
  const data = randomBytes(1000);
  assert.equal(crc32Portable(Buffer.from('123456789')), 0xcbf43926);
  assert.equal(crc32Portable(data), crc32(data));
});

test('isStunPacket demultiplexes STUN from SIP, CRLF keepalives, RTP and DTLS (RFC 7983)', () => {
  const stun = encodeStun(binding('request'));
  assert.equal(isStunPacket(stun), true);
  assert.equal(isStunPacket(Buffer.from('OPTIONS sip:a@b SIP/2.0\r\n\r\n')), false);
  assert.equal(isStunPacket(Buffer.from('\r\n\r\n')), false);
  const rtp = Buffer.alloc(32);
  rtp[0] = 0x80;
  assert.equal(isStunPacket(rtp), false);
  const dtls = Buffer.alloc(32);
  dtls[0] = 22;
  assert.equal(isStunPacket(dtls), false);
  const noCookie = Buffer.from(stun);
  noCookie[4] = 0;
  assert.equal(isStunPacket(noCookie), false);
  assert.equal(isStunPacket(stun.subarray(0, 19)), false);
});

test('decode errors carry stable codes and offsets', () => {
  const good = encodeStun(binding('request'), { fingerprint: true });
  const cases: Array<[string, Buffer, string]> = [
    ['short', good.subarray(0, 19), 'TOO_SHORT'],
    ['top bits', Buffer.concat([Buffer.from([0x40]), good.subarray(1)]), 'NOT_STUN'],
    ['cookie', (() => { const b = Buffer.from(good); b[7] ^= 1; return b; })(), 'BAD_COOKIE'],
    ['length not /4', (() => { const b = Buffer.from(good); b.writeUInt16BE(good.length - 20 - 2, 2); return b; })(), 'BAD_LENGTH'],
    ['length mismatch', Buffer.concat([good, Buffer.alloc(4)]), 'LENGTH_MISMATCH'],
    ['attr overrun', (() => { const b = Buffer.from(good); b.writeUInt16BE(200, 22); return b; })(), 'ATTRIBUTE_TRUNCATED'],
  ];
  for (const [name, buf, code] of cases) {
    const r = decodeStun(buf);
    assert.equal(r.ok, false, name);
    assert.equal(!r.ok && r.code, code, name);
    assert.equal(typeof (!r.ok && r.offset), 'number', name);
  }
  // FINGERPRINT followed by another attribute.
  const fpNotLast = Buffer.concat([good, Buffer.from('80220000', 'hex')]);
  fpNotLast.writeUInt16BE(fpNotLast.length - 20, 2);
  assert.equal((decodeStun(fpNotLast) as { code?: string }).code, 'BAD_FINGERPRINT');
  // MESSAGE-INTEGRITY with a wrong length (4 octets instead of 20).
  const raw = Buffer.from('000100080000000000000000000000000000000000080004deadbeef', 'hex');
  raw.writeUInt32BE(0x2112a442, 4);
  assert.equal((decodeStun(raw) as { code?: string }).code, 'BAD_INTEGRITY');
});

test('attributes after MESSAGE-INTEGRITY are ignored except MESSAGE-INTEGRITY-SHA256 and FINGERPRINT (RFC 8489 §14.5)', () => {
  const key = Buffer.from('secret');
  const signed = encodeStun(binding('request'), { integrityKey: key });
  // Append a SOFTWARE after MESSAGE-INTEGRITY, fix the length.
  const extra = Buffer.concat([signed, Buffer.from('8022000161000000', 'hex')]);
  extra.writeUInt16BE(extra.length - 20, 2);
  const r = decodeStun(extra);
  assert.ok(r.ok);
  assert.equal(r.message.ignoredAfterIntegrity, 1);
  assert.deepEqual(r.message.attributes.map((a) => a.type), [StunAttr.SOFTWARE, StunAttr.MESSAGE_INTEGRITY]);
  assert.deepEqual(readSoftware(r.message), { ok: true, value: 't' });
  assert.ok(verifyIntegrity(r.message, key).ok, 'integrity covers only what precedes it');
});

test('encodeStun recomputes integrity and fingerprint instead of copying supplied ones', () => {
  const stale = [{ type: StunAttr.MESSAGE_INTEGRITY, value: Buffer.alloc(20) }, { type: StunAttr.FINGERPRINT, value: Buffer.alloc(4) }];
  const plain = decodeStun(encodeStun(binding('request', stale)));
  assert.ok(plain.ok);
  assert.deepEqual(plain.message.attributes, []);
  const signed = encodeStun(binding('request', stale), { integrityKey: Buffer.from('k'), fingerprint: true });
  assert.ok(verifyIntegrity(signed, Buffer.from('k')).ok);
  assert.ok(verifyFingerprint(signed).ok);
});

test('attribute builders and readers round trip', () => {
  const msg = encodeStun(
    {
      method: StunMethod.Binding,
      class: 'error',
      transactionId: TID,
      attributes: [
        errorCodeAttribute(420),
        unknownAttributesAttribute([0x0024, 0x7fff, 0x0003]),
        xorMappedAddressAttribute({ address: '::ffff:198.51.100.7', port: 5060 }, TID),
        mappedAddressAttribute({ address: '2001:db8::1', port: 1 }),
        usernameAttribute('alice:bob'),
        softwareAttribute('x'.repeat(300)),
      ],
    },
    { fingerprint: true },
  );
  const r = decodeStun(msg);
  assert.ok(r.ok);
  const m = r.message;
  assert.deepEqual(readErrorCode(m), { ok: true, value: { code: 420, reason: 'Unknown Attribute' } });
  assert.deepEqual(readUnknownAttributes(m), { ok: true, value: [0x0024, 0x7fff, 0x0003] });
  assert.deepEqual(readXorMappedAddress(m), { ok: true, value: { family: 'IPv4', address: '198.51.100.7', port: 5060 } });
  assert.deepEqual(readMappedAddress(m), { ok: true, value: { family: 'IPv6', address: '2001:db8::1', port: 1 } });
  assert.deepEqual(readUsername(m), { ok: true, value: 'alice:bob' });
  const sw = readSoftware(m);
  assert.ok(sw.ok && sw.value.length === 127, 'SOFTWARE limited to fewer than 128 characters');
  assert.ok(verifyFingerprint(msg).ok);
  assert.deepEqual(unknownComprehensionRequired(m), []);
  assert.deepEqual(errorCodeAttribute(438, 'Stale Nonce').value, Buffer.from([0, 0, 4, 38, ...Buffer.from('Stale Nonce')]));
  assert.throws(() => errorCodeAttribute(200), RangeError);
  assert.throws(() => xorMappedAddressAttribute({ address: 'not-an-ip', port: 1 }, TID), RangeError);
  assert.throws(() => encodeStun({ ...binding('request'), transactionId: Buffer.alloc(11) }), RangeError);
});

test('readers report missing and malformed attributes as values', () => {
  const m = { method: 1, class: 'success' as const, transactionId: TID, attributes: [
    { type: StunAttr.XOR_MAPPED_ADDRESS, value: Buffer.from('0003000000000000', 'hex') },
    { type: StunAttr.ERROR_CODE, value: Buffer.from('00000763', 'hex') },
    { type: StunAttr.UNKNOWN_ATTRIBUTES, value: Buffer.from('000100', 'hex') },
  ] };
  assert.equal((readXorMappedAddress(m) as { code?: string }).code, 'ATTRIBUTE_MALFORMED');
  assert.equal((readMappedAddress(m) as { code?: string }).code, 'ATTRIBUTE_MISSING');
  assert.equal((readErrorCode(m) as { code?: string }).code, 'ATTRIBUTE_MALFORMED');
  assert.equal((readUnknownAttributes(m) as { code?: string }).code, 'ATTRIBUTE_MALFORMED');
  assert.equal((readSoftware(m) as { code?: string }).code, 'ATTRIBUTE_MISSING');
  assert.equal((verifyFingerprint(Buffer.from('garbage')) as { code?: string }).code, 'NOT_STUN');
  assert.equal((verifyIntegrity(Buffer.alloc(3), Buffer.alloc(1)) as { code?: string }).code, 'NOT_STUN');
});

/** Deterministic PRNG so a failure is reproducible from the printed seed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('fuzz: 2000 random and mutated datagrams never make the decoder, verifiers, responder or client throw', () => {
  const seed = Number(process.env.STUN_FUZZ_SEED ?? 0x5eed);
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const seeds = [
    encodeStun(binding('request'), { fingerprint: true }),
    encodeStun(binding('request'), { integrityKey: Buffer.from('k'), integrity: 'both', fingerprint: true }),
    encodeStun(binding('success', [xorMappedAddressAttribute({ address: '2001:db8::5', port: 9 }, TID)]), { fingerprint: true }),
    encodeStun(binding('error', [errorCodeAttribute(420), unknownAttributesAttribute([1, 2, 3])])),
  ];
  let decoded = 0;
  for (let i = 0; i < 2000; i++) {
    let buf: Buffer;
    const kind = i % 4;
    if (kind === 0) {
      buf = randomBytes(int(120));
      if (buf.length >= 8 && rnd() < 0.7) {
        buf[0] &= 0x03; // look like STUN to the demux
        buf.writeUInt32BE(0x2112a442, 4);
        if (rnd() < 0.5) buf.writeUInt16BE((buf.length - 20) & 0xfffc, 2);
      }
    } else {
      buf = Buffer.from(seeds[int(seeds.length)]);
      const flips = 1 + int(6);
      for (let f = 0; f < flips; f++) {
        const op = int(4);
        if (op === 0 && buf.length) buf[int(buf.length)] = int(256);
        else if (op === 1 && buf.length >= 24) buf.writeUInt16BE(int(0x10000), 20 + (int(buf.length - 21) & ~1)); // attribute header fields
        else if (op === 2) buf = buf.subarray(0, int(buf.length + 1));
        else buf = Buffer.concat([buf, randomBytes(int(12))]);
      }
      if (rnd() < 0.5 && buf.length >= 20) buf.writeUInt16BE((buf.length - 20) & 0xffff, 2);
    }
    const input = buf;
    assert.doesNotThrow(() => {
      const r = decodeStun(input);
      if (r.ok) {
        decoded++;
        verifyIntegrity(r.message, Buffer.from('k'));
        verifyFingerprint(r.message);
        readXorMappedAddress(r.message);
        readMappedAddress(r.message);
        readErrorCode(r.message);
        readUnknownAttributes(r.message);
        readSoftware(r.message);
        readUsername(r.message);
        unknownComprehensionRequired(r.message);
      } else {
        assert.equal(typeof r.code, 'string');
      }
      isStunPacket(input);
      verifyIntegrity(input, Buffer.from('k'));
      const resp = stunBindingResponse(input, { address: '192.0.2.9', port: 5060 });
      if (resp) assert.ok(decodeStun(resp).ok, 'responder output decodes');
      judgeBindingResponse(input, TID);
    }, `seed ${seed} iteration ${i}: ${input.toString('hex')}`);
  }
  assert.ok(decoded > 200, `only ${decoded} of 2000 fuzz inputs decoded; the fuzzer is too destructive`);
});
