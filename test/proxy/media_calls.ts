/**
 * Scripted calls through an in-process edge for the media tests (test/proxy/media.test.ts,
 * test/media/rtpengine.test.ts): phones (a SIP UA from ua.ts plus one RTP socket), REGISTER,
 * INVITE/183/200/ACK with SDP (or a late offer), re-INVITE, BYE, and SDP checks.
 */
import assert from 'node:assert/strict';
import { parse } from 'sdp-transform';
import { Edge } from '../../src/edge.js';
import { parseConfigText } from '../../src/config/index.js';
import { createLogger, silentLogger } from '../../src/lib/log.js';
import { getHeader, getHeaderValues } from '../../src/sip/headers.js';
import type { SipRequest, SipResponse } from '../../src/sip/message.js';
import { HOST, Ua, branch, rand, uriOf, type Received } from './ua.js';
import { Peer, sleep } from '../media/helpers.js';

export const RANGE = { low: 40000, high: 40099 };

export interface Running {
  edge: Edge;
  port: number;
  domain: string;
}

export const edges: Edge[] = [];
export const closers: Array<() => Promise<void>> = [];

export async function startEdge(media: string): Promise<Running> {
  const text = `
listen: ["udp:127.0.0.1:0"]
store: "memory:"
api: { enabled: false }
media: ${media}
`;
  const r = parseConfigText(text);
  if (!r.ok) throw new Error('config: ' + JSON.stringify(r.errors));
  const logger = process.env.SIPEDGE_TEST_LOG ? createLogger(process.env.SIPEDGE_TEST_LOG) : silentLogger;
  const edge = await Edge.start(r.config, { logger });
  edges.push(edge);
  const port = edge.transport.sockets()[0].boundPort;
  return { edge, port, domain: `${HOST}:${port}` };
}

/** A phone: SIP UA plus one RTP socket. */
export interface Phone {
  ua: Ua;
  rtp: Peer;
  user: string;
}

export async function phone(name: string, user: string): Promise<Phone> {
  const ua = await Ua.open(name);
  const rtp = await Peer.open();
  closers.push(() => ua.close(), () => rtp.close());
  return { ua, rtp, user };
}

export async function register(p: Phone, e: Running): Promise<void> {
  p.ua.send(
    [
      `REGISTER sip:${e.domain} SIP/2.0`,
      `Via: ${p.ua.via()}`,
      'Max-Forwards: 70',
      `From: <sip:${p.user}@${e.domain}>;tag=${rand(4)}`,
      `To: <sip:${p.user}@${e.domain}>`,
      `Call-ID: reg-${rand(6)}`,
      'CSeq: 1 REGISTER',
      `Contact: <${p.ua.contact(p.user)}>`,
      'Expires: 600',
    ].join('\n'),
    e.port,
  );
  const res = await p.ua.nextFinal('REGISTER');
  assert.equal(res.msg.status, 200, `REGISTER ${p.user}: ${res.msg.status} ${res.msg.reason}`);
}

/** A response to `req` with an optional SDP body (headers copied per RFC 3261 §8.2.6). */
export function reply(u: Ua, req: Received<SipRequest>, status: number, reason: string, o: { toTag?: string; contactUser?: string; sdp?: string } = {}): void {
  const m = req.msg;
  const lines = [`SIP/2.0 ${status} ${reason}`];
  for (const v of getHeaderValues(m, 'via')) lines.push(`Via: ${v}`);
  lines.push(`From: ${getHeader(m, 'from')}`);
  const to = getHeader(m, 'to') ?? '';
  lines.push(`To: ${o.toTag && !/;\s*tag=/i.test(to) ? `${to};tag=${o.toTag}` : to}`);
  lines.push(`Call-ID: ${getHeader(m, 'call-id')}`, `CSeq: ${getHeader(m, 'cseq')}`);
  if (status > 100 && status < 300) for (const rr of getHeaderValues(m, 'record-route')) lines.push(`Record-Route: ${rr}`);
  if (o.contactUser && status < 300) lines.push(`Contact: <${u.contact(o.contactUser)}>`);
  if (o.sdp !== undefined) lines.push('Content-Type: application/sdp');
  u.send(lines.join('\n'), req.from.port, req.from.address, o.sdp ?? '');
}

