/**
 * Issue 3, "Done when": far-end NAT — phones behind home routers — through real kernel NAT (the
 * NAT lab, lab/README.md), the real CLI (`sipedge start`) and SIPp phones.
 *
 * Edge A runs in namespace `edge` on 10.0.0.10:5060 (udp + tcp; public 203.0.113.10 through the
 * cloud's 1:1 NAT; `publicAddress: { ip: 203.0.113.10 }`, `localnet: [10.0.0.0/8]`), with OPTIONS
 * keepalives every 10 s and `nat.maxExpires: 300`. Edge B, the control for the keepalive case,
 * runs next to it on udp 10.0.0.10:5080 with keepalives off. The home routers' conntrack UDP
 * timeout is 20 s. Phones are SIPp processes in the phone namespaces: each registers
 * (phone_register.xml) and then answers calls on the same socket (-oocsf phone_uas.xml);
 * callers are uac_auth.xml (caller hangs up) and uac_wait_bye.xml (callee hangs up).
 *
 *  (a) a1 and a2, behind the same port-preserving MASQUERADE, both register from port 5060 with
 *      their private Contacts; a call from pub1 to each is answered by that phone and by no other
 *      (the X-Phone header of the 200 names the answering SIPp instance's user, and only its trace
 *      has the INVITE).
 *  (b) conntrack timeout 20 s, keepalives every 10 s: a call placed 60 s after registration still
 *      reaches b2 (behind --random-fully). The same phone registered on edge B (no keepalives)
 *      is not reached — its NAT mapping is gone from the router, the INVITEs die there.
 *  (c) b1 calls a1 and a1 hangs up: b1 (behind the other NAT) receives that BYE; a1 calls b1 and
 *      b1 hangs up: a1 receives it; and b1 → a1 with the caller hanging up: a1 receives the BYE.
 *      In-dialog requests are routed by the flow token in our Record-Route.
 *  (d) a TCP phone on a1 gets an incoming call (from pub1 over UDP) over the connection it
 *      registered on: the home router has exactly that one connection (it lets no new inbound
 *      connection through). When the phone is gone, a call gets 480 and the edge sends no TCP
 *      packet towards the NAT (never a new connection to a NATed address).
 *  (e) `sipedge show peers --json` (the real CLI, in the edge namespace, against edge A's API)
 *      shows each binding's received address as its NAT's public address and the mapped port the
 *      router's conntrack table reports, NAT yes with the tests that fired, expires capped by
 *      nat.maxExpires, the User-Agent, reachable, and an RTT.
 *  Everything the phones receive names 203.0.113.10, never the edge's private 10.0.0.10
 *  (the flow token in Record-Route is encrypted).
 *
 * The 60 s of (b) run while (a), (c), (d), (e) run. Needs root (network namespaces): otherwise
 * every test is skipped with a loud banner (lab/testing.ts). Needs SIPp (`sip-tester`).
 * SIPEDGE_E2E_KEEP=1 keeps the work dir (configs, edge logs, SIPp traces).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import YAML from 'yaml';
import type { HostName, Lab } from '../../lab/lab.js';
import { labForTests, type TestLab } from '../../lab/testing.js';
import { cliIn, sippIn, startEdgeIn, traceHeader as hdr, type NsProcess, type SippRun, type SippTraceEntry } from '../helpers/netns.js';
import { requireSipp, SCENARIO_DIR } from '../helpers/sipp.js';
import type { PeerRow } from '../../src/edge-api.js';

const PUBLIC = '203.0.113.10';
const PRIVATE = '10.0.0.10';
const DOMAIN = 'sip.example.org';
const KEEPALIVE_S = 10;
const MAX_EXPIRES = 300;
const WINDOW_MS = 60_000;

interface EdgeSpec {
  name: 'A' | 'B';
  port: number;
  api: string;
  config: Record<string, unknown>;
}

interface Phone {
  host: HostName;
  user: string;
  port: number;
  transport: 'udp' | 'tcp';
  edge: EdgeSpec;
}

const PASSWORDS: Record<string, string> = {
  '1001': 'far-1001-pw',
  '1002': 'far-1002-pw',
  '1003': 'far-1003-pw',
  '1004': 'far-1004-pw',
  '1005': 'far-1005-pw',
  '1006': 'far-1006-pw',
  '1010': 'far-1010-pw',
};
const users = (list: string[]) => list.map((u) => ({ username: u, password: PASSWORDS[u] }));

let env: TestLab;
let work = '';
let failures = 0;

const EDGE_A: EdgeSpec = { name: 'A', port: 5060, api: '127.0.0.1:8088', config: {} };
const EDGE_B: EdgeSpec = { name: 'B', port: 5080, api: '127.0.0.1:8089', config: {} };

function edgeConfigs(): void {
  EDGE_A.config = {
    listen: [`udp:${PRIVATE}:5060`, `tcp:${PRIVATE}:5060`],
    publicAddress: { ip: PUBLIC },
    localnet: ['10.0.0.0/8'],
    registrar: { domains: [DOMAIN] },
    users: users(['1001', '1002', '1003', '1004', '1005', '1010']),
    nat: { clients: 'auto', maxExpires: MAX_EXPIRES, keepalive: { method: 'options', interval: KEEPALIVE_S } },
    media: { relay: 'never' },
    store: `sqlite:${path.join(work, 'edge-a.db')}`,
    api: { listen: EDGE_A.api },
    log: { level: 'debug' },
  };
  EDGE_B.config = {
    listen: [`udp:${PRIVATE}:5080`],
    publicAddress: { ip: PUBLIC },
    localnet: ['10.0.0.0/8'],
    registrar: { domains: [DOMAIN] },
    users: users(['1006', '1010']),
    // The control: no keepalives. Short T1 so the unanswered INVITE times out (Timer B = 64*T1) quickly.
    nat: { clients: 'auto', keepalive: { method: 'options', interval: 0 } },
    sip: { timers: { t1: 100, t2: 400 } },
    media: { relay: 'never' },
    store: `sqlite:${path.join(work, 'edge-b.db')}`,
    api: { listen: EDGE_B.api },
    log: { level: 'info' },
  };
}

const cfgPath = (e: EdgeSpec): string => path.join(work, `edge-${e.name.toLowerCase()}.yaml`);

// ------------------------------------------------------------------ processes in namespaces

const edges = new Map<string, NsProcess>();

async function startEdgeProcess(lab: Lab, e: EdgeSpec): Promise<void> {
  fs.writeFileSync(cfgPath(e), YAML.stringify(e.config));
  edges.set(e.name, await startEdgeIn(lab, 'edge', cfgPath(e), 60_000));
}

const edgeTail = (name = 'A'): string => `--- edge ${name} output (tail) ---\n${(edges.get(name)?.out() ?? '').slice(-6000)}`;

// ------------------------------------------------------------------ SIPp

const callIdOf = (e: SippTraceEntry) => hdr(e, 'call-id') ?? hdr(e, 'i');
const cseqOf = (e: SippTraceEntry) => hdr(e, 'cseq') ?? '';

/** SIPp's errors and screen (helpers/netns.ts describe), and the tail of its message trace. */
function describeSipp(s: SippRun): string {
  const trace = fs.existsSync(s.files.messages) ? fs.readFileSync(s.files.messages, 'latin1').slice(-3000) : '';
  return `${s.describe()}\n--- trace (tail) ---\n${trace}`;
}

