/**
 * The SIPp scenarios themselves, without the edge: each loads in SIPp, and the callee scenario
 * answers SIPp's built-in caller straight over loopback. (The full flows, with the 401/407
 * challenges and the Record-Route, need the edge: see core.test.ts.)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { writeRtpPcap } from '../helpers/rtp_pcap.js';
import { test } from 'node:test';
import { freePort, makeTempDir } from '../helpers/edge.js';
import { SCENARIO_DIR, describe as describeSipp, requireSipp, runSipp, startSippServer } from '../helpers/sipp.js';

const KEYS = ['-key', 'domain', '127.0.0.1', '-key', 'caller', '1001', '-key', 'contact', '127.0.0.1:5060', '-key', 'expires', '60'];

test('every SIPp scenario in test/e2e/scenarios loads (sipp -m 0)', () => {
  requireSipp();
  const files = fs.readdirSync(SCENARIO_DIR).filter((f) => f.endsWith('.xml'));
  assert.ok(files.length >= 8, `scenarios found: ${files.join(', ')}`);
  // Scenarios that play RTP name pcap files the tests generate at run time (relative to SIPp's
  // working directory): give SIPp a directory where each of them exists.
  const cwd = makeTempDir('sipedge-sipp-load');
  for (const f of files) {
    const xml = fs.readFileSync(`${SCENARIO_DIR}/${f}`, 'latin1');
    for (const m of xml.matchAll(/play_pcap_audio="([^"/]+)"/g)) writeRtpPcap(path.join(cwd, m[1]), { packets: 2 });
  }
  for (const f of files) {
    // -m 0: parse the scenario, place no call. 127.0.0.1:9 (discard) is never contacted.
    const r = spawnSync('sipp', ['-sf', `${SCENARIO_DIR}/${f}`, '127.0.0.1:9', '-i', '127.0.0.1', '-m', '0', '-nostdin', '-timeout', '2s', ...KEYS], {
      encoding: 'latin1',
      timeout: 15_000,
      cwd,
    });
    assert.equal(r.status, 0, `${f} does not load in SIPp (exit ${r.status}):\n${r.stdout.slice(-1500)}\n${r.stderr}`);
  }
});

test('uas.xml answers SIPp\'s built-in uac directly on loopback', async () => {
  requireSipp();
  const port = await freePort({ udp: true, tcp: false });
  const dir = makeTempDir('sipedge-sipp');
  const uas = await startSippServer({ scenario: 'uas', localPort: port, timeoutMs: 30_000, dir });
  const uac = await runSipp({ builtin: 'uac', remote: `127.0.0.1:${port}`, calls: 3, rate: 10, pauseMs: 100, timeoutMs: 30_000, dir });
  const server = await uas.stop();
  if (uac.failed === 0 && server.failed === 0) fs.rmSync(dir, { recursive: true, force: true });
  assert.equal(uac.failed, 0, describeSipp(uac));
  assert.equal(uac.successful, 3, describeSipp(uac));
  assert.equal(server.successful, 3, describeSipp(server));
  assert.equal(server.failed, 0, describeSipp(server));
});

