import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { SystemClock } from '../../src/lib/clock.js';
import { decodeBencode, encodeBencode, type BencodeDict, type BencodeInput } from '../../src/media/bencode.js';
import { createMediaControl, NgMediaControl, RelayEngine } from '../../src/media/index.js';
import { ngErrorCode, statsFromQuery, type NgOptions } from '../../src/media/ng.js';
import { NodeMediaSocketFactory } from '../../src/media/node/udp.js';
import { HOST, makeSdp, randomRange } from './helpers.js';

type Handler = (req: BencodeDict, n: number) => BencodeInput | undefined;

/** A tiny fake rtpengine ng server: decodes `cookie d…e`, answers with `handler` (undefined = no reply). */
class FakeNg {
  readonly requests: Array<{ cookie: string; dict: BencodeDict }> = [];
  private client: { address: string; port: number } | undefined;
  private constructor(
    private readonly socket: dgram.Socket,
    readonly port: number,
    public handler: Handler,
  ) {
    socket.on('message', (msg, rinfo) => {
      this.client = { address: rinfo.address, port: rinfo.port };
      const sp = msg.indexOf(0x20);
      const cookie = msg.toString('latin1', 0, sp);
      const dec = decodeBencode(msg, { start: sp + 1 });
      assert.ok(dec.ok);
      const dict = dec.value as BencodeDict;
      this.requests.push({ cookie, dict });
      const reply = this.handler(dict, this.requests.filter((r) => r.cookie === cookie).length);
      if (reply !== undefined) socket.send(Buffer.concat([Buffer.from(`${cookie} `), encodeBencode(reply)]), rinfo.port, rinfo.address);
    });
  }

