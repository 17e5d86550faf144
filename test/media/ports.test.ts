import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isPortConflict, pickIndex, PortPool, rtpPortsOf } from '../../src/media/ports.js';

/** A bind callback that always succeeds (no sockets). */
const okBind = (port: number): Promise<number> => Promise.resolve(port);

function conflict(): Error {
  return Object.assign(new Error('bind EADDRINUSE'), { code: 'EADDRINUSE' });
}

/** Deterministic random source (LCG). */
function seeded(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  };
}

describe('port pool', () => {
  it('pairs: even RTP ports whose RTP+1 is inside the range', () => {
    assert.deepEqual(rtpPortsOf({ low: 10000, high: 10007 }), [10000, 10002, 10004, 10006]);
    assert.deepEqual(rtpPortsOf({ low: 10001, high: 10006 }), [10002, 10004], 'odd low rounds up, 10006+1 is outside');
    assert.equal(rtpPortsOf({ low: 10000, high: 10999 }).length, 500);
    assert.deepEqual(rtpPortsOf({ low: 10000, high: 10000 }), []);
  });

  it('hands out even RTP ports (RTCP = RTP+1 stays inside), each once', async () => {
    const pool = new PortPool({ low: 10000, high: 10099 });
    const seen = new Set<number>();
    for (let i = 0; i < 50; i++) {
      const a = await pool.allocate(okBind);
      assert.ok(a.ok);
      assert.equal(a.port % 2, 0);
      assert.ok(a.port >= 10000 && a.port + 1 <= 10099);
      assert.equal(a.value, a.port);
      assert.ok(!seen.has(a.port), 'not handed out twice');
      seen.add(a.port);
    }
    assert.equal(pool.inUse, 50);
    assert.equal(pool.capacity, 50);
  });

  it('chooses ports at random within the range, not sequentially', async () => {
    const pool = new PortPool({ low: 10000, high: 10999 });
    const ports: number[] = [];
    for (let i = 0; i < 20; i++) {
      const a = await pool.allocate(okBind);
      assert.ok(a.ok);
      ports.push(a.port);
    }
    const ascendingSteps = ports.slice(1).filter((p, i) => p === ports[i] + 2).length;
    assert.ok(ascendingSteps < 5, `too sequential: ${ports.join(',')}`);
    const spread = Math.max(...ports) - Math.min(...ports);
    assert.ok(spread > 200, `spread over the range: ${ports.join(',')}`);
  });

  it('uses the injected random source', async () => {
    const a = new PortPool({ low: 10000, high: 10999 }, seeded(42));
    const b = new PortPool({ low: 10000, high: 10999 }, seeded(42));
    for (let i = 0; i < 10; i++) {
      const x = await a.allocate(okBind);
      const y = await b.allocate(okBind);
      assert.ok(x.ok && y.ok);
      assert.equal(x.port, y.port);
    }
    assert.equal(pickIndex(10, () => 0.999999999), 9);
    assert.equal(pickIndex(10, () => 1), 9);
    assert.equal(pickIndex(10, () => 0), 0);
  });

  it('exhaustion → NO_PORTS, counted; release makes the pair available again', async () => {
    const pool = new PortPool({ low: 10000, high: 10003 });
    const a = await pool.allocate(okBind);
    const b = await pool.allocate(okBind);
    assert.ok(a.ok && b.ok);
    const c = await pool.allocate(okBind);
    assert.equal(c.ok, false);
    assert.equal(!c.ok && c.code, 'NO_PORTS');
    assert.match(!c.ok ? c.detail : '', /10000-10003 exhausted/);
    assert.equal(pool.noPorts, 1);
    pool.release(a.port);
    pool.release(a.port); // idempotent
    assert.equal(pool.inUse, 1);
    const d = await pool.allocate(okBind);
    assert.ok(d.ok);
    assert.equal(d.port, a.port);
  });

  it('skips ports something else has bound, and keeps them for later', async () => {
    const pool = new PortPool({ low: 10000, high: 10007 });
    const taken = new Set([10000, 10002, 10004]);
    const tried: number[] = [];
    const bind = (p: number): Promise<number> => {
      tried.push(p);
      return taken.has(p) ? Promise.reject(conflict()) : Promise.resolve(p);
    };
    const a = await pool.allocate(bind);
    assert.ok(a.ok);
    assert.equal(a.port, 10006);
    assert.equal(pool.bindFailures, tried.length - 1);
    // All the others are taken → NO_PORTS, and the skipped ones are still in the pool.
    const b = await pool.allocate(bind);
    assert.equal(b.ok, false);
    assert.equal(pool.noPorts, 1);
    taken.clear();
    const c = await pool.allocate(bind);
    assert.ok(c.ok);
  });

  it('rethrows bind errors that are not conflicts and keeps the port', async () => {
    const pool = new PortPool({ low: 10000, high: 10001 });
    await assert.rejects(
      pool.allocate(() => Promise.reject(Object.assign(new Error('EADDRNOTAVAIL'), { code: 'EADDRNOTAVAIL' }))),
      /EADDRNOTAVAIL/,
    );
    assert.equal(pool.inUse, 0);
    assert.ok((await pool.allocate(okBind)).ok);
  });

  it('concurrent allocations never share a port', async () => {
    const pool = new PortPool({ low: 10000, high: 10019 });
    const slowBind = (p: number): Promise<number> => new Promise((r) => setTimeout(() => r(p), 1));
    const all = await Promise.all(Array.from({ length: 12 }, () => pool.allocate(slowBind)));
    const ok = all.filter((x) => x.ok).map((x) => (x.ok ? x.port : 0));
    assert.equal(ok.length, 10);
    assert.equal(new Set(ok).size, 10);
    assert.equal(all.filter((x) => !x.ok).length, 2);
  });

  it('isPortConflict', () => {
    assert.equal(isPortConflict(conflict()), true);
    assert.equal(isPortConflict(Object.assign(new Error(), { code: 'EACCES' })), true);
    assert.equal(isPortConflict(new Error('x')), false);
    assert.equal(isPortConflict(null), false);
  });
});
