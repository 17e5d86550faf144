import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { parse } from 'sdp-transform';
import type { RelayEngine } from '../../src/media/relay.js';
import { closeAfterEach, HOST, makeRelay, makeSdp, Peer, portsOf, randomRange, sdpOf, type MLine } from './helpers.js';

const CALL = 'a84b4c76e66710@pc33.example.org';

const { track, peers } = closeAfterEach();

/** Offer from A (tag "a") and answer from B (tag "b"); returns the relay ports facing A and B. */
async function establish(relay: RelayEngine, a: MLine[], b: MLine[], extra: { receivedFromA?: string; receivedFromB?: string } = {}) {
  const offer = sdpOf(
    await relay.offer({
      callId: CALL,
      fromTag: 'a',
      viaBranch: 'z9hG4bK74bf9',
      sdp: makeSdp({ media: a }),
      advertiseAddress: HOST,
      receivedFrom: extra.receivedFromA ? { address: extra.receivedFromA, port: 5060 } : undefined,
    }),
  );
  const answer = sdpOf(
    await relay.answer({
      callId: CALL,
      fromTag: 'a',
      toTag: 'b',
      sdp: makeSdp({ media: b }),
      advertiseAddress: HOST,
      receivedFrom: extra.receivedFromB ? { address: extra.receivedFromB, port: 5060 } : undefined,
    }),
  );
  return { offer, answer, toB: portsOf(offer), toA: portsOf(answer) };
}