  static async open(handler: Handler): Promise<FakeNg> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => s.bind(0, HOST, () => resolve()));
    return new FakeNg(s, s.address().port, handler);
  }

  /** Sends a raw datagram to the client that sent the last request. */
  sendRaw(data: Buffer): void {
    assert.ok(this.client);
    this.socket.send(data, this.client.port, this.client.address);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function setup(handler: Handler, opts: Partial<NgOptions> = {}): Promise<{ ng: NgMediaControl; server: FakeNg }> {
  const server = await FakeNg.open(handler);
  cleanups.push(() => server.close());
  const ng = new NgMediaControl({ host: HOST, port: server.port, sockets: new NodeMediaSocketFactory(), clock: new SystemClock(), retransmitMs: 30, timeoutMs: 300, pollIntervalMs: 0, ...opts });
  cleanups.push(() => ng.close());
  return { ng, server };
}

const SDP = makeSdp({ address: '192.0.2.10', media: [{ port: 4000 }] });
const OUT = makeSdp({ address: '203.0.113.10', media: [{ port: 30000 }] });

describe('ng client (fake rtpengine over UDP + bencode)', () => {
  it('offer: sends the ng keys and returns the rewritten SDP', async () => {
    const { ng, server } = await setup(() => ({ result: 'ok', sdp: OUT }));
    const r = await ng.offer({
      callId: 'call-1',
      fromTag: 'ft',
      viaBranch: 'z9hG4bK1',
      sdp: SDP,
      receivedFrom: { address: '198.51.100.7', port: 5060 },
      advertiseAddress: '203.0.113.10',
    });
    assert.deepEqual(r, { ok: true, sdp: OUT });
    const req = server.requests[0];
    assert.match(req.cookie, /^[0-9a-f]{8}_\d+$/);
    assert.equal(req.dict.command, 'offer');
    assert.equal(req.dict['call-id'], 'call-1');
    assert.equal(req.dict['from-tag'], 'ft');
    assert.equal(req.dict['to-tag'], undefined);
    assert.equal(req.dict['via-branch'], 'z9hG4bK1');
    assert.equal(req.dict.sdp, SDP);
    assert.deepEqual(req.dict['received-from'], ['IP4', '198.51.100.7']);
    assert.equal(req.dict.ICE, 'remove');
    assert.deepEqual(req.dict.replace, ['origin', 'session-connection', 'SDP-version']);
    assert.deepEqual(req.dict.flags, ['original-sendrecv', 'strict-source']);
    assert.equal(req.dict['media address'], undefined, '`media address` is the endpoint address in ng, never the advertised one');
    assert.deepEqual(
      ng.list().map((c) => [c.callId, c.tags, c.streams]),
      [['call-1', ['ft', undefined], 1]],
    );
  });

  it('answer carries to-tag; delete and query map to their commands', async () => {
    const { ng, server } = await setup((req) => {
      if (req.command === 'query')
        return {
          result: 'ok',
          created: 1_700_000_000,
          'last signal': 1_700_000_005,
          tags: {
            ft: {
              tag: 'ft',
              medias: [
                {
                  index: 1,
                  type: 'audio',
                  flags: ['initialized'],
                  streams: [
                    {
                      'local port': 30000,
                      endpoint: { family: 'IPv4', address: '198.51.100.7', port: 41000 },
                      'advertised endpoint': { family: 'IPv4', address: '192.0.2.10', port: 4000 },
                      'last packet': 1_700_000_009,
                      stats: { packets: 343, bytes: 58996, errors: 0 },
                    },
                    { 'local port': 30001, stats: { packets: 2, bytes: 164, errors: 0 } },
                  ],
                },
              ],
            },
            tt: { tag: 'tt', medias: [] },
          },
          totals: { RTP: { packets: 343, bytes: 58996, errors: 0 }, RTCP: { packets: 2, bytes: 164, errors: 0 } },
        };
      return { result: 'ok', sdp: OUT };
    });
    assert.ok((await ng.offer({ callId: 'c', fromTag: 'ft', sdp: SDP, advertiseAddress: '203.0.113.10' })).ok);
    assert.ok((await ng.answer({ callId: 'c', fromTag: 'ft', toTag: 'tt', sdp: SDP, advertiseAddress: '10.0.0.10', removeIce: false })).ok);
    const ans = server.requests[1].dict;
    assert.equal(ans.command, 'answer');
    assert.equal(ans['from-tag'], 'ft');
    assert.equal(ans['to-tag'], 'tt');
    assert.equal(ans.ICE, undefined);
    const st = await ng.query('c');
    assert.ok(st);
    assert.equal(server.requests[2].dict.command, 'query');
    assert.equal(st.createdAt, 1_700_000_000_000);
    assert.equal(st.lastSignalAt, 1_700_000_005_000);
    assert.equal(st.lastPacketAt, 1_700_000_009_000);
    assert.deepEqual(
      st.legs.map((l) => l.tag),
      ['ft', 'tt'],
    );
    assert.deepEqual(st.legs[0].received, { packets: 345, bytes: 59160 });
    assert.deepEqual(st.legs[0].streams[0].rtp.latched, { address: '198.51.100.7', port: 41000 });
    assert.deepEqual(st.legs[0].streams[0].rtp.signalled, { address: '192.0.2.10', port: 4000 });
    assert.equal(st.legs[0].streams[0].rtcp.localPort, 30001);
    await ng.delete({ callId: 'c' });
    const del = server.requests[3].dict;
    assert.equal(del.command, 'delete');
    assert.equal(del['call-id'], 'c');
    assert.equal(del['from-tag'], 'ft', 'the known from-tag is filled in');
    assert.deepEqual(ng.list(), []);
  });

  it('sends direction from the interfaces map (advertise address → rtpengine interface)', async () => {
    const { ng, server } = await setup(() => ({ result: 'ok', sdp: OUT }), { interfaces: { '203.0.113.10': 'pub', '10.0.0.10': 'priv' } });
    await ng.offer({ callId: 'c', fromTag: 'a', sdp: SDP, advertiseAddress: '203.0.113.10' });
    assert.deepEqual(server.requests[0].dict.direction, ['pub', 'pub'], 'initial offer: the offerer side is not known yet');
    await ng.answer({ callId: 'c', fromTag: 'a', toTag: 'b', sdp: SDP, advertiseAddress: '10.0.0.10' });
    assert.equal(server.requests[1].dict.direction, undefined, 'not in answers');
    await ng.offer({ callId: 'c', fromTag: 'a', sdp: SDP, advertiseAddress: '203.0.113.10' });
    assert.deepEqual(server.requests[2].dict.direction, ['priv', 'pub']);
    await ng.offer({ callId: 'c', fromTag: 'b', sdp: SDP, advertiseAddress: '10.0.0.10' });
    assert.deepEqual(server.requests[3].dict.direction, ['pub', 'priv'], 'callee re-offer');
  });

  it('maps error-reason to codes', async () => {
    const reasons: Record<string, string> = { c1: 'Ran out of ports', c2: 'Unknown call-id', c3: 'Failed to parse SDP', c4: 'Something else' };
    const { ng } = await setup((req) => ({ result: 'error', 'error-reason': reasons[req['call-id'] as string] }));
    const codes = [];
    for (const id of ['c1', 'c2', 'c3', 'c4']) {
      const r = await ng.offer({ callId: id, fromTag: 'f', sdp: SDP, advertiseAddress: HOST });
      assert.equal(r.ok, false);
      codes.push(!r.ok && r.code);
      assert.match(!r.ok ? r.detail : '', /rtpengine: /);
    }
    assert.deepEqual(codes, ['NO_PORTS', 'UNKNOWN_CALL', 'BAD_SDP', 'ENGINE_ERROR']);
    assert.equal(ng.counters().noPorts, 1);
    assert.deepEqual(ng.list(), [], 'failed offers are not remembered');
    assert.equal(ngErrorCode('load limit reached'), 'NO_PORTS');
  });

  it('bad SDP is refused locally without a round trip', async () => {
    const { ng, server } = await setup(() => ({ result: 'ok', sdp: OUT }));
    const r = await ng.offer({ callId: 'c', fromTag: 'f', sdp: 'garbage', advertiseAddress: HOST });
    assert.equal(!r.ok && r.code, 'BAD_SDP');
    assert.equal(server.requests.length, 0);
  });

  it('retransmits with the same cookie until answered', async () => {
    const { ng, server } = await setup((_req, n) => (n < 3 ? undefined : { result: 'ok', sdp: OUT }));
    const r = await ng.offer({ callId: 'c', fromTag: 'f', sdp: SDP, advertiseAddress: HOST });
    assert.ok(r.ok);
    assert.equal(server.requests.length, 3);
    assert.equal(new Set(server.requests.map((x) => x.cookie)).size, 1);
  });

  it('times out → ENGINE_ERROR', async () => {
    const { ng, server } = await setup(() => undefined, { retransmitMs: 20, timeoutMs: 150 });
    const t0 = Date.now();
    const r = await ng.offer({ callId: 'c', fromTag: 'f', sdp: SDP, advertiseAddress: HOST });
    const took = Date.now() - t0;
    assert.equal(!r.ok && r.code, 'ENGINE_ERROR');
    assert.match(!r.ok ? r.detail : '', /did not answer "offer" within 150 ms/);
    assert.ok(took >= 140 && took < 1000, `took ${took} ms`);
    assert.ok(server.requests.length >= 3, `retransmitted (${server.requests.length} sends)`);
    assert.equal(ng.counters().engineErrors, 1);
  });

  it('ignores replies with unknown cookies and undecodable replies', async () => {
    const { ng, server } = await setup(() => undefined, { retransmitMs: 1000, timeoutMs: 2000 });
    const pending = ng.offer({ callId: 'c', fromTag: 'f', sdp: SDP, advertiseAddress: HOST });
    while (server.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
    const cookie = server.requests[0].cookie;
    server.sendRaw(Buffer.from(`${cookie} d6:result`)); // truncated bencode
    server.sendRaw(Buffer.from('no-space-at-all'));
    server.sendRaw(Buffer.concat([Buffer.from('deadbeef_99 '), encodeBencode({ result: 'ok', sdp: 'x' })]));
    server.sendRaw(Buffer.concat([Buffer.from(`${cookie} `), encodeBencode({ result: 'ok', sdp: OUT })]));
    server.sendRaw(Buffer.concat([Buffer.from(`${cookie} `), encodeBencode({ result: 'ok', sdp: 'duplicate' })]));
    assert.deepEqual(await pending, { ok: true, sdp: OUT });
  });

  it('poll: a call rtpengine no longer lists (and query confirms) fires onTimeout once', async () => {
    const fired: string[] = [];
    const { ng, server } = await setup(
      (req) => {
        if (req.command === 'list') return { result: 'ok', calls: ['alive'] };
        if (req.command === 'query') return { result: 'error', 'error-reason': 'Unknown call-id' };
        return { result: 'ok', sdp: OUT };
      },
      { onTimeout: (id) => fired.push(id) },
    );
    await ng.offer({ callId: 'alive', fromTag: 'f', sdp: SDP, advertiseAddress: HOST });
    await ng.offer({ callId: 'gone', fromTag: 'f', sdp: SDP, advertiseAddress: HOST });
    await ng.poll();
    await ng.poll();
    assert.deepEqual(fired, ['gone']);
    assert.equal(ng.counters().timeouts, 1);
    assert.ok(server.requests.some((r) => r.dict.command === 'list' && typeof r.dict.limit === 'number'));
  });

  it('close() fails pending requests', async () => {
    const { ng } = await setup(() => undefined, { timeoutMs: 5000 });
    const p = ng.offer({ callId: 'c', fromTag: 'f', sdp: SDP, advertiseAddress: HOST });
    await new Promise((r) => setTimeout(r, 20));
    await ng.close();
    const r = await p;
    assert.equal(!r.ok && r.code, 'ENGINE_ERROR');
  });

  it('statsFromQuery tolerates missing keys', () => {
    const st = statsFromQuery('x', { result: 'ok' });
    assert.deepEqual(st.legs, []);
    assert.equal(st.createdAt, 0);
  });

  it('createMediaControl picks the engine', async () => {
    const clock = new SystemClock();
    const internal = createMediaControl({ kind: 'internal' }, { clock, ports: randomRange(4), bindAddress: HOST });
    const remote = createMediaControl({ kind: 'rtpengine', transport: 'udp', host: HOST, port: 22222 }, { clock, ports: randomRange(4) });
    assert.ok(internal instanceof RelayEngine);
    assert.ok(remote instanceof NgMediaControl);
    await internal.close();
    await remote.close();
  });
});

