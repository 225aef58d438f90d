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
import { resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { DEFAULT_CONFIG_PATH } from '../config/defaults.js';
import { renderTechnician, technicianView } from '../status/technician.js';

interface StatusFlags {
  stateDir?: string;
  json?: boolean;
  config?: string;
  socket?: string;
  api?: string;
  verify?: boolean;
}

export function register(program: Command, io: CliIO): void {
  program
    .command('status')
    .description('firmware slots, security floor, last install and what to do next')
    .option('--state-dir <dir>', STATE_DIR_HELP)
    .option('--json', 'print the whole status as JSON (glassbox.status/v1)')
    .option('--config <file>', `daemon configuration (default ${DEFAULT_CONFIG_PATH})`)
    .option('--socket <path>', "the daemon API's Unix socket (no status page password needed)")
    .option('--api <url>', 'the daemon API over loopback TCP (default: api.listen of the configuration)')
    .option('--verify', 're-verify the installed firmware files now (reads all of them)')
    .action(async (flags: StatusFlags) => {
      await runCommand(io, flags.json === true, async () => {
        const stateDir = resolveStateDir(flags.stateDir);
        const { state } = await new StateDir(stateDir).read();
        const report = buildStatus(stateDir, state, await readJournal(stateDir), await lockInfo(stateDir));
        // The technician's view (identity, provenance, broker, health, egress): src/status/technician.ts.
        const technician = await technicianView({
          stateDir,
          configPath: resolve(flags.config ?? process.env['GLASSBOX_CONFIG'] ?? DEFAULT_CONFIG_PATH),
          explicitConfig: flags.config !== undefined,
          api: flags.socket !== undefined ? { socketPath: flags.socket } : flags.api !== undefined ? { url: flags.api } : null,
          now: new Date(),
          version: (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version,
          verify: flags.verify === true,
        });
        io.out(flags.json ? JSON.stringify({ ...report, technician }, null, 2) : `${renderStatus(report)}\n${renderTechnician(technician)}`);
        return 0;
      });
    });
}
