/**
 * RedisLocationStore (src/store/redis.ts) against a real redis-server started for this file
 * (test/helpers/redis.ts): the shared LocationStore contract, what sharing one Redis between
 * nodes needs (two stores see each other's bindings, prefixes and databases isolate, purging
 * many AORs from two nodes at once counts each binding once), start-up and runtime connection
 * failures, that close() leaves nothing running, and two in-process edges serving one domain.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { parseConfigText } from '../../src/config/load.js';
import { Edge } from '../../src/edge.js';
import { silentLogger, type Logger } from '../../src/lib/log.js';
import { getHeaderValues } from '../../src/sip/headers.js';
import { openLocationStore } from '../../src/store/index.js';
import { parseRedisStoreUrl, RedisLocationStore, RedisStoreError } from '../../src/store/redis.js';
import type { Binding } from '../../src/store/types.js';
import { freePort, REPO_ROOT } from '../helpers/edge.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { HOST, Ua, digestAuthorization } from '../proxy/ua.js';
import { fullBinding, locationStoreContract, minimalBinding } from './contract.js';

const NOW = 1_700_000_000_000;

let server: RedisServer;
/** A plain client for looking at the keys the store wrote. */
let raw: Redis;
const stores: RedisLocationStore[] = [];
let prefixSeq = 0;

before(async () => {
  server = await startRedis();
  raw = new Redis({ host: server.host, port: server.port, lazyConnect: true, protocol: 2 });
  raw.on('error', () => undefined);
  await raw.connect();
});

after(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await raw?.quit();
  await server?.stop();
});

/** A fresh prefix, so each use starts from an empty key space. */
function freshPrefix(): string {
  return `t${process.pid}-${++prefixSeq}:`;
}

async function open(prefix: string, db = 0): Promise<RedisLocationStore> {
  const s = await RedisLocationStore.connect(`${server.url}/${db}?prefix=${encodeURIComponent(prefix)}`, { logger: silentLogger });
  stores.push(s);
  return s;
}

// The contract opens and closes its stores itself; one prefix per run, shared by reopen.
{
  let prefix = '';
  const url = (): string => `${server.url}/0?prefix=${encodeURIComponent(prefix)}`;
  locationStoreContract('RedisLocationStore', {
    open: async () => {
      prefix = freshPrefix();
      return RedisLocationStore.connect(url(), { logger: silentLogger });
    },
    reopen: async () => RedisLocationStore.connect(url(), { logger: silentLogger }),
  });
}

describe('RedisLocationStore URL', () => {
  it('parses host, port, db, prefix and credentials; display never holds the password', () => {
    const t = parseRedisStoreUrl('redis://alice:s%40cret@10.0.0.5:6380/2?prefix=edge%3A');
    assert.deepEqual(t, { host: '10.0.0.5', port: 6380, db: 2, prefix: 'edge:', username: 'alice', password: 's@cret', tls: false, display: 'redis://10.0.0.5:6380/2' });
    const d = parseRedisStoreUrl('rediss://redis.example.org');
    assert.equal(d.port, 6379);
    assert.equal(d.db, 0);
    assert.equal(d.prefix, 'sipedge:');
    assert.equal(d.tls, true);
    assert.equal(parseRedisStoreUrl('redis://[::1]:7000/').display, 'redis://[::1]:7000/0');
    assert.equal(parseRedisStoreUrl('redis://h?prefix=').prefix, '');
  });

  it('rejects a bad db path or an unknown parameter without echoing the password', () => {
    for (const [url, re] of [
      ['redis://:hunter2@h:6379/abc', /database number/],
      ['redis://:hunter2@h:6379/0?timeout=5', /unknown parameter "timeout"/],
      ['redis://:hunter2@h:99999', /not a valid/],
    ] as const) {
      assert.throws(
        () => parseRedisStoreUrl(url),
        (e: unknown) => e instanceof RedisStoreError && e.code === 'SIPEDGE_STORE_REDIS_URL' && re.test(e.message) && !e.message.includes('hunter2'),
        url,
      );
    }
  });
});

