/**
 * RFC 4475 and RFC 5118 torture messages (test/fixtures; see test/fixtures/README.md).
 * Every valid message parses with its key fields; every invalid one fails with its
 * specific code and, when answerable, a buildable error response.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseMessage } from '../../src/sip/parse.js';
import { getHeader, getHeaderValues } from '../../src/sip/headers.js';
import { parseVia, viaBranch } from '../../src/sip/via.js';
import { parseNameAddr, type NameAddr } from '../../src/sip/nameaddr.js';
import { parseUri, unescapeUriPart, type SipUri } from '../../src/sip/uri.js';
import { parseCSeq } from '../../src/sip/cseq.js';
import { buildErrorResponse } from '../../src/sip/response.js';
import { serializeMessage } from '../../src/sip/serialize.js';
import type { SipErrorCode, SipMessage, SipRequest, SipResponse } from '../../src/sip/message.js';

const FIX = fileURLToPath(new URL('../fixtures/', import.meta.url));
const load = (rel: string): Buffer => readFileSync(FIX + rel);

function ok(buf: Buffer, opts?: { stream?: boolean }): SipMessage {
  const r = parseMessage(buf, opts);
  if (!r.ok) assert.fail(`expected ok, got ${r.code}: ${r.detail}`);
  return r.message;
}
function req(m: SipMessage): SipRequest {
  assert.equal(m.type, 'request');
  return m as SipRequest;
}
function res(m: SipMessage): SipResponse {
  assert.equal(m.type, 'response');
  return m as SipResponse;
}
function uri(s: string): SipUri {
  const r = parseUri(s);
  if (!r.ok) assert.fail(`bad URI ${s}: ${r.detail}`);
  return r.value;
}
function na(m: SipMessage, key: string): NameAddr {
  const v = getHeader(m, key);
  assert.ok(v !== undefined, `${key} present`);
  const r = parseNameAddr(v);
  if (!r.ok) assert.fail(`bad ${key}: ${r.detail}`);
  return r.value;
}
function topVia(m: SipMessage) {
  const r = parseVia(getHeader(m, 'via') as string);
  if (!r.ok) assert.fail(r.detail);
  return r.value;
}

interface Expect {
  method?: string;
  status?: number;
  reason?: string;
  ruri?: Partial<SipUri>;
  callId: string;
  via: { host: string; port?: number; transport: string; branch?: string };
  from?: { user?: string; host?: string; tag?: string; display?: string; scheme?: string };
  to?: { user?: string; host?: string; tag?: string; display?: string; scheme?: string; opaque?: string };
  bodyLength: number;
  extra?: (m: SipMessage, buf: Buffer, length: number) => void;
}

const VALID: Record<string, Expect> = {
  'wsinv.dat': {
    method: 'INVITE',
    ruri: { scheme: 'sip', user: 'vivekg', host: 'chair-dnrc.example.com', params: { unknownparam: null } },
    callId: 'wsinv.ndaksdj@192.0.2.1',
    via: { host: '192.0.2.2', transport: 'UDP', branch: '390skdjuw' },
    from: { user: 'jdrosen', display: '"J Rosenberg \\\\\\""', tag: '98asjd8' },
    to: { user: 'vivekg', tag: '1918181833n' },
    bodyLength: 150,
    extra(m) {
      // folding, LWS before ":" and inside values
      assert.equal(getHeader(m, 'max-forwards'), '0068');
      assert.deepEqual(parseCSeq(getHeader(m, 'cseq') as string), { ok: true, value: { seq: 9, method: 'INVITE' } });
      assert.equal(getHeader(m, 'subject'), '');
      assert.equal(getHeader(m, 'NewFangledHeader'), 'newfangled value continued newfangled value');
      assert.equal(getHeader(m, 'UnknownHeaderWithUnusualValue'), ';;,,;;,;');
      const vias = getHeaderValues(m, 'via').map((v) => parseVia(v));
      assert.equal(vias.length, 3);
      assert.ok(vias[1].ok && vias[1].value.transport === 'TCP' && vias[1].value.host === 'spindle.example.com');
      assert.ok(vias[2].ok && viaBranch(vias[2].value) === 'z9hG4bK30239' && vias[2].value.host === '192.168.255.111');
      const c = na(m, 'contact');
      assert.equal(c.displayName, '"Quoted string \\"\\""');
      assert.deepEqual(c.params, { newparam: 'newvalue', secondparam: null, q: '0.33' });
      const route = na(m, 'route');
      assert.deepEqual(route.uri.params, { lr: null, unknownwith: 'value', 'unknown-no-value': null });
    },
  },
  'intmeth.dat': {
    method: "!interesting-Method0123456789_*+`.%indeed'~",
    ruri: {
      user: "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*",
      password: "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)",
      host: 'example.com',
    },
    callId: 'intmeth.word%ZK-!.*_+\'@word`~)(><:\\/"][?}{',
    via: { host: 'host1.example.com', transport: 'TCP', branch: "z9hG4bK-.!%66*_+`'~" },
    from: { user: 'mundane', display: "token1~` token2'+_ token3*%!.-", tag: "_token~1'+`*%!-." },
    to: { user: "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*", display: '"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f"' },
    bodyLength: 0,
    extra(m) {
      const f = na(m, 'from');
      assert.equal(f.params["fromparam''~+*_!.-%"], '"\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439"');
      assert.equal(getHeader(m, "extensionHeader-!.%*+_`'~"), '\uFEFF\u5927\u505C\u96FB');
      assert.equal(parseCSeq(getHeader(m, 'cseq') as string).ok, true);
    },
  },
  'esc01.dat': {
    method: 'INVITE',
    ruri: { user: 'sips%3Auser%40example.com', host: 'example.net' },
    callId: 'esc01.239409asdfakjkn23onasd0-3234',
    via: { host: 'host5.example.net', transport: 'UDP', branch: 'z9hG4bKkdjuw' },
    from: { user: 'I%20have%20spaces', tag: '938' },
    to: { user: '%75se%72', host: 'example.com' },
    bodyLength: 150,
    extra(m) {
      const r = uri(req(m).uri);
      assert.equal(unescapeUriPart(r.user as string), 'sips:user@example.com');
      assert.equal(unescapeUriPart(na(m, 'to').uri.user as string), 'user');
      const c = na(m, 'contact');
      assert.equal(unescapeUriPart(c.uri.user as string), 'caller');
      assert.deepEqual(c.uri.params, { '%6c%72': null, 'n%61me': 'v%61lue%25%34%31' });
      assert.equal(unescapeUriPart('v%61lue%25%34%31'), 'value%41');
      assert.equal(getHeader(m, 'content-type'), 'application/sdp'); // compact "C"
    },
  },
  'escnull.dat': {
    method: 'REGISTER',
    ruri: { host: 'example.com' },
    callId: 'escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd',
    via: { host: 'host5.example.com', transport: 'UDP', branch: 'z9hG4bKkdjuw' },
    from: { user: 'null-%00-null', tag: '839923423' },
    to: { user: 'null-%00-null' },
    bodyLength: 0,
    extra(m) {
      assert.equal(unescapeUriPart('null-%00-null'), 'null-\u0000-null');
      const cs = getHeaderValues(m, 'contact').map((v) => parseNameAddr(v));
      assert.equal(cs.length, 2);
      assert.ok(cs[1].ok && cs[1].value.uri.user === '%00%00');
    },
  },
  'esc02.dat': {
    method: 'RE%47IST%45R',
    ruri: { host: 'registrar.example.com' },
    callId: 'esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf',
    via: { host: 'host.example.com', transport: 'TCP', branch: 'z9hG4bK209%fzsnel234' },
    from: { display: '"%Z%45"', user: 'resource', tag: 'f232jadfj23' },
    to: { display: '"%Z%45"', user: 'resource' },
    bodyLength: 0,
    extra(m) {
      // "C%6Fntact" is an unknown header, not Contact
      assert.equal(getHeaderValues(m, 'contact').length, 2);
      assert.equal(getHeader(m, 'C%6Fntact'), '<sip:alias2@host2.example.com>');
    },
  },
  'lwsdisp.dat': {
    method: 'OPTIONS',
    ruri: { user: 'user', host: 'example.com' },
    callId: 'lwsdisp.1234abcd@funky.example.com',
    via: { host: 'funky.example.com', transport: 'UDP', branch: 'z9hG4bKkdjuw' },
    from: { display: 'caller', user: 'caller', tag: '323' },
    bodyLength: 0,
  },
  'longreq.dat': {
    method: 'INVITE',
    ruri: { user: 'user', host: 'example.com' },
    callId:
      'longreq.onereallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallylongcallid',
    via: { host: 'sip33.example.com', transport: 'TCP' },
    from: { host: 'example.net' },
    to: { user: 'user', host: 'example.com' },
    bodyLength: 150,
    extra(m, buf) {
      assert.equal(buf.length, 3515);
      const vias = getHeaderValues(m, 'via');
      assert.equal(vias.length, 34);
      for (const v of vias) assert.ok(parseVia(v).ok);
      const last = parseVia(vias[33]);
      assert.ok(last.ok && last.value.params.received === '192.0.2.5');
      const to = na(m, 'to');
      assert.equal(to.uri.port, 6000);
      assert.equal(getHeaderValues(m, 'route').length, 0);
    },
  },
  'dblreq.dat': {
    method: 'REGISTER',
    ruri: { host: 'example.com' },
    callId: 'dblreq.0ha0isndaksdj99sdfafnl3lk233412',
    via: { host: '192.0.2.125', transport: 'UDP', branch: 'z9hG4bKkdjuw23492' },
    bodyLength: 0,
    extra(_m, buf, length) {
      // RFC 4475 §3.1.1.8: the INVITE after the REGISTER is ignored in a datagram
      assert.ok(length < buf.length);
      assert.equal(buf.subarray(length).toString('latin1').trimStart().slice(0, 6), 'INVITE');
    },
  },
  'semiuri.dat': {
    method: 'OPTIONS',
    ruri: { user: 'user;par=u%40example.net', host: 'example.com', params: {} },
    callId: 'semiuri.0ha0isndaksdj',
    via: { host: '192.0.2.1', transport: 'UDP', branch: 'z9hG4bKkdjuw' },
    bodyLength: 0,
    extra(m) {
      assert.deepEqual(getHeaderValues(m, 'accept'), [
        'application/sdp',
        'application/pkcs7-mime',
        'multipart/mixed',
        'multipart/signed',
        'message/sip',
        'message/sipfrag',
      ]);
    },
  },
  'transports.dat': {
    method: 'OPTIONS',
    callId: 'transports.kijh4akdnaqjkwendsasfdj',
    via: { host: 't1.example.com', transport: 'UDP', branch: 'z9hG4bKkdjuw' },
    bodyLength: 0,
    extra(m) {
      const ts = getHeaderValues(m, 'via').map((v) => {
        const r = parseVia(v);
        return r.ok ? r.value.transport : '?';
      });
      assert.deepEqual(ts, ['UDP', 'SCTP', 'TLS', 'UNKNOWN', 'TCP']);
    },
  },
  'mpart01.dat': {
    method: 'MESSAGE',
    ruri: { user: 'kumiko', host: 'example.org' },
    callId: '3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..',
    via: { host: '127.0.0.1', port: 5070, transport: 'UDP', branch: 'z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-' },
    bodyLength: 553,
    extra(m, buf) {
      assert.ok(m.body.includes(0)); // binary body with NUL octets kept exactly
      assert.ok(buf.subarray(buf.length - 553).equals(m.body));
      assert.equal(topVia(m).params.rport, null);
      assert.equal(getHeader(m, 'date'), 'Sat, 15 Oct 2005 04:44:56 GMT');
    },
  },
  'unreason.dat': {
    status: 200,
    reason: '= 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e \u0434\u0435\u0432\u044f\u043d\u043e\u0441\u0442\u043e \u0434\u0435\u0432\u044f\u0442\u044c - \u043f\u0440\u043e\u0441\u0442\u043e\u0435',
    callId: 'unreason.1234ksdfak3j2erwedfsASdf',
    via: { host: '192.0.2.198', transport: 'UDP', branch: 'z9hG4bK1324923' },
    to: { tag: '2229' },
    bodyLength: 154,
  },
  'noreason.dat': {
    status: 100,
    reason: '',
    callId: 'noreason.asndj203insdf99223ndf',
    via: { host: '192.0.2.105', transport: 'UDP', branch: 'z9hG4bK2398ndaoe' },
    to: { tag: '902jndnke3' },
    bodyLength: 0,
  },
  'badbranch.dat': {
    method: 'OPTIONS',
    callId: 'badbranch.sadonfo23i420jv0as0derf3j3n',
    via: { host: '192.0.2.1', transport: 'UDP', branch: 'z9hG4bK' },
    bodyLength: 0,
  },
  'unkscm.dat': {
    method: 'OPTIONS',
    ruri: { scheme: 'nobodyknowsthisscheme', opaque: 'totallyopaquecontent', host: '' },
    callId: 'unkscm.nasdfasser0q239nwsdfasdkl34',
    via: { host: 'host9.example.com', transport: 'TCP', branch: 'z9hG4bKkdjuw39234' },
    bodyLength: 0,
  },
  'novelsc.dat': {
    method: 'OPTIONS',
    ruri: { scheme: 'soap.beep', opaque: '//192.0.2.103:3002' },
    callId: 'novelsc.asdfasser0q239nwsdfasdkl34',
    via: { host: 'host9.example.com', transport: 'TCP', branch: 'z9hG4bKkdjuw39234' },
    bodyLength: 0,
  },
  'unksm2.dat': {
    method: 'REGISTER',
    callId: 'unksm2.daksdj@hyphenated-host.example.com',
    via: { host: '192.0.2.21', port: 5060, transport: 'UDP', branch: 'z9hG4bKkdjuw' },
    from: { scheme: 'http', tag: '3234233' },
    to: { scheme: 'isbn', opaque: '2983792873' },
    bodyLength: 0,
    extra(m) {
      const c = na(m, 'contact');
      assert.equal(c.uri.scheme, 'name');
      assert.equal(c.uri.opaque, 'John_Smith');
      assert.equal(na(m, 'from').uri.opaque, '//www.example.com');
    },
  },
  'bext01.dat': {
    method: 'OPTIONS',
    callId: 'bext01.0ha0isndaksdj',
    via: { host: 'fold-and-staple.example.com', transport: 'TLS', branch: 'z9hG4bKkdjuw' },
    bodyLength: 0,
    extra(m) {
      assert.deepEqual(getHeaderValues(m, 'require'), ['nothingSupportsThis', 'nothingSupportsThisEither']);
      assert.deepEqual(getHeaderValues(m, 'proxy-require'), ['noProxiesSupportThis', 'norDoAnyProxiesSupportThis']);
    },
  },
  'invut.dat': {
    method: 'INVITE',
    callId: 'invut.0ha0isndaksdjadsfij34n23d',
    via: { host: 'somehost.example.com', transport: 'UDP', branch: 'z9hG4bKkdjuw' },
    bodyLength: 40,
    extra(m) {
      assert.equal(getHeader(m, 'content-type'), 'application/unknownformat');
    },
  },
  'regaut01.dat': {
    method: 'REGISTER',
    callId: 'regaut01.0ha0isndaksdj',
    via: { host: '192.0.2.253', transport: 'TCP', branch: 'z9hG4bKkdjuw' },
    bodyLength: 0,
    extra(m) {
      assert.deepEqual(getHeaderValues(m, 'authorization'), ['NoOneKnowsThisScheme opaque-data=here']);
    },
  },
  'bcast.dat': {
    status: 200,
    reason: 'OK',
    callId: 'bcast.0384840201234ksdfak3j2erwedfsASdf',
    via: { host: '192.0.2.198', transport: 'UDP', branch: 'z9hG4bK1324923' },
    bodyLength: 154,
    extra(m) {
      const v2 = parseVia(getHeaderValues(m, 'via')[1]);
      assert.ok(v2.ok && v2.value.host === '255.255.255.255');
    },
  },
  'zeromf.dat': {
    method: 'OPTIONS',
    callId: 'zeromf.jfasdlfnm2o2l43r5u0asdfas',
    via: { host: 'host1.example.com', transport: 'UDP', branch: 'z9hG4bKkdjuw2349i' },
    bodyLength: 0,
    extra(m) {
      assert.equal(getHeader(m, 'max-forwards'), '0');
    },
  },
  'cparam01.dat': {
    method: 'REGISTER',
    callId: 'cparam01.70710@saturn.example.com',
    via: { host: 'saturn.example.com', port: 5060, transport: 'UDP', branch: 'z9hG4bKkdjuw' },
    bodyLength: 0,
    extra(m) {
      // addr-spec form: ";unknownparam" is a header parameter, not a URI parameter (§20.10)
      const c = na(m, 'contact');
      assert.deepEqual(c.params, { unknownparam: null });
      assert.deepEqual(c.uri.params, {});
      assert.equal(c.uri.user, '+19725552222');
    },
  },
  'cparam02.dat': {
    method: 'REGISTER',
    callId: 'cparam02.70710@saturn.example.com',
    via: { host: 'saturn.example.com', port: 5060, transport: 'UDP', branch: 'z9hG4bKkdjuw' },
    bodyLength: 0,
    extra(m) {
      const c = na(m, 'contact');
      assert.deepEqual(c.params, {});
      assert.deepEqual(c.uri.params, { unknownparam: null });
    },
  },
  'regescrt.dat': {
    method: 'REGISTER',
    callId: 'regescrt.k345asrl3fdbv@192.0.2.1',
    via: { host: 'host5.example.com', transport: 'UDP', branch: 'z9hG4bKkdjuw' },
    bodyLength: 0,
    extra(m) {
      const c = na(m, 'contact'); // compact "M"
      assert.deepEqual(c.uri.headers, { Route: '%3Csip:sip.example.com%3E' });
      assert.equal(unescapeUriPart(c.uri.headers.Route), '<sip:sip.example.com>');
    },
  },
  'sdp01.dat': {
    method: 'INVITE',
    callId: 'sdp01.ndaksdj9342dasdd',
    via: { host: '192.0.2.15', transport: 'UDP', branch: 'z9hG4bKkdjuw' },
    bodyLength: 150,
  },
  'inv2543.dat': {
    method: 'INVITE',
    ruri: { user: 'UserB', host: 'example.com' },
    callId: 'inv2543.1717@ift.client.example.com',
    via: { host: 'iftgw.example.com', transport: 'UDP' },
    from: { user: '+13035551111', host: 'ift.client.example.net' },
    to: { user: '+16505552222', host: 'ss1.example.net' },
    bodyLength: 105, // no Content-Length: the rest of the datagram
    extra(m) {
      assert.equal(viaBranch(topVia(m)), undefined);
      assert.equal(getHeader(m, 'content-length'), undefined);
      assert.deepEqual(na(m, 'to').params, { user: 'phone' });
      assert.deepEqual(na(m, 'from').uri.params, { user: 'phone' });
      assert.equal(na(m, 'record-route').uri.params.maddr, 'ss1.example.com');
    },
  },
};

test('every valid RFC 4475 fixture has an expectation', () => {
  assert.deepEqual(readdirSync(FIX + 'rfc4475/valid').sort(), Object.keys(VALID).sort());
});

function checkValid(file: string, e: Expect, buf: Buffer): void {
  const r = parseMessage(buf);
  if (!r.ok) assert.fail(`${file}: ${r.code} ${r.detail}`);
  const m = r.message;
  if (e.method !== undefined) {
    assert.equal(req(m).method, e.method);
    const cs = parseCSeq(getHeader(m, 'cseq') as string);
    assert.ok(cs.ok && cs.value.method === e.method);
  }
  if (e.status !== undefined) assert.equal(res(m).status, e.status);
  if (e.reason !== undefined) assert.equal(res(m).reason, e.reason);
  if (e.ruri !== undefined) {
    const u = uri(req(m).uri);
    for (const [k, v] of Object.entries(e.ruri)) assert.deepEqual(u[k as keyof SipUri], v, `Request-URI ${k}`);
  }
  assert.equal(getHeader(m, 'call-id'), e.callId);
  const v = topVia(m);
  assert.equal(v.host, e.via.host);
  assert.equal(v.port, e.via.port);
  assert.equal(v.transport, e.via.transport);
  assert.equal(v.protocol, 'SIP/2.0');
  assert.equal(viaBranch(v), e.via.branch);
  for (const side of ['from', 'to'] as const) {
    const x = e[side];
    if (x === undefined) continue;
    const a = na(m, side);
    if (x.user !== undefined) assert.equal(a.uri.user, x.user);
    if (x.host !== undefined) assert.equal(a.uri.host, x.host);
    if (x.tag !== undefined) assert.equal(a.params.tag, x.tag);
    if (x.display !== undefined) assert.equal(a.displayName, x.display);
    if (x.scheme !== undefined) assert.equal(a.uri.scheme, x.scheme);
    if ('opaque' in x) assert.equal(a.uri.opaque, x.opaque);
  }
  assert.equal(m.body.length, e.bodyLength);
  e.extra?.(m, buf, r.length);
  // Serialize → parse again gives the same message.
  const again = parseMessage(serializeMessage(m));
  if (!again.ok) assert.fail(`${file} re-parse: ${again.code} ${again.detail}`);
  assert.deepEqual(
    again.message.headers.filter((h) => h.key !== 'content-length'),
    m.headers.filter((h) => h.key !== 'content-length'),
  );
  assert.ok(again.message.body.equals(m.body));
}

for (const [file, e] of Object.entries(VALID)) {
  test(`RFC 4475 valid: ${file}`, () => checkValid(file, e, load('rfc4475/valid/' + file)));
}

/** Invalid messages: the code each must fail with, and the status of the response (undefined: none). */
const INVALID: Record<string, { code: SipErrorCode; response?: number; kind: 'request' | 'response' }> = {
  'badinv01.dat': { code: 'BAD_VIA', response: 400, kind: 'request' }, // Via ";;,;,," (Contact ";;;;" too)
  'clerr.dat': { code: 'CONTENT_LENGTH_MISMATCH', response: 400, kind: 'request' },
  'ncl.dat': { code: 'BAD_CONTENT_LENGTH', response: 400, kind: 'request' },
  'scalar02.dat': { code: 'BAD_CSEQ', response: 400, kind: 'request' },
  'scalarlg.dat': { code: 'BAD_CSEQ', kind: 'response' },
  'quotbal.dat': { code: 'BAD_QUOTED_STRING', response: 400, kind: 'request' },
  'ltgtruri.dat': { code: 'BAD_REQUEST_URI', response: 400, kind: 'request' },
  'lwsruri.dat': { code: 'BAD_REQUEST_URI', response: 400, kind: 'request' },
  'lwsstart.dat': { code: 'BAD_START_LINE', response: 400, kind: 'request' },
  'trws.dat': { code: 'BAD_START_LINE', response: 400, kind: 'request' },
  'escruri.dat': { code: 'BAD_REQUEST_URI', response: 400, kind: 'request' },
  'baddate.dat': { code: 'BAD_DATE', response: 400, kind: 'request' },
  'regbadct.dat': { code: 'BAD_NAME_ADDR', response: 400, kind: 'request' },
  'badaspec.dat': { code: 'BAD_NAME_ADDR', response: 400, kind: 'request' },
  'baddn.dat': { code: 'BAD_NAME_ADDR', response: 400, kind: 'request' },
  'badvers.dat': { code: 'BAD_VERSION', response: 505, kind: 'request' },
  'mismatch01.dat': { code: 'CSEQ_METHOD_MISMATCH', response: 400, kind: 'request' },
  'mismatch02.dat': { code: 'CSEQ_METHOD_MISMATCH', response: 400, kind: 'request' },
  'bigcode.dat': { code: 'BAD_STATUS_CODE', kind: 'response' },
  'insuf.dat': { code: 'MISSING_HEADER', response: 400, kind: 'request' }, // no From/To/Call-ID: answered with what is there (RFC 4475 §3.3.1)
  'multi01.dat': { code: 'DUPLICATE_HEADER', response: 400, kind: 'request' },
  'mcl01.dat': { code: 'DUPLICATE_HEADER', response: 400, kind: 'request' },
};

