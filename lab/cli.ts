/**
 * npm run lab -- up|down|status [--prefix se-] [--udp-timeout SECONDS]
 */
import { Command, InvalidArgumentError } from 'commander';
import { HOST_NAMES, Lab, LabError, LabUnavailableError } from './lab.js';

function seconds(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('a positive whole number of seconds');
  return n;
}

interface Opts {
  prefix: string;
  udpTimeout?: number;
  quiet?: boolean;
}

function makeLab(o: Opts): Lab {
  return new Lab({
    prefix: o.prefix,
    udpTimeout: o.udpTimeout,
    log: o.quiet ? undefined : (l) => process.stderr.write(l + '\n'),
  });
}

function table(lab: Lab): string {
  const rows = HOST_NAMES.map((h) => {
    const a = lab.addr(h);
    const extra = [a.wanIp && a.wanIp !== a.public ? `wan ${a.wanIp}` : a.wanIp ? `wan ${a.wanIp}` : '', ...(a.extra ?? [])]
      .filter(Boolean)
      .join(', ');
    return `  ${a.ns.padEnd(14)} ${a.ip.padEnd(15)} public ${a.public.padEnd(15)} ${a.router ? `behind ${a.router}` : ''}${extra ? `  (${extra})` : ''}`;
  });
  return rows.join('\n') + '\n';
}

const program = new Command();
program
  .name('lab')
  .description('sipedge NAT lab: network namespaces with real kernel NAT (needs root)')
  .option('--prefix <prefix>', 'namespace prefix', 'se-')
  .option('--udp-timeout <seconds>', 'conntrack UDP timeout on the home routers', seconds)
  .option('-q, --quiet', 'no progress output');

program
  .command('up')
  .description('build the lab (tearing down leftovers with the same prefix first)')
  .action(async () => {
    const o = program.opts<Opts>();
    const lab = makeLab(o);
    await lab.up();
    process.stdout.write(`lab ${lab.prefix} is up\n` + table(lab));
    process.stdout.write(`run things inside with: ip netns exec ${lab.prefix}<host> <command>\n`);
  });

program
  .command('down')
  .description('delete every namespace with the prefix (idempotent)')
  .action(async () => {
    const o = program.opts<Opts>();
    const lab = makeLab(o);
    const before = await lab.namespaces();
    await lab.down();
    process.stdout.write(`lab ${lab.prefix} is down (${before.length} namespaces removed)\n`);
  });

program
  .command('status')
  .description('list namespaces, addresses, NAT rules and conntrack timeouts')
  .action(async () => {
    const o = program.opts<Opts>();
    process.stdout.write(await makeLab({ ...o, quiet: true }).status());
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof LabUnavailableError || err instanceof LabError) {
    process.stderr.write(`lab: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`lab: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
