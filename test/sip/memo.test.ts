/**
 * Memoized parsers (src/sip/memo.ts and the `…Shared` parsers): same text → same shared result,
 * equal to a fresh parse; failures are not remembered; the tables stay bounded. Also the pooled
 * identifiers of src/sip/ids.ts: unique and well-formed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MEMO_MAX_KEY, ParseMemo } from '../../src/sip/memo.js';
import { parseVia, parseViaShared } from '../../src/sip/via.js';
import { parseNameAddr, parseNameAddrShared, tagParam } from '../../src/sip/nameaddr.js';
import { parseUri, parseUriShared } from '../../src/sip/uri.js';
import { generateBranch, generateCallId, generateTag, randomOctets } from '../../src/sip/ids.js';
import { canonicalHeaderKey } from '../../src/sip/headers.js';

test('ParseMemo empties itself when full and ignores over-long keys', () => {
  const m = new ParseMemo<number>(3);
  m.set('a', 1);
  m.set('b', 2);
  m.set('c', 3);
  assert.equal(m.size, 3);
  assert.equal(m.get('b'), 2);
  m.set('d', 4);
  assert.equal(m.size, 1, 'emptied, then d');
  assert.equal(m.get('a'), undefined);
  assert.equal(m.get('d'), 4);
  m.set('x'.repeat(MEMO_MAX_KEY + 1), 5);
  assert.equal(m.get('x'.repeat(MEMO_MAX_KEY + 1)), undefined);
});

test('parseViaShared: the same object for the same text, equal to parseVia', () => {
  const text = 'SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-memo-1;rport;received=198.51.100.7';
  const a = parseViaShared(text);
  const b = parseViaShared(text.slice(0)); // another string with the same characters
  assert.ok(a !== undefined);
  assert.equal(a, b);
  const fresh = parseVia(text);
  assert.ok(fresh.ok);
  assert.deepEqual(a, fresh.value);
  assert.equal(parseViaShared('SIP/2.0/UDP'), undefined, 'no sent-by');
  assert.equal(parseViaShared('SIP/2.0/UDP'), undefined, 'failures are not remembered as successes');
});

test('parseNameAddrShared and tagParam agree with parseNameAddr', () => {
  const text = '"Bob" <sip:bob@example.com;transport=tcp>;tag=a6c85cf';
  const na = parseNameAddrShared(text);
  const fresh = parseNameAddr(text);
  assert.ok(na !== undefined && fresh.ok);
  assert.deepEqual(na, fresh.value);
  assert.equal(parseNameAddrShared(text), na);
  assert.equal(tagParam(text), 'a6c85cf');
  assert.equal(tagParam('<sip:bob@example.com>'), undefined);
  assert.equal(tagParam('<sip:bob@example.com'), undefined, 'unparsable');
  assert.equal(tagParam(undefined), undefined);
  assert.equal(parseNameAddrShared('<sip:bob@example.com'), undefined);
});

test('parseUriShared agrees with parseUri and remembers only successes', () => {
  const text = 'sip:alice@[2001:db8::10]:5070;transport=udp;lr';
  const u = parseUriShared(text);
  const fresh = parseUri(text);
  assert.ok(u !== undefined && fresh.ok);
  assert.deepEqual(u, fresh.value);
  assert.equal(parseUriShared(text), u);
  assert.equal(parseUriShared('sip:'), undefined);
  // Over-long values are parsed (not remembered) and still returned.
  const long = 'sip:' + 'a'.repeat(MEMO_MAX_KEY) + '@example.com';
  assert.equal(parseUriShared(long)?.user, 'a'.repeat(MEMO_MAX_KEY));
});

test('canonicalHeaderKey returns the same interned key for every spelling', () => {
  assert.equal(canonicalHeaderKey('VIA'), 'via');
  assert.equal(canonicalHeaderKey('v'), 'via');
  assert.equal(canonicalHeaderKey('X-Custom-Header'), 'x-custom-header');
  assert.equal(canonicalHeaderKey('__proto__'), '__proto__');
  assert.equal(canonicalHeaderKey('__proto__'), '__proto__', 'cached');
});

test('pooled identifiers are unique and well-formed across pool refills', () => {
  const seen = new Set<string>();
  // 20,000 branches consume 240,000 pool octets: about 59 refills of the 4 KiB pool.
  for (let i = 0; i < 20_000; i++) {
    const b = generateBranch();
    assert.match(b, /^z9hG4bK[0-9a-f]{24}$/);
    assert.ok(!seen.has(b), 'duplicate branch');
    seen.add(b);
  }
  const tags = new Set(Array.from({ length: 5000 }, () => generateTag()));
  assert.equal(tags.size, 5000);
  for (const t of tags) assert.match(t, /^[0-9a-f]{16}$/);
  assert.match(generateCallId('example.com'), /^[0-9a-f]{32}@example\.com$/);
  assert.match(generateCallId(), /^[0-9a-f]{32}$/);
});

test('randomOctets: fresh octets of the asked length; bad lengths throw', () => {
  const ivs = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const b = randomOctets(12);
    assert.equal(b.length, 12);
    ivs.add(b.toString('hex'));
  }
  assert.equal(ivs.size, 2000, 'no repeated IV');
  assert.equal(randomOctets(4096).length, 4096);
  assert.throws(() => randomOctets(0), RangeError);
  assert.throws(() => randomOctets(4097), RangeError);
});