/** What the c= and first m= of an SDP say. */
export function media(sdp: string): { address: string; port: number; direction: string; ports: number[] } {
  const s = parse(sdp);
  const m = s.media[0];
  return {
    address: m.connection?.ip ?? s.connection?.ip ?? '',
    port: m.port,
    direction: m.direction ?? s.direction ?? 'sendrecv',
    ports: s.media.map((x) => x.port),
  };
}

export function bodyOf(m: SipRequest | SipResponse): string {
  assert.match(getHeader(m, 'content-type') ?? '', /^application\/sdp/i, 'Content-Type: application/sdp');
  assert.equal(Number(getHeader(m, 'content-length')), m.body.length, 'Content-Length matches the body');
  return m.body.toString('utf8');
}

export function assertRelayed(sdp: string, what: string, range = RANGE): number {
  const md = media(sdp);
  assert.equal(md.address, HOST, `${what}: c= is the relay address`);
  assert.ok(md.port >= range.low && md.port <= range.high && md.port % 2 === 0, `${what}: m= port ${md.port} is an even port of media.ports`);
  assert.match(sdp, new RegExp(`^o=\\S+ \\S+ \\d+ IN IP4 ${HOST.replace(/\./g, '\\.')}\\r?$`, 'm'), `${what}: o= carries the relay address`);
  return md.port;
}

/** One established call as both UAs see it. */
export interface Call {
  callId: string;
  caller: Phone;
  callee: Phone;
  fromTag: string;
  toTag: string;
  from: string;
  /** To with the callee's tag, as the caller writes it. */
  to: string;
  /** Caller's route set (Record-Route of the 200, reversed) and remote target. */
  callerRoutes: string[];
  calleeTarget: string;
  /** Callee's route set and remote target. */
  calleeRoutes: string[];
  callerTarget: string;
  /** Relay ports: the one the caller sends to (from the 200), the one the callee sends to (from the INVITE). */
  relayForCaller?: number;
  relayForCallee?: number;
  cseq: number;
  calleeCseq: number;
  /** The INVITE as the callee received it, and the 200 as the caller received it. */
  invite: Received<SipRequest>;
  ok: Received<SipResponse>;
}

/** An in-dialog request along a route set, sent to the first Route's address. */
export function inDialog(u: Ua, o: { method: string; target: string; routes: string[]; from: string; to: string; callId: string; cseq: number; cseqMethod?: string; sdp?: string }): void {
  const lines = [
    `${o.method} ${o.target} SIP/2.0`,
    `Via: ${u.via(branch())}`,
    'Max-Forwards: 70',
    ...o.routes.map((r) => `Route: ${r}`),
    `From: ${o.from}`,
    `To: ${o.to}`,
    `Call-ID: ${o.callId}`,
    `CSeq: ${o.cseq} ${o.cseqMethod ?? o.method}`,
    `Contact: <${u.contact('x')}>`,
  ];
  if (o.sdp !== undefined) lines.push('Content-Type: application/sdp');
  const hp = /@?([0-9.]+):(\d+)/.exec(uriOf(o.routes[0] ?? o.target).replace(/^sips?:/, ''));
  assert.ok(hp, `route has an address: ${o.routes[0]}`);
  u.send(lines.join('\n'), Number(hp[2]), hp[1], o.sdp ?? '');
}

/**
 * INVITE caller → callee through the edge, answered 200 (after a 183 with the same SDP when
 * `early`), ACKed. `offer` undefined = late offer (the callee offers in the 200, the caller
 * answers in the ACK with `lateAnswer`).
 */
