/** Call-ID dispatch between SIP workers (src/transport/dispatch.ts): pure functions. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  callIdRange,
  decodeFrame,
  encodeAorFrame,
  encodeDatagramHeader,
  fnv1a,
  isLocalOnly,
  ownedCallId,
  ownerOfCallId,
  ownerOfDatagram,
  workerPortSlice,
} from '../../src/transport/dispatch.js';
import { parseConfigText } from '../../src/config/load.js';

function msg(headers: string[], body = ''): Buffer {
  return Buffer.from(`INVITE sip:bob@example.com SIP/2.0\r\n${headers.join('\r\n')}\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
}

function callIdOf(data: Buffer): string | undefined {
  const r = callIdRange(data);
  return r === undefined ? undefined : data.toString('utf8', r[0], r[1]);
}

test('callIdRange finds Call-ID in full and compact form, any case, with whitespace around the colon', () => {
  const via = 'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1';
  assert.equal(callIdOf(msg([via, 'Call-ID: a84b4c76e66710@pc33.example.com'])), 'a84b4c76e66710@pc33.example.com');
  assert.equal(callIdOf(msg([via, 'i:abc'])), 'abc');
  assert.equal(callIdOf(msg([via, 'I  \t: abc  '])), 'abc');
  assert.equal(callIdOf(msg([via, 'CALL-ID :  x-y-z\t'])), 'x-y-z');
  assert.equal(callIdOf(Buffer.from('SIP/2.0 200 OK\nVia: x\ncall-id: lf-only\n\n')), 'lf-only');
  // Headers that merely start with the same letters are not the Call-ID.
  assert.equal(callIdOf(msg(['Call-Info: <http://x>', 'In-Reply-To: r1', 'Call-ID: real'])), 'real');
});

test('callIdRange: none without a Call-ID header, and never from the body', () => {
  assert.equal(callIdRange(msg(['Via: x'], 'Call-ID: in-body\r\n')), undefined);
  assert.equal(callIdRange(Buffer.from('garbage without newline')), undefined);
  assert.equal(callIdRange(msg(['Call-ID:   '])), undefined);
});

test('owner: the same Call-ID in any header form maps to the same worker; both workers own some', () => {
  const owners = new Set<number>();
  for (let i = 0; i < 64; i++) {
    const id = `call-${i}@192.0.2.7`;
    const o = ownerOfCallId(id, 2);
    owners.add(o);
    assert.equal(ownerOfDatagram(msg([`Call-ID: ${id}`]), 2), o);
    assert.equal(ownerOfDatagram(msg([`i:${id}  `]), 2), o);
    assert.equal(ownerOfDatagram(Buffer.from(`SIP/2.0 180 Ringing\r\ncall-id:\t${id}\r\n\r\n`), 2), o);
  }
  assert.deepEqual([...owners].sort(), [0, 1]);
  // FNV-1a reference value (offset basis for empty input, and "a" = 0xe40c292c).
  assert.equal(fnv1a(Buffer.alloc(0)), 0x811c9dc5);
  assert.equal(fnv1a(Buffer.from('a')), 0xe40c292c);
});

test('STUN, CRLF keep-alives and Call-ID-less datagrams are handled where received (owner -1)', () => {
  const stun = Buffer.from('000100002112a442000000000000000000000000', 'hex');
  assert.equal(isLocalOnly(stun), true);
  assert.equal(ownerOfDatagram(stun, 2), -1);
  assert.equal(ownerOfDatagram(Buffer.from('\r\n\r\n'), 2), -1);
  assert.equal(ownerOfDatagram(Buffer.alloc(0), 2), -1);
  assert.equal(ownerOfDatagram(msg(['Via: x']), 2), -1);
  assert.equal(ownerOfDatagram(msg(['Call-ID: x']), 1), -1);
  assert.equal(isLocalOnly(msg(['Call-ID: x'])), false);
});

test('ownedCallId returns Call-IDs owned by the asking worker', () => {
  for (const n of [2, 3, 8]) {
    for (let w = 0; w < n; w++) {
      const id = ownedCallId(w, n, 'edge.example.org');
      assert.equal(ownerOfCallId(id, n), w);
      assert.match(id, /^[0-9a-f]{32}@edge\.example\.org$/);
    }
  }
});

test('forwarding frames round-trip: socket id, source address/port and the datagram octets', () => {
  const data = msg(['Call-ID: rt@x'], 'v=0\r\n');
  const h = encodeDatagramHeader('udp:0.0.0.0:5060', '2001:db8::7', 61000);
  const f = decodeFrame(Buffer.concat([h, data]));
  assert.deepEqual(f, { kind: 'datagram', socketId: 'udp:0.0.0.0:5060', address: '2001:db8::7', port: 61000, data });
  assert.deepEqual(decodeFrame(encodeAorFrame('sip:1001@example.org')), { kind: 'aor', aor: 'sip:1001@example.org' });
  assert.equal(decodeFrame(data), undefined);
  assert.equal(decodeFrame(Buffer.from([0xe5, 1, 0, 1, 9, 9])), undefined);
  assert.equal(decodeFrame(Buffer.from([0xe5, 7])), undefined);
  assert.throws(() => encodeDatagramHeader('x'.repeat(300), '192.0.2.1', 1), RangeError);
});

test('workerPortSlice splits media.ports into disjoint even-aligned slices covering the range', () => {
  const r = { low: 10000, high: 10999 };
  assert.deepEqual(workerPortSlice(r, 0, 1), r);
  const s = [0, 1, 2].map((i) => workerPortSlice(r, i, 3));
  assert.deepEqual(s, [
    { low: 10000, high: 10331 },
    { low: 10332, high: 10663 },
    { low: 10664, high: 10999 },
  ]);
  for (const x of s) assert.equal(x.low % 2, 0);
  assert.deepEqual(workerPortSlice({ low: 10001, high: 10010 }, 1, 2), { low: 10006, high: 10010 });
  assert.throws(() => workerPortSlice({ low: 10000, high: 10001 }, 0, 2), /fewer than the 2 workers/);
});

test('config: workers defaults to 1, auto resolves, memory: store and TCP listeners are refused with workers > 1', () => {
  const def = parseConfigText('{}');
  assert.ok(def.ok);
  assert.equal(def.config.workers, 1);
  const auto = parseConfigText('workers: auto\nlisten: [udp:127.0.0.1:5060]\nstore: sqlite:/tmp/x.db\n');
  assert.ok(auto.ok, JSON.stringify(auto));
  assert.ok(auto.config.workers >= 1);
  const bad = parseConfigText('workers: 2\nstore: "memory:"\nlisten: [udp:127.0.0.1:5060, tcp:127.0.0.1:5060]\n');
  assert.equal(bad.ok, false);
  const errs = bad.ok ? [] : bad.errors;
  assert.ok(errs.some((e) => e.path === 'workers' && /shared by the worker processes/.test(e.message)), JSON.stringify(errs));
  assert.ok(errs.some((e) => e.path === 'listen.1' && /only UDP listeners/.test(e.message)), JSON.stringify(errs));
  const mem = parseConfigText('workers: 2\nstore: "sqlite::memory:"\nlisten: [udp:127.0.0.1:5060]\n');
  assert.equal(mem.ok, false);
  assert.equal(parseConfigText('workers: 0\n').ok, false);
  assert.ok(parseConfigText('workers: 2\nstore: redis://127.0.0.1:6379\nlisten: [udp:127.0.0.1:5060]\n').ok);
});
