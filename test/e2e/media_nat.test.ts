/**
 * Issue 5, "Done when": the RTP relay through real kernel NAT — the NAT lab (lab/README.md), the
 * real CLI (`sipedge start`) in namespace `edge` and SIPp phones playing RTP from pcap files.
 *
 * Edge MAIN runs on udp 10.0.0.10:5060 behind the cloud's 1:1 NAT (public 203.0.113.10) with
 * `publicAddress: { ip: 203.0.113.10 }`, `localnet: [10.0.0.0/8]`,
 * `media: { relay: always, ports: 20000-20999 }` (timeout 60 s); edge SHORT runs next to it on
 * udp 10.0.0.10:5080 with the same settings but `media: { ports: 21000-21999, timeout: 5 }`.
 * Both are open proxies (no users: no digest) with keepalives off. The callers are SIPp on a1
 * (behind home1, port-preserving MASQUERADE); the callees are SIPp on b1 (behind home2,
 * MASQUERADE --random-fully), which register (media_register.xml) and then answer on the same
 * port, so the edge reaches them through their NAT mapping. Phones announce their private
 * addresses in SDP; the relay learns (latches) their NAT mappings from their packets.
 *
 * RTP comes from pcaps written by helpers/rtp_pcap.ts, so that every packet count is exact and
 * two streams can be told apart by their size. Each phone first sends one comfort-noise packet
 * (RFC 3389, a 41-byte IP packet) so the relay can latch onto it — the callee as soon as it has
 * sent its 200, the caller right after its ACK — and starts its audio 1 s after the ACK
 * (G.711, 20 ms: 200-byte IP packets; 30 ms: 280-byte IP packets). Both SDPs name private
 * addresses of other networks, so the relay cannot send to a phone before that phone's first
 * packet: the callee's comfort-noise packet is not deliverable (the caller is not latched yet);
 * the audio is. Packets are counted with iptables, hop by hop: sent = OUTPUT of the sending
 * phone (source = its media port), reached the edge / relayed = INPUT / OUTPUT of the edge on the
 * relay ports, received = INPUT of the receiving phone (destination = its media port, source =
 * the relay's public address), by packet length.
 *
 *  (a) a1 calls b1, each side plays 250 packets (5 s): ≥ 99 % of what each side sent arrives at
 *      the other; GET /api/calls shows the call with each leg's private signalled address and
 *      the NAT mapping latched; the SDP each phone received names 203.0.113.10; the call is gone
 *      from GET /api/calls after the BYE.
 *  (b) hold / unhold: 100 packets each way, re-INVITE a=sendonly (answered a=recvonly), 1.5 s on
 *      hold, re-INVITE a=sendrecv, then 150 packets of 30 ms each way: ≥ 99 % of those sent after
 *      the unhold arrive; the held directions reach the phones; the relay ports do not change.
 *  (c) media timeout (edge SHORT, media.timeout 5): the phones stop after 1 s of audio; the edge
 *      sends a BYE (Reason: SIP;cause=408) to both — each SIPp waits for it and answers 200 —
 *      no earlier than 5 s after the last packet, and GET /api/calls (fetched inside the edge
 *      namespace) no longer lists the call.
 *  (d) 50 concurrent calls a1 → b1 (SIPp -l 50 -m 50 -r 25, every call playing 250 packets each
 *      way, all calls of one SIPp from its one media port): 50 successful calls and ≥ 99.9 % of
 *      the 12 500 packets of each direction delivered. The relay uses about a quarter of one CPU
 *      for these 5 000 packets/s; on a machine saturated by other work it falls behind, and
 *      audio it reads before the other phone's first packet has nowhere to go (see the report's
 *      hop counters: the loss is then between "reached the edge" and "relayed").
 *  In every test nothing reaches the internet addressed to a private range (lab.privateLeaks())
 *  and the edge sends nothing to 192.168.0.0/16.
 *
 * Needs root (network namespaces): otherwise every test is skipped with a loud banner
 * (lab/testing.ts). Needs SIPp with pcap play (`sip-tester`). SIPEDGE_E2E_KEEP=1 keeps the work
 * dir (configs, edge logs, SIPp traces, pcaps); SIPEDGE_E2E_CAPTURE=1 adds a capture of the
 * edge's UDP during (d) (tcpdump may miss packets when the machine is loaded).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import YAML from 'yaml';
import type { HostName, Lab, PacketCounter } from '../../lab/lab.js';
import { labForTests, type TestLab } from '../../lab/testing.js';
import type { CallRow } from '../../src/edge-api.js';
import { countUdpLength, httpJsonIn, sippIn, sippStats, startEdgeIn, traceHeader, waitUdpBound, type NsProcess, type SippRun, type SippTraceEntry } from '../helpers/netns.js';
import { rtpIpLength, writeRtpPcap } from '../helpers/rtp_pcap.js';
import { requireSipp, SCENARIO_DIR } from '../helpers/sipp.js';

const PUBLIC = '203.0.113.10';
const PRIVATE = '10.0.0.10';
const DOMAIN = 'sip.example.org';

/** RTP streams (helpers/rtp_pcap.ts): name → packets, payload bytes, interval. */
const PCAPS = {
  probe: { packets: 1, payloadBytes: 1, payloadType: 13, fill: 0x40, intervalMs: 20 }, // RFC 3389 CN, level 64
  rtp: { packets: 250, payloadBytes: 160, intervalMs: 20 },
  pre: { packets: 100, payloadBytes: 160, intervalMs: 20 },
  post: { packets: 150, payloadBytes: 240, intervalMs: 30 },
  short: { packets: 50, payloadBytes: 160, intervalMs: 20 },
} as const;
/** The scenarios start their audio this long after the ACK (`<pause milliseconds="1000"/>`). */
const AUDIO_AFTER_ACK_MS = 1000;
const LEN_20MS = rtpIpLength(160);
const LEN_30MS = rtpIpLength(240);

