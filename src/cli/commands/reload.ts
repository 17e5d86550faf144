/**
 * `sipedge reload [-c FILE] [--api URL]`: asks the running edge to re-read its config and
 * re-discover its public address (POST /api/reload). Exit 0 when the edge accepted the
 * reload, 1 when it refused (its errors are printed), 3 when it is not reachable.
 * The same happens when the edge process receives SIGHUP.
 */
import { apiRequest, resolveApiTarget } from '../api-client.js';
import { ExitCode } from '../exit-codes.js';
import type { CliIo } from '../io.js';

/** Options of {@link runReload}. */
export interface ReloadOptions {
  config: string;
  configExplicit: boolean;
  api?: string;
  json?: boolean;
}

/** Runs `reload`; resolves to the exit code. */
export async function runReload(opts: ReloadOptions, io: CliIo): Promise<number> {
  const target = await resolveApiTarget(opts);
  // Reload re-runs public address discovery (metadata/STUN), which may take a few seconds.
  const { status, body } = await apiRequest(target, 'POST', '/api/reload', 30_000);
  const result = body as { ok?: boolean; errors?: unknown; message?: string } | null;
  if (opts.json) io.out(`${JSON.stringify(body, null, 2)}\n`);
  if (status >= 200 && status < 300 && result?.ok === true) {
    if (!opts.json) io.out('reloaded\n');
    return ExitCode.OK;
  }
  const errors = Array.isArray(result?.errors) ? result.errors.map(String) : [result?.message ?? `HTTP ${status}`];
  io.err(`reload refused by the edge at ${target.baseUrl}; it keeps running with its previous settings:\n`);
  for (const e of errors) io.err(`  ${e}\n`);
  return ExitCode.FAILURE;
}
