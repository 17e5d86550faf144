/**
 * Issue 4, "Done when": near-end NAT — sipedge itself behind a cloud 1:1 NAT — in the NAT lab
 * (lab/README.md), with the real CLI, the real kernel NAT, the IMDS emulator and SIPp phones.
 *
 * The edge runs in namespace `edge` on 10.0.0.10 (public 203.0.113.10 through the `cloud`
 * router's DNAT/SNAT), listening on udp/tcp 10.0.0.10:5060 with NO `as`; its public address
 * comes from `publicAddress.discover: [aws]` against the IMDS emulator on 169.254.169.254 in the
 * `cloud` namespace (refresh 5 s); `localnet: [10.0.0.0/8]`. Phones (SIPp, port 5070, RTP 6000):
 * 1001 = a1 (behind home1), 1002 = b1 (behind home2, --random-fully), 1003 = lan1 (the edge's
 * own LAN), 1004 = pub1 (public, no NAT). Domain sip.example.org.
 *
 *  (a) registrations and a full call a1 → b1 with RTP both ways (each phone plays a 7 s PCMA
 *      pcap) while the whole public segment is captured: no 10.0.0.0/8 address anywhere in SIP or
 *      SDP, nothing on the internet was addressed to 10/8, our Via / Record-Route / SDP / keepalive
 *      Contact say 203.0.113.10, and each phone received the other's RTP through the relay.
 *  (b) lan1 registers and calls pub1, pub1 hangs up: everything the edge sends to lan1 names
 *      10.0.0.10 (Via, its Record-Route entry, SDP), everything it sends to pub1 names
 *      203.0.113.10 (Via, Record-Route, SDP) — checked on a capture of the edge's own interface.
 *  (c) a request sent to the public address with a Route naming that address is handled locally:
 *      OPTIONS → 200, an unauthenticated INVITE → 407, never 482/483, and the edge never sends a
 *      packet to its own public address.
 *  (d) the emulator's public IP changes: after the refresh interval GET /api/settings (and
 *      `sipedge show settings --json`) shows it and a new call's Via / Record-Route / SDP use it;
 *      then with `refresh: 0`, `sipedge reload` picks up the next change at once; a reload that
 *      empties `localnet` leaves lan1 inside (it is on the edge's own private subnet); the
 *      registered phones stay registered (GET /api/peers unchanged) and the old public address is
 *      still recognised as ours.
 *
 * The tests run in order and build on each other (phones registered in (a)/(b) are used in (d)).
 *
 * Needs root (network namespaces): otherwise every test is skipped with a loud banner
 * (lab/testing.ts). Needs SIPp (`sip-tester`, with pcap play) and tcpdump; missing ones fail.
 * SIPEDGE_E2E_KEEP=1 keeps the work dir (config, edge log, SIPp traces, captures).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import YAML from 'yaml';
import type { HostName, Lab, NetAgent } from '../../lab/lab.js';
import { grepPayloads, readPcap, type PcapPacket } from '../../lab/pcap.js';
import { labForTests, type TestLab } from '../../lab/testing.js';
import { REPO_ROOT } from '../helpers/edge.js';
import { cliIn, httpIn, httpJsonIn, sippIn, spawnIn, startEdgeIn, waitOutputIn, waitUdpBound, type NsProcess, type SippRun } from '../helpers/netns.js';
import { requireSipp, SCENARIO_DIR } from '../helpers/sipp.js';
import { parseMessage } from '../../src/sip/parse.js';
import { getHeader, getHeaderValues } from '../../src/sip/headers.js';
import type { SipMessage, SipRequest, SipResponse } from '../../src/sip/message.js';
import { parseVia } from '../../src/sip/via.js';

const PUBLIC = '203.0.113.10';
const PRIVATE = '10.0.0.10';
const DOMAIN = 'sip.example.org';
const API = 'http://127.0.0.1:8088';
const SIP_PORT = 5070;
const RTP_PORT = 6000;
const PCAP_CANDIDATES = ['/usr/share/sip-tester/g711a.pcap', '/usr/share/sipp/pcap/g711a.pcap', '/usr/local/share/sipp/pcap/g711a.pcap'];
const PRIV10 = /\b10\.\d{1,3}\.\d{1,3}\.\d{1,3}\b/;

interface Phone {
  host: HostName;
  user: string;
  password: string;
}
const A1: Phone = { host: 'a1', user: '1001', password: 'nat-near-1001' };
const B1: Phone = { host: 'b1', user: '1002', password: 'nat-near-1002' };
const LAN1: Phone = { host: 'lan1', user: '1003', password: 'nat-near-1003' };
const PUB1: Phone = { host: 'pub1', user: '1004', password: 'nat-near-1004' };

let env: TestLab;
let work = '';
let configPath = '';
let edge: NsProcess | undefined;
let imds: NsProcess | undefined;
/** The edge's output so far (stdout + stderr). */
const edgeOut = (): string => edge?.out() ?? '';
let failures = 0;
const agents: NetAgent[] = [];

