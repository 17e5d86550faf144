/** How the CLI prints config errors (shared by `check`, `start`, `show`, `reload`). */
import { formatConfigError, type ConfigError } from '../config/load.js';

/**
 * Lines (without newlines) describing config errors: a file that cannot be read gives one
 * self-contained line; otherwise a header naming the file, then one indented
 * `key.path: message (line L, column C)` line per error.
 */
export function configErrorLines(file: string, errors: ConfigError[], what = 'invalid configuration'): string[] {
  if (errors.length === 1 && errors[0].path === '' && errors[0].line === undefined) return [`sipedge: ${errors[0].message}`];
  const n = errors.length;
  return [`${file}: ${what} (${n} error${n === 1 ? '' : 's'})`, ...errors.map((e) => `  ${formatConfigError(e)}`)];
}
