/**
 * The registrar's own CPU per digest registration, in process, without sockets, parser or
 * transactions (what bench/registrations_cpu.ts measures end to end):
 *
 *   node --import tsx bench/registrar_inproc.ts [--store memory|sqlite] [--users 10000]
 *        [--rounds 4] [--concurrency 10]
 *
 * Per round every user registers once the way SIPp's register_inf.xml does: REGISTER without
 * credentials → 401 (DigestAuth challenge), then REGISTER with an MD5 Authorization → 200 (digest
 * check, location store read and write), then what the edge does after a 2xx: hand the
 * bindings to `KeepaliveScheduler.setAor()` (through `Registrar.onBindings`, or with a
 * `lookup()` where the registrar has no such hook). Requests are SIPp's text parsed by the real parser outside the
 * timed part; NAT detection runs outside it too. Timed: process CPU (user + system) of the
 * challenge phase and of the authenticated phase, `concurrency` REGISTERs in flight at a time
 * (so the SQLite store's group commit batches as under load). Round 1 creates the bindings;
 * later rounds refresh them (the steady state of the SIPp benchmark). Prints one JSON line.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FakeClock } from '../src/lib/clock.js';
import { detectNat } from '../src/nat/detect.js';
import { KeepaliveScheduler } from '../src/nat/keepalive.js';
import { DigestAuth } from '../src/registrar/digest.js';
import { Registrar } from '../src/registrar/registrar.js';
import { getHeader } from '../src/sip/headers.js';
import type { SipRequest } from '../src/sip/message.js';
import { parseMessage } from '../src/sip/parse.js';
import { MemoryLocationStore } from '../src/store/memory.js';
import { SqliteLocationStore } from '../src/store/sqlite.js';
import type { LocationStore } from '../src/store/types.js';
import type { Flow } from '../src/transport/types.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const storeKind = arg('store', 'memory');
const userCount = Number(arg('users', '10000'));
const rounds = Number(arg('rounds', '4'));
const concurrency = Number(arg('concurrency', '10'));

const SERVER = '127.0.0.1:5060';
const SIPP = { address: '127.0.0.1', port: 40000 };
const CONTACT = '127.0.0.1:39149';
const realm = '127.0.0.1';
const clock = new FakeClock(0, Date.now());
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sipedge-bench-registrar-'));
const store: LocationStore = storeKind === 'sqlite' ? new SqliteLocationStore(path.join(dir, 'sipedge.db')) : new MemoryLocationStore();
const users = Array.from({ length: userCount }, (_, i) => ({ username: String(200000 + i), password: `pw-${200000 + i}-secret` }));
const auth = new DigestAuth({ realm, users, clock, algorithms: ['MD5'] });
const registrar = new Registrar({ store, clock, auth, config: { domains: [], expires: { min: 60, max: 3600, default: 600 }, maxContacts: 5 } });
const keepalive = new KeepaliveScheduler({
  clock,
  store,
  settings: { method: 'options', interval: 30, all: false, maxMissed: 3, removeDead: false },
  send: { options: () => Promise.resolve({ answered: true, status: 200 }), crlf: () => true },
  refreshMs: 0,
});
await keepalive.start();
// What the edge does after a 2xx REGISTER: hand the result to the keepalive scheduler
// (Registrar.onBindings), or — in trees without that hook — lookup() then setAor().
const hooked = 'onBindings' in registrar;
if (hooked) (registrar as unknown as { onBindings: (aor: string, b: unknown) => void }).onBindings = (aor, b) => keepalive.setAor(aor, b as never);
const flow: Flow = { transport: 'udp', local: { address: '127.0.0.1', port: 5060, socketId: `udp:${SERVER}` }, remote: SIPP };

let callNo = 0;
function registerText(user: string, cseq: number, callId: string, authz?: string): SipRequest {
  const lines = [
    `REGISTER sip:${SERVER} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${SIPP.port};branch=z9hG4bK-${callNo}-${cseq};rport`,
    'Max-Forwards: 70',
    `From: <sip:${user}@${SERVER}>;tag=4242SIPpTag00${callNo}`,
    `To: <sip:${user}@${SERVER}>`,
    `Call-ID: ${callId}`,
    `CSeq: ${cseq} REGISTER`,
    `Contact: <sip:${user}@${CONTACT}>`,
    'Expires: 3600',
  ];
  if (authz !== undefined) lines.push(`Authorization: ${authz}`);
  lines.push('User-Agent: SIPp bench', 'Content-Length: 0', '', '');
  const r = parseMessage(Buffer.from(lines.join('\r\n')));
  if (!r.ok || r.message.type !== 'request') throw new Error('bench request does not parse');
  return r.message;
}

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

/** SIPp's answer to an MD5 challenge (qop=auth, nc=00000001). */
function answer(user: string, password: string, challenge: string): string {
  const nonce = /nonce="([^"]+)"/.exec(challenge)![1];
  const opaque = /opaque="([^"]+)"/.exec(challenge)![1];
  const uri = `sip:${SERVER}`;
  const cnonce = '6b8b4567';
  const resp = md5(`${md5(`${user}:${realm}:${password}`)}:${nonce}:00000001:${cnonce}:auth:${md5(`REGISTER:${uri}`)}`);
  return `Digest username="${user}",realm="${realm}",cnonce="${cnonce}",nc=00000001,qop=auth,uri="${uri}",nonce="${nonce}",response="${resp}",algorithm=MD5,opaque="${opaque}"`;
}

