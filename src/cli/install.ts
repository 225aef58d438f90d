/**
 * `glassbox install BUNDLE|-`: verify while writing into the inactive slot,
 * then switch to it (pending boot confirmation). Exit 0 installed, 1 bundle
 * refused (the spec's code), 2 usage / I/O / device-state problem.
 */
import type { Command } from 'commander';
import { STATE_DIR_HELP, openBundleSource, reportForJson, resolveStateDir } from '../install/cli-support.js';
import { runCommand, type CliIO } from './run.js';

interface InstallFlags {
  stateDir?: string;
  json?: boolean;
}

export function register(program: Command, io: CliIO): void {
  program
    .command('install')
    .description('verify a firmware bundle while writing it into the inactive slot, then switch to it (pending boot confirmation)')
    .argument('<bundle>', 'bundle file, or - to read it from standard input')
    .option('--state-dir <dir>', STATE_DIR_HELP)
    .option('--json', 'print the whole result as JSON')
    .action(async (bundle: string, flags: InstallFlags) => {
      await runCommand(io, flags.json === true, async () => {
        const stateDir = resolveStateDir(flags.stateDir);
        const { source, name } = await openBundleSource(bundle);
        const { installBundle } = await import('../install/install.js');
        const r = await installBundle({ stateDir, source, sourceName: name, clock: new Date() });
        if (flags.json) {
          io.out(JSON.stringify({ ok: r.ok, code: r.code, reason: r.reason, slot: r.slot, bytesWritten: r.bytesWritten, trustPolicyStaged: r.trustPolicyStaged, generation: r.state.generation, active: r.state.active, securityFloor: r.state.securityFloor, verification: reportForJson(r.verification) }, null, 2));
        }
        if (r.ok) {
          if (!flags.json) {
            io.out(`installed ${r.verification.manifest?.version ?? '?'} (security ${r.verification.manifest?.securityVersion ?? '?'}) into slot ${r.slot}: pending until the next start confirms it`);
            if (r.trustPolicyStaged) io.out(`  carries a new trust policy ${r.trustPolicyStaged.slice(0, 12)}…, effective once the slot is committed`);
          }
          return 0;
        }
        io.err(`glassbox: install refused: ${r.code}: ${r.reason}`);
        if (!flags.json) io.err('  nothing was changed on the recorder');
        return 1;
      });
    });
}
