/**
 * The NAT lab itself, against real kernel NAT: these prove the lab behaves like the networks the
 * sipedge NAT tests rely on (port-preserving and --random-fully MASQUERADE, cloud 1:1 NAT,
 * conntrack expiry, unroutable private addresses, clean teardown).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Lab, type NetAgent, type UdpSocket } from '../../lab/lab.js';
import { grepPayloads, readPcap } from '../../lab/pcap.js';
import { labForTests, type TestLab } from '../../lab/testing.js';

const UDP_TIMEOUT = 5;
const ECHO_PORT = 7000;

let env: TestLab;
const agents: NetAgent[] = [];
let tmp = '';

async function agent(lab: Lab, host: Parameters<Lab['agent']>[0]): Promise<NetAgent> {
  const a = await lab.agent(host);
  agents.push(a);
  return a;
}

/** Send from `sock` to the echo server and return the source address the server saw. */
async function mappedVia(sock: UdpSocket, server: string, tag: string): Promise<{ ip: string; port: number }> {
  sock.drain();
  await sock.send(tag, ECHO_PORT, server);
  for (;;) {
    const m = await sock.recv(3000);
    assert.ok(m, `no echo for ${tag}`);
    const e = /^ECHO (\S+):(\d+) (.*)$/s.exec(m.data);
    assert.ok(e, `unexpected reply ${m.data}`);
    if (e[3] !== tag) continue;
    assert.equal(m.from, server, 'echo comes back from the server address');
    return { ip: e[1], port: Number(e[2]) };
  }
}

