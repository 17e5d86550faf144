import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createApiServer, type ApiServer } from '../../src/api/server.js';
import { createMetrics, messageKind, statusClass } from '../../src/api/metrics.js';
import { CALLS, PEERS, fakeEdge, type FakeEdge } from './fake-edge.js';

describe('admin API server', () => {
  let edge: FakeEdge;
  let server: ApiServer;
  let base: string;
  const metrics = createMetrics();

  before(async () => {
    edge = fakeEdge({
      settings: () => ({ publicAddress: '203.0.113.10' }),
    });
    server = await createApiServer(edge, { listen: '127.0.0.1:0', registry: metrics.registry });
    assert.equal(server.address.address, '127.0.0.1');
    assert.ok(server.address.port > 0);
    base = `http://127.0.0.1:${server.address.port}`;
  });
  after(async () => {
    await server.close();
  });

  it('GET /api/settings, /api/peers, /api/calls, /healthz', async () => {
    assert.deepEqual(await (await fetch(`${base}/api/settings`)).json(), { publicAddress: '203.0.113.10' });
    assert.deepEqual(await (await fetch(`${base}/api/peers`)).json(), PEERS);
    assert.deepEqual(await (await fetch(`${base}/api/calls`)).json(), CALLS);
    const h = await fetch(`${base}/healthz`);
    assert.equal(h.status, 200);
    assert.deepEqual(await h.json(), { status: 'ok' });
  });

  it('POST /api/reload: 200 when accepted, 422 with errors when refused', async () => {
    const ok = await fetch(`${base}/api/reload`, { method: 'POST' });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { ok: true });
    edge.reloadResult = { ok: false, errors: ['x'] };
    const refused = await fetch(`${base}/api/reload`, { method: 'POST' });
    assert.equal(refused.status, 422);
    assert.deepEqual(await refused.json(), { ok: false, errors: ['x'] });
    edge.reloadResult = { ok: true };
    assert.equal((await fetch(`${base}/api/reload`)).status, 404, 'reload is POST only');
  });

  it('GET /metrics serves the registry in Prometheus text format', async () => {
    metrics.sipMessagesReceived.inc({ kind: messageKind('REGISTER') });
    metrics.sipMessagesReceived.inc({ kind: messageKind('FOO') });
    metrics.sipMessagesReceived.inc({ kind: messageKind(undefined) });
    metrics.sipParseErrors.inc({ code: 'BAD_START_LINE' });
    metrics.sipResponsesSent.inc({ status_class: statusClass(401) });
    metrics.registrarRegistrations.inc({ result: 'ok' });
    metrics.registrarBindings.set(3);
    metrics.proxyCalls.inc({ result: 'answered' });
    metrics.proxyActiveTransactions.inc();
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    const text = await res.text();
    assert.match(text, /^sip_messages_received_total\{kind="REGISTER"\} 1$/m);
    assert.match(text, /^sip_messages_received_total\{kind="other"\} 1$/m);
    assert.match(text, /^sip_messages_received_total\{kind="response"\} 1$/m);
    assert.match(text, /^sip_parse_errors_total\{code="BAD_START_LINE"\} 1$/m);
    assert.match(text, /^sip_responses_sent_total\{status_class="4xx"\} 1$/m);
    assert.match(text, /^registrar_registrations_total\{result="ok"\} 1$/m);
    assert.match(text, /^registrar_bindings 3$/m);
    assert.match(text, /^proxy_calls_total\{result="answered"\} 1$/m);
    assert.match(text, /^proxy_active_transactions 1$/m);
    assert.match(text, /^process_cpu_user_seconds_total /m, 'Node process metrics are included');
  });

  it('separate createMetrics() calls do not share counters', async () => {
    const other = createMetrics({ defaultMetrics: false });
    assert.doesNotMatch(await other.registry.metrics(), /kind="REGISTER"/);
  });

  it('unknown routes are 404 JSON; edge failures are 500 JSON', async () => {
    const nf = await fetch(`${base}/api/nope`);
    assert.equal(nf.status, 404);
    assert.equal(((await nf.json()) as { error: string }).error, 'not found');

    const broken = await createApiServer(
      fakeEdge({
        peers: async () => {
          throw new Error('store down');
        },
      }),
      { listen: '127.0.0.1:0' },
    );
    try {
      const r = await fetch(`http://127.0.0.1:${broken.address.port}/api/peers`);
      assert.equal(r.status, 500);
      assert.equal(((await r.json()) as { error: string }).error, 'internal error');
      assert.equal((await fetch(`http://127.0.0.1:${broken.address.port}/metrics`)).status, 404, 'no registry, no metrics');
    } finally {
      await broken.close();
    }
  });

  it('rejects a malformed listen address', async () => {
    await assert.rejects(createApiServer(fakeEdge(), { listen: 'nowhere' }), /host:port/);
  });

  it('listens on IPv6 loopback', async (t) => {
    let v6: ApiServer;
    try {
      v6 = await createApiServer(fakeEdge(), { listen: '[::1]:0' });
    } catch {
      t.skip('no IPv6 loopback');
      return;
    }
    try {
      const r = await fetch(`http://[::1]:${v6.address.port}/healthz`);
      assert.equal(r.status, 200);
    } finally {
      await v6.close();
    }
  });
});

describe('metric label helpers', () => {
  it('statusClass and messageKind keep labels to small closed sets', () => {
    assert.equal(statusClass(180), '1xx');
    assert.equal(statusClass(699), '6xx');
    assert.equal(statusClass(99), 'other');
    assert.equal(messageKind('INVITE'), 'INVITE');
    assert.equal(messageKind('X-EVIL-' + 'A'.repeat(100)), 'other');
  });
});
