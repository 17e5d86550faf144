/**
 * Public-address discovery methods (issue 4 item 4), each against a real server on 127.0.0.1
 * port 0: the IMDS emulator (AWS IMDSv2, GCP, Azure), a server that never answers, a STUN
 * responder built from src/stun, and an injected resolver for `publicAddress.host`.
 * Nothing here talks to a real metadata service, DNS server or the internet.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import {
  AWS_PUBLIC_IPV4_PATH,
  AWS_TOKEN_PATH,
  AZURE_PUBLIC_IP_PATH,
  GCP_EXTERNAL_IP_PATH,
  checkDiscoveredAddress,
  discoverAws,
  discoverAzure,
  discoverGcp,
  discoverHost,
  discoverPublicAddress,
  discoverStun,
  parseStunServer,
  type DiscoverResult,
  type FetchLike,
  type HostResolver,
} from '../../src/nat/discover.js';
import { stunBindingResponse } from '../../src/stun/responder.js';
import { StunMethod, decodeStun, encodeStun, errorCodeAttribute } from '../../src/stun/message.js';
import { startImds, startSilentHttp, type ImdsEmulator } from '../helpers/imds.js';

const PUBLIC = '203.0.113.10';

async function emulator(t: { after: (fn: () => Promise<void>) => void }, ip: string | null = PUBLIC): Promise<ImdsEmulator> {
  const emu = await startImds({ ip: ip ?? undefined });
  t.after(() => emu.close());
  return emu;
}

/** A fetch that drops the named request headers (a client that forgot them). */
function withoutHeaders(...names: string[]): FetchLike {
  return (input, init) => {
    const headers = new Headers(init.headers);
    for (const n of names) headers.delete(n);
    return fetch(input, { ...init, headers });
  };
}

function assertFail(r: DiscoverResult, code: string, detail?: RegExp): void {
  assert.equal(r.ok, false, JSON.stringify(r));
  if (r.ok) return;
  assert.equal(r.code, code, JSON.stringify(r));
  if (detail) assert.match(r.detail, detail);
}

// ---------------------------------------------------------------- answer validation

test('checkDiscoveredAddress: unicast accepted, private warned, non-unicast and garbage rejected', () => {
  assert.deepEqual(checkDiscoveredAddress(' 203.0.113.10\n', 'aws'), { ok: true, address: PUBLIC, source: 'aws' });
  assert.deepEqual(checkDiscoveredAddress('8.8.8.8', 'gcp'), { ok: true, address: '8.8.8.8', source: 'gcp' });
  assert.deepEqual(checkDiscoveredAddress('2001:DB8:0:0::1', 'stun'), { ok: true, address: '2001:db8::1', source: 'stun' });
  assert.deepEqual(checkDiscoveredAddress('::ffff:198.51.100.4', 'stun'), { ok: true, address: '198.51.100.4', source: 'stun' });
  for (const priv of ['10.0.0.10', '192.168.1.1', '172.16.5.5', '100.64.0.1', '127.0.0.1', '169.254.1.1', 'fd00::1', 'fe80::1']) {
    const r = checkDiscoveredAddress(priv, 'azure');
    assert.ok(r.ok, priv);
    assert.match(r.warning ?? '', /advertising it anyway/, priv);
  }
  for (const bad of ['', '   ', 'not-an-ip', '203.0.113', '999.1.2.3', '0x7f.1.1.1', 'fe80::1%eth0', 'example.org', '0.0.0.0', '::', '224.0.0.1', 'ff02::1', '255.255.255.255']) {
    assertFail(checkDiscoveredAddress(bad, 'aws'), 'BAD_ANSWER');
  }
});

// ---------------------------------------------------------------- AWS IMDSv2

test('aws: IMDSv2 token PUT then GET public-ipv4 with the token', async (t) => {
  const emu = await emulator(t);
  const r = await discoverAws({ baseUrl: emu.url });
  assert.deepEqual(r, { ok: true, address: PUBLIC, source: 'aws' });
  assert.equal(emu.count(AWS_TOKEN_PATH), 1);
  assert.equal(emu.count(AWS_PUBLIC_IPV4_PATH), 1);
  const [put, get] = emu.requests;
  assert.equal(put.method, 'PUT');
  assert.equal(put.headers['x-aws-ec2-metadata-token-ttl-seconds'], '21600');
  assert.equal(get.method, 'GET');
  assert.ok(get.headers['x-aws-ec2-metadata-token'], 'token sent');
  assert.equal(get.status, 200);
  // A base URL with a trailing slash works the same.
  assert.deepEqual(await discoverAws({ baseUrl: `${emu.url}/` }), { ok: true, address: PUBLIC, source: 'aws' });
});

