/**
 * Client side of the admin API for `sipedge show` / `sipedge reload`: finds the running
 * edge's API address (from `--api`, else `api.listen` of the config) and makes requests with
 * errors a human can act on.
 */
import { loadConfig } from '../config/load.js';
import { DEFAULT_API_LISTEN } from '../config/schema.js';
import { parseHostPort } from '../config/values.js';
import { configErrorLines } from './config-errors.js';
import { ExitCode } from './exit-codes.js';

/** Where the API is, and how we know (for error messages). */
export interface ApiTarget {
  /** `http://host:port` without trailing slash. */
  baseUrl: string;
  /** e.g. `api.listen in ./sipedge.yaml`, `--api`. */
  origin: string;
}

/** A CLI failure carrying its exit code and the lines to print on stderr. */
export class CliError extends Error {
  constructor(
    readonly exitCode: number,
    readonly lines: string[],
  ) {
    super(lines.join('\n'));
  }
}

/** Default time to wait for an API answer, ms. */
export const API_TIMEOUT_MS = 5000;

/** Converts a bind address to one a client can connect to (wildcards → loopback). */
function connectHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::' || host === '0:0:0:0:0:0:0:0') return '::1';
  return host;
}

/** `host:port` or `http(s)://…` → base URL. */
export function apiBaseUrl(spec: string): string {
  if (/^https?:\/\//i.test(spec)) {
    let url: URL;
    try {
      url = new URL(spec);
    } catch {
      throw new CliError(ExitCode.USAGE, [`--api: "${spec}" is not a valid URL`]);
    }
    return url.href.replace(/\/+$/, '');
  }
  const hp = parseHostPort(spec);
  if (!hp.ok) throw new CliError(ExitCode.USAGE, [`--api: ${hp.reason}`]);
  const host = connectHost(hp.value.host);
  return `http://${host.includes(':') ? `[${host}]` : host}:${hp.value.port}`;
}

/**
 * Resolves the API address: `--api` wins; else `api.listen` from the config file. When the
 * config file is the implicit default (`./sipedge.yaml`) and does not exist, the default
 * `api.listen` (127.0.0.1:8088) is used. Throws {@link CliError} (exit 2) on an invalid config.
 */
export async function resolveApiTarget(opts: { api?: string; config: string; configExplicit: boolean }): Promise<ApiTarget> {
  if (opts.api) return { baseUrl: apiBaseUrl(opts.api), origin: '--api' };
  const loaded = await loadConfig(opts.config);
  if (!loaded.ok) {
    const notFound = loaded.errors.length === 1 && loaded.errors[0].path === '' && loaded.errors[0].message.startsWith('config file not found');
    if (notFound && !opts.configExplicit) {
      return { baseUrl: apiBaseUrl(DEFAULT_API_LISTEN), origin: `the default api.listen (${opts.config} not found)` };
    }
    throw new CliError(ExitCode.CONFIG, configErrorLines(opts.config, loaded.errors));
  }
  if (!loaded.config.api.enabled) {
    throw new CliError(ExitCode.FAILURE, [`the admin API is disabled (api.enabled: false in ${opts.config}); enable it, or pass --api HOST:PORT`]);
  }
  return { baseUrl: apiBaseUrl(loaded.config.api.listen), origin: `api.listen in ${opts.config}` };
}

/** Describes a fetch failure (connection refused, timeout …) in plain words. */
function describeNetworkError(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; code?: string; cause?: { code?: string; message?: string; errors?: Array<{ code?: string }> } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return `no answer within ${timeoutMs / 1000} s`;
  const code = e.cause?.code ?? e.cause?.errors?.[0]?.code ?? e.code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host name not found';
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'connection timed out';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'connection reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    default:
      return e.cause?.message ?? (err as Error).message ?? String(err);
  }
}

/**
 * Makes one API request and parses the JSON answer. Network failures throw {@link CliError}
 * with exit code 3; a non-JSON answer throws with exit code 1. HTTP error statuses are
 * returned, not thrown (the caller decides).
 */
export async function apiRequest(
  target: ApiTarget,
  method: 'GET' | 'POST',
  path: string,
  timeoutMs = API_TIMEOUT_MS,
): Promise<{ status: number; body: unknown }> {
  const url = `${target.baseUrl}${path}`;
  let res: Response;
  try {
    res = await fetch(url, { method, signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } });
  } catch (err) {
    throw new CliError(ExitCode.UNREACHABLE, [
      `cannot reach the sipedge API at ${target.baseUrl} (${describeNetworkError(err, timeoutMs)}).`,
      `Is "sipedge start" running? (address from ${target.origin})`,
    ]);
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new CliError(ExitCode.FAILURE, [`unexpected answer from ${url} (HTTP ${res.status}, not JSON); is this a sipedge API?`]);
  }
  return { status: res.status, body };
}

/** GET that must succeed (2xx); otherwise throws {@link CliError} exit 1 with the API's message. */
export async function apiGet(target: ApiTarget, path: string): Promise<unknown> {
  const { status, body } = await apiRequest(target, 'GET', path);
  if (status < 200 || status >= 300) {
    const msg = (body as { message?: string } | null)?.message ?? '';
    throw new CliError(ExitCode.FAILURE, [`${target.baseUrl}${path} answered HTTP ${status}${msg ? `: ${msg}` : ''}`]);
  }
  return body;
}