interface EdgeSpec {
  name: 'main' | 'short';
  port: number;
  api: string;
  ports: string;
  relayRange: [number, number];
  timeout: number;
}
const MAIN: EdgeSpec = { name: 'main', port: 5060, api: 'http://127.0.0.1:8088', ports: '20000-20999', relayRange: [20000, 20999], timeout: 60 };
const SHORT: EdgeSpec = { name: 'short', port: 5080, api: 'http://127.0.0.1:8089', ports: '21000-21999', relayRange: [21000, 21999], timeout: 5 };

/** A SIPp phone: namespace, SIP port, media port, user. */
interface Phone {
  host: HostName;
  port: number;
  mp: number;
  user: string;
}

let env: TestLab;
let work = '';
let failures = 0;
const edges = new Map<string, NsProcess>();
/** Edge → anything towards 192.168.0.0/16 (must stay 0). */
let edgeToHomeLan: PacketCounter | undefined;

function edgeConfig(e: EdgeSpec): Record<string, unknown> {
  return {
    listen: [`udp:${PRIVATE}:${e.port}`],
    publicAddress: { ip: PUBLIC },
    localnet: ['10.0.0.0/8'],
    registrar: { domains: [DOMAIN] },
    nat: { keepalive: { method: 'options', interval: 0 } },
    media: { relay: 'always', ports: e.ports, timeout: e.timeout },
    store: 'memory:',
    api: { listen: e.api.replace('http://', '') },
    log: { level: 'info' },
  };
}

const edgeTail = (e: EdgeSpec = MAIN): string => `--- edge ${e.name} output (tail) ---\n${(edges.get(e.name)?.out() ?? '').slice(-5000)}`;

const pct = (got: number, of: number): string => (of === 0 ? 'n/a' : `${((100 * got) / of).toFixed(2)} %`);

function sipp(lab: Lab, host: HostName, scenario: string, args: string[], name: string, timeoutMs = 60_000): SippRun {
  return sippIn(lab, host, ['-sf', path.join(work, `${scenario}.xml`), ...args, '-timeout', `${Math.floor(timeoutMs / 1000) - 2}s`], {
    dir: work,
    name,
    timeoutMs,
  });
}

/** REGISTER `p` at edge `e` from p.host:p.port (media_register.xml); the UAS then answers on the same port. */
async function register(lab: Lab, p: Phone, e: EdgeSpec): Promise<void> {
  const ip = lab.addr(p.host).ip;
  const r = sipp(
    lab,
    p.host,
    'media_register',
    [`${PUBLIC}:${e.port}`, '-i', ip, '-p', String(p.port), '-mi', ip, '-mp', String(p.mp), '-m', '1', '-s', p.user, '-key', 'domain', DOMAIN, '-key', 'expires', '600', '-recv_timeout', '5000'],
    `register-${p.user}`,
    20_000,
  );
  const res = await r.done;
  assert.equal(res.code, 0, `REGISTER ${p.user} from ${p.host}:${p.port}\n${r.describe(res)}\n${edgeTail(e)}`);
}

