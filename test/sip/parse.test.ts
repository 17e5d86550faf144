import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseMessage, isValidSipDate } from '../../src/sip/parse.js';
import { getHeader, getHeaderValues } from '../../src/sip/headers.js';
import type { SipErrorCode, SipMessage, SipParseError, SipRequest } from '../../src/sip/message.js';

const HEAD = [
  'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9',
  'Max-Forwards: 70',
  'From: Alice <sip:alice@example.com>;tag=9fxced76sl',
  'To: Bob <sip:bob@example.com>',
  'Call-ID: 3848276298220188511@192.0.2.1',
  'CSeq: 1 INVITE',
];
function build(opts: { start?: string; head?: string[]; extra?: string[]; body?: string; eol?: string } = {}): Buffer {
  const eol = opts.eol ?? '\r\n';
  const body = opts.body ?? '';
  const lines = [opts.start ?? 'INVITE sip:bob@example.com SIP/2.0', ...(opts.head ?? HEAD), ...(opts.extra ?? [])];
  return Buffer.from(lines.join(eol) + eol + eol + body);
}
function ok(buf: Buffer, stream = false): { message: SipMessage; length: number } {
  const r = parseMessage(buf, { stream });
  if (!r.ok) assert.fail(`${r.code}: ${r.detail}`);
  return r;
}
function fails(buf: Buffer, code: SipErrorCode, opts?: Parameters<typeof parseMessage>[1]): SipParseError {
  const r = parseMessage(buf, opts);
  if (r.ok) assert.fail(`expected ${code}, got ok`);
  assert.equal(r.code, code, r.detail);
  return r;
}

test('a plain request and response', () => {
  const { message, length } = ok(build({ extra: ['Content-Length: 4'], body: 'v=0\n' }));
  const m = message as SipRequest;
  assert.equal(m.type, 'request');
  assert.equal(m.method, 'INVITE');
  assert.equal(m.uri, 'sip:bob@example.com');
  assert.equal(m.version, 'SIP/2.0');
  assert.equal(m.body.toString(), 'v=0\n');
  assert.equal(length, build({ extra: ['Content-Length: 4'], body: 'v=0\n' }).length);
  const r = ok(build({ start: 'SIP/2.0 486 Busy Here', extra: ['l: 0'] })).message;
  assert.ok(r.type === 'response' && r.status === 486 && r.reason === 'Busy Here');
  const r2 = ok(build({ start: 'SIP/2.0 180', extra: ['l: 0'] })).message;
  assert.ok(r2.type === 'response' && r2.status === 180 && r2.reason === '');
});

test('leading CRLFs are skipped and counted in length; bare LF line ends accepted', () => {
  const b = Buffer.concat([Buffer.from('\r\n\r\n'), build({ extra: ['l: 0'] })]);
  const r = ok(b);
  assert.equal(r.length, b.length);
  const lf = ok(build({ extra: ['Content-Length: 3'], body: 'abc', eol: '\n' }));
  assert.equal(lf.message.body.toString(), 'abc');
  assert.equal(getHeader(lf.message, 'to'), 'Bob <sip:bob@example.com>');
});

test('header names, folding and unknown headers are kept raw', () => {
  const m = ok(build({ extra: ['X-Foo  :  a  b ', 'Subject: one', '\t two', '   three', 'l: 0'] })).message;
  const h = m.headers.find((x) => x.key === 'x-foo');
  assert.deepEqual(h, { name: 'X-Foo', key: 'x-foo', value: 'a  b' });
  assert.equal(getHeader(m, 'subject'), 'one two three');
  assert.equal(m.headers[m.headers.length - 1].name, 'l');
});

test('datagram: body without Content-Length is the rest, trailing octets after it are ignored', () => {
  assert.equal(ok(build({ body: 'hello' })).message.body.toString(), 'hello');
  const b = build({ extra: ['Content-Length: 2'], body: 'hello' });
  const r = ok(b);
  assert.equal(r.message.body.toString(), 'he');
  assert.equal(r.length, b.length - 3);
  fails(build({ extra: ['Content-Length: 6'], body: 'hello' }), 'CONTENT_LENGTH_MISMATCH');
});

