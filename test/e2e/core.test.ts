/**
 * Issue 2, "Done when": the real CLI process on 127.0.0.1 with SIPp as the phones.
 *
 *  (a) SIPp registers two users with digest auth; a wrong password never gets 200.
 *  (b) a SIPp UAC calls the second user's SIPp UAS through the edge
 *      (INVITE/100/180/200/ACK/BYE/200): 100 calls at >= 10 calls/s, 0 failed.
 *  (c) CANCEL of a ringing call, and a 486 Busy from the callee, reach the caller correctly.
 *  (d) the edge is restarted between REGISTER and INVITE; the call still reaches the user.
 *  (e) every RFC 4475 invalid message, sent over UDP, gets 400 (505 for badvers), or no answer
 *      where none is possible; the edge goes on serving calls afterwards.
 *
 * Addressing: the SIP domain is the edge's own `127.0.0.1:PORT` (what a softphone configured
 * with "server 127.0.0.1:PORT" uses). Each phone registers from the port it will answer on, so the
 * Contact is the address the REGISTER came from (no NAT involved on loopback).
 *
 * Without SIPp these tests fail (they do not skip): `npm test` installs it when run as root.
 * SIPEDGE_E2E_KEEP=1 keeps the temp dir (config, SQLite, SIPp message traces).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, startEdge, type EdgeProcess, type User } from '../helpers/edge.js';
import { authCallOptions, describe as describeSipp, registerOptions, requireSipp, runCallPair, runSipp, type SippOptions, type SippResult } from '../helpers/sipp.js';
import { exchange } from '../helpers/udp.js';
import type { PeerRow } from '../../src/edge-api.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'rfc4475', 'invalid');

const CALLER: User = { username: '1001', password: 'e2e-1001-Secret' };
const CALLEE: User = { username: '1002', password: 'e2e-1002-Secret' };
const RESTART_CALLEE: User = { username: '1003', password: 'e2e-1003-Secret' };

describe('sipedge end to end: registrar + stateful proxy with SIPp phones', () => {
  let edge: EdgeProcess;
  let sippDir: string;
  let failures = 0;
  /** Local UDP ports of the phones: the caller, and the callee's registered contact. */
  let callerPort: number;
  let calleePort: number;

  /** test() that counts failures, so the temp dir is kept for a look afterwards. */
  const e2e = (name: string, fn: () => Promise<void>, timeoutMs = 120_000) =>
    test(name, { timeout: timeoutMs }, async () => {
      try {
        await fn();
      } catch (err) {
        failures++;
        throw err;
      }
    });

  before(async () => {
    requireSipp();
    edge = await startEdge({ users: [CALLER, CALLEE, RESTART_CALLEE], name: 'sipedge-core' });
    sippDir = path.join(edge.dir, 'sipp');
    callerPort = await freePort({ udp: true, tcp: false });
    calleePort = await freePort({ udp: true, tcp: false });
    while (calleePort === callerPort) calleePort = await freePort({ udp: true, tcp: false });
  });

  after(async () => {
    if (!edge) return;
    const exit = await edge.stop();
    if (failures > 0 || process.env.SIPEDGE_E2E_KEEP) {
      console.error(`sipedge e2e: kept ${edge.dir} (edge config, SQLite, SIPp traces in sipp/)`);
    } else {
      fs.rmSync(edge.dir, { recursive: true, force: true });
    }
    assert.equal(exit.code, 0, `the edge did not exit 0 on SIGTERM (code ${exit.code}, signal ${exit.signal})\n${edgeTail()}`);
  });

  const edgeTail = () => `--- edge output (last 6000 chars) ---\n${edge.output().slice(-6000)}`;

  /** Asserts a SIPp run where every call must succeed. */
  function assertAllSucceeded(r: SippResult, calls: number, what: string) {
    const info = () => `${what}\n${describeSipp(r)}\n${edgeTail()}`;
    assert.equal(r.failed, 0, `${what}: ${r.failed} failed call(s)\n${info()}`);
    assert.equal(r.successful, calls, `${what}: ${r.successful} of ${calls} calls succeeded\n${info()}`);
    assert.equal(r.code, 0, `${what}: SIPp exit code ${r.code}\n${info()}`);
  }

  function register(user: User, port: number, opts: { password?: string; scenario?: string } = {}): Promise<SippResult> {
    return runSipp({
      ...registerOptions(edge.address, { username: user.username, password: opts.password ?? user.password }, port),
      scenario: opts.scenario ?? 'register_auth',
      dir: sippDir,
    });
  }

  /**
   * Runs `uasScenario` on the callee's port and `uacScenario` from the caller's port (the caller
   * authenticates as 1001), and returns both results.
   */
  async function call(
    uacScenario: string,
    uasScenario: string,
    callee: User,
    calleeAt: number,
    opts: Partial<SippOptions> & { calls: number },
  ): Promise<{ uac: SippResult; uas: SippResult }> {
    // The UAS is stopped with SIGUSR1 after the UAC: it finishes its running calls, so its counters are final.
    return runCallPair(
      { scenario: uasScenario, localPort: calleeAt, dir: sippDir, recvTimeoutMs: 10_000, timeoutMs: 180_000 },
      {
        scenario: uacScenario,
        // authUri: SIPp's digest-uri defaults to the remote ip:port; the request's URI is sip:CALLEE@DOMAIN.
        ...authCallOptions(edge.address, CALLER, callee),
        localPort: callerPort,
        pauseMs: 200,
        recvTimeoutMs: 10_000,
        timeoutMs: 120_000,
        dir: sippDir,
        ...opts,
      },
    );
  }

  e2e('(a) SIPp registers 1001 and 1002 with digest auth; a wrong password never gets 200', async () => {
    const r1 = await register(CALLER, callerPort);
    assertAllSucceeded(r1, 1, 'REGISTER 1001 (401 challenge, then 200)');
    const r2 = await register(CALLEE, calleePort);
    assertAllSucceeded(r2, 1, 'REGISTER 1002 (401 challenge, then 200)');

    // register_wrongpw.xml fails the call on any 2xx after the challenge.
    const spare = await freePort({ udp: true, tcp: false });
    const wrong = await register(CALLEE, spare, { password: 'not-the-password', scenario: 'register_wrongpw' });
    assertAllSucceeded(wrong, 1, 'REGISTER 1002 with a wrong password must be refused (401/403), never 200');
    const unknown = await register({ username: '9999', password: 'whatever' }, spare, { scenario: 'register_wrongpw' });
    assertAllSucceeded(unknown, 1, 'REGISTER of an unknown user 9999 must be refused, never 200');

    // The admin API lists the two bindings, and nothing from the refused REGISTERs.
    const peers = await edge.fetchJson<PeerRow[]>('/api/peers');
    const listing = JSON.stringify(peers, null, 1);
    for (const [user, port] of [[CALLER.username, callerPort], [CALLEE.username, calleePort]] as const) {
      assert.ok(
        peers.some((p) => p.aor.includes(`${user}@`) && p.contact.includes(`:${port}`)),
        `GET /api/peers has no binding of ${user} at port ${port}:\n${listing}`,
      );
    }
    assert.ok(!peers.some((p) => p.contact.includes(`:${spare}`) || p.aor.includes('9999@')), `a refused REGISTER created a binding:\n${listing}`);
  });

  e2e('(b) 100 calls 1001 -> 1002 through the edge at 20 calls/s: 0 failed', async () => {
    const calls = 100;
    const { uac, uas } = await call('uac_auth', 'uas', CALLEE, calleePort, { calls, rate: 20, limit: 50, pauseMs: 500 });
    assertAllSucceeded(uac, calls, 'UAC 1001 (INVITE/407/ACK/INVITE+auth/100/180/200/ACK/BYE/200)');
    assertAllSucceeded(uas, calls, 'UAS 1002 (INVITE/180/200/ACK/BYE/200)');
    // 100 and 180 are optional in uac_auth.xml (any callee may skip them); here every call has both:
    // the edge's own 100 Trying to the authenticated INVITE, and the callee's 180 relayed.
    const received = (msg: string) => uac.messages.filter((m) => m.dir === 'recv' && m.message === msg).map((m) => m.count);
    assert.equal(received('100').at(-1), calls, `100 Trying to the authenticated INVITE: ${received('100')}\n${describeSipp(uac)}`);
    assert.equal(received('180')[0], calls, `180 Ringing relayed to the caller: ${received('180')}\n${describeSipp(uac)}`);
  });

  e2e('(c1) CANCEL of a ringing call: the caller gets 200 for the CANCEL and 487 for the INVITE', async () => {
    const { uac, uas } = await call('uac_cancel', 'uas_ringing_cancel', CALLEE, calleePort, { calls: 5, rate: 5 });
    assertAllSucceeded(uac, 5, 'UAC 1001 (INVITE/180/CANCEL/200/487/ACK)');
    assertAllSucceeded(uas, 5, 'UAS 1002 (INVITE/180/CANCEL/200/487/ACK)');
  });

  e2e('(c2) 486 Busy Here from the callee reaches the caller', async () => {
    const { uac, uas } = await call('uac_busy', 'uas_busy', CALLEE, calleePort, { calls: 5, rate: 5 });
    assertAllSucceeded(uac, 5, 'UAC 1001 (INVITE/486/ACK)');
    assertAllSucceeded(uas, 5, 'UAS 1002 (INVITE/486/ACK)');
  });

  e2e('(d) the edge is restarted between REGISTER and INVITE; the call still reaches the user (SQLite)', async () => {
    const port = await freePort({ udp: true, tcp: false });
    const reg = await register(RESTART_CALLEE, port);
    assertAllSucceeded(reg, 1, 'REGISTER 1003 before the restart');

    const exit = await edge.restart();
    assert.equal(exit.code, 0, 'the edge exits 0 on SIGTERM');

    const { uac, uas } = await call('uac_auth', 'uas', RESTART_CALLEE, port, { calls: 3, rate: 5 });
    assertAllSucceeded(uac, 3, 'UAC 1001 -> 1003 after the restart');
    assertAllSucceeded(uas, 3, 'UAS 1003 after the restart (binding read back from SQLite)');
  });

  e2e('(e) RFC 4475 invalid messages over UDP get 400 (505 for badvers) or no answer; calls go on', async () => {
    const files = fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.dat')).sort();
    assert.deepEqual(files, Object.keys(RFC4475_INVALID).sort(), 'every fixture in test/fixtures/rfc4475/invalid has an expectation here, and no other');

    const rows: Array<{ file: string; expected: string; got: string; ok: boolean }> = [];
    for (const file of files) {
      const exp = RFC4475_INVALID[file];
      const payload = fs.readFileSync(path.join(FIXTURES, file));
      const x = await exchange(payload, edge.sipPort, { waitMs: exp.expect === 'none' ? 750 : 2000, untilFinal: exp.expect !== 'none' });
      const got = x.responses.length === 0 ? 'none' : x.statuses.length ? x.statuses.join(',') : `${x.responses.length} non-SIP datagram(s)`;
      const ok = exp.expect === 'none' ? x.responses.length === 0 : x.final !== undefined && exp.expect.includes(x.final);
      rows.push({ file, expected: exp.expect === 'none' ? 'none' : exp.expect.join('|'), got, ok });
    }
    const table = [
      'file             expected   got        ',
      ...rows.map((r) => `${r.ok ? ' ' : '✗'} ${r.file.padEnd(15)} ${r.expected.padEnd(10)} ${r.got}`),
    ].join('\n');
    const bad = rows.filter((r) => !r.ok);
    assert.equal(bad.length, 0, `${bad.length} RFC 4475 message(s) got the wrong answer:\n${table}\n${edgeTail()}`);

    assert.ok(edge.running, `the edge process died on the torture messages\n${edgeTail()}`);
    const { uac, uas } = await call('uac_auth', 'uas', CALLEE, calleePort, { calls: 3, rate: 5 });
    assertAllSucceeded(uac, 3, 'a call after the torture messages');
    assertAllSucceeded(uas, 3, 'the callee of the call after the torture messages');
  });
});