test('every invalid RFC 4475 fixture has an expectation', () => {
  assert.deepEqual(readdirSync(FIX + 'rfc4475/invalid').sort(), Object.keys(INVALID).sort());
});

for (const [file, e] of Object.entries(INVALID)) {
  test(`RFC 4475 invalid: ${file} → ${e.code}`, () => {
    const buf = load('rfc4475/invalid/' + file);
    const r = parseMessage(buf);
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.code, e.code, r.detail);
    assert.equal(r.kind, e.kind);
    const resp = buildErrorResponse(r);
    if (e.response === undefined) {
      assert.equal(resp, undefined);
      return;
    }
    assert.ok(resp !== undefined, 'a response can be built');
    assert.equal(resp.status, e.response);
    assert.equal(r.status, e.response);
    // The response carries the request's Via, From, Call-ID, CSeq and a tagged To.
    const orig = r.headers ?? [];
    const first = (k: string) => orig.find((h) => h.key === k)?.value;
    assert.equal(getHeader(resp, 'call-id'), first('call-id'));
    assert.equal(getHeader(resp, 'cseq'), first('cseq'));
    assert.deepEqual(getHeaderValues(resp, 'via'), getHeaderValues({ ...resp, headers: orig }, 'via'));
    if (first('to') !== undefined) assert.ok((getHeader(resp, 'to') as string).includes(';tag='));
    assert.equal(getHeader(resp, 'content-length'), '0');
    // and it is itself a well-formed message on the wire, unless it copies the broken header
    const wire = parseMessage(serializeMessage(resp));
    if (['BAD_VIA', 'BAD_NAME_ADDR', 'BAD_QUOTED_STRING', 'BAD_CSEQ', 'DUPLICATE_HEADER', 'MISSING_HEADER'].includes(e.code)) return;
    if (!wire.ok) assert.fail(`${file} response does not re-parse: ${wire.code} ${wire.detail}`);
  });
}

