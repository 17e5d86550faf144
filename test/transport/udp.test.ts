import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { createResponse } from '../../src/sip/response.js';
import { getHeader } from '../../src/sip/headers.js';
import type { SipRequest } from '../../src/sip/message.js';
import { parseMessage } from '../../src/sip/parse.js';
import { TransportLayer } from '../../src/transport/layer.js';
import { SystemClock } from '../../src/lib/clock.js';
import { UdpPeer, request, startLayer, statusOf } from './helpers.js';

test('UDP request in: received/rport stamped; response goes back to the source port from the same socket', async () => {
  const { layer, rec, port } = await startLayer(['udp:127.0.0.1:0']);
  const phone = await UdpPeer.open();
  try {
    const lport = port('udp:127.0.0.1:0');
    phone.send(request({ method: 'REGISTER' }), lport);
    const inb = await rec.message();
    assert.equal(inb.message.type, 'request');
    assert.equal(getHeader(inb.message, 'via'), `SIP/2.0/UDP 192.168.1.20:5060;branch=${/branch=([^;]+)/.exec(getHeader(inb.message, 'via')!)![1]};received=127.0.0.1;rport=${phone.port}`);
    assert.deepEqual(inb.flow, { transport: 'udp', local: { socketId: 'udp:127.0.0.1:0', address: '127.0.0.1', port: lport }, remote: { address: '127.0.0.1', port: phone.port } });
    assert.ok(inb.raw.toString().startsWith('REGISTER '));
    assert.equal(typeof inb.receivedAt, 'number');

    // The Via says 192.168.1.20:5060 (a private address): the response must follow received/rport.
    const res = createResponse(inb.message as SipRequest, 200, 'OK');
    const sent = layer.sendResponse(res, inb);
    assert.equal(sent.ok, true);
    const got = await phone.next();
    assert.equal(statusOf(got.data.toString()), 200);
    assert.equal(got.port, lport, 'sent from the socket the request arrived on');
    assert.equal(layer.stats().received, 1);
    assert.equal(layer.stats().sent, 1);
  } finally {
    await phone.close();
    await layer.close();
  }
});

test('malformed request gets 400 back and the socket keeps working', async () => {
  const { layer, rec, port } = await startLayer(['udp:127.0.0.1:0']);
  const phone = await UdpPeer.open();
  try {
    const lport = port('udp:127.0.0.1:0');
    const bad = request({ extra: 'Max-Forwards: many\r\nCSeq: 1 OPTIONS\r\n' });
    phone.send(bad, lport);
    const got = await phone.next();
    assert.equal(statusOf(got.data.toString()), 400);
    assert.equal(got.port, lport);
    assert.equal(rec.parseErrors.length, 1);
    assert.equal(rec.messages.length, 0);
    const st = layer.stats();
    assert.equal(Object.values(st.parseErrors).reduce((a, b) => a + (b ?? 0), 0), 1);
    assert.equal(st.dropped, 1);

    // wrong SIP version → 505
    phone.send(request().replace('SIP/2.0\r\n', 'SIP/3.0\r\n'), lport);
    assert.equal(statusOf((await phone.next(2)).data.toString()), 505);

    phone.send(request(), lport);
    await rec.message(1);
    assert.equal(layer.stats().received, 1);
  } finally {
    await phone.close();
    await layer.close();
  }
});

test('garbage and broken responses are dropped and counted, never answered', async () => {
  const { layer, rec, port } = await startLayer(['udp:127.0.0.1:0']);
  const phone = await UdpPeer.open();
  try {
    const lport = port('udp:127.0.0.1:0');
    phone.send('SIP/2.0 200 OK\r\nVia: broken\r\n\r\n', lport);
    phone.send('this is not SIP at all', lport);
    phone.send(Buffer.from([0xff, 0xfe, 0x00, 0x01]), lport);
    phone.send('\r\n\r\n', lport); // CRLF keep-alive: ignored
    phone.send('\r\n', lport);
    phone.send('OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n', lport); // missing From/To/…: answered 400 with what is there (RFC 4475 §3.3.1)
    await rec.waitFor(() => {
      const st = layer.stats();
      return st.dropped >= 4 && st.keepalives >= 2;
    }, 'drops');
    // then a good one still works
    phone.send(request(), lport);
    await rec.message(1);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(phone.got.length, 1, 'only the request missing headers is answered');
    assert.match(phone.got[0].data.toString(), /^SIP\/2\.0 400 /);
    const st = layer.stats();
    assert.equal(st.keepalives, 2);
    assert.equal(st.dropped, 4);
    assert.equal(rec.parseErrors.length, 4);
    assert.ok((st.parseErrors.BAD_VIA ?? 0) >= 1, JSON.stringify(st.parseErrors));
  } finally {
    await phone.close();
    await layer.close();
  }
});