const phones = new Map<string, SippRun>();

/** Starts a phone: registers (digest), then answers calls on the same socket until killed. */
async function startPhone(lab: Lab, p: Phone): Promise<SippRun> {
  const ip = lab.addr(p.host).ip;
  const s = sippIn(lab, p.host, [
    '-sf',
    path.join(SCENARIO_DIR, 'phone_register.xml'),
    '-oocsf',
    path.join(SCENARIO_DIR, 'phone_uas.xml'),
    `${PUBLIC}:${p.edge.port}`,
    '-t',
    p.transport === 'tcp' ? 't1' : 'u1',
    '-i',
    ip,
    '-p',
    String(p.port),
    '-m',
    '1',
    '-s',
    p.user,
    '-au',
    p.user,
    '-ap',
    PASSWORDS[p.user],
    '-key',
    'domain',
    DOMAIN,
    '-key',
    'expires',
    '3600',
    '-d',
    '200000',
    '-aa',
    '-recv_timeout',
    '20000',
    // The phone lives until killed (at the latest by the lab's teardown): no hard timeout.
  ], { dir: work, name: `phone-${p.user}`, timeoutMs: 0 });
  phones.set(p.user, s);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = s.trace().some((e) => e.dir === 'received' && e.first.startsWith('SIP/2.0 200') && /REGISTER/i.test(cseqOf(e)));
    if (ok) return s;
    if (s.proc.child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`phone ${p.user} on ${p.host} did not register\n${describeSipp(s)}\n${edgeTail(p.edge.name)}`);
    }
    await sleep(50);
  }
}

