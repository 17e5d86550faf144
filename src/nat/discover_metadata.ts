/**
 * Public-address discovery from the cloud instance-metadata services (the seeds' "1-to-1 NAT"
 * clouds: EC2, GCP, Azure). Each method is one plain async function that never throws and gives
 * up after `timeoutMs` (default 2 s) for the whole exchange, body included.
 *
 * - AWS IMDSv2: `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds`, then
 *   `GET /latest/meta-data/public-ipv4` with `X-aws-ec2-metadata-token`.
 * - GCP: `GET /computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip` with
 *   `Metadata-Flavor: Google`; the answer must carry `Metadata-Flavor: Google` too.
 * - Azure IMDS: `GET /metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress?
 *   api-version=2021-02-01&format=text` with `Metadata: true`.
 *
 * Base URLs default to the link-local metadata endpoints and are overridable
 * (`publicAddress.metadata.{aws,gcp,azure}`) so tests and the NAT lab can point at an emulator.
 * Uses Node's global `fetch` (injectable) with `AbortSignal.timeout`; no redirects are followed.
 */
import { DEFAULT_DISCOVER_TIMEOUT_MS, checkDiscoveredAddress, discoverFailure, type DiscoverFailure, type DiscoverResult } from './discover_result.js';

/** Default base URL of the AWS instance metadata service. */
export const DEFAULT_AWS_METADATA_URL = 'http://169.254.169.254';
/** Default base URL of the GCP metadata server. */
export const DEFAULT_GCP_METADATA_URL = 'http://metadata.google.internal';
/** Default base URL of the Azure instance metadata service. */
export const DEFAULT_AZURE_METADATA_URL = 'http://169.254.169.254';

/** Paths and headers, as the cloud providers document them. */
export const AWS_TOKEN_PATH = '/latest/api/token';
export const AWS_PUBLIC_IPV4_PATH = '/latest/meta-data/public-ipv4';
export const AWS_TOKEN_TTL_HEADER = 'X-aws-ec2-metadata-token-ttl-seconds';
export const AWS_TOKEN_HEADER = 'X-aws-ec2-metadata-token';
/** Token lifetime we ask for (the maximum AWS allows, 6 h). */
export const AWS_TOKEN_TTL_SECONDS = 21600;
export const GCP_EXTERNAL_IP_PATH = '/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip';
export const AZURE_PUBLIC_IP_PATH = '/metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress';
export const AZURE_API_VERSION = '2021-02-01';

/** Most bytes read from a metadata answer; an IP address is far shorter. */
const MAX_BODY_BYTES = 4096;

/** The `fetch` signature used here (Node's global fetch by default). */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** Options of the metadata discovery methods. */
export interface MetadataDiscoverOptions {
  /** Base URL (scheme, host, optional port and path prefix); trailing slashes are ignored. */
  baseUrl?: string;
  /** Deadline for the whole method in ms (both AWS requests together). Default 2000. */
  timeoutMs?: number;
  /** Aborts the attempt early (reported as `TIMEOUT`), e.g. when the owner closes. */
  signal?: AbortSignal;
  /** `fetch` to use (default: the global one). */
  fetchImpl?: FetchLike;
}

type Cloud = 'aws' | 'gcp' | 'azure';

const DNS_ERROR_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'EAI_FAIL', 'EAI_NODATA', 'ENODATA']);

interface HttpAnswer {
  status: number;
  statusText: string;
  headers: Headers;
  /** Body text, or undefined when it exceeded {@link MAX_BODY_BYTES}. */
  body: string | undefined;
}

/** Reads at most `limit` bytes of a body; undefined (and the rest cancelled) when longer. */
async function readLimited(res: Response, limit: number): Promise<string | undefined> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function httpCall(fetchImpl: FetchLike, url: string, init: RequestInit, signal: AbortSignal): Promise<HttpAnswer> {
  const res = await fetchImpl(url, { ...init, signal, redirect: 'manual' });
  const body = await readLimited(res, MAX_BODY_BYTES);
  return { status: res.status, statusText: res.statusText, headers: res.headers, body };
}

