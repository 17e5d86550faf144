import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatHostPort, formatUri, parseUri, unescapeUriPart, urisEqual, isValidIPv6, type SipUri } from '../../src/sip/uri.js';

function p(s: string): SipUri {
  const r = parseUri(s);
  if (!r.ok) assert.fail(`${s}: ${r.detail}`);
  return r.value;
}

test('parses SIP URIs fully', () => {
  assert.deepEqual(p('sip:alice:secret@Atlanta.COM:5061;Transport=TCP;lr;maddr=239.255.255.1?Subject=hi&Priority=urgent'), {
    scheme: 'sip',
    user: 'alice',
    password: 'secret',
    host: 'atlanta.com',
    port: 5061,
    params: { transport: 'TCP', lr: null, maddr: '239.255.255.1' },
    headers: { Subject: 'hi', Priority: 'urgent' },
  });
  assert.deepEqual(p('SIPS:example.com'), { scheme: 'sips', host: 'example.com', params: {}, headers: {} });
  assert.equal(p('sip:user;par=u%40example.net@example.com').user, 'user;par=u%40example.net');
  assert.equal(p('sip:a:@h').password, '');
});

test('IPv6 references (RFC 5118)', () => {
  assert.deepEqual(p('sip:[2001:DB8::10]:5070'), { scheme: 'sip', host: '2001:db8::10', port: 5070, params: {}, headers: {} });
  assert.equal(p('sip:[2001:db8::10:5070]').port, undefined);
  assert.equal(p('sip:u@[::ffff:192.0.2.1]').host, '::ffff:192.0.2.1');
  assert.equal(p('sip:u@[2001:db8:::192.0.2.1]').host, '2001:db8:::192.0.2.1');
  assert.equal(p('sip:[::1]').host, '::1');
  for (const bad of ['sip:2001:db8::10', 'sip:[2001:db8::10', 'sip:[]', 'sip:[12345::1]', 'sip:[1:2:3:4:5:6:7:8:9]', 'sip:[g::1]']) {
    assert.equal(parseUri(bad).ok, false, bad);
  }
  assert.equal(isValidIPv6('1:2:3:4:5:6:7:8'), true);
  assert.equal(isValidIPv6('1:2:3:4:5:6:7'), false);
  assert.equal(isValidIPv6('1::2::3'), false);
});

test('tel and opaque schemes', () => {
  assert.deepEqual(p('tel:+1-201-555-0123;phone-context=example.com'), {
    scheme: 'tel',
    user: '+1-201-555-0123',
    host: '',
    params: { 'phone-context': 'example.com' },
    headers: {},
  });
  assert.deepEqual(p('urn:service:sos'), { scheme: 'urn', host: '', params: {}, headers: {}, opaque: 'service:sos' });
  assert.equal(p('soap.beep://192.0.2.103:3002').opaque, '//192.0.2.103:3002');
});

test('rejects malformed URIs with BAD_URI', () => {
  for (const bad of ['', 'sip:', 'nocolon', '1sip:x', 'sip:a b@c', 'sip:<x>', 'sip:@host', 'sip:host:', 'sip:host:99999', 'sip:host;', 'sip:host;=x', 'sip:host?', 'sip:host?a=1&', 'sip:ho$t', 'sip:host x', 'tel:', 'sip:"x"@h']) {
    const r = parseUri(bad);
    assert.equal(r.ok, false, bad);
    if (!r.ok) {
      assert.equal(r.code, 'BAD_URI');
      assert.equal(r.status, 400);
    }
  }
});

