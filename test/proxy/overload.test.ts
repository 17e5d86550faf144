/**
 * Load shedding through the real edge (`Edge.start` in process, UDP on 127.0.0.1:0, memory
 * store): the event loop is blocked synchronously so the overload detector (src/lib/overload.ts,
 * on the SystemClock) sees a late timer; while overloaded, new out-of-dialog INVITE and REGISTER
 * get `503 Service Unavailable` + `Retry-After` (RFC 3261 §21.5.4, §20.33), in-dialog requests,
 * BYE and OPTIONS do not; after recovery REGISTER is challenged again. `maxLoopDelay: 0` never sheds.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Edge } from '../../src/edge.js';
import { parseConfigText } from '../../src/config/index.js';
import { silentLogger } from '../../src/lib/log.js';
import { createMetrics, type SipedgeMetrics } from '../../src/api/metrics.js';
import { getHeader } from '../../src/sip/headers.js';
import type { SipResponse } from '../../src/sip/message.js';
import { Ua, branch, rand } from './ua.js';

function config(overload: string) {
  const r = parseConfigText(`
listen: ["udp:127.0.0.1:0"]
store: "memory:"
api: { enabled: false }
users: [{ username: "1001", password: "pw-1001-secret" }, { username: "1002", password: "pw-1002-secret" }]
overload: ${overload}
`);
  if (!r.ok) assert.fail(JSON.stringify(r.errors));
  return r.config;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Blocks this process's event loop for `ms` (what a slow synchronous handler does to the edge). */
function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* spin */
  }
}