test('RFC 4475 invalid: clerr and baddn on a stream are incomplete', () => {
  for (const f of ['clerr.dat', 'baddn.dat']) {
    const r = parseMessage(load('rfc4475/invalid/' + f), { stream: true });
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.code, 'INCOMPLETE', f);
  }
});

// ---- RFC 5118 (IPv6) ----

test('RFC 5118 4.1 ipv6-good', () => {
  const m = req(ok(load('rfc5118/ipv6-good.dat')));
  assert.deepEqual(uri(m.uri), { scheme: 'sip', host: '2001:db8::10', params: {}, headers: {} });
  const v = topVia(m);
  assert.equal(v.host, '2001:db8::9:1');
  assert.equal(na(m, 'contact').uri.host, '2001:db8::1');
});

test('RFC 5118 4.2 ipv6-bad is rejected (IPv6 without brackets)', () => {
  const r = parseMessage(load('rfc5118/ipv6-bad.dat'));
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.equal(r.code, 'BAD_REQUEST_URI');
  assert.equal(buildErrorResponse(r)?.status, 400);
});

test('RFC 5118 4.3 port-ambiguous is well-formed: host only, no port', () => {
  const u = uri(req(ok(load('rfc5118/port-ambiguous.dat'))).uri);
  assert.equal(u.host, '2001:db8::10:5070');
  assert.equal(u.port, undefined);
});

