/**
 * Loads the hooks module named by `hooks:` in `sipedge.yaml`:
 *
 * ```yaml
 * hooks: ./examples/hooks.mjs            # a path (relative to the working directory) or a package name
 * hooks:                                 # or with options for a factory export
 *   module: ./examples/hooks.mjs
 *   options: { trunkSocket: "udp:10.0.0.10:5070" }
 * ```
 *
 * The module exports its hooks as `default` — an {@link EdgeHooks} object or a factory
 * `(options) => EdgeHooks` (may be async) — or as named exports `onRequest` / `beforeForward`.
 * The module is imported once, at start; a changed `hooks:` takes effect on restart.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { HooksConfig } from '../config/types.js';
import { HOOK_NAMES, HookError, type EdgeHooks } from './types.js';
import { validateHooks } from './runner.js';

/** The URL or specifier to import for a `hooks.module` value. */
export function hooksSpecifier(module: string, cwd = process.cwd()): string {
  if (module.startsWith('file:')) return module;
  if (module.startsWith('.') || path.isAbsolute(module)) return pathToFileURL(path.resolve(cwd, module)).href;
  return module; // a package name
}

/** Imports and validates a hooks module. Rejects with a {@link HookError} (`SIPEDGE_HOOKS_LOAD` / `SIPEDGE_HOOK_INVALID`). */
export async function loadHooks(spec: HooksConfig, cwd = process.cwd()): Promise<EdgeHooks> {
  const specifier = hooksSpecifier(spec.module, cwd);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(specifier)) as Record<string, unknown>;
  } catch (err) {
    throw new HookError('SIPEDGE_HOOKS_LOAD', `hooks: cannot import ${spec.module} (${specifier}): ${(err as Error).message}`);
  }
  let exported: unknown = mod.default;
  if (exported === undefined) {
    const named: Record<string, unknown> = {};
    for (const n of HOOK_NAMES) if (mod[n] !== undefined) named[n] = mod[n];
    if (Object.keys(named).length === 0) {
      throw new HookError('SIPEDGE_HOOKS_LOAD', `hooks: ${spec.module} exports neither a default nor any of ${HOOK_NAMES.join(', ')}`);
    }
    exported = named;
  }
  if (typeof exported === 'function') {
    try {
      exported = await (exported as (o: Record<string, unknown>) => unknown)(spec.options);
    } catch (err) {
      throw new HookError('SIPEDGE_HOOKS_LOAD', `hooks: the factory of ${spec.module} failed: ${(err as Error).message}`);
    }
  }
  return validateHooks(exported, `hooks (${spec.module})`);
}