describe('RedisLocationStore on a shared Redis', () => {
  it('two store instances (two nodes) see each other’s bindings, writes and purges', async () => {
    const prefix = freshPrefix();
    const node1 = await open(prefix);
    const node2 = await open(prefix);
    const b = fullBinding({ aor: 'sip:1001@sip.example.org' });
    await node1.setBindings(b.aor, [b]);
    assert.deepEqual(await node2.getBindings(b.aor), [b]);
    assert.deepEqual(await node2.allBindings(), [b]);
    const b2 = minimalBinding({ aor: b.aor, contact: 'sip:1001@198.51.100.20', expiresAt: NOW + 1 });
    await node2.setBindings(b.aor, [b, b2]);
    assert.deepEqual(await node1.getBindings(b.aor), [b, b2]);
    assert.equal(await node1.purgeExpired(NOW + 1), 1);
    assert.deepEqual(await node2.getBindings(b.aor), [b]);
    await node2.setBindings(b.aor, []);
    assert.deepEqual(await node1.allBindings(), []);
  });

  it('uses one list per AOR and one expiry sorted set under the prefix', async () => {
    const prefix = freshPrefix();
    const s = await open(prefix);
    const aor = 'sip:layout@sip.example.org';
    const a = minimalBinding({ aor, contact: 'sip:layout@192.0.2.1', expiresAt: NOW + 5000 });
    const b = minimalBinding({ aor, contact: 'sip:layout@192.0.2.2', expiresAt: NOW + 1000 });
    await s.setBindings(aor, [a, b]);
    assert.equal(await raw.type(`${prefix}aor:${aor}`), 'list');
    assert.deepEqual((await raw.lrange(`${prefix}aor:${aor}`, 0, -1)).map((x) => (JSON.parse(x) as Binding).contact), [a.contact, b.contact]);
    assert.equal(await raw.zscore(`${prefix}expiry`, aor), String(NOW + 1000), 'score = earliest expiry');
    await s.setBindings(aor, []);
    assert.equal(await raw.exists(`${prefix}aor:${aor}`, `${prefix}expiry`), 0, 'nothing left behind');
  });

  it('prefixes and database numbers isolate stores (a prefix with glob characters matches only itself)', async () => {
    const a = await open('iso*:');
    const b = await open('iso-b:');
    const c = await open('iso*:', 1);
    const ba = minimalBinding({ aor: 'sip:x@sip.example.org', contact: 'sip:x@192.0.2.1', expiresAt: NOW - 1 });
    const bb = minimalBinding({ aor: 'sip:x@sip.example.org', contact: 'sip:x@192.0.2.2', expiresAt: NOW - 1 });
    await a.setBindings(ba.aor, [ba]);
    await b.setBindings(bb.aor, [bb]);
    assert.deepEqual(await a.getBindings(ba.aor), [ba]);
    assert.deepEqual(await b.getBindings(bb.aor), [bb]);
    assert.deepEqual(await c.getBindings(ba.aor), [], 'db 1 does not see db 0');
    assert.deepEqual(await a.allBindings(), [ba], '"iso*:" does not glob-match "iso-b:"');
    assert.deepEqual(await b.allBindings(), [bb]);
    assert.deepEqual(await c.allBindings(), []);
    assert.equal(await b.purgeExpired(NOW), 1);
    assert.deepEqual(await a.getBindings(ba.aor), [ba], 'purging one prefix leaves the other alone');
    assert.equal(await a.purgeExpired(NOW), 1);
  });

  it('purgeExpired across many AORs, from two nodes at once, counts each binding exactly once', async () => {
    const prefix = freshPrefix();
    const node1 = await open(prefix);
    const node2 = await open(prefix);
    const MIXED = 700; // one expired + one live binding each
    const DEAD = 300; // only expired bindings
    const writes: Promise<void>[] = [];
    for (let i = 0; i < MIXED; i++) {
      const aor = `sip:m${i}@sip.example.org`;
      writes.push(
        node1.setBindings(aor, [
          minimalBinding({ aor, contact: `sip:m${i}@192.0.2.1`, expiresAt: NOW - 1000 - i }),
          minimalBinding({ aor, contact: `sip:m${i}@192.0.2.2`, expiresAt: NOW + 60_000 + i }),
        ]),
      );
    }
    for (let i = 0; i < DEAD; i++) {
      const aor = `sip:d${i}@sip.example.org`;
      writes.push(
        node2.setBindings(aor, [
          minimalBinding({ aor, contact: `sip:d${i}@192.0.2.1`, expiresAt: NOW - i }),
          minimalBinding({ aor, contact: `sip:d${i}@192.0.2.2`, expiresAt: NOW }),
        ]),
      );
    }
    await Promise.all(writes);
    assert.equal(await raw.zcard(`${prefix}expiry`), MIXED + DEAD);
    const [r1, r2] = await Promise.all([node1.purgeExpired(NOW), node2.purgeExpired(NOW)]);
    assert.equal(r1 + r2, MIXED + 2 * DEAD, `removed ${r1} + ${r2}`);
    assert.equal(await node1.purgeExpired(NOW), 0);
    // Every AOR left is re-scored to its live binding; fully expired ones are gone.
    assert.equal(await raw.zcard(`${prefix}expiry`), MIXED);
    assert.equal(await raw.zcount(`${prefix}expiry`, '-inf', NOW), 0);
    assert.equal(await raw.zscore(`${prefix}expiry`, 'sip:m5@sip.example.org'), String(NOW + 60_005));
    const all = await node2.allBindings();
    assert.equal(all.length, MIXED);
    assert.ok(all.every((b) => b.expiresAt > NOW && b.contact.endsWith('@192.0.2.2')));
    assert.deepEqual(await node1.getBindings('sip:d7@sip.example.org'), []);
    // Live bindings expire later: a second purge takes them too.
    assert.equal(await node2.purgeExpired(NOW + 120_000), MIXED);
    assert.equal(await raw.zcard(`${prefix}expiry`), 0);
    assert.deepEqual(await node1.allBindings(), []);
  });

  it('the purge script keeps the other bindings byte for byte (large connection ids stay exact)', async () => {
    const s = await open(freshPrefix());
    const aor = 'sip:tcp@sip.example.org';
    const live = fullBinding({
      aor,
      received: { transport: 'tcp', address: '198.51.100.11', port: 51234, socketId: 'tcp:10.0.0.10:5060', connectionId: 1795244887000042 },
      q: 0.123456789,
    });
    const dead = minimalBinding({ aor, contact: 'sip:tcp@192.0.2.9', expiresAt: NOW - 1 });
    await s.setBindings(aor, [dead, live]);
    const before = await raw.lrange(`${s.prefix}aor:${aor}`, 0, -1);
    assert.equal(await s.purgeAor(aor, NOW), 1);
    assert.deepEqual(await raw.lrange(`${s.prefix}aor:${aor}`, 0, -1), [before[1]]);
    assert.deepEqual(await s.getBindings(aor), [live]);
  });

  it('a value that is not a binding rejects with SIPEDGE_STORE_REDIS_CORRUPT; the purge script drops it', async () => {
    const s = await open(freshPrefix());
    const aor = 'sip:junk@sip.example.org';
    await raw.rpush(`${s.prefix}aor:${aor}`, 'not json');
    await raw.zadd(`${s.prefix}expiry`, 0, aor);
    await assert.rejects(s.getBindings(aor), (e: unknown) => e instanceof RedisStoreError && e.code === 'SIPEDGE_STORE_REDIS_CORRUPT');
    assert.equal(await s.purgeExpired(NOW), 1);
    assert.deepEqual(await s.getBindings(aor), []);
  });

  it('sharedSecret: created once, the same for every node on the prefix, another per prefix', async () => {
    const prefix = freshPrefix();
    const [a, b, other] = [await open(prefix), await open(prefix), await open(freshPrefix())];
    const [s1, s2] = await Promise.all([a.sharedSecret('flowtoken'), b.sharedSecret('flowtoken')]);
    assert.equal(s1.length, 32);
    assert.deepEqual(s2, s1);
    assert.deepEqual(await a.sharedSecret('flowtoken'), s1, 'stable');
    assert.notDeepEqual(await other.sharedSecret('flowtoken'), s1);
    assert.equal(await raw.get(`${prefix}secret:flowtoken`), s1.toString('hex'));
  });

  it('rejects a binding without a finite expiresAt, and calls after close', async () => {
    const s = await open(freshPrefix());
    const bad = minimalBinding({ expiresAt: Number.NaN });
    await assert.rejects(s.setBindings(bad.aor, [bad]), /expiresAt/);
    await s.close();
    await s.close(); // idempotent
    await assert.rejects(s.getBindings(bad.aor), (e: unknown) => e instanceof RedisStoreError && e.code === 'SIPEDGE_STORE_CLOSED');
  });
});

