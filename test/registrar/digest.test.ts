import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { FakeClock } from '../../src/lib/clock.js';
import { DigestAuth, parseDigestParams, type DigestAuthOptions } from '../../src/registrar/digest.js';
import { authorization, challengeParams, digestResponse, register, request, type DigestAnswer } from './helpers.js';

const REALM = 'sip.example.org';
const USERS = [
  { username: '1001', password: 'change-me' },
  { username: 'alice', password: 'p"a\\ss w0rd' },
];

function setup(over: Partial<DigestAuthOptions> = {}) {
  const clock = new FakeClock();
  const auth = new DigestAuth({ realm: REALM, users: USERS, clock, ...over });
  return { clock, auth };
}

/** Answers a fresh challenge of `auth` for algorithm index `i`. */
function answer(auth: DigestAuth, over: Partial<DigestAnswer> = {}, i = 0): DigestAnswer {
  const c = challengeParams(auth.challenge()[i]);
  return {
    username: '1001',
    password: 'change-me',
    realm: c.realm,
    nonce: c.nonce,
    opaque: c.opaque,
    algorithm: c.algorithm as 'MD5' | 'SHA-256',
    uri: 'sip:sip.example.org',
    method: 'REGISTER',
    qop: 'auth',
    nc: '00000001',
    cnonce: '0a4f113b',
    ...over,
  };
}

function req(...authValues: string[]) {
  return register({ extra: authValues.map((v) => `Authorization: ${v}`) });
}

describe('DigestAuth.challenge', () => {
  it('emits one challenge per algorithm, in order, sharing a nonce', () => {
    const { auth } = setup();
    const ch = auth.challenge();
    assert.equal(ch.length, 2);
    const [md5, sha] = ch.map(challengeParams);
    assert.equal(md5.algorithm, 'MD5');
    assert.equal(sha.algorithm, 'SHA-256');
    for (const c of [md5, sha]) {
      assert.equal(c.realm, REALM);
      assert.equal(c.qop, 'auth');
      assert.match(c.nonce, /^[A-Za-z0-9_-]{40}$/);
      assert.ok(c.opaque.length > 0);
      assert.equal(c.stale, undefined);
    }
    assert.equal(md5.nonce, sha.nonce);
    assert.match(ch[0], /^Digest realm="sip\.example\.org", nonce="[^"]+", opaque="[^"]+", algorithm=MD5, qop="auth"$/);
    assert.notEqual(challengeParams(auth.challenge()[0]).nonce, md5.nonce, 'fresh nonce each time');
  });

  it('adds stale=true on request and honours the algorithm order option', () => {
    const { auth } = setup({ algorithms: ['SHA-256', 'MD5'] });
    const ch = auth.challenge(true);
    assert.deepEqual(
      ch.map((c) => challengeParams(c).algorithm),
      ['SHA-256', 'MD5'],
    );
    for (const c of ch) assert.match(c, /, stale=true$/);
  });

  it('round-trips through parseDigestParams', () => {
    const { auth } = setup();
    const p = parseDigestParams(auth.challenge(true)[1]);
    assert.ok(p);
    assert.equal(p.realm, REALM);
    assert.equal(p.algorithm, 'SHA-256');
    assert.equal(p.stale, 'true');
  });
});

