import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SipRequest, SipResponse } from '../../src/sip/message.js';
import { canonicalHeaderKey } from '../../src/sip/headers.js';
import { responseDestination, stampReceived } from '../../src/transport/received.js';
import type { Flow } from '../../src/transport/types.js';

function hdr(name: string, value: string) {
  return { name, key: canonicalHeaderKey(name), value };
}

function req(...vias: string[]): SipRequest {
  return {
    type: 'request',
    method: 'REGISTER',
    uri: 'sip:example.org',
    version: 'SIP/2.0',
    headers: [...vias.map((v) => hdr('Via', v)), hdr('Call-ID', 'a@b'), hdr('CSeq', '1 REGISTER')],
    body: Buffer.alloc(0),
  };
}

function res(...vias: string[]): SipResponse {
  return { type: 'response', status: 200, reason: 'OK', version: 'SIP/2.0', headers: vias.map((v) => hdr('Via', v)), body: Buffer.alloc(0) };
}

const udpFlow: Flow = { transport: 'udp', local: { socketId: 'udp:10.0.0.10:5060', address: '10.0.0.10', port: 5060 }, remote: { address: '198.51.100.7', port: 40123 } };
const tcpFlow: Flow = { transport: 'tcp', local: { socketId: 'tcp:10.0.0.10:5060', address: '10.0.0.10', port: 5060 }, remote: { address: '198.51.100.7', port: 40999 }, connectionId: 7 };

test('stampReceived adds received and rport even without rport from the UA', () => {
  const r = req('SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK1', 'SIP/2.0/UDP 10.1.1.1;branch=z9hG4bK0');
  assert.equal(stampReceived(r, { address: '198.51.100.7', port: 40123 }), true);
  assert.equal(r.headers[0].value, 'SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK1;received=198.51.100.7;rport=40123');
  assert.equal(r.headers[1].value, 'SIP/2.0/UDP 10.1.1.1;branch=z9hG4bK0', 'only the top Via changes');
});

test('stampReceived fills an empty rport in place and replaces old values', () => {
  const r = req('SIP/2.0/UDP 192.168.1.20:5060;rport;branch=z9hG4bK1');
  stampReceived(r, { address: '198.51.100.7', port: 1024 });
  assert.equal(r.headers[0].value, 'SIP/2.0/UDP 192.168.1.20:5060;rport=1024;branch=z9hG4bK1;received=198.51.100.7');
  const r2 = req('SIP/2.0/UDP 192.168.1.20:5060;received=1.2.3.4;rport=9;branch=z9hG4bK1');
  stampReceived(r2, { address: '198.51.100.7', port: 1024 });
  assert.equal(r2.headers[0].value, 'SIP/2.0/UDP 192.168.1.20:5060;received=198.51.100.7;rport=1024;branch=z9hG4bK1');
});

test('stampReceived sets received even when equal to sent-by (RFC 3581 §4)', () => {
  const r = req('SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK1');
  stampReceived(r, { address: '198.51.100.7', port: 5060 });
  assert.equal(r.headers[0].value, 'SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK1;received=198.51.100.7;rport=5060');
});

test('stampReceived writes IPv6 received without brackets and without zone', () => {
  const r = req('SIP/2.0/UDP [2001:db8::9:1]:5060;branch=z9hG4bK1');
  stampReceived(r, { address: '2001:db8::9:255', port: 5070 });
  assert.equal(r.headers[0].value, 'SIP/2.0/UDP [2001:db8::9:1]:5060;branch=z9hG4bK1;received=2001:db8::9:255;rport=5070');
  const z = req('SIP/2.0/UDP [fe80::1];branch=z9hG4bK1');
  stampReceived(z, { address: 'fe80::2%eth0', port: 5070 });
  assert.match(z.headers[0].value, /;received=fe80::2;rport=5070$/);
});

test('stampReceived only touches the first value of a combined Via line', () => {
  const r = req('SIP/2.0/UDP a.example;branch=z9hG4bK1 , SIP/2.0/UDP b.example;branch=z9hG4bK2');
  stampReceived(r, { address: '192.0.2.1', port: 5060 });
  assert.equal(r.headers[0].value, 'SIP/2.0/UDP a.example;branch=z9hG4bK1;received=192.0.2.1;rport=5060 , SIP/2.0/UDP b.example;branch=z9hG4bK2');
});

