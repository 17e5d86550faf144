import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeBencode, encodeBencode, MAX_DEPTH } from '../../src/media/bencode.js';

const enc = (v: Parameters<typeof encodeBencode>[0]): string => encodeBencode(v).toString('latin1');
const dec = (s: string | Buffer, opts?: Parameters<typeof decodeBencode>[1]) => decodeBencode(typeof s === 'string' ? Buffer.from(s, 'latin1') : s, opts);

describe('bencode', () => {
  it('encodes strings, integers, lists and dictionaries with sorted keys (BEP 3)', () => {
    assert.equal(enc('spam'), '4:spam');
    assert.equal(enc(''), '0:');
    assert.equal(enc(42), 'i42e');
    assert.equal(enc(-3), 'i-3e');
    assert.equal(enc(0), 'i0e');
    assert.equal(enc(12345678901234567890n), 'i12345678901234567890e');
    assert.equal(enc(['spam', 'eggs']), 'l4:spam4:eggse');
    assert.equal(enc({ spam: ['a', 'b'], cow: 'moo' }), 'd3:cow3:moo4:spaml1:a1:bee');
    assert.equal(enc({ b: 1, a: undefined }), 'd1:bi1ee', 'undefined values are skipped');
    assert.equal(enc(true), 'i1e');
    assert.equal(encodeBencode('é').toString('latin1'), '2:\xc3\xa9', 'length in bytes, UTF-8');
    assert.equal(enc(Buffer.from([0, 255])), '2:\x00\xff');
  });

  it('refuses values bencode cannot carry', () => {
    assert.throws(() => encodeBencode(1.5), TypeError);
    assert.throws(() => encodeBencode(null as unknown as string), TypeError);
  });

  it('round-trips an ng offer', () => {
    const msg = {
      command: 'offer',
      'call-id': 'a84b4c76e66710@pc33.example.org',
      'from-tag': '1928301774',
      sdp: 'v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n',
      'received-from': ['IP4', '192.0.2.1'],
      flags: ['strict-source'],
      replace: ['origin', 'session-connection'],
    };
    const r = dec(encodeBencode(msg));
    assert.ok(r.ok);
    assert.deepEqual(r.value, msg);
  });

  it('decodes integers (large ones as bigint) and byte strings', () => {
    assert.deepEqual(dec('i-42e'), { ok: true, value: -42, end: 5 });
    const big = dec('i12345678901234567890e');
    assert.ok(big.ok);
    assert.equal(big.value, 12345678901234567890n);
    const b = dec('3:\x00\x01\x02', { bytes: true });
    assert.ok(b.ok);
    assert.ok(Buffer.isBuffer(b.value));
    assert.deepEqual([...(b.value as Buffer)], [0, 1, 2]);
  });

  it('decodes one value at an offset without requiring the end', () => {
    const r = dec('cookie d6:result2:oke', { start: 7 });
    assert.ok(r.ok);
    assert.deepEqual(r.value, { result: 'ok' });
    const partial = dec('i1ei2e', { whole: false });
    assert.ok(partial.ok);
    assert.equal(partial.end, 3);
  });

  it('reports malformed input as a value with an offset, never throws', () => {
    const bad = ['', 'i', 'i-0e', 'i03e', 'ie', 'i1', '5:abc', '-1:a', '01:a', 'l', 'd', 'd1:a', 'di1ei2ee', 'x', 'i1ei2e', '4294967296:a'];
    for (const s of bad) {
      const r = dec(s);
      assert.equal(r.ok, false, JSON.stringify(s));
      assert.equal(typeof (r as { offset: number }).offset, 'number');
    }
    assert.equal(dec('l'.repeat(MAX_DEPTH + 2) + 'e'.repeat(MAX_DEPTH + 2)).ok, false);
    assert.equal(dec('l'.repeat(10) + 'e'.repeat(10)).ok, true);
  });

  it('a key named __proto__ does not change the prototype', () => {
    const r = dec('d9:__proto__d1:xi1eee');
    assert.ok(r.ok);
    const v = r.value as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(v), Object.prototype);
    assert.deepEqual(Object.keys(v), ['__proto__']);
    assert.equal(({} as Record<string, unknown>).x, undefined);
  });
});