export async function establish(
  e: Running,
  caller: Phone,
  callee: Phone,
  o: { offer?: string; answer: string; early?: boolean; lateAnswer?: string; expectRelay?: boolean },
): Promise<Call> {
  caller.ua.clear();
  callee.ua.clear();
  const fromTag = rand(4);
  const callId = `media-${rand(6)}`;
  const from = `<sip:${caller.user}@${e.domain}>;tag=${fromTag}`;
  const toUri = `sip:${callee.user}@${e.domain}`;
  const lines = [
    `INVITE ${toUri} SIP/2.0`,
    `Via: ${caller.ua.via(branch())}`,
    'Max-Forwards: 70',
    `From: ${from}`,
    `To: <${toUri}>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 INVITE',
    `Contact: <${caller.ua.contact(caller.user)}>`,
  ];
  if (o.offer !== undefined) lines.push('Content-Type: application/sdp');
  caller.ua.send(lines.join('\n'), e.port, HOST, o.offer ?? '');
  const invite = await callee.ua.nextRequest('INVITE');
  const toTag = rand(4);
  if (o.early) {
    reply(callee.ua, invite, 183, 'Session Progress', { toTag, contactUser: callee.user, sdp: o.answer });
    await caller.ua.nextResponse('INVITE', 183);
  }
  reply(callee.ua, invite, 200, 'OK', { toTag, contactUser: callee.user, sdp: o.answer });
  const ok = await caller.ua.nextResponse('INVITE', 200);
  const rr = getHeaderValues(ok.msg, 'record-route');
  const call: Call = {
    callId,
    caller,
    callee,
    fromTag,
    toTag,
    from,
    to: getHeader(ok.msg, 'to') ?? '',
    callerRoutes: rr.slice().reverse(),
    calleeTarget: uriOf(getHeader(ok.msg, 'contact') ?? ''),
    calleeRoutes: getHeaderValues(invite.msg, 'record-route'),
    callerTarget: uriOf(getHeader(invite.msg, 'contact') ?? ''),
    cseq: 1,
    calleeCseq: 0,
    invite,
    ok,
  };
  inDialog(caller.ua, { method: 'ACK', target: call.calleeTarget, routes: call.callerRoutes, from, to: call.to, callId, cseq: 1, sdp: o.lateAnswer });
  if (o.expectRelay !== false) {
    if (o.offer !== undefined) {
      call.relayForCallee = assertRelayed(bodyOf(invite.msg), 'INVITE at the callee');
      call.relayForCaller = assertRelayed(bodyOf(ok.msg), '200 at the caller');
    } else {
      call.relayForCaller = assertRelayed(bodyOf(ok.msg), 'late offer in the 200 at the caller');
    }
  }
  return call;
}

/** Sends `n` RTP packets each way and returns how many each side received. */
export async function rtpBothWays(c: Call, n = 100): Promise<{ atCallee: number; atCaller: number }> {
  c.caller.rtp.clear();
  c.callee.rtp.clear();
  assert.ok(c.relayForCaller && c.relayForCallee, 'relay ports known');
  await c.caller.rtp.sendRtp(n, c.relayForCaller, 0x41);
  await c.callee.rtp.sendRtp(n, c.relayForCallee, 0x42);
  const atCallee = await c.callee.rtp.waitFor(n, 3000);
  const atCaller = await c.caller.rtp.waitFor(n, 3000);
  return { atCallee, atCaller };
}

/** Caller sends a re-INVITE with `sdp`; the callee answers 200 with `answer`; ACKed. Returns both bodies as received. */
export async function reInvite(e: Running, c: Call, sdp: string, answer: string): Promise<{ atCallee: string; atCaller: string }> {
  c.cseq++;
  inDialog(c.caller.ua, { method: 'INVITE', target: c.calleeTarget, routes: c.callerRoutes, from: c.from, to: c.to, callId: c.callId, cseq: c.cseq, sdp });
  const got = await c.callee.ua.nextRequest('INVITE');
  assert.equal(getHeader(got.msg, 'cseq'), `${c.cseq} INVITE`);
  reply(c.callee.ua, got, 200, 'OK', { contactUser: c.callee.user, sdp: answer });
  const ok = await c.caller.ua.next<SipResponse>((m) => m.type === 'response' && getHeader(m, 'cseq') === `${c.cseq} INVITE` && m.status === 200, 2000, '200 to re-INVITE');
  inDialog(c.caller.ua, { method: 'ACK', target: c.calleeTarget, routes: c.callerRoutes, from: c.from, to: c.to, callId: c.callId, cseq: c.cseq });
  void e;
  return { atCallee: bodyOf(got.msg), atCaller: bodyOf(ok.msg) };
}

/** Caller hangs up; the callee answers the BYE 200 and the caller gets it. */
export async function hangUp(c: Call): Promise<void> {
  c.cseq++;
  inDialog(c.caller.ua, { method: 'BYE', target: c.calleeTarget, routes: c.callerRoutes, from: c.from, to: c.to, callId: c.callId, cseq: c.cseq });
  const bye = await c.callee.ua.nextRequest('BYE');
  reply(c.callee.ua, bye, 200, 'OK');
  await c.caller.ua.nextResponse('BYE', 200);
}

export async function until(pred: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred()) return;
    await sleep(20);
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** Closes every phone and edge opened through this module. */
export async function closeAll(): Promise<void> {
  for (const c of closers.splice(0)) await c();
  for (const e of edges.splice(0)) await e.close();
}
