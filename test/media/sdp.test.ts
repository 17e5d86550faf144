import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'sdp-transform';
import { describeSdp, isUnspecifiedAddress, nextOrigin, rewriteSdp, type RelayPorts } from '../../src/media/sdp.js';

const ADV = '203.0.113.10';
const P0: RelayPorts = { rtp: 10000, rtcp: 10001 };
const P1: RelayPorts = { rtp: 10002, rtcp: 10003 };

function sdp(lines: string[]): string {
  return lines.join('\r\n') + '\r\n';
}

const BASIC = sdp([
  'v=0',
  'o=alice 2890844526 7 IN IP4 192.168.1.10',
  's=-',
  'c=IN IP4 192.168.1.10',
  't=0 0',
  'm=audio 49170 RTP/AVP 0 101',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-15',
  'a=ptime:20',
  'a=sendrecv',
]);

function ok(r: ReturnType<typeof rewriteSdp>): Extract<ReturnType<typeof rewriteSdp>, { ok: true }> {
  assert.ok(r.ok, r.ok ? '' : r.detail);
  return r;
}

describe('rewriteSdp', () => {
  it('rewrites session-level c=, m= port and o= address; keeps everything else', () => {
    const r = ok(rewriteSdp(BASIC, { advertiseAddress: ADV, ports: [P0] }));
    const s = parse(r.sdp);
    assert.equal(s.connection?.ip, ADV);
    assert.equal(s.origin.address, ADV);
    assert.equal(s.media[0].port, 10000);
    assert.equal(s.media[0].direction, 'sendrecv');
    assert.deepEqual(
      s.media[0].rtp.map((x) => x.codec),
      ['PCMU', 'telephone-event'],
    );
    assert.match(r.sdp, /^o=alice 2890844526 7 IN IP4 203\.0\.113\.10\r$/m);
    assert.match(r.sdp, /a=fmtp:101 0-15/);
    assert.match(r.sdp, /a=ptime:20/);
    assert.doesNotMatch(r.sdp, /192\.168\.1\.10/);
    assert.deepEqual(r.streams[0], {
      index: 0,
      kind: 'audio',
      protocol: 'RTP/AVP',
      address: '192.168.1.10',
      port: 49170,
      rtcpAddress: '192.168.1.10',
      rtcpPort: 49171,
      rtcpMux: false,
      direction: 'sendrecv',
      hold: false,
      disabled: false,
    });
  });

  it('rewrites media-level c= (and a session-level one as well)', () => {
    const input = sdp([
      'v=0',
      'o=- 1 1 IN IP4 10.0.0.5',
      's=-',
      'c=IN IP4 10.0.0.5',
      't=0 0',
      'm=audio 4000 RTP/AVP 0',
      'c=IN IP4 10.0.0.6',
      'm=video 4002 RTP/AVP 96',
      'c=IN IP4 10.0.0.7',
    ]);
    const r = ok(rewriteSdp(input, { advertiseAddress: ADV, ports: [P0, P1] }));
    const s = parse(r.sdp);
    assert.equal(s.connection?.ip, ADV);
    assert.equal(s.media[0].connection?.ip, ADV);
    assert.equal(s.media[1].connection?.ip, ADV);
    assert.equal(r.streams[0].address, '10.0.0.6', 'media-level c= overrides session-level');
    assert.equal(r.streams[1].address, '10.0.0.7');
    assert.doesNotMatch(r.sdp, /10\.0\.0\./);
  });

  it('media-level c= only (no session c=)', () => {
    const input = sdp(['v=0', 'o=- 1 1 IN IP4 10.0.0.5', 's=-', 't=0 0', 'm=audio 4000 RTP/AVP 0', 'c=IN IP4 10.0.0.6']);
    const r = ok(rewriteSdp(input, { advertiseAddress: ADV, ports: [P0] }));
    assert.equal(parse(r.sdp).media[0].connection?.ip, ADV);
    assert.equal(parse(r.sdp).connection, undefined);
  });

  it('relays several m-lines (audio + video), each on its own ports', () => {
    const input = sdp(['v=0', 'o=- 1 1 IN IP4 10.0.0.5', 's=-', 'c=IN IP4 10.0.0.5', 't=0 0', 'm=audio 4000 RTP/AVP 0', 'm=video 4002 RTP/AVP 96', 'a=rtpmap:96 H264/90000']);
    const r = ok(rewriteSdp(input, { advertiseAddress: ADV, ports: [P0, P1] }));
    assert.deepEqual(
      parse(r.sdp).media.map((m) => [m.type, m.port]),
      [
        ['audio', 10000],
        ['video', 10002],
      ],
    );
    assert.deepEqual(
      r.streams.map((s) => [s.kind, s.port, s.rtcpPort]),
      [
        ['audio', 4000, 4001],
        ['video', 4002, 4003],
      ],
    );
  });

  it('keeps a rejected (port 0) m-line at port 0, and writes port 0 where no ports are given', () => {
    const input = sdp(['v=0', 'o=- 1 1 IN IP4 10.0.0.5', 's=-', 'c=IN IP4 10.0.0.5', 't=0 0', 'm=audio 4000 RTP/AVP 0', 'm=video 0 RTP/AVP 96']);
    const r = ok(rewriteSdp(input, { advertiseAddress: ADV, ports: [P0, P1] }));
    assert.deepEqual(portsOf(r.sdp), [10000, 0]);
    assert.equal(r.streams[1].disabled, true);
    const r2 = ok(rewriteSdp(input, { advertiseAddress: ADV, ports: [undefined, undefined] }));
    assert.deepEqual(portsOf(r2.sdp), [0, 0]);
  });

  it('rewrites a=rtcp port and address (RFC 3605)', () => {
    const input = sdp(['v=0', 'o=- 1 1 IN IP4 10.0.0.5', 's=-', 'c=IN IP4 10.0.0.5', 't=0 0', 'm=audio 4000 RTP/AVP 0', 'a=rtcp:4005 IN IP4 10.0.0.9']);
    const r = ok(rewriteSdp(input, { advertiseAddress: ADV, ports: [P0] }));
    assert.match(r.sdp, /a=rtcp:10001 IN IP4 203\.0\.113\.10/);
    assert.equal(r.streams[0].rtcpPort, 4005);
    assert.equal(r.streams[0].rtcpAddress, '10.0.0.9');
    const short = ok(rewriteSdp(input.replace('a=rtcp:4005 IN IP4 10.0.0.9', 'a=rtcp:4005'), { advertiseAddress: ADV, ports: [P0] }));
    assert.match(short.sdp, /a=rtcp:10001\r\n/);
  });

  it('honours rtcp-mux: a=rtcp equal to the RTP port stays on the RTP port (RFC 5761 §5.1.3)', () => {
    const input = sdp(['v=0', 'o=- 1 1 IN IP4 10.0.0.5', 's=-', 'c=IN IP4 10.0.0.5', 't=0 0', 'm=audio 4000 RTP/AVP 0', 'a=rtcp:4000', 'a=rtcp-mux']);
    const r = ok(rewriteSdp(input, { advertiseAddress: ADV, ports: [P0] }));
    assert.match(r.sdp, /a=rtcp-mux/);
    assert.match(r.sdp, /a=rtcp:10000\r\n/);
    assert.equal(r.streams[0].rtcpMux, true);
    // rtcp-mux with a separate fallback RTCP port: the fallback is the relay's RTCP port.
    const fb = ok(rewriteSdp(input.replace('a=rtcp:4000', 'a=rtcp:4001'), { advertiseAddress: ADV, ports: [P0] }));
    assert.match(fb.sdp, /a=rtcp:10001\r\n/);
    // rtcp-mux without a=rtcp.
    const bare = ok(rewriteSdp(input.replace('a=rtcp:4000\r\n', ''), { advertiseAddress: ADV, ports: [P0] }));
    assert.match(bare.sdp, /a=rtcp-mux/);
    assert.doesNotMatch(bare.sdp, /a=rtcp:/);
  });

  it('removes ICE at session and media level while relaying (default), keeps it when asked', () => {
    const input = sdp([
      'v=0',
      'o=- 1 1 IN IP4 10.0.0.5',
      's=-',
      'c=IN IP4 10.0.0.5',
      't=0 0',
      'a=ice-lite',
      'a=ice-options:trickle',
      'm=audio 4000 RTP/AVP 0',
      'a=ice-ufrag:F7gI',
      'a=ice-pwd:x9cml/YzichV2+XlhiMu8g',
      'a=candidate:0 1 UDP 2113667327 10.0.0.5 4000 typ host',
      'a=candidate:1 1 UDP 1694498815 198.51.100.7 4000 typ srflx raddr 10.0.0.5 rport 4000',
      'a=remote-candidates:1 198.51.100.7 4000',
      'a=end-of-candidates',
      'a=ice-pacing:50',
      'a=sendrecv',
    ]);
    const r = ok(rewriteSdp(input, { advertiseAddress: ADV, ports: [P0] }));
    assert.doesNotMatch(r.sdp, /ice-|candidate/);
    assert.doesNotMatch(r.sdp, /198\.51\.100\.7|10\.0\.0\.5/);
    assert.match(r.sdp, /a=sendrecv/);
    const kept = ok(rewriteSdp(input, { advertiseAddress: ADV, ports: [P0], removeIce: false }));
    assert.match(kept.sdp, /a=candidate:0 1 UDP/);
    assert.match(kept.sdp, /a=ice-ufrag:F7gI/);
  });

  it('keeps hold directions (sendonly / recvonly / inactive), media- and session-level', () => {
    for (const dir of ['sendonly', 'recvonly', 'inactive']) {
      const r = ok(rewriteSdp(BASIC.replace('a=sendrecv', `a=${dir}`), { advertiseAddress: ADV, ports: [P0] }));
      assert.equal(parse(r.sdp).media[0].direction, dir);
      assert.equal(r.streams[0].direction, dir);
    }
    const sessionLevel = BASIC.replace('a=sendrecv\r\n', '').replace('t=0 0\r\n', 't=0 0\r\na=sendonly\r\n');
    const r = ok(rewriteSdp(sessionLevel, { advertiseAddress: ADV, ports: [P0] }));
    assert.match(r.sdp, /a=sendonly/);
    assert.equal(r.streams[0].direction, 'sendonly');
  });

  it('keeps c=0.0.0.0 (RFC 2543 hold) as 0.0.0.0 and marks the stream held', () => {
    const held = BASIC.replace('c=IN IP4 192.168.1.10', 'c=IN IP4 0.0.0.0');
    const r = ok(rewriteSdp(held, { advertiseAddress: ADV, ports: [P0] }));
    assert.equal(parse(r.sdp).connection?.ip, '0.0.0.0');
    assert.equal(r.streams[0].hold, true);
    assert.equal(parse(r.sdp).origin.address, ADV, 'o= still rewritten');
    // media-level hold under a real session-level c=
    const input = sdp(['v=0', 'o=- 1 1 IN IP4 10.0.0.5', 's=-', 'c=IN IP4 10.0.0.5', 't=0 0', 'm=audio 4000 RTP/AVP 0', 'm=video 4002 RTP/AVP 96', 'c=IN IP4 0.0.0.0']);
    const r2 = ok(rewriteSdp(input, { advertiseAddress: ADV, ports: [P0, P1] }));
    const s2 = parse(r2.sdp);
    assert.equal(s2.connection?.ip, ADV);
    assert.equal(s2.media[1].connection?.ip, '0.0.0.0');
    assert.deepEqual(
      r2.streams.map((s) => s.hold),
      [false, true],
    );
  });

  it('o= version: unchanged SDP keeps the version, a change increments it by one (RFC 3264 §8)', () => {
    const first = ok(rewriteSdp(BASIC, { advertiseAddress: ADV, ports: [P0] }));
    assert.equal(first.origin.version, '7', 'the first SDP keeps the endpoint version');
    const same = ok(rewriteSdp(BASIC, { advertiseAddress: ADV, ports: [P0], previous: first.origin }));
    assert.equal(same.origin.version, '7');
    assert.equal(same.sdp, first.sdp);
    // The endpoint bumped its version but only ICE changed: our rewritten SDP is identical.
    const bumped = BASIC.replace(' 7 IN', ' 8 IN').replace('a=sendrecv', 'a=candidate:0 1 UDP 2113667327 192.168.1.10 49170 typ host\r\na=sendrecv');
    const iceOnly = ok(rewriteSdp(bumped, { advertiseAddress: ADV, ports: [P0], previous: first.origin }));
    assert.equal(iceOnly.origin.version, '7');
    // Hold: changes the SDP → 8.
    const hold = ok(rewriteSdp(bumped.replace('a=sendrecv', 'a=sendonly'), { advertiseAddress: ADV, ports: [P0], previous: iceOnly.origin }));
    assert.equal(hold.origin.version, '8');
    assert.match(hold.sdp, /^o=alice 2890844526 8 /m);
    // The relay port changed while the endpoint did not: still a change → 9.
    const moved = ok(rewriteSdp(bumped.replace('a=sendrecv', 'a=sendonly'), { advertiseAddress: ADV, ports: [P1], previous: hold.origin }));
    assert.equal(moved.origin.version, '9');
    // A different advertise address is a change too.
    const readv = ok(rewriteSdp(bumped.replace('a=sendrecv', 'a=sendonly'), { advertiseAddress: '10.0.0.10', ports: [P1], previous: moved.origin }));
    assert.equal(readv.origin.version, '10');
  });

  it('o= version: 64-bit versions stay exact; another session id restarts from its version', () => {
    const big = BASIC.replace(' 7 IN', ' 18446744073709551610 IN');
    const a = ok(rewriteSdp(big, { advertiseAddress: ADV, ports: [P0] }));
    const b = ok(rewriteSdp(big.replace('a=sendrecv', 'a=inactive'), { advertiseAddress: ADV, ports: [P0], previous: a.origin }));
    assert.match(b.sdp, /^o=alice 2890844526 18446744073709551611 /m);
    const other = ok(rewriteSdp(BASIC.replace('2890844526 7', '999 3'), { advertiseAddress: ADV, ports: [P0], previous: b.origin }));
    assert.equal(other.origin.version, '3');
  });

  it('nextOrigin is pure', () => {
    const ep = { username: 'u', sessionId: '1', version: '5' };
    const a = nextOrigin(undefined, ep, 'X');
    assert.equal(a.version, '5');
    assert.equal(nextOrigin(a, ep, 'X'), a);
    assert.equal(nextOrigin(a, ep, 'Y').version, '6');
  });

  it('writes IPv6 advertise addresses as IP6', () => {
    const r = ok(rewriteSdp(BASIC, { advertiseAddress: '2001:db8::10', ports: [P0] }));
    assert.match(r.sdp, /^c=IN IP6 2001:db8::10\r$/m);
    assert.match(r.sdp, /^o=alice 2890844526 7 IN IP6 2001:db8::10\r$/m);
  });

  it('rejects bad SDP with a reason', () => {
    for (const bad of [
      '',
      'hello',
      'v=0\r\ns=-\r\n',
      'v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n',
      'v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000/2 RTP/AVP 0\r\n',
      'v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 99999 RTP/AVP 0\r\n',
    ]) {
      const r = rewriteSdp(bad, { advertiseAddress: ADV, ports: [P0] });
      assert.equal(r.ok, false, JSON.stringify(bad));
      assert.equal(describeSdp(bad).ok, false);
    }
  });

  it('isUnspecifiedAddress', () => {
    assert.equal(isUnspecifiedAddress('0.0.0.0'), true);
    assert.equal(isUnspecifiedAddress('::'), true);
    assert.equal(isUnspecifiedAddress('0:0:0:0:0:0:0:0'), true);
    assert.equal(isUnspecifiedAddress('10.0.0.1'), false);
    assert.equal(isUnspecifiedAddress('::1'), false);
  });
});

function portsOf(s: string): number[] {
  return parse(s).media.map((m) => m.port);
}
