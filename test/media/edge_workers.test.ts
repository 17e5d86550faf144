/**
 * The edge with `media.workers: 2`: the proxy drives the relay worker threads through the same
 * MediaControl interface (src/proxy/media_session.ts unchanged). Real sockets only: `Edge.start`
 * in process on 127.0.0.1:0, scripted SIP UAs and one UDP socket per phone for RTP.
 *
 * Asserted: both SDPs point at the relay; RTP crosses it both ways; `show calls` (edge.calls(),
 * from the worker's query) counts the packets; calls spread over both workers; BYE deletes the
 * media session and frees its ports; a call without media is ended with a BYE to each party
 * after media.timeout (the timeout is detected in the worker and forwarded to the proxy).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { getHeader } from '../../src/sip/headers.js';
import { WorkerRelayPool } from '../../src/media/workers.js';
import { makeSdp } from './helpers.js';
import { RANGE, closeAll, establish, hangUp, phone, register, reply, rtpBothWays, startEdge, until } from '../proxy/media_calls.js';

after(closeAll);

describe('edge with media.workers: 2', () => {
  test('calls are relayed by worker threads; show calls counts packets; BYE frees the ports', async () => {
    const e = await startEdge(`{ relay: always, ports: "${RANGE.low}-${RANGE.high}", address: 127.0.0.1, timeout: 30, workers: 2 }`);
    const pool = e.edge.media;
    assert.ok(pool instanceof WorkerRelayPool, 'the edge built the worker pool');
    assert.equal(pool.size, 2);
    const alice = await phone('alice', '3001');
    const bob = await phone('bob', '3002');
    const carol = await phone('carol', '3003');
    const dave = await phone('dave', '3004');
    for (const p of [alice, bob, carol, dave]) await register(p, e);

    const c1 = await establish(e, alice, bob, {
      offer: makeSdp({ user: 'alice', media: [{ port: alice.rtp.port }] }),
      answer: makeSdp({ user: 'bob', media: [{ port: bob.rtp.port }] }),
    });
    const c2 = await establish(e, carol, dave, {
      offer: makeSdp({ user: 'carol', media: [{ port: carol.rtp.port }] }),
      answer: makeSdp({ user: 'dave', media: [{ port: dave.rtp.port }] }),
    });
    assert.notEqual(pool.workerOf(c1.callId), pool.workerOf(c2.callId), 'two calls, two workers');

    for (const c of [c1, c2]) {
      const { atCallee, atCaller } = await rtpBothWays(c, 100);
      assert.equal(atCallee, 100, 'caller → callee through the relay');
      assert.equal(atCaller, 100, 'callee → caller through the relay');
    }
    const rows = await e.edge.calls();
    for (const c of [c1, c2]) {
      const row = rows.find((r) => r.callId === c.callId);
      assert.ok(row, 'call listed');
      assert.equal(row.media, 'relay');
      const caller = row.legs?.find((l) => l.role === 'caller');
      assert.equal(caller?.received.packets, 100);
      assert.equal(caller?.sent.packets, 100);
    }
    assert.equal(pool.counters().portPairsInUse, 4);

    await hangUp(c1);
    await hangUp(c2);
    await until(() => pool.counters().calls === 0, 2000, 'media sessions deleted after BYE');
    await until(() => pool.counters().portPairsInUse === 0, 2000, 'ports released');
    assert.ok(pool.counters().packetsRelayed >= 400);
  });

  test('no RTP for media.timeout: the worker reports it and the edge sends BYE to both sides', async () => {
    const e = await startEdge(`{ relay: always, ports: "${RANGE.low}-${RANGE.high}", address: 127.0.0.1, timeout: 1, workers: 2 }`);
    const gina = await phone('gina', '6001');
    const hank = await phone('hank', '6002');
    await register(hank, e);
    const c = await establish(e, gina, hank, {
      offer: makeSdp({ user: 'gina', media: [{ port: gina.rtp.port }] }),
      answer: makeSdp({ user: 'hank', media: [{ port: hank.rtp.port }] }),
    });
    const [toCallee, toCaller] = await Promise.all([hank.ua.nextRequest('BYE', 5000), gina.ua.nextRequest('BYE', 5000)]);
    assert.equal(getHeader(toCallee.msg, 'call-id'), c.callId);
    assert.equal(getHeader(toCaller.msg, 'call-id'), c.callId);
    reply(hank.ua, toCallee, 200, 'OK');
    reply(gina.ua, toCaller, 200, 'OK');
    await until(async () => (await e.edge.calls()).length === 0, 2000, 'calls() empty');
    assert.equal(e.edge.proxy.stats.mediaTimeouts, 1);
    await until(() => e.edge.media!.counters().calls === 0, 2000, 'media session deleted');
    // The worker frees the ports once its sockets are closed (reported with its delete reply).
    await until(() => e.edge.media!.counters().portPairsInUse === 0, 2000, 'ports released');
  });
});
