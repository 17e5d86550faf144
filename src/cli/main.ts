#!/usr/bin/env node
/**
 * Entry point of the `sipedge` command (package.json `bin`). All logic is in `program.ts`;
 * exit codes are listed in `exit-codes.ts` and in `sipedge --help`.
 */
import { runCli } from './program.js';

// `sipedge show peers | head -1`: a reader that goes away is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

const code = await runCli(process.argv);
process.exitCode = code;
// Normally the event loop is empty by now and the process exits with `code`. If a handle is
// still open (e.g. a forced stop with a second signal), exit anyway after a short grace period.
setTimeout(() => process.exit(code), code === 0 ? 2000 : 100).unref();
