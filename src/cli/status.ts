/**
 * `glassbox status`: both slots, which one runs, the floor, the last install
 * and boot check, and what to do next. --json prints glassbox.status/v1
 * (docs/status.md).
 */
import type { Command } from 'commander';
import { readJournal } from '../install/journal.js';
import { lockInfo } from '../install/lock.js';
import { StateDir } from '../install/state-store.js';
import { buildStatus, renderStatus } from '../install/status.js';
import { STATE_DIR_HELP, resolveStateDir } from '../install/cli-support.js';
import { runCommand, type CliIO } from './run.js';

interface StatusFlags {
  stateDir?: string;
  json?: boolean;
}

export function register(program: Command, io: CliIO): void {
  program
    .command('status')
    .description('firmware slots, security floor, last install and what to do next')
    .option('--state-dir <dir>', STATE_DIR_HELP)
    .option('--json', 'print the whole status as JSON (glassbox.status/v1)')
    .action(async (flags: StatusFlags) => {
      await runCommand(io, flags.json === true, async () => {
        const stateDir = resolveStateDir(flags.stateDir);
        const { state } = await new StateDir(stateDir).read();
        const report = buildStatus(stateDir, state, await readJournal(stateDir), await lockInfo(stateDir));
        io.out(flags.json ? JSON.stringify(report, null, 2) : renderStatus(report));
        return 0;
      });
    });
}
