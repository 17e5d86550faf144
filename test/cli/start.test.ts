import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runStart, type StartDeps, type StartEdge } from '../../src/cli/commands/start.js';
import type { CliIo } from '../../src/cli/io.js';
import type { SipedgeConfig } from '../../src/config/types.js';
import type { EdgeApi } from '../../src/edge-api.js';
import { silentLogger } from '../../src/lib/log.js';
import { fakeEdge, type FakeEdge } from './fake-edge.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sipedge-start-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function captureIo(): CliIo & { outText: string; errText: string } {
  const io = {
    outText: '',
    errText: '',
    out: (s: string) => void (io.outText += s),
    err: (s: string) => void (io.errText += s),
  };
  return io;
}

interface Harness {
  signals: EventEmitter;
  io: ReturnType<typeof captureIo>;
  started: Array<{ config: SipedgeConfig; opts: Parameters<StartEdge>[1] }>;
  ready: Promise<{ edge: EdgeApi; api?: { address: string; port: number } }>;
  deps: StartDeps;
}

function harness(edge: EdgeApi | (() => Promise<EdgeApi>)): Harness {
  const signals = new EventEmitter();
  const io = captureIo();
  const started: Harness['started'] = [];
  let markReady!: (v: { edge: EdgeApi; api?: { address: string; port: number } }) => void;
  const ready = new Promise<{ edge: EdgeApi; api?: { address: string; port: number } }>((r) => (markReady = r));
  const startEdge: StartEdge = async (config, opts) => {
    started.push({ config, opts });
    return typeof edge === 'function' ? edge() : edge;
  };
  return {
    signals,
    io,
    started,
    ready,
    deps: { io, signals, importEdge: async () => startEdge, createLogger: () => silentLogger, onReady: markReady },
  };
}

async function config(name: string, text: string): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, text);
  return p;
}

describe('sipedge start (in-process, fake edge)', () => {
  it('starts the edge and the API, reloads on SIGHUP, stops cleanly on SIGTERM', async () => {
    const cfg = await config('ok.yaml', 'listen: [udp:127.0.0.1:0]\napi: { listen: 127.0.0.1:0 }\n');
    const edge: FakeEdge = fakeEdge();
    const h = harness(edge);
    const exit = runStart({ config: cfg }, h.deps);
    const { api } = await h.ready;

    assert.equal(h.started.length, 1);
    assert.equal(h.started[0].opts.configPath, cfg);
    assert.ok(h.started[0].opts.metrics, 'the edge receives the metric handles');
    assert.deepEqual(h.started[0].config.listen, ['udp:127.0.0.1:0']);

    assert.ok(api);
    const base = `http://127.0.0.1:${api.port}`;
    assert.deepEqual(await (await fetch(`${base}/healthz`)).json(), { status: 'ok' });
    assert.match(await (await fetch(`${base}/metrics`)).text(), /sip_messages_received_total/);
    assert.equal(((await (await fetch(`${base}/api/peers`)).json()) as unknown[]).length, 2);

    h.signals.emit('SIGHUP');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(edge.reloads, 1);

    h.signals.emit('SIGTERM');
    assert.equal(await exit, 0);
    assert.equal(edge.closes, 1);
    await assert.rejects(fetch(`${base}/healthz`), 'the API is closed');
    assert.equal(h.signals.listenerCount('SIGTERM') + h.signals.listenerCount('SIGINT') + h.signals.listenerCount('SIGHUP'), 0);
  });

  it('a second signal while closing forces exit 1', async () => {
    const cfg = await config('force.yaml', 'api: { enabled: false }\n');
    const edge = fakeEdge({ close: () => new Promise<void>(() => {}) });
    const h = harness(edge);
    const exit = runStart({ config: cfg }, h.deps);
    const { api } = await h.ready;
    assert.equal(api, undefined, 'api.enabled: false starts no API');
    h.signals.emit('SIGINT');
    h.signals.emit('SIGINT');
    assert.equal(await exit, 1);
  });

  it('a refused SIGHUP reload keeps running', async () => {
    const cfg = await config('refused.yaml', 'api: { enabled: false }\n');
    const edge = fakeEdge();
    edge.reloadResult = { ok: false, errors: ['bad'] };
    const h = harness(edge);
    const exit = runStart({ config: cfg }, h.deps);
    await h.ready;
    h.signals.emit('SIGHUP');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(edge.reloads, 1);
    assert.equal(edge.closes, 0);
    h.signals.emit('SIGTERM');
    assert.equal(await exit, 0);
  });

  it('an edge that fails to start exits 1', async () => {
    const cfg = await config('fail.yaml', 'api: { enabled: false }\n');
    const h = harness(async () => {
      throw new Error('EADDRINUSE udp:127.0.0.1:5060');
    });
    assert.equal(await runStart({ config: cfg }, h.deps), 1);
    assert.match(h.io.errText, /failed to start: EADDRINUSE/);
  });

  it('an edge module that cannot be loaded exits 1', async () => {
    const cfg = await config('noedge.yaml', '');
    const h = harness(fakeEdge());
    h.deps.importEdge = async () => {
      throw new Error('Cannot find module edge.js');
    };
    assert.equal(await runStart({ config: cfg }, h.deps), 1);
    assert.match(h.io.errText, /cannot load the edge module/);
  });

  describe('when the API port is taken', () => {
    let blocker: Server;
    let port: number;
    before(async () => {
      blocker = createServer();
      await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
      port = (blocker.address() as { port: number }).port;
    });
    after(async () => {
      await new Promise((r) => blocker.close(r));
    });

    it('closes the edge again and exits 1', async () => {
      const cfg = await config('busy.yaml', `api: { listen: 127.0.0.1:${port} }\n`);
      const edge = fakeEdge();
      const h = harness(edge);
      assert.equal(await runStart({ config: cfg }, h.deps), 1);
      assert.equal(edge.closes, 1);
      assert.match(h.io.errText, /admin API failed to start on 127\.0\.0\.1:\d+/);
    });
  });

  it('an invalid config exits 2 and never loads the edge', async () => {
    const cfg = await config('invalid.yaml', 'listen: [bogus]\n');
    const h = harness(fakeEdge());
    let imported = false;
    h.deps.importEdge = async () => {
      imported = true;
      throw new Error('unreachable');
    };
    assert.equal(await runStart({ config: cfg }, h.deps), 2);
    assert.equal(imported, false);
    assert.match(h.io.errText, /listen\.0: /);
  });
});
