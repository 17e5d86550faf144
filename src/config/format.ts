/**
 * Writes a {@link SipedgeConfig} back as `sipedge.yaml` text (what `sipedge check` prints as
 * the effective settings). The output is itself a valid config that parses to the same
 * settings, except that passwords are masked unless `showSecrets` is set.
 */
import { stringify } from 'yaml';
import type { SipedgeConfig } from './types.js';
import { formatMediaEngine, formatPortRange } from './values.js';

/** Mask printed in place of a password. */
export const SECRET_MASK = '********';

/** The config as plain YAML-ready data in the file's own shape (no derived `sockets`). */
export function configToYamlData(c: SipedgeConfig, opts: { showSecrets?: boolean } = {}): Record<string, unknown> {
  return {
    listen: c.listen,
    publicAddress: c.publicAddress,
    aliases: c.aliases,
    localnet: c.localnet,
    nat: c.nat,
    media: { ...c.media, ports: formatPortRange(c.media.ports), engine: formatMediaEngine(c.media.engine) },
    registrar: c.registrar,
    auth: c.auth,
    users: c.users.map((u) => ({ username: u.username, password: opts.showSecrets ? u.password : SECRET_MASK })),
    proxy: c.proxy,
    sip: c.sip,
    store: c.store,
    api: c.api,
    log: c.log,
    ...(c.hooks ? { hooks: c.hooks } : {}),
    overload: c.overload,
    // `auto` shows as the resolved count; 1 (no cluster) is left out like other defaults of old files.
    ...(c.workers > 1 ? { workers: c.workers } : {}),
  };
}

/** Formats the effective settings as YAML text. */
export function formatConfigYaml(c: SipedgeConfig, opts: { showSecrets?: boolean } = {}): string {
  return stringify(configToYamlData(c, opts), { lineWidth: 0 });
}
