/**
 * SO_RCVBUF / SO_SNDBUF of the SIP UDP sockets (src/transport/node/udp.ts): the sizes are
 * applied once bound (read back with getsockopt), and through the transport layer a larger
 * receive buffer holds a burst that arrives while the event loop is busy. Real sockets on
 * 127.0.0.1; bursts are bounded (at most 1,000 datagrams).
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import fs from 'node:fs';
import { test } from 'node:test';
import { SystemClock } from '../../src/lib/clock.js';
import { TransportLayer } from '../../src/transport/layer.js';
import { parseListen } from '../../src/transport/listen.js';
import { DEFAULT_UDP_RECV_BUFFER, DEFAULT_UDP_SEND_BUFFER, UdpSocket, type UdpBufferOptions } from '../../src/transport/node/udp.js';
import { recorder, request } from './helpers.js';

function sysctl(name: string): number | undefined {
  try {
    return Number(fs.readFileSync(`/proc/sys/net/core/${name}`, 'utf8').trim());
  } catch {
    return undefined;
  }
}

const rmemMax = sysctl('rmem_max');
const wmemMax = sysctl('wmem_max');
const rmemDefault = sysctl('rmem_default');
const linux = process.platform === 'linux' && rmemMax !== undefined && wmemMax !== undefined;

async function bound(buffers?: UdpBufferOptions): Promise<UdpSocket> {
  const s = new UdpSocket('127.0.0.1', () => undefined, () => undefined, buffers);
  await s.bind(0);
  return s;
}

test('UDP socket buffers: 4 MiB / 1 MiB by default, capped by net.core.*mem_max (Linux reports twice the grant)', { skip: !linux && 'Linux sysctls not readable' }, async () => {
  const s = await bound();
  try {
    const got = s.bufferSizes();
    assert.equal(got.recv, 2 * Math.min(DEFAULT_UDP_RECV_BUFFER, rmemMax!));
    assert.equal(got.send, 2 * Math.min(DEFAULT_UDP_SEND_BUFFER, wmemMax!));
  } finally {
    await s.close();
  }
  assert.deepEqual(s.bufferSizes(), { recv: 0, send: 0 }, 'nothing once closed');
});

test('UDP socket buffers: explicit sizes are applied; 0 keeps the kernel default', { skip: !linux && 'Linux sysctls not readable' }, async () => {
  const small = await bound({ recvBufferSize: 64 * 1024, sendBufferSize: 48 * 1024 });
  const kernel = await bound({ recvBufferSize: 0, sendBufferSize: 0 });
  try {
    assert.deepEqual(small.bufferSizes(), { recv: 2 * 64 * 1024, send: 2 * 48 * 1024 });
    assert.equal(kernel.bufferSizes().recv, rmemDefault);
  } finally {
    await small.close();
    await kernel.close();
  }
});

/**
 * Sends `count` OPTIONS to `port` while this process's event loop cannot read them (the sends
 * all happen before the next poll), then counts what the layer passed up.
 */
async function burstThroughLayer(buffers: UdpBufferOptions, count: number): Promise<number> {
  const spec = parseListen('udp:127.0.0.1:0');
  if (!spec.ok) throw new Error(spec.reason);
  const rec = recorder();
  const layer = new TransportLayer({ listen: [spec.value], events: rec.events, clock: new SystemClock(), udpBuffers: buffers });
  await layer.start();
  const port = layer.sockets()[0].boundPort;
  const phone = dgram.createSocket('udp4');
  phone.bind(0, '127.0.0.1');
  await once(phone, 'listening');
  try {
    const msg = Buffer.from(request({ method: 'OPTIONS' }));
    let sent = 0;
    await new Promise<void>((resolve) => {
      for (let i = 0; i < count; i++) {
        phone.send(msg, port, '127.0.0.1', () => {
          if (++sent === count) resolve();
        });
      }
    });
    // Let the layer drain its socket: stop when nothing new arrived for 200 ms (at most 5 s).
    let last = -1;
    const end = Date.now() + 5000;
    while (rec.messages.length !== last && Date.now() < end) {
      last = rec.messages.length;
      await new Promise((r) => setTimeout(r, 200));
    }
    return rec.messages.length;
  } finally {
    phone.close();
    await layer.close();
  }
}

test('TransportLayer udpBuffers: a 1,000-datagram burst fits the default receive buffer, not a 16 KiB one', { skip: (!linux || rmemMax! < 2 * 1024 * 1024) && 'net.core.rmem_max below 2 MiB' }, async () => {
  const big = await burstThroughLayer({}, 1000);
  assert.equal(big, 1000, 'every datagram of the burst was received');
  const small = await burstThroughLayer({ recvBufferSize: 16 * 1024 }, 1000);
  assert.ok(small < 500, `a 16 KiB receive buffer held ${small} of 1,000 datagrams`);
});