describe('RedisLocationStore connection failures', () => {
  it('openLocationStore fails fast and clearly when nothing listens on the port', async () => {
    const port = await freePort({ tcp: true, udp: false });
    const t0 = Date.now();
    await assert.rejects(openLocationStore(`redis://:hunter2@127.0.0.1:${port}/0`, { logger: silentLogger }), (e: unknown) => {
      assert.ok(e instanceof RedisStoreError);
      assert.equal(e.code, 'SIPEDGE_STORE_REDIS_CONNECT');
      assert.match(e.message, new RegExp(`cannot connect to the Redis location store at redis://127\\.0\\.0\\.1:${port}/0: .*ECONNREFUSED`));
      assert.doesNotMatch(e.message, /hunter2/);
      return true;
    });
    assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
  });

  it('a server that accepts but never answers fails start-up after connectTimeoutMs', async () => {
    const sockets: net.Socket[] = [];
    const mute = net.createServer((c) => sockets.push(c));
    await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
    const port = (mute.address() as net.AddressInfo).port;
    try {
      const t0 = Date.now();
      await assert.rejects(
        openLocationStore(`redis://127.0.0.1:${port}`, { logger: silentLogger, connectTimeoutMs: 300 }),
        (e: unknown) => e instanceof RedisStoreError && e.code === 'SIPEDGE_STORE_REDIS_CONNECT' && e.message.includes(`redis://127.0.0.1:${port}/0`),
      );
      assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
    } finally {
      for (const c of sockets) c.destroy();
      await new Promise((resolve) => mute.close(resolve));
    }
  });

  it('a wrong password fails start-up with Redis’ reason; the right one connects', async () => {
    const own = await startRedis({ args: ['--requirepass', 'right-pass'], password: 'right-pass' });
    try {
      await assert.rejects(openLocationStore(`redis://:wrong-pass@127.0.0.1:${own.port}`, { logger: silentLogger }), (e: unknown) => {
        assert.ok(e instanceof RedisStoreError);
        assert.equal(e.code, 'SIPEDGE_STORE_REDIS_CONNECT');
        assert.match(e.message, /WRONGPASS|invalid username-password/);
        assert.doesNotMatch(e.message, /wrong-pass/);
        return true;
      });
      const s = await openLocationStore(`redis://:right-pass@127.0.0.1:${own.port}`, { logger: silentLogger });
      assert.deepEqual(await s.allBindings(), []);
      await s.close();
    } finally {
      await own.stop();
    }
  });

  it('openLocationStore(redis://…) returns a connected RedisLocationStore', async () => {
    const s = await openLocationStore(`${server.url}/3?prefix=${freshPrefix()}`, { logger: silentLogger });
    assert.ok(s instanceof RedisLocationStore);
    assert.deepEqual(await s.allBindings(), []);
    await s.close();
  });

  it('when Redis goes away, calls reject at once with a clear message; close() still resolves', async () => {
    const own = await startRedis();
    const errors: unknown[] = [];
    const logger = { error: (o: unknown) => errors.push(o), warn: () => undefined, info: () => undefined } as unknown as Logger;
    const s = await RedisLocationStore.connect(own.url, { logger });
    await s.setBindings('sip:gone@sip.example.org', [minimalBinding({ aor: 'sip:gone@sip.example.org' })]);
    await own.stop();
    const t0 = Date.now();
    await assert.rejects(s.getBindings('sip:gone@sip.example.org'), (e: unknown) => {
      assert.ok(e instanceof RedisStoreError);
      assert.equal(e.code, 'SIPEDGE_STORE_REDIS_IO');
      assert.match(e.message, new RegExp(`redis location store redis://127\\.0\\.0\\.1:${own.port}/0: getBindings failed`));
      return true;
    });
    assert.ok(Date.now() - t0 < 1000, `took ${Date.now() - t0} ms`);
    // The reconnect attempts fail; the 'error' events are logged, not left unhandled.
    for (let i = 0; i < 100 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(errors.length >= 1, 'connection error logged');
    assert.match(JSON.stringify(errors[0]), /ECONNREFUSED/);
    await s.close();
  });

  it('close() leaves no handles: a process that opens, uses and closes a store exits by itself', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sipedge-redis-exit-'));
    try {
      const script = path.join(dir, 'run.mts');
      const src = JSON.stringify(path.join(REPO_ROOT, 'src', 'store', 'index.ts'));
      fs.writeFileSync(
        script,
        `import { openLocationStore } from ${src};
const s = await openLocationStore(${JSON.stringify(`${server.url}/0?prefix=${freshPrefix()}`)});
await s.setBindings('sip:exit@sip.example.org', []);
await s.allBindings();
await s.purgeExpired(Date.now());
await s.close();
console.log('closed');
`,
      );
      const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | null>((resolve) => {
        const t = setTimeout(() => {
          child.kill('SIGKILL');
          resolve(null);
        }, 8000);
        child.once('exit', (c) => {
          clearTimeout(t);
          resolve(c);
        });
      });
      assert.equal(code, 0, `the process exits by itself after close() (output: ${out})`);
      assert.match(out, /closed/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('two edges sharing one Redis (two nodes serving one domain)', () => {
  const DOMAIN = 'sip.example.org';
  const USER = '1001';
  const PASSWORD = 'pw-1001-secret';
  const edges: Edge[] = [];
  const uas: Ua[] = [];
  after(async () => {
    await Promise.all(uas.map((u) => u.close()));
    for (const e of edges) await e.close();
  });

  async function startEdge(url: string): Promise<{ edge: Edge; port: number }> {
    const r = parseConfigText(`
listen: ["udp:${HOST}:0"]
store: "${url}"
api: { enabled: false }
media: { relay: never }
nat: { keepalive: { interval: 0 } }
registrar: { domains: [${DOMAIN}] }
users:
  - { username: "${USER}", password: "${PASSWORD}" }
`);
    if (!r.ok) throw new Error('config: ' + JSON.stringify(r.errors));
    const edge = await Edge.start(r.config, { logger: silentLogger });
    edges.push(edge);
    return { edge, port: edge.transport.sockets()[0].boundPort };
  }

  /** REGISTER → 401 → REGISTER with digest credentials, through the edge on `port`. */
  async function register(u: Ua, port: number, expires: number, cseq: number): Promise<number> {
    const text = (n: number, auth?: string): string =>
      [
        `REGISTER sip:${DOMAIN} SIP/2.0`,
        `Via: ${u.via()}`,
        'Max-Forwards: 70',
        `From: <sip:${USER}@${DOMAIN}>;tag=reg${u.port}`,
        `To: <sip:${USER}@${DOMAIN}>`,
        `Call-ID: redis-e2e-${u.port}`,
        `CSeq: ${n} REGISTER`,
        `Contact: <${u.contact(USER)}>`,
        `Expires: ${expires}`,
        auth ? `Authorization: ${auth}` : '',
      ].join('\n');
    u.send(text(cseq), port);
    const ch = await u.nextFinal('REGISTER');
    assert.equal(ch.msg.status, 401);
    const auth = digestAuthorization({ challenges: getHeaderValues(ch.msg, 'www-authenticate'), method: 'REGISTER', uri: `sip:${DOMAIN}`, username: USER, password: PASSWORD });
    u.send(text(cseq + 1, auth), port);
    return (await u.nextFinal('REGISTER')).msg.status;
  }

  it('a UA registers through edge 1 and edge 2 finds the binding; unregistering through edge 2 is seen by edge 1', async () => {
    const url = `${server.url}/0?prefix=${freshPrefix()}`;
    const e1 = await startEdge(url);
    const e2 = await startEdge(url);
    const aor = `sip:${USER}@${DOMAIN}`;
    const u = await Ua.open('phone');
    uas.push(u);

    assert.equal(await register(u, e1.port, 600, 1), 200);
    const found = await e2.edge.registrar.lookup(aor);
    assert.equal(found.length, 1);
    assert.equal(found[0].contact, u.contact(USER));
    assert.equal(found[0].received.address, HOST);
    assert.equal(found[0].received.port, u.port);
    assert.ok(found[0].expiresAt > Date.now() + 500_000);
    assert.deepEqual((await e2.edge.peers()).map((p) => p.contact), [u.contact(USER)]);

    assert.equal(await register(u, e2.port, 0, 3), 200);
    assert.deepEqual(await e1.edge.registrar.lookup(aor), []);
  });
});
