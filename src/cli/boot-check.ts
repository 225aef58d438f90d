/**
 * `glassbox boot-check`: confirm a pending slot at start (re-verify, health
 * hooks) and commit it, or count a failed start and fall back after N.
 * Exit 0: committed or nothing pending; 1: this start failed (the slot
 * stays pending for another try, or the device fell back); 2: I/O.
 */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { STATE_DIR_HELP, resolveStateDir } from '../install/cli-support.js';
import { runCommand, type CliIO } from './run.js';

interface BootFlags {
  stateDir?: string;
  healthDir?: string;
  hookTimeout?: string;
  json?: boolean;
}

export function register(program: Command, io: CliIO): void {
  program
    .command('boot-check')
    .description('confirm a newly installed slot at start: re-verify it, run health hooks, commit or fall back')
    .option('--state-dir <dir>', STATE_DIR_HELP)
    .option('--hook-timeout <seconds>', 'time limit of each health hook', '60')
    .option('--json', 'print the whole result as JSON')
    .action(async (flags: BootFlags) => {
      await runCommand(io, flags.json === true, async () => {
        const stateDir = resolveStateDir(flags.stateDir);
        const secs = Number(flags.hookTimeout ?? '60');
        if (!Number.isFinite(secs) || secs <= 0 || secs > 3600) throw new UsageError(`--hook-timeout must be 1..3600 seconds, got ${JSON.stringify(flags.hookTimeout)}`);
        const { bootCheck } = await import('../install/boot.js');
        const r = await bootCheck({ stateDir, clock: new Date(), hookTimeoutMs: Math.round(secs * 1000) });
        if (flags.json) {
          io.out(JSON.stringify({ ok: r.ok, outcome: r.outcome, slot: r.slot, attempt: r.attempt, maxAttempts: r.maxAttempts, reason: r.reason, checks: r.checks, securityFloor: r.state.securityFloor, generation: r.state.generation }, null, 2));
        } else if (r.ok) {
          io.out(r.reason);
        } else {
          io.err(`glassbox: boot check: ${r.outcome}: ${r.reason}`);
        }
        return r.ok ? 0 : 1;
      });
    });
}