/** The edge's config (refresh can be changed for the reload test). */
function edgeConfig(refresh: number, localnet = ['10.0.0.0/8']): Record<string, unknown> {
  return {
    listen: [`udp:${PRIVATE}:5060`, `tcp:${PRIVATE}:5060`],
    publicAddress: { discover: ['aws'], metadata: { aws: 'http://169.254.169.254' }, refresh },
    localnet,
    registrar: { domains: [DOMAIN] },
    users: [A1, B1, LAN1, PUB1].map((p) => ({ username: p.user, password: p.password })),
    media: { relay: 'always', address: PRIVATE, ports: '20000-20999' },
    nat: { keepalive: { method: 'options', interval: 5 } },
    store: `sqlite:${path.join(work, 'sipedge.db')}`,
    api: { listen: '127.0.0.1:8088' },
    log: { level: 'info' },
  };
}

const edgeTail = (): string => `--- edge output (last 5000 chars) ---\n${edgeOut().slice(-5000)}`;

/** The edge's admin API (inside the edge namespace). */
function api<T>(lab: Lab, p: string): Promise<T> {
  return httpJsonIn<T>(lab, 'edge', `${API}${p}`);
}

/** SIPp inside a namespace, working directory = the work dir (where g711a.pcap and the scenarios are). */
function sipp(lab: Lab, host: HostName, scenario: string, args: string[], timeoutMs = 60_000): SippRun {
  return sippIn(lab, host, ['-sf', path.join(work, `${scenario}.xml`), ...args, '-timeout', `${Math.floor(timeoutMs / 1000) - 2}s`], { dir: work, name: scenario, timeoutMs });
}

async function assertSippOk(r: SippRun, res: { code: number | null; out: string }, what: string): Promise<void> {
  assert.equal(res.code, 0, `${what}: SIPp failed\n${r.describe(res)}\n${edgeTail()}`);
}

/** Where a phone sends its requests: the LAN phone to the edge's own address, everyone else to the public one. */
const edgeAddressFor = (p: Phone): string => (p.host === 'lan1' ? PRIVATE : PUBLIC);

async function register(lab: Lab, p: Phone): Promise<void> {
  const ip = lab.addr(p.host).ip;
  const r = sipp(lab, p.host, 'register_auth', [
    `${edgeAddressFor(p)}:5060`,
    '-i',
    ip,
    '-p',
    String(SIP_PORT),
    '-m',
    '1',
    '-s',
    p.user,
    '-au',
    p.user,
    '-ap',
    p.password,
    '-key',
    'domain',
    DOMAIN,
    '-key',
    'contact',
    `${ip}:${SIP_PORT}`,
    '-key',
    'expires',
    '600',
    '-recv_timeout',
    '5000',
  ]);
  await assertSippOk(r, await r.done, `REGISTER ${p.user} from ${p.host}`);
}

/**
 * A call caller → callee through the edge. `media`: both play the PCMA pcap, the caller hangs up
 * after `holdMs`; otherwise the callee hangs up after 1 s.
 */
