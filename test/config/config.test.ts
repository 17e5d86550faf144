import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, parseConfigText, formatConfigError, type ConfigError, type ConfigResult } from '../../src/config/load.js';
import { defaultConfig, knownKeysAt } from '../../src/config/schema.js';
import { formatConfigYaml, SECRET_MASK } from '../../src/config/format.js';
import type { SipedgeConfig } from '../../src/config/types.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/sipedge.yaml', import.meta.url));

function valid(text: string): { config: SipedgeConfig; warnings: string[] } {
  const r = parseConfigText(text);
  if (!r.ok) assert.fail(`expected a valid config, got:\n${r.errors.map((e) => formatConfigError(e)).join('\n')}`);
  return r;
}

function errors(text: string): ConfigError[] {
  const r: ConfigResult = parseConfigText(text);
  assert.equal(r.ok, false, 'expected an invalid config');
  return (r as { errors: ConfigError[] }).errors;
}

/** Asserts exactly one error, at `path`, whose message matches `re`. */
function oneError(text: string, path: string, re: RegExp): ConfigError {
  const errs = errors(text);
  assert.equal(errs.length, 1, `expected one error, got ${JSON.stringify(errs)}`);
  assert.equal(errs[0].path, path);
  assert.match(errs[0].message, re);
  return errs[0];
}

describe('defaults', () => {
  it('an empty file is valid and has every default', () => {
    for (const text of ['', '\n', '# only a comment\n', '---\n']) {
      const { config, warnings } = valid(text);
      assert.deepEqual(warnings, []);
      assert.deepEqual(config.listen, ['udp:0.0.0.0:5060', 'tcp:0.0.0.0:5060']);
      assert.deepEqual(
        config.sockets.map((s) => s.id),
        ['udp:0.0.0.0:5060', 'tcp:0.0.0.0:5060'],
      );
      assert.deepEqual(config.publicAddress, { refresh: 600 });
      assert.deepEqual(config.aliases, []);
      assert.deepEqual(config.localnet, []);
      assert.deepEqual(config.nat, {
        clients: 'auto',
        rewriteContact: false,
        keepalive: { method: 'options', interval: 30, all: false, maxMissed: 3, removeDead: false },
      });
      assert.deepEqual(config.media, {
        relay: 'always',
        ports: { low: 10000, high: 10999 },
        timeout: 60,
        strictSource: true,
        engine: { kind: 'internal' },
      });
      assert.deepEqual(config.registrar, { domains: [], realm: 'sipedge', expires: { min: 60, max: 3600, default: 600 }, maxContacts: 5 });
      assert.deepEqual(config.auth, { algorithms: ['MD5', 'SHA-256'], nonceTtl: 300 });
      assert.deepEqual(config.users, []);
      assert.deepEqual(config.proxy, { recordRoute: true });
      assert.deepEqual(config.sip, { maxMessageSize: 65535, maxHeaders: 256, timers: { t1: 500, t2: 4000, t4: 5000 } });
      assert.equal(config.store, 'sqlite:./var/sipedge.db');
      assert.deepEqual(config.api, { listen: '127.0.0.1:8088', enabled: true });
      assert.deepEqual(config.log, { level: 'info' });
      assert.deepEqual(config, defaultConfig());
    }
  });

  it('defaults do not share mutable arrays between configs', () => {
    const a = defaultConfig();
    a.listen.push('udp:127.0.0.1:5070');
    a.users.push({ username: 'x', password: 'y' });
    const b = defaultConfig();
    assert.equal(b.listen.length, 2);
    assert.equal(b.users.length, 0);
  });

  it('a key with no value means the default', () => {
    const { config } = valid('nat:\n  # clients: force\nmedia:\nusers:\n');
    assert.equal(config.nat.clients, 'auto');
    assert.deepEqual(config.media.ports, { low: 10000, high: 10999 });
    assert.deepEqual(config.users, []);
  });

  it('the realm defaults to the first domain', () => {
    assert.equal(valid('registrar: { domains: [SIP.Example.org, b.example.org] }').config.registrar.realm, 'sip.example.org');
    assert.equal(valid('registrar: { domains: [a.example.org], realm: corp }').config.registrar.realm, 'corp');
  });
});

