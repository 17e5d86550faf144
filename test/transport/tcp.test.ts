import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { FakeClock } from '../../src/lib/clock.js';
import { getHeader } from '../../src/sip/headers.js';
import type { SipRequest } from '../../src/sip/message.js';
import { parseMessage } from '../../src/sip/parse.js';
import { createResponse } from '../../src/sip/response.js';
import { TcpPeer, request, startLayer, statusOf, waitUntil } from './helpers.js';

const ID = 'tcp:127.0.0.1:0';

function sipRequest(text: string): SipRequest {
  const r = parseMessage(Buffer.from(text));
  if (!r.ok || r.message.type !== 'request') throw new Error('bad test request');
  return r.message;
}

test('two messages in one chunk, stamped with the connection source; response on the same connection', async () => {
  const { layer, rec, port } = await startLayer([ID]);
  const phone = await TcpPeer.connect(port(ID));
  try {
    phone.write(request({ transport: 'TCP', callId: 'one' }) + request({ transport: 'TCP', callId: 'two', body: 'v=0\r\n' }));
    const a = await rec.message(1);
    const b = await rec.message(2);
    assert.equal(getHeader(a.message, 'call-id'), 'one');
    assert.equal(getHeader(b.message, 'call-id'), 'two');
    assert.equal(b.message.body.toString(), 'v=0\r\n');
    assert.match(getHeader(a.message, 'via')!, new RegExp(`;received=127\\.0\\.0\\.1;rport=${phone.localPort}$`));
    assert.equal(a.flow.transport, 'tcp');
    assert.equal(typeof a.flow.connectionId, 'number');
    assert.equal(a.flow.connectionId, b.flow.connectionId);
    assert.deepEqual(a.flow.remote, { address: '127.0.0.1', port: phone.localPort });
    assert.equal(layer.connectionOpen(a.flow.connectionId!), true);

    const sent = layer.sendResponse(createResponse(a.message as SipRequest, 200, 'OK'), a);
    assert.ok(sent.ok && sent.flow.connectionId === a.flow.connectionId);
    await phone.waitText((s) => statusOf(s) === 200, '200 on the connection');
    assert.equal(layer.stats().tcp.open, 1);
    assert.equal(layer.stats().tcp.accepted, 1);
  } finally {
    phone.close();
    await layer.close();
  }
});

