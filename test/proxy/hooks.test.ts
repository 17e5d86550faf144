/**
 * The user hook API (src/hooks) through the real edge: `Edge.start` in process with two UDP
 * sockets (127.0.0.1 and 127.0.0.2, kernel-chosen ports), an open proxy (no users), and
 * scripted UAs (test/proxy/ua.ts) on real loopback sockets.
 *
 * Proves that the two per-transaction controls change what goes on the wire:
 *  - setAdvertisedAddress (OpenSIPS set_advertised_address): our Via sent-by and Record-Route;
 *  - forceSendSocket (OpenSIPS force_send_socket): the source address the callee sees, the
 *    double Record-Route (RFC 5658) that crossing sockets needs, and in-dialog requests coming
 *    back through the learnt address;
 * plus reject / failure handling, loading from `hooks:` in the config (examples/hooks.mjs), the
 * typed programmatic example (examples/hooks.ts), and the closed list of hook names.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, describe, test } from 'node:test';
import { Edge } from '../../src/edge.js';
import { parseConfigText } from '../../src/config/index.js';
import { silentLogger } from '../../src/lib/log.js';
import { getHeader, getHeaderValues } from '../../src/sip/headers.js';
import { parseVia } from '../../src/sip/via.js';
import type { SipRequest } from '../../src/sip/message.js';
import { HookError, HookRunner, defineHooks, loadHooks, type EdgeHooks, type HookSocket, type RunnerTarget } from '../../src/hooks/index.js';
import { FakeClock } from '../../src/lib/clock.js';
import type { ServerTransaction } from '../../src/transaction/types.js';
import { hooks as exampleTsHooks } from '../../examples/hooks.js';
import { Ua, rand, uriOf, type Received } from './ua.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const EXAMPLE_MJS = path.join(REPO, 'examples', 'hooks.mjs');

const CONFIG = (extra = ''): string => `
listen: ["udp:127.0.0.1:0", "udp:127.0.0.2:0"]
store: "memory:"
api: { enabled: false }
media: { relay: never }
${extra}
`;

async function startEdge(configExtra: string, hooks?: EdgeHooks | EdgeHooks[]): Promise<Edge> {
  const r = parseConfigText(CONFIG(configExtra));
  assert.ok(r.ok, `config: ${JSON.stringify(!r.ok && r.errors)}`);
  return Edge.start(r.config, { logger: silentLogger, hooks });
}

/** The bound sockets of an edge: [first (127.0.0.1), second (127.0.0.2)]. */
function socketsOf(edge: Edge): Array<{ id: string; address: string; port: number }> {
  return edge.transport.sockets().map((s) => ({ id: s.id, address: s.address, port: s.boundPort }));
}

const uas: Ua[] = [];
async function ua(name: string): Promise<Ua> {
  const u = await Ua.open(name);
  uas.push(u);
  return u;
}
afterEach(async () => {
  for (const u of uas.splice(0)) await u.close();
});

interface Call {
  callId: string;
  fromTag: string;
  from: string;
  to: string;
  ruri: string;
}

/** Caller sends an INVITE for `user@callee` to the edge socket at `edgePort` (127.0.0.1). */
function sendInvite(caller: Ua, callee: Ua, edgePort: number, headers: string[] = [], user = 'bob'): Call {
  const fromTag = rand(4);
  const call: Call = {
    callId: `hook-${rand(6)}`,
    fromTag,
    from: `<sip:alice@${caller.hostport}>;tag=${fromTag}`,
    to: `<sip:${user}@${callee.hostport}>`,
    ruri: `sip:${user}@${callee.hostport}`,
  };
  caller.send(
    [
      `INVITE ${call.ruri} SIP/2.0`,
      `Via: ${caller.via()}`,
      'Max-Forwards: 70',
      `From: ${call.from}`,
      `To: ${call.to}`,
      `Call-ID: ${call.callId}`,
      'CSeq: 1 INVITE',
      `Contact: <${caller.contact('alice')}>`,
      ...headers,
    ].join('\n'),
    edgePort,
  );
  return call;
}

