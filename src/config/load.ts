/**
 * Reading `sipedge.yaml`: YAML → plain data → {@link sipedgeConfigSchema} → {@link SipedgeConfig},
 * with every problem reported as `{ path, message }` where `path` is the dotted key path
 * (`media.ports`, `users.1.password`, `listen.0`) and, when known, the line and column in the file.
 *
 * Rules beyond the schema:
 * - An empty file, or a file with only comments, is valid (every key has a default).
 * - A key written with no value (`nat:` with all its children commented out) means "the default".
 * - Relative paths inside values (e.g. `store: sqlite:./var/sipedge.db`) are NOT rewritten here:
 *   they are relative to the process's working directory, like most daemons.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { LineCounter, parseDocument, isMap, isPair, isScalar, type Document } from 'yaml';
import type { z } from 'zod';
import { knownKeysAt, sipedgeConfigSchema } from './schema.js';
import type { SipedgeConfig } from './types.js';
import { configWarnings } from './warnings.js';

/** One problem in a config file. */
export interface ConfigError {
  /** Dotted key path (`media.ports`, `users.1.password`); `''` for the file as a whole (YAML syntax, missing file). */
  path: string;
  /** What is wrong, in plain words. */
  message: string;
  /** 1-based line in the file, when known. */
  line?: number;
  /** 1-based column in the file, when known. */
  column?: number;
}

/** Result of loading a config. `warnings` are valid-but-suspicious settings, in plain words. */
export type ConfigResult = { ok: true; config: SipedgeConfig; warnings: string[] } | { ok: false; errors: ConfigError[] };

/**
 * Reads and validates a config file.
 * @param path file path, absolute or relative to the process's working directory.
 */
export async function loadConfig(path: string): Promise<ConfigResult> {
  const abs = resolve(path);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const message =
      code === 'ENOENT'
        ? `config file not found: ${abs}`
        : code === 'EISDIR'
          ? `config path is a directory, not a file: ${abs}`
          : code === 'EACCES'
            ? `config file not readable (permission denied): ${abs}`
            : `cannot read config file ${abs}: ${(err as Error).message}`;
    return { ok: false, errors: [{ path: '', message }] };
  }
  return parseConfigText(text, abs);
}

/**
 * Validates config text (YAML).
 * @param text the YAML source.
 * @param _source file name the text came from (informational; messages carry line/column instead).
 */
export function parseConfigText(text: string, _source?: string): ConfigResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      errors: doc.errors.map((e) => {
        const { line, col } = lineCounter.linePos(e.pos[0]);
        return { path: '', message: `YAML syntax error at line ${line}, column ${col}: ${yamlMessage(e.code, e.message)}`, line, column: col };
      }),
    };
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    return { ok: false, errors: [{ path: '', message: `YAML error: ${(err as Error).message}` }] };
  }
  if (data === null || data === undefined) data = {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    return { ok: false, errors: [{ path: '', message: `the config must be a mapping of keys (listen:, media:, …), got ${describeValue(data)}`, line: 1, column: 1 }] };
  }
  const result = sipedgeConfigSchema.safeParse(dropNulls(data), { reportInput: true });
  if (!result.success) {
    const errors = result.error.issues.flatMap((issue) => issueToErrors(issue, doc, lineCounter));
    errors.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || (a.column ?? 0) - (b.column ?? 0));
    return { ok: false, errors };
  }
  return { ok: true, config: result.data, warnings: configWarnings(result.data) };
}

/**
 * Formats an error for a terminal: `media.ports: … (line 12, column 10)`. File-level errors
 * (`path` empty: YAML syntax, unreadable file) are the message alone, prefixed by `source: ` if given.
 */
export function formatConfigError(e: ConfigError, source?: string): string {
  if (e.path === '') return source ? `${source}: ${e.message}` : e.message;
  const pos = e.line !== undefined ? ` (line ${e.line}, column ${e.column ?? 1})` : '';
  return `${e.path}: ${e.message}${pos}`;
}

function yamlMessage(code: string, message: string): string {
  if (code === 'DUPLICATE_KEY') return 'duplicate key (each key may appear only once in a mapping)';
  if (code === 'TAB_AS_INDENT') return 'tabs are not allowed for indentation; use spaces';
  return message;
}

