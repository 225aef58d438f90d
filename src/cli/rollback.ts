/**
 * `glassbox rollback`: return to the other committed slot, when the
 * security floor allows it. Exit 1 with ROLLBACK / NO_FALLBACK / SLOT_REFUSED
 * when refused (nothing changed).
 */
import type { Command } from 'commander';
import { STATE_DIR_HELP, resolveStateDir } from '../install/cli-support.js';
import { runCommand, type CliIO } from './run.js';

interface RollbackFlags {
  stateDir?: string;
  json?: boolean;
}

export function register(program: Command, io: CliIO): void {
  program
    .command('rollback')
    .description('return to the previous committed firmware slot (refused below the security floor)')
    .option('--state-dir <dir>', STATE_DIR_HELP)
    .option('--json', 'print the whole result as JSON')
    .action(async (flags: RollbackFlags) => {
      await runCommand(io, flags.json === true, async () => {
        const stateDir = resolveStateDir(flags.stateDir);
        const { rollback } = await import('../install/rollback.js');
        const r = await rollback({ stateDir, clock: new Date() });
        if (flags.json) io.out(JSON.stringify({ ok: true, from: r.from, to: r.to, version: r.version, generation: r.state.generation, securityFloor: r.state.securityFloor }, null, 2));
        else io.out(`rolled back to slot ${r.to} (${r.version ?? '?'}); restart the recorder to run it`);
        return 0;
      });
    });
}