test('stampReceived fails on a missing or unparsable Via', () => {
  assert.equal(stampReceived(req(), { address: '192.0.2.1', port: 5060 }), false);
  assert.equal(stampReceived(req('garbage'), { address: '192.0.2.1', port: 5060 }), false);
});

test('UDP response goes to received:rport from the request socket', () => {
  const d = responseDestination(res('SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK1;received=198.51.100.7;rport=40123'), udpFlow);
  assert.deepEqual(d, { transport: 'udp', address: '198.51.100.7', port: 40123, socketId: 'udp:10.0.0.10:5060' });
});

test('UDP response: received without rport value → sent-by port, or 5060', () => {
  assert.deepEqual(responseDestination(res('SIP/2.0/UDP 192.168.1.20:5070;branch=z9hG4bK1;received=198.51.100.7'), udpFlow), {
    transport: 'udp',
    address: '198.51.100.7',
    port: 5070,
    socketId: 'udp:10.0.0.10:5060',
  });
  assert.equal(responseDestination(res('SIP/2.0/UDP 192.168.1.20;branch=z9hG4bK1;received=198.51.100.7;rport'), udpFlow).port, 5060);
});

test('UDP response: maddr wins, at the sent-by port or 5060', () => {
  assert.deepEqual(responseDestination(res('SIP/2.0/UDP 192.168.1.20:5070;maddr=239.255.255.1;received=198.51.100.7;rport=4'), udpFlow), {
    transport: 'udp',
    address: '239.255.255.1',
    port: 5070,
    socketId: 'udp:10.0.0.10:5060',
  });
  assert.equal(responseDestination(res('SIP/2.0/UDP h;maddr=192.0.2.9'), udpFlow).port, 5060);
});

test('UDP response without received goes to sent-by', () => {
  assert.deepEqual(responseDestination(res('SIP/2.0/UDP 192.0.2.4:5090;branch=z9hG4bK1'), udpFlow), {
    transport: 'udp',
    address: '192.0.2.4',
    port: 5090,
    socketId: 'udp:10.0.0.10:5060',
  });
});

test('IPv6 received in either RFC 5118 form', () => {
  const f: Flow = { ...udpFlow, local: { socketId: 'udp:[::1]:5060', address: '::1', port: 5060 } };
  assert.equal(responseDestination(res('SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;rport=7'), f).address, '2001:db8::9:255');
  assert.equal(responseDestination(res('SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];rport=7'), f).address, '2001:db8::9:255');
});

test('TCP response uses the request connection while it is open', () => {
  const r = res('SIP/2.0/TCP 192.168.1.20:5060;branch=z9hG4bK1;received=198.51.100.7;rport=40999');
  assert.deepEqual(responseDestination(r, tcpFlow), {
    transport: 'tcp',
    address: '198.51.100.7',
    port: 40999,
    socketId: 'tcp:10.0.0.10:5060',
    connectionId: 7,
  });
  assert.equal(responseDestination(r, tcpFlow, (id) => id === 7).connectionId, 7);
});

test('TCP response on a closed connection: received at the sent-by port (RFC 3261 §18.2.2)', () => {
  const closed = () => false;
  assert.deepEqual(responseDestination(res('SIP/2.0/TCP 192.168.1.20:5062;received=198.51.100.7;rport=40999'), tcpFlow, closed), {
    transport: 'tcp',
    address: '198.51.100.7',
    port: 5062,
    socketId: 'tcp:10.0.0.10:5060',
  });
  assert.equal(responseDestination(res('SIP/2.0/TCP 192.0.2.3'), tcpFlow, closed).port, 5060);
  const tls: Flow = { ...tcpFlow, transport: 'tls' };
  assert.deepEqual(responseDestination(res('SIP/2.0/TLS 192.0.2.3'), tls, closed), { transport: 'tls', address: '192.0.2.3', port: 5061, socketId: 'tcp:10.0.0.10:5060' });
});

test('an unreadable Via falls back to the flow source', () => {
  assert.deepEqual(responseDestination(res('???'), udpFlow), { transport: 'udp', address: '198.51.100.7', port: 40123, socketId: 'udp:10.0.0.10:5060' });
  assert.deepEqual(responseDestination(res(), udpFlow), { transport: 'udp', address: '198.51.100.7', port: 40123, socketId: 'udp:10.0.0.10:5060' });
});
