/**
 * STUN Binding client: the RFC 8489 §6.2.1 schedule (pure), response judgement (pure), and the
 * node:dgram adapter against the responder served on a real socket on 127.0.0.1 port 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { EventEmitter, once } from 'node:events';
import {
  DISCOVERY_RETRANSMIT,
  RFC8489_RETRANSMIT,
  createBindingRequest,
  judgeBindingResponse,
  retransmitSchedule,
} from '../../src/stun/client.js';
import { stunBinding } from '../../src/stun/node/client.js';
import { stunBindingResponse } from '../../src/stun/responder.js';
import {
  StunMethod,
  decodeStun,
  encodeStun,
  errorCodeAttribute,
  mappedAddressAttribute,
  xorMappedAddressAttribute,
  type StunAttribute,
} from '../../src/stun/message.js';
import { FakeClock } from '../../src/lib/clock.js';

const HOST = '127.0.0.1';

test('schedule: RFC 8489 §6.2.1 example (RTO 500 ms, Rc 7, Rm 16)', () => {
  assert.deepEqual(retransmitSchedule(RFC8489_RETRANSMIT), {
    sendAt: [0, 500, 1500, 3500, 7500, 15500, 31500],
    giveUpAt: 39500,
  });
});

test('schedule: discovery default is 3 requests and fails after 1.75 s', () => {
  assert.deepEqual(retransmitSchedule(), { sendAt: [0, 250, 750], giveUpAt: 1750 });
  assert.deepEqual(retransmitSchedule(DISCOVERY_RETRANSMIT), retransmitSchedule({}));
  assert.deepEqual(retransmitSchedule({ rtoMs: 10, retransmits: 0, lastWaitFactor: 3 }), { sendAt: [0], giveUpAt: 30 });
});

test('schedule: timeoutMs caps the deadline and drops later sends; bad values fall back', () => {
  assert.deepEqual(retransmitSchedule({ ...RFC8489_RETRANSMIT, timeoutMs: 5000 }), { sendAt: [0, 500, 1500, 3500], giveUpAt: 5000 });
  assert.deepEqual(retransmitSchedule({ timeoutMs: 0 }), { sendAt: [0], giveUpAt: 0 });
  assert.deepEqual(retransmitSchedule({ rtoMs: -1, retransmits: Number.NaN, lastWaitFactor: Infinity }), retransmitSchedule());
});

function response(tid: Buffer, cls: 'success' | 'error', attributes: StunAttribute[], fingerprint = true, method: number = StunMethod.Binding) {
  return encodeStun({ method, class: cls, transactionId: tid, attributes }, { fingerprint });
}

test('judgeBindingResponse: success, fallbacks and failures (RFC 8489 §6.3.3, §6.3.4)', () => {
  const { transactionId: tid, packet } = createBindingRequest();
  const other = Buffer.alloc(12, 7);
  const mapped = { address: '198.51.100.1', port: 4000 };
  assert.deepEqual(judgeBindingResponse(response(tid, 'success', [xorMappedAddressAttribute(mapped, tid)]), tid), {
    kind: 'success',
    mapped: { family: 'IPv4', ...mapped },
  });
  // RFC 3489-era server: MAPPED-ADDRESS only.
  assert.deepEqual(judgeBindingResponse(response(tid, 'success', [mappedAddressAttribute(mapped)]), tid), {
    kind: 'success',
    mapped: { family: 'IPv4', ...mapped },
  });
  // Not for us: other transaction, our own request echoed, SIP, bad FINGERPRINT.
  assert.deepEqual(judgeBindingResponse(response(other, 'success', [xorMappedAddressAttribute(mapped, other)]), tid), { kind: 'ignore' });
  assert.deepEqual(judgeBindingResponse(packet, tid), { kind: 'ignore' });
  assert.deepEqual(judgeBindingResponse(Buffer.from('SIP/2.0 200 OK\r\n\r\n'), tid), { kind: 'ignore' });
  const badFp = response(tid, 'success', [xorMappedAddressAttribute(mapped, tid)]);
  badFp[badFp.length - 1] ^= 1;
  assert.deepEqual(judgeBindingResponse(badFp, tid), { kind: 'ignore' });
  // Failures.
  const err = judgeBindingResponse(response(tid, 'error', [errorCodeAttribute(420)]), tid);
  assert.deepEqual(err, { kind: 'failure', code: 'ERROR_RESPONSE', detail: '420 Unknown Attribute', errorCode: 420, reason: 'Unknown Attribute' });
  assert.equal((judgeBindingResponse(response(tid, 'success', []), tid) as { code?: string }).code, 'BAD_RESPONSE');
  assert.equal(
    (judgeBindingResponse(response(tid, 'success', [xorMappedAddressAttribute(mapped, tid), { type: 0x0024, value: Buffer.alloc(4) }]), tid) as { code?: string }).code,
    'BAD_RESPONSE',
  );
  assert.equal((judgeBindingResponse(response(tid, 'success', [xorMappedAddressAttribute(mapped, tid)], true, 0x003), tid) as { code?: string }).code, 'BAD_RESPONSE');
});

/** A UDP "server" on 127.0.0.1:0; `reply` decides what (if anything) to send back. */
async function server(reply: (msg: Buffer, rinfo: dgram.RemoteInfo, n: number) => Buffer | undefined) {
  const sock = dgram.createSocket('udp4');
  const received: Buffer[] = [];
  sock.on('message', (msg, rinfo) => {
    received.push(msg);
    const out = reply(msg, rinfo, received.length);
    if (out) sock.send(out, rinfo.port, rinfo.address);
  });
  sock.bind(0, HOST);
  await once(sock, 'listening');
  return { port: sock.address().port, received, close: () => new Promise<void>((r) => sock.close(() => r())) };
}