test('non-SIP first byte (STUN) goes to onNonSip and its reply is sent back', async () => {
  const seen: Buffer[] = [];
  const { layer, rec, port } = await startLayer(['udp:127.0.0.1:0'], {
    events: {
      onNonSip: (data, flow) => {
        seen.push(data);
        assert.equal(flow.transport, 'udp');
        return data[0] === 0x00 ? Buffer.from([0x01, 0x01, 0x00, 0x00]) : undefined;
      },
    },
  });
  const phone = await UdpPeer.open();
  try {
    const lport = port('udp:127.0.0.1:0');
    phone.send(Buffer.from([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]), lport);
    const got = await phone.next();
    assert.deepEqual([...got.data], [0x01, 0x01, 0x00, 0x00]);
    phone.send(Buffer.from([0x01, 0x02]), lport); // handler returns undefined: nothing back
    await rec.waitFor(() => seen.length === 2, 'second non-SIP');
    assert.equal(layer.stats().nonSip, 2);
    assert.equal(rec.messages.length, 0);
  } finally {
    await phone.close();
    await layer.close();
  }
});

test('a throwing handler does not break the socket', async () => {
  let calls = 0;
  const { layer, port } = await startLayer(['udp:127.0.0.1:0'], {
    events: {
      onMessage: () => {
        calls++;
        throw new Error('boom');
      },
    },
  });
  const phone = await UdpPeer.open();
  try {
    phone.send(request(), port('udp:127.0.0.1:0'));
    phone.send(request(), port('udp:127.0.0.1:0'));
    await new Promise<void>((resolve, reject) => {
      const t = setInterval(() => {
        if (calls === 2) {
          clearInterval(t);
          resolve();
        }
      }, 2);
      setTimeout(() => reject(new Error('timeout')), 2000).unref();
    });
    assert.equal(layer.stats().handlerErrors, 2);
  } finally {
    await phone.close();
    await layer.close();
  }
});

test('IPv6 on ::1: stamp, respond, and send requests choosing the socket by family', async () => {
  const { layer, rec, port } = await startLayer(['udp:127.0.0.1:0', 'udp:[::1]:0']);
  const phone6 = await UdpPeer.open('::1');
  const phone4 = await UdpPeer.open('127.0.0.1');
  try {
    const p6 = port('udp:[::1]:0');
    phone6.send(request({ host: '[2001:db8::20]:5060' }), p6, '::1');
    const inb = await rec.message();
    assert.match(getHeader(inb.message, 'via')!, new RegExp(`;received=::1;rport=${phone6.port}$`));
    assert.equal(inb.flow.local.socketId, 'udp:[::1]:0');
    const r = layer.sendResponse(createResponse(inb.message as SipRequest, 200, 'OK'), inb);
    assert.equal(r.ok, true);
    const got = await phone6.next();
    assert.equal(got.port, p6);

    // requests: the family of the destination picks the socket
    const req = parseMessage(Buffer.from(request({ method: 'NOTIFY' })));
    assert.ok(req.ok && req.message.type === 'request');
    const s6 = layer.sendRequest(req.message, { transport: 'udp', address: '::1', port: phone6.port });
    assert.ok(s6.ok && s6.flow.local.socketId === 'udp:[::1]:0');
    assert.equal((await phone6.next(2)).port, p6);
    const s4 = layer.sendRequest(req.message, { transport: 'udp', address: '127.0.0.1', port: phone4.port });
    assert.ok(s4.ok && s4.flow.local.socketId === 'udp:127.0.0.1:0');
    assert.equal((await phone4.next()).port, port('udp:127.0.0.1:0'));
    // forcing a socket of the wrong family, or an unknown one, fails cleanly
    const wrong = layer.sendRequest(req.message, { transport: 'udp', address: '127.0.0.1', port: phone4.port, socketId: 'udp:[::1]:0' });
    assert.equal(!wrong.ok && wrong.code, 'NO_SOCKET');
    const unknown = layer.sendRequest(req.message, { transport: 'udp', address: '127.0.0.1', port: phone4.port, socketId: 'udp:10.9.9.9:5060' });
    assert.equal(!unknown.ok && unknown.code, 'NO_SOCKET');
    const tls = layer.sendRequest(req.message, { transport: 'tls', address: '127.0.0.1', port: 5061 });
    assert.equal(!tls.ok && tls.code, 'NO_SOCKET');
  } finally {
    await phone6.close();
    await phone4.close();
    await layer.close();
  }
});

