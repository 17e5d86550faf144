import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  appendHeader,
  canonicalHeaderKey,
  cloneMessage,
  getHeader,
  getHeaderValues,
  hasHeader,
  prependHeader,
  removeFirstHeaderValue,
  removeHeader,
  replaceFirstHeaderValue,
  setHeader,
  splitHeaderList,
} from '../../src/sip/headers.js';
import { parseMessage } from '../../src/sip/parse.js';
import type { SipMessage, SipRequest } from '../../src/sip/message.js';

function msg(lines: string[], body = ''): SipRequest {
  const text = ['OPTIONS sip:a@example.com SIP/2.0', ...lines].join('\r\n') + '\r\n\r\n' + body;
  const r = parseMessage(Buffer.from(text));
  if (!r.ok) assert.fail(`${r.code} ${r.detail}`);
  return r.message as SipRequest;
}
const BASE = [
  'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1, SIP/2.0/TCP 192.0.2.2;branch=z9hG4bK2',
  'v: SIP/2.0/UDP 192.0.2.3;branch=z9hG4bK3',
  'From: "Doe, John" <sip:john@example.com>;tag=1',
  'To: <sip:a@example.com>',
  'Call-ID: x@y',
  'CSeq: 1 OPTIONS',
  'Route: <sip:p1.example.com;lr>, "a,b" <sip:p2.example.com;lr>',
  'Authorization: Digest username="a", realm="b", nonce="c,d"',
  'Date: Sat, 13 Nov 2010 23:29:00 GMT',
  'Supported: timer,  path ,',
  'X-Custom: a, b',
];
const names = (m: SipMessage) => m.headers.map((h) => h.name);

test('canonicalHeaderKey expands every compact form and lower-cases', () => {
  const compact: Record<string, string> = {
    i: 'call-id', m: 'contact', e: 'content-encoding', l: 'content-length', c: 'content-type', f: 'from',
    s: 'subject', k: 'supported', t: 'to', v: 'via', o: 'event', r: 'refer-to', b: 'referred-by',
    u: 'allow-events', a: 'accept-contact', j: 'reject-contact', d: 'request-disposition',
    x: 'session-expires', y: 'identity', n: 'identity-info',
  };
  for (const [c, full] of Object.entries(compact)) {
    assert.equal(canonicalHeaderKey(c), full);
    assert.equal(canonicalHeaderKey(c.toUpperCase()), full);
  }
  assert.equal(canonicalHeaderKey('Call-ID'), 'call-id');
  assert.equal(canonicalHeaderKey('X-Foo'), 'x-foo');
  assert.equal(canonicalHeaderKey('q'), 'q');
});

test('getHeaderValues splits list headers only, respecting quotes and <>', () => {
  const m = msg(BASE);
  assert.deepEqual(getHeaderValues(m, 'via'), [
    'SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1',
    'SIP/2.0/TCP 192.0.2.2;branch=z9hG4bK2',
    'SIP/2.0/UDP 192.0.2.3;branch=z9hG4bK3',
  ]);
  assert.deepEqual(getHeaderValues(m, 'V'), getHeaderValues(m, 'via'));
  assert.deepEqual(getHeaderValues(m, 'route'), ['<sip:p1.example.com;lr>', '"a,b" <sip:p2.example.com;lr>']);
  assert.deepEqual(getHeaderValues(m, 'authorization'), ['Digest username="a", realm="b", nonce="c,d"']);
  assert.deepEqual(getHeaderValues(m, 'date'), ['Sat, 13 Nov 2010 23:29:00 GMT']);
  assert.deepEqual(getHeaderValues(m, 'from'), ['"Doe, John" <sip:john@example.com>;tag=1']);
  assert.deepEqual(getHeaderValues(m, 'k'), ['timer', 'path']);
  assert.deepEqual(getHeaderValues(m, 'x-custom'), ['a, b']);
  assert.deepEqual(getHeaderValues(m, 'contact'), []);
});

test('splitHeaderList handles escaped quotes and unterminated constructs', () => {
  assert.deepEqual(splitHeaderList('"a \\" , b" <sip:x>, <sip:y,z>'), ['"a \\" , b" <sip:x>', '<sip:y,z>']);
  assert.deepEqual(splitHeaderList(' , a ,, b , '), ['a', 'b']);
  assert.deepEqual(splitHeaderList('"open, quote'), ['"open, quote']);
  assert.deepEqual(splitHeaderList('<open, angle'), ['<open, angle']);
  assert.deepEqual(splitHeaderList(''), []);
});

test('getHeader / hasHeader', () => {
  const m = msg(BASE);
  assert.equal(getHeader(m, 'via'), 'SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1');
  assert.equal(getHeader(m, 'i'), 'x@y');
  assert.equal(getHeader(m, 'Contact'), undefined);
  assert.equal(hasHeader(m, 'cseq'), true);
  assert.equal(hasHeader(m, 'contact'), false);
});