interface CallRun {
  uac: SippRun;
  uas: SippRun;
  /** Resolves when both SIPp processes are done; asserts nothing. */
  done: Promise<{ uac: { code: number | null; out: string }; uas: { code: number | null; out: string } }>;
}

/** Starts the callee's UAS scenario, then the caller's UAC scenario, through edge `e`. */
async function startCall(
  lab: Lab,
  o: { e: EdgeSpec; caller: Phone; callee: Phone; uac: string; uas: string; calls?: number; limit?: number; rate?: number; holdMs?: number; recvTimeoutMs?: number; timeoutMs?: number },
): Promise<CallRun> {
  const calls = o.calls ?? 1;
  const timeoutMs = o.timeoutMs ?? 60_000;
  const calleeIp = lab.addr(o.callee.host).ip;
  const callerIp = lab.addr(o.caller.host).ip;
  const uas = sipp(
    lab,
    o.callee.host,
    o.uas,
    ['-i', calleeIp, '-p', String(o.callee.port), '-mi', calleeIp, '-mp', String(o.callee.mp), '-m', String(calls), '-aa', '-recv_timeout', String(o.recvTimeoutMs ?? 20_000)],
    `${o.uas}-${o.callee.user}`,
    timeoutMs,
  );
  await waitUdpBound(lab, o.callee.host, o.callee.port);
  const uacArgs = [
    `${PUBLIC}:${o.e.port}`,
    '-i',
    callerIp,
    '-p',
    String(o.caller.port),
    '-mi',
    callerIp,
    '-mp',
    String(o.caller.mp),
    '-m',
    String(calls),
    '-s',
    o.callee.user,
    '-key',
    'domain',
    DOMAIN,
    '-key',
    'caller',
    o.caller.user,
    '-recv_timeout',
    String(o.recvTimeoutMs ?? 20_000),
  ];
  if (o.limit !== undefined) uacArgs.push('-l', String(o.limit));
  if (o.rate !== undefined) uacArgs.push('-r', String(o.rate), '-rp', '1000');
  if (o.holdMs !== undefined) uacArgs.push('-d', String(o.holdMs));
  const uac = sipp(lab, o.caller.host, o.uac, uacArgs, `${o.uac}-${o.caller.user}-${o.callee.user}`, timeoutMs);
  const done = (async () => {
    const uacRes = await uac.done;
    // The callee is done once it answered the last BYE (and absorbed retransmissions).
    const uasRes = await Promise.race([uas.done, sleep(5000).then(() => uas.stop())]);
    return { uac: uacRes, uas: uasRes };
  })();
  return { uac, uas, done };
}

/**
 * Counters of one RTP stream direction, hop by hop: sent by the phone (its OUTPUT, source = its
 * media port), arrived at the edge (INPUT, relay ports, from the sender's NAT), relayed by the
 * edge (OUTPUT, relay ports, to the receiver's NAT), received by the phone (INPUT, its media port,
 * from the relay's public address).
 */
interface Direction {
  label: string;
  sent: PacketCounter;
  atEdge: PacketCounter;
  relayed: PacketCounter;
  received: PacketCounter;
}

let counterSeq = 0;

async function direction(lab: Lab, from: Phone, to: Phone, e: EdgeSpec, length: number): Promise<Direction> {
  const tag = `${from.host}_${to.host}_${length}_${++counterSeq}`;
  return {
    label: `${from.host} → ${to.host} (${length}-byte packets)`,
    sent: await countUdpLength(lab, from.host, { hook: 'out', sport: from.mp, length, name: `sent_${tag}` }),
    atEdge: await countUdpLength(lab, 'edge', { hook: 'in', src: lab.addr(from.host).public, dport: e.relayRange, length, name: `edge_in_${tag}` }),
    relayed: await countUdpLength(lab, 'edge', { hook: 'out', dst: lab.addr(to.host).public, sport: e.relayRange, length, name: `edge_out_${tag}` }),
    received: await countUdpLength(lab, to.host, { hook: 'in', src: PUBLIC, sport: e.relayRange, dport: to.mp, length, name: `recv_${tag}` }),
  };
}

async function delivery(d: Direction): Promise<{ sent: number; received: number; text: string }> {
  const sent = await d.sent.packets();
  const atEdge = await d.atEdge.packets();
  const relayed = await d.relayed.packets();
  const received = await d.received.packets();
  const hops = received === sent ? '' : ` [hops: sent ${sent}, reached the edge ${atEdge}, relayed ${relayed}, received ${received}]`;
  return { sent, received, text: `${d.label}: ${received} of ${sent} delivered (${pct(received, sent)})${hops}` };
}

