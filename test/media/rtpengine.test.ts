/**
 * Integration test of the ng client (src/media/ng.ts) against a real rtpengine: Debian's
 * `rtpengine-daemon` package (binary `rtpengine`), run in userspace mode (`--table=-1`, no
 * kernel module) on loopback. Offer and answer go through `createMediaControl({kind:
 * 'rtpengine'})`, the SDP must come back rewritten to rtpengine's ports, and real RTP between
 * two UDP sockets must cross it both ways; then the call is deleted.
 *
 * A second test runs a call through an in-process edge with `media.engine: rtpengine:udp:…`.
 *
 * When rtpengine is not installed this test FAILS (it does not skip): install it with
 * `apt-get install -y rtpengine-daemon` (CI does, see .ci/run).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { parse } from 'sdp-transform';
import { SystemClock } from '../../src/lib/clock.js';
import { createMediaControl, type MediaControl, type NgMediaControl } from '../../src/media/index.js';
import { freePort } from '../helpers/edge.js';
import { HOST, Peer, makeSdp, sleep } from './helpers.js';
import { assertRelayed, bodyOf, closeAll, establish, hangUp, phone, register, rtpBothWays, startEdge, until } from '../proxy/media_calls.js';

const PORT_MIN = 41000;
const PORT_MAX = 41199;

/** The rtpengine daemon binary, or undefined. */
function findRtpengine(): string | undefined {
  for (const p of ['/usr/bin/rtpengine', '/usr/sbin/rtpengine', '/usr/local/bin/rtpengine']) if (fs.existsSync(p)) return p;
  const w = spawnSync('sh', ['-c', 'command -v rtpengine'], { encoding: 'utf8' });
  const found = w.stdout.trim();
  return w.status === 0 && found ? found : undefined;
}

function connection(sdp: string): { address: string; ports: number[] } {
  const s = parse(sdp);
  return { address: s.media[0].connection?.ip ?? s.connection?.ip ?? '', ports: s.media.map((m) => m.port) };
}