test('aws: the emulator enforces the token flow, so a client without the headers fails', async (t) => {
  const emu = await emulator(t);
  // Raw requests: GET without a token → 401, PUT without TTL → 400, GET of the token path → 405.
  assert.equal((await fetch(emu.url + AWS_PUBLIC_IPV4_PATH)).status, 401);
  assert.equal((await fetch(emu.url + AWS_PUBLIC_IPV4_PATH, { headers: { 'X-aws-ec2-metadata-token': 'forged' } })).status, 401);
  assert.equal((await fetch(emu.url + AWS_TOKEN_PATH, { method: 'PUT' })).status, 400);
  assert.equal((await fetch(emu.url + AWS_TOKEN_PATH)).status, 405);
  // Our client with a header removed fails with the status in the detail.
  assertFail(await discoverAws({ baseUrl: emu.url, fetchImpl: withoutHeaders('X-aws-ec2-metadata-token') }), 'HTTP_ERROR', /HTTP 401/);
  assertFail(await discoverAws({ baseUrl: emu.url, fetchImpl: withoutHeaders('X-aws-ec2-metadata-token-ttl-seconds') }), 'HTTP_ERROR', /token PUT.*HTTP 400/);
});

test('aws: no public IPv4 (404), garbage, a dead metadata service', async (t) => {
  const emu = await emulator(t, null);
  assertFail(await discoverAws({ baseUrl: emu.url }), 'HTTP_ERROR', /HTTP 404.*no public IPv4/);
  emu.setIp(PUBLIC);
  emu.setBehavior('aws', 'garbage');
  assertFail(await discoverAws({ baseUrl: emu.url }), 'BAD_ANSWER', /not-an-ip/);
  emu.setBehavior('aws', 'error');
  assertFail(await discoverAws({ baseUrl: emu.url }), 'HTTP_ERROR', /HTTP 500/);
  // Connection refused: a port that was just closed.
  const srv = http.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  assertFail(await discoverAws({ baseUrl: `http://127.0.0.1:${port}` }), 'HTTP_ERROR', /ECONNREFUSED/);
});

// ---------------------------------------------------------------- GCP

test('gcp: external-ip with Metadata-Flavor: Google', async (t) => {
  const emu = await emulator(t);
  assert.deepEqual(await discoverGcp({ baseUrl: emu.url }), { ok: true, address: PUBLIC, source: 'gcp' });
  assert.equal(emu.count(GCP_EXTERNAL_IP_PATH), 1);
  assert.equal(emu.requests[0].headers['metadata-flavor'], 'Google');
  // Enforcement: 403 without the header, raw and through our client.
  assert.equal((await fetch(emu.url + GCP_EXTERNAL_IP_PATH)).status, 403);
  assertFail(await discoverGcp({ baseUrl: emu.url, fetchImpl: withoutHeaders('Metadata-Flavor') }), 'HTTP_ERROR', /HTTP 403/);
});

test('gcp: an answer without Metadata-Flavor is not believed; no external IP is a 404', async (t) => {
  const notGoogle: FetchLike = async () => new Response(PUBLIC, { status: 200 });
  assertFail(await discoverGcp({ baseUrl: 'http://gcp.test', fetchImpl: notGoogle }), 'BAD_ANSWER', /Metadata-Flavor/);
  const emu = await emulator(t, null);
  assertFail(await discoverGcp({ baseUrl: emu.url }), 'HTTP_ERROR', /HTTP 404/);
  emu.setIp(PUBLIC);
  emu.setBehavior('gcp', 'garbage');
  assertFail(await discoverGcp({ baseUrl: emu.url }), 'BAD_ANSWER', /not an IP address/);
});

test('gcp: an unresolvable metadata host is DNS (injected fetch error, no real lookup)', async () => {
  const enotfound: FetchLike = async () => {
    throw Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('getaddrinfo ENOTFOUND metadata.google.internal'), { code: 'ENOTFOUND' }) });
  };
  assertFail(await discoverGcp({ fetchImpl: enotfound }), 'DNS', /metadata\.google\.internal.*ENOTFOUND/);
});

// ---------------------------------------------------------------- Azure

