/**
 * node:test glue for the NAT lab.
 *
 *   const env = await labForTests('setn', { udpTimeout: 20 });   // at module top level, or in before()
 *   after(() => env.teardown());
 *   test('...', async (t) => {
 *     const lab = env.need(t);          // calls t.skip('NAT lab needs root: ...') and returns null when not root
 *     if (!lab) return;
 *     ...
 *   });
 *
 * Each test process gets its own prefix `<base><pid>-`, so parallel runs never collide, and labs left
 * behind by a test process that died (its pid no longer exists) are swept before a new one is built.
 */
import { Lab, LabUnavailableError, type LabOptions } from './lab.js';

export interface TestLab {
  /** the running lab, or null when unavailable (see skipReason) */
  lab: Lab | null;
  /** why the lab is unavailable */
  skipReason: string | null;
  /** returns the lab, or marks the test skipped (loudly) and returns null */
  need(t: { skip(msg?: string): void }): Lab | null;
  /** tear the lab down (idempotent) */
  teardown(): Promise<void>;
}

let warned = false;

/** Remove labs `<base><pid>-*` whose test process is gone. */
export async function sweepStaleLabs(base: string): Promise<string[]> {
  const re = new RegExp(`^(${base}(\\d+)-)`);
  const swept: string[] = [];
  const prefixes = new Set<string>();
  for (const n of await Lab.listNamespaces()) {
    const m = re.exec(n);
    if (!m) continue;
    const pid = Number(m[2]);
    if (pid === process.pid) continue;
    let alive = true;
    try {
      process.kill(pid, 0); // signal 0: existence check only
    } catch (e) {
      alive = (e as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (!alive) prefixes.add(m[1]);
  }
  for (const p of prefixes) swept.push(...(await Lab.teardown(p)));
  return swept;
}

/** Build a lab for this test file, or explain loudly why it is skipped. Never throws LabUnavailableError. */
export async function labForTests(base: string, opts: Omit<LabOptions, 'prefix'> = {}): Promise<TestLab> {
  if (!/^[A-Za-z]{1,12}$/.test(base)) throw new Error(`labForTests: base must be letters only, got "${base}"`);
  let lab: Lab | null = null;
  let skipReason: string | null = null;
  try {
    Lab.assertAvailable();
    await sweepStaleLabs(base);
    lab = new Lab({ ...opts, prefix: `${base}${process.pid}-` });
    await lab.up();
  } catch (e) {
    if (!(e instanceof LabUnavailableError)) throw e;
    lab = null;
    skipReason = e.reason;
    if (!warned) {
      warned = true;
      process.stderr.write(
        `\n*** NAT lab tests SKIPPED: ${e.reason}. They prove sipedge through real kernel NAT; run as root (CI does). ***\n\n`,
      );
    }
  }
  return {
    lab,
    skipReason,
    need(t) {
      if (lab) return lab;
      t.skip(`NAT lab needs root: ${skipReason}`);
      return null;
    },
    async teardown() {
      if (lab) await lab.down();
    },
  };
}
