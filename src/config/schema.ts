/**
 * The zod schema of `sipedge.yaml` (DESIGN.md, "The user-facing contract").
 *
 * - Every key has a default, so an empty file is valid.
 * - Every object is strict: an unknown key (a typo such as `medai`) is an error, never ignored.
 * - Values are checked where they are written, so each error carries its dotted key path
 *   (`media.ports`, `users.1.password`, `listen.0`).
 *
 * The output type is {@link SipedgeConfig} (see `types.ts` for every field's meaning and unit).
 * Use {@link parseConfigText} / {@link loadConfig} in `load.ts` rather than this schema directly:
 * they add YAML handling, readable messages and warnings.
 */
import os from 'node:os';
import { z } from 'zod';
import { parseListen } from '../transport/listen.js';
import type { ListenSpec } from '../transport/types.js';
import type { SipedgeConfig } from './types.js';
import {
  isHostname,
  isIpAddress,
  parseCidr,
  parseHostPort,
  parseMediaEngine,
  parsePortRange,
  parseStoreSpec,
  type ParseResult,
} from './values.js';

/** Default `api.listen`. */
export const DEFAULT_API_LISTEN = '127.0.0.1:8088';

/** Default `listen` sockets: UDP and TCP on every address, port 5060. */
export const DEFAULT_LISTEN: readonly string[] = ['udp:0.0.0.0:5060', 'tcp:0.0.0.0:5060'];

/** A string checked by a {@link ParseResult} parser; the output stays the input string. */
function checkedString(parse: (s: string) => ParseResult<unknown>) {
  return z.string().check((ctx) => {
    const r = parse(ctx.value);
    if (!r.ok) ctx.issues.push({ code: 'custom', message: r.reason, input: ctx.value });
  });
}

/** A string turned into a parsed value by a {@link ParseResult} parser. */
function parsedString<T>(parse: (s: string) => ParseResult<T>) {
  return z.string().transform((s, ctx): T => {
    const r = parse(s);
    if (!r.ok) {
      ctx.addIssue({ code: 'custom', message: r.reason, input: s });
      return z.NEVER;
    }
    return r.value;
  });
}

const ipString = checkedString((s) => (isIpAddress(s) ? { ok: true, value: s } : { ok: false, reason: `"${s}" is not an IPv4 or IPv6 address` }));

const hostString = checkedString((s) =>
  isHostname(s)
    ? { ok: true, value: s }
    : { ok: false, reason: isIpAddress(s) ? `"${s}" is an IP address; use publicAddress.ip for a fixed address` : `"${s}" is not a valid host name` },
);

/** `host` or `host:port` where host is an IP (IPv6 in brackets with a port) or a DNS name. */
function parseHostMaybePort(s: string): ParseResult<string> {
  if (isIpAddress(s) || isHostname(s)) return { ok: true, value: s };
  const hp = parseHostPort(s);
  return hp.ok ? { ok: true, value: s } : { ok: false, reason: `expected host or host:port, got "${s}"` };
}

/** Non-negative integer count of seconds. */
const seconds = (min = 0) => z.number().int().min(min);

/** A string that must be written as a string (usernames like 1001 must be quoted in YAML). */
const nonEmptyString = z.string().min(1);

const listenEntry = z.string().check((ctx) => {
  const r = parseListen(ctx.value);
  if (!r.ok) ctx.issues.push({ code: 'custom', message: r.reason, input: ctx.value });
});

const publicAddressSchema = z
  .strictObject({
    ip: ipString.optional(),
    host: hostString.optional(),
    discover: z
      .array(z.enum(['aws', 'gcp', 'azure', 'stun']))
      .min(1)
      .check((ctx) => {
        const seen = new Set<string>();
        ctx.value.forEach((m, i) => {
          if (seen.has(m)) ctx.issues.push({ code: 'custom', message: `"${m}" is listed twice`, path: [i], input: m });
          seen.add(m);
        });
      })
      .optional(),
    refresh: seconds().default(600),
    stunServers: z.array(checkedString(parseHostMaybePort)).min(1).optional(),
    metadata: z
      .strictObject({
        aws: z.url().optional(),
        gcp: z.url().optional(),
        azure: z.url().optional(),
      })
      .optional(),
  })
  .check((ctx) => {
    const set = (['ip', 'host', 'discover'] as const).filter((k) => ctx.value[k] !== undefined);
    if (set.length > 1) {
      ctx.issues.push({
        code: 'custom',
        message: `ip, host and discover are alternatives; set only one (found ${set.join(' and ')})`,
        input: ctx.value,
      });
    }
  });

const keepaliveSchema = z.strictObject({
  method: z.enum(['options', 'crlf', 'stun']).default('options'),
  interval: seconds().default(30),
  all: z.boolean().default(false),
  maxMissed: z.number().int().min(1).default(3),
  removeDead: z.boolean().default(false),
});

const natSchema = z.strictObject({
  clients: z.enum(['auto', 'force', 'off']).default('auto'),
  rewriteContact: z.boolean().default(false),
  maxExpires: seconds(1).optional(),
  keepalive: keepaliveSchema.prefault({}),
});

