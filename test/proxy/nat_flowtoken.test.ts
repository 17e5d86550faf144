/**
 * Flow tokens (src/proxy/flowtoken.ts): AES-256-GCM sealed, so they neither reveal our private
 * socket addresses on the public side nor can be forged; and the persistent secret next to the
 * SQLite file (src/proxy/flowtoken_secret.ts) that lets tokens survive a restart.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { FlowTokenCodec, type FlowToken } from '../../src/proxy/flowtoken.js';
import { flowTokenSecretPath, loadFlowTokenSecret } from '../../src/proxy/flowtoken_secret.js';

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
