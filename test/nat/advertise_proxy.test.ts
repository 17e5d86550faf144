/**
 * The inside/outside decision and self-recognition as the proxy applies them, through the real
 * edge (`Edge.start` in process, two UDP sockets on 127.0.0.1 / 127.0.0.2, memory store) and
 * scripted UAs on loopback:
 *
 *  - a request that crosses from one socket to the other gets a double Record-Route (RFC 5658),
 *    each entry naming the socket its side sees; the dialog's in-dialog requests come back
 *    through either entry and reach the other side;
 *  - Request-URIs and Route headers naming any of our addresses — either socket, the public
 *    address, the public address before a change, an alias — are us: the Route is removed and
 *    the request answered locally, never looped (no 482 / 483).
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { Edge } from '../../src/edge.js';
import { parseConfigText } from '../../src/config/index.js';
import { silentLogger } from '../../src/lib/log.js';
import { parseCidrs } from '../../src/nat/advertise.js';
import { getHeader, getHeaderValues } from '../../src/sip/headers.js';
import { parseVia } from '../../src/sip/via.js';
import { Ua, rand, uriOf } from '../proxy/ua.js';

const DOMAIN = 'sip.example.test';
const CONFIG = `
listen: ["udp:127.0.0.1:0", "udp:127.0.0.2:0"]
publicAddress: { ip: 203.0.113.10 }
aliases: [edge.example.test, "pbx.example.test:5999"]
localnet: [10.0.0.0/8]
registrar: { domains: [${DOMAIN}] }
store: "memory:"
api: { enabled: false }
media: { relay: never }
`;

let edge: Edge;
let s1: { id: string; port: number };
let s2: { id: string; port: number };
const uas: Ua[] = [];

async function ua(name: string): Promise<Ua> {
  const u = await Ua.open(name);
  uas.push(u);
  return u;
}

before(async () => {
  const r = parseConfigText(CONFIG);
  assert.ok(r.ok, `config: ${JSON.stringify(!r.ok && r.errors)}`);
  edge = await Edge.start(r.config, { logger: silentLogger });
  [s1, s2] = edge.transport.sockets().map((s) => ({ id: s.id, port: s.boundPort }));
});
after(async () => {
  await edge?.close();
});
afterEach(async () => {
  for (const u of uas.splice(0)) await u.close();
});

const hostPort = (rr: string): string => uriOf(rr).replace(/^sips?:([^@]*@)?/, '').replace(/;.*$/, '');

/** Sends an OPTIONS from `u` to the edge socket on `host:port` and returns the final status. */
async function options(u: Ua, host: string, port: number, ruri: string, routes: string[], maxForwards = 70): Promise<number> {
  u.send(
    [
      `OPTIONS ${ruri} SIP/2.0`,
      `Via: ${u.via()}`,
      `Max-Forwards: ${maxForwards}`,
      ...routes.map((r) => `Route: ${r}`),
      `From: <sip:probe@${DOMAIN}>;tag=${rand(4)}`,
      `To: <${ruri}>`,
      `Call-ID: opt-${rand(6)}`,
      'CSeq: 1 OPTIONS',
    ].join('\n'),
    port,
    host,
  );
  return (await u.nextFinal('OPTIONS')).msg.status;
}

