/**
 * `sipedge show settings|peers|calls [--json] [--api URL] [-c FILE]`: asks the running edge
 * through its admin API (GET /api/settings, /api/peers, /api/calls) and prints a table for
 * humans (like Asterisk's `sip show peers`) or the raw JSON with `--json`.
 */
import { stringify } from 'yaml';
import type { CallRow, PeerRow } from '../../edge-api.js';
import { apiGet, resolveApiTarget } from '../api-client.js';
import { ExitCode } from '../exit-codes.js';
import type { CliIo } from '../io.js';
import { formatTable } from '../table.js';

/** What `show` can show. */
export const SHOW_TOPICS = ['settings', 'peers', 'calls'] as const;
export type ShowTopic = (typeof SHOW_TOPICS)[number];

/** Options of {@link runShow}. */
export interface ShowOptions {
  config: string;
  /** True when `-c` was given on the command line (a missing file is then an error). */
  configExplicit: boolean;
  api?: string;
  json?: boolean;
}

/** Runs `show`; resolves to the exit code (throws `CliError` for unreachable API / bad config). */
export async function runShow(topic: ShowTopic, opts: ShowOptions, io: CliIo): Promise<number> {
  const target = await resolveApiTarget(opts);
  const body = await apiGet(target, `/api/${topic}`);
  if (opts.json) {
    io.out(`${JSON.stringify(body, null, 2)}\n`);
    return ExitCode.OK;
  }
  if (topic === 'settings') io.out(formatSettings(body));
  else if (topic === 'peers') io.out(formatPeers(body as PeerRow[]));
  else io.out(formatCalls(body as CallRow[]));
  return ExitCode.OK;
}

/** `show settings` for humans: the settings object as YAML (control characters masked). */
export function formatSettings(settings: unknown): string {
  return stringify(settings, { lineWidth: 0 }).replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, '?');
}

/** Column headers of `show peers`. */
export const PEER_COLUMNS = ['AOR', 'Contact', 'Received', 'Transport', 'NAT', 'Expires', 'Reachable', 'RTT', 'User-Agent'] as const;

/**
 * The NAT column: `yes`/`no` (the decision under `nat.clients`), then the detection tests that
 * fired in parentheses, as Kamailio's `nat_uac_test` names them in ours: `yes (contact-private,via-received)`.
 */
function natColumn(p: PeerRow): string {
  const tests = Array.isArray(p.natTests) ? p.natTests.map(String) : [];
  return `${p.nat ? 'yes' : 'no'}${tests.length > 0 ? ` (${tests.join(',')})` : ''}`;
}

/** `show peers` for humans: one row per binding, then a summary line. */
export function formatPeers(peers: PeerRow[]): string {
  if (!Array.isArray(peers) || peers.length === 0) return 'No registered peers.\n';
  const rows = peers.map((p) => [
    String(p.aor ?? ''),
    String(p.contact ?? ''),
    String(p.received ?? ''),
    String(p.transport ?? '').toUpperCase(),
    natColumn(p),
    typeof p.expires === 'number' ? `${Math.max(0, Math.round(p.expires))}s` : '-',
    String(p.reachable ?? 'unknown'),
    typeof p.rttMs === 'number' ? `${Math.round(p.rttMs)} ms` : '-',
    p.userAgent ?? '-',
  ]);
  const nat = peers.filter((p) => p.nat).length;
  const count = (r: PeerRow['reachable']) => peers.filter((p) => p.reachable === r).length;
  const aors = new Set(peers.map((p) => p.aor)).size;
  const summary =
    `${peers.length} binding${peers.length === 1 ? '' : 's'} for ${aors} AOR${aors === 1 ? '' : 's'}: ` +
    `${nat} behind NAT; ${count('yes')} reachable, ${count('no')} unreachable, ${count('unknown')} unknown\n`;
  return formatTable(PEER_COLUMNS, rows) + summary;
}

/** Formats seconds as `H:MM:SS`. */
function duration(s: number): string {
  const t = Math.max(0, Math.floor(s));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  return `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}`;
}

/** Column headers of `show calls`. */
export const CALL_COLUMNS = ['Call-ID', 'From', 'To', 'State', 'Duration'] as const;

/** Extra columns of `show calls` when the edge reports media (relay/direct, per-direction packets, latched addresses). */
export const CALL_MEDIA_COLUMNS = ['Media', 'Caller->Callee', 'Callee->Caller', 'Latched (caller / callee)'] as const;

/** The compact media cells of one call. */
function mediaCells(c: CallRow): string[] {
  if (c.media !== 'relay') return [String(c.media ?? '-'), '-', '-', '-'];
  const legs = Array.isArray(c.legs) ? c.legs : [];
  const caller = legs.find((l) => l?.role === 'caller');
  const callee = legs.find((l) => l?.role === 'callee');
  const pk = (n: unknown): string => (typeof n === 'number' ? `${n} pkts` : '-');
  const latched = (l: (typeof legs)[number] | undefined): string => String(l?.streams?.[0]?.rtp?.latched ?? l?.streams?.[0]?.rtp?.signalled ?? '-');
  return ['relay', pk(caller?.received?.packets), pk(callee?.received?.packets), `${latched(caller)} / ${latched(callee)}`];
}

/** `show calls` for humans (the media columns appear when the edge reports media). */
export function formatCalls(calls: CallRow[]): string {
  if (!Array.isArray(calls) || calls.length === 0) return 'No active calls.\n';
  const withMedia = calls.some((c) => c.media !== undefined);
  const rows = calls.map((c) => {
    const base = [String(c.callId ?? ''), String(c.from ?? ''), String(c.to ?? ''), String(c.state ?? ''), typeof c.age === 'number' ? duration(c.age) : '-'];
    return withMedia ? [...base, ...mediaCells(c)] : base;
  });
  const columns = withMedia ? [...CALL_COLUMNS, ...CALL_MEDIA_COLUMNS] : CALL_COLUMNS;
  return `${formatTable(columns, rows)}${calls.length} active call${calls.length === 1 ? '' : 's'}\n`;
}