async function call(lab: Lab, caller: Phone, callee: Phone, media: boolean, holdMs = 9000): Promise<void> {
  const calleeIp = lab.addr(callee.host).ip;
  const callerIp = lab.addr(caller.host).ip;
  const uas = sipp(lab, callee.host, media ? 'nat_near_uas_media' : 'nat_near_uas_bye', [
    '-i',
    calleeIp,
    '-p',
    String(SIP_PORT),
    '-mp',
    String(RTP_PORT),
    '-m',
    '1',
    '-aa',
    '-recv_timeout',
    '20000',
  ]);
  await waitUdpBound(lab, callee.host, SIP_PORT);
  const uac = sipp(lab, caller.host, media ? 'nat_near_uac_media' : 'nat_near_uac_wait_bye', [
    `${edgeAddressFor(caller)}:5060`,
    '-i',
    callerIp,
    '-p',
    String(SIP_PORT),
    '-mp',
    String(RTP_PORT),
    '-m',
    '1',
    '-d',
    String(holdMs),
    '-s',
    callee.user,
    '-au',
    caller.user,
    '-ap',
    caller.password,
    '-auth_uri',
    `${callee.user}@${DOMAIN}`,
    '-key',
    'domain',
    DOMAIN,
    '-key',
    'caller',
    caller.user,
    '-recv_timeout',
    '15000',
  ]);
  const uacRes = await uac.done;
  const uasRes = await Promise.race([uas.done, sleep(5000).then(() => uas.stop())]);
  await assertSippOk(uac, uacRes, `caller ${caller.user} (${caller.host}) → ${callee.user}`);
  await assertSippOk(uas, uasRes, `callee ${callee.user} (${callee.host})`);
}

/** One SIP message on the wire (from a capture). */
interface Wire {
  pkt: PcapPacket;
  msg: SipMessage;
}

function sipOf(packets: PcapPacket[]): Wire[] {
  const out: Wire[] = [];
  for (const p of packets) {
    if (p.proto !== 'udp' || p.payload.length < 12) continue;
    const head = p.payload.subarray(0, 16).toString('latin1');
    if (!/^(SIP\/2\.0|[A-Z]+ )/.test(head)) continue;
    const r = parseMessage(p.payload);
    if (r.ok) out.push({ pkt: p, msg: r.message });
  }
  return out;
}

const isReq = (m: SipMessage): m is SipRequest => m.type === 'request';
const label = (w: Wire): string =>
  `${w.pkt.src}:${w.pkt.sport} → ${w.pkt.dst}:${w.pkt.dport} ${isReq(w.msg) ? `${w.msg.method} ${w.msg.uri}` : `${(w.msg as SipResponse).status} (${getHeader(w.msg, 'cseq')})`}`;

function topViaHostPort(m: SipMessage): string {
  const v = parseVia(getHeader(m, 'via') ?? '');
  assert.ok(v.ok, `Via parses in ${getHeader(m, 'call-id')}`);
  return `${v.value.host}:${v.value.port ?? 5060}`;
}

/** host:port of each Record-Route (flow token dropped). */
function rrHostPorts(m: SipMessage): string[] {
  return getHeaderValues(m, 'record-route').map((rr) => {
    const uri = rr.replace(/^[^<]*</, '').replace(/>.*$/, '');
    const hp = uri.replace(/^sips?:([^@]*@)?/, '').replace(/;.*$/, '');
    return hp.includes(':') ? hp : `${hp}:5060`;
  });
}

function sdpConnection(m: SipMessage): string | undefined {
  const body = m.body.toString('latin1');
  return /^c=IN IP4 (\S+)/m.exec(body)?.[1];
}