function topVia(m: SipRequest): { host: string; port?: number; transport: string } {
  const v = parseVia(getHeader(m, 'via') ?? '');
  assert.ok(v.ok, 'top Via parses');
  return { host: v.value.host, port: v.value.port, transport: v.value.transport };
}

/** host:port of each Record-Route URI (user part = flow token dropped). */
function rrHosts(m: SipRequest): string[] {
  return getHeaderValues(m, 'record-route').map((rr) => uriOf(rr).replace(/^sip:[^@]*@/, '').replace(/;.*$/, ''));
}

describe('user hooks: per-transaction advertised address and send socket', () => {
  let edge: Edge;
  let first: { id: string; address: string; port: number };
  let second: { id: string; address: string; port: number };
  const seen: string[] = [];

  const hooks = defineHooks({
    onRequest(ctx) {
      seen.push(`onRequest ${ctx.request.method} from ${ctx.source.address} on ${ctx.socket.id}`);
      const mode = ctx.request.header('x-test');
      if (mode === 'tx-advertise') ctx.setAdvertisedAddress('198.51.100.9');
      if (mode === 'tx-socket') ctx.forceSendSocket(second.id);
      if (mode === 'reject') ctx.reject(403, 'Hook Says No');
      if (mode === 'throw') throw new Error('hook bug');
      if (mode === 'bad-socket') ctx.forceSendSocket('udp:192.0.2.1:5060');
    },
    async beforeForward(ctx) {
      await new Promise((r) => setImmediate(r)); // async hooks are awaited
      if (ctx.request.header('x-test') === 'branch') {
        ctx.forceSendSocket(second.id);
        ctx.setAdvertisedAddress('192.0.2.44', 5099);
      }
    },
  });

  before(async () => {
    edge = await startEdge('', hooks);
    [first, second] = socketsOf(edge);
    assert.equal(first.address, '127.0.0.1');
    assert.equal(second.address, '127.0.0.2');
  });
  after(async () => {
    await edge?.close();
  });

  test('without a hook setting: first socket, its own address in Via, one Record-Route', async () => {
    const caller = await ua('caller');
    const callee = await ua('callee');
    sendInvite(caller, callee, first.port, ['X-Test: none']);
    const inv = await callee.nextRequest('INVITE');
    assert.deepEqual(inv.from, { address: '127.0.0.1', port: first.port }, 'sent from the socket it arrived on');
    assert.deepEqual(topVia(inv.msg), { host: '127.0.0.1', port: first.port, transport: 'UDP' });
    assert.deepEqual(rrHosts(inv.msg), [`127.0.0.1:${first.port}`]);
    assert.ok(seen.some((s) => s === `onRequest INVITE from 127.0.0.1 on ${first.id}`), `onRequest saw the INVITE: ${seen.join(' | ')}`);
  });

  test('beforeForward: forceSendSocket + setAdvertisedAddress change the socket used, Via and Record-Route; the dialog comes back through the learnt address', async () => {
    const caller = await ua('caller');
    const callee = await ua('callee');
    const call = sendInvite(caller, callee, first.port, ['X-Test: branch']);
    const inv = await callee.nextRequest('INVITE');
    // The socket actually used: the callee sees the datagram come from the second socket.
    assert.deepEqual(inv.from, { address: '127.0.0.2', port: second.port }, 'force_send_socket: the INVITE left from the second socket');
    // set_advertised_address: our Via and the outgoing-side Record-Route carry the hook's address.
    assert.deepEqual(topVia(inv.msg), { host: '192.0.2.44', port: 5099, transport: 'UDP' });
    // RFC 5658 double Record-Route: the request crossed sockets, so the caller's side gets its own entry.
    assert.deepEqual(rrHosts(inv.msg), ['192.0.2.44:5099', `127.0.0.1:${first.port}`]);

    // 200 OK back to where the INVITE came from (the second socket); the caller gets it with both RRs.
    callee.reply(inv, 200, 'OK', { toTag: 'calleetag', contactUser: 'bob' });
    const ok = await caller.nextResponse('INVITE', 200);
    assert.deepEqual(
      getHeaderValues(ok.msg, 'record-route').map((rr) => uriOf(rr).replace(/^sip:[^@]*@/, '').replace(/;.*$/, '')),
      ['192.0.2.44:5099', `127.0.0.1:${first.port}`],
    );

    // The callee hangs up along its route set (RR in order, RFC 3261 §12.1.1). A NAT in front of
    // the edge would map 192.0.2.44:5099 to the second socket: the BYE goes there.
    const routes = getHeaderValues(inv.msg, 'record-route');
    callee.send(
      [
        `BYE ${caller.contact('alice')} SIP/2.0`,
        `Via: ${callee.via()}`,
        'Max-Forwards: 70',
        ...routes.map((r) => `Route: ${r}`),
        `From: ${call.to};tag=calleetag`,
        `To: ${call.from}`,
        `Call-ID: ${call.callId}`,
        'CSeq: 1 BYE',
      ].join('\n'),
      second.port,
      '127.0.0.2',
    );
    const bye = await caller.nextRequest('BYE');
    assert.equal(getHeaderValues(bye.msg, 'route').length, 0, 'both of our Route entries were recognised as us and removed (no loop)');
    assert.deepEqual(bye.from, { address: '127.0.0.1', port: first.port }, 'in-dialog request to the caller leaves from the caller`s socket (flow token)');
    assert.deepEqual(topVia(bye.msg), { host: '127.0.0.1', port: first.port, transport: 'UDP' }, 'the per-transaction address was for the INVITE only');
    caller.reply(bye, 200, 'OK');
    const byeOk = await callee.nextResponse('BYE', 200);
    assert.ok(byeOk, 'BYE answered through the edge');
  });

  test('onRequest settings apply to every branch: setAdvertisedAddress alone (port = socket`s), forceSendSocket alone', async () => {
    const caller = await ua('caller');
    const callee = await ua('callee');
    sendInvite(caller, callee, first.port, ['X-Test: tx-advertise']);
    const a = await callee.nextRequest('INVITE');
    assert.deepEqual(a.from, { address: '127.0.0.1', port: first.port });
    assert.deepEqual(topVia(a.msg), { host: '198.51.100.9', port: first.port, transport: 'UDP' });
    assert.deepEqual(rrHosts(a.msg), [`198.51.100.9:${first.port}`, `127.0.0.1:${first.port}`], 'same socket, different address: double Record-Route');

    sendInvite(caller, callee, first.port, ['X-Test: tx-socket']);
    const b = await callee.nextRequest('INVITE');
    assert.deepEqual(b.from, { address: '127.0.0.2', port: second.port });
    assert.deepEqual(topVia(b.msg), { host: '127.0.0.2', port: second.port, transport: 'UDP' });
    assert.deepEqual(rrHosts(b.msg), [`127.0.0.2:${second.port}`, `127.0.0.1:${first.port}`]);
  });

  test('reject answers the request; a hook that throws (or misuses the API) gets a 500 and the edge goes on', async () => {
    const caller = await ua('caller');
    const callee = await ua('callee');
    sendInvite(caller, callee, first.port, ['X-Test: reject']);
    const r = await caller.nextFinal('INVITE');
    assert.equal(r.msg.status, 403);
    assert.equal(r.msg.reason, 'Hook Says No');
    sendInvite(caller, callee, first.port, ['X-Test: throw']);
    assert.equal((await caller.nextFinal('INVITE')).msg.status, 500);
    sendInvite(caller, callee, first.port, ['X-Test: bad-socket']);
    assert.equal((await caller.nextFinal('INVITE')).msg.status, 500);
    await callee.none((m) => m.type === 'request', 200, 'request at the callee');
    // Still serving.
    sendInvite(caller, callee, first.port, ['X-Test: none']);
    assert.ok(await callee.nextRequest('INVITE'));
  });
});

