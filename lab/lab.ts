/**
 * NAT lab: real Linux network namespaces, veth pairs, bridges and iptables NAT, for end-to-end
 * tests of sipedge across NAT (see ../shared/DESIGN.md "Testing against the real thing" and
 * lab/README.md).
 *
 * Everything is created inside namespaces named `<prefix><host>`; nothing is ever created in, or
 * changed in, the root network namespace (veth pairs are created with both ends directly inside
 * their namespaces). `down()` needs no in-memory state: it finds everything by prefix, so it also
 * cleans up after a crash.
 */
import { execFile, spawn as cpSpawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { NetAgent } from './agent.js';
import {
  CLOUD_NATGW,
  CLOUD_PUBLIC,
  EDGE_PRIVATE,
  HOME_ROUTERS,
  HOST_NAMES,
  HOSTS,
  IMDS_ADDRESS,
  LANS,
  PRIVATE_NETS,
  PUBLIC_NETS,
  ROUTERS,
  WAN_HOSTS,
  type HostInfo,
  type HostName,
  type RouterName,
} from './topology.js';

export * from './topology.js';
export { NetAgent, UdpSocket, TcpListener, type UdpMessage, type TcpConn } from './agent.js';

/** The lab cannot run here (not root). Tests must turn this into a loud `t.skip(...)`. */
export class LabUnavailableError extends Error {
  override readonly name = 'LabUnavailableError';
  constructor(readonly reason: string) {
    super(`NAT lab unavailable: ${reason}`);
  }
}

/** The lab could run but a command failed (missing tool, kernel refused, ...). Tests fail on this. */
export class LabError extends Error {
  override readonly name = 'LabError';
}

export interface LabOptions {
  /** namespace prefix; letters/digits followed by one trailing '-'. Default "se-". */
  prefix?: string;
  /** conntrack UDP timeout (seconds) on the home routers, applied to both
   * nf_conntrack_udp_timeout and nf_conntrack_udp_timeout_stream. Default: kernel default (30/120). */
  udpTimeout?: number;
  /** progress logger (default: silent) */
  log?: (line: string) => void;
}

export interface ExecOptions {
  /** do not throw on a non-zero exit status */
  allowFail?: boolean;
  /** data written to stdin */
  input?: string;
  /** kill after this many ms (default 30 000) */
  timeoutMs?: number;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export type PortMatch = number | [number, number];

export interface PacketMatch {
  /** where to count: in = INPUT (packets arriving at this host), out = OUTPUT (sent by this host),
   * fwd = FORWARD (routed through it), pre = raw PREROUTING (everything arriving, before routing). Default "in". */
  hook?: 'in' | 'out' | 'fwd' | 'pre';
  proto?: 'udp' | 'tcp' | 'icmp';
  src?: string;
  dst?: string;
  sport?: PortMatch;
  dport?: PortMatch;
  /** input interface (in/fwd/pre) */
  iif?: string;
  /** counter name (letters, digits, _ . -); default auto-generated */
  name?: string;
}

export interface CounterValue {
  packets: number;
  bytes: number;
}

export interface ConntrackTuple {
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
}

export interface ConntrackEntry {
  proto: string;
  /** seconds left */
  timeout: number;
  /** e.g. ESTABLISHED for tcp */
  state?: string;
  orig: ConntrackTuple;
  reply: ConntrackTuple;
  flags: string[];
  raw: string;
}

const HOOKS = {
  in: { table: 'filter', hook: 'INPUT', chain: 'LAB_IN' },
  out: { table: 'filter', hook: 'OUTPUT', chain: 'LAB_OUT' },
  fwd: { table: 'filter', hook: 'FORWARD', chain: 'LAB_FWD' },
  pre: { table: 'raw', hook: 'PREROUTING', chain: 'LAB_PRE' },
} as const;

const PREFIX_RE = /^[A-Za-z0-9]{1,24}-$/;
const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;

/** One iptables packet counter (a rule with no target in a LAB_* chain). */
export class PacketCounter {
  private base: CounterValue = { packets: 0, bytes: 0 };
  constructor(
    private readonly lab: Lab,
    readonly host: HostName,
    readonly name: string,
  ) {}

  /** packets/bytes matched since creation or the last `reset()` */
  async read(): Promise<CounterValue> {
    const all = await this.lab.counters(this.host);
    const v = all[this.name];
    if (!v) throw new LabError(`counter ${this.name} not found in ${this.host}`);
    return { packets: v.packets - this.base.packets, bytes: v.bytes - this.base.bytes };
  }

  async packets(): Promise<number> {
    return (await this.read()).packets;
  }

  /** start counting from zero again (the kernel counter keeps running; a baseline is kept) */
  async reset(): Promise<void> {
    const all = await this.lab.counters(this.host);
    this.base = all[this.name] ?? { packets: 0, bytes: 0 };
  }
}

export interface Capture {
  file: string;
  /** stop tcpdump (SIGINT) and wait until the file is complete */
  stop(): Promise<void>;
}

function run(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { maxBuffer: 64 * 1024 * 1024, timeout: opts.timeoutMs ?? 30_000, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
          reject(new LabError(`${cmd} not found (apt-get install iptables iproute2 tcpdump conntrack)`));
          return;
        }
        if (code !== 0 && !opts.allowFail) {
          reject(new LabError(`${cmd} ${args.join(' ')} failed (${code}): ${(stderr || stdout).trim()}`));
          return;
        }
        resolve({ stdout, stderr, code });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

function portArg(p: PortMatch): string {
  return Array.isArray(p) ? `${p[0]}:${p[1]}` : String(p);
}

/** Parse one line of `conntrack -L` output. */
export function parseConntrackLine(line: string): ConntrackEntry | null {
  const words = line.trim().split(/\s+/);
  if (words.length < 4) return null;
  const proto = words[0];
  let i = 2;
  const timeout = Number(words[i++]);
  let state: string | undefined;
  if (words[i] && /^[A-Z_]+$/.test(words[i])) state = words[i++];
  const tuples: ConntrackTuple[] = [];
  const flags: string[] = [];
  let cur: Partial<ConntrackTuple> | null = null;
  for (; i < words.length; i++) {
    const w = words[i];
    const fm = /^\[(\w+)\]$/.exec(w);
    if (fm) {
      flags.push(fm[1]);
      continue;
    }
    const kv = /^(\w+)=(.*)$/.exec(w);
    if (!kv) continue;
    const [, k, v] = kv;
    if (k === 'src') {
      if (cur) tuples.push(cur as ConntrackTuple);
      cur = { src: v };
    } else if (cur && k === 'dst') cur.dst = v;
    else if (cur && k === 'sport') cur.sport = Number(v);
    else if (cur && k === 'dport') cur.dport = Number(v);
  }
  if (cur) tuples.push(cur as ConntrackTuple);
  if (tuples.length < 2) return null;
  return { proto, timeout, state, orig: tuples[0], reply: tuples[1], flags, raw: line.trim() };
}

export class Lab {
  readonly prefix: string;
  readonly udpTimeout: number | undefined;
  private readonly log: (line: string) => void;
  private readonly children = new Set<ChildProcess>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private counterSeq = 0;

  constructor(opts: LabOptions = {}) {
    this.prefix = opts.prefix ?? 'se-';
    if (!PREFIX_RE.test(this.prefix)) {
      throw new LabError(`bad lab prefix "${this.prefix}": letters/digits followed by a single trailing "-", e.g. "se-"`);
    }
    this.udpTimeout = opts.udpTimeout;
    if (this.udpTimeout !== undefined && !(Number.isInteger(this.udpTimeout) && this.udpTimeout > 0)) {
      throw new LabError(`bad udpTimeout ${this.udpTimeout}: a positive integer number of seconds`);
    }
    this.log = opts.log ?? (() => {});
  }

  /** Throws LabUnavailableError when the lab cannot run on this machine (not root). */
  static assertAvailable(): void {
    if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
      throw new LabUnavailableError(
        `not running as root (uid ${typeof process.getuid === "function" ? process.getuid() : "?"}); creating network namespaces needs it`,
      );
    }
  }

  /** namespace name of a host */
  ns(host: HostName): string {
    if (!(host in HOSTS)) throw new LabError(`unknown lab host ${String(host)}`);
    return this.prefix + host;
  }

  /** address table entry of a host */
  addr(host: HostName): HostInfo {
    const h = HOSTS[host];
    if (!h) throw new LabError(`unknown lab host ${String(host)}`);
    return { ...h, extra: h.extra ? [...h.extra] : undefined, ns: this.ns(host) };
  }

  /** the whole address table */
  addresses(): Record<HostName, HostInfo> {
    return Object.fromEntries(HOST_NAMES.map((h) => [h, this.addr(h)])) as Record<HostName, HostInfo>;
  }

  // ---------------------------------------------------------------- lifecycle

  /** Build the lab (tearing down any leftovers with the same prefix first). */
  async up(): Promise<void> {
    Lab.assertAvailable();
    await this.checkTools();
    await this.down();
    const t0 = Date.now();
    try {
      await this.build();
    } catch (err) {
      await this.down().catch(() => {});
      throw err;
    }
    this.log(`lab ${this.prefix} up in ${Date.now() - t0} ms`);
  }

  /** Tear down every namespace with this prefix (idempotent; works without in-memory state). */
  async down(): Promise<void> {
    Lab.assertAvailable();
    for (const c of this.children) {
      if (c.exitCode === null && c.signalCode === null && c.pid) {
        try {
          process.kill(c.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
    this.children.clear();
    await Lab.teardown(this.prefix, this.log);
  }

  /** Tear down every namespace whose name starts with `prefix`. */
  static async teardown(prefix: string, log: (line: string) => void = () => {}): Promise<string[]> {
    if (!PREFIX_RE.test(prefix)) throw new LabError(`bad lab prefix "${prefix}"`);
    Lab.assertAvailable();
    const names = (await Lab.listNamespaces()).filter((n) => n.startsWith(prefix));
    // Processes still living inside a namespace keep it (and its veths) alive after `ip netns del`,
    // so end them first, by pid.
    for (const n of names) {
      const r = await run('ip', ['netns', 'pids', n], { allowFail: true });
      for (const pid of r.stdout.split(/\s+/).filter(Boolean).map(Number)) {
        if (pid > 1 && pid !== process.pid) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      }
    }
    for (const n of names) {
      await run('ip', ['netns', 'del', n], { allowFail: true });
      log(`deleted namespace ${n}`);
    }
    // We never create interfaces in the root namespace (both veth ends are created inside their
    // namespaces), but remove any veth named with our prefix, should an older lab have left one.
    const links = await run('ip', ['-o', 'link', 'show', 'type', 'veth'], { allowFail: true });
    for (const line of links.stdout.split('\n')) {
      const m = /^\d+:\s+([^:@\s]+)/.exec(line);
      if (m && m[1].startsWith(prefix)) {
        await run('ip', ['link', 'del', m[1]], { allowFail: true });
        log(`deleted leftover veth ${m[1]}`);
      }
    }
    return names;
  }

  static async listNamespaces(): Promise<string[]> {
    const r = await run('ip', ['netns', 'list'], { allowFail: true });
    return r.stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[0])
      .filter(Boolean);
  }

  /** namespaces of this lab that currently exist */
  async namespaces(): Promise<string[]> {
    return (await Lab.listNamespaces()).filter((n) => n.startsWith(this.prefix));
  }

  /** Human-readable status: namespaces, addresses, NAT rules, conntrack timeouts. */
  async status(): Promise<string> {
    Lab.assertAvailable();
    const names = (await this.namespaces()).sort();
    if (names.length === 0) return `lab ${this.prefix}: down (no namespace with prefix "${this.prefix}")\n`;
    const out: string[] = [`lab ${this.prefix}: ${names.length} namespaces`];
    for (const n of names) {
      const host = n.slice(this.prefix.length);
      const addrs = await run('ip', ['-n', n, '-br', '-4', 'addr', 'show'], { allowFail: true });
      const lines = addrs.stdout
        .split('\n')
        .filter((l) => l.trim() && !l.startsWith('lo '))
        .map((l) => '    ' + l.trim().replace(/\s+/g, ' '));
      out.push(`  ${n}`);
      out.push(...lines);
      if ((ROUTERS as string[]).includes(host)) {
        const nat = await run('ip', ['netns', 'exec', n, 'iptables-save', '-t', 'nat'], { allowFail: true });
        for (const l of nat.stdout.split('\n')) if (l.startsWith('-A')) out.push(`    nat: ${l}`);
        const t = await run(
          'ip',
          ['netns', 'exec', n, 'sysctl', '-n', 'net.netfilter.nf_conntrack_udp_timeout', 'net.netfilter.nf_conntrack_udp_timeout_stream'],
          { allowFail: true },
        );
        const [u, s] = t.stdout.trim().split('\n');
        out.push(`    conntrack udp timeout ${u ?? '?'} s, stream ${s ?? '?'} s`);
      }
    }
    return out.join('\n') + '\n';
  }

  // ---------------------------------------------------------------- process helpers

  /** Run a command inside a host's namespace; resolves with its output (throws on failure unless allowFail). */
  exec(host: HostName, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    if (argv.length === 0) throw new LabError('exec: empty argv');
    return run('ip', ['netns', 'exec', this.ns(host), ...argv], opts);
  }

  /** Start a long-running process inside a host's namespace. It is killed by `down()`. */
  spawn(host: HostName, argv: string[], opts: SpawnOptions = {}): ChildProcess {
    if (argv.length === 0) throw new LabError('spawn: empty argv');
    const child = cpSpawn('ip', ['netns', 'exec', this.ns(host), ...argv], { stdio: 'pipe', ...opts });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    child.once('error', () => this.children.delete(child));
    return child;
  }

  /** Start a scriptable UDP/TCP agent (lab/tools/netagent.mjs) inside a host's namespace. */
  agent(host: HostName): Promise<NetAgent> {
    return NetAgent.start(this, host);
  }

  // ---------------------------------------------------------------- conntrack

  /** Set the conntrack UDP timeouts (both unreplied and stream) on routers (default: the home routers). */
  async setUdpTimeout(seconds: number, routers: RouterName[] = HOME_ROUTERS): Promise<void> {
    if (!(Number.isInteger(seconds) && seconds > 0)) throw new LabError(`bad udp timeout ${seconds}`);
    for (const r of routers) {
      await this.exec(r, [
        'sysctl',
        '-qw',
        `net.netfilter.nf_conntrack_udp_timeout=${seconds}`,
        `net.netfilter.nf_conntrack_udp_timeout_stream=${seconds}`,
      ]);
    }
  }

  async getUdpTimeout(router: RouterName): Promise<{ udp: number; stream: number }> {
    const r = await this.exec(router, [
      'sysctl',
      '-n',
      'net.netfilter.nf_conntrack_udp_timeout',
      'net.netfilter.nf_conntrack_udp_timeout_stream',
    ]);
    const [udp, stream] = r.stdout.trim().split('\n').map(Number);
    return { udp, stream };
  }

  /** Forget every NAT mapping on a router. */
  async conntrackFlush(router: RouterName): Promise<void> {
    await this.exec(router, ['conntrack', '-F'], { allowFail: true });
  }

  /** The router's conntrack table (NAT mappings): reply.dst:reply.dport is the mapped public address. */
  async conntrack(router: RouterName, proto?: 'udp' | 'tcp'): Promise<ConntrackEntry[]> {
    const args = ['conntrack', '-L'];
    if (proto) args.push('-p', proto);
    const r = await this.exec(router, args, { allowFail: true });
    return r.stdout
      .split('\n')
      .map(parseConntrackLine)
      .filter((e): e is ConntrackEntry => e !== null);
  }

  // ---------------------------------------------------------------- counters

  /** Count UDP packets matching `m` in a host's namespace (default hook "in": packets arriving at the host). */
  countUdp(host: HostName, m: Omit<PacketMatch, 'proto'> = {}): Promise<PacketCounter> {
    return this.countPackets(host, { ...m, proto: 'udp' });
  }

  /** Add an iptables counting rule (no target) to the LAB_* chain of a hook in a host's namespace. */
  async countPackets(host: HostName, m: PacketMatch = {}): Promise<PacketCounter> {
    const name = m.name ?? `c${++this.counterSeq}`;
    if (!NAME_RE.test(name)) throw new LabError(`bad counter name ${name}`);
    if ((m.sport !== undefined || m.dport !== undefined) && m.proto !== 'udp' && m.proto !== 'tcp') {
      throw new LabError('port matches need proto udp or tcp');
    }
    const h = HOOKS[m.hook ?? 'in'];
    const rule: string[] = [];
    if (m.iif) rule.push('-i', m.iif);
    if (m.src) rule.push('-s', m.src);
    if (m.dst) rule.push('-d', m.dst);
    if (m.proto) rule.push('-p', m.proto);
    if (m.sport !== undefined) rule.push('--sport', portArg(m.sport));
    if (m.dport !== undefined) rule.push('--dport', portArg(m.dport));
    rule.push('-m', 'comment', '--comment', name);
    await this.locked(host, async () => {
      const existing = await this.counters(host);
      if (name in existing) throw new LabError(`counter ${name} already exists in ${host}`);
      await this.ensureChain(host, h.table, h.hook, h.chain);
      await this.exec(host, ['iptables', '-w', '-t', h.table, '-A', h.chain, ...rule]);
    });
    const c = new PacketCounter(this, host, name);
    return c;
  }

  /** All lab counters in a host's namespace, by name (raw kernel values). */
  async counters(host: HostName): Promise<Record<string, CounterValue>> {
    const out: Record<string, CounterValue> = {};
    for (const table of ['filter', 'raw']) {
      const r = await this.exec(host, ['iptables-save', '-c', '-t', table], { allowFail: true });
      for (const line of r.stdout.split('\n')) {
        const m = /^\[(\d+):(\d+)\] -A LAB_\w+ .*--comment "?([A-Za-z0-9_.-]+)"?/.exec(line);
        if (m) out[m[3]] = { packets: Number(m[1]), bytes: Number(m[2]) };
      }
    }
    return out;
  }

  /**
   * Packets that reached the internet (the wan namespace) addressed to a private range
   * (10/8, 172.16/12, 192.168/16, 100.64/10). The internet has no route there, so each of these
   * was dropped. Counted since `up()`.
   */
  async privateLeaks(): Promise<CounterValue & { byNet: Record<string, CounterValue> }> {
    const all = await this.counters('wan');
    const byNet: Record<string, CounterValue> = {};
    let packets = 0;
    let bytes = 0;
    for (const net of PRIVATE_NETS) {
      const v = all[leakName(net)] ?? { packets: 0, bytes: 0 };
      byNet[net] = v;
      packets += v.packets;
      bytes += v.bytes;
    }
    return { packets, bytes, byNet };
  }

  // ---------------------------------------------------------------- capture

  /**
   * Start tcpdump in a host's namespace writing a pcap to `file`; resolves once it is listening.
   * For the public segment use capturePublic().
   */
  async capture(host: HostName, iface: string, filter: string, file: string, opts: { direction?: 'in' | 'out' | 'inout' } = {}): Promise<Capture> {
    // --immediate-mode: with TPACKET_V3 block buffering, packets still in an unfinished block are lost on SIGINT
    const args = ['tcpdump', '-i', iface, '-n', '--immediate-mode', '-U', '-s', '0', '-Z', 'root', '-w', file];
    if (opts.direction) args.push('-Q', opts.direction);
    if (filter.trim()) args.push(...filter.trim().split(/\s+/));
    const child = this.spawn(host, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const exited = once(child, 'exit');
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new LabError(`tcpdump did not start: ${stderr.trim()}`)), 10_000);
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (d: string) => {
        stderr += d;
        if (/listening on/.test(stderr)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(new LabError(`tcpdump: ${e.message}`));
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new LabError(`tcpdump exited (${code}): ${stderr.trim()}`));
      });
    });
    return {
      file,
      stop: async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGINT');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited.catch(() => {});
        clearTimeout(t);
      },
    };
  }

  /**
   * Capture the whole public segment: every packet entering the internet switch, on any port
   * (`tcpdump -i any -Q in` inside <p>wan), so each packet between public hosts appears exactly once.
   * (A capture on br0 itself would miss unicast frames the bridge forwards between its ports.)
   */
  capturePublic(file: string, filter = ''): Promise<Capture> {
    return this.capture('wan', 'any', filter, file, { direction: 'in' });
  }

  // ---------------------------------------------------------------- internals

  private async checkTools(): Promise<void> {
    for (const [tool, args] of [
      ['ip', ['-V']],
      ['iptables', ['-V']],
      ['sysctl', ['-V']],
    ] as const) {
      await run(tool, [...args]);
    }
  }

  private async locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    this.locks.set(
      key,
      next.catch(() => {}),
    );
    return next;
  }

  private async ensureChain(host: HostName, table: string, hook: string, chain: string): Promise<void> {
    await this.exec(host, ['iptables', '-w', '-t', table, '-N', chain], { allowFail: true });
    const has = await this.exec(host, ['iptables', '-w', '-t', table, '-C', hook, '-j', chain], { allowFail: true });
    if (has.code !== 0) await this.exec(host, ['iptables', '-w', '-t', table, '-I', hook, '1', '-j', chain]);
  }

  private ip(host: HostName, args: string[]): Promise<ExecResult> {
    return run('ip', ['-n', this.ns(host), ...args]);
  }

  private sysctl(host: HostName, settings: Record<string, string | number>): Promise<ExecResult> {
    return this.exec(host, ['sysctl', '-qw', ...Object.entries(settings).map(([k, v]) => `${k}=${v}`)]);
  }

  private iptablesRestore(host: HostName, rules: string): Promise<ExecResult> {
    return this.exec(host, ['iptables-restore', '-w'], { input: rules });
  }

  /** veth pair with both ends created directly inside their namespaces (never in the root ns) */
  private async veth(aHost: HostName, aIf: string, bHost: HostName, bIf: string): Promise<void> {
    await run('ip', ['link', 'add', 'name', aIf, 'netns', this.ns(aHost), 'type', 'veth', 'peer', 'name', bIf, 'netns', this.ns(bHost)]);
  }

  private async build(): Promise<void> {
    const p = this.prefix;
    this.log(`creating ${HOST_NAMES.length} namespaces ${p}*`);
    for (const h of HOST_NAMES) await run('ip', ['netns', 'add', this.ns(h)]);

    await Promise.all(
      HOST_NAMES.map(async (h) => {
        await this.ip(h, ['link', 'set', 'lo', 'up']);
        const isRouter = h === 'wan' || (ROUTERS as string[]).includes(h);
        await this.sysctl(h, {
          'net.ipv4.conf.all.rp_filter': 0,
          'net.ipv4.conf.default.rp_filter': 0,
          'net.ipv4.conf.all.send_redirects': 0,
          'net.ipv4.conf.default.send_redirects': 0,
          'net.ipv6.conf.all.disable_ipv6': 1,
          'net.ipv6.conf.default.disable_ipv6': 1,
          'net.ipv4.ip_forward': isRouter && h !== 'wan' ? 1 : 0,
        });
        if (isRouter) {
          // bridges must switch frames, not push them through this namespace's iptables
          await this.exec(h, ['sysctl', '-qw', 'net.bridge.bridge-nf-call-iptables=0'], { allowFail: true });
        }
      }),
    );

    // ---- internet: bridge br0 in <p>wan, gateway addresses .1, no route to any private range
    await this.ip('wan', ['link', 'add', 'br0', 'type', 'bridge']);
    for (const a of [HOSTS.wan.ip, ...(HOSTS.wan.extra ?? [])]) await this.ip('wan', ['addr', 'add', `${a}/24`, 'dev', 'br0']);
    await this.ip('wan', ['link', 'set', 'br0', 'up']);
    await this.iptablesRestore(
      'wan',
      [
        '*raw',
        ':PREROUTING ACCEPT [0:0]',
        ':OUTPUT ACCEPT [0:0]',
        ':LAB_PRE - [0:0]',
        '-A PREROUTING -j LAB_PRE',
        ...PRIVATE_NETS.map((n) => `-A LAB_PRE -d ${n} -m comment --comment ${leakName(n)}`),
        'COMMIT',
        '',
      ].join('\n'),
    );

    // ---- public-side links
    await Promise.all(
      WAN_HOSTS.map(async (h) => {
        const info = HOSTS[h];
        const isRouter = (ROUTERS as string[]).includes(h);
        const inIf = isRouter ? 'wan0' : 'eth0';
        const pubIp = info.wanIp ?? info.ip;
        await this.veth(h, inIf, 'wan', h);
        await this.ip('wan', ['link', 'set', h, 'master', 'br0', 'up']);
        await this.ip(h, ['addr', 'add', `${pubIp}/24`, 'dev', inIf]);
        if (h === 'cloud') await this.ip(h, ['addr', 'add', `${CLOUD_NATGW}/32`, 'dev', inIf]);
        await this.ip(h, ['link', 'set', inIf, 'up']);
        // every RFC 5737 /24 is on-link on the internet bridge; anything else goes to the
        // internet's gateway, which has no route to private ranges and drops it
        for (const net of PUBLIC_NETS) {
          if (pubIp.startsWith(net.split('.').slice(0, 3).join('.') + '.')) continue;
          await this.ip(h, ['route', 'add', net, 'dev', inIf, 'src', pubIp]);
        }
        await this.ip(h, ['route', 'add', 'default', 'via', info.gateway as string, 'dev', inIf]);
      }),
    );

    // ---- LANs: bridge br0 inside each router's namespace
    await Promise.all(
      ROUTERS.map(async (r) => {
        const info = HOSTS[r];
        await this.ip(r, ['link', 'add', 'br0', 'type', 'bridge']);
        await this.ip(r, ['addr', 'add', `${info.ip}/${info.prefixLen}`, 'dev', 'br0']);
        if (r === 'cloud') await this.ip(r, ['addr', 'add', `${IMDS_ADDRESS}/32`, 'dev', 'br0']);
        await this.ip(r, ['link', 'set', 'br0', 'up']);
        for (const h of LANS[r].hosts) {
          const hi = HOSTS[h];
          await this.veth(h, 'eth0', r, h);
          await this.ip(r, ['link', 'set', h, 'master', 'br0', 'up']);
          await this.ip(h, ['addr', 'add', `${hi.ip}/${hi.prefixLen}`, 'dev', 'eth0']);
          await this.ip(h, ['link', 'set', 'eth0', 'up']);
          await this.ip(h, ['route', 'add', 'default', 'via', hi.gateway as string, 'dev', 'eth0']);
          if (r === 'cloud') await this.ip(h, ['route', 'add', `${IMDS_ADDRESS}/32`, 'via', info.ip, 'dev', 'eth0']);
        }
      }),
    );

    // ---- NAT
    const home = (r: RouterName, masq: string) =>
      [
        '*nat',
        ':PREROUTING ACCEPT [0:0]',
        ':INPUT ACCEPT [0:0]',
        ':OUTPUT ACCEPT [0:0]',
        ':POSTROUTING ACCEPT [0:0]',
        `-A POSTROUTING -s ${LANS[r].net} -o wan0 -j ${masq}`,
        'COMMIT',
        '*filter',
        ':INPUT ACCEPT [0:0]',
        ':FORWARD DROP [0:0]',
        ':OUTPUT ACCEPT [0:0]',
        // a stateful home router: out freely, in only on an existing mapping
        '-A FORWARD -i br0 -o wan0 -j ACCEPT',
        '-A FORWARD -i wan0 -o br0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
        'COMMIT',
        '',
      ].join('\n');
    await this.iptablesRestore('home1', home('home1', 'MASQUERADE'));
    await this.iptablesRestore('home2', home('home2', 'MASQUERADE --random-fully'));
    await this.iptablesRestore(
      'cloud',
      [
        '*nat',
        ':PREROUTING ACCEPT [0:0]',
        ':INPUT ACCEPT [0:0]',
        ':OUTPUT ACCEPT [0:0]',
        ':POSTROUTING ACCEPT [0:0]',
        // cloud-style 1-to-1 NAT: everything for the public address goes to the edge, and the
        // edge's traffic leaves with the public address (ports kept)
        `-A PREROUTING -i wan0 -d ${CLOUD_PUBLIC}/32 -j DNAT --to-destination ${EDGE_PRIVATE}`,
        `-A POSTROUTING -o wan0 -s ${EDGE_PRIVATE}/32 -j SNAT --to-source ${CLOUD_PUBLIC}`,
        // the rest of the private subnet (lan1) goes out through a NAT gateway address
        `-A POSTROUTING -o wan0 -s ${LANS.cloud.net} -j SNAT --to-source ${CLOUD_NATGW}`,
        'COMMIT',
        '',
      ].join('\n'),
    );

    if (this.udpTimeout !== undefined) await this.setUdpTimeout(this.udpTimeout);

  }
}

function leakName(net: string): string {
  return 'leak_' + net.replace(/[./]/g, '_');
}