describe('ng client against a real rtpengine (userspace, loopback)', () => {
  let child: ChildProcess | undefined;
  let output = '';
  let ng: MediaControl;
  let ngPort: number;

  before(async () => {
    const bin = findRtpengine();
    if (!bin) {
      throw new Error(
        'rtpengine is not installed: this integration test needs the Debian package rtpengine-daemon ' +
          '(`apt-get install -y rtpengine-daemon`, binary /usr/bin/rtpengine). It fails instead of skipping on purpose.',
      );
    }
    ngPort = await freePort({ udp: true, tcp: false });
    child = spawn(
      bin,
      [
        '--config-file=none',
        '--table=-1',
        `--interface=${HOST}`,
        `--listen-ng=${HOST}:${ngPort}`,
        `--port-min=${PORT_MIN}`,
        `--port-max=${PORT_MAX}`,
        '--foreground',
        '--log-stderr',
        '--log-level=6',
        '--delete-delay=0',
        '--num-threads=2',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout?.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.stderr?.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.once('exit', (code, signal) => (output += `\n[rtpengine exited: code ${code}, signal ${signal}]\n`));
    ng = createMediaControl({ kind: 'rtpengine', host: HOST, port: ngPort }, { clock: new SystemClock(), ports: { low: PORT_MIN, high: PORT_MAX }, strictSource: true });
    // Wait for the ng socket: ping until pong.
    const until = Date.now() + 10_000;
    while (!(await (ng as NgMediaControl).ping())) {
      if (Date.now() > until || child.exitCode !== null) throw new Error(`rtpengine did not answer ng ping on ${HOST}:${ngPort}\n--- output ---\n${output}`);
      await sleep(100);
    }
  });

  after(async () => {
    await closeAll();
    await ng?.close();
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGTERM');
      const t = setTimeout(() => child!.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
  });

  it('offer/answer rewrite the SDP to rtpengine ports; RTP crosses both ways; delete', async () => {
    const a = await Peer.open();
    const b = await Peer.open();
    try {
      const callId = `rtpe-${Date.now()}`;
      const offer = await ng.offer({
        callId,
        fromTag: 'tag-a',
        viaBranch: 'z9hG4bK-test',
        sdp: makeSdp({ user: 'a', media: [{ port: a.port }] }),
        receivedFrom: { address: HOST, port: 5060 },
        advertiseAddress: HOST,
      });
      assert.ok(offer.ok, `offer: ${JSON.stringify(offer)}\n${output}`);
      const toB = connection(offer.sdp);
      assert.equal(toB.address, HOST, 'offer: c= is rtpengine (loopback)');
      assert.ok(toB.ports[0] >= PORT_MIN && toB.ports[0] <= PORT_MAX, `offer: m= port ${toB.ports[0]} is one of rtpengine's`);
      assert.notEqual(toB.ports[0], a.port);

      const answer = await ng.answer({
        callId,
        fromTag: 'tag-a',
        toTag: 'tag-b',
        sdp: makeSdp({ user: 'b', media: [{ port: b.port }] }),
        receivedFrom: { address: HOST, port: 5062 },
        advertiseAddress: HOST,
      });
      assert.ok(answer.ok, `answer: ${JSON.stringify(answer)}\n${output}`);
      const toA = connection(answer.sdp);
      assert.equal(toA.address, HOST, 'answer: c= is rtpengine');
      assert.ok(toA.ports[0] >= PORT_MIN && toA.ports[0] <= PORT_MAX, `answer: m= port ${toA.ports[0]} is one of rtpengine's`);
      assert.notEqual(toA.ports[0], toB.ports[0]);

      // A sends to the port in the answer, B to the port in the offer.
      await a.sendRtp(100, toA.ports[0], 0x41);
      await b.sendRtp(100, toB.ports[0], 0x42);
      const atB = await b.waitFor(100, 3000);
      const atA = await a.waitFor(100, 3000);
      assert.ok(atB >= 99, `A → B through rtpengine: ${atB}/100\n${output}`);
      assert.ok(atA >= 99, `B → A through rtpengine: ${atA}/100`);
      assert.ok(b.received.every((p) => p[12] === 0x41), 'B got A’s packets');
      assert.ok(a.received.every((p) => p[12] === 0x42), 'A got B’s packets');
      assert.ok(b.sources.every((s) => s === `${HOST}:${toB.ports[0]}`), 'symmetric: B hears from the port it sends to');

      const q = await ng.query(callId);
      assert.ok(q, 'query knows the call');
      const total = q.legs.reduce((n, l) => n + l.received.packets, 0);
      assert.ok(total >= 198, `query counts the relayed packets: ${total}`);

      await ng.delete({ callId, fromTag: 'tag-a' });
      assert.equal(await ng.query(callId), undefined, 'deleted');
      // Nothing is relayed any more.
      b.clear();
      await a.sendRtp(10, toA.ports[0]);
      assert.equal(await b.settle(200), 0, 'no relay after delete');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('the proxy drives rtpengine (media.engine: rtpengine:udp:…): a call relays RTP both ways, BYE deletes it', async () => {
    const range = { low: PORT_MIN, high: PORT_MAX };
    const e = await startEdge(`{ relay: always, engine: "rtpengine:udp:${HOST}:${ngPort}" }`);
    const alice = await phone('alice-rtpe', '6001');
    const bob = await phone('bob-rtpe', '6002');
    await register(bob, e);
    const c = await establish(e, alice, bob, {
      offer: makeSdp({ user: 'alice', media: [{ port: alice.rtp.port }] }),
      answer: makeSdp({ user: 'bob', media: [{ port: bob.rtp.port }] }),
      expectRelay: false,
    });
    c.relayForCallee = assertRelayed(bodyOf(c.invite.msg), 'INVITE at the callee (rtpengine)', range);
    c.relayForCaller = assertRelayed(bodyOf(c.ok.msg), '200 at the caller (rtpengine)', range);
    const flow = await rtpBothWays(c, 100);
    assert.ok(flow.atCallee >= 99 && flow.atCaller >= 99, `RTP through rtpengine: ${JSON.stringify(flow)}\n${output}`);
    const rows = await e.edge.calls();
    const row = rows.find((r) => r.callId === c.callId);
    assert.equal(row?.media, 'relay');
    assert.ok((row?.legs ?? []).reduce((n, l) => n + l.received.packets, 0) >= 198, `show calls counts rtpengine's packets: ${JSON.stringify(row)}`);
    await hangUp(c);
    await until(async () => (await e.edge.media!.query(c.callId)) === undefined, 3000, 'rtpengine call deleted after BYE');
  });
});