interface CallResult {
  code: number | null;
  sipp: SippRun;
  /** Call-ID of the call (from the caller's trace). */
  callId: string;
  entries: SippTraceEntry[];
}

/** A call from `host`:`port` as `user` to `callee`, through edge `e`; resolves when SIPp exits. */
async function call(
  lab: Lab,
  o: { host: HostName; port: number; user: string; callee: string; edge: EdgeSpec; calleeHangsUp?: boolean; recvTimeoutMs?: number },
): Promise<CallResult> {
  const s = sippIn(lab, o.host, [
    '-sf',
    path.join(SCENARIO_DIR, o.calleeHangsUp ? 'uac_wait_bye.xml' : 'uac_auth.xml'),
    `${PUBLIC}:${o.edge.port}`,
    '-i',
    lab.addr(o.host).ip,
    '-p',
    String(o.port),
    '-m',
    '1',
    '-s',
    o.callee,
    '-au',
    o.user,
    '-ap',
    PASSWORDS[o.user],
    '-auth_uri',
    `${o.callee}@${DOMAIN}`,
    '-key',
    'domain',
    DOMAIN,
    '-key',
    'caller',
    o.user,
    '-d',
    '300',
    '-recv_timeout',
    String(o.recvTimeoutMs ?? 10_000),
    '-timeout',
    '40s',
  ], { dir: work, name: `call-${o.user}-${o.callee}` });
  const { code } = await s.done;
  const entries = s.trace();
  const inv = entries.find((e) => e.dir === 'sent' && e.first.startsWith('INVITE '));
  return { code, sipp: s, callId: inv ? (callIdOf(inv) ?? '') : '', entries };
}

/** The (last) final response to the caller's INVITE. */
function inviteFinal(r: CallResult): SippTraceEntry | undefined {
  return r.entries.filter((e) => e.dir === 'received' && /^SIP\/2\.0 [2-6]\d\d/.test(e.first) && /INVITE/i.test(cseqOf(e)) && !e.first.startsWith('SIP/2.0 407')).pop();
}

/** Messages of call `callId` a phone received. */
function receivedOfCall(s: SippRun, callId: string): SippTraceEntry[] {
  return s.trace().filter((e) => e.dir === 'received' && callIdOf(e) === callId);
}

/** The mapped (public) port a home router gave a phone's flow to the edge. */
async function mappedPort(lab: Lab, router: 'home1' | 'home2', proto: 'udp' | 'tcp', src: string, sport: number, dport: number): Promise<number | undefined> {
  const e = (await lab.conntrack(router, proto)).find((c) => c.orig.src === src && c.orig.sport === sport && c.orig.dst === PUBLIC && c.orig.dport === dport);
  return e?.reply.dport;
}

// ------------------------------------------------------------------ the tests