test('formatUri round-trips', () => {
  for (const s of [
    'sip:alice:secret@atlanta.com:5061;transport=TCP;lr?Subject=hi&Priority=urgent',
    'sips:[2001:db8::10]:5070;lr',
    'sip:%61lice@h;n%61me=v%61lue',
    'tel:+1-201-555-0123;phone-context=example.com',
    'urn:service:sos',
    'sip:h',
  ]) {
    assert.equal(formatUri(p(s)), s);
    assert.deepEqual(p(formatUri(p(s))), p(s));
  }
  assert.equal(formatUri({ scheme: 'sip', host: '2001:db8::1', port: 5060, params: { lr: null }, headers: {} }), 'sip:[2001:db8::1]:5060;lr');
});

test('formatHostPort brackets IPv6', () => {
  assert.equal(formatHostPort('2001:db8::1', 5060), '[2001:db8::1]:5060');
  assert.equal(formatHostPort('[2001:db8::1]'), '[2001:db8::1]');
  assert.equal(formatHostPort('192.0.2.1'), '192.0.2.1');
  assert.equal(formatHostPort('example.com', 0), 'example.com:0');
});

test('unescapeUriPart', () => {
  assert.equal(unescapeUriPart('sips%3Auser%40example.com'), 'sips:user@example.com');
  assert.equal(unescapeUriPart('null-%00-null'), 'null-\u0000-null');
  assert.equal(unescapeUriPart('%C3%A9t%C3%A9'), 'été');
  assert.equal(unescapeUriPart('100%'), '100%');
  assert.equal(unescapeUriPart('%zz%4'), '%zz%4');
  assert.equal(unescapeUriPart('plain'), 'plain');
});

test('urisEqual follows RFC 3261 §19.1.4 examples', () => {
  const eq = (a: string, b: string) => urisEqual(p(a), p(b));
  // equivalent
  assert.ok(eq('sip:%61lice@atlanta.com;transport=TCP', 'sip:alice@AtLanTa.CoM;Transport=tcp'));
  assert.ok(eq('sip:carol@chicago.com', 'sip:carol@chicago.com;newparam=5'));
  assert.ok(eq('sip:carol@chicago.com', 'sip:carol@chicago.com;security=on'));
  assert.ok(eq('sip:carol@chicago.com;security=off', 'sip:carol@chicago.com;newparam=5'));
  assert.ok(eq('sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com', 'sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com'));
  assert.ok(eq('sip:alice@atlanta.com?subject=project%20x&priority=urgent', 'sip:alice@atlanta.com?priority=urgent&subject=project%20x'));
  // not equivalent
  assert.ok(!eq('SIP:ALICE@AtLanTa.CoM;Transport=udp', 'sip:alice@AtLanTa.CoM;Transport=UDP'));
  assert.ok(!eq('sip:bob@biloxi.com', 'sip:bob@biloxi.com:5060'));
  assert.ok(!eq('sip:bob@biloxi.com', 'sip:bob@biloxi.com;transport=udp'));
  assert.ok(!eq('sip:bob@biloxi.com', 'sip:bob@biloxi.com:6000;transport=tcp'));
  assert.ok(!eq('sip:carol@chicago.com', 'sip:carol@chicago.com?Subject=next%20meeting'));
  assert.ok(!eq('sip:bob@phone21.boxesbybob.com', 'sip:bob@192.0.2.4'));
  assert.ok(!eq('sip:a@h', 'sips:a@h'));
  assert.ok(!eq('sip:a@h;maddr=x', 'sip:a@h'));
  assert.ok(!eq('sip:a@h;user=phone', 'sip:a@h'));
  assert.ok(eq('urn:x:y', 'URN:x:y'));
  assert.ok(!eq('urn:x:y', 'urn:x:Y'));
  assert.ok(eq('tel:+1;phone-context=a', 'tel:+1;Phone-Context=A'));
});

test('__proto__ as a parameter name is stored as a plain own property', () => {
  const u = p('sip:h;__proto__=x;lr');
  assert.equal(Object.getPrototypeOf(u.params), Object.prototype);
  assert.equal(Object.prototype.hasOwnProperty.call(u.params, '__proto__'), true);
  assert.equal(formatUri(u), 'sip:h;__proto__=x;lr');
});