describe('hooks from the config (`hooks:` → examples/hooks.mjs) and the typed example', () => {
  let edge: Edge | undefined;
  afterEach(async () => {
    await edge?.close();
    edge = undefined;
  });

  test('examples/hooks.mjs with options: scanners get 403, matching branches leave from the rule`s socket with its address', async () => {
    // The second socket's port is only known after binding, so the rule names it by address:
    // first start to learn the port, then write the rule with the real socket id.
    edge = await startEdge('');
    const [, probe] = socketsOf(edge);
    await edge.close();
    const secondId = `udp:127.0.0.2:${probe.port}`;
    const extra = `
hooks:
  module: ${JSON.stringify(EXAMPLE_MJS)}
  options:
    routes:
      - { match: '^sip:00', socket: ${JSON.stringify(secondId)}, advertise: 192.0.2.10 }
`;
    const r = parseConfigText(CONFIG(extra).replace('udp:127.0.0.2:0', secondId));
    assert.ok(r.ok, `config: ${JSON.stringify(!r.ok && r.errors)}`);
    assert.equal(r.config.hooks?.module, EXAMPLE_MJS);
    edge = await Edge.start(r.config, { logger: silentLogger });
    const [first, second] = socketsOf(edge);
    assert.equal(second.id, secondId);
    assert.equal(edge.settings().hooks, EXAMPLE_MJS, 'show settings names the hooks module');

    const caller = await ua('caller');
    const callee = await ua('callee');
    sendInvite(caller, callee, first.port, ['User-Agent: friendly-scanner']);
    assert.equal((await caller.nextFinal('INVITE')).msg.status, 403, 'scanner rejected by onRequest');

    sendInvite(caller, callee, first.port, [], '0049301234');
    const intl = await callee.nextRequest('INVITE');
    assert.deepEqual(intl.from, { address: '127.0.0.2', port: second.port }, 'rule socket used');
    assert.deepEqual(topVia(intl.msg), { host: '192.0.2.10', port: second.port, transport: 'UDP' });
    assert.deepEqual(rrHosts(intl.msg), [`192.0.2.10:${second.port}`, `127.0.0.1:${first.port}`]);

    sendInvite(caller, callee, first.port, [], 'bob');
    const local = await callee.nextRequest('INVITE');
    assert.deepEqual(local.from, { address: '127.0.0.1', port: first.port }, 'no rule: normal socket');
    assert.deepEqual(topVia(local.msg), { host: '127.0.0.1', port: first.port, transport: 'UDP' });
  });

  test('config hooks and programmatic hooks run in order (config first); the typed example`s hooks work', async () => {
    const order: string[] = [];
    const extra = `hooks: ${JSON.stringify(EXAMPLE_MJS)}`;
    edge = await startEdge(extra, [
      { onRequest: () => void order.push('programmatic') },
      exampleTsHooks,
    ]);
    const [first, second] = socketsOf(edge);
    const caller = await ua('caller');
    const callee = await ua('callee');
    // The config module's onRequest rejects scanners first: the programmatic hooks never run.
    sendInvite(caller, callee, first.port, ['User-Agent: sipvicious-0.3']);
    assert.equal((await caller.nextFinal('INVITE')).msg.status, 403);
    assert.deepEqual(order, [], 'a rejection stops the remaining hooks');
    // Not a carrier URI (examples/hooks.ts): the default socket.
    sendInvite(caller, callee, first.port, [], 'carrier');
    const a = await callee.nextRequest('INVITE');
    assert.deepEqual(a.from, { address: '127.0.0.1', port: first.port }, 'not a carrier URI: default socket');
    assert.deepEqual(order, ['programmatic']);

    // examples/hooks.ts: @carrier.example goes out the second socket as 192.0.2.10 (overriding the
    // X-Advertise address its onRequest set). The host is a name, so a Route leads to the callee.
    caller.send(
      [
        'INVITE sip:+15551234@carrier.example SIP/2.0',
        `Via: ${caller.via()}`,
        'Max-Forwards: 70',
        `Route: <sip:${callee.hostport};lr>`,
        `From: <sip:alice@${caller.hostport}>;tag=${rand(4)}`,
        'To: <sip:+15551234@carrier.example>',
        `Call-ID: hook-${rand(6)}`,
        'CSeq: 1 INVITE',
        `Contact: <${caller.contact('alice')}>`,
        'X-Advertise: 203.0.113.200',
      ].join('\n'),
      first.port,
    );
    const b: Received<SipRequest> = await callee.nextRequest('INVITE');
    assert.deepEqual(b.from, { address: '127.0.0.2', port: second.port }, 'carrier.example: second socket');
    assert.deepEqual(topVia(b.msg), { host: '192.0.2.10', port: second.port, transport: 'UDP' }, 'beforeForward overrides the onRequest address');
    assert.equal(b.msg.uri, 'sip:+15551234@carrier.example');
  });

  test('loading: string form, named exports, unknown hook names and bad modules are errors with stable codes', async () => {
    const c = parseConfigText('hooks: ./examples/hooks.mjs');
    assert.ok(c.ok);
    assert.deepEqual(c.config.hooks, { module: './examples/hooks.mjs', options: {} });
    const bad = parseConfigText('hooks: { module: ./x.mjs, extra: 1 }');
    assert.equal(bad.ok, false, 'unknown key under hooks');

    const loaded = await loadHooks({ module: './examples/hooks.mjs', options: {} }, REPO);
    assert.equal(typeof loaded.onRequest, 'function');
    assert.equal(typeof loaded.beforeForward, 'function');

    const dataUrl = (src: string) => `data:text/javascript,${encodeURIComponent(src)}`;
    const named = await loadHooks({ module: dataUrl('export function onRequest() {}'), options: {} });
    assert.equal(typeof named.onRequest, 'function');
    await assert.rejects(loadHooks({ module: dataUrl('export default { onReqest() {} }'), options: {} }), (e: unknown) => e instanceof HookError && e.code === 'SIPEDGE_HOOK_INVALID' && /onReqest/.test(e.message));
    await assert.rejects(loadHooks({ module: dataUrl('export const x = 1'), options: {} }), (e: unknown) => e instanceof HookError && e.code === 'SIPEDGE_HOOKS_LOAD');
    await assert.rejects(loadHooks({ module: './no/such/hooks.mjs', options: {} }, REPO), (e: unknown) => e instanceof HookError && e.code === 'SIPEDGE_HOOKS_LOAD');
    await assert.rejects(
      loadHooks({ module: dataUrl('export default (o) => { throw new Error("bad options " + o.x) }'), options: { x: 1 } }),
      (e: unknown) => e instanceof HookError && e.code === 'SIPEDGE_HOOKS_LOAD' && /bad options 1/.test(e.message),
    );
    // The edge refuses to start with a broken hooks module, before binding anything.
    const r = parseConfigText(CONFIG('hooks: ./no/such/hooks.mjs'));
    assert.ok(r.ok);
    await assert.rejects(Edge.start(r.config, { logger: silentLogger }), (e: unknown) => e instanceof HookError && e.code === 'SIPEDGE_HOOKS_LOAD');
    // Programmatic hooks are checked against the closed list too.
    await assert.rejects(startEdge('', { beforeForwrd() {} } as unknown as EdgeHooks), (e: unknown) => e instanceof HookError && e.code === 'SIPEDGE_HOOK_INVALID');
  });
});


