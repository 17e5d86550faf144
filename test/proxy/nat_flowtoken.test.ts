/**
 * Flow tokens (src/proxy/flowtoken.ts): AES-256-GCM sealed, so they neither reveal our private
 * socket addresses on the public side nor can be forged; and the persistent secret next to the
 * SQLite file (src/proxy/flowtoken_secret.ts) that lets tokens survive a restart — also
 * through a real restart of an in-process edge.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { FlowTokenCodec, type FlowToken } from '../../src/proxy/flowtoken.js';
import { flowTokenSecretPath, loadFlowTokenSecret } from '../../src/proxy/flowtoken_secret.js';
import { Edge } from '../../src/edge.js';
import { parseConfigText } from '../../src/config/index.js';
import { silentLogger } from '../../src/lib/log.js';
import { getHeader, getHeaderValues } from '../../src/sip/headers.js';
import { HOST, Ua, branch } from './ua.js';

const TOKEN: FlowToken = {
  ftag: '15602SIPpTag001',
  a: { transport: 'udp', address: '198.51.100.12', port: 40123, socketId: 'udp:10.0.0.10:5060' },
  b: { transport: 'tcp', address: '198.51.100.11', port: 51234, socketId: 'tcp:10.0.0.10:5060', connectionId: 1795244887000042 },
};

describe('flow token codec', () => {
  const secret = Buffer.alloc(32, 7);

  it('round-trips both flows and the From tag', () => {
    const c = new FlowTokenCodec(secret);
    const t = c.encode(TOKEN);
    assert.match(t, /^[A-Za-z0-9_-]+$/, 'unreserved URI characters only');
    assert.ok(t.length < 300, `short enough for a Record-Route user part (${t.length})`);
    assert.deepEqual(c.decode(t), TOKEN);
    assert.deepEqual(new FlowTokenCodec(Buffer.from(secret)).decode(t), TOKEN, 'same secret, another codec (a restarted edge)');
  });

  it('reveals no address, port or socket name in clear', () => {
    const t = new FlowTokenCodec(secret).encode(TOKEN);
    const raw = Buffer.from(t, 'base64url').toString('latin1');
    for (const s of ['10.0.0.10', '198.51.100', 'udp:', 'tcp:', '40123', 'SIPpTag']) assert.ok(!raw.includes(s) && !t.includes(s), `"${s}" is not visible`);
  });

  it('is different every time (random IV)', () => {
    const c = new FlowTokenCodec(secret);
    assert.notEqual(c.encode(TOKEN), c.encode(TOKEN));
  });

  it('decodes alike from its cache and from scratch, beyond the cache size', () => {
    const c = new FlowTokenCodec(secret);
    const fresh = new FlowTokenCodec(Buffer.from(secret));
    const made: Array<[string, FlowToken]> = [];
    // 5,000 tokens: more than the 4,096 the codec remembers, so the oldest were evicted.
    for (let i = 0; i < 5000; i++) {
      const t: FlowToken = { ...TOKEN, ftag: `tag${i}`, a: { ...TOKEN.a, port: 1024 + i } };
      made.push([c.encode(t), t]);
    }
    for (const [value, t] of [made[0], made[1], made[4000], made[4999]]) {
      assert.deepEqual(c.decode(value), t, 'same codec (cached or evicted)');
      assert.deepEqual(c.decode(value), t, 'same codec, again');
      assert.deepEqual(fresh.decode(value), t, 'another codec: decrypted');
    }
    const [value] = made[4999];
    const raw = Buffer.from(value, 'base64url');
    raw[raw.length - 1] ^= 0x01;
    assert.equal(c.decode(raw.toString('base64url')), undefined, 'a tampered copy of a cached token');
  });

  it('rejects every tampered octet, another secret, and junk', () => {
    const c = new FlowTokenCodec(secret);
    const raw = Buffer.from(c.encode(TOKEN), 'base64url');
    for (let i = 0; i < raw.length; i++) {
      const x = Buffer.from(raw);
      x[i] ^= 0x01;
      assert.equal(c.decode(x.toString('base64url')), undefined, `octet ${i} flipped`);
    }
    assert.equal(new FlowTokenCodec(Buffer.alloc(32, 8)).decode(raw.toString('base64url')), undefined, 'another secret');
    for (const junk of ['', '1001', 'a'.repeat(40), 'not a token!', 'A'.repeat(2000)]) assert.equal(c.decode(junk), undefined, junk.slice(0, 20));
  });

  it('refuses a secret shorter than 16 octets', () => {
    assert.throws(() => new FlowTokenCodec(Buffer.alloc(8)));
  });
});

describe('persistent flow token secret', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sipedge-flowkey-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('lives next to the SQLite file: created once (mode 0600), then reused', () => {
    const db = path.join(dir, 'var', 'sipedge.db');
    const store = `sqlite:${db}`;
    assert.equal(flowTokenSecretPath(store), `${db}.flowtoken.key`);
    const first = loadFlowTokenSecret(store);
    assert.equal(first.source, 'created');
    assert.equal(first.secret.length, 32);
    assert.equal(fs.statSync(`${db}.flowtoken.key`).mode & 0o777, 0o600);
    const second = loadFlowTokenSecret(store);
    assert.equal(second.source, 'file');
    assert.deepEqual(second.secret, first.secret);
    // A token made before a restart decodes after it.
    const t = new FlowTokenCodec(first.secret).encode(TOKEN);
    assert.deepEqual(new FlowTokenCodec(second.secret).decode(t), TOKEN);
    assert.equal(flowTokenSecretPath(`sqlite://${db}`), `${db}.flowtoken.key`);
  });

  it('memory stores get a per-process secret', () => {
    for (const s of ['memory:', 'sqlite::memory:']) {
      assert.equal(flowTokenSecretPath(s), undefined);
      const a = loadFlowTokenSecret(s);
      assert.equal(a.source, 'process');
      assert.notDeepEqual(a.secret, loadFlowTokenSecret(s).secret);
    }
  });

  it('a malformed file is reported and left alone', () => {
    const db = path.join(dir, 'bad.db');
    fs.writeFileSync(`${db}.flowtoken.key`, 'not hex\n');
    const warnings: unknown[] = [];
    const log = { warn: (o: unknown) => warnings.push(o) } as unknown as Parameters<typeof loadFlowTokenSecret>[1];
    const r = loadFlowTokenSecret(`sqlite:${db}`, log);
    assert.equal(r.source, 'process');
    assert.equal(warnings.length, 1);
    assert.equal(fs.readFileSync(`${db}.flowtoken.key`, 'utf8'), 'not hex\n');
  });
});

describe('flow tokens survive an edge restart (SQLite store, secret file next to it)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sipedge-flowkey-restart-'));
  const uas: Ua[] = [];
  let edge: Edge | undefined;
  after(async () => {
    await Promise.all(uas.map((u) => u.close()));
    await edge?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a BYE after the restart still reaches the NATed callee through the token in Record-Route', async () => {
    const port = await freeUdpPort();
    const domain = `${HOST}:${port}`;
    const r = parseConfigText(`
listen: ["udp:${HOST}:${port}"]
store: "sqlite:${path.join(dir, 'sipedge.db')}"
api: { enabled: false }
media: { relay: never }
nat: { keepalive: { interval: 0 } }
`);
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    edge = await Edge.start(r.config, { logger: silentLogger });
    const callee = await Ua.open('NATed callee');
    const caller = await Ua.open('caller');
    uas.push(callee, caller);
    // The callee claims a private address: only its flow (the token) reaches it.
    callee.send(
      [
        `REGISTER sip:${domain} SIP/2.0`,
        `Via: SIP/2.0/UDP 192.168.1.30:5060;branch=${branch()};rport`,
        'Max-Forwards: 70',
        `From: <sip:4001@${domain}>;tag=r1`,
        `To: <sip:4001@${domain}>`,
        'Call-ID: restart-reg',
        'CSeq: 1 REGISTER',
        'Contact: <sip:4001@192.168.1.30:5060>',
        'Expires: 600',
      ].join('\n'),
      port,
    );
    assert.equal((await callee.nextFinal('REGISTER')).msg.status, 200);
    const from = `<sip:caller@${domain}>;tag=ct1`;
    caller.send(
      [`INVITE sip:4001@${domain} SIP/2.0`, `Via: ${caller.via()}`, 'Max-Forwards: 70', `From: ${from}`, `To: <sip:4001@${domain}>`, 'Call-ID: restart-call', 'CSeq: 1 INVITE', `Contact: <${caller.contact('caller')}>`].join('\n'),
      port,
    );
    const inv = await callee.nextRequest('INVITE');
    callee.reply(inv, 200, 'OK', { toTag: 'ce1', headers: ['Contact: <sip:4001@192.168.1.30:5060>'] });
    const ok = await caller.nextFinal('INVITE');
    assert.equal(ok.msg.status, 200);
    const routes = getHeaderValues(ok.msg, 'record-route').reverse();
    assert.ok(routes.length > 0, 'Record-Route');

    await edge.close();
    edge = undefined;
    const again = parseConfigText(`
listen: ["udp:${HOST}:${port}"]
store: "sqlite:${path.join(dir, 'sipedge.db')}"
api: { enabled: false }
media: { relay: never }
nat: { keepalive: { interval: 0 } }
`);
    if (!again.ok) throw new Error(JSON.stringify(again.errors));
    edge = await Edge.start(again.config, { logger: silentLogger });

    caller.send(
      [
        `BYE sip:4001@192.168.1.30:5060 SIP/2.0`,
        `Via: ${caller.via()}`,
        ...routes.map((x) => `Route: ${x}`),
        'Max-Forwards: 70',
        `From: ${from}`,
        `To: <sip:4001@${domain}>;tag=ce1`,
        'Call-ID: restart-call',
        'CSeq: 2 BYE',
      ].join('\n'),
      port,
    );
    const bye = await callee.nextRequest('BYE', 3000);
    assert.equal(getHeader(bye.msg, 'call-id'), 'restart-call');
    callee.reply(bye, 200, 'OK');
    assert.equal((await caller.nextFinal('BYE')).msg.status, 200);
  });
});

function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(0, HOST, () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}
