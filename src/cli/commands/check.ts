/**
 * `sipedge check [-c FILE] [--json] [--show-secrets]`: validates a config and prints the
 * effective settings (YAML, or JSON with `--json`) on stdout, warnings on stderr; or each
 * error as `key.path: message (line L, column C)` on stderr. Exit 0 valid, 2 invalid.
 */
import { resolve } from 'node:path';
import { formatConfigYaml, configToYamlData } from '../../config/format.js';
import { loadConfig } from '../../config/load.js';
import { configErrorLines } from '../config-errors.js';
import { ExitCode } from '../exit-codes.js';
import type { CliIo } from '../io.js';

/** Options of {@link runCheck}. */
export interface CheckOptions {
  config: string;
  json?: boolean;
  showSecrets?: boolean;
}

/** Runs `check`; resolves to the exit code. */
export async function runCheck(opts: CheckOptions, io: CliIo): Promise<number> {
  const result = await loadConfig(opts.config);
  if (!result.ok) {
    for (const line of configErrorLines(opts.config, result.errors)) io.err(`${line}\n`);
    return ExitCode.CONFIG;
  }
  for (const w of result.warnings) io.err(`warning: ${w}\n`);
  if (opts.json) {
    io.out(`${JSON.stringify({ ...configToYamlData(result.config, opts), sockets: result.config.sockets }, null, 2)}\n`);
  } else {
    io.out(`# effective settings of ${resolve(opts.config)} (valid)\n`);
    io.out(formatConfigYaml(result.config, opts));
  }
  return ExitCode.OK;
}
