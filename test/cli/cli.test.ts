import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { createApiServer, type ApiServer } from '../../src/api/server.js';
import { parseConfigText } from '../../src/config/load.js';
import { closedPort, runCliProcess } from './helpers.js';
import { CALLS, PEERS, fakeEdge, type FakeEdge } from './fake-edge.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sipedge-cli-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(name: string, text: string): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, text);
  return p;
}

describe('sipedge check', () => {
  it('prints the effective settings of a good config and exits 0', async () => {
    const cfg = await file('good.yaml', 'listen: [udp:127.0.0.1:5060]\nusers: [{ username: "1001", password: "pw-1001" }]\n');
    const r = await runCliProcess(['check', '-c', cfg]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const printed = parseYaml(r.stdout) as Record<string, unknown>;
    assert.deepEqual(printed.listen, ['udp:127.0.0.1:5060']);
    assert.equal((printed.media as { ports: string }).ports, '10000-10999');
    assert.doesNotMatch(r.stdout, /pw-1001/, 'passwords are masked');
    // What check prints is itself a valid config.
    assert.equal(parseConfigText(r.stdout).ok, true);
  });

  it('--json prints JSON with the derived sockets; --show-secrets shows passwords', async () => {
    const cfg = await file('good2.yaml', 'users: [{ username: "1001", password: "pw-1001" }]\n');
    const r = await runCliProcess(['check', '-c', cfg, '--json', '--show-secrets']);
    assert.equal(r.code, 0, r.stderr);
    const json = JSON.parse(r.stdout) as { sockets: Array<{ id: string }>; users: Array<{ password: string }> };
    assert.equal(json.sockets[0].id, 'udp:0.0.0.0:5060');
    assert.equal(json.users[0].password, 'pw-1001');
  });

  it('prints each error with its key path and exits 2', async () => {
    const cfg = await file('bad.yaml', 'medai: {}\nmedia:\n  ports: 10001-10000\nusers:\n  - { username: "1", password: "" }\n');
    const r = await runCliProcess(['check', '-c', cfg]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /invalid configuration \(3 errors\)/);
    assert.match(r.stderr, /^ {2}medai: unknown key "medai" — did you mean "media"\? \(line 1, column 1\)$/m);
    assert.match(r.stderr, /^ {2}media\.ports: .+\(line 3, column 10\)$/m);
    assert.match(r.stderr, /^ {2}users\.0\.password: must not be empty/m);
  });

  it('warnings go to stderr, the config is still valid', async () => {
    const cfg = await file('warn.yaml', 'users: [{ username: "1001", password: change-me }]\n');
    const r = await runCliProcess(['check', '-c', cfg]);
    assert.equal(r.code, 0);
    assert.match(r.stderr, /^warning: users\.0\.password/m);
  });

  it('a missing file exits 2 naming the file', async () => {
    const r = await runCliProcess(['check', '-c', join(dir, 'nope.yaml')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /config file not found: .*nope\.yaml/);
  });

  it('a YAML syntax error gives line and column', async () => {
    const cfg = await file('syntax.yaml', 'nat:\n  clients: auto\n  clients: off\n');
    const r = await runCliProcess(['check', '-c', cfg]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /YAML syntax error at line 3, column 3/);
  });

  it('examples/sipedge.yaml passes check', async () => {
    const r = await runCliProcess(['check', '-c', 'examples/sipedge.yaml']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
  });
});

describe('sipedge start / usage errors', () => {
  it('start with an invalid config exits 2 without starting', async () => {
    const cfg = await file('bad-start.yaml', 'media: { relay: sometimes }\n');
    const r = await runCliProcess(['start', '-c', cfg]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not starting/);
    assert.match(r.stderr, /media\.relay: must be one of always, nat, never/);
  });

  it('unknown commands and bad arguments exit 64', async () => {
    assert.equal((await runCliProcess(['frobnicate'])).code, 64);
    const r = await runCliProcess(['show', 'everything']);
    assert.equal(r.code, 64);
    assert.match(r.stderr, /settings, peers, calls/);
    assert.equal((await runCliProcess([])).code, 64);
  });

  it('--help exits 0 and documents the exit codes', async () => {
    const r = await runCliProcess(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Exit codes:/);
  });
});

describe('sipedge show / reload against a running API', () => {
  let edge: FakeEdge;
  let server: ApiServer;
  let api: string;

  before(async () => {
    edge = fakeEdge();
    server = await createApiServer(edge, { listen: '127.0.0.1:0' });
    api = `http://127.0.0.1:${server.address.port}`;
  });
  after(async () => {
    await server.close();
  });

  it('show peers prints a table with the sip show peers columns', async () => {
    const r = await runCliProcess(['show', 'peers', '--api', api]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0], /^AOR\s+Contact\s+Received\s+Transport\s+NAT\s+Expires\s+Reachable\s+RTT\s+User-Agent$/);
    assert.match(lines[1], /^sip:1001@sip\.example\.org\s+sip:1001@192\.168\.1\.20:5060;transport=udp\s+198\.51\.100\.7:40312\s+UDP\s+yes \(contact-private,via-received\)\s+583s\s+yes\s+23 ms\s+Linphone\/5\.2\.0$/);
    assert.match(lines[2], /^sip:1002@sip\.example\.org\s+.+\s+TCP\s+no\s+3599s\s+unknown\s+-\s+evil\?\[2Jphone$/, 'control characters are masked');
    assert.match(lines[3], /2 bindings for 2 AORs: 1 behind NAT; 1 reachable, 0 unreachable, 1 unknown/);
    // Columns line up: "Contact" starts at the same offset in every row.
    const col = lines[0].indexOf('Contact');
    assert.equal(lines[1].slice(col).startsWith('sip:1001@192.168.1.20'), true);
  });

  it('show peers --json prints the API JSON', async () => {
    const r = await runCliProcess(['show', 'peers', '--json', '--api', api]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), PEERS);
  });

  it('show calls and show settings', async () => {
    const calls = await runCliProcess(['show', 'calls', '--api', api]);
    assert.equal(calls.code, 0, calls.stderr);
    assert.match(calls.stdout, /^Call-ID\s+From\s+To\s+State\s+Duration$/m);
    assert.match(calls.stdout, /a84b4c76e66710@pc33\s+sip:1001@sip\.example\.org\s+sip:1002@sip\.example\.org\s+confirmed\s+1:02:05/);
    assert.match(calls.stdout, /1 active call$/m);
    const callsJson = await runCliProcess(['show', 'calls', '--json', '--api', api]);
    assert.deepEqual(JSON.parse(callsJson.stdout), CALLS);
    const settings = await runCliProcess(['show', 'settings', '--api', api]);
    assert.equal(settings.code, 0, settings.stderr);
    assert.deepEqual(parseYaml(settings.stdout), edge.settings());
  });

  it('takes the API address from -c FILE (api.listen)', async () => {
    const cfg = await file('api.yaml', `api: { listen: 127.0.0.1:${server.address.port} }\n`);
    const r = await runCliProcess(['show', 'peers', '--json', '-c', cfg]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as unknown[]).length, 2);
  });

  it('reload posts to the edge; a refused reload exits 1 with its errors', async () => {
    const before = edge.reloads;
    const ok = await runCliProcess(['reload', '--api', api]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /reloaded/);
    assert.equal(edge.reloads, before + 1);
    edge.reloadResult = { ok: false, errors: ['media.ports: bad range'] };
    try {
      const refused = await runCliProcess(['reload', '--api', api]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /reload refused.*\n {2}media\.ports: bad range/);
    } finally {
      edge.reloadResult = { ok: true };
    }
  });
});

describe('sipedge show when the edge is not running', () => {
  it('a closed port gives a clear error and exit code 3', async () => {
    const port = await closedPort();
    const r = await runCliProcess(['show', 'peers', '--api', `127.0.0.1:${port}`]);
    assert.equal(r.code, 3);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`cannot reach the sipedge API at http://127\\.0\\.0\\.1:${port} \\(connection refused\\)`));
    assert.match(r.stderr, /Is "sipedge start" running\?/);
  });

  it('the address from -c is named in the error; reload fails the same way', async () => {
    const port = await closedPort();
    const cfg = await file('closed.yaml', `api: { listen: 0.0.0.0:${port} }\n`);
    const r = await runCliProcess(['reload', '-c', cfg]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${port}.*connection refused`));
    assert.match(r.stderr, /api\.listen in .*closed\.yaml/);
  });

  it('an explicit but invalid -c exits 2; api.enabled false exits 1', async () => {
    const bad = await file('bad-api.yaml', 'api: { listen: nowhere }\n');
    const r = await runCliProcess(['show', 'peers', '-c', bad]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /api\.listen: expected host:port/);
    const off = await file('off-api.yaml', 'api: { enabled: false }\n');
    const r2 = await runCliProcess(['show', 'peers', '-c', off]);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /admin API is disabled/);
  });
});