/** Removes keys whose value is null (a key written with no value means "use the default"). */
function dropNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(dropNulls);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== null && x !== undefined) out[k] = dropNulls(x);
    return out;
  }
  return v;
}

type Issue = z.core.$ZodIssue & { input?: unknown };

function issueToErrors(issue: Issue, doc: Document, lc: LineCounter): ConfigError[] {
  const path = issue.path as Array<string | number>;
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeysAt(path);
    return issue.keys.map((key) => {
      const hint = suggest(key, known);
      const allowed = known.length > 0 ? `; allowed here: ${known.join(', ')}` : '';
      return {
        path: joinPath([...path, key]),
        message: hint ? `unknown key "${key}" — did you mean "${hint}"?` : `unknown key "${key}"${allowed}`,
        ...position(doc, lc, path, key),
      };
    });
  }
  return [{ path: joinPath(path), message: describeIssue(issue), ...position(doc, lc, path) }];
}

function joinPath(path: ReadonlyArray<PropertyKey>): string {
  return path.map(String).join('.');
}

/** Line/column of the value at `path`, or of the key `key` inside the mapping at `path`. */
function position(doc: Document, lc: LineCounter, path: Array<string | number>, key?: string): { line?: number; column?: number } {
  let node: unknown;
  if (key !== undefined) {
    const parent = path.length === 0 ? doc.contents : doc.getIn(path, true);
    if (isMap(parent)) {
      const pair = parent.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === key);
      node = pair?.key;
    }
  } else {
    // Walk up until a node exists (a defaulted key has no node; report its parent).
    for (let n = path.length; n >= 0 && !node; n--) node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
  }
  const range = (node as { range?: [number, number, number] } | undefined)?.range;
  if (!range) return {};
  const { line, col } = lc.linePos(range[0]);
  return { line, column: col };
}

function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'an empty value';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `"${v}"`;
  return `${typeof v} ${String(v)}`;
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping of keys',
};

function describeIssue(issue: Issue): string {
  switch (issue.code) {
    case 'invalid_type': {
      if (issue.input === undefined) return 'is required';
      const expected = TYPE_NAMES[issue.expected] ?? issue.expected;
      const base = `expected ${expected}, got ${describeValue(issue.input)}`;
      if (issue.expected === 'string' && (typeof issue.input === 'number' || typeof issue.input === 'boolean')) {
        return `${base}; quote it in YAML: "${String(issue.input)}"`;
      }
      if (issue.expected === 'number' && typeof issue.input === 'number' && !Number.isFinite(issue.input)) return 'expected a finite number';
      return base;
    }
    case 'invalid_value':
      return `must be one of ${issue.values.map(String).join(', ')}; got ${describeValue(issue.input)}`;
    case 'too_small': {
      const n = Number(issue.minimum);
      if (issue.origin === 'string' && n === 1) return 'must not be empty';
      if (issue.origin === 'array') return `must list at least ${n} ${n === 1 ? 'entry' : 'entries'}`;
      return `must be ${issue.inclusive ? 'at least' : 'greater than'} ${n}; got ${describeValue(issue.input)}`;
    }
    case 'too_big': {
      const n = Number(issue.maximum);
      if (issue.origin === 'array') return `must list at most ${n} entries`;
      if (issue.origin === 'string') return `must be at most ${n} characters`;
      return `must be ${issue.inclusive ? 'at most' : 'less than'} ${n}; got ${describeValue(issue.input)}`;
    }
    case 'not_multiple_of':
      return `must be a multiple of ${String(issue.divisor)}`;
    case 'invalid_format':
      return issue.format === 'url' ? `${describeValue(issue.input)} is not a valid URL` : `${describeValue(issue.input)} is not a valid ${issue.format}`;
    default:
      return issue.message.replace(/^Invalid input: /, '');
  }
}

/** Closest known key by edit distance (≤ 2, or ≤ 3 for long keys), for "did you mean". */
function suggest(key: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  const limit = key.length > 8 ? 3 : 2;
  return bestD <= limit ? best : undefined;
}

/** Damerau–Levenshtein (optimal string alignment) distance, so `medai` → `media` is 1. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}
