/**
 * `workers: 2` (src/cluster/): the real CLI as a node:cluster primary with two SIP worker
 * processes sharing one UDP socket and a SQLite store.
 *
 *  (a) SIPp registers a caller and a callee (digest auth) and places 200 calls at 50 calls/s
 *      through the edge: 0 failed; both workers handled SIP traffic and datagrams were forwarded
 *      between them by Call-ID (the per-worker counters logged at stop).
 *  (b) raw UDP, an edge without accounts: a REGISTER whose Call-ID belongs to worker 0 is visible
 *      to an INVITE whose Call-ID belongs to worker 1; that INVITE sent 8 times (retransmissions,
 *      read by either worker) reaches the callee once; every reply comes from the listening
 *      address and port, also for 40 OPTIONS spread over both workers.
 *  (c) `workers: 2` with `store: memory:` or a TCP listener does not start: exit 2, key path named.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import YAML from 'yaml';
import { HOST, freePort, makeTempDir, prepareEdge, runCli, startPrepared, type EdgeProcess, type User } from '../helpers/edge.js';
import { authCallOptions, describe as describeSipp, registerOptions, requireSipp, runCallPair, runSipp, type SippResult } from '../helpers/sipp.js';
import { statusOf } from '../helpers/udp.js';
import type { WorkerCounters } from '../../src/cluster/worker.js';
import { ownerOfAor, ownerOfCallId } from '../../src/transport/dispatch.js';

const CALLER: User = { username: '1001', password: 'cluster-1001-Secret' };
const CALLEE: User = { username: '1002', password: 'cluster-1002-Secret' };

/** Prepares an edge with `workers: 2`, UDP only, then starts it. */
async function startClusterEdge(users: User[], name: string, extra: Record<string, unknown> = {}): Promise<EdgeProcess> {
  const edge = await prepareEdge({ users, name, readyTimeoutMs: 60_000 });
  const cfg = YAML.parse(fs.readFileSync(edge.configPath, 'utf8')) as Record<string, unknown>;
  cfg.listen = [`udp:${HOST}:${edge.sipPort}`];
  cfg.workers = 2;
  Object.assign(cfg, extra);
  fs.writeFileSync(edge.configPath, YAML.stringify(cfg));
  return startPrepared(edge);
}

/** One worker's counters, with the worker's index. */
type WorkerStats = WorkerCounters & { worker: number };

/** The `cluster worker stats` lines each worker logs when it stops. */
function workerStats(edge: EdgeProcess): WorkerStats[] {
  return edge
    .logs()
    .filter((l) => l.msg === 'cluster worker stats')
    .map((l) => ({
      worker: l.worker as number,
      handled: l.handled as number,
      forwarded: l.forwarded as number,
      injected: l.injected as number,
      unowned: l.unowned as number,
      refused: l.refused as number,
      sendErrors: l.sendErrors as number,
    }))
    .sort((a, b) => a.worker - b.worker);
}

/** A Call-ID that {@link ownerOfCallId} gives to `worker` of 2. */
function callIdFor(worker: number, tag: string): string {
  for (let i = 0; ; i++) {
    const id = `${tag}-${i}@192.0.2.10`;
    if (ownerOfCallId(id, 2) === worker) return id;
  }
}

