import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMessage } from '../../src/sip/parse.js';
import { serializeMessage } from '../../src/sip/serialize.js';
import { buildErrorResponse, createResponse, reasonPhrase } from '../../src/sip/response.js';
import { generateBranch, generateCallId, generateTag } from '../../src/sip/ids.js';
import { getHeader, getHeaderValues } from '../../src/sip/headers.js';
import type { SipRequest } from '../../src/sip/message.js';

const INVITE =
  'INVITE sip:bob@biloxi.example.com SIP/2.0\r\n' +
  'v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa, SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKz\r\n' +
  'Via: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKb\r\n' +
  'Max-Forwards: 70\r\n' +
  'To: Bob <sip:bob@biloxi.example.com>\r\n' +
  'f: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n' +
  'Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n' +
  'CSeq: 314159 INVITE\r\n' +
  'Timestamp: 54\r\n' +
  'X-Unknown:   keep  me  \r\n' +
  'Content-Type: application/sdp\r\n' +
  'l: 5\r\n' +
  '\r\n' +
  'v=0\r\n';

function parse(s: string | Buffer): SipRequest {
  const r = parseMessage(typeof s === 'string' ? Buffer.from(s) : s);
  if (!r.ok) assert.fail(`${r.code} ${r.detail}`);
  return r.message as SipRequest;
}

test('serializeMessage round-trips byte for byte for a canonical message', () => {
  const m = parse(INVITE);
  const out = serializeMessage(m).toString('latin1');
  assert.equal(out, INVITE.replace('X-Unknown:   keep  me  ', 'X-Unknown: keep  me'));
});

test('serializeMessage fixes Content-Length, keeping its wire name, or appends it', () => {
  const m = parse(INVITE);
  m.body = Buffer.from('v=0\r\no=x\r\n');
  const s = serializeMessage(m).toString();
  assert.ok(s.includes('\r\nl: 10\r\n'));
  assert.ok(s.endsWith('\r\n\r\nv=0\r\no=x\r\n'));
  m.headers = m.headers.filter((h) => h.key !== 'content-length');
  const t = serializeMessage(m).toString();
  assert.ok(t.includes('\r\nContent-Length: 10\r\n\r\n'));
  // duplicates are dropped
  m.headers.push({ name: 'Content-Length', key: 'content-length', value: '1' }, { name: 'l', key: 'content-length', value: '2' });
  const u = serializeMessage(m).toString();
  assert.equal(u.split('Content-Length').length + u.split('\r\nl:').length, 3);
  assert.deepEqual(getHeaderValues(parse(u), 'content-length'), ['10']);
});

test('serializeMessage writes UTF-8 text and binary bodies', () => {
  const m = parse(INVITE);
  m.headers.push({ name: 'Subject', key: 'subject', value: 'été ✓' });
  m.body = Buffer.from([0, 255, 13, 10, 0]);
  const again = parse(serializeMessage(m));
  assert.equal(getHeader(again, 'subject'), 'été ✓');
  assert.deepEqual([...again.body], [0, 255, 13, 10, 0]);
});

test('createResponse copies Vias, From, To, Call-ID, CSeq per RFC 3261 §8.2.6.1', () => {
  const req = parse(INVITE);
  const r = createResponse(req, 180, undefined, { toTag: 'abc' });
  assert.equal(r.status, 180);
  assert.equal(r.reason, 'Ringing');
  assert.deepEqual(
    r.headers.map((h) => [h.name, h.value]),
    [
      ['v', 'SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa, SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKz'],
      ['Via', 'SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKb'],
      ['f', 'Alice <sip:alice@atlanta.example.com>;tag=1928301774'],
      ['To', 'Bob <sip:bob@biloxi.example.com>;tag=abc'],
      ['Call-ID', 'a84b4c76e66710@pc33.atlanta.example.com'],
      ['CSeq', '314159 INVITE'],
      ['Content-Length', '0'],
    ],
  );
  const again = parseMessage(serializeMessage(r));
  assert.ok(again.ok);
});