describe('NAT lab (real kernel NAT)', { timeout: 90_000 }, () => {
  before(async () => {
    env = await labForTests('set', { udpTimeout: UDP_TIMEOUT });
    tmp = mkdtempSync(path.join(tmpdir(), 'sipedge-lab-'));
  });

  afterEach(async () => {
    for (const a of agents.splice(0)) await a.close().catch(() => {});
  });

  after(async () => {
    for (const a of agents.splice(0)) await a.close().catch(() => {});
    await env?.teardown();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('MASQUERADE: home1 keeps the source port, home2 (--random-fully) randomizes it; TCP is masqueraded too', async (t) => {
    const lab = env.need(t);
    if (!lab) return;
    const pub1 = await agent(lab, 'pub1');
    const echo = await pub1.udpBind(ECHO_PORT, { echo: true });
    const a1 = await agent(lab, 'a1');
    const b1 = await agent(lab, 'b1');
    const sa = await a1.udpBind(5060);
    const sb = await b1.udpBind(5060);

    const ma = await mappedVia(sa, lab.addr('pub1').ip, 'a1-hello');
    assert.deepEqual(ma, { ip: '198.51.100.11', port: 5060 }, 'a1 seen as home1 WAN with port 5060 preserved');
    const seenA = await waitFor(() => echo.received.find((m) => m.data === 'a1-hello'));
    assert.ok(seenA, 'echo server in pub1 logged the datagram');
    assert.equal(seenA.from, '198.51.100.11');

    const mb = await mappedVia(sb, lab.addr('pub1').ip, 'b1-hello');
    assert.equal(mb.ip, '198.51.100.12', 'b1 seen as home2 WAN');
    assert.notEqual(mb.port, 5060, 'home2 --random-fully must not keep port 5060');

    // the router's conntrack table agrees with what the server saw
    const ct = await lab.conntrack('home1', 'udp');
    assert.ok(
      ct.some((e) => e.orig.src === '192.168.1.10' && e.orig.sport === 5060 && e.reply.dst === '198.51.100.11' && e.reply.dport === 5060),
      `home1 conntrack shows a1's mapping: ${ct.map((e) => e.raw).join(' | ')}`,
    );

    // TCP: a phone's connection leaves with the router's address too
    await pub1.tcpListen(5061);
    const seen = await a1.tcpProbe('198.51.100.50', 5061);
    assert.match(seen, /^FROM 198\.51\.100\.11:\d+\n$/);
  });

  test('two phones behind one MASQUERADE, both from port 5060, get distinct mapped ports', async (t) => {
    const lab = env.need(t);
    if (!lab) return;
    const pub2 = await agent(lab, 'pub2');
    await pub2.udpBind(ECHO_PORT, { echo: true });
    const a1 = await agent(lab, 'a1');
    const a2 = await agent(lab, 'a2');
    const s1 = await a1.udpBind(5060, { address: '192.168.1.10' });
    const s2 = await a2.udpBind(5060, { address: '192.168.1.11' });
    const server = lab.addr('pub2').ip;
    const m1 = await mappedVia(s1, server, 'from-a1');
    const m2 = await mappedVia(s2, server, 'from-a2');
    assert.equal(m1.ip, '198.51.100.11');
    assert.equal(m2.ip, '198.51.100.11');
    assert.notEqual(m1.port, m2.port, `a1 and a2 must map to distinct ports (got ${m1.port} and ${m2.port})`);
  });

  test('cloud 1:1 NAT: 203.0.113.10:5060 reaches the edge on 10.0.0.10, replies come from 203.0.113.10; no 10.x on the wire', async (t) => {
    const lab = env.need(t);
    if (!lab) return;
    const pcap = path.join(tmp, 'public.pcap');
    const cap = await lab.capturePublic(pcap, 'udp');
    const edge = await agent(lab, 'edge');
    const pub1 = await agent(lab, 'pub1');
    const srv = await edge.udpBind(5060, { address: '10.0.0.10', echo: true });
    const cli = await pub1.udpBind(5080);

    await cli.send('INVITE-ish 10.0.0.10', 5060, '203.0.113.10');
    const got = await srv.recv(3000);
    assert.ok(got, 'edge listener on 10.0.0.10:5060 got the packet sent to 203.0.113.10:5060');
    assert.equal(got.from, '198.51.100.50', 'inbound DNAT keeps the real source');
    assert.equal(got.port, 5080);
    const reply = await cli.recv(3000);
    assert.ok(reply, 'reply from the edge reaches pub1');
    assert.equal(reply.from, '203.0.113.10', 'the reply comes back from the public address');
    assert.equal(reply.port, 5060, '1:1 NAT keeps the port');

    // the edge's outbound traffic leaves as 203.0.113.10 with its port preserved
    const out = await edge.udpBind(5070, { address: '10.0.0.10' });
    const echo = await pub1.udpBind(ECHO_PORT, { echo: true });
    assert.deepEqual(await mappedVia(out, '198.51.100.50', 'edge-out'), { ip: '203.0.113.10', port: 5070 });
    assert.ok(await waitFor(() => echo.received.length > 0), 'echo server logged the edge datagram');

    // IMDS address on the cloud's inside, reachable from the edge
    const cloud = await agent(lab, 'cloud');
    await cloud.tcpListen(80, { address: '169.254.169.254' });
    assert.match(await edge.tcpProbe('169.254.169.254', 80), /^FROM 10\.0\.0\.10:\d+\n$/);

    // localnet phone reaches the edge directly, without NAT
    const lan1 = await agent(lab, 'lan1');
    const l = await lan1.udpBind(5060);
    await l.send('from-lan1', 5060, '10.0.0.10');
    const fromLan = await srv.recv(3000);
    assert.ok(fromLan, 'lan1 reaches the edge on its private address');
    assert.equal(fromLan.from, '10.0.0.20');

    await sleep(200);
    await cap.stop();
    const pkts = readPcap(pcap);
    assert.ok(
      pkts.some((p) => p.src === '198.51.100.50' && p.dst === '203.0.113.10' && p.dport === 5060),
      'capture on the public segment saw the request',
    );
    assert.ok(pkts.some((p) => p.src === '203.0.113.10' && p.sport === 5060 && p.dst === '198.51.100.50'), 'and the reply');
    assert.ok(!pkts.some((p) => p.src.startsWith('10.') || p.dst.startsWith('10.')), 'no 10.x address in IP headers');
    // the payload text deliberately contains "10.0.0.10": the grep helper must find it
    const hits = grepPayloads(pkts, /\b10\.\d+\.\d+\.\d+\b/);
    assert.ok(hits.some((h) => h.line === 'INVITE-ish 10.0.0.10'), 'grepPayloads finds private addresses in payloads');
  });

  test(`conntrack UDP timeout ${UDP_TIMEOUT} s: an idle mapping expires, a kept-alive one survives`, async (t) => {
    const lab = env.need(t);
    if (!lab) return;
    assert.deepEqual(await lab.getUdpTimeout('home1'), { udp: UDP_TIMEOUT, stream: UDP_TIMEOUT });
    await lab.conntrackFlush('home1');
    const pub1 = await agent(lab, 'pub1');
    const server = await pub1.udpBind(7100, { echo: true });
    const a1 = await agent(lab, 'a1');
    const a2 = await agent(lab, 'a2');
    const idle = await a1.udpBind(5090);
    const kept = await a2.udpBind(5090);
    const mIdle = await mappedVia7100(idle, 'idle');
    const mKept = await mappedVia7100(kept, 'kept');

    // positive control: the server reaches both phones through their mappings right now
    await server.send('probe-0', mIdle.port, mIdle.ip);
    await server.send('probe-0', mKept.port, mKept.ip);
    assert.equal((await idle.recv(2000))?.data, 'probe-0');
    assert.equal((await kept.recv(2000))?.data, 'probe-0');

    // a2 keeps its mapping alive every 2 s; a1 stays silent
    const waitMs = (UDP_TIMEOUT + 2) * 1000;
    const t0 = Date.now();
    while (Date.now() - t0 < waitMs) {
      await sleep(2000);
      await kept.send('keepalive', 7100, '198.51.100.50');
    }
    idle.drain();
    kept.drain();
    await server.send('probe-1', mIdle.port, mIdle.ip);
    await server.send('probe-1', mKept.port, mKept.ip);
    const gotKept = await nextData(kept, 'probe-1', 2000);
    const gotIdle = await nextData(idle, 'probe-1', 1500);
    assert.ok(gotKept, 'the kept-alive mapping still delivers');
    assert.equal(gotIdle, null, `after ${UDP_TIMEOUT + 2} s of silence the NAT must have closed a1's mapping`);

    async function mappedVia7100(sock: UdpSocket, tag: string): Promise<{ ip: string; port: number }> {
      await sock.send(tag, 7100, '198.51.100.50');
      const m = await sock.recv(3000);
      assert.ok(m, `no echo for ${tag}`);
      const e = /^ECHO (\S+):(\d+) /.exec(m.data);
      assert.ok(e, `unexpected reply ${m.data}`);
      return { ip: e[1], port: Number(e[2]) };
    }
  });

  test('private addresses are unroutable from the internet (and counted as dropped there)', async (t) => {
    const lab = env.need(t);
    if (!lab) return;
    const a1 = await agent(lab, 'a1');
    const edge = await agent(lab, 'edge');
    const pub1 = await agent(lab, 'pub1');
    const target = await a1.udpBind(5070);
    const counter = await lab.countUdp('a1', { dport: [5070, 5070], name: 'a1_5070' });
    const leaksBefore = await lab.privateLeaks();

    const s = await pub1.udpBind(0);
    const e = await edge.udpBind(0);
    for (let i = 0; i < 3; i++) {
      await s.send(`direct-${i}`, 5070, '192.168.1.10');
      await e.send(`from-edge-${i}`, 5070, '192.168.1.10');
    }
    assert.equal(await target.recv(1500), null, 'nothing sent to 192.168.1.10 from outside arrives at a1');
    assert.equal(await counter.packets(), 0, 'a1 counted no packet on 5070');
    const leaks = await lab.privateLeaks();
    assert.equal(
      leaks.byNet['192.168.0.0/16'].packets - leaksBefore.byNet['192.168.0.0/16'].packets,
      6,
      'the internet saw (and dropped) all 6 packets to the private address',
    );

    // the counter does count when packets do arrive (via the NAT mapping)
    const echo = await pub1.udpBind(ECHO_PORT, { echo: true });
    await target.send('hi', ECHO_PORT, '198.51.100.50');
    assert.ok(await target.recv(2000), 'echo back through home1');
    assert.ok(await waitFor(() => echo.received.length >= 1), 'echo server logged the datagram');
    assert.equal(await counter.packets(), 1, 'counter saw exactly the echo');
    await counter.reset();
    assert.equal(await counter.packets(), 0);
  });

  test('teardown leaves no namespace with the prefix, is idempotent, and cleans up after a crash', async (t) => {
    const lab = env.need(t);
    if (!lab) return;
    // a process left running inside a namespace (as after a crash) must not keep it alive
    const orphan = lab.spawn('pub2', ['sleep', '300'], { stdio: 'ignore', detached: true });
    orphan.unref();
    for (const a of agents.splice(0)) await a.close().catch(() => {});
    // a fresh Lab object with no memory of what was built
    const fresh = new Lab({ prefix: lab.prefix });
    assert.ok((await fresh.namespaces()).length >= 12, 'the lab is up before teardown');
    await fresh.down();
    assert.deepEqual(await fresh.namespaces(), []);
    assert.ok(!(await Lab.listNamespaces()).some((n) => n.startsWith(lab.prefix)), 'no namespace with the prefix');
    await fresh.down(); // idempotent
    await sleep(100);
    assert.equal(orphan.exitCode !== null || orphan.signalCode !== null, true, 'process inside the lab was ended');
  });
});

/** Poll until fn() is truthy (events from different namespaces arrive over different pipes). */
async function waitFor<T>(fn: () => T, timeoutMs = 2000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v || Date.now() > until) return v;
    await sleep(20);
  }
}

async function nextData(sock: UdpSocket, data: string, timeoutMs: number): Promise<string | null> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const left = until - Date.now();
    if (left <= 0) return null;
    const m = await sock.recv(left);
    if (!m) return null;
    if (m.data === data) return m.data;
  }
}
