/**
 * ClusterWorker (src/cluster/worker.ts) in one process: two workers with real loopback channel
 * sockets and a stand-in for the cluster IPC; the primary's `peers` message is emitted by hand.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { after, before, test } from 'node:test';
import { ClusterWorker, type WorkerIpc, type WorkerToPrimary } from '../../src/cluster/worker.js';
import type { ClusterTarget } from '../../src/cluster/types.js';
import { silentLogger } from '../../src/lib/log.js';
import { ownerOfAor, ownerOfCallId } from '../../src/transport/dispatch.js';

class FakeIpc extends EventEmitter {
  readonly sent: WorkerToPrimary[] = [];
  connected = false;
  send(m: WorkerToPrimary): boolean {
    this.sent.push(m);
    return true;
  }
}

interface Recorded {
  injected: Array<{ socketId: string; data: Buffer; address: string; port: number }>;
  aors: string[];
}

function recorder(): ClusterTarget & Recorded {
  const r: Recorded = { injected: [], aors: [] };
  return {
    ...r,
    inject(socketId, data, address, port) {
      r.injected.push({ socketId, data: Buffer.from(data), address, port });
      return true;
    },
    trackAor(aor) {
      r.aors.push(aor);
    },
    get injected() {
      return r.injected;
    },
    get aors() {
      return r.aors;
    },
  };
}

async function until(pred: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

function callIdFor(worker: number): string {
  for (let i = 0; ; i++) if (ownerOfCallId(`c${i}@192.0.2.1`, 2) === worker) return `c${i}@192.0.2.1`;
}

const ipcs = [new FakeIpc(), new FakeIpc()];
const targets = [recorder(), recorder()];
let workers: ClusterWorker[] = [];

before(async () => {
  workers = await Promise.all([0, 1].map((i) => ClusterWorker.start({ index: i, count: 2, logger: silentLogger, ipc: ipcs[i] as unknown as WorkerIpc })));
  workers.forEach((w, i) => w.attach(targets[i]));
  workers.forEach((w) => w.ready());
  const ports = ipcs.map((ipc) => (ipc.sent[0] as { port: number }).port);
  for (const ipc of ipcs) ipc.emit('message', { t: 'sipedge:peers', ports });
});

after(async () => {
  await Promise.all(workers.map((w) => w.close()));
});

test('ready() tells the primary the index and the channel port', () => {
  assert.deepEqual(ipcs[1].sent[0], { t: 'sipedge:ready', index: 1, port: workers[1].port });
  assert.ok(workers[1].port > 0);
});

test('a datagram owned by the other worker is forwarded and injected there with its source and socket', async () => {
  const data = Buffer.from(`OPTIONS sip:x SIP/2.0\r\nCall-ID: ${callIdFor(1)}\r\nContent-Length: 0\r\n\r\n`);
  assert.equal(workers[0].dispatch('udp:127.0.0.1:5060', data, '198.51.100.7', 40000), true);
  await until(() => targets[1].injected.length === 1);
  assert.deepEqual(targets[1].injected[0], { socketId: 'udp:127.0.0.1:5060', data, address: '198.51.100.7', port: 40000 });
  assert.equal(workers[0].counters.forwarded, 1);
  assert.equal(workers[1].counters.injected, 1);
});

test('own datagrams, STUN and CRLF stay where they were read', () => {
  const own = Buffer.from(`OPTIONS sip:x SIP/2.0\r\ni: ${callIdFor(0)}\r\n\r\n`);
  assert.equal(workers[0].dispatch('udp:127.0.0.1:5060', own, '198.51.100.7', 40000), false);
  assert.equal(workers[0].dispatch('udp:127.0.0.1:5060', Buffer.from('\r\n\r\n'), '198.51.100.7', 40000), false);
  assert.equal(workers[0].dispatch('udp:127.0.0.1:5060', Buffer.from([0, 1, 0, 0]), '198.51.100.7', 40000), false);
  assert.equal(workers[0].counters.forwarded, 1);
});

test('AOR notices reach the owner of the AOR; callId() returns Call-IDs this worker owns', async () => {
  let aor = 'sip:1001@example.org';
  for (let i = 0; ownerOfAor(aor, 2) !== 1; i++) aor = `sip:${1000 + i}@example.org`;
  assert.equal(workers[1].ownsAor(aor), true);
  assert.equal(workers[0].ownsAor(aor), false);
  workers[0].aorChanged(aor);
  await until(() => targets[1].aors.includes(aor));
  assert.equal(ownerOfCallId(workers[1].callId('h.example'), 2), 1);
});

test('frames from a port that is not a known worker are refused', async () => {
  const dgram = await import('node:dgram');
  const s = dgram.createSocket('udp4');
  const before = workers[1].counters.refused;
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  s.send(Buffer.from([0xe5, 2, 0x61]), workers[1].port, '127.0.0.1');
  await until(() => workers[1].counters.refused === before + 1);
  s.close();
  assert.equal(targets[1].aors.includes('a'), false);
});

test('stop and reload from the primary become SIGTERM (once) and SIGHUP', () => {
  const seen: string[] = [];
  workers[0].on('SIGTERM', () => seen.push('TERM'));
  workers[0].on('SIGHUP', () => seen.push('HUP'));
  ipcs[0].emit('message', { t: 'sipedge:reload' });
  ipcs[0].emit('message', { t: 'sipedge:stop' });
  ipcs[0].emit('message', { t: 'sipedge:stop' });
  assert.deepEqual(seen, ['HUP', 'TERM']);
});