describe('the DESIGN.md example', () => {
  it('parses to the documented settings', () => {
    const { config } = valid(`
listen:
  - udp:10.0.0.10:5060 as 203.0.113.10:5060
  - tcp:10.0.0.10:5060 as 203.0.113.10:5060
publicAddress:
  ip: 203.0.113.10
  refresh: 600
localnet: [10.0.0.0/8]
nat:
  clients: auto
  keepalive: { method: options, interval: 30 }
media:
  relay: always
  ports: 10000-10999
  address: 10.0.0.10
  advertise: 203.0.113.10
  timeout: 60
registrar:
  domains: [sip.example.org]
  expires: { min: 60, max: 3600, default: 600 }
  maxContacts: 5
users:
  - { username: "1001", password: "s3cret-1001" }
store: sqlite:./var/sipedge.db
api: { listen: 127.0.0.1:8088 }
`);
    assert.deepEqual(config.sockets[0], {
      id: 'udp:10.0.0.10:5060',
      transport: 'udp',
      address: '10.0.0.10',
      port: 5060,
      advertised: { host: '203.0.113.10', port: 5060 },
    });
    assert.equal(config.sockets[1].transport, 'tcp');
    assert.equal(config.publicAddress.ip, '203.0.113.10');
    assert.deepEqual(config.localnet, ['10.0.0.0/8']);
    assert.equal(config.media.advertise, '203.0.113.10');
    assert.equal(config.registrar.realm, 'sip.example.org');
  });

  it('accepts IPv6 everywhere an address is allowed', () => {
    const { config } = valid(`
listen: ['udp:[2001:db8::10]:5060']
publicAddress: { ip: '2001:db8::1' }
localnet: ['fd00::/8', '10.0.0.0/8']
media: { address: '::', advertise: '2001:db8::1', engine: 'rtpengine:udp:[::1]:2223' }
api: { listen: '[::1]:8088' }
`);
    assert.equal(config.sockets[0].address, '2001:db8::10');
    assert.deepEqual(config.media.engine, { kind: 'rtpengine', transport: 'udp', host: '::1', port: 2223 });
  });

  it('accepts discover, stun servers and metadata overrides', () => {
    const { config, warnings } = valid(`
publicAddress:
  discover: [aws, stun]
  refresh: 300
  stunServers: [stun.example.org, 'stun2.example.org:3478']
  metadata: { aws: 'http://127.0.0.1:9000/latest' }
`);
    assert.deepEqual(config.publicAddress.discover, ['aws', 'stun']);
    assert.deepEqual(warnings, []);
  });

  it('accepts every store form', () => {
    for (const s of ['sqlite:./var/x.db', 'sqlite:/var/lib/sipedge/db.sqlite', 'memory:', 'redis://127.0.0.1:6379', 'redis://redis.example.org:6379/2']) {
      assert.equal(valid(`store: "${s}"`).config.store, s);
    }
  });
});