const respond = (msg: Buffer, rinfo: dgram.RemoteInfo) => stunBindingResponse(msg, rinfo, { software: 'sipedge-test' });

test('stunBinding against the responder on a real socket: mapped address is our socket', async (t) => {
  const srv = await server(respond);
  t.after(srv.close);
  const r = await stunBinding({ host: HOST, port: srv.port }, { localAddress: HOST, software: 'probe' });
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.mapped.family, 'IPv4');
  assert.equal(r.mapped.address, HOST);
  assert.ok(r.mapped.port > 0);
  assert.equal(r.transmissions, 1);
  assert.ok(r.rttMs >= 0 && r.rttMs < 1000);
  assert.deepEqual(r.server, { address: HOST, port: srv.port });
  // The request carried SOFTWARE and FINGERPRINT.
  const req = decodeStun(srv.received[0]);
  assert.ok(req.ok && req.message.fingerprintOffset !== undefined);
});

test('stunBinding from a caller-owned socket leaves it open and its other listeners working', async (t) => {
  const srv = await server(respond);
  t.after(srv.close);
  const sock = dgram.createSocket('udp4');
  sock.bind(0, HOST);
  await once(sock, 'listening');
  t.after(() => sock.close());
  const seen: Buffer[] = [];
  sock.on('message', (m) => seen.push(m));
  const r = await stunBinding({ host: HOST, port: srv.port }, { socket: sock });
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.mapped.port, sock.address().port);
  assert.equal(sock.listenerCount('message'), 1, 'transaction listener removed');
  assert.equal(seen.length, 1, 'the SIP side still sees the datagram');
  // Still usable afterwards.
  const again = await stunBinding({ host: HOST, port: srv.port }, { socket: sock });
  assert.ok(again.ok);
});

test('stunBinding retransmits: answers only the third request', async (t) => {
  const srv = await server((msg, rinfo, n) => (n >= 3 ? respond(msg, rinfo) : undefined));
  t.after(srv.close);
  const r = await stunBinding({ host: HOST, port: srv.port }, { rtoMs: 100, retransmits: 4, lastWaitFactor: 4 });
  assert.ok(r.ok, JSON.stringify(r));
  // Sends at 0, 100, 300 ms; the 4th (700 ms) only if the reply to the 3rd is very late. The
  // FakeClock test below checks exact counts.
  assert.ok(r.transmissions >= 3, `${r.transmissions} transmissions`);
  assert.ok(srv.received.length >= 3);
  // Retransmissions are the same octets (same transaction id, RFC 8489 §6.2.1).
  assert.deepEqual(srv.received[1], srv.received[0]);
  assert.deepEqual(srv.received[2], srv.received[0]);
});

test('stunBinding times out when nothing answers (short schedule)', async (t) => {
  const srv = await server(() => undefined);
  t.after(srv.close);
  const started = performance.now();
  const r = await stunBinding({ host: HOST, port: srv.port }, { rtoMs: 20, retransmits: 2, lastWaitFactor: 2 });
  const took = performance.now() - started;
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.code, 'TIMEOUT');
  assert.equal(srv.received.length, 3);
  assert.ok(took >= 95 && took < 2000, `took ${took} ms, schedule says 100`);
});