describe('near-end NAT: sipedge behind a cloud 1:1 NAT (NAT lab, real kernel NAT)', { timeout: 420_000 }, () => {
  const lt = (name: string, fn: (lab: Lab) => Promise<void>) =>
    test(name, { timeout: 180_000 }, async (t) => {
      const lab = env.need(t);
      if (!lab) return;
      try {
        await fn(lab);
      } catch (err) {
        failures++;
        if (work) fs.appendFileSync(path.join(work, 'failures.txt'), `${name}\n${(err as Error)?.stack ?? String(err)}\n\n`);
        throw err;
      }
    });

  before(async () => {
    env = await labForTests('senear');
    const lab = env.lab;
    if (!lab) return;
    requireSipp();
    const pcap = PCAP_CANDIDATES.find((p) => fs.existsSync(p));
    assert.ok(pcap, `SIPp's g711a.pcap not found (looked in ${PCAP_CANDIDATES.join(', ')}); install sip-tester`);
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'sipedge-nat-near-'));
    // SIPp looks for pcap files next to the scenario: scenarios and pcap together in the work dir.
    fs.copyFileSync(pcap, path.join(work, 'g711a.pcap'));
    for (const s of ['register_auth', 'nat_near_uac_media', 'nat_near_uas_media', 'nat_near_uac_wait_bye', 'nat_near_uas_bye']) {
      fs.copyFileSync(path.join(SCENARIO_DIR, `${s}.xml`), path.join(work, `${s}.xml`));
    }
    const v = spawnSync('sipp', ['-v'], { encoding: 'utf8' });
    assert.ok(/PCAP/.test(`${v.stdout}${v.stderr}`), `this SIPp has no pcap play support: ${v.stdout}`);

    imds = spawnIn(lab, 'cloud', [process.execPath, '--import', 'tsx', path.join(REPO_ROOT, 'test', 'helpers', 'imds.ts'), '--listen', '169.254.169.254:80', '--ip', PUBLIC]);
    await waitOutputIn(imds, /imds listening/, 'IMDS emulator', 40_000);

    configPath = path.join(work, 'sipedge.yaml');
    fs.writeFileSync(configPath, YAML.stringify(edgeConfig(5)));
    edge = await startEdgeIn(lab, 'edge', configPath, 60_000);
  });

  after(async () => {
    for (const a of agents.splice(0)) await a.close().catch(() => {});
    await edge?.stop();
    await imds?.stop();
    await env?.teardown();
    if (work) {
      if (failures > 0 || process.env.SIPEDGE_E2E_KEEP) {
        fs.writeFileSync(path.join(work, 'edge.log'), edgeOut());
        console.error(`nat_near: kept ${work} (config, edge.log, SIPp traces, captures)`);
      } else fs.rmSync(work, { recursive: true, force: true });
    }
  });

  lt('(a) phones behind two home NATs register and call with media both ways; the public segment never sees 10.0.0.0/8', async (lab) => {
    const settings = await api<{ publicAddress: { address: string; source: string } }>(lab, '/api/settings');
    assert.equal(settings.publicAddress.address, PUBLIC, 'discovered from the IMDS emulator');
    assert.equal(settings.publicAddress.source, 'aws');

    const leaksBefore = (await lab.privateLeaks()).byNet['10.0.0.0/8'].packets;
    const rtpA = await lab.countUdp('a1', { dport: RTP_PORT, name: 'nn_rtp_a1' });
    const rtpB = await lab.countUdp('b1', { dport: RTP_PORT, name: 'nn_rtp_b1' });
    const capFile = path.join(work, 'a-public.pcap');
    const cap = await lab.capturePublic(capFile, 'udp or tcp');
    try {
      await register(lab, A1);
      await register(lab, B1);
      await call(lab, A1, B1, true, 9000);
    } finally {
      await sleep(300);
      await cap.stop();
    }

    // Media both ways through the relay: each phone received the other's RTP (the pcap has 236
    // packets; the first few may go to the private SDP address until the relay has latched).
    const gotA = await rtpA.packets();
    const gotB = await rtpB.packets();
    assert.ok(gotA >= 118 && gotA <= 240, `a1 received ${gotA} RTP packets from b1 through the relay (expected ~236)`);
    assert.ok(gotB >= 118 && gotB <= 240, `b1 received ${gotB} RTP packets from a1 through the relay (expected ~236)`);

    const packets = readPcap(capFile);
    const sip = sipOf(packets);
    const methods = new Set(sip.filter((w) => isReq(w.msg)).map((w) => (w.msg as SipRequest).method));
    for (const m of ['REGISTER', 'INVITE', 'ACK', 'BYE']) assert.ok(methods.has(m), `the capture holds ${m} (saw ${[...methods].join(', ')})`);

    // No 10.0.0.0/8 anywhere in a SIP message (headers or SDP) on the public segment.
    const sipPackets = sip.map((w) => w.pkt);
    const hits = grepPayloads(sipPackets, PRIV10);
    assert.deepEqual(
      hits.map((h) => `${h.packet.src}:${h.packet.sport} → ${h.packet.dst}:${h.packet.dport}: ${h.line}`),
      [],
      'a private 10/8 address leaked into SIP/SDP on the public segment',
    );
    // Nor in any other payload on the segment that is not RTP (binary audio could match by chance).
    const nonRtp = packets.filter((p) => !sipPackets.includes(p) && !(p.proto === 'udp' && p.payload.length > 12 && (p.payload[0] & 0xc0) === 0x80));
    assert.deepEqual(grepPayloads(nonRtp, PRIV10).map((h) => h.line), [], 'a 10/8 address in a non-RTP payload');
    // Nobody on the internet tried to reach 10/8 (what a leaked Via / Record-Route / SDP would cause).
    assert.equal((await lab.privateLeaks()).byNet['10.0.0.0/8'].packets - leaksBefore, 0, 'packets addressed to 10/8 reached the internet');

    // What the edge wrote is the public address.
    const fromEdge = sip.filter((w) => w.pkt.src === PUBLIC && w.pkt.sport === 5060);
    const invite = fromEdge.find((w) => isReq(w.msg) && w.msg.method === 'INVITE' && w.pkt.dst === lab.addr('b1').public);
    assert.ok(invite, `the INVITE to b1 is in the capture:\n${fromEdge.map(label).join('\n')}`);
    assert.equal(topViaHostPort(invite.msg), `${PUBLIC}:5060`, 'our Via in the INVITE to b1');
    assert.deepEqual(rrHostPorts(invite.msg), [`${PUBLIC}:5060`], 'one Record-Route (both sides outside, one socket): the public address');
    assert.equal(sdpConnection(invite.msg), PUBLIC, 'SDP offer to b1 names the relay`s public address');
    const ok = fromEdge.find((w) => !isReq(w.msg) && (w.msg as SipResponse).status === 200 && /INVITE/.test(getHeader(w.msg, 'cseq') ?? '') && w.pkt.dst === lab.addr('a1').public);
    assert.ok(ok, 'the 200 OK to a1 is in the capture');
    assert.equal(sdpConnection(ok.msg), PUBLIC, 'SDP answer to a1 names the relay`s public address');
    const keepalives = fromEdge.filter((w) => isReq(w.msg) && w.msg.method === 'OPTIONS');
    assert.ok(keepalives.length > 0, 'keepalive OPTIONS to the NATed phones are in the capture (interval 5 s)');
    for (const k of keepalives) {
      assert.equal(topViaHostPort(k.msg), `${PUBLIC}:5060`, `keepalive Via: ${label(k)}`);
      assert.match(getHeader(k.msg, 'contact') ?? '', new RegExp(`@${PUBLIC.replace(/\./g, '\\.')}:5060>`), `keepalive Contact: ${label(k)}`);
    }
  });

  /** lan1 → pub1, pub1 hangs up; returns what the edge sent to each, from a capture of its own interface. */
  async function lanToPub(lab: Lab, tag: string): Promise<{ toLan: Wire[]; toPub: Wire[] }> {
    const capFile = path.join(work, `${tag}-edge.pcap`);
    const cap = await lab.capture('edge', lab.addr('edge').iface, 'udp port 5060', capFile, { direction: 'out' });
    try {
      await call(lab, LAN1, PUB1, false);
    } finally {
      await sleep(300);
      await cap.stop();
    }
    const sip = sipOf(readPcap(capFile));
    const callId = (w: Wire) => getHeader(w.msg, 'call-id') ?? '';
    const invite = sip.find((w) => isReq(w.msg) && w.msg.method === 'INVITE' && w.pkt.dst === lab.addr('pub1').ip);
    assert.ok(invite, `the edge sent the INVITE to pub1:\n${sip.map(label).join('\n')}`);
    const dialog = sip.filter((w) => callId(w) === callId(invite));
    return { toLan: dialog.filter((w) => w.pkt.dst === lab.addr('lan1').ip), toPub: dialog.filter((w) => w.pkt.dst === lab.addr('pub1').ip) };
  }

  /** Asserts the inside/outside split of one lan1 → pub1 call: lan1 sees 10.0.0.10, pub1 sees `pub`. */
  function assertSplit(r: { toLan: Wire[]; toPub: Wire[] }, pub: string): void {
    const all = [...r.toLan, ...r.toPub].map(label).join('\n');
    // To pub1: INVITE and ACK are requests with our Via; the INVITE's first Record-Route is pub1's route.
    const pubReqs = r.toPub.filter((w) => isReq(w.msg));
    // (a set: a loaded machine may retransmit the INVITE before pub1's 180 arrives)
    assert.deepEqual([...new Set(pubReqs.map((w) => (w.msg as SipRequest).method))].sort(), ['ACK', 'INVITE'], `requests to pub1:\n${all}`);
    for (const w of pubReqs) assert.equal(topViaHostPort(w.msg), `${pub}:5060`, `our Via towards pub1: ${label(w)}`);
    const inv = pubReqs.find((w) => (w.msg as SipRequest).method === 'INVITE')!;
    // RFC 5658 double Record-Route: the request crossed from the inside (lan1) to the outside (pub1).
    assert.deepEqual(rrHostPorts(inv.msg), [`${pub}:5060`, `${PRIVATE}:5060`], 'Record-Route: pub1`s side first, lan1`s side second');
    assert.equal(sdpConnection(inv.msg), pub, 'SDP offer to pub1');
    for (const w of r.toPub) assert.ok(!getHeaderValues(w.msg, 'via').some((v) => v.includes(PRIVATE)), `no Via of ours with ${PRIVATE} to pub1: ${label(w)}`);

    // To lan1: the 200 OK (its route set: the last Record-Route entry is the one lan1 uses) and the BYE.
    const ok = r.toLan.find((w) => !isReq(w.msg) && (w.msg as SipResponse).status === 200 && /INVITE/.test(getHeader(w.msg, 'cseq') ?? ''));
    assert.ok(ok, `200 OK to lan1:\n${all}`);
    const rr = rrHostPorts(ok.msg);
    assert.equal(rr[rr.length - 1], `${PRIVATE}:5060`, 'lan1`s first route (the last Record-Route) is the private address');
    assert.equal(sdpConnection(ok.msg), PRIVATE, 'SDP answer to lan1 names the relay`s private address');
    const bye = r.toLan.find((w) => isReq(w.msg) && w.msg.method === 'BYE');
    assert.ok(bye, `the BYE from pub1 reached lan1 through the edge:\n${all}`);
    assert.equal(topViaHostPort(bye.msg), `${PRIVATE}:5060`, 'our Via towards lan1');
    assert.equal(getHeaderValues(bye.msg, 'route').length, 0, 'both of our Route entries were removed from the BYE');
    for (const w of r.toLan.filter((x) => isReq(x.msg))) {
      assert.ok(!getHeader(w.msg, 'via')!.includes(pub), `our Via towards lan1 never names ${pub}: ${label(w)}`);
    }
  }

  lt('(b) a phone on the edge`s own LAN calls a public phone: lan1 sees 10.0.0.10, pub1 sees 203.0.113.10', async (lab) => {
    await register(lab, LAN1);
    await register(lab, PUB1);
    const peers = await api<Array<{ aor: string; received: string }>>(lab, '/api/peers');
    const lan = peers.find((p) => p.aor === `sip:${LAN1.user}@${DOMAIN}`);
    assert.equal(lan?.received, `${lab.addr('lan1').ip}:${SIP_PORT}`, 'lan1 registered from its own address (no NAT on the LAN)');
    assertSplit(await lanToPub(lab, 'b'), PUBLIC);
  });

  lt('(c) a request to the public address with a Route naming it is handled locally, never looped (no 482/483)', async (lab) => {
    const ag = await lab.agent('pub1');
    agents.push(ag);
    const sock = await ag.udpBind(5095);
    const out = await lab.countPackets('edge', { hook: 'out', dst: PUBLIC, name: 'nn_to_self' });
    let lastFinal = '';
    const ask = async (lines: string[]): Promise<string[]> => {
      sock.drain();
      await sock.send(lines.join('\r\n') + '\r\n\r\n', 5060, PUBLIC);
      const got: string[] = [];
      for (;;) {
        const m = await sock.recv(got.length === 0 ? 4000 : 600);
        if (!m) break;
        got.push(m.data.split('\r\n')[0]);
        lastFinal = m.data;
        if (!/^SIP\/2\.0 1\d\d/.test(got[got.length - 1])) break;
      }
      return got;
    };
    const base = (method: string, ruri: string, extra: string[]) => [
      `${method} ${ruri} SIP/2.0`,
      `Via: SIP/2.0/UDP ${lab.addr('pub1').ip}:5095;branch=z9hG4bK${Math.random().toString(36).slice(2)};rport`,
      'Max-Forwards: 70',
      ...extra,
      `From: <sip:probe@${lab.addr('pub1').ip}>;tag=${Math.random().toString(36).slice(2)}`,
      `To: <${ruri}>`,
      `Call-ID: ${Math.random().toString(36).slice(2)}@nat-near`,
      `CSeq: 1 ${method}`,
      'Content-Length: 0',
    ];
    const noLoop = (r: string[], what: string) => {
      assert.ok(r.length > 0, `${what}: no answer`);
      assert.ok(!r.some((l) => / 48[23] /.test(l)), `${what}: looped (${r.join(' | ')})`);
    };

    const opt = await ask(base('OPTIONS', `sip:${PUBLIC}`, [`Route: <sip:${PUBLIC};lr>`]));
    noLoop(opt, 'OPTIONS with Route naming the public address');
    assert.equal(opt[opt.length - 1], 'SIP/2.0 200 OK', 'answered by the edge itself');
    const opt2 = await ask(base('OPTIONS', `sip:${PUBLIC}:5060`, [`Route: <sip:${PUBLIC}:5060;lr>`, `Route: <sip:${PUBLIC};lr>`]));
    noLoop(opt2, 'OPTIONS with two Routes naming the public address');
    assert.equal(opt2[opt2.length - 1], 'SIP/2.0 200 OK');
    const invite = base('INVITE', `sip:${LAN1.user}@${DOMAIN}`, [`Route: <sip:${PUBLIC};lr>`]);
    const inv = await ask(invite);
    noLoop(inv, 'INVITE with Route naming the public address');
    assert.match(inv[inv.length - 1], /^SIP\/2\.0 407 /, 'the INVITE is ours to authenticate (407), not forwarded to ourselves');
    // ACK the 407 (same branch and Route, To with the tag of the 407) so it is not retransmitted.
    const to = /^To: .*$/m.exec(lastFinal.replace(/\r/g, ''))?.[0] ?? '';
    const ack = invite.map((l) => (l.startsWith('INVITE ') ? l.replace('INVITE', 'ACK') : l.startsWith('CSeq:') ? 'CSeq: 1 ACK' : l.startsWith('To:') ? to : l));
    await sock.send(ack.join('\r\n') + '\r\n\r\n', 5060, PUBLIC);
    await sleep(200);
    assert.equal(await out.packets(), 0, 'the edge never sent a packet to its own public address');
  });

  lt('(d) the public IP changes: refresh and `sipedge reload` pick it up, new calls use it, registrations stay', async (lab) => {
    type Settings = { sockets: Array<{ id: string; advertised: string }>; publicAddress: { address: string; changes: number; source: string } };
    type Peer = { aor: string; contact: string; received: string; expires: number };
    const key = (p: Peer) => `${p.aor} ${p.contact} ${p.received}`;
    const peersBefore = (await api<Peer[]>(lab, '/api/peers')).map(key).sort();
    assert.equal(peersBefore.length, 4, `four phones registered: ${peersBefore.join(', ')}`);

    const setImds = async (ip: string) => {
      const r = await httpIn(lab, 'cloud', 'PUT', 'http://169.254.169.254/_imds/ip', ip);
      assert.equal(r.status, 200, `IMDS control: ${JSON.stringify(r.body)}`);
    };
    const waitPublic = async (ip: string, ms: number): Promise<number> => {
      const t0 = Date.now();
      for (;;) {
        const s = await api<Settings>(lab, '/api/settings');
        if (s.publicAddress.address === ip) return Date.now() - t0;
        if (Date.now() - t0 > ms) assert.fail(`GET /api/settings still shows ${s.publicAddress.address}, not ${ip}, after ${ms} ms\n${edgeTail()}`);
        await sleep(250);
      }
    };

    // 1. Change → picked up by the periodic refresh (5 s).
    await setImds('203.0.113.99');
    const took = await waitPublic('203.0.113.99', 20_000);
    assert.ok(took <= 15_000, `picked up after ${took} ms (refresh 5 s)`);
    const shown = await cliIn(lab, 'edge', ['show', 'settings', '--json', '--api', API]);
    assert.equal(shown.code, 0, `sipedge show settings: ${shown.stderr}`);
    const s1 = JSON.parse(shown.stdout) as Settings;
    assert.equal(s1.publicAddress.address, '203.0.113.99', '`sipedge show settings --json` shows the new address');
    assert.ok(s1.publicAddress.changes >= 1, 'the change is counted');
    assert.ok(s1.sockets.every((s) => s.advertised === '203.0.113.99:5060'), `every socket advertises it: ${JSON.stringify(s1.sockets)}`);
    assert.match(edgeOut(), /public address changed/, 'the change is logged');
    // A new call uses it (the lab's cloud NAT still maps 203.0.113.10: the BYE from pub1 comes in
    // there with a Route naming 203.0.113.99 — the edge must know that one is itself).
    assertSplit(await lanToPub(lab, 'd1'), '203.0.113.99');

    // 2. With refresh 0 only start and reload discover: `sipedge reload` picks up the next change.
    fs.writeFileSync(configPath, YAML.stringify(edgeConfig(0)));
    const r0 = await cliIn(lab, 'edge', ['reload', '--api', API]);
    assert.equal(r0.code, 0, `sipedge reload: ${r0.stdout} ${r0.stderr}`);
    await setImds('203.0.113.98');
    await sleep(6000); // longer than the old refresh interval: nothing may change by itself now
    assert.equal((await api<Settings>(lab, '/api/settings')).publicAddress.address, '203.0.113.99', 'refresh 0: no periodic re-discovery');
    const r1 = await cliIn(lab, 'edge', ['reload', '--api', API]);
    assert.equal(r1.code, 0, `sipedge reload: ${r1.stdout} ${r1.stderr}`);
    assert.equal((await api<Settings>(lab, '/api/settings')).publicAddress.address, '203.0.113.98', 'reload re-discovered the address');
    assertSplit(await lanToPub(lab, 'd2'), '203.0.113.98');

    // 3. Without localnet, lan1 is still inside: it is on the edge's own private subnet (10.0.0.0/24).
    fs.writeFileSync(configPath, YAML.stringify(edgeConfig(0, [])));
    const r2 = await cliIn(lab, 'edge', ['reload', '--api', API]);
    assert.equal(r2.code, 0, `sipedge reload: ${r2.stdout} ${r2.stderr}`);
    assert.deepEqual((await api<{ localnet: string[] }>(lab, '/api/settings')).localnet, [], 'localnet emptied by the reload');
    assertSplit(await lanToPub(lab, 'd3'), '203.0.113.98');

    // 4. Registrations survived both changes and the reloads.
    const peersAfter = (await api<Peer[]>(lab, '/api/peers')).map(key).sort();
    assert.deepEqual(peersAfter, peersBefore, 'GET /api/peers: the same bindings before and after');

    // 5. The former public address (still what the cloud NAT maps) is still recognised as us.
    const ag = await lab.agent('pub1');
    agents.push(ag);
    const sock = await ag.udpBind(5096);
    await sock.send(
      [
        `OPTIONS sip:${PUBLIC} SIP/2.0`,
        `Via: SIP/2.0/UDP ${lab.addr('pub1').ip}:5096;branch=z9hG4bKformer1;rport`,
        'Max-Forwards: 70',
        `Route: <sip:${PUBLIC};lr>`,
        `From: <sip:probe@${lab.addr('pub1').ip}>;tag=f1`,
        `To: <sip:${PUBLIC}>`,
        'Call-ID: former-public@nat-near',
        'CSeq: 1 OPTIONS',
        'Content-Length: 0',
      ].join('\r\n') + '\r\n\r\n',
      5060,
      PUBLIC,
    );
    const m = await sock.recv(4000);
    assert.ok(m, 'an answer to OPTIONS naming the former public address');
    assert.equal(m.data.split('\r\n')[0], 'SIP/2.0 200 OK', 'the former public address is still us');
  });
});