test('RFC 5118 4.4 port-unambiguous', () => {
  const u = uri(req(ok(load('rfc5118/port-unambiguous.dat'))).uri);
  assert.equal(u.host, '2001:db8::10');
  assert.equal(u.port, 5070);
});

test('RFC 5118 4.5 Via received with and without brackets', () => {
  const a = topVia(ok(load('rfc5118/via-received-param-with-delim.dat')));
  assert.equal(a.params.received, '[2001:db8::9:255]');
  assert.equal(viaBranch(a), 'z9hG4bKas3-111');
  const b = topVia(ok(load('rfc5118/via-received-param-no-delim.dat')));
  assert.equal(b.params.received, '2001:db8::9:255');
  assert.equal(viaBranch(b), 'z9hG4bKas3');
});

test('RFC 5118 4.6 ipv6-in-sdp: archive Content-Length 268 exceeds the 251-octet CRLF body', () => {
  const buf = load('rfc5118/ipv6-in-sdp.dat');
  const r = parseMessage(buf);
  assert.equal(r.ok, false);
  if (!r.ok) assert.equal(r.code, 'CONTENT_LENGTH_MISMATCH');
  // With the length corrected, it parses and the SDP body is intact.
  const fixed = Buffer.from(buf.toString('latin1').replace('Content-Length: 268', 'Content-Length: 251'), 'latin1');
  const m = req(ok(fixed));
  assert.equal(m.body.length, 251);
  assert.ok(m.body.toString().includes('c=IN IP6 2001:db8::20'));
  assert.equal(uri(m.uri).host, '2001:db8::10');
  assert.equal(na(m, 'contact').uri.host, '2001:db8::20');
});