describe('each bad value names its key path', () => {
  it('bad port range', () => {
    oneError('media: { ports: 10001-10999 }', 'media.ports', /even/);
    oneError('media: { ports: 20000-10000 }', 'media.ports', /below/);
    oneError('media: { ports: 80-1000 }', 'media.ports', /1024\.\.65535/);
    oneError('media: { ports: 10000-70000 }', 'media.ports', /1024\.\.65535/);
    oneError('media: { ports: lots }', 'media.ports', /LOW-HIGH/);
    oneError('media: { ports: 10000 }', 'media.ports', /expected a string/);
  });

  it('bad CIDR in localnet', () => {
    oneError('localnet: [10.0.0.0/8, 10.0.0.0/33]', 'localnet.1', /10\.0\.0\.0\/33/);
    oneError('localnet: [10.0.0.0]', 'localnet.0', /CIDR/);
    oneError('localnet: [bogus/8]', 'localnet.0', /not an IPv4 or IPv6/);
    oneError("localnet: ['fd00::/129']", 'localnet.0', /0\.\.128/);
  });

  it('warns about host bits set in a CIDR', () => {
    const { warnings } = valid('localnet: [10.1.2.3/8]');
    assert.match(warnings.join('\n'), /localnet\.0: 10\.1\.2\.3\/8 has host bits set; it means 10\.0\.0\.0\/8/);
  });

  it('unknown top-level key with a suggestion', () => {
    const e = oneError('medai:\n  relay: nat\n', 'medai', /unknown key "medai" — did you mean "media"\?/);
    assert.equal(e.line, 1);
    assert.equal(e.column, 1);
  });

  it('unknown nested key, with the allowed keys when nothing is close', () => {
    oneError('nat: { keepalive: { intervall: 10 } }', 'nat.keepalive.intervall', /did you mean "interval"/);
    oneError('media: { zzzzzzzz: 1 }', 'media.zzzzzzzz', /allowed here: relay, ports/);
    oneError('users: [{ username: "1001", password: x, pasword: y }]', 'users.0.pasword', /did you mean "password"/);
  });

  it('duplicate usernames', () => {
    oneError('users:\n  - { username: "1001", password: a }\n  - { username: "1001", password: b }\n', 'users.1.username', /duplicate username "1001".*users\.0/);
  });

  it('empty and unquoted user fields', () => {
    oneError('users: [{ username: "1001", password: "x" }, { username: "1002", password: "" }]', 'users.1.password', /must not be empty/);
    oneError('users: [{ username: 1001, password: x }]', 'users.0.username', /expected a string, got number 1001; quote it in YAML: "1001"/);
    oneError('users: [{ username: "1001" }]', 'users.0.password', /required/);
    oneError('users: [{ username: "a b", password: x }]', 'users.0.username', /not a valid SIP user name/);
  });

  it('expires min > max, default outside', () => {
    oneError('registrar: { expires: { min: 4000, max: 3600 } }', 'registrar.expires.min', /min \(4000\) must not exceed max \(3600\)/);
    oneError('registrar: { expires: { default: 30 } }', 'registrar.expires.default', /between min \(60\) and max \(3600\)/);
    oneError('registrar: { expires: { default: 7200 } }', 'registrar.expires.default', /between/);
    oneError('registrar: { expires: { min: 0 } }', 'registrar.expires.min', /at least 1/);
  });

  it('bad listen strings', () => {
    oneError('listen: [udp:0.0.0.0:5060, "foo:1.2.3.4:5060"]', 'listen.1', /transport/);
    oneError('listen: ["udp:not-an-ip:5060"]', 'listen.0', /IP address/);
    oneError('listen: ["udp:1.2.3.4:99999"]', 'listen.0', /port/);
    oneError('listen: ["udp:1.2.3.4:5060 as"]', 'listen.0', /.+/);
    oneError('listen: udp:1.2.3.4:5060', 'listen', /expected a list/);
  });

  it('the same socket listed twice', () => {
    oneError('listen: [udp:1.2.3.4:5060, "udp:1.2.3.4:5060 as 203.0.113.1"]', 'listen.1', /already listed at listen\.0/);
  });

  it('ip and host both set', () => {
    oneError('publicAddress: { ip: 203.0.113.10, host: pbx.example.org }', 'publicAddress', /set only one.*ip and host/);
    oneError('publicAddress: { ip: 203.0.113.10, discover: [stun] }', 'publicAddress', /ip and discover/);
  });

  it('bad public address values', () => {
    oneError('publicAddress: { ip: 203.0.113.300 }', 'publicAddress.ip', /not an IPv4 or IPv6/);
    oneError('publicAddress: { host: "bad host" }', 'publicAddress.host', /host name/);
    oneError('publicAddress: { host: 203.0.113.10 }', 'publicAddress.host', /use publicAddress\.ip/);
    oneError('publicAddress: { discover: [aws, openstack] }', 'publicAddress.discover.1', /one of aws, gcp, azure, stun/);
    oneError('publicAddress: { discover: [] }', 'publicAddress.discover', /at least 1 entry/);
    oneError('publicAddress: { discover: [stun, stun] }', 'publicAddress.discover.1', /twice/);
    oneError('publicAddress: { discover: [aws], metadata: { aws: "not a url" } }', 'publicAddress.metadata.aws', /URL/);
    oneError('publicAddress: { refresh: -1 }', 'publicAddress.refresh', /at least 0/);
  });

  it('enums, booleans and numbers', () => {
    oneError('media: { relay: sometimes }', 'media.relay', /one of always, nat, never; got "sometimes"/);
    oneError('nat: { clients: yes }', 'nat.clients', /one of auto, force, off/);
    oneError('nat: { rewriteContact: "yes" }', 'nat.rewriteContact', /expected true or false/);
    oneError('nat: { keepalive: { interval: 1.5 } }', 'nat.keepalive.interval', /.+/);
    oneError('nat: { keepalive: { method: sip } }', 'nat.keepalive.method', /options, crlf, stun/);
    oneError('sip: { timers: { t1: 500, t2: 100 } }', 'sip.timers.t2', /must not be below t1/);
    oneError('auth: { algorithms: [MD5, SHA-512] }', 'auth.algorithms.1', /MD5, SHA-256/);
    oneError('log: { level: loud }', 'log.level', /info/);
  });

  it('store, api, engine, aliases', () => {
    oneError('store: mysql://db', 'store', /sqlite:PATH, memory: or redis/);
    oneError('store: "sqlite:"', 'store', /file path/);
    oneError('api: { listen: 8088 }', 'api.listen', /expected a string/);
    oneError('api: { listen: "localhost" }', 'api.listen', /host:port/);
    oneError("api: { listen: '::1:8088' }", 'api.listen', /brackets/);
    oneError('media: { engine: rtpengine }', 'media.engine', /rtpengine:udp:HOST:PORT/);
    oneError('aliases: ["bad alias!"]', 'aliases.0', /host or host:port/);
  });

  it('reports several errors at once, in file order, with line numbers', () => {
    const errs = errors('media:\n  relay: x\n  ports: 1-2\nusers:\n  - { username: "1", password: "" }\n');
    assert.deepEqual(
      errs.map((e) => [e.path, e.line]),
      [
        ['media.relay', 2],
        ['media.ports', 3],
        ['users.0.password', 5],
      ],
    );
    assert.equal(formatConfigError(errs[1]), 'media.ports: ports must be within 1024..65535, got 1-2 (line 3, column 10)');
  });

  it('a top level that is not a mapping', () => {
    oneError('- a\n- b\n', '', /must be a mapping/);
    oneError('just text\n', '', /must be a mapping/);
  });
});

