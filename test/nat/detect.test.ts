/**
 * NAT detection (src/nat/detect.ts): each named test on its own, the `nat.clients` policy
 * (`auto` / `force` / `off`) over them, and the debug log line that explains a decision.
 *
 * Addresses as in the NAT lab: phones 192.168.1.x behind a home router whose public address is
 * 198.51.100.11, a public phone 198.51.100.50, the edge's own LAN 10.0.0.0/24.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { AUTO_NAT_TESTS, NAT_TEST_NAMES, detectNat, isPrivateAddress, runNatTests, type NatTestName } from '../../src/nat/detect.js';
import { parseMessage } from '../../src/sip/parse.js';
import type { SipRequest } from '../../src/sip/message.js';
import { stampReceived } from '../../src/transport/received.js';
import type { HostPort } from '../../src/transport/types.js';

interface Req {
  method?: string;
  via?: string;
  contact?: string | null;
  sdpC?: string;
  /** Raw header lines added as they are (e.g. a compact `v:` Via). */
  extra?: string[];
}

/** Builds a request's octets. */
function wire(o: Req): Buffer {
  const method = o.method ?? 'REGISTER';
  const body = o.sdpC ? `v=0\r\no=- 1 1 IN IP4 ${o.sdpC}\r\ns=-\r\nc=IN IP4 ${o.sdpC}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n` : '';
  const lines = [
    `${method} sip:sip.example.org SIP/2.0`,
    ...(o.via === undefined ? [] : [`Via: ${o.via}`]),
    ...(o.extra ?? []),
    'Max-Forwards: 70',
    'From: <sip:1001@sip.example.org>;tag=a1',
    'To: <sip:1001@sip.example.org>',
    'Call-ID: detect-1',
    `CSeq: 1 ${method}`,
    ...(o.contact === null ? [] : [`Contact: ${o.contact ?? '<sip:1001@192.168.1.10:5060>'}`]),
    ...(body ? ['Content-Type: application/sdp'] : []),
    `Content-Length: ${Buffer.byteLength(body)}`,
  ];
  return Buffer.from(lines.join('\r\n') + '\r\n\r\n' + body);
}

function req(o: Req): SipRequest {
  const r = parseMessage(wire(o));
  assert.ok(r.ok, `test request parses: ${JSON.stringify(o)}`);
  assert.equal(r.message.type, 'request', 'a request');
  return r.message as SipRequest;
}

const from = (address: string, port = 5060): HostPort => ({ address, port });