/** UDP and conntrack statistics along the path, for failure messages. */
async function pathStats(lab: Lab): Promise<string> {
  const out: string[] = [];
  for (const h of ['edge', 'a1', 'b1'] as const) {
    const r = await lab.exec(h, ['nstat', '-asz', 'Udp*'], { allowFail: true });
    out.push(`${h}: ${r.stdout.split('\n').filter((l) => /Udp(InErrors|RcvbufErrors|SndbufErrors|NoPorts|InDatagrams|OutDatagrams)\b/.test(l)).map((l) => l.trim().replace(/\s+/g, ' ')).join(', ')}`);
  }
  for (const h of ['home1', 'home2', 'cloud'] as const) {
    const r = await lab.exec(h, ['conntrack', '-S'], { allowFail: true });
    const bad = r.stdout.split('\n').filter((l) => /(drop|insert_failed|early_drop|invalid|error)=[1-9]/.test(l));
    out.push(`${h} conntrack: ${bad.length ? bad.join(' | ') : 'no drops'}`);
  }
  return out.join('\n');
}

/** The SDP connection address and audio port of a traced message. */
function sdpOf(e: SippTraceEntry): { c?: string; port?: number; direction?: string } {
  const c = /^c=IN IP4 (\S+)/m.exec(e.text)?.[1];
  const port = /^m=audio (\d+)/m.exec(e.text)?.[1];
  const direction = /^a=(sendrecv|sendonly|recvonly|inactive)\s*$/m.exec(e.text)?.[1];
  return { c, port: port ? Number(port) : undefined, direction };
}

const cseqOf = (e: SippTraceEntry): string => traceHeader(e, 'cseq') ?? '';

async function calls(lab: Lab, e: EdgeSpec): Promise<CallRow[]> {
  return httpJsonIn<CallRow[]>(lab, 'edge', `${e.api}/api/calls`);
}

/** Asserts that nothing went to a private address of another network during `fn`. */
async function noPrivateLeaks<T>(lab: Lab, fn: () => Promise<T>): Promise<T> {
  const leaksBefore = (await lab.privateLeaks()).packets;
  const homeBefore = await edgeToHomeLan!.packets();
  const r = await fn();
  const leaks = await lab.privateLeaks();
  assert.equal(leaks.packets - leaksBefore, 0, `packets addressed to a private range reached the internet: ${JSON.stringify(leaks.byNet)}`);
  assert.equal((await edgeToHomeLan!.packets()) - homeBefore, 0, 'the edge sent packets to 192.168.0.0/16 (a private address of a home network)');
  return r;
}