test('createResponse: existing To tag kept, Timestamp on 100, extra headers and body', () => {
  const req = parse(INVITE.replace('To: Bob <sip:bob@biloxi.example.com>', 'To: <sip:bob@biloxi.example.com>;tag=old'));
  const r = createResponse(req, 200, 'Fine', {
    toTag: 'new',
    headers: [['Contact', '<sip:bob@192.0.2.4>'], ['Allow', 'INVITE, ACK']],
    body: Buffer.from('v=0\r\n'),
    contentType: 'application/sdp',
  });
  assert.equal(r.reason, 'Fine');
  assert.equal(getHeader(r, 'to'), '<sip:bob@biloxi.example.com>;tag=old');
  assert.equal(getHeader(r, 'timestamp'), undefined);
  assert.deepEqual(r.headers.slice(-4).map((h) => h.key), ['contact', 'allow', 'content-type', 'content-length']);
  assert.equal(getHeader(r, 'content-length'), '5');
  assert.equal(getHeader(createResponse(req, 100), 'timestamp'), '54');
});

test('reasonPhrase', () => {
  assert.equal(reasonPhrase(200), 'OK');
  assert.equal(reasonPhrase(404), 'Not Found');
  assert.equal(reasonPhrase(483), 'Too Many Hops');
  assert.equal(reasonPhrase(505), 'Version Not Supported');
  assert.equal(reasonPhrase(499), 'Client Error');
  assert.equal(reasonPhrase(999), 'Unknown');
});

test('buildErrorResponse', () => {
  const bad = parseMessage(Buffer.from(INVITE.replace('Max-Forwards: 70', 'Max-Forwards: 700')));
  assert.equal(bad.ok, false);
  if (bad.ok) return;
  assert.equal(bad.code, 'BAD_MAX_FORWARDS');
  const r = buildErrorResponse(bad);
  assert.ok(r);
  assert.equal(r.status, 400);
  assert.equal(r.reason, bad.reason);
  assert.match(getHeader(r, 'to') as string, /;tag=[0-9a-f]{16}$/);
  assert.equal(getHeaderValues(r, 'via').length, 3);
  // ACK is never answered
  const ack = parseMessage(Buffer.from(INVITE.replace('INVITE sip', 'ACK sip').replace('Max-Forwards: 70', 'Max-Forwards: x')));
  assert.ok(!ack.ok && ack.method === 'ACK' && buildErrorResponse(ack) === undefined);
  // responses are never answered
  const resp = parseMessage(Buffer.from('SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\nMax-Forwards: x\r\n\r\n'));
  assert.ok(!resp.ok && resp.kind === 'response' && buildErrorResponse(resp) === undefined);
  // missing Call-ID: still answered (RFC 4475 §3.3.1), with the headers that are there
  const nocid = parseMessage(Buffer.from(INVITE.replace('Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n', '')));
  assert.ok(!nocid.ok && nocid.code === 'MISSING_HEADER');
  const nr = buildErrorResponse(nocid);
  assert.ok(nr);
  assert.equal(nr.status, 400);
  assert.equal(getHeader(nr, 'call-id'), undefined);
  assert.equal(getHeaderValues(nr, 'via').length, 3);
  // missing Via: cannot be routed back
  const novia = parseMessage(Buffer.from(INVITE.replace(/(Via|v): [^\r]*\r\n/g, '')));
  assert.ok(!novia.ok && buildErrorResponse(novia) === undefined);
});

test('ids: format, uniqueness', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 5000; i++) {
    const b = generateBranch();
    assert.match(b, /^z9hG4bK[0-9a-f]{24}$/);
    seen.add(b);
  }
  assert.equal(seen.size, 5000);
  assert.match(generateTag(), /^[0-9a-f]{16}$/);
  assert.match(generateCallId(), /^[0-9a-f]{32}$/);
  assert.match(generateCallId('203.0.113.10'), /^[0-9a-f]{32}@203\.0\.113\.10$/);
});