function joinUrl(base: string, path: string): string {
  return base.replace(/\/+$/, '') + path;
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** A short, single-line excerpt of a body for error details. */
function excerpt(body: string | undefined): string {
  if (body === undefined) return ' (body too long)';
  const s = body.replace(/\s+/g, ' ').trim();
  if (!s) return '';
  return `: ${s.length > 120 ? `${s.slice(0, 120)}…` : s}`;
}

function httpFailure(cloud: Cloud, what: string, a: HttpAnswer, hint = ''): DiscoverFailure {
  return discoverFailure(cloud, 'HTTP_ERROR', `${what}: HTTP ${a.status}${a.statusText ? ` ${a.statusText}` : ''}${hint}${excerpt(a.body)}`);
}

/** Maps an exception of fetch / body reading to a failure value. */
function classifyError(cloud: Cloud, err: unknown, url: string, timeoutSignal: AbortSignal, timeoutMs: number): DiscoverFailure {
  if (timeoutSignal.aborted) return discoverFailure(cloud, 'TIMEOUT', `no answer from ${hostOf(url)} within ${timeoutMs} ms`);
  const e = err as { name?: string; message?: string; code?: string; cause?: { code?: string; message?: string } } | undefined;
  if (e?.name === 'AbortError' || e?.name === 'TimeoutError') return discoverFailure(cloud, 'TIMEOUT', `aborted while asking ${hostOf(url)}`);
  const code = e?.cause?.code ?? e?.code;
  const message = e?.cause?.message ?? e?.message ?? String(err);
  if (code && DNS_ERROR_CODES.has(code)) return discoverFailure(cloud, 'DNS', `cannot resolve ${hostOf(url)} (${code})`);
  return discoverFailure(cloud, 'HTTP_ERROR', `${hostOf(url)}: ${code ? `${code} ` : ''}${message}`.trim());
}

/** `AbortSignal.any` (Node ≥ 20.3), with a fallback for older Node 20 releases. */
function anySignal(a: AbortSignal, b: AbortSignal): AbortSignal {
  if (typeof AbortSignal.any === 'function') return AbortSignal.any([a, b]);
  const ac = new AbortController();
  for (const s of [a, b]) {
    if (s.aborted) ac.abort(s.reason);
    else s.addEventListener('abort', () => ac.abort(s.reason), { once: true });
  }
  return ac.signal;
}

/** Runs `body` under the method's deadline and turns every exception into a failure value. */
async function withDeadline(
  cloud: Cloud,
  opts: MetadataDiscoverOptions,
  defaultBase: string,
  body: (ctx: { base: string; fetchImpl: FetchLike; signal: AbortSignal; track: (url: string) => string }) => Promise<DiscoverResult>,
): Promise<DiscoverResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_DISCOVER_TIMEOUT_MS;
  const timeoutSignal = AbortSignal.timeout(Math.max(1, timeoutMs));
  const signal = opts.signal ? anySignal(timeoutSignal, opts.signal) : timeoutSignal;
  const base = opts.baseUrl ?? defaultBase;
  let current = base;
  try {
    if (opts.signal?.aborted) return discoverFailure(cloud, 'TIMEOUT', 'aborted before start');
    const fetchImpl = opts.fetchImpl ?? ((input: string, init: RequestInit) => fetch(input, init));
    return await body({
      base,
      fetchImpl,
      signal,
      track: (url) => (current = url),
    });
  } catch (err) {
    return classifyError(cloud, err, current, timeoutSignal, timeoutMs);
  }
}

/**
 * AWS EC2 IMDSv2: gets a session token (`PUT /latest/api/token`, TTL 21600 s), then the instance's
 * public IPv4 address. A 404 means the instance has no public IPv4 address (e.g. only an
 * Elastic IP on another interface, or none).
 */