describe('HookRunner (unit, fake clock)', () => {
  const SOCKETS: HookSocket[] = [
    { id: 'udp:10.0.0.10:5060', transport: 'udp', address: '10.0.0.10', port: 5060 },
    { id: 'tcp:10.0.0.10:5060', transport: 'tcp', address: '10.0.0.10', port: 5060 },
    { id: 'udp:10.0.0.10:5070', transport: 'udp', address: '10.0.0.10', port: 5070 },
  ];
  /** A server transaction as far as the runner looks at it. */
  const fakeTx = (): ServerTransaction =>
    ({
      request: {
        type: 'request',
        method: 'INVITE',
        uri: 'sip:bob@example.test',
        version: 'SIP/2.0',
        headers: [
          { name: 'Call-ID', key: 'call-id', value: 'c1' },
          { name: 'To', key: 'to', value: '<sip:bob@example.test>' },
        ],
        body: Buffer.alloc(0),
      },
      inbound: { flow: { transport: 'udp', local: { socketId: SOCKETS[0].id, address: '10.0.0.10', port: 5060 }, remote: { address: '198.51.100.50', port: 5070 } } },
    }) as unknown as ServerTransaction;
  const target = (transport: 'udp' | 'tcp'): RunnerTarget => ({ uri: 'sip:bob@198.51.100.60', dest: { transport, address: '198.51.100.60', port: 5060, connectionId: 7 } });

  test('a hook that never settles fails the request with 500 after the timeout', async () => {
    const clock = new FakeClock();
    const runner = new HookRunner([{ onRequest: () => new Promise<void>(() => undefined) }], { clock, timeoutMs: 1000 });
    const p = runner.onRequest(fakeTx(), SOCKETS);
    await new Promise((r) => setImmediate(r));
    clock.advance(999);
    let settled = false;
    void p.then(() => (settled = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false, 'still waiting before the timeout');
    clock.advance(1);
    assert.deepEqual(await p, { status: 500, reason: 'Server Internal Error' });
    assert.equal(runner.stats.failed, 1);
  });

  test('transaction-level settings reach every branch they can; a socket that cannot reach a branch is skipped there', async () => {
    const runner = new HookRunner([{ onRequest: (ctx) => (ctx.forceSendSocket('udp:10.0.0.10:5070'), ctx.setAdvertisedAddress('pbx.example.test')) }], { clock: new FakeClock() });
    const tx = fakeTx();
    assert.equal(await runner.onRequest(tx, SOCKETS), undefined);
    const u = target('udp');
    const t = target('tcp');
    assert.equal(await runner.beforeForward(tx, [u, t], SOCKETS), undefined);
    assert.equal(u.dest.socketId, 'udp:10.0.0.10:5070');
    assert.equal(u.dest.connectionId, 7, 'UDP keeps its fields');
    assert.deepEqual(u.advertised, { host: 'pbx.example.test' });
    assert.equal(t.dest.socketId, undefined, 'a UDP socket cannot send a TCP branch: not forced there');
    assert.deepEqual(t.advertised, { host: 'pbx.example.test' }, 'the address still applies');
  });

  test('beforeForward: socket mismatch and bad arguments are HookErrors; sockets are read-only copies', async () => {
    const errors: unknown[] = [];
    const runner = new HookRunner(
      [
        {
          beforeForward(ctx) {
            for (const f of [
              () => ctx.forceSendSocket('udp:10.0.0.10:5060'),
              () => ctx.forceSendSocket('udp:192.0.2.1:5060'),
              () => ctx.setAdvertisedAddress('not an address'),
              () => ctx.setAdvertisedAddress('192.0.2.1', 70000),
              () => ctx.reject(200),
              () => (ctx.sockets as HookSocket[]).push(SOCKETS[0]),
            ]) {
              try {
                f();
              } catch (e) {
                errors.push(e);
              }
            }
            ctx.forceSendSocket('tcp:10.0.0.10:5060');
            ctx.setAdvertisedAddress('[2001:db8::1]', 5080);
          },
        },
      ],
      { clock: new FakeClock() },
    );
    const t = target('tcp');
    assert.equal(await runner.beforeForward(fakeTx(), [t], SOCKETS), undefined);
    const codes = errors.map((e) => (e instanceof HookError ? e.code : (e as Error).name));
    assert.deepEqual(codes, ['SIPEDGE_HOOK_SOCKET_MISMATCH', 'SIPEDGE_HOOK_UNKNOWN_SOCKET', 'SIPEDGE_HOOK_BAD_ADDRESS', 'SIPEDGE_HOOK_BAD_ADDRESS', 'SIPEDGE_HOOK_BAD_STATUS', 'TypeError']);
    assert.equal(SOCKETS.length, 3, 'the proxy`s socket list is untouched');
    assert.equal(t.dest.socketId, 'tcp:10.0.0.10:5060');
    assert.equal(t.dest.connectionId, undefined, 'a forced TCP socket opens its own connection');
    assert.deepEqual(t.advertised, { host: '2001:db8::1', port: 5080 });
  });
});
