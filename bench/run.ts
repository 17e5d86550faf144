/**
 * `npm run bench`: sipedge side by side with Kamailio and rtpengine on this machine, on loopback.
 *
 *   npm run bench [-- --quick] [-- --only calls,registrations,keepalive,media,memory]
 *                 [--users N] [--kamailio-children N] [--rtpengine-threads N] [--out DIR]
 *   npm run bench -- --report DIR/results.json      (the summary of an earlier run again)
 *
 * Sections (see each file for what exactly is measured):
 *   calls, registrations  bench/signalling.ts  sipedge vs Kamailio (bench/peers/kamailio.cfg), SIPp
 *   keepalive             bench/keepalive.ts   OPTIONS fan-out to 10k / 100k NATed bindings
 *   media                 bench/media.ts       sipedge relay vs rtpengine userspace, RTP load in C
 *   memory                bench/memory.ts      bytes per binding, per relayed call
 *
 * Progress goes to stderr; the summary table to stdout; results.json and results.md to --out
 * (default: a new directory under the system temp dir). Prerequisites: bench/setup.sh.
 * Every load loop is bounded in count and time; nothing leaves 127.0.0.1.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { benchKeepalive, type KeepaliveResult } from './keepalive.js';
import { benchMedia, type MediaResults, type RelayResult } from './media.js';
import { benchMemory, type MemoryResults } from './memory.js';
import { benchCalls, benchRegistrations, bottleneckOf, type SearchResult, type SignallingOptions } from './signalling.js';
import { BENCH_NICE, fmt, machineInfo, mdTable, progress, raiseAutogroupPriority, ratio, sleep, systemBusySeconds, table } from './lib/util.js';

const SECTIONS = ['calls', 'registrations', 'keepalive', 'media', 'memory'] as const;
type Section = (typeof SECTIONS)[number];

interface Args {
  quick: boolean;
  only: Set<Section>;
  users: number;
  kamailioChildren: number;
  rtpengineThreads: number;
  out: string;
}

function usage(msg?: string): never {
  if (msg) process.stderr.write(`${msg}\n`);
  process.stderr.write(
    'usage: npm run bench -- [--quick] [--only calls,registrations,keepalive,media,memory] [--users N]\n' +
      '                        [--kamailio-children N] [--rtpengine-threads N] [--out DIR]\n' +
      '       npm run bench -- --report DIR/results.json\n',
  );
  process.exit(64);
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    quick: false,
    only: new Set(SECTIONS),
    users: 10000,
    kamailioChildren: 4,
    rtpengineThreads: os.cpus().length,
    out: '',
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) usage(`${k} needs a value`);
      return x;
    };
    const num = (): number => {
      const n = Number(v());
      if (!Number.isInteger(n) || n <= 0) usage(`${k} needs a positive integer`);
      return n;
    };
    if (k === '--quick') a.quick = true;
    else if (k === '--only') {
      const list = v().split(',').map((s) => s.trim()) as Section[];
      for (const s of list) if (!SECTIONS.includes(s)) usage(`unknown section ${s}`);
      a.only = new Set(list);
    } else if (k === '--users') a.users = num();
    else if (k === '--kamailio-children') a.kamailioChildren = num();
    else if (k === '--rtpengine-threads') a.rtpengineThreads = num();
    else if (k === '--out') a.out = v();
    else if (k === '--help' || k === '-h') usage();
    else usage(`unknown argument ${k}`);
  }
  if (!a.out) a.out = fs.mkdtempSync(path.join(os.tmpdir(), 'sipedge-bench-results-'));
  else fs.mkdirSync(a.out, { recursive: true });
  return a;
}

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** Share of one core used by everything on the machine over `ms` (nothing of ours is running). */
async function backgroundLoad(ms: number): Promise<number> {
  const b0 = systemBusySeconds();
  await sleep(ms);
  return (systemBusySeconds() - b0) / (ms / 1000);
}