/** Polls until `cond()` holds; fails after `timeoutMs`. */
async function until(cond: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for: ${what}`);
    await sleep(2);
  }
}

function portOf(edge: Edge): number {
  return edge.transport.sockets()[0].boundPort;
}

function invite(ua: Ua, domain: string, opts: { toTag?: string; callId?: string } = {}): string {
  const callId = opts.callId ?? rand();
  return `INVITE sip:1002@${domain} SIP/2.0
Via: ${ua.via(branch())}
Max-Forwards: 70
From: <sip:1001@${domain}>;tag=${rand()}
To: <sip:1002@${domain}>${opts.toTag ? `;tag=${opts.toTag}` : ''}
Call-ID: ${callId}
CSeq: 1 INVITE
Contact: <${ua.contact('1001')}>`;
}

function register(ua: Ua, domain: string): string {
  return `REGISTER sip:${domain} SIP/2.0
Via: ${ua.via(branch())}
Max-Forwards: 70
From: <sip:1001@${domain}>;tag=${rand()}
To: <sip:1001@${domain}>
Call-ID: ${rand()}
CSeq: 1 REGISTER
Contact: <${ua.contact('1001')}>
Expires: 600`;
}

function bye(ua: Ua, domain: string): string {
  return `BYE sip:1002@${domain} SIP/2.0
Via: ${ua.via(branch())}
Max-Forwards: 70
From: <sip:1001@${domain}>;tag=${rand()}
To: <sip:1002@${domain}>;tag=${rand()}
Call-ID: ${rand()}
CSeq: 2 BYE`;
}

function options(ua: Ua, domain: string): string {
  return `OPTIONS sip:${domain} SIP/2.0
Via: ${ua.via(branch())}
Max-Forwards: 70
From: <sip:1001@${domain}>;tag=${rand()}
To: <sip:${domain}>
Call-ID: ${rand()}
CSeq: 1 OPTIONS`;
}

describe('overload: 503 + Retry-After while the event loop lags', () => {
  let edge: Edge;
  let metrics: SipedgeMetrics;
  let ua: Ua;
  let domain: string;

  before(async () => {
    metrics = createMetrics({ defaultMetrics: false });
    edge = await Edge.start(config('{ maxLoopDelay: 50, retryAfter: 7 }'), { logger: silentLogger, metrics });
    domain = `127.0.0.1:${portOf(edge)}`;
    ua = await Ua.open('phone');
  });

  after(async () => {
    await ua?.close();
    await edge?.close();
  });

  test('not overloaded at rest: INVITE gets 407, REGISTER 401', async () => {
    assert.ok(edge.overload, 'the detector runs');
    assert.equal(edge.overload.overloaded, false);
    ua.send(invite(ua, domain), portOf(edge));
    assert.equal((await ua.nextFinal('INVITE')).msg.status, 407);
    ua.send(register(ua, domain), portOf(edge));
    assert.equal((await ua.nextFinal('REGISTER')).msg.status, 401);
  });

  test('a blocked loop sheds new INVITE and REGISTER with 503 + Retry-After; BYE, in-dialog and OPTIONS pass', async () => {
    const overload = edge.overload!;
    busyWait(300);
    await until(() => overload.overloaded, 'overloaded after a 300 ms stall', 500);
    const newCall = rand();
    const reinvite = rand();
    ua.send(invite(ua, domain, { callId: newCall }), portOf(edge));
    ua.send(register(ua, domain), portOf(edge));
    ua.send(invite(ua, domain, { toTag: rand(), callId: reinvite }), portOf(edge)); // in-dialog re-INVITE
    ua.send(bye(ua, domain), portOf(edge));
    ua.send(options(ua, domain), portOf(edge));
    const finalFor = (callId: string) => ua.next<SipResponse>((m) => m.type === 'response' && m.status >= 200 && getHeader(m, 'call-id') === callId, 2000, `final for ${callId}`);
    const inv = await finalFor(newCall);
    const reg = await ua.nextFinal('REGISTER');
    const reinv = await finalFor(reinvite);
    const by = await ua.nextFinal('BYE');
    const opt = await ua.nextFinal('OPTIONS');
    assert.equal(inv.msg.status, 503);
    assert.equal(inv.msg.reason, 'Service Unavailable');
    assert.equal(getHeader(inv.msg, 'retry-after'), '7');
    assert.equal(reg.msg.status, 503);
    assert.equal(getHeader(reg.msg, 'retry-after'), '7');
    // In-dialog (To tag) and BYE finish admitted calls: processed (challenged: no flow token of ours), never 503.
    assert.notEqual(reinv.msg.status, 503);
    assert.equal(getHeader(reinv.msg, 'retry-after'), undefined);
    assert.notEqual(by.msg.status, 503);
    assert.equal(opt.msg.status, 200);
    assert.equal(edge.proxy.stats.overloadRejected, 2);
    assert.equal(edge.proxy.stats.rejected['503'], 2);
    assert.match(await metrics.registry.metrics(), /^sip_overload_rejected_total 2$/m);
    assert.equal(overload.episodes, 1);
  });

  test('after recovery REGISTER is challenged again (401), INVITE 407', async () => {
    const overload = edge.overload!;
    await until(() => !overload.overloaded, 'recovered', 2000);
    ua.clear();
    ua.send(register(ua, domain), portOf(edge));
    assert.equal((await ua.nextFinal('REGISTER')).msg.status, 401);
    ua.send(invite(ua, domain), portOf(edge));
    assert.equal((await ua.nextResponse('INVITE', (s) => s >= 200)).msg.status, 407);
    assert.equal(edge.proxy.stats.overloadRejected, 2);
  });
});

describe('overload: maxLoopDelay 0 disables shedding', () => {
  let edge: Edge;
  let ua: Ua;

  before(async () => {
    edge = await Edge.start(config('{ maxLoopDelay: 0 }'), { logger: silentLogger });
    ua = await Ua.open('phone');
  });

  after(async () => {
    await ua?.close();
    await edge?.close();
  });

  test('no detector; a blocked loop still gets 407 / 401, never 503', async () => {
    assert.equal(edge.overload, undefined);
    const domain = `127.0.0.1:${portOf(edge)}`;
    for (let i = 0; i < 2; i++) {
      busyWait(300);
      ua.send(invite(ua, domain), portOf(edge));
      ua.send(register(ua, domain), portOf(edge));
      assert.equal((await ua.nextResponse('INVITE', (s) => s >= 200)).msg.status, 407);
      assert.equal((await ua.nextFinal('REGISTER')).msg.status, 401);
      await sleep(20);
    }
    assert.equal(edge.proxy.stats.overloadRejected, 0);
    assert.equal(edge.proxy.stats.rejected['503'], undefined);
  });
});
