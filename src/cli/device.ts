/**
 * `glassbox device init --trust POLICY.json --hardware MODEL`: create the
 * device state (what the factory does). Refuses an initialised state.
 */
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { IoError, UsageError } from '../errors.js';
import { STATE_DIR_HELP, resolveStateDir } from '../install/cli-support.js';
import { runCommand, type CliIO } from './run.js';

interface InitFlags {
  stateDir?: string;
  trust: string;
  hardware: string;
  maxBootAttempts?: string;
  json?: boolean;
}

export function register(program: Command, io: CliIO): void {
  const device = program.command('device').description('device state: the factory side');
  device
    .command('init')
    .description('create the device state directory: trust policy, hardware model, two empty slots')
    .requiredOption('--trust <policy.json>', 'trust policy file (canonical JSON, bundle-v1 section 3)')
    .requiredOption('--hardware <model>', 'hardware model id of this recorder')
    .option('--state-dir <dir>', STATE_DIR_HELP)
    .option('--max-boot-attempts <n>', 'failed starts of a new slot before falling back (1-100)', '3')
    .option('--json', 'print the whole result as JSON')
    .action(async (flags: InitFlags) => {
      await runCommand(io, flags.json === true, async () => {
        const stateDir = resolveStateDir(flags.stateDir);
        const attempts = Number(flags.maxBootAttempts ?? '3');
        if (!/^[0-9]+$/.test(flags.maxBootAttempts ?? '3')) throw new UsageError(`--max-boot-attempts must be a whole number, got ${JSON.stringify(flags.maxBootAttempts)}`);
        let trustBytes: Buffer;
        try {
          trustBytes = await readFile(flags.trust);
        } catch (err) {
          throw new IoError(`cannot read trust policy ${flags.trust}: ${(err as Error).message}`, { cause: err });
        }
        if (trustBytes.length > 1024 * 1024) throw new UsageError(`trust policy ${flags.trust} is over 1 MiB`);
        const { initDevice } = await import('../install/init.js');
        const state = await initDevice({ stateDir, trustBytes, hardware: flags.hardware, clock: new Date(), maxBootAttempts: attempts });
        if (flags.json) io.out(JSON.stringify({ ok: true, stateDir, state }, null, 2));
        else io.out(`initialised ${stateDir} for ${state.hardware}: trust policy ${state.trustPolicy.slice(0, 12)}…, slots a and b empty`);
        return 0;
      });
    });
}