/**
 * What the edge must answer to each RFC 4475 invalid message (test/fixtures/README.md), sent over
 * UDP from 127.0.0.1. The edge answers to the source address and port (RFC 3581, applied even
 * when the Via has no rport), over the UDP socket the request came in on, whatever the Via says.
 *
 * `none`: responses are never answered (RFC 3261 §18.1.2: a malformed response is discarded).
 */
const RFC4475_INVALID: Record<string, { expect: number[] | 'none'; why: string }> = {
  'badinv01.dat': { expect: [400], why: '3.1.2.1 extraneous ;;,;,, separators in Via and Contact' },
  'clerr.dat': { expect: [400], why: '3.1.2.2 Content-Length larger than the datagram: over UDP, 400' },
  'ncl.dat': { expect: [400], why: '3.1.2.3 negative Content-Length' },
  'scalar02.dat': { expect: [400], why: '3.1.2.4 CSeq number beyond 2**32-1 (Max-Forwards 300, huge Expires)' },
  'scalarlg.dat': { expect: 'none', why: '3.1.2.5 a response (503) with overlarge scalars: dropped' },
  'quotbal.dat': { expect: [400], why: '3.1.2.6 unterminated quoted display name in To' },
  'ltgtruri.dat': { expect: [400], why: '3.1.2.7 Request-URI enclosed in <>' },
  'lwsruri.dat': { expect: [400], why: '3.1.2.8 LWS inside the Request-URI' },
  'lwsstart.dat': { expect: [400], why: '3.1.2.9 several SP between Request-Line elements' },
  'trws.dat': { expect: [400], why: '3.1.2.10 SP after SIP-Version in the Request-Line' },
  'escruri.dat': { expect: [400], why: '3.1.2.11 escaped headers in a SIP Request-URI' },
  'baddate.dat': { expect: [400], why: '3.1.2.12 Date with a non-GMT time zone' },
  'regbadct.dat': { expect: [400], why: '3.1.2.13 Contact with URI parameters/headers not enclosed in <>' },
  'badaspec.dat': { expect: [400], why: '3.1.2.14 SP inside the addr-spec of To' },
  'baddn.dat': { expect: [400], why: '3.1.2.15 non-token characters in an unquoted display name (also unterminated)' },
  'badvers.dat': { expect: [505], why: '3.1.2.16 SIP/7.0: 505 Version Not Supported' },
  'mismatch01.dat': { expect: [400], why: '3.1.2.17 OPTIONS with CSeq method INVITE' },
  // RFC 4475 3.1.2.18: "should respond with a 501 ... A 400 Bad Request is also acceptable".
  'mismatch02.dat': { expect: [400, 501], why: '3.1.2.18 unknown method with a CSeq method mismatch' },
  'bigcode.dat': { expect: 'none', why: '3.1.2.19 a response with status 4294967301: dropped' },
  'insuf.dat': { expect: [400], why: '3.3.1 no Call-ID, From or To' },
  'multi01.dat': { expect: [400], why: '3.3.8 several values in single-value headers (CSeq, Call-ID, From, To, Max-Forwards)' },
  'mcl01.dat': { expect: [400], why: '3.3.9 two Content-Length headers' },
};