test('stream mode: INCOMPLETE until complete, then one message at a time', () => {
  const one = build({ extra: ['Content-Length: 5'], body: 'hello' });
  const two = Buffer.concat([one, build({ start: 'SIP/2.0 200 OK', extra: ['l: 0'] })]);
  for (let cut = 0; cut < one.length; cut++) {
    const r = parseMessage(one.subarray(0, cut), { stream: true });
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.code, 'INCOMPLETE', `cut at ${cut}`);
  }
  const a = ok(two, true);
  assert.equal(a.length, one.length);
  const b = ok(two.subarray(a.length), true);
  assert.equal(b.message.type, 'response');
  fails(build({ body: '' }), 'MISSING_HEADER', { stream: true });
  fails(Buffer.from('\r\n\r\n'), 'EMPTY', { stream: true });
});

test('limits: TOO_LARGE (413) and TOO_MANY_HEADERS', () => {
  const big = build({ extra: ['Content-Length: 5000'], body: 'x'.repeat(5000) });
  const e = fails(big, 'TOO_LARGE', { maxSize: 1000 });
  assert.equal(e.status, 413);
  const s = fails(big.subarray(0, 500), 'TOO_LARGE', { maxSize: 1000, stream: true });
  assert.equal(s.kind, 'request');
  assert.ok(s.headers && s.headers.length > 5);
  const many = build({ extra: Array.from({ length: 300 }, (_, i) => `X-H${i}: ${i}`) });
  const t = fails(many, 'TOO_MANY_HEADERS');
  assert.equal(t.status, 400);
  const r = parseMessage(many, { maxHeaders: 400 });
  assert.ok(r.ok);
  fails(Buffer.alloc(0), 'EMPTY');
});

test('start line validation', () => {
  fails(build({ start: 'INVITE  sip:bob@example.com SIP/2.0' }), 'BAD_START_LINE');
  fails(build({ start: 'INVITE sip:bob@example.com SIP/2.0 ' }), 'BAD_START_LINE');
  fails(build({ start: 'INVITE sip:bob@example.com' }), 'BAD_START_LINE');
  fails(build({ start: 'INVITE sip:bob@example.com SIP/2' }), 'BAD_START_LINE');
  fails(build({ start: 'INVITE' }), 'BAD_START_LINE');
  fails(build({ start: 'IN<VITE sip:bob@example.com SIP/2.0' }), 'BAD_METHOD');
  fails(build({ start: 'INVITE sip:bob@example.com SIP/2.1' }), 'BAD_VERSION');
  fails(build({ start: 'INVITE sip:bob@ex ample.com SIP/2.0' }), 'BAD_REQUEST_URI');
  fails(build({ start: 'INVITE <sip:bob@example.com> SIP/2.0' }), 'BAD_REQUEST_URI');
  fails(build({ start: 'INVITE sip:bob@example.com?x=y SIP/2.0' }), 'BAD_REQUEST_URI');
  fails(build({ start: 'INVITE sip: SIP/2.0' }), 'BAD_REQUEST_URI');
  for (const sl of ['SIP/2.0 20 OK', 'SIP/2.0 2000 OK', 'SIP/2.0 099 x', 'SIP/2.0 700 x', 'SIP/2.0 OK']) {
    const e = fails(build({ start: sl }), 'BAD_STATUS_CODE');
    assert.equal(e.kind, 'response');
  }
  fails(build({ start: 'SIP/3.0 200 OK' }), 'BAD_VERSION');
  fails(build({ start: 'SIP/2.0' }), 'BAD_START_LINE');
  ok(build({ start: 'sip/2.0 200 OK', extra: ['l: 0'] }));
  // CSeq method must match
  fails(build({ start: 'BYE sip:bob@example.com SIP/2.0' }), 'CSEQ_METHOD_MISMATCH');
});

test('header line validation', () => {
  fails(build({ extra: ['no colon here'] }), 'BAD_HEADER_LINE');
  fails(build({ extra: ['Bad Name: x'] }), 'BAD_HEADER_LINE');
  fails(build({ extra: [': x'] }), 'BAD_HEADER_LINE');
  fails(Buffer.from('INVITE sip:b@h SIP/2.0\r\n folded: x\r\n\r\n'), 'BAD_HEADER_LINE');
  fails(build({ extra: ['X-A: a\rb'] }), 'BAD_HEADER_LINE');
});

