#!/usr/bin/env node
// Makes `npm start` and `npm test` work straight after cloning (npm `prestart` / `pretest` hooks).
//
//   node scripts/ensure.mjs build   node_modules (npm ci) + an up-to-date dist/ (npm run build)
//   node scripts/ensure.mjs test    node_modules (npm ci) + the system tools the tests use
//                                   (SIPp etc.; installed with apt-get when running as root)
//
// Plain Node ESM, no dependencies (it runs before they are installed).
// SIPEDGE_NO_APT=1 never runs apt-get.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const mode = process.argv[2];
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** System tools of the tests: command -> Debian package. */
const TOOLS = {
  sipp: 'sip-tester',
  iptables: 'iptables',
  ip: 'iproute2',
  'redis-server': 'redis-server',
  tcpdump: 'tcpdump',
};

function say(msg) {
  console.error(`[ensure] ${msg}`);
}

function run(cmd, args) {
  say(`$ ${[cmd, ...args].join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}`);
}

function onPath(cmd) {
  const dirs = (process.env.PATH ?? '').split(path.delimiter);
  // Tools like iptables and ip live in sbin, which a non-root PATH may lack.
  for (const extra of ['/usr/sbin', '/sbin', '/usr/local/sbin']) if (!dirs.includes(extra)) dirs.push(extra);
  return dirs.some((d) => {
    try {
      fs.accessSync(path.join(d, cmd), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function ensureDeps() {
  if (fs.existsSync(path.join(root, 'node_modules'))) return;
  say('node_modules is missing: installing the dependencies from package-lock.json');
  run(npm, ['ci']);
}

/** Newest mtime (ms) of the files under dir, 0 if none. */
function newestMtime(dir) {
  let newest = 0;
  if (!fs.existsSync(dir)) return 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

function ensureBuild() {
  const entry = path.join(root, 'dist', 'cli', 'main.js');
  if (!fs.existsSync(entry)) {
    say('dist/ is missing: building');
  } else {
    const built = fs.statSync(entry).mtimeMs;
    const inputs = Math.max(
      newestMtime(path.join(root, 'src')),
      ...['package.json', 'tsconfig.json', 'tsconfig.build.json'].map((f) => {
        const p = path.join(root, f);
        return fs.existsSync(p) ? fs.statSync(p).mtimeMs : 0;
      }),
    );
    if (inputs <= built) return;
    say('src/ is newer than dist/: rebuilding');
  }
  run(npm, ['run', 'build']);
}

function ensureTools() {
  const missing = Object.entries(TOOLS).filter(([cmd]) => !onPath(cmd));
  if (missing.length === 0) return;
  const what = missing.map(([cmd, pkg]) => `${cmd} (${pkg})`).join(', ');
  const all = Object.values(TOOLS);
  if (onPath('sipp')) {
    // The tests that need the others are not there yet, or check for them themselves.
    say(`note: not installed: ${what}`);
    return;
  }
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (process.env.SIPEDGE_NO_APT !== '1' && isRoot && onPath('apt-get')) {
    say(`SIPp is missing (also: ${what}); installing the test tools with apt-get`);
    try {
      run('apt-get', ['update']);
      run('apt-get', ['install', '-y', ...all]);
      return;
    } catch (err) {
      // Go on: the end-to-end tests then fail with a clear message of their own.
      say(`apt-get failed (${err instanceof Error ? err.message : String(err)})`);
    }
  }
  say(`missing test tools: ${what}.`);
  say('The end-to-end tests need SIPp and FAIL without it. Install the tools with:');
  say(`    sudo apt-get update && sudo apt-get install -y ${all.join(' ')}`);
}

try {
  if (mode === 'build') {
    ensureDeps();
    ensureBuild();
  } else if (mode === 'test') {
    ensureDeps();
    ensureTools();
  } else {
    say('usage: node scripts/ensure.mjs build|test');
    process.exit(64);
  }
} catch (err) {
  say(`failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
