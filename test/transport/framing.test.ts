import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nextFrame, type Frame } from '../../src/transport/framing.js';

const B = (s: string) => Buffer.from(s, 'latin1');

function msg(body = '', extra = ''): string {
  return (
    'OPTIONS sip:bob@example.org SIP/2.0\r\n' +
    'Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK1\r\n' +
    extra +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n` +
    body
  );
}

/** Consumes a whole buffer, returning the frame kinds with lengths. */
function all(buf: Buffer, max = 65535): Array<[Frame['kind'], number | undefined]> {
  const out: Array<[Frame['kind'], number | undefined]> = [];
  let off = 0;
  while (off < buf.length) {
    const f = nextFrame(buf.subarray(off), max);
    out.push([f.kind, 'length' in f ? f.length : undefined]);
    if (f.kind === 'incomplete' || f.kind === 'error') break;
    off += f.length;
  }
  return out;
}

test('a complete message is framed by Content-Length', () => {
  const m = msg('hello');
  assert.deepEqual(nextFrame(B(m)), { kind: 'message', length: m.length });
});

test('two messages in one buffer', () => {
  const a = msg('abc');
  const b = msg('');
  assert.deepEqual(all(B(a + b)), [
    ['message', a.length],
    ['message', b.length],
  ]);
});

test('compact form l: and odd spacing', () => {
  const m = 'SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl  :  4\r\n\r\nbody';
  assert.deepEqual(nextFrame(B(m)), { kind: 'message', length: m.length });
  const lower = 'SIP/2.0 200 OK\r\ncontent-LENGTH:0\r\n\r\n';
  assert.deepEqual(nextFrame(B(lower)), { kind: 'message', length: lower.length });
});

test('bare-LF line endings', () => {
  const m = 'OPTIONS sip:x SIP/2.0\nContent-Length: 2\n\nhi';
  assert.deepEqual(nextFrame(B(m)), { kind: 'message', length: m.length });
});

test('every prefix of a message is incomplete; body-wait reports the total length', () => {
  const m = msg('0123456789');
  const headerLen = m.length - 10;
  for (let i = 1; i < m.length; i++) {
    const f = nextFrame(B(m.slice(0, i)));
    assert.equal(f.kind, 'incomplete', `prefix ${i}: ${JSON.stringify(f)}`);
    if (i >= headerLen) assert.deepEqual(f, { kind: 'incomplete', length: m.length });
  }
});

test('CRLFCRLF is a ping, CRLF a pong, partial CRLF incomplete', () => {
  assert.deepEqual(nextFrame(B('\r\n\r\n')), { kind: 'ping', length: 4 });
  assert.deepEqual(nextFrame(B('\r\n\r\n' + msg())), { kind: 'ping', length: 4 });
  assert.deepEqual(nextFrame(B('\r\nINVITE')), { kind: 'pong', length: 2 });
  assert.deepEqual(nextFrame(B('\r\n\rX')), { kind: 'pong', length: 2 });
  assert.equal(nextFrame(B('\r')).kind, 'incomplete');
  assert.equal(nextFrame(B('\r\n')).kind, 'incomplete');
  assert.equal(nextFrame(B('\r\n\r')).kind, 'incomplete');
  assert.equal(nextFrame(B('')).kind, 'incomplete');
  const m = msg();
  assert.deepEqual(all(B('\r\n\r\n\r\n\r\n' + m)), [
    ['ping', 4],
    ['ping', 4],
    ['message', m.length],
  ]);
});

test('garbage before a message is skipped up to the next start line', () => {
  const junk = 'hello world\r\nthis is junk\r\n';
  const m = msg('x');
  assert.deepEqual(all(B(junk + m)), [
    ['garbage', junk.length],
    ['message', m.length],
  ]);
  // binary junk without any CRLF
  const bin = Buffer.from([0xff, 0x00, 0x17, 0x20]);
  assert.deepEqual(nextFrame(bin), { kind: 'garbage', length: 4 });
  // a trailing CR is kept so a CRLF split across reads is still found
  assert.deepEqual(nextFrame(B('junk\r')), { kind: 'garbage', length: 4 });
  // a status line is a valid resync point too
  const r = 'SIP/2.0 180 Ringing\r\nContent-Length: 0\r\n\r\n';
  assert.deepEqual(all(B('@@@\r\n' + r)), [
    ['garbage', 5],
    ['message', r.length],
  ]);
  // a line that looks like a header is not a start line
  assert.deepEqual(all(B('Via: x\r\n' + r)), [
    ['garbage', 8],
    ['message', r.length],
  ]);
});

test('a partial start line that can still become one is incomplete, not garbage', () => {
  assert.equal(nextFrame(B('INV')).kind, 'incomplete');
  assert.equal(nextFrame(B('INVITE sip:a@b')).kind, 'incomplete');
  assert.equal(nextFrame(B('SIP/2.0 20')).kind, 'incomplete');
  assert.equal(nextFrame(B('INVITE sip:a@b SIP/2.0\r\nVia: x')).kind, 'incomplete');
  // garbage followed by a partial start line keeps the partial line
  assert.deepEqual(nextFrame(B('zz zz\r\nREGIS')), { kind: 'garbage', length: 7 });
});

test('the parser still sees bad versions (505) rather than garbage', () => {
  const m = 'OPTIONS sip:x SIP/7.0\r\nContent-Length: 0\r\n\r\n';
  assert.deepEqual(nextFrame(B(m)), { kind: 'message', length: m.length });
});

test('missing Content-Length is an error with the header length', () => {
  const h = 'OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n';
  assert.deepEqual(nextFrame(B(h + 'trailing')), {
    kind: 'error',
    code: 'MISSING_CONTENT_LENGTH',
    detail: 'no Content-Length on a stream transport (RFC 3261 §18.3)',
    headerLength: h.length,
  });
});

test('bad or conflicting Content-Length is an error', () => {
  const f1 = nextFrame(B('OPTIONS sip:x SIP/2.0\r\nContent-Length: abc\r\n\r\n'));
  assert.equal(f1.kind === 'error' && f1.code, 'BAD_CONTENT_LENGTH');
  const f2 = nextFrame(B('OPTIONS sip:x SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nxx'));
  assert.equal(f2.kind === 'error' && f2.code, 'BAD_CONTENT_LENGTH');
  // equal duplicates are tolerated
  const m = 'OPTIONS sip:x SIP/2.0\r\nContent-Length: 2\r\nl: 2\r\n\r\nxx';
  assert.deepEqual(nextFrame(B(m)), { kind: 'message', length: m.length });
});

test('size limits', () => {
  // header block never ends
  const endless = B('OPTIONS sip:x SIP/2.0\r\n' + 'X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaa\r\n'.repeat(10));
  assert.equal(nextFrame(endless, 1000).kind, 'incomplete');
  const f = nextFrame(endless, 100);
  assert.equal(f.kind === 'error' && f.code, 'TOO_LARGE');
  assert.equal(f.kind === 'error' && f.headerLength, undefined);
  // Content-Length pushes the message over the limit: known header length
  const big = 'OPTIONS sip:x SIP/2.0\r\nContent-Length: 5000\r\n\r\n';
  const g = nextFrame(B(big), 1000);
  assert.deepEqual(g, { kind: 'error', code: 'TOO_LARGE', detail: `message of ${big.length + 5000} octets exceeds 1000`, headerLength: big.length });
  // an endless start line
  const h = nextFrame(B('INVITE ' + 'a'.repeat(200)), 100);
  assert.equal(h.kind === 'error' && h.code, 'TOO_LARGE');
});