const mediaSchema = z.strictObject({
  relay: z.enum(['always', 'nat', 'never']).default('always'),
  ports: parsedString(parsePortRange).prefault('10000-10999'),
  address: ipString.optional(),
  advertise: ipString.optional(),
  timeout: seconds(1).default(60),
  strictSource: z.boolean().default(true),
  engine: parsedString(parseMediaEngine).prefault('internal'),
  /** Relay threads (worker_threads); `auto` = os.availableParallelism(). Absent = 1 (the relay on the main event loop). */
  workers: z
    .union([z.number().int().min(1).max(64), z.literal('auto')], { error: 'expected an integer from 1 to 64, or "auto"' })
    .transform((w) => (w === 'auto' ? os.availableParallelism() : w))
    .optional(),
});

const registrarSchema = z
  .strictObject({
    domains: z
      .array(
        z
          .string()
          .check((ctx) => {
            if (!isHostname(ctx.value) && !isIpAddress(ctx.value)) {
              ctx.issues.push({ code: 'custom', message: `"${ctx.value}" is not a domain name or IP address`, input: ctx.value });
            }
          })
          .transform((s) => s.toLowerCase().replace(/\.$/, '')),
      )
      .default(() => []),
    realm: nonEmptyString.optional(),
    expires: z
      .strictObject({
        min: seconds(1).default(60),
        max: seconds(1).default(3600),
        default: seconds(1).default(600),
      })
      .check((ctx) => {
        const { min, max, default: def } = ctx.value;
        if (min > max) {
          ctx.issues.push({ code: 'custom', message: `min (${min}) must not exceed max (${max})`, path: ['min'], input: min });
        } else if (def < min || def > max) {
          ctx.issues.push({ code: 'custom', message: `default (${def}) must be between min (${min}) and max (${max})`, path: ['default'], input: def });
        }
      })
      .prefault({}),
    maxContacts: z.number().int().min(1).default(5),
  })
  .transform((r) => ({ domains: r.domains, realm: r.realm ?? r.domains[0] ?? 'sipedge', expires: r.expires, maxContacts: r.maxContacts }));

const authSchema = z.strictObject({
  algorithms: z
    .array(z.enum(['MD5', 'SHA-256']))
    .min(1)
    .check((ctx) => {
      if (new Set(ctx.value).size !== ctx.value.length) ctx.issues.push({ code: 'custom', message: 'an algorithm is listed twice', input: ctx.value });
    })
    .default((): Array<'MD5' | 'SHA-256'> => ['MD5', 'SHA-256']),
  nonceTtl: seconds(1).default(300),
});