test('azure: publicIpAddress with Metadata: true, api-version and format=text', async (t) => {
  const emu = await emulator(t);
  assert.deepEqual(await discoverAzure({ baseUrl: emu.url }), { ok: true, address: PUBLIC, source: 'azure' });
  const req = emu.requests[0];
  assert.equal(req.path, AZURE_PUBLIC_IP_PATH);
  assert.equal(req.headers['metadata'], 'true');
  const q = new URLSearchParams(req.query);
  assert.equal(q.get('api-version'), '2021-02-01');
  assert.equal(q.get('format'), 'text');
  // Enforcement: 400 without the header or without api-version.
  assert.equal((await fetch(`${emu.url}${AZURE_PUBLIC_IP_PATH}?api-version=2021-02-01&format=text`)).status, 400);
  assert.equal((await fetch(`${emu.url}${AZURE_PUBLIC_IP_PATH}?format=text`, { headers: { Metadata: 'true' } })).status, 400);
  assertFail(await discoverAzure({ baseUrl: emu.url, fetchImpl: withoutHeaders('Metadata') }), 'HTTP_ERROR', /HTTP 400.*metadata header/);
});

test('azure: no public IP (empty 200) and garbage are BAD_ANSWER', async (t) => {
  const emu = await emulator(t, null);
  assertFail(await discoverAzure({ baseUrl: emu.url }), 'BAD_ANSWER', /empty answer/);
  emu.setIp(PUBLIC);
  emu.setBehavior('azure', 'garbage');
  assertFail(await discoverAzure({ baseUrl: emu.url }), 'BAD_ANSWER', /999\.1\.2\.3/);
});

test('metadata: an over-long answer is BAD_ANSWER', async () => {
  const huge: FetchLike = async () => new Response('1'.repeat(100_000), { status: 200, headers: { 'Metadata-Flavor': 'Google' } });
  assertFail(await discoverGcp({ fetchImpl: huge }), 'BAD_ANSWER', /too long/);
  assertFail(await discoverAzure({ fetchImpl: huge }), 'BAD_ANSWER', /too long/);
});

// ---------------------------------------------------------------- timeouts

test('timeouts: a server that never answers gives TIMEOUT after timeoutMs, for every cloud', async (t) => {
  const silent = await startSilentHttp();
  t.after(silent.close);
  for (const fn of [discoverAws, discoverGcp, discoverAzure]) {
    const started = performance.now();
    const r = await fn({ baseUrl: silent.url, timeoutMs: 150 });
    const took = performance.now() - started;
    assertFail(r, 'TIMEOUT', /within 150 ms/);
    assert.ok(took >= 140 && took < 1500, `${fn.name} took ${took} ms`);
  }
  assert.equal(silent.requests, 3);
});

test('timeouts: the deadline covers both AWS requests (token answered, then the GET hangs)', async (t) => {
  const emu = await emulator(t);
  const silent = await startSilentHttp();
  t.after(silent.close);
  // The token comes from the emulator; the public-ipv4 GET goes to a server that never answers.
  const split: FetchLike = (input, init) => fetch(input.endsWith(AWS_PUBLIC_IPV4_PATH) ? silent.url + AWS_PUBLIC_IPV4_PATH : input, init);
  const started = performance.now();
  assertFail(await discoverAws({ baseUrl: emu.url, timeoutMs: 250, fetchImpl: split }), 'TIMEOUT', /within 250 ms/);
  assert.ok(performance.now() - started < 1500);
  assert.equal(emu.count(AWS_TOKEN_PATH), 1);
  assert.equal(silent.requests, 1);
  // The emulator's own `hang` behaviour (used by the lab) times out the same way.
  emu.setBehavior('aws', 'hang');
  assertFail(await discoverAws({ baseUrl: emu.url, timeoutMs: 100 }), 'TIMEOUT');
});

test('timeouts: an external abort signal ends the attempt as TIMEOUT', async (t) => {
  const silent = await startSilentHttp();
  t.after(silent.close);
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 50);
  const started = performance.now();
  assertFail(await discoverGcp({ baseUrl: silent.url, timeoutMs: 5000, signal: ac.signal }), 'TIMEOUT', /aborted/);
  assert.ok(performance.now() - started < 2000);
});

// ---------------------------------------------------------------- host (externhost)

