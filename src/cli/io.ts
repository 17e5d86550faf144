/** Output channels of the CLI, injectable so commands can be tested in-process. */
export interface CliIo {
  /** Writes to standard output (results: tables, YAML, JSON). */
  out(text: string): void;
  /** Writes to standard error (errors, warnings, progress). */
  err(text: string): void;
}

/** The process's real stdout/stderr. */
export const processIo: CliIo = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};