describe('DigestAuth.verify known answers', () => {
  it('accepts MD5 with qop=auth computed per RFC 7616 §3.4.1', () => {
    const { auth } = setup();
    assert.deepEqual(auth.verify(req(authorization(answer(auth))), 'authorization'), { ok: true, username: '1001' });
  });

  it('accepts SHA-256 with qop=auth', () => {
    const { auth } = setup();
    const a = answer(auth, {}, 1);
    assert.equal(a.algorithm, 'SHA-256');
    assert.deepEqual(auth.verify(req(authorization(a)), 'authorization'), { ok: true, username: '1001' });
  });

  it('accepts a missing algorithm as MD5, and quoted/escaped passwords', () => {
    const { auth } = setup();
    const a = answer(auth, { algorithm: undefined, username: 'alice', password: 'p"a\\ss w0rd' });
    assert.deepEqual(auth.verify(req(authorization(a)), 'authorization'), { ok: true, username: 'alice' });
  });

  it('accepts RFC 2069 style credentials without qop', () => {
    const { auth } = setup();
    const a = answer(auth, { qop: undefined });
    assert.deepEqual(auth.verify(req(authorization(a)), 'authorization'), { ok: true, username: '1001' });
  });

  it('accepts qop=auth-int over the body', () => {
    const { auth } = setup();
    const a = answer(auth, { qop: 'auth-int', body: 'hello', method: 'MESSAGE' });
    const r = request('MESSAGE', 'sip:1002@sip.example.org', [`Authorization: ${authorization(a)}`], 'hello');
    assert.deepEqual(auth.verify(r, 'authorization'), { ok: true, username: '1001' });
    const tampered = request('MESSAGE', 'sip:1002@sip.example.org', [`Authorization: ${authorization(a)}`], 'hellO');
    assert.deepEqual(auth.verify(tampered, 'authorization'), { ok: false, reason: 'bad-credentials' });
  });

  it('matches the RFC 7616 §3.9.1 and RFC 2617 §3.5 example responses (foreign nonce → stale)', () => {
    // RFC 7616 §3.9.1: Mufasa / "Circle of Life".
    const clock = new FakeClock();
    const rfc7616 = new DigestAuth({ realm: 'http-auth@example.org', users: [{ username: 'Mufasa', password: 'Circle of Life' }], clock });
    const base = {
      username: 'Mufasa',
      password: 'Circle of Life',
      realm: 'http-auth@example.org',
      nonce: '7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v',
      uri: '/dir/index.html',
      method: 'GET',
      qop: 'auth' as const,
      nc: '00000001',
      cnonce: 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ',
    };
    assert.equal(digestResponse({ ...base, algorithm: 'MD5' }), '8ca523f5e9506fed4657c9700eebdbec');
    assert.equal(digestResponse({ ...base, algorithm: 'SHA-256' }), '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1');
    for (const [alg, resp] of [
      ['MD5', '8ca523f5e9506fed4657c9700eebdbec'],
      ['SHA-256', '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1'],
    ] as const) {
      const good = request('GET', '/dir/index.html', [`Authorization: ${authorization({ ...base, algorithm: alg }, resp)}`]);
      // The digest is right but the nonce is not one of ours: RFC 7616 §3.3 stale.
      assert.deepEqual(rfc7616.verify(good, 'authorization'), { ok: false, reason: 'stale' });
      const bad = request('GET', '/dir/index.html', [`Authorization: ${authorization({ ...base, algorithm: alg }, resp.replace(/.$/, (c) => (c === '0' ? '1' : '0')))}`]);
      assert.deepEqual(rfc7616.verify(bad, 'authorization'), { ok: false, reason: 'bad-credentials' });
    }
    // RFC 2617 §3.5: response 6629fae49393a05397450978507c4ef1.
    const rfc2617 = { username: 'Mufasa', password: 'Circle Of Life', realm: 'testrealm@host.com', nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093', uri: '/dir/index.html', method: 'GET', qop: 'auth' as const, nc: '00000001', cnonce: '0a4f113b' };
    assert.equal(digestResponse(rfc2617), '6629fae49393a05397450978507c4ef1');
  });

  it('accepts an upper-case hex response', () => {
    const { auth } = setup();
    const a = answer(auth);
    assert.equal(auth.verify(req(authorization(a, digestResponse(a).toUpperCase())), 'authorization').ok, true);
  });

  it('reads proxy-authorization when asked', () => {
    const { auth } = setup();
    const r = register({ extra: [`Proxy-Authorization: ${authorization(answer(auth))}`] });
    assert.equal(auth.verify(r, 'proxy-authorization').ok, true);
    assert.deepEqual(auth.verify(r, 'authorization'), { ok: false, reason: 'missing' });
  });
});

describe('DigestAuth.verify failures', () => {
  it('wrong password → bad-credentials; unknown user → unknown-user', () => {
    const { auth } = setup();
    assert.deepEqual(auth.verify(req(authorization(answer(auth, { password: 'wrong' }))), 'authorization'), { ok: false, reason: 'bad-credentials' });
    assert.deepEqual(auth.verify(req(authorization(answer(auth, { username: '9999' }))), 'authorization'), { ok: false, reason: 'unknown-user' });
  });

  it('a response computed for another method or uri fails', () => {
    const { auth } = setup();
    const a = answer(auth);
    const forged = authorization(a, digestResponse({ ...a, method: 'INVITE' }));
    assert.deepEqual(auth.verify(req(forged), 'authorization'), { ok: false, reason: 'bad-credentials' });
  });

  it('expired nonce with the right password → stale; with a wrong one → bad-credentials', () => {
    const { auth, clock } = setup({ nonceTtlMs: 60_000 });
    const a = answer(auth);
    clock.advance(59_999);
    assert.equal(auth.verify(req(authorization(a)), 'authorization').ok, true);
    const b = answer(auth);
    clock.advance(60_000);
    assert.deepEqual(auth.verify(req(authorization(b)), 'authorization'), { ok: false, reason: 'stale' });
    assert.deepEqual(auth.verify(req(authorization({ ...b, password: 'nope' })), 'authorization'), { ok: false, reason: 'bad-credentials' });
  });

  it('a tampered or foreign nonce with a right digest → stale', () => {
    const { auth } = setup();
    const a = answer(auth);
    const chars = a.nonce.split('');
    chars[3] = chars[3] === 'A' ? 'B' : 'A';
    assert.deepEqual(auth.verify(req(authorization({ ...a, nonce: chars.join('') })), 'authorization'), { ok: false, reason: 'stale' });
    const other = setup().auth; // different per-process secret
    assert.deepEqual(other.verify(req(authorization(a)), 'authorization'), { ok: false, reason: 'stale' });
  });

  it('nonces from another node with the same secret are accepted', () => {
    const secret = Buffer.alloc(32, 7);
    const a = setup({ secret }).auth;
    const b = setup({ secret }).auth;
    assert.equal(b.verify(req(authorization(answer(a))), 'authorization').ok, true);
  });

  it('nonces are timestamp ‖ random ‖ HMAC-SHA-256(secret, timestamp ‖ random)[0..16] (the format other nodes verify)', () => {
    for (const secret of [Buffer.alloc(32, 7), Buffer.alloc(5, 1), Buffer.alloc(100, 9)]) {
      const { auth, clock } = setup({ secret });
      const seen = new Set<string>();
      for (let i = 0; i < 600; i++) {
        const nonce = challengeParams(auth.challenge()[0]).nonce;
        assert.ok(!seen.has(nonce), 'a fresh nonce every time');
        seen.add(nonce);
        const raw = Buffer.from(nonce, 'base64url');
        assert.equal(raw.length, 30);
        assert.equal(raw.readUIntBE(0, 6), clock.wallNow());
        const mac = createHmac('sha256', secret).update(raw.subarray(0, 14)).digest().subarray(0, 16);
        assert.deepEqual(raw.subarray(14), mac, `nonce ${i} MAC with a ${secret.length}-octet secret`);
      }
      // Random parts differ (600 nonces span more than one refill of the random pool).
      assert.equal(new Set([...seen].map((n) => Buffer.from(n, 'base64url').subarray(6, 14).toString('hex'))).size, 600);
    }
  });

  it('a response with one wrong hex digit, or of another length, is rejected', () => {
    const { auth } = setup();
    const a = answer(auth);
    const good = digestResponse(a);
    const bad = good.slice(0, 31) + (good[31] === '0' ? '1' : '0');
    assert.deepEqual(auth.verify(req(authorization(a, bad)), 'authorization'), { ok: false, reason: 'bad-credentials' });
    assert.deepEqual(auth.verify(req(authorization(a, good + '0')), 'authorization'), { ok: false, reason: 'bad-credentials' });
    assert.equal(auth.verify(req(authorization(a, good)), 'authorization').ok, true);
  });

  it('H(A2) of one Request-URI is not reused for another', () => {
    const { auth } = setup();
    const a = answer(auth, { uri: 'sip:sip.example.org' });
    assert.equal(auth.verify(req(authorization(a)), 'authorization').ok, true);
    const b = answer(auth, { uri: 'sip:sip.example.org;transport=tcp' });
    assert.equal(auth.verify(req(authorization(b)), 'authorization').ok, true);
    // Answer computed for one uri but sent with another: wrong.
    const c = answer(auth, { uri: 'sip:sip.example.org' });
    assert.deepEqual(auth.verify(req(authorization({ ...c, uri: 'sip:other.example.org' }, digestResponse(c))), 'authorization'), { ok: false, reason: 'bad-credentials' });
  });

  it('nonce-count must increase per nonce (replay protection)', () => {
    const { auth } = setup();
    const a = answer(auth);
    assert.equal(auth.verify(req(authorization(a)), 'authorization').ok, true);
    assert.deepEqual(auth.verify(req(authorization(a)), 'authorization'), { ok: false, reason: 'replay' });
    assert.equal(auth.verify(req(authorization({ ...a, nc: '00000003' })), 'authorization').ok, true);
    assert.deepEqual(auth.verify(req(authorization({ ...a, nc: '00000002' })), 'authorization'), { ok: false, reason: 'replay' });
    // A wrong password does not burn a nonce-count.
    assert.deepEqual(auth.verify(req(authorization({ ...a, nc: '00000004', password: 'x' })), 'authorization'), { ok: false, reason: 'bad-credentials' });
    assert.equal(auth.verify(req(authorization({ ...a, nc: '00000004' })), 'authorization').ok, true);
  });

  it('keeps the nonce-count map bounded; an evicted nonce is stale rather than replayable', () => {
    const { auth, clock } = setup({ maxTrackedNonces: 2 });
    const first = answer(auth);
    clock.advance(1);
    const second = answer(auth);
    clock.advance(1);
    const third = answer(auth);
    for (const a of [first, second, third]) assert.equal(auth.verify(req(authorization(a)), 'authorization').ok, true);
    assert.equal(auth.trackedNonces, 2);
    // `first` was evicted: its next nonce-count cannot be checked, so the client must refresh.
    assert.deepEqual(auth.verify(req(authorization({ ...first, nc: '00000002' })), 'authorization'), { ok: false, reason: 'stale' });
    assert.equal(auth.verify(req(authorization({ ...third, nc: '00000002' })), 'authorization').ok, true);
  });

  it('drops expired entries from the nonce-count map', () => {
    const { auth, clock } = setup({ nonceTtlMs: 1000 });
    assert.equal(auth.verify(req(authorization(answer(auth))), 'authorization').ok, true);
    clock.advance(2000);
    assert.equal(auth.verify(req(authorization(answer(auth))), 'authorization').ok, true);
    assert.equal(auth.trackedNonces, 1);
  });

  it('missing, non-Digest, other realm, several headers', () => {
    const { auth } = setup();
    assert.deepEqual(auth.verify(register(), 'authorization'), { ok: false, reason: 'missing' });
    assert.deepEqual(auth.verify(req('Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=='), 'authorization'), { ok: false, reason: 'missing' });
    const a = answer(auth);
    const foreign = authorization({ ...a, realm: 'other.example.net' });
    assert.deepEqual(auth.verify(req(foreign), 'authorization'), { ok: false, reason: 'realm-mismatch' });
    // Credentials for our realm are picked among several headers, in any position.
    assert.deepEqual(auth.verify(req(foreign, authorization(a)), 'authorization'), { ok: true, username: '1001' });
    assert.deepEqual(auth.verify(req('Basic xyz', authorization({ ...a, nc: '00000002' }), foreign), 'authorization'), { ok: true, username: '1001' });
  });

  it('malformed credentials', () => {
    const { auth } = setup();
    const a = answer(auth);
    const good = authorization(a);
    const cases = [
      good.replace(/, uri="[^"]*"/, ''),
      good.replace(/, uri="[^"]*"/, ', uri=""'),
      good.replace(/, response="[^"]*"/, ''),
      good.replace(/, nonce="[^"]*"/, ''),
      good.replace('nc=00000001', 'nc=1'),
      good.replace(/, cnonce="[^"]*"/, ''),
      good.replace('qop=auth', 'qop=auth-conf'),
      good.replace('algorithm=MD5', 'algorithm=SHA-512-256'),
      good.replace('username="1001"', 'username="1001'),
      'Digest username="1001", username="1002", realm="sip.example.org"',
    ];
    for (const v of cases) assert.deepEqual(auth.verify(req(v), 'authorization'), { ok: false, reason: 'malformed' }, v);
    // algorithm not offered by this server
    const md5Only = setup({ algorithms: ['MD5'] }).auth;
    assert.deepEqual(md5Only.verify(req(authorization(answer(md5Only, { algorithm: 'SHA-256' }))), 'authorization'), { ok: false, reason: 'malformed' });
  });

  it('SHA-256 only: a missing algorithm (implied MD5) is malformed', () => {
    const { auth } = setup({ algorithms: ['SHA-256'] });
    assert.equal(auth.challenge().length, 1);
    assert.deepEqual(auth.verify(req(authorization(answer(auth, { algorithm: undefined }))), 'authorization'), { ok: false, reason: 'malformed' });
  });
});

describe('parseDigestParams', () => {
  it('parses tokens, quoted strings with escapes, and lower-cases names', () => {
    const p = parseDigestParams('digest Username="a\\"b\\\\c", REALM="x, y", nc=00000001 ,qop=auth,  , algorithm=SHA-256');
    assert.ok(p);
    assert.equal(p.username, 'a"b\\c');
    assert.equal(p.realm, 'x, y');
    assert.equal(p.nc, '00000001');
    assert.equal(p.qop, 'auth');
    assert.equal(p.algorithm, 'SHA-256');
    assert.equal(Object.getPrototypeOf(p), null);
  });

  it('rejects other schemes, unterminated quotes, missing "=" and repeated names', () => {
    assert.equal(parseDigestParams('Basic abc'), undefined);
    assert.equal(parseDigestParams('Digest realm="x'), undefined);
    assert.equal(parseDigestParams('Digest realm'), undefined);
    assert.equal(parseDigestParams('Digest realm="x" nonce="y"'), undefined);
    assert.equal(parseDigestParams('Digest realm=a, realm=b'), undefined);
    assert.deepEqual({ ...parseDigestParams('Digest') }, {});
    const proto = parseDigestParams('Digest __proto__=x');
    assert.ok(proto);
    assert.equal(Object.getOwnPropertyDescriptor(proto, '__proto__')?.value, 'x');
    assert.equal(Object.getPrototypeOf(proto), null);
  });
});