test('host: A first, then AAAA; failures are DNS; an IP literal is taken as is', async () => {
  const calls: Array<[string, number]> = [];
  const records: Record<number, string[] | Error> = { 4: ['198.51.100.20', '198.51.100.21'], 6: ['2001:db8::20'] };
  const resolver: HostResolver = async (host, family) => {
    calls.push([host, family]);
    const r = records[family];
    if (r instanceof Error) throw r;
    return r;
  };
  assert.deepEqual(await discoverHost({ host: 'pbx.example.org', resolveHost: resolver }), { ok: true, address: '198.51.100.20', source: 'host' });
  assert.deepEqual(calls, [['pbx.example.org', 4]]);

  records[4] = Object.assign(new Error('queryA ENODATA'), { code: 'ENODATA' });
  calls.length = 0;
  assert.deepEqual(await discoverHost({ host: 'pbx.example.org', resolveHost: resolver }), { ok: true, address: '2001:db8::20', source: 'host' });
  assert.deepEqual(calls, [['pbx.example.org', 4], ['pbx.example.org', 6]]);

  records[4] = ['0.0.0.0']; // unusable A record → falls through to AAAA
  assert.equal((await discoverHost({ host: 'pbx.example.org', resolveHost: resolver }) as { address?: string }).address, '2001:db8::20');

  records[4] = Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' });
  records[6] = [];
  assertFail(await discoverHost({ host: 'pbx.example.org', resolveHost: resolver }), 'DNS', /A: ENOTFOUND; AAAA: no records/);

  assert.deepEqual(await discoverHost({ host: '203.0.113.99', resolveHost: resolver }), { ok: true, address: '203.0.113.99', source: 'host' });
});

test('host: a resolver slower than timeoutMs gives TIMEOUT', async () => {
  const slow: HostResolver = () => new Promise((r) => setTimeout(() => r(['198.51.100.20']), 1000).unref());
  const started = performance.now();
  assertFail(await discoverHost({ host: 'pbx.example.org', resolveHost: slow, timeoutMs: 100 }), 'TIMEOUT', /100 ms/);
  assert.ok(performance.now() - started < 800);
});

// ---------------------------------------------------------------- STUN (our src/stun client)

/** A STUN responder (src/stun/responder.ts) on 127.0.0.1:0, or a silent UDP socket. */
async function stunServer(t: { after: (fn: () => Promise<void>) => void }, answer = true) {
  const sock = dgram.createSocket('udp4');
  let received = 0;
  sock.on('message', (msg, rinfo) => {
    received++;
    if (!answer) return;
    const out = stunBindingResponse(msg, rinfo, { software: 'sipedge-test' });
    if (out) sock.send(out, rinfo.port, rinfo.address);
  });
  sock.bind(0, '127.0.0.1');
  await once(sock, 'listening');
  t.after(() => new Promise<void>((r) => sock.close(() => r())));
  return {
    port: sock.address().port,
    get received() {
      return received;
    },
  };
}

test('stun: server list parsing (host, host:port, [v6]:port, bare v6; default 3478)', () => {
  assert.deepEqual(parseStunServer('stun.example.org'), { host: 'stun.example.org', port: 3478 });
  assert.deepEqual(parseStunServer('stun.example.org:19302'), { host: 'stun.example.org', port: 19302 });
  assert.deepEqual(parseStunServer('192.0.2.1:3479'), { host: '192.0.2.1', port: 3479 });
  assert.deepEqual(parseStunServer('[2001:db8::1]:3480'), { host: '2001:db8::1', port: 3480 });
  assert.deepEqual(parseStunServer('2001:db8::1'), { host: '2001:db8::1', port: 3478 });
  assert.deepEqual(parseStunServer('[2001:db8::1]'), { host: '2001:db8::1', port: 3478 });
  assert.equal(parseStunServer('stun.example.org:0'), undefined);
  assert.equal(parseStunServer('bad host'), undefined);
});

test('stun: Binding against a local responder gives our mapped address', async (t) => {
  const srv = await stunServer(t);
  const r = await discoverStun({ servers: [`127.0.0.1:${srv.port}`], localAddress: '127.0.0.1' });
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.address, '127.0.0.1');
  assert.equal(r.source, 'stun');
  assert.match(r.warning ?? '', /loopback/, 'a loopback mapped address is accepted with a warning');
  assert.equal(srv.received, 1);
});