export async function discoverAws(opts: MetadataDiscoverOptions = {}): Promise<DiscoverResult> {
  return withDeadline('aws', opts, DEFAULT_AWS_METADATA_URL, async ({ base, fetchImpl, signal, track }) => {
    const tokenUrl = track(joinUrl(base, AWS_TOKEN_PATH));
    const tok = await httpCall(fetchImpl, tokenUrl, { method: 'PUT', headers: { [AWS_TOKEN_TTL_HEADER]: String(AWS_TOKEN_TTL_SECONDS) } }, signal);
    if (tok.status !== 200) return httpFailure('aws', `token PUT ${AWS_TOKEN_PATH}`, tok);
    const token = tok.body?.trim() ?? '';
    if (!token || token.length > 1024 || /[\r\n]/.test(token)) return discoverFailure('aws', 'BAD_ANSWER', 'IMDSv2 token answer is empty or malformed');
    const ipUrl = track(joinUrl(base, AWS_PUBLIC_IPV4_PATH));
    const ip = await httpCall(fetchImpl, ipUrl, { method: 'GET', headers: { [AWS_TOKEN_HEADER]: token } }, signal);
    if (ip.status === 404) return httpFailure('aws', `GET ${AWS_PUBLIC_IPV4_PATH}`, ip, ' (no public IPv4 address on this instance?)');
    if (ip.status !== 200) return httpFailure('aws', `GET ${AWS_PUBLIC_IPV4_PATH}`, ip);
    if (ip.body === undefined) return discoverFailure('aws', 'BAD_ANSWER', 'answer too long');
    return checkDiscoveredAddress(ip.body, 'aws');
  });
}

/**
 * GCP: the external (NAT) IP of the first access config of the first network interface. The
 * answer must carry `Metadata-Flavor: Google`, as Google recommends, so a non-GCP server that
 * happens to answer is not believed.
 */
export async function discoverGcp(opts: MetadataDiscoverOptions = {}): Promise<DiscoverResult> {
  return withDeadline('gcp', opts, DEFAULT_GCP_METADATA_URL, async ({ base, fetchImpl, signal, track }) => {
    const url = track(joinUrl(base, GCP_EXTERNAL_IP_PATH));
    const a = await httpCall(fetchImpl, url, { method: 'GET', headers: { 'Metadata-Flavor': 'Google' } }, signal);
    if (a.status === 404) return httpFailure('gcp', `GET ${GCP_EXTERNAL_IP_PATH}`, a, ' (no external IP on nic0?)');
    if (a.status !== 200) return httpFailure('gcp', `GET ${GCP_EXTERNAL_IP_PATH}`, a);
    if (a.headers.get('metadata-flavor') !== 'Google') return discoverFailure('gcp', 'BAD_ANSWER', 'answer lacks "Metadata-Flavor: Google": not a GCP metadata server');
    if (a.body === undefined) return discoverFailure('gcp', 'BAD_ANSWER', 'answer too long');
    return checkDiscoveredAddress(a.body, 'gcp');
  });
}

/**
 * Azure IMDS: the public IP of the first IP configuration of the first interface, as text.
 * Azure answers 200 with an empty body when no public IP is associated (→ `BAD_ANSWER`).
 */
export async function discoverAzure(opts: MetadataDiscoverOptions = {}): Promise<DiscoverResult> {
  return withDeadline('azure', opts, DEFAULT_AZURE_METADATA_URL, async ({ base, fetchImpl, signal, track }) => {
    const path = `${AZURE_PUBLIC_IP_PATH}?api-version=${AZURE_API_VERSION}&format=text`;
    const url = track(joinUrl(base, path));
    const a = await httpCall(fetchImpl, url, { method: 'GET', headers: { Metadata: 'true' } }, signal);
    if (a.status !== 200) return httpFailure('azure', `GET ${AZURE_PUBLIC_IP_PATH}`, a);
    if (a.body === undefined) return discoverFailure('azure', 'BAD_ANSWER', 'answer too long');
    return checkDiscoveredAddress(a.body, 'azure');
  });
}