test('header value validation, with the 400 context', () => {
  const cases: Array<[string[], SipErrorCode, string[]?]> = [
    [['Max-Forwards: 256'], 'BAD_MAX_FORWARDS', HEAD.filter((h) => !h.startsWith('Max'))],
    [['Max-Forwards: -1'], 'BAD_MAX_FORWARDS', HEAD.filter((h) => !h.startsWith('Max'))],
    [['Max-Forwards: 71'], 'DUPLICATE_HEADER'],
    [['t: <sip:x@y>'], 'DUPLICATE_HEADER'],
    [['Content-Length: 1', 'l: 1'], 'DUPLICATE_HEADER'],
    [['Content-Length: 0x10'], 'BAD_CONTENT_LENGTH'],
    [['Content-Length: '], 'BAD_CONTENT_LENGTH'],
    [['Expires: soon'], 'BAD_EXPIRES'],
    [['Date: Sat, 13 Nov 2010 23:29:00 PST'], 'BAD_DATE'],
    [['Date: Saturday, 13 Nov 2010 23:29:00 GMT'], 'BAD_DATE'],
    [['Content-Type: sdp'], 'BAD_HEADER_VALUE'],
    [['Contact: *, <sip:a@b>'], 'BAD_NAME_ADDR'],
    [['Contact: <sip:a@b>,'], 'BAD_NAME_ADDR'],
    [['Route: <sip:a@b>, *'], 'BAD_NAME_ADDR'],
    [['Record-Route: "x <sip:a@b>'], 'BAD_QUOTED_STRING'],
    [['Via: SIP/2.0/UDP h,'], 'BAD_VIA'],
    [['CSeq: 1'], 'BAD_CSEQ', HEAD.filter((h) => !h.startsWith('CSeq'))],
    [['Call-ID: a b'], 'BAD_HEADER_VALUE', HEAD.filter((h) => !h.startsWith('Call-ID'))],
    [['To: *'], 'BAD_NAME_ADDR', HEAD.filter((h) => !h.startsWith('To'))],
    [[], 'MISSING_HEADER', HEAD.filter((h) => !h.startsWith('Via'))],
  ];
  for (const [extra, code, head] of cases) {
    const e = fails(build({ head, extra }), code);
    assert.equal(e.kind, 'request');
    assert.equal(e.method, 'INVITE');
    assert.ok(Array.isArray(e.headers));
  }
  // accepted
  const m = ok(
    build({
      extra: [
        'Expires: 100000000000000000000',
        'Date: sat, 13 nov 2010 23:29:00 gmt',
        'Contact: *',
        'Content-Type: multipart/mixed ; boundary="x y"',
        'Route: <sip:p1;lr>,<sip:p2;lr>',
        'Max-Breadth: whatever',
        'Authorization: Digest username="a,b"',
      ],
    }),
  ).message;
  assert.deepEqual(getHeaderValues(m, 'route'), ['<sip:p1;lr>', '<sip:p2;lr>']);
  assert.ok(isValidSipDate('Mon, 01 Jan 2024 00:00:60 GMT'));
  assert.ok(!isValidSipDate('Mon, 32 Jan 2024 00:00:00 GMT'));
});

test('UTF-8 and non-UTF-8 header text', () => {
  const u = ok(build({ extra: ['Subject: café ☎', 'l: 0'] })).message;
  assert.equal(getHeader(u, 'subject'), 'café ☎');
  const raw = Buffer.concat([build({ extra: ['Subject: caf'] }).subarray(0, -4), Buffer.from([0xe9, 13, 10, 13, 10])]);
  const l = ok(raw).message;
  assert.equal(getHeader(l, 'subject'), 'café'); // ISO-8859-1 fallback
});

test('never throws on the odd inputs', () => {
  const root = fileURLToPath(new URL('../fixtures/rfc4475/valid/wsinv.dat', import.meta.url));
  const w = readFileSync(root);
  for (let i = 0; i <= w.length; i++) {
    parseMessage(w.subarray(0, i));
    parseMessage(w.subarray(0, i), { stream: true });
  }
  for (const s of ['\n', '\r', ' ', ':', 'SIP/', 'SIP/2.0 ', 'A B C', '\0\0\0\r\n\r\n', 'INVITE sip:a SIP/2.0\r\n\r\n']) {
    const r = parseMessage(Buffer.from(s));
    assert.equal(r.ok, false);
  }
});