describe('nat/detect: the named tests', () => {
  it('a phone behind a port-preserving NAT: via-received, rport-present, contact-private', () => {
    const r = req({ via: 'SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK1;rport' });
    assert.deepEqual(runNatTests(r, from('198.51.100.11')), ['via-received', 'rport-present', 'contact-private']);
  });

  it('a phone behind a port-randomising NAT also fires via-rport', () => {
    const r = req({ via: 'SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK1' });
    assert.deepEqual(runNatTests(r, from('198.51.100.12', 40123)), ['via-received', 'via-rport', 'contact-private']);
  });

  it('via-rport: a Via without port means 5060', () => {
    const r = req({ via: 'SIP/2.0/UDP 198.51.100.50;branch=z9hG4bK1', contact: '<sip:1001@198.51.100.50>' });
    assert.deepEqual(runNatTests(r, from('198.51.100.50', 5060)), []);
    assert.deepEqual(runNatTests(r, from('198.51.100.50', 5062)), ['via-rport']);
  });

  it('via-rport is not applied to TCP/TLS: the source port of a connection is ephemeral', () => {
    const r = req({ via: 'SIP/2.0/TCP 198.51.100.50:5060;branch=z9hG4bK1', contact: '<sip:1001@198.51.100.50:5060;transport=tcp>' });
    assert.deepEqual(runNatTests(r, from('198.51.100.50', 41000)), []);
  });

  it('via-received compares IP addresses, not spellings (IPv6, IPv4-mapped)', () => {
    const v6 = req({ via: 'SIP/2.0/UDP [2001:DB8::1]:5060;branch=z9hG4bK1', contact: '<sip:1001@[2001:db8::1]:5060>' });
    assert.deepEqual(runNatTests(v6, from('2001:db8:0:0:0:0:0:1')), []);
    const mapped = req({ via: 'SIP/2.0/UDP 198.51.100.50:5060;branch=z9hG4bK1', contact: '<sip:1001@198.51.100.50>' });
    assert.deepEqual(runNatTests(mapped, from('::ffff:198.51.100.50')), []);
  });

  it('via-received fires for a host name in Via (RFC 3261 §18.2.1 adds received then too)', () => {
    const r = req({ via: 'SIP/2.0/UDP phone.example.org:5060;branch=z9hG4bK1', contact: '<sip:1001@phone.example.org>' });
    assert.deepEqual(runNatTests(r, from('198.51.100.50')), ['via-received']);
  });

  it('contact-private covers RFC 1918, RFC 6598 (100.64/10), link-local and ULA; public and names do not fire', () => {
    const fires = (contact: string): boolean =>
      runNatTests(req({ via: 'SIP/2.0/UDP 198.51.100.50:5060;branch=z9hG4bK1', contact }), from('198.51.100.50')).includes('contact-private');
    for (const c of [
      '<sip:u@10.1.2.3>',
      '<sip:u@172.16.0.9:5070>',
      '<sip:u@192.168.1.10:5060;transport=udp>',
      '<sip:u@100.64.1.2>',
      '<sip:u@169.254.10.20>',
      '<sip:u@[fd00::10]:5060>',
      '<sip:u@[fe80::1]>',
      '"A" <sip:u@198.51.100.50>, <sip:u@192.168.1.10>',
    ]) {
      assert.equal(fires(c), true, `contact-private for ${c}`);
    }
    for (const c of ['<sip:u@198.51.100.50>', '<sip:u@100.128.0.1>', '<sip:u@phone.example.org>', '<sip:u@[2001:db8::5]>', '*']) {
      assert.equal(fires(c), false, `no contact-private for ${c}`);
    }
    assert.deepEqual(runNatTests(req({ via: 'SIP/2.0/UDP 198.51.100.50:5060;branch=z9hG4bK1', contact: null }), from('198.51.100.50')), []);
  });

  it('sdp-private looks at every c= line of an application/sdp body', () => {
    const nated = req({ method: 'INVITE', via: 'SIP/2.0/UDP 198.51.100.11:5060;branch=z9hG4bK1', contact: '<sip:1001@198.51.100.11>', sdpC: '192.168.1.10' });
    assert.deepEqual(runNatTests(nated, from('198.51.100.11')), ['sdp-private']);
    const pub = req({ method: 'INVITE', via: 'SIP/2.0/UDP 198.51.100.50:5060;branch=z9hG4bK1', contact: '<sip:1001@198.51.100.50>', sdpC: '198.51.100.50' });
    assert.deepEqual(runNatTests(pub, from('198.51.100.50')), []);
  });

  it('source-private: the packet itself came from a private address', () => {
    const r = req({ via: 'SIP/2.0/UDP 10.0.0.20:5060;branch=z9hG4bK1', contact: '<sip:1001@10.0.0.20:5060>' });
    assert.deepEqual(runNatTests(r, from('10.0.0.20')), ['contact-private', 'source-private']);
  });

  it('rport-present is read from the octets as received, before the transport stamps rport=', () => {
    const withRport = wire({ via: 'SIP/2.0/UDP 198.51.100.50:5060;branch=z9hG4bK1;rport', contact: '<sip:1001@198.51.100.50>' });
    const without = wire({ via: 'SIP/2.0/UDP 198.51.100.50:5060;branch=z9hG4bK1', contact: '<sip:1001@198.51.100.50>' });
    for (const [raw, expected] of [
      [withRport, ['rport-present']],
      [without, []],
    ] as Array<[Buffer, NatTestName[]]>) {
      const p = parseMessage(raw);
      assert.ok(p.ok && p.message.type === 'request', 'parses');
      const r = p.message as SipRequest;
      assert.ok(stampReceived(r, from('198.51.100.50')), 'stamped like the transport does');
      assert.deepEqual(runNatTests(r, from('198.51.100.50'), { raw }), expected, 'raw decides');
    }
  });

  it('rport-present from raw: compact "v:" header, several Via values on one line, folded line', () => {
    const pub = '<sip:1001@198.51.100.50>';
    const compact = wire({ extra: ['v: SIP/2.0/UDP 198.51.100.50:5060;rport;branch=z9hG4bK1'], contact: pub });
    const many = wire({ via: 'SIP/2.0/UDP 198.51.100.50:5060;branch=z9hG4bK1, SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK0;rport', contact: pub });
    const folded = wire({ extra: ['Via: SIP/2.0/UDP 198.51.100.50:5060', ' ;branch=z9hG4bK1;rport'], contact: pub });
    const p = (b: Buffer): SipRequest => {
      const r = parseMessage(b);
      assert.ok(r.ok, `parses: ${b.toString()}`);
      return r.message as SipRequest;
    };
    assert.ok(runNatTests(p(compact), from('198.51.100.50'), { raw: compact }).includes('rport-present'), 'compact v:');
    assert.ok(!runNatTests(p(many), from('198.51.100.50'), { raw: many }).includes('rport-present'), 'only the top Via counts');
    assert.ok(runNatTests(p(folded), from('198.51.100.50'), { raw: folded }).includes('rport-present'), 'folded');
  });

  it('results come in the documented order, and the auto set excludes rport-present and source-private', () => {
    const r = req({ via: 'SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK1;rport', method: 'INVITE', sdpC: '192.168.1.10' });
    const t = runNatTests(r, from('100.64.0.7', 1024));
    assert.deepEqual(t, NAT_TEST_NAMES.filter((n) => t.includes(n)), 'documented order');
    assert.deepEqual(t, ['via-received', 'via-rport', 'rport-present', 'contact-private', 'sdp-private', 'source-private']);
    assert.equal(AUTO_NAT_TESTS.has('rport-present'), false);
    assert.equal(AUTO_NAT_TESTS.has('source-private'), false);
  });

  it('isPrivateAddress', () => {
    for (const a of ['10.0.0.1', '172.31.255.255', '192.168.0.1', '100.64.0.1', '100.127.255.254', '169.254.1.1', 'fd12::1', 'fc00::1', 'fe80::1', '::ffff:192.168.1.1']) {
      assert.equal(isPrivateAddress(a), true, a);
    }
    for (const a of ['198.51.100.1', '172.32.0.1', '100.128.0.1', '2001:db8::1', 'example.org', '', '127.0.0.1']) {
      assert.equal(isPrivateAddress(a), false, a);
    }
  });
});