describe('far-end NAT: phones behind home routers, through real kernel NAT', { timeout: 240_000 }, () => {
  /** When the keepalive phones of (b) got their 200 OK. */
  let windowStart = 0;

  const A1: Phone = { host: 'a1', user: '1001', port: 5060, transport: 'udp', edge: EDGE_A };
  const A2: Phone = { host: 'a2', user: '1002', port: 5060, transport: 'udp', edge: EDGE_A };
  const B1: Phone = { host: 'b1', user: '1003', port: 5060, transport: 'udp', edge: EDGE_A };
  const A1_TCP: Phone = { host: 'a1', user: '1004', port: 5064, transport: 'tcp', edge: EDGE_A };
  const B2_KA: Phone = { host: 'b2', user: '1005', port: 5060, transport: 'udp', edge: EDGE_A };
  const B2_NOKA: Phone = { host: 'b2', user: '1006', port: 5062, transport: 'udp', edge: EDGE_B };

  const e2e = (name: string, timeoutMs: number, fn: (lab: Lab) => Promise<void>) =>
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
    env = await labForTests('senf', { udpTimeout: 20 });
    if (!env.lab) return;
    requireSipp();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'sipedge-nat-far-'));
    edgeConfigs();
    await Promise.all([startEdgeProcess(env.lab, EDGE_A), startEdgeProcess(env.lab, EDGE_B)]);
  });

  after(async () => {
    for (const [name, p] of edges) if (work) fs.writeFileSync(path.join(work, `edge-${name.toLowerCase()}.log`), p.out());
    for (const [name, p] of edges) {
      const code = await p.stop();
      if (code !== 0) console.error(`nat_far: edge ${name} exited with ${code}`);
    }
    await env?.teardown();
    if (work && (failures > 0 || process.env.SIPEDGE_E2E_KEEP)) console.error(`nat_far: kept ${work} (configs, edge logs, SIPp traces)`);
    else if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  e2e('(b, start) b2 registers on edge A (keepalives) and edge B (none); the 60 s window opens', 30_000, async (lab) => {
    const t = await lab.getUdpTimeout('home2');
    assert.deepEqual(t, { udp: 20, stream: 20 }, 'home routers forget an idle UDP mapping after 20 s');
    await Promise.all([startPhone(lab, B2_KA), startPhone(lab, B2_NOKA)]);
    windowStart = Date.now();
    // Both registrations created a mapping on home2 (--random-fully: random public ports).
    assert.ok(await mappedPort(lab, 'home2', 'udp', '192.168.2.11', 5060, 5060), 'mapping b2:5060 → edge A');
    assert.ok(await mappedPort(lab, 'home2', 'udp', '192.168.2.11', 5062, 5080), 'mapping b2:5062 → edge B');
  });

  e2e('(a) two phones behind one MASQUERADE NAT, both from port 5060: a call to each reaches the right one', 60_000, async (lab) => {
    await Promise.all([startPhone(lab, A1), startPhone(lab, A2)]);
    // Same private port, same NAT: the router maps them to two different public ports.
    const pa1 = await mappedPort(lab, 'home1', 'udp', '192.168.1.10', 5060, 5060);
    const pa2 = await mappedPort(lab, 'home1', 'udp', '192.168.1.11', 5060, 5060);
    assert.ok(pa1 && pa2 && pa1 !== pa2, `distinct mapped ports (${pa1}, ${pa2})`);

    for (const [target, other] of [
      [A1, A2],
      [A2, A1],
    ] as const) {
      const r = await call(lab, { host: 'pub1', port: 5070, user: '1010', callee: target.user, edge: EDGE_A });
      const info = () => `${describeSipp(r.sipp)}\n${edgeTail()}`;
      assert.equal(r.code, 0, `pub1 → ${target.user}: call failed\n${info()}`);
      const ok = inviteFinal(r);
      assert.ok(ok && ok.first.startsWith('SIP/2.0 200'), `200 OK for ${target.user}\n${info()}`);
      assert.equal(hdr(ok, 'x-phone'), target.user, `the 200 came from the SIPp instance on ${target.host}`);
      const mine = phones.get(target.user)!;
      const theirs = phones.get(other.user)!;
      const got = receivedOfCall(mine, r.callId).map((e) => e.first.split(' ')[0]);
      assert.ok(got.includes('INVITE') && got.includes('ACK') && got.includes('BYE'), `${target.host} got INVITE, ACK, BYE: ${got.join(', ')}`);
      assert.deepEqual(receivedOfCall(theirs, r.callId), [], `${other.host} saw nothing of the call to ${target.user}`);
    }
  });

  e2e('(c) in-dialog BYE across two NATs: the callee hangs up and the caller behind the other NAT gets it; and the reverse', 60_000, async (lab) => {
    await startPhone(lab, B1);
    const a1 = phones.get(A1.user)!;
    const b1 = phones.get(B1.user)!;

    // b1 calls a1, a1 hangs up: the BYE goes a1 → edge → b1 (flow token: the caller's flow through home2).
    const r1 = await call(lab, { host: 'b1', port: 5070, user: '1003', callee: A1.user, edge: EDGE_A, calleeHangsUp: true });
    assert.equal(r1.code, 0, `b1 → a1, a1 hangs up: b1 must receive the BYE\n${describeSipp(r1.sipp)}\n${edgeTail()}`);
    assert.ok(r1.entries.some((e) => e.dir === 'received' && e.first.startsWith('BYE ') && hdr(e, 'x-phone') === A1.user), 'b1 received the BYE sent by a1');
    assert.ok(a1.trace().some((e) => e.dir === 'received' && callIdOf(e) === r1.callId && e.first.startsWith('SIP/2.0 200') && /BYE/.test(cseqOf(e))), 'a1 got the 200 for its BYE');

    // a1 calls b1, b1 hangs up: the BYE goes b1 → edge → a1 (through home1).
    const r2 = await call(lab, { host: 'a1', port: 5070, user: '1001', callee: B1.user, edge: EDGE_A, calleeHangsUp: true });
    assert.equal(r2.code, 0, `a1 → b1, b1 hangs up: a1 must receive the BYE\n${describeSipp(r2.sipp)}\n${edgeTail()}`);
    assert.ok(r2.entries.some((e) => e.dir === 'received' && e.first.startsWith('BYE ') && hdr(e, 'x-phone') === B1.user), 'a1 received the BYE sent by b1');
    assert.ok(b1.trace().some((e) => e.dir === 'received' && callIdOf(e) === r2.callId && e.first.startsWith('SIP/2.0 200') && /BYE/.test(cseqOf(e))), 'b1 got the 200 for its BYE');

    // b1 calls a1 and hangs up itself: the BYE reaches the NATed callee a1.
    const r3 = await call(lab, { host: 'b1', port: 5071, user: '1003', callee: A1.user, edge: EDGE_A });
    assert.equal(r3.code, 0, `b1 → a1, b1 hangs up\n${describeSipp(r3.sipp)}\n${edgeTail()}`);
    assert.ok(receivedOfCall(a1, r3.callId).some((e) => e.first.startsWith('BYE ')), 'a1 received the caller\'s BYE');
  });

  e2e('(d) a TCP phone behind NAT receives a call over its own connection; once it is gone, 480 and no new connection', 60_000, async (lab) => {
    const phone = await startPhone(lab, A1_TCP);
    const conns = (await lab.conntrack('home1', 'tcp')).filter((c) => c.orig.src === '192.168.1.10' || c.reply.dst === '198.51.100.11');
    assert.equal(conns.length, 1, `exactly one TCP connection through home1: ${conns.map((c) => c.raw).join('\n')}`);
    assert.equal(conns[0].orig.sport, A1_TCP.port);
    assert.equal(conns[0].orig.dport, 5060);

    const r = await call(lab, { host: 'pub1', port: 5072, user: '1010', callee: A1_TCP.user, edge: EDGE_A });
    assert.equal(r.code, 0, `pub1 (UDP) → a1 (TCP)\n${describeSipp(r.sipp)}\n${edgeTail()}`);
    assert.equal(hdr(inviteFinal(r)!, 'x-phone'), A1_TCP.user, 'answered by the TCP phone');
    const inv = receivedOfCall(phone, r.callId).find((e) => e.first.startsWith('INVITE '));
    assert.ok(inv, 'the TCP phone received the INVITE');
    assert.equal(inv.transport, 'TCP', 'over TCP');
    const after = (await lab.conntrack('home1', 'tcp')).filter((c) => c.orig.src === '192.168.1.10' || c.reply.dst === '198.51.100.11');
    assert.equal(after.length, 1, 'still that one connection: the call came over it (home1 lets no new inbound connection in)');
    assert.equal(after[0].orig.sport, conns[0].orig.sport);

    // The phone goes away (its connection closes). The binding is still there, but its flow is gone.
    phone.proc.child.kill('SIGKILL');
    await phone.proc.exit;
    await sleep(1000);
    const toNat = await lab.countPackets('home1', { hook: 'pre', proto: 'tcp', src: PUBLIC, dst: '198.51.100.11', name: 'edge_tcp_to_home1' });
    const r2 = await call(lab, { host: 'pub1', port: 5072, user: '1010', callee: A1_TCP.user, edge: EDGE_A });
    const fin = inviteFinal(r2);
    assert.ok(fin?.first.startsWith('SIP/2.0 480'), `480 when the NATed TCP flow is gone: ${fin?.first}\n${edgeTail()}`);
    assert.equal(await toNat.packets(), 0, 'the edge sent no TCP packet towards the NAT (no new connection)');
  });

  e2e('(e) sipedge show peers --json: received = NAT public address + mapped port, NAT tests, RTT', 60_000, async (lab) => {
    const expect: Array<{ p: Phone; router: 'home1' | 'home2'; pub: string }> = [
      { p: A1, router: 'home1', pub: '198.51.100.11' },
      { p: A2, router: 'home1', pub: '198.51.100.11' },
      { p: B1, router: 'home2', pub: '198.51.100.12' },
      { p: B2_KA, router: 'home2', pub: '198.51.100.12' },
    ];
    const aors = new Set(expect.map((x) => `sip:${x.p.user}@${DOMAIN}`));
    // Keepalives run every 10 s: wait until every phone has answered one (an RTT is known).
    let rows: PeerRow[];
    const deadline = Date.now() + (KEEPALIVE_S + 5) * 1000;
    for (;;) {
      const r = await cliIn(lab, 'edge', ['show', 'peers', '--json', '-c', cfgPath(EDGE_A)], 30_000);
      assert.equal(r.code, 0, `sipedge show peers --json: exit ${r.code}\n${r.stderr}`);
      rows = (JSON.parse(r.stdout) as PeerRow[]).filter((x) => aors.has(x.aor));
      if (rows.length === expect.length && rows.every((x) => typeof x.rttMs === 'number')) break;
      assert.ok(Date.now() < deadline, `every binding has an RTT within ${KEEPALIVE_S + 5} s: ${JSON.stringify(rows, null, 1)}`);
      await sleep(1000);
    }
    for (const { p, router, pub } of expect) {
      const row = rows.find((x) => x.aor === `sip:${p.user}@${DOMAIN}`)!;
      const ip = lab.addr(p.host).ip;
      const mapped = await mappedPort(lab, router, 'udp', ip, p.port, 5060);
      assert.ok(mapped, `conntrack mapping of ${p.host}`);
      const what = `${p.host} (${JSON.stringify(row)})`;
      assert.equal(row.received, `${pub}:${mapped}`, `${what}: received = NAT public address and mapped port`);
      assert.equal(row.contact, `sip:${p.user}@${ip}:${p.port};transport=UDP`, `${what}: the Contact as the phone sent it`);
      assert.equal(row.transport, 'udp');
      assert.equal(row.nat, true, `${what}: NAT yes`);
      assert.ok(row.natTests.includes('via-received') && row.natTests.includes('contact-private'), `${what}: tests that fired`);
      if (router === 'home2') assert.ok(row.natTests.includes('via-rport'), `${what}: --random-fully changed the port`);
      assert.ok(row.expires > 0 && row.expires <= MAX_EXPIRES, `${what}: nat.maxExpires caps 3600 to ${MAX_EXPIRES}`);
      assert.equal(row.reachable, 'yes', `${what}: reachable`);
      assert.ok(typeof row.rttMs === 'number' && row.rttMs >= 0 && row.rttMs < 1000, `${what}: RTT`);
      assert.equal(row.userAgent, `SIPp phone ${p.user}`);
    }
    // Each NAT decision is logged at debug level with the tests that fired (edge A logs at debug).
    const decisions = (edges.get('A')?.out() ?? '')
      .split('\n')
      .filter((l) => l.includes('"msg":"nat detection: UA is behind NAT"'))
      .map((l) => JSON.parse(l) as { method: string; source: string; tests: string[]; mode: string; level: number });
    const a1reg = decisions.find((d) => d.method === 'REGISTER' && d.source.startsWith('198.51.100.11:'));
    assert.ok(a1reg, 'a debug line for the REGISTER from behind home1');
    assert.equal(a1reg.level, 20);
    assert.equal(a1reg.mode, 'auto');
    assert.ok(a1reg.tests.includes('via-received') && a1reg.tests.includes('contact-private'), JSON.stringify(a1reg));
    // The REGISTER 200 the phone got says the capped expiry too.
    const ok = phones.get(A1.user)!.trace().find((e) => e.dir === 'received' && e.first.startsWith('SIP/2.0 200') && /REGISTER/.test(cseqOf(e)));
    assert.match(hdr(ok!, 'contact') ?? '', new RegExp(`expires=${MAX_EXPIRES}\\b`));
  });

  e2e('(b) 60 s after registration: reached with keepalives (every 10 s), not reached without (the NAT closed after 20 s)', 120_000, async (lab) => {
    assert.ok(windowStart > 0, 'the keepalive phones registered (first test)');
    const wait = windowStart + WINDOW_MS - Date.now();
    if (wait > 0) await sleep(wait);
    const elapsed = Date.now() - windowStart;
    assert.ok(elapsed >= WINDOW_MS, `${elapsed} ms since registration`);

    // The router's view: the kept-alive mapping is there, the idle one is gone.
    assert.ok(await mappedPort(lab, 'home2', 'udp', '192.168.2.11', 5060, 5060), 'home2 still maps b2:5060 (keepalives)');
    assert.equal(await mappedPort(lab, 'home2', 'udp', '192.168.2.11', 5062, 5080), undefined, 'home2 forgot b2:5062 (no keepalives, 20 s timeout)');

    const atPhone = await lab.countUdp('b2', { dport: 5062, name: 'b2_noka_in' });
    const atRouter = await lab.countPackets('home2', { hook: 'pre', proto: 'udp', src: PUBLIC, dst: '198.51.100.12', sport: 5080, name: 'edge_b_to_home2' });
    const [on, off] = await Promise.all([
      call(lab, { host: 'pub1', port: 5075, user: '1010', callee: B2_KA.user, edge: EDGE_A }),
      call(lab, { host: 'pub2', port: 5075, user: '1010', callee: B2_NOKA.user, edge: EDGE_B, recvTimeoutMs: 12_000 }),
    ]);
    assert.equal(on.code, 0, `with keepalives the call reaches b2\n${describeSipp(on.sipp)}\n${edgeTail()}`);
    assert.equal(hdr(inviteFinal(on)!, 'x-phone'), B2_KA.user, 'answered by the phone on b2:5060');
    assert.ok(receivedOfCall(phones.get(B2_KA.user)!, on.callId).some((e) => e.first.startsWith('INVITE ')), 'b2:5060 received the INVITE');

    assert.notEqual(off.code, 0, `without keepalives the call must fail\n${describeSipp(off.sipp)}`);
    const fin = inviteFinal(off);
    assert.ok(!fin || !fin.first.startsWith('SIP/2.0 2'), `no 2xx without keepalives: ${fin?.first}`);
    assert.ok(!off.entries.some((e) => e.dir === 'received' && /^SIP\/2\.0 18\d/.test(e.first)), 'not even ringing');
    assert.deepEqual(receivedOfCall(phones.get(B2_NOKA.user)!, off.callId), [], 'b2:5062 never saw the INVITE');
    assert.equal(await atPhone.packets(), 0, 'no packet reached b2:5062');
    assert.ok((await atRouter.packets()) > 0, 'edge B did send the INVITE: it died at the home router');
  });

  e2e('nothing the phones received names the edge\'s private address (Via, Record-Route flow token, keepalives)', 10_000, async () => {
    const leaks: string[] = [];
    for (const s of phones.values()) {
      for (const e of s.trace()) if (e.dir === 'received' && /\b10\.\d+\.\d+\.\d+\b/.test(e.text)) leaks.push(`${s.name}: ${e.text}`);
    }
    assert.deepEqual(leaks, []);
    const recordRoute = [...phones.values()].flatMap((s) => s.trace()).find((e) => e.dir === 'received' && e.first.startsWith('INVITE ') && hdr(e, 'record-route'));
    assert.ok(recordRoute, 'an INVITE with Record-Route');
    assert.match(hdr(recordRoute, 'record-route')!, new RegExp(`^<sip:[A-Za-z0-9_-]{40,}@${PUBLIC.replace(/\./g, '\\.')}(:5060)?;lr>`), 'Record-Route: an opaque token at our public address');
  });
});