describe('YAML syntax errors', () => {
  it('give line and column', () => {
    const e = oneError('listen:\n  - udp:1.2.3.4:5060\nmedia: [1,\n', '', /YAML syntax error at line \d+, column \d+/);
    assert.equal(typeof e.line, 'number');
    assert.equal(typeof e.column, 'number');
    const e2 = oneError('nat:\n  clients: auto\n  clients: off\n', '', /line 3, column 3: duplicate key/);
    assert.equal(e2.line, 3);
    const e3 = oneError('media:\n  relay: always: nat\n', '', /line 2/);
    assert.equal(e3.line, 2);
    assert.equal(formatConfigError(e3, 'x.yaml').startsWith('x.yaml: YAML syntax error at line 2'), true);
  });
});

describe('loadConfig', () => {
  it('a missing file is an error naming the file', async () => {
    const r = await loadConfig('/nonexistent/dir/sipedge.yaml');
    assert.equal(r.ok, false);
    const errs = (r as { errors: ConfigError[] }).errors;
    assert.equal(errs.length, 1);
    assert.match(errs[0].message, /not found: \/nonexistent\/dir\/sipedge\.yaml/);
  });

  it('a directory is an error', async () => {
    const r = await loadConfig(tmpdir());
    assert.equal(r.ok, false);
    assert.match((r as { errors: ConfigError[] }).errors[0].message, /directory/);
  });

  it('reads a file and keeps relative store paths as written (relative to the working directory)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sipedge-config-'));
    try {
      const file = join(dir, 'sipedge.yaml');
      await writeFile(file, 'store: sqlite:./x.db\n');
      const r = await loadConfig(file);
      assert.equal(r.ok, true);
      assert.equal((r as { config: SipedgeConfig }).config.store, 'sqlite:./x.db');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('examples/sipedge.yaml is valid and listens on loopback with two demo users', async () => {
    const r = await loadConfig(EXAMPLE);
    if (!r.ok) assert.fail(r.errors.map((e) => formatConfigError(e)).join('\n'));
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.config.listen, ['udp:127.0.0.1:5060', 'tcp:127.0.0.1:5060']);
    assert.deepEqual(
      r.config.users.map((u) => u.username),
      ['1001', '1002'],
    );
    assert.equal(r.config.store, 'sqlite:./var/sipedge.db');
    assert.deepEqual(r.config.registrar.domains, []);
    assert.equal(r.config.api.listen, '127.0.0.1:8088');
  });
});

