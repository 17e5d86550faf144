/**
 * Memory per binding, in a process of its own (run with --expose-gc):
 *
 *   node --import tsx --expose-gc bench/memory/child.ts N
 *
 * 1. MemoryLocationStore + Registrar (no auth: credentials are not per binding): N REGISTERs,
 *    parsed from the wire format, each from a NATed phone (private Contact, received address
 *    and rport), through `registrar.handleRegister`. heapUsed / RSS delta after full GCs / N.
 * 2. The same bindings tracked by a KeepaliveScheduler (NAT pinging state the edge keeps for
 *    every NATed binding): the extra heap / N.
 * 3. SqliteLocationStore (the default store) + Registrar, the same N REGISTERs: database file
 *    size (with its WAL, after close) / N, and the JS heap delta / N.
 * Prints one JSON line.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SystemClock } from '../../src/lib/clock.js';
import { KeepaliveScheduler } from '../../src/nat/keepalive.js';
import { Registrar } from '../../src/registrar/registrar.js';
import { parseMessage } from '../../src/sip/parse.js';
import type { SipRequest } from '../../src/sip/message.js';
import { MemoryLocationStore } from '../../src/store/memory.js';
import { SqliteLocationStore } from '../../src/store/sqlite.js';
import type { LocationStore } from '../../src/store/types.js';
import type { Flow } from '../../src/transport/types.js';

const N = Number(process.argv[2] ?? 100000);
const gcFn = (globalThis as { gc?: () => void }).gc;
if (!gcFn) throw new Error('run with --expose-gc');
const gc: () => void = gcFn;
const clock = new SystemClock();
const SOCKET = 'udp:10.0.0.10:5060';

function settle(): { heap: number; rss: number } {
  for (let i = 0; i < 4; i++) gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
}

/** A REGISTER as a NATed phone sends it, with its flow. */
function register(i: number): { req: SipRequest; flow: Flow } {
  const user = String(400000 + i);
  const natIp = `198.51.100.${i & 255}`;
  const natPort = 1024 + (i % 60000);
  const privIp = `192.168.${(i >> 8) & 255}.${i & 255}`;
  const text =
    `REGISTER sip:sip.example.org SIP/2.0\r\n` +
    `Via: SIP/2.0/UDP ${privIp}:5060;branch=z9hG4bK${i}reg;rport=${natPort};received=${natIp}\r\n` +
    `Max-Forwards: 70\r\n` +
    `From: <sip:${user}@sip.example.org>;tag=${i}ft\r\n` +
    `To: <sip:${user}@sip.example.org>\r\n` +
    `Call-ID: ${i}-reg-callid@${privIp}\r\n` +
    `CSeq: 1 REGISTER\r\n` +
    `Contact: <sip:${user}@${privIp}:5060;transport=udp>;+sip.instance="<urn:uuid:00000000-0000-4000-8000-${String(i).padStart(12, '0')}>";expires=3600\r\n` +
    `User-Agent: Bench Phone 1.0\r\n` +
    `Expires: 3600\r\n` +
    `Content-Length: 0\r\n\r\n`;
  const p = parseMessage(Buffer.from(text));
  if (!p.ok || p.message.type !== 'request') throw new Error(`bad REGISTER: ${JSON.stringify(p)}`);
  const flow: Flow = { transport: 'udp', local: { socketId: SOCKET, address: '10.0.0.10', port: 5060 }, remote: { address: natIp, port: natPort } };
  return { req: p.message, flow };
}

async function fill(store: LocationStore): Promise<Registrar> {
  const registrar = new Registrar({
    store,
    clock,
    config: { domains: ['sip.example.org'], expires: { min: 60, max: 3600, default: 600 }, maxContacts: 5 },
  });
  const batch: Array<Promise<unknown>> = [];
  for (let i = 0; i < N; i++) {
    const { req, flow } = register(i);
    batch.push(
      registrar.handleRegister(req, flow, { nat: true, tests: ['contact-private', 'via-received'] }).then((res) => {
        if (res.status !== 200) throw new Error(`REGISTER ${i}: ${res.status} ${res.reason}`);
      }),
    );
    if (batch.length >= 2000) await Promise.all(batch.splice(0));
  }
  await Promise.all(batch);
  return registrar;
}

// 1. Memory store.
const base = settle();
const memStore = new MemoryLocationStore();
const registrar = await fill(memStore);
const filled = settle();
const all = await memStore.allBindings();
if (all.length !== N) throw new Error(`expected ${N} bindings, got ${all.length}`);

// 2. Keepalive tracking of the same (NATed) bindings.
const beforeKa = settle();
const keepalive = new KeepaliveScheduler({
  clock,
  store: memStore,
  settings: { method: 'options', interval: 30, all: false, maxMissed: 3, removeDead: false },
  send: { options: async () => ({ answered: true, status: 200 }), crlf: () => true },
  refreshMs: 0,
});
// Not started (no pings): only the tracked state.
for (const b of all) keepalive.upsert(b);
all.length = 0;
const afterKa = settle();
const tracked = keepalive.size;
keepalive.close();
void registrar;

// 3. SQLite store.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sipedge-bench-memory-'));
const file = path.join(dir, 'sipedge.db');
const beforeSql = settle();
const sql = new SqliteLocationStore(file);
await fill(sql);
const afterSql = settle();
const sqlCount = (await sql.allBindings()).length;
await sql.close();
let fileBytes = 0;
for (const f of fs.readdirSync(dir)) fileBytes += fs.statSync(path.join(dir, f)).size;
fs.rmSync(dir, { recursive: true, force: true });

process.stdout.write(
  JSON.stringify({
    bindings: N,
    memoryStore: { heapBytesPerBinding: (filled.heap - base.heap) / N, rssBytesPerBinding: (filled.rss - base.rss) / N },
    keepalive: { tracked, heapBytesPerBinding: (afterKa.heap - beforeKa.heap) / N },
    sqlite: { bindings: sqlCount, fileBytes, fileBytesPerBinding: fileBytes / N, heapBytesPerBinding: (afterSql.heap - beforeSql.heap) / N },
  }) + '\n',
);
process.exit(0);
