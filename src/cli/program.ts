/**
 * The `sipedge` command line (commander): builds the program and runs it, resolving to the
 * process exit code (see {@link ExitCode}). Each command lives in `commands/*.ts`.
 */
import { readFileSync } from 'node:fs';
import { Argument, Command, CommanderError, Option } from 'commander';
import { CliError } from './api-client.js';
import { runCheck } from './commands/check.js';
import { runReload } from './commands/reload.js';
import { runShow, SHOW_TOPICS, type ShowTopic } from './commands/show.js';
import { runStart, type StartDeps } from './commands/start.js';
import { EXIT_CODES_HELP, ExitCode } from './exit-codes.js';
import { processIo, type CliIo } from './io.js';

/** Default config file of every command. */
export const DEFAULT_CONFIG = './sipedge.yaml';

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** Dependencies of {@link runCli}; everything defaults to the real process. */
export type CliDeps = Partial<Omit<StartDeps, 'io'>> & { io?: CliIo };

/**
 * Parses `argv` (as `process.argv`: node, script, args…) and runs the command.
 * Resolves to the exit code; `start` resolves only once the edge has stopped.
 */
export async function runCli(argv: readonly string[], deps: CliDeps = {}): Promise<number> {
  const io = deps.io ?? processIo;
  let code: number = ExitCode.OK;

  const program = new Command('sipedge')
    .description('SIP registrar, stateful proxy and RTP relay that works across NAT')
    .version(packageVersion(), '-V, --version')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .showHelpAfterError('(run "sipedge --help" for usage)')
    .addHelpText('after', EXIT_CODES_HELP);

  const configOption = () => new Option('-c, --config <file>', 'config file').default(DEFAULT_CONFIG);
  const apiOption = () => new Option('--api <url>', 'admin API of the running edge (http://host:port or host:port); default: api.listen of the config');

  program
    .command('start')
    .description('run the edge in the foreground (SIGTERM/SIGINT stop it, SIGHUP reloads)')
    .addOption(configOption())
    .action(async (opts: { config: string }) => {
      code = await runStart(opts, { ...deps, io });
    });

  program
    .command('check')
    .description('validate a config and print the effective settings, or each error with its key path')
    .addOption(configOption())
    .option('--json', 'print the effective settings as JSON')
    .option('--show-secrets', 'print passwords instead of masking them')
    .action(async (opts: { config: string; json?: boolean; showSecrets?: boolean }) => {
      code = await runCheck(opts, io);
    });

  program
    .command('show')
    .description('ask the running edge: settings, peers (registered contacts) or calls')
    .addArgument(new Argument('<what>', 'what to show').choices(SHOW_TOPICS))
    .addOption(configOption())
    .addOption(apiOption())
    .option('--json', 'print the API answer as JSON')
    .action(async (what: ShowTopic, opts: { config: string; api?: string; json?: boolean }, cmd: Command) => {
      code = await runShow(what, { ...opts, configExplicit: cmd.getOptionValueSource('config') === 'cli' }, io);
    });

  program
    .command('reload')
    .description('make the running edge re-read its config and re-discover its public address, without dropping calls')
    .addOption(configOption())
    .addOption(apiOption())
    .option('--json', 'print the API answer as JSON')
    .action(async (opts: { config: string; api?: string; json?: boolean }, cmd: Command) => {
      code = await runReload({ ...opts, configExplicit: cmd.getOptionValueSource('config') === 'cli' }, io);
    });

  if (argv.length <= 2) {
    io.err(program.helpInformation());
    return ExitCode.USAGE;
  }

  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; every other commander error is a usage error (already printed).
      return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    }
    if (err instanceof CliError) {
      for (const line of err.lines) io.err(`${line}\n`);
      return err.exitCode;
    }
    io.err(`sipedge: ${(err as Error)?.stack ?? String(err)}\n`);
    return ExitCode.FAILURE;
  }
  return code;
}
