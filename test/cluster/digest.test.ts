/**
 * Digest nonces across SIP workers: each worker has its own nonce secret (DigestAuth's default),
 * so a nonce issued by one worker is `stale` at another (RFC 7616 §3.3: the phone re-sends at once
 * with the fresh nonce of that worker's challenge), and each nonce's nonce-count replay tracking
 * stays exact in the one worker that accepts it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeClock } from '../../src/lib/clock.js';
import { DigestAuth } from '../../src/registrar/digest.js';
import { authorization, challengeParams, register, type DigestAnswer } from '../registrar/helpers.js';

const REALM = 'sip.example.org';
const USERS = [{ username: '1001', password: 'change-me' }];

function answer(auth: DigestAuth, nc = '00000001'): DigestAnswer {
  const c = challengeParams(auth.challenge()[0]);
  return { username: '1001', password: 'change-me', realm: c.realm, nonce: c.nonce, opaque: c.opaque, algorithm: 'MD5', uri: 'sip:sip.example.org', method: 'REGISTER', qop: 'auth', nc, cnonce: '0a4f113b' };
}

test('a nonce from worker 0 is stale at worker 1; worker 1 accepts its own; replay is caught where the nonce was accepted', () => {
  const clock = new FakeClock();
  const w0 = new DigestAuth({ realm: REALM, users: USERS, clock, algorithms: ['MD5'] });
  const w1 = new DigestAuth({ realm: REALM, users: USERS, clock, algorithms: ['MD5'] });
  const a0 = answer(w0);
  const req0 = register({ extra: [`Authorization: ${authorization(a0)}`] });
  assert.deepEqual(w1.verify(req0, 'authorization'), { ok: false, reason: 'stale' });
  assert.deepEqual(w0.verify(req0, 'authorization'), { ok: true, username: '1001' });
  assert.deepEqual(w0.verify(req0, 'authorization'), { ok: false, reason: 'replay' });
  const a1 = answer(w1);
  assert.deepEqual(w1.verify(register({ extra: [`Authorization: ${authorization(a1)}`] }), 'authorization'), { ok: true, username: '1001' });
});