describe('proxy: double Record-Route across sockets (RFC 5658)', () => {
  test('INVITE in on socket 1 to a phone registered on socket 2: two Record-Routes, Via of socket 2; both directions of the dialog route back', async () => {
    const caller = await ua('caller');
    const callee = await ua('callee');
    // The callee registers through the second socket: its binding remembers that socket.
    callee.send(
      [
        `REGISTER sip:${DOMAIN} SIP/2.0`,
        `Via: ${callee.via()}`,
        'Max-Forwards: 70',
        `From: <sip:bob@${DOMAIN}>;tag=r1`,
        `To: <sip:bob@${DOMAIN}>`,
        `Call-ID: reg-${rand(6)}`,
        'CSeq: 1 REGISTER',
        `Contact: <${callee.contact('bob')}>`,
        'Expires: 600',
      ].join('\n'),
      s2.port,
      '127.0.0.2',
    );
    assert.equal((await callee.nextFinal('REGISTER')).msg.status, 200);

    const fromTag = rand(4);
    const callId = `x-${rand(6)}`;
    caller.send(
      [
        `INVITE sip:bob@${DOMAIN} SIP/2.0`,
        `Via: ${caller.via()}`,
        'Max-Forwards: 70',
        `From: <sip:alice@${DOMAIN}>;tag=${fromTag}`,
        `To: <sip:bob@${DOMAIN}>`,
        `Call-ID: ${callId}`,
        'CSeq: 1 INVITE',
        `Contact: <${caller.contact('alice')}>`,
      ].join('\n'),
      s1.port,
    );
    const inv = await callee.nextRequest('INVITE');
    assert.deepEqual(inv.from, { address: '127.0.0.2', port: s2.port }, 'sent from the socket the binding registered on');
    const via = parseVia(getHeader(inv.msg, 'via') ?? '');
    assert.ok(via.ok);
    assert.equal(`${via.value.host}:${via.value.port}`, `127.0.0.2:${s2.port}`, 'Via names the outgoing socket');
    const rrs = getHeaderValues(inv.msg, 'record-route');
    assert.deepEqual(rrs.map(hostPort), [`127.0.0.2:${s2.port}`, `127.0.0.1:${s1.port}`], 'callee side first, caller side second');

    callee.reply(inv, 200, 'OK', { toTag: 'bt', contactUser: 'bob' });
    const ok = await caller.nextResponse('INVITE', 200);
    const callerRoutes = getHeaderValues(ok.msg, 'record-route').reverse(); // UAC: reversed (RFC 3261 §12.1.2)
    assert.equal(hostPort(callerRoutes[0]), `127.0.0.1:${s1.port}`, 'the caller`s first route is the socket it talks to');

    // Caller → callee in dialog (ACK for 2xx, then an INFO), through socket 1.
    const inDialog = (method: string, cseq: number) =>
      [
        `${method} ${callee.contact('bob')} SIP/2.0`,
        `Via: ${caller.via()}`,
        'Max-Forwards: 70',
        ...callerRoutes.map((r) => `Route: ${r}`),
        `From: <sip:alice@${DOMAIN}>;tag=${fromTag}`,
        `To: <sip:bob@${DOMAIN}>;tag=bt`,
        `Call-ID: ${callId}`,
        `CSeq: ${cseq} ${method}`,
      ].join('\n');
    caller.send(inDialog('ACK', 1), s1.port);
    const ack = await callee.nextRequest('ACK');
    assert.deepEqual(ack.from, { address: '127.0.0.2', port: s2.port });
    assert.equal(getHeaderValues(ack.msg, 'route').length, 0, 'both of our Route entries removed');
    caller.send(inDialog('INFO', 2), s1.port);
    const info = await callee.nextRequest('INFO');
    assert.deepEqual(info.from, { address: '127.0.0.2', port: s2.port });
    callee.reply(info, 200, 'OK');
    assert.equal((await caller.nextFinal('INFO')).msg.status, 200);

    // Callee → caller: BYE along the callee's route set (RR in order), sent to socket 2.
    callee.send(
      [
        `BYE ${caller.contact('alice')} SIP/2.0`,
        `Via: ${callee.via()}`,
        'Max-Forwards: 70',
        ...rrs.map((r) => `Route: ${r}`),
        `From: <sip:bob@${DOMAIN}>;tag=bt`,
        `To: <sip:alice@${DOMAIN}>;tag=${fromTag}`,
        `Call-ID: ${callId}`,
        'CSeq: 1 BYE',
      ].join('\n'),
      s2.port,
      '127.0.0.2',
    );
    const bye = await caller.nextRequest('BYE');
    assert.deepEqual(bye.from, { address: '127.0.0.1', port: s1.port }, 'BYE reaches the caller from the socket it used');
    const bv = parseVia(getHeader(bye.msg, 'via') ?? '');
    assert.ok(bv.ok);
    assert.equal(`${bv.value.host}:${bv.value.port}`, `127.0.0.1:${s1.port}`);
    caller.reply(bye, 200, 'OK');
    assert.equal((await callee.nextFinal('BYE')).msg.status, 200);
  });
});

