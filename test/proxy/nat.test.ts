/**
 * Far-end NAT through the real edge (`Edge.start` in process, UDP and TCP sockets on
 * 127.0.0.1:0, memory store, no accounts): scripted phones that claim a private address in Via
 * and Contact (192.168.1.x) while sending from a loopback port — exactly what a phone behind a
 * NAT looks like to the edge. The kernel-NAT version of these cases is test/e2e/nat_far.test.ts.
 *
 * Covered: distinct bindings for phones behind one NAT, each reached on its own flow; the
 * Contact stored and returned as sent; NATed TCP bindings reached over their connection and
 * 480 (never a new connection) once it is gone; 430 Flow Failed for an in-dialog request whose
 * flow-token connection is gone (RFC 5626 §5.3.1); `nat.rewriteContact` on requests and
 * 18x/2xx responses; RFC 5626 outbound REGISTER (Require/Supported outbound, Flow-Timer, one
 * flow per instance/reg-id); `nat.maxExpires`; flow tokens that do not show our addresses.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Edge } from '../../src/edge.js';
import { parseConfigText } from '../../src/config/index.js';
import { createLogger, silentLogger } from '../../src/lib/log.js';
import { getHeader, getHeaderValues } from '../../src/sip/headers.js';
import { parseMessage } from '../../src/sip/parse.js';
import type { SipMessage, SipRequest, SipResponse } from '../../src/sip/message.js';
import { nextFrame } from '../../src/transport/framing.js';
import { HOST, Ua, branch, cseqMethod, param, rand, uriOf, wire, type Received } from './ua.js';

const logger = process.env.SIPEDGE_TEST_LOG ? createLogger(process.env.SIPEDGE_TEST_LOG) : silentLogger;

/** A running edge with its UDP and TCP ports. */
interface TestEdge {
  edge: Edge;
  udp: number;
  tcp: number;
  domain: string;
}

async function startEdge(nat: string): Promise<TestEdge> {
  const text = `
listen: ["udp:${HOST}:0", "tcp:${HOST}:0"]
store: "memory:"
api: { enabled: false }
media: { relay: never }
registrar:
  expires: { min: 60, max: 3600, default: 600 }
nat: ${nat}
`;
  const r = parseConfigText(text);
  if (!r.ok) throw new Error('config: ' + JSON.stringify(r.errors));
  const edge = await Edge.start(r.config, { logger });
  const socks = edge.transport.sockets();
  const udp = socks.find((s) => s.transport === 'udp')!.boundPort;
  const tcp = socks.find((s) => s.transport === 'tcp')!.boundPort;
  return { edge, udp, tcp, domain: `${HOST}:${udp}` };
}

const opened: Array<{ close(): Promise<void> | void }> = [];

/** A UDP phone "behind NAT": Via and Contact say 192.168.1.x:5060, packets come from 127.0.0.1:port. */
async function natPhone(name: string, privateIp: string): Promise<Ua & { privateIp: string }> {
  const u = (await Ua.open(name)) as Ua & { privateIp: string };
  u.privateIp = privateIp;
  opened.push(u);
  return u;
}

/** A TCP phone "behind NAT": one connection to the edge, Via/Contact claim a private address. */
class TcpPhone {
  readonly inbox: Received[] = [];
  private buf = Buffer.alloc(0);
  private waiters: Array<{ pred: (m: SipMessage) => boolean; resolve: (r: Received) => void; timer: NodeJS.Timeout }> = [];
  closed = false;