async function inBatches<T>(items: T[], fn: (x: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += concurrency) {
    const batch: Array<Promise<void>> = [];
    for (let j = i; j < Math.min(items.length, i + concurrency); j++) batch.push(fn(items[j]));
    await Promise.all(batch);
  }
}

const cpuNow = (): number => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1e6;
};

const perRound: Array<{ round: number; challengeUs: number; registerUs: number; totalUs: number }> = [];
for (let round = 1; round <= rounds; round++) {
  // Untimed: the first REGISTER of every user, parsed, with its NAT verdict.
  const first = users.map((u) => {
    callNo++;
    const callId = `${callNo}-4242@127.0.0.1`;
    const req = registerText(u.username, 1, callId);
    return { u, callId, req, nat: detectNat(req, SIPP, 'auto'), challenge: '', second: undefined as SipRequest | undefined };
  });
  let c0 = cpuNow();
  await inBatches(first, async (x) => {
    const res = await registrar.handleRegister(x.req, flow, x.nat);
    if (res.status !== 401) throw new Error(`expected 401, got ${res.status}`);
    x.challenge = getHeader(res, 'www-authenticate')!;
  });
  const challengeS = cpuNow() - c0;
  // Untimed: the authenticated REGISTERs.
  for (const x of first) x.second = registerText(x.u.username, 2, x.callId, answer(x.u.username, x.u.password, x.challenge));
  c0 = cpuNow();
  await inBatches(first, async (x) => {
    const res = await registrar.handleRegister(x.second!, flow, x.nat);
    if (res.status !== 200) throw new Error(`expected 200, got ${res.status} ${res.reason}`);
    if (!hooked) {
      const aor = `sip:${x.u.username}@127.0.0.1`;
      keepalive.setAor(aor, await registrar.lookup(aor));
    }
  });
  const registerS = cpuNow() - c0;
  perRound.push({
    round,
    challengeUs: (challengeS / userCount) * 1e6,
    registerUs: (registerS / userCount) * 1e6,
    totalUs: ((challengeS + registerS) / userCount) * 1e6,
  });
  process.stderr.write(`${storeKind} round ${round}: ${perRound[perRound.length - 1].totalUs.toFixed(1)} µs CPU per registration (401 ${perRound[perRound.length - 1].challengeUs.toFixed(1)} + 200 ${perRound[perRound.length - 1].registerUs.toFixed(1)})\n`);
  clock.advance(1000);
}
const steady = perRound.slice(1);
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
process.stdout.write(
  JSON.stringify({
    store: storeKind,
    users: userCount,
    concurrency,
    keepaliveTracked: keepalive.size,
    steadyUsPerRegistration: mean(steady.map((r) => r.totalUs)),
    steadyChallengeUs: mean(steady.map((r) => r.challengeUs)),
    steadyRegisterUs: mean(steady.map((r) => r.registerUs)),
    rounds: perRound,
  }) + '\n',
);
keepalive.close();
await store.close();
fs.rmSync(dir, { recursive: true, force: true });