describe('workers: 2 (node:cluster), SIPp through the shared UDP socket', () => {
  let edge: EdgeProcess;
  let sippDir: string;

  before(async () => {
    requireSipp();
    edge = await startClusterEdge([CALLER, CALLEE], 'sipedge-cluster');
    sippDir = path.join(edge.dir, 'sipp');
  });

  after(async () => {
    if (edge) await edge.dispose();
  });

  const tail = () => `--- edge output (last 6000 chars) ---\n${edge.output().slice(-6000)}`;

  function assertAll(r: SippResult, calls: number, what: string): void {
    const info = () => `${what}\n${describeSipp(r)}\n${tail()}`;
    assert.equal(r.failed, 0, `${what}: ${r.failed} failed\n${info()}`);
    assert.equal(r.successful, calls, `${what}: ${r.successful} of ${calls} succeeded\n${info()}`);
    assert.equal(r.code, 0, `${what}: SIPp exit code ${r.code}\n${info()}`);
  }

  test('(a) register, then 200 calls at 50/s: 0 failed, both workers served calls, datagrams forwarded by Call-ID', { timeout: 180_000 }, async (t) => {
    const callerPort = await freePort({ udp: true, tcp: false });
    let calleePort = await freePort({ udp: true, tcp: false });
    while (calleePort === callerPort) calleePort = await freePort({ udp: true, tcp: false });
    for (const [user, port] of [
      [CALLER, callerPort],
      [CALLEE, calleePort],
    ] as const) {
      const r = await runSipp({ ...registerOptions(edge.address, user, port), dir: sippDir });
      assertAll(r, 1, `REGISTER ${user.username}`);
    }
    const calls = 200;
    const { uac, uas: uasResult } = await runCallPair(
      { scenario: 'uas', localPort: calleePort, dir: sippDir, recvTimeoutMs: 10_000, timeoutMs: 150_000 },
      {
        scenario: 'uac_auth',
        ...authCallOptions(edge.address, CALLER, CALLEE),
        localPort: callerPort,
        calls,
        rate: 50,
        limit: 100,
        pauseMs: 500,
        recvTimeoutMs: 10_000,
        timeoutMs: 120_000,
        dir: sippDir,
      },
    );
    assertAll(uac, calls, 'UAC 1001 (INVITE/407/ACK/INVITE+auth/100/180/200/ACK/BYE/200)');
    assertAll(uasResult, calls, 'UAS 1002 (INVITE/180/200/ACK/BYE/200)');

    const exit = await edge.stop();
    assert.equal(exit.code, 0, `the cluster did not exit 0 on SIGTERM (code ${exit.code}, signal ${exit.signal})\n${tail()}`);
    const stats = workerStats(edge);
    t.diagnostic(`worker stats: ${JSON.stringify(stats)}`);
    assert.deepEqual(
      stats.map((s) => s.worker),
      [0, 1],
      `one stats line per worker expected\n${tail()}`,
    );
    // Each call's datagrams all belong to one worker (its Call-ID), so a worker that handled
    // many datagrams processed INVITEs: the callee's binding (REGISTERed through one worker)
    // was found from both, through the shared SQLite file.
    for (const s of stats) assert.ok(s.handled + s.injected > calls, `worker ${s.worker} handled too little: ${JSON.stringify(stats)}`);
    const forwarded = stats.reduce((a, s) => a + s.forwarded, 0);
    const injected = stats.reduce((a, s) => a + s.injected, 0);
    assert.ok(forwarded > 0, `no datagram was forwarded between the workers: ${JSON.stringify(stats)}`);
    // Loopback datagrams are not lost at this rate; allow a few in flight at the stop.
    assert.ok(injected <= forwarded && injected >= forwarded * 0.95, `forwarded datagrams are injected by their owner: ${JSON.stringify(stats)}`);
  });
});

/** A UDP socket on 127.0.0.1 that records what it receives and from where. */
class Phone {
  readonly received: Array<{ data: Buffer; address: string; port: number }> = [];
  private readonly sock = dgram.createSocket('udp4');
  port = 0;
  onMessage?: (data: Buffer) => void;

  async open(): Promise<void> {
    this.sock.on('message', (data, r) => {
      this.received.push({ data, address: r.address, port: r.port });
      this.onMessage?.(data);
    });
    await new Promise<void>((resolve) => this.sock.bind(0, HOST, () => resolve()));
    this.port = this.sock.address().port;
  }

  send(text: string, port: number): void {
    this.sock.send(Buffer.from(text.replace(/\n/g, '\r\n')), port, HOST);
  }

  /** Waits until `pred` holds for the received datagrams, or `ms` pass. */
  async until(pred: () => boolean, ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
    return true;
  }

  statuses(callId: string): number[] {
    return this.received.filter((m) => m.data.includes(`Call-ID: ${callId}`)).map((m) => statusOf(m.data) ?? 0);
  }

  close(): void {
    this.sock.close();
  }
}

function header(value: string, name: string): string {
  const m = new RegExp(`^${name}:\\s*(.*)$`, 'mi').exec(value);
  return m ? m[1].trim() : '';
}