  private constructor(
    readonly socket: net.Socket,
    readonly privateIp: string,
  ) {
    socket.on('data', (d) => this.onData(d));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => undefined);
  }

  static connect(port: number, privateIp: string): Promise<TcpPhone> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: HOST, port }, () => {
        s.off('error', reject);
        const p = new TcpPhone(s, privateIp);
        opened.push({ close: () => p.close() });
        resolve(p);
      });
      s.once('error', reject);
    });
  }

  get localPort(): number {
    return this.socket.localPort!;
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      const f = nextFrame(this.buf);
      if (f.kind === 'incomplete' || f.kind === 'error') return;
      const chunk = this.buf.subarray(0, f.length);
      this.buf = this.buf.subarray(f.length);
      if (f.kind !== 'message') continue;
      const r = parseMessage(chunk);
      if (!r.ok) continue;
      const rec: Received = { msg: r.message, raw: chunk.toString('utf8'), from: { address: HOST, port: 0 } };
      const i = this.waiters.findIndex((w) => w.pred(rec.msg));
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        clearTimeout(w.timer);
        w.resolve(rec);
      } else this.inbox.push(rec);
    }
  }

  send(text: string): void {
    this.socket.write(wire(text));
  }

  next<T extends SipMessage>(pred: (m: SipMessage) => boolean, what: string, timeoutMs = 2000): Promise<Received<T>> {
    const i = this.inbox.findIndex((r) => pred(r.msg));
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0] as Received<T>);
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        resolve: resolve as (r: Received) => void,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new Error(`tcp phone: no ${what} within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  /** Answers a request over the connection (Via, From, To + tag, Call-ID, CSeq, Record-Route). */
  reply(req: Received<SipRequest>, status: number, reason: string, toTag: string, contactUser?: string): void {
    const m = req.msg;
    const lines = [`SIP/2.0 ${status} ${reason}`];
    for (const v of getHeaderValues(m, 'via')) lines.push(`Via: ${v}`);
    lines.push(`From: ${getHeader(m, 'from')}`, `To: ${getHeader(m, 'to')};tag=${toTag}`, `Call-ID: ${getHeader(m, 'call-id')}`, `CSeq: ${getHeader(m, 'cseq')}`);
    for (const rr of getHeaderValues(m, 'record-route')) lines.push(`Record-Route: ${rr}`);
    if (contactUser) lines.push(`Contact: <sip:${contactUser}@${this.privateIp}:5060;transport=tcp>`);
    this.send(lines.join('\n'));
  }

  close(): Promise<void> {
    for (const w of this.waiters) clearTimeout(w.timer);
    this.waiters = [];
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.end();
      setTimeout(() => {
        this.socket.destroy();
        resolve();
      }, 500).unref();
    });
  }
}

// ------------------------------------------------------------------ message builders

let cseqN = 1;

function registerText(via: string, user: string, domain: string, contact: string, o: { callId?: string; expires?: number; extra?: string[] } = {}): string {
  const callId = o.callId ?? `reg-${rand()}`;
  return [
    `REGISTER sip:${domain} SIP/2.0`,
    `Via: ${via}`,
    'Max-Forwards: 70',
    `From: <sip:${user}@${domain}>;tag=${rand(4)}`,
    `To: <sip:${user}@${domain}>`,
    `Call-ID: ${callId}`,
    `CSeq: ${cseqN++} REGISTER`,
    `Contact: ${contact}`,
    `Expires: ${o.expires ?? 600}`,
    'User-Agent: nat-test-phone',
    ...(o.extra ?? []),
  ].join('\n');
}

/** REGISTER from a NATed UDP phone; resolves the 200. */
async function registerUdp(e: TestEdge, p: Ua & { privateIp: string }, user: string, o: { expires?: number; contact?: string; extra?: string[]; callId?: string } = {}): Promise<SipResponse> {
  const via = `SIP/2.0/UDP ${p.privateIp}:5060;branch=${branch()};rport`;
  p.send(registerText(via, user, e.domain, o.contact ?? `<sip:${user}@${p.privateIp}:5060>`, o), e.udp);
  const res = await p.nextFinal('REGISTER');
  assert.equal(res.msg.status, 200, `REGISTER ${user}: ${res.msg.status} ${res.msg.reason}`);
  return res.msg;
}

interface Call {
  callId: string;
  fromTag: string;
  to: string;
  from: string;
}

/** INVITE from a UDP UA (public or "NATed" by its Via/Contact) to sip:user@domain. */
function invite(e: TestEdge, caller: Ua, user: string, o: { viaHost?: string; contactHost?: string } = {}): Call {
  const call: Call = { callId: `call-${rand()}`, fromTag: rand(4), to: `<sip:${user}@${e.domain}>`, from: '' };
  call.from = `<sip:caller@${e.domain}>;tag=${call.fromTag}`;
  const viaHost = o.viaHost ?? caller.hostport;
  caller.send(
    [
      `INVITE sip:${user}@${e.domain} SIP/2.0`,
      `Via: SIP/2.0/UDP ${viaHost};branch=${branch()};rport`,
      'Max-Forwards: 70',
      `From: ${call.from}`,
      `To: ${call.to}`,
      `Call-ID: ${call.callId}`,
      'CSeq: 1 INVITE',
      `Contact: <sip:caller@${o.contactHost ?? caller.hostport}>`,
    ].join('\n'),
    e.udp,
  );
  return call;
}

/** The final response to the INVITE of call `c` (responses of other calls stay queued). */
function finalOf(u: Ua, c: Call | string): Promise<Received<SipResponse>> {
  const id = typeof c === 'string' ? c : c.callId;
  return u.next<SipResponse>((m) => m.type === 'response' && m.status >= 200 && cseqMethod(m) === 'INVITE' && getHeader(m, 'call-id') === id, 3000, `final response for ${id}`);
}

const isInvite = (callId: string) => (m: SipMessage) => m.type === 'request' && m.method === 'INVITE' && getHeader(m, 'call-id') === callId;

// ------------------------------------------------------------------ tests

describe('far-end NAT through the edge (loopback phones claiming private addresses)', () => {
  let e: TestEdge;
  let pub: Ua;

  before(async () => {
    e = await startEdge('{ keepalive: { interval: 300 }, maxExpires: 120 }');
    pub = await Ua.open('public caller');
    opened.push(pub);
  });

  after(async () => {
    await Promise.all(opened.map((o) => o.close()));
    await e?.edge.close();
  });

  test('two phones behind one NAT with private Contacts are distinct bindings, each reached on its own flow', async () => {
    const a = await natPhone('phone A', '192.168.1.10');
    const b = await natPhone('phone B', '192.168.1.11');
    const resA = await registerUdp(e, a, '2001', { expires: 3600 });
    const resB = await registerUdp(e, b, '2002', { expires: 3600 });
    // The Contact is stored and returned exactly as sent (RFC 3261 §10.3 step 8); the received
    // flow is kept beside it. nat.maxExpires (120) caps the 3600 asked for by NATed phones.
    assert.equal(uriOf(getHeader(resA, 'contact')!), 'sip:2001@192.168.1.10:5060');
    assert.equal(param(getHeader(resA, 'contact')!, 'expires'), '120', 'nat.maxExpires caps a NATed registration');
    assert.equal(uriOf(getHeader(resB, 'contact')!), 'sip:2002@192.168.1.11:5060');

    const peers = await e.edge.peers();
    const pa = peers.find((p) => p.aor.startsWith('sip:2001@'))!;
    const pb = peers.find((p) => p.aor.startsWith('sip:2002@'))!;
    assert.equal(pa.contact, 'sip:2001@192.168.1.10:5060');
    assert.equal(pa.received, `${HOST}:${a.port}`);
    assert.equal(pb.received, `${HOST}:${b.port}`);
    assert.equal(pa.nat, true);
    assert.deepEqual(pa.natTests, ['via-received', 'via-rport', 'rport-present', 'contact-private']);
    assert.ok(pa.expires <= 120 && pa.expires > 100, `expires ${pa.expires}`);
    assert.equal(pa.userAgent, 'nat-test-phone');

    // A call to each reaches the right socket, never the other one.
    const c1 = invite(e, pub, '2001');
    const inv1 = await a.nextRequest('INVITE');
    assert.equal(getHeader(inv1.msg, 'call-id'), c1.callId);
    assert.equal(inv1.msg.uri, 'sip:2001@192.168.1.10:5060', 'Request-URI is the registered Contact (RFC 3261 §16.5)');
    a.reply(inv1, 486, 'Busy Here', { toTag: rand(4) });
    assert.equal((await finalOf(pub, c1)).msg.status, 486);
    const c2 = invite(e, pub, '2002');
    const inv2 = await b.nextRequest('INVITE');
    assert.equal(getHeader(inv2.msg, 'call-id'), c2.callId);
    b.reply(inv2, 486, 'Busy Here', { toTag: rand(4) });
    assert.equal((await finalOf(pub, c2)).msg.status, 486);
    await a.none(isInvite(c2.callId), 300, 'INVITE for phone B');
    await b.none(isInvite(c1.callId), 100, 'INVITE for phone A');
  });

  test('one AOR registered by two phones behind one NAT: two bindings, the INVITE forks to both flows', async () => {
    const a = await natPhone('phone A2', '192.168.1.10');
    const b = await natPhone('phone B2', '192.168.1.11');
    await registerUdp(e, a, '2003');
    const res = await registerUdp(e, b, '2003');
    assert.equal(getHeaderValues(res, 'contact').length, 2, 'two bindings');
    const c = invite(e, pub, '2003');
    const [ia, ib] = await Promise.all([a.nextRequest('INVITE'), b.nextRequest('INVITE')]);
    assert.equal(getHeader(ia.msg, 'call-id'), c.callId);
    assert.equal(getHeader(ib.msg, 'call-id'), c.callId);
    for (const [p, inv] of [
      [a, ia],
      [b, ib],
    ] as const) {
      p.reply(inv, 486, 'Busy Here', { toTag: rand(4) });
    }
    const fin = await finalOf(pub, c);
    assert.equal(fin.msg.status, 486);
  });

  test('a public phone (rport only) is not NATed: reached at its Contact', async () => {
    const p = await Ua.open('public phone');
    opened.push(p);
    p.send(registerText(p.via(), '2004', e.domain, `<sip:2004@${p.hostport}>`, { expires: 3600 }), e.udp);
    const res = await p.nextFinal('REGISTER');
    assert.equal(res.msg.status, 200);
    assert.equal(param(getHeader(res.msg, 'contact')!, 'expires'), '3600', 'maxExpires applies to NATed UAs only');
    const row = (await e.edge.peers()).find((r) => r.aor.startsWith('sip:2004@'))!;
    assert.equal(row.nat, false);
    assert.deepEqual(row.natTests, ['rport-present']);
  });

  test('a NATed TCP phone gets its calls over its own connection; once it is gone, 480 and no new connection', async () => {
    const phone = await TcpPhone.connect(e.tcp, '192.168.1.12');
    phone.send(registerText(`SIP/2.0/TCP 192.168.1.12:5060;branch=${branch()};rport`, '2005', e.domain, '<sip:2005@192.168.1.12:5060;transport=tcp>'));
    const reg = await phone.next<SipResponse>((m) => m.type === 'response' && cseqMethod(m) === 'REGISTER', 'REGISTER response');
    assert.equal(reg.msg.status, 200);
    const row = (await e.edge.peers()).find((r) => r.aor.startsWith('sip:2005@'))!;
    assert.equal(row.transport, 'tcp');
    assert.equal(row.received, `${HOST}:${phone.localPort}`);
    assert.equal(row.nat, true);

    const before = e.edge.transport.stats().tcp;
    const c = invite(e, pub, '2005');
    const inv = await phone.next<SipRequest>(isInvite(c.callId), 'INVITE over the TCP connection');
    phone.reply(inv, 486, 'Busy Here', rand(4));
    assert.equal((await finalOf(pub, c)).msg.status, 486);

    await phone.close();
    await waitFor(() => e.edge.transport.stats().tcp.open === 0, 'edge sees the connection closed');
    const c2 = invite(e, pub, '2005');
    const fin = await finalOf(pub, c2);
    assert.equal(fin.msg.status, 480, 'no usable binding: 480 Temporarily Unavailable');
    const now = e.edge.transport.stats().tcp;
    assert.equal(now.connected + now.connectFailures, before.connected + before.connectFailures, 'the edge never opened a connection towards the NATed phone');
  });

  test('in-dialog request over a flow-token connection that is gone: 430 Flow Failed (RFC 5626 §5.3.1)', async () => {
    const phone = await TcpPhone.connect(e.tcp, '192.168.1.13');
    phone.send(registerText(`SIP/2.0/TCP 192.168.1.13:5060;branch=${branch()};rport`, '2006', e.domain, '<sip:2006@192.168.1.13:5060;transport=tcp>'));
    assert.equal((await phone.next<SipResponse>((m) => m.type === 'response', 'REGISTER response')).msg.status, 200);
    const c = invite(e, pub, '2006');
    const inv = await phone.next<SipRequest>(isInvite(c.callId), 'INVITE');
    const toTag = rand(4);
    phone.reply(inv, 200, 'OK', toTag, '2006');
    const ok = await finalOf(pub, c);
    assert.equal(ok.msg.status, 200);
    const routes = getHeaderValues(ok.msg, 'record-route').reverse();
    assert.ok(routes.length >= 1, 'Record-Route with our flow token');
    const target = uriOf(getHeader(ok.msg, 'contact')!);
    const inDialog = (method: string, cseq: number): string =>
      [
        `${method} ${target} SIP/2.0`,
        `Via: ${pub.via()}`,
        ...routes.map((r) => `Route: ${r}`),
        'Max-Forwards: 70',
        `From: ${c.from}`,
        `To: ${c.to};tag=${toTag}`,
        `Call-ID: ${c.callId}`,
        `CSeq: ${cseq} ${method}`,
      ].join('\n');
    pub.send(inDialog('ACK', 1), e.udp);
    await phone.next((m) => m.type === 'request' && m.method === 'ACK', 'ACK over the connection');
    await phone.close();
    await waitFor(() => e.edge.transport.stats().tcp.open === 0, 'edge sees the connection closed');
    const before = e.edge.transport.stats().tcp;
    pub.send(inDialog('BYE', 2), e.udp);
    const bye = await pub.nextFinal('BYE');
    assert.equal(bye.msg.status, 430, `BYE over a dead flow: ${bye.msg.status} ${bye.msg.reason}`);
    assert.equal(bye.msg.reason, 'Flow Failed');
    const now = e.edge.transport.stats().tcp;
    assert.equal(now.connected + now.connectFailures, before.connected + before.connectFailures, 'no new connection');
  });

  test('flow tokens in Record-Route do not show our socket or the peers\' addresses', async () => {
    const a = await natPhone('phone T', '192.168.1.14');
    await registerUdp(e, a, '2007');
    const c = invite(e, pub, '2007');
    const inv = await a.nextRequest('INVITE');
    assert.equal(getHeader(inv.msg, 'call-id'), c.callId);
    const rr = getHeaderValues(inv.msg, 'record-route');
    assert.ok(rr.length >= 1, 'Record-Route present');
    for (const v of rr) {
      const user = /sip:([^@]+)@/.exec(v)?.[1];
      assert.ok(user, `token user part in ${v}`);
      const decoded = Buffer.from(user, 'base64url').toString('latin1');
      assert.ok(!decoded.includes(HOST) && !decoded.includes('udp:') && !decoded.includes(String(a.port)), `token reveals nothing in clear: ${decoded}`);
    }
    a.reply(inv, 486, 'Busy Here', { toTag: rand(4) });
    assert.equal((await finalOf(pub, c)).msg.status, 486);
  });

  test('RFC 5626 outbound REGISTER: Require/Supported outbound and Flow-Timer; a new flow of the same instance/reg-id replaces the old one', async () => {
    const inst = '<urn:uuid:00000000-0000-1000-8000-00a0c91e6bf6>';
    const contact = `<sip:2008@192.168.1.15:5060;ob>;+sip.instance="${inst}";reg-id=1`;
    const first = await natPhone('outbound phone, first flow', '192.168.1.15');
    const r1 = await registerUdp(e, first, '2008', { contact, extra: ['Supported: outbound, path'], callId: 'ob-1' });
    assert.deepEqual(getHeaderValues(r1, 'require'), ['outbound'], 'Require: outbound (RFC 5626 §6)');
    assert.ok(getHeaderValues(r1, 'supported').includes('outbound'), 'Supported: outbound');
    assert.equal(getHeader(r1, 'flow-timer'), '300', 'Flow-Timer: the keepalive interval');
    // The phone reconnects from another port (new NAT mapping): same instance and reg-id.
    const second = await natPhone('outbound phone, second flow', '192.168.1.15');
    const r2 = await registerUdp(e, second, '2008', { contact, extra: ['Supported: outbound'], callId: 'ob-2' });
    assert.equal(getHeaderValues(r2, 'contact').length, 1, 'the old flow is replaced, not duplicated');
    const rows = (await e.edge.peers()).filter((r) => r.aor.startsWith('sip:2008@'));
    assert.equal(rows.length, 1);
    assert.equal(rows[0].received, `${HOST}:${second.port}`);
    const c = invite(e, pub, '2008');
    const inv = await second.nextRequest('INVITE');
    assert.equal(getHeader(inv.msg, 'call-id'), c.callId);
    second.reply(inv, 486, 'Busy Here', { toTag: rand(4) });
    await first.none(isInvite(c.callId), 200, 'INVITE on the replaced flow');
    assert.equal((await finalOf(pub, c)).msg.status, 486);
    // A plain REGISTER without outbound gets neither Require nor Flow-Timer.
    const plain = await natPhone('plain phone', '192.168.1.16');
    const r3 = await registerUdp(e, plain, '2009');
    assert.equal(getHeader(r3, 'require'), undefined);
    assert.equal(getHeader(r3, 'flow-timer'), undefined);
  });

  test('without nat.rewriteContact, Contacts are forwarded untouched', async () => {
    const callee = await natPhone('callee', '192.168.1.17');
    await registerUdp(e, callee, '2010');
    const caller = await natPhone('NATed caller', '192.168.1.18');
    const c = invite(e, caller, '2010', { viaHost: '192.168.1.18:5060', contactHost: '192.168.1.18:5060' });
    const inv = await callee.nextRequest('INVITE');
    assert.equal(getHeader(inv.msg, 'call-id'), c.callId);
    assert.equal(uriOf(getHeader(inv.msg, 'contact')!), 'sip:caller@192.168.1.18:5060');
    callee.reply(inv, 180, 'Ringing', { toTag: 'tt', contactUser: 'callee' });
    const ringing = await caller.nextResponse('INVITE', 180);
    assert.equal(uriOf(getHeader(ringing.msg, 'contact')!), `sip:callee@${callee.hostport}`, 'the callee UA wrote its loopback address itself');
    callee.reply(inv, 486, 'Busy Here', { toTag: 'tt' });
    await finalOf(caller, c);
  });
});

describe('nat.rewriteContact: true (Kamailio fix_nated_contact)', () => {
  let e: TestEdge;
  const mine: Array<{ close(): Promise<void> | void }> = [];

  before(async () => {
    e = await startEdge('{ rewriteContact: true, keepalive: { interval: 0 } }');
  });

  after(async () => {
    await Promise.all(mine.map((o) => o.close()));
    await e?.edge.close();
  });

  /** A phone whose own replies carry its private Contact (what a NATed UA sends). */
  async function phone(name: string, ip: string): Promise<Ua & { privateIp: string }> {
    const u = (await Ua.open(name)) as Ua & { privateIp: string };
    u.privateIp = ip;
    mine.push(u);
    return u;
  }

  function replyPrivate(p: Ua & { privateIp: string }, req: Received<SipRequest>, status: number, reason: string, toTag: string, user: string): void {
    const m = req.msg;
    const lines = [`SIP/2.0 ${status} ${reason}`];
    for (const v of getHeaderValues(m, 'via')) lines.push(`Via: ${v}`);
    lines.push(`From: ${getHeader(m, 'from')}`, `To: ${getHeader(m, 'to')};tag=${toTag}`, `Call-ID: ${getHeader(m, 'call-id')}`, `CSeq: ${getHeader(m, 'cseq')}`);
    for (const rr of getHeaderValues(m, 'record-route')) lines.push(`Record-Route: ${rr}`);
    lines.push(`Contact: "Phone" <sip:${user}@${p.privateIp}:5060;line=1>;+sip.instance="<urn:uuid:1>"`);
    p.send(lines.join('\n'), req.from.port, req.from.address);
  }

  test('the REGISTER Contact is stored as sent; a NATed caller\'s INVITE Contact and a NATed callee\'s 180/200 Contact become their received addresses', async () => {
    const callee = await phone('NATed callee', '192.168.1.20');
    const res = await registerUdp(e, callee, '3001');
    assert.equal(uriOf(getHeader(res, 'contact')!), 'sip:3001@192.168.1.20:5060', 'REGISTER Contact is never rewritten');
    assert.equal((await e.edge.peers())[0].contact, 'sip:3001@192.168.1.20:5060');

    const caller = await phone('NATed caller', '192.168.1.21');
    const c = invite(e, caller, '3001', { viaHost: '192.168.1.21:5060', contactHost: '192.168.1.21:5060' });
    const inv = await callee.nextRequest('INVITE');
    assert.equal(getHeader(inv.msg, 'call-id'), c.callId);
    assert.equal(uriOf(getHeader(inv.msg, 'contact')!), `sip:caller@${HOST}:${caller.port}`, "the caller's Contact is its received address:port");

    replyPrivate(callee, inv, 180, 'Ringing', 'ct', '3001');
    const ringing = await caller.nextResponse('INVITE', 180);
    assert.equal(getHeader(ringing.msg, 'contact'), `"Phone" <sip:3001@${HOST}:${callee.port};line=1>;+sip.instance="<urn:uuid:1>"`, '18x: host:port replaced, everything else kept');
    replyPrivate(callee, inv, 200, 'OK', 'ct', '3001');
    const ok = await finalOf(caller, c);
    assert.equal(ok.msg.status, 200);
    assert.equal(uriOf(getHeader(ok.msg, 'contact')!), `sip:3001@${HOST}:${callee.port};line=1`, '2xx Contact rewritten');
  });

  test('a TCP phone\'s Contact gets transport=tcp and the connection\'s port', async () => {
    const callee = await phone('UDP callee', '192.168.1.22');
    await registerUdp(e, callee, '3002');
    const tcp = await TcpPhone.connect(e.tcp, '192.168.1.23');
    mine.push({ close: () => tcp.close() });
    tcp.send(
      [
        `INVITE sip:3002@${e.domain} SIP/2.0`,
        `Via: SIP/2.0/TCP 192.168.1.23:5060;branch=${branch()};rport`,
        'Max-Forwards: 70',
        `From: <sip:tcpcaller@${e.domain}>;tag=tc1`,
        `To: <sip:3002@${e.domain}>`,
        'Call-ID: tcp-rewrite-1',
        'CSeq: 1 INVITE',
        'Contact: <sip:tcpcaller@192.168.1.23:5060;transport=tcp>',
      ].join('\n'),
    );
    const inv = await callee.nextRequest('INVITE');
    assert.equal(uriOf(getHeader(inv.msg, 'contact')!), `sip:tcpcaller@${HOST}:${tcp.localPort};transport=tcp`);
    callee.reply(inv, 486, 'Busy Here', { toTag: rand(4) });
    const fin = await tcp.next<SipResponse>((m) => m.type === 'response' && m.status >= 200, 'final response');
    assert.equal(fin.msg.status, 486);
  });

  test('a public caller\'s Contact is left alone', async () => {
    const callee = await phone('callee 3', '192.168.1.24');
    await registerUdp(e, callee, '3003');
    const pubUa = await Ua.open('public');
    mine.push(pubUa);
    const c = invite(e, pubUa, '3003');
    const inv = await callee.nextRequest('INVITE');
    assert.equal(getHeader(inv.msg, 'call-id'), c.callId);
    assert.equal(uriOf(getHeader(inv.msg, 'contact')!), `sip:caller@${pubUa.hostport}`);
    callee.reply(inv, 486, 'Busy Here', { toTag: rand(4) });
    await finalOf(pubUa, c);
  });
});

async function waitFor(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