test('stunBinding reports an error response and a bad response', async (t) => {
  const err = await server((msg) => {
    const d = decodeStun(msg);
    return d.ok ? encodeStun({ method: StunMethod.Binding, class: 'error', transactionId: d.message.transactionId, attributes: [errorCodeAttribute(500)] }) : undefined;
  });
  t.after(err.close);
  const r = await stunBinding({ host: HOST, port: err.port });
  assert.deepEqual(r, { ok: false, code: 'ERROR_RESPONSE', detail: '500 Server Error', errorCode: 500, reason: 'Server Error' });

  const bad = await server((msg) => {
    const d = decodeStun(msg);
    return d.ok ? encodeStun({ method: StunMethod.Binding, class: 'success', transactionId: d.message.transactionId, attributes: [] }) : undefined;
  });
  t.after(bad.close);
  const b = await stunBinding({ host: HOST, port: bad.port });
  assert.equal(!b.ok && b.code, 'BAD_RESPONSE');
});

test('stunBinding resolves names; DNS failures are values', async (t) => {
  const srv = await server(respond);
  t.after(srv.close);
  const viaLookup = await stunBinding(
    { host: 'stun.test.invalid', port: srv.port },
    { lookup: async (host, family) => (assert.equal(host, 'stun.test.invalid'), assert.equal(family, 4), { address: HOST, family: 4 }) },
  );
  assert.ok(viaLookup.ok, JSON.stringify(viaLookup));
  const failed = await stunBinding(
    { host: 'stun.test.invalid', port: 3478 },
    { lookup: async () => Promise.reject(new Error('getaddrinfo ENOTFOUND stun.test.invalid')) },
  );
  assert.equal(failed.ok, false);
  assert.equal(!failed.ok && failed.code, 'DNS');
  const badPort = await stunBinding({ host: HOST, port: 0 });
  assert.equal(!badPort.ok && badPort.code, 'SOCKET');
  const badBind = await stunBinding({ host: HOST, port: 3478 }, { localAddress: '192.0.2.123' });
  assert.equal(!badBind.ok && badBind.code, 'SOCKET');
});

/** A stand-in socket that records sends, for driving the schedule with a FakeClock. */
class FakeSocket extends EventEmitter {
  sent: Array<{ buf: Buffer; port: number; address: string }> = [];
  address() {
    return { address: '10.0.0.10', family: 'IPv4', port: 5060 };
  }
  send(buf: Buffer, port: number, address: string, cb?: (err: Error | null) => void) {
    this.sent.push({ buf, port, address });
    cb?.(null);
  }
}

test('stunBinding follows the schedule exactly under a FakeClock', async () => {
  const clock = new FakeClock();
  const sock = new FakeSocket();
  const pending = stunBinding({ host: '192.0.2.50', port: 3478 }, { socket: sock as unknown as dgram.Socket, clock });
  await Promise.resolve();
  assert.equal(sock.sent.length, 1);
  clock.advance(249);
  assert.equal(sock.sent.length, 1);
  clock.advance(1);
  assert.equal(sock.sent.length, 2);
  clock.advance(500);
  assert.equal(sock.sent.length, 3);
  clock.advance(999);
  assert.equal(clock.pending, 1, 'only the give-up timer is left');
  clock.advance(1);
  const r = await pending;
  assert.equal(!r.ok && r.code, 'TIMEOUT');
  assert.equal(sock.sent.length, 3);
  assert.equal(clock.pending, 0);
  assert.equal(sock.listenerCount('message'), 0);
  assert.deepEqual(sock.sent[0], { buf: sock.sent[2].buf, port: 3478, address: '192.0.2.50' });
});

test('under a FakeClock a response cancels the remaining timers and measures rtt on the clock', async () => {
  const clock = new FakeClock();
  const sock = new FakeSocket();
  const pending = stunBinding({ host: '192.0.2.50', port: 3478 }, { socket: sock as unknown as dgram.Socket, clock });
  await Promise.resolve();
  clock.advance(300);
  const tid = decodeStun(sock.sent[0].buf);
  assert.ok(tid.ok);
  const reply = stunBindingResponse(sock.sent[0].buf, { address: '203.0.113.10', port: 61000 });
  assert.ok(reply);
  sock.emit('message', reply, { address: '192.0.2.50', port: 3478 });
  const r = await pending;
  assert.ok(r.ok);
  assert.deepEqual(r.mapped, { family: 'IPv4', address: '203.0.113.10', port: 61000 });
  assert.equal(r.rttMs, 300);
  assert.equal(r.transmissions, 2);
  assert.equal(clock.pending, 0);
});
