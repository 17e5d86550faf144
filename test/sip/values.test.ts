import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatVia, parseVia, viaBranch, type Via } from '../../src/sip/via.js';
import { displayNameText, formatNameAddr, parseNameAddr, type NameAddr } from '../../src/sip/nameaddr.js';
import { parseCSeq } from '../../src/sip/cseq.js';

function via(s: string): Via {
  const r = parseVia(s);
  if (!r.ok) assert.fail(`${s}: ${r.detail}`);
  return r.value;
}
function nameAddr(s: string): NameAddr {
  const r = parseNameAddr(s);
  if (!r.ok) assert.fail(`${s}: ${r.detail}`);
  return r.value;
}

test('parseVia reads protocol, transport, sent-by and params', () => {
  assert.deepEqual(via('SIP/2.0/udp PC33.Atlanta.com:5060;branch=z9hG4bK776;rport;received=192.0.2.1;RPort=1'), {
    protocol: 'SIP/2.0',
    transport: 'UDP',
    host: 'pc33.atlanta.com',
    port: 5060,
    params: { branch: 'z9hG4bK776', rport: null, received: '192.0.2.1' },
  });
  assert.deepEqual(via('SIP / 2.0 / TCP  [2001:db8::1] : 5061 ; branch = z9hG4bKx ; x="a;b"'), {
    protocol: 'SIP/2.0',
    transport: 'TCP',
    host: '2001:db8::1',
    port: 5061,
    params: { branch: 'z9hG4bKx', x: '"a;b"' },
  });
  assert.equal(via('SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKy').transport, 'WSS');
  assert.equal(via('SIP/2.0/UDP h;received=2001:db8::9:255').params.received, '2001:db8::9:255');
  assert.equal(viaBranch(via('SIP/2.0/UDP h;branch=z9hG4bKabc')), 'z9hG4bKabc');
  assert.equal(viaBranch(via('SIP/2.0/UDP h;branch')), undefined);
  assert.equal(viaBranch(via('SIP/2.0/UDP h')), undefined);
});

test('parseVia rejects malformed values with BAD_VIA', () => {
  for (const bad of ['', 'SIP/2.0 h', 'SIP/2.0/UDP', 'SIP/2.0/UDPh', 'SIP/2.0/UDP h;', 'SIP/2.0/UDP h;;x', 'SIP/2.0/UDP h:99999', 'SIP/2.0/UDP h;a=', 'SIP/2.0/UDP h x', 'SIP/2.0/UDP [::1', 'SIP/2.0/UDP h;x="open', 'SIP/2.0/UDP h:']) {
    const r = parseVia(bad);
    assert.equal(r.ok, false, bad);
    if (!r.ok) assert.equal(r.code, 'BAD_VIA', bad);
  }
});

test('formatVia round-trips', () => {
  for (const s of ['SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport=5060;received=198.51.100.2', 'SIP/2.0/TLS [2001:db8::1];branch=z9hG4bK2', 'SIP/2.0/WS h.invalid;branch=z9hG4bK3;x="q"']) {
    assert.equal(formatVia(via(s)), s);
  }
});

test('parseNameAddr: name-addr, addr-spec, wildcard', () => {
  assert.deepEqual(nameAddr('"Alice \\"A\\"" <sip:alice@atlanta.com;transport=tcp>;tag=1928;Expires=60'), {
    displayName: '"Alice \\"A\\""',
    uri: { scheme: 'sip', user: 'alice', host: 'atlanta.com', params: { transport: 'tcp' }, headers: {} },
    params: { tag: '1928', expires: '60' },
  });
  assert.equal(displayNameText('"Alice \\"A\\""'), 'Alice "A"');
  assert.equal(displayNameText('Bob'), 'Bob');
  const spec = nameAddr('sip:bob@biloxi.com;tag=a6c85cf;lr');
  assert.equal(spec.displayName, undefined);
  assert.deepEqual(spec.uri.params, {});
  assert.deepEqual(spec.params, { tag: 'a6c85cf', lr: null });
  assert.equal(nameAddr('Bob  Smith <sip:b@h>').displayName, 'Bob  Smith');
  assert.equal(nameAddr('<sip:b@h>').displayName, undefined);
  assert.equal(nameAddr('""<sip:b@h>').displayName, '""');
  const w = nameAddr(' * ');
  assert.equal(w.wildcard, true);
  assert.equal(nameAddr('<sip:a@[2001:db8::1]:5060>;+sip.instance="<urn:uuid:1>";reg-id=1').params['+sip.instance'], '"<urn:uuid:1>"');
  assert.equal(nameAddr('<tel:+123>').uri.user, '+123');
});

test('parseNameAddr error codes', () => {
  const cases: Array<[string, string]> = [
    ['"unterminated <sip:a@b>', 'BAD_QUOTED_STRING'],
    ['<sip:a@b>;x="open', 'BAD_QUOTED_STRING'],
    ['Bell, Alexander <sip:a@b>', 'BAD_NAME_ADDR'],
    ['< sip:a@b >', 'BAD_NAME_ADDR'],
    ['<sip:a@b', 'BAD_NAME_ADDR'],
    ['sip:a@b?x=y', 'BAD_NAME_ADDR'],
    ['<sip:a@b>;;', 'BAD_NAME_ADDR'],
    ['<sip:a@b> junk', 'BAD_NAME_ADDR'],
    ['"x" sip:a@b', 'BAD_NAME_ADDR'],
    ['<>', 'BAD_NAME_ADDR'],
    ['', 'BAD_NAME_ADDR'],
    ['<sip:>', 'BAD_URI'],
  ];
  for (const [v, code] of cases) {
    const r = parseNameAddr(v);
    assert.equal(r.ok, false, v);
    if (!r.ok) assert.equal(r.code, code, v);
  }
});

test('formatNameAddr always uses <>', () => {
  assert.equal(formatNameAddr(nameAddr('sip:bob@biloxi.com;tag=x')), '<sip:bob@biloxi.com>;tag=x');
  assert.equal(formatNameAddr(nameAddr('"A" <sip:a@[::1]:5060;lr>;q=0.5')), '"A" <sip:a@[::1]:5060;lr>;q=0.5');
  assert.equal(formatNameAddr(nameAddr('*')), '*');
  const s = 'caller <sip:caller@example.com>;tag=323';
  assert.equal(formatNameAddr(nameAddr(s)), s);
});

test('parseCSeq', () => {
  assert.deepEqual(parseCSeq('4711 INVITE'), { ok: true, value: { seq: 4711, method: 'INVITE' } });
  assert.deepEqual(parseCSeq(' 0009   INVITE '), { ok: true, value: { seq: 9, method: 'INVITE' } });
  assert.deepEqual(parseCSeq('2147483647 ACK'), { ok: true, value: { seq: 2147483647, method: 'ACK' } });
  for (const bad of ['2147483648 ACK', 'INVITE', '1', '1INVITE', '-1 INVITE', '1 INVITE x', '1 IN<VITE', '', '36893488147419103232 REGISTER']) {
    const r = parseCSeq(bad);
    assert.equal(r.ok, false, bad);
    if (!r.ok) assert.equal(r.code, 'BAD_CSEQ');
  }
});
