/**
 * The inside/outside decision (src/nat/advertise.ts) and self-recognition (src/proxy/self.ts),
 * as plain functions: which address represents a socket towards a destination, and which
 * Request-URI / Route hosts are "us".
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import { describe, test } from 'node:test';
import {
  advertisedFor,
  concreteAddress,
  inRanges,
  isInsideFor,
  isPrivateAddress,
  onOwnPrivateNetwork,
  parseCidrs,
  type AdvertiseContext,
  type AdvertiseSocket,
  type InterfaceTable,
} from '../../src/nat/advertise.js';
import { SelfMatcher, canonicalHost, parseAlias } from '../../src/proxy/self.js';
import { parseUri } from '../../src/sip/uri.js';

/** An interface table like a cloud VM's: eth0 10.0.0.10/24, plus a second NIC on 172.16.5.0/24 and a public NIC. */
const IFACES: InterfaceTable = {
  lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
  eth0: [
    { address: '10.0.0.10', netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:01', internal: false, cidr: '10.0.0.10/24' },
    { address: 'fd00::10', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:01', internal: false, cidr: 'fd00::10/64', scopeid: 0 },
  ],
  eth1: [{ address: '172.16.5.2', netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:02', internal: false, cidr: '172.16.5.2/24' }],
  eth2: [{ address: '198.51.100.7', netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:03', internal: false, cidr: '198.51.100.7/24' }],
};

const sock = (address: string, port = 5060, advertised?: { host: string; port: number }): AdvertiseSocket => ({
  id: `udp:${address.includes(':') ? `[${address}]` : address}:${port}`,
  transport: 'udp',
  address,
  port,
  advertised,
});

const ctx = (o: Partial<AdvertiseContext> = {}): AdvertiseContext => ({ localnet: [], interfaces: IFACES, ...o });

describe('advertisedFor: the inside/outside decision', () => {
  test('outside destinations see the public address; loopback and localnet see the bound one', () => {
    const s = sock('10.0.0.10');
    const c = ctx({ publicAddress: '203.0.113.10', localnet: parseCidrs(['10.0.0.0/8', '192.168.50.0/24']) });
    assert.deepEqual(advertisedFor(s, '198.51.100.50', c), { host: '203.0.113.10', port: 5060 });
    assert.deepEqual(advertisedFor(s, '127.0.0.1', c), { host: '10.0.0.10', port: 5060 });
    assert.deepEqual(advertisedFor(s, '10.20.30.40', c), { host: '10.0.0.10', port: 5060 }, 'localnet 10/8');
    assert.deepEqual(advertisedFor(s, '192.168.50.9', c), { host: '10.0.0.10', port: 5060 }, 'second localnet range');
    assert.deepEqual(advertisedFor(s, '::ffff:10.1.2.3', c), { host: '10.0.0.10', port: 5060 }, 'IPv4-mapped IPv6 in localnet');
  });

  test('a socket`s `as` address wins over the public address, with its own port', () => {
    const s = sock('10.0.0.10', 5080, { host: '203.0.113.77', port: 5099 });
    const c = ctx({ publicAddress: '203.0.113.10' });
    assert.deepEqual(advertisedFor(s, '198.51.100.50', c), { host: '203.0.113.77', port: 5099 });
    assert.deepEqual(advertisedFor(s, '10.0.0.20', c), { host: '10.0.0.10', port: 5080 }, 'own subnet sees the bound address and port');
  });

  test('no public address and no `as`: everyone sees the bound address', () => {
    assert.deepEqual(advertisedFor(sock('10.0.0.10'), '198.51.100.50', ctx()), { host: '10.0.0.10', port: 5060 });
  });

  test('a destination on the socket`s own private network is inside without localnet', () => {
    const s = sock('10.0.0.10');
    const c = ctx({ publicAddress: '203.0.113.10' }); // localnet empty
    assert.deepEqual(advertisedFor(s, '10.0.0.20', c), { host: '10.0.0.10', port: 5060 }, 'same /24 as eth0');
    assert.deepEqual(advertisedFor(s, '10.0.1.20', c), { host: '203.0.113.10', port: 5060 }, 'other 10/8 subnet is outside without localnet');
    assert.deepEqual(advertisedFor(s, '172.16.5.9', c), { host: '203.0.113.10', port: 5060 }, 'eth1`s subnet is not this socket`s');
    assert.equal(isInsideFor(s, '10.0.0.1', c), true);
    assert.equal(isInsideFor(undefined, '10.0.0.1', c), false, 'without a socket only loopback/localnet count');
  });

  test('own-network rule: wildcard binds use every private interface; public binds never', () => {
    const c = ctx({ publicAddress: '203.0.113.10' });
    assert.equal(onOwnPrivateNetwork('0.0.0.0', '172.16.5.9', c), true);
    assert.equal(onOwnPrivateNetwork('0.0.0.0', '10.0.0.99', c), true);
    assert.equal(onOwnPrivateNetwork('0.0.0.0', '198.51.100.50', c), false, 'eth2 is public: its neighbours are outside');
    assert.equal(onOwnPrivateNetwork('198.51.100.7', '198.51.100.50', c), false, 'a public bind address has no private network');
    assert.equal(onOwnPrivateNetwork('::', 'fd00::99', c), true, 'IPv6 ULA subnet');
    assert.equal(onOwnPrivateNetwork('fd00::10', 'fd00::99', c), true);
    assert.equal(onOwnPrivateNetwork('fd00::10', '10.0.0.20', c), false, 'families never mix');
    assert.equal(onOwnPrivateNetwork('10.0.0.10', 'not-an-ip', c), false);
    // Wildcard socket towards its own LAN: the address of the interface on that LAN.
    assert.deepEqual(advertisedFor(sock('0.0.0.0'), '172.16.5.9', c), { host: '172.16.5.2', port: 5060 });
    assert.deepEqual(advertisedFor(sock('0.0.0.0'), '198.51.100.50', c), { host: '203.0.113.10', port: 5060 });
  });

  test('concreteAddress picks the on-link interface for wildcard binds', () => {
    assert.equal(concreteAddress('0.0.0.0', '127.0.0.1', { interfaces: IFACES }), '127.0.0.1');
    assert.equal(concreteAddress('0.0.0.0', '172.16.5.200', { interfaces: IFACES }), '172.16.5.2');
    assert.equal(concreteAddress('0.0.0.0', '198.51.100.9', { interfaces: IFACES }), '198.51.100.7');
    assert.equal(concreteAddress('0.0.0.0', '192.0.2.1', { interfaces: IFACES }), '10.0.0.10', 'no on-link interface: the first one');
    assert.equal(concreteAddress('::', 'fd00::5', { interfaces: IFACES }), 'fd00::10');
    assert.equal(concreteAddress('10.0.0.10', '192.0.2.1', { interfaces: IFACES }), '10.0.0.10', 'concrete binds stay');
  });

  test('the host`s real interfaces are read when none are injected', () => {
    // Whatever this machine has: a private interface address sees its own subnet as inside.
    const priv = Object.values(os.networkInterfaces())
      .flat()
      .find((i) => i && !i.internal && i.family === 'IPv4' && isPrivateAddress(i.address));
    if (!priv) return;
    assert.equal(onOwnPrivateNetwork(priv.address, priv.address), true);
  });

  test('helpers: private ranges, CIDR parsing', () => {
    for (const a of ['10.1.1.1', '172.16.0.1', '192.168.0.1', '100.64.0.1', '169.254.1.1', 'fd12::1', 'fe80::1']) assert.equal(isPrivateAddress(a), true, a);
    for (const a of ['203.0.113.10', '8.8.8.8', '2001:db8::1', 'example.org']) assert.equal(isPrivateAddress(a), false, a);
    assert.equal(parseCidrs(['10.0.0.0/8', 'garbage', 'fd00::/8']).length, 2);
    assert.equal(inRanges('fd00::1', parseCidrs(['fd00::/8'])), true);
    assert.equal(inRanges('10.0.0.1', []), false);
  });
});

describe('SelfMatcher: self-recognition', () => {
  const sockets = [sock('10.0.0.10', 5060), { ...sock('10.0.0.10', 5061), id: 'tls:10.0.0.10:5061', transport: 'tls' as const }, sock('10.0.0.11', 5070, { host: '198.51.100.20', port: 5090 })];
  const uri = (s: string) => {
    const u = parseUri(s);
    assert.ok(u.ok, `bad test URI ${s}`);
    return u.value;
  };

  test('listening, advertised (as) and public addresses, with the matching port', () => {
    const m = new SelfMatcher(sockets, [], '203.0.113.10');
    assert.equal(m.isSelf(uri('sip:10.0.0.10')), true, 'bound address, default port 5060');
    assert.equal(m.isSelf(uri('sip:10.0.0.10:5060;lr')), true);
    assert.equal(m.isSelf(uri('sip:10.0.0.10:5999')), false, 'another port is someone else');
    assert.equal(m.isSelf(uri('sip:203.0.113.10;lr')), true, 'public address, default port');
    assert.equal(m.isSelf(uri('sip:token@203.0.113.10:5070;lr')), true, 'public address on another socket`s port');
    assert.equal(m.isSelf(uri('sips:10.0.0.10')), true, 'sips defaults to 5061');
    assert.equal(m.isSelf(uri('sip:10.0.0.10;transport=tls')), true, 'transport=tls defaults to 5061');
    assert.equal(m.isSelf(uri('sip:198.51.100.20:5090;lr')), true, '`as` address with its port');
    assert.equal(m.isSelf(uri('sip:198.51.100.20;lr')), false, '`as` address on another port');
    assert.equal(m.isSelf(uri('sip:198.51.100.50')), false);
    assert.equal(m.isSelf(uri('tel:+15551234')), false, 'non-SIP schemes never');
  });

  test('aliases: host = any port, host:port = that port only; IPv6 in canonical form', () => {
    const m = new SelfMatcher(sockets, ['sip.example.org', 'edge.example.org:5080', '[2001:DB8:0::1]:5060', '2001:db8::2'], undefined);
    assert.equal(m.isSelf(uri('sip:SIP.Example.ORG;lr')), true, 'case-insensitive');
    assert.equal(m.isSelf(uri('sip:sip.example.org:7000')), true, 'alias without port matches any port');
    assert.equal(m.isSelf(uri('sip:edge.example.org:5080')), true);
    assert.equal(m.isSelf(uri('sip:edge.example.org')), false, 'host:port alias: only that port');
    assert.equal(m.isSelf(uri('sip:[2001:db8::1]')), true, 'IPv6 alias compared canonically');
    assert.equal(m.isSelf(uri('sip:[2001:db8:0:0::2]:1234')), true);
    assert.equal(m.isSelf(uri('sip:[2001:db8::3]')), false);
    assert.deepEqual(parseAlias('[::1]:5070'), { host: '::1', port: 5070 });
    assert.deepEqual(parseAlias('host.example'), { host: 'host.example' });
    assert.equal(canonicalHost('[2001:DB8::0:1]'), '2001:db8::1');
    assert.equal(canonicalHost('::ffff:10.0.0.1'), '10.0.0.1');
  });

  test('the public address stays ours after it changes (dialogs recorded the old one)', () => {
    let m = new SelfMatcher(sockets, [], '203.0.113.10');
    m = new SelfMatcher(sockets, [], '203.0.113.99', m);
    assert.equal(m.isSelf(uri('sip:203.0.113.99;lr')), true, 'new public address');
    assert.equal(m.isSelf(uri('sip:tok@203.0.113.10;lr')), true, 'former public address');
    m = new SelfMatcher(sockets, [], '203.0.113.98', m);
    assert.equal(m.isSelf(uri('sip:203.0.113.10')), true, 'two changes later');
    assert.equal(m.isSelf(uri('sip:203.0.113.99')), true);
    assert.equal(m.isSelf(uri('sip:203.0.113.10:5999')), false, 'still with our ports only');
    // The history is bounded: after many changes the oldest is forgotten.
    for (let i = 0; i < 80; i++) m = new SelfMatcher(sockets, [], `192.0.2.${i}`, m);
    assert.equal(m.isSelf(uri('sip:203.0.113.10')), false, 'very old addresses are forgotten');
    assert.equal(m.isSelf(uri('sip:192.0.2.79')), true);
  });

  test('addresses advertised by hooks are learnt, carried over, and bounded', () => {
    let m = new SelfMatcher(sockets, [], undefined);
    assert.equal(m.isSelf(uri('sip:tok@192.0.2.44:5099;lr')), false);
    m.learn('192.0.2.44', 5099);
    assert.equal(m.isSelf(uri('sip:tok@192.0.2.44:5099;lr')), true);
    assert.equal(m.isSelf(uri('sip:tok@192.0.2.44;lr')), false, 'learnt with its port');
    m = new SelfMatcher(sockets, [], '203.0.113.10', m);
    assert.equal(m.isSelf(uri('sip:192.0.2.44:5099')), true, 'kept across a rebuild');
    for (let i = 0; i < 300; i++) m.learn(`198.18.${i >> 8}.${i & 255}`, 5060);
    assert.equal(m.isSelf(uri('sip:192.0.2.44:5099')), false, 'the oldest learnt address is evicted beyond 256');
  });
});