test('removeHeader removes every line of a key and counts them', () => {
  const m = msg(BASE);
  assert.equal(removeHeader(m, 'via'), 2);
  assert.equal(removeHeader(m, 'via'), 0);
  assert.ok(!names(m).includes('Via') && !names(m).includes('v'));
});

test('setHeader replaces all lines at the first position or appends', () => {
  const m = msg(BASE);
  setHeader(m, 'Via', 'SIP/2.0/UDP 203.0.113.1;branch=z9hG4bKnew');
  assert.deepEqual(getHeaderValues(m, 'via'), ['SIP/2.0/UDP 203.0.113.1;branch=z9hG4bKnew']);
  assert.equal(names(m)[0], 'Via');
  setHeader(m, 'Max-Forwards', '69');
  assert.equal(m.headers[m.headers.length - 1].name, 'Max-Forwards');
  assert.equal(m.headers[m.headers.length - 1].key, 'max-forwards');
});

test('appendHeader / prependHeader', () => {
  const m = msg(BASE);
  prependHeader(m, 'Via', 'SIP/2.0/UDP 203.0.113.1;branch=z9hG4bKtop');
  assert.equal(getHeader(m, 'via'), 'SIP/2.0/UDP 203.0.113.1;branch=z9hG4bKtop');
  assert.equal(m.headers[0].key, 'via');
  prependHeader(m, 'Record-Route', '<sip:203.0.113.1;lr>');
  assert.equal(m.headers[0].name, 'Record-Route'); // none before: very top
  prependHeader(m, 'Route', '<sip:first;lr>');
  const ri = m.headers.findIndex((h) => h.key === 'route');
  assert.equal(m.headers[ri].value, '<sip:first;lr>');
  assert.equal(m.headers[ri + 1].key, 'route');
  appendHeader(m, 'X-Last', '1');
  assert.equal(m.headers[m.headers.length - 1].name, 'X-Last');
});

test('removeFirstHeaderValue cuts only the first element of a combined line', () => {
  const m = msg(BASE);
  assert.equal(removeFirstHeaderValue(m, 'via'), 'SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1');
  assert.equal(m.headers[0].name, 'Via');
  assert.equal(m.headers[0].value, 'SIP/2.0/TCP 192.0.2.2;branch=z9hG4bK2');
  assert.equal(removeFirstHeaderValue(m, 'via'), 'SIP/2.0/TCP 192.0.2.2;branch=z9hG4bK2');
  assert.equal(m.headers[0].name, 'v'); // the emptied line is gone
  assert.equal(removeFirstHeaderValue(m, 'route'), '<sip:p1.example.com;lr>');
  assert.equal(getHeader(m, 'route'), '"a,b" <sip:p2.example.com;lr>');
  // non-list header: the whole line
  assert.equal(removeFirstHeaderValue(m, 'authorization'), 'Digest username="a", realm="b", nonce="c,d"');
  assert.equal(hasHeader(m, 'authorization'), false);
  assert.equal(removeFirstHeaderValue(m, 'contact'), undefined);
});

test('removeFirstHeaderValue keeps the rest of the line byte for byte', () => {
  const m = msg(['Route: <sip:a;lr> ,   <sip:b;lr>;x="1,2" ,<sip:c>', 'Via: SIP/2.0/UDP h', 'From: <sip:f@x>;tag=1', 'To: <sip:t@x>', 'Call-ID: c', 'CSeq: 1 OPTIONS']);
  removeFirstHeaderValue(m, 'route');
  assert.equal(getHeaderValues(m, 'route').length, 2);
  assert.equal(m.headers[0].value, '<sip:b;lr>;x="1,2" ,<sip:c>');
});

test('replaceFirstHeaderValue edits only the first element', () => {
  const m = msg(BASE);
  assert.equal(replaceFirstHeaderValue(m, 'via', 'SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1;received=198.51.100.7'), true);
  assert.equal(
    m.headers[0].value,
    'SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1;received=198.51.100.7, SIP/2.0/TCP 192.0.2.2;branch=z9hG4bK2',
  );
  assert.equal(replaceFirstHeaderValue(m, 'to', '<sip:a@example.com>;tag=9'), true);
  assert.equal(getHeader(m, 'to'), '<sip:a@example.com>;tag=9');
  assert.equal(replaceFirstHeaderValue(m, 'contact', '<sip:x>'), false);
});

test('cloneMessage copies header objects and shares the body', () => {
  const m = msg(BASE.map((l) => l), '');
  const c = cloneMessage(m);
  assert.notEqual(c.headers, m.headers);
  assert.notEqual(c.headers[0], m.headers[0]);
  assert.deepEqual(c.headers, m.headers);
  assert.equal(c.body, m.body);
  assert.equal(c.method, 'OPTIONS');
  c.headers[0].value = 'changed';
  setHeader(c, 'To', '<sip:z@z>');
  assert.notEqual(m.headers[0].value, 'changed');
  assert.equal(getHeader(m, 'to'), '<sip:a@example.com>');
});
