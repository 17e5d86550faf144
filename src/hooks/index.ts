/**
 * The hook API of sipedge (per-transaction control, see `types.ts`): import types and
 * {@link defineHooks} from here in a hooks module, or pass hooks to `startEdge(config, { hooks })`.
 */
export {
  HOOK_NAMES,
  HookError,
  defineHooks,
  type EdgeHooks,
  type ForwardHookContext,
  type HookAddress,
  type HookContextBase,
  type HookErrorCode,
  type HookName,
  type HookRequest,
  type HookResult,
  type HookSocket,
  type HooksExport,
  type RequestHookContext,
} from './types.js';
export { HookRunner, DEFAULT_HOOK_TIMEOUT_MS, validateHooks, type HookRejection, type RunnerTarget } from './runner.js';
export { loadHooks, hooksSpecifier } from './load.js';
export { createHookRunner } from './edge.js';
