/**
 * PublicAddressManager: start, periodic refresh on a FakeClock, refresh on demand (reload/SIGHUP),
 * change notification and counting, the all-fail path (loud log, failing state, shorter retry),
 * host mode with an injected resolver, and close(). Metadata comes from the IMDS emulator on
 * 127.0.0.1 port 0; network deadlines are real time, refresh timers are the FakeClock's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { pino } from 'pino';
import { FakeClock } from '../../src/lib/clock.js';
import type { PublicAddressConfig } from '../../src/config/types.js';
import { PublicAddressManager, type PublicAddressSource } from '../../src/nat/public_address.js';
import { AWS_PUBLIC_IPV4_PATH, AWS_TOKEN_PATH, AZURE_PUBLIC_IP_PATH, GCP_EXTERNAL_IP_PATH, type HostResolver } from '../../src/nat/discover.js';
import { stunBindingResponse } from '../../src/stun/responder.js';
import { startImds, startSilentHttp, type ImdsEmulator } from '../helpers/imds.js';

const A = '203.0.113.10';
const B = '203.0.113.20';

interface LogLine {
  level: number;
  msg: string;
}

/** A pino logger that keeps every line, parsed. */
function captureLogger() {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as LogLine);
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

async function emulator(t: { after: (fn: () => Promise<void>) => void }, ip: string | null = A): Promise<ImdsEmulator> {
  const emu = await startImds({ ip: ip ?? undefined });
  t.after(() => emu.close());
  return emu;
}

function clouds(url: string, discover: PublicAddressConfig['discover'], refresh = 600): PublicAddressConfig {
  return { discover, refresh, metadata: { aws: url, gcp: url, azure: url } };
}

type Change = [string | undefined, string | undefined, PublicAddressSource];

function manager(t: { after: (fn: () => Promise<void>) => void }, config: PublicAddressConfig, extra: Partial<ConstructorParameters<typeof PublicAddressManager>[0]> = {}) {
  const clock = new FakeClock();
  const log = captureLogger();
  const m = new PublicAddressManager({ config, clock, logger: log.logger, timeoutMs: 2000, ...extra });
  const changes: Change[] = [];
  m.onChange((next, prev, source) => changes.push([next, prev, source]));
  t.after(() => m.close());
  return { m, clock, changes, lines: log.lines };
}

test('start: discover [aws] against the emulator; state for show settings; refresh timer armed', async (t) => {
  const emu = await emulator(t);
  const { m, clock, changes } = manager(t, clouds(emu.url, ['aws']));
  await m.start();
  const s = m.current();
  assert.equal(s.address, A);
  assert.equal(m.address, A);
  assert.equal(s.source, 'aws');
  assert.equal(s.mode, 'discover');
  assert.equal(s.failing, false);
  assert.equal(s.lastError, undefined);
  assert.equal(s.warning, undefined);
  assert.equal(s.lastRefresh, new Date(clock.wallNow()).toISOString());
  assert.equal(s.nextRefresh, new Date(clock.wallNow() + 600_000).toISOString());
  assert.deepEqual(s.attempts, [`aws: ${A}`]);
  assert.equal(s.changes, 0, 'the first discovery is not a change of a known address');
  assert.deepEqual(changes, [[A, undefined, 'aws']], 'listeners registered before start() learn the first address');
  assert.equal(clock.pending, 1);
  // start() twice is the same run.
  await m.start();
  assert.equal(emu.count(AWS_TOKEN_PATH), 1);
});

test('an IP change is picked up at the next refresh: onChange fires once, counted and logged', async (t) => {
  const emu = await emulator(t);
  const { m, clock, changes, lines } = manager(t, clouds(emu.url, ['aws'], 60));
  await m.start();
  emu.setIp(B);

  clock.advance(59_999);
  await m.settled();
  assert.equal(emu.count(AWS_PUBLIC_IPV4_PATH), 1, 'no refresh before the interval');
  assert.equal(m.address, A);

  clock.advance(1);
  await m.settled();
  assert.equal(emu.count(AWS_PUBLIC_IPV4_PATH), 2);
  assert.equal(m.address, B);
  assert.deepEqual(changes, [
    [A, undefined, 'aws'],
    [B, A, 'aws'],
  ]);
  assert.equal(m.changes, 1);
  assert.equal(m.current().changes, 1);
  assert.equal(m.current().lastRefresh, new Date(clock.wallNow()).toISOString());
  const changeLog = lines.find((l) => l.msg.includes(`changed from ${A} to ${B}`));
  assert.ok(changeLog, 'change logged');
  assert.equal(changeLog.level, 40);

  // Next refresh with the same IP: no new change.
  clock.advance(60_000);
  await m.settled();
  assert.equal(emu.count(AWS_PUBLIC_IPV4_PATH), 3);
  assert.equal(changes.length, 2);
  assert.equal(m.changes, 1);
  assert.equal(clock.pending, 1, 'exactly one refresh timer');
});