describe('workers: 2, raw UDP: shared store, retransmissions, reply source address', () => {
  let edge: EdgeProcess;
  const phones: Phone[] = [];

  before(async () => {
    edge = await startClusterEdge([], 'sipedge-cluster-raw');
  });

  after(async () => {
    for (const p of phones) p.close();
    if (edge) await edge.dispose();
  });

  async function phone(): Promise<Phone> {
    const p = new Phone();
    await p.open();
    phones.push(p);
    return p;
  }

  test('(b0) SIGHUP to the primary reloads every worker; a worker that dies is restarted', { timeout: 60_000 }, async () => {
    const count = (msg: string) => edge.logs().filter((l) => l.msg === msg);
    process.kill(edge.pid!, 'SIGHUP');
    const reloaded = () => new Set(count('configuration reloaded').map((l) => l.worker)).size === 2;
    for (let i = 0; i < 200 && !reloaded(); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(reloaded(), `both workers log "configuration reloaded"\n${edge.output().slice(-3000)}`);

    const ready = count('sipedge ready')[0];
    const pids = ready.pids as number[];
    assert.equal(pids.length, 2);
    process.kill(pids[1], 'SIGKILL');
    const restarted = () => edge.logs().some((l) => l.msg === 'worker 1 restarted and ready');
    for (let i = 0; i < 400 && !restarted(); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(restarted(), `worker 1 was not restarted\n${edge.output().slice(-3000)}`);
    assert.ok(
      edge.logs().some((l) => l.level === 50 && typeof l.msg === 'string' && l.msg.startsWith('WORKER 1 DIED')),
      'the death is logged at error level',
    );
  });

  test('(b) REGISTER via worker 0 is seen by an INVITE owned by worker 1; its retransmissions reach the callee once; replies come from the listening port', { timeout: 60_000 }, async () => {
    const domain = edge.address;
    const callee = await phone();
    const caller = await phone();
    const regId = callIdFor(0, 'reg');
    callee.send(
      `REGISTER sip:${domain} SIP/2.0
Via: SIP/2.0/UDP ${HOST}:${callee.port};branch=z9hG4bKreg1;rport
Max-Forwards: 70
From: <sip:bob@${domain}>;tag=r1
To: <sip:bob@${domain}>
Call-ID: ${regId}
CSeq: 1 REGISTER
Contact: <sip:bob@${HOST}:${callee.port}>
Expires: 600
Content-Length: 0

`,
      edge.sipPort,
    );
    assert.ok(await callee.until(() => callee.statuses(regId).includes(200), 5000), `no 200 to the REGISTER: ${callee.statuses(regId)}\n${edge.output().slice(-4000)}`);

    // The callee answers each INVITE it gets with 180, and counts them.
    let invites = 0;
    callee.onMessage = (data) => {
      const text = data.toString('latin1');
      if (!text.startsWith('INVITE ')) return;
      invites++;
      const vias = text.split('\r\n').filter((l) => /^Via:/i.test(l));
      callee.send(
        `SIP/2.0 180 Ringing
${vias.join('\n')}
From: ${header(text, 'From')}
To: ${header(text, 'To')};tag=callee1
Call-ID: ${header(text, 'Call-ID')}
CSeq: ${header(text, 'CSeq')}
Content-Length: 0

`,
        edge.sipPort,
      );
    };
    const inviteId = callIdFor(1, 'inv');
    const invite = `INVITE sip:bob@${domain} SIP/2.0
Via: SIP/2.0/UDP ${HOST}:${caller.port};branch=z9hG4bKinv1;rport
Max-Forwards: 70
From: <sip:alice@${domain}>;tag=a1
To: <sip:bob@${domain}>
Call-ID: ${inviteId}
CSeq: 1 INVITE
Contact: <sip:alice@${HOST}:${caller.port}>
Content-Length: 0

`;
    for (let i = 0; i < 8; i++) {
      caller.send(invite, edge.sipPort);
      await new Promise((r) => setTimeout(r, 40));
    }
    assert.ok(await caller.until(() => caller.statuses(inviteId).includes(180), 5000), `the caller got no 180: ${caller.statuses(inviteId)}\n${edge.output().slice(-4000)}`);
    // Longer than T1 (500 ms): a second client transaction would have sent its own INVITE by now.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(invites, 1, 'the callee must get the INVITE once: retransmissions are absorbed by the server transaction of the owning worker');

    // 40 OPTIONS with Call-IDs of both workers: each gets a final response.
    const ids = Array.from({ length: 40 }, (_, i) => `opt-${i}-${Date.now()}@192.0.2.10`);
    assert.deepEqual(new Set(ids.map((id) => ownerOfCallId(id, 2))).size, 2);
    ids.forEach((id, i) =>
      caller.send(
        `OPTIONS sip:${domain} SIP/2.0
Via: SIP/2.0/UDP ${HOST}:${caller.port};branch=z9hG4bKopt${i};rport
Max-Forwards: 70
From: <sip:alice@${domain}>;tag=o${i}
To: <sip:${domain}>
Call-ID: ${id}
CSeq: 1 OPTIONS
Content-Length: 0

`,
        edge.sipPort,
      ),
    );
    const allAnswered = () => ids.every((id) => caller.statuses(id).some((s) => s >= 200));
    assert.ok(await caller.until(allAnswered, 5000), `not every OPTIONS was answered: ${ids.filter((id) => !caller.statuses(id).some((s) => s >= 200)).length} missing`);

    for (const p of [caller, callee]) {
      for (const m of p.received) assert.deepEqual([m.address, m.port], [HOST, edge.sipPort], `a reply came from ${m.address}:${m.port}, not the listening socket`);
    }

    const exit = await edge.stop();
    assert.equal(exit.code, 0, edge.output().slice(-4000));
    const stats = workerStats(edge);
    assert.equal(stats.length, 2, edge.output().slice(-4000));
  });
});

describe('workers: 2, keepalives: each binding is pinged by the worker owning its AOR, and the answers come back to it', () => {
  let edge: EdgeProcess;
  const phones: Phone[] = [];

  before(async () => {
    edge = await startClusterEdge([], 'sipedge-cluster-ka', { nat: { clients: 'auto', keepalive: { method: 'options', interval: 1, all: true, maxMissed: 3, removeDead: false } } });
  });

  after(async () => {
    for (const p of phones) p.close();
    if (edge) await edge.dispose();
  });

  test('(d) two phones with AORs of different workers: ~1 OPTIONS per second each (no duplicates), both reachable', { timeout: 60_000 }, async () => {
    const domain = edge.address;
    const users: string[] = [];
    for (const w of [0, 1]) {
      let u = 'ka';
      for (let i = 0; ownerOfAor(`sip:${u}@${HOST}`, 2) !== w; i++) u = `ka${i}`;
      users.push(u);
    }
    const pings: string[][] = [[], []];
    for (const [k, user] of users.entries()) {
      const p = new Phone();
      await p.open();
      phones.push(p);
      // Answers every OPTIONS 200 and records its Call-ID.
      p.onMessage = (data) => {
        const text = data.toString('latin1');
        if (!text.startsWith('OPTIONS ')) return;
        pings[k].push(header(text, 'Call-ID'));
        const vias = text.split('\r\n').filter((l) => /^Via:/i.test(l));
        p.send(`SIP/2.0 200 OK\n${vias.join('\n')}\nFrom: ${header(text, 'From')}\nTo: ${header(text, 'To')};tag=ka${k}\nCall-ID: ${header(text, 'Call-ID')}\nCSeq: ${header(text, 'CSeq')}\nContent-Length: 0\n\n`, edge.sipPort);
      };
      // Both REGISTERs use a Call-ID of worker 1: phone 0's binding is announced to worker 0.
      const regId = callIdFor(1, `kareg${k}`);
      p.send(
        `REGISTER sip:${domain} SIP/2.0\nVia: SIP/2.0/UDP ${HOST}:${p.port};branch=z9hG4bKka${k};rport\nMax-Forwards: 70\nFrom: <sip:${user}@${domain}>;tag=k${k}\nTo: <sip:${user}@${domain}>\nCall-ID: ${regId}\nCSeq: 1 REGISTER\nContact: <sip:${user}@${HOST}:${p.port}>\nExpires: 600\nContent-Length: 0\n\n`,
        edge.sipPort,
      );
      assert.ok(await p.until(() => p.statuses(regId).includes(200), 5000), `REGISTER ${user}: no 200\n${edge.output().slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 4000));
    const reachable = (w: number, user: string) =>
      edge.logs().some((l) => l.msg === 'peer reachability changed' && l.reachable === 'yes' && l.worker === w && String(l.aor).includes(`${user}@`));
    for (const w of [0, 1]) {
      assert.ok(pings[w].length >= 2 && pings[w].length <= 6, `phone of worker ${w} got ${pings[w].length} OPTIONS in ~4 s (1 s interval, one pinger expected)`);
      for (const id of pings[w]) assert.equal(ownerOfCallId(id, 2), w, `keepalive Call-ID ${id} belongs to worker ${w}, so its answer is dispatched back there`);
      assert.ok(reachable(w, users[w]), `worker ${w} marks ${users[w]} reachable\n${edge.output().slice(-3000)}`);
    }
  });
});

describe('workers: 2 config errors', () => {
  for (const [what, extra, keyPath] of [
    ['store: memory:', { store: 'memory:', listen: ['udp:127.0.0.1:5060'] }, 'workers'],
    ['a TCP listener', { listen: ['udp:127.0.0.1:5060', 'tcp:127.0.0.1:5060'] }, 'listen.1'],
  ] as const) {
    test(`workers: 2 with ${what}: start refuses (exit 2) and names ${keyPath}`, { timeout: 30_000 }, async () => {
      const dir = makeTempDir('sipedge-cluster-cfg');
      try {
        const file = path.join(dir, 'sipedge.yaml');
        fs.writeFileSync(file, YAML.stringify({ workers: 2, store: `sqlite:${dir}/x.db`, ...extra }));
        const r = await runCli(['start', '-c', file], { timeoutMs: 20_000 });
        assert.equal(r.code, 2, `exit ${r.code}\n${r.stdout}${r.stderr}`);
        assert.match(r.stderr, new RegExp(`^\\s*${keyPath.replace('.', '\\.')}: .*workers`, 'm'), r.stderr);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