test('size limits on UDP: oversize datagrams are dropped and counted; oversize sends fail', async () => {
  const { layer, rec, port } = await startLayer(['udp:127.0.0.1:0'], { limits: { maxMessageSize: 1000 } });
  const phone = await UdpPeer.open();
  try {
    phone.send(request({ body: 'x'.repeat(1200) }), port('udp:127.0.0.1:0'));
    await rec.waitFor(() => (layer.stats().parseErrors.TOO_LARGE ?? 0) === 1, 'TOO_LARGE');
    phone.send(request({ body: 'x'.repeat(100) }), port('udp:127.0.0.1:0'));
    await rec.message(1);
    const r = layer.sendRaw(Buffer.alloc(70000, 0x41), { transport: 'udp', address: '127.0.0.1', port: phone.port });
    assert.equal(!r.ok && r.code, 'TOO_LARGE');
    const bad = layer.sendRaw(Buffer.from('x'), { transport: 'udp', address: '127.0.0.1', port: 0 });
    assert.equal(!bad.ok && bad.code, 'SEND_FAILED');
  } finally {
    await phone.close();
    await layer.close();
  }
});

test('start() rejects with the socket id on EADDRINUSE and leaves nothing bound', async () => {
  const holder = dgram.createSocket('udp4');
  holder.bind(0, '127.0.0.1');
  await once(holder, 'listening');
  const busy = holder.address().port;
  const { layer: ok } = await startLayer(['udp:127.0.0.1:0']);
  await ok.close();
  const specs = [
    { id: 'udp:127.0.0.1:0', transport: 'udp' as const, address: '127.0.0.1', port: 0 },
    { id: `udp:127.0.0.1:${busy}`, transport: 'udp' as const, address: '127.0.0.1', port: busy },
  ];
  const layer = new TransportLayer({ listen: specs, events: { onMessage: () => {} }, clock: new SystemClock() });
  await assert.rejects(layer.start(), (err: Error & { code?: string }) => {
    assert.match(err.message, new RegExp(`^udp:127\\.0\\.0\\.1:${busy}: .*EADDRINUSE`));
    assert.equal(err.code, 'EADDRINUSE');
    return true;
  });
  const tls = new TransportLayer({ listen: [{ id: 'tls:127.0.0.1:0', transport: 'tls', address: '127.0.0.1', port: 0 }], events: { onMessage: () => {} }, clock: new SystemClock() });
  await assert.rejects(tls.start(), /^Error: tls:127\.0\.0\.1:0: transport tls is not implemented yet/);
  await new Promise<void>((r) => holder.close(() => r()));
});

test('RFC 4475 torture messages over UDP: every one is delivered or counted, the socket survives', async () => {
  const { readdirSync, readFileSync } = await import('node:fs');
  const { fileURLToPath } = await import('node:url');
  const dir = (sub: string) => fileURLToPath(new URL(`../fixtures/rfc4475/${sub}/`, import.meta.url));
  const files = [...readdirSync(dir('valid')).map((f) => dir('valid') + f), ...readdirSync(dir('invalid')).map((f) => dir('invalid') + f)];
  const { layer, rec, port } = await startLayer(['udp:127.0.0.1:0']);
  const phone = await UdpPeer.open();
  try {
    for (const f of files) phone.send(readFileSync(f), port('udp:127.0.0.1:0'));
    await rec.waitFor(() => {
      const st = layer.stats();
      return st.received + st.dropped === files.length;
    }, 'all fixtures handled');
    phone.send(request({ callId: 'still-alive' }), port('udp:127.0.0.1:0'));
    await rec.waitFor(() => rec.messages.some((m) => getHeader(m.message, 'call-id') === 'still-alive'), 'socket still works');
  } finally {
    await phone.close();
    await layer.close();
  }
});
