/**
 * The edge's side of the hooks: the config's `hooks:` module plus hooks passed to `startEdge`,
 * combined into one {@link HookRunner} (undefined when there are none).
 */
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { SipedgeConfig } from '../config/types.js';
import { loadHooks } from './load.js';
import { HookRunner } from './runner.js';
import type { EdgeHooks } from './types.js';

/** Loads `config.hooks` (if any) and appends `programmatic`; rejects when the module cannot be loaded. */
export async function createHookRunner(config: SipedgeConfig, programmatic: EdgeHooks | EdgeHooks[] | undefined, clock: Clock, log: Logger): Promise<HookRunner | undefined> {
  const list: EdgeHooks[] = [];
  if (config.hooks) {
    list.push(await loadHooks(config.hooks));
    log.info({ module: config.hooks.module }, 'hooks module loaded');
  }
  if (programmatic) list.push(...(Array.isArray(programmatic) ? programmatic : [programmatic]));
  return list.length > 0 ? new HookRunner(list, { clock, logger: log }) : undefined;
}
