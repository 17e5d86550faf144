/**
 * Exit codes of the `sipedge` command (documented in `sipedge --help`):
 *
 * | code | meaning |
 * |---|---|
 * | 0 | success; `start`: stopped cleanly by SIGTERM/SIGINT |
 * | 1 | runtime failure: the edge failed to start or to stop, a second signal forced the exit, the API answered with an error, a reload was refused |
 * | 2 | invalid configuration (each error is printed with its key path) |
 * | 3 | the running edge's API could not be reached (`show`, `reload`) |
 * | 64 | usage error (unknown command or option, missing argument) |
 */
export const ExitCode = {
  OK: 0,
  FAILURE: 1,
  CONFIG: 2,
  UNREACHABLE: 3,
  USAGE: 64,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** Help text appended to `sipedge --help`. */
export const EXIT_CODES_HELP = `
Exit codes:
  0   success (start: stopped cleanly by SIGTERM/SIGINT)
  1   runtime failure (edge failed to start/stop, forced exit on a second signal,
      API error, reload refused)
  2   invalid configuration
  3   the running edge's API is not reachable (show, reload)
  64  usage error`;