test('RFC 5118 4.7 multiple IPv4 and IPv6 addresses in header fields', () => {
  const m = req(ok(load('rfc5118/mult-ip-in-header.dat')));
  const vias = getHeaderValues(m, 'via').map((v) => {
    const r = parseVia(v);
    assert.ok(r.ok);
    return r.value;
  });
  assert.deepEqual(
    vias.map((v) => [v.host, v.port, v.transport]),
    [
      ['2001:db8::9:1', 6050, 'UDP'],
      ['192.0.2.1', undefined, 'UDP'],
      ['2001:db8::9:255', undefined, 'TCP'],
    ],
  );
  assert.equal(vias[2].params.received, '192.0.2.200');
});

test('RFC 5118 4.8/4.9: datagram bodies are cut at the (archive) Content-Length', () => {
  for (const [f, cl, full] of [
    ['mult-ip-in-sdp.dat', 181, 189],
    ['ipv4-mapped-ipv6.dat', 236, 245],
  ] as const) {
    const buf = load('rfc5118/' + f);
    const r = parseMessage(buf);
    if (!r.ok) assert.fail(r.detail);
    assert.equal(r.message.body.length, cl);
    assert.equal(buf.length - (r.length - cl), full);
  }
  const m = ok(load('rfc5118/ipv4-mapped-ipv6.dat'));
  const v = topVia(m);
  assert.equal(v.host, '::ffff:192.0.2.10');
  assert.equal(v.port, 19823);
  assert.equal(na(m, 'contact').uri.host, '::ffff:192.0.2.2');
  assert.equal(na(m, 'contact').displayName, '"T. desk phone"');
});

test('RFC 5118 4.10 IPv6 with embedded IPv4: two colons, and the tolerated three-colon ABNF-bug form', () => {
  const a = req(ok(load('rfc5118/ipv6-correct-abnf-2-colons.dat')));
  assert.equal(uri(a.uri).host, '2001:db8::192.0.2.1');
  const b = req(ok(load('rfc5118/ipv6-bug-abnf-3-colons.dat')));
  assert.equal(uri(b.uri).host, '2001:db8:::192.0.2.1');
  assert.equal(na(b, 'to').uri.host, '2001:db8:::192.0.2.1');
});

test('every RFC 5118 fixture is covered', () => {
  assert.equal(readdirSync(FIX + 'rfc5118').length, 12);
});