describe('proxy: self-recognition (RFC 3261 §16.4)', () => {
  test('OPTIONS to us with a Route naming us — either socket, the public address, an alias — is answered locally (no 482/483)', async () => {
    const u = await ua('probe');
    assert.equal(await options(u, '127.0.0.1', s1.port, `sip:127.0.0.1:${s1.port}`, [`<sip:127.0.0.1:${s1.port};lr>`]), 200, 'own socket');
    assert.equal(await options(u, '127.0.0.1', s1.port, `sip:127.0.0.1:${s1.port}`, [`<sip:127.0.0.2:${s2.port};lr>`]), 200, 'the other socket');
    assert.equal(await options(u, '127.0.0.1', s1.port, `sip:203.0.113.10:${s1.port}`, [`<sip:203.0.113.10:${s1.port};lr>`]), 200, 'public address');
    assert.equal(
      await options(u, '127.0.0.1', s1.port, `sip:203.0.113.10:${s2.port}`, [`<sip:203.0.113.10:${s2.port};lr>`, `<sip:127.0.0.1:${s1.port};lr>`]),
      200,
      'two of our entries in a row (double Record-Route)',
    );
    assert.equal(await options(u, '127.0.0.1', s1.port, 'sip:edge.example.test', ['<sip:edge.example.test;lr>']), 200, 'alias, any port');
    assert.equal(await options(u, '127.0.0.1', s1.port, 'sip:pbx.example.test:5999', ['<sip:pbx.example.test:5999;lr>']), 200, 'alias with its port');
    assert.equal(await options(u, '127.0.0.1', s1.port, `sip:${DOMAIN}`, []), 200, 'our domain');
  });

  test('the former public address stays ours after a change; the new one is ours at once', async () => {
    const u = await ua('probe');
    edge.proxy.refreshSockets({ publicAddress: '203.0.113.99', localnet: parseCidrs(['10.0.0.0/8']) });
    try {
      assert.equal(await options(u, '127.0.0.1', s1.port, `sip:203.0.113.99:${s1.port}`, [`<sip:203.0.113.99:${s1.port};lr>`]), 200, 'new public address');
      assert.equal(await options(u, '127.0.0.1', s1.port, `sip:203.0.113.10:${s1.port}`, [`<sip:tok@203.0.113.10:${s1.port};lr>`]), 200, 'old public address');
    } finally {
      edge.proxy.refreshSockets({ publicAddress: '203.0.113.10', localnet: parseCidrs(['10.0.0.0/8']) });
    }
  });

  test('a Route naming us in front of a foreign hop is removed; the request goes on to that hop', async () => {
    const u = await ua('probe');
    const next = await ua('next');
    u.send(
      [
        `MESSAGE sip:someone@${next.hostport} SIP/2.0`,
        `Via: ${u.via()}`,
        'Max-Forwards: 70',
        `Route: <sip:203.0.113.10:${s1.port};lr>`,
        `Route: <sip:${next.hostport};lr>`,
        `From: <sip:probe@${DOMAIN}>;tag=${rand(4)}`,
        `To: <sip:someone@${next.hostport}>`,
        `Call-ID: m-${rand(6)}`,
        'CSeq: 1 MESSAGE',
      ].join('\n'),
      s1.port,
    );
    const m = await next.nextRequest('MESSAGE');
    assert.deepEqual(getHeaderValues(m.msg, 'route').map(hostPort), [next.hostport], 'only our own entry was removed');
    next.reply(m, 200, 'OK');
    assert.equal((await u.nextFinal('MESSAGE')).msg.status, 200);
  });
});