describe('nat/detect: the nat.clients decision', () => {
  const natted = (): SipRequest => req({ via: 'SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK1;rport' });

  it('auto: a NATed phone is NATed', () => {
    const d = detectNat(natted(), from('198.51.100.11'));
    assert.deepEqual(d, { nat: true, tests: ['via-received', 'rport-present', 'contact-private'], mode: 'auto' });
  });

  it('auto: rport-present alone does NOT make a UA NATed (RFC 3581 asks every client to send it)', () => {
    const r = req({ via: 'SIP/2.0/UDP 198.51.100.50:5060;branch=z9hG4bK1;rport', contact: '<sip:1001@198.51.100.50:5060>' });
    assert.deepEqual(detectNat(r, from('198.51.100.50')), { nat: false, tests: ['rport-present'], mode: 'auto' });
  });

  it('auto: a phone on our own LAN (private Contact = private source) is not NATed', () => {
    const r = req({ via: 'SIP/2.0/UDP 10.0.0.20:5060;branch=z9hG4bK1;rport', contact: '<sip:1001@10.0.0.20:5060>' });
    assert.deepEqual(detectNat(r, from('10.0.0.20')), { nat: false, tests: ['rport-present', 'contact-private', 'source-private'], mode: 'auto' });
  });

  it('auto: a private Contact that is not the source address is NATed, even when Via was fixed up (STUN)', () => {
    const r = req({ via: 'SIP/2.0/UDP 198.51.100.11:5060;branch=z9hG4bK1', contact: '<sip:1001@192.168.1.10:5060>' });
    assert.deepEqual(detectNat(r, from('198.51.100.11')), { nat: true, tests: ['contact-private'], mode: 'auto' });
    // Behind a carrier-grade NAT towards an edge inside the carrier: private source, other private Contact.
    const cgn = req({ via: 'SIP/2.0/UDP 100.64.3.4:5060;branch=z9hG4bK1', contact: '<sip:1001@192.168.1.10:5060>' });
    assert.equal(detectNat(cgn, from('100.64.3.4')).nat, true);
  });

  it('auto: a private SDP c= that is not the source is NATed; one equal to the source is not', () => {
    const a = req({ method: 'INVITE', via: 'SIP/2.0/UDP 198.51.100.11:5060;branch=z9hG4bK1', contact: '<sip:1001@198.51.100.11>', sdpC: '192.168.1.10' });
    assert.equal(detectNat(a, from('198.51.100.11')).nat, true);
    const b = req({ method: 'INVITE', via: 'SIP/2.0/UDP 10.0.0.20:5060;branch=z9hG4bK1', contact: '<sip:1001@10.0.0.20>', sdpC: '10.0.0.20' });
    assert.equal(detectNat(b, from('10.0.0.20')).nat, false);
  });

  it('auto: a public UA that is not NATed', () => {
    const r = req({ via: 'SIP/2.0/UDP 198.51.100.50:5060;branch=z9hG4bK1', contact: '<sip:1001@198.51.100.50:5060>' });
    assert.deepEqual(detectNat(r, from('198.51.100.50')), { nat: false, tests: [], mode: 'auto' });
  });

  it('force: every UA is NATed; the tests are still reported', () => {
    const r = req({ via: 'SIP/2.0/UDP 198.51.100.50:5060;branch=z9hG4bK1;rport', contact: '<sip:1001@198.51.100.50:5060>' });
    assert.deepEqual(detectNat(r, from('198.51.100.50'), 'force'), { nat: true, tests: ['rport-present'], mode: 'force' });
  });

  it('off: no UA is NATed; the tests are still reported', () => {
    assert.deepEqual(detectNat(natted(), from('198.51.100.11'), 'off'), {
      nat: false,
      tests: ['via-received', 'rport-present', 'contact-private'],
      mode: 'off',
    });
  });

  it('logs each decision at debug level with the tests that fired', () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    });
    const log = pino({ level: 'debug' }, sink);
    detectNat(natted(), from('198.51.100.11', 5060), 'auto', { log });
    const quiet = pino({ level: 'info' }, sink);
    detectNat(natted(), from('198.51.100.11', 5060), 'auto', { log: quiet });
    assert.equal(lines.length, 1, 'one debug line, none at info level');
    const l = lines[0];
    assert.equal(l.level, 20, 'debug');
    assert.equal(l.nat, true);
    assert.equal(l.mode, 'auto');
    assert.equal(l.method, 'REGISTER');
    assert.equal(l.source, '198.51.100.11:5060');
    assert.deepEqual(l.tests, ['via-received', 'rport-present', 'contact-private']);
    assert.match(String(l.msg), /behind NAT/);
  });
});