describe('media relay through real kernel NAT: RTP both ways, hold/unhold, media timeout, 50 calls', { timeout: 300_000 }, () => {
  const A1 = (port: number, mp: number): Phone => ({ host: 'a1', port, mp, user: `10${port}` });
  const B1 = (port: number, mp: number, user: string): Phone => ({ host: 'b1', port, mp, user });

  const lt = (name: string, timeoutMs: number, fn: (lab: Lab) => Promise<void>) =>
    test(name, { timeout: timeoutMs }, async (t) => {
      const lab = env.need(t);
      if (!lab) return;
      try {
        await fn(lab);
      } catch (err) {
        failures++;
        throw err;
      }
    });

  before(async () => {
    env = await labForTests('senm');
    const lab = env.lab;
    if (!lab) return;
    requireSipp();
    const v = spawnSync('sipp', ['-v'], { encoding: 'utf8' });
    assert.ok(/PCAP/.test(`${v.stdout}${v.stderr}`), `this SIPp has no pcap play support: ${v.stdout}`);
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'sipedge-media-nat-'));
    // SIPp resolves play_pcap_audio files against the scenario's directory / its working directory: both = work.
    for (const [name, o] of Object.entries(PCAPS)) writeRtpPcap(path.join(work, `${name}.pcap`), o);
    for (const s of ['media_register', 'media_uac', 'media_uas', 'media_uac_hold', 'media_uas_hold', 'media_uac_timeout', 'media_uas_timeout']) {
      fs.copyFileSync(path.join(SCENARIO_DIR, `${s}.xml`), path.join(work, `${s}.xml`));
    }
    edgeToHomeLan = await lab.countPackets('edge', { hook: 'out', dst: '192.168.0.0/16', name: 'edge_to_192_168' });
    await Promise.all(
      [MAIN, SHORT].map(async (e) => {
        const cfg = path.join(work, `edge-${e.name}.yaml`);
        fs.writeFileSync(cfg, YAML.stringify(edgeConfig(e)));
        edges.set(e.name, await startEdgeIn(lab, 'edge', cfg));
      }),
    );
  });

  after(async () => {
    for (const [name, p] of edges) {
      if (work) fs.writeFileSync(path.join(work, `edge-${name}.log`), p.out());
      const code = await p.stop();
      if (code !== 0) console.error(`media_nat: edge ${name} exited with ${code}`);
    }
    await env?.teardown();
    if (work && (failures > 0 || process.env.SIPEDGE_E2E_KEEP)) console.error(`media_nat: kept ${work} (configs, edge logs, SIPp traces, pcaps)`);
    else if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  lt('(a) a1 (MASQUERADE) calls b1 (--random-fully) through the edge behind the cloud NAT: ≥ 99 % of the RTP each side sent arrives', 60_000, async (lab) => {
    const caller = A1(5070, 6000);
    const callee = B1(5062, 6000, '2001');
    await noPrivateLeaks(lab, async () => {
      await register(lab, callee, MAIN);
      const ab = await direction(lab, caller, callee, MAIN, LEN_20MS);
      const ba = await direction(lab, callee, caller, MAIN, LEN_20MS);
      const probesToA = await countUdpLength(lab, 'a1', { src: PUBLIC, dport: caller.mp, length: rtpIpLength(1), name: 'a_probe_in' });
      const probesToB = await countUdpLength(lab, 'b1', { src: PUBLIC, dport: callee.mp, length: rtpIpLength(1), name: 'b_probe_in' });

      const run = await startCall(lab, { e: MAIN, caller, callee, uac: 'media_uac', uas: 'media_uas', holdMs: 6000 });
      // Mid-call (5 s of audio from 0.5 s after the ACK): wait until the relay has latched both NAT mappings.
      let mid: CallRow[];
      const latchedBy = Date.now() + 6000;
      for (;;) {
        mid = await calls(lab, MAIN);
        const legs = mid.find((c) => c.from === `sip:${caller.user}@${DOMAIN}`)?.legs ?? [];
        if (legs.length === 2 && legs.every((l) => l.streams[0]?.rtp.latched !== undefined && l.received.packets > 10)) break;
        if (Date.now() > latchedBy) break; // asserted below, with the row
        await sleep(250);
      }
      const res = await run.done;
      assert.equal(res.uac.code, 0, `caller\n${run.uac.describe(res.uac)}\n${edgeTail()}`);
      assert.equal(res.uas.code, 0, `callee\n${run.uas.describe(res.uas)}\n${edgeTail()}`);

      const inv = run.uac.trace().find((e) => e.dir === 'sent' && e.first.startsWith('INVITE '));
      const callId = inv ? traceHeader(inv, 'call-id') : undefined;
      assert.ok(callId, 'the caller sent an INVITE');
      const row = mid.find((c) => c.callId === callId);
      assert.ok(row, `GET /api/calls lists the call mid-call: ${JSON.stringify(mid)}`);
      assert.equal(row.state, 'confirmed');
      assert.equal(row.media, 'relay');
      const leg = (role: 'caller' | 'callee') => row.legs?.find((l) => l.role === role)?.streams[0]?.rtp;
      const a = leg('caller');
      const b = leg('callee');
      assert.ok(a && b, `both legs with an RTP stream: ${JSON.stringify(row)}`);
      assert.equal(a.signalled, `${lab.addr('a1').ip}:${caller.mp}`, 'the caller signalled its private address');
      assert.equal(b.signalled, `${lab.addr('b1').ip}:${callee.mp}`, 'the callee signalled its private address');
      assert.equal(a.latched, `${lab.addr('a1').public}:${caller.mp}`, 'the caller latched at home1`s public address (MASQUERADE keeps the port)');
      assert.match(b.latched ?? '', new RegExp(`^${lab.addr('b1').public.replace(/\./g, '\\.')}:\\d+$`), 'the callee latched at home2`s public address');
      for (const p of [a.relayPort, b.relayPort]) assert.ok(p >= MAIN.relayRange[0] && p <= MAIN.relayRange[1] && p % 2 === 0, `relay RTP port ${p}: even, in media.ports`);

      // What each phone was told: the relay at the public address, on the port facing it.
      const okA = run.uac.trace().find((e) => e.dir === 'received' && e.first.startsWith('SIP/2.0 200') && /INVITE/.test(cseqOf(e)));
      const invB = run.uas.trace().find((e) => e.dir === 'received' && e.first.startsWith('INVITE '));
      assert.ok(okA && invB, 'the caller got a 200 and the callee an INVITE');
      assert.deepEqual(sdpOf(okA), { c: PUBLIC, port: a.relayPort, direction: 'sendrecv' }, 'SDP answer to a1: the relay`s public address and the port facing a1');
      assert.deepEqual(sdpOf(invB), { c: PUBLIC, port: b.relayPort, direction: 'sendrecv' }, 'SDP offer to b1: the relay`s public address and the port facing b1');

      const results = [await delivery(ab), await delivery(ba)];
      const report = `${results.map((r) => r.text).join('; ')}; comfort-noise probes received: a1 ${await probesToA.packets()}, b1 ${await probesToB.packets()}`;
      console.error(`media_nat (a): ${report}`);
      for (const r of results) {
        assert.equal(r.sent, PCAPS.rtp.packets, `the sender sent the whole pcap: ${r.text}`);
        assert.ok(r.received >= Math.ceil(0.99 * r.sent), `≥ 99 % delivered: ${report}\n${edgeTail()}`);
      }

      // The BYE ended the media session.
      const left = await calls(lab, MAIN);
      assert.ok(!left.some((c) => c.callId === callId), `the call is gone from GET /api/calls after the BYE: ${JSON.stringify(left)}`);
    });
  });

  lt('(b) hold then unhold by re-INVITE (a=sendonly, then a=sendrecv): audio flows again after the unhold', 60_000, async (lab) => {
    const caller = A1(5072, 6010);
    const callee = B1(5064, 6010, '2002');
    await noPrivateLeaks(lab, async () => {
      await register(lab, callee, MAIN);
      const preAB = await direction(lab, caller, callee, MAIN, LEN_20MS);
      const preBA = await direction(lab, callee, caller, MAIN, LEN_20MS);
      const postAB = await direction(lab, caller, callee, MAIN, LEN_30MS);
      const postBA = await direction(lab, callee, caller, MAIN, LEN_30MS);

      const run = await startCall(lab, { e: MAIN, caller, callee, uac: 'media_uac_hold', uas: 'media_uas_hold', holdMs: 5500 });
      const res = await run.done;
      assert.equal(res.uac.code, 0, `caller\n${run.uac.describe(res.uac)}\n${edgeTail()}`);
      assert.equal(res.uas.code, 0, `callee\n${run.uas.describe(res.uas)}\n${edgeTail()}`);

      // The offers b1 received (initial, hold, unhold) and the answers a1 received, as rewritten by the edge.
      const invites = run.uas.trace().filter((e) => e.dir === 'received' && e.first.startsWith('INVITE '));
      const answers = run.uac.trace().filter((e) => e.dir === 'received' && e.first.startsWith('SIP/2.0 200') && /INVITE/.test(cseqOf(e)));
      assert.equal(invites.length, 3, `b1 received INVITE, hold re-INVITE, unhold re-INVITE: ${invites.map((e) => e.first).join(' | ')}`);
      assert.equal(answers.length, 3, `a1 received three 200s to its INVITEs`);
      const offers = invites.map(sdpOf);
      const ans = answers.map(sdpOf);
      assert.deepEqual(
        offers.map((o) => o.direction),
        ['sendrecv', 'sendonly', 'sendrecv'],
        'the directions of the offers reach b1 unchanged (hold = sendonly)',
      );
      assert.deepEqual(
        ans.map((o) => o.direction),
        ['sendrecv', 'recvonly', 'sendrecv'],
        'the directions of the answers reach a1 unchanged',
      );
      for (const o of [...offers, ...ans]) assert.equal(o.c, PUBLIC, 'every SDP names the relay`s public address');
      assert.equal(new Set(offers.map((o) => o.port)).size, 1, `the relay port facing b1 stays the same through hold/unhold: ${offers.map((o) => o.port).join(', ')}`);
      assert.equal(new Set(ans.map((o) => o.port)).size, 1, `the relay port facing a1 stays the same: ${ans.map((o) => o.port).join(', ')}`);

      const pre = [await delivery(preAB), await delivery(preBA)];
      const post = [await delivery(postAB), await delivery(postBA)];
      const report = `before hold: ${pre.map((r) => r.text).join('; ')}; after unhold: ${post.map((r) => r.text).join('; ')}`;
      console.error(`media_nat (b): ${report}`);
      for (const r of pre) assert.ok(r.sent === PCAPS.pre.packets && r.received >= Math.ceil(0.99 * r.sent), `before the hold: ${report}`);
      for (const r of post) {
        assert.equal(r.sent, PCAPS.post.packets, `the whole post-unhold pcap was sent: ${r.text}`);
        assert.ok(r.received > 0, `audio flows again after the unhold: ${report}\n${edgeTail()}`);
        assert.ok(r.received >= Math.ceil(0.99 * r.sent), `≥ 99 % delivered after the unhold: ${report}\n${edgeTail()}`);
      }
    });
  });

  lt('(c) phones stop sending RTP: after media.timeout (5 s) the edge sends BYE to both and GET /api/calls forgets the call', 60_000, async (lab) => {
    const caller = A1(5074, 6020);
    const callee = B1(5066, 6020, '2003');
    await noPrivateLeaks(lab, async () => {
      await register(lab, callee, SHORT);
      const ab = await direction(lab, caller, callee, SHORT, LEN_20MS);
      const ba = await direction(lab, callee, caller, SHORT, LEN_20MS);
      const run = await startCall(lab, { e: SHORT, caller, callee, uac: 'media_uac_timeout', uas: 'media_uas_timeout', recvTimeoutMs: 20_000 });

      // Once media flowed: listed, confirmed, relayed, packets from both legs (the row stays until the BYE).
      let mid: CallRow[];
      const listedBy = Date.now() + 5000;
      for (;;) {
        mid = await calls(lab, SHORT);
        const ok = mid.length === 1 && mid[0].state === 'confirmed' && mid[0].legs?.length === 2 && mid[0].legs.every((l) => l.received.packets > 0);
        if (ok) break;
        assert.ok(Date.now() < listedBy, `GET /api/calls lists the confirmed call with packets from both legs: ${JSON.stringify(mid)}\n${edgeTail(SHORT)}`);
        await sleep(200);
      }
      const callId = mid[0].callId;
      assert.equal(mid[0].media, 'relay');

      const res = await run.done;
      assert.equal(res.uac.code, 0, `the caller got the edge's BYE and answered it\n${run.uac.describe(res.uac)}\n${edgeTail(SHORT)}`);
      assert.equal(res.uas.code, 0, `the callee got the edge's BYE and answered it\n${run.uas.describe(res.uas)}\n${edgeTail(SHORT)}`);

      const results = [await delivery(ab), await delivery(ba)];
      console.error(`media_nat (c): ${results.map((r) => r.text).join('; ')}`);
      for (const r of results) assert.ok(r.sent === PCAPS.short.packets && r.received >= Math.ceil(0.99 * r.sent), `media flowed before it stopped: ${r.text}`);

      // Each BYE came from the edge (Reason: media timeout), ≥ media.timeout after that phone's last RTP packet.
      for (const [who, s] of [
        ['a1', run.uac],
        ['b1', run.uas],
      ] as const) {
        const t = s.trace();
        const bye = t.find((e) => e.dir === 'received' && e.first.startsWith('BYE '));
        assert.ok(bye, `${who} received a BYE`);
        assert.equal(traceHeader(bye, 'call-id'), callId, `${who}: the BYE is for the call`);
        assert.match(traceHeader(bye, 'reason') ?? '', /cause=408/, `${who}: Reason says why (media timeout)`);
        assert.match(traceHeader(bye, 'via') ?? '', new RegExp(`${PUBLIC.replace(/\./g, '\\.')}:${SHORT.port}`), `${who}: the BYE comes from the edge's public address`);
        const ack = t.find((e) => (e.dir === 'sent' || e.dir === 'received') && e.first.startsWith('ACK '));
        assert.ok(ack, `${who}: the ACK is in its trace`);
        // Audio ends 1 s (the pause after the comfort-noise packet) + 1 s (short.pcap) after the ACK.
        const lastPacket = ack.at + AUDIO_AFTER_ACK_MS + PCAPS.short.packets * PCAPS.short.intervalMs;
        const idle = bye.at - lastPacket;
        console.error(`media_nat (c): ${who} got the BYE ${idle} ms after its last RTP packet (media.timeout ${SHORT.timeout} s)`);
        assert.ok(idle >= SHORT.timeout * 1000 - 300, `${who}: BYE ${idle} ms after media stopped: not before media.timeout`);
        assert.ok(idle <= SHORT.timeout * 1000 + 3000, `${who}: BYE ${idle} ms after media stopped: soon after media.timeout`);
      }
      const logLine = (edges.get('short')?.out() ?? '').split('\n').find((l) => l.includes('media timeout: call ended with BYE to both sides') && l.includes(callId));
      assert.ok(logLine, `the edge logged the media timeout\n${edgeTail(SHORT)}`);
      assert.ok((JSON.parse(logLine) as { idleMs: number }).idleMs >= SHORT.timeout * 1000, `idleMs ≥ media.timeout: ${logLine}`);

      const left = await calls(lab, SHORT);
      assert.ok(!left.some((c) => c.callId === callId), `GET /api/calls no longer lists the call: ${JSON.stringify(left)}`);
    });
  });

  lt('(d) 50 concurrent calls a1 → b1, RTP both ways on every call: 50 successful calls, ≥ 99.9 % of the packets delivered', 120_000, async (lab) => {
    const CALLS = 50;
    // One SIPp per namespace: every call of the caller sends from a1:6030, every call of the
    // callee from b1:6030 (SIPp's -mp), each to its own relay port.
    const caller = A1(5076, 6030);
    const callee = B1(5068, 6030, '2004');
    await noPrivateLeaks(lab, async () => {
      await register(lab, callee, MAIN);
      const ab = await direction(lab, caller, callee, MAIN, LEN_20MS);
      const ba = await direction(lab, callee, caller, MAIN, LEN_20MS);
      let peak = 0;
      // SIPEDGE_E2E_CAPTURE=1: the edge's traffic goes to d-edge.pcap in the work dir (kept with SIPEDGE_E2E_KEEP=1).
      const cap = process.env.SIPEDGE_E2E_CAPTURE ? await lab.capture('edge', lab.addr('edge').iface, 'udp', path.join(work, 'd-edge.pcap')) : undefined;
      const run = await startCall(lab, { e: MAIN, caller, callee, uac: 'media_uac', uas: 'media_uas', calls: CALLS, limit: CALLS, rate: 25, holdMs: 6000, timeoutMs: 90_000 });
      void run.done.then(() => cap?.stop());
      // Sample GET /api/calls while the calls run (all 50 overlap from ~2 s, the end of the
      // set-up at 25 calls/s, to ~7 s); twice at most: each sample is a node process in the edge namespace.
      const sampler = (async () => {
        for (const wait of [3500, 1500]) {
          await sleep(wait);
          if (run.uac.proc.child.exitCode !== null) break;
          const rows = await calls(lab, MAIN).catch(() => []);
          peak = Math.max(peak, rows.filter((r) => r.state === 'confirmed' && r.media === 'relay' && r.from === `sip:${caller.user}@${DOMAIN}`).length);
          if (peak === CALLS) break;
        }
      })();
      const res = await run.done;
      await sampler;
      assert.equal(res.uac.code, 0, `caller\n${run.uac.describe(res.uac)}\n${edgeTail()}`);
      assert.equal(res.uas.code, 0, `callee\n${run.uas.describe(res.uas)}\n${edgeTail()}`);
      const st = sippStats(run.uac.files.stat);
      assert.equal(Number(st['SuccessfulCall(C)']), CALLS, `SIPp: ${CALLS} successful calls (${JSON.stringify(st)})`);
      assert.equal(Number(st['FailedCall(C)']), 0, 'SIPp: no failed call');

      const results = [await delivery(ab), await delivery(ba)];
      const report = `${results.map((r) => r.text).join('; ')}; peak concurrent relayed calls seen in GET /api/calls: ${peak}`;
      console.error(`media_nat (d): ${report}`);
      assert.ok(peak >= 40, `the calls overlapped (peak ${peak} relayed calls at once)`);
      const short = results.some((r) => r.received < Math.ceil(0.999 * r.sent));
      if (short) console.error(`media_nat (d): ${await pathStats(lab)}`);
      for (const r of results) {
        assert.equal(r.sent, CALLS * PCAPS.rtp.packets, `every call played the whole pcap: ${r.text}`);
        assert.ok(r.received >= Math.ceil(0.999 * r.sent), `≥ 99.9 % delivered: ${report}\n${edgeTail()}`);
      }
      const left = (await calls(lab, MAIN)).filter((c) => c.from === `sip:${caller.user}@${DOMAIN}`);
      assert.equal(left.length, 0, `every call ended (BYE): ${JSON.stringify(left.map((c) => c.callId))}`);
    });
  });
});