const userSchema = z.strictObject({
  username: nonEmptyString.check((ctx) => {
    if (/[\s@:;<>"]/.test(ctx.value)) {
      ctx.issues.push({ code: 'custom', message: `"${ctx.value}" is not a valid SIP user name (no spaces, @ : ; < > ")`, input: ctx.value });
    }
  }),
  password: nonEmptyString,
});

const usersSchema = z
  .array(userSchema)
  .check((ctx) => {
    const first = new Map<string, number>();
    ctx.value.forEach((u, i) => {
      const prev = first.get(u.username);
      if (prev !== undefined) {
        ctx.issues.push({ code: 'custom', message: `duplicate username "${u.username}" (already used by users.${prev})`, path: [i, 'username'], input: u.username });
      } else {
        first.set(u.username, i);
      }
    });
  })
  .default(() => []);

const sipSchema = z.strictObject({
  maxMessageSize: z.number().int().min(1500).max(16 * 1024 * 1024).default(65535),
  maxHeaders: z.number().int().min(16).default(256),
  timers: z
    .strictObject({
      t1: z.number().int().min(1).default(500),
      t2: z.number().int().min(1).default(4000),
      t4: z.number().int().min(1).default(5000),
    })
    .check((ctx) => {
      if (ctx.value.t2 < ctx.value.t1) {
        ctx.issues.push({ code: 'custom', message: `t2 (${ctx.value.t2} ms) must not be below t1 (${ctx.value.t1} ms)`, path: ['t2'], input: ctx.value.t2 });
      }
    })
    .prefault({}),
});

const apiSchema = z.strictObject({
  listen: checkedString(parseHostPort).default(DEFAULT_API_LISTEN),
  enabled: z.boolean().default(true),
});

/** `hooks:` — a module path, or `{ module, options }`; normalised to the object form. */
const hooksSchema = z
  .union([z.string().min(1), z.strictObject({ module: z.string().min(1), options: z.record(z.string(), z.unknown()).default(() => ({})) })])
  .transform((h) => (typeof h === 'string' ? { module: h, options: {} } : h));

/** Raw object schema (before the derived fields are added). */
const rawConfigSchema = z.strictObject({
  listen: z
    .array(listenEntry)
    .check((ctx) => {
      const seen = new Map<string, number>();
      ctx.value.forEach((s, i) => {
        const r = parseListen(s);
        if (!r.ok) return;
        const prev = seen.get(r.value.id);
        if (prev !== undefined) ctx.issues.push({ code: 'custom', message: `socket ${r.value.id} is already listed at listen.${prev}`, path: [i], input: s });
        else seen.set(r.value.id, i);
      });
    })
    .default(() => [...DEFAULT_LISTEN]),
  publicAddress: publicAddressSchema.prefault({}),
  aliases: z.array(checkedString(parseHostMaybePort)).default(() => []),
  localnet: z.array(checkedString(parseCidr)).default(() => []),
  nat: natSchema.prefault({}),
  media: mediaSchema.prefault({}),
  registrar: registrarSchema.prefault({}),
  auth: authSchema.prefault({}),
  users: usersSchema,
  proxy: z.strictObject({ recordRoute: z.boolean().default(true) }).prefault({}),
  sip: sipSchema.prefault({}),
  store: checkedString(parseStoreSpec).default('sqlite:./var/sipedge.db'),
  api: apiSchema.prefault({}),
  log: z
    .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
    .prefault({}),
  hooks: hooksSchema.optional(),
  /** Load shedding (RFC 3261 §21.5.4): 503 + Retry-After while the event loop lags; maxLoopDelay 0 disables. */
  overload: z
    .strictObject({
      maxLoopDelay: z.number().int().min(0).default(200),
      retryAfter: seconds(1).default(5),
    })
    .prefault({}),
  /** SIP worker processes (node:cluster): a count, or `auto` = one per core. See `src/cluster/`. */
  workers: z.union([z.number().int().min(1).max(64), z.literal('auto')]).default(1),
});

/**
 * Schema of the whole `sipedge.yaml`. Input: the YAML document as plain JS (use `{}` for an
 * empty file). Output: {@link SipedgeConfig} with defaults applied and `sockets` derived
 * from `listen`.
 */
export const sipedgeConfigSchema = rawConfigSchema.transform((c, ctx): SipedgeConfig => {
  const sockets: ListenSpec[] = [];
  for (const s of c.listen) {
    const r = parseListen(s);
    if (r.ok) sockets.push(r.value);
  }
  const { listen, workers: w, ...rest } = c;
  const workers = w === 'auto' ? os.availableParallelism() : w;
  if (workers > 1) for (const issue of clusterIssues(c.store, sockets, listen, w)) ctx.addIssue(issue);
  return { listen, sockets, ...rest, workers };
});

/**
 * What `workers` > 1 (several SIP processes, src/cluster) requires: a store every process sees
 * (`sqlite:FILE` or `redis://`), and UDP listeners only (a TCP connection belongs to one process).
 */
function clusterIssues(store: string, sockets: ListenSpec[], listen: string[], w: number | 'auto') {
  const issues: Array<{ code: 'custom'; message: string; path: Array<string | number>; input: unknown }> = [];
  const spec = parseStoreSpec(store);
  if (spec.ok && (spec.value.kind === 'memory' || (spec.value.kind === 'sqlite' && (spec.value.path === ':memory:' || spec.value.path === '//:memory:')))) {
    issues.push({
      code: 'custom',
      message: `${w === 'auto' ? 'auto (several)' : w} workers need a store shared by the worker processes (sqlite:FILE or redis://…); "${store}" keeps bindings inside one process`,
      path: ['workers'],
      input: w,
    });
  }
  sockets.forEach((s, i) => {
    if (s.transport !== 'udp') {
      issues.push({
        code: 'custom',
        message: `with workers: ${w} only UDP listeners are supported (a ${s.transport.toUpperCase()} connection belongs to one process); remove "${listen[i]}" or set workers: 1`,
        path: ['listen', i],
        input: listen[i],
      });
    }
  });
  return issues;
}

/** The config with every default applied (what an empty `sipedge.yaml` means). */
export function defaultConfig(): SipedgeConfig {
  return sipedgeConfigSchema.parse({});
}

/**
 * The keys allowed at a dotted key path of the config (`''` = top level, `media`, `users.0`),
 * read from the schema itself; used to suggest the intended key for a typo. Empty if the path
 * does not name an object.
 */
export function knownKeysAt(path: ReadonlyArray<string | number>): string[] {
  let node: unknown = sipedgeConfigSchema;
  const unwrap = (n: unknown): { type: string; [k: string]: unknown } | undefined => {
    for (let i = 0; i < 20 && n; i++) {
      const def = (n as { _zod?: { def?: { type: string; [k: string]: unknown } } })._zod?.def;
      if (!def) return undefined;
      if (def.type === 'pipe') n = def.in;
      else if (['optional', 'default', 'prefault', 'nullable', 'readonly', 'catch'].includes(def.type)) n = def.innerType;
      else return def;
    }
    return undefined;
  };
  for (const seg of path) {
    const def = unwrap(node);
    if (!def) return [];
    if (def.type === 'object' && typeof seg === 'string') node = (def.shape as Record<string, unknown>)[seg];
    else if (def.type === 'array') node = def.element;
    else return [];
  }
  const def = unwrap(node);
  return def?.type === 'object' ? Object.keys(def.shape as Record<string, unknown>) : [];
}

export type { SipedgeConfig } from './types.js';
