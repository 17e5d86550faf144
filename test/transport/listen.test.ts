import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSocketId, parseListen } from '../../src/transport/listen.js';

function ok(spec: string) {
  const r = parseListen(spec);
  if (!r.ok) assert.fail(`${spec}: ${r.reason}`);
  return r.value;
}

function bad(spec: string): string {
  const r = parseListen(spec);
  assert.equal(r.ok, false, spec);
  return r.ok ? '' : r.reason;
}

test('parses plain IPv4 sockets', () => {
  assert.deepEqual(ok('udp:10.0.0.10:5060'), { id: 'udp:10.0.0.10:5060', transport: 'udp', address: '10.0.0.10', port: 5060 });
  assert.deepEqual(ok('TCP:192.0.2.1:5070'), { id: 'tcp:192.0.2.1:5070', transport: 'tcp', address: '192.0.2.1', port: 5070 });
});

test('IPv6 in brackets, normalized', () => {
  assert.deepEqual(ok('tcp:[::1]:5060'), { id: 'tcp:[::1]:5060', transport: 'tcp', address: '::1', port: 5060 });
  assert.equal(ok('udp:[0:0:0:0:0:0:0:1]:5062').id, 'udp:[::1]:5062');
  assert.equal(ok('udp:[::]').port, 5060);
});

test('default ports per transport', () => {
  assert.equal(ok('udp:127.0.0.1').port, 5060);
  assert.equal(ok('tcp:127.0.0.1').port, 5060);
  assert.equal(ok('tls:127.0.0.1').port, 5061);
  assert.equal(ok('tls:127.0.0.1').id, 'tls:127.0.0.1:5061');
  assert.equal(ok('ws:127.0.0.1').port, 80);
  assert.equal(ok('wss:127.0.0.1').port, 443);
  assert.equal(ok('udp:127.0.0.1:0').port, 0);
});

test('advertised address with "as"', () => {
  assert.deepEqual(ok('udp:0.0.0.0:5060 as 203.0.113.10:5060'), {
    id: 'udp:0.0.0.0:5060',
    transport: 'udp',
    address: '0.0.0.0',
    port: 5060,
    advertised: { host: '203.0.113.10', port: 5060 },
  });
  assert.deepEqual(ok('udp:127.0.0.1:5060 as pbx.example.org').advertised, { host: 'pbx.example.org', port: 5060 });
  assert.deepEqual(ok('udp:127.0.0.1:5080 as pbx.example.org').advertised, { host: 'pbx.example.org', port: 5080 });
  assert.deepEqual(ok('tcp:10.0.0.10:5060 AS 203.0.113.10:5090').advertised, { host: '203.0.113.10', port: 5090 });
  assert.deepEqual(ok('  udp:[::]:5060   as   [2001:db8::10]:5060 ').advertised, { host: '2001:db8::10', port: 5060 });
});

test('rejects bad entries with a reason', () => {
  assert.match(bad('10.0.0.10:5060'), /transport/);
  assert.match(bad('sctp:10.0.0.10:5060'), /unknown transport/);
  assert.match(bad('udp:::1:5060'), /brackets/);
  assert.match(bad('udp:[::1:5060'), /"\]"/);
  assert.match(bad('udp:[10.0.0.1]:5060'), /IPv6/);
  assert.match(bad('udp:localhost:5060'), /IP address/);
  assert.match(bad('udp:10.0.0.256:5060'), /IP address/);
  assert.match(bad('udp:10.0.0.1:65536'), /port/);
  assert.match(bad('udp:10.0.0.1:50x'), /port/);
  assert.match(bad('udp:10.0.0.1:5060 as'), /./);
  assert.match(bad('udp:10.0.0.1:5060 as 203.0.113.300'), /advertised/);
  assert.match(bad('udp:10.0.0.1:5060 as bad_host!'), /advertised/);
  assert.match(bad('udp:10.0.0.1:5060 as a as b'), /more than one/);
  assert.match(bad('udp:10.0.0.1:5060 as 203.0.113.1:0'), /port 0/);
  assert.match(bad(''), /transport/);
});

test('formatSocketId brackets IPv6', () => {
  assert.equal(formatSocketId('udp', '10.0.0.10', 5060), 'udp:10.0.0.10:5060');
  assert.equal(formatSocketId('tcp', '::1', 5060), 'tcp:[::1]:5060');
});