test('stun: servers are tried in order; a silent first server falls through to the second', async (t) => {
  const silent = await stunServer(t, false);
  const good = await stunServer(t);
  const started = performance.now();
  const r = await discoverStun({ servers: [`127.0.0.1:${silent.port}`, `127.0.0.1:${good.port}`], timeoutMs: 150 });
  assert.ok(r.ok, JSON.stringify(r));
  assert.ok(silent.received >= 1 && good.received === 1);
  assert.ok(performance.now() - started < 1500);

  const allSilent = await discoverStun({ servers: [`127.0.0.1:${silent.port}`], timeoutMs: 100 });
  assertFail(allSilent, 'TIMEOUT', new RegExp(`127\\.0\\.0\\.1:${silent.port}: TIMEOUT`));
});

test('stun: no usable servers is NO_SERVERS; an unresolvable name is DNS', async () => {
  assertFail(await discoverStun({}), 'NO_SERVERS', /empty/);
  assertFail(await discoverStun({ servers: [] }), 'NO_SERVERS');
  assertFail(await discoverStun({ servers: ['not a server'] }), 'NO_SERVERS', /invalid: not a server/);
  const r = await discoverStun({ servers: ['stun.test.invalid'], lookup: async () => Promise.reject(new Error('getaddrinfo ENOTFOUND stun.test.invalid')) });
  assertFail(r, 'DNS', /stun\.test\.invalid/);
});

test('stun: an error response from a real server is BAD_ANSWER; a later server still wins', async (t) => {
  const sock = dgram.createSocket('udp4');
  sock.on('message', (msg, rinfo) => {
    const d = decodeStun(msg);
    if (!d.ok) return;
    const err = encodeStun({ method: StunMethod.Binding, class: 'error', transactionId: d.message.transactionId, attributes: [errorCodeAttribute(500)] });
    sock.send(err, rinfo.port, rinfo.address);
  });
  sock.bind(0, '127.0.0.1');
  await once(sock, 'listening');
  t.after(() => new Promise<void>((r) => sock.close(() => r())));
  const failing = `127.0.0.1:${sock.address().port}`;
  assertFail(await discoverStun({ servers: [failing] }), 'BAD_ANSWER', /ERROR_RESPONSE 500 Server Error/);
  const good = await stunServer(t);
  const r = await discoverStun({ servers: [failing, `127.0.0.1:${good.port}`] });
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.address, '127.0.0.1');
});

// ---------------------------------------------------------------- the configured strategy

test('discoverPublicAddress: methods in order; aws fails → gcp used', async (t) => {
  const emu = await emulator(t);
  emu.setBehavior('aws', 'down');
  const run = await discoverPublicAddress(
    { discover: ['aws', 'gcp', 'azure'], refresh: 600, metadata: { aws: emu.url, gcp: emu.url, azure: emu.url } },
    { timeoutMs: 500 },
  );
  assert.equal(run.mode, 'discover');
  assert.deepEqual(run.result, { ok: true, address: PUBLIC, source: 'gcp' });
  assert.deepEqual(
    run.attempts.map((a) => [a.source, a.ok]),
    [
      ['aws', false],
      ['gcp', true],
    ],
  );
  assert.equal(emu.count(AWS_TOKEN_PATH), 1);
  assert.equal(emu.count(AZURE_PUBLIC_IP_PATH), 0, 'azure not asked once gcp answered');
});

test('discoverPublicAddress: stun after failing clouds; fixed ip; host; nothing configured', async (t) => {
  const emu = await emulator(t, null);
  const srv = await stunServer(t);
  const run = await discoverPublicAddress(
    { discover: ['aws', 'azure', 'stun'], refresh: 600, metadata: { aws: emu.url, azure: emu.url }, stunServers: [`127.0.0.1:${srv.port}`] },
    { timeoutMs: 500 },
  );
  assert.equal(run.result?.source, 'stun');
  assert.deepEqual(
    run.attempts.map((a) => (a.ok ? a.source : `${a.source}:${a.code}`)),
    ['aws:HTTP_ERROR', 'azure:BAD_ANSWER', 'stun'],
  );

  assert.deepEqual(await discoverPublicAddress({ ip: PUBLIC, refresh: 600 }), {
    mode: 'ip',
    result: { ok: true, address: PUBLIC, source: 'config' },
    attempts: [{ ok: true, address: PUBLIC, source: 'config' }],
  });
  const host = await discoverPublicAddress({ host: 'pbx.example.org', refresh: 600 }, { resolveHost: async () => ['198.51.100.30'] });
  assert.equal(host.result?.address, '198.51.100.30');
  assert.equal(host.result?.source, 'host');
  assert.deepEqual(await discoverPublicAddress({ refresh: 600 }), { mode: 'none', result: undefined, attempts: [] });
});
