/**
 * Cloud instance-metadata emulator for tests and the NAT lab: one HTTP server answering the AWS
 * IMDSv2, GCP and Azure IMDS paths sipedge uses for public-address discovery, with a public IP
 * that can change at runtime. It enforces what the real services enforce, so a client that
 * forgets a header fails here too:
 *
 * - AWS: `PUT /latest/api/token` needs `X-aws-ec2-metadata-token-ttl-seconds` (1..21600, else
 *   400) and answers a token; `GET /latest/meta-data/public-ipv4` without a valid, unexpired
 *   `X-aws-ec2-metadata-token` → 401. `GET` of the token path → 405. Requests carrying
 *   `X-Forwarded-For` → 403 (as AWS does).
 * - GCP: `GET /computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip`
 *   without `Metadata-Flavor: Google` → 403; answers carry `Metadata-Flavor: Google`.
 * - Azure: `GET /metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress` without
 *   `Metadata: true`, or without `api-version`, → 400; `format=text` → the IP as text, else JSON.
 *
 * With no IP set, AWS and GCP answer 404 and Azure 200 with an empty body, like the real ones
 * for an instance without a public address. Each cloud can be made to misbehave
 * ({@link CloudBehavior}): `error` (500), `hang` (never answers), `garbage`, `down` (404 for all
 * its paths).
 *
 * Control, for tests in other processes (the lab):
 * - `PUT|POST /_imds/ip` with the IP as the body (text, or JSON `{"ip": "…"}`; empty = none);
 * - `PUT|POST /_imds/behavior` with JSON `{"aws": "hang", "gcp": "ok"}`;
 * - `GET /_imds/state` → JSON `{ ip, behavior, requests }`;
 * - `SIGUSR2` re-reads `--ip-file` (standalone mode).
 *
 * Standalone:
 *   node --import tsx test/helpers/imds.ts --listen 169.254.169.254:80 --ip 203.0.113.10 \
 *        [--ip-file /tmp/ip] [--behavior aws=hang,gcp=error]
 * prints `imds listening on http://HOST:PORT` once ready; SIGTERM/SIGINT stop it.
 */
import http from 'node:http';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import type { AddressInfo } from 'node:net';

export type Cloud = 'aws' | 'gcp' | 'azure';

/** How one cloud's paths behave. */
export type CloudBehavior = 'ok' | 'error' | 'hang' | 'garbage' | 'down';

export const IMDS_PATHS = {
  awsToken: '/latest/api/token',
  awsPublicIpv4: '/latest/meta-data/public-ipv4',
  gcpExternalIp: '/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip',
  azurePublicIp: '/metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress',
  controlIp: '/_imds/ip',
  controlBehavior: '/_imds/behavior',
  controlState: '/_imds/state',
} as const;

const BEHAVIORS: CloudBehavior[] = ['ok', 'error', 'hang', 'garbage', 'down'];

/** One request seen by the emulator. */
export interface ImdsRequest {
  method: string;
  /** Path without query. */
  path: string;
  query: string;
  headers: http.IncomingHttpHeaders;
  status?: number;
}

export interface ImdsOptions {
  /** Public IP to report; undefined = none. */
  ip?: string;
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** Listen port; default 0 (ephemeral). */
  port?: number;
  /** Initial behaviour per cloud; default `ok` for all. */
  behavior?: Partial<Record<Cloud, CloudBehavior>>;
}

/** The emulator. Start with {@link startImds}. */
export class ImdsEmulator {
  /** Requests per path (without query), control paths included. */
  readonly counts = new Map<string, number>();
  /** Every request, in order. */
  readonly requests: ImdsRequest[] = [];
  private ipValue?: string;
  private readonly behavior: Record<Cloud, CloudBehavior> = { aws: 'ok', gcp: 'ok', azure: 'ok' };
  /** token → expiry (ms since epoch). */
  private readonly tokens = new Map<string, number>();

  constructor(
    readonly server: http.Server,
    opts: ImdsOptions,
  ) {
    this.ipValue = opts.ip;
    Object.assign(this.behavior, opts.behavior ?? {});
    server.on('request', (req, res) => this.handle(req, res));
  }