test('one message split over many chunks', async () => {
  const { layer, rec, port } = await startLayer([ID]);
  const phone = await TcpPeer.connect(port(ID));
  try {
    const text = request({ transport: 'TCP', body: 'a'.repeat(3000) });
    for (let i = 0; i < text.length; i += 97) {
      phone.write(text.slice(i, i + 97));
      if (i % 970 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    const m = await rec.message(1);
    assert.equal(m.message.body.length, 3000);
    assert.equal(m.raw.length, Buffer.byteLength(text));
    // and byte by byte for the header part of a second one
    const t2 = request({ transport: 'TCP', callId: 'bytewise' });
    for (let i = 0; i < t2.length; i++) {
      phone.write(t2[i]);
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    const m2 = await rec.message(2);
    assert.equal(getHeader(m2.message, 'call-id'), 'bytewise');
  } finally {
    phone.close();
    await layer.close();
  }
});

test('garbage before a message is skipped and counted', async () => {
  const { layer, rec, port } = await startLayer([ID]);
  const phone = await TcpPeer.connect(port(ID));
  try {
    const junk = 'GET / HTTP/1.1 junk line\r\n\x00\x01\x02 more junk\r\n';
    phone.write(junk + request({ transport: 'TCP', callId: 'after-junk' }));
    const m = await rec.message(1);
    assert.equal(getHeader(m.message, 'call-id'), 'after-junk');
    assert.equal(layer.stats().garbageBytes, Buffer.byteLength(junk, 'latin1'));
  } finally {
    phone.close();
    await layer.close();
  }
});

test('CRLFCRLF ping gets a CRLF pong; lone CRLFs are tolerated', async () => {
  const { layer, rec, port } = await startLayer([ID]);
  const phone = await TcpPeer.connect(port(ID));
  try {
    phone.write('\r\n\r\n');
    await phone.waitText((s) => s === '\r\n', 'pong');
    phone.write('\r\n' + request({ transport: 'TCP' }));
    await rec.message(1);
    const st = layer.stats();
    assert.equal(st.keepalives, 1);
    assert.equal(st.pongs, 1);
    assert.equal(phone.text(), '\r\n');
  } finally {
    phone.close();
    await layer.close();
  }
});

test('missing Content-Length on TCP: 400 and the connection is closed', async () => {
  const { layer, rec, port } = await startLayer([ID]);
  const phone = await TcpPeer.connect(port(ID));
  try {
    phone.write(request({ transport: 'TCP', noContentLength: true }));
    const text = await phone.waitText((s) => statusOf(s) !== undefined, 'error response');
    assert.equal(statusOf(text), 400);
    assert.match(text, /Missing Content-Length/);
    await phone.waitClosed();
    await rec.waitFor(() => rec.closed.length === 1, 'onConnectionClosed');
    assert.equal(rec.parseErrors.length, 1);
    assert.equal(rec.parseErrors[0].error.code, 'MISSING_HEADER');
    assert.equal(layer.stats().parseErrors.MISSING_HEADER, 1);
    assert.equal(layer.stats().tcp.open, 0);
    assert.equal(rec.messages.length, 0);
  } finally {
    phone.close();
    await layer.close();
  }
});

test('size limits on TCP: 413 when Content-Length is over the limit; endless headers close the connection', async () => {
  const { layer, rec, port } = await startLayer([ID], { limits: { maxMessageSize: 2000 } });
  const a = await TcpPeer.connect(port(ID));
  const b = await TcpPeer.connect(port(ID));
  try {
    a.write(request({ transport: 'TCP', body: 'x'.repeat(3000) }));
    const text = await a.waitText((s) => statusOf(s) !== undefined, '413');
    assert.equal(statusOf(text), 413);
    await a.waitClosed();

    b.write('OPTIONS sip:x SIP/2.0\r\n');
    for (let i = 0; i < 100; i++) b.write('X-Pad: ' + 'p'.repeat(40) + '\r\n');
    await b.waitClosed();
    assert.equal(b.text(), '', 'no response without a complete header block');
    assert.equal(layer.stats().parseErrors.TOO_LARGE, 2);
    assert.equal(layer.stats().tcp.errorClosed, 2);
    assert.equal(rec.messages.length, 0);
  } finally {
    a.close();
    b.close();
    await layer.close();
  }
});

test('parse errors on a framed TCP message are answered and the connection stays', async () => {
  const { layer, rec, port } = await startLayer([ID]);
  const phone = await TcpPeer.connect(port(ID));
  try {
    phone.write(request({ transport: 'TCP', extra: 'CSeq: 2 OPTIONS\r\n' }));
    await phone.waitText((s) => statusOf(s) === 400, '400');
    phone.write(request({ transport: 'TCP', callId: 'ok' }));
    const m = await rec.message(1);
    assert.equal(getHeader(m.message, 'call-id'), 'ok');
    assert.equal(layer.stats().dropped, 1);
  } finally {
    phone.close();
    await layer.close();
  }
});

test('requests to a peer that connected to us reuse its connection; NO_CONNECTION once it is gone', async () => {
  const { layer, rec, port } = await startLayer([ID]);
  // where the UA's Via sent-by points (for the RFC 3261 §18.2.2 fallback at the end)
  const fallback = net.createServer();
  fallback.listen(0, '127.0.0.1');
  await once(fallback, 'listening');
  const fport = (fallback.address() as net.AddressInfo).port;
  const atFallback: TcpPeer[] = [];
  fallback.on('connection', (s) => atFallback.push(TcpPeer.wrap(s)));
  const phone = await TcpPeer.connect(port(ID));
  try {
    phone.write(request({ method: 'REGISTER', transport: 'TCP', host: `127.0.0.1:${fport}` }));
    const reg = await rec.message(1);
    const cid = reg.flow.connectionId!;
    const invite = sipRequest(request({ method: 'INVITE', callId: 'incoming' }));

    // by address:port (what a binding's received/rport gives)
    const r1 = layer.sendRequest(invite, { transport: 'tcp', address: '127.0.0.1', port: phone.localPort });
    assert.ok(r1.ok && r1.flow.connectionId === cid);
    // by the flow's connectionId
    const r2 = layer.sendRequest(invite, { transport: 'tcp', address: '127.0.0.1', port: phone.localPort, connectionId: cid });
    assert.ok(r2.ok && r2.flow.connectionId === cid);
    await phone.waitText((s) => s.split('INVITE sip:').length === 3, 'two INVITEs');
    assert.equal(layer.stats().tcp.connected, 0, 'no outbound connection was opened');

    phone.close();
    await rec.waitFor(() => rec.closed.length === 1, 'close noticed');
    assert.equal(rec.closed[0].connectionId, cid);
    assert.equal(layer.connectionOpen(cid), false);
    const r3 = layer.sendRequest(invite, { transport: 'tcp', address: '127.0.0.1', port: phone.localPort, connectionId: cid });
    assert.equal(!r3.ok && r3.code, 'NO_CONNECTION');
    assert.equal(layer.stats().tcp.connected, 0, 'never a new connection for a gone flow');

    // a response whose connection is gone goes to received + sent-by port on a new connection
    const r4 = layer.sendResponse(createResponse(reg.message as SipRequest, 200, 'OK'), reg);
    assert.ok(r4.ok && r4.flow.connectionId !== cid);
    await waitUntil(() => atFallback.length === 1 && statusOf(atFallback[0].text()) === 200, '200 at the sent-by port');
  } finally {
    phone.close();
    for (const p of atFallback) p.close();
    await layer.close();
    await new Promise((r) => fallback.close(r));
  }
});

test('outbound connection: bytes queued until connected, replies arrive on the same flow, then reused', async () => {
  const { layer, rec } = await startLayer([ID]);
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const sport = (server.address() as net.AddressInfo).port;
  const accepted: TcpPeer[] = [];
  server.on('connection', (s) => accepted.push(TcpPeer.wrap(s)));
  try {
    const opt = sipRequest(request({ callId: 'out' }));
    const r1 = layer.sendRequest(opt, { transport: 'tcp', address: '127.0.0.1', port: sport });
    assert.ok(r1.ok);
    const cid = r1.flow.connectionId!;
    assert.equal(typeof cid, 'number');
    assert.equal(r1.flow.local.socketId, ID);
    const r2 = layer.sendRequest(opt, { transport: 'tcp', address: '127.0.0.1', port: sport });
    assert.ok(r2.ok && r2.flow.connectionId === cid, 'second send reuses the connecting connection');
    await waitUntil(() => accepted.length === 1 && accepted[0].text().split('OPTIONS sip:').length === 3, 'two requests at the peer');
    assert.equal(accepted[0].socket.remoteAddress, '127.0.0.1');

    accepted[0].write('SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:b@b>;tag=2\r\nCall-ID: out\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n');
    const resp = await rec.message(1);
    assert.equal(resp.message.type, 'response');
    assert.equal(resp.flow.connectionId, cid);
    assert.equal(layer.stats().tcp.connected, 1);
    assert.equal(accepted.length, 1);
  } finally {
    for (const a of accepted) a.close();
    await layer.close();
    await new Promise((r) => server.close(r));
  }
});

test('connect failure is reported via onSendFailure and counted', async () => {
  const { layer, rec } = await startLayer([ID]);
  // a port that was just free
  const tmp = net.createServer();
  tmp.listen(0, '127.0.0.1');
  await once(tmp, 'listening');
  const dead = (tmp.address() as net.AddressInfo).port;
  await new Promise((r) => tmp.close(r));
  try {
    const r = layer.sendRaw(Buffer.from(request()), { transport: 'tcp', address: '127.0.0.1', port: dead });
    assert.ok(r.ok, 'accepted, queued until connected');
    await rec.waitFor(() => rec.sendFailures.length === 1, 'onSendFailure');
    assert.equal(rec.sendFailures[0].code, 'CONNECT_FAILED');
    assert.equal(rec.sendFailures[0].dest.port, dead);
    assert.match(rec.sendFailures[0].detail, /ECONNREFUSED/);
    assert.equal(layer.stats().tcp.connectFailures, 1);
    await rec.waitFor(() => layer.stats().tcp.open === 0, 'connection removed');
    assert.equal(layer.connectionOpen(r.ok ? r.flow.connectionId! : -1), false);
  } finally {
    await layer.close();
  }
});

test('connection limit refuses extra inbound connections', async () => {
  const { layer, rec, port } = await startLayer([ID], { limits: { maxConnections: 1 } });
  const a = await TcpPeer.connect(port(ID));
  try {
    a.write(request({ transport: 'TCP' }));
    await rec.message(1);
    const b = await TcpPeer.connect(port(ID));
    await b.waitClosed();
    assert.equal(layer.stats().tcp.rejected, 1);
    assert.equal(layer.stats().tcp.open, 1);
  } finally {
    a.close();
    await layer.close();
  }
});

test('idle connections are closed after tcpIdleTimeoutMs (injected clock)', async () => {
  const clock = new FakeClock();
  const { layer, rec, port } = await startLayer([ID], { clock, limits: { tcpIdleTimeoutMs: 1000 } });
  const phone = await TcpPeer.connect(port(ID));
  try {
    phone.write(request({ transport: 'TCP' }));
    await rec.message(1);
    clock.advance(600);
    assert.equal(layer.stats().tcp.open, 1);
    phone.write('\r\n\r\n'); // activity resets the idle time
    await phone.waitText((s) => s === '\r\n', 'pong');
    clock.advance(600);
    assert.equal(layer.stats().tcp.idleClosed, 0);
    clock.advance(1000);
    assert.equal(layer.stats().tcp.idleClosed, 1);
    await phone.waitClosed();
  } finally {
    phone.close();
    await layer.close();
  }
});

test('IPv6 TCP on ::1', async () => {
  const { layer, rec, port } = await startLayer(['tcp:[::1]:0']);
  const phone = await TcpPeer.connect(port('tcp:[::1]:0'), '::1');
  try {
    phone.write(request({ transport: 'TCP', host: '[2001:db8::1]:5060' }));
    const m = await rec.message(1);
    assert.match(getHeader(m.message, 'via')!, new RegExp(`^SIP/2\\.0/TCP \\[2001:db8::1\\]:5060;branch=[^;]+;received=::1;rport=${phone.localPort}$`));
    const r = layer.sendResponse(createResponse(m.message as SipRequest, 200, 'OK'), m);
    assert.ok(r.ok);
    await phone.waitText((s) => statusOf(s) === 200, '200');
  } finally {
    phone.close();
    await layer.close();
  }
});

test('close() closes listeners and connections and leaves no handles', async () => {
  const before = new Set(process.getActiveResourcesInfo().filter((r) => /UDP|TCP/.test(r)));
  await waitUntil(() => process.getActiveResourcesInfo().filter((r) => /UDP|TCP/.test(r)).length === 0, `no leftover handles: ${[...before].join(",")}`);
  const { layer, rec, port } = await startLayer([ID, 'udp:127.0.0.1:0', 'tcp:[::1]:0']);
  const phone = await TcpPeer.connect(port(ID));
  phone.write(request({ transport: 'TCP' }));
  await rec.message(1);
  const server = net.createServer((s) => s.on('error', () => {}));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  layer.sendRaw(Buffer.from(request()), { transport: 'tcp', address: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
  await layer.close();
  await layer.close(); // idempotent
  const left = process.getActiveResourcesInfo().filter((r) => /UDP|TCP/.test(r));
  // only the test's own server and its accepted/peer sockets may remain
  assert.ok(!left.includes('UDPWrap'), `UDP handle left after close(): ${left.join(',')}`);
  await phone.waitClosed();
  await new Promise((r) => server.close(r));
  await waitUntil(() => process.getActiveResourcesInfo().filter((r) => /UDP|TCP/.test(r)).length === 0, 'all socket handles closed');
  const after = layer.sendRaw(Buffer.from('x'), { transport: 'udp', address: '127.0.0.1', port: 9 });
  assert.equal(!after.ok && after.code, 'NO_SOCKET');
});

test('a process that used every socket kind exits on its own after close()', async () => {
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./fixtures/exit-child.ts', import.meta.url))], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(timer);
  assert.equal(signal, null, `child did not exit by itself: ${out}`);
  assert.equal(code, 0, out);
  assert.match(out, /closed/);
});

test('random octets on TCP never break the layer', async () => {
  const { layer, rec, port } = await startLayer([ID]);
  let seed = 42;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const pieces = ['\r\n', '\r\n\r\n', 'INVITE ', ' SIP/2.0\r\n', 'SIP/2.0 200 OK\r\n', 'Content-Length: ', '9999999', 'l: 3\r\n', '\n\n', 'Via: SIP/2.0/TCP x\r\n'];
  try {
    for (let round = 0; round < 20; round++) {
      const peer = await TcpPeer.connect(port(ID));
      for (let i = 0; i < 50; i++) {
        if (rnd() < 0.5) peer.write(pieces[Math.floor(rnd() * pieces.length)]);
        else peer.write(Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 40) }, () => Math.floor(rnd() * 256))));
      }
      peer.write('\r\n' + request({ transport: 'TCP', callId: `r${round}` }));
      await new Promise((r) => setTimeout(r, 5));
      peer.close();
    }
    const ok = await TcpPeer.connect(port(ID));
    ok.write(request({ transport: 'TCP', callId: 'final' }));
    await rec.waitFor(() => rec.messages.some((m) => getHeader(m.message, 'call-id') === 'final'), 'layer still works');
    ok.close();
  } finally {
    await layer.close();
  }
});
