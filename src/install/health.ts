/**
 * Boot health checks: what must hold before a pending slot is committed.
 * A check is an object with a name, a kind and run(); the list is passed in,
 * so the daemon can add real checks (services up, recording disk mounted…)
 * without touching the boot logic.
 *
 *   kind 'integrity': a failure refuses the slot at once (no retries): the
 *                     slot's bytes are wrong and will stay wrong.
 *   kind 'health':    a failure counts as one failed start; after
 *                     maxBootAttempts failed starts the device falls back.
 */
import { spawn } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { TrustAnchors } from '../trust/types.js';
import { reverifySlot } from './reverify.js';
import type { SlotContent } from './slot.js';
import type { DeviceState, SlotId, SlotRecord } from './state.js';

export interface BootCheckContext {
  readonly stateDir: string;
  readonly state: DeviceState;
  readonly slot: SlotId;
  readonly record: SlotRecord;
  readonly content: SlotContent;
  readonly trust: TrustAnchors;
}

export type HealthOutcome = { readonly ok: true; readonly detail: string } | { readonly ok: false; readonly code: string; readonly reason: string };

export interface BootHealthCheck {
  readonly name: string;
  readonly kind: 'integrity' | 'health';
  run(ctx: BootCheckContext): Promise<HealthOutcome>;
}

/** Re-verifies the slot's files against its manifest, signatures and the current trust policy. */
export const slotVerificationCheck: BootHealthCheck = {
  name: 'slot-verification',
  kind: 'integrity',
  async run(ctx) {
    const r = await reverifySlot(ctx.content, ctx.record, ctx.state, ctx.trust);
    return r.ok ? { ok: true, detail: r.reason } : { ok: false, code: r.code ?? 'SLOT_REFUSED', reason: `slot ${ctx.slot} does not verify: ${r.reason}` };
  },
};

/** Bytes of a hook's output kept for the failure reason. */
const HOOK_OUTPUT_MAX = 2048;

/**
 * Runs every executable regular file in `dir` (sorted by name), one at a
 * time, each with a time limit. A hook passes with exit status 0. The hook
 * gets GLASSBOX_SLOT, GLASSBOX_SLOT_DIR, GLASSBOX_VERSION, GLASSBOX_STATE_DIR.
 * A missing directory means no hooks.
 */
export function hookDirectoryCheck(dir: string, timeoutMs = 60_000): BootHealthCheck {
  return {
    name: 'health-hooks',
    kind: 'health',
    async run(ctx) {
      let names: string[];
      try {
        names = (await readdir(dir)).sort();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true, detail: `no hook directory ${dir}` };
        return { ok: false, code: 'HEALTH_CHECK_FAILED', reason: `cannot read hook directory ${dir}: ${(err as Error).message}` };
      }
      const ran: string[] = [];
      for (const name of names) {
        if (name.startsWith('.')) continue;
        const path = join(dir, name);
        const st = await stat(path).catch(() => null);
        if (!st || !st.isFile() || (st.mode & 0o111) === 0) continue;
        const result = await runHook(path, timeoutMs, {
          GLASSBOX_SLOT: ctx.slot,
          GLASSBOX_SLOT_DIR: ctx.content.location,
          GLASSBOX_VERSION: ctx.record.version ?? '',
          GLASSBOX_STATE_DIR: ctx.stateDir,
        });
        if (!result.ok) return { ok: false, code: 'HEALTH_CHECK_FAILED', reason: `health hook ${name} ${result.reason}` };
        ran.push(name);
      }
      return { ok: true, detail: ran.length === 0 ? 'no health hooks' : `health hooks passed: ${ran.join(', ')}` };
    },
  };
}

function runHook(path: string, timeoutMs: number, env: Record<string, string>): Promise<{ ok: true } | { ok: false; reason: string }> {
  return new Promise((resolve) => {
    const child = spawn(path, [], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (b: Buffer): void => {
      output = (output + b.toString('utf8')).slice(-HOOK_OUTPUT_MAX);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, reason: `could not run: ${err.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const tail = output.trim().split('\n').slice(-3).join(' | ');
      if (timedOut) resolve({ ok: false, reason: `did not finish within ${timeoutMs} ms` });
      else if (code === 0) resolve({ ok: true });
      else resolve({ ok: false, reason: `${signal ? `was killed by ${signal}` : `exited with status ${code}`}${tail ? `: ${tail}` : ''}` });
    });
  });
}

/** The standard list: integrity first, then the hook directory. */
export function defaultBootChecks(healthDir: string, hookTimeoutMs?: number): BootHealthCheck[] {
  return [slotVerificationCheck, hookDirectoryCheck(healthDir, hookTimeoutMs)];
}
