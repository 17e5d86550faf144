/**
 * Media through the edge: the proxy drives the in-process relay with the SDP offer/answer of
 * each call (src/proxy/media_session.ts). Real sockets only: `Edge.start` in process on
 * 127.0.0.1:0 with the memory store, scripted SIP UAs (test/proxy/ua.ts) and one UDP socket
 * per phone for RTP (test/media/helpers.ts `Peer`).
 *
 * Asserted: the SDP each side receives points at the relay (127.0.0.1, a port of media.ports);
 * RTP crosses the relay both ways (100 packets each way, counted at the receiver); hold and
 * unhold by re-INVITE keep the direction attributes and the relay ports; an UPDATE from the
 * callee moves its media; late offer (offer in the 200, answer in the ACK); a bad offer gets
 * 488; `relay: never` leaves the SDP byte for byte; `relay: nat` relays an sdp-private caller
 * only; an exhausted port range answers 503 and forwards nothing; a call without media is ended
 * after media.timeout with a BYE to each party built per RFC 3261 §15.1.1 and leaves calls();
 * `show calls` JSON (GET /api/calls) carries the packet counts; the address/relay decisions.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createApiServer, type ApiServer } from '../../src/api/server.js';
import { formatCalls } from '../../src/cli/commands/show.js';
import { getHeader, getHeaderValues } from '../../src/sip/headers.js';
import type { SipRequest, SipResponse } from '../../src/sip/message.js';
import type { CallRow } from '../../src/edge-api.js';
import { HOST, branch, rand, tagOf, wire } from './ua.js';
import { Peer, makeSdp } from '../media/helpers.js';
import { mediaAddressFor, shouldRelay } from '../../src/proxy/media_session.js';
import { parseCidrs } from '../../src/nat/advertise.js';
import { detectNat } from '../../src/nat/detect.js';
import { parseMessage } from '../../src/sip/parse.js';
import {
  RANGE,
  assertRelayed,
  bodyOf,
  closeAll,
  closers,
  establish,
  hangUp,
  inDialog,
  media,
  phone,
  reInvite,
  register,
  reply,
  rtpBothWays,
  startEdge,
  until,
  type Phone,
  type Running,
} from './media_calls.js';

after(closeAll);

// ------------------------------------------------------------------ relay: always

describe('media relay: always', () => {
  let e: Running;
  let alice: Phone;
  let bob: Phone;
  let api: ApiServer;

  before(async () => {
    e = await startEdge(`{ relay: always, ports: "${RANGE.low}-${RANGE.high}", address: 127.0.0.1, timeout: 30 }`);
    alice = await phone('alice', '2001');
    bob = await phone('bob', '2002');
    await register(alice, e);
    await register(bob, e);
    api = await createApiServer(e.edge, { listen: '127.0.0.1:0' });
    closers.push(() => api.close());
  });

  test('SDP points at the relay both ways; 100 RTP packets cross each way; show calls counts them; BYE ends it', async () => {
    const offer = makeSdp({ user: 'alice', media: [{ port: alice.rtp.port }] });
    const answer = makeSdp({ user: 'bob', media: [{ port: bob.rtp.port }] });
    const c = await establish(e, alice, bob, { offer, answer, early: true });
    assert.notEqual(c.relayForCallee, alice.rtp.port);
    assert.notEqual(c.relayForCaller, c.relayForCallee, 'one relay port per side');
    assert.doesNotMatch(bodyOf(c.invite.msg), new RegExp(`m=audio ${alice.rtp.port} `), "the caller's own port is not shown to the callee");

    const { atCallee, atCaller } = await rtpBothWays(c, 100);
    assert.equal(atCallee, 100, 'caller → callee through the relay');
    assert.equal(atCaller, 100, 'callee → caller through the relay');
    assert.ok(alice.rtp.sources.every((s) => s === `${HOST}:${c.relayForCaller}`), 'the caller hears from the relay port it sends to (symmetric RTP)');
    assert.ok(bob.rtp.sources.every((s) => s === `${HOST}:${c.relayForCallee}`), 'the callee hears from the relay port it sends to');

    // GET /api/calls (what `sipedge show calls --json` prints) while the call is up.
    const res = await fetch(`http://${api.address.address}:${api.address.port}/api/calls`);
    const rows = (await res.json()) as CallRow[];
    const row = rows.find((r) => r.callId === c.callId);
    assert.ok(row, `call listed: ${JSON.stringify(rows)}`);
    assert.equal(row.state, 'confirmed');
    assert.equal(row.media, 'relay');
    assert.equal(row.from, `sip:2001@${e.domain}`);
    assert.equal(row.to, `sip:2002@${e.domain}`);
    const caller = row.legs?.find((l) => l.role === 'caller');
    const callee = row.legs?.find((l) => l.role === 'callee');
    assert.ok(caller && callee, 'both legs listed');
    assert.equal(caller.tag, c.fromTag);
    assert.equal(callee.tag, c.toTag);
    assert.equal(caller.received.packets, 100, 'caller → relay packets');
    assert.equal(callee.received.packets, 100, 'callee → relay packets');
    assert.equal(caller.sent.packets, 100, 'relay → caller packets');
    assert.equal(caller.received.bytes, 100 * 172);
    assert.equal(caller.streams[0].rtp.signalled, `${HOST}:${alice.rtp.port}`);
    assert.equal(caller.streams[0].rtp.latched, `${HOST}:${alice.rtp.port}`);
    assert.equal(caller.streams[0].rtp.relayPort, c.relayForCaller);
    assert.equal(callee.streams[0].rtp.latched, `${HOST}:${bob.rtp.port}`);
    assert.match(formatCalls(rows), /relay\s+100 pkts\s+100 pkts/, 'show calls table: packets per direction');

    await hangUp(c);
    await until(async () => !(await e.edge.calls()).some((r) => r.callId === c.callId), 2000, 'call gone after BYE');
    await until(() => e.edge.media!.counters().calls === 0, 2000, 'media session deleted after BYE');
  });

  test('hold (a=sendonly) and unhold by re-INVITE keep the direction and the relay ports; media flows again', async () => {
    const c = await establish(e, alice, bob, {
      offer: makeSdp({ user: 'alice', media: [{ port: alice.rtp.port }] }),
      answer: makeSdp({ user: 'bob', media: [{ port: bob.rtp.port }] }),
    });
    let flow = await rtpBothWays(c, 50);
    assert.deepEqual(flow, { atCallee: 50, atCaller: 50 });

    const hold = await reInvite(
      e,
      c,
      makeSdp({ user: 'alice', version: 2, media: [{ port: alice.rtp.port, direction: 'sendonly' }] }),
      makeSdp({ user: 'bob', version: 2, media: [{ port: bob.rtp.port, direction: 'recvonly' }] }),
    );
    assert.equal(media(hold.atCallee).direction, 'sendonly', 'a=sendonly reaches the callee');
    assert.equal(media(hold.atCaller).direction, 'recvonly', 'a=recvonly reaches the caller');
    assert.equal(assertRelayed(hold.atCallee, 're-INVITE at the callee'), c.relayForCallee, 'same relay port after the re-offer');
    assert.equal(assertRelayed(hold.atCaller, '200 to the re-INVITE'), c.relayForCaller);
    // Music on hold still flows from the holding side.
    bob.rtp.clear();
    await alice.rtp.sendRtp(20, c.relayForCaller!);
    assert.equal(await bob.rtp.waitFor(20), 20, 'held: caller → callee still relayed');

    const unhold = await reInvite(
      e,
      c,
      makeSdp({ user: 'alice', version: 3, media: [{ port: alice.rtp.port }] }),
      makeSdp({ user: 'bob', version: 3, media: [{ port: bob.rtp.port }] }),
    );
    assert.equal(media(unhold.atCallee).direction, 'sendrecv');
    assert.equal(media(unhold.atCaller).direction, 'sendrecv');
    flow = await rtpBothWays(c, 100);
    assert.deepEqual(flow, { atCallee: 100, atCaller: 100 }, 'audio both ways after unhold');
    await hangUp(c);
  });

  test('UPDATE from the callee moves its media to a new port; the relay ports stay; RTP follows', async () => {
    const c = await establish(e, alice, bob, {
      offer: makeSdp({ user: 'alice', media: [{ port: alice.rtp.port }] }),
      answer: makeSdp({ user: 'bob', media: [{ port: bob.rtp.port }] }),
    });
    const moved = await Peer.open();
    closers.push(() => moved.close());
    // RFC 3311: the callee offers in an UPDATE (its tag in From), the caller answers in the 200.
    c.calleeCseq = 1;
    inDialog(bob.ua, {
      method: 'UPDATE',
      target: c.callerTarget,
      routes: c.calleeRoutes,
      from: c.to,
      to: c.from,
      callId: c.callId,
      cseq: c.calleeCseq,
      sdp: makeSdp({ user: 'bob', version: 2, media: [{ port: moved.port }] }),
    });
    const upd = await alice.ua.nextRequest('UPDATE');
    assert.equal(assertRelayed(bodyOf(upd.msg), 'UPDATE at the caller'), c.relayForCaller, "the caller keeps sending to the same relay port");
    reply(alice.ua, upd, 200, 'OK', { contactUser: alice.user, sdp: makeSdp({ user: 'alice', version: 2, media: [{ port: alice.rtp.port }] }) });
    const ok = await bob.ua.nextResponse('UPDATE', 200);
    assert.equal(assertRelayed(bodyOf(ok.msg), '200 to the UPDATE at the callee'), c.relayForCallee);
    const flow = await rtpBothWays({ ...c, callee: { ...bob, rtp: moved } }, 100);
    assert.deepEqual(flow, { atCallee: 100, atCaller: 100 }, 'media follows the callee to its new port');
    await hangUp(c);
  });

  test('an unusable SDP offer is answered 488 and not forwarded', async () => {
    bob.ua.clear();
    const callId = `media-${rand(6)}`;
    alice.ua.send(
      [
        `INVITE sip:2002@${e.domain} SIP/2.0`,
        `Via: ${alice.ua.via(branch())}`,
        'Max-Forwards: 70',
        `From: <sip:2001@${e.domain}>;tag=${rand(4)}`,
        `To: <sip:2002@${e.domain}>`,
        `Call-ID: ${callId}`,
        'CSeq: 1 INVITE',
        `Contact: <${alice.ua.contact('2001')}>`,
        'Content-Type: application/sdp',
      ].join('\n'),
      e.port,
      HOST,
      'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n',
    );
    const res = await alice.ua.next<SipResponse>((m) => m.type === 'response' && getHeader(m, 'call-id') === callId && m.status >= 200, 2000, 'final response');
    assert.equal(res.msg.status, 488, `${res.msg.status} ${res.msg.reason}`);
    await bob.ua.none((m) => m.type === 'request' && m.method === 'INVITE', 200, 'INVITE with bad SDP forwarded');
    assert.ok(!(await e.edge.calls()).some((r) => r.callId === callId), 'no call left behind');
  });

  test('late offer: INVITE without SDP, offer in the 200, answer in the ACK', async () => {
    const c = await establish(e, alice, bob, {
      answer: makeSdp({ user: 'bob', media: [{ port: bob.rtp.port }] }),
      lateAnswer: makeSdp({ user: 'alice', media: [{ port: alice.rtp.port }] }),
    });
    assert.equal(c.invite.msg.body.length, 0, 'the INVITE reaches the callee without a body');
    const ack = await bob.ua.nextRequest('ACK');
    c.relayForCallee = assertRelayed(bodyOf(ack.msg), 'answer in the ACK at the callee');
    assert.notEqual(c.relayForCallee, c.relayForCaller);
    const flow = await rtpBothWays(c, 100);
    assert.deepEqual(flow, { atCallee: 100, atCaller: 100 });
    await hangUp(c);
  });
});

// ------------------------------------------------------------------ relay: never

describe('media relay: never', () => {
  test('SDP is forwarded byte for byte (direct media)', async () => {
    const e = await startEdge(`{ relay: never, ports: "${RANGE.low}-${RANGE.high}" }`);
    const carol = await phone('carol', '3001');
    const dave = await phone('dave', '3002');
    await register(dave, e);
    const offer = makeSdp({ user: 'carol', media: [{ port: carol.rtp.port }, { kind: 'video', port: carol.rtp.port + 2 }] }) + 'a=x-unknown:keep me\r\n';
    const answer = makeSdp({ user: 'dave', media: [{ port: dave.rtp.port }, { kind: 'video', port: 0 }] });
    const c = await establish(e, carol, dave, { offer, answer, expectRelay: false });
    assert.ok(c.invite.msg.body.equals(Buffer.from(offer)), 'INVITE SDP unchanged');
    assert.ok(c.ok.msg.body.equals(Buffer.from(answer)), '200 SDP unchanged');
    assert.equal(e.edge.media!.counters().calls, 0, 'no media session');
    const rows = await e.edge.calls();
    assert.equal(rows.find((r) => r.callId === c.callId)?.media, 'direct');
    await hangUp(c);
  });
});

// ------------------------------------------------------------------ port exhaustion

describe('media ports exhausted', () => {
  test('503 to the INVITE, nothing forwarded; ports come back after BYE', async () => {
    // Two RTP/RTCP pairs: exactly one call (one pair per side).
    const e = await startEdge(`{ relay: always, ports: "40100-40103", address: 127.0.0.1 }`);
    const erin = await phone('erin', '4001');
    const frank = await phone('frank', '4002');
    await register(frank, e);
    const sdpE = makeSdp({ user: 'erin', media: [{ port: erin.rtp.port }] });
    const sdpF = makeSdp({ user: 'frank', media: [{ port: frank.rtp.port }] });
    const first = await establish(e, erin, frank, { offer: sdpE, answer: sdpF, expectRelay: false });
    const small = { low: 40100, high: 40103 };
    assertRelayed(bodyOf(first.invite.msg), 'first call at the callee', small);
    assertRelayed(bodyOf(first.ok.msg), 'first call at the caller', small);

    const callId = `media-${rand(6)}`;
    const inv = [
      `INVITE sip:4002@${e.domain} SIP/2.0`,
      `Via: ${erin.ua.via(branch())}`,
      'Max-Forwards: 70',
      `From: <sip:4001@${e.domain}>;tag=${rand(4)}`,
      `To: <sip:4002@${e.domain}>`,
      `Call-ID: ${callId}`,
      'CSeq: 1 INVITE',
      `Contact: <${erin.ua.contact('4001')}>`,
      'Content-Type: application/sdp',
    ].join('\n');
    erin.ua.send(inv, e.port, HOST, sdpE);
    const res = await erin.ua.next<SipResponse>((m) => m.type === 'response' && getHeader(m, 'call-id') === callId && m.status >= 200, 2000, 'final response');
    assert.equal(res.msg.status, 503, `${res.msg.status} ${res.msg.reason}`);
    await frank.ua.none((m) => m.type === 'request' && m.method === 'INVITE', 200, 'INVITE forwarded without media ports');
    assert.ok(e.edge.media!.counters().noPorts >= 1, 'counted');

    await hangUp(first);
    await until(() => e.edge.media!.counters().portPairsInUse === 0, 2000, 'ports released');
    const again = await establish(e, erin, frank, { offer: sdpE, answer: sdpF, expectRelay: false });
    assertRelayed(bodyOf(again.invite.msg), 'call after the ports came back', small);
    await hangUp(again);
  });
});

// ------------------------------------------------------------------ media timeout

describe('media timeout', () => {
  test('no RTP for media.timeout: the edge sends BYE to both sides and forgets the call', async () => {
    const e = await startEdge(`{ relay: always, ports: "${RANGE.low}-${RANGE.high}", address: 127.0.0.1, timeout: 1 }`);
    const gina = await phone('gina', '5001');
    const hank = await phone('hank', '5002');
    await register(hank, e);
    const c = await establish(e, gina, hank, {
      offer: makeSdp({ user: 'gina', media: [{ port: gina.rtp.port }] }),
      answer: makeSdp({ user: 'hank', media: [{ port: hank.rtp.port }] }),
    });
    assert.ok((await e.edge.calls()).some((r) => r.callId === c.callId));

    const [toCallee, toCaller] = await Promise.all([hank.ua.nextRequest('BYE', 5000), gina.ua.nextRequest('BYE', 5000)]);
    // RFC 3261 §15.1.1 / §12.2.1.1: each BYE as the other party would send it.
    assert.equal(toCallee.msg.uri, c.calleeTarget, "BYE to the callee: Request-URI = callee's Contact");
    assert.equal(tagOf(getHeader(toCallee.msg, 'from')), c.fromTag);
    assert.equal(tagOf(getHeader(toCallee.msg, 'to')), c.toTag);
    assert.equal(getHeader(toCallee.msg, 'call-id'), c.callId);
    assert.equal(getHeader(toCallee.msg, 'cseq'), '2 BYE', "the caller's last CSeq + 1");
    assert.equal(toCaller.msg.uri, c.callerTarget, "BYE to the caller: Request-URI = caller's Contact");
    assert.equal(tagOf(getHeader(toCaller.msg, 'from')), c.toTag);
    assert.equal(tagOf(getHeader(toCaller.msg, 'to')), c.fromTag);
    assert.equal(getHeader(toCaller.msg, 'call-id'), c.callId);
    assert.match(getHeader(toCaller.msg, 'cseq') ?? '', /^\d+ BYE$/);
    for (const b of [toCallee, toCaller]) assert.match(getHeaderValues(b.msg, 'via')[0], new RegExp(`^SIP/2.0/UDP ${HOST}:${e.port};branch=z9hG4bK`));
    reply(hank.ua, toCallee, 200, 'OK');
    reply(gina.ua, toCaller, 200, 'OK');

    await until(async () => (await e.edge.calls()).length === 0, 2000, 'calls() empty');
    assert.equal(e.edge.proxy.stats.mediaTimeouts, 1, 'counted on the proxy stats');
    assert.equal(e.edge.media!.counters().calls, 0, 'media session deleted');
  });
});

// ------------------------------------------------------------------ relay: nat

describe('media relay: nat', () => {
  test('a caller whose SDP c= is private (source public) is relayed; an all-loopback call is not', async () => {
    const e = await startEdge(`{ relay: nat, ports: "${RANGE.low}-${RANGE.high}", address: 127.0.0.1 }`);
    const ivan = await phone('ivan', '7001');
    const judy = await phone('judy', '7002');
    await register(judy, e);
    const answer = makeSdp({ user: 'judy', media: [{ port: judy.rtp.port }] });

    const direct = makeSdp({ user: 'ivan', media: [{ port: ivan.rtp.port }] });
    const c1 = await establish(e, ivan, judy, { offer: direct, answer, expectRelay: false });
    assert.ok(c1.invite.msg.body.equals(Buffer.from(direct)), 'not NATed, same side: SDP unchanged');
    assert.equal((await e.edge.calls()).find((r) => r.callId === c1.callId)?.media, 'direct');
    await hangUp(c1);

    const natted = makeSdp({ user: 'ivan', address: '10.0.0.5', media: [{ port: 4000 }] });
    const c2 = await establish(e, ivan, judy, { offer: natted, answer, expectRelay: false });
    assertRelayed(bodyOf(c2.invite.msg), 'sdp-private caller: INVITE at the callee');
    assertRelayed(bodyOf(c2.ok.msg), 'sdp-private caller: 200 at the caller');
    assert.equal((await e.edge.calls()).find((r) => r.callId === c2.callId)?.media, 'relay');
    await hangUp(c2);
  });
});

// ------------------------------------------------------------------ decisions (pure functions)

describe('media address and relay decisions', () => {
  const localnet = parseCidrs(['10.0.0.0/8']);

  test('mediaAddressFor: private towards localnet/loopback, advertised/public towards the outside', () => {
    // An empty interface table: "the socket's own private network" plays no part here.
    const ctx = { publicAddress: '203.0.113.10', localnet, interfaces: {} };
    const noPublic = { localnet, interfaces: {} };
    const m = { address: '10.0.0.10' };
    assert.equal(mediaAddressFor('10.1.2.3', m, ctx), '10.0.0.10');
    assert.equal(mediaAddressFor('127.0.0.1', m, ctx), '10.0.0.10');
    assert.equal(mediaAddressFor('198.51.100.7', m, ctx), '203.0.113.10', 'outside: the public address');
    assert.equal(mediaAddressFor('198.51.100.7', { ...m, advertise: '203.0.113.99' }, ctx), '203.0.113.99', 'media.advertise wins outside');
    assert.equal(mediaAddressFor('10.1.2.3', { ...m, advertise: '203.0.113.99' }, ctx), '10.0.0.10', 'never the public one inside');
    const sock = { id: 'udp', transport: 'udp' as const, address: '10.0.0.20', port: 5060, advertised: { host: '203.0.113.20', port: 5060 } };
    assert.equal(mediaAddressFor('198.51.100.7', {}, noPublic, sock), '203.0.113.20', "no public address: the SIP socket's `as`");
    assert.equal(mediaAddressFor('198.51.100.7', m, noPublic), '10.0.0.10', 'then media.address');
    assert.equal(mediaAddressFor('198.51.100.7', {}, noPublic, { ...sock, advertised: undefined }), '10.0.0.20', "then the SIP socket's address");
    assert.equal(mediaAddressFor('10.1.2.3', { address: '0.0.0.0' }, ctx, sock), '10.0.0.20', 'a wildcard media.address falls back to the socket');
  });

  test('shouldRelay: always / never / nat', () => {
    const base = { callerNat: false, calleeNat: false, callerInside: false, calleeInside: [false] };
    assert.equal(shouldRelay('always', base), true);
    assert.equal(shouldRelay('never', { ...base, callerNat: true }), false);
    assert.equal(shouldRelay('nat', base), false);
    assert.equal(shouldRelay('nat', { ...base, callerNat: true }), true);
    assert.equal(shouldRelay('nat', { ...base, calleeNat: true }), true);
    assert.equal(shouldRelay('nat', { ...base, calleeInside: [true] }), true, 'different sides of localnet');
    assert.equal(shouldRelay('nat', { ...base, callerInside: true, calleeInside: [true] }), false);
  });

  test('detectNat sdp-private: a private c= from a public source means NATed (the relay: nat input)', () => {
    const invite = (host: string, sdpAddress: string): SipRequest => {
      const r = parseMessage(
        wire(
          [
            'INVITE sip:bob@example.org SIP/2.0',
            `Via: SIP/2.0/UDP ${host}:5060;branch=z9hG4bKx1`,
            'From: <sip:alice@example.org>;tag=a',
            'To: <sip:bob@example.org>',
            'Call-ID: c1',
            'CSeq: 1 INVITE',
            `Contact: <sip:alice@${host}:5060>`,
            'Content-Type: application/sdp',
          ].join('\n'),
          makeSdp({ address: sdpAddress, media: [{ port: 4000 }] }),
        ),
      );
      assert.ok(r.ok);
      return r.message as SipRequest;
    };
    const natted = detectNat(invite('198.51.100.7', '192.168.1.5'), { address: '198.51.100.7', port: 5060 });
    assert.ok(natted.tests.includes('sdp-private'), `tests: ${natted.tests.join(',')}`);
    assert.equal(natted.nat, true);
    const lan = detectNat(invite('192.168.1.5', '192.168.1.5'), { address: '192.168.1.5', port: 5060 });
    assert.equal(lan.nat, false, 'a LAN phone announcing its own (source) address is not NATed');
  });
});