describe('warnings', () => {
  it('flags suspicious but valid settings', () => {
    const { warnings } = valid(`
publicAddress: { ip: 203.0.113.1, stunServers: [stun.example.org] }
media: { relay: never, advertise: 203.0.113.1 }
users: [{ username: "1001", password: change-me }]
api: { listen: 0.0.0.0:8088 }
`);
    const text = warnings.join('\n');
    assert.match(text, /publicAddress\.stunServers is ignored/);
    assert.match(text, /media\.advertise is ignored/);
    assert.match(text, /users\.0\.password: user "1001" still has an example password/);
    assert.match(text, /api\.listen 0\.0\.0\.0:8088 is not a loopback address/);
  });
});

describe('formatConfigYaml', () => {
  it('round-trips: the printed settings parse back to the same config', () => {
    const { config } = valid(`
listen: ['udp:10.0.0.10:5060 as 203.0.113.10:5060', 'tcp:[::1]:5070']
publicAddress: { discover: [gcp, stun], stunServers: [stun.example.org] }
localnet: [10.0.0.0/8, 'fd00::/8']
media: { ports: 20000-20099, engine: 'rtpengine:udp:127.0.0.1:2223' }
registrar: { domains: [sip.example.org] }
users: [{ username: "1001", password: "pw1" }]
`);
    const again = valid(formatConfigYaml(config, { showSecrets: true }));
    assert.deepEqual(again.config, config);
  });

  it('masks passwords unless asked', () => {
    const { config } = valid('users: [{ username: "1001", password: "topsecret" }]');
    const text = formatConfigYaml(config);
    assert.doesNotMatch(text, /topsecret/);
    assert.match(text, new RegExp(SECRET_MASK.replace(/\*/g, '\\*')));
  });
});

describe('knownKeysAt', () => {
  it('reads the allowed keys from the schema', () => {
    assert.ok(knownKeysAt([]).includes('media'));
    assert.deepEqual(knownKeysAt(['registrar', 'expires']), ['min', 'max', 'default']);
    assert.deepEqual(knownKeysAt(['users', 0]), ['username', 'password']);
    assert.deepEqual(knownKeysAt(['store']), []);
  });
});

describe('overload (load shedding, RFC 3261 §21.5.4)', () => {
  it('defaults to maxLoopDelay 200 ms and Retry-After 5 s; 0 disables; printed by check', () => {
    assert.deepEqual(defaultConfig().overload, { maxLoopDelay: 200, retryAfter: 5 });
    const { config } = valid('overload: { maxLoopDelay: 0, retryAfter: 30 }');
    assert.deepEqual(config.overload, { maxLoopDelay: 0, retryAfter: 30 });
    assert.match(formatConfigYaml(config), /^overload:\n {2}maxLoopDelay: 0\n {2}retryAfter: 30$/m);
    assert.deepEqual(valid(formatConfigYaml(config)).config.overload, config.overload);
  });

  it('bad values name their key path', () => {
    oneError('overload: { maxLoopDelay: -1 }', 'overload.maxLoopDelay', /at least 0/);
    oneError('overload: { maxLoopDelay: 2.5 }', 'overload.maxLoopDelay', /expected int/);
    oneError('overload: { retryAfter: 0 }', 'overload.retryAfter', /at least 1/);
    oneError('overload: { retryAfter: "5" }', 'overload.retryAfter', /expected a number/);
    oneError('overload: { maxLoopDelai: 100 }', 'overload.maxLoopDelai', /did you mean "maxLoopDelay"/);
  });
});