  /** `http://host:port` (IPv6 in brackets). */
  get url(): string {
    const a = this.server.address() as AddressInfo;
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get ip(): string | undefined {
    return this.ipValue;
  }

  /** Changes the reported public IP (undefined = none). */
  setIp(ip: string | undefined): void {
    this.ipValue = ip && ip.trim() ? ip.trim() : undefined;
  }

  setBehavior(cloud: Cloud, behavior: CloudBehavior): void {
    this.behavior[cloud] = behavior;
  }

  getBehavior(cloud: Cloud): CloudBehavior {
    return this.behavior[cloud];
  }

  /** Requests seen for `path` (without query). */
  count(path: string): number {
    return this.counts.get(path) ?? 0;
  }

  /** Forgets counts and the request log (not the tokens). */
  resetCounts(): void {
    this.counts.clear();
    this.requests.length = 0;
  }

  /** Stops listening and drops every connection, hanging ones included. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://imds');
    const path = url.pathname;
    const entry: ImdsRequest = { method: req.method ?? '', path, query: url.search, headers: req.headers };
    this.requests.push(entry);
    this.counts.set(path, (this.counts.get(path) ?? 0) + 1);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      if (chunks.reduce((n, b) => n + b.length, 0) < 65536) chunks.push(c);
    });
    req.on('end', () => {
      const send = (status: number, body: string, headers: Record<string, string> = {}) => {
        entry.status = status;
        res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body), ...headers });
        res.end(body);
      };
      this.route(req, url, Buffer.concat(chunks).toString('utf8'), send);
    });
  }

  private route(
    req: http.IncomingMessage,
    url: URL,
    body: string,
    send: (status: number, body: string, headers?: Record<string, string>) => void,
  ): void {
    const method = req.method ?? 'GET';
    const path = url.pathname;
    const h = req.headers;

    // Control paths.
    if (path === IMDS_PATHS.controlIp && (method === 'PUT' || method === 'POST')) {
      let ip = body.trim();
      if (ip.startsWith('{')) {
        try {
          ip = String((JSON.parse(ip) as { ip?: unknown }).ip ?? '');
        } catch {
          return send(400, 'bad JSON\n');
        }
      }
      this.setIp(ip || undefined);
      return send(200, `${this.ipValue ?? ''}\n`);
    }
    if (path === IMDS_PATHS.controlBehavior && (method === 'PUT' || method === 'POST')) {
      try {
        const b = JSON.parse(body) as Record<string, unknown>;
        for (const [k, v] of Object.entries(b)) {
          if (!(k === 'aws' || k === 'gcp' || k === 'azure') || !BEHAVIORS.includes(v as CloudBehavior)) return send(400, `bad behavior ${k}=${String(v)}\n`);
          this.behavior[k] = v as CloudBehavior;
        }
      } catch {
        return send(400, 'bad JSON\n');
      }
      return send(200, `${JSON.stringify(this.behavior)}\n`, { 'Content-Type': 'application/json' });
    }
    if (path === IMDS_PATHS.controlState && method === 'GET') {
      const state = { ip: this.ipValue ?? null, behavior: this.behavior, requests: Object.fromEntries(this.counts) };
      return send(200, `${JSON.stringify(state)}\n`, { 'Content-Type': 'application/json' });
    }

    const cloud: Cloud | undefined = path.startsWith('/latest/')
      ? 'aws'
      : path.startsWith('/computeMetadata/')
        ? 'gcp'
        : path.startsWith('/metadata/')
          ? 'azure'
          : undefined;
    if (!cloud) return send(404, 'Not Found\n');
    const behavior = this.behavior[cloud];
    if (behavior === 'hang') return; // never answer; close() drops the connection
    if (behavior === 'down') return send(404, 'Not Found\n');
    if (behavior === 'error') return send(500, 'Internal Server Error\n', cloud === 'gcp' ? { 'Metadata-Flavor': 'Google' } : {});

    if (cloud === 'aws') {
      if (h['x-forwarded-for'] !== undefined) return send(403, 'Forbidden\n');
      if (path === IMDS_PATHS.awsToken) {
        if (method !== 'PUT') return send(405, 'Method Not Allowed\n', { Allow: 'PUT' });
        const ttlText = h['x-aws-ec2-metadata-token-ttl-seconds'];
        const ttl = typeof ttlText === 'string' && /^\d+$/.test(ttlText) ? Number(ttlText) : NaN;
        if (!(ttl >= 1 && ttl <= 21600)) return send(400, 'Bad Request\n');
        const token = randomBytes(24).toString('base64url');
        this.tokens.set(token, Date.now() + ttl * 1000);
        return send(200, token, { 'X-Aws-Ec2-Metadata-Token-Ttl-Seconds': String(ttl) });
      }
      if (path === IMDS_PATHS.awsPublicIpv4) {
        if (method !== 'GET') return send(405, 'Method Not Allowed\n');
        const token = h['x-aws-ec2-metadata-token'];
        const exp = typeof token === 'string' ? this.tokens.get(token) : undefined;
        if (exp === undefined || exp < Date.now()) return send(401, 'Unauthorized\n');
        if (!this.ipValue) return send(404, 'Not Found\n');
        return send(200, behavior === 'garbage' ? 'not-an-ip' : this.ipValue);
      }
      return send(404, 'Not Found\n');
    }

    if (cloud === 'gcp') {
      const flavor = { 'Metadata-Flavor': 'Google' };
      if (h['x-forwarded-for'] !== undefined) return send(403, 'Forbidden\n', flavor);
      if (h['metadata-flavor'] !== 'Google') {
        return send(403, 'Your client does not have permission to get URL from this server. Missing Metadata-Flavor:Google header.\n', flavor);
      }
      if (path !== IMDS_PATHS.gcpExternalIp || method !== 'GET') return send(404, 'Not Found\n', flavor);
      if (!this.ipValue) return send(404, 'Not Found\n', flavor);
      return send(200, behavior === 'garbage' ? '<html>hello</html>' : this.ipValue, flavor);
    }

    // Azure.
    if (h['x-forwarded-for'] !== undefined) return send(400, '{"error":"Bad request. X-Forwarded-For header is not allowed"}', { 'Content-Type': 'application/json' });
    if (h['metadata'] !== 'true') {
      return send(400, '{"error":"Bad request. Required metadata header not specified"}', { 'Content-Type': 'application/json' });
    }
    if (!url.searchParams.get('api-version')) {
      return send(400, '{"error":"Bad request. api-version was not specified in the request"}', { 'Content-Type': 'application/json' });
    }
    if (path !== IMDS_PATHS.azurePublicIp || method !== 'GET') return send(404, '{"error":"Not found"}', { 'Content-Type': 'application/json' });
    const value = behavior === 'garbage' ? '999.1.2.3' : (this.ipValue ?? '');
    if (url.searchParams.get('format') === 'text') return send(200, value);
    return send(200, JSON.stringify(value), { 'Content-Type': 'application/json' });
  }
}

/** Starts an emulator (default 127.0.0.1, port 0). */
export async function startImds(opts: ImdsOptions = {}): Promise<ImdsEmulator> {
  const server = http.createServer();
  const emu = new ImdsEmulator(server, opts);
  server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1');
  await once(server, 'listening');
  return emu;
}

/**
 * An HTTP server on 127.0.0.1:0 that accepts connections and requests and never answers
 * (for timeout tests). `close()` drops the held connections.
 */
export async function startSilentHttp(): Promise<{ url: string; requests: number; close: () => Promise<void> }> {
  const state = { requests: 0 };
  const server = http.createServer(() => {
    state.requests++;
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get requests() {
      return state.requests;
    },
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

function parseListen(s: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  if (!m) throw new Error(`--listen wants HOST:PORT, got ${s}`);
  return { host: m[1], port: Number(m[2]) };
}

/** Standalone entry point (see the file comment). */
async function main(argv: string[]): Promise<void> {
  let listen = { host: '127.0.0.1', port: 0 };
  let ip: string | undefined;
  let ipFile: string | undefined;
  const behavior: Partial<Record<Cloud, CloudBehavior>> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--listen') listen = parseListen(next());
    else if (a === '--ip') ip = next();
    else if (a === '--ip-file') ipFile = next();
    else if (a === '--behavior') {
      for (const kv of next().split(',')) {
        const [k, v] = kv.split('=');
        if (!(k === 'aws' || k === 'gcp' || k === 'azure') || !BEHAVIORS.includes(v as CloudBehavior)) throw new Error(`bad --behavior ${kv}`);
        behavior[k] = v as CloudBehavior;
      }
    } else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: imds.ts --listen HOST:PORT [--ip IP] [--ip-file FILE] [--behavior aws=ok|error|hang|garbage|down,...]\n');
      return;
    } else throw new Error(`unknown argument ${a}`);
  }
  const readIpFile = (): string | undefined => {
    if (!ipFile) return undefined;
    try {
      return readFileSync(ipFile, 'utf8').trim() || undefined;
    } catch (err) {
      process.stderr.write(`imds: cannot read ${ipFile}: ${(err as Error).message}\n`);
      return undefined;
    }
  };
  if (ip === undefined) ip = readIpFile();
  const emu = await startImds({ ...listen, ip, behavior });
  process.on('SIGUSR2', () => {
    if (!ipFile) {
      process.stderr.write('imds: SIGUSR2 ignored: no --ip-file\n');
      return;
    }
    emu.setIp(readIpFile());
    process.stdout.write(`imds ip ${emu.ip ?? '(none)'}\n`);
  });
  const stop = () => {
    void emu.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdout.write(`imds listening on ${emu.url} ip ${emu.ip ?? '(none)'}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`imds: ${(err as Error).message}\n`);
    process.exit(2);
  });
}