interface Results {
  mode: string;
  command: string;
  startedAt: string;
  durationS?: number;
  machine: Record<string, string>;
  backgroundBefore: number;
  nice: number;
  autogroup?: string;
  calls: SearchResult[];
  registrations: SearchResult[];
  keepalive?: { results: KeepaliveResult[]; command: string };
  media?: MediaResults;
  memory?: MemoryResults;
  errors: string[];
}

async function main(): Promise<void> {
  // --report results.json: print the summary of an earlier run again (and write results.md beside it).
  const ri = process.argv.indexOf('--report');
  if (ri > 0) {
    const file = process.argv[ri + 1] ?? usage('--report needs a results.json');
    const res = JSON.parse(fs.readFileSync(file, 'utf8')) as Results;
    fs.writeFileSync(path.join(path.dirname(file), 'results.md'), report(res, 'md'));
    process.stdout.write(`${report(res, 'text')}\n`);
    return;
  }
  const args = parseArgs(process.argv.slice(2));
  const needs: Record<string, Section[]> = {
    sipp: ['calls', 'registrations', 'memory'],
    kamailio: ['calls', 'registrations', 'memory'],
    kamcmd: ['memory'],
    rtpengine: ['media', 'memory'],
    gcc: ['media'],
  };
  const missing = Object.entries(needs)
    .filter(([cmd, secs]) => secs.some((s) => args.only.has(s)) && !have(cmd))
    .map(([cmd]) => cmd);
  if (missing.length) {
    process.stderr.write(`missing: ${missing.join(', ')} — run bench/setup.sh (as root) to install the prerequisites\n`);
    process.exit(69);
  }
  const q = args.quick;
  const sig: SignallingOptions = {
    quick: q,
    stepS: q ? 10 : 30,
    budgetS: q ? 150 : 330,
    users: args.users,
    callStart: 200,
    regStart: 400,
    holdMs: 100,
    kamailioChildren: args.kamailioChildren,
  };
  const t0 = Date.now();
  const autogroup = raiseAutogroupPriority();
  const bg = await backgroundLoad(3000);
  const res: Results = {
    mode: q ? `quick (${sig.stepS} s steps)` : `full (${sig.stepS} s steps)`,
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    startedAt: new Date().toISOString(),
    machine: machineInfo(),
    backgroundBefore: bg,
    nice: BENCH_NICE,
    autogroup,
    calls: [],
    registrations: [],
    errors: [],
  };
  progress(`sipedge bench, ${res.mode}; results in ${args.out}; background load before start: ${(bg * 100).toFixed(0)} % of one core`);
  const guard = async (what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      const msg = `${what}: ${(err as Error).stack ?? String(err)}`;
      res.errors.push(msg);
      progress(`ERROR ${msg}`);
    }
    fs.writeFileSync(path.join(args.out, 'results.json'), JSON.stringify(res, null, 1));
  };

  if (args.only.has('calls')) {
    await guard('calls sipedge', async () => void res.calls.push(await benchCalls({ label: 'sipedge', kind: 'sipedge', store: 'memory' }, sig)));
    await guard('calls sipedge 2 workers', async () => void res.calls.push(await benchCalls({ label: 'sipedge (2 workers, sqlite:)', kind: 'sipedge', store: 'sqlite', workers: 2 }, sig)));
    await guard('calls kamailio', async () => void res.calls.push(await benchCalls({ label: 'Kamailio', kind: 'kamailio', children: args.kamailioChildren }, sig)));
  }
  if (args.only.has('registrations')) {
    await guard('registrations sipedge memory', async () => void res.registrations.push(await benchRegistrations({ label: 'sipedge (memory:)', kind: 'sipedge', store: 'memory' }, sig)));
    await guard('registrations sipedge sqlite', async () => void res.registrations.push(await benchRegistrations({ label: 'sipedge (sqlite:)', kind: 'sipedge', store: 'sqlite' }, sig)));
    await guard('registrations sipedge 2 workers', async () => void res.registrations.push(await benchRegistrations({ label: 'sipedge (2 workers, sqlite:)', kind: 'sipedge', store: 'sqlite', workers: 2 }, sig)));
    await guard('registrations kamailio', async () => void res.registrations.push(await benchRegistrations({ label: 'Kamailio', kind: 'kamailio', children: args.kamailioChildren }, sig)));
  }
  if (args.only.has('keepalive')) {
    await guard('keepalive', async () => {
      res.keepalive = await benchKeepalive({ bindings: [10_000, 100_000], intervalS: 30, measureS: q ? 30 : 60 });
    });
  }
  if (args.only.has('media')) {
    await guard('media', async () => {
      res.media = await benchMedia({ quick: q, callCounts: [50, 200], stepMs: q ? 3000 : 10_000, budgetS: q ? 45 : 150, startPps: 20_000, rtpengineThreads: args.rtpengineThreads });
    });
  }
  if (args.only.has('memory')) {
    await guard('memory', async () => {
      res.memory = await benchMemory({ bindings: 100_000, relayCalls: 1000, kamailioChildren: args.kamailioChildren, fillRate: 1000, rtpengineThreads: args.rtpengineThreads });
    });
  }
  res.durationS = (Date.now() - t0) / 1000;
  fs.writeFileSync(path.join(args.out, 'results.json'), JSON.stringify(res, null, 1));
  const md = report(res, 'md');
  fs.writeFileSync(path.join(args.out, 'results.md'), md);
  process.stdout.write(`\n${report(res, 'text')}\n`);
  progress(`done in ${(res.durationS / 60).toFixed(1)} min; ${path.join(args.out, 'results.json')}, ${path.join(args.out, 'results.md')}`);
  if (res.errors.length) process.exitCode = 1;
}