test('refresh() on demand (reload / SIGHUP): reports whether the address changed; can switch config', async (t) => {
  const emu = await emulator(t);
  const { m, clock, changes } = manager(t, clouds(emu.url, ['gcp'], 0));
  await m.start();
  assert.equal(m.address, A);
  assert.equal(clock.pending, 0, 'refresh 0: no periodic timer');
  assert.equal(m.current().nextRefresh, undefined);

  assert.equal(await m.refresh(), false);
  emu.setIp(B);
  assert.equal(await m.refresh(), true);
  assert.equal(m.address, B);
  assert.equal(emu.count(GCP_EXTERNAL_IP_PATH), 3);

  // Reload with a fixed address: source config, no timer.
  assert.equal(await m.refresh({ ip: '198.51.100.5', refresh: 600 }), true);
  assert.deepEqual([m.address, m.current().source, m.current().mode], ['198.51.100.5', 'config', 'ip']);
  assert.equal(clock.pending, 0);
  assert.deepEqual(changes.at(-1), ['198.51.100.5', B, 'config']);
  assert.equal(m.changes, 2);

  // Concurrent refreshes are serialized: both resolve, the second sees the first's result.
  emu.setIp(A);
  await m.refresh(clouds(emu.url, ['gcp'], 0));
  const [r1, r2] = await Promise.all([m.refresh(), m.refresh()]);
  assert.deepEqual([r1, r2], [false, false]);
});

test('fallback order: aws down → gcp used; azure never asked', async (t) => {
  const emu = await emulator(t);
  emu.setBehavior('aws', 'down');
  const { m } = manager(t, clouds(emu.url, ['aws', 'gcp', 'azure']));
  await m.start();
  const s = m.current();
  assert.equal(s.address, A);
  assert.equal(s.source, 'gcp');
  assert.equal(s.failing, false);
  assert.equal(s.attempts.length, 2);
  assert.match(s.attempts[0], /^aws: HTTP_ERROR/);
  assert.equal(s.attempts[1], `gcp: ${A}`);
  assert.equal(emu.count(AZURE_PUBLIC_IP_PATH), 0);
});

test('discover [aws, stun]: no metadata service → STUN against a local responder (src/stun)', async (t) => {
  const emu = await emulator(t);
  emu.setBehavior('aws', 'hang');
  const sock = dgram.createSocket('udp4');
  sock.on('message', (msg, rinfo) => {
    const out = stunBindingResponse(msg, rinfo);
    if (out) sock.send(out, rinfo.port, rinfo.address);
  });
  sock.bind(0, '127.0.0.1');
  await once(sock, 'listening');
  t.after(() => new Promise<void>((r) => sock.close(() => r())));
  const config: PublicAddressConfig = { ...clouds(emu.url, ['aws', 'stun']), stunServers: [`127.0.0.1:${sock.address().port}`] };
  const { m, lines } = manager(t, config, { timeoutMs: 200, stun: { localAddress: '127.0.0.1' } });
  await m.start();
  const s = m.current();
  assert.deepEqual([s.address, s.source, s.failing], ['127.0.0.1', 'stun', false]);
  assert.match(s.attempts[0], /^aws: TIMEOUT/);
  assert.match(s.warning ?? '', /loopback/, 'a non-public answer is surfaced as a warning');
  assert.ok(lines.some((l) => l.level === 40 && l.msg.includes('loopback')));
});

test('all methods fail: start still resolves, says "advertising private address", retries every min(refresh, 30 s)', async (t) => {
  const emu = await emulator(t);
  emu.setBehavior('aws', 'error');
  emu.setBehavior('azure', 'down');
  const { m, clock, changes, lines } = manager(t, clouds(emu.url, ['aws', 'azure'], 600));
  await m.start();
  let s = m.current();
  assert.equal(s.address, undefined);
  assert.equal(s.source, 'none');
  assert.equal(s.failing, true);
  assert.match(s.lastError ?? '', /aws: HTTP_ERROR .*HTTP 500.*; azure: HTTP_ERROR .*HTTP 404/);
  assert.match(s.warning ?? '', /advertising private address/);
  assert.equal(s.lastRefresh, undefined);
  assert.equal(s.lastAttempt, new Date(clock.wallNow()).toISOString());
  assert.equal(s.nextRefresh, new Date(clock.wallNow() + 30_000).toISOString());
  const loud = lines.find((l) => l.level === 50);
  assert.ok(loud, 'an error-level line');
  assert.match(loud.msg, /ADVERTISING PRIVATE ADDRESS/);
  assert.match(loud.msg, /retrying in 30 s/);
  assert.deepEqual(changes, []);

  // Still failing at the first retry (30 s, not 600 s).
  clock.advance(29_999);
  await m.settled();
  assert.equal(emu.count(AWS_TOKEN_PATH), 1);
  clock.advance(1);
  await m.settled();
  assert.equal(emu.count(AWS_TOKEN_PATH), 2);
  assert.equal(m.current().failing, true);
  assert.equal(lines.filter((l) => l.level === 50).length, 2);

  // The metadata service comes back: the next retry succeeds, then the normal interval applies.
  emu.setBehavior('aws', 'ok');
  clock.advance(30_000);
  await m.settled();
  s = m.current();
  assert.equal(s.address, A);
  assert.equal(s.failing, false);
  assert.equal(s.lastError, undefined);
  assert.equal(s.warning, undefined);
  assert.deepEqual(changes, [[A, undefined, 'aws']]);
  assert.ok(lines.some((l) => l.msg.includes('recovered')));
  assert.equal(s.nextRefresh, new Date(clock.wallNow() + 600_000).toISOString());
});

