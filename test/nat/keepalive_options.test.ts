/** buildKeepaliveOptions: the OPTIONS keepalive / qualify request (RFC 3261 §11). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildKeepaliveOptions } from '../../src/nat/keepalive.js';
import { getHeader, getHeaderValues } from '../../src/sip/headers.js';
import type { SipRequest } from '../../src/sip/message.js';
import { parseNameAddr } from '../../src/sip/nameaddr.js';
import { parseMessage } from '../../src/sip/parse.js';
import { serializeMessage } from '../../src/sip/serialize.js';
import { parseVia } from '../../src/sip/via.js';
import type { Binding } from '../../src/store/types.js';

function binding(over: Partial<Binding> = {}): Binding {
  return {
    aor: 'sip:1001@sip.example.org',
    contact: 'sip:1001@192.168.1.20:5062;transport=udp;ob',
    expiresAt: 1_700_000_600_000,
    q: 1,
    callId: 'reg-1',
    cseq: 7,
    received: { transport: 'udp', address: '203.0.113.77', port: 40112, socketId: 'udp:10.0.0.10:5060' },
    nat: true,
    updatedAt: 1_700_000_000_000,
    ...over,
  };
}

/** Serializes and parses back, as the far end would. */
function roundTrip(req: SipRequest): SipRequest {
  const r = parseMessage(serializeMessage(req));
  assert.ok(r.ok, r.ok ? '' : `${r.code}: ${r.detail}`);
  assert.equal(r.message.type, 'request');
  return r.message as SipRequest;
}

describe('buildKeepaliveOptions', () => {
  it('builds an RFC 3261 §11 OPTIONS that parses back with the right fields', () => {
    const req = roundTrip(buildKeepaliveOptions(binding(), { host: '198.51.100.10', port: 5060, transport: 'udp' }));
    assert.equal(req.method, 'OPTIONS');
    assert.equal(req.uri, 'sip:1001@192.168.1.20:5062;transport=udp;ob', 'Request-URI = the Contact as registered');
    assert.equal(req.version, 'SIP/2.0');

    const vias = getHeaderValues(req, 'via');
    assert.equal(vias.length, 1);
    const via = parseVia(vias[0]);
    assert.ok(via.ok);
    assert.equal(via.value.transport, 'UDP');
    assert.equal(via.value.host, '198.51.100.10');
    assert.equal(via.value.port, 5060);
    assert.match(via.value.params.branch ?? '', /^z9hG4bK[0-9a-f]{24}$/);
    assert.ok(Object.prototype.hasOwnProperty.call(via.value.params, 'rport'));
    assert.equal(via.value.params.rport, null, 'rport flag without value (RFC 3581)');

    assert.equal(getHeader(req, 'max-forwards'), '70');
    const to = parseNameAddr(getHeader(req, 'to')!);
    assert.ok(to.ok);
    assert.equal(to.value.uri.user, '1001');
    assert.equal(to.value.uri.host, 'sip.example.org');
    assert.equal(to.value.params.tag, undefined, 'no To tag outside a dialog');
    const from = parseNameAddr(getHeader(req, 'from')!);
    assert.ok(from.ok);
    assert.equal(from.value.uri.user, 'keepalive');
    assert.equal(from.value.uri.host, '198.51.100.10');
    assert.match(from.value.params.tag ?? '', /^[0-9a-f]{16}$/);
    assert.match(getHeader(req, 'call-id')!, /^[0-9a-f]{32}@198\.51\.100\.10$/);
    assert.equal(getHeader(req, 'cseq'), '1 OPTIONS');
    assert.equal(getHeader(req, 'content-length'), '0');
    assert.equal(getHeader(req, 'accept'), 'application/sdp');
    const contact = parseNameAddr(getHeader(req, 'contact')!);
    assert.ok(contact.ok);
    assert.equal(contact.value.uri.host, '198.51.100.10');
    assert.equal(contact.value.uri.port, 5060);
    assert.equal(getHeader(req, 'route'), undefined);
    assert.equal(req.body.length, 0);
  });

  it('uses a new branch, tag and Call-ID every time', () => {
    const local = { host: '198.51.100.10', port: 5060, transport: 'udp' };
    const a = buildKeepaliveOptions(binding(), local);
    const b = buildKeepaliveOptions(binding(), local);
    for (const h of ['via', 'from', 'call-id']) assert.notEqual(getHeader(a, h), getHeader(b, h), h);
  });

  it('TCP and IPv6: Via transport, bracketed hosts, transport param in Contact', () => {
    const b = binding({
      contact: 'sip:1001@[fd00::20]:5060;transport=tcp',
      received: { transport: 'tcp', address: '2001:db8::77', port: 40112, socketId: 'tcp:[2001:db8::10]:5060', connectionId: 3 },
    });
    const req = roundTrip(buildKeepaliveOptions(b, { host: '2001:db8::10', port: 5070, transport: 'tcp' }));
    assert.equal(req.uri, 'sip:1001@[fd00::20]:5060;transport=tcp');
    const via = parseVia(getHeader(req, 'via')!);
    assert.ok(via.ok);
    assert.equal(via.value.transport, 'TCP');
    assert.equal(via.value.host, '2001:db8::10');
    assert.equal(via.value.port, 5070);
    const from = parseNameAddr(getHeader(req, 'from')!);
    assert.ok(from.ok);
    assert.equal(from.value.uri.host, '2001:db8::10');
    const contact = parseNameAddr(getHeader(req, 'contact')!);
    assert.ok(contact.ok);
    assert.equal(contact.value.uri.params.transport, 'tcp');
  });

  it('routes through the binding Path (RFC 3327) and drops URI headers from the Request-URI', () => {
    const b = binding({ contact: 'sip:1001@192.168.1.20:5062?Subject=hi', path: ['<sip:edge1.example.org;lr;ob>', '<sip:edge2.example.org;lr>'] });
    const req = roundTrip(buildKeepaliveOptions(b, { host: '198.51.100.10', port: 5060, transport: 'udp' }));
    assert.equal(req.uri, 'sip:1001@192.168.1.20:5062');
    assert.deepEqual(getHeaderValues(req, 'route'), ['<sip:edge1.example.org;lr;ob>', '<sip:edge2.example.org;lr>']);
  });
});