const pct = (cpuS: number | undefined, s: number | undefined): string => (cpuS === undefined || !s ? '—' : `${((cpuS / s) * 100).toFixed(0)} %`);

/** The summary: every figure beside its baseline (Kamailio, rtpengine) and the ratio. */
function report(r: Results, kind: 'text' | 'md'): string {
  const render = kind === 'md' ? mdTable : table;
  const out: string[] = [];
  const h = (s: string): void => void out.push(kind === 'md' ? `\n### ${s}\n` : `\n== ${s}`);
  const m = r.machine;
  out.push(
    kind === 'md'
      ? `**${r.command}** — ${r.mode}, ${r.startedAt}, ${((r.durationS ?? 0) / 60).toFixed(1)} min. Machine: ${m.cpu}, ${m.nproc} cores, ${m.memory}, ${m.kernel}, Node ${m.node}, Kamailio ${m.kamailio}, rtpengine ${m.rtpengine}, SIPp ${m.sipp.replace(/\.$/, '')}. Background load before start: ${(r.backgroundBefore * 100).toFixed(0)} % of one core; benchmark processes at nice ${r.nice} (session autogroup: ${r.autogroup ?? '—'}).`
      : `sipedge benchmarks — ${r.mode} — ${m.cpu}, ${m.nproc} cores, ${m.memory}, Node ${m.node}, Kamailio ${m.kamailio}, rtpengine ${m.rtpengine}, SIPp ${m.sipp}\n` +
          `background load before start ${(r.backgroundBefore * 100).toFixed(0)} % of one core; benchmark processes at nice ${r.nice} (session autogroup: ${r.autogroup ?? '—'})`,
  );

  const find = (list: SearchResult[], label: string): SearchResult | undefined => list.find((x) => x.target === label);
  if (r.calls.length || r.registrations.length) {
    h('Signalling: UDP on loopback, SIPp; sipedge with media.relay: never; ratio = sipedge / Kamailio');
    const rows: string[][] = [];
    const sc = find(r.calls, 'sipedge');
    const kc = find(r.calls, 'Kamailio');
    const step = r.mode.match(/\d+ s/)?.[0] ?? '';
    if (sc || kc) {
      rows.push([`calls/s, 0 failed over ${step} (INVITE/407/ACK/INVITE/200/ACK/BYE)`, fmt(sc?.best), fmt(kc?.best), ratio(sc?.best, kc?.best)]);
      rows.push(['  first failing rate', fmt(sc?.firstFail), fmt(kc?.firstFail), '']);
      rows.push(['  proxy CPU s per 1,000 calls (lower is better)', fmt(sc?.targetCpuPer1k), fmt(kc?.targetCpuPer1k), ratio(sc?.targetCpuPer1k, kc?.targetCpuPer1k)]);
      const stepLen = (x?: SearchResult): number | undefined => (x?.bestStep ? x.bestStep.planned / x.bestStep.rate : undefined);
      rows.push(['  proxy CPU at the best rate, % of one core', pct(sc?.bestStep?.targetCpuS, stepLen(sc)), pct(kc?.bestStep?.targetCpuS, stepLen(kc)), '']);
      rows.push([
        '  SIPp CPU s per 1,000 calls (UAC + UAS)',
        sc ? `${fmt(sc.clientCpuPer1k)} + ${fmt(sc.uasCpuPer1k)}` : '—',
        kc ? `${fmt(kc.clientCpuPer1k)} + ${fmt(kc.uasCpuPer1k)}` : '—',
        '',
      ]);
    }
    const sc2 = find(r.calls, 'sipedge (2 workers, sqlite:)');
    if (sc2) {
      rows.push(['calls/s, 0 failed — sipedge (2 workers, sqlite:)', fmt(sc2.best), fmt(kc?.best), ratio(sc2.best, kc?.best)]);
      rows.push(['  proxy CPU s per 1,000 calls, all processes (lower is better)', fmt(sc2.targetCpuPer1k), fmt(kc?.targetCpuPer1k), ratio(sc2.targetCpuPer1k, kc?.targetCpuPer1k)]);
    }
    const kr = find(r.registrations, 'Kamailio');
    for (const label of ['sipedge (memory:)', 'sipedge (sqlite:)', 'sipedge (2 workers, sqlite:)']) {
      const sr = find(r.registrations, label);
      if (!sr && !kr) continue;
      rows.push([`registrations/s with digest, 0 failed — ${label}`, fmt(sr?.best), fmt(kr?.best), ratio(sr?.best, kr?.best)]);
      rows.push(['  target CPU s per 1,000 registrations (lower is better)', fmt(sr?.targetCpuPer1k), fmt(kr?.targetCpuPer1k), ratio(sr?.targetCpuPer1k, kr?.targetCpuPer1k)]);
      rows.push(['  SIPp CPU s per 1,000 registrations', fmt(sr?.clientCpuPer1k), fmt(kr?.clientCpuPer1k), '']);
    }
    out.push(render(['', 'sipedge', 'Kamailio', 'ratio'], rows));
    const firstFailStep = (x: SearchResult) => x.steps.filter((st) => !st.pass && x.firstFail === st.rate).pop();
    const lim = [...r.calls, ...r.registrations]
      .map((x) => ({ x, b: bottleneckOf(x.bestStep, firstFailStep(x), x.target) }))
      .filter((y) => y.b)
      .map(({ x, b }) => `${x.what} ${x.target}: ${b}`);
    if (lim.length) out.push((kind === 'md' ? '\n' : '') + lim.map((l) => (kind === 'md' ? `- ${l}` : `  ${l}`)).join('\n'));
  }

  if (r.keepalive?.results.length) {
    const ks = r.keepalive.results;
    h(`Keepalive fan-out: SIP OPTIONS to NATed bindings every ${ks[0].intervalS} s (sipedge only; ratio = 100k / 10k)`);
    const a = ks[0];
    const b = ks[1];
    const row = (name: string, f: (k: KeepaliveResult) => number, digits = 3): string[] => [name, ...ks.map((k) => fmt(f(k), digits)), b ? ratio(f(b), f(a)) : ''];
    out.push(
      render(
        ['', ...ks.map((k) => `${k.bindings.toLocaleString('en-US')} bindings`), 'ratio'],
        [
          row('OPTIONS/s sent', (k) => k.perSecond),
          row('CPU, % of one core', (k) => k.cpuPct),
          row('CPU µs per keepalive (build, transaction, send, 200 parsed)', (k) => k.cpuUsPerKeepalive),
          row('event-loop delay p99, ms', (k) => k.loopDelayP99Ms),
          row('reload of all bindings from SQLite, CPU s (every 300 s)', (k) => k.refreshCpuS),
          row('requests the phones answered per OPTIONS sent (> 1: retransmissions)', (k) => k.sinkAnswered / Math.max(1, k.sent)),
          row('UDP datagrams dropped, receive buffer full', (k) => k.rcvbufDrops),
          row('RSS of the process, MB', (k) => k.rssBytes / 2 ** 20),
        ],
      ),
    );
  }

  if (r.media?.relays.length) {
    const mr = r.media;
    h('Media: 172-byte G.711 RTP both ways on every call, ≤ 0.1 % loss; ratio = best sipedge relay / rtpengine');
    const rows: string[][] = [];
    const calls = [...new Set(mr.relays.map((x) => x.calls))];
    const byLabel = (c: number, label: string): RelayResult | undefined => mr.relays.find((x) => x.calls === c && x.relay === label);
    const workerLabels = [...new Set(mr.relays.filter((x) => x.relay.startsWith('sipedge relay (')).map((x) => x.relay))];
    const wl = workerLabels[0];
    const engine = (c: number): RelayResult | undefined => mr.relays.find((x) => x.calls === c && !x.relay.startsWith('sipedge'));
    const ge = (x?: RelayResult): string => (x ? `${x.generatorLimited ? '≥ ' : ''}${fmt(x.bestPps)}` : '—');
    const best = (a?: RelayResult, b?: RelayResult): RelayResult | undefined => (a && b ? ((b.bestPps ?? 0) > (a.bestPps ?? 0) ? b : a) : (a ?? b));
    for (const c of calls) {
      const s1 = byLabel(c, 'sipedge relay');
      const s2 = wl ? byLabel(c, wl) : undefined;
      const s = best(s1, s2);
      const e = engine(c);
      const d = mr.direct[c];
      const row = (name: string, f: (x?: RelayResult) => string, r: string): string[] => [name, f(s1), ...(wl ? [f(s2)] : []), f(e), r];
      rows.push(row(`packets/s relayed, ${c} calls`, ge, ratio(s?.bestPps, e?.bestPps)));
      rows.push(row('  relay CPU µs per packet (lower is better)', (x) => fmt(x?.cpuUsPerPacket), ratio(s?.cpuUsPerPacket, e?.cpuUsPerPacket)));
      const add = (x: RelayResult | undefined, k: 'p50us' | 'p99us'): number | undefined => (x?.nominal && d ? x.nominal.run[k] - d[k] : undefined);
      rows.push(row(`  added latency p50, µs, at ${c * 100} packets/s (direct: ${d?.p50us ?? '—'} µs)`, (x) => fmt(add(x, 'p50us')), ratio(add(s, 'p50us'), add(e, 'p50us'))));
      rows.push(row(`  added latency p99, µs, at ${c * 100} packets/s (direct: ${d?.p99us ?? '—'} µs)`, (x) => fmt(add(x, 'p99us')), ratio(add(s, 'p99us'), add(e, 'p99us'))));
    }
    out.push(render(['', 'sipedge relay', ...(wl ? [wl] : []), `rtpengine (${mr.rtpengineThreads} threads)`, 'ratio'], rows));
    if (mr.relays.some((x) => x.generatorLimited)) out.push(`${kind === 'md' ? '\n' : '  '}≥: the load generator (one process, one core) could not send faster; the relay was not saturated.`);
  }

  if (r.memory) {
    const mm = r.memory;
    h(`Memory: ${mm.bindings.toLocaleString('en-US')} bindings, ${mm.relayCalls.toLocaleString('en-US')} relayed calls; ratio = sipedge / baseline (lower is better)`);
    const ip = mm.inProcess;
    const ka = ip ? ip.memoryStore.heapBytesPerBinding + ip.keepalive.heapBytesPerBinding : undefined;
    const kam = mm.kamailio?.shmBytesPerBinding;
    out.push(
      render(
        ['', 'sipedge', 'baseline', 'ratio'],
        [
          ['bytes per binding, heap: registrar + MemoryLocationStore', fmt(ip?.memoryStore.heapBytesPerBinding), `Kamailio usrloc shm ${fmt(kam)}`, ratio(ip?.memoryStore.heapBytesPerBinding, kam)],
          ['  + keepalive state of a NATed binding', fmt(ip?.keepalive.heapBytesPerBinding), '', ''],
          ['  = per NATed binding', fmt(ka), fmt(kam), ratio(ka, kam)],
          ['bytes per binding, process RSS after 100k REGISTERs (memory:)', fmt(mm.sipedgeProcess?.rssBytesPerBinding), `Kamailio shm ${fmt(kam)}`, ratio(mm.sipedgeProcess?.rssBytesPerBinding, kam)],
          ['SQLite file bytes per binding', fmt(ip?.sqlite.fileBytesPerBinding), '', ''],
          ['bytes per relayed call, heap', fmt(mm.sipedgeRelay?.heapBytesPerCall), `rtpengine RSS ${fmt(mm.rtpengine?.rssBytesPerCall)}`, ratio(mm.sipedgeRelay?.heapBytesPerCall, mm.rtpengine?.rssBytesPerCall)],
          ['bytes per relayed call, RSS', fmt(mm.sipedgeRelay?.rssBytesPerCall), fmt(mm.rtpengine?.rssBytesPerCall), ratio(mm.sipedgeRelay?.rssBytesPerCall, mm.rtpengine?.rssBytesPerCall)],
        ],
      ),
    );
  }
  if (r.errors.length) {
    h('Errors');
    out.push(r.errors.map((e) => e.split('\n')[0]).join('\n'));
  }
  if (kind === 'md') {
    h('Steps');
    for (const s of [...r.calls, ...r.registrations]) {
      out.push(`\n${s.what}, ${s.target}:\n`);
      out.push(
        mdTable(
          ['rate/s', 'result', 'ok', 'failed', 'retrans', 'elapsed s', 'target CPU', 'SIPp CPU', 'UAS CPU', 'others CPU', 'rcvbuf drops'],
          s.steps.map((x) => [
            String(x.rate),
            x.pass ? 'pass' : `fail: ${x.why}`,
            String(x.successful),
            String(x.failed),
            String(x.retransmissions),
            x.elapsedS.toFixed(1),
            pct(x.targetCpuS, x.elapsedS),
            pct(x.clientCpuS, x.elapsedS),
            pct(x.uasCpuS, x.elapsedS),
            pct(x.otherCpuS, x.elapsedS),
            String(x.rcvbufDrops),
          ]),
        ),
      );
    }
    for (const x of r.media?.relays ?? []) {
      out.push(`\nmedia, ${x.relay}, ${x.calls} calls (nominal ${x.calls * 100} packets/s first):\n`);
      const all = x.nominal ? [x.nominal, ...x.steps] : x.steps;
      out.push(
        mdTable(
          ['packets/s', 'result', 'loss %', 'p50 µs', 'p99 µs', 'relay CPU', 'generator CPU', 'others CPU', 'rcvbuf drops'],
          all.map((s) => {
            const el = s.run.durationS + 0.3;
            return [String(s.rate), s.pass ? 'pass' : `fail: ${s.why}`, (s.run.loss * 100).toFixed(3), String(s.run.p50us), String(s.run.p99us), pct(s.relayCpuS, el), pct(s.run.cpuS, el), pct(s.otherCpuS, el), String(s.rcvbufDrops)];
          }),
        ),
      );
    }
    h('Commands');
    const cmds = [...r.calls, ...r.registrations].flatMap((s) => s.commands);
    if (r.keepalive) cmds.push(r.keepalive.command);
    cmds.push(...(r.media?.commands ?? []), ...(r.memory?.commands ?? []));
    out.push(['```', ...[...new Set(cmds)].map((c) => c.replace(/\/tmp\/\S+?\//g, '')), '```'].join('\n'));
  }
  return out.join('\n') + '\n';
}

await main();