test('all fail with refresh 10 s retries at 10 s; with refresh 0 still retries at 30 s', async (t) => {
  const emu = await emulator(t, null);
  const short = manager(t, clouds(emu.url, ['gcp'], 10));
  await short.m.start();
  assert.equal(short.m.current().failing, true);
  short.clock.advance(10_000);
  await short.m.settled();
  assert.equal(emu.count(GCP_EXTERNAL_IP_PATH), 2);

  const zero = manager(t, clouds(emu.url, ['azure'], 0));
  await zero.m.start();
  assert.equal(zero.m.current().failing, true);
  assert.equal(zero.clock.pending, 1, 'refresh 0 still retries while failing');
  emu.setIp(B);
  zero.clock.advance(30_000);
  await zero.m.settled();
  assert.equal(zero.m.address, B);
  assert.equal(zero.clock.pending, 0, 'refresh 0: no timer once it works');
});

test('a failure after a success keeps the last known address, marked failing', async (t) => {
  const emu = await emulator(t);
  const { m, clock, changes, lines } = manager(t, clouds(emu.url, ['aws'], 60));
  await m.start();
  emu.setBehavior('aws', 'error');
  clock.advance(60_000);
  await m.settled();
  const s = m.current();
  assert.equal(s.address, A);
  assert.equal(s.source, 'aws');
  assert.equal(s.failing, true);
  assert.match(s.warning ?? '', new RegExp(`still advertising ${A.replace(/\./g, '\\.')}`));
  assert.equal(changes.length, 1, 'no change: the address is kept');
  assert.ok(lines.some((l) => l.level === 40 && l.msg.includes(`keeping ${A}`)));
  assert.equal(s.nextRefresh, new Date(clock.wallNow() + 30_000).toISOString());
});

test('host mode (externhost): re-resolved every refresh with the injected resolver', async (t) => {
  let answer = ['198.51.100.40'];
  const asked: Array<[string, number]> = [];
  const resolveHost: HostResolver = async (host, family) => {
    asked.push([host, family]);
    return family === 4 ? answer : [];
  };
  const { m, clock, changes } = manager(t, { host: 'pbx.example.org', refresh: 300 }, { resolveHost });
  await m.start();
  assert.deepEqual([m.address, m.current().source, m.current().mode], ['198.51.100.40', 'host', 'host']);
  answer = ['198.51.100.41'];
  clock.advance(300_000);
  await m.settled();
  assert.equal(m.address, '198.51.100.41');
  assert.deepEqual(changes.at(-1), ['198.51.100.41', '198.51.100.40', 'host']);
  assert.deepEqual(asked, [
    ['pbx.example.org', 4],
    ['pbx.example.org', 4],
  ]);
});

test('fixed ip and nothing configured: no timers, not failing', async (t) => {
  const fixed = manager(t, { ip: A, refresh: 600 });
  await fixed.m.start();
  assert.deepEqual([fixed.m.address, fixed.m.current().source, fixed.m.current().failing], [A, 'config', false]);
  assert.equal(fixed.clock.pending, 0);

  const none = manager(t, { refresh: 600 });
  await none.m.start();
  const s = none.m.current();
  assert.deepEqual([s.address, s.source, s.mode, s.failing, s.warning], [undefined, 'none', 'none', false, undefined]);
  assert.equal(none.clock.pending, 0);
  assert.deepEqual(none.changes, []);
});

test('a throwing listener is logged and does not stop the others', async (t) => {
  const { m, lines } = manager(t, { ip: A, refresh: 600 });
  const seen: string[] = [];
  m.onChange(() => {
    throw new Error('boom');
  });
  const off = m.onChange((next) => seen.push(String(next)));
  await m.start();
  assert.deepEqual(seen, [A]);
  assert.ok(lines.some((l) => l.level === 50 && l.msg.includes('listener failed')));
  off();
  await m.refresh({ ip: B, refresh: 600 });
  assert.deepEqual(seen, [A], 'unsubscribed');
});

test('close() cancels the timer and a run in progress; no listener afterwards', async (t) => {
  const silent = await startSilentHttp();
  t.after(silent.close);
  const { m, clock, changes } = manager(t, clouds(silent.url, ['aws'], 60), { timeoutMs: 10_000 });
  const started = performance.now();
  const starting = m.start();
  await new Promise((r) => setTimeout(r, 50));
  await m.close();
  await starting;
  assert.ok(performance.now() - started < 2000, 'the hanging request was aborted');
  assert.equal(clock.pending, 0);
  assert.deepEqual(changes, []);
  assert.equal(await m.refresh(), false, 'refresh after close is a no-op');
  assert.equal(clock.pending, 0);
});