describe('relay engine (real UDP sockets on 127.0.0.1)', () => {
  it('relays 200 RTP packets each way; stats per direction', async () => {
    const { relay } = makeRelay();
    track(relay);
    const [a, b] = await peers(2);
    const { offer, answer, toA, toB } = await establish(relay, [{ port: a.port }], [{ port: b.port }]);
    assert.equal(parse(offer).connection?.ip, HOST);
    assert.notEqual(toA[0], toB[0]);
    assert.equal(toA[0] % 2, 0);
    assert.equal(toB[0] % 2, 0);
    assert.notEqual(parse(answer).media[0].port, b.port);

    await Promise.all([a.sendRtp(200, toA[0], 0x41), b.sendRtp(200, toB[0], 0x42)]);
    assert.equal(await b.waitFor(200), 200, 'A→B all arrive');
    assert.equal(await a.waitFor(200), 200, 'B→A all arrive');
    assert.ok(b.received.every((p) => p[12] === 0x41 && p.length === 172));
    assert.ok(a.received.every((p) => p[12] === 0x42));
    assert.ok(b.sources.every((s) => s === `${HOST}:${toB[0]}`), 'B receives from the socket it sends to (symmetric)');

    const st = await relay.query(CALL);
    assert.ok(st);
    assert.equal(st.legs[0].tag, 'a');
    assert.equal(st.legs[1].tag, 'b');
    assert.deepEqual(st.legs[0].received, { packets: 200, bytes: 200 * 172 });
    assert.deepEqual(st.legs[1].received, { packets: 200, bytes: 200 * 172 });
    assert.deepEqual(st.legs[0].sent, { packets: 200, bytes: 200 * 172 });
    const aRtp = st.legs[0].streams[0].rtp;
    assert.equal(aRtp.localPort, toA[0]);
    assert.deepEqual(aRtp.signalled, { address: HOST, port: a.port });
    assert.deepEqual(aRtp.latched, { address: HOST, port: a.port });
    assert.equal(typeof st.lastPacketAt, 'number');
    const [sum] = relay.list();
    assert.equal(sum.callId, CALL);
    assert.deepEqual(sum.tags, ['a', 'b']);
    assert.equal(sum.streams, 1);
    assert.deepEqual(sum.aToB, { packets: 200, bytes: 200 * 172 });
    assert.deepEqual(sum.bToA, { packets: 200, bytes: 200 * 172 });
    const c = relay.counters();
    assert.equal(c.packetsRelayed, 400);
    assert.equal(c.calls, 1);
    assert.equal(c.portPairsInUse, 2);
  });

  it('latches to the real source port when it differs from the SDP (NAT)', async () => {
    const { relay } = makeRelay();
    track(relay);
    const [aSignalled, aReal, b] = await peers(3);
    const { toA, toB } = await establish(relay, [{ port: aSignalled.port }], [{ port: b.port }]);
    // Before A's first packet, A is expected at its SDP address.
    await b.sendRtp(3, toB[0]);
    assert.equal(await aSignalled.waitFor(3), 3);
    // A's packets come from another port (its NAT mapping): the relay learns it.
    await aReal.sendRtp(5, toA[0]);
    assert.equal(await b.waitFor(5), 5);
    await b.sendRtp(50, toB[0]);
    assert.equal(await aReal.waitFor(50), 50);
    assert.equal(await aSignalled.settle(50), 3, 'nothing more to the signalled port once latched');
    const st = await relay.query(CALL);
    assert.deepEqual(st?.legs[0].streams[0].rtp.latched, { address: HOST, port: aReal.port });
    assert.deepEqual(st?.legs[0].streams[0].rtp.signalled, { address: HOST, port: aSignalled.port });
  });

  it('a private SDP address of a party signalling from elsewhere is not used: wait for its packets', async () => {
    const { relay } = makeRelay();
    track(relay);
    const [a, b] = await peers(2);
    const offer = sdpOf(
      await relay.offer({
        callId: CALL,
        fromTag: 'a',
        sdp: makeSdp({ address: '192.168.1.50', media: [{ port: 8000 }] }),
        receivedFrom: { address: HOST, port: 5060 },
        advertiseAddress: HOST,
      }),
    );
    const toA = portsOf(sdpOf(await relay.answer({ callId: CALL, fromTag: 'a', toTag: 'b', sdp: makeSdp({ media: [{ port: b.port }] }), advertiseAddress: HOST })));
    await b.sendRtp(4, portsOf(offer)[0]);
    await a.settle(50);
    let st = await relay.query(CALL);
    assert.equal(st?.legs[0].streams[0].rtp.droppedNoDestination, 4, 'not sent to 192.168.1.50');
    await a.sendRtp(1, toA[0]);
    await b.sendRtp(4, portsOf(offer)[0]);
    assert.equal(await a.waitFor(4), 4, 'sent to the latched address');
    st = await relay.query(CALL);
    assert.equal(st?.legs[0].streams[0].rtp.droppedNoDestination, 4);
  });

  it('strictSource drops a third party once latched and the window closed (RTP Bleed); counted', async () => {
    const { relay, clock } = makeRelay();
    track(relay);
    const [a, b, attacker] = await peers(3);
    const { toA, toB } = await establish(relay, [{ port: a.port }], [{ port: b.port }]);
    await a.sendRtp(5, toA[0]);
    assert.equal(await b.waitFor(5), 5);
    clock.advance(3001); // learning window over
    await attacker.sendRtp(20, toA[0], 0x66);
    await b.settle(50);
    assert.equal(b.count, 5, "the attacker's packets are not relayed");
    // B's media still goes to A, not to the attacker.
    await b.sendRtp(10, toB[0]);
    assert.equal(await a.waitFor(10), 10);
    assert.equal(attacker.count, 0);
    const st = await relay.query(CALL);
    assert.equal(st?.legs[0].streams[0].rtp.droppedSource, 20);
    assert.equal(relay.counters().droppedSource, 20);
  });

  it('within the learning window a third party cannot take over a latch on the signalled address', async () => {
    const { relay } = makeRelay();
    track(relay);
    const [a, b, attacker] = await peers(3);
    const { toA, toB } = await establish(relay, [{ port: a.port }], [{ port: b.port }]);
    await a.sendRtp(1, toA[0]); // latches and confirms (source = SDP address)
    await b.waitFor(1);
    await attacker.sendRtp(5, toA[0]); // still inside the 3 s window
    await b.sendRtp(5, toB[0]);
    assert.equal(await a.waitFor(5), 5);
    assert.equal(attacker.count, 0);
    assert.equal((await relay.query(CALL))?.legs[0].streams[0].rtp.droppedSource, 5);
  });

  it('without strictSource a third party is relayed but does not take over the latch', async () => {
    const { relay, clock } = makeRelay({ strictSource: false });
    track(relay);
    const [a, b, other] = await peers(3);
    const { toA, toB } = await establish(relay, [{ port: a.port }], [{ port: b.port }]);
    await a.sendRtp(2, toA[0]);
    await b.waitFor(2);
    clock.advance(3001);
    await other.sendRtp(3, toA[0]);
    assert.equal(await b.waitFor(5), 5);
    await b.sendRtp(3, toB[0]);
    assert.equal(await a.waitFor(3), 3);
    assert.equal(other.count, 0);
  });

  it('a re-offer keeps the relay ports and reopens learning (the endpoint moved port)', async () => {
    const { relay, clock } = makeRelay();
    track(relay);
    const [a1, a2, b] = await peers(3);
    const { toA, toB } = await establish(relay, [{ port: a1.port }], [{ port: b.port }]);
    await a1.sendRtp(2, toA[0]);
    await b.waitFor(2);
    clock.advance(10_000);
    // A moves to a2 without signalling: dropped (strict).
    await a2.sendRtp(3, toA[0]);
    assert.equal(await b.settle(50), 2);
    // re-INVITE from A with its new port: same relay ports on both sides.
    const reoffer = sdpOf(await relay.offer({ callId: CALL, fromTag: 'a', sdp: makeSdp({ version: 2, media: [{ port: a2.port }] }), advertiseAddress: HOST }));
    assert.deepEqual(portsOf(reoffer), toB);
    const reanswer = sdpOf(await relay.answer({ callId: CALL, fromTag: 'a', toTag: 'b', sdp: makeSdp({ version: 2, media: [{ port: b.port }] }), advertiseAddress: HOST }));
    assert.deepEqual(portsOf(reanswer), toA);
    await a2.sendRtp(4, toA[0]);
    assert.equal(await b.waitFor(6), 6);
    await b.sendRtp(4, toB[0]);
    assert.equal(await a2.waitFor(4), 4);
    assert.equal(a1.count, 0);
    assert.equal(relay.counters().portPairsInUse, 2);
  });

  it('a re-INVITE from the callee (its own From-tag) reuses the ports and updates its side', async () => {
    const { relay } = makeRelay();
    track(relay);
    const [a, b, b2] = await peers(3);
    const { toA, toB } = await establish(relay, [{ port: a.port }], [{ port: b.port }]);
    const off = sdpOf(await relay.offer({ callId: CALL, fromTag: 'b', toTag: 'a', sdp: makeSdp({ version: 2, media: [{ port: b2.port }] }), advertiseAddress: HOST }));
    assert.deepEqual(portsOf(off), toA, "the callee's offer goes to A with A's relay ports");
    const ans = sdpOf(await relay.answer({ callId: CALL, fromTag: 'b', toTag: 'a', sdp: makeSdp({ version: 2, media: [{ port: a.port }] }), advertiseAddress: HOST }));
    assert.deepEqual(portsOf(ans), toB);
    await a.sendRtp(5, toA[0]);
    assert.equal(await b2.waitFor(5), 5, "B's new signalled port is used before B sends");
    assert.equal(b.count, 0);
  });

  it('late offer: offer in the 200 from the callee, answer in the ACK', async () => {
    const { relay } = makeRelay();
    track(relay);
    const [a, b] = await peers(2);
    // 200 OK (From-tag a, To-tag b) carries B's offer.
    const offer = sdpOf(await relay.offer({ callId: CALL, fromTag: 'b', toTag: 'a', sdp: makeSdp({ media: [{ port: b.port }] }), advertiseAddress: HOST }));
    // ACK carries A's answer; the offerer is still b.
    const answer = sdpOf(await relay.answer({ callId: CALL, fromTag: 'b', toTag: 'a', sdp: makeSdp({ media: [{ port: a.port }] }), advertiseAddress: HOST }));
    await a.sendRtp(10, portsOf(offer)[0]);
    await b.sendRtp(10, portsOf(answer)[0]);
    assert.equal(await a.waitFor(10), 10);
    assert.equal(await b.waitFor(10), 10);
    const st = await relay.query(CALL);
    assert.deepEqual(
      st?.legs.map((l) => l.tag),
      ['b', 'a'],
    );
  });

  it('183 then 200 with the same SDP give the same answer (same o= version)', async () => {
    const { relay } = makeRelay();
    track(relay);
    const [a, b] = await peers(2);
    sdpOf(await relay.offer({ callId: CALL, fromTag: 'a', sdp: makeSdp({ media: [{ port: a.port }] }), advertiseAddress: HOST }));
    const early = sdpOf(await relay.answer({ callId: CALL, fromTag: 'a', toTag: 'b', sdp: makeSdp({ media: [{ port: b.port }] }), advertiseAddress: HOST }));
    const final = sdpOf(await relay.answer({ callId: CALL, fromTag: 'a', toTag: 'b', sdp: makeSdp({ media: [{ port: b.port }] }), advertiseAddress: HOST }));
    assert.equal(final, early);
  });

  it('relays RTCP on RTP+1, latched separately from RTP', async () => {
    const { relay } = makeRelay();
    track(relay);
    const [aRtp, aRtcp, bRtp, bRtcp, aRtcpNat] = await peers(5);
    const { offer, answer, toA, toB } = await establish(relay, [{ port: aRtp.port, rtcp: aRtcp.port }], [{ port: bRtp.port, rtcp: bRtcp.port }]);
    assert.match(offer, new RegExp(`a=rtcp:${toB[0] + 1}`));
    assert.match(answer, new RegExp(`a=rtcp:${toA[0] + 1}`));
    // A's RTCP comes from a NAT port different from its a=rtcp.
    await aRtcpNat.send('rtcp-from-a', toA[0] + 1);
    assert.equal(await bRtcp.waitFor(1), 1);
    assert.equal(bRtcp.received[0].toString(), 'rtcp-from-a');
    assert.equal(bRtp.count, 0, 'RTCP stays off the RTP port');
    await bRtcp.send('rtcp-from-b', toB[0] + 1);
    assert.equal(await aRtcpNat.waitFor(1), 1, 'RTCP to A goes to its latched RTCP source');
    assert.equal(aRtcp.count, 0);
    await aRtp.sendRtp(1, toA[0]);
    await bRtp.waitFor(1);
    const st = await relay.query(CALL);
    const s = st!.legs[0].streams[0];
    assert.deepEqual(s.rtp.latched, { address: HOST, port: aRtp.port });
    assert.deepEqual(s.rtcp.latched, { address: HOST, port: aRtcpNat.port });
    assert.deepEqual(s.rtcp.signalled, { address: HOST, port: aRtcp.port });
    assert.equal(s.rtcp.localPort, toA[0] + 1);
  });

  it('rtcp-mux: with both sides multiplexing, RTCP travels on the RTP ports', async () => {
    const { relay } = makeRelay();
    track(relay);
    const [a, b] = await peers(2);
    const { offer, answer, toA, toB } = await establish(relay, [{ port: a.port, mux: true }], [{ port: b.port, mux: true }]);
    assert.match(offer, /a=rtcp-mux/);
    assert.match(answer, /a=rtcp-mux/);
    const rtcp = Buffer.from([0x80, 200, 0, 6, 1, 2, 3, 4]); // an RTCP SR header
    await a.send(rtcp, toA[0]);
    await b.send(rtcp, toB[0]);
    assert.equal(await b.waitFor(1), 1);
    assert.equal(await a.waitFor(1), 1);
    assert.equal(b.received[0][1], 200);
    const st = await relay.query(CALL);
    assert.equal(st?.legs[0].streams[0].rtcpMux, true);
  });

  it('rtcp-mux offered but not answered: separate RTCP ports', async () => {
    const { relay } = makeRelay();
    track(relay);
    const [a, aRtcp, b, bRtcp] = await peers(4);
    const { toA } = await establish(relay, [{ port: a.port, rtcp: aRtcp.port, mux: true }], [{ port: b.port, rtcp: bRtcp.port }]);
    await aRtcp.send('rtcp', toA[0] + 1);
    assert.equal(await bRtcp.waitFor(1), 1);
    assert.equal((await relay.query(CALL))?.legs[0].streams[0].rtcpMux, false);
  });

  it('audio + video are each relayed; a rejected m-line (port 0) gets no ports', async () => {
    const { relay } = makeRelay();
    track(relay);
    const [aAudio, aVideo, bAudio, bVideo] = await peers(4);
    const { toA, toB } = await establish(
      relay,
      [{ port: aAudio.port }, { kind: 'video', port: aVideo.port }, { kind: 'video', port: 0 }],
      [{ port: bAudio.port }, { kind: 'video', port: bVideo.port }, { kind: 'video', port: 0 }],
    );
    assert.equal(toA[2], 0);
    assert.equal(toB[2], 0);
    assert.equal(relay.counters().portPairsInUse, 4, '2 relayed streams × 2 sides');
    await aAudio.sendRtp(10, toA[0], 1);
    await aVideo.sendRtp(10, toA[1], 2);
    assert.equal(await bAudio.waitFor(10), 10);
    assert.equal(await bVideo.waitFor(10), 10);
    assert.ok(bAudio.received.every((p) => p[12] === 1));
    assert.ok(bVideo.received.every((p) => p[12] === 2));
    // The answerer rejects video: its ports are released.
    sdpOf(await relay.offer({ callId: CALL, fromTag: 'a', sdp: makeSdp({ version: 2, media: [{ port: aAudio.port }, { kind: 'video', port: aVideo.port }, { kind: 'video', port: 0 }] }), advertiseAddress: HOST }));
    const ans = sdpOf(await relay.answer({ callId: CALL, fromTag: 'a', toTag: 'b', sdp: makeSdp({ version: 2, media: [{ port: bAudio.port }, { kind: 'video', port: 0 }, { kind: 'video', port: 0 }] }), advertiseAddress: HOST }));
    assert.deepEqual(portsOf(ans), [toA[0], 0, 0]);
    assert.equal(relay.counters().portPairsInUse, 2);
  });

  it('hold with c=0.0.0.0 keeps 0.0.0.0 and sends nothing to the held party; unhold resumes', async () => {
    const { relay } = makeRelay();
    track(relay);
    const [a, b] = await peers(2);
    const { toA, toB } = await establish(relay, [{ port: a.port }], [{ port: b.port }]);
    await a.sendRtp(1, toA[0]);
    await b.waitFor(1);
    const hold = sdpOf(
      await relay.offer({ callId: CALL, fromTag: 'a', sdp: makeSdp({ version: 2, address: '0.0.0.0', media: [{ port: a.port, direction: 'sendonly' }] }), advertiseAddress: HOST }),
    );
    assert.equal(parse(hold).connection?.ip, '0.0.0.0');
    assert.equal(parse(hold).media[0].direction, 'sendonly');
    assert.deepEqual(portsOf(hold), toB);
    const holdAns = sdpOf(await relay.answer({ callId: CALL, fromTag: 'a', toTag: 'b', sdp: makeSdp({ version: 2, media: [{ port: b.port, direction: 'recvonly' }] }), advertiseAddress: HOST }));
    assert.equal(parse(holdAns).media[0].direction, 'recvonly');
    await b.sendRtp(5, toB[0]);
    assert.equal(await a.settle(50), 0, 'nothing to a party on c=0.0.0.0 hold');
    const st = await relay.query(CALL);
    assert.equal(st?.legs[0].streams[0].hold, true);
    assert.equal(st?.legs[0].streams[0].direction, 'sendonly');
    assert.equal(st?.legs[0].streams[0].rtp.droppedNoDestination, 5);
    // unhold
    const unhold = sdpOf(await relay.offer({ callId: CALL, fromTag: 'a', sdp: makeSdp({ version: 3, media: [{ port: a.port }] }), advertiseAddress: HOST }));
    assert.equal(parse(unhold).connection?.ip, HOST);
    sdpOf(await relay.answer({ callId: CALL, fromTag: 'a', toTag: 'b', sdp: makeSdp({ version: 3, media: [{ port: b.port }] }), advertiseAddress: HOST }));
    await b.sendRtp(5, toB[0]);
    assert.equal(await a.waitFor(5), 5, 'audio flows again after unhold');
  });

  it('o= version towards each party follows RFC 3264 §8 across re-offers', async () => {
    const { relay } = makeRelay();
    track(relay);
    const [a, b] = await peers(2);
    const { offer } = await establish(relay, [{ port: a.port }], [{ port: b.port }]);
    const v = (s: string): string => String(parse(s).origin.sessionVersion);
    assert.equal(v(offer), '1');
    const same = sdpOf(await relay.offer({ callId: CALL, fromTag: 'a', sdp: makeSdp({ version: 2, media: [{ port: a.port }] }), advertiseAddress: HOST }));
    assert.equal(v(same), '1', 'session refresh with no change: same version');
    const changed = sdpOf(await relay.offer({ callId: CALL, fromTag: 'a', sdp: makeSdp({ version: 3, media: [{ port: a.port, direction: 'sendonly' }] }), advertiseAddress: HOST }));
    assert.equal(v(changed), '2');
  });

  it('timeout: onTimeout fires once after timeoutSec without packets (FakeClock sweep)', async () => {
    const fired: Array<[string, number, boolean]> = [];
    const { relay, clock } = makeRelay({ timeoutSec: 5, onTimeout: (id, info) => fired.push([id, info.idleMs, info.held]) });
    track(relay);
    const [a, b] = await peers(2);
    const { toA } = await establish(relay, [{ port: a.port }], [{ port: b.port }]);
    clock.advance(4000);
    await a.sendRtp(1, toA[0]); // media at t=4 s
    await b.waitFor(1);
    clock.advance(4000); // t=8 s: 4 s idle
    assert.equal(fired.length, 0);
    clock.advance(1000); // t=9 s: 5 s idle
    assert.equal(fired.length, 1);
    assert.equal(fired[0][0], CALL);
    assert.equal(fired[0][1], 5000);
    assert.equal(fired[0][2], false);
    clock.advance(60_000);
    assert.equal(fired.length, 1, 'once');
    assert.equal(relay.counters().timeouts, 1);
    assert.equal((await relay.query(CALL))?.timedOut, true);
  });

  it('timeout: a call on hold uses the hold timeout', async () => {
    const fired: string[] = [];
    const { relay, clock } = makeRelay({ timeoutSec: 5, holdTimeoutSec: 60, onTimeout: (id) => fired.push(id) });
    track(relay);
    const [a, b] = await peers(2);
    await establish(relay, [{ port: a.port, direction: 'sendonly' }], [{ port: b.port, direction: 'recvonly' }]);
    clock.advance(30_000);
    assert.equal(fired.length, 0);
    clock.advance(31_000);
    assert.deepEqual(fired, [CALL]);
  });

  it('delete releases the ports and closes the sockets', async () => {
    const { relay } = makeRelay();
    track(relay);
    const [a, b] = await peers(2);
    const { toA, toB } = await establish(relay, [{ port: a.port }], [{ port: b.port }]);
    assert.equal(relay.counters().portPairsInUse, 2);
    await relay.delete({ callId: CALL, fromTag: 'a', toTag: 'b' });
    assert.equal(relay.counters().portPairsInUse, 0);
    assert.equal(await relay.query(CALL), undefined);
    assert.deepEqual(relay.list(), []);
    // The four ports can be bound again.
    for (const port of [toA[0], toA[0] + 1, toB[0], toB[0] + 1]) {
      const s = dgram.createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.bind(port, HOST, () => resolve());
      });
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
    await relay.delete({ callId: CALL }); // unknown: no-op
    const r = await relay.answer({ callId: CALL, fromTag: 'a', toTag: 'b', sdp: makeSdp({ media: [{ port: b.port }] }), advertiseAddress: HOST });
    assert.equal(!r.ok && r.code, 'UNKNOWN_CALL');
  });

  it('port exhaustion → NO_PORTS (counted); ports come back after delete', async () => {
    const { relay } = makeRelay({ ports: randomRange(2) });
    track(relay);
    const first = await relay.offer({ callId: 'c1', fromTag: 'a', sdp: makeSdp({ media: [{ port: 9000 }] }), advertiseAddress: HOST });
    assert.ok(first.ok);
    const second = await relay.offer({ callId: 'c2', fromTag: 'a', sdp: makeSdp({ media: [{ port: 9000 }] }), advertiseAddress: HOST });
    assert.equal(second.ok, false);
    assert.equal(!second.ok && second.code, 'NO_PORTS');
    assert.equal(relay.counters().noPorts, 1);
    assert.deepEqual(
      relay.list().map((c) => c.callId),
      ['c1'],
      'the failed call leaves nothing behind',
    );
    // A call needing two streams when only one pair is left for each side releases what it got.
    await relay.delete({ callId: 'c1' });
    const two = await relay.offer({ callId: 'c3', fromTag: 'a', sdp: makeSdp({ media: [{ port: 9000 }, { kind: 'video', port: 9002 }] }), advertiseAddress: HOST });
    assert.equal(!two.ok && two.code, 'NO_PORTS');
    assert.equal(relay.counters().portPairsInUse, 0);
    const again = await relay.offer({ callId: 'c4', fromTag: 'a', sdp: makeSdp({ media: [{ port: 9000 }] }), advertiseAddress: HOST });
    assert.ok(again.ok);
  });

  it('skips a port in the range that another process holds', async () => {
    const range = randomRange(3);
    const squatter = await Peer.open(range.low + 2).then(track);
    const { relay } = makeRelay({ ports: range });
    track(relay);
    const [a] = await peers(1);
    for (let i = 0; i < 5; i++) {
      const r = sdpOf(await relay.offer({ callId: `c${i}`, fromTag: 'a', sdp: makeSdp({ media: [{ port: a.port }] }), advertiseAddress: HOST }));
      assert.notEqual(portsOf(r)[0], squatter.port);
      await relay.delete({ callId: `c${i}` });
    }
  });

  it('bad SDP → BAD_SDP; answer for an unknown call or tag → UNKNOWN_CALL; m-line count mismatch → BAD_SDP', async () => {
    const { relay } = makeRelay();
    track(relay);
    const bad = await relay.offer({ callId: CALL, fromTag: 'a', sdp: 'not sdp', advertiseAddress: HOST });
    assert.equal(!bad.ok && bad.code, 'BAD_SDP');
    assert.deepEqual(relay.list(), []);
    const unknown = await relay.answer({ callId: 'nope', fromTag: 'a', toTag: 'b', sdp: makeSdp({ media: [{ port: 9000 }] }), advertiseAddress: HOST });
    assert.equal(!unknown.ok && unknown.code, 'UNKNOWN_CALL');
    assert.ok((await relay.offer({ callId: CALL, fromTag: 'a', sdp: makeSdp({ media: [{ port: 9000 }] }), advertiseAddress: HOST })).ok);
    const wrongTag = await relay.answer({ callId: CALL, fromTag: 'x', toTag: 'b', sdp: makeSdp({ media: [{ port: 9000 }] }), advertiseAddress: HOST });
    assert.equal(!wrongTag.ok && wrongTag.code, 'UNKNOWN_CALL');
    const mismatch = await relay.answer({ callId: CALL, fromTag: 'a', toTag: 'b', sdp: makeSdp({ media: [{ port: 9000 }, { port: 9002 }] }), advertiseAddress: HOST });
    assert.equal(!mismatch.ok && mismatch.code, 'BAD_SDP');
    assert.equal(relay.counters().badSdp, 2);
    const noIp = await relay.offer({ callId: 'y', fromTag: 'a', sdp: makeSdp({ media: [{ port: 9000 }] }), advertiseAddress: 'pbx.example.org' });
    assert.equal(!noIp.ok && noIp.code, 'ENGINE_ERROR');
  });

  it('close() releases everything; later offers fail with ENGINE_ERROR', async () => {
    const { relay, clock } = makeRelay();
    const [a, b] = await peers(2);
    await establish(relay, [{ port: a.port }], [{ port: b.port }]);
    await relay.close();
    assert.equal(relay.counters().portPairsInUse, 0);
    assert.equal(clock.pending, 0, 'sweep timer cancelled');
    const r = await relay.offer({ callId: 'x', fromTag: 'a', sdp: makeSdp({ media: [{ port: 9000 }] }), advertiseAddress: HOST });
    assert.equal(!r.ok && r.code, 'ENGINE_ERROR');
  });
});
